/**
 * Global settings (CloudStack's "configuration"): typed definitions declared by each capability,
 * values kept in the database and cached in memory. Servers sharing a database pick up each
 * other's changes within SETTINGS_REFRESH_MS.
 */
import type { Store } from '../db/connection.ts';
import { invalidParameter } from '../errors.ts';

export type SettingType = 'Boolean' | 'Integer' | 'Long' | 'Float' | 'String';
export type SettingScope =
  | 'global'
  | 'zone'
  | 'cluster'
  | 'domain'
  | 'account'
  | 'storagepool'
  | 'imagestore';

export interface SettingDef<T = unknown> {
  name: string;
  category: string;
  type: SettingType;
  defaultValue: T;
  description: string;
  /** Scopes beyond global at which the setting may be overridden. */
  scopes?: SettingScope[];
  /** Whether a change takes effect without a restart (all ours do unless marked). */
  isDynamic?: boolean;
  min?: number;
  max?: number;
  /** For String settings with a fixed set of values. */
  options?: string[];
  /** Further checks of a new value (e.g. that a regular expression compiles); throws a 431. */
  validate?: (value: string) => void;
  /**
   * A credential (upstream's "Secure" category): stored sealed with the server key like other
   * secrets at rest, never shown by listConfigurations nor written to events. Readers open it with
   * app.secrets.decrypt.
   */
  secret?: boolean;
}

const definitions = new Map<string, SettingDef>();

export function defineSetting<T extends boolean | number | string>(def: SettingDef<T>): SettingDef<T> {
  if (definitions.has(def.name)) throw new Error(`setting ${def.name} defined twice`);
  definitions.set(def.name, def as SettingDef);
  return def;
}

export function settingDefinitions(): SettingDef[] {
  return [...definitions.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export function settingDefinition(name: string): SettingDef | undefined {
  return definitions.get(name);
}

/** Parses a stored or requested value into the setting's type, or says why it can't be. */
export function parseSettingValue(def: SettingDef, raw: string): boolean | number | string {
  const v = raw.trim();
  switch (def.type) {
    case 'Boolean':
      if (!/^(true|false)$/i.test(v))
        throw invalidParameter(`Please enter either 'true' or 'false' for ${def.name}`);
      return v.toLowerCase() === 'true';
    case 'Integer':
    case 'Long':
    case 'Float': {
      const n = Number(v);
      const ok = v !== '' && Number.isFinite(n) && (def.type === 'Float' || Number.isInteger(n));
      if (!ok)
        throw invalidParameter(
          `Value for ${def.name} must be ${def.type === 'Float' ? 'a number' : 'an integer'}`,
        );
      if (def.min !== undefined && n < def.min)
        throw invalidParameter(`Value for ${def.name} must be at least ${def.min}`);
      if (def.max !== undefined && n > def.max)
        throw invalidParameter(`Value for ${def.name} must be at most ${def.max}`);
      return n;
    }
    default:
      if (def.options && !def.options.includes(v)) {
        throw invalidParameter(`Value for ${def.name} must be one of ${def.options.join(', ')}`);
      }
      def.validate?.(raw);
      return raw;
  }
}

/** How often a server reads the settings again: other servers' changes reach it within this. */
export const SETTINGS_REFRESH_MS = 5000;

export class Settings {
  private global = new Map<string, string | null>();
  private scoped = new Map<string, string>();
  private loadedAt = 0;
  private timer?: NodeJS.Timeout;
  private loadedText = '';
  private changes = 0;

  constructor(private readonly store: Store) {}

  async load(): Promise<void> {
    const [rows, scopedRows] = await Promise.all([
      this.store.db.selectFrom('configuration').select(['name', 'value']).execute(),
      this.store.db
        .selectFrom('scoped_configuration')
        .select(['name', 'scope', 'scope_id', 'value'])
        .execute(),
    ]);
    this.global = new Map(rows.map((r) => [r.name, r.value]));
    this.scoped = new Map(scopedRows.map((r) => [`${r.name}|${r.scope}|${r.scope_id}`, r.value]));
    this.loadedAt = Date.now();
    // Counted only when a value differs: the refresh reads every 5 s, and what is kept on the
    // strength of `version` (rendered lists, http/response-cache.ts) should outlive a refresh
    // that changed nothing.
    const text = JSON.stringify([[...this.global].sort(), [...this.scoped].sort()]);
    if (text !== this.loadedText) {
      this.loadedText = text;
      this.changes++;
    }
  }

  /** Grows whenever a load finds any value changed: answers computed under another version may differ. */
  get version(): number {
    return this.changes;
  }

  /** Keeps the cache fresh for changes made by other management servers. */
  startRefresh(): void {
    this.timer = setInterval(() => {
      this.load().catch(() => undefined);
    }, SETTINGS_REFRESH_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  get<T>(def: SettingDef<T>): T {
    const raw = this.global.get(def.name);
    if (raw === undefined || raw === null) return def.defaultValue;
    try {
      return parseSettingValue(def as SettingDef, raw) as T;
    } catch {
      return def.defaultValue;
    }
  }

  /** The value at a scope (e.g. a cluster), falling back to the global value. */
  at<T>(def: SettingDef<T>, scope: SettingScope, scopeId: number): T {
    const raw = this.scoped.get(`${def.name}|${scope}|${scopeId}`);
    if (raw === undefined) return this.get(def);
    return parseSettingValue(def as SettingDef, raw) as T;
  }

  /** Every value set for a setting at any narrower scope (e.g. all cluster overrides). */
  scopedValues(name: string): string[] {
    const out: string[] = [];
    for (const [key, value] of this.scoped) if (key.startsWith(`${name}|`)) out.push(value);
    return out;
  }

  /** The stored string at a scope, if one is set there (for listConfigurations). */
  rawAt(name: string, scope: SettingScope, scopeId: number): string | undefined {
    return this.scoped.get(`${name}|${scope}|${scopeId}`);
  }

  rawGlobal(name: string): string | null | undefined {
    return this.global.get(name);
  }

  async set(
    name: string,
    value: string | null,
    now: number,
    scope?: { scope: SettingScope; id: number },
  ): Promise<void> {
    const db = this.store.db;
    if (scope) {
      await db.transaction().execute(async (tx) => {
        await tx
          .deleteFrom('scoped_configuration')
          .where('name', '=', name)
          .where('scope', '=', scope.scope)
          .where('scope_id', '=', scope.id)
          .execute();
        if (value !== null) {
          await tx
            .insertInto('scoped_configuration')
            .values({ name, scope: scope.scope, scope_id: scope.id, value })
            .execute();
        }
      });
    } else {
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('configuration').where('name', '=', name).execute();
        await tx.insertInto('configuration').values({ name, value, updated: now }).execute();
      });
    }
    await this.load();
  }

  get ageMs(): number {
    return Date.now() - this.loadedAt;
  }
}
