/**
 * The commands a management server sends to a host agent, each with a payload schema and an
 * answer (result) schema. Every command is idempotent on the agent: repeating one that already
 * took effect (starting a running VM, deleting a missing volume) succeeds, so the server may retry
 * after a timeout without knowing whether the first attempt ran.
 */
import { z } from 'zod';

const name = z.string().min(1).max(255);
const bytes = z.number().int().nonnegative();

/** Power states as CloudStack reports them from hypervisors. */
export const PowerState = z.enum(['PowerOn', 'PowerOff', 'PowerUnknown']);
export type PowerState = z.infer<typeof PowerState>;

export const VmPowerReport = z.object({ name, state: PowerState });
export type VmPowerReport = z.infer<typeof VmPowerReport>;

/** Where a volume lives: a primary storage pool (or secondary store) as the agent reaches it. */
export const StorageLocation = z.object({
  uuid: z.string().min(1).max(64),
  type: z.enum(['Filesystem', 'NetworkFilesystem', 'SharedMountPoint', 'Simulator']),
  path: z.string().min(1).max(1024),
});
export type StorageLocation = z.infer<typeof StorageLocation>;

export const VmDisk = z.object({
  volumeUuid: z.string().min(1).max(64),
  path: z.string().min(1).max(1024),
  pool: StorageLocation,
  deviceId: z.number().int().nonnegative(),
  type: z.enum(['ROOT', 'DATADISK', 'ISO']),
});

export const VmNic = z.object({
  mac: z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i),
  ip: z.string().max(64).optional(),
  network: z.string().max(255).optional(),
  vlan: z.number().int().min(0).max(4095).optional(),
  /** The host bridge the NIC plugs into (KVM: a tap device on it); without one the NIC has no link. */
  bridge: z.string().min(1).max(15).optional(),
  deviceId: z.number().int().nonnegative(),
});

export const VmSpec = z.object({
  name,
  uuid: z.string().min(1).max(64),
  cpus: z.number().int().positive(),
  cpuMhz: z.number().int().positive(),
  memoryBytes: bytes,
  disks: z.array(VmDisk).default([]),
  nics: z.array(VmNic).default([]),
  userData: z.string().optional(),
});
export type VmSpec = z.infer<typeof VmSpec>;

const empty = z.object({}).strict();
const nothing = z.object({});

/**
 * Command kinds with their payload and answer schemas. Adding a kind here makes it sendable by the
 * server and dispatchable on the agent; agents answer kinds they do not know with `unsupported`.
 */
export const COMMANDS = {
  /** Acknowledges a host's startup: the agent may begin pinging for it. */
  ready: {
    payload: z.object({ hostId: z.string().min(1).max(64), pingIntervalMs: z.number().int().positive() }),
    result: nothing,
  },
  /** Drops one host's session; the agent sends a fresh startup for it (reconnectHost). */
  reconnect: { payload: empty, result: nothing },
  checkHealth: {
    payload: empty,
    result: z.object({ healthy: z.boolean(), detail: z.string().optional() }),
  },
  getHostStats: {
    payload: empty,
    result: z.object({
      cpuUtilization: z.number().min(0).max(100),
      memoryUsedBytes: bytes,
      networkReadKbs: z.number().nonnegative(),
      networkWriteKbs: z.number().nonnegative(),
    }),
  },
  getVmStats: {
    payload: z.object({ vms: z.array(name) }),
    result: z.object({
      stats: z.array(
        z.object({
          name,
          cpuUtilization: z.number().min(0).max(100),
          memoryBytes: bytes,
          networkReadKbs: z.number().nonnegative(),
          networkWriteKbs: z.number().nonnegative(),
          diskReadBytes: bytes,
          diskWriteBytes: bytes,
        }),
      ),
    }),
  },
  startVm: {
    payload: z.object({ vm: VmSpec }),
    result: z.object({ state: PowerState, vncPort: z.number().int().optional() }),
  },
  stopVm: { payload: z.object({ name, force: z.boolean().default(false) }), result: nothing },
  rebootVm: { payload: z.object({ name }), result: nothing },
  /**
   * Sent to the destination before migrateVm: it gets ready to receive the VM. A KVM destination
   * answers the TCP port it listens on for the VM's memory; the server passes it to migrateVm.
   */
  prepareMigration: {
    payload: z.object({ vm: VmSpec }),
    result: z.object({ port: z.number().int().min(1).max(65535).optional() }),
  },
  /** Sent to the source: moves the running VM to the destination host (its management address). */
  migrateVm: {
    payload: z.object({
      name,
      destination: z.object({
        host: name,
        address: z.string().max(255).optional(),
        port: z.number().int().min(1).max(65535).optional(),
      }),
    }),
    result: nothing,
  },
  attachVolume: { payload: z.object({ vm: name, disk: VmDisk }), result: nothing },
  detachVolume: { payload: z.object({ vm: name, disk: VmDisk }), result: nothing },
  createVolume: {
    payload: z.object({
      volumeUuid: z.string().min(1).max(64),
      sizeBytes: bytes,
      pool: StorageLocation,
      /** A snapshot backup (createSnapshot's path) the new volume starts as a copy of. */
      fromSnapshot: z.string().min(1).max(1024).optional(),
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  createVolumeFromTemplate: {
    payload: z.object({
      volumeUuid: z.string().min(1).max(64),
      sizeBytes: bytes.optional(),
      pool: StorageLocation,
      template: z.object({ uuid: z.string().min(1).max(64), path: z.string().max(1024), sizeBytes: bytes }),
      templateStore: StorageLocation.optional(),
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  resizeVolume: {
    payload: z.object({
      path: z.string().min(1).max(1024),
      pool: StorageLocation,
      newSizeBytes: bytes,
      shrinkOk: z.boolean().default(false),
    }),
    result: z.object({ sizeBytes: bytes }),
  },
  deleteVolume: {
    payload: z.object({ path: z.string().min(1).max(1024), pool: StorageLocation }),
    result: nothing,
  },
  /**
   * Copies a volume that no running VM uses to another pool (migrateVolume), as a standalone image
   * named by the volume's uuid. The source is left in place for the server to delete.
   */
  copyVolume: {
    payload: z.object({
      volumeUuid: z.string().min(1).max(64),
      source: z.object({ path: z.string().min(1).max(1024), pool: StorageLocation }),
      pool: StorageLocation,
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  createSnapshot: {
    payload: z.object({
      snapshotUuid: z.string().min(1).max(64),
      /** The volume, or a snapshot's backup to copy (a template made from a snapshot). */
      volumePath: z.string().min(1).max(1024),
      pool: StorageLocation,
      vm: name.optional(),
      /** Where the snapshot is backed up as a flat image (secondary storage); the pool when absent. */
      secondary: StorageLocation.optional(),
    }),
    result: z.object({ path: z.string(), sizeBytes: bytes }),
  },
  deleteSnapshot: {
    payload: z.object({ path: z.string().min(1).max(1024), pool: StorageLocation }),
    result: nothing,
  },
  revertSnapshot: {
    payload: z.object({
      snapshotPath: z.string().min(1).max(1024),
      volumePath: z.string().min(1),
      pool: StorageLocation,
    }),
    result: nothing,
  },
  /**
   * Simulator only: the next `count` commands of `kind` (or every one when count is absent) fail
   * with `message`, and/or take `latencyMs` longer. Real drivers answer `unsupported`.
   */
  configureSimulator: {
    payload: z.object({
      kind: z.string().min(1).max(64),
      count: z.number().int().positive().optional(),
      fail: z.boolean().default(false),
      message: z.string().max(1024).optional(),
      latencyMs: z.number().int().nonnegative().optional(),
    }),
    result: nothing,
  },
} as const;

export type CommandKind = keyof typeof COMMANDS;
export type CommandPayload<K extends CommandKind> = z.input<(typeof COMMANDS)[K]['payload']>;
export type ParsedPayload<K extends CommandKind> = z.output<(typeof COMMANDS)[K]['payload']>;
export type CommandResult<K extends CommandKind> = z.output<(typeof COMMANDS)[K]['result']>;

export const COMMAND_KINDS = Object.keys(COMMANDS) as CommandKind[];

export function isCommandKind(kind: string): kind is CommandKind {
  return Object.hasOwn(COMMANDS, kind);
}
