/**
 * What a VPC's router enforces between its segments (`RouterSpec.vpc`): network ACLs on its tiers
 * and private gateways, its private gateways (interfaces on admin-provided networks) and static
 * routes through them. Always sent whole with the rest of the spec; the agent replaces what it had.
 */
import { z } from 'zod';

const ipv4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/);
const cidr4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/);
const mac = z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i);
const port = z.number().int().min(0).max(65535);
/** A bridge (and the router's interface named after it): at most 15 characters. */
const bridge = z
  .string()
  .min(1)
  .max(15)
  .regex(/^[A-Za-z0-9_.-]+$/);

/**
 * One ACL item as the router matches it. `cidrs` are the sources of ingress traffic and the
 * destinations of egress traffic (upstream's meaning of cidrlist); empty means any. `protocol` is
 * tcp, udp, icmp, all, or an IP protocol number.
 */
export const RouterAclRule = z.object({
  number: z.number().int().min(1),
  allow: z.boolean(),
  protocol: z.union([z.enum(['tcp', 'udp', 'icmp', 'all']), z.number().int().min(0).max(255)]),
  startPort: port.optional(),
  endPort: port.optional(),
  /** ICMP type and code; -1 or absent means any. */
  icmpType: z.number().int().min(-1).max(255).optional(),
  icmpCode: z.number().int().min(-1).max(255).optional(),
  cidrs: z.array(cidr4).default([]),
});
export type RouterAclRule = z.infer<typeof RouterAclRule>;

/**
 * The ACL of one of the router's segments, named by its bridge (a tier's or a private gateway's).
 * Ingress is traffic the router forwards into the segment (for a private gateway: towards the
 * private network and the static routes behind it) and egress traffic coming out of it, as
 * upstream's router has it. Rules are evaluated in `number` order; the first match decides, else
 * the default.
 */
export const RouterAcl = z.object({
  bridge,
  ingress: z.array(RouterAclRule).default([]),
  egress: z.array(RouterAclRule).default([]),
  ingressDefault: z.enum(['allow', 'deny']),
  egressDefault: z.enum(['allow', 'deny']),
});
export type RouterAcl = z.infer<typeof RouterAcl>;

/**
 * A private gateway: an interface named after `bridge` holding `ip` in `cidr`, on a network the
 * agent carries like a guest network (a bridge, with a VXLAN link when `vni` is set). `gateway` is
 * the next hop on that network. With `sourceNat`, the VPC's traffic leaving through it takes `ip`.
 */
export const RouterPrivateGateway = z.object({
  bridge,
  cidr: cidr4,
  ip: ipv4,
  mac,
  gateway: ipv4,
  vni: z.number().int().min(1).max(16777215).optional(),
  sourceNat: z.boolean().default(false),
});
export type RouterPrivateGateway = z.infer<typeof RouterPrivateGateway>;

/** A static route of the VPC: `cidr` through `via`, a next hop on one of the router's segments. */
export const RouterStaticRoute = z.object({ cidr: cidr4, via: ipv4 });
export type RouterStaticRoute = z.infer<typeof RouterStaticRoute>;

export const RouterVpcRouting = z.object({
  /** The VPC's CIDR: what its private gateways' source NAT applies to. */
  cidr: cidr4,
  /** One per ACL'd segment; a segment without one is not filtered. */
  acls: z.array(RouterAcl).default([]),
  privateGateways: z.array(RouterPrivateGateway).max(16).default([]),
  staticRoutes: z.array(RouterStaticRoute).max(1024).default([]),
});
export type RouterVpcRouting = z.infer<typeof RouterVpcRouting>;
