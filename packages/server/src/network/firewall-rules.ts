/**
 * Firewall rules of isolated networks: ingress rules on a public address (traffic to it is
 * dropped unless a rule admits it) and egress rules on the network (guest traffic leaving it,
 * allowed or denied by default as the network offering says, the rules being the exceptions).
 * Each rule is recorded in state Add, the router gets the network's whole rule set, and the rule
 * becomes Active; when the router refuses, the rule is deleted and the job fails with its reason.
 */

import type { CallContext } from '../context.ts';
import { inTransaction, type Tx } from '../db/connection.ts';
import type { IpRuleRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findOwned } from '../iam/owned.ts';
import { defineCommand, success } from '../registry/command.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { registerTaggable, tagsOf } from '../tags/tags.ts';
import { OWNED_NETWORK } from './guest-networks.ts';
import {
  applyCreated,
  cidrText,
  cidrWithin,
  customRuleId,
  guestCidr,
  insertRule,
  LIVE_RULE_STATES,
  listRules,
  lockIp,
  lockNetwork,
  networkOfIp,
  OWNED_IP,
  ownedRule,
  portRange,
  portsText,
  rangesOverlap,
  requireService,
  revokeRules,
  ruleRefs,
} from './ip-rules.ts';

export const ANY_CIDR = '0.0.0.0/0';

export interface FirewallSpec {
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
}

/** Protocol, ports and ICMP type/code checked and normalised as upstream does. */
export function firewallSpec(params: {
  protocol: string;
  startport?: number;
  endport?: number;
  icmptype?: number;
  icmpcode?: number;
}): FirewallSpec {
  const protocol = params.protocol.trim().toLowerCase();
  if (!['tcp', 'udp', 'icmp', 'all'].includes(protocol))
    throw invalidParameter(`Invalid protocol ${params.protocol}: use tcp, udp, icmp or all`);
  const { startport, endport, icmptype, icmpcode } = params;
  if (protocol !== 'icmp' && (icmptype !== undefined || icmpcode !== undefined))
    throw invalidParameter('Can specify icmpCode and icmpType for ICMP protocol only');
  if (protocol === 'icmp') {
    if (startport !== undefined || endport !== undefined)
      throw invalidParameter('Cannot specify start/end port when protocol is ICMP');
    const type = icmptype ?? -1;
    const code = icmpcode ?? -1;
    if (type < -1 || type > 255 || code < -1 || code > 255)
      throw invalidParameter(`Invalid ICMP type/code ${type}/${code}: each must be -1..255`);
    return { protocol, start_port: null, end_port: null, icmp_type: type, icmp_code: code };
  }
  if (protocol === 'all') {
    if (startport !== undefined || endport !== undefined)
      throw invalidParameter('Cannot specify start/end port when protocol is all');
    return { protocol, start_port: null, end_port: null, icmp_type: null, icmp_code: null };
  }
  if (startport === undefined) {
    if (endport !== undefined) throw invalidParameter('endport needs startport');
    return { protocol, start_port: null, end_port: null, icmp_type: null, icmp_code: null };
  }
  const [start, end] = portRange(startport, endport, 'firewall rule');
  return { protocol, start_port: start, end_port: end, icmp_type: null, icmp_code: null };
}

const sameCidrs = (a: string | null, b: string | null) =>
  [...new Set((a ?? ANY_CIDR).split(','))].sort().join(',') ===
  [...new Set((b ?? ANY_CIDR).split(','))].sort().join(',');

const conflict = (text: string) =>
  new ApiError(ErrorCode.NETWORK_RULE_CONFLICT, CsErrorCode.CLOUD_RUNTIME, text);

/**
 * Refuses a firewall rule that duplicates a live one of the same address (ingress) or network
 * (egress): same source and destination CIDRs and an overlapping protocol and ports (537), or
 * the same ICMP type and code (431), as upstream's conflict detection.
 */
export async function checkFirewallConflict(
  tx: Tx,
  where: { ipId: number } | { networkId: number },
  spec: FirewallSpec,
  cidrs: { source: string | null; dest: string | null },
): Promise<void> {
  let q = tx
    .selectFrom('ip_rules')
    .selectAll()
    .where('purpose', '=', 'Firewall')
    .where('state', 'in', LIVE_RULE_STATES);
  q =
    'ipId' in where
      ? q.where('ip_id', '=', where.ipId).where('traffic_type', '=', 'Ingress')
      : q.where('network_id', '=', where.networkId).where('traffic_type', '=', 'Egress');
  const mine: [number, number] = [spec.start_port ?? 1, spec.end_port ?? 65535];
  for (const r of await q.execute()) {
    if (!sameCidrs(r.source_cidrs, cidrs.source) || !sameCidrs(r.dest_cidrs, cidrs.dest)) continue;
    if (spec.protocol === 'all' || r.protocol === 'all') {
      if (spec.protocol === r.protocol || spec.protocol === 'all' || r.protocol === 'all')
        throw conflict(
          `There is already a firewall rule ${r.uuid} with protocol ${r.protocol} for these CIDRs`,
        );
    }
    if (r.protocol !== spec.protocol) continue;
    if (spec.protocol === 'icmp') {
      if (r.icmp_type === spec.icmp_type && r.icmp_code === spec.icmp_code)
        throw invalidParameter(`New rule conflicts with existing rule id=${r.uuid}`);
      continue;
    }
    if (rangesOverlap(mine, [r.start_port ?? 1, r.end_port ?? 65535]))
      throw conflict(
        `The range specified, ${mine[0]}-${mine[1]}, conflicts with rule ${r.uuid} which has ${portsText(r)}`,
      );
  }
}

/** Firewall rules as CloudStack shows them. */
export async function presentFirewallRules(ctx: CallContext, rules: IpRuleRow[]): Promise<object[]> {
  const [refs, tags] = await Promise.all([
    ruleRefs(ctx, rules),
    tagsOf(
      ctx,
      'FirewallRule',
      rules.map((r) => r.id),
    ),
  ]);
  return rules.map((r) => {
    const ip = r.ip_id === null ? undefined : refs.ip.get(r.ip_id);
    return {
      id: r.uuid,
      protocol: r.protocol,
      ...(r.start_port !== null ? { startport: r.start_port, endport: r.end_port ?? r.start_port } : {}),
      ...(r.icmp_type !== null ? { icmptype: r.icmp_type, icmpcode: r.icmp_code ?? -1 } : {}),
      ipaddressid: ip?.uuid,
      ipaddress: ip?.ip4,
      networkid: refs.network.get(r.network_id)?.uuid,
      state: r.state,
      cidrlist: r.source_cidrs ?? (r.traffic_type === 'Egress' ? '' : ANY_CIDR),
      ...(r.traffic_type === 'Egress' ? { destcidrlist: r.dest_cidrs ?? '' } : {}),
      traffictype: r.traffic_type,
      tags: tags.get(r.id) ?? [],
      fordisplay: r.for_display === 1,
    };
  });
}

const ruleParams = {
  protocol: p.string({
    required: true,
    description: 'Protocol the rule matches: tcp, udp, icmp or all (case-insensitive).',
  }),
  startport: p.integer({
    description: 'First port of the range (tcp/udp only); omit it to match every port.',
  }),
  endport: p.integer({
    description: 'Last port of the range (tcp/udp only); defaults to startport, and needs startport.',
  }),
  icmptype: p.integer({
    description: 'ICMP type to match, -1..255 (icmp only); -1, the default, means any type.',
  }),
  icmpcode: p.integer({
    description: 'ICMP code to match, -1..255 (icmp only); -1, the default, means any code.',
  }),
  cidrlist: p.list({
    description:
      "Comma-separated source CIDRs the rule matches; by default any source (ingress) or the network's guest CIDR (egress, where each CIDR must lie within it).",
  }),
  type: p.string({
    description: "Rule type; only 'user' is accepted (system rules cannot be created through the API).",
  }),
  fordisplay: p.boolean({
    description:
      'Whether end users see the rule; only an administrator can hide it (false). Defaults to true.',
  }),
};

function checkType(type: string | undefined): void {
  if (type !== undefined && type.trim().toLowerCase() !== 'user')
    throw invalidParameter(`Invalid firewall rule type ${type}: only user rules can be created`);
}

export const createFirewallRule = defineCommand({
  name: 'createFirewallRule',
  description:
    "Opens a port range or protocol on a public IP address (ingress is dropped otherwise) and pushes the network's rule set to its router; asynchronous.",
  params: {
    ...ruleParams,
    ipaddressid: p.uuid({
      required: true,
      description:
        'Public IP address whose inbound traffic the rule admits; its network must offer the Firewall service.',
    }),
  },
  event: {
    type: 'FIREWALL.OPEN',
    description: (params) => `creating firewall rule on IP ${params.ipaddressid}`,
  },
  async create(ctx, params) {
    const ip = await findOwned(ctx, 'public_ips', params.ipaddressid, OWNED_IP);
    const network = await networkOfIp(ctx, ip);
    await requireService(ctx.app, network, 'Firewall');
    checkType(params.type);
    const spec = firewallSpec(params);
    const source = cidrText(params.cidrlist) ?? ANY_CIDR;
    const uuid = await inTransaction(ctx.app.store, async (tx) => {
      await lockIp(tx, ip.id);
      await checkFirewallConflict(tx, { ipId: ip.id }, spec, { source, dest: null });
      const { uuid: id } = await insertRule(ctx, tx, {
        ...spec,
        purpose: 'Firewall',
        traffic_type: 'Ingress',
        ip_id: ip.id,
        network_id: network.id,
        account_id: ip.account_id as number,
        domain_id: ip.domain_id as number,
        source_cidrs: source,
        dest_cidrs: null,
        state: 'Add',
        related_id: null,
        vm_id: null,
        vm_ip: null,
        private_start_port: null,
        private_end_port: null,
        name: null,
        description: null,
        algorithm: null,
        for_display: params.fordisplay === false && ctx.caller.roleKind === 'admin' ? 0 : 1,
      });
      await logEvent(ctx, tx, {
        type: 'FIREWALL.OPEN',
        description: `created firewall rule ${spec.protocol} ${portsText(spec)} from ${source} on IP ${ip.ip4}`,
        resourceType: 'FirewallRule',
        resourceId: id,
      });
      return id;
    });
    return { type: 'FirewallRule', id: uuid };
  },
  async handler(ctx, _params, created) {
    const rule = await applyCreated(ctx, created!.id, 'firewall rule');
    return (await presentFirewallRules(ctx, [rule]))[0] as object;
  },
});

export const createEgressFirewallRule = defineCommand({
  name: 'createEgressFirewallRule',
  description:
    "Adds an egress exception to an isolated network's default egress policy and pushes the rule set to its router; asynchronous.",
  params: {
    ...ruleParams,
    networkid: p.uuid({
      required: true,
      description:
        'Isolated network whose outbound guest traffic the rule concerns; it must offer the Firewall service.',
    }),
    destcidrlist: p.list({
      description: 'Comma-separated destination CIDRs the rule matches; omitted, any destination.',
    }),
  },
  event: {
    type: 'FIREWALL.EGRESS.OPEN',
    description: (params) => `creating egress firewall rule for network ${params.networkid}`,
  },
  async create(ctx, params) {
    const network = await findOwned(ctx, 'networks', params.networkid, OWNED_NETWORK);
    await requireService(ctx.app, network, 'Firewall');
    checkType(params.type);
    const spec = firewallSpec(params);
    const guest = guestCidr(network);
    const source = cidrText(params.cidrlist) ?? guest ?? null;
    for (const cidr of source?.split(',') ?? [])
      if (guest && !cidrWithin(cidr, guest))
        throw invalidParameter(`Source cidr ${cidr} is not within the network's guest cidr ${guest}`);
    const dest = cidrText(params.destcidrlist, 'destcidrlist');
    if (network.account_id === null) throw invalidParameter(`Network ${network.name} belongs to no account`);
    const owner = { account: network.account_id, domain: network.domain_id as number };
    const uuid = await inTransaction(ctx.app.store, async (tx) => {
      await lockNetwork(tx, network.id);
      await checkFirewallConflict(tx, { networkId: network.id }, spec, { source, dest });
      const { uuid: id } = await insertRule(ctx, tx, {
        ...spec,
        purpose: 'Firewall',
        traffic_type: 'Egress',
        ip_id: null,
        network_id: network.id,
        account_id: owner.account,
        domain_id: owner.domain,
        source_cidrs: source,
        dest_cidrs: dest,
        state: 'Add',
        related_id: null,
        vm_id: null,
        vm_ip: null,
        private_start_port: null,
        private_end_port: null,
        name: null,
        description: null,
        algorithm: null,
        for_display: params.fordisplay === false && ctx.caller.roleKind === 'admin' ? 0 : 1,
      });
      await logEvent(ctx, tx, {
        type: 'FIREWALL.EGRESS.OPEN',
        description: `created egress rule ${spec.protocol} ${portsText(spec)} from ${source ?? 'any'} to ${dest ?? 'any'} in network ${network.name}`,
        resourceType: 'FirewallRule',
        resourceId: id,
      });
      return id;
    });
    return { type: 'FirewallRule', id: uuid };
  },
  async handler(ctx, _params, created) {
    const rule = await applyCreated(ctx, created!.id, 'egress firewall rule');
    return (await presentFirewallRules(ctx, [rule]))[0] as object;
  },
});

function updateCommand(
  name: 'updateFirewallRule' | 'updateEgressFirewallRule',
  traffic: 'Ingress' | 'Egress',
) {
  const eventType = traffic === 'Ingress' ? 'FIREWALL.UPDATE' : 'FIREWALL.EGRESS.UPDATE';
  const noun = traffic === 'Ingress' ? 'firewall rule' : 'egress firewall rule';
  return defineCommand({
    name,
    description:
      traffic === 'Ingress'
        ? 'Changes the display flag or the ID of an ingress firewall rule; the rule itself and the router are untouched. Asynchronous.'
        : 'Changes the display flag or the ID of an egress firewall rule; the rule itself and the router are untouched. Asynchronous.',
    params: {
      id: p.uuid({ required: true, description: 'ID of the rule to update.' }),
      fordisplay: p.boolean({ description: 'Whether end users see the rule.' }),
      customid: p.string({
        description: 'New ID (a UUID not used by another rule) for the rule; root administrators only.',
      }),
      accountid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    },
    event: { type: eventType, description: (params) => `updating ${noun} ${params.id}` },
    async target(ctx, params) {
      const rule = await findOwned(ctx, 'ip_rules', params.id, ownedRule('Firewall', noun, traffic));
      await customRuleId(ctx, rule.id, params.customid);
      return { type: 'FirewallRule', id: rule.uuid };
    },
    async handler(ctx, params) {
      const rule = await findOwned(ctx, 'ip_rules', params.id, ownedRule('Firewall', noun, traffic));
      const custom = await customRuleId(ctx, rule.id, params.customid);
      await inTransaction(ctx.app.store, async (tx) => {
        const changes = {
          ...(params.fordisplay !== undefined ? { for_display: (params.fordisplay ? 1 : 0) as 0 | 1 } : {}),
          ...(custom ? { uuid: custom } : {}),
        };
        if (Object.keys(changes).length)
          await tx.updateTable('ip_rules').set(changes).where('id', '=', rule.id).execute();
        await logEvent(ctx, tx, {
          type: eventType,
          description: `updated ${noun} ${custom ?? rule.uuid}`,
          resourceType: 'FirewallRule',
          resourceId: custom ?? rule.uuid,
        });
      });
      const now = await ctx.app.store.db
        .selectFrom('ip_rules')
        .selectAll()
        .where('id', '=', rule.id)
        .execute();
      return (await presentFirewallRules(ctx, now))[0] as object;
    },
  });
}

export const updateFirewallRule = updateCommand('updateFirewallRule', 'Ingress');
export const updateEgressFirewallRule = updateCommand('updateEgressFirewallRule', 'Egress');

function deleteCommand(
  name: 'deleteFirewallRule' | 'deleteEgressFirewallRule',
  traffic: 'Ingress' | 'Egress',
) {
  const eventType = traffic === 'Ingress' ? 'FIREWALL.CLOSE' : 'FIREWALL.EGRESS.CLOSE';
  const noun = traffic === 'Ingress' ? 'firewall rule' : 'egress firewall rule';
  return defineCommand({
    name,
    description:
      traffic === 'Ingress'
        ? "Removes an ingress firewall rule and re-applies the remaining rules on the network's router; asynchronous."
        : "Removes an egress firewall rule and re-applies the remaining rules on the network's router; asynchronous.",
    params: {
      id: p.uuid({ required: true, description: 'ID of the rule to delete.' }),
      accountid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    },
    event: { type: eventType, description: (params) => `deleting ${noun} ${params.id}` },
    async target(ctx, params) {
      const rule = await findOwned(ctx, 'ip_rules', params.id, ownedRule('Firewall', noun, traffic));
      return { type: 'FirewallRule', id: rule.uuid };
    },
    async handler(ctx, params) {
      const rule = await findOwned(ctx, 'ip_rules', params.id, ownedRule('Firewall', noun, traffic));
      await revokeRules(ctx.app, rule.network_id, [rule], `delete ${noun} ${rule.uuid}`);
      await inTransaction(ctx.app.store, (tx) =>
        logEvent(ctx, tx, {
          type: eventType,
          description: `deleted ${noun} ${rule.uuid} (${rule.protocol} ${portsText(rule)})`,
          resourceType: 'FirewallRule',
          resourceId: rule.uuid,
        }),
      );
      return success();
    },
  });
}

export const deleteFirewallRule = deleteCommand('deleteFirewallRule', 'Ingress');
export const deleteEgressFirewallRule = deleteCommand('deleteEgressFirewallRule', 'Egress');

const listRuleParams = {
  ...listParams,
  ...scopeParams,
  id: p.uuid({ description: 'Only the rule with this ID; an unknown ID is refused.' }),
  ipaddressid: p.uuid({ description: 'Only rules on this public IP address.' }),
  networkid: p.uuid({ description: 'Only rules of this guest network.' }),
  fordisplay: p.boolean({ description: 'Only rules shown (true) or hidden (false) from end users.' }),
  tags: p.map({
    description: 'Only rules carrying all these resource tags (tags[0].key, tags[0].value, ...).',
  }),
};

export const listFirewallRules = defineCommand({
  name: 'listFirewallRules',
  description: 'Lists the ingress firewall rules on public IP addresses that the caller may see.',
  params: listRuleParams,
  async handler(ctx, params) {
    return listRules(
      ctx,
      params,
      {
        purpose: 'Firewall',
        traffic: 'Ingress',
        tagType: 'FirewallRule',
        noun: 'firewall rule',
      },
      (rows) => presentFirewallRules(ctx, rows),
    );
  },
});

export const listEgressFirewallRules = defineCommand({
  name: 'listEgressFirewallRules',
  description: 'Lists the egress firewall rules of guest networks that the caller may see.',
  params: listRuleParams,
  async handler(ctx, params) {
    return listRules(
      ctx,
      params,
      {
        purpose: 'Firewall',
        traffic: 'Egress',
        tagType: 'FirewallRule',
        noun: 'egress firewall rule',
      },
      (rows) => presentFirewallRules(ctx, rows),
    );
  },
});

registerTaggable('FirewallRule', async (ctx, uuid) => {
  const rule = await ctx.app.store.db
    .selectFrom('ip_rules')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('purpose', '=', 'Firewall')
    .executeTakeFirst();
  return rule ? { id: rule.id, accountId: rule.account_id, domainId: rule.domain_id } : undefined;
});

export const firewallCommands = [
  createFirewallRule,
  createEgressFirewallRule,
  updateFirewallRule,
  updateEgressFirewallRule,
  deleteFirewallRule,
  deleteEgressFirewallRule,
  listFirewallRules,
  listEgressFirewallRules,
];
