/**
 * Container volumes in directory pools.
 *
 * - A ROOT volume is a directory, <pool>/<volume uuid>/, holding volume.json and the container's
 *   root file system: on hosts where the pool's file system takes overlayfs, only the container's
 *   changes (delta/) over the template unpacked once in the pool (template-<uuid>/), which LXC
 *   mounts as `overlay:<template>:<delta>` inside the container's own mount namespace (the host
 *   sees no mount); elsewhere a plain copy of the template (rootfs/).
 * - A DATADISK is a raw file holding an ext4 file system (block-backed rather than a bind-mounted
 *   directory: it has a real size limit, moves between pools and hosts as one file, and the guest
 *   sees a disk as a KVM guest does). It reaches a running container as a loop device node.
 * - A snapshot of a ROOT volume is the container's whole root file system as a tar.gz (overlay
 *   layers merged: a flat backup that needs no template, and is itself a TAR template), taken
 *   while the container is frozen; of a DATADISK, a sparse copy of the file.
 *
 * Every volume and template appears under its final name by rename, so a crash or a retried
 * command never sees half of one.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type { CommandResult, ParsedPayload } from '@nimbostack/protocol';
import { DriverError, type StorageDriver } from '../driver.ts';
import { run } from '../kvm/exec.ts';
import { DirectoryFiles } from '../kvm/pool-files.ts';

/** What storage needs from the hypervisor side for volumes of running containers. */
export interface LiveContainers {
  /** The running container using this volume (as root or attached data volume), if any. */
  volumeInUse(path: string): string | undefined;
  /**
   * Runs `copy` with the container's root file system (as the host reaches it) while its processes
   * are frozen, so the copy is one point in time.
   */
  frozen(vm: string, copy: (rootfs: string) => Promise<void>): Promise<void>;
  /** Makes an attached data volume's loop device see the file's new size. */
  refreshSize(path: string): Promise<void>;
}

type Pool = ParsedPayload<'createVolume'>['pool'];

interface VolumeFile {
  kind: 'overlay' | 'copy';
  /** overlay: the template directory's name in the same pool (template-<uuid>). */
  template?: string;
  sizeBytes: number;
}

/** Tar options that keep what a root file system needs: owners, devices, overlayfs' markers. */
const TAR_KEEP = ['--numeric-owner', '--xattrs', '--xattrs-include=*', '--acls'];

function inPool(pool: Pool, path: string): string {
  if (pool.type === 'Simulator')
    throw new DriverError(`pool ${pool.uuid} is a simulator pool, not a directory`);
  return join(pool.path, path);
}

const tmpName = (path: string) => `${path}.tmp-${process.pid}-${Date.now()}`;

/** Produces `path` (a file or a directory) through `produce(tmp)`, then renames it into place. */
async function atomically(path: string, produce: (tmp: string) => Promise<unknown>): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tmpName(path);
  try {
    await produce(tmp);
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function readVolume(dir: string): VolumeFile {
  try {
    return JSON.parse(readFileSync(join(dir, 'volume.json'), 'utf8')) as VolumeFile;
  } catch {
    throw new DriverError(`${dir} is not a container root volume (no volume.json)`);
  }
}

function writeVolume(dir: string, v: VolumeFile): void {
  writeFileSync(join(dir, 'volume.json.tmp'), JSON.stringify(v));
  renameSync(join(dir, 'volume.json.tmp'), join(dir, 'volume.json'));
}

const isRootVolume = (path: string) => existsSync(join(path, 'volume.json'));

/** LXC's rootfs setting for a root volume directory. */
export function rootfsOf(dir: string): string {
  const v = readVolume(dir);
  if (v.kind === 'overlay') return `overlay:${join(dirname(dir), v.template!)}:${join(dir, 'delta')}`;
  return `dir:${join(dir, 'rootfs')}`;
}

/** Whether overlayfs mounts with its upper and work directories in this pool (probed once per pool). */
const overlayProbes = new Map<string, Promise<boolean>>();
function overlayWorks(poolPath: string): Promise<boolean> {
  let probe = overlayProbes.get(poolPath);
  if (!probe) {
    probe = (async () => {
      const dir = join(poolPath, `.overlay-probe-${process.pid}`);
      const sub = ['lower', 'upper', 'work', 'merged'].map((d) => join(dir, d));
      for (const d of sub) mkdirSync(d, { recursive: true });
      try {
        await run('mount', [
          '-t',
          'overlay',
          'overlay',
          '-o',
          `lowerdir=${sub[0]},upperdir=${sub[1]},workdir=${sub[2]}`,
          sub[3],
        ]);
        await run('umount', [sub[3]]);
        return true;
      } catch {
        return false;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    })();
    overlayProbes.set(poolPath, probe);
  }
  return probe;
}

/** Sparse copy of a file (data volumes are mostly holes). */
const copyFile = (from: string, to: string) => run('cp', ['--sparse=always', from, to], 1_800_000);

export class ContainerStorage implements StorageDriver {
  constructor(private readonly live: LiveContainers) {}

  /** A data volume: a raw file with an empty ext4 file system, or a copy of a snapshot. */
  async createVolume(p: ParsedPayload<'createVolume'>): Promise<CommandResult<'createVolume'>> {
    const path = inPool(p.pool, p.volumeUuid);
    if (!existsSync(path)) {
      const from = p.fromSnapshot;
      if (from) {
        if (!existsSync(from)) throw new DriverError(`snapshot ${from} does not exist`);
        if (from.endsWith('.tar.gz')) await atomically(path, (tmp) => unpackRootfs(from, tmp, p.sizeBytes));
        else
          await atomically(path, async (tmp) => {
            await copyFile(from, tmp);
            if (statSync(tmp).size < p.sizeBytes) await growImage(tmp, p.sizeBytes);
          });
      } else
        await atomically(path, async (tmp) => {
          writeFileSync(tmp, '');
          await run('truncate', ['-s', String(p.sizeBytes), tmp]);
          await run('mkfs.ext4', ['-q', '-F', '-L', p.volumeUuid.slice(0, 16), tmp]);
        });
    }
    return { path, sizeBytes: this.sizeOf(path) };
  }

  async createVolumeFromTemplate(
    p: ParsedPayload<'createVolumeFromTemplate'>,
  ): Promise<CommandResult<'createVolumeFromTemplate'>> {
    const path = inPool(p.pool, p.volumeUuid);
    if (!existsSync(path)) {
      const template = await this.templateInPool(p);
      const sizeBytes = Math.max(p.sizeBytes ?? 0, p.template.sizeBytes);
      const overlay = await overlayWorks(p.pool.path);
      await atomically(path, async (tmp) => {
        mkdirSync(tmp);
        if (overlay) mkdirSync(join(tmp, 'delta'));
        else await run('cp', ['-a', '--reflink=auto', template, join(tmp, 'rootfs')], 1_800_000);
        writeVolume(
          tmp,
          overlay
            ? { kind: 'overlay', template: basename(template), sizeBytes }
            : { kind: 'copy', sizeBytes },
        );
      });
    }
    return { path, sizeBytes: this.sizeOf(path) };
  }

  /** The pool's unpacked copy of the template, made on first use: its overlay volumes share it. */
  private async templateInPool(p: ParsedPayload<'createVolumeFromTemplate'>): Promise<string> {
    const dir = inPool(p.pool, `template-${p.template.uuid}`);
    if (existsSync(dir)) return dir;
    const source = isAbsolute(p.template.path)
      ? p.template.path
      : p.templateStore
        ? join(p.templateStore.path, p.template.path)
        : undefined;
    if (!source)
      throw new DriverError(`template ${p.template.uuid}: a relative path needs its templateStore`);
    if (!existsSync(source)) throw new DriverError(`template ${p.template.uuid} not found at ${source}`);
    await atomically(dir, async (tmp) => {
      mkdirSync(tmp);
      // GNU tar recognises gzip, xz and zstd archives by their content.
      await run('tar', ['-xf', source, '-C', tmp, ...TAR_KEEP], 1_800_000);
      if (!existsSync(join(tmp, 'sbin/init')) && !existsSync(join(tmp, 'bin/sh')))
        throw new DriverError(
          `template ${p.template.uuid} is not a root file system (no sbin/init or bin/sh)`,
        );
    });
    return dir;
  }

  /**
   * A ROOT volume's size is what it was created or resized to: a directory pool cannot limit one
   * directory's use, so it is a figure for accounting. A data volume's file grows (or, with
   * shrinkOk, shrinks) with its file system when no container uses it.
   */
  async resizeVolume(p: ParsedPayload<'resizeVolume'>): Promise<CommandResult<'resizeVolume'>> {
    if (!existsSync(p.path)) throw new DriverError(`volume ${p.path} does not exist`);
    const size = this.sizeOf(p.path);
    if (p.newSizeBytes === size) return { sizeBytes: size };
    if (p.newSizeBytes < size && !p.shrinkOk)
      throw new DriverError(
        `shrinking volume ${p.path} from ${size} to ${p.newSizeBytes} bytes needs shrinkOk`,
      );
    if (isRootVolume(p.path)) {
      writeVolume(p.path, { ...readVolume(p.path), sizeBytes: p.newSizeBytes });
      return { sizeBytes: p.newSizeBytes };
    }
    if (this.live.volumeInUse(p.path)) {
      if (p.newSizeBytes < size)
        throw new DriverError(`volume ${p.path} is in use by a running container: it can only grow`);
      await run('truncate', ['-s', String(p.newSizeBytes), p.path]);
      // The guest grows its file system itself (resize2fs on its device), as a KVM guest would.
      await this.live.refreshSize(p.path);
    } else if (p.newSizeBytes > size) await growImage(p.path, p.newSizeBytes);
    else {
      await run('e2fsck', ['-f', '-p', p.path]).catch(() => undefined);
      await run('resize2fs', [p.path, `${Math.floor(p.newSizeBytes / 1024)}K`]);
      await run('truncate', ['-s', String(p.newSizeBytes), p.path]);
    }
    return { sizeBytes: this.sizeOf(p.path) };
  }

  /** Copies a volume no running container uses; an overlay volume takes its template along. */
  async copyVolume(p: ParsedPayload<'copyVolume'>): Promise<CommandResult<'copyVolume'>> {
    const path = inPool(p.pool, p.volumeUuid);
    if (!existsSync(path)) {
      const source = p.source.path;
      if (!existsSync(source)) throw new DriverError(`volume ${source} does not exist`);
      const user = this.live.volumeInUse(source);
      if (user) throw new DriverError(`volume ${source} is in use by running container ${user}`);
      if (isRootVolume(source)) {
        const v = readVolume(source);
        if (v.kind === 'overlay') {
          const template = join(p.pool.path, v.template!);
          if (!existsSync(template))
            await atomically(template, (tmp) =>
              run('cp', ['-a', join(dirname(source), v.template!), tmp], 1_800_000),
            );
        }
        await atomically(path, (tmp) => run('cp', ['-a', source, tmp], 1_800_000));
      } else await atomically(path, (tmp) => copyFile(source, tmp));
    }
    return { path, sizeBytes: this.sizeOf(path) };
  }

  async deleteVolume(p: ParsedPayload<'deleteVolume'>) {
    const user = this.live.volumeInUse(p.path);
    if (user) throw new DriverError(`volume ${p.path} is in use by running container ${user}`);
    if (!existsSync(p.path)) return;
    if (statSync(p.path).isDirectory() && !isRootVolume(p.path))
      throw new DriverError(`${p.path} is a directory but not a container volume: left alone`);
    rmSync(p.path, { recursive: true, force: true });
  }

  async createSnapshot(p: ParsedPayload<'createSnapshot'>): Promise<CommandResult<'createSnapshot'>> {
    // A ROOT volume, or a ROOT snapshot's archive (a template made from a snapshot).
    const archive = p.volumePath.endsWith('.tar.gz');
    const root = archive || isRootVolume(p.volumePath);
    const snapshots = join((p.secondary ?? p.pool).path, 'snapshots');
    const target = join(snapshots, `${p.snapshotUuid}${root ? '.tar.gz' : '.img'}`);
    if (!existsSync(target)) {
      if (!existsSync(p.volumePath)) throw new DriverError(`volume ${p.volumePath} does not exist`);
      const user = this.live.volumeInUse(p.volumePath);
      if (archive) await atomically(target, (tmp) => copyFile(p.volumePath, tmp));
      else if (!root)
        await (user
          ? this.live.frozen(user, () => atomically(target, (tmp) => copyFile(p.volumePath, tmp)))
          : atomically(target, (tmp) => copyFile(p.volumePath, tmp)));
      else if (user)
        await this.live.frozen(user, (rootfs) => atomically(target, (tmp) => packRootfs(rootfs, tmp)));
      else
        await withMergedRootfs(p.volumePath, (rootfs) =>
          atomically(target, (tmp) => packRootfs(rootfs, tmp)),
        );
    }
    // What the backup takes on its store (a ROOT snapshot is compressed).
    return { path: target, sizeBytes: statSync(target).size };
  }

  async deleteSnapshot(p: ParsedPayload<'deleteSnapshot'>) {
    rmSync(p.path, { force: true });
  }

  /**
   * Replaces the volume's content by the snapshot's (the container must be stopped). A ROOT volume
   * becomes a plain copy of the snapshot's file system: an overlay cannot express files of its
   * template that the snapshot no longer has without rewriting its whiteouts.
   */
  /** A directory pool's size and use (statfs); the folder is made when missing, as volumes would. */
  async poolStats(pool: Pool) {
    return new DirectoryFiles(inPool(pool, '.')).stats();
  }

  async revertSnapshot(p: ParsedPayload<'revertSnapshot'>) {
    if (!existsSync(p.snapshotPath)) throw new DriverError(`snapshot ${p.snapshotPath} does not exist`);
    const user = this.live.volumeInUse(p.volumePath);
    if (user) throw new DriverError(`stop container ${user} before reverting its volume ${p.volumePath}`);
    if (p.snapshotPath.endsWith('.tar.gz')) {
      const sizeBytes = existsSync(p.volumePath) ? this.sizeOf(p.volumePath) : 0;
      const fresh = tmpName(p.volumePath);
      const old = `${fresh}.old`;
      try {
        await unpackRootfs(p.snapshotPath, fresh, sizeBytes);
        if (existsSync(p.volumePath)) renameSync(p.volumePath, old);
        renameSync(fresh, p.volumePath);
      } finally {
        rmSync(fresh, { recursive: true, force: true });
        rmSync(old, { recursive: true, force: true });
      }
    } else await atomically(p.volumePath, (tmp) => copyFile(p.snapshotPath, tmp));
  }

  private sizeOf(path: string): number {
    return isRootVolume(path) ? readVolume(path).sizeBytes : statSync(path).size;
  }
}

/**
 * A root file system as a tar.gz, staying on its file system: a live container's /proc, /sys and
 * /dev are kept as empty mount points. GNU tar exits 1 when a file changed while it read it, which
 * those mount points do (their kernel file systems' times move); that is no failure here, where the
 * container is frozen or stopped.
 */
function packRootfs(rootfs: string, archive: string): Promise<void> {
  const args = [
    '-czf',
    archive,
    ...TAR_KEEP,
    '--one-file-system',
    '--warning=no-file-changed',
    '-C',
    rootfs,
    '.',
  ];
  return new Promise((resolve, reject) => {
    execFile('tar', args, { timeout: 1_800_000, maxBuffer: 16 * 1024 * 1024 }, (err, _out, stderr) => {
      if (!err || (err as { code?: unknown }).code === 1) return resolve();
      reject(
        new DriverError(`tar -czf failed: ${(stderr || err.message).trim().split('\n').slice(-3).join(' ')}`),
      );
    });
  });
}

/** A ROOT volume (plain copy) holding the root file system of `archive`. */
async function unpackRootfs(archive: string, dir: string, sizeBytes: number): Promise<void> {
  mkdirSync(join(dir, 'rootfs'), { recursive: true });
  await run('tar', ['-xzf', archive, '-C', join(dir, 'rootfs'), ...TAR_KEEP], 1_800_000);
  writeVolume(dir, { kind: 'copy', sizeBytes: Math.max(sizeBytes, statSync(archive).size) });
}

/**
 * Runs `use` with the file system of a stopped ROOT volume: a plain copy's directory, or an
 * overlay's layers merged by a read-only overlayfs mount (delta over template) for the time of it.
 */
async function withMergedRootfs(volume: string, use: (rootfs: string) => Promise<void>): Promise<void> {
  const v = readVolume(volume);
  if (v.kind === 'copy') return use(join(volume, 'rootfs'));
  const mnt = join(volume, `merged-${process.pid}`);
  mkdirSync(mnt, { recursive: true });
  const lower = `${join(volume, 'delta')}:${join(dirname(volume), v.template!)}`;
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lower}`, mnt]);
  try {
    await use(mnt);
  } finally {
    await run('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
}
/** Grows a data volume's file and the ext4 file system in it (no container uses it). */
async function growImage(path: string, sizeBytes: number): Promise<void> {
  await run('truncate', ['-s', String(sizeBytes), path]);
  await run('e2fsck', ['-f', '-p', path]).catch(() => undefined);
  await run('resize2fs', [path]);
}
