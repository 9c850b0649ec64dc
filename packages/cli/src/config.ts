/**
 * nimbo's configuration: an ini file (~/.nimbo/config, or --config / NIMBO_CONFIG) whose top level
 * names the current profile and whose sections are profiles, as CloudMonkey's ~/.cmk/config.
 * Beside it live the per-profile API caches, saved login sessions and the shell history.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import ini from 'ini';

export const OUTPUT_FORMATS = ['json', 'table', 'column', 'csv', 'text'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const PROFILE_KEYS = [
  'url',
  'apikey',
  'secretkey',
  'username',
  'password',
  'domain',
  'output',
  'timeout',
] as const;
export type ProfileKey = (typeof PROFILE_KEYS)[number];

export interface Profile {
  name: string;
  url?: string;
  apikey?: string;
  secretkey?: string;
  username?: string;
  password?: string;
  domain: string;
  output: OutputFormat;
  /** Seconds to wait for one HTTP request and for an async job. */
  timeout: number;
}

/** What a new profile starts with: the demo cloud that `npm start` runs, as cmk's `localcloud`. */
export const PROFILE_TEMPLATE: Record<ProfileKey, string> = {
  url: 'http://localhost:8080/client/api',
  apikey: '',
  secretkey: '',
  username: 'admin',
  password: 'password',
  domain: '/',
  output: 'json',
  timeout: '1800',
};

export const DEFAULT_PROFILE = 'default';

const ENV_OVERRIDES: Record<string, ProfileKey> = {
  NIMBO_URL: 'url',
  NIMBO_APIKEY: 'apikey',
  NIMBO_SECRETKEY: 'secretkey',
  NIMBO_USERNAME: 'username',
  NIMBO_PASSWORD: 'password',
  NIMBO_DOMAIN: 'domain',
  NIMBO_OUTPUT: 'output',
  NIMBO_TIMEOUT: 'timeout',
};

export class UsageError extends Error {}

export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.NIMBO_CONFIG || join(homedir(), '.nimbo', 'config');
}

export function checkOutputFormat(value: string): OutputFormat {
  if (!(OUTPUT_FORMATS as readonly string[]).includes(value))
    throw new UsageError(`unknown output format ${value}; use one of ${OUTPUT_FORMATS.join(', ')}`);
  return value as OutputFormat;
}

function checkProfileName(name: string): string {
  // Dots would nest ini sections and other characters make awkward file names for the caches.
  if (!/^[A-Za-z0-9_-]+$/.test(name))
    throw new UsageError(`invalid profile name ${name}: use letters, digits, - and _`);
  return name;
}

type IniData = Record<string, unknown>;

export class ConfigFile {
  private data: IniData = {};

  constructor(readonly path: string) {
    if (existsSync(path)) this.data = ini.parse(readFileSync(path, 'utf8'));
  }

  get dir(): string {
    return dirname(this.path);
  }

  get historyPath(): string {
    return join(this.dir, 'history');
  }

  cachePath(profile: string): string {
    return join(this.dir, 'cache', `${checkProfileName(profile)}.json`);
  }

  sessionPath(profile: string): string {
    return join(this.dir, 'sessions', `${checkProfileName(profile)}.json`);
  }

  profileNames(): string[] {
    const names = Object.keys(this.data).filter((k) => typeof this.data[k] === 'object');
    const current = typeof this.data.profile === 'string' ? this.data.profile : DEFAULT_PROFILE;
    return [...new Set([...names, current])].sort();
  }

  /** The profile in use: --profile, then NIMBO_PROFILE, then the file's `profile`, then "default". */
  currentProfileName(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
    const fromFile = this.data.profile === undefined ? undefined : String(this.data.profile);
    return checkProfileName(flag || env.NIMBO_PROFILE || fromFile || DEFAULT_PROFILE);
  }

  private section(name: string): Record<string, string> | undefined {
    const s = this.data[name];
    if (s === undefined || typeof s !== 'object' || s === null) return undefined;
    // ini turns "true"/"false"/"null" into non-strings; every profile value is a string.
    return Object.fromEntries(
      Object.entries(s as Record<string, unknown>).map(([k, v]) => [k, v === null ? '' : String(v)]),
    );
  }

  /** The profile's settings: the file's section (or the template if it has none), then the environment. */
  profile(name: string, env: NodeJS.ProcessEnv = process.env): Profile {
    const section = this.section(name);
    if (!section && name !== DEFAULT_PROFILE && this.data.profile !== name)
      throw new UsageError(
        `no profile named ${name} in ${this.path}; create it with: nimbo set profile ${name}`,
      );
    const values: Record<string, string> = { ...(section ?? PROFILE_TEMPLATE) };
    for (const [variable, key] of Object.entries(ENV_OVERRIDES)) {
      const v = env[variable];
      if (v !== undefined && v !== '') values[key] = v;
    }
    const timeout = Number(values.timeout || PROFILE_TEMPLATE.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0)
      throw new UsageError(`invalid timeout ${values.timeout} in profile ${name}`);
    return {
      name,
      url: values.url || undefined,
      apikey: values.apikey || undefined,
      secretkey: values.secretkey || undefined,
      username: values.username || undefined,
      password: values.password || undefined,
      domain: values.domain || '/',
      output: checkOutputFormat(values.output || 'json'),
      timeout,
    };
  }

  /** Makes `name` the current profile, creating it from the template if it is new. */
  selectProfile(name: string): void {
    checkProfileName(name);
    if (!this.section(name)) this.data[name] = { ...PROFILE_TEMPLATE };
    this.data.profile = name;
  }

  setProfileValue(profile: string, key: string, value: string): void {
    if (!(PROFILE_KEYS as readonly string[]).includes(key))
      throw new UsageError(`unknown setting ${key}; settable: profile, ${PROFILE_KEYS.join(', ')}`);
    if (key === 'output') checkOutputFormat(value);
    if (key === 'timeout' && !(Number(value) > 0)) throw new UsageError('timeout must be a positive number');
    const section = this.section(checkProfileName(profile)) ?? { ...PROFILE_TEMPLATE };
    section[key] = value;
    this.data[profile] = section;
  }

  /** Writes the file atomically and readable by its owner only: it holds keys and passwords. */
  save(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const { profile, ...sections } = this.data;
    const top = profile === undefined ? '' : ini.stringify({ profile: String(profile) });
    const body = Object.entries(sections)
      .filter(([, v]) => typeof v === 'object' && v !== null)
      .map(([name, v]) => ini.stringify(v, { section: name }))
      .join('\n');
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, top + (top && body ? '\n' : '') + body, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
  }
}

/** Writes a JSON file beside the config (caches, sessions), readable by its owner only. */
export function writePrivateJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value), { mode: 0o600 });
  renameSync(tmp, path);
}

export function readJson<T>(path: string): T | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
