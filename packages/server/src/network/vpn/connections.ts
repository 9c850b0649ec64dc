/**
 * Site-to-site VPN connections (createVpnConnection, resetVpnConnection, deleteVpnConnection,
 * listVpnConnections): a VPC's VPN gateway joined to a customer gateway. The state is the
 * tunnel's as the router reports it: Pending until first applied, Connected while its IPsec SA is
 * installed, Disconnected otherwise (a passive connection waits for the peer), Error when the
 * router cannot run it. Creating or resetting an active connection waits (bounded) for it to come up.
 */
import { formatDate } from '../../clock.ts';
import type { CallContext } from '../../context.ts';
import { invalidParameter } from '../../errors.ts';
import { logEvent } from '../../events/events.ts';
import { findOwned, listOwned, ownerFieldsOf } from '../../iam/owned.ts';
import { defineCommand, type JobTarget, success } from '../../registry/command.ts';
import { paginate } from '../../registry/paging.ts';
import { listParams, p, scopeParams } from '../../registry/params.ts';
import { defineSetting } from '../../settings/settings.ts';
import { OWNED_VPC } from '../vpcs.ts';
import { cidrsOverlap, OWNED_CUSTOMER_GATEWAY, OWNED_VPN_CONNECTION, OWNED_VPN_GATEWAY } from './common.ts';
import type { VpnConnectionRow } from './tables.ts';
import { applyVpn, waitConnected } from './vpn-apply.ts';

export const CONNECTION_LIMIT = defineSetting({
  name: 'site2site.vpn.vpngateway.connection.limit',
  category: 'Network',
  type: 'Integer',
  defaultValue: 4,
  min: 1,
  description: 'The most site-to-site connections one VPN gateway may have.',
});

async function presentConnections(ctx: CallContext, rows: VpnConnectionRow[]): Promise<object[]> {
  if (!rows.length) return [];
  const db = ctx.app.store.db;
  const [owner, gateways, customers] = await Promise.all([
    ownerFieldsOf(ctx.app, rows),
    db
      .selectFrom('vpn_gateways')
      .innerJoin('public_ips', 'public_ips.id', 'vpn_gateways.public_ip_id')
      .select(['vpn_gateways.id', 'vpn_gateways.uuid', 'public_ips.ip4'])
      .where(
        'vpn_gateways.id',
        'in',
        rows.map((r) => r.vpn_gateway_id),
      )
      .execute(),
    db
      .selectFrom('vpn_customer_gateways')
      .selectAll()
      .where(
        'id',
        'in',
        rows.map((r) => r.customer_gateway_id),
      )
      .execute(),
  ]);
  return rows.map((c) => {
    const gw = gateways.find((g) => g.id === c.vpn_gateway_id);
    const cg = customers.find((g) => g.id === c.customer_gateway_id);
    return {
      id: c.uuid,
      s2svpngatewayid: gw?.uuid,
      publicip: gw?.ip4,
      s2scustomergatewayid: cg?.uuid,
      gateway: cg?.gateway,
      cidrlist: cg?.cidr_list,
      ipsecpsk: cg ? ctx.app.secrets.decrypt(cg.ipsec_psk) : undefined,
      ikepolicy: cg?.ike_policy,
      esppolicy: cg?.esp_policy,
      ikelifetime: cg?.ike_lifetime,
      esplifetime: cg?.esp_lifetime,
      dpd: cg ? cg.dpd === 1 : undefined,
      forceencap: cg ? cg.force_encap === 1 : undefined,
      splitconnections: cg ? cg.split_connections === 1 : undefined,
      ikeversion: cg?.ike_version,
      passive: c.passive === 1,
      state: c.state,
      ...owner(c),
      fordisplay: c.for_display === 1,
      created: formatDate(c.created),
    };
  });
}

async function vpcOfConnection(ctx: CallContext, conn: VpnConnectionRow): Promise<number> {
  const gw = await ctx.app.store.db
    .selectFrom('vpn_gateways')
    .select('vpc_id')
    .where('id', '=', conn.vpn_gateway_id)
    .executeTakeFirstOrThrow();
  return gw.vpc_id;
}

/**
 * Applies the VPC's VPNs (restarting `conn` when `reset`), then waits for an active connection to
 * come up; answers the connection as it now is. A router that is not running leaves it
 * Disconnected: the tunnel comes up when the router boots.
 */
async function bringUp(ctx: CallContext, conn: VpnConnectionRow, reset: boolean): Promise<object> {
  const db = ctx.app.store.db;
  const vpcId = await vpcOfConnection(ctx, conn);
  const { applied, connections } = await applyVpn(ctx.app, { vpcId }, reset ? [conn.uuid] : []);
  if (!applied)
    await db
      .updateTable('vpn_connections')
      .set({ state: 'Disconnected' })
      .where('id', '=', conn.id)
      .execute();
  else if (conn.passive !== 1) await waitConnected(ctx.app, vpcId, conn.uuid, connections);
  const row = await db
    .selectFrom('vpn_connections')
    .selectAll()
    .where('id', '=', conn.id)
    .executeTakeFirstOrThrow();
  return (await presentConnections(ctx, [row]))[0]!;
}

export const createVpnConnection = defineCommand({
  name: 'createVpnConnection',
  description:
    "Connects a VPC's VPN gateway to a customer gateway: the VPC's router runs the IPsec tunnel between the VPC's CIDR and the customer's networks. An active connection is waited for (site2site.vpn.connect.wait) and answered with its real state. Asynchronous.",
  params: {
    s2svpngatewayid: p.uuid({ required: true, description: "The VPC's VPN gateway." }),
    s2scustomergatewayid: p.uuid({ required: true, description: 'The customer gateway at the far end.' }),
    passive: p.boolean({
      description: 'true: the router only answers the peer and never initiates the tunnel. Default false.',
    }),
    fordisplay: p.boolean({
      adminOnly: true,
      description: 'Whether end users see the connection; defaults to true.',
    }),
  },
  event: { type: 'VPN.S2S.CONNECTION.CREATE', description: () => 'creating site-to-site VPN connection' },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    const db = app.store.db;
    const customer = await findOwned(
      ctx,
      'vpn_customer_gateways',
      params.s2scustomergatewayid,
      OWNED_CUSTOMER_GATEWAY,
    );
    const gateway = await findOwned(ctx, 'vpn_gateways', params.s2svpngatewayid, OWNED_VPN_GATEWAY);
    if (customer.account_id !== gateway.account_id || customer.domain_id !== gateway.domain_id)
      throw invalidParameter(
        "VPN connection can only be esitablished between same account's VPN gateway and customer gateway!",
      );
    const vpc = await db
      .selectFrom('vpcs')
      .select('cidr')
      .where('id', '=', gateway.vpc_id)
      .executeTakeFirstOrThrow();
    const cidrs = customer.cidr_list.split(',');
    for (const cidr of cidrs)
      if (cidrsOverlap(vpc.cidr, cidr))
        throw invalidParameter(
          `The subnets of customer gateway ${customer.uuid}'s subnet ${cidr} is overlapped with VPC cidr ${vpc.cidr}!`,
        );
    const uuid = app.ids.uuid();
    await db.transaction().execute(async (tx) => {
      // The gateway's row lock: connections made at once are counted and compared one by one.
      await tx
        .updateTable('vpn_gateways')
        .set((eb) => ({ uuid: eb.ref('uuid') }))
        .where('id', '=', gateway.id)
        .execute();
      const existing = await tx
        .selectFrom('vpn_connections')
        .innerJoin('vpn_customer_gateways', 'vpn_customer_gateways.id', 'vpn_connections.customer_gateway_id')
        .select([
          'vpn_connections.customer_gateway_id',
          'vpn_customer_gateways.name',
          'vpn_customer_gateways.cidr_list',
        ])
        .where('vpn_connections.vpn_gateway_id', '=', gateway.id)
        .execute();
      if (existing.some((e) => e.customer_gateway_id === customer.id))
        throw invalidParameter(
          `The vpn connection with customer gateway id ${customer.uuid} and vpn gateway id ${gateway.uuid} already existed!`,
        );
      const limit = app.settings.get(CONNECTION_LIMIT);
      if (existing.length >= limit)
        throw invalidParameter(
          `There are too many VPN connections with current VPN gateway! The limit is ${limit}`,
        );
      for (const e of existing)
        for (const old of e.cidr_list.split(','))
          for (const cidr of cidrs)
            if (cidrsOverlap(cidr, old))
              throw invalidParameter(
                `The new connection's remote subnet ${cidr} is overlapped with existed VPN connection to customer gateway ${e.name}'s subnet ${old}`,
              );
      await tx
        .insertInto('vpn_connections')
        .values({
          uuid,
          account_id: gateway.account_id,
          domain_id: gateway.domain_id,
          vpn_gateway_id: gateway.id,
          customer_gateway_id: customer.id,
          passive: params.passive ? 1 : 0,
          state: 'Pending',
          for_display: params.fordisplay === false && ctx.caller.roleKind === 'admin' ? 0 : 1,
          created: app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.CONNECTION.CREATE',
        description: `created site-to-site VPN connection to ${customer.name} (${customer.gateway})`,
        resourceType: 'Site2SiteVpnConnection',
        resourceId: uuid,
      });
    });
    return { type: 'Site2SiteVpnConnection', id: uuid };
  },
  async handler(ctx, _params, created) {
    const db = ctx.app.store.db;
    const conn = await db
      .selectFrom('vpn_connections')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    try {
      return await bringUp(ctx, conn, false);
    } catch (err) {
      // The router refused it: the connection does not exist, and the router is told so.
      const vpcId = await vpcOfConnection(ctx, conn);
      await db.deleteFrom('vpn_connections').where('id', '=', conn.id).execute();
      await applyVpn(ctx.app, { vpcId }).catch(() => undefined);
      throw err;
    }
  },
});

const connectionTarget = async (ctx: CallContext, params: { id: string }) => ({
  type: 'Site2SiteVpnConnection',
  id: (await findOwned(ctx, 'vpn_connections', params.id, OWNED_VPN_CONNECTION)).uuid,
});

export const resetVpnConnection = defineCommand({
  name: 'resetVpnConnection',
  description:
    "Tears the connection's tunnel down and starts it again; an active connection is waited for and answered with its real state. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the connection to reset.' }),
    account: p.string({ description: 'Ignored: the connection keeps its owner.' }),
    domainid: p.uuid({ description: 'Ignored: the connection keeps its owner.' }),
  },
  event: {
    type: 'VPN.S2S.CONNECTION.RESET',
    description: (params) => `resetting site-to-site VPN connection ${params.id}`,
  },
  target: connectionTarget,
  async handler(ctx, params) {
    const conn = await findOwned(ctx, 'vpn_connections', params.id, OWNED_VPN_CONNECTION);
    await logEvent(ctx, ctx.app.store.db, {
      type: 'VPN.S2S.CONNECTION.RESET',
      description: `reset site-to-site VPN connection ${conn.uuid}`,
      resourceType: 'Site2SiteVpnConnection',
      resourceId: conn.uuid,
    });
    return bringUp(ctx, conn, true);
  },
});

export const deleteVpnConnection = defineCommand({
  name: 'deleteVpnConnection',
  description: "Deletes a site-to-site connection: the VPC's router closes its tunnel. Asynchronous.",
  params: { id: p.uuid({ required: true, description: 'ID of the connection to delete.' }) },
  event: {
    type: 'VPN.S2S.CONNECTION.DELETE',
    description: (params) => `deleting site-to-site VPN connection ${params.id}`,
  },
  target: connectionTarget,
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const conn = await findOwned(ctx, 'vpn_connections', params.id, OWNED_VPN_CONNECTION);
    const vpcId = await vpcOfConnection(ctx, conn);
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('vpn_connections').where('id', '=', conn.id).execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.CONNECTION.DELETE',
        description: `deleted site-to-site VPN connection ${conn.uuid}`,
        resourceType: 'Site2SiteVpnConnection',
        resourceId: conn.uuid,
      });
    });
    try {
      await applyVpn(ctx.app, { vpcId });
    } catch (err) {
      // The router still runs the tunnel: the record comes back, so what is listed is what runs.
      await db.insertInto('vpn_connections').values(conn).execute();
      throw err;
    }
    return success();
  },
});

export const updateVpnConnection = defineCommand({
  name: 'updateVpnConnection',
  description: "Changes a site-to-site connection's id (customid) or whether end users see it. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the connection to change.' }),
    customid: p.string({ adminOnly: true, description: 'A new id (uuid) for the connection.' }),
    fordisplay: p.boolean({ adminOnly: true, description: 'Whether end users see the connection.' }),
  },
  event: {
    type: 'VPN.S2S.CONNECTION.UPDATE',
    description: (params) => `updating site-to-site VPN connection ${params.id}`,
  },
  target: connectionTarget,
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const conn = await findOwned(ctx, 'vpn_connections', params.id, OWNED_VPN_CONNECTION);
    const admin = ctx.caller.roleKind === 'admin';
    const uuid = admin && params.customid !== undefined ? params.customid.trim() : conn.uuid;
    if (uuid === '') throw invalidParameter('customid must not be blank');
    const renamed = uuid !== conn.uuid;
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('vpn_connections')
        .set({
          uuid,
          ...(admin && params.fordisplay !== undefined ? { for_display: params.fordisplay ? 1 : 0 } : {}),
        })
        .where('id', '=', conn.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.CONNECTION.UPDATE',
        description: `updated site-to-site VPN connection ${uuid}`,
        resourceType: 'Site2SiteVpnConnection',
        resourceId: uuid,
      });
    });
    // The router names the tunnel after the connection's id: a new id is a new name there.
    if (renamed)
      await applyVpn(ctx.app, { vpcId: await vpcOfConnection(ctx, conn) }).catch((err: Error) =>
        ctx.app.log.warn({ connection: uuid, err: err.message }, 'renamed VPN connection not re-applied'),
      );
    const row = await db
      .selectFrom('vpn_connections')
      .selectAll()
      .where('id', '=', conn.id)
      .executeTakeFirstOrThrow();
    return (await presentConnections(ctx, [row]))[0]!;
  },
});

export const listVpnConnections = defineCommand({
  name: 'listVpnConnections',
  description: "Lists the site-to-site VPN connections the caller may see, with their tunnels' states.",
  params: {
    id: p.uuid({ description: 'Only the connection with this ID.' }),
    vpcid: p.uuid({ description: "Only the connections of this VPC's gateway." }),
    fordisplay: p.boolean({
      description: 'Only connections shown to end users (true) or hidden from them (false).',
    }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db.selectFrom('vpn_connections');
    if (params.id) q = q.where('vpn_connections.uuid', '=', params.id);
    if (params.vpcid) {
      const vpc = await findOwned(ctx, 'vpcs', params.vpcid, OWNED_VPC);
      const gw = await db
        .selectFrom('vpn_gateways')
        .select('id')
        .where('vpc_id', '=', vpc.id)
        .executeTakeFirst();
      q = q.where('vpn_connections.vpn_gateway_id', '=', gw?.id ?? -1);
    }
    if (params.fordisplay !== undefined)
      q = q.where('vpn_connections.for_display', '=', params.fordisplay ? 1 : 0);
    return listOwned(ctx, params, q, {
      owner: { account: 'vpn_connections.account_id', domain: 'vpn_connections.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('vpn_connections').orderBy('vpn_connections.id'),
          page,
        ).execute() as Promise<VpnConnectionRow[]>,
      present: (rows) => presentConnections(ctx, rows),
    });
  },
});

export const connectionCommands = [
  createVpnConnection,
  resetVpnConnection,
  deleteVpnConnection,
  updateVpnConnection,
  listVpnConnections,
];
