/**
 * Networks (offerings are in network-offerings.ts). A Basic zone has exactly one guest network, shared by every
 * account and isolated by security groups; it comes into being with the zone's first guest IP
 * range, as upstream's zone wizard creates it with the first range. deleteNetwork removes it with
 * its routers and host bridges; the zone keeps its ranges and the next deployment makes a new one.
 */

import { type Expression, type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import { formatDate } from '../clock.ts';
import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database, NetworkOfferingRow, NetworkRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { findOwned, listOwned } from '../iam/owned.ts';
import { findZone, intToIpv4, likeOp, netmaskBits, subnetBounds } from '../infra/common.ts';
import { defineCommand } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { withTags } from '../tags/tags.ts';
import { insertUnlessTaken, latest, systemOwner } from './common.ts';
import { BASIC_ZONE_OFFERING, hasServices, presentServices } from './network-offerings.ts';

/** The name upstream's zone wizard gives a Basic zone's guest network. */
const BASIC_NETWORK_NAME = 'defaultGuestNetwork';

/**
 * The zone's Basic guest network, created on first use: by the first guest range without a
 * network, or by createNetwork (upstream's zone wizard names it and picks its offering, `as`).
 * The unique zone_default_for key makes a concurrent first creation land on the same row
 * instead of making two.
 */
export async function ensureBasicNetwork(
  app: App,
  tx: Tx,
  zone: ZoneRow,
  as?: { name: string; displayText: string; offeringId: number },
): Promise<{ network: NetworkRow; created: boolean }> {
  const existing = await basicNetworkOf(tx, zone.id);
  if (existing) return { network: existing, created: false };
  const offering = as
    ? { id: as.offeringId }
    : await tx
        .selectFrom('network_offerings')
        .select('id')
        .where('name', '=', BASIC_ZONE_OFFERING)
        .executeTakeFirstOrThrow();
  const physical = await guestPhysicalNetworkOf(tx, zone.id);
  const root = await tx
    .selectFrom('domains')
    .select('id')
    .where('parent_id', 'is', null)
    .executeTakeFirstOrThrow();
  const created = await insertUnlessTaken(app, tx, 'networks', {
    uuid: app.ids.uuid(),
    name: as?.name ?? BASIC_NETWORK_NAME,
    display_text: as?.displayText ?? BASIC_NETWORK_NAME,
    zone_id: zone.id,
    network_offering_id: offering.id,
    physical_network_id: physical ?? null,
    traffic_type: 'Guest',
    guest_type: 'Shared',
    broadcast_domain_type: 'Native',
    broadcast_uri: 'vlan://untagged',
    gateway: null,
    netmask: null,
    cidr: null,
    state: 'Setup',
    acl_type: 'Domain',
    domain_id: root.id,
    account_id: null,
    zone_default_for: zone.id,
    created: app.clock.now(),
  });
  const query = basicNetworkQuery(tx, zone.id);
  if (!created) return { network: await latest(app, query).executeTakeFirstOrThrow(), created };
  const network = await query.executeTakeFirstOrThrow();
  // The ranges of a deleted network stayed with the zone: the new network takes them over, and
  // its subnet from them (else the first range created after this sets it).
  const parked = await parkedRanges(tx, zone.id);
  if (parked.length === 0) return { network, created };
  await tx
    .updateTable('vlan_ip_ranges')
    .set({ network_id: network.id })
    .where(
      'id',
      'in',
      parked.map((r) => r.id),
    )
    .execute();
  const subnet = networkSubnet(parked[0]!.gateway, parked[0]!.netmask);
  await tx.updateTable('networks').set(subnet).where('id', '=', network.id).execute();
  return { network: { ...network, ...subnet }, created };
}

/** The zone's (first) physical network carrying Guest traffic, if it has one. */
export async function guestPhysicalNetworkOf(db: Tx, zoneId: number): Promise<number | undefined> {
  const physical = await db
    .selectFrom('physical_networks')
    .innerJoin(
      'physical_network_traffic_types',
      'physical_network_traffic_types.physical_network_id',
      'physical_networks.id',
    )
    .select('physical_networks.id')
    .where('physical_networks.zone_id', '=', zoneId)
    .where('physical_networks.removed', 'is', null)
    .where('physical_network_traffic_types.traffic_type', '=', 'Guest')
    .orderBy('physical_networks.id')
    .executeTakeFirst();
  return physical?.id;
}

/** A network's gateway, netmask and CIDR, from those of a guest range. */
export function networkSubnet(gateway: string, netmask: string) {
  const { first } = subnetBounds(gateway, netmask);
  return { gateway, netmask, cidr: `${intToIpv4(first)}/${netmaskBits(netmask)}` };
}

/** The zone's guest ranges left by a deleted network, waiting for the zone's next network. */
function parkedRanges(tx: Tx, zoneId: number) {
  return tx
    .selectFrom('vlan_ip_ranges')
    .select(['id', 'gateway', 'netmask'])
    .where('zone_id', '=', zoneId)
    .where(
      'network_id',
      'in',
      tx.selectFrom('networks').select('id').where('zone_id', '=', zoneId).where('removed', 'is not', null),
    )
    .orderBy('id')
    .execute();
}

/**
 * The Basic guest network a deployment in the zone lands on. After deleteNetwork the zone has
 * none but keeps its guest ranges, so the deployment makes a fresh network on them, as the first
 * range did: deleting a Basic zone's network resets its guest networking (routers, bridges)
 * without taking the pods' address plans with it. Undefined when the zone has no range to use.
 */
export async function basicNetworkForDeploy(
  app: App,
  tx: Tx,
  zoneId: number,
): Promise<NetworkRow | undefined> {
  const live = await basicNetworkOf(tx, zoneId);
  if (live) return live;
  const zone = await tx.selectFrom('zones').selectAll().where('id', '=', zoneId).executeTakeFirst();
  if (zone?.network_type !== 'Basic' || (await parkedRanges(tx, zoneId)).length === 0) return undefined;
  const { network, created } = await ensureBasicNetwork(app, tx, zone);
  if (created)
    await recordEvent({ app }, tx, await systemOwner(app, tx), {
      type: 'NETWORK.CREATE',
      description: `creating guest network ${network.name} of zone ${zone.name} on its guest IP ranges`,
      resourceType: 'Network',
      resourceId: network.uuid,
    });
  return network;
}

function basicNetworkQuery(tx: Tx, zoneId: number) {
  return tx
    .selectFrom('networks')
    .selectAll()
    .where('zone_default_for', '=', zoneId)
    .where('removed', 'is', null);
}

export function basicNetworkOf(tx: Tx, zoneId: number): Promise<NetworkRow | undefined> {
  return basicNetworkQuery(tx, zoneId).executeTakeFirst();
}

export async function presentNetworks(ctx: CallContext, rows: NetworkRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const [offerings, zones, domains, physicals, accounts] = await Promise.all([
    db
      .selectFrom('network_offerings')
      .selectAll()
      .where('id', 'in', [...new Set(rows.map((r) => r.network_offering_id))])
      .execute(),
    db
      .selectFrom('zones')
      .selectAll()
      .where('id', 'in', [...new Set(rows.map((r) => r.zone_id))])
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', [...new Set(rows.map((r) => r.domain_id ?? -1))])
      .execute(),
    db
      .selectFrom('physical_networks')
      .select(['id', 'uuid'])
      .where('id', 'in', [...new Set(rows.map((r) => r.physical_network_id ?? -1))])
      .execute(),
    db
      .selectFrom('accounts')
      .select(['id', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.account_id ?? -1))])
      .execute(),
  ]);
  const accountName = new Map(accounts.map((a) => [a.id, a.name]));
  const admin = ctx.caller.roleKind === 'admin';
  const offeringById = new Map(offerings.map((o) => [o.id, o]));
  const zoneById = new Map(zones.map((z) => [z.id, z]));
  const domainById = new Map(domains.map((d) => [d.id, d]));
  const physicalById = new Map(physicals.map((p) => [p.id, p.uuid]));
  const vpcIds = [...new Set(rows.map((r) => r.vpc_id).filter((v): v is number => v !== null))];
  const vpcById = new Map(
    (vpcIds.length
      ? await db.selectFrom('vpcs').select(['id', 'uuid', 'name']).where('id', 'in', vpcIds).execute()
      : []
    ).map((v) => [v.id, v]),
  );
  const aclIds = [...new Set(rows.flatMap((n) => (n.network_acl_id !== null ? [n.network_acl_id] : [])))];
  const aclById = new Map(
    (aclIds.length
      ? await db
          .selectFrom('network_acl_lists')
          .select(['id', 'uuid', 'name'])
          .where('id', 'in', aclIds)
          .execute()
      : []
    ).map((a) => [a.id, a]),
  );
  return rows.map((n) => {
    const offering = offeringById.get(n.network_offering_id) as NetworkOfferingRow;
    const zone = zoneById.get(n.zone_id) as ZoneRow;
    const domain = n.domain_id === null ? undefined : domainById.get(n.domain_id);
    return {
      id: n.uuid,
      name: n.name,
      displaytext: n.display_text,
      broadcastdomaintype: n.broadcast_domain_type,
      broadcasturi: n.broadcast_uri ?? undefined,
      traffictype: n.traffic_type,
      gateway: n.gateway ?? undefined,
      netmask: n.netmask ?? undefined,
      cidr: n.cidr ?? undefined,
      zoneid: zone.uuid,
      zonename: zone.name,
      networkofferingid: offering.uuid,
      networkofferingname: offering.name,
      networkofferingdisplaytext: offering.display_text,
      networkofferingconservemode: offering.conserve_mode === 1,
      networkofferingavailability: offering.availability,
      issystem: false,
      state: n.state,
      related: n.uuid,
      ...(n.vpc_id !== null
        ? { vpcid: vpcById.get(n.vpc_id)?.uuid, vpcname: vpcById.get(n.vpc_id)?.name }
        : {}),
      ...(n.network_acl_id !== null
        ? { aclid: aclById.get(n.network_acl_id)?.uuid, aclname: aclById.get(n.network_acl_id)?.name }
        : {}),
      dns1: zone.dns1,
      dns2: zone.dns2 ?? undefined,
      type: n.guest_type,
      acltype: n.acl_type,
      subdomainaccess: n.acl_type === 'Domain' ? n.subdomain_access === 1 : undefined,
      account: n.account_id === null ? undefined : accountName.get(n.account_id),
      vlan: admin && n.vni !== null ? String(n.vni) : undefined,
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
      networkdomain: n.network_domain ?? zone.network_domain ?? undefined,
      physicalnetworkid: n.physical_network_id === null ? undefined : physicalById.get(n.physical_network_id),
      restartrequired: false,
      specifyipranges: offering.specify_ip_ranges === 1,
      canusefordeploy: true,
      ispersistent: false,
      isdefault: n.zone_default_for !== null,
      service: presentServices(offering),
      tags: [],
      details: {},
      displaynetwork: n.display_network === 1,
      strechedl2subnet: false,
      redundantrouter: false,
      supportsvmautoscaling: false,
      internetprotocol: 'IPv4',
      hasannotations: false,
      created: formatDate(n.created),
    };
  });
}

const NETWORK_FILTERS = ['all', 'account', 'domain', 'accountdomain', 'shared'];

/**
 * Which networks a list shows. Account networks follow the list's ownership scope (listOwned's):
 * the caller's own, or with listall/domainid/account those an administrator reaches. Domain-wide
 * networks have no owning account, so the scope holds them for administrators whose scope covers
 * their domain; they are also shown (this predicate, listOwned's alsoVisible) to the accounts that
 * may use them: of their domain, or of a domain below it when it grants subdomain access.
 */
function usableDomainNetworks(ctx: CallContext) {
  // The caller's domain and those above it: their domain-wide networks are the caller's to use.
  const path = ctx.caller.domain.path;
  const prefixes = [
    '/',
    ...path
      .split('/')
      .filter(Boolean)
      .map((_, i, parts) => `/${parts.slice(0, i + 1).join('/')}/`),
  ];
  const usable = ctx.app.store.db.selectFrom('domains').select('id').where('path', 'in', prefixes);
  return (eb: ExpressionBuilder<Database, 'networks'>): Expression<SqlBool> =>
    eb.and([
      eb('networks.acl_type', '=', 'Domain'),
      eb.or([
        eb('networks.domain_id', '=', ctx.caller.domain.id),
        // A network of a domain above the caller's, when it grants subdomain access.
        eb.and([eb('networks.domain_id', 'in', usable), eb('networks.subdomain_access', '=', 1)]),
      ]),
    ]);
}

export const listNetworks = defineCommand({
  name: 'listNetworks',
  description:
    'Lists the guest networks the caller may use or administer; system networks are never listed, and users see only those of enabled zones.',
  params: {
    ...listParams,
    ...scopeParams,
    id: p.uuid({ description: 'Only the network with this ID.' }),
    name: p.string({ description: 'Only networks with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only networks of this zone.' }),
    type: p.string({
      description: "Only networks of this guest type: Isolated or Shared (Basic zones' network is Shared).",
    }),
    traffictype: p.string({
      description:
        'Only networks of this traffic type; only Guest networks are listed, so other values give an empty list.',
    }),
    issystem: p.boolean({ description: 'True gives an empty list: system networks are not listed.' }),
    acltype: p.string({ description: 'Only networks with this access type: Account or Domain.' }),
    canusefordeploy: p.boolean({ description: 'False gives an empty list; true or omitted lists all.' }),
    displaynetwork: p.boolean({
      adminOnly: true,
      description:
        'Root administrators: only networks shown (true) or hidden (false) from end users, who never see hidden ones.',
    }),
    forvpc: p.boolean({ description: 'Only VPC tiers (true) or only networks outside VPCs (false).' }),
    vpcid: p.uuid({ description: 'Only the tiers of this VPC.' }),
    physicalnetworkid: p.uuid({ description: 'Only networks on this physical network.' }),
    networkofferingid: p.uuid({ description: 'Only networks built from this network offering.' }),
    associatednetworkid: p.uuid({
      description: 'Any value gives an empty list: networks are never associated with others.',
    }),
    networkfilter: p.string({
      description:
        'Which networks: Account (owned by an account), Domain (domain-wide), AccountDomain (both), Shared (Shared ones of either kind) or All (the default).',
    }),
    restartrequired: p.boolean({
      description: 'True gives an empty list: no network is ever marked as needing a restart.',
    }),
    specifyipranges: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    supportedservices: p.list({
      description:
        'Comma-separated service names (e.g. Dhcp,SourceNat): only networks whose offering provides all of them.',
    }),
    retrieveonlyresourcecount: p.boolean({
      description: 'Return only the count of matching networks, without the networks themselves.',
    }),
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    tags: p.map({
      description: 'Only networks carrying all these resource tags (tags[0].key, tags[0].value, ...).',
    }),
    vlan: p.string({
      description:
        "Only the network on this VXLAN VNI (bare, vlan://N or vxlan://N); 'untagged' gives non-isolated networks without a VNI.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    // networkfilter (Account, Domain, AccountDomain, Shared, All) narrows what is visible.
    const filter = (params.networkfilter ?? 'all').toLowerCase();
    let q = db
      .selectFrom('networks')
      .where('networks.removed', 'is', null)
      .where('networks.traffic_type', '=', 'Guest');
    if (filter === 'account') q = q.where('networks.acl_type', '=', 'Account');
    if (filter === 'domain') q = q.where('networks.acl_type', '=', 'Domain');
    if (filter === 'shared') q = q.where('networks.guest_type', '=', 'Shared');
    // Others than administrators deploy only into enabled zones, so they see only those networks.
    if (ctx.caller.roleKind !== 'admin')
      q = q.where(
        'networks.zone_id',
        'in',
        app.store.db.selectFrom('zones').select('id').where('allocation_state', '=', 'Enabled'),
      );
    if (params.id) q = q.where('networks.uuid', '=', params.id);
    if (params.name) q = q.where('networks.name', '=', params.name);
    // Networks hidden with displaynetwork=false are listed to root administrators only.
    if (params.displaynetwork !== undefined)
      q = q.where('networks.display_network', '=', params.displaynetwork ? 1 : 0);
    if (ctx.caller.roleKind !== 'admin') q = q.where('networks.display_network', '=', 1);
    if (params.zoneid)
      q = q.where(
        'networks.zone_id',
        'in',
        db.selectFrom('zones').select('id').where('uuid', '=', params.zoneid),
      );
    if (params.type) q = q.where(likeEscaped('networks.guest_type', escapeLike(params.type), likeOp(ctx)));
    if (params.traffictype)
      q = q.where(likeEscaped('networks.traffic_type', escapeLike(params.traffictype), likeOp(ctx)));
    if (params.acltype)
      q = q.where(likeEscaped('networks.acl_type', escapeLike(params.acltype), likeOp(ctx)));
    const physical = params.physicalnetworkid
      ? db.selectFrom('physical_networks').select('id').where('uuid', '=', params.physicalnetworkid)
      : undefined;
    if (physical) q = q.where('networks.physical_network_id', 'in', physical);
    const offering = params.networkofferingid
      ? db.selectFrom('network_offerings').select('id').where('uuid', '=', params.networkofferingid)
      : undefined;
    if (offering) q = q.where('networks.network_offering_id', 'in', offering);
    if (params.vlan) {
      const vlan = params.vlan.replace(/^(vlan|vxlan):\/\//i, '').toLowerCase();
      q =
        vlan === 'untagged'
          ? q.where('networks.vni', 'is', null).where('networks.guest_type', '!=', 'Isolated')
          : q.where('networks.vni', '=', Number(vlan) || -1);
    }
    if (params.keyword)
      q = q.where(likeEscaped('networks.name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    q = withTags(q, 'Network', 'networks.id', params.tags);
    if (params.forvpc !== undefined) q = q.where('networks.vpc_id', params.forvpc ? 'is not' : 'is', null);
    if (params.vpcid)
      q = q.where(
        'networks.vpc_id',
        'in',
        db.selectFrom('vpcs').select('id').where('uuid', '=', params.vpcid),
      );
    // No system networks are listed, and no VPC, restart-pending or hidden ones exist yet.
    const none =
      params.issystem === true ||
      params.associatednetworkid !== undefined ||
      params.restartrequired === true ||
      params.canusefordeploy === false;
    if (none) q = q.where(sql<SqlBool>`1 = 0`);
    if (params.supportedservices?.length) {
      const offerings = await db.selectFrom('network_offerings').selectAll().execute();
      const ids = offerings.filter((o) => hasServices(o, params.supportedservices)).map((o) => o.id);
      q = q.where('networks.network_offering_id', 'in', [-1, ...ids]);
    }
    return listOwned(ctx, params, q, {
      owner: { account: 'networks.account_id', domain: 'networks.domain_id' },
      alsoVisible: filter === 'account' ? undefined : usableDomainNetworks(ctx),
      // The command's own ids, each 431 when it names nothing, after the scope's own checks.
      checks: async () => {
        if (!NETWORK_FILTERS.includes(filter))
          throw invalidParameter(
            `Invalid networkfilter ${params.networkfilter}: use Account, Domain, AccountDomain, Shared or All`,
          );
        if (params.zoneid) await findZone(ctx, params.zoneid);
        if (physical && !(await physical.executeTakeFirst()))
          throw invalidParameter(`Unable to find physical network by id ${params.physicalnetworkid}`);
        if (offering && !(await offering.executeTakeFirst()))
          throw invalidParameter(`Unable to find network offering by id ${params.networkofferingid}`);
        if (params.vpcid) await findOwned(ctx, 'vpcs', params.vpcid, { noun: 'VPC' });
      },
      rows: (scoped, page) => paginate(scoped.selectAll('networks').orderBy('networks.id'), page).execute(),
      present: (rows) => presentNetworks(ctx, rows),
    });
  },
});

export const networkReadCommands = [listNetworks];
