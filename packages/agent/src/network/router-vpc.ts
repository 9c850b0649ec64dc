/**
 * What a VPC's router does between its segments (`RouterSpec.vpc`, protocol's vpc-routing.ts):
 *
 * - Network ACLs: one nftables table of its own in the router's namespace (`table ip nimbo_vpc`),
 *   so the public side's table (router-nat.ts) is untouched by it. Its forward chain sends traffic
 *   through the Egress chain of the segment it leaves and then the Ingress chain of the segment it
 *   enters (a tier or a private gateway alike, as upstream's router hooks both). In those
 *   chains an Allow rule `return`s (the next check still applies) and a Deny rule drops; each ends
 *   with its default. A packet of a connection already admitted passes (conntrack), so replies
 *   need no rule. The router's own services (DHCP, DNS, metadata) are not filtered.
 * - Private gateways: an interface per gateway, named after its bridge, a veth pair into the
 *   bridge the server set up (like a tier's), holding the gateway's address; with source NAT the
 *   VPC's traffic leaving through it takes that address (a nat chain in the same table).
 * - Static routes: `proto static` routes in the namespace; routes of that kind not in the spec are
 *   removed, so the namespace's routes are exactly the spec's.
 *
 * The table is generated whole (`vpcRuleset`, pure) and replaced in one `nft -f` transaction.
 */
import { existsSync } from 'node:fs';
import type { RouterAclRule, RouterSpec, RouterVpcRouting } from '@nimbostack/protocol';
import { DriverError } from '../drivers/driver.ts';
import { run } from '../drivers/kvm/exec.ts';
import { prefixOf, routerTierVeth, routerTierVethPeer } from './names.ts';
import { applyRuleset, GUEST_IF, PUBLIC_IF } from './router-nat.ts';

export const VPC_TABLE = 'nimbo_vpc';

/** A private gateway's interface in the namespace and its veth pair's ends. */
export interface GatewayLink {
  guest: { network: { bridge: string; cidr: string }; ip: string; mac: string };
  dev: string;
  host: string;
  peer: string;
}

export function gatewayLinks(name: string, vpc: RouterVpcRouting | undefined): GatewayLink[] {
  return (vpc?.privateGateways ?? []).map((g) => ({
    guest: { network: { bridge: g.bridge, cidr: g.cidr }, ip: g.ip, mac: g.mac },
    dev: g.bridge,
    host: routerTierVeth(name, g.bridge),
    peer: routerTierVethPeer(name, g.bridge),
  }));
}

/** The interface of each of the router's segments by bridge: tiers (eth0 first) and gateways. */
export function segmentDevs(spec: Pick<RouterSpec, 'guests' | 'vpc'>): Map<string, string> {
  const devs = new Map<string, string>();
  for (const [i, g] of spec.guests.entries())
    devs.set(g.network.bridge, i === 0 ? GUEST_IF : g.network.bridge);
  for (const g of spec.vpc?.privateGateways ?? []) devs.set(g.bridge, g.bridge);
  return devs;
}

/** Refuses what the router cannot do, naming it; nothing has changed yet when it throws. */
export function validateVpcRouting(spec: Pick<RouterSpec, 'name' | 'guests' | 'vpc'>): void {
  const vpc = spec.vpc;
  if (!vpc) return;
  prefixOf(vpc.cidr);
  const tierBridges = new Set(spec.guests.map((g) => g.network.bridge));
  for (const g of vpc.privateGateways) {
    prefixOf(g.cidr);
    if (tierBridges.has(g.bridge) || [GUEST_IF, PUBLIC_IF, 'lo'].includes(g.bridge))
      throw new DriverError(`private gateway bridge ${g.bridge} is already a router interface`);
    if (!existsSync(`/sys/class/net/${g.bridge}/bridge`))
      throw new DriverError(`bridge ${g.bridge} does not exist on this host: setupNetwork first`);
    if (g.ip === g.gateway) throw new DriverError(`private gateway ${g.ip} cannot be its own next hop`);
  }
  const devs = segmentDevs(spec);
  const seen = new Set<string>();
  for (const acl of vpc.acls) {
    if (!devs.has(acl.bridge)) throw new DriverError(`ACL for ${acl.bridge}: no such router segment`);
    if (seen.has(acl.bridge)) throw new DriverError(`two ACLs for segment ${acl.bridge}`);
    seen.add(acl.bridge);
    for (const r of [...acl.ingress, ...acl.egress]) {
      if (r.startPort !== undefined && r.endPort !== undefined && r.endPort < r.startPort)
        throw new DriverError(`ACL item ${r.number}: the port range ends before it starts`);
      if (
        (r.startPort !== undefined || r.endPort !== undefined) &&
        r.protocol !== 'tcp' &&
        r.protocol !== 'udp'
      )
        throw new DriverError(`ACL item ${r.number}: ports need protocol tcp or udp`);
    }
  }
}

const set = (items: string[]) => (items.length === 1 ? items[0] : `{ ${items.join(', ')} }`);
const q = (s: string) => `"${s}"`;

/** One ACL item's match: `peer` is the address the CIDRs are about (saddr in, daddr out). */
export function aclMatch(rule: RouterAclRule, peer: 'saddr' | 'daddr'): string {
  const parts: string[] = [];
  const cidrs = rule.cidrs.filter((c) => c !== '0.0.0.0/0');
  if (cidrs.length && cidrs.length === rule.cidrs.length) parts.push(`ip ${peer} ${set(cidrs)}`);
  const p = rule.protocol;
  if (p === 'tcp' || p === 'udp') {
    parts.push(`meta l4proto ${p}`);
    const start = rule.startPort ?? rule.endPort;
    const end = rule.endPort ?? start;
    if (start !== undefined && !(start <= 1 && end === 65535))
      parts.push(`${p} dport ${end === start ? start : `${start}-${end}`}`);
  } else if (p === 'icmp') {
    parts.push('meta l4proto icmp');
    const type = rule.icmpType ?? -1;
    const code = rule.icmpCode ?? -1;
    if (type >= 0) parts.push(`icmp type ${type}`);
    if (type >= 0 && code >= 0) parts.push(`icmp code ${code}`);
  } else if (typeof p === 'number') parts.push(`meta l4proto ${p}`);
  // Nothing to match (all traffic): the verdict alone.
  return parts.join(' ');
}

/** An ACL chain: items in number order, Allow returning (the other segment's check follows). */
function aclChain(rules: RouterAclRule[], peer: 'saddr' | 'daddr', fallback: 'allow' | 'deny'): string[] {
  return [
    ...[...rules]
      .sort((a, b) => a.number - b.number)
      .map((r) => [aclMatch(r, peer), r.allow ? 'return' : 'drop'].filter(Boolean).join(' ')),
    fallback === 'allow' ? 'return' : 'drop',
  ];
}

/**
 * The whole table: creates it if missing, deletes it and defines it again in one transaction.
 * `devs` maps each segment's bridge to its interface in the namespace.
 */
export function vpcRuleset(vpc: RouterVpcRouting, devs: Map<string, string>): string {
  const chains: string[][] = [];
  const leaving: string[] = [];
  const entering: string[] = [];
  vpc.acls.forEach((acl, i) => {
    const dev = q(devs.get(acl.bridge)!);
    const ingress = `s${i}_in`;
    const egress = `s${i}_out`;
    const ingressSaddr = aclChain(acl.ingress, 'saddr', acl.ingressDefault);
    const egressDaddr = aclChain(acl.egress, 'daddr', acl.egressDefault);
    chains.push(chain(ingress, undefined, ingressSaddr), chain(egress, undefined, egressDaddr));
    leaving.push(`iifname ${dev} jump ${egress}`);
    entering.push(`oifname ${dev} jump ${ingress}`);
  });
  const snat = vpc.privateGateways
    .filter((g) => g.sourceNat)
    .map((g) => `oifname ${q(devs.get(g.bridge)!)} ip saddr ${vpc.cidr} snat to ${g.ip}`);
  return [
    `table ip ${VPC_TABLE} {}`,
    `delete table ip ${VPC_TABLE}`,
    `table ip ${VPC_TABLE} {`,
    ...chain('forward', 'type filter hook forward priority filter - 5; policy accept;', [
      'ct state established,related accept',
      ...leaving,
      ...entering,
    ]),
    ...chain('postrouting', 'type nat hook postrouting priority srcnat - 5; policy accept;', snat),
    ...chains.flat(),
    '}',
    '',
  ].join('\n');
}

function chain(name: string, hook: string | undefined, body: string[]): string[] {
  return [`  chain ${name} {`, ...(hook ? [`    ${hook}`] : []), ...body.map((l) => `    ${l}`), '  }'];
}

/**
 * Brings the namespace's ACL table and static routes in line with `vpc` (the gateways' interfaces
 * are already up). Without `vpc` the table and our static routes go.
 */
export async function ensureVpcRouting(ns: string, spec: Pick<RouterSpec, 'guests' | 'vpc'>): Promise<void> {
  const vpc = spec.vpc;
  if (vpc) await applyRuleset(ns, vpcRuleset(vpc, segmentDevs(spec)));
  else await dropVpcTable(ns);
  const wanted = new Map((vpc?.staticRoutes ?? []).map((r) => [r.cidr, r.via]));
  const present = JSON.parse(await run('ip', ['-n', ns, '-j', 'route', 'show', 'proto', 'static'])) as {
    dst: string;
    gateway?: string;
  }[];
  for (const r of present) {
    const dst = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    if (wanted.get(dst) !== r.gateway) await run('ip', ['-n', ns, 'route', 'del', r.dst, 'proto', 'static']);
  }
  for (const [cidr, via] of wanted)
    await run('ip', ['-n', ns, 'route', 'replace', cidr, 'via', via, 'proto', 'static']);
}

async function dropVpcTable(ns: string): Promise<void> {
  const tables = await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables']).catch(() => '');
  if (tables.split('\n').some((l) => l.trim() === `table ip ${VPC_TABLE}`))
    await run('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'ip', VPC_TABLE]);
}
