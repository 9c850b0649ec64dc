/**
 * Security groups with nftables. Two tables of ours, named nimbostack, and no other:
 *
 * - `table bridge nimbostack` does anti-spoofing on the bridge port (a VM's tap): its prerouting
 *   chain sees every frame a VM sends, bridged or to the host, and drops it unless it carries the
 *   NIC's MAC and IP (DHCP discovery from 0.0.0.0 and ARP for the NIC's own IP allowed). Anything
 *   but IPv4 and ARP is dropped: the contract has no IPv6 addresses to check.
 * - `table inet nimbostack` does the stateful filtering. This kernel has no conntrack in the bridge
 *   family, so answers to a VM's own traffic can only be recognised in the inet family, which sees
 *   bridged IPv4 through br_netfilter (forward hook, in/out interface = the bridge) and the host's
 *   own traffic to and from VMs in its output and input hooks. Traffic is keyed by bridge and VM
 *   address; anti-spoofing guarantees a packet from a VM's address comes from that VM's port.
 *   Bridged traffic between two VMs passes the sender's egress chain and the receiver's ingress
 *   chain in the same forward hook, so the per-NIC chains `return` what they allow.
 *
 * Each NIC has its own chains (named after its tap, unique per host and VM), reached through
 * verdict maps; a VM's rules are replaced in one `nft -f` transaction and removed by its tap prefix.
 */
import type { NicSecurity, SecurityRule } from '@nimbostack/protocol';
import { run, runWithInput } from '../drivers/kvm/exec.ts';

export const TABLE = 'nimbostack';
const BASE_CHAINS = ['prerouting', 'forward', 'input', 'output'];

export interface NicFilter {
  /** The NIC's bridge port (a tap, or a veth in tests). */
  port: string;
  bridge: string;
  mac: string;
  ip: string;
  security: NicSecurity;
}

const B = `bridge ${TABLE}`;
const I = `inet ${TABLE}`;

/** The tables, maps and dispatching base chains; safe to repeat (base chains are rebuilt). */
export function baseRuleset(): string[] {
  return [
    `add table ${B}`,
    `add map ${B} spoof { type ifname : verdict; }`,
    // Before anything else on the bridge, so a forged frame reaches nobody's chains.
    `add chain ${B} prerouting { type filter hook prerouting priority -300; policy accept; }`,
    `flush chain ${B} prerouting`,
    `add rule ${B} prerouting iifname vmap @spoof`,
    `add table ${I}`,
    `add map ${I} from_vm { type ifname . ipv4_addr : verdict; }`,
    `add map ${I} to_vm { type ifname . ipv4_addr : verdict; }`,
    ...(['forward', 'input', 'output'] as const).flatMap((hook) => [
      `add chain ${I} ${hook} { type filter hook ${hook} priority filter; policy accept; }`,
      `flush chain ${I} ${hook}`,
      ...(hook !== 'output' ? [`add rule ${I} ${hook} iifname . ip saddr vmap @from_vm`] : []),
      ...(hook !== 'input' ? [`add rule ${I} ${hook} oifname . ip daddr vmap @to_vm`] : []),
    ]),
  ];
}

const set = (items: (string | number)[]) =>
  items.length === 1 ? String(items[0]) : `{ ${items.join(', ')} }`;

/** The match of one rule, or undefined when it can match nothing (no CIDRs: an empty group). */
export function ruleMatch(rule: SecurityRule, direction: 'ingress' | 'egress'): string | undefined {
  if (!rule.cidrs.length) return undefined;
  const parts: string[] = [];
  if (!rule.cidrs.includes('0.0.0.0/0'))
    parts.push(`ip ${direction === 'ingress' ? 'saddr' : 'daddr'} ${set(rule.cidrs)}`);
  if (rule.protocol === 'tcp' || rule.protocol === 'udp') {
    const start = rule.startPort;
    const end = rule.endPort ?? start;
    if (start === undefined || (start <= 0 && (end === undefined || end >= 65535)))
      parts.push(`meta l4proto ${rule.protocol}`);
    else
      parts.push(`${rule.protocol} dport ${end === undefined || end === start ? start : `${start}-${end}`}`);
  } else if (rule.protocol === 'icmp') {
    const type = rule.icmpType ?? -1;
    const code = rule.icmpCode ?? -1;
    parts.push('ip protocol icmp');
    if (type >= 0) parts.push(`icmp type ${type}`);
    if (type >= 0 && code >= 0) parts.push(`icmp code ${code}`);
  } else parts.push('meta nfproto ipv4');
  return parts.join(' ');
}

export const chainsOf = (port: string) => ({ spoof: `${port}_s`, egress: `${port}_e`, ingress: `${port}_i` });

/**
 * The whole transaction that installs (or replaces) the filtering of some NICs. `present` holds
 * the verdict map keys that exist already ("map key", as elementKey makes them): those are deleted
 * and added again, since nft cannot change an element's verdict in place.
 */
export function nicRuleset(nics: NicFilter[], present: Set<string> = new Set()): string {
  const lines = baseRuleset();
  for (const nic of nics) {
    const c = chainsOf(nic.port);
    const mac = nic.mac.toLowerCase();
    const sec = nic.security;
    lines.push(
      `add chain ${B} ${c.spoof}`,
      `flush chain ${B} ${c.spoof}`,
      `add rule ${B} ${c.spoof} ether saddr != ${mac} drop`,
      `add rule ${B} ${c.spoof} arp saddr ether != ${mac} drop`,
      // 0.0.0.0: the ARP probe of a guest checking its address is free (RFC 5227).
      `add rule ${B} ${c.spoof} arp saddr ip != { ${nic.ip}, 0.0.0.0 } drop`,
      `add rule ${B} ${c.spoof} ether type arp return`,
      `add rule ${B} ${c.spoof} ip saddr 0.0.0.0 udp sport 68 udp dport 67 return`,
      `add rule ${B} ${c.spoof} ip saddr ${nic.ip} return`,
      `add rule ${B} ${c.spoof} drop`,
      `add element ${B} spoof { "${nic.port}" : jump ${c.spoof} }`,
    );
    lines.push(
      `add chain ${I} ${c.egress}`,
      `flush chain ${I} ${c.egress}`,
      `add rule ${I} ${c.egress} ct state established,related return`,
      // DHCP renewals go unicast to the server; the router's own services stay reachable whatever
      // the egress rules say, as on CloudStack.
      `add rule ${I} ${c.egress} udp dport 67 return`,
    );
    if (sec.router)
      lines.push(
        `add rule ${I} ${c.egress} ip daddr ${sec.router} udp dport 53 return`,
        `add rule ${I} ${c.egress} ip daddr ${sec.router} tcp dport { 53, 80, 8080 } return`,
      );
    if (sec.egress) {
      for (const rule of sec.egress) {
        const m = ruleMatch(rule, 'egress');
        if (m) lines.push(`add rule ${I} ${c.egress} ${m} return`);
      }
      lines.push(`add rule ${I} ${c.egress} drop`);
    }
    lines.push(
      `add chain ${I} ${c.ingress}`,
      `flush chain ${I} ${c.ingress}`,
      `add rule ${I} ${c.ingress} ct state established,related return`,
      `add rule ${I} ${c.ingress} udp sport 67 udp dport 68 return`,
    );
    for (const rule of sec.ingress) {
      const m = ruleMatch(rule, 'ingress');
      if (m) lines.push(`add rule ${I} ${c.ingress} ${m} return`);
    }
    lines.push(`add rule ${I} ${c.ingress} drop`);
    const key = `"${nic.bridge}" . ${nic.ip}`;
    // Replaced, not just added: the key may point at another port's chains (the same VM arriving by
    // migration on a host that still has its source, as in tests with two agents on one machine).
    for (const [map, chain] of [
      ['from_vm', c.egress],
      ['to_vm', c.ingress],
    ]) {
      if (present.has(elementKey(map, key))) lines.push(`delete element ${I} ${map} { ${key} }`);
      lines.push(`add element ${I} ${map} { ${key} : jump ${chain} }`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export const elementKey = (map: string, key: string) => `${map} ${key}`;

/** What the tables hold that belongs to ports starting with a prefix, as nft -j lists them. */
export interface Installed {
  chains: { family: 'bridge' | 'inet'; name: string }[];
  elements: { family: 'bridge' | 'inet'; map: string; key: string; target: string }[];
}

/** The transaction that removes every chain (and map element jumping to one) of the given ports. */
export function removalRuleset(installed: Installed, portPrefix: string): string {
  const lines: string[] = [];
  for (const e of installed.elements)
    if (e.target.startsWith(portPrefix))
      lines.push(`delete element ${e.family} ${TABLE} ${e.map} { ${e.key} }`);
  for (const c of installed.chains)
    if (c.name.startsWith(portPrefix) && /_[sei]$/.test(c.name))
      lines.push(`delete chain ${c.family} ${TABLE} ${c.name}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

interface NftObject {
  chain?: { table: string; name: string };
  map?: { table: string; name: string; elem?: [unknown, { jump?: { target: string } }][] };
}
type NftJson = { nftables: NftObject[] };

function keyText(key: unknown): string {
  if (typeof key === 'string') return /^\d{1,3}(\.\d{1,3}){3}$/.test(key) ? key : `"${key}"`;
  if (key && typeof key === 'object' && 'concat' in key)
    return (key as { concat: unknown[] }).concat.map(keyText).join(' . ');
  return String(key);
}

/** Parses `nft -j list table` output of our tables. */
export function parseInstalled(family: 'bridge' | 'inet', json: NftJson, into: Installed): void {
  for (const o of json.nftables) {
    if (o.chain && o.chain.table === TABLE) into.chains.push({ family, name: o.chain.name });
    if (o.map && o.map.table === TABLE)
      for (const [key, value] of o.map.elem ?? [])
        if (value?.jump)
          into.elements.push({ family, map: o.map.name, key: keyText(key), target: value.jump.target });
  }
}

export async function installed(): Promise<Installed> {
  const into: Installed = { chains: [], elements: [] };
  for (const family of ['bridge', 'inet'] as const) {
    const out = await run('nft', ['-j', 'list', 'table', family, TABLE]).catch(() => '');
    if (out) parseInstalled(family, JSON.parse(out) as NftJson, into);
  }
  return into;
}

/**
 * Applies and removes per-VM filtering, one transaction at a time: nft transactions are atomic,
 * but a removal computed from a listing must not interleave with another change.
 */
export class SecurityFilter {
  private queue: Promise<unknown> = Promise.resolve();

  private serialized<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op, op);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** Installs the filtering of the given NICs, replacing what they had. */
  apply(nics: NicFilter[]): Promise<void> {
    if (!nics.length) return Promise.resolve();
    return this.serialized(async () => {
      const have = await installed();
      const present = new Set(
        have.elements.filter((e) => e.family === 'inet').map((e) => elementKey(e.map, e.key)),
      );
      await runWithInput('nft', ['-f', '-'], nicRuleset(nics, present));
    });
  }

  /** Drops our tables when no port has chains left in them (the host carries no filtered NIC). */
  dropIfUnused(): Promise<void> {
    return this.serialized(async () => {
      const have = await installed();
      if (have.chains.some((c) => !BASE_CHAINS.includes(c.name))) return;
      for (const family of ['bridge', 'inet'])
        await run('nft', ['delete', 'table', family, TABLE]).catch(() => undefined);
    });
  }

  /** Removes every rule of the ports whose names start with `portPrefix`, except those in `keep`. */
  remove(portPrefix: string, keep: string[] = []): Promise<void> {
    return this.serialized(async () => {
      const have = await installed();
      const kept = (name: string) => keep.some((k) => name.startsWith(`${k}_`));
      have.chains = have.chains.filter((c) => !kept(c.name));
      have.elements = have.elements.filter((e) => !kept(e.target));
      const script = removalRuleset(have, portPrefix);
      if (script) await runWithInput('nft', ['-f', '-'], script);
    });
  }
}
