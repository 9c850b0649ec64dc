/**
 * VPNs through the API on simulator hosts running in this process: remote-access VPNs on an
 * isolated network's and a VPC's source-NAT address (pre-shared key, client range, users applied
 * to the router with their passwords, IKE opened in its firewall), VPN users with upstream's
 * checks and limit, and site-to-site VPN between two VPCs of the same cloud, each the other's
 * customer gateway: the connection's state is what the routers report (the simulator brings a
 * tunnel up when the two ends mirror each other, as two strongSwan daemons would). Refusals
 * answer upstream's errors and leave nothing behind, and a router that refuses a change undoes it.
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
let vpcOffering: string;
let tierOffering: string;

/** The router whose public side carries `ip` as its source NAT, as its simulated host holds it. */
function routerWith(ip: string): { name: string; spec: any; host: any } {
  for (const h of zone.fleet.hosts.values())
    for (const [name, spec] of h.routers) if (spec.public?.sourceNat === ip) return { name, spec, host: h };
  throw new Error(`no router carries ${ip}`);
}

const sourceNatOf = async (client: CloudStackClient, filter: object) =>
  (await client.request<any>('listPublicIpAddresses', { ...filter, issourcenat: true })).publicipaddress[0];

const openings = (spec: any, ip: string) =>
  (spec.rules?.firewall ?? [])
    .filter((r: any) => r.publicIp === ip && r.protocol === 'udp')
    .map((r: any) => r.startPort)
    .sort((a: number, b: number) => a - b);

/** A router told no VPN at all (none yet, or every one removed). */
const noVpn = (spec: any) => !spec.vpn?.remoteAccess && !spec.vpn?.siteToSite?.length;

async function makeVpc(name: string, cidr: string, tierGateway: string) {
  const vpc = (
    await alice.call<any>('createVPC', {
      name,
      zoneid,
      vpcofferingid: vpcOffering,
      cidr,
      networkdomain: `${name}.internal`,
    })
  ).vpc;
  const tier = (
    await alice.request<any>('createNetwork', {
      name: `${name}-web`,
      zoneid,
      networkofferingid: tierOffering,
      vpcid: vpc.id,
      gateway: tierGateway,
      netmask: '255.255.255.0',
    })
  ).network;
  const snat = await sourceNatOf(alice, { vpcid: vpc.id });
  return { vpc, tier, snat };
}

/** Makes the next `count` commands of `kind` fail on every simulated host. */
async function failNext(kind: string, count = 1): Promise<void> {
  for (const hostid of zone.hostIds.values())
    await admin.request('configureSimulator', {
      name: kind,
      value: 'result:fail;message:simulated router fault',
      count,
      hostid,
    });
}
async function clearFault(kind: string): Promise<void> {
  for (const h of zone.fleet.hosts.values()) h.configure({ kind, fail: false });
}

before(async () => {
  zone = await startAdvancedZone({ publicIps: 12, vniRange: '7100-7119' });
  ({ admin, zoneid } = zone);
  alice = await zone.createUser('alice');
  bob = await zone.createUser('bob');
  vpcOffering = (await alice.request<any>('listVPCOfferings', { name: 'Default VPC offering' }))
    .vpcoffering[0].id;
  tierOffering = (
    await admin.request<any>('listNetworkOfferings', { name: 'DefaultIsolatedNetworkOfferingForVpcNetworks' })
  ).networkoffering[0].id;
  // Bounded waits in tests: a connection not up within a second is answered as it is.
  await admin.request('updateConfiguration', { name: 'site2site.vpn.connect.wait', value: '1' });
});

after(() => zone?.stop());

let one: Awaited<ReturnType<typeof makeVpc>>;
let two: Awaited<ReturnType<typeof makeVpc>>;

describe('remote-access VPN', () => {
  let vpn: any;

  before(async () => {
    one = await makeVpc('one', '10.100.0.0/16', '10.100.1.1');
    two = await makeVpc('two', '10.200.0.0/16', '10.200.1.1');
  });

  test("refusals: not the source-NAT address, a range in the guest CIDR, a bad range, someone else's address", async () => {
    const other = (await alice.call<any>('associateIpAddress', { vpcid: one.vpc.id })).ipaddress;
    await assert.rejects(
      alice.call('createRemoteAccessVpn', { publicipid: other.id }),
      is(431, /source NAT IP address/),
    );
    await assert.rejects(
      alice.call('createRemoteAccessVpn', { publicipid: one.snat.id, iprange: '10.100.9.1-10.100.9.9' }),
      is(431, /overlaps with guest ip range 10\.100\.0\.0-10\.100\.255\.255/),
    );
    for (const iprange of ['10.1.2.9-10.1.2.1', '10.1.2.1', 'a-b'])
      await assert.rejects(
        alice.call('createRemoteAccessVpn', { publicipid: one.snat.id, iprange }),
        is(431),
        iprange,
      );
    await assert.rejects(bob.call('createRemoteAccessVpn', { publicipid: one.snat.id }), is(531));
    assert.equal((await alice.request<any>('listRemoteAccessVpns', {})).count ?? 0, 0, 'nothing was created');
    assert.ok(noVpn(routerWith(one.snat.ipaddress).spec), 'the router was told nothing');
  });

  test('createRemoteAccessVpn on the VPC source NAT: key, range, router runs it with IKE open', async () => {
    vpn = (await alice.call<any>('createRemoteAccessVpn', { publicipid: one.snat.id })).remoteaccessvpn;
    assert.equal(vpn.state, 'Running');
    assert.equal(vpn.publicip, one.snat.ipaddress);
    assert.equal(vpn.publicipid, one.snat.id);
    assert.equal(
      vpn.iprange,
      '10.1.2.2-10.1.2.8',
      'the default range, its first address kept for the router',
    );
    assert.match(vpn.presharedkey, /^[A-Za-z0-9]{24}$/);
    assert.equal(vpn.account, 'alice');
    const { spec } = routerWith(one.snat.ipaddress);
    assert.deepEqual(spec.vpn.remoteAccess, {
      publicIp: one.snat.ipaddress,
      psk: vpn.presharedkey,
      rangeStart: '10.1.2.2',
      rangeEnd: '10.1.2.8',
      localCidrs: ['10.100.1.0/24'],
      users: [],
    });
    assert.deepEqual(openings(spec, one.snat.ipaddress), [500, 4500]);
    await assert.rejects(
      alice.call('createRemoteAccessVpn', { publicipid: one.snat.id }),
      is(431, /already exists for the public IP address/),
    );
    const listed = await alice.request<any>('listRemoteAccessVpns', { publicipid: one.snat.id });
    assert.equal(listed.count, 1);
    assert.equal(listed.remoteaccessvpn[0].id, vpn.id);
    assert.equal(
      (await bob.request<any>('listRemoteAccessVpns', {})).count ?? 0,
      0,
      "bob does not see alice's",
    );
    assert.ok((await alice.request<any>('listEvents', { type: 'VPN.REMOTE.ACCESS.CREATE' })).count >= 1);
  });

  test('VPN users: upstream checks, applied with their password, never listed with it', async () => {
    await assert.rejects(
      alice.call('addVpnUser', { username: 'x', password: 'secret1' }),
      is(431, /Username \[x\] is invalid/),
    );
    await assert.rejects(
      alice.call('addVpnUser', { username: 'carol', password: 'has space' }),
      is(431, /Password has to be 3-32 characters/),
    );
    const user = (await alice.call<any>('addVpnUser', { username: 'carol', password: 'Passw0rd' })).vpnuser;
    assert.equal(user.username, 'carol');
    assert.equal(user.state, 'Active');
    assert.equal(user.password, undefined);
    await assert.rejects(
      alice.call('addVpnUser', { username: 'carol', password: 'other1' }),
      is(431, /already added/),
    );
    assert.deepEqual(routerWith(one.snat.ipaddress).spec.vpn.remoteAccess.users, [
      { username: 'carol', password: 'Passw0rd' },
    ]);
    await assert.rejects(
      bob.call('addVpnUser', { username: 'bobby', password: 'Passw0rd' }),
      is(530, /Failed to add vpn user/),
    );
    assert.equal(
      (await bob.request<any>('listVpnUsers', {})).count ?? 0,
      0,
      'an account without a VPN keeps no user',
    );
    const list = await alice.request<any>('listVpnUsers', {});
    assert.deepEqual(
      list.vpnuser.map((u: any) => [u.username, u.state, u.password]),
      [['carol', 'Active', undefined]],
    );
  });

  test('a router that refuses a new user: the user does not exist afterwards', async () => {
    await failNext('applyRouterVpn');
    await assert.rejects(alice.call('addVpnUser', { username: 'dave', password: 'Passw0rd' }));
    await clearFault('applyRouterVpn');
    assert.deepEqual(
      (await alice.request<any>('listVpnUsers', {})).vpnuser.map((u: any) => u.username),
      ['carol'],
    );
    assert.deepEqual(
      routerWith(one.snat.ipaddress).spec.vpn.remoteAccess.users.map((u: any) => u.username),
      ['carol'],
    );
  });

  test('remote.access.vpn.user.limit: one user too many is refused', async () => {
    await admin.request('updateConfiguration', { name: 'remote.access.vpn.user.limit', value: '2' });
    await alice.call('addVpnUser', { username: 'erin', password: 'Passw0rd' });
    await assert.rejects(
      alice.call('addVpnUser', { username: 'frank', password: 'Passw0rd' }),
      is(532, /more than \[2\]/),
    );
    await admin.request('updateConfiguration', { name: 'remote.access.vpn.user.limit', value: '8' });
    await alice.call('removeVpnUser', { username: 'erin' });
    await assert.rejects(
      alice.call('removeVpnUser', { username: 'erin' }),
      is(431, /Could not find VPN user=\[erin\]/),
    );
    assert.deepEqual(
      routerWith(one.snat.ipaddress).spec.vpn.remoteAccess.users.map((u: any) => u.username),
      ['carol'],
    );
  });

  test('an isolated network: VPN on its source NAT, users shared by all the account’s VPNs; openfirewall=false', async () => {
    const net = (
      await alice.request<any>('createNetwork', {
        name: 'iso',
        zoneid,
        networkofferingid: zone.isolatedOffering,
      })
    ).network;
    await alice.call('deployVirtualMachine', {
      zoneid,
      templateid: zone.templateid,
      serviceofferingid: zone.offering,
      networkids: net.id,
      name: 'iso-1',
    });
    const snat = await sourceNatOf(alice, { associatednetworkid: net.id });
    const made = (
      await alice.call<any>('createRemoteAccessVpn', {
        publicipid: snat.id,
        iprange: '192.168.77.1-192.168.77.20',
        openfirewall: false,
      })
    ).remoteaccessvpn;
    assert.equal(made.iprange, '192.168.77.2-192.168.77.20');
    const { spec } = routerWith(snat.ipaddress);
    assert.equal(spec.vpn.remoteAccess.localCidrs.length, 1);
    assert.deepEqual(
      spec.vpn.remoteAccess.users.map((u: any) => u.username),
      ['carol'],
      'the account’s users',
    );
    assert.deepEqual(openings(spec, snat.ipaddress), [], 'openfirewall=false opens nothing');
    assert.equal((await alice.request<any>('listRemoteAccessVpns', { networkid: net.id })).count, 1);
    await alice.call('deleteRemoteAccessVpn', { publicipid: snat.id });
    assert.ok(noVpn(routerWith(snat.ipaddress).spec));
  });

  test('deleteRemoteAccessVpn: the router stops it and closes IKE; a refusal keeps it', async () => {
    await failNext('applyRouterVpn');
    await assert.rejects(alice.call('deleteRemoteAccessVpn', { publicipid: one.snat.id }));
    await clearFault('applyRouterVpn');
    assert.equal(
      (await alice.request<any>('listRemoteAccessVpns', {})).count,
      1,
      'still listed: still running',
    );
    await alice.call('deleteRemoteAccessVpn', { publicipid: one.snat.id });
    const { spec } = routerWith(one.snat.ipaddress);
    assert.ok(noVpn(spec));
    assert.deepEqual(openings(spec, one.snat.ipaddress), []);
    assert.equal((await alice.request<any>('listRemoteAccessVpns', {})).count ?? 0, 0);
    await alice.call('deleteRemoteAccessVpn', { publicipid: one.snat.id }); // none: succeeds
  });
});

describe('site-to-site VPN between two VPCs', () => {
  let gw1: any;
  let gw2: any;
  let cg1: any;
  let cg2: any;
  let conn1: any;
  let conn2: any;
  const policy = { ikepolicy: 'aes128-sha1;modp1536', esppolicy: 'aes128-sha1', ipsecpsk: 'shared-secret-1' };

  test('createVpnGateway: one per VPC, on its source NAT', async () => {
    gw1 = (await alice.call<any>('createVpnGateway', { vpcid: one.vpc.id })).vpngateway;
    gw2 = (await alice.call<any>('createVpnGateway', { vpcid: two.vpc.id })).vpngateway;
    assert.equal(gw1.publicip, one.snat.ipaddress);
    assert.equal(gw1.vpcid, one.vpc.id);
    assert.equal(gw1.vpcname, 'one');
    await assert.rejects(alice.call('createVpnGateway', { vpcid: one.vpc.id }), is(431, /already existed/));
    assert.equal((await alice.request<any>('listVpnGateways', { vpcid: one.vpc.id })).count, 1);
    assert.deepEqual(openings(routerWith(one.snat.ipaddress).spec, one.snat.ipaddress), [500, 4500]);
  });

  test('customer gateways: invalid policies, lifetimes, CIDRs and names are refused; nothing is stored', async () => {
    const base = { gateway: two.snat.ipaddress, cidrlist: '10.200.0.0/16', ...policy };
    const bad: [object, RegExp][] = [
      [
        { ikepolicy: 'aes128-sha1' },
        /IKE policy aes128-sha1 is invalid! {2}Verify the required Diffie Hellman/,
      ],
      [{ ikepolicy: 'des-sha1;modp1536' }, /IKE policy/],
      [{ ikepolicy: 'aes128-sha1;modp768' }, /IKE policy/],
      [{ esppolicy: 'aes128-crc' }, /ESP policy aes128-crc is invalid!/],
      [{ esppolicy: 'aes128-sha1;modp999' }, /ESP policy/],
      [{ ikelifetime: 90000 }, /IKE lifetime 90000/],
      [{ esplifetime: 86401 }, /ESP lifetime 86401/],
      [{ cidrlist: '10.200.0.0/16,10.200.5.0/24' }, /is overlapped with another subnet/],
      [{ cidrlist: '10.200.0.0/33' }, /contains an invalid cidr/],
      [{ gateway: 'not a host!' }, /customer gateway ip\/Domain/],
      [{ ikeversion: 'ikev3' }, /IKE version/],
    ];
    for (const [change, text] of bad)
      await assert.rejects(
        alice.call('createVpnCustomerGateway', { ...base, ...change }),
        is(431, text),
        JSON.stringify(change),
      );
    assert.equal((await alice.request<any>('listVpnCustomerGateways', {})).count ?? 0, 0);
    cg1 = (await alice.call<any>('createVpnCustomerGateway', { ...base, name: 'to-two', dpd: true }))
      .vpncustomergateway;
    assert.equal(cg1.name, 'to-two');
    assert.equal(cg1.gateway, two.snat.ipaddress);
    assert.equal(cg1.ipsecpsk, policy.ipsecpsk);
    assert.equal(cg1.ikelifetime, 86400);
    assert.equal(cg1.esplifetime, 3600);
    assert.equal(cg1.ikeversion, 'ike');
    assert.equal(cg1.dpd, true);
    await assert.rejects(
      alice.call('createVpnCustomerGateway', { ...base, name: 'to-two' }),
      is(431, /with name to-two already existed/),
    );
    cg2 = (
      await alice.call<any>('createVpnCustomerGateway', {
        gateway: one.snat.ipaddress,
        cidrlist: '10.100.0.0/16',
        ...policy,
        name: 'to-one',
        dpd: true,
      })
    ).vpncustomergateway;
  });

  test('createVpnConnection both ways: Connected once both ends exist, as the routers report', async () => {
    conn1 = (
      await alice.call<any>('createVpnConnection', { s2svpngatewayid: gw1.id, s2scustomergatewayid: cg1.id })
    ).vpnconnection;
    assert.equal(conn1.state, 'Disconnected', 'the far end has no connection yet');
    const t0 = Date.now();
    conn2 = (
      await alice.call<any>('createVpnConnection', {
        s2svpngatewayid: gw2.id,
        s2scustomergatewayid: cg2.id,
        passive: true,
      })
    ).vpnconnection;
    assert.equal(conn2.passive, true);
    conn1 = (await alice.call<any>('resetVpnConnection', { id: conn1.id })).vpnconnection;
    assert.equal(conn1.state, 'Connected');
    process.stdout.write(`# createVpnConnection + reset -> Connected: ${Date.now() - t0} ms (simulator)\n`);
    assert.equal(conn1.publicip, one.snat.ipaddress);
    assert.equal(conn1.gateway, two.snat.ipaddress);
    assert.equal(conn1.cidrlist, '10.200.0.0/16');
    assert.equal(conn1.ikepolicy, policy.ikepolicy);
    const { spec } = routerWith(one.snat.ipaddress);
    assert.deepEqual(
      spec.vpn.siteToSite.map((c: any) => [c.id, c.peerIp, c.localCidrs, c.peerCidrs, c.passive]),
      [[conn1.id, two.snat.ipaddress, ['10.100.0.0/16'], ['10.200.0.0/16'], false]],
    );
    // The other end's state is read from its router by the periodic check (run here at once).
    const { checkVpnConnections } = await import('../src/network/vpn/vpn-apply.ts');
    await checkVpnConnections(zone.server.app);
    const listed = await alice.request<any>('listVpnConnections', { vpcid: two.vpc.id });
    assert.deepEqual(
      listed.vpnconnection.map((c: any) => [c.id, c.state]),
      [[conn2.id, 'Connected']],
    );
  });

  test('connection refusals: duplicates, subnets overlapping the VPC, another account’s gateway', async () => {
    await assert.rejects(
      alice.call('createVpnConnection', { s2svpngatewayid: gw1.id, s2scustomergatewayid: cg1.id }),
      is(431, /already existed/),
    );
    const inside = (
      await alice.call<any>('createVpnCustomerGateway', {
        gateway: '198.51.100.7',
        cidrlist: '10.100.3.0/24',
        ...policy,
      })
    ).vpncustomergateway;
    assert.equal(inside.name, 'VPN-198.51.100.7');
    await assert.rejects(
      alice.call('createVpnConnection', { s2svpngatewayid: gw1.id, s2scustomergatewayid: inside.id }),
      is(431, /is overlapped with VPC cidr 10\.100\.0\.0\/16/),
    );
    const theirs = (
      await bob.call<any>('createVpnCustomerGateway', {
        gateway: '198.51.100.8',
        cidrlist: '172.16.0.0/16',
        ...policy,
      })
    ).vpncustomergateway;
    await assert.rejects(
      alice.call('createVpnConnection', { s2svpngatewayid: gw1.id, s2scustomergatewayid: theirs.id }),
      is(531),
    );
    await failNext('applyRouterVpn');
    const elsewhere = (
      await alice.call<any>('createVpnCustomerGateway', {
        gateway: '198.51.100.9',
        cidrlist: '172.20.0.0/16',
        ...policy,
      })
    ).vpncustomergateway;
    await assert.rejects(
      alice.call('createVpnConnection', { s2svpngatewayid: gw1.id, s2scustomergatewayid: elsewhere.id }),
    );
    await clearFault('applyRouterVpn');
    assert.equal(
      (await alice.request<any>('listVpnConnections', { vpcid: one.vpc.id })).count,
      1,
      'no half-made connection',
    );
    assert.equal(routerWith(one.snat.ipaddress).spec.vpn.siteToSite.length, 1);
    for (const cg of [inside, elsewhere]) await alice.call('deleteVpnCustomerGateway', { id: cg.id });
    await bob.call('deleteVpnCustomerGateway', { id: theirs.id });
  });

  test('a stopped router: its connections are Disconnected at the next check; started again, Connected', async () => {
    const { checkVpnConnections } = await import('../src/network/vpn/vpn-apply.ts');
    const router = (await admin.request<any>('listRouters', { vpcid: one.vpc.id, listall: true })).router[0];
    await admin.call('stopRouter', { id: router.id });
    await checkVpnConnections(zone.server.app);
    assert.equal(
      (await alice.request<any>('listVpnConnections', { id: conn1.id })).vpnconnection[0].state,
      'Disconnected',
    );
    await admin.call('startRouter', { id: router.id });
    await checkVpnConnections(zone.server.app);
    assert.equal(
      (await alice.request<any>('listVpnConnections', { id: conn1.id })).vpnconnection[0].state,
      'Connected',
    );
  });

  test('in use: a customer gateway or VPN gateway with connections cannot be deleted', async () => {
    await assert.rejects(
      alice.call('deleteVpnCustomerGateway', { id: cg1.id }),
      is(431, /because there is still related VPN connections/),
    );
    await assert.rejects(
      alice.call('deleteVpnGateway', { id: gw1.id }),
      is(431, /because there is still related VPN connections/),
    );
  });

  test('updateVpnCustomerGateway with another key: the tunnel goes down; back: Connected again', async () => {
    await alice.call('updateVpnCustomerGateway', {
      id: cg1.id,
      gateway: two.snat.ipaddress,
      cidrlist: '10.200.0.0/16',
      ...policy,
      ipsecpsk: 'wrong-key',
      name: 'to-two',
    });
    assert.equal(
      (await alice.request<any>('listVpnConnections', { id: conn1.id })).vpnconnection[0].state,
      'Disconnected',
    );
    assert.equal(routerWith(one.snat.ipaddress).spec.vpn.siteToSite[0].psk, 'wrong-key');
    await alice.call('updateVpnCustomerGateway', {
      id: cg1.id,
      gateway: two.snat.ipaddress,
      cidrlist: '10.200.0.0/16',
      ...policy,
      name: 'to-two',
    });
    assert.equal(
      (await alice.request<any>('listVpnConnections', { id: conn1.id })).vpnconnection[0].state,
      'Connected',
    );
  });

  test('updateVpnGateway and updateVpnConnection: fordisplay and customid (administrators)', async () => {
    const gw = (await admin.call<any>('updateVpnGateway', { id: gw1.id, fordisplay: false })).vpngateway;
    assert.equal(gw.fordisplay, false);
    assert.equal((await alice.request<any>('listVpnGateways', { fordisplay: false })).count, 1);
    const customid = '0b1d7d1e-5a2c-4c1b-9a57-3f0c2b9e7a11';
    const renamed = (await admin.call<any>('updateVpnConnection', { id: conn1.id, customid })).vpnconnection;
    assert.equal(renamed.id, customid);
    assert.deepEqual(
      routerWith(one.snat.ipaddress).spec.vpn.siteToSite.map((c: any) => c.id),
      [customid],
      'the router runs the tunnel under its new id',
    );
    conn1 = renamed;
    // A user's customid is not taken (administrators only, as upstream).
    const same = (await alice.call<any>('updateVpnConnection', { id: conn1.id, customid: 'x' }))
      .vpnconnection;
    assert.equal(same.id, customid);
  });

  test('deleting connections, gateways and customer gateways leaves the routers without VPN', async () => {
    await alice.call('deleteVpnConnection', { id: conn1.id });
    await alice.call('deleteVpnConnection', { id: conn2.id });
    assert.ok(noVpn(routerWith(one.snat.ipaddress).spec));
    await alice.call('deleteVpnGateway', { id: gw1.id });
    await alice.call('deleteVpnCustomerGateway', { id: cg1.id });
    await alice.call('deleteVpnCustomerGateway', { id: cg2.id });
    assert.deepEqual(openings(routerWith(one.snat.ipaddress).spec, one.snat.ipaddress), []);
    assert.equal((await alice.request<any>('listVpnGateways', {})).count, 1, "VPC two's gateway remains");
    assert.ok((await alice.request<any>('listEvents', { type: 'VPN.S2S.CONNECTION.DELETE' })).count >= 2);
  });

  test('deleteVPC takes its VPN gateway and remote-access VPN with it', async () => {
    await alice.call('createRemoteAccessVpn', { publicipid: two.snat.id });
    await alice.call('deleteVPC', { id: two.vpc.id });
    assert.deepEqual((await alice.request<any>('listVpnGateways', {})).vpngateway ?? [], []);
    assert.deepEqual((await alice.request<any>('listRemoteAccessVpns', {})).remoteaccessvpn ?? [], []);
  });
});
