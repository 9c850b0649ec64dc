/** Turns validated page/pagesize into LIMIT/OFFSET (no paging parameters: the first default page). */
import { type SelectQueryBuilder, sql } from 'kysely';
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

/** The column the page's rows carry the total in (dropped before they are returned). */
const TOTAL = 'nimbo_page_total';

/**
 * A page and the number of rows matching in all, in one query: `count(*) over ()` is computed
 * before LIMIT/OFFSET, so every row of the page carries the total (one round trip instead of two,
 * which is most of a small list's cost on PostgreSQL). A page past the end has no row to carry it:
 * `count` is then asked separately. Not for queries with GROUP BY or DISTINCT (the window would
 * count groups of the page's query, which is what the list means only without them).
 */
export async function pageWithCount<DB, TB extends keyof DB, O>(
  qb: SelectQueryBuilder<DB, TB, O>,
  page: Page,
  count: () => Promise<number>,
): Promise<{ rows: O[]; count: number }> {
  const rows = (await paginate(
    qb.select(sql<number>`count(*) over ()`.as(TOTAL) as never),
    page,
  ).execute()) as (O & { [TOTAL]?: number | string })[];
  if (rows.length === 0) return { rows: [], count: page.offset === 0 ? 0 : await count() };
  const total = Number(rows[0]![TOTAL]);
  for (const r of rows) delete r[TOTAL];
  return { rows, count: total };
}
