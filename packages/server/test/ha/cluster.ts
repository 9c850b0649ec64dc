/**
 * A cluster of management servers for the HA suite and the cluster benchmark: N real server
 * processes (`main.ts`, as `npm start` runs it) on one fresh PostgreSQL or MariaDB database, each
 * with its own name, ports and data directory and the one cloud key, behind HAProxy doing round
 * robin (the load balancer docs/ha.md shows operators), and simulator hosts whose agents run in
 * this process, so that what the hosts themselves hold (VMs, their sizes, volumes) can be read and
 * compared with the database after a server is killed.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, type AgentLogger, SimulatorFleet, type SimulatorHost } from '@nimbostack/agent';
import { openStore, type Store } from '../../src/db/connection.ts';
import { freePort, ServerProcess, type ServerSettings } from '../chaos/processes.ts';
import { createDatabase, type DbKind } from '../harness.ts';

export const AGENT_TOKEN = 'ha-agent-token-0123456789';

const quiet: AgentLogger = { info() {}, warn() {}, error() {}, debug() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every HAProxy still running, so that a run that gives up leaves none behind. */
const proxies = new Set<ChildProcess>();

export function killProxies(): void {
  for (const c of proxies) c.kill('SIGKILL');
}

/** Whether HAProxy can be run here (`npm run setup:host` installs it; .ci/run runs that first). */
export function haproxyAvailable(): boolean {
  return spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0;
}

/**
 * HAProxy in front of the servers: round robin over their API ports, a dead backend taken out by
 * its failed checks (every 500 ms, 2 failures), and a connection refused by a server that just
 * died re-dispatched to another (`retry-on conn-failure` + `option redispatch`: safe, the request
 * never reached a server). A request a server was answering when it died is not retried by the
 * proxy (it may have been carried out): the client sees a 502 and decides, as the suite's
 * clients do. The second frontend balances agents' WebSocket connections over the agent ports,
 * for agents given one address (docs/ha.md).
 */
export class Haproxy {
  private child?: ChildProcess;
  readonly configFile: string;

  constructor(
    readonly dir: string,
    readonly apiPort: number,
    readonly agentPort: number,
    private backends: { name: string; port: number; agentPort: number }[],
  ) {
    this.configFile = join(dir, 'haproxy.cfg');
  }

  config(): string {
    const api = this.backends.map(
      (b) => `  server ${b.name} 127.0.0.1:${b.port} check inter 500ms fall 2 rise 2`,
    );
    const agents = this.backends.map(
      (b) => `  server ${b.name} 127.0.0.1:${b.agentPort} check inter 500ms fall 2 rise 2`,
    );
    return [
      'global',
      '  maxconn 4096',
      'defaults',
      '  timeout connect 2s',
      '  timeout client 150s',
      '  timeout server 150s',
      '  timeout tunnel 1h',
      '  retries 3',
      '  option redispatch',
      'frontend api',
      '  mode http',
      `  bind 127.0.0.1:${this.apiPort}`,
      '  default_backend management',
      'backend management',
      '  mode http',
      '  balance roundrobin',
      '  retry-on conn-failure',
      ...api,
      'frontend agents',
      '  mode tcp',
      `  bind 127.0.0.1:${this.agentPort}`,
      '  default_backend agents',
      'backend agents',
      '  mode tcp',
      '  balance roundrobin',
      ...agents,
      '',
    ].join('\n');
  }

  async start(): Promise<void> {
    writeFileSync(this.configFile, this.config());
    const check = spawnSync('haproxy', ['-c', '-q', '-f', this.configFile], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy refused its configuration: ${check.stderr}`);
    // -db: in the foreground, so it is this process's child and goes with it.
    const child = spawn('haproxy', ['-db', '-f', this.configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    proxies.add(child);
    child.once('exit', () => proxies.delete(child));
    const errors: string[] = [];
    this.child.stderr?.on('data', (d) => errors.push(String(d)));
    for (let i = 0; i < 50; i++) {
      if (await portOpen(this.apiPort)) return;
      if (this.child.exitCode !== null) break;
      await sleep(100);
    }
    throw new Error(`haproxy did not start: ${errors.join('')}`);
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await exited;
  }
}

async function portOpen(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface ClusterOptions {
  db: Exclude<DbKind, 'sqlite'>;
  /** How many management servers. */
  servers: number;
  /** Where data directories, logs and the key go. */
  dir: string;
  /** More environment for every server (heartbeat and failover settings). */
  env?: Record<string, string>;
}

/** N servers on one database behind HAProxy; the servers can be killed and started again. */
export class Cluster {
  readonly settings: ServerSettings[];
  readonly processes: (ServerProcess | undefined)[];
  readonly store: Store;
  readonly proxy: Haproxy;
  /** The API through the proxy: what clients use. */
  readonly api: string;
  private runs = 0;

  private constructor(
    readonly options: ClusterOptions,
    readonly database: { url: string; drop(): Promise<void> },
    settings: ServerSettings[],
    proxy: Haproxy,
  ) {
    this.settings = settings;
    this.processes = settings.map(() => undefined);
    this.store = openStore(database.url);
    this.proxy = proxy;
    this.api = `http://127.0.0.1:${proxy.apiPort}/client/api`;
  }

  /**
   * Creates the database and the cloud key, starts the first server alone (it migrates the fresh
   * database and seeds it), then the others together, then the proxy.
   */
  static async start(options: ClusterOptions): Promise<Cluster> {
    mkdirSync(options.dir, { recursive: true });
    const database = await createDatabase(options.db, options.dir);
    // The one key every server of the cloud encrypts secrets with, made once and handed to each
    // (as an operator distributes it: docs/ha.md); a server making its own could not read the
    // API keys another one registered.
    const keyFile = join(options.dir, 'cloud.key');
    writeFileSync(keyFile, (await import('node:crypto')).randomBytes(32).toString('hex'), { mode: 0o600 });
    const settings: ServerSettings[] = [];
    for (let i = 1; i <= options.servers; i++) {
      const dataDir = join(options.dir, `ms${i}`);
      mkdirSync(dataDir, { recursive: true });
      settings.push({
        dataDir,
        databaseUrl: database.url,
        port: await freePort(),
        agentPort: await freePort(),
        name: `ms${i}`,
        env: { NIMBOSTACK_SECRET_KEY_FILE: keyFile, ...options.env },
      });
    }
    const proxy = new Haproxy(
      options.dir,
      await freePort(),
      await freePort(),
      settings.map((s) => ({ name: s.name!, port: s.port, agentPort: s.agentPort })),
    );
    const cluster = new Cluster(options, database, settings, proxy);
    await cluster.startServer(0);
    await Promise.all(settings.slice(1).map((_, i) => cluster.startServer(i + 1)));
    await proxy.start();
    return cluster;
  }

  get size(): number {
    return this.settings.length;
  }

  /** Starts server i (0-based) again, as a new run under its name. */
  async startServer(i: number): Promise<ServerProcess> {
    const s = new ServerProcess(
      this.settings[i],
      join(this.options.dir, `${this.settings[i].name}-run${++this.runs}.log`),
    );
    this.processes[i] = s;
    await s.started;
    return s;
  }

  /** kill -9 of server i: nothing is flushed or marked down. */
  async killServer(i: number): Promise<void> {
    await this.processes[i]?.kill();
    this.processes[i] = undefined;
  }

  isRunning(i: number): boolean {
    return this.processes[i] !== undefined;
  }

  /** Index of the server named `name` (ms1…). */
  indexOf(name: string): number {
    return this.settings.findIndex((s) => s.name === name);
  }

  /** The agent port of every server, as agents are given the list. */
  agentUrls(): string[] {
    return this.settings.map((s) => `ws://127.0.0.1:${s.agentPort}`);
  }

  /** Which server each host's agent is connected to, and the host's state, from the database. */
  async hostPlacement(): Promise<{ name: string; state: string; server: string | null }[]> {
    const rows = await this.store.db
      .selectFrom('hosts')
      .leftJoin('management_servers', 'management_servers.id', 'hosts.ms_id')
      .select(['hosts.name', 'hosts.state', 'management_servers.name as server'])
      .where('hosts.removed', 'is', null)
      .where('hosts.type', '=', 'Routing')
      .execute();
    return rows.map((r) => ({ name: r.name, state: r.state, server: r.server ?? null }));
  }

  async stop(keep = false): Promise<void> {
    for (let i = 0; i < this.size; i++) await this.processes[i]?.stop();
    await this.proxy.stop();
    await this.store.close();
    if (!keep) await this.database.drop();
  }
}

/**
 * Simulator hosts whose agents run in this process: `agents` agents of `hostsPerAgent` hosts each
 * (named ha-1…ha-N, one fleet so that their addresses differ). Given the list of servers, agent a
 * gets it rotated by a (`static` order), so the agents start spread over the servers and each
 * fails over to the next of its list; given one address (the proxy's agent frontend), they all
 * reconnect through it. Every start, stop and reboot a host is asked for is counted, so a
 * scenario can say that nothing was restarted.
 */
export class SimHosts {
  readonly fleet = new SimulatorFleet();
  readonly agents: Agent[] = [];
  readonly hosts: SimulatorHost[];
  /** Power operations the hosts carried out since `resetCounts`. */
  counts = { starts: 0, stops: 0, reboots: 0 };

  constructor(servers: string | string[], agents: number, hostsPerAgent: number) {
    this.hosts = this.fleet.addHosts('ha', agents * hostsPerAgent);
    for (const h of this.hosts) this.count(h);
    for (let a = 0; a < agents; a++) {
      const hosts = this.hosts.slice(a * hostsPerAgent, (a + 1) * hostsPerAgent);
      const server = Array.isArray(servers)
        ? [...servers.slice(a % servers.length), ...servers.slice(0, a % servers.length)]
        : servers;
      this.agents.push(
        new Agent({
          server,
          algorithm: 'static',
          token: AGENT_TOKEN,
          hosts,
          log: quiet,
          initialBackoffMs: 100,
          maxBackoffMs: 500,
        }),
      );
    }
  }

  private count(h: SimulatorHost): void {
    const { startVm, stopVm, rebootVm } = h;
    h.startVm = (...a) => {
      this.counts.starts++;
      return startVm.apply(h, a);
    };
    h.stopVm = (...a) => {
      this.counts.stops++;
      return stopVm.apply(h, a);
    };
    h.rebootVm = (...a) => {
      this.counts.reboots++;
      return rebootVm.apply(h, a);
    };
  }

  resetCounts(): void {
    this.counts = { starts: 0, stops: 0, reboots: 0 };
  }

  get names(): string[] {
    return this.hosts.map((h) => h.name);
  }

  start(): void {
    for (const a of this.agents) a.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.stop()));
  }
}
