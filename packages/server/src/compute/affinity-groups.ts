/**
 * Affinity groups: an account's named placement rules over its VMs (see affinity.ts for how the
 * planner applies them). Deleting a group removes its memberships, as upstream does.
 */

import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { AccountRow, AffinityGroupRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent, recordEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { checkRowAccess, listOwned } from '../iam/owned.ts';
import { ownerFor, projectOwner } from '../projects/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { AFFINITY_TYPES, joinAffinityGroups, presentGroups } from './affinity.ts';
import { presentVms } from './vm-presenter.ts';
import { wrongState } from './vm-state.ts';
import { findVm, reloadVm } from './vms.ts';

/**
 * The owner's groups named by ids or names (mutually exclusive, as upstream); 431 for any that
 * is missing or belongs to another account.
 */
export async function resolveAffinityGroups(
  ctx: Pick<CallContext, 'app'>,
  owner: AccountRow,
  by: { ids?: string[]; names?: string[] },
): Promise<AffinityGroupRow[]> {
  if (by.ids?.length && by.names?.length)
    throw invalidParameter(
      'affinitygroupids parameter is mutually exclusive with affinitygroupnames parameter',
    );
  const wanted = by.ids?.length ? by.ids : (by.names ?? []);
  if (wanted.length === 0) return [];
  const column = by.ids?.length ? 'uuid' : 'name';
  const rows = await ctx.app.store.db
    .selectFrom('affinity_groups')
    .selectAll()
    .where('account_id', '=', owner.id)
    .where(column, 'in', wanted)
    .execute();
  const missing = wanted.filter((w) => !rows.some((r) => r[column] === w));
  if (missing.length)
    throw invalidParameter(`Unable to find affinity group ${missing.join(', ')} for account ${owner.name}`);
  return rows;
}

async function findGroup(
  ctx: CallContext,
  params: { id?: string; name?: string; account?: string; domainid?: string; projectid?: string },
): Promise<AffinityGroupRow> {
  if (!params.id && !params.name)
    throw invalidParameter('Either the affinity group id or its name must be given');
  if (params.id && params.name) throw invalidParameter('id and name are mutually exclusive');
  let q = ctx.app.store.db.selectFrom('affinity_groups').selectAll();
  // A project named is the group's owner, with an id too (the caller must be able to use it).
  const project = params.id ? await projectOwner(ctx, params, 'find') : undefined;
  if (project) q = q.where('account_id', '=', project.id);
  if (params.id) q = q.where('uuid', '=', params.id);
  else {
    const { account: owner } = await ownerFor(ctx, params, 'find');
    q = q.where('name', '=', params.name!).where('account_id', '=', owner.id);
  }
  const g = await q.executeTakeFirst();
  if (!g) throw invalidParameter(`Unable to find affinity group ${params.id ?? params.name}`);
  await checkRowAccess(ctx, g);
  return g;
}

export const createAffinityGroup = defineCommand({
  name: 'createAffinityGroup',
  description:
    'Creates an affinity group that keeps its member VMs on one host or on different hosts. Asynchronous; the name must be new in the owning account.',
  params: {
    name: p.string({ required: true, description: 'Name of the group, unique within the owning account.' }),
    type: p.string({
      required: true,
      description:
        "Placement rule: 'host anti-affinity' (members on different hosts) or 'host affinity' (members on one host); case-insensitive.",
    }),
    description: p.string({ description: 'Free text kept with the group.' }),
    account: p.string({
      description:
        "Name of the account that will own the group (admins and domain admins); defaults to the caller's.",
    }),
    domainid: p.uuid({
      description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
    }),
    projectid: p.uuid({
      description: 'Project to own the group (you must be a member, it must be Active); not with account.',
    }),
  },
  event: { type: 'AG.CREATE', description: (params) => `creating affinity group ${params.name}` },
  async create(ctx, params) {
    const type = AFFINITY_TYPES.find((t) => t === params.type.toLowerCase());
    if (!type)
      throw invalidParameter(
        `Unable to create affinity group, invalid affinity group type ${params.type}; valid types are ${AFFINITY_TYPES.join(', ')}`,
      );
    const name = params.name.trim();
    if (!name) throw invalidParameter('The affinity group name must not be empty');
    const { account: owner } = await ownerFor(ctx, params);
    const uuid = await ctx.app.store.db.transaction().execute(async (tx) => {
      const clash = await tx
        .selectFrom('affinity_groups')
        .select('id')
        .where('account_id', '=', owner.id)
        .where('name', '=', name)
        .executeTakeFirst();
      if (clash)
        throw invalidParameter(`Unable to create affinity group, a group with name ${name} already exists.`);
      const uuid = ctx.app.ids.uuid();
      await insertId(ctx.app.store, tx, 'affinity_groups', {
        uuid,
        name,
        description: params.description ?? null,
        type,
        account_id: owner.id,
        domain_id: owner.domain_id,
        created: ctx.app.clock.now(),
      });
      await logEvent(ctx, tx, {
        type: 'AG.CREATE',
        description: `created affinity group ${name} (${type})`,
        resourceType: 'AffinityGroup',
        resourceId: uuid,
      });
      return uuid;
    });
    return { type: 'AffinityGroup', id: uuid };
  },
  async handler(ctx, _params, created) {
    const g = await findGroup(ctx, { id: created!.id });
    return (await presentGroups(ctx, [g.id])).get(g.id)!;
  },
});

export const listAffinityGroups = defineCommand({
  name: 'listAffinityGroups',
  description: 'Lists affinity groups the caller may see, or those a given VM belongs to.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the group with this UUID.' }),
    name: p.string({ description: 'Only groups with exactly this name.' }),
    type: p.string({
      description:
        "Only groups of this type, such as 'host anti-affinity', 'host affinity' or 'ExplicitDedication'; case-insensitive.",
    }),
    virtualmachineid: p.uuid({ description: 'Only the groups this VM is a member of, whoever owns them.' }),
    account: p.string({
      description:
        "Only groups of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only groups in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include groups of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include groups of every account they may see.',
    }),
    projectid: p.projectScope({
      description:
        "Only this project's groups (you must be a member or administer it); -1: those of every project you may see.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('affinity_groups');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    // As upstream: the stored type compared without regard to case ('ExplicitDedication' included).
    const type = params.type?.toLowerCase();
    if (type) q = q.where((eb) => eb(eb.fn('lower', ['type']), '=', type));
    if (params.virtualmachineid) {
      // Checks the caller may see the VM (431 for an unknown one).
      const vm = await findVm(ctx, params.virtualmachineid);
      q = q.where(
        'id',
        'in',
        db.selectFrom('affinity_group_vm_map').select('group_id').where('vm_id', '=', vm.id),
      );
    }
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    return listOwned(ctx, params, q, {
      owner: { account: 'account_id', domain: 'domain_id' },
      // A VM's groups are listed whoever owns it, once findVm above has checked the caller may see it.
      scope: params.virtualmachineid ? { kind: 'all' } : undefined,
      rows: (scoped, page) => paginate(scoped.select('id').orderBy('id'), page).execute(),
      present: async (rows) => {
        const groups = await presentGroups(
          ctx,
          rows.map((r) => r.id),
        );
        return rows.map((r) => groups.get(r.id)!);
      },
    });
  },
});

export const deleteAffinityGroup = defineCommand({
  name: 'deleteAffinityGroup',
  description:
    'Deletes an affinity group; its VMs simply stop being members, and dedications made through the group are released. Asynchronous.',
  params: {
    id: p.uuid({ description: 'UUID of the group to delete; give this or name, not both.' }),
    name: p.string({
      description:
        "Name of the group to delete, looked up in the caller's account or the one given with account.",
    }),
    account: p.string({ description: 'With name: the account owning the group.' }),
    domainid: p.uuid({ description: 'With name and account: the domain of that account.' }),
    projectid: p.uuid({
      description: 'With name: the project whose group is meant, instead of account.',
    }),
  },
  event: {
    type: 'AG.DELETE',
    description: (params) => `deleting affinity group ${params.id ?? params.name}`,
  },
  async target(ctx, params) {
    const g = await findGroup(ctx, params);
    return { type: 'AffinityGroup', id: g.uuid };
  },
  async handler(ctx, params) {
    const g = await findGroup(ctx, params);
    // As upstream: the group's VMs simply stop being members.
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('affinity_group_vm_map').where('group_id', '=', g.id).execute();
      // As upstream, deleting an ExplicitDedication group releases the resources dedicated through it.
      await tx.deleteFrom('dedicated_resources').where('affinity_group_id', '=', g.id).execute();
      await tx.deleteFrom('affinity_groups').where('id', '=', g.id).execute();
      await logEvent(ctx, tx, {
        type: 'AG.DELETE',
        description: `deleted affinity group ${g.name}`,
        resourceType: 'AffinityGroup',
        resourceId: g.uuid,
      });
    });
    return success();
  },
});

export const updateVMAffinityGroup = defineCommand({
  name: 'updateVMAffinityGroup',
  description:
    "Replaces the affinity groups of a Stopped VM with those given (an empty list removes it from all). Asynchronous; the groups must belong to the VM's owner.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the Stopped VM.' }),
    affinitygroupids: p.list({
      of: 'uuid',
      description: "UUIDs of the owner's groups the VM should be in; not with affinitygroupnames.",
    }),
    affinitygroupnames: p.list({
      description: "Names of the owner's groups the VM should be in; not with affinitygroupids.",
    }),
  },
  event: { type: 'VM.AG.UPDATE', description: (params) => `updating the affinity groups of VM ${params.id}` },
  async target(ctx, params) {
    await findVm(ctx, params.id);
    if (params.affinitygroupids === undefined && params.affinitygroupnames === undefined)
      throw invalidParameter('Either affinitygroupids or affinitygroupnames must be given');
    return { type: 'VirtualMachine', id: params.id };
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    if (vm.state !== 'Stopped') throw wrongState(vm, 'update the affinity groups of');
    const owner = await ctx.app.store.db
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', vm.account_id)
      .executeTakeFirstOrThrow();
    const groups = await resolveAffinityGroups(ctx, owner, {
      ids: params.affinitygroupids,
      names: params.affinitygroupnames,
    });
    await ctx.app.store.db.transaction().execute(async (tx) => {
      // The VM must still be Stopped when its memberships change.
      const still = await tx
        .selectFrom('vms')
        .select('state')
        .where('id', '=', vm.id)
        .executeTakeFirstOrThrow();
      if (still.state !== 'Stopped')
        throw wrongState({ name: vm.name, state: still.state }, 'update the affinity groups of');
      await tx.deleteFrom('affinity_group_vm_map').where('vm_id', '=', vm.id).execute();
      await joinAffinityGroups(
        tx,
        vm.id,
        groups.map((g) => g.id),
      );
      await recordEvent(
        ctx,
        tx,
        { userId: ctx.caller.user.id, accountId: vm.account_id, domainId: vm.domain_id },
        {
          type: 'VM.AG.UPDATE',
          description: `VM ${vm.name} is now in affinity groups: ${groups.map((g) => g.name).join(', ') || 'none'}`,
          resourceType: 'VirtualMachine',
          resourceId: vm.uuid,
        },
      );
    });
    return (await presentVms(ctx, [await reloadVm(ctx, vm.id)]))[0];
  },
});

export const listAffinityGroupTypes = defineCommand({
  name: 'listAffinityGroupTypes',
  description:
    "Lists the affinity group types createAffinityGroup accepts: 'host anti-affinity' and 'host affinity'.",
  params: {
    keyword: p.string({
      description: 'Accepted for compatibility; the short list is always returned whole.',
    }),
    page: p.integer({ description: 'Accepted for compatibility; the list is not paged.' }),
    pagesize: p.integer({ description: 'Accepted for compatibility; the list is not paged.' }),
  },
  async handler() {
    return listResult(
      AFFINITY_TYPES.map((type) => ({ type })),
      AFFINITY_TYPES.length,
    );
  },
});

/** A deleted account's groups go after its VMs (stage 0), which held the memberships. */
onAccountDelete(async (ctx, account) => {
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx
      .deleteFrom('affinity_group_vm_map')
      .where(
        'group_id',
        'in',
        tx.selectFrom('affinity_groups').select('id').where('account_id', '=', account.id),
      )
      .execute();
    await tx.deleteFrom('affinity_groups').where('account_id', '=', account.id).execute();
  });
});

export const affinityGroupCommands = [
  createAffinityGroup,
  listAffinityGroups,
  deleteAffinityGroup,
  updateVMAffinityGroup,
  listAffinityGroupTypes,
];
