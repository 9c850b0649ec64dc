/**
 * Network ACL items, the rules of a list (vpc-acls.ts): createNetworkACL, updateNetworkACLItem,
 * deleteNetworkACL, listNetworkACLs and moveNetworkAclItem. A list's items are evaluated in
 * `number` order (unique in the list), the first match deciding. Every change is applied to the
 * routers enforcing the list before the command answers, and undone when one refuses
 * (`changeAclItems`).
 */
import { createHash } from 'node:crypto';
import type { CallContext } from '../context.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { checkRowAccess, listOwned } from '../iam/owned.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { tagsOf, withTags } from '../tags/tags.ts';
import { parseCidr } from './ip-rules.ts';
import { withNetworkLock } from './routers.ts';
import type { NetworkAclItemRow, NetworkAclItemTable, NetworkAclListRow } from './vpc-acl-tables.ts';
import {
  type AclTx,
  aclLockKey,
  applyAclOrUndo,
  changeAclItems,
  createNetworkACLListFor,
  findAclList,
  findEditableAclList,
  isDefaultAcl,
  lockAcl,
} from './vpc-acls.ts';

const PROTOCOLS = 'tcp,udp,icmp,all';

/** The fields of an item a command sets, before they are checked together (`checkItem`). */
type ItemFields = Pick<
  NetworkAclItemTable,
  'action' | 'traffic_type' | 'protocol' | 'start_port' | 'end_port' | 'icmp_type' | 'icmp_code' | 'cidr_list'
>;

function actionOf(text: string): 'Allow' | 'Deny' {
  if (/^allow$/i.test(text)) return 'Allow';
  if (/^deny$/i.test(text)) return 'Deny';
  throw invalidParameter(`Invalid action [${text}]. Permitted actions are Allow and Deny`);
}

function trafficTypeOf(text: string): 'Ingress' | 'Egress' {
  if (/^ingress$/i.test(text)) return 'Ingress';
  if (/^egress$/i.test(text)) return 'Egress';
  throw invalidParameter(`Invalid traffic type [${text}]. Permitted traffic types are Ingress and Egress`);
}

function protocolOf(text: string): string {
  const t = text.trim().toLowerCase();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n > 255) throw invalidParameter(`Invalid protocol number: ${n}`);
    return String(n);
  }
  if (!PROTOCOLS.split(',').includes(t))
    throw invalidParameter(`Invalid protocol [${text}]. Expected one of: [${PROTOCOLS}]`);
  return t;
}

function cidrListOf(list: string[]): string {
  for (const c of list) {
    try {
      parseCidr(c);
    } catch {
      throw invalidParameter(`Source cidrs formatting error ${c}`);
    }
  }
  return [...new Set(list.map((c) => c.trim()))].join(',');
}

/** Upstream's checks of an item as a whole: ports, protocol, ICMP type and code. */
function checkItem(f: ItemFields): void {
  if (f.start_port !== null || f.end_port !== null) {
    const valid = (v: number | null) => v !== null && v >= 0 && v <= 65535;
    if (!valid(f.start_port))
      throw invalidParameter(`Start public port is an invalid value: ${f.start_port}`);
    if (!valid(f.end_port)) throw invalidParameter(`End public port is an invalid value: ${f.end_port}`);
    if (f.start_port! > f.end_port!)
      throw invalidParameter(
        `Start port can't be bigger than end port [startport=${f.start_port},endport=${f.end_port}]`,
      );
    if (f.protocol === 'all')
      throw invalidParameter("start port and end port must be null if protocol = 'all'");
    if (/^\d+$/.test(f.protocol))
      throw invalidParameter('Ports can be given for protocols tcp and udp only, not for a protocol number');
  }
  const icmp = f.protocol === 'icmp';
  if (!icmp && (f.icmp_code !== null || f.icmp_type !== null))
    throw invalidParameter('Can specify icmpCode and icmpType for ICMP protocol only');
  if (icmp && (f.start_port !== null || f.end_port !== null))
    throw invalidParameter("Can't specify start/end port when protocol is ICMP");
  if (f.icmp_type !== null && f.icmp_type !== -1 && (f.icmp_type < 0 || f.icmp_type > 255))
    throw invalidParameter(`Invalid icmp type [${f.icmp_type}]. It should belong to [0-255] range`);
  if (
    f.icmp_code !== null &&
    f.icmp_code !== -1 &&
    (f.icmp_code < 0 || f.icmp_code > 16 || (f.icmp_type ?? 0) > 40)
  )
    throw invalidParameter(
      `Invalid icmp code [${f.icmp_code}]. It should belong to [0-16] range and can be defined when icmpType belongs to [0-40] range`,
    );
}

async function presentItems(ctx: CallContext, rows: NetworkAclItemRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const lists = await ctx.app.store.db
    .selectFrom('network_acl_lists')
    .select(['id', 'uuid', 'name'])
    .where('id', 'in', [...new Set(rows.map((r) => r.acl_id))])
    .execute();
  const tags = await tagsOf(
    ctx,
    'NetworkACL',
    rows.map((r) => r.id),
  );
  return rows.map((r) => {
    const list = lists.find((l) => l.id === r.acl_id);
    return {
      id: r.uuid,
      number: r.number,
      action: r.action,
      traffictype: r.traffic_type,
      protocol: r.protocol,
      startport: r.start_port !== null ? String(r.start_port) : undefined,
      endport: r.end_port !== null ? String(r.end_port) : undefined,
      icmptype: r.icmp_type ?? undefined,
      icmpcode: r.icmp_code ?? undefined,
      cidrlist: r.cidr_list,
      reason: r.reason ?? undefined,
      aclid: list?.uuid,
      aclname: list?.name,
      state: r.state,
      fordisplay: r.for_display === 1,
      tags: tags.get(r.id) ?? [],
    };
  });
}

async function presentItem(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('network_acl_items')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentItems(ctx, [row]))[0]!;
}

async function numberTaken(tx: AclTx, aclId: number, number: number, except?: number): Promise<boolean> {
  const row = await tx
    .selectFrom('network_acl_items')
    .select('id')
    .where('acl_id', '=', aclId)
    .where('number', '=', number)
    .executeTakeFirst();
  return !!row && row.id !== except;
}

/** createNetworkACL with networkid: the tier's list, or a new list made for the tier (as upstream). */
async function listForItem(ctx: CallContext, params: { aclid?: string; networkid?: string }) {
  if (params.aclid) return findAclList(ctx, params.aclid);
  if (!params.networkid)
    throw invalidParameter('Cannot create Network ACL Item. ACL Id or network Id is required');
  const tier = await ctx.app.store.db
    .selectFrom('networks')
    .selectAll()
    .where('uuid', '=', params.networkid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!tier) throw invalidParameter(`Unable to find network by id ${params.networkid}`);
  await checkRowAccess(ctx, tier);
  if (tier.vpc_id === null) throw invalidParameter(`Network: ${tier.uuid} does not belong to VPC`);
  if (tier.network_acl_id !== null)
    return ctx.app.store.db
      .selectFrom('network_acl_lists')
      .selectAll()
      .where('id', '=', tier.network_acl_id)
      .executeTakeFirstOrThrow();
  return createNetworkACLListFor(ctx, tier);
}

export const createNetworkACL = defineCommand({
  name: 'createNetworkACL',
  description:
    "Adds an item (rule) to a network ACL list, given by aclid or by a tier's networkid (a tier without a list gets one made for it). The VPC routers using the list enforce it at once. Asynchronous.",
  params: {
    aclid: p.uuid({ description: 'The list the item is added to (or networkid).' }),
    networkid: p.uuid({
      description: 'A tier whose list the item is added to; a tier without one gets a new list of its own.',
    }),
    number: p.integer({
      description:
        "Position of the item in the list's order (1 or more, unique in the list); default: after the last.",
    }),
    action: p.string({ description: 'Allow (the default) or Deny, case-insensitive.' }),
    traffictype: p.string({
      description:
        'Ingress (the default): traffic the router sends into the tier (for a private gateway: towards its network); Egress: traffic coming out of it.',
    }),
    protocol: p.string({
      required: true,
      description: 'tcp, udp, icmp, all, or an IP protocol number 0-255.',
    }),
    startport: p.integer({ description: 'First destination port (tcp and udp only).' }),
    endport: p.integer({ description: 'Last destination port; defaults to startport.' }),
    icmptype: p.integer({ description: 'ICMP type (protocol icmp only); -1, the default, is any.' }),
    icmpcode: p.integer({ description: 'ICMP code (protocol icmp only); -1, the default, is any.' }),
    cidrlist: p.list({
      description:
        'CIDRs the item is about: sources for Ingress, destinations for Egress; defaults to 0.0.0.0/0.',
    }),
    reason: p.string({ description: 'Why the item exists (free text).' }),
    fordisplay: p.boolean({ description: 'Whether end users see the item; defaults to true.' }),
  },
  event: { type: 'NETWORK.ACL.ITEM.CREATE', description: () => 'creating network ACL item' },
  // The item is recorded (state Add) before the job runs, so its id comes back with the job id as
  // upstream's; the job applies it and makes it Active, or removes it when a router refuses.
  async create(ctx, params): Promise<JobTarget> {
    const acl = await listForItem(ctx, params);
    if (isDefaultAcl(acl)) throw invalidParameter('Default ACL cannot be modified');
    if (acl.vpc_id === null && ctx.caller.roleKind !== 'admin')
      throw permissionDenied('Only Root Admins can create rules for a global ACL.');
    if (params.number !== undefined && params.number < 1)
      throw invalidParameter(`Invalid number [${params.number}]. Number cannot be < 1`);
    const protocol = protocolOf(params.protocol);
    const icmp = protocol === 'icmp';
    const fields: ItemFields = {
      action: actionOf(params.action ?? 'Allow'),
      traffic_type: trafficTypeOf(params.traffictype ?? 'Ingress'),
      protocol,
      start_port: params.startport ?? null,
      end_port: params.endport ?? params.startport ?? null,
      icmp_type: params.icmptype ?? (icmp ? -1 : null),
      icmp_code: params.icmpcode ?? (icmp ? -1 : null),
      cidr_list: cidrListOf(params.cidrlist?.length ? params.cidrlist : ['0.0.0.0/0']),
    };
    checkItem(fields);
    const uuid = ctx.app.ids.uuid();
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await lockAcl(tx, acl.id);
      let number = params.number;
      if (number === undefined) {
        const max = await tx
          .selectFrom('network_acl_items')
          .select((eb) => eb.fn.max('number').as('n'))
          .where('acl_id', '=', acl.id)
          .executeTakeFirst();
        number = Number(max?.n ?? 0) + 1;
      } else if (await numberTaken(tx, acl.id, number))
        throw invalidParameter(`ACL item with number ${number} already exists in ACL: ${acl.uuid}`);
      await tx
        .insertInto('network_acl_items')
        .values({
          uuid,
          acl_id: acl.id,
          number,
          ...fields,
          reason: params.reason ?? null,
          for_display: params.fordisplay === false ? 0 : 1,
          state: 'Add',
          created: ctx.app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.ACL.ITEM.CREATE',
        description: `added item ${number} (${fields.traffic_type} ${fields.action} ${protocol}) to network ACL list ${acl.name}`,
        resourceType: 'NetworkAclItem',
        resourceId: uuid,
      });
    });
    return { type: 'NetworkAclItem', id: uuid };
  },
  async handler(ctx, _params, created) {
    const db = ctx.app.store.db;
    const item = await db
      .selectFrom('network_acl_items')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    const acl = await db
      .selectFrom('network_acl_lists')
      .selectAll()
      .where('id', '=', item.acl_id)
      .executeTakeFirstOrThrow();
    await withNetworkLock(ctx.app, aclLockKey(acl.id), () =>
      applyAclOrUndo(ctx, acl, () => db.deleteFrom('network_acl_items').where('id', '=', item.id).execute()),
    );
    await db.updateTable('network_acl_items').set({ state: 'Active' }).where('id', '=', item.id).execute();
    return presentItem(ctx, item.id);
  },
});

/** An item by uuid with its list, which the caller may see. */
async function findItem(
  ctx: CallContext,
  uuid: string,
): Promise<{ item: NetworkAclItemRow; acl: NetworkAclListRow }> {
  const item = await ctx.app.store.db
    .selectFrom('network_acl_items')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!item) throw invalidParameter(`Unable to find ACL rule with ID [${uuid}]`);
  const listUuid = await ctx.app.store.db
    .selectFrom('network_acl_lists')
    .select('uuid')
    .where('id', '=', item.acl_id)
    .executeTakeFirstOrThrow();
  return { item, acl: await findAclList(ctx, listUuid.uuid) };
}

const itemTarget = async (ctx: CallContext, params: { id: string }): Promise<JobTarget> => ({
  type: 'NetworkAclItem',
  id: (await findItem(ctx, params.id)).item.uuid,
});

/** An item of a list the caller may change (never a built-in list's). */
async function findEditableItem(ctx: CallContext, uuid: string, what: string, defaultRefusal?: string) {
  const { item, acl } = await findItem(ctx, uuid);
  return { item, acl: await findEditableAclList(ctx, acl.uuid, what, defaultRefusal) };
}

export const updateNetworkACLItem = defineCommand({
  name: 'updateNetworkACLItem',
  description:
    'Changes an item of a network ACL list: by default only the parameters given (partialupgrade=false replaces the whole item). The VPC routers using the list enforce it at once. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the item to change.' }),
    number: p.integer({ description: "New position in the list's order; must not be another item's." }),
    action: p.string({ description: 'Allow or Deny.' }),
    traffictype: p.string({ description: 'Ingress or Egress.' }),
    protocol: p.string({ description: 'tcp, udp, icmp, all, or an IP protocol number 0-255.' }),
    startport: p.integer({ description: 'First destination port (tcp and udp only).' }),
    endport: p.integer({ description: 'Last destination port.' }),
    icmptype: p.integer({ description: 'ICMP type (protocol icmp only); -1 is any.' }),
    icmpcode: p.integer({ description: 'ICMP code (protocol icmp only); -1 is any.' }),
    cidrlist: p.list({ description: 'CIDRs: sources for Ingress, destinations for Egress.' }),
    reason: p.string({ description: 'Why the item exists (free text).' }),
    fordisplay: p.boolean({ description: 'Whether end users see the item.' }),
    partialupgrade: p.boolean({
      description:
        'true (the default): parameters not given keep their values; false: they are cleared (action Allow, traffic Ingress, any CIDR).',
    }),
    customid: p.string({
      adminOnly: true,
      description: 'A new ID for the item (root administrators only); must not be in use.',
    }),
  },
  event: {
    type: 'NETWORK.ACL.ITEM.UPDATE',
    description: (params) => `updating network ACL item ${params.id}`,
  },
  target: itemTarget,
  async handler(ctx, params) {
    const { item, acl } = await findEditableItem(ctx, params.id, 'update global ACLs');
    const partial = params.partialupgrade !== false;
    const keep = <T>(given: T | undefined, current: T, cleared: T): T =>
      given !== undefined ? given : partial ? current : cleared;
    const protocol = params.protocol?.trim() ? protocolOf(params.protocol) : partial ? item.protocol : 'all';
    const fields: ItemFields = {
      action: params.action?.trim() ? actionOf(params.action) : partial ? item.action : 'Allow',
      traffic_type: params.traffictype?.trim()
        ? trafficTypeOf(params.traffictype)
        : partial
          ? item.traffic_type
          : 'Ingress',
      protocol,
      start_port: keep(params.startport, item.start_port, null),
      end_port: keep(params.endport ?? params.startport, item.end_port, null),
      icmp_type: keep(params.icmptype, item.icmp_type, null),
      icmp_code: keep(params.icmpcode, item.icmp_code, null),
      cidr_list: params.cidrlist?.length
        ? cidrListOf(params.cidrlist)
        : partial
          ? item.cidr_list
          : '0.0.0.0/0',
    };
    checkItem(fields);
    if (params.number !== undefined && params.number < 1)
      throw invalidParameter(`Invalid number [${params.number}]. Number cannot be < 1`);
    const customId = ctx.caller.roleKind === 'admin' ? params.customid?.trim() || undefined : undefined;
    await changeAclItems(ctx, acl, async (tx) => {
      if (params.number !== undefined && (await numberTaken(tx, acl.id, params.number, item.id)))
        throw invalidParameter(`ACL item with number ${params.number} already exists in ACL: ${acl.uuid}`);
      if (customId) {
        const taken = await tx
          .selectFrom('network_acl_items')
          .select('id')
          .where('uuid', '=', customId)
          .executeTakeFirst();
        if (taken && taken.id !== item.id) throw invalidParameter(`ID ${customId} is already in use`);
      }
      await tx
        .updateTable('network_acl_items')
        .set({
          ...fields,
          ...(params.number !== undefined ? { number: params.number } : {}),
          reason: keep(params.reason?.trim() ? params.reason : undefined, item.reason, null),
          for_display: keep(
            params.fordisplay === undefined ? undefined : params.fordisplay ? 1 : 0,
            item.for_display,
            1,
          ),
          ...(customId ? { uuid: customId } : {}),
        })
        .where('id', '=', item.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.ACL.ITEM.UPDATE',
        description: `updated item ${params.number ?? item.number} of network ACL list ${acl.name}`,
        resourceType: 'NetworkAclItem',
        resourceId: customId ?? item.uuid,
      });
    });
    return presentItem(ctx, item.id);
  },
});

export const deleteNetworkACL = defineCommand({
  name: 'deleteNetworkACL',
  description:
    'Deletes an item of a network ACL list; the VPC routers using the list stop enforcing it at once. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the item to delete.' }) },
  event: {
    type: 'NETWORK.ACL.ITEM.DELETE',
    description: (params) => `deleting network ACL item ${params.id}`,
  },
  target: itemTarget,
  async handler(ctx, params) {
    const { item, acl } = await findEditableItem(
      ctx,
      params.id,
      'delete global ACL rules',
      'ACL Items in default ACL cannot be deleted',
    );
    await changeAclItems(ctx, acl, async (tx) => {
      await tx.deleteFrom('network_acl_items').where('id', '=', item.id).execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.ACL.ITEM.DELETE',
        description: `deleted item ${item.number} of network ACL list ${acl.name}`,
        resourceType: 'NetworkAclItem',
        resourceId: item.uuid,
      });
    });
    return success();
  },
});

export const listNetworkACLs = defineCommand({
  name: 'listNetworkACLs',
  description:
    "Lists network ACL items, in each list's order: of one list (aclid), of a tier's list (networkid), or of every list the caller may see.",
  params: {
    id: p.uuid({ description: 'Only the item with this ID.' }),
    aclid: p.uuid({ description: "Only this list's items." }),
    networkid: p.uuid({ description: "Only the items of this tier's list (none when it has no list)." }),
    traffictype: p.string({ description: 'Only Ingress or only Egress items.' }),
    protocol: p.string({ description: 'Only items of this protocol.' }),
    action: p.string({ description: 'Only Allow or only Deny items.' }),
    fordisplay: p.boolean({ description: 'Only items shown to end users (true) or hidden (false).' }),
    tags: p.map({ description: 'Only items with these tags (tags[0].key, tags[0].value).' }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db
      .selectFrom('network_acl_items')
      .innerJoin('network_acl_lists', 'network_acl_lists.id', 'network_acl_items.acl_id')
      .leftJoin('vpcs', 'vpcs.id', 'network_acl_lists.vpc_id')
      .where((eb) => eb.or([eb('network_acl_lists.vpc_id', 'is', null), eb('vpcs.removed', 'is', null)]));
    if (params.id) q = q.where('network_acl_items.uuid', '=', params.id);
    if (params.aclid) q = q.where('network_acl_items.acl_id', '=', (await findAclList(ctx, params.aclid)).id);
    if (params.networkid) {
      const tier = await db
        .selectFrom('networks')
        .selectAll()
        .where('uuid', '=', params.networkid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!tier) throw invalidParameter(`Unable to find network by id ${params.networkid}`);
      await checkRowAccess(ctx, tier);
      q = q.where('network_acl_items.acl_id', '=', tier.network_acl_id ?? -1);
    }
    if (params.traffictype)
      q = q.where('network_acl_items.traffic_type', '=', trafficTypeOf(params.traffictype));
    if (params.protocol) q = q.where('network_acl_items.protocol', '=', params.protocol.trim().toLowerCase());
    if (params.action) q = q.where('network_acl_items.action', '=', actionOf(params.action));
    if (params.fordisplay !== undefined)
      q = q.where('network_acl_items.for_display', '=', params.fordisplay ? 1 : 0);
    q = withTags(q, 'NetworkACL', 'network_acl_items.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'vpcs.account_id', domain: 'vpcs.domain_id' },
      alsoVisible: (eb) => eb('network_acl_lists.vpc_id', 'is', null),
      rows: (scoped, page) =>
        paginate(
          scoped
            .selectAll('network_acl_items')
            .orderBy('network_acl_items.acl_id')
            .orderBy('network_acl_items.number'),
          page,
        ).execute() as Promise<NetworkAclItemRow[]>,
      present: (rows) => presentItems(ctx, rows),
    });
  },
});

/**
 * The numbers the list's items get when `moved` goes right after `previous` (undefined: to the
 * top), as upstream renumbers: the moved item takes previous+1 and the items from there on that
 * would collide move down by one, as far as they must.
 */
export function renumberForMove(
  items: { id: number; number: number }[],
  moved: number,
  previous: number | undefined,
  next: number | undefined,
): Map<number, number> {
  const sorted = [...items].sort((a, b) => a.number - b.number);
  const changes = new Map<number, number>();
  const byId = new Map(sorted.map((i) => [i.id, i]));
  if (previous === undefined && next === undefined) return changes;
  if (previous !== undefined && next === undefined) {
    changes.set(moved, sorted[sorted.length - 1]!.number + 1);
    return changes;
  }
  let target = previous === undefined ? 1 : byId.get(previous)!.number + 1;
  if (previous !== undefined && next !== undefined && byId.get(next)!.number !== target) {
    if (sorted.some((i) => i.number === target && i.id !== moved))
      throw invalidParameter(
        'There are some inconsistencies with the data you sent. The new position calculated already has a ACL rule on it.',
      );
    changes.set(moved, target);
    return changes;
  }
  changes.set(moved, target);
  const start = previous === undefined ? 0 : sorted.findIndex((i) => i.id === previous) + 1;
  for (const item of sorted.slice(start)) {
    if (item.id === moved) continue;
    if (item.number !== target) break;
    target += 1;
    changes.set(item.id, target);
  }
  return changes;
}

export const moveNetworkAclItem = defineCommand({
  name: 'moveNetworkAclItem',
  description:
    "Moves an item of a network ACL list to a new place in the list's order, between previousaclruleid and nextaclruleid (one of them may be left out: top or bottom), renumbering the items after it as needed. Asynchronous.",
  params: {
    id: p.string({ required: true, description: 'ID of the item to move.' }),
    previousaclruleid: p.string({
      description: 'The item that is to come right before it (none: it goes to the top).',
    }),
    nextaclruleid: p.string({
      description: 'The item that is to come right after it (none: it goes to the bottom).',
    }),
    aclconsistencyhash: p.string({
      description:
        "MD5 (hex) of the list's item IDs concatenated in number order, as the caller last saw them: refused when the list has changed since.",
    }),
    customid: p.string({
      adminOnly: true,
      description: 'Accepted for compatibility; the item keeps its ID.',
    }),
  },
  event: { type: 'NETWORK.ACL.ITEM.UPDATE', description: (params) => `moving network ACL item ${params.id}` },
  async handler(ctx, params) {
    if (!params.previousaclruleid?.trim() && !params.nextaclruleid?.trim())
      throw invalidParameter('Both previous and next ACL rule IDs cannot be blank.');
    const rule = async (uuid: string | undefined) => {
      if (!uuid?.trim()) return undefined;
      const row = await ctx.app.store.db
        .selectFrom('network_acl_items')
        .selectAll()
        .where('uuid', '=', uuid.trim())
        .executeTakeFirst();
      if (!row) throw invalidParameter(`Could not find rule with ID [${uuid}]`);
      return row;
    };
    const moved = await ctx.app.store.db
      .selectFrom('network_acl_items')
      .selectAll()
      .where('uuid', '=', params.id)
      .executeTakeFirst();
    if (!moved) throw invalidParameter(`Could not find a rule with ID[${params.id}]`);
    const previous = await rule(params.previousaclruleid);
    const next = await rule(params.nextaclruleid);
    if ((previous && previous.acl_id !== moved.acl_id) || (next && next.acl_id !== moved.acl_id))
      throw invalidParameter('Cannot use ACL rules from differentiating ACLs. Rule being moved.');
    const { acl } = await findItem(ctx, moved.uuid);
    if (isDefaultAcl(acl)) throw invalidParameter('Default ACL rules cannot be moved.');
    await findEditableAclList(ctx, acl.uuid, 'move global ACL rules');
    await changeAclItems(ctx, acl, async (tx) => {
      const items = await tx
        .selectFrom('network_acl_items')
        .select(['id', 'uuid', 'number'])
        .where('acl_id', '=', acl.id)
        .orderBy('number')
        .execute();
      if (params.aclconsistencyhash?.trim()) {
        const hash = createHash('md5')
          .update(items.map((i) => i.uuid).join(''))
          .digest('hex');
        if (hash !== params.aclconsistencyhash.trim())
          throw invalidParameter(
            'It seems that the access control list in the database is not in the state that you used to apply the changed. Could you try it again?',
          );
      }
      const changes = renumberForMove(items, moved.id, previous?.id, next?.id);
      for (const [id, number] of changes)
        await tx.updateTable('network_acl_items').set({ number }).where('id', '=', id).execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.ACL.ITEM.UPDATE',
        description: `moved item ${moved.number} of network ACL list ${acl.name} to ${changes.get(moved.id)}`,
        resourceType: 'NetworkAclItem',
        resourceId: moved.uuid,
      });
    });
    return presentItem(ctx, moved.id);
  },
});

export const vpcAclItemCommands = [
  createNetworkACL,
  updateNetworkACLItem,
  deleteNetworkACL,
  listNetworkACLs,
  moveNetworkAclItem,
];
