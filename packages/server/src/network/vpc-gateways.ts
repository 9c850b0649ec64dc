/**
 * VPC private gateways and static routes: createPrivateGateway, deletePrivateGateway,
 * listPrivateGateways, createStaticRoute, deleteStaticRoute, listStaticRoutes.
 *
 * A private gateway connects a VPC's router to a network an administrator provides (another site,
 * a datacentre LAN): the router gets an interface with the gateway's address on it, filtered by a
 * network ACL list (default_deny unless aclid says otherwise, as upstream). Upstream carries the
 * network on a VLAN; hosts here have no 802.1Q, so `vlan` N names the VXLAN id N and the bridge
 * `npgwN` on the router's host (vpc-routing.ts): the admin's network joins that bridge or VXLAN id.
 *
 * A static route sends a CIDR outside the VPC through a private gateway's next hop (gatewayid),
 * or through a next hop on one of the VPC's private gateway networks (nexthop, with vpcid).
 *
 * Each change is applied to the VPC's running router before the command answers; a router that
 * refuses (or cannot be reached) leaves the records as they were.
 */
import type { Selectable } from 'kysely';
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database, VpcRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied, unsupported } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findOwned, listOwned, type OwnedLookup, ownerFieldsOf } from '../iam/owned.ts';
import { intToIpv4, ipv4ToInt, isIpv4, namesOf, netmaskBits, subnetBounds } from '../infra/common.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { tagsOf, withTags } from '../tags/tags.ts';
import { guestPhysicalNetwork } from './guest-networks.ts';
import { cidrWithin, parseCidr } from './ip-rules.ts';
import { publicMac } from './routers.ts';
import type { NetworkAclListRow, VpcPrivateGatewayRow, VpcStaticRouteRow } from './vpc-acl-tables.ts';
import { checkAclForVpc, findAclList } from './vpc-acls.ts';
import { applyVpcRouter, liveVpcRouter } from './vpc-routers.ts';
import { privateGatewayCidr, privateNetwork } from './vpc-routing.ts';

const OWNED_GATEWAY: OwnedLookup<'vpc_private_gateways'> = { noun: 'private gateway' };
const OWNED_ROUTE: OwnedLookup<'vpc_static_routes'> = { noun: 'static route' };
const OWNED_VPC: OwnedLookup<'vpcs'> = { noun: 'VPC' };

/** The VLAN id of a `vlan` parameter: N or vlan://N (1 to 4094, as upstream's VLANs). */
export function vlanId(text: string): number {
  const m = /^(?:vlan:\/\/)?(\d{1,4})$/i.exec(text.trim());
  const n = m ? Number(m[1]) : Number.NaN;
  if (!(n >= 1 && n <= 4094))
    throw invalidParameter(`Invalid vlan ${text}: a VLAN id is 1 to 4094 (or vlan://N)`);
  return n;
}

async function presentGateways(ctx: CallContext, rows: VpcPrivateGatewayRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const column = <K extends keyof VpcPrivateGatewayRow>(key: K) => rows.map((r) => r[key]);
  const [owner, vpcs, zones, acls, physicals] = await Promise.all([
    ownerFieldsOf(ctx.app, rows),
    namesOf(ctx, 'vpcs', column('vpc_id')),
    namesOf(ctx, 'zones', column('zone_id')),
    namesOf(ctx, 'network_acl_lists', column('network_acl_id')),
    namesOf(ctx, 'physical_networks', column('physical_network_id')),
  ]);
  return rows.map((g) => {
    const vpc = vpcs.get(g.vpc_id);
    const zone = zones.get(g.zone_id);
    const acl = acls.get(g.network_acl_id);
    return {
      id: g.uuid,
      ipaddress: g.ip4,
      gateway: g.gateway,
      netmask: g.netmask,
      vlan: `vlan://${g.vni}`,
      vpcid: vpc?.uuid,
      vpcname: vpc?.name,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      physicalnetworkid:
        g.physical_network_id === null ? undefined : physicals.get(g.physical_network_id)?.uuid,
      ...owner(g),
      aclid: acl?.uuid,
      aclname: acl?.name,
      sourcenatsupported: g.source_nat === 1,
      state: g.state,
      hasannotations: false,
    };
  });
}

async function presentGateway(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('vpc_private_gateways')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentGateways(ctx, [row]))[0]!;
}

/** Applies the VPC's router; on failure runs `undo` and sends the router the records again. */
async function applyOrUndo(ctx: CallContext, vpcId: number, undo: () => Promise<unknown>): Promise<void> {
  try {
    await applyVpcRouter(ctx.app, vpcId);
  } catch (err) {
    await undo();
    await applyVpcRouter(ctx.app, vpcId).catch(() => undefined);
    throw err;
  }
}

/**
 * createPrivateGateway and createStaticRoute record their object (`recorded`) before the job runs,
 * so its id comes back with the job id as upstream's; the job sends it to the VPC's router and
 * makes it `ready`, or removes it again (`undone`) when the router refuses.
 */
const ROUTER_RECORDS = {
  vpc_private_gateways: {
    type: 'PrivateGateway',
    event: 'PRIVATE.GATEWAY.CREATE',
    recorded: 'Allocated',
    ready: 'Ready',
    undone: 'Deleted',
  },
  vpc_static_routes: {
    type: 'StaticRoute',
    event: 'STATIC.ROUTE.CREATE',
    recorded: 'Add',
    ready: 'Active',
    undone: 'Revoked',
  },
} as const;
type RouterRecordTable = keyof typeof ROUTER_RECORDS;

/** The columns every such record has, filled in for the command's own `insert`. */
interface RecordBase {
  uuid: string;
  vpc_id: number;
  account_id: number;
  domain_id: number;
  state: string;
  created: number;
  removed: null;
}

/**
 * The create() half: `insert` checks and records the object under a lock on the VPC's row, so two
 * creates cannot both pass its checks; the event is logged in the same transaction.
 */
async function recordForRouter(
  ctx: CallContext,
  table: RouterRecordTable,
  vpc: VpcRow,
  description: string,
  insert: (tx: Tx, record: RecordBase) => Promise<void>,
): Promise<JobTarget> {
  const { app } = ctx;
  const kind = ROUTER_RECORDS[table];
  const base: RecordBase = {
    uuid: app.ids.uuid(),
    vpc_id: vpc.id,
    account_id: vpc.account_id,
    domain_id: vpc.domain_id,
    state: kind.recorded,
    created: app.clock.now(),
    removed: null,
  };
  await app.store.db.transaction().execute(async (tx) => {
    await tx
      .updateTable('vpcs')
      .set((eb) => ({ name: eb.ref('name') }))
      .where('id', '=', vpc.id)
      .execute();
    await insert(tx, base);
    await logEvent(ctx, tx, {
      type: kind.event,
      description,
      resourceType: kind.type,
      resourceId: base.uuid,
    });
  });
  return { type: kind.type, id: base.uuid };
}

/**
 * The job half: the recorded object goes to the router with the rest of its VPC's and becomes
 * ready; a router that refuses it (or cannot be reached) has it removed again.
 */
async function applyRecorded<T extends RouterRecordTable>(
  ctx: CallContext,
  table: T,
  uuid: string,
): Promise<Selectable<Database[T]>> {
  const { app } = ctx;
  const db = app.store.db;
  // Kysely cannot resolve columns on a generic table: both tables have the ones used here.
  const both: RouterRecordTable = table;
  const { ready, undone } = ROUTER_RECORDS[both];
  const row = await db.selectFrom(both).selectAll().where('uuid', '=', uuid).executeTakeFirstOrThrow();
  await applyOrUndo(ctx, row.vpc_id, () =>
    db.updateTable(both).set({ removed: app.clock.now(), state: undone }).where('id', '=', row.id).execute(),
  );
  await db.updateTable(both).set({ state: ready }).where('id', '=', row.id).execute();
  return { ...row, state: ready } as Selectable<Database[T]>;
}

export const createPrivateGateway = defineCommand({
  name: 'createPrivateGateway',
  description:
    "Connects a VPC's router to an administrator-provided network: the router takes ipaddress on it, with gateway as the next hop for static routes. vlan N is carried as VXLAN id N (bridge npgwN on the router's host). Asynchronous.",
  params: {
    vpcid: p.uuid({ required: true, description: 'The VPC whose router gets the gateway.' }),
    ipaddress: p.string({ required: true, description: "The router's address on the private network." }),
    gateway: p.string({
      required: true,
      description: "The private network's own gateway: the next hop of static routes.",
    }),
    netmask: p.string({ required: true, description: 'Netmask of the private network.' }),
    vlan: p.string({
      adminOnly: true,
      description:
        'The private network: a VLAN id (N or vlan://N, 1-4094), carried between hosts as VXLAN id N since hosts here have no 802.1Q.',
    }),
    physicalnetworkid: p.uuid({
      adminOnly: true,
      description: "Physical network carrying the private network; defaults to the zone's guest one.",
    }),
    associatednetworkid: p.uuid({
      description: 'Not supported: a private gateway is made on a VLAN (vlan); any value is refused.',
    }),
    networkofferingid: p.uuid({
      adminOnly: true,
      description:
        'Accepted for compatibility: the private network is always carried as described under vlan.',
    }),
    aclid: p.uuid({ description: 'The network ACL list filtering the gateway; defaults to default_deny.' }),
    sourcenatsupported: p.boolean({
      description:
        "true: the VPC's traffic leaving through the gateway takes its address (source NAT); default false.",
    }),
    bypassvlanoverlapcheck: p.boolean({
      adminOnly: true,
      description: 'true: the VLAN may be one a guest network of the zone carries too; default false.',
    }),
  },
  event: {
    type: 'PRIVATE.GATEWAY.CREATE',
    description: (params) => `creating private gateway ${params.ipaddress}`,
  },
  // Recorded (Allocated) before the job runs, so its id comes back with the job id as upstream's;
  // the job plugs it into the router and makes it Ready, or removes it when the router refuses.
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    const db = app.store.db;
    if (params.associatednetworkid)
      throw unsupported('Private gateways on an associated network are not supported; give vlan');
    if (ctx.caller.roleKind !== 'admin')
      throw permissionDenied('Only root admins can create private gateways on a VLAN');
    if (params.vlan === undefined) throw invalidParameter('vlan is required to create a private gateway');
    const vni = vlanId(params.vlan);
    const vpc = await findOwned(ctx, 'vpcs', params.vpcid, OWNED_VPC);
    for (const [name, v] of [
      ['ipaddress', params.ipaddress],
      ['gateway', params.gateway],
    ] as const)
      if (!isIpv4(v.trim())) throw invalidParameter(`Invalid ${name} ${v}`);
    const ip = params.ipaddress.trim();
    const gateway = params.gateway.trim();
    const netmask = params.netmask.trim();
    const bits = netmaskBits(netmask);
    if (bits === undefined || bits < 8 || bits > 30)
      throw invalidParameter(`Invalid netmask ${params.netmask}`);
    const subnet = subnetBounds(gateway, netmask);
    const at = ipv4ToInt(ip);
    if (at < subnet.first || at > subnet.last)
      throw invalidParameter(`The IP address ${ip} is not in the gateway ${gateway} subnet`);
    if (ip === gateway) throw invalidParameter('The private gateway IP address and its gateway must differ');
    if (at === subnet.first || at === subnet.last)
      throw invalidParameter(`The IP address ${ip} is the network or broadcast address of its subnet`);
    const cidr = `${intToIpv4(subnet.first)}/${bits}`;
    if (cidrWithin(cidr, vpc.cidr) || cidrWithin(vpc.cidr, cidr))
      throw invalidParameter(`The private gateway's subnet ${cidr} overlaps the VPC's CIDR ${vpc.cidr}`);
    const zone = await db
      .selectFrom('zones')
      .selectAll()
      .where('id', '=', vpc.zone_id)
      .executeTakeFirstOrThrow();
    const physical = await guestPhysicalNetwork(app, zone, params.physicalnetworkid);
    const acl = params.aclid ? await findAclList(ctx, params.aclid) : await defaultDeny(ctx);
    checkAclForVpc(acl, vpc, `private gateway of VPC ${vpc.uuid}`);
    return recordForRouter(
      ctx,
      'vpc_private_gateways',
      vpc,
      `created private gateway ${ip} on vlan://${vni} for VPC ${vpc.name}`,
      async (tx, record) => {
        if (params.bypassvlanoverlapcheck !== true) {
          const guest = await tx
            .selectFrom('networks')
            .select('name')
            .where('zone_id', '=', zone.id)
            .where('vni', '=', vni)
            .where('removed', 'is', null)
            .executeTakeFirst();
          if (guest)
            throw invalidParameter(
              `The VLAN tag ${vni} is already used by network ${guest.name} in zone ${zone.name}`,
            );
        }
        const others = await tx
          .selectFrom('vpc_private_gateways')
          .selectAll()
          .where('zone_id', '=', zone.id)
          .where('vni', '=', vni)
          .where('removed', 'is', null)
          .execute();
        if (others.some((o) => o.vpc_id === vpc.id))
          throw invalidParameter(`VPC ${vpc.name} already has a private gateway on vlan://${vni}`);
        if (others.some((o) => o.ip4 === ip))
          throw invalidParameter(
            `The IP address ${ip} is already used by a private gateway on vlan://${vni}`,
          );
        if (others.some((o) => privateGatewayCidr(o) !== cidr))
          throw invalidParameter(`Private gateways on vlan://${vni} use another subnet than ${cidr}`);
        await tx
          .insertInto('vpc_private_gateways')
          .values({
            ...record,
            zone_id: zone.id,
            physical_network_id: physical,
            ip4: ip,
            gateway,
            netmask,
            vlan: `vlan://${vni}`,
            vni,
            mac: publicMac(app),
            network_acl_id: acl.id,
            source_nat: params.sourcenatsupported ? 1 : 0,
          })
          .execute();
      },
    );
  },
  async handler(ctx, _params, created) {
    return presentGateway(ctx, (await applyRecorded(ctx, 'vpc_private_gateways', created!.id)).id);
  },
});

async function defaultDeny(ctx: CallContext): Promise<NetworkAclListRow> {
  return ctx.app.store.db
    .selectFrom('network_acl_lists')
    .selectAll()
    .where('name', '=', 'default_deny')
    .where('vpc_id', 'is', null)
    .executeTakeFirstOrThrow();
}

/**
 * Takes the private network's bridge off the router's host once no other gateway there uses it
 * (best effort: a host that cannot be reached keeps an unused bridge).
 */
async function teardownGatewayBridge(ctx: CallContext, gateway: VpcPrivateGatewayRow): Promise<void> {
  const { app } = ctx;
  const router = await liveVpcRouter(app, gateway.vpc_id);
  if (router?.host_id == null || !app.agents.isConnected(router.host_id)) return;
  const sharing = await app.store.db
    .selectFrom('vpc_private_gateways')
    .innerJoin('routers', 'routers.live_vpc_id', 'vpc_private_gateways.vpc_id')
    .select('vpc_private_gateways.id')
    .where('vpc_private_gateways.vni', '=', gateway.vni)
    .where('vpc_private_gateways.removed', 'is', null)
    .where('vpc_private_gateways.id', '!=', gateway.id)
    .where('routers.host_id', '=', router.host_id)
    .executeTakeFirst();
  if (sharing) return;
  await app.agents
    .call(router.host_id, 'teardownNetwork', { network: privateNetwork(gateway) })
    .catch((err: Error) =>
      app.log.warn({ gateway: gateway.uuid, err: err.message }, 'private gateway bridge not torn down'),
    );
}

export const deletePrivateGateway = defineCommand({
  name: 'deletePrivateGateway',
  description:
    "Removes a private gateway from its VPC's router; refused while static routes go through it. Asynchronous.",
  params: { id: p.uuid({ required: true, description: 'ID of the private gateway to delete.' }) },
  event: { type: 'PRIVATE.GATEWAY.DELETE', description: (params) => `deleting private gateway ${params.id}` },
  target: async (ctx, params): Promise<JobTarget> => ({
    type: 'PrivateGateway',
    id: (await findOwned(ctx, 'vpc_private_gateways', params.id, OWNED_GATEWAY)).uuid,
  }),
  async handler(ctx, params) {
    await deleteGatewayOf(ctx, await findOwned(ctx, 'vpc_private_gateways', params.id, OWNED_GATEWAY));
    return success();
  },
});

async function deleteGatewayOf(ctx: CallContext, gateway: VpcPrivateGatewayRow): Promise<void> {
  const { app } = ctx;
  const db = app.store.db;
  await db.transaction().execute(async (tx) => {
    const routes = await tx
      .selectFrom('vpc_static_routes')
      .select('cidr')
      .where('gateway_id', '=', gateway.id)
      .where('removed', 'is', null)
      .execute();
    if (routes.length)
      throw invalidParameter(
        `Can't delete private gateway ${gateway.uuid}: static routes go through it (${routes.map((r) => r.cidr).join(', ')}); delete them first`,
      );
    await tx
      .updateTable('vpc_private_gateways')
      .set({ removed: app.clock.now(), state: 'Deleted' })
      .where('id', '=', gateway.id)
      .execute();
    await logEvent(ctx, tx, {
      type: 'PRIVATE.GATEWAY.DELETE',
      description: `deleted private gateway ${gateway.ip4} on vlan://${gateway.vni}`,
      resourceType: 'PrivateGateway',
      resourceId: gateway.uuid,
    });
  });
  await applyOrUndo(ctx, gateway.vpc_id, () =>
    db
      .updateTable('vpc_private_gateways')
      .set({ removed: null, state: gateway.state })
      .where('id', '=', gateway.id)
      .execute(),
  );
  await teardownGatewayBridge(ctx, gateway);
}

export const listPrivateGateways = defineCommand({
  name: 'listPrivateGateways',
  description: 'Lists the private gateways of the VPCs the caller may see.',
  params: {
    id: p.uuid({ description: 'Only the private gateway with this ID.' }),
    vpcid: p.uuid({ description: "Only this VPC's private gateways." }),
    ipaddress: p.string({ description: 'Only gateways with this address.' }),
    vlan: p.string({ description: 'Only gateways on this VLAN (N or vlan://N).' }),
    state: p.string({ description: 'Only gateways in this state (Ready).' }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db.selectFrom('vpc_private_gateways').where('vpc_private_gateways.removed', 'is', null);
    if (params.id) q = q.where('vpc_private_gateways.uuid', '=', params.id);
    if (params.vpcid)
      q = q.where(
        'vpc_private_gateways.vpc_id',
        '=',
        (await findOwned(ctx, 'vpcs', params.vpcid, OWNED_VPC)).id,
      );
    if (params.ipaddress) q = q.where('vpc_private_gateways.ip4', '=', params.ipaddress.trim());
    if (params.vlan) q = q.where('vpc_private_gateways.vni', '=', vlanId(params.vlan));
    if (params.state) q = q.where('vpc_private_gateways.state', '=', params.state);
    return listOwned(ctx, params, q, {
      owner: { account: 'vpc_private_gateways.account_id', domain: 'vpc_private_gateways.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('vpc_private_gateways').orderBy('vpc_private_gateways.id'),
          page,
        ).execute() as Promise<VpcPrivateGatewayRow[]>,
      present: (rows) => presentGateways(ctx, rows),
    });
  },
});

/** replaceNetworkACLList gatewayid=: the gateway's list replaced and applied (or left as it was). */
export async function replaceGatewayAcl(
  ctx: CallContext,
  gatewayUuid: string,
  acl: NetworkAclListRow,
): Promise<void> {
  const gateway = await findOwned(ctx, 'vpc_private_gateways', gatewayUuid, OWNED_GATEWAY);
  if (gateway.state !== 'Ready') throw invalidParameter('Gateway is not in Ready state');
  const vpc = await ctx.app.store.db
    .selectFrom('vpcs')
    .selectAll()
    .where('id', '=', gateway.vpc_id)
    .executeTakeFirstOrThrow();
  checkAclForVpc(acl, vpc, `private gateway: ${gateway.uuid}`);
  const db = ctx.app.store.db;
  await db.transaction().execute(async (tx) => {
    await tx
      .updateTable('vpc_private_gateways')
      .set({ network_acl_id: acl.id })
      .where('id', '=', gateway.id)
      .execute();
    await logEvent(ctx, tx, {
      type: 'NETWORK.ACL.REPLACE',
      description: `private gateway ${gateway.ip4} now uses network ACL list ${acl.name}`,
      resourceType: 'PrivateGateway',
      resourceId: gateway.uuid,
    });
  });
  await applyOrUndo(ctx, vpc.id, () =>
    db
      .updateTable('vpc_private_gateways')
      .set({ network_acl_id: gateway.network_acl_id })
      .where('id', '=', gateway.id)
      .execute(),
  );
}

async function presentRoutes(ctx: CallContext, rows: VpcStaticRouteRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const column = <K extends keyof VpcStaticRouteRow>(key: K) => rows.map((r) => r[key]);
  const [owner, vpcs, gateways, tags] = await Promise.all([
    ownerFieldsOf(ctx.app, rows),
    namesOf(ctx, 'vpcs', column('vpc_id')),
    ctx.app.store.db
      .selectFrom('vpc_private_gateways')
      .select(['id', 'uuid', 'ip4'])
      .where('id', 'in', [-1, ...rows.flatMap((r) => (r.gateway_id !== null ? [r.gateway_id] : []))])
      .execute(),
    tagsOf(ctx, 'StaticRoute', column('id')),
  ]);
  return rows.map((r) => {
    const gateway = gateways.find((g) => g.id === r.gateway_id);
    return {
      id: r.uuid,
      cidr: r.cidr,
      nexthop: r.nexthop,
      vpcgatewayid: gateway?.uuid,
      vpcgatewayip: gateway?.ip4,
      vpcid: vpcs.get(r.vpc_id)?.uuid,
      state: r.state,
      ...owner(r),
      tags: tags.get(r.id) ?? [],
    };
  });
}

export const createStaticRoute = defineCommand({
  name: 'createStaticRoute',
  description:
    "Routes a CIDR outside the VPC through a private gateway's next hop (gatewayid) or through a next hop on one of the VPC's private gateway networks (nexthop with vpcid). Asynchronous.",
  params: {
    cidr: p.string({ required: true, description: 'Destination CIDR; must lie outside the VPC.' }),
    gatewayid: p.uuid({ description: 'Private gateway whose gateway is the next hop (or nexthop).' }),
    nexthop: p.string({
      description: "Next hop address on one of the VPC's private gateway networks (or gatewayid).",
    }),
    vpcid: p.uuid({ description: 'The VPC, with nexthop.' }),
  },
  event: { type: 'STATIC.ROUTE.CREATE', description: (params) => `creating static route ${params.cidr}` },
  // Recorded (Add) before the job runs, as upstream's; the job applies it and makes it Active.
  async create(ctx, params): Promise<JobTarget> {
    const db = ctx.app.store.db;
    if ((params.gatewayid === undefined) === (params.nexthop === undefined))
      throw invalidParameter('Exactly one of gatewayid and nexthop is required: they are mutually exclusive');
    let vpc: VpcRow;
    let gateway: VpcPrivateGatewayRow | undefined;
    let nexthop: string;
    if (params.gatewayid) {
      gateway = await findOwned(ctx, 'vpc_private_gateways', params.gatewayid, OWNED_GATEWAY);
      if (gateway.state !== 'Ready') throw invalidParameter('Gateway is not in Ready state');
      vpc = await db
        .selectFrom('vpcs')
        .selectAll()
        .where('id', '=', gateway.vpc_id)
        .executeTakeFirstOrThrow();
      nexthop = gateway.gateway;
    } else {
      if (!params.vpcid) throw invalidParameter('vpcid is required with nexthop');
      vpc = await findOwned(ctx, 'vpcs', params.vpcid, OWNED_VPC);
      nexthop = params.nexthop!.trim();
      if (!isIpv4(nexthop)) throw invalidParameter(`Invalid nexthop ${params.nexthop}`);
      const gateways = await db
        .selectFrom('vpc_private_gateways')
        .selectAll()
        .where('vpc_id', '=', vpc.id)
        .where('removed', 'is', null)
        .execute();
      gateway = gateways.find((g) => cidrWithin(`${nexthop}/32`, privateGatewayCidr(g)));
      if (!gateway)
        throw invalidParameter(
          `Next hop ${nexthop} is not on any private gateway network of VPC ${vpc.name}`,
        );
      if (nexthop === gateway.ip4) throw invalidParameter(`Next hop ${nexthop} is the router's own address`);
    }
    let cidr: string;
    try {
      cidr = parseCidr(params.cidr, 'cidr');
    } catch {
      throw invalidParameter(`Invalid format for cidr ${params.cidr}`);
    }
    const [base, bits] = cidr.split('/') as [string, string];
    const size = 2 ** (32 - Number(bits));
    cidr = `${intToIpv4(Math.floor(ipv4ToInt(base) / size) * size)}/${bits}`;
    if (cidrWithin(cidr, vpc.cidr) || cidrWithin(vpc.cidr, cidr))
      throw invalidParameter(`CIDR should be outside of VPC cidr ${vpc.cidr}`);
    return recordForRouter(
      ctx,
      'vpc_static_routes',
      vpc,
      `created static route ${cidr} via ${nexthop} for VPC ${vpc.name}`,
      async (tx, record) => {
        const same = await tx
          .selectFrom('vpc_static_routes')
          .select('id')
          .where('vpc_id', '=', vpc.id)
          .where('cidr', '=', cidr)
          .where('removed', 'is', null)
          .executeTakeFirst();
        if (same) throw invalidParameter(`A static route for ${cidr} already exists in VPC ${vpc.name}`);
        await tx
          .insertInto('vpc_static_routes')
          .values({ ...record, gateway_id: params.gatewayid ? gateway!.id : null, nexthop, cidr })
          .execute();
      },
    );
  },
  async handler(ctx, _params, created) {
    return (await presentRoutes(ctx, [await applyRecorded(ctx, 'vpc_static_routes', created!.id)]))[0]!;
  },
});

export const deleteStaticRoute = defineCommand({
  name: 'deleteStaticRoute',
  description: "Removes a static route from its VPC's router. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the static route to delete.' }),
    accountid: p.uuid({ description: 'Accepted for compatibility: the route is found by its ID.' }),
  },
  event: { type: 'STATIC.ROUTE.DELETE', description: (params) => `deleting static route ${params.id}` },
  target: async (ctx, params): Promise<JobTarget> => ({
    type: 'StaticRoute',
    id: (await findOwned(ctx, 'vpc_static_routes', params.id, OWNED_ROUTE)).uuid,
  }),
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const route = await findOwned(ctx, 'vpc_static_routes', params.id, OWNED_ROUTE);
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('vpc_static_routes')
        .set({ removed: app.clock.now(), state: 'Revoked' })
        .where('id', '=', route.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'STATIC.ROUTE.DELETE',
        description: `deleted static route ${route.cidr} via ${route.nexthop}`,
        resourceType: 'StaticRoute',
        resourceId: route.uuid,
      });
    });
    await applyOrUndo(ctx, route.vpc_id, () =>
      db
        .updateTable('vpc_static_routes')
        .set({ removed: null, state: route.state })
        .where('id', '=', route.id)
        .execute(),
    );
    return success();
  },
});

export const listStaticRoutes = defineCommand({
  name: 'listStaticRoutes',
  description: 'Lists the static routes of the VPCs the caller may see.',
  params: {
    id: p.uuid({ description: 'Only the static route with this ID.' }),
    vpcid: p.uuid({ description: "Only this VPC's static routes." }),
    gatewayid: p.uuid({ description: 'Only the routes through this private gateway.' }),
    state: p.string({ description: 'Only routes in this state (Active).' }),
    tags: p.map({ description: 'Only routes with these tags (tags[0].key, tags[0].value).' }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db.selectFrom('vpc_static_routes').where('vpc_static_routes.removed', 'is', null);
    if (params.id) q = q.where('vpc_static_routes.uuid', '=', params.id);
    if (params.vpcid)
      q = q.where(
        'vpc_static_routes.vpc_id',
        '=',
        (await findOwned(ctx, 'vpcs', params.vpcid, OWNED_VPC)).id,
      );
    if (params.gatewayid)
      q = q.where(
        'vpc_static_routes.gateway_id',
        '=',
        (await findOwned(ctx, 'vpc_private_gateways', params.gatewayid, OWNED_GATEWAY)).id,
      );
    if (params.state) q = q.where('vpc_static_routes.state', '=', params.state);
    q = withTags(q, 'StaticRoute', 'vpc_static_routes.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'vpc_static_routes.account_id', domain: 'vpc_static_routes.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('vpc_static_routes').orderBy('vpc_static_routes.id'),
          page,
        ).execute() as Promise<VpcStaticRouteRow[]>,
      present: (rows) => presentRoutes(ctx, rows),
    });
  },
});

/**
 * deleteVPC: its static routes and private gateways go with it (the router is destroyed after,
 * so nothing is applied; the gateways' bridges are taken off its host).
 */
export async function deleteVpcGateways(ctx: CallContext, vpcId: number): Promise<void> {
  const { app } = ctx;
  const gateways = await app.store.db
    .selectFrom('vpc_private_gateways')
    .selectAll()
    .where('vpc_id', '=', vpcId)
    .where('removed', 'is', null)
    .execute();
  await app.store.db.transaction().execute(async (tx) => {
    await tx
      .updateTable('vpc_static_routes')
      .set({ removed: app.clock.now(), state: 'Revoked' })
      .where('vpc_id', '=', vpcId)
      .where('removed', 'is', null)
      .execute();
    await tx
      .updateTable('vpc_private_gateways')
      .set({ removed: app.clock.now(), state: 'Deleted' })
      .where('vpc_id', '=', vpcId)
      .where('removed', 'is', null)
      .execute();
  });
  for (const g of gateways) await teardownGatewayBridge(ctx, g);
}

export const vpcGatewayCommands = [
  createPrivateGateway,
  deletePrivateGateway,
  listPrivateGateways,
  createStaticRoute,
  deleteStaticRoute,
  listStaticRoutes,
];
