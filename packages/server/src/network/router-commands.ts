/**
 * The router commands administrators use: listRouters and start/stop/reboot/destroyRouter. What
 * they do to routers is in routers.ts; this file finds, checks and presents.
 */

import { formatDate } from '../clock.ts';
import { type CallContext, isRootAdmin } from '../context.ts';
import type { RouterRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { applyScope, escapeLike, likeEscaped, listScope } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, type JobTarget, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import {
  bootRouter,
  haltRouter,
  hostForRouter,
  ROUTER_STATES,
  ROUTER_VERSION,
  removeRouterRecords,
  routerEvent,
  routerLockKey,
  routersDestroyed,
  withNetworkLock,
} from './routers.ts';

async function findRouter(ctx: CallContext, uuid: string): Promise<RouterRow> {
  const r = await ctx.app.store.db
    .selectFrom('routers')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!r) throw invalidParameter(`Unable to find router by id ${uuid}`);
  return r;
}

async function presentRouters(ctx: CallContext, routers: RouterRow[]): Promise<object[]> {
  if (routers.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = <K extends 'network_id' | 'zone_id' | 'pod_id' | 'host_id' | 'nic_id'>(k: K) => [
    ...new Set(routers.map((r) => r[k]).filter((v): v is number => v !== null)),
  ];
  const [networks, zones, pods, hosts, nics] = await Promise.all([
    db.selectFrom('networks').selectAll().where('id', 'in', ids('network_id')).execute(),
    db
      .selectFrom('zones')
      .select(['id', 'uuid', 'name', 'dns1', 'dns2', 'network_domain'])
      .where('id', 'in', ids('zone_id'))
      .execute(),
    ids('pod_id').length
      ? db.selectFrom('pods').select(['id', 'uuid', 'name']).where('id', 'in', ids('pod_id')).execute()
      : [],
    ids('host_id').length
      ? db
          .selectFrom('hosts')
          .select(['id', 'uuid', 'name', 'state'])
          .where('id', 'in', ids('host_id'))
          .execute()
      : [],
    ids('nic_id').length ? db.selectFrom('nics').selectAll().where('id', 'in', ids('nic_id')).execute() : [],
  ]);
  const root = await db
    .selectFrom('domains')
    .select(['uuid', 'name', 'path'])
    .where('parent_id', 'is', null)
    .executeTakeFirst();
  // An isolated network's router is seen from outside by its source-NAT address.
  const sourceNats = await db
    .selectFrom('public_ips')
    .innerJoin('vlan_ip_ranges', 'vlan_ip_ranges.id', 'public_ips.range_id')
    .innerJoin('networks', 'networks.id', 'vlan_ip_ranges.network_id')
    .select([
      'public_ips.network_id',
      'public_ips.ip4',
      'vlan_ip_ranges.gateway',
      'vlan_ip_ranges.netmask',
      'networks.uuid as public_network',
    ])
    .where('public_ips.network_id', 'in', ids('network_id'))
    .where('public_ips.source_nat', '=', 1)
    .execute();
  // A VPC's router: its VPC, the VPC's source-NAT address, and a guest NIC per tier.
  const vpcIds = [...new Set(routers.map((r) => r.vpc_id).filter((v): v is number => v !== null))];
  const [vpcs, vpcNats, tierNics] = vpcIds.length
    ? await Promise.all([
        db.selectFrom('vpcs').select(['id', 'uuid', 'name']).where('id', 'in', vpcIds).execute(),
        db
          .selectFrom('public_ips')
          .innerJoin('vlan_ip_ranges', 'vlan_ip_ranges.id', 'public_ips.range_id')
          .innerJoin('networks', 'networks.id', 'vlan_ip_ranges.network_id')
          .select([
            'public_ips.vpc_id',
            'public_ips.ip4',
            'vlan_ip_ranges.gateway',
            'vlan_ip_ranges.netmask',
            'networks.uuid as public_network',
          ])
          .where('public_ips.vpc_id', 'in', vpcIds)
          .where('public_ips.source_nat', '=', 1)
          .execute(),
        db
          .selectFrom('nics')
          .innerJoin('networks', 'networks.id', 'nics.network_id')
          .select([
            'nics.uuid',
            'nics.router_id',
            'nics.ip4',
            'nics.mac',
            'nics.gateway',
            'nics.netmask',
            'nics.broadcast_uri',
            'nics.isolation_uri',
            'networks.uuid as network_uuid',
            'networks.name as network_name',
          ])
          .where(
            'nics.router_id',
            'in',
            routers.filter((r) => r.vpc_id !== null).map((r) => r.id),
          )
          .where('nics.removed', 'is', null)
          .orderBy('nics.network_id')
          .execute(),
      ])
    : [[], [], []];
  return routers.map((r) => {
    const vpc = r.vpc_id !== null ? vpcs.find((v) => v.id === r.vpc_id) : undefined;
    // A router is seen from outside by its source-NAT address: its VPC's, or its network's.
    const pub =
      r.vpc_id !== null
        ? vpcNats.find((x) => x.vpc_id === r.vpc_id)
        : r.public_mac
          ? sourceNats.find((x) => x.network_id === r.network_id)
          : undefined;
    const zone = zones.find((z) => z.id === r.zone_id);
    const pod = pods.find((x) => x.id === r.pod_id);
    const host = hosts.find((h) => h.id === r.host_id);
    const publicNics = pub
      ? [
          {
            networkid: pub.public_network,
            ipaddress: pub.ip4,
            macaddress: r.public_mac,
            gateway: pub.gateway,
            netmask: pub.netmask,
            traffictype: 'Public',
            type: 'Shared',
            isdefault: true,
            deviceid: '1',
          },
        ]
      : [];
    const common = {
      id: r.uuid,
      name: r.name,
      role: 'VIRTUAL_ROUTER',
      state: r.state,
      account: 'system',
      domainid: root?.uuid,
      domain: root?.name,
      domainpath: root ? displayPath(root.path) : undefined,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      podid: pod?.uuid,
      podname: pod?.name,
      hostid: host?.uuid,
      hostname: host?.name,
      hostcontrolstate: host?.state,
      hypervisor: r.hypervisor ?? undefined,
      dns1: zone?.dns1 ?? undefined,
      dns2: zone?.dns2 ?? undefined,
      publicip: pub?.ip4,
      publicmacaddress: pub ? (r.public_mac ?? undefined) : undefined,
      publicnetmask: pub?.netmask,
      publicnetworkid: pub?.public_network,
      created: formatDate(r.created),
      version: r.version,
      softwareversion: r.version,
      requiresupgrade: r.version !== ROUTER_VERSION,
      isredundantrouter: false,
      redundantstate: 'UNKNOWN',
      healthchecksfailed: false,
      hasannotations: false,
    };
    if (r.vpc_id !== null)
      return {
        ...common,
        vpcid: vpc?.uuid,
        vpcname: vpc?.name,
        gateway: pub?.gateway,
        nic: [
          ...tierNics
            .filter((n) => n.router_id === r.id)
            .map((n, i) => ({
              id: n.uuid,
              networkid: n.network_uuid,
              networkname: n.network_name,
              ipaddress: n.ip4 ?? undefined,
              macaddress: n.mac,
              gateway: n.gateway ?? undefined,
              netmask: n.netmask ?? undefined,
              broadcasturi: n.broadcast_uri ?? undefined,
              isolationuri: n.isolation_uri ?? undefined,
              traffictype: 'Guest',
              type: 'Isolated',
              isdefault: false,
              // The first tier is the router's eth0, eth1 its public side, then the other tiers.
              deviceid: String(i === 0 ? 0 : i + 1),
            })),
          ...publicNics,
        ],
      };
    const network = networks.find((n) => n.id === r.network_id);
    const nic = nics.find((n) => n.id === r.nic_id);
    return {
      ...common,
      networkdomain: zone?.network_domain ?? 'cloud.internal',
      gateway: pub?.gateway ?? network?.gateway ?? undefined,
      guestipaddress: r.guest_ip,
      guestmacaddress: r.guest_mac,
      guestnetmask: network?.netmask ?? undefined,
      guestnetworkid: network?.uuid,
      guestnetworkname: network?.name,
      nic: nic
        ? [
            {
              id: nic.uuid,
              networkid: network?.uuid,
              networkname: network?.name,
              ipaddress: nic.ip4 ?? undefined,
              macaddress: nic.mac,
              gateway: nic.gateway ?? undefined,
              netmask: nic.netmask ?? undefined,
              broadcasturi: nic.broadcast_uri ?? undefined,
              isolationuri: nic.isolation_uri ?? undefined,
              traffictype: 'Guest',
              type: network?.guest_type ?? 'Shared',
              isdefault: !pub,
              deviceid: '0',
            },
            ...publicNics,
          ]
        : [],
    };
  });
}

export const listRouters = defineCommand({
  name: 'listRouters',
  description:
    'Lists the virtual routers that serve guest networks; domain administrators see the routers of networks owned in their domains. Keyword matches router names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the router with this ID.' }),
    name: p.string({ description: 'Only the router with exactly this name.' }),
    state: p.string({
      description:
        'Only routers in this state, e.g. Running, Stopped, Starting, Stopping (case-insensitive).',
    }),
    zoneid: p.uuid({ description: 'Only routers of this zone.' }),
    podid: p.uuid({ description: 'Only routers placed in this pod.' }),
    clusterid: p.uuid({ description: 'Only routers running on hosts of this cluster.' }),
    hostid: p.uuid({ description: 'Only routers on this host.' }),
    networkid: p.uuid({ description: 'Only the routers of this guest network.' }),
    version: p.string({ description: 'Only routers of this template version.' }),
    account: p.string({
      description: 'Only routers of networks owned by this account; give its domain with domainid.',
    }),
    domainid: p.uuid({
      description: 'Only routers of networks owned in this domain (and its subdomains with isrecursive).',
    }),
    isrecursive: p.boolean({
      description: 'With domainid, also the routers of networks owned in its subdomains. Defaults to false.',
    }),
    listall: p.boolean({
      description:
        "Domain administrators: true lists the routers of every network owned in their domains, false only their own account's. Root administrators see every router either way unless account or domainid narrows the list.",
    }),
    projectid: p.projectScope({
      description:
        "Only the routers of this project's networks and VPCs; -1: those of every project you may see.",
    }),
    vpcid: p.uuid({ description: "Only this VPC's router." }),
    forvpc: p.boolean({ description: "Only VPCs' routers (true) or only networks' routers (false)." }),
    fetchhealthcheckresults: p.boolean({
      description: 'Accepted for compatibility; Nimbostack runs no router health checks and ignores it.',
    }),
    healthchecksfailed: p.boolean({
      description: 'True gives an empty list: Nimbostack runs no router health checks.',
    }),
    arch: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let state: string | undefined;
    if (params.state) {
      state = ROUTER_STATES.find((s) => s.toLowerCase() === params.state!.toLowerCase());
      if (!state)
        throw invalidParameter(`Invalid state ${params.state}: use one of ${ROUTER_STATES.join(', ')}`);
    }
    const idOf = async (
      table: 'zones' | 'pods' | 'clusters' | 'hosts' | 'networks',
      uuid: string,
      what: string,
    ) => {
      const row = await db.selectFrom(table).select('id').where('uuid', '=', uuid).executeTakeFirst();
      if (!row) throw invalidParameter(`Unable to find ${what} by id ${uuid}`);
      return row.id;
    };
    let q = db.selectFrom('routers').where('removed', 'is', null);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (state) q = q.where('state', '=', state);
    if (params.zoneid) q = q.where('zone_id', '=', await idOf('zones', params.zoneid, 'zone'));
    if (params.podid) q = q.where('pod_id', '=', await idOf('pods', params.podid, 'pod'));
    if (params.hostid) q = q.where('host_id', '=', await idOf('hosts', params.hostid, 'host'));
    if (params.clusterid) {
      const cluster = await idOf('clusters', params.clusterid, 'cluster');
      q = q.where('host_id', 'in', db.selectFrom('hosts').select('id').where('cluster_id', '=', cluster));
    }
    if (params.networkid) q = q.where('network_id', '=', await idOf('networks', params.networkid, 'network'));
    if (params.version) q = q.where('version', '=', params.version);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    // A router belongs to the owner of its network, as upstream; root administrators see them all
    // unless account or domainid narrows the list.
    if (!isRootAdmin(ctx.caller) || params.account || params.domainid || params.projectid) {
      const scope = await listScope(ctx, params);
      // A VPC's router belongs to the VPC's owner (its network is the zone's Public one).
      q = q.where((eb) =>
        eb.or([
          eb(
            'network_id',
            'in',
            applyScope(db.selectFrom('networks').select('networks.id'), scope, {
              account: 'networks.account_id',
              domain: 'networks.domain_id',
            }),
          ),
          eb(
            'vpc_id',
            'in',
            applyScope(db.selectFrom('vpcs').select('vpcs.id'), scope, {
              account: 'vpcs.account_id',
              domain: 'vpcs.domain_id',
            }),
          ),
        ]),
      );
    }
    if (params.vpcid) {
      const vpc = await db
        .selectFrom('vpcs')
        .select('id')
        .where('uuid', '=', params.vpcid)
        .executeTakeFirst();
      if (!vpc) throw invalidParameter(`Unable to find VPC by id ${params.vpcid}`);
      q = q.where('vpc_id', '=', vpc.id);
    }
    if (params.forvpc !== undefined) q = q.where('vpc_id', params.forvpc ? 'is not' : 'is', null);
    // Failed health checks do not exist here.
    if (params.healthchecksfailed) return listResult([], 0);
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentRouters(ctx, rows), Number(count));
  },
});

async function routerTarget(ctx: CallContext, id: string): Promise<JobTarget> {
  await findRouter(ctx, id);
  return { type: 'DomainRouter', id };
}

/**
 * Runs one router command under its network's lock, on the router as it is once the lock is held
 * (a VM start may have changed it meanwhile), and presents the result.
 */
async function routerAction(
  ctx: CallContext,
  id: string,
  act: (current: RouterRow) => Promise<RouterRow>,
): Promise<object> {
  const router = await findRouter(ctx, id);
  // A VPC's router shares its VPC's lock (tiers, addresses and rules change under it).
  const done = await withNetworkLock(ctx.app, routerLockKey(router), async () =>
    act(await findRouter(ctx, id)),
  );
  return (await presentRouters(ctx, [done]))[0]!;
}

export const startRouter = defineCommand({
  name: 'startRouter',
  description:
    "Boots a stopped virtual router on a suitable host and gives it its network's configuration; a running one is left as it is. Asynchronous.",
  roles: ['admin'],
  objectName: 'router',
  params: { id: p.uuid({ required: true, description: 'ID of the router to start.' }) },
  event: { type: 'ROUTER.START', description: (params) => `starting router ${params.id}` },
  target: (ctx, params) => routerTarget(ctx, params.id),
  handler: (ctx, params) =>
    routerAction(ctx, params.id, async (current) => {
      if (current.state === 'Running') return current;
      if (current.state !== 'Stopped')
        throw invalidParameter(`Unable to start router ${current.name}: it is ${current.state}`);
      return bootRouter(ctx.app, current, await hostForRouter(ctx.app, current), 'startRouter');
    }),
});

export const stopRouter = defineCommand({
  name: 'stopRouter',
  description:
    "Stops a virtual router; its network's VMs lose DHCP, DNS and NAT until it starts again (a VM start does that). Asynchronous.",
  roles: ['admin'],
  objectName: 'router',
  params: {
    id: p.uuid({ required: true, description: 'ID of the router to stop.' }),
    forced: p.boolean({
      description: 'Mark the router Stopped even when its host cannot be reached. Defaults to false.',
    }),
  },
  event: { type: 'ROUTER.STOP', description: (params) => `stopping router ${params.id}` },
  target: (ctx, params) => routerTarget(ctx, params.id),
  handler: (ctx, params) =>
    routerAction(ctx, params.id, async (current) => {
      if (current.state !== 'Running' && current.state !== 'Stopped')
        throw invalidParameter(`Unable to stop router ${current.name}: it is ${current.state}`);
      return haltRouter(ctx.app, current, params.forced ?? false);
    }),
});

export const rebootRouter = defineCommand({
  name: 'rebootRouter',
  description:
    'Restarts a running virtual router, stopping it and booting it again with its configuration rebuilt, on the same host when connected. Asynchronous.',
  roles: ['admin'],
  objectName: 'router',
  params: {
    id: p.uuid({ required: true, description: 'ID of the router to reboot.' }),
    forced: p.boolean({
      description: 'Carry on when the host cannot be reached to stop it. Defaults to false.',
    }),
  },
  event: { type: 'ROUTER.REBOOT', description: (params) => `rebooting router ${params.id}` },
  target: (ctx, params) => routerTarget(ctx, params.id),
  handler: (ctx, params) =>
    routerAction(ctx, params.id, async (current) => {
      const { app } = ctx;
      if (current.state !== 'Running' || current.host_id === null)
        throw invalidParameter(`Unable to reboot router ${current.name}: it is ${current.state}`);
      const host = current.host_id;
      // A router reboots as a stop and a fresh start on the same host, with its entries rebuilt.
      const stopped = await haltRouter(app, current, params.forced ?? false);
      const started = await bootRouter(
        app,
        stopped,
        app.agents.isConnected(host) ? host : await hostForRouter(app, stopped),
        'reboot',
      );
      await routerEvent(app, started, 'ROUTER.REBOOT', `rebooted router ${started.name}`);
      return started;
    }),
});

export const destroyRouter = defineCommand({
  name: 'destroyRouter',
  description:
    'Stops and removes a virtual router; the next VM start in its network creates a new one. Asynchronous.',
  roles: ['admin'],
  objectName: 'router',
  params: { id: p.uuid({ required: true, description: 'ID of the router to destroy.' }) },
  event: { type: 'ROUTER.DESTROY', description: (params) => `destroying router ${params.id}` },
  target: (ctx, params) => routerTarget(ctx, params.id),
  // The next VM start of the network creates a new router.
  handler: (ctx, params) =>
    routerAction(ctx, params.id, async (found) => {
      const { app } = ctx;
      const current = await haltRouter(app, found, true);
      await app.store.db.transaction().execute((tx) => removeRouterRecords(app, tx, [current]));
      await routersDestroyed(app, [current]);
      return { ...current, state: 'Destroyed' as const };
    }),
});

export const routerCommands = [listRouters, startRouter, stopRouter, rebootRouter, destroyRouter];
