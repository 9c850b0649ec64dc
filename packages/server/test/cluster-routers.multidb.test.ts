/**
 * A new isolated network's first VM starts through two management servers at once (PostgreSQL or
 * MariaDB: `npm run test:db`; SQLite holds one server, so this file skips it): its router starts
 * once, on one host. Two servers run in this process on one database, each holding one simulated
 * host. Each server's hint of which hosts its peer holds (isConnected) is kept as it was before the
 * hosts came, as it is for up to a few seconds after any host joins or moves: the second start
 * must still find the router its peer just started reachable (read from the database), and add
 * its VM to it rather than start it again on its own host.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, type AgentLogger, SimulatorFleet } from '@nimbostack/agent';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { waitUntil } from './agents.ts';
import { testDatabases } from './harness.ts';
import { type AdvancedZone, startAdvancedZone } from './public-ip-zone.ts';

const TOKEN = 'advanced-zone-test-token-0123456789';
const silent = { info() {}, warn() {}, error() {}, debug() {} } as unknown as AgentLogger;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The gateway's hint of peers' hosts stays as it is now (empty: no host has joined yet). */
const freezePeerHint = (server: Server) => {
  server.app.agents.peers.refresh = async () => undefined;
};

for (const db of testDatabases().filter((d) => d !== 'sqlite')) {
  describe(`an isolated network's router across management servers on ${db}`, () => {
    const secretKey = randomBytes(32).toString('hex');
    const dataDir = mkdtempSync(join(tmpdir(), 'nimbo-cluster-routers-'));
    let zone: AdvancedZone;
    let b: Server;
    let bAdmin: CloudStackClient;
    let agentB: Agent;
    const fleetB = new SimulatorFleet();
    // Two made, the second used: its address differs from zone A's single host's.
    const hostB = fleetB.addHosts('bh', 2)[1]!;

    before(async () => {
      process.env.PUBLIC_IP_TEST_DB = db;
      zone = await startAdvancedZone({ publicIps: 4, hosts: 1, config: { serverName: 'ms-a', secretKey } });
      const agentPort = await freePort();
      b = await startServer(
        loadConfig(
          {},
          {
            port: 0,
            agentPort,
            host: '127.0.0.1',
            dataDir,
            databaseUrl: zone.server.app.config.databaseUrl,
            logLevel: 'silent',
            seedLocalZone: false,
            serverName: 'ms-b',
            secretKey,
          },
        ),
      );
      freezePeerHint(zone.server);
      freezePeerHint(b);
      bAdmin = await CloudStackClient.login(`${b.url}/client/api`, 'admin', 'password');
      agentB = new Agent({
        server: `ws://127.0.0.1:${agentPort}`,
        token: TOKEN,
        hosts: [hostB],
        log: silent,
      });
      agentB.start();
      await waitUntil(async () => b.app.agents.pendingHost(hostB.name), 10_000, `${hostB.name} to connect`);
      const cluster = (await bAdmin.request<any>('listClusters', { zoneid: zone.zoneid })).cluster[0];
      const added = await bAdmin.request<any>('addHost', {
        zoneid: zone.zoneid,
        podid: cluster.podid,
        clusterid: cluster.id,
        url: `agent://${hostB.name}`,
        username: 'root',
        password: TOKEN,
        hypervisor: 'Simulator',
      });
      assert.equal(added.host[0].state, 'Up');
    });

    after(async () => {
      await agentB?.stop();
      await b?.stop();
      await zone?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    test('first deploys through both servers at once: one router, started once, serving both VMs', async () => {
      const hostA = [...zone.fleet.hosts.values()][0]!;
      const hostIdOf = async (name: string) =>
        (await zone.admin.request<any>('listHosts', { name })).host[0].id as string;
      const network = (
        await zone.admin.request<any>('createNetwork', {
          name: 'raced',
          displaytext: 'raced',
          zoneid: zone.zoneid,
          networkofferingid: zone.isolatedOffering,
        })
      ).network;
      const deploy = (via: CloudStackClient, hostid: string) =>
        via.call<any>('deployVirtualMachine', {
          zoneid: zone.zoneid,
          templateid: zone.templateid,
          serviceofferingid: zone.offering,
          networkids: network.id,
          hostid,
        });
      const [one, two] = await Promise.all([
        deploy(zone.admin, await hostIdOf(hostA.name)),
        deploy(bAdmin, await hostIdOf(hostB.name)),
      ]);
      const vms = [one.virtualmachine, two.virtualmachine];
      assert.deepEqual(
        vms.map((v) => v.state),
        ['Running', 'Running'],
      );

      const routers = (await zone.admin.request<any>('listRouters', { networkid: network.id })).router;
      assert.equal(routers.length, 1);
      const [router] = routers;
      assert.equal(router.state, 'Running');
      const starts = (
        await zone.admin.request<any>('listEvents', { type: 'ROUTER.START', listall: true })
      ).event?.filter((e: any) => e.resourceid === router.id || e.description.includes(router.name));
      assert.equal(starts?.length, 1, `ROUTER.START events: ${JSON.stringify(starts)}`);
      const running = [hostA, hostB].filter((h) => h.routers.has(router.name));
      assert.deepEqual(
        running.map((h) => h.name),
        [router.hostname],
        'the router runs on one host, the one recorded',
      );
      // The start that found it running added its VM's entry to it (forwarded to the peer's host).
      const entries = running[0]!.routers.get(router.name)!.vms.map((e) => e.instanceId);
      assert.deepEqual(entries.sort(), vms.map((v) => v.id).sort());
    });
  });
}
