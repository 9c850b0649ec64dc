/**
 * Capacity at scale: a zone of P pods × C clusters with N hosts and one pool per cluster, then the
 * time of listCapacity (by zone, by cluster), listZones/listClusters with showcapacities, and one
 * run of the capacity checker. Capacity is computed live from the inventory, so this is the cost
 * an operator's dashboard pays on every refresh.
 *   node --import tsx bench/capacity.ts [hosts=10000] [pods=10] [clustersPerPod=10]
 */
import { randomUUID } from 'node:crypto';
import { randomIds } from '../packages/server/src/clock.ts';
import { openStore } from '../packages/server/src/db/connection.ts';
import { checkCapacity } from '../packages/server/src/infra/alerts.ts';
import { Settings } from '../packages/server/src/settings/settings.ts';
import { startServer } from '../packages/server/test/harness.ts';

const HOSTS = Number(process.argv[2] ?? 10_000);
const PODS = Number(process.argv[3] ?? 10);
const CLUSTERS_PER_POD = Number(process.argv[4] ?? 10);
const RUNS = 5;
const GiB = 1024 ** 3;

async function timed(label: string, fn: () => Promise<unknown>): Promise<void> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(44)} median ${times[RUNS >> 1].toFixed(1)} ms   max ${times[RUNS - 1].toFixed(1)} ms`,
  );
}

const server = await startServer();
const store = openStore(server.databaseUrl);
try {
  const admin = server.admin;
  const zoneid = (
    await admin.request<{ zone: { id: string } }>('createZone', {
      name: 'bench',
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
    })
  ).zone.id;
  const clusters: { uuid: string; podUuid: string }[] = [];
  for (let p = 0; p < PODS; p++) {
    const podid = (
      await admin.request<{ pod: { id: string } }>('createPod', {
        zoneid,
        name: `pod-${p}`,
        gateway: `10.${p}.0.1`,
        netmask: '255.255.0.0',
        startip: `10.${p}.0.10`,
        endip: `10.${p}.255.250`,
      })
    ).pod.id;
    for (let c = 0; c < CLUSTERS_PER_POD; c++) {
      const cluster = (
        await admin.request<{ cluster: { id: string }[] }>('addCluster', {
          zoneid,
          podid,
          clustername: `cluster-${p}-${c}`,
          hypervisor: 'Simulator',
          clustertype: 'CloudManaged',
        })
      ).cluster[0];
      await admin.request('createStoragePool', {
        zoneid,
        podid,
        clusterid: cluster.id,
        name: `pool-${p}-${c}`,
        url: `nfs://10.${p}.0.5/export/${c}`,
        capacitybytes: 10 * 1024 * GiB,
      });
      clusters.push({ uuid: cluster.id, podUuid: podid });
    }
  }
  const ids = await store.db.selectFrom('clusters').select(['id', 'pod_id', 'zone_id']).execute();
  const t0 = performance.now();
  for (let start = 0; start < HOSTS; start += 500) {
    const rows = [];
    for (let n = start; n < Math.min(HOSTS, start + 500); n++) {
      const c = ids[n % ids.length];
      rows.push({
        uuid: randomUUID(),
        name: `host-${n}`,
        zone_id: c.zone_id,
        pod_id: c.pod_id,
        cluster_id: c.id,
        type: 'Routing',
        hypervisor: 'Simulator',
        state: 'Up',
        resource_state: 'Enabled',
        cpu_sockets: 2,
        cpu_cores: 32,
        cpu_speed_mhz: 2400,
        memory_bytes: 256 * GiB,
        cpu_allocated_mhz: (n % 17) * 2400,
        memory_allocated_bytes: (n % 13) * 8 * GiB,
        url: `sim://host-${n}`,
        token_hash: 'bench',
        created: Date.now(),
      });
    }
    await store.db.insertInto('hosts').values(rows).execute();
  }
  console.log(
    `inventory: ${HOSTS} hosts, ${PODS} pods, ${ids.length} clusters and pools (hosts inserted in ${(performance.now() - t0).toFixed(0)} ms)`,
  );

  await timed('listCapacity zoneid', () => admin.request('listCapacity', { zoneid }));
  await timed('listCapacity clusterid', () => admin.request('listCapacity', { clusterid: clusters[0].uuid }));
  await timed('listCapacity sortby=usage (all zones)', () =>
    admin.request('listCapacity', { sortby: 'usage' }),
  );
  await timed('listZones showcapacities=true', () => admin.request('listZones', { showcapacities: true }));
  await timed('listClusters showcapacities=true (all)', () =>
    admin.request('listClusters', { showcapacities: true }),
  );
  await timed('listInfrastructure', () => admin.request('listInfrastructure', {}));
  const settings = new Settings(store);
  await settings.load();
  await timed('capacity checker run', () =>
    checkCapacity({ store, settings, clock: { now: () => Date.now() }, ids: randomIds }),
  );
} finally {
  await store.close();
  await server.stop();
}
