/**
 * Security groups: per-account sets of ingress and egress rules that VMs join. Semantics are
 * upstream's: ingress is denied unless a rule admits it; egress is allowed while a group has no
 * egress rule, and limited to its egress rules once it has one. Every account has a `default`
 * group, created on first use. These are records here; the hosts' network driver enforces them.
 */

import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { AccountRow, SecurityGroupRow, SecurityGroupRuleRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped, listScope } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { checkRowAccess, findOwned, listOwned, OWNED_VM } from '../iam/owned.ts';
import { isIpv4, likeOp } from '../infra/common.ts';
import { projectOwner } from '../projects/access.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { tagsOf, withTags } from '../tags/tags.ts';
import { insertUnlessTaken, latest } from './common.ts';
import { refreshSecurity, runningMembers } from './host-network.ts';

export const DEFAULT_GROUP_NAME = 'default';
const DEFAULT_GROUP_DESCRIPTION = 'Default Security Group';

type Owner = Pick<AccountRow, 'id' | 'domain_id' | 'name'>;
type RuleType = 'ingress' | 'egress';

/**
 * The account's `default` group; created here the first time anyone needs it. It is idempotent
 * and outlives any caller's failure, so it runs on its own rather than in a caller's transaction.
 */
export async function ensureDefaultGroup(app: App, owner: Owner): Promise<SecurityGroupRow> {
  const tx = app.store.db;
  const query = tx
    .selectFrom('security_groups')
    .selectAll()
    .where('account_id', '=', owner.id)
    .where('name', '=', DEFAULT_GROUP_NAME);
  const existing = await query.executeTakeFirst();
  if (existing) return existing;
  const inserted = await insertUnlessTaken(app, tx, 'security_groups', {
    uuid: app.ids.uuid(),
    name: DEFAULT_GROUP_NAME,
    description: DEFAULT_GROUP_DESCRIPTION,
    account_id: owner.id,
    domain_id: owner.domain_id,
    created: app.clock.now(),
  });
  return (inserted ? query : latest(app, query)).executeTakeFirstOrThrow();
}

function presentRule(
  r: SecurityGroupRuleRow,
  allowed: Map<number, { name: string; account: string }>,
): Record<string, unknown> {
  const peer = r.allowed_group_id === null ? undefined : allowed.get(r.allowed_group_id);
  return {
    ruleid: r.uuid,
    protocol: r.protocol,
    ...(r.protocol === 'icmp'
      ? { icmptype: r.icmp_type ?? undefined, icmpcode: r.icmp_code ?? undefined }
      : { startport: r.start_port ?? undefined, endport: r.end_port ?? undefined }),
    ...(peer ? { account: peer.account, securitygroupname: peer.name } : { cidr: r.cidr ?? undefined }),
    tags: [],
  };
}

/**
 * Security groups as CloudStack shows them, always with both rule arrays. `onlyRules` limits the
 * rules shown to those ids (the result of an authorize job is the group with just its new rules).
 */
export async function presentSecurityGroups(
  ctx: Pick<CallContext, 'app'>,
  groups: SecurityGroupRow[],
  onlyRules?: Set<number>,
): Promise<Record<string, unknown>[]> {
  if (groups.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = groups.map((g) => g.id);
  const [rules, members, tags] = await Promise.all([
    db.selectFrom('security_group_rules').selectAll().where('group_id', 'in', ids).orderBy('id').execute(),
    db
      .selectFrom('security_group_vm_map')
      .innerJoin('vms', 'vms.id', 'security_group_vm_map.vm_id')
      .select(['security_group_vm_map.group_id', 'vms.uuid'])
      .where('security_group_vm_map.group_id', 'in', ids)
      .where('vms.removed', 'is', null)
      .orderBy('vms.id')
      .execute(),
    tagsOf(ctx as CallContext, 'SecurityGroup', ids),
  ]);
  const peerIds = [...new Set(rules.map((r) => r.allowed_group_id).filter((x): x is number => x !== null))];
  const peers = peerIds.length
    ? await db
        .selectFrom('security_groups')
        .innerJoin('accounts', 'accounts.id', 'security_groups.account_id')
        .select(['security_groups.id', 'security_groups.name', 'accounts.name as account'])
        .where('security_groups.id', 'in', peerIds)
        .execute()
    : [];
  const allowed = new Map(peers.map((g) => [g.id, { name: g.name, account: g.account }]));
  const [accounts, domains] = await Promise.all([
    db
      .selectFrom('accounts')
      .select(['id', 'name'])
      .where('id', 'in', [...new Set(groups.map((g) => g.account_id))])
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', [...new Set(groups.map((g) => g.domain_id))])
      .execute(),
  ]);
  const accountName = new Map(accounts.map((a) => [a.id, a.name]));
  const domainById = new Map(domains.map((d) => [d.id, d]));
  return groups.map((g) => {
    const mine = rules.filter((r) => r.group_id === g.id && (!onlyRules || onlyRules.has(r.id)));
    const vmIds = members.filter((m) => m.group_id === g.id).map((m) => m.uuid);
    const domain = domainById.get(g.domain_id);
    return {
      id: g.uuid,
      name: g.name,
      description: g.description ?? undefined,
      account: accountName.get(g.account_id),
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
      ingressrule: mine.filter((r) => r.type === 'ingress').map((r) => presentRule(r, allowed)),
      egressrule: mine.filter((r) => r.type === 'egress').map((r) => presentRule(r, allowed)),
      tags: tags.get(g.id) ?? [],
      virtualmachinecount: vmIds.length,
      virtualmachineids: vmIds,
    };
  });
}

/** The account that owns what a command creates: a project's, account+domainid, else the caller's. */
async function ownerFor(
  ctx: CallContext,
  params: { account?: string; domainid?: string; projectid?: string },
  purpose: 'create' | 'find' = 'create',
): Promise<Owner> {
  const project = await projectOwner(ctx, params, purpose);
  if (project) return project;
  if (params.account)
    return (await resolveAccount(ctx, { account: params.account, domainid: params.domainid })).account;
  if (params.domainid) throw invalidParameter('domainid must be given together with account');
  return ctx.caller.account;
}

async function groupByName(
  ctx: Pick<CallContext, 'app'>,
  owner: Owner,
  name: string,
): Promise<SecurityGroupRow | undefined> {
  const db = ctx.app.store.db;
  if (name.toLowerCase() === DEFAULT_GROUP_NAME) return ensureDefaultGroup(ctx.app, owner);
  const rows = await db
    .selectFrom('security_groups')
    .selectAll()
    .where('account_id', '=', owner.id)
    .execute();
  return rows.find((g) => g.name === name) ?? rows.find((g) => g.name.toLowerCase() === name.toLowerCase());
}

/** Finds a group by id (checking access) or by name within the owner given by account/domainid. */
async function findGroup(
  ctx: CallContext,
  params: { id?: string; name?: string; account?: string; domainid?: string; projectid?: string },
  names: { id: string; name: string },
): Promise<SecurityGroupRow> {
  if (params.id && params.name)
    throw invalidParameter(`${names.id} and ${names.name} are mutually exclusive: give only one`);
  if (params.id) {
    // A project named with the id must be the group's owner (and one the caller may use).
    const project = await projectOwner(ctx, params, 'find');
    return findOwned(ctx, 'security_groups', params.id, {
      noun: 'security group',
      live: (g) => !project || g.account_id === project.id,
    });
  }
  if (!params.name) throw invalidParameter(`Either ${names.id} or ${names.name} must be specified`);
  const owner = await ownerFor(ctx, params, 'find');
  const group = await groupByName(ctx, owner, params.name);
  if (!group) throw invalidParameter(`Unable to find security group ${params.name} of account ${owner.name}`);
  return group;
}

export const createSecurityGroup = defineCommand({
  name: 'createSecurityGroup',
  description:
    "Creates an empty security group for an account; its VMs then accept only what its ingress rules allow. The name 'default' is reserved.",
  params: {
    name: p.string({
      required: true,
      description: "Name of the group, unique in the account; must not be blank or 'default'.",
    }),
    description: p.string({
      length: 4096,
      description: 'Free-text description of the group, up to 4096 characters.',
    }),
    account: p.string({
      description: 'Account that owns the group (with domainid); defaults to the caller.',
    }),
    domainid: p.uuid({ description: 'Domain of account; only with account.' }),
    projectid: p.uuid({ description: 'Project to own the group (you must be a member); not with account.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const owner = await ownerFor(ctx, params);
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Security group name must not be empty');
    if (name.toLowerCase() === DEFAULT_GROUP_NAME)
      throw invalidParameter(
        `Unable to create security group ${name}: the name is reserved for the default group`,
      );
    await ensureDefaultGroup(app, owner);
    const group = await app.store.db.transaction().execute(async (tx) => {
      const existing = await tx
        .selectFrom('security_groups')
        .select('name')
        .where('account_id', '=', owner.id)
        .execute();
      if (existing.some((g) => g.name.toLowerCase() === name.toLowerCase()))
        throw invalidParameter(`Unable to create security group, a group with name ${name} already exists`);
      const uuid = app.ids.uuid();
      await tx
        .insertInto('security_groups')
        .values({
          uuid,
          name,
          description: params.description ?? null,
          account_id: owner.id,
          domain_id: owner.domain_id,
          created: app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'SG.CREATE',
        description: `creating security group ${name} for account ${owner.name}`,
        resourceType: 'SecurityGroup',
        resourceId: uuid,
      });
      return tx.selectFrom('security_groups').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
    });
    return (await presentSecurityGroups(ctx, [group]))[0] as object;
  },
});

export const deleteSecurityGroup = defineCommand({
  name: 'deleteSecurityGroup',
  description:
    "Deletes a security group with its rules and tags; refused for the default group, a group with VMs, or one other groups' rules refer to.",
  params: {
    id: p.uuid({ description: 'ID of the group to delete; give it or name.' }),
    name: p.string({
      description: "Name of the group, in the account given by account/domainid or the caller's.",
    }),
    account: p.string({ description: 'Account whose group name names (with domainid).' }),
    domainid: p.uuid({ description: 'Domain of account; only with account.' }),
    projectid: p.uuid({ description: 'With name: the project whose group is meant, instead of account.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const group = await findGroup(ctx, params, { id: 'id', name: 'name' });
    if (group.name === DEFAULT_GROUP_NAME)
      throw invalidParameter(`The security group ${DEFAULT_GROUP_NAME} is reserved and cannot be deleted`);
    await app.store.db.transaction().execute(async (tx) => {
      const member = await tx
        .selectFrom('security_group_vm_map')
        .select('vm_id')
        .where('group_id', '=', group.id)
        .executeTakeFirst();
      if (member)
        throw resourceInUse(`Cannot delete security group ${group.name}: it is in use by virtual machines`);
      const referenced = await tx
        .selectFrom('security_group_rules')
        .select('id')
        .where('allowed_group_id', '=', group.id)
        .where('group_id', '!=', group.id)
        .executeTakeFirst();
      if (referenced)
        throw resourceInUse(
          `Cannot delete security group ${group.name}: rules of other groups allow traffic from it`,
        );
      await tx.deleteFrom('security_group_rules').where('group_id', '=', group.id).execute();
      await tx
        .deleteFrom('resource_tags')
        .where('resource_type', '=', 'SecurityGroup')
        .where('resource_id', '=', group.id)
        .execute();
      await tx.deleteFrom('security_groups').where('id', '=', group.id).execute();
      await logEvent(ctx, tx, {
        type: 'SG.DELETE',
        description: `deleting security group ${group.name}`,
        resourceType: 'SecurityGroup',
        resourceId: group.uuid,
      });
    });
    return success();
  },
});

/** Upstream's names, plus the IPsec and GRE names Ansible's cs_securitygroup_rule offers. */
const PROTOCOLS = ['tcp', 'udp', 'icmp', 'all', 'ah', 'esp', 'gre'];

function parseCidr(text: string): string {
  const cidr = text.trim();
  const [ip, bits, extra] = cidr.split('/');
  const validBits = (max: number) => bits !== undefined && /^\d{1,3}$/.test(bits) && Number(bits) <= max;
  const v4 = isIpv4(ip ?? '') && validBits(32);
  const v6 = /^[0-9a-f:]+$/i.test(ip ?? '') && (ip ?? '').includes(':') && validBits(128);
  if (extra !== undefined || !(v4 || v6)) throw invalidParameter(`Invalid cidr ${text}`);
  return cidr;
}

interface RuleSpec {
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
}

/** Checks protocol, ports and ICMP type/code as upstream does and normalises them. */
function ruleSpec(params: {
  protocol?: string;
  startport?: number;
  endport?: number;
  icmptype?: number;
  icmpcode?: number;
}): RuleSpec {
  const raw = (params.protocol ?? 'all').trim().toLowerCase();
  const numeric = /^\d+$/.test(raw) && Number(raw) <= 255;
  if (!PROTOCOLS.includes(raw) && !numeric)
    throw invalidParameter(
      `Invalid protocol ${params.protocol}: use tcp, udp, icmp, all or an IP protocol number`,
    );
  const { startport, endport, icmptype, icmpcode } = params;
  if (raw === 'icmp') {
    if (icmptype === undefined || icmpcode === undefined)
      throw invalidParameter(
        `Invalid ICMP type/code specified, icmpType = ${icmptype}, icmpCode = ${icmpcode}`,
      );
    if (icmptype < -1 || icmptype > 255 || icmpcode < -1 || icmpcode > 255)
      throw invalidParameter(`Invalid ICMP type/code ${icmptype}/${icmpcode}: each must be -1..255`);
    if ((icmptype === -1) !== (icmpcode === -1))
      throw invalidParameter(
        `Invalid ICMP type/code ${icmptype}/${icmpcode}: -1 (any) must be used for both`,
      );
    if (startport !== undefined || endport !== undefined)
      throw invalidParameter('startport and endport do not apply to ICMP rules');
    return { protocol: raw, start_port: null, end_port: null, icmp_type: icmptype, icmp_code: icmpcode };
  }
  if (icmptype !== undefined || icmpcode !== undefined)
    throw invalidParameter(`icmptype and icmpcode apply only to ICMP rules, not ${raw}`);
  if (raw === 'tcp' || raw === 'udp') {
    if (startport === undefined || endport === undefined)
      throw invalidParameter(`Invalid port range specified, startPort = ${startport}, endPort = ${endport}`);
    if (startport < 0 || endport < 0 || startport > 65535 || endport > 65535)
      throw invalidParameter(`Invalid port numbers ${startport}:${endport}: ports are 0..65535`);
    if (startport > endport)
      throw invalidParameter(`Invalid port range ${startport}:${endport}: start port is after end port`);
    // Upstream reads 0-0 as every port.
    const end = startport === 0 && endport === 0 ? 65535 : endport;
    return { protocol: raw, start_port: startport, end_port: end, icmp_type: null, icmp_code: null };
  }
  if (startport !== undefined || endport !== undefined)
    throw invalidParameter(`Cannot specify startport or endport for protocol ${raw}`);
  return { protocol: raw, start_port: null, end_port: null, icmp_type: null, icmp_code: null };
}

const authorizeParams = {
  securitygroupid: p.uuid({
    description: 'ID of the security group to add rules to; give it or securitygroupname.',
  }),
  securitygroupname: p.string({
    description:
      "Name of the security group, looked up in the account given by account/domainid or the caller's.",
  }),
  account: p.string({ description: 'Account whose group securitygroupname names (with domainid).' }),
  domainid: p.uuid({ description: 'Domain of account; only with account.' }),
  projectid: p.uuid({ description: 'With securitygroupname: the project whose group is meant.' }),
  protocol: p.string({ description: 'tcp, udp, icmp, all (the default) or an IP protocol number 0-255.' }),
  startport: p.integer({
    description: 'First port (tcp/udp, where it is required), 0-65535; 0 with endport 0 means every port.',
  }),
  endport: p.integer({
    description: 'Last port (tcp/udp, where it is required), 0-65535, not before startport.',
  }),
  icmptype: p.integer({
    description:
      'ICMP type, -1..255 (icmp only, required there); -1 means any and then icmpcode must be -1 too.',
  }),
  icmpcode: p.integer({ description: 'ICMP code, -1..255 (icmp only, required there); -1 means any.' }),
  cidrlist: p.list({ description: 'Comma-separated CIDRs the rule allows; one rule is made per CIDR.' }),
  usersecuritygrouplist: p.map({
    description:
      "Groups whose member VMs the rule allows, as usersecuritygrouplist[0].account and .group (accounts of the group's domain); one rule per group.",
  }),
};

type AuthorizeParams = {
  securitygroupid?: string;
  securitygroupname?: string;
  account?: string;
  domainid?: string;
  projectid?: string;
  protocol?: string;
  startport?: number;
  endport?: number;
  icmptype?: number;
  icmpcode?: number;
  cidrlist?: string[];
  usersecuritygrouplist?: Record<string, string>[];
};

function groupOfParams(ctx: CallContext, params: AuthorizeParams): Promise<SecurityGroupRow> {
  return findGroup(
    ctx,
    { ...params, id: params.securitygroupid, name: params.securitygroupname },
    { id: 'securitygroupid', name: 'securitygroupname' },
  );
}

/** The groups named by usersecuritygrouplist[n].account/.group, looked up in the target group's domain. */
async function peerGroups(
  ctx: CallContext,
  group: SecurityGroupRow,
  list: Record<string, string>[],
): Promise<SecurityGroupRow[]> {
  const db = ctx.app.store.db;
  const out: SecurityGroupRow[] = [];
  for (const entry of list) {
    const accountName = entry.account?.trim();
    const groupName = entry.group?.trim();
    if (!accountName || !groupName)
      throw invalidParameter('Each usersecuritygrouplist entry needs both account and group');
    const account = await db
      .selectFrom('accounts')
      .select(['id', 'domain_id', 'name'])
      .where('name', '=', accountName)
      .where('domain_id', '=', group.domain_id)
      .executeTakeFirst();
    if (!account)
      throw invalidParameter(
        `Nonexistent account ${accountName} when trying to authorize a rule for security group ${group.name}`,
      );
    const peer = await groupByName(ctx, account, groupName);
    if (!peer) throw invalidParameter(`Nonexistent security group ${groupName} of account ${accountName}`);
    out.push(peer);
  }
  return out;
}

function sameRule(
  r: SecurityGroupRuleRow,
  spec: RuleSpec,
  cidr: string | null,
  peer: number | null,
): boolean {
  return (
    r.protocol === spec.protocol &&
    r.start_port === spec.start_port &&
    r.end_port === spec.end_port &&
    r.icmp_type === spec.icmp_type &&
    r.icmp_code === spec.icmp_code &&
    r.cidr === cidr &&
    r.allowed_group_id === peer
  );
}

async function authorize(ctx: CallContext, params: AuthorizeParams, type: RuleType): Promise<object> {
  const { app } = ctx;
  const group = await groupOfParams(ctx, params);
  const spec = ruleSpec(params);
  const cidrs = (params.cidrlist ?? []).map(parseCidr);
  const peers = await peerGroups(ctx, group, params.usersecuritygrouplist ?? []);
  if (cidrs.length === 0 && peers.length === 0)
    throw invalidParameter('At least one cidr or at least one security group needs to be specified');
  const targets = [
    ...[...new Set(cidrs)].map((cidr) => ({ cidr, peer: null as number | null })),
    ...[...new Set(peers.map((g) => g.id))].map((peer) => ({ cidr: null as string | null, peer })),
  ];
  const created = await app.store.db.transaction().execute(async (tx) => {
    const existing = await tx
      .selectFrom('security_group_rules')
      .selectAll()
      .where('group_id', '=', group.id)
      .where('type', '=', type)
      .execute();
    // As upstream, rules that already exist are skipped; a request adding nothing is an error.
    const fresh = targets.filter((t) => !existing.some((r) => sameRule(r, spec, t.cidr, t.peer)));
    if (fresh.length === 0)
      throw invalidParameter(`Security group ${group.name} already has this ${type} rule`);
    const ids = new Set<number>();
    for (const t of fresh) {
      const uuid = app.ids.uuid();
      await tx
        .insertInto('security_group_rules')
        .values({
          uuid,
          group_id: group.id,
          type,
          ...spec,
          cidr: t.cidr,
          allowed_group_id: t.peer,
          created: app.clock.now(),
        })
        .execute();
      const row = await tx
        .selectFrom('security_group_rules')
        .select('id')
        .where('uuid', '=', uuid)
        .executeTakeFirstOrThrow();
      ids.add(row.id);
    }
    await logEvent(ctx, tx, {
      type: type === 'ingress' ? 'SG.AUTH.INGRESS' : 'SG.AUTH.EGRESS',
      description: `authorizing ${type} rule(s) for security group ${group.name}`,
      resourceType: 'SecurityGroup',
      resourceId: group.uuid,
    });
    return ids;
  });
  // After commit: the group's running members filter by the new rules.
  await refreshSecurity(app, await runningMembers(app, [group.id]));
  return (await presentSecurityGroups(ctx, [group], created))[0] as object;
}

/** Resolves and checks everything before the job is queued, so bad input is a synchronous 431. */
async function groupTarget(ctx: CallContext, params: AuthorizeParams): Promise<JobTarget> {
  const group = await groupOfParams(ctx, params);
  ruleSpec(params);
  const cidrs = (params.cidrlist ?? []).map(parseCidr);
  const peers = await peerGroups(ctx, group, params.usersecuritygrouplist ?? []);
  if (cidrs.length === 0 && peers.length === 0)
    throw invalidParameter('At least one cidr or at least one security group needs to be specified');
  return { type: 'SecurityGroup', id: group.uuid };
}

export const authorizeSecurityGroupIngress = defineCommand({
  name: 'authorizeSecurityGroupIngress',
  description:
    'Adds ingress rules to a security group, one per CIDR or peer group, and re-applies the filters of its running VMs; rules it has already are skipped. Asynchronous.',
  params: authorizeParams,
  objectName: 'securitygroup',
  event: {
    type: 'SG.AUTH.INGRESS',
    description: (params) =>
      `authorizing ingress rule for security group ${params.securitygroupid ?? params.securitygroupname}`,
  },
  target: groupTarget,
  handler: (ctx, params) => authorize(ctx, params, 'ingress'),
});

export const authorizeSecurityGroupEgress = defineCommand({
  name: 'authorizeSecurityGroupEgress',
  description:
    'Adds egress rules to a security group, one per CIDR or peer group, and re-applies the filters of its running VMs; rules it has already are skipped. Asynchronous.',
  params: authorizeParams,
  objectName: 'securitygroup',
  event: {
    type: 'SG.AUTH.EGRESS',
    description: (params) =>
      `authorizing egress rule for security group ${params.securitygroupid ?? params.securitygroupname}`,
  },
  target: groupTarget,
  handler: (ctx, params) => authorize(ctx, params, 'egress'),
});

async function findRule(ctx: CallContext, uuid: string, type: RuleType) {
  const rule = await ctx.app.store.db
    .selectFrom('security_group_rules')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!rule || rule.type !== type) throw invalidParameter(`Unable to find ${type} rule by id ${uuid}`);
  const group = await ctx.app.store.db
    .selectFrom('security_groups')
    .selectAll()
    .where('id', '=', rule.group_id)
    .executeTakeFirstOrThrow();
  await checkRowAccess(ctx, group);
  return { rule, group };
}

function revokeCommand(name: 'revokeSecurityGroupIngress' | 'revokeSecurityGroupEgress', type: RuleType) {
  const eventType = type === 'ingress' ? 'SG.REVOKE.INGRESS' : 'SG.REVOKE.EGRESS';
  return defineCommand({
    name,
    description:
      type === 'ingress'
        ? "Removes an ingress rule from its security group and re-applies the filters of the group's running VMs; asynchronous."
        : "Removes an egress rule from its security group and re-applies the filters of the group's running VMs; asynchronous.",
    params: { id: p.uuid({ required: true, description: 'ID of the rule to remove.' }) },
    event: { type: eventType, description: (params) => `revoking ${type} rule ${params.id}` },
    async target(ctx, params) {
      const { group } = await findRule(ctx, params.id, type);
      return { type: 'SecurityGroup', id: group.uuid };
    },
    async handler(ctx, params) {
      const { rule, group } = await findRule(ctx, params.id, type);
      await ctx.app.store.db.transaction().execute(async (tx) => {
        await tx.deleteFrom('security_group_rules').where('id', '=', rule.id).execute();
        await logEvent(ctx, tx, {
          type: eventType,
          description: `revoking ${type} rule ${rule.uuid} of security group ${group.name}`,
          resourceType: 'SecurityGroup',
          resourceId: group.uuid,
        });
      });
      await refreshSecurity(ctx.app, await runningMembers(ctx.app, [group.id]));
      return success();
    },
  });
}

export const revokeSecurityGroupIngress = revokeCommand('revokeSecurityGroupIngress', 'ingress');
export const revokeSecurityGroupEgress = revokeCommand('revokeSecurityGroupEgress', 'egress');

export const listSecurityGroups = defineCommand({
  name: 'listSecurityGroups',
  description:
    "Lists security groups with their rules and member VMs; each listed account's default group is created if it does not exist yet. Keyword matches names.",
  params: {
    ...listParams,
    ...scopeParams,
    id: p.uuid({ description: 'Only the group with this ID.' }),
    securitygroupname: p.string({ description: 'Only groups with exactly this name.' }),
    virtualmachineid: p.uuid({ description: 'Only the groups this VM belongs to.' }),
    tags: p.map({
      description: 'Only groups carrying all these resource tags (tags[0].key, tags[0].value, ...).',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    // The scope is computed here too (listOwned applies it): the default groups of the accounts
    // listed come into being on first sight, as upstream has them from account creation on.
    const scope = await listScope(ctx, params);
    // No accounts at all (projectid=-1 for a member of no project): `in ()` is no SQL PostgreSQL takes.
    const owners =
      scope.kind !== 'accounts'
        ? [ctx.caller.account]
        : scope.accountIds.length
          ? await app.store.db
              .selectFrom('accounts')
              .select(['id', 'domain_id', 'name'])
              .where('id', 'in', scope.accountIds)
              .execute()
          : [];
    for (const owner of owners) await ensureDefaultGroup(app, owner);
    let q = app.store.db.selectFrom('security_groups');
    if (params.id) q = q.where('security_groups.uuid', '=', params.id);
    if (params.securitygroupname) q = q.where('security_groups.name', '=', params.securitygroupname);
    if (params.keyword)
      q = q.where(likeEscaped('security_groups.name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    if (params.virtualmachineid) {
      const vm = await findOwned(ctx, 'vms', params.virtualmachineid, OWNED_VM);
      q = q.where(
        'security_groups.id',
        'in',
        app.store.db.selectFrom('security_group_vm_map').select('group_id').where('vm_id', '=', vm.id),
      );
    }
    q = withTags(q, 'SecurityGroup', 'security_groups.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'security_groups.account_id', domain: 'security_groups.domain_id' },
      rows: (scoped, page) =>
        paginate(scoped.selectAll('security_groups').orderBy('security_groups.id'), page).execute(),
      present: (rows) => presentSecurityGroups(ctx, rows),
    });
  },
});

/**
 * The groups a new VM of `account` in a zone joins: those named by id or by name (in the
 * account), or the account's default group when none are given. Zones without security groups
 * take none (431 if some were asked for).
 */
export async function resolveSecurityGroups(
  ctx: Pick<CallContext, 'app'>,
  account: Owner,
  req: { zone: Pick<ZoneRow, 'name' | 'security_groups_enabled'>; ids?: string[]; names?: string[] },
): Promise<number[]> {
  const { app } = ctx;
  const ids = req.ids?.filter((s) => s !== '') ?? [];
  const names = req.names?.filter((s) => s !== '') ?? [];
  if (ids.length && names.length)
    throw invalidParameter('securitygroupids and securitygroupnames are mutually exclusive: give only one');
  const { zone } = req;
  if (zone.security_groups_enabled !== 1) {
    if (ids.length || names.length)
      throw invalidParameter(`Security groups are not enabled in zone ${zone.name}`);
    return [];
  }
  if (ids.length) {
    const rows = await app.store.db
      .selectFrom('security_groups')
      .selectAll()
      .where(
        'uuid',
        'in',
        ids.map((id) => id.toLowerCase()),
      )
      .execute();
    for (const id of ids) {
      const group = rows.find((g) => g.uuid === id.toLowerCase());
      if (!group) throw invalidParameter(`Unable to find security group by id ${id}`);
      if (group.account_id !== account.id)
        throw invalidParameter(`Security group ${group.name} does not belong to account ${account.name}`);
    }
    return [...new Set(rows.map((g) => g.id))];
  }
  if (names.length) {
    const out: number[] = [];
    for (const name of names) {
      const group = await groupByName(ctx, account, name.trim());
      if (!group) throw invalidParameter(`Unable to find security group ${name} of account ${account.name}`);
      out.push(group.id);
    }
    return [...new Set(out)];
  }
  const group = await ensureDefaultGroup(app, account);
  return [group.id];
}

/** Makes a VM a member of the given groups (in the deployment's transaction). */
export async function assignSecurityGroups(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  vmId: number,
  groupIds: number[],
): Promise<void> {
  for (const groupId of new Set(groupIds))
    await insertUnlessTaken(ctx.app, tx, 'security_group_vm_map', { vm_id: vmId, group_id: groupId });
}

/** Takes a VM out of every group (on expunge). */
export async function removeVmFromSecurityGroups(
  _ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  vmId: number,
): Promise<void> {
  await tx.deleteFrom('security_group_vm_map').where('vm_id', '=', vmId).execute();
}

/** The groups of many VMs as the VM response's securitygroup[] objects, keyed by VM id. */
export async function presentVmSecurityGroups(
  ctx: Pick<CallContext, 'app'>,
  vmIds: number[],
): Promise<Map<number, object[]>> {
  const out = new Map<number, object[]>();
  if (vmIds.length === 0) return out;
  const db = ctx.app.store.db;
  const links = await db
    .selectFrom('security_group_vm_map')
    .select(['vm_id', 'group_id'])
    .where('vm_id', 'in', vmIds)
    .execute();
  if (links.length === 0) return out;
  const groups = await db
    .selectFrom('security_groups')
    .selectAll()
    .where('id', 'in', [...new Set(links.map((l) => l.group_id))])
    .orderBy('id')
    .execute();
  const presented = await presentSecurityGroups(ctx, groups);
  const byId = new Map(groups.map((g, i) => [g.id, presented[i] as object]));
  for (const l of links) {
    const list = out.get(l.vm_id) ?? [];
    const g = byId.get(l.group_id);
    if (g) list.push(g);
    out.set(l.vm_id, list);
  }
  return out;
}

/** Removes an account's groups, and other accounts' rules that admitted them (account deletion). */
export async function deleteAccountSecurityGroups(ctx: CallContext, account: AccountRow): Promise<void> {
  await ctx.app.store.db.transaction().execute(async (tx) => {
    const groups = await tx
      .selectFrom('security_groups')
      .select('id')
      .where('account_id', '=', account.id)
      .execute();
    const ids = groups.map((g) => g.id);
    if (ids.length === 0) return;
    await tx.deleteFrom('security_group_vm_map').where('group_id', 'in', ids).execute();
    await tx.deleteFrom('security_group_rules').where('allowed_group_id', 'in', ids).execute();
    await tx.deleteFrom('security_group_rules').where('group_id', 'in', ids).execute();
    await tx
      .deleteFrom('resource_tags')
      .where('resource_type', '=', 'SecurityGroup')
      .where('resource_id', 'in', ids)
      .execute();
    await tx.deleteFrom('security_groups').where('id', 'in', ids).execute();
  });
}

export const securityGroupCommands = [
  createSecurityGroup,
  deleteSecurityGroup,
  authorizeSecurityGroupIngress,
  authorizeSecurityGroupEgress,
  revokeSecurityGroupIngress,
  revokeSecurityGroupEgress,
  listSecurityGroups,
];
