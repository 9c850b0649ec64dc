/**
 * Remote-access VPNs (createRemoteAccessVpn, deleteRemoteAccessVpn, listRemoteAccessVpns,
 * updateRemoteAccessVpn): a VPN on the source-NAT address of an isolated network or a VPC that
 * the owner's VPN users (vpn-users.ts) connect to. The router runs it as IKEv2 with a generated
 * pre-shared key and each user's username and password (EAP), and gives clients addresses from
 * the VPN's range. A change that the router refuses is undone.
 */
import { randomBytes } from 'node:crypto';
import type { CallContext } from '../../context.ts';
import { invalidParameter } from '../../errors.ts';
import { logEvent } from '../../events/events.ts';
import { findOwned, listOwned, ownerFieldsOf } from '../../iam/owned.ts';
import { intToIpv4, ipv4ToInt, isIpv4 } from '../../infra/common.ts';
import { defineCommand, type JobTarget, success } from '../../registry/command.ts';
import { paginate } from '../../registry/paging.ts';
import { listParams, p, scopeParams } from '../../registry/params.ts';
import { defineSetting } from '../../settings/settings.ts';
import { OWNED_IP } from '../ip-rules.ts';
import { hasServices } from '../network-offering-rules.ts';
import type { IpScope } from '../router-rules.ts';
import { OWNED_REMOTE_ACCESS_VPN } from './common.ts';
import type { RemoteAccessVpnRow } from './tables.ts';
import { applyVpn } from './vpn-apply.ts';

export const VPN_CLIENT_IPRANGE = defineSetting({
  name: 'remote.access.vpn.client.iprange',
  category: 'Network',
  type: 'String',
  defaultValue: '10.1.2.1-10.1.2.8',
  description:
    'Default address range of remote-access VPN clients (first-last); the first address is kept for the router.',
});

export const VPN_PSK_LENGTH = defineSetting({
  name: 'remote.access.vpn.psk.length',
  category: 'Network',
  type: 'Integer',
  defaultValue: 24,
  min: 8,
  max: 256,
  description: 'Length of the pre-shared key generated for each remote-access VPN.',
});

/** The network or VPC whose router carries the VPN. */
export const scopeOfVpn = (vpn: Pick<RemoteAccessVpnRow, 'network_id' | 'vpc_id'>): IpScope =>
  vpn.vpc_id !== null ? { vpcId: vpn.vpc_id } : { networkId: vpn.network_id! };

/** A pre-shared key of `length` letters and digits (upstream's generated keys are alphanumeric). */
function presharedKey(length: number): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join('');
}

/** Checks a first-last range as upstream does; answers its two ends. */
export function parseIpRange(range: string): [number, number] {
  const ends = range.split('-');
  if (ends.length !== 2) throw invalidParameter(`IP range [${range}] is an invalid IP range.`);
  const [first, last] = ends as [string, string];
  if (!isIpv4(first) || !isIpv4(last))
    throw invalidParameter(`One or both IPs sets in the range [${range}] are invalid IPs.`);
  if (ipv4ToInt(first) > ipv4ToInt(last)) throw invalidParameter(`Range of IPs [${range}] is invalid.`);
  return [ipv4ToInt(first), ipv4ToInt(last)];
}

function cidrRange(cidr: string): [number, number] {
  const [ip, bits] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(bits));
  const base = Math.floor(ipv4ToInt(ip) / size) * size;
  return [base, base + size - 1];
}

async function presentVpns(ctx: CallContext, rows: RemoteAccessVpnRow[]): Promise<object[]> {
  if (!rows.length) return [];
  const owner = await ownerFieldsOf(ctx.app, rows);
  const ips = await ctx.app.store.db
    .selectFrom('public_ips')
    .select(['id', 'uuid', 'ip4'])
    .where(
      'id',
      'in',
      rows.map((r) => r.public_ip_id),
    )
    .execute();
  return rows.map((r) => {
    const ip = ips.find((i) => i.id === r.public_ip_id);
    return {
      id: r.uuid,
      publicipid: ip?.uuid,
      publicip: ip?.ip4,
      iprange: r.ip_range,
      presharedkey: ctx.app.secrets.decrypt(r.psk),
      ...owner(r),
      state: r.state,
      fordisplay: r.for_display === 1,
    };
  });
}

export const createRemoteAccessVpn = defineCommand({
  name: 'createRemoteAccessVpn',
  description:
    "Creates a remote-access VPN on the source-NAT address of an isolated network or a VPC: IKEv2 with a generated pre-shared key, the owner's VPN users authenticating with their username and password, clients getting addresses from iprange. Asynchronous.",
  params: {
    publicipid: p.uuid({
      required: true,
      description: 'The source-NAT public address of the network or VPC the VPN is created on.',
    }),
    iprange: p.string({
      description:
        'Client address range, first-last, outside the guest CIDR; its first address is kept for the router. Defaults to remote.access.vpn.client.iprange.',
    }),
    openfirewall: p.boolean({
      description:
        "Isolated networks: true (default) opens IKE and NAT traversal (UDP 500 and 4500) on the address; false leaves the firewall to you. A VPC's VPN is always reachable.",
    }),
    fordisplay: p.boolean({
      adminOnly: true,
      description: 'Whether end users see the VPN; defaults to true.',
    }),
    account: p.string({ description: "Ignored: the VPN belongs to the address's owner." }),
    domainid: p.uuid({ description: "Ignored: the VPN belongs to the address's owner." }),
  },
  event: {
    type: 'VPN.REMOTE.ACCESS.CREATE',
    description: (params) => `creating remote access VPN on ${params.publicipid}`,
  },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    const db = app.store.db;
    const ip = await findOwned(ctx, 'public_ips', params.publicipid, OWNED_IP);
    if (ip.network_id === null && ip.vpc_id === null)
      throw invalidParameter(
        `Unable to create remote access vpn for the ipAddress: ${ip.ip4} as ip is not associated with any network or VPC`,
      );
    if (
      await db
        .selectFrom('remote_access_vpns')
        .select('id')
        .where('public_ip_id', '=', ip.id)
        .executeTakeFirst()
    )
      throw invalidParameter(`A remote Access VPN already exists for the public IP address [${ip.ip4}].`);
    if (ip.source_nat !== 1)
      throw invalidParameter(
        `Unable to create remote access vpn on IP address ${ip.ip4}: the VPN runs on the source NAT IP address of the network or VPC`,
      );
    let guestCidr: string;
    if (ip.vpc_id !== null) {
      const vpc = await db
        .selectFrom('vpcs')
        .selectAll()
        .where('id', '=', ip.vpc_id)
        .executeTakeFirstOrThrow();
      const offering = await db
        .selectFrom('vpc_offerings')
        .select('services')
        .where('id', '=', vpc.vpc_offering_id)
        .executeTakeFirstOrThrow();
      if (!hasServices(offering, ['Vpn']))
        throw invalidParameter(`Vpn service is not supported in vpc id=${vpc.uuid}`);
      if (
        await db.selectFrom('remote_access_vpns').select('id').where('vpc_id', '=', vpc.id).executeTakeFirst()
      )
        throw invalidParameter(`A remote access VPN already exists for the VPC [${vpc.name}].`);
      guestCidr = vpc.cidr;
    } else {
      const network = await db
        .selectFrom('networks')
        .innerJoin('network_offerings', 'network_offerings.id', 'networks.network_offering_id')
        .select(['networks.id', 'networks.uuid', 'networks.cidr', 'network_offerings.services'])
        .where('networks.id', '=', ip.network_id!)
        .executeTakeFirstOrThrow();
      if (!hasServices(network, ['Vpn']))
        throw invalidParameter(`Vpn service is not supported in network id=${network.uuid}`);
      if (
        await db
          .selectFrom('remote_access_vpns')
          .select('id')
          .where('network_id', '=', network.id)
          .executeTakeFirst()
      )
        throw invalidParameter(`A remote access VPN already exists for the account [${ip.account_id}].`);
      guestCidr = network.cidr!;
    }
    const range = params.iprange ?? app.settings.get(VPN_CLIENT_IPRANGE);
    const [first, last] = parseIpRange(range);
    const [guestFirst, guestLast] = cidrRange(guestCidr);
    if (first <= guestLast && guestFirst <= last)
      throw invalidParameter(
        `Invalid ip range: ${range} overlaps with guest ip range ${intToIpv4(guestFirst)}-${intToIpv4(guestLast)}`,
      );
    if (last - first < 1)
      throw invalidParameter(`Range of IPs [${range}] is invalid: it leaves no address for clients.`);
    const uuid = app.ids.uuid();
    await db.transaction().execute(async (tx) => {
      await tx
        .insertInto('remote_access_vpns')
        .values({
          uuid,
          account_id: ip.account_id!,
          domain_id: ip.domain_id!,
          network_id: ip.vpc_id !== null ? null : ip.network_id,
          vpc_id: ip.vpc_id,
          public_ip_id: ip.id,
          local_ip: intToIpv4(first),
          ip_range: `${intToIpv4(first + 1)}-${intToIpv4(last)}`,
          psk: app.secrets.encrypt(presharedKey(app.settings.get(VPN_PSK_LENGTH))),
          state: 'Added',
          open_firewall: ip.vpc_id === null && params.openfirewall !== false ? 1 : 0,
          for_display: params.fordisplay === false && ctx.caller.roleKind === 'admin' ? 0 : 1,
          created: app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.REMOTE.ACCESS.CREATE',
        description: `created remote access VPN on ${ip.ip4}`,
        resourceType: 'RemoteAccessVpn',
        resourceId: uuid,
      });
    });
    return { type: 'RemoteAccessVpn', id: uuid };
  },
  async handler(ctx, _params, created) {
    const db = ctx.app.store.db;
    const vpn = await db
      .selectFrom('remote_access_vpns')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    try {
      await applyVpn(ctx.app, scopeOfVpn(vpn));
    } catch (err) {
      // Refused by the router: the VPN does not exist, and the router is told so.
      await db.deleteFrom('remote_access_vpns').where('id', '=', vpn.id).execute();
      await applyVpn(ctx.app, scopeOfVpn(vpn)).catch(() => undefined);
      throw err;
    }
    await db.updateTable('remote_access_vpns').set({ state: 'Running' }).where('id', '=', vpn.id).execute();
    return (await presentVpns(ctx, [{ ...vpn, state: 'Running' }]))[0]!;
  },
});

export const deleteRemoteAccessVpn = defineCommand({
  name: 'deleteRemoteAccessVpn',
  description:
    'Removes the remote-access VPN of a public address: the router stops it and its clients are disconnected. An address without one succeeds. Asynchronous.',
  params: {
    publicipid: p.uuid({
      required: true,
      description: 'The public address whose remote-access VPN is removed.',
    }),
    accountid: p.uuid({ description: "Ignored: the VPN belongs to the address's owner." }),
  },
  event: {
    type: 'VPN.REMOTE.ACCESS.DESTROY',
    description: (params) => `removing remote access VPN of ${params.publicipid}`,
  },
  async target(ctx, params) {
    const ip = await findOwned(ctx, 'public_ips', params.publicipid, OWNED_IP);
    return { type: 'IpAddress', id: ip.uuid };
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const ip = await findOwned(ctx, 'public_ips', params.publicipid, OWNED_IP);
    const vpn = await db
      .selectFrom('remote_access_vpns')
      .selectAll()
      .where('public_ip_id', '=', ip.id)
      .executeTakeFirst();
    if (!vpn) return success();
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('remote_access_vpns').where('id', '=', vpn.id).execute();
      await logEvent(ctx, tx, {
        type: 'VPN.REMOTE.ACCESS.DESTROY',
        description: `removed remote access VPN on ${ip.ip4}`,
        resourceType: 'RemoteAccessVpn',
        resourceId: vpn.uuid,
      });
    });
    try {
      await applyVpn(ctx.app, scopeOfVpn(vpn));
    } catch (err) {
      // The router still runs it: the record comes back, so what is listed is what runs.
      await db.insertInto('remote_access_vpns').values(vpn).execute();
      throw err;
    }
    return success();
  },
});

export const updateRemoteAccessVpn = defineCommand({
  name: 'updateRemoteAccessVpn',
  description: "Changes a remote-access VPN's id (customid) or whether end users see it. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the remote-access VPN to change.' }),
    customid: p.string({ adminOnly: true, description: 'A new id (uuid) for the VPN.' }),
    fordisplay: p.boolean({ adminOnly: true, description: 'Whether end users see the VPN.' }),
    accountid: p.uuid({ description: 'Ignored: the VPN keeps its owner.' }),
  },
  event: {
    type: 'VPN.REMOTE.ACCESS.UPDATE',
    description: (params) => `updating remote access VPN ${params.id}`,
  },
  async target(ctx, params) {
    return {
      type: 'RemoteAccessVpn',
      id: (await findOwned(ctx, 'remote_access_vpns', params.id, OWNED_REMOTE_ACCESS_VPN)).uuid,
    };
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const vpn = await findOwned(ctx, 'remote_access_vpns', params.id, OWNED_REMOTE_ACCESS_VPN);
    const admin = ctx.caller.roleKind === 'admin';
    const uuid = admin && params.customid ? params.customid.trim() : vpn.uuid;
    if (uuid === '') throw invalidParameter('customid must not be blank');
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('remote_access_vpns')
        .set({
          uuid,
          ...(admin && params.fordisplay !== undefined ? { for_display: params.fordisplay ? 1 : 0 } : {}),
        })
        .where('id', '=', vpn.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.REMOTE.ACCESS.UPDATE',
        description: `updated remote access VPN ${uuid}`,
        resourceType: 'RemoteAccessVpn',
        resourceId: uuid,
      });
    });
    const row = await db
      .selectFrom('remote_access_vpns')
      .selectAll()
      .where('id', '=', vpn.id)
      .executeTakeFirstOrThrow();
    return (await presentVpns(ctx, [row]))[0]!;
  },
});

export const listRemoteAccessVpns = defineCommand({
  name: 'listRemoteAccessVpns',
  description: 'Lists the running remote-access VPNs the caller may see, with their pre-shared keys.',
  params: {
    id: p.uuid({ description: 'Only the VPN with this ID.' }),
    publicipid: p.uuid({ description: 'Only the VPN on this public address.' }),
    networkid: p.uuid({ description: 'Only the VPN of this isolated network.' }),
    fordisplay: p.boolean({
      description: 'Only VPNs shown to end users (true) or hidden from them (false).',
    }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db.selectFrom('remote_access_vpns').where('remote_access_vpns.state', '=', 'Running');
    if (params.id) q = q.where('remote_access_vpns.uuid', '=', params.id);
    if (params.publicipid) {
      const ip = await findOwned(ctx, 'public_ips', params.publicipid, OWNED_IP);
      q = q.where('remote_access_vpns.public_ip_id', '=', ip.id);
    }
    if (params.networkid) {
      const network = await db
        .selectFrom('networks')
        .select('id')
        .where('uuid', '=', params.networkid)
        .executeTakeFirst();
      q = q.where('remote_access_vpns.network_id', '=', network?.id ?? -1);
    }
    if (params.fordisplay !== undefined)
      q = q.where('remote_access_vpns.for_display', '=', params.fordisplay ? 1 : 0);
    return listOwned(ctx, params, q, {
      owner: { account: 'remote_access_vpns.account_id', domain: 'remote_access_vpns.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('remote_access_vpns').orderBy('remote_access_vpns.id'),
          page,
        ).execute() as Promise<RemoteAccessVpnRow[]>,
      present: (rows) => presentVpns(ctx, rows),
    });
  },
});

export const remoteAccessVpnCommands = [
  createRemoteAccessVpn,
  deleteRemoteAccessVpn,
  updateRemoteAccessVpn,
  listRemoteAccessVpns,
];
