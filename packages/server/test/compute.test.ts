/**
 * The VM lifecycle on simulator hosts through the real server: deploy, stop, start, reboot,
 * volumes, destroy, recover, expunge, the planner under concurrency, retries on failing hosts,
 * serialised jobs, and bad input that leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  createCluster,
  createPod,
  seededLocalZone,
  startAgent,
  type TestAgent,
  waitUntil,
} from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
const is = (code: number) => (e: any) => e.errorcode === code;
let zoneid: string;
let templateid: string;
let small: string;
let customDisk: string;

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  ({ zoneid, templateid, small, customDisk } = await seededLocalZone(server.admin));
});
after(() => server.stop());

describe('the VM lifecycle', () => {
  test('deploy, stop, start, reboot, volumes, destroy, recover, expunge', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'life' });
    const vm = (
      await client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'web-1',
        displayname: 'Web one',
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    assert.equal(vm.name, 'web-1');
    assert.equal(vm.displayname, 'Web one');
    assert.equal(vm.cpunumber, 1);
    assert.equal(vm.memory, 512);
    assert.ok(vm.nic.length === 1 && vm.nic[0].isdefault && vm.nic[0].ipaddress);
    assert.ok(Array.isArray(vm.securitygroup));
    assert.equal(vm.hostid, undefined, 'users do not see hosts');
    const listed = await client.request<any>('listVirtualMachines', {});
    assert.equal(listed.count, 1);
    assert.equal(listed.virtualmachine[0].id, vm.id);
    const root = (await client.request<any>('listVolumes', { virtualmachineid: vm.id })).volume[0];
    assert.equal(root.type, 'ROOT');
    assert.equal(root.state, 'Ready');
    assert.ok(root.size > 0);

    assert.equal(
      (await client.call<any>('stopVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Stopped',
    );
    assert.equal(
      (await client.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Running',
    );
    assert.equal(
      (await client.call<any>('rebootVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Running',
    );

    const disk = (
      await client.call<any>('createVolume', { zoneid, diskofferingid: customDisk, size: 2, name: 'data-1' })
    ).volume;
    assert.equal(disk.state, 'Allocated');
    assert.equal(disk.size, 2 * 2 ** 30);
    assert.equal('virtualmachineid' in disk, false);
    const attached = (await client.call<any>('attachVolume', { id: disk.id, virtualmachineid: vm.id }))
      .volume;
    assert.equal(attached.virtualmachineid, vm.id);
    assert.equal(attached.deviceid, 1);
    assert.equal(attached.state, 'Ready');
    assert.ok(attached.attached);
    await assert.rejects(client.request('deleteVolume', { id: disk.id }), is(536));
    const resized = (await client.call<any>('resizeVolume', { id: disk.id, size: 3 })).volume;
    assert.equal(resized.size, 3 * 2 ** 30);
    await assert.rejects(client.call('resizeVolume', { id: disk.id, size: 1 }), is(431));
    const detached = (await client.call<any>('detachVolume', { id: disk.id })).volume;
    assert.equal('attached' in detached, false);
    assert.equal('virtualmachineid' in detached, false);

    const destroyed = (await client.call<any>('destroyVirtualMachine', { id: vm.id })).virtualmachine;
    assert.equal(destroyed.state, 'Destroyed');
    const asAdmin = await server.admin.request<any>('listVirtualMachines', { id: vm.id, listall: true });
    assert.equal(asAdmin.virtualmachine[0].state, 'Destroyed');
    const recovered = (await server.admin.request<any>('recoverVirtualMachine', { id: vm.id }))
      .virtualmachine;
    assert.equal(recovered.state, 'Stopped');
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    assert.deepEqual(await server.admin.request('listVirtualMachines', { id: vm.id, listall: true }), {});
    assert.deepEqual(await client.request('listVolumes', { type: 'ROOT' }), {});
    assert.equal(
      (await client.request<any>('listVolumes', {})).volume[0].id,
      disk.id,
      'data disks outlive their VM',
    );
    assert.deepEqual(await client.request('deleteVolume', { id: disk.id }), { success: true });
    const events = await server.admin.request<any>('listEvents', {
      listall: true,
      resourceid: vm.id,
      pagesize: -1,
    });
    const types = new Set(events.event.map((e: any) => e.type));
    for (const t of [
      'VM.CREATE',
      'VM.START',
      'VM.STOP',
      'VM.REBOOT',
      'VM.DESTROY',
      'VM.RECOVER',
      'VM.EXPUNGE',
    ])
      assert.ok(types.has(t), t);
  });

  test('nothing leaks: host and pool allocations return to zero after expunge', async () => {
    const hosts = await server.admin.request<any>('listHosts', { zoneid });
    for (const h of hosts.host) assert.equal(Number(h.memoryallocated ?? 0), 0, `${h.name} memory`);
    const pools = await server.admin.request<any>('listStoragePools', { zoneid });
    for (const p of pools.storagepool) assert.equal(Number(p.disksizeallocated), 0, `${p.name} allocation`);
  });

  test('bad input gets a clear error and leaves no VM or volume behind', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'careless' });
    const bad = '00000000-0000-4000-8000-000000000000';
    await assert.rejects(
      client.request('deployVirtualMachine', { zoneid: bad, templateid, serviceofferingid: small }),
      is(431),
    );
    await assert.rejects(
      client.request('deployVirtualMachine', { zoneid, templateid: bad, serviceofferingid: small }),
      is(431),
    );
    await assert.rejects(
      client.request('deployVirtualMachine', { zoneid, templateid, serviceofferingid: bad }),
      is(431),
    );
    await assert.rejects(
      client.request('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: '1-starts-with-digit',
      }),
      is(431),
    );
    await assert.rejects(
      client.request('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        keypair: 'nope',
      }),
      is(431),
    );
    await assert.rejects(
      client.request('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        userdata: '%%%',
      }),
      is(431),
    );
    await assert.rejects(
      client.request('deployVirtualMachine', { zoneid, serviceofferingid: small }),
      is(431),
    );
    // A removed offering and a system one exist for the entity check, not for a deploy.
    const removed = (
      await server.admin.request<any>('createServiceOffering', {
        name: 'gone',
        displaytext: 'gone',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
      })
    ).serviceoffering.id;
    await server.admin.request('deleteServiceOffering', { id: removed });
    const system = (await server.admin.request<any>('listServiceOfferings', { issystem: true }))
      .serviceoffering[0].id;
    for (const id of [removed, system])
      await assert.rejects(
        client.request('deployVirtualMachine', { zoneid, templateid, serviceofferingid: id }),
        (e: any) => e.errorcode === 431 && e.errortext === `Unable to find service offering by id ${id}`,
      );
    await server.admin.request('updateResourceLimit', {
      resourcetype: 0,
      max: 0,
      account: 'careless',
      domainid: (await client.request<any>('listAccounts')).account[0].domainid,
    });
    await assert.rejects(
      client.request('deployVirtualMachine', { zoneid, templateid, serviceofferingid: small }),
      is(535),
    );
    assert.deepEqual(await client.request('listVirtualMachines', {}), {});
    assert.deepEqual(await client.request('listVolumes', {}), {});
  });

  test('wrong states are refused', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'stately' });
    const vm = (
      await client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        startvm: false,
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Stopped');
    await assert.rejects(client.call('rebootVirtualMachine', { id: vm.id }), is(431));
    await assert.rejects(client.request('recoverVirtualMachine', { id: vm.id }), is(531));
    await client.call('destroyVirtualMachine', { id: vm.id, expunge: false });
    await assert.rejects(
      client.call('startVirtualMachine', { id: vm.id }),
      (e: any) => e.errorcode === 431 || e.errorcode === 531,
    );
  });

  test('listVirtualMachines keypair matches one key pair name exactly, not a substring', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'keyed' });
    for (const name of ['k-one', 'k-one-two', 'zz']) await client.request('createSSHKeyPair', { name });
    const deploy = async (keys: Record<string, string>) =>
      (
        await client.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid: small,
          startvm: false,
          ...keys,
        })
      ).virtualmachine.id;
    const a = await deploy({ keypair: 'k-one-two' });
    const b = await deploy({ keypairs: 'zz,k-one' });
    const ids = async (keypair: string) =>
      ((await client.request<any>('listVirtualMachines', { keypair })).virtualmachine ?? []).map(
        (v: any) => v.id,
      );
    assert.deepEqual(await ids('k-one'), [b]);
    assert.deepEqual(await ids('k-one-two'), [a]);
    assert.deepEqual(await ids('one'), []);
    assert.deepEqual(await ids('k-one%'), []);
    for (const id of [a, b]) await server.admin.call('destroyVirtualMachine', { id, expunge: true });
  });

  test('deleteUserData is refused (530) while a VM deployed with it is not expunged', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'uddeploy' });
    await client.request('registerUserData', {
      name: 'boot',
      userdata: Buffer.from('#!/bin/sh\n').toString('base64'),
    });
    const ud = (await client.request<any>('listUserData', { name: 'boot' })).userdata[0];
    const vm = (
      await client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        startvm: false,
        userdataid: ud.id,
      })
    ).virtualmachine;
    await assert.rejects(
      client.request('deleteUserData', { id: ud.id }),
      (e: any) =>
        e.errorcode === 530 &&
        e.errortext === 'Userdata boot cannot be removed as it is being used by some instances',
    );
    await client.call('destroyVirtualMachine', { id: vm.id });
    await assert.rejects(client.request('deleteUserData', { id: ud.id }), is(530));
    await server.admin.call('expungeVirtualMachine', { id: vm.id });
    assert.deepEqual(await client.request('deleteUserData', { id: ud.id }), { success: true });
  });

  test('disableAccount with lock=false stops the account VMs; lock=true leaves them running', async () => {
    const { client, account } = await createAccountAndLogin(server, { name: 'disabled-vms' });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++)
      ids.push(
        (await client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: small }))
          .virtualmachine.id,
      );
    const states = async () =>
      (
        await server.admin.request<any>('listVirtualMachines', {
          account: 'disabled-vms',
          domainid: account.domainid as string,
        })
      ).virtualmachine.map((v: any) => v.state);
    await server.admin.call('disableAccount', { id: account.id as string, lock: true });
    assert.deepEqual(await states(), ['Running', 'Running']);
    await server.admin.request('enableAccount', { id: account.id as string });
    const disabled = (
      await server.admin.call<any>('disableAccount', { id: account.id as string, lock: false })
    ).account;
    assert.equal(disabled.state, 'disabled');
    assert.deepEqual(await states(), ['Stopped', 'Stopped']);
    for (const id of ids) await server.admin.call('destroyVirtualMachine', { id, expunge: true });
  });

  test('listVolumes filters by state (any case), pod, cluster, service offering, displayvolume, isencrypted', async () => {
    const admin = server.admin;
    const { client } = await createAccountAndLogin(server, { name: 'volfilters' });
    const vm = (
      await client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: small })
    ).virtualmachine;
    const root = (await client.request<any>('listVolumes', { virtualmachineid: vm.id })).volume[0];
    const data = (
      await client.call<any>('createVolume', { zoneid, diskofferingid: customDisk, size: 1, name: 'loose' })
    ).volume;
    const ids = async (params: Record<string, any>) =>
      ((await client.request<any>('listVolumes', params)).volume ?? []).map((v: any) => v.id).sort();
    const both = [root.id, data.id].sort();
    assert.deepEqual(await ids({ state: 'ready' }), [root.id]);
    assert.deepEqual(await ids({ state: 'ALLOCATED' }), [data.id]);
    const pod = (await admin.request<any>('listPods', { zoneid })).pod[0].id;
    const cluster = (await admin.request<any>('listClusters', { zoneid })).cluster[0].id;
    const emptyPod = await createPod(admin, zoneid, 'volfilters-pod', 81);
    assert.deepEqual(await ids({ podid: pod }), [root.id], 'the data disk has no pool yet');
    assert.deepEqual(await ids({ clusterid: cluster }), [root.id]);
    assert.deepEqual(await ids({ podid: emptyPod }), []);
    assert.deepEqual(await ids({ serviceofferingid: small }), [root.id]);
    assert.deepEqual(await ids({ displayvolume: true }), both);
    assert.deepEqual(await ids({ displayvolume: false }), []);
    assert.deepEqual(await ids({ isencrypted: false }), both);
    assert.deepEqual(await ids({ isencrypted: true }), []);
    await admin.request('deletePod', { id: emptyPod });
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await client.request('deleteVolume', { id: data.id });
  });

  test('rebootVirtualMachine answers with the VM as it is once the reboot is done', async () => {
    const vm = (
      await server.admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        displayname: 'before',
      })
    ).virtualmachine;
    await server.admin.request('configureSimulator', {
      name: 'rebootVm',
      value: 'wait:1500',
      count: 1,
      hostid: vm.hostid,
    });
    const queued = await server.admin.request<any>('rebootVirtualMachine', { id: vm.id });
    await new Promise((r) => setTimeout(r, 300));
    await server.admin.request('updateVirtualMachine', { id: vm.id, displayname: 'during' });
    const done = await server.admin.waitForJob(queued.jobid);
    assert.equal((done.jobresult as any).virtualmachine.displayname, 'during');
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});

describe('the planner', () => {
  let agent: TestAgent;
  let pzone: string;
  before(async () => {
    // Four hosts of one core and 2 GiB each: room for exactly 16 VMs of 512 MiB when CPU is not the limit.
    await server.admin.request('updateConfiguration', { name: 'cpu.overprovisioning.factor', value: '10' });
    const z = (
      await server.admin.request<any>('createZone', {
        name: 'planner',
        networktype: 'Basic',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
        securitygroupenabled: true,
      })
    ).zone;
    pzone = z.id;
    const pod = await createPod(server.admin, pzone, 'ppod', 77);
    const cluster = await createCluster(server.admin, pzone, pod, 'pcluster');
    await server.admin.request('createVlanIpRange', {
      zoneid: pzone,
      podid: pod,
      gateway: '10.77.128.1',
      netmask: '255.255.128.0',
      startip: '10.77.128.10',
      endip: '10.77.130.250',
      forvirtualnetwork: false,
    });
    await server.admin.request('createStoragePool', {
      zoneid: pzone,
      podid: pod,
      clusterid: cluster,
      name: 'ppool',
      url: `file://${server.dataDir}/ppool`,
      capacitybytes: 2 ** 40,
    });
    await server.admin.request('addImageStore', {
      zoneid: pzone,
      name: 'pstore',
      provider: 'NFS',
      url: `file://${server.dataDir}/pstore`,
    });
    agent = startAgent(server.agentUrl, {
      token: 'planner-token',
      name: 'p',
      hosts: 4,
      args: ['--cores', '1', '--memory', String(2 * 2 ** 30)],
    });
    await agent.waitForLog('connected to management server');
    for (let i = 1; i <= 4; i++) {
      await waitUntil(async () => agent.logs.some((l) => l.includes(`p-${i}`)), 10_000, `host p-${i}`);
      await server.admin.request('addHost', {
        zoneid: pzone,
        podid: pod,
        clusterid: cluster,
        url: `agent://p-${i}`,
        username: 'root',
        password: 'planner-token',
        hypervisor: 'Simulator',
      });
    }
    await waitUntil(
      async () => {
        const t = await server.admin.request<any>('listTemplates', {
          templatefilter: 'featured',
          zoneid: pzone,
        });
        return t.template?.find((x: any) => x.isready);
      },
      20_000,
      'the built-in template in the new zone',
    );
  });
  after(() => agent?.kill());

  test('100 concurrent deploys on a cluster with room for 16 never overcommit a host', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, () =>
        server.admin.call<any>('deployVirtualMachine', {
          zoneid: pzone,
          templateid,
          serviceofferingid: small,
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    assert.equal(ok.length, 16);
    assert.ok(
      failed.every((f) => f.reason.errorcode === 533),
      failed.map((f) => f.reason.message).join('\n'),
    );
    const hosts = await server.admin.request<any>('listHosts', { zoneid: pzone });
    for (const h of hosts.host)
      assert.ok(Number(h.memoryallocated) <= 2048 * 2 ** 20, `${h.name} is overcommitted`);
    const running = await server.admin.request<any>('listVirtualMachines', {
      zoneid: pzone,
      listall: true,
      state: 'Running',
    });
    assert.equal(running.count, 16);
    assert.equal(
      (await server.admin.request<any>('listVirtualMachines', { zoneid: pzone, listall: true })).count,
      16,
      'failed deploys leave no VM',
    );
    // Pages (ids from the index, then the rows): in order, each with the whole count, none lost.
    const all = running.virtualmachine.map((v: any) => v.id);
    const paged: string[] = [];
    for (let page = 1; page <= 4; page++) {
      const r = await server.admin.request<any>('listVirtualMachines', {
        zoneid: pzone,
        listall: true,
        page,
        pagesize: 5,
      });
      assert.equal(r.count, 16);
      assert.equal(r.virtualmachine.length, page === 4 ? 1 : 5);
      paged.push(...r.virtualmachine.map((v: any) => v.id));
    }
    assert.deepEqual(paged, all);
    assert.deepEqual(
      await server.admin.request('listVirtualMachines', {
        zoneid: pzone,
        listall: true,
        page: 5,
        pagesize: 5,
      }),
      { count: 16 },
    );
    const min = await server.admin.request<any>('listVirtualMachines', {
      zoneid: pzone,
      listall: true,
      page: 2,
      pagesize: 5,
      details: 'min',
    });
    assert.deepEqual(
      min.virtualmachine.map((v: any) => v.id),
      all.slice(5, 10),
    );
    assert.equal(min.virtualmachine[0].nic, undefined);
    assert.ok(min.virtualmachine[0].hostid, 'an admin sees the host in details=min');
    for (const vm of running.virtualmachine)
      await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('a start that fails on one host is retried on another', async () => {
    const host1 = (await server.admin.request<any>('listHosts', { name: 'p-1' })).host[0];
    await server.admin.request('configureSimulator', {
      name: 'startVm',
      value: 'result:fail;message:simulated host fault',
      count: 1,
      hostid: host1.id,
    });
    await server.admin.request('updateConfiguration', { name: 'vm.allocation.algorithm', value: 'firstfit' });
    const vm = (
      await server.admin.call<any>('deployVirtualMachine', {
        zoneid: pzone,
        templateid,
        serviceofferingid: small,
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    assert.notEqual(vm.hostid, host1.id);
    const warned = await server.admin.request<any>('listEvents', {
      listall: true,
      resourceid: vm.id,
      level: 'WARN',
    });
    assert.match(warned.event[0].description, /p-1.*simulated host fault/);
    await server.admin.request('updateConfiguration', { name: 'vm.allocation.algorithm', value: '' });
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('when every host fails the start, the 533 says how the last one failed', async () => {
    // Two failures per host of the zone: more than the hosts a start can try.
    const hosts = (await server.admin.request<any>('listHosts', { zoneid: pzone, type: 'Routing' })).count;
    await server.admin.request('configureSimulator', {
      name: 'startVm',
      value: 'result:fail;message:disk image locked',
      count: 2 * hosts,
      zoneid: pzone,
    });
    await assert.rejects(
      server.admin.call('deployVirtualMachine', { zoneid: pzone, templateid, serviceofferingid: small }),
      (e: any) =>
        e.errorcode === 533 &&
        /already failed this start.*; the last start failed: .*disk image locked/.test(e.errortext),
    );
    await server.admin.request('configureSimulator', {
      name: 'startVm',
      value: 'result:success',
      zoneid: pzone,
    });
    const left = await server.admin.request<any>('listVirtualMachines', {
      zoneid: pzone,
      listall: true,
      state: 'Running',
    });
    assert.equal(left.count ?? 0, 0);
  });

  test('destroying a VM while its start runs waits for the start', async () => {
    await server.admin.request('configureSimulator', {
      name: 'startVm',
      value: 'wait:1500',
      count: 1,
      zoneid: pzone,
    });
    const queued = await server.admin.request<any>('deployVirtualMachine', {
      zoneid: pzone,
      templateid,
      serviceofferingid: small,
    });
    const destroy = await server.admin.request<any>('destroyVirtualMachine', {
      id: queued.id,
      expunge: true,
    });
    const started = await server.admin.waitForJob(queued.jobid);
    assert.equal((started.jobresult as any).virtualmachine.state, 'Running');
    await server.admin.waitForJob(destroy.jobid);
    assert.deepEqual(await server.admin.request('listVirtualMachines', { id: queued.id, listall: true }), {});
  });

  test('startVirtualMachine boots in the pod or the cluster an admin names', async () => {
    const admin = server.admin;
    const pod2 = await createPod(admin, pzone, 'ppod2', 79);
    const cluster2 = await createCluster(admin, pzone, pod2, 'pcluster2');
    await admin.request('createVlanIpRange', {
      zoneid: pzone,
      podid: pod2,
      gateway: '10.79.128.1',
      netmask: '255.255.128.0',
      startip: '10.79.128.10',
      endip: '10.79.128.250',
      forvirtualnetwork: false,
    });
    await admin.request('createStoragePool', {
      zoneid: pzone,
      podid: pod2,
      clusterid: cluster2,
      name: 'ppool2',
      url: `file://${server.dataDir}/ppool2`,
      capacitybytes: 2 ** 40,
    });
    const agent2 = startAgent(server.agentUrl, {
      token: 'planner-token',
      name: 'q-1',
      hosts: 1,
      args: ['--cores', '1', '--memory', String(2 * 2 ** 30)],
    });
    try {
      await agent2.waitForLog('waiting to be added');
      const q1 = (
        await admin.request<any>('addHost', {
          zoneid: pzone,
          podid: pod2,
          clusterid: cluster2,
          url: 'agent://q-1',
          username: 'root',
          password: 'planner-token',
          hypervisor: 'Simulator',
        })
      ).host[0];
      const pod1 = (await admin.request<any>('listPods', { name: 'ppod' })).pod[0].id;
      const cluster1 = (await admin.request<any>('listClusters', { name: 'pcluster' })).cluster[0].id;
      // The one host of pod 2 is 1 in 5 for the planner: asked twice for it, it is not chance.
      for (const [where, onQ1] of [
        [{ clusterid: cluster2 }, true],
        [{ podid: pod2 }, true],
        [{ podid: pod1 }, false],
        [{ clusterid: cluster1 }, false],
      ] as const) {
        const vm = (
          await admin.call<any>('deployVirtualMachine', {
            zoneid: pzone,
            templateid,
            serviceofferingid: small,
            startvm: false,
          })
        ).virtualmachine;
        const started = (await admin.call<any>('startVirtualMachine', { id: vm.id, ...where }))
          .virtualmachine;
        assert.equal(started.state, 'Running');
        assert.equal(started.hostid === q1.id, onQ1, JSON.stringify(where));
        await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
      }
      await assert.rejects(
        admin.request('startVirtualMachine', { id: '00000000-0000-0000-0000-000000000000', podid: pod2 }),
        is(431),
      );
    } finally {
      // Later tests of this zone expect only the p hosts to take VMs.
      const q1 = (await admin.request<any>('listHosts', { name: 'q-1' })).host?.[0];
      if (q1) await admin.request('updateHost', { id: q1.id, allocationstate: 'Disable' });
      await agent2.kill();
    }
  });

  test('a host that goes Down with no neighbour to prove it dead keeps its VMs (VM HA never guesses)', async () => {
    for (const [name, value] of [
      ['ping.interval', '1'],
      ['ping.timeout', '1.5'],
      ['alert.wait', '1'],
      ['host.down.wait', '1'],
    ]) {
      await server.admin.request('updateConfiguration', { name, value });
    }
    const vm = (
      await server.admin.call<any>('deployVirtualMachine', {
        zoneid: pzone,
        templateid,
        serviceofferingid: small,
      })
    ).virtualmachine;
    await agent.kill();
    // Every host of the cluster went with the agent: none can read the dead one's heartbeat.
    const host = await waitUntil(
      async () => {
        const h = (await server.admin.request<any>('listHosts', { id: vm.hostid })).host[0];
        return h.state === 'Down' && h.hostha.hastate === 'Ineligible' ? h : undefined;
      },
      60_000,
      'the host to be Down and Ineligible for fencing',
    );
    assert.equal(host.hostha.haenable, true);
    const r = await server.admin.request<any>('listVirtualMachines', { id: vm.id });
    assert.equal(r.virtualmachine[0].state, 'Running');
    assert.equal(r.virtualmachine[0].hostid, vm.hostid);
  });
});
