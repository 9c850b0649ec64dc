/**
 * A VPC's router for real: one namespace with a guest interface per tier (eth0 for the first,
 * the tier's bridge name for the second), each on its own bridge with the tier's gateway, and a
 * public side on a test "public" bridge where an "internet" namespace addressed from
 * 203.0.113.0/24 (documentation range, never leaves the machine) stands for the outside world.
 * A namespace "VM" in each tier: they reach each other through the router (no NAT between tiers,
 * no ACLs yet), both leave through the VPC's one source-NAT address, a port forward reaches the
 * second tier, a VM of the second tier gets its lease, DNS and metadata from that tier's gateway,
 * and dropping a tier from the spec unplugs it.
 * Needs root, nft, dnsmasq and haproxy, and NIMBOSTACK_TEST_KVM=1 (npm run test:kvm).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GuestNetwork, RouterRules, RouterSpec } from '@nimbostack/protocol';
import { HostNetwork } from '../src/network/host-network.ts';
import { routerNetns, routerPublicVeth, routerTierVeth, routerVeth } from '../src/network/names.ts';

const missing = [
  process.env.NIMBOSTACK_TEST_KVM === '1' ? '' : 'NIMBOSTACK_TEST_KVM=1 (npm run test:kvm)',
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/sbin/nft') ? '' : 'nft (nftables)',
  existsSync('/usr/sbin/dnsmasq') ? '' : 'dnsmasq (dnsmasq-base)',
  existsSync('/usr/sbin/haproxy') ? '' : 'haproxy',
].filter(Boolean);
const SKIP = missing.length ? `VPC router tests need ${missing.join(', ')}; run npm run setup:host` : false;

const tag = String(process.pid % 10000);
const third = process.pid % 250;
const BRIDGE_A = `nva${tag}`;
const BRIDGE_B = `nvb${tag}`;
const PUBLIC_BRIDGE = `nvp${tag}`;
const INTERNET = `nvi${tag}`;
const VM_A = `nvv${tag}-a`;
const VM_B = `nvv${tag}-b`;
const ROUTER = `r-vpc-${tag}-VM`;
const INET_IP = '203.0.113.1';
const SNAT_IP = '203.0.113.20';
const PF_IP = '203.0.113.21';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

const tier = (name: string, bridge: string, prefix: string) =>
  GuestNetwork.parse({
    uuid: `vpc-${name}-${tag}`,
    bridge,
    cidr: `${prefix}.0/24`,
    gateway: `${prefix}.1`,
    gatewayOnHost: false,
    domain: 'vpc.test',
  });
const A = tier('a', BRIDGE_A, `10.251.${third}`);
const B = tier('b', BRIDGE_B, `10.252.${third}`);
const vmA = `10.251.${third}.11`;
const vmB = `10.252.${third}.11`;
/** A third VM, in tier B, that takes its address by DHCP. */
const VM_C = `nvv${tag}-c`;
const VM_C_MAC = '02:00:5e:fd:01:03';
const vmC = `10.252.${third}.12`;
const guests = [
  { network: A, ip: A.gateway, mac: '02:00:5e:fd:00:01' },
  { network: B, ip: B.gateway, mac: '02:00:5e:fd:00:02' },
];
const spec = (tiers = guests, rules: object = {}) =>
  RouterSpec.parse({
    name: ROUTER,
    guests: tiers,
    vms: [
      { mac: '02:00:5e:fd:01:01', ip: vmA, hostname: 'web-1', instanceId: 'i-a', vmName: 'i-2-1-VM' },
      { mac: '02:00:5e:fd:01:02', ip: vmB, hostname: 'db-1', instanceId: 'i-b', vmName: 'i-2-2-VM' },
      { mac: VM_C_MAC, ip: vmC, hostname: 'db-2', instanceId: 'i-c', vmName: 'i-2-3-VM' },
    ],
    public: {
      bridge: PUBLIC_BRIDGE,
      mac: '06:00:5e:fd:00:03',
      gateway: INET_IP,
      addresses: [SNAT_IP, PF_IP].map((ip) => ({ ip, prefix: 24 })),
      sourceNat: SNAT_IP,
    },
    rules: RouterRules.parse(rules),
  });

/** A namespace plugged into a bridge by a veth pair, with an address and a default route. */
const namespaces: { ns: string; port: string }[] = [];
function plug(ns: string, port: string, bridge: string, cidr: string, via: string): void {
  namespaces.push({ ns, port });
  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
  sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', via]);
  sh('ip', ['link', 'set', port, 'master', bridge]);
  sh('ip', ['link', 'set', port, 'up']);
}

/** Answers each connection with "<name> <peer address>" and closes it. */
const SERVER = `const [name, ...ports] = process.argv.slice(1);
for (const port of ports)
  require('net').createServer((s) => s.end(name + ' ' + s.remoteAddress.replace('::ffff:', '') + '\\n')).listen(Number(port), '0.0.0.0');`;
const servers: ChildProcess[] = [];
function serve(ns: string, name: string, ports: number[]): void {
  servers.push(
    spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, name, ...ports.map(String)], {
      stdio: 'ignore',
    }),
  );
}

/** What a server answered, or TIMEOUT (dropped) / ERROR <code> (refused, unreachable). */
const CLIENT = `const [host, port, ms] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
let d = '';
const done = (t) => { console.log(t); process.exit(0); };
setTimeout(() => done('TIMEOUT'), Number(ms));
s.on('data', (c) => (d += c));
s.on('end', () => done(d.trim()));
s.on('error', (e) => done('ERROR ' + e.code));`;
const connect = (ns: string, host: string, port: number, ms = 1500) =>
  sh('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, host, String(port), String(ms)]).trim();
/** Servers take a moment to listen after spawn: retries while the answer is a refusal. */
async function connectReady(ns: string, host: string, port: number): Promise<string> {
  for (let i = 0; ; i++) {
    const answer = connect(ns, host, port);
    if (!answer.startsWith('ERROR ECONNREFUSED') || i >= 30) return answer;
    await new Promise((r) => setTimeout(r, 100));
  }
}
const ping = (ns: string, ip: string) => quiet('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '1', ip]);

let root = '';
let hostNet: HostNetwork;

function cleanup(): void {
  for (const s of servers) s.kill('SIGKILL');
  for (const { ns, port } of namespaces) {
    quiet('ip', ['netns', 'del', ns]);
    quiet('ip', ['link', 'del', port]);
  }
  const ns = routerNetns(ROUTER);
  if (existsSync(`/run/netns/${ns}`)) {
    for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(
      /\s+/,
    ))
      if (pid) quiet('kill', ['-9', pid]);
    quiet('ip', ['netns', 'del', ns]);
  }
  for (const link of [routerVeth(ROUTER), routerTierVeth(ROUTER, BRIDGE_B), routerPublicVeth(ROUTER)])
    quiet('ip', ['link', 'del', link]);
  for (const bridge of [BRIDGE_A, BRIDGE_B, PUBLIC_BRIDGE]) quiet('ip', ['link', 'del', bridge]);
}

describe('VPC router: one namespace, a guest interface per tier, one source NAT', { skip: SKIP }, () => {
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'nimbo-vpc-'));
    hostNet = new HostNetwork({
      hostDir: root,
      localAddress: '127.0.0.1',
      applySecurityRules: async () => {},
    });
    await hostNet.setupNetwork(A);
    await hostNet.setupNetwork(B);
    plug(VM_A, `nvt${tag}xa`, BRIDGE_A, `${vmA}/24`, A.gateway);
    plug(VM_B, `nvt${tag}xb`, BRIDGE_B, `${vmB}/24`, B.gateway);
    serve(VM_A, 'web-1', [5000]);
    serve(VM_B, 'db-1', [5432]);
  });

  after(async () => {
    await hostNet?.stopRouter(ROUTER).catch(() => undefined);
    cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  test('startRouter with two tiers: an interface per tier with its gateway, DHCP for both', async () => {
    const t0 = performance.now();
    await hostNet.startRouter(spec());
    const ms = performance.now() - t0;
    const inRouter = (args: string[]) => sh('ip', ['-n', routerNetns(ROUTER), ...args]);
    assert.match(inRouter(['-o', 'addr', 'show', 'dev', 'eth0']), new RegExp(`inet ${A.gateway}/24`));
    assert.match(inRouter(['-o', 'addr', 'show', 'dev', BRIDGE_B]), new RegExp(`inet ${B.gateway}/24`));
    assert.match(
      sh('ip', ['-o', 'link', 'show', 'dev', routerTierVeth(ROUTER, BRIDGE_B)]),
      new RegExp(`master ${BRIDGE_B}`),
    );
    const conf = readFileSync(join(root, 'routers', ROUTER, 'dnsmasq.conf'), 'utf8');
    assert.match(conf, /^interface=eth0$/m);
    assert.match(conf, new RegExp(`^interface=${BRIDGE_B}$`, 'm'));
    assert.match(conf, new RegExp(`^dhcp-range=set:g1,10\\.252\\.${third}\\.0,static`, 'm'));
    assert.match(
      conf,
      new RegExp(`^dhcp-option=tag:g1,option:router,${B.gateway.replace(/\./g, '\\.')}$`, 'm'),
    );
    process.stdout.write(`# VPC router with 2 tiers up in ${ms.toFixed(0)} ms\n`);
  });

  test('tiers reach each other through the router, unNATed (no ACLs yet)', async () => {
    plug(INTERNET, `nvt${tag}xi`, PUBLIC_BRIDGE, `${INET_IP}/24`, INET_IP);
    serve(INTERNET, 'internet', [7000]);
    const t0 = performance.now();
    assert.ok(ping(VM_A, vmB), 'tier A pings tier B');
    const pingMs = performance.now() - t0;
    assert.ok(ping(VM_B, vmA), 'tier B pings tier A');
    assert.equal(await connectReady(VM_A, vmB, 5432), `db-1 ${vmA}`, 'B sees A by its own address');
    assert.equal(await connectReady(VM_B, vmA, 5000), `web-1 ${vmB}`);
    process.stdout.write(`# first ping across tiers: ${pingMs.toFixed(0)} ms\n`);
  });

  test('the second tier gets DHCP (its own gateway and DNS server), DNS and metadata from its gateway', async (t) => {
    if (!existsSync('/bin/busybox') && !existsSync('/usr/bin/busybox')) {
      t.skip('busybox (busybox-static) is not installed');
      return;
    }
    namespaces.push({ ns: VM_C, port: `nvt${tag}xc` });
    sh('ip', ['netns', 'add', VM_C]);
    sh('ip', ['link', 'add', `nvt${tag}xc`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', VM_C]);
    sh('ip', ['-n', VM_C, 'link', 'set', 'eth0', 'address', VM_C_MAC]);
    sh('ip', ['-n', VM_C, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', VM_C, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['link', 'set', `nvt${tag}xc`, 'master', BRIDGE_B]);
    sh('ip', ['link', 'set', `nvt${tag}xc`, 'up']);
    const script = join(root, 'udhcpc.sh');
    writeFileSync(
      script,
      `#!/bin/sh\n[ "$1" = bound ] && echo "ip=$ip router=$router dns=$dns hostname=$hostname domain=$domain" > ${root}/lease\nexit 0\n`,
      { mode: 0o755 },
    );
    const udhcpc = [
      '-i',
      'eth0',
      '-n',
      '-q',
      '-t',
      '5',
      '-T',
      '1',
      '-s',
      script,
      '-O',
      'hostname',
      '-O',
      'domain',
    ];
    sh('ip', ['netns', 'exec', VM_C, 'busybox', 'udhcpc', ...udhcpc]);
    assert.equal(
      readFileSync(join(root, 'lease'), 'utf8').trim(),
      `ip=${vmC} router=${B.gateway} dns=${B.gateway} hostname=db-2 domain=vpc.test`,
    );
    sh('ip', ['-n', VM_C, 'addr', 'add', `${vmC}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', VM_C, 'route', 'add', 'default', 'via', B.gateway]);
    // Names of every tier answer from the tier's own gateway.
    assert.match(
      sh('ip', ['netns', 'exec', VM_C, 'busybox', 'nslookup', 'web-1.vpc.test', B.gateway]),
      new RegExp(vmA.replace(/\./g, '\\.')),
    );
    const GET = `require('http').get(process.argv[1], (r) => { let d = ''; r.on('data', (c) => (d += c)); r.on('end', () => console.log(d.trim())); });`;
    const metadata = (url: string) =>
      sh('ip', ['netns', 'exec', VM_C, process.execPath, '-e', GET, url]).trim();
    assert.equal(metadata(`http://${B.gateway}/latest/meta-data/local-hostname`), 'db-2');
    assert.equal(metadata(`http://${B.gateway}/latest/meta-data/instance-id`), 'i-c');
  });

  test("both tiers leave through the VPC's one source-NAT address", async () => {
    assert.equal(await connectReady(VM_A, INET_IP, 7000), `internet ${SNAT_IP}`);
    assert.equal(await connectReady(VM_B, INET_IP, 7000), `internet ${SNAT_IP}`);
  });

  test('a port forward on a VPC address reaches the second tier', async () => {
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: RouterRules.parse({
        portForwards: [
          {
            publicIp: PF_IP,
            protocol: 'tcp',
            publicStart: 15432,
            publicEnd: 15432,
            privateIp: vmB,
            privateStart: 5432,
            privateEnd: 5432,
          },
        ],
        firewall: [{ publicIp: PF_IP, protocol: 'tcp', startPort: 15432, endPort: 15432 }],
      }),
    });
    assert.equal(await connectReady(INTERNET, PF_IP, 15432), `db-1 ${INET_IP}`);
  });

  test('a tier left out of the spec is unplugged; the other keeps working', async () => {
    await hostNet.startRouter(spec([guests[0]!]));
    assert.equal(existsSync(`/sys/class/net/${routerTierVeth(ROUTER, BRIDGE_B)}`), false, 'its veth is gone');
    assert.ok(!ping(VM_A, vmB), 'tier B is no longer reachable');
    assert.equal(await connectReady(VM_A, INET_IP, 7000), `internet ${SNAT_IP}`);
    // Plugging it back (a tier created again) restores it.
    await hostNet.startRouter(spec());
    assert.ok(ping(VM_A, vmB));
  });

  test('stopRouter leaves no interface of the router behind', async () => {
    await hostNet.stopRouter(ROUTER);
    for (const link of [routerVeth(ROUTER), routerTierVeth(ROUTER, BRIDGE_B), routerPublicVeth(ROUTER)])
      assert.equal(existsSync(`/sys/class/net/${link}`), false, link);
    assert.equal(existsSync(`/run/netns/${routerNetns(ROUTER)}`), false);
  });
});
