/**
 * Volumes as qcow2 files named by volume uuid in a pool's files, however the host reaches them
 * (pool-files.ts: a directory, a mounted NFS export, or an export QEMU reaches through libnfs). A
 * template is copied from secondary storage into the pool once (template-<uuid>.qcow2) and VMs
 * get linked clones of it. Snapshots are backed up as flat images. Every file appears under its
 * final name by rename, so a crash or a concurrent retry never exposes a half-written image.
 * Secondary storage (templates, snapshot backups) is a directory the host has; a path the server
 * gives is taken as such when absolute, and as a file of the pool when relative (NFS pools).
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { CommandResult, ParsedPayload, StorageLocation } from '@nimbostack/protocol';
import { DriverError, type StorageDriver } from '../driver.ts';
import { imageInfo, run } from './exec.ts';
import type { VmDisk } from './machine.ts';
import { DirectoryFiles, type PoolAccess, type PoolFiles } from './pool-files.ts';
import { copyVerified, withVolumeStore } from './volume-store.ts';

/** What storage needs from the hypervisor side for volumes attached to running VMs. */
export interface LiveDisks {
  diskInUse(path: string): { vm: string; disk: VmDisk } | undefined;
  liveResize(vm: string, disk: VmDisk, sizeBytes: number): Promise<void>;
  withFrozenImage(vm: string, disk: VmDisk, copy: () => Promise<void>): Promise<void>;
}

const tmpName = (path: string) => `${path}.tmp-${process.pid}-${Date.now()}`;

/** A file given by path: absolute ones are on this host (secondary storage), others in the pool. */
function located(files: PoolFiles, path: string): { files: PoolFiles; name: string } {
  return isAbsolute(path) ? { files: new DirectoryFiles(dirname(path)), name: path } : { files, name: path };
}

/** Writes `name` through `produce(tmp image)` then renames it into place. */
async function atomically(
  files: PoolFiles,
  name: string,
  produce: (tmp: string) => Promise<unknown>,
): Promise<void> {
  if (isAbsolute(name)) mkdirSync(dirname(name), { recursive: true });
  else await files.makeDir(dirname(name));
  const tmp = tmpName(name);
  try {
    await produce(files.image(tmp));
    await files.rename(tmp, name);
  } finally {
    await files.remove(tmp).catch(() => undefined);
  }
}

export class PoolStorage implements StorageDriver {
  constructor(
    private readonly live: LiveDisks,
    private readonly pools: PoolAccess,
  ) {}

  private files(pool: StorageLocation): Promise<PoolFiles> {
    return this.pools.files(pool);
  }

  private async result(files: PoolFiles, name: string) {
    return { path: files.recorded(name), sizeBytes: (await imageInfo(files.image(name))).virtualSize };
  }

  async createVolume(p: ParsedPayload<'createVolume'>): Promise<CommandResult<'createVolume'>> {
    const files = await this.files(p.pool);
    const name = p.volumeUuid;
    if (!(await files.exists(name))) {
      if (p.fromSnapshot) {
        const from = located(files, p.fromSnapshot);
        if (!(await from.files.exists(from.name)))
          throw new DriverError(`snapshot ${p.fromSnapshot} does not exist`);
        await atomically(files, name, async (tmp) => {
          await run('qemu-img', ['convert', '-O', 'qcow2', from.files.image(from.name), tmp], 1_800_000);
          if ((await imageInfo(tmp)).virtualSize < p.sizeBytes)
            await run('qemu-img', ['resize', '-f', 'qcow2', tmp, String(p.sizeBytes)]);
        });
      } else
        await atomically(files, name, (tmp) =>
          run('qemu-img', ['create', '-q', '-f', 'qcow2', tmp, String(p.sizeBytes)]),
        );
    }
    return this.result(files, name);
  }

  async createVolumeFromTemplate(
    p: ParsedPayload<'createVolumeFromTemplate'>,
  ): Promise<CommandResult<'createVolumeFromTemplate'>> {
    const files = await this.files(p.pool);
    const name = p.volumeUuid;
    if (!(await files.exists(name))) {
      const base = files.image(await this.templateInPool(files, p));
      const size = Math.max(p.sizeBytes ?? 0, (await imageInfo(base)).virtualSize);
      await atomically(files, name, (tmp) =>
        run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, tmp, String(size)]),
      );
    }
    return this.result(files, name);
  }

  /** The pool's copy of the template, made on first use: all of the pool's clones share it. */
  private async templateInPool(
    files: PoolFiles,
    p: ParsedPayload<'createVolumeFromTemplate'>,
  ): Promise<string> {
    const copy = `template-${p.template.uuid}.qcow2`;
    if (await files.exists(copy)) return copy;
    const source = isAbsolute(p.template.path)
      ? p.template.path
      : p.templateStore
        ? join(p.templateStore.path, p.template.path)
        : undefined;
    if (!source)
      throw new DriverError(`template ${p.template.uuid}: a relative path needs its templateStore`);
    if (!existsSync(source)) throw new DriverError(`template ${p.template.uuid} not found at ${source}`);
    const { format } = await imageInfo(source);
    await atomically(files, copy, (tmp) =>
      run('qemu-img', ['convert', '-f', format, '-O', 'qcow2', source, tmp], 1_800_000),
    );
    return copy;
  }

  async resizeVolume(p: ParsedPayload<'resizeVolume'>): Promise<CommandResult<'resizeVolume'>> {
    const files = await this.files(p.pool);
    if (!(await files.exists(p.path))) throw new DriverError(`volume ${p.path} does not exist`);
    const image = files.image(p.path);
    const size = (await imageInfo(image)).virtualSize;
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
        image,
        String(p.newSizeBytes),
      ]);
    return { sizeBytes: (await imageInfo(image)).virtualSize };
  }

  /**
   * A standalone copy on another pool, of any type this host reaches (volume-store.ts: a linked
   * clone's template folded in, checked against the source before it is answered).
   */
  async copyVolume(p: ParsedPayload<'copyVolume'>): Promise<CommandResult<'copyVolume'>> {
    const use = this.live.diskInUse(p.source.path);
    if (use) throw new DriverError(`volume ${p.source.path} is in use by running VM ${use.vm}`);
    return withVolumeStore(this.pools, p.source.pool, (source) =>
      withVolumeStore(this.pools, p.pool, (target) =>
        copyVerified({
          source: { store: source, path: p.source.path },
          target: { store: target, name: p.volumeUuid },
        }),
      ),
    );
  }

  async deleteVolume(p: ParsedPayload<'deleteVolume'>) {
    const use = this.live.diskInUse(p.path);
    if (use) throw new DriverError(`volume ${p.path} is in use by running VM ${use.vm}`);
    await (await this.files(p.pool)).remove(p.path);
  }

  /**
   * Backs the volume up as a flat qcow2 (its template folded in) on secondary storage, or in the
   * pool's snapshots directory. A volume of a running VM is copied while the guest writes to a
   * temporary overlay (live external snapshot), then the overlay is committed back.
   */
  async createSnapshot(p: ParsedPayload<'createSnapshot'>): Promise<CommandResult<'createSnapshot'>> {
    const pool = await this.files(p.pool);
    const target = p.secondary
      ? { files: new DirectoryFiles(p.secondary.path), name: join('snapshots', `${p.snapshotUuid}.qcow2`) }
      : { files: pool, name: join('snapshots', `${p.snapshotUuid}.qcow2`) };
    if (!(await target.files.exists(target.name))) {
      const source = located(pool, p.volumePath);
      if (!(await source.files.exists(source.name)))
        throw new DriverError(`volume ${p.volumePath} does not exist`);
      const copy = (shared: boolean) =>
        atomically(target.files, target.name, (tmp) =>
          run(
            'qemu-img',
            ['convert', ...(shared ? ['-U'] : []), '-O', 'qcow2', source.files.image(source.name), tmp],
            1_800_000,
          ),
        );
      const use = this.live.diskInUse(p.volumePath);
      if (use) await this.live.withFrozenImage(use.vm, use.disk, () => copy(true));
      else await copy(false);
    }
    return this.result(target.files, target.name);
  }

  async deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>) {
    // A backup on secondary storage needs nothing of the pool (which this host may not reach).
    if (isAbsolute(p.path)) rmSync(p.path, { force: true });
    else await (await this.files(p.pool)).remove(p.path);
  }

  /** Replaces the volume's content by the snapshot's, keeping a linked clone linked to its template. */
  async revertSnapshot(p: ParsedPayload<'revertSnapshot'>) {
    const files = await this.files(p.pool);
    const snapshot = located(files, p.snapshotPath);
    if (!(await snapshot.files.exists(snapshot.name)))
      throw new DriverError(`snapshot ${p.snapshotPath} does not exist`);
    const use = this.live.diskInUse(p.volumePath);
    if (use) throw new DriverError(`stop VM ${use.vm} before reverting its volume ${p.volumePath}`);
    const backing = (await files.exists(p.volumePath))
      ? (await imageInfo(files.image(p.volumePath))).backingFile
      : undefined;
    await atomically(files, p.volumePath, (tmp) =>
      run(
        'qemu-img',
        [
          'convert',
          '-O',
          'qcow2',
          ...(backing ? ['-B', backing, '-F', 'qcow2'] : []),
          snapshot.files.image(snapshot.name),
          tmp,
        ],
        1_800_000,
      ),
    );
  }

  async deleteTemplateCopies(pool: StorageLocation, templates: string[]) {
    const files = await this.files(pool);
    for (const uuid of templates) await files.remove(`template-${uuid}.qcow2`);
  }

  /** The pool's size and use as its backend reports them (statfs, or the NFS server's FSSTAT). */
  async poolStats(pool: StorageLocation): Promise<CommandResult<'getPoolStats'>> {
    return (await this.files(pool)).stats();
  }
}
