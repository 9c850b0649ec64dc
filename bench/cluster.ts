/**
 * The cluster benchmark (issue 15): API throughput and deploys per minute with 1, 2 and 3
 * management servers on one PostgreSQL database behind HAProxy (round robin), each next to its
 * floor: a bare node:http server behind the same HAProxy, with the same clients. The cluster is the
 * HA suite's (packages/server/test/ha/cluster.ts): real server processes, simulator hosts whose
 * agents are given the servers' list. Every server count gets a fresh database and cloud.
 *
 * On a two-core machine the servers, PostgreSQL, HAProxy and the clients share the same two cores,
 * so more servers cannot add capacity: the figures show what a cluster costs (forwarding, the
 * proxy, cross-server checks), not how it scales. docs/ha.md says what bigger machines need.
 *
 *   npm run bench:cluster [-- --servers 1,2,3] [--seconds 10] [--deploy-seconds 30] [--quick]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CloudStackClient } from '@nimbostack/client';
import { buildCloud } from '../packages/server/test/chaos/cloud.ts';
import { freePort } from '../packages/server/test/chaos/processes.ts';
import {
  AGENT_TOKEN,
  Cluster,
  Haproxy,
  haproxyAvailable,
  SimHosts,
} from '../packages/server/test/ha/cluster.ts';
import { startHttpFloor } from './lib/floor.ts';
import { type LatencyStats, measure, round, warmUp } from './lib/measure.ts';
import { cpuSeconds } from './lib/proc.ts';

const { values: args } = parseArgs({
  options: {
    servers: { type: 'string', default: '1,2,3' },
    clients: { type: 'string', default: '16' },
    'deploy-clients': { type: 'string', default: '8' },
    seconds: { type: 'string' },
    'deploy-seconds': { type: 'string' },
    quick: { type: 'boolean', default: false },
    'results-dir': { type: 'string', default: resolve(import.meta.dirname, 'results') },
  },
  strict: true,
});
const COUNTS = args.servers!.split(',').map(Number);
const CLIENTS = Number(args.clients);
const DEPLOY_CLIENTS = Number(args['deploy-clients']);
const SECONDS = Number(args.seconds ?? (args.quick ? 3 : 10));
const DEPLOY_SECONDS = Number(args['deploy-seconds'] ?? (args.quick ? 8 : 30));
const WARMUP = args.quick ? 0.5 : 2;
const IDLE_SECONDS = args.quick ? 2 : 5;
const MAX_DEPLOYS = 200;
const started = performance.now();
const log = (s: string) =>
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);

interface Row {
  servers: number;
  listZones: LatencyStats;
  listVirtualMachines: LatencyStats;
  /** Server CPU (all servers together) per listZones call, ms. */
  cpuPerCallMs: number;
  deploys: LatencyStats;
  deploysPerMin: number;
  /** Server CPU per deploy (all servers), ms. */
  cpuPerDeployMs: number;
  /** All servers' CPU with no calls, in percent of one core. */
  idleCpuPercent: number;
}

const serverCpu = (c: Cluster) => c.processes.reduce((s, p) => s + (p ? cpuSeconds(p.pid) : 0), 0);

async function runWith(servers: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), `nimbo-bench-cluster-${servers}-`));
  const cluster = await Cluster.start({ db: 'postgres', servers, dir });
  const sim = new SimHosts(cluster.agentUrls(), 2, 3);
  sim.start();
  try {
    const cloud = await buildCloud(cluster.api, dir, sim.names, AGENT_TOKEN);
    const network = (
      await cloud.user.call<any>('createNetwork', {
        name: 'bench',
        displaytext: 'bench',
        networkofferingid: cloud.isolatedOffering,
        zoneid: cloud.zoneid,
        // Room for every deploy of the case (the zone's default /24 ran out at 3 servers).
        gateway: '10.8.0.1',
        netmask: '255.255.240.0',
      })
    ).network.id;
    // Deploys go on for the whole case: the account's VM, CPU, memory and volume limits are lifted.
    const owner = (await cloud.user.request<any>('listAccounts', {})).account[0];
    for (const resourcetype of [0, 2, 8, 9, 10])
      await cloud.admin.request('updateResourceLimit', {
        account: owner.name,
        domainid: owner.domainid,
        resourcetype,
        max: -1,
      });
    const user = new CloudStackClient({ ...cloud.user.options, pollInterval: 0.25 });
    let n = 0;
    const deploy = async () => {
      const r = await user.request<{ jobid: string }>('deployVirtualMachine', {
        zoneid: cloud.zoneid,
        templateid: cloud.templateid,
        serviceofferingid: cloud.offering,
        networkids: network,
        name: `bench-${n++}`,
      });
      await user.waitForJob(r.jobid);
    };
    // The network's first deploy starts its router: not what is measured.
    await deploy();
    for (let i = 0; i < 10; i++) await deploy().catch(() => undefined);

    // What the servers spend with no calls at all (heartbeats, host pings and monitors, leases,
    // settings refresh, outbox): each server pays it, so it is a cluster's fixed overhead.
    const i0 = serverCpu(cluster);
    await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
    const idleCpuPercent = round(((serverCpu(cluster) - i0) / IDLE_SECONDS) * 100, 1);
    log(`${servers} server(s): idle, together ${idleCpuPercent}% of a core`);
    const zones = () => user.request('listZones');
    await warmUp(zones, CLIENTS, WARMUP);
    const c0 = serverCpu(cluster);
    const listZones = await measure(zones, {
      clients: CLIENTS,
      total: 1e9,
      maxSeconds: SECONDS,
      warmup: false,
    });
    const cpuPerCallMs = round(((serverCpu(cluster) - c0) * 1000) / Math.max(1, listZones.requests), 3);
    log(
      `${servers} server(s): listZones ${listZones.rps} req/s, p50 ${listZones.p50} ms, ${listZones.errors} errors`,
    );
    const vms = () => user.request('listVirtualMachines', { listall: true });
    await warmUp(vms, CLIENTS, WARMUP);
    const listVirtualMachines = await measure(vms, {
      clients: CLIENTS,
      total: 1e9,
      maxSeconds: SECONDS,
      warmup: false,
    });
    log(`${servers} server(s): listVirtualMachines ${listVirtualMachines.rps} req/s`);

    const d0 = serverCpu(cluster);
    const deploys = await measure(deploy, {
      clients: DEPLOY_CLIENTS,
      // The directory pool fills at about 240 root disks of 2 GiB: the case stops before.
      total: MAX_DEPLOYS,
      maxSeconds: DEPLOY_SECONDS,
      warmup: false,
    });
    const ok = deploys.requests - deploys.errors;
    // Wall time of the case: requests over rps.
    const wallS = deploys.requests / Math.max(0.001, deploys.rps);
    const deploysPerMin = round((ok / wallS) * 60, 1);
    const cpuPerDeployMs = round(((serverCpu(cluster) - d0) * 1000) / Math.max(1, ok), 1);
    log(
      `${servers} server(s): ${deploysPerMin} deploys/min (${ok} ok, ${deploys.errors} failed${deploys.firstError ? `: ${deploys.firstError}` : ''})`,
    );
    return {
      servers,
      idleCpuPercent,
      listZones,
      listVirtualMachines,
      cpuPerCallMs,
      deploys,
      deploysPerMin,
      cpuPerDeployMs,
    };
  } finally {
    await sim.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A bare node:http server behind the same HAProxy, with the same clients: the floor. */
async function floor(): Promise<LatencyStats> {
  const http = await startHttpFloor();
  const port = Number(new URL(http.url).port);
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-bench-cluster-floor-'));
  const proxy = new Haproxy(dir, await freePort(), await freePort(), [
    { name: 'floor', port, agentPort: port },
  ]);
  await proxy.start();
  try {
    const url = `http://127.0.0.1:${proxy.apiPort}/`;
    const call = async () => {
      const res = await fetch(url);
      await res.json();
    };
    await warmUp(call, CLIENTS, WARMUP);
    return await measure(call, { clients: CLIENTS, total: 1e9, maxSeconds: SECONDS, warmup: false });
  } finally {
    await proxy.stop();
    await http.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function markdown(rows: Row[], f: LatencyStats): string {
  const cores = cpus().length;
  return [
    `# Cluster benchmark ${new Date().toISOString()}`,
    '',
    `PostgreSQL, HAProxy round robin, ${CLIENTS} API clients (${DEPLOY_CLIENTS} deploying), ${SECONDS} s per list case, ${DEPLOY_SECONDS} s of deploys; ${cores} CPU cores shared by everything.`,
    '',
    '| servers | servers idle (% of a core) | listZones req/s (p50 ms) | floor: node:http behind HAProxy | server CPU per listZones | listVirtualMachines req/s | deploys/min (failed) | deploy p50 | server CPU per deploy |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.servers} | ${r.idleCpuPercent} | ${r.listZones.rps} (${r.listZones.p50}) | ${f.rps} | ${r.cpuPerCallMs} ms | ${r.listVirtualMachines.rps} | ${r.deploysPerMin} (${r.deploys.errors}) | ${r.deploys.p50} ms | ${r.cpuPerDeployMs} ms |`,
    ),
    '',
    cores <= 2
      ? 'On two cores this is overhead, not scale: the servers share the cores the clients, HAProxy and PostgreSQL use.'
      : '',
    '',
  ].join('\n');
}
async function main(): Promise<void> {
  if (!haproxyAvailable()) {
    console.error('bench:cluster: haproxy is not installed (npm run setup:host installs it)');
    process.exit(1);
  }
  const rows: Row[] = [];
  for (const n of COUNTS) rows.push(await runWith(n));
  const f = await floor();
  log(`floor: node:http behind HAProxy ${f.rps} req/s, p50 ${f.p50} ms`);
  const md = markdown(rows, f);
  process.stdout.write(`\n${md}`);
  mkdirSync(args['results-dir']!, { recursive: true });
  const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
  const base = join(args['results-dir']!, `${stamp}-cluster${args.quick ? '-quick' : ''}`);
  const json = { rows, floor: f, cpus: cpus().length };
  writeFileSync(`${base}.json`, JSON.stringify(json, null, 2));
  writeFileSync(`${base}.md`, md);
  // A full run of every server count is the one the docs quote; kept in git as cluster-latest.
  if (!args.quick && COUNTS.join() === '1,2,3') {
    writeFileSync(join(args['results-dir']!, 'cluster-latest.json'), JSON.stringify(json, null, 2));
    writeFileSync(join(args['results-dir']!, 'cluster-latest.md'), md);
  }
  log(`results: ${base}.md`);
}

await main();
process.exit(0);
