/**
 * Networks (offerings are in network-offerings.ts). A Basic zone has exactly one guest network, shared by every
 * account and isolated by security groups; it comes into being with the zone's first guest IP
 * range, as upstream's zone wizard creates it with the first range. deleteNetwork removes it with
 * its routers and host bridges; the zone keeps its ranges and the next deployment makes a new one.
 */
import { formatDate } from '../clock.ts';
import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { NetworkOfferingRow, NetworkRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import { escapeLike, listScope } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { findZone, intToIpv4, likeOp, netmaskBits, subnetBounds } from '../infra/common.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { withTags } from '../tags/tags.ts';
import { insertUnlessTaken, latest, systemOwner } from './common.ts';
import { BASIC_ZONE_OFFERING, hasServices, presentServices } from './network-offerings.ts';

/** The name upstream's zone wizard gives a Basic zone's guest network. */
const BASIC_NETWORK_NAME = 'defaultGuestNetwork';

/**
 * The zone's Basic guest network, created on first use. The unique zone_default_for key makes a
 * concurrent first creation land on the same row instead of making two.
 */
export async function ensureBasicNetwork(
  app: App,
  tx: Tx,
  zone: ZoneRow,
): Promise<{ network: NetworkRow; created: boolean }> {
  const existing = await basicNetworkOf(tx, zone.id);
  if (existing) return { network: existing, created: false };
  const offering = await tx
    .selectFrom('network_offerings')
    .select('id')
    .where('name', '=', BASIC_ZONE_OFFERING)
    .executeTakeFirstOrThrow();
  const physical = await tx
    .selectFrom('physical_networks')
    .innerJoin(
      'physical_network_traffic_types',
      'physical_network_traffic_types.physical_network_id',
      'physical_networks.id',
    )
    .select('physical_networks.id')
    .where('physical_networks.zone_id', '=', zone.id)
    .where('physical_networks.removed', 'is', null)
    .where('physical_network_traffic_types.traffic_type', '=', 'Guest')
    .orderBy('physical_networks.id')
    .executeTakeFirst();
  const root = await tx
    .selectFrom('domains')
    .select('id')
    .where('parent_id', 'is', null)
    .executeTakeFirstOrThrow();
  const created = await insertUnlessTaken(app, tx, 'networks', {
    uuid: app.ids.uuid(),
    name: BASIC_NETWORK_NAME,
    display_text: BASIC_NETWORK_NAME,
    zone_id: zone.id,
    network_offering_id: offering.id,
    physical_network_id: physical?.id ?? null,
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

export async function presentNetworks(ctx: Pick<CallContext, 'app'>, rows: NetworkRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const [offerings, zones, domains, physicals] = await Promise.all([
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
  ]);
  const offeringById = new Map(offerings.map((o) => [o.id, o]));
  const zoneById = new Map(zones.map((z) => [z.id, z]));
  const domainById = new Map(domains.map((d) => [d.id, d]));
  const physicalById = new Map(physicals.map((p) => [p.id, p.uuid]));
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
      dns1: zone.dns1,
      dns2: zone.dns2 ?? undefined,
      type: n.guest_type,
      acltype: n.acl_type,
      subdomainaccess: n.acl_type === 'Domain' ? true : undefined,
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
      networkdomain: zone.network_domain ?? undefined,
      physicalnetworkid: n.physical_network_id === null ? undefined : physicalById.get(n.physical_network_id),
      restartrequired: false,
      specifyipranges: offering.specify_ip_ranges === 1,
      canusefordeploy: true,
      ispersistent: false,
      isdefault: n.zone_default_for !== null,
      service: presentServices(offering),
      tags: [],
      details: {},
      displaynetwork: true,
      strechedl2subnet: false,
      redundantrouter: false,
      supportsvmautoscaling: false,
      internetprotocol: 'IPv4',
      hasannotations: false,
      created: formatDate(n.created),
    };
  });
}

export const listNetworks = defineCommand({
  name: 'listNetworks',
  params: {
    ...listParams,
    ...scopeParams,
    projectid: p.uuid(),
    id: p.uuid(),
    name: p.string(),
    zoneid: p.uuid(),
    type: p.string(),
    traffictype: p.string(),
    issystem: p.boolean(),
    acltype: p.string(),
    canusefordeploy: p.boolean(),
    displaynetwork: p.boolean(),
    forvpc: p.boolean(),
    vpcid: p.uuid(),
    physicalnetworkid: p.uuid(),
    networkofferingid: p.uuid(),
    associatednetworkid: p.uuid(),
    networkfilter: p.string(),
    restartrequired: p.boolean(),
    specifyipranges: p.boolean(),
    supportedservices: p.list(),
    retrieveonlyresourcecount: p.boolean(),
    showicon: p.boolean(),
    tags: p.map(),
    vlan: p.string(),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    // Validates account/domainid access (431/531) even though the zone-wide shared networks
    // here are visible to every account.
    await listScope(ctx, params);
    let q = app.store.db.selectFrom('networks').where('networks.removed', 'is', null);
    // Others than administrators deploy only into enabled zones, so they see only those networks.
    if (ctx.caller.roleKind !== 'admin')
      q = q.where(
        'networks.zone_id',
        'in',
        app.store.db.selectFrom('zones').select('id').where('allocation_state', '=', 'Enabled'),
      );
    if (params.id) q = q.where('networks.uuid', '=', params.id);
    if (params.name) q = q.where('networks.name', '=', params.name);
    if (params.zoneid) q = q.where('networks.zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.type) q = q.where('networks.guest_type', likeOp(ctx), escapeLike(params.type));
    if (params.traffictype) q = q.where('networks.traffic_type', likeOp(ctx), escapeLike(params.traffictype));
    if (params.acltype) q = q.where('networks.acl_type', likeOp(ctx), escapeLike(params.acltype));
    if (params.physicalnetworkid) {
      const physical = await app.store.db
        .selectFrom('physical_networks')
        .select('id')
        .where('uuid', '=', params.physicalnetworkid)
        .executeTakeFirst();
      if (!physical)
        throw invalidParameter(`Unable to find physical network by id ${params.physicalnetworkid}`);
      q = q.where('networks.physical_network_id', '=', physical.id);
    }
    if (params.networkofferingid) {
      const offering = await app.store.db
        .selectFrom('network_offerings')
        .select('id')
        .where('uuid', '=', params.networkofferingid)
        .executeTakeFirst();
      if (!offering)
        throw invalidParameter(`Unable to find network offering by id ${params.networkofferingid}`);
      q = q.where('networks.network_offering_id', '=', offering.id);
    }
    if (params.vlan && params.vlan.replace(/^vlan:\/\//, '').toLowerCase() !== 'untagged')
      q = q.where('networks.id', '=', -1);
    if (params.keyword) q = q.where('networks.name', likeOp(ctx), `%${escapeLike(params.keyword)}%`);
    q = withTags(q, 'Network', 'networks.id', params.tags);
    // Only shared guest networks exist: no system, VPC, restart-pending or hidden ones.
    const none =
      params.issystem === true ||
      params.forvpc === true ||
      params.vpcid !== undefined ||
      params.associatednetworkid !== undefined ||
      params.restartrequired === true ||
      params.displaynetwork === false ||
      params.canusefordeploy === false ||
      params.specifyipranges === false ||
      (params.networkfilter !== undefined &&
        !['all', 'domain', 'shared'].includes(params.networkfilter.toLowerCase()));
    if (none) return listResult([], 0);
    const rows = (await q.selectAll('networks').orderBy('networks.id').execute()) as NetworkRow[];
    const offerings = await app.store.db.selectFrom('network_offerings').selectAll().execute();
    const offeringById = new Map(offerings.map((o) => [o.id, o]));
    const matching = rows.filter((n) =>
      hasServices(offeringById.get(n.network_offering_id) as NetworkOfferingRow, params.supportedservices),
    );
    if (params.retrieveonlyresourcecount) return listResult([], matching.length);
    const page = pageOf(app, params);
    const slice = page.limit === undefined ? matching : matching.slice(page.offset, page.offset + page.limit);
    return listResult(await presentNetworks(ctx, slice), matching.length);
  },
});

export const networkReadCommands = [listNetworks];
