/**
 * VM high availability on the host side. Each host writes a heartbeat record to every shared
 * primary storage pool the server names (setHeartbeat), as upstream's KVM heartbeat on NFS; when
 * a host's agent is gone, the server asks the other hosts of its cluster (checkHost) how old that
 * record is, whether they reach the host's address and whether its VMs' disks are still held by
 * a running QEMU. The answers are facts; the server decides (packages/server/src/ha/).
 *
 * Records are written and read through the host's own access to each pool (HostDriver.poolRecords):
 * a KVM host reaches an NFS pool through its mount at /mnt/<pool uuid> or in user space with its
 * NFSv3 client, as it reaches the pool's disks; other pools are their path, a directory.
 *
 * The heartbeat lives in the agent process, not in its connection: a host cut off from the
 * management server but alive keeps writing it, and so is never taken for dead. A host that can
 * no longer write it stops its own VMs (self-fencing) before its neighbours take it for dead.
 */
import { execFile } from 'node:child_process';
import { networkInterfaces } from 'node:os';
import type { CommandResult, ParsedPayload, StorageLocation } from '@nimbostack/protocol';
import type { HostDriver, PoolRecords } from './drivers/driver.ts';
import { disksInUse } from './drivers/kvm/disk-locks.ts';
import { DirectoryFiles } from './drivers/kvm/pool-files.ts';

/** The folder, in each shared pool, that holds one record per host. */
export const HEARTBEAT_DIR = '.nimbostack-heartbeat';

interface HeartbeatRecord {
  host: string;
  name: string;
  time: number;
  vms: string[];
}

/** The record's name in the pool, relative to it. */
const recordName = (hostId: string) => `${HEARTBEAT_DIR}/${hostId.replace(/[^A-Za-z0-9-]/g, '')}.json`;

/** Whether a pool holds files the agent can write (simulator pools are not). */
const onDisk = (pool: StorageLocation) => pool.type !== 'Simulator';

/** The pool as `host` reaches it: its driver's own access, else its path as a directory. */
const recordsOf = (host: HostDriver, pool: StorageLocation): Promise<PoolRecords> =>
  host.poolRecords ? host.poolRecords(pool) : Promise.resolve(new DirectoryFiles(pool.path));

export class Heartbeats {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Host and pool pairs whose last write failed: warned about once, until a write works again. */
  private readonly failing = new Set<string>();
  /** Hosts whose previous beat is still being written (a hung NFS server): the next one waits. */
  private readonly writing = new Set<string>();
  /** When each host last wrote to at least one pool; hosts that never did are not fenced. */
  private readonly lastWritten = new Map<string, number>();

  constructor(private readonly warn: (fields: object, msg: string) => void) {}

  /** Starts, changes or (with no pools) stops the heartbeat of one host. */
  async set(host: HostDriver, p: ParsedPayload<'setHeartbeat'>): Promise<CommandResult<'setHeartbeat'>> {
    const key = host.name.toLowerCase();
    clearInterval(this.timers.get(key));
    this.timers.delete(key);
    const pools = p.pools.filter(onDisk);
    if (pools.length === 0) return { written: [] };
    // Writes are asynchronous: storage that hangs must not stop the agent's pings and commands.
    const beat = async (): Promise<string[]> => {
      const last = this.lastWritten.get(key);
      if (p.fenceAfterMs && last !== undefined && Date.now() - last > p.fenceAfterMs)
        await this.selfFence(host, Date.now() - last);
      if (this.writing.has(key)) return [];
      this.writing.add(key);
      try {
        const written = await this.write(host, p.hostId, pools);
        if (written.length > 0) this.lastWritten.set(key, Date.now());
        return written;
      } finally {
        this.writing.delete(key);
      }
    };
    const timer = setInterval(() => void beat(), p.intervalMs);
    timer.unref();
    this.timers.set(key, timer);
    return { written: await beat() };
  }

  /**
   * Upstream's KVM host reboots itself when it cannot write its heartbeat; this host stops its
   * VMs (by force) instead: its neighbours find its heartbeat stopped and start them elsewhere,
   * and two hypervisor processes must never run one disk.
   */
  private async selfFence(host: HostDriver, silentMs: number): Promise<void> {
    const running = host.hypervisor.reportStates().filter((v) => v.state !== 'PowerOff');
    if (running.length === 0) return;
    this.warn(
      { host: host.name, silentMs, vms: running.map((v) => v.name) },
      "storage heartbeat lost: stopping this host's VMs (self-fencing)",
    );
    for (const vm of running)
      await host.hypervisor
        .stopVm(vm.name, true)
        .catch((err) =>
          this.warn(
            { host: host.name, vm: vm.name, err: (err as Error).message },
            'self-fencing stop failed',
          ),
        );
  }

  stopAll(): void {
    for (const t of this.timers.values()) clearInterval(t);
    this.timers.clear();
  }

  /** One beat: a record per pool, written aside and renamed so a reader never sees half of it. */
  private async write(host: HostDriver, hostId: string, pools: StorageLocation[]): Promise<string[]> {
    const record: HeartbeatRecord = {
      host: hostId,
      name: host.name,
      time: Date.now(),
      vms: host.hypervisor
        .reportStates()
        .filter((v) => v.state !== 'PowerOff')
        .map((v) => v.name),
    };
    const written: string[] = [];
    for (const pool of pools) {
      const key = `${host.name}|${pool.uuid}`;
      try {
        await (await recordsOf(host, pool)).writeText(recordName(hostId), JSON.stringify(record));
        written.push(pool.uuid);
        this.failing.delete(key);
      } catch (err) {
        // Simulated hosts name pools this machine need not have (a made-up NFS export): no noise.
        if (!this.failing.has(key) && host.hypervisor.resources().hypervisor !== 'Simulator')
          this.warn(
            { host: host.name, pool: pool.uuid, err: (err as Error).message },
            'heartbeat write failed',
          );
        this.failing.add(key);
      }
    }
    return written;
  }
}

/** Reads another host's heartbeat on each pool: its age by this host's clock and its VMs. */
function readHeartbeats(
  self: HostDriver,
  p: ParsedPayload<'checkHost'>,
): Promise<CommandResult<'checkHost'>['heartbeats']> {
  return Promise.all(
    p.pools.filter(onDisk).map(async (pool) => {
      try {
        const text = await (await recordsOf(self, pool)).readText(recordName(p.hostId));
        // The age counts from when the record was read: a slow NFS server does not make it older.
        const now = Date.now();
        const r = JSON.parse(text) as HeartbeatRecord;
        if (typeof r.time !== 'number') throw new Error('no time');
        return {
          pool: pool.uuid,
          ageMs: Math.max(0, Math.round(now - r.time)),
          vms: Array.isArray(r.vms) ? r.vms.map(String) : [],
        };
      } catch {
        return { pool: pool.uuid, ageMs: null, vms: [] };
      }
    }),
  );
}

/** This machine's own addresses: from here, reaching one of them says nothing about another host. */
function ownAddress(address: string): boolean {
  if (address.startsWith('127.') || address === '::1') return true;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === address));
}

/** One ICMP echo with a one-second wait; null when ping cannot run here. */
function ping(address: string): Promise<boolean | null> {
  return new Promise((resolve) => {
    execFile('ping', ['-c', '1', '-W', '1', '-n', address], { timeout: 3000 }, (err) => {
      if (!err) return resolve(true);
      const code = (err as NodeJS.ErrnoException).code;
      resolve(code === 'ENOENT' || code === 'EACCES' || code === 'EPERM' ? null : false);
    });
  });
}

/** The checkHost command: what this host sees of another one. */
export async function checkHost(
  self: HostDriver,
  p: ParsedPayload<'checkHost'>,
): Promise<CommandResult<'checkHost'>> {
  const kind = self.hypervisor.resources().hypervisor;
  // Simulated hosts have made-up addresses and no disks: they can only read the heartbeat.
  const reachable =
    kind === 'Simulator' || !p.address || ownAddress(p.address) ? null : await ping(p.address);
  const inUse = kind === 'KVM' ? await disksInUse(p.disks.map((d) => d.path)) : null;
  return { reachable, heartbeats: await readHeartbeats(self, p), disksInUse: inUse };
}
