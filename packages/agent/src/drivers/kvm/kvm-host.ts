/**
 * The KVM host driver: one qemu-system-x86_64 process per VM, started detached so that it outlives
 * an agent restart, and controlled over QMP on a UNIX socket in the VM's state directory
 * (<stateDir>/<host>/vms/<name>/: vm.json, qemu.pid, qmp.sock, console.log, qemu.log). A restarted
 * agent re-adopts the VMs it finds there. Volumes live in pools the host reaches as directories,
 * mounted NFS exports or NFS exports QEMU opens itself (storage.ts, pool-files.ts).
 * Guest networking (bridges, routers, security groups) is the `network` driver (../../network/);
 * this driver installs a VM's filtering when its taps appear and removes it when the VM goes.
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { ParsedPayload, PowerState, StorageLocation, VmPowerReport, VmSpec } from '@nimbostack/protocol';
import { HostNetwork } from '../../network/host-network.ts';
import type { NicFilter } from '../../network/security.ts';
import { tailOf } from '../console-log.ts';
import {
  DriverError,
  type HostDriver,
  type HostResources,
  type HypervisorDriver,
  type PoolRecords,
  type StorageDriver,
} from '../driver.ts';
import { HostStatsSampler } from '../host-stats.ts';
import { moveDiskLive, nodeSize } from './block-jobs.ts';
import { imageInfo } from './exec.ts';
import {
  type Accel,
  chooseAccel,
  defaultAddress,
  diskBytes,
  machineFacts,
  QEMU_BINARY,
  qemuVersion,
} from './host-facts.ts';
import { IscsiVolumes } from './iscsi-luns.ts';
import {
  blockdev,
  diskDevice,
  diskDeviceArgs,
  diskNode,
  paths,
  qemuArgs,
  tapName,
  tapPrefix,
  type VmDisk,
  type VmNic,
} from './machine.ts';
import { bridgeExists, hotplugNic, hotunplugNic, joinBridge, type NicPlugTarget } from './nic-plug.ts';
import { type NfsPath, PoolAccess } from './pool-files.ts';
import { Qmp } from './qmp.ts';
import {
  addRbdBlockdev,
  dropRbdSecret,
  openRbdDisk,
  rbdRecords,
  removeSecretFiles,
  secretObjectArgs,
  staleRbdSecrets,
  withoutKeys,
} from './rbd-disks.ts';
import { type LiveDisks, PoolStorage } from './storage.ts';
import { StorageByPoolType } from './storage-dispatch.ts';
import { RbdStorage } from './storage-rbd.ts';
import { withVolumeStore } from './volume-store.ts';

export interface KvmHostOptions {
  /** The host's name, its identity towards the management server. */
  name: string;
  /** Root of the agent's state; this host's VMs live under <stateDir>/<name>/vms. */
  stateDir: string;
  /** Management address: reported to the server and where incoming migrations listen. */
  privateIp?: string;
  /** How long an ACPI shutdown may take before the VM is stopped by force. */
  stopTimeoutMs?: number;
  migrationTimeoutMs?: number;
  /** How NFS pools are reached: a kernel mount (default) or QEMU's user-space client (libnfs). */
  nfs?: NfsPath;
  /** Where the kernel path mounts NFS pools, one folder per pool uuid (default /mnt). */
  nfsMountRoot?: string;
}

/** What vm.json holds: enough to re-adopt the VM after an agent restart. */
interface VmRecordFile {
  spec: VmSpec;
  pid: number;
  accel: Accel;
  vncPort?: number;
  incoming: boolean;
  migrationPort?: number;
  /** Block node of each disk (by device id) moved live to another pool, when not diskNode's. */
  nodes?: Record<string, string>;
}

interface Vm extends VmRecordFile {
  dir: string;
  qmp?: Qmp;
  /** Last status QMP reported (query-status), refreshed on events and on every ping. */
  status: string;
  dead: boolean;
}

/** QMP run states → CloudStack power states; a paused guest still holds its host's resources. */
const POWER: Record<string, PowerState> = {
  running: 'PowerOn',
  paused: 'PowerOn',
  suspended: 'PowerOn',
  'io-error': 'PowerOn',
  debug: 'PowerOn',
  'save-vm': 'PowerOn',
  'restore-vm': 'PowerOn',
  'finish-migrate': 'PowerOn',
  prelaunch: 'PowerOn',
  inmigrate: 'PowerOn',
  watchdog: 'PowerOn',
  shutdown: 'PowerOff',
  'guest-panicked': 'PowerUnknown',
  'internal-error': 'PowerUnknown',
  unknown: 'PowerUnknown',
};

const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True while `pid` is a live (not zombie) QEMU serving `qmpPath`; guards against pid reuse. */
function qemuAlive(pid: number, qmpPath: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(qmpPath);
  } catch {
    return false;
  }
}

export class KvmHost implements HostDriver, HypervisorDriver, LiveDisks {
  readonly storage: StorageDriver;
  readonly network: HostNetwork;
  private readonly pools: PoolAccess;
  private readonly vms = new Map<string, Vm>();
  private readonly queues = new Map<string, Promise<void>>();
  /** VMs this host handed over, so that a retried migrateVm succeeds. */
  private readonly migratedAway = new Map<string, string>();
  private readonly hostDir: string;
  private readonly privateIp: string;
  private readonly hostSampler = new HostStatsSampler();
  private readonly vmSamples = new Map<string, { at: number; cpuTicks: number; rx: number; tx: number }>();

  private constructor(
    private readonly options: KvmHostOptions,
    private readonly version: string,
    private readonly accel: Accel,
  ) {
    this.hostDir = join(options.stateDir, options.name);
    this.privateIp = options.privateIp ?? defaultAddress();
    this.pools = new PoolAccess({ nfs: options.nfs ?? 'kernel', mountRoot: options.nfsMountRoot ?? '/mnt' });
    // Ceph RBD pools have their own volume store; every other pool type goes to PoolStorage.
    this.storage = new StorageByPoolType(
      new PoolStorage(this, this.pools),
      new RbdStorage(this),
      new IscsiVolumes(this),
    );
    this.network = new HostNetwork({
      hostDir: this.hostDir,
      localAddress: this.privateIp,
      applySecurityRules: (p) => this.applySecurityRules(p),
    });
  }

  /** Checks QEMU, decides the accelerator and re-adopts the VMs of an earlier agent process. */
  static async create(options: KvmHostOptions): Promise<KvmHost> {
    const version = await qemuVersion();
    mkdirSync(join(options.stateDir, options.name, 'vms'), { recursive: true });
    const accel = await chooseAccel(options.stateDir, version);
    const host = new KvmHost(options, version, accel);
    await host.adopt();
    await host.network.adopt();
    return host;
  }

  get name(): string {
    return this.options.name;
  }

  /** The heartbeat's records go through the pool's own access: a mount, or NFS in user space. */
  poolRecords(pool: StorageLocation): Promise<PoolRecords> {
    if (pool.type === 'RBD') return Promise.resolve(rbdRecords(pool));
    return this.pools.files(pool);
  }

  get hypervisor(): HypervisorDriver {
    return this;
  }

  get acceleration(): Accel {
    return this.accel;
  }

  /** Where a VM's serial console is logged (what the guest prints on ttyS0). */
  consoleLog(name: string): string {
    return paths(this.vmDir(name)).console;
  }

  /** QEMU's run state of a VM as last seen (running, paused, inmigrate...), or undefined if not here. */
  async status(name: string): Promise<string | undefined> {
    const vm = this.vms.get(name);
    if (!vm) return undefined;
    await this.refreshStatus(vm);
    return vm.dead ? 'dead' : vm.status;
  }

  /** The QEMU process of a VM, for operators and tests. */
  pidOf(name: string): number | undefined {
    return this.vms.get(name)?.pid;
  }

  resources(): HostResources {
    return {
      hypervisor: 'KVM',
      hypervisorVersion: this.version,
      ...machineFacts(),
      localStorageBytes: diskBytes(this.options.stateDir),
      privateIp: this.privateIp,
      details: { accel: this.accel, qemu: this.version },
    };
  }

  reportStates(): VmPowerReport[] {
    const out: VmPowerReport[] = [];
    for (const vm of this.vms.values()) {
      if (!vm.dead && !qemuAlive(vm.pid, paths(vm.dir).qmp)) this.markDead(vm);
      if (vm.dead) {
        // An incoming migration that never completed leaves nothing behind: the VM runs on its source.
        if (vm.incoming) {
          this.forget(vm);
          continue;
        }
        out.push({ name: vm.spec.name, state: 'PowerOff' });
        continue;
      }
      if (vm.status === 'postmigrate') continue;
      out.push({ name: vm.spec.name, state: POWER[vm.status] ?? 'PowerUnknown' });
      void this.refreshStatus(vm);
    }
    return out;
  }

  async checkHealth() {
    if (!existsSync(QEMU_BINARY)) return { healthy: false, detail: `${QEMU_BINARY} is missing` };
    try {
      writeFileSync(join(this.hostDir, '.health'), String(Date.now()));
    } catch (err) {
      return { healthy: false, detail: `state directory not writable: ${(err as Error).message}` };
    }
    return { healthy: true, detail: `QEMU ${this.version}, ${this.accel}` };
  }

  async hostStats() {
    return this.hostSampler.sample();
  }

  async vmStats(names: string[]) {
    const stats = [];
    const ticksPerSecond = 100;
    for (const name of names) {
      const vm = this.vms.get(name);
      if (!vm || vm.dead || !vm.qmp) continue;
      let cpuTicks = 0;
      try {
        const stat = readFileSync(`/proc/${vm.pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        cpuTicks = Number(f[11]) + Number(f[12]);
      } catch {
        continue;
      }
      let diskRead = 0;
      let diskWrite = 0;
      try {
        const blocks =
          await vm.qmp.execute<{ stats: { rd_bytes: number; wr_bytes: number } }[]>('query-blockstats');
        for (const b of blocks) {
          diskRead += b.stats.rd_bytes;
          diskWrite += b.stats.wr_bytes;
        }
      } catch {
        // Disk counters are best effort; the VM may be stopping.
      }
      let rx = 0;
      let tx = 0;
      for (const nic of vm.spec.nics.filter((n) => n.bridge)) {
        const dir = `/sys/class/net/${tapName(this.name, name, nic)}/statistics`;
        try {
          // A tap's rx is what the guest sent, its tx what the guest received.
          tx += Number(readFileSync(`${dir}/rx_bytes`, 'utf8'));
          rx += Number(readFileSync(`${dir}/tx_bytes`, 'utf8'));
        } catch {
          // The tap is gone with the VM.
        }
      }
      const now = Date.now();
      const prev = this.vmSamples.get(name);
      this.vmSamples.set(name, { at: now, cpuTicks, rx, tx });
      const secs = prev ? (now - prev.at) / 1000 : 0;
      const rate = (a: number, b: number) => (prev && secs > 0 ? Math.max(0, (a - b) / 1024 / secs) : 0);
      stats.push({
        name,
        cpuUtilization:
          prev && secs > 0
            ? Math.min(
                100,
                Math.max(0, (100 * (cpuTicks - prev.cpuTicks)) / ticksPerSecond / secs / vm.spec.cpus),
              )
            : 0,
        memoryBytes: vm.spec.memoryBytes,
        networkReadKbs: rate(rx, prev?.rx ?? 0),
        networkWriteKbs: rate(tx, prev?.tx ?? 0),
        diskReadBytes: diskRead,
        diskWriteBytes: diskWrite,
      });
    }
    return { stats };
  }

  async startVm(spec: VmSpec) {
    return this.serialized(spec.name, async () => {
      const existing = this.vms.get(spec.name);
      if (existing && !existing.dead && qemuAlive(existing.pid, paths(existing.dir).qmp)) {
        if (existing.incoming)
          throw new DriverError(`VM ${spec.name} is receiving a migration on ${this.name}`);
        return { state: 'PowerOn' as const, vncPort: existing.vncPort };
      }
      if (existing) this.forget(existing);
      const vm = await this.launch(spec, false);
      return { state: 'PowerOn' as const, vncPort: vm.vncPort };
    });
  }

  /**
   * A TCP connection to the VM's VNC server, which listens on 127.0.0.1 only and without a
   * password: the console proxy is the only way in from outside the host.
   */
  async openConsole(name: string): Promise<Duplex> {
    const vm = this.running(name);
    if (!vm.vncPort) {
      const vnc = await vm.qmp!.execute<{ service?: string }>('query-vnc');
      vm.vncPort = vnc.service ? Number(vnc.service) : undefined;
    }
    const port = vm.vncPort;
    if (!port) throw new DriverError(`VM ${name} has no VNC display`);
    return new Promise<Duplex>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      socket.once('connect', () => {
        // From here the tunnel owns the socket; an error also closes it, which the tunnel handles.
        socket.on('error', () => undefined);
        resolve(socket);
      });
      socket.once('error', (err) =>
        reject(new DriverError(`VNC of VM ${name} (127.0.0.1:${port}) is unreachable: ${err.message}`)),
      );
    });
  }

  async stopVm(name: string, force: boolean) {
    return this.serialized(name, async () => {
      const vm = this.vms.get(name);
      if (!vm) return;
      const alive = () => qemuAlive(vm.pid, paths(vm.dir).qmp);
      if (alive() && !force && vm.qmp && !vm.qmp.closed && vm.status === 'running') {
        try {
          await vm.qmp.execute('system_powerdown');
          await this.waitUntil(() => !alive(), this.options.stopTimeoutMs ?? 60_000);
        } catch {
          // The guest ignored ACPI or the monitor went away: stop it by force below.
        }
      }
      if (alive() && vm.qmp && !vm.qmp.closed) {
        await vm.qmp.execute('quit', undefined, 3000).catch(() => undefined);
        await this.waitUntil(() => !alive(), 5000).catch(() => undefined);
      }
      if (alive()) {
        process.kill(vm.pid, 'SIGKILL');
        await this.waitUntil(() => !alive(), 10_000);
      }
      this.forget(vm);
      await this.removeFilters(name);
    });
  }

  /**
   * Replaces the security group filtering of a running VM's NICs (matched by MAC) and keeps it in
   * the VM's record, so a restarted agent and a migration destination enforce the same rules.
   */
  async applySecurityRules(p: ParsedPayload<'applySecurityRules'>) {
    return this.serialized(p.vm, async () => {
      const vm = this.vms.get(p.vm);
      if (!vm || vm.dead) return;
      const nics = vm.spec.nics.map((nic) => {
        const update = p.nics.find((n) => n.mac.toLowerCase() === nic.mac.toLowerCase());
        return update ? { ...nic, ip: update.ip, security: update.security } : nic;
      });
      vm.spec = { ...vm.spec, nics };
      this.save(vm);
      const macs = new Set(p.nics.map((n) => n.mac.toLowerCase()));
      await this.network.security.apply(this.filtersOf(vm.spec).filter((f) => macs.has(f.mac.toLowerCase())));
    });
  }

  async rebootVm(name: string) {
    return this.serialized(name, async () => {
      const vm = this.running(name);
      await vm.qmp!.execute('system_reset');
    });
  }

  async consoleOutput(name: string, maxBytes: number): Promise<Buffer> {
    return tailOf(this.consoleLog(name), maxBytes);
  }

  /** Pauses a running VM's vCPUs (QMP stop); it still reports PowerOn, as CloudStack's KVM does. */
  async pauseVm(name: string) {
    return this.serialized(name, async () => {
      await this.running(name).qmp!.execute('stop');
    });
  }

  async resumeVm(name: string) {
    return this.serialized(name, async () => {
      await this.running(name).qmp!.execute('cont');
    });
  }

  async prepareMigration(spec: VmSpec) {
    return this.serialized(spec.name, async () => {
      const existing = this.vms.get(spec.name);
      if (existing && !existing.dead && qemuAlive(existing.pid, paths(existing.dir).qmp))
        return existing.incoming ? { port: existing.migrationPort } : {};
      if (existing) this.forget(existing);
      const vm = await this.launch(spec, true);
      return { port: vm.migrationPort };
    });
  }

  async migrateVm(name: string, destination: { host: string; address?: string; port?: number }) {
    return this.serialized(name, async () => {
      const vm = this.vms.get(name);
      if (!vm) {
        if (this.migratedAway.get(name) === destination.host) return;
        throw new DriverError(`VM ${name} is not on host ${this.name}`);
      }
      if (destination.host === this.name) throw new DriverError('cannot migrate a VM to the host it runs on');
      if (!destination.address || !destination.port)
        throw new DriverError(
          'migrateVm to a KVM host needs its address and the port prepareMigration answered',
        );
      const qmp = this.running(name).qmp!;
      const host = destination.address.includes(':') ? `[${destination.address}]` : destination.address;
      // QEMU's default cap (32 MiB/s) would make a 1 GiB guest take half a minute on any network.
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 1024 ** 3, 'downtime-limit': 500 });
      await qmp.execute('migrate', { uri: `tcp:${host}:${destination.port}` });
      const deadline = Date.now() + (this.options.migrationTimeoutMs ?? 600_000);
      for (;;) {
        const info = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
        if (info.status === 'completed') break;
        if (info.status === 'failed' || info.status === 'cancelled')
          throw new DriverError(
            `migration of ${name} to ${destination.host} ${info.status}: ${info['error-desc'] ?? ''}`,
          );
        if (Date.now() > deadline) {
          await qmp.execute('migrate_cancel').catch(() => undefined);
          throw new DriverError(`migration of ${name} to ${destination.host} timed out`);
        }
        await sleep(100);
      }
      vm.status = 'postmigrate';
      await qmp.execute('quit', undefined, 3000).catch(() => undefined);
      await this.waitUntil(() => !qemuAlive(vm.pid, paths(vm.dir).qmp), 10_000).catch(() => {
        process.kill(vm.pid, 'SIGKILL');
      });
      this.forget(vm);
      await this.removeFilters(name);
      this.migratedAway.set(name, destination.host);
    });
  }

  /**
   * Hot-plugs a NIC (addNicToVirtualMachine) and keeps it in vm.json, so a restarted agent
   * re-adopts the VM with it and a migration destination gets it in the same slot.
   */
  async plugNic(name: string, nic: VmNic) {
    return this.serialized(name, async () => {
      const vm = this.running(name);
      if (vm.spec.nics.some((n) => n.mac.toLowerCase() === nic.mac.toLowerCase())) return;
      if (vm.spec.nics.some((n) => n.deviceId === nic.deviceId))
        throw new DriverError(`VM ${name} already has a NIC at device id ${nic.deviceId}`);
      await hotplugNic(this.plugTarget(vm), nic, this.filtersOf({ ...vm.spec, nics: [nic] }));
      vm.spec = { ...vm.spec, nics: [...vm.spec.nics, nic].sort((a, b) => a.deviceId - b.deviceId) };
      this.save(vm);
    });
  }

  async unplugNic(name: string, mac: string) {
    return this.serialized(name, async () => {
      const vm = this.running(name);
      const nic = vm.spec.nics.find((n) => n.mac.toLowerCase() === mac.toLowerCase());
      if (!nic) return;
      await hotunplugNic(this.plugTarget(vm), nic);
      vm.spec = { ...vm.spec, nics: vm.spec.nics.filter((n) => n !== nic) };
      this.save(vm);
    });
  }

  private plugTarget(vm: Vm): NicPlugTarget {
    return { qmp: vm.qmp!, host: this.name, vm: vm.spec.name, security: this.network.security };
  }

  async attachVolume(name: string, disk: VmDisk) {
    return this.serialized(name, async () => {
      const vm = this.running(name);
      const current = vm.spec.disks.find((d) => d.deviceId === disk.deviceId);
      if (current?.path === disk.path) return;
      if (current) throw new DriverError(`VM ${name} already has a disk at device id ${disk.deviceId}`);
      if (disk.type === 'ISO') throw new DriverError('ISOs are attached when the VM starts, not live');
      if (disk.pool.type === 'RBD') await addRbdBlockdev(vm.qmp!, disk);
      else {
        const files = await this.pools.disks(disk.pool);
        if (!(await files.exists(disk.path))) throw new DriverError(`volume ${disk.path} does not exist`);
        const { format } = await imageInfo(files.image(disk.path));
        await vm.qmp!.execute('blockdev-add', blockdev(disk, format, files.blockFile(disk.path, false)));
      }
      try {
        await vm.qmp!.execute('device_add', diskDeviceArgs(disk));
      } catch (err) {
        await vm.qmp!.execute('blockdev-del', { 'node-name': diskNode(disk) }).catch(() => undefined);
        await dropRbdSecret(vm.qmp!, disk);
        throw new DriverError(`attaching ${disk.path} to ${name} failed: ${(err as Error).message}`);
      }
      vm.spec = { ...vm.spec, disks: [...vm.spec.disks, disk] };
      this.save(vm);
    });
  }

  async detachVolume(name: string, disk: VmDisk) {
    return this.serialized(name, async () => {
      const vm = this.running(name);
      const current = vm.spec.disks.find((d) => d.deviceId === disk.deviceId && d.path === disk.path);
      if (!current) return;
      if (current.type === 'ROOT')
        throw new DriverError('the root disk cannot be detached from a running VM');
      const qmp = vm.qmp!;
      // The guest must release the device (ACPI eject) before QEMU removes it.
      const deleted = qmp.waitForEvent('DEVICE_DELETED', 30_000, (e) => e.data?.device === diskDevice(disk));
      try {
        await qmp.execute('device_del', { id: diskDevice(disk) });
        await deleted;
      } catch (err) {
        deleted.catch(() => undefined);
        throw new DriverError(`the guest in ${name} did not release ${disk.path}: ${(err as Error).message}`);
      }
      const node = this.nodeOf(vm, current);
      await qmp.execute('blockdev-del', { 'node-name': node });
      if (vm.nodes) delete vm.nodes[current.deviceId];
      await dropRbdSecret(qmp, current, node);
      vm.spec = { ...vm.spec, disks: vm.spec.disks.filter((d) => d !== current) };
      this.save(vm);
    });
  }

  // ---- LiveDisks: what storage operations need from running VMs

  diskInUse(path: string): { vm: string; disk: VmDisk } | undefined {
    for (const vm of this.vms.values()) {
      if (vm.dead || !qemuAlive(vm.pid, paths(vm.dir).qmp)) continue;
      const disk = vm.spec.disks.find((d) => d.path === path);
      if (disk) return { vm: vm.spec.name, disk };
    }
    return undefined;
  }

  async liveResize(vmName: string, disk: VmDisk, sizeBytes: number) {
    const vm = this.running(vmName);
    await vm.qmp!.execute('block_resize', { 'node-name': this.nodeOf(vm, disk), size: sizeBytes });
  }

  /**
   * Runs `copy` while the guest writes to a temporary external overlay, so the volume file is a
   * stable point-in-time image; then commits the overlay back into it (active block-commit).
   */
  async withFrozenImage(vmName: string, disk: VmDisk, copy: () => Promise<void>) {
    const qmp = this.running(vmName).qmp!;
    const node = this.nodeOf(this.running(vmName), disk);
    const overlayNode = `o${disk.deviceId}`;
    // In the VM's own folder: a local file whatever the pool, gone once committed back.
    const overlay = join(this.running(vmName).dir, `${node}.overlay.qcow2`);
    rmSync(overlay, { force: true });
    await qmp.execute('blockdev-snapshot-sync', {
      'node-name': node,
      'snapshot-file': overlay,
      'snapshot-node-name': overlayNode,
      format: 'qcow2',
    });
    // The overlay is committed back whether or not the copy worked: the guest must not keep it.
    const copyError = await copy().then(
      () => undefined,
      (err: Error) => err,
    );
    const job = `commit-${disk.deviceId}`;
    const ready = qmp.waitForEvent('BLOCK_JOB_READY', 120_000, (e) => e.data?.device === job);
    await qmp.execute('block-commit', { 'job-id': job, device: overlayNode, 'base-node': node });
    await ready;
    const completed = qmp.waitForEvent('BLOCK_JOB_COMPLETED', 120_000, (e) => e.data?.device === job);
    await qmp.execute('block-job-complete', { device: job });
    const done = await completed;
    if (done.data?.error) throw new DriverError(`committing the snapshot overlay failed: ${done.data.error}`);
    rmSync(overlay, { force: true });
    if (copyError) throw copyError;
  }

  /**
   * migrateVolume livemigrate=true: the disk is mirrored into a new volume on `pool` while the
   * guest runs, and the guest switches to it (block-jobs.ts). The old volume is the server's to
   * delete; the VM's record names the new one, so a restarted agent and a migration use it.
   */
  async moveVolumeLive(p: ParsedPayload<'moveVolumeLive'>) {
    return this.serialized(p.vm, async () => {
      const vm = this.running(p.vm);
      const disk = vm.spec.disks.find((d) => d.volumeUuid === p.disk.volumeUuid && d.type !== 'ISO');
      if (!disk) throw new DriverError(`VM ${p.vm} has no disk of volume ${p.disk.volumeUuid}`);
      const source = this.nodeOf(vm, disk);
      // A retried command whose first attempt finished.
      if (disk.pool.uuid === p.pool.uuid)
        return { path: disk.path, sizeBytes: await nodeSize(vm.qmp!, source) };
      const moved = await withVolumeStore(this.pools, p.pool, (target) =>
        moveDiskLive(vm.qmp!, {
          source,
          sourcePath: disk.path,
          deviceId: disk.deviceId,
          name: disk.volumeUuid,
          target,
          timeoutMs: this.options.migrationTimeoutMs ?? 600_000,
          sourceObjects: staleRbdSecrets(
            disk,
            source,
            vm.spec.disks.filter((d) => d !== disk).map((d) => ({ disk: d, node: this.nodeOf(vm, d) })),
          ),
        }),
      );
      vm.nodes = { ...vm.nodes, [disk.deviceId]: moved.node };
      vm.spec = {
        ...vm.spec,
        disks: vm.spec.disks.map((d) => (d === disk ? { ...d, path: moved.path, pool: p.pool } : d)),
      };
      this.save(vm);
      return { path: moved.path, sizeBytes: moved.sizeBytes };
    });
  }

  /** The block node a disk's device uses: diskNode's, unless the disk was moved live. */
  private nodeOf(vm: Vm, disk: { deviceId: number }): string {
    return vm.nodes?.[disk.deviceId] ?? diskNode(disk);
  }

  // ---- internals

  /**
   * Runs one VM's operations one after the other: a command the server retries after a timeout
   * waits for the first attempt and then finds its work done, instead of racing it.
   */
  private serialized<T>(name: string, op: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(name) ?? Promise.resolve();
    const result = previous.then(op, op);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return result;
  }

  private vmDir(name: string): string {
    if (!VM_NAME.test(name)) throw new DriverError(`invalid VM name ${JSON.stringify(name)}`);
    return join(this.hostDir, 'vms', name);
  }

  private running(name: string): Vm {
    const vm = this.vms.get(name);
    if (!vm || vm.dead || !qemuAlive(vm.pid, paths(vm.dir).qmp))
      throw new DriverError(`VM ${name} is not running on host ${this.name}`);
    if (!vm.qmp || vm.qmp.closed) throw new DriverError(`VM ${name}: no monitor connection to QEMU`);
    if (vm.incoming) throw new DriverError(`VM ${name} is still receiving a migration`);
    return vm;
  }

  private async launch(spec: VmSpec, incoming: boolean): Promise<Vm> {
    const dir = this.vmDir(spec.name);
    const f = paths(dir);
    mkdirSync(dir, { recursive: true });
    for (const p of [f.qmp, f.pid, f.record]) rmSync(p, { force: true });
    const formats = new Map<number, string>();
    const files = new Map<number, Record<string, unknown>>();
    const secrets: { id: string; key: string }[] = [];
    for (const disk of spec.disks) {
      if (disk.pool.type === 'RBD') {
        const rbd = await openRbdDisk(disk);
        formats.set(disk.deviceId, 'raw');
        files.set(disk.deviceId, rbd.file);
        if (rbd.secret) secrets.push(rbd.secret);
        continue;
      }
      const pool = await this.pools.disks(disk.pool);
      if (!(await pool.exists(disk.path)))
        throw new DriverError(`volume ${disk.path} of ${spec.name} does not exist`);
      formats.set(disk.deviceId, (await imageInfo(pool.image(disk.path))).format);
      files.set(disk.deviceId, pool.blockFile(disk.path, disk.type === 'ISO'));
    }
    for (const nic of spec.nics) {
      if (nic.bridge && !bridgeExists(nic.bridge))
        throw new DriverError(`bridge ${nic.bridge} for ${spec.name} does not exist on ${this.name}`);
      if (nic.bridge && nic.security && !/^\d{1,3}(\.\d{1,3}){3}$/.test(nic.ip ?? ''))
        throw new DriverError(`NIC ${nic.mac} of ${spec.name} has security groups but no IPv4 address`);
    }
    const objects = secretObjectArgs(dir, secrets);
    const args = qemuArgs({
      host: this.name,
      spec,
      dir,
      accel: this.accel,
      formats,
      files,
      objects,
      incoming,
    });
    const log = openSync(f.log, 'w');
    // Detached, in its own process group: the VM survives the agent stopping or crashing.
    const child = spawn(QEMU_BINARY, args, { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    closeSync(log);
    if (!child.pid) throw new DriverError(`cannot start ${QEMU_BINARY}`);
    const vm: Vm = {
      spec,
      pid: child.pid,
      accel: this.accel,
      incoming,
      dir,
      status: 'prelaunch',
      dead: false,
    };
    child.once('exit', () => this.markDead(vm));
    this.vms.set(spec.name, vm);
    this.save(vm);
    try {
      const qmp = await Qmp.waitAndConnect(f.qmp, () => child.exitCode === null, 30_000);
      // QEMU read its secrets' files at start: the keys stay in its memory only.
      removeSecretFiles(dir);
      this.watch(vm, qmp);
      for (const nic of spec.nics.filter((n) => n.bridge))
        await joinBridge(tapName(this.name, spec.name, nic), nic.bridge!);
      // Before the guest runs (fresh start: -S; migration target: before memory arrives), so it
      // never has a moment without its filtering.
      await this.network.security.apply(this.filtersOf(spec));
      if (incoming) {
        const port = await freePort(this.privateIp);
        await qmp.execute('migrate-incoming', { uri: `tcp:${this.listenHost()}:${port}` });
        vm.migrationPort = port;
      } else await qmp.execute('cont');
      const vnc = await qmp.execute<{ service?: string }>('query-vnc');
      vm.vncPort = vnc.service ? Number(vnc.service) : undefined;
      await this.refreshStatus(vm);
      this.save(vm);
      return vm;
    } catch (err) {
      removeSecretFiles(dir);
      if (child.exitCode === null) child.kill('SIGKILL');
      await this.waitUntil(() => !qemuAlive(vm.pid, f.qmp), 5000).catch(() => undefined);
      this.forget(vm);
      const why = existsSync(f.log) ? readFileSync(f.log, 'utf8').trim().split('\n').slice(-3).join(' ') : '';
      throw new DriverError(
        `starting ${spec.name} failed: ${(err as Error).message}${why ? ` (${why})` : ''}`,
      );
    }
  }

  private listenHost(): string {
    return this.privateIp.includes(':') ? `[${this.privateIp}]` : this.privateIp;
  }

  private watch(vm: Vm, qmp: Qmp): void {
    vm.qmp = qmp;
    qmp.on('event', (e) => {
      if (['STOP', 'RESUME', 'RESET', 'SHUTDOWN', 'MIGRATION'].includes(e.event)) void this.refreshStatus(vm);
    });
    qmp.on('close', () => {
      if (!qemuAlive(vm.pid, paths(vm.dir).qmp)) this.markDead(vm);
    });
  }

  private async refreshStatus(vm: Vm): Promise<void> {
    if (!vm.qmp || vm.qmp.closed || vm.dead) return;
    try {
      const s = await vm.qmp.execute<{ status: string }>('query-status', undefined, 5000);
      if (vm.status === 'postmigrate') return;
      vm.status = s.status;
      if (vm.incoming && s.status === 'running') {
        vm.incoming = false;
        vm.migrationPort = undefined;
        this.save(vm);
      }
    } catch {
      // The process check on the next ping decides whether the VM is gone.
    }
  }

  private markDead(vm: Vm): void {
    if (vm.dead) return;
    vm.dead = true;
    vm.qmp?.close();
    vm.qmp = undefined;
    // A QEMU that died took its taps along; its firewall chains go too.
    void this.removeFilters(vm.spec.name).catch((err: Error) =>
      process.stderr.write(`agent: removing the filtering of ${vm.spec.name}: ${err.message}\n`),
    );
  }

  /** The security group filtering of a VM's NICs on this host (only NICs with security). */
  private filtersOf(spec: VmSpec): NicFilter[] {
    return spec.nics
      .filter((nic) => nic.bridge && nic.security && nic.ip)
      .map((nic) => ({
        port: tapName(this.name, spec.name, nic),
        bridge: nic.bridge!,
        mac: nic.mac,
        ip: nic.ip!,
        security: nic.security!,
      }));
  }

  private removeFilters(name: string): Promise<void> {
    // Only when something could be installed: hosts without nftables never had any.
    return this.network.security.remove(tapPrefix(this.name, name));
  }

  /** Drops a VM from this host: its runtime files go, its console log stays for diagnosis. */
  private forget(vm: Vm): void {
    this.markDead(vm);
    if (this.vms.get(vm.spec.name) === vm) this.vms.delete(vm.spec.name);
    this.vmSamples.delete(vm.spec.name);
    const f = paths(vm.dir);
    for (const p of [f.qmp, f.pid, f.record]) rmSync(p, { force: true });
  }

  private save(vm: Vm): void {
    const record: VmRecordFile = {
      // Without the pools' cephx keys: a record on disk is no place for them.
      spec: withoutKeys(vm.spec),
      pid: vm.pid,
      accel: vm.accel,
      vncPort: vm.vncPort,
      incoming: vm.incoming,
      migrationPort: vm.migrationPort,
      nodes: vm.nodes,
    };
    const file = paths(vm.dir).record;
    writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2));
    // Rename is atomic: a crash never leaves a half-written record for the next agent.
    renameSync(`${file}.tmp`, file);
  }

  private async adopt(): Promise<void> {
    const root = join(this.hostDir, 'vms');
    for (const name of readdirSync(root)) {
      const dir = join(root, name);
      const f = paths(dir);
      let record: VmRecordFile;
      try {
        record = JSON.parse(readFileSync(f.record, 'utf8'));
      } catch {
        continue;
      }
      const vm: Vm = { ...record, dir, status: 'unknown', dead: false };
      this.vms.set(record.spec.name, vm);
      if (!qemuAlive(vm.pid, f.qmp)) {
        this.markDead(vm);
        continue;
      }
      try {
        this.watch(vm, await Qmp.connect(f.qmp, 5000));
        await this.refreshStatus(vm);
      } catch {
        // Left PowerUnknown: the process lives but its monitor does not answer.
      }
      // The rules normally survive an agent restart; re-creating them covers a flushed ruleset.
      if (vm.status !== 'postmigrate')
        await this.network.security.apply(this.filtersOf(vm.spec)).catch((err: Error) => {
          process.stderr.write(`agent: filtering of ${vm.spec.name} not restored: ${err.message}\n`);
        });
      // The previous agent died between a completed migration and quitting the source.
      if (vm.status === 'postmigrate') {
        await vm.qmp?.execute('quit', undefined, 3000).catch(() => undefined);
        this.forget(vm);
      }
    }
  }

  private async waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new DriverError(`timed out after ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

/** A TCP port free on `address` right now, for QEMU's incoming migration listener. */
function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, address, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
