/**
 * Volumes in directory pools (a local path, a SharedMountPoint, an NFS export the host has
 * mounted): qcow2 files named by volume uuid. A template is copied from secondary storage into the
 * pool once (template-<uuid>.qcow2) and VMs get linked clones of it. Snapshots are backed up as
 * flat images. Every file appears under its final name by rename, so a crash or a concurrent
 * retry never exposes a half-written image.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { CommandResult, ParsedPayload } from '@nimbostack/protocol';
import { DriverError, type StorageDriver } from '../driver.ts';
import { imageInfo, run } from './exec.ts';
import type { VmDisk } from './machine.ts';

/** What storage needs from the hypervisor side for volumes attached to running VMs. */
export interface LiveDisks {
  diskInUse(path: string): { vm: string; disk: VmDisk } | undefined;
  liveResize(vm: string, disk: VmDisk, sizeBytes: number): Promise<void>;
  withFrozenImage(vm: string, disk: VmDisk, copy: () => Promise<void>): Promise<void>;
}

type Pool = ParsedPayload<'createVolume'>['pool'];

function inPool(pool: Pool, path: string): string {
  if (pool.type === 'Simulator')
    throw new DriverError(`pool ${pool.uuid} is a simulator pool, not a directory`);
  return join(pool.path, path);
}

const tmpName = (path: string) => `${path}.tmp-${process.pid}-${Date.now()}`;

/** Writes `path` through `produce(tmp)` then renames it into place. */
async function atomically(path: string, produce: (tmp: string) => Promise<unknown>): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tmpName(path);
  try {
    await produce(tmp);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

export class DirectoryStorage implements StorageDriver {
  constructor(private readonly live: LiveDisks) {}

  async createVolume(p: ParsedPayload<'createVolume'>): Promise<CommandResult<'createVolume'>> {
    const path = inPool(p.pool, p.volumeUuid);
    if (!existsSync(path)) {
      if (p.fromSnapshot) {
        if (!existsSync(p.fromSnapshot)) throw new DriverError(`snapshot ${p.fromSnapshot} does not exist`);
        await atomically(path, async (tmp) => {
          await run('qemu-img', ['convert', '-O', 'qcow2', p.fromSnapshot!, tmp]);
          if ((await imageInfo(tmp)).virtualSize < p.sizeBytes)
            await run('qemu-img', ['resize', '-f', 'qcow2', tmp, String(p.sizeBytes)]);
        });
      } else
        await atomically(path, (tmp) =>
          run('qemu-img', ['create', '-q', '-f', 'qcow2', tmp, String(p.sizeBytes)]),
        );
    }
    return { path, sizeBytes: (await imageInfo(path)).virtualSize };
  }

  async createVolumeFromTemplate(
    p: ParsedPayload<'createVolumeFromTemplate'>,
  ): Promise<CommandResult<'createVolumeFromTemplate'>> {
    const path = inPool(p.pool, p.volumeUuid);
    if (!existsSync(path)) {
      const base = await this.templateInPool(p);
      const size = Math.max(p.sizeBytes ?? 0, (await imageInfo(base)).virtualSize);
      await atomically(path, (tmp) =>
        run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, tmp, String(size)]),
      );
    }
    return { path, sizeBytes: (await imageInfo(path)).virtualSize };
  }

  /** The pool's copy of the template, made on first use: all of the pool's clones share it. */
  private async templateInPool(p: ParsedPayload<'createVolumeFromTemplate'>): Promise<string> {
    const copy = inPool(p.pool, `template-${p.template.uuid}.qcow2`);
    if (existsSync(copy)) return copy;
    const source = isAbsolute(p.template.path)
      ? p.template.path
      : p.templateStore
        ? join(p.templateStore.path, p.template.path)
        : undefined;
    if (!source)
      throw new DriverError(`template ${p.template.uuid}: a relative path needs its templateStore`);
    if (!existsSync(source)) throw new DriverError(`template ${p.template.uuid} not found at ${source}`);
    const { format } = await imageInfo(source);
    await atomically(copy, (tmp) =>
      run('qemu-img', ['convert', '-f', format, '-O', 'qcow2', source, tmp], 1_800_000),
    );
    return copy;
  }

  async resizeVolume(p: ParsedPayload<'resizeVolume'>): Promise<CommandResult<'resizeVolume'>> {
    if (!existsSync(p.path)) throw new DriverError(`volume ${p.path} does not exist`);
    const size = (await imageInfo(p.path)).virtualSize;
    if (p.newSizeBytes === size) return { sizeBytes: size };
    if (p.newSizeBytes < size && !p.shrinkOk)
      throw new DriverError(
        `shrinking volume ${p.path} from ${size} to ${p.newSizeBytes} bytes needs shrinkOk`,
      );
    const use = this.live.diskInUse(p.path);
    if (use) await this.live.liveResize(use.vm, use.disk, p.newSizeBytes);
    else
      await run('qemu-img', [
        'resize',
        ...(p.newSizeBytes < size ? ['--shrink'] : []),
        '-f',
        'qcow2',
        p.path,
        String(p.newSizeBytes),
      ]);
    return { sizeBytes: (await imageInfo(p.path)).virtualSize };
  }

  /** A flat copy (a linked clone's template folded in), so the new pool needs no template copy. */
  async copyVolume(p: ParsedPayload<'copyVolume'>): Promise<CommandResult<'copyVolume'>> {
    const path = inPool(p.pool, p.volumeUuid);
    if (!existsSync(path)) {
      if (!existsSync(p.source.path)) throw new DriverError(`volume ${p.source.path} does not exist`);
      const use = this.live.diskInUse(p.source.path);
      if (use) throw new DriverError(`volume ${p.source.path} is in use by running VM ${use.vm}`);
      await atomically(path, (tmp) =>
        run('qemu-img', ['convert', '-O', 'qcow2', p.source.path, tmp], 1_800_000),
      );
    }
    return { path, sizeBytes: (await imageInfo(path)).virtualSize };
  }

  async deleteVolume(p: ParsedPayload<'deleteVolume'>) {
    const use = this.live.diskInUse(p.path);
    if (use) throw new DriverError(`volume ${p.path} is in use by running VM ${use.vm}`);
    rmSync(p.path, { force: true });
  }

  /**
   * Backs the volume up as a flat qcow2 (its template folded in) on secondary storage, or in the
   * pool's snapshots directory. A volume of a running VM is copied while the guest writes to a
   * temporary overlay (live external snapshot), then the overlay is committed back.
   */
  async createSnapshot(p: ParsedPayload<'createSnapshot'>): Promise<CommandResult<'createSnapshot'>> {
    const target = join((p.secondary ?? p.pool).path, 'snapshots', `${p.snapshotUuid}.qcow2`);
    if (!existsSync(target)) {
      if (!existsSync(p.volumePath)) throw new DriverError(`volume ${p.volumePath} does not exist`);
      const copy = (source: string, shared: boolean) =>
        atomically(target, (tmp) =>
          run('qemu-img', ['convert', ...(shared ? ['-U'] : []), '-O', 'qcow2', source, tmp], 1_800_000),
        );
      const use = this.live.diskInUse(p.volumePath);
      if (use) await this.live.withFrozenImage(use.vm, use.disk, () => copy(p.volumePath, true));
      else await copy(p.volumePath, false);
    }
    return { path: target, sizeBytes: (await imageInfo(target)).virtualSize };
  }

  async deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>) {
    rmSync(p.path, { force: true });
  }

  /** Replaces the volume's content by the snapshot's, keeping a linked clone linked to its template. */
  async revertSnapshot(p: ParsedPayload<'revertSnapshot'>) {
    if (!existsSync(p.snapshotPath)) throw new DriverError(`snapshot ${p.snapshotPath} does not exist`);
    const use = this.live.diskInUse(p.volumePath);
    if (use) throw new DriverError(`stop VM ${use.vm} before reverting its volume ${p.volumePath}`);
    const backing = existsSync(p.volumePath) ? (await imageInfo(p.volumePath)).backingFile : undefined;
    await atomically(p.volumePath, (tmp) =>
      run(
        'qemu-img',
        ['convert', '-O', 'qcow2', ...(backing ? ['-B', backing, '-F', 'qcow2'] : []), p.snapshotPath, tmp],
        1_800_000,
      ),
    );
  }
}
