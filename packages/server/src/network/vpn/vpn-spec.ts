/**
 * What a router's VPNs are, built from the records: the remote-access VPN of its network or VPC
 * with the owner's VPN users, and (VPC routers) the site-to-site connections of the VPC's gateway.
 * It is part of the router's whole configuration (startRouter) and of applyRouterVpn; the
 * addresses a VPN listens on are opened for IKE and NAT traversal (UDP 500 and 4500) in the
 * router's firewall.
 */
import type { RouterFirewallRule, RouterVpn } from '@nimbostack/protocol';
import type { App } from '../../context.ts';
import type { IpScope } from '../router-rules.ts';

/** IKE and IKE/ESP in UDP (NAT traversal): what a VPN endpoint has to receive. */
export const VPN_PORTS = [500, 4500];

const cidrsOf = (text: string) => text.split(',').filter(Boolean);

/** The remote-access VPN of a network or VPC, with its owner's users. */
async function remoteAccessOf(app: App, scope: IpScope): Promise<RouterVpn['remoteAccess']> {
  const db = app.store.db;
  const vpn = await db
    .selectFrom('remote_access_vpns')
    .innerJoin('public_ips', 'public_ips.id', 'remote_access_vpns.public_ip_id')
    .selectAll('remote_access_vpns')
    .select('public_ips.ip4')
    .where(
      'vpcId' in scope ? 'remote_access_vpns.vpc_id' : 'remote_access_vpns.network_id',
      '=',
      'vpcId' in scope ? scope.vpcId : scope.networkId,
    )
    .orderBy('remote_access_vpns.id')
    .executeTakeFirst();
  if (!vpn) return undefined;
  const localCidrs =
    'vpcId' in scope
      ? (
          await db
            .selectFrom('networks')
            .select('cidr')
            .where('vpc_id', '=', scope.vpcId)
            .where('removed', 'is', null)
            .orderBy('id')
            .execute()
        )
          .map((t) => t.cidr)
          .filter((c): c is string => !!c)
      : [
          (
            await db
              .selectFrom('networks')
              .select('cidr')
              .where('id', '=', scope.networkId)
              .executeTakeFirstOrThrow()
          ).cidr!,
        ];
  // A VPC without tiers yet: clients would reach nothing, so the VPN waits for its first tier.
  if (!localCidrs.length) return undefined;
  const users = await db
    .selectFrom('vpn_users')
    .select(['username', 'password'])
    .where('account_id', '=', vpn.account_id)
    .orderBy('username')
    .execute();
  const [rangeStart, rangeEnd] = vpn.ip_range.split('-') as [string, string];
  return {
    publicIp: vpn.ip4,
    psk: app.secrets.decrypt(vpn.psk),
    rangeStart,
    rangeEnd,
    localCidrs,
    users: users.map((u) => ({ username: u.username, password: app.secrets.decrypt(u.password) })),
  };
}

/** The site-to-site connections of a VPC's gateway, with their customer gateways' parameters. */
async function siteToSiteOf(app: App, vpcId: number): Promise<RouterVpn['siteToSite']> {
  const db = app.store.db;
  const rows = await db
    .selectFrom('vpn_connections')
    .innerJoin('vpn_gateways', 'vpn_gateways.id', 'vpn_connections.vpn_gateway_id')
    .innerJoin('vpn_customer_gateways', 'vpn_customer_gateways.id', 'vpn_connections.customer_gateway_id')
    .innerJoin('public_ips', 'public_ips.id', 'vpn_gateways.public_ip_id')
    .select([
      'vpn_connections.uuid',
      'vpn_connections.passive',
      'public_ips.ip4',
      'vpn_customer_gateways.gateway',
      'vpn_customer_gateways.cidr_list',
      'vpn_customer_gateways.ipsec_psk',
      'vpn_customer_gateways.ike_policy',
      'vpn_customer_gateways.esp_policy',
      'vpn_customer_gateways.ike_lifetime',
      'vpn_customer_gateways.esp_lifetime',
      'vpn_customer_gateways.dpd',
      'vpn_customer_gateways.force_encap',
      'vpn_customer_gateways.ike_version',
    ])
    .where('vpn_gateways.vpc_id', '=', vpcId)
    .orderBy('vpn_connections.id')
    .execute();
  if (!rows.length) return [];
  const vpc = await db.selectFrom('vpcs').select('cidr').where('id', '=', vpcId).executeTakeFirstOrThrow();
  // As upstream's VPC router: the peer reaches the whole VPC CIDR, tiers yet to come included.
  const localCidrs = [vpc.cidr];
  return rows.map((r) => ({
    id: r.uuid,
    localIp: r.ip4,
    localCidrs,
    peerIp: r.gateway,
    peerCidrs: cidrsOf(r.cidr_list),
    psk: app.secrets.decrypt(r.ipsec_psk),
    ikePolicy: r.ike_policy,
    espPolicy: r.esp_policy,
    ikeVersion: r.ike_version === 'ikev1' || r.ike_version === 'ikev2' ? r.ike_version : 'ike',
    ikeLifetimeSec: r.ike_lifetime,
    espLifetimeSec: r.esp_lifetime,
    dpd: r.dpd === 1,
    forceEncap: r.force_encap === 1,
    passive: r.passive === 1,
  }));
}

/** The router's VPNs for `scope` (a network's, or a VPC's); undefined when it has none. */
export async function vpnSpecOf(app: App, scope: IpScope): Promise<RouterVpn | undefined> {
  const [remoteAccess, siteToSite] = await Promise.all([
    remoteAccessOf(app, scope),
    'vpcId' in scope ? siteToSiteOf(app, scope.vpcId) : Promise.resolve([]),
  ]);
  if (!remoteAccess && !siteToSite.length) return undefined;
  return { ...(remoteAccess ? { remoteAccess } : {}), siteToSite };
}

/**
 * Firewall openings for the VPN endpoints among the addresses of `scope`: a VPC's remote-access
 * VPN and gateway always (upstream's VPC router opens them itself), an isolated network's
 * remote-access VPN when it was created with openfirewall (the default).
 */
export async function vpnOpenings(app: App, scope: IpScope): Promise<RouterFirewallRule[]> {
  const db = app.store.db;
  const vpc = 'vpcId' in scope;
  const [remote, gateways] = await Promise.all([
    db
      .selectFrom('remote_access_vpns')
      .innerJoin('public_ips', 'public_ips.id', 'remote_access_vpns.public_ip_id')
      .select(['public_ips.ip4', 'remote_access_vpns.open_firewall'])
      .where(
        vpc ? 'remote_access_vpns.vpc_id' : 'remote_access_vpns.network_id',
        '=',
        vpc ? scope.vpcId : scope.networkId,
      )
      .execute(),
    vpc
      ? db
          .selectFrom('vpn_gateways')
          .innerJoin('public_ips', 'public_ips.id', 'vpn_gateways.public_ip_id')
          .select('public_ips.ip4')
          .where('vpn_gateways.vpc_id', '=', scope.vpcId)
          .execute()
      : Promise.resolve([]),
  ]);
  const ips = new Set([
    ...remote.filter((r) => vpc || r.open_firewall === 1).map((r) => r.ip4),
    ...gateways.map((g) => g.ip4),
  ]);
  return [...ips].flatMap((publicIp) =>
    VPN_PORTS.map((port) => ({
      publicIp,
      protocol: 'udp' as const,
      startPort: port,
      endPort: port,
      sourceCidrs: [],
      destCidrs: [],
    })),
  );
}

/** `{ vpn }` for a router spec, or nothing when `scope` has no VPN. */
export async function vpnField(app: App, scope: IpScope): Promise<{ vpn?: RouterVpn }> {
  const vpn = await vpnSpecOf(app, scope);
  return vpn ? { vpn } : {};
}
