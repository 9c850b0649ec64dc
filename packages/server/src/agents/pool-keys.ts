/**
 * The cephx keys of RBD primary storage pools join a command's payload only as it leaves for the
 * host's agent (AgentGateway.dispatch): callers name a pool without its key (poolLocation), so no
 * object the server logs, forwards to a peer or answers a client holds it. The key is kept sealed
 * in storage_pools.auth_secret (migration 0036) and unsealed here for the one message.
 */
import type { App } from '../context.ts';

interface RbdLocation {
  type: 'RBD';
  uuid: string;
  user?: string;
  secret?: string;
}

const MAX_DEPTH = 8;

function isKeyless(v: unknown): v is RbdLocation {
  const o = v as Partial<RbdLocation> | null;
  return (
    typeof o === 'object' &&
    o !== null &&
    o.type === 'RBD' &&
    typeof o.uuid === 'string' &&
    typeof o.user === 'string' &&
    o.secret === undefined
  );
}

/** The RBD pool locations of a payload that name a cephx user but carry no key. */
function keyless(v: unknown, out: Set<string>, depth = 0): void {
  if (depth > MAX_DEPTH || typeof v !== 'object' || v === null) return;
  if (isKeyless(v)) out.add(v.uuid);
  for (const child of Array.isArray(v) ? v : Object.values(v))
    if (typeof child === 'object' && child !== null) keyless(child, out, depth + 1);
}

/** A copy of the payload with each such location's key filled in. */
function filled(v: unknown, keys: Map<string, string>, depth = 0): unknown {
  if (depth > MAX_DEPTH || typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) return v.map((x) => filled(x, keys, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = filled(x, keys, depth + 1);
  if (isKeyless(v) && keys.has(v.uuid)) out.secret = keys.get(v.uuid);
  return out;
}

/** True when the payload names an RBD pool whose key it does not carry yet. */
export function needsPoolKeys(payload: unknown): boolean {
  const uuids = new Set<string>();
  keyless(payload, uuids);
  return uuids.size > 0;
}

/** The payload with the RBD pools' keys unsealed into it (pools without a stored key stay as they are). */
export async function withPoolKeys<T>(app: App, payload: T): Promise<T> {
  const uuids = new Set<string>();
  keyless(payload, uuids);
  if (uuids.size === 0) return payload;
  const rows = await app.store.db
    .selectFrom('storage_pools')
    .select(['uuid', 'auth_secret'])
    .where('uuid', 'in', [...uuids])
    .execute();
  const keys = new Map<string, string>();
  for (const r of rows) if (r.auth_secret) keys.set(r.uuid, app.secrets.decrypt(r.auth_secret));
  return keys.size === 0 ? payload : (filled(payload, keys) as T);
}

/** A pool not stored yet (createStoragePool measuring it) carries the key its URL gave. */
export function withGivenKey<T extends object>(location: T, secret: string | undefined): T {
  return secret === undefined ? location : { ...location, secret };
}
