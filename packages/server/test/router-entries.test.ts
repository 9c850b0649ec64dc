/**
 * A big network's router gets its VM entries without stalling the start that boots it, and a
 * router that keeps running is checked by digest, not sent everything again (router-entries.ts):
 * the server runs in this process with a simulated host, whose router the test reads. The batch
 * sizes are lowered so that a handful of VMs makes a "big" network.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, type AgentLogger, SimulatorFleet, type SimulatorHost } from '@nimbostack/agent';
import { CloudStackClient } from '@nimbostack/client';
import type { RouterSpec } from '@nimbostack/protocol';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig, type ServerConfig } from '../src/config.ts';
import { ROUTER_BATCHES, routerSettled } from '../src/network/router-entries.ts';
import { waitUntil } from './agents.ts';

const TOKEN = 'router-entries-token-0123456789';
const silent: AgentLogger = { info() {}, warn() {}, error() {}, debug() {} } as unknown as AgentLogger;

let server: Server;
let config: ServerConfig;
let admin: CloudStackClient;
let agent: Agent;
let fleet: SimulatorFleet;
let dataDir: string;
let agentUrl: string;
let zoneid: string;
let templateid: string;
let offering: string;
let accountDomain: string;
const hostIds = new Map<string, string>();
/** Commands each simulated host received, in order. */
const received = new Map<string, string[]>();
/** The specs of the routers each host was told to start. */
const starts: RouterSpec[] = [];
/** The entries of each updateRouter, as [added, removed]. */
const updates: [number, number][] = [];

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'nimbo-router-entries-'));
  mkdirSync(join(dataDir, 'primary'));
  mkdirSync(join(dataDir, 'secondary'));
  const agentPort = await freePort();
  config = loadConfig(
    {},
    { port: 0, agentPort, host: '127.0.0.1', dataDir, logLevel: 'silent', seedLocalZone: false },
  );
  server = await startServer(config);
  admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
  const zone = (
    await admin.request<any>('createZone', {
      name: 'rz',
      networktype: 'Basic',
      securitygroupenabled: true,
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      allocationstate: 'Enabled',
    })
  ).zone;
  zoneid = zone.id;
  const pod = (
    await admin.request<any>('createPod', {
      zoneid,
      name: 'rp',
      gateway: '192.168.20.1',
      netmask: '255.255.255.0',
      startip: '192.168.20.10',
      endip: '192.168.20.50',
    })
  ).pod;
  const cluster = (
    await admin.request<any>('addCluster', {
      zoneid,
      podid: pod.id,
      clustername: 'rc',
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  await admin.request('createVlanIpRange', {
    zoneid,
    podid: pod.id,
    gateway: '10.60.0.1',
    netmask: '255.255.255.0',
    startip: '10.60.0.10',
    endip: '10.60.0.20',
    forvirtualnetwork: false,
  });
  await admin.request('createStoragePool', {
    zoneid,
    podid: pod.id,
    clusterid: cluster.id,
    name: 'rprimary',
    url: join(dataDir, 'primary'),
    scope: 'cluster',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'rsecondary',
    provider: 'NFS',
    url: join(dataDir, 'secondary'),
  });
  fleet = new SimulatorFleet();
  const hosts = fleet.addHosts('re', 2);
  for (const h of hosts) {
    const around = h.around.bind(h);
    h.around = (kind, run) => {
      received.set(h.name, [...(received.get(h.name) ?? []), kind]);
      return around(kind, run);
    };
    const start = h.startRouter.bind(h);
    h.startRouter = (spec) => {
      starts.push(structuredClone(spec));
      return start(spec);
    };
    const update = h.updateRouter.bind(h);
    h.updateRouter = (p) => {
      updates.push([p.add.length, p.remove.length]);
      return update(p);
    };
  }
  agentUrl = `ws://127.0.0.1:${agentPort}`;
  agent = new Agent({
    server: agentUrl,
    token: TOKEN,
    hosts,
    log: silent,
    maxBackoffMs: 300,
  });
  agent.start();
  for (const h of hosts) {
    await waitUntil(async () => server.app.agents.pendingHost(h.name), 10_000, `${h.name} to connect`);
    const added = await admin.request<any>('addHost', {
      zoneid,
      podid: pod.id,
      clusterid: cluster.id,
      url: `agent://${h.name}`,
      username: 'root',
      password: TOKEN,
      hypervisor: 'Simulator',
    });
    hostIds.set(h.name, added.host[0].id);
  }
  templateid = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
    20_000,
    'the built-in template',
  );
  offering = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0]
    .id;
  const account = (
    await admin.request<any>('createAccount', {
      username: 'netuser',
      password: 'secret-pass',
      email: 'n@example.com',
      firstname: 'N',
      lastname: 'U',
      accounttype: 0,
    })
  ).account;
  accountDomain = account.domainid;
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const host = (name: string): SimulatorHost => fleet.hosts.get(name)!;
const count = (name: string, kind: string) => (received.get(name) ?? []).filter((k) => k === kind).length;
const names = (spec: { vms: { hostname: string }[] }) => spec.vms.map((e) => e.hostname).sort();

async function deploy(name: string) {
  return (
    await admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      name,
      account: 'netuser',
      domainid: accountDomain,
      hostid: hostIds.get('re-1'),
    })
  ).virtualmachine;
}

async function theRouter(): Promise<{ id: number; name: string }> {
  const r = (await admin.request<any>('listRouters', {})).router[0];
  const row = await server.app.store.db
    .selectFrom('routers')
    .select(['id', 'name'])
    .where('uuid', '=', r.id)
    .executeTakeFirstOrThrow();
  return row;
}

/** Restarts the server and waits until the reconnected host's router was checked and settled. */
async function restartAndCheck(digestsBefore: number, digestCalls: number): Promise<void> {
  await server.stop();
  server = await startServer(config);
  admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
  await waitUntil(
    async () => count('re-1', 'routerDigest') >= digestsBefore + digestCalls,
    15_000,
    'the router to be checked',
  );
  await routerSettled(server.app, (await theRouter()).id);
}

describe('router entries of a big network', () => {
  const vms: string[] = [];

  before(() => {
    ROUTER_BATCHES.boot = 2;
    ROUTER_BATCHES.fill = 3;
  });
  after(() => {
    ROUTER_BATCHES.boot = 500;
    ROUTER_BATCHES.fill = 5000;
  });

  test('a new router boots with the starting VM and the first few; the rest follow in batches', async () => {
    for (let i = 1; i <= 6; i++) vms.push((await deploy(`big-${i}`)).id);
    const old = await theRouter();
    assert.deepEqual(
      names(host('re-1').routers.get(old.name)!),
      [1, 2, 3, 4, 5, 6].map((i) => `big-${i}`),
    );
    await admin.call('destroyRouter', { id: (await admin.request<any>('listRouters', {})).router[0].id });
    const startsBefore = starts.length;
    const updatesBefore = updates.length;
    const digestsBefore = count('re-1', 'routerDigest');
    vms.push((await deploy('big-7')).id);
    const fresh = await theRouter();
    assert.notEqual(fresh.id, old.id);
    // The boot: the first two entries (by NIC) and the starting VM's, not all seven.
    assert.equal(starts.length, startsBefore + 1);
    assert.deepEqual(names(starts.at(-1)!), ['big-1', 'big-2', 'big-7']);
    await routerSettled(server.app, fresh.id);
    assert.deepEqual(
      names(host('re-1').routers.get(fresh.name)!),
      [1, 2, 3, 4, 5, 6, 7].map((i) => `big-${i}`),
    );
    // The rest in batches of at most three, then one digest that matched (nothing more sent).
    const fill = updates.slice(updatesBefore);
    assert.deepEqual(fill, [
      [3, 0],
      [2, 0],
    ]);
    assert.equal(count('re-1', 'routerDigest'), digestsBefore + 1);
  });

  test('after a server restart a router that holds everything is only compared, by digest', async () => {
    const updatesBefore = updates.length;
    const startsBefore = starts.length;
    await restartAndCheck(count('re-1', 'routerDigest'), 1);
    assert.equal(updates.length, updatesBefore, 'no entry sent again');
    assert.equal(starts.length, startsBefore);
  });

  test('a router that missed changes while no server could tell it gets only the difference', async () => {
    const { name } = await theRouter();
    const router = host('re-1').routers.get(name)!;
    const before = structuredClone(router.vms).sort((a, b) => a.mac.localeCompare(b.mac));
    // Behind the server's back: one entry lost, one changed, one of a VM that is gone.
    router.vms = [
      ...router.vms
        .filter((e) => e.hostname !== 'big-3')
        .map((e) => (e.hostname === 'big-4' ? { ...e, hostname: 'stale-name' } : e)),
      { ...router.vms[0]!, mac: '02:00:00:ff:ff:01', ip: '10.60.0.19', hostname: 'gone', instanceId: 'gone' },
    ];
    const updatesBefore = updates.length;
    await restartAndCheck(count('re-1', 'routerDigest'), 2);
    assert.deepEqual(updates.slice(updatesBefore), [[2, 1]], 'two entries re-sent, one removed');
    const after = host('re-1')
      .routers.get(name)!
      .vms.sort((a, b) => a.mac.localeCompare(b.mac));
    assert.deepEqual(after, before);
    for (const id of vms) await admin.call('destroyVirtualMachine', { id, expunge: true });
    assert.deepEqual(host('re-1').routers.get(name)!.vms, []);
  });
});
