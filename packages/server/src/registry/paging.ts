/** Turns validated page/pagesize into LIMIT/OFFSET (no paging parameters: the first default page). */
import type { SelectQueryBuilder } from 'kysely';
import type { App } from '../context.ts';
import { DEFAULT_PAGE_SIZE } from '../settings/core-settings.ts';

export interface Page {
  limit?: number;
  offset: number;
}

export function pageOf(app: App, params: { page?: number; pagesize?: number }): Page {
  if (params.pagesize === -1) return { offset: 0 };
  const size = params.pagesize ?? app.settings.get(DEFAULT_PAGE_SIZE);
  return { limit: size, offset: ((params.page ?? 1) - 1) * size };
}

/** Applies a page to a query (pagesize=-1 means no limit). */
export function paginate<DB, TB extends keyof DB, O>(
  qb: SelectQueryBuilder<DB, TB, O>,
  page: Page,
): SelectQueryBuilder<DB, TB, O> {
  return page.limit === undefined ? qb : qb.limit(page.limit).offset(page.offset);
}

/**
 * A page and the number of rows matching in all. A page that is not full holds the last of them,
 * so the total is its offset plus its rows and `count` is not asked: most lists (an account's
 * volumes, its networks, the zones) fit in one page, and the count was a statement of its own, as
 * costly as the page on SQLite (a `count(*) over ()` window folded into the page cost more than
 * both). A full page, or one past the end, asks `count`.
 */
export async function countedPage<R>(
  page: Page,
  rows: () => Promise<R[]>,
  count: () => Promise<number>,
): Promise<{ rows: R[]; count: number }> {
  const got = await rows();
  const last = page.limit === undefined || got.length < page.limit;
  if (last && (got.length > 0 || page.offset === 0)) return { rows: got, count: page.offset + got.length };
  return { rows: got, count: await count() };
}
