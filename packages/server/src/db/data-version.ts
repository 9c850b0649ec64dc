/**
 * A cheap token of "what the database holds now", for keeping answers computed from it: as long as
 * the token read before computing an answer is still the token, no transaction has committed a
 * change since, on this server or on any other sharing the database.
 *
 * - SQLite: `total_changes()` counts every row this connection has inserted, updated or deleted
 *   (triggers included; a rolled-back change is counted too, which only makes the token change
 *   more often), and `data_version` changes whenever another connection, in this or another
 *   process, commits. The statement runs through the store's one connection, so it never sees a
 *   half-done transaction of this process.
 * - PostgreSQL: the current snapshot (`xmin:xmax:in-progress ids`). Two equal snapshots see
 *   exactly the same committed transactions; any transaction that writes takes a transaction id,
 *   and its commit removes that id from the in-progress list or moves xmax, so a snapshot never
 *   comes back to an earlier text once something committed. Read-only transactions take no id.
 * - MySQL/MariaDB: no such token without extra privileges (the binary log position needs them):
 *   undefined, and nothing is kept.
 *
 * The token changes on every write anywhere in the database (host pings, leases, jobs): it says
 * when something may have changed, not what.
 */
import { sql } from 'kysely';
import type { Store } from './connection.ts';

export type DataVersion = () => Promise<string>;

export function dataVersionOf(store: Store): DataVersion | undefined {
  if (store.dialect === 'sqlite') {
    const query = sql<{
      v: string;
    }>`select total_changes() || ':' || (select data_version from pragma_data_version) as v`;
    return async () => (await query.execute(store.db)).rows[0].v;
  }
  if (store.dialect === 'postgres') {
    // txid_current_snapshot() rather than pg_current_snapshot(): the same text, and it exists
    // before PostgreSQL 13 too.
    const query = sql<{ v: string }>`select txid_current_snapshot()::text as v`;
    return async () => (await query.execute(store.db)).rows[0].v;
  }
  return undefined;
}
