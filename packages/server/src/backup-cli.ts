/**
 * Backup and restore of the management server's database (docs/operations.md).
 *
 *   npm run backup [-- FILE]         copies the database while the server runs
 *   npm run restore -- FILE [--force] puts a backup in place of the database (server stopped)
 *
 * Both read the server's configuration (NIMBOSTACK_DATA, DATABASE_URL, NIMBOSTACK_CONFIG...) to
 * find the database. SQLite is copied with SQLite's online backup API (better-sqlite3's
 * `backup()`): a consistent snapshot of committed transactions, taken page by page while the
 * server keeps writing. PostgreSQL and MySQL/MariaDB have their own tools for that; the command
 * runs pg_dump/pg_restore or mysqldump/mysql when they are installed and prints the commands
 * otherwise. The secret key file is never part of a backup (see restore's note).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import SQLite from 'better-sqlite3';
import { ConfigError, loadConfig, type ServerConfig } from './config.ts';
import { dialectOf } from './db/connection.ts';
import { MIGRATIONS } from './db/migrate.ts';

/** A server whose heartbeat is this fresh is taken to be running (heartbeats come every 10 s). */
const RUNNING_MS = 30_000;

function stamp(): string {
  return new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

function sqliteFile(url: string): string {
  return url.replace(/^(sqlite|file):(\/\/)?/, '');
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** What a SQLite file holds, or why it is no Nimbostack database. */
function inspectSqlite(file: string): { migrations: number; vms: number; accounts: number } {
  const db = new SQLite(file, { readonly: true, fileMustExist: true });
  try {
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new Error(`${file} is damaged: ${check}`);
    const table = db
      .prepare("select name from sqlite_master where type = 'table' and name = 'kysely_migration'")
      .get();
    if (!table) throw new Error(`${file} is not a Nimbostack database (no schema version table)`);
    const count = (sql: string) => Number((db.prepare(sql).get() as { n: number }).n);
    return {
      migrations: count('select count(*) as n from kysely_migration'),
      vms: count('select count(*) as n from vms where removed is null'),
      accounts: count('select count(*) as n from accounts'),
    };
  } finally {
    db.close();
  }
}

async function backup(args: string[], config: ServerConfig): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true });
  const dialect = dialectOf(config.databaseUrl);
  const ext = dialect === 'sqlite' ? 'db' : dialect === 'postgres' ? 'pgdump' : 'sql';
  const target = resolve(positionals[0] ?? join(config.dataDir, 'backups', `nimbostack-${stamp()}.${ext}`));
  if (existsSync(target)) {
    console.error(`nimbostack: ${target} exists; give another file name`);
    return 1;
  }
  mkdirSync(dirname(target), { recursive: true });
  if (dialect === 'sqlite') {
    const source = sqliteFile(config.databaseUrl);
    if (!existsSync(source)) {
      console.error(`nimbostack: no database at ${source} (NIMBOSTACK_DATA or DATABASE_URL name another?)`);
      return 1;
    }
    const db = new SQLite(source, { fileMustExist: true });
    // The server may be writing: wait for its write lock instead of failing at once.
    db.pragma('busy_timeout = 5000');
    try {
      // The online backup API: pages are copied in steps; a write by the server between steps
      // makes SQLite start again, so the copy is one consistent state of committed transactions.
      const partial = `${target}.partial`;
      await db.backup(partial);
      renameSync(partial, target);
    } finally {
      db.close();
    }
    const what = inspectSqlite(target);
    console.log(
      `backed up ${source} to ${target} (${statSync(target).size} bytes; schema at ${what.migrations} migrations; ${what.accounts} accounts, ${what.vms} VMs)`,
    );
  } else if (dialect === 'postgres') {
    const command = ['pg_dump', '--format=custom', `--file=${target}`, config.databaseUrl];
    if (!has('pg_dump')) {
      console.log(
        `pg_dump is not installed here. On a machine that has it (the PostgreSQL client tools), run:\n  pg_dump --format=custom --file=${target} '${redact(config.databaseUrl)}'\npg_dump takes a consistent snapshot while the servers keep running.`,
      );
      return 2;
    }
    const r = spawnSync(command[0], command.slice(1), { stdio: 'inherit' });
    if (r.status !== 0) return r.status ?? 1;
    console.log(`backed up ${redact(config.databaseUrl)} to ${target} with pg_dump (custom format)`);
  } else {
    const url = new URL(config.databaseUrl.replace(/^mariadb:/, 'mysql:'));
    const args = mysqlArgs(url);
    if (!has('mysqldump')) {
      console.log(
        `mysqldump is not installed here. On a machine that has it, run:\n  mysqldump --single-transaction ${args.filter((a) => !a.startsWith('--password')).join(' ')} > ${target}\n--single-transaction takes a consistent snapshot of the InnoDB tables while the servers keep running.`,
      );
      return 2;
    }
    const r = spawnSync('sh', ['-c', 'mysqldump --single-transaction "$@" > "$TARGET"', 'sh', ...args], {
      stdio: 'inherit',
      env: { ...process.env, TARGET: target },
    });
    if (r.status !== 0) {
      rmSync(target, { force: true });
      return r.status ?? 1;
    }
    console.log(`backed up ${redact(config.databaseUrl)} to ${target} with mysqldump`);
  }
  console.log(
    `Not in the backup: the secret key file ${config.secretKeyFile}, which decrypts the API secret keys stored in it. Keep a copy of it apart from the backups.`,
  );
  return 0;
}

function mysqlArgs(url: URL): string[] {
  return [
    `--host=${url.hostname}`,
    `--port=${url.port || '3306'}`,
    `--user=${decodeURIComponent(url.username || 'root')}`,
    ...(url.password ? [`--password=${decodeURIComponent(url.password)}`] : []),
    url.pathname.replace(/^\//, ''),
  ];
}

/** Management servers that heart-beat recently: a restore under them would be overwritten. */
function runningServers(file: string): string[] {
  if (!existsSync(file)) return [];
  const db = new SQLite(file, { readonly: true, fileMustExist: true });
  try {
    const table = db
      .prepare("select name from sqlite_master where type = 'table' and name = 'management_servers'")
      .get();
    if (!table) return [];
    const rows = db
      .prepare("select name from management_servers where state = 'Up' and last_heartbeat > ?")
      .all(Date.now() - RUNNING_MS) as { name: string }[];
    return rows.map((r) => r.name);
  } finally {
    db.close();
  }
}

async function restore(args: string[], config: ServerConfig): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { force: { type: 'boolean', default: false } },
  });
  if (!positionals[0]) {
    console.error('usage: npm run restore -- <backup file> [--force]');
    return 2;
  }
  const source = resolve(positionals[0]);
  if (!existsSync(source)) {
    console.error(`nimbostack: no backup file ${source}`);
    return 1;
  }
  const dialect = dialectOf(config.databaseUrl);
  if (dialect !== 'sqlite') {
    const postgres = dialect === 'postgres';
    const url = redact(config.databaseUrl);
    console.log(
      postgres
        ? `Stop every management server, then restore into the database with:\n  pg_restore --clean --if-exists --no-owner --dbname='${url}' ${source}\n(or into a fresh empty database, then point DATABASE_URL at it), and start the servers again.`
        : `Stop every management server, then restore into an empty database with:\n  mysql ${mysqlArgs(
            new URL(config.databaseUrl.replace(/^mariadb:/, 'mysql:')),
          )
            .filter((a) => !a.startsWith('--password'))
            .join(' ')} < ${source}\nand start the servers again.`,
    );
    return 0;
  }
  const target = sqliteFile(config.databaseUrl);
  const running = runningServers(target);
  if (running.length > 0 && !values.force) {
    console.error(
      `nimbostack: management server ${running.join(', ')} heart-beat in the last ${RUNNING_MS / 1000} s: stop it first (a running server would keep writing to the database being replaced). --force restores anyway.`,
    );
    return 1;
  }
  let what: ReturnType<typeof inspectSqlite>;
  try {
    what = inspectSqlite(source);
  } catch (e) {
    console.error(`nimbostack: ${(e as Error).message}`);
    return 1;
  }
  if (what.migrations > MIGRATIONS.length) {
    console.error(
      `nimbostack: ${source} has a schema newer than this Nimbostack (${what.migrations} migrations, this one knows ${MIGRATIONS.length}); restore it with a newer version`,
    );
    return 1;
  }
  mkdirSync(dirname(target), { recursive: true });
  // The database being replaced is kept beside it, with its WAL folded in, until the operator
  // deletes it: a restore of the wrong file can be undone.
  let kept: string | undefined;
  if (existsSync(target)) {
    const db = new SQLite(target, { fileMustExist: true });
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    kept = `${target}.before-restore-${stamp()}`;
    renameSync(target, kept);
  }
  for (const suffix of ['-wal', '-shm']) rmSync(`${target}${suffix}`, { force: true });
  // Copied beside the target, then renamed: a crash half-way never leaves half a database.
  copyFileSync(source, `${target}.restoring`);
  renameSync(`${target}.restoring`, target);
  console.log(
    `restored ${source} to ${target} (schema at ${what.migrations} migrations; ${what.accounts} accounts, ${what.vms} VMs)${kept ? `; the database it replaced is kept as ${kept}` : ''}`,
  );
  console.log(
    'Start the server: jobs that were running when the backup was taken fail, what they left half-done is settled, and hosts report their VMs again. The secret key file must be the one in use when the backup was taken.',
  );
  return 0;
}

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (args: string[], config: ServerConfig) => Promise<number>> = {
  backup,
  restore,
};
const run = command ? commands[command] : undefined;
if (!run) {
  console.error('usage: backup-cli.ts backup [FILE] | restore FILE [--force]');
  process.exit(2);
}
Promise.resolve()
  .then(() => run(rest, loadConfig()))
  .then(
    (code) => process.exit(code),
    (e) => {
      console.error(`nimbostack: ${e instanceof ConfigError ? e.message : (e as Error).message}`);
      process.exit(1);
    },
  );
