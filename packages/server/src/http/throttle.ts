/**
 * Per-account API rate limit (api.throttling.*), off by default as upstream. The limit is the
 * cloud's, not each server's: an account may make api.throttling.max calls per interval whichever
 * servers a load balancer sends them to, so adding a server does not raise what a tenant may do
 * and a round-robin balancer does not multiply it. With PostgreSQL or MariaDB the servers count in
 * the database (api_call_counts: one row per account and window, one upsert per call while the
 * limit is on); with SQLite there is one server and the count stays in its memory. Windows are
 * fixed slices of the interval (every server cuts them the same way), so a burst across a boundary
 * may see up to twice the limit within one interval.
 */
import { sql } from 'kysely';
import type { Store } from '../db/connection.ts';
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
import {
  API_THROTTLING_CACHESIZE,
  API_THROTTLING_ENABLED,
  API_THROTTLING_INTERVAL,
  API_THROTTLING_MAX,
} from '../settings/core-settings.ts';
import type { Settings } from '../settings/settings.ts';

/** How often a server deletes windows that have ended. */
const SWEEP_MS = 60_000;

export class Throttle {
  /** SQLite: the count of each account's current window (at most api.throttling.cachesize). */
  private readonly windows = new Map<number, { start: number; count: number }>();
  private lastSweep = 0;

  /** `scope` keeps the counts of different APIs apart (the EC2 endpoint counts on its own). */
  constructor(
    private readonly app: { settings: Settings; store: Store },
    private readonly scope: 'api' | 'ec2' = 'api',
  ) {}

  /** Counts a call of `accountId`; throws the 429 once the account is over the limit. */
  async check(accountId: number, now: number): Promise<void> {
    const settings = this.app.settings;
    if (!settings.get(API_THROTTLING_ENABLED)) return;
    const interval = settings.get(API_THROTTLING_INTERVAL) * 1000;
    const start = now - (now % interval);
    const count =
      this.app.store.dialect === 'sqlite'
        ? this.countHere(accountId, start)
        : await this.countInDatabase(accountId, start, now, interval);
    if (count > settings.get(API_THROTTLING_MAX)) {
      throw new ApiError(
        ErrorCode.API_LIMIT_EXCEED,
        CsErrorCode.REQUEST_LIMIT,
        `The given user has reached his/her account api limit, please retry after ${start + interval - now} ms.`,
      );
    }
  }

  private countHere(accountId: number, start: number): number {
    let w = this.windows.get(accountId);
    if (!w || w.start !== start) {
      if (!w && this.windows.size >= this.app.settings.get(API_THROTTLING_CACHESIZE)) {
        const oldest = this.windows.keys().next().value;
        if (oldest !== undefined) this.windows.delete(oldest);
      }
      w = { start, count: 0 };
      this.windows.set(accountId, w);
    }
    return ++w.count;
  }

  private async countInDatabase(accountId: number, start: number, now: number, interval: number) {
    const db = this.app.store.db;
    const key = { scope: this.scope, account_id: accountId, window_start: start };
    if (now - this.lastSweep > SWEEP_MS) {
      this.lastSweep = now;
      // Ended windows; another server may sweep the same rows, which is harmless.
      db.deleteFrom('api_call_counts')
        .where('window_start', '<', now - interval - SWEEP_MS)
        .execute()
        .catch(() => undefined);
    }
    if (this.app.store.dialect === 'mysql') {
      // No RETURNING: the row stays locked by the increment until the read in the same transaction.
      return db.transaction().execute(async (tx) => {
        await tx
          .insertInto('api_call_counts')
          .values({ ...key, calls: 1 })
          .onDuplicateKeyUpdate({ calls: sql`calls + 1` })
          .execute();
        const row = await tx
          .selectFrom('api_call_counts')
          .select('calls')
          .where('scope', '=', key.scope)
          .where('account_id', '=', accountId)
          .where('window_start', '=', start)
          .executeTakeFirstOrThrow();
        return Number(row.calls);
      });
    }
    const row = await db
      .insertInto('api_call_counts')
      .values({ ...key, calls: 1 })
      .onConflict((oc) =>
        oc
          .columns(['scope', 'account_id', 'window_start'])
          .doUpdateSet({ calls: (eb) => eb('api_call_counts.calls', '+', 1) }),
      )
      .returning('calls')
      .executeTakeFirstOrThrow();
    return Number(row.calls);
  }
}
