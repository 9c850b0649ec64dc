/**
 * The simulator driver: hosts, VMs, volumes and snapshots held in memory, with configurable
 * latency and injectable failures (configureSimulator). One process can present thousands of
 * simulated hosts; hosts of one fleet can migrate VMs between each other.
 */
import type { ParsedPayload, PowerState, VmSpec } from '@nimbostack/protocol';
import {
  DriverError,
  type HostDriver,
  type HostResources,
  type HypervisorDriver,
  type StorageDriver,
} from './driver.ts';

export const SIMULATOR_VERSION = '1.0.0';

export interface SimulatorOptions {
  cpuSockets: number;
  cpuCores: number;
  cpuMhz: number;
  memoryBytes: number;
  localStorageBytes: number;
  /** Added to every command, to make the simulator behave like slower real hypervisors. */
  latencyMs: number;
}

export const SIMULATOR_DEFAULTS: SimulatorOptions = {
  cpuSockets: 1,
  cpuCores: 16,
  cpuMhz: 2400,
  memoryBytes: 64 * 1024 ** 3,
  localStorageBytes: 1024 ** 4,
  latencyMs: 0,
};

interface SimVm {
  spec: VmSpec;
  state: PowerState;
  disks: Set<string>;
}

interface Fault {
  remaining?: number;
  fail: boolean;
  message?: string;
  latencyMs?: number;
}

/** Hosts of one process; a VM can migrate between them without leaving the simulator. */
export class SimulatorFleet {
  readonly hosts = new Map<string, SimulatorHost>();

  constructor(readonly options: SimulatorOptions = SIMULATOR_DEFAULTS) {}

  /** Creates `count` hosts named base-1..base-N (or just `base` for one), with addresses from 172.16.0.1. */
  addHosts(base: string, count: number): SimulatorHost[] {
    const out: SimulatorHost[] = [];
    for (let i = 1; i <= count; i++) {
      const name = count === 1 ? base : `${base}-${i}`;
      const ip = `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;
      const host = new SimulatorHost(name, ip, this);
      this.hosts.set(name, host);
      out.push(host);
    }
    return out;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class SimulatorHost implements HostDriver, HypervisorDriver, StorageDriver {
  readonly vms = new Map<string, SimVm>();
  readonly volumes = new Map<string, number>();
  readonly snapshots = new Map<string, { volumePath: string; sizeBytes: number }>();
  private readonly faults = new Map<string, Fault>();

  constructor(
    readonly name: string,
    private readonly ip: string,
    private readonly fleet: SimulatorFleet,
  ) {}

  get hypervisor(): HypervisorDriver {
    return this;
  }

  get storage(): StorageDriver {
    return this;
  }

  configure(p: ParsedPayload<'configureSimulator'>): void {
    if (!p.fail && p.latencyMs === undefined) {
      this.faults.delete(p.kind);
      return;
    }
    this.faults.set(p.kind, { remaining: p.count, fail: p.fail, message: p.message, latencyMs: p.latencyMs });
  }

  async around<T>(kind: string, run: () => Promise<T>): Promise<T> {
    const fault = this.faults.get(kind);
    if (fault?.remaining !== undefined) {
      fault.remaining--;
      if (fault.remaining <= 0) this.faults.delete(kind);
    }
    const latency = this.fleet.options.latencyMs + (fault?.latencyMs ?? 0);
    if (latency > 0) await sleep(latency);
    if (fault?.fail) throw new DriverError(fault.message ?? `simulated failure of ${kind}`);
    return run();
  }

  resources(): HostResources {
    const o = this.fleet.options;
    return {
      hypervisor: 'Simulator',
      hypervisorVersion: SIMULATOR_VERSION,
      cpuSockets: o.cpuSockets,
      cpuCores: o.cpuCores,
      cpuMhz: o.cpuMhz,
      memoryBytes: o.memoryBytes,
      localStorageBytes: o.localStorageBytes,
      privateIp: this.ip,
    };
  }

  reportStates() {
    return [...this.vms.values()].map((v) => ({ name: v.spec.name, state: v.state }));
  }

  async checkHealth() {
    return { healthy: true };
  }

  async hostStats() {
    let used = 0;
    for (const vm of this.vms.values()) if (vm.state === 'PowerOn') used += vm.spec.memoryBytes;
    return { cpuUtilization: 0, memoryUsedBytes: used, networkReadKbs: 0, networkWriteKbs: 0 };
  }

  async vmStats(names: string[]) {
    return {
      stats: names
        .filter((n) => this.vms.has(n))
        .map((n) => ({
          name: n,
          cpuUtilization: 0,
          memoryBytes: this.vms.get(n)!.spec.memoryBytes,
          networkReadKbs: 0,
          networkWriteKbs: 0,
          diskReadBytes: 0,
          diskWriteBytes: 0,
        })),
    };
  }

  private vm(name: string): SimVm {
    const vm = this.vms.get(name);
    if (!vm) throw new DriverError(`VM ${name} is not on host ${this.name}`);
    return vm;
  }

  async startVm(spec: VmSpec) {
    const existing = this.vms.get(spec.name);
    if (existing) {
      existing.spec = spec;
      existing.state = 'PowerOn';
    } else {
      this.vms.set(spec.name, { spec, state: 'PowerOn', disks: new Set(spec.disks.map((d) => d.path)) });
    }
    return { state: 'PowerOn' as const, vncPort: 5900 + this.vms.size };
  }

  async stopVm(name: string) {
    // A stopped VM is undefined on a real hypervisor, so it stops being reported.
    this.vms.delete(name);
  }

  async rebootVm(name: string) {
    const vm = this.vm(name);
    if (vm.state !== 'PowerOn') throw new DriverError(`VM ${name} is not running`);
  }

  async prepareMigration(spec: VmSpec) {
    if (!this.vms.has(spec.name))
      this.vms.set(spec.name, { spec, state: 'PowerOn', disks: new Set(spec.disks.map((d) => d.path)) });
    return {};
  }

  async migrateVm(name: string, destination: { host: string }) {
    const vm = this.vms.get(name);
    if (!vm) {
      // Already moved by an earlier attempt of the same command.
      if (this.fleet.hosts.get(destination.host)?.vms.has(name)) return;
      throw new DriverError(`VM ${name} is not on host ${this.name}`);
    }
    if (destination.host === this.name) throw new DriverError('cannot migrate a VM to the host it runs on');
    const target = this.fleet.hosts.get(destination.host);
    if (target) target.vms.set(name, { ...vm, state: 'PowerOn' });
    this.vms.delete(name);
  }

  async attachVolume(vmName: string, disk: { path: string }) {
    this.vm(vmName).disks.add(disk.path);
  }

  async detachVolume(vmName: string, disk: { path: string }) {
    this.vm(vmName).disks.delete(disk.path);
  }

  async createVolume(p: ParsedPayload<'createVolume'>) {
    const path = `${p.pool.path}/${p.volumeUuid}`;
    if (!this.volumes.has(path)) this.volumes.set(path, p.sizeBytes);
    return { path, sizeBytes: this.volumes.get(path)! };
  }

  async createVolumeFromTemplate(p: ParsedPayload<'createVolumeFromTemplate'>) {
    const path = `${p.pool.path}/${p.volumeUuid}`;
    const size = Math.max(p.sizeBytes ?? 0, p.template.sizeBytes);
    if (!this.volumes.has(path)) this.volumes.set(path, size);
    return { path, sizeBytes: this.volumes.get(path)! };
  }

  async resizeVolume(p: ParsedPayload<'resizeVolume'>) {
    const size = this.volumes.get(p.path);
    if (size === undefined) throw new DriverError(`volume ${p.path} does not exist`);
    if (p.newSizeBytes < size && !p.shrinkOk)
      throw new DriverError(
        `shrinking volume ${p.path} from ${size} to ${p.newSizeBytes} bytes needs shrinkOk`,
      );
    this.volumes.set(p.path, p.newSizeBytes);
    return { sizeBytes: p.newSizeBytes };
  }

  async deleteVolume(p: ParsedPayload<'deleteVolume'>) {
    this.volumes.delete(p.path);
  }

  async copyVolume(p: ParsedPayload<'copyVolume'>) {
    const path = `${p.pool.path}/${p.volumeUuid}`;
    if (!this.volumes.has(path)) {
      // Pools are shared: the source may have been made through another host of the fleet.
      const size = [...this.fleet.hosts.values()]
        .map((h) => h.volumes.get(p.source.path))
        .find((s) => s !== undefined);
      if (size === undefined) throw new DriverError(`volume ${p.source.path} does not exist`);
      this.volumes.set(path, size);
    }
    return { path, sizeBytes: this.volumes.get(path)! };
  }

  async createSnapshot(p: ParsedPayload<'createSnapshot'>) {
    // The source may also be a snapshot's backup (a template made from a snapshot copies it).
    const size = this.volumes.get(p.volumePath) ?? this.snapshots.get(p.volumePath)?.sizeBytes;
    if (size === undefined) throw new DriverError(`volume ${p.volumePath} does not exist`);
    const path = `${p.pool.path}/snapshots/${p.snapshotUuid}`;
    if (!this.snapshots.has(path)) this.snapshots.set(path, { volumePath: p.volumePath, sizeBytes: size });
    return { path, sizeBytes: this.snapshots.get(path)!.sizeBytes };
  }

  async deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>) {
    this.snapshots.delete(p.path);
  }

  async revertSnapshot(p: ParsedPayload<'revertSnapshot'>) {
    const snap = this.snapshots.get(p.snapshotPath);
    if (!snap) throw new DriverError(`snapshot ${p.snapshotPath} does not exist`);
    this.volumes.set(p.volumePath, snap.sizeBytes);
  }
}
