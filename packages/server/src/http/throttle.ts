/**
 * Per-account API rate limit (api.throttling.*), off by default as upstream. Counts live in this
 * server's memory: with several servers behind a balancer each enforces the limit on its share.
 */
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
import {
  API_THROTTLING_CACHESIZE,
  API_THROTTLING_ENABLED,
  API_THROTTLING_INTERVAL,
  API_THROTTLING_MAX,
} from '../settings/core-settings.ts';
import type { Settings } from '../settings/settings.ts';

export class Throttle {
  private readonly windows = new Map<number, { start: number; count: number }>();

  constructor(private readonly settings: Settings) {}

  check(accountId: number, now: number): void {
    if (!this.settings.get(API_THROTTLING_ENABLED)) return;
    const interval = this.settings.get(API_THROTTLING_INTERVAL) * 1000;
    const max = this.settings.get(API_THROTTLING_MAX);
    let w = this.windows.get(accountId);
    if (!w || now - w.start >= interval) {
      if (!w && this.windows.size >= this.settings.get(API_THROTTLING_CACHESIZE)) {
        const oldest = this.windows.keys().next().value;
        if (oldest !== undefined) this.windows.delete(oldest);
      }
      w = { start: now, count: 0 };
      this.windows.set(accountId, w);
    }
    w.count++;
    if (w.count > max) {
      const wait = w.start + interval - now;
      throw new ApiError(
        ErrorCode.API_LIMIT_EXCEED,
        CsErrorCode.REQUEST_LIMIT,
        `The given user has reached his/her account api limit, please retry after ${wait} ms.`,
      );
    }
  }
}
