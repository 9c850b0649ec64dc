/**
 * Webhooks as in CloudStack 4.20: an account, a domain admin or the root admin registers a URL;
 * the events it may see are POSTed there, signed with its secret (webhooks/delivery.ts), and each
 * try is kept in a delivery history the owner can list, delete and re-send.
 *
 * Who may create which scope, as upstream's WebhookApiServiceImpl: Local (the owner's account's
 * events) for anyone; Domain (the domain's and its subdomains' events) for root and domain admins;
 * Global (every event) for root admins.
 */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { WebhookDeliveryRow, WebhookRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { pathPrefix } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { checkRowAccess, findOwned, listOwned, type OwnedLookup } from '../iam/owned.ts';
import { projectOwner } from '../projects/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import {
  type DeliveryEvent,
  post,
  recordAttempt,
  TEST_EVENT_TYPE,
  WEBHOOK_DELIVERY_TIMEOUT,
} from './delivery.ts';
import { checkTarget, targetGuard } from './target.ts';

export const OWNED_WEBHOOK: OwnedLookup<'webhooks'> = { noun: 'webhook' };

const SCOPES = ['Local', 'Domain', 'Global'] as const;
const STATES = ['Enabled', 'Disabled'] as const;

function scopeOf(value: string | undefined, fallback?: string): string | undefined {
  if (value === undefined || value === '') return fallback;
  const s = SCOPES.find((x) => x === value);
  if (!s) throw invalidParameter('Invalid scope specified');
  return s;
}

function stateOf(value: string | undefined, fallback?: string): string | undefined {
  if (value === undefined || value === '') return fallback;
  const s = STATES.find((x) => x === value);
  if (!s) throw invalidParameter('Invalid state specified');
  return s;
}

/** Account type 1 is the root admin's, 2 a domain admin's (CloudStack's Account.Type). */
function checkScopeForOwner(scope: string, owner: { type: number; name: string }): void {
  if (
    (scope === 'Global' && owner.type !== 1) ||
    (scope === 'Domain' && owner.type !== 1 && owner.type !== 2)
  )
    throw invalidParameter(`Scope ${scope} can not be specified for owner ${owner.name}`);
}

/** Upstream accepts a URL without scheme as http://; anything but http(s) is refused. */
function normalizeUrl(url: string): string {
  const u = /^https?:\/\//i.test(url) ? url : `http://${url}`;
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch {
    throw invalidParameter(`Invalid payload URL: ${url}`);
  }
  if (!parsed.hostname) throw invalidParameter(`Invalid payload URL: ${url}`);
  return u;
}

function checkSsl(sslverification: boolean | undefined, url: string): void {
  if (sslverification && !url.toLowerCase().startsWith('https://'))
    throw invalidParameter(`SSL verification can be specified only for HTTPS URLs, ${url}`);
}

async function checkUrlUnused(
  ctx: CallContext,
  accountId: number,
  url: string,
  self?: number,
): Promise<void> {
  let q = ctx.app.store.db
    .selectFrom('webhooks')
    .select('id')
    .where('account_id', '=', accountId)
    .where('payload_url', '=', url)
    .where('removed', 'is', null);
  if (self !== undefined) q = q.where('id', '!=', self);
  if (await q.executeTakeFirst())
    throw invalidParameter(`Payload URL: ${url} is already in use by another webhook`);
}

async function presentWebhooks(ctx: CallContext, rows: WebhookRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const [accounts, domains] = await Promise.all([
    db
      .selectFrom('accounts')
      .select(['id', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.account_id))])
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', [...new Set(rows.map((r) => r.domain_id))])
      .execute(),
  ]);
  const account = new Map(accounts.map((a) => [a.id, a.name]));
  const domain = new Map(domains.map((d) => [d.id, d]));
  return rows.map((w) => {
    const d = domain.get(w.domain_id);
    return {
      id: w.uuid,
      name: w.name,
      description: w.description ?? undefined,
      account: account.get(w.account_id),
      domainid: d?.uuid,
      domain: d?.name,
      domainpath: d ? displayPath(d.path) : undefined,
      state: w.state,
      payloadurl: w.payload_url,
      secretkey: w.secret_key ?? undefined,
      sslverification: w.ssl_verification === 1,
      scope: w.scope,
      created: formatDate(w.created),
    };
  });
}

async function presentDeliveries(ctx: CallContext, rows: WebhookDeliveryRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const eventIds = [...new Set(rows.map((r) => r.event_id).filter((x): x is number => x !== null))];
  const [hooks, servers, events] = await Promise.all([
    db
      .selectFrom('webhooks')
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.webhook_id))])
      .execute(),
    db
      .selectFrom('management_servers')
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.management_server_id))])
      .execute(),
    eventIds.length
      ? db.selectFrom('events').select(['id', 'uuid']).where('id', 'in', eventIds).execute()
      : [],
  ]);
  const hook = new Map(hooks.map((h) => [h.id, h]));
  const server = new Map(servers.map((s) => [s.id, s]));
  const event = new Map(events.map((e) => [e.id, e.uuid]));
  return rows.map((r) => ({
    id: r.uuid,
    eventid: r.event_id === null ? undefined : event.get(r.event_id),
    eventtype: r.event_type,
    webhookid: hook.get(r.webhook_id)?.uuid,
    webhookname: hook.get(r.webhook_id)?.name,
    managementserverid: server.get(r.management_server_id)?.uuid,
    managementservername: server.get(r.management_server_id)?.name,
    headers: r.headers ?? undefined,
    payload: r.payload ?? undefined,
    success: r.success === 1,
    response: r.response ?? undefined,
    startdate: formatDate(r.start_time),
    enddate: formatDate(r.end_time),
  }));
}

async function readWebhook(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('webhooks')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentWebhooks(ctx, [row]))[0];
}

const webhookFields = {
  name: p.string({ description: 'A name for the webhook, shown in lists and in its delivery history.' }),
  description: p.string({ description: 'Free text saying what the webhook is for.' }),
  payloadurl: p.string({
    description:
      'The http:// or https:// address events are POSTed to; without a scheme, http:// is assumed. One webhook per address per account.',
  }),
  secretkey: p.string({
    description:
      'Key for signing: each POST then carries X-CS-Signature, the Base64 HMAC-SHA256 of the body keyed with it. Empty on update removes it.',
  }),
  sslverification: p.boolean({
    description:
      'true checks the receiver’s TLS certificate and host name (https:// addresses only); false, the default, accepts any certificate.',
  }),
  scope: p.string({
    description:
      'Whose events are sent: Local (the owner account’s, the default), Domain (the domain’s and its subdomains’; root and domain admins) or Global (all; root admins).',
  }),
  state: p.string({
    description: 'Enabled (the default) sends events; Disabled keeps the webhook but sends nothing.',
  }),
};

export const createWebhook = defineCommand({
  name: 'createWebhook',
  description:
    'Registers a webhook: from now on the events its scope covers are POSTed to its URL as JSON, signed when it has a secret key.',
  params: {
    ...webhookFields,
    name: p.string({ required: true, description: webhookFields.name.description }),
    payloadurl: p.string({ required: true, length: 2048, description: webhookFields.payloadurl.description }),
    account: p.string({
      description:
        'Admins: the account that will own the webhook (with domainid); by default the caller’s own.',
    }),
    domainid: p.uuid({
      description:
        'With account: that account’s domain. For a Domain-scoped webhook of an admin: the domain whose events it receives.',
    }),
    projectid: p.uuid({
      description:
        'Project to own the webhook: a Local one receives the events of calls made in the project.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const owner =
      (await projectOwner(ctx, params)) ??
      (params.account
        ? (await resolveAccount(ctx, { account: params.account, domainid: params.domainid })).account
        : ctx.caller.account);
    const scope = scopeOf(params.scope, 'Local')!;
    checkScopeForOwner(scope, owner);
    const state = stateOf(params.state, 'Enabled')!;
    const url = normalizeUrl(params.payloadurl);
    checkSsl(params.sslverification, url);
    await checkTarget(app, owner.type, url);
    await checkUrlUnused(ctx, owner.id, url);
    let domainId = owner.domain_id;
    if (params.domainid && scope === 'Domain' && (owner.type === 1 || owner.type === 2)) {
      const d = await ctx.app.store.db
        .selectFrom('domains')
        .select(['id', 'path'])
        .where('uuid', '=', params.domainid)
        .executeTakeFirstOrThrow();
      // A domain admin's webhook may only cover domains it administers.
      if (ctx.caller.roleKind !== 'admin' && !d.path.startsWith(ctx.caller.domain.path))
        throw permissionDenied(
          `Account ${ctx.caller.account.name} does not have permission to operate within this domain`,
        );
      domainId = d.id;
    }
    const id = await insertId(app.store, app.store.db, 'webhooks', {
      uuid: app.ids.uuid(),
      name: params.name,
      description: params.description ?? null,
      account_id: owner.id,
      domain_id: domainId,
      payload_url: url,
      secret_key: params.secretkey?.trim() ? params.secretkey : null,
      ssl_verification: params.sslverification ? 1 : 0,
      scope,
      state,
      created: app.clock.now(),
      removed: null,
    });
    return readWebhook(ctx, id);
  },
});

export const updateWebhook = defineCommand({
  name: 'updateWebhook',
  description:
    'Changes a webhook’s name, description, address, secret key, certificate checking, scope or state.',
  params: {
    id: p.uuid({ required: true, description: 'The webhook to change.' }),
    ...webhookFields,
    payloadurl: p.string({ length: 2048, description: webhookFields.payloadurl.description }),
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const hook = await findOwned(ctx, 'webhooks', params.id, OWNED_WEBHOOK);
    const set: Record<string, unknown> = {};
    if (params.name?.trim()) set.name = params.name;
    if (params.description !== undefined) set.description = params.description;
    const state = stateOf(params.state);
    if (state) set.state = state;
    const owner = await db
      .selectFrom('accounts')
      .select(['id', 'type', 'name'])
      .where('id', '=', hook.account_id)
      .executeTakeFirstOrThrow();
    const scope = scopeOf(params.scope);
    if (scope) {
      checkScopeForOwner(scope, owner);
      set.scope = scope;
    }
    let url = hook.payload_url;
    if (params.payloadurl) {
      url = normalizeUrl(params.payloadurl);
      await checkTarget(ctx.app, owner.type, url);
      await checkUrlUnused(ctx, owner.id, url, hook.id);
      set.payload_url = url;
    }
    if (params.sslverification !== undefined) {
      checkSsl(params.sslverification, url);
      set.ssl_verification = params.sslverification ? 1 : 0;
    }
    if (params.secretkey !== undefined) set.secret_key = params.secretkey.trim() ? params.secretkey : null;
    if (Object.keys(set).length > 0)
      await db.updateTable('webhooks').set(set).where('id', '=', hook.id).execute();
    // The catalog declares an inline success answer for this command; listWebhooks shows the result.
    return success();
  },
});

export const deleteWebhook = defineCommand({
  name: 'deleteWebhook',
  description: 'Removes a webhook: nothing more is sent to it. Its delivery history is deleted with it.',
  params: { id: p.uuid({ required: true, description: 'The webhook to remove.' }) },
  async handler(ctx, params) {
    const hook = await findOwned(ctx, 'webhooks', params.id, OWNED_WEBHOOK);
    const db = ctx.app.store.db;
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('webhooks')
        .set({ removed: ctx.app.clock.now() })
        .where('id', '=', hook.id)
        .execute();
      await tx.deleteFrom('webhook_deliveries').where('webhook_id', '=', hook.id).execute();
    });
    return success();
  },
});

export const listWebhooks = defineCommand({
  name: 'listWebhooks',
  description:
    'Lists the webhooks the caller may see: users their account’s, admins those of the accounts they manage.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the webhook with this UUID.' }),
    name: p.string({ description: 'Only webhooks with exactly this name.' }),
    state: p.string({ description: 'Only Enabled or only Disabled webhooks.' }),
    scope: p.string({
      description: 'Only webhooks of this scope: Local, Domain (admins) or Global (root admins).',
    }),
    account: p.string({
      description: 'Admins: only webhooks of this account (with domainid unless in your domain).',
    }),
    domainid: p.uuid({
      description: 'Admins: only webhooks owned in this domain (isrecursive adds subdomains).',
    }),
    isrecursive: p.boolean({ description: 'With domainid or listall: include webhooks of subdomains.' }),
    listall: p.boolean({ description: 'Admins: every webhook they may see, not only their own account’s.' }),
    projectid: p.projectScope({
      description: "Only this project's webhooks; -1: those of every project you may see.",
    }),
  },
  async handler(ctx, params) {
    const scope = scopeOf(params.scope);
    const kind = ctx.caller.roleKind;
    if (
      (scope === 'Global' && kind !== 'admin') ||
      (scope === 'Domain' && kind !== 'admin' && kind !== 'domainadmin')
    )
      throw invalidParameter(`Scope ${scope} can not be specified`);
    const state = stateOf(params.state);
    let q = ctx.app.store.db.selectFrom('webhooks').where('webhooks.removed', 'is', null);
    if (params.id) q = q.where('webhooks.uuid', '=', params.id);
    if (params.name) q = q.where('webhooks.name', '=', params.name);
    if (state) q = q.where('webhooks.state', '=', state);
    if (scope) q = q.where('webhooks.scope', '=', scope);
    if (params.keyword) q = q.where('webhooks.name', 'like', `%${params.keyword}%`);
    return listOwned(ctx, params, q, {
      owner: { account: 'webhooks.account_id', domain: 'webhooks.domain_id' },
      rows: (sq, page) => paginate(sq.selectAll('webhooks').orderBy('webhooks.id'), page).execute(),
      present: (rows) => presentWebhooks(ctx, rows as WebhookRow[]),
    });
  },
});

/** The delivery filters listWebhookDeliveries and deleteWebhookDelivery share. */
const deliveryFilter = {
  id: p.uuid({ description: 'Only the delivery with this UUID.' }),
  webhookid: p.uuid({ description: 'Only deliveries of this webhook.' }),
  managementserverid: p.uuid({ description: 'Root admins: only deliveries made by this management server.' }),
  startdate: p.date({ description: 'Only deliveries started at or after this time.' }),
  enddate: p.date({ description: 'Only deliveries started at or before this time; not before startdate.' }),
};

interface DeliveryFilter {
  id?: string;
  webhookid?: string;
  managementserverid?: string;
  startdate?: number;
  enddate?: number;
  eventtype?: string;
  keyword?: string;
}

/** The deliveries the caller may reach under the filters, as a query on webhook_deliveries. */
async function deliveryQuery(ctx: CallContext, f: DeliveryFilter) {
  const db = ctx.app.store.db;
  if (f.startdate !== undefined && f.enddate !== undefined && f.enddate < f.startdate)
    throw invalidParameter('Invalid enddate specified');
  let q = db.selectFrom('webhook_deliveries');
  if (f.id) {
    const d = await db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('uuid', '=', f.id)
      .executeTakeFirst();
    if (!d) throw invalidParameter('Invalid ID specified');
    const hook = await db
      .selectFrom('webhooks')
      .selectAll()
      .where('id', '=', d.webhook_id)
      .executeTakeFirst();
    if (hook) await checkRowAccess(ctx, hook);
    q = q.where('webhook_deliveries.id', '=', d.id);
  }
  if (f.webhookid) {
    const hook = await findOwned(ctx, 'webhooks', f.webhookid, OWNED_WEBHOOK);
    q = q.where('webhook_deliveries.webhook_id', '=', hook.id);
  } else if (ctx.caller.roleKind !== 'admin') {
    // Users reach their account's webhooks; domain admins also those owned in their subtree.
    const caller = ctx.caller;
    q = q.where('webhook_deliveries.webhook_id', 'in', (eb) => {
      let w = eb.selectFrom('webhooks').select('webhooks.id');
      if (caller.roleKind === 'user' || caller.roleKind === 'resourceadmin')
        w = w.where('webhooks.account_id', '=', caller.account.id);
      else
        w = w.where((e) =>
          e.or([
            e('webhooks.account_id', '=', caller.account.id),
            e(
              'webhooks.domain_id',
              'in',
              e
                .selectFrom('domains')
                .select('domains.id')
                .where(pathPrefix('domains.path', caller.domain.path)),
            ),
          ]),
        );
      return w;
    });
  }
  if (f.managementserverid) {
    if (ctx.caller.roleKind !== 'admin') throw permissionDenied('Invalid parameter specified');
    const ms = await db
      .selectFrom('management_servers')
      .select('id')
      .where('uuid', '=', f.managementserverid)
      .executeTakeFirst();
    if (!ms) throw invalidParameter('Invalid management server specified');
    q = q.where('webhook_deliveries.management_server_id', '=', ms.id);
  }
  if (f.startdate !== undefined) q = q.where('webhook_deliveries.start_time', '>=', f.startdate);
  if (f.enddate !== undefined) q = q.where('webhook_deliveries.start_time', '<=', f.enddate);
  if (f.eventtype) q = q.where('webhook_deliveries.event_type', '=', f.eventtype);
  if (f.keyword) {
    const k = `%${f.keyword}%`;
    q = q.where((eb) =>
      eb.or([
        eb('webhook_deliveries.event_type', 'like', k),
        eb('webhook_deliveries.payload', 'like', k),
        eb('webhook_deliveries.response', 'like', k),
      ]),
    );
  }
  return q;
}

export const listWebhookDeliveries = defineCommand({
  name: 'listWebhookDeliveries',
  description:
    'Lists webhook delivery tries, newest first: what was sent (headers and body), whether the receiver accepted it, its answer and when.',
  params: {
    ...listParams,
    ...deliveryFilter,
    eventtype: p.string({
      description: 'Only deliveries of this event type, such as VM.CREATE or TEST.WEBHOOK.',
    }),
  },
  async handler(ctx, params) {
    const q = await deliveryQuery(ctx, params);
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q.selectAll('webhook_deliveries').orderBy('webhook_deliveries.id', 'desc'),
      pageOf(ctx.app, params),
    ).execute();
    return listResult(await presentDeliveries(ctx, rows), Number(count));
  },
});

export const deleteWebhookDelivery = defineCommand({
  name: 'deleteWebhookDelivery',
  description:
    'Deletes webhook delivery history: one delivery, a webhook’s, or those in a time range, within what the caller may reach.',
  params: deliveryFilter,
  async handler(ctx, params) {
    const q = await deliveryQuery(ctx, params);
    const ids = (await q.select('webhook_deliveries.id').execute()).map((r) => r.id);
    for (let i = 0; i < ids.length; i += 500)
      await ctx.app.store.db
        .deleteFrom('webhook_deliveries')
        .where('id', 'in', ids.slice(i, i + 500))
        .execute();
    return success();
  },
});

export const executeWebhookDelivery = defineCommand({
  name: 'executeWebhookDelivery',
  description:
    'Sends one POST now and answers with its outcome: a past delivery again (kept in the history), or a test payload to a webhook or to any address (not kept).',
  params: {
    id: p.uuid({ description: 'A past delivery to send again, with its original body, to its webhook.' }),
    webhookid: p.uuid({ description: 'Send a test payload to this webhook (not with id).' }),
    payloadurl: p.string({
      length: 2048,
      description: 'Send to this address instead of the webhook’s; alone, a test delivery to any address.',
    }),
    secretkey: p.string({ description: 'Sign with this key instead of the webhook’s.' }),
    sslverification: p.boolean({
      description: 'Check the receiver’s certificate (overrides the webhook’s setting).',
    }),
    payload: p.string({
      length: 65535,
      description: 'The body of a test delivery; {"CloudStack": "works!"} when left out.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const url = params.payloadurl?.trim() ? normalizeUrl(params.payloadurl) : undefined;
    if (!params.id && !params.webhookid && !url)
      throw invalidParameter('One of the id, webhookid or payloadurl must be specified');
    if (params.id && params.webhookid)
      throw invalidParameter('Only one of the id or webhookid can be specified');
    let hook: WebhookRow | undefined;
    let e: DeliveryEvent;
    let keep = false;
    if (params.id) {
      const past = await db
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('uuid', '=', params.id)
        .executeTakeFirst();
      if (!past) throw invalidParameter('Invalid webhook delivery specified');
      hook = await db
        .selectFrom('webhooks')
        .selectAll()
        .where('id', '=', past.webhook_id)
        .executeTakeFirstOrThrow();
      await checkRowAccess(ctx, hook);
      const ev =
        past.event_id === null
          ? undefined
          : await db
              .selectFrom('events')
              .innerJoin('accounts', 'accounts.id', 'events.account_id')
              .select(['events.uuid', 'accounts.uuid as account_uuid'])
              .where('events.id', '=', past.event_id)
              .executeTakeFirst();
      e = {
        eventId: past.event_id,
        eventUuid: ev?.uuid ?? app.ids.uuid(),
        eventType: past.event_type,
        accountUuid: ev?.account_uuid,
        payload: past.payload ?? '',
      };
      keep = true;
    } else {
      if (params.webhookid) hook = await findOwned(ctx, 'webhooks', params.webhookid, OWNED_WEBHOOK);
      e = {
        eventId: null,
        eventUuid: app.ids.uuid(),
        eventType: TEST_EVENT_TYPE,
        accountUuid: hook
          ? (
              await db
                .selectFrom('accounts')
                .select('uuid')
                .where('id', '=', hook.account_id)
                .executeTakeFirst()
            )?.uuid
          : ctx.caller.account.uuid,
        payload: params.payload?.trim() ? params.payload : '{ "CloudStack": "works!" }',
      };
    }
    const target = {
      payload_url: url ?? hook?.payload_url ?? '',
      secret_key: params.secretkey?.trim() ? params.secretkey : (hook?.secret_key ?? null),
      ssl_verification:
        (params.sslverification ?? hook?.ssl_verification === 1) ? (1 as const) : (0 as const),
    };
    checkSsl(target.ssl_verification === 1, target.payload_url);
    const timeout = app.settings.at(
      WEBHOOK_DELIVERY_TIMEOUT,
      'domain',
      hook?.domain_id ?? ctx.caller.domain.id,
    );
    // Internal targets: for root admins, and for anyone re-sending a root admin's webhook's delivery.
    const hookOwner = hook
      ? await db.selectFrom('accounts').select('type').where('id', '=', hook.account_id).executeTakeFirst()
      : undefined;
    const rootTarget = ctx.caller.account.type === 1 || (hookOwner?.type === 1 && !url);
    const attempt = await post(target, e, timeout, {
      guard: targetGuard(app, rootTarget ? 1 : ctx.caller.account.type),
    });
    if (keep && hook) {
      const id = await recordAttempt(app, hook.id, e, attempt);
      const row = await db
        .selectFrom('webhook_deliveries')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      return (await presentDeliveries(ctx, [row]))[0];
    }
    // A test delivery is answered, not kept (as upstream).
    return {
      id: app.ids.uuid(),
      eventtype: e.eventType,
      webhookid: hook?.uuid,
      webhookname: hook?.name,
      managementserverid: app.server.uuid,
      managementservername: app.server.name,
      headers: attempt.headers,
      payload: attempt.payload,
      success: attempt.success,
      response: attempt.response,
      startdate: formatDate(attempt.start),
      enddate: formatDate(attempt.end),
    };
  },
});

export const webhookCommands = [
  createWebhook,
  updateWebhook,
  deleteWebhook,
  listWebhooks,
  listWebhookDeliveries,
  deleteWebhookDelivery,
  executeWebhookDelivery,
];
