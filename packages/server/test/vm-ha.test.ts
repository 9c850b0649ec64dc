/**
 * VM high availability with simulator hosts (one agent each, in this process, as routers.test
 * does) sharing a cluster-wide primary pool where they write their heartbeats: a host whose agent
 * is cut off but which still heart-beats keeps its VMs; a host whose agent dies is fenced, its HA
 * VM runs on the other host and its other VM is Stopped; an HA VM that stops by itself on a host
 * that stays Up (a guest crash) is started again, a plain one or one stopped through the API is
 * not; the host-HA commands.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, type AgentLogger, type HostDriver, SimulatorFleet } from '@nimbostack/agent';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { waitUntil } from './agents.ts';

const TOKEN = 'ha-test-token-0123456789';
const silent: AgentLogger = { info() {}, warn() {}, error() {}, debug() {} } as unknown as AgentLogger;
const is = (code: number) => (e: any) => e.errorcode === code;

let server: Server;
let admin: CloudStackClient;
let dataDir: string;
let zoneid: string;
let templateid: string;
let plain: string;
let withHa: string;
const agents = new Map<string, Agent>();
const hostIds = new Map<string, string>();
/** Each agent's simulated host: what the host itself runs, and how a guest crash is made. */
const drivers = new Map<string, HostDriver>();
let proxy: { server: NetServer; sockets: Set<Socket>; port: number };

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A TCP relay to the agent port: closing it cuts the agents behind it off, as a network would. */
async function relay(target: number) {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, sockets, port: (server.address() as { port: number }).port };
}

const vmById = async (id: string) =>
  (await admin.request<any>('listVirtualMachines', { id, listall: true })).virtualmachine[0];
const hostHa = async (name: string) =>
  (await admin.request<any>('listHostHAResources', { hostid: hostIds.get(name) })).hostha[0];

async function deploy(name: string, hostName: string, offering: string) {
  return (
    await admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      name,
      hostid: hostIds.get(hostName),
    })
  ).virtualmachine;
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'nimbo-ha-'));
  mkdirSync(join(dataDir, 'primary'));
  mkdirSync(join(dataDir, 'secondary'));
  const agentPort = await freePort();
  server = await startServer(
    loadConfig(
      {},
      { port: 0, agentPort, host: '127.0.0.1', dataDir, logLevel: 'silent', seedLocalZone: false },
    ),
  );
  admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
  for (const [name, value] of [
    ['ha.heartbeat.interval', '1'],
    ['ha.heartbeat.timeout', '4'],
    ['investigate.retry.interval', '1'],
    ['restart.retry.interval', '1'],
  ])
    await admin.request('updateConfiguration', { name, value });
  zoneid = (
    await admin.request<any>('createZone', {
      name: 'haz',
      networktype: 'Basic',
      securitygroupenabled: true,
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      allocationstate: 'Enabled',
    })
  ).zone.id;
  const pod = (
    await admin.request<any>('createPod', {
      zoneid,
      name: 'hap',
      gateway: '192.168.30.1',
      netmask: '255.255.255.0',
      startip: '192.168.30.10',
      endip: '192.168.30.50',
    })
  ).pod;
  const cluster = (
    await admin.request<any>('addCluster', {
      zoneid,
      podid: pod.id,
      clustername: 'hac',
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  await admin.request('createVlanIpRange', {
    zoneid,
    podid: pod.id,
    gateway: '10.61.0.1',
    netmask: '255.255.255.0',
    startip: '10.61.0.10',
    endip: '10.61.0.40',
    forvirtualnetwork: false,
  });
  await admin.request('createStoragePool', {
    zoneid,
    podid: pod.id,
    clusterid: cluster.id,
    name: 'haprimary',
    url: join(dataDir, 'primary'),
    scope: 'cluster',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'hasecondary',
    provider: 'NFS',
    url: join(dataDir, 'secondary'),
  });
  proxy = await relay(agentPort);
  // ha-1 dies, ha-2 survives and takes the HA VM, ha-3 is cut off from the server but lives.
  for (const name of ['ha-1', 'ha-2', 'ha-3']) {
    const port = name === 'ha-3' ? proxy.port : agentPort;
    const hosts = new SimulatorFleet().addHosts(name, 1);
    drivers.set(name, hosts[0]!);
    const agent = new Agent({
      server: `ws://127.0.0.1:${port}`,
      token: TOKEN,
      hosts,
      log: silent,
      maxBackoffMs: 300,
    });
    agent.start();
    agents.set(name, agent);
    await waitUntil(async () => server.app.agents.pendingHost(name), 10_000, `${name} to connect`);
    const added = await admin.request<any>('addHost', {
      zoneid,
      podid: pod.id,
      clusterid: cluster.id,
      url: `agent://${name}`,
      username: 'root',
      password: TOKEN,
      hypervisor: 'Simulator',
    });
    hostIds.set(name, added.host[0].id);
  }
  templateid = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
    20_000,
    'the built-in template',
  );
  plain = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0]
    .id;
  withHa = (
    await admin.request<any>('createServiceOffering', {
      name: 'HA Small',
      displaytext: 'HA Small',
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
      offerha: true,
    })
  ).serviceoffering.id;
  // Each host writes its heartbeat to the shared pool once the server has told it to.
  await waitUntil(
    async () => {
      const { readdirSync } = await import('node:fs');
      try {
        return readdirSync(join(dataDir, 'primary', '.nimbostack-heartbeat')).length >= 3;
      } catch {
        return false;
      }
    },
    15_000,
    'three heartbeat files',
  );
});

after(async () => {
  for (const a of agents.values()) await a.stop();
  proxy?.server.close();
  for (const s of proxy?.sockets ?? []) s.destroy();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('VM high availability', () => {
  test('the host-HA commands: providers, configure, disable and enable', async () => {
    const providers = await admin.request<any>('listHostHAProviders', { hypervisor: 'Simulator' });
    assert.deepEqual(
      providers.haprovider.map((p: any) => p.haprovider),
      ['simulatorhaprovider'],
    );
    assert.deepEqual(await admin.request('listHostHAProviders', { hypervisor: 'LXC' }), {});
    await assert.rejects(
      admin.call('configureHAForHost', { hostid: hostIds.get('ha-2'), provider: 'kvmhaprovider' }),
      is(431),
    );
    const configured = await admin.call<any>('configureHAForHost', {
      hostid: hostIds.get('ha-2'),
      provider: 'simulatorhaprovider',
    });
    assert.equal(configured.hostha.haprovider, 'simulatorhaprovider');
    const off = await admin.call<any>('disableHAForHost', { hostid: hostIds.get('ha-2') });
    assert.equal(off.hostha.haenable, false);
    assert.equal(off.hostha.hastate, 'Disabled');
    const host = (await admin.request<any>('listHosts', { id: hostIds.get('ha-2') })).host[0];
    assert.equal(host.hostha.hastate, 'Disabled');
    const on = await admin.call<any>('enableHAForHost', { hostid: hostIds.get('ha-2') });
    assert.equal(on.hostha.haenable, true);
    assert.equal(on.hostha.hastate, 'Available');
    const all = await admin.request<any>('listHostHAResources', {});
    assert.equal(all.count, 3);
  });

  test('a host cut off from the server but still heart-beating on storage keeps its VMs', async () => {
    const vm = await deploy('alive-ha', 'ha-3', withHa);
    assert.equal(vm.haenable, true);
    proxy.server.close();
    for (const s of proxy.sockets) s.destroy();
    await waitUntil(
      async () => (await admin.request<any>('listHosts', { id: hostIds.get('ha-3') })).host[0].state !== 'Up',
      10_000,
      'ha-3 to be seen gone',
    );
    await waitUntil(async () => (await hostHa('ha-3')).hastate === 'Degraded', 10_000, 'ha-3 Degraded');
    // Longer than the heartbeat timeout: a dead host would be fenced by now.
    await new Promise((r) => setTimeout(r, 6000));
    const still = await vmById(vm.id);
    assert.equal(still.state, 'Running');
    assert.equal(still.hostid, hostIds.get('ha-3'));
    assert.equal((await hostHa('ha-3')).hastate, 'Degraded');
  });

  test('a dead host is fenced: its HA VM runs on another host, its other VM is Stopped', async () => {
    const ha = await deploy('ha-vm', 'ha-1', withHa);
    const other = await deploy('plain-vm', 'ha-1', plain);
    const killed = Date.now();
    await agents.get('ha-1')!.stop();
    const moved = await waitUntil(
      async () => {
        const v = await vmById(ha.id);
        return v.state === 'Running' && v.hostid !== hostIds.get('ha-1') ? v : undefined;
      },
      30_000,
      'the HA VM to run on another host',
    );
    const seconds = (Date.now() - killed) / 1000;
    assert.equal(moved.hostid, hostIds.get('ha-2'), 'the only Up host');
    assert.ok(seconds < 20, `restarted after ${seconds} s`);
    const stopped = await vmById(other.id);
    assert.equal(stopped.state, 'Stopped');
    assert.equal(stopped.hostid, undefined);
    const dead = (await admin.request<any>('listHosts', { id: hostIds.get('ha-1') })).host[0];
    assert.equal(dead.state, 'Down');
    assert.equal(dead.hostha.hastate, 'Fenced');
    const events = (await admin.request<any>('listEvents', { type: 'HA.STATE.TRANSITION', listall: true }))
      .event;
    assert.ok(events.some((e: any) => /ha-1.*Fenced/.test(e.description)));
    const restarts = (await admin.request<any>('listEvents', { type: 'VM.START', listall: true })).event;
    assert.ok(restarts.some((e: any) => /HA restarted VM ha-vm on host ha-2/.test(e.description)));
    const alerts = (await admin.request<any>('listAlerts', {})).alert.map((a: any) => a.description);
    assert.ok(alerts.some((d: string) => /Host ha-1 is fenced/.test(d)));
    assert.ok(alerts.some((d: string) => /VM plain-vm is Stopped/.test(d)));
    assert.ok(alerts.some((d: string) => /HA restarted VM ha-vm on host ha-2/.test(d)));
    // ha-3 still lives on storage: nothing of it moved meanwhile.
    const alive = (await admin.request<any>('listVirtualMachines', { name: 'alive-ha' })).virtualmachine[0];
    assert.equal(alive.hostid, hostIds.get('ha-3'));
  });

  test('an HA VM that stops by itself on a host that stays Up is started again; a plain one is not', async () => {
    // VM states come with the agents' pings: every second here, so a crash is seen at once.
    await admin.request('updateConfiguration', { name: 'ping.interval', value: '1' });
    const ha = await deploy('crash-ha', 'ha-2', withHa);
    const other = await deploy('crash-plain', 'ha-2', plain);
    const host = drivers.get('ha-2')!;
    const instance = async (id: string) => (await vmById(id)).instancename as string;
    const runs = (name: string) =>
      host.hypervisor.reportStates().some((v) => v.name === name && v.state === 'PowerOn');
    const haName = await instance(ha.id);
    const otherName = await instance(other.id);
    // The guests crash: their processes end on the host, nobody asked for a stop.
    const crashed = Date.now();
    await host.hypervisor.stopVm(haName, true);
    await host.hypervisor.stopVm(otherName, true);
    await waitUntil(async () => runs(haName), 15_000, 'the HA VM to run on ha-2 again');
    const back = await waitUntil(
      async () => {
        const v = await vmById(ha.id);
        return v.state === 'Running' ? v : undefined;
      },
      10_000,
      'the HA VM Running again',
    );
    const seconds = (Date.now() - crashed) / 1000;
    assert.equal(back.hostid, hostIds.get('ha-2'), 'the only Up host: its own');
    assert.ok(seconds < 10, `restarted after ${seconds} s`);
    const events = (await admin.request<any>('listEvents', { type: 'VM.START', listall: true })).event;
    assert.ok(
      events.some((e: any) =>
        /HA restarted VM crash-ha on host ha-2: it stopped on host ha-2 without a stop request/.test(
          e.description,
        ),
      ),
    );
    const alerts = (await admin.request<any>('listAlerts', {})).alert.map((a: any) => a.description);
    assert.ok(
      alerts.some((d: string) => /HA VM crash-ha stopped on its host without a stop request/.test(d)),
    );
    // Well past the restart of the HA VM: the plain one stays Stopped, and nothing runs it.
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await vmById(other.id)).state, 'Stopped');
    assert.ok(!runs(otherName));
    // Only the records put the plain VM back Running on ha-2 (as a failure elsewhere could leave
    // them): ha-2's report does not change, and its next full comparison (every fifth ping) stops it.
    const db = server.app.store.db;
    const ha2 = await db
      .selectFrom('hosts')
      .select('id')
      .where('uuid', '=', hostIds.get('ha-2')!)
      .executeTakeFirstOrThrow();
    await db
      .updateTable('vms')
      .set({ state: 'Running', host_id: ha2.id })
      .where('uuid', '=', other.id)
      .execute();
    await waitUntil(
      async () => (await vmById(other.id)).state === 'Stopped',
      15_000,
      'the record that ha-2 runs the plain VM corrected',
    );
    assert.ok(!runs(otherName));
    // A stop asked for through the API is the owner's: the HA VM stays Stopped.
    await admin.call('stopVirtualMachine', { id: ha.id });
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await vmById(ha.id)).state, 'Stopped');
    assert.ok(!runs(haName));
    // ha.vm.restart.hostup=false: a crash of an HA VM is only recorded.
    await admin.request('updateConfiguration', { name: 'ha.vm.restart.hostup', value: 'false' });
    await admin.call('startVirtualMachine', { id: ha.id });
    await host.hypervisor.stopVm(haName, true);
    await waitUntil(async () => (await vmById(ha.id)).state === 'Stopped', 10_000, 'the crash recorded');
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal((await vmById(ha.id)).state, 'Stopped');
    assert.ok(!runs(haName));
  });
});
