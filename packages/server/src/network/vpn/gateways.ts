/**
 * Site-to-site VPN gateways (createVpnGateway, deleteVpnGateway, listVpnGateways): a VPC's
 * source-NAT address as its IPsec endpoint, one per VPC. The router opens IKE and NAT traversal
 * on it; its connections (connections.ts) join it to customer gateways.
 */
import type { CallContext } from '../../context.ts';
import { internalError, invalidParameter } from '../../errors.ts';
import { logEvent } from '../../events/events.ts';
import { findOwned, listOwned, ownerFieldsOf } from '../../iam/owned.ts';
import { defineCommand, type JobTarget, success } from '../../registry/command.ts';
import { paginate } from '../../registry/paging.ts';
import { listParams, p, scopeParams } from '../../registry/params.ts';
import { OWNED_VPC } from '../vpcs.ts';
import { OWNED_VPN_GATEWAY } from './common.ts';
import type { VpnGatewayRow } from './tables.ts';
import { applyVpn } from './vpn-apply.ts';

export async function presentGateways(ctx: CallContext, rows: VpnGatewayRow[]): Promise<object[]> {
  if (!rows.length) return [];
  const db = ctx.app.store.db;
  const [owner, ips, vpcs] = await Promise.all([
    ownerFieldsOf(ctx.app, rows),
    db
      .selectFrom('public_ips')
      .select(['id', 'ip4'])
      .where(
        'id',
        'in',
        rows.map((r) => r.public_ip_id),
      )
      .execute(),
    db
      .selectFrom('vpcs')
      .select(['id', 'uuid', 'name'])
      .where(
        'id',
        'in',
        rows.map((r) => r.vpc_id),
      )
      .execute(),
  ]);
  return rows.map((g) => {
    const vpc = vpcs.find((v) => v.id === g.vpc_id);
    return {
      id: g.uuid,
      publicip: ips.find((i) => i.id === g.public_ip_id)?.ip4,
      vpcid: vpc?.uuid,
      vpcname: vpc?.name,
      ...owner(g),
      fordisplay: g.for_display === 1,
    };
  });
}

export const createVpnGateway = defineCommand({
  name: 'createVpnGateway',
  description:
    "Creates the site-to-site VPN gateway of a VPC on the VPC's source-NAT address; the VPC's router then accepts IKE there. Asynchronous.",
  params: {
    vpcid: p.uuid({
      required: true,
      description: 'The VPC the gateway is created for (one gateway per VPC).',
    }),
    ipaddressid: p.uuid({
      description: "The VPC's source-NAT address; any other address of the VPC is refused. Defaults to it.",
    }),
    fordisplay: p.boolean({
      adminOnly: true,
      description: 'Whether end users see the gateway; defaults to true.',
    }),
  },
  event: {
    type: 'VPN.S2S.VPN.GATEWAY.CREATE',
    description: (params) => `creating VPN gateway of VPC ${params.vpcid}`,
  },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    const db = app.store.db;
    const vpc = await findOwned(ctx, 'vpcs', params.vpcid, OWNED_VPC);
    if (await db.selectFrom('vpn_gateways').select('id').where('vpc_id', '=', vpc.id).executeTakeFirst())
      throw invalidParameter(`The VPN gateway of VPC ${vpc.uuid} already existed!`);
    const ips = await db
      .selectFrom('public_ips')
      .selectAll()
      .where('vpc_id', '=', vpc.id)
      .where('source_nat', '=', 1)
      .where('state', 'in', ['Allocating', 'Allocated'])
      .execute();
    if (ips.length !== 1) throw internalError(`Cannot found source nat ip of vpc ${vpc.uuid}`);
    const ip = ips[0]!;
    if (params.ipaddressid && params.ipaddressid !== ip.uuid)
      throw invalidParameter(
        `The VPN gateway of VPC ${vpc.uuid} can only be on its source NAT IP address ${ip.ip4}`,
      );
    const uuid = app.ids.uuid();
    await db.transaction().execute(async (tx) => {
      await tx
        .insertInto('vpn_gateways')
        .values({
          uuid,
          account_id: vpc.account_id,
          domain_id: vpc.domain_id,
          vpc_id: vpc.id,
          public_ip_id: ip.id,
          for_display: params.fordisplay === false && ctx.caller.roleKind === 'admin' ? 0 : 1,
          created: app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.VPN.GATEWAY.CREATE',
        description: `created VPN gateway of VPC ${vpc.name} on ${ip.ip4}`,
        resourceType: 'Site2SiteVpnGateway',
        resourceId: uuid,
      });
    });
    return { type: 'Site2SiteVpnGateway', id: uuid };
  },
  async handler(ctx, _params, created) {
    const db = ctx.app.store.db;
    const gw = await db
      .selectFrom('vpn_gateways')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    try {
      await applyVpn(ctx.app, { vpcId: gw.vpc_id });
    } catch (err) {
      await db.deleteFrom('vpn_gateways').where('id', '=', gw.id).execute();
      await applyVpn(ctx.app, { vpcId: gw.vpc_id }).catch(() => undefined);
      throw err;
    }
    return (await presentGateways(ctx, [gw]))[0]!;
  },
});

export const deleteVpnGateway = defineCommand({
  name: 'deleteVpnGateway',
  description:
    'Deletes a VPN gateway that has no connections left; the router stops accepting IKE on it. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the VPN gateway to delete.' }) },
  event: { type: 'VPN.S2S.VPN.GATEWAY.DELETE', description: (params) => `deleting VPN gateway ${params.id}` },
  async target(ctx, params) {
    return {
      type: 'Site2SiteVpnGateway',
      id: (await findOwned(ctx, 'vpn_gateways', params.id, OWNED_VPN_GATEWAY)).uuid,
    };
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const gw = await findOwned(ctx, 'vpn_gateways', params.id, OWNED_VPN_GATEWAY);
    await db.transaction().execute(async (tx) => {
      // The gateway's row lock: a connection created meanwhile is seen (or waits for the delete).
      await tx
        .updateTable('vpn_gateways')
        .set((eb) => ({ uuid: eb.ref('uuid') }))
        .where('id', '=', gw.id)
        .execute();
      const conn = await tx
        .selectFrom('vpn_connections')
        .select('id')
        .where('vpn_gateway_id', '=', gw.id)
        .executeTakeFirst();
      if (conn)
        throw invalidParameter(
          `Unable to delete VPN gateway ${gw.uuid} because there is still related VPN connections!`,
        );
      await tx.deleteFrom('vpn_gateways').where('id', '=', gw.id).execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.VPN.GATEWAY.DELETE',
        description: `deleted VPN gateway ${gw.uuid}`,
        resourceType: 'Site2SiteVpnGateway',
        resourceId: gw.uuid,
      });
    });
    try {
      await applyVpn(ctx.app, { vpcId: gw.vpc_id });
    } catch (err) {
      await db.insertInto('vpn_gateways').values(gw).execute();
      throw err;
    }
    return success();
  },
});

export const updateVpnGateway = defineCommand({
  name: 'updateVpnGateway',
  description: "Changes a VPN gateway's id (customid) or whether end users see it. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the VPN gateway to change.' }),
    customid: p.string({ adminOnly: true, description: 'A new id (uuid) for the gateway.' }),
    fordisplay: p.boolean({ adminOnly: true, description: 'Whether end users see the gateway.' }),
  },
  event: { type: 'VPN.S2S.VPN.GATEWAY.UPDATE', description: (params) => `updating VPN gateway ${params.id}` },
  async target(ctx, params) {
    return {
      type: 'Site2SiteVpnGateway',
      id: (await findOwned(ctx, 'vpn_gateways', params.id, OWNED_VPN_GATEWAY)).uuid,
    };
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const gw = await findOwned(ctx, 'vpn_gateways', params.id, OWNED_VPN_GATEWAY);
    const admin = ctx.caller.roleKind === 'admin';
    const uuid = admin && params.customid !== undefined ? params.customid.trim() : gw.uuid;
    if (uuid === '') throw invalidParameter('customid must not be blank');
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('vpn_gateways')
        .set({
          uuid,
          ...(admin && params.fordisplay !== undefined ? { for_display: params.fordisplay ? 1 : 0 } : {}),
        })
        .where('id', '=', gw.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.VPN.GATEWAY.UPDATE',
        description: `updated VPN gateway ${uuid}`,
        resourceType: 'Site2SiteVpnGateway',
        resourceId: uuid,
      });
    });
    const row = await db
      .selectFrom('vpn_gateways')
      .selectAll()
      .where('id', '=', gw.id)
      .executeTakeFirstOrThrow();
    return (await presentGateways(ctx, [row]))[0]!;
  },
});

export const listVpnGateways = defineCommand({
  name: 'listVpnGateways',
  description: 'Lists the site-to-site VPN gateways the caller may see.',
  params: {
    id: p.uuid({ description: 'Only the gateway with this ID.' }),
    vpcid: p.uuid({ description: 'Only the gateway of this VPC.' }),
    fordisplay: p.boolean({
      description: 'Only gateways shown to end users (true) or hidden from them (false).',
    }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    let q = ctx.app.store.db.selectFrom('vpn_gateways');
    if (params.id) q = q.where('vpn_gateways.uuid', '=', params.id);
    if (params.vpcid)
      q = q.where('vpn_gateways.vpc_id', '=', (await findOwned(ctx, 'vpcs', params.vpcid, OWNED_VPC)).id);
    if (params.fordisplay !== undefined)
      q = q.where('vpn_gateways.for_display', '=', params.fordisplay ? 1 : 0);
    return listOwned(ctx, params, q, {
      owner: { account: 'vpn_gateways.account_id', domain: 'vpn_gateways.domain_id' },
      rows: (scoped, page) =>
        paginate(scoped.selectAll('vpn_gateways').orderBy('vpn_gateways.id'), page).execute() as Promise<
          VpnGatewayRow[]
        >,
      present: (rows) => presentGateways(ctx, rows),
    });
  },
});

export const vpnGatewayCommands = [createVpnGateway, deleteVpnGateway, updateVpnGateway, listVpnGateways];
