/**
 * listDbMetrics: what the database the management servers share says of itself, asked of it
 * directly: its version, how long it has run, its connections and the queries it served, and the
 * TLS versions it accepts. SQLite is embedded in the server process: it has no connections or
 * uptime of its own beyond the process's, and no query counter; what it lacks is left out.
 */
import { hostname } from 'node:os';
import { sql } from 'kysely';
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { defineCommand } from '../registry/command.ts';

interface DbFigures {
  hostname?: string;
  version?: string;
  versioncomment?: string;
  uptime?: number;
  connections?: number;
  queries?: number;
  tlsversions?: string;
}

async function measure(ctx: CallContext): Promise<DbFigures> {
  const { store } = ctx.app;
  const db = store.db;
  const one = async <T>(query: ReturnType<typeof sql<T>>) => (await query.execute(db)).rows[0];
  if (store.dialect === 'sqlite') {
    const row = await one(sql<{ v: string }>`select sqlite_version() as v`);
    return {
      hostname: hostname(),
      version: row?.v,
      versioncomment: 'SQLite, embedded in the management server',
      uptime: Math.floor(process.uptime()),
      connections: 1,
    };
  }
  if (store.dialect === 'postgres') {
    const [info, stats, tls] = await Promise.all([
      one(
        sql<{
          v: string;
          up: string;
          host: string | null;
        }>`select version() as v, extract(epoch from now() - pg_postmaster_start_time())::bigint as up, host(inet_server_addr()) as host`,
      ),
      one(
        sql<{
          c: string;
          q: string;
        }>`select sum(numbackends) as c, sum(xact_commit + xact_rollback) as q from pg_stat_database`,
      ),
      one(
        sql<{ t: string | null }>`select string_agg(distinct version, ', ') as t from pg_stat_ssl where ssl`,
      ),
    ]);
    return {
      hostname: info?.host ?? undefined,
      version: info?.v.split(' ')[1],
      versioncomment: info?.v,
      uptime: Number(info?.up),
      connections: Number(stats?.c),
      queries: Number(stats?.q),
      tlsversions: tls?.t ?? undefined,
    };
  }
  const info = await one(
    sql<{
      v: string;
      c: string;
      h: string;
      t: string | null;
    }>`select @@version as v, @@version_comment as c, @@hostname as h, @@tls_version as t`,
  );
  const status = (
    await sql<{
      Variable_name: string;
      Value: string;
    }>`show global status where Variable_name in ('Uptime', 'Threads_connected', 'Queries')`.execute(db)
  ).rows;
  const get = (name: string) => {
    const v = status.find((r) => r.Variable_name === name)?.Value;
    return v === undefined ? undefined : Number(v);
  };
  return {
    hostname: info?.h,
    version: info?.v,
    versioncomment: info?.c,
    uptime: get('Uptime'),
    connections: get('Threads_connected'),
    queries: get('Queries'),
    tlsversions: info?.t ?? undefined,
  };
}

export const listDbMetrics = defineCommand({
  name: 'listDbMetrics',
  description:
    'Shows what the shared database says of itself: version, uptime, connections, queries served and accepted TLS versions (SQLite, embedded, has fewer).',
  params: {},
  async handler(ctx) {
    return { collectiontime: formatDate(ctx.app.clock.now()), ...(await measure(ctx)) };
  },
});
