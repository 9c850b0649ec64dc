/**
 * migrateVolume between pools of different types on simulator hosts (the real-QEMU side is
 * storage-migrate.test.ts): a Running VM's ROOT disk moved live (livemigrate=true) from a
 * directory pool to an NFS pool with the VM still Running and the pools' allocations moved; every
 * refusal changing nothing: no livemigrate, the same pool, a pool of another zone, a pool of
 * another cluster than the VM's host, a pool without the offering's storage tags (431), a pool
 * without room (533), a volume being snapshotted (431); migrateVirtualMachineWithVolume moving a
 * Running VM's disks live, and refusing a host and pools at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createCluster, createPod, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

let server: TestServer;
let agent: TestAgent;
let zoneid: string;
let templateid: string;
let gold: string;
let customDisk: string;
const pool: Record<string, string> = {};
const is = (code: number) => (e: any) => e.errorcode === code;

async function createPool(name: string, extra: Record<string, unknown>) {
  const r = await server.admin.request<any>('createStoragePool', {
    name,
    capacitybytes: 2 ** 40,
    ...extra,
  });
  pool[name] = r.storagepool.id;
  return r.storagepool;
}

before(async () => {
  server = await startServer();
  const admin = server.admin;
  const zone = async (name: string) => {
    const id = (
      await admin.request<any>('createZone', {
        name,
        networktype: 'Basic',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
        securitygroupenabled: true,
      })
    ).zone.id;
    await admin.request('updateZone', { id, allocationstate: 'Enabled' });
    return id;
  };
  zoneid = await zone('movez');
  const pod = await createPod(admin, zoneid, 'mpod', 67);
  const clusterA = await createCluster(admin, zoneid, pod, 'mcluster-a');
  const clusterB = await createCluster(admin, zoneid, pod, 'mcluster-b');
  await admin.request('createVlanIpRange', {
    zoneid,
    podid: pod,
    gateway: '10.67.128.1',
    netmask: '255.255.128.0',
    startip: '10.67.128.10',
    endip: '10.67.129.250',
    forvirtualnetwork: false,
  });
  const inA = { zoneid, podid: pod, clusterid: clusterA };
  await createPool('dir-a', { ...inA, url: `file://${server.dataDir}/dir-a`, tags: 'gold' });
  await createPool('plain-a', { ...inA, url: `file://${server.dataDir}/plain-a` });
  await createPool('dir-b', {
    zoneid,
    podid: pod,
    clusterid: clusterB,
    url: `file://${server.dataDir}/dir-b`,
    tags: 'gold',
  });
  const other = await zone('movez2');
  const pod2 = await createPod(admin, other, 'mpod2', 68);
  const cluster2 = await createCluster(admin, other, pod2, 'mcluster-2');
  await createPool('far', {
    zoneid: other,
    podid: pod2,
    clusterid: cluster2,
    url: `file://${server.dataDir}/far`,
    tags: 'gold',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'mstore',
    provider: 'NFS',
    url: `file://${server.dataDir}/mstore`,
  });
  agent = startAgent(server.agentUrl, { token: 'move-token', name: 'm', hosts: 2 });
  await agent.waitForLog('connected to management server');
  for (const [i, cluster] of [
    [1, clusterA],
    [2, clusterB],
  ] as const) {
    await waitUntil(async () => agent.logs.some((l) => l.includes(`m-${i}`)), 10_000, `host m-${i}`);
    await admin.request('addHost', {
      zoneid,
      podid: pod,
      clusterid: cluster,
      url: `agent://m-${i}`,
      username: 'root',
      password: 'move-token',
      hypervisor: 'Simulator',
    });
  }
  templateid = (
    await waitUntil(
      async () =>
        (
          await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })
        ).template?.find((t: any) => t.isready),
      30_000,
      'the built-in template',
    )
  ).id;
  gold = (
    await admin.request<any>('createServiceOffering', {
      name: 'gold-small',
      displaytext: 'ROOT on gold pools',
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
      tags: 'gold',
    })
  ).serviceoffering.id;
  customDisk = (
    await admin.request<any>('createDiskOffering', {
      name: 'gold-custom',
      displaytext: 'custom size on gold pools',
      customized: true,
      tags: 'gold',
    })
  ).diskoffering.id;
});

after(async () => {
  await agent?.kill();
  await server?.stop();
});

const volume = async (id: string) =>
  (await server.admin.request<any>('listVolumes', { listall: true, id })).volume[0];
const allocated = async () => {
  const r = await server.admin.request<any>('listStoragePools', {});
  return Object.fromEntries(r.storagepool.map((p: any) => [p.id, Number(p.disksizeallocated)]));
};

describe('migrateVolume between pool types', () => {
  test("a Running VM's ROOT disk moves live to an NFS pool; refusals change nothing", async () => {
    const admin = server.admin;
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: gold,
        diskofferingid: customDisk,
        size: 3,
        name: 'mover',
        // Cluster A's host: dir-b (cluster B) is the pool its host does not reach.
        hostid: (await admin.request<any>('listHosts', { name: 'm-1' })).host[0].id,
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    const root = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    const data = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'DATADISK' }))
      .volume[0];
    assert.equal(root.storageid, pool['dir-a'], 'the only gold pool of the cluster');
    // Created after the deploy, so that the disks were placed on the directory pool.
    const nfs = await createPool('nfs-a', {
      zoneid,
      podid: vm.podid ?? (await admin.request<any>('listPods', { zoneid })).pod[0].id,
      clusterid: (await admin.request<any>('listHosts', { id: vm.hostid })).host[0].clusterid,
      url: 'nfs://192.0.2.10/export/vms',
      tags: 'gold',
    });
    assert.equal(nfs.type, 'NetworkFilesystem');
    const move = (storageid: string, extra: Record<string, unknown> = {}) =>
      admin.request('migrateVolume', { volumeid: root.id, storageid, ...extra });

    const before = await allocated();
    // Running without livemigrate, the same pool, another zone, another cluster, missing tags.
    await assert.rejects(move(nfs.id), is(431), 'Running, no livemigrate');
    await assert.rejects(move(pool['dir-a'], { livemigrate: true }), is(431), 'the same pool');
    await assert.rejects(move(pool.far, { livemigrate: true }), is(431), 'a pool of another zone');
    await assert.rejects(
      move(pool['dir-b'], { livemigrate: true }),
      (e: any) => e.errorcode === 431 && /another cluster|reaches both/.test(e.errortext),
      "a pool the VM's host does not reach",
    );
    await assert.rejects(
      move(pool['plain-a'], { livemigrate: true }),
      (e: any) => e.errorcode === 431 && /storage tags/.test(e.errortext) && /gold/.test(e.errortext),
      'a pool without the storage tag gold',
    );
    // No room: a gold pool of 1 GiB for a 3 GiB disk.
    const tiny = await createPool('tiny-a', {
      zoneid,
      podid: nfs.podid,
      clusterid: nfs.clusterid,
      url: `file://${server.dataDir}/tiny-a`,
      tags: 'gold',
      capacitybytes: 2 ** 30,
    });
    await assert.rejects(
      admin.call('migrateVolume', { volumeid: data.id, storageid: tiny.id, livemigrate: true }),
      is(533),
    );
    // A volume being snapshotted: the snapshot's host call is held for 3 s.
    await admin.request('configureSimulator', {
      name: 'createSnapshot',
      value: 'wait:3000',
      count: 1,
      hostid: vm.hostid,
    });
    const snapJob = await admin.request<any>('createSnapshot', { volumeid: data.id });
    await waitUntil(
      async () =>
        (await admin.request<any>('listSnapshots', { volumeid: data.id })).snapshot?.find(
          (s: any) => s.state === 'Creating',
        ),
      10_000,
      'the snapshot to be Creating',
    );
    await assert.rejects(
      admin.request('migrateVolume', { volumeid: data.id, storageid: nfs.id, livemigrate: true }),
      (e: any) => e.errorcode === 431 && /snapshot/.test(e.errortext),
    );
    assert.equal((await admin.waitForJob(snapJob.jobid)).jobstatus, 1);
    const unchanged = await allocated();
    assert.equal(unchanged[pool['dir-a']], before[pool['dir-a']], 'nothing moved');
    assert.equal(unchanged[tiny.id], 0, 'nothing is left reserved on the pool without room');
    assert.equal((await volume(root.id)).storageid, pool['dir-a']);

    // Live: the VM stays Running, the volume is on the NFS pool, the allocations moved.
    const moved = (
      await admin.call<any>('migrateVolume', { volumeid: root.id, storageid: nfs.id, livemigrate: true })
    ).volume;
    assert.equal(moved.storageid, nfs.id);
    assert.equal(moved.state, 'Ready');
    const after = await allocated();
    assert.equal(after[nfs.id] - before[nfs.id], Number(root.size));
    assert.equal(before[pool['dir-a']] - after[pool['dir-a']], Number(root.size));
    const running = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0];
    assert.equal(running.state, 'Running');
    assert.equal(running.hostid, vm.hostid);
    const events = await admin.request<any>('listEvents', { type: 'VOLUME.MIGRATE', resourceid: root.id });
    assert.ok(events.event.some((e: any) => /live/.test(e.description)));
    // The VM starts again from its ROOT disk on the NFS pool.
    await admin.call('stopVirtualMachine', { id: vm.id });
    assert.equal(
      (await admin.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Running',
    );

    // migrateVirtualMachineWithVolume: a Running VM's data disk moves live; a host and pools at
    // once are refused.
    const both = {
      virtualmachineid: vm.id,
      'migrateto[0].volume': data.id,
      'migrateto[0].pool': nfs.id,
    };
    await assert.rejects(
      admin.request('migrateVirtualMachineWithVolume', { ...both, hostid: vm.hostid }),
      is(431),
    );
    const vmAfter = (await admin.call<any>('migrateVirtualMachineWithVolume', both)).virtualmachine;
    assert.equal(vmAfter.state, 'Running');
    assert.equal((await volume(data.id)).storageid, nfs.id);

    // Offline back to the directory pool (Stopped VM).
    await admin.call('stopVirtualMachine', { id: vm.id });
    const back = (await admin.call<any>('migrateVolume', { volumeid: root.id, storageid: pool['dir-a'] }))
      .volume;
    assert.equal(back.storageid, pool['dir-a']);
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});
