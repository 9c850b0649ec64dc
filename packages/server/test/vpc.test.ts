/**
 * VPCs on simulator hosts running in this process: VPC offerings, createVPC booting the VPC's
 * router with its source-NAT address, tiers inside the VPC's CIDR (refused outside it or overlapping
 * another, with upstream's texts) each plugged into the one router with its gateway, VMs deployed
 * into tiers, public addresses of the VPC with port forwarding and static NAT into a tier,
 * restartVPC cleanup=true rebuilding the router with everything, and deleteVPC refused while a
 * tier has VMs, then leaving nothing behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

let zone: AdvancedZone;
let admin: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;
let zoneid: string;
let templateid: string;
let offering: string;
let vpcOffering: string;
let tierOffering: string;
let tierOfferingNoLb: string;

/** Every router the simulated hosts run, by name. */
function routersOnHosts(): Map<string, any> {
  const out = new Map<string, any>();
  for (const h of zone.fleet.hosts.values()) for (const [name, spec] of h.routers) out.set(name, spec);
  return out;
}

/** The VPC's router as its host holds it: the one whose public side has the VPC's source NAT. */
async function vpcRouter(vpcid: string): Promise<{ name: string; spec: any }> {
  const ips = await admin.request<any>('listPublicIpAddresses', { vpcid, listall: true, issourcenat: true });
  const sourceNat = ips.publicipaddress[0].ipaddress;
  for (const [name, spec] of routersOnHosts())
    if (spec.public?.sourceNat === sourceNat) return { name, spec };
  throw new Error(`no router of VPC ${vpcid} runs on a host`);
}

before(async () => {
  zone = await startAdvancedZone({ publicIps: 8, vniRange: '7000-7009' });
  ({ admin, zoneid, templateid, offering } = zone);
  alice = await zone.createUser('alice');
  bob = await zone.createUser('bob');
  const byName = async (name: string) =>
    (await admin.request<any>('listNetworkOfferings', { name })).networkoffering[0].id;
  tierOffering = await byName('DefaultIsolatedNetworkOfferingForVpcNetworks');
  tierOfferingNoLb = await byName('DefaultIsolatedNetworkOfferingForVpcNetworksNoLB');
});

after(() => zone?.stop());

describe('VPC offerings', () => {
  test('the default VPC offering is listed with the VPC router services', async () => {
    const list = await alice.request<any>('listVPCOfferings', {});
    const def = list.vpcoffering.find((o: any) => o.name === 'Default VPC offering');
    assert.ok(def, 'Default VPC offering listed');
    assert.equal(def.isdefault, true);
    assert.equal(def.state, 'Enabled');
    const services = def.service.map((s: any) => s.name).sort();
    assert.deepEqual(services, [
      'Dhcp',
      'Dns',
      'Gateway',
      'Lb',
      'NetworkACL',
      'PortForwarding',
      'SourceNat',
      'StaticNat',
      'UserData',
      'Vpn',
    ]);
    for (const s of def.service) assert.equal(s.provider[0].name, 'VpcVirtualRouter');
    vpcOffering = def.id;
  });

  test('create, update, list and delete an offering; bad input changes nothing', async () => {
    const made = (
      await admin.call<any>('createVPCOffering', {
        name: 'small-vpc',
        displaytext: 'Small',
        supportedservices: 'Dhcp,Dns,SourceNat,StaticNat,PortForwarding',
      })
    ).vpcoffering;
    assert.equal(made.state, 'Disabled', 'new offerings start Disabled');
    assert.deepEqual(made.service.map((s: any) => s.name).sort(), [
      'Dhcp',
      'Dns',
      'Gateway',
      'PortForwarding',
      'SourceNat',
      'StaticNat',
    ]);
    assert.equal(
      (await alice.request<any>('listVPCOfferings', { id: made.id })).count ?? 0,
      0,
      'users see Enabled only',
    );
    await assert.rejects(
      admin.call('createVPCOffering', { name: 'fw', supportedservices: 'SourceNat,Firewall' }),
      is(431, /Firewall/),
    );
    await assert.rejects(
      admin.call('createVPCOffering', { name: 'nosnat', supportedservices: 'Dhcp,Dns' }),
      is(431, /SourceNat/),
    );
    await assert.rejects(admin.call('createVPCOffering', { name: 'small-vpc' }), is(431, /already exists/));
    await assert.rejects(alice.call('createVPCOffering', { name: 'mine' }), (e: any) => e.errorcode === 432);
    const updated = (
      await admin.call<any>('updateVPCOffering', { id: made.id, state: 'Enabled', name: 'tiny-vpc' })
    ).vpcoffering;
    assert.equal(updated.state, 'Enabled');
    assert.equal(updated.name, 'tiny-vpc');
    await assert.rejects(
      admin.call('deleteVPCOffering', { id: vpcOffering }),
      is(431, /Default VPC offering/),
    );
    await admin.call('deleteVPCOffering', { id: made.id });
    assert.equal((await admin.request<any>('listVPCOfferings', { id: made.id })).count ?? 0, 0);
  });
});

describe('VPCs and tiers', () => {
  let vpc: any;
  let web: any;
  let db: any;
  let webVm: any;
  let dbVm: any;
  let sourceNat: string;

  test('createVPC boots the router with the source-NAT address at once', async () => {
    const started = Date.now();
    vpc = (
      await alice.call<any>('createVPC', {
        name: 'shop',
        displaytext: 'Shop',
        zoneid,
        vpcofferingid: vpcOffering,
        cidr: '10.10.0.0/16',
        networkdomain: 'shop.internal',
      })
    ).vpc;
    const ms = Date.now() - started;
    assert.equal(vpc.state, 'Enabled');
    assert.equal(vpc.cidr, '10.10.0.0/16');
    assert.equal(vpc.networkdomain, 'shop.internal');
    assert.equal(vpc.vpcofferingname, 'Default VPC offering');
    assert.deepEqual(vpc.network, []);
    const ips = await alice.request<any>('listPublicIpAddresses', { vpcid: vpc.id });
    assert.equal(ips.count, 1);
    assert.equal(ips.publicipaddress[0].issourcenat, true);
    assert.equal(ips.publicipaddress[0].vpcid, vpc.id);
    sourceNat = ips.publicipaddress[0].ipaddress;
    const router = await vpcRouter(vpc.id);
    assert.deepEqual(router.spec.guests, [], 'no tier yet');
    assert.equal(router.spec.public.sourceNat, sourceNat);
    process.stdout.write(`# createVPC -> router running: ${ms} ms (simulator)\n`);
    const events = await alice.request<any>('listEvents', { type: 'VPC.CREATE' });
    assert.ok(events.count >= 1, 'VPC.CREATE recorded');
  });

  test('listVPCs is scoped like other owned resources; updateVPC renames', async () => {
    const mine = await alice.request<any>('listVPCs', {});
    assert.deepEqual(
      mine.vpc.map((v: any) => v.id),
      [vpc.id],
    );
    assert.equal((await bob.request<any>('listVPCs', {})).count ?? 0, 0, "bob does not see alice's VPC");
    await assert.rejects(bob.call('updateVPC', { id: vpc.id, name: 'x' }), is(531));
    const all = await admin.request<any>('listVPCs', { listall: true });
    assert.ok(all.vpc.some((v: any) => v.id === vpc.id));
    const renamed = (await alice.call<any>('updateVPC', { id: vpc.id, displaytext: 'The shop' })).vpc;
    assert.equal(renamed.displaytext, 'The shop');
    assert.equal(renamed.name, 'shop');
  });

  test('bad VPCs are refused and create nothing', async () => {
    for (const cidr of ['8.8.0.0/16', '10.0.0.0/30', 'nonsense'])
      await assert.rejects(
        alice.call('createVPC', { name: 'bad', zoneid, vpcofferingid: vpcOffering, cidr }),
        is(431),
        cidr,
      );
    assert.equal((await alice.request<any>('listVPCs', {})).count, 1);
  });

  test('tiers: inside the VPC CIDR, not overlapping, with a VPC offering', async () => {
    const started = Date.now();
    web = (
      await alice.request<any>('createNetwork', {
        name: 'web',
        zoneid,
        networkofferingid: tierOffering,
        vpcid: vpc.id,
        gateway: '10.10.1.1',
        netmask: '255.255.255.0',
      })
    ).network;
    const tierMs = Date.now() - started;
    assert.equal(web.vpcid, vpc.id);
    assert.equal(web.cidr, '10.10.1.0/24');
    assert.equal(web.state, 'Implemented', 'a tier is implemented (its VNI) when created');
    assert.equal(web.networkdomain, 'shop.internal');
    db = (
      await alice.request<any>('createNetwork', {
        name: 'db',
        zoneid,
        networkofferingid: tierOfferingNoLb,
        vpcid: vpc.id,
        gateway: '10.10.2.1',
        netmask: '255.255.255.0',
      })
    ).network;
    process.stdout.write(`# createNetwork (tier) -> router interface: ${tierMs} ms (simulator)\n`);
    const tier = (gateway: string, netmask: string, extra: object = {}) =>
      alice.request('createNetwork', {
        name: 'bad',
        zoneid,
        networkofferingid: tierOffering,
        vpcid: vpc.id,
        gateway,
        netmask,
        ...extra,
      });
    await assert.rejects(
      tier('10.20.1.1', '255.255.255.0'),
      is(431, /Network cidr 10\.20\.1\.0\/24 is not within vpc shop cidr/),
    );
    await assert.rejects(
      tier('10.10.1.129', '255.255.255.128'),
      is(431, /Network cidr 10\.10\.1\.128\/25 crosses other network cidr web/),
    );
    await assert.rejects(tier('10.10.0.1', '255.255.0.0'), is(431, /crosses other network cidr/));
    await assert.rejects(
      alice.request('createNetwork', { name: 'bad', zoneid, networkofferingid: tierOffering, vpcid: vpc.id }),
      is(431, /Gateway\/netmask are required/),
    );
    await assert.rejects(
      tier('10.10.3.1', '255.255.255.0', { networkofferingid: zone.isolatedOffering }),
      is(431, /can't be used for VPC networks/),
    );
    await assert.rejects(
      alice.request('createNetwork', { name: 'bad', zoneid, networkofferingid: tierOffering }),
      is(431, /VPC networks only/),
    );
    await assert.rejects(
      tier('10.10.3.1', '255.255.255.0', { networkdomain: 'other.internal' }),
      is(431, /Network domain/),
    );
    // A VPC whose offering lacks Lb takes no tier with Lb.
    const small = (
      await admin.call<any>('createVPCOffering', {
        name: 'no-lb-vpc',
        supportedservices: 'Dhcp,Dns,UserData,SourceNat,StaticNat,PortForwarding,NetworkACL',
        enable: true,
      })
    ).vpcoffering;
    const plain = (
      await alice.call<any>('createVPC', {
        name: 'plain',
        zoneid,
        vpcofferingid: small.id,
        cidr: '10.40.0.0/16',
        start: false,
      })
    ).vpc;
    assert.equal(plain.state, 'Inactive', 'start=false: no router yet');
    await assert.rejects(
      alice.request('createNetwork', {
        name: 'bad',
        zoneid,
        networkofferingid: tierOffering,
        vpcid: plain.id,
        gateway: '10.40.1.1',
        netmask: '255.255.255.0',
      }),
      is(431, /Service\/provider combination Lb\/VpcVirtualRouter is not supported by VPC plain/),
    );
    await alice.call('deleteVPC', { id: plain.id });
    await assert.rejects(
      bob.request('createNetwork', {
        name: 'bad',
        zoneid,
        networkofferingid: tierOffering,
        vpcid: vpc.id,
        gateway: '10.10.3.1',
        netmask: '255.255.255.0',
      }),
      is(531),
    );
    const tiers = await alice.request<any>('listNetworks', { vpcid: vpc.id });
    assert.deepEqual(tiers.network.map((n: any) => n.name).sort(), ['db', 'web']);
    const outside = await alice.request<any>('listNetworks', { forvpc: false });
    assert.equal(outside.count ?? 0, 0);
    assert.deepEqual(
      (await alice.request<any>('listVPCs', { id: vpc.id })).vpc[0].network.map((n: any) => n.name).sort(),
      ['db', 'web'],
    );

    // One router, one guest interface per tier on the tier's gateway; each tier its own VNI.
    const router = await vpcRouter(vpc.id);
    assert.deepEqual(
      router.spec.guests.map((g: any) => [g.network.cidr, g.ip, g.network.domain]),
      [
        ['10.10.1.0/24', '10.10.1.1', 'shop.internal'],
        ['10.10.2.0/24', '10.10.2.1', 'shop.internal'],
      ],
    );
    const vnis = router.spec.guests.map((g: any) => g.network.vni);
    assert.equal(new Set(vnis).size, 2);
    for (const v of vnis) assert.ok(v >= 7000 && v <= 7009);
  });

  test('VMs deploy into tiers and get entries on the VPC router', async () => {
    webVm = (
      await alice.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: web.id,
        name: 'web-1',
      })
    ).virtualmachine;
    dbVm = (
      await alice.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: db.id,
        name: 'db-1',
      })
    ).virtualmachine;
    assert.match(webVm.nic[0].ipaddress, /^10\.10\.1\.\d+$/);
    assert.equal(webVm.nic[0].gateway, '10.10.1.1');
    assert.match(dbVm.nic[0].ipaddress, /^10\.10\.2\.\d+$/);
    const router = await vpcRouter(vpc.id);
    assert.deepEqual(router.spec.vms.map((v: any) => [v.hostname, v.ip]).sort(), [
      ['db-1', dbVm.nic[0].ipaddress],
      ['web-1', webVm.nic[0].ipaddress],
    ]);
    assert.equal(routersOnHosts().size, 1, 'one router serves both tiers');
    const listed = (await admin.request<any>('listRouters', { vpcid: vpc.id })).router;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].name, router.name);
    assert.equal(listed[0].vpcid, vpc.id);
    assert.equal(listed[0].state, 'Running');
    assert.deepEqual(
      listed[0].nic.map((n: any) => [n.traffictype, n.ipaddress]),
      [
        ['Guest', '10.10.1.1'],
        ['Guest', '10.10.2.1'],
        ['Public', router.spec.public.sourceNat],
      ],
    );
    assert.equal((await admin.request<any>('listRouters', { forvpc: false })).count ?? 0, 0);
  });

  test('public addresses of the VPC: port forwarding and static NAT into tiers', async () => {
    const pf = (await alice.call<any>('associateIpAddress', { vpcid: vpc.id })).ipaddress;
    assert.equal(pf.vpcid, vpc.id);
    assert.equal(pf.associatednetworkid, undefined, 'serves no tier yet');
    await assert.rejects(
      alice.call('createPortForwardingRule', {
        ipaddressid: pf.id,
        protocol: 'tcp',
        publicport: 80,
        privateport: 8080,
        virtualmachineid: webVm.id,
      }),
      is(431, /give networkid/),
    );
    const rule = (
      await alice.call<any>('createPortForwardingRule', {
        ipaddressid: pf.id,
        protocol: 'tcp',
        publicport: 80,
        privateport: 8080,
        virtualmachineid: webVm.id,
        networkid: web.id,
      })
    ).portforwardingrule;
    assert.equal(rule.networkid, web.id);
    const bound = (await alice.request<any>('listPublicIpAddresses', { id: pf.id })).publicipaddress[0];
    assert.equal(bound.associatednetworkid, web.id);
    await assert.rejects(
      alice.call('createPortForwardingRule', {
        ipaddressid: pf.id,
        protocol: 'tcp',
        publicport: 5432,
        privateport: 5432,
        virtualmachineid: dbVm.id,
        networkid: db.id,
      }),
      is(431, /not associated with network/),
    );
    const nat = (await alice.call<any>('associateIpAddress', { vpcid: vpc.id })).ipaddress;
    await alice.call('enableStaticNat', { ipaddressid: nat.id, virtualmachineid: dbVm.id, networkid: db.id });

    const router = await vpcRouter(vpc.id);
    assert.deepEqual(
      router.spec.public.addresses.map((a: any) => a.ip),
      [sourceNat, pf.ipaddress, nat.ipaddress],
    );
    assert.deepEqual(router.spec.rules.portForwards, [
      {
        publicIp: pf.ipaddress,
        protocol: 'tcp',
        publicStart: 80,
        publicEnd: 80,
        privateIp: webVm.nic[0].ipaddress,
        privateStart: 8080,
        privateEnd: 8080,
      },
    ]);
    assert.deepEqual(router.spec.rules.staticNats, [
      { publicIp: nat.ipaddress, privateIp: dbVm.nic[0].ipaddress },
    ]);
    assert.equal(router.spec.rules.egressDefaultAllow, true, 'no ACLs yet: tiers reach out');
    const listed = await alice.request<any>('listPublicIpAddresses', { vpcid: vpc.id });
    assert.equal(listed.count, 3);
    const snat = listed.publicipaddress.find((i: any) => i.issourcenat);
    await assert.rejects(alice.call('disassociateIpAddress', { id: snat.id }), is(431, /source nat/));
  });

  test('a load balancer on a VPC address spreads over VMs of its tier', async () => {
    const ip = (await alice.call<any>('associateIpAddress', { vpcid: vpc.id })).ipaddress;
    const lb = (
      await alice.call<any>('createLoadBalancerRule', {
        publicipid: ip.id,
        name: 'web-lb',
        publicport: 443,
        privateport: 8443,
        algorithm: 'roundrobin',
        networkid: web.id,
      })
    ).loadbalancer;
    assert.equal(lb.networkid, web.id);
    await assert.rejects(
      alice.call('assignToLoadBalancerRule', { id: lb.id, virtualmachineids: dbVm.id }),
      is(431),
      'a VM of another tier is refused',
    );
    await alice.call('assignToLoadBalancerRule', { id: lb.id, virtualmachineids: webVm.id });
    const router = await vpcRouter(vpc.id);
    const onRouter = router.spec.rules.loadBalancers.find((l: any) => l.publicIp === ip.ipaddress);
    assert.deepEqual(
      onRouter.members.map((m: any) => m.ip),
      [webVm.nic[0].ipaddress],
    );
    assert.equal(onRouter.privatePort, 8443);
  });

  test('restartVPC cleanup=true boots a fresh router with every tier, entry and rule', async () => {
    const old = await vpcRouter(vpc.id);
    await alice.call('restartVPC', { id: vpc.id, cleanup: true });
    const fresh = await vpcRouter(vpc.id);
    assert.notEqual(fresh.name, old.name, 'a new router');
    assert.equal(routersOnHosts().has(old.name), false, 'the old one is gone');
    // Same tiers and gateways; the new router's guest MACs are its own (it announces them).
    const tiersOf = (spec: any) => spec.guests.map((g: any) => [g.network, g.ip]);
    assert.deepEqual(tiersOf(fresh.spec), tiersOf(old.spec));
    assert.deepEqual(fresh.spec.public, old.spec.public, 'same public side (MAC kept)');
    assert.deepEqual(fresh.spec.rules, old.spec.rules);
    assert.deepEqual(fresh.spec.vms.map((v: any) => v.ip).sort(), old.spec.vms.map((v: any) => v.ip).sort());
  });

  test('deleteVPC is refused while tiers have VMs; deleting a tier unplugs it', async () => {
    await assert.rejects(alice.call('deleteVPC', { id: vpc.id }), is(431, /web-1 \(Running\) in web/));
    assert.equal((await alice.request<any>('listVPCs', { id: vpc.id })).count, 1, 'nothing changed');
    await admin.call('destroyVirtualMachine', { id: dbVm.id, expunge: true });
    await alice.call('deleteNetwork', { id: db.id });
    const router = await vpcRouter(vpc.id);
    assert.deepEqual(
      router.spec.guests.map((g: any) => g.network.cidr),
      ['10.10.1.0/24'],
      'the db tier left the router',
    );
    assert.deepEqual(router.spec.rules.staticNats, [], 'its static NAT went with it');
    const ips = await alice.request<any>('listPublicIpAddresses', { vpcid: vpc.id });
    assert.equal(ips.count, 4, "the VPC's addresses stay the VPC's");
  });

  test('deleteVPC with no VM left removes tiers, router and addresses', async () => {
    await admin.call('destroyVirtualMachine', { id: webVm.id, expunge: true });
    await alice.call('deleteVPC', { id: vpc.id });
    assert.equal((await alice.request<any>('listVPCs', {})).count ?? 0, 0);
    assert.equal((await alice.request<any>('listNetworks', {})).count ?? 0, 0, 'tiers deleted');
    assert.equal(routersOnHosts().size, 0, 'no router left on any host');
    for (const h of zone.fleet.hosts.values())
      assert.equal(h.networks.size, 0, `no bridge left on ${h.name}`);
    assert.equal((await alice.request<any>('listPublicIpAddresses', {})).count ?? 0, 0, 'addresses released');
    const events = await alice.request<any>('listEvents', { type: 'VPC.DELETE' });
    assert.ok(events.count >= 1);
  });
});

describe('concurrent tiers', () => {
  test('tiers created at once with overlapping subnets: exactly one is made', async () => {
    const vpc = (
      await alice.call<any>('createVPC', {
        name: 'race',
        zoneid,
        vpcofferingid: vpcOffering,
        cidr: '10.50.0.0/16',
        start: false,
      })
    ).vpc;
    const results = await Promise.allSettled(
      // 10.50.1.0/24, 10.50.1.128/25 and 10.50.1.128/26: each pair overlaps.
      [
        ['10.50.1.1', '255.255.255.0'],
        ['10.50.1.129', '255.255.255.128'],
        ['10.50.1.130', '255.255.255.192'],
      ].map(([gateway, netmask], i) =>
        alice.request('createNetwork', {
          name: `race-${i}`,
          zoneid,
          networkofferingid: tierOfferingNoLb,
          vpcid: vpc.id,
          gateway,
          netmask,
        }),
      ),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
    for (const r of results)
      if (r.status === 'rejected')
        assert.ok(is(431, /crosses other network cidr/)(r.reason), String(r.reason));
    const tiers = await alice.request<any>('listNetworks', { vpcid: vpc.id });
    assert.equal(tiers.count, 1);
    await alice.call('deleteVPC', { id: vpc.id });
  });
});

describe('account deletion', () => {
  test('deleting an account deletes its VPCs: tiers, router and addresses', async () => {
    const carol = await zone.createUser('carol');
    const vpc = (
      await carol.call<any>('createVPC', {
        name: 'c-vpc',
        zoneid,
        vpcofferingid: vpcOffering,
        cidr: '10.30.0.0/16',
      })
    ).vpc;
    const tier = (
      await carol.request<any>('createNetwork', {
        name: 'c-web',
        zoneid,
        networkofferingid: tierOffering,
        vpcid: vpc.id,
        gateway: '10.30.1.1',
        netmask: '255.255.255.0',
      })
    ).network;
    await carol.call('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      networkids: tier.id,
    });
    const router = await vpcRouter(vpc.id);
    const account = (await admin.request<any>('listAccounts', { name: 'carol', listall: true })).account[0];
    await admin.call('deleteAccount', { id: account.id });
    assert.equal((await admin.request<any>('listVPCs', { listall: true })).count ?? 0, 0);
    assert.equal(routersOnHosts().has(router.name), false, 'its router is gone from the host');
    const held = await admin.request<any>('listPublicIpAddresses', { listall: true });
    assert.equal(held.count ?? 0, 0, 'its addresses are free');
  });
});
