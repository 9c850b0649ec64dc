/** Tables of VPC network ACLs, private gateways and static routes (migration 0026). */
import type { Generated, Selectable } from 'kysely';
import type { Flag } from '../db/schema.ts';

/** An ACL list of a VPC, or (vpc_id null) one of the built-in default_allow and default_deny. */
export interface NetworkAclListTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  description: string | null;
  vpc_id: number | null;
  for_display: Generated<Flag>;
  created: number;
}

/** One rule of a list; `number` orders the list's rules and is unique in it. */
export interface NetworkAclItemTable {
  id: Generated<number>;
  uuid: string;
  acl_id: number;
  number: number;
  /** Allow or Deny. */
  action: string;
  /** Ingress or Egress. */
  traffic_type: string;
  /** tcp, udp, icmp, all, or an IP protocol number. */
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
  /** Comma-separated CIDRs: sources of ingress traffic, destinations of egress traffic. */
  cidr_list: string;
  reason: string | null;
  for_display: Generated<Flag>;
  /** Active (applied with its list). */
  state: string;
  created: number;
}

/** A VPC router's interface on an admin-provided network. */
export interface VpcPrivateGatewayTable {
  id: Generated<number>;
  uuid: string;
  vpc_id: number;
  zone_id: number;
  account_id: number;
  domain_id: number;
  physical_network_id: number | null;
  ip4: string;
  gateway: string;
  netmask: string;
  /** As given (vlan://N or N); `vni` is N, the VXLAN id that carries the network. */
  vlan: string;
  vni: number;
  mac: string;
  network_acl_id: number;
  source_nat: Generated<Flag>;
  /** Ready once the router has it (or will have it when it boots). */
  state: string;
  created: number;
  removed: number | null;
}

/** A CIDR the VPC's router sends through a private gateway's next hop. */
export interface VpcStaticRouteTable {
  id: Generated<number>;
  uuid: string;
  vpc_id: number;
  gateway_id: number | null;
  nexthop: string;
  cidr: string;
  account_id: number;
  domain_id: number;
  /** Active once applied. */
  state: string;
  created: number;
  removed: number | null;
}

export type NetworkAclListRow = Selectable<NetworkAclListTable>;
export type NetworkAclItemRow = Selectable<NetworkAclItemTable>;
export type VpcPrivateGatewayRow = Selectable<VpcPrivateGatewayTable>;
export type VpcStaticRouteRow = Selectable<VpcStaticRouteTable>;
