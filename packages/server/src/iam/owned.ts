/**
 * The one path by which commands reach account-owned resources.
 *
 * - `findOwned` finds a resource by uuid and checks the caller may act on it, with upstream's
 *   answers: 431 "Unable to find <noun> by id <uuid>" when nothing live has that uuid, 531 when it
 *   belongs to an account outside the caller's reach (their own account for users, their domain
 *   subtree for domain and resource admins, everything for root admins).
 * - `listOwned` scopes a list (account / domainid / isrecursive / listall / id, as upstream's
 *   buildACLSearchParameters), counts it and returns one page. A list whose rows others may see
 *   without owning them (domain-wide networks, free public addresses) passes a small `alsoVisible`
 *   condition, ORed with the scope.
 *
 * Projects: a project's resources are owned by its account (type 5); `findOwned`/`checkRowAccess`
 * let the project's members act on them, and `listOwned` lists them with `projectid` only (a
 * project's uuid, or -1 for every project the caller may see; projects/access.ts).
 *
 * `ownerFieldsOf` gives presenters the owner fields of a page of rows (account, domainid, domain,
 * domainpath), read once for the whole page.
 *
 * `checkRowAccess` checks a row already read; a capability whose objects others may use without
 * owning them (public or shared templates) passes it a small `mayUse` predicate, and the owner
 * check stays here.
 */
import type { Expression, ExpressionBuilder, Selectable, SelectQueryBuilder, SqlBool } from 'kysely';
import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { memberOfProjectAccount } from '../projects/access.ts';
import { type ListResult, listResult } from '../registry/command.ts';
import { countedPage, type Page, pageOf } from '../registry/paging.ts';
import {
  applyScope,
  canReachDomain,
  checkOwnerAccess,
  listScope,
  type OwnerScope,
  type ScopeParams,
  scopedCount,
} from './access.ts';
import { displayPath } from './domains.ts';

/** Tables whose rows are owned by an account: a uuid, the owning account and its domain. */
export type OwnedTable = {
  [T in keyof Database]: Selectable<Database[T]> extends {
    uuid: string;
    account_id: number | null;
    domain_id: number | null;
  }
    ? T
    : never;
}[keyof Database];

interface OwnerColumns {
  uuid: string;
  account_id: number | null;
  domain_id: number | null;
}

/** A row of an owned table (OwnedTable guarantees the owner columns; spelt out for the checker). */
export type OwnedRow<T extends OwnedTable> = Selectable<Database[T]> & OwnerColumns;

export interface OwnedLookup<T extends OwnedTable> {
  /** The noun of the 431 text: "Unable to find <noun> by id <uuid>". */
  noun: string;
  /**
   * Whether the row exists for the API beyond not being removed (rows with a `removed` time are
   * always gone): e.g. a rule being revoked, an address that is free, an ISO asked for as a template.
   */
  live?: (row: OwnedRow<T>) => boolean;
  /** Read inside this transaction (e.g. one that holds the row's lock). */
  tx?: Tx;
}

/** A live account-owned row by uuid the caller may act on: 431 unknown, 531 not theirs. */
export async function findOwned<T extends OwnedTable>(
  ctx: CallContext,
  table: T,
  uuid: string,
  lookup: OwnedLookup<T>,
): Promise<OwnedRow<T>> {
  const db = lookup.tx ?? ctx.app.store.db;
  // Kysely cannot follow a table name that is a type parameter; OwnedTable guarantees the columns.
  const row = (await db
    .selectFrom(table as 'vms')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst()) as OwnedRow<T> | undefined;
  const removed = (row as { removed?: unknown } | undefined)?.removed;
  if (!row || (removed !== undefined && removed !== null) || (lookup.live && !lookup.live(row)))
    throw invalidParameter(`Unable to find ${lookup.noun} by id ${uuid}`);
  await checkRowAccess(ctx, row, undefined, db);
  return row;
}

/** Checks the caller may act on an account-owned row already read (531 otherwise). */
export async function checkRowAccess<R extends { account_id: number | null; domain_id: number | null }>(
  ctx: CallContext,
  row: R,
  mayUse?: (ctx: CallContext, row: R) => boolean | Promise<boolean>,
  db: Tx = ctx.app.store.db,
): Promise<void> {
  if (row.account_id !== null && row.account_id === ctx.caller.account.id) return;
  if (mayUse && (await mayUse(ctx, row))) return;
  // A row with no domain (none today) would be the root domain's: root admins only.
  const domain = (row.domain_id !== null &&
    (await db
      .selectFrom('domains')
      .select(['path', 'name'])
      .where('id', '=', row.domain_id)
      .executeTakeFirst())) || {
    path: '/',
    name: 'ROOT',
  };
  // A project's resources belong to its account: its members act on them as on their own.
  if (
    row.account_id !== null &&
    !canReachDomain(ctx.caller, domain) &&
    (await memberOfProjectAccount(db, ctx.caller, row.account_id))
  )
    return;
  checkOwnerAccess(ctx.caller, { accountId: row.account_id ?? -1, domain });
}

export interface ListParams extends ScopeParams {
  page?: number;
  pagesize?: number;
  retrieveonlyresourcecount?: boolean;
}

export interface OwnedListSpec<DB, TB extends keyof DB, O, R> {
  /** The owning account's and domain's columns, e.g. `volumes.account_id`, `volumes.domain_id`. */
  owner: { account: string; domain: string };
  /** Selects the page's rows (columns and order) from the scoped, filtered query. */
  rows: (q: SelectQueryBuilder<DB, TB, O>, page: Page) => Promise<R[]>;
  present: (rows: R[]) => Promise<object[]>;
  /** The command's own parameter checks (unknown ids: 431), made after the scope's own. */
  checks?: () => Promise<void>;
  /**
   * Rows shown outside the caller's scope too, for a capability whose objects others may see
   * without owning them: domain-wide networks to the accounts that may use them, free addresses
   * to those who may acquire them.
   */
  alsoVisible?: (eb: ExpressionBuilder<DB, TB>) => Expression<SqlBool>;
  /**
   * The scope when the command has already decided it instead of the caller's list parameters:
   * a VM's affinity groups are listed whoever owns them once the VM's lookup let the caller see it.
   */
  scope?: OwnerScope;
}

/**
 * A list of account-owned rows: `q` carries the command's own filters (id, name, keyword...); this
 * adds the caller's ownership scope, counts, reads one page and presents it.
 */
export async function listOwned<DB extends Database, TB extends keyof DB, O, R>(
  ctx: CallContext,
  params: ListParams,
  q: SelectQueryBuilder<DB, TB, O>,
  spec: OwnedListSpec<DB, TB, O, R>,
): Promise<ListResult> {
  const scope = spec.scope ?? (await listScope(ctx, params));
  const scoped = applyScope(q, scope, spec.owner, spec.alsoVisible);
  await spec.checks?.();
  const count = async () =>
    Number(
      (await scopedCount(q, scope, spec.owner, spec.alsoVisible).execute(ctx.app.store.db)).rows[0]!.count,
    );
  if (params.retrieveonlyresourcecount) return listResult([], await count());
  const page = pageOf(ctx.app, params);
  const { rows, count: total } = await countedPage(page, () => spec.rows(scoped, page), count);
  return listResult(await spec.present(rows), total);
}

export interface OwnerFields {
  account?: string;
  domainid?: string;
  domain?: string;
  domainpath?: string;
}

/** account, domainid, domain and domainpath of each row's owner, read once for all the rows. */
export async function ownerFieldsOf(
  app: App,
  rows: { account_id: number; domain_id: number }[],
): Promise<(row: { account_id: number; domain_id: number }) => OwnerFields> {
  const db = app.store.db;
  const accountIds = [...new Set(rows.map((r) => r.account_id))];
  const domainIds = [...new Set(rows.map((r) => r.domain_id))];
  const [accounts, domains] = await Promise.all([
    accountIds.length
      ? db.selectFrom('accounts').select(['id', 'name']).where('id', 'in', accountIds).execute()
      : [],
    domainIds.length
      ? db.selectFrom('domains').select(['id', 'uuid', 'name', 'path']).where('id', 'in', domainIds).execute()
      : [],
  ]);
  return (row) => {
    const domain = domains.find((d) => d.id === row.domain_id);
    return {
      account: accounts.find((a) => a.id === row.account_id)?.name,
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
    };
  };
}

/**
 * Virtual machines as account-owned resources, named by every capability (networking rules, nics,
 * volumes, snapshots): one being expunged is gone; `OWNED_VM_OR_DESTROYED` still finds it.
 */
export const OWNED_VM: OwnedLookup<'vms'> = {
  noun: 'virtual machine',
  live: (vm) => vm.state !== 'Expunging',
};
export const OWNED_VM_OR_DESTROYED: OwnedLookup<'vms'> = { noun: 'virtual machine' };
