/** listEvents, archiveEvents, deleteEvents. */

import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import type { EventRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { applyScope, escapeLike, likeEscaped, listScope } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { listOwned } from '../iam/owned.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';

async function presentEvents(ctx: CallContext, rows: EventRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const startIds = [...new Set(rows.map((r) => r.start_id).filter((x): x is number => x !== null))];
  const [accounts, users, domains, starts] = await Promise.all([
    db
      .selectFrom('accounts')
      .select(['id', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.account_id))])
      .execute(),
    db
      .selectFrom('users')
      .select(['id', 'username'])
      .where('id', 'in', [...new Set(rows.map((r) => r.user_id))])
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', [...new Set(rows.map((r) => r.domain_id))])
      .execute(),
    startIds.length
      ? db.selectFrom('events').select(['id', 'uuid']).where('id', 'in', startIds).execute()
      : [],
  ]);
  const account = new Map(accounts.map((a) => [a.id, a.name]));
  const user = new Map(users.map((u) => [u.id, u.username]));
  const domain = new Map(domains.map((d) => [d.id, d]));
  const start = new Map(starts.map((s) => [s.id, s.uuid]));
  return rows.map((e) => ({
    id: e.uuid,
    type: e.type,
    level: e.level,
    state: e.state,
    description: e.description,
    account: account.get(e.account_id),
    username: user.get(e.user_id),
    domainid: domain.get(e.domain_id)?.uuid,
    domain: domain.get(e.domain_id)?.name,
    domainpath: domain.has(e.domain_id) ? displayPath(domain.get(e.domain_id)!.path) : undefined,
    resourcetype: e.resource_type ?? undefined,
    resourceid: e.resource_id ?? undefined,
    parentid: e.start_id === null ? undefined : start.get(e.start_id),
    created: formatDate(e.created),
    archived: e.archived === 1,
  }));
}

export const listEvents = defineCommand({
  name: 'listEvents',
  description:
    'Lists the audit events the caller may see, newest first; archived events are left out unless archived=true.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the event with this UUID.' }),
    type: p.string({ description: 'Only events of this type, such as VM.CREATE (exact).' }),
    level: p.string({ description: 'Only events of this level: INFO, WARN or ERROR.' }),
    state: p.string({
      description:
        'Only events in this state: Scheduled, Started, Completed, or Created for one-step actions (exact).',
    }),
    startdate: p.date({
      description: "Only events at or after this time (yyyy-MM-dd HH:mm:ss or yyyy-MM-dd'T'HH:mm:ssZ).",
    }),
    enddate: p.date({ description: 'Only events at or before this time (same formats as startdate).' }),
    duration: p.integer({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    entrytime: p.integer({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    startid: p.uuid({
      description: "Only the events that follow the Started event with this UUID (one async job's trail).",
    }),
    resourceid: p.string({ description: 'Only events about the resource with this UUID.' }),
    resourcetype: p.string({
      description: 'Only events about this resource type, such as VirtualMachine or Volume (exact).',
    }),
    archived: p.boolean({ description: 'true lists only archived events instead of current ones.' }),
    account: p.string({
      description:
        "Only events of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only events in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include events of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include events of every account they may see.',
    }),
    projectid: p.projectScope({
      description: 'Only the events of calls made in this project; -1: those of every project you may see.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('events');
    q = q.where('archived', '=', params.archived ? 1 : 0);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.type) q = q.where('type', '=', params.type);
    if (params.level) {
      if (!['INFO', 'WARN', 'ERROR'].includes(params.level.toUpperCase()))
        throw invalidParameter('level must be INFO, WARN or ERROR');
      q = q.where('level', '=', params.level.toUpperCase());
    }
    if (params.state) q = q.where('state', '=', params.state);
    if (params.startdate !== undefined) q = q.where('created', '>=', params.startdate);
    if (params.enddate !== undefined) q = q.where('created', '<=', params.enddate);
    if (params.resourceid) q = q.where('resource_id', '=', params.resourceid);
    if (params.resourcetype) q = q.where('resource_type', '=', params.resourcetype);
    if (params.startid)
      q = q.where('start_id', 'in', db.selectFrom('events').select('id').where('uuid', '=', params.startid));
    if (params.keyword) {
      const like = app.store.dialect === 'postgres' ? 'ilike' : 'like';
      const k = `%${escapeLike(params.keyword)}%`;
      q = q.where((eb) =>
        eb.or([
          likeEscaped('type', k, like),
          likeEscaped('description', k, like),
          likeEscaped('level', k, like),
        ]),
      );
    }
    return listOwned(ctx, params, q, {
      owner: { account: 'account_id', domain: 'domain_id' },
      rows: (scoped, page) => paginate(scoped.selectAll().orderBy('id', 'desc'), page).execute(),
      present: (rows) => presentEvents(ctx, rows),
    });
  },
});

const bulkParams = {
  ids: p.list({ of: 'uuid', description: 'Comma-separated UUIDs of the events to act on.' }),
  type: p.string({ description: 'Only events of this type, such as VM.CREATE.' }),
  startdate: p.date({
    description: 'Only events at or after this time; at least one of the four criteria is needed.',
  }),
  enddate: p.date({ description: 'Only events at or before this time; must not be before startdate.' }),
};

/** Selects the caller's reachable events named by ids, type and/or a date range. */
async function selectEvents(
  ctx: CallContext,
  params: { ids?: string[]; type?: string; startdate?: number; enddate?: number },
) {
  if (!params.ids && !params.type && params.startdate === undefined && params.enddate === undefined) {
    throw invalidParameter('Either ids, type, startdate or enddate must be specified');
  }
  if (params.startdate !== undefined && params.enddate !== undefined && params.startdate > params.enddate) {
    throw invalidParameter('startdate must be before enddate');
  }
  const scope = await listScope(ctx, { listall: true });
  let q = applyScope(ctx.app.store.db.selectFrom('events'), scope, {
    account: 'account_id',
    domain: 'domain_id',
  }).select('id');
  if (params.ids) q = q.where('uuid', 'in', params.ids);
  if (params.type) q = q.where('type', '=', params.type);
  if (params.startdate !== undefined) q = q.where('created', '>=', params.startdate);
  if (params.enddate !== undefined) q = q.where('created', '<=', params.enddate);
  return (await q.execute()).map((r) => r.id);
}

export const archiveEvents = defineCommand({
  name: 'archiveEvents',
  description:
    'Hides matching events from listEvents (they remain readable with archived=true); only events the caller may see are touched.',
  params: bulkParams,
  async handler(ctx, params) {
    const ids = await selectEvents(ctx, params);
    if (ids.length === 0) throw invalidParameter('Unable to archive events: no events match');
    await ctx.app.store.db.updateTable('events').set({ archived: 1 }).where('id', 'in', ids).execute();
    return success();
  },
});

export const deleteEvents = defineCommand({
  name: 'deleteEvents',
  description:
    'Permanently removes matching events; only events the caller may see are touched, and at least one must match.',
  params: bulkParams,
  async handler(ctx, params) {
    const ids = await selectEvents(ctx, params);
    if (ids.length === 0) throw invalidParameter('Unable to delete events: no events match');
    await ctx.app.store.db.deleteFrom('events').where('id', 'in', ids).execute();
    return success();
  },
});

export const eventCommands = [listEvents, archiveEvents, deleteEvents];
