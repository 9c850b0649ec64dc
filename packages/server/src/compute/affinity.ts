/**
 * Affinity rules at placement time. A VM in a "host anti-affinity" group must not share a host
 * with the group's other running VMs; a VM in a "host affinity" group must run where the group's
 * running VMs run (anywhere when none runs). Starts of VMs that share a group are serialised
 * across the cloud, so two members starting at once cannot both pick the same (or different)
 * hosts before either is recorded as running.
 */
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { VmRow } from '../db/schema.ts';
import { ErrorCode, insufficientCapacity, toApiError } from '../errors.ts';
import { displayPath } from '../iam/domains.ts';
import { withClusterLock } from '../jobs/locks.ts';
import type { HostRequest, Placement } from './planner.ts';

export const ANTI_AFFINITY = 'host anti-affinity';
export const AFFINITY = 'host affinity';
export const AFFINITY_TYPES = [ANTI_AFFINITY, AFFINITY];

/** States in which a VM occupies its host. */
const ON_HOST = ['Starting', 'Running', 'Stopping', 'Migrating'];

export interface AffinityRules {
  groups: { id: number; name: string; type: string }[];
  /** Hosts anti-affinity excludes. */
  avoid: Set<number>;
  /** The host affinity pins the VM to. */
  hostId?: number;
}

export async function affinityRules(ctx: Pick<CallContext, 'app'>, vm: VmRow): Promise<AffinityRules> {
  const db = ctx.app.store.db;
  const groups = await db
    .selectFrom('affinity_group_vm_map as m')
    .innerJoin('affinity_groups as g', 'g.id', 'm.group_id')
    .select(['g.id', 'g.name', 'g.type'])
    .where('m.vm_id', '=', vm.id)
    .orderBy('g.id')
    .execute();
  const rules: AffinityRules = { groups, avoid: new Set() };
  if (groups.length === 0) return rules;
  const peers = await db
    .selectFrom('affinity_group_vm_map as m')
    .innerJoin('vms', 'vms.id', 'm.vm_id')
    .select(['m.group_id', 'vms.host_id'])
    .where(
      'm.group_id',
      'in',
      groups.map((g) => g.id),
    )
    .where('vms.id', '!=', vm.id)
    .where('vms.removed', 'is', null)
    .where('vms.state', 'in', ON_HOST)
    .where('vms.host_id', 'is not', null)
    .orderBy('vms.id')
    .execute();
  for (const g of groups) {
    const hosts = peers.filter((p) => p.group_id === g.id).map((p) => p.host_id!);
    if (g.type === ANTI_AFFINITY) for (const h of hosts) rules.avoid.add(h);
    else if (g.type === AFFINITY && hosts.length && rules.hostId === undefined) rules.hostId = hosts[0];
  }
  return rules;
}

/**
 * Plans with the rules applied: the caller's own avoid set and host choice are kept, and a plan
 * that fails (or a requested host the rules forbid) is a 533 naming the groups.
 */
export async function placeWithAffinity(
  rules: AffinityRules,
  req: HostRequest,
  reserve: (req: HostRequest) => Promise<Placement>,
): Promise<Placement> {
  if (rules.groups.length === 0) return reserve(req);
  const names = rules.groups.map((g) => `${g.name} (${g.type})`).join(', ');
  const refuse = (why: string) =>
    insufficientCapacity(
      `Unable to create a deployment for the VM: no host satisfies the rules of affinity group ${names}: ${why}`,
    );
  if (req.hostId !== undefined && rules.hostId !== undefined && req.hostId !== rules.hostId)
    throw refuse('the requested host is not the one its group runs on');
  if (req.hostId !== undefined && rules.avoid.has(req.hostId))
    throw refuse('the requested host already runs a VM of the group');
  const hostId = req.hostId ?? rules.hostId;
  if (hostId !== undefined && req.avoid.has(hostId))
    throw refuse("the group's host is excluded (it failed this start, or the VM is leaving it)");
  try {
    return await reserve({ ...req, hostId, avoid: new Set([...req.avoid, ...rules.avoid]) });
  } catch (e) {
    const err = toApiError(e);
    if (err.errorcode !== ErrorCode.INSUFFICIENT_CAPACITY) throw e;
    throw refuse(err.message);
  }
}

/** Affinity groups as CloudStack presents them, by group id, with their VMs' uuids. */
export async function presentGroups(
  ctx: Pick<CallContext, 'app'>,
  ids: number[],
): Promise<Map<number, object>> {
  if (ids.length === 0) return new Map();
  const db = ctx.app.store.db;
  const [rows, members] = await Promise.all([
    db
      .selectFrom('affinity_groups as g')
      .innerJoin('accounts', 'accounts.id', 'g.account_id')
      .innerJoin('domains', 'domains.id', 'g.domain_id')
      .selectAll('g')
      .select([
        'accounts.name as account',
        'domains.uuid as domainuuid',
        'domains.name as domain',
        'domains.path',
      ])
      .where('g.id', 'in', ids)
      .execute(),
    db
      .selectFrom('affinity_group_vm_map as m')
      .innerJoin('vms', 'vms.id', 'm.vm_id')
      .select(['m.group_id', 'vms.uuid'])
      .where('m.group_id', 'in', ids)
      .where('vms.removed', 'is', null)
      .orderBy('vms.id')
      .execute(),
  ]);
  return new Map(
    rows.map((g) => {
      const vms = members.filter((m) => m.group_id === g.id).map((m) => m.uuid);
      return [
        g.id,
        {
          id: g.uuid,
          name: g.name,
          description: g.description ?? undefined,
          type: g.type,
          account: g.account,
          domainid: g.domainuuid,
          domain: g.domain,
          domainpath: displayPath(g.path),
          ...(vms.length ? { virtualmachineIds: vms } : {}),
        },
      ];
    }),
  );
}

/** The `affinitygroup` arrays of a page of VMs. */
export async function presentVmAffinityGroups(
  ctx: Pick<CallContext, 'app'>,
  vmIds: number[],
): Promise<Map<number, object[]>> {
  const out = new Map<number, object[]>();
  if (vmIds.length === 0) return out;
  const links = await ctx.app.store.db
    .selectFrom('affinity_group_vm_map')
    .select(['vm_id', 'group_id'])
    .where('vm_id', 'in', vmIds)
    .orderBy('group_id')
    .execute();
  const groups = await presentGroups(ctx, [...new Set(links.map((l) => l.group_id))]);
  for (const l of links) {
    const g = groups.get(l.group_id);
    if (g) out.set(l.vm_id, [...(out.get(l.vm_id) ?? []), g]);
  }
  return out;
}

/**
 * Runs `fn` after every earlier start of a VM sharing one of its groups, on any management server:
 * the groups are held in cluster_locks (jobs/locks.ts) while the VM is placed and started.
 */
export async function withAffinityLock<T>(
  ctx: Pick<CallContext, 'app'>,
  vm: VmRow,
  fn: () => Promise<T>,
): Promise<T> {
  const groupIds = (
    await ctx.app.store.db
      .selectFrom('affinity_group_vm_map')
      .select('group_id')
      .where('vm_id', '=', vm.id)
      .orderBy('group_id')
      .execute()
  ).map((r) => r.group_id);
  if (groupIds.length === 0) return fn();
  return withClusterLock(
    ctx.app,
    groupIds.map((id) => `affinity:${id}`),
    fn,
  );
}

/** Records a VM's memberships (deploy, updateVMAffinityGroup) inside `tx`. */
export async function joinAffinityGroups(tx: Tx, vmId: number, groupIds: number[]): Promise<void> {
  for (const groupId of new Set(groupIds))
    await tx.insertInto('affinity_group_vm_map').values({ group_id: groupId, vm_id: vmId }).execute();
}

/** Drops a VM's memberships (expunge) inside `tx`. */
export async function leaveAffinityGroups(tx: Tx, vmId: number): Promise<void> {
  await tx.deleteFrom('affinity_group_vm_map').where('vm_id', '=', vmId).execute();
}
