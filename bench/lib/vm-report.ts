/**
 * bench:vms's figures: what one boot and one deploy measured, where a deploy's time went (from the
 * server-side trace, vm-trace-hooks.ts), and the Markdown report.
 */
import { round } from './measure.ts';
import type { TraceSpan } from './vm-trace-hooks.ts';

/** One guest's boot, timed from `t0` (epoch ms): the floor's QEMU spawn, or the deploy call. */
export interface Boot {
  name: string;
  mac: string;
  /** t0 → dnsmasq's DHCPACK for the MAC. */
  leaseMs: number;
  /** t0 → the guest's first DHCPDISCOVER (udhcpc started). */
  discoverMs?: number;
  /** t0 → `NIMBO: dhcp <ip>` on the guest's console. */
  consoleMs?: number;
  /** The floor: t0 → this QEMU's spawn (several are spawned one after the other). */
  spawnMs?: number;
  /** CPU time the guest's QEMU had used when its lease was seen (its wall time is leaseMs). */
  qemuCpuMs?: number;
  /** CPU time the server process (API, jobs, the in-process agent) used from t0 to the lease. */
  serverCpuMs?: number;
  t0: number;
  leaseAt: number;
}

export interface Step {
  where: string;
  what: string;
  detail?: string;
  /** ms after the call. */
  startMs: number;
  ms: number;
  /** A command's time on the agent (its handler), inside its round trip. */
  agentMs?: number;
  /** Host tools (ip, nft, qemu-img…) the command ran, one after the other or side by side. */
  processes?: number;
}

/** Host tools run by one command or before `cont`: how many and their summed run time. */
export interface ToolUse {
  tool: string;
  count: number;
  ms: number;
}

export interface Profile {
  /** ms after the call: QEMU spawned, its monitor answering, `cont` sent (the guest runs). */
  spawnMs?: number;
  qmpReadyMs?: number;
  contMs?: number;
  /** `cont` → DHCPACK: the guest's own boot to its lease. */
  guestMs?: number;
  /** One VM alone (with several, commands of different VMs interleave): */
  /** the agent commands before `cont`, each to its answer or to `cont`, whichever is first; */
  commands?: Step[];
  /** the time before `cont` in no agent command: the API, the job, the planner, the records; */
  serverMs?: number;
  /** the host tools run before `cont`, by tool; */
  tools?: ToolUse[];
  /** every traced step from the call to the lease. */
  timeline?: Step[];
}

export interface Deploy extends Boot {
  instance: string;
  /** t0 → deployVirtualMachine answered with its job. */
  answerMs: number;
  /** t0 → the job seen done with the VM Running (polled every 20 ms). */
  runningMs: number;
  profile?: Profile;
}

export interface Round {
  floorFirst: boolean;
  floor: Boot[];
  ours: Deploy[];
  loadBefore: number;
  loadAfter: number;
}

/** Commands the server sends on its own schedule, not for a deploy. */
const BACKGROUND = new Set(['getHostStats', 'getVmStats', 'checkHealth', 'getPoolStats']);

/** Length of the union of intervals, clipped to [from, to]. */
function covered(spans: { start: number; end: number }[], from: number, to: number): number {
  const xs = spans
    .map((s) => [Math.max(s.start, from), Math.min(s.end, to)] as const)
    .filter(([a, b]) => b > a)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = -Infinity;
  for (const [a, b] of xs) {
    if (b <= end) continue;
    total += b - Math.max(a, end);
    end = b;
  }
  return total;
}

/** Where deploy `d`'s time went, from the trace; `alone`: no other deploy ran beside it. */
export function profileOf(
  d: { t0: number; leaseAt: number; instance: string },
  spans: TraceSpan[],
  alone: boolean,
): Profile {
  const rel = (x: number) => round(x - d.t0, 1);
  const mine = spans.filter((s) => s.where === 'qemu' && s.detail === d.instance);
  const spawn = mine.find((s) => s.what === 'spawned → QMP ready');
  const cont = mine.find((s) => s.what === 'cont');
  const profile: Profile = {
    ...(spawn ? { spawnMs: rel(spawn.start), qmpReadyMs: rel(spawn.end) } : {}),
    ...(cont ? { contMs: rel(cont.start), guestMs: round(d.leaseAt - cont.start, 1) } : {}),
  };
  const timeline = spans
    .filter((s) => s.start >= d.t0 && s.start <= d.leaseAt)
    .sort((a, b) => a.start - b.start)
    .map((s) => ({
      where: s.where,
      what: s.what,
      ...(s.detail ? { detail: s.detail } : {}),
      startMs: rel(s.start),
      ms: round(s.end - s.start, 1),
    }));
  if (!alone || !cont) return { ...profile, timeline };
  const before = spans.filter(
    (s) => s.start >= d.t0 && s.start <= cont.start && !BACKGROUND.has(s.what) && s.where !== 'qemu',
  );
  const server = before.filter((s) => s.where === 'server');
  const agent = before.filter((s) => s.where === 'agent');
  const processes = spans.filter((s) => s.where === 'process' && s.start >= d.t0 && s.start <= cont.start);
  const commands = server.map((s) => {
    const a = agent.find((x) => x.what === s.what && x.start >= s.start && x.start <= s.end);
    const end = Math.min(s.end, cont.start);
    return {
      where: 'server',
      what: s.what,
      ...(s.detail ? { detail: s.detail } : {}),
      startMs: rel(s.start),
      ms: round(end - s.start, 1),
      ...(a ? { agentMs: round(Math.min(a.end, cont.start) - a.start, 1) } : {}),
      processes: processes.filter((x) => x.start >= s.start && x.start <= end).length,
    };
  });
  const serverMs = round(cont.start - d.t0 - covered(server, d.t0, cont.start), 1);
  const tools = new Map<string, ToolUse>();
  for (const x of processes) {
    const tool = x.what.split(' ')[0]!;
    const t = tools.get(tool) ?? { tool, count: 0, ms: 0 };
    t.count++;
    t.ms = round(t.ms + x.end - x.start, 1);
    tools.set(tool, t);
  }
  return {
    ...profile,
    commands,
    serverMs,
    tools: [...tools.values()].sort((a, b) => b.ms - a.ms),
    timeline,
  };
}

const median = (xs: (number | undefined)[]) => {
  const s = xs.filter((x): x is number => x !== undefined && Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? round(s[Math.floor((s.length - 1) / 2)]!, 1) : undefined;
};
const ms = (x: number | undefined) => (x === undefined ? '—' : `${Math.round(x).toLocaleString('en')} ms`);
const pair = (a: number | undefined, b: number | undefined) => `${ms(a)} / ${ms(b)}`;
const gap = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? '—' : `${a >= b ? '+' : '−'}${ms(Math.abs(a - b))}`;

export interface Report {
  quick: boolean;
  rounds: number;
  /** VMs deployed at once in each of `together`'s rounds. */
  atOnce: number;
  togetherRounds: number;
  accel: string;
  memoryMiB: number;
  cpus: number;
  templateMiB: number;
  hostCpus: number;
  loadStart: number;
  loadEnd: number;
  warmup: Deploy;
  single: Round[];
  together: Round[];
}

/** The median one-VM round's profile split into the steps before the guest runs, then its boot. */
function whereItGoes(r: Report): string[] {
  const deploys = r.single.map((x) => x.ours[0]!).filter((d) => d.profile?.commands);
  const floors = r.single.map((x) => x.floor[0]!);
  if (!deploys.length) return ['No trace of a one-VM deploy (the server ran without vm-trace-hooks.ts?).'];
  const p = deploys.map((d) => d.profile!);
  const kinds = [...new Set(p.flatMap((x) => x.commands!.map((c) => c.what)))];
  const byKind = (k: string, f: (c: Step) => number | undefined) =>
    median(p.map((x) => x.commands!.filter((c) => c.what === k).reduce((s, c) => s + (f(c) ?? 0), 0)));
  const startVm = (x: Profile) => x.commands!.find((c) => c.what === 'startVm');
  const floorLease = median(floors.map((f) => f.leaseMs));
  const lease = median(deploys.map((d) => d.leaseMs));
  return [
    `Medians over the ${deploys.length} one-VM deploys; each step of a deploy in the order it runs. The server-side trace (bench/lib/vm-trace-hooks.ts) stamps each agent command from the server's send to the agent's answer (in brackets: the agent's handler alone), QEMU's spawn, its monitor answering, and \`cont\`.`,
    '',
    '| step | median |',
    '|---|---:|',
    `| deployVirtualMachine answered (the job queued) | ${ms(median(deploys.map((d) => d.answerMs)))} after the call |`,
    ...kinds
      .filter((k) => k !== 'startVm')
      .map(
        (k) =>
          `| agent: ${k} | ${ms(byKind(k, (c) => c.ms))} (${ms(byKind(k, (c) => c.agentMs))} on the agent, ${byKind(k, (c) => c.processes)} host tools run) |`,
      ),
    `| server, outside agent commands: API, job, planner, records, messages | ${ms(median(p.map((x) => x.serverMs)))} |`,
    `| agent: startVm until QEMU is spawned (disk checks, command line) | ${ms(median(p.map((x) => (x.spawnMs !== undefined && startVm(x) ? x.spawnMs - startVm(x)!.startMs : undefined))))} |`,
    `| QEMU spawned → its monitor answers (paused, -S) | ${ms(median(p.map((x) => (x.qmpReadyMs !== undefined && x.spawnMs !== undefined ? x.qmpReadyMs - x.spawnMs : undefined))))} |`,
    `| monitor → \`cont\` (tap into the bridge, firewall rules) | ${ms(median(p.map((x) => (x.contMs !== undefined && x.qmpReadyMs !== undefined ? x.contMs - x.qmpReadyMs : undefined))))} |`,
    `| **the guest runs** (\`cont\`) | **${ms(median(p.map((x) => x.contMs)))} after the call** |`,
    `| the guest: \`cont\` → DHCPACK | ${ms(median(p.map((x) => x.guestMs)))} (floor, QEMU spawn → DHCPACK: ${ms(floorLease)}) |`,
    `| **deploy → lease** | **${ms(lease)}**, ${gap(lease, floorLease)} over the floor |`,
    `| (the job seen Running, polled every 20 ms, off the path to the lease) | ${ms(median(deploys.map((d) => d.runningMs)))} |`,
    '',
    `Host tools the agent ran before \`cont\` (median deploy: count, summed run time): ${toolsOf(p)}.`,
  ];
}

/** The host tools of the median deploy (by the time its tools took), as one line. */
function toolsOf(p: Profile[]): string {
  const total = (x: Profile) => (x.tools ?? []).reduce((s, t) => s + t.ms, 0);
  const mid = [...p].sort((a, b) => total(a) - total(b))[Math.floor((p.length - 1) / 2)];
  if (!mid?.tools?.length) return 'none traced';
  return mid.tools.map((t) => `${t.tool} ×${t.count} ${ms(t.ms)}`).join(', ');
}

function timeline(d: Deploy): string[] {
  return [
    '| ms after the call | side | step | took |',
    '|---:|---|---|---:|',
    ...(d.profile?.timeline ?? []).map(
      (s) =>
        `| ${round(s.startMs, 1)} | ${s.where} | ${s.what}${s.detail ? ` (${s.detail})` : ''} | ${round(s.ms, 1)} ms |`,
    ),
    `| ${d.discoverMs ?? '—'} | guest | DHCPDISCOVER in the router's dnsmasq log | |`,
    `| ${d.leaseMs} | guest | **DHCPACK** in the router's dnsmasq log | |`,
    `| ${d.consoleMs ?? '—'} | guest | \`NIMBO: dhcp\` on its console | |`,
  ];
}

export function markdown(r: Report): string {
  const singleOurs = r.single.map((x) => x.ours[0]!);
  const singleFloor = r.single.map((x) => x.floor[0]!);
  const lines = [
    `# Real-VM benchmark ${new Date().toISOString()}${r.quick ? ' (--quick)' : ''}`,
    '',
    `KVM local zone (real QEMU, accel ${r.accel}), the test template (${r.templateMiB} MiB file), VMs of ${r.cpus} vCPU and ${r.memoryMiB} MiB; ${r.rounds} one-VM rounds and ${r.togetherRounds} rounds of ${r.atOnce} VMs at once, floor and deploy taking turns to go first; ${r.hostCpus} CPU cores, load average ${r.loadStart} at the start, ${r.loadEnd} at the end.`,
    '',
    "**The lease**, for the floor and the deploy alike: the `DHCPACK(<if>) <ip> <mac>` line dnsmasq logs (--log-dhcp) for the guest's MAC, read by the bench polling the log every 5 ms (the zone router's dnsmasq; the floor's own). **The floor**: bare QEMU with the agent's own command line for the VM minus `-S`, on a linked clone in the same file system, its tap already on a bridge in a namespace of its own with a dnsmasq of the router's DHCP settings; timed from QEMU's spawn.",
    '',
    `The zone's first deploy (its router booted, the template copied into the pool): Running after ${ms(r.warmup.runningMs)}, ${Number.isNaN(r.warmup.leaseMs) ? 'its lease not waited for (--quick)' : `lease after ${ms(r.warmup.leaseMs)}`}.`,
    '',
    '## One VM: deployVirtualMachine → DHCP lease',
    '',
    '| round (first) | deploy → lease | floor: QEMU spawn → lease | gap | DHCPDISCOVER: deploy / floor | console `NIMBO: dhcp`: deploy / floor | QEMU CPU time to the lease: deploy / floor | server CPU time meanwhile: deploy / floor | deploy → Running | load before → after |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...r.single.map((x, i) => {
      const [o, f] = [x.ours[0]!, x.floor[0]!];
      return `| ${i + 1} (${x.floorFirst ? 'floor' : 'deploy'}) | ${ms(o.leaseMs)} | ${ms(f.leaseMs)} | ${gap(o.leaseMs, f.leaseMs)} | ${pair(o.discoverMs, f.discoverMs)} | ${pair(o.consoleMs, f.consoleMs)} | ${pair(o.qemuCpuMs, f.qemuCpuMs)} | ${pair(o.serverCpuMs, f.serverCpuMs)} | ${ms(o.runningMs)} | ${x.loadBefore} → ${x.loadAfter} |`;
    }),
    `| **median** | **${ms(median(singleOurs.map((o) => o.leaseMs)))}** | **${ms(median(singleFloor.map((f) => f.leaseMs)))}** | **${gap(median(singleOurs.map((o) => o.leaseMs)), median(singleFloor.map((f) => f.leaseMs)))}** | ${pair(median(singleOurs.map((o) => o.discoverMs)), median(singleFloor.map((f) => f.discoverMs)))} | ${pair(median(singleOurs.map((o) => o.consoleMs)), median(singleFloor.map((f) => f.consoleMs)))} | ${pair(median(singleOurs.map((o) => o.qemuCpuMs)), median(singleFloor.map((f) => f.qemuCpuMs)))} | ${pair(median(singleOurs.map((o) => o.serverCpuMs)), median(singleFloor.map((f) => f.serverCpuMs)))} | ${ms(median(singleOurs.map((o) => o.runningMs)))} | |`,
    '',
    `## ${r.atOnce} VMs deployed at once`,
    '',
    `All ${r.atOnce} deployVirtualMachine calls are made at the same moment (one client each); the floor spawns ${r.atOnce} QEMUs at once. Each VM's time is from that moment; the i-th lease of the deploys is set beside the i-th of the floor.`,
    '',
    '| round (first) | VM | deploy → lease | floor → lease | gap | QEMU CPU time to the lease: deploy / floor | deploy: QEMU spawned / `cont` | load before → after |',
    '|---|---|---:|---:|---:|---:|---|---|',
  ];
  for (const [i, x] of r.together.entries()) {
    const o = [...x.ours].sort((a, b) => a.leaseMs - b.leaseMs);
    const f = [...x.floor].sort((a, b) => a.leaseMs - b.leaseMs);
    for (const [k, d] of o.entries())
      lines.push(
        `| ${i + 1} (${x.floorFirst ? 'floor' : 'deploy'}) | ${k + 1} | ${ms(d.leaseMs)} | ${ms(f[k]?.leaseMs)} | ${gap(d.leaseMs, f[k]?.leaseMs)} | ${pair(d.qemuCpuMs, f[k]?.qemuCpuMs)} | ${pair(d.profile?.spawnMs, d.profile?.contMs)} | ${k === 0 ? `${x.loadBefore} → ${x.loadAfter}` : ''} |`,
      );
    const total = (xs: Boot[]) => Math.max(...xs.map((b) => b.leaseMs));
    lines.push(
      `| ${i + 1} | **all ${r.atOnce}** | **${ms(total(x.ours))}** | **${ms(total(x.floor))}** | **${gap(total(x.ours), total(x.floor))}** | | | |`,
    );
  }
  lines.push('', "## Where a deploy's extra time goes (one VM)", '', ...whereItGoes(r));
  const medianRound = [...singleOurs].sort((a, b) => a.leaseMs - b.leaseMs)[
    Math.floor((singleOurs.length - 1) / 2)
  ];
  if (medianRound?.profile?.timeline)
    lines.push(
      '',
      `### Every traced step of the median one-VM deploy (${medianRound.name})`,
      '',
      ...timeline(medianRound),
    );
  lines.push('');
  return lines.join('\n');
}
