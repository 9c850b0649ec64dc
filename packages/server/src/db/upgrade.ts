/**
 * What a management server does before it migrates an existing database to its own schema
 * (docs/operations.md, "Upgrading"):
 *
 * - a schema newer than the code is refused (migrate.ts: SchemaTooNewError), so a downgrade never
 *   runs old code on a new schema;
 * - an upgrade is refused while another management server heart-beats against the database: with
 *   steps pending, that server runs code written for the older schema, which the upgrade would
 *   change under it. A heartbeat older than the configured window is a stopped (or killed) server
 *   and does not block. A row with this server's own name is an earlier run of this server;
 * - on SQLite, a copy of the database is taken first, next to the file and named after the schema
 *   version it holds; the newest `upgradeBackupsKept` such copies are kept.
 *
 * Then migrate.ts applies the pending steps, one transaction each.
 */
import { readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { sql } from 'kysely';
import type { Store } from './connection.ts';
import { appliedMigrations, MIGRATIONS, migrate, type Step } from './migrate.ts';

export class UpgradeRefusedError extends Error {}

export interface UpgradeOptions {
  /** This server's name: rows under it are its own earlier runs, not another server. */
  serverName: string;
  /** A heartbeat at most this old (ms) is a running server. */
  liveWindowMs: number;
  /** How many pre-upgrade SQLite copies to keep (the newest). */
  backupsKept: number;
  now: number;
}

export interface UpgradeResult {
  applied: string[];
  /** The copy taken before the upgrade (SQLite only). */
  backup?: string;
}

export async function upgradeSchema(
  store: Store,
  opts: UpgradeOptions,
  migrations: [string, Step][] = MIGRATIONS,
): Promise<UpgradeResult> {
  const applied = await appliedMigrations(store);
  const pending = migrations.filter(([name]) => !applied.includes(name));
  const known = new Set(migrations.map(([name]) => name));
  // A fresh database, one already at this version, or a newer one (which migrate refuses).
  if (applied.length === 0 || pending.length === 0 || !applied.every((n) => known.has(n)))
    return migrate(store, migrations);
  await refuseWhileOthersRun(store, opts, pending.length);
  const backup =
    store.dialect === 'sqlite' ? await backupSqlite(store, applied, opts.backupsKept) : undefined;
  const result = await migrate(store, migrations);
  return { ...result, backup };
}

async function refuseWhileOthersRun(store: Store, opts: UpgradeOptions, pending: number): Promise<void> {
  const live = await store.db
    .selectFrom('management_servers')
    .select(['name', 'version', 'last_heartbeat'])
    .where('state', '=', 'Up')
    .where('last_heartbeat', '>', opts.now - opts.liveWindowMs)
    .where('name', '!=', opts.serverName)
    .execute();
  if (live.length === 0) return;
  const who = live
    .map(
      (s) =>
        `${s.name} (version ${s.version}, last heartbeat ${Math.round((opts.now - s.last_heartbeat) / 1000)} s ago)`,
    )
    .join(', ');
  throw new UpgradeRefusedError(
    `the database needs ${pending} schema upgrade step(s), but management server ${who} is still running against it with the older schema. Stop every management server before starting the upgraded one (docs/operations.md); a server whose heartbeat is older than ${Math.round(opts.liveWindowMs / 1000)} s counts as stopped`,
  );
}

/** The SQLite file a store works on, or undefined for an in-memory database. */
function sqliteFile(store: Store): string | undefined {
  const file = store.describe.replace(/^sqlite:/, '');
  return file === ':memory:' ? undefined : file;
}

/**
 * Copies the database with VACUUM INTO on the server's own connection: one consistent state, and
 * no other writer can interleave (no other server runs, as checked before). The name carries the
 * newest schema step the copy holds, e.g. nimbostack.db.schema-0019-sign-in-security.bak.
 */
async function backupSqlite(store: Store, applied: string[], keep: number): Promise<string | undefined> {
  const file = sqliteFile(store);
  if (!file) return undefined;
  const version = [...applied].sort().at(-1);
  const target = `${file}.schema-${version}.bak`;
  const partial = `${target}.partial`;
  rmSync(partial, { force: true });
  await sql`vacuum into ${partial}`.execute(store.db);
  renameSync(partial, target);
  const prefix = `${basename(file)}.schema-`;
  const copies = readdirSync(dirname(file))
    .filter((n) => n.startsWith(prefix) && n.endsWith('.bak'))
    .map((n) => join(dirname(file), n))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  for (const old of copies.slice(keep)) rmSync(old, { force: true });
  return target;
}
