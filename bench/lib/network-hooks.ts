/**
 * Loaded into the benchmark's server process (node --import, as the tests' fixtures are): one
 * bench-only admin command, `benchApplyNetworkRules`, that times the server's own
 * `applyNetworkRules` (network/routers.ts) inside the server, on its live database and its real
 * agent connection, so the figure has no HTTP, job queue or polling in it. Each round also times
 * its two halves the same way the function does them: building the rule set from the records
 * (`routerPublicSide` + `routerRulesFor`) and the `applyRouterRules` round trip to the router's
 * host (serialising, the WebSocket, the agent's schema check and the simulator's bookkeeping).
 *
 *   benchApplyNetworkRules id=<network uuid> times=<n>
 *   → { rules, payloadbytes, totalms: number[], buildms: number[], agentms: number[] }
 *
 * And `benchCounters`: how many SQL statements the server has run on SQLite so far, and how many
 * commits (COMMITs, and writes outside a transaction, each its own commit and fsync): the bench
 * reads it before and after a case to tell what one rule change costs the database.
 *   benchCounters → { statements, commits, sql: { [text]: { count, ms } } }
 */
import SQLite from 'better-sqlite3';
import { allCommands } from '../../packages/server/src/commands.ts';
import { invalidParameter } from '../../packages/server/src/errors.ts';
import { routerPublicSide, routerRulesFor } from '../../packages/server/src/network/router-rules.ts';
import { applyNetworkRules } from '../../packages/server/src/network/routers.ts';
import type { Command } from '../../packages/server/src/registry/command.ts';
import { p } from '../../packages/server/src/registry/params.ts';

const NAME = 'benchApplyNetworkRules';
const params = { id: p.uuid({ required: true }), times: p.integer({ min: 1, max: 1000 }) };

const command: Command = {
  name: NAME,
  description: 'Benchmark probe: times applyNetworkRules of a network inside the server',
  params,
  catalog: {
    name: NAME,
    isasync: false,
    since: null,
    roles: ['admin'],
    responseName: 'benchapplynetworkrulesresponse',
    responseShape: 'object',
    responseObjectName: 'apply',
    params: [],
    response: [],
  },
  isAsync: false,
  allowedRoles: ['admin'],
  async handler(ctx, raw) {
    const { id, times } = raw as { id: string; times?: number };
    const { app } = ctx;
    const db = app.store.db;
    const network = await db.selectFrom('networks').selectAll().where('uuid', '=', id).executeTakeFirst();
    if (!network) throw invalidParameter(`Unable to find network by id ${id}`);
    const router = await db
      .selectFrom('routers')
      .selectAll()
      .where('network_id', '=', network.id)
      .where('removed', 'is', null)
      .where('state', '=', 'Running')
      .executeTakeFirst();
    if (!router || router.host_id === null) throw invalidParameter(`Network ${id} has no running router`);
    const totalms: number[] = [];
    const buildms: number[] = [];
    const agentms: number[] = [];
    let rules = 0;
    let payloadbytes = 0;
    for (let i = 0; i < (times ?? 10); i++) {
      const t0 = performance.now();
      const applied = await applyNetworkRules(app, network.id);
      totalms.push(performance.now() - t0);
      if (!applied.applied) throw invalidParameter(`The rules of network ${id} were not applied`);
      const t1 = performance.now();
      const pub = router.public_mac ? await routerPublicSide(app, network, router.public_mac) : undefined;
      const set = await routerRulesFor(app, network);
      buildms.push(performance.now() - t1);
      const payload = { name: router.name, ...(pub ? { public: pub } : {}), rules: set };
      const t2 = performance.now();
      await app.agents.call(router.host_id, 'applyRouterRules', payload);
      agentms.push(performance.now() - t2);
      rules =
        set.firewall.length +
        set.egress.length +
        set.portForwards.length +
        set.staticNats.length +
        set.loadBalancers.length;
      payloadbytes = JSON.stringify(payload).length;
    }
    return { rules, payloadbytes, totalms, buildms, agentms };
  },
};

// Every statement better-sqlite3 runs goes through these three methods of its Statement class:
// each is counted, and timed by its SQL text (the time SQLite takes to run it and hand the rows
// over, as the server waits for it).
const counters = { statements: 0, commits: 0 };
const bySql = new Map<string, { count: number; ms: number }>();
{
  const probe = new SQLite(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, unknown>;
  probe.close();
  for (const method of ['run', 'all', 'iterate'] as const) {
    const original = proto[method] as (this: SQLite.Statement, ...a: unknown[]) => unknown;
    proto[method] = function (this: SQLite.Statement, ...a: unknown[]) {
      counters.statements++;
      const text = this.source.trim().toLowerCase();
      if (text === 'commit' || (!this.reader && !this.database.inTransaction && !text.startsWith('begin')))
        counters.commits++;
      const t0 = performance.now();
      try {
        return original.apply(this, a);
      } finally {
        const entry = bySql.get(this.source) ?? { count: 0, ms: 0 };
        entry.count++;
        entry.ms += performance.now() - t0;
        bySql.set(this.source, entry);
      }
    };
  }
}

const countersCommand: Command = {
  ...command,
  name: 'benchCounters',
  description: 'Benchmark probe: SQL statements and commits the server has run',
  params: {},
  catalog: {
    ...command.catalog,
    name: 'benchCounters',
    responseName: 'benchcountersresponse',
    responseObjectName: 'counters',
  },
  async handler() {
    return { ...counters, sql: Object.fromEntries(bySql) };
  },
};

allCommands.push(command, countersCommand);
