/**
 * Affinity groups against the real server and three simulator hosts: anti-affinity spreads VMs
 * and refuses a fourth with 533 leaving nothing behind, affinity keeps VMs together; also
 * restoreVirtualMachine and migrateVolume between two pools.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createCluster, createPod, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let agent: TestAgent;
let zoneid: string;
let templateid: string;
let small: string;
let customDisk: string;
let pools: string[];
const is = (code: number) => (e: any) => e.errorcode === code;

before(async () => {
  server = await startServer();
  const admin = server.admin;
  zoneid = (
    await admin.request<any>('createZone', {
      name: 'affinity',
      networktype: 'Basic',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      securitygroupenabled: true,
    })
  ).zone.id;
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  const pod = await createPod(admin, zoneid, 'apod', 66);
  const cluster = await createCluster(admin, zoneid, pod, 'acluster');
  await admin.request('createVlanIpRange', {
    zoneid,
    podid: pod,
    gateway: '10.66.128.1',
    netmask: '255.255.128.0',
    startip: '10.66.128.10',
    endip: '10.66.129.250',
    forvirtualnetwork: false,
  });
  pools = [];
  for (const name of ['apool1', 'apool2']) {
    const r = await admin.request<any>('createStoragePool', {
      zoneid,
      podid: pod,
      clusterid: cluster,
      name,
      url: `file://${server.dataDir}/${name}`,
      capacitybytes: 2 ** 40,
    });
    pools.push(r.storagepool.id);
  }
  await admin.request('addImageStore', {
    zoneid,
    name: 'astore',
    provider: 'NFS',
    url: `file://${server.dataDir}/astore`,
  });
  agent = startAgent(server.agentUrl, {
    token: 'affinity-token',
    name: 'a',
    hosts: 3,
    args: ['--cores', '4', '--memory', String(8 * 2 ** 30)],
  });
  await agent.waitForLog('connected to management server');
  for (let i = 1; i <= 3; i++) {
    await waitUntil(async () => agent.logs.some((l) => l.includes(`a-${i}`)), 10_000, `host a-${i}`);
    await admin.request('addHost', {
      zoneid,
      podid: pod,
      clusterid: cluster,
      url: `agent://a-${i}`,
      username: 'root',
      password: 'affinity-token',
      hypervisor: 'Simulator',
    });
  }
  const ready = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      ),
    30_000,
    'the built-in template',
  );
  templateid = ready.id;
  small = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0]
    .id;
  customDisk = (await admin.request<any>('listDiskOfferings', {})).diskoffering.find(
    (d: any) => d.iscustomized,
  ).id;
});
after(async () => {
  await agent?.kill();
  await server?.stop();
});

describe('affinity groups', () => {
  test('create, list, types, and bad input that creates nothing', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'agtypes' });
    const types = await client.request<any>('listAffinityGroupTypes', {});
    assert.deepEqual(types.affinitygrouptype.map((t: any) => t.type).sort(), [
      'host affinity',
      'host anti-affinity',
    ]);
    const g = (await client.call<any>('createAffinityGroup', { name: 'web', type: 'host anti-affinity' }))
      .affinitygroup;
    assert.equal(g.name, 'web');
    assert.equal(g.type, 'host anti-affinity');
    assert.equal(g.account, 'agtypes');
    await assert.rejects(
      client.request('createAffinityGroup', { name: 'x', type: 'rack affinity' }),
      is(431),
    );
    await assert.rejects(
      client.request('createAffinityGroup', { name: 'web', type: 'host affinity' }),
      is(431),
    );
    const listed = await client.request<any>('listAffinityGroups', {});
    assert.equal(listed.count, 1);
    assert.equal(listed.affinitygroup[0].id, g.id);
    assert.equal(listed.affinitygroup[0].virtualmachineIds, undefined);
    // Another account neither sees nor uses it.
    const { client: other } = await createAccountAndLogin(server, { name: 'agother' });
    assert.deepEqual(await other.request('listAffinityGroups', {}), {});
    await assert.rejects(other.request('deleteAffinityGroup', { id: g.id }), is(531));
    const before = (await server.admin.request<any>('listVirtualMachines', { listall: true })).count ?? 0;
    await assert.rejects(
      other.request('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        affinitygroupids: g.id,
      }),
      is(431),
    );
    assert.equal(
      (await server.admin.request<any>('listVirtualMachines', { listall: true })).count ?? 0,
      before,
    );
    assert.equal((await client.call<any>('deleteAffinityGroup', { id: g.id })).success, true);
    assert.deepEqual(await client.request('listAffinityGroups', {}), {});
  });

  test('anti-affinity puts three VMs on three hosts and refuses a fourth with 533, leaving nothing', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'agspread' });
    const g = (await client.call<any>('createAffinityGroup', { name: 'spread', type: 'host anti-affinity' }))
      .affinitygroup;
    const vms = [];
    for (let i = 0; i < 3; i++)
      vms.push(
        (
          await client.call<any>('deployVirtualMachine', {
            zoneid,
            templateid,
            serviceofferingid: small,
            affinitygroupids: g.id,
          })
        ).virtualmachine,
      );
    assert.deepEqual(
      vms.map((v) => v.affinitygroup.map((a: any) => a.id)),
      [[g.id], [g.id], [g.id]],
    );
    const placed = await server.admin.request<any>('listVirtualMachines', {
      listall: true,
      ids: vms.map((v) => v.id).join(','),
    });
    assert.equal(new Set(placed.virtualmachine.map((v: any) => v.hostid)).size, 3);
    const listed = (await client.request<any>('listAffinityGroups', { id: g.id })).affinitygroup[0];
    assert.deepEqual([...listed.virtualmachineIds].sort(), vms.map((v) => v.id).sort());
    assert.equal(
      (await client.request<any>('listAffinityGroups', { virtualmachineid: vms[0].id })).affinitygroup[0].id,
      g.id,
    );

    assert.equal(
      (await server.admin.request<any>('listAffinityGroups', { virtualmachineid: vms[1].id }))
        .affinitygroup[0].id,
      g.id,
      "an admin lists a user's VM's groups",
    );
    // Live migration keeps to the rule: every other host runs a member.
    await assert.rejects(
      server.admin.call('migrateVirtualMachine', { virtualmachineid: vms[0].id }),
      (e: any) => e.errorcode === 533 && /spread/.test(e.message),
    );
    const fourth = client.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: small,
      affinitygroupnames: 'spread',
    });
    await assert.rejects(fourth, (e: any) => e.errorcode === 533 && /spread/.test(e.message));
    assert.equal(
      (await client.request<any>('listVirtualMachines', {})).count,
      3,
      'the failed deploy left no VM',
    );
    assert.equal((await client.request<any>('listVolumes', {})).count, 3, 'the failed deploy left no volume');

    // Memberships change only on a Stopped VM; deleting the group frees its members.
    const other = (await client.call<any>('createAffinityGroup', { name: 'other', type: 'host affinity' }))
      .affinitygroup;
    await assert.rejects(
      client.call('updateVMAffinityGroup', { id: vms[0].id, affinitygroupnames: 'other' }),
      (e: any) => e.errorcode === 431 && /Running/.test(e.message),
    );
    await client.call('stopVirtualMachine', { id: vms[0].id });
    await assert.rejects(
      client.call('updateVMAffinityGroup', { id: vms[0].id, affinitygroupids: crypto.randomUUID() }),
      is(431),
    );
    const moved = (
      await client.call<any>('updateVMAffinityGroup', { id: vms[0].id, affinitygroupnames: 'other' })
    ).virtualmachine;
    assert.deepEqual(
      moved.affinitygroup.map((a: any) => a.id),
      [other.id],
    );
    await client.call('deleteAffinityGroup', { name: 'spread' });
    const after = (await client.request<any>('listVirtualMachines', { id: vms[1].id })).virtualmachine[0];
    assert.deepEqual(after.affinitygroup, []);
    for (const v of vms)
      await client.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
    for (const v of vms)
      await server.admin.call('expungeVirtualMachine', { id: v.id }).catch(() => undefined);
  });

  test('affinity keeps VMs on one host', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'agtogether' });
    await client.call('createAffinityGroup', { name: 'together', type: 'host affinity' });
    const ids = [];
    for (let i = 0; i < 3; i++)
      ids.push(
        (
          await client.call<any>('deployVirtualMachine', {
            zoneid,
            templateid,
            serviceofferingid: small,
            affinitygroupnames: 'together',
          })
        ).virtualmachine.id,
      );
    const placed = await server.admin.request<any>('listVirtualMachines', {
      listall: true,
      ids: ids.join(','),
    });
    assert.equal(new Set(placed.virtualmachine.map((v: any) => v.hostid)).size, 1);
    // An admin asking for another host than the group's is refused.
    const other = (await server.admin.request<any>('listHosts', { zoneid, type: 'Routing' })).host.find(
      (h: any) => h.id !== placed.virtualmachine[0].hostid,
    );
    await client.call('stopVirtualMachine', { id: ids[0] });
    await assert.rejects(
      server.admin.call('startVirtualMachine', { id: ids[0], hostid: other.id }),
      (e: any) => e.errorcode === 533 && /together/.test(e.message),
    );
    for (const id of ids) await server.admin.call('destroyVirtualMachine', { id, expunge: true });
  });
});

describe('restoreVirtualMachine', () => {
  test('recreates the ROOT disk of a Running VM and of a Stopped one; bad input changes nothing', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'restorer' });
    const vm = (
      await client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: small })
    ).virtualmachine;
    const rootOf = async () =>
      (await client.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' })).volume[0];
    const old = await rootOf();
    const restored = (await client.call<any>('restoreVirtualMachine', { virtualmachineid: vm.id }))
      .virtualmachine;
    assert.equal(restored.state, 'Running');
    assert.equal(restored.templateid, templateid);
    const fresh = await rootOf();
    assert.notEqual(fresh.id, old.id);
    assert.equal(fresh.state, 'Ready');
    assert.equal(
      (await client.request<any>('listVolumes', { id: old.id })).count ?? 0,
      0,
      'the old ROOT is gone',
    );
    const events = await client.request<any>('listEvents', { type: 'VM.RESTORE', resourceid: vm.id });
    assert.ok(events.event.some((e: any) => /Restoring -> Stopped/.test(e.description)));

    // A VM snapshot holds the disk a restore would replace.
    const vmSnap = (await client.call<any>('createVMSnapshot', { virtualmachineid: vm.id })).vmsnapshot;
    await assert.rejects(
      client.call('restoreVirtualMachine', { virtualmachineid: vm.id }),
      (e: any) => e.errorcode === 431 && /VM snapshots/.test(e.message),
    );
    await client.call('deleteVMSnapshot', { vmsnapshotid: vmSnap.id });
    await client.call('stopVirtualMachine', { id: vm.id });
    const bigger = (
      await client.call<any>('restoreVirtualMachine', { virtualmachineid: vm.id, rootdisksize: 20 })
    ).virtualmachine;
    assert.equal(bigger.state, 'Stopped');
    const resized = await rootOf();
    assert.equal(resized.size, 20 * 2 ** 30);
    assert.equal(resized.state, 'Allocated', 'made from the template when the VM starts');

    await assert.rejects(
      client.request('restoreVirtualMachine', { virtualmachineid: vm.id, templateid: crypto.randomUUID() }),
      is(431),
    );
    await assert.rejects(
      client.request('restoreVirtualMachine', { virtualmachineid: vm.id, rootdisksize: -1 }),
      is(431),
    );
    assert.equal((await rootOf()).id, resized.id, 'refused restores leave the disk');
    await client.call('destroyVirtualMachine', { id: vm.id });
    await assert.rejects(client.request('restoreVirtualMachine', { virtualmachineid: vm.id }), is(431));
  });
});

describe('migrateVolume', () => {
  test('moves a detached disk and a Stopped VM disk between pools, with pool allocation moved', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'mover' });
    const allocated = async () => {
      const r = await server.admin.request<any>('listStoragePools', { zoneid });
      return Object.fromEntries(r.storagepool.map((p: any) => [p.id, Number(p.disksizeallocated)]));
    };
    const vm = (
      await client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        diskofferingid: customDisk,
        size: 3,
      })
    ).virtualmachine;
    const admin = server.admin;
    const data = (
      await admin.request<any>('listVolumes', { listall: true, virtualmachineid: vm.id, type: 'DATADISK' })
    ).volume[0];
    const from = data.storageid;
    const to = pools.find((p) => p !== from)!;
    await assert.rejects(
      client.request('migrateVolume', { volumeid: data.id, storageid: to }),
      is(431),
      'VM running',
    );
    await client.call('stopVirtualMachine', { id: vm.id });
    await assert.rejects(client.request('migrateVolume', { volumeid: data.id, storageid: from }), is(431));
    await assert.rejects(
      client.request('migrateVolume', { volumeid: data.id, storageid: crypto.randomUUID() }),
      is(431),
    );
    const before = await allocated();
    const moved = (await client.call<any>('migrateVolume', { volumeid: data.id, storageid: to })).volume;
    assert.equal(moved.id, data.id);
    const after = await allocated();
    assert.equal(after[to] - before[to], 3 * 2 ** 30);
    assert.equal(before[from] - after[from], 3 * 2 ** 30);
    assert.equal(
      (await admin.request<any>('listVolumes', { listall: true, id: data.id })).volume[0].storageid,
      to,
    );
    assert.equal(
      (await client.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Running',
    );

    // migrateVirtualMachineWithVolume: a Stopped VM's ROOT moves.
    const root = (
      await admin.request<any>('listVolumes', { listall: true, virtualmachineid: vm.id, type: 'ROOT' })
    ).volume[0];
    const rootTo = pools.find((p) => p !== root.storageid)!;
    const moveRoot = {
      virtualmachineid: vm.id,
      'migrateto[0].volume': root.id,
      'migrateto[0].pool': rootTo,
    };
    // Running: its disks move live, but not together with the VM to another host.
    await assert.rejects(
      admin.request('migrateVirtualMachineWithVolume', {
        ...moveRoot,
        hostid: (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0].hostid,
      }),
      is(431),
    );
    await client.call('stopVirtualMachine', { id: vm.id });
    assert.equal(
      (await admin.call<any>('migrateVirtualMachineWithVolume', moveRoot)).virtualmachine.state,
      'Stopped',
    );
    assert.equal(
      (await admin.request<any>('listVolumes', { listall: true, id: root.id })).volume[0].storageid,
      rootTo,
    );
    assert.equal(
      (await client.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Running',
    );

    // A detached disk moves too.
    await client.call('detachVolume', { id: data.id });
    const back = (await client.call<any>('migrateVolume', { volumeid: data.id, storageid: from })).volume;
    assert.equal(back.state, 'Ready');
    assert.equal(
      (await admin.request<any>('listVolumes', { listall: true, id: data.id })).volume[0].storageid,
      from,
    );
    const events = await client.request<any>('listEvents', { type: 'VOLUME.MIGRATE', resourceid: data.id });
    assert.ok(events.event.filter((e: any) => e.state === 'Completed').length >= 2);
    await client.call('destroyVirtualMachine', { id: vm.id, expunge: true }).catch(() => undefined);
    await admin.call('expungeVirtualMachine', { id: vm.id }).catch(() => undefined);
    await client.request('deleteVolume', { id: data.id });
  });
});
