/**
 * The simulator driver: hosts, VMs, volumes and snapshots held in memory, with configurable
 * latency and injectable failures (configureSimulator). One process can present thousands of
 * simulated hosts; hosts of one fleet can migrate VMs between each other.
 */
import { Duplex } from 'node:stream';
import {
  type GuestNetwork,
  type ParsedPayload,
  type PowerState,
  type RouterSpec,
  routerEntriesDigest,
  routerEntryHash,
  type VmSpec,
} from '@nimbostack/protocol';
import {
  DriverError,
  type HostDriver,
  type HostResources,
  type HypervisorDriver,
  type NetworkDriver,
  type StorageDriver,
} from './driver.ts';
import { serveRfb } from './rfb.ts';
import { simulatedVpnStatus } from './simulator-vpn.ts';

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
  /** Open console sessions; they end when the VM stops or leaves, as QEMU's VNC connections do. */
  consoles?: Set<Duplex>;
}

/**
 * One end of an in-memory connection: what it writes, its peer reads. The RFB server only sends
 * a frame when the client asks for one, so the peer's read buffer stays at about a frame.
 */
class StreamEnd extends Duplex {
  peer?: StreamEnd;
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.peer?.push(chunk);
    done();
  }
  override _final(done: (err?: Error | null) => void): void {
    this.peer?.push(null);
    done();
  }
  // Closing either end closes both, like a TCP connection being reset.
  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    if (this.peer && !this.peer.destroyed) this.peer.destroy();
    done(err);
  }
}

function streamPair(): [Duplex, Duplex] {
  const a = new StreamEnd();
  const b = new StreamEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
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

  /** Bytes the fleet's volumes take in each pool, by pool path, with when they were counted. */
  private readonly poolUse = new Map<string, { at: number; bytes: number }>();

  constructor(readonly options: SimulatorOptions = SIMULATOR_DEFAULTS) {}

  /**
   * What the fleet's volumes take in a pool. The server asks every host about each of its pools
   * each round (storage.stats.interval): one count serves the asks of the next second, so 5,000
   * hosts sharing a pool cost one pass over the volumes, not 5,000.
   */
  poolUsed(poolPath: string): number {
    const seen = this.poolUse.get(poolPath);
    if (seen && Date.now() - seen.at < 1_000) return seen.bytes;
    let bytes = 0;
    for (const host of this.hosts.values())
      for (const [path, size] of host.volumes) if (path.startsWith(`${poolPath}/`)) bytes += size;
    this.poolUse.set(poolPath, { at: Date.now(), bytes });
    return bytes;
  }

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

export class SimulatorHost implements HostDriver, HypervisorDriver, StorageDriver, NetworkDriver {
  readonly vms = new Map<string, SimVm>();
  /** Guest networks and routers as records: the simulator keeps what a real host would set up. */
  readonly networks = new Map<string, GuestNetwork>();
  readonly routers = new Map<string, RouterSpec>();
  readonly volumes = new Map<string, number>();
  readonly snapshots = new Map<string, { volumePath: string; sizeBytes: number }>();
  /**
   * What a simulated VM's serial console would hold: a line per power event on this host (there
   * is no guest to print anything). Kept after the VM stops, as a real host keeps its log file.
   */
  private readonly consoleLogs = new Map<string, string>();
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

  get network(): NetworkDriver {
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

  /** Appends one line to the VM's simulated console, keeping the last 16 KiB. */
  private consoleLine(name: string, text: string): void {
    const log = `${this.consoleLogs.get(name) ?? ''}${new Date().toISOString()} ${this.name}: ${text}\n`;
    this.consoleLogs.set(name, log.length > 16384 ? log.slice(-16384) : log);
  }

  async consoleOutput(name: string, maxBytes: number): Promise<Buffer> {
    const log = Buffer.from(this.consoleLogs.get(name) ?? '');
    return log.subarray(Math.max(0, log.length - maxBytes));
  }

  async startVm(spec: VmSpec) {
    this.consoleLine(
      spec.name,
      `simulated VM ${spec.name} powered on (${spec.cpus} vCPU, ${Math.round(spec.memoryBytes / 1048576)} MiB, ${spec.disks.length} disk(s), ${spec.nics.length} NIC(s))`,
    );
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
    if (this.vms.has(name)) this.consoleLine(name, `simulated VM ${name} powered off`);
    this.closeConsoles(this.vms.get(name));
    this.vms.delete(name);
  }

  /**
   * A running VM's console: a real RFB 3.8 server (see rfb.ts) on an in-memory stream, so that
   * the console path works end to end on simulator hosts without a listening port per VM.
   */
  async openConsole(name: string): Promise<Duplex> {
    const vm = this.vms.get(name);
    if (vm?.state !== 'PowerOn') throw new DriverError(`VM ${name} is not running on host ${this.name}`);
    const [ours, theirs] = streamPair();
    serveRfb(ours, name);
    vm.consoles ??= new Set();
    vm.consoles.add(theirs);
    theirs.once('close', () => vm.consoles?.delete(theirs));
    return theirs;
  }

  private closeConsoles(vm: SimVm | undefined): void {
    for (const c of vm?.consoles ?? []) c.destroy();
  }

  async rebootVm(name: string) {
    const vm = this.vm(name);
    if (vm.state !== 'PowerOn') throw new DriverError(`VM ${name} is not running`);
    this.consoleLine(name, `simulated VM ${name} rebooted`);
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
    if (target) {
      target.vms.set(name, { ...vm, state: 'PowerOn', consoles: undefined });
      target.consoleLine(name, `simulated VM ${name} migrated in from ${this.name}`);
    }
    this.closeConsoles(vm);
    this.vms.delete(name);
  }

  /** Records the NIC in the VM's spec, as a real host would have it plugged (tests read it there). */
  async plugNic(vmName: string, nic: VmSpec['nics'][number]) {
    const vm = this.vm(vmName);
    if (vm.spec.nics.some((n) => n.mac.toLowerCase() === nic.mac.toLowerCase())) return;
    if (vm.spec.nics.some((n) => n.deviceId === nic.deviceId))
      throw new DriverError(`VM ${vmName} already has a NIC at device id ${nic.deviceId}`);
    vm.spec = { ...vm.spec, nics: [...vm.spec.nics, nic].sort((a, b) => a.deviceId - b.deviceId) };
  }

  async unplugNic(vmName: string, mac: string) {
    const vm = this.vm(vmName);
    vm.spec = { ...vm.spec, nics: vm.spec.nics.filter((n) => n.mac.toLowerCase() !== mac.toLowerCase()) };
  }

  async attachVolume(vmName: string, disk: { path: string }) {
    this.vm(vmName).disks.add(disk.path);
  }

  async detachVolume(vmName: string, disk: { path: string }) {
    this.vm(vmName).disks.delete(disk.path);
  }

  /** As KVM's: a copy on the new pool that the running VM uses from now on (the old one stays). */
  async moveVolumeLive(p: ParsedPayload<'moveVolumeLive'>) {
    const vm = this.vm(p.vm);
    if (vm.state !== 'PowerOn') throw new DriverError(`VM ${p.vm} is not running on host ${this.name}`);
    const path = `${p.pool.path}/${p.disk.volumeUuid}`;
    if (vm.disks.has(path)) return { path, sizeBytes: this.volumes.get(path) ?? 0 };
    const size = [...this.fleet.hosts.values()]
      .map((h) => h.volumes.get(p.disk.path))
      .find((s) => s !== undefined);
    if (size === undefined) throw new DriverError(`volume ${p.disk.path} does not exist`);
    this.volumes.set(path, size);
    vm.disks.delete(p.disk.path);
    vm.disks.add(path);
    vm.spec = {
      ...vm.spec,
      disks: vm.spec.disks.map((d) =>
        d.volumeUuid === p.disk.volumeUuid ? { ...d, path, pool: p.pool } : d,
      ),
    };
    return { path, sizeBytes: size };
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
    // A shared pool's volume may have been made through another host of the fleet (paths name the
    // volume's uuid, so no other volume has it): deleted through any host, it is gone for all.
    this.volumes.delete(p.path);
    for (const h of this.fleet.hosts.values()) h.volumes.delete(p.path);
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
    // Pools are shared: the volume may have been made through another host of the fleet (its VM
    // migrated, or it is snapshotted while Stopped through whichever host reaches the pool).
    const size =
      this.volumes.get(p.volumePath) ??
      this.snapshots.get(p.volumePath)?.sizeBytes ??
      [...this.fleet.hosts.values()].map((h) => h.volumes.get(p.volumePath)).find((s) => s !== undefined);
    if (size === undefined) throw new DriverError(`volume ${p.volumePath} does not exist`);
    // Backed up where the KVM driver puts it: under secondary storage when given, else the pool.
    const path = `${(p.secondary ?? p.pool).path}/snapshots/${p.snapshotUuid}`;
    if (!this.snapshots.has(path)) this.snapshots.set(path, { volumePath: p.volumePath, sizeBytes: size });
    return { path, sizeBytes: this.snapshots.get(path)!.sizeBytes };
  }

  async deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>) {
    this.snapshots.delete(p.path);
  }

  /**
   * A simulated pool is as big as a simulated host's disk; what it uses is the size of the
   * fleet's volumes in it (pools are shared by the fleet's hosts).
   */
  async poolStats(pool: ParsedPayload<'getPoolStats'>['pool']) {
    return { capacityBytes: this.fleet.options.localStorageBytes, usedBytes: this.fleet.poolUsed(pool.path) };
  }

  async revertSnapshot(p: ParsedPayload<'revertSnapshot'>) {
    const snap = this.snapshots.get(p.snapshotPath);
    if (!snap) throw new DriverError(`snapshot ${p.snapshotPath} does not exist`);
    this.volumes.set(p.volumePath, snap.sizeBytes);
  }

  async setupNetwork(network: GuestNetwork) {
    this.networks.set(network.uuid, network);
  }

  async teardownNetwork(network: GuestNetwork) {
    for (const vm of this.vms.values())
      if (vm.spec.nics.some((n) => n.bridge === network.bridge))
        throw new DriverError(
          `network ${network.uuid} still has NICs of VM ${vm.spec.name} on host ${this.name}`,
        );
    for (const router of this.routers.values())
      if (router.guests.some((g) => g.network.bridge === network.bridge))
        throw new DriverError(
          `bridge ${network.bridge} of network ${network.uuid} still has router ${router.name}: stop it first`,
        );
    this.networks.delete(network.uuid);
  }

  async startRouter(router: RouterSpec) {
    this.routers.set(router.name, router);
  }

  async stopRouter(name: string) {
    this.routers.delete(name);
  }

  async updateRouter(p: ParsedPayload<'updateRouter'>) {
    const router = this.routers.get(p.name);
    if (!router) throw new DriverError(`router ${p.name} is not running on host ${this.name}`);
    const gone = new Set([...p.remove, ...p.add.map((e) => e.mac)].map((m) => m.toLowerCase()));
    router.vms = [...router.vms.filter((e) => !gone.has(e.mac.toLowerCase())), ...p.add];
  }

  async routerDigest(p: ParsedPayload<'routerDigest'>) {
    const router = this.routers.get(p.name);
    if (!router) throw new DriverError(`router ${p.name} is not running on host ${this.name}`);
    return {
      digest: routerEntriesDigest(router.vms),
      ...(p.entries
        ? { entries: router.vms.map((v): [string, string] => [v.mac.toLowerCase(), routerEntryHash(v)]) }
        : {}),
    };
  }

  /**
   * Records the router's public side and rules as a real host would enforce them (servers' tests
   * read them from `routers`). No load balancer runs here, so no reload time is answered.
   */
  async applyRouterRules(p: ParsedPayload<'applyRouterRules'>) {
    const router = this.routers.get(p.name);
    if (!router) throw new DriverError(`router ${p.name} is not running on host ${this.name}`);
    if (p.public) router.public = p.public;
    router.rules = p.rules;
    return {};
  }

  async applyRouterVpn(p: ParsedPayload<'applyRouterVpn'>) {
    const router = this.routers.get(p.name);
    if (!router) throw new DriverError(`router ${p.name} is not running on host ${this.name}`);
    router.vpn = p.vpn;
    return this.routerVpnStatus(p.name);
  }

  async routerVpnStatus(name: string) {
    const router = this.routers.get(name);
    if (!router) throw new DriverError(`router ${name} is not running on host ${this.name}`);
    const all = [...this.fleet.hosts.values()].flatMap((h) => [...h.routers.values()]);
    return { connections: simulatedVpnStatus(router, all) };
  }

  async applySecurityRules(p: ParsedPayload<'applySecurityRules'>) {
    const vm = this.vms.get(p.vm);
    if (!vm) return;
    for (const nic of vm.spec.nics) {
      const update = p.nics.find((n) => n.mac.toLowerCase() === nic.mac.toLowerCase());
      if (update) nic.security = update.security;
    }
  }
}
