/**
 * Isolated guest networks of Advanced zones, owned by an account. A network is Allocated when
 * created (a record and its address plan, nothing on any host); the first VM start implements it:
 * it takes a VXLAN id from its physical network's range and, when its offering has source NAT,
 * a public address for it, then its router boots with the gateway address and a public side.
 * Guests' addresses come from the network's CIDR (the gateway excluded: the router holds it).
 */

import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { AccountRow, NetworkOfferingRow, NetworkRow, ZoneRow } from '../db/schema.ts';
import { insufficientCapacity, invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { recordStateChange } from '../events/state-events.ts';
import { findDomainByUuid, inSubtree } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { ResourceKind, reserve } from '../iam/limits.ts';
import type { OwnedLookup } from '../iam/owned.ts';
import { findZone, intToIpv4, ipv4ToInt, isIpv4, netmaskBits, subnetBounds } from '../infra/common.ts';
import { projectOwner } from '../projects/access.ts';
import { findNetwork } from './common.ts';
import { hasServices } from './network-offerings.ts';
import { ensureBasicNetwork, guestPhysicalNetworkOf } from './networks.ts';
import { acquirePublicIp } from './public-ips.ts';

/** Upstream's default guest CIDR of an Advanced zone (zones.guest_cidr overrides it). */
export const DEFAULT_GUEST_CIDR = '10.1.1.0/24';

/** Parses a VNI range list such as "5000-5999,7000" into [start, end] pairs. */
export function parseVniRanges(text: string | null): [number, number][] {
  if (!text) return [];
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      const [a, b] = part.split('-').map((n) => Number(n.trim()));
      return [a, b ?? a] as [number, number];
    })
    .filter(([a, b]) => Number.isInteger(a) && Number.isInteger(b) && a <= b);
}

/** The account a network is created for: the caller's, a project's, or one an administrator names. */
export async function networkOwner(
  ctx: CallContext,
  params: { account?: string; domainid?: string; projectid?: string },
): Promise<AccountRow> {
  const project = await projectOwner(ctx, params);
  if (project) return project;
  if (params.account)
    return (await resolveAccount(ctx, { account: params.account, domainid: params.domainid })).account;
  if (params.domainid) throw invalidParameter('domainid must be given together with account');
  return ctx.caller.account;
}

/**
 * Whether `account` may put VMs on the network: its own account network, or a domain-wide network
 * of its domain or (with subdomain access) of a domain above it.
 */
export async function checkNetworkUse(
  ctx: Pick<CallContext, 'app'>,
  network: NetworkRow,
  account: Pick<AccountRow, 'id' | 'name' | 'domain_id'>,
): Promise<void> {
  if (network.acl_type === 'Account') {
    if (network.account_id === account.id) return;
    throw permissionDenied(`Account ${account.name} does not have permission to use network ${network.name}`);
  }
  // Both domains in one statement (they are the same one for an account's own domain network).
  const paths = await ctx.app.store.db
    .selectFrom('domains')
    .select(['id', 'path'])
    .where('id', 'in', [account.domain_id, network.domain_id ?? -1])
    .execute();
  const own = paths.find((d) => d.id === account.domain_id);
  const of = paths.find((d) => d.id === network.domain_id);
  if (!own) throw new Error(`account ${account.name} has no domain ${account.domain_id}`);
  // Accounts of subdomains only when the network grants subdomain access (subdomainaccess).
  if (of && (own.path === of.path || (network.subdomain_access === 1 && inSubtree(own.path, of.path))))
    return;
  throw permissionDenied(`Account ${account.name} does not have permission to use network ${network.name}`);
}

/**
 * Networks as account-owned resources, for commands that change them (its owner, or an
 * administrator above it). Domain networks have no owning account: administrators of their domain
 * act on them; using one (deploying into it) is checkNetworkUse's question.
 */
export const OWNED_NETWORK: OwnedLookup<'networks'> = { noun: 'network' };

/** The networks named by a deployment's networkids, in the order given, checked for the VM's owner. */
export async function networksForDeploy(
  ctx: CallContext,
  owner: Pick<AccountRow, 'id' | 'name' | 'domain_id'>,
  uuids: string[],
): Promise<number[]> {
  const out: number[] = [];
  for (const uuid of uuids) {
    const network = await findNetwork(ctx, uuid).catch(() => {
      throw invalidParameter(`Unable to find network by id ${uuid} in networkids`);
    });
    await checkNetworkUse(ctx, network, owner);
    if (network.traffic_type !== 'Guest')
      throw invalidParameter(`Network ${network.name} is not a guest network`);
    out.push(network.id);
  }
  return out;
}

export interface Subnet {
  gateway: string;
  netmask: string;
  cidr: string;
  first: number;
  last: number;
}

/** The network's subnet from gateway+netmask, or the zone's guest CIDR (gateway its first host). */
export function subnetFor(zone: ZoneRow, gateway: string | undefined, netmask: string | undefined): Subnet {
  if ((gateway === undefined) !== (netmask === undefined))
    throw invalidParameter('gateway and netmask must be given together');
  let gw = gateway;
  let mask = netmask;
  if (gw === undefined || mask === undefined) {
    const [base, bitsText] = (zone.guest_cidr || DEFAULT_GUEST_CIDR).split('/');
    const bits = Number(bitsText);
    mask = intToIpv4(bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0);
    gw = intToIpv4(ipv4ToInt(base as string) + 1);
  }
  if (!isIpv4(gw)) throw invalidParameter(`Invalid gateway ${gw}`);
  const bits = isIpv4(mask) ? netmaskBits(mask) : undefined;
  if (bits === undefined) throw invalidParameter(`Invalid netmask ${mask}`);
  if (bits < 16 || bits > 29)
    throw invalidParameter(`The netmask ${mask} is not supported: isolated networks are /16 to /29`);
  const { first, last } = subnetBounds(gw, mask);
  const g = ipv4ToInt(gw);
  if (g <= first || g >= last)
    throw invalidParameter(`The gateway ${gw} is not a host address of its subnet`);
  return {
    gateway: gw,
    netmask: mask,
    cidr: `${intToIpv4(first)}/${bits}`,
    first: first + 1,
    last: last - 1,
  };
}

/** The named physical network, else the zone's one carrying Guest traffic (431 when none fits). */
export async function guestPhysicalNetwork(app: App, zone: ZoneRow, uuid?: string): Promise<number> {
  if (uuid !== undefined) {
    // The one the caller names: of this zone, carrying Guest traffic.
    const named = await app.store.db
      .selectFrom('physical_networks')
      .select(['id', 'name', 'zone_id'])
      .where('uuid', '=', uuid)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!named) throw invalidParameter(`Unable to find physical network by id ${uuid}`);
    if (named.zone_id !== zone.id)
      throw invalidParameter(`Physical network ${named.name} is not in zone ${zone.name}`);
    const guest = await app.store.db
      .selectFrom('physical_network_traffic_types')
      .select('id')
      .where('physical_network_id', '=', named.id)
      .where('traffic_type', '=', 'Guest')
      .executeTakeFirst();
    if (!guest) throw invalidParameter(`Physical network ${named.name} carries no Guest traffic`);
    return named.id;
  }
  const physical = await guestPhysicalNetworkOf(app.store.db, zone.id);
  if (physical === undefined)
    throw invalidParameter(`Zone ${zone.name} has no physical network carrying Guest traffic`);
  return physical;
}

/** A network domain is a DNS name (the router serves the VMs' names in it). */
export function checkNetworkDomain(domain: string | undefined): void {
  if (domain !== undefined && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$/.test(domain))
    throw invalidParameter(`Invalid network domain ${domain}`);
}

export interface IsolatedNetworkRequest {
  name: string;
  displaytext?: string;
  zone: ZoneRow;
  offering: NetworkOfferingRow;
  gateway?: string;
  netmask?: string;
  networkdomain?: string;
  account?: string;
  domainid?: string;
  projectid?: string;
  displaynetwork?: boolean;
  /** The physical network to take the segment from (default: the zone's one with Guest traffic). */
  physicalnetworkid?: string;
}

/** createNetwork for an isolated offering: the record, its address plan and the network limit. */
export async function createIsolatedNetwork(
  ctx: CallContext,
  req: IsolatedNetworkRequest,
): Promise<NetworkRow> {
  const { app } = ctx;
  const { zone, offering } = req;
  if (zone.network_type !== 'Advanced')
    throw invalidParameter(
      `Isolated networks need an Advanced zone; zone ${zone.name} is ${zone.network_type}`,
    );
  if (offering.state !== 'Enabled')
    throw invalidParameter(`Network offering ${offering.name} is not Enabled`);
  const owner = await networkOwner(ctx, req);
  const subnet = subnetFor(zone, req.gateway, req.netmask);
  const physical = await guestPhysicalNetwork(app, zone, req.physicalnetworkid);
  checkNetworkDomain(req.networkdomain);
  return app.store.db.transaction().execute(async (tx) => {
    await reserve(ctx, tx, owner, ResourceKind.Network, 1);
    return insertGuestNetwork(ctx, tx, {
      req,
      physical,
      subnet,
      range: { start: subnet.first, end: subnet.last, vlan: 'untagged' },
      guestType: 'Isolated',
      state: 'Allocated',
      aclType: 'Account',
      domainId: owner.domain_id,
      accountId: owner.id,
      vni: null,
      what: `isolated network for account ${owner.name}`,
    });
  });
}

export interface SharedNetworkRequest extends IsolatedNetworkRequest {
  vlan?: string;
  startip?: string;
  endip?: string;
  acltype?: string;
  subdomainaccess?: boolean;
}

/**
 * A Basic zone's one guest network, as upstream's zone wizard makes it with createNetwork before
 * it adds the pod's guest range (createVlanIpRange networkid=): an offering with security groups,
 * and none made before; the range then gives it its subnet.
 */
async function createBasicZoneNetwork(ctx: CallContext, req: SharedNetworkRequest): Promise<NetworkRow> {
  const { zone, offering } = req;
  if (!hasServices(offering, ['SecurityGroup']))
    throw invalidParameter(
      `The guest network of Basic zone ${zone.name} needs an offering with security groups, such as DefaultSharedNetworkOfferingWithSGService`,
    );
  return ctx.app.store.db.transaction().execute(async (tx) => {
    const { network, created } = await ensureBasicNetwork(ctx.app, tx, zone, {
      name: req.name,
      displayText: req.displaytext?.trim() || req.name,
      offeringId: offering.id,
    });
    if (!created)
      throw invalidParameter(`Basic zone ${zone.name} already has its guest network ${network.name}`);
    await logEvent(ctx, tx, {
      type: 'NETWORK.CREATE',
      description: `created the guest network of Basic zone ${zone.name}: ${network.name}`,
      resourceType: 'Network',
      resourceId: network.uuid,
    });
    return network;
  });
}

/**
 * createNetwork for a shared offering (administrators): a network of a domain (or one account)
 * on the VNI and address range the operator gives, served by a router like a Basic zone's.
 */
export async function createSharedNetwork(ctx: CallContext, req: SharedNetworkRequest): Promise<NetworkRow> {
  const { app } = ctx;
  const { zone, offering } = req;
  if (ctx.caller.roleKind === 'user')
    throw permissionDenied('Only administrators may create shared networks');
  if (zone.network_type === 'Basic') return createBasicZoneNetwork(ctx, req);
  if (zone.network_type !== 'Advanced')
    throw invalidParameter(
      `Shared networks are created in Advanced zones; zone ${zone.name} is ${zone.network_type}`,
    );
  if (hasServices(offering, ['SecurityGroup']))
    throw invalidParameter(
      `Network offering ${offering.name} needs security groups, which zone ${zone.name} does not have`,
    );
  const vni = Number(req.vlan?.replace(/^(vlan|vxlan):\/\//i, ''));
  if (req.vlan === undefined || !Number.isInteger(vni) || vni < 1 || vni > 16777214)
    throw invalidParameter('A shared network needs its VLAN/VNI: give vlan (1-16777214)');
  if (req.gateway === undefined || req.netmask === undefined || req.startip === undefined)
    throw invalidParameter('A shared network needs gateway, netmask and startip (and endip)');
  const subnet = subnetFor(zone, req.gateway, req.netmask);
  const endIp = req.endip ?? req.startip;
  if (!isIpv4(req.startip) || !isIpv4(endIp))
    throw invalidParameter('startip and endip must be IPv4 addresses');
  const start = ipv4ToInt(req.startip);
  const end = ipv4ToInt(endIp);
  if (start > end) throw invalidParameter('startip must not come after endip');
  if (start < subnet.first || end > subnet.last)
    throw invalidParameter(`The range ${req.startip}-${endIp} is not inside ${subnet.cidr}`);
  const gw = ipv4ToInt(subnet.gateway);
  if (start <= gw && gw <= end)
    throw invalidParameter(`The gateway ${subnet.gateway} must not be inside the range`);
  const aclType = (req.acltype ?? (req.account ? 'Account' : 'Domain')).toLowerCase();
  if (aclType !== 'domain' && aclType !== 'account')
    throw invalidParameter('acltype must be Domain or Account');
  if (aclType === 'account' && req.subdomainaccess !== undefined)
    throw invalidParameter('Parameter subDomainAccess can be specified only with aclType=Domain');
  const owner = aclType === 'account' ? await networkOwner(ctx, req) : undefined;
  const domain = owner
    ? { id: owner.domain_id }
    : req.domainid
      ? await findDomainByUuid(ctx, req.domainid)
      : await app.store.db
          .selectFrom('domains')
          .select('id')
          .where('parent_id', 'is', null)
          .executeTakeFirstOrThrow();
  const physical = await guestPhysicalNetwork(app, zone, req.physicalnetworkid);
  const overlapping = await app.store.db
    .selectFrom('vlan_ip_ranges')
    .innerJoin('networks', 'networks.id', 'vlan_ip_ranges.network_id')
    .select(['vlan_ip_ranges.start_ip', 'vlan_ip_ranges.end_ip'])
    .where('vlan_ip_ranges.zone_id', '=', zone.id)
    .where('networks.guest_type', '!=', 'Isolated')
    .where('networks.removed', 'is', null)
    .where('vlan_ip_ranges.start_num', '<=', end)
    .where('vlan_ip_ranges.end_num', '>=', start)
    .executeTakeFirst();
  if (overlapping)
    throw invalidParameter(
      `The range ${req.startip}-${endIp} overlaps the range ${overlapping.start_ip}-${overlapping.end_ip} of zone ${zone.name}`,
    );
  checkNetworkDomain(req.networkdomain);
  return app.store.db.transaction().execute(async (tx) => {
    if (owner) await reserve(ctx, tx, owner, ResourceKind.Network, 1);
    const taken = await tx.selectFrom('networks').select('name').where('vni', '=', vni).executeTakeFirst();
    if (taken) throw invalidParameter(`VLAN/VNI ${vni} is already used by network ${taken.name}`);
    return insertGuestNetwork(ctx, tx, {
      req,
      physical,
      subnet,
      range: { start, end, vlan: `vxlan://${vni}` },
      guestType: 'Shared',
      state: 'Setup',
      aclType: owner ? 'Account' : 'Domain',
      // As upstream's allow.subdomain.network.access default: subdomains may use it unless refused.
      subdomainAccess: owner ? undefined : (req.subdomainaccess ?? true),
      domainId: domain.id,
      accountId: owner?.id ?? null,
      vni,
      what: `shared network on VNI ${vni}`,
    });
  });
}

export interface GuestNetworkRecord {
  req: Pick<
    IsolatedNetworkRequest,
    'name' | 'displaytext' | 'zone' | 'offering' | 'networkdomain' | 'displaynetwork'
  >;
  physical: number;
  subnet: Subnet;
  /** The guests' address range in the subnet, and how it is tagged. */
  range: { start: number; end: number; vlan: string };
  guestType: 'Isolated' | 'Shared';
  state: string;
  aclType: 'Account' | 'Domain';
  /** Domain-wide networks: whether subdomains may use it (default true). */
  subdomainAccess?: boolean;
  domainId: number;
  accountId: number | null;
  vni: number | null;
  /** A VPC tier's VPC. */
  vpcId?: number;
  /** What NETWORK.CREATE says was created. */
  what: string;
}

/** The network row, its zone-wide address range and NETWORK.CREATE, in the caller's transaction. */
export async function insertGuestNetwork(
  ctx: CallContext,
  tx: Tx,
  n: GuestNetworkRecord,
): Promise<NetworkRow> {
  const { app } = ctx;
  const { zone, offering } = n.req;
  const now = app.clock.now();
  const uuid = app.ids.uuid();
  await tx
    .insertInto('networks')
    .values({
      uuid,
      name: n.req.name,
      display_text: n.req.displaytext ?? n.req.name,
      zone_id: zone.id,
      network_offering_id: offering.id,
      physical_network_id: n.physical,
      traffic_type: 'Guest',
      guest_type: n.guestType,
      broadcast_domain_type: 'Vxlan',
      broadcast_uri: n.vni === null ? null : `vxlan://${n.vni}`,
      gateway: n.subnet.gateway,
      netmask: n.subnet.netmask,
      cidr: n.subnet.cidr,
      state: n.state,
      acl_type: n.aclType,
      domain_id: n.domainId,
      account_id: n.accountId,
      zone_default_for: null,
      vni: n.vni,
      network_domain: n.req.networkdomain ?? zone.network_domain ?? null,
      display_network: n.req.displaynetwork === false ? 0 : 1,
      subdomain_access: n.subdomainAccess === false ? 0 : 1,
      vpc_id: n.vpcId ?? null,
      created: now,
      removed: null,
    })
    .execute();
  const network = await tx
    .selectFrom('networks')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
  await tx
    .insertInto('vlan_ip_ranges')
    .values({
      uuid: app.ids.uuid(),
      zone_id: zone.id,
      pod_id: null,
      network_id: network.id,
      physical_network_id: n.physical,
      vlan: n.range.vlan,
      gateway: n.subnet.gateway,
      netmask: n.subnet.netmask,
      start_ip: intToIpv4(n.range.start),
      end_ip: intToIpv4(n.range.end),
      start_num: n.range.start,
      end_num: n.range.end,
      for_virtual_network: 0,
      created: now,
    })
    .execute();
  await logEvent(ctx, tx, {
    type: 'NETWORK.CREATE',
    description: `created ${n.what}: ${network.name} (${n.subnet.cidr})`,
    resourceType: 'Network',
    resourceId: network.uuid,
  });
  return network;
}

/**
 * Takes a free VXLAN id of the network's physical network. The unique key on networks.vni decides
 * races: a lost update leaves vni null and the next free id is tried.
 */
async function allocateVni(app: App, network: NetworkRow): Promise<number> {
  const db = app.store.db;
  const physical = await db
    .selectFrom('physical_networks')
    .select(['name', 'vlan'])
    .where('id', '=', network.physical_network_id ?? -1)
    .executeTakeFirst();
  const ranges = parseVniRanges(physical?.vlan ?? null);
  if (ranges.length === 0)
    throw insufficientCapacity(
      `Unable to implement network ${network.name}: physical network ${physical?.name ?? ''} has no guest VNI range (set vlan with updatePhysicalNetwork)`,
    );
  const used = new Set(
    (await db.selectFrom('networks').select('vni').where('vni', 'is not', null).execute()).map((r) =>
      Number(r.vni),
    ),
  );
  for (const [start, end] of ranges)
    for (let vni = start; vni <= end; vni++) {
      if (used.has(vni)) continue;
      const taken = await db
        .updateTable('networks')
        .set({ vni, broadcast_uri: `vxlan://${vni}` })
        .where('id', '=', network.id)
        .where('vni', 'is', null)
        .executeTakeFirst()
        .then(
          (r) => Number(r.numUpdatedRows) > 0,
          () => false,
        );
      if (taken) return vni;
      const now = await db
        .selectFrom('networks')
        .select('vni')
        .where('id', '=', network.id)
        .executeTakeFirstOrThrow();
      if (now.vni !== null) return Number(now.vni);
      used.add(vni);
    }
  throw insufficientCapacity(
    `Unable to implement network ${network.name}: every VNI of physical network ${physical?.name ?? ''} is in use`,
  );
}

/**
 * Implements an isolated network before its first VM (or router) starts: a VXLAN id, the
 * source-NAT public address when the offering has the service, state Implemented. Idempotent;
 * callers hold the network's router lock. Returns the network as it now is.
 */
export async function implementNetwork(app: App, network: NetworkRow): Promise<NetworkRow> {
  if (network.guest_type !== 'Isolated') return network;
  const db = app.store.db;
  if (network.vni === null) await allocateVni(app, network);
  const offering = await db
    .selectFrom('network_offerings')
    .selectAll()
    .where('id', '=', network.network_offering_id)
    .executeTakeFirstOrThrow();
  // A VPC tier's traffic leaves from its VPC's source-NAT address, acquired with the VPC.
  if (hasServices(offering, ['SourceNat']) && network.vpc_id === null) {
    const has = await db
      .selectFrom('public_ips')
      .select('id')
      .where('network_id', '=', network.id)
      .where('source_nat', '=', 1)
      .executeTakeFirst();
    if (!has) {
      const account = await db
        .selectFrom('accounts')
        .selectAll()
        .where('id', '=', network.account_id ?? -1)
        .executeTakeFirstOrThrow();
      await db.transaction().execute(async (tx) => {
        await acquirePublicIp(app, tx, {
          zoneId: network.zone_id,
          accountId: account.id,
          domainId: account.domain_id,
          networkId: network.id,
          sourceNat: true,
        });
      });
    }
  }
  if (network.state !== 'Implemented')
    await db.transaction().execute(async (tx) => {
      await tx.updateTable('networks').set({ state: 'Implemented' }).where('id', '=', network.id).execute();
      await recordStateChange({ app }, tx, {
        resource: 'Network',
        uuid: network.uuid,
        event: 'ImplementNetwork',
        oldState: network.state,
        newState: 'Implemented',
      });
    });
  return db.selectFrom('networks').selectAll().where('id', '=', network.id).executeTakeFirstOrThrow();
}

/** Zone and offering of a createNetwork call, checked. */
export async function createNetworkInputs(
  ctx: CallContext,
  params: { zoneid: string; networkofferingid: string },
): Promise<{ zone: ZoneRow; offering: NetworkOfferingRow }> {
  const zone = await findZone(ctx, params.zoneid);
  const offering = await ctx.app.store.db
    .selectFrom('network_offerings')
    .selectAll()
    .where('uuid', '=', params.networkofferingid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!offering) throw invalidParameter(`Unable to find network offering by id ${params.networkofferingid}`);
  if (zone.allocation_state !== 'Enabled' && ctx.caller.roleKind !== 'admin')
    throw permissionDenied(`Zone ${zone.name} is not enabled`);
  return { zone, offering };
}
