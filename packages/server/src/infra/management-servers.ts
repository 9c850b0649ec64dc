/**
 * The management servers sharing the database (the upstream UI's Infrastructure → Management
 * servers page): what the database knows of every one (state, version, start and stop, the hosts
 * whose agents it holds, its unfinished jobs), and for the server answering, what it can measure
 * of itself and its machine (Node.js process and OS figures). Another server's process figures are
 * known only to it: they are left out rather than guessed.
 */

import {
  availableParallelism,
  freemem,
  loadavg,
  networkInterfaces,
  release,
  totalmem,
  uptime,
  version,
} from 'node:os';
import type { Selectable } from 'kysely';
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import type { Database } from '../db/schema.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';

const params = {
  ...listParams,
  id: p.uuid({ description: 'Only the management server with this UUID.' }),
  name: p.string({ description: 'Only the management server with this name.' }),
  peers: p.boolean({ description: 'Accepted for compatibility; Nimbostack servers keep no peer links.' }),
};

/** This machine's first non-loopback IPv4 address, as the address the server is known by. */
function ownAddress(ctx: CallContext): string | undefined {
  const host = ctx.app.config.host;
  if (host !== '0.0.0.0' && host !== '::') return host;
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return undefined;
}

async function present(
  ctx: CallContext,
  rows: Selectable<Database['management_servers']>[],
  metrics: boolean,
): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = rows.map((r) => r.id);
  const [hosts, jobs] = await Promise.all([
    db
      .selectFrom('hosts')
      .select(['ms_id', 'name'])
      .where('ms_id', 'in', ids)
      .where('removed', 'is', null)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('async_jobs')
      .select(['ms_id', (eb) => eb.fn.countAll().as('n')])
      .where('ms_id', 'in', ids)
      .where('status', '=', 0)
      .groupBy('ms_id')
      .execute(),
  ]);
  const now = new Date();
  return rows.map((r) => {
    const agents = hosts.filter((h) => h.ms_id === r.id).map((h) => h.name);
    const self = r.id === ctx.app.server.id;
    const address = self ? ownAddress(ctx) : undefined;
    const out: Record<string, unknown> = {
      id: r.uuid,
      name: r.name,
      state: r.state,
      version: r.version,
      lastserverstart: formatDate(r.started),
      lastserverstop: r.state === 'Down' ? formatDate(r.last_heartbeat) : undefined,
      agents,
      agentscount: agents.length,
      pendingjobscount: Number(jobs.find((j) => j.ms_id === r.id)?.n ?? 0),
      ...(self
        ? {
            ipaddress: address,
            serviceip: address,
            osdistribution: version(),
            kernelversion: release(),
            lastboottime: formatDate(now.getTime() - uptime() * 1000),
          }
        : {}),
    };
    if (metrics && self) {
      const memory = process.memoryUsage();
      const gib = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GB`;
      Object.assign(out, {
        collectiontime: formatDate(now.getTime()),
        agentcount: agents.length,
        availableprocessors: availableParallelism(),
        heapmemoryused: memory.heapUsed,
        heapmemorytotal: memory.heapTotal,
        systemmemorytotal: gib(totalmem()),
        systemmemoryfree: gib(freemem()),
        systemmemoryused: gib(totalmem() - freemem()),
        systemmemoryvirtualsize: gib(memory.rss),
        systemloadaverages: loadavg(),
        cpuload: `${((loadavg()[0] / availableParallelism()) * 100).toFixed(2)}%`,
        dbislocal: ctx.app.store.dialect === 'sqlite',
        usageislocal: true,
      });
    }
    return out;
  });
}

function lister(metrics: boolean) {
  return async (
    ctx: CallContext,
    p: { id?: string; name?: string; keyword?: string; page?: number; pagesize?: number },
  ) => {
    let q = ctx.app.store.db.selectFrom('management_servers');
    if (p.id) q = q.where('uuid', '=', p.id);
    if (p.name) q = q.where('name', '=', p.name);
    if (p.keyword)
      q = q.where(
        likeEscaped(
          'name',
          `%${escapeLike(p.keyword)}%`,
          ctx.app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(ctx.app, p)).execute();
    return listResult(await present(ctx, rows, metrics), Number(count));
  };
}

export const listManagementServers = defineCommand({
  name: 'listManagementServers',
  description:
    'Lists the management servers sharing this database: state, version, last start and stop, the hosts whose agents each holds and its unfinished jobs.',
  params,
  handler: lister(false),
});

export const listManagementServersMetrics = defineCommand({
  name: 'listManagementServersMetrics',
  description:
    'Lists the management servers as listManagementServers does; the one answering adds what it measures of its process and machine (memory, load, processors).',
  params: {
    ...params,
    system: p.boolean({
      description: 'Accepted for compatibility; the machine figures are always included.',
    }),
  },
  handler: lister(true),
});

export const managementServerCommands = [listManagementServers, listManagementServersMetrics];
