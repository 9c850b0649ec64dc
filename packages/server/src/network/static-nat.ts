/**
 * Static NAT: a public address stands for one VM's guest address (1:1, every port, both ways),
 * and IP forwarding rules (createIpForwardingRule) are upstream's "static NAT rules": port ranges
 * on such an address, each opening the firewall for its ports. An address with static NAT has no
 * port forwarding or load balancing, is not a source-NAT address, and a VM has at most one static
 * NAT address per network. Enabling is synchronous, as upstream; disabling removes the address's
 * IP forwarding rules too.
 */

import type { CallContext } from '../context.ts';
import { inTransaction } from '../db/connection.ts';
import type { PublicIpRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findOwned } from '../iam/owned.ts';
import { defineCommand, success } from '../registry/command.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import {
  applyCreated,
  applyOrUndo,
  bindIpToTier,
  cidrText,
  insertRule,
  LIVE_RULE_STATES,
  listRules,
  lockIp,
  networkForRule,
  networkOfIp,
  OWNED_IP,
  ownedRule,
  portRange,
  portsText,
  rangesOverlap,
  requireService,
  vmNicIn,
} from './ip-rules.ts';
import {
  deleteForwardingRule,
  openFirewallFor,
  presentForwardingRules,
  targetVm,
} from './port-forwarding.ts';

const conflict = (text: string) =>
  new ApiError(ErrorCode.NETWORK_RULE_CONFLICT, CsErrorCode.CLOUD_RUNTIME, text);

export const enableStaticNat = defineCommand({
  name: 'enableStaticNat',
  description:
    "Maps a public IP address one-to-one onto a VM's address in its network: the router sends all the address's traffic (that the firewall admits) to the VM, and the VM's outgoing traffic leaves from it.",
  params: {
    ipaddressid: p.uuid({
      required: true,
      description:
        'Public IP address to map; not a source NAT address and without port forwarding or load balancer rules.',
    }),
    virtualmachineid: p.uuid({
      required: true,
      description:
        'VM the address maps to; same account as the address, with a NIC in its network, and no other static NAT address there.',
    }),
    networkid: p.uuid({
      description: 'Network of the mapping; must be the one the address is associated with.',
    }),
    vmguestip: p.string({
      description:
        "Which of the VM's addresses in the network the public address maps to; defaults to its first.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const ip = await findOwned(ctx, 'public_ips', params.ipaddressid, OWNED_IP);
    const network = await networkForRule(ctx, ip, params.networkid);
    await requireService(app, network, 'StaticNat');
    if (ip.source_nat === 1)
      throw invalidParameter(`Can't enable static NAT: IP address ${ip.ip4} is a source NAT address`);
    const vm = await targetVm(ctx, params.virtualmachineid, ip);
    const vmIp = await vmNicIn(app, vm, network, params.vmguestip);
    const before = await inTransaction({ db }, async (tx) => {
      await lockIp(tx, ip.id);
      await bindIpToTier(tx, ip, network);
      const now = await tx
        .selectFrom('public_ips')
        .selectAll()
        .where('id', '=', ip.id)
        .executeTakeFirstOrThrow();
      // Released (or released and taken again) since it was looked up: a disassociate won the race.
      if (now.state !== 'Allocated' || now.account_id !== ip.account_id)
        throw invalidParameter(`Can't enable static NAT: IP address ${ip.ip4} is being released`);
      if (now.static_nat_vm_id !== null && now.static_nat_vm_id !== vm.id)
        throw conflict(
          `Failed to enable static NAT for IP address ${ip.ip4}: it is already assigned to another VM`,
        );
      const rules = await tx
        .selectFrom('ip_rules')
        .select('purpose')
        .where('ip_id', '=', ip.id)
        .where('purpose', 'in', ['PortForwarding', 'LoadBalancing'])
        .where('state', 'in', LIVE_RULE_STATES)
        .execute();
      for (const purpose of ['PortForwarding', 'LoadBalancing'])
        if (rules.some((r) => r.purpose === purpose))
          throw conflict(
            `Failed to enable static NAT for IP address ${ip.ip4} as it already has ${purpose} rules assigned`,
          );
      const other = await tx
        .selectFrom('public_ips')
        .select('ip4')
        .where('static_nat_vm_id', '=', vm.id)
        .where('network_id', '=', network.id)
        .where('id', '!=', ip.id)
        .executeTakeFirst();
      if (other)
        throw invalidParameter(
          `Failed to enable static NAT for IP address ${ip.ip4}: virtual machine ${vm.uuid} already has static NAT address ${other.ip4} in network ${network.name}`,
        );
      await tx
        .updateTable('public_ips')
        .set({ static_nat_vm_id: vm.id, static_nat_vm_ip: vmIp })
        .where('id', '=', ip.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'STATICNAT.ENABLE',
        description: `enabled static NAT ${ip.ip4} -> ${vmIp}`,
        resourceType: 'IpAddress',
        resourceId: ip.uuid,
      });
      return now;
    });
    await applyOrUndo(app, network.id, `enable static NAT for IP address ${ip.ip4}`, async () => {
      await db
        .updateTable('public_ips')
        .set({ static_nat_vm_id: before.static_nat_vm_id, static_nat_vm_ip: before.static_nat_vm_ip })
        .where('id', '=', ip.id)
        .where('state', '=', 'Allocated')
        .where('allocated', '=', before.allocated)
        .execute();
    });
    return success();
  },
});

/**
 * Takes static NAT off an address with its IP forwarding rules: the router is told first, and if
 * it cannot be, the address keeps its static NAT and rules.
 */
export async function disableStaticNatOf(ctx: CallContext, ip: PublicIpRow): Promise<void> {
  const { app } = ctx;
  const db = app.store.db;
  if (ip.static_nat_vm_id === null)
    throw invalidParameter(`Static NAT is not enabled for IP address ${ip.ip4}`);
  const network = await networkOfIp(ctx, ip);
  const forwarding = await db
    .selectFrom('ip_rules')
    .selectAll()
    .where('ip_id', '=', ip.id)
    .where('purpose', '=', 'StaticNat')
    .where('state', 'in', LIVE_RULE_STATES)
    .execute();
  const related = forwarding.length
    ? await db
        .selectFrom('ip_rules')
        .selectAll()
        .where(
          'related_id',
          'in',
          forwarding.map((r) => r.id),
        )
        .execute()
    : [];
  const rules = [...forwarding, ...related];
  await inTransaction({ db }, async (tx) => {
    await tx
      .updateTable('public_ips')
      .set({ static_nat_vm_id: null, static_nat_vm_ip: null })
      .where('id', '=', ip.id)
      .execute();
    if (rules.length)
      await tx
        .updateTable('ip_rules')
        .set({ state: 'Revoke' })
        .where(
          'id',
          'in',
          rules.map((r) => r.id),
        )
        .execute();
  });
  await applyOrUndo(app, network.id, `disable static NAT for IP address ${ip.ip4}`, async () => {
    await inTransaction({ db }, async (tx) => {
      await tx
        .updateTable('public_ips')
        .set({ static_nat_vm_id: ip.static_nat_vm_id, static_nat_vm_ip: ip.static_nat_vm_ip })
        .where('id', '=', ip.id)
        // An address released meanwhile stays Free and clean.
        .where('state', '=', 'Allocated')
        .where('allocated', '=', ip.allocated)
        .execute();
      for (const r of rules)
        await tx.updateTable('ip_rules').set({ state: r.state }).where('id', '=', r.id).execute();
    });
  });
  await inTransaction({ db }, async (tx) => {
    if (rules.length)
      await tx
        .deleteFrom('ip_rules')
        .where(
          'id',
          'in',
          rules.map((r) => r.id),
        )
        .execute();
    await logEvent(ctx, tx, {
      type: 'STATICNAT.DISABLE',
      description: `disabled static NAT for IP address ${ip.ip4}`,
      resourceType: 'IpAddress',
      resourceId: ip.uuid,
    });
  });
}

export const disableStaticNat = defineCommand({
  name: 'disableStaticNat',
  description:
    'Ends the static NAT of a public IP address and deletes its IP forwarding rules (and the firewall rules opened for them) on the router; asynchronous.',
  params: {
    ipaddressid: p.uuid({ required: true, description: 'Public IP address whose static NAT ends.' }),
  },
  event: {
    type: 'STATICNAT.DISABLE',
    description: (params) => `disabling static NAT for IP ${params.ipaddressid}`,
  },
  async target(ctx, params) {
    const ip = await findOwned(ctx, 'public_ips', params.ipaddressid, OWNED_IP);
    if (ip.static_nat_vm_id === null)
      throw invalidParameter(`Static NAT is not enabled for IP address ${ip.ip4}`);
    return { type: 'IpAddress', id: ip.uuid };
  },
  async handler(ctx, params) {
    await disableStaticNatOf(ctx, await findOwned(ctx, 'public_ips', params.ipaddressid, OWNED_IP));
    return success();
  },
});

export const createIpForwardingRule = defineCommand({
  name: 'createIpForwardingRule',
  description:
    'Adds a port range rule to a static NAT address, forwarding those ports unchanged to its VM and, by default, opening them in the firewall. Asynchronous.',
  params: {
    ipaddressid: p.uuid({ required: true, description: 'Public IP address with static NAT enabled.' }),
    protocol: p.string({ required: true, description: 'tcp or udp.' }),
    startport: p.integer({ required: true, description: 'First port of the range, 1-65535.' }),
    endport: p.integer({ description: 'Last port of the range; defaults to startport.' }),
    openfirewall: p.boolean({
      description:
        'Also create the firewall rule that admits these ports (default true); it is deleted with this rule.',
    }),
    cidrlist: p.list({ description: 'Comma-separated source CIDRs the rule applies to; defaults to any.' }),
  },
  event: {
    type: 'NET.RULEADD',
    description: (params) => `creating IP forwarding rule on IP ${params.ipaddressid}`,
  },
  async create(ctx, params) {
    const ip = await findOwned(ctx, 'public_ips', params.ipaddressid, OWNED_IP);
    const network = await networkOfIp(ctx, ip);
    await requireService(ctx.app, network, 'StaticNat');
    const protocol = params.protocol.trim().toLowerCase();
    if (protocol !== 'tcp' && protocol !== 'udp')
      throw invalidParameter(`Invalid protocol ${params.protocol} for an IP forwarding rule: use tcp or udp`);
    const range = portRange(params.startport, params.endport, 'IP forwarding rule');
    const cidrs = cidrText(params.cidrlist);
    const uuid = await inTransaction(ctx.app.store, async (tx) => {
      await lockIp(tx, ip.id);
      const now = await tx
        .selectFrom('public_ips')
        .selectAll()
        .where('id', '=', ip.id)
        .executeTakeFirstOrThrow();
      if (now.static_nat_vm_id === null || now.static_nat_vm_ip === null)
        throw invalidParameter(
          `Can't create IP forwarding rules on IP address ${ip.ip4}: static NAT is not enabled`,
        );
      const others = await tx
        .selectFrom('ip_rules')
        .selectAll()
        .where('ip_id', '=', ip.id)
        .where('purpose', '=', 'StaticNat')
        .where('state', 'in', LIVE_RULE_STATES)
        .where('protocol', '=', protocol)
        .execute();
      for (const r of others)
        if (rangesOverlap(range, [r.start_port ?? 1, r.end_port ?? 65535]))
          throw conflict(
            `The range specified, ${range[0]}-${range[1]}, conflicts with rule ${r.uuid} which has ${portsText(r)}`,
          );
      const rule = await insertRule(ctx, tx, {
        purpose: 'StaticNat',
        traffic_type: 'Ingress',
        ip_id: ip.id,
        network_id: network.id,
        account_id: ip.account_id as number,
        domain_id: ip.domain_id as number,
        protocol,
        start_port: range[0],
        end_port: range[1],
        icmp_type: null,
        icmp_code: null,
        source_cidrs: cidrs,
        dest_cidrs: null,
        state: 'Add',
        related_id: null,
        vm_id: now.static_nat_vm_id,
        vm_ip: now.static_nat_vm_ip,
        private_start_port: range[0],
        private_end_port: range[1],
        name: null,
        description: null,
        algorithm: null,
        for_display: 1,
      });
      if (params.openfirewall !== false)
        await openFirewallFor(ctx, tx, { id: rule.id, ip: now, network, protocol, range, cidrs });
      await logEvent(ctx, tx, {
        type: 'NET.RULEADD',
        description: `created IP forwarding rule ${protocol} ${range[0]}-${range[1]} on IP ${ip.ip4}`,
        resourceType: 'FirewallRule',
        resourceId: rule.uuid,
      });
      return rule.uuid;
    });
    return { type: 'FirewallRule', id: uuid };
  },
  async handler(ctx, _params, created) {
    const rule = await applyCreated(ctx, created!.id, 'IP forwarding rule');
    return (await presentForwardingRules(ctx, [rule], 'FirewallRule'))[0] as object;
  },
});

export const deleteIpForwardingRule = defineCommand({
  name: 'deleteIpForwardingRule',
  description:
    'Deletes an IP forwarding rule with the firewall rule opened for it, and removes it from the router; asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the rule to delete.' }),
    accountid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: { type: 'NET.RULEDELETE', description: (params) => `deleting IP forwarding rule ${params.id}` },
  async target(ctx, params) {
    const rule = await findOwned(ctx, 'ip_rules', params.id, ownedRule('StaticNat', 'IP forwarding rule'));
    return { type: 'FirewallRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const rule = await findOwned(ctx, 'ip_rules', params.id, ownedRule('StaticNat', 'IP forwarding rule'));
    await deleteForwardingRule(ctx, rule, 'NET.RULEDELETE', 'IP forwarding rule');
    return success();
  },
});

export const listIpForwardingRules = defineCommand({
  name: 'listIpForwardingRules',
  description: 'Lists the IP forwarding rules of static NAT addresses that the caller may see.',
  params: {
    ...listParams,
    ...scopeParams,
    id: p.uuid({ description: 'Only the rule with this ID; an unknown ID is refused.' }),
    ipaddressid: p.uuid({ description: 'Only rules on this public IP address.' }),
    virtualmachineid: p.uuid({ description: 'Only rules forwarding to this VM.' }),
  },
  async handler(ctx, params) {
    return listRules(
      ctx,
      params,
      {
        purpose: 'StaticNat',
        tagType: 'FirewallRule',
        noun: 'IP forwarding rule',
      },
      (rows) => presentForwardingRules(ctx, rows, 'FirewallRule'),
    );
  },
});

export const staticNatCommands = [
  enableStaticNat,
  disableStaticNat,
  createIpForwardingRule,
  deleteIpForwardingRule,
  listIpForwardingRules,
];
