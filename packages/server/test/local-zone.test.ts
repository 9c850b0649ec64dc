/**
 * The embedded default: a fresh server creates a ready local zone whose host is served by an
 * agent inside the server process; it comes back Up after a restart; the seeding can be turned off.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
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

test('NIMBOSTACK_SEED_LOCAL_ZONE=false leaves a fresh server empty', async () => {
  await server!.stop();
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'false' } });
  assert.deepEqual(await server.admin.request<any>('listZones', {}), {});
  assert.deepEqual(await server.admin.request<any>('listHosts', {}), {});
});
