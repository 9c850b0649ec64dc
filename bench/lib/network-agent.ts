/**
 * The networks benchmark's simulator agent process: one WebSocket presenting hosts sim-1..sim-N,
 * as `packages/agent --hosts N` does. Routers and VMs the bulk path is about to write are put on
 * their simulated hosts first, told on stdin, so the hosts already run them when the rows appear
 * (a VM row whose host does not report it would be marked Stopped at the next ping, and a router
 * its host does not run would refuse its rules). A copied router is the sample router's spec, as
 * the server booted it, with the copy's identifiers (network-bulk.ts).
 *   node --import tsx bench/lib/network-agent.ts SERVER_URL TOKEN HOSTS
 *   stdin:  one JSON file path per line, holding an AgentLoad (network-bulk.ts), or `arrived`
 *   stdout: "ok <vms> <routers>" once they are on their hosts, "error <text>" otherwise; for
 *           `arrived`, "arrived <json>": when each of the benchmark's port forwards reached its router.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Agent, type AgentLogger, SIMULATOR_DEFAULTS, SimulatorFleet } from '@nimbostack/agent';
import type { RouterSpec } from '@nimbostack/protocol';
import { HOST_BASE_NAME } from './cloud.ts';
import { type AgentLoad, replacer } from './network-bulk.ts';

const [server, token, hostCount] = process.argv.slice(2);
const fleet = new SimulatorFleet(SIMULATOR_DEFAULTS);
const hosts = fleet.addHosts(HOST_BASE_NAME, Number(hostCount));
const byName = new Map(hosts.map((h) => [h.name, h]));

const toStderr = (fields: object, msg: string) =>
  process.stderr.write(`agent: ${msg} ${JSON.stringify(fields)}\n`);
const quiet: AgentLogger = { info: () => undefined, debug: () => undefined, warn: toStderr, error: toStderr };
const agent = new Agent({ server: server!, token: token!, hosts, log: quiet, maxBackoffMs: 1000 });
agent.start();

function routerNamed(name: string): RouterSpec {
  for (const h of hosts) {
    const r = h.routers.get(name);
    if (r) return r;
  }
  throw new Error(`no simulated host runs router ${name}`);
}

/**
 * When each port forward from port 40000 up (the benchmark's own rules) first reached its router,
 * in ms since the epoch (performance.timeOrigin + now, comparable with the benchmark's clock).
 */
const arrived = new Map<string, number>();
for (const host of hosts) {
  const apply = host.applyRouterRules.bind(host);
  host.applyRouterRules = async (p) => {
    const answer = await apply(p);
    const at = performance.timeOrigin + performance.now();
    for (const f of p.rules.portForwards) {
      if (f.publicStart < 40_000) continue;
      const key = `${f.publicIp}:${f.protocol}:${f.publicStart}`;
      if (!arrived.has(key)) arrived.set(key, at);
    }
    return answer;
  };
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'arrived') {
    process.stdout.write(`arrived ${JSON.stringify(Object.fromEntries(arrived))}\n`);
    return;
  }
  try {
    const load = JSON.parse(readFileSync(line.trim(), 'utf8')) as AgentLoad;
    let vms = 0;
    let routers = 0;
    for (const [name, list] of Object.entries(load.vms)) {
      const host = byName.get(name);
      if (!host) throw new Error(`no simulated host ${name}`);
      for (const [vm, uuid, cpus, cpuMhz, memoryBytes] of list) {
        host.vms.set(vm, {
          spec: { name: vm, uuid, cpus, cpuMhz, memoryBytes, disks: [], nics: [] },
          state: 'PowerOn',
          disks: new Set(),
        });
        vms++;
      }
    }
    for (const [name, list] of Object.entries(load.routers)) {
      const host = byName.get(name);
      if (!host) throw new Error(`no simulated host ${name}`);
      for (const copy of list) {
        const swap = replacer(copy.replace);
        const spec = JSON.parse(swap({ spec: JSON.stringify(routerNamed(copy.like)) }).spec) as RouterSpec;
        spec.name = copy.name;
        const [guest] = spec.guests;
        if (guest) guest.network = { ...guest.network, vni: copy.vni, bridge: copy.bridge, peers: [] };
        host.routers.set(copy.name, spec);
        routers++;
      }
    }
    process.stdout.write(`ok ${vms} ${routers}\n`);
  } catch (e) {
    process.stdout.write(`error ${(e as Error).message}\n`);
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => agent.stop().then(() => process.exit(0)));
