/**
 * IP ranges (createVlanIpRange, listVlanIpRanges, deleteVlanIpRange, dedicatePublicIpRange,
 * releasePublicIpRange). Guest ranges: in a Basic zone each pod has its own untagged guest subnet;
 * guests get addresses from the ranges of their pod. Public ranges of Advanced zones
 * (forvirtualnetwork=true) are in public-ranges.ts.
 */
import type { App, CallContext, Caller } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { NetworkRow, PodRow, VlanIpRangeRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findDomainByUuid } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import {
  findPod,
  findZone,
  intToIpv4,
  ipv4ToInt,
  netmaskBits,
  requireIpv4,
  requireNetmask,
  subnetBounds,
} from '../infra/common.ts';
import { findProject } from '../projects/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { findNetwork, isForeignKeyViolation } from './common.ts';
import { ensureBasicNetwork, networkSubnet } from './networks.ts';
import {
  createPublicIpRange,
  dedicatePublicIpRange as dedicateRange,
  deletePublicIpRange,
  releasePublicIpRange as releaseRange,
} from './public-ranges.ts';

export interface GuestIpRangeInput {
  zoneId: number;
  podId: number;
  gateway: string;
  netmask: string;
  startIp: string;
  /** Defaults to startIp (a one-address range), as upstream. */
  endIp?: string;
  /** The network the range serves; a Basic zone's guest network (created if need be) when absent. */
  networkId?: number;
}

interface CheckedRange {
  gateway: string;
  netmask: string;
  startIp: string;
  endIp: string;
  start: number;
  end: number;
}

function checkRange(input: GuestIpRangeInput): CheckedRange {
  const gateway = requireIpv4(input.gateway, 'gateway');
  const netmask = requireNetmask(input.netmask);
  const startIp = requireIpv4(input.startIp, 'startip');
  const endIp = input.endIp ? requireIpv4(input.endIp, 'endip') : startIp;
  const start = ipv4ToInt(startIp);
  const end = ipv4ToInt(endIp);
  if (start > end) throw invalidParameter(`The start IP ${startIp} is after the end IP ${endIp}`);
  const { first, last } = subnetBounds(gateway, netmask);
  if ((netmaskBits(netmask) ?? 32) > 30)
    throw invalidParameter(`The netmask ${netmask} leaves no room for guest addresses`);
  if (start <= first || end >= last)
    throw invalidParameter(
      `The IP range ${startIp}-${endIp} is not inside the subnet ${intToIpv4(first)}/${netmaskBits(netmask)} of gateway ${gateway} (network and broadcast addresses excluded)`,
    );
  const gw = ipv4ToInt(gateway);
  if (gw >= start && gw <= end)
    throw invalidParameter(`The gateway ${gateway} is inside the IP range ${startIp}-${endIp}`);
  return { gateway, netmask, startIp, endIp, start, end };
}

async function checkNoOverlap(tx: Tx, zone: ZoneRow, pod: PodRow, r: CheckedRange): Promise<void> {
  const clash = await tx
    .selectFrom('vlan_ip_ranges')
    .select(['start_ip', 'end_ip'])
    .where('zone_id', '=', zone.id)
    .where('start_num', '<=', r.end)
    .where('end_num', '>=', r.start)
    .executeTakeFirst();
  if (clash)
    throw invalidParameter(
      `The IP range ${r.startIp}-${r.endIp} overlaps the existing range ${clash.start_ip}-${clash.end_ip} in zone ${zone.name}`,
    );
  // The pod's management range hands out addresses to hosts: guests must never get one of those.
  const pods = await tx
    .selectFrom('pods')
    .select(['name', 'start_ip', 'end_ip'])
    .where('zone_id', '=', zone.id)
    .where('removed', 'is', null)
    .where('start_ip', 'is not', null)
    .execute();
  for (const other of pods) {
    const oStart = ipv4ToInt(other.start_ip as string);
    const oEnd = ipv4ToInt((other.end_ip ?? other.start_ip) as string);
    if (r.start <= oEnd && oStart <= r.end)
      throw invalidParameter(
        `The IP range ${r.startIp}-${r.endIp} overlaps the management range ${other.start_ip}-${other.end_ip ?? other.start_ip} of pod ${other.name}`,
      );
  }
  if (ipv4ToInt(pod.gateway) >= r.start && ipv4ToInt(pod.gateway) <= r.end)
    throw invalidParameter(`The IP range ${r.startIp}-${r.endIp} contains the gateway of pod ${pod.name}`);
}

/**
 * Adds a guest IP range to a pod, creating the Basic zone's guest network with the first range.
 * Runs in the caller's transaction; records events when `ctx.caller` is present (API calls), and
 * none for server seeding, which has no caller.
 */
export async function createGuestIpRange(
  ctx: { app: App; caller?: Caller },
  tx: Tx,
  input: GuestIpRangeInput,
): Promise<VlanIpRangeRow> {
  const { app } = ctx;
  const zone = await tx.selectFrom('zones').selectAll().where('id', '=', input.zoneId).executeTakeFirst();
  if (!zone || zone.removed !== null) throw invalidParameter(`Unable to find zone ${input.zoneId}`);
  const pod = await tx.selectFrom('pods').selectAll().where('id', '=', input.podId).executeTakeFirst();
  if (!pod || pod.removed !== null) throw invalidParameter(`Unable to find pod ${input.podId}`);
  if (pod.zone_id !== zone.id) throw invalidParameter(`Pod ${pod.name} is not in zone ${zone.name}`);
  const range = checkRange(input);
  let network: NetworkRow;
  let networkCreated = false;
  if (input.networkId !== undefined) {
    const found = await tx
      .selectFrom('networks')
      .selectAll()
      .where('id', '=', input.networkId)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!found) throw invalidParameter(`Unable to find network ${input.networkId}`);
    if (found.zone_id !== zone.id)
      throw invalidParameter(`Network ${found.name} is not in zone ${zone.name}`);
    network = found;
  } else {
    if (zone.network_type !== 'Basic')
      throw invalidParameter(
        `Zone ${zone.name} is an Advanced zone: a guest IP range there needs a networkid`,
      );
    ({ network, created: networkCreated } = await ensureBasicNetwork(app, tx, zone));
  }
  await checkNoOverlap(tx, zone, pod, range);
  // A pod's guests share one L2 segment, so all its ranges in a network must share one subnet.
  const sibling = await tx
    .selectFrom('vlan_ip_ranges')
    .select(['gateway', 'netmask'])
    .where('network_id', '=', network.id)
    .where('pod_id', '=', pod.id)
    .executeTakeFirst();
  if (sibling && (sibling.gateway !== range.gateway || sibling.netmask !== range.netmask))
    throw invalidParameter(
      `Pod ${pod.name} already has guest addresses on gateway ${sibling.gateway} netmask ${sibling.netmask}; a new range must use the same subnet`,
    );
  const uuid = app.ids.uuid();
  await tx
    .insertInto('vlan_ip_ranges')
    .values({
      uuid,
      zone_id: zone.id,
      pod_id: pod.id,
      network_id: network.id,
      physical_network_id: network.physical_network_id,
      vlan: 'untagged',
      gateway: range.gateway,
      netmask: range.netmask,
      start_ip: range.startIp,
      end_ip: range.endIp,
      start_num: range.start,
      end_num: range.end,
      for_virtual_network: 0,
      created: app.clock.now(),
    })
    .execute();
  if (network.gateway === null)
    await tx
      .updateTable('networks')
      .set(networkSubnet(range.gateway, range.netmask))
      .where('id', '=', network.id)
      .execute();
  if (ctx.caller) {
    const callCtx = ctx as CallContext;
    if (networkCreated)
      await logEvent(callCtx, tx, {
        type: 'NETWORK.CREATE',
        description: `creating guest network ${network.name} of zone ${zone.name}`,
        resourceType: 'Network',
        resourceId: network.uuid,
      });
    await logEvent(callCtx, tx, {
      type: 'VLAN.IP.RANGE.CREATE',
      description: `creating guest IP range ${range.startIp}-${range.endIp} in pod ${pod.name}`,
      resourceType: 'VlanIpRange',
      resourceId: uuid,
    });
  }
  return tx.selectFrom('vlan_ip_ranges').selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
}

export async function presentVlanIpRanges(
  ctx: Pick<CallContext, 'app'>,
  rows: VlanIpRangeRow[],
): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = <K extends keyof VlanIpRangeRow>(k: K) =>
    [...new Set(rows.map((r) => r[k]).filter((v) => v !== null))] as number[];
  const [zones, pods, networks, physicals, accounts, domains] = await Promise.all([
    db.selectFrom('zones').select(['id', 'uuid']).where('id', 'in', ids('zone_id')).execute(),
    ids('pod_id').length
      ? db.selectFrom('pods').select(['id', 'uuid', 'name']).where('id', 'in', ids('pod_id')).execute()
      : [],
    // A deleted network's ranges wait for the zone's next network: they show no network meanwhile.
    db
      .selectFrom('networks')
      .select(['id', 'uuid'])
      .where('id', 'in', ids('network_id'))
      .where('removed', 'is', null)
      .execute(),
    ids('physical_network_id').length
      ? db
          .selectFrom('physical_networks')
          .select(['id', 'uuid'])
          .where('id', 'in', ids('physical_network_id'))
          .execute()
      : [],
    ids('account_id').length
      ? db.selectFrom('accounts').select(['id', 'name']).where('id', 'in', ids('account_id')).execute()
      : [],
    ids('domain_id').length
      ? db
          .selectFrom('domains')
          .select(['id', 'uuid', 'name', 'path'])
          .where('id', 'in', ids('domain_id'))
          .execute()
      : [],
  ]);
  const accountById = new Map(accounts.map((a) => [a.id, a.name]));
  const domainById = new Map(domains.map((d) => [d.id, d]));
  const uuidOf = (list: { id: number; uuid: string }[]) => new Map(list.map((x) => [x.id, x.uuid]));
  const zoneUuid = uuidOf(zones);
  const networkUuid = uuidOf(networks);
  const physicalUuid = uuidOf(physicals);
  const podById = new Map(pods.map((x) => [x.id, x]));
  return rows.map((r) => {
    const pod = r.pod_id === null ? undefined : podById.get(r.pod_id);
    // Dedicated public ranges show their account (and its domain) or their domain.
    const domain = r.domain_id === null ? undefined : domainById.get(r.domain_id);
    const { first } = subnetBounds(r.gateway, r.netmask);
    return {
      id: r.uuid,
      forvirtualnetwork: r.for_virtual_network === 1,
      zoneid: zoneUuid.get(r.zone_id),
      vlan: `vlan://${r.vlan}`,
      gateway: r.gateway,
      netmask: r.netmask,
      cidr: `${intToIpv4(first)}/${netmaskBits(r.netmask)}`,
      startip: r.start_ip,
      endip: r.end_ip,
      description: `${r.start_ip}-${r.end_ip}`,
      networkid: networkUuid.get(r.network_id),
      physicalnetworkid: r.physical_network_id === null ? undefined : physicalUuid.get(r.physical_network_id),
      podid: pod?.uuid,
      podname: pod?.name,
      account: r.account_id === null ? undefined : accountById.get(r.account_id),
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
      forsystemvms: false,
    };
  });
}

export const createVlanIpRange = defineCommand({
  name: 'createVlanIpRange',
  description:
    "Adds an IPv4 address range: a zone-wide public range of an Advanced zone (for source NAT and acquired addresses), or a pod's guest range for a Basic zone or shared network.",
  params: {
    zoneid: p.uuid({
      description:
        'Zone of the range; required for a public range, otherwise taken from podid or networkid when omitted.',
    }),
    podid: p.uuid({
      description: 'Pod a guest range serves; required for a guest range, refused for a public one.',
    }),
    networkid: p.uuid({
      description:
        "Shared network a guest range serves; defaults to the zone's Basic guest network. Refused for a public range.",
    }),
    physicalnetworkid: p.uuid({
      description: 'Physical network of the zone the range is on; it must belong to the zone. Optional.',
    }),
    gateway: p.string({ description: "Gateway of the range's subnet; required." }),
    netmask: p.string({ description: "Netmask of the range's subnet; required." }),
    startip: p.string({ description: 'First IPv4 address of the range; required.' }),
    endip: p.string({
      description: 'Last IPv4 address of the range; defaults to startip (a one-address range).',
    }),
    forvirtualnetwork: p.boolean({
      description:
        'True for a public range, false for a guest range; by default public when only zoneid is given and the zone is Advanced.',
    }),
    forsystemvms: p.boolean({
      description: 'Not supported (Nimbostack has no system VMs): true is refused.',
    }),
    vlan: p.string({
      description:
        "Public range: 'untagged' (default) or a segment ID 1-16777214, bare or vlan://N; ranges on one segment share a subnet. Guest range: only untagged.",
    }),
    account: p.string({
      description: 'Dedicates a new public range to this account (with domainid); refused for guest ranges.',
    }),
    domainid: p.uuid({
      description:
        "Dedicates a new public range to this domain, or names account's domain; refused for guest ranges.",
    }),
    projectid: p.uuid({ description: "Dedicates a new public range to this project's account instead." }),
    startipv6: p.string({ description: 'IPv6 is not supported: any value is refused.' }),
    endipv6: p.string({ description: 'IPv6 is not supported: any value is refused.' }),
    ip6gateway: p.string({ description: 'IPv6 is not supported: any value is refused.' }),
    ip6cidr: p.string({ description: 'IPv6 is not supported: any value is refused.' }),
    provider: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    if (params.startipv6 || params.endipv6 || params.ip6gateway || params.ip6cidr)
      throw invalidParameter('IPv6 ranges are not supported');
    if (params.forsystemvms) throw invalidParameter('There are no system VMs: forsystemvms is not supported');
    // Upstream's default is a public range; a range for a pod or a network is a guest range.
    const zoneForPublic =
      params.zoneid && !params.podid && !params.networkid ? await findZone(ctx, params.zoneid) : undefined;
    const isPublic =
      params.forvirtualnetwork ?? (zoneForPublic !== undefined && zoneForPublic.network_type === 'Advanced');
    if (isPublic) {
      if (params.podid) throw invalidParameter('A public IP range is zone-wide: podid is not supported');
      if (params.networkid)
        throw invalidParameter(
          'A public IP range belongs to the zone: networkid is not supported with forvirtualnetwork=true',
        );
      if (!params.zoneid) throw invalidParameter('A public IP range needs a zoneid');
      const zone = zoneForPublic ?? (await findZone(ctx, params.zoneid));
      const row = await createPublicIpRange(ctx, zone, {
        gateway: params.gateway,
        netmask: params.netmask,
        startIp: params.startip,
        endIp: params.endip,
        vlan: params.vlan,
        account: params.account,
        domainId: params.domainid,
        projectId: params.projectid,
        physicalNetworkUuid: params.physicalnetworkid,
      });
      return (await presentVlanIpRanges(ctx, [row]))[0];
    }
    if (params.startipv6 || params.endipv6 || params.ip6gateway || params.ip6cidr)
      throw invalidParameter('IPv6 guest ranges are not supported');
    if (params.forsystemvms) throw invalidParameter('There are no system VMs: forsystemvms is not supported');
    if (params.account || params.domainid || params.projectid)
      throw invalidParameter(
        'Guest IP ranges of a shared network cannot be dedicated to an account or domain',
      );
    if (params.vlan && params.vlan.replace(/^vlan:\/\//i, '').toLowerCase() !== 'untagged')
      throw invalidParameter(
        `Guest ranges of a Basic zone are untagged; vlan ${params.vlan} is not supported`,
      );
    if (!params.gateway || !params.netmask || !params.startip)
      throw invalidParameter('A guest IP range needs gateway, netmask and startip');
    const network = params.networkid ? await findNetwork(ctx, params.networkid) : undefined;
    const pod = params.podid ? await findPod(ctx, params.podid) : undefined;
    const zoneUuid =
      params.zoneid ??
      (pod &&
        (
          await app.store.db
            .selectFrom('zones')
            .select('uuid')
            .where('id', '=', pod.zone_id)
            .executeTakeFirst()
        )?.uuid) ??
      (network &&
        (
          await app.store.db
            .selectFrom('zones')
            .select('uuid')
            .where('id', '=', network.zone_id)
            .executeTakeFirst()
        )?.uuid);
    if (!zoneUuid) throw invalidParameter('Please specify zoneid, podid or networkid');
    const zone = await findZone(ctx, zoneUuid);
    if (!pod) throw invalidParameter(`A guest IP range in zone ${zone.name} needs a podid`);
    if (params.physicalnetworkid) {
      const physical = await app.store.db
        .selectFrom('physical_networks')
        .select(['id', 'zone_id'])
        .where('uuid', '=', params.physicalnetworkid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!physical || physical.zone_id !== zone.id)
        throw invalidParameter(
          `Unable to find physical network ${params.physicalnetworkid} in zone ${zone.name}`,
        );
    }
    const row = await app.store.db.transaction().execute((tx) =>
      createGuestIpRange(ctx, tx, {
        zoneId: zone.id,
        podId: pod.id,
        gateway: params.gateway as string,
        netmask: params.netmask as string,
        startIp: params.startip as string,
        endIp: params.endip,
        networkId: network?.id,
      }),
    );
    return (await presentVlanIpRanges(ctx, [row]))[0];
  },
});

export const listVlanIpRanges = defineCommand({
  name: 'listVlanIpRanges',
  description: "Lists public and guest IPv4 address ranges; keyword matches a range's first or last address.",
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the range with this ID.' }),
    zoneid: p.uuid({ description: 'Only ranges of this zone.' }),
    podid: p.uuid({ description: 'Only guest ranges of this pod.' }),
    networkid: p.uuid({ description: 'Only ranges serving this network.' }),
    physicalnetworkid: p.uuid({ description: 'Only ranges on this physical network.' }),
    vlan: p.string({ description: 'Only ranges on this segment: untagged or its ID (bare or vlan://N).' }),
    forvirtualnetwork: p.boolean({
      description: 'True for public ranges only, false for guest ranges only.',
    }),
    account: p.string({ description: 'Only public ranges dedicated to this account (with domainid).' }),
    domainid: p.uuid({
      description: "Only public ranges dedicated to this domain; with account, the account's domain.",
    }),
    projectid: p.uuid({ description: 'Only public ranges dedicated to this project.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('vlan_ip_ranges');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.podid) q = q.where('pod_id', '=', (await findPod(ctx, params.podid)).id);
    if (params.networkid) q = q.where('network_id', '=', (await findNetwork(ctx, params.networkid)).id);
    if (params.physicalnetworkid) {
      const physical = await app.store.db
        .selectFrom('physical_networks')
        .select('id')
        .where('uuid', '=', params.physicalnetworkid)
        .executeTakeFirst();
      if (!physical)
        throw invalidParameter(`Unable to find physical network by id ${params.physicalnetworkid}`);
      q = q.where('physical_network_id', '=', physical.id);
    }
    if (params.vlan) q = q.where('vlan', '=', params.vlan.replace(/^vlan:\/\//i, '').toLowerCase());
    // Dedicated public ranges: to a project's account, to the account, or to the domain.
    if (params.projectid) {
      const project = await findProject(ctx, params.projectid);
      q = q.where('account_id', '=', project.project_account_id);
    } else if (params.account) {
      const { account } = await resolveAccount(ctx, { account: params.account, domainid: params.domainid });
      q = q.where('account_id', '=', account.id);
    } else if (params.domainid)
      q = q.where('domain_id', '=', (await findDomainByUuid(ctx, params.domainid)).id);
    if (params.forvirtualnetwork !== undefined)
      q = q.where('for_virtual_network', '=', params.forvirtualnetwork ? 1 : 0);
    if (params.keyword)
      q = q.where((eb) =>
        eb.or([eb('start_ip', '=', params.keyword as string), eb('end_ip', '=', params.keyword as string)]),
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentVlanIpRanges(ctx, rows), Number(count));
  },
});

export const deleteVlanIpRange = defineCommand({
  name: 'deleteVlanIpRange',
  description:
    'Deletes an address range. Refused while any of its addresses is allocated (to an account for a public range, to a VM for a guest range).',
  params: { id: p.uuid({ required: true, description: 'ID of the range to delete.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const range = await app.store.db
      .selectFrom('vlan_ip_ranges')
      .selectAll()
      .where('uuid', '=', params.id)
      .executeTakeFirst();
    if (!range) throw invalidParameter(`Unable to find IP range by id ${params.id}`);
    if (range.for_virtual_network === 1) {
      await deletePublicIpRange(ctx, range);
      return success();
    }
    const inUse = () =>
      resourceInUse(
        `The IP range ${range.start_ip}-${range.end_ip} can't be deleted: some of its addresses are allocated to virtual machines`,
      );
    try {
      await app.store.db.transaction().execute(async (tx) => {
        const used = await tx
          .selectFrom('guest_ip_allocations')
          .select('id')
          .where('range_id', '=', range.id)
          .executeTakeFirst();
        if (used) throw inUse();
        await tx.deleteFrom('vlan_ip_ranges').where('id', '=', range.id).execute();
        await logEvent(ctx, tx, {
          type: 'VLAN.IP.RANGE.DELETE',
          description: `deleting guest IP range ${range.start_ip}-${range.end_ip}`,
          resourceType: 'VlanIpRange',
          resourceId: range.uuid,
        });
      });
    } catch (e) {
      // An address handed out between the check and the delete trips the foreign key instead.
      if (isForeignKeyViolation(e)) throw inUse();
      throw e;
    }
    return success();
  },
});

export const dedicatePublicIpRange = defineCommand({
  name: 'dedicatePublicIpRange',
  description:
    'Reserves a public range for one account or domain, so that only it acquires addresses from it; refused if already dedicated or an outsider holds one of its addresses.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the public range to dedicate.' }),
    account: p.string({
      description:
        'Account the range is dedicated to (of domainid); omit it to dedicate to the whole domain.',
    }),
    domainid: p.uuid({
      required: true,
      description: 'Domain the range is dedicated to, or the domain of account.',
    }),
    projectid: p.uuid({ description: "Dedicates the range to this project's account instead of account." }),
  },
  async handler(ctx, params) {
    return (await presentVlanIpRanges(ctx, [await dedicateRange(ctx, params)]))[0];
  },
});

export const releasePublicIpRange = defineCommand({
  name: 'releasePublicIpRange',
  description:
    "Ends the dedication of a public range, returning it to the zone's shared pool; addresses already acquired from it stay with their owners.",
  params: { id: p.uuid({ required: true, description: 'ID of the dedicated public range.' }) },
  async handler(ctx, params) {
    await releaseRange(ctx, params.id);
    return success();
  },
});

export const ipRangeCommands = [
  createVlanIpRange,
  listVlanIpRanges,
  deleteVlanIpRange,
  dedicatePublicIpRange,
  releasePublicIpRange,
];
