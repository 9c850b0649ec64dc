/** Lookups and database helpers shared by the networking commands. */
import { type Expression, sql } from 'kysely';
import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database, NetworkRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import type { EventOwner } from '../events/events.ts';

/**
 * Inserts a row unless it would break a unique key, and says whether it went in. Lost races on
 * addresses and MACs end here without aborting the caller's transaction: PostgreSQL would otherwise
 * poison the whole deployment transaction on the first duplicate key.
 */
export async function insertUnlessTaken<T extends keyof Database & string>(
  app: Pick<App, 'store'>,
  tx: Tx,
  table: T,
  values: Record<string, unknown>,
): Promise<boolean> {
  // biome-ignore lint/suspicious/noExplicitAny: the table name is generic, Kysely cannot narrow it here
  const q = tx.insertInto(table).values(values as any);
  const r =
    app.store.dialect === 'mysql'
      ? await q.ignore().executeTakeFirst()
      : await q.onConflict((oc) => oc.doNothing()).executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** 32 random bits from the injected id source, so tests can make allocation deterministic. */
export function randomBits(app: Pick<App, 'ids'>): number {
  return Number.parseInt(app.ids.uuid().replace(/-/g, '').slice(0, 8), 16);
}

export async function findNetwork(
  ctx: Pick<CallContext, 'app'>,
  uuid: string,
  tx: Tx = ctx.app.store.db,
): Promise<NetworkRow> {
  const row = await tx
    .selectFrom('networks')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find network by id ${uuid}`);
  return row;
}

/** Whether an error is a foreign-key violation on SQLite, PostgreSQL or MySQL. */
export function isForeignKeyViolation(e: unknown): boolean {
  const err = e as { code?: string; errno?: number };
  return err.code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || err.code === '23503' || err.errno === 1451;
}

/**
 * Makes a read see rows other transactions committed after ours began. After losing an insert
 * race, MySQL's repeatable-read snapshot would still hide the winner's row; a locking read does
 * not. A shared lock, because the lost insert already holds one on that key (an exclusive read
 * would deadlock two losers), and in MariaDB's spelling, which has no FOR SHARE. PostgreSQL's
 * read-committed statements and SQLite's single writer see the row anyway.
 */
export function latest<Q extends { modifyEnd(modifier: Expression<unknown>): Q }>(
  app: Pick<App, 'store'>,
  q: Q,
): Q {
  return app.store.dialect === 'mysql' ? q.modifyEnd(sql`lock in share mode`) : q;
}

/**
 * Routers and the networks the server makes on its own belong to the system: events about them
 * are recorded for the root admin. Reads through `db`, so it can run inside a transaction.
 */
export async function systemOwner(app: Pick<App, 'store'>, db: Tx = app.store.db): Promise<EventOwner> {
  const row = await db
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select(['users.id as user_id', 'accounts.id as account_id', 'accounts.domain_id'])
    .where('accounts.type', '=', 1)
    .orderBy('accounts.id')
    .orderBy('users.id')
    .executeTakeFirstOrThrow();
  return { userId: row.user_id, accountId: row.account_id, domainId: row.domain_id };
}
