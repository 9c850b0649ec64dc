/**
 * The statistics the hosts' agents measure (CPU utilisation, memory in use, network and disk
 * traffic), collected as upstream's StatsCollector does: every `host.stats.interval` ms each host
 * whose agent session this server holds is asked `getHostStats`, every `vm.stats.interval` ms
 * `getVmStats` for its running instances. The latest sample of each is kept in memory, like
 * upstream's host stats: they are measurements, not state, and a restart only forgets them until
 * the next round. With several management servers each one knows the hosts it holds. A round asks
 * its hosts a slice at a time, spread over half its interval, not all at once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { CommandResult } from '@nimbostack/protocol';
import type { App } from '../context.ts';
import { defineSetting } from '../settings/settings.ts';

export const HOST_STATS_INTERVAL = defineSetting({
  name: 'host.stats.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 60000,
  min: 1000,
  description:
    'Milliseconds between two collections of the hosts’ statistics (CPU, memory, network) from their agents.',
});

export const VM_STATS_INTERVAL = defineSetting({
  name: 'vm.stats.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 60000,
  min: 1000,
  description:
    'Milliseconds between two collections of the running instances’ statistics (CPU, network, disk) from the agents.',
});

/** A host's latest sample. */
export interface HostStats extends CommandResult<'getHostStats'> {
  /** Epoch ms of the sample. */
  at: number;
}

/** An instance's latest sample; traffic is what passed during the interval before it. */
export interface VmStats {
  at: number;
  cpuUtilization: number;
  memoryBytes: number;
  networkReadKb: number;
  networkWriteKb: number;
  /** Cumulative bytes read from and written to its disks since it started. */
  diskReadBytes: number;
  diskWriteBytes: number;
}

/** How long one agent may take to answer a statistics request before the round goes on without it. */
const ANSWER_TIMEOUT_MS = 10_000;
/** How often the rounds check whether their interval has passed. */
const TICK_MS = 1_000;
/** Hosts asked at once: a round's slice, answered before the next slice is asked. */
const SLICE = 100;
/**
 * The share of its interval over which a round spreads its slices. Asked all at once, 25,000
 * hosts are 25,000 commands in one burst whose answers queue behind each other (in the agents'
 * connections and in this server) past the answer timeout; spread, the same work is a steady
 * trickle and the round still ends well before the next one.
 */
const SPREAD = 0.5;

/** A kept sample and the VM round that last wrote it. */
interface KeptVmStats extends VmStats {
  round: number;
}

export class StatsCollector {
  private readonly hosts = new Map<number, HostStats>();
  private readonly vms = new Map<number, KeptVmStats>();
  private vmRound = 0;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly app: App) {}

  host(hostId: number): HostStats | undefined {
    return this.hosts.get(hostId);
  }

  vm(vmId: number): VmStats | undefined {
    return this.vms.get(vmId);
  }

  /** Starts both rounds. */
  start(): void {
    this.every(HOST_STATS_INTERVAL, () => this.collectHosts());
    this.every(VM_STATS_INTERVAL, () => this.collectVms());
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
  }

  /**
   * Runs `round` whenever its interval has passed since the last one began, checking every second
   * so that a changed interval applies at once; rounds never overlap.
   */
  private every(setting: typeof HOST_STATS_INTERVAL, round: () => Promise<void>): void {
    let last = this.app.clock.now();
    let running = false;
    const timer = setInterval(() => {
      if (this.stopped || running || this.app.clock.now() - last < this.app.settings.get(setting)) return;
      running = true;
      last = this.app.clock.now();
      round()
        .catch((err) => this.app.log.warn({ err }, 'statistics collection failed'))
        .finally(() => {
          running = false;
        });
    }, TICK_MS);
    timer.unref();
    this.timers.add(timer);
  }

  /**
   * Runs `each` over `items` a slice at a time, the slices spaced so that the whole takes about
   * SPREAD of the round's interval (a slice answered more slowly than its share only delays the next).
   */
  private async inSlices<T>(
    items: T[],
    setting: typeof HOST_STATS_INTERVAL,
    each: (slice: T[]) => Promise<void>,
  ): Promise<void> {
    const slices = Math.ceil(items.length / SLICE);
    const gapMs = slices > 1 ? (this.app.settings.get(setting) * SPREAD) / slices : 0;
    for (let i = 0; i < items.length && !this.stopped; i += SLICE) {
      const started = performance.now();
      await each(items.slice(i, i + SLICE));
      const wait = gapMs - (performance.now() - started);
      if (wait > 0 && i + SLICE < items.length) await sleep(wait, undefined, { ref: false });
    }
  }

  /** Asks every host held here for its statistics; a host that does not answer keeps no sample. */
  async collectHosts(): Promise<void> {
    const held = this.app.agents.connectedHosts();
    const heldSet = new Set(held);
    for (const id of this.hosts.keys()) if (!heldSet.has(id)) this.hosts.delete(id);
    await this.inSlices(held, HOST_STATS_INTERVAL, (slice) =>
      Promise.all(
        slice.map(async (id) => {
          try {
            const stats = await this.app.agents.call(id, 'getHostStats', {}, ANSWER_TIMEOUT_MS);
            this.hosts.set(id, { ...stats, at: this.app.clock.now() });
          } catch {
            this.hosts.delete(id);
          }
        }),
      ).then(() => undefined),
    );
  }

  /** Asks each host held here for the statistics of the instances running on it. */
  async collectVms(): Promise<void> {
    const round = ++this.vmRound;
    await this.inSlices(this.app.agents.connectedHosts(), VM_STATS_INTERVAL, (slice) =>
      this.collectVmsOf(slice, round),
    );
    // Instances no longer running here (stopped, migrated to another server's host) lose their sample.
    if (!this.stopped) for (const [id, kept] of this.vms) if (kept.round !== round) this.vms.delete(id);
  }

  /**
   * One slice of a VM round: the hosts' running instances, then each host asked for theirs. A
   * sample is rewritten in place: at a million VMs a new object per VM per round was a million
   * objects a minute for the garbage collector, most of them old enough to be promoted first.
   */
  private async collectVmsOf(hostIds: number[], round: number): Promise<void> {
    const running = await this.app.store.db
      .selectFrom('vms')
      .select(['id', 'instance_name', 'host_id'])
      .where('state', '=', 'Running')
      .where('removed', 'is', null)
      .where('host_id', 'in', hostIds)
      .execute();
    const byHost = new Map<number, { id: number; instance_name: string }[]>();
    for (const vm of running) {
      const list = byHost.get(Number(vm.host_id)) ?? [];
      list.push(vm);
      byHost.set(Number(vm.host_id), list);
    }
    await Promise.all(
      [...byHost].map(async ([hostId, vms]) => {
        let answer: CommandResult<'getVmStats'>;
        try {
          answer = await this.app.agents.call(
            hostId,
            'getVmStats',
            { vms: vms.map((v) => v.instance_name) },
            ANSWER_TIMEOUT_MS,
          );
        } catch {
          return;
        }
        const now = this.app.clock.now();
        const byName = new Map(answer.stats.map((s) => [s.name, s]));
        for (const vm of vms) {
          const s = byName.get(vm.instance_name);
          if (!s) continue;
          const kept = this.vms.get(vm.id);
          // Agents report traffic as a rate over their own sampling; kept as the KiB of one interval.
          const secs = (now - (kept?.at ?? now - this.app.settings.get(VM_STATS_INTERVAL))) / 1000;
          const sample = kept ?? ({} as KeptVmStats);
          sample.at = now;
          sample.round = round;
          sample.cpuUtilization = s.cpuUtilization;
          sample.memoryBytes = s.memoryBytes;
          sample.networkReadKb = Math.round(s.networkReadKbs * secs);
          sample.networkWriteKb = Math.round(s.networkWriteKbs * secs);
          sample.diskReadBytes = s.diskReadBytes;
          sample.diskWriteBytes = s.diskWriteBytes;
          if (!kept) this.vms.set(vm.id, sample);
        }
      }),
    );
  }
}

const collectors = new WeakMap<App, StatsCollector>();

/** The collector of this server: started with the server, read by the metrics commands and exporter. */
export function statsOf(app: App): StatsCollector {
  let c = collectors.get(app);
  if (!c) {
    c = new StatsCollector(app);
    collectors.set(app, c);
  }
  return c;
}
