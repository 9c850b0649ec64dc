/**
 * Hosts against the real server and real agent processes: registration through addHost, pings,
 * disconnects and reconnects, missed pings (Disconnected → Alert → Down), maintenance, tags,
 * deletion vetoed by a compute hook, configureSimulator.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloudStackError } from '@nimbostack/client';
import {
  createCluster,
  createPod,
  createZone,
  hostByName,
  startAgent,
  type TestAgent,
  waitUntil,
} from './agents.ts';
import { startServer, type TestServer } from './harness.ts';

const TOKEN = 'host-test-token';
let server: TestServer;
let zoneid: string;
let podid: string;
let clusterid: string;
let kvmClusterid: string;
const agents: TestAgent[] = [];

function agent(name: string, token = TOKEN): TestAgent {
  const a = startAgent(server.agentUrl, { token, name });
  agents.push(a);
  return a;
}

async function rejects(p: Promise<unknown>, errorcode: number, text?: RegExp): Promise<CloudStackError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CloudStackError, String(e));
    assert.equal(e.errorcode, errorcode, e.errortext);
    if (text) assert.match(e.errortext, text);
    return e;
  }
  assert.fail('expected an error');
}

async function addHost(name: string, params: Record<string, string> = {}): Promise<any> {
  const r = await server.admin.request<any>('addHost', {
    zoneid,
    podid,
    clusterid,
    url: `agent://${name}`,
    username: 'root',
    password: TOKEN,
    hypervisor: 'Simulator',
    ...params,
  });
  assert.equal(r.count, 1);
  return r.host[0];
}

const stateOf = async (name: string) => (await hostByName(server.admin, name))?.state;

before(async () => {
  server = await startServer({
    env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'false' },
    nodeArgs: ['--import', join(import.meta.dirname, 'fixtures/host-hooks.ts')],
  });
  for (const [name, value] of [
    ['ping.interval', '1'],
    ['ping.timeout', '2'],
    ['alert.wait', '1'],
    ['host.down.wait', '1'],
  ])
    await server.admin.request('updateConfiguration', { name, value });
  zoneid = await createZone(server.admin, 'hosts-zone');
  podid = await createPod(server.admin, zoneid, 'hosts-pod', 20);
  clusterid = await createCluster(server.admin, zoneid, podid, 'sim-cluster');
  kvmClusterid = await createCluster(server.admin, zoneid, podid, 'kvm-cluster', 'KVM');
});

after(async () => {
  for (const a of agents) await a.kill();
  await server.stop();
});

describe('registration', () => {
  test('an agent waits until addHost adopts its host with the token as password', async () => {
    const a = agent('host-a');
    await a.waitForLog('waiting to be added');
    const host = await addHost('host-a', { hosttags: 'ssd,gpu' });
    assert.equal(host.name, 'host-a');
    assert.equal(host.state, 'Up');
    assert.equal(host.resourcestate, 'Enabled');
    assert.equal(host.type, 'Routing');
    assert.equal(host.hypervisor, 'Simulator');
    assert.equal(host.clusterid, clusterid);
    assert.equal(host.clustername, 'sim-cluster');
    assert.equal(host.podname, 'hosts-pod');
    assert.equal(host.zonename, 'hosts-zone');
    assert.ok(host.cpunumber > 0 && host.cpuspeed > 0 && host.memorytotal > 0);
    assert.equal(host.cpuallocated, '0%');
    assert.equal(host.memoryallocated, 0);
    assert.equal(host.hosttags, 'ssd,gpu');
    assert.equal(host.version, '0.1.0');
    assert.match(host.ipaddress, /^172\./);
  });

  test('a wrong password, an unknown agent or a duplicate is refused and nothing is recorded', async () => {
    const b = agent('host-b');
    await b.waitForLog('waiting to be added');
    await rejects(addHost('host-b', { password: 'not-the-token' }), 431, /does not match/);
    await rejects(addHost('no-such-agent'), 530, /no agent is presenting/);
    await rejects(addHost('host-a'), 431, /already exists/);
    assert.equal(await hostByName(server.admin, 'host-b'), undefined);
  });

  test('a cluster of another hypervisor refuses the host (431) and nothing changes', async () => {
    const before = (await server.admin.request<any>('listHosts', {})).count;
    await rejects(addHost('host-b', { clusterid: kvmClusterid }), 431, /hypervisor type/);
    await rejects(addHost('host-b', { clusterid: kvmClusterid, hypervisor: 'KVM' }), 431, /runs Simulator/);
    assert.equal((await server.admin.request<any>('listHosts', {})).count, before);
    const host = await addHost('host-b');
    assert.equal(host.state, 'Up');
  });

  test('listHosts filters by state, resource state, cluster and hypervisor', async () => {
    const all = await server.admin.request<any>('listHosts', { clusterid });
    assert.equal(all.count, 2);
    assert.equal(
      (await server.admin.request<any>('listHosts', { state: 'Up', hypervisor: 'Simulator' })).count,
      2,
    );
    assert.deepEqual(await server.admin.request<any>('listHosts', { state: 'Down' }), {});
    assert.deepEqual(await server.admin.request<any>('listHosts', { clusterid: kvmClusterid }), {});
    assert.equal(
      (await server.admin.request<any>('listHosts', { resourcestate: 'Enabled', keyword: 'host-a' })).count,
      1,
    );
  });
});

describe('liveness', () => {
  test('pings update lastpinged', async () => {
    const first = (await hostByName(server.admin, 'host-a')).lastpinged;
    await waitUntil(
      async () => (await hostByName(server.admin, 'host-a')).lastpinged !== first,
      5000,
      'a ping',
    );
  });

  test('a killed agent leaves its host Disconnected; restarted, it is Up again', async () => {
    const b = agents.find((a) => a.logs.some((l) => l.includes('"name":"host-b"')))!;
    await b.kill('SIGKILL');
    await waitUntil(async () => (await stateOf('host-b')) === 'Disconnected', 5000, 'Disconnected');
    const host = await hostByName(server.admin, 'host-b');
    assert.ok(host.disconnected);
    agent('host-b');
    await waitUntil(async () => (await stateOf('host-b')) === 'Up', 8000, 'Up again');
  });

  test('a hung agent misses pings: Disconnected, then Alert, then Down; it recovers when it resumes', async () => {
    const a = agents.find((x) => x.logs.some((l) => l.includes('"name":"host-a"')))!;
    a.process.kill('SIGSTOP');
    try {
      await waitUntil(async () => (await stateOf('host-a')) === 'Disconnected', 6000, 'Disconnected');
      await waitUntil(async () => (await stateOf('host-a')) === 'Alert', 4000, 'Alert');
      await waitUntil(async () => (await stateOf('host-a')) === 'Down', 4000, 'Down');
    } finally {
      a.process.kill('SIGCONT');
    }
    await waitUntil(async () => (await stateOf('host-a')) === 'Up', 6000, 'Up after resuming');
    const alerts = await server.admin.request<any>('listAlerts', {});
    const raised = alerts.alert.filter((a: any) => a.description.includes('host-a'));
    assert.equal(raised.length, 1, 'one alert per outage');
    assert.equal(raised[0].type, 7);
    assert.equal(raised[0].name, 'ALERT.COMPUTE.HOST');
  });

  test('reconnectHost re-runs the startup and logs HOST.RECONNECT', async () => {
    const host = await hostByName(server.admin, 'host-a');
    const r = await server.admin.call<any>('reconnectHost', { id: host.id });
    assert.equal(r.host.state, 'Up');
    const events = await server.admin.request<any>('listEvents', { type: 'HOST.RECONNECT' });
    assert.ok(events.event.some((e: any) => e.state === 'Completed'));
  });
});

describe('maintenance, tags and deletion', () => {
  test('maintenance: prepare, refuse enabling meanwhile, cancel', async () => {
    const host = await hostByName(server.admin, 'host-b');
    const r = await server.admin.call<any>('prepareHostForMaintenance', { id: host.id });
    assert.equal(r.host.resourcestate, 'Maintenance');
    await rejects(server.admin.request('updateHost', { id: host.id, allocationstate: 'Enable' }), 431);
    await rejects(server.admin.call('prepareHostForMaintenance', { id: host.id }), 431, /already/);
    const c = await server.admin.call<any>('cancelHostMaintenance', { id: host.id });
    assert.equal(c.host.resourcestate, 'Enabled');
    await rejects(server.admin.call('cancelHostMaintenance', { id: host.id }), 431, /not in maintenance/);
    const events = await server.admin.request<any>('listEvents', { type: 'MAINT.PREPARE' });
    assert.ok(events.count >= 1);
  });

  test('updateHost disables, re-tags, and listHostTags lists the tags', async () => {
    const host = await hostByName(server.admin, 'host-b');
    const u = await server.admin.request<any>('updateHost', {
      id: host.id,
      allocationstate: 'Disable',
      hosttags: 'fast',
    });
    assert.equal(u.host.resourcestate, 'Disabled');
    assert.equal(u.host.hosttags, 'fast');
    const tags = await server.admin.request<any>('listHostTags', {});
    assert.deepEqual(tags.hosttag.map((t: any) => t.name).sort(), ['fast', 'gpu', 'ssd']);
    assert.equal(tags.hosttag.find((t: any) => t.name === 'fast').hostid, host.id);
    await server.admin.request('updateHost', { id: host.id, allocationstate: 'Enable' });
  });

  test('the compute hook refuses maintenance and deletion of a host with VMs', async () => {
    const host = await hostByName(server.admin, 'host-b');
    await server.admin.request('updateHost', { id: host.id, annotation: 'has-vms' });
    await rejects(server.admin.call('prepareHostForMaintenance', { id: host.id }), 536, /cannot be migrated/);
    assert.equal((await hostByName(server.admin, 'host-b')).resourcestate, 'Enabled');
    await rejects(server.admin.request('deleteHost', { id: host.id }), 530, /not in maintenance mode/);
    await rejects(server.admin.request('deleteHost', { id: host.id, forced: true }), 536, /still runs 2 VMs/);
    assert.equal((await hostByName(server.admin, 'host-b')).state, 'Up');
  });

  test('a host in maintenance is deleted; its agent then waits to be added again', async () => {
    const host = await hostByName(server.admin, 'host-b');
    await server.admin.request('updateHost', { id: host.id, annotation: '' });
    await server.admin.call('prepareHostForMaintenance', { id: host.id });
    const b = agents.filter((a) => a.logs.some((l) => l.includes('"name":"host-b"'))).pop()!;
    const waitingBefore = b.logs.filter((l) => l.includes('waiting to be added')).length;
    assert.deepEqual(await server.admin.request('deleteHost', { id: host.id }), { success: true });
    assert.equal(await hostByName(server.admin, 'host-b'), undefined);
    // The same agent process presents the host again and waits to be added.
    await waitUntil(
      async () => b.logs.filter((l) => l.includes('waiting to be added')).length > waitingBefore,
      5000,
      'pending again',
    );
    const readded = await addHost('host-b');
    assert.notEqual(readded.id, host.id);
    assert.equal(readded.state, 'Up');
  });
});

describe('configureSimulator', () => {
  test('configures connected simulator hosts in range and answers a mock', async () => {
    const host = await hostByName(server.admin, 'host-a');
    const r = await server.admin.request<any>('configureSimulator', {
      name: 'StartCommand',
      value: 'result:fail;message:out of capacity',
      count: 2,
      hostid: host.id,
    });
    assert.equal(r.mock.name, 'StartCommand');
    assert.equal(r.mock.count, 2);
    assert.equal(r.mock.hostid, host.id);
    const zone = await server.admin.request<any>('configureSimulator', {
      name: 'stopVm',
      value: 'wait:10',
      zoneid,
    });
    assert.equal(zone.mock.zoneid, zoneid);
  });

  test('unknown commands, options and empty ranges are refused', async () => {
    await rejects(
      server.admin.request('configureSimulator', { name: 'FormatCommand', value: 'result:fail' }),
      431,
    );
    await rejects(server.admin.request('configureSimulator', { name: 'startVm', value: 'explode:yes' }), 431);
    await rejects(
      server.admin.request('configureSimulator', {
        name: 'startVm',
        value: 'result:fail',
        clusterid: kvmClusterid,
      }),
      431,
      /No connected simulator host/,
    );
  });
});
