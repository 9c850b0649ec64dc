/**
 * Placement beyond CPU and memory, on simulator hosts through the real server: host-local primary
 * storage (pools per host, local offerings placed with their disks, room, migration refused) and
 * explicit dedication of hosts, clusters and zones to accounts and domains.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { createCluster, createPod, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const GiB = 2 ** 30;
let server: TestServer;
let agent: TestAgent;
let zoneid: string;
let clusterid: string;
let templateid: string;
let shared: string;
let localOffering: string;
let localDisk: string;
let rootDomain: string;
const hosts: Record<string, any> = {};
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
      name: 'lz',
      networktype: 'Basic',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      securitygroupenabled: true,
      localstorageenabled: true,
    })
  ).zone.id;
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  const pod = await createPod(admin, zoneid, 'lpod', 78);
  clusterid = await createCluster(admin, zoneid, pod, 'lcluster');
  await admin.request('createVlanIpRange', {
    zoneid,
    podid: pod,
    gateway: '10.78.128.1',
    netmask: '255.255.128.0',
    startip: '10.78.128.10',
    endip: '10.78.129.250',
    forvirtualnetwork: false,
  });
  await admin.request('createStoragePool', {
    zoneid,
    podid: pod,
    clusterid,
    name: 'lshared',
    url: `file://${server.dataDir}/lshared`,
    capacitybytes: 2 ** 40,
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'lstore',
    provider: 'NFS',
    url: `file://${server.dataDir}/lstore`,
  });
  // Three hosts with 30 GiB of local storage each.
  agent = startAgent(server.agentUrl, {
    token: 'local-token',
    name: 'l',
    hosts: 3,
    args: ['--local-storage', String(30 * GiB)],
  });
  await agent.waitForLog('connected to management server');
  for (let i = 1; i <= 3; i++) {
    await waitUntil(async () => agent.logs.some((l) => l.includes(`l-${i}`)), 10_000, `host l-${i}`);
    await admin.request('addHost', {
      zoneid,
      podid: pod,
      clusterid,
      url: `agent://l-${i}`,
      username: 'root',
      password: 'local-token',
      hypervisor: 'Simulator',
    });
  }
  await waitUntil(
    async () => (await admin.request<any>('listHosts', { zoneid, state: 'Up' })).count === 3,
    15_000,
    'three hosts Up',
  );
  // Each host's local pool is made right after it comes Up.
  await waitUntil(
    async () => (await admin.request<any>('listStoragePools', { zoneid, scope: 'HOST' })).count === 3,
    15_000,
    'three local pools',
  );
  for (const h of (await admin.request<any>('listHosts', { zoneid })).host) hosts[h.name] = h;
  await waitUntil(
    async () => {
      const t = await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid });
      return t.template?.find((x: any) => x.isready);
    },
    20_000,
    'the built-in template in the zone',
  );
  templateid = (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template[0]
    .id;
  shared = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0]
    .id;
  localOffering = (
    await admin.request<any>('createServiceOffering', {
      name: 'local-small',
      displaytext: 'local small',
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
      storagetype: 'local',
    })
  ).serviceoffering.id;
  localDisk = (
    await admin.request<any>('createDiskOffering', {
      name: 'local-10',
      displaytext: 'local 10 GB',
      disksize: 10,
      storagetype: 'local',
    })
  ).diskoffering.id;
  rootDomain = (await admin.request<any>('listDomains', { name: 'ROOT' })).domain[0].id;
});
after(async () => {
  await agent?.kill();
  await server?.stop();
});

async function poolOf(volume: any) {
  return (await server.admin.request<any>('listStoragePools', { id: volume.storageid })).storagepool[0];
}

async function expungeAll() {
  const vms = await server.admin.request<any>('listVirtualMachines', { zoneid, listall: true });
  for (const vm of vms.virtualmachine ?? [])
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  const volumes = await server.admin.request<any>('listVolumes', { zoneid, listall: true });
  for (const v of volumes.volume ?? []) await server.admin.request('deleteVolume', { id: v.id });
}

describe('host-local primary storage', () => {
  test('every host of a zone with local storage has its own pool of scope HOST', async () => {
    const pools = await server.admin.request<any>('listStoragePools', { zoneid, scope: 'HOST' });
    assert.equal(pools.count, 3);
    for (const p of pools.storagepool) {
      assert.equal(p.scope, 'HOST');
      assert.equal(p.capacitybytes, 30 * GiB);
      assert.equal(p.clusterid, clusterid);
      assert.ok(hosts[p.hostname] && hosts[p.hostname].id === p.hostid, `${p.name} names its host`);
    }
    const ofHost = await server.admin.request<any>('listStoragePools', { hostid: hosts['l-1'].id });
    assert.deepEqual(
      ofHost.storagepool.map((p: any) => p.name).sort(),
      ['l-1 Local Storage', 'lshared'],
      "a host reaches its own local pool and the cluster's shared pool, not other hosts' local pools",
    );
  });

  test('a local offering puts the VM and its local disks on one host, shared ones never go local', async () => {
    const vm = (
      await server.admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: localOffering,
        diskofferingid: localDisk,
      })
    ).virtualmachine;
    const volumes = (
      await server.admin.request<any>('listVolumes', { virtualmachineid: vm.id, listall: true })
    ).volume;
    assert.equal(volumes.length, 2);
    for (const v of volumes) {
      const pool = await poolOf(v);
      assert.equal(pool.scope, 'HOST', `${v.type} is on local storage`);
      assert.equal(pool.hostid, vm.hostid, `${v.type} is on the VM's host`);
      assert.equal(v.storagetype, 'local');
    }
    const other = (
      await server.admin.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared })
    ).virtualmachine;
    const root = (
      await server.admin.request<any>('listVolumes', { virtualmachineid: other.id, listall: true })
    ).volume[0];
    assert.equal((await poolOf(root)).name, 'lshared');

    // A stopped local VM starts again where its disks are.
    await server.admin.call('stopVirtualMachine', { id: vm.id });
    const again = (await server.admin.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine;
    assert.equal(again.hostid, vm.hostid);

    await assert.rejects(
      server.admin.call('migrateVirtualMachine', { virtualmachineid: vm.id }),
      fails(431, /Unsupported operation, VM uses Local storage, cannot migrate/),
    );
    await assert.rejects(
      server.admin.call('migrateVirtualMachineWithVolume', { virtualmachineid: vm.id }),
      fails(431, /host-local storage/),
    );
    // The shared VM migrates as before.
    const moved = (await server.admin.call<any>('migrateVirtualMachine', { virtualmachineid: other.id }))
      .virtualmachine;
    assert.notEqual(moved.hostid, other.hostid);
    await expungeAll();
    for (const p of (await server.admin.request<any>('listStoragePools', { zoneid })).storagepool)
      assert.equal(p.disksizeallocated, 0, `${p.name} is given back its allocation`);
  });

  test('local disks need room on one host: the fourth 20 GB VM fails and leaves nothing', async () => {
    const deploys = await Promise.allSettled(
      Array.from({ length: 4 }, () =>
        server.admin.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid: localOffering,
          rootdisksize: 20,
        }),
      ),
    );
    const ok = deploys.filter((d) => d.status === 'fulfilled') as PromiseFulfilledResult<any>[];
    const failed = deploys.filter((d) => d.status === 'rejected') as PromiseRejectedResult[];
    assert.equal(ok.length, 3);
    assert.equal(new Set(ok.map((d) => d.value.virtualmachine.hostid)).size, 3, 'one per host');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].reason.errorcode, 533, failed[0].reason.message);
    assert.match(failed[0].reason.message, /local storage/);
    assert.equal(
      (await server.admin.request<any>('listVirtualMachines', { zoneid, listall: true })).count,
      3,
    );
    for (const p of (await server.admin.request<any>('listStoragePools', { zoneid, scope: 'HOST' }))
      .storagepool)
      assert.ok(p.disksizeallocated <= p.capacitybytes, `${p.name} is not overcommitted`);
    await expungeAll();
  });

  test('a host whose local storage holds volumes is not deleted, and nothing of it goes', async () => {
    const vm = (
      await server.admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: localOffering,
      })
    ).virtualmachine;
    await server.admin.call('stopVirtualMachine', { id: vm.id });
    await assert.rejects(
      server.admin.request('deleteHost', { id: vm.hostid, forced: true }),
      fails(536, /local storage still holds volumes \(ROOT-\d+\)/),
    );
    const host = (await server.admin.request<any>('listHosts', { id: vm.hostid })).host[0];
    assert.equal(host.state, 'Up');
    const pools = await server.admin.request<any>('listStoragePools', { hostid: vm.hostid, scope: 'HOST' });
    assert.equal(pools.count, 1);
    await expungeAll();
  });

  test('switching local storage on for a zone gives its Up hosts their pools at once', async () => {
    const admin = server.admin;
    const late = (
      await admin.request<any>('createZone', {
        name: 'late',
        networktype: 'Basic',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
      })
    ).zone.id;
    const pod = await createPod(admin, late, 'latepod', 79);
    const cluster = await createCluster(admin, late, pod, 'latecluster');
    const m = startAgent(server.agentUrl, { token: 'late-token', name: 'm', hosts: 1 });
    try {
      await m.waitForLog('connected to management server');
      // The agent presents its host just after connecting.
      await waitUntil(
        () =>
          admin
            .request('addHost', {
              zoneid: late,
              podid: pod,
              clusterid: cluster,
              url: 'agent://m',
              username: 'root',
              password: 'late-token',
              hypervisor: 'Simulator',
            })
            .then(
              () => true,
              () => false,
            ),
        10_000,
        'host m added',
      );
      await waitUntil(
        async () => (await admin.request<any>('listHosts', { zoneid: late, state: 'Up' })).count === 1,
        15_000,
        'host m Up',
      );
      // Give a (wrong) pool time to appear: the zone has no local storage yet.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await admin.request<any>('listStoragePools', { zoneid: late })).count ?? 0, 0);
      await admin.request('updateZone', { id: late, localstorageenabled: true });
      const pools = await admin.request<any>('listStoragePools', { zoneid: late, scope: 'HOST' });
      assert.equal(pools.count, 1);
      assert.equal(pools.storagepool[0].hostname, 'm');
      // Switching it again makes no second pool.
      await admin.request('updateZone', { id: late, localstorageenabled: false });
      await admin.request('updateZone', { id: late, localstorageenabled: true });
      assert.equal((await admin.request<any>('listStoragePools', { zoneid: late, scope: 'HOST' })).count, 1);
      // The host goes, and its empty local pool with it.
      await admin.request('deleteHost', { id: pools.storagepool[0].hostid, forced: true });
      assert.equal((await admin.request<any>('listStoragePools', { zoneid: late })).count ?? 0, 0);
    } finally {
      await m.kill();
    }
  });

  test('local offerings are refused in a zone without local storage, and nothing is created', async () => {
    const plain = (
      await server.admin.request<any>('createZone', {
        name: 'nolocal',
        networktype: 'Basic',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
      })
    ).zone.id;
    const before = (await server.admin.request<any>('listVolumes', { listall: true })).count ?? 0;
    await assert.rejects(
      server.admin.request('createVolume', { zoneid: plain, diskofferingid: localDisk, name: 'x' }),
      fails(431, /Zone is not configured to use local storage but volume's disk offering local-10 uses it/),
    );
    await assert.rejects(
      server.admin.request('deployVirtualMachine', {
        zoneid: plain,
        templateid,
        serviceofferingid: localOffering,
      }),
      (e: any) => e.errorcode === 431,
    );
    assert.equal((await server.admin.request<any>('listVolumes', { listall: true })).count ?? 0, before);
  });
});

describe('explicit dedication', () => {
  let a: Awaited<ReturnType<typeof createAccountAndLogin>>;
  let b: Awaited<ReturnType<typeof createAccountAndLogin>>;
  before(async () => {
    a = await createAccountAndLogin(server, { name: 'dedi-a' });
    b = await createAccountAndLogin(server, { name: 'dedi-b' });
  });

  test('a host dedicated to an account runs only its VMs; its other VMs prefer it', async () => {
    const admin = server.admin;
    await assert.rejects(
      a.client.request('dedicateHost', { hostid: hosts['l-1'].id, domainid: rootDomain }),
      (e: any) => e.errorcode === 401 || e.errorcode === 432,
    );
    const d = (
      await admin.call<any>('dedicateHost', {
        hostid: hosts['l-1'].id,
        domainid: rootDomain,
        account: 'dedi-a',
      })
    ).dedicatedhost;
    assert.equal(d.hostid, hosts['l-1'].id);
    assert.equal(d.hostname, 'l-1');
    assert.equal(d.domainid, rootDomain);
    assert.equal(d.accountid, a.account.id);
    assert.ok(d.affinitygroupid);
    const listed = await admin.request<any>('listDedicatedHosts', {});
    assert.equal(listed.count, 1);
    const { jobid: _j, jobstatus: _s, ...fields } = d;
    assert.deepEqual(listed.dedicatedhost[0], fields);
    const group = (await a.client.request<any>('listAffinityGroups', {})).affinitygroup[0];
    assert.equal(group.id, d.affinitygroupid);
    assert.equal(group.type, 'ExplicitDedication');
    assert.equal(group.name, 'DedicatedHostGrp-dedi-a');
    for (const type of ['ExplicitDedication', 'explicitdedication']) {
      const byType = await a.client.request<any>('listAffinityGroups', { type });
      assert.deepEqual(
        byType.affinitygroup?.map((g: any) => g.id),
        [d.affinitygroupid],
        type,
      );
    }
    await assert.rejects(
      admin.call('dedicateHost', { hostid: hosts['l-1'].id, domainid: rootDomain }),
      fails(431, /Host l-1 is already dedicated/),
    );

    const bVms = [];
    for (let i = 0; i < 4; i++)
      bVms.push(
        (await b.client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared }))
          .virtualmachine,
      );
    for (const vm of bVms) {
      const placed = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0];
      assert.notEqual(placed.hostid, hosts['l-1'].id, "another account's VM stays off the dedicated host");
    }
    const own = (
      await a.client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared })
    ).virtualmachine;
    assert.equal(
      (await admin.request<any>('listVirtualMachines', { id: own.id })).virtualmachine[0].hostid,
      hosts['l-1'].id,
      "the owner's VM goes to its dedicated host first",
    );
    const explicit = (
      await a.client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: shared,
        affinitygroupids: d.affinitygroupid,
      })
    ).virtualmachine;
    assert.equal(
      (await admin.request<any>('listVirtualMachines', { id: explicit.id })).virtualmachine[0].hostid,
      hosts['l-1'].id,
    );

    // A host running another account's VMs cannot be dedicated.
    const bHost = (await admin.request<any>('listVirtualMachines', { id: bVms[0].id })).virtualmachine[0]
      .hostid;
    await assert.rejects(
      admin.call('dedicateHost', { hostid: bHost, domainid: rootDomain, account: 'dedi-a' }),
      fails(
        431,
        /found to be unsuitable for explicit dedication as it is running instances of another account/,
      ),
    );
    assert.equal((await admin.request<any>('listDedicatedHosts', {})).count, 1, 'nothing half-created');
    // Nor a cluster holding a host dedicated to someone else.
    await assert.rejects(
      admin.call('dedicateCluster', { clusterid, domainid: rootDomain, account: 'dedi-b' }),
      (e: any) => e.errorcode === 431,
    );
    // The explicit VM cannot start elsewhere: with its host full it fails instead of spilling over.
    await admin.call('stopVirtualMachine', { id: explicit.id });
    await admin.request('updateHost', { id: hosts['l-1'].id, allocationstate: 'Disable' });
    await assert.rejects(
      admin.call('startVirtualMachine', { id: explicit.id }),
      fails(533, /ExplicitDedication/),
    );
    await admin.request('updateHost', { id: hosts['l-1'].id, allocationstate: 'Enable' });

    await admin.call('releaseDedicatedHost', { hostid: hosts['l-1'].id });
    assert.equal((await admin.request<any>('listDedicatedHosts', {})).count ?? 0, 0);
    assert.equal((await a.client.request<any>('listAffinityGroups', {})).count ?? 0, 0, 'the group goes too');
    await assert.rejects(
      admin.call('releaseDedicatedHost', { hostid: hosts['l-1'].id }),
      fails(431, /is not dedicated/),
    );
    await expungeAll();
  });

  test('deleting the ExplicitDedication group releases its dedications, as upstream', async () => {
    const d = (
      await server.admin.call<any>('dedicateHost', {
        hostid: hosts['l-2'].id,
        domainid: rootDomain,
        account: 'dedi-b',
      })
    ).dedicatedhost;
    await b.client.call('deleteAffinityGroup', { id: d.affinitygroupid });
    assert.equal((await server.admin.request<any>('listDedicatedHosts', {})).count ?? 0, 0);
  });

  test('a zone dedicated to one account refuses other accounts', async () => {
    const admin = server.admin;
    const d = (await admin.call<any>('dedicateZone', { zoneid, domainid: rootDomain, account: 'dedi-a' }))
      .dedicatedzone;
    assert.equal(d.zonename, 'lz');
    assert.equal(
      (await admin.request<any>('listDedicatedZones', { account: 'dedi-a', domainid: rootDomain })).count,
      1,
    );
    await assert.rejects(
      b.client.call('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared }),
      fails(431, /Zone lz not available for the user account/),
    );
    assert.equal(
      (await b.client.request<any>('listVirtualMachines', {})).count ?? 0,
      0,
      'the failed deploy left nothing',
    );
    const vm = (
      await a.client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    await admin.call('releaseDedicatedZone', { zoneid });
    await expungeAll();
  });

  test('a cluster dedicated to a domain serves accounts of that domain and its children only', async () => {
    const admin = server.admin;
    const sub = (await admin.request<any>('createDomain', { name: 'dedi-sub' })).domain;
    const c = await createAccountAndLogin(server, {
      name: 'dedi-c',
      domainid: sub.id,
      domainPath: '/dedi-sub',
    });
    const d = (await admin.call<any>('dedicateCluster', { clusterid, domainid: sub.id })).dedicatedcluster;
    assert.equal(d.clusterid, clusterid);
    assert.equal(d.accountid, undefined);
    await assert.rejects(
      b.client.call('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared }),
      (e: any) => e.errorcode === 533,
    );
    const vm = (
      await c.client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    await admin.call('releaseDedicatedCluster', { clusterid });
    await expungeAll();
  });
});

describe('storage tags', () => {
  test("an offering's storage tags pick the pool carrying them all; none carrying them is a clear refusal", async () => {
    const admin = server.admin;
    const podid = hosts['l-1'].podid;
    const gold = (
      await admin.request<any>('createStoragePool', {
        zoneid,
        podid,
        clusterid,
        name: 'lgold',
        url: `file://${server.dataDir}/lgold`,
        capacitybytes: 2 ** 40,
        tags: 'gold,ssd',
      })
    ).storagepool;
    const goldRoot = (
      await admin.request<any>('createServiceOffering', {
        name: 'gold-small',
        displaytext: 'gold small',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
        tags: 'gold',
      })
    ).serviceoffering.id;
    const goldDisk = (
      await admin.request<any>('createDiskOffering', {
        name: 'gold-5',
        displaytext: 'gold 5 GB',
        disksize: 5,
        tags: 'ssd,gold',
      })
    ).diskoffering.id;
    const platinumDisk = (
      await admin.request<any>('createDiskOffering', {
        name: 'platinum-5',
        displaytext: 'platinum 5 GB',
        disksize: 5,
        tags: 'gold,platinum',
      })
    ).diskoffering.id;
    // Several deploys: the untagged pool is emptier, so only the tags can keep them off it.
    for (let i = 0; i < 3; i++) {
      const vm = (
        await admin.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid: goldRoot,
          diskofferingid: goldDisk,
        })
      ).virtualmachine;
      const volumes = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, listall: true }))
        .volume;
      assert.equal(volumes.length, 2);
      for (const v of volumes)
        assert.equal(v.storageid, gold.id, `${v.type} of deploy ${i} is on the gold pool`);
    }
    const vm = (
      await admin.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: shared })
    ).virtualmachine;
    // Offering tags ⊆ pool tags: gold is there, platinum is not, so no pool qualifies.
    const volume = (
      await admin.call<any>('createVolume', { zoneid, name: 'plat', diskofferingid: platinumDisk })
    ).volume;
    await assert.rejects(
      admin.call('attachVolume', { id: volume.id, virtualmachineid: vm.id }),
      fails(533, /primary storage pool that is Up and tagged gold,platinum/),
    );
    const after = (await admin.request<any>('listVolumes', { id: volume.id })).volume[0];
    assert.equal(after.state, 'Allocated', 'the refused volume has no file and no pool');
    assert.equal(after.storageid, undefined);
    assert.equal(after.virtualmachineid, undefined);
    await expungeAll();
    assert.equal((await poolOf({ storageid: gold.id })).disksizeallocated, 0, 'the gold pool is given back');
    await admin.request('deleteStoragePool', { id: gold.id });
  });
});

describe('primary storage pool types on simulator hosts', () => {
  test('managed iSCSI (LinuxTgt) pools: recorded as upstream managed pools, the SSH key sealed and never shown, bad settings refused', async () => {
    const admin = server.admin;
    const podid = hosts['l-1'].podid;
    const sshkey = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
    const base = {
      zoneid,
      podid,
      clusterid,
      name: 'san',
      provider: 'LinuxTgt',
      url: 'iscsi://10.9.8.8/srv/luns',
    };
    await assert.rejects(admin.request('createStoragePool', base), fails(431, /sshkey/));
    await assert.rejects(
      admin.request('createStoragePool', { ...base, 'details[0].sshkey': 'not a key' }),
      fails(431, /not a usable private key/),
    );
    await assert.rejects(
      admin.request('createStoragePool', { ...base, url: 'iscsi://10.9.8.8/', 'details[0].sshkey': sshkey }),
      fails(431, /directory/),
    );
    await assert.rejects(
      admin.request('createStoragePool', {
        ...base,
        'details[0].sshkey': sshkey,
        'details[0].initiators': '10.0.0.0/8;rm',
      }),
      fails(431, /initiator/),
    );
    await assert.rejects(
      admin.request('createStoragePool', {
        ...base,
        provider: 'DefaultPrimary',
        managed: true,
        url: '/srv/x',
      }),
      fails(431, /not managed/),
    );
    await assert.rejects(
      admin.request('createStoragePool', { ...base, provider: 'Nope', 'details[0].sshkey': sshkey }),
      fails(431, /Unsupported storage provider/),
    );
    // Simulated hosts have no storage server behind them: the pool is recorded, not probed.
    const san = (
      await admin.request<any>('createStoragePool', {
        ...base,
        managed: true,
        capacitybytes: 100 * GiB,
        'details[0].sshkey': sshkey,
        'details[0].sshuser': 'storage',
      })
    ).storagepool;
    assert.equal(san.type, 'Iscsi');
    assert.equal(san.provider, 'LinuxTgt');
    assert.equal(san.managed, true);
    assert.equal(san.ipaddress, '10.9.8.8');
    assert.equal(san.path, '/srv/luns');
    assert.equal(san.disksizetotal, 100 * GiB);
    assert.ok(!JSON.stringify(san).includes('PRIVATE KEY'), 'the key is never shown');
    const db = new Database(join(server.dataDir, 'nimbostack.db'), { readonly: true, fileMustExist: true });
    const row = db
      .prepare('select auth_user, provider_secret, details, port, url from storage_pools where uuid = ?')
      .get(san.id) as any;
    db.close();
    assert.equal(row.auth_user, 'storage');
    assert.equal(row.port, 3260);
    assert.equal(row.url, 'iscsi://10.9.8.8:3260/srv/luns');
    assert.ok(
      row.provider_secret && !row.provider_secret.includes('PRIVATE KEY'),
      'the key is stored sealed',
    );
    assert.deepEqual(JSON.parse(row.details), {
      sshHost: '10.9.8.8',
      sshPort: 22,
      sshUser: 'storage',
      initiators: [],
    });
    await assert.rejects(
      admin.request('updateStoragePool', { id: san.id, url: 'nfs://10.9.8.6/x' }),
      fails(431),
    );
    await admin.request('deleteStoragePool', { id: san.id });
  });

  test('rbd:// and nfs:// pools: upstream types, measured by a host of the cluster, the cephx key sealed and never shown', async () => {
    const admin = server.admin;
    const podid = hosts['l-1'].podid;
    const key = 'AQBzdA1lAAAAABAAq+u/XXkmoShPpqWjyE4cgw==';
    const rbd = (
      await admin.request<any>('createStoragePool', {
        zoneid,
        podid,
        clusterid,
        name: 'ceph',
        url: `rbd://admin:${key}@10.9.8.7/vms`,
      })
    ).storagepool;
    assert.equal(rbd.type, 'RBD');
    assert.equal(rbd.ipaddress, '10.9.8.7');
    assert.equal(rbd.path, 'vms');
    // Without capacitybytes a host of the cluster measures the pool (the simulator: its disk size).
    assert.equal(rbd.disksizetotal, 30 * GiB);
    assert.ok(!JSON.stringify(rbd).includes(key.slice(0, 12)), 'the key is never shown');
    const db = new Database(join(server.dataDir, 'nimbostack.db'), { readonly: true, fileMustExist: true });
    const row = db
      .prepare('select auth_user, auth_secret, port, url from storage_pools where uuid = ?')
      .get(rbd.id) as any;
    db.close();
    assert.equal(row.auth_user, 'admin');
    assert.equal(row.port, 6789);
    assert.equal(row.url, 'rbd://admin@10.9.8.7:6789/vms');
    assert.ok(row.auth_secret && !row.auth_secret.includes(key.slice(0, 12)), 'the key is stored sealed');

    const nfs = (
      await admin.request<any>('createStoragePool', {
        zoneid,
        podid,
        clusterid,
        name: 'nas',
        url: 'nfs://10.9.8.6/export/vms',
      })
    ).storagepool;
    assert.equal(nfs.type, 'NetworkFilesystem');
    assert.equal(nfs.disksizetotal, 30 * GiB);
    const listed = await admin.request<any>('listStoragePools', { clusterid, scope: 'CLUSTER' });
    assert.deepEqual(listed.storagepool.map((p: any) => `${p.name}:${p.type}`).sort(), [
      'ceph:RBD',
      'lshared:Filesystem',
      'nas:NetworkFilesystem',
    ]);
    const base = { zoneid, podid, clusterid, name: 'bad' };
    await assert.rejects(
      admin.request('createStoragePool', { ...base, url: 'rbd://10.9.8.7' }),
      fails(431, /Invalid RBD URL/),
    );
    await assert.rejects(
      admin.request('createStoragePool', { ...base, url: 'rbd://admin@10.9.8.7/vms' }),
      fails(431, /Invalid RBD URL/),
    );
    await assert.rejects(
      admin.request('createStoragePool', { ...base, url: 'rbd://10.9.8.7:99999/vms' }),
      fails(431, /Invalid port/),
    );
    await assert.rejects(
      admin.request('addImageStore', { zoneid, provider: 'NFS', url: 'rbd://10.9.8.7/vms' }),
      fails(431, /Unsupported storage protocol rbd/),
    );
    assert.deepEqual(
      (await admin.request<any>('listStorageProviders', { type: 'primary' })).dataStoreProvider,
      [
        { name: 'DefaultPrimary', type: 'primary' },
        { name: 'LinuxTgt', type: 'primary' },
      ],
    );
    await admin.request('deleteStoragePool', { id: rbd.id });
    await admin.request('deleteStoragePool', { id: nfs.id });
  });
});
