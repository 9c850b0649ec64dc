/**
 * What a router holds of its VMs, condensed so that the server and a host can compare it without
 * sending it: each entry hashes to 64 bits (two 32-bit halves), and a router's digest is the entry
 * count and the sums of those halves (modulo 2^32), so it does not depend on the entries' order.
 * Passwords are left out: a router keeps a password after the guest fetched it, while the server
 * only sends the ones still waiting to be handed over. The hash needs no secrecy, only a negligible
 * chance that two different entries collide (a missed difference); it is cyrb53's mixing, in pure
 * TypeScript so both sides compute it the same way.
 */
import type { RouterVmEntry } from './commands.ts';

/** The fields of an entry that the digest covers, in a fixed order. */
function canonical(e: RouterVmEntry): string {
  return JSON.stringify([
    e.mac.toLowerCase(),
    e.ip,
    e.hostname,
    e.instanceId,
    e.vmName,
    e.userData ?? '',
    e.publicKeys ?? [],
    e.serviceOffering ?? '',
    e.availabilityZone ?? '',
    e.defaultGateway !== false,
  ]);
}

function halves(text: string): [number, number] {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/** One entry's hash, 16 hex digits. */
export function routerEntryHash(e: RouterVmEntry): string {
  const [a, b] = halves(canonical(e));
  return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

/** A digest built entry by entry (a server reading a big network's entries page by page). */
export class RouterDigest {
  private count = 0;
  private a = 0;
  private b = 0;

  add(e: RouterVmEntry): void {
    const [x, y] = halves(canonical(e));
    this.count++;
    this.a = (this.a + x) >>> 0;
    this.b = (this.b + y) >>> 0;
  }

  /** `<count>:<sum of high halves>:<sum of low halves>`, the sums modulo 2^32 in hex. */
  toString(): string {
    return `${this.count}:${this.a.toString(16)}:${this.b.toString(16)}`;
  }
}

/** The digest of a router's entries. */
export function routerEntriesDigest(entries: readonly RouterVmEntry[]): string {
  const d = new RouterDigest();
  for (const e of entries) d.add(e);
  return d.toString();
}
