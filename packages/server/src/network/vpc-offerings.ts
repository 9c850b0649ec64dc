/**
 * VPC offerings: what a VPC is made from, i.e. the services its router provides to the VPC as a
 * whole. Upstream's `Default VPC offering` is seeded by migration 0023; its variants with
 * Netscaler, NSX, Netris or redundant routers are not, as none of those exist here. Services are
 * stored as "Service:Provider" pairs like network offerings' (network-offering-rules.ts), and only
 * the VPC router's services may be chosen.
 */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { VpcOfferingRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { findZone, likeOp } from '../infra/common.ts';
import { defineCommand, type JobTarget, listResult, success } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { hasServices, presentServices, resolveOfferingServices } from './network-offering-rules.ts';

/** What a VPC router provides: every other service (Firewall, SecurityGroup…) is refused. */
const VPC_SERVICES = new Set([
  'Dhcp',
  'Dns',
  'UserData',
  'NetworkACL',
  'Gateway',
  'Lb',
  'SourceNat',
  'StaticNat',
  'PortForwarding',
  'Vpn',
]);

export function presentVpcOffering(o: VpcOfferingRow): object {
  return {
    id: o.uuid,
    name: o.name,
    displaytext: o.display_text,
    isdefault: o.is_default === 1,
    state: o.state,
    service: presentServices(o),
    distributedvpcrouter: false,
    supportsregionLevelvpc: false,
    fornsx: false,
    internetprotocol: 'IPv4',
    created: formatDate(o.created),
  };
}

/** A VPC offering that is not deleted, by uuid (431 otherwise). */
export async function findVpcOffering(
  ctx: Pick<CallContext, 'app'>,
  uuid: string,
  db: Tx = ctx.app.store.db,
): Promise<VpcOfferingRow> {
  const row = await db
    .selectFrom('vpc_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find VPC offering by id ${uuid}`);
  return row;
}

async function checkNameFree(tx: Tx, name: string, except?: number): Promise<void> {
  let q = tx.selectFrom('vpc_offerings').select('id').where('name', '=', name);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst()) throw invalidParameter(`VPC offering with name ${name} already exists`);
}

const STATES = ['Enabled', 'Disabled'];

export const createVPCOffering = defineCommand({
  name: 'createVPCOffering',
  description:
    "Creates a VPC offering: the services a VPC's router gives its tiers (the VPC router provides all of them). It starts Disabled unless enable=true. Asynchronous.",
  params: {
    name: p.string({
      required: true,
      description: "Unique name of the offering (deleted offerings' names stay taken); must not be blank.",
    }),
    displaytext: p.string({ description: 'Free-text description; defaults to the name.' }),
    supportedservices: p.list({
      description:
        'Comma-separated services of the VPC, from Dhcp, Dns, UserData, NetworkACL, Gateway, Lb, SourceNat, StaticNat, PortForwarding, Vpn; SourceNat is required. Defaults to all of them.',
    }),
    serviceproviderlist: p.map({
      description:
        'Provider per service (serviceproviderlist[0].service, .provider); only VpcVirtualRouter is accepted, and it is the default.',
    }),
    enable: p.boolean({ description: 'Create the offering Enabled at once instead of Disabled.' }),
    internetprotocol: p.string({
      description: 'Only IPv4 (the default) is supported; other values are refused.',
    }),
    zoneid: p.list({ description: 'Zone restrictions are not supported: any value is refused.' }),
    domainid: p.list({ description: 'Domain restrictions are not supported: any value is refused.' }),
  },
  event: { type: 'VPC.OFFERING.CREATE', description: (params) => `creating VPC offering ${params.name}` },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    const name = params.name.trim();
    if (name === '') throw invalidParameter('VPC offering name must not be empty');
    if (params.internetprotocol !== undefined && params.internetprotocol.toLowerCase() !== 'ipv4')
      throw invalidParameter(`Internet protocol ${params.internetprotocol} is not supported: only IPv4`);
    if (params.zoneid?.length || params.domainid?.length)
      throw invalidParameter('VPC offerings cannot be limited to zones or domains here');
    const requested = params.supportedservices?.length ? params.supportedservices : [...VPC_SERVICES];
    const services = resolveOfferingServices({
      guestType: 'Isolated',
      forVpc: true,
      supportedServices: requested,
      serviceProviders: Object.values(params.serviceproviderlist ?? {}),
      capabilities: [],
    });
    for (const pair of services.split(',')) {
      const [service, provider] = pair.split(':') as [string, string];
      if (!VPC_SERVICES.has(service))
        throw invalidParameter(`Service ${service} is not supported by VPC offerings`);
      if (provider !== 'VpcVirtualRouter')
        throw invalidParameter(
          `Provider ${provider} is not supported for VPC offerings: use VpcVirtualRouter`,
        );
    }
    if (!hasServices({ services }, ['SourceNat']))
      throw invalidParameter('A VPC offering needs the SourceNat service: its router is the tiers’ way out');
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      await checkNameFree(tx, name);
      await tx
        .insertInto('vpc_offerings')
        .values({
          uuid,
          name,
          display_text: params.displaytext ?? name,
          services,
          state: params.enable ? 'Enabled' : 'Disabled',
          is_default: 0,
          sort_key: 0,
          created: app.clock.now(),
          removed: null,
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPC.OFFERING.CREATE',
        description: `created VPC offering ${name}`,
        resourceType: 'VpcOffering',
        resourceId: uuid,
      });
    });
    return { type: 'VpcOffering', id: uuid };
  },
  async handler(ctx, _params, created) {
    return presentVpcOffering(await findVpcOffering(ctx, created!.id));
  },
});

export const updateVPCOffering = defineCommand({
  name: 'updateVPCOffering',
  description:
    'Renames a VPC offering, changes its display text or sort order, or enables or disables it (a Disabled one makes no new VPCs). Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the VPC offering to update.' }),
    name: p.string({ description: 'New name; must not be blank or taken.' }),
    displaytext: p.string({ description: 'New display text.' }),
    state: p.string({ description: 'Enabled or Disabled.' }),
    sortkey: p.integer({ description: 'Position of the offering in lists (lower first).' }),
    zoneid: p.string({ description: 'Zone restrictions are not supported: any value but "all" is refused.' }),
    domainid: p.string({
      description: 'Domain restrictions are not supported: any value but "public" is refused.',
    }),
  },
  event: { type: 'VPC.OFFERING.UPDATE', description: (params) => `updating VPC offering ${params.id}` },
  target: async (ctx, params) => ({ type: 'VpcOffering', id: (await findVpcOffering(ctx, params.id)).uuid }),
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findVpcOffering(ctx, params.id);
    const name = params.name?.trim();
    if (name === '') throw invalidParameter('VPC offering name must not be empty');
    const state =
      params.state === undefined
        ? undefined
        : STATES.find((s) => s.toLowerCase() === params.state!.toLowerCase());
    if (params.state !== undefined && !state)
      throw invalidParameter(`Invalid state ${params.state}; use Enabled or Disabled`);
    if (params.zoneid !== undefined && params.zoneid.toLowerCase() !== 'all')
      throw invalidParameter('VPC offerings cannot be limited to zones here');
    if (params.domainid !== undefined && params.domainid.toLowerCase() !== 'public')
      throw invalidParameter('VPC offerings cannot be limited to domains here');
    await app.store.db.transaction().execute(async (tx) => {
      if (name !== undefined) await checkNameFree(tx, name, offering.id);
      await tx
        .updateTable('vpc_offerings')
        .set({
          ...(name !== undefined ? { name } : {}),
          ...(params.displaytext !== undefined ? { display_text: params.displaytext } : {}),
          ...(state ? { state } : {}),
          ...(params.sortkey !== undefined ? { sort_key: params.sortkey } : {}),
        })
        .where('id', '=', offering.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPC.OFFERING.UPDATE',
        description: `updated VPC offering ${name ?? offering.name}`,
        resourceType: 'VpcOffering',
        resourceId: offering.uuid,
      });
    });
    return presentVpcOffering(await findVpcOffering(ctx, params.id));
  },
});

export const deleteVPCOffering = defineCommand({
  name: 'deleteVPCOffering',
  description:
    'Deletes a VPC offering no live VPC uses; the default offering cannot be deleted. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the VPC offering to delete.' }) },
  event: { type: 'VPC.OFFERING.DELETE', description: (params) => `deleting VPC offering ${params.id}` },
  target: async (ctx, params) => ({ type: 'VpcOffering', id: (await findVpcOffering(ctx, params.id)).uuid }),
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findVpcOffering(ctx, params.id);
    if (offering.is_default === 1) throw invalidParameter('Default VPC offering cannot be removed');
    await app.store.db.transaction().execute(async (tx) => {
      const used = await tx
        .selectFrom('vpcs')
        .select('name')
        .where('vpc_offering_id', '=', offering.id)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (used)
        throw resourceInUse(
          `VPC offering ${offering.name} is in use by VPC ${used.name}: delete the VPCs first`,
        );
      // The row stays, hidden, for the VPCs that were made from it.
      await tx
        .updateTable('vpc_offerings')
        .set({ removed: app.clock.now(), state: 'Disabled' })
        .where('id', '=', offering.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPC.OFFERING.DELETE',
        description: `deleted VPC offering ${offering.name}`,
        resourceType: 'VpcOffering',
        resourceId: offering.uuid,
      });
    });
    return success();
  },
});

export const listVPCOfferings = defineCommand({
  name: 'listVPCOfferings',
  description:
    'Lists VPC offerings; end users and domain administrators see Enabled ones only, administrators all of them.',
  params: {
    id: p.uuid({ description: 'Only the offering with this ID.' }),
    name: p.string({ description: 'Only offerings with exactly this name.' }),
    displaytext: p.string({ description: 'Only offerings with exactly this display text.' }),
    isdefault: p.boolean({ description: 'Only the default offering (true) or only the others (false).' }),
    state: p.string({ description: 'Only offerings in this state: Enabled or Disabled.' }),
    supportedservices: p.list({ description: 'Only offerings providing every one of these services.' }),
    zoneid: p.uuid({
      description: 'Only offerings usable in this zone: every offering is usable in every zone.',
    }),
    domainid: p.uuid({ description: 'Accepted for compatibility: offerings are not limited to domains.' }),
    ...listParams,
  },
  async handler(ctx, params) {
    const { app } = ctx;
    if (params.zoneid) await findZone(ctx, params.zoneid);
    let q = app.store.db.selectFrom('vpc_offerings').selectAll().where('removed', 'is', null);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.displaytext) q = q.where('display_text', '=', params.displaytext);
    if (params.isdefault !== undefined) q = q.where('is_default', '=', params.isdefault ? 1 : 0);
    if (params.state) q = q.where('state', '=', params.state);
    if (ctx.caller.roleKind !== 'admin') q = q.where('state', '=', 'Enabled');
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const rows = (await q.orderBy('sort_key').orderBy('id').execute()).filter((o) =>
      hasServices(o, params.supportedservices),
    );
    const page = pageOf(app, params);
    const slice = page.limit === undefined ? rows : rows.slice(page.offset, page.offset + page.limit);
    return listResult(slice.map(presentVpcOffering), rows.length);
  },
});

export const vpcOfferingCommands = [
  createVPCOffering,
  updateVPCOffering,
  deleteVPCOffering,
  listVPCOfferings,
];
