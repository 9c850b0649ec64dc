/**
 * The agent gateway of the real server against raw WebSocket clients: malformed frames, unknown
 * types, version mismatches, wrong tokens and stray answers get error messages, never a crash.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PROTOCOL_VERSION } from '@nimbostack/protocol';
import WebSocket from 'ws';
import { createCluster, createPod, createZone, startAgent, type TestAgent } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

let server: TestServer;
let agent: TestAgent;
let mixed: TestAgent | undefined;
let ids: { zoneid: string; podid: string; clusterid: string };

class Raw {
  ws: WebSocket;
  frames: any[] = [];
  private waiters: ((m: any) => void)[] = [];
  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      const w = this.waiters.shift();
      if (w) w(m);
      else this.frames.push(m);
    });
  }
  open(): Promise<void> {
    return new Promise((r) => this.ws.once('open', () => r()));
  }
  reply(frame: string | object): Promise<any> {
    const next = this.frames.length
      ? Promise.resolve(this.frames.shift())
      : new Promise<any>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no reply')), 5000);
          this.waiters.push((m) => {
            clearTimeout(timer);
            resolve(m);
          });
        });
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    return next;
  }
}

const startup = (host: string, token = 'gateway-test-token') => ({
  type: 'startup',
  protocolVersion: PROTOCOL_VERSION,
  host,
  token,
  hypervisor: 'Simulator',
  hypervisorVersion: '1',
  agentVersion: 'raw',
  cpuSockets: 1,
  cpuCores: 2,
  cpuMhz: 1000,
  memoryBytes: 1024,
  localStorageBytes: 0,
  privateIp: '10.9.9.9',
  vms: [],
});

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'false' } });
  const zoneid = await createZone(server.admin, 'gw-zone');
  const podid = await createPod(server.admin, zoneid, 'gw-pod', 40);
  const clusterid = await createCluster(server.admin, zoneid, podid, 'gw-cluster');
  ids = { zoneid, podid, clusterid };
  agent = startAgent(server.agentUrl, { token: 'gateway-test-token', name: 'gw-host' });
  await agent.waitForLog('waiting to be added');
  await server.admin.request('addHost', {
    zoneid,
    podid,
    clusterid,
    url: 'agent://gw-host',
    password: 'gateway-test-token',
    hypervisor: 'Simulator',
  });
});

after(async () => {
  await mixed?.kill();
  await agent.kill();
  await server.stop();
});

describe('malformed agent messages', () => {
  test('each bad frame is answered with an error and the connection stays usable', async () => {
    const raw = new Raw(server.agentUrl);
    await raw.open();
    assert.equal((await raw.reply('this is not json')).code, 'malformed');
    assert.equal((await raw.reply('[]')).code, 'malformed');
    assert.equal((await raw.reply({ type: 'teleport' })).code, 'unsupported');
    const missing = await raw.reply({ type: 'startup', host: 'x' });
    assert.equal(missing.code, 'malformed');
    assert.equal(missing.host, 'x');
    const stray = await raw.reply({ type: 'answer', id: 'nope', host: 'x', ok: true, result: {} });
    assert.equal(stray.code, 'malformed');
    const wrongWay = await raw.reply({
      type: 'command',
      id: 'c',
      host: 'x',
      kind: 'checkHealth',
      payload: {},
      timeoutMs: 5,
    });
    assert.equal(wrongWay.code, 'unsupported');
    const version = await raw.reply({ ...startup('x'), protocolVersion: PROTOCOL_VERSION + 1 });
    assert.equal(version.code, 'version');
    const pending = await raw.reply(startup('raw-host'));
    assert.equal(pending.type, 'pending');
    raw.ws.close();
  });

  test('a startup for a registered host with the wrong token is refused', async () => {
    const raw = new Raw(server.agentUrl);
    await raw.open();
    const r = await raw.reply(startup('gw-host', 'stolen-token-guess'));
    assert.equal(r.code, 'unauthorized');
    const ping = await raw.reply({ type: 'ping', hosts: [{ host: 'gw-host', vms: [] }] });
    assert.equal(ping.code, 'unknownHost');
    raw.ws.close();
  });

  test('the server and the real agent are unaffected', async () => {
    const hosts = await server.admin.request<any>('listHosts', { name: 'gw-host' });
    assert.equal(hosts.host[0].state, 'Up');
    assert.equal(server.process.exitCode, null);
  });
});

describe('host names', () => {
  test('names are case-insensitive: an agent named Mixed-Case is added, listed and commanded', async () => {
    mixed = startAgent(server.agentUrl, { token: 'gateway-test-token', name: 'Mixed-Case' });
    await mixed.waitForLog('waiting to be added');
    const r = await server.admin.request<any>('addHost', {
      ...ids,
      url: 'agent://Mixed-Case',
      password: 'gateway-test-token',
      hypervisor: 'Simulator',
    });
    assert.equal(r.host[0].name, 'mixed-case');
    assert.equal(r.host[0].state, 'Up');
    const mock = await server.admin.request<any>('configureSimulator', {
      name: 'checkHealth',
      value: 'wait:1',
      hostid: r.host[0].id,
    });
    assert.equal(mock.mock.hostid, r.host[0].id);
  });
});

describe('ping interval', () => {
  test('a changed ping.interval reaches connected agents; their hosts stay Up', async () => {
    const before = (await server.admin.request<any>('listHosts', { name: 'gw-host' })).host[0];
    await server.admin.request('updateConfiguration', { name: 'ping.interval', value: '1' });
    const states = new Set<string>();
    let last = before.lastpinged;
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      const h = (await server.admin.request<any>('listHosts', { name: 'gw-host' })).host[0];
      states.add(h.state);
      last = h.lastpinged;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.deepEqual([...states], ['Up']);
    assert.notEqual(last, before.lastpinged, 'the agent pings at the new interval');
  });
});
