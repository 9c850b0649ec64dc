/**
 * The agent gateway: the WebSocket server host agents connect to. It authenticates each host's
 * startup against the hosts table, tracks which connection carries which host, sends commands
 * and matches their answers, and moves hosts between Up, Disconnected, Alert and Down as pings
 * arrive or stop. Hosts a connected agent presents before an admin adds them wait as "pending"
 * until addHost adopts them.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  type AnswerMessage,
  type CommandKind,
  type CommandPayload,
  type CommandResult,
  encode,
  MAX_FRAME_BYTES,
  type PingMessage,
  PROTOCOL_VERSION,
  parseMessage,
  parseResult,
  type ServerMessage,
  type StartupMessage,
  type VmPowerReport,
  validatePayload,
} from '@nimbostack/protocol';
import { type WebSocket, WebSocketServer } from 'ws';
import { liveServerIds } from '../cluster/heartbeat.ts';
import type { App } from '../context.ts';
import type { HostRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
import { serverListsFor } from './agent-lb.ts';
import {
  PEER_CONSOLE_PATH,
  PEER_MAX_BODY,
  PEER_SEND_PATH,
  PeerChannel,
  PeerHeader,
  PeerTimeout,
} from './peers.ts';
import { needsPoolKeys, withPoolKeys } from './pool-keys.ts';
import {
  AGENT_COMMAND_TIMEOUT,
  AGENT_LB_ALGORITHM,
  ALERT_WAIT,
  HOST_DOWN_WAIT,
  MANAGEMENT_SERVER_ADDRESSES,
  PING_INTERVAL,
  PING_TIMEOUT,
} from './settings.ts';

export type HostStatus = 'Connecting' | 'Up' | 'Disconnected' | 'Alert' | 'Down';

/** What the compute capability learns on every ping (and startup): VM power states per host. */
export interface VmStateReport {
  hostId: number;
  vms: VmPowerReport[];
  /** The host's startup (it connected or reconnected), not a ping. */
  startup: boolean;
}
export type VmStateListener = (app: App, reports: VmStateReport[]) => Promise<void>;
const vmStateListeners: VmStateListener[] = [];

/**
 * Registers the reconciler of reported VM power states. It runs for every ping frame with the
 * reports of all hosts in it; a VM missing from its host's list is powered off there.
 */
export function onVmStatesReported(listener: VmStateListener): void {
  vmStateListeners.push(listener);
}

/** Transitions of host status, for capabilities that react (HA, alerts). */
export type HostStatusListener = (app: App, hostIds: number[], status: HostStatus) => Promise<void>;
const statusListeners: HostStatusListener[] = [];
export function onHostStatusChange(listener: HostStatusListener): void {
  statusListeners.push(listener);
}

interface Connection {
  ws: WebSocket;
  remote: string;
  /** Names of adopted hosts whose agent session is on this connection. */
  hosts: Set<string>;
}

interface Session {
  id: number;
  uuid: string;
  name: string;
  conn?: Connection;
  /** The agent acknowledged `ready`: it pings and takes commands for this host. */
  ready: boolean;
  status: HostStatus;
  lastPing: number;
  /** The ping time last written to hosts.last_pinged (LAST_PING_PERSIST_MS). */
  persistedPing?: number;
  /** When the host last left Up; Alert and Down count from here. */
  since: number;
}

interface Inflight {
  conn: Connection;
  host: string;
  kind: CommandKind;
  resolve(answer: AnswerMessage): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const MAX_PENDING = 100_000;
const CHUNK = 500;
const READY_TIMEOUT_MS = 15_000;
/**
 * How stale hosts.last_pinged may get. Nothing decides on the stored time (silent hosts are found
 * from the time in memory, a dead management server from its own heartbeat): it is what listHosts
 * shows for a host held by another server or before this one heard from it. Written on every
 * ping it was 25,000 row updates a minute at 25,000 hosts, each frame's commit also discarding
 * the kept list answers.
 */
const LAST_PING_PERSIST_MS = 300_000;
const TAKEOVER_EVERY_MS = 30_000;
/** How often the hint of which hosts live peers hold (isConnected) is re-read. */
const PEERS_REFRESH_MS = 2_000;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function tokenMatches(token: string, hash: string): boolean {
  const a = Buffer.from(hashToken(token), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export const agentUnavailable = (text: string) =>
  new ApiError(ErrorCode.RESOURCE_UNAVAILABLE, CsErrorCode.AGENT_UNAVAILABLE, text);

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/** The body of a forwarded command (PEER_SEND_PATH). */
interface ForwardedCommand {
  hostId: number;
  kind: CommandKind;
  payload: unknown;
  timeoutMs: number;
}

/** What a peer answers a forwarded command: the agent's answer, or the error a local send raised. */
type ForwardedOutcome =
  | { answer: AnswerMessage }
  | { error: { errorcode: number; cserrorcode: number; errortext: string } };

export class AgentGateway {
  private wss?: WebSocketServer;
  private listener?: HttpServer;
  private readonly connections = new Set<Connection>();
  private readonly sessions = new Map<string, Session>();
  private readonly byId = new Map<number, Session>();
  private readonly pending = new Map<string, { conn: Connection; startup: StartupMessage }>();
  private readonly inflight = new Map<string, Inflight>();
  private startupQueue: { conn: Connection; startup: StartupMessage }[] = [];
  private flushing?: Promise<void>;
  private monitor?: NodeJS.Timeout;
  private lastTakeover = 0;
  private lastPeersRefresh = 0;
  /** Set by stop(): agents leaving now are failing over, not lost (their hosts stay Up). */
  private stopping = false;
  /** The ping interval agents were last told, in seconds. */
  private announcedInterval = 0;
  /** The `host` list and algorithm agents were last handed (lbSettings). */
  private announcedLb = '';
  private ticking = false;
  port = 0;
  /** Takes WebSockets that agents open on /tunnel/<id> (console sessions). */
  tunnelHandler?: (ws: WebSocket, req: IncomingMessage) => void;
  /** Takes console relays other management servers open on PEER_CONSOLE_PATH (signature checked). */
  peerConsoleHandler?: (ws: WebSocket, query: URLSearchParams) => void;
  /** The other management servers: forwarding to the one holding a host's agent. */
  readonly peers: PeerChannel;

  constructor(private readonly app: () => App) {
    this.peers = new PeerChannel(app);
  }

  /** Listens for agents; with `tls` (PEM certificate and key) they connect over wss://. */
  async start(host: string, port: number, tls?: { cert: Buffer; key: Buffer }): Promise<number> {
    this.announcedInterval = this.app().settings.get(PING_INTERVAL);
    this.announcedLb = this.lbSettings();
    await this.takeOverHosts();
    // One listener for agents (WebSocket) and peers (signed HTTP requests and WebSockets).
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.onHttp(req, res);
    const listener = tls ? createHttpsServer(tls, onRequest) : createHttpServer(onRequest);
    if (tls) this.peers.trust(tls.cert);
    const wss = new WebSocketServer({
      maxPayload: MAX_FRAME_BYTES,
      perMessageDeflate: false,
      server: listener,
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, host, () => resolve());
    });
    this.listener = listener;
    this.wss = wss;
    wss.on('error', (err) => this.app().log.error({ err }, 'agent gateway error'));
    wss.on('connection', (ws, req) => {
      // Console tunnels from agents share the agent port on their own path (console/proxy.ts).
      if (req.url?.startsWith('/tunnel/')) {
        if (this.tunnelHandler) this.tunnelHandler(ws, req);
        else ws.close(4004, 'this server accepts no tunnels');
        return;
      }
      if (req.url?.split('?')[0] === PEER_CONSOLE_PATH) {
        this.onPeerConsole(ws, req);
        return;
      }
      this.onConnection(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`);
    });
    this.port = (listener.address() as AddressInfo).port;
    this.monitor = setInterval(() => this.tick(), 500);
    this.monitor.unref();
    return this.port;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.monitor);
    for (const f of this.inflight.values()) {
      clearTimeout(f.timer);
      f.reject(agentUnavailable('The management server is stopping'));
    }
    this.inflight.clear();
    for (const c of this.connections) c.ws.close(1001, 'management server stopping');
    await new Promise<void>((resolve) => (this.wss ? this.wss.close(() => resolve()) : resolve()));
    this.listener?.closeAllConnections();
    await new Promise<void>((resolve) => (this.listener ? this.listener.close(() => resolve()) : resolve()));
    await this.flushing;
  }

  /**
   * Whether the host's agent takes commands: connected here and ready, or held by another live
   * management server (as last read, every few seconds), which `send` forwards to.
   */
  isConnected(hostId: number): boolean {
    return this.isHeld(hostId) || this.peers.isRemote(hostId);
  }

  /**
   * Whether the host's agent takes commands, with the holder read from the database when it is not
   * here: isConnected's view of peers' hosts is up to a few seconds old, too old to conclude that a
   * host is lost and move what runs on it (a router started again elsewhere would run twice).
   */
  async reachable(hostId: number): Promise<boolean> {
    if (this.isHeld(hostId)) return true;
    return (await this.peers.holderOf(hostId))?.peer !== undefined;
  }

  /** The session of a host whose agent is connected to this server and ready for commands. */
  private held(hostId: number): Session | undefined {
    const s = this.byId.get(hostId);
    return s?.conn && s.ready ? s : undefined;
  }

  /** Whether the host's agent is connected to this server and ready for commands. */
  isHeld(hostId: number): boolean {
    return this.held(hostId) !== undefined;
  }

  /** When the agent of a host held here last pinged (or was made ready); undefined if not held here. */
  lastPingOf(hostId: number): number | undefined {
    return this.held(hostId)?.lastPing;
  }

  /**
   * An object standing for the host's current agent connection (undefined when not connected
   * here): state a host keeps only while its agent stays connected can be remembered against it.
   * Hosts held by peers have none: nothing is remembered for them, commands are sent each time.
   */
  connectionOf(hostId: number): object | undefined {
    return this.held(hostId)?.conn;
  }

  /** Counts for the metrics exporter: open connections, held host sessions by status, commands awaiting answers. */
  stats(): { connections: number; hosts: Record<string, number>; inflight: number; pendingHosts: number } {
    const hosts: Record<string, number> = {};
    for (const s of this.byId.values()) hosts[s.status] = (hosts[s.status] ?? 0) + 1;
    return {
      connections: this.connections.size,
      hosts,
      inflight: this.inflight.size,
      pendingHosts: this.pending.size,
    };
  }

  /** The startup of a host an agent presented but no admin has added yet. */
  pendingHost(name: string): StartupMessage | undefined {
    return this.pending.get(name.toLowerCase())?.startup;
  }

  /**
   * Hosts whose ids are in `ids` that take commands (here or through a peer); without ids, the
   * hosts whose agents are connected to this server (each server collects its own hosts' figures).
   */
  connectedHosts(ids?: number[]): number[] {
    if (ids) return ids.filter((id) => this.isConnected(id));
    return [...this.byId.values()].filter((s) => s.conn && s.ready).map((s) => s.id);
  }

  /**
   * Sends a command and resolves with the agent's answer, successful or not. Rejects only when
   * the host is not reachable or the answer does not come in time. A host whose agent is
   * connected to another live management server is reached through it (forward).
   */
  send<K extends CommandKind>(
    hostId: number,
    kind: K,
    payload: CommandPayload<K>,
    timeoutMs?: number,
  ): Promise<AnswerMessage> {
    const session = this.byId.get(hostId);
    if (session?.conn && (session.ready || kind === 'ready'))
      return this.dispatch(session.conn, session.name, kind, payload, timeoutMs);
    if (kind === 'ready' || kind === 'reconnect')
      // reconnect() forwards the whole reconnection, not the bare command.
      return Promise.reject(
        agentUnavailable(`Host ${session?.name ?? hostId} is not connected to this management server`),
      );
    return this.forward(hostId, kind, validatePayload(kind, payload), timeoutMs, session?.name);
  }

  /** Sends a command through the live peer holding the host's agent; its errors are a local send's. */
  private async forward(
    hostId: number,
    kind: CommandKind,
    payload: unknown,
    timeoutMs: number | undefined,
    name: string | undefined,
  ): Promise<AnswerMessage> {
    const app = this.app();
    const timeout = timeoutMs ?? app.settings.get(AGENT_COMMAND_TIMEOUT) * 1000;
    const where = await this.peers.holderOf(hostId);
    const host = where?.name ?? name ?? String(hostId);
    if (!where?.peer)
      throw agentUnavailable(`Host ${host} is not connected to this or any other running management server`);
    const { peer } = where;
    const body: ForwardedCommand = { hostId, kind, payload, timeoutMs: timeout };
    let outcome: ForwardedOutcome;
    try {
      // The peer times the agent out itself (timeout + 1 s); this only catches a peer gone silent.
      outcome = (await this.peers.post(peer, PEER_SEND_PATH, body, timeout + 5000)) as ForwardedOutcome;
    } catch (err) {
      if (err instanceof PeerTimeout)
        throw new ApiError(
          ErrorCode.INTERNAL_ERROR,
          CsErrorCode.OPERATION_TIMED_OUT,
          `Host ${host} did not answer ${kind} within ${timeout} ms (through management server ${peer.name})`,
        );
      app.log.warn(
        { host, peer: peer.name, kind, err: (err as Error).message },
        'forwarding to a peer failed',
      );
      throw agentUnavailable(
        `Host ${host} is connected to management server ${peer.name}, which could not be reached: ${(err as Error).message}`,
      );
    }
    if ('answer' in outcome) return outcome.answer;
    throw new ApiError(outcome.error.errorcode, outcome.error.cserrorcode, outcome.error.errortext);
  }

  /** A peer's request on the agent port: a forwarded command, signed with the cloud's key. */
  private onHttp(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'POST' || path !== PEER_SEND_PATH) {
      res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' }).end('Upgrade Required');
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > PEER_MAX_BODY) {
        res.writeHead(413, { connection: 'close' }).end();
        req.destroy();
      } else parts.push(d);
    });
    req.on('end', () => {
      if (size > PEER_MAX_BODY) return;
      const body = Buffer.concat(parts);
      const verdict = this.peers.verify('POST', req.url ?? '', req.headers, body);
      if (!verdict.ok) {
        this.app().log.warn(
          { remote: req.socket.remoteAddress, reason: verdict.reason },
          'refused a request on the peer channel',
        );
        res.writeHead(401, { 'content-type': 'text/plain' }).end(verdict.reason);
        return;
      }
      const nonce = req.headers[PeerHeader.NONCE] as string;
      let command: ForwardedCommand;
      try {
        command = JSON.parse(body.toString('utf8')) as ForwardedCommand;
      } catch {
        res.writeHead(400, { 'content-type': 'text/plain' }).end('the body is not JSON');
        return;
      }
      this.runForwarded(command).then((outcome) => {
        const text = JSON.stringify(outcome);
        res
          .writeHead(200, {
            'content-type': 'application/json',
            [PeerHeader.SIGNATURE]: this.peers.signAnswer(nonce, text),
          })
          .end(text);
      });
    });
  }

  /** Runs a forwarded command on a host held here; never forwards again (no loops between peers). */
  private async runForwarded(m: ForwardedCommand): Promise<ForwardedOutcome> {
    try {
      const session = this.byId.get(m.hostId);
      if (m.kind === 'reconnect' && session?.conn) {
        await this.reconnect(m.hostId, m.timeoutMs);
        return { answer: { type: 'answer', id: '', host: session.name, ok: true, result: {} } };
      }
      if (!session?.conn || !session.ready || m.kind === 'ready' || m.kind === 'reconnect')
        throw agentUnavailable(
          `Host ${session?.name ?? m.hostId} is not connected to management server ${this.app().server.name}`,
        );
      const answer = await this.dispatch(
        session.conn,
        session.name,
        m.kind,
        m.payload as CommandPayload<CommandKind>,
        m.timeoutMs,
      );
      return { answer };
    } catch (err) {
      if (err instanceof ApiError)
        return { error: { errorcode: err.errorcode, cserrorcode: err.cserrorcode, errortext: err.message } };
      this.app().log.error({ err, kind: m.kind }, 'a forwarded command failed');
      return {
        error: {
          errorcode: ErrorCode.INTERNAL_ERROR,
          cserrorcode: CsErrorCode.CLOUD_RUNTIME,
          errortext: `${m.kind} could not be sent to the host: ${(err as Error).message}`,
        },
      };
    }
  }

  /** A console relay from a peer (console/proxy.ts): accepted when signed with the cloud's key. */
  private onPeerConsole(ws: WebSocket, req: IncomingMessage): void {
    const verdict = this.peers.verify('GET', req.url ?? '', req.headers);
    if (!verdict.ok || !this.peerConsoleHandler) {
      const reason = verdict.ok ? 'this server relays no consoles' : verdict.reason;
      this.app().log.warn(
        { remote: req.socket.remoteAddress, reason },
        'refused a console relay from a peer',
      );
      ws.close(4001, reason);
      return;
    }
    this.peerConsoleHandler(ws, new URL(req.url ?? '/', 'http://peer').searchParams);
  }

  /** Sends a command and returns its validated result, or fails with the agent's reason. */
  async call<K extends CommandKind>(
    hostId: number,
    kind: K,
    payload: CommandPayload<K>,
    timeoutMs?: number,
  ): Promise<CommandResult<K>> {
    const answer = await this.send(hostId, kind, payload, timeoutMs);
    if (!answer.ok) {
      const code =
        answer.error.code === 'timeout' ? CsErrorCode.OPERATION_TIMED_OUT : CsErrorCode.CLOUD_RUNTIME;
      throw new ApiError(
        ErrorCode.INTERNAL_ERROR,
        code,
        `${kind} failed on the host: ${answer.error.message}`,
      );
    }
    return answer.result as CommandResult<K>;
  }

  private dispatch<K extends CommandKind>(
    conn: Connection,
    host: string,
    kind: K,
    payload: CommandPayload<K>,
    timeoutMs?: number,
  ): Promise<AnswerMessage> {
    // An RBD pool's cephx key joins the payload only here, on its way to the agent (pool-keys.ts).
    if (needsPoolKeys(payload))
      return withPoolKeys(this.app(), payload).then((p) => this.dispatchNow(conn, host, kind, p, timeoutMs));
    return this.dispatchNow(conn, host, kind, payload, timeoutMs);
  }

  private dispatchNow<K extends CommandKind>(
    conn: Connection,
    host: string,
    kind: K,
    payload: CommandPayload<K>,
    timeoutMs?: number,
  ): Promise<AnswerMessage> {
    const app = this.app();
    const timeout = timeoutMs ?? app.settings.get(AGENT_COMMAND_TIMEOUT) * 1000;
    const id = app.ids.uuid();
    const message = {
      type: 'command',
      id,
      host,
      kind,
      payload: validatePayload(kind, payload),
      timeoutMs: timeout,
    };
    if (conn.ws.readyState !== conn.ws.OPEN)
      return Promise.reject(agentUnavailable(`Host ${host} disconnected before ${kind} could be sent`));
    return new Promise<AnswerMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.inflight.delete(id);
        reject(
          new ApiError(
            ErrorCode.INTERNAL_ERROR,
            CsErrorCode.OPERATION_TIMED_OUT,
            `Host ${host} did not answer ${kind} within ${timeout} ms`,
          ),
        );
      }, timeout + 1000);
      this.inflight.set(id, { conn, host, kind, resolve, reject, timer });
      this.write(conn, message as ServerMessage);
    });
  }

  private write(conn: Connection, message: ServerMessage): void {
    if (conn.ws.readyState === conn.ws.OPEN) conn.ws.send(encode(message));
  }

  /**
   * Makes a pending host a managed one: the caller has inserted its row (in its transaction);
   * this tells the agent it is ready. `checked` is the startup whose token the caller verified.
   * Resolves true once the agent acknowledged.
   */
  async adopt(row: Pick<HostRow, 'id' | 'uuid' | 'name'>, checked: StartupMessage): Promise<boolean> {
    const key = row.name.toLowerCase();
    const waiting = this.pending.get(key);
    // Another connection may have presented the name since the caller checked the token.
    if (waiting?.startup !== checked || waiting.conn.ws.readyState !== waiting.conn.ws.OPEN) return false;
    this.pending.delete(key);
    const now = this.app().clock.now();
    const session = this.attach(waiting.conn, row, now);
    const lists = await this.serverLists([row.id]);
    const ok = await this.sendReady(session, true, lists.get(row.id));
    if (ok) await this.reportVms([{ hostId: row.id, vms: waiting.startup.vms, startup: true }]);
    return ok;
  }

  /**
   * Asks the agent to re-run its startup for the host (reconnectHost); resolves when it is back Up.
   * A host held by another live server is reconnected there (forward).
   */
  async reconnect(hostId: number, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    const session = this.byId.get(hostId);
    if (!session?.conn) {
      const where = await this.peers.holderOf(hostId);
      if (where?.peer) {
        const answer = await this.forward(hostId, 'reconnect', {}, timeoutMs, where.name);
        if (!answer.ok) throw agentUnavailable(answer.error.message);
        return;
      }
    }
    if (!session?.conn)
      throw agentUnavailable(
        `Host ${session?.name ?? hostId} is not connected; its agent must connect first`,
      );
    session.ready = false;
    await this.dispatch(session.conn, session.name, 'reconnect', {}, timeoutMs);
    const deadline = Date.now() + timeoutMs;
    while (!this.isHeld(hostId)) {
      if (Date.now() > deadline) throw agentUnavailable(`Host ${session.name} did not reconnect in time`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Declares a host that is not Up Down at once (VM HA proved it dead or fenced it) rather than
   * after the Alert and Down waits; listeners run as for a host that timed out. False when the
   * host is Up again, already Down, or not held here.
   */
  async declareDown(hostId: number): Promise<boolean> {
    const s = this.byId.get(hostId);
    if (!s || s.status === 'Down' || s.status === 'Up' || (s.conn && s.ready)) return false;
    await this.setStatus([s], 'Down');
    return true;
  }

  /** Forgets a deleted host; its agent's next startup for the name waits for addHost again. */
  forget(hostId: number): void {
    const s = this.byId.get(hostId);
    if (!s) return;
    this.byId.delete(hostId);
    this.sessions.delete(s.name.toLowerCase());
    s.conn?.hosts.delete(s.name.toLowerCase());
    if (s.conn)
      this.write(s.conn, { type: 'error', code: 'unknownHost', host: s.name, message: 'host was deleted' });
  }

  private attach(conn: Connection, row: Pick<HostRow, 'id' | 'uuid' | 'name'>, now: number): Session {
    const { id, uuid, name } = row;
    const key = name.toLowerCase();
    const known = this.sessions.get(key);
    const previous = known?.id === id ? known : undefined;
    // A second agent presenting the same host wins: the first one is most likely gone.
    if (known?.conn && known.conn !== conn) known.conn.hosts.delete(key);
    const session: Session = previous ?? {
      id,
      uuid,
      name,
      ready: false,
      status: 'Connecting',
      lastPing: now,
      since: now,
    };
    session.conn = conn;
    session.ready = false;
    session.lastPing = now;
    this.sessions.set(key, session);
    this.byId.set(id, session);
    conn.hosts.add(key);
    return session;
  }

  /** Tells the agent the host is ready; `record` false leaves marking it Up to the caller (batches). */
  private async sendReady(session: Session, record = true, servers?: string[]): Promise<boolean> {
    const app = this.app();
    const conn = session.conn!;
    try {
      const answer = await this.dispatch(
        conn,
        session.name,
        'ready',
        {
          hostId: session.uuid,
          pingIntervalMs: app.settings.get(PING_INTERVAL) * 1000,
          ...(servers ? { managementServers: servers } : {}),
        },
        READY_TIMEOUT_MS,
      );
      if (!answer.ok) throw new Error(answer.error.message);
    } catch (err) {
      app.log.warn({ host: session.name, err: (err as Error).message }, 'agent did not acknowledge ready');
      return false;
    }
    if (session.conn !== conn) return false;
    session.ready = true;
    session.lastPing = app.clock.now();
    if (record) await this.setStatus([session], 'Up');
    return true;
  }

  private onConnection(ws: WebSocket, remote: string): void {
    const conn: Connection = { ws, remote, hosts: new Set() };
    this.connections.add(conn);
    this.app().log.info({ remote }, 'agent connected');
    ws.on('message', (data, isBinary) => {
      try {
        this.onFrame(conn, isBinary ? (data as Buffer) : data.toString());
      } catch (err) {
        this.app().log.error({ err, remote }, 'agent message handling failed');
      }
    });
    ws.on('error', (err) => this.app().log.warn({ err: err.message, remote }, 'agent connection error'));
    ws.on('close', () => {
      this.connections.delete(conn);
      this.onClose(conn).catch((err) => this.app().log.error({ err }, 'agent disconnect handling failed'));
    });
  }

  private onFrame(conn: Connection, frame: string | Buffer): void {
    const parsed = parseMessage(frame);
    if (!parsed.ok) {
      this.app().log.warn(
        { remote: conn.remote, code: parsed.error.code, error: parsed.error.message },
        'rejected agent message',
      );
      this.write(conn, parsed.error);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case 'startup':
        this.onStartup(conn, m);
        return;
      case 'ping':
        this.onPing(conn, m).catch((err) => this.app().log.error({ err }, 'ping handling failed'));
        return;
      case 'answer':
        this.onAnswer(conn, m);
        return;
      case 'error':
        this.app().log.warn(
          { remote: conn.remote, code: m.code, id: m.id, host: m.host },
          `agent reported: ${m.message}`,
        );
        if (m.id) this.failInflight(m.id, m.message);
        return;
      default:
        this.write(conn, {
          type: 'error',
          code: 'unsupported',
          message: `the server does not accept ${m.type} messages`,
        });
    }
  }

  private failInflight(id: string, message: string): void {
    const f = this.inflight.get(id);
    if (!f) return;
    this.inflight.delete(id);
    clearTimeout(f.timer);
    f.resolve({ type: 'answer', id, host: f.host, ok: false, error: { code: 'malformed', message } });
  }

  private onAnswer(conn: Connection, m: AnswerMessage): void {
    const f = this.inflight.get(m.id);
    if (!f || f.host !== m.host) {
      this.write(conn, {
        type: 'error',
        code: 'malformed',
        id: m.id,
        host: m.host,
        message: `no command ${m.id} is waiting for an answer from ${m.host}`,
      });
      return;
    }
    this.inflight.delete(m.id);
    clearTimeout(f.timer);
    if (m.ok && f.kind === 'ready') {
      // The agent's first ping can be in the same read as this answer, before any promise runs.
      const s = this.sessions.get(m.host.toLowerCase());
      if (s?.conn === conn) s.ready = true;
    }
    if (m.ok) {
      const r = parseResult(f.kind, m.result);
      if (!r.ok) {
        f.resolve({
          type: 'answer',
          id: m.id,
          host: m.host,
          ok: false,
          error: { code: 'malformed', message: r.message },
        });
        return;
      }
      f.resolve({ ...m, result: r.result });
      return;
    }
    f.resolve(m);
  }

  private onStartup(conn: Connection, m: StartupMessage): void {
    if (m.protocolVersion !== PROTOCOL_VERSION) {
      this.write(conn, {
        type: 'error',
        code: 'version',
        host: m.host,
        message: `this management server speaks protocol version ${PROTOCOL_VERSION}, the agent ${m.protocolVersion}`,
      });
      return;
    }
    this.startupQueue.push({ conn, startup: m });
    this.scheduleFlush();
  }

  /** Startups of thousands of simulated hosts arrive together: they are looked up in batches. */
  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.flushStartups())
      .catch((err) => this.app().log.error({ err }, 'startup handling failed'))
      .finally(() => {
        this.flushing = undefined;
        if (this.startupQueue.length > 0) this.scheduleFlush();
      });
  }

  private async flushStartups(): Promise<void> {
    const app = this.app();
    const batch = this.startupQueue;
    this.startupQueue = [];
    for (const part of chunks(batch)) {
      const rows = await app.store.db
        .selectFrom('hosts')
        .selectAll()
        .where(
          'name',
          'in',
          part.map((s) => s.startup.host.toLowerCase()),
        )
        .where('removed', 'is', null)
        .execute();
      const byName = new Map(rows.map((r) => [r.name.toLowerCase(), r]));
      const adopted: { session: Session; row: HostRow; startup: StartupMessage }[] = [];
      for (const { conn, startup } of part) {
        if (conn.ws.readyState !== conn.ws.OPEN) continue;
        const key = startup.host.toLowerCase();
        const row = byName.get(key);
        if (!row) {
          if (this.pending.size >= MAX_PENDING && !this.pending.has(key)) {
            this.write(conn, {
              type: 'error',
              code: 'unauthorized',
              host: startup.host,
              message: 'too many hosts are waiting to be added',
            });
            continue;
          }
          this.pending.set(key, { conn, startup });
          this.write(conn, {
            type: 'pending',
            host: startup.host,
            message: `host ${startup.host} is waiting to be added (addHost url=agent://${startup.host}, password=<token>)`,
          });
          continue;
        }
        if (!tokenMatches(startup.token, row.token_hash)) {
          app.log.warn({ host: startup.host, remote: conn.remote }, 'agent presented a wrong token');
          this.write(conn, {
            type: 'error',
            code: 'unauthorized',
            host: startup.host,
            message: 'wrong token for this host',
          });
          continue;
        }
        if (row.hypervisor && row.hypervisor !== startup.hypervisor) {
          this.write(conn, {
            type: 'error',
            code: 'unauthorized',
            host: startup.host,
            message: `host ${row.name} is registered as ${row.hypervisor}, the agent runs ${startup.hypervisor}`,
          });
          continue;
        }
        adopted.push({ session: this.attach(conn, row, app.clock.now()), row, startup });
      }
      if (adopted.length === 0) continue;
      await this.recordResources(adopted);
      const lists = await this.serverLists(adopted.map((a) => a.row.id));
      const acknowledged = await Promise.all(
        adopted.map((a) => this.sendReady(a.session, false, lists.get(a.row.id))),
      );
      const ready = adopted.filter((_, i) => acknowledged[i]);
      if (ready.length > 0)
        await this.setStatus(
          ready.map((a) => a.session),
          'Up',
        );
      await this.reportVms(ready.map((a) => ({ hostId: a.row.id, vms: a.startup.vms, startup: true })));
    }
  }

  /** Agents report their hardware on every startup; a host upgraded in place shows its new size. */
  private async recordResources(adopted: { row: HostRow; startup: StartupMessage }[]): Promise<void> {
    const db = this.app().store.db;
    for (const { row, startup: s } of adopted) {
      const changed =
        row.cpu_cores !== s.cpuCores ||
        row.cpu_sockets !== s.cpuSockets ||
        row.cpu_speed_mhz !== s.cpuMhz ||
        Number(row.memory_bytes) !== s.memoryBytes ||
        Number(row.local_storage_bytes) !== s.localStorageBytes ||
        row.private_ip !== s.privateIp ||
        row.agent_version !== s.agentVersion ||
        row.hypervisor_version !== s.hypervisorVersion;
      if (!changed) continue;
      await db
        .updateTable('hosts')
        .set({
          cpu_cores: s.cpuCores,
          cpu_sockets: s.cpuSockets,
          cpu_speed_mhz: s.cpuMhz,
          memory_bytes: s.memoryBytes,
          local_storage_bytes: s.localStorageBytes,
          private_ip: s.privateIp,
          agent_version: s.agentVersion,
          hypervisor_version: s.hypervisorVersion,
        })
        .where('id', '=', row.id)
        .execute();
    }
  }

  private async onPing(conn: Connection, m: PingMessage): Promise<void> {
    const now = this.app().clock.now();
    const live: Session[] = [];
    const reports: VmStateReport[] = [];
    for (const entry of m.hosts) {
      const key = entry.host.toLowerCase();
      const s = this.sessions.get(key);
      if (!s || s.conn !== conn || !s.ready) {
        this.write(conn, {
          type: 'error',
          code: 'unknownHost',
          host: entry.host,
          message: `host ${entry.host} has no session on this connection; send startup first`,
        });
        continue;
      }
      s.lastPing = now;
      live.push(s);
      reports.push({ hostId: s.id, vms: entry.vms, startup: false });
    }
    const recovered = live.filter((s) => s.status !== 'Up');
    if (recovered.length > 0) await this.setStatus(recovered, 'Up');
    const stale = live.filter((s) => now - (s.persistedPing ?? 0) >= LAST_PING_PERSIST_MS);
    for (const s of stale) s.persistedPing = now;
    const db = this.app().store.db;
    for (const part of chunks(stale.map((s) => s.id)))
      await db.updateTable('hosts').set({ last_pinged: now }).where('id', 'in', part).execute();
    await this.reportVms(reports);
  }

  private async reportVms(reports: VmStateReport[]): Promise<void> {
    if (reports.length === 0) return;
    for (const listener of vmStateListeners) {
      try {
        await listener(this.app(), reports);
      } catch (err) {
        this.app().log.error({ err }, 'VM state reconciliation failed');
      }
    }
  }

  private async onClose(conn: Connection): Promise<void> {
    const gone: Session[] = [];
    for (const key of conn.hosts) {
      const s = this.sessions.get(key);
      if (s && s.conn === conn) {
        s.conn = undefined;
        s.ready = false;
        gone.push(s);
      }
    }
    for (const [key, p] of this.pending) if (p.conn === conn) this.pending.delete(key);
    for (const [id, f] of this.inflight) {
      if (f.conn === conn) {
        this.inflight.delete(id);
        clearTimeout(f.timer);
        f.reject(agentUnavailable(`Host ${f.host} disconnected before answering ${f.kind}`));
      }
    }
    this.app().log.info({ remote: conn.remote, hosts: gone.length }, 'agent disconnected');
    // A stopping server's agents fail over to its peers: their hosts stay Up, and whoever the
    // agent reaches next (or, if none, the server taking the hosts over) watches them.
    if (this.stopping) return;
    const up = gone.filter((s) => s.status === 'Up' || s.status === 'Connecting');
    if (up.length > 0) await this.setStatus(up, 'Disconnected');
  }

  /** Persists a status change for many hosts at once (thousands go Up together after a restart). */
  private async setStatus(all: Session[], status: HostStatus): Promise<void> {
    const app = this.app();
    const now = app.clock.now();
    // Only the server holding a host escalates it: one whose agent went to a peer meanwhile is the
    // peer's now, and this server forgets it (its listeners must not act on it either).
    const sessions = status === 'Up' ? all : await this.stillOurs(all);
    if (sessions.length === 0) return;
    for (const s of sessions) {
      s.status = status;
      if (status === 'Up') s.persistedPing = now;
      // Alert and Down are timed from the moment the host stopped being Up.
      if (status === 'Disconnected') s.since = now;
    }
    const leftUp = status === 'Disconnected';
    for (const part of chunks(sessions.map((s) => s.id))) {
      let q = app.store.db
        .updateTable('hosts')
        .set({
          state: status,
          ms_id: app.server.id,
          ...(status === 'Up' ? { disconnected: null, last_pinged: now } : {}),
          ...(leftUp ? { disconnected: now } : {}),
        })
        .where('id', 'in', part)
        .where('removed', 'is', null);
      // Another server may have taken the host meanwhile; only its owner escalates it.
      if (status !== 'Up') q = q.where('ms_id', '=', app.server.id);
      await q.execute();
    }
    if (status !== 'Up')
      app.log.warn(
        { hosts: sessions.slice(0, 20).map((s) => s.name), count: sessions.length },
        `hosts ${status}`,
      );
    for (const listener of statusListeners) {
      try {
        await listener(
          app,
          sessions.map((s) => s.id),
          status,
        );
      } catch (err) {
        app.log.error({ err }, 'host status listener failed');
      }
    }
  }

  /** What decides the server lists handed to agents; a change is announced to them. */
  private lbSettings(): string {
    const settings = this.app().settings;
    return `${settings.get(MANAGEMENT_SERVER_ADDRESSES)}|${settings.get(AGENT_LB_ALGORITHM)}`;
  }

  /** The management server list for each host (none when the `host` setting is empty). */
  private serverLists(hostIds: number[]): Promise<Map<number, string[]>> {
    return serverListsFor(this.app(), hostIds, this.port, this.listener instanceof HttpsServer);
  }

  /** The sessions whose hosts this server still holds; the others' sessions are dropped. */
  private async stillOurs(sessions: Session[]): Promise<Session[]> {
    const app = this.app();
    const ours = new Set<number>();
    for (const part of chunks(sessions.map((s) => s.id))) {
      const rows = await app.store.db
        .selectFrom('hosts')
        .select('id')
        .where('id', 'in', part)
        .where('removed', 'is', null)
        .where('ms_id', '=', app.server.id)
        .execute();
      for (const r of rows) ours.add(r.id);
    }
    for (const s of sessions) {
      if (ours.has(s.id) || s.conn) continue;
      this.byId.delete(s.id);
      if (this.sessions.get(s.name.toLowerCase()) === s) this.sessions.delete(s.name.toLowerCase());
    }
    return sessions.filter((s) => ours.has(s.id));
  }

  /**
   * Tells connected agents a changed ping.interval (by repeating `ready`); the new timeout counts
   * from now, so hosts still pinging at the old pace are not taken for silent meanwhile.
   */
  private async announce(interval: number, lb: string, now: number): Promise<void> {
    this.announcedInterval = interval;
    this.announcedLb = lb;
    const held = [...this.byId.values()].filter((s) => s.conn && s.ready);
    const lists = await this.serverLists(held.map((s) => s.id));
    for (const s of held) {
      if (!s.conn || !s.ready) continue;
      s.lastPing = now;
      const servers = lists.get(s.id);
      this.dispatch(
        s.conn,
        s.name,
        'ready',
        {
          hostId: s.uuid,
          pingIntervalMs: interval * 1000,
          ...(servers ? { managementServers: servers } : {}),
        },
        READY_TIMEOUT_MS,
      )
        .then((a) => {
          if (!a.ok) throw new Error(a.error.message);
        })
        .catch((err) =>
          this.app().log.warn(
            { host: s.name, err: err.message },
            'could not change the ping interval or server list',
          ),
        );
    }
  }

  /** Escalates silent hosts: Up → Disconnected (missed pings) → Alert → Down. */
  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const app = this.app();
      const now = app.clock.now();
      const interval = app.settings.get(PING_INTERVAL);
      const lb = this.lbSettings();
      if (interval !== this.announcedInterval || lb !== this.announcedLb)
        await this.announce(interval, lb, now);
      const pingTimeout = interval * 1000 * app.settings.get(PING_TIMEOUT);
      const alertWait = app.settings.get(ALERT_WAIT) * 1000;
      const downWait = app.settings.get(HOST_DOWN_WAIT) * 1000;
      const silent: Session[] = [];
      const alert: Session[] = [];
      const down: Session[] = [];
      for (const s of this.byId.values()) {
        if (s.status === 'Up' && now - s.lastPing > pingTimeout) silent.push(s);
        else if (s.status === 'Disconnected' && now - s.since > alertWait) alert.push(s);
        else if (s.status === 'Alert' && now - s.since > alertWait + downWait) down.push(s);
      }
      if (silent.length > 0) await this.setStatus(silent, 'Disconnected');
      if (alert.length > 0) await this.setStatus(alert, 'Alert');
      if (down.length > 0) await this.setStatus(down, 'Down');
      if (now - this.lastTakeover > TAKEOVER_EVERY_MS) await this.takeOverHosts();
      if (now - this.lastPeersRefresh > PEERS_REFRESH_MS) {
        this.lastPeersRefresh = now;
        await this.peers.refresh();
      }
    } catch (err) {
      this.app().log.error({ err }, 'host monitor failed');
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Hosts whose management server is gone (stopped, killed, or this server's previous run) become
   * ours to watch. A host that was Up stays Up: its agent is failing over (to this server or a
   * peer) and has the ping timeout to come back before it is Disconnected, so a management outage
   * makes no Disconnected → Alert → Down flap. Other states keep counting from where they were.
   */
  private async takeOverHosts(): Promise<void> {
    const app = this.app();
    const now = app.clock.now();
    this.lastTakeover = now;
    const db = app.store.db;
    const liveServers = liveServerIds(app);
    const orphans = await db
      .selectFrom('hosts')
      .select(['id', 'uuid', 'name', 'state', 'disconnected'])
      .where('removed', 'is', null)
      .where((eb) => eb.or([eb('ms_id', 'is', null), eb('ms_id', 'not in', liveServers)]))
      .execute();
    // A session this server kept for a host that went to a peer is stale: the host is taken anew.
    const fresh = orphans.filter((h) => !this.byId.get(h.id)?.conn);
    const taken = new Set<number>();
    for (const part of chunks(fresh.map((h) => h.id))) {
      // Re-checked in the update: the agent may have reached a live server since the read.
      await db
        .updateTable('hosts')
        .set({ ms_id: app.server.id })
        .where('id', 'in', part)
        .where((eb) => eb.or([eb('ms_id', 'is', null), eb('ms_id', 'not in', liveServers)]))
        .execute();
      const rows = await db
        .selectFrom('hosts')
        .select('id')
        .where('id', 'in', part)
        .where('ms_id', '=', app.server.id)
        .execute();
      for (const r of rows) taken.add(r.id);
    }
    for (const h of fresh) {
      if (!taken.has(h.id)) continue;
      // A Connecting host never came Up (hosts are written Connecting when added, and only Up and
      // the states after it since): it is not yet up rather than down, so it waits for its agent
      // and is never escalated, investigated or fenced; its VMs, if any, never ran there.
      const up = h.state === 'Up';
      const status = h.state as HostStatus;
      const since = up ? now : Number(h.disconnected ?? now);
      const s: Session = { id: h.id, uuid: h.uuid, name: h.name, ready: false, status, lastPing: now, since };
      this.byId.set(h.id, s);
      const key = h.name.toLowerCase();
      if (!this.sessions.get(key)?.conn) this.sessions.set(key, s);
    }
  }
}
