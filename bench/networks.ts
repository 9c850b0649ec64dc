/**
 * The Advanced-zone networking benchmark (issue 13): a simulated Advanced zone of 1,000 isolated
 * networks (a running router, 1–2 VMs, a source-NAT address and one more address each) and about
 * 10,000 rules, with the management server as its own process (as `npm start` runs it) and the
 * simulated hosts in an agent process. Measures a rule change until the router has it
 * (createPortForwardingRule's job, one client and 8 in parallel; applyNetworkRules inside the
 * server as the rule set grows), listPortForwardingRules and listPublicIpAddresses pages, and the
 * server's memory, each next to its target and floor. Usage and the meaning of every figure:
 * bench/README.md ("Advanced networking").
 *
 *   npm run bench:networks -- [--networks 1000] [--accounts 100] [--hosts 100] [--quick]
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CloudStackClient } from '@nimbostack/client';
import SQLite from 'better-sqlite3';
import type { CompiledQuery, SelectQueryBuilder } from 'kysely';
import { openStore, type Store } from '../packages/server/src/db/connection.ts';
import type { Database } from '../packages/server/src/db/schema.ts';
import { applyScope, type OwnerScope } from '../packages/server/src/iam/access.ts';
import { HELD_STATES } from '../packages/server/src/network/public-ips.ts';
import { startServer, type TestServer } from '../packages/server/test/harness.ts';
import { AGENT_TOKEN } from './lib/cloud.ts';
import { createBenchDatabase } from './lib/database.ts';
import { DbFloor } from './lib/floor.ts';
import { type LatencyStats, measure, medianMs, round, warmUp } from './lib/measure.ts';
import {
  addCopiedCounts,
  type Copy,
  type CopyTarget,
  copyNetworks,
  readSample,
  type Sample,
  settleCapacity,
} from './lib/network-bulk.ts';
import { renderNetworksMarkdown } from './lib/network-report.ts';
import {
  type ApiNetwork,
  apiNetwork,
  buildZone,
  keyClient,
  type NetworkPlan,
  VNI_RANGE,
  type Zone,
} from './lib/network-zone.ts';
import { cpuSeconds, peakRssMiB, rssMiB } from './lib/proc.ts';

const { values: args } = parseArgs({
  options: {
    networks: { type: 'string' },
    accounts: { type: 'string' },
    hosts: { type: 'string' },
    'api-networks': { type: 'string' },
    growth: { type: 'string' },
    db: { type: 'string', default: 'sqlite' },
    clients: { type: 'string', default: '8' },
    'results-dir': { type: 'string', default: resolve(import.meta.dirname, 'results') },
    quick: { type: 'boolean', default: false },
    /** The server runs with --cpu-prof; read the profile with `npx tsx bench/profile-summary.ts DIR/<file>`. */
    'cpu-profile': { type: 'string' },
    /** Keep the SQLite database of the run at this path (for EXPLAIN QUERY PLAN and the like). */
    'keep-db': { type: 'string' },
  },
  strict: true,
});

const QUICK = args.quick!;
const NETWORKS = Number(args.networks ?? (QUICK ? 100 : 1000));
const ACCOUNTS = Number(args.accounts ?? Math.max(10, Math.round(NETWORKS / 10)));
const HOSTS = Number(args.hosts ?? Math.max(10, Math.round(NETWORKS / 10)));
/** Networks built through the API besides the three samples and the growth networks. */
const API_NETWORKS = Number(args['api-networks'] ?? (QUICK ? 5 : 20));
/** Rules per network of the growth networks (applyNetworkRules as the set grows). */
const GROWTH = (args.growth ?? (QUICK ? '10,200' : '10,50,200,1000')).split(',').map(Number);
const CLIENTS = Number(args.clients);
const PAGE_SIZE = 500;
const REPEAT = QUICK ? 0.25 : 1;
const reps = (n: number) => Math.max(4, Math.round(n * REPEAT));
const WARMUP_SECONDS = QUICK ? 0.5 : 2;
/** Job polling of the round-trip cases: often enough that polling adds little to what is timed. */
const POLL_SECONDS = 0.005;
const started = performance.now();
const log = (s: string) =>
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);

const results: Record<string, unknown> = {
  bench: 'networks',
  db: args.db === 'sqlite' ? 'sqlite' : 'postgres',
  networks: NETWORKS,
  accounts: ACCOUNTS,
  hosts: HOSTS,
  clients: CLIENTS,
  quick: QUICK,
  started: new Date().toISOString(),
  cpus: (await import('node:os')).cpus().length,
  node: process.version,
};
const notes: string[] = [];

const work = mkdtempSync(join(tmpdir(), 'nimbo-bench-networks-'));
const database = await createBenchDatabase(args.db!, work, 'networks');
let server: TestServer | undefined;
let agent: ChildProcess | undefined;
let store: Store | undefined;
let floor: DbFloor | undefined;

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/** The agent process and a way to hand it what the bulk path is about to write. */
function startAgent(agentUrl: string): {
  child: ChildProcess;
  push: (file: string) => Promise<string>;
  /** When each of the benchmark's port forwards reached its router (see network-agent.ts). */
  arrived: () => Promise<Map<string, number>>;
} {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, 'lib/network-agent.ts'),
      agentUrl,
      AGENT_TOKEN,
      String(HOSTS),
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const lines: Interface = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (l) => waiting.shift()?.(l));
  const ask = (line: string, ok: string) =>
    new Promise<string>((resolve, reject) => {
      waiting.push((l) => (l.startsWith(ok) ? resolve(l) : reject(new Error(`agent: ${l}`))));
      child.stdin!.write(`${line}\n`);
    });
  return {
    child,
    push: (file) => ask(file, 'ok'),
    arrived: async () =>
      new Map(
        Object.entries(JSON.parse((await ask('arrived', 'arrived ')).slice(8)) as Record<string, number>),
      ),
  };
}

async function waitForHostsUp(admin: CloudStackClient, count: number, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    const r = await admin.request<{ count?: number }>('listHosts', { state: 'Up', pagesize: 1, page: 1 });
    if ((r.count ?? 0) >= count) return;
    if (performance.now() - t0 > timeoutMs) throw new Error(`only ${r.count ?? 0} of ${count} hosts came Up`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A growth network's plan: `rules` rules, mostly port forwards (each with its firewall rule). */
function growthPlan(rules: number): NetworkPlan {
  const portForwards = Math.max(0, Math.floor((rules - 2) / 2));
  return {
    name: `growth-${rules}`,
    vms: 1,
    portForwards,
    firewall: rules - 2 * portForwards - 1,
    egress: 1,
    loadBalancer: false,
  };
}

/** The three shapes networks take here, each of 10 rules. */
const SHAPES: Record<'a' | 'b' | 'c', Omit<NetworkPlan, 'name'>> = {
  // two VMs, 4 port forwards (+ their 4 firewall rules), a firewall rule and an egress rule
  a: { vms: 2, portForwards: 4, firewall: 1, egress: 1, loadBalancer: false },
  // the same with one VM
  b: { vms: 1, portForwards: 4, firewall: 1, egress: 1, loadBalancer: false },
  // two VMs behind a load balancer (+ its firewall rule), 3 port forwards, firewall, egress
  c: { vms: 2, portForwards: 3, firewall: 1, egress: 1, loadBalancer: true },
};
const shapeOf = (k: number): 'a' | 'b' | 'c' => (k % 50 === 25 ? 'c' : k % 2 === 1 ? 'b' : 'a');

function rulesOf(plan: Omit<NetworkPlan, 'name'>): number {
  return plan.portForwards * 2 + plan.firewall + plan.egress + (plan.loadBalancer ? 2 : 0);
}

/** Statistics of a list of samples, in ms. */
function stats(xs: number[]): { n: number; p50: number; p95: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number) =>
    s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
  return { n: s.length, p50: round(at(50)), p95: round(at(95)), max: round(s[s.length - 1] ?? Number.NaN) };
}

// ---- the SQL the lists run (their count and page), compiled for this database: the floors ----

function pfListSql(db: Store['db'], scope: OwnerScope, page: number): CompiledQuery[] {
  const q = applyScope(
    db
      .selectFrom('ip_rules')
      .where('ip_rules.purpose', '=', 'PortForwarding')
      .where('ip_rules.state', '!=', 'Revoke'),
    scope,
    { account: 'ip_rules.account_id', domain: 'ip_rules.domain_id' },
  ) as SelectQueryBuilder<Database, 'ip_rules', object>;
  return [
    q.select((eb) => eb.fn.countAll<number>().as('count')).compile(),
    q
      .selectAll('ip_rules')
      .orderBy('ip_rules.id')
      .limit(PAGE_SIZE)
      .offset((page - 1) * PAGE_SIZE)
      .compile(),
  ];
}

function ipListSql(
  db: Store['db'],
  scope: OwnerScope,
  page: number,
  allocatedOnly: boolean,
): CompiledQuery[] {
  const held = [...HELD_STATES, 'Releasing'];
  let q = db.selectFrom('public_ips').innerJoin('vlan_ip_ranges', 'vlan_ip_ranges.id', 'public_ips.range_id');
  if (allocatedOnly)
    q = applyScope(q.where('public_ips.state', 'in', held), scope, {
      account: 'public_ips.account_id',
      domain: 'public_ips.domain_id',
    }) as typeof q;
  else {
    // As a root admin asks: allocated ones in scope, and every Free one.
    const scoped = applyScope(
      db.selectFrom('public_ips').select('public_ips.id').where('public_ips.state', 'in', held),
      scope,
      {
        account: 'public_ips.account_id',
        domain: 'public_ips.domain_id',
      },
    );
    q = q.where((eb) => eb.or([eb('public_ips.id', 'in', scoped), eb('public_ips.state', '=', 'Free')]));
  }
  return [
    q.select((eb) => eb.fn.countAll<number>().as('count')).compile(),
    q
      .selectAll('public_ips')
      .orderBy('public_ips.ip_num')
      .orderBy('public_ips.id')
      .limit(PAGE_SIZE)
      .offset((page - 1) * PAGE_SIZE)
      .compile(),
  ];
}

const sqliteFile = () => database.url.replace(/^(sqlite|file):(\/\/)?/, '');

/** SQLite's plan of each query (EXPLAIN QUERY PLAN), one line per step. */
function queryPlans(file: string, queries: CompiledQuery[]): string[][] {
  // better-sqlite3 is the server's driver; a read-only connection of its own.
  const db = new SQLite(file, { readonly: true });
  try {
    return queries.map((q) =>
      (
        db.prepare(`explain query plan ${q.sql}`).all(...(q.parameters as unknown[])) as { detail: string }[]
      ).map((r) => r.detail),
    );
  } finally {
    db.close();
  }
}

try {
  server = await startServer({
    databaseUrl: database.url,
    dataDir: join(work, 'server'),
    nodeArgs: [
      '--import',
      join(import.meta.dirname, 'lib/network-hooks.ts'),
      ...(args['cpu-profile'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(args['cpu-profile'])] : []),
    ],
  });
  const pid = server.process.pid!;
  results.ms_rss_mb_empty = rssMiB(pid);
  store = openStore(database.url);
  const db = store.db;
  const publicIps = Math.min(4000, NETWORKS * 2 + GROWTH.length * 2 + 200);
  const t0 = performance.now();
  const zone: Zone = await buildZone(
    server,
    store,
    {
      networks: NETWORKS,
      accounts: ACCOUNTS,
      hosts: HOSTS,
      clusters: Math.max(1, Math.ceil(HOSTS / 50)),
      publicIps,
    },
    log,
  );
  const agentProc = startAgent(server.agentUrl);
  agent = agentProc.child;
  await waitForHostsUp(server.admin, HOSTS, 120_000);
  log(`${HOSTS} simulated hosts Up`);

  // Clients of the owners, signing with their own keys (made on first use).
  const clients = new Map<number, CloudStackClient>();
  const clientOf = async (accountIndex: number) => {
    let c = clients.get(accountIndex);
    if (!c) {
      c = await keyClient(server!, zone.accounts[accountIndex]!.userUuid, POLL_SECONDS);
      clients.set(accountIndex, c);
    }
    return c;
  };
  const big = zone.accounts[0]!;

  // ---- through the API: the samples the bulk path copies, the growth networks, a sample more ----
  const apiBuilt: { plan: NetworkPlan; net: ApiNetwork; accountIndex: number }[] = [];
  const samples: Record<string, Sample> = {};
  let apiRules = 0;
  let apiVms = 0;
  const a0 = performance.now();
  const build = async (plan: NetworkPlan, accountIndex: number) => {
    const net = await apiNetwork(await clientOf(accountIndex), zone, plan);
    apiBuilt.push({ plan, net, accountIndex });
    apiRules += rulesOf(plan);
    apiVms += plan.vms;
    return net;
  };
  for (const [i, key] of (['a', 'b', 'c'] as const).entries()) {
    const net = await build({ name: `sample-${key}`, ...SHAPES[key] }, 1 + (i % (ACCOUNTS - 1)));
    samples[key] = await readSample(store, net.uuid);
  }
  const growth: { rules: number; net: ApiNetwork }[] = [];
  for (const rules of GROWTH) growth.push({ rules, net: await build(growthPlan(rules), 0) });
  const growthSeconds = (performance.now() - a0) / 1000;
  const r0 = performance.now();
  for (let i = 0; i < API_NETWORKS; i++) {
    const key = (['a', 'b', 'c'] as const)[i % 3]!;
    await build({ name: `api-${i}`, ...SHAPES[key] }, i % 10 === 0 ? 0 : 1 + (i % (ACCOUNTS - 1)));
  }
  const representativeSeconds = (performance.now() - r0) / 1000;
  results.api = {
    networks: apiBuilt.length,
    rules: apiRules,
    vms: apiVms,
    seconds: round((performance.now() - a0) / 1000, 1),
    representative_networks: API_NETWORKS,
    representative_seconds: round(representativeSeconds, 1),
    // createNetwork, its deploys, associateIpAddress and 10 rule jobs, one after the other.
    representative_s_per_network: API_NETWORKS ? round(representativeSeconds / API_NETWORKS, 2) : null,
  };
  log(
    `API: ${apiBuilt.length} networks (3 samples, growth ${GROWTH.join('/')} rules in ${growthSeconds.toFixed(1)} s, ${API_NETWORKS} more in ${representativeSeconds.toFixed(1)} s), ${apiVms} VMs, ${apiRules} rules`,
  );

  // ---- the bulk path: the rest, copied from the samples ----
  const b0 = performance.now();
  const hosts = await db
    .selectFrom('hosts')
    .select(['id', 'name', 'pod_id', 'cluster_id'])
    .where('zone_id', '=', zone.zoneId)
    .orderBy('id')
    .execute();
  const users = new Map(
    (await db.selectFrom('users').select(['id', 'account_id']).orderBy('id').execute()).map((u) => [
      u.account_id,
      u.id,
    ]),
  );
  const remaining = Math.max(0, NETWORKS - apiBuilt.length);
  const targets: CopyTarget[] = [];
  const targetShapes: ('a' | 'b' | 'c')[] = [];
  for (let k = 0; k < remaining; k++) {
    const shape = shapeOf(k);
    const owner = k % 10 === 0 ? big : zone.accounts[1 + (k % (ACCOUNTS - 1))]!;
    targetShapes.push(shape);
    targets.push({
      sample: samples[shape]!,
      name: `net-${k}`,
      account: { id: owner.id, name: owner.name, domainId: owner.domainId, userId: users.get(owner.id)! },
    });
  }
  let copies: Copy[] = [];
  if (targets.length) {
    copies = await copyNetworks(store, targets, {
      zoneId: zone.zoneId,
      publicRangeId: zone.publicRangeId,
      vniRange: VNI_RANGE,
      hosts: hosts as { id: number; name: string; pod_id: number; cluster_id: number }[],
      push: async (load) => {
        const file = join(work, 'agent-load.json');
        writeFileSync(file, JSON.stringify(load));
        log(`agent: ${await agentProc.push(file)} (VMs, routers) on their hosts`);
      },
    });
    const domains = await db.selectFrom('domains').select(['id', 'parent_id']).execute();
    const parent = new Map(domains.map((d) => [d.id, d.parent_id]));
    const domainOf = new Map(zone.accounts.map((a) => [a.id, a.domainId]));
    await addCopiedCounts(
      store,
      targets.map((t) => ({ accountId: t.account.id, sample: t.sample })),
      async (accountId) => {
        const chain: number[] = [];
        for (let d: number | null | undefined = domainOf.get(accountId); d != null; d = parent.get(d))
          chain.push(d);
        return chain;
      },
    );
    await settleCapacity(store, zone.zoneId);
  }
  const bulkSeconds = (performance.now() - b0) / 1000;
  const count = async (
    table: 'ip_rules' | 'networks' | 'routers' | 'vms' | 'public_ips',
    where?: (q: any) => any,
  ) => {
    let q: any = db.selectFrom(table).select((eb: any) => eb.fn.countAll().as('n'));
    if (where) q = where(q);
    return Number((await q.executeTakeFirstOrThrow()).n);
  };
  const rows = {
    networks: await count('networks', (q) =>
      q.where('guest_type', '=', 'Isolated').where('removed', 'is', null),
    ),
    routers: await count('routers', (q) => q.where('state', '=', 'Running').where('removed', 'is', null)),
    vms: await count('vms', (q) => q.where('state', '=', 'Running').where('removed', 'is', null)),
    public_ips: await count('public_ips'),
    public_ips_allocated: await count('public_ips', (q) => q.where('state', '=', 'Allocated')),
    rules: await count('ip_rules'),
    port_forwarding_rules: await count('ip_rules', (q) => q.where('purpose', '=', 'PortForwarding')),
    firewall_rules: await count('ip_rules', (q) =>
      q.where('purpose', '=', 'Firewall').where('traffic_type', '=', 'Ingress'),
    ),
    egress_rules: await count('ip_rules', (q) => q.where('traffic_type', '=', 'Egress')),
    load_balancers: await count('ip_rules', (q) => q.where('purpose', '=', 'LoadBalancing')),
  };
  Object.assign(results, {
    rows,
    build_s: round((performance.now() - t0) / 1000, 1),
    build_bulk_s: round(bulkSeconds, 1),
  });
  log(
    `bulk: ${copies.length} networks copied in ${bulkSeconds.toFixed(1)} s; now ${rows.networks} isolated networks, ${rows.routers} running routers, ${rows.vms} VMs, ${rows.public_ips_allocated} of ${rows.public_ips} public addresses allocated, ${rows.rules} rules (${rows.port_forwarding_rules} port forwarding, ${rows.firewall_rules} firewall, ${rows.egress_rules} egress, ${rows.load_balancers} load balancers)`,
  );
  // What the API sees of it: the server lists the copies like the networks it made.
  const seen = await server.admin.request<{ count?: number }>('listNetworks', {
    listall: true,
    pagesize: 1,
    page: 1,
  });
  const routersSeen = await server.admin.request<{ count?: number }>('listRouters', {
    listall: true,
    pagesize: 1,
    page: 1,
  });
  results.api_sees = { networks: seen.count ?? 0, routers: routersSeen.count ?? 0 };
  if ((seen.count ?? 0) < rows.networks)
    notes.push(`listNetworks shows ${seen.count} of ${rows.networks} networks`);
  results.ms_rss_mb_built = rssMiB(pid);

  // ---- (a) a rule change until the router has it ----
  // Networks for the round trips: copies of 10 rules (shapes a and b), each of its own account.
  type Target = { client: CloudStackClient; ip: string; ip4: string; vm: string };
  const extraIpOf = async (networkId: number) =>
    db
      .selectFrom('public_ips')
      .select(['uuid', 'ip4'])
      .where('network_id', '=', networkId)
      .where('source_nat', '=', 0)
      .executeTakeFirstOrThrow();
  const networkIdOf = async (uuid: string) =>
    (await db.selectFrom('networks').select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow()).id;
  const pick: Target[] = [];
  const usedAccounts = new Set<number>();
  for (const [k, c] of copies.entries()) {
    if (pick.length >= Math.max(reps(50), CLIENTS)) break;
    if (targetShapes[k] === 'c' || usedAccounts.has(c.accountId)) continue;
    const index = zone.accounts.findIndex((a) => a.id === c.accountId);
    if (index <= 0) continue;
    usedAccounts.add(c.accountId);
    const extra = await extraIpOf(c.networkId);
    pick.push({ client: await clientOf(index), ip: extra.uuid, ip4: extra.ip4, vm: c.vmUuids[0]! });
  }
  // A small cloud has few accounts: API-built networks stand in.
  for (const b of apiBuilt) {
    if (pick.length >= CLIENTS) break;
    if (!b.plan.name.startsWith('api-')) continue;
    const extra = await extraIpOf(await networkIdOf(b.net.uuid));
    pick.push({
      client: await clientOf(b.accountIndex),
      ip: extra.uuid,
      ip4: extra.ip4,
      vm: b.net.vmUuids[0]!,
    });
  }
  let port = 40_000;
  const jobIds: string[] = [];
  /** When each rule was asked for, by the key the agent reports its arrival under. */
  const sent = new Map<string, number>();
  const createPf = async (target: Target, client = target.client) => {
    const publicport = port++;
    sent.set(`${target.ip4}:tcp:${publicport}`, performance.timeOrigin + performance.now());
    const r = await client.request<{ jobid: string }>('createPortForwardingRule', {
      ipaddressid: target.ip,
      protocol: 'tcp',
      publicport,
      privateport: publicport,
      virtualmachineid: target.vm,
    });
    jobIds.push(r.jobid);
    // Polled as CloudStackClient.waitForJob does, counting the polls.
    const interval = (client.options.pollInterval ?? 0.2) * 1000;
    for (;;) {
      polls++;
      const job = await client.request<{ jobstatus: number; jobresult?: any }>('queryAsyncJobResult', {
        jobid: r.jobid,
      });
      if (job.jobstatus === 2) throw new Error(`the job failed: ${job.jobresult?.errortext ?? 'no reason'}`);
      if (job.jobstatus === 1) {
        const state = job.jobresult?.portforwardingrule?.state;
        if (state !== 'Active') throw new Error(`the rule is ${state ?? 'missing'}, not Active`);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, interval));
    }
  };
  let polls = 0;
  type Counters = { statements: number; commits: number; sql: Record<string, { count: number; ms: number }> };
  const counters = async () =>
    (await server!.admin.request<{ counters: Counters }>('benchCounters', {})).counters;
  /** The statements that took the server's SQLite time between two readings, per rule made. */
  const topSql = (a: Counters, b: Counters, rules: number, top = 6) =>
    Object.entries(b.sql)
      .map(([text, v]) => ({
        sql: text.length > 160 ? `${text.slice(0, 160)}…` : text,
        per_rule: round((v.count - (a.sql[text]?.count ?? 0)) / rules, 1),
        ms_per_rule: round((v.ms - (a.sql[text]?.ms ?? 0)) / rules, 3),
      }))
      .filter((x) => x.per_rule > 0)
      .sort((x, y) => y.ms_per_rule - x.ms_per_rule)
      .slice(0, top);
  const sqlMsPerRule = (a: Counters, b: Counters, rules: number) =>
    round(
      Object.entries(b.sql).reduce((sum, [text, v]) => sum + v.ms - (a.sql[text]?.ms ?? 0), 0) / rules,
      2,
    );
  /** The jobs' own time in the server (queued to completed, from async_jobs), for the job ids given. */
  const serverJobMs = async (ids: string[]) =>
    stats(
      (
        await db.selectFrom('async_jobs').select(['created', 'completed']).where('uuid', 'in', ids).execute()
      ).map((j) => Number(j.completed) - Number(j.created)),
    );
  /** From each request sent to its rule on the router, for the rules sent since the last call. */
  const toRouterMs = async () => {
    const arrived = await agentProc.arrived();
    const ms: number[] = [];
    let missing = 0;
    for (const [key, at] of sent) {
      const there = arrived.get(key);
      if (there === undefined) missing++;
      else ms.push(there - at);
    }
    sent.clear();
    if (missing) notes.push(`${missing} port forwards never reached their router`);
    return stats(ms);
  };
  const seqN = Math.min(reps(50), pick.length);
  jobIds.length = 0;
  sent.clear();
  polls = 0;
  const c0 = await counters();
  const seq = await measure((i) => createPf(pick[i % seqN]!), { clients: 1, total: seqN, maxSeconds: 60 });
  const c1 = await counters();
  const seqJobs = await serverJobMs(jobIds.splice(0));
  const seqRouter = await toRouterMs();
  // What one rule change costs the database (the measure's warm-up call per client included).
  const made = seq.requests + 1;
  // The server's statements are counted on SQLite only (network-hooks.ts wraps better-sqlite3).
  const counted = database.dialect === 'sqlite';
  const perRule = {
    commits: counted ? round((c1.commits - c0.commits) / made, 1) : null,
    statements: counted ? round((c1.statements - c0.statements - 1) / made, 1) : null,
    polls: round(polls / made, 1),
    sql_ms: counted ? sqlMsPerRule(c0, c1, made) : null,
    top_sql: counted ? topSql(c0, c1, made) : [],
  };
  // The floor of a commit: one single-row UPDATE committed on its own (SQLite fsyncs each one).
  const commitFloor = await medianMs(reps(40), () =>
    db
      .updateTable('zones')
      .set((eb) => ({ name: eb.ref('name') }))
      .where('id', '=', zone.zoneId)
      .execute(),
  );
  results.pf_db_per_rule = { ...perRule, floor_commit_ms: commitFloor };
  results.floor_commit_ms = commitFloor;
  if (counted) results.pf_commits_per_rule = perRule.commits;
  log(
    counted
      ? `one port forward costs the server ${perRule.commits} commits and ${perRule.statements} SQL statements taking ${perRule.sql_ms} ms in SQLite (with its ${perRule.polls} polls); one commit alone takes ${commitFloor} ms`
      : `one commit alone takes ${commitFloor} ms (the server's statements are counted on SQLite only)`,
  );
  log(
    `createPortForwardingRule, 1 client, ${seq.requests} rules on ${seqN} networks: on the router ${seqRouter.p50} ms p50, ${seqRouter.p95} ms p95 after the request; the job ${seqJobs.p50}/${seqJobs.p95} ms in the server; Active seen by the client (polling every ${POLL_SECONDS * 1000} ms) ${seq.p50}/${seq.p95} ms${seq.firstError ? `  ERROR ${seq.firstError}` : ''}`,
  );
  // In parallel each client polls every 25 ms, as a busy CLI would, not every 5: eight clients
  // polling flat out would be most of the server's load.
  const parClients = pick
    .slice(0, CLIENTS)
    .map((t) => new CloudStackClient({ ...t.client.options, pollInterval: 0.025 }));
  const parN = reps(200);
  const cpu0 = cpuSeconds(pid);
  polls = 0;
  const par = await measure((i) => createPf(pick[i % CLIENTS]!, parClients[i % CLIENTS]), {
    clients: CLIENTS,
    total: parN,
    maxSeconds: 60,
  });
  const parCpuMs = round(((cpuSeconds(pid) - cpu0) * 1000) / (par.requests + CLIENTS), 1);
  const parPolls = round(polls / (par.requests + CLIENTS), 1);
  results.pf_loaded_server_cpu_ms_per_rule = parCpuMs;
  log(
    `  with ${CLIENTS} clients the server spent ${parCpuMs} ms of CPU per rule (its ${parPolls} polls included)`,
  );
  const parJobs = await serverJobMs(jobIds.splice(0));
  const parRouter = await toRouterMs();
  log(
    `createPortForwardingRule, ${CLIENTS} clients on ${CLIENTS} networks, ${par.requests} rules: on the router ${parRouter.p50} ms p50, ${parRouter.p95} ms p95; the job ${parJobs.p50}/${parJobs.p95} ms; Active seen by the clients ${par.p50}/${par.p95} ms; ${par.rps} rules/s${par.firstError ? `  ERROR ${par.firstError}` : ''}`,
  );
  results.pf_create = {
    networks: seqN,
    single: { client: seq, job_ms: seqJobs, to_router_ms: seqRouter },
    loaded: { client: par, job_ms: parJobs, to_router_ms: parRouter },
  };
  results.pf_router_ms_p50 = seqRouter.p50;
  results.pf_router_ms_p95 = seqRouter.p95;
  results.pf_router_loaded_ms_p50 = parRouter.p50;
  results.pf_router_loaded_ms_p95 = parRouter.p95;
  results.pf_create_ms_p50 = seq.p50;
  results.pf_create_ms_p95 = seq.p95;
  results.pf_create_loaded_ms_p50 = par.p50;
  results.pf_create_loaded_ms_p95 = par.p95;
  results.pf_create_loaded_rps = par.rps;

  // applyNetworkRules inside the server, as the network's rule set grows.
  const growthCases: Record<string, unknown>[] = [];
  const probeTimes = reps(20);
  const probeOf = async (networkUuid: string) => {
    const r = await server!.admin.request<{
      apply: { rules: number; payloadbytes: number; totalms: number[]; buildms: number[]; agentms: number[] };
    }>('benchApplyNetworkRules', { id: networkUuid, times: probeTimes });
    return r.apply;
  };
  // a copied 10-rule network first: the bulk path's routers take rules like the API's
  const copiedProbe = copies.length ? await probeOf(copies[1]!.networkUuid) : undefined;
  for (const g of growth) {
    const p = await probeOf(g.net.uuid);
    // The same network's createPortForwardingRule round trip, one client.
    const client = await clientOf(0);
    const extra = await extraIpOf(await networkIdOf(g.net.uuid));
    jobIds.length = 0;
    sent.clear();
    const g0 = await counters();
    const rt = await measure(
      () => createPf({ client, ip: extra.uuid, ip4: extra.ip4, vm: g.net.vmUuids[0]! }),
      { clients: 1, total: reps(12), maxSeconds: 30 },
    );
    const g1 = await counters();
    const sqlMs = counted ? sqlMsPerRule(g0, g1, rt.requests + 1) : null;
    const gTop = counted ? topSql(g0, g1, rt.requests + 1, 4) : [];
    const jobs = await serverJobMs(jobIds.splice(0));
    const router = await toRouterMs();
    const entry = {
      rules: p.rules,
      payload_kb: round(p.payloadbytes / 1024, 1),
      apply_ms: stats(p.totalms),
      build_ms: stats(p.buildms),
      agent_ms: stats(p.agentms),
      pf_create_ms: rt,
      pf_job_ms: jobs,
      pf_router_ms: router,
      pf_sql_ms: sqlMs,
      pf_top_sql: gTop,
    };
    growthCases.push(entry);
    log(
      `applyNetworkRules with ${p.rules} rules (${entry.payload_kb} KB to the router): p50 ${entry.apply_ms.p50} ms (building the set ${entry.build_ms.p50} ms, the router's host ${entry.agent_ms.p50} ms); a port forward there reaches the router in ${router.p50} ms p50 (job ${jobs.p50} ms, client ${rt.p50} ms${
        counted
          ? `; ${sqlMs} ms of it in SQLite, most in: ${gTop
              .slice(0, 3)
              .map((x) => `${x.ms_per_rule} ms ${x.sql.slice(0, 70)}`)
              .join(' | ')}`
          : ''
      })${rt.firstError ? `  ERROR ${rt.firstError}` : ''}`,
    );
  }
  results.apply_growth = growthCases;
  if (copiedProbe) {
    results.apply_copied_network = { rules: copiedProbe.rules, apply_ms: stats(copiedProbe.totalms) };
    log(
      `applyNetworkRules on a bulk-copied network (${copiedProbe.rules} rules): p50 ${stats(copiedProbe.totalms).p50} ms`,
    );
  }
  const first = growthCases[0] as any;
  const last = growthCases[growthCases.length - 1] as any;
  if (first && last && last.rules > first.rules) {
    results.apply_ms_p50_small = first.apply_ms.p50;
    results.apply_ms_p50_large = last.apply_ms.p50;
    results.apply_rules_small = first.rules;
    results.apply_rules_large = last.rules;
    results.apply_us_per_rule = round(
      ((last.apply_ms.p50 - first.apply_ms.p50) / (last.rules - first.rules)) * 1000,
      1,
    );
    results.build_us_per_rule = round(
      ((last.build_ms.p50 - first.build_ms.p50) / (last.rules - first.rules)) * 1000,
      1,
    );
    results.agent_us_per_rule = round(
      ((last.agent_ms.p50 - first.agent_ms.p50) / (last.rules - first.rules)) * 1000,
      1,
    );
    results.pf_router_ms_p50_large = last.pf_router_ms.p50;
    results.pf_router_ms_p50_small = first.pf_router_ms.p50;
  }

  // The queries a rule change runs for every rule, by what they look up (their plans go in the results).
  // A port forward of the largest growth network: its address and network hold the most rules.
  const someRule = await db
    .selectFrom('ip_rules')
    .select(['id', 'ip_id', 'network_id'])
    .where('purpose', '=', 'PortForwarding')
    .where('network_id', '=', await networkIdOf(growth[growth.length - 1]!.net.uuid))
    .orderBy('id', 'desc')
    .executeTakeFirstOrThrow();
  const rulePath: Record<string, CompiledQuery> = {
    // applyCreated, updatePortForwardingRule, deleteForwardingRule: the firewall rule a forward opened
    related: db.selectFrom('ip_rules').select('id').where('related_id', '=', someRule.id).compile(),
    // checkForwardConflict: the address's forwards and load balancers
    conflicts: db
      .selectFrom('ip_rules')
      .selectAll()
      .where('ip_id', '=', someRule.ip_id!)
      .where('purpose', 'in', ['PortForwarding', 'LoadBalancing'])
      .where('state', 'in', ['Add', 'Active'])
      .compile(),
    // routerRulesFor: the network's rules, every time the router is told
    network_rules: db
      .selectFrom('ip_rules')
      .selectAll()
      .where('network_id', '=', someRule.network_id)
      .where('state', '!=', 'Revoke')
      .orderBy('id')
      .compile(),
  };
  const rulePathPlans: Record<string, string[]> = {};
  const rulePathMs: Record<string, number> = {};
  {
    const probeFloor = await DbFloor.open(database.dialect, database.url);
    for (const [name, q] of Object.entries(rulePath)) {
      rulePathMs[name] = await probeFloor.timeMs([q], reps(20));
      if (database.dialect === 'sqlite') rulePathPlans[name] = queryPlans(sqliteFile(), [q])[0]!;
    }
    await probeFloor.close();
  }
  results.rule_path_sql = { ms: rulePathMs, plans: rulePathPlans };
  log(
    `the SQL of a rule change, through the driver: ${Object.entries(rulePathMs)
      .map(([k, v]) => `${k} ${v} ms${rulePathPlans[k] ? ` (${rulePathPlans[k]!.join('; ')})` : ''}`)
      .join(', ')}`,
  );

  // ---- (b), (c) the lists ----
  floor = await DbFloor.open(database.dialect, database.url);
  const floorRuns = reps(20);
  const rootScope: OwnerScope = { kind: 'all' };
  const bigScope: OwnerScope = { kind: 'accounts', accountIds: [big.id] };
  const rootClient = await keyClient(
    server,
    (await db.selectFrom('users').select('uuid').where('username', '=', 'admin').executeTakeFirstOrThrow())
      .uuid,
  );
  const bigClient = await clientOf(0);
  const lists: Record<string, unknown> = {};
  const plans: Record<string, string[][]> = {};
  const listCase = async (
    key: string,
    label: string,
    client: CloudStackClient,
    command: string,
    params: Record<string, string | number | boolean>,
    floorSql: (page: number) => CompiledQuery[],
  ) => {
    const [countRow] = (await floor!.run(floorSql(1)[0]!)) as { count: number }[];
    const visible = Number(countRow?.count ?? 0);
    const pages = Math.max(1, Math.ceil(visible / PAGE_SIZE));
    const deep = Math.max(1, Math.round(pages * 0.75));
    const entry: Record<string, unknown> = { visible, pages, deep_page_number: deep };
    for (const [which, page] of [
      ['page', 1],
      ['deep_page', deep],
    ] as const) {
      if (which === 'deep_page' && pages < 2) continue;
      const call = () => client.request(command, { ...params, page, pagesize: PAGE_SIZE });
      const single = await measure(call, { clients: 1, total: reps(12), maxSeconds: 30 });
      await warmUp(call, CLIENTS, WARMUP_SECONDS);
      const loaded = await measure(call, {
        clients: CLIENTS,
        total: reps(64),
        warmup: false,
        maxSeconds: 30,
      });
      const floorMs = await floor!.timeMs(floorSql(page), floorRuns);
      entry[which] = { single, loaded, floor_db_ms: floorMs };
      log(
        `${label} page ${page} of ${pages}: 1 client p50 ${single.p50} ms, p95 ${single.p95} ms | ${CLIENTS} clients p50 ${loaded.p50} ms, ${loaded.rps} req/s | floor: its SQL ${floorMs} ms${single.firstError ? `  ERROR ${single.firstError}` : ''}`,
      );
    }
    if (database.dialect === 'sqlite') plans[key] = queryPlans(sqliteFile(), floorSql(deep));
    lists[key] = entry;
    return entry as {
      page?: { single: LatencyStats; floor_db_ms: number };
      deep_page?: { single: LatencyStats; floor_db_ms: number };
    };
  };
  const pfRoot = await listCase(
    'pf_root',
    'listPortForwardingRules root listall',
    rootClient,
    'listPortForwardingRules',
    { listall: true },
    (page) => pfListSql(db, rootScope, page),
  );
  const pfUser = await listCase(
    'pf_account',
    `listPortForwardingRules as ${big.name}`,
    bigClient,
    'listPortForwardingRules',
    {},
    (page) => pfListSql(db, bigScope, page),
  );
  const ipRoot = await listCase(
    'ip_root',
    'listPublicIpAddresses root listall',
    rootClient,
    'listPublicIpAddresses',
    { listall: true },
    (page) => ipListSql(db, rootScope, page, true),
  );
  const ipAll = await listCase(
    'ip_root_all',
    'listPublicIpAddresses root listall allocatedonly=false',
    rootClient,
    'listPublicIpAddresses',
    { listall: true, allocatedonly: false },
    (page) => ipListSql(db, rootScope, page, false),
  );
  const ipUser = await listCase(
    'ip_account',
    `listPublicIpAddresses as ${big.name}`,
    bigClient,
    'listPublicIpAddresses',
    {},
    (page) => ipListSql(db, bigScope, page, true),
  );
  results.lists = lists;
  results.query_plans = plans;
  // A list of one page has no deep page: its keys stay out of the results.
  const p50 = (e: { single: LatencyStats } | undefined) => e?.single.p50;
  const fl = (e: { floor_db_ms: number } | undefined) => e?.floor_db_ms;
  Object.assign(results, {
    list_pf_page_ms_p50: p50(pfRoot.page),
    list_pf_deep_page_ms_p50: p50(pfRoot.deep_page),
    list_pf_account_page_ms_p50: p50(pfUser.page),
    list_pf_account_deep_page_ms_p50: p50(pfUser.deep_page),
    list_ip_page_ms_p50: p50(ipRoot.page),
    list_ip_deep_page_ms_p50: p50(ipRoot.deep_page),
    list_ip_all_page_ms_p50: p50(ipAll.page),
    list_ip_all_deep_page_ms_p50: p50(ipAll.deep_page),
    list_ip_account_page_ms_p50: p50(ipUser.page),
    floor_pf_page_ms: fl(pfRoot.page),
    floor_pf_deep_page_ms: fl(pfRoot.deep_page),
    floor_pf_account_page_ms: fl(pfUser.page),
    floor_pf_account_deep_page_ms: fl(pfUser.deep_page),
    floor_ip_page_ms: fl(ipRoot.page),
    floor_ip_deep_page_ms: fl(ipRoot.deep_page),
    floor_ip_all_page_ms: fl(ipAll.page),
    floor_ip_all_deep_page_ms: fl(ipAll.deep_page),
    floor_ip_account_page_ms: fl(ipUser.page),
  });

  // Nothing copied fell over meanwhile: the VMs still run (their hosts report them at every
  // ping) and so do the routers.
  const end = {
    vms: await count('vms', (q) => q.where('state', '=', 'Running').where('removed', 'is', null)),
    routers: await count('routers', (q) => q.where('state', '=', 'Running').where('removed', 'is', null)),
  };
  results.running_at_end = end;
  if (end.vms !== rows.vms || end.routers !== rows.routers)
    notes.push(
      `at the end ${end.vms} VMs and ${end.routers} routers run, of ${rows.vms} and ${rows.routers}`,
    );

  // ---- (d) memory ----
  results.ms_rss_mb = rssMiB(pid);
  results.ms_rss_mb_peak = peakRssMiB(pid);
  log(
    `server RSS: ${results.ms_rss_mb_empty} MiB empty, ${results.ms_rss_mb_built} MiB built, ${results.ms_rss_mb} MiB after the measurements, peak ${results.ms_rss_mb_peak} MiB`,
  );

  await stopProcess(agent);
  await floor.close();
  floor = undefined;
  await store.close();
  store = undefined;
  await server.stop();
  server = undefined;
  if (args['keep-db'] && database.dialect === 'sqlite') copyFileSync(sqliteFile(), resolve(args['keep-db']));

  results.notes = notes;
  results.total_s = round((performance.now() - started) / 1000, 0);
  const dir = args['results-dir']!;
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const base = `${stamp}-networks-${results.db}-${NETWORKS}n`;
  const json = `${JSON.stringify(results, null, 2)}\n`;
  const markdown = renderNetworksMarkdown(results);
  writeFileSync(join(dir, `${base}.json`), json);
  writeFileSync(join(dir, `${base}.md`), markdown);
  writeFileSync(join(dir, 'networks-latest.json'), json);
  writeFileSync(join(dir, 'networks-latest.md'), markdown);
  // `npm run lint` checks every JSON file in the tree; results are written as its formatter would.
  spawnSync(
    join(import.meta.dirname, '../node_modules/.bin/biome'),
    ['format', '--write', join(dir, `${base}.json`), join(dir, 'networks-latest.json')],
    { stdio: 'ignore' },
  );
  process.stdout.write(
    `\n${markdown}\nresults: ${join(dir, `${base}.json`)} (also networks-latest.json, networks-latest.md)\n`,
  );
} finally {
  await stopProcess(agent).catch(() => undefined);
  await floor?.close().catch(() => undefined);
  await store?.close().catch(() => undefined);
  await server?.stop().catch(() => undefined);
  await database.drop().catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
}
