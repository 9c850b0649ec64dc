/**
 * VPC network ACLs, private gateways and static routes through the API, on simulator hosts running
 * in this process (which keep the router specs they are sent): the built-in lists, a VPC's own
 * lists and items in number order, createNetwork aclid=, replaceNetworkACLList on a tier and on a
 * private gateway, moveNetworkAclItem, static routes through a gateway, restartVPC cleanup=true
 * keeping all of it, upstream's refusals, and a router that refuses a change leaving the records
 * as they were.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

let zone: AdvancedZone;
let admin: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;
let zoneid: string;
let vpcOffering: string;
let tierOffering: string;

/** The spec the simulated host holds for the VPC's router (the one with its source NAT). */
async function routerSpec(vpcid: string): Promise<any> {
  const ips = await admin.request<any>('listPublicIpAddresses', { vpcid, listall: true, issourcenat: true });
  const sourceNat = ips.publicipaddress[0].ipaddress;
  for (const h of zone.fleet.hosts.values())
    for (const spec of h.routers.values()) if ((spec as any).public?.sourceNat === sourceNat) return spec;
  throw new Error(`no router of VPC ${vpcid} runs on a host`);
}

/** The ACL the router enforces on a tier (by the tier's bridge in the spec). */
async function tierAcl(vpcid: string, tierid: string): Promise<any> {
  const spec = await routerSpec(vpcid);
  const bridge = spec.guests.find((g: any) => g.network.uuid === tierid)?.network.bridge;
  return spec.vpc.acls.find((a: any) => a.bridge === bridge);
}

const failNextRouterStart = () =>
  admin.request('configureSimulator', { name: 'startRouter', value: 'result:fail', count: 1, zoneid });

before(async () => {
  zone = await startAdvancedZone({ publicIps: 8, vniRange: '7100-7109' });
  ({ admin, zoneid } = zone);
  alice = await zone.createUser('alice');
  bob = await zone.createUser('bob');
  tierOffering = (
    await admin.request<any>('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingForVpcNetworks' })
  ).networkoffering[0].id;
  vpcOffering = (await alice.request<any>('listVPCOfferings', { name: 'Default VPC offering' }))
    .vpcoffering[0].id;
});

after(() => zone?.stop());

describe('network ACLs', () => {
  let vpc: any;
  let other: any;
  let web: any;
  let db: any;
  let list: any;
  let defaults: Record<string, any>;
  const items: any[] = [];

  test('the built-in lists: visible to everyone, one Ingress and one Egress item each', async () => {
    const lists = await bob.request<any>('listNetworkACLLists', {});
    defaults = Object.fromEntries(lists.networkacllist.map((l: any) => [l.name, l]));
    assert.ok(defaults.default_allow && defaults.default_deny);
    assert.equal(defaults.default_allow.vpcid, undefined);
    const allow = await alice.request<any>('listNetworkACLs', { aclid: defaults.default_allow.id });
    assert.deepEqual(
      allow.networkacl.map((i: any) => [i.number, i.traffictype, i.action, i.protocol, i.cidrlist]),
      [
        [1, 'Ingress', 'Allow', 'all', '0.0.0.0/0'],
        [2, 'Egress', 'Allow', 'all', '0.0.0.0/0'],
      ],
    );
    const deny = await alice.request<any>('listNetworkACLs', { aclid: defaults.default_deny.id });
    assert.deepEqual(
      deny.networkacl.map((i: any) => i.action),
      ['Deny', 'Deny'],
    );
  });

  test('a VPC, its own list, and tiers with and without a list', async () => {
    vpc = (
      await alice.call<any>('createVPC', {
        name: 'shop',
        zoneid,
        vpcofferingid: vpcOffering,
        cidr: '10.20.0.0/16',
      })
    ).vpc;
    other = (
      await alice.call<any>('createVPC', {
        name: 'lab',
        zoneid,
        vpcofferingid: vpcOffering,
        cidr: '10.30.0.0/16',
      })
    ).vpc;
    list = (
      await alice.call<any>('createNetworkACLList', {
        name: 'db-acl',
        description: 'database tier',
        vpcid: vpc.id,
      })
    ).networkacllist;
    assert.equal(list.vpcid, vpc.id);
    assert.equal(list.vpcname, 'shop');
    const tier = (name: string, third: number, aclid?: string) =>
      alice.request<any>('createNetwork', {
        name,
        zoneid,
        networkofferingid: tierOffering,
        vpcid: vpc.id,
        gateway: `10.20.${third}.1`,
        netmask: '255.255.255.0',
        ...(aclid ? { aclid } : {}),
      });
    web = (await tier('web', 1)).network;
    assert.equal(web.aclid, undefined, 'a tier without aclid has no list');
    // A list of another VPC is refused, and no tier is made.
    const lab = (await alice.call<any>('createNetworkACLList', { name: 'lab-acl', vpcid: other.id }))
      .networkacllist;
    await assert.rejects(tier('db', 2, lab.id), is(431, /do not belong to the same VPC/));
    assert.equal((await alice.request<any>('listNetworks', { vpcid: vpc.id })).count, 1);
    db = (await tier('db', 2, list.id)).network;
    assert.equal(db.aclid, list.id);
    assert.equal(db.aclname, 'db-acl');
    const webAcl = await tierAcl(vpc.id, web.id);
    assert.deepEqual(
      [webAcl.ingress, webAcl.egress, webAcl.ingressDefault, webAcl.egressDefault],
      [[], [], 'deny', 'allow'],
      'a tier without a list: nothing in, everything out',
    );
    // Lists are scoped like their VPC: bob sees only the built-in ones.
    assert.deepEqual(
      (await bob.request<any>('listNetworkACLLists', {})).networkacllist.map((l: any) => l.name).sort(),
      ['default_allow', 'default_deny'],
    );
    await assert.rejects(bob.call('createNetworkACLList', { name: 'x', vpcid: vpc.id }), is(531));
    await assert.rejects(alice.call('createNetworkACLList', { name: 'global' }), is(531));
    const mine = await alice.request<any>('listNetworkACLLists', { vpcid: vpc.id });
    assert.deepEqual(mine.networkacllist.map((l: any) => l.name).sort(), [
      'db-acl',
      'default_allow',
      'default_deny',
    ]);
    assert.equal(
      (await alice.request<any>('listNetworkACLLists', { networkid: db.id })).networkacllist[0].id,
      list.id,
    );
  });

  test('items are enforced in number order; numbers are taken after the last when not given', async () => {
    const add = async (p: Record<string, unknown>) =>
      (await alice.call<any>('createNetworkACL', { aclid: list.id, ...p })).networkacl;
    const started = Date.now();
    items.push(
      await add({
        number: 10,
        protocol: 'TCP',
        startport: 5432,
        endport: 5432,
        cidrlist: '10.20.1.0/24',
        reason: 'web to db',
      }),
    );
    const ms = Date.now() - started;
    items.push(await add({ number: 5, protocol: 'tcp', startport: 6000, action: 'deny' }));
    items.push(await add({ protocol: 'icmp', icmptype: 8 }));
    items.push(await add({ protocol: '17', traffictype: 'egress', cidrlist: '0.0.0.0/0' }));
    assert.deepEqual(
      items.map((i) => [i.number, i.action, i.traffictype, i.protocol, i.startport, i.endport]),
      [
        [10, 'Allow', 'Ingress', 'tcp', '5432', '5432'],
        [5, 'Deny', 'Ingress', 'tcp', '6000', '6000'],
        [11, 'Allow', 'Ingress', 'icmp', undefined, undefined],
        [12, 'Allow', 'Egress', '17', undefined, undefined],
      ],
    );
    assert.equal(items[2].icmpcode, -1, 'ICMP code defaults to any');
    assert.equal(items[0].aclname, 'db-acl');
    const acl = await tierAcl(vpc.id, db.id);
    assert.deepEqual(
      acl.ingress.map((r: any) => [r.number, r.allow, r.protocol, r.startPort ?? null]),
      [
        [5, false, 'tcp', 6000],
        [10, true, 'tcp', 5432],
        [11, true, 'icmp', null],
      ],
    );
    assert.deepEqual(acl.ingress[1].cidrs, ['10.20.1.0/24']);
    assert.deepEqual(acl.egress, [{ number: 12, allow: true, protocol: 17, cidrs: ['0.0.0.0/0'] }]);
    assert.equal(acl.egressDefault, 'deny', 'a list with Egress items denies other egress');
    const listed = await alice.request<any>('listNetworkACLs', { networkid: db.id });
    assert.deepEqual(
      listed.networkacl.map((i: any) => i.number),
      [5, 10, 11, 12],
    );
    assert.equal(
      (await alice.request<any>('listNetworkACLs', { aclid: list.id, traffictype: 'Egress' })).count,
      1,
    );
    assert.equal(
      (await bob.request<any>('listNetworkACLs', { networkid: db.id }).catch((e) => e)).errorcode,
      531,
    );
    const events = await alice.request<any>('listEvents', { type: 'NETWORK.ACL.ITEM.CREATE' });
    assert.ok(events.count >= 4);
    process.stdout.write(`# createNetworkACL -> router told: ${ms} ms (simulator)\n`);
  });

  test("bad items are refused with upstream's texts and change nothing", async () => {
    const before = (await alice.request<any>('listNetworkACLs', { aclid: list.id })).count;
    const specBefore = JSON.stringify(await tierAcl(vpc.id, db.id));
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ number: 10, protocol: 'tcp' }, /ACL item with number 10 already exists in ACL/],
      [{ protocol: 'gre' }, /Invalid protocol \[gre\]/],
      [{ protocol: '300' }, /Invalid protocol number: 300/],
      [{ protocol: 'icmp', startport: 22 }, /Can't specify start\/end port when protocol is ICMP/],
      [{ protocol: 'tcp', icmptype: 8 }, /Can specify icmpCode and icmpType for ICMP protocol only/],
      [{ protocol: 'tcp', startport: 90, endport: 80 }, /Start port can't be bigger than end port/],
      [{ protocol: 'all', startport: 80 }, /start port and end port must be null if protocol = 'all'/],
      [{ protocol: 'tcp', startport: 70000 }, /Start public port is an invalid value/],
      [{ protocol: 'tcp', cidrlist: '10.0.0.0/33' }, /Source cidrs formatting error/],
      [{ protocol: 'tcp', action: 'maybe' }, /Invalid action \[maybe\]/],
      [{ protocol: 'tcp', traffictype: 'sideways' }, /Invalid traffic type/],
      [{ protocol: 'tcp', number: 0 }, /Number cannot be < 1/],
      [{ protocol: 'icmp', icmptype: 300 }, /Invalid icmp type/],
    ];
    for (const [p, text] of bad)
      await assert.rejects(
        alice.call('createNetworkACL', { aclid: list.id, ...p }),
        is(431, text),
        JSON.stringify(p),
      );
    await assert.rejects(
      alice.call('createNetworkACL', { aclid: defaults.default_allow.id, protocol: 'tcp' }),
      is(431, /Default ACL cannot be modified/),
    );
    await assert.rejects(
      alice.call('createNetworkACL', { protocol: 'tcp' }),
      is(431, /ACL Id or network Id is required/),
    );
    await assert.rejects(bob.call('createNetworkACL', { aclid: list.id, protocol: 'tcp' }), is(531));
    const defaultItem = (await alice.request<any>('listNetworkACLs', { aclid: defaults.default_deny.id }))
      .networkacl[0];
    await assert.rejects(
      alice.call('deleteNetworkACL', { id: defaultItem.id }),
      is(431, /ACL Items in default ACL cannot be deleted/),
    );
    await assert.rejects(
      alice.call('updateNetworkACLItem', { id: defaultItem.id, action: 'Allow' }),
      is(431, /Default ACL cannot be modified/),
    );
    await assert.rejects(
      alice.call('deleteNetworkACLList', { id: defaults.default_allow.id }),
      is(431, /Default ACL cannot be removed/),
    );
    await assert.rejects(
      admin.call('updateNetworkACLList', { id: defaults.default_deny.id, name: 'x' }),
      is(431, /Default ACL cannot be modified/),
    );
    await assert.rejects(
      alice.call('updateNetworkACLItem', { id: items[0].id, number: 5 }),
      is(431, /already exists/),
    );
    assert.equal((await alice.request<any>('listNetworkACLs', { aclid: list.id })).count, before);
    assert.equal(JSON.stringify(await tierAcl(vpc.id, db.id)), specBefore);
  });

  test('a router that refuses the change leaves the list as it was', async () => {
    const before = await alice.request<any>('listNetworkACLs', { aclid: list.id });
    const specBefore = JSON.stringify(await tierAcl(vpc.id, db.id));
    await failNextRouterStart();
    await assert.rejects(alice.call('createNetworkACL', { aclid: list.id, protocol: 'udp', startport: 53 }));
    await failNextRouterStart();
    await assert.rejects(alice.call('deleteNetworkACL', { id: items[1].id }));
    await failNextRouterStart();
    await assert.rejects(
      alice.call('updateNetworkACLItem', { id: items[0].id, startport: 5433, endport: 5433 }),
    );
    await failNextRouterStart();
    await assert.rejects(
      alice.call('replaceNetworkACLList', { aclid: defaults.default_allow.id, networkid: db.id }),
    );
    assert.deepEqual(await alice.request<any>('listNetworkACLs', { aclid: list.id }), before);
    assert.equal((await alice.request<any>('listNetworks', { id: db.id })).network[0].aclid, list.id);
    assert.equal(
      JSON.stringify(await tierAcl(vpc.id, db.id)),
      specBefore,
      'the router was told the old list again',
    );
  });

  test('updateNetworkACLItem changes only what it is given; moveNetworkAclItem renumbers', async () => {
    const updated = (
      await alice.call<any>('updateNetworkACLItem', { id: items[0].id, startport: 5433, endport: 5434 })
    ).networkacl;
    assert.deepEqual(
      [updated.number, updated.startport, updated.endport, updated.cidrlist, updated.reason],
      [10, '5433', '5434', '10.20.1.0/24', 'web to db'],
    );
    // Order now: 5 (deny 6000), 10, 11 (icmp), 12 (egress). Move 12 to the top: 1.
    const hash = createHash('md5')
      .update([items[1], items[0], items[2], items[3]].map((i) => i.id).join(''))
      .digest('hex');
    await assert.rejects(
      alice.call('moveNetworkAclItem', {
        id: items[3].id,
        nextaclruleid: items[1].id,
        aclconsistencyhash: 'f00',
      }),
      is(431, /not in the state that you used/),
    );
    const moved = (
      await alice.call<any>('moveNetworkAclItem', {
        id: items[3].id,
        nextaclruleid: items[1].id,
        aclconsistencyhash: hash,
      })
    ).networkacl;
    assert.equal(moved.number, 1);
    // Between 10 and 11 there is no room: 11 moves down to make it.
    await alice.call('moveNetworkAclItem', {
      id: items[1].id,
      previousaclruleid: items[0].id,
      nextaclruleid: items[2].id,
    });
    const order = (await alice.request<any>('listNetworkACLs', { aclid: list.id })).networkacl.map(
      (i: any) => [i.id, i.number],
    );
    assert.deepEqual(order, [
      [items[3].id, 1],
      [items[0].id, 10],
      [items[1].id, 11],
      [items[2].id, 12],
    ]);
    const acl = await tierAcl(vpc.id, db.id);
    assert.deepEqual(
      acl.ingress.map((r: any) => r.number),
      [10, 11, 12],
    );
    await assert.rejects(
      alice.call('moveNetworkAclItem', { id: items[0].id }),
      is(431, /Both previous and next ACL rule IDs cannot be blank/),
    );
  });

  test('replaceNetworkACLList flips a tier to another list at once; a list in use cannot be deleted', async () => {
    await alice.call('replaceNetworkACLList', { aclid: defaults.default_allow.id, networkid: db.id });
    const acl = await tierAcl(vpc.id, db.id);
    assert.deepEqual([acl.ingress.length, acl.ingress[0].allow, acl.egress[0].allow], [1, true, true]);
    await alice.call('replaceNetworkACLList', { aclid: list.id, networkid: web.id });
    await assert.rejects(
      alice.call('deleteNetworkACLList', { id: list.id }),
      is(530, /ACL is still associated with 1 tier\(s\)/),
    );
    const lab = (await alice.request<any>('listNetworkACLLists', { vpcid: other.id, name: 'lab-acl' }))
      .networkacllist[0];
    await assert.rejects(
      alice.call('replaceNetworkACLList', { aclid: lab.id, networkid: web.id }),
      is(431, /do not belong to the same VPC/),
    );
    await assert.rejects(alice.call('replaceNetworkACLList', { aclid: list.id }), is(431));
    assert.equal((await alice.request<any>('listEvents', { type: 'NETWORK.ACL.REPLACE' })).count >= 2, true);
    // restartVPC cleanup=true: a fresh router with every list.
    await alice.call('restartVPC', { id: vpc.id, cleanup: true });
    assert.deepEqual(
      (await tierAcl(vpc.id, web.id)).ingress.map((r: any) => r.number),
      [10, 11, 12],
    );
    assert.equal((await tierAcl(vpc.id, db.id)).ingress[0].allow, true);
  });

  test('updateNetworkACLList renames; deleteNetworkACLList removes a list no tier uses', async () => {
    const renamed = (
      await alice.call<any>('updateNetworkACLList', { id: list.id, name: 'app-acl', description: 'app' })
    ).networkacllist;
    assert.deepEqual([renamed.name, renamed.description], ['app-acl', 'app']);
    const spare = (await alice.call<any>('createNetworkACLList', { name: 'spare', vpcid: vpc.id }))
      .networkacllist;
    await alice.call('createNetworkACL', { aclid: spare.id, protocol: 'all' });
    await alice.call('deleteNetworkACLList', { id: spare.id });
    // Deleted lists' rows go (as upstream's): their id no longer resolves.
    await assert.rejects(alice.request('listNetworkACLLists', { id: spare.id }), is(431));
    assert.equal((await alice.request<any>('listNetworkACLs', { aclid: list.id })).count, 4);
    assert.ok((await alice.request<any>('listEvents', { type: 'NETWORK.ACL.DELETE' })).count >= 1);
  });

  describe('private gateways and static routes', () => {
    let gw: any;
    let route: any;

    test('createPrivateGateway: admins only; default_deny; the router joins vlan N as VXLAN N', async () => {
      const params = {
        vpcid: vpc.id,
        ipaddress: '172.16.5.2',
        gateway: '172.16.5.1',
        netmask: '255.255.255.0',
        vlan: 'vlan://42',
      };
      await assert.rejects(alice.call('createPrivateGateway', params), is(531));
      const bad: [Record<string, string>, RegExp][] = [
        [{ ipaddress: '172.16.6.2' }, /not in the gateway 172\.16\.5\.1 subnet/],
        [{ ipaddress: '10.20.9.2', gateway: '10.20.9.1' }, /overlaps the VPC's CIDR/],
        [{ vlan: 'vlan://5000' }, /Invalid vlan/],
        [{ ipaddress: '172.16.5.1' }, /must differ/],
      ];
      for (const [p, text] of bad)
        await assert.rejects(
          admin.call('createPrivateGateway', { ...params, ...p }),
          is(431, text),
          JSON.stringify(p),
        );
      gw = (await admin.call<any>('createPrivateGateway', params)).privategateway;
      assert.deepEqual(
        [
          gw.ipaddress,
          gw.gateway,
          gw.vlan,
          gw.vpcid,
          gw.aclname,
          gw.state,
          gw.account,
          gw.sourcenatsupported,
        ],
        ['172.16.5.2', '172.16.5.1', 'vlan://42', vpc.id, 'default_deny', 'Ready', 'alice', false],
      );
      await assert.rejects(
        admin.call('createPrivateGateway', { ...params, ipaddress: '172.16.5.3' }),
        is(431, /already has a private gateway on vlan:\/\/42/),
      );
      // A router that refuses the gateway leaves none behind.
      await failNextRouterStart();
      await assert.rejects(
        admin.call('createPrivateGateway', {
          ...params,
          vlan: '44',
          ipaddress: '172.16.9.2',
          gateway: '172.16.9.1',
        }),
        is(530, /startRouter/),
      );
      assert.equal(
        (await admin.request<any>('listPrivateGateways', { vpcid: vpc.id, listall: true })).count,
        1,
      );
      const spec = await routerSpec(vpc.id);
      assert.deepEqual(spec.vpc.privateGateways, [
        {
          bridge: 'npgw42',
          cidr: '172.16.5.0/24',
          ip: '172.16.5.2',
          mac: spec.vpc.privateGateways[0].mac,
          gateway: '172.16.5.1',
          vni: 42,
          sourceNat: false,
        },
      ]);
      const acl = spec.vpc.acls.find((a: any) => a.bridge === 'npgw42');
      assert.deepEqual(
        [acl.ingress[0].allow, acl.egress[0].allow, acl.egressDefault],
        [false, false, 'deny'],
      );
      const bridges = [...zone.fleet.hosts.values()].flatMap((h) =>
        [...h.networks.values()].map((n) => n.bridge),
      );
      assert.ok(bridges.includes('npgw42'), "the private network's bridge is on the router's host");
      assert.equal(
        (await alice.request<any>('listPrivateGateways', { vpcid: vpc.id })).count,
        1,
        'its VPC owner sees it',
      );
      assert.equal((await bob.request<any>('listPrivateGateways', {})).count ?? 0, 0);
    });

    test('replaceNetworkACLList gatewayid=; static routes through the gateway', async () => {
      await alice.call('replaceNetworkACLList', { aclid: defaults.default_allow.id, gatewayid: gw.id });
      assert.equal(
        (await alice.request<any>('listPrivateGateways', { id: gw.id })).privategateway[0].aclname,
        'default_allow',
      );
      await assert.rejects(
        alice.call('createStaticRoute', { cidr: '10.20.5.0/24', gatewayid: gw.id }),
        is(431, /CIDR should be outside of VPC cidr/),
      );
      await assert.rejects(
        alice.call('createStaticRoute', { cidr: 'nonsense', gatewayid: gw.id }),
        is(431, /Invalid format for cidr/),
      );
      await assert.rejects(
        alice.call('createStaticRoute', { cidr: '192.168.0.0/16', gatewayid: gw.id, nexthop: '172.16.5.9' }),
        is(431, /mutually exclusive/),
      );
      await assert.rejects(
        alice.call('createStaticRoute', { cidr: '192.168.0.0/16', nexthop: '172.17.0.1', vpcid: vpc.id }),
        is(431, /not on any private gateway network/),
      );
      await assert.rejects(
        bob.call('createStaticRoute', { cidr: '192.168.0.0/16', gatewayid: gw.id }),
        is(531),
      );
      route = (await alice.call<any>('createStaticRoute', { cidr: '192.168.7.9/16', gatewayid: gw.id }))
        .staticroute;
      assert.deepEqual(
        [route.cidr, route.nexthop, route.vpcgatewayid, route.vpcgatewayip, route.vpcid, route.state],
        ['192.168.0.0/16', '172.16.5.1', gw.id, '172.16.5.2', vpc.id, 'Active'],
      );
      await assert.rejects(
        alice.call('createStaticRoute', { cidr: '192.168.0.0/16', gatewayid: gw.id }),
        is(431, /already exists/),
      );
      const viaHop = (
        await alice.call<any>('createStaticRoute', {
          cidr: '198.51.100.0/24',
          nexthop: '172.16.5.254',
          vpcid: vpc.id,
        })
      ).staticroute;
      assert.equal(viaHop.vpcgatewayid, undefined);
      assert.deepEqual((await routerSpec(vpc.id)).vpc.staticRoutes, [
        { cidr: '192.168.0.0/16', via: '172.16.5.1' },
        { cidr: '198.51.100.0/24', via: '172.16.5.254' },
      ]);
      assert.equal((await alice.request<any>('listStaticRoutes', { gatewayid: gw.id })).count, 1);
      assert.equal((await alice.request<any>('listStaticRoutes', { vpcid: vpc.id })).count, 2);
      // A router refusing the route leaves none behind.
      await failNextRouterStart();
      await assert.rejects(alice.call('createStaticRoute', { cidr: '203.0.113.0/24', gatewayid: gw.id }));
      assert.equal((await alice.request<any>('listStaticRoutes', { vpcid: vpc.id })).count, 2);
      await alice.call('deleteStaticRoute', { id: viaHop.id });
      assert.equal((await routerSpec(vpc.id)).vpc.staticRoutes.length, 1);
    });

    test('deletePrivateGateway: refused while a route uses it; then the router and host drop it', async () => {
      await assert.rejects(
        admin.call('deletePrivateGateway', { id: gw.id }),
        is(431, /static routes go through it/),
      );
      await alice.call('deleteStaticRoute', { id: route.id });
      await admin.call('deletePrivateGateway', { id: gw.id });
      const spec = await routerSpec(vpc.id);
      assert.deepEqual([spec.vpc.privateGateways, spec.vpc.staticRoutes], [[], []]);
      const bridges = [...zone.fleet.hosts.values()].flatMap((h) =>
        [...h.networks.values()].map((n) => n.bridge),
      );
      assert.ok(!bridges.includes('npgw42'));
      assert.ok(
        (await admin.request<any>('listEvents', { type: 'PRIVATE.GATEWAY.DELETE', listall: true })).count >=
          1,
      );
    });

    test("deleteVPC takes the VPC's lists, gateways and routes with it", async () => {
      const gw2 = (
        await admin.call<any>('createPrivateGateway', {
          vpcid: vpc.id,
          ipaddress: '172.16.8.2',
          gateway: '172.16.8.1',
          netmask: '255.255.255.0',
          vlan: '43',
        })
      ).privategateway;
      await alice.call('createStaticRoute', { cidr: '192.168.0.0/16', gatewayid: gw2.id });
      for (const t of [web, db]) await alice.call('deleteNetwork', { id: t.id });
      await alice.call('deleteVPC', { id: vpc.id });
      await assert.rejects(admin.request('listNetworkACLLists', { id: list.id, listall: true }), is(431));
      assert.equal(
        (await admin.request<any>('listPrivateGateways', { id: gw2.id, listall: true })).count ?? 0,
        0,
      );
      assert.equal((await admin.request<any>('listStaticRoutes', { listall: true })).count ?? 0, 0);
      const bridges = [...zone.fleet.hosts.values()].flatMap((h) =>
        [...h.networks.values()].map((n) => n.bridge),
      );
      assert.ok(!bridges.includes('npgw43'));
    });
  });
});
