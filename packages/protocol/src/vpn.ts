/**
 * A router's VPNs as the agent runs them (strongSwan in the router's namespace): the remote-access
 * VPN of its network or VPC (IKEv2, the network's pre-shared key plus a username and password per
 * user, client addresses from a pool) and its site-to-site connections (IKEv1 or IKEv2 with a
 * pre-shared key to a customer gateway). Always sent whole; the agent replaces what runs.
 */
import { z } from 'zod';

const ipv4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/);
const cidr4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/);
/** Secrets travel as given; the agent writes them hex-encoded, so any character is safe. */
const secret = z.string().min(1).max(256);

/**
 * An IKE or ESP policy in upstream's notation: proposals separated by commas, each
 * `cipher-hash` with an optional `;dhgroup` (`aes128-sha1;modp1536`). For ESP the group is PFS.
 */
export const VPN_POLICY =
  /^(aes128|aes192|aes256|3des)-(md5|sha1|sha256|sha384|sha512)(;modp(1024|1536|2048|3072|4096|6144|8192))?$/;

export const RouterVpnUser = z.object({
  username: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9@._-]{0,63}$/),
  password: secret,
});
export type RouterVpnUser = z.infer<typeof RouterVpnUser>;

export const RouterRemoteAccess = z.object({
  /** The public address clients connect to (the network's or VPC's source-NAT address). */
  publicIp: ipv4,
  psk: secret,
  /** The client address pool, first and last address. */
  rangeStart: ipv4,
  rangeEnd: ipv4,
  /** What clients reach: the network's (or every tier's) CIDR. */
  localCidrs: z.array(cidr4).min(1),
  users: z.array(RouterVpnUser).default([]),
});
export type RouterRemoteAccess = z.infer<typeof RouterRemoteAccess>;

const policy = z
  .string()
  .max(512)
  .refine((s) => s.split(',').every((p) => VPN_POLICY.test(p)), 'invalid IKE/ESP policy');

export const RouterSiteToSite = z.object({
  /** The connection's uuid: names it in strongSwan and in the state answered. */
  id: z.string().regex(/^[A-Za-z0-9-]{1,64}$/),
  /** The VPN gateway's public address (the VPC's source-NAT address). */
  localIp: ipv4,
  localCidrs: z.array(cidr4).min(1),
  /** The customer gateway: its IPv4 address (or DNS name) and the networks behind it. */
  peerIp: z.union([ipv4, z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/)]),
  peerCidrs: z.array(cidr4).min(1),
  psk: secret,
  ikePolicy: policy,
  espPolicy: policy,
  ikeVersion: z.enum(['ike', 'ikev1', 'ikev2']).default('ike'),
  ikeLifetimeSec: z.number().int().min(0).max(86400).default(86400),
  espLifetimeSec: z.number().int().min(0).max(86400).default(3600),
  dpd: z.boolean().default(false),
  forceEncap: z.boolean().default(false),
  /** Passive: only answers the peer, never initiates. */
  passive: z.boolean().default(false),
});
export type RouterSiteToSite = z.infer<typeof RouterSiteToSite>;

export const RouterVpn = z.object({
  remoteAccess: RouterRemoteAccess.optional(),
  siteToSite: z.array(RouterSiteToSite).default([]),
});
export type RouterVpn = z.infer<typeof RouterVpn>;

/** A site-to-site connection as the router sees it: Connected once its IPsec SA is installed. */
export const VpnConnectionState = z.object({
  id: z.string(),
  state: z.enum(['Connected', 'Disconnected', 'Error']),
  detail: z.string().max(1024).optional(),
});
export type VpnConnectionState = z.infer<typeof VpnConnectionState>;

export const RouterVpnStatus = z.object({ connections: z.array(VpnConnectionState) });
