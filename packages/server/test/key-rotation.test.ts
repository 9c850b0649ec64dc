/**
 * `npm run keys -- rotate` against a real data directory: every value sealed with the server key
 * (API secret keys, VM passwords) is re-encrypted under a new key in one transaction; the cloud
 * works afterwards with the same API keys; a value that does not decrypt aborts the rotation and
 * changes nothing; a running management server makes it refuse.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { CloudStackClient } from '@nimbostack/client';
import SQLite from 'better-sqlite3';
import { Secrets } from '../src/iam/secrets.ts';
import { waitUntil } from './agents.ts';
import { createAccountAndLogin, REPO, startServer, type TestServer } from './harness.ts';

const run = promisify(execFile);
let server: TestServer;
let dataDir: string;
let databaseUrl: string;
let keyFile: string;
let apiKeys: { apikey: string; secretkey: string };
let vmPassword: string;
let vmId: string;

/** Runs the documented command against the test's data directory; its exit code and output. */
async function rotate(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'keys', '--', 'rotate', ...args], {
      cwd: REPO,
      env: { ...process.env, NIMBOSTACK_DATA: dataDir, DATABASE_URL: databaseUrl },
    });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, out: err.stdout + err.stderr };
  }
}

function sqlite(): SQLite.Database {
  return new SQLite(databaseUrl.slice('sqlite:'.length));
}

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  ({ dataDir, databaseUrl } = server);
  keyFile = join(dataDir, 'server.key');
  const { userId } = await createAccountAndLogin(server, { name: 'rotor' });
  apiKeys = (await server.admin.request<any>('registerUserKeys', { id: userId })).userkeys;
  const zoneid = (await server.admin.request<any>('listZones', {})).zone[0].id;
  const templateid = await waitUntil(
    async () =>
      (
        await server.admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })
      ).template?.find((x: any) => x.isready)?.id,
    20_000,
    'the built-in template',
  );
  await server.admin.request('updateTemplate', { id: templateid, passwordenabled: true });
  const serviceofferingid = (await server.admin.request<any>('listServiceOfferings', {})).serviceoffering[0]
    .id;
  const vm = (await server.admin.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid }))
    .virtualmachine;
  vmId = vm.id;
  vmPassword = vm.password;
  assert.ok(vmPassword, 'the VM was given a password');
  // Secret settings are sealed too: the LDAP bind password, globally and for a domain.
  await server.admin.request('updateConfiguration', { name: 'ldap.bind.password', value: 'bind-secret' });
  const root = (await server.admin.request<any>('listDomains', { level: 0 })).domain[0].id;
  await server.admin.request('updateConfiguration', {
    name: 'ldap.bind.password',
    value: 'root-domain-secret',
    domainid: root,
  });
});

after(() => server.stop());

test('refused while a management server runs on the database', async () => {
  const r = await rotate();
  assert.equal(r.code, 1);
  assert.match(r.out, /are running on this database; stop them all first/);
  assert.equal(existsSync(`${keyFile}.next`), false);
});

test('a value that does not decrypt aborts the rotation; nothing changes', async () => {
  await server.stop({ keepData: true });
  const before = readFileSync(keyFile, 'utf8');
  const db = sqlite();
  const sealed = db.prepare(`select id, secret_key from users where secret_key is not null`).all() as {
    id: number;
    secret_key: string;
  }[];
  // A secret sealed with some other key, as after restoring a database without its key file.
  const foreign = Secrets.generate().encrypt('not ours');
  db.prepare(`update users set secret_key = ? where username = 'admin'`).run(foreign);
  db.close();

  const r = await rotate();
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /users\.secret_key of id \d+ does not decrypt with the current key/);
  assert.equal(readFileSync(keyFile, 'utf8'), before);
  assert.equal(existsSync(`${keyFile}.next`), false);
  const after = sqlite();
  for (const row of sealed.filter((s) => s.secret_key !== foreign)) {
    const now = after.prepare('select secret_key from users where id = ?').get(row.id) as {
      secret_key: string;
    };
    if (now.secret_key !== foreign) assert.equal(now.secret_key, row.secret_key);
  }
  after.prepare(`update users set secret_key = null, api_key = null where username = 'admin'`).run();
  after.close();
});

test('rotate re-encrypts everything; the cloud works on with the same API keys', async () => {
  const oldKey = readFileSync(keyFile, 'utf8');
  const r = await rotate();
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /users\.secret_key: 1 re-encrypted/);
  assert.match(r.out, /vms\.password: 1 re-encrypted/);
  assert.match(r.out, /configuration\.value: 1 re-encrypted/);
  assert.match(r.out, /scoped_configuration\.value: 1 re-encrypted/);
  assert.match(r.out, /server key [0-9a-f]{8} -> [0-9a-f]{8}/);
  const newKey = readFileSync(keyFile, 'utf8');
  assert.notEqual(newKey, oldKey);
  assert.equal(readFileSync(`${keyFile}.old`, 'utf8'), oldKey, 'the previous key is kept');

  // The stored values open with the new key only.
  const db = sqlite();
  const vm = db.prepare('select password from vms where uuid = ?').get(vmId) as { password: string };
  const bind = db.prepare(`select value from configuration where name = 'ldap.bind.password'`).get() as {
    value: string;
  };
  db.close();
  assert.equal(Secrets.read(keyFile).decrypt(vm.password), vmPassword);
  assert.equal(Secrets.read(keyFile).decrypt(bind.value), 'bind-secret');
  assert.throws(() => Secrets.read(`${keyFile}.old`).decrypt(vm.password));
  // The cloud's key check is re-sealed with the rest: a server still given the previous key
  // (a copy on another machine not yet replaced) refuses at start, naming the new key.
  const keyDb = sqlite();
  const check = keyDb.prepare('select fingerprint, check_value from cloud_key').get() as {
    fingerprint: string;
    check_value: string;
  };
  keyDb.close();
  assert.equal(check.fingerprint, Secrets.read(keyFile).fingerprint);
  assert.doesNotThrow(() => Secrets.read(keyFile).decrypt(check.check_value));
  const stale = await startServer({
    dataDir,
    databaseUrl,
    env: { NIMBOSTACK_SECRET_KEY_FILE: `${keyFile}.old` },
  }).then(
    async (s) => {
      await s.stop({ keepData: true });
      return '';
    },
    (e: Error) => e.message,
  );
  assert.match(
    stale,
    new RegExp(
      `holds key ${Secrets.read(`${keyFile}.old`).fingerprint}, but this cloud's secrets are sealed with key ${check.fingerprint}`,
    ),
  );

  // A crash after the commit but before the new key file was moved into place leaves the new key
  // in <file>.next and the old one in <file>: the next run finishes the switch.
  renameSync(keyFile, `${keyFile}.next`);
  renameSync(`${keyFile}.old`, keyFile);
  const resumed = await rotate();
  assert.equal(resumed.code, 0, resumed.out);
  assert.match(resumed.out, /completed an interrupted rotation/);
  assert.equal(readFileSync(keyFile, 'utf8'), newKey);
  assert.equal(existsSync(`${keyFile}.next`), false);

  // The server starts with the new key, and the user's unchanged API keys still sign calls.
  server = await startServer({ dataDir, databaseUrl });
  const signed = new CloudStackClient({
    url: server.api,
    apiKey: apiKeys.apikey,
    secretKey: apiKeys.secretkey,
  });
  assert.equal((await signed.request<any>('listAccounts')).account[0].name, 'rotor');
  // And new secrets are sealed with it.
  const me = (await signed.request<any>('listUsers', {})).user[0];
  const fresh = (await server.admin.request<any>('registerUserKeys', { id: me.id })).userkeys;
  const next = new CloudStackClient({ url: server.api, apiKey: fresh.apikey, secretKey: fresh.secretkey });
  assert.equal((await next.request<any>('listAccounts')).account[0].name, 'rotor');
});
