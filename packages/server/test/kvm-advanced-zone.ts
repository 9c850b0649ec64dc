/**
 * Shared by the real-VM suites (kvm-advanced-e2e, kvm-vpc-e2e, kvm-ha-e2e; kvm-e2e and the storage
 * suites for the test template): an Advanced zone built through the API with KVM agent processes on this machine as its hosts, "the internet" as
 * a namespace on the zone's test public bridge (documentation range: nothing leaves the machine)
 * with a TCP server recording who connects, a TCP client run inside any namespace, guests'
 * console logs, and the clean-up of what a failed run leaves on the host.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CloudStackClient } from '@nimbostack/client';
import Database from 'better-sqlite3';
import { routerNetns, routerPublicVeth, routerVeth } from '../../agent/src/network/names.ts';
import { startAgent, type TestAgent, waitUntil } from './agents.ts';
import type { TestServer } from './harness.ts';

export const TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';

export const figure = (name: string, ms: number) =>
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);
export const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
export const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
export const linkExists = (name: string) => existsSync(`/sys/class/net/${name}`);
export const netnsList = () =>
  sh('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter(Boolean);
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The KVM local zone's built-in test template, once it is ready in `zoneid`; its UUID. */
export function readyKvmTestTemplate(client: CloudStackClient, zoneid: string): Promise<string> {
  return waitUntil(
    async () =>
      (
        await client.request<any>('listTemplates', {
          templatefilter: 'featured',
          zoneid,
          name: 'Nimbostack test template (KVM)',
        })
      ).template?.find((t: any) => t.isready)?.id,
    60_000,
    'the KVM test template to be ready',
  );
}

/**
 * The hosts name routers (`r-<id>-VM`, their namespaces and veths), tier and network bridges
 * (`nsbr<id>`) and VMs after database ids, which every fresh test server starts at 1: two
 * real-host suites running at once on one machine (developers sharing it) would take each other's
 * namespaces and bridges. Starting this server's SQLite sequences at a base of its own keeps them
 * apart; it changes no behaviour (ids are opaque). Call it before anything is created.
 */
export function separateIds(server: TestServer, base: number): void {
  if (!server.databaseUrl.startsWith('sqlite:')) return;
  const db = new Database(server.databaseUrl.slice('sqlite:'.length));
  try {
    for (const table of ['routers', 'networks', 'vms']) {
      const set = db
        .prepare('UPDATE sqlite_sequence SET seq = ? WHERE name = ? AND seq < ?')
        .run(base, table, base);
      if (set.changes === 0 && !db.prepare('SELECT 1 FROM sqlite_sequence WHERE name = ?').get(table))
        db.prepare('INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)').run(table, base);
    }
  } finally {
    db.close();
  }
}

/** Kills every process in a namespace and deletes it (nothing if it is not there). */
export function removeNamespace(ns: string): void {
  if (!existsSync(`/run/netns/${ns}`)) return;
  for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(/\s+/))
    if (pid) quiet('kill', ['-9', pid]);
  quiet('ip', ['netns', 'del', ns]);
}

/** Whatever of these routers is still on the host (a failure in the middle): processes, namespace, veths. */
export function removeRouterLeftovers(names: Iterable<string>): void {
  for (const name of names) {
    removeNamespace(routerNetns(name));
    quiet('ip', ['link', 'del', routerVeth(name)]);
    quiet('ip', ['link', 'del', routerPublicVeth(name)]);
  }
}

/** QEMU outlives its agent: kills any VM an agent state directory (`<dir>/vms/*`) names. */
export function killQemus(agentDir: string): void {
  const dir = join(agentDir, 'vms');
  for (const n of existsSync(dir) ? readdirSync(dir) : []) {
    const f = join(dir, n, 'vm.json');
    const pid = existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')).pid : undefined;
    if (typeof pid === 'number') quiet('kill', ['-9', String(pid)]);
  }
}

/**
 * Connects `count` times (one after the other, `pause` ms apart) and prints a JSON array of what
 * each got: the answer, TIMEOUT (dropped) or ERROR <code> (refused, reset, unreachable).
 */
const CLIENT = `const [host, port, ms, count, pause] = process.argv.slice(1).map((a, i) => (i ? Number(a) : a));
const once = () => new Promise((done) => {
  const s = require('net').connect({ host, port });
  let d = '';
  const t = setTimeout(() => { s.destroy(); done('TIMEOUT'); }, ms);
  s.on('data', (c) => (d += c));
  s.on('end', () => { clearTimeout(t); s.destroy(); done(d.trim() || 'EMPTY'); });
  s.on('error', (e) => { clearTimeout(t); done('ERROR ' + e.code); });
});
(async () => {
  const out = [];
  for (let i = 0; i < count; i++) {
    out.push(await once());
    if (pause) await new Promise((r) => setTimeout(r, pause));
  }
  console.log(JSON.stringify(out));
})();`;

/** What namespace `ns` gets from host:port, `count` connections. */
export function fromNamespace(
  ns: string,
  host: string,
  port: number,
  count = 1,
  ms = 1500,
  pause = 0,
): string[] {
  return JSON.parse(
    sh('ip', [
      'netns',
      'exec',
      ns,
      process.execPath,
      '-e',
      CLIENT,
      host,
      String(port),
      String(ms),
      String(count),
      String(pause),
    ]),
  );
}

/** The internet's server: answers each connection with the peer's address and logs "<ms> <peer>". */
const INET_SERVER = (ip: string) => `require('net').createServer((s) => {
  const peer = s.remoteAddress.replace('::ffff:', '');
  console.log(Date.now() + ' ' + peer);
  s.on('error', () => {});
  s.resume();
  s.end(peer + '\\n');
}).listen(9000, '${ip}', () => console.log('listening'));`;

/**
 * "The internet": a namespace on the zone's public bridge (created here if missing) holding the
 * public gateway address, with a TCP server on :9000 answering each connection with the peer's
 * address and recording it in `seen`.
 */
export class Internet {
  /** Every connection the server accepted: when, and from which address. */
  readonly seen: { at: number; peer: string }[] = [];
  private server?: ChildProcess;

  constructor(
    readonly bridge: string,
    readonly ns: string,
    readonly veth: string,
    readonly ip: string,
  ) {}

  start(): void {
    if (!linkExists(this.bridge))
      sh('ip', ['link', 'add', this.bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    sh('ip', ['link', 'set', this.bridge, 'up']);
    sh('ip', ['netns', 'add', this.ns]);
    sh('ip', ['link', 'add', this.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns]);
    sh('ip', ['-n', this.ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', this.ns, 'addr', 'add', `${this.ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', this.ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['link', 'set', this.veth, 'master', this.bridge]);
    sh('ip', ['link', 'set', this.veth, 'up']);
    this.server = spawn('ip', ['netns', 'exec', this.ns, process.execPath, '-e', INET_SERVER(this.ip)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    this.server.stdout!.on('data', (d) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        const [at, peer] = l.split(' ');
        if (peer) this.seen.push({ at: Number(at), peer });
      }
    });
  }

  /** What the internet gets from host:port. */
  connect(host: string, port: number, count = 1, ms = 1500, pause = 0): string[] {
    return fromNamespace(this.ns, host, port, count, ms, pause);
  }

  /** Stops the server, removes the namespace, its veth and the public bridge (ours: named after our pid). */
  stop(): void {
    this.server?.kill('SIGKILL');
    removeNamespace(this.ns);
    quiet('ip', ['link', 'del', this.veth]);
    quiet('ip', ['link', 'del', this.bridge]);
  }
}

/** A guest's serial console log, `\r` removed ('' before the VM has one). */
export const readConsole = (path: string) =>
  existsSync(path) ? readFileSync(path).toString('utf8').replace(/\r/g, '') : '';

/** Waits for a console line matching `pattern`; fails with the console's tail. */
export async function consoleLine(path: string, pattern: RegExp, what: string, timeoutMs = 180_000) {
  const line = await waitUntil(
    async () =>
      readConsole(path)
        .split('\n')
        .find((l) => pattern.test(l)),
    timeoutMs,
    `console line ${pattern} of ${what}`,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\n${readConsole(path).slice(-2000)}`);
  });
  return line!;
}

export interface ZoneOptions {
  /** Names the zone's objects (`<prefix>-e2e`, `<prefix>-pod` …) and the agents' tokens. */
  prefix: string;
  /** The test's scratch directory: primary and secondary storage, each agent's `agent<N>` state. */
  root: string;
  hosts: string[];
  publicBridge: string;
  gatewayIp: string;
  publicIps: string[];
  vniRange: [number, number];
  guestCidr: string;
  /** The pod's management range, 192.168.<podOctet>.0/24. */
  podOctet: number;
}

export interface AdvancedZone {
  zoneid: string;
  hostIds: string[];
  templateid: string;
  /** A 256 MiB, 1-vCPU offering: several guests run at once on a shared 2-core machine. */
  serviceofferingid: string;
}

/** Each host's agent state directory under `root` (the agent keeps `<dir>/<host name>/…`). */
export const agentStateDir = (opts: Pick<ZoneOptions, 'root' | 'hosts'>, host: string) =>
  join(opts.root, `agent${opts.hosts.indexOf(host) + 1}`);

/**
 * Starts a KVM agent process per host; they probe QEMU while the zone is built. `agentUrl` may
 * list several servers (comma-separated), as the HA suite gives its cluster's.
 */
export function startAgents(server: Pick<TestServer, 'agentUrl'>, opts: ZoneOptions): TestAgent[] {
  return opts.hosts.map((name) =>
    startAgent(server.agentUrl, {
      token: `${opts.prefix}-e2e-${name}`,
      name,
      args: ['--hypervisor', 'kvm', '--state-dir', agentStateDir(opts, name), '--address', '127.0.0.1'],
    }),
  );
}

/**
 * The Advanced zone, as an operator builds it through the API: a VXLAN physical network, the
 * virtual router provider, the public range on the public bridge, one pod and KVM cluster with
 * shared primary storage (one directory both hosts see), secondary storage, the agents added as
 * hosts, the test template registered and a small service offering.
 */
export async function buildAdvancedZone(
  admin: CloudStackClient,
  agents: TestAgent[],
  opts: ZoneOptions,
): Promise<AdvancedZone> {
  const { prefix, root } = opts;
  const zoneid = (
    await admin.request<any>('createZone', {
      name: `${prefix}-e2e`,
      networktype: 'Advanced',
      dns1: opts.gatewayIp,
      internaldns1: opts.gatewayIp,
      guestcidraddress: opts.guestCidr,
    })
  ).zone.id;
  const physicalnetworkid = (
    await admin.call<any>('createPhysicalNetwork', {
      zoneid,
      name: `${prefix}-phys`,
      isolationmethods: 'VXLAN',
      vlan: opts.vniRange.join('-'),
    })
  ).physicalnetwork.id;
  for (const traffictype of ['Guest', 'Management', 'Public'])
    await admin.call('addTrafficType', {
      physicalnetworkid,
      traffictype,
      ...(traffictype === 'Public' ? { kvmnetworklabel: opts.publicBridge } : {}),
    });
  await admin.call('updatePhysicalNetwork', { id: physicalnetworkid, state: 'Enabled' });
  // The virtual router provider, enabled as the zone wizard does (its element configured first).
  const vr = (
    await admin.request<any>('listNetworkServiceProviders', { physicalnetworkid, name: 'VirtualRouter' })
  ).networkserviceprovider?.[0];
  assert.ok(vr, 'the physical network has the VirtualRouter provider');
  if (vr.state !== 'Enabled') {
    const element = (await admin.request<any>('listVirtualRouterElements', { nspid: vr.id }))
      .virtualrouterelement?.[0];
    if (element && !element.enabled)
      await admin.call('configureVirtualRouterElement', { id: element.id, enabled: true });
    await admin.call('updateNetworkServiceProvider', { id: vr.id, state: 'Enabled' });
  }
  await admin.request('createVlanIpRange', {
    zoneid,
    forvirtualnetwork: true,
    gateway: opts.gatewayIp,
    netmask: '255.255.255.0',
    startip: opts.publicIps[0],
    endip: opts.publicIps.at(-1),
  });
  const podid = (
    await admin.request<any>('createPod', {
      zoneid,
      name: `${prefix}-pod`,
      gateway: `192.168.${opts.podOctet}.1`,
      netmask: '255.255.255.0',
      startip: `192.168.${opts.podOctet}.10`,
      endip: `192.168.${opts.podOctet}.50`,
    })
  ).pod.id;
  const cluster = (
    await admin.request<any>('addCluster', {
      zoneid,
      podid,
      clustername: `${prefix}-cluster`,
      hypervisor: 'KVM',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  await admin.request('createStoragePool', {
    zoneid,
    podid,
    clusterid: cluster.id,
    name: `${prefix}-primary`,
    url: join(root, 'primary'),
    scope: 'cluster',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: `${prefix}-secondary`,
    provider: 'NFS',
    url: join(root, 'secondary'),
  });
  const hostIds: string[] = [];
  for (const [i, name] of opts.hosts.entries()) {
    await agents[i]!.waitForLog('waiting to be added', 60_000);
    const host = (
      await admin.request<any>('addHost', {
        zoneid,
        podid,
        clusterid: cluster.id,
        url: `agent://${name}`,
        username: 'root',
        password: `${prefix}-e2e-${name}`,
        hypervisor: 'KVM',
      })
    ).host[0];
    hostIds.push(host.id);
  }
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  await waitUntil(
    async () =>
      ((await admin.request<any>('listHosts', { zoneid })).host ?? []).filter((h: any) => h.state === 'Up')
        .length === opts.hosts.length,
    60_000,
    'every KVM host to be Up',
  );
  const ostypeid = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
  const templateid = (
    await admin.request<any>('registerTemplate', {
      name: `${prefix}-e2e-template`,
      displaytext: `Nimbostack test template (${prefix} e2e)`,
      url: TEMPLATE,
      format: 'QCOW2',
      hypervisor: 'KVM',
      ostypeid,
      zoneid,
      ispublic: true,
    })
  ).template[0].id;
  await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { id: templateid, templatefilter: 'all' })).template?.[0]
        ?.isready,
    120_000,
    'the test template on secondary storage',
  );
  const serviceofferingid = (
    await admin.request<any>('createServiceOffering', {
      name: `${prefix}-tiny`,
      displaytext: `${prefix} tiny`,
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
    })
  ).serviceoffering.id;
  return { zoneid, hostIds, templateid, serviceofferingid };
}
