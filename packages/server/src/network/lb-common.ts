/**
 * What the load balancing commands share (load-balancers.ts, lb-members.ts, lb-policies.ts):
 * checks of algorithms and protocols, finding a rule the caller may act on, presenting rules,
 * settling a rule's state once its router has it, and what other capabilities call when VMs and
 * addresses go away.
 */

import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { IpRuleRow, NetworkRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter } from '../errors.ts';
import { displayPath } from '../iam/domains.ts';
import { findOwned } from '../iam/owned.ts';
import { registerTaggable, tagsOf } from '../tags/tags.ts';

export const LB_ALGORITHMS = ['roundrobin', 'leastconn', 'source'];
/** The protocols upstream's API names; the router's HAProxy balances TCP only. */
const LB_PROTOCOLS = ['tcp', 'udp', 'tcp-proxy', 'ssl'];
/** The resource type of load balancing rules' tags (upstream's). */
export const TAG_TYPE = 'LoadBalancer';

/** 537, as upstream's NetworkRuleConflictException. */
export const conflict = (text: string) =>
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

export function checkPortValue(value: number, name: string): void {
  if (value < 1 || value > 65535) throw invalidParameter(`${name} is an invalid value: ${value}`);
}

/** A load balancing rule by uuid that the caller may act on (431 unknown, 531 someone else's). */
export async function findLoadBalancer(ctx: CallContext, uuid: string, tx: Tx = ctx.app.store.db) {
  // A rule being revoked is still found: checkNotRevoked refuses changes to it with its own text.
  return findOwned(ctx, 'ip_rules', uuid, {
    noun: 'load balancer rule',
    live: (rule) => rule.purpose === 'LoadBalancing',
    tx,
  });
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

/**
 * Takes a VM out of every load balancer, inside the caller's transaction: on expunge, or with
 * `networkId` when its NIC in that network goes (removeNicFromVirtualMachine). Rules left without
 * VMs go back to Add. Returns the networks whose routers must be told once the transaction
 * committed (reapplyNetworkRules).
 */
export async function removeVmFromLoadBalancers(tx: Tx, vmId: number, networkId?: number): Promise<number[]> {
  let q = tx
    .selectFrom('lb_members')
    .innerJoin('ip_rules', 'ip_rules.id', 'lb_members.rule_id')
    .select(['ip_rules.id', 'ip_rules.network_id'])
    .where('lb_members.vm_id', '=', vmId);
  if (networkId !== undefined) q = q.where('ip_rules.network_id', '=', networkId);
  const rows = await q.execute();
  if (rows.length === 0) return [];
  const ruleIds = [...new Set(rows.map((r) => r.id))];
  await tx.deleteFrom('lb_members').where('vm_id', '=', vmId).where('rule_id', 'in', ruleIds).execute();
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

registerTaggable(TAG_TYPE, async (ctx, uuid) => {
  const r = await ctx.app.store.db
    .selectFrom('ip_rules')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('purpose', '=', 'LoadBalancing')
    .executeTakeFirst();
  return r && { id: r.id, accountId: r.account_id, domainId: r.domain_id };
});
