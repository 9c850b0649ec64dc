/** Instance groups: named sets of an account's VMs (the VM's `group`). */

import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { findOwned, listOwned } from '../iam/owned.ts';
import { ownerFor } from '../projects/access.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';

/** The account's group of that name, created if missing (deploy and updateVirtualMachine take names). */
export async function groupNamed(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  account: AccountRow,
  name: string,
): Promise<number> {
  const found = await tx
    .selectFrom('instance_groups')
    .select('id')
    .where('account_id', '=', account.id)
    .where('name', '=', name)
    .executeTakeFirst();
  if (found) return found.id;
  return insertId(ctx.app.store, tx, 'instance_groups', {
    uuid: ctx.app.ids.uuid(),
    name,
    account_id: account.id,
    domain_id: account.domain_id,
    created: ctx.app.clock.now(),
  });
}

async function present(ctx: CallContext, ids: number[]): Promise<object[]> {
  if (ids.length === 0) return [];
  const rows = await ctx.app.store.db
    .selectFrom('instance_groups')
    .innerJoin('accounts', 'accounts.id', 'instance_groups.account_id')
    .innerJoin('domains', 'domains.id', 'instance_groups.domain_id')
    .select([
      'instance_groups.id',
      'instance_groups.uuid',
      'instance_groups.name',
      'instance_groups.created',
      'accounts.name as account',
      'domains.uuid as domainid',
      'domains.name as domain',
      'domains.path',
    ])
    .where('instance_groups.id', 'in', ids)
    .orderBy('instance_groups.id')
    .execute();
  return rows.map((r) => ({
    id: r.uuid,
    name: r.name,
    account: r.account,
    domainid: r.domainid,
    domain: r.domain,
    domainpath: displayPath(r.path),
    created: formatDate(r.created),
  }));
}

async function findGroup(ctx: CallContext, uuid: string) {
  return findOwned(ctx, 'instance_groups', uuid, { noun: 'instance group' });
}

export const createInstanceGroup = defineCommand({
  name: 'createInstanceGroup',
  description:
    "Creates a named instance group for organising an account's VMs; the name must be new in that account.",
  params: {
    name: p.string({ required: true, description: 'Name of the group, unique in the owning account.' }),
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
  async handler(ctx, params) {
    const { account: owner } = await ownerFor(ctx, params);
    const id = await ctx.app.store.db.transaction().execute(async (tx) => {
      const clash = await tx
        .selectFrom('instance_groups')
        .select('id')
        .where('account_id', '=', owner.id)
        .where('name', '=', params.name)
        .executeTakeFirst();
      if (clash)
        throw invalidParameter(
          `Unable to create instance group: a group named ${params.name} already exists for account ${owner.name}`,
        );
      return groupNamed(ctx, tx, owner, params.name);
    });
    return (await present(ctx, [id]))[0];
  },
});

export const listInstanceGroups = defineCommand({
  name: 'listInstanceGroups',
  description: 'Lists the instance groups the caller may see.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the group with this UUID.' }),
    name: p.string({ description: 'Only groups with exactly this name.' }),
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
    let q = app.store.db.selectFrom('instance_groups');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
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
      rows: (scoped, page) => paginate(scoped.select('id').orderBy('id'), page).execute(),
      present: (rows) =>
        present(
          ctx,
          rows.map((r) => r.id),
        ),
    });
  },
});

export const updateInstanceGroup = defineCommand({
  name: 'updateInstanceGroup',
  description: 'Renames an instance group; the new name must be free in the owning account.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the group to rename.' }),
    name: p.string({ description: 'New name; when omitted nothing changes.' }),
  },
  async handler(ctx, params) {
    const g = await findGroup(ctx, params.id);
    if (params.name && params.name !== g.name) {
      const clash = await ctx.app.store.db
        .selectFrom('instance_groups')
        .select('id')
        .where('account_id', '=', g.account_id)
        .where('name', '=', params.name)
        .executeTakeFirst();
      if (clash) throw invalidParameter(`A group named ${params.name} already exists`);
      await ctx.app.store.db
        .updateTable('instance_groups')
        .set({ name: params.name })
        .where('id', '=', g.id)
        .execute();
    }
    return (await present(ctx, [g.id]))[0];
  },
});

export const deleteInstanceGroup = defineCommand({
  name: 'deleteInstanceGroup',
  description: 'Deletes an instance group; its VMs are kept and simply no longer belong to a group.',
  params: { id: p.uuid({ required: true, description: 'UUID of the group to delete.' }) },
  async handler(ctx, params) {
    const g = await findGroup(ctx, params.id);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx.updateTable('vms').set({ group_id: null }).where('group_id', '=', g.id).execute();
      await tx.deleteFrom('instance_groups').where('id', '=', g.id).execute();
    });
    return success();
  },
});

export const instanceGroupCommands = [
  createInstanceGroup,
  listInstanceGroups,
  updateInstanceGroup,
  deleteInstanceGroup,
];
