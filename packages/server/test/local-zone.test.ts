/**
 * The embedded default: a fresh server creates a ready local zone whose host is served by an
 * agent inside the server process; it comes back Up after a restart; the seeding can be turned off.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

let server: TestServer | undefined;

after(async () => {
  await server?.stop();
});

test('a fresh server creates a local zone with a simulated host, primary and secondary storage', async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  const zones = await server.admin.request<any>('listZones', {});
  assert.equal(zones.count, 1);
  const zone = zones.zone[0];
  assert.equal(zone.name, 'local');
  assert.equal(zone.allocationstate, 'Enabled');
  const hosts = await server.admin.request<any>('listHosts', { zoneid: zone.id });
  assert.equal(hosts.count, 1);
  assert.equal(hosts.host[0].name, 'local-host');
  assert.equal(hosts.host[0].state, 'Up');
  assert.equal(hosts.host[0].hypervisor, 'Simulator');
  assert.equal(hosts.host[0].clustername, 'local-cluster');
  const pools = await server.admin.request<any>('listStoragePools', { zoneid: zone.id });
  assert.equal(pools.storagepool[0].name, 'local-primary');
  assert.equal(pools.storagepool[0].path, join(server.dataDir, 'primary'));
  const stores = await server.admin.request<any>('listImageStores', { zoneid: zone.id });
  assert.equal(stores.imagestore[0].name, 'local-secondary');
  assert.ok(existsSync(join(server.dataDir, 'secondary')));
  assert.ok(server.logs.some((l) => l.includes('"created the local zone"')));
});

/** The server's stderr from a start that failed (the harness puts it after the exit code). */
async function failedStart(opts: Parameters<typeof startServer>[0]): Promise<string> {
  const e = await startServer(opts).then(
    async (s) => {
      await s.stop();
      throw new Error('the server started');
    },
    (err: Error) => err,
  );
  return e.message;
}

for (const [kind, template, key] of [
  ['kvm', 'no-template.qcow2', 'NIMBOSTACK_KVM_TEMPLATE'],
  ['lxc', 'no-template.tar.gz', 'NIMBOSTACK_LXC_TEMPLATE'],
] as const)
  test(`NIMBOSTACK_HYPERVISOR=${kind} on a machine without the test template: one line naming setup:host`, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), `nimbo-${kind}-missing-`));
    try {
      const out = await failedStart({
        dataDir,
        env: {
          NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
          NIMBOSTACK_HYPERVISOR: kind,
          [key]: join(dataDir, template),
        },
      });
      assert.match(out, /^server exited with 1\n/);
      const stderr = out
        .split('\n')
        .slice(1)
        .filter((l) => l.trim() !== '' && !l.startsWith('{'));
      assert.equal(stderr.length, 1, out);
      assert.match(
        stderr[0]!,
        new RegExp(
          `^nimbostack: NIMBOSTACK_HYPERVISOR=${kind}: .*(needs root|${template.replace(/\./g, '\\.')} is missing).*npm run setup:host`,
        ),
      );
      assert.equal(existsSync(join(dataDir, 'local-agent.json')), false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

test('after a restart the local host reconnects; nothing is created twice', async () => {
  const { dataDir, databaseUrl } = server!;
  await server!.stop({ keepData: true });
  server = await startServer({ dataDir, databaseUrl, env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  assert.equal((await server.admin.request<any>('listZones', {})).count, 1);
  await waitUntil(
    async () =>
      (await server!.admin.request<any>('listHosts', { name: 'local-host' })).host?.[0].state === 'Up',
    8000,
    'local host Up',
  );
  assert.equal((await server.admin.request<any>('listHosts', {})).count, 1);
});

test('a simulator local zone refuses to come back as a KVM one', {
  skip:
    process.getuid?.() !== 0 || !existsSync('/usr/bin/qemu-system-x86_64') ? 'needs root and QEMU' : false,
}, async () => {
  const { dataDir, databaseUrl } = server!;
  await server!.stop({ keepData: true });
  const out = await failedStart({
    dataDir,
    databaseUrl,
    env: {
      NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
      NIMBOSTACK_HYPERVISOR: 'kvm',
      // Any existing file passes the template check; the data directory's zone decides.
      NIMBOSTACK_KVM_TEMPLATE: join(dataDir, 'local-agent.json'),
    },
  });
  assert.match(
    out,
    /nimbostack: the local zone in .* has a simulator host, not kvm: start with NIMBOSTACK_HYPERVISOR=simulator/,
  );
  server = await startServer({ dataDir, databaseUrl, env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
});

test('NIMBOSTACK_SEED_LOCAL_ZONE=false leaves a fresh server empty', async () => {
  await server!.stop();
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'false' } });
  assert.deepEqual(await server.admin.request<any>('listZones', {}), {});
  assert.deepEqual(await server.admin.request<any>('listHosts', {}), {});
});
