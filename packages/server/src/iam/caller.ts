/**
 * Resolves who is calling (API key → user and secret, then user, account, domain, role) and
 * whether their role may call a command. These answers are cached for a moment because every API
 * call needs them; changes made through this server's API drop the cache at once, changes made
 * by another management server sharing the database show here within CACHE_MS (docs/iam.md).
 */
import { createSecretKey, type KeyObject } from 'node:crypto';
import type { App, Caller } from '../context.ts';
import type { RoleKind } from '../registry/catalog.ts';
import type { Command } from '../registry/command.ts';

const CACHE_MS = 2000;

const ROLE_KINDS: Record<string, RoleKind> = {
  Admin: 'admin',
  ResourceAdmin: 'resourceadmin',
  DomainAdmin: 'domainadmin',
  User: 'user',
};

export function roleKindOf(roleType: string): RoleKind {
  return ROLE_KINDS[roleType] ?? 'user';
}

interface RoleRule {
  pattern: RegExp;
  allow: boolean;
}

const callers = new Map<number, { caller: Caller; at: number }>();
const rules = new Map<number, { rules: RoleRule[]; at: number }>();
/** API key → its user and the decrypted secret key (undefined: no such key, also cached). */
const keys = new Map<string, { owner: KeyOwner | undefined; at: number }>();
/** Most API keys the cache holds; unknown keys are cached too, so a flood of them stays bounded. */
const MAX_KEYS = 10_000;

export interface KeyOwner {
  userId: number;
  /** The user's secret key in clear (it is stored encrypted). */
  secret: string;
  /** The same secret as an HMAC key: imported once, not on every signature check. */
  hmacKey: KeyObject;
  /** The stored (encrypted) form, to skip decrypting again when a refresh finds it unchanged. */
  sealed: string;
}

/**
 * Look-ups in flight, shared: when an entry runs out, every call arriving before its refresh is
 * back waits for that one refresh instead of making its own (16 clients made 16 sets of queries
 * every CACHE_MS). A forget starts a new generation: a refresh begun before it is neither shared
 * with later calls nor stored.
 */
const loading = new Map<string, Promise<unknown>>();
let generation = 0;

function shared<T>(key: string, load: (current: () => boolean) => Promise<T>): Promise<T> {
  const inFlight = loading.get(key);
  if (inFlight) return inFlight as Promise<T>;
  const started = generation;
  const p = load(() => generation === started).finally(() => {
    if (loading.get(key) === p) loading.delete(key);
  });
  loading.set(key, p);
  return p;
}

export function forgetCachedIdentity(): void {
  callers.clear();
  rules.clear();
  keys.clear();
  loading.clear();
  generation++;
}

/**
 * The user an API key belongs to and their secret key, or undefined for an unknown key or a user
 * without a secret. One indexed look-up and one AES-GCM decryption per key per CACHE_MS instead of
 * per call. Regenerating or replacing keys, disabling, locking or deleting a user and disabling or
 * deleting an account call forgetCachedIdentity(); another server's change shows within CACHE_MS,
 * the same window as the cached caller below, which decides whether the user may call at all.
 */
export async function keyOwner(app: App, apiKey: string): Promise<KeyOwner | undefined> {
  const now = Date.now();
  const hit = keys.get(apiKey);
  if (hit && now - hit.at < CACHE_MS) return hit.owner;
  return shared(`key:${apiKey}`, (current) => loadKeyOwner(app, apiKey, hit, now, current));
}

function ownerOf(userId: number, secret: string, sealed: string): KeyOwner {
  return { userId, secret, hmacKey: createSecretKey(Buffer.from(secret, 'utf8')), sealed };
}

async function loadKeyOwner(
  app: App,
  apiKey: string,
  hit: { owner: KeyOwner | undefined } | undefined,
  now: number,
  current: () => boolean,
): Promise<KeyOwner | undefined> {
  const row = await app.store.db
    .selectFrom('users')
    .select(['id', 'secret_key'])
    .where('api_key', '=', apiKey)
    .executeTakeFirst();
  let owner: KeyOwner | undefined;
  if (row?.secret_key) {
    const same = hit?.owner && hit.owner.userId === row.id && hit.owner.sealed === row.secret_key;
    owner = same ? hit.owner : ownerOf(row.id, app.secrets.decrypt(row.secret_key), row.secret_key);
  }
  if (!current()) return owner;
  if (!keys.has(apiKey) && keys.size >= MAX_KEYS) keys.delete(keys.keys().next().value as string);
  keys.set(apiKey, { owner, at: now });
  return owner;
}

/** The enabled caller behind a user id, or undefined if the user, account or domain is unusable. */
export async function loadCaller(app: App, userId: number): Promise<Caller | undefined> {
  const now = Date.now();
  const hit = callers.get(userId);
  if (hit && now - hit.at < CACHE_MS) return hit.caller;
  return shared(`caller:${userId}`, (current) => readCaller(app, userId, now, current));
}

async function readCaller(
  app: App,
  userId: number,
  now: number,
  current: () => boolean,
): Promise<Caller | undefined> {
  const db = app.store.db;
  const user = await db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
  if (!user) return undefined;
  const account = await db
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', user.account_id)
    .executeTakeFirst();
  if (!account) return undefined;
  const [domain, role] = await Promise.all([
    db.selectFrom('domains').selectAll().where('id', '=', account.domain_id).executeTakeFirstOrThrow(),
    db.selectFrom('roles').selectAll().where('id', '=', account.role_id).executeTakeFirstOrThrow(),
  ]);
  const caller: Caller = { user, account, domain, role, roleKind: roleKindOf(role.type) };
  if (current()) callers.set(userId, { caller, at: now });
  return caller;
}

/** Whether a caller can log in or sign requests: user, account and domain must all be active. */
export function isActive(caller: Caller): boolean {
  return (
    caller.user.state === 'enabled' && caller.account.state === 'enabled' && caller.domain.state === 'Active'
  );
}

function wildcard(rule: string): RegExp {
  return new RegExp(`^${rule.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
}

async function roleRules(app: App, roleId: number): Promise<RoleRule[]> {
  const now = Date.now();
  const hit = rules.get(roleId);
  if (hit && now - hit.at < CACHE_MS) return hit.rules;
  const rows = await app.store.db
    .selectFrom('role_permissions')
    .select(['rule', 'permission'])
    .where('role_id', '=', roleId)
    .orderBy('sort_order')
    .execute();
  const list = rows.map((r) => ({ pattern: wildcard(r.rule), allow: r.permission === 'allow' }));
  rules.set(roleId, { rules: list, at: now });
  return list;
}

/**
 * CloudStack's dynamic role check: root admins may call anything; otherwise the role's rules are
 * tried in order and the first match decides; with no match, the command's default roles decide.
 */
export async function mayCall(app: App, caller: Caller, command: Command): Promise<boolean> {
  if (caller.roleKind === 'admin' && caller.account.type === 1) return true;
  for (const rule of await roleRules(app, caller.role.id)) {
    if (rule.pattern.test(command.name)) return rule.allow;
  }
  return command.allowedRoles.includes(caller.roleKind);
}
