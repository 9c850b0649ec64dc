/**
 * Several management servers on one database (PostgreSQL or MariaDB: `npm run test:db`; SQLite
 * holds one server, so this file skips it): commands and consoles for a host reach it from the
 * server that did not receive its agent (forwarded over the signed peer channel, which refuses
 * forged, replayed, stale and misaddressed requests), and an agent given both servers fails over
 * when its server stops or is killed (SIGKILL) with its host Up throughout; with every server
 * down it keeps its VM running, and a returning server reconciles without restarting it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, SimulatorFleet, type SimulatorHost } from '@nimbostack/agent';
import type { CloudStackClient } from '@nimbostack/client';
import WebSocket from 'ws';
import { PEER_SEND_PATH, PeerChannel } from '../src/agents/peers.ts';
import { Secrets } from '../src/iam/secrets.ts';
import { seededLocalZone, waitUntil } from './agents.ts';
import { createDatabase, sqlOn, startServer, type TestServer, testDatabases } from './harness.ts';

const TOKEN = 'failover-test-token';
const HOST = 'fo-host';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The console's first bytes through a server, or how it was closed. */
function probe(base: string, token: string): Promise<{ banner?: string; code?: number; reason?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(
      `${base.replace('http', 'ws')}/client/websockify?token=${encodeURIComponent(token)}`,
    );
    ws.once('message', (d: Buffer) => {
      resolve({ banner: d.toString('latin1') });
      ws.close();
    });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  });
}

/** Samples the host's state every 100 ms through `via` while `during` runs and until `until` holds. */
async function statesWhile(
  via: () => CloudStackClient,
  during: () => Promise<void>,
  until: (host: any) => boolean,
  timeoutMs = 15_000,
): Promise<{ states: Set<string>; host: any; ms: number }> {
  const states = new Set<string>();
  const started = Date.now();
  let last: any;
  let done = false;
  const sampling = (async () => {
    while (!done) {
      try {
        last = (await via().request<any>('listHosts', { name: HOST })).host?.[0];
        if (last) states.add(last.state);
      } catch {
        // The server being stopped may refuse a call; the sampler asks the other one.
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  await during();
  try {
    await waitUntil(async () => last && until(last), timeoutMs, 'the host on its new server');
  } finally {
    done = true;
    await sampling;
  }
  return { states, host: last, ms: Date.now() - started };
}

const dbs = testDatabases().filter((d) => d !== 'sqlite');

for (const db of dbs) {
  describe(`agents and host commands across management servers on ${db}`, () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'nimbo-failover-'));
    let database: { url: string; drop(): Promise<void> };
    let a: TestServer;
    let b: TestServer;
    let keyFile: string;
    let agentPorts: { a: number; b: number };
    let agent: Agent;
    let sim: SimulatorHost;
    const received: Record<string, number> = {};
    const agentLog: string[] = [];
    let vmId: string;
    let vmName: string;
    let hostNumericId: number;

    const envFor = (name: string, agentPort: number) => ({
      NIMBOSTACK_SERVER_NAME: name,
      NIMBOSTACK_AGENT_PORT: String(agentPort),
      NIMBOSTACK_SECRET_KEY_FILE: keyFile,
    });
    const sql = <T>(query: string, params: unknown[] = []) => sqlOn<T>(db, database.url, query, params);
    const peers = () =>
      sql<{ uuid: string; name: string; peer_url: string }>(
        "select uuid, name, peer_url from management_servers where state = 'Up'",
      );

    before(async () => {
      database = await createDatabase(db, dataDir);
      keyFile = join(dataDir, 'cloud.key');
      Secrets.generate().writeTo(keyFile);
      agentPorts = { a: await freePort(), b: await freePort() };
      a = await startServer({
        databaseUrl: database.url,
        env: { ...envFor('ms-a', agentPorts.a), NIMBOSTACK_SEED_LOCAL_ZONE: 'true' },
      });
      // Pings every second: a host taken for silent would be Disconnected 2.5 s later.
      await a.admin.request('updateConfiguration', { name: 'ping.interval', value: '1' });
      b = await startServer({ databaseUrl: database.url, env: envFor('ms-b', agentPorts.b) });

      sim = new SimulatorFleet().addHosts(HOST, 1)[0];
      const around = sim.around.bind(sim);
      sim.around = (kind, run) => {
        received[kind] = (received[kind] ?? 0) + 1;
        return around(kind, run);
      };
      // The list as an operator gives it: B first (static), then A.
      agent = new Agent({
        server: [b.agentUrl, a.agentUrl],
        token: TOKEN,
        hosts: [sim],
        initialBackoffMs: 200,
        maxBackoffMs: 1000,
        // Kept for a failing test's message: what the agent did, with times.
        log: {
          info: (f, m) => agentLog.push(`${Date.now()} ${m} ${JSON.stringify(f)}`),
          warn: (f, m) => agentLog.push(`${Date.now()} ${m} ${JSON.stringify(f)}`),
          error: (f, m) => agentLog.push(`${Date.now()} ${m} ${JSON.stringify(f)}`),
          debug: () => undefined,
        },
      });
      agent.start();
      await waitUntil(async () => agent.server === b.agentUrl, 10_000, 'the agent on B');
      const { zoneid, templateid, small } = await seededLocalZone(a.admin);
      const cluster = (await a.admin.request<any>('listClusters', { zoneid })).cluster[0];
      // addHost goes to the server the agent waits on.
      const host = (
        await b.admin.request<any>('addHost', {
          zoneid,
          podid: cluster.podid,
          clusterid: cluster.id,
          url: `agent://${HOST}`,
          username: 'root',
          password: TOKEN,
          hypervisor: 'Simulator',
        })
      ).host[0];
      assert.equal(host.state, 'Up');
      hostNumericId = (await sql<{ id: number }>('select id from hosts where uuid = ?', [host.id]))[0].id;
      // Deployed through A onto the host B holds: every command of the start is forwarded.
      await waitUntil(
        async () =>
          (await a.admin.request<any>('listHosts', { name: HOST })).host?.[0]?.managementservername ===
          'ms-b',
        10_000,
        'A to see the host on B',
      );
      const vm = (
        await a.admin.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid: small,
          hostid: host.id,
        })
      ).virtualmachine;
      vmId = vm.id;
      vmName = vm.instancename;
    });

    after(async () => {
      await agent?.stop();
      for (const s of [a, b])
        if (s && s.process.exitCode === null && s.process.signalCode === null)
          await s.stop({ keepData: true });
      await database?.drop();
    });

    test('a VM deployed through A runs on the host B holds; a refusal comes back as a local one would', async () => {
      const vm = (await a.admin.request<any>('listVirtualMachines', { id: vmId })).virtualmachine[0];
      assert.equal(vm.state, 'Running');
      assert.equal(vm.hostname, HOST);
      assert.equal(received.startVm, 1, 'the agent ran startVm once');
      assert.deepEqual(sim.reportStates(), [{ name: vmName, state: 'PowerOn' }]);
      // Through A too: the simulator refuses the next stopVm with a message of ours.
      // A learns which hosts its peers hold every 2 s (isConnected, which configureSimulator asks).
      const hostid = (await a.admin.request<any>('listHosts', { name: HOST })).host[0].id;
      await waitUntil(
        () =>
          a.admin
            .request('configureSimulator', {
              name: 'stopVm',
              value: 'result:fail;message:disk is busy',
              count: 1,
              hostid,
            })
            .then(
              () => true,
              () => false,
            ),
        5000,
        'A to take the host on B for connected',
      );
      await assert.rejects(
        a.admin.call('stopVirtualMachine', { id: vmId }),
        (err: any) => err.errorcode === 530 && /stopVm failed on the host: disk is busy/.test(err.message),
      );
      assert.equal(
        (await a.admin.request<any>('listVirtualMachines', { id: vmId })).virtualmachine[0].state,
        'Running',
      );
    });

    test('the console opens through A, which relays to B holding the host', async () => {
      const e = (await a.admin.request<any>('createConsoleEndpoint', { virtualmachineid: vmId }))
        .consoleendpoint;
      const onA = await probe(a.url, e.websocket.token);
      assert.equal(onA.banner, 'RFB 003.008\n');
      assert.ok(received.openConsole >= 1);
    });

    test('reconnectHost through A makes the agent on B present the host again', async () => {
      const hostid = (await a.admin.request<any>('listHosts', { name: HOST })).host[0].id;
      const startups = agentLog.filter((l) => l.includes('connected to management server')).length;
      const r = await a.admin.call<any>('reconnectHost', { id: hostid });
      assert.equal(r.host.state, 'Up');
      assert.equal(r.host.managementservername, 'ms-b');
      assert.equal(agent.server, b.agentUrl, 'the agent stayed on B');
      assert.equal(
        agentLog.filter((l) => l.includes('connected to management server')).length,
        startups,
        'the connection stayed, only the host was presented again',
      );
    });

    test('the peer channel refuses unsigned, forged, misaddressed, stale and replayed requests', async () => {
      const servers = await peers();
      const msA = servers.find((s) => s.name === 'ms-a')!;
      const msB = servers.find((s) => s.name === 'ms-b')!;
      const peerB = { id: 0, uuid: msB.uuid, name: msB.name, url: msB.peer_url };
      const as = (key: Secrets, now = () => Date.now()) =>
        new PeerChannel(() => ({ secrets: key, clock: { now }, server: { uuid: msA.uuid } }) as any);
      const cloud = as(Secrets.read(keyFile));
      const body = JSON.stringify({
        hostId: hostNumericId,
        kind: 'checkHealth',
        payload: {},
        timeoutMs: 5000,
      });
      const post = (headers: Record<string, string>) =>
        fetch(new URL(PEER_SEND_PATH, msB.peer_url), {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body,
        });

      // Signed with the cloud's key: answered, with a signed answer.
      const answer = (await cloud.post(peerB, PEER_SEND_PATH, JSON.parse(body), 5000)) as any;
      assert.equal(answer.answer.ok, true);
      assert.equal(answer.answer.result.healthy, true);

      const unsigned = await post({});
      assert.equal(unsigned.status, 401);
      assert.match(await unsigned.text(), /unsigned/);

      const forged = await post(as(Secrets.generate()).sign('POST', PEER_SEND_PATH, msB.uuid, body));
      assert.equal(forged.status, 401);
      assert.match(await forged.text(), /wrong signature/);

      const elsewhere = await post(cloud.sign('POST', PEER_SEND_PATH, msA.uuid, body));
      assert.equal(elsewhere.status, 401);
      assert.match(await elsewhere.text(), /addressed to another server/);

      const stale = await post(
        as(Secrets.read(keyFile), () => Date.now() - 120_000).sign('POST', PEER_SEND_PATH, msB.uuid, body),
      );
      assert.equal(stale.status, 401);
      assert.match(await stale.text(), /too old/);

      const once = cloud.sign('POST', PEER_SEND_PATH, msB.uuid, body);
      assert.equal((await post(once)).status, 200);
      const replayed = await post(once);
      assert.equal(replayed.status, 401);
      assert.match(await replayed.text(), /replayed/);

      // A body changed under a valid signature is refused too.
      const tampered = cloud.sign('POST', PEER_SEND_PATH, msB.uuid, body.replace('checkHealth', 'stopVm'));
      const t = await post(tampered);
      assert.equal(t.status, 401);
      assert.match(await t.text(), /wrong signature/);

      // The console relay takes only signed upgrades.
      const relay = new WebSocket(
        `${msB.peer_url.replace('http', 'ws')}/peer/console?host=${hostNumericId}&vm=${vmName}`,
      );
      relay.on('error', () => undefined);
      const [code, reason] = await new Promise<[number, string]>((r) =>
        relay.once('close', (c, why) => r([c, why.toString()])),
      );
      assert.equal(code, 4001);
      assert.match(reason, /unsigned/);
    });

    test('a peer that cannot be reached is a 534 naming it, as a host not connected here', async () => {
      const hostid = (await a.admin.request<any>('listHosts', { name: HOST })).host[0].id;
      const [{ peer_url }] = await sql<{ peer_url: string }>(
        "select peer_url from management_servers where name = 'ms-b' and state = 'Up'",
      );
      const closed = `http://127.0.0.1:${await freePort()}`;
      await sql("update management_servers set peer_url = ? where name = 'ms-b' and state = 'Up'", [closed]);
      try {
        await assert.rejects(
          a.admin.request('configureSimulator', { name: 'stopVm', value: 'result:success', hostid }),
          (err: any) =>
            err.errorcode === 534 &&
            err.cserrorcode === 4285 &&
            /connected to management server ms-b, which could not be reached/.test(err.message),
        );
      } finally {
        await sql("update management_servers set peer_url = ? where name = 'ms-b' and state = 'Up'", [
          peer_url,
        ]);
      }
    });

    test("the servers hand the agent the 'host' list in indirect.agent.lb.algorithm's order", async () => {
      await a.admin.request('updateConfiguration', {
        name: 'host',
        value: `127.0.0.1:${agentPorts.b}, ws://127.0.0.1:${agentPorts.a}`,
      });
      await a.admin.request('updateConfiguration', {
        name: 'indirect.agent.lb.algorithm',
        value: 'roundrobin',
      });
      // fo-host is the second host of the zone (the local zone's is the first): the list turns by one.
      await waitUntil(
        async () => agent.serverList.join(',') === `${a.agentUrl},${b.agentUrl}`,
        15_000,
        `the handed list (the agent has ${agent.serverList.join(',')})`,
      );
      await assert.rejects(
        a.admin.request('updateConfiguration', { name: 'indirect.agent.lb.algorithm', value: 'fastest' }),
        (err: any) => err.errorcode === 431,
      );
      await assert.rejects(
        a.admin.request('updateConfiguration', { name: 'host', value: 'ms1,http://ms2/x' }),
        (err: any) => err.errorcode === 431,
      );
    });

    test('B stops: the agent moves to A at once and the host stays Up', async (t) => {
      const before = { ...received };
      const { states, host, ms } = await statesWhile(
        () => a.admin,
        () => b.stop({ keepData: true }).then(() => undefined),
        (h) => h.managementservername === 'ms-a',
      );
      assert.deepEqual([...states], ['Up'], `the host was ${[...states].join(', ')}`);
      assert.equal(host.state, 'Up');
      assert.equal(agent.server, a.agentUrl);
      assert.ok(ms < 5000, `failover took ${ms} ms\n${agentLog.slice(-10).join('\n')}`);
      t.diagnostic(`the agent was on A ${ms} ms after B began to stop`);
      assert.equal(received.startVm, before.startVm, 'no VM was started again');
      assert.equal(received.stopVm, before.stopVm, 'no VM was stopped');
      // Commands go on through A, which holds the agent now.
      const e = (await a.admin.request<any>('createConsoleEndpoint', { virtualmachineid: vmId }))
        .consoleendpoint;
      assert.equal((await probe(a.url, e.websocket.token)).banner, 'RFB 003.008\n');
    });

    test('A is killed (SIGKILL): the agent moves to B, started again, and the host stays Up', async (t) => {
      b = await startServer({ databaseUrl: database.url, env: envFor('ms-b', agentPorts.b) });
      const before = { ...received };
      const { states, host, ms } = await statesWhile(
        () => b.admin,
        async () => {
          a.process.kill('SIGKILL');
        },
        (h) => h.managementservername === 'ms-b',
      );
      assert.deepEqual([...states], ['Up'], `the host was ${[...states].join(', ')}`);
      assert.equal(host.state, 'Up');
      assert.equal(agent.server, b.agentUrl);
      assert.ok(ms < 5000, `failover took ${ms} ms\n${agentLog.slice(-10).join('\n')}`);
      t.diagnostic(`the agent was on B ${ms} ms after A was killed`);
      assert.equal(received.startVm, before.startVm, 'no VM was started again');
      assert.equal(received.stopVm, before.stopVm, 'no VM was stopped');
      const vm = (await b.admin.request<any>('listVirtualMachines', { id: vmId })).virtualmachine[0];
      assert.equal(vm.state, 'Running');
    });

    test('every server down: the VM keeps running; a server back reconciles it without a restart', async () => {
      const before = { ...received };
      await b.stop({ keepData: true });
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(agent.server, undefined, 'no server to hold the agent');
      assert.deepEqual(sim.reportStates(), [{ name: vmName, state: 'PowerOn' }]);
      // A comes back where it was (same name, data and ports): the agent finds it on its own.
      a = await startServer({
        dataDir: a.dataDir,
        databaseUrl: database.url,
        env: { ...envFor('ms-a', agentPorts.a), NIMBOSTACK_SEED_LOCAL_ZONE: 'true' },
      });
      await waitUntil(async () => agent.server === a.agentUrl, 15_000, 'the agent back on A');
      const host = await waitUntil(
        async () => {
          const h = (await a.admin.request<any>('listHosts', { name: HOST })).host[0];
          return h.state === 'Up' && h.managementservername === 'ms-a' && h;
        },
        10_000,
        'the host Up on A',
      );
      assert.equal(host.state, 'Up');
      // Pings have carried the VM states: the record and the host agree, and nothing was restarted.
      await new Promise((r) => setTimeout(r, 2500));
      const vm = (await a.admin.request<any>('listVirtualMachines', { id: vmId })).virtualmachine[0];
      assert.equal(vm.state, 'Running');
      assert.deepEqual(sim.reportStates(), [{ name: vmName, state: 'PowerOn' }]);
      assert.equal(received.startVm, before.startVm, 'no VM was started again');
      assert.equal(received.stopVm, before.stopVm, 'no VM was stopped');
    });
  });
}
