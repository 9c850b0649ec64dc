/**
 * Where an offering may be used: public (no rows in offering_scopes), or limited to some domains
 * (and their subdomains) and/or some zones. Shared by service and disk offerings.
 */
import { type ExpressionBuilder, type SelectQueryBuilder, sql } from 'kysely';
import type { CallContext, Caller } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { canReachDomain, findDomainByUuid } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { roleKindOf } from '../iam/caller.ts';
import type { RoleKind } from '../registry/catalog.ts';
import { parseUuid } from '../registry/params.ts';

/** Which offerings' scopes (offering_scopes.offering_type): service, disk or network offerings. */
export type OfferingType = 'service' | 'disk' | 'network';

export interface OfferingScopes {
  domainIds: number[];
  zoneIds: number[];
}

/** Parses upstream's domainid / zoneid lists; "public" / "all" (on update) means everywhere. */
export async function resolveScopes(
  ctx: CallContext,
  domains: string[] | string | undefined,
  zones: string[] | string | undefined,
): Promise<Partial<OfferingScopes>> {
  const split = (v: string[] | string) =>
    (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean);
  const out: Partial<OfferingScopes> = {};
  if (domains !== undefined) {
    const items = split(domains);
    if (items.length === 1 && items[0].toLowerCase() === 'public') out.domainIds = [];
    else {
      out.domainIds = [];
      for (const uuid of items) {
        const domain = await findDomainByUuid(ctx, parseUuid(uuid, 'domainid'));
        if (!canReachDomain(ctx.caller, domain))
          throw permissionDenied(
            `Account ${ctx.caller.account.name} cannot offer resources in domain ${domain.name}`,
          );
        out.domainIds.push(domain.id);
      }
    }
  }
  if (zones !== undefined) {
    const items = split(zones);
    if (items.length === 1 && items[0].toLowerCase() === 'all') out.zoneIds = [];
    else {
      out.zoneIds = [];
      for (const uuid of items) {
        const zone = await ctx.app.store.db
          .selectFrom('zones')
          .select('id')
          .where('uuid', '=', parseUuid(uuid, 'zoneid'))
          .where('removed', 'is', null)
          .executeTakeFirst();
        if (!zone) throw invalidParameter(`Unable to find zone by id ${uuid}`);
        out.zoneIds.push(zone.id);
      }
    }
  }
  return out;
}

/** Non-root administrators may only make offerings for their own part of the domain tree. */
export function defaultScopes(caller: Caller, scopes: Partial<OfferingScopes>): Partial<OfferingScopes> {
  if (caller.roleKind === 'admin') return scopes;
  if (scopes.domainIds !== undefined && scopes.domainIds.length === 0)
    throw permissionDenied('Only root administrators can create public offerings');
  return { ...scopes, domainIds: scopes.domainIds ?? [caller.domain.id] };
}

export async function writeScopes(
  tx: Tx,
  type: OfferingType,
  offeringId: number,
  scopes: Partial<OfferingScopes>,
): Promise<void> {
  for (const [scope, ids] of [
    ['domain', scopes.domainIds],
    ['zone', scopes.zoneIds],
  ] as const) {
    if (ids === undefined) continue;
    await tx
      .deleteFrom('offering_scopes')
      .where('offering_type', '=', type)
      .where('offering_id', '=', offeringId)
      .where('scope', '=', scope)
      .execute();
    for (const id of new Set(ids)) {
      await tx
        .insertInto('offering_scopes')
        .values({ offering_type: type, offering_id: offeringId, scope, scope_id: id })
        .execute();
    }
  }
}

export async function scopesOf(
  ctx: CallContext,
  type: OfferingType,
  offeringId: number,
): Promise<OfferingScopes> {
  const rows = await ctx.app.store.db
    .selectFrom('offering_scopes')
    .select(['scope', 'scope_id'])
    .where('offering_type', '=', type)
    .where('offering_id', '=', offeringId)
    .execute();
  return {
    domainIds: rows.filter((r) => r.scope === 'domain').map((r) => r.scope_id),
    zoneIds: rows.filter((r) => r.scope === 'zone').map((r) => r.scope_id),
  };
}

/** Checks the caller may change an offering: root admins any, domain admins only their own domains'. */
export async function checkManage(ctx: CallContext, type: OfferingType, offeringId: number): Promise<void> {
  if (ctx.caller.roleKind === 'admin') return;
  const { domainIds } = await scopesOf(ctx, type, offeringId);
  const domains = domainIds.length
    ? await ctx.app.store.db.selectFrom('domains').select(['path']).where('id', 'in', domainIds).execute()
    : [];
  if (domains.length === 0 || !domains.every((d) => canReachDomain(ctx.caller, d)))
    throw permissionDenied(
      `Account ${ctx.caller.account.name} cannot change an offering outside its domains`,
    );
}

/** The domainid/domain/zoneid/zone fields of many offerings, by offering id. */
export async function presentScopes(
  ctx: CallContext,
  type: OfferingType,
  ids: number[],
): Promise<Map<number, { domainid?: string; domain?: string; zoneid?: string; zone?: string }>> {
  const out = new Map<number, { domainid?: string; domain?: string; zoneid?: string; zone?: string }>();
  if (ids.length === 0) return out;
  const db = ctx.app.store.db;
  const rows = await db
    .selectFrom('offering_scopes')
    .selectAll()
    .where('offering_type', '=', type)
    .where('offering_id', 'in', ids)
    .orderBy('id')
    .execute();
  if (rows.length === 0) return out;
  const domainIds = rows.filter((r) => r.scope === 'domain').map((r) => r.scope_id);
  const zoneIds = rows.filter((r) => r.scope === 'zone').map((r) => r.scope_id);
  const domains = new Map(
    (domainIds.length
      ? await db.selectFrom('domains').select(['id', 'uuid', 'name']).where('id', 'in', domainIds).execute()
      : []
    ).map((d) => [d.id, d]),
  );
  const zones = new Map(
    (zoneIds.length
      ? await db.selectFrom('zones').select(['id', 'uuid', 'name']).where('id', 'in', zoneIds).execute()
      : []
    ).map((z) => [z.id, z]),
  );
  for (const id of ids) {
    const mine = rows.filter((r) => r.offering_id === id);
    const ds = mine
      .filter((r) => r.scope === 'domain')
      .map((r) => domains.get(r.scope_id))
      .filter((d) => d !== undefined);
    const zs = mine
      .filter((r) => r.scope === 'zone')
      .map((r) => zones.get(r.scope_id))
      .filter((z) => z !== undefined);
    out.set(id, {
      domainid: ds.length ? ds.map((d) => d.uuid).join(',') : undefined,
      domain: ds.length ? ds.map((d) => d.name).join(',') : undefined,
      zoneid: zs.length ? zs.map((z) => z.uuid).join(',') : undefined,
      zone: zs.length ? zs.map((z) => z.name).join(',') : undefined,
    });
  }
  return out;
}

/** Whose use an offering list answers for: a role kind and a domain path. */
export interface OfferingUser {
  roleKind: RoleKind;
  domainPath: string;
}

/**
 * The account an offering list is for when it names one (the deploy wizard sends the owner's
 * `domainid` and `account`): the caller must reach that account (531 otherwise), and the list then
 * holds what that account may use. Without `account`, the caller.
 */
export async function offeringUser(
  ctx: CallContext,
  params: { account?: string; domainid?: string },
): Promise<OfferingUser> {
  if (!params.account) return { roleKind: ctx.caller.roleKind, domainPath: ctx.caller.domain.path };
  const { account, domain } = await resolveAccount(ctx, params);
  const role = await ctx.app.store.db
    .selectFrom('roles')
    .select('type')
    .where('id', '=', account.role_id)
    .executeTakeFirstOrThrow();
  return { roleKind: roleKindOf(role.type), domainPath: domain.path };
}

/**
 * Narrows an offering query to what `user` (the caller by default) may use: public offerings, and
 * those of its domain or a domain above it (domain admins also see those of their subdomains).
 */
export async function visibleTo<TB extends keyof Database, O>(
  ctx: CallContext,
  qb: SelectQueryBuilder<Database, TB, O>,
  type: OfferingType,
  idColumn: string,
  user: OfferingUser = { roleKind: ctx.caller.roleKind, domainPath: ctx.caller.domain.path },
): Promise<SelectQueryBuilder<Database, TB, O>> {
  if (user.roleKind === 'admin') return qb;
  const parts = user.domainPath.split('/').filter(Boolean);
  const ancestorPaths = ['/', ...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}/`)];
  const domains =
    user.roleKind === 'user'
      ? await ctx.app.store.db.selectFrom('domains').select('id').where('path', 'in', ancestorPaths).execute()
      : (await ctx.app.store.db.selectFrom('domains').select(['id', 'path']).execute()).filter(
          (d) => ancestorPaths.includes(d.path) || d.path.startsWith(user.domainPath),
        );
  const allowed = domains.map((d) => d.id);
  return qb.where((eb: ExpressionBuilder<Database, TB>) =>
    eb.or([
      eb(
        sql.ref(idColumn),
        'not in',
        sql`(select offering_id from offering_scopes where offering_type = ${type} and scope = 'domain')`,
      ),
      eb(
        sql.ref(idColumn),
        'in',
        sql`(select offering_id from offering_scopes where offering_type = ${type} and scope = 'domain' and scope_id in (${sql.join(allowed)}))`,
      ),
    ]),
  );
}

/** Narrows an offering query to those usable in one zone. */
export function inZone<TB extends keyof Database, O>(
  qb: SelectQueryBuilder<Database, TB, O>,
  type: OfferingType,
  idColumn: string,
  zoneId: number,
): SelectQueryBuilder<Database, TB, O> {
  return qb.where((eb: ExpressionBuilder<Database, TB>) =>
    eb.or([
      eb(
        sql.ref(idColumn),
        'not in',
        sql`(select offering_id from offering_scopes where offering_type = ${type} and scope = 'zone')`,
      ),
      eb(
        sql.ref(idColumn),
        'in',
        sql`(select offering_id from offering_scopes where offering_type = ${type} and scope = 'zone' and scope_id = ${zoneId})`,
      ),
    ]),
  );
}
