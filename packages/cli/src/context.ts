/**
 * What every nimbo command works with: the global flags, the config file, and per-profile
 * connections and API catalogs. The interactive shell keeps one `Shared` for its whole life so that
 * logins and API lists are reused between lines, and derives a Context per line for the flags
 * typed on that line.
 */
import { ApiCatalog } from './apis.ts';
import {
  ConfigFile,
  checkOutputFormat,
  defaultConfigPath,
  type OutputFormat,
  type Profile,
} from './config.ts';
import { Connection } from './connection.ts';

export interface GlobalFlags {
  config?: string;
  profile?: string;
  output?: string;
  async?: boolean;
}

/** Stops waiting on Ctrl-C: registers `onInterrupt` and returns a function that unregisters it. */
export type InterruptSource = (onInterrupt: () => void) => () => void;

export const processInterrupts: InterruptSource = (onInterrupt) => {
  process.on('SIGINT', onInterrupt);
  return () => process.off('SIGINT', onInterrupt);
};

export class Shared {
  readonly connections = new Map<string, Connection>();
  readonly catalogs = new Map<string, ApiCatalog>();
  /** --profile given when the shell started; `set profile` in the shell clears it. */
  profileFlag?: string;
  interrupts: InterruptSource = processInterrupts;
  /** The exit status of a shell fed from a pipe: that of its last failed line. */
  shellStatus = 0;

  constructor(
    readonly env: NodeJS.ProcessEnv = process.env,
    readonly stdout: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
    readonly stderr: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr,
  ) {}
}

export class Context {
  constructor(
    readonly flags: GlobalFlags,
    readonly shared: Shared = new Shared(),
  ) {}

  /** A context for one shell line: that line's flags over the shell's. */
  derive(flags: GlobalFlags): Context {
    const defined = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
    return new Context({ ...this.flags, profile: this.shared.profileFlag, ...defined }, this.shared);
  }

  get env(): NodeJS.ProcessEnv {
    return this.shared.env;
  }

  get out(): NodeJS.WritableStream & { isTTY?: boolean } {
    return this.shared.stdout;
  }

  get err(): NodeJS.WritableStream & { isTTY?: boolean } {
    return this.shared.stderr;
  }

  /** The config file as it is on disk now (another nimbo may have changed it). */
  config(): ConfigFile {
    return new ConfigFile(this.flags.config || defaultConfigPath(this.env));
  }

  profileName(): string {
    return this.config().currentProfileName(this.flags.profile, this.env);
  }

  profile(): Profile {
    const config = this.config();
    return config.profile(config.currentProfileName(this.flags.profile, this.env), this.env);
  }

  outputFormat(): OutputFormat {
    return this.flags.output ? checkOutputFormat(this.flags.output) : this.profile().output;
  }

  connection(): Connection {
    const profile = this.profile();
    const key = JSON.stringify(profile);
    let conn = this.shared.connections.get(key);
    if (!conn) {
      conn = new Connection(profile, this.config().sessionPath(profile.name));
      this.shared.connections.set(key, conn);
    }
    return conn;
  }

  /** The cached API list of the current profile, if it has been synced. */
  catalog(): ApiCatalog | undefined {
    const name = this.profileName();
    let catalog = this.shared.catalogs.get(name);
    if (!catalog) {
      catalog = ApiCatalog.load(this.config().cachePath(name));
      if (catalog) this.shared.catalogs.set(name, catalog);
    }
    return catalog;
  }

  /** Calls listApis and caches the result for the current profile. */
  async sync(): Promise<ApiCatalog> {
    const conn = this.connection();
    const response = await conn.request<{ api?: [] }>('listApis');
    const catalog = ApiCatalog.fromListApis(response, conn.url);
    catalog.save(this.config().cachePath(conn.profile.name));
    this.shared.catalogs.set(conn.profile.name, catalog);
    return catalog;
  }

  /** The API list, synced first if this profile has none yet, as a first run would need. */
  async ensureCatalog(): Promise<ApiCatalog> {
    return this.catalog() ?? (await this.sync());
  }
}
