/**
 * Isolated networks of an Advanced zone, observed on simulator hosts running in this process: the
 * network is Allocated when created and implemented by its first VM start (a VNI from the
 * physical network's range, the source-NAT address, the router holding the gateway with its
 * public side), VMs get addresses of the network's own subnet, owners and others see and use
 * what they may, restartNetwork re-applies or rebuilds the router, deleteNetwork gives everything back.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, type AgentLogger, SimulatorFleet, type SimulatorHost } from '@nimbostack/agent';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { collectNetworks } from '../src/network/network-gc.ts';
import { waitUntil } from './agents.ts';

const TOKEN = 'isolated-test-token-0123456789';
const silent: AgentLogger = { info() {}, warn() {}, error() {}, debug() {} } as unknown as AgentLogger;
const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (text === undefined || text.test(e.message));

let server: Server;
let admin: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;
let agent: Agent;
let fleet: SimulatorFleet;
let dataDir: string;
let zoneid: string;
let templateid: string;
let offering: string;
let isolatedOffering: string;
let physicalid: string;
const hostIds = new Map<string, string>();

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const routerOn = (name: string) => {
  for (const h of fleet.hosts.values()) {
    const r = h.routers.get(name);
    if (r) return { host: h as SimulatorHost, spec: r };
  }
  return undefined;
};

async function createUser(name: string): Promise<CloudStackClient> {
  await admin.request('createAccount', {
    username: name,
    password: 'secret-pass',
    email: `${name}@example.com`,
    firstname: name,
    lastname: 'U',
    accounttype: 0,
  });
  return CloudStackClient.login(`${server.url}/client/api`, name, 'secret-pass');
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'nimbo-isolated-'));
  mkdirSync(join(dataDir, 'primary'));
  mkdirSync(join(dataDir, 'secondary'));
  const agentPort = await freePort();
  server = await startServer(
    loadConfig(
      {},
      { port: 0, agentPort, host: '127.0.0.1', dataDir, logLevel: 'silent', seedLocalZone: false },
    ),
  );
  admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
  zoneid = (
    await admin.request<any>('createZone', {
      name: 'az',
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      guestcidraddress: '10.1.1.0/24',
    })
  ).zone.id;
  physicalid = (
    await admin.call<any>('createPhysicalNetwork', {
      zoneid,
      name: 'phys',
      isolationmethods: 'VXLAN',
      vlan: '6000-6002',
    })
  ).physicalnetwork.id;
  for (const traffictype of ['Guest', 'Public', 'Management'])
    await admin.call('addTrafficType', {
      physicalnetworkid: physicalid,
      traffictype,
      ...(traffictype === 'Public' ? { kvmnetworklabel: 'nimbopub0' } : {}),
    });
  await admin.call('updatePhysicalNetwork', { id: physicalid, state: 'Enabled' });
  await admin.request('createVlanIpRange', {
    zoneid,
    forvirtualnetwork: true,
    gateway: '203.0.113.1',
    netmask: '255.255.255.0',
    startip: '203.0.113.10',
    endip: '203.0.113.20',
  });
  const pod = (
    await admin.request<any>('createPod', {
      zoneid,
      name: 'ap',
      gateway: '192.168.30.1',
      netmask: '255.255.255.0',
      startip: '192.168.30.10',
      endip: '192.168.30.50',
    })
  ).pod;
  const cluster = (
    await admin.request<any>('addCluster', {
      zoneid,
      podid: pod.id,
      clustername: 'ac',
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  await admin.request('createStoragePool', {
    zoneid,
    podid: pod.id,
    clusterid: cluster.id,
    name: 'aprimary',
    url: join(dataDir, 'primary'),
    scope: 'cluster',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'asecondary',
    provider: 'NFS',
    url: join(dataDir, 'secondary'),
  });
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  fleet = new SimulatorFleet();
  const hosts = fleet.addHosts('at', 2);
  agent = new Agent({
    server: `ws://127.0.0.1:${agentPort}`,
    token: TOKEN,
    hosts,
    log: silent,
    maxBackoffMs: 300,
  });
  agent.start();
  for (const h of hosts) {
    await waitUntil(async () => server.app.agents.pendingHost(h.name), 10_000, `${h.name} to connect`);
    const added = await admin.request<any>('addHost', {
      zoneid,
      podid: pod.id,
      clusterid: cluster.id,
      url: `agent://${h.name}`,
      username: 'root',
      password: TOKEN,
      hypervisor: 'Simulator',
    });
    hostIds.set(h.name, added.host[0].id);
  }
  templateid = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
    20_000,
    'the built-in template',
  );
  offering = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0]
    .id;
  isolatedOffering = (
    await admin.request<any>('listNetworkOfferings', {
      name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    })
  ).networkoffering[0].id;
  alice = await createUser('alice');
  bob = await createUser('bob');
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('isolated networks', () => {
  let net: any;
  let vm1: any;
  let vm2: any;

  test('createNetwork makes an Allocated network of the account on the zone guest CIDR', async () => {
    net = (
      await alice.request<any>('createNetwork', { name: 'web', zoneid, networkofferingid: isolatedOffering })
    ).network;
    assert.equal(net.state, 'Allocated');
    assert.equal(net.type, 'Isolated');
    assert.equal(net.acltype, 'Account');
    assert.equal(net.account, 'alice');
    assert.equal(net.cidr, '10.1.1.0/24');
    assert.equal(net.gateway, '10.1.1.1');
    assert.equal(net.networkofferingname, 'DefaultIsolatedNetworkOfferingWithSourceNatService');
    const mine = await alice.request<any>('listNetworks', {});
    assert.deepEqual(
      mine.network.map((n: any) => n.id),
      [net.id],
    );
    assert.deepEqual(await bob.request('listNetworks', {}), {}, "bob does not see alice's network");
    const all = await admin.request<any>('listNetworks', { listall: true });
    assert.ok(all.network.some((n: any) => n.id === net.id));
  });

  test('bad createNetwork input is refused and creates nothing', async () => {
    const before = (await admin.request<any>('listNetworks', { listall: true })).count;
    await assert.rejects(
      alice.request('createNetwork', {
        name: 'x',
        zoneid,
        networkofferingid: isolatedOffering,
        gateway: '10.2.0.1',
      }),
      is(431, /gateway and netmask/),
    );
    await assert.rejects(
      alice.request('createNetwork', {
        name: 'x',
        zoneid,
        networkofferingid: isolatedOffering,
        gateway: '10.2.0.0',
        netmask: '255.255.255.0',
      }),
      is(431, /not a host address/),
    );
    await assert.rejects(
      alice.request('createNetwork', {
        name: 'x',
        zoneid,
        networkofferingid: isolatedOffering,
        gateway: '10.2.0.1',
        netmask: '255.0.0.0',
      }),
      is(431, /not supported/),
    );
    await assert.rejects(
      alice.request('createNetwork', { name: 'x', zoneid, networkofferingid: zoneid }),
      is(431, /network offering/),
    );
    await assert.rejects(
      alice.request('createNetwork', {
        name: 'x',
        zoneid,
        networkofferingid: isolatedOffering,
        account: 'bob',
        domainid: net.domainid,
      }),
      is(531),
    );
    assert.equal((await admin.request<any>('listNetworks', { listall: true })).count, before);
  });

  test('others cannot deploy into the network', async () => {
    await assert.rejects(
      bob.call('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: net.id,
      }),
      is(531),
    );
  });

  test('the first VM start implements the network: VNI, source NAT, router on the gateway', async () => {
    vm1 = (
      await alice.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: net.id,
        name: 'web-1',
      })
    ).virtualmachine;
    assert.equal(vm1.state, 'Running');
    const nic = vm1.nic[0];
    assert.equal(nic.networkid, net.id);
    assert.match(nic.ipaddress, /^10\.1\.1\.\d+$/);
    assert.notEqual(nic.ipaddress, '10.1.1.1');
    assert.equal(nic.gateway, '10.1.1.1');
    const implemented = (await admin.request<any>('listNetworks', { id: net.id, listall: true })).network[0];
    assert.equal(implemented.state, 'Implemented');
    assert.match(implemented.vlan, /^600[012]$/);
    assert.equal(implemented.broadcasturi, `vxlan://${implemented.vlan}`);
    const ips = await alice.request<any>('listPublicIpAddresses', { associatednetworkid: net.id });
    assert.equal(ips.count, 1);
    assert.equal(ips.publicipaddress[0].issourcenat, true);
    const sourceNat = ips.publicipaddress[0].ipaddress;
    const router = (await admin.request<any>('listRouters', { networkid: net.id })).router[0];
    assert.equal(router.guestipaddress, '10.1.1.1');
    const onHost = routerOn(router.name)!;
    assert.ok(onHost, 'the router runs on a host');
    assert.equal(onHost.spec.network.gatewayOnHost, false);
    assert.equal(onHost.spec.network.vni, Number(implemented.vlan));
    assert.equal(onHost.spec.public?.bridge, 'nimbopub0');
    assert.equal(onHost.spec.public?.sourceNat, sourceNat);
    assert.equal(onHost.spec.public?.gateway, '203.0.113.1');
    assert.deepEqual(onHost.spec.public?.addresses, [{ ip: sourceNat, prefix: 24 }]);
    // Upstream's default isolated offerings deny egress unless an egress rule allows it.
    assert.equal(onHost.spec.rules?.egressDefaultAllow, false);
  });

  test('a second VM on another host joins the same VXLAN', async () => {
    vm2 = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: net.id,
        name: 'web-2',
        account: 'alice',
        domainid: net.domainid,
        hostid: hostIds.get('at-2'),
      })
    ).virtualmachine;
    assert.notEqual(vm2.nic[0].ipaddress, vm1.nic[0].ipaddress);
    const vni = Number(
      (await admin.request<any>('listNetworks', { id: net.id, listall: true })).network[0].vlan,
    );
    for (const h of fleet.hosts.values()) {
      const carried = [...h.networks.values()].find((n) => n.uuid === net.id);
      if (carried) assert.equal(carried.vni, vni);
    }
  });

  test('two networks never share a VNI, and an exhausted range is refused with 533', async () => {
    const others = [];
    for (const name of ['n2', 'n3', 'n4'])
      others.push(
        (await alice.request<any>('createNetwork', { name, zoneid, networkofferingid: isolatedOffering }))
          .network,
      );
    const started = [];
    for (const n of others.slice(0, 2))
      started.push(
        alice.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid: offering,
          networkids: n.id,
        }),
      );
    await Promise.all(started);
    const vnis = (
      await admin.request<any>('listNetworks', { listall: true, account: 'alice', domainid: net.domainid })
    ).network
      .filter((n: any) => n.vlan)
      .map((n: any) => n.vlan);
    assert.equal(new Set(vnis).size, 3);
    await assert.rejects(
      alice.call('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: others[2].id,
      }),
      (e: any) => e.errorcode === 533 || /VNI/.test(e.message),
    );
  });

  test('restartNetwork re-applies; with cleanup it builds a fresh router with the same public side', async () => {
    const before = (await admin.request<any>('listRouters', { networkid: net.id })).router[0];
    await alice.call('restartNetwork', { id: net.id });
    const same = (await admin.request<any>('listRouters', { networkid: net.id })).router[0];
    assert.equal(same.id, before.id);
    await alice.call('restartNetwork', { id: net.id, cleanup: true });
    const fresh = (await admin.request<any>('listRouters', { networkid: net.id })).router[0];
    assert.notEqual(fresh.id, before.id);
    assert.equal(fresh.state, 'Running');
    assert.equal(fresh.guestipaddress, '10.1.1.1');
    const spec = routerOn(fresh.name)!.spec;
    assert.equal(spec.vms.length, 2);
    assert.ok(spec.public?.sourceNat);
    assert.equal(routerOn(before.name), undefined, 'the old router is gone from its host');
    await assert.rejects(bob.call('restartNetwork', { id: net.id }), is(531));
  });

  test('the garbage collector shuts an idle network down after network.gc.wait and keeps its addresses', async () => {
    const n3 = (await alice.request<any>('listNetworks', { name: 'n3' })).network[0];
    const vm = (await alice.request<any>('listVirtualMachines', { networkid: n3.id })).virtualmachine[0];
    const sourceNat = (await alice.request<any>('listPublicIpAddresses', { associatednetworkid: n3.id }))
      .publicipaddress[0].ipaddress;
    const t0 = Date.now();
    assert.deepEqual(await collectNetworks(server.app, t0), [], 'a network with a running VM stays');
    await alice.call('stopVirtualMachine', { id: vm.id });
    assert.deepEqual(await collectNetworks(server.app, t0 + 1000), [], 'idle, but not for long enough');
    assert.deepEqual(await collectNetworks(server.app, t0 + 602_000), [n3.id]);
    const down = (await admin.request<any>('listNetworks', { id: n3.id, listall: true })).network[0];
    assert.equal(down.state, 'Allocated');
    assert.equal(down.vlan, undefined);
    assert.equal((await admin.request<any>('listRouters', { networkid: n3.id })).count ?? 0, 0);
    const kept = await alice.request<any>('listPublicIpAddresses', { associatednetworkid: n3.id });
    assert.equal(kept.publicipaddress[0].ipaddress, sourceNat);
    await alice.call('startVirtualMachine', { id: vm.id });
    const up = (await admin.request<any>('listNetworks', { id: n3.id, listall: true })).network[0];
    assert.equal(up.state, 'Implemented');
    assert.ok(up.vlan);
    const router = (await admin.request<any>('listRouters', { networkid: n3.id })).router[0];
    assert.equal(routerOn(router.name)?.spec.public?.sourceNat, sourceNat);
  });

  test('updateNetwork renames; deleteNetwork waits for the VMs, then frees VNI and addresses', async () => {
    const renamed = (
      await alice.call<any>('updateNetwork', { id: net.id, name: 'frontend', displaytext: 'Front' })
    ).network;
    assert.equal(renamed.name, 'frontend');
    await assert.rejects(bob.call('deleteNetwork', { id: net.id }), is(531));
    await assert.rejects(
      alice.call('deleteNetwork', { id: net.id }),
      is(530, /not all user VMs are expunged/),
    );
    for (const vm of [vm1, vm2]) await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await alice.call('deleteNetwork', { id: net.id });
    assert.equal((await alice.request<any>('listNetworks', { id: net.id })).count ?? 0, 0);
    const free = await admin.request<any>('listPublicIpAddresses', {
      zoneid,
      allocatedonly: false,
      state: 'Free',
    });
    assert.equal(free.count, 11 - 2, 'only the two other networks still hold an address');
    const n4 = (await alice.request<any>('listNetworks', { name: 'n4' })).network[0];
    const vm = (
      await alice.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: n4.id,
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Running', 'the freed VNI went to the waiting network');
  });
});
