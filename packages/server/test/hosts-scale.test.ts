/**
 * A zone of 2 pods × 2 clusters × 50 simulated hosts, all presented by ONE agent process over one
 * WebSocket, added through the API; listHosts totals per zone, pod and cluster; primary storage of
 * every URL form measured by all of them.
 */
import assert from 'node:assert/strict';
import { type AddressInfo, createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { SIMULATOR_DEFAULTS } from '@nimbostack/agent';
import { createCluster, createPod, createZone, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

const TOKEN = 'scale-test-token';
const PER_CLUSTER = 50;
let server: TestServer;
let agent: TestAgent;

/** A fixed agent port, so the agent finds the server again after it restarts. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const { port } = probe.address() as AddressInfo;
  await new Promise((r) => probe.close(r));
  return port;
}

let env: Record<string, string>;
let zoneid: string;
const clusters: { podid: string; clusterid: string }[] = [];

before(async () => {
  env = { NIMBOSTACK_SEED_LOCAL_ZONE: 'false', NIMBOSTACK_AGENT_PORT: String(await freePort()) };
  server = await startServer({ env });
  await server.admin.request('updateConfiguration', { name: 'ping.interval', value: '1' });
});

after(async () => {
  await agent?.kill();
  await server.stop();
});

test('one agent process presents 200 hosts; addHost adopts them into 4 clusters', async () => {
  agent = startAgent(server.agentUrl, { token: TOKEN, name: 'sim', hosts: 4 * PER_CLUSTER });
  zoneid = await createZone(server.admin, 'scale-zone');
  for (const p of [1, 2]) {
    const podid = await createPod(server.admin, zoneid, `pod-${p}`, 30 + p);
    for (const c of [1, 2])
      clusters.push({ podid, clusterid: await createCluster(server.admin, zoneid, podid, `c-${p}-${c}`) });
  }
  await agent.waitForLog('connected to management server');
  await waitUntil(
    async () => agent.logs.filter((l) => l.includes('waiting to be added')).length >= 200,
    10_000,
    'pending hosts',
  );

  // Four admins' worth of parallel addHost calls, one per cluster.
  await Promise.all(
    clusters.map(async ({ podid, clusterid }, c) => {
      for (let i = 1; i <= PER_CLUSTER; i++) {
        await server.admin.request('addHost', {
          zoneid,
          podid,
          clusterid,
          url: `agent://sim-${c * PER_CLUSTER + i}`,
          username: 'root',
          password: TOKEN,
          hypervisor: 'Simulator',
        });
      }
    }),
  );

  const zone = await server.admin.request<any>('listHosts', { zoneid, pagesize: 500, page: 1 });
  assert.equal(zone.count, 200);
  assert.equal(new Set(zone.host.map((h: any) => h.name)).size, 200);
  assert.ok(zone.host.every((h: any) => h.state === 'Up' && h.resourcestate === 'Enabled'));
  const pod = await server.admin.request<any>('listHosts', { podid: clusters[2].podid });
  assert.equal(pod.count, 100);
  for (const { clusterid } of clusters) {
    const r = await server.admin.request<any>('listHosts', { clusterid, pagesize: 10, page: 2 });
    assert.equal(r.count, PER_CLUSTER);
    assert.equal(r.host.length, 10);
  }
  const totalCores = zone.host.reduce((sum: number, h: any) => sum + h.cpunumber, 0);
  assert.equal(totalCores, 200 * zone.host[0].cpunumber);

  await waitUntil(
    async () => {
      const r = await server.admin.request<any>('listHosts', { zoneid, pagesize: 500, page: 1 });
      return r.host.every((h: any) => h.lastpinged);
    },
    5000,
    'every host pinged',
  );
});

test('pools of every URL form are measured by the 200 hosts that use them; none is unreachable', async () => {
  const admin = server.admin;
  const add = async (name: string, params: Record<string, unknown>) =>
    (await admin.request<any>('createStoragePool', { zoneid, name, ...params })).storagepool;
  const pools = [
    await add('scale-nfs', { ...clusters[0], url: 'nfs://10.30.0.5/export/scale' }),
    await add('scale-dir', { ...clusters[3], url: '/nonexistent/scale-dir' }),
    await add('scale-rbd', {
      scope: 'zone',
      hypervisor: 'Simulator',
      url: 'rbd://admin:QVFC@10.30.0.6/scale',
    }),
  ];
  assert.deepEqual(
    pools.map((p) => p.type),
    ['NetworkFilesystem', 'Filesystem', 'RBD'],
  );
  assert.equal(pools[1].disksizetotal, 0, 'a path the server does not have: unmeasured until the hosts say');
  // Every host is asked about its pools each second: 50 + 50 + 200 questions a round.
  await admin.request('updateConfiguration', { name: 'storage.stats.interval', value: '1000' });
  const t0 = Date.now();
  await waitUntil(
    async () => {
      const listed = (await admin.request<any>('listStoragePools', { zoneid })).storagepool ?? [];
      return (
        listed.length === 3 &&
        listed.every((p: any) => p.disksizetotal === SIMULATOR_DEFAULTS.localStorageBytes)
      );
    },
    15_000,
    'the directory pool measured by its hosts',
  );
  // Two more rounds: had any host failed, its pools would name it by now.
  await new Promise((r) => setTimeout(r, 2_500));
  const listed = (await admin.request<any>('listStoragePools', { zoneid })).storagepool;
  for (const p of listed) assert.equal(p.details, undefined, `${p.name} is reached by every host`);
  assert.equal((await admin.request<any>('listAlerts', { type: 'ALERT.STORAGE.MISC' })).count ?? 0, 0);
  process.stdout.write(`# figure 300 pool checks a round, measured within ${Date.now() - t0} ms\n`);
  await admin.request('updateConfiguration', { name: 'storage.stats.interval', value: '60000' });
});

test('the agent restarting brings all 200 hosts back Up over one new connection', async () => {
  await agent.kill();
  await waitUntil(
    async () => (await server.admin.request<any>('listHosts', { state: 'Disconnected' })).count === 200,
    5000,
    'all Disconnected',
  );
  agent = startAgent(server.agentUrl, { token: TOKEN, name: 'sim', hosts: 200 });
  await waitUntil(
    async () => (await server.admin.request<any>('listHosts', { state: 'Up' })).count === 200,
    10_000,
    'all Up again',
  );
});

test('after the server restarts, the agent reconnects by itself and all 200 hosts are Up again', async () => {
  const { dataDir, databaseUrl } = server;
  await server.stop({ keepData: true });
  server = await startServer({ dataDir, databaseUrl, env });
  // A stopping server leaves its hosts Up (a failover keeps them so), so the hosts count as Up
  // at once: what shows the agent came back is its reconnection, then every host presented again.
  await agent.waitForLog('"reconnected":true', 15_000);
  await waitUntil(
    async () => (await server.admin.request<any>('listHosts', { state: 'Up' })).count === 200,
    15_000,
    'all Up after the server restart',
  );
});
