/**
 * VPCs: an account's private address space (a CIDR) holding tiers, isolated networks whose
 * subnets lie inside it, all behind one virtual router (vpc-routers.ts) that routes between them
 * and NATs their traffic out through the VPC's source-NAT address. Commands: createVPC, listVPCs,
 * updateVPC, restartVPC, deleteVPC; tiers are made by createNetwork with vpcid (createVpcTier).
 * Network ACLs (vpc-acls.ts, vpc-acl-items.ts), private gateways and static routes
 * (vpc-gateways.ts) are enforced by the same router (vpc-routing.ts), and so are its VPNs (vpn/).
 */

import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import type { AccountRow, NetworkOfferingRow, NetworkRow, VpcRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { ResourceKind, registerResourceCounter, reserve } from '../iam/limits.ts';
import { checkRowAccess, findOwned, listOwned, type OwnedLookup } from '../iam/owned.ts';
import { findZone, intToIpv4, ipv4ToInt, isIpv4, likeOp } from '../infra/common.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { withTags } from '../tags/tags.ts';
import {
  checkNetworkDomain,
  guestPhysicalNetwork,
  type IsolatedNetworkRequest,
  implementNetwork,
  insertGuestNetwork,
  networkOwner,
  subnetFor,
} from './guest-networks.ts';
import { cidrWithin, parseCidr } from './ip-rules.ts';
import { deleteNetworkOf } from './network-deletion.ts';
import { hasServices, presentServices } from './network-offering-rules.ts';
import { presentNetworks } from './networks.ts';
import { releasePublicIp } from './public-ips.ts';
import { withNetworkLock } from './routers.ts';
import { aclForNewTier, deleteVpcAcls } from './vpc-acls.ts';
import { deleteVpcGateways } from './vpc-gateways.ts';
import { findVpcOffering, vpcOfferingCommands } from './vpc-offerings.ts';
import {
  applyVpcRouter,
  destroyVpcRouter,
  implementVpc,
  liveVpcRouter,
  restartVpcRouter,
  startVpcRouter,
  vpcLockKey,
  vpcTiers,
} from './vpc-routers.ts';

/** VPCs as account-owned resources for the commands that act on them. */
export const OWNED_VPC: OwnedLookup<'vpcs'> = { noun: 'VPC' };

/** The private ranges (RFC 1918) a VPC's CIDR must lie in, as upstream requires of guest CIDRs. */
const PRIVATE = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

/** A VPC's CIDR: an IPv4 network (its address the network's first) inside a private range, /8 to /28. */
function vpcCidr(text: string): string {
  const cidr = parseCidr(text, 'cidr');
  const [ip, bitsText] = cidr.split('/') as [string, string];
  const bits = Number(bitsText);
  const size = 2 ** (32 - bits);
  const base = Math.floor(ipv4ToInt(ip) / size) * size;
  if (bits < 8 || bits > 28) throw invalidParameter(`Invalid CIDR ${text}: a VPC is a /8 to /28`);
  const normal = `${intToIpv4(base)}/${bits}`;
  if (!PRIVATE.some((r) => cidrWithin(normal, r)))
    throw invalidParameter(`Invalid CIDR ${text}: a VPC's CIDR must lie in a private (RFC 1918) range`);
  return normal;
}

async function presentVpcs(ctx: CallContext, rows: VpcRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = rows.map((r) => r.id);
  const [zones, offerings, accounts, domains, tiers] = await Promise.all([
    db
      .selectFrom('zones')
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.zone_id))])
      .execute(),
    db
      .selectFrom('vpc_offerings')
      .selectAll()
      .where('id', 'in', [...new Set(rows.map((r) => r.vpc_offering_id))])
      .execute(),
    db
      .selectFrom('accounts')
      .select(['id', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.account_id))])
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', [...new Set(rows.map((r) => r.domain_id))])
      .execute(),
    db
      .selectFrom('networks')
      .selectAll()
      .where('vpc_id', 'in', ids)
      .where('removed', 'is', null)
      .orderBy('id')
      .execute(),
  ]);
  const presentedTiers = await presentNetworks(ctx, tiers);
  const tierOf = new Map<number, object[]>();
  tiers.forEach((t, i) => {
    tierOf.set(t.vpc_id!, [...(tierOf.get(t.vpc_id!) ?? []), presentedTiers[i]!]);
  });
  return rows.map((v) => {
    const zone = zones.find((z) => z.id === v.zone_id);
    const offering = offerings.find((o) => o.id === v.vpc_offering_id);
    const domain = domains.find((d) => d.id === v.domain_id);
    return {
      id: v.uuid,
      name: v.name,
      displaytext: v.display_text,
      cidr: v.cidr,
      state: v.state,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      vpcofferingid: offering?.uuid,
      vpcofferingname: offering?.name,
      networkdomain: v.network_domain ?? undefined,
      account: accounts.find((a) => a.id === v.account_id)?.name,
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
      network: tierOf.get(v.id) ?? [],
      service: offering ? presentServices(offering) : [],
      restartrequired: false,
      redundantvpcrouter: false,
      distributedvpcrouter: false,
      regionlevelvpc: false,
      fordisplay: v.for_display === 1,
      tags: [],
      created: formatDate(v.created),
    };
  });
}

async function presentVpc(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('vpcs')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentVpcs(ctx, [row]))[0]!;
}

export const createVPC = defineCommand({
  name: 'createVPC',
  description:
    "Creates a VPC: a private CIDR for an account's tiers behind one virtual router. With start=true (the default) the VPC's source-NAT address is acquired and its router booted at once. Asynchronous.",
  params: {
    name: p.string({ required: true, description: 'Name of the VPC; must not be blank.' }),
    displaytext: p.string({ description: 'Free-text description; defaults to the name.' }),
    zoneid: p.uuid({ required: true, description: 'Advanced zone the VPC is created in.' }),
    vpcofferingid: p.uuid({ required: true, description: 'Enabled VPC offering the VPC is made from.' }),
    cidr: p.string({
      required: true,
      description:
        "The VPC's address space, a private (RFC 1918) IPv4 CIDR of /8 to /28; every tier lies inside it.",
    }),
    networkdomain: p.string({
      description:
        "DNS domain of the VPC's tiers (the router answers VM names in it); defaults to the zone's.",
    }),
    start: p.boolean({
      description:
        'true (default): acquire the source-NAT address and boot the router now; false: the first VM start in a tier (or restartVPC) does.',
    }),
    fordisplay: p.boolean({
      adminOnly: true,
      description: 'Whether end users see the VPC; defaults to true.',
    }),
    account: p.string({ description: 'Account that owns the VPC (with domainid); defaults to the caller.' }),
    domainid: p.uuid({ description: 'Domain of account.' }),
    projectid: p.uuid({ description: 'Project to own the VPC (you must be a member); not with account.' }),
  },
  event: { type: 'VPC.CREATE', description: (params) => `creating VPC ${params.name}` },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    const name = params.name.trim();
    if (name === '') throw invalidParameter('VPC name must not be empty');
    const zone = await findZone(ctx, params.zoneid);
    if (zone.network_type !== 'Advanced')
      throw invalidParameter(`VPCs need an Advanced zone; zone ${zone.name} is ${zone.network_type}`);
    if (zone.allocation_state !== 'Enabled' && ctx.caller.roleKind !== 'admin')
      throw permissionDenied(`Zone ${zone.name} is not enabled`);
    const offering = await findVpcOffering(ctx, params.vpcofferingid);
    if (offering.state !== 'Enabled')
      throw invalidParameter(`VPC offering ${offering.name} is not Enabled: it cannot be used`);
    const cidr = vpcCidr(params.cidr);
    checkNetworkDomain(params.networkdomain);
    const owner = await networkOwner(ctx, params);
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      await reserve(ctx, tx, owner, ResourceKind.Vpc, 1);
      await tx
        .insertInto('vpcs')
        .values({
          uuid,
          name,
          display_text: params.displaytext ?? name,
          zone_id: zone.id,
          vpc_offering_id: offering.id,
          cidr,
          network_domain: params.networkdomain ?? zone.network_domain ?? null,
          account_id: owner.id,
          domain_id: owner.domain_id,
          state: 'Inactive',
          for_display: params.fordisplay === false && ctx.caller.roleKind === 'admin' ? 0 : 1,
          created: app.clock.now(),
          removed: null,
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPC.CREATE',
        description: `created VPC ${name} (${cidr}) for account ${owner.name}`,
        resourceType: 'Vpc',
        resourceId: uuid,
      });
    });
    return { type: 'Vpc', id: uuid };
  },
  async handler(ctx, params, created) {
    const vpc = await ctx.app.store.db
      .selectFrom('vpcs')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    // A VPC whose start fails stays Inactive: restartVPC (or a VM start in a tier) tries again.
    if (params.start !== false) await startVpcRouter(ctx.app, vpc);
    return presentVpc(ctx, vpc.id);
  },
});

const vpcTarget = async (ctx: CallContext, params: { id: string }): Promise<JobTarget> => ({
  type: 'Vpc',
  id: (await findOwned(ctx, 'vpcs', params.id, OWNED_VPC)).uuid,
});

export const updateVPC = defineCommand({
  name: 'updateVPC',
  description:
    'Renames a VPC or changes its display text (and, for administrators, whether users see it). Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the VPC to update.' }),
    name: p.string({ description: 'New name; must not be blank.' }),
    displaytext: p.string({ description: 'New display text.' }),
    fordisplay: p.boolean({ adminOnly: true, description: 'Whether end users see the VPC.' }),
  },
  event: { type: 'VPC.UPDATE', description: (params) => `updating VPC ${params.id}` },
  target: vpcTarget,
  async handler(ctx, params) {
    const vpc = await findOwned(ctx, 'vpcs', params.id, OWNED_VPC);
    const name = params.name?.trim();
    if (name === '') throw invalidParameter('VPC name must not be empty');
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('vpcs')
        .set({
          ...(name !== undefined ? { name } : {}),
          ...(params.displaytext !== undefined ? { display_text: params.displaytext } : {}),
          ...(params.fordisplay !== undefined && ctx.caller.roleKind === 'admin'
            ? { for_display: params.fordisplay ? 1 : 0 }
            : {}),
        })
        .where('id', '=', vpc.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPC.UPDATE',
        description: `updated VPC ${name ?? vpc.name}`,
        resourceType: 'Vpc',
        resourceId: vpc.uuid,
      });
    });
    return presentVpc(ctx, vpc.id);
  },
});

export const restartVPC = defineCommand({
  name: 'restartVPC',
  description:
    'Re-sends the VPC router its whole configuration (every tier, VM entry, address and rule) or, with cleanup=true, replaces it with a fresh router that gets all of it. An Inactive VPC is started. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the VPC to restart.' }),
    cleanup: p.boolean({
      description:
        'true: destroy the router and boot a new one (same host when it is connected); default false.',
    }),
    makeredundant: p.boolean({ description: 'Redundant routers are not supported: true is refused.' }),
    livepatch: p.boolean({
      description: 'Accepted for compatibility: a router is always patched live here.',
    }),
  },
  event: { type: 'VPC.RESTART', description: (params) => `restarting VPC ${params.id}` },
  target: vpcTarget,
  async handler(ctx, params) {
    if (params.makeredundant) throw invalidParameter('Redundant VPC routers are not supported');
    const vpc = await findOwned(ctx, 'vpcs', params.id, OWNED_VPC);
    await withNetworkLock(ctx.app, vpcLockKey(vpc.id), () => implementVpc(ctx.app, vpc));
    await restartVpcRouter(ctx.app, vpc, params.cleanup === true);
    await logEvent(ctx, ctx.app.store.db, {
      type: 'VPC.RESTART',
      description: `restarted VPC ${vpc.name}${params.cleanup ? ' with a fresh router' : ''}`,
      resourceType: 'Vpc',
      resourceId: vpc.uuid,
    });
    return success();
  },
});

/** VMs not expunged with a NIC in a tier of the VPC: they keep it from being deleted. */
async function vmsInVpc(
  ctx: CallContext,
  vpcId: number,
): Promise<{ name: string; state: string; tier: string }[]> {
  return ctx.app.store.db
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .innerJoin('networks', 'networks.id', 'nics.network_id')
    .select(['vms.name', 'vms.state', 'networks.name as tier'])
    .where('networks.vpc_id', '=', vpcId)
    .where('networks.removed', 'is', null)
    .where('nics.removed', 'is', null)
    .where('nics.router_id', 'is', null)
    .where('vms.removed', 'is', null)
    .where('vms.state', '!=', 'Expunging')
    .orderBy('vms.id')
    .execute();
}

/**
 * Deletes a VPC: refused while a tier has VMs; its tiers go as deleteNetwork does, then its router
 * and addresses. `forced` (account deletion): a host that cannot be reached does not stop it.
 */
async function deleteVpcOf(ctx: CallContext, vpc: VpcRow, forced: boolean): Promise<void> {
  const { app } = ctx;
  const vms = await vmsInVpc(ctx, vpc.id);
  if (vms.length)
    throw invalidParameter(
      `Can't delete VPC ${vpc.name}: its tiers still have VMs (${vms
        .slice(0, 5)
        .map((v) => `${v.name} (${v.state}) in ${v.tier}`)
        .join(', ')}${vms.length > 5 ? ` and ${vms.length - 5} more` : ''}); expunge them first`,
    );
  // Tiers first (each is refused, and the deletion stops, if a VM was deployed meanwhile).
  for (const tier of await vpcTiers(app, vpc.id)) await deleteNetworkOf(ctx, tier.uuid, forced);
  await deleteVpcGateways(ctx, vpc.id);
  await destroyVpcRouter(app, vpc.id, forced);
  await app.store.db.transaction().execute(async (tx) => {
    await deleteVpcAcls(tx, vpc.id);
    const ips = await tx.selectFrom('public_ips').selectAll().where('vpc_id', '=', vpc.id).execute();
    for (const ip of ips) await releasePublicIp(app, tx, ip);
    await tx
      .updateTable('vpcs')
      .set({ state: 'Inactive', removed: app.clock.now() })
      .where('id', '=', vpc.id)
      .execute();
    const account = await tx
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', vpc.account_id)
      .executeTakeFirst();
    if (account) await reserve(ctx, tx, account, ResourceKind.Vpc, -1);
    await logEvent(ctx, tx, {
      type: 'VPC.DELETE',
      description: `deleted VPC ${vpc.name}`,
      resourceType: 'Vpc',
      resourceId: vpc.uuid,
    });
  });
}

/** A deleted account's VPCs go with it (its VMs were expunged first), before its other networks. */
async function deleteAccountVpcs(ctx: CallContext, account: AccountRow): Promise<void> {
  const vpcs = await ctx.app.store.db
    .selectFrom('vpcs')
    .selectAll()
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .execute();
  for (const vpc of vpcs) await deleteVpcOf(ctx, vpc, true);
}
onAccountDelete(deleteAccountVpcs);

export const deleteVPC = defineCommand({
  name: 'deleteVPC',
  description:
    'Deletes a VPC whose tiers have no VMs left: its tiers are deleted, its router destroyed and its public addresses released. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the VPC to delete.' }) },
  event: { type: 'VPC.DELETE', description: (params) => `deleting VPC ${params.id}` },
  target: vpcTarget,
  async handler(ctx, params) {
    await deleteVpcOf(ctx, await findOwned(ctx, 'vpcs', params.id, OWNED_VPC), false);
    return success();
  },
});

export const listVPCs = defineCommand({
  name: 'listVPCs',
  description: 'Lists VPCs the caller may see, with their tiers and services.',
  params: {
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    id: p.uuid({ description: 'Only the VPC with this ID.' }),
    name: p.string({ description: 'Only VPCs with exactly this name.' }),
    displaytext: p.string({ description: 'Only VPCs with exactly this display text.' }),
    cidr: p.string({ description: 'Only VPCs with exactly this CIDR.' }),
    zoneid: p.uuid({ description: 'Only VPCs of this zone.' }),
    vpcofferingid: p.uuid({ description: 'Only VPCs made from this VPC offering.' }),
    state: p.string({ description: 'Only VPCs in this state: Enabled or Inactive.' }),
    supportedservices: p.list({
      description: 'Only VPCs whose offering provides every one of these services.',
    }),
    restartrequired: p.boolean({
      description: 'true gives an empty list: no VPC ever needs a restart here.',
    }),
    fordisplay: p.boolean({
      description: 'Only VPCs shown to end users (true) or hidden from them (false).',
    }),
    tags: p.map({ description: 'Only VPCs with these tags (tags[0].key, tags[0].value).' }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db.selectFrom('vpcs').where('vpcs.removed', 'is', null);
    if (params.id) q = q.where('vpcs.uuid', '=', params.id);
    if (params.name) q = q.where('vpcs.name', '=', params.name);
    if (params.displaytext) q = q.where('vpcs.display_text', '=', params.displaytext);
    if (params.cidr) q = q.where('vpcs.cidr', '=', params.cidr);
    if (params.state) q = q.where('vpcs.state', '=', params.state);
    if (params.restartrequired === true) q = q.where('vpcs.id', '=', -1);
    if (params.fordisplay !== undefined) q = q.where('vpcs.for_display', '=', params.fordisplay ? 1 : 0);
    if (params.zoneid) q = q.where('vpcs.zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.vpcofferingid)
      q = q.where('vpcs.vpc_offering_id', '=', (await findVpcOffering(ctx, params.vpcofferingid)).id);
    if (params.supportedservices?.length) {
      const offerings = (await db.selectFrom('vpc_offerings').selectAll().execute()).filter((o) =>
        hasServices(o, params.supportedservices),
      );
      q = q.where('vpcs.vpc_offering_id', 'in', [-1, ...offerings.map((o) => o.id)]);
    }
    if (params.keyword) q = q.where(likeEscaped('vpcs.name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    q = withTags(q, 'Vpc', 'vpcs.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'vpcs.account_id', domain: 'vpcs.domain_id' },
      rows: (scoped, page) =>
        paginate(scoped.selectAll('vpcs').orderBy('vpcs.id'), page).execute() as Promise<VpcRow[]>,
      present: (rows) => presentVpcs(ctx, rows),
    });
  },
});

/**
 * createNetwork with vpcid: a tier. Its subnet (gateway and netmask, required) lies inside the
 * VPC's CIDR and overlaps no other tier; it belongs to the VPC's owner and uses the VPC's network
 * domain. It is implemented at once (its VNI) and plugged into the VPC's running router, so the
 * router serves it before its first VM starts.
 */
export async function createVpcTier(
  ctx: CallContext,
  req: IsolatedNetworkRequest & { vpcid: string; aclid?: string },
): Promise<NetworkRow> {
  const { app } = ctx;
  const { zone, offering } = req;
  const vpc = await findOwned(ctx, 'vpcs', req.vpcid, OWNED_VPC);
  checkTierOffering(offering);
  if (offering.state !== 'Enabled')
    throw invalidParameter(`Network offering ${offering.name} is not Enabled`);
  // Every service of the tier must be one the VPC's router provides (its VPC offering's).
  const vpcOffering = await ctx.app.store.db
    .selectFrom('vpc_offerings')
    .select('services')
    .where('id', '=', vpc.vpc_offering_id)
    .executeTakeFirstOrThrow();
  const provided = new Set(vpcOffering.services.split(','));
  for (const pair of offering.services.split(',').filter(Boolean))
    if (!provided.has(pair))
      throw invalidParameter(
        `Service/provider combination ${pair.replace(':', '/')} is not supported by VPC ${vpc.name}`,
      );
  if (vpc.zone_id !== zone.id)
    throw invalidParameter(`Network's zone ${zone.name} must be the zone of VPC ${vpc.name}`);
  const owner = await networkOwner(ctx, req);
  if (owner.id !== vpc.account_id)
    throw invalidParameter(`VPC owner does not have access to account [${owner.name}].`);
  if (req.gateway === undefined || req.netmask === undefined)
    throw invalidParameter('Gateway/netmask are required when create network for VPC');
  if (!isIpv4(req.gateway)) throw invalidParameter(`Invalid gateway ${req.gateway}`);
  const subnet = subnetFor(zone, req.gateway, req.netmask);
  if (
    req.networkdomain !== undefined &&
    req.networkdomain.toLowerCase() !== (vpc.network_domain ?? '').toLowerCase()
  )
    throw invalidParameter(
      `Network domain of the new network should match network domain of vpc ${vpc.name}`,
    );
  const physical = await guestPhysicalNetwork(app, zone);
  // Without aclid a tier has no list: nothing comes in, everything goes out (as upstream).
  const aclId = req.aclid !== undefined ? await aclForNewTier(ctx, vpc, req.aclid) : null;
  const tier = await withNetworkLock(app, vpcLockKey(vpc.id), () =>
    app.store.db.transaction().execute(async (tx) => {
      // The VPC row's lock: tiers created at once through other management servers (whose
      // in-process lock this one does not share) are checked one after the other too.
      await tx
        .updateTable('vpcs')
        .set((eb) => ({ name: eb.ref('name') }))
        .where('id', '=', vpc.id)
        .execute();
      if (!cidrWithin(subnet.cidr, vpc.cidr))
        throw invalidParameter(`Network cidr ${subnet.cidr} is not within vpc ${vpc.name} cidr`);
      const others = await tx
        .selectFrom('networks')
        .select(['name', 'cidr'])
        .where('vpc_id', '=', vpc.id)
        .where('removed', 'is', null)
        .execute();
      for (const o of others)
        if (o.cidr && (cidrWithin(o.cidr, subnet.cidr) || cidrWithin(subnet.cidr, o.cidr)))
          throw invalidParameter(
            `Network cidr ${subnet.cidr} crosses other network cidr ${o.name} (${o.cidr}) belonging to the same vpc ${vpc.name}`,
          );
      await reserve(ctx, tx, owner, ResourceKind.Network, 1);
      const row = await insertGuestNetwork(ctx, tx, {
        req: { ...req, networkdomain: vpc.network_domain ?? undefined },
        physical,
        subnet,
        range: { start: subnet.first, end: subnet.last, vlan: 'untagged' },
        guestType: 'Isolated',
        state: 'Allocated',
        aclType: 'Account',
        domainId: owner.domain_id,
        accountId: owner.id,
        vni: null,
        vpcId: vpc.id,
        what: `tier of VPC ${vpc.name} for account ${owner.name}`,
      });
      if (aclId === null) return row;
      await tx.updateTable('networks').set({ network_acl_id: aclId }).where('id', '=', row.id).execute();
      return { ...row, network_acl_id: aclId };
    }),
  );
  // Its VNI now, and the router's interface when the router runs. A host that refuses leaves the
  // tier Implemented but unplugged: the next VM start in it sends the router everything again.
  const implemented = await withNetworkLock(app, tier.id, () => implementNetwork(app, tier));
  await applyVpcRouter(app, vpc.id).catch((err: Error) =>
    app.log.warn(
      { vpc: vpc.uuid, tier: tier.uuid, err: err.message },
      'VPC router could not plug a new tier',
    ),
  );
  return implemented;
}

/** A tier's offering: a VPC network offering (forvpc) of type Isolated with source NAT. */
function checkTierOffering(offering: NetworkOfferingRow): void {
  if (offering.for_vpc !== 1) throw invalidParameter("Network offering can't be used for VPC networks");
  if (offering.guest_ip_type !== 'Isolated' || !hasServices(offering, ['SourceNat']))
    throw invalidParameter(
      'Only network offerings of type Isolated with service SourceNat are valid for vpc',
    );
}

/** A VPC's tier the caller may use, for commands naming a tier of a VPC (rules with networkid). */
export async function tierOfVpc(ctx: CallContext, vpcId: number, tierUuid: string): Promise<NetworkRow> {
  const tier = await ctx.app.store.db
    .selectFrom('networks')
    .selectAll()
    .where('uuid', '=', tierUuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!tier || tier.vpc_id !== vpcId)
    throw invalidParameter(`Network ${tierUuid} is not a tier of the IP address's VPC`);
  await checkRowAccess(ctx, tier);
  return tier;
}

/** The VPC named by a vpcid parameter that the caller may act on (associateIpAddress, listNetworks). */
export function findVpc(ctx: CallContext, uuid: string): Promise<VpcRow> {
  return findOwned(ctx, 'vpcs', uuid, OWNED_VPC);
}

/** The zone of a VPC, for commands that take vpcid in place of a zone. */
export async function zoneOfVpc(ctx: CallContext, vpc: VpcRow): Promise<ZoneRow> {
  return ctx.app.store.db
    .selectFrom('zones')
    .selectAll()
    .where('id', '=', vpc.zone_id)
    .executeTakeFirstOrThrow();
}

export { liveVpcRouter };

// updateResourceCount recounts the VPCs accounts really have.
registerResourceCounter(ResourceKind.Vpc, async (tx, accountId) => {
  const row = await tx
    .selectFrom('vpcs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('account_id', '=', accountId)
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
});

export const vpcCommands = [...vpcOfferingCommands, createVPC, listVPCs, updateVPC, restartVPC, deleteVPC];
