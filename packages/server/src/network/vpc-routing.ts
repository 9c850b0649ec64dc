/**
 * What a VPC's router is told about its ACLs, private gateways and static routes
 * (`RouterSpec.vpc`), from the records: each served tier's list (or, without one, upstream's
 * behaviour for a tier without a list: nothing in, everything out), each private gateway with its
 * list, and the active static routes.
 *
 * Defaults when no item matches, as upstream's router has them: Ingress is denied; Egress is
 * allowed while the list has no Egress item and denied once it has one (a list's Egress items say
 * what may leave, the rest may not).
 */
import type { GuestNetwork, RouterAcl, RouterAclRule, RouterVpcRouting } from '@nimbostack/protocol';
import type { App } from '../context.ts';
import type { NetworkRow, VpcRow } from '../db/schema.ts';
import { intToIpv4, netmaskBits, subnetBounds } from '../infra/common.ts';
import { bridgeOf } from './host-network.ts';
import type { NetworkAclItemRow, VpcPrivateGatewayRow } from './vpc-acl-tables.ts';

/** A private gateway's bridge on the router's host: named after the VLAN id that stands for it. */
export const privateGatewayBridge = (vni: number) => `npgw${vni}`;

/** A private gateway's CIDR (its network address and prefix). */
export function privateGatewayCidr(g: Pick<VpcPrivateGatewayRow, 'gateway' | 'netmask'>): string {
  return `${intToIpv4(subnetBounds(g.gateway, g.netmask).first)}/${netmaskBits(g.netmask) ?? 32}`;
}

/**
 * The private network as the router's host carries it: a bridge with a VXLAN link of the VLAN id
 * (no 802.1Q here); other hosts and the admin's network join that VXLAN id or the bridge.
 */
export function privateNetwork(g: VpcPrivateGatewayRow): GuestNetwork {
  return {
    uuid: g.uuid,
    bridge: privateGatewayBridge(g.vni),
    cidr: privateGatewayCidr(g),
    gateway: g.gateway,
    gatewayOnHost: false,
    vni: g.vni,
    peers: [],
    domain: 'cloud.internal',
  };
}

export function aclRule(item: NetworkAclItemRow): RouterAclRule {
  const protocol = /^\d+$/.test(item.protocol)
    ? Number(item.protocol)
    : (item.protocol as 'tcp' | 'udp' | 'icmp' | 'all');
  return {
    number: item.number,
    allow: item.action === 'Allow',
    protocol,
    ...(item.start_port !== null ? { startPort: item.start_port } : {}),
    ...(item.end_port !== null ? { endPort: item.end_port } : {}),
    ...(item.icmp_type !== null ? { icmpType: item.icmp_type } : {}),
    ...(item.icmp_code !== null ? { icmpCode: item.icmp_code } : {}),
    cidrs: item.cidr_list.split(',').filter(Boolean),
  };
}

/** A segment's ACL from its list's items (undefined items: a tier without a list). */
export function segmentAcl(bridge: string, items: NetworkAclItemRow[] | undefined): RouterAcl {
  const list = items ?? [];
  const ingress = list.filter((i) => i.traffic_type === 'Ingress').map(aclRule);
  const egress = list.filter((i) => i.traffic_type === 'Egress').map(aclRule);
  return {
    bridge,
    ingress,
    egress,
    ingressDefault: 'deny',
    egressDefault: egress.length ? 'deny' : 'allow',
  };
}

export function livePrivateGateways(app: App, vpcId: number): Promise<VpcPrivateGatewayRow[]> {
  return app.store.db
    .selectFrom('vpc_private_gateways')
    .selectAll()
    .where('vpc_id', '=', vpcId)
    .where('removed', 'is', null)
    .orderBy('id')
    .execute();
}

/** The VPC's ACLs, private gateways and static routes for the router serving `tiers`. */
export async function vpcRoutingOf(app: App, vpc: VpcRow, tiers: NetworkRow[]): Promise<RouterVpcRouting> {
  const db = app.store.db;
  const gateways = await livePrivateGateways(app, vpc.id);
  const listIds = [
    ...new Set([
      ...tiers.flatMap((t) => (t.network_acl_id !== null ? [t.network_acl_id] : [])),
      ...gateways.map((g) => g.network_acl_id),
    ]),
  ];
  const items = listIds.length
    ? await db
        .selectFrom('network_acl_items')
        .selectAll()
        .where('acl_id', 'in', listIds)
        .orderBy('number')
        .execute()
    : [];
  const itemsOf = (id: number | null) => (id === null ? undefined : items.filter((i) => i.acl_id === id));
  const routes = await db
    .selectFrom('vpc_static_routes')
    .select(['cidr', 'nexthop'])
    .where('vpc_id', '=', vpc.id)
    .where('removed', 'is', null)
    .orderBy('id')
    .execute();
  return {
    cidr: vpc.cidr,
    acls: [
      ...tiers.map((t) => segmentAcl(bridgeOf(t), itemsOf(t.network_acl_id))),
      ...gateways.map((g) => segmentAcl(privateGatewayBridge(g.vni), itemsOf(g.network_acl_id))),
    ],
    privateGateways: gateways.map((g) => ({
      bridge: privateGatewayBridge(g.vni),
      cidr: privateGatewayCidr(g),
      ip: g.ip4,
      mac: g.mac,
      gateway: g.gateway,
      vni: g.vni,
      sourceNat: g.source_nat === 1,
    })),
    staticRoutes: routes.map((r) => ({ cidr: r.cidr, via: r.nexthop })),
  };
}
