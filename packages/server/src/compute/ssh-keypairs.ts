/** SSH key pairs: registered public keys (or generated pairs) that VMs receive at deploy. */
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { AccountRow, DomainRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { listOwned } from '../iam/owned.ts';
import { ownerFor } from '../projects/access.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';

const KEY_TYPES = [
  'ssh-rsa',
  'ssh-ed25519',
  'ssh-dss',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
];

/** The decoded key blob of an OpenSSH public key line, or undefined if it is not one. */
export function publicKeyBlob(line: string): Buffer | undefined {
  const [type, body] = line.trim().split(/\s+/);
  if (!type || !body || !KEY_TYPES.includes(type) || !/^[A-Za-z0-9+/]+=*$/.test(body)) return undefined;
  const blob = Buffer.from(body, 'base64');
  if (blob.length < 4) return undefined;
  const nameLength = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + nameLength).toString('latin1') === type ? blob : undefined;
}

/** Lower-case, colon-separated MD5 of the key blob: what CloudStack and Ansible compare. */
export function fingerprint(blob: Buffer): string {
  return createHash('md5').update(blob).digest('hex').match(/../g)!.join(':');
}

function sshString(data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

function mpint(unsigned: Buffer): Buffer {
  return sshString(unsigned[0] & 0x80 ? Buffer.concat([Buffer.from([0]), unsigned]) : unsigned);
}

/** A new RSA key pair: the private key as PEM (as CloudStack returns it) and the OpenSSH public key. */
export function generateRsaKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const jwk = createPublicKey(publicKey).export({ format: 'jwk' });
  const blob = Buffer.concat([
    sshString(Buffer.from('ssh-rsa')),
    mpint(Buffer.from(jwk.e!, 'base64url')),
    mpint(Buffer.from(jwk.n!, 'base64url')),
  ]);
  return { privateKey, publicKey: `ssh-rsa ${blob.toString('base64')}` };
}

/**
 * The one path to SSH key pairs by name. Key pairs are named within their account (upstream finds
 * them by account and name, never by uuid), so a command first reaches the account through the
 * access checks (a VM found with findOwned, an account given with resolveAccount) and then names
 * its keys here. Returns those found and the names that are not the account's.
 */
export async function keyPairsNamed(
  ctx: Pick<CallContext, 'app'>,
  accountId: number,
  names: string[],
): Promise<{ found: { name: string; public_key: string }[]; missing: string[] }> {
  const found = names.length
    ? await ctx.app.store.db
        .selectFrom('ssh_keypairs')
        .select(['name', 'public_key'])
        .where('account_id', '=', accountId)
        .where('name', 'in', names)
        .execute()
    : [];
  return { found, missing: names.filter((n) => !found.some((f) => f.name === n)) };
}

async function store(
  ctx: CallContext,
  name: string,
  owner: { account: AccountRow; domain: DomainRow },
  publicKey: string,
) {
  const blob = publicKeyBlob(publicKey);
  if (!blob)
    throw invalidParameter(
      'Public key is invalid: expected an OpenSSH public key such as "ssh-rsa AAAA... comment"',
    );
  const { app } = ctx;
  const print = fingerprint(blob);
  return app.store.db.transaction().execute(async (tx) => {
    const clash = await tx
      .selectFrom('ssh_keypairs')
      .select(['name', 'fingerprint'])
      .where('account_id', '=', owner.account.id)
      .where((eb) => eb.or([eb('name', '=', name), eb('fingerprint', '=', print)]))
      .executeTakeFirst();
    if (clash?.name === name)
      throw invalidParameter(
        `A key pair with name '${name}' already exists for account ${owner.account.name}`,
      );
    if (clash)
      throw invalidParameter(`A key pair with the same public key already exists (name '${clash.name}')`);
    const id = await insertId(app.store, tx, 'ssh_keypairs', {
      uuid: app.ids.uuid(),
      name,
      account_id: owner.account.id,
      domain_id: owner.domain.id,
      public_key: publicKey.trim(),
      fingerprint: print,
      created: app.clock.now(),
    });
    await logEvent(ctx, tx, { type: 'REGISTER.SSH.KEYPAIR', description: `registered SSH key pair ${name}` });
    return tx.selectFrom('ssh_keypairs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  });
}

function present(
  row: { uuid: string; name: string; fingerprint: string },
  owner: { account: string; domain: DomainRow | { uuid: string; name: string } },
) {
  return {
    id: row.uuid,
    name: row.name,
    fingerprint: row.fingerprint,
    account: owner.account,
    domainid: owner.domain.uuid,
    domain: owner.domain.name,
  };
}

const ownerParams = {
  account: p.string({
    description:
      "Name of the account whose key pairs are meant (admins and domain admins); defaults to the caller's.",
  }),
  domainid: p.uuid({
    description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
  }),
  projectid: p.projectScope({
    description:
      'A project: its key pairs are meant (created in it, deleted from it, listed); -1 lists those of every project you may see.',
  }),
};

export const createSSHKeyPair = defineCommand({
  name: 'createSSHKeyPair',
  description:
    'Generates a 2048-bit RSA key pair, keeps only its public half and returns the private key once, in this response.',
  params: {
    name: p.string({
      required: true,
      description: 'Name of the new key pair, unique in the owning account.',
    }),
    ...ownerParams,
  },
  async handler(ctx, params) {
    const owner = await ownerFor(ctx, params);
    const pair = generateRsaKeyPair();
    const row = await store(ctx, params.name, owner, pair.publicKey);
    return {
      ...present(row, { account: owner.account.name, domain: owner.domain }),
      privatekey: pair.privateKey,
    };
  },
});

export const registerSSHKeyPair = defineCommand({
  name: 'registerSSHKeyPair',
  description:
    'Stores an existing OpenSSH public key under a name so VMs can be deployed with it; the same key cannot be stored twice in one account.',
  params: {
    name: p.string({
      required: true,
      description: 'Name to store the key under, unique in the owning account.',
    }),
    publickey: p.string({
      required: true,
      length: 5120,
      description: "The OpenSSH public key line, such as 'ssh-rsa AAAA... comment' (up to 5120 characters).",
    }),
    ...ownerParams,
  },
  async handler(ctx, params) {
    const owner = await ownerFor(ctx, params);
    const row = await store(ctx, params.name, owner, params.publickey);
    return present(row, { account: owner.account.name, domain: owner.domain });
  },
});

export const listSSHKeyPairs = defineCommand({
  name: 'listSSHKeyPairs',
  description:
    'Lists the SSH key pairs the caller may see, with their MD5 fingerprints (never private keys).',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the key pair with this UUID.' }),
    name: p.string({ description: 'Only key pairs with exactly this name.' }),
    fingerprint: p.string({
      description: 'Only key pairs with this MD5 fingerprint (colon-separated hex, case-insensitive).',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include key pairs of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include key pairs of every account they may see.',
    }),
    ...ownerParams,
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db
      .selectFrom('ssh_keypairs')
      .innerJoin('accounts', 'accounts.id', 'ssh_keypairs.account_id')
      .innerJoin('domains', 'domains.id', 'ssh_keypairs.domain_id');
    if (params.id) q = q.where('ssh_keypairs.uuid', '=', params.id);
    if (params.name) q = q.where('ssh_keypairs.name', '=', params.name);
    if (params.fingerprint) q = q.where('ssh_keypairs.fingerprint', '=', params.fingerprint.toLowerCase());
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'ssh_keypairs.name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    return listOwned(ctx, params, q, {
      owner: { account: 'ssh_keypairs.account_id', domain: 'ssh_keypairs.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped
            .select([
              'ssh_keypairs.uuid',
              'ssh_keypairs.name',
              'ssh_keypairs.fingerprint',
              'ssh_keypairs.created',
              'accounts.name as account',
              'domains.uuid as domain_uuid',
              'domains.name as domain_name',
            ])
            .orderBy('ssh_keypairs.id'),
          page,
        ).execute(),
      present: async (rows) =>
        rows.map((r) =>
          present(r, { account: r.account, domain: { uuid: r.domain_uuid, name: r.domain_name } }),
        ),
    });
  },
});

export const deleteSSHKeyPair = defineCommand({
  name: 'deleteSSHKeyPair',
  description:
    'Deletes a named SSH key pair of an account; VMs that were given the key keep it in their guest.',
  params: {
    name: p.string({ required: true, description: 'Name of the key pair to delete.' }),
    ...ownerParams,
  },
  async handler(ctx, params) {
    const owner = await ownerFor(ctx, params, 'find');
    // Upstream records no event for deleting a key pair.
    const r = await ctx.app.store.db
      .deleteFrom('ssh_keypairs')
      .where('account_id', '=', owner.account.id)
      .where('name', '=', params.name)
      .executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) {
      throw invalidParameter(
        `A key pair with name '${params.name}' does not exist for account ${owner.account.name}`,
      );
    }
    return success();
  },
});

export const sshKeyPairCommands = [createSSHKeyPair, registerSSHKeyPair, listSSHKeyPairs, deleteSSHKeyPair];
