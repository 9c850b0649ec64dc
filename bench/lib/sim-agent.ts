/**
 * The benchmark's simulator agent process: one WebSocket presenting hosts sim-1..sim-N, as
 * `packages/agent --hosts N` does, whose simulated hypervisors already run the VMs the bulk path
 * placed on them. Without them every host would report its VMs powered off, and the server would
 * (rightly) mark all of them Stopped.
 *   node --import tsx bench/lib/sim-agent.ts SERVER_URL TOKEN HOSTS VMS_JSON
 * VMS_JSON maps a host name to [instanceName, uuid, cpus, cpuMhz, memoryBytes] tuples.
 */
import { readFileSync } from 'node:fs';
import { Agent, type AgentLogger, SIMULATOR_DEFAULTS, SimulatorFleet } from '@nimbostack/agent';
import { HOST_BASE_NAME } from './cloud.ts';

type RunningVm = [name: string, uuid: string, cpus: number, cpuMhz: number, memoryBytes: number];

const [server, token, hostCount, vmsFile] = process.argv.slice(2);
const fleet = new SimulatorFleet(SIMULATOR_DEFAULTS);
const hosts = fleet.addHosts(HOST_BASE_NAME, Number(hostCount));
const running = JSON.parse(readFileSync(vmsFile, 'utf8')) as Record<string, RunningVm[]>;
for (const host of hosts) {
  for (const [name, uuid, cpus, cpuMhz, memoryBytes] of running[host.name] ?? []) {
    host.vms.set(name, {
      spec: { name, uuid, cpus, cpuMhz, memoryBytes, disks: [], nics: [] },
      state: 'PowerOn',
      disks: new Set(),
    });
  }
}
// Thousands of hosts log a line each; only problems are worth printing.
const toStderr = (fields: object, msg: string) =>
  process.stderr.write(`agent: ${msg} ${JSON.stringify(fields)}\n`);
const quiet: AgentLogger = { info: () => undefined, debug: () => undefined, warn: toStderr, error: toStderr };
const agent = new Agent({ server, token, hosts, log: quiet, maxBackoffMs: 1000 });
agent.start();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => agent.stop().then(() => process.exit(0)));
