/**
 * Request limits against the real server process: oversized headers and bodies get CloudStack
 * error envelopes (431, 413) and the server carries on; a client that trickles its headers is cut
 * off after NIMBOSTACK_HEADERS_TIMEOUT; with 500 idle or trickling connections held open, signed
 * API calls still answer promptly.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { keyClient, startServer, type TestServer } from './harness.ts';

const HEADERS_TIMEOUT = 5000;
const BODY_LIMIT = 64 * 1024;
let server: TestServer;
let keys: CloudStackClient;
let port: number;

before(async () => {
  server = await startServer({
    env: {
      NIMBOSTACK_HEADERS_TIMEOUT: String(HEADERS_TIMEOUT),
      NIMBOSTACK_REQUEST_TIMEOUT: String(2 * HEADERS_TIMEOUT),
      NIMBOSTACK_REQUEST_CONTENT_SIZE: String(BODY_LIMIT),
    },
  });
  port = Number(new URL(server.url).port);
  const users = await server.admin.request<{ user: { id: string }[] }>('listUsers', { username: 'admin' });
  keys = await keyClient(server, users.user[0].id);
});
after(() => server.stop());

/** Resolves with what the server wrote before closing the socket, and when it closed. */
function closed(socket: Socket): Promise<{ data: string; at: number }> {
  let data = '';
  socket.setEncoding('latin1');
  socket.on('data', (d) => {
    data += d;
  });
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.once('close', () => resolve({ data, at: Date.now() })));
}

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

describe('sizes', () => {
  test('headers over the limit are a 431 CloudStack error, and the server carries on', async () => {
    const res = await fetch(`${server.api}?command=listZones&response=json`, {
      headers: { 'x-padding': 'x'.repeat(20 * 1024) },
    });
    assert.equal(res.status, 431);
    const body = (await res.json()) as any;
    assert.equal(body.errorresponse.errorcode, 431);
    assert.match(body.errorresponse.errortext, /headers are larger/);
    // A URL (GET parameters) over the limit counts too.
    const long = await fetch(`${server.api}?command=listZones&response=json&name=${'y'.repeat(20 * 1024)}`);
    assert.equal(long.status, 431);
    assert.ok((await keys.request<any>('listZones')) !== undefined);
  });

  test('a body over NIMBOSTACK_REQUEST_CONTENT_SIZE is a 413 CloudStack error', async () => {
    const res = await fetch(server.api, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `command=listZones&response=json&name=${'z'.repeat(BODY_LIMIT)}`,
    });
    assert.equal(res.status, 413);
    const body = (await res.json()) as any;
    assert.equal(body.errorresponse.errorcode, 413);
    assert.equal(body.errorresponse.errortext, `The request body is larger than ${BODY_LIMIT} bytes`);
    // Just under the limit is parsed as usual (here: not authenticated).
    const fits = await fetch(server.api, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `command=listZones&response=json&name=${'z'.repeat(BODY_LIMIT - 100)}`,
    });
    assert.equal(fits.status, 401);
  });

  test('a garbled request line is a 400 CloudStack error', async () => {
    const s = await open();
    const done = closed(s);
    s.write('NOT AN HTTP REQUEST\r\n\r\n');
    const { data } = await done;
    assert.match(data, /^HTTP\/1\.1 400 /);
    assert.match(data, /"errorcode":400/);
  });
});

/** Makes `count` signed listZones calls one after another; median and slowest in ms. */
async function timeCalls(count: number): Promise<{ median: string; max: string }> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    assert.ok((await keys.request<any>('listZones')) !== undefined);
    latencies.push(performance.now() - t);
  }
  latencies.sort((a, b) => a - b);
  return {
    median: latencies[Math.floor(count / 2)].toFixed(1),
    max: latencies[count - 1].toFixed(1),
  };
}

describe('slow and idle clients', () => {
  test('500 idle or trickling connections: signed API calls still answer promptly, the slow ones are cut off', async () => {
    const idle = await timeCalls(30);
    console.log(`# no extra connections: 30 signed listZones, median ${idle.median} ms, max ${idle.max} ms`);
    const started = Date.now();
    const sockets = await Promise.all(Array.from({ length: 500 }, () => open()));
    const ends = sockets.map((s) => closed(s));
    // Half send nothing at all; half start a request and trickle a header line every 500 ms.
    const trickling = sockets.slice(250);
    for (const s of trickling) s.write(`GET /client/api?command=listZones HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
    let n = 0;
    const trickle = setInterval(() => {
      n++;
      for (const s of trickling) if (!s.destroyed) s.write(`X-Slow-${n}: ${n}\r\n`);
    }, 500);
    try {
      const { median, max } = await timeCalls(30);
      console.log(`# 500 open connections: 30 signed listZones, median ${median} ms, max ${max} ms`);
      assert.ok(Number(max) < 1000, `a call took ${max} ms`);
      // All 500 are still open while the calls were made (none was refused or dropped).
      assert.ok(Date.now() - started < HEADERS_TIMEOUT, 'the calls took longer than the headers timeout');
      assert.equal(
        sockets.filter((s) => s.destroyed).length,
        0,
        'a connection was dropped before its headers timeout',
      );

      // Past the headers timeout (checked every second), every one of them is closed by the server.
      const results = await Promise.all(ends);
      const last = Math.max(...results.map((r) => r.at)) - started;
      console.log(`# all 500 closed by the server ${last} ms after they opened`);
      assert.ok(last >= HEADERS_TIMEOUT - 500, `closed after only ${last} ms`);
      assert.ok(last < HEADERS_TIMEOUT + 3000, `closed only after ${last} ms`);
      // The trickling ones were told why.
      assert.ok(results.slice(250).every((r) => r.data.startsWith('HTTP/1.1 408 ')));
    } finally {
      clearInterval(trickle);
      for (const s of sockets) s.destroy();
    }
    // And the server is as good as before.
    assert.ok((await keys.request<any>('listZones')) !== undefined);
  });
});
