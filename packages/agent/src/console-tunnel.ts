/**
 * The agent's end of a console session: a WebSocket back to the management server's agent port
 * (`/tunnel/<id>`, authenticated by the one-time secret the server sent in openConsole), piped to
 * the VM's VNC stream. Bytes are forwarded as they come, with backpressure both ways, so a slow
 * browser slows the VNC server instead of filling the agent's memory.
 */
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import WebSocket, { type ClientOptions } from 'ws';
import { DriverError } from './drivers/driver.ts';

export const TUNNEL_SECRET_HEADER = 'x-nimbostack-tunnel-secret';
/** Pause reading VNC when this much is queued towards the server. */
const HIGH_WATER = 1024 * 1024;

export interface TunnelOptions {
  /** The agent's server URL (ws:// or wss://); the tunnel goes to the same host and port. */
  server: string;
  tunnel: string;
  secret: string;
  tls?: Pick<ConnectionOptions, 'ca' | 'rejectUnauthorized' | 'checkServerIdentity' | 'servername'>;
}

/** Connects the tunnel WebSocket and pipes it to `vnc`; resolves once bytes can flow. */
export async function openTunnel(vnc: Duplex, o: TunnelOptions): Promise<WebSocket> {
  const url = new URL(o.server);
  url.pathname = `/tunnel/${encodeURIComponent(o.tunnel)}`;
  url.search = '';
  const ws = new WebSocket(url, {
    headers: { [TUNNEL_SECRET_HEADER]: o.secret },
    perMessageDeflate: false,
    handshakeTimeout: 10_000,
    maxPayload: 16 * 1024 * 1024,
    ...(o.tls as ClientOptions | undefined),
  });
  try {
    await once(ws, 'open');
  } catch (err) {
    vnc.destroy();
    ws.terminate();
    throw new DriverError(`console tunnel to the management server failed: ${(err as Error).message}`);
  }
  pipeStream(ws, vnc);
  return ws;
}

/** Forwards binary frames of `ws` to `stream` and back; either side closing closes the other. */
export function pipeStream(ws: WebSocket, stream: Duplex): void {
  stream.on('data', (chunk: Buffer) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(chunk, { binary: true }, () => {
      if (stream.isPaused() && ws.bufferedAmount < HIGH_WATER) stream.resume();
    });
    if (ws.bufferedAmount >= HIGH_WATER) stream.pause();
  });
  ws.on('message', (data: Buffer) => {
    if (!stream.write(data)) ws.pause();
  });
  stream.on('drain', () => ws.resume());
  stream.on('error', () => undefined);
  stream.once('close', () => {
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING)
      ws.close(1000, 'the VM console closed');
  });
  ws.on('error', () => undefined);
  ws.once('close', () => stream.destroy());
}
