/**
 * Who may see and touch what. Root admins reach everything; domain and resource admins reach the
 * accounts of their domain subtree; users reach only their own account. List commands turn the
 * listall / domainid / isrecursive / account parameters into an ownership filter here.
 */
import {
  type Expression,
  type ExpressionBuilder,
  type RawBuilder,
  type SelectQueryBuilder,
  type SqlBool,
  sql,
} from 'kysely';
import type { CallContext, Caller } from '../context.ts';
import type { Database, DomainRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { isProjectAccount, projectScope } from '../projects/access.ts';

export function inSubtree(path: string, ancestorPath: string): boolean {
  return path.startsWith(ancestorPath);
}

/** Whether the caller administers (or is) the given domain. */
export function canReachDomain(caller: Caller, domain: Pick<DomainRow, 'path'>): boolean {
  if (caller.roleKind === 'admin') return true;
  if (caller.roleKind === 'user') return false;
  return inSubtree(domain.path, caller.domain.path);
}

/** Checks the caller may act on something owned by `accountId` in `domain`; 531 otherwise. */
export function checkOwnerAccess(
  caller: Caller,
  owner: { accountId: number; domain: Pick<DomainRow, 'path' | 'name'> },
): void {
  if (caller.account.id === owner.accountId) return;
  if (canReachDomain(caller, owner.domain)) return;
  throw permissionDenied(
    `Account ${caller.account.name} does not have permission to access resources of another account in domain ${owner.domain.name}`,
  );
}

export function checkDomainAccess(caller: Caller, domain: Pick<DomainRow, 'path' | 'name'>): void {
  if (!canReachDomain(caller, domain)) {
    throw permissionDenied(
      `Account ${caller.account.name} does not have permission to operate within domain ${domain.name}`,
    );
  }
}

export interface ScopeParams {
  account?: string;
  domainid?: string;
  listall?: boolean;
  isrecursive?: boolean;
  id?: string;
  /** A project's uuid (its resources), or -1 (those of every project the caller may see). */
  projectid?: string;
}

/**
 * An ownership filter: no filter, exactly these accounts, one domain, or a domain subtree; with
 * `projects`, rows of project accounts are left out ('skip': lists without projectid, as upstream)
 * or are the only ones kept ('only': projectid=-1 for admins).
 */
export type OwnerScope = (
  | { kind: 'all' }
  | { kind: 'accounts'; accountIds: number[] }
  | { kind: 'domain'; domainId: number }
  | { kind: 'subtree'; path: string }
) & { projects?: 'skip' | 'only' };

export async function findDomainByUuid(ctx: CallContext, uuid: string): Promise<DomainRow> {
  const domain = await ctx.app.store.db
    .selectFrom('domains')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!domain) throw invalidParameter(`Unable to find domain by id ${uuid}`);
  return domain;
}

export async function listScope(ctx: CallContext, p: ScopeParams): Promise<OwnerScope> {
  if (p.projectid !== undefined) return projectScope(ctx, p.projectid);
  const scope = await accountScope(ctx, p);
  // Project resources are listed with projectid only, unless the list names one object by id.
  return scope.kind === 'accounts' || p.id ? scope : { ...scope, projects: 'skip' };
}

async function accountScope(ctx: CallContext, p: ScopeParams): Promise<OwnerScope> {
  const { caller } = ctx;
  if (caller.roleKind === 'user') return { kind: 'accounts', accountIds: [caller.account.id] };
  let domain: DomainRow = caller.domain;
  if (p.domainid) {
    domain = await findDomainByUuid(ctx, p.domainid);
    checkDomainAccess(caller, domain);
  }
  if (p.account) {
    const account = await ctx.app.store.db
      .selectFrom('accounts')
      .select('id')
      .where('name', '=', p.account)
      .where('domain_id', '=', domain.id)
      .executeTakeFirst();
    if (!account) throw invalidParameter(`Unable to find account ${p.account} in domain ${domain.name}`);
    return { kind: 'accounts', accountIds: [account.id] };
  }
  if (p.domainid)
    return p.isrecursive ? { kind: 'subtree', path: domain.path } : { kind: 'domain', domainId: domain.id };
  if (p.listall || p.id) {
    return caller.roleKind === 'admin' ? { kind: 'all' } : { kind: 'subtree', path: caller.domain.path };
  }
  return { kind: 'accounts', accountIds: [caller.account.id] };
}

/**
 * Applies an ownership scope to a query over a table with account and domain columns; rows
 * `alsoVisible` accepts are shown outside the scope too (domain-wide networks to their users).
 */
export function applyScope<DB extends Database, TB extends keyof DB, O>(
  qb: SelectQueryBuilder<DB, TB, O>,
  scope: OwnerScope,
  columns: { account: string; domain: string },
  alsoVisible?: (eb: ExpressionBuilder<DB, TB>) => Expression<SqlBool>,
): SelectQueryBuilder<DB, TB, O> {
  const everything = scope.kind === 'all' || (scope.kind === 'subtree' && scope.path === '/');
  if (everything && !scope.projects) return qb;
  return qb.where((eb: ExpressionBuilder<DB, TB>) => {
    const owned = scope.projects
      ? eb.and([scopeCondition(eb, scope, columns), projectCondition(scope.projects, columns.account)])
      : scopeCondition(eb, scope, columns);
    return alsoVisible ? eb.or([owned, alsoVisible(eb)]) : owned;
  });
}

/**
 * Rows of project accounts only, or none of them; rows with no owner are not a project's and stay
 * with 'skip' (`NOT (NULL IN (…))` alone would drop them whenever a project exists).
 */
function projectCondition(projects: 'skip' | 'only', account: string): Expression<SqlBool> {
  return projects === 'only'
    ? sql<SqlBool>`${isProjectAccount(account)}`
    : sql<SqlBool>`(${sql.ref(account)} is null or not ${isProjectAccount(account)})`;
}

/**
 * `select count(*)` of `applyScope(qb, scope, columns, alsoVisible)`, as one statement. A scope that
 * leaves project resources out ('skip', every admin list without projectid) is counted as the rows
 * of the scope less those of project accounts: testing each row's account against the projects'
 * accounts cost more than the count itself (a million VMs on SQLite: 77 ms where the scope's rows
 * alone take 27 ms, 215 ms before the live index carried the account), while the project accounts'
 * rows are found from the account's index. Both counts are subqueries of one statement, so they
 * see the same data.
 */
export function scopedCount<DB extends Database, TB extends keyof DB, O>(
  qb: SelectQueryBuilder<DB, TB, O>,
  scope: OwnerScope,
  columns: { account: string; domain: string },
  alsoVisible?: (eb: ExpressionBuilder<DB, TB>) => Expression<SqlBool>,
): RawBuilder<{ count: number | string }> {
  const count = (q: SelectQueryBuilder<DB, TB, O>) => q.select(sql<number>`count(*)`.as('count') as never);
  if (scope.projects !== 'skip' || alsoVisible)
    return sql<{
      count: number | string;
    }>`select (${count(applyScope(qb, scope, columns, alsoVisible))}) as count`;
  const all = count(applyScope(qb, { ...scope, projects: undefined }, columns));
  const inProjects = count(applyScope(qb, { ...scope, projects: 'only' }, columns));
  return sql<{ count: number | string }>`select (${all}) - (${inProjects}) as count`;
}

/** An ownership scope as a condition. */
function scopeCondition<DB, TB extends keyof DB>(
  eb: ExpressionBuilder<DB, TB>,
  scope: OwnerScope,
  columns: { account: string; domain: string },
): Expression<SqlBool> {
  switch (scope.kind) {
    case 'all':
      return sql<SqlBool>`1 = 1`;
    case 'accounts':
      // No accounts (a user in no project asking for projectid=-1): nothing matches.
      if (scope.accountIds.length === 0) return sql<SqlBool>`1 = 0`;
      return eb(sql.ref(columns.account), 'in', scope.accountIds);
    case 'domain':
      return eb(sql.ref(columns.domain), '=', scope.domainId);
    case 'subtree':
      if (scope.path === '/') return sql<SqlBool>`1 = 1`;
      return eb(
        sql.ref(columns.domain),
        'in',
        sql`(select id from domains where ${pathPrefix('path', scope.path)})`,
      );
  }
}

/** Escapes LIKE's wildcards (and the escape character '!') so the text matches literally; use with likeEscaped(). */
export function escapeLike(text: string): string {
  return text.replace(/[!%_]/g, (c) => `!${c}`);
}

/**
 * `column LIKE pattern ESCAPE '!'`: the one way to match a pattern built from escapeLike() text.
 * No dialect has '!' as its default escape (SQLite has none, PostgreSQL and MariaDB use '\'), so
 * the clause is always declared. `op` is 'ilike' for case-insensitive matches on PostgreSQL (likeOp).
 */
export function likeEscaped(
  column: string | Expression<unknown>,
  pattern: string,
  op: 'like' | 'ilike' = 'like',
): Expression<SqlBool> {
  const ref = typeof column === 'string' ? sql.ref(column) : column;
  return sql<SqlBool>`${ref} ${sql.raw(op)} ${pattern} escape '!'`;
}

/** Rows whose column (a domain path) starts with the given path, wildcards in it taken literally. */
export function pathPrefix(column: string, path: string): Expression<SqlBool> {
  return likeEscaped(column, `${escapeLike(path)}%`);
}
