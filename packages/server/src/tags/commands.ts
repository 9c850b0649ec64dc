/** createTags, deleteTags, listTags. */
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { applyScope, listScope } from '../iam/access.ts';
import { defineCommand, type JobTarget, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { findTaggable, presentTag, type TaggedResource, taggableType } from './tags.ts';

function tagPairs(
  tags: Record<string, string>[] | undefined,
  requireValue: boolean,
): { key: string; value?: string }[] {
  return (tags ?? []).map((t) => {
    const key = t.key ?? t.Key;
    const value = t.value ?? t.Value;
    if (!key || key.trim() === '') throw invalidParameter('Tag key must not be empty');
    if (requireValue && (value === undefined || value === ''))
      throw invalidParameter(`Value for the key ${key} is either null or empty`);
    if (key.length > 255 || (value?.length ?? 0) > 255)
      throw invalidParameter('Tag keys and values are limited to 255 characters');
    return { key, value };
  });
}

/** Checks, before the job is queued, that every resource exists and the caller may tag it. */
async function checkResources(ctx: CallContext, resourceType: string, uuids: string[]): Promise<JobTarget> {
  const type = taggableType(resourceType);
  for (const uuid of uuids) await findTaggable(ctx, type, uuid);
  return { type, id: uuids[0] };
}

export const createTags = defineCommand({
  name: 'createTags',
  params: {
    resourceids: p.list({ required: true }),
    resourcetype: p.string({ required: true }),
    tags: p.map({ required: true }),
    customer: p.string(),
  },
  event: {
    type: 'CREATE_TAGS',
    description: (params) => `creating tags on ${params.resourcetype} ${params.resourceids.join(',')}`,
  },
  target: (ctx, params) => checkResources(ctx, params.resourcetype, params.resourceids),
  async handler(ctx, params) {
    const type = taggableType(params.resourcetype);
    const pairs = tagPairs(params.tags, true);
    if (pairs.length === 0) throw invalidParameter('At least one tag must be given');
    const resources: (TaggedResource & { uuid: string })[] = [];
    for (const uuid of params.resourceids) resources.push({ uuid, ...(await findTaggable(ctx, type, uuid)) });
    const { app } = ctx;
    await app.store.db.transaction().execute(async (tx) => {
      for (const r of resources) {
        for (const t of pairs) {
          const clash = await tx
            .selectFrom('resource_tags')
            .select('id')
            .where('resource_type', '=', type)
            .where('resource_id', '=', r.id)
            .where('key', '=', t.key)
            .executeTakeFirst();
          if (clash) throw invalidParameter(`A tag with key ${t.key} already exists on ${type} ${r.uuid}`);
          await insertId(app.store, tx, 'resource_tags', {
            uuid: app.ids.uuid(),
            key: t.key,
            value: t.value!,
            resource_type: type,
            resource_id: r.id,
            resource_uuid: r.uuid.toLowerCase(),
            account_id: r.accountId,
            domain_id: r.domainId,
            customer: params.customer ?? null,
            created: app.clock.now(),
          });
        }
      }
      await logEvent(ctx, tx, {
        type: 'CREATE_TAGS',
        description: `created ${pairs.length * resources.length} tags on ${type}`,
      });
    });
    return success();
  },
});

export const deleteTags = defineCommand({
  name: 'deleteTags',
  params: {
    resourceids: p.list({ required: true }),
    resourcetype: p.string({ required: true }),
    tags: p.map(),
  },
  event: {
    type: 'DELETE_TAGS',
    description: (params) => `deleting tags on ${params.resourcetype} ${params.resourceids.join(',')}`,
  },
  target: (ctx, params) => checkResources(ctx, params.resourcetype, params.resourceids),
  async handler(ctx, params) {
    const type = taggableType(params.resourcetype);
    const pairs = tagPairs(params.tags, false);
    const resources: TaggedResource[] = [];
    for (const uuid of params.resourceids) resources.push(await findTaggable(ctx, type, uuid));
    await ctx.app.store.db.transaction().execute(async (tx) => {
      let q = tx
        .deleteFrom('resource_tags')
        .where('resource_type', '=', type)
        .where(
          'resource_id',
          'in',
          resources.map((r) => r.id),
        );
      if (pairs.length > 0) {
        q = q.where((eb) =>
          eb.or(
            pairs.map((t) =>
              t.value === undefined
                ? eb('key', '=', t.key)
                : eb.and([eb('key', '=', t.key), eb('value', '=', t.value)]),
            ),
          ),
        );
      }
      const r = await q.executeTakeFirst();
      if (Number(r.numDeletedRows) === 0)
        throw invalidParameter('Unable to find any tags by the parameters specified');
      await logEvent(ctx, tx, {
        type: 'DELETE_TAGS',
        description: `deleted ${r.numDeletedRows} tags on ${type}`,
      });
    });
    return success();
  },
});

export const listTags = defineCommand({
  name: 'listTags',
  params: {
    ...listParams,
    key: p.string(),
    value: p.string(),
    resourceid: p.string(),
    resourcetype: p.string(),
    customer: p.string(),
    account: p.string(),
    domainid: p.uuid(),
    isrecursive: p.boolean(),
    listall: p.boolean(),
  },
  async handler(ctx: CallContext, params) {
    const { app } = ctx;
    const db = app.store.db;
    const scope = await listScope(ctx, params);
    let q = applyScope(db.selectFrom('resource_tags'), scope, { account: 'account_id', domain: 'domain_id' });
    if (params.key) q = q.where('key', '=', params.key);
    if (params.value) q = q.where('value', '=', params.value);
    if (params.resourceid) q = q.where('resource_uuid', '=', params.resourceid.toLowerCase());
    if (params.resourcetype) q = q.where('resource_type', '=', taggableType(params.resourcetype));
    if (params.customer) q = q.where('customer', '=', params.customer);
    if (params.keyword) {
      const like = app.store.dialect === 'postgres' ? 'ilike' : 'like';
      q = q.where((eb) =>
        eb.or([eb('key', like, `%${params.keyword}%`), eb('value', like, `%${params.keyword}%`)]),
      );
    }
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rowsQ = paginate(q.selectAll().orderBy('id'), pageOf(app, params));
    const rows = await rowsQ.execute();
    const accounts = rows.length
      ? await db
          .selectFrom('accounts')
          .select(['id', 'name'])
          .where(
            'id',
            'in',
            rows.map((r) => r.account_id),
          )
          .execute()
      : [];
    const domains = rows.length
      ? await db
          .selectFrom('domains')
          .select(['id', 'uuid', 'name'])
          .where(
            'id',
            'in',
            rows.map((r) => r.domain_id),
          )
          .execute()
      : [];
    const accountName = new Map(accounts.map((a) => [a.id, a.name]));
    const domain = new Map(domains.map((d) => [d.id, d]));
    return listResult(
      rows.map((t) =>
        presentTag(t, { account: accountName.get(t.account_id), domain: domain.get(t.domain_id) }),
      ),
      Number(count),
    );
  },
});

export const tagCommands = [createTags, deleteTags, listTags];
