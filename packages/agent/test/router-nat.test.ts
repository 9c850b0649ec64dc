/**
 * An isolated network's router for real: its public side on a test "public" bridge, where an
 * "internet" namespace addressed from 203.0.113.0/24 (documentation range, never leaves the
 * machine) stands for the outside world, and "guest" namespaces on the guest bridge stand for VMs.
 * Each namespace runs a tiny TCP server answering its own name and the peer's address, so a
 * connection shows both who answered and which address NAT made the client appear from.
 * Needs root, nft, dnsmasq and haproxy, and NIMBOSTACK_TEST_KVM=1 (npm run test:kvm).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GuestNetwork, RouterRules, RouterSpec } from '@nimbostack/protocol';
import { HostNetwork } from '../src/network/host-network.ts';
import { routerNetns, routerPublicVeth, routerVeth } from '../src/network/names.ts';
import { processAlive } from '../src/network/router.ts';

const missing = [
  process.env.NIMBOSTACK_TEST_KVM === '1' ? '' : 'NIMBOSTACK_TEST_KVM=1 (npm run test:kvm)',
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/sbin/nft') ? '' : 'nft (nftables)',
  existsSync('/usr/sbin/dnsmasq') ? '' : 'dnsmasq (dnsmasq-base)',
  existsSync('/usr/sbin/haproxy') ? '' : 'haproxy',
].filter(Boolean);
const SKIP = missing.length ? `router NAT tests need ${missing.join(', ')}; run npm run setup:host` : false;

const tag = String(process.pid % 10000);
const net = `10.254.${process.pid % 250}`;
const GUEST_BRIDGE = `nrg${tag}`;
const PUBLIC_BRIDGE = `nrp${tag}`;
const INTERNET = `nri${tag}`;
const ROUTER = `r-nat-${tag}-VM`;
const INET_IP = '203.0.113.1';
const SNAT_IP = '203.0.113.10';
const STATIC_IP = '203.0.113.11';
const LB_IP = '203.0.113.12';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

const network = GuestNetwork.parse({
  uuid: `net-nat-${tag}`,
  bridge: GUEST_BRIDGE,
  cidr: `${net}.0/24`,
  gateway: `${net}.1`,
  gatewayOnHost: false,
  domain: 'nat.test',
});
const publicSide = (addresses = [SNAT_IP, STATIC_IP, LB_IP]) => ({
  bridge: PUBLIC_BRIDGE,
  mac: '02:00:5e:fe:00:01',
  gateway: INET_IP,
  addresses: addresses.map((ip) => ({ ip, prefix: 24 })),
  sourceNat: SNAT_IP,
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
/** An HTTP server answering its name (for HTTP load balancers and their health checks). */
const HTTP_SERVER = `const [name, port] = process.argv.slice(1);
require('http').createServer((q, r) => r.end(name + '\\n')).listen(Number(port), '0.0.0.0');`;
const servers: ChildProcess[] = [];
const httpServers = new Map<string, ChildProcess>();
function serve(ns: string, name: string, ports: number[]): void {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, '-e', SERVER, name, ...ports.map(String)],
    {
      stdio: 'ignore',
    },
  );
  servers.push(child);
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
function connect(ns: string, host: string, port: number, ms = 1500): string {
  return sh('ip', [
    'netns',
    'exec',
    ns,
    process.execPath,
    '-e',
    CLIENT,
    host,
    String(port),
    String(ms),
  ]).trim();
}
/** Servers take a moment to listen after spawn: retries while the answer is a refusal. */
async function connectReady(ns: string, host: string, port: number): Promise<string> {
  for (let i = 0; ; i++) {
    const answer = connect(ns, host, port);
    if (!answer.startsWith('ERROR ECONNREFUSED') || i >= 30) return answer;
    await new Promise((r) => setTimeout(r, 100));
  }
}

let root = '';
let hostNet: HostNetwork;
const G1 = `nrv${tag}-1`;
const G2 = `nrv${tag}-2`;
const g1ip = `${net}.11`;
const g2ip = `${net}.12`;
const spec = (rules: object) =>
  RouterSpec.parse({
    name: ROUTER,
    network,
    ip: network.gateway,
    mac: '02:00:5e:fe:00:02',
    public: publicSide(),
    rules,
  });
const rules = (over: object) => RouterRules.parse(over);
const allowTcp = (publicIp: string, port: number, sourceCidrs: string[] = []) => ({
  publicIp,
  protocol: 'tcp' as const,
  startPort: port,
  endPort: port,
  sourceCidrs,
});
const inRouter = (args: string[]) => sh('ip', ['-n', routerNetns(ROUTER), ...args]);
const haproxyPid = () => Number(readFileSync(join(root, 'routers', ROUTER, 'haproxy.pid'), 'utf8').trim());

function cleanup(): void {
  for (const s of servers) s.kill('SIGKILL');
  for (const { ns, port } of namespaces) {
    quiet('ip', ['netns', 'del', ns]);
    quiet('ip', ['link', 'del', port]);
  }
  // A router the test could not stop: its processes and namespace go here.
  const ns = routerNetns(ROUTER);
  if (existsSync(`/run/netns/${ns}`)) {
    for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(
      /\s+/,
    ))
      if (pid) quiet('kill', ['-9', pid]);
    quiet('ip', ['netns', 'del', ns]);
  }
  quiet('ip', ['link', 'del', routerVeth(ROUTER)]);
  quiet('ip', ['link', 'del', routerPublicVeth(ROUTER)]);
  quiet('ip', ['link', 'del', GUEST_BRIDGE]);
  quiet('ip', ['link', 'del', PUBLIC_BRIDGE]);
}

describe('isolated network router: public side, NAT, firewall, egress, load balancing', {
  skip: SKIP,
}, () => {
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'nimbo-nat-'));
    hostNet = new HostNetwork({
      hostDir: root,
      localAddress: '127.0.0.1',
      applySecurityRules: async () => {},
    });
    await hostNet.setupNetwork(network);
    plug(G1, `nrt${tag}x1`, GUEST_BRIDGE, `${g1ip}/24`, network.gateway);
    plug(G2, `nrt${tag}x2`, GUEST_BRIDGE, `${g2ip}/24`, network.gateway);
    serve(G1, 'g1', [22, 5000, 8080]);
    serve(G2, 'g2', [4000, 4001, 5000, 8080]);
    for (const [ns, name] of [
      [G1, 'g1'],
      [G2, 'g2'],
    ]) {
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', HTTP_SERVER, name, '8081'], {
        stdio: 'ignore',
      });
      servers.push(child);
      httpServers.set(name, child);
    }
  });

  after(async () => {
    await hostNet?.stopRouter(ROUTER).catch(() => undefined);
    cleanup();
    await hostNet?.security.dropIfUnused().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  test('startRouter with a public side: eth1 on the public bridge, its addresses, the default route out of it; guests leave from the source NAT address', async () => {
    const t0 = performance.now();
    await hostNet.startRouter(spec({}));
    const startMs = performance.now() - t0;
    // The public bridge did not exist: the agent made it (up, no address), and the internet is on it.
    assert.ok(existsSync(`/sys/class/net/${PUBLIC_BRIDGE}/bridge`));
    plug(INTERNET, `nrt${tag}xi`, PUBLIC_BRIDGE, `${INET_IP}/24`, INET_IP);
    serve(INTERNET, 'internet', [7000, 7001]);
    assert.equal(
      sh('cat', [`/sys/class/net/${routerPublicVeth(ROUTER)}/master/uevent`]).match(/INTERFACE=(.*)/)?.[1],
      PUBLIC_BRIDGE,
    );
    const [eth1] = JSON.parse(inRouter(['-j', 'addr', 'show', 'dev', 'eth1']));
    assert.equal(eth1.address, '02:00:5e:fe:00:01');
    assert.deepEqual(
      eth1.addr_info
        .filter((a: { family: string }) => a.family === 'inet')
        .map((a: { local: string }) => a.local),
      [SNAT_IP, STATIC_IP, LB_IP],
    );
    assert.match(inRouter(['route', 'show', 'default']), new RegExp(`default via ${INET_IP} dev eth1`));
    assert.equal(
      sh('ip', ['netns', 'exec', routerNetns(ROUTER), 'sysctl', '-n', 'net.ipv4.ip_forward']).trim(),
      '1',
    );
    assert.equal(await connectReady(G1, INET_IP, 7000), `internet ${SNAT_IP}`);
    assert.equal(connect(G2, INET_IP, 7000), `internet ${SNAT_IP}`);
    // Nothing is open from outside: the public addresses answer nothing but what rules admit.
    assert.equal(connect(INTERNET, SNAT_IP, 22), 'TIMEOUT');
    // Nor are guests reachable by their own addresses, even by a neighbour routing to them.
    sh('ip', ['-n', INTERNET, 'route', 'add', network.cidr, 'via', SNAT_IP]);
    assert.equal(connect(INTERNET, g1ip, 22), 'TIMEOUT');
    console.log(`startRouter with a public side: ${startMs.toFixed(0)} ms`);
  });

  test('port forwards need a firewall rule; ranges are translated port by port; the firewall matches sources', async () => {
    const forwards = [
      {
        publicIp: LB_IP,
        protocol: 'tcp',
        publicStart: 2222,
        publicEnd: 2222,
        privateIp: g1ip,
        privateStart: 22,
        privateEnd: 22,
      },
      {
        publicIp: LB_IP,
        protocol: 'tcp',
        publicStart: 3000,
        publicEnd: 3001,
        privateIp: g2ip,
        privateStart: 4000,
        privateEnd: 4001,
      },
    ];
    await hostNet.applyRouterRules({ name: ROUTER, rules: rules({ portForwards: forwards }) });
    assert.equal(connect(INTERNET, LB_IP, 2222), 'TIMEOUT', 'a port forward alone opens nothing');
    const t0 = performance.now();
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({
        portForwards: forwards,
        firewall: [allowTcp(LB_IP, 2222), { ...allowTcp(LB_IP, 3000), endPort: 3001 }],
      }),
    });
    console.log(`applyRouterRules (nft replace): ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(connect(INTERNET, LB_IP, 2222), `g1 ${INET_IP}`);
    assert.equal(connect(INTERNET, LB_IP, 3000), `g2 ${INET_IP}`);
    assert.equal(connect(INTERNET, LB_IP, 3001), `g2 ${INET_IP}`);
    // The rule admits the public port, not the private one the forward translates to.
    assert.equal(connect(INTERNET, LB_IP, 22), 'TIMEOUT');
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ portForwards: forwards, firewall: [allowTcp(LB_IP, 2222, ['198.51.100.0/24'])] }),
    });
    assert.equal(connect(INTERNET, LB_IP, 2222), 'TIMEOUT', 'the source is not in the rule');
    assert.equal(connect(INTERNET, LB_IP, 3000), 'TIMEOUT', 'the rule was revoked');
  });

  test('static NAT: the VM leaves from its own public address and is reached on it once the firewall admits it', async () => {
    const staticNats = [{ publicIp: STATIC_IP, privateIp: g2ip }];
    await hostNet.applyRouterRules({ name: ROUTER, rules: rules({ staticNats }) });
    assert.equal(connect(G2, INET_IP, 7000), `internet ${STATIC_IP}`);
    assert.equal(connect(G1, INET_IP, 7000), `internet ${SNAT_IP}`);
    assert.equal(connect(INTERNET, STATIC_IP, 5000), 'TIMEOUT');
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ staticNats, firewall: [allowTcp(STATIC_IP, 5000)] }),
    });
    assert.equal(connect(INTERNET, STATIC_IP, 5000), `g2 ${INET_IP}`);
    // Static NAT forwards every port, but the firewall admitted only 5000.
    assert.equal(connect(INTERNET, STATIC_IP, 8080), 'TIMEOUT');
  });

  test('egress: a deny-by-default offering blocks guests until a rule allows; an allow-by-default one until a rule denies', async () => {
    await hostNet.applyRouterRules({ name: ROUTER, rules: rules({ egressDefaultAllow: false }) });
    assert.equal(connect(G1, INET_IP, 7000), 'TIMEOUT');
    const rule = { protocol: 'tcp', startPort: 7000, endPort: 7000, destCidrs: ['203.0.113.0/24'] };
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ egressDefaultAllow: false, egress: [rule] }),
    });
    assert.equal(connect(G1, INET_IP, 7000), `internet ${SNAT_IP}`);
    assert.equal(connect(G1, INET_IP, 7001), 'TIMEOUT');
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ egressDefaultAllow: true, egress: [rule] }),
    });
    assert.equal(connect(G1, INET_IP, 7000), 'TIMEOUT');
    assert.equal(connect(G1, INET_IP, 7001), `internet ${SNAT_IP}`);
    // A rule limited to one guest's address denies only that guest.
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ egressDefaultAllow: true, egress: [{ ...rule, sourceCidrs: [`${g2ip}/32`] }] }),
    });
    assert.equal(connect(G1, INET_IP, 7000), `internet ${SNAT_IP}`);
    assert.equal(connect(G2, INET_IP, 7000), 'TIMEOUT');
    // A rule for all protocols and every address: the bare verdict, which an `ip` table takes.
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ egressDefaultAllow: false, egress: [{ protocol: 'all' }] }),
    });
    assert.equal(connect(G1, INET_IP, 7001), `internet ${SNAT_IP}`);
  });

  test('load balancing: HAProxy in the namespace spreads connections over the members, reloads on change, refuses a bad configuration', async () => {
    const lb = {
      id: 'lb-1',
      publicIp: LB_IP,
      publicPort: 80,
      privatePort: 8080,
      algorithm: 'roundrobin',
      members: [{ ip: g1ip }, { ip: g2ip }],
    };
    const first = await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ loadBalancers: [lb], firewall: [allowTcp(LB_IP, 80)] }),
    });
    assert.equal(typeof first.loadBalancerMs, 'number');
    const answers = new Set<string>();
    for (let i = 0; i < 6; i++) answers.add(connect(INTERNET, LB_IP, 80));
    // HAProxy connects from the router's guest address.
    assert.deepEqual([...answers].sort(), [`g1 ${network.gateway}`, `g2 ${network.gateway}`]);
    const pid = haproxyPid();
    assert.ok(processAlive(pid, 'haproxy.cfg'));

    // Unchanged rules: no reload.
    const same = await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ loadBalancers: [lb], firewall: [allowTcp(LB_IP, 80)] }),
    });
    assert.equal(same.loadBalancerMs, undefined);
    assert.equal(haproxyPid(), pid);

    // A health check and source stickiness: a graceful reload to a new process.
    const checked = {
      ...lb,
      algorithm: 'leastconn',
      healthCheck: { intervalSec: 1, timeoutSec: 1, healthyThreshold: 1, unhealthyThreshold: 2 },
      stickiness: { method: 'SourceBased', params: {} },
    };
    const reload = await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ loadBalancers: [checked], firewall: [allowTcp(LB_IP, 80)] }),
    });
    console.log(`HAProxy start ${first.loadBalancerMs} ms, graceful reload ${reload.loadBalancerMs} ms`);
    assert.equal(typeof reload.loadBalancerMs, 'number');
    const reloaded = haproxyPid();
    assert.notEqual(reloaded, pid);
    for (let i = 0; i < 50 && processAlive(pid, 'haproxy.cfg'); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.ok(!processAlive(pid, 'haproxy.cfg'), 'the old HAProxy left after the reload');
    // Sticky on the source: the internet's connections all go to one member.
    const sticky = new Set<string>();
    for (let i = 0; i < 4; i++) sticky.add(connect(INTERNET, LB_IP, 80));
    assert.equal(sticky.size, 1, [...sticky].join(', '));

    // An address the router does not hold is refused, and the working balancer stays.
    await assert.rejects(
      hostNet.applyRouterRules({
        name: ROUTER,
        rules: rules({
          loadBalancers: [{ ...checked, publicIp: '203.0.113.99' }],
          firewall: [allowTcp(LB_IP, 80)],
        }),
      }),
      /203\.0\.113\.99/,
    );
    assert.equal(haproxyPid(), reloaded);
    assert.match(connect(INTERNET, LB_IP, 80), /^g[12] /);
  });

  test('an HTTP load balancer: cookie stickiness keeps a client on its member, HTTP health checks', async () => {
    const tcp = {
      id: 'lb-1',
      publicIp: LB_IP,
      publicPort: 80,
      privatePort: 8080,
      algorithm: 'roundrobin',
      members: [{ ip: g1ip }, { ip: g2ip }],
    };
    const http = {
      id: 'lb-http',
      publicIp: LB_IP,
      publicPort: 8000,
      privatePort: 8081,
      protocol: 'http',
      algorithm: 'roundrobin',
      members: [{ ip: g1ip }, { ip: g2ip }],
      stickiness: { method: 'LbCookie', params: { 'cookie-name': 'NIMBO' } },
      healthCheck: {
        pingPath: '/health',
        intervalSec: 1,
        timeoutSec: 1,
        healthyThreshold: 1,
        unhealthyThreshold: 2,
      },
    };
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({ loadBalancers: [tcp, http], firewall: [allowTcp(LB_IP, 80), allowTcp(LB_IP, 8000)] }),
    });
    const jar = join(root, 'cookies');
    // A request HAProxy is still retrying on a dead member may time out: it answers "failed".
    const get = (withJar: boolean) => {
      const r = spawnSync(
        'ip',
        [
          ...['netns', 'exec', INTERNET, 'curl', '-s', '-m', '3'],
          ...(withJar ? ['-c', jar, '-b', jar] : []),
          `http://${LB_IP}:8000/`,
        ],
        { encoding: 'utf8' },
      );
      return r.status === 0 ? r.stdout.trim() : `failed (${r.status})`;
    };
    const plain = new Set<string>();
    for (let i = 0; i < 4; i++) plain.add(get(false));
    assert.deepEqual([...plain].sort(), ['g1', 'g2']);
    const sticky = new Set<string>();
    for (let i = 0; i < 4; i++) sticky.add(get(true));
    assert.equal(sticky.size, 1, [...sticky].join(', '));
    assert.match(readFileSync(jar, 'utf8'), /NIMBO\tm[01]/);
    // A member failing its health check (fall 2 at 1 s intervals) gets no more requests.
    httpServers.get('g2')?.kill('SIGKILL');
    const deadline = Date.now() + 15_000;
    let answers: string[] = [];
    while (Date.now() < deadline) {
      answers = [get(false), get(false), get(false), get(false)];
      if (answers.every((a) => a === 'g1')) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.deepEqual(answers, ['g1', 'g1', 'g1', 'g1']);
  });

  test('updateRouter keeps the public side and rules; a restarted agent restarts a dead HAProxy', async () => {
    await hostNet.updateRouter({
      name: ROUTER,
      add: [
        {
          mac: '02:00:5e:fe:00:11',
          ip: g1ip,
          hostname: 'g1',
          instanceId: 'u-1',
          vmName: 'i-1',
          publicKeys: [],
        },
      ],
      remove: [],
    });
    assert.match(connect(INTERNET, LB_IP, 80), /^g[12] /);
    assert.equal(connect(G1, INET_IP, 7000), `internet ${SNAT_IP}`);
    const pid = haproxyPid();
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && processAlive(pid, 'haproxy.cfg'); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(connect(INTERNET, LB_IP, 80), 'ERROR ECONNREFUSED');
    const restarted = new HostNetwork({
      hostDir: root,
      localAddress: '127.0.0.1',
      applySecurityRules: async () => {},
    });
    await restarted.adopt();
    assert.ok(processAlive(haproxyPid(), 'haproxy.cfg'));
    assert.match(connect(INTERNET, LB_IP, 80), /^g[12] /);
  });

  test('applyRouterRules: fewer public addresses are removed; a router not running here is refused', async () => {
    await hostNet.applyRouterRules({ name: ROUTER, public: publicSide([SNAT_IP, LB_IP]), rules: rules({}) });
    const [eth1] = JSON.parse(inRouter(['-j', 'addr', 'show', 'dev', 'eth1']));
    assert.deepEqual(
      eth1.addr_info
        .filter((a: { family: string }) => a.family === 'inet')
        .map((a: { local: string }) => a.local),
      [SNAT_IP, LB_IP],
    );
    // No load balancer left: no HAProxy.
    assert.ok(!existsSync(join(root, 'routers', ROUTER, 'haproxy.pid')));
    await assert.rejects(
      hostNet.applyRouterRules({ name: `${ROUTER}-nope`, rules: rules({}) }),
      /not running on this host/,
    );
  });

  test('stopRouter leaves no namespace, veth or HAProxy behind', async () => {
    await hostNet.applyRouterRules({
      name: ROUTER,
      rules: rules({
        loadBalancers: [
          {
            id: 'lb-2',
            publicIp: LB_IP,
            publicPort: 80,
            privatePort: 8080,
            algorithm: 'source',
            members: [{ ip: g1ip }],
          },
        ],
      }),
    });
    const pid = haproxyPid();
    assert.ok(processAlive(pid, 'haproxy.cfg'));
    await hostNet.stopRouter(ROUTER);
    assert.ok(!existsSync(`/run/netns/${routerNetns(ROUTER)}`));
    assert.ok(!existsSync(`/sys/class/net/${routerVeth(ROUTER)}`));
    assert.ok(!existsSync(`/sys/class/net/${routerPublicVeth(ROUTER)}`));
    assert.ok(!processAlive(pid, 'haproxy.cfg'));
    assert.ok(!existsSync(join(root, 'routers', ROUTER)));
  });
});
