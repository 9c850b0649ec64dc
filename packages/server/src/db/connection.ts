/**
 * Opens the database named by DATABASE_URL with the matching Kysely dialect:
 * sqlite:<file> (embedded default), postgres://... or mysql://... (also mariadb://...).
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import SQLite from 'better-sqlite3';
import {
  CompiledQuery,
  type DatabaseConnection,
  Kysely,
  type KyselyConfig,
  type LogEvent,
  MysqlDialect,
  PostgresDialect,
  SqliteAdapter,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  type Transaction,
} from 'kysely';
import { createPool as createMysqlPool } from 'mysql2';
import pg from 'pg';
import type { Database } from './schema.ts';

export type DialectName = 'sqlite' | 'postgres' | 'mysql';

export type Db = Kysely<Database>;
export type Tx = Transaction<Database> | Kysely<Database>;

export interface Store {
  db: Db;
  dialect: DialectName;
  /** Human-readable target with credentials removed, for logs. */
  describe: string;
  close(): Promise<void>;
  /** Connections of the pool (PostgreSQL, MySQL); SQLite has one connection and no pool. */
  poolStats?: () => { total: number; idle: number; waiting: number };
}

export interface StoreOptions {
  /** Told of every statement run, its duration and whether it failed (statement metrics). */
  onQuery?: (sql: string, seconds: number, failed: boolean) => void;
}

/**
 * NIMBOSTACK_SQL_TRACE=<directory>: every statement a process runs is appended to
 * `<directory>/sql-<pid>.tsv` as one line, `<epoch ms at its end>\t<duration ms>\t<SQL>`, for
 * counting a call's round trips and finding where its database time goes (bench/sql-trace.ts
 * summarises it). Off unless set: the write costs a little CPU per statement.
 */
function traceHook(): ((event: LogEvent) => void) | undefined {
  const dir = process.env.NIMBOSTACK_SQL_TRACE;
  if (!dir) return undefined;
  mkdirSync(dir, { recursive: true });
  const out = createWriteStream(join(dir, `sql-${process.pid}.tsv`), { flags: 'a' });
  return (event: LogEvent) => {
    const sql = event.query.sql.replace(/\s+/g, ' ');
    out.write(`${Date.now()}\t${event.queryDurationMillis.toFixed(3)}\t${sql}\n`);
  };
}

/** Kysely's log hook turned into onQuery: Kysely measures each statement itself. */
function queryLog(options: StoreOptions): KyselyConfig['log'] {
  const onQuery = options.onQuery;
  const trace = traceHook();
  if (!onQuery && !trace) return undefined;
  return (event: LogEvent) => {
    onQuery?.(event.query.sql, event.queryDurationMillis / 1000, event.level === 'error');
    trace?.(event);
  };
}

// PostgreSQL returns BIGINT (our epoch-millisecond times, and COUNT(*)) as strings by default.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

/**
 * SQLite runs DDL inside transactions perfectly well, but Kysely's adapter says it doesn't, which
 * would make its migrator apply migrations one by one without a transaction. Saying so lets a
 * failed upgrade roll back completely.
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/**
 * Transactions take SQLite's write lock when they begin (BEGIN IMMEDIATE). A deferred transaction
 * that reads, then writes after another process committed, fails at once with SQLITE_BUSY: the
 * busy timeout is not applied to that upgrade. Taken at BEGIN, the lock waits like any write.
 * Inside this process nothing changes: it has one connection, used by one transaction at a time.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class TransactionalSqliteDialect extends SqliteDialect {
  constructor(private readonly config: SqliteDialectConfig) {
    super(config);
  }

  override createAdapter(): SqliteAdapter {
    return new TransactionalSqliteAdapter();
  }

  override createDriver(): SqliteDriver {
    return new ImmediateSqliteDriver(this.config);
  }
}

/** How many prepared statements a SQLite connection keeps (one per distinct SQL text). */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely's SQLite driver calls `prepare()` for every query, and better-sqlite3 compiles the SQL
 * each time (about 4% of the server's CPU on cheap calls). The same SQL text always compiles to
 * the same statement, so keep the most recently used ones (a Map in insertion order is the LRU).
 * A statement still being iterated (a streamed query) is busy and cannot run again until it is
 * done: such a call gets a fresh statement instead. SQLite re-prepares a cached statement by
 * itself after a schema change.
 */
function withStatementCache(sqlite: SQLite.Database): SqliteDialectConfig['database'] {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => {
      cache.clear();
      sqlite.close();
    },
    prepare(text: string) {
      const hit = cache.get(text);
      if (hit && !hit.busy) {
        cache.delete(text);
        cache.set(text, hit);
        return hit;
      }
      const stmt = sqlite.prepare(text);
      if (!hit) {
        cache.set(text, stmt);
        if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      return stmt;
    },
  };
}

/** How many named statements a PostgreSQL connection prepares at most (it never forgets one). */
const NAMED_STATEMENTS_PER_CONNECTION = 300;
/** A statement is named once its text has run this often in the process (not for one-off texts). */
const NAME_AFTER_RUNS = 3;
/** How many distinct texts are counted at most before the count starts again. */
const COUNTED_TEXTS = 5000;

/**
 * pg runs every statement with parameters unnamed: PostgreSQL parses, analyses and plans it again
 * each time. A statement given a name is parsed once per connection, and each later run sends only
 * its parameters. Kysely's dialect has no hook for that, so each new client's `query` names the
 * texts that have run a few times by then: Kysely sends a text and its parameters, nothing that
 * varies per call is in the text, but `in (...)` lists give one text per length, so the rare ones
 * stay unnamed and a connection prepares at most NAMED_STATEMENTS_PER_CONNECTION statements
 * (pg keeps the ones a connection has prepared until it closes). Statements without parameters
 * (`begin`, `commit`) keep the simple protocol, a single message.
 */
function nameStatements(pool: pg.Pool): void {
  const runs = new Map<string, number>();
  pool.on('connect', (client) => {
    const named = new Map<string, string>();
    let names = 0;
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((config: unknown, values?: unknown, callback?: unknown) => {
      if (typeof config !== 'string' || !Array.isArray(values) || values.length === 0 || callback)
        return query(config, values, callback);
      let name = named.get(config);
      if (name === undefined && named.size < NAMED_STATEMENTS_PER_CONNECTION) {
        const seen = (runs.get(config) ?? 0) + 1;
        if (runs.size >= COUNTED_TEXTS && seen === 1) runs.clear();
        runs.set(config, seen);
        if (seen >= NAME_AFTER_RUNS) {
          name = `n${names++}`;
          named.set(config, name);
        }
      }
      if (name === undefined) return query(config, values);
      return (query({ name, text: config, values }) as Promise<unknown>).catch((e: unknown) => {
        // "cached plan must not change result type": another server changed the table under a
        // `select *` (a migration during a rolling upgrade). That run fails; the text is prepared
        // afresh under a new name on its next run.
        if ((e as { code?: unknown }).code === '0A000') named.delete(config);
        throw e;
      });
    }) as typeof client.query;
  });
}

export function dialectOf(url: string): DialectName {
  if (url.startsWith('sqlite:') || url.startsWith('file:')) return 'sqlite';
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) return 'postgres';
  if (url.startsWith('mysql://') || url.startsWith('mariadb://')) return 'mysql';
  throw new Error(`unsupported DATABASE_URL "${url}": use sqlite:<file>, postgres://... or mysql://...`);
}

export function openStore(url: string, options: StoreOptions = {}): Store {
  const log = queryLog(options);
  const dialect = dialectOf(url);
  if (dialect === 'sqlite') {
    const file = url.replace(/^(sqlite|file):(\/\/)?/, '');
    if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
    const sqlite = new SQLite(file);
    // WAL lets readers run during writes; FULL sync makes every committed transaction durable.
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    const db = new Kysely<Database>({
      dialect: new TransactionalSqliteDialect({ database: withStatementCache(sqlite) }),
      log,
    });
    return { db, dialect, describe: `sqlite:${file}`, close: () => db.destroy() };
  }
  const redacted = url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
  if (dialect === 'postgres') {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    // An idle connection the database closes (a restart, an administrator) is an 'error' event on
    // the pool; unhandled it would crash the server. The pool drops that client and the next
    // query connects afresh, so there is nothing else to do.
    pool.on('error', () => undefined);
    nameStatements(pool);
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log });
    const poolStats = () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount });
    return { db, dialect, describe: redacted, close: () => db.destroy(), poolStats };
  }
  const pool = createMysqlPool({
    uri: url.replace(/^mariadb:/, 'mysql:'),
    connectionLimit: 10,
    supportBigNumbers: true,
    charset: 'utf8mb4',
  });
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool }), log });
  // mysql2 keeps its counts in fields of its own (no public accessors); read defensively.
  const internals = pool as unknown as Record<string, { length: number } | undefined>;
  const poolStats = () => ({
    total: internals._allConnections?.length ?? 0,
    idle: internals._freeConnections?.length ?? 0,
    waiting: internals._connectionQueue?.length ?? 0,
  });
  return { db, dialect, describe: redacted, close: () => db.destroy(), poolStats };
}

/**
 * Whether the database rolled a transaction back because of a conflict with a concurrent one
 * (a deadlock on MySQL/MariaDB, a serialization failure or deadlock on PostgreSQL): running the
 * whole transaction again is then safe and usually succeeds.
 */
export function isRetryableConflict(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return (
    code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT' || code === '40001' || code === '40P01'
  );
}

/**
 * Runs `fn` in a transaction, again (a few times, after a short random pause) when the database
 * aborted it for a conflict with a concurrent transaction. `fn` must only touch the database
 * through `tx`, so that a retry starts from a clean slate.
 */
export async function inTransaction<T>(
  store: Pick<Store, 'db'>,
  fn: (tx: Transaction<Database>) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.db.transaction().execute(fn);
    } catch (e) {
      if (attempt >= attempts || !isRetryableConflict(e)) throw e;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
}

/** Inserts one row and returns its integer key, on every dialect (MySQL has no RETURNING). */
export async function insertId<T extends keyof Database & string>(
  store: Pick<Store, 'dialect'>,
  tx: Tx,
  table: T,
  values: Record<string, unknown>,
): Promise<number> {
  // biome-ignore lint/suspicious/noExplicitAny: the table name is generic, Kysely cannot narrow it here
  const q = tx.insertInto(table).values(values as any);
  if (store.dialect === 'postgres') {
    // biome-ignore lint/suspicious/noExplicitAny: every table has an integer id column
    const row = (await q.returning('id' as any).executeTakeFirstOrThrow()) as { id: number };
    return Number(row.id);
  }
  const r = await q.executeTakeFirstOrThrow();
  return Number(r.insertId);
}
