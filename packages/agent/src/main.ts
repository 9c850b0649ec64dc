/**
 * Runs a host agent:
 *   node --import tsx packages/agent/src/main.ts --server ws://127.0.0.1:8250[,ws://ms2:8250…] \
 *     --token SECRET [--lb-algorithm static|roundrobin|shuffle] [--name NAME] [--hosts N] \
 *     [--hypervisor simulator|kvm|lxc] [--state-dir DIR] [--address IP]
 * Every option also reads from the environment (NIMBOSTACK_AGENT_SERVER, NIMBOSTACK_AGENT_TOKEN,
 * NIMBOSTACK_AGENT_NAME, NIMBOSTACK_AGENT_HOSTS, ...). See docs/agents.md.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { Agent, consoleLogger, LB_ALGORITHMS, type LbAlgorithm } from './agent.ts';
import type { HostDriver } from './drivers/driver.ts';
import { KvmHost } from './drivers/kvm/kvm-host.ts';
import { LxcHost } from './drivers/lxc/lxc-host.ts';
import { SIMULATOR_DEFAULTS, SimulatorFleet } from './drivers/simulator.ts';

const OPTIONS = {
  server: {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_SERVER',
    help: 'ws:// or wss:// URL of the agent port; several, comma-separated, to fail over between',
  },
  'lb-algorithm': {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_LB_ALGORITHM',
    help: 'order the servers are tried in: static (default), roundrobin or shuffle',
  },
  token: { type: 'string', env: 'NIMBOSTACK_AGENT_TOKEN', help: 'secret shared with addHost (its password)' },
  name: {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_NAME',
    help: 'host name (default: this machine, or "sim" for --hosts > 1)',
  },
  hosts: {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_HOSTS',
    help: 'number of simulated hosts (NAME-1..NAME-N)',
  },
  hypervisor: { type: 'string', env: 'NIMBOSTACK_AGENT_HYPERVISOR', help: 'driver: simulator, kvm or lxc' },
  'state-dir': {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_STATE_DIR',
    help: 'kvm, lxc: where VM and container state lives (default /var/lib/nimbostack/agent)',
  },
  address: {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_ADDRESS',
    help: 'kvm, lxc: management address, also where migrations arrive (default: first IPv4)',
  },
  nfs: {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_NFS',
    help: 'kvm: how NFS pools are reached: kernel (mount under /mnt, default) or libnfs (QEMU nfs://)',
  },
  cores: { type: 'string', env: 'NIMBOSTACK_AGENT_CORES', help: 'simulated CPU cores per host' },
  mhz: { type: 'string', env: 'NIMBOSTACK_AGENT_MHZ', help: 'simulated CPU speed per core' },
  memory: { type: 'string', env: 'NIMBOSTACK_AGENT_MEMORY', help: 'simulated memory per host, in bytes' },
  'local-storage': {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_LOCAL_STORAGE',
    help: 'simulated local storage per host, in bytes',
  },
  latency: {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_LATENCY_MS',
    help: 'simulated latency of every command, ms',
  },
  'max-backoff': {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_MAX_BACKOFF_MS',
    help: 'longest reconnect delay, ms',
  },
  liveness: {
    type: 'string',
    env: 'NIMBOSTACK_AGENT_LIVENESS_MS',
    help: 'silence of the server (no frame, no pong) after which the next server is tried, ms (default 15000)',
  },
  ca: { type: 'string', env: 'NIMBOSTACK_AGENT_CA', help: 'PEM file of a private CA for wss://' },
  help: { type: 'boolean', env: '', help: 'show this help' },
} as const;

function usage(): string {
  return [
    'usage: nimbostack-agent --server ws://HOST:8250 --token SECRET [options]',
    ...Object.entries(OPTIONS).map(([k, o]) => `  --${k.padEnd(12)} ${o.help}${o.env ? ` (${o.env})` : ''}`),
  ].join('\n');
}

function fail(message: string): never {
  process.stderr.write(`${message}\n${usage()}\n`);
  process.exit(2);
}

function positive(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer`);
  return n;
}

const { values } = parseArgs({
  options: Object.fromEntries(Object.entries(OPTIONS).map(([k, o]) => [k, { type: o.type }])) as {
    [K in keyof typeof OPTIONS]: { type: (typeof OPTIONS)[K]['type'] };
  },
  strict: true,
});
if (values.help) {
  process.stdout.write(`${usage()}\n`);
  process.exit(0);
}
const opt = (k: keyof typeof OPTIONS): string | undefined => {
  const v = values[k];
  if (typeof v === 'string') return v;
  const env = OPTIONS[k].env;
  return env ? process.env[env] || undefined : undefined;
};

const servers = (opt('server') ?? fail('--server is required'))
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s !== '');
if (servers.length === 0) fail('--server is required');
for (const s of servers) if (!/^wss?:\/\/\S+$/.test(s)) fail(`--server: ${s} is not a ws:// or wss:// URL`);
const algorithm = (opt('lb-algorithm') ?? 'static').toLowerCase() as LbAlgorithm;
if (!LB_ALGORITHMS.includes(algorithm)) fail(`--lb-algorithm must be one of ${LB_ALGORITHMS.join(', ')}`);
const token = opt('token') ?? fail('--token is required');
if (token.length < 8) fail('--token must be at least 8 characters');
const hypervisor = (opt('hypervisor') ?? 'simulator').toLowerCase();
if (hypervisor !== 'simulator' && hypervisor !== 'kvm' && hypervisor !== 'lxc')
  fail(`unsupported hypervisor ${hypervisor}: this agent drives: simulator, kvm, lxc`);
const count = positive(opt('hosts'), 'hosts', 1);
if (count < 1) fail('--hosts must be at least 1');
if (hypervisor !== 'simulator' && count > 1)
  fail(`--hosts applies to the simulator: a ${hypervisor.toUpperCase()} agent is one host`);
const name = opt('name') ?? (count === 1 ? hostname() : 'sim');

function nfsPath(): 'kernel' | 'libnfs' {
  const v = (opt('nfs') ?? 'kernel').toLowerCase();
  if (v !== 'kernel' && v !== 'libnfs') fail(`--nfs must be kernel or libnfs, not ${v}`);
  return v;
}

async function kvmHost(): Promise<HostDriver> {
  try {
    return await KvmHost.create({
      name,
      stateDir: opt('state-dir') ?? '/var/lib/nimbostack/agent',
      privateIp: opt('address'),
      nfs: nfsPath(),
    });
  } catch (err) {
    process.stderr.write(`nimbostack-agent: cannot drive KVM: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

async function lxcHost(): Promise<HostDriver> {
  try {
    return await LxcHost.create({
      name,
      stateDir: opt('state-dir') ?? '/var/lib/nimbostack/agent',
      privateIp: opt('address'),
    });
  } catch (err) {
    process.stderr.write(`nimbostack-agent: cannot drive LXC: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

function simulatorHosts(): HostDriver[] {
  const fleet = new SimulatorFleet({
    ...SIMULATOR_DEFAULTS,
    cpuCores: positive(opt('cores'), 'cores', SIMULATOR_DEFAULTS.cpuCores),
    cpuMhz: positive(opt('mhz'), 'mhz', SIMULATOR_DEFAULTS.cpuMhz),
    memoryBytes: positive(opt('memory'), 'memory', SIMULATOR_DEFAULTS.memoryBytes),
    localStorageBytes: positive(opt('local-storage'), 'local-storage', SIMULATOR_DEFAULTS.localStorageBytes),
    latencyMs: positive(opt('latency'), 'latency', 0),
  });
  return fleet.addHosts(name, count);
}

const ca = opt('ca');
const agent = new Agent({
  server: servers,
  algorithm,
  token,
  hosts:
    hypervisor === 'kvm' ? [await kvmHost()] : hypervisor === 'lxc' ? [await lxcHost()] : simulatorHosts(),
  maxBackoffMs: positive(opt('max-backoff'), 'max-backoff', 30_000),
  livenessMs: Math.max(1000, positive(opt('liveness'), 'liveness', 15_000)),
  tls: ca ? { ca: readFileSync(ca) } : undefined,
});
consoleLogger.info(
  { servers: agent.serverList, algorithm, hosts: count, name, hypervisor },
  'agent starting',
);
agent.start();

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    agent.stop().then(() => process.exit(0));
  });
}
