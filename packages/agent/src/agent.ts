/**
 * The host agent: one WebSocket to a management server carrying any number of hosts. It sends a
 * startup per host, pings for every ready host (500 to a frame), runs commands through the host's
 * driver and reconnects when either side goes away: to the next management server of its list
 * at once (failover, within a second), and with exponential backoff once every server of the list
 * has failed in a row. Its VMs and routers run on whatever happens to the connection.
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

/** Hosts per ping frame; more hosts are pinged for in several frames (see ping()). */
export const PING_HOSTS_PER_FRAME = 500;

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

/**
 * The order an agent tries its management servers in (upstream's indirect.agent.lb.algorithm):
 * `static` as listed, `roundrobin` the list rotated by the host's place (hosts spread over the
 * servers), `shuffle` a random order per agent.
 */
export type LbAlgorithm = 'static' | 'roundrobin' | 'shuffle';
export const LB_ALGORITHMS: readonly LbAlgorithm[] = ['static', 'roundrobin', 'shuffle'];

/** The agent's own ordering of its list (before a server hands it one): `rotation` is roundrobin's. */
export function orderServers(servers: string[], algorithm: LbAlgorithm, rotation: number): string[] {
  if (algorithm === 'shuffle') {
    const out = [...servers];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
  if (algorithm === 'roundrobin' && servers.length > 1) {
    const k = rotation % servers.length;
    return [...servers.slice(k), ...servers.slice(0, k)];
  }
  return [...servers];
}

export interface AgentOptions {
  /**
   * ws:// or wss:// URL of a management server's agent port, or several (upstream's agent
   * `host=ms1,ms2,…`): the agent holds one connection, to the first that answers, and moves to
   * the next when it goes away.
   */
  server: string | string[];
  /** How the list is ordered (default static); a server's `ready` may hand a new list and order. */
  algorithm?: LbAlgorithm;
  token: string;
  hosts: HostDriver[];
  log?: AgentLogger;
  /** First reconnect delay; doubles up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * How long the server may stay silent (no frame, no answer to the WebSocket pings sent every
   * third of it) before the agent drops the connection and moves to the next server: a server
   * that hangs or is cut off without closing the socket. Default 15 s.
   */
  livenessMs?: number;
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
  moveVolumeLive: (h, p) => {
    if (!h.hypervisor.moveVolumeLive)
      throw new DriverError(`host ${h.name} cannot move the disks of running VMs`);
    return h.hypervisor.moveVolumeLive(p);
  },
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
  routerDigest: (h, p) => networkOf(h).routerDigest(p),
  applyRouterRules: (h, p) => networkOf(h).applyRouterRules(p),
  applyRouterVpn: (h, p) => networkOf(h).applyRouterVpn(p),
  routerVpnStatus: (h, p) => networkOf(h).routerVpnStatus(p.name),
  applySecurityRules: (h, p) => networkOf(h).applySecurityRules(p),
  openConsole: (h, p, agent) => agent.openConsole(h, p),
  getConsoleOutput: async (h, p) => ({
    output: (await h.hypervisor.consoleOutput(p.name, p.maxBytes)).toString('base64'),
  }),
  setHeartbeat: (h, p, agent) => agent.heartbeats.set(h, p),
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
  private livenessTimer?: NodeJS.Timeout;
  private pingIntervalMs = 0;
  private lastHeard = 0;
  private stopped = false;
  /** Management servers in the order they are tried; `current` is the one connected or tried last. */
  private servers: string[];
  private current = 0;
  /** The server of the open connection (console tunnels go to it). */
  private connectedTo?: string;
  private connectedOnce = false;
  /** Console tunnels by id, so a repeated openConsole does not open a second one. */
  private readonly tunnels = new Map<string, Promise<WebSocket>>();
  /** Storage heartbeats of the hosts (VM HA): they go on while the connection is down. */
  readonly heartbeats: Heartbeats;

  constructor(private readonly options: AgentOptions) {
    // The server treats host names case-insensitively (it stores them in lower case).
    this.hosts = new Map(options.hosts.map((h) => [h.name.toLowerCase(), h]));
    this.log = options.log ?? consoleLogger;
    const list = Array.isArray(options.server) ? options.server : [options.server];
    if (list.length === 0) throw new Error('an agent needs at least one management server');
    // Roundrobin without the server's list: the rotation comes from the first host's name, so the
    // agents of a fleet spread over the servers and each keeps its place across restarts.
    const name = options.hosts[0]?.name ?? '';
    let rotation = 0;
    for (const c of name) rotation = (rotation * 31 + c.charCodeAt(0)) >>> 0;
    this.servers = orderServers(list, options.algorithm ?? 'static', rotation);
    this.heartbeats = new Heartbeats((fields, msg) => this.log.warn(fields, msg));
  }

  /** Hosts currently acknowledged by the server. */
  get readyHosts(): number {
    return this.ready.size;
  }

  /** The management server of the open connection, if any. */
  get server(): string | undefined {
    return this.connectedTo;
  }

  /** The management servers in the order they are tried. */
  get serverList(): readonly string[] {
    return this.servers;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.livenessTimer);
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
      const server = this.connectedTo;
      if (!server) throw new DriverError('the agent is not connected to a management server');
      return openTunnel(vnc, {
        server,
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
    const server = this.servers[this.current];
    const ws = new WebSocket(server, {
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
      this.connectedTo = server;
      this.log.info(
        { server, hosts: this.hosts.size, reconnected: this.connectedOnce },
        'connected to management server',
      );
      this.connectedOnce = true;
      this.watchLiveness(ws);
      for (const host of this.hosts.values()) this.sendStartup(host);
    });
    ws.on('message', (data, isBinary) => {
      this.lastHeard = Date.now();
      this.onFrame(isBinary ? (data as Buffer) : data.toString());
    });
    ws.on('pong', () => {
      this.lastHeard = Date.now();
    });
    ws.on('error', (err) => this.log.warn({ err: err.message, server }, 'connection error'));
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ready.clear();
      this.stopPinging();
      clearInterval(this.livenessTimer);
      this.connectedTo = undefined;
      if (this.stopped) return;
      // The next server of the list is tried first: the one just lost is likely down.
      this.current = (this.current + 1) % this.servers.length;
      const delay = this.nextDelay();
      this.log.warn(
        { server, code, reason: reason.toString(), next: this.servers[this.current], retryInMs: delay },
        'disconnected from management server; reconnecting',
      );
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    });
  }

  /**
   * A list of management servers handed by the server (in `ready`, from its `host` setting and
   * indirect.agent.lb.algorithm): it replaces the agent's own for its next reconnection; the
   * open connection stays.
   */
  private adoptServers(list: string[]): void {
    if (list.length === 0 || list.join(',') === this.servers.join(',')) return;
    this.servers = [...list];
    const here = this.connectedTo ? list.indexOf(this.connectedTo) : -1;
    // Not in the new list: the next reconnection starts at its head.
    this.current = here >= 0 ? here : list.length - 1;
    this.log.info({ servers: list }, 'management server list from the server');
  }

  private nextDelay(): number {
    const initial = this.options.initialBackoffMs ?? 500;
    const max = this.options.maxBackoffMs ?? 30_000;
    // Failover: each server of the list gets a quick try; backoff grows once a whole round failed.
    const round = Math.floor(this.attempt++ / this.servers.length);
    const base = Math.min(max, initial * 2 ** round);
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
      if (m.payload.managementServers) this.adoptServers(m.payload.managementServers);
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

  /**
   * A server that hangs or vanished without closing the socket (a partition) never answers our
   * WebSocket pings: past livenessMs of silence the connection is dropped and the next server
   * tried, rather than waiting for TCP to give up.
   */
  private watchLiveness(ws: WebSocket): void {
    const liveness = this.options.livenessMs ?? 15_000;
    clearInterval(this.livenessTimer);
    this.livenessTimer = setInterval(
      () => {
        if (ws.readyState !== WebSocket.OPEN) return;
        if (Date.now() - this.lastHeard > liveness) {
          this.log.warn(
            { server: this.connectedTo, silentMs: Date.now() - this.lastHeard },
            'management server stopped responding',
          );
          ws.terminate();
          return;
        }
        ws.ping();
      },
      Math.max(200, Math.floor(liveness / 3)),
    );
  }

  /**
   * Pings for every ready host, PING_HOSTS_PER_FRAME hosts to a frame: the server handles each
   * frame on its own, so it reads VM states from a few small frames in turn rather than from one
   * that stops it for seconds (25,000 hosts with 1,000,000 VMs make 45 MB of JSON).
   */
  private ping(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const names = [...this.ready.keys()];
    for (let i = 0; i < names.length; i += PING_HOSTS_PER_FRAME) {
      const hosts = names.slice(i, i + PING_HOSTS_PER_FRAME).map((name) => ({
        host: name,
        vms: this.hosts.get(name)!.hypervisor.reportStates(),
      }));
      this.send({ type: 'ping', hosts });
    }
  }
}

class TimeoutError extends Error {}
