/**
 * The console proxy. A browser opens a WebSocket on the API's HTTP port (`/client/websockify?
 * token=…`, noVNC's binary subprotocol); the proxy redeems the one-time token, asks the VM's host
 * agent (openConsole) to connect back on the agent port at `/tunnel/<id>` with a one-time secret,
 * and splices the two WebSockets. The VM's VNC server never leaves 127.0.0.1 of its host, and the
 * host needs no way in besides the agent's own connection to the server.
 *
 * With several management servers, the browser may reach one that does not hold the host's
 * agent: that server opens a signed WebSocket to the peer holding it (agents/peers.ts,
 * `/peer/console` on the peer's agent port), which opens the agent's tunnel and relays bytes. The
 * session (events, idle timeout, keepalive) stays with the server the browser reached.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocket, WebSocketServer } from 'ws';
import { hashToken } from '../agents/gateway.ts';
import { PEER_CONSOLE_PATH, type Peer } from '../agents/peers.ts';
import type { App } from '../context.ts';
import { type EventOwner, recordEvent } from '../events/events.ts';
import { defineSetting } from '../settings/settings.ts';
import { consoleUnavailable, WEBSOCKET_PATH } from './endpoint.ts';
import { redeemConsoleToken } from './tokens.ts';

export const TUNNEL_SECRET_HEADER = 'x-nimbostack-tunnel-secret';
/** How long the agent has to connect the tunnel after openConsole. */
const TUNNEL_WAIT_MS = 15_000;
/** Stop reading one side while this much waits to be sent to the other. */
const HIGH_WATER = 1024 * 1024;
const KEEPALIVE_MS = 30_000;

/** Upstream's setting, in its unit: a viewer session without keyboard or mouse input ends. */
export const CONSOLE_SESSION_TIMEOUT = defineSetting({
  name: 'consoleproxy.session.timeout',
  category: 'Console Proxy',
  type: 'Integer',
  defaultValue: 300_000,
  min: 1000,
  description:
    'Milliseconds a console session stays open without keyboard or mouse input from the viewer; then it is closed.',
});

/** Close codes (4000–4999 are the application's) with a reason noVNC logs and shows. */
export const CloseCode = {
  TOKEN: 4001,
  NOT_RUNNING: 4004,
  HOST: 4005,
  TUNNEL: 4006,
  IDLE: 4008,
  SHUTDOWN: 1001,
} as const;

/**
 * Whether a frame from the viewer is input. noVNC keeps asking for screen updates
 * (FramebufferUpdateRequest, type 3, 10 bytes) whether or not anyone is there, so a frame made of
 * those alone is not; anything else (keys, pointer, clipboard, the handshake) is.
 */
function isInput(frame: Buffer): boolean {
  if (frame.length === 0 || frame.length % 10 !== 0) return true;
  for (let i = 0; i < frame.length; i += 10) if (frame[i] !== 3) return true;
  return false;
}

interface Arrived {
  ws: WebSocket;
  held: { take(): Buffer[] };
}

interface PendingTunnel {
  secretHash: string;
  resolve(tunnel: Arrived): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** WebSocket close reasons are limited to 123 bytes. */
function reasonText(text: string): string {
  const b = Buffer.from(text);
  return b.length <= 123
    ? text
    : `${b
        .subarray(0, 120)
        .toString('utf8')
        .replace(/\uFFFD+$/, '')}...`;
}

/** The close code passed on to the other side: an application code (a relay's refusal) or 1000. */
function appCode(code: number): number {
  return code >= 4000 && code < 5000 ? code : 1000;
}

function closeWith(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)
    ws.close(code, reasonText(reason));
}

/**
 * Holds frames that arrive before the session is spliced (the RFB server speaks first, often
 * before openConsole's answer is back); `take` stops holding and hands them over in order.
 */
function hold(ws: WebSocket): { take(): Buffer[] } {
  const early: Buffer[] = [];
  const keep = (data: Buffer) => early.push(data);
  ws.on('message', keep);
  return {
    take() {
      ws.off('message', keep);
      return early;
    },
  };
}

/** Forwards every frame of `from` to `to` as binary, pausing `from` while `to` is backed up. */
function forward(from: WebSocket, to: WebSocket): void {
  let paused = false;
  from.on('message', (data: Buffer) => {
    if (to.readyState !== WebSocket.OPEN) return;
    to.send(data, { binary: true }, () => {
      if (paused && to.bufferedAmount < HIGH_WATER) {
        paused = false;
        from.resume();
      }
    });
    if (!paused && to.bufferedAmount >= HIGH_WATER) {
      paused = true;
      from.pause();
    }
  });
}

export class ConsoleProxy {
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 4 * 1024 * 1024,
    // noVNC before 1.4 asks for "binary"; newer ones ask for nothing. Both get raw binary frames.
    handleProtocols: (protocols) => (protocols.has('binary') ? 'binary' : false),
  });
  private readonly pending = new Map<string, PendingTunnel>();
  private readonly open = new Set<WebSocket>();

  constructor(private readonly app: App) {}

  /** Serves the browser side on the HTTP server and the agent side on the gateway. */
  register(fastify: FastifyInstance): void {
    fastify.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== `/${WEBSOCKET_PATH}`) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        this.onBrowser(ws, req).catch((err) => {
          this.app.log.error({ err }, 'console session failed');
          closeWith(ws, CloseCode.TUNNEL, 'console session failed on the management server');
        });
      });
    });
    this.app.agents.tunnelHandler = (ws, req) => this.onTunnel(ws, req);
    this.app.agents.peerConsoleHandler = (ws, query) => {
      this.onPeer(ws, query).catch((err) => {
        this.app.log.error({ err }, 'console relay for a peer failed');
        closeWith(ws, CloseCode.TUNNEL, 'console relay failed on the management server holding the host');
      });
    };
  }

  /** Closes every session; the server is stopping. */
  stop(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('the management server is stopping'));
    }
    this.pending.clear();
    for (const ws of this.open) closeWith(ws, CloseCode.SHUTDOWN, 'the management server is stopping');
    this.wss.close();
  }

  private async onBrowser(ws: WebSocket, req: IncomingMessage): Promise<void> {
    const { app } = this;
    const held = hold(ws);
    this.open.add(ws);
    ws.once('close', () => this.open.delete(ws));
    ws.on('error', (err) => app.log.debug({ err: err.message }, 'console browser socket error'));
    const query = new URL(req.url ?? '/', 'http://console').searchParams;
    const redeemed = await redeemConsoleToken(app, query.get('token') ?? '', query.get('extra') ?? undefined);
    if (!redeemed.ok) return closeWith(ws, CloseCode.TOKEN, redeemed.reason);
    const token = redeemed.row;
    const vm = await app.store.db
      .selectFrom('vms')
      .selectAll()
      .where('id', '=', token.vm_id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!vm) return closeWith(ws, CloseCode.NOT_RUNNING, 'the VM no longer exists');
    const why = consoleUnavailable(vm);
    if (why) return closeWith(ws, CloseCode.NOT_RUNNING, why);
    const hostId = vm.host_id!;
    const session = {
      owner: { userId: token.user_id, accountId: token.account_id, domainId: token.domain_id },
      vm: { uuid: vm.uuid, name: vm.instance_name },
    };
    if (!app.agents.isHeld(hostId)) {
      const where = await app.agents.peers.holderOf(hostId);
      if (!where?.peer) return closeWith(ws, CloseCode.HOST, await this.hostAway(hostId));
      let relay: Arrived;
      try {
        relay = await this.relayFrom(where.peer, hostId, vm.instance_name);
      } catch (err) {
        return closeWith(
          ws,
          CloseCode.TUNNEL,
          `management server ${where.peer.name}, which holds host ${where.name}, could not be reached: ${(err as Error).message}`,
        );
      }
      if (ws.readyState !== WebSocket.OPEN) {
        relay.ws.close(1000, 'the browser left');
        return;
      }
      return this.splice({ ws, held }, relay, session);
    }

    const agent = await this.openTunnel(ws, hostId, vm.instance_name, 'the browser left');
    if (agent) this.splice({ ws, held }, agent, session);
  }

  /**
   * Has the host's agent open its console tunnel for `vm` and waits for it to arrive. On failure
   * `ws` is closed with the reason; when `ws` went away meanwhile the tunnel is closed. Either way
   * nothing is returned.
   */
  private async openTunnel(
    ws: WebSocket,
    hostId: number,
    vm: string,
    leftReason: string,
  ): Promise<Arrived | undefined> {
    const tunnel = randomBytes(12).toString('base64url');
    const secret = randomBytes(24).toString('base64url');
    const arrival = this.expectTunnel(tunnel, secret);
    let agent: Arrived;
    try {
      await this.app.agents.call(hostId, 'openConsole', { vm, tunnel, secret }, TUNNEL_WAIT_MS);
      agent = await arrival;
    } catch (err) {
      this.dropPending(tunnel);
      arrival.then(
        (t) => t.ws.close(1000, 'the console session was abandoned'),
        () => undefined,
      );
      closeWith(ws, CloseCode.TUNNEL, `the host could not open the console: ${(err as Error).message}`);
      return undefined;
    }
    if (ws.readyState !== WebSocket.OPEN) {
      agent.ws.close(1000, leftReason);
      return undefined;
    }
    return agent;
  }

  /** Opens the relay to the peer holding the host; resolves once it is open (bytes may follow). */
  private async relayFrom(peer: Peer, hostId: number, vm: string): Promise<Arrived> {
    const ws = this.app.agents.peers.connect(
      peer,
      `${PEER_CONSOLE_PATH}?${new URLSearchParams({ host: String(hostId), vm })}`,
    );
    const held = hold(ws);
    ws.on('error', (err) => this.app.log.debug({ err: err.message }, 'console relay socket error'));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('close', (code, reason) => reject(new Error(`closed (${code}) ${reason.toString()}`)));
    });
    return { ws, held };
  }

  /**
   * A peer relays a browser's session to a VM on a host held here: the agent's tunnel is opened
   * as for a local browser and the two sockets are spliced byte for byte (the peer keeps the
   * session's events and timeouts).
   */
  private async onPeer(ws: WebSocket, query: URLSearchParams): Promise<void> {
    const { app } = this;
    const held = hold(ws);
    this.open.add(ws);
    ws.once('close', () => this.open.delete(ws));
    ws.on('error', (err) => app.log.debug({ err: err.message }, 'console relay socket error'));
    const hostId = Number(query.get('host'));
    const vm = query.get('vm') ?? '';
    if (!app.agents.isHeld(hostId))
      return closeWith(
        ws,
        CloseCode.HOST,
        `the host is not connected to management server ${app.server.name}`,
      );
    const agent = await this.openTunnel(ws, hostId, vm, 'the peer left');
    if (!agent) return;
    const relay = agent.ws;
    this.open.add(relay);
    for (const data of agent.held.take()) ws.send(data, { binary: true });
    for (const data of held.take()) relay.send(data, { binary: true });
    forward(ws, relay);
    forward(relay, ws);
    ws.once('close', (code, reason) =>
      closeWith(relay, 1000, reason.toString() || `the peer closed (${code})`),
    );
    relay.once('close', (code, reason) => {
      this.open.delete(relay);
      closeWith(ws, appCode(code), reason.toString() || 'the VM console closed');
    });
    relay.on('error', (err) => app.log.debug({ err: err.message }, 'console tunnel socket error'));
  }

  /** Why the VM's host cannot be reached: it is down, or the server that held its agent is gone. */
  private async hostAway(hostId: number): Promise<string> {
    const host = await this.app.store.db
      .selectFrom('hosts')
      .select(['name', 'state', 'ms_id'])
      .where('id', '=', hostId)
      .executeTakeFirst();
    if (host?.state === 'Up' && host.ms_id !== null && host.ms_id !== this.app.server.id)
      return `host ${host.name} was connected to a management server that is no longer running; its agent has not reconnected yet`;
    return `host ${host?.name ?? hostId} is ${host?.state ?? 'gone'}: its agent is not connected`;
  }

  private splice(
    b: Arrived,
    a: Arrived,
    session: { owner: EventOwner; vm: { uuid: string; name: string } },
  ): void {
    const { app } = this;
    const browser = b.ws;
    const agent = a.ws;
    this.open.add(agent);
    for (const data of a.held.take()) browser.send(data, { binary: true });
    for (const data of b.held.take()) agent.send(data, { binary: true });
    forward(browser, agent);
    forward(agent, browser);
    const started = Date.now();
    const event = (type: 'VNC.CONNECT' | 'VNC.DISCONNECT', description: string) =>
      recordEvent({ app }, app.store.db, session.owner, {
        type,
        description,
        resourceType: 'VirtualMachine',
        resourceId: session.vm.uuid,
      }).catch((err) => app.log.error({ err }, 'could not record a console event'));
    event('VNC.CONNECT', `console session to VM ${session.vm.uuid} opened`);
    app.log.info({ vm: session.vm.uuid }, 'console session open');

    // Dead browsers (a laptop lid closed) do not close their sockets; pings find them.
    let alive = true;
    browser.on('pong', () => {
      alive = true;
    });
    const keepalive = setInterval(() => {
      if (!alive) return browser.terminate();
      alive = false;
      browser.ping();
    }, KEEPALIVE_MS);
    keepalive.unref();

    // A console left open with nobody at it holds a tunnel and a VNC client: it is closed.
    let lastInput = Date.now();
    let idle = false;
    browser.on('message', (data: Buffer) => {
      if (isInput(data)) lastInput = Date.now();
    });
    const idleCheck = setInterval(
      () => {
        const timeout = app.settings.get(CONSOLE_SESSION_TIMEOUT);
        if (Date.now() - lastInput < timeout) return;
        const text = `the console session was closed after ${Math.round(timeout / 1000)} s without keyboard or mouse input`;
        idle = true;
        closeWith(browser, CloseCode.IDLE, text);
        closeWith(agent, 1000, text);
      },
      Math.min(15_000, Math.max(250, app.settings.get(CONSOLE_SESSION_TIMEOUT) / 4)),
    );
    idleCheck.unref();

    let ended = false;
    const end = (by: string) => {
      if (ended) return;
      ended = true;
      clearInterval(keepalive);
      clearInterval(idleCheck);
      this.open.delete(agent);
      event('VNC.DISCONNECT', `console session to VM ${session.vm.uuid} closed by ${by}`);
      app.log.info(
        { vm: session.vm.uuid, by, seconds: (Date.now() - started) / 1000 },
        'console session closed',
      );
    };
    browser.once('close', () => {
      closeWith(agent, 1000, 'the browser closed the console');
      end(idle ? 'the idle timeout' : 'the browser');
    });
    agent.once('close', (code, reason) => {
      closeWith(browser, appCode(code), reason.toString() || 'the VM console closed');
      end(idle ? 'the idle timeout' : 'the host');
    });
    agent.on('error', (err) => app.log.debug({ err: err.message }, 'console tunnel socket error'));
  }

  private expectTunnel(tunnel: string, secret: string): Promise<Arrived> {
    return new Promise<Arrived>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tunnel);
        reject(new Error(`the host did not connect the console tunnel within ${TUNNEL_WAIT_MS / 1000} s`));
      }, TUNNEL_WAIT_MS);
      this.pending.set(tunnel, { secretHash: hashToken(secret), resolve, reject, timer });
    });
  }

  private dropPending(tunnel: string): void {
    const p = this.pending.get(tunnel);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(tunnel);
  }

  /** An agent's tunnel WebSocket: accepted once, for a tunnel this server asked for, with its secret. */
  private onTunnel(ws: WebSocket, req: IncomingMessage): void {
    const id = decodeURIComponent((req.url ?? '').split('?')[0].slice('/tunnel/'.length));
    const p = this.pending.get(id);
    const given = req.headers[TUNNEL_SECRET_HEADER];
    const secret = typeof given === 'string' ? given : '';
    const matches =
      p !== undefined &&
      timingSafeEqual(Buffer.from(hashToken(secret), 'hex'), Buffer.from(p.secretHash, 'hex'));
    if (!p || !matches) {
      this.app.log.warn(
        { remote: req.socket.remoteAddress },
        'refused a console tunnel with an unknown id or secret',
      );
      closeWith(ws, CloseCode.TOKEN, 'unknown console tunnel or wrong secret');
      return;
    }
    this.dropPending(id);
    const held = hold(ws);
    // A tunnel whose session never starts (the browser left) must not linger.
    ws.on('error', () => undefined);
    p.resolve({ ws, held });
  }
}
