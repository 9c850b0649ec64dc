/**
 * The operator's side of an Advanced zone against the real server process: the zone wizard's
 * sequence (zone, VXLAN physical network, traffic types, service providers and router elements,
 * public range), bad inputs refused with upstream's codes and nothing changed, public ranges with
 * their addresses (dedicate, release, delete), network offerings and their filters, the local zone
 * in advanced mode, and Debian's python3-cs driving the wizard.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CloudStackClient } from '@nimbostack/client';
import Database from 'better-sqlite3';
import { waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CLIENTS = join(import.meta.dirname, 'clients');

let server: TestServer;
let admin: CloudStackClient;
let user: CloudStackClient;
let userAccount: any;
let other: any;
let zone: any;
let physical: any;
let basic: any;

const is = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.message, text);
  return true;
};

/** The server's database, read (and for a few set-ups written) beside the running server. */
function sqlite<T>(fn: (db: Database.Database) => T): T {
  const db = new Database(join(server.dataDir, 'nimbostack.db'));
  db.pragma('busy_timeout = 5000');
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
const count = (sql: string, ...args: unknown[]) =>
  sqlite((db) => (db.prepare(sql).get(...args) as { n: number }).n);

before(async () => {
  server = await startServer();
  admin = server.admin;
  ({ client: user, account: userAccount } = await createAccountAndLogin(server, { name: 'tenant' }));
  ({ account: other } = await createAccountAndLogin(server, { name: 'other' }));
  basic = (
    await admin.request<any>('createZone', {
      name: 'basic-z',
      networktype: 'Basic',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
    })
  ).zone;
});
after(() => server.stop());

describe('the Advanced zone wizard', () => {
  test('createZone networktype=Advanced: no security groups, upstream guest CIDR', async () => {
    zone = (
      await admin.request<any>('createZone', {
        name: 'adv-1',
        networktype: 'Advanced',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
      })
    ).zone;
    assert.equal(zone.networktype, 'Advanced');
    assert.equal(zone.securitygroupsenabled, false);
    assert.equal(zone.guestcidraddress, '10.1.1.0/24');
  });

  test('a VXLAN physical network with several VNI ranges, traffic types and their labels', async () => {
    physical = await admin.call<any>('createPhysicalNetwork', {
      zoneid: zone.id,
      name: 'phys-vx',
      isolationmethods: 'VXLAN',
      vlan: '5000-5999, 7000-7099',
    });
    physical = physical.physicalnetwork;
    assert.equal(physical.isolationmethods, 'VXLAN');
    assert.equal(physical.vlan, '5000-5999,7000-7099');
    assert.equal(physical.state, 'Disabled');
    for (const [traffictype, label] of [
      ['Guest', undefined],
      ['Management', 'cloudbr0'],
      ['Public', 'nimbopub0'],
    ] as const)
      await admin.call('addTrafficType', {
        physicalnetworkid: physical.id,
        traffictype,
        kvmnetworklabel: label,
      });
    const types = (await admin.request<any>('listTrafficTypes', { physicalnetworkid: physical.id }))
      .traffictype;
    assert.deepEqual(types.map((t: any) => t.traffictype).sort(), ['Guest', 'Management', 'Public']);
    assert.equal(types.find((t: any) => t.traffictype === 'Public').kvmnetworklabel, 'nimbopub0');
    // A label is a host bridge name.
    await assert.rejects(
      admin.request('addTrafficType', {
        physicalnetworkid: physical.id,
        traffictype: 'Storage',
        kvmnetworklabel: 'br; reboot',
      }),
      is(431, /bridge name/),
    );
    await assert.rejects(
      admin.request('updateTrafficType', { id: types[0].id, kvmnetworklabel: 'a-much-too-long-bridge' }),
      is(431),
    );
    assert.equal((await admin.request<any>('listTrafficTypes', { physicalnetworkid: physical.id })).count, 3);
    await admin.call('updatePhysicalNetwork', { id: physical.id, state: 'Enabled' });
    const listed = (await admin.request<any>('listPhysicalNetworks', { zoneid: zone.id })).physicalnetwork;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].vlan, '5000-5999,7000-7099');
    assert.equal(listed[0].isolationmethods, 'VXLAN');
    assert.equal(listed[0].state, 'Enabled');
  });

  test('each physical network has its providers, Disabled, with their services', async () => {
    const nsps = (await admin.request<any>('listNetworkServiceProviders', { physicalnetworkid: physical.id }))
      .networkserviceprovider;
    assert.deepEqual(nsps.map((n: any) => n.name).sort(), [
      'InternalLbVm',
      'SecurityGroupProvider',
      'VirtualRouter',
      'VpcVirtualRouter',
    ]);
    for (const n of nsps) {
      assert.equal(n.state, 'Disabled');
      assert.equal(n.physicalnetworkid, physical.id);
      assert.equal(n.canenableindividualservice, false);
      assert.ok(n.id);
    }
    const vr = nsps.find((n: any) => n.name === 'VirtualRouter');
    assert.ok(vr.servicelist.includes('SourceNat') && vr.servicelist.includes('PortForwarding'));
    assert.deepEqual(nsps.find((n: any) => n.name === 'SecurityGroupProvider').servicelist, [
      'SecurityGroup',
    ]);
    const byName = await admin.request<any>('listNetworkServiceProviders', {
      physicalnetworkid: physical.id,
      name: 'VirtualRouter',
    });
    assert.equal(byName.count, 1);
    assert.equal(
      (
        await admin.request<any>('listNetworkServiceProviders', {
          physicalnetworkid: physical.id,
          state: 'Enabled',
        })
      ).count,
      undefined,
    );
  });

  test('a router provider is enabled once its element is configured, as the wizard does it', async () => {
    const nsps = (await admin.request<any>('listNetworkServiceProviders', { physicalnetworkid: physical.id }))
      .networkserviceprovider;
    const vr = nsps.find((n: any) => n.name === 'VirtualRouter');
    // Not ready: upstream refuses to enable a provider whose element is not configured.
    await assert.rejects(
      admin.call('updateNetworkServiceProvider', { id: vr.id, state: 'Enabled' }),
      is(530, /not ready/),
    );
    const elements = (await admin.request<any>('listVirtualRouterElements', { nspid: vr.id }))
      .virtualrouterelement;
    assert.equal(elements.length, 1);
    assert.equal(elements[0].enabled, false);
    assert.equal(elements[0].nspid, vr.id);
    const configured = await admin.call<any>('configureVirtualRouterElement', {
      id: elements[0].id,
      enabled: true,
    });
    assert.equal(configured.virtualrouterelement.enabled, true);
    const enabled = await admin.call<any>('updateNetworkServiceProvider', { id: vr.id, state: 'Enabled' });
    assert.equal(enabled.networkserviceprovider.state, 'Enabled');
    assert.equal(enabled.networkserviceprovider.name, 'VirtualRouter');

    const vpc = nsps.find((n: any) => n.name === 'VpcVirtualRouter');
    const vpcElement = (await admin.request<any>('listVirtualRouterElements', { nspid: vpc.id }))
      .virtualrouterelement[0];
    await admin.call('configureVirtualRouterElement', { id: vpcElement.id, enabled: true });
    await admin.call('updateNetworkServiceProvider', { id: vpc.id, state: 'Enabled' });
    const ilb = nsps.find((n: any) => n.name === 'InternalLbVm');
    const ilbElement = (await admin.request<any>('listInternalLoadBalancerElements', { nspid: ilb.id }))
      .internalloadbalancerelement[0];
    await admin.call('configureInternalLoadBalancerElement', { id: ilbElement.id, enabled: true });
    await admin.call('updateNetworkServiceProvider', { id: ilb.id, state: 'Enabled' });
    const enabledOnes = (
      await admin.request<any>('listNetworkServiceProviders', {
        physicalnetworkid: physical.id,
        state: 'Enabled',
      })
    ).networkserviceprovider;
    assert.deepEqual(enabledOnes.map((n: any) => n.name).sort(), [
      'InternalLbVm',
      'VirtualRouter',
      'VpcVirtualRouter',
    ]);
    assert.equal(
      (await admin.request<any>('listVirtualRouterElements', { enabled: true })).virtualrouterelement.length,
      2,
    );
    // Disabling works without a ready check; individual services cannot be chosen (431).
    await admin.call('updateNetworkServiceProvider', { id: ilb.id, state: 'Disabled' });
    await assert.rejects(
      admin.request('updateNetworkServiceProvider', { id: vr.id, servicelist: 'Dhcp' }),
      is(431),
    );
    await assert.rejects(
      admin.request('updateNetworkServiceProvider', { id: vr.id, state: 'Sideways' }),
      is(431),
    );
    await assert.rejects(user.request('listNetworkServiceProviders', {}), is(432));
  });

  test('bad VNI ranges are refused with 431 and change nothing', async () => {
    const before = (await admin.request<any>('listPhysicalNetworks', {})).count;
    for (const vlan of ['0-10', '6000-5000', '16777215', 'abc', '5000-5100,5050-5200'])
      await assert.rejects(
        admin.request('createPhysicalNetwork', {
          zoneid: zone.id,
          name: 'bad',
          isolationmethods: 'VXLAN',
          vlan,
        }),
        is(431),
        vlan,
      );
    // Guest networks are VXLAN segments: isolation methods that need other tunnels are refused.
    for (const isolationmethods of ['GRE', 'L3', 'stt'])
      await assert.rejects(
        admin.request('createPhysicalNetwork', {
          zoneid: zone.id,
          name: 'bad',
          isolationmethods,
          vlan: '8000-8010',
        }),
        is(431, /is not supported: guest networks here are VXLAN/),
        isolationmethods,
      );
    // Another physical network of the zone may not reuse a VNI of the first.
    await assert.rejects(
      admin.request('createPhysicalNetwork', {
        zoneid: zone.id,
        name: 'bad',
        isolationmethods: 'VXLAN',
        vlan: '5900-6100',
      }),
      is(431, /overlaps/),
    );
    assert.equal((await admin.request<any>('listPhysicalNetworks', {})).count, before);
    // A second one with its own range is fine, and can't be moved onto the first's range.
    const second = (
      await admin.call<any>('createPhysicalNetwork', {
        zoneid: zone.id,
        name: 'phys-2',
        isolationmethods: 'VLAN',
        vlan: '100-199',
      })
    ).physicalnetwork;
    await assert.rejects(
      admin.request('updatePhysicalNetwork', { id: second.id, vlan: '7050-7060' }),
      is(431),
    );
    await admin.call('deletePhysicalNetwork', { id: second.id });
    assert.equal(
      count(
        'select count(*) n from network_service_providers where physical_network_id = (select id from physical_networks where uuid = ?)',
        second.id,
      ),
      0,
    );
  });

  test('updatePhysicalNetwork cannot shrink the range below a VNI a network holds (536)', async () => {
    const offering = count(
      "select id n from network_offerings where name = 'DefaultIsolatedNetworkOfferingWithSourceNatService'",
    );
    sqlite((db) =>
      db
        .prepare(
          `insert into networks (uuid, name, display_text, zone_id, network_offering_id, physical_network_id,
             traffic_type, guest_type, broadcast_domain_type, state, acl_type, created, vni)
           values ('held-vni-net', 'held', 'held', (select id from zones where uuid = ?), ?,
             (select id from physical_networks where uuid = ?), 'Guest', 'Isolated', 'Vxlan', 'Implemented',
             'Account', 0, 7050)`,
        )
        .run(zone.id, offering, physical.id),
    );
    await assert.rejects(
      admin.request('updatePhysicalNetwork', { id: physical.id, vlan: '5000-5999' }),
      is(536, /7050/),
    );
    assert.equal(
      (await admin.request<any>('listPhysicalNetworks', { id: physical.id })).physicalnetwork[0].vlan,
      '5000-5999,7000-7099',
    );
    // Growing, or keeping the held VNI, is fine.
    await admin.call('updatePhysicalNetwork', { id: physical.id, vlan: '5000-5999,7000-7199' });
    // Nor can its Guest traffic type go while a network of it exists (upstream's 530 and text).
    const guest = (
      await admin.request<any>('listTrafficTypes', { physicalnetworkid: physical.id })
    ).traffictype.find((t: any) => t.traffictype === 'Guest');
    await assert.rejects(
      admin.call('deleteTrafficType', { id: guest.id }),
      is(
        530,
        /The Traffic Type is not deletable because there are existing networks with this traffic type:Guest/,
      ),
    );
    sqlite((db) => db.prepare("update networks set removed = 1 where uuid = 'held-vni-net'").run());
    await admin.call('updatePhysicalNetwork', { id: physical.id, vlan: '5000-5999' });
    assert.equal(
      (await admin.request<any>('listPhysicalNetworks', { id: physical.id })).physicalnetwork[0].vlan,
      '5000-5999',
    );
  });
});

describe('public IP ranges', () => {
  let range: any;
  const base = () => ({
    zoneid: zone.id,
    forvirtualnetwork: true,
    gateway: '198.51.100.1',
    netmask: '255.255.255.0',
  });
  const addresses = (rangeUuid: string) =>
    count(
      'select count(*) n from public_ips where range_id = (select id from vlan_ip_ranges where uuid = ?)',
      rangeUuid,
    );

  test('createVlanIpRange forvirtualnetwork=true makes the range and one Free address per IP', async () => {
    range = (
      await admin.request<any>('createVlanIpRange', {
        ...base(),
        startip: '198.51.100.10',
        endip: '198.51.100.40',
      })
    ).vlan;
    assert.equal(range.forvirtualnetwork, true);
    assert.equal(range.vlan, 'vlan://untagged');
    assert.equal(range.podid, undefined);
    assert.equal(range.physicalnetworkid, physical.id);
    assert.equal(range.cidr, '198.51.100.0/24');
    assert.equal(addresses(range.id), 31);
    assert.equal(
      count(
        "select count(*) n from public_ips where range_id = (select id from vlan_ip_ranges where uuid = ?) and state = 'Free'",
        range.id,
      ),
      31,
    );
    // The range belongs to the zone's system Public network, which listNetworks does not show.
    assert.ok(range.networkid);
    const networks = await admin.request<any>('listNetworks', { zoneid: zone.id, listall: true });
    assert.ok(!(networks.network ?? []).some((n: any) => n.id === range.networkid));
    assert.equal(
      count("select count(*) n from networks where uuid = ? and traffic_type = 'Public'", range.networkid),
      1,
    );
    const listed = await admin.request<any>('listVlanIpRanges', { zoneid: zone.id, forvirtualnetwork: true });
    assert.equal(listed.count, 1);
    assert.equal(listed.vlaniprange[0].startip, '198.51.100.10');
    assert.equal(
      (await admin.request<any>('listVlanIpRanges', { zoneid: zone.id, forvirtualnetwork: false })).count,
      undefined,
    );
    // A tagged range is accepted and shows its tag; a second range shares the Public network.
    const tagged = (
      await admin.request<any>('createVlanIpRange', {
        zoneid: zone.id,
        gateway: '192.0.2.1',
        netmask: '255.255.255.0',
        startip: '192.0.2.10',
        endip: '192.0.2.12',
        vlan: 'vlan://123',
      })
    ).vlan;
    assert.equal(tagged.forvirtualnetwork, true, 'forvirtualnetwork defaults to true, as upstream');
    assert.equal(tagged.vlan, 'vlan://123');
    assert.equal(tagged.networkid, range.networkid);
    assert.equal((await admin.request<any>('listVlanIpRanges', { vlan: '123' })).count, 1);
    await admin.request('deleteVlanIpRange', { id: tagged.id });
    assert.equal(addresses(tagged.id), 0);
  });

  test('bad public ranges are refused with 431 and change nothing', async () => {
    const ranges = count('select count(*) n from vlan_ip_ranges');
    const ips = count('select count(*) n from public_ips');
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...base(), startip: '198.51.100.30', endip: '198.51.100.50' }, /overlaps/],
      [{ ...base(), gateway: '203.0.113.1', startip: '198.51.100.60', endip: '198.51.100.70' }, /subnet/],
      [{ ...base(), startip: '198.51.100.1', endip: '198.51.100.5' }, /gateway/],
      [{ ...base(), startip: '198.51.100.60', endip: '198.51.100.50' }, /after/],
      [{ ...base(), startip: '198.51.100.60', endip: '198.51.100.70', vlan: 'abc' }, /vlan/],
      [{ ...base(), startip: '198.51.100.60', endip: '198.51.100.70', vlan: '123' }, /same subnet/],
      [
        { ...base(), startip: '198.51.100.60', endip: '198.51.100.70', podid: undefined, account: 'tenant' },
        /domainid/,
      ],
      [{ ...base(), zoneid: basic.id, startip: '198.51.100.60', endip: '198.51.100.70' }, /Basic/],
    ];
    // Same-vlan check needs a range on vlan 123 with another subnet first.
    const other123 = (
      await admin.request<any>('createVlanIpRange', {
        zoneid: zone.id,
        gateway: '192.0.2.1',
        netmask: '255.255.255.0',
        startip: '192.0.2.20',
        endip: '192.0.2.21',
        vlan: '123',
      })
    ).vlan;
    for (const [params, text] of bad)
      await assert.rejects(
        admin.request('createVlanIpRange', params as any),
        is(431, text),
        JSON.stringify(params),
      );
    await admin.request('deleteVlanIpRange', { id: other123.id });
    assert.equal(count('select count(*) n from vlan_ip_ranges'), ranges);
    assert.equal(count('select count(*) n from public_ips'), ips);
    await assert.rejects(user.request('createVlanIpRange', { ...base(), startip: '198.51.100.60' }), is(432));
  });

  test('dedicate to an account, list by account, release; refused twice and for a held address', async () => {
    const dedicated = (
      await admin.request<any>('dedicatePublicIpRange', {
        id: range.id,
        account: 'tenant',
        domainid: userAccount.domainid,
      })
    ).vlan;
    assert.equal(dedicated.account, 'tenant');
    assert.equal(dedicated.domain, 'ROOT');
    assert.equal(dedicated.domainid, userAccount.domainid);
    assert.equal(
      (await admin.request<any>('listVlanIpRanges', { account: 'tenant', domainid: userAccount.domainid }))
        .count,
      1,
    );
    assert.equal(
      (await admin.request<any>('listVlanIpRanges', { account: 'other', domainid: other.domainid })).count,
      undefined,
    );
    await assert.rejects(
      admin.request('dedicatePublicIpRange', { id: range.id, account: 'other', domainid: other.domainid }),
      is(431, /already dedicated/),
    );
    await admin.request('releasePublicIpRange', { id: range.id });
    const released = (await admin.request<any>('listVlanIpRanges', { id: range.id })).vlaniprange[0];
    assert.equal(released.account, undefined);
    assert.equal(released.domainid, undefined);
    await assert.rejects(admin.request('releasePublicIpRange', { id: range.id }), is(431, /not dedicated/));
    // An address held by another account blocks dedicating the range to this one.
    sqlite((db) =>
      db
        .prepare(
          `update public_ips set state = 'Allocated', account_id = (select id from accounts where uuid = ?),
             domain_id = (select domain_id from accounts where uuid = ?)
           where ip4 = '198.51.100.20'`,
        )
        .run(other.id, other.id),
    );
    await assert.rejects(
      admin.request('dedicatePublicIpRange', {
        id: range.id,
        account: 'tenant',
        domainid: userAccount.domainid,
      }),
      is(431, /another account/),
    );
    assert.equal(
      (await admin.request<any>('listVlanIpRanges', { id: range.id })).vlaniprange[0].account,
      undefined,
    );
    // To the address's own account it is fine; to the domain too.
    await admin.request('dedicatePublicIpRange', {
      id: range.id,
      account: 'other',
      domainid: other.domainid,
    });
    await admin.request('releasePublicIpRange', { id: range.id });
    const byDomain = (
      await admin.request<any>('dedicatePublicIpRange', { id: range.id, domainid: other.domainid })
    ).vlan;
    assert.equal(byDomain.account, undefined);
    assert.equal(byDomain.domainid, other.domainid);
    await admin.request('releasePublicIpRange', { id: range.id });
  });

  test('deleteVlanIpRange of a public range: 536 while an address is held, then its addresses go with it', async () => {
    await assert.rejects(admin.request('deleteVlanIpRange', { id: range.id }), is(536, /198\.51\.100\.20/));
    assert.equal(addresses(range.id), 31);
    sqlite((db) =>
      db
        .prepare(
          "update public_ips set state = 'Free', account_id = null, domain_id = null where ip4 = '198.51.100.20'",
        )
        .run(),
    );
    await admin.request('deleteVlanIpRange', { id: range.id });
    assert.equal(addresses(range.id), 0);
    // The range's row is gone, so its uuid names nothing now: 431, as any unknown uuid.
    await assert.rejects(admin.request('listVlanIpRanges', { id: range.id }), is(431));
    // The zone's Public network went with its last range; the next range makes a new one.
    assert.equal(
      count('select count(*) n from networks where uuid = ? and removed is null', range.networkid),
      0,
    );
    const again = (await admin.request<any>('createVlanIpRange', { ...base(), startip: '198.51.100.10' }))
      .vlan;
    assert.notEqual(again.networkid, range.networkid);
    await admin.request('deleteVlanIpRange', { id: again.id });
  });
});

describe('network offerings', () => {
  let custom: any;

  test('the upstream defaults, VPC ones included; system offerings are not listed', async () => {
    const all = (await admin.request<any>('listNetworkOfferings', {})).networkoffering;
    const names = all.map((o: any) => o.name);
    for (const name of [
      'DefaultIsolatedNetworkOfferingWithSourceNatService',
      'DefaultIsolatedNetworkOffering',
      'DefaultSharedNetworkOffering',
      'DefaultSharedNetworkOfferingWithSGService',
      'DefaultL2NetworkOffering',
      'DefaultIsolatedNetworkOfferingForVpcNetworks',
      'DefaultIsolatedNetworkOfferingForVpcNetworksNoLB',
    ])
      assert.ok(names.includes(name), name);
    assert.ok(!names.includes('System-Public-Network'));
    const snat = all.find((o: any) => o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService');
    assert.equal(snat.availability, 'Required');
    assert.equal(snat.egressdefaultpolicy, false);
    assert.equal(snat.forvpc, false);
    assert.deepEqual(snat.service.map((s: any) => s.name).sort(), [
      'Dhcp',
      'Dns',
      'Firewall',
      'Gateway',
      'Lb',
      'PortForwarding',
      'SourceNat',
      'StaticNat',
      'UserData',
      'Vpn',
    ]);
    for (const s of snat.service) assert.equal(s.provider[0].name, 'VirtualRouter');
    assert.equal(
      snat.service
        .find((s: any) => s.name === 'SourceNat')
        .capability.find((c: any) => c.name === 'SupportedSourceNatTypes').value,
      'peraccount',
    );
    const vpc = (await admin.request<any>('listNetworkOfferings', { forvpc: true })).networkoffering;
    assert.deepEqual(vpc.map((o: any) => o.name).sort(), [
      'DefaultIsolatedNetworkOfferingForVpcNetworks',
      'DefaultIsolatedNetworkOfferingForVpcNetworksNoLB',
    ]);
    assert.ok(
      vpc.every(
        (o: any) => o.forvpc && o.service.every((s: any) => s.provider[0].name === 'VpcVirtualRouter'),
      ),
    );
    assert.equal(all.find((o: any) => o.name === 'DefaultIsolatedNetworkOffering').specifyvlan, true);
  });

  test('createNetworkOffering: Disabled, Gateway added with SourceNat, egress allowed by default', async () => {
    custom = (
      await admin.request<any>('createNetworkOffering', {
        name: 'iso-web',
        displaytext: 'Isolated for web',
        guestiptype: 'Isolated',
        traffictype: 'GUEST',
        supportedservices: 'Dhcp,Dns,UserData,SourceNat,StaticNat,PortForwarding,Firewall,Lb',
        serviceproviderlist: [
          { service: 'Dhcp', provider: 'VirtualRouter' },
          { service: 'SourceNat', provider: 'virtualrouter' },
        ],
        servicecapabilitylist: [
          { service: 'SourceNat', capabilitytype: 'SupportedSourceNatTypes', capabilityvalue: 'peraccount' },
        ],
        tags: 'fast',
        networkrate: 100,
        ispersistent: true,
      })
    ).networkoffering;
    assert.equal(custom.state, 'Disabled');
    assert.equal(custom.isdefault, false);
    assert.equal(custom.egressdefaultpolicy, true);
    assert.equal(custom.ispersistent, true);
    assert.equal(custom.networkrate, 100);
    assert.equal(custom.tags, 'fast');
    assert.equal(custom.traffictype, 'Guest');
    assert.ok(
      custom.service.some((s: any) => s.name === 'Gateway' && s.provider[0].name === 'VirtualRouter'),
    );
    // Users see enabled offerings only.
    const visible = async () =>
      ((await user.request<any>('listNetworkOfferings', { name: 'iso-web' })).networkoffering ?? []).length;
    assert.equal(await visible(), 0);
    const updated = (
      await admin.request<any>('updateNetworkOffering', {
        id: custom.id,
        state: 'Enabled',
        displaytext: 'Web tier',
        sortkey: -1,
        maxconnections: 4000,
      })
    ).networkoffering;
    assert.equal(updated.state, 'Enabled');
    assert.equal(updated.displaytext, 'Web tier');
    assert.equal(updated.maxconnections, 4000);
    assert.equal(await visible(), 1);
    // The sort key orders the list.
    assert.equal((await admin.request<any>('listNetworkOfferings', {})).networkoffering[0].name, 'iso-web');
    const vpcTier = (
      await admin.request<any>('createNetworkOffering', {
        name: 'vpc-tier',
        guestiptype: 'Isolated',
        traffictype: 'Guest',
        forvpc: true,
        supportedservices: 'Dhcp,Dns,NetworkACL,Lb',
        serviceproviderlist: [{ service: 'Lb', provider: 'InternalLbVm' }],
        egressdefaultpolicy: false,
      })
    ).networkoffering;
    assert.equal(vpcTier.forvpc, true);
    assert.equal(vpcTier.egressdefaultpolicy, false);
    assert.equal(vpcTier.supportsinternallb, true);
    assert.equal(vpcTier.service.find((s: any) => s.name === 'Dhcp').provider[0].name, 'VpcVirtualRouter');
    const l2 = (
      await admin.request<any>('createNetworkOffering', {
        name: 'l2-plain',
        guestiptype: 'L2',
        traffictype: 'Guest',
        specifyvlan: true,
      })
    ).networkoffering;
    assert.deepEqual(l2.service, []);
  });

  test('listSupportedNetworkServices: what an offering may combine', async () => {
    const all = (await admin.request<any>('listSupportedNetworkServices', {})).networkservice;
    const lb = all.find((s: any) => s.name === 'Lb');
    assert.deepEqual(lb.provider.map((p: any) => p.name).sort(), [
      'InternalLbVm',
      'VirtualRouter',
      'VpcVirtualRouter',
    ]);
    assert.ok(lb.capability.some((c: any) => c.name === 'SupportedLBIsolation'));
    const sg = await admin.request<any>('listSupportedNetworkServices', {
      provider: 'SecurityGroupProvider',
    });
    assert.deepEqual(
      sg.networkservice.map((s: any) => s.name),
      ['SecurityGroup'],
    );
    await assert.rejects(admin.request('listSupportedNetworkServices', { service: 'Teleport' }), is(431));
    await assert.rejects(user.request('listSupportedNetworkServices', {}), is(432));
  });

  test('listNetworkOfferings filters', async () => {
    const names = async (params: Record<string, unknown>) =>
      ((await admin.request<any>('listNetworkOfferings', params as any)).networkoffering ?? [])
        .map((o: any) => o.name)
        .sort();
    assert.deepEqual(await names({ id: custom.id }), ['iso-web']);
    assert.deepEqual(await names({ name: 'iso-web' }), ['iso-web']);
    assert.deepEqual(await names({ keyword: 'web' }), ['iso-web']);
    assert.deepEqual(await names({ guestiptype: 'L2' }), ['DefaultL2NetworkOffering', 'l2-plain']);
    assert.deepEqual(await names({ state: 'Disabled' }), ['l2-plain', 'vpc-tier']);
    assert.deepEqual(await names({ isdefault: false }), ['iso-web', 'l2-plain', 'vpc-tier']);
    assert.deepEqual(await names({ availability: 'Required' }), [
      'DefaultIsolatedNetworkOfferingWithSourceNatService',
    ]);
    assert.deepEqual(await names({ tags: 'fast' }), ['iso-web']);
    assert.ok((await names({ specifyvlan: true })).includes('l2-plain'));
    assert.ok(!(await names({ specifyvlan: false })).includes('l2-plain'));
    assert.deepEqual(await names({ supportedservices: 'SecurityGroup' }), [
      'DefaultSharedNetworkOfferingWithSGService',
    ]);
    assert.deepEqual(await names({ supportedservices: 'NetworkACL', forvpc: true, isdefault: false }), [
      'vpc-tier',
    ]);
    assert.ok((await names({ sourcenatsupported: true })).includes('iso-web'));
    assert.ok(!(await names({ sourcenatsupported: true })).includes('DefaultIsolatedNetworkOffering'));
    assert.deepEqual(await names({ traffictype: 'Public' }), []);
    assert.ok((await names({ zoneid: zone.id })).includes('iso-web'));
    // Limited to another zone: not offered in this one.
    await admin.request('updateNetworkOffering', { id: custom.id, zoneid: basic.id });
    assert.ok(!(await names({ zoneid: zone.id })).includes('iso-web'));
    assert.equal(
      (await admin.request<any>('listNetworkOfferings', { id: custom.id })).networkoffering[0].zoneid,
      basic.id,
    );
    await admin.request('updateNetworkOffering', { id: custom.id, zoneid: 'all' });
    assert.ok((await names({ zoneid: zone.id })).includes('iso-web'));
    await assert.rejects(
      admin.request('listNetworkOfferings', { zoneid: '00000000-0000-4000-8000-000000000000' }),
      is(431),
    );
  });

  test('bad offerings are refused with 431 and change nothing', async () => {
    const before = count('select count(*) n from network_offerings');
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ supportedservices: 'Dhcp,Teleport' }, /Invalid service/],
      [
        { supportedservices: 'Dhcp', serviceproviderlist: [{ service: 'Dhcp', provider: 'Netscaler' }] },
        /provider/,
      ],
      [
        { supportedservices: 'Dhcp', serviceproviderlist: [{ service: 'Dns', provider: 'VirtualRouter' }] },
        /Dns/,
      ],
      [
        {
          guestiptype: 'Shared',
          supportedservices: 'SecurityGroup',
          serviceproviderlist: [{ service: 'SecurityGroup', provider: 'VirtualRouter' }],
        },
        /doesn't support/,
      ],
      [{ guestiptype: 'Shared', supportedservices: 'Dhcp,SourceNat' }, /Isolated/],
      [{ supportedservices: 'SecurityGroup' }, /Shared/],
      [{ supportedservices: 'NetworkACL' }, /VPC/],
      [{ guestiptype: 'L2', supportedservices: 'Dhcp' }, /L2/],
      [{ traffictype: 'Public' }, /Guest/],
      [{ guestiptype: 'Routed' }, /guest IP type/],
      [{ supportedservices: 'SourceNat', availability: 'Required' }, /already has/],
      [{ supportedservices: 'Dhcp', availability: 'Required' }, /SourceNat/],
      [
        {
          supportedservices: 'SourceNat',
          servicecapabilitylist: [
            { service: 'SourceNat', capabilitytype: 'RedundantRouter', capabilityvalue: 'true' },
          ],
        },
        /not supported/,
      ],
      [{ forvpc: true, guestiptype: 'Shared' }, /VPC/],
      [{ name: 'iso-web' }, /already exists/],
    ];
    for (const [params, text] of bad)
      await assert.rejects(
        admin.request('createNetworkOffering', {
          name: 'bad-o',
          guestiptype: 'Isolated',
          traffictype: 'Guest',
          ...params,
        } as any),
        is(431, text),
        JSON.stringify(params),
      );
    assert.equal(count('select count(*) n from network_offerings'), before);
    await assert.rejects(
      user.request('createNetworkOffering', { name: 'x', guestiptype: 'Isolated', traffictype: 'Guest' }),
      is(432),
    );
    await assert.rejects(admin.request('updateNetworkOffering', { id: custom.id, state: 'Broken' }), is(431));
    await assert.rejects(
      admin.request('updateNetworkOffering', { id: custom.id, availability: 'Required' }),
      is(431, /already has/),
    );
  });

  test('deleteNetworkOffering: defaults refused (431), in use refused (536), otherwise gone', async () => {
    const snat = (
      await admin.request<any>('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOffering' })
    ).networkoffering[0];
    await assert.rejects(admin.request('deleteNetworkOffering', { id: snat.id }), is(431, /Default/));
    sqlite((db) =>
      db
        .prepare(
          `insert into networks (uuid, name, display_text, zone_id, network_offering_id, traffic_type, guest_type,
             broadcast_domain_type, state, acl_type, created)
           values ('uses-iso-web', 'web', 'web', (select id from zones where uuid = ?),
             (select id from network_offerings where uuid = ?), 'Guest', 'Isolated', 'Vxlan', 'Allocated', 'Account', 0)`,
        )
        .run(zone.id, custom.id),
    );
    await assert.rejects(admin.request('deleteNetworkOffering', { id: custom.id }), is(536, /web/));
    assert.equal((await admin.request<any>('listNetworkOfferings', { id: custom.id })).count, 1);
    sqlite((db) => db.prepare("update networks set removed = 1 where uuid = 'uses-iso-web'").run());
    await admin.request('deleteNetworkOffering', { id: custom.id });
    assert.equal((await admin.request<any>('listNetworkOfferings', { id: custom.id })).count, undefined);
    await assert.rejects(admin.request('deleteNetworkOffering', { id: custom.id }), is(431));
  });
});

describe('third-party client', { skip: !existsSync(PYTHON) }, () => {
  test("Debian's python3-cs runs the Advanced zone wizard and creates an offering", async () => {
    const keys = await admin.request<any>('registerUserKeys', {
      id: (await admin.request<any>('listUsers', { username: 'admin' })).user[0].id,
    });
    const { stdout } = await run(
      PYTHON,
      [join(CLIENTS, 'cs_advanced_zone.py'), server.api, keys.userkeys.apikey, keys.userkeys.secretkey],
      { timeout: 120_000 },
    ).catch((e) => {
      throw new Error(`cs_advanced_zone.py failed:\n${e.stdout}\n${e.stderr}`);
    });
    const out = JSON.parse(stdout);
    assert.equal(out.zone.networktype, 'Advanced');
    assert.equal(out.physical.vlan, '6000-6099');
    assert.deepEqual(out.enabled.sort(), ['VirtualRouter', 'VpcVirtualRouter']);
    assert.equal(out.range.forvirtualnetwork, true);
    assert.equal(out.ranges.length, 1);
    assert.equal(out.offering.state, 'Disabled');
    assert.ok(out.offering.service.some((s: any) => s.name === 'PortForwarding'));
    assert.equal(out.refused.errorcode, 431);
    assert.equal(count('select count(*) n from public_ips where ip4 like ?', '100.64.0.%'), 5);
  });
});

describe('the local zone in advanced mode', () => {
  let local: TestServer;
  after(() => local?.stop());

  test('NIMBOSTACK_ZONE=advanced: an Advanced local zone, wired as the wizard does it', async () => {
    local = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true', NIMBOSTACK_ZONE: 'advanced' } });
    const z = (await local.admin.request<any>('listZones', {})).zone[0];
    assert.equal(z.networktype, 'Advanced');
    assert.equal(z.securitygroupsenabled, false);
    assert.equal(z.allocationstate, 'Enabled');
    const phys = (await local.admin.request<any>('listPhysicalNetworks', { zoneid: z.id }))
      .physicalnetwork[0];
    assert.equal(phys.isolationmethods, 'VXLAN');
    assert.equal(phys.vlan, '5000-5999');
    assert.equal(phys.state, 'Enabled');
    const types = (await local.admin.request<any>('listTrafficTypes', { physicalnetworkid: phys.id }))
      .traffictype;
    assert.deepEqual(types.map((t: any) => t.traffictype).sort(), ['Guest', 'Management', 'Public']);
    assert.equal(types.find((t: any) => t.traffictype === 'Public').kvmnetworklabel, 'nimbopub0');
    const nsps = (
      await local.admin.request<any>('listNetworkServiceProviders', { physicalnetworkid: phys.id })
    ).networkserviceprovider;
    const state = Object.fromEntries(nsps.map((n: any) => [n.name, n.state]));
    assert.deepEqual(state, {
      VirtualRouter: 'Enabled',
      VpcVirtualRouter: 'Enabled',
      InternalLbVm: 'Enabled',
      SecurityGroupProvider: 'Disabled',
    });
    const ranges = (await local.admin.request<any>('listVlanIpRanges', { zoneid: z.id })).vlaniprange;
    assert.equal(ranges.length, 1);
    assert.equal(ranges[0].forvirtualnetwork, true);
    assert.equal(ranges[0].gateway, '203.0.113.1');
    assert.equal(ranges[0].startip, '203.0.113.10');
    assert.equal(ranges[0].endip, '203.0.113.100');
    const hosts = await waitUntil(
      async () =>
        (await local.admin.request<any>('listHosts', { zoneid: z.id })).host?.find(
          (h: any) => h.state === 'Up',
        ),
      20_000,
      'the local host',
    );
    assert.equal(hosts.name, 'local-host');
  });

  test('the same data directory restarted as a Basic zone: refused with one line', async () => {
    await local.stop({ keepData: true });
    const err = await startServer({
      dataDir: local.dataDir,
      databaseUrl: local.databaseUrl,
      env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true', NIMBOSTACK_ZONE: 'basic' },
    }).then(
      async (s) => {
        await s.stop();
        return undefined;
      },
      (e: Error) => e,
    );
    assert.ok(err, 'the server started');
    assert.match(err.message, /NIMBOSTACK_ZONE=advanced/);
    local = await startServer({
      dataDir: local.dataDir,
      databaseUrl: local.databaseUrl,
      env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true', NIMBOSTACK_ZONE: 'advanced' },
    });
    assert.equal((await local.admin.request<any>('listZones', {})).zone[0].networktype, 'Advanced');
  });
});
