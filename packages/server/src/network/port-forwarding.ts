/**
 * Port forwarding: traffic to a port range of a public address goes to the same-sized range of a
 * VM's guest address in the address's network. With `openfirewall` (the default) a firewall rule
 * admitting the public ports from `cidrlist` is made with it (its `related_id` names the
 * forwarding rule, and it goes when the forwarding rule goes). Conflicts are refused as upstream:
 * overlapping public ports of another forwarding or load-balancing rule of the same protocol on
 * the address (537), an address with static NAT (537).
 */

import type { CallContext } from '../context.ts';
import { inTransaction, type Tx } from '../db/connection.ts';
import type { IpRuleRow, NetworkRow, PublicIpRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findOwned, OWNED_VM } from '../iam/owned.ts';
import { defineCommand, success } from '../registry/command.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { registerTaggable, tagsOf } from '../tags/tags.ts';
import { ANY_CIDR, checkFirewallConflict } from './firewall-rules.ts';
import {
  applyCreated,
  applyOrUndo,
  bindIpToTier,
  cidrText,
  customRuleId,
  insertRule,
  LIVE_RULE_STATES,
  listRules,
  lockIp,
  networkForRule,
  networkInfo,
  networkOfIp,
  OWNED_IP,
  ownedRule,
  portRange,
  portsText,
  rangesOverlap,
  requireService,
  revokeRules,
  ruleRefs,
  vmNicIn,
} from './ip-rules.ts';

const conflict = (text: string) =>
  new ApiError(ErrorCode.NETWORK_RULE_CONFLICT, CsErrorCode.CLOUD_RUNTIME, text);

const GONE_VM_STATES = ['Destroyed', 'Expunging', 'Expunged', 'Error'];

/** A VM that may receive forwarded traffic of the address: the same owner, not destroyed. */
export async function targetVm(ctx: CallContext, uuid: string, ip: PublicIpRow) {
  const vm = await findOwned(ctx, 'vms', uuid, OWNED_VM);
  if (vm.account_id !== ip.account_id)
    throw permissionDenied(`Virtual machine ${uuid} and IP address ${ip.ip4} belong to different accounts`);
  const row = await ctx.app.store.db
    .selectFrom('vms')
    .select('state')
    .where('id', '=', vm.id)
    .executeTakeFirstOrThrow();
  if (GONE_VM_STATES.includes(row.state))
    throw invalidParameter(`Virtual machine ${uuid} is ${row.state}: it cannot receive forwarded traffic`);
  return vm;
}

/**
 * Refuses a forwarding range that overlaps, on the same protocol, the public ports of a live port
 * forwarding or load-balancing rule of the address; and any forwarding on a static-NAT address.
 */
export async function checkForwardConflict(
  tx: Tx,
  ipId: number,
  protocol: string,
  range: [number, number],
  except?: number,
): Promise<void> {
  const ip = await tx
    .selectFrom('public_ips')
    .select(['ip4', 'static_nat_vm_id'])
    .where('id', '=', ipId)
    .executeTakeFirstOrThrow();
  if (ip.static_nat_vm_id !== null)
    throw conflict(
      `There is 1 to 1 NAT (static NAT) enabled on IP address ${ip.ip4}: it forwards every port`,
    );
  const rules = await tx
    .selectFrom('ip_rules')
    .selectAll()
    .where('ip_id', '=', ipId)
    .where('purpose', 'in', ['PortForwarding', 'LoadBalancing'])
    .where('state', 'in', LIVE_RULE_STATES)
    .execute();
  for (const r of rules) {
    if (r.id === except || r.protocol !== protocol) continue;
    if (rangesOverlap(range, [r.start_port ?? 1, r.end_port ?? r.start_port ?? 65535]))
      throw conflict(
        `The range specified, ${range[0]}-${range[1]}, conflicts with rule ${r.uuid} which has ${portsText(r)}`,
      );
  }
}

/** Port forwarding (and IP forwarding) rules as CloudStack shows them; ports are strings upstream. */
export async function presentForwardingRules(
  ctx: CallContext,
  rules: IpRuleRow[],
  tagType = 'PortForwardingRule',
): Promise<object[]> {
  const [refs, tags] = await Promise.all([
    ruleRefs(ctx, rules),
    tagsOf(
      ctx,
      tagType,
      rules.map((r) => r.id),
    ),
  ]);
  const text = (n: number | null) => (n === null ? undefined : String(n));
  return rules.map((r) => {
    const ip = r.ip_id === null ? undefined : refs.ip.get(r.ip_id);
    const vm = r.vm_id === null ? undefined : refs.vm.get(r.vm_id);
    return {
      id: r.uuid,
      privateport: text(r.private_start_port ?? r.start_port),
      privateendport: text(r.private_end_port ?? r.end_port),
      protocol: r.protocol,
      publicport: text(r.start_port),
      publicendport: text(r.end_port),
      virtualmachineid: vm?.uuid,
      virtualmachinename: vm?.name,
      virtualmachinedisplayname: vm?.display_name,
      ipaddressid: ip?.uuid,
      ipaddress: ip?.ip4,
      state: r.state,
      cidrlist: r.source_cidrs ?? '',
      tags: tags.get(r.id) ?? [],
      vmguestip: r.vm_ip ?? undefined,
      networkid: refs.network.get(r.network_id)?.uuid,
      fordisplay: r.for_display === 1,
    };
  });
}

const RULE_DEFAULTS = {
  dest_cidrs: null,
  icmp_type: null,
  icmp_code: null,
  related_id: null,
  name: null,
  description: null,
  algorithm: null,
};

/**
 * Inserts the firewall rule opening a forwarding rule's public ports (openfirewall), checked for
 * duplicates like any firewall rule. Only where the network has a firewall.
 */
export async function openFirewallFor(
  ctx: CallContext,
  tx: Tx,
  rule: {
    id: number;
    ip: PublicIpRow;
    network: NetworkRow;
    protocol: string;
    range: [number, number];
    cidrs: string | null;
  },
): Promise<void> {
  if (!(await networkInfo(ctx.app, rule.network, tx)).services.has('Firewall')) return;
  const spec = {
    protocol: rule.protocol,
    start_port: rule.range[0],
    end_port: rule.range[1],
    icmp_type: null,
    icmp_code: null,
  };
  const source = rule.cidrs ?? ANY_CIDR;
  await checkFirewallConflict(tx, { ipId: rule.ip.id }, spec, { source, dest: null });
  await insertRule(ctx, tx, {
    ...RULE_DEFAULTS,
    ...spec,
    purpose: 'Firewall',
    traffic_type: 'Ingress',
    ip_id: rule.ip.id,
    network_id: rule.network.id,
    account_id: rule.ip.account_id as number,
    domain_id: rule.ip.domain_id as number,
    source_cidrs: source,
    state: 'Add',
    related_id: rule.id,
    vm_id: null,
    vm_ip: null,
    private_start_port: null,
    private_end_port: null,
    for_display: 1,
  });
}

function protocolOf(text: string): 'tcp' | 'udp' {
  const protocol = text.trim().toLowerCase();
  if (protocol !== 'tcp' && protocol !== 'udp')
    throw invalidParameter(`Invalid protocol ${text} for a port forwarding rule: use tcp or udp`);
  return protocol;
}

function sameLength(pub: [number, number], priv: [number, number]): void {
  if (pub[1] - pub[0] !== priv[1] - priv[0])
    throw invalidParameter(
      `Private port range ${priv[0]}-${priv[1]} and public port range ${pub[0]}-${pub[1]} must be of the same size`,
    );
}

export const createPortForwardingRule = defineCommand({
  name: 'createPortForwardingRule',
  description:
    'Forwards a public port range of an IP address to the same-sized port range of a VM in its network and, by default, opens it in the firewall. Asynchronous.',
  params: {
    ipaddressid: p.uuid({
      required: true,
      description: 'Public IP address whose ports are forwarded; it must not have static NAT.',
    }),
    protocol: p.string({ required: true, description: 'tcp or udp.' }),
    publicport: p.integer({ required: true, description: 'First public port, 1-65535.' }),
    publicendport: p.integer({ description: 'Last public port; defaults to publicport.' }),
    privateport: p.integer({ required: true, description: 'First port of the VM the traffic goes to.' }),
    privateendport: p.integer({
      description: 'Last port of the VM; the private range must be as long as the public one.',
    }),
    virtualmachineid: p.uuid({
      required: true,
      description:
        "VM receiving the traffic; it must belong to the address's account and have a NIC in its network.",
    }),
    vmguestip: p.string({
      description: "Which of the VM's addresses in the network receives the traffic; defaults to its first.",
    }),
    openfirewall: p.boolean({
      description:
        "Also create the firewall rule that admits the traffic (default true); it follows the forwarding rule's sources and is deleted with it.",
    }),
    cidrlist: p.list({
      description: 'Comma-separated source CIDRs the forwarding applies to; defaults to any.',
    }),
    networkid: p.uuid({
      description: 'Network of the rule; must be the one the address is associated with.',
    }),
    fordisplay: p.boolean({
      description:
        'Whether end users see the rule; only an administrator can hide it (false). Defaults to true.',
    }),
  },
  event: {
    type: 'NET.RULEADD',
    description: (params) => `creating port forwarding rule on IP ${params.ipaddressid}`,
  },
  async create(ctx, params) {
    const ip = await findOwned(ctx, 'public_ips', params.ipaddressid, OWNED_IP);
    const network = await networkForRule(ctx, ip, params.networkid);
    await requireService(ctx.app, network, 'PortForwarding');
    const protocol = protocolOf(params.protocol);
    const pub = portRange(params.publicport, params.publicendport, 'public');
    const priv = portRange(params.privateport, params.privateendport, 'private');
    sameLength(pub, priv);
    const vm = await targetVm(ctx, params.virtualmachineid, ip);
    const vmIp = await vmNicIn(ctx.app, vm, network, params.vmguestip);
    const cidrs = cidrText(params.cidrlist);
    const uuid = await inTransaction(ctx.app.store, async (tx) => {
      await lockIp(tx, ip.id);
      await bindIpToTier(tx, ip, network);
      await checkForwardConflict(tx, ip.id, protocol, pub);
      const rule = await insertRule(ctx, tx, {
        ...RULE_DEFAULTS,
        purpose: 'PortForwarding',
        traffic_type: 'Ingress',
        ip_id: ip.id,
        network_id: network.id,
        account_id: ip.account_id as number,
        domain_id: ip.domain_id as number,
        protocol,
        start_port: pub[0],
        end_port: pub[1],
        source_cidrs: cidrs,
        state: 'Add',
        vm_id: vm.id,
        vm_ip: vmIp,
        private_start_port: priv[0],
        private_end_port: priv[1],
        for_display: params.fordisplay === false && ctx.caller.roleKind === 'admin' ? 0 : 1,
      });
      if (params.openfirewall !== false)
        await openFirewallFor(ctx, tx, { id: rule.id, ip, network, protocol, range: pub, cidrs });
      await logEvent(ctx, tx, {
        type: 'NET.RULEADD',
        description: `created port forwarding rule ${protocol} ${ip.ip4}:${pub[0]}-${pub[1]} -> ${vmIp}:${priv[0]}-${priv[1]}`,
        resourceType: 'PortForwardingRule',
        resourceId: rule.uuid,
      });
      return rule.uuid;
    });
    return { type: 'PortForwardingRule', id: uuid };
  },
  async handler(ctx, _params, created) {
    const rule = await applyCreated(ctx, created!.id, 'port forwarding rule');
    return (await presentForwardingRules(ctx, [rule]))[0] as object;
  },
});

interface UpdateParams {
  id: string;
  privateport?: number;
  privateendport?: number;
  virtualmachineid?: string;
  vmguestip?: string;
  cidrlist?: string[];
  fordisplay?: boolean;
  customid?: string;
}

/** Checks an update and works out the rule's new values (run before queuing and in the job). */
async function planUpdate(ctx: CallContext, params: UpdateParams) {
  const db = ctx.app.store.db;
  const rule = await findOwned(
    ctx,
    'ip_rules',
    params.id,
    ownedRule('PortForwarding', 'port forwarding rule'),
  );
  const custom = await customRuleId(ctx, rule.id, params.customid);
  const ip = await db
    .selectFrom('public_ips')
    .selectAll()
    .where('id', '=', rule.ip_id as number)
    .executeTakeFirstOrThrow();
  const network = await networkOfIp(ctx, ip);
  const pub: [number, number] = [rule.start_port as number, rule.end_port as number];
  let priv: [number, number] = [rule.private_start_port as number, rule.private_end_port as number];
  if (params.privateport !== undefined) {
    priv = portRange(
      params.privateport,
      params.privateendport ?? params.privateport + (pub[1] - pub[0]),
      'private',
    );
    sameLength(pub, priv);
  } else if (params.privateendport !== undefined) throw invalidParameter('privateendport needs privateport');
  let vmId = rule.vm_id as number;
  let vmIp = rule.vm_ip as string;
  if (params.virtualmachineid || params.vmguestip) {
    const vm = params.virtualmachineid
      ? await targetVm(ctx, params.virtualmachineid, ip)
      : await db.selectFrom('vms').select(['id', 'uuid']).where('id', '=', vmId).executeTakeFirstOrThrow();
    vmId = vm.id;
    vmIp = await vmNicIn(ctx.app, vm, network, params.vmguestip);
  }
  const cidrs = params.cidrlist !== undefined ? cidrText(params.cidrlist) : rule.source_cidrs;
  return {
    rule,
    custom,
    cidrs,
    changed: {
      private_start_port: priv[0],
      private_end_port: priv[1],
      vm_id: vmId,
      vm_ip: vmIp,
      source_cidrs: cidrs,
      ...(params.fordisplay !== undefined ? { for_display: (params.fordisplay ? 1 : 0) as 0 | 1 } : {}),
    },
  };
}

export const updatePortForwardingRule = defineCommand({
  name: 'updatePortForwardingRule',
  description:
    'Changes where a port forwarding rule sends traffic (VM, address, private ports) or its sources, and re-applies it on the router; asynchronous, undone if refused.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the rule to update.' }),
    privateport: p.integer({
      description: "New first private port; the range keeps the public range's length.",
    }),
    privateendport: p.integer({
      description: 'New last private port; needs privateport and must keep the length of the public range.',
    }),
    virtualmachineid: p.uuid({
      description: 'New VM receiving the traffic, of the same account and network.',
    }),
    vmguestip: p.string({ description: 'New address of the VM in the network to receive the traffic.' }),
    cidrlist: p.list({
      description:
        'New comma-separated source CIDRs (empty for any); the firewall rule opened with it follows.',
    }),
    fordisplay: p.boolean({ description: 'Whether end users see the rule.' }),
    customid: p.string({
      description: 'New ID (a UUID not used by another rule) for the rule; root administrators only.',
    }),
  },
  event: { type: 'NET.RULEMODIFY', description: (params) => `updating port forwarding rule ${params.id}` },
  async target(ctx, params) {
    const { rule } = await planUpdate(ctx, params);
    return { type: 'PortForwardingRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const { rule, custom, cidrs, changed } = await planUpdate(ctx, params);
    const before = {
      private_start_port: rule.private_start_port,
      private_end_port: rule.private_end_port,
      vm_id: rule.vm_id,
      vm_ip: rule.vm_ip,
      source_cidrs: rule.source_cidrs,
    };
    await inTransaction({ db }, async (tx) => {
      await tx.updateTable('ip_rules').set(changed).where('id', '=', rule.id).execute();
      // The firewall rule opened for it follows its sources.
      if (params.cidrlist !== undefined)
        await tx
          .updateTable('ip_rules')
          .set({ source_cidrs: cidrs ?? ANY_CIDR })
          .where('related_id', '=', rule.id)
          .execute();
      await logEvent(ctx, tx, {
        type: 'NET.RULEMODIFY',
        description: `updated port forwarding rule ${rule.uuid}`,
        resourceType: 'PortForwardingRule',
        resourceId: custom ?? rule.uuid,
      });
    });
    await applyOrUndo(app, rule.network_id, `update port forwarding rule ${rule.uuid}`, async () => {
      await inTransaction({ db }, async (tx) => {
        await tx.updateTable('ip_rules').set(before).where('id', '=', rule.id).execute();
        if (params.cidrlist !== undefined)
          await tx
            .updateTable('ip_rules')
            .set({ source_cidrs: rule.source_cidrs ?? ANY_CIDR })
            .where('related_id', '=', rule.id)
            .execute();
      });
    });
    if (custom) await db.updateTable('ip_rules').set({ uuid: custom }).where('id', '=', rule.id).execute();
    const now = await db.selectFrom('ip_rules').selectAll().where('id', '=', rule.id).execute();
    return (await presentForwardingRules(ctx, now))[0] as object;
  },
});

/** Deletes a forwarding rule with the firewall rule opened for it, through the router. */
export async function deleteForwardingRule(
  ctx: CallContext,
  rule: IpRuleRow,
  eventType: string,
  noun: string,
) {
  const db = ctx.app.store.db;
  const related = await db.selectFrom('ip_rules').selectAll().where('related_id', '=', rule.id).execute();
  await revokeRules(ctx.app, rule.network_id, [rule, ...related], `delete ${noun} ${rule.uuid}`);
  await inTransaction({ db }, (tx) =>
    logEvent(ctx, tx, {
      type: eventType,
      description: `deleted ${noun} ${rule.uuid} (${rule.protocol} ${portsText(rule)})`,
      resourceType: noun === 'port forwarding rule' ? 'PortForwardingRule' : 'FirewallRule',
      resourceId: rule.uuid,
    }),
  );
}

export const deletePortForwardingRule = defineCommand({
  name: 'deletePortForwardingRule',
  description:
    'Deletes a port forwarding rule, with the firewall rule opened for it, and removes it from the router; asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the rule to delete.' }),
    accountid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: { type: 'NET.RULEDELETE', description: (params) => `deleting port forwarding rule ${params.id}` },
  async target(ctx, params) {
    const rule = await findOwned(
      ctx,
      'ip_rules',
      params.id,
      ownedRule('PortForwarding', 'port forwarding rule'),
    );
    return { type: 'PortForwardingRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const rule = await findOwned(
      ctx,
      'ip_rules',
      params.id,
      ownedRule('PortForwarding', 'port forwarding rule'),
    );
    await deleteForwardingRule(ctx, rule, 'NET.RULEDELETE', 'port forwarding rule');
    return success();
  },
});

export const listPortForwardingRules = defineCommand({
  name: 'listPortForwardingRules',
  description: 'Lists the port forwarding rules the caller may see.',
  params: {
    ...listParams,
    ...scopeParams,
    id: p.uuid({ description: 'Only the rule with this ID; an unknown ID is refused.' }),
    ipaddressid: p.uuid({ description: 'Only rules on this public IP address.' }),
    networkid: p.uuid({ description: 'Only rules of this guest network.' }),
    fordisplay: p.boolean({ description: 'Only rules shown (true) or hidden (false) from end users.' }),
    tags: p.map({
      description: 'Only rules carrying all these resource tags (tags[0].key, tags[0].value, ...).',
    }),
  },
  async handler(ctx, params) {
    return listRules(
      ctx,
      params,
      {
        purpose: 'PortForwarding',
        tagType: 'PortForwardingRule',
        noun: 'port forwarding rule',
      },
      (rows) => presentForwardingRules(ctx, rows),
    );
  },
});

registerTaggable('PortForwardingRule', async (ctx, uuid) => {
  const rule = await ctx.app.store.db
    .selectFrom('ip_rules')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('purpose', '=', 'PortForwarding')
    .executeTakeFirst();
  return rule ? { id: rule.id, accountId: rule.account_id, domainId: rule.domain_id } : undefined;
});

export const portForwardingCommands = [
  createPortForwardingRule,
  updatePortForwardingRule,
  deletePortForwardingRule,
  listPortForwardingRules,
];
