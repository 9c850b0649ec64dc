/**
 * Public IP ranges of an Advanced zone (createVlanIpRange forvirtualnetwork=true,
 * dedicatePublicIpRange, releasePublicIpRange, and deleteVlanIpRange of a public range).
 *
 * A public range is zone-wide (no pod) and belongs, as upstream, to the zone's system network of
 * traffic type Public, made on first use. Every address of the range becomes a `public_ips` row
 * (state Free) in the range's transaction; public-ips.ts hands them out. A VLAN tag may be given
 * and is stored and shown, but the routers' public side is the plain bridge of the Public traffic
 * type's KVM label: tagging is left to the host's bridge.
 */
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { NetworkRow, VlanIpRangeRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findDomainByUuid, inSubtree } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import {
  intToIpv4,
  ipv4ToInt,
  netmaskBits,
  requireIpv4,
  requireNetmask,
  subnetBounds,
} from '../infra/common.ts';
import { findProject } from '../projects/access.ts';
import { PUBLIC_NETWORK_OFFERING } from './network-offerings.ts';

/** Addresses inserted per statement when a range is created (keeps statements small on every database). */
const BATCH = 500;
/** The largest public range accepted at once: a /16, 65,534 address rows. */
const MAX_ADDRESSES = 65_536;

export interface PublicRangeInput {
  gateway?: string;
  netmask?: string;
  startIp?: string;
  endIp?: string;
  vlan?: string;
  account?: string;
  domainId?: string;
  projectId?: string;
  physicalNetworkUuid?: string;
}

/** "untagged", "vlan://untagged", "123", "vlan://123" → "untagged" or the id. */
export function publicVlan(value: string | undefined): string {
  if (value === undefined || value.trim() === '') return 'untagged';
  const v = value
    .trim()
    .replace(/^vlan:\/\//i, '')
    .toLowerCase();
  if (v === 'untagged') return v;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 16777214)
    throw invalidParameter(`Invalid vlan id ${value}: use untagged or a number from 1 to 16777214`);
  return String(Number(v));
}

/**
 * The zone's system network of traffic type Public (upstream makes it with the zone; here with
 * the first public range). Hidden from listNetworks unless issystem=true.
 */
export async function ensurePublicNetwork(app: App, tx: Tx, zone: ZoneRow): Promise<NetworkRow> {
  const existing = await publicNetworkOf(tx, zone.id);
  if (existing) return existing;
  const offering = await tx
    .selectFrom('network_offerings')
    .select('id')
    .where('name', '=', PUBLIC_NETWORK_OFFERING)
    .executeTakeFirstOrThrow();
  const physical = await tx
    .selectFrom('physical_networks as n')
    .innerJoin('physical_network_traffic_types as t', 't.physical_network_id', 'n.id')
    .select('n.id')
    .where('n.zone_id', '=', zone.id)
    .where('n.removed', 'is', null)
    .where('t.traffic_type', '=', 'Public')
    .executeTakeFirst();
  const root = await tx
    .selectFrom('domains')
    .select('id')
    .where('parent_id', 'is', null)
    .executeTakeFirstOrThrow();
  const id = await insertId(app.store, tx, 'networks', {
    uuid: app.ids.uuid(),
    name: `PublicNetwork-${zone.name}`,
    display_text: `Public network of zone ${zone.name}`,
    zone_id: zone.id,
    network_offering_id: offering.id,
    physical_network_id: physical?.id ?? null,
    traffic_type: 'Public',
    // Upstream's system networks have no guest type; the column is not null, so empty.
    guest_type: '',
    broadcast_domain_type: 'Vlan',
    broadcast_uri: null,
    gateway: null,
    netmask: null,
    cidr: null,
    state: 'Setup',
    acl_type: 'Domain',
    domain_id: root.id,
    account_id: null,
    zone_default_for: null,
    created: app.clock.now(),
  });
  return tx.selectFrom('networks').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

export function publicNetworkOf(tx: Tx, zoneId: number): Promise<NetworkRow | undefined> {
  return tx
    .selectFrom('networks')
    .selectAll()
    .where('zone_id', '=', zoneId)
    .where('traffic_type', '=', 'Public')
    .where('removed', 'is', null)
    .orderBy('id')
    .executeTakeFirst();
}

/** Who a range is dedicated to: an account (with its domain), a domain, or nobody. */
async function dedication(
  ctx: CallContext,
  account: string | undefined,
  domainId: string | undefined,
  projectId?: string,
): Promise<{ accountId: number | null; domainId: number | null }> {
  // A range dedicated to a project is its account's: the project's members acquire from it.
  if (projectId) {
    if (account) throw invalidParameter("ProjectId and account/domainId can't be specified together");
    const project = await findProject(ctx, projectId);
    return { accountId: project.project_account_id, domainId: project.domain_id };
  }
  if (account) {
    if (!domainId) throw invalidParameter('Please specify a domainid along with the account');
    const { account: row } = await resolveAccount(ctx, { account, domainid: domainId });
    return { accountId: row.id, domainId: row.domain_id };
  }
  if (domainId) return { accountId: null, domainId: (await findDomainByUuid(ctx, domainId)).id };
  return { accountId: null, domainId: null };
}

function checkAddresses(input: PublicRangeInput) {
  if (!input.gateway || !input.netmask || !input.startIp)
    throw invalidParameter('A public IP range needs gateway, netmask and startip');
  const gateway = requireIpv4(input.gateway, 'gateway');
  const netmask = requireNetmask(input.netmask);
  const startIp = requireIpv4(input.startIp, 'startip');
  const endIp = input.endIp ? requireIpv4(input.endIp, 'endip') : startIp;
  const start = ipv4ToInt(startIp);
  const end = ipv4ToInt(endIp);
  if (start > end) throw invalidParameter(`The start IP ${startIp} is after the end IP ${endIp}`);
  const { first, last } = subnetBounds(gateway, netmask);
  const bits = netmaskBits(netmask) ?? 32;
  if (start <= first || end >= last || bits > 30)
    throw invalidParameter(
      `Please ensure that the IP range ${startIp}-${endIp} is in the same subnet as its gateway ${gateway} and as per the netmask ${netmask} (${intToIpv4(first)}/${bits}, network and broadcast addresses excluded)`,
    );
  const gw = ipv4ToInt(gateway);
  if (gw >= start && gw <= end)
    throw invalidParameter(
      `The gateway ${gateway} shouldn't be part of the public IP range ${startIp}-${endIp}`,
    );
  if (end - start + 1 > MAX_ADDRESSES)
    throw invalidParameter(
      `A public IP range holds at most ${MAX_ADDRESSES} addresses; split ${startIp}-${endIp}`,
    );
  return { gateway, netmask, startIp, endIp, start, end };
}

/** Overlaps with any range of the zone (public or guest) or a pod's management range are refused. */
async function checkFree(tx: Tx, zone: ZoneRow, start: number, end: number, label: string): Promise<void> {
  const clash = await tx
    .selectFrom('vlan_ip_ranges')
    .select(['start_ip', 'end_ip'])
    .where('zone_id', '=', zone.id)
    .where('start_num', '<=', end)
    .where('end_num', '>=', start)
    .executeTakeFirst();
  if (clash)
    throw invalidParameter(
      `The IP range ${label} overlaps the existing range ${clash.start_ip}-${clash.end_ip} in zone ${zone.name}`,
    );
  const pods = await tx
    .selectFrom('pods')
    .select(['name', 'start_ip', 'end_ip'])
    .where('zone_id', '=', zone.id)
    .where('removed', 'is', null)
    .where('start_ip', 'is not', null)
    .execute();
  for (const pod of pods) {
    const pStart = ipv4ToInt(pod.start_ip as string);
    const pEnd = ipv4ToInt((pod.end_ip ?? pod.start_ip) as string);
    if (start <= pEnd && pStart <= end)
      throw invalidParameter(`The IP range ${label} overlaps the management range of pod ${pod.name}`);
  }
}

/**
 * Adds a public range to an Advanced zone with one Free public_ips row per address, all in one
 * transaction; the input is checked first, so a refused range (431) leaves nothing behind.
 */
export async function createPublicIpRange(
  ctx: CallContext,
  zone: ZoneRow,
  input: PublicRangeInput,
): Promise<VlanIpRangeRow> {
  const { app } = ctx;
  if (zone.network_type !== 'Advanced')
    throw invalidParameter(
      `Zone ${zone.name} is a Basic zone: it has no public IP ranges (use forvirtualnetwork=false and a podid for guest ranges)`,
    );
  const r = checkAddresses(input);
  const vlan = publicVlan(input.vlan);
  const owner = await dedication(ctx, input.account, input.domainId, input.projectId);
  const label = `${r.startIp}-${r.endIp}`;
  return app.store.db.transaction().execute(async (tx) => {
    // A no-op write to the zone row, first, serialises range creation per zone on PostgreSQL and
    // MariaDB (SQLite transactions are serial already): the overlap checks and the zone's one
    // Public network then see what a concurrent creation committed.
    await tx
      .updateTable('zones')
      .set((eb) => ({ sort_key: eb.ref('sort_key') }))
      .where('id', '=', zone.id)
      .execute();
    await checkFree(tx, zone, r.start, r.end, label);
    // Ranges sharing a VLAN are one segment: they must share its subnet (upstream's rule too).
    const sameVlan = await tx
      .selectFrom('vlan_ip_ranges')
      .select(['gateway', 'netmask'])
      .where('zone_id', '=', zone.id)
      .where('for_virtual_network', '=', 1)
      .where('vlan', '=', vlan)
      .executeTakeFirst();
    if (sameVlan && (sameVlan.gateway !== r.gateway || sameVlan.netmask !== r.netmask))
      throw invalidParameter(
        `The public IP range with vlan ${vlan} in zone ${zone.name} already uses gateway ${sameVlan.gateway} netmask ${sameVlan.netmask}; a range on the same vlan must use the same subnet`,
      );
    const network = await ensurePublicNetwork(app, tx, zone);
    if (input.physicalNetworkUuid) {
      const physical = await tx
        .selectFrom('physical_networks')
        .select(['id', 'zone_id'])
        .where('uuid', '=', input.physicalNetworkUuid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!physical || physical.zone_id !== zone.id)
        throw invalidParameter(
          `Unable to find physical network ${input.physicalNetworkUuid} in zone ${zone.name}`,
        );
    }
    const uuid = app.ids.uuid();
    const rangeId = await insertId(app.store, tx, 'vlan_ip_ranges', {
      uuid,
      zone_id: zone.id,
      pod_id: null,
      network_id: network.id,
      physical_network_id: network.physical_network_id,
      vlan,
      gateway: r.gateway,
      netmask: r.netmask,
      start_ip: r.startIp,
      end_ip: r.endIp,
      start_num: r.start,
      end_num: r.end,
      for_virtual_network: 1,
      account_id: owner.accountId,
      domain_id: owner.domainId,
      created: app.clock.now(),
    });
    for (let first = r.start; first <= r.end; first += BATCH) {
      const rows = [];
      for (let n = first; n <= Math.min(r.end, first + BATCH - 1); n++)
        rows.push({
          uuid: app.ids.uuid(),
          zone_id: zone.id,
          range_id: rangeId,
          ip4: intToIpv4(n),
          ip_num: n,
          state: 'Free',
          account_id: null,
          domain_id: null,
          network_id: null,
          static_nat_vm_id: null,
          static_nat_vm_ip: null,
          allocated: null,
        });
      await tx.insertInto('public_ips').values(rows).execute();
    }
    await logEvent(ctx, tx, {
      type: 'VLAN.IP.RANGE.CREATE',
      description: `creating public IP range ${label} in zone ${zone.name}`,
      resourceType: 'VlanIpRange',
      resourceId: uuid,
    });
    return tx.selectFrom('vlan_ip_ranges').selectAll().where('id', '=', rangeId).executeTakeFirstOrThrow();
  });
}

/**
 * Deletes a public range and its address rows, refused (536) while any address is not Free.
 * The Free rows go first: an address acquired meanwhile is not Free, stays, and fails the check.
 */
export async function deletePublicIpRange(ctx: CallContext, range: VlanIpRangeRow): Promise<void> {
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx.deleteFrom('public_ips').where('range_id', '=', range.id).where('state', '=', 'Free').execute();
    const held = await tx
      .selectFrom('public_ips')
      .select('ip4')
      .where('range_id', '=', range.id)
      .executeTakeFirst();
    if (held)
      throw resourceInUse(
        `The public IP range ${range.start_ip}-${range.end_ip} can't be deleted: address ${held.ip4} is allocated`,
      );
    await tx.deleteFrom('vlan_ip_ranges').where('id', '=', range.id).execute();
    // The zone's Public network lives for its ranges: with the last one gone it goes too, so it
    // never keeps a zone or physical network from being deleted (the next range makes a new one).
    const left = await tx
      .selectFrom('vlan_ip_ranges')
      .select('id')
      .where('network_id', '=', range.network_id)
      .executeTakeFirst();
    if (!left)
      await tx
        .updateTable('networks')
        .set({ removed: ctx.app.clock.now(), state: 'Destroy' })
        .where('id', '=', range.network_id)
        .where('traffic_type', '=', 'Public')
        .execute();
    await logEvent(ctx, tx, {
      type: 'VLAN.IP.RANGE.DELETE',
      description: `deleting public IP range ${range.start_ip}-${range.end_ip}`,
      resourceType: 'VlanIpRange',
      resourceId: range.uuid,
    });
  });
}

async function findPublicRange(ctx: CallContext, uuid: string): Promise<VlanIpRangeRow> {
  const range = await ctx.app.store.db
    .selectFrom('vlan_ip_ranges')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!range) throw invalidParameter(`Unable to find IP range by id ${uuid}`);
  if (range.for_virtual_network !== 1)
    throw invalidParameter(`IP range ${range.start_ip}-${range.end_ip} is not a public IP range`);
  return range;
}

/**
 * Dedicates a public range to an account or a domain. Refused (431) when the range is dedicated
 * already, or when one of its addresses is held by an account the dedication would exclude.
 */
export async function dedicatePublicIpRange(
  ctx: CallContext,
  params: { id: string; account?: string; domainid: string; projectid?: string },
): Promise<VlanIpRangeRow> {
  const range = await findPublicRange(ctx, params.id);
  const owner = await dedication(ctx, params.account, params.domainid, params.projectid);
  const domain = await ctx.app.store.db
    .selectFrom('domains')
    .select(['id', 'name', 'path'])
    .where('id', '=', owner.domainId as number)
    .executeTakeFirstOrThrow();
  return ctx.app.store.db.transaction().execute(async (tx) => {
    const current = await tx
      .selectFrom('vlan_ip_ranges')
      .selectAll()
      .where('id', '=', range.id)
      .executeTakeFirstOrThrow();
    if (current.account_id !== null || current.domain_id !== null)
      throw invalidParameter(
        `Public IP range ${range.start_ip}-${range.end_ip} is already dedicated; release it first`,
      );
    const held = await tx
      .selectFrom('public_ips as ip')
      .innerJoin('accounts as a', 'a.id', 'ip.account_id')
      .innerJoin('domains as d', 'd.id', 'a.domain_id')
      .select(['ip.ip4', 'a.id as account_id', 'a.name as account', 'd.path'])
      .where('ip.range_id', '=', range.id)
      .where('ip.state', '!=', 'Free')
      .execute();
    const outsider = held.find((h) =>
      owner.accountId !== null ? h.account_id !== owner.accountId : !inSubtree(h.path, domain.path),
    );
    if (outsider)
      throw invalidParameter(
        `Public IP address ${outsider.ip4} in range ${range.start_ip}-${range.end_ip} is allocated to another account (${outsider.account})`,
      );
    await tx
      .updateTable('vlan_ip_ranges')
      .set({ account_id: owner.accountId, domain_id: owner.domainId })
      .where('id', '=', range.id)
      .execute();
    await logEvent(ctx, tx, {
      type: 'VLAN.IP.RANGE.DEDICATE',
      description: `dedicating public IP range ${range.start_ip}-${range.end_ip} to ${params.account ? `account ${params.account}` : `domain ${domain.name}`}`,
      resourceType: 'VlanIpRange',
      resourceId: range.uuid,
    });
    return tx.selectFrom('vlan_ip_ranges').selectAll().where('id', '=', range.id).executeTakeFirstOrThrow();
  });
}

/** Returns a dedicated public range to the zone's shared pool; addresses already held stay with their owners. */
export async function releasePublicIpRange(ctx: CallContext, uuid: string): Promise<void> {
  const range = await findPublicRange(ctx, uuid);
  if (range.account_id === null && range.domain_id === null)
    throw invalidParameter(`Public IP range ${range.start_ip}-${range.end_ip} is not dedicated`);
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx
      .updateTable('vlan_ip_ranges')
      .set({ account_id: null, domain_id: null })
      .where('id', '=', range.id)
      .execute();
    await logEvent(ctx, tx, {
      type: 'VLAN.IP.RANGE.RELEASE',
      description: `releasing public IP range ${range.start_ip}-${range.end_ip}`,
      resourceType: 'VlanIpRange',
      resourceId: range.uuid,
    });
  });
}
