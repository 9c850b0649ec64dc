/**
 * What an isolated network's router enforces, built from the records: its public addresses and
 * the rules on them (source NAT, static NAT, port forwards, firewall, egress, load balancers).
 * The router is always sent the whole set (`applyRouterRules`, or within `startRouter`), so
 * applying a change is "rebuild and send", the same for every kind of rule, and a router that
 * missed a change is right again after the next one. Rules being revoked are left out; rules being
 * added are in, since they are what is being applied.
 */
import type { RouterLoadBalancer, RouterPublic, RouterRules } from '@nimbostack/protocol';
import type { App } from '../context.ts';
import type { IpRuleRow, NetworkRow } from '../db/schema.ts';
import { netmaskBits } from '../infra/common.ts';
import { vpnOpenings } from './vpn/vpn-spec.ts';

/** The zone's public bridge on KVM hosts when the Public traffic type names none. */
export const DEFAULT_PUBLIC_BRIDGE = 'cloudbr0';

const cidrs = (text: string | null) => (text ? text.split(',').filter((c) => c !== '') : []);

function asProtocol(p: string): 'tcp' | 'udp' | 'icmp' | 'all' {
  return p === 'tcp' || p === 'udp' || p === 'icmp' ? p : 'all';
}

function firewallRule(rule: IpRuleRow, publicIp?: string) {
  return {
    ...(publicIp ? { publicIp } : {}),
    protocol: asProtocol(rule.protocol),
    ...(rule.start_port !== null ? { startPort: rule.start_port } : {}),
    ...(rule.end_port !== null ? { endPort: rule.end_port } : {}),
    ...(rule.icmp_type !== null ? { icmpType: rule.icmp_type } : {}),
    ...(rule.icmp_code !== null ? { icmpCode: rule.icmp_code } : {}),
    sourceCidrs: cidrs(rule.source_cidrs).filter((c) => c !== '0.0.0.0/0'),
    destCidrs: cidrs(rule.dest_cidrs).filter((c) => c !== '0.0.0.0/0'),
  };
}

/** The zone's public bridge: the KVM label of its Public traffic type. */
export async function publicBridgeOf(app: App, zoneId: number): Promise<string> {
  const row = await app.store.db
    .selectFrom('physical_network_traffic_types')
    .innerJoin(
      'physical_networks',
      'physical_networks.id',
      'physical_network_traffic_types.physical_network_id',
    )
    .select('physical_network_traffic_types.kvm_label')
    .where('physical_networks.zone_id', '=', zoneId)
    .where('physical_networks.removed', 'is', null)
    .where('physical_network_traffic_types.traffic_type', '=', 'Public')
    .executeTakeFirst();
  return row?.kvm_label || DEFAULT_PUBLIC_BRIDGE;
}

/**
 * The router's public side: every address associated with the network, the source-NAT one first.
 * Undefined when the network holds no public address (nothing to plug into the public bridge).
 */
export function routerPublicSide(
  app: App,
  network: Pick<NetworkRow, 'id' | 'zone_id'>,
  mac: string,
): Promise<RouterPublic | undefined> {
  return publicSideOf(app, network.zone_id, { networkId: network.id }, mac);
}

/** Which public addresses a router carries: a network's, or a VPC's (whatever tier they serve). */
export type IpScope = { networkId: number } | { vpcId: number };

/** The public side of a router carrying the addresses of `scope` (routerPublicSide, or a VPC's). */
export async function publicSideOf(
  app: App,
  zoneId: number,
  scope: IpScope,
  mac: string,
): Promise<RouterPublic | undefined> {
  const ips = await app.store.db
    .selectFrom('public_ips')
    .innerJoin('vlan_ip_ranges', 'vlan_ip_ranges.id', 'public_ips.range_id')
    .select(['public_ips.ip4', 'public_ips.source_nat', 'vlan_ip_ranges.gateway', 'vlan_ip_ranges.netmask'])
    .where(
      'vpcId' in scope ? 'public_ips.vpc_id' : 'public_ips.network_id',
      '=',
      'vpcId' in scope ? scope.vpcId : scope.networkId,
    )
    .where('public_ips.state', 'in', ['Allocating', 'Allocated'])
    .orderBy('public_ips.source_nat', 'desc')
    .orderBy('public_ips.id')
    .execute();
  const first = ips[0];
  if (!first) return undefined;
  const sourceNat = ips.find((ip) => ip.source_nat === 1);
  return {
    bridge: await publicBridgeOf(app, zoneId),
    mac,
    gateway: first.gateway,
    addresses: ips.map((ip) => ({ ip: ip.ip4, prefix: netmaskBits(ip.netmask) ?? 24 })),
    ...(sourceNat ? { sourceNat: sourceNat.ip4 } : {}),
  };
}

/** Every rule of the network as its router enforces it. */
export async function routerRulesFor(app: App, network: Pick<NetworkRow, 'id'>): Promise<RouterRules> {
  const offering = await app.store.db
    .selectFrom('networks')
    .innerJoin('network_offerings', 'network_offerings.id', 'networks.network_offering_id')
    .select('network_offerings.egress_default_policy')
    .where('networks.id', '=', network.id)
    .executeTakeFirstOrThrow();
  return rulesOf(app, {
    networkIds: [network.id],
    ips: { networkId: network.id },
    egressDefaultAllow: offering.egress_default_policy === 1,
  });
}

/**
 * Every rule a router enforces: those of its networks (a VPC router's tiers) on the addresses of
 * `ips` (the network's, or the VPC's).
 */
export async function rulesOf(
  app: App,
  of: { networkIds: number[]; ips: IpScope; egressDefaultAllow: boolean },
): Promise<RouterRules> {
  const db = app.store.db;
  const [ips, rules] = await Promise.all([
    db
      .selectFrom('public_ips')
      .select(['id', 'ip4', 'static_nat_vm_ip'])
      .where(
        'vpcId' in of.ips ? 'vpc_id' : 'network_id',
        '=',
        'vpcId' in of.ips ? of.ips.vpcId : of.ips.networkId,
      )
      .where('state', 'in', ['Allocating', 'Allocated'])
      .execute(),
    of.networkIds.length
      ? db
          .selectFrom('ip_rules')
          .selectAll()
          .where('network_id', 'in', of.networkIds)
          .where('state', '!=', 'Revoke')
          .orderBy('id')
          .execute()
      : Promise.resolve([] as IpRuleRow[]),
  ]);
  const ipOf = new Map(ips.map((ip) => [ip.id, ip.ip4]));
  const lbRules = rules.filter((r) => r.purpose === 'LoadBalancing');
  const [members, policies] = lbRules.length
    ? await Promise.all([
        db
          .selectFrom('lb_members')
          .select(['rule_id', 'vm_ip'])
          .where(
            'rule_id',
            'in',
            lbRules.map((r) => r.id),
          )
          .orderBy('vm_ip')
          .execute(),
        db
          .selectFrom('lb_policies')
          .selectAll()
          .where(
            'rule_id',
            'in',
            lbRules.map((r) => r.id),
          )
          .orderBy('id')
          .execute(),
      ])
    : [[], []];

  const out: RouterRules = {
    egressDefaultAllow: of.egressDefaultAllow,
    egress: [],
    firewall: [],
    portForwards: [],
    staticNats: [],
    loadBalancers: [],
  };
  // The VPN endpoints among these addresses receive IKE and NAT traversal (vpn/vpn-spec.ts).
  out.firewall.push(...(await vpnOpenings(app, of.ips)));
  for (const ip of ips)
    if (ip.static_nat_vm_ip) out.staticNats.push({ publicIp: ip.ip4, privateIp: ip.static_nat_vm_ip });
  for (const r of rules) {
    const publicIp = r.ip_id !== null ? ipOf.get(r.ip_id) : undefined;
    if (r.purpose === 'Firewall' && r.traffic_type === 'Egress') out.egress.push(firewallRule(r));
    else if (r.purpose === 'Firewall' && publicIp) out.firewall.push(firewallRule(r, publicIp));
    else if (r.purpose === 'PortForwarding' && publicIp && r.vm_ip)
      out.portForwards.push({
        publicIp,
        protocol: r.protocol === 'udp' ? 'udp' : 'tcp',
        publicStart: r.start_port ?? 0,
        publicEnd: r.end_port ?? r.start_port ?? 0,
        privateIp: r.vm_ip,
        privateStart: r.private_start_port ?? r.start_port ?? 0,
        privateEnd: r.private_end_port ?? r.private_start_port ?? r.end_port ?? 0,
      });
    else if (r.purpose === 'LoadBalancing' && publicIp) {
      const lb: RouterLoadBalancer = {
        id: r.uuid,
        publicIp,
        publicPort: r.start_port ?? 0,
        privatePort: r.private_start_port ?? r.start_port ?? 0,
        protocol: 'tcp',
        algorithm: r.algorithm === 'leastconn' || r.algorithm === 'source' ? r.algorithm : 'roundrobin',
        members: members.filter((m) => m.rule_id === r.id).map((m) => ({ ip: m.vm_ip })),
      };
      for (const p of policies.filter((x) => x.rule_id === r.id)) {
        const params = JSON.parse(p.params) as Record<string, string>;
        if (
          p.kind === 'Stickiness' &&
          (p.method === 'LbCookie' || p.method === 'AppCookie' || p.method === 'SourceBased')
        )
          lb.stickiness = { method: p.method, params };
        if (p.kind === 'HealthCheck')
          lb.healthCheck = {
            ...(params.pingpath ? { pingPath: params.pingpath } : {}),
            intervalSec: Number(params.intervaltime ?? 5),
            timeoutSec: Number(params.responsetimeout ?? 2),
            healthyThreshold: Number(params.healthythreshold ?? 2),
            unhealthyThreshold: Number(params.unhealthythreshold ?? 5),
          };
      }
      out.loadBalancers.push(lb);
    }
  }
  return out;
}
