/**
 * Scale benchmark of the agent gateway: one simulator agent process presents N hosts (default
 * 5,000) over one WebSocket; they are added through the API, then the server's RSS and CPU are
 * sampled while every host pings, and the time for all hosts to come back Up after the agent
 * restarts is measured.
 *   node --import tsx bench/agent-hosts.ts [hosts=5000] [pingIntervalSeconds=5] [sampleSeconds=30]
 */
import { readFileSync } from 'node:fs';
import {
  createCluster,
  createPod,
  createZone,
  startAgent,
  waitUntil,
} from '../packages/server/test/agents.ts';
import { startServer } from '../packages/server/test/harness.ts';

const HOSTS = Number(process.argv[2] ?? 5000);
const PING_SECONDS = Number(process.argv[3] ?? 5);
const SAMPLE_SECONDS = Number(process.argv[4] ?? 30);
const TOKEN = 'bench-token-0000';
const CLOCK_TICKS = 100;

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
}

const server = await startServer();
const pid = server.process.pid!;
try {
  await server.admin.request('updateConfiguration', { name: 'ping.interval', value: String(PING_SECONDS) });
  const zoneid = await createZone(server.admin, 'bench');
  const podid = await createPod(server.admin, zoneid, 'bench-pod', 50);
  const clusterid = await createCluster(server.admin, zoneid, podid, 'bench-cluster');
  const idleRss = rssMiB(pid);

  let agent = startAgent(server.agentUrl, { token: TOKEN, name: 'sim', hosts: HOSTS });
  await agent.waitForLog('connected to management server');
  await waitUntil(async () => agent.logs.length >= HOSTS, 60_000, 'pending hosts');

  const t0 = Date.now();
  let next = 1;
  const worker = async () => {
    while (next <= HOSTS) {
      const n = next++;
      await server.admin.request('addHost', {
        zoneid,
        podid,
        clusterid,
        url: `agent://sim-${n}`,
        password: TOKEN,
        hypervisor: 'Simulator',
      });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const addSeconds = (Date.now() - t0) / 1000;

  const up = async () =>
    (await server.admin.request<any>('listHosts', { state: 'Up', pagesize: 1, page: 1 })).count ?? 0;
  await waitUntil(async () => (await up()) === HOSTS, 60_000, 'all Up');

  const cpu0 = cpuSeconds(pid);
  const s0 = Date.now();
  await new Promise((r) => setTimeout(r, SAMPLE_SECONDS * 1000));
  const cpuPercent = ((cpuSeconds(pid) - cpu0) / ((Date.now() - s0) / 1000)) * 100;
  const pingingRss = rssMiB(pid);
  const agentRss = rssMiB(agent.process.pid!);

  const l0 = Date.now();
  await server.admin.request('listHosts', { zoneid, pagesize: 500, page: 1 });
  const listMs = Date.now() - l0;

  await agent.kill();
  await waitUntil(async () => (await up()) === 0, 30_000, 'all Disconnected');
  const r0 = Date.now();
  agent = startAgent(server.agentUrl, { token: TOKEN, name: 'sim', hosts: HOSTS });
  await waitUntil(async () => (await up()) === HOSTS, 120_000, 'all Up again');
  const reconnectSeconds = (Date.now() - r0) / 1000;
  await agent.kill();

  console.log(
    JSON.stringify(
      {
        hosts: HOSTS,
        pingIntervalSeconds: PING_SECONDS,
        addHostSeconds: addSeconds,
        serverIdleRssMiB: idleRss,
        serverRssWhilePingingMiB: pingingRss,
        serverCpuPercentWhilePinging: Math.round(cpuPercent * 10) / 10,
        agentRssMiB: agentRss,
        listHostsPageOf500Ms: listMs,
        allUpAfterAgentRestartSeconds: reconnectSeconds,
      },
      null,
      2,
    ),
  );
} finally {
  await server.stop();
}
