/**
 * What the management server's HTTP listener does before the API sees a request: TLS on the
 * API/UI port, size limits and slow-client timeouts, answers to requests too broken to route, and
 * the security headers every response carries (docs/security.md, "Transport: TLS, headers, limits").
 */
import { readFileSync, type Stats, unwatchFile, watchFile } from 'node:fs';
import { type ServerOptions, STATUS_CODES } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import type { ServerConfig } from '../config.ts';

/**
 * A listener for an API (the CloudStack API and UI port, or the EC2 port): the configured size
 * limits, timeouts and TLS, the security headers, and form bodies kept as text because each API
 * parses them by its own rules; other bodies are ignored.
 */
export function apiListener(
  config: ServerConfig,
  log: Logger,
  extra: Partial<FastifyServerOptions> = {},
): FastifyInstance {
  const fastify = Fastify({
    loggerInstance: log as unknown as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.requestContentSize,
    trustProxy: config.trustProxy,
    requestTimeout: config.requestTimeout,
    keepAliveTimeout: config.keepAliveTimeout,
    ...extra,
    ...serverOptions(config),
  } as FastifyServerOptions);
  registerSecurityHeaders(fastify);
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_req, body, done) => done(null, body),
  );
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_req, _body, done) => done(null, undefined));
  return fastify;
}

/**
 * The node:http / node:https server options. Node only looks for connections past
 * headersTimeout/requestTimeout every connectionsCheckingInterval (30 s by default), which would
 * let a slowloris client hold a socket for half a minute longer than configured: check every
 * second, or more often when the timeouts are shorter (tests).
 */
export function serverOptions(config: ServerConfig): { http: ServerOptions } | { https: object } {
  const common: ServerOptions = {
    maxHeaderSize: config.maxHeaderSize,
    headersTimeout: config.headersTimeout,
    requestTimeout: config.requestTimeout,
    connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(config.headersTimeout / 4))),
  };
  if (!config.tlsCert || !config.tlsKey) return { http: common };
  return { https: { ...common, ...tlsContext(config.tlsCert, config.tlsKey) } };
}

function tlsContext(certFile: string, keyFile: string): SecureContextOptions {
  return {
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    // TLS 1.0/1.1 are deprecated (RFC 8996); every client we support speaks 1.2.
    minVersion: 'TLSv1.2',
  };
}

/**
 * Picks up a renewed certificate without a restart (as upstream's Jetty keystore scanner does):
 * the two files are polled, and when either changes, new connections get the new pair. A pair
 * that does not load (a half-written file, a key that does not match the certificate, as
 * between replacing the certificate and the key) is logged and the current one stays in use;
 * the next change tries again. Returns the function that stops watching.
 */
export function watchTlsFiles(
  server: HttpsServer,
  certFile: string,
  keyFile: string,
  log: Logger,
  intervalMs = 30_000,
): () => void {
  const reload = (cur: Stats, prev: Stats) => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size) return;
    try {
      server.setSecureContext(tlsContext(certFile, keyFile));
      log.info({ certFile }, 'TLS certificate reloaded');
    } catch (err) {
      log.warn({ err, certFile, keyFile }, 'TLS certificate not reloaded; the current one stays in use');
    }
  };
  watchFile(certFile, { interval: intervalMs, persistent: false }, reload);
  watchFile(keyFile, { interval: intervalMs, persistent: false }, reload);
  return () => {
    unwatchFile(certFile, reload);
    unwatchFile(keyFile, reload);
  };
}

/** The error texts of what Node refuses before routing (too many header bytes, too slow, garbage). */
const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'The request line and headers are larger than the server accepts'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'The request was not received in time'],
};

/**
 * Fastify's clientErrorHandler: answers in CloudStack's JSON error envelope (errorcode = HTTP
 * status), then closes the socket. The server never crashes on these; they are logged at debug.
 */
export function answerClientError(
  this: FastifyInstance,
  err: Error & { code?: string },
  socket: Socket,
): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Malformed HTTP request'];
  this.log.debug({ err, status }, 'client error before routing');
  if (socket.writable) {
    const body = JSON.stringify({
      errorresponse: { uuidList: [], errorcode: status, cserrorcode: 9999, errortext: text },
    });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json; charset=UTF-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * The Content-Security-Policy of everything the server sends. The UI is a Vite build of React,
 * Ant Design and noVNC: scripts and styles come from /client/assets (same origin); Ant Design
 * injects <style> elements at run time (CSS-in-JS), hence style-src 'unsafe-inline' (scripts stay
 * strict); images and fonts may be data: URIs (icons, noVNC's cursor); the console's WebSocket
 * and the API are same-origin ('self' covers ws:/wss: of the same host in CSP level 3).
 * frame-ancestors 'none': no other site may frame the UI (clickjacking); the UI frames nothing.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Adds the security headers to every response (UI, API, console pages, extract downloads).
 * Referrer-Policy no-referrer: console and extract URLs carry one-time tokens, which must not
 * leak to another site through a Referer header. HSTS only on responses that went out over HTTPS
 * (directly or, with trustProxy, through a TLS-terminating proxy).
 */
export function registerSecurityHeaders(fastify: FastifyInstance): void {
  fastify.addHook('onSend', async (req, reply, payload) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    if (req.protocol === 'https') reply.header('strict-transport-security', 'max-age=31536000');
    return payload;
  });
}
