/**
 * An Advanced zone for API tests of public addresses and their rules: the server and a simulator
 * agent with two hosts run in this process (as in isolated-networks.test.ts), so tests read what
 * each router was told (`routerOn(name).spec.public` and `.rules`). The zone has one public range
 * of `publicIps` addresses from 203.0.113.10; tests add more with createVlanIpRange. The database
 * is SQLite, or a fresh PostgreSQL or MariaDB one with PUBLIC_IP_TEST_DB=postgres|mysql.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentLogger, SimulatorFleet, type SimulatorHost } from '@nimbostack/agent';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig, type ServerConfig } from '../src/config.ts';
import { waitUntil } from './agents.ts';
import { createDatabase, type DbKind } from './harness.ts';

const TOKEN = 'advanced-zone-test-token-0123456789';
const silent: AgentLogger = { info() {}, warn() {}, error() {}, debug() {} } as unknown as AgentLogger;

/** A rejection matcher: the CloudStack error code and, optionally, the text. */
export const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (text === undefined || text.test(e.message));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface AdvancedZone {
  server: Server;
  admin: CloudStackClient;
  fleet: SimulatorFleet;
  zoneid: string;
  templateid: string;
  offering: string;
  isolatedOffering: string;
  hostIds: Map<string, string>;
  /** A user account (type 0) and a session client for it. */
  createUser(name: string): Promise<CloudStackClient>;
  /** The router as its simulated host holds it (public side and rules), or undefined. */
  routerOn(name: string): { host: SimulatorHost; spec: any } | undefined;
  /** The running router of a network, as the host holds it. */
  routerOf(networkid: string): Promise<{ name: string; hostid: string; spec: any }>;
  stop(): Promise<void>;
}

export async function startAdvancedZone(opts: {
  publicIps: number;
  vniRange?: string;
  /** Simulated hosts (default 2); tests that inject failures with configureSimulator may want one. */
  hosts?: number;
  /** The server's log level (default silent); the fuzz sweep shows errors with FUZZ_LOG=error. */
  logLevel?: ServerConfig['logLevel'];
  /** More server settings (e.g. an event bus URL). */
  config?: Partial<ServerConfig>;
}): Promise<AdvancedZone> {
  const dataDir = mkdtempSync(join(tmpdir(), 'nimbo-advzone-'));
  mkdirSync(join(dataDir, 'primary'));
  mkdirSync(join(dataDir, 'secondary'));
  const agentPort = await freePort();
  const database = await createDatabase((process.env.PUBLIC_IP_TEST_DB ?? 'sqlite') as DbKind, dataDir);
  const server = await startServer(
    loadConfig(
      {},
      {
        port: 0,
        agentPort,
        host: '127.0.0.1',
        dataDir,
        databaseUrl: database.url,
        logLevel: opts.logLevel ?? 'silent',
        seedLocalZone: false,
        ...opts.config,
      },
    ),
  );
  const admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
  const zoneid = (
    await admin.request<any>('createZone', {
      name: 'advzone',
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      guestcidraddress: '10.1.1.0/24',
    })
  ).zone.id;
  const physicalid = (
    await admin.call<any>('createPhysicalNetwork', {
      zoneid,
      name: 'phys',
      isolationmethods: 'VXLAN',
      vlan: opts.vniRange ?? '7000-7019',
    })
  ).physicalnetwork.id;
  for (const traffictype of ['Guest', 'Public', 'Management'])
    await admin.call('addTrafficType', {
      physicalnetworkid: physicalid,
      traffictype,
      ...(traffictype === 'Public' ? { kvmnetworklabel: 'nimbopub0' } : {}),
    });
  await admin.call('updatePhysicalNetwork', { id: physicalid, state: 'Enabled' });
  await admin.request('createVlanIpRange', {
    zoneid,
    forvirtualnetwork: true,
    gateway: '203.0.113.1',
    netmask: '255.255.255.0',
    startip: '203.0.113.10',
    endip: `203.0.113.${10 + opts.publicIps - 1}`,
  });
  const pod = (
    await admin.request<any>('createPod', {
      zoneid,
      name: 'ap',
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
      clustername: 'ac',
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  await admin.request('createStoragePool', {
    zoneid,
    podid: pod.id,
    clusterid: cluster.id,
    name: 'aprimary',
    url: join(dataDir, 'primary'),
    scope: 'cluster',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'asecondary',
    provider: 'NFS',
    url: join(dataDir, 'secondary'),
  });
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  const fleet = new SimulatorFleet();
  const hosts = fleet.addHosts('ah', opts.hosts ?? 2);
  const agent = new Agent({
    server: `ws://127.0.0.1:${agentPort}`,
    token: TOKEN,
    hosts,
    log: silent,
    maxBackoffMs: 300,
  });
  agent.start();
  const hostIds = new Map<string, string>();
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
  const templateid = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
    20_000,
    'the built-in template',
  );
  const offering = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
    .serviceoffering[0].id;
  const isolatedOffering = (
    await admin.request<any>('listNetworkOfferings', {
      name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    })
  ).networkoffering[0].id;
  const routerOn = (name: string) => {
    for (const h of fleet.hosts.values()) {
      const r = h.routers.get(name);
      if (r) return { host: h as SimulatorHost, spec: r as any };
    }
    return undefined;
  };
  return {
    server,
    admin,
    fleet,
    zoneid,
    templateid,
    offering,
    isolatedOffering,
    hostIds,
    async createUser(name) {
      await admin.request('createAccount', {
        username: name,
        password: 'secret-pass',
        email: `${name}@example.com`,
        firstname: name,
        lastname: 'U',
        accounttype: 0,
      });
      return CloudStackClient.login(`${server.url}/client/api`, name, 'secret-pass');
    },
    routerOn,
    async routerOf(networkid) {
      const router = (await admin.request<any>('listRouters', { networkid })).router?.[0];
      if (!router) throw new Error(`network ${networkid} has no router`);
      const on = routerOn(router.name);
      if (!on) throw new Error(`router ${router.name} runs on no host`);
      return { name: router.name, hostid: router.hostid, spec: on.spec };
    },
    async stop() {
      await agent.stop();
      await server.stop();
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
