/**
 * Resource tags: key/value pairs on any taggable resource. Capabilities register their resource
 * types; list commands use `withTags` to filter by tags[n].key/value and `tagsOf` to show them.
 */

import { type SelectQueryBuilder, sql } from 'kysely';
import type { CallContext } from '../context.ts';
import type { DialectName } from '../db/connection.ts';
import type { Database, ResourceTagRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { checkRowAccess } from '../iam/owned.ts';

export interface TaggedResource {
  id: number;
  accountId: number;
  domainId: number;
}

/** How to find a resource of one type by uuid; registered by the capability that owns the type. */
type Finder = (ctx: CallContext, uuid: string) => Promise<TaggedResource | undefined>;
const finders = new Map<string, { name: string; find: Finder }>();

export function registerTaggable(resourceType: string, find: Finder): void {
  finders.set(resourceType.toLowerCase(), { name: resourceType, find });
}

/** The canonical spelling of a resource type (clients send "uservm", "UserVm"...). */
export function taggableType(name: string): string {
  const entry = finders.get(name.toLowerCase());
  if (!entry) throw invalidParameter(`Invalid resource type ${name}`);
  return entry.name;
}

/** Finds a taggable resource and checks the caller may tag it. */
export async function findTaggable(
  ctx: CallContext,
  resourceType: string,
  uuid: string,
): Promise<TaggedResource> {
  const entry = finders.get(resourceType.toLowerCase());
  if (!entry) throw invalidParameter(`Invalid resource type ${resourceType}`);
  const r = await entry.find(ctx, uuid.toLowerCase());
  if (!r) throw invalidParameter(`Unable to find resource by id ${uuid} and type ${resourceType}`);
  await checkRowAccess(ctx, { account_id: r.accountId, domain_id: r.domainId });
  return r;
}

export function presentTag(
  t: ResourceTagRow,
  names: { account?: string; domain?: { uuid: string; name: string } },
): object {
  return {
    key: t.key,
    value: t.value,
    resourcetype: t.resource_type,
    resourceid: t.resource_uuid,
    account: names.account,
    domainid: names.domain?.uuid,
    domain: names.domain?.name,
    customer: t.customer ?? undefined,
  };
}

/** The tags of many resources of one type, keyed by the resource's integer id (for presenters). */
export async function tagsOf(
  ctx: CallContext,
  resourceType: string,
  ids: number[],
): Promise<Map<number, object[]>> {
  const out = new Map<number, object[]>();
  if (ids.length === 0) return out;
  const rows = await ctx.app.store.db
    .selectFrom('resource_tags')
    .selectAll()
    .where('resource_type', '=', resourceType)
    .where('resource_id', 'in', ids)
    .execute();
  for (const t of rows) {
    const list = out.get(t.resource_id) ?? [];
    list.push({
      key: t.key,
      value: t.value,
      resourcetype: t.resource_type,
      resourceid: t.resource_uuid,
      customer: t.customer ?? undefined,
    });
    out.set(t.resource_id, list);
  }
  return out;
}

/**
 * The tags of each row of a list query as one column (a correlated subquery building a JSON
 * array), so a small list needs no second round trip for them; read it back with tagsFromColumn.
 * The same entries as tagsOf, in the same (unspecified, storage) order.
 */
export function tagsColumn(dialect: DialectName, resourceType: string, idColumn: string) {
  const id = sql.ref(idColumn);
  const where = sql`from resource_tags t where t.resource_type = ${resourceType} and t.resource_id = ${id}`;
  const fields = (object: string) =>
    sql`${sql.raw(object)}('key', t.${sql.ref('key')}, 'value', t.${sql.ref('value')}, 'resourcetype', t.resource_type, 'resourceid', t.resource_uuid, 'customer', t.customer)`;
  if (dialect === 'postgres') return sql<unknown>`(select json_agg(${fields('json_build_object')}) ${where})`;
  if (dialect === 'sqlite') return sql<unknown>`(select json_group_array(${fields('json_object')}) ${where})`;
  return sql<unknown>`(select json_arrayagg(${fields('json_object')}) ${where})`;
}

/** A tagsColumn value (parsed JSON, JSON text, or null for none) as tagsOf's entries. */
export function tagsFromColumn(value: unknown): object[] {
  const list = (typeof value === 'string' ? JSON.parse(value) : (value ?? [])) as {
    key: string;
    value: string;
    resourcetype: string;
    resourceid: string;
    customer: string | null;
  }[];
  return list.map((t) => ({
    key: t.key,
    value: t.value,
    resourcetype: t.resourcetype,
    resourceid: t.resourceid,
    customer: t.customer ?? undefined,
  }));
}

/** Narrows a list query to resources carrying every given tag (tags[n].key / tags[n].value). */
export function withTags<DB extends Database, TB extends keyof DB, O>(
  qb: SelectQueryBuilder<DB, TB, O>,
  resourceType: string,
  idColumn: string,
  tags: Record<string, string>[] | undefined,
): SelectQueryBuilder<DB, TB, O> {
  let q = qb;
  for (const t of tags ?? []) {
    if (t.key === undefined) throw invalidParameter('Each tags entry needs a key');
    q = q.where(
      sql.ref(idColumn),
      'in',
      sql`(select resource_id from resource_tags where resource_type = ${resourceType} and ${sql.ref('key')} = ${t.key}${
        t.value === undefined ? sql`` : sql` and ${sql.ref('value')} = ${t.value}`
      })`,
    );
  }
  return q;
}
