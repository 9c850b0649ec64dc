/**
 * The public IP address commands: associateIpAddress, disassociateIpAddress, updateIpAddress and
 * listPublicIpAddresses. Allocation itself is public-ips.ts; these add who may ask, which network
 * the address goes to, and the router: an address is committed first, then the network's router
 * is told, and an address the router could not take is given back.
 */

import { type ExpressionBuilder, type SqlBool, sql } from 'kysely';
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { inTransaction } from '../db/connection.ts';
import type { Database, NetworkRow, PublicIpRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { checkRowAccess, findOwned, listOwned } from '../iam/owned.ts';
import { findZone, likeOp } from '../infra/common.ts';
import { projectOwner } from '../projects/access.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import { applyOrUndo, checkReferences, networkInfo, OWNED_IP } from './ip-rules.ts';
import { acquirePublicIp, HELD_STATES, lockNetwork, releasePublicIp } from './public-ips.ts';
import { applyVpcRouter } from './vpc-routers.ts';
import { findVpc } from './vpcs.ts';

/** Services an address can be associated with a network for. */
const IP_SERVICES = ['SourceNat', 'StaticNat', 'PortForwarding', 'Lb'];

/** Public addresses as CloudStack shows them, with one batched look-up per related table. */
export async function presentPublicIps(ctx: CallContext, ips: PublicIpRow[]): Promise<object[]> {
  if (ips.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = (xs: (number | null)[]) => [...new Set(xs.filter((x): x is number => x !== null))];
  const none = Promise.resolve([]);
  const rangeIds = ids(ips.map((i) => i.range_id));
  const [ranges, zones, accounts, domains, vms, tags] = await Promise.all([
    db
      .selectFrom('vlan_ip_ranges')
      .select(['id', 'uuid', 'vlan', 'network_id', 'physical_network_id', 'for_virtual_network'])
      .where('id', 'in', rangeIds)
      .execute(),
    db
      .selectFrom('zones')
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', ids(ips.map((i) => i.zone_id)))
      .execute(),
    ids(ips.map((i) => i.account_id)).length
      ? db
          .selectFrom('accounts')
          .select(['id', 'name'])
          .where('id', 'in', ids(ips.map((i) => i.account_id)))
          .execute()
      : none,
    ids(ips.map((i) => i.domain_id)).length
      ? db
          .selectFrom('domains')
          .select(['id', 'uuid', 'name', 'path'])
          .where('id', 'in', ids(ips.map((i) => i.domain_id)))
          .execute()
      : none,
    ids(ips.map((i) => i.static_nat_vm_id)).length
      ? db
          .selectFrom('vms')
          .select(['id', 'uuid', 'name', 'display_name'])
          .where('id', 'in', ids(ips.map((i) => i.static_nat_vm_id)))
          .execute()
      : none,
    tagsOf(
      ctx,
      'PublicIpAddress',
      ips.map((i) => i.id),
    ),
  ]);
  const networkIds = ids([...ips.map((i) => i.network_id), ...ranges.map((r) => r.network_id)]);
  const physicalIds = ids(ranges.map((r) => r.physical_network_id));
  const [networks, physicals, ruled] = await Promise.all([
    networkIds.length
      ? db.selectFrom('networks').select(['id', 'uuid', 'name']).where('id', 'in', networkIds).execute()
      : none,
    physicalIds.length
      ? db.selectFrom('physical_networks').select(['id', 'uuid']).where('id', 'in', physicalIds).execute()
      : none,
    db
      .selectFrom('ip_rules')
      .select('ip_id')
      .distinct()
      .where(
        'ip_id',
        'in',
        ips.map((i) => i.id),
      )
      .execute(),
  ]);
  const by = <T extends { id: number }>(rows: T[]) => new Map(rows.map((r) => [r.id, r]));
  const [rangeOf, zoneOf, accountOf, domainOf, vmOf, networkOf, physicalOf] = [
    by(ranges),
    by(zones),
    by(accounts as { id: number; name: string }[]),
    by(domains as { id: number; uuid: string; name: string; path: string }[]),
    by(vms as { id: number; uuid: string; name: string; display_name: string }[]),
    by(networks as { id: number; uuid: string; name: string }[]),
    by(physicals as { id: number; uuid: string }[]),
  ];
  const withRules = new Set(ruled.map((r) => r.ip_id));
  const vpcIds = ids(ips.map((i) => i.vpc_id));
  const vpcOf = by(
    vpcIds.length
      ? await db.selectFrom('vpcs').select(['id', 'uuid', 'name']).where('id', 'in', vpcIds).execute()
      : [],
  );
  return ips.map((ip) => {
    const range = rangeOf.get(ip.range_id);
    const zone = zoneOf.get(ip.zone_id);
    const domain = ip.domain_id === null ? undefined : domainOf.get(ip.domain_id);
    const vm = ip.static_nat_vm_id === null ? undefined : vmOf.get(ip.static_nat_vm_id);
    const associated = ip.network_id === null ? undefined : networkOf.get(ip.network_id);
    const publicNetwork = range ? networkOf.get(range.network_id) : undefined;
    const physical = range?.physical_network_id ? physicalOf.get(range.physical_network_id) : undefined;
    return {
      id: ip.uuid,
      ipaddress: ip.ip4,
      allocated: formatDate(ip.allocated),
      zoneid: zone?.uuid,
      zonename: zone?.name,
      issourcenat: ip.source_nat === 1,
      account: ip.account_id === null ? undefined : accountOf.get(ip.account_id)?.name,
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
      forvirtualnetwork: range ? range.for_virtual_network === 1 : true,
      vlanid: range?.uuid,
      vlanname: range ? `vlan://${range.vlan}` : undefined,
      isstaticnat: ip.static_nat_vm_id !== null,
      issystem: false,
      ...(vm
        ? {
            virtualmachineid: vm.uuid,
            virtualmachinename: vm.name,
            virtualmachinedisplayname: vm.display_name,
            virtualmachinetype: 'User',
            vmipaddress: ip.static_nat_vm_ip ?? undefined,
          }
        : {}),
      associatednetworkid: associated?.uuid,
      associatednetworkname: associated?.name,
      vpcid: ip.vpc_id === null ? undefined : vpcOf.get(ip.vpc_id)?.uuid,
      vpcname: ip.vpc_id === null ? undefined : vpcOf.get(ip.vpc_id)?.name,
      networkid: publicNetwork?.uuid,
      state: ip.state,
      physicalnetworkid: physical?.uuid,
      tags: tags.get(ip.id) ?? [],
      isportable: false,
      fordisplay: ip.for_display === 1,
      hasannotations: false,
      hasrules: withRules.has(ip.id),
      forsystemvms: false,
    };
  });
}

/** The network an associateIpAddress goes to: the one named, or the owner's only isolated one in the zone. */
async function targetNetwork(
  ctx: CallContext,
  owner: { id: number; name: string },
  params: { networkid?: string; zoneid?: string },
): Promise<NetworkRow> {
  const db = ctx.app.store.db;
  if (params.networkid) {
    const network = await db
      .selectFrom('networks')
      .selectAll()
      .where('uuid', '=', params.networkid)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!network) throw invalidParameter(`Unable to find network by id ${params.networkid}`);
    await checkRowAccess(ctx, network);
    if (params.zoneid) {
      const zone = await findZone(ctx, params.zoneid);
      if (zone.id !== network.zone_id)
        throw invalidParameter(`Network ${network.name} is not in zone ${zone.name}`);
    }
    return network;
  }
  if (!params.zoneid) throw invalidParameter('Either networkid or zoneid must be specified');
  const zone = await findZone(ctx, params.zoneid);
  const networks = await db
    .selectFrom('networks')
    .selectAll()
    .where('zone_id', '=', zone.id)
    .where('account_id', '=', owner.id)
    .where('guest_type', '=', 'Isolated')
    .where('removed', 'is', null)
    .execute();
  if (networks.length === 0)
    throw invalidParameter(`Account ${owner.name} doesn't have isolated networks in zone ${zone.name}`);
  if (networks.length > 1)
    throw invalidParameter(
      `Account ${owner.name} has more than one isolated network in zone ${zone.name}: specify networkid`,
    );
  return networks[0] as NetworkRow;
}

export const associateIpAddress = defineCommand({
  name: 'associateIpAddress',
  description:
    "Acquires a free public IP address for an account's isolated network in an Advanced zone and adds it to the network's router; the network's first one becomes its source NAT address. Asynchronous.",
  params: {
    networkid: p.uuid({ description: 'Isolated network of the owner the address is for.' }),
    zoneid: p.uuid({
      description:
        "Zone to take the address from; without networkid, the owner's only isolated network in this zone is used.",
    }),
    ipaddress: p.string({ description: 'A specific free address to acquire instead of the next free one.' }),
    isportable: p.boolean({ description: 'Portable addresses are not supported: true is refused.' }),
    fordisplay: p.boolean({
      description:
        "Whether end users see the address; root administrators only (others' values are ignored).",
    }),
    account: p.string({
      description:
        "Account the address is for (with domainid); defaults to the caller. The network must be this account's.",
    }),
    domainid: p.uuid({ description: 'Domain of account; only with account.' }),
    projectid: p.uuid({
      description: 'Project the address is for (you must be a member); not with account.',
    }),
    vpcid: p.uuid({
      description:
        "VPC the address is for (instead of networkid): the VPC's router carries it; a port forward or static NAT then names the tier it serves.",
    }),
    regionid: p.integer({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: {
    type: 'NET.IPASSIGN',
    description: (params) =>
      `associating IP to network ID: ${params.networkid ?? `(default network of zone ${params.zoneid})`}`,
  },
  // As upstream, the address is taken synchronously (its id comes back with the job id); the job
  // then has the router carry it.
  async create(ctx, params) {
    const { app } = ctx;
    if (params.isportable) throw invalidParameter('Portable public IP addresses are not supported');
    if (params.vpcid && params.networkid)
      throw invalidParameter('An address is for a network or for a VPC: give networkid or vpcid, not both');
    // fordisplay is a root-admin parameter: others' values are ignored, as upstream's dispatcher does.
    const forDisplay = ctx.caller.roleKind === 'admin' ? params.fordisplay : undefined;
    if (params.domainid && !params.account)
      throw invalidParameter('domainid must be given together with account');
    const owner =
      (await projectOwner(ctx, params)) ??
      (params.account ? (await resolveAccount(ctx, params)).account : ctx.caller.account);
    if (params.vpcid) {
      // A VPC's address: held by the VPC (its router carries it), in no tier until a rule needs one.
      const vpc = await findVpc(ctx, params.vpcid);
      if (vpc.account_id !== owner.id)
        throw invalidParameter(`VPC ${vpc.name} does not belong to account ${owner.name}`);
      const vpcIp = await inTransaction(app.store, (tx) =>
        acquirePublicIp(app, tx, {
          zoneId: vpc.zone_id,
          accountId: owner.id,
          domainId: owner.domain_id,
          networkId: null,
          vpcId: vpc.id,
          sourceNat: false,
          ...(params.ipaddress !== undefined ? { ipAddress: params.ipaddress.trim() } : {}),
          ...(forDisplay !== undefined ? { forDisplay } : {}),
          eventOwner: { userId: ctx.caller.user.id, accountId: owner.id, domainId: owner.domain_id },
        }),
      );
      return { type: 'IpAddress', id: vpcIp.uuid };
    }
    const network = await targetNetwork(ctx, owner, params);
    const info = await networkInfo(app, network);
    if (info.zoneType !== 'Advanced' || network.guest_type !== 'Isolated')
      throw invalidParameter(
        `IP addresses can be associated only with isolated networks of Advanced zones, not with network ${network.name}`,
      );
    if (!IP_SERVICES.some((s) => info.services.has(s)))
      throw invalidParameter(
        `Network ${network.name} supports none of the services an IP address is for: ${IP_SERVICES.join(', ')}`,
      );
    if (network.account_id !== owner.id)
      throw invalidParameter(`Network ${network.name} does not belong to account ${owner.name}`);
    const ip = await inTransaction(app.store, async (tx) => {
      // As upstream, the first address of a network without a source NAT address becomes it;
      // under the network's lock, so concurrent requests make only one.
      await lockNetwork(tx, network.id);
      const sourceNat =
        info.services.has('SourceNat') &&
        !(await tx
          .selectFrom('public_ips')
          .select('id')
          .where('network_id', '=', network.id)
          .where('source_nat', '=', 1)
          .where('state', 'in', HELD_STATES)
          .executeTakeFirst());
      return acquirePublicIp(app, tx, {
        zoneId: network.zone_id,
        accountId: owner.id,
        domainId: owner.domain_id,
        networkId: network.id,
        sourceNat,
        ...(params.ipaddress !== undefined ? { ipAddress: params.ipaddress.trim() } : {}),
        ...(forDisplay !== undefined ? { forDisplay } : {}),
        eventOwner: { userId: ctx.caller.user.id, accountId: owner.id, domainId: owner.domain_id },
      });
    });
    return { type: 'IpAddress', id: ip.uuid };
  },
  async handler(ctx, _params, created) {
    const { app } = ctx;
    const ip = await app.store.db
      .selectFrom('public_ips')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    if (ip.network_id !== null)
      await applyOrUndo(app, ip.network_id, `associate IP address ${ip.ip4}`, () =>
        inTransaction(app.store, (tx) => releasePublicIp(app, tx, ip)),
      );
    else if (ip.vpc_id !== null) {
      // The VPC's router carries it now; a router that refuses gives it back.
      const failure = await applyVpcRouter(app, ip.vpc_id).then(
        () => undefined,
        (err: Error) => err,
      );
      if (failure) {
        await inTransaction(app.store, (tx) => releasePublicIp(app, tx, ip));
        await applyVpcRouter(app, ip.vpc_id).catch(() => undefined);
        throw failure;
      }
    }
    const now = await app.store.db.selectFrom('public_ips').selectAll().where('id', '=', ip.id).execute();
    return (await presentPublicIps(ctx, now))[0] as object;
  },
});

/** The address named by id or ipaddress (one of them), allocated and the caller's to act on. */
async function ipOfParams(
  ctx: CallContext,
  params: { id?: string; ipaddress?: string },
): Promise<PublicIpRow> {
  if (params.id && params.ipaddress) throw invalidParameter('Specify either id or ipaddress, not both');
  if (params.id) return findOwned(ctx, 'public_ips', params.id, OWNED_IP);
  if (!params.ipaddress) throw invalidParameter('Either id or ipaddress must be specified');
  const rows = await ctx.app.store.db
    .selectFrom('public_ips')
    .select('uuid')
    .where('ip4', '=', params.ipaddress.trim())
    .where('state', 'in', HELD_STATES)
    .execute();
  if (rows.length !== 1) throw invalidParameter(`Unable to find IP address ${params.ipaddress}`);
  return findOwned(ctx, 'public_ips', (rows[0] as { uuid: string }).uuid, OWNED_IP);
}

async function checkReleasable(ctx: CallContext, ip: PublicIpRow): Promise<void> {
  // A VPC's source-NAT address is every tier's way out: it goes with the VPC (deleteVPC).
  if (ip.source_nat === 1 && ip.vpc_id !== null)
    throw invalidParameter(
      `Can't release source nat IP address ${ip.ip4}: it is the source NAT address of its VPC, released with the VPC`,
    );
  if (ip.source_nat !== 1 || ip.network_id === null) return;
  const network = await ctx.app.store.db
    .selectFrom('networks')
    .select(['name', 'removed', 'state'])
    .where('id', '=', ip.network_id)
    .executeTakeFirst();
  if (network && network.removed === null && network.state === 'Implemented')
    throw invalidParameter(
      `Can't release source nat IP address ${ip.ip4}: it is the source NAT address of network ${network.name}, released with the network`,
    );
}

export const disassociateIpAddress = defineCommand({
  name: 'disassociateIpAddress',
  description:
    "Releases a public IP address: the router drops it with its rules and static NAT, then it is free again. A network's source NAT address goes only with the network. Asynchronous.",
  params: {
    id: p.uuid({ description: 'ID of the address to release; give it or ipaddress, not both.' }),
    ipaddress: p.string({ description: 'The address itself (e.g. 203.0.113.7), instead of id.' }),
    accountid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: {
    type: 'NET.IPRELEASE',
    description: (params) => `disassociating IP address ${params.id ?? params.ipaddress}`,
  },
  async target(ctx, params) {
    const ip = await ipOfParams(ctx, params);
    await checkReleasable(ctx, ip);
    return { type: 'IpAddress', id: ip.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const ip = await ipOfParams(ctx, params);
    await checkReleasable(ctx, ip);
    // Releasing: the router is told to drop the address (and its rules and static NAT) before the
    // records let go of it; if it cannot, the address stays Allocated as the router still has it.
    await app.store.db
      .updateTable('public_ips')
      .set({ state: 'Releasing' })
      .where('id', '=', ip.id)
      .where('state', 'in', HELD_STATES)
      .execute();
    if (ip.network_id !== null)
      await applyOrUndo(app, ip.network_id, `release IP address ${ip.ip4}`, async () => {
        await app.store.db
          .updateTable('public_ips')
          .set({ state: ip.state })
          .where('id', '=', ip.id)
          .where('state', '=', 'Releasing')
          .execute();
      });
    else if (ip.vpc_id !== null)
      // A VPC's address in no tier: the VPC's router drops it first, or it stays Allocated.
      await applyVpcRouter(app, ip.vpc_id).catch(async (err: Error) => {
        await app.store.db
          .updateTable('public_ips')
          .set({ state: ip.state })
          .where('id', '=', ip.id)
          .where('state', '=', 'Releasing')
          .execute();
        throw err;
      });
    await inTransaction(app.store, async (tx) => {
      await releasePublicIp(app, tx, ip, {
        userId: ctx.caller.user.id,
        accountId: ip.account_id ?? ctx.caller.account.id,
        domainId: ip.domain_id ?? ctx.caller.domain.id,
      });
    });
    return success();
  },
});

export const updateIpAddress = defineCommand({
  name: 'updateIpAddress',
  description:
    "Changes the display flag or the ID of a public IP address; the address keeps its events under the new ID. Only root administrators' values count. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the address to update.' }),
    fordisplay: p.boolean({
      description:
        "Whether end users see the address; root administrators only (others' values are ignored).",
    }),
    customid: p.string({
      description:
        "New ID (a UUID not used by another address); root administrators only (others' values are ignored).",
    }),
    accountid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: { type: 'NET.IPUPDATE', description: (params) => `updating IP address ${params.id}` },
  async target(ctx, params) {
    const ip = await findOwned(ctx, 'public_ips', params.id, OWNED_IP);
    return { type: 'IpAddress', id: ip.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const ip = await findOwned(ctx, 'public_ips', params.id, OWNED_IP);
    // Both are root-admin parameters: others' values are ignored, as upstream's dispatcher does.
    const admin = ctx.caller.roleKind === 'admin';
    const customid = admin ? params.customid?.trim() : undefined;
    const fordisplay = admin ? params.fordisplay : undefined;
    if (customid !== undefined) {
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(customid))
        throw invalidParameter(`Invalid customid ${customid}: it must be a UUID`);
      const taken = await app.store.db
        .selectFrom('public_ips')
        .select('id')
        .where('uuid', '=', customid.toLowerCase())
        .executeTakeFirst();
      if (taken && taken.id !== ip.id) throw invalidParameter(`The customid ${customid} is already in use`);
    }
    await inTransaction(app.store, async (tx) => {
      const changes = {
        ...(fordisplay !== undefined ? { for_display: (fordisplay ? 1 : 0) as 0 | 1 } : {}),
        ...(customid !== undefined ? { uuid: customid.toLowerCase() } : {}),
      };
      if (Object.keys(changes).length)
        await tx.updateTable('public_ips').set(changes).where('id', '=', ip.id).execute();
      // The address's events follow its new id, so its history (and usage) stays attached to it.
      if (customid !== undefined)
        await tx
          .updateTable('events')
          .set({ resource_id: customid.toLowerCase() })
          .where('resource_type', '=', 'IpAddress')
          .where('resource_id', '=', ip.uuid)
          .execute();
      await logEvent(ctx, tx, {
        type: 'NET.IPUPDATE',
        description: `updated IP address ${ip.ip4}`,
        resourceType: 'IpAddress',
        resourceId: customid?.toLowerCase() ?? ip.uuid,
      });
    });
    const now = await app.store.db.selectFrom('public_ips').selectAll().where('id', '=', ip.id).execute();
    return (await presentPublicIps(ctx, now))[0] as object;
  },
});

export const listPublicIpAddresses = defineCommand({
  name: 'listPublicIpAddresses',
  description:
    "Lists public IP addresses: by default those the caller's accounts hold; with allocatedonly=false also the free ones it could acquire. Keyword matches the address.",
  params: {
    ...listParams,
    ...scopeParams,
    id: p.uuid({ description: 'Only the address with this ID; an unknown ID is refused.' }),
    ipaddress: p.string({ description: 'Only this address.' }),
    zoneid: p.uuid({ description: 'Only addresses of this zone.' }),
    vlanid: p.uuid({ description: 'Only addresses of this public IP range.' }),
    networkid: p.uuid({
      description:
        "Only addresses of ranges belonging to this network (a zone's public network, or a shared network).",
    }),
    associatednetworkid: p.uuid({ description: 'Only addresses associated with this guest network.' }),
    physicalnetworkid: p.uuid({ description: 'Only addresses of ranges on this physical network.' }),
    vpcid: p.uuid({ description: 'Only addresses associated with this VPC.' }),
    allocatedonly: p.boolean({
      description:
        'True (default): only held addresses. False: also free addresses of ranges not dedicated to someone else.',
    }),
    forvirtualnetwork: p.boolean({
      description: 'Only addresses of public ranges (true) or of guest ranges (false).',
    }),
    forloadbalancing: p.boolean({
      description: 'True: only addresses that carry load balancer rules. False filters nothing.',
    }),
    forprovider: p.boolean({
      description:
        'True: only addresses of ranges set aside for an external network provider (NSX, Netris), which Nimbostack does not have, so the list is empty. False filters nothing.',
    }),
    forsystemvms: p.boolean({ description: 'True gives an empty list: there are no system VMs.' }),
    issourcenat: p.boolean({ description: 'Only source NAT addresses (true) or only the others (false).' }),
    isstaticnat: p.boolean({
      description: 'Only addresses with static NAT to a VM (true) or without (false).',
    }),
    fordisplay: p.boolean({ description: 'Only addresses shown (true) or hidden (false) from end users.' }),
    state: p.string({
      description: 'Only addresses in this state, e.g. Allocated, Free, Releasing (exact, case-sensitive).',
    }),
    retrieveonlyresourcecount: p.boolean({
      description: 'Return only the count of matching addresses, without the addresses.',
    }),
    tags: p.map({
      description: 'Only addresses carrying all these resource tags (tags[0].key, tags[0].value, ...).',
    }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    const db = app.store.db;
    const allocatedOnly = params.allocatedonly ?? true;
    const held = [...HELD_STATES, 'Releasing'];
    // Free addresses are no one's: with allocatedonly=false, all of them for root admins, those of
    // ranges the caller may take addresses from for everyone else, besides the held ones in scope.
    const free = (eb: ExpressionBuilder<Database, 'public_ips' | 'vlan_ip_ranges'>) =>
      caller.roleKind === 'admin'
        ? eb('public_ips.state', '=', 'Free')
        : eb.and([
            eb('public_ips.state', '=', 'Free'),
            eb.or([
              eb('vlan_ip_ranges.account_id', 'is', null),
              eb('vlan_ip_ranges.account_id', '=', caller.account.id),
            ]),
            eb.or([
              eb('vlan_ip_ranges.domain_id', 'is', null),
              eb('vlan_ip_ranges.domain_id', '=', caller.domain.id),
            ]),
          ]);
    let q = db
      .selectFrom('public_ips')
      .innerJoin('vlan_ip_ranges', 'vlan_ip_ranges.id', 'public_ips.range_id')
      .where((eb) =>
        allocatedOnly
          ? eb('public_ips.state', 'in', held)
          : eb.or([eb('public_ips.state', 'in', held), free(eb)]),
      );
    // No system-VM ranges or external providers' ranges here.
    const none = params.forsystemvms || params.forprovider;
    if (none) q = q.where(sql<SqlBool>`1 = 0`);
    if (params.vpcid)
      q = q.where(
        'public_ips.vpc_id',
        'in',
        db.selectFrom('vpcs').select('id').where('uuid', '=', params.vpcid),
      );
    if (params.id) q = q.where('public_ips.uuid', '=', params.id);
    if (params.ipaddress) q = q.where('public_ips.ip4', '=', params.ipaddress.trim());
    if (params.keyword)
      q = q.where(likeEscaped('public_ips.ip4', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    if (params.zoneid)
      q = q.where(
        'public_ips.zone_id',
        'in',
        db.selectFrom('zones').select('id').where('uuid', '=', params.zoneid),
      );
    if (params.state) q = q.where('public_ips.state', '=', params.state);
    if (params.issourcenat !== undefined)
      q = q.where('public_ips.source_nat', '=', params.issourcenat ? 1 : 0);
    if (params.isstaticnat !== undefined)
      q = q.where('public_ips.static_nat_vm_id', params.isstaticnat ? 'is not' : 'is', null);
    if (params.fordisplay !== undefined)
      q = q.where('public_ips.for_display', '=', params.fordisplay ? 1 : 0);
    if (params.forvirtualnetwork !== undefined)
      q = q.where('vlan_ip_ranges.for_virtual_network', '=', params.forvirtualnetwork ? 1 : 0);
    if (params.vlanid) q = q.where('vlan_ip_ranges.uuid', '=', params.vlanid);
    if (params.physicalnetworkid)
      q = q.where(
        'vlan_ip_ranges.physical_network_id',
        'in',
        db.selectFrom('physical_networks').select('id').where('uuid', '=', params.physicalnetworkid),
      );
    if (params.networkid)
      q = q.where(
        'vlan_ip_ranges.network_id',
        'in',
        db.selectFrom('networks').select('id').where('uuid', '=', params.networkid),
      );
    // As upstream, any load balancer rule on the address counts.
    if (params.forloadbalancing)
      q = q.where(
        'public_ips.id',
        'in',
        db.selectFrom('ip_rules').select('ip_rules.ip_id').where('ip_rules.purpose', '=', 'LoadBalancing'),
      );
    if (params.associatednetworkid)
      q = q.where(
        'public_ips.network_id',
        'in',
        db.selectFrom('networks').select('id').where('uuid', '=', params.associatednetworkid),
      );
    q = withTags(q, 'PublicIpAddress', 'public_ips.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'public_ips.account_id', domain: 'public_ips.domain_id' },
      alsoVisible: allocatedOnly ? undefined : free,
      // Ids that name nothing are 431, as upstream's id translation; an id that exists is a filter.
      checks: async () => {
        await checkReferences(ctx, { ...params, id: undefined, ipaddressid: undefined });
        if (params.id) {
          const exists = await db
            .selectFrom('public_ips')
            .select('id')
            .where('uuid', '=', params.id)
            .executeTakeFirst();
          if (!exists) throw invalidParameter(`Unable to find public IP address by id ${params.id}`);
        }
        if (none) return;
        if (params.vpcid) await findVpc(ctx, params.vpcid);
        if (params.zoneid) await findZone(ctx, params.zoneid);
      },
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('public_ips').orderBy('public_ips.ip_num').orderBy('public_ips.id'),
          page,
        ).execute(),
      present: (rows) => presentPublicIps(ctx, rows),
    });
  },
});

registerTaggable('PublicIpAddress', async (ctx, uuid) => {
  const ip = await ctx.app.store.db
    .selectFrom('public_ips')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('account_id', 'is not', null)
    .executeTakeFirst();
  if (!ip || ip.account_id === null || ip.domain_id === null) return undefined;
  return { id: ip.id, accountId: ip.account_id, domainId: ip.domain_id };
});

export const publicIpCommands = [
  associateIpAddress,
  disassociateIpAddress,
  updateIpAddress,
  listPublicIpAddresses,
];
