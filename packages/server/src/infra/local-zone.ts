/**
 * The embedded default: on a fresh database (and unless seedLocalZone is off) the server creates a
 * ready local zone — zone, pod, Simulator cluster, primary and secondary storage as directories
 * under the data directory, and one simulated host served by an agent running inside this
 * process. The agent speaks the same WebSocket protocol as any other, and its token is kept in
 * <dataDir>/local-agent.json so it reconnects on every later start.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, type AgentLogger, SimulatorFleet } from '@nimbostack/agent';
import type { App, CallContext } from '../context.ts';
import { dispatch } from '../http/dispatch.ts';
import { loadCaller } from '../iam/caller.ts';
import type { RawValue } from '../registry/params.ts';

const HOST_NAME = 'local-host';
const PENDING_WAIT_MS = 10_000;

interface LocalAgentFile {
  name: string;
  token: string;
}

/** Runs a command as the admin, with the same validation as the API; returns the object it made. */
async function run(
  ctx: CallContext,
  command: string,
  params: Record<string, string>,
): Promise<{ id: string }> {
  const cmd = ctx.app.registry.get(command);
  if (!cmd) throw new Error(`${command} is not registered`);
  const body = (await dispatch(ctx, cmd, new Map<string, RawValue>(Object.entries(params)))) as Record<
    string,
    unknown
  >;
  const key = cmd.catalog.responseObjectName ?? '';
  const made = Array.isArray(body[key]) ? (body[key] as unknown[])[0] : body[key];
  return made as { id: string };
}

function startAgent(app: App, agentUrl: string, file: LocalAgentFile, ca?: Buffer): Agent {
  const log = app.log.child({ component: 'local-agent' });
  const agent = new Agent({
    server: agentUrl,
    token: file.token,
    hosts: new SimulatorFleet().addHosts(file.name, 1),
    log: log as unknown as AgentLogger,
    maxBackoffMs: 5000,
    // The server's own certificate may name its public address, not 127.0.0.1: trust exactly it.
    tls: ca ? { ca, checkServerIdentity: () => undefined } : undefined,
  });
  agent.start();
  return agent;
}

async function adminContext(app: App): Promise<CallContext> {
  const admin = await app.store.db
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select('users.id')
    .where('users.username', '=', 'admin')
    .where('accounts.type', '=', 1)
    .orderBy('users.id')
    .executeTakeFirstOrThrow();
  const caller = await loadCaller(app, admin.id);
  if (!caller) throw new Error('the admin user cannot be loaded');
  return { app, caller };
}

/**
 * Starts the local host's agent when the local zone exists, and creates the zone on a fresh
 * database. Returns the agent (to stop with the server), or undefined when there is none.
 */
export async function startLocalZone(
  app: App,
  opts: { fresh: boolean; agentUrl: string; ca?: Buffer },
): Promise<Agent | undefined> {
  const path = join(app.config.dataDir, 'local-agent.json');
  if (existsSync(path)) {
    const file = JSON.parse(readFileSync(path, 'utf8')) as LocalAgentFile;
    return startAgent(app, opts.agentUrl, file, opts.ca);
  }
  if (!opts.fresh || !app.config.seedLocalZone) return undefined;

  const started = Date.now();
  const file: LocalAgentFile = { name: HOST_NAME, token: randomBytes(24).toString('hex') };
  const agent = startAgent(app, opts.agentUrl, file, opts.ca);
  try {
    const ctx = await adminContext(app);
    const primary = join(app.config.dataDir, 'primary');
    const secondary = join(app.config.dataDir, 'secondary');
    mkdirSync(primary, { recursive: true });
    mkdirSync(secondary, { recursive: true });
    const zone = await run(ctx, 'createZone', {
      name: 'local',
      // CloudStack's default kind of zone: one shared guest network, security groups on the hosts.
      networktype: 'Basic',
      securitygroupenabled: 'true',
      dns1: '8.8.8.8',
      internaldns1: '8.8.8.8',
      allocationstate: 'Enabled',
      localstorageenabled: 'true',
    });
    const pod = await run(ctx, 'createPod', {
      zoneid: zone.id,
      name: 'local-pod',
      gateway: '192.168.100.1',
      netmask: '255.255.255.0',
      startip: '192.168.100.10',
      endip: '192.168.100.250',
      allocationstate: 'Enabled',
    });
    const cluster = await run(ctx, 'addCluster', {
      zoneid: zone.id,
      podid: pod.id,
      clustername: 'local-cluster',
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
      allocationstate: 'Enabled',
    });
    await run(ctx, 'createVlanIpRange', {
      zoneid: zone.id,
      podid: pod.id,
      gateway: '10.1.1.1',
      netmask: '255.255.255.0',
      startip: '10.1.1.10',
      endip: '10.1.1.250',
      forvirtualnetwork: 'false',
    });
    await run(ctx, 'createStoragePool', {
      zoneid: zone.id,
      podid: pod.id,
      clusterid: cluster.id,
      name: 'local-primary',
      url: primary,
      scope: 'cluster',
    });
    await run(ctx, 'addImageStore', {
      zoneid: zone.id,
      name: 'local-secondary',
      provider: 'NFS',
      url: secondary,
    });
    const deadline = Date.now() + PENDING_WAIT_MS;
    while (!app.agents.pendingHost(file.name)) {
      if (Date.now() > deadline) throw new Error('the local agent did not connect');
      await new Promise((r) => setTimeout(r, 20));
    }
    await run(ctx, 'addHost', {
      zoneid: zone.id,
      podid: pod.id,
      clusterid: cluster.id,
      url: `agent://${file.name}`,
      username: 'root',
      password: file.token,
      hypervisor: 'Simulator',
    });
    writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
    app.log.info({ zone: 'local', host: file.name, ms: Date.now() - started }, 'created the local zone');
    return agent;
  } catch (err) {
    app.log.error({ err }, 'could not create the local zone; the server runs without it');
    await agent.stop();
    return undefined;
  }
}
