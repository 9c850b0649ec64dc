/**
 * Primary storage operations on simulator hosts through the real server (issue 24): maintenance
 * (PrepareForMaintenance → Maintenance, the pool's running VMs stopped and started again on
 * cancel, ErrorInMaintenance when a stop fails, upstream's refusals), capacity measured by the
 * hosts (getPoolStats) for NFS, RBD and directory pools, and a host that cannot reach its pools
 * (alert, planner avoidance for its cluster, shown in listStoragePools, cleared when it is back).
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { emptyQcow2 } from '../src/storage/images.ts';
import { createCluster, createPod, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

const GiB = 2 ** 30;
/** What each simulated host says its disk is: the size the simulator gives every pool. */
const SIM_DISK = 800 * GiB;
/** The size given for p1b and pz. */
const GIVEN = 2 ** 40;
let server: TestServer;
let agent: TestAgent;
let zoneid: string;
let templateid: string;
const hosts: Record<string, any> = {};
const pools: Record<string, any> = {};
const offerings: Record<string, string> = {};
const fails = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.message, text);
  return true;
};

before(async () => {
  server = await startServer();
  const admin = server.admin;
  zoneid = (
    await admin.request<any>('createZone', {
      name: 'pz',
      networktype: 'Basic',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      securitygroupenabled: true,
    })
  ).zone.id;
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  const pod = await createPod(admin, zoneid, 'ppod', 79);
  const c1 = await createCluster(admin, zoneid, pod, 'pc1');
  const c2 = await createCluster(admin, zoneid, pod, 'pc2');
  await admin.request('createVlanIpRange', {
    zoneid,
    podid: pod,
    gateway: '10.79.128.1',
    netmask: '255.255.128.0',
    startip: '10.79.128.10',
    endip: '10.79.129.250',
    forvirtualnetwork: false,
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'pstore',
    provider: 'NFS',
    url: `file://${server.dataDir}/pstore`,
  });
  agent = startAgent(server.agentUrl, {
    token: 'pool-token',
    name: 'ps',
    hosts: 2,
    args: ['--local-storage', String(SIM_DISK)],
  });
  await agent.waitForLog('connected to management server');
  for (const [i, cluster] of [
    [1, c1],
    [2, c2],
  ] as const) {
    await waitUntil(async () => agent.logs.some((l) => l.includes(`ps-${i}`)), 10_000, `host ps-${i}`);
    await admin.request('addHost', {
      zoneid,
      podid: pod,
      clusterid: cluster,
      url: `agent://ps-${i}`,
      username: 'root',
      password: 'pool-token',
      hypervisor: 'Simulator',
    });
  }
  await waitUntil(
    async () => (await admin.request<any>('listHosts', { zoneid, state: 'Up' })).count === 2,
    15_000,
    'two hosts Up',
  );
  for (const h of (await admin.request<any>('listHosts', { zoneid })).host) hosts[h.name] = h;
  // Every URL form the simulator takes: a directory, NFS, RBD. p1b and pz have a size given, which
  // stays; p1 (a directory the server cannot see: 0 at first) and p2 are measured by their hosts.
  const add = async (name: string, params: Record<string, unknown>) => {
    pools[name] = (await admin.request<any>('createStoragePool', { zoneid, name, ...params })).storagepool;
  };
  await add('p1', { podid: pod, clusterid: c1, url: `file://${server.dataDir}/p1`, tags: 'p1' });
  await add('p1b', {
    podid: pod,
    clusterid: c1,
    url: 'nfs://10.79.0.5/export/p1b',
    tags: 'p1b',
    capacitybytes: GIVEN,
  });
  await add('p2', { podid: pod, clusterid: c2, url: 'nfs://10.79.0.6/export/p2', tags: 'p2' });
  await add('pz', {
    scope: 'zone',
    hypervisor: 'Simulator',
    url: 'rbd://admin:QVFCemRBMWw=@10.79.0.7/vms',
    tags: 'pz',
    capacitybytes: GIVEN,
  });
  assert.equal(pools.p1.disksizetotal, 0, 'the server cannot measure a directory only the hosts have');
  assert.equal(pools.p2.disksizetotal, SIM_DISK, 'an NFS pool is measured by a host when it is added');
  await admin.request('updateConfiguration', { name: 'storage.stats.interval', value: '1000' });
  await waitUntil(
    async () => (await pool('p1')).disksizetotal === SIM_DISK,
    15_000,
    'p1 measured by its host',
  );
  for (const tag of ['p1', 'p1b', 'p2', 'pz'])
    offerings[tag] = (
      await admin.request<any>('createServiceOffering', {
        name: `on-${tag}`,
        displaytext: `on ${tag}`,
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
        tags: tag,
      })
    ).serviceoffering.id;
  templateid = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
    20_000,
    'the built-in template in the zone',
  );
});
after(async () => {
  await agent?.kill();
  await server?.stop();
});

const pool = async (name: string) =>
  (await server.admin.request<any>('listStoragePools', { id: pools[name].id })).storagepool[0];
const vmState = async (id: string) =>
  (await server.admin.request<any>('listVirtualMachines', { id, listall: true })).virtualmachine[0].state;
const deploy = async (tag: string, extra: Record<string, unknown> = {}) =>
  (
    await server.admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offerings[tag],
      ...extra,
    })
  ).virtualmachine;

describe('maintenance', () => {
  test('running VMs are stopped, nothing new is placed, cancel starts them again', async () => {
    const admin = server.admin;
    const running = await deploy('p1');
    const stopped = await deploy('p1');
    await admin.call('stopVirtualMachine', { id: stopped.id });
    const elsewhere = await deploy('p2');
    const m = await admin.call<any>('enableStorageMaintenance', { id: pools.p1.id });
    assert.equal(m.storagepool.state, 'Maintenance');
    assert.equal(await vmState(running.id), 'Stopped', 'the running VM on the pool was stopped');
    assert.equal(await vmState(elsewhere.id), 'Running', 'a VM on another pool is left alone');
    // Refusals while in maintenance: nothing changes.
    await assert.rejects(
      admin.request('enableStorageMaintenance', { id: pools.p1.id }),
      fails(431, /Maintenance/),
    );
    await assert.rejects(admin.call('startVirtualMachine', { id: running.id }), fails(431, /maintenance/));
    assert.equal(await vmState(running.id), 'Stopped');
    await assert.rejects(deploy('p1'), fails(533, /tagged p1/));
    await assert.rejects(admin.request('updateStoragePool', { id: pools.p1.id, enabled: true }), fails(431));

    const c = await admin.call<any>('cancelStorageMaintenance', { id: pools.p1.id });
    assert.equal(c.storagepool.state, 'Up');
    assert.equal(await vmState(running.id), 'Running', 'the VM maintenance stopped is started again');
    assert.equal(await vmState(stopped.id), 'Stopped', 'a VM that was already stopped stays stopped');
    // Upstream: cancelling a pool that is Up is a 530; maintenance of a Disabled pool a 431.
    await assert.rejects(admin.call('cancelStorageMaintenance', { id: pools.p1.id }), fails(530, /Up/));
    await admin.request('updateStoragePool', { id: pools.p1b.id, enabled: false });
    await assert.rejects(
      admin.request('enableStorageMaintenance', { id: pools.p1b.id }),
      fails(431, /Disabled/),
    );
    await admin.request('updateStoragePool', { id: pools.p1b.id, enabled: true });
    for (const vm of [running, stopped, elsewhere])
      await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('a stop that fails leaves ErrorInMaintenance; maintenance can be entered again from there', async () => {
    const admin = server.admin;
    const vm = await deploy('p1');
    await admin.request('configureSimulator', {
      name: 'stopVm',
      value: 'result:fail;message:simulated stuck guest',
      count: 1,
      hostid: hosts['ps-1'].id,
    });
    await assert.rejects(
      admin.call('enableStorageMaintenance', { id: pools.p1.id }),
      fails(530, /simulated stuck guest/),
    );
    assert.equal((await pool('p1')).state, 'ErrorInMaintenance');
    assert.equal(await vmState(vm.id), 'Running');
    await assert.rejects(deploy('p1'), fails(533), 'a pool in ErrorInMaintenance gets no new volumes');
    const m = await admin.call<any>('enableStorageMaintenance', { id: pools.p1.id });
    assert.equal(m.storagepool.state, 'Maintenance');
    assert.equal(await vmState(vm.id), 'Stopped');
    await admin.call('cancelStorageMaintenance', { id: pools.p1.id });
    assert.equal(await vmState(vm.id), 'Running');
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('one pool of a cluster prepares at a time (530)', async () => {
    const admin = server.admin;
    const vm = await deploy('p1');
    // The stop takes 3 s: the pool stays PrepareForMaintenance meanwhile.
    await admin.request('configureSimulator', {
      name: 'stopVm',
      value: 'wait:3000',
      count: 1,
      hostid: hosts['ps-1'].id,
    });
    const first = await admin.request<any>('enableStorageMaintenance', { id: pools.p1.id });
    await waitUntil(async () => (await pool('p1')).state === 'PrepareForMaintenance', 5_000, 'preparing');
    await assert.rejects(
      admin.call('enableStorageMaintenance', { id: pools.p1b.id }),
      fails(530, /Only one storage pool/),
    );
    assert.equal((await pool('p1b')).state, 'Up');
    await assert.rejects(admin.call('cancelStorageMaintenance', { id: pools.p1.id }), fails(530));
    const done = await admin.waitForJob(first.jobid);
    assert.equal((done.jobresult as any).storagepool.state, 'Maintenance');
    await admin.call('cancelStorageMaintenance', { id: pools.p1.id });
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});

describe('what the hosts measure and reach', () => {
  test('disksizetotal and disksizeused come from the hosts, and listCapacity uses them', async () => {
    const admin = server.admin;
    const vms = [await deploy('p1'), await deploy('p2'), await deploy('pz')];
    const usedOn = async (name: string) => {
      const volumes =
        (await admin.request<any>('listVolumes', { storageid: pools[name].id, listall: true })).volume ?? [];
      return volumes.reduce((n: number, v: any) => n + Number(v.size), 0);
    };
    for (const name of ['p1', 'p1b', 'p2', 'pz']) {
      const want = await usedOn(name);
      const size = name === 'p1b' || name === 'pz' ? GIVEN : SIM_DISK;
      const seen = await waitUntil(
        async () => {
          const p = await pool(name);
          return p.disksizetotal === size && p.disksizeused === want ? p : undefined;
        },
        15_000,
        `${name} measured (${want} bytes used of ${size})`,
      );
      assert.equal(seen.capacitybytes, size);
    }
    assert.ok((await pool('p1')).disksizeused > 0, 'a pool with a VM uses something');
    const cap = (await admin.request<any>('listCapacity', { zoneid, type: 2 })).capacity[0];
    assert.equal(cap.capacitytotal, 2 * SIM_DISK + 2 * GIVEN);
    let used = 0;
    for (const name of ['p1', 'p1b', 'p2', 'pz']) used += (await pool(name)).disksizeused;
    assert.equal(cap.capacityused, used);
    for (const vm of vms) await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('a host that cannot reach its pools: alert, shown, avoided for its cluster, until it is back', async () => {
    const admin = server.admin;
    await admin.request('configureSimulator', {
      name: 'getPoolStats',
      value: 'result:fail;message:simulated mount lost',
      hostid: hosts['ps-1'].id,
    });
    for (const name of ['p1', 'p1b', 'pz'])
      await waitUntil(
        async () => (await pool(name)).details?.unreachablefrom === 'ps-1',
        15_000,
        `${name} shown unreachable from ps-1`,
      );
    assert.equal((await pool('p2')).details, undefined, "ps-1 does not use ps-2's cluster pool");
    const alerts = (await admin.request<any>('listAlerts', { type: 'ALERT.STORAGE.MISC' })).alert;
    const subjects = alerts.map((a: any) => a.description ?? a.subject).join('\n');
    for (const name of ['p1', 'p1b', 'pz'])
      assert.match(
        subjects,
        new RegExp(`ps-1 cannot reach primary storage pool ${name}: .*simulated mount lost`),
      );
    const count = alerts.length;
    // Cluster pc1 has no pool its host reaches: nothing is placed there.
    await assert.rejects(deploy('p1'), fails(533, /reached by the hosts of the cluster/));
    await assert.rejects(deploy('pz', { hostid: hosts['ps-1'].id }), fails(533));
    // The zone-wide pool still serves the other cluster.
    const vm = await deploy('pz');
    assert.equal(vm.hostid, hosts['ps-2'].id);
    // A failure that persists is one alert, not one per round.
    await new Promise((r) => setTimeout(r, 2_500));
    assert.equal((await admin.request<any>('listAlerts', { type: 'ALERT.STORAGE.MISC' })).count, count);

    await admin.request('configureSimulator', {
      name: 'getPoolStats',
      value: 'result:success',
      hostid: hosts['ps-1'].id,
    });
    for (const name of ['p1', 'p1b', 'pz'])
      await waitUntil(async () => (await pool(name)).details === undefined, 15_000, `${name} reached again`);
    const back = await deploy('p1');
    assert.equal(back.hostid, hosts['ps-1'].id);
    for (const v of [vm, back]) await admin.call('destroyVirtualMachine', { id: v.id, expunge: true });
  });
});

describe('secondary storage', () => {
  let files: Server;
  before(async () => {
    const image = emptyQcow2(GiB);
    files = createServer((_req, res) => res.writeHead(200, { 'content-length': image.length }).end(image));
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  });
  after(() => files?.close());

  const holds = (dir: string, id: string) =>
    existsSync(dir) && readdirSync(dir, { recursive: true }).some((f) => String(f).includes(id));

  test('updateImageStore readonly=true: no new template goes there; listSwifts and listImageStores fields', async () => {
    const admin = server.admin;
    const second = (
      await admin.request<any>('addImageStore', {
        zoneid,
        name: 'pstore2',
        provider: 'NFS',
        url: `file://${server.dataDir}/pstore2`,
      })
    ).imagestore;
    const first = (await admin.request<any>('listImageStores', { name: 'pstore' })).imagestore[0];
    const ro = (await admin.request<any>('updateImageStore', { id: first.id, readonly: true })).imagestore;
    assert.equal(ro.readonly, true);
    for (const field of ['id', 'name', 'zoneid', 'zonename', 'url', 'protocol', 'providername', 'scope'])
      assert.ok(ro[field] !== undefined, `listImageStores shows ${field}`);
    assert.deepEqual(
      (await admin.request<any>('listImageStores', { readonly: true })).imagestore.map((x: any) => x.id),
      [first.id],
    );
    const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
    const register = async (name: string) => {
      const tpl = (
        await admin.request<any>('registerTemplate', {
          name,
          displaytext: name,
          url: `http://127.0.0.1:${(files.address() as AddressInfo).port}/${name}.qcow2`,
          format: 'QCOW2',
          hypervisor: 'Simulator',
          zoneid,
          ostypeid,
        })
      ).template[0];
      await waitUntil(
        async () =>
          (await admin.request<any>('listTemplates', { templatefilter: 'self', id: tpl.id })).template?.[0]
            ?.isready,
        20_000,
        `template ${name}`,
      );
      return tpl.id as string;
    };
    // The older store would be picked first (docs/storage.md's order); read-only, it is passed over.
    const t1 = await register('while-ro');
    assert.ok(holds(join(server.dataDir, 'pstore2'), t1), 'the template went to the writable store');
    assert.ok(!holds(join(server.dataDir, 'pstore'), t1), 'nothing new on the read-only store');
    await admin.request('updateImageStore', { id: first.id, readonly: false });
    const t2 = await register('after-ro');
    assert.ok(holds(join(server.dataDir, 'pstore'), t2), 'writable again, the older store is first again');
    // No Swift store in this zone: listSwifts answers an empty list (the Swift suite lists one).
    assert.equal((await admin.request<any>('listSwifts', {})).count ?? 0, 0);
    for (const id of [t1, t2]) await admin.request('deleteTemplate', { id });
    await admin.request('deleteImageStore', { id: second.id });
  });
});

describe('a server stopped in the middle of a round', () => {
  test('the questions it leaves unanswered do not record hosts as unable to reach their pools', async () => {
    const admin = server.admin;
    // Each answer takes 3 s and a round starts every second: the server stops while its hosts are asked.
    for (const name of ['ps-1', 'ps-2'])
      await admin.request('configureSimulator', {
        name: 'getPoolStats',
        value: 'wait:3000',
        hostid: hosts[name].id,
      });
    await new Promise((r) => setTimeout(r, 1_500));
    await server.stop({ keepData: true });
    // Recorded, the pools were kept from the hosts' clusters after a restart until the next round.
    const db = new Database(server.databaseUrl.replace(/^sqlite:/, ''), { readonly: true });
    try {
      const row = db.prepare('select count(*) as n from storage_pool_hosts where reachable = 0').get() as {
        n: number;
      };
      assert.equal(row.n, 0);
    } finally {
      db.close();
    }
  });
});
