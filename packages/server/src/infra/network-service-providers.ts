/**
 * Network service providers of a physical network (upstream's physical network service providers)
 * and the elements behind them: every physical network gets VirtualRouter, VpcVirtualRouter,
 * InternalLbVm and SecurityGroupProvider, Disabled, when it is created (migration 0018 gave the
 * older ones theirs). The zone wizard then configures the router elements (enabled=true) and
 * enables the providers; a provider whose element is not enabled cannot be enabled, as upstream.
 *
 * Which providers are enabled is the operator's record of what the zone offers; the isolated
 * network code can ask `providerEnabled` before implementing a network.
 */
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { NetworkServiceProviderRow, VirtualRouterElementRow } from '../db/schema.ts';
import { internalError, invalidParameter } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { likeOp } from './common.ts';

/**
 * The providers every physical network gets, with the services they offer and whether an element
 * must be configured before the provider can be enabled (the migration 0018 copy must match).
 */
export const DEFAULT_PROVIDERS: { name: string; services: string[]; element: boolean }[] = [
  {
    name: 'VirtualRouter',
    services: [
      'Dhcp',
      'Dns',
      'UserData',
      'Gateway',
      'Firewall',
      'Lb',
      'SourceNat',
      'StaticNat',
      'PortForwarding',
      'Vpn',
    ],
    element: true,
  },
  { name: 'SecurityGroupProvider', services: ['SecurityGroup'], element: false },
  {
    name: 'VpcVirtualRouter',
    services: [
      'Dhcp',
      'Dns',
      'UserData',
      'Gateway',
      'NetworkACL',
      'Lb',
      'SourceNat',
      'StaticNat',
      'PortForwarding',
      'Vpn',
    ],
    element: true,
  },
  { name: 'InternalLbVm', services: ['Lb'], element: true },
];

const STATES = ['Enabled', 'Disabled'] as const;

/** Creates a new physical network's providers and elements, in its creation transaction. */
export async function createDefaultProviders(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  physicalNetworkId: number,
): Promise<void> {
  const { app } = ctx;
  for (const provider of DEFAULT_PROVIDERS) {
    const nspId = await insertId(app.store, tx, 'network_service_providers', {
      uuid: app.ids.uuid(),
      physical_network_id: physicalNetworkId,
      name: provider.name,
      state: 'Disabled',
      destination_physical_network_id: null,
      services: provider.services.join(','),
      created: app.clock.now(),
    });
    if (provider.element)
      await insertId(app.store, tx, 'virtual_router_elements', {
        uuid: app.ids.uuid(),
        nsp_id: nspId,
        type: provider.name,
        enabled: 0,
      });
  }
}

/** Removes a physical network's providers and elements (with the network, in its transaction). */
export async function deleteProviders(tx: Tx, physicalNetworkId: number): Promise<void> {
  const nsps = tx
    .selectFrom('network_service_providers')
    .select('id')
    .where('physical_network_id', '=', physicalNetworkId);
  await tx.deleteFrom('virtual_router_elements').where('nsp_id', 'in', nsps).execute();
  await tx
    .deleteFrom('network_service_providers')
    .where('physical_network_id', '=', physicalNetworkId)
    .execute();
}

/** Whether the named provider is enabled on the physical network (for the isolated network code). */
export async function providerEnabled(
  ctx: Pick<CallContext, 'app'>,
  physicalNetworkId: number,
  name: string,
): Promise<boolean> {
  const row = await ctx.app.store.db
    .selectFrom('network_service_providers')
    .select('state')
    .where('physical_network_id', '=', physicalNetworkId)
    .where('name', '=', name)
    .executeTakeFirst();
  return row?.state === 'Enabled';
}

async function presentProviders(ctx: CallContext, rows: NetworkServiceProviderRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const ids = [
    ...new Set(rows.flatMap((r) => [r.physical_network_id, r.destination_physical_network_id ?? -1])),
  ];
  const nets = new Map(
    (
      await ctx.app.store.db
        .selectFrom('physical_networks')
        .select(['id', 'uuid'])
        .where('id', 'in', ids)
        .execute()
    ).map((n) => [n.id, n.uuid]),
  );
  return rows.map((r) => ({
    id: r.uuid,
    name: r.name,
    physicalnetworkid: nets.get(r.physical_network_id),
    destinationphysicalnetworkid:
      r.destination_physical_network_id === null ? undefined : nets.get(r.destination_physical_network_id),
    state: r.state,
    servicelist: r.services.split(',').filter(Boolean),
    // None of these providers lets individual services be switched on or off.
    canenableindividualservice: false,
  }));
}

async function findProvider(ctx: CallContext, uuid: string): Promise<NetworkServiceProviderRow> {
  const row = await ctx.app.store.db
    .selectFrom('network_service_providers')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Network Service Provider id=${uuid} doesn't exist in the system`);
  return row;
}

export const listNetworkServiceProviders = defineCommand({
  name: 'listNetworkServiceProviders',
  description:
    'Lists the service providers of physical networks (VirtualRouter, SecurityGroupProvider, VpcVirtualRouter, InternalLbVm) with their state; keyword matches names.',
  params: {
    ...listParams,
    name: p.string({ description: 'Only providers with this name (case-insensitive), e.g. VirtualRouter.' }),
    physicalnetworkid: p.uuid({ description: 'Only the providers of this physical network.' }),
    state: p.string({ description: 'Only providers in this state: Enabled or Disabled.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db
      .selectFrom('network_service_providers')
      .where(
        'physical_network_id',
        'in',
        app.store.db.selectFrom('physical_networks').select('id').where('removed', 'is', null),
      );
    if (params.physicalnetworkid) {
      const net = await app.store.db
        .selectFrom('physical_networks')
        .select('id')
        .where('uuid', '=', params.physicalnetworkid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!net)
        throw invalidParameter(`Physical Network id=${params.physicalnetworkid} doesn't exist in the system`);
      q = q.where('physical_network_id', '=', net.id);
    }
    if (params.name) q = q.where(likeEscaped('name', escapeLike(params.name), likeOp(ctx)));
    if (params.state) q = q.where(likeEscaped('state', escapeLike(params.state), likeOp(ctx)));
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentProviders(ctx, rows), Number(count));
  },
});

export const updateNetworkServiceProvider = defineCommand({
  name: 'updateNetworkServiceProvider',
  description:
    "Enables or disables a physical network's service provider, as zone set-up does; a router provider's element must be configured first. The state is bookkeeping only. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the provider.' }),
    state: p.string({ description: 'Enabled or Disabled.' }),
    servicelist: p.list({ description: "A provider's services are fixed: any non-empty list is refused." }),
  },
  event: {
    type: 'SERVICE.PROVIDER.UPDATE',
    description: (params) => `updating network service provider ${params.id}`,
  },
  async target(ctx, params) {
    const provider = await findProvider(ctx, params.id);
    checkUpdate(provider, params);
    return { type: 'PhysicalNetworkServiceProvider', id: provider.uuid };
  },
  async handler(ctx, params) {
    const provider = await findProvider(ctx, params.id);
    const state = checkUpdate(provider, params);
    if (state === 'Enabled') {
      const element = await ctx.app.store.db
        .selectFrom('virtual_router_elements')
        .select('enabled')
        .where('nsp_id', '=', provider.id)
        .executeTakeFirst();
      // Upstream's element readiness check: the router element is configured (enabled) first.
      if (element && element.enabled !== 1)
        throw internalError(
          'Provider is not ready, cannot Enable the provider, please configure the provider first',
        );
    }
    if (state !== undefined)
      await ctx.app.store.db
        .updateTable('network_service_providers')
        .set({ state })
        .where('id', '=', provider.id)
        .execute();
    return (await presentProviders(ctx, [await findProvider(ctx, provider.uuid)]))[0];
  },
});

function checkUpdate(
  provider: NetworkServiceProviderRow,
  params: { state?: string; servicelist?: string[] },
): (typeof STATES)[number] | undefined {
  if (params.servicelist?.length)
    throw invalidParameter(`Cannot update set of Services for this Service Provider '${provider.name}'`);
  if (params.state === undefined) return undefined;
  const state = STATES.find((s) => s.toLowerCase() === params.state?.trim().toLowerCase());
  if (!state) throw invalidParameter(`Unable to find the state ${params.state}; use Enabled or Disabled`);
  return state;
}

function presentElement(e: VirtualRouterElementRow, nspUuid: string): object {
  return { id: e.uuid, nspid: nspUuid, enabled: e.enabled === 1 };
}

/** list and configure commands for one kind of element (router elements, internal LB elements). */
function elementCommands(kind: 'router' | 'internalLb') {
  const types = kind === 'router' ? ['VirtualRouter', 'VpcVirtualRouter'] : ['InternalLbVm'];
  const names =
    kind === 'router'
      ? {
          list: 'listVirtualRouterElements',
          configure: 'configureVirtualRouterElement',
          entity: 'VirtualRouter',
        }
      : {
          list: 'listInternalLoadBalancerElements',
          configure: 'configureInternalLoadBalancerElement',
          entity: 'InternalLbVm',
        };
  const find = async (ctx: CallContext, uuid: string) => {
    const row = await ctx.app.store.db
      .selectFrom('virtual_router_elements as e')
      .innerJoin('network_service_providers as n', 'n.id', 'e.nsp_id')
      .selectAll('e')
      .select('n.uuid as nsp_uuid')
      .where('e.uuid', '=', uuid)
      .where('e.type', 'in', types)
      .executeTakeFirst();
    if (!row) throw invalidParameter(`Unable to find ${names.entity} element by id ${uuid}`);
    const { nsp_uuid, ...element } = row;
    return { element, nsp: nsp_uuid };
  };
  const list = defineCommand({
    name: names.list,
    description:
      kind === 'router'
        ? "Lists the virtual router elements of physical networks' router providers, with whether each is configured (enabled)."
        : "Lists the internal load balancer elements of physical networks' InternalLbVm providers, with whether each is enabled.",
    params: {
      ...listParams,
      id: p.uuid({ description: 'Only the element with this ID.' }),
      nspid: p.uuid({ description: 'Only the element of this network service provider.' }),
      enabled: p.boolean({ description: 'Only enabled (true) or only disabled (false) elements.' }),
    },
    async handler(ctx, params) {
      const { app } = ctx;
      let q = app.store.db
        .selectFrom('virtual_router_elements as e')
        .innerJoin('network_service_providers as n', 'n.id', 'e.nsp_id')
        .where('e.type', 'in', types);
      if (params.id) q = q.where('e.uuid', '=', params.id);
      if (params.nspid) {
        const nsp = await app.store.db
          .selectFrom('network_service_providers')
          .select('id')
          .where('uuid', '=', params.nspid)
          .executeTakeFirst();
        if (!nsp) throw invalidParameter(`Unable to find network service provider by id ${params.nspid}`);
        q = q.where('e.nsp_id', '=', nsp.id);
      }
      if (params.enabled !== undefined) q = q.where('e.enabled', '=', params.enabled ? 1 : 0);
      const { count } = await q
        .select((eb) => eb.fn.countAll<number>().as('count'))
        .executeTakeFirstOrThrow();
      const rows = await paginate(
        q.selectAll('e').select('n.uuid as nsp_uuid').orderBy('e.id'),
        pageOf(app, params),
      ).execute();
      return listResult(
        rows.map(({ nsp_uuid, ...e }) => presentElement(e, nsp_uuid)),
        Number(count),
      );
    },
  });
  const configure = defineCommand({
    name: names.configure,
    description:
      kind === 'router'
        ? 'Marks a virtual router element as configured (enabled) or not; its provider can be enabled only once it is. Asynchronous.'
        : 'Marks an internal load balancer element as enabled or not; its provider can be enabled only once it is. Asynchronous.',
    params: {
      id: p.uuid({ required: true, description: 'ID of the element.' }),
      enabled: p.boolean({ required: true, description: 'True to enable the element, false to disable it.' }),
    },
    event: {
      type: 'NETWORK.ELEMENT.CONFIGURE',
      description: (params) => `configuring ${names.entity} element ${params.id}`,
    },
    async target(ctx, params) {
      await find(ctx, params.id);
      return { type: names.entity, id: params.id };
    },
    async handler(ctx, params) {
      const { element } = await find(ctx, params.id);
      await ctx.app.store.db
        .updateTable('virtual_router_elements')
        .set({ enabled: params.enabled ? 1 : 0 })
        .where('id', '=', element.id)
        .execute();
      const updated = await find(ctx, params.id);
      return presentElement(updated.element, updated.nsp);
    },
  });
  return [list, configure];
}

export const networkServiceProviderCommands = [
  listNetworkServiceProviders,
  updateNetworkServiceProvider,
  ...elementCommands('router'),
  ...elementCommands('internalLb'),
];
