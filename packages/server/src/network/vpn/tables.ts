/** Tables of remote-access and site-to-site VPNs (migration 0027). */
import type { Generated, Selectable } from 'kysely';
import type { Flag } from '../../db/schema.ts';

/** A remote-access VPN on a public address of an isolated network or a VPC (its source-NAT one). */
export interface RemoteAccessVpnTable {
  id: Generated<number>;
  uuid: string;
  account_id: number;
  domain_id: number;
  /** The isolated network it serves, or null for a VPC's. */
  network_id: number | null;
  vpc_id: number | null;
  public_ip_id: number;
  /** The first address of the requested range, kept back as upstream does (the router's end). */
  local_ip: string;
  /** The client pool: first-last. */
  ip_range: string;
  /** The pre-shared key, sealed with the server key. */
  psk: string;
  /** Added (being applied) or Running. */
  state: string;
  /** Whether IKE and NAT traversal were opened on the address (isolated networks' openfirewall). */
  open_firewall: Flag;
  for_display: Generated<Flag>;
  created: number;
}

/** A VPN user of an account: it may connect to every remote-access VPN of the account. */
export interface VpnUserTable {
  id: Generated<number>;
  uuid: string;
  account_id: number;
  domain_id: number;
  username: string;
  /** Sealed with the server key. */
  password: string;
  /** Add (being applied) or Active. */
  state: string;
  created: number;
}

/** A VPC's site-to-site VPN gateway: the VPC's source-NAT address as an IPsec endpoint. */
export interface VpnGatewayTable {
  id: Generated<number>;
  uuid: string;
  account_id: number;
  domain_id: number;
  vpc_id: number;
  public_ip_id: number;
  for_display: Generated<Flag>;
  created: number;
}

/** The far end of site-to-site connections: its address, networks, key and policies. */
export interface VpnCustomerGatewayTable {
  id: Generated<number>;
  uuid: string;
  account_id: number;
  domain_id: number;
  name: string;
  gateway: string;
  /** Comma-separated CIDRs behind the gateway. */
  cidr_list: string;
  /** Sealed with the server key. */
  ipsec_psk: string;
  ike_policy: string;
  esp_policy: string;
  ike_lifetime: number;
  esp_lifetime: number;
  dpd: Flag;
  force_encap: Flag;
  split_connections: Flag;
  /** ike (either), ikev1 or ikev2. */
  ike_version: string;
  created: number;
}

/** A connection between a VPN gateway and a customer gateway, with its tunnel's state. */
export interface VpnConnectionTable {
  id: Generated<number>;
  uuid: string;
  account_id: number;
  domain_id: number;
  vpn_gateway_id: number;
  customer_gateway_id: number;
  passive: Flag;
  /** Pending, Connected, Disconnected or Error. */
  state: string;
  for_display: Generated<Flag>;
  created: number;
}

export type RemoteAccessVpnRow = Selectable<RemoteAccessVpnTable>;
export type VpnUserRow = Selectable<VpnUserTable>;
export type VpnGatewayRow = Selectable<VpnGatewayTable>;
export type VpnCustomerGatewayRow = Selectable<VpnCustomerGatewayTable>;
export type VpnConnectionRow = Selectable<VpnConnectionTable>;
