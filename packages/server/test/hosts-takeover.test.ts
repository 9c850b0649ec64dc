/**
 * Hosts no live management server holds, as a restarted server (or a bulk build straight into the
 * database) leaves them: one that was Up is watched and, silent, escalated; one still Connecting
 * never came Up, so it waits for its agent and is neither escalated nor investigated for HA.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openStore } from '../src/db/connection.ts';
import { createCluster, createPod, createZone, hostByName, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

let server: TestServer | undefined;

after(async () => {
  await server?.stop();
});

test('a taken-over Up host is escalated when silent; a never-connected Connecting host is not', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nimbo-takeover-'));
  server = await startServer({ dataDir, env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'false' } });
  for (const [name, value] of [
    ['ping.interval', '1'],
    ['ping.timeout', '2'],
  ])
    await server.admin.request('updateConfiguration', { name, value });
  const zone = await createZone(server.admin, 'takeover-zone');
  const pod = await createPod(server.admin, zone, 'takeover-pod', 40);
  await createCluster(server.admin, zone, pod, 'takeover-cluster');
  const databaseUrl = server.databaseUrl;
  await server.stop({ keepData: true });
  server = undefined;

  const store = openStore(databaseUrl);
  try {
    const cluster = await store.db
      .selectFrom('clusters')
      .select(['id', 'pod_id', 'zone_id'])
      .where('name', '=', 'takeover-cluster')
      .executeTakeFirstOrThrow();
    const row = (name: string, state: string) => ({
      uuid: randomUUID(),
      name,
      zone_id: cluster.zone_id,
      pod_id: cluster.pod_id,
      cluster_id: cluster.id,
      type: 'Routing',
      hypervisor: 'Simulator',
      hypervisor_version: '1',
      state,
      resource_state: 'Enabled',
      cpu_sockets: 1,
      cpu_cores: 4,
      cpu_speed_mhz: 2000,
      memory_bytes: 8 * 2 ** 30,
      cpu_allocated_mhz: 0,
      memory_allocated_bytes: 0,
      local_storage_bytes: 0,
      private_ip: null,
      agent_version: '1',
      url: `agent://${name}`,
      token_hash: 'x',
      details: null,
      annotation: null,
      ms_id: null,
      last_pinged: state === 'Up' ? Date.now() : null,
      disconnected: null,
      created: Date.now(),
      removed: null,
    });
    await store.db
      .insertInto('hosts')
      .values([row('was-up', 'Up'), row('never-connected', 'Connecting')] as never)
      .execute();
  } finally {
    await store.close();
  }

  server = await startServer({ databaseUrl, dataDir, env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'false' } });
  // The Up host gets the ping timeout to come back, then is Disconnected.
  await waitUntil(
    async () => (await hostByName(server!.admin, 'was-up'))?.state === 'Disconnected',
    15_000,
    'the silent Up host Disconnected',
  );
  const never = await hostByName(server.admin, 'never-connected');
  assert.equal(never.state, 'Connecting');
  assert.ok(never.managementserverid, 'taken over by the new server all the same');
});
