/**
 * VPC network ACL lists: createNetworkACLList, updateNetworkACLList, deleteNetworkACLList,
 * listNetworkACLLists and replaceNetworkACLList (which list a tier or private gateway uses). Their
 * items are in vpc-acl-items.ts; what the router is told is built in vpc-routing.ts.
 *
 * A list belongs to one VPC, or (vpc_id null) is global: upstream's built-in `default_allow` and
 * `default_deny`, which nobody may change, and lists a root admin creates without a VPC. Global
 * lists are visible to everyone and usable on any VPC's tiers.
 *
 * Every change that alters what a router enforces is applied at once to the running router of
 * each VPC using the list; when a router refuses or cannot be reached the change is undone in the
 * records (and the routers already told are told again), so nothing stays half-applied.
 */

import type { Transaction } from 'kysely';
import type { CallContext } from '../context.ts';
import type { Database, NetworkRow, VpcRow } from '../db/schema.ts';
import { internalError, invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { checkRowAccess, listOwned } from '../iam/owned.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { withNetworkLock } from './routers.ts';
import type { NetworkAclListRow } from './vpc-acl-tables.ts';
import { replaceGatewayAcl } from './vpc-gateways.ts';
import { applyVpcRouter } from './vpc-routers.ts';

export const DEFAULT_ACLS = ['default_allow', 'default_deny'];

export const isDefaultAcl = (acl: NetworkAclListRow) =>
  acl.vpc_id === null && DEFAULT_ACLS.includes(acl.name);

/** An ACL list by uuid that the caller may see (431 when there is none, 531 for another's VPC). */
export async function findAclList(ctx: CallContext, uuid: string): Promise<NetworkAclListRow> {
  const acl = await ctx.app.store.db
    .selectFrom('network_acl_lists')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!acl) throw invalidParameter(`Unable to find specified ACL with id ${uuid}`);
  if (acl.vpc_id !== null) await checkRowAccess(ctx, await vpcOfAcl(ctx, acl));
  return acl;
}

async function vpcOfAcl(ctx: CallContext, acl: NetworkAclListRow): Promise<VpcRow> {
  const vpc = await ctx.app.store.db
    .selectFrom('vpcs')
    .selectAll()
    .where('id', '=', acl.vpc_id!)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!vpc) throw invalidParameter(`Unable to find specified VPC associated with the ACL [${acl.uuid}].`);
  return vpc;
}

/**
 * A list the caller may change: never a default one; a global one by root admins only.
 * `what` is upstream's wording for the refusal of a global list ("delete global ACLs" …).
 */
export async function findEditableAclList(
  ctx: CallContext,
  uuid: string,
  what: string,
  defaultRefusal = 'Default ACL cannot be modified',
): Promise<NetworkAclListRow> {
  const acl = await findAclList(ctx, uuid);
  if (isDefaultAcl(acl)) throw invalidParameter(defaultRefusal);
  if (acl.vpc_id === null && ctx.caller.roleKind !== 'admin')
    throw permissionDenied(`Only Root Admin can ${what}.`);
  return acl;
}

/** The list a tier or private gateway of `vpc` may use: its VPC's own, or a global one. */
export function checkAclForVpc(acl: NetworkAclListRow, vpc: VpcRow, what: string): void {
  if (acl.vpc_id !== null && acl.vpc_id !== vpc.id)
    throw invalidParameter(`${what} and ACL: ${acl.uuid} do not belong to the same VPC`);
}

/** The VPCs whose routers enforce the list: those of tiers and private gateways using it. */
async function vpcsUsing(ctx: CallContext, aclId: number): Promise<number[]> {
  const db = ctx.app.store.db;
  const [tiers, gateways] = await Promise.all([
    db
      .selectFrom('networks')
      .select('vpc_id')
      .where('network_acl_id', '=', aclId)
      .where('removed', 'is', null)
      .execute(),
    db
      .selectFrom('vpc_private_gateways')
      .select('vpc_id')
      .where('network_acl_id', '=', aclId)
      .where('removed', 'is', null)
      .execute(),
  ]);
  return [...new Set([...tiers.map((t) => t.vpc_id!), ...gateways.map((g) => g.vpc_id)])];
}

/** Sends each VPC's running router its whole configuration; the first refusal is thrown. */
export async function applyVpcs(ctx: CallContext, vpcIds: number[]): Promise<void> {
  for (const id of vpcIds) await applyVpcRouter(ctx.app, id);
}

/**
 * Changes a list's items (`change`, in a transaction holding the list row's lock) and applies it
 * to every router enforcing the list; if one refuses, the items are put back as they were.
 */
export async function changeAclItems<T>(
  ctx: CallContext,
  acl: NetworkAclListRow,
  change: (tx: AclTx) => Promise<T>,
): Promise<T> {
  const { app } = ctx;
  return withNetworkLock(app, aclLockKey(acl.id), async () => {
    const before = await app.store.db
      .selectFrom('network_acl_items')
      .selectAll()
      .where('acl_id', '=', acl.id)
      .execute();
    const result = await app.store.db.transaction().execute(async (tx) => {
      await lockAcl(tx, acl.id);
      return change(tx);
    });
    await applyAclOrUndo(ctx, acl, () =>
      app.store.db.transaction().execute(async (tx) => {
        await tx.deleteFrom('network_acl_items').where('acl_id', '=', acl.id).execute();
        if (before.length) await tx.insertInto('network_acl_items').values(before).execute();
      }),
    );
    return result;
  });
}

/** In-process lock of one list's changes (the list row's lock serialises them across servers). */
export const aclLockKey = (aclId: number) => `acl-${aclId}`;

/**
 * Sends the list as the records now have it to every running router enforcing it. When one
 * refuses or cannot be reached, `undo` puts the records back, the routers are told again (best
 * effort: the failing one may still be unreachable), and it fails.
 */
export async function applyAclOrUndo(
  ctx: CallContext,
  acl: NetworkAclListRow,
  undo: () => Promise<unknown>,
): Promise<void> {
  const vpcs = await vpcsUsing(ctx, acl.id);
  try {
    await applyVpcs(ctx, vpcs);
  } catch (err) {
    await undo();
    await applyVpcs(ctx, vpcs).catch((again: Error) =>
      ctx.app.log.warn({ acl: acl.uuid, err: again.message }, 'ACL could not be restored on a VPC router'),
    );
    throw err;
  }
}

export type AclTx = Transaction<Database>;

/** Serializes changes to one list's items across management servers (the list row's lock). */
export async function lockAcl(tx: AclTx, aclId: number): Promise<void> {
  await tx
    .updateTable('network_acl_lists')
    .set((eb) => ({ name: eb.ref('name') }))
    .where('id', '=', aclId)
    .execute();
}

async function presentAclLists(ctx: CallContext, rows: NetworkAclListRow[]): Promise<object[]> {
  const vpcIds = [...new Set(rows.flatMap((r) => (r.vpc_id !== null ? [r.vpc_id] : [])))];
  const vpcs = vpcIds.length
    ? await ctx.app.store.db
        .selectFrom('vpcs')
        .select(['id', 'uuid', 'name'])
        .where('id', 'in', vpcIds)
        .execute()
    : [];
  return rows.map((r) => {
    const vpc = vpcs.find((v) => v.id === r.vpc_id);
    return {
      id: r.uuid,
      name: r.name,
      description: r.description ?? undefined,
      vpcid: vpc?.uuid,
      vpcname: vpc?.name,
      fordisplay: r.for_display === 1,
    };
  });
}

export const createNetworkACLList = defineCommand({
  name: 'createNetworkACLList',
  description:
    "Creates an empty network ACL list for a VPC's tiers and private gateways; without vpcid a root administrator creates a global list any VPC may use. Asynchronous.",
  params: {
    name: p.string({ required: true, description: 'Name of the list; must not be blank.' }),
    description: p.string({ description: 'Free-text description of the list; defaults to its name.' }),
    vpcid: p.uuid({
      description: 'VPC the list belongs to. Without it the list is global (root administrators only).',
    }),
    fordisplay: p.boolean({ description: 'Whether end users see the list; defaults to true.' }),
  },
  event: { type: 'NETWORK.ACL.CREATE', description: (params) => `creating network ACL list ${params.name}` },
  // The list is made before the job runs, so its id comes back with the job id (as upstream's).
  async create(ctx, params): Promise<JobTarget> {
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Network ACL list name must not be empty');
    let vpc: VpcRow | undefined;
    if (params.vpcid) {
      vpc = await ctx.app.store.db
        .selectFrom('vpcs')
        .selectAll()
        .where('uuid', '=', params.vpcid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!vpc) throw invalidParameter(`Unable to find VPC with ID [${params.vpcid}].`);
      await checkRowAccess(ctx, vpc);
    } else if (ctx.caller.roleKind !== 'admin')
      throw permissionDenied('Only Root Admin can create global ACLs.');
    else if (DEFAULT_ACLS.includes(name))
      throw invalidParameter(`Network ACL list name ${name} is reserved for a default list`);
    const uuid = ctx.app.ids.uuid();
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('network_acl_lists')
        .values({
          uuid,
          name,
          description: params.description ?? name,
          vpc_id: vpc?.id ?? null,
          for_display: params.fordisplay === false ? 0 : 1,
          created: ctx.app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.ACL.CREATE',
        description: `created network ACL list ${name}${vpc ? ` for VPC ${vpc.name}` : ' (global)'}`,
        resourceType: 'NetworkAcl',
        resourceId: uuid,
      });
    });
    return { type: 'NetworkAcl', id: uuid };
  },
  async handler(ctx, _params, created) {
    const row = await ctx.app.store.db
      .selectFrom('network_acl_lists')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    return (await presentAclLists(ctx, [row]))[0]!;
  },
});

const aclTarget = async (ctx: CallContext, params: { id: string }): Promise<JobTarget> => ({
  type: 'NetworkAcl',
  id: (await findAclList(ctx, params.id)).uuid,
});

export const updateNetworkACLList = defineCommand({
  name: 'updateNetworkACLList',
  // The catalog says success; upstream answers the list (as its own response examples show).
  objectName: 'networkacllist',
  responseShape: 'object',
  description:
    'Renames a network ACL list or changes its description or visibility; the built-in lists cannot be changed. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the list to update.' }),
    name: p.string({ description: 'New name; a blank one is ignored.' }),
    description: p.string({ description: 'New description; a blank one is ignored.' }),
    fordisplay: p.boolean({ description: 'Whether end users see the list.' }),
    customid: p.string({
      adminOnly: true,
      description: 'A new ID for the list (root administrators only); must not be in use.',
    }),
  },
  event: { type: 'NETWORK.ACL.UPDATE', description: (params) => `updating network ACL list ${params.id}` },
  target: aclTarget,
  async handler(ctx, params) {
    const acl = await findEditableAclList(ctx, params.id, 'update a global ACL');
    const name = params.name?.trim() || undefined;
    const description = params.description?.trim() || undefined;
    const customId = ctx.caller.roleKind === 'admin' ? params.customid?.trim() || undefined : undefined;
    if (customId) {
      const taken = await ctx.app.store.db
        .selectFrom('network_acl_lists')
        .select('id')
        .where('uuid', '=', customId)
        .executeTakeFirst();
      if (taken && taken.id !== acl.id) throw invalidParameter(`ID ${customId} is already in use`);
    }
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('network_acl_lists')
        .set({
          ...(name ? { name } : {}),
          ...(description ? { description } : {}),
          ...(params.fordisplay !== undefined ? { for_display: params.fordisplay ? 1 : 0 } : {}),
          ...(customId ? { uuid: customId } : {}),
        })
        .where('id', '=', acl.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.ACL.UPDATE',
        description: `updated network ACL list ${name ?? acl.name}`,
        resourceType: 'NetworkAcl',
        resourceId: customId ?? acl.uuid,
      });
    });
    const row = await ctx.app.store.db
      .selectFrom('network_acl_lists')
      .selectAll()
      .where('id', '=', acl.id)
      .executeTakeFirstOrThrow();
    return (await presentAclLists(ctx, [row]))[0]!;
  },
});

export const deleteNetworkACLList = defineCommand({
  name: 'deleteNetworkACLList',
  description:
    'Deletes a network ACL list and its items; refused for the built-in lists and for a list a tier or private gateway still uses. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the list to delete.' }) },
  event: { type: 'NETWORK.ACL.DELETE', description: (params) => `deleting network ACL list ${params.id}` },
  target: aclTarget,
  async handler(ctx, params) {
    const acl = await findEditableAclList(
      ctx,
      params.id,
      'delete global ACLs',
      'Default ACL cannot be removed',
    );
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await lockAcl(tx, acl.id);
      const tiers = await tx
        .selectFrom('networks')
        .select('id')
        .where('network_acl_id', '=', acl.id)
        .where('removed', 'is', null)
        .execute();
      if (tiers.length)
        throw internalError(
          `ACL is still associated with ${tiers.length} tier(s). Cannot delete network ACL: ${acl.uuid}`,
        );
      const gateways = await tx
        .selectFrom('vpc_private_gateways')
        .select('id')
        .where('network_acl_id', '=', acl.id)
        .where('removed', 'is', null)
        .execute();
      if (gateways.length)
        throw internalError(
          `ACL is still associated with ${gateways.length} private gateway(s). Cannot delete network ACL: ${acl.uuid}`,
        );
      await tx.deleteFrom('network_acl_items').where('acl_id', '=', acl.id).execute();
      await tx.deleteFrom('network_acl_lists').where('id', '=', acl.id).execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.ACL.DELETE',
        description: `deleted network ACL list ${acl.name}`,
        resourceType: 'NetworkAcl',
        resourceId: acl.uuid,
      });
    });
    return success();
  },
});

export const listNetworkACLLists = defineCommand({
  name: 'listNetworkACLLists',
  description:
    'Lists network ACL lists: the built-in and global ones, and those of the VPCs the caller may see.',
  params: {
    id: p.uuid({ description: 'Only the list with this ID.' }),
    name: p.string({ description: 'Only lists with exactly this name.' }),
    vpcid: p.uuid({ description: "Only this VPC's lists (and the global ones)." }),
    networkid: p.uuid({ description: 'Only the list this tier uses.' }),
    fordisplay: p.boolean({ description: 'Only lists shown to end users (true) or hidden (false).' }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db
      .selectFrom('network_acl_lists')
      .leftJoin('vpcs', 'vpcs.id', 'network_acl_lists.vpc_id')
      .where((eb) => eb.or([eb('network_acl_lists.vpc_id', 'is', null), eb('vpcs.removed', 'is', null)]));
    if (params.id) q = q.where('network_acl_lists.uuid', '=', params.id);
    if (params.name) q = q.where('network_acl_lists.name', '=', params.name);
    if (params.fordisplay !== undefined)
      q = q.where('network_acl_lists.for_display', '=', params.fordisplay ? 1 : 0);
    if (params.vpcid) {
      const vpc = await db.selectFrom('vpcs').selectAll().where('uuid', '=', params.vpcid).executeTakeFirst();
      if (!vpc || vpc.removed !== null) throw invalidParameter('Unable to find VPC');
      await checkRowAccess(ctx, vpc);
      q = q.where((eb) =>
        eb.or([eb('network_acl_lists.vpc_id', '=', vpc.id), eb('network_acl_lists.vpc_id', 'is', null)]),
      );
    }
    if (params.networkid) {
      const tier = await db
        .selectFrom('networks')
        .select('network_acl_id')
        .where('uuid', '=', params.networkid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!tier) throw invalidParameter(`Unable to find network by id ${params.networkid}`);
      q = q.where('network_acl_lists.id', '=', tier.network_acl_id ?? -1);
    }
    if (params.keyword) {
      const pattern = `%${escapeLike(params.keyword)}%`;
      q = q.where((eb) =>
        eb.or([
          likeEscaped('network_acl_lists.name', pattern, likeOp(ctx)),
          likeEscaped('network_acl_lists.description', pattern, likeOp(ctx)),
        ]),
      );
    }
    return listOwned(ctx, params, q, {
      owner: { account: 'vpcs.account_id', domain: 'vpcs.domain_id' },
      // Built-in and global lists are everyone's to see and use.
      alsoVisible: (eb) => eb('network_acl_lists.vpc_id', 'is', null),
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('network_acl_lists').orderBy('network_acl_lists.id'),
          page,
        ).execute() as Promise<NetworkAclListRow[]>,
      present: (rows) => presentAclLists(ctx, rows),
    });
  },
});

export const replaceNetworkACLList = defineCommand({
  name: 'replaceNetworkACLList',
  description:
    "Makes a tier or a private gateway of a VPC use another network ACL list (its VPC's own, a global or a built-in one); the VPC's router enforces it at once. Asynchronous.",
  params: {
    aclid: p.uuid({ required: true, description: 'ID of the list to use.' }),
    networkid: p.uuid({ description: 'The tier that is to use the list (or gatewayid).' }),
    gatewayid: p.uuid({ description: 'The private gateway that is to use the list (or networkid).' }),
  },
  event: {
    type: 'NETWORK.ACL.REPLACE',
    description: (params) => `replacing network ACL list with ${params.aclid}`,
  },
  async handler(ctx, params) {
    if ((params.networkid === undefined) === (params.gatewayid === undefined))
      throw invalidParameter(
        'Network ID and private gateway ID cannot be specified together, and one of them is required',
      );
    const acl = await findAclList(ctx, params.aclid);
    if (params.gatewayid) {
      await replaceGatewayAcl(ctx, params.gatewayid, acl);
      return success();
    }
    const tier = await ctx.app.store.db
      .selectFrom('networks')
      .selectAll()
      .where('uuid', '=', params.networkid!)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!tier) throw invalidParameter('Unable to find specified Network');
    await checkRowAccess(ctx, tier);
    if (tier.vpc_id === null) throw invalidParameter(`Network is not part of a VPC: ${tier.uuid}`);
    const vpc = await ctx.app.store.db
      .selectFrom('vpcs')
      .selectAll()
      .where('id', '=', tier.vpc_id)
      .executeTakeFirstOrThrow();
    checkAclForVpc(acl, vpc, `Network: ${tier.uuid}`);
    await setTierAcl(ctx, tier, acl);
    return success();
  },
});

/** Points a tier at a list and applies it; on a router's refusal the tier keeps its old list. */
async function setTierAcl(ctx: CallContext, tier: NetworkRow, acl: NetworkAclListRow): Promise<void> {
  const { app } = ctx;
  const previous = tier.network_acl_id;
  await app.store.db.transaction().execute(async (tx) => {
    await tx.updateTable('networks').set({ network_acl_id: acl.id }).where('id', '=', tier.id).execute();
    await logEvent(ctx, tx, {
      type: 'NETWORK.ACL.REPLACE',
      description: `network ${tier.name} now uses network ACL list ${acl.name}`,
      resourceType: 'Network',
      resourceId: tier.uuid,
    });
  });
  try {
    await applyVpcRouter(app, tier.vpc_id!);
  } catch (err) {
    await app.store.db
      .updateTable('networks')
      .set({ network_acl_id: previous })
      .where('id', '=', tier.id)
      .execute();
    await applyVpcRouter(app, tier.vpc_id!).catch(() => undefined);
    throw err;
  }
}

/**
 * createNetworkACL with the networkid of a tier without a list: a list made for the tier (named
 * as upstream names it) and given to it. An empty list filters as no list does, so the router
 * needs nothing until the item is added.
 */
export async function createNetworkACLListFor(
  ctx: CallContext,
  tier: NetworkRow,
): Promise<NetworkAclListRow> {
  const vpc = await ctx.app.store.db
    .selectFrom('vpcs')
    .selectAll()
    .where('id', '=', tier.vpc_id!)
    .executeTakeFirstOrThrow();
  const name = `VPC_${vpc.name}_Tier_${tier.name}_ACL_${tier.uuid}`;
  const uuid = ctx.app.ids.uuid();
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx
      .insertInto('network_acl_lists')
      .values({
        uuid,
        name,
        description: `ACL for ${name}`,
        vpc_id: vpc.id,
        for_display: 1,
        created: ctx.app.clock.now(),
      })
      .execute();
    const row = await tx
      .selectFrom('network_acl_lists')
      .select('id')
      .where('uuid', '=', uuid)
      .executeTakeFirstOrThrow();
    await tx
      .updateTable('networks')
      .set({ network_acl_id: row.id })
      .where('id', '=', tier.id)
      .where('network_acl_id', 'is', null)
      .execute();
    await logEvent(ctx, tx, {
      type: 'NETWORK.ACL.CREATE',
      description: `created network ACL list ${name} for tier ${tier.name}`,
      resourceType: 'NetworkAcl',
      resourceId: uuid,
    });
  });
  // A concurrent call may have given the tier its list first: that one is the tier's.
  const current = await ctx.app.store.db
    .selectFrom('networks')
    .select('network_acl_id')
    .where('id', '=', tier.id)
    .executeTakeFirstOrThrow();
  return ctx.app.store.db
    .selectFrom('network_acl_lists')
    .selectAll()
    .where('id', '=', current.network_acl_id!)
    .executeTakeFirstOrThrow();
}

/** createNetwork aclid=: the list a new tier of `vpc` starts with (checked before it is made). */
export async function aclForNewTier(ctx: CallContext, vpc: VpcRow, aclUuid: string): Promise<number> {
  const acl = await findAclList(ctx, aclUuid);
  checkAclForVpc(acl, vpc, `Network of VPC ${vpc.uuid}`);
  return acl.id;
}

/** deleteVPC: its own lists and their items go (nothing else can use them). */
export async function deleteVpcAcls(tx: AclTx, vpcId: number): Promise<void> {
  const lists = await tx.selectFrom('network_acl_lists').select('id').where('vpc_id', '=', vpcId).execute();
  if (lists.length === 0) return;
  const ids = lists.map((l) => l.id);
  await tx.deleteFrom('network_acl_items').where('acl_id', 'in', ids).execute();
  await tx.deleteFrom('network_acl_lists').where('id', 'in', ids).execute();
}

export const vpcAclListCommands = [
  createNetworkACLList,
  updateNetworkACLList,
  deleteNetworkACLList,
  listNetworkACLLists,
  replaceNetworkACLList,
];
