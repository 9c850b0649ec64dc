/** Fresh databases for a run: a SQLite file, or a new database on a PostgreSQL server. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import type { DialectName } from '../../packages/server/src/db/connection.ts';

export interface BenchDatabase {
  url: string;
  dialect: DialectName;
  drop(): Promise<void>;
}

/** `target` is "sqlite" or a PostgreSQL server URL (any database name in it is replaced). */
export async function createBenchDatabase(
  target: string,
  dir: string,
  label: string,
): Promise<BenchDatabase> {
  if (target === 'sqlite')
    return { url: `sqlite:${join(dir, `${label}.db`)}`, dialect: 'sqlite', drop: async () => undefined };
  if (!/^postgres(ql)?:\/\//.test(target))
    throw new Error(`--db must be sqlite or postgres://user@host:port, not ${target}`);
  const server = new URL(target);
  const name = `nimbo_bench_${label.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`;
  const adminUrl = new URL(server);
  adminUrl.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: adminUrl.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    dialect: 'postgres',
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
