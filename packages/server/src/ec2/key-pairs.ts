/**
 * Key pairs are the account's SSH key pairs (createSSHKeyPair, registerSSHKeyPair,
 * listSSHKeyPairs, deleteSSHKeyPair), named as in CloudStack; their EC2 id is key-… of the pair's
 * UUID. Fingerprints are CloudStack's (MD5 of the public key, colon-separated), which is what EC2
 * shows for imported keys.
 */
import { defineAction, type Ec2Context, e } from './action.ts';
import { listAll, runCommand } from './cloudstack.ts';
import { Ec2Error, invalidValue } from './errors.ts';
import { applyFilters, type FilterTable } from './filters.ts';
import { toEc2Id, toUuid } from './ids.ts';
import { itemSet } from './xml.ts';

interface KeyPair {
  id: string;
  name: string;
  fingerprint: string;
  privatekey?: string;
}

const keyNotFound = (name: string) =>
  new Ec2Error('InvalidKeyPair.NotFound', `The key pair '${name}' does not exist`);

async function keyPairs(ctx: Ec2Context): Promise<KeyPair[]> {
  return listAll<KeyPair>(ctx, 'listSSHKeyPairs', 'sshkeypair');
}

/** Fails with InvalidKeyPair.NotFound unless the caller has a key pair of this name. */
export async function ensureKeyPair(ctx: Ec2Context, name: string): Promise<void> {
  const found = await listAll<KeyPair>(ctx, 'listSSHKeyPairs', 'sshkeypair', { name });
  if (!found.some((k) => k.name === name)) throw keyNotFound(name);
}

async function refuseDuplicate(ctx: Ec2Context, name: string): Promise<void> {
  const found = await listAll<KeyPair>(ctx, 'listSSHKeyPairs', 'sshkeypair', { name });
  if (found.some((k) => k.name === name))
    throw new Ec2Error('InvalidKeyPair.Duplicate', `The keypair '${name}' already exists.`);
}

const keyName = e.string({ required: true, description: 'Name of the key pair, unique in the account.' });

export const createKeyPair = defineAction({
  name: 'CreateKeyPair',
  description:
    'Creates an RSA key pair (createSSHKeyPair); the answer is the only time the private key is shown.',
  params: {
    KeyName: keyName,
    KeyType: e.string({ description: 'rsa (the default and the only type made here).' }),
    KeyFormat: e.string({ description: 'pem (the default and the only format made here).' }),
  },
  async handler(ctx, params) {
    if (params.KeyType !== undefined && params.KeyType !== 'rsa')
      throw invalidValue('KeyType', params.KeyType, 'Only rsa key pairs are made.');
    if (params.KeyFormat !== undefined && params.KeyFormat !== 'pem')
      throw invalidValue('KeyFormat', params.KeyFormat, 'Only pem private keys are made.');
    await refuseDuplicate(ctx, params.KeyName!);
    const { keypair } = (await runCommand(ctx, 'createSSHKeyPair', { name: params.KeyName })) as {
      keypair: KeyPair;
    };
    return {
      keyName: keypair.name,
      keyFingerprint: keypair.fingerprint,
      keyMaterial: keypair.privatekey,
      keyPairId: toEc2Id('keyPair', keypair.id),
    };
  },
});

export const importKeyPair = defineAction({
  name: 'ImportKeyPair',
  description: 'Registers an existing public key as a key pair (registerSSHKeyPair).',
  params: {
    KeyName: keyName,
    PublicKeyMaterial: e.string({
      required: true,
      description:
        'The OpenSSH public key, base64-encoded (the AWS CLI and SDKs encode the file they are given).',
    }),
  },
  async handler(ctx, params) {
    const material = params.PublicKeyMaterial!;
    const publickey = Buffer.from(material, 'base64').toString('utf8');
    if (!/^(ssh-|ecdsa-)/.test(publickey))
      throw invalidValue(
        'PublicKeyMaterial',
        material.slice(0, 20),
        'It must be a base64-encoded OpenSSH public key.',
      );
    await refuseDuplicate(ctx, params.KeyName!);
    const { keypair } = (await runCommand(ctx, 'registerSSHKeyPair', {
      name: params.KeyName,
      publickey,
    })) as {
      keypair: KeyPair;
    };
    return {
      keyName: keypair.name,
      keyFingerprint: keypair.fingerprint,
      keyPairId: toEc2Id('keyPair', keypair.id),
    };
  },
});

const FILTERS: FilterTable<KeyPair> = {
  'key-name': (k) => [k.name],
  fingerprint: (k) => [k.fingerprint],
  'key-pair-id': (k) => [toEc2Id('keyPair', k.id)],
};

export const describeKeyPairs = defineAction({
  name: 'DescribeKeyPairs',
  description: "Lists the caller's key pairs (listSSHKeyPairs).",
  params: {
    KeyName: e.list({ description: 'Key pairs to list by name; an unknown one is InvalidKeyPair.NotFound.' }),
    KeyPairId: e.list({ description: 'Key pairs to list by id (key-…).' }),
    Filter: e.filters({ description: 'Filters: key-name, fingerprint, key-pair-id.' }),
  },
  async handler(ctx, params) {
    let keys = await keyPairs(ctx);
    if (params.KeyName) {
      for (const name of params.KeyName) if (!keys.some((k) => k.name === name)) throw keyNotFound(name);
      keys = keys.filter((k) => params.KeyName!.includes(k.name));
    }
    if (params.KeyPairId) {
      const uuids = params.KeyPairId.map((id) => toUuid('keyPair', id));
      for (const [i, uuid] of uuids.entries())
        if (!keys.some((k) => k.id === uuid)) throw keyNotFound(params.KeyPairId[i]);
      keys = keys.filter((k) => uuids.includes(k.id));
    }
    keys = applyFilters(keys, params.Filter, FILTERS);
    return {
      keySet: itemSet(
        keys.map((k) => ({
          keyPairId: toEc2Id('keyPair', k.id),
          keyName: k.name,
          keyFingerprint: k.fingerprint,
          tagSet: '',
        })),
      ),
    };
  },
});

export const deleteKeyPair = defineAction({
  name: 'DeleteKeyPair',
  description:
    'Deletes a key pair (deleteSSHKeyPair) by name or id; deleting one that is not there succeeds, as in EC2.',
  params: {
    KeyName: e.string({ description: 'The key pair to delete.' }),
    KeyPairId: e.string({ description: 'The key pair to delete, by id (key-…).' }),
  },
  async handler(ctx, params) {
    if (params.KeyName === undefined && params.KeyPairId === undefined)
      throw new Ec2Error('MissingParameter', 'The request must contain the parameter KeyName or KeyPairId');
    const uuid = params.KeyPairId !== undefined ? toUuid('keyPair', params.KeyPairId) : undefined;
    const key = (await keyPairs(ctx)).find((k) => (uuid ? k.id === uuid : k.name === params.KeyName));
    if (key) await runCommand(ctx, 'deleteSSHKeyPair', { name: key.name });
    return { return: true };
  },
});

export const keyPairActions = [createKeyPair, importKeyPair, describeKeyPairs, deleteKeyPair];
