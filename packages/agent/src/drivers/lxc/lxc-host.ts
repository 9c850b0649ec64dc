/**
 * The LXC host driver: system containers run by Debian's `lxc` through its command-line tools
 * (lxc-start, lxc-stop, lxc-cgroup, lxc-freeze...). The tools rather than liblxc through a binding:
 * no Node binding of liblxc is maintained, the tools are LXC's stable interface, and a container's
 * monitor process (which `lxc-start` daemonizes) outlives the agent without any help.
 *
 * Each container has a config written for every start, <stateDir>/<host>/lxc/<name>/config (LXC's
 * "lxcpath"; removed when the container stops, so a stopped container leaves nothing for LXC),
 * and a state directory <stateDir>/<host>/vms/<name>/ with container.json (the spec and the
 * monitor's pid: enough to re-adopt it after an agent restart) and console.log. The container's
 * NICs are veth pairs on the same guest bridges as KVM VMs, with the same host-side names, and
 * are filtered by the same security group code (../../network/).
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import type { ParsedPayload, PowerState, VmPowerReport, VmSpec } from '@nimbostack/protocol';
import { HostNetwork } from '../../network/host-network.ts';
import type { NicFilter } from '../../network/security.ts';
import { tailOf } from '../console-log.ts';
import {
  DriverError,
  type HostDriver,
  type HostResources,
  type HypervisorDriver,
  type StorageDriver,
} from '../driver.ts';
import { HostStatsSampler } from '../host-stats.ts';
import { run } from '../kvm/exec.ts';
import { defaultAddress, diskBytes, machineFacts } from '../kvm/host-facts.ts';
import { tapName, tapPrefix } from '../kvm/machine.ts';
import { bridgeExists } from '../kvm/nic-plug.ts';
import { CGROUP_V1, cgroupCounters, configText, diskNodeName, type VmDisk } from './container.ts';
import { ContainerStorage, type LiveContainers } from './storage.ts';

export interface LxcHostOptions {
  /** The host's name, its identity towards the management server. */
  name: string;
  /** Root of the agent's state; this host's containers live under <stateDir>/<name>. */
  stateDir: string;
  /** Management address reported to the server. */
  privateIp?: string;
  /** How long a clean shutdown (the init's halt signal) may take before the container is killed. */
  stopTimeoutMs?: number;
}

type VmNic = VmSpec['nics'][number];

/** What container.json holds. */
interface ContainerFile {
  spec: VmSpec;
  /** The `[lxc monitor]` process that runs (and restarts on reboot) the container. */
  monitorPid: number;
}

interface Container extends ContainerFile {
  dir: string;
  dead: boolean;
}

const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LxcHost implements HostDriver, HypervisorDriver, LiveContainers {
  readonly storage: StorageDriver;
  readonly network: HostNetwork;
  private readonly containers = new Map<string, Container>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly hostDir: string;
  /** LXC's lxcpath: where the containers' configs are. */
  readonly lxcPath: string;
  private readonly privateIp: string;
  private readonly hostSampler = new HostStatsSampler();
  private readonly samples = new Map<string, { at: number; cpuNs: number; rx: number; tx: number }>();

  private constructor(
    private readonly options: LxcHostOptions,
    private readonly version: string,
  ) {
    this.hostDir = join(options.stateDir, options.name);
    this.lxcPath = join(this.hostDir, 'lxc');
    this.privateIp = options.privateIp ?? defaultAddress();
    this.storage = new ContainerStorage(this);
    this.network = new HostNetwork({
      hostDir: this.hostDir,
      localAddress: this.privateIp,
      applySecurityRules: (p) => this.applySecurityRules(p),
    });
  }

  /** Checks LXC and re-adopts the containers of an earlier agent process. */
  static async create(options: LxcHostOptions): Promise<LxcHost> {
    const version = (await run('lxc-start', ['--version'])).trim();
    mkdirSync(join(options.stateDir, options.name, 'vms'), { recursive: true });
    mkdirSync(join(options.stateDir, options.name, 'lxc'), { recursive: true });
    const host = new LxcHost(options, version);
    await host.adopt();
    await host.network.adopt();
    return host;
  }

  get name(): string {
    return this.options.name;
  }

  get hypervisor(): HypervisorDriver {
    return this;
  }

  /** Where a container's console output is logged. */
  consoleLog(name: string): string {
    return join(this.vmDir(name), 'console.log');
  }

  /** The memory a running container's cgroup is charged for (for operators and tests). */
  memoryUsage(name: string): number | undefined {
    const pid = this.initPid(name);
    return pid ? cgroupCounters(pid)?.memoryBytes : undefined;
  }

  /** The container's init process as the host sees it (for operators and tests). */
  initPid(name: string): number | undefined {
    const ct = this.containers.get(name);
    return ct && this.alive(ct) ? childOf(ct.monitorPid) : undefined;
  }

  resources(): HostResources {
    return {
      hypervisor: 'LXC',
      hypervisorVersion: this.version,
      ...machineFacts(),
      localStorageBytes: diskBytes(this.options.stateDir),
      privateIp: this.privateIp,
      details: { lxc: this.version, cgroup: CGROUP_V1 ? 'v1' : 'v2' },
    };
  }

  reportStates(): VmPowerReport[] {
    const out: VmPowerReport[] = [];
    for (const ct of this.containers.values()) {
      if (!ct.dead && !this.alive(ct)) this.markDead(ct);
      // A container that stopped behind the agent's back (guest poweroff, kill) is PowerOff until
      // the server stops or starts it, as a KVM VM whose QEMU exited.
      const state: PowerState = ct.dead ? 'PowerOff' : 'PowerOn';
      out.push({ name: ct.spec.name, state });
    }
    return out;
  }

  async checkHealth() {
    try {
      writeFileSync(join(this.hostDir, '.health'), String(Date.now()));
    } catch (err) {
      return { healthy: false, detail: `state directory not writable: ${(err as Error).message}` };
    }
    if (!existsSync('/usr/bin/lxc-start')) return { healthy: false, detail: 'lxc-start is missing' };
    return { healthy: true, detail: `LXC ${this.version}, cgroup ${CGROUP_V1 ? 'v1' : 'v2'}` };
  }

  async hostStats() {
    return this.hostSampler.sample();
  }

  async vmStats(names: string[]) {
    const stats = [];
    for (const name of names) {
      const ct = this.containers.get(name);
      const pid = ct && !ct.dead && this.alive(ct) ? childOf(ct.monitorPid) : undefined;
      const c = pid ? cgroupCounters(pid) : undefined;
      if (!ct || !c) continue;
      let rx = 0;
      let tx = 0;
      for (const nic of ct.spec.nics) {
        const dir = `/sys/class/net/${tapName(this.name, name, nic)}/statistics`;
        try {
          // The host end's rx is what the container sent, its tx what the container received.
          tx += Number(readFileSync(`${dir}/rx_bytes`, 'utf8'));
          rx += Number(readFileSync(`${dir}/tx_bytes`, 'utf8'));
        } catch {
          // The veth went with the container.
        }
      }
      const now = Date.now();
      const prev = this.samples.get(name);
      this.samples.set(name, { at: now, cpuNs: c.cpuNs, rx, tx });
      const secs = prev ? (now - prev.at) / 1000 : 0;
      const rate = (a: number, b: number) => (prev && secs > 0 ? Math.max(0, (a - b) / 1024 / secs) : 0);
      stats.push({
        name,
        cpuUtilization:
          prev && secs > 0
            ? Math.min(100, Math.max(0, (100 * (c.cpuNs - prev.cpuNs)) / 1e9 / secs / ct.spec.cpus))
            : 0,
        // The allocation, as for a KVM VM (upstream's memorykbs); memoryUsage() tells the charge.
        memoryBytes: ct.spec.memoryBytes,
        networkReadKbs: rate(rx, prev?.rx ?? 0),
        networkWriteKbs: rate(tx, prev?.tx ?? 0),
        diskReadBytes: c.diskReadBytes,
        diskWriteBytes: c.diskWriteBytes,
      });
    }
    return { stats };
  }

  async startVm(spec: VmSpec) {
    return this.serialized(spec.name, async () => {
      const existing = this.containers.get(spec.name);
      if (existing && !existing.dead && this.alive(existing)) return { state: 'PowerOn' as const };
      if (existing) await this.cleanUp(existing);
      await this.launch(spec);
      return { state: 'PowerOn' as const };
    });
  }

  /**
   * Clean shutdown: LXC sends the init its halt signal and waits (busybox init runs its shutdown
   * actions and powers off), then kills what is left. `force` kills at once.
   */
  async stopVm(name: string, force: boolean) {
    return this.serialized(name, async () => {
      const ct = this.containers.get(name);
      if (!ct) {
        // A name that is no path of ours is refused before anything is removed under it.
        this.vmDir(name);
        // No record, but LXC may still hold it (an agent that died between start and record).
        if (existsSync(join(this.lxcPath, name, 'config')))
          await this.lxc('lxc-stop', name, ['-k']).catch(() => undefined);
        rmSync(join(this.lxcPath, name), { recursive: true, force: true });
        return;
      }
      if (this.alive(ct)) {
        const timeout = Math.ceil((this.options.stopTimeoutMs ?? 60_000) / 1000);
        await this.lxc('lxc-stop', name, force ? ['-k'] : ['-t', String(timeout)]).catch(() => undefined);
        await this.waitUntil(() => !this.alive(ct), 10_000).catch(async () => {
          await this.lxc('lxc-stop', name, ['-k']).catch(() => undefined);
          await this.waitUntil(() => !this.alive(ct), 10_000);
        });
      }
      await this.cleanUp(ct);
    });
  }

  async rebootVm(name: string) {
    return this.serialized(name, async () => {
      this.running(name);
      // The init's reboot signal; the monitor starts the container again (same veths, same record).
      await this.lxc('lxc-stop', name, ['-r', '-t', '30']);
    });
  }

  async consoleOutput(name: string, maxBytes: number): Promise<Buffer> {
    return tailOf(this.consoleLog(name), maxBytes);
  }

  async applySecurityRules(p: ParsedPayload<'applySecurityRules'>) {
    return this.serialized(p.vm, async () => {
      const ct = this.containers.get(p.vm);
      if (!ct || ct.dead) return;
      const nics = ct.spec.nics.map((nic) => {
        const update = p.nics.find((n) => n.mac.toLowerCase() === nic.mac.toLowerCase());
        return update ? { ...nic, ip: update.ip, security: update.security } : nic;
      });
      ct.spec = { ...ct.spec, nics };
      this.save(ct);
      const macs = new Set(p.nics.map((n) => n.mac.toLowerCase()));
      await this.network.security.apply(this.filtersOf(ct.spec).filter((f) => macs.has(f.mac.toLowerCase())));
    });
  }

  async prepareMigration(): Promise<never> {
    throw new DriverError(
      'containers are not migrated live (no CRIU on LXC hosts): stop the container and start it on another host of the cluster',
    );
  }

  async migrateVm(name: string): Promise<never> {
    throw new DriverError(`container ${name} cannot be migrated live: stop it first`);
  }

  /**
   * Hot-plugs a NIC: a veth pair whose host end joins the bridge and gets its filtering before the
   * other end moves into the container's network namespace, so the guest never sees it unfiltered.
   */
  async plugNic(name: string, nic: VmNic) {
    return this.serialized(name, async () => {
      const ct = this.running(name);
      if (ct.spec.nics.some((n) => n.mac.toLowerCase() === nic.mac.toLowerCase())) return;
      if (ct.spec.nics.some((n) => n.deviceId === nic.deviceId))
        throw new DriverError(`container ${name} already has a NIC at device id ${nic.deviceId}`);
      if (nic.bridge && !bridgeExists(nic.bridge))
        throw new DriverError(`bridge ${nic.bridge} for ${name} does not exist on ${this.name}`);
      const port = tapName(this.name, name, nic);
      const peer = `${port}c`;
      try {
        await run('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', peer]);
        await run('ip', ['link', 'set', peer, 'address', nic.mac.toLowerCase()]);
        if (nic.bridge) await run('ip', ['link', 'set', port, 'master', nic.bridge]);
        await run('ip', ['link', 'set', port, 'up']);
        await this.network.security.apply(this.filtersOf({ ...ct.spec, nics: [nic] }));
        // Moved into the container's network namespace and renamed there with the host's ip (not
        // lxc-device, which needs /proc/1/ns of the host: not readable in every sandbox).
        const pid = String(this.initOf(ct));
        await run('ip', ['link', 'set', peer, 'netns', pid]);
        await run('nsenter', ['-t', pid, '-n', 'ip', 'link', 'set', peer, 'name', `eth${nic.deviceId}`]);
        await run('nsenter', ['-t', pid, '-n', 'ip', 'link', 'set', `eth${nic.deviceId}`, 'up']);
      } catch (err) {
        await run('ip', ['link', 'del', port]).catch(() => undefined);
        await this.network.security.remove(`${port}_`).catch(() => undefined);
        throw new DriverError(`plugging NIC ${nic.mac} into ${name} failed: ${(err as Error).message}`);
      }
      ct.spec = { ...ct.spec, nics: [...ct.spec.nics, nic].sort((a, b) => a.deviceId - b.deviceId) };
      this.save(ct);
    });
  }

  /** Deleting the host end of a veth pair takes the container's end with it. */
  async unplugNic(name: string, mac: string) {
    return this.serialized(name, async () => {
      const ct = this.running(name);
      const nic = ct.spec.nics.find((n) => n.mac.toLowerCase() === mac.toLowerCase());
      if (!nic) return;
      const port = tapName(this.name, name, nic);
      if (existsSync(`/sys/class/net/${port}`)) await run('ip', ['link', 'del', port]);
      await this.network.security.remove(`${port}_`);
      ct.spec = { ...ct.spec, nics: ct.spec.nics.filter((n) => n !== nic) };
      this.save(ct);
    });
  }

  /** A data volume reaches the container as a loop device node named as a KVM guest would see it. */
  async attachVolume(name: string, disk: VmDisk) {
    return this.serialized(name, async () => {
      const ct = this.running(name);
      const current = ct.spec.disks.find((d) => d.deviceId === disk.deviceId);
      if (current?.path === disk.path) return;
      if (current)
        throw new DriverError(`container ${name} already has a disk at device id ${disk.deviceId}`);
      await this.plugDisk(ct, disk);
      ct.spec = { ...ct.spec, disks: [...ct.spec.disks, disk] };
      this.save(ct);
    });
  }

  async detachVolume(name: string, disk: VmDisk) {
    return this.serialized(name, async () => {
      const ct = this.running(name);
      const current = ct.spec.disks.find((d) => d.deviceId === disk.deviceId && d.path === disk.path);
      if (!current) return;
      if (current.type === 'ROOT')
        throw new DriverError('the root volume cannot be detached from a running container');
      const node = `/dev/${diskNodeName(disk)}`;
      const pid = childOf(ct.monitorPid);
      const mounts = pid ? readFileSync(`/proc/${pid}/mounts`, 'utf8') : '';
      if (mounts.split('\n').some((l) => l.split(' ')[0] === node))
        throw new DriverError(`${node} is mounted in container ${name}: unmount it first`);
      await this.unplugDisk(ct, disk);
      ct.spec = { ...ct.spec, disks: ct.spec.disks.filter((d) => d !== current) };
      this.save(ct);
    });
  }

  /**
   * Containers have no framebuffer: their console is a terminal, the container's tty1 (where the
   * test template's getty waits), as a byte stream for the console proxy (the browser shows it with
   * a terminal emulator). lxc-console needs a terminal of its own, so it runs under `script`, which
   * gives it a pseudo-terminal and relays it to plain pipes. The stream ends with the container.
   */
  async openConsole(name: string): Promise<Duplex> {
    this.running(name);
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const command = `exec lxc-console -n ${quote(name)} -P ${quote(this.lxcPath)} -t 1`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined));
      child.once('error', resolve);
    });
    if (spawned) throw new DriverError(`cannot open the console of ${name}: ${spawned.message}`);
    const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
    // Either end going ends the other: a closed browser stops lxc-console, a stopped container the stream.
    stream.once('close', () => child.kill('SIGTERM'));
    child.once('exit', () => stream.destroy());
    return stream;
  }

  // ---- LiveContainers: what storage operations need from running containers

  volumeInUse(path: string): string | undefined {
    for (const ct of this.containers.values())
      if (!ct.dead && this.alive(ct) && ct.spec.disks.some((d) => d.path === path)) return ct.spec.name;
    return undefined;
  }

  async frozen(vm: string, copy: (rootfs: string) => Promise<void>) {
    const ct = this.running(vm);
    await this.lxc('lxc-freeze', vm, []);
    try {
      // The container's root as its init sees it (its mounts inside are other file systems).
      await copy(`/proc/${this.initOf(ct)}/root`);
    } finally {
      await this.lxc('lxc-unfreeze', vm, []);
    }
  }

  async refreshSize(path: string) {
    for (const loop of await loopsOf(path)) await run('losetup', ['-c', loop]);
  }

  // ---- internals

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

  /** Runs an lxc-* tool on one container of this host's lxcpath. */
  private lxc(tool: string, name: string, args: string[], timeoutMs = 120_000): Promise<string> {
    return run(tool, ['-n', name, '-P', this.lxcPath, ...args], timeoutMs);
  }

  /** The monitor process lives as long as the container does (across reboots); pid reuse is checked. */
  private alive(ct: Container): boolean {
    return monitorAlive(ct.monitorPid, this.lxcPath, ct.spec.name);
  }

  /** The running container's init, as the host sees it. */
  private initOf(ct: Container): number {
    const pid = childOf(ct.monitorPid);
    if (!pid) throw new DriverError(`container ${ct.spec.name} has no init process`);
    return pid;
  }

  private running(name: string): Container {
    const ct = this.containers.get(name);
    if (!ct || ct.dead || !this.alive(ct))
      throw new DriverError(`container ${name} is not running on host ${this.name}`);
    return ct;
  }

  private async launch(spec: VmSpec): Promise<void> {
    const dir = this.vmDir(spec.name);
    const root = spec.disks.find((d) => d.type === 'ROOT');
    if (!root) throw new DriverError(`container ${spec.name} has no ROOT volume`);
    if (!existsSync(join(root.path, 'volume.json')))
      throw new DriverError(`volume ${root.path} of ${spec.name} is not a container root volume`);
    if (spec.disks.some((d) => d.type === 'ISO')) throw new DriverError('containers cannot use ISOs');
    for (const disk of spec.disks)
      if (!existsSync(disk.path)) throw new DriverError(`volume ${disk.path} of ${spec.name} does not exist`);
    for (const nic of spec.nics) {
      if (nic.bridge && !bridgeExists(nic.bridge))
        throw new DriverError(`bridge ${nic.bridge} for ${spec.name} does not exist on ${this.name}`);
      if (nic.bridge && nic.security && !/^\d{1,3}(\.\d{1,3}){3}$/.test(nic.ip ?? ''))
        throw new DriverError(`NIC ${nic.mac} of ${spec.name} has security groups but no IPv4 address`);
    }
    mkdirSync(dir, { recursive: true });
    const configDir = join(this.lxcPath, spec.name);
    mkdirSync(configDir, { recursive: true });
    writeFileSync(
      join(configDir, 'config'),
      configText({ host: this.name, spec, consoleLog: join(dir, 'console.log'), rootVolume: root.path }),
    );
    const log = join(dir, 'lxc.log');
    // Each start has a fresh console log (LXC would append), as QEMU truncates a KVM VM's.
    for (const f of [log, join(dir, 'console.log')]) rmSync(f, { force: true });
    // nftables matches ports by name: the filtering is in place before the veths exist, so the
    // container's first packet (its DHCP discover) is already filtered.
    await this.network.security.apply(this.filtersOf(spec));
    const ct: Container = { spec, monitorPid: 0, dir, dead: false };
    try {
      await this.lxc('lxc-start', spec.name, ['-d', '-o', log, '-l', 'WARN']);
      const pid = Number((await this.lxc('lxc-info', spec.name, ['-p', '-H'])).trim());
      const monitorPid = parentOf(pid);
      if (!monitorPid || !monitorAlive(monitorPid, this.lxcPath, spec.name))
        throw new DriverError('its monitor process is not running');
      ct.monitorPid = monitorPid;
      this.containers.set(spec.name, ct);
      this.save(ct);
      for (const disk of spec.disks.filter((d) => d.type === 'DATADISK')) await this.plugDisk(ct, disk);
    } catch (err) {
      await this.lxc('lxc-stop', spec.name, ['-k']).catch(() => undefined);
      await this.cleanUp(ct);
      const why = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' ') : '';
      throw new DriverError(
        `starting ${spec.name} failed: ${(err as Error).message}${why ? ` (${why})` : ''}`,
      );
    }
  }

  private async plugDisk(ct: Container, disk: VmDisk): Promise<void> {
    if (disk.type !== 'DATADISK') throw new DriverError('only data volumes attach to a running container');
    if (!existsSync(disk.path)) throw new DriverError(`volume ${disk.path} does not exist`);
    // A loop device already backed by the file is reused: a retried attach makes no second one.
    const loop = (await loopsOf(disk.path))[0] ?? (await run('losetup', ['-f', '--show', disk.path])).trim();
    try {
      // The device is allowed in the container's cgroup, then its node made in the container's /dev
      // through /proc/<init>/root with the host's mknod (the container may have no mknod of its own).
      const { major, minor } = deviceNumbers(loop);
      await this.lxc('lxc-cgroup', ct.spec.name, ['devices.allow', `b ${major}:${minor} rwm`]);
      const node = `/proc/${this.initOf(ct)}/root/dev/${diskNodeName(disk)}`;
      rmSync(node, { force: true });
      await run('mknod', ['-m', '0660', node, 'b', String(major), String(minor)]);
    } catch (err) {
      await run('losetup', ['-d', loop]).catch(() => undefined);
      throw new DriverError(`attaching ${disk.path} to ${ct.spec.name} failed: ${(err as Error).message}`);
    }
  }

  /** Removes the node and denies its device in the container's cgroup, then frees the loop device. */
  private async unplugDisk(ct: Container, disk: VmDisk): Promise<void> {
    for (const loop of await loopsOf(disk.path)) {
      const pid = this.alive(ct) ? childOf(ct.monitorPid) : undefined;
      if (pid) {
        const { major, minor } = deviceNumbers(loop);
        rmSync(`/proc/${pid}/root/dev/${diskNodeName(disk)}`, { force: true });
        // Denied again: the loop device may back another volume later.
        await this.lxc('lxc-cgroup', ct.spec.name, ['devices.deny', `b ${major}:${minor} rwm`]);
      }
      await run('losetup', ['-d', loop]);
    }
  }

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

  private markDead(ct: Container): void {
    if (ct.dead) return;
    ct.dead = true;
    // The veths went with the container's network namespace; their filtering goes too.
    void this.network.security
      .remove(tapPrefix(this.name, ct.spec.name))
      .catch((err: Error) =>
        process.stderr.write(`agent: removing the filtering of ${ct.spec.name}: ${err.message}\n`),
      );
  }

  /**
   * Everything a stopped container leaves on the host goes: its loop devices, filtering, LXC config
   * and record. The console log stays for diagnosis.
   */
  private async cleanUp(ct: Container): Promise<void> {
    ct.dead = true;
    for (const disk of ct.spec.disks.filter((d) => d.type === 'DATADISK'))
      await this.unplugDisk(ct, disk).catch(() => undefined);
    await this.network.security.remove(tapPrefix(this.name, ct.spec.name));
    rmSync(join(this.lxcPath, ct.spec.name), { recursive: true, force: true });
    if (this.containers.get(ct.spec.name) === ct) this.containers.delete(ct.spec.name);
    this.samples.delete(ct.spec.name);
    rmSync(join(ct.dir, 'container.json'), { force: true });
  }

  private save(ct: Container): void {
    const record: ContainerFile = { spec: ct.spec, monitorPid: ct.monitorPid };
    const file = join(ct.dir, 'container.json');
    writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2));
    renameSync(`${file}.tmp`, file);
  }

  private async adopt(): Promise<void> {
    const root = join(this.hostDir, 'vms');
    for (const name of readdirSync(root)) {
      const dir = join(root, name);
      let record: ContainerFile;
      try {
        record = JSON.parse(readFileSync(join(dir, 'container.json'), 'utf8'));
      } catch {
        continue;
      }
      const ct: Container = { ...record, dir, dead: false };
      this.containers.set(record.spec.name, ct);
      if (!this.alive(ct)) {
        this.markDead(ct);
        continue;
      }
      // The rules normally survive an agent restart; re-creating them covers a flushed ruleset.
      await this.network.security.apply(this.filtersOf(ct.spec)).catch((err: Error) => {
        process.stderr.write(`agent: filtering of ${ct.spec.name} not restored: ${err.message}\n`);
      });
    }
  }

  private async waitUntil(done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > deadline) throw new DriverError(`timed out after ${timeoutMs} ms`);
      await sleep(50);
    }
  }
}

/** True while `pid` is the live LXC monitor of container `name` in `lxcPath`. */
function monitorAlive(pid: number, lxcPath: string, name: string): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    return cmdline === `[lxc monitor] ${lxcPath} ${name}`;
  } catch {
    return false;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** The container's init: the monitor's only child. */
function childOf(pid: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/);
    return children[0] ? Number(children[0]) : undefined;
  } catch {
    return undefined;
  }
}

/** A block device's major and minor numbers (Linux's dev_t encoding). */
function deviceNumbers(device: string): { major: number; minor: number } {
  const rdev = statSync(device).rdev;
  return { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) };
}

/** The loop devices backed by `path` (losetup -j). */
async function loopsOf(path: string): Promise<string[]> {
  const out = await run('losetup', ['-j', path, '-O', 'NAME', '-n']).catch(() => '');
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}
