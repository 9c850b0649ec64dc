/**
 * Replays, page by page, the API calls the Apache CloudStack web UI (4.22) makes, with the
 * parameters it sends and the fields it reads (facts from its source and from its traffic, see
 * ../shared/docs/client-compat.md and docs/ui.md), and checks upstream's answers: the calls before
 * login, the menus' gating commands in listApis, the deploy wizard's offering lists for the
 * owner, the metrics views, and the answers of features that are off.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { seededLocalZone, startAgent, type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let admin: CloudStackClient;

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  admin = server.admin;
});

let agent: TestAgent | undefined;

after(async () => {
  await agent?.kill();
  await server?.stop();
});

/** The UI's own request: GET /client/api/?command=…&response=json with the session's cookies. */
async function uiGet(command: string, params: Record<string, string> = {}, cookie?: string) {
  const q = new URLSearchParams({ command, ...params, response: 'json' });
  const res = await fetch(`${server.api}/?${q}`, { headers: cookie ? { cookie } : {} });
  return { status: res.status, body: (await res.json()) as any, headers: res.headers };
}

describe('the Instances, Zones, Hosts, Volumes, Clusters and Primary Storage pages', () => {
  test('every command the menus are gated on is in listApis', async () => {
    const apis = (await admin.request<any>('listApis', {})).api.map((a: any) => a.name);
    for (const name of [
      'listVirtualMachinesMetrics',
      'listZonesMetrics',
      'listHostsMetrics',
      'listVolumesMetrics',
      'listClustersMetrics',
      'listStoragePoolsMetrics',
    ])
      assert.ok(apis.includes(name), `${name} in listApis`);
  });

  test("the metrics views: upstream's fields, from the agents' measurements", async () => {
    const { zoneid, templateid, small } = await seededLocalZone(admin);
    await admin.request('updateConfiguration', { name: 'host.stats.interval', value: '1000' });
    await admin.request('updateConfiguration', { name: 'vm.stats.interval', value: '1000' });
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'ui-m',
      })
    ).virtualmachine;

    // The simulated host reports the memory of its running instances as in use.
    const host = await waitUntil(
      async () => {
        const h = (await admin.request<any>('listHostsMetrics', {})).host[0];
        return h.memoryused === vm.memory * 1024 * 1024 ? h : undefined;
      },
      15_000,
      'host statistics with the new instance',
    );
    assert.equal(host.instances, '1 / 1');
    assert.equal(host.cpuused, '0%');
    assert.equal(host.cpuusedghz, '0.00 Ghz');
    assert.match(host.cputotalghz, /^\d+\.\d\d Ghz$/);
    assert.equal(host.cpuallocatedghz, `${((vm.cpunumber * vm.cpuspeed) / 1000).toFixed(2)} Ghz`);
    assert.equal(host.memoryallocatedgb, `${(vm.memory / 1024).toFixed(2)} GB`);
    assert.equal(host.memoryusedgb, `${(vm.memory / 1024).toFixed(2)} GB`);
    assert.equal(host.powerstate, 'Disabled');
    for (const flag of [
      'cputhreshold',
      'cpuallocatedthreshold',
      'memorythreshold',
      'memoryallocateddisablethreshold',
    ])
      assert.equal(host[flag], false, flag);
    assert.equal(host.networkread, '0.00 GB');

    const m = await waitUntil(
      async () =>
        (await admin.request<any>('listVirtualMachinesMetrics', { id: vm.id })).virtualmachine.find(
          (v: any) => v.memorykbs !== undefined,
        ),
      15_000,
      'instance statistics',
    );
    assert.equal(m.cputotal, `${((vm.cpunumber * vm.cpuspeed) / 1000).toFixed(1)} Ghz`);
    assert.equal(m.memorytotal, `${(vm.memory / 1024).toFixed(2)} GiB`);
    assert.equal(m.memorykbs, vm.memory * 1024);
    assert.equal(m.networkread, '0.00 MiB');
    assert.equal(m.diskread, '0.00 MiB');
    assert.equal(m.cpuused, '0%');

    const zone = (await admin.request<any>('listZonesMetrics', {})).zone[0];
    assert.equal(zone.state, 'Enabled');
    assert.equal(zone.clusters, '1 / 1');
    assert.match(zone.cputotal, /^\d+\.\d\d Ghz$/);
    assert.match(zone.cpuallocated, /^\d+\.\d\d%$/);
    assert.match(zone.memorytotal, /^\d+\.\d\d GB$/);
    assert.equal(zone.cpuused, '0.00%');
    assert.equal(typeof zone.memoryallocatedthreshold, 'boolean');
    const cluster = (await admin.request<any>('listClustersMetrics', {})).cluster[0];
    assert.equal(cluster.hosts, '1 / 1');
    assert.equal(cluster.memoryallocated, zone.memoryallocated);

    // A threshold of 0 is exceeded by any allocation: the flags follow the settings.
    await admin.request('updateConfiguration', {
      name: 'cluster.memory.allocated.capacity.disablethreshold',
      value: '0',
    });
    const flagged = (await admin.request<any>('listClustersMetrics', {})).cluster[0];
    assert.equal(flagged.memoryallocateddisablethreshold, true);
    assert.equal(flagged.memoryallocatedthreshold, false);

    const pool = (await admin.request<any>('listStoragePoolsMetrics', {})).storagepool[0];
    assert.match(pool.disksizetotalgb, /^\d+\.\d\d GB \(x\d+(\.\d+)?\)$/);
    assert.match(pool.disksizeallocatedgb, /^\d+\.\d\d GB$/);
    assert.equal(typeof pool.storageallocateddisablethreshold, 'boolean');
    const volumes = (await admin.request<any>('listVolumesMetrics', { virtualmachineid: vm.id })).volume;
    assert.equal(volumes[0].sizegb, `${(volumes[0].size / 1024 ** 3).toFixed(2)} GB`);

    // Users see their own instances' metrics; the infrastructure views stay admin-only.
    const { client } = await createAccountAndLogin(server, { name: 'ui-metrics-user' });
    assert.equal((await client.request<any>('listVirtualMachinesMetrics', {})).count ?? 0, 0);
    await assert.rejects(client.request('listHostsMetrics', {}), /not available|permission|432/i);

    // A stopped instance is left out of the next round, and its sample goes with it.
    await admin.call('stopVirtualMachine', { id: vm.id });
    await waitUntil(
      async () =>
        (await admin.request<any>('listVirtualMachinesMetrics', { id: vm.id })).virtualmachine.find(
          (v: any) => v.memorykbs === undefined,
        ),
      15_000,
      'the stopped instance without statistics',
    );
  });
});

describe('Instances: the "Migrate instance to another host" wizard', () => {
  test('findHostsForMigration lists the other hosts with their suitability; migrating to a suitable one works', async () => {
    const { zoneid, templateid, small } = await seededLocalZone(admin);
    const local = (await admin.request<any>('listHosts', { name: 'local-host' })).host[0];
    agent = startAgent(server.agentUrl, { token: 'ui-migrate-token', name: 'uim', hosts: 1 });
    // The agent presents its host once connected; until then addHost answers that none is.
    const added = await waitUntil(
      () =>
        admin
          .request<any>('addHost', {
            zoneid,
            podid: local.podid,
            clusterid: local.clusterid,
            url: 'agent://uim',
            username: 'root',
            password: 'ui-migrate-token',
            hypervisor: 'Simulator',
          })
          .then(
            (r) => r.host[0],
            () => undefined,
          ),
      15_000,
      'the agent presenting host uim',
    );
    await waitUntil(
      async () => (await admin.request<any>('listHosts', { id: added.id })).host[0].state === 'Up',
      10_000,
      'uim Up',
    );
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'ui-mig',
        hostid: local.id,
      })
    ).virtualmachine;
    const found = await admin.request<any>('findHostsForMigration', {
      virtualmachineid: vm.id,
      page: 1,
      pagesize: 10,
    });
    assert.equal(found.count, 1);
    const [other] = found.host;
    assert.equal(other.id, added.id);
    assert.equal(typeof other.suitableformigration, 'boolean');
    assert.equal(other.requiresStorageMotion, false);
    for (const field of ['name', 'clustername', 'podname', 'memoryallocatedpercentage'])
      assert.ok(field in other, field);
    if (other.suitableformigration) {
      const moved = (
        await admin.call<any>('migrateVirtualMachine', { virtualmachineid: vm.id, hostid: other.id })
      ).virtualmachine;
      assert.equal(moved.hostid, other.id);
      // Back on the first host, which is now the suitable other one.
      const back = await admin.request<any>('findHostsForMigration', { virtualmachineid: vm.id });
      assert.equal(back.host[0].id, local.id);
    } else {
      await assert.rejects(
        admin.call('migrateVirtualMachine', { virtualmachineid: vm.id, hostid: other.id }),
      );
    }
    // Disabling the candidate host makes it unsuitable; a Stopped instance cannot be migrated live.
    const candidate = (await admin.request<any>('findHostsForMigration', { virtualmachineid: vm.id }))
      .host[0];
    await admin.request('updateHost', { id: candidate.id, allocationstate: 'Disable' });
    const disabled = await admin.request<any>('findHostsForMigration', { virtualmachineid: vm.id });
    assert.deepEqual(
      disabled.host.map((h: any) => [h.id, h.suitableformigration]),
      [[candidate.id, false]],
    );
    await admin.request('updateHost', { id: candidate.id, allocationstate: 'Enable' });
    await admin.call('stopVirtualMachine', { id: vm.id });
    await assert.rejects(
      admin.request('findHostsForMigration', { virtualmachineid: vm.id }),
      (e: any) => e.errorcode === 431 && /must be Running/.test(e.errortext),
    );
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});

describe('Instances: the Settings tab', () => {
  test('listDetailOptions answers the (empty) map of keys with fixed values; details stay free-form', async () => {
    const { zoneid, templateid, small } = await seededLocalZone(admin);
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'ui-settings',
        startvm: false,
      })
    ).virtualmachine;
    const r = await uiGet(
      'listDetailOptions',
      { resourcetype: 'UserVm', resourceid: vm.id },
      await sessionCookie(admin),
    );
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { listdetailoptionsresponse: { detailoptions: { details: {} } } });
    await admin.request('updateVirtualMachine', { id: vm.id, details: [{ 'my.key': 'v' }] });
    const listed = (await admin.request<any>('listVirtualMachines', { id: vm.id })).virtualmachine[0];
    assert.equal(listed.details['my.key'], 'v');
    await assert.rejects(
      admin.request('listDetailOptions', { resourcetype: 'Volume' }),
      (e: any) => e.errorcode === 431 && /not supported/.test(e.errortext),
    );
    const { client } = await createAccountAndLogin(server, { name: 'ui-settings-user' });
    await assert.rejects(
      client.request('listDetailOptions', { resourcetype: 'UserVm', resourceid: vm.id }),
      (e: any) => e.errorcode === 531,
    );
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});

describe('Infrastructure: the zone wizard (Basic zone)', () => {
  test('its calls in order build a working zone; the guest network is made by createNetwork', async () => {
    const zone = (
      await admin.request<any>('createZone', {
        networktype: 'Basic',
        name: 'ui-wizard-zone',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
        localstorageenabled: false,
        securitygroupenabled: true,
      })
    ).zone;
    await admin.call('createPhysicalNetwork', { zoneid: zone.id, name: 'PhysicalNetworkInBasicZone' });
    const pnId = (await admin.request<any>('listPhysicalNetworks', { zoneid: zone.id })).physicalnetwork[0]
      .id;
    await admin.call('addTrafficType', { physicalnetworkid: pnId, traffictype: 'Management' });
    await admin.call('addTrafficType', { physicalnetworkid: pnId, traffictype: 'Guest' });
    await admin.call('updatePhysicalNetwork', { id: pnId, state: 'Enabled' });
    for (const name of ['VirtualRouter', 'SecurityGroupProvider']) {
      const nsp = (await admin.request<any>('listNetworkServiceProviders', { name, physicalnetworkid: pnId }))
        .networkserviceprovider[0];
      if (name === 'VirtualRouter') {
        const element = (await admin.request<any>('listVirtualRouterElements', { nspid: nsp.id }))
          .virtualrouterelement[0];
        await admin.call('configureVirtualRouterElement', { id: element.id, enabled: true });
      }
      await admin.call('updateNetworkServiceProvider', { id: nsp.id, state: 'Enabled' });
    }
    const offering = (
      await admin.request<any>('listNetworkOfferings', { state: 'Enabled', guestiptype: 'Shared' })
    ).networkoffering.find((o: any) => o.name === 'DefaultSharedNetworkOfferingWithSGService');
    const network = (
      await admin.request<any>('createNetwork', {
        zoneid: zone.id,
        name: 'guestNetworkForBasicZone',
        displaytext: 'guestNetworkForBasicZone',
        networkofferingid: offering.id,
      })
    ).network;
    assert.equal(network.name, 'guestNetworkForBasicZone');
    const pod = (
      await admin.request<any>('createPod', {
        zoneid: zone.id,
        name: 'ui-wizard-pod',
        gateway: '10.9.0.1',
        netmask: '255.255.255.0',
        startip: '10.9.0.10',
        endip: '10.9.0.50',
      })
    ).pod;
    await admin.request('createVlanIpRange', {
      podid: pod.id,
      networkid: network.id,
      gateway: '10.9.1.1',
      netmask: '255.255.255.0',
      startip: '10.9.1.10',
      endip: '10.9.1.200',
      forvirtualnetwork: false,
    });
    const listed = (await admin.request<any>('listNetworks', { zoneid: zone.id })).network;
    assert.deepEqual(
      listed.map((n: any) => [n.id, n.cidr]),
      [[network.id, '10.9.1.0/24']],
    );
    // A Basic zone has one guest network: a second is refused and nothing is written.
    await assert.rejects(
      admin.request('createNetwork', { zoneid: zone.id, name: 'second', networkofferingid: offering.id }),
      (e: any) =>
        e.errorcode === 431 && /already has its guest network guestNetworkForBasicZone/.test(e.errortext),
    );
    assert.equal((await admin.request<any>('listNetworks', { zoneid: zone.id })).count, 1);
    const cluster = (
      await admin.request<any>('addCluster', {
        zoneid: zone.id,
        podid: pod.id,
        hypervisor: 'Simulator',
        clustertype: 'CloudManaged',
        clustername: 'ui-wizard-cluster',
      })
    ).cluster[0];
    await admin.request('createStoragePool', {
      zoneid: zone.id,
      podid: pod.id,
      clusterid: cluster.id,
      name: 'ui-wizard-primary',
      scope: 'cluster',
      url: `file://${server.dataDir}/ui-wizard-primary`,
    });
    await admin.request('addImageStore', {
      zoneid: zone.id,
      name: 'ui-wizard-secondary',
      provider: 'NFS',
      url: `file://${server.dataDir}/ui-wizard-secondary`,
    });
    await admin.request('updateZone', { id: zone.id, allocationstate: 'Enabled' });
    const metrics = (await admin.request<any>('listZonesMetrics', { id: zone.id })).zone[0];
    assert.equal(metrics.state, 'Enabled');
    assert.equal(metrics.clusters, '1 / 1');
  });
});

describe('Infrastructure: Management servers', () => {
  test('this server with its hosts, jobs and machine figures; gated in listApis', async () => {
    const apis = (await admin.request<any>('listApis', {})).api.map((a: any) => a.name);
    assert.ok(apis.includes('listManagementServersMetrics'));
    const [ms] = (await admin.request<any>('listManagementServers', {})).managementserver;
    assert.equal(ms.state, 'Up');
    assert.ok(ms.agents.includes('local-host'));
    assert.equal(ms.agentscount, ms.agents.length);
    assert.match(ms.lastserverstart, /^\d{4}-\d\d-\d\dT/);
    const [m] = (await admin.request<any>('listManagementServersMetrics', { id: ms.id })).managementserver;
    assert.ok(m.availableprocessors >= 1);
    assert.equal(m.systemloadaverages.length, 3);
    assert.ok(m.heapmemoryused > 0 && m.heapmemoryused <= m.heapmemorytotal);
    assert.match(m.systemmemorytotal, /^\d+\.\d\d GB$/);
    assert.equal(m.dbislocal, true);
    assert.equal(
      (await admin.request<any>('listManagementServers', { keyword: 'no-such-server' })).count ?? 0,
      0,
    );
    // The database card: what the database says of itself (SQLite here: embedded, one connection).
    const dbm = (await admin.request<any>('listDbMetrics', {})).dbMetrics;
    assert.match(dbm.version, /^3\.\d+/);
    assert.equal(dbm.connections, 1);
    assert.ok(dbm.uptime >= 0);
    assert.match(dbm.collectiontime, /^\d{4}-/);
    const { client } = await createAccountAndLogin(server, { name: 'ui-ms-user' });
    await assert.rejects(client.request('listManagementServers', {}), (e: any) => e.errorcode === 432);
  });
});

describe('the deploy wizard', () => {
  test('lists the offerings the owner may use with domainid + account', async () => {
    const root = (await admin.request<any>('listDomains', { name: 'ROOT' })).domain[0];
    const sub = (await admin.request<any>('createDomain', { name: 'ui-sub' })).domain;
    const other = (await admin.request<any>('createDomain', { name: 'ui-other' })).domain;
    const mine = (
      await admin.request<any>('createServiceOffering', {
        name: 'ui-sub-only',
        displaytext: 'sub',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
        domainid: sub.id,
      })
    ).serviceoffering;
    const theirs = (
      await admin.request<any>('createServiceOffering', {
        name: 'ui-other-only',
        displaytext: 'other',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
        domainid: other.id,
      })
    ).serviceoffering;
    const disk = (
      await admin.request<any>('createDiskOffering', {
        name: 'ui-other-disk',
        displaytext: 'other',
        disksize: 1,
        domainid: other.id,
      })
    ).diskoffering;
    const { client } = await createAccountAndLogin(server, {
      name: 'ui-wizard',
      domainid: sub.id,
      domainPath: 'ui-sub',
    });
    const names = (r: any) => (r.serviceoffering ?? []).map((o: any) => o.name);

    // The user's wizard names the user itself: public ones and its domain's, not another domain's.
    const own = await client.request<any>('listServiceOfferings', { domainid: sub.id, account: 'ui-wizard' });
    assert.ok(names(own).includes('Small Instance'));
    assert.ok(names(own).includes(mine.name));
    assert.ok(!names(own).includes(theirs.name));
    // The admin deploying for that user sees the same list.
    const forUser = await admin.request<any>('listServiceOfferings', {
      domainid: sub.id,
      account: 'ui-wizard',
    });
    assert.deepEqual(names(forUser).sort(), names(own).sort());
    // The root admin's own wizard: everything.
    const forAdmin = await admin.request<any>('listServiceOfferings', {
      domainid: root.id,
      account: 'admin',
    });
    assert.ok(names(forAdmin).includes(mine.name) && names(forAdmin).includes(theirs.name));
    const disks = await admin.request<any>('listDiskOfferings', { domainid: root.id, account: 'admin' });
    assert.ok(disks.diskoffering.some((d: any) => d.id === disk.id));
    const userDisks = await client.request<any>('listDiskOfferings', {
      domainid: sub.id,
      account: 'ui-wizard',
    });
    assert.ok(!(userDisks.diskoffering ?? []).some((d: any) => d.id === disk.id));
    assert.ok((userDisks.diskoffering ?? []).length > 0);
    // domainid alone keeps its meaning: the offerings limited to that domain.
    const limited = await admin.request<any>('listServiceOfferings', { domainid: sub.id });
    assert.deepEqual(names(limited), [mine.name]);
    // A user cannot ask for another account's list.
    await assert.rejects(
      client.request('listServiceOfferings', { domainid: root.id, account: 'admin' }),
      (e: any) => e.errorcode === 531,
    );
  });
});

describe('before login', () => {
  test('the login page: OAuth providers and password reset answered without a session', async () => {
    const oauth = await uiGet('listOauthProvider');
    assert.equal(oauth.status, 200);
    // An empty list is an empty object, as upstream's serializer writes it.
    assert.deepEqual(oauth.body, { listoauthproviderresponse: {} });
    const reset = await uiGet('forgotPassword', { username: 'nobody', domain: '/' });
    assert.equal(reset.status, 200);
    assert.equal(String(reset.body.forgotpasswordresponse.success), 'true');
    const badDomain = await uiGet('forgotPassword', { username: 'admin', domain: 'no-such' });
    assert.equal(badDomain.status, 431);
    assert.match(
      badDomain.body.forgotpasswordresponse.errortext,
      /Unable to find the domain from the path \/no-such\//,
    );
    // Other commands still need a session: 401, which the UI takes for a logout.
    assert.equal((await uiGet('listZones')).status, 401);
    assert.equal((await uiGet('listIdps')).status, 401);
  });

  test('logout without a session answers success and clears the cookies', async () => {
    const res = await fetch(`${server.api}/?command=logout&response=json`, {
      headers: { cookie: 'JSESSIONID=stale; sessionkey=stale' },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { logoutresponse: { description: 'success' } });
    const cleared = res.headers.getSetCookie();
    assert.ok(cleared.some((c) => c.startsWith('JSESSIONID=;')));
    assert.ok(cleared.some((c) => c.startsWith('sessionkey=;')));
    const bare = await uiGet('logout');
    assert.equal(bare.status, 200);
    assert.deepEqual(bare.body, { logoutresponse: { description: 'success' } });
  });
});

describe('after login and on every page', () => {
  test('GetInfo and the noise calls answer as upstream with the features off', async () => {
    const cloudian = await admin.request<any>('cloudianIsEnabled', {});
    assert.deepEqual(cloudian, { cloudianisenabled: { enabled: false } });
    const { client } = await createAccountAndLogin(server, { name: 'ui-noise' });
    assert.equal((await client.request<any>('cloudianIsEnabled', {})).cloudianisenabled.enabled, false);
    // A signed-in user asking for OAuth providers gets the same empty list.
    assert.deepEqual(await client.request<any>('listOauthProvider', {}), {});
  });

  test('System VMs page: an empty list, admins only', async () => {
    const apis = (await admin.request<any>('listApis', {})).api.map((a: any) => a.name);
    assert.ok(apis.includes('listSystemVms'));
    const r = await uiGet('listSystemVms', {}, await sessionCookie(admin));
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { listsystemvmsresponse: {} });
    const { client } = await createAccountAndLogin(server, { name: 'ui-sysvm' });
    await assert.rejects(client.request('listSystemVms', {}), (e: any) => e.errorcode === 432);
  });

  test('Global Settings page: groups with subgroups, settings filed under them', async () => {
    const groups = (await admin.request<any>('listConfigurationGroups', {})).configurationgroup;
    assert.deepEqual(
      groups.map((g: any) => g.name),
      [
        'Access',
        'Compute',
        'Storage',
        'Network',
        'Hypervisor',
        'Management Server',
        'System VMs',
        'Infrastructure',
        'Usage Server',
        'Miscellaneous',
      ],
    );
    const compute = groups.find((g: any) => g.name === 'Compute');
    assert.deepEqual(compute.subgroup[0], { name: 'Virtual Machine', precedence: 1 });
    const access = (await admin.request<any>('listConfigurationGroups', { group: 'access' }))
      .configurationgroup;
    assert.equal(access.length, 1);
    // The page then lists each subgroup's settings.
    const vmSettings = (
      await admin.request<any>('listConfigurations', {
        group: 'Compute',
        subgroup: 'Virtual Machine',
        pagesize: -1,
      })
    ).configuration;
    assert.ok(vmSettings.length > 0);
    for (const s of vmSettings) assert.deepEqual([s.group, s.subgroup], ['Compute', 'Virtual Machine']);
    const one = (await admin.request<any>('listConfigurations', { name: 'host.stats.interval' }))
      .configuration[0];
    assert.deepEqual([one.group, one.subgroup], ['Hypervisor', 'Hypervisor']);
    const alert = (await admin.request<any>('listConfigurations', { name: 'alert.purge.delay' }))
      .configuration;
    if (alert?.length) assert.deepEqual([alert[0].group, alert[0].subgroup], ['Management Server', 'Alerts']);
  });
});

describe('NIMBOSTACK_UI_DIR: another UI build at /client/', () => {
  test('serves the folder beside the API; the UI logs in with a form and calls the API with cookies only', async () => {
    // A stand-in for a UI build: the files an upstream release build has at its top.
    const dir = mkdtempSync(join(tmpdir(), 'nimbo-ui-dir-'));
    mkdirSync(join(dir, 'js'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>other UI</title>');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ apiBase: '/client/api' }));
    writeFileSync(join(dir, 'js', 'app.0123abcd.js'), 'console.log(1)');
    const other = await startServer({ env: { NIMBOSTACK_UI_DIR: dir } });
    try {
      const index = await fetch(`${other.url}/client/`);
      assert.equal(index.status, 200);
      assert.equal(await index.text(), '<!doctype html><title>other UI</title>');
      const config = await fetch(`${other.url}/client/config.json`);
      assert.deepEqual(await config.json(), { apiBase: '/client/api' });
      const js = await fetch(`${other.url}/client/js/app.0123abcd.js`);
      assert.equal(js.status, 200);
      assert.equal(js.headers.get('cache-control'), 'no-cache');
      assert.equal((await fetch(`${other.url}/client/js/missing.js`)).status, 404);
      assert.equal(
        (await fetch(`${other.url}/`, { redirect: 'manual' })).headers.get('location'),
        '/client/',
      );

      // The UI's login: a form POST to /client/api/ with no query string.
      const login = await fetch(`${other.api}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'command=login&username=admin&password=password&domain=%2F&response=json',
      });
      assert.equal(login.status, 200);
      const set = login.headers.getSetCookie();
      for (const name of ['JSESSIONID', 'sessionkey']) {
        const c = set.find((x) => x.startsWith(`${name}=`));
        assert.ok(c, name);
        assert.match(c!, /Path=\/client/);
        assert.match(c!, /HttpOnly/);
      }
      const body = (await login.json()) as any;
      for (const field of [
        'sessionkey',
        'userid',
        'username',
        'account',
        'domainid',
        'type',
        'timezoneoffset',
      ])
        assert.ok(body.loginresponse[field] !== undefined, field);
      const cookie = set.map((c) => c.split(';')[0]).join('; ');
      const zones = await fetch(`${other.api}/?command=listZones&listall=true&response=json`, {
        headers: { cookie },
      });
      assert.equal(zones.status, 200);
    } finally {
      await other.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a folder without index.html stops the start with the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nimbo-ui-empty-'));
    try {
      await assert.rejects(
        startServer({ env: { NIMBOSTACK_UI_DIR: dir } }),
        /NIMBOSTACK_UI_DIR .* holds no index.html/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The Cookie header of a logged-in client: the UI sends only the cookies, never sessionkey. */
async function sessionCookie(client: CloudStackClient): Promise<string> {
  return client.sessionCredentials!.cookie;
}

describe('Images: "Upload from local" (getUploadParamsForTemplate and the signed POST)', () => {
  /** A QCOW2 header naming a 1 GiB disk, as much of an image as the format check reads. */
  const qcow2 = () => {
    const b = Buffer.alloc(64 * 1024);
    b.writeUInt32BE(0x514649fb, 0);
    b.writeUInt32BE(2, 4);
    b.writeBigUInt64BE(BigInt(2 ** 30), 24);
    return b;
  };
  /** The UI's post: multipart/form-data with the file as files[], and the three headers. */
  const post = (params: any, body: Buffer, headers: Record<string, string> = {}) => {
    const form = new FormData();
    form.append('files[]', new Blob([body]), 'disk.qcow2');
    return fetch(params.postURL, {
      method: 'POST',
      body: form,
      headers: {
        'x-signature': params.signature,
        'x-expires': params.expires,
        'x-metadata': params.metadata,
        ...headers,
      },
    });
  };
  const templateState = async (id: string) =>
    (await admin.request<any>('listTemplates', { templatefilter: 'self', id })).template[0];

  test('the browser posts the file; the template becomes ready; the URL serves once and only signed', async () => {
    const { zoneid } = await seededLocalZone(admin);
    const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
    const form = {
      name: 'ui-upload',
      displaytext: 'uploaded',
      format: 'QCOW2',
      hypervisor: 'Simulator',
      zoneid,
      ostypeid,
    };
    const r = await uiGet('getUploadParamsForTemplate', form, await sessionCookie(admin));
    assert.equal(r.status, 200);
    const params = r.body.postuploadtemplateresponse.getuploadparams;
    for (const field of ['id', 'postURL', 'metadata', 'signature', 'expires'])
      assert.ok(params[field], field);
    assert.equal(params.postURL, `${server.url}/client/upload/${params.id}`);
    const waiting = await templateState(params.id);
    assert.equal(waiting.isready, false);
    assert.equal(waiting.downloaddetails[0].downloadState, 'NOT_UPLOADED');

    // Forged or missing headers are refused and leave the template waiting.
    assert.equal((await post(params, qcow2(), { 'x-signature': 'AAAA' })).status, 403);
    assert.equal(
      (await post(params, qcow2(), { 'x-metadata': `${params.metadata.slice(0, -4)}AAAA` })).status,
      403,
    );
    assert.equal((await post({ ...params, expires: '' }, qcow2())).status, 400);
    assert.equal((await templateState(params.id)).downloaddetails[0].downloadState, 'NOT_UPLOADED');

    const ok = await post(params, qcow2());
    assert.equal(ok.status, 200, await ok.clone().text());
    const ready = await templateState(params.id);
    assert.equal(ready.isready, true);
    assert.equal(ready.size, 2 ** 30);
    assert.equal(ready.url, undefined);
    // A second post of the same answer is refused: the copy is filled.
    assert.equal((await post(params, qcow2())).status, 409);
  });

  test('a file that is not what the form said ends in UPLOAD_ERROR with the reason', async () => {
    const { zoneid } = await seededLocalZone(admin);
    const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
    const params = (
      await admin.request<any>('getUploadParamsForTemplate', {
        name: 'ui-upload-bad',
        format: 'QCOW2',
        hypervisor: 'Simulator',
        zoneid,
        ostypeid,
      })
    ).getuploadparams;
    const res = await post(params, Buffer.from('not a disk image'));
    assert.equal(res.status, 400);
    assert.match(await res.text(), /not a QCOW2 image/);
    const failed = await templateState(params.id);
    assert.equal(failed.isready, false);
    assert.equal(failed.downloaddetails[0].downloadState, 'UPLOAD_ERROR');
    assert.match(failed.status, /not a QCOW2 image/);
    // Bad forms are refused before anything is recorded.
    await assert.rejects(
      admin.request('getUploadParamsForTemplate', {
        name: 'x',
        format: 'ISO9660',
        hypervisor: 'Simulator',
        zoneid,
        ostypeid,
      }),
      (e: any) => e.errorcode === 431,
    );
  });
});

describe('Volumes: "Upload local volume" (getUploadParamsForVolume and the signed POST)', () => {
  test('the posted disk makes an Uploaded volume that attaches; a second post is refused', async () => {
    const { zoneid, templateid, small } = await seededLocalZone(admin);
    const r = await uiGet(
      'getUploadParamsForVolume',
      { name: 'ui-upload-vol', format: 'QCOW2', zoneid },
      await sessionCookie(admin),
    );
    assert.equal(r.status, 200);
    const params = r.body.postuploadvolumeresponse.getuploadparams;
    const waiting = (await admin.request<any>('listVolumes', { id: params.id })).volume[0];
    assert.equal(waiting.state, 'NotUploaded');
    const disk = Buffer.alloc(64 * 1024);
    disk.writeUInt32BE(0x514649fb, 0);
    disk.writeUInt32BE(2, 4);
    disk.writeBigUInt64BE(BigInt(2 ** 30), 24);
    const send = () => {
      const form = new FormData();
      form.append('files[]', new Blob([disk]), 'data.qcow2');
      return fetch(params.postURL, {
        method: 'POST',
        body: form,
        headers: {
          'x-signature': params.signature,
          'x-expires': params.expires,
          'x-metadata': params.metadata,
        },
      });
    };
    assert.equal((await send()).status, 200);
    const uploaded = (await admin.request<any>('listVolumes', { id: params.id })).volume[0];
    assert.equal(uploaded.state, 'Uploaded');
    assert.equal(uploaded.size, 2 ** 30);
    assert.equal((await send()).status, 409);
    // The template's signature does not open the volume's URL.
    const other = (
      await admin.request<any>('getUploadParamsForVolume', {
        name: 'ui-upload-vol2',
        format: 'QCOW2',
        zoneid,
      })
    ).getuploadparams;
    const swapped = await fetch(other.postURL, {
      method: 'POST',
      body: new FormData(),
      headers: {
        'x-signature': params.signature,
        'x-expires': params.expires,
        'x-metadata': params.metadata,
      },
    });
    assert.equal(swapped.status, 403);
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'ui-upvol',
      })
    ).virtualmachine;
    const attached = (await admin.call<any>('attachVolume', { id: params.id, virtualmachineid: vm.id }))
      .volume;
    assert.equal(attached.virtualmachineid, vm.id);
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});

describe('resource icons (the UI’s "upload icon" on instances, templates, zones, accounts …)', () => {
  // The smallest PNG: a 1×1 transparent pixel.
  const png =
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==';

  test('upload, list, replace and delete, with access checked per resource', async () => {
    // The UI posts its uploads as forms (an icon does not fit in a URL).
    const poster = new CloudStackClient({ url: server.api, session: admin.sessionCredentials, post: true });
    const zone = (await admin.request<any>('listZones', {})).zone[0];
    const root = (await admin.request<any>('listDomains', { name: 'ROOT' })).domain[0];
    assert.deepEqual(
      await admin.request<any>('listResourceIcon', { resourcetype: 'Zone', resourceids: zone.id }),
      {},
    );
    assert.equal(
      String(
        (
          await admin.request<any>('uploadResourceIcon', {
            resourcetype: 'zone',
            resourceids: zone.id,
            base64image: png,
          })
        ).success,
      ),
      'true',
    );
    const listed = await admin.request<any>('listResourceIcon', {
      resourcetype: 'Zone',
      resourceids: zone.id,
    });
    assert.deepEqual(listed.resourceicon, [{ resourcetype: 'Zone', resourceid: zone.id, base64image: png }]);
    // The UI's lists ask for icons with showicon=true; without it objects carry none.
    const shown = (await admin.request<any>('listZones', { showicon: true })).zone.find(
      (z: any) => z.id === zone.id,
    );
    assert.deepEqual(shown.icon, { base64image: png, resourcetype: 'Zone', resourceid: zone.id });
    assert.equal(
      (await admin.request<any>('listZones', {})).zone.find((z: any) => z.id === zone.id).icon,
      undefined,
    );
    const template = (await admin.request<any>('listTemplates', { templatefilter: 'featured' })).template[0];
    await admin.request('uploadResourceIcon', {
      resourcetype: 'Template',
      resourceids: template.id,
      base64image: png,
    });
    const withIcon = await admin.request<any>('listTemplates', {
      templatefilter: 'featured',
      showicon: true,
    });
    assert.equal(withIcon.template.find((t: any) => t.id === template.id).icon.base64image, png);
    // A data: URL is stored as its payload; a second upload replaces the first.
    await admin.request('uploadResourceIcon', {
      resourcetype: 'Domain',
      resourceids: root.id,
      base64image: `data:image/png;base64,${png}`,
    });
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>').toString(
      'base64',
    );
    await admin.request('uploadResourceIcon', {
      resourcetype: 'Domain',
      resourceids: root.id,
      base64image: svg,
    });
    const domainIcon = await admin.request<any>('listResourceIcon', {
      resourcetype: 'Domain',
      resourceids: root.id,
    });
    assert.equal(domainIcon.count, 1);
    assert.equal(domainIcon.resourceicon[0].base64image, svg);

    // Bad input changes nothing.
    for (const [base64image, why] of [
      ['not base64!', /not base64/],
      [Buffer.from('plain text, not an image').toString('base64'), /not a PNG/],
      [Buffer.alloc(1024 * 1024 + 1, 0x89).toString('base64'), /at most 1048576/],
    ] as const)
      await assert.rejects(
        poster.request('uploadResourceIcon', { resourcetype: 'Zone', resourceids: zone.id, base64image }),
        (e: any) => e.errorcode === 431 && why.test(e.errortext),
      );
    await assert.rejects(
      admin.request('uploadResourceIcon', { resourcetype: 'Volume', resourceids: zone.id, base64image: png }),
      (e: any) => e.errorcode === 431 && /doesn't support resource icons/.test(e.errortext),
    );
    assert.equal(
      (await admin.request<any>('listResourceIcon', { resourcetype: 'Zone', resourceids: zone.id }))
        .resourceicon[0].base64image,
      png,
    );

    // A user may set its own account's icon, not the zone's nor another account's.
    const { client, account } = await createAccountAndLogin(server, { name: 'ui-icons' });
    const accountId = account.id as string;
    await client.request('uploadResourceIcon', {
      resourcetype: 'Account',
      resourceids: accountId,
      base64image: png,
    });
    assert.equal(
      (await client.request<any>('listResourceIcon', { resourcetype: 'Account', resourceids: accountId }))
        .count,
      1,
    );
    await assert.rejects(
      client.request('uploadResourceIcon', { resourcetype: 'Zone', resourceids: zone.id, base64image: png }),
      (e: any) => e.errorcode === 531,
    );
    const adminAccount = (await admin.request<any>('listAccounts', { name: 'admin' })).account[0];
    await assert.rejects(
      client.request('deleteResourceIcon', { resourcetype: 'Account', resourceids: adminAccount.id }),
      (e: any) => e.errorcode === 531,
    );

    await admin.request('deleteResourceIcon', { resourcetype: 'Zone', resourceids: zone.id });
    assert.deepEqual(
      await admin.request<any>('listResourceIcon', { resourcetype: 'Zone', resourceids: zone.id }),
      {},
    );
  });
});
