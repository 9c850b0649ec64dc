/**
 * The VMs of a load balancing rule: assignToLoadBalancerRule, removeFromLoadBalancerRule and
 * listLoadBalancerRuleInstances. A member is a VM of the rule's network and account with the
 * address of its NIC there (`vmidipmap` may name that address; VMs have no secondary addresses
 * here). Changes are committed, then applied to the router, and undone when it refuses.
 */

import { PRESENTED_VM_COLUMNS, presentVms } from '../compute/vm-presenter.ts';
import type { CallContext } from '../context.ts';
import type { IpRuleRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { listBody } from '../http/serialize.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { checkRowAccess } from '../iam/owned.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { applyOrUndo } from './ip-rules.ts';
import { checkNotRevoked, findLoadBalancer, settleState } from './lb-common.ts';

/** VMs in these states are gone for load balancing (upstream's check). */
const GONE_STATES = ['Destroyed', 'Expunging', 'Error'];

interface MemberParams {
  id: string;
  virtualmachineids?: string[];
  vmidipmap?: Record<string, string>[];
}

/** VM uuid → the addresses asked for (empty: the VM's address in the network). */
function requested(params: MemberParams): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const id of params.virtualmachineids ?? []) out.set(id.toLowerCase(), out.get(id.toLowerCase()) ?? []);
  for (const entry of params.vmidipmap ?? []) {
    const vmid = entry.vmid?.trim().toLowerCase();
    const ip = (entry.vmip ?? entry.ip)?.trim();
    if (!vmid) throw invalidParameter('Each vmidipmap entry needs a vmid');
    const list = out.get(vmid) ?? [];
    if (ip) list.push(ip);
    out.set(vmid, list);
  }
  if (out.size === 0) throw invalidParameter("Both instanceids and vmidipmap  can't be null");
  return out;
}

/** The (vm, address) pairs to add, checked as upstream does; 431/531 before the job is queued. */
async function membersToAdd(ctx: CallContext, rule: IpRuleRow, params: MemberParams) {
  const db = ctx.app.store.db;
  const wanted = requested(params);
  const vms = await db
    .selectFrom('vms')
    .select(['id', 'uuid', 'name', 'account_id', 'domain_id', 'state'])
    .where('uuid', 'in', [...wanted.keys()])
    .where('removed', 'is', null)
    .execute();
  const nics = vms.length
    ? await db
        .selectFrom('nics')
        .select(['vm_id', 'ip4'])
        .where(
          'vm_id',
          'in',
          vms.map((v) => v.id),
        )
        .where('network_id', '=', rule.network_id)
        .where('removed', 'is', null)
        .execute()
    : [];
  const existing = await db.selectFrom('lb_members').selectAll().where('rule_id', '=', rule.id).execute();
  const out: { vm_id: number; vm_ip: string }[] = [];
  for (const [uuid, ips] of wanted) {
    const vm = vms.find((v) => v.uuid === uuid);
    if (!vm || GONE_STATES.includes(vm.state))
      throw invalidParameter('Invalid instance id specified', [{ uuid, description: 'instanceId' }]);
    await checkRowAccess(ctx, vm);
    if (vm.account_id !== rule.account_id)
      throw invalidParameter(`New rule ${rule.uuid} and vm id=${vm.uuid} belong to different accounts`);
    const nic = nics.find((n) => n.vm_id === vm.id);
    if (!nic?.ip4)
      throw invalidParameter(
        "VM with id specified cannot be added because it doesn't belong in the same network.",
        [{ uuid: vm.uuid, description: 'instanceId' }],
      );
    for (const ip of ips)
      if (ip !== nic.ip4)
        throw invalidParameter(
          `VM ip ${ip} specified does not belong to nic in network of rule ${rule.name}`,
        );
    const addr = nic.ip4;
    if (existing.some((m) => m.vm_id === vm.id && m.vm_ip === addr))
      throw invalidParameter(`VM ${vm.uuid} with ${addr} is already mapped to load balancer.`);
    if (!out.some((m) => m.vm_id === vm.id)) out.push({ vm_id: vm.id, vm_ip: addr });
  }
  return out;
}

/** The existing member rows to remove; 431 for a VM the rule does not balance to. */
async function membersToRemove(ctx: CallContext, rule: IpRuleRow, params: MemberParams) {
  const db = ctx.app.store.db;
  const wanted = requested(params);
  const rows = await db
    .selectFrom('lb_members')
    .innerJoin('vms', 'vms.id', 'lb_members.vm_id')
    .select(['lb_members.rule_id', 'lb_members.vm_id', 'lb_members.vm_ip', 'lb_members.created', 'vms.uuid'])
    .where('lb_members.rule_id', '=', rule.id)
    .execute();
  const out: typeof rows = [];
  for (const [uuid, ips] of wanted) {
    const mine = rows.filter((r) => r.uuid === uuid && (ips.length === 0 || ips.includes(r.vm_ip)));
    if (mine.length === 0 || (ips.length > 0 && mine.length < ips.length))
      throw invalidParameter(`The instance id: ${uuid} is not configured for LB rule ${rule.uuid}`);
    out.push(...mine);
  }
  return out;
}

const memberParams = {
  id: p.uuid({ required: true, description: 'ID of the load balancer rule.' }),
  virtualmachineids: p.list({
    of: 'uuid',
    description:
      "Comma-separated IDs of the VMs to add or remove; each is balanced to on its address in the rule's network.",
  }),
  vmidipmap: p.map({
    description:
      "VMs with an address each (vmidipmap[0].vmid, vmidipmap[0].vmip); the address must be the VM's own in the rule's network. Combines with virtualmachineids.",
  }),
};

export const assignToLoadBalancerRule = defineCommand({
  name: 'assignToLoadBalancerRule',
  description:
    "Adds VMs of the rule's account and network to a load balancer rule and reloads the router's balancer; asynchronous, undone if the router refuses.",
  params: memberParams,
  event: {
    type: 'LB.ASSIGN.TO.RULE',
    description: (params) => `assigning to load balancer rule ${params.id}`,
  },
  async target(ctx, params) {
    const rule = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(rule);
    await membersToAdd(ctx, rule, params);
    return { type: 'FirewallRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const rule = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(rule);
    // Checked again in the job: a VM may have gone since the command was accepted.
    const members = await membersToAdd(ctx, rule, params);
    const now = app.clock.now();
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('lb_members')
        .values(members.map((m) => ({ rule_id: rule.id, ...m, created: now })))
        .execute();
      await tx.updateTable('ip_rules').set({ state: 'Add' }).where('id', '=', rule.id).execute();
    });
    await applyOrUndo(app, rule.network_id, `add the VMs to load balancer rule ${rule.name}`, async () => {
      await app.store.db.transaction().execute(async (tx) => {
        for (const m of members)
          await tx
            .deleteFrom('lb_members')
            .where('rule_id', '=', rule.id)
            .where('vm_id', '=', m.vm_id)
            .where('vm_ip', '=', m.vm_ip)
            .execute();
        await tx.updateTable('ip_rules').set({ state: rule.state }).where('id', '=', rule.id).execute();
      });
    });
    await settleState(app, rule.id);
    return success();
  },
});

export const removeFromLoadBalancerRule = defineCommand({
  name: 'removeFromLoadBalancerRule',
  description: "Removes VMs from a load balancer rule and reloads the router's balancer; asynchronous.",
  params: memberParams,
  event: {
    type: 'LB.REMOVE.FROM.RULE',
    description: (params) => `removing from load balancer rule ${params.id}`,
  },
  async target(ctx, params) {
    const rule = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(rule);
    await membersToRemove(ctx, rule, params);
    return { type: 'FirewallRule', id: rule.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const rule = await findLoadBalancer(ctx, params.id);
    checkNotRevoked(rule);
    const members = await membersToRemove(ctx, rule, params);
    await app.store.db.transaction().execute(async (tx) => {
      for (const m of members)
        await tx
          .deleteFrom('lb_members')
          .where('rule_id', '=', rule.id)
          .where('vm_id', '=', m.vm_id)
          .where('vm_ip', '=', m.vm_ip)
          .execute();
    });
    await applyOrUndo(
      app,
      rule.network_id,
      `remove the VMs from load balancer rule ${rule.name}`,
      async () => {
        await app.store.db
          .insertInto('lb_members')
          .values(
            members.map((m) => ({ rule_id: m.rule_id, vm_id: m.vm_id, vm_ip: m.vm_ip, created: m.created })),
          )
          .execute();
      },
    );
    await settleState(app, rule.id);
    return success();
  },
});

export const listLoadBalancerRuleInstances = defineCommand({
  name: 'listLoadBalancerRuleInstances',
  description:
    'Lists the VMs a load balancer rule sends traffic to or, with applied=false, those that could still be added; keyword matches VM names.',
  params: {
    ...listParams,
    id: p.uuid({ required: true, description: 'ID of the load balancer rule.' }),
    applied: p.boolean({
      description:
        "False lists the rule account's VMs in the rule's network that are not members yet; true or omitted lists the members.",
    }),
    lbvmips: p.boolean({
      description: 'Also answer, for each VM, the addresses the rule balances to (lbvmipaddresses).',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const rule = await findLoadBalancer(ctx, params.id);
    const members = db.selectFrom('lb_members').select('vm_id').where('rule_id', '=', rule.id);
    // applied=false: the VMs that could still be assigned (the rule's network and account).
    let q = db
      .selectFrom('vms')
      .where('vms.removed', 'is', null)
      .where('vms.state', 'not in', ['Destroyed', 'Expunging', 'Error', 'Unknown']);
    q =
      params.applied === false
        ? q
            .where('vms.account_id', '=', rule.account_id)
            .where('vms.id', 'not in', members)
            .where(
              'vms.id',
              'in',
              db
                .selectFrom('nics')
                .select('vm_id')
                .where('network_id', '=', rule.network_id)
                .where('removed', 'is', null)
                .where('vm_id', 'is not', null),
            )
        : q.where('vms.id', 'in', members);
    if (params.keyword) q = q.where(likeEscaped('vms.name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const columns = PRESENTED_VM_COLUMNS.map((c) => `vms.${c}` as const);
    const rows = await paginate(q.select(columns).orderBy('vms.id'), pageOf(app, params)).execute();
    const vms = await presentVms(ctx, rows);
    if (!params.lbvmips) {
      // Upstream answers the VMs under `loadbalancerruleinstance` (Ansible and libcloud read it);
      // the catalog's `lbrulevmidip` is the lbvmips=true form.
      return listBody(Number(count), 'loadbalancerruleinstance', vms);
    }
    const ips = rows.length
      ? await db
          .selectFrom('lb_members')
          .select(['vm_id', 'vm_ip'])
          .where('rule_id', '=', rule.id)
          .where(
            'vm_id',
            'in',
            rows.map((r) => r.id),
          )
          .execute()
      : [];
    return listResult(
      rows.map((r, i) => ({
        loadbalancerruleinstance: vms[i],
        lbvmipaddresses: ips.filter((m) => m.vm_id === r.id).map((m) => m.vm_ip),
      })),
      Number(count),
    );
  },
});

export const lbMemberCommands = [
  assignToLoadBalancerRule,
  removeFromLoadBalancerRule,
  listLoadBalancerRuleInstances,
];
