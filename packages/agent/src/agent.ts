/**
 * The host agent: one WebSocket to a management server carrying any number of hosts. It sends a
 * startup per host, pings for every ready host in one frame, runs commands through the host's
 * driver and reconnects with exponential backoff when either side goes away.
 */

import type { ConnectionOptions } from 'node:tls';
import {
  type AnswerMessage,
  type CommandKind,
  type CommandMessage,
  encode,
  MAX_FRAME_BYTES,
  type Message,
  type ParsedPayload,
  PROTOCOL_VERSION,
  parseMessage,
  type StartupMessage,
} from '@nimbostack/protocol';
import WebSocket, { type ClientOptions } from 'ws';
import { openTunnel } from './console-tunnel.ts';
import { DriverError, type HostDriver, type NetworkDriver } from './drivers/driver.ts';
import { checkHost, Heartbeats } from './heartbeat.ts';

export const AGENT_VERSION = '0.1.0';

export interface AgentLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
  debug(fields: object, msg: string): void;
}

/** JSON lines on stdout, the same shape as the server's logs. */
export const consoleLogger: AgentLogger = (() => {
  const write = (level: number) => (fields: object, msg: string) =>
    process.stdout.write(
      `${JSON.stringify({ level, time: Date.now(), service: 'nimbostack-agent', ...fields, msg })}\n`,
    );
  return { debug: () => undefined, info: write(30), warn: write(40), error: write(50) };
})();

export interface AgentOptions {
  /** ws:// or wss:// URL of the management server's agent port. */
  server: string;
  token: string;
  hosts: HostDriver[];
  log?: AgentLogger;
  /** First reconnect delay; doubles up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** TLS options for wss:// (e.g. a private CA). */
  tls?: Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized' | 'checkServerIdentity' | 'servername'>;
}

type AgentKind = Exclude<CommandKind, 'ready' | 'reconnect'>;
type Handler<K extends AgentKind> = (
  host: HostDriver,
  payload: ParsedPayload<K>,
  agent: Agent,
) => Promise<unknown>;

function networkOf(h: HostDriver): NetworkDriver {
  if (!h.network) throw new DriverError(`host ${h.name} does not manage guest networking`);
  return h.network;
}

/** How each command kind runs on a host's drivers (ready and reconnect are the agent's own). */
const HANDLERS: { [K in AgentKind]: Handler<K> } = {
  checkHealth: (h) => h.hypervisor.checkHealth(),
  getHostStats: (h) => h.hypervisor.hostStats(),
  getVmStats: (h, p) => h.hypervisor.vmStats(p.vms),
  startVm: (h, p) => h.hypervisor.startVm(p.vm),
  stopVm: (h, p) => h.hypervisor.stopVm(p.name, p.force),
  rebootVm: (h, p) => h.hypervisor.rebootVm(p.name),
  prepareMigration: (h, p) => h.hypervisor.prepareMigration(p.vm),
  migrateVm: (h, p) => h.hypervisor.migrateVm(p.name, p.destination),
  plugNic: (h, p) => h.hypervisor.plugNic(p.vm, p.nic),
  unplugNic: (h, p) => h.hypervisor.unplugNic(p.vm, p.mac),
  attachVolume: (h, p) => h.hypervisor.attachVolume(p.vm, p.disk),
  detachVolume: (h, p) => h.hypervisor.detachVolume(p.vm, p.disk),
  createVolume: (h, p) => h.storage.createVolume(p),
  createVolumeFromTemplate: (h, p) => h.storage.createVolumeFromTemplate(p),
  resizeVolume: (h, p) => h.storage.resizeVolume(p),
  deleteVolume: (h, p) => h.storage.deleteVolume(p),
  copyVolume: (h, p) => h.storage.copyVolume(p),
  createSnapshot: (h, p) => h.storage.createSnapshot(p),
  deleteSnapshot: (h, p) => h.storage.deleteSnapshot(p),
  revertSnapshot: (h, p) => h.storage.revertSnapshot(p),
  getPoolStats: (h, p) => h.storage.poolStats(p.pool),
  deleteTemplateCopies: async (h, p) => {
    if (!h.storage.deleteTemplateCopies) throw new DriverError(`host ${h.name} keeps no template copies`);
    await h.storage.deleteTemplateCopies(p.pool, p.templates);
  },
  setupNetwork: (h, p) => networkOf(h).setupNetwork(p.network),
  teardownNetwork: (h, p) => networkOf(h).teardownNetwork(p.network),
  startRouter: (h, p) => networkOf(h).startRouter(p.router),
  stopRouter: (h, p) => networkOf(h).stopRouter(p.name),
  updateRouter: (h, p) => networkOf(h).updateRouter(p),
  applyRouterRules: (h, p) => networkOf(h).applyRouterRules(p),
  applyRouterVpn: (h, p) => networkOf(h).applyRouterVpn(p),
  routerVpnStatus: (h, p) => networkOf(h).routerVpnStatus(p.name),
  applySecurityRules: (h, p) => networkOf(h).applySecurityRules(p),
  openConsole: (h, p, agent) => agent.openConsole(h, p),
  getConsoleOutput: async (h, p) => ({
    output: (await h.hypervisor.consoleOutput(p.name, p.maxBytes)).toString('base64'),
  }),
  setHeartbeat: async (h, p, agent) => agent.heartbeats.set(h, p),
  checkHost: (h, p) => checkHost(h, p),
  configureSimulator: async (h, p) => {
    if (!h.configure) throw new DriverError('configureSimulator applies to simulator hosts only');
    h.configure(p);
  },
};

export class Agent {
  private ws?: WebSocket;
  private readonly hosts: Map<string, HostDriver>;
  /** Hosts the server acknowledged on the current connection, with their server-side ids. */
  private readonly ready = new Map<string, string>();
  private readonly log: AgentLogger;
  private attempt = 0;
  private reconnectTimer?: NodeJS.Timeout;
  private pingTimer?: NodeJS.Timeout;
  private pingIntervalMs = 0;
  private lastHeard = 0;
  private stopped = false;
  private connectedOnce = false;
  /** Console tunnels by id, so a repeated openConsole does not open a second one. */
  private readonly tunnels = new Map<string, Promise<WebSocket>>();
  /** Storage heartbeats of the hosts (VM HA): they go on while the connection is down. */
  readonly heartbeats: Heartbeats;

  constructor(private readonly options: AgentOptions) {
    // The server treats host names case-insensitively (it stores them in lower case).
    this.hosts = new Map(options.hosts.map((h) => [h.name.toLowerCase(), h]));
    this.log = options.log ?? consoleLogger;
    this.heartbeats = new Heartbeats((fields, msg) => this.log.warn(fields, msg));
  }

  /** Hosts currently acknowledged by the server. */
  get readyHosts(): number {
    return this.ready.size;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.heartbeats.stopAll();
    for (const t of this.tunnels.values())
      t.then((ws) => ws.close(1001, 'agent stopping')).catch(() => undefined);
    this.stopPinging();
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1001, 'agent stopping');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 2000).unref();
    });
  }

  /** Opens a console tunnel (the openConsole command); idempotent per tunnel id. */
  async openConsole(host: HostDriver, p: ParsedPayload<'openConsole'>): Promise<void> {
    const existing = this.tunnels.get(p.tunnel);
    if (existing) {
      await existing;
      return;
    }
    const opening = (async () => {
      const vnc = await host.hypervisor.openConsole(p.vm);
      return openTunnel(vnc, {
        server: this.options.server,
        tunnel: p.tunnel,
        secret: p.secret,
        tls: this.options.tls,
      });
    })();
    this.tunnels.set(p.tunnel, opening);
    try {
      const ws = await opening;
      this.log.info({ host: host.name, vm: p.vm, tunnel: p.tunnel }, 'console tunnel open');
      ws.once('close', () => {
        this.tunnels.delete(p.tunnel);
        this.log.info({ host: host.name, vm: p.vm, tunnel: p.tunnel }, 'console tunnel closed');
      });
    } catch (err) {
      this.tunnels.delete(p.tunnel);
      throw err;
    }
  }

  private connect(): void {
    const ws = new WebSocket(this.options.server, {
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
      // ws passes these to tls.connect; its typings disagree with Node's on checkServerIdentity.
      ...(this.options.tls as ClientOptions | undefined),
    });
    this.ws = ws;
    ws.on('open', () => {
      this.attempt = 0;
      this.lastHeard = Date.now();
      this.log.info(
        { server: this.options.server, hosts: this.hosts.size, reconnected: this.connectedOnce },
        'connected to management server',
      );
      this.connectedOnce = true;
      for (const host of this.hosts.values()) this.sendStartup(host);
    });
    ws.on('message', (data, isBinary) => {
      this.lastHeard = Date.now();
      this.onFrame(isBinary ? (data as Buffer) : data.toString());
    });
    ws.on('pong', () => {
      this.lastHeard = Date.now();
    });
    ws.on('error', (err) =>
      this.log.warn({ err: err.message, server: this.options.server }, 'connection error'),
    );
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ready.clear();
      this.stopPinging();
      if (this.stopped) return;
      const delay = this.nextDelay();
      this.log.warn(
        { code, reason: reason.toString(), retryInMs: delay },
        'disconnected from management server; reconnecting',
      );
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private nextDelay(): number {
    const initial = this.options.initialBackoffMs ?? 500;
    const max = this.options.maxBackoffMs ?? 30_000;
    const base = Math.min(max, initial * 2 ** this.attempt++);
    // Jitter spreads the reconnects of many agents after a server restart.
    return Math.round(base * (0.5 + Math.random() / 2));
  }

  private send(message: Message): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encode(message));
  }

  private sendStartup(host: HostDriver): void {
    const startup: StartupMessage = {
      type: 'startup',
      protocolVersion: PROTOCOL_VERSION,
      host: host.name,
      token: this.options.token,
      agentVersion: AGENT_VERSION,
      ...host.hypervisor.resources(),
      vms: host.hypervisor.reportStates(),
    };
    this.send(startup);
  }

  private onFrame(frame: string | Buffer): void {
    const parsed = parseMessage(frame);
    if (!parsed.ok) {
      const { error } = parsed;
      this.log.warn({ code: error.code, error: error.message }, 'rejected a message from the server');
      if (error.id && error.host) {
        const code = error.code === 'unsupported' ? 'unsupported' : 'malformed';
        this.send({
          type: 'answer',
          id: error.id,
          host: error.host,
          ok: false,
          error: { code, message: error.message },
        });
      } else this.send(error);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case 'command':
        this.onCommand(m);
        return;
      case 'pending':
        this.log.info({ host: m.host }, m.message);
        return;
      case 'error':
        this.log.error({ host: m.host, code: m.code, id: m.id }, `server refused: ${m.message}`);
        // The server lost the host's session (it was deleted, or restarted mid-handshake): present
        // the host again, so it waits for addHost or is readopted.
        if (m.code === 'unknownHost' && m.host && this.ready.has(m.host.toLowerCase())) {
          this.ready.delete(m.host.toLowerCase());
          this.sendStartup(this.hosts.get(m.host.toLowerCase())!);
        }
        return;
      default:
        this.send({
          type: 'error',
          code: 'unsupported',
          message: `an agent does not accept ${m.type} messages`,
        });
    }
  }

  private answer(m: CommandMessage, outcome: Pick<AnswerMessage, 'ok'> & Partial<AnswerMessage>): void {
    this.send({ type: 'answer', id: m.id, host: m.host, ...outcome } as AnswerMessage);
  }

  private onCommand(m: CommandMessage): void {
    const host = this.hosts.get(m.host.toLowerCase());
    if (!host) {
      this.answer(m, {
        ok: false,
        error: { code: 'unknownHost', message: `this agent has no host ${m.host}` },
      });
      return;
    }
    if (m.kind === 'ready') {
      this.ready.set(host.name.toLowerCase(), m.payload.hostId);
      this.answer(m, { ok: true, result: {} });
      this.schedulePings(m.payload.pingIntervalMs);
      return;
    }
    if (m.kind === 'reconnect') {
      this.ready.delete(host.name.toLowerCase());
      this.answer(m, { ok: true, result: {} });
      this.sendStartup(host);
      return;
    }
    const handler = HANDLERS[m.kind] as Handler<AgentKind>;
    const run = () => handler(host, m.payload as never, this);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TimeoutError(`${m.kind} timed out after ${m.timeoutMs} ms`)),
        m.timeoutMs,
      );
    });
    Promise.race([host.around ? host.around(m.kind, run) : run(), timeout])
      .then((result) => this.answer(m, { ok: true, result: result ?? {} }))
      .catch((err: Error) => {
        if (!(err instanceof DriverError) && !(err instanceof TimeoutError))
          this.log.error({ err: err.stack, kind: m.kind, host: m.host }, 'command failed unexpectedly');
        this.answer(m, {
          ok: false,
          error: { code: err instanceof TimeoutError ? 'timeout' : 'failed', message: err.message },
        });
      })
      .finally(() => clearTimeout(timer));
  }

  private schedulePings(intervalMs: number): void {
    if (this.pingTimer && intervalMs === this.pingIntervalMs) return;
    this.stopPinging();
    this.pingIntervalMs = intervalMs;
    this.pingTimer = setInterval(() => this.ping(), intervalMs);
    // The first ping follows the ready answer at once so the server sees VM states immediately.
    setImmediate(() => this.ping());
  }

  private stopPinging(): void {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  private ping(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    // A server that vanished without closing the socket (a network partition) never answers our
    // WebSocket pings; drop the connection and reconnect rather than wait forever.
    if (Date.now() - this.lastHeard > 3 * this.pingIntervalMs + 5000) {
      this.log.warn({}, 'management server stopped responding');
      ws.terminate();
      return;
    }
    const hosts = [...this.ready.keys()].map((name) => ({
      host: name,
      vms: this.hosts.get(name)!.hypervisor.reportStates(),
    }));
    if (hosts.length > 0) this.send({ type: 'ping', hosts });
    ws.ping();
  }
}

class TimeoutError extends Error {}
