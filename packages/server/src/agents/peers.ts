/**
 * The channel between the management servers of one cloud. A host's agent holds one connection,
 * to one server; a command for that host that reaches another server (the load balancer picked
 * it) is forwarded to the server holding the agent, and console sessions are relayed the same way.
 *
 * Where: each server listens on its agent port (the data-centre side, which agents and peers reach
 * and the public API's load balancer need not expose) and records its URL in
 * management_servers.peer_url. Requests are plain HTTP(S) POSTs (`/peer/send`) and WebSocket
 * upgrades (`/peer/console`) on that port.
 *
 * Who: every request carries an HMAC-SHA256 over its method, path, sender, addressee, time, nonce
 * and the SHA-256 of its body, keyed with a key derived from the cloud's secret key (every server
 * of the cloud holds it; nobody else does). The addressee refuses a request addressed to another
 * server, one whose time is more than PEER_SKEW_MS away from its clock, and a nonce it has seen
 * within that window (replays). Answers are signed with the request's nonce, so a forged answer is
 * refused too.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { networkInterfaces } from 'node:os';
import { rootCertificates } from 'node:tls';
import WebSocket from 'ws';
import { liveServerIds } from '../cluster/heartbeat.ts';
import type { App } from '../context.ts';

export const PEER_SEND_PATH = '/peer/send';
export const PEER_CONSOLE_PATH = '/peer/console';
/** How far a request's time may be from the addressee's clock; nonces are kept twice as long. */
export const PEER_SKEW_MS = 30_000;
/** Largest body a peer accepts (a command payload; routers' rule sets are the largest). */
export const PEER_MAX_BODY = 16 * 1024 * 1024;
const KEY_PURPOSE = 'nimbostack management-server peer channel v1';

export const PeerHeader = {
  FROM: 'x-nimbostack-peer-from',
  TO: 'x-nimbostack-peer-to',
  TIME: 'x-nimbostack-peer-time',
  NONCE: 'x-nimbostack-peer-nonce',
  SIGNATURE: 'x-nimbostack-peer-signature',
} as const;

/** Another live management server of the cloud. */
export interface Peer {
  id: number;
  uuid: string;
  name: string;
  url: string;
}

const sha256 = (body: Buffer | string) => createHash('sha256').update(body).digest('hex');

/** The URL peers reach this server's agent port at. */
export function peerUrlOf(
  config: { host: string; internalAddress?: string },
  port: number,
  tls: boolean,
): string {
  let address = config.internalAddress;
  if (!address) address = config.host !== '0.0.0.0' && config.host !== '::' ? config.host : firstAddress();
  const host = address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
  return `${tls ? 'https' : 'http'}://${host}:${port}`;
}

function firstAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

export type Verdict = { ok: true; from: string } | { ok: false; reason: string };

export class PeerChannel {
  private key?: Buffer;
  /** Nonces seen, with when they may be forgotten (their request is too old by then anyway). */
  private readonly seen = new Map<string, number>();
  /** Hosts whose agents are held by live peers: host id → peer id (a hint; see holderOf). */
  private remote = new Map<number, number>();
  private ca?: (string | Buffer)[];

  constructor(private readonly app: () => App) {}

  /**
   * Trusts the agent port's certificate (besides the public CAs) for https peers: the servers of a
   * cloud share a certificate for that port or its private CA.
   */
  trust(ca: Buffer): void {
    this.ca = [...rootCertificates, ca];
  }

  private secret(): Buffer {
    this.key ??= this.app().secrets.deriveKey(KEY_PURPOSE);
    return this.key;
  }

  private mac(text: string): string {
    return createHmac('sha256', this.secret()).update(text).digest('hex');
  }

  /** The headers of a request from this server to `to` (its uuid). */
  sign(method: string, path: string, to: string, body: Buffer | string = ''): Record<string, string> {
    const app = this.app();
    const time = String(app.clock.now());
    const nonce = randomBytes(16).toString('base64url');
    const from = app.server.uuid;
    return {
      [PeerHeader.FROM]: from,
      [PeerHeader.TO]: to,
      [PeerHeader.TIME]: time,
      [PeerHeader.NONCE]: nonce,
      [PeerHeader.SIGNATURE]: this.mac(
        ['request', method.toUpperCase(), path, from, to, time, nonce, sha256(body)].join('\n'),
      ),
    };
  }

  /** Checks a request's headers: addressed here, signed with the cloud's key, fresh, not replayed. */
  verify(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer | string = ''): Verdict {
    const h = (name: string) => {
      const v = headers[name];
      return typeof v === 'string' ? v : '';
    };
    const from = h(PeerHeader.FROM);
    const to = h(PeerHeader.TO);
    const time = h(PeerHeader.TIME);
    const nonce = h(PeerHeader.NONCE);
    const signature = h(PeerHeader.SIGNATURE);
    if (!from || !to || !time || !nonce || !signature) return { ok: false, reason: 'unsigned request' };
    const app = this.app();
    if (to !== app.server.uuid) return { ok: false, reason: 'the request is addressed to another server' };
    const expected = Buffer.from(
      this.mac(['request', method.toUpperCase(), path, from, to, time, nonce, sha256(body)].join('\n')),
      'hex',
    );
    const given = Buffer.from(signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return { ok: false, reason: 'wrong signature' };
    const now = app.clock.now();
    if (!/^\d+$/.test(time) || Math.abs(now - Number(time)) > PEER_SKEW_MS)
      return { ok: false, reason: 'the request is too old or from the future' };
    this.forgetOldNonces(now);
    if (this.seen.has(nonce)) return { ok: false, reason: 'replayed request' };
    this.seen.set(nonce, now + 2 * PEER_SKEW_MS);
    return { ok: true, from };
  }

  private forgetOldNonces(now: number): void {
    // Insertion order is time order: the oldest are first.
    for (const [nonce, until] of this.seen) {
      if (until > now) break;
      this.seen.delete(nonce);
    }
  }

  /** The signature of an answer to the request that carried `nonce`. */
  signAnswer(nonce: string, body: string): string {
    return this.mac(['answer', nonce, sha256(body)].join('\n'));
  }

  private answerMatches(nonce: string, body: string, signature: string | undefined): boolean {
    const expected = Buffer.from(this.signAnswer(nonce, body), 'hex');
    const given = Buffer.from(signature ?? '', 'hex');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** Live peers: heart-beating, Up, and with a recorded address. */
  private livePeers() {
    const app = this.app();
    return app.store.db
      .selectFrom('management_servers')
      .where('id', 'in', liveServerIds(app))
      .where('peer_url', 'is not', null)
      .where('id', '!=', app.server.id);
  }

  /** The live peer holding the host's agent, read from the database (authoritative, unlike isRemote). */
  async holderOf(hostId: number): Promise<{ name: string; peer?: Peer } | undefined> {
    const app = this.app();
    const host = await app.store.db
      .selectFrom('hosts')
      .select(['name', 'ms_id', 'state'])
      .where('id', '=', hostId)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!host) return undefined;
    if (host.ms_id === null || host.ms_id === app.server.id || host.state !== 'Up')
      return { name: host.name };
    const peer = await this.livePeers()
      .select(['id', 'uuid', 'name', 'peer_url'])
      .where('id', '=', host.ms_id)
      .executeTakeFirst();
    if (!peer) return { name: host.name };
    return { name: host.name, peer: { id: peer.id, uuid: peer.uuid, name: peer.name, url: peer.peer_url! } };
  }

  /** Re-reads which hosts live peers hold (the gateway's monitor calls this every few seconds). */
  async refresh(): Promise<void> {
    const app = this.app();
    const peers = await this.livePeers().select('id').execute();
    if (peers.length === 0) {
      this.remote = new Map();
      return;
    }
    const rows = await app.store.db
      .selectFrom('hosts')
      .select(['id', 'ms_id'])
      .where('removed', 'is', null)
      .where('state', '=', 'Up')
      .where(
        'ms_id',
        'in',
        peers.map((p) => p.id),
      )
      .execute();
    this.remote = new Map(rows.map((r) => [r.id, r.ms_id!]));
  }

  /** Whether a live peer held the host's agent at the last refresh. */
  isRemote(hostId: number): boolean {
    return this.remote.has(hostId);
  }

  /** Hosts held by live peers at the last refresh. */
  remoteHosts(): number[] {
    return [...this.remote.keys()];
  }

  /**
   * POSTs a signed JSON body to a peer and returns its signed JSON answer. Rejects with the
   * transport's error, a refusal (HTTP status other than 200), a bad answer signature, or
   * `PeerTimeout` after `timeoutMs`.
   */
  post(peer: Peer, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const text = JSON.stringify(body);
    const headers = this.sign('POST', path, peer.uuid, text);
    const nonce = headers[PeerHeader.NONCE];
    const url = new URL(path, peer.url);
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers: {
            ...headers,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
          },
          ...(url.protocol === 'https:' && this.ca ? { ca: this.ca } : {}),
        },
        (res) => {
          const parts: Buffer[] = [];
          let size = 0;
          res.on('data', (d: Buffer) => {
            size += d.length;
            if (size > PEER_MAX_BODY) req.destroy(new Error('the answer is too large'));
            else parts.push(d);
          });
          res.on('error', reject);
          res.on('end', () => {
            const answer = Buffer.concat(parts).toString('utf8');
            if (res.statusCode !== 200)
              return reject(new Error(`refused with HTTP ${res.statusCode}: ${answer.slice(0, 200)}`));
            const sig = res.headers[PeerHeader.SIGNATURE];
            if (!this.answerMatches(nonce, answer, typeof sig === 'string' ? sig : undefined))
              return reject(new Error('the answer is not signed with the cloud key'));
            try {
              resolve(JSON.parse(answer));
            } catch {
              reject(new Error('the answer is not JSON'));
            }
          });
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new PeerTimeout(`no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(text);
    });
  }

  /** Opens a signed WebSocket to a peer (`pathAndQuery` is signed whole). */
  connect(peer: Peer, pathAndQuery: string): WebSocket {
    const url = new URL(pathAndQuery, peer.url);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return new WebSocket(url, {
      headers: this.sign('GET', pathAndQuery, peer.uuid),
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      maxPayload: 16 * 1024 * 1024,
      ...(url.protocol === 'wss:' && this.ca ? { ca: this.ca } : {}),
    });
  }
}

export class PeerTimeout extends Error {}
