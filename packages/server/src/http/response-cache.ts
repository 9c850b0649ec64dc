/**
 * Rendered answers of the big read-only lists, kept while nothing they could depend on changed.
 *
 * A page of 500 VMs costs the server ~16 ms of CPU (SQL, presenting, JSON) and is ~820 KB; 16
 * clients asking for the same page again and again (dashboards, pollers, the UI's refresh) made the
 * server, not the network, the limit. An answer is kept under everything it is computed from:
 *
 * - the command, its parameters (minus the credentials and signature, which differ per call), the
 *   response format and whether the XML carries the version attribute;
 * - who asks: user, account, domain and its path, role (the scope of what a caller sees);
 * - the origin the call came in on (answers may hold URLs back to the server);
 * - the database's data version (db/data-version.ts), read BEFORE the answer is computed, and the
 *   settings' version (settings/settings.ts).
 *
 * A kept answer is served only while both versions are what they were. Any transaction committed
 * anywhere (this server, another management server on the same database, a tool) changes the
 * data version, so a list after a write always shows the write; it also means a busy cloud,
 * where something commits every few milliseconds, keeps little. The version is read before the
 * answer's queries, so a commit that lands while they run makes the kept copy stale at once
 * rather than hiding the commit. MySQL/MariaDB have no such version (data-version.ts): nothing is
 * kept there.
 *
 * Only commands whose answer is a function of the database, the settings, the caller and the
 * parameters are listed in CACHEABLE: not one that shows agent connections, job runners or any
 * other state held in a server's memory. Requests for an answer already being computed for the
 * same key and data version wait for it instead of computing it again (16 clients arriving after
 * a write cost one page, not 16).
 */
import type { App, Caller } from '../context.ts';
import { type DataVersion, dataVersionOf } from '../db/data-version.ts';
import type { RawValue } from '../registry/params.ts';
import { API_LIST_CACHE_SIZE } from '../settings/core-settings.ts';

/** Commands whose answers may be kept: read-only, computed from the database alone. */
const CACHEABLE = new Set(['listVirtualMachines']);

/** Parameters that differ from call to call without changing the answer. */
const NOT_KEYED = new Set(['signature', 'apikey', 'sessionkey', 'expires', 'signatureversion', 'response']);

/** An answer larger than this share of the cache is not kept (pagesize=-1 over a big cloud). */
const LARGEST_SHARE = 4;

const MIB = 1024 * 1024;

interface Entry {
  version: string;
  body: Buffer;
}

/** What a request that found nothing kept must hand back once its answer is rendered. */
export interface CacheTicket {
  /** The rendered answer when it succeeded (status 200), or undefined: waiters compute their own. */
  fill(text: string | undefined): void;
}

export type CacheLookup = { body: Buffer } | { ticket: CacheTicket } | undefined;

export interface KeyParts {
  command: string;
  caller: Caller;
  params: Map<string, RawValue>;
  format: string;
  withVersion: boolean;
  origin: string;
}

export class ResponseCache {
  /** Insertion order is recency: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  /** Answers being computed, by key and data version. */
  private readonly inFlight = new Map<string, Promise<Buffer | undefined>>();
  private readonly dataVersion: DataVersion | undefined;
  hits = 0;
  misses = 0;

  constructor(private readonly app: Pick<App, 'store' | 'settings'>) {
    this.dataVersion = dataVersionOf(app.store);
  }

  /** The kept answer, or a ticket to fill; undefined when this call's answer is never kept. */
  async lookup(parts: KeyParts): Promise<CacheLookup> {
    const limit = this.app.settings.get(API_LIST_CACHE_SIZE) * MIB;
    if (limit <= 0 || !this.dataVersion || !CACHEABLE.has(parts.command)) return undefined;
    if (this.bytes > limit) this.evict(limit);
    const key = keyOf(parts);
    const version = `${await this.dataVersion()}|${this.app.settings.version}`;
    const entry = this.entries.get(key);
    if (entry && entry.version === version) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      this.hits++;
      return { body: entry.body };
    }
    this.misses++;
    const flight = `${version}\u0000${key}`;
    const pending = this.inFlight.get(flight);
    if (pending) {
      const body = await pending;
      // The one computing it failed: compute this answer without keeping it.
      return body ? { body } : undefined;
    }
    let settle: (body: Buffer | undefined) => void = () => undefined;
    this.inFlight.set(
      flight,
      new Promise((resolve) => {
        settle = resolve;
      }),
    );
    let done = false;
    return {
      ticket: {
        fill: (text) => {
          if (done) return;
          done = true;
          this.inFlight.delete(flight);
          const body = text === undefined ? undefined : Buffer.from(text);
          if (body) this.keep(key, { version, body }, limit);
          settle(body);
        },
      },
    };
  }

  private keep(key: string, entry: Entry, limit: number): void {
    const size = sizeOf(key, entry);
    if (size > limit / LARGEST_SHARE) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= sizeOf(key, old);
    }
    this.entries.set(key, entry);
    this.bytes += size;
    this.evict(limit);
  }

  private evict(limit: number): void {
    for (const [key, entry] of this.entries) {
      if (this.bytes <= limit) break;
      this.entries.delete(key);
      this.bytes -= sizeOf(key, entry);
    }
  }
}

function sizeOf(key: string, entry: Entry): number {
  return entry.body.length + 2 * (key.length + entry.version.length);
}

function keyOf(p: KeyParts): string {
  const { user, account, domain, role, roleKind } = p.caller;
  const params: [string, RawValue][] = [];
  for (const [name, value] of p.params) if (!NOT_KEYED.has(name)) params.push([name, value]);
  params.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return JSON.stringify([
    p.command,
    p.format,
    p.withVersion,
    p.origin,
    user.id,
    account.id,
    domain.id,
    domain.path,
    role.id,
    roleKind,
    params,
  ]);
}
