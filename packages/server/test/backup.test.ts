/**
 * Backup and restore (`npm run backup`, `npm run restore`, backup-cli.ts) on SQLite: a backup taken
 * while the server runs and takes requests gives the same cloud back after later changes, a
 * restore refuses while the server runs and keeps the database it replaces, and neither accepts
 * a file that is no Nimbostack database.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { REPO, startServer, type TestServer } from './harness.ts';

const CLI = join(REPO, 'packages/server/src/backup-cli.ts');
const work = mkdtempSync(join(tmpdir(), 'nimbo-backup-'));
let server: TestServer | undefined;

after(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
});

function cli(s: TestServer, ...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], {
    cwd: REPO,
    env: { ...process.env, NIMBOSTACK_DATA: s.dataDir, DATABASE_URL: s.databaseUrl },
    encoding: 'utf8',
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The CLI without blocking this process, so that requests go on while it runs. */
function cliAsync(
  s: TestServer,
  ...args: string[]
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: REPO,
      env: { ...process.env, NIMBOSTACK_DATA: s.dataDir, DATABASE_URL: s.databaseUrl },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** What an operator sees of the cloud: the lists that backup and restore must keep. */
async function snapshotOfCloud(s: TestServer) {
  const list = async (command: string, key: string, params: Record<string, unknown> = {}) =>
    (((await s.admin.request<any>(command, { listall: true, ...params }))[key] ?? []) as any[])
      .map((x) => JSON.stringify(x))
      .sort();
  return {
    accounts: await list('listAccounts', 'account'),
    vms: await list('listVirtualMachines', 'virtualmachine'),
    volumes: await list('listVolumes', 'volume'),
    snapshots: await list('listSnapshots', 'snapshot'),
    keypairs: await list('listSSHKeyPairs', 'sshkeypair'),
    templates: await list('listTemplates', 'template', { templatefilter: 'all' }),
    hosts: (await s.admin.request<any>('listHosts', {})).host.map((h: any) => `${h.name} ${h.state}`),
  };
}

test('a backup taken while the server runs gives the same cloud back after later changes', async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  const admin = server.admin;
  const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
  const templateid = (await admin.request<any>('listTemplates', { templatefilter: 'featured' })).template[0]
    .id;
  const offering = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
    .serviceoffering[0].id;
  const diskOffering = (await admin.request<any>('listDiskOfferings', {})).diskoffering.find(
    (d: any) => !d.iscustomized,
  ).id;
  const alice = (
    await admin.request<any>('createAccount', {
      username: 'alice',
      password: 'alice-password',
      email: 'alice@example.com',
      firstname: 'Alice',
      lastname: 'B',
      accounttype: 0,
    })
  ).account;
  // The VMs are Stopped when the backup is taken: the local zone's simulated host forgets running
  // VMs at every restart, restored or not, and that is not what this test is about.
  const vm1 = (
    await admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      name: 'kept',
      startvm: true,
    })
  ).virtualmachine;
  await admin.call('stopVirtualMachine', { id: vm1.id });
  const vm2 = (
    await admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      name: 'gone',
    })
  ).virtualmachine;
  await admin.call('stopVirtualMachine', { id: vm2.id });
  const volume = (
    await admin.call<any>('createVolume', { name: 'data1', zoneid, diskofferingid: diskOffering })
  ).volume;
  await admin.call('attachVolume', { id: volume.id, virtualmachineid: vm1.id });
  const root = (await admin.request<any>('listVolumes', { virtualmachineid: vm1.id, type: 'ROOT' }))
    .volume[0];
  await admin.call('createSnapshot', { volumeid: root.id });
  await admin.request('createSSHKeyPair', { name: 'before' });

  const before = await snapshotOfCloud(server);
  // The server keeps taking requests while the backup runs: lists, and logins, which write (a
  // session and an event each) without changing what is compared. The CLI runs as a child process
  // of its own, so these go on during the copy.
  const file = join(work, 'cloud.db');
  let backingUp = true;
  let requests = 0;
  const busy = (async () => {
    while (backingUp) {
      await CloudStackClient.login(server.api, 'admin', 'password');
      await admin.request('listVirtualMachines', { listall: true });
      requests += 2;
    }
  })();
  const b = await cliAsync(server, 'backup', file);
  backingUp = false;
  await busy;
  assert.ok(requests > 0, 'requests were served while the backup ran');
  assert.equal(b.code, 0, b.err);
  assert.match(b.out, /backed up .* to .*cloud\.db .*2 VMs/);
  assert.match(b.out, /Not in the backup: the secret key file/);
  assert.equal(cli(server, 'backup', file).code, 1, 'an existing backup file is not overwritten');

  // Changes after the backup: a VM expunged, one deployed, an account deleted, a volume detached
  // and another made, a key pair.
  await admin.call('destroyVirtualMachine', { id: vm2.id, expunge: true });
  await admin.call('deployVirtualMachine', { zoneid, templateid, serviceofferingid: offering, name: 'new' });
  await admin.call('detachVolume', { id: volume.id });
  await admin.call('createVolume', { name: 'data2', zoneid, diskofferingid: diskOffering });
  await admin.request('createSSHKeyPair', { name: 'after' });
  await admin.call('deleteAccount', { id: alice.id });
  assert.notDeepEqual(await snapshotOfCloud(server), before);

  const refused = cli(server, 'restore', file);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /heart-beat in the last 30 s: stop it first/);

  await server.stop({ keepData: true });
  const r = cli(server, 'restore', file);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /restored .*cloud\.db/);
  const kept = readdirSync(server.dataDir).filter((f) => f.startsWith('nimbostack.db.before-restore-'));
  assert.equal(kept.length, 1, 'the replaced database is kept beside it');

  server = await startServer({ dataDir: server.dataDir, databaseUrl: server.databaseUrl });
  const restored = await snapshotOfCloud(server);
  assert.deepEqual(restored, before);
});

test('backup and restore refuse what is no Nimbostack database', async () => {
  assert.ok(server);
  const junk = join(work, 'junk.db');
  writeFileSync(junk, 'not a database');
  await server.stop({ keepData: true });
  const r = cli(server, 'restore', junk);
  assert.equal(r.code, 1);
  assert.match(r.err, /not a database|damaged|not a Nimbostack database/);
  const missing = cli(server, 'restore', join(work, 'nothing.db'));
  assert.equal(missing.code, 1);
  assert.match(missing.err, /no backup file/);
  const usage = cli(server, 'restore');
  assert.equal(usage.code, 2);
  assert.ok(existsSync(join(server.dataDir, 'nimbostack.db')), 'a refused restore leaves the database alone');
  server = await startServer({ dataDir: server.dataDir, databaseUrl: server.databaseUrl });
});
