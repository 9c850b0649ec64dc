/** createTags, deleteTags, listTags. */
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { ResourceTagRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { listOwned } from '../iam/owned.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
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
  description:
    'Adds key/value tags to one or more resources of a type; a key may appear once per resource. Asynchronous.',
  params: {
    resourceids: p.list({ required: true, description: 'Comma-separated UUIDs of the resources to tag.' }),
    resourcetype: p.string({
      required: true,
      description: 'Type of those resources, such as UserVm, Volume, Snapshot or Zone (case-insensitive).',
    }),
    tags: p.map({
      required: true,
      description: 'The tags, as tags[0].key=k&tags[0].value=v; keys must be new on each resource.',
    }),
    customer: p.string({ description: 'Free customer name stored with each tag.' }),
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
  description:
    'Removes tags from resources: all of them, those with given keys, or exact key/value pairs. Asynchronous; fails if nothing matched.',
  params: {
    resourceids: p.list({ required: true, description: 'Comma-separated UUIDs of the tagged resources.' }),
    resourcetype: p.string({
      required: true,
      description: 'Type of those resources, such as UserVm or Volume (case-insensitive).',
    }),
    tags: p.map({
      description:
        'Which tags: tags[0].key alone removes that key, with tags[0].value only that pair; all tags when omitted.',
    }),
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
  description: 'Lists the tags on resources the caller may see.',
  params: {
    ...listParams,
    key: p.string({ description: 'Only tags with this key.' }),
    value: p.string({ description: 'Only tags with this value.' }),
    resourceid: p.string({ description: 'Only tags on the resource with this UUID.' }),
    resourcetype: p.string({
      description: 'Only tags on resources of this type, such as UserVm (case-insensitive).',
    }),
    customer: p.string({ description: 'Only tags stored with this customer name.' }),
    account: p.string({
      description:
        "Only tags of this account's resources (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only tags in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include tags of every account they may see.',
    }),
    projectid: p.projectScope({
      description: "Only tags of this project's resources; -1: those of every project you may see.",
    }),
  },
  async handler(ctx: CallContext, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('resource_tags');
    if (params.key) q = q.where('key', '=', params.key);
    if (params.value) q = q.where('value', '=', params.value);
    if (params.resourceid) q = q.where('resource_uuid', '=', params.resourceid.toLowerCase());
    // An unknown resource type is refused after the scope's own checks (below); matches nothing here.
    if (params.resourcetype) q = q.where('resource_type', '=', knownType(params.resourcetype) ?? '');
    if (params.customer) q = q.where('customer', '=', params.customer);
    if (params.keyword) {
      const like = app.store.dialect === 'postgres' ? 'ilike' : 'like';
      const k = `%${escapeLike(params.keyword)}%`;
      q = q.where((eb) => eb.or([likeEscaped('key', k, like), likeEscaped('value', k, like)]));
    }
    return listOwned(ctx, params, q, {
      owner: { account: 'account_id', domain: 'domain_id' },
      rows: (scoped, page) => paginate(scoped.selectAll().orderBy('id'), page).execute(),
      present: (rows) => presentTags(ctx, rows),
      checks: async () => {
        if (params.resourcetype) taggableType(params.resourcetype);
      },
    });
  },
});

function knownType(name: string): string | undefined {
  try {
    return taggableType(name);
  } catch {
    return undefined;
  }
}

/** Tags with their owning account's name and domain. */
async function presentTags(ctx: CallContext, rows: ResourceTagRow[]): Promise<object[]> {
  const db = ctx.app.store.db;
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
  return rows.map((t) =>
    presentTag(t, { account: accountName.get(t.account_id), domain: domain.get(t.domain_id) }),
  );
}

export const tagCommands = [createTags, deleteTags, listTags];
