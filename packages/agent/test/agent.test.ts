/**
 * The agent process against a stand-in management server: startup of many hosts over one socket,
 * pings, commands through the simulator, injected failures, malformed frames, reconnects.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type WebSocket, WebSocketServer } from 'ws';
import { Agent, orderServers } from '../src/agent.ts';
import { SimulatorFleet } from '../src/drivers/simulator.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const MAIN = join(REPO, 'packages/agent/src/main.ts');

class FakeServer {
  wss!: WebSocketServer;
  sockets: WebSocket[] = [];
  /** Console tunnels agents opened on /tunnel/<id>, with the bytes received on each. */
  tunnels: { ws: WebSocket; url: string; secret: unknown; bytes: Buffer[] }[] = [];
  frames: any[] = [];
  private waiters: { match: (m: any) => boolean; resolve: (m: any) => void }[] = [];
  private n = 0;

  /** `autoPong` false: a server that hangs (answers no WebSocket ping). */
  constructor(private readonly autoPong = true) {}

  async listen(port = 0): Promise<number> {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port, autoPong: this.autoPong });
    await new Promise((r) => this.wss.once('listening', r));
    this.wss.on('connection', (ws, req) => {
      if (req.url?.startsWith('/tunnel/')) {
        const t = {
          ws,
          url: req.url,
          secret: req.headers['x-nimbostack-tunnel-secret'],
          bytes: [] as Buffer[],
        };
        ws.on('message', (d: Buffer) => t.bytes.push(d));
        this.tunnels.push(t);
        return;
      }
      this.sockets.push(ws);
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        this.frames.push(m);
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(m)) return true;
          w.resolve(m);
          return false;
        });
      });
    });
    return (this.wss.address() as AddressInfo).port;
  }

  get socket(): WebSocket {
    return this.sockets[this.sockets.length - 1];
  }

  next(match: (m: any) => boolean, timeoutMs = 5000): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching frame in time')), timeoutMs);
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  async command(host: string, kind: string, payload: object, timeoutMs = 5000): Promise<any> {
    const id = `c${++this.n}`;
    const answer = this.next((m) => m.type === 'answer' && m.id === id);
    this.socket.send(JSON.stringify({ type: 'command', id, host, kind, payload, timeoutMs }));
    return answer;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    for (const t of this.tunnels) t.ws.terminate();
    await new Promise((r) => this.wss.close(r));
  }
}

const server = new FakeServer();
let port = 0;
let agent: ChildProcess;

const vm = {
  name: 'i-2-10-VM',
  uuid: '0f8e3c56-0000-4000-8000-000000000001',
  cpus: 1,
  cpuMhz: 500,
  memoryBytes: 512 * 1024 ** 2,
};

before(async () => {
  port = await server.listen();
  const startups = Promise.all(
    [1, 2, 3].map((i) => server.next((m) => m.type === 'startup' && m.host === `sim-${i}`)),
  );
  agent = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      MAIN,
      '--server',
      `ws://127.0.0.1:${port}`,
      '--token',
      'agent-test-token',
      '--hosts',
      '3',
    ],
    {
      cwd: REPO,
      env: { ...process.env, NIMBOSTACK_AGENT_MAX_BACKOFF_MS: '300' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  agent.stdout!.resume();
  await startups;
});

after(async () => {
  agent.kill('SIGKILL');
  await server.close();
});

describe('agent process', () => {
  test('presents every host over one connection with its resources', () => {
    assert.equal(server.sockets.length, 1);
    const s = server.frames.find((m) => m.type === 'startup' && m.host === 'sim-2');
    assert.equal(s.token, 'agent-test-token');
    assert.equal(s.hypervisor, 'Simulator');
    assert.ok(s.cpuCores > 0 && s.cpuMhz > 0 && s.memoryBytes > 0);
    assert.deepEqual(s.vms, []);
  });

  test('pings for ready hosts only, at the interval the server gave', async () => {
    for (const host of ['sim-1', 'sim-2']) {
      const a = await server.command(host, 'ready', { hostId: `uuid-${host}`, pingIntervalMs: 100 });
      assert.equal(a.ok, true);
    }
    const t0 = Date.now();
    await server.next((m) => m.type === 'ping');
    const ping = await server.next((m) => m.type === 'ping');
    assert.ok(Date.now() - t0 < 1000);
    assert.deepEqual(ping.hosts.map((h: any) => h.host).sort(), ['sim-1', 'sim-2']);
  });

  test('runs VM commands through the simulator and reports power states on pings', async () => {
    const started = await server.command('sim-1', 'startVm', { vm });
    assert.equal(started.ok, true);
    assert.equal(started.result.state, 'PowerOn');
    const ping = await server.next((m) => m.type === 'ping');
    assert.deepEqual(ping.hosts.find((h: any) => h.host === 'sim-1').vms, [
      { name: vm.name, state: 'PowerOn' },
    ]);
    assert.equal((await server.command('sim-1', 'startVm', { vm })).ok, true, 'starting twice is idempotent');
    assert.equal((await server.command('sim-1', 'rebootVm', { name: vm.name })).ok, true);
    const migrated = await server.command('sim-1', 'migrateVm', {
      name: vm.name,
      destination: { host: 'sim-2' },
    });
    assert.equal(migrated.ok, true);
    const after = await server.next((m) => m.type === 'ping');
    assert.deepEqual(after.hosts.find((h: any) => h.host === 'sim-1').vms, []);
    assert.deepEqual(after.hosts.find((h: any) => h.host === 'sim-2').vms, [
      { name: vm.name, state: 'PowerOn' },
    ]);
    assert.equal((await server.command('sim-2', 'stopVm', { name: vm.name })).ok, true);
    const failed = await server.command('sim-2', 'rebootVm', { name: vm.name });
    assert.equal(failed.ok, false);
    assert.equal(failed.error.code, 'failed');
  });

  test('openConsole pipes the VM console into one tunnel per id, presenting the secret; repeats are no-ops', async () => {
    const consoleVm = { ...vm, name: 'i-2-11-VM' };
    assert.equal((await server.command('sim-3', 'startVm', { vm: consoleVm })).ok, true);
    const payload = { vm: consoleVm.name, tunnel: 'tunnel-0001', secret: 'a-secret-of-24-characters' };
    const opened = await server.command('sim-3', 'openConsole', payload);
    assert.equal(opened.ok, true, JSON.stringify(opened.error));
    assert.equal((await server.command('sim-3', 'openConsole', payload)).ok, true);
    assert.equal(server.tunnels.length, 1, 'a repeated openConsole opens no second tunnel');
    const [t] = server.tunnels;
    assert.equal(t.url, '/tunnel/tunnel-0001');
    assert.equal(t.secret, payload.secret);
    const deadline = Date.now() + 5000;
    while (Buffer.concat(t.bytes).length < 12 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(Buffer.concat(t.bytes).toString('latin1'), 'RFB 003.008\n');
    // Bytes flow the other way too: the RFB server answers our version with its security types.
    t.ws.send(Buffer.from('RFB 003.008\n'));
    while (Buffer.concat(t.bytes).length < 14 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual([...Buffer.concat(t.bytes).subarray(12)], [1, 1]);
    // Stopping the VM closes its console, and the tunnel with it.
    const closed = new Promise((r) => t.ws.once('close', r));
    assert.equal((await server.command('sim-3', 'stopVm', { name: consoleVm.name })).ok, true);
    await closed;
    const refused = await server.command('sim-3', 'openConsole', { ...payload, tunnel: 'tunnel-0002' });
    assert.equal(refused.ok, false);
    assert.match(refused.error.message, /not running/);
  });

  test('storage commands: volumes from templates, resize, snapshots', async () => {
    const pool = { uuid: 'p1', type: 'Filesystem', path: '/var/lib/pool' };
    const vol = await server.command('sim-3', 'createVolumeFromTemplate', {
      volumeUuid: 'v1',
      pool,
      sizeBytes: 10,
      template: { uuid: 't1', path: 'tmpl/1', sizeBytes: 100 },
    });
    assert.deepEqual(vol.result, { path: '/var/lib/pool/v1', sizeBytes: 100 });
    const shrink = await server.command('sim-3', 'resizeVolume', {
      path: vol.result.path,
      pool,
      newSizeBytes: 50,
    });
    assert.equal(shrink.ok, false);
    const grow = await server.command('sim-3', 'resizeVolume', {
      path: vol.result.path,
      pool,
      newSizeBytes: 200,
    });
    assert.equal(grow.result.sizeBytes, 200);
    const snap = await server.command('sim-3', 'createSnapshot', {
      snapshotUuid: 's1',
      volumePath: vol.result.path,
      pool,
    });
    assert.equal(snap.result.sizeBytes, 200);
    assert.equal((await server.command('sim-3', 'deleteVolume', { path: vol.result.path, pool })).ok, true);
    assert.equal((await server.command('sim-3', 'deleteVolume', { path: vol.result.path, pool })).ok, true);
  });

  test('configureSimulator fails the next N commands of a kind, then they succeed again', async () => {
    const conf = await server.command('sim-3', 'configureSimulator', {
      kind: 'startVm',
      count: 2,
      fail: true,
      message: 'no capacity on sim-3',
    });
    assert.equal(conf.ok, true);
    for (let i = 0; i < 2; i++) {
      const a = await server.command('sim-3', 'startVm', { vm });
      assert.equal(a.ok, false);
      assert.equal(a.error.message, 'no capacity on sim-3');
    }
    assert.equal((await server.command('sim-3', 'startVm', { vm })).ok, true);
  });

  test('injected latency beyond the command timeout answers timeout', async () => {
    await server.command('sim-3', 'configureSimulator', { kind: 'checkHealth', count: 1, latencyMs: 400 });
    const a = await server.command('sim-3', 'checkHealth', {}, 100);
    assert.equal(a.ok, false);
    assert.equal(a.error.code, 'timeout');
    assert.equal((await server.command('sim-3', 'checkHealth', {}, 1000)).result.healthy, true);
  });

  test('unknown hosts, unknown kinds and malformed frames get errors, and the agent carries on', async () => {
    const unknownHost = await server.command('sim-99', 'checkHealth', {});
    assert.equal(unknownHost.error.code, 'unknownHost');
    const unknownKind = await server.command('sim-1', 'formatAllDisks', {});
    assert.equal(unknownKind.ok, false);
    assert.equal(unknownKind.error.code, 'unsupported');
    const badPayload = await server.command('sim-1', 'stopVm', { name: 42 });
    assert.equal(badPayload.error.code, 'malformed');
    const err = server.next((m) => m.type === 'error');
    server.socket.send('{{{ not json');
    assert.equal((await err).code, 'malformed');
    assert.equal((await server.command('sim-1', 'checkHealth', {})).ok, true);
  });

  test('reconnects with backoff when the server drops it, and sends startups again', async () => {
    const again = server.next((m) => m.type === 'startup' && m.host === 'sim-1', 5000);
    server.socket.terminate();
    await again;
    assert.equal(server.sockets.length, 2);
  });

  test('resumes after the server restarts on the same port', async () => {
    await server.close();
    server.sockets = [];
    await new Promise((r) => setTimeout(r, 300));
    await server.listen(port);
    const s = await server.next((m) => m.type === 'startup' && m.host === 'sim-3', 8000);
    assert.equal(s.token, 'agent-test-token');
  });
});

describe('several management servers', () => {
  test('fails over to the next server at once, in the order of the list the server handed', async () => {
    const [s1, s2, s3] = [new FakeServer(), new FakeServer(), new FakeServer()];
    const [p1, p2, p3] = [await s1.listen(), await s2.listen(), await s3.listen()];
    const url = (p: number) => `ws://127.0.0.1:${p}`;
    const first = s1.next((m) => m.type === 'startup' && m.host === 'fo');
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        '--server',
        `${url(p1)},${url(p2)}`,
        '--token',
        'agent-test-token',
        '--name',
        'fo',
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    child.stdout!.resume();
    try {
      await first;
      // The server's list (its `host` setting) replaces the agent's own: s3 comes after s1 now.
      const ready = await s1.command(
        'fo',
        'ready',
        { hostId: 'h-fo', pingIntervalMs: 60_000, managementServers: [url(p3), url(p1)] },
        5000,
      );
      assert.equal(ready.ok, true);
      const onS3 = s3.next((m) => m.type === 'startup' && m.host === 'fo', 5000);
      const lost = Date.now();
      await s1.close();
      await onS3;
      const took = Date.now() - lost;
      assert.ok(took < 2000, `the agent reached the next server after ${took} ms`);
      assert.equal(s2.frames.length, 0, 'the agent followed the handed list, not its own');
    } finally {
      child.kill('SIGKILL');
      await Promise.all([s2.close(), s3.close()]);
    }
  });

  test('leaves a server that hangs (no frame, no pong) after livenessMs for the next one', async () => {
    const hung = new FakeServer(false);
    const good = new FakeServer();
    const [ph, pg] = [await hung.listen(), await good.listen()];
    const presented = hung.next((m) => m.type === 'startup');
    const onGood = good.next((m) => m.type === 'startup' && m.host === 'lv', 5000);
    const agent = new Agent({
      server: [`ws://127.0.0.1:${ph}`, `ws://127.0.0.1:${pg}`],
      token: 'agent-test-token',
      hosts: new SimulatorFleet().addHosts('lv', 1),
      livenessMs: 900,
      initialBackoffMs: 100,
      log: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined },
    });
    agent.start();
    try {
      await presented;
      const since = Date.now();
      await onGood;
      const took = Date.now() - since;
      assert.ok(took >= 800 && took < 3000, `moved on after ${took} ms of silence`);
      assert.equal(agent.server, `ws://127.0.0.1:${pg}`);
    } finally {
      await agent.stop();
      await Promise.all([hung.close(), good.close()]);
    }
  });

  test('orders its own list as static, roundrobin or shuffle; refuses another algorithm', async () => {
    const list = ['ws://a:1', 'ws://b:1', 'ws://c:1'];
    assert.deepEqual(orderServers(list, 'static', 7), list);
    assert.deepEqual(orderServers(list, 'roundrobin', 4), ['ws://b:1', 'ws://c:1', 'ws://a:1']);
    assert.deepEqual([...orderServers(list, 'shuffle', 0)].sort(), list);
    const bad = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        MAIN,
        '--server',
        'ws://a:1',
        '--token',
        'agent-test-token',
        '--lb-algorithm',
        'fastest',
      ],
      { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    bad.stderr!.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise((r) => bad.once('exit', r));
    assert.equal(code, 2);
    assert.match(stderr, /--lb-algorithm must be one of static, roundrobin, shuffle/);
  });
});
