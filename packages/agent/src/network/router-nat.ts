/**
 * The public side of an isolated network's router: eth1 in the router's namespace (a veth pair
 * whose host end is plugged into the zone's public bridge), carrying every public address of the
 * network, and one nftables table in the namespace (`table ip nimbo`) doing source NAT, static NAT,
 * port forwarding, ingress filtering (firewall rules) and egress filtering. The table is generated
 * whole from the rules (`routerRuleset`, pure) and replaced in one `nft -f` transaction, so there
 * is never a moment without rules. It lives in the namespace and goes with it.
 *
 * CloudStack's semantics: nothing from the public side reaches a public address (forwarded to a
 * guest after DNAT, or to the router itself such as HAProxy) unless a firewall rule of that address
 * admits it; port forwards, static NAT and load balancers open nothing by themselves. The firewall
 * matches the connection's original destination (`ct original ...`), i.e. the public address and
 * port before DNAT. Guest traffic out follows the offering's default egress policy, and egress
 * rules are the exceptions to it. Guest-to-guest traffic is bridged and never reaches the router,
 * except between a VPC's tiers, which the router routes under the tiers' network ACLs (a table of
 * their own, router-vpc.ts).
 */
import { existsSync } from 'node:fs';
import type { RouterFirewallRule, RouterPublic, RouterRules } from '@nimbostack/protocol';
import { DriverError } from '../drivers/driver.ts';
import { run, runWithInput } from '../drivers/kvm/exec.ts';
import { routerPublicVeth, routerPublicVethPeer } from './names.ts';

export const NAT_TABLE = 'nimbo';
/** The router's interfaces inside its namespace. */
export const GUEST_IF = 'eth0';
export const PUBLIC_IF = 'eth1';
/** A port forward translating ports (public start != private start) maps each port: bounded. */
export const MAX_MAPPED_PORTS = 4096;

const set = (items: string[]) => (items.length === 1 ? items[0] : `{ ${items.join(', ')} }`);

/** Refuses rules the ruleset cannot express, with a message naming the rule. */
export function validateRules(pub: RouterPublic | undefined, rules: RouterRules): void {
  if (!pub) {
    const used =
      rules.firewall.length +
      rules.egress.length +
      rules.portForwards.length +
      rules.staticNats.length +
      rules.loadBalancers.length;
    if (used) throw new DriverError('router rules need a public side (public) to apply to');
    return;
  }
  for (const pf of rules.portForwards) {
    const what = `port forward ${pf.publicIp}:${pf.publicStart}-${pf.publicEnd}`;
    if (pf.publicEnd < pf.publicStart || pf.privateEnd < pf.privateStart)
      throw new DriverError(`${what}: a port range ends before it starts`);
    if (pf.publicEnd - pf.publicStart !== pf.privateEnd - pf.privateStart)
      throw new DriverError(`${what}: the public and private port ranges differ in length`);
    if (pf.publicStart !== pf.privateStart && pf.publicEnd - pf.publicStart + 1 > MAX_MAPPED_PORTS)
      throw new DriverError(
        `${what}: a translated range is limited to ${MAX_MAPPED_PORTS} ports (or keep the same ports)`,
      );
  }
  const ours = new Set(pub.addresses.map((a) => a.ip));
  for (const x of [...rules.portForwards, ...rules.staticNats, ...rules.loadBalancers, ...rules.firewall])
    if (x.publicIp && !ours.has(x.publicIp))
      throw new DriverError(
        `public address ${x.publicIp} of a rule is not among the router's public addresses`,
      );
  for (const r of [...rules.firewall, ...rules.egress])
    if (r.startPort !== undefined && r.endPort !== undefined && r.endPort < r.startPort)
      throw new DriverError(
        `firewall rule ports ${r.startPort}-${r.endPort}: the range ends before it starts`,
      );
}

/** The protocol and port (or ICMP type/code) part of a firewall rule's match. */
function protocolMatch(rule: RouterFirewallRule, originalPort: boolean): string[] {
  if (rule.protocol === 'tcp' || rule.protocol === 'udp') {
    const out = [`meta l4proto ${rule.protocol}`];
    const start = rule.startPort;
    const end = rule.endPort ?? start;
    if (start !== undefined && !(start <= 1 && end === 65535)) {
      const ports = end === undefined || end === start ? String(start) : `${start}-${end}`;
      // Ingress: the port the client asked for, before a port forward translated it.
      out.push(originalPort ? `ct original proto-dst ${ports}` : `${rule.protocol} dport ${ports}`);
    }
    return out;
  }
  if (rule.protocol === 'icmp') {
    const type = rule.icmpType ?? -1;
    const code = rule.icmpCode ?? -1;
    return [
      'ip protocol icmp',
      ...(type >= 0 ? [`icmp type ${type}`] : []),
      ...(type >= 0 && code >= 0 ? [`icmp code ${code}`] : []),
    ];
  }
  return [];
}

/** One ingress (firewall) rule: admits new traffic to its public address. */
export function ingressMatch(rule: RouterFirewallRule): string | undefined {
  // A rule without an address applies to none: the contract ties every ingress rule to one.
  if (!rule.publicIp) return undefined;
  return [
    `ct original ip daddr ${rule.publicIp}`,
    ...(rule.sourceCidrs.length && !rule.sourceCidrs.includes('0.0.0.0/0')
      ? [`ip saddr ${set(rule.sourceCidrs)}`]
      : []),
    ...protocolMatch(rule, true),
  ].join(' ');
}

/** One egress rule: guest traffic from sourceCidrs to destCidrs. */
export function egressMatch(rule: RouterFirewallRule): string {
  const parts = [
    ...(rule.sourceCidrs.length && !rule.sourceCidrs.includes('0.0.0.0/0')
      ? [`ip saddr ${set(rule.sourceCidrs)}`]
      : []),
    ...(rule.destCidrs.length && !rule.destCidrs.includes('0.0.0.0/0')
      ? [`ip daddr ${set(rule.destCidrs)}`]
      : []),
    ...protocolMatch(rule, false),
  ];
  // Empty for a rule that matches all traffic: the verdict alone (an `ip` table has no nfproto).
  return parts.join(' ');
}

/**
 * The whole nftables input for a router: creates the table if missing, deletes it, and defines it
 * again, all in one transaction (`nft -f`), so the rules are replaced without a gap.
 */
export function routerRuleset(guestCidrs: string | string[], pub: RouterPublic, rules: RouterRules): string {
  // A VPC router has one guest network per tier; every tier leaves through the one source NAT.
  const guests = typeof guestCidrs === 'string' ? [guestCidrs] : guestCidrs;
  const t = NAT_TABLE;
  const q = (s: string) => `"${s}"`;
  const pre: string[] = [];
  for (const pf of rules.portForwards) {
    const ports = pf.publicStart === pf.publicEnd ? `${pf.publicStart}` : `${pf.publicStart}-${pf.publicEnd}`;
    const match = `iifname ${q(PUBLIC_IF)} ip daddr ${pf.publicIp} ${pf.protocol} dport ${ports}`;
    if (pf.publicStart === pf.privateStart) pre.push(`${match} dnat to ${pf.privateIp}`);
    else if (pf.publicStart === pf.publicEnd) pre.push(`${match} dnat to ${pf.privateIp}:${pf.privateStart}`);
    else {
      // Each public port goes to its own private port: an anonymous map, one entry per port.
      const entries: string[] = [];
      for (let p = pf.publicStart; p <= pf.publicEnd; p++)
        entries.push(`${p} : ${p - pf.publicStart + pf.privateStart}`);
      pre.push(`${match} dnat to ${pf.privateIp} : ${pf.protocol} dport map { ${entries.join(', ')} }`);
    }
  }
  for (const s of rules.staticNats)
    pre.push(`iifname ${q(PUBLIC_IF)} ip daddr ${s.publicIp} dnat to ${s.privateIp}`);

  const post: string[] = [];
  // Static NAT first: its VM leaves from its own address, not the network's source NAT one.
  for (const s of rules.staticNats)
    post.push(`oifname ${q(PUBLIC_IF)} ip saddr ${s.privateIp} snat to ${s.publicIp}`);
  if (pub.sourceNat && guests.length)
    post.push(`oifname ${q(PUBLIC_IF)} ip saddr ${set(guests)} snat to ${pub.sourceNat}`);

  const ingress = rules.firewall
    .map(ingressMatch)
    .filter((m): m is string => !!m)
    .map((m) => `${m} accept`);
  const egress: string[] = [];
  // Without a source NAT address only statically NATed guests have an address to leave from.
  if (!pub.sourceNat) {
    const privates = rules.staticNats.map((s) => s.privateIp);
    egress.push(privates.length ? `ip saddr != ${set(privates)} drop` : 'drop');
  }
  const exception = rules.egressDefaultAllow ? 'drop' : 'accept';
  for (const r of rules.egress) egress.push([egressMatch(r), exception].filter(Boolean).join(' '));
  egress.push(rules.egressDefaultAllow ? 'accept' : 'drop');

  const chain = (name: string, hook: string | undefined, body: string[]) => [
    `  chain ${name} {`,
    ...(hook ? [`    ${hook}`] : []),
    ...body.map((l) => `    ${l}`),
    '  }',
  ];
  return [
    `table ip ${t} {}`,
    `delete table ip ${t}`,
    `table ip ${t} {`,
    ...chain('prerouting', 'type nat hook prerouting priority dstnat; policy accept;', pre),
    ...chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', post),
    ...chain('forward', 'type filter hook forward priority filter; policy accept;', [
      'ct state established,related accept',
      'ct state invalid drop',
      `iifname ${q(PUBLIC_IF)} jump ingress`,
      // Every interface but the public one is a guest network's (eth0, and a VPC's further tiers).
      // Traffic between a VPC's tiers is filtered by their network ACLs (router-vpc.ts), not here.
      `iifname != ${q(PUBLIC_IF)} oifname ${q(PUBLIC_IF)} jump egress`,
    ]),
    // The router's own services on the public side (HAProxy) are firewalled the same way; the
    // guest side (DNS, DHCP, metadata, passwords) is never filtered.
    ...chain('input', 'type filter hook input priority filter; policy accept;', [
      'ct state established,related accept',
      `iifname ${q(PUBLIC_IF)} jump ingress`,
    ]),
    ...chain('ingress', undefined, [...ingress, 'drop']),
    ...chain('egress', undefined, egress),
    '}',
    '',
  ].join('\n');
}

/** Replaces the router's table in one transaction. */
export async function applyRuleset(ns: string, ruleset: string): Promise<void> {
  await runWithInput('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], ruleset);
}

/** A router without a public side has no table of ours. */
export async function dropRuleset(ns: string): Promise<void> {
  const tables = await run('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables']).catch(() => '');
  if (tables.split('\n').some((l) => l.trim() === `table ip ${NAT_TABLE}`))
    await run('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'ip', NAT_TABLE]);
}

const linkExists = (name: string) => existsSync(`/sys/class/net/${name}`);

/** The zone's public bridge, created up and without an address when the host has none yet. */
async function ensurePublicBridge(bridge: string): Promise<void> {
  if (linkExists(bridge) && !existsSync(`/sys/class/net/${bridge}/bridge`))
    throw new DriverError(`${bridge} exists on this host and is not a bridge`);
  if (!linkExists(bridge))
    await run('ip', ['link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']).catch(
      (err) => {
        if (!existsSync(`/sys/class/net/${bridge}/bridge`)) throw err; // Lost a race: fine.
      },
    );
  await run('ip', ['link', 'set', bridge, 'up']);
}

/**
 * Brings eth1 in line with `pub`: plugged into the public bridge, with its MAC and exactly the
 * public addresses (the source NAT one first, so the router's own traffic leaves from it), the
 * default route via the public gateway and forwarding on. Returns the addresses it added.
 */
export async function ensurePublicSide(router: string, ns: string, pub: RouterPublic): Promise<string[]> {
  const host = routerPublicVeth(router);
  await ensurePublicBridge(pub.bridge);
  if (!linkExists(host)) {
    // A namespace end left without its host end (an interrupted start) is replaced.
    await run('ip', ['-n', ns, 'link', 'del', PUBLIC_IF]).catch(() => undefined);
    await run('ip', [
      'link',
      'add',
      host,
      'type',
      'veth',
      'peer',
      'name',
      routerPublicVethPeer(router),
      'netns',
      ns,
    ]);
    await run('ip', ['-n', ns, 'link', 'set', routerPublicVethPeer(router), 'name', PUBLIC_IF]);
  }
  await run('ip', ['link', 'set', host, 'master', pub.bridge]);
  await run('ip', ['link', 'set', host, 'up']);
  await run('ip', ['-n', ns, 'link', 'set', PUBLIC_IF, 'address', pub.mac.toLowerCase()]);
  await run('ip', ['-n', ns, 'link', 'set', PUBLIC_IF, 'up']);

  const ordered = [...pub.addresses].sort(
    (a, b) => Number(b.ip === pub.sourceNat) - Number(a.ip === pub.sourceNat),
  );
  const wanted = ordered.map((a) => `${a.ip}/${a.prefix}`);
  const present = await addressesOf(ns, PUBLIC_IF);
  for (const a of present)
    if (!wanted.includes(a)) await run('ip', ['-n', ns, 'addr', 'del', a, 'dev', PUBLIC_IF]);
  const added: string[] = [];
  for (const a of wanted)
    if (!present.includes(a)) {
      await run('ip', ['-n', ns, 'addr', 'add', a, 'dev', PUBLIC_IF]);
      added.push(a.split('/')[0]);
    }
  await run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', pub.gateway, 'dev', PUBLIC_IF]);
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  return added;
}

/**
 * Tells a segment that the added addresses now live at the interface's MAC (eth1 by default: a
 * public address that moved from another router; eth0: the gateway of a rebuilt router). Best
 * effort: arping is optional on hosts.
 */
export async function announce(ns: string, ips: string[], dev = PUBLIC_IF): Promise<void> {
  // Concurrently: arping waits about a second after its one packet, whatever the options.
  await Promise.all(
    ips.map((ip) =>
      run('ip', ['netns', 'exec', ns, 'arping', '-q', '-U', '-c', '1', '-I', dev, ip], 3000).catch(
        () => undefined,
      ),
    ),
  );
}

/** Takes eth1 away (a router that no longer has a public side); its addresses go with it. */
export async function removePublicSide(router: string, ns: string): Promise<void> {
  const host = routerPublicVeth(router);
  if (linkExists(host))
    await run('ip', ['link', 'del', host]).catch((err) => {
      if (linkExists(host)) throw err;
    });
  if (existsSync(`/run/netns/${ns}`))
    await run('ip', ['-n', ns, 'link', 'del', PUBLIC_IF]).catch(() => undefined);
}

async function addressesOf(ns: string, dev: string): Promise<string[]> {
  const out = JSON.parse(await run('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', dev])) as {
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  return (out[0]?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}
