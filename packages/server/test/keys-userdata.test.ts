/** SSH key pairs (fingerprints as Ansible computes them) and registered user data. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { generateRsaKeyPair } from '../src/compute/ssh-keypairs.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
const is = (code: number) => (e: any) => e.errorcode === code;
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';

before(async () => {
  server = await startServer();
});
after(() => server.stop());

describe('SSH key pairs', () => {
  test('createSSHKeyPair returns a private key whose public half is registered', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'keyuser' });
    const created = (await client.request<any>('createSSHKeyPair', { name: 'made' })).keypair;
    assert.match(created.privatekey, /^-----BEGIN RSA PRIVATE KEY-----/);
    assert.match(created.fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
    assert.equal(created.account, 'keyuser');
    const listed = await client.request<any>('listSSHKeyPairs', { name: 'made' });
    assert.equal(listed.sshkeypair[0].fingerprint, created.fingerprint);
    assert.equal(listed.sshkeypair[0].privatekey, undefined);
  });

  test('registered fingerprints are the MD5 colon form python-sshpubkeys computes', {
    skip: !existsSync(PYTHON),
  }, async () => {
    const { publicKey } = generateRsaKeyPair();
    const key = `${publicKey} someone@example`;
    const reg = (
      await server.admin.request<any>('registerSSHKeyPair', { name: 'ansible-key', publickey: key })
    ).keypair;
    const expected = execFileSync(
      PYTHON,
      [
        '-c',
        'import sys, sshpubkeys; print(sshpubkeys.SSHKey(sys.argv[1]).hash_md5().replace("MD5:", ""))',
        key,
      ],
      {
        encoding: 'utf8',
      },
    ).trim();
    assert.equal(reg.fingerprint, expected);
    const byPrint = await server.admin.request<any>('listSSHKeyPairs', { fingerprint: expected });
    assert.equal(byPrint.sshkeypair[0].name, 'ansible-key');
  });

  test('bad keys, duplicate names and duplicate keys are refused; delete works once', async () => {
    const { publicKey } = generateRsaKeyPair();
    await assert.rejects(
      server.admin.request('registerSSHKeyPair', { name: 'bad', publickey: 'ssh-rsa not-base64!' }),
      is(431),
    );
    await assert.rejects(
      server.admin.request('registerSSHKeyPair', {
        name: 'bad',
        publickey: 'ssh-ed25519 AAAAC3NzaC1yc2EAAAADAQAB',
      }),
      is(431),
    );
    await server.admin.request('registerSSHKeyPair', { name: 'k1', publickey: publicKey });
    await assert.rejects(
      server.admin.request('registerSSHKeyPair', { name: 'k1', publickey: generateRsaKeyPair().publicKey }),
      is(431),
    );
    await assert.rejects(
      server.admin.request('registerSSHKeyPair', { name: 'k2', publickey: publicKey }),
      is(431),
    );
    assert.deepEqual(await server.admin.request('deleteSSHKeyPair', { name: 'k1' }), { success: true });
    await assert.rejects(server.admin.request('deleteSSHKeyPair', { name: 'k1' }), is(431));
  });

  test('key pairs are private to their account', async () => {
    const a = await createAccountAndLogin(server, { name: 'kp-a' });
    const b = await createAccountAndLogin(server, { name: 'kp-b' });
    await a.client.request('createSSHKeyPair', { name: 'secret' });
    assert.deepEqual(await b.client.request('listSSHKeyPairs', { listall: true }), {});
    await assert.rejects(b.client.request('deleteSSHKeyPair', { name: 'secret', account: 'kp-a' }), is(531));
    assert.equal(
      (await server.admin.request<any>('listSSHKeyPairs', { listall: true, name: 'secret' })).count,
      1,
    );
  });
});

describe('user data', () => {
  test('register, list, delete; base64 and size are checked', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'uduser' });
    const data = Buffer.from('#cloud-config\nhostname: test\n').toString('base64');
    assert.deepEqual(
      await client.request('registerUserData', { name: 'init', userdata: data, params: 'a,b' }),
      { success: true },
    );
    const listed = (await client.request<any>('listUserData', { name: 'init' })).userdata[0];
    assert.equal(listed.userdata, data);
    assert.equal(listed.params, 'a,b');
    assert.equal(listed.account, 'uduser');
    await assert.rejects(client.request('registerUserData', { name: 'init', userdata: data }), is(431));
    await assert.rejects(
      client.request('registerUserData', { name: 'bad', userdata: 'not base64 !!' }),
      is(431),
    );
    await assert.rejects(
      client.request('registerUserData', { name: 'big', userdata: Buffer.alloc(40000).toString('base64') }),
      is(431),
    );
    const other = await createAccountAndLogin(server, { name: 'udother' });
    await assert.rejects(other.client.request('deleteUserData', { id: listed.id }), is(531));
    assert.deepEqual(await client.request('deleteUserData', { id: listed.id }), { success: true });
    assert.deepEqual(await client.request('listUserData', {}), {});
  });
});
