/** Capacity from hosts, pools, image stores and pod ranges; over-provisioning; threshold alerts. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CloudStackClient, CloudStackError } from '@nimbostack/client';
import { randomIds } from '../src/clock.ts';
import { openStore, type Store } from '../src/db/connection.ts';
import { checkCapacity } from '../src/infra/alerts.ts';
import { Settings } from '../src/settings/settings.ts';
import { createAccountAndLogin, startServer, type TestServer, testDatabases } from './harness.ts';

const GiB = 1024 ** 3;
let server: TestServer;
let admin: CloudStackClient;
let store: Store;
let dir: string;
let zoneId: string;
let podId: string;
let clusterId: string;

async function fails(p: Promise<unknown>, code: number, text?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CloudStackError, String(e));
    assert.equal(e.errorcode, code, e.message);
    if (text) assert.match(e.message, text);
    return true;
  });
}

async function internalId(table: 'zones' | 'pods' | 'clusters', uuid: string): Promise<number> {
  return (await store.db.selectFrom(table).select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow())
    .id;
}

/** Runs the checker in this process against the server's database, with its current settings. */
async function runChecker(): Promise<string[]> {
  const settings = new Settings(store);
  await settings.load();
  return checkCapacity({ store, settings, clock: { now: () => Date.now() }, ids: randomIds });
}

function byType(list: any[]): Map<number, any> {
  return new Map(list.map((c) => [c.type, c]));
}

before(async () => {
  // NIMBOSTACK_TEST_DBS=postgres runs this file on PostgreSQL (case-sensitive LIKE there).
  server = await startServer({ db: testDatabases()[0] });
  admin = server.admin;
  store = openStore(server.databaseUrl);
  dir = mkdtempSync(join(tmpdir(), 'nimbo-sec-'));
  zoneId = (
    await admin.request<{ zone: any }>('createZone', {
      name: 'cap-zone',
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
    })
  ).zone.id;
  podId = (
    await admin.request<{ pod: any }>('createPod', {
      zoneid: zoneId,
      name: 'cap-pod',
      gateway: '10.20.0.1',
      netmask: '255.255.255.0',
      startip: '10.20.0.10',
      endip: '10.20.0.59',
    })
  ).pod.id;
  clusterId = (
    await admin.request<{ cluster: any[] }>('addCluster', {
      zoneid: zoneId,
      podid: podId,
      clustername: 'cap-cluster',
      hypervisor: 'KVM',
      clustertype: 'CloudManaged',
    })
  ).cluster[0].id;
  await admin.request('createStoragePool', {
    zoneid: zoneId,
    podid: podId,
    clusterid: clusterId,
    name: 'cap-pool',
    url: 'nfs://10.20.0.5/export/primary',
    capacitybytes: 1000 * GiB,
  });
  await admin.request('addImageStore', { provider: 'NFS', url: dir, zoneid: zoneId });
  const ids = {
    zone_id: await internalId('zones', zoneId),
    pod_id: await internalId('pods', podId),
    cluster_id: await internalId('clusters', clusterId),
  };
  const host = (name: string, resourceState: string) => ({
    uuid: randomIds.uuid(),
    name,
    ...ids,
    type: 'Routing',
    hypervisor: 'KVM',
    state: 'Up',
    resource_state: resourceState,
    cpu_sockets: 1,
    cpu_cores: 4,
    cpu_speed_mhz: 2000,
    memory_bytes: 8 * GiB,
    cpu_allocated_mhz: 2000,
    memory_allocated_bytes: 2 * GiB,
    url: `http://${name}`,
    token_hash: 'x',
    created: Date.now(),
  });
  await store.db
    .insertInto('hosts')
    .values([host('h1', 'Enabled'), host('h2', 'Enabled'), host('h3', 'Maintenance')])
    .execute();
});
after(async () => {
  await store.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('listCapacity', () => {
  test('per zone: CPU and memory from hosts in service, storage from pools, addresses, secondary storage', async () => {
    const r = await admin.request<{ count: number; capacity: any[] }>('listCapacity', { zoneid: zoneId });
    const c = byType(r.capacity);
    assert.deepEqual(
      [...c.keys()].sort((a, b) => a - b),
      [0, 1, 2, 3, 5, 6, 19],
    );
    assert.equal(c.get(1).name, 'CPU');
    assert.equal(c.get(1).capacitytotal, 2 * 4 * 2000);
    assert.equal(c.get(1).capacityused, 4000);
    assert.equal(c.get(1).percentused, '25.00');
    assert.equal(c.get(1).zoneid, zoneId);
    assert.equal(c.get(1).zonename, 'cap-zone');
    assert.equal(c.get(0).capacitytotal, 16 * GiB);
    assert.equal(c.get(0).capacityused, 4 * GiB);
    assert.equal(c.get(19).capacitytotal, 8);
    assert.equal(c.get(2).capacitytotal, 1000 * GiB);
    assert.equal(c.get(3).capacitytotal, 2000 * GiB, 'allocated storage is over-provisioned 2x by default');
    assert.equal(c.get(5).capacitytotal, 50);
    assert.ok(c.get(6).capacitytotal > 0);
  });

  test('over-provisioning factors apply per cluster and per pool', async () => {
    await admin.request('updateConfiguration', {
      name: 'cpu.overprovisioning.factor',
      value: '2',
      clusterid: clusterId,
    });
    await admin.request('updateConfiguration', {
      name: 'mem.overprovisioning.factor',
      value: '1.5',
      clusterid: clusterId,
    });
    const pool = (await admin.request<{ storagepool: any[] }>('listStoragePools', {})).storagepool[0];
    await admin.request('updateConfiguration', {
      name: 'storage.overprovisioning.factor',
      value: '4',
      storageid: pool.id,
    });
    const c = byType((await admin.request<{ capacity: any[] }>('listCapacity', { zoneid: zoneId })).capacity);
    assert.equal(c.get(1).capacitytotal, 32000);
    assert.equal(c.get(0).capacitytotal, 24 * GiB);
    assert.equal(c.get(3).capacitytotal, 4000 * GiB);
    assert.equal(c.get(1).percentused, '12.50');
  });

  test('by cluster and by type; sorted by usage', async () => {
    const r = await admin.request<{ count: number; capacity: any[] }>('listCapacity', {
      clusterid: clusterId,
      type: 1,
    });
    assert.equal(r.count, 1);
    assert.equal(r.capacity[0].clusterid, clusterId);
    assert.equal(r.capacity[0].clustername, 'cap-cluster');
    assert.equal(r.capacity[0].podid, podId);
    const sorted = await admin.request<{ capacity: any[] }>('listCapacity', { sortby: 'usage' });
    const percents = sorted.capacity.map((c) => Number(c.percentused));
    assert.deepEqual(
      percents,
      [...percents].sort((a, b) => b - a),
    );
    await fails(admin.request('listCapacity', { zoneid: '00000000-0000-4000-8000-000000000000' }), 431);
  });

  test('listZones, listPods and listClusters show capacity on request', async () => {
    const z = await admin.request<{ zone: any[] }>('listZones', { id: zoneId, showcapacities: true });
    assert.equal(byType(z.zone[0].capacity).get(1).capacitytotal, 32000);
    const p = await admin.request<{ pod: any[] }>('listPods', { id: podId, showcapacities: true });
    assert.equal(byType(p.pod[0].capacity).get(5).capacitytotal, 50);
    const c = await admin.request<{ cluster: any[] }>('listClusters', {
      id: clusterId,
      showcapacities: true,
    });
    assert.equal(byType(c.cluster[0].capacity).get(0).capacitytotal, 24 * GiB);
    const plain = await admin.request<{ zone: any[] }>('listZones', { id: zoneId });
    assert.equal(plain.zone[0].capacity, undefined);
    await admin.request('updateZone', { id: zoneId, allocationstate: 'Enabled' });
    const { client: tenant } = await createAccountAndLogin(server, { name: 'cap-tenant' });
    const seen = await tenant.request<{ zone: any[] }>('listZones', { id: zoneId, showcapacities: true });
    assert.equal(seen.zone[0].capacity, undefined, 'tenants do not see the provider capacity');
  });

  test('hosts keep their cluster, pod and zone from being deleted or changing hypervisor', async () => {
    await fails(admin.request('deleteCluster', { id: clusterId }), 536, /hosts/);
    await fails(admin.request('deletePod', { id: podId }), 536, /hosts/);
    await fails(admin.request('deleteZone', { id: zoneId }), 536, /hosts/);
    await fails(admin.request('updateCluster', { id: clusterId, hypervisor: 'Simulator' }), 431, /KVM/);
    const c = await admin.request<{ cluster: any[] }>('listClusters', { id: clusterId });
    assert.equal(c.cluster[0].hypervisortype, 'KVM');
  });
});

describe('what hosts see', () => {
  test('listInfrastructure counts the inventory', async () => {
    const r = await admin.request<{ infrastructure: any }>('listInfrastructure', {});
    assert.deepEqual(
      {
        zones: r.infrastructure.zones,
        pods: r.infrastructure.pods,
        clusters: r.infrastructure.clusters,
        hosts: r.infrastructure.hosts,
        cpusockets: r.infrastructure.cpusockets,
        storagepools: r.infrastructure.storagepools,
        imagestores: r.infrastructure.imagestores,
        systemvms: r.infrastructure.systemvms,
      },
      {
        zones: 1,
        pods: 1,
        clusters: 1,
        hosts: 3,
        cpusockets: 3,
        storagepools: 1,
        imagestores: 1,
        systemvms: 0,
      },
    );
    assert.ok(r.infrastructure.managementservers >= 1);
  });

  test('listStoragePools hostid lists the pools a host reaches', async () => {
    const host = (await store.db.selectFrom('hosts').select('uuid').executeTakeFirstOrThrow()).uuid;
    const zoneWide = await admin.request<{ storagepool: any }>('createStoragePool', {
      zoneid: zoneId,
      scope: 'zone',
      hypervisor: 'Simulator',
      name: 'sim-only',
      url: 'nfs://10.20.0.7/export/sim',
      capacitybytes: GiB,
    });
    const r = await admin.request<{ storagepool: any[] }>('listStoragePools', { hostid: host });
    assert.deepEqual(
      r.storagepool.map((p) => p.name),
      ['cap-pool'],
    );
    await admin.request('deleteStoragePool', { id: zoneWide.storagepool.id });
    await fails(admin.request('listStoragePools', { hostid: '00000000-0000-4000-8000-000000000000' }), 431);
  });
});

describe('capacity alerts', () => {
  test('crossing a threshold raises one alert until the condition clears', async () => {
    assert.deepEqual(await runChecker(), []);
    await admin.request('updateConfiguration', {
      name: 'cluster.cpu.allocated.capacity.notificationthreshold',
      value: '0.1',
      clusterid: clusterId,
    });
    const raised = await runChecker();
    assert.equal(raised.length, 1);
    assert.match(
      raised[0],
      /Low Available CPU in cluster cap-cluster pod cap-pod of availability zone cap-zone/,
    );
    assert.deepEqual(await runChecker(), [], 'a persisting condition is reported once');
    const list = await admin.request<{ count: number; alert: any[] }>('listAlerts', {});
    assert.equal(list.count, 1);
    assert.equal(list.alert[0].type, 1);
    assert.equal(list.alert[0].name, 'ALERT.CPU');
    assert.match(list.alert[0].description, /Low Available CPU/);
    assert.match(list.alert[0].sent, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
  });

  test('listAlerts keyword ignores case and takes % and _ literally', async () => {
    for (const keyword of ['low available cpu', 'CAP-CLUSTER'])
      assert.equal((await admin.request<any>('listAlerts', { keyword })).count, 1, keyword);
    for (const keyword of ['cap_cluster', 'cpu%pod'])
      assert.deepEqual(await admin.request('listAlerts', { keyword }), {}, keyword);
  });

  test('storage used above its threshold raises a storage alert', async () => {
    await store.db
      .updateTable('storage_pools')
      .set({ used_bytes: 900 * GiB })
      .execute();
    const raised = await runChecker();
    assert.equal(raised.length, 1);
    assert.match(raised[0], /Low Available Storage/);
    assert.equal((await admin.request<{ count: number }>('listAlerts', { type: '2' })).count, 1);
  });

  test('after the condition clears, crossing again raises a new alert', async () => {
    await admin.request('updateConfiguration', {
      name: 'cluster.cpu.allocated.capacity.notificationthreshold',
      value: '0.9',
      clusterid: clusterId,
    });
    assert.deepEqual(await runChecker(), []);
    await admin.request('updateConfiguration', {
      name: 'cluster.cpu.allocated.capacity.notificationthreshold',
      value: '0.1',
      clusterid: clusterId,
    });
    assert.equal((await runChecker()).length, 1);
    assert.equal((await admin.request<{ count: number }>('listAlerts', { type: 'ALERT.CPU' })).count, 2);
  });

  test('archiveAlerts and deleteAlerts', async () => {
    await fails(admin.request('archiveAlerts', {}), 431);
    await fails(admin.request('deleteAlerts', {}), 431);
    await admin.request('archiveAlerts', { type: '1' });
    const left = await admin.request<{ count: number; alert: any[] }>('listAlerts', {});
    assert.equal(left.count, 1);
    assert.equal(left.alert[0].type, 2);
    await admin.request('deleteAlerts', { ids: left.alert[0].id });
    assert.deepEqual(await admin.request('listAlerts', {}), {});
    const remaining = await store.db.selectFrom('alerts').select('archived').execute();
    assert.deepEqual(
      remaining.map((a) => a.archived),
      [1, 1],
    );
  });

  test('the server runs the checker on its own, every capacity.check.period', async () => {
    await admin.request('updateConfiguration', {
      name: 'cluster.memory.allocated.capacity.notificationthreshold',
      value: '0.1',
      clusterid: clusterId,
    });
    // The period is read at start-up.
    await admin.request('updateConfiguration', { name: 'capacity.check.period', value: '1000' });
    await server.stop({ keepData: true });
    server = await startServer({ dataDir: server.dataDir, databaseUrl: server.databaseUrl });
    admin = server.admin;
    let alerts: any[] = [];
    for (let i = 0; i < 50 && alerts.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      alerts = (await admin.request<{ alert?: any[] }>('listAlerts', { type: '0' })).alert ?? [];
    }
    assert.equal(alerts.length, 1);
    assert.match(alerts[0].description, /Low Available Memory in cluster cap-cluster/);
  });

  test('listAlertTypes', async () => {
    const r = await admin.request<{ alerttype: any[] }>('listAlertTypes', {});
    assert.deepEqual(r.alerttype[0], { type: 0, name: 'ALERT.MEMORY' });
    assert.ok(r.alerttype.some((t) => t.type === 25 && t.name === 'ALERT.STORAGE.LOCAL'));
  });
});
