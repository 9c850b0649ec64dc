/**
 * Isolated networks of an Advanced zone, observed on simulator hosts running in this process: the
 * network is Allocated when created and implemented by its first VM start (a VNI from the
 * physical network's range, the source-NAT address, the router holding the gateway with its
 * public side), VMs get addresses of the network's own subnet, owners and others see and use
 * what they may, restartNetwork re-applies or rebuilds the router, deleteNetwork gives everything back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { collectNetworks } from '../src/network/network-gc.ts';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

let zone: AdvancedZone;
let admin: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;
let zoneid: string;
let templateid: string;
let offering: string;
let isolatedOffering: string;
const routerOn = (name: string) => zone.routerOn(name);

before(async () => {
  // Three VNIs, to see the range run out; eleven public addresses.
  zone = await startAdvancedZone({ publicIps: 11, vniRange: '6000-6002' });
  ({ admin, zoneid, templateid, offering, isolatedOffering } = zone);
  alice = await zone.createUser('alice');
  bob = await zone.createUser('bob');
});

after(() => zone?.stop());

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
      is(431, /Invalid parameter networkofferingid value=.* entity does not exist/),
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
    // physicalnetworkid: one of the zone's, carrying Guest traffic.
    const bare = (
      await admin.call<any>('createPhysicalNetwork', { zoneid, name: 'no-guest', isolationmethods: 'VXLAN' })
    ).physicalnetwork;
    for (const [physicalnetworkid, text] of [
      [bare.id, /carries no Guest traffic/],
      [
        '00000000-0000-4000-8000-000000000000',
        /Invalid parameter physicalnetworkid value=.* entity does not exist/,
      ],
    ] as const)
      await assert.rejects(
        alice.request('createNetwork', {
          name: 'x',
          zoneid,
          networkofferingid: isolatedOffering,
          physicalnetworkid,
        }),
        is(431, text),
      );
    await admin.call('deletePhysicalNetwork', { id: bare.id });
    assert.equal((await admin.request<any>('listNetworks', { listall: true })).count, before);
    const named = (
      await alice.request<any>('createNetwork', {
        name: 'on-phys',
        zoneid,
        networkofferingid: isolatedOffering,
        physicalnetworkid: net.physicalnetworkid,
      })
    ).network;
    assert.equal(named.physicalnetworkid, net.physicalnetworkid);
    await alice.call('deleteNetwork', { id: named.id });
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
    assert.equal(onHost.spec.guests[0].network.gatewayOnHost, false);
    assert.equal(onHost.spec.guests[0].network.vni, Number(implemented.vlan));
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
        hostid: zone.hostIds.get('ah-2'),
      })
    ).virtualmachine;
    assert.notEqual(vm2.nic[0].ipaddress, vm1.nic[0].ipaddress);
    const vni = Number(
      (await admin.request<any>('listNetworks', { id: net.id, listall: true })).network[0].vlan,
    );
    for (const h of zone.fleet.hosts.values()) {
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
    assert.equal(fresh.publicmacaddress, before.publicmacaddress, 'neighbours keep a valid ARP entry');
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
    assert.deepEqual(await collectNetworks(zone.server.app, t0), [], 'a network with a running VM stays');
    await alice.call('stopVirtualMachine', { id: vm.id });
    assert.deepEqual(await collectNetworks(zone.server.app, t0 + 1000), [], 'idle, but not for long enough');
    assert.deepEqual(await collectNetworks(zone.server.app, t0 + 602_000), [n3.id]);
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
    // customid: root administrators only (others' values are ignored), a UUID no other network has.
    const custom = '33333333-4444-5555-6666-777777777777';
    assert.equal(
      (await alice.call<any>('updateNetwork', { id: net.id, customid: custom })).network.id,
      net.id,
    );
    const other = (await alice.request<any>('listNetworks', { name: 'n3' })).network[0];
    for (const customid of ['web-net', other.id])
      await assert.rejects(admin.call('updateNetwork', { id: net.id, customid }), is(431, /UUID/), customid);
    const moved = (await admin.call<any>('updateNetwork', { id: net.id, customid: custom.toUpperCase() }))
      .network;
    assert.equal(moved.id, custom);
    assert.equal((await alice.request<any>('listNetworks', { id: custom })).network[0].name, 'frontend');
    await admin.call('updateNetwork', { id: custom, customid: net.id });
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

  test('displaynetwork hides a network from end users; subdomainaccess=false keeps subdomains off a domain network', async () => {
    const n4 = (await alice.request<any>('listNetworks', { name: 'n4' })).network[0];
    assert.equal(n4.displaynetwork, true);
    const hidden = (await admin.call<any>('updateNetwork', { id: n4.id, displaynetwork: false })).network;
    assert.equal(hidden.displaynetwork, false);
    assert.equal(
      (await alice.request<any>('listNetworks', { name: 'n4' })).count ?? 0,
      0,
      'hidden from its owner',
    );
    const listed = await admin.request<any>('listNetworks', { listall: true, displaynetwork: false });
    assert.deepEqual(
      listed.network.map((n: any) => n.id),
      [n4.id],
    );
    await alice.call('updateNetwork', { id: n4.id, displaynetwork: true });
    assert.equal(
      (await alice.request<any>('listNetworks', { name: 'n4' })).count ?? 0,
      0,
      'only root admins show it again',
    );
    await admin.call('updateNetwork', { id: n4.id, displaynetwork: true });
    assert.equal((await alice.request<any>('listNetworks', { name: 'n4' })).count, 1);

    const sub = (await admin.request<any>('createDomain', { name: 'netsub' })).domain;
    await admin.request('createAccount', {
      username: 'carol',
      password: 'secret-pass',
      email: 'carol@example.com',
      firstname: 'C',
      lastname: 'U',
      accounttype: 0,
      domainid: sub.id,
    });
    const carol = await CloudStackClient.login(
      `${zone.server.url}/client/api`,
      'carol',
      'secret-pass',
      '/netsub',
    );
    const shared = (
      await admin.request<any>('listNetworkOfferings', { name: 'DefaultSharedNetworkOffering' })
    ).networkoffering[0].id;
    const make = (name: string, vlan: string, third: number, extra: Record<string, unknown>) =>
      admin.request<any>('createNetwork', {
        name,
        zoneid,
        networkofferingid: shared,
        vlan,
        gateway: `10.7${third}.0.1`,
        netmask: '255.255.255.0',
        startip: `10.7${third}.0.10`,
        endip: `10.7${third}.0.20`,
        ...extra,
      });
    await assert.rejects(
      make('acct', '3101', 1, {
        acltype: 'Account',
        account: 'alice',
        domainid: n4.domainid,
        subdomainaccess: true,
      }),
      is(431, /subDomainAccess can be specified only with aclType=Domain/),
    );
    const closed = (await make('closed', '3102', 2, { subdomainaccess: false })).network;
    const open = (await make('open', '3103', 3, {})).network;
    assert.deepEqual([closed.subdomainaccess, open.subdomainaccess], [false, true]);
    const seen = async (client: CloudStackClient) =>
      ((await client.request<any>('listNetworks', { type: 'Shared' })).network ?? [])
        .map((n: any) => n.name)
        .sort();
    assert.deepEqual(await seen(alice), ['closed', 'open'], 'the ROOT domain itself uses both');
    assert.deepEqual(await seen(carol), ['open'], 'a subdomain only the one that grants access');
    await assert.rejects(
      carol.call('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: closed.id,
      }),
      is(531),
    );
    for (const n of [closed, open]) await admin.call('deleteNetwork', { id: n.id });
  });
});
