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
