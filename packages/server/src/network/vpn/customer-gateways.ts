/**
 * Site-to-site VPN customer gateways (createVpnCustomerGateway, updateVpnCustomerGateway,
 * deleteVpnCustomerGateway, listVpnCustomerGateways): the far end of connections, with its
 * address, the networks behind it, the pre-shared key and upstream's IKE/ESP policy notation
 * (`aes128-sha1;modp1536`: cipher-hash and, required for IKE, a Diffie-Hellman group). Changing
 * one restarts its connections with the new parameters.
 */
import { VPN_POLICY } from '@nimbostack/protocol';
import type { CallContext } from '../../context.ts';
import type { AccountRow } from '../../db/schema.ts';
import { invalidParameter } from '../../errors.ts';
import { logEvent } from '../../events/events.ts';
import { escapeLike, likeEscaped } from '../../iam/access.ts';
import { onAccountDelete, resolveAccount } from '../../iam/accounts.ts';
import { findOwned, listOwned, ownerFieldsOf } from '../../iam/owned.ts';
import { isIpv4, likeOp } from '../../infra/common.ts';
import { projectOwner } from '../../projects/access.ts';
import { defineCommand, type JobTarget, success } from '../../registry/command.ts';
import { paginate } from '../../registry/paging.ts';
import { listParams, p, scopeParams } from '../../registry/params.ts';
import { defineSetting } from '../../settings/settings.ts';
import { parseCidr } from '../ip-rules.ts';
import { cidrsOverlap, OWNED_CUSTOMER_GATEWAY } from './common.ts';
import type { VpnCustomerGatewayRow, VpnCustomerGatewayTable } from './tables.ts';
import { applyVpn } from './vpn-apply.ts';

export const SUBNETS_LIMIT = defineSetting({
  name: 'site2site.vpn.customergateway.subnets.limit',
  category: 'Network',
  type: 'Integer',
  defaultValue: 10,
  min: 1,
  description: 'The most subnets (cidrlist entries) one VPN customer gateway may have.',
});

const DOMAIN_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Upstream's policy check: every proposal cipher-hash[;group], the group required for IKE. */
export function validPolicy(kind: 'ike' | 'esp', policy: string): boolean {
  if (!policy) return false;
  return policy.split(',').every((one) => VPN_POLICY.test(one) && (kind === 'esp' || one.includes(';')));
}

const GATEWAY_PARAMS = {
  name: p.string({ description: 'Name of the gateway, unique in the account; defaults to VPN-<gateway>.' }),
  gateway: p.string({
    required: true,
    description: "The customer gateway's public IPv4 address or DNS name.",
  }),
  cidrlist: p.string({
    required: true,
    description: 'Comma-separated CIDRs of the networks behind the customer gateway; they may not overlap.',
  }),
  ipsecpsk: p.string({ required: true, description: 'The IPsec pre-shared key both ends share.' }),
  ikepolicy: p.string({
    required: true,
    description:
      'IKE proposals, comma-separated, each cipher-hash;dhgroup, e.g. aes128-sha1;modp1536 (ciphers 3des, aes128, aes192, aes256; hashes md5, sha1, sha256, sha384, sha512; groups modp1024 to modp8192).',
  }),
  esppolicy: p.string({
    required: true,
    description:
      'ESP proposals, comma-separated, each cipher-hash with an optional ;dhgroup for perfect forward secrecy.',
  }),
  ikelifetime: p.long({
    description: 'Lifetime of the IKE security association in seconds, at most 86400 (the default).',
  }),
  esplifetime: p.long({
    description: 'Lifetime of the IPsec security association in seconds, at most 86400; default 3600.',
  }),
  dpd: p.boolean({
    description: 'Dead peer detection: the tunnel is restarted when the peer stops answering. Default false.',
  }),
  forceencap: p.boolean({ description: 'Always encapsulate ESP in UDP, NAT or not. Default false.' }),
  splitconnections: p.boolean({
    description: 'Accepted for compatibility: one IPsec security association carries all the networks here.',
  }),
  ikeversion: p.string({ description: 'IKE version: ike (either, the default), ikev1 or ikev2.' }),
};

type GatewayParams = {
  name?: string;
  gateway: string;
  cidrlist: string;
  ipsecpsk: string;
  ikepolicy: string;
  esppolicy: string;
  ikelifetime?: number;
  esplifetime?: number;
  dpd?: boolean;
  forceencap?: boolean;
  splitconnections?: boolean;
  ikeversion?: string;
};

/** The gateway's columns from the parameters, checked as upstream checks them. */
function gatewayValues(
  ctx: CallContext,
  params: GatewayParams,
): Omit<VpnCustomerGatewayTable, 'id' | 'uuid' | 'account_id' | 'domain_id' | 'created'> {
  const gateway = params.gateway.trim();
  if (!isIpv4(gateway) && !DOMAIN_NAME.test(gateway))
    throw invalidParameter(`The customer gateway ip/Domain ${gateway} is invalid!`);
  const cidrs = params.cidrlist.split(',').map((c) => c.trim());
  try {
    for (const c of cidrs) parseCidr(c);
  } catch {
    throw invalidParameter(
      `The customer gateway peer cidr list ${params.cidrlist} contains an invalid cidr!`,
    );
  }
  if (!validPolicy('ike', params.ikepolicy))
    throw invalidParameter(
      `The customer gateway IKE policy ${params.ikepolicy} is invalid!  Verify the required Diffie Hellman (DH) group is specified.`,
    );
  if (!validPolicy('esp', params.esppolicy))
    throw invalidParameter(`The customer gateway ESP policy ${params.esppolicy} is invalid!`);
  const ikeLifetime = params.ikelifetime ?? 86400;
  if (ikeLifetime > 86400 || ikeLifetime < 0)
    throw invalidParameter(`The IKE lifetime ${ikeLifetime} of vpn connection is invalid!`);
  const espLifetime = params.esplifetime ?? 3600;
  if (espLifetime > 86400 || espLifetime < 0)
    throw invalidParameter(`The ESP lifetime ${espLifetime} of vpn connection is invalid!`);
  const ikeVersion = (params.ikeversion ?? 'ike').toLowerCase();
  if (!['ike', 'ikev1', 'ikev2'].includes(ikeVersion))
    throw invalidParameter(`The IKE version ${params.ikeversion} is invalid: it is ike, ikev1 or ikev2`);
  if (params.ipsecpsk === '') throw invalidParameter('The IPsec pre-shared key must not be empty');
  const limit = ctx.app.settings.get(SUBNETS_LIMIT);
  if (cidrs.length > limit)
    throw invalidParameter(`Too many subnets of customer gateway! The limit is ${limit}`);
  for (let i = 0; i < cidrs.length; i++)
    for (let j = i + 1; j < cidrs.length; j++)
      if (cidrsOverlap(cidrs[i]!, cidrs[j]!))
        throw invalidParameter(
          `The subnet of customer gateway ${cidrs[i]} is overlapped with another subnet ${cidrs[j]} of customer gateway!`,
        );
  return {
    name: params.name?.trim() || `VPN-${gateway}`,
    gateway,
    cidr_list: cidrs.join(','),
    ipsec_psk: ctx.app.secrets.encrypt(params.ipsecpsk),
    ike_policy: params.ikepolicy,
    esp_policy: params.esppolicy,
    ike_lifetime: ikeLifetime,
    esp_lifetime: espLifetime,
    dpd: params.dpd ? 1 : 0,
    force_encap: params.forceencap ? 1 : 0,
    split_connections: params.splitconnections ? 1 : 0,
    ike_version: ikeVersion,
  };
}

export async function presentCustomerGateways(
  ctx: CallContext,
  rows: VpnCustomerGatewayRow[],
): Promise<object[]> {
  const owner = await ownerFieldsOf(ctx.app, rows);
  return rows.map((g) => ({
    id: g.uuid,
    name: g.name,
    gateway: g.gateway,
    ipaddress: g.gateway,
    cidrlist: g.cidr_list,
    ipsecpsk: ctx.app.secrets.decrypt(g.ipsec_psk),
    ikepolicy: g.ike_policy,
    esppolicy: g.esp_policy,
    ikelifetime: g.ike_lifetime,
    esplifetime: g.esp_lifetime,
    dpd: g.dpd === 1,
    forceencap: g.force_encap === 1,
    splitconnections: g.split_connections === 1,
    ikeversion: g.ike_version,
    ...owner(g),
    hasannotations: false,
  }));
}

async function ownerOf(
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

export const createVpnCustomerGateway = defineCommand({
  name: 'createVpnCustomerGateway',
  description:
    'Creates a customer gateway: the far end of site-to-site VPN connections, with its address, networks, pre-shared key and IKE/ESP policies. Asynchronous.',
  params: {
    ...GATEWAY_PARAMS,
    account: p.string({
      description: 'Account that owns the gateway (with domainid); defaults to the caller.',
    }),
    domainid: p.uuid({ description: 'Domain of account.' }),
    projectid: p.uuid({
      description: 'Project to own the gateway (you must be a member); not with account.',
    }),
  },
  event: {
    type: 'VPN.S2S.CUSTOMER.GATEWAY.CREATE',
    description: (params) => `creating VPN customer gateway ${params.gateway}`,
  },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    const owner = await ownerOf(ctx, params);
    const values = gatewayValues(ctx, params);
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      const same = await tx
        .selectFrom('vpn_customer_gateways')
        .select('id')
        .where('account_id', '=', owner.id)
        .where('name', '=', values.name)
        .executeTakeFirst();
      if (same) throw invalidParameter(`The customer gateway with name ${values.name} already existed!`);
      await tx
        .insertInto('vpn_customer_gateways')
        .values({
          uuid,
          account_id: owner.id,
          domain_id: owner.domain_id,
          ...values,
          created: app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.CUSTOMER.GATEWAY.CREATE',
        description: `created VPN customer gateway ${values.name} (${values.gateway})`,
        resourceType: 'Site2SiteCustomerGateway',
        resourceId: uuid,
      });
    });
    return { type: 'Site2SiteCustomerGateway', id: uuid };
  },
  async handler(ctx, _params, created) {
    const row = await ctx.app.store.db
      .selectFrom('vpn_customer_gateways')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    return (await presentCustomerGateways(ctx, [row]))[0]!;
  },
});

const gatewayTarget = async (ctx: CallContext, params: { id: string }) => ({
  type: 'Site2SiteCustomerGateway',
  id: (await findOwned(ctx, 'vpn_customer_gateways', params.id, OWNED_CUSTOMER_GATEWAY)).uuid,
});

/** The VPCs whose connections use the customer gateway. */
async function vpcsUsing(ctx: CallContext, gatewayId: number): Promise<{ vpcId: number; conns: string[] }[]> {
  const rows = await ctx.app.store.db
    .selectFrom('vpn_connections')
    .innerJoin('vpn_gateways', 'vpn_gateways.id', 'vpn_connections.vpn_gateway_id')
    .select(['vpn_gateways.vpc_id', 'vpn_connections.uuid'])
    .where('vpn_connections.customer_gateway_id', '=', gatewayId)
    .execute();
  const out = new Map<number, string[]>();
  for (const r of rows) out.set(r.vpc_id, [...(out.get(r.vpc_id) ?? []), r.uuid]);
  return [...out].map(([vpcId, conns]) => ({ vpcId, conns }));
}

export const updateVpnCustomerGateway = defineCommand({
  name: 'updateVpnCustomerGateway',
  description:
    "Replaces a customer gateway's parameters; its connections are restarted with them. If a router refuses, the gateway keeps its old parameters. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the customer gateway to update.' }),
    ...GATEWAY_PARAMS,
    account: p.string({ description: 'Ignored: the gateway keeps its owner.' }),
    domainid: p.uuid({ description: 'Ignored: the gateway keeps its owner.' }),
  },
  event: {
    type: 'VPN.S2S.CUSTOMER.GATEWAY.UPDATE',
    description: (params) => `updating VPN customer gateway ${params.id}`,
  },
  target: gatewayTarget,
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const gw = await findOwned(ctx, 'vpn_customer_gateways', params.id, OWNED_CUSTOMER_GATEWAY);
    const values = gatewayValues(ctx, params);
    await db.transaction().execute(async (tx) => {
      const same = await tx
        .selectFrom('vpn_customer_gateways')
        .select('id')
        .where('account_id', '=', gw.account_id)
        .where('name', '=', values.name)
        .where('id', '!=', gw.id)
        .executeTakeFirst();
      if (same) throw invalidParameter(`The customer gateway with name ${values.name} already existed!`);
      await tx.updateTable('vpn_customer_gateways').set(values).where('id', '=', gw.id).execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.CUSTOMER.GATEWAY.UPDATE',
        description: `updated VPN customer gateway ${values.name}`,
        resourceType: 'Site2SiteCustomerGateway',
        resourceId: gw.uuid,
      });
    });
    const using = await vpcsUsing(ctx, gw.id);
    try {
      for (const { vpcId, conns } of using) await applyVpn(ctx.app, { vpcId }, conns);
    } catch (err) {
      const { id: _id, uuid: _uuid, ...old } = gw;
      await db.updateTable('vpn_customer_gateways').set(old).where('id', '=', gw.id).execute();
      for (const { vpcId } of using) await applyVpn(ctx.app, { vpcId }).catch(() => undefined);
      throw err;
    }
    const row = await db
      .selectFrom('vpn_customer_gateways')
      .selectAll()
      .where('id', '=', gw.id)
      .executeTakeFirstOrThrow();
    return (await presentCustomerGateways(ctx, [row]))[0]!;
  },
});

export const deleteVpnCustomerGateway = defineCommand({
  name: 'deleteVpnCustomerGateway',
  description: 'Deletes a customer gateway that no VPN connection uses. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the customer gateway to delete.' }) },
  event: {
    type: 'VPN.S2S.CUSTOMER.GATEWAY.DELETE',
    description: (params) => `deleting VPN customer gateway ${params.id}`,
  },
  target: gatewayTarget,
  async handler(ctx, params) {
    const gw = await findOwned(ctx, 'vpn_customer_gateways', params.id, OWNED_CUSTOMER_GATEWAY);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('vpn_customer_gateways')
        .set((eb) => ({ uuid: eb.ref('uuid') }))
        .where('id', '=', gw.id)
        .execute();
      const used = await tx
        .selectFrom('vpn_connections')
        .select('id')
        .where('customer_gateway_id', '=', gw.id)
        .executeTakeFirst();
      if (used)
        throw invalidParameter(
          `Unable to delete VPN customer gateway with id ${gw.uuid} because there is still related VPN connections!`,
        );
      await tx.deleteFrom('vpn_customer_gateways').where('id', '=', gw.id).execute();
      await logEvent(ctx, tx, {
        type: 'VPN.S2S.CUSTOMER.GATEWAY.DELETE',
        description: `deleted VPN customer gateway ${gw.name}`,
        resourceType: 'Site2SiteCustomerGateway',
        resourceId: gw.uuid,
      });
    });
    return success();
  },
});

export const listVpnCustomerGateways = defineCommand({
  name: 'listVpnCustomerGateways',
  description: 'Lists the VPN customer gateways the caller may see, with their keys and policies.',
  params: {
    id: p.uuid({ description: 'Only the customer gateway with this ID.' }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    let q = ctx.app.store.db.selectFrom('vpn_customer_gateways');
    if (params.id) q = q.where('vpn_customer_gateways.uuid', '=', params.id);
    if (params.keyword)
      q = q.where(likeEscaped('vpn_customer_gateways.name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    return listOwned(ctx, params, q, {
      owner: { account: 'vpn_customer_gateways.account_id', domain: 'vpn_customer_gateways.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('vpn_customer_gateways').orderBy('vpn_customer_gateways.id'),
          page,
        ).execute() as Promise<VpnCustomerGatewayRow[]>,
      present: (rows) => presentCustomerGateways(ctx, rows),
    });
  },
});

// Stage 2: after the account's VPCs (and so its connections) are gone.
onAccountDelete(async (ctx, account) => {
  await ctx.app.store.db.deleteFrom('vpn_customer_gateways').where('account_id', '=', account.id).execute();
}, 2);

export const customerGatewayCommands = [
  createVpnCustomerGateway,
  updateVpnCustomerGateway,
  deleteVpnCustomerGateway,
  listVpnCustomerGateways,
];
