/**
 * What the agent needs from a hypervisor and its storage. The simulator implements these in
 * memory; a real driver (KVM) implements the same interfaces and passes the same contract tests.
 * Every operation must be idempotent: repeating one that already took effect succeeds.
 */
import type { Duplex } from 'node:stream';
import type {
  CommandResult,
  GuestNetwork,
  HypervisorType,
  ParsedPayload,
  PowerState,
  RouterSpec,
  StorageLocation,
  VmPowerReport,
  VmSpec,
} from '@nimbostack/protocol';

export interface HostResources {
  hypervisor: HypervisorType;
  hypervisorVersion: string;
  cpuSockets: number;
  cpuCores: number;
  cpuMhz: number;
  memoryBytes: number;
  localStorageBytes: number;
  privateIp: string;
  /** Extra host facts for the server (KVM: the acceleration in use). */
  details?: Record<string, string>;
}

export interface HypervisorDriver {
  resources(): HostResources;
  /** Power state of every VM the hypervisor knows, reported on each ping. */
  reportStates(): VmPowerReport[];
  checkHealth(): Promise<CommandResult<'checkHealth'>>;
  hostStats(): Promise<CommandResult<'getHostStats'>>;
  vmStats(names: string[]): Promise<CommandResult<'getVmStats'>>;
  startVm(vm: VmSpec): Promise<{ state: PowerState; vncPort?: number }>;
  stopVm(name: string, force: boolean): Promise<void>;
  rebootVm(name: string): Promise<void>;
  /** Gets ready to receive `vm`; a KVM destination answers the port it listens on. */
  prepareMigration(vm: VmSpec): Promise<CommandResult<'prepareMigration'>>;
  migrateVm(name: string, destination: { host: string; address?: string; port?: number }): Promise<void>;
  /** Hot-plugs a NIC into a running VM; a NIC with that MAC already there succeeds. */
  plugNic(vm: string, nic: ParsedPayload<'plugNic'>['nic']): Promise<void>;
  /** Hot-unplugs the running VM's NIC with that MAC; one that is not there succeeds. */
  unplugNic(vm: string, mac: string): Promise<void>;
  /**
   * Moves a running VM's disk to another pool while the guest runs (migrateVolume
   * livemigrate=true); a hypervisor without it refuses the command.
   */
  moveVolumeLive?(p: ParsedPayload<'moveVolumeLive'>): Promise<CommandResult<'moveVolumeLive'>>;
  attachVolume(vm: string, disk: ParsedPayload<'attachVolume'>['disk']): Promise<void>;
  detachVolume(vm: string, disk: ParsedPayload<'detachVolume'>['disk']): Promise<void>;
  /**
   * A byte stream to the running VM's console (its VNC server, RFB), for the console proxy. Fails
   * with a DriverError when the VM is not running here.
   */
  openConsole(vm: string): Promise<Duplex>;
  /** The last `maxBytes` of the VM's serial console output; empty when there is none here. */
  consoleOutput(vm: string, maxBytes: number): Promise<Buffer>;
}

export interface StorageDriver {
  createVolume(p: ParsedPayload<'createVolume'>): Promise<CommandResult<'createVolume'>>;
  createVolumeFromTemplate(
    p: ParsedPayload<'createVolumeFromTemplate'>,
  ): Promise<CommandResult<'createVolumeFromTemplate'>>;
  resizeVolume(p: ParsedPayload<'resizeVolume'>): Promise<CommandResult<'resizeVolume'>>;
  deleteVolume(p: ParsedPayload<'deleteVolume'>): Promise<void>;
  /** Copies a volume no running VM uses to another pool (the source stays). */
  copyVolume(p: ParsedPayload<'copyVolume'>): Promise<CommandResult<'copyVolume'>>;
  createSnapshot(p: ParsedPayload<'createSnapshot'>): Promise<CommandResult<'createSnapshot'>>;
  deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>): Promise<void>;
  revertSnapshot(p: ParsedPayload<'revertSnapshot'>): Promise<void>;
  /** Removes the pool's copies of these templates (before the pool is deleted); optional. */
  deleteTemplateCopies?(pool: ParsedPayload<'getPoolStats'>['pool'], templates: string[]): Promise<void>;
  /** A primary pool's size and use as its backend reports them. */
  poolStats(pool: ParsedPayload<'getPoolStats'>['pool']): Promise<CommandResult<'getPoolStats'>>;
}

/** One pool type's storage on a host; copies between pools are left to the host's dispatcher. */
export type PoolTypeStorage = Omit<StorageDriver, 'copyVolume'>;

/**
 * Guest networking on the host: bridges, routers and security group filtering. A host without
 * it answers these commands as unsupported.
 */
export interface NetworkDriver {
  setupNetwork(network: GuestNetwork): Promise<void>;
  teardownNetwork(network: GuestNetwork): Promise<void>;
  startRouter(router: RouterSpec): Promise<void>;
  stopRouter(name: string): Promise<void>;
  updateRouter(p: ParsedPayload<'updateRouter'>): Promise<void>;
  /** What a running router holds of its VMs, condensed (refused when it does not run here). */
  routerDigest(p: ParsedPayload<'routerDigest'>): Promise<CommandResult<'routerDigest'>>;
  /** Replaces a running router's public addresses and rules (refused when it does not run here). */
  applyRouterRules(p: ParsedPayload<'applyRouterRules'>): Promise<CommandResult<'applyRouterRules'>>;
  /** Replaces a running router's VPNs; answers its site-to-site connections' states. */
  applyRouterVpn(p: ParsedPayload<'applyRouterVpn'>): Promise<CommandResult<'applyRouterVpn'>>;
  routerVpnStatus(name: string): Promise<CommandResult<'routerVpnStatus'>>;
  applySecurityRules(p: ParsedPayload<'applySecurityRules'>): Promise<void>;
}

/** One host the agent presents to the management server. */
/** Whole small files of a pool, however the host reaches it: the HA heartbeat's records. */
export interface PoolRecords {
  readText(name: string): Promise<string>;
  /** Replaces the file whole (written aside, then renamed), making its directory if needed. */
  writeText(name: string, text: string): Promise<void>;
}

export interface HostDriver {
  /** The host's name, its identity towards the server (addHost's url names it). */
  readonly name: string;
  readonly hypervisor: HypervisorDriver;
  readonly storage: StorageDriver;
  readonly network?: NetworkDriver;
  /**
   * Wraps every command run on this host. The simulator uses it for latency and injected failures;
   * real drivers leave it out.
   */
  around?<T>(kind: string, run: () => Promise<T>): Promise<T>;
  /** Simulator only: see the configureSimulator command. */
  configure?(p: ParsedPayload<'configureSimulator'>): void;
  /**
   * How this host reaches a pool's files, when that is not simply `pool.path` as a directory (KVM:
   * an NFS pool mounted at /mnt/<uuid> or reached in user space). Without it, the heartbeat takes
   * the pool's path as a directory of this host.
   */
  poolRecords?(pool: StorageLocation): Promise<PoolRecords>;
}

/** A command failure the driver reports to the server (as opposed to an agent bug). */
export class DriverError extends Error {}
