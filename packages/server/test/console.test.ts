/**
 * The browser console through the real server and a real simulator agent (the local zone's):
 * createConsoleEndpoint's tokens (shape, single use, expiry, scoping), the WebSocket proxy
 * carrying an RFB 3.8 session both ways (server → agent tunnel → the simulator's RFB server), the
 * VNC.CONNECT/VNC.DISCONNECT events, the legacy /client/console URL, and sessions ending when the
 * VM stops.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import WebSocket from 'ws';
import {
  createCluster,
  hostByName,
  seededLocalZone,
  startAgent,
  type TestAgent,
  waitUntil,
} from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let owner: CloudStackClient;
let other: CloudStackClient;
let vmId: string;
let zoneid: string;
let templateid: string;
let small: string;

before(async () => {
  // As behind a TLS-terminating reverse proxy: console URLs follow X-Forwarded-Proto/-Host.
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true', NIMBOSTACK_TRUST_PROXY: 'true' } });
  ({ zoneid, templateid, small } = await seededLocalZone(server.admin));
  owner = (await createAccountAndLogin(server, { name: 'con-owner' })).client;
  other = (await createAccountAndLogin(server, { name: 'con-other' })).client;
  const vm = (
    await owner.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: small,
      name: 'con-vm',
    })
  ).virtualmachine;
  vmId = vm.id;
});
let external: TestAgent | undefined;
after(async () => {
  await external?.kill();
  await server.stop();
});

/** An RFB client over the proxy: reads exactly the bytes it asks for, in order. */
class RfbOverWs {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed?: { code: number; reason: string };
  readonly ws: WebSocket;

  constructor(url: string) {
    this.ws = new WebSocket(url, ['binary']);
    this.ws.on('message', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (const w of this.waiters.splice(0)) w();
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      for (const w of this.waiters.splice(0)) w();
    });
    this.ws.on('error', () => undefined);
  }

  async read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.closed) throw new Error(`closed ${this.closed.code} ${this.closed.reason}`);
      if (Date.now() > deadline) throw new Error(`timed out reading ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async closedWith(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    await waitUntil(async () => this.closed, timeoutMs, 'the console socket to close');
    return this.closed!;
  }

  send(bytes: number[] | Buffer): void {
    this.ws.send(Buffer.from(bytes));
  }
}

function wsUrl(endpoint: any): string {
  const w = endpoint.websocket;
  return `ws://${w.host}:${w.port}/${w.path}?token=${encodeURIComponent(w.token)}`;
}

async function endpointFor(client: CloudStackClient, id = vmId, extra?: Record<string, string>) {
  return (await client.request<any>('createConsoleEndpoint', { virtualmachineid: id, ...extra }))
    .consoleendpoint;
}

/** Runs the RFB 3.8 handshake; answers the ServerInit's size and name. */
async function handshake(c: RfbOverWs) {
  assert.equal((await c.read(12)).toString('latin1'), 'RFB 003.008\n');
  c.send(Buffer.from('RFB 003.008\n'));
  assert.deepEqual([...(await c.read(2))], [1, 1], 'one security type: None');
  c.send([1]);
  assert.equal((await c.read(4)).readUInt32BE(0), 0, 'security result OK');
  c.send([1]); // ClientInit, shared
  const init = await c.read(24);
  const name = (await c.read(init.readUInt32BE(20))).toString('utf8');
  return { width: init.readUInt16BE(0), height: init.readUInt16BE(2), bpp: init[4], name };
}

async function readUpdate(c: RfbOverWs, bytesPerPixel: number) {
  const head = await c.read(4);
  assert.equal(head[0], 0, 'FramebufferUpdate');
  const rects = head.readUInt16BE(2);
  const out: { w: number; h: number; pixels: Buffer }[] = [];
  for (let i = 0; i < rects; i++) {
    const r = await c.read(12);
    const w = r.readUInt16BE(4);
    const h = r.readUInt16BE(6);
    assert.equal(r.readInt32BE(8), 0, 'Raw encoding');
    out.push({ w, h, pixels: await c.read(w * h * bytesPerPixel) });
  }
  return out;
}

const updateRequest = (incremental: boolean, w: number, h: number) => {
  const b = Buffer.alloc(10);
  b[0] = 3;
  b[1] = incremental ? 1 : 0;
  b.writeUInt16BE(w, 6);
  b.writeUInt16BE(h, 8);
  return b;
};
const keyDown = (keysym: number) => {
  const b = Buffer.alloc(8);
  b[0] = 4;
  b[1] = 1;
  b.writeUInt32BE(keysym, 4);
  return b;
};

describe('createConsoleEndpoint', () => {
  test('answers upstream shape: success, url to the console page, websocket token/host/port/path', async () => {
    const e = await endpointFor(owner);
    assert.equal(e.success, true);
    const base = new URL(server.url);
    assert.equal(e.websocket.host, base.hostname);
    assert.equal(String(e.websocket.port), base.port);
    assert.equal(e.websocket.path, 'client/websockify');
    assert.match(e.websocket.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(e.url, `${server.url}/client/console/${vmId}?token=${e.websocket.token}`);
    assert.equal(e.websocket.extra, undefined);
  });

  test("another account's VM is a 531, a missing one a 431, and a stopped VM answers success=false", async () => {
    await assert.rejects(endpointFor(other), (e: any) => e.errorcode === 531);
    await assert.rejects(
      endpointFor(owner, '00000000-0000-4000-8000-000000000000'),
      (e: any) =>
        e.errorcode === 431 &&
        /^Invalid parameter virtualmachineid value=.* entity does not exist/.test(e.errortext),
    );
    await assert.rejects(
      owner.request('createConsoleEndpoint', {}),
      (e: any) => e.errorcode === 431 && /virtualmachineid/.test(e.errortext),
    );
    // An admin reaches every VM.
    assert.equal((await endpointFor(server.admin)).success, true);
    const stopped = (
      await owner.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'con-stopped',
        startvm: false,
      })
    ).virtualmachine;
    const e = await endpointFor(owner, stopped.id);
    assert.equal(e.success, false);
    assert.match(e.details, /must be running to connect console \(it is Stopped\)/);
    assert.equal(e.websocket, undefined);
  });
  test('behind a reverse proxy (NIMBOSTACK_TRUST_PROXY) the URLs name the scheme and host the browser used', async () => {
    const form = new URLSearchParams({
      command: 'login',
      username: 'admin',
      password: 'password',
      response: 'json',
    });
    const login = await fetch(server.api, { method: 'POST', body: form });
    const { sessionkey } = ((await login.json()) as any).loginresponse;
    const cookie = login.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const query = new URLSearchParams({
      command: 'createConsoleEndpoint',
      virtualmachineid: vmId,
      sessionkey,
      response: 'json',
    });
    const r = await fetch(`${server.api}?${query}`, {
      headers: { cookie, 'x-forwarded-proto': 'https', 'x-forwarded-host': 'cloud.example.org' },
    });
    const e = ((await r.json()) as any).createconsoleendpointresponse.consoleendpoint;
    assert.match(e.url, /^https:\/\/cloud\.example\.org\/client\/console\//);
    assert.deepEqual([e.websocket.host, e.websocket.port], ['cloud.example.org', '443']);
  });
});

describe('console proxy', () => {
  test('carries an RFB 3.8 session both ways from the simulator VM, and records VNC.CONNECT/DISCONNECT', async () => {
    const e = await endpointFor(owner);
    const t0 = performance.now();
    const c = new RfbOverWs(wsUrl(e));
    const init = await handshake(c);
    // The hypervisor-side name, as QEMU's VNC server would announce it.
    assert.match(init.name, /^i-\d+-\d+-VM$/);
    assert.equal(init.bpp, 32);
    c.send(updateRequest(false, init.width, init.height));
    const [full] = await readUpdate(c, 4);
    const firstFrameMs = performance.now() - t0;
    assert.equal(full.w, init.width);
    assert.ok(
      full.pixels.some((b) => b > 200),
      'the screen shows text',
    );
    // Input goes the other way: a key press changes the screen, answered to an incremental request.
    c.send(updateRequest(true, init.width, init.height));
    c.send(keyDown(0x61));
    const [after] = await readUpdate(c, 4);
    assert.notDeepEqual(after.pixels, full.pixels, 'the typed key is echoed on the screen');
    console.log(`# console: token → first framebuffer update in ${firstFrameMs.toFixed(0)} ms`);
    c.ws.close();
    const events = await waitUntil(
      async () => {
        const list = (await owner.request<any>('listEvents', { type: 'VNC.DISCONNECT' })).event ?? [];
        return list.length > 0 ? list : undefined;
      },
      10_000,
      'VNC.DISCONNECT',
    );
    assert.equal(events[0].resourceid ?? vmId, vmId);
    const connects = (await owner.request<any>('listEvents', { type: 'VNC.CONNECT' })).event ?? [];
    assert.ok(connects.length >= 1);
  });

  test('a token opens one session only; unknown and missing tokens are refused with a reason', async () => {
    const e = await endpointFor(owner);
    const first = new RfbOverWs(wsUrl(e));
    await handshake(first);
    const second = new RfbOverWs(wsUrl(e));
    const closed = await second.closedWith();
    assert.equal(closed.code, 4001);
    assert.match(closed.reason, /already used/);
    first.ws.close();

    const unknown = new RfbOverWs(wsUrl({ websocket: { ...e.websocket, token: 'x'.repeat(43) } }));
    assert.match((await unknown.closedWith()).reason, /unknown console token/);
    const none = new RfbOverWs(`ws://${e.websocket.host}:${e.websocket.port}/client/websockify`);
    assert.match((await none.closedWith()).reason, /no console token/);
  });

  test('a token expires after console.token.validity seconds', async () => {
    await server.admin.request('updateConfiguration', { name: 'console.token.validity', value: '1' });
    try {
      const e = await endpointFor(owner);
      await new Promise((r) => setTimeout(r, 2100));
      const c = new RfbOverWs(wsUrl(e));
      const closed = await c.closedWith();
      assert.equal(closed.code, 4001);
      assert.match(closed.reason, /expired/);
    } finally {
      await server.admin.request('updateConfiguration', { name: 'console.token.validity', value: '60' });
    }
  });

  test('the extra security token must come back with the WebSocket', async () => {
    const e = await endpointFor(owner, vmId, { token: 'my-extra-secret' });
    assert.equal(e.websocket.extra, 'my-extra-secret');
    const wrong = new RfbOverWs(`${wsUrl(e)}&extra=nope`);
    assert.match((await wrong.closedWith()).reason, /extra security token/);
    const e2 = await endpointFor(owner, vmId, { token: 'my-extra-secret' });
    const right = new RfbOverWs(`${wsUrl(e2)}&extra=my-extra-secret`);
    await handshake(right);
    right.ws.close();
  });

  test('a forged tunnel on the agent port is refused', async () => {
    const ws = new WebSocket(`${server.agentUrl}/tunnel/abcdefghijkl`, {
      headers: { 'x-nimbostack-tunnel-secret': 'not-the-secret-at-all' },
    });
    const closed = await new Promise<{ code: number; reason: string }>((r) =>
      ws.on('close', (code, reason) => r({ code, reason: reason.toString() })),
    );
    assert.equal(closed.code, 4001);
    assert.match(closed.reason, /unknown console tunnel/);
  });

  test('the legacy /client/console?cmd=access&vm= URL redirects a logged-in user to the console page', async () => {
    const session = (owner as any).session as { cookie: string; sessionKey: string };
    const res = await fetch(`${server.url}/client/console?cmd=access&vm=${vmId}`, {
      headers: { cookie: `${session.cookie}; sessionkey=${session.sessionKey}` },
      redirect: 'manual',
    });
    assert.equal(res.status, 302);
    const location = res.headers.get('location')!;
    assert.match(location, new RegExp(`/client/console/${vmId}\\?token=[A-Za-z0-9_-]{43}$`));
    // The redirect's token opens the console.
    const token = new URL(location, server.url).searchParams.get('token')!;
    const c = new RfbOverWs(`${server.url.replace('http', 'ws')}/client/websockify?token=${token}`);
    await handshake(c);
    c.ws.close();

    const anonymous = await fetch(`${server.url}/client/console?cmd=access&vm=${vmId}`, {
      redirect: 'manual',
    });
    assert.equal(anonymous.status, 401);
    const otherSession = (other as any).session as { cookie: string; sessionKey: string };
    const denied = await fetch(
      `${server.url}/client/console?cmd=access&vm=${vmId}&sessionkey=${encodeURIComponent(otherSession.sessionKey)}`,
      { headers: { cookie: otherSession.cookie }, redirect: 'manual' },
    );
    assert.equal(denied.status, 531);
    const bad = await fetch(`${server.url}/client/console?cmd=thumbnail&vm=${vmId}`, { redirect: 'manual' });
    assert.equal(bad.status, 400);
  });

  test('a session without keyboard or mouse input closes after consoleproxy.session.timeout', async () => {
    await server.admin.request('updateConfiguration', {
      name: 'consoleproxy.session.timeout',
      value: '1500',
    });
    try {
      const e = await endpointFor(owner);
      const idle = new RfbOverWs(wsUrl(e));
      const init = await handshake(idle);
      const busy = new RfbOverWs(wsUrl(await endpointFor(owner)));
      await handshake(busy);
      // The idle viewer keeps asking for updates, as noVNC does: that is not input.
      const asking = setInterval(() => idle.send(updateRequest(true, init.width, init.height)), 200);
      const typing = setInterval(() => busy.send(keyDown(0x62)), 400);
      try {
        const closed = await idle.closedWith(10_000);
        assert.equal(closed.code, 4008);
        assert.match(closed.reason, /closed after 2 s without keyboard or mouse input/);
        await new Promise((r) => setTimeout(r, 1000));
        assert.equal(busy.closed, undefined, 'a viewer that types stays connected');
      } finally {
        clearInterval(asking);
        clearInterval(typing);
        busy.ws.close();
      }
      const events = await waitUntil(
        async () =>
          ((await owner.request<any>('listEvents', { type: 'VNC.DISCONNECT' })).event ?? []).find((x: any) =>
            /idle timeout/.test(x.description),
          ),
        10_000,
        'a VNC.DISCONNECT by the idle timeout',
      );
      assert.ok(events);
    } finally {
      await server.admin.request('updateConfiguration', {
        name: 'consoleproxy.session.timeout',
        value: '300000',
      });
    }
  });

  test('stopping the VM ends its console session, with a reason', async () => {
    const e = await endpointFor(owner);
    const c = new RfbOverWs(wsUrl(e));
    await handshake(c);
    await owner.call('stopVirtualMachine', { id: vmId });
    const closed = await c.closedWith(20_000);
    assert.equal(closed.code, 1000);
    assert.match(closed.reason, /console closed/);
    // And a stopped VM gets no new endpoint.
    assert.equal((await endpointFor(owner)).success, false);
    await owner.call('startVirtualMachine', { id: vmId });
  });

  test('through a separate agent process; when its agent is gone, the socket says so', async () => {
    const podid = (await server.admin.request<any>('listPods', { zoneid })).pod[0].id;
    const clusterid = await createCluster(server.admin, zoneid, podid, 'con-cluster');
    mkdirSync(`${server.dataDir}/con-primary`);
    await server.admin.request('createStoragePool', {
      zoneid,
      podid,
      clusterid,
      name: 'con-primary',
      url: `${server.dataDir}/con-primary`,
      scope: 'cluster',
    });
    external = startAgent(server.agentUrl, { token: 'console-agent-token', name: 'con-sim' });
    await external.waitForLog('waiting to be added');
    await server.admin.request('addHost', {
      zoneid,
      podid,
      clusterid,
      url: 'agent://con-sim',
      username: 'root',
      password: 'console-agent-token',
      hypervisor: 'Simulator',
    });
    const host = await hostByName(server.admin, 'con-sim');
    const vm = (
      await server.admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: small,
        name: 'con-ext',
        hostid: host.id,
      })
    ).virtualmachine;
    assert.equal(vm.hostid, host.id);
    const c = new RfbOverWs(wsUrl(await endpointFor(server.admin, vm.id)));
    const init = await handshake(c);
    c.send(updateRequest(false, init.width, init.height));
    await readUpdate(c, 4);
    await external.waitForLog('console tunnel open');

    // The agent process dies: the open session ends, and a new one is refused with the reason.
    await external.kill();
    await c.closedWith();
    await waitUntil(
      async () => (await hostByName(server.admin, 'con-sim')).state !== 'Up',
      10_000,
      'host down',
    );
    const late = new RfbOverWs(wsUrl(await endpointFor(server.admin, vm.id)));
    const closed = await late.closedWith();
    assert.equal(closed.code, 4005, closed.reason);
    assert.match(closed.reason, /host con-sim is Disconnected: its agent is not connected/);
  });
});
