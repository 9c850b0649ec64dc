/**
 * Volumes of Ceph RBD pools (rbd.ts reaches the pool). A volume is a raw RBD image named by its
 * uuid. A template is imported into the pool once, as image template-<uuid> with a protected
 * snapshot `base`, and every ROOT disk made from it is an `rbd clone` of that snapshot: a deploy
 * costs the same whatever the template's size. Snapshots are RBD snapshots named by the
 * snapshot's uuid: with secondary storage the snapshot is exported there as a flat qcow2 (the
 * backup) and then dropped from the pool, as the file pools' backups; without (VM snapshots) it
 * stays in the pool as image@uuid and a revert is an `rbd snap rollback`. An image appears under
 * its final name by `rbd mv`, so a crash or a concurrent retry never exposes a half-written one.
 */
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { CommandResult, ParsedPayload, StorageLocation } from '@nimbostack/protocol';
import { DriverError, type StorageDriver } from '../driver.ts';
import { imageInfo, run } from './exec.ts';
import { checkName, type RbdSession, withRbd } from './rbd.ts';
import type { LiveDisks } from './storage.ts';

const COPY_TIMEOUT = 1_800_000;
/** The protected snapshot of a template's image that ROOT disks are cloned from. */
export const TEMPLATE_SNAP = 'base';
export const templateImage = (uuid: string) => `template-${uuid}`;
const tmpName = (name: string) => `${name}.tmp-${process.pid}-${Date.now()}`;

/** `image@snap`: a snapshot kept in the pool, as the server records it. */
function parseKept(path: string): { image: string; snap: string } | undefined {
  const m = /^([^@/]+)@([^@/]+)$/.exec(path);
  return m ? { image: m[1], snap: m[2] } : undefined;
}

/** Writes a file on this host through `produce(tmp)`, then renames it into place. */
async function fileAtomically(path: string, produce: (tmp: string) => Promise<unknown>): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await produce(tmp);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Makes image `name` through `produce(tmp)` (which creates the tmp image), then renames it. */
async function imageAtomically(s: RbdSession, name: string, produce: (tmp: string) => Promise<unknown>) {
  const tmp = tmpName(name);
  try {
    await produce(tmp);
    await s.rbd(['mv', s.spec(tmp), s.spec(name)]);
  } catch (err) {
    await s.remove(tmp).catch(() => undefined);
    throw err;
  }
}

export class RbdStorage implements StorageDriver {
  /** Template imports under way, by pool and template: one per agent (others wait for it). */
  private readonly importing = new Map<string, Promise<void>>();

  constructor(private readonly live: LiveDisks) {}

  private async result(s: RbdSession, name: string) {
    const info = await s.info(name);
    if (!info) throw new DriverError(`RBD image ${s.spec(name)} is not there`);
    return { path: s.recorded(name), sizeBytes: info.size };
  }

  /** What qemu-img opens for a file the server names on this host, or a snapshot kept in the pool. */
  private source(s: RbdSession, path: string): string {
    if (isAbsolute(path)) {
      if (!existsSync(path)) throw new DriverError(`${path} does not exist`);
      return path;
    }
    const kept = parseKept(path);
    return kept ? s.image(kept.image, kept.snap) : s.image(checkName(path));
  }

  async createVolume(p: ParsedPayload<'createVolume'>): Promise<CommandResult<'createVolume'>> {
    return withRbd(p.pool, async (s) => {
      const name = checkName(p.volumeUuid);
      if (!(await s.exists(name))) {
        if (p.fromSnapshot) {
          const from = this.source(s, p.fromSnapshot);
          await imageAtomically(s, name, async (tmp) => {
            await run('qemu-img', ['convert', '-O', 'raw', from, s.image(tmp)], COPY_TIMEOUT);
            const info = await s.info(tmp);
            if (info && info.size < p.sizeBytes) await s.resize(tmp, p.sizeBytes);
          });
        } else await s.rbd(['create', '--size', `${p.sizeBytes}B`, s.spec(name)]);
      }
      return this.result(s, name);
    });
  }

  async createVolumeFromTemplate(
    p: ParsedPayload<'createVolumeFromTemplate'>,
  ): Promise<CommandResult<'createVolumeFromTemplate'>> {
    return withRbd(p.pool, async (s) => {
      const name = checkName(p.volumeUuid);
      const base = await this.templateInPool(s, p);
      if (!(await s.exists(name))) await s.rbd(['clone', s.spec(base, TEMPLATE_SNAP), s.spec(name)]);
      // Grown after the clone; a retry after a crash in between finds it small and grows it.
      const info = await s.info(name);
      if (info && p.sizeBytes && info.size < p.sizeBytes) await s.resize(name, p.sizeBytes);
      return this.result(s, name);
    });
  }

  /** The pool's image of the template with its protected snapshot, imported on first use. */
  private async templateInPool(s: RbdSession, p: ParsedPayload<'createVolumeFromTemplate'>): Promise<string> {
    const name = templateImage(checkName(p.template.uuid, 'template'));
    const key = `${p.pool.uuid}/${name}`;
    for (;;) {
      const pending = this.importing.get(key);
      if (!pending) break;
      await pending.catch(() => undefined);
    }
    if ((await s.snapshots(name).catch(() => [])).some((x) => x.name === TEMPLATE_SNAP && x.protected))
      return name;
    const work = this.importTemplate(s, p, name).finally(() => this.importing.delete(key));
    this.importing.set(key, work);
    await work;
    return name;
  }

  private async importTemplate(
    s: RbdSession,
    p: ParsedPayload<'createVolumeFromTemplate'>,
    name: string,
  ): Promise<void> {
    const source = isAbsolute(p.template.path)
      ? p.template.path
      : p.templateStore
        ? join(p.templateStore.path, p.template.path)
        : undefined;
    if (!source)
      throw new DriverError(`template ${p.template.uuid}: a relative path needs its templateStore`);
    if (!existsSync(source)) throw new DriverError(`template ${p.template.uuid} not found at ${source}`);
    const { format } = await imageInfo(source);
    const tmp = tmpName(name);
    try {
      await run('qemu-img', ['convert', '-f', format, '-O', 'raw', source, s.image(tmp)], COPY_TIMEOUT);
      await s.rbd(['snap', 'create', s.spec(tmp, TEMPLATE_SNAP)]);
      await s.rbd(['snap', 'protect', s.spec(tmp, TEMPLATE_SNAP)]);
      await s.rbd(['mv', s.spec(tmp), s.spec(name)]);
    } catch (err) {
      await this.dropTemplate(s, tmp).catch(() => undefined);
      // Another host imported it meanwhile: theirs serves.
      if ((await s.snapshots(name).catch(() => [])).some((x) => x.name === TEMPLATE_SNAP && x.protected))
        return;
      throw err;
    }
  }

  /** Removes a template image: unprotect its snapshot (refused while clones remain), then the image. */
  private async dropTemplate(s: RbdSession, name: string): Promise<void> {
    if (!(await s.exists(name))) return;
    for (const snap of await s.snapshots(name)) {
      if (!snap.protected) continue;
      const children = JSON.parse(await s.rbd(['children', '--format', 'json', s.spec(name, snap.name)])) as {
        pool: string;
        image: string;
      }[];
      if (children.length > 0)
        throw new DriverError(
          `template copy ${s.spec(name)} still has clones: ${children.map((c) => `${c.pool}/${c.image}`).join(', ')}`,
        );
      await s.rbd(['snap', 'unprotect', s.spec(name, snap.name)]);
    }
    await s.remove(name);
  }

  async resizeVolume(p: ParsedPayload<'resizeVolume'>): Promise<CommandResult<'resizeVolume'>> {
    return withRbd(p.pool, async (s) => {
      const name = checkName(p.path);
      const info = await s.info(name);
      if (!info) throw new DriverError(`volume ${p.path} does not exist`);
      if (p.newSizeBytes === info.size) return { sizeBytes: info.size };
      if (p.newSizeBytes < info.size && !p.shrinkOk)
        throw new DriverError(
          `shrinking volume ${p.path} from ${info.size} to ${p.newSizeBytes} bytes needs shrinkOk`,
        );
      const use = this.live.diskInUse(p.path);
      // A running VM's QEMU resizes the image through librbd, and the guest sees the new size.
      if (use) await this.live.liveResize(use.vm, use.disk, p.newSizeBytes);
      else await s.resize(name, p.newSizeBytes, p.newSizeBytes < info.size);
      return { sizeBytes: (await s.info(name))!.size };
    });
  }

  /** A flat copy into an RBD pool (a clone's template folded in) from an RBD or file pool's image. */
  async copyVolume(p: ParsedPayload<'copyVolume'>): Promise<CommandResult<'copyVolume'>> {
    if (p.source.pool.type !== 'RBD')
      throw new DriverError(
        'copies between RBD and other pool types are made by the host, not the RBD store',
      );
    const use = this.live.diskInUse(p.source.path);
    if (use) throw new DriverError(`volume ${p.source.path} is in use by running VM ${use.vm}`);
    return withRbd(p.source.pool, (src) =>
      withRbd(p.pool, async (s) => {
        const name = checkName(p.volumeUuid);
        if (!(await s.exists(name))) {
          if (!(await src.exists(checkName(p.source.path))))
            throw new DriverError(`volume ${p.source.path} does not exist`);
          await imageAtomically(s, name, (tmp) =>
            run(
              'qemu-img',
              ['convert', '-f', 'raw', '-O', 'raw', src.image(p.source.path), s.image(tmp)],
              COPY_TIMEOUT,
            ),
          );
        }
        return this.result(s, name);
      }),
    );
  }

  async deleteVolume(p: ParsedPayload<'deleteVolume'>) {
    const use = this.live.diskInUse(p.path);
    if (use) throw new DriverError(`volume ${p.path} is in use by running VM ${use.vm}`);
    await withRbd(p.pool, (s) => s.remove(checkName(p.path)));
  }

  /**
   * An RBD snapshot of the volume (point in time even while a VM writes: librbd has the image's
   * lock holder, the VM's QEMU, flush and take it). With secondary storage it is exported there
   * as a flat qcow2 and then dropped; without, it stays in the pool (image@uuid).
   */
  async createSnapshot(p: ParsedPayload<'createSnapshot'>): Promise<CommandResult<'createSnapshot'>> {
    const snap = checkName(p.snapshotUuid, 'snapshot');
    return withRbd(p.pool, async (s) => {
      const backup = p.secondary ? join(p.secondary.path, 'snapshots', `${snap}.qcow2`) : undefined;
      // A template made from a snapshot's backup: a copy from file to file.
      if (isAbsolute(p.volumePath)) {
        if (!backup) throw new DriverError(`${p.volumePath}: a file is copied to secondary storage only`);
        if (!existsSync(backup))
          await fileAtomically(backup, (tmp) =>
            run('qemu-img', ['convert', '-O', 'qcow2', this.source(s, p.volumePath), tmp], COPY_TIMEOUT),
          );
        return { path: backup, sizeBytes: (await imageInfo(backup)).virtualSize };
      }
      const image = checkName(p.volumePath);
      if (backup && existsSync(backup)) {
        await this.dropSnapshot(s, image, snap);
        return { path: backup, sizeBytes: (await imageInfo(backup)).virtualSize };
      }
      if (!(await s.exists(image))) throw new DriverError(`volume ${p.volumePath} does not exist`);
      const taken = (await s.snapshots(image)).find((x) => x.name === snap);
      if (!taken) await s.rbd(['snap', 'create', s.spec(image, snap)]);
      if (!backup) {
        const size = taken?.size ?? (await s.snapshots(image)).find((x) => x.name === snap)!.size;
        return { path: `${image}@${snap}`, sizeBytes: size };
      }
      await fileAtomically(backup, (tmp) =>
        run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', s.image(image, snap), tmp], COPY_TIMEOUT),
      );
      await this.dropSnapshot(s, image, snap);
      return { path: backup, sizeBytes: (await imageInfo(backup)).virtualSize };
    });
  }

  private async dropSnapshot(s: RbdSession, image: string, snap: string): Promise<void> {
    if (!(await s.exists(image))) return;
    if ((await s.snapshots(image)).some((x) => x.name === snap))
      await s.rbd(['snap', 'rm', '--no-progress', s.spec(image, snap)]);
  }

  async deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>) {
    // A backup on secondary storage needs nothing of the pool (which this host may not reach).
    if (isAbsolute(p.path)) {
      rmSync(p.path, { force: true });
      return;
    }
    const kept = parseKept(p.path);
    if (!kept) throw new DriverError(`${p.path} is not a snapshot of RBD pool ${p.pool.uuid}`);
    await withRbd(p.pool, (s) =>
      this.dropSnapshot(s, checkName(kept.image), checkName(kept.snap, 'snapshot')),
    );
  }

  /**
   * A snapshot kept in the pool: `rbd snap rollback`. A backup: the image takes the backup's size
   * and content (written into it, so its own snapshots and a clone's parent stay).
   */
  async revertSnapshot(p: ParsedPayload<'revertSnapshot'>) {
    const image = checkName(p.volumePath);
    const use = this.live.diskInUse(p.volumePath);
    if (use) throw new DriverError(`stop VM ${use.vm} before reverting its volume ${p.volumePath}`);
    await withRbd(p.pool, async (s) => {
      const info = await s.info(image);
      if (!info) throw new DriverError(`volume ${p.volumePath} does not exist`);
      const kept = parseKept(p.snapshotPath);
      if (kept) {
        if (kept.image !== image)
          throw new DriverError(`snapshot ${p.snapshotPath} is not one of volume ${p.volumePath}`);
        await s.rbd(
          ['snap', 'rollback', '--no-progress', s.spec(image, checkName(kept.snap, 'snapshot'))],
          COPY_TIMEOUT,
        );
        return;
      }
      const from = this.source(s, p.snapshotPath);
      const { virtualSize, format } = await imageInfo(from);
      if (virtualSize !== info.size) await s.resize(image, virtualSize, virtualSize < info.size);
      await run('qemu-img', ['convert', '-n', '-f', format, '-O', 'raw', from, s.image(image)], COPY_TIMEOUT);
    });
  }

  /** Removes the pool's template images; one with clones left is refused (its clones need it). */
  async deleteTemplateCopies(pool: StorageLocation, templates: string[]) {
    await withRbd(pool, async (s) => {
      const present = new Set(await s.list());
      for (const uuid of templates) {
        const name = templateImage(uuid);
        if (present.has(name)) await this.dropTemplate(s, name);
      }
    });
  }

  /** The RADOS pool's size and use as Ceph reports them. */
  async poolStats(pool: StorageLocation): Promise<CommandResult<'getPoolStats'>> {
    return withRbd(pool, (s) => s.stats());
  }
}
