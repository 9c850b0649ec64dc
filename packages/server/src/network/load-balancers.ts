/**
 * Load balancing rules of isolated networks (upstream's public load balancers on the virtual
 * router): a public address and port spread over VMs of the network by the router's HAProxy.
 * A rule is an `ip_rules` row of purpose LoadBalancing; its VMs are `lb_members` rows and its
 * stickiness and health-check policies `lb_policies` rows (lb-policies.ts). Every change is
 * committed first and then applied by sending the network's whole rule set to its router
 * (router-rules.ts); when the router's host refuses or cannot be reached the change is undone
 * and the job fails with the reason, so no record claims what the router does not do.
 *
 * States follow upstream: Add while the router does not balance to any VM (a new rule, or one
 * whose last VM left), Active once it does, Revoke while being deleted.
 */
import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { IpRuleRow, NetworkRow, PublicIpRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter } from '../errors.ts';
import { applyScope, checkOwnerAccess, escapeLike, listScope } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import {
  applyOrUndo,
  cidrText,
  deleteRules,
  findOwnedIp,
  LIVE_RULE_STATES,
  lockIp,
  networkOfIp,
  portsText,
  requireService,
} from './ip-rules.ts';
import { findVisibleVm } from './nics.ts';
import { applyNetworkRules } from './routers.ts';

export const LB_ALGORITHMS = ['roundrobin', 'leastconn', 'source'];
/** The protocols upstream's API names; the router's HAProxy balances TCP only. */
const LB_PROTOCOLS = ['tcp', 'udp', 'tcp-proxy', 'ssl'];
const DNS_PORT = 53;
const TAG_TYPE = 'LoadBalancer';

const conflict = (text: string) =>
  new ApiError(ErrorCode.NETWORK_RULE_CONFLICT, CsErrorCode.CLOUD_RUNTIME, text);

export function checkAlgorithm(algorithm: string): string {
  const a = algorithm.trim().toLowerCase();
  if (!LB_ALGORITHMS.includes(a)) throw invalidParameter(`Invalid algorithm: ${algorithm}`);
  return a;
}

/** tcp (the default) is what the router balances; upstream's other names are refused clearly. */
export function checkProtocol(protocol: string | undefined, network: NetworkRow): string {
  const proto = (protocol ?? 'tcp').trim().toLowerCase() || 'tcp';
  if (!LB_PROTOCOLS.includes(proto))
    throw invalidParameter(`protocol ${protocol} is not in valid protocols [${LB_PROTOCOLS.join(', ')}]`);
  if (proto !== 'tcp')
    throw invalidParameter(
      `Protocol ${proto} is not supported by the load balancer of network ${network.name}: its virtual router balances tcp only`,
    );
  return proto;
}

function checkPortValue(value: number, name: string): void {
  if (value < 1 || value > 65535) throw invalidParameter(`${name} is an invalid value: ${value}`);
}

/** A load balancing rule by uuid that the caller may act on (431 unknown, 531 someone else's). */
export async function findLoadBalancer(ctx: CallContext, uuid: string, tx: Tx = ctx.app.store.db) {
  const rule = await tx
    .selectFrom('ip_rules')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('purpose', '=', 'LoadBalancing')
    .executeTakeFirst();
  if (!rule) throw invalidParameter(`Unable to find load balancer rule ${uuid}`);
  const domain = await tx
    .selectFrom('domains')
    .select(['path', 'name'])
    .where('id', '=', rule.domain_id)
    .executeTakeFirstOrThrow();
  checkOwnerAccess(ctx.caller, { accountId: rule.account_id, domain });
  return rule;
}

/** Refuses changes to a rule being deleted (upstream: "is in deleting state"). */
export function checkNotRevoked(rule: IpRuleRow): void {
  if (rule.state === 'Revoke') throw invalidParameter(`Failed: LB rule ${rule.uuid} is in deleting state`);
}

/** Rules as CloudStack's `loadbalancer` objects, with a fixed number of queries for a page. */
export async function presentLoadBalancers(ctx: CallContext, rules: IpRuleRow[]): Promise<object[]> {
  if (rules.length === 0) return [];
  const db = ctx.app.store.db;
  const uniq = (xs: (number | null)[]) => [...new Set(xs.filter((x): x is number => x !== null))];
  const [ips, networks, accounts, domains, tags] = await Promise.all([
    db
      .selectFrom('public_ips')
      .innerJoin('zones', 'zones.id', 'public_ips.zone_id')
      .select([
        'public_ips.id',
        'public_ips.uuid',
        'public_ips.ip4',
        'zones.uuid as zoneid',
        'zones.name as zonename',
      ])
      .where('public_ips.id', 'in', uniq(rules.map((r) => r.ip_id)).concat(-1))
      .execute(),
    db
      .selectFrom('networks')
      .select(['id', 'uuid'])
      .where('id', 'in', uniq(rules.map((r) => r.network_id)))
      .execute(),
    db
      .selectFrom('accounts')
      .select(['id', 'name'])
      .where('id', 'in', uniq(rules.map((r) => r.account_id)))
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', uniq(rules.map((r) => r.domain_id)))
      .execute(),
    tagsOf(
      ctx,
      TAG_TYPE,
      rules.map((r) => r.id),
    ),
  ]);
  const ipById = new Map(ips.map((i) => [i.id, i]));
  const networkUuid = new Map(networks.map((n) => [n.id, n.uuid]));
  const accountName = new Map(accounts.map((a) => [a.id, a.name]));
  const domainById = new Map(domains.map((d) => [d.id, d]));
  return rules.map((r) => {
    const ip = r.ip_id === null ? undefined : ipById.get(r.ip_id);
    const domain = domainById.get(r.domain_id);
    return {
      id: r.uuid,
      name: r.name ?? undefined,
      description: r.description ?? undefined,
      publicip: ip?.ip4,
      publicipid: ip?.uuid,
      // Upstream answers ports as strings.
      publicport: String(r.start_port ?? ''),
      privateport: String(r.private_start_port ?? ''),
      algorithm: r.algorithm ?? undefined,
      cidrlist: r.source_cidrs ?? '',
      account: accountName.get(r.account_id),
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
      state: r.state,
      zoneid: ip?.zoneid,
      zonename: ip?.zonename,
      networkid: networkUuid.get(r.network_id),
      protocol: r.protocol,
      fordisplay: r.for_display === 1,
      tags: tags.get(r.id) ?? [],
    };
  });
}

interface CreateParams {
  name: string;
  publicipid?: string;
  algorithm: string;
  privateport: number;
  publicport: number;
  protocol?: string;
  openfirewall?: boolean;
  cidrlist?: string[];
  networkid?: string;
  zoneid?: string;
  description?: string;
  fordisplay?: boolean;
  account?: string;
  domainid?: string;
}

/** Everything createLoadBalancerRule checks that does not depend on other rules. */
async function validateCreate(ctx: CallContext, params: CreateParams) {
  const { app } = ctx;
  const name = params.name.trim();
  if (name === '') throw invalidParameter('The load balancer rule name must not be empty');
  const algorithm = checkAlgorithm(params.algorithm);
  checkPortValue(params.privateport, 'privatePort');
  checkPortValue(params.publicport, 'publicPort');
  if (!params.publicipid)
    throw invalidParameter("Unable to create load balance rule; can't find/allocate source IP");
  const ip = await findOwnedIp(ctx, params.publicipid);
  if (ip.state !== 'Allocated')
    throw invalidParameter(`Unable to create load balancer rule, invalid IP address ID ${params.publicipid}`);
  if (ip.static_nat_vm_id !== null) throw conflict(`Can't do load balance on ip address: ${ip.ip4}`);
  if (ip.network_id === null)
    throw invalidParameter(
      'Unable to create load balancer rule ; specified sourceip id is not associated with any network',
    );
  const network = await networkOfIp(ctx, ip);
  if (params.networkid && params.networkid !== network.uuid)
    throw invalidParameter(
      `IP address ${ip.ip4} is associated with network ${network.name}, not ${params.networkid}`,
    );
  if (params.zoneid) {
    const zone = await app.store.db
      .selectFrom('zones')
      .select('uuid')
      .where('id', '=', ip.zone_id)
      .executeTakeFirstOrThrow();
    if (zone.uuid !== params.zoneid)
      throw invalidParameter(`IP address ${ip.ip4} is not in zone ${params.zoneid}`);
  }
  if (params.account) {
    const { account } = await resolveAccount(ctx, { account: params.account, domainid: params.domainid });
    if (account.id !== ip.account_id)
      throw invalidParameter(`IP address ${ip.ip4} does not belong to account ${account.name}`);
  } else if (params.domainid) throw invalidParameter('domainid must be given together with account');
  const info = await requireService(app, network, 'Lb');
  const protocol = checkProtocol(params.protocol, network);
  if (params.publicport === DNS_PORT && ip.source_nat === 1 && info.services.has('Dns'))
    throw invalidParameter(
      'Error adding load balancer rule, cannot add port 53 with network service offering having DNS service and Source NAT.',
    );
  const cidrs = cidrText(params.cidrlist);
  // Upstream opens the firewall unless told not to (outside VPCs).
  const openFirewall = params.openfirewall ?? true;
  // The router enforces the source CIDRs with the rule's firewall rule; without one, nothing would.
  if (cidrs && !openFirewall)
    throw invalidParameter(
      "cidrlist needs openfirewall=true: the router admits the listed CIDRs through the rule's firewall rule; with openfirewall=false, restrict sources with createFirewallRule",
    );
  return { name, algorithm, protocol, ip, network, cidrs, openFirewall };
}

/**
 * Refuses a public port another rule of the address already uses (537, upstream's text): a load
 * balancer or port forward on an overlapping port, or for the opened firewall a firewall rule of
 * the same protocol on overlapping ports from an overlapping source.
 */
async function checkConflicts(
  tx: Tx,
  ip: PublicIpRow,
  port: number,
  firewallCidrs: string | null | undefined,
): Promise<void> {
  const rules = await tx
    .selectFrom('ip_rules')
    .selectAll()
    .where('ip_id', '=', ip.id)
    .where('state', 'in', LIVE_RULE_STATES)
    .execute();
  const overlaps = (r: IpRuleRow) =>
    r.start_port === null || (r.start_port <= port && (r.end_port ?? r.start_port) >= port);
  for (const r of rules) {
    if ((r.purpose === 'LoadBalancing' || r.purpose === 'PortForwarding') && overlaps(r))
      throw conflict(
        `The range specified, ${port}-${port}, conflicts with rule ${r.uuid} which has ${portsText(r)}`,
      );
    if (firewallCidrs !== undefined && r.purpose === 'Firewall' && r.protocol === 'tcp' && overlaps(r)) {
      const mine = (firewallCidrs ?? '0.0.0.0/0').split(',');
      const theirs = (r.source_cidrs ?? '0.0.0.0/0').split(',');
      if (mine.some((c) => theirs.includes(c)))
        throw conflict(
          `The range specified, ${port}-${port}, conflicts with rule ${r.uuid} which has ${portsText(r)}`,
        );
    }
  }
}

/** The rule's state once applied: Active when the router balances to VMs, Add while it has none. */
export async function settleState(app: App, ruleId: number): Promise<void> {
  const member = await app.store.db
    .selectFrom('lb_members')
    .select('vm_id')
    .where('rule_id', '=', ruleId)
    .executeTakeFirst();
  await app.store.db
    .updateTable('ip_rules')
    .set({ state: member ? 'Active' : 'Add' })
    .where('id', '=', ruleId)
    .where('state', '!=', 'Revoke')
    .execute();
  await app.store.db
    .updateTable('ip_rules')
    .set({ state: 'Active' })
    .where('related_id', '=', ruleId)
    .where('purpose', '=', 'Firewall')
    .where('state', '=', 'Add')
    .execute();
}

export const createLoadBalancerRule = defineCommand({
  name: 'createLoadBalancerRule',
  params: {
    name: p.string({ required: true }),
    publicipid: p.uuid(),
    algorithm: p.string({ required: true }),
    privateport: p.integer({ required: true }),
    publicport: p.integer({ required: true }),
    protocol: p.string(),
    openfirewall: p.boolean(),
    cidrlist: p.list(),
    networkid: p.uuid(),
    zoneid: p.uuid(),
    description: p.string({ length: 4096 }),
    fordisplay: p.boolean(),
    account: p.string(),
    domainid: p.uuid(),
  },
  event: {
    type: 'LB.CREATE',
    description: (params) => `creating load balancer: ${params.name} account: ${params.account ?? ''}`,
  },
  // The rule is recorded (state Add) before the job, so its id comes back with the job id.
  async create(ctx, params) {
    const { app } = ctx;
    const v = await validateCreate(ctx, params);
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      await lockIp(tx, v.ip.id);
      await checkConflicts(tx, v.ip, params.publicport, v.openFirewall ? v.cidrs : undefined);
      const now = app.clock.now();
      const common = {
        traffic_type: 'Ingress',
        ip_id: v.ip.id,
        network_id: v.network.id,
        account_id: v.ip.account_id as number,
        domain_id: v.ip.domain_id as number,
        protocol: v.protocol,
        start_port: params.publicport,
        end_port: params.publicport,
        state: 'Add',
        created: now,
      };
      await tx
        .insertInto('ip_rules')
        .values({
          ...common,
          uuid,
          purpose: 'LoadBalancing',
          source_cidrs: v.cidrs,
          private_start_port: params.privateport,
          private_end_port: params.privateport,
          name: v.name,
          description: params.description ?? null,
          algorithm: v.algorithm,
          for_display: params.fordisplay === false ? 0 : 1,
        })
        .execute();
      if (v.openFirewall) {
        const rule = await tx
          .selectFrom('ip_rules')
          .select('id')
          .where('uuid', '=', uuid)
          .executeTakeFirstOrThrow();
        await tx
          .insertInto('ip_rules')
          .values({
            ...common,
            uuid: app.ids.uuid(),
            purpose: 'Firewall',
            source_cidrs: v.cidrs ?? '0.0.0.0/0',
            related_id: rule.id,
          })
          .execute();
      }
    });
    return { type: 'FirewallRule', id: uuid };
  },
  async handler(ctx, _params, created) {
    const { app } = ctx;
    const rule = await findLoadBalancer(ctx, created!.id);
    await applyOrUndo(app, rule.network_id, `create load balancer rule ${rule.name}`, async () => {
      await app.store.db.transaction().execute(async (tx) => {
        const fw = await tx.selectFrom('ip_rules').select('id').where('related_id', '=', rule.id).execute();
        await deleteRules(tx, [...fw.map((r) => r.id), rule.id]);
      });
    });
    await settleState(app, rule.id);
    return (await presentLoadBalancers(ctx, [await findLoadBalancer(ctx, rule.uuid)]))[0] as object;
  },
});

export const updateLoadBalancerRule = defineCommand({
  name: 'updateLoadBalancerRule',
  params: {
    id: p.uuid({ required: true }),
    name: p.string(),
    description: p.string({ length: 4096 }),
    algorithm: p.string(),
    protocol: p.string(),
    cidrlist: p.list(),
    fordisplay: p.boolean(),
    customid: p.string(),
  },
  event: { type: 'LB.UPDATE', description: (params) => `updating load balancer rule ${params.id}` },
  async target(ctx, params) {
    const rule = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(rule);
    await updateOf(ctx, rule, params);
    return { type: 'FirewallRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const before = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(before);
    const { changes, cidrs } = await updateOf(ctx, before, params);
    const related = await app.store.db
      .selectFrom('ip_rules')
      .selectAll()
      .where('related_id', '=', before.id)
      .where('purpose', '=', 'Firewall')
      .execute();
    await app.store.db.transaction().execute(async (tx) => {
      await tx.updateTable('ip_rules').set(changes).where('id', '=', before.id).execute();
      if (cidrs !== undefined)
        await tx
          .updateTable('ip_rules')
          .set({ source_cidrs: cidrs ?? '0.0.0.0/0' })
          .where('related_id', '=', before.id)
          .where('purpose', '=', 'Firewall')
          .execute();
    });
    // Only what the router enforces needs a round trip (upstream: algorithm or CIDRs changed).
    if ((changes.algorithm && changes.algorithm !== before.algorithm) || cidrs !== undefined)
      await applyOrUndo(app, before.network_id, `update load balancer rule ${before.name}`, async () => {
        await app.store.db.transaction().execute(async (tx) => {
          const { id: _id, ...back } = before;
          await tx.updateTable('ip_rules').set(back).where('id', '=', before.id).execute();
          for (const r of related)
            await tx
              .updateTable('ip_rules')
              .set({ source_cidrs: r.source_cidrs })
              .where('id', '=', r.id)
              .execute();
        });
      });
    return (await presentLoadBalancers(ctx, [await findLoadBalancer(ctx, before.uuid)]))[0] as object;
  },
});

/** The column changes an update asks for, validated (431 before any job is queued). */
async function updateOf(
  ctx: CallContext,
  rule: IpRuleRow,
  params: {
    name?: string;
    description?: string;
    algorithm?: string;
    protocol?: string;
    cidrlist?: string[];
    fordisplay?: boolean;
    customid?: string;
  },
): Promise<{ changes: Partial<IpRuleRow>; cidrs: string | null | undefined }> {
  if (params.customid !== undefined && ctx.caller.roleKind !== 'admin')
    throw invalidParameter('customid can be set by root administrators only');
  const changes: Partial<IpRuleRow> = {};
  if (params.name !== undefined) {
    if (params.name.trim() === '') throw invalidParameter('The load balancer rule name must not be empty');
    changes.name = params.name.trim();
  }
  if (params.description !== undefined) changes.description = params.description;
  if (params.algorithm !== undefined) changes.algorithm = checkAlgorithm(params.algorithm);
  if (params.fordisplay !== undefined) changes.for_display = params.fordisplay ? 1 : 0;
  if (params.customid !== undefined) changes.uuid = params.customid;
  if (params.protocol !== undefined && params.protocol.trim() !== '') {
    const network = await ctx.app.store.db
      .selectFrom('networks')
      .selectAll()
      .where('id', '=', rule.network_id)
      .executeTakeFirstOrThrow();
    changes.protocol = checkProtocol(params.protocol, network);
  }
  let cidrs: string | null | undefined;
  if (params.cidrlist !== undefined) {
    cidrs = cidrText(params.cidrlist);
    const fw = await ctx.app.store.db
      .selectFrom('ip_rules')
      .select('id')
      .where('related_id', '=', rule.id)
      .where('purpose', '=', 'Firewall')
      .executeTakeFirst();
    if (cidrs && !fw)
      throw invalidParameter(
        `Load balancer rule ${rule.name} was created with openfirewall=false: restrict its sources with createFirewallRule`,
      );
    changes.source_cidrs = cidrs;
  }
  return { changes, cidrs };
}

export const deleteLoadBalancerRule = defineCommand({
  name: 'deleteLoadBalancerRule',
  params: { id: p.uuid({ required: true }) },
  event: { type: 'LB.DELETE', description: (params) => `deleting load balancer rule ${params.id}` },
  async target(ctx, params) {
    const rule = await findLoadBalancer(ctx, params.id);
    return { type: 'FirewallRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const rule = await findLoadBalancer(ctx, params.id);
    const related = await app.store.db
      .selectFrom('ip_rules')
      .selectAll()
      .where('related_id', '=', rule.id)
      .where('purpose', '=', 'Firewall')
      .execute();
    const all = [rule, ...related];
    // Revoked rules are left out of what the router gets; deleted once it no longer has them.
    await app.store.db
      .updateTable('ip_rules')
      .set({ state: 'Revoke' })
      .where(
        'id',
        'in',
        all.map((r) => r.id),
      )
      .execute();
    await applyOrUndo(app, rule.network_id, `delete load balancer rule ${rule.name}`, async () => {
      await app.store.db.transaction().execute(async (tx) => {
        for (const r of all)
          await tx
            .updateTable('ip_rules')
            .set({ state: r.state === 'Revoke' ? 'Active' : r.state })
            .where('id', '=', r.id)
            .execute();
      });
    });
    await app.store.db.transaction().execute((tx) =>
      deleteRules(
        tx,
        all.map((r) => r.id),
      ),
    );
    return success();
  },
});

export const listLoadBalancerRules = defineCommand({
  name: 'listLoadBalancerRules',
  params: {
    ...listParams,
    ...scopeParams,
    projectid: p.uuid(),
    id: p.uuid(),
    name: p.string(),
    publicipid: p.uuid(),
    virtualmachineid: p.uuid(),
    zoneid: p.uuid(),
    networkid: p.uuid(),
    fordisplay: p.boolean(),
    tags: p.map(),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const scope = await listScope(ctx, params);
    if (params.projectid) return listResult([], 0);
    let q = applyScope(db.selectFrom('ip_rules'), scope, {
      account: 'ip_rules.account_id',
      domain: 'ip_rules.domain_id',
    }).where('ip_rules.purpose', '=', 'LoadBalancing');
    if (params.id) q = q.where('ip_rules.uuid', '=', params.id);
    if (params.name) q = q.where('ip_rules.name', '=', params.name);
    if (params.keyword) {
      const like = `%${escapeLike(params.keyword)}%`;
      q = q.where((eb) =>
        eb.or([eb('ip_rules.name', likeOp(ctx), like), eb('ip_rules.description', likeOp(ctx), like)]),
      );
    }
    if (params.publicipid) {
      const ip = await findOwnedIp(ctx, params.publicipid);
      q = q.where('ip_rules.ip_id', '=', ip.id);
    }
    if (params.networkid) {
      const net = db.selectFrom('networks').select('id').where('uuid', '=', params.networkid);
      q = q.where('ip_rules.network_id', 'in', net);
    }
    if (params.zoneid) {
      const ips = db
        .selectFrom('public_ips')
        .innerJoin('zones', 'zones.id', 'public_ips.zone_id')
        .select('public_ips.id')
        .where('zones.uuid', '=', params.zoneid);
      q = q.where('ip_rules.ip_id', 'in', ips);
    }
    if (params.virtualmachineid) {
      const vm = await findVisibleVm(ctx, params.virtualmachineid);
      q = q.where(
        'ip_rules.id',
        'in',
        db.selectFrom('lb_members').select('rule_id').where('vm_id', '=', vm.id),
      );
    }
    if (params.fordisplay !== undefined) q = q.where('ip_rules.for_display', '=', params.fordisplay ? 1 : 0);
    q = withTags(q, TAG_TYPE, 'ip_rules.id', params.tags);
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q.selectAll('ip_rules').orderBy('ip_rules.id'),
      pageOf(app, params),
    ).execute();
    return listResult(await presentLoadBalancers(ctx, rows), Number(count));
  },
});

/**
 * Takes an expunged VM out of every load balancer, inside the expunge's transaction; rules left
 * without VMs go back to Add. Returns the networks whose routers must be told: pass them to
 * `applyLoadBalancerChanges` once the transaction committed.
 */
export async function removeVmFromLoadBalancers(_app: App, tx: Tx, vmId: number): Promise<number[]> {
  const rows = await tx
    .selectFrom('lb_members')
    .innerJoin('ip_rules', 'ip_rules.id', 'lb_members.rule_id')
    .select(['ip_rules.id', 'ip_rules.network_id'])
    .where('lb_members.vm_id', '=', vmId)
    .execute();
  if (rows.length === 0) return [];
  await tx.deleteFrom('lb_members').where('vm_id', '=', vmId).execute();
  const ruleIds = [...new Set(rows.map((r) => r.id))];
  const still = await tx.selectFrom('lb_members').select('rule_id').where('rule_id', 'in', ruleIds).execute();
  const empty = ruleIds.filter((id) => !still.some((m) => m.rule_id === id));
  if (empty.length)
    await tx
      .updateTable('ip_rules')
      .set({ state: 'Add' })
      .where('id', 'in', empty)
      .where('state', '=', 'Active')
      .execute();
  return [...new Set(rows.map((r) => r.network_id))];
}

/**
 * Deletes the load balancers of an address being disassociated, inside the caller's transaction
 * (with their members, policies, tags and opened firewall rules). Returns the network whose
 * router must be told after the commit (applyNetworkRules), or undefined when there were none.
 */
export async function deleteLoadBalancersOfIp(_app: App, tx: Tx, ipId: number): Promise<number | undefined> {
  const rules = await tx
    .selectFrom('ip_rules')
    .select(['id', 'network_id'])
    .where('ip_id', '=', ipId)
    .where('purpose', '=', 'LoadBalancing')
    .execute();
  if (rules.length === 0) return undefined;
  const ids = rules.map((r) => r.id);
  const related = await tx.selectFrom('ip_rules').select('id').where('related_id', 'in', ids).execute();
  await deleteRules(tx, [...related.map((r) => r.id), ...ids]);
  return rules[0]?.network_id;
}

/**
 * After a commit that changed load balancers outside a job of ours (a VM expunged): the routers
 * get the new sets. A router that cannot be told is logged; it gets the whole set again with the
 * next change or when it boots, and the VM is gone either way.
 */
export async function applyLoadBalancerChanges(app: App, networkIds: number[]): Promise<void> {
  await Promise.all(
    networkIds.map((id) =>
      applyNetworkRules(app, id).catch((err) =>
        app.log.warn({ err, networkId: id }, 'load balancers could not be re-applied after a VM left them'),
      ),
    ),
  );
}

registerTaggable(TAG_TYPE, async (ctx, uuid) => {
  const r = await ctx.app.store.db
    .selectFrom('ip_rules')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('purpose', '=', 'LoadBalancing')
    .executeTakeFirst();
  return r && { id: r.id, accountId: r.account_id, domainId: r.domain_id };
});

export const loadBalancerRuleCommands = [
  createLoadBalancerRule,
  updateLoadBalancerRule,
  deleteLoadBalancerRule,
  listLoadBalancerRules,
];
