/**
 * Stickiness and health-check policies of load balancing rules (`lb_policies`). A rule has at
 * most one of each: a new stickiness policy replaces the old one once the router has it (as
 * upstream revokes the previous), a second health check is refused (as upstream). Parameters are
 * checked as upstream's virtual router checks them, and against what the router's HAProxy
 * accepts, so a policy the router would refuse is a 431 before any job runs.
 *
 * Stored parameters: stickiness, the method's name → value map (names lower-cased); health
 * checks, `pingpath`, `intervaltime`, `responsetimeout`, `healthythreshold` and
 * `unhealthythreshold` (router-rules.ts reads these names).
 */
import type { CallContext } from '../context.ts';
import type { IpRuleRow, LbPolicyRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { listParams, p } from '../registry/params.ts';
import { applyOrUndo } from './ip-rules.ts';
import { checkNotRevoked, findLoadBalancer } from './lb-common.ts';

type Kind = 'Stickiness' | 'HealthCheck';
/** The job instance types of policy jobs (upstream's resource object types). */
const POLICY_TYPE = { Stickiness: 'LBStickinessPolicy', HealthCheck: 'LBHealthCheckPolicy' } as const;

/** Upstream's stickiness methods (the virtual router's capability), with their parameters. */
const METHODS: Record<string, { name: string; params: Record<string, { flag: boolean }> }> = {
  lbcookie: {
    name: 'LbCookie',
    params: {
      'cookie-name': { flag: false },
      mode: { flag: false },
      nocache: { flag: true },
      indirect: { flag: true },
      postonly: { flag: true },
      domain: { flag: false },
    },
  },
  appcookie: {
    name: 'AppCookie',
    params: {
      'cookie-name': { flag: false },
      length: { flag: false },
      holdtime: { flag: false },
      'request-learn': { flag: true },
      prefix: { flag: true },
      mode: { flag: false },
    },
  },
  sourcebased: { name: 'SourceBased', params: { tablesize: { flag: false }, expire: { flag: false } } },
};

/** A number with one of the given unit letters (upstream's containsOnlyNumbers). */
const withUnit = (v: string, units: string) => new RegExp(`^\\d{1,9}[${units}]$`).test(v);
/**
 * What the router's HAProxy honours of each method (agent: network/router-haproxy.ts): LbCookie
 * always inserts its cookie, indirect and nocache; AppCookie prefixes the application's cookie
 * (HAProxy has no appsession any more); SourceBased takes both its parameters. Others are refused
 * after upstream's checks, so no policy claims a behaviour the router does not have.
 */
const HONOURED: Record<string, (name: string, value: string) => boolean> = {
  LbCookie: (n, v) => ['cookie-name', 'nocache', 'indirect'].includes(n) || (n === 'mode' && v === 'insert'),
  AppCookie: (n) => n === 'cookie-name' || n === 'prefix',
  SourceBased: () => true,
};
/** What HAProxy takes as a cookie name. */
const TOKEN = /^[A-Za-z0-9_.-]{1,64}$/;

function stickinessParams(ruleUuid: string, method: string, list: Record<string, string>[] | undefined) {
  const spec = METHODS[method.toLowerCase()];
  if (!spec) throw invalidParameter(`Failed to match Stickiness method name for LB rule:${ruleUuid}`);
  const params: Record<string, string> = {};
  for (const entry of list ?? []) {
    const name = entry.name?.trim().toLowerCase() ?? '';
    const param = spec.params[name];
    if (!param)
      throw invalidParameter(`Failed : Stickiness policy does not support param name :${entry.name}`);
    const value = entry.value?.trim() ?? '';
    if (!param.flag && value === '') throw invalidParameter(`Failed : Value expected for the Param :${name}`);
    params[name] = value;
  }
  const fail = (cause: string) =>
    invalidParameter(`Failed LB in validation rule id: ${ruleUuid} Cause: ${cause}`);
  if (spec.name === 'SourceBased') {
    if (params.expire !== undefined && !withUnit(params.expire, 'dhms'))
      throw fail(`expire is not in timeformat: ${params.expire}`);
    if (params.tablesize !== undefined && !withUnit(params.tablesize, 'kmg'))
      throw fail(`tablesize is not in size format: ${params.tablesize}`);
  }
  if (spec.name === 'AppCookie') {
    if (params.length !== undefined && !/^\d{1,9}$/.test(params.length))
      throw fail(`length is not a number: ${params.length}`);
    if (params.holdtime !== undefined && !/^\d{1,9}[dhms]?$/.test(params.holdtime))
      throw fail(`holdtime is not in timeformat: ${params.holdtime}`);
  }
  const cookie = params['cookie-name'];
  if (cookie !== undefined && !TOKEN.test(cookie))
    throw fail(`cookie-name ${cookie} is not a valid cookie name (letters, digits, '.', '-', '_')`);
  for (const [name, value] of Object.entries(params))
    if (!HONOURED[spec.name]?.(name, value))
      throw invalidParameter(
        `Stickiness parameter ${name}${value ? `=${value}` : ''} of ${spec.name} is not supported by the virtual router's load balancer`,
      );
  return { method: spec.name, params };
}

function policyRows(ctx: CallContext, ruleId: number, kind: Kind, forDisplay?: boolean) {
  let q = ctx.app.store.db
    .selectFrom('lb_policies')
    .selectAll()
    .where('rule_id', '=', ruleId)
    .where('kind', '=', kind);
  if (forDisplay !== undefined) q = q.where('for_display', '=', forDisplay ? 1 : 0);
  return q.orderBy('id').execute();
}

async function findPolicy(ctx: CallContext, uuid: string, kind: Kind) {
  const policy = await ctx.app.store.db
    .selectFrom('lb_policies')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('kind', '=', kind)
    .executeTakeFirst();
  if (!policy)
    throw invalidParameter(
      `Invalid ${kind === 'Stickiness' ? 'Stickiness' : 'HealthCheck'} policy id value: ${uuid}`,
    );
  const rule = await ctx.app.store.db
    .selectFrom('ip_rules')
    .select('uuid')
    .where('id', '=', policy.rule_id)
    .executeTakeFirstOrThrow();
  return { policy, rule: await findLoadBalancer(ctx, rule.uuid) };
}

function presentPolicy(p: LbPolicyRow): Record<string, unknown> {
  const params = JSON.parse(p.params) as Record<string, string>;
  if (p.kind === 'Stickiness')
    return {
      id: p.uuid,
      name: p.name ?? undefined,
      methodname: p.method ?? undefined,
      description: p.description ?? undefined,
      state: 'Active',
      fordisplay: p.for_display === 1,
      params,
    };
  return {
    id: p.uuid,
    pingpath: params.pingpath,
    description: p.description ?? undefined,
    state: 'Active',
    responsetime: Number(params.responsetimeout),
    healthcheckinterval: Number(params.intervaltime),
    healthcheckthresshold: Number(params.healthythreshold),
    unhealthcheckthresshold: Number(params.unhealthythreshold),
    fordisplay: p.for_display === 1,
  };
}

/** Upstream's response: the rule's owner and zone, with the policies in a list inside. */
async function presentForRule(ctx: CallContext, rule: IpRuleRow, kind: Kind, policies: LbPolicyRow[]) {
  const db = ctx.app.store.db;
  const [account, domain, zone] = await Promise.all([
    db.selectFrom('accounts').select('name').where('id', '=', rule.account_id).executeTakeFirst(),
    db.selectFrom('domains').select(['uuid', 'name']).where('id', '=', rule.domain_id).executeTakeFirst(),
    db
      .selectFrom('networks')
      .innerJoin('zones', 'zones.id', 'networks.zone_id')
      .select('zones.uuid')
      .where('networks.id', '=', rule.network_id)
      .executeTakeFirst(),
  ]);
  const list = policies.map(presentPolicy);
  return {
    lbruleid: rule.uuid,
    account: account?.name,
    domainid: domain?.uuid,
    domain: domain?.name,
    zoneid: zone?.uuid,
    ...(kind === 'Stickiness'
      ? {
          name: policies[0]?.name ?? undefined,
          description: policies[0]?.description ?? undefined,
          state: 'Active',
          stickinesspolicy: list,
        }
      : { healthcheckpolicy: list }),
  };
}

/** Inserts a policy row (before the job: its id comes back with the job id). */
async function insertPolicy(
  ctx: CallContext,
  rule: IpRuleRow,
  row: {
    kind: Kind;
    name?: string;
    description?: string;
    method?: string;
    params: Record<string, string>;
    fordisplay?: boolean;
  },
): Promise<string> {
  const uuid = ctx.app.ids.uuid();
  await ctx.app.store.db
    .insertInto('lb_policies')
    .values({
      uuid,
      rule_id: rule.id,
      kind: row.kind,
      name: row.name ?? null,
      description: row.description ?? null,
      method: row.method ?? null,
      params: JSON.stringify(row.params),
      for_display: row.fordisplay === false ? 0 : 1,
      created: ctx.app.clock.now(),
    })
    .execute();
  return uuid;
}

export const createLBStickinessPolicy = defineCommand({
  name: 'createLBStickinessPolicy',
  description:
    "Makes a load balancer rule keep each client on the same VM (by cookie or source address); replaces the rule's previous stickiness policy. Asynchronous.",
  params: {
    lbruleid: p.uuid({ required: true, description: 'ID of the load balancer rule the policy applies to.' }),
    name: p.string({ required: true, description: 'Name of the policy; must not be blank.' }),
    methodname: p.string({
      required: true,
      description:
        "How clients are recognised: LbCookie (a cookie the balancer inserts), AppCookie (the application's cookie) or SourceBased (the client's address).",
    }),
    param: p.map({
      description:
        'Method options as param[0].name/param[0].value. LbCookie: cookie-name, nocache, indirect, mode=insert. AppCookie: cookie-name, prefix. SourceBased: tablesize (e.g. 200k), expire (e.g. 30m). Others are refused.',
    }),
    description: p.string({ description: 'Free-text description of the policy.' }),
    fordisplay: p.boolean({
      adminOnly: true,
      description: 'Whether end users see the policy. Defaults to true.',
    }),
  },
  event: {
    type: 'LB.STICKINESSPOLICY.CREATE',
    description: (params) => `creating stickiness policy ${params.name} of load balancer ${params.lbruleid}`,
  },
  async create(ctx, params) {
    const rule = await findLoadBalancer(ctx, params.lbruleid);
    checkNotRevoked(rule);
    if (params.name.trim() === '') throw invalidParameter('The stickiness policy name must not be empty');
    const { method, params: values } = stickinessParams(rule.uuid, params.methodname, params.param);
    const uuid = await insertPolicy(ctx, rule, {
      kind: 'Stickiness',
      name: params.name.trim(),
      description: params.description,
      method,
      params: values,
      fordisplay: params.fordisplay,
    });
    return { type: POLICY_TYPE.Stickiness, id: uuid };
  },
  async handler(ctx, _params, created) {
    const { app } = ctx;
    const { policy, rule } = await findPolicy(ctx, created!.id, 'Stickiness');
    // The router uses the newest stickiness policy; the older ones go once it has the new one.
    const older = (await policyRows(ctx, rule.id, 'Stickiness')).filter((x) => x.id !== policy.id);
    await applyOrUndo(app, rule.network_id, `apply stickiness policy ${policy.name}`, async () => {
      await app.store.db.deleteFrom('lb_policies').where('id', '=', policy.id).execute();
    });
    if (older.length)
      await app.store.db
        .deleteFrom('lb_policies')
        .where(
          'id',
          'in',
          older.map((x) => x.id),
        )
        .execute();
    return presentForRule(ctx, rule, 'Stickiness', [policy]);
  },
});

/** Health-check values as upstream defaults and checks them. */
function healthCheckParams(params: {
  pingpath?: string;
  intervaltime?: number;
  responsetimeout?: number;
  healthythreshold?: number;
  unhealthythreshold?: number;
}): Record<string, string> {
  const pingpath = params.pingpath?.trim() || '/';
  if (!/^\/[\x21-\x7e]{0,1023}$/.test(pingpath))
    throw invalidParameter(
      `Invalid pingpath ${params.pingpath}: an HTTP path starting with / without spaces`,
    );
  // Upstream: 0 (or absent) means the default.
  const pick = (v: number | undefined, dflt: number, name: string, max: number) => {
    if (v === undefined || v === 0) return dflt;
    if (v < 1 || v > max) throw invalidParameter(`Invalid value for ${name}: ${v}, must be 1..${max}`);
    return v;
  };
  const interval = pick(params.intervaltime, 5, 'intervaltime', 20940);
  const timeout = pick(params.responsetimeout, 2, 'responsetimeout', 60);
  // On the values the router gets, defaults included (upstream compares only when both are given).
  if (timeout > interval)
    throw invalidParameter(
      'Failed to create HealthCheck policy : Monitor interval must be greater than response timeout',
    );
  return {
    pingpath,
    intervaltime: String(interval),
    responsetimeout: String(timeout),
    healthythreshold: String(pick(params.healthythreshold, 2, 'healthythreshold', 1000)),
    unhealthythreshold: String(pick(params.unhealthythreshold, 1, 'unhealthythreshold', 1000)),
  };
}

export const createLBHealthCheckPolicy = defineCommand({
  name: 'createLBHealthCheckPolicy',
  description:
    "Makes the router's balancer probe a rule's VMs over HTTP and stop sending traffic to those that fail; one policy per rule. Asynchronous.",
  params: {
    lbruleid: p.uuid({ required: true, description: 'ID of the load balancer rule the policy applies to.' }),
    pingpath: p.string({ description: 'HTTP path requested from each VM, starting with /; defaults to /.' }),
    intervaltime: p.integer({ description: 'Seconds between probes, 1-20940; default 5.' }),
    responsetimeout: p.integer({
      description: 'Seconds a VM has to answer a probe, 1-60 and not above intervaltime; default 2.',
    }),
    healthythreshold: p.integer({
      description: 'Consecutive successful probes that bring a VM back, 1-1000; default 2.',
    }),
    unhealthythreshold: p.integer({
      description: 'Consecutive failed probes that take a VM out, 1-1000; default 1.',
    }),
    description: p.string({ description: 'Free-text description of the policy.' }),
    fordisplay: p.boolean({
      adminOnly: true,
      description: 'Whether end users see the policy. Defaults to true.',
    }),
  },
  event: {
    type: 'LB.HEALTHCHECKPOLICY.CREATE',
    description: (params) => `creating health check policy of load balancer ${params.lbruleid}`,
  },
  async create(ctx, params) {
    const values = healthCheckParams(params);
    const rule = await findLoadBalancer(ctx, params.lbruleid);
    checkNotRevoked(rule);
    if ((await policyRows(ctx, rule.id, 'HealthCheck')).length)
      throw invalidParameter(
        `Failed to create HealthCheck policy: Already policy attached  for the LB Rule:${rule.uuid}`,
      );
    const uuid = await insertPolicy(ctx, rule, {
      kind: 'HealthCheck',
      description: params.description,
      params: values,
      fordisplay: params.fordisplay,
    });
    return { type: POLICY_TYPE.HealthCheck, id: uuid };
  },
  async handler(ctx, _params, created) {
    const { app } = ctx;
    const { policy, rule } = await findPolicy(ctx, created!.id, 'HealthCheck');
    await applyOrUndo(app, rule.network_id, 'apply the health check policy', async () => {
      await app.store.db.deleteFrom('lb_policies').where('id', '=', policy.id).execute();
    });
    return presentForRule(ctx, rule, 'HealthCheck', [policy]);
  },
});

function deletePolicyCommand(name: 'deleteLBStickinessPolicy' | 'deleteLBHealthCheckPolicy', kind: Kind) {
  return defineCommand({
    name,
    description:
      kind === 'Stickiness'
        ? "Deletes a stickiness policy and reloads the router's balancer without it; asynchronous."
        : "Deletes a health check policy and reloads the router's balancer without it; asynchronous.",
    params: { id: p.uuid({ required: true, description: 'ID of the policy to delete.' }) },
    event: {
      type: kind === 'Stickiness' ? 'LB.STICKINESSPOLICY.DELETE' : 'LB.HEALTHCHECKPOLICY.DELETE',
      description: (params) =>
        `deleting ${kind === 'Stickiness' ? 'stickiness' : 'health check'} policy ${params.id}`,
    },
    async target(ctx, params) {
      const { rule } = await findPolicy(ctx, params.id, kind);
      return { type: 'FirewallRule', id: rule.uuid };
    },
    async handler(ctx, params) {
      const { app } = ctx;
      const { policy, rule } = await findPolicy(ctx, params.id, kind);
      await app.store.db.deleteFrom('lb_policies').where('id', '=', policy.id).execute();
      await applyOrUndo(app, rule.network_id, `delete the policy ${policy.uuid}`, async () => {
        await app.store.db.insertInto('lb_policies').values(policy).execute();
      });
      return success();
    },
  });
}

export const deleteLBStickinessPolicy = deletePolicyCommand('deleteLBStickinessPolicy', 'Stickiness');
export const deleteLBHealthCheckPolicy = deletePolicyCommand('deleteLBHealthCheckPolicy', 'HealthCheck');

/** A customid for a policy: a UUID (lower-cased) that no other policy has, as upstream checks it. */
async function customPolicyId(ctx: CallContext, policy: LbPolicyRow, customid: string | undefined) {
  if (customid === undefined) return undefined;
  const id = customid.trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id))
    throw invalidParameter(`UUID: ${customid} doesn't follow the UUID format`);
  const taken = await ctx.app.store.db
    .selectFrom('lb_policies')
    .select('id')
    .where('uuid', '=', id)
    .executeTakeFirst();
  if (taken && taken.id !== policy.id)
    throw invalidParameter(`UUID: ${customid} already exists so can't create/update with custom id`);
  return id;
}

/** fordisplay (and customid, for root admins) change no router state: no round trip needed. */
function updatePolicyCommand(name: 'updateLBStickinessPolicy' | 'updateLBHealthCheckPolicy', kind: Kind) {
  return defineCommand({
    name,
    description:
      kind === 'Stickiness'
        ? 'Changes the display flag or the ID of a stickiness policy; the router is not involved. Asynchronous.'
        : 'Changes the display flag or the ID of a health check policy; the router is not involved. Asynchronous.',
    params: {
      id: p.uuid({ required: true, description: 'ID of the policy to update.' }),
      fordisplay: p.boolean({ adminOnly: true, description: 'Whether end users see the policy.' }),
      customid: p.string({
        adminOnly: true,
        description: 'New ID for the policy: a UUID no other policy has (root administrators only).',
      }),
    },
    event: {
      type: kind === 'Stickiness' ? 'LB.STICKINESSPOLICY.UPDATE' : 'LB.HEALTHCHECKPOLICY.UPDATE',
      description: (params) =>
        `updating ${kind === 'Stickiness' ? 'stickiness' : 'health check'} policy ${params.id}`,
    },
    async target(ctx, params) {
      const { rule } = await findPolicy(ctx, params.id, kind);
      return { type: 'FirewallRule', id: rule.uuid };
    },
    async handler(ctx, params) {
      const { policy, rule } = await findPolicy(ctx, params.id, kind);
      const changes: Partial<LbPolicyRow> = {};
      if (params.fordisplay !== undefined) changes.for_display = params.fordisplay ? 1 : 0;
      const custom = await customPolicyId(ctx, policy, params.customid);
      if (custom !== undefined) changes.uuid = custom;
      if (Object.keys(changes).length)
        await ctx.app.store.db.updateTable('lb_policies').set(changes).where('id', '=', policy.id).execute();
      const row = await ctx.app.store.db
        .selectFrom('lb_policies')
        .selectAll()
        .where('id', '=', policy.id)
        .executeTakeFirstOrThrow();
      return presentForRule(ctx, rule, kind, [row]);
    },
  });
}

export const updateLBStickinessPolicy = updatePolicyCommand('updateLBStickinessPolicy', 'Stickiness');
export const updateLBHealthCheckPolicy = updatePolicyCommand('updateLBHealthCheckPolicy', 'HealthCheck');

function listPolicyCommand(name: 'listLBStickinessPolicies' | 'listLBHealthCheckPolicies', kind: Kind) {
  return defineCommand({
    name,
    description:
      kind === 'Stickiness'
        ? 'Lists the stickiness policy of a load balancer rule, given the rule or the policy; keyword matches its name.'
        : 'Lists the health check policy of a load balancer rule, given the rule or the policy; keyword matches its description.',
    params: {
      ...listParams,
      lbruleid: p.uuid({
        description: 'Load balancer rule whose policies are listed; without it or id the list is empty.',
      }),
      id: p.uuid({ description: 'Only the policy with this ID; an unknown ID gives an empty list.' }),
      fordisplay: p.boolean({
        adminOnly: true,
        description: 'List the policies hidden from users (false) instead of the shown ones (default true).',
      }),
    },
    async handler(ctx, params) {
      // Upstream finds no rule and answers an empty list.
      if (!params.lbruleid && !params.id) return listResult([], 0);
      let rule: IpRuleRow | undefined;
      if (params.lbruleid) rule = await findLoadBalancer(ctx, params.lbruleid);
      else {
        const found = await ctx.app.store.db
          .selectFrom('lb_policies')
          .select('uuid')
          .where('uuid', '=', params.id as string)
          .where('kind', '=', kind)
          .executeTakeFirst();
        // Upstream answers an empty list for a policy that does not exist.
        if (!found) return listResult([], 0);
        rule = (await findPolicy(ctx, found.uuid, kind)).rule;
      }
      // Upstream lists the policies shown to users unless fordisplay=false is asked for.
      let rows = await policyRows(ctx, rule.id, kind, params.fordisplay ?? true);
      if (params.id) rows = rows.filter((r) => r.uuid === params.id);
      if (params.keyword)
        rows = rows.filter((r) => (r.name ?? r.description ?? '').includes(params.keyword as string));
      return listResult([await presentForRule(ctx, rule, kind, rows)], 1);
    },
  });
}

export const listLBStickinessPolicies = listPolicyCommand('listLBStickinessPolicies', 'Stickiness');
export const listLBHealthCheckPolicies = listPolicyCommand('listLBHealthCheckPolicies', 'HealthCheck');

export const lbPolicyCommands = [
  createLBStickinessPolicy,
  listLBStickinessPolicies,
  updateLBStickinessPolicy,
  deleteLBStickinessPolicy,
  createLBHealthCheckPolicy,
  listLBHealthCheckPolicies,
  updateLBHealthCheckPolicy,
  deleteLBHealthCheckPolicy,
];
