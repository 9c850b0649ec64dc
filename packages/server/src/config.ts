/**
 * Server configuration: defaults, then an optional JSON config file, then environment variables.
 * Everything an operator can set is listed in docs/configuration.md; keep the two in step.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface ServerConfig {
  /** HTTP port for the API, the UI and the console proxy. */
  port: number;
  /** Address the HTTP server binds to. */
  host: string;
  /** WebSocket port that host agents connect to. */
  agentPort: number;
  /**
   * A port of its own for the EC2-compatible API (at / and /awsapi), besides /awsapi on `port`;
   * unset: none (0 picks a free one, for tests). Bound to `host`, with `port`'s TLS.
   */
  ec2Port?: number;
  /** Directory for the embedded database, the server key and local storage. */
  dataDir: string;
  /** sqlite:<path> | postgres://... | mysql://... ; default is a SQLite file in dataDir. */
  databaseUrl: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** File holding the key that encrypts API secret keys at rest; default <dataDir>/server.key. */
  secretKeyFile: string;
  /**
   * The cloud's key itself (64 hex digits), for operators who distribute it as a variable rather
   * than a file; wins over secretKeyFile. Every management server of a cloud has the same key.
   */
  secretKey?: string;
  /** Name this management server reports (defaults to the host name). */
  serverName?: string;
  /** Whether to create the ready local zone on first start. */
  seedLocalZone: boolean;
  /**
   * What the local zone's host is: `simulator` (default), `kvm` (this machine as a real KVM host)
   * or `lxc` (this machine as an LXC host: system containers).
   */
  hypervisor: 'simulator' | 'kvm' | 'lxc';
  /**
   * The kind of local zone created on first start: `basic` (default; one shared network, security
   * groups) or `advanced` (isolated networks, a VXLAN range, public addresses 203.0.113.10-100).
   */
  zone: 'basic' | 'advanced';
  /** KVM or LXC local zone: the in-process agent's state (VM and container directories, console logs). */
  kvmStateDir: string;
  /** KVM or LXC local zone: primary/ and secondary/ storage directories live here. */
  kvmStorageDir: string;
  /** KVM local zone: the image registered as its ready template (built by npm run setup:host). */
  kvmTemplate: string;
  /**
   * How this machine reaches NFS, a kernel mount (default) or user space (libnfs): the KVM local
   * zone's host for NFS pools, as the agent's --nfs, and this server for NFS image stores added
   * while it is set (storage/nfs-stores.ts; docs/storage.md).
   */
  kvmNfs?: 'kernel' | 'libnfs';
  /** LXC local zone: the root file system tarball registered as its ready template (npm run setup:host). */
  lxcTemplate: string;
  /**
   * A folder with another static web UI (such as the Apache CloudStack UI's release build: an
   * index.html and its assets) served at /client/ instead of ours; unset: our UI.
   */
  uiDir?: string;
  /**
   * The address the other management servers of the cloud reach this one at (its agent port):
   * commands for hosts held here and console sessions are forwarded to it. Unset: `host`, or the
   * machine's first non-loopback IPv4 address when `host` is 0.0.0.0 (agents/peers.ts).
   */
  internalAddress?: string;
  /** PEM certificate and key files: when both are set, agents connect with wss:// (TLS). */
  agentTlsCert?: string;
  agentTlsKey?: string;
  /**
   * Behind a reverse proxy (TLS terminator, load balancer): the client's address, scheme and host
   * come from X-Forwarded-For/-Proto/-Host, so console URLs and messages name what the browser used.
   */
  trustProxy: boolean;
  /**
   * PEM certificate (chain) and private key files: when both are set the API, the UI and the
   * console proxy are served over HTTPS on `port`, and plain HTTP is not offered at all.
   */
  tlsCert?: string;
  tlsKey?: string;
  /** Largest request body in bytes (upstream server.properties request.content.size); larger is 413. */
  requestContentSize: number;
  /** Largest request line plus headers in bytes; larger is 431 (Node's default is 16 KiB). */
  maxHeaderSize: number;
  /** Milliseconds a client has to send the request line and headers (cuts off slowloris). */
  headersTimeout: number;
  /** Milliseconds a client has to send the whole request, body included. */
  requestTimeout: number;
  /** Milliseconds an idle keep-alive connection stays open after a response. */
  keepAliveTimeout: number;
  /**
   * AMQP URL of the RabbitMQ broker events are published to (amqp://user:pass@host:5672/vhost);
   * unset: no event bus. Every management server sharing a database should be given the same.
   */
  eventBusUrl?: string;
  /** The topic exchange events are published to (upstream's usual name: cloudstack-events). */
  eventBusExchange: string;
  /**
   * Milliseconds: another management server whose heartbeat is this fresh is taken to be running,
   * and a schema upgrade refuses to start under it (db/upgrade.ts). Heartbeats come every 10 s.
   */
  upgradeLiveWindow: number;
  /** SQLite: how many copies of the database taken before schema upgrades are kept (the newest). */
  upgradeBackupsKept: number;
}

const ENV: Record<string, keyof ServerConfig> = {
  NIMBOSTACK_PORT: 'port',
  NIMBOSTACK_HOST: 'host',
  NIMBOSTACK_AGENT_PORT: 'agentPort',
  NIMBOSTACK_EC2_PORT: 'ec2Port',
  NIMBOSTACK_DATA: 'dataDir',
  DATABASE_URL: 'databaseUrl',
  NIMBOSTACK_LOG_LEVEL: 'logLevel',
  NIMBOSTACK_SECRET_KEY_FILE: 'secretKeyFile',
  NIMBOSTACK_SECRET_KEY: 'secretKey',
  NIMBOSTACK_SERVER_NAME: 'serverName',
  NIMBOSTACK_SEED_LOCAL_ZONE: 'seedLocalZone',
  NIMBOSTACK_HYPERVISOR: 'hypervisor',
  NIMBOSTACK_ZONE: 'zone',
  NIMBOSTACK_KVM_STATE_DIR: 'kvmStateDir',
  NIMBOSTACK_KVM_STORAGE_DIR: 'kvmStorageDir',
  NIMBOSTACK_KVM_TEMPLATE: 'kvmTemplate',
  NIMBOSTACK_KVM_NFS: 'kvmNfs',
  NIMBOSTACK_LXC_TEMPLATE: 'lxcTemplate',
  NIMBOSTACK_UI_DIR: 'uiDir',
  NIMBOSTACK_INTERNAL_ADDRESS: 'internalAddress',
  NIMBOSTACK_AGENT_TLS_CERT: 'agentTlsCert',
  NIMBOSTACK_AGENT_TLS_KEY: 'agentTlsKey',
  NIMBOSTACK_TRUST_PROXY: 'trustProxy',
  NIMBOSTACK_TLS_CERT: 'tlsCert',
  NIMBOSTACK_TLS_KEY: 'tlsKey',
  NIMBOSTACK_REQUEST_CONTENT_SIZE: 'requestContentSize',
  NIMBOSTACK_MAX_HEADER_SIZE: 'maxHeaderSize',
  NIMBOSTACK_HEADERS_TIMEOUT: 'headersTimeout',
  NIMBOSTACK_REQUEST_TIMEOUT: 'requestTimeout',
  NIMBOSTACK_KEEP_ALIVE_TIMEOUT: 'keepAliveTimeout',
  NIMBOSTACK_EVENT_BUS_URL: 'eventBusUrl',
  NIMBOSTACK_EVENT_BUS_EXCHANGE: 'eventBusExchange',
  NIMBOSTACK_UPGRADE_LIVE_WINDOW: 'upgradeLiveWindow',
  NIMBOSTACK_UPGRADE_BACKUPS_KEPT: 'upgradeBackupsKept',
};

const NUMERIC = new Set<keyof ServerConfig>(['port', 'agentPort', 'ec2Port']);
const BOOLEAN = new Set<keyof ServerConfig>(['seedLocalZone', 'trustProxy']);
/** Sizes (bytes) and durations (milliseconds): positive integers. */
const POSITIVE = new Set<keyof ServerConfig>([
  'requestContentSize',
  'maxHeaderSize',
  'headersTimeout',
  'requestTimeout',
  'keepAliveTimeout',
  'upgradeLiveWindow',
  'upgradeBackupsKept',
]);
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class ConfigError extends Error {}

function coerce(key: keyof ServerConfig, value: unknown, origin: string): unknown {
  if (NUMERIC.has(key)) {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new ConfigError(`${origin}: ${key} must be a port number`);
    return n;
  }
  if (POSITIVE.has(key)) {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new ConfigError(`${origin}: ${key} must be a positive integer`);
    return n;
  }
  if (BOOLEAN.has(key)) {
    if (typeof value === 'boolean') return value;
    return String(value).toLowerCase() === 'true';
  }
  if (key === 'hypervisor') {
    const h = String(value).toLowerCase();
    if (h !== 'simulator' && h !== 'kvm' && h !== 'lxc')
      throw new ConfigError(`${origin}: hypervisor must be simulator, kvm or lxc`);
    return h;
  }
  if (key === 'zone') {
    const z = String(value).toLowerCase();
    if (z !== 'basic' && z !== 'advanced') throw new ConfigError(`${origin}: zone must be basic or advanced`);
    return z;
  }
  if (key === 'logLevel' && !LOG_LEVELS.includes(String(value))) {
    throw new ConfigError(`${origin}: logLevel must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return String(value);
}

/**
 * Loads the configuration. The config file is NIMBOSTACK_CONFIG if set, else ./nimbostack.json
 * when it exists. Environment variables win over the file.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<ServerConfig> = {},
): ServerConfig {
  const merged: Record<string, unknown> = {
    port: 8080,
    host: '0.0.0.0',
    agentPort: 8250,
    dataDir: './data',
    logLevel: 'info',
    seedLocalZone: true,
    trustProxy: false,
    hypervisor: 'simulator',
    zone: 'basic',
    kvmStateDir: '/var/lib/nimbostack/agent',
    kvmStorageDir: '/var/lib/nimbostack',
    kvmTemplate: '/var/lib/nimbostack/test-template.qcow2',
    lxcTemplate: '/var/lib/nimbostack/lxc-template.tar.gz',
    requestContentSize: 4 * 1024 * 1024,
    maxHeaderSize: 16 * 1024,
    headersTimeout: 20_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 72_000,
    eventBusExchange: 'cloudstack-events',
    upgradeLiveWindow: 60_000,
    upgradeBackupsKept: 3,
  };
  const file = env.NIMBOSTACK_CONFIG ?? (existsSync('nimbostack.json') ? 'nimbostack.json' : undefined);
  if (file) {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
    }
    for (const [k, v] of Object.entries(parsed)) {
      if (!Object.values(ENV).includes(k as keyof ServerConfig))
        throw new ConfigError(`${file}: unknown setting ${k}`);
      merged[k] = coerce(k as keyof ServerConfig, v, file);
    }
  }
  for (const [name, key] of Object.entries(ENV)) {
    const v = env[name];
    if (v !== undefined && v !== '') merged[key] = coerce(key, v, name);
  }
  Object.assign(merged, overrides);
  if (Boolean(merged.tlsCert) !== Boolean(merged.tlsKey))
    throw new ConfigError('tlsCert and tlsKey (NIMBOSTACK_TLS_CERT, NIMBOSTACK_TLS_KEY) go together');
  if (merged.kvmNfs !== undefined && merged.kvmNfs !== 'kernel' && merged.kvmNfs !== 'libnfs')
    throw new ConfigError(`kvmNfs (NIMBOSTACK_KVM_NFS) is kernel or libnfs, not ${merged.kvmNfs}`);
  // Node checks these on a timer; a headers timeout above the request timeout would never fire.
  if ((merged.headersTimeout as number) > (merged.requestTimeout as number))
    throw new ConfigError('headersTimeout must not exceed requestTimeout');
  const dataDir = resolve(String(merged.dataDir));
  return {
    ...(merged as unknown as ServerConfig),
    dataDir,
    kvmStateDir: resolve(String(merged.kvmStateDir)),
    kvmStorageDir: resolve(String(merged.kvmStorageDir)),
    kvmTemplate: resolve(String(merged.kvmTemplate)),
    lxcTemplate: resolve(String(merged.lxcTemplate)),
    uiDir: merged.uiDir === undefined ? undefined : resolve(String(merged.uiDir)),
    databaseUrl: (merged.databaseUrl as string | undefined) ?? `sqlite:${resolve(dataDir, 'nimbostack.db')}`,
    secretKeyFile: (merged.secretKeyFile as string | undefined) ?? resolve(dataDir, 'server.key'),
  };
}
