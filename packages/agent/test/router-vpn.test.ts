/**
 * VPNs on real routers: two VPC routers on one test "public" bridge (203.0.113.0/24, documentation
 * range, never leaves the machine), each the other's customer gateway. Their site-to-site
 * connection goes Connected and a "guest" namespace in one's tier pings one in the other's through
 * the tunnel; a wrong key stays Disconnected. A client namespace running its own strongSwan
 * authenticates to the second router's remote-access VPN as a VPN user (IKEv2, pre-shared key and
 * EAP-MSCHAPv2), gets an address from the pool and reaches the tier's guest; a wrong password is
 * refused. Removing the VPN leaves no process, TUN device or file behind.
 * ESP runs in user space (kernel-libipsec) where the kernel has none, as on the test machines.
 * Needs root, nft, dnsmasq, haproxy, strongSwan (strongswan-charon, strongswan-swanctl,
 * libcharon-extra-plugins, libcharon-extauth-plugins), ping, and NIMBOSTACK_TEST_KVM=1 (npm run test:kvm).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GuestNetwork, RouterRules, RouterSpec, RouterVpn } from '@nimbostack/protocol';
import { HostNetwork } from '../src/network/host-network.ts';
import { routerNetns, routerPublicVeth, routerVeth } from '../src/network/names.ts';
import { CHARON, LIBIPSEC_TUN, SWANCTL, strongswanConf } from '../src/network/router-vpn.ts';

const missing = [
  process.env.NIMBOSTACK_TEST_KVM === '1' ? '' : 'NIMBOSTACK_TEST_KVM=1 (npm run test:kvm)',
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/sbin/nft') ? '' : 'nft (nftables)',
  existsSync('/usr/sbin/dnsmasq') ? '' : 'dnsmasq (dnsmasq-base)',
  existsSync('/usr/sbin/haproxy') ? '' : 'haproxy',
  existsSync(CHARON) ? '' : 'strongswan-charon',
  existsSync(SWANCTL) ? '' : 'strongswan-swanctl',
  existsSync('/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so') ? '' : 'libcharon-extra-plugins',
  existsSync('/usr/lib/ipsec/plugins/libstrongswan-eap-mschapv2.so') ? '' : 'libcharon-extauth-plugins',
].filter(Boolean);
const SKIP = missing.length ? `VPN router tests need ${missing.join(', ')}; run npm run setup:host` : false;

const tag = String(process.pid % 10000);
const third = process.pid % 250;
const PUBLIC_BRIDGE = `nwp${tag}`;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const ping = (ns: string, ip: string) => quiet('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', ip]);

interface Site {
  router: string;
  bridge: string;
  tier: GuestNetwork;
  guestNs: string;
  guestIp: string;
  publicIp: string;
}
const site = (letter: string, second: number, publicIp: string): Site => {
  const prefix = `10.${second}.${third}`;
  return {
    router: `r-vpn${letter}-${tag}-VM`,
    bridge: `nw${letter}${tag}`,
    tier: GuestNetwork.parse({
      uuid: `vpn-${letter}-${tag}`,
      bridge: `nw${letter}${tag}`,
      cidr: `${prefix}.0/24`,
      gateway: `${prefix}.1`,
      domain: 'vpn.test',
    }),
    guestNs: `nwv${tag}-${letter}`,
    guestIp: `${prefix}.11`,
    publicIp,
  };
};
const X = site('x', 241, '203.0.113.30');
const Y = site('y', 242, '203.0.113.31');
const CLIENT_NS = `nwc${tag}`;
const CLIENT_IP = '203.0.113.40';
const POOL = { rangeStart: `10.243.${third}.2`, rangeEnd: `10.243.${third}.9` };

/** What the server opens for a VPN on its address: IKE and NAT traversal (ESP in UDP). */
const ikeOpen = (ip: string) =>
  RouterRules.parse({
    firewall: [500, 4500].map((p) => ({ publicIp: ip, protocol: 'udp', startPort: p, endPort: p })),
  });
const spec = (s: Site, i: number) =>
  RouterSpec.parse({
    name: s.router,
    guests: [{ network: s.tier, ip: s.tier.gateway, mac: `02:00:5e:fe:0${i}:01` }],
    public: {
      bridge: PUBLIC_BRIDGE,
      mac: `06:00:5e:fe:0${i}:02`,
      gateway: '203.0.113.1',
      addresses: [{ ip: s.publicIp, prefix: 24 }],
      sourceNat: s.publicIp,
    },
    rules: ikeOpen(s.publicIp),
  });
const connection = (from: Site, to: Site, psk: string, extra: object = {}) => ({
  id: `conn-${from === X ? 'x' : 'y'}-${tag}`,
  localIp: from.publicIp,
  localCidrs: [from.tier.cidr],
  peerIp: to.publicIp,
  peerCidrs: [to.tier.cidr],
  psk,
  ikePolicy: 'aes128-sha1;modp1536',
  espPolicy: 'aes128-sha1',
  dpd: true,
  ...extra,
});

const namespaces: { ns: string; port: string }[] = [];
function plug(ns: string, port: string, bridge: string, cidr: string, via?: string): void {
  namespaces.push({ ns, port });
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
  sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  if (via) sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', via]);
  sh('ip', ['link', 'set', port, 'master', bridge]);
  sh('ip', ['link', 'set', port, 'up']);
}

let root = '';
let hostNet: HostNetwork;
const clients: ChildProcess[] = [];

async function until<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const states = async (s: Site) => (await hostNet.routerVpnStatus(s.router)).connections.map((c) => c.state);

/** A strongSwan client in its own namespace (its own config, socket and pid file, as the routers'). */
const clientDir = () => join(root, 'client');
const clientUri = () => `unix://${clientDir()}/charon.vici`;
function startClient(): void {
  const dir = clientDir();
  mkdirSync(join(dir, 'run'), { recursive: true });
  writeFileSync(join(dir, 'strongswan.conf'), strongswanConf(dir, true));
  const child = spawn(
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
  clients.push(child);
}
function clientConf(user: string, password: string): void {
  writeFileSync(
    join(clientDir(), 'swanctl.conf'),
    `connections { ra { version = 2
  remote_addrs = ${Y.publicIp}
  vips = 0.0.0.0
  local { auth = eap-mschapv2
    eap_id = ${user} }
  remote { auth = psk
    id = ${Y.publicIp} }
  children { ra { remote_ts = ${Y.tier.cidr} } } } }
secrets { ike-1 { id = ${Y.publicIp}
    secret = "net-psk-1" }
  eap-1 { id = ${user}
    secret = "${password}" } }
`,
  );
  sh(SWANCTL, [
    '--load-all',
    '--noprompt',
    '--file',
    join(clientDir(), 'swanctl.conf'),
    '--uri',
    clientUri(),
  ]);
}
const initiate = () =>
  quiet(SWANCTL, ['--initiate', '--child', 'ra', '--timeout', '10', '--uri', clientUri()]);

function cleanup(): void {
  for (const c of clients) c.kill('SIGKILL');
  for (const { ns, port } of namespaces) {
    if (existsSync(`/run/netns/${ns}`))
      for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(
        /\s+/,
      ))
        if (pid) quiet('kill', ['-9', pid]);
    quiet('ip', ['netns', 'del', ns]);
    quiet('ip', ['link', 'del', port]);
  }
  for (const s of [X, Y]) {
    const ns = routerNetns(s.router);
    if (existsSync(`/run/netns/${ns}`)) {
      for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(
        /\s+/,
      ))
        if (pid) quiet('kill', ['-9', pid]);
      quiet('ip', ['netns', 'del', ns]);
    }
    for (const link of [routerVeth(s.router), routerPublicVeth(s.router)]) quiet('ip', ['link', 'del', link]);
    quiet('ip', ['link', 'del', s.bridge]);
  }
  quiet('ip', ['link', 'del', PUBLIC_BRIDGE]);
}

describe('router VPNs: site-to-site between two routers, remote access for a user', { skip: SKIP }, () => {
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'nimbo-vpn-'));
    hostNet = new HostNetwork({
      hostDir: root,
      localAddress: '127.0.0.1',
      applySecurityRules: async () => {},
    });
    for (const [i, s] of [X, Y].entries()) {
      await hostNet.setupNetwork(s.tier);
      await hostNet.startRouter(spec(s, i + 1));
      plug(s.guestNs, `nwt${tag}${s === X ? 'x' : 'y'}`, s.bridge, `${s.guestIp}/24`, s.tier.gateway);
    }
  });

  after(async () => {
    for (const s of [X, Y]) await hostNet?.stopRouter(s.router).catch(() => undefined);
    cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  test('each router the other one’s customer gateway: Connected, and guests ping through the tunnel', async () => {
    assert.ok(!ping(X.guestNs, Y.guestIp), 'no path between the two private networks before the VPN');
    const t0 = performance.now();
    const x = await hostNet.applyRouterVpn({
      name: X.router,
      vpn: RouterVpn.parse({ siteToSite: [connection(X, Y, 'shared-key-1')] }),
      reset: [],
    });
    await hostNet.applyRouterVpn({
      name: Y.router,
      vpn: RouterVpn.parse({ siteToSite: [connection(Y, X, 'shared-key-1', { passive: true })] }),
      reset: [],
    });
    assert.equal(x.connections.length, 1);
    await until('both ends Connected', 20_000, async () =>
      (await states(X))[0] === 'Connected' && (await states(Y))[0] === 'Connected' ? true : undefined,
    );
    const ms = performance.now() - t0;
    assert.ok(ping(X.guestNs, Y.guestIp), 'guest X pings guest Y through the tunnel');
    assert.ok(ping(Y.guestNs, X.guestIp), 'and back');
    assert.ok(existsSync(`/run/netns/${routerNetns(X.router)}`));
    assert.match(sh('ip', ['-n', routerNetns(X.router), 'link', 'show']), new RegExp(LIBIPSEC_TUN));
    process.stdout.write(`# site-to-site: applyRouterVpn → Connected in ${ms.toFixed(0)} ms\n`);
    // The whole spec again (as every VPC change sends it): the TUN device is strongSwan's, kept.
    await hostNet.startRouter(
      RouterSpec.parse({ ...spec(X, 1), vpn: { siteToSite: [connection(X, Y, 'shared-key-1')] } }),
    );
    assert.match(sh('ip', ['-n', routerNetns(X.router), 'link', 'show']), new RegExp(LIBIPSEC_TUN));
    assert.ok(ping(X.guestNs, Y.guestIp), 'the tunnel still carries traffic after startRouter');
  });

  test('IKEv1 when the customer gateway asks for it; a reset brings the tunnel back', async () => {
    const t0 = performance.now();
    await hostNet.applyRouterVpn({
      name: Y.router,
      vpn: RouterVpn.parse({
        siteToSite: [connection(Y, X, 'shared-key-1', { passive: true, ikeVersion: 'ikev1' })],
      }),
      reset: [],
    });
    await hostNet.applyRouterVpn({
      name: X.router,
      vpn: RouterVpn.parse({ siteToSite: [connection(X, Y, 'shared-key-1', { ikeVersion: 'ikev1' })] }),
      reset: [`conn-x-${tag}`],
    });
    await until('IKEv1 Connected', 20_000, async () =>
      (await states(X))[0] === 'Connected' && (await states(Y))[0] === 'Connected' ? true : undefined,
    );
    assert.ok(ping(X.guestNs, Y.guestIp), 'guest X pings guest Y over IKEv1');
    process.stdout.write(`# IKEv1 reset → Connected in ${(performance.now() - t0).toFixed(0)} ms\n`);
  });

  test('a key the other side does not share stays Disconnected, and nothing passes', async () => {
    await hostNet.applyRouterVpn({
      name: X.router,
      vpn: RouterVpn.parse({ siteToSite: [connection(X, Y, 'another-key')] }),
      reset: [`conn-x-${tag}`],
    });
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal((await states(X))[0], 'Disconnected');
    assert.ok(!ping(X.guestNs, Y.guestIp), 'no traffic without a tunnel');
  });

  test('remote access (beside a site-to-site connection): a VPN user connects from a client namespace and reaches a tier guest', async () => {
    const vpn = RouterVpn.parse({
      // The site-to-site connection's key names this address too: the client must still get the VPN's.
      siteToSite: [connection(Y, X, 'shared-key-1', { passive: true })],
      remoteAccess: {
        publicIp: Y.publicIp,
        psk: 'net-psk-1',
        ...POOL,
        localCidrs: [Y.tier.cidr],
        users: [{ username: 'alice', password: 'pw "with" {braces}' }],
      },
    });
    await hostNet.applyRouterVpn({ name: Y.router, vpn, reset: [] });
    plug(CLIENT_NS, `nwt${tag}c`, PUBLIC_BRIDGE, `${CLIENT_IP}/24`);
    startClient();
    await until('the client daemon', 10_000, async () =>
      existsSync(join(clientDir(), 'charon.vici')) ? true : undefined,
    );
    clientConf('alice', 'wrong');
    assert.ok(!initiate(), 'a wrong password is refused');
    clientConf('alice', 'pw \\"with\\" {braces}');
    const t0 = performance.now();
    assert.ok(initiate(), 'alice connects');
    process.stdout.write(`# remote access: connected in ${(performance.now() - t0).toFixed(0)} ms\n`);
    const vip = sh('ip', ['-n', CLIENT_NS, '-o', '-4', 'addr', 'show', 'dev', LIBIPSEC_TUN]);
    assert.match(vip, new RegExp(`inet 10\\.243\\.${third}\\.[2-9]/32`), 'an address from the pool');
    assert.ok(ping(CLIENT_NS, Y.guestIp), 'the client reaches the tier guest');
    // A user removed is refused at the next attempt.
    quiet(SWANCTL, ['--terminate', '--ike', 'ra', '--uri', clientUri()]);
    await hostNet.applyRouterVpn({
      name: Y.router,
      vpn: { ...vpn, remoteAccess: { ...vpn.remoteAccess!, users: [] } },
      reset: [],
    });
    assert.ok(!initiate(), 'a removed user is refused');
  });

  test('removing the VPN leaves no process, TUN device or file behind', async () => {
    const dir = join(root, 'routers', Y.router);
    assert.ok(readdirSync(dir).includes('vpn'));
    await hostNet.applyRouterVpn({ name: Y.router, vpn: RouterVpn.parse({}), reset: [] });
    assert.ok(!readdirSync(dir).includes('vpn'), 'no vpn directory');
    assert.doesNotMatch(sh('ip', ['-n', routerNetns(Y.router), 'link', 'show']), new RegExp(LIBIPSEC_TUN));
    const pids = sh('ip', ['netns', 'pids', routerNetns(Y.router)])
      .split(/\s+/)
      .filter(Boolean);
    for (const pid of pids)
      assert.doesNotMatch(sh('cat', [`/proc/${pid}/cmdline`]), /charon/, 'no charon in the namespace');
    assert.deepEqual(await hostNet.routerVpnStatus(Y.router), { connections: [] });
    // Stopping a router with a VPN takes its daemon with it.
    const xPid = sh('ip', ['netns', 'pids', routerNetns(X.router)]);
    await hostNet.stopRouter(X.router);
    for (const pid of xPid.split(/\s+/).filter(Boolean))
      assert.ok(
        !existsSync(`/proc/${pid}/cmdline`) || !sh('cat', [`/proc/${pid}/cmdline`]).includes('charon'),
      );
    assert.equal(existsSync(join(root, 'routers', X.router)), false);
  });
});
