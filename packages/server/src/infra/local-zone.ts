/**
 * The embedded default: on a fresh database (and unless seedLocalZone is off) the server creates a
 * ready local zone — zone, pod, cluster, primary and secondary storage as directories, and one
 * host served by an agent running inside this process. The agent speaks the same WebSocket
 * protocol as any other, and its token is kept in <dataDir>/local-agent.json so it reconnects on
 * every later start.
 *
 * The host is simulated by default. With `hypervisor: kvm` (NIMBOSTACK_HYPERVISOR=kvm) it is this
 * machine as a real KVM host (the agent's KvmHost driver): guests run in QEMU, the zone's guest
 * network is a bridge here with its virtual router, storage lives under kvmStorageDir, and the
 * test template built by `npm run setup:host` is registered as the zone's ready template. With
 * `hypervisor: lxc` it is this machine as an LXC host (the agent's LxcHost driver) in the same
 * way: guests are system containers on the same bridges and routers, and the LXC test template
 * (a root file system tarball, also built by setup:host) is the zone's ready template.
 *
 * The zone is Basic by default. With `zone: advanced` (NIMBOSTACK_ZONE=advanced) it is an Advanced
 * zone set up as upstream's zone wizard does it: a physical network isolating guests by VXLAN
 * (VNIs 5000-5999) with Guest, Management and Public traffic (the Public KVM label, `nimbopub0`,
 * is the host bridge routers' public side plugs into), its router providers enabled, and a
 * public range 203.0.113.10-100 (gateway 203.0.113.1, the documentation network TEST-NET-3).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Agent,
  type AgentLogger,
  type HostDriver,
  KvmHost,
  LxcHost,
  SimulatorFleet,
} from '@nimbostack/agent';
import { ConfigError, type ServerConfig } from '../config.ts';
import type { App, CallContext } from '../context.ts';
import { dispatch } from '../http/dispatch.ts';
import { loadCaller } from '../iam/caller.ts';
import type { RawValue } from '../registry/params.ts';
import { defineSystemTemplate } from '../storage/builtin-templates.ts';

const HOST_NAME = 'local-host';
const KVM_HOST_NAME = 'local-kvm';
const LXC_HOST_NAME = 'local-lxc';
const PENDING_WAIT_MS = 10_000;
/** What users look for in listTemplates to deploy on the KVM local zone. */
export const KVM_TEST_TEMPLATE_NAME = 'Nimbostack test template (KVM)';
/** What users look for in listTemplates to deploy on the LXC local zone. */
export const LXC_TEST_TEMPLATE_NAME = 'Nimbostack test template (LXC)';

interface LocalAgentFile {
  name: string;
  token: string;
  /** Absent in files written before KVM local zones existed: those are simulator zones. */
  hypervisor?: 'simulator' | 'kvm' | 'lxc';
  /** Absent in files written before Advanced local zones existed: those are Basic zones. */
  zone?: 'basic' | 'advanced';
}

/** The Advanced local zone's wiring (see the file comment). */
export const ADVANCED_LOCAL_ZONE = {
  vniRange: '5000-5999',
  publicLabel: 'nimbopub0',
  publicGateway: '203.0.113.1',
  publicNetmask: '255.255.255.0',
  publicStart: '203.0.113.10',
  publicEnd: '203.0.113.100',
} as const;

const JOB_WAIT_MS = 30_000;

const SETUP = 'run `npm run setup:host` (as root) first';
const QEMU_BINARY = '/usr/bin/qemu-system-x86_64';
const LXC_START = '/usr/bin/lxc-start';

/**
 * Whether this machine can be the local zone's KVM (or LXC) host, as a one-line ConfigError when
 * not: root is needed for bridges, taps and nftables; QEMU (LXC) and the test template come from
 * setup:host. The server checks this before touching the database, so a failed first start stays
 * a fresh one.
 */
export function checkKvmLocalZone(config: ServerConfig): void {
  if (config.hypervisor === 'lxc') {
    checkLxcLocalZone(config);
    return;
  }
  if (config.hypervisor !== 'kvm') return;
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    throw new ConfigError(
      `NIMBOSTACK_HYPERVISOR=kvm makes this machine a KVM host and needs root (bridges, taps, nftables); ${SETUP} and start the server as root`,
    );
  if (!existsSync(config.kvmTemplate))
    throw new ConfigError(
      `NIMBOSTACK_HYPERVISOR=kvm: the test template ${config.kvmTemplate} is missing; ${SETUP}`,
    );
  if (!existsSync(QEMU_BINARY))
    throw new ConfigError(`NIMBOSTACK_HYPERVISOR=kvm: ${QEMU_BINARY} is missing; ${SETUP}`);
}

/** The same for an LXC local zone: root (containers, bridges, nftables), LXC and its template. */
function checkLxcLocalZone(config: ServerConfig): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    throw new ConfigError(
      `NIMBOSTACK_HYPERVISOR=lxc makes this machine an LXC host and needs root (containers, bridges, nftables); ${SETUP} and start the server as root`,
    );
  if (!existsSync(config.lxcTemplate))
    throw new ConfigError(
      `NIMBOSTACK_HYPERVISOR=lxc: the test template ${config.lxcTemplate} is missing; ${SETUP}`,
    );
  if (!existsSync(LXC_START))
    throw new ConfigError(`NIMBOSTACK_HYPERVISOR=lxc: ${LXC_START} is missing; ${SETUP}`);
}

/** This machine as the local zone's LXC host (see checkKvmLocalZone). */
async function lxcHost(app: App, name: string): Promise<HostDriver> {
  checkKvmLocalZone(app.config);
  try {
    return await LxcHost.create({ name, stateDir: app.config.kvmStateDir });
  } catch (err) {
    throw new ConfigError(
      `NIMBOSTACK_HYPERVISOR=lxc: cannot drive LXC here (${(err as Error).message}); ${SETUP}`,
    );
  }
}

/** The LXC test root file system as a template of every zone, like the KVM one. */
function defineLxcTemplate(app: App): void {
  defineSystemTemplate({
    name: LXC_TEST_TEMPLATE_NAME,
    displayText: 'Small Linux container (busybox): DHCP, metadata, user data and password from the router',
    url: `file://${app.config.lxcTemplate}`,
    format: 'TAR',
    hypervisor: 'LXC',
    osType: 'Other Linux (64-bit)',
    type: 'BUILTIN',
    passwordEnabled: true,
    sshKeyEnabled: true,
  });
}

/** This machine as the local zone's KVM host (see checkKvmLocalZone). */
async function kvmHost(app: App, name: string): Promise<HostDriver> {
  const { config } = app;
  checkKvmLocalZone(config);
  try {
    return await KvmHost.create({ name, stateDir: config.kvmStateDir, nfs: config.kvmNfs });
  } catch (err) {
    throw new ConfigError(
      `NIMBOSTACK_HYPERVISOR=kvm: cannot drive KVM here (${(err as Error).message}); ${SETUP}`,
    );
  }
}

/** The KVM test image as a template of every zone: public, featured, password-enabled. */
function defineKvmTemplate(app: App): void {
  defineSystemTemplate({
    name: KVM_TEST_TEMPLATE_NAME,
    displayText: 'Small Linux guest (busybox): DHCP, metadata, user data and password from the router',
    url: `file://${app.config.kvmTemplate}`,
    format: 'QCOW2',
    hypervisor: 'KVM',
    osType: 'Other Linux (64-bit)',
    type: 'BUILTIN',
    passwordEnabled: true,
    sshKeyEnabled: true,
  });
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
  if (typeof body.jobid === 'string') await jobDone(ctx.app, command, body.jobid);
  return (made ?? { id: body.id }) as { id: string };
}

/** Waits for an async command's job: the wizard's steps depend on each other. */
async function jobDone(app: App, command: string, jobId: string): Promise<void> {
  const deadline = Date.now() + JOB_WAIT_MS;
  for (;;) {
    const job = await app.store.db
      .selectFrom('async_jobs')
      .select(['status', 'result'])
      .where('uuid', '=', jobId)
      .executeTakeFirst();
    if (job && job.status === 1) return;
    if (job && job.status === 2) throw new Error(`${command} failed: ${job.result}`);
    if (Date.now() > deadline) throw new Error(`${command} did not finish`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The Advanced zone's physical network, as the zone wizard sets it up: VXLAN guest VNIs, the three
 * traffic types, enabled, with the router elements configured and their providers enabled.
 */
async function advancedPhysicalNetwork(ctx: CallContext, zoneId: string): Promise<void> {
  const physical = await run(ctx, 'createPhysicalNetwork', {
    zoneid: zoneId,
    name: 'local-physical',
    isolationmethods: 'VXLAN',
    vlan: ADVANCED_LOCAL_ZONE.vniRange,
  });
  await run(ctx, 'addTrafficType', { physicalnetworkid: physical.id, traffictype: 'Guest' });
  await run(ctx, 'addTrafficType', { physicalnetworkid: physical.id, traffictype: 'Management' });
  await run(ctx, 'addTrafficType', {
    physicalnetworkid: physical.id,
    traffictype: 'Public',
    kvmnetworklabel: ADVANCED_LOCAL_ZONE.publicLabel,
  });
  await run(ctx, 'updatePhysicalNetwork', { id: physical.id, state: 'Enabled' });
  const providers = await ctx.app.store.db
    .selectFrom('network_service_providers as n')
    .innerJoin('physical_networks as p', 'p.id', 'n.physical_network_id')
    .leftJoin('virtual_router_elements as e', 'e.nsp_id', 'n.id')
    .select(['n.uuid', 'n.name', 'e.uuid as element'])
    .where('p.uuid', '=', physical.id)
    .execute();
  // The zone has no security groups: its SecurityGroupProvider stays Disabled, as the wizard leaves it.
  for (const provider of providers.filter((x) => x.name !== 'SecurityGroupProvider')) {
    if (provider.element)
      await run(
        ctx,
        provider.name === 'InternalLbVm'
          ? 'configureInternalLoadBalancerElement'
          : 'configureVirtualRouterElement',
        { id: provider.element, enabled: 'true' },
      );
    await run(ctx, 'updateNetworkServiceProvider', { id: provider.uuid, state: 'Enabled' });
  }
}

async function startAgent(app: App, agentUrl: string, file: LocalAgentFile, ca?: Buffer): Promise<Agent> {
  const log = app.log.child({ component: 'local-agent' });
  const hosts =
    file.hypervisor === 'kvm'
      ? [await kvmHost(app, file.name)]
      : file.hypervisor === 'lxc'
        ? [await lxcHost(app, file.name)]
        : new SimulatorFleet().addHosts(file.name, 1);
  const agent = new Agent({
    server: agentUrl,
    token: file.token,
    hosts,
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
  const { config } = app;
  const path = join(config.dataDir, 'local-agent.json');
  if (existsSync(path)) {
    const file = JSON.parse(readFileSync(path, 'utf8')) as LocalAgentFile;
    const kind = file.hypervisor ?? 'simulator';
    if (kind !== config.hypervisor)
      throw new ConfigError(
        `the local zone in ${config.dataDir} has a ${kind} host, not ${config.hypervisor}: start with NIMBOSTACK_HYPERVISOR=${kind}, or use a fresh NIMBOSTACK_DATA directory`,
      );
    const zoneKind = file.zone ?? 'basic';
    if (zoneKind !== config.zone)
      throw new ConfigError(
        `the local zone in ${config.dataDir} is a ${zoneKind} zone, not ${config.zone}: start with NIMBOSTACK_ZONE=${zoneKind}, or use a fresh NIMBOSTACK_DATA directory`,
      );
    if (kind === 'kvm') defineKvmTemplate(app);
    if (kind === 'lxc') defineLxcTemplate(app);
    return startAgent(app, opts.agentUrl, file, opts.ca);
  }
  if (!opts.fresh || !config.seedLocalZone) return undefined;

  const started = Date.now();
  const kvm = config.hypervisor === 'kvm';
  const lxc = config.hypervisor === 'lxc';
  const file: LocalAgentFile = {
    name: kvm ? KVM_HOST_NAME : lxc ? LXC_HOST_NAME : HOST_NAME,
    token: randomBytes(24).toString('hex'),
    hypervisor: config.hypervisor,
    zone: config.zone,
  };
  const advanced = config.zone === 'advanced';
  // Checked before anything is created, so a machine that cannot be a KVM host leaves no zone behind.
  const agent = await startAgent(app, opts.agentUrl, file, opts.ca);
  if (kvm) defineKvmTemplate(app);
  if (lxc) defineLxcTemplate(app);
  const hypervisor = kvm ? 'KVM' : lxc ? 'LXC' : 'Simulator';
  // This machine's storage directories for a real host; the data directory for the simulator.
  const real = kvm || lxc;
  try {
    const ctx = await adminContext(app);
    const primary = real ? join(config.kvmStorageDir, 'primary') : join(config.dataDir, 'primary');
    const secondary = real ? join(config.kvmStorageDir, 'secondary') : join(config.dataDir, 'secondary');
    mkdirSync(primary, { recursive: true });
    mkdirSync(secondary, { recursive: true });
    const zone = await run(ctx, 'createZone', {
      name: 'local',
      // CloudStack's default kind of zone: one shared guest network, security groups on the hosts;
      // or, when asked, isolated networks behind routers (guest CIDR: upstream's 10.1.1.0/24).
      networktype: advanced ? 'Advanced' : 'Basic',
      ...(advanced ? {} : { securitygroupenabled: 'true' }),
      dns1: '8.8.8.8',
      internaldns1: '8.8.8.8',
      allocationstate: 'Enabled',
      localstorageenabled: 'true',
    });
    if (advanced) await advancedPhysicalNetwork(ctx, zone.id);
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
      hypervisor,
      clustertype: 'CloudManaged',
      allocationstate: 'Enabled',
    });
    await run(
      ctx,
      'createVlanIpRange',
      advanced
        ? {
            zoneid: zone.id,
            forvirtualnetwork: 'true',
            vlan: 'untagged',
            gateway: ADVANCED_LOCAL_ZONE.publicGateway,
            netmask: ADVANCED_LOCAL_ZONE.publicNetmask,
            startip: ADVANCED_LOCAL_ZONE.publicStart,
            endip: ADVANCED_LOCAL_ZONE.publicEnd,
          }
        : {
            zoneid: zone.id,
            podid: pod.id,
            gateway: '10.1.1.1',
            netmask: '255.255.255.0',
            startip: '10.1.1.10',
            endip: '10.1.1.250',
            forvirtualnetwork: 'false',
          },
    );
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
      hypervisor,
    });
    writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
    app.log.info(
      {
        zone: 'local',
        networktype: advanced ? 'Advanced' : 'Basic',
        host: file.name,
        hypervisor,
        ms: Date.now() - started,
      },
      'created the local zone',
    );
    return agent;
  } catch (err) {
    app.log.error({ err }, 'could not create the local zone; the server runs without it');
    await agent.stop();
    return undefined;
  }
}
