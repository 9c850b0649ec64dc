/**
 * Managed iSCSI pools on a KVM host: every volume is its own target with one LUN, which the
 * server's storage provider made on the storage server before the host is asked to use it (and
 * removes after). The host reaches a LUN in user space through QEMU's libiscsi
 * (iscsi://portal/<target>/<lun> for qemu-img, a blockdev `iscsi` node for QEMU): no kernel
 * initiator, no iscsiadm login, nothing to clean up on the host. A LUN is a raw block device, so
 * a ROOT disk is a full copy of its template (qemu-img convert -n into the LUN) rather than a
 * linked clone; a snapshot is a flat qcow2 copy of the LUN on secondary storage, and a revert
 * copies it back into the same LUN. docs/storage.md.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import {
  type CommandResult,
  iscsiVolumePath,
  type ParsedPayload,
  parseIscsiVolumePath,
  type StorageLocation,
} from '@nimbostack/protocol';
import { DriverError, type PoolTypeStorage } from '../driver.ts';
import { imageInfo, run } from './exec.ts';
import type { LiveDisks } from './storage.ts';

/** The iSCSI port when the pool names none. */
const ISCSI_PORT = 3260;
const COPY_TIMEOUT = 1_800_000;

/** The LUNs of one managed iSCSI pool as this host opens them (a volume store of raw images). */
export class IscsiLuns {
  readonly volumeFormat = 'raw' as const;
  readonly mayHoldData = true;
  private readonly portal: string;

  constructor(private readonly pool: StorageLocation) {
    if (!pool.host) throw new DriverError(`iSCSI pool ${pool.uuid} names no portal`);
    // An IPv6 portal goes in brackets, as in any URL.
    const host = pool.host.includes(':') ? `[${pool.host}]` : pool.host;
    this.portal = `${host}:${pool.port ?? ISCSI_PORT}`;
  }

  private lun(path: string): { target: string; lun: number } {
    // A move names a volume about to be filled by its uuid alone (VolumeStore), not its path.
    const recorded = path.includes('/') ? path : this.recorded(path);
    const lun = parseIscsiVolumePath(this.pool.path, recorded);
    if (!lun) throw new DriverError(`${path} is not a LUN of iSCSI pool ${this.pool.uuid}`);
    return lun;
  }

  image(path: string): string {
    const { target, lun } = this.lun(path);
    return `iscsi://${this.portal}/${target}/${lun}`;
  }

  blockFile(path: string, readOnly: boolean): Record<string, unknown> {
    const { target, lun } = this.lun(path);
    return { driver: 'iscsi', transport: 'tcp', portal: this.portal, target, lun, 'read-only': readOnly };
  }

  /** The volume's path (its target and LUN) as the server records it. */
  recorded(name: string): string {
    return iscsiVolumePath(this.pool.path, name);
  }

  /** Whether the target answers with the LUN; a target that is not there is false, other failures throw. */
  async exists(path: string): Promise<boolean> {
    try {
      await imageInfo(this.image(path));
      return true;
    } catch (err) {
      if (/Target not found|LUN.*(not|does not) exist|Invalid LUN/i.test((err as Error).message))
        return false;
      throw err;
    }
  }

  /** The provider on the server removes targets; a host has nothing to remove. */
  async remove(_path: string): Promise<void> {}

  /** The LUN the provider made for a copy to fill: it must be there and large enough. */
  async createEmpty(name: string, sizeBytes: number): Promise<void> {
    const size = await this.size(this.recorded(name));
    if (size < sizeBytes)
      throw new DriverError(
        `the LUN of volume ${name} holds ${size} bytes, fewer than the ${sizeBytes} needed`,
      );
  }

  async size(path: string): Promise<number> {
    if (!(await this.exists(path)))
      throw new DriverError(
        `volume ${path} is not on iSCSI portal ${this.portal}, or its target does not let this host in (tgt answers both as "target not found"): the provider makes the LUN first and lets the pool's initiator addresses in`,
      );
    return (await imageInfo(this.image(path))).virtualSize;
  }
}

/** Volume operations on managed iSCSI pools (the file pools' counterpart in storage.ts). */
export class IscsiVolumes implements PoolTypeStorage {
  constructor(private readonly live: LiveDisks) {}

  /** The LUN is blank as the provider made it, or filled from a snapshot backup or an upload. */
  async createVolume(p: ParsedPayload<'createVolume'>): Promise<CommandResult<'createVolume'>> {
    const luns = new IscsiLuns(p.pool);
    const path = luns.recorded(p.volumeUuid);
    const size = await luns.size(path);
    if (p.fromSnapshot) {
      if (!isAbsolute(p.fromSnapshot) || !existsSync(p.fromSnapshot))
        throw new DriverError(`snapshot ${p.fromSnapshot} is not on this host's secondary storage`);
      await this.fill(luns, path, p.fromSnapshot, size);
    }
    return { path, sizeBytes: size };
  }

  /** A ROOT disk: the template copied whole into the LUN (a LUN cannot be a linked clone). */
  async createVolumeFromTemplate(
    p: ParsedPayload<'createVolumeFromTemplate'>,
  ): Promise<CommandResult<'createVolumeFromTemplate'>> {
    const luns = new IscsiLuns(p.pool);
    const path = luns.recorded(p.volumeUuid);
    const size = await luns.size(path);
    const source = isAbsolute(p.template.path)
      ? p.template.path
      : p.templateStore
        ? join(p.templateStore.path, p.template.path)
        : undefined;
    if (!source)
      throw new DriverError(`template ${p.template.uuid}: a relative path needs its templateStore`);
    if (!existsSync(source)) throw new DriverError(`template ${p.template.uuid} not found at ${source}`);
    await this.fill(luns, path, source, size);
    return { path, sizeBytes: size };
  }

  /** Writes an image's guest-visible bytes into the LUN from its start (-n: the LUN exists). */
  private async fill(luns: IscsiLuns, path: string, source: string, lunSize: number): Promise<void> {
    const info = await imageInfo(source);
    if (info.virtualSize > lunSize)
      throw new DriverError(`${source} (${info.virtualSize} bytes) does not fit the ${lunSize}-byte LUN`);
    await run(
      'qemu-img',
      ['convert', '-n', '-f', info.format, '-O', 'raw', source, luns.image(path)],
      COPY_TIMEOUT,
    );
  }

  /**
   * The provider on the server has set the LUN's size already; a running VM's QEMU is told to read
   * it again (block_resize: its iscsi driver asks the target's capacity, and the guest sees the new
   * size). The size a new session reads is the answer, and it must be the one asked for.
   */
  async resizeVolume(p: ParsedPayload<'resizeVolume'>): Promise<CommandResult<'resizeVolume'>> {
    const luns = new IscsiLuns(p.pool);
    const size = await luns.size(p.path);
    if (size !== p.newSizeBytes)
      throw new DriverError(
        `the LUN of volume ${p.path} holds ${size} bytes, not the ${p.newSizeBytes} its provider was asked for`,
      );
    const use = this.live.diskInUse(p.path);
    if (use) await this.live.liveResize(use.vm, use.disk, p.newSizeBytes);
    return { sizeBytes: size };
  }

  /** The provider removes the target; the host only refuses while a VM here still uses it. */
  async deleteVolume(p: ParsedPayload<'deleteVolume'>): Promise<void> {
    const use = this.live.diskInUse(p.path);
    if (use) throw new DriverError(`volume ${p.path} is in use by running VM ${use.vm}`);
  }

  /**
   * A flat qcow2 copy of the LUN on secondary storage. A LUN a running VM writes to is copied
   * while the guest writes to a temporary overlay in the VM's folder, then committed back.
   */
  async createSnapshot(p: ParsedPayload<'createSnapshot'>): Promise<CommandResult<'createSnapshot'>> {
    if (!p.secondary)
      throw new DriverError(
        'a snapshot of a managed iSCSI volume needs secondary storage: a LUN holds one image',
      );
    const luns = new IscsiLuns(p.pool);
    const target = join(p.secondary.path, 'snapshots', `${p.snapshotUuid}.qcow2`);
    if (!existsSync(target)) {
      await luns.size(p.volumePath);
      mkdirSync(dirname(target), { recursive: true });
      const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
      const copy = async () => {
        await run(
          'qemu-img',
          ['convert', '-f', 'raw', '-O', 'qcow2', luns.image(p.volumePath), tmp],
          COPY_TIMEOUT,
        );
        renameSync(tmp, target);
      };
      try {
        const use = this.live.diskInUse(p.volumePath);
        if (use) await this.live.withFrozenImage(use.vm, use.disk, copy);
        else await copy();
      } finally {
        rmSync(tmp, { force: true });
      }
    }
    return { path: target, sizeBytes: (await imageInfo(target)).virtualSize };
  }

  async deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>): Promise<void> {
    if (!isAbsolute(p.path)) throw new DriverError(`snapshot ${p.path} is not on secondary storage`);
    rmSync(p.path, { force: true });
  }

  /** Copies the snapshot's bytes back into the volume's LUN; no VM may be using it. */
  async revertSnapshot(p: ParsedPayload<'revertSnapshot'>): Promise<void> {
    if (!isAbsolute(p.snapshotPath) || !existsSync(p.snapshotPath))
      throw new DriverError(`snapshot ${p.snapshotPath} does not exist`);
    const use = this.live.diskInUse(p.volumePath);
    if (use) throw new DriverError(`stop VM ${use.vm} before reverting its volume ${p.volumePath}`);
    const luns = new IscsiLuns(p.pool);
    await this.fill(luns, p.volumePath, p.snapshotPath, await luns.size(p.volumePath));
  }

  /** A managed iSCSI pool keeps no template copies (each ROOT LUN is a full copy). */
  async deleteTemplateCopies(): Promise<void> {}

  /** A managed pool's size is measured by its provider on the server, not by hosts. */
  async poolStats(pool: StorageLocation): Promise<CommandResult<'getPoolStats'>> {
    throw new DriverError(`iSCSI pool ${pool.uuid} is measured by its storage provider, not by hosts`);
  }
}
