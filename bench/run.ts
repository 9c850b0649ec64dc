/**
 * Nimbostack's scale and speed benchmark (issue 7): builds a simulator cloud of the chosen size,
 * runs the management server as its own process, and measures lists, cheap calls, deploys, the
 * planner, agent load and memory, each next to its floor (raw SQL through the driver, a bare
 * node:http server). Usage and the meaning of every figure: bench/README.md.
 *
 *   npm run bench -- [--hosts 5000] [--vms 100000] [--db sqlite|postgres://postgres@127.0.0.1:5432]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, setPriority, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CloudStackClient } from '@nimbostack/client';
import type { CompiledQuery, SelectQueryBuilder } from 'kysely';
import { PRESENTED_VM_COLUMNS } from '../packages/server/src/compute/vm-presenter.ts';
import { openStore, type Store } from '../packages/server/src/db/connection.ts';
import type { Database } from '../packages/server/src/db/schema.ts';
import { applyScope, type OwnerScope, scopedCount } from '../packages/server/src/iam/access.ts';
import { freePort } from '../packages/server/test/chaos/processes.ts';
import { startServer, type TestServer } from '../packages/server/test/harness.ts';
import { AGENT_TOKEN, buildCloud, type Caller, type Cloud, hostRows, shapeFor } from './lib/cloud.ts';
import { createBenchDatabase } from './lib/database.ts';
import { DbFloor, startHttpFloor } from './lib/floor.ts';
import { type LatencyStats, measure, round, warmUp } from './lib/measure.ts';
import { measurePlanner, type PlannerResult } from './lib/planner.ts';
import {
  cpuPercentOver,
  cpuSeconds,
  cpuSecondsOfCommands,
  machineCpuSeconds,
  peakRssMiB,
  rssMiB,
} from './lib/proc.ts';
import { renderMarkdown } from './lib/report.ts';

const { values: args } = parseArgs({
  options: {
    hosts: { type: 'string', default: '5000' },
    vms: { type: 'string', default: '100000' },
    db: { type: 'string', default: 'sqlite' },
    clients: { type: 'string', default: '16' },
    'deploy-clients': { type: 'string', default: '50' },
    deploys: { type: 'string' },
    'planner-hosts': { type: 'string', default: '5000,50000' },
    'ping-interval': { type: 'string' },
    'ping-hosts': { type: 'string' },
    'results-dir': { type: 'string', default: resolve(import.meta.dirname, 'results') },
    quick: { type: 'boolean', default: false },
    'cpu-profile': { type: 'string' },
    only: { type: 'string' },
    'keep-db': { type: 'string' },
  },
  strict: true,
});

const HOSTS = Number(args.hosts);
const VMS = Number(args.vms);
const CLIENTS = Number(args.clients);
const PAGE_SIZE = 500;
/** The deep page of issue 7: page 150 of 500-VM pages, i.e. three quarters into 100k VMs. */
const DEEP_PAGE = 150;
const DEEP_FRACTION = 0.75;
/** Fewer repetitions in --quick runs (the CI smoke test); the figures are then only indicative. */
const REPEAT = args.quick ? 0.25 : 1;
const reps = (n: number) => Math.max(4, Math.round(n * REPEAT));
/** How long each throughput case runs its load unmeasured first (see warmUp). */
const WARMUP_SECONDS = args.quick ? 0.5 : 2;
/** `--only vms,account,lists,cheap,agent,deploys,planner`: a targeted run of some sections. */
const ONLY = args.only ? new Set(args.only.split(',').map((s) => s.trim())) : undefined;
const runs = (section: string) => !ONLY || ONLY.has(section);
const started = performance.now();
const log = (s: string) =>
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);

const results: Record<string, unknown> = {
  hosts: HOSTS,
  vms: VMS,
  db: args.db === 'sqlite' ? 'sqlite' : 'postgres',
  clients: CLIENTS,
  started: new Date().toISOString(),
  cpus: (await import('node:os')).cpus().length,
  node: process.version,
};
const notes: string[] = [];
const missing = (key: string, why: string) => {
  results[key] = null;
  notes.push(`${key}: ${why}`);
};

const work = mkdtempSync(join(tmpdir(), 'nimbo-bench-'));
const database = await createBenchDatabase(args.db!, work, 'cloud');
let server: TestServer | undefined;
let agent: ChildProcess | undefined;
let serverPid = 0;
// A run stopped by a signal (a timeout, Ctrl-C) skips the `finally` below: its server, agent and
// files would outlive it. The database is left to its next run's fresh name.
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    for (const pid of [serverPid, agent?.pid])
      if (pid)
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
    rmSync(work, { recursive: true, force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });

/**
 * Waits for the server's log line with `msg` after line `from` (the server logs JSON lines) and
 * answers its fields; undefined after `timeoutMs`.
 */
async function logged(
  s: TestServer,
  msg: string,
  from: number,
  timeoutMs: number,
): Promise<Record<string, any> | undefined> {
  const t0 = performance.now();
  for (;;) {
    for (let i = from; i < s.logs.length; i++)
      if (s.logs[i]!.includes(`"${msg}"`)) return JSON.parse(s.logs[i]!);
    if (performance.now() - t0 > timeoutMs) return undefined;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Starts the simulator agent process with the VMs the database says run on its hosts. */
async function startSimAgent(agentUrl: string, db: Store['db'], hosts: number): Promise<ChildProcess> {
  const rows = await db
    .selectFrom('vms')
    .innerJoin('hosts', 'hosts.id', 'vms.host_id')
    .select([
      'hosts.name as host',
      'vms.instance_name',
      'vms.uuid',
      'vms.cpu_number',
      'vms.cpu_speed',
      'vms.memory_mb',
    ])
    .where('vms.state', '=', 'Running')
    .where('vms.removed', 'is', null)
    .execute();
  const running: Record<string, [string, string, number, number, number][]> = {};
  for (const r of rows) {
    const list = running[r.host] ?? [];
    list.push([r.instance_name, r.uuid, r.cpu_number, r.cpu_speed, r.memory_mb * 1024 ** 2]);
    running[r.host] = list;
  }
  const file = join(work, 'running-vms.json');
  writeFileSync(file, JSON.stringify(running));
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'lib/sim-agent.ts'),
      agentUrl,
      AGENT_TOKEN,
      String(hosts),
      file,
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  // The one process answering for every simulated host stands for thousands of machines of their
  // own: at the lowest priority it works in the time the measured parties (server, database,
  // clients) leave, instead of taking a core from them while it answers a stats round.
  if (child.pid) setPriority(child.pid, 19);
  return child;
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}
let store: Store | undefined;
let floor: DbFloor | undefined;
const serverEnv = { NIMBOSTACK_AGENT_PORT: String(await freePort()) };

async function hostsUp(admin: CloudStackClient): Promise<number> {
  // A poll that fails (a reused keep-alive socket the server closed, seen on a loaded machine) is
  // a poll that counted none: the wait's own timeout still ends a server that is gone.
  const r = await admin
    .request<{ count?: number }>('listHosts', { state: 'Up', pagesize: 1, page: 1 })
    .catch((e: Error) => {
      log(`listHosts failed while waiting for hosts (${e.message}); polling on`);
      return {} as { count?: number };
    });
  return r.count ?? 0;
}

async function waitForHostsUp(admin: CloudStackClient, count: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while ((await hostsUp(admin)) < count) {
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`only ${await hostsUp(admin)} of ${count} hosts came Up in ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return (performance.now() - t0) / 1000;
}

/** Whether the server has the command (the compute API is still arriving while this is written). */
async function available(client: CloudStackClient, command: string): Promise<boolean> {
  // Asked up to three times: on a loaded machine one call can fail, and a wrong "no" skips a section.
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await client.request<{ api?: unknown[] }>('listApis', { name: command }).catch(() => undefined);
    if (r) return (r.api?.length ?? 0) > 0;
  }
  return false;
}

/** The SQL listVirtualMachines runs for a scope (count and one page), compiled for this database. */
function vmListSql(
  db: Store['db'],
  scope: OwnerScope,
  page: number,
  hideDestroyed: boolean,
): CompiledQuery[] {
  const owner = { account: 'vms.account_id', domain: 'vms.domain_id' };
  let filtered = db.selectFrom('vms').where('vms.removed', 'is', null);
  if (hideDestroyed) filtered = filtered.where('vms.state', 'not in', ['Destroyed', 'Expunging']);
  const base = applyScope(filtered, scope, owner) as SelectQueryBuilder<Database, 'vms', object>;
  // The count and the page as the server makes them (iam/access.ts scopedCount, vm-commands.ts):
  // the page's ids from the index first, then those rows.
  return [
    scopedCount(filtered, scope, owner).compile(db),
    db
      .selectFrom('vms')
      .select(PRESENTED_VM_COLUMNS.map((c) => `vms.${c}` as const))
      .where(
        'vms.id',
        'in',
        base
          .select('vms.id')
          .orderBy('vms.id')
          .limit(PAGE_SIZE)
          .offset((page - 1) * PAGE_SIZE),
      )
      .orderBy('vms.id')
      .compile(),
  ];
}

/** A deploy through `options`' API, answering once its job says the VM is Running. */
function deployer(cloud: Cloud, options: CloudStackClient['options']): (i: number) => Promise<void> {
  // Polling as often as a CLI does, so job polls do not crowd out the deploys they wait for.
  const client = new CloudStackClient({ ...options, pollInterval: 0.25 });
  return async (i: number) => {
    const r = await client.request<{ jobid: string }>('deployVirtualMachine', {
      zoneid: cloud.zoneUuid,
      serviceofferingid: cloud.serviceOfferingUuid!,
      templateid: cloud.templateUuid!,
      name: `bench-deploy-${i}`,
      ...(cloud.networkUuid ? { networkids: cloud.networkUuid } : {}),
    });
    const done = await client.waitForJob(r.jobid);
    const state = (done.jobresult as { virtualmachine?: { state?: string } } | undefined)?.virtualmachine
      ?.state;
    if (state !== 'Running') throw new Error(`deployed VM is ${state ?? 'missing'}, not Running`);
  };
}

function scopeOf(who: 'root' | 'domainadmin' | 'user', caller: Caller): OwnerScope {
  // Admins' lists without projectid leave project VMs out, as the server's (iam/access.ts listScope).
  if (who === 'root') return { kind: 'all', projects: 'skip' };
  if (who === 'domainadmin') return { kind: 'subtree', path: caller.domainPath, projects: 'skip' };
  return { kind: 'accounts', accountIds: [caller.accountId] };
}

/** Runs `fn` with the server keeping `mib` MiB of rendered lists, then puts the setting back. */
/** Runs `fn` with these settings changed through the API, and puts them back after. */
async function withSettings<T>(values: Record<string, number>, fn: () => Promise<T>): Promise<T> {
  const admin = server!.admin;
  const was = new Map<string, string>();
  for (const [name, value] of Object.entries(values)) {
    const old = ((await admin.request<any>('listConfigurations', { name })).configuration ?? []).find(
      (c: any) => c.name === name,
    )?.value;
    if (old === undefined) throw new Error(`the server has no setting ${name}`);
    was.set(name, old);
    await admin.request('updateConfiguration', { name, value });
  }
  try {
    return await fn();
  } finally {
    for (const [name, value] of was) await admin.request('updateConfiguration', { name, value });
  }
}

/** The rendered list answers the server keeps (http/response-cache.ts), in MiB. */
const withListCache = <T>(mib: number, fn: () => Promise<T>) =>
  withSettings({ 'api.list.cache.size': mib }, fn);

async function listCase(
  name: string,
  client: CloudStackClient,
  command: string,
  params: Record<string, string | number | boolean>,
  opts: { sequential: number; concurrent: number },
): Promise<{ single: LatencyStats; loaded: LatencyStats; server_cpu_ms_per_req: number; cpu: CpuPerCall }> {
  const call = () => client.request(command, params);
  const single = await measure(call, { clients: 1, total: opts.sequential, maxSeconds: 30 });
  await warmUp(call, CLIENTS, WARMUP_SECONDS);
  const account = cpuAccount();
  const loaded = await measure(call, {
    clients: CLIENTS,
    total: opts.concurrent,
    warmup: false,
    maxSeconds: 30,
  });
  const cpu = account(loaded.requests);
  const failed = single.firstError ?? loaded.firstError;
  log(
    `${name.padEnd(44)} 1 client p50 ${String(single.p50).padStart(8)} ms | ${CLIENTS} clients p50 ${loaded.p50} p95 ${loaded.p95} p99 ${loaded.p99} ms, ${loaded.rps} req/s, server CPU ${cpu.server_ms} ms/req${failed ? `  ERROR ${failed}` : ''}`,
  );
  return { single, loaded, server_cpu_ms_per_req: cpu.server_ms, cpu };
}

/** CPU milliseconds per call spent by each party of a case, and what the machine's cores allow. */
interface CpuPerCall {
  server_ms: number;
  /** The database server's processes (PostgreSQL's backends, MariaDB); 0 for SQLite, which runs inside the server. */
  db_ms: number;
  /** This process: the signed clients making the calls. */
  clients_ms: number;
  agent_ms: number;
  /** How busy every core of the machine was meanwhile, whoever used it. */
  machine_busy_pct: number;
  /** Calls per second at which the server, database, clients and agent alone would fill every core. */
  ceiling_per_s: number;
}

const DATABASE_COMMANDS: Record<string, string[]> = { postgres: ['postgres'], mysql: ['mariadbd', 'mysqld'] };

/**
 * Starts counting CPU; the function returned divides what each party used since by the calls made.
 * Unlike latency and rates, CPU per call hardly depends on what else the machine runs, and the
 * ceiling it gives is the bound CPU sets on a rate target for this machine.
 */
function cpuAccount(): (calls: number) => CpuPerCall {
  const dbCommands = DATABASE_COMMANDS[database.dialect] ?? [];
  const snapshot = () => {
    const own = process.cpuUsage();
    return {
      server: cpuSeconds(serverPid),
      db: dbCommands.length ? cpuSecondsOfCommands(dbCommands) : 0,
      clients: (own.user + own.system) / 1e6,
      agent: agent?.pid ? cpuSeconds(agent.pid) : 0,
      machine: machineCpuSeconds(),
    };
  };
  const before = snapshot();
  return (calls) => {
    const after = snapshot();
    const per = (key: 'server' | 'db' | 'clients' | 'agent') => ((after[key] - before[key]) * 1000) / calls;
    const spent = per('server') + per('db') + per('clients') + per('agent');
    const machineTotal = after.machine.total - before.machine.total;
    return {
      server_ms: round(per('server'), 2),
      db_ms: round(per('db'), 2),
      clients_ms: round(per('clients'), 2),
      agent_ms: round(per('agent'), 2),
      machine_busy_pct:
        machineTotal > 0 ? round(((after.machine.busy - before.machine.busy) / machineTotal) * 100, 0) : 0,
      ceiling_per_s: spent > 0 ? round((availableParallelism() * 1000) / spent, 0) : 0,
    };
  };
}

try {
  const shape = shapeFor(HOSTS, VMS);
  results.shape = shape;
  log(
    `database ${database.dialect}; building a cloud of ${HOSTS} hosts, ${VMS} VMs, ${shape.volumes} volumes, ${shape.accounts} accounts, ${shape.domains} domains`,
  );
  server = await startServer({
    databaseUrl: database.url,
    dataDir: join(work, 'server'),
    // A fixed agent port: the agent process reconnects to the restarted server (deploy section).
    env: serverEnv,
    // The profile is written when the server exits; bench/profile-summary.ts reads it.
    nodeArgs: args['cpu-profile'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(args['cpu-profile'])] : [],
  });
  const pid = server.process.pid!;
  serverPid = pid;
  results.ms_rss_mb_empty = rssMiB(pid);
  if (args['ping-interval'])
    await server.admin.request('updateConfiguration', {
      name: 'ping.interval',
      value: args['ping-interval'],
    });
  const pingInterval = Number(
    (
      (await server.admin.request<any>('listConfigurations', { name: 'ping.interval' })).configuration ?? []
    ).find((c: any) => c.name === 'ping.interval')?.value ?? 60,
  );
  store = openStore(database.url);
  const cloud: Cloud = await buildCloud(server, store, shape, log);
  notes.push(...cloud.notes);
  Object.assign(results, {
    rows: cloud.rows,
    build_api_s: round(cloud.apiSetupSeconds, 1),
    build_bulk_s: round(cloud.bulkSeconds, 1),
  });

  // The one agent process stands for every host and writes each host's HA heartbeat record to
  // the zone's pool (ha.heartbeat.interval, 10 s): 25,000 hosts make 2,500 file writes a second
  // in that process, which then falls behind on a busy machine and fences its own hosts (stops
  // their VMs). Real hosts each write their own, and the server reads none of them. Above 5,000
  // hosts the interval grows with the count (500 writes a second), the timeout with it.
  const beatSeconds = Math.ceil(Math.max(HOSTS, Number(args['ping-hosts'] ?? 0)) / 500);
  if (beatSeconds > 10) {
    // The admin's keep-alive socket idled through the bulk build: the server may have closed it.
    const configure = async (name: string, value: number) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await server!.admin.request('updateConfiguration', { name, value: String(value) });
        } catch (e) {
          if (attempt === 3) throw e;
        }
      }
    };
    await configure('ha.heartbeat.interval', beatSeconds);
    await configure('ha.heartbeat.timeout', 4 * beatSeconds);
    notes.push(
      `HA heartbeats every ${beatSeconds} s (timeout ${4 * beatSeconds} s): one agent writes them all`,
    );
  }
  agent = await startSimAgent(server.agentUrl, store.db, HOSTS);
  const upSeconds = await waitForHostsUp(server.admin, HOSTS, 300_000);
  results.hosts_up_s = round(upSeconds, 1);
  log(`${HOSTS} simulated hosts Up ${upSeconds.toFixed(1)} s after their agent started`);
  results.ms_rss_mb_built = rssMiB(pid);

  floor = await DbFloor.open(database.dialect, database.url);
  const floorRuns = reps(20);
  const http = await startHttpFloor();
  const httpClient = (i: number) =>
    fetch(http.url, { method: 'GET', headers: { 'x-n': String(i) } }).then((r) => r.text());
  await warmUp(httpClient, CLIENTS, WARMUP_SECONDS);
  const floorHttp = await measure(httpClient, { clients: CLIENTS, total: reps(4000), warmup: false });
  await http.stop();
  results.floor_http_rps = floorHttp.rps;
  log(`floor: bare node:http with ${CLIENTS} clients ${floorHttp.rps} req/s (p50 ${floorHttp.p50} ms)`);

  // ---- listVirtualMachines ----
  const callers = { root: cloud.root, domainadmin: cloud.domainAdmin, user: cloud.user } as const;
  const vmLists = await available(cloud.root.client, 'listVirtualMachines');
  const listVms: Record<string, unknown> = {};
  if (!vmLists) {
    for (const key of [
      'list_vms_page_ms_p50',
      'list_vms_deep_page_ms_p50',
      'list_vms_rps',
      'list_account_10k_ms',
    ])
      missing(key, 'listVirtualMachines is not registered on this server');
  }
  for (const [who, caller] of Object.entries(callers) as [keyof typeof callers, Caller][]) {
    if (!runs('vms')) break;
    const scope = scopeOf(who, caller);
    const base: Record<string, string | number | boolean> = who === 'user' ? {} : { listall: true };
    const [countRow] = (await floor.run(vmListSql(store.db, scope, 1, who === 'user')[0])) as {
      count: number;
    }[];
    const visible = Number(countRow.count);
    const pages = Math.max(1, Math.ceil(visible / PAGE_SIZE));
    const deep =
      pages >= DEEP_PAGE / DEEP_FRACTION ? DEEP_PAGE : Math.max(1, Math.round(pages * DEEP_FRACTION));
    const entry: Record<string, unknown> = { visible, pages, deep_page: deep };
    for (const [label, page] of [
      ['page', 1],
      ['deep_page', deep],
    ] as const) {
      entry[`floor_db_${label}_ms`] = await floor.timeMs(
        vmListSql(store.db, scope, page, who === 'user'),
        floorRuns,
      );
      if (!vmLists) continue;
      for (const details of ['all', 'min']) {
        const params = {
          ...base,
          page,
          pagesize: PAGE_SIZE,
          ...(details === 'min' ? { details: 'min' } : {}),
        };
        entry[`${label}_${details}`] = await listCase(
          `listVirtualMachines ${who} ${label === 'page' ? 'page 1' : `page ${deep}`} details=${details}`,
          caller.client,
          'listVirtualMachines',
          params,
          {
            sequential: reps(12),
            concurrent: reps(96),
          },
        );
      }
    }
    log(
      `floor: listVirtualMachines SQL as ${who} (${visible} VMs visible): page 1 ${entry.floor_db_page_ms} ms, page ${deep} ${entry.floor_db_deep_page_ms} ms`,
    );
    listVms[who] = entry;
  }
  results.list_vms = listVms;
  const rootVms = (listVms.root ?? {}) as Record<string, any>;
  results.floor_db_page_ms = rootVms.floor_db_page_ms ?? null;
  results.floor_db_deep_page_ms = rootVms.floor_db_deep_page_ms ?? null;
  if (vmLists && runs('vms')) {
    results.list_vms_page_ms_p50 = rootVms.page_all.single.p50;
    results.list_vms_deep_page_ms_p50 = rootVms.deep_page_all.single.p50;
    results.list_vms_page_min_ms_p50 = rootVms.page_min.single.p50;
    results.list_vms_rps = rootVms.page_all.loaded.rps;
    results.list_vms_page_ms_p95_loaded = rootVms.page_all.loaded.p95;
    results.list_vms_page_ms_p99_loaded = rootVms.page_all.loaded.p99;
    // The same case with nothing kept (http/response-cache.ts): what computing every page costs.
    const uncached = await withListCache(0, () =>
      listCase(
        'listVirtualMachines root page 1 details=all, nothing kept',
        cloud.root.client,
        'listVirtualMachines',
        { listall: true, page: 1, pagesize: PAGE_SIZE },
        { sequential: reps(12), concurrent: reps(96) },
      ),
    ).catch((e: Error) => {
      notes.push(`list_vms_rps_uncached: not measured (${e.message})`);
      return undefined;
    });
    rootVms.page_all_uncached = uncached;
    results.list_vms_rps_uncached = uncached?.loaded.rps ?? null;
    results.list_vms_uncached_cpu_ms = uncached?.server_cpu_ms_per_req ?? null;
    results.list_vms_cpu_ms = rootVms.page_all.server_cpu_ms_per_req;
    // The floor of the page throughput: the same bytes from a bare node:http server, fetched and
    // parsed by the same number of clients on the same cores (a page of 500 VMs is ~800 KB).
    const page = await cloud.root.client.request('listVirtualMachines', {
      listall: true,
      page: 1,
      pagesize: PAGE_SIZE,
    });
    const bodyFile = join(work, 'page-1.json');
    writeFileSync(bodyFile, JSON.stringify({ listvirtualmachinesresponse: page }));
    const pageHttp = await startHttpFloor(bodyFile);
    const fetchPage = () => fetch(pageHttp.url).then((r) => r.json());
    await warmUp(fetchPage, CLIENTS, WARMUP_SECONDS);
    const pageFloor = await measure(fetchPage, {
      clients: CLIENTS,
      total: reps(96),
      warmup: false,
      maxSeconds: 30,
    });
    await pageHttp.stop();
    results.floor_http_page_rps = pageFloor.rps;
    results.floor_http_page_kb = Math.round(statSync(bodyFile).size / 1024);
    log(
      `floor: the same page (${results.floor_http_page_kb} KB) from bare node:http, ${CLIENTS} clients fetching and parsing it: ${pageFloor.rps} req/s`,
    );
  }

  // ---- one account's VMs, all pages ----
  const userScope = scopeOf('user', cloud.user);
  const accountPages = Math.max(1, Math.ceil(shape.bigAccountVms / PAGE_SIZE));
  const allPagesSql = Array.from({ length: accountPages }, (_, i) =>
    vmListSql(store!.db, userScope, i + 1, true),
  ).flat();
  if (runs('account')) results.floor_db_account_10k_ms = await floor.timeMs(allPagesSql, reps(5));
  results.account_vms = shape.bigAccountVms;
  results.account_pages = accountPages;
  if (vmLists && runs('account')) {
    for (const details of ['all', 'min']) {
      const listAll = async () => {
        for (let page = 1; page <= accountPages; page++)
          await cloud.user.client.request('listVirtualMachines', {
            page,
            pagesize: PAGE_SIZE,
            ...(details === 'min' ? { details: 'min' } : {}),
          });
      };
      const stats = await measure(listAll, { clients: 1, total: reps(5), maxSeconds: 30 });
      results[details === 'all' ? 'list_account_10k_ms' : 'list_account_10k_min_ms'] = stats.p50;
      log(
        `listVirtualMachines: ${shape.bigAccountVms} VMs of one account in ${accountPages} pages, details=${details}: ${stats.p50} ms${stats.firstError ? ` ERROR ${stats.firstError}` : ''}`,
      );
    }
    // The pages above are mostly kept answers once the earlier cases computed them: this is what
    // the account's pages cost when every one is computed (after any commit, on a busy cloud).
    const computed = await withListCache(0, () =>
      measure(
        async () => {
          for (let page = 1; page <= accountPages; page++)
            await cloud.user.client.request('listVirtualMachines', { page, pagesize: PAGE_SIZE });
        },
        { clients: 1, total: reps(5), maxSeconds: 30 },
      ),
    );
    results.list_account_10k_uncached_ms = computed.p50;
    log(
      `listVirtualMachines: the same ${accountPages} pages, details=all, nothing kept: ${computed.p50} ms${computed.firstError ? ` ERROR ${computed.firstError}` : ''}`,
    );
  }
  log(`floor: the same ${accountPages} pages' SQL ${results.floor_db_account_10k_ms} ms`);

  // ---- other lists ----
  const otherLists: Record<string, unknown> = {};
  for (const [command, params] of [
    ['listHosts', { page: 1, pagesize: PAGE_SIZE }],
    ['listVolumes', { listall: true, page: 1, pagesize: PAGE_SIZE }],
    ['listAccounts', { listall: true, page: 1, pagesize: PAGE_SIZE }],
    ['listEvents', { listall: true, page: 1, pagesize: PAGE_SIZE }],
  ] as const) {
    if (!runs('lists')) break;
    if (!(await available(cloud.root.client, command))) {
      otherLists[command] = null;
      notes.push(`${command}: not registered on this server`);
      continue;
    }
    otherLists[command] = await listCase(
      `${command} root page 1 of ${PAGE_SIZE}`,
      cloud.root.client,
      command,
      params,
      { sequential: reps(12), concurrent: reps(96) },
    );
  }
  results.other_lists = otherLists;

  // ---- cheap calls ----
  if (runs('cheap')) {
    const zones = await listCase(
      'listZones',
      cloud.root.client,
      'listZones',
      {},
      { sequential: reps(50), concurrent: reps(3000) },
    );
    const job = await listCase(
      'queryAsyncJobResult',
      cloud.root.client,
      'queryAsyncJobResult',
      { jobid: cloud.jobId },
      { sequential: reps(50), concurrent: reps(3000) },
    );
    results.cheap = { listZones: zones, queryAsyncJobResult: job };
    results.list_zones_rps = zones.loaded.rps;
    results.query_job_rps = job.loaded.rps;
    results.cheap_rps = Math.min(zones.loaded.rps, job.loaded.rps);
  }
  results.ms_rss_mb = rssMiB(pid);
  results.ms_rss_mb_peak = peakRssMiB(pid);

  // ---- agent load: every host pinging, nothing else running ----
  const window = args.quick ? Math.min(pingInterval, 10) : Math.max(pingInterval, 30);
  if (runs('agent')) {
    results.ping_interval_s = pingInterval;
    results.agent_cpu_pct = await cpuPercentOver(pid, window);
    results.agent_cpu_window_s = window;
    log(
      `agent load: ${HOSTS} hosts pinging every ${pingInterval} s: server CPU ${results.agent_cpu_pct}% of one core over ${window} s, RSS ${rssMiB(pid)} MiB`,
    );
    // The same with the statistics rounds off (each minute they ask every host getHostStats and
    // getVmStats, as upstream's StatsCollector does): what the pings alone cost. The round under
    // way spreads over half its interval; the window starts after it ends.
    const statsMs = 60_000;
    results.agent_cpu_pct_pings_only = await withSettings(
      { 'host.stats.interval': 86_400_000, 'vm.stats.interval': 86_400_000 },
      async () => {
        await new Promise((r) => setTimeout(r, args.quick ? 1000 : statsMs / 2 + 5000));
        return cpuPercentOver(pid, window);
      },
    );
    log(
      `agent load, statistics rounds off: server CPU ${results.agent_cpu_pct_pings_only}% of one core over ${window} s`,
    );
  }
  // ---- deploys ----
  if (!runs('deploys')) {
    // not asked for
  } else if (!(await available(cloud.root.client, 'deployVirtualMachine'))) {
    missing('deploys_per_min', 'deployVirtualMachine is not registered on this server');
  } else if (!cloud.templateUuid || !cloud.serviceOfferingUuid) {
    missing('deploys_per_min', 'no featured template or fixed service offering to deploy from');
  } else {
    const total = Number(args.deploys ?? (args.quick ? 20 : 300));
    const deployClients = Math.min(Number(args['deploy-clients']), total);
    const deploy = deployer(cloud, cloud.root.client.options);
    // The network's first deploy since the server started is timed on its own: on this fresh
    // cloud it creates the network's router, which boots with that VM's entry and a few hundred
    // others and gets the rest in the background (network/router-entries.ts); the fill's end is
    // in the server's log. The sustained rate is what follows.
    const logsBefore = server.logs.length;
    const cold = performance.now();
    await deploy(total);
    results.deploy_cold_ms = round(performance.now() - cold, 0);
    log(`deploys: the network's first deploy since the server started took ${results.deploy_cold_ms} ms`);
    const fill = await logged(server, 'router filled with its VM entries', logsBefore, 300_000);
    results.router_fill_ms = fill?.ms ?? null;
    results.router_fill_entries = fill?.sent ?? null;
    log(
      `deploys: the new router got ${fill?.sent ?? '?'} more VM entries in the background in ${fill?.ms ?? '?'} ms`,
    );
    const account = cpuAccount();
    const stats = await measure(deploy, { clients: deployClients, total, warmup: false, maxSeconds: 180 });
    results.deploy = stats;
    results.deploy_cpu = account(Math.max(1, stats.requests - stats.errors));
    if (stats.errors === stats.requests)
      missing('deploys_per_min', `every deploy failed: ${stats.firstError}`);
    else {
      results.deploys_per_min = round(((stats.requests - stats.errors) / stats.requests) * stats.rps * 60, 0);
      if (stats.errors > 0)
        notes.push(`deploys: ${stats.errors} of ${stats.requests} failed (first: ${stats.firstError})`);
    }
    log(
      `deploys: ${total} by ${deployClients} clients: ${results.deploys_per_min ?? 'failed'} VMs/min to Running (p50 ${stats.p50} ms per deploy)${stats.firstError ? ` ERROR ${stats.firstError}` : ''}`,
    );
    // The router's own boot, no VM start around it: restartNetwork cleanup=true destroys it and
    // boots a new one (its entries then follow in the background, as above).
    if (cloud.networkUuid) {
      const before = server.logs.length;
      const t0 = performance.now();
      await cloud.root.client.call('restartNetwork', { id: cloud.networkUuid, cleanup: true });
      results.router_boot_ms = round(performance.now() - t0, 0);
      const refill = await logged(server, 'router filled with its VM entries', before, 300_000);
      results.router_refill_ms = refill?.ms ?? null;
      log(
        `router: restartNetwork cleanup=true (a new router booted) ${results.router_boot_ms} ms; its entries filled in ${refill?.ms ?? '?'} ms`,
      );
    }
  }

  // ---- more pinging hosts (optional): add rows up to --ping-hosts, one agent presents them all ----
  if (runs('agent') && args['ping-hosts'] && Number(args['ping-hosts']) > HOSTS) {
    try {
      const more = Number(args['ping-hosts']);
      await stopProcess(agent);
      const clusters = await store.db
        .selectFrom('clusters')
        .select(['id', 'pod_id'])
        .where('zone_id', '=', cloud.zoneId)
        .orderBy('id')
        .execute();
      const rows = hostRows(
        HOSTS + 1,
        more,
        (n) => {
          const c = clusters[(n - 1) % clusters.length];
          return { zoneId: cloud.zoneId, podId: c.pod_id, clusterId: c.id };
        },
        Date.now(),
      );
      const per = Math.floor(30_000 / Object.keys(rows[0]).length);
      await store.db.transaction().execute(async (tx) => {
        for (let i = 0; i < rows.length; i += per)
          await tx
            .insertInto('hosts')
            .values(rows.slice(i, i + per) as never)
            .execute();
      });
      agent = await startSimAgent(server.agentUrl, store.db, more);
      const s = await waitForHostsUp(server.admin, more, 300_000);
      results.agent_cpu_pct_more = await cpuPercentOver(pid, window);
      results.agent_more_hosts = more;
      results.ms_rss_mb_more_hosts = rssMiB(pid);
      log(
        `agent load: ${more} hosts Up in ${s.toFixed(1)} s; pinging every ${pingInterval} s: server CPU ${results.agent_cpu_pct_more}% of one core, RSS ${results.ms_rss_mb_more_hosts} MiB`,
      );
    } catch (e) {
      notes.push(`agent load at ${args['ping-hosts']} hosts: ${(e as Error).message}`);
    }
  }
  // ---- the first deploy after a server restart, the network's router running on ----
  if (runs('deploys') && cloud.networkUuid && results.deploy_cold_ms != null) {
    await server.stop({ keepData: true });
    server = await startServer({ databaseUrl: database.url, dataDir: join(work, 'server'), env: serverEnv });
    serverPid = server.process.pid!;
    // The agent reconnects on its own (same agent port); the router's host coming back has the
    // router's entries compared by digest (router-entries.ts checkRoutersOn).
    const check = await logged(server, 'router entries checked after its host reconnected', 0, 300_000);
    results.router_check_ms = check?.ms ?? null;
    results.router_check_repaired = check?.repaired ?? null;
    const again = deployer(cloud, { ...cloud.root.client.options, url: server.api });
    const t0 = performance.now();
    await again(Number(args.deploys ?? (args.quick ? 20 : 300)) + 1);
    results.deploy_cold_restart_ms = round(performance.now() - t0, 0);
    log(
      `deploys: after a server restart, the router's entries checked by digest in ${check?.ms ?? '?'} ms (${check?.repaired ?? '?'} repaired); the first deploy then took ${results.deploy_cold_restart_ms} ms`,
    );
  }
  await stopProcess(agent);
  await floor.close();
  floor = undefined;
  await store.close();
  store = undefined;
  await server.stop();
  server = undefined;

  // ---- the planner, in this process ----
  const plannerSizes = runs('planner') ? args['planner-hosts']!.split(',').map(Number) : [];
  const planner: Record<string, PlannerResult | null> = {};
  for (const size of plannerSizes) {
    try {
      planner[size] = await measurePlanner(
        await createBenchDatabase(args.db!, work, `planner${size}`),
        size,
        reps(200),
      );
      log(
        `planner: ${size} hosts: p50 ${planner[size]!.p50} ms, p95 ${planner[size]!.p95} ms per decision (floor: one committed UPDATE ${planner[size]!.floor_write_ms} ms)${planner[size]!.firstError ? ` ERROR ${planner[size]!.firstError}` : ''}`,
      );
    } catch (e) {
      planner[size] = null;
      notes.push(`planner at ${size} hosts: ${(e as Error).message}`);
    }
  }
  results.planner = planner;
  results.planner_hosts = plannerSizes;
  results.planner_ms_p50 = plannerSizes.length ? (planner[plannerSizes[0]]?.p50 ?? null) : null;
  results.floor_planner_write_ms = plannerSizes.length
    ? (planner[plannerSizes[0]]?.floor_write_ms ?? null)
    : null;
  results.planner_ms_p50_large = plannerSizes[1] ? (planner[plannerSizes[1]]?.p50 ?? null) : null;

  // ---- ratios to the floor ----
  const ratio = (a: unknown, b: unknown) =>
    typeof a === 'number' && typeof b === 'number' && b > 0 ? round(a / b, 1) : null;
  results.ratios = {
    list_vms_page_to_db: ratio(results.list_vms_page_ms_p50, results.floor_db_page_ms),
    list_vms_deep_page_to_db: ratio(results.list_vms_deep_page_ms_p50, results.floor_db_deep_page_ms),
    list_account_10k_to_db: ratio(results.list_account_10k_ms, results.floor_db_account_10k_ms),
    list_vms_rps_of_http: ratio(results.list_vms_rps, results.floor_http_rps),
    list_vms_rps_of_page_floor: ratio(results.list_vms_rps, results.floor_http_page_rps),
    cheap_rps_of_http: ratio(results.cheap_rps, results.floor_http_rps),
  };
  if (ONLY) notes.push(`targeted run: only ${[...ONLY].join(', ')}`);
  results.notes = notes;
  results.total_s = round((performance.now() - started) / 1000, 0);

  const dir = args['results-dir']!;
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const base = `${stamp}-${results.db}-${HOSTS}h-${VMS}vm`;
  const json = `${JSON.stringify(results, null, 2)}\n`;
  const markdown = renderMarkdown(results);
  writeFileSync(join(dir, `${base}.json`), json);
  writeFileSync(join(dir, `${base}.md`), markdown);
  // A targeted run (--only) is not a full result: it never replaces latest.*.
  if (!ONLY) {
    writeFileSync(join(dir, 'latest.json'), json);
    writeFileSync(join(dir, 'latest.md'), markdown);
  }
  // `npm run lint` checks every JSON file in the tree; results are written as its formatter would.
  spawnSync(
    join(import.meta.dirname, '../node_modules/.bin/biome'),
    ['format', '--write', join(dir, `${base}.json`), join(dir, 'latest.json')],
    {
      stdio: 'ignore',
    },
  );
  process.stdout.write(
    `\n${markdown}\nresults: ${join(dir, `${base}.json`)}${ONLY ? '' : ' (also latest.json, latest.md)'}\n`,
  );
} finally {
  await stopProcess(agent).catch(() => undefined);
  await floor?.close().catch(() => undefined);
  await store?.close().catch(() => undefined);
  await server?.stop().catch(() => undefined);
  if (args['keep-db'] && database.dialect === 'sqlite')
    copyFileSync(database.url.replace(/^sqlite:/, ''), resolve(args['keep-db']));
  if (args['keep-db'] && database.dialect === 'postgres') log(`database kept: ${database.url}`);
  else await database.drop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}
