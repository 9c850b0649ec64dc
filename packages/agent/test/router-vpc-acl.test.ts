/**
 * A VPC router's network ACLs, private gateway and static routes for real: a router namespace
 * with two tiers (each a bridge with a namespace "VM"), a "private network" namespace on the
 * private gateway's bridge that has a further subnet behind it (reached by a static route), and
 * real TCP, ICMP and UDP traffic between them. The tier-2 VM serves ports 5432 and 6000; what the
 * tier-1 VM reaches is what the tier-2 list says, and replacing the list flips it.
 * Needs root, nft and dnsmasq, and NIMBOSTACK_TEST_KVM=1 (npm run test:kvm).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GuestNetwork, RouterSpec } from '@nimbostack/protocol';
import { HostNetwork } from '../src/network/host-network.ts';
import { routerNetns, routerTierVeth, routerVeth } from '../src/network/names.ts';
import { VPC_TABLE, vpcRuleset } from '../src/network/router-vpc.ts';

const missing = [
  process.env.NIMBOSTACK_TEST_KVM === '1' ? '' : 'NIMBOSTACK_TEST_KVM=1 (npm run test:kvm)',
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/sbin/nft') ? '' : 'nft (nftables)',
  existsSync('/usr/sbin/dnsmasq') ? '' : 'dnsmasq (dnsmasq-base)',
].filter(Boolean);
const SKIP = missing.length ? `VPC ACL tests need ${missing.join(', ')}; run npm run setup:host` : false;

const tag = String(process.pid % 10000);
const third = process.pid % 250;
const BRIDGE_A = `nla${tag}`;
const BRIDGE_B = `nlb${tag}`;
const VNI = 100 + (process.pid % 3000);
const BRIDGE_P = `npgw${VNI}`;
const VM_A = `nlv${tag}-a`;
const VM_B = `nlv${tag}-b`;
/** The admin's private network: its gateway on the private gateway's subnet, a LAN behind it. */
const PRIV = `nlv${tag}-p`;
const ROUTER = `r-acl-${tag}-VM`;

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

const tier = (name: string, bridge: string, prefix: string) =>
  GuestNetwork.parse({
    uuid: `acl-${name}-${tag}`,
    bridge,
    cidr: `${prefix}.0/24`,
    gateway: `${prefix}.1`,
    gatewayOnHost: false,
    domain: 'vpc.test',
  });
const A = tier('a', BRIDGE_A, `10.241.${third}`);
const B = tier('b', BRIDGE_B, `10.242.${third}`);
const vmA = `10.241.${third}.11`;
const vmB = `10.242.${third}.11`;
const PRIVATE_CIDR = `172.30.${third}.0/24`;
const PRIVATE_GW = `172.30.${third}.1`;
const PGW_IP = `172.30.${third}.2`;
const REMOTE_CIDR = `172.31.${third}.0/24`;
const REMOTE_IP = `172.31.${third}.10`;
const P = GuestNetwork.parse({
  uuid: `acl-p-${tag}`,
  bridge: BRIDGE_P,
  cidr: PRIVATE_CIDR,
  gateway: PRIVATE_GW,
  gatewayOnHost: false,
});

type Rule = {
  number: number;
  allow: boolean;
  protocol: 'tcp' | 'udp' | 'icmp' | 'all' | number;
  startPort?: number;
  endPort?: number;
  icmpType?: number;
  cidrs?: string[];
};
/** A segment's ACL as vpc-routing.ts on the server makes it (Egress denied once it has items). */
const acl = (bridge: string, ingress: Rule[], egress: Rule[] = []) => ({
  bridge,
  ingress,
  egress,
  ingressDefault: 'deny',
  egressDefault: egress.length ? 'deny' : 'allow',
});
const guests = [
  { network: A, ip: A.gateway, mac: '02:00:5e:fe:00:01' },
  { network: B, ip: B.gateway, mac: '02:00:5e:fe:00:02' },
];
const gateway = {
  bridge: BRIDGE_P,
  cidr: PRIVATE_CIDR,
  ip: PGW_IP,
  mac: '06:00:5e:fe:00:03',
  gateway: PRIVATE_GW,
};
const spec = (vpc: object) =>
  RouterSpec.parse({
    name: ROUTER,
    guests,
    vms: [
      { mac: '02:00:5e:fe:01:01', ip: vmA, hostname: 'web-1', instanceId: 'i-a', vmName: 'i-3-1-VM' },
      { mac: '02:00:5e:fe:01:02', ip: vmB, hostname: 'db-1', instanceId: 'i-b', vmName: 'i-3-2-VM' },
    ],
    vpc: { cidr: `10.240.0.0/12`, ...vpc },
  });

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

/** Answers each TCP connection with "<name> <peer address>"; echoes UDP datagrams likewise. */
const SERVER = `const [name, ...ports] = process.argv.slice(1);
for (const port of ports) {
  require('net').createServer((s) => s.end(name + ' ' + s.remoteAddress.replace('::ffff:', '') + '\\n')).listen(Number(port), '0.0.0.0');
  const u = require('dgram').createSocket('udp4');
  u.on('message', (m, r) => u.send(name + ' ' + r.address, r.port, r.address));
  u.bind(Number(port), '0.0.0.0');
}`;
const servers: ChildProcess[] = [];
function serve(ns: string, name: string, ports: number[]): void {
  servers.push(
    spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, name, ...ports.map(String)], {
      stdio: 'ignore',
    }),
  );
}

const CLIENT = `const [host, port, ms] = process.argv.slice(1);
const s = require('net').connect({ host, port: Number(port) });
let d = '';
const done = (t) => { console.log(t); process.exit(0); };
setTimeout(() => done('TIMEOUT'), Number(ms));
s.on('data', (c) => (d += c));
s.on('end', () => done(d.trim()));
s.on('error', (e) => done('ERROR ' + e.code));`;
const UDP_CLIENT = `const [host, port, ms] = process.argv.slice(1);
const u = require('dgram').createSocket('udp4');
setTimeout(() => { console.log('TIMEOUT'); process.exit(0); }, Number(ms));
u.on('message', (m) => { console.log(String(m)); process.exit(0); });
u.send('hi', Number(port), host);`;
const connect = (ns: string, host: string, port: number, ms = 1500) =>
  sh('ip', ['netns', 'exec', ns, process.execPath, '-e', CLIENT, host, String(port), String(ms)]).trim();
const udp = (ns: string, host: string, port: number, ms = 1500) =>
  sh('ip', ['netns', 'exec', ns, process.execPath, '-e', UDP_CLIENT, host, String(port), String(ms)]).trim();
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
  for (const link of [routerVeth(ROUTER), routerTierVeth(ROUTER, BRIDGE_B), routerTierVeth(ROUTER, BRIDGE_P)])
    quiet('ip', ['link', 'del', link]);
  for (const bridge of [BRIDGE_A, BRIDGE_B, BRIDGE_P]) quiet('ip', ['link', 'del', bridge]);
}

describe('the ruleset (pure)', () => {
  test('tiers: egress of the tier left, then ingress of the tier entered; Allow returns, Deny drops', () => {
    const text = vpcRuleset(
      {
        cidr: '10.0.0.0/16',
        acls: [
          acl('nsbr1', [{ number: 20, allow: true, protocol: 'tcp', startPort: 22, endPort: 22, cidrs: [] }]),
          acl('npgw7', [{ number: 1, allow: false, protocol: 47, cidrs: ['192.0.2.0/24'] }]),
        ] as never,
        privateGateways: [{ ...gateway, bridge: 'npgw7', sourceNat: true }],
        staticRoutes: [],
      },
      new Map([
        ['nsbr1', 'eth0'],
        ['npgw7', 'npgw7'],
      ]),
    );
    assert.match(text, /iifname "eth0" jump s0_out/);
    assert.match(text, /oifname "eth0" jump s0_in/);
    // A private gateway's ingress is what the router sends towards its network, as a tier's.
    assert.match(text, /iifname "npgw7" jump s1_out/);
    assert.match(text, /oifname "npgw7" jump s1_in/);
    assert.match(text, /meta l4proto tcp tcp dport 22 return/);
    assert.match(text, /ip saddr 192\.0\.2\.0\/24 meta l4proto 47 drop/);
    assert.match(
      text,
      new RegExp(`oifname "npgw7" ip saddr 10\\.0\\.0\\.0/16 snat to ${PGW_IP.replace(/\./g, '\\.')}`),
    );
    assert.ok(text.indexOf(`delete table ip ${VPC_TABLE}`) < text.indexOf(`table ip ${VPC_TABLE} {\n`));
  });
});

describe('VPC router: network ACLs, a private gateway and static routes', { skip: SKIP }, () => {
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'nimbo-vpcacl-'));
    hostNet = new HostNetwork({
      hostDir: root,
      localAddress: '127.0.0.1',
      applySecurityRules: async () => {},
    });
    await hostNet.setupNetwork(A);
    await hostNet.setupNetwork(B);
    await hostNet.setupNetwork(P);
    plug(VM_A, `nlt${tag}xa`, BRIDGE_A, `${vmA}/24`, A.gateway);
    plug(VM_B, `nlt${tag}xb`, BRIDGE_B, `${vmB}/24`, B.gateway);
    // The private network: its gateway address on the gateway's subnet and a LAN behind it (a
    // second address on lo), which knows the VPC's tiers through the private gateway.
    plug(PRIV, `nlt${tag}xp`, BRIDGE_P, `${PRIVATE_GW}/24`, PGW_IP);
    sh('ip', ['-n', PRIV, 'addr', 'add', `${REMOTE_IP}/24`, 'dev', 'lo']);
    serve(VM_B, 'db-1', [5432, 6000]);
    serve(PRIV, 'branch', [7000]);
  });

  after(async () => {
    await hostNet?.stopRouter(ROUTER).catch(() => undefined);
    cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  test("tier 1 reaches tier 2's port 5432 and not 6000, as tier 2's list says", async () => {
    await hostNet.startRouter(
      spec({
        acls: [
          acl(BRIDGE_A, []),
          acl(BRIDGE_B, [{ number: 10, allow: true, protocol: 'tcp', startPort: 5432, endPort: 5432 }]),
        ],
      }),
    );
    assert.equal(await connectReady(VM_A, vmB, 5432), `db-1 ${vmA}`);
    assert.equal(connect(VM_A, vmB, 6000), 'TIMEOUT', '6000 is dropped');
    assert.ok(!ping(VM_A, vmB), 'ICMP is not in the list');
    // Tier 1 has a list without items: nothing may come in, even from tier 2.
    assert.equal(connect(VM_B, vmA, 22), 'TIMEOUT');
  });

  test('replacing the list flips it: 6000 open, 5432 closed', async () => {
    const t0 = performance.now();
    await hostNet.startRouter(
      spec({
        acls: [
          acl(BRIDGE_A, []),
          acl(BRIDGE_B, [{ number: 10, allow: true, protocol: 'tcp', startPort: 6000, endPort: 6000 }]),
        ],
      }),
    );
    const ms = performance.now() - t0;
    assert.equal(connect(VM_A, vmB, 6000), `db-1 ${vmA}`);
    assert.equal(connect(VM_A, vmB, 5432), 'TIMEOUT');
    process.stdout.write(`# ACL change -> enforced: ${ms.toFixed(0)} ms (whole router spec re-applied)\n`);
  });

  test('number order decides; ICMP type, UDP, source CIDRs and egress rules are matched', async () => {
    await hostNet.startRouter(
      spec({
        acls: [
          // Tier 1 may send to tier 2's 5432 only (egress); everything else leaving it is denied.
          acl(
            BRIDGE_A,
            [],
            [{ number: 1, allow: true, protocol: 'tcp', startPort: 5432, endPort: 5432, cidrs: [B.cidr] }],
          ),
          acl(BRIDGE_B, [
            { number: 1, allow: false, protocol: 'tcp', startPort: 6000, endPort: 6000, cidrs: [A.cidr] },
            { number: 2, allow: true, protocol: 'all', cidrs: ['0.0.0.0/0'] },
          ]),
        ],
      }),
    );
    assert.equal(await connectReady(VM_A, vmB, 5432), `db-1 ${vmA}`);
    assert.equal(connect(VM_A, vmB, 6000), 'TIMEOUT', 'item 1 (deny) comes before item 2 (allow all)');
    assert.equal(udp(VM_A, vmB, 6000), 'TIMEOUT', "tier 1's egress list has no udp");
    assert.ok(!ping(VM_A, vmB), "tier 1's egress list has no icmp");

    await hostNet.startRouter(
      spec({
        acls: [
          acl(BRIDGE_A, []),
          acl(BRIDGE_B, [
            { number: 1, allow: true, protocol: 'icmp', icmpType: 8, cidrs: [A.cidr] },
            { number: 2, allow: true, protocol: 17, cidrs: ['10.0.0.0/8'] },
          ]),
        ],
      }),
    );
    assert.ok(ping(VM_A, vmB), 'echo request (type 8) is allowed');
    assert.equal(udp(VM_A, vmB, 6000), `db-1 ${vmA}`, 'protocol number 17 (udp) is allowed');
    assert.equal(connect(VM_A, vmB, 5432), 'TIMEOUT', 'tcp is not');
  });

  test('a static route through the private gateway reaches the private network, as its list allows', async () => {
    const route = { privateGateways: [gateway], staticRoutes: [{ cidr: REMOTE_CIDR, via: PRIVATE_GW }] };
    // The gateway's list denies everything both ways (upstream's default_deny for a gateway).
    const denyAll = [{ number: 1, allow: false, protocol: 'all' as const }];
    await hostNet.startRouter(
      spec({ ...route, acls: [acl(BRIDGE_A, []), acl(BRIDGE_B, []), acl(BRIDGE_P, denyAll, denyAll)] }),
    );
    const inRouter = (args: string[]) => sh('ip', ['-n', routerNetns(ROUTER), ...args]);
    assert.match(inRouter(['-o', 'addr', 'show', 'dev', BRIDGE_P]), new RegExp(`inet ${PGW_IP}/24`));
    assert.match(inRouter(['route', 'show', REMOTE_CIDR]), new RegExp(`via ${PRIVATE_GW}.*proto static`));
    assert.equal(connect(VM_A, REMOTE_IP, 7000), 'TIMEOUT', 'denied by the gateway list');

    // Ingress of the gateway: what the router sends towards the private network (and the routes
    // behind it), from the sources its CIDRs name, as upstream's router filters it.
    const t0 = performance.now();
    const towards7000 = {
      number: 1,
      allow: true,
      protocol: 'tcp' as const,
      startPort: 7000,
      endPort: 7000,
      cidrs: [A.cidr],
    };
    await hostNet.startRouter(
      spec({ ...route, acls: [acl(BRIDGE_A, []), acl(BRIDGE_B, []), acl(BRIDGE_P, [towards7000])] }),
    );
    const ms = performance.now() - t0;
    assert.equal(await connectReady(VM_A, REMOTE_IP, 7000), `branch ${vmA}`, 'routed, not NATed');
    assert.equal(connect(VM_B, REMOTE_IP, 7000), 'TIMEOUT', "tier 2 is not among the item's sources");
    // The private network may not open connections into the tiers (their lists have no items).
    assert.equal(connect(PRIV, vmA, 22, 1000), 'TIMEOUT');
    process.stdout.write(`# private gateway list change -> enforced: ${ms.toFixed(0)} ms\n`);

    // With source NAT the private network sees the gateway's address.
    await hostNet.startRouter(
      spec({
        privateGateways: [{ ...gateway, sourceNat: true }],
        staticRoutes: route.staticRoutes,
        acls: [
          acl(BRIDGE_A, []),
          acl(BRIDGE_B, []),
          acl(BRIDGE_P, [{ number: 1, allow: true, protocol: 'all' }]),
        ],
      }),
    );
    assert.equal(connect(VM_A, REMOTE_IP, 7000), `branch ${PGW_IP}`);
  });

  test('a gateway and route left out of the spec are removed; the ACL table goes without vpc', async () => {
    await hostNet.startRouter(
      spec({ acls: [acl(BRIDGE_A, []), acl(BRIDGE_B, [{ number: 1, allow: true, protocol: 'all' }])] }),
    );
    const ns = routerNetns(ROUTER);
    assert.equal(existsSync(`/sys/class/net/${routerTierVeth(ROUTER, BRIDGE_P)}`), false, 'its veth is gone');
    assert.equal(sh('ip', ['-n', ns, 'route', 'show', 'proto', 'static']).trim(), '');
    assert.match(connect(VM_A, REMOTE_IP, 7000), /^ERROR E(NET|HOST)UNREACH$/);
    assert.equal(await connectReady(VM_A, vmB, 6000), `db-1 ${vmA}`);
    const { vpc: _, ...plain } = spec({});
    await hostNet.startRouter(RouterSpec.parse(plain));
    assert.ok(!sh('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables']).includes(VPC_TABLE));
  });

  test('stopRouter leaves no interface of the router behind', async () => {
    await hostNet.startRouter(spec({ privateGateways: [gateway], acls: [] }));
    await hostNet.stopRouter(ROUTER);
    for (const link of [
      routerVeth(ROUTER),
      routerTierVeth(ROUTER, BRIDGE_B),
      routerTierVeth(ROUTER, BRIDGE_P),
    ])
      assert.equal(existsSync(`/sys/class/net/${link}`), false, link);
    assert.equal(existsSync(`/run/netns/${routerNetns(ROUTER)}`), false);
  });
});
