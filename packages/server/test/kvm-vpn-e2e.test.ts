/**
 * VPNs end to end through the public API on a real KVM agent: an Advanced zone with one KVM host
 * (an agent process on this machine) and a test public bridge (203.0.113.0/24, documentation
 * range: nothing leaves the machine). Two VPCs of one account, each with a tier under the
 * default_allow ACL list; their routers are real namespaces on the host. A "guest" namespace is
 * plugged into each tier's bridge (no VM needed: the tier's bridge and router are what a VM's NIC
 * would use).
 *
 * Proven, with `# figure` timings: VPN gateways, customer gateways pointing at each other's
 * source-NAT address, createVpnConnection on both → Connected as strongSwan reports it, and the
 * guest of one tier pings the guest of the other through the tunnel; a remote-access VPN on the
 * second VPC with a VPN user: a client namespace on the public bridge running its own strongSwan
 * (IKEv2, the VPN's pre-shared key, EAP as the user) gets an address from the VPN's range and
 * pings the tier's guest; deleting the connections and the VPN leaves no strongSwan behind.
 *
 * Needs root, nftables, dnsmasq, haproxy, strongSwan and ping: `npm run test:kvm` after
 * `npm run setup:host`.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { routerNetns, routerPublicVeth, routerVeth } from '../../agent/src/network/names.ts';
import { CHARON, LIBIPSEC_TUN, SWANCTL, strongswanConf } from '../../agent/src/network/router-vpn.ts';
import { startAgent, type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const missing = [
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/sbin/nft') ? '' : 'nft',
  existsSync('/usr/sbin/dnsmasq') ? '' : 'dnsmasq',
  existsSync('/usr/sbin/haproxy') ? '' : 'haproxy',
  existsSync(CHARON) && existsSync(SWANCTL) ? '' : 'strongSwan (strongswan-charon, strongswan-swanctl)',
  existsSync('/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so') ? '' : 'libcharon-extra-plugins',
  existsSync('/usr/lib/ipsec/plugins/libstrongswan-eap-mschapv2.so') ? '' : 'libcharon-extauth-plugins',
].filter(Boolean);
const SKIP =
  process.env.NIMBOSTACK_TEST_KVM !== '1'
    ? 'real-host suite: run it with npm run test:kvm'
    : missing.length
      ? `needs ${missing.join(', ')}: run npm run setup:host`
      : false;

const tag = String(process.pid % 100000);
const PUBLIC_BRIDGE = `nvpub${tag}`;
const GATEWAY_IP = '203.0.113.1';
const PUBLIC_IPS = Array.from({ length: 8 }, (_, i) => `203.0.113.${60 + i}`);
const CLIENT_NS = `nvpn-client-${tag}`;
const CLIENT_IP = '203.0.113.90';
const HOST = 'vpn-kvm-1';

const figure = (name: string, ms: number) =>
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const ping = (ns: string, ip: string) => quiet('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', ip]);
const charons = () =>
  (spawnSync('pgrep', ['-f', CHARON], { encoding: 'utf8' }).stdout ?? '').split('\n').filter(Boolean);

let server: TestServer;
let user: CloudStackClient;
let agent: TestAgent | undefined;
let root = '';
let zoneid = '';
const routerNames = new Set<string>();
const namespaces: { ns: string; port: string }[] = [];
let clientDaemon: ChildProcess | undefined;
let charonsBefore: string[] = [];

interface Site {
  name: string;
  cidr: string;
  tierGateway: string;
  guestIp: string;
  vpc?: any;
  tier?: any;
  snat?: any;
  router?: string;
  guestNs: string;
}
const sites: Site[] = [
  {
    name: 'east',
    cidr: '10.181.0.0/16',
    tierGateway: '10.181.1.1',
    guestIp: '10.181.1.50',
    guestNs: `nvg${tag}-e`,
  },
  {
    name: 'west',
    cidr: '10.182.0.0/16',
    tierGateway: '10.182.1.1',
    guestIp: '10.182.1.50',
    guestNs: `nvg${tag}-w`,
  },
];
const [east, west] = sites as [Site, Site];

/** The tier's bridge, as the router's host was told it (the router's stored spec). */
function tierBridge(site: Site): string {
  const spec = JSON.parse(
    readFileSync(join(root, 'agent', HOST, 'routers', site.router!, 'spec.json'), 'utf8'),
  );
  const guest = spec.guests.find((g: any) => g.network.gateway === site.tierGateway);
  assert.ok(guest, `router ${site.router} serves the tier`);
  return guest.network.bridge;
}

/** The tail of a router's (or the client's) strongSwan log, for failure messages. */
function vpnLog(site?: Site): string {
  const file = site
    ? join(root, 'agent', HOST, 'routers', site.router!, 'vpn', 'charon.log')
    : join(root, 'client', 'charon.log');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-40).join('\n') : `(no ${file})`;
}

/** The router's interfaces, processes and the tier bridge's ports, for failure messages. */
function routerState(site: Site): string {
  const ns = routerNetns(site.router!);
  const out = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8' }).stdout ?? '';
  return [
    out('ip', ['-n', ns, '-br', 'addr']),
    out('ip', ['-n', ns, 'route']),
    out('ip', ['netns', 'pids', ns])
      .split(/\s+/)
      .filter(Boolean)
      .map((pid) =>
        existsSync(`/proc/${pid}/cmdline`)
          ? readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ')
          : pid,
      )
      .join('\n'),
    out('bridge', ['link']),
    out('ip', ['-n', site.guestNs, '-br', 'addr']),
    out('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset']).slice(0, 3000),
  ].join('\n');
}

/** A namespace plugged into a bridge by a veth pair, with an address and (optionally) a default route. */
function plug(ns: string, port: string, bridge: string, cidr: string, via?: string): void {
  namespaces.push({ ns, port });
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
  // VXLAN-carried tiers: guests use the MTU their DHCP would give them.
  sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'mtu', '1450', 'up']);
  if (via) sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', via]);
  sh('ip', ['link', 'set', port, 'master', bridge]);
  sh('ip', ['link', 'set', port, 'up']);
}

before(async () => {
  if (SKIP) return;
  charonsBefore = charons();
  root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-vpn-'));
  mkdirSync(join(root, 'primary'));
  sh('ip', ['link', 'add', PUBLIC_BRIDGE, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  sh('ip', ['link', 'set', PUBLIC_BRIDGE, 'up']);
  server = await startServer();
  const admin = server.admin;
  agent = startAgent(server.agentUrl, {
    token: `vpn-e2e-${HOST}`,
    name: HOST,
    args: ['--hypervisor', 'kvm', '--state-dir', join(root, 'agent'), '--address', '127.0.0.1'],
  });
  zoneid = (
    await admin.request<any>('createZone', {
      name: 'vpn-e2e',
      networktype: 'Advanced',
      dns1: GATEWAY_IP,
      internaldns1: GATEWAY_IP,
      guestcidraddress: '10.180.0.0/24',
    })
  ).zone.id;
  const physicalnetworkid = (
    await admin.call<any>('createPhysicalNetwork', {
      zoneid,
      name: 'vpn-phys',
      isolationmethods: 'VXLAN',
      vlan: '7300-7309',
    })
  ).physicalnetwork.id;
  for (const traffictype of ['Guest', 'Management', 'Public'])
    await admin.call('addTrafficType', {
      physicalnetworkid,
      traffictype,
      ...(traffictype === 'Public' ? { kvmnetworklabel: PUBLIC_BRIDGE } : {}),
    });
  await admin.call('updatePhysicalNetwork', { id: physicalnetworkid, state: 'Enabled' });
  const vr = (
    await admin.request<any>('listNetworkServiceProviders', { physicalnetworkid, name: 'VirtualRouter' })
  ).networkserviceprovider?.[0];
  if (vr && vr.state !== 'Enabled') {
    const element = (await admin.request<any>('listVirtualRouterElements', { nspid: vr.id }))
      .virtualrouterelement?.[0];
    if (element && !element.enabled)
      await admin.call('configureVirtualRouterElement', { id: element.id, enabled: true });
    await admin.call('updateNetworkServiceProvider', { id: vr.id, state: 'Enabled' });
  }
  await admin.request('createVlanIpRange', {
    zoneid,
    forvirtualnetwork: true,
    gateway: GATEWAY_IP,
    netmask: '255.255.255.0',
    startip: PUBLIC_IPS[0],
    endip: PUBLIC_IPS.at(-1),
  });
  const podid = (
    await admin.request<any>('createPod', {
      zoneid,
      name: 'vpn-pod',
      gateway: '192.168.81.1',
      netmask: '255.255.255.0',
      startip: '192.168.81.10',
      endip: '192.168.81.50',
    })
  ).pod.id;
  const cluster = (
    await admin.request<any>('addCluster', {
      zoneid,
      podid,
      clustername: 'vpn-cluster',
      hypervisor: 'KVM',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  await admin.request('createStoragePool', {
    zoneid,
    podid,
    clusterid: cluster.id,
    name: 'vpn-primary',
    url: join(root, 'primary'),
    scope: 'cluster',
  });
  await agent.waitForLog('waiting to be added', 60_000);
  await admin.request('addHost', {
    zoneid,
    podid,
    clusterid: cluster.id,
    url: `agent://${HOST}`,
    username: 'root',
    password: `vpn-e2e-${HOST}`,
    hypervisor: 'KVM',
  });
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  await waitUntil(
    async () =>
      ((await admin.request<any>('listHosts', { zoneid })).host ?? []).some((h: any) => h.state === 'Up'),
    60_000,
    'the KVM host to be Up',
  );
  ({ client: user } = await createAccountAndLogin(server, { name: 'vpn' }));
});

after(async () => {
  if (SKIP) return;
  clientDaemon?.kill('SIGKILL');
  if (server) {
    const admin = server.admin;
    for (const s of sites) if (s.vpc) await user.call('deleteVPC', { id: s.vpc.id }).catch(() => undefined);
    const hosts = await admin.request<any>('listHosts', {}).catch(() => ({}));
    for (const h of hosts.host ?? [])
      await admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
  }
  await agent?.kill();
  for (const { ns, port } of namespaces) {
    if (existsSync(`/run/netns/${ns}`))
      for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(
        /\s+/,
      ))
        if (pid) quiet('kill', ['-9', pid]);
    quiet('ip', ['netns', 'del', ns]);
    quiet('ip', ['link', 'del', port]);
  }
  for (const name of routerNames) {
    const ns = routerNetns(name);
    if (existsSync(`/run/netns/${ns}`)) {
      for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(
        /\s+/,
      ))
        if (pid) quiet('kill', ['-9', pid]);
      quiet('ip', ['netns', 'del', ns]);
    }
    quiet('ip', ['link', 'del', routerVeth(name)]);
    quiet('ip', ['link', 'del', routerPublicVeth(name)]);
  }
  quiet('ip', ['link', 'del', PUBLIC_BRIDGE]);
  await server?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('VPNs end to end on a real KVM host', { skip: SKIP }, () => {
  test('two VPCs with a tier each, their routers running; a guest namespace in each tier', async () => {
    const vpcofferingid = (await user.request<any>('listVPCOfferings', { name: 'Default VPC offering' }))
      .vpcoffering[0].id;
    const tierOffering = (
      await user.request<any>('listNetworkOfferings', {
        name: 'DefaultIsolatedNetworkOfferingForVpcNetworks',
      })
    ).networkoffering[0].id;
    const allow = (await user.request<any>('listNetworkACLLists', { name: 'default_allow' }))
      .networkacllist?.[0];
    for (const s of sites) {
      s.vpc = (
        await user.call<any>('createVPC', {
          name: s.name,
          zoneid,
          vpcofferingid,
          cidr: s.cidr,
          networkdomain: `${s.name}.test`,
        })
      ).vpc;
      s.tier = (
        await user.request<any>('createNetwork', {
          name: `${s.name}-web`,
          zoneid,
          vpcid: s.vpc.id,
          networkofferingid: tierOffering,
          gateway: s.tierGateway,
          netmask: '255.255.255.0',
          ...(allow ? { aclid: allow.id } : {}),
        })
      ).network;
      s.snat = (
        await user.request<any>('listPublicIpAddresses', { vpcid: s.vpc.id, issourcenat: true })
      ).publicipaddress[0];
      const router = (await server.admin.request<any>('listRouters', { vpcid: s.vpc.id, listall: true }))
        .router[0];
      assert.equal(router.state, 'Running');
      s.router = router.name;
      routerNames.add(router.name);
      plug(s.guestNs, `nvt${tag}${s.name[0]}`, tierBridge(s), `${s.guestIp}/24`, s.tierGateway);
      await waitUntil(
        async () => ping(s.guestNs, s.tierGateway),
        15_000,
        `the ${s.name} guest to reach its router`,
      ).catch((e) => {
        throw new Error(`${(e as Error).message}\n${routerState(s)}`);
      });
    }
    assert.ok(!ping(east.guestNs, west.guestIp), 'no path between the VPCs without a VPN');
  });

  test('site to site: each VPC the other one’s customer gateway → Connected; guests ping through the tunnel', async () => {
    const gateways = [];
    for (const s of sites)
      gateways.push((await user.call<any>('createVpnGateway', { vpcid: s.vpc.id })).vpngateway);
    const customers = [];
    for (const i of [0, 1]) {
      const other = sites[1 - i]!;
      customers.push(
        (
          await user.call<any>('createVpnCustomerGateway', {
            name: `to-${other.name}`,
            gateway: other.snat.ipaddress,
            cidrlist: other.cidr,
            ipsecpsk: 'e2e-shared-key',
            ikepolicy: 'aes256-sha256;modp2048',
            esppolicy: 'aes256-sha256',
            dpd: true,
            ikeversion: 'ikev2',
          })
        ).vpncustomergateway,
      );
      assert.equal(customers[i].gateway, other.snat.ipaddress);
    }
    let t0 = Date.now();
    const first = (
      await user.call<any>('createVpnConnection', {
        s2svpngatewayid: gateways[0].id,
        s2scustomergatewayid: customers[0].id,
      })
    ).vpnconnection;
    figure('createVpnConnection (peer not configured yet) → answered', Date.now() - t0);
    assert.equal(first.state, 'Disconnected', 'the far end has no connection yet');
    t0 = Date.now();
    const second = (
      await user.call<any>('createVpnConnection', {
        s2svpngatewayid: gateways[1].id,
        s2scustomergatewayid: customers[1].id,
      })
    ).vpnconnection;
    assert.equal(
      second.state,
      'Connected',
      `strongSwan reports the tunnel up\n--- west:\n${vpnLog(west)}\n--- east:\n${vpnLog(east)}`,
    );
    figure('createVpnConnection (peer configured) → Connected', Date.now() - t0);
    t0 = Date.now();
    await waitUntil(async () => ping(east.guestNs, west.guestIp), 15_000, 'east guest to ping west guest');
    figure('Connected → first ping through the tunnel', Date.now() - t0);
    assert.ok(ping(west.guestNs, east.guestIp), 'and back');
    t0 = Date.now();
    const reset = (await user.call<any>('resetVpnConnection', { id: first.id })).vpnconnection;
    assert.equal(reset.state, 'Connected', `the reset tunnel is up\n${vpnLog(east)}`);
    assert.equal(
      (await user.request<any>('listVpnConnections', { id: first.id })).vpnconnection[0].state,
      'Connected',
    );
    figure('resetVpnConnection → Connected', Date.now() - t0);
    await waitUntil(async () => ping(east.guestNs, west.guestIp), 15_000, 'ping after the reset');
    for (const c of [first, second]) await user.call('deleteVpnConnection', { id: c.id });
    assert.ok(!ping(east.guestNs, west.guestIp), 'no path once the connections are gone');
    for (const g of gateways) await user.call('deleteVpnGateway', { id: g.id });
    for (const c of customers) await user.call('deleteVpnCustomerGateway', { id: c.id });
  });

  test('remote access: a VPN user connects from a client namespace and reaches the tier guest', async () => {
    const vpn = (await user.call<any>('createRemoteAccessVpn', { publicipid: west.snat.id })).remoteaccessvpn;
    await user.call('addVpnUser', { username: 'roamer', password: 'Roam-pw1' });
    const [first, last] = vpn.iprange.split('-');
    plug(CLIENT_NS, `nvc${tag}`, PUBLIC_BRIDGE, `${CLIENT_IP}/24`);
    const dir = join(root, 'client');
    mkdirSync(join(dir, 'run'), { recursive: true });
    writeFileSync(join(dir, 'strongswan.conf'), strongswanConf(dir, true));
    writeFileSync(
      join(dir, 'swanctl.conf'),
      `connections { ra { version = 2
  remote_addrs = ${vpn.publicip}
  vips = 0.0.0.0
  local { auth = eap-mschapv2
    eap_id = roamer }
  remote { auth = psk
    id = ${vpn.publicip} }
  children { ra { remote_ts = ${west.cidr} } } } }
secrets { ike-1 { id = ${vpn.publicip}
    secret = "${vpn.presharedkey}" }
  eap-1 { id = roamer
    secret = "Roam-pw1" } }
`,
    );
    clientDaemon = spawn(
      'ip',
      [
        'netns',
        'exec',
        CLIENT_NS,
        'sh',
        '-c',
        'mount --bind "$1/run" /run && STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"',
        'charon',
        dir,
        CHARON,
      ],
      { stdio: 'ignore' },
    );
    const uri = `unix://${dir}/charon.vici`;
    await waitUntil(async () => existsSync(join(dir, 'charon.vici')), 10_000, 'the client daemon');
    sh(SWANCTL, ['--load-all', '--noprompt', '--file', join(dir, 'swanctl.conf'), '--uri', uri]);
    const t0 = Date.now();
    const up = spawnSync(SWANCTL, ['--initiate', '--child', 'ra', '--timeout', '15', '--uri', uri], {
      encoding: 'utf8',
    });
    assert.equal(up.status, 0, `the client connects\n${up.stdout}\n--- router:\n${vpnLog(west)}`);
    figure('remote-access client → connected', Date.now() - t0);
    const vip = /inet (\S+)\/32/.exec(
      sh('ip', ['-n', CLIENT_NS, '-o', '-4', 'addr', 'show', 'dev', LIBIPSEC_TUN]),
    )?.[1];
    assert.ok(vip, 'the client has a virtual address');
    const n = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    assert.ok(n(vip) >= n(first) && n(vip) <= n(last), `${vip} is in ${vpn.iprange}`);
    await waitUntil(async () => ping(CLIENT_NS, west.guestIp), 10_000, 'the client to ping the tier guest');
    quiet(SWANCTL, ['--terminate', '--ike', 'ra', '--uri', uri]);
    clientDaemon.kill('SIGTERM');
    await user.call('removeVpnUser', { username: 'roamer' });
    await user.call('deleteRemoteAccessVpn', { publicipid: west.snat.id });
  });

  test('with every VPN deleted no strongSwan runs for the routers, and their namespaces have no TUN device', async () => {
    await waitUntil(
      async () => charons().filter((p) => !charonsBefore.includes(p)).length === 0,
      10_000,
      'every charon of ours to stop',
    );
    for (const s of sites) {
      assert.doesNotMatch(sh('ip', ['-n', routerNetns(s.router!), 'link', 'show']), new RegExp(LIBIPSEC_TUN));
      assert.equal(existsSync(join(root, 'agent', HOST, 'routers', s.router!, 'vpn')), false);
    }
  });
});
