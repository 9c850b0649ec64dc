/**
 * How a KVM host reaches the files of one primary storage pool, chosen per pool type and, for
 * NFS, per host by configuration (docs/storage.md):
 * - a directory (a local path, a SharedMountPoint): files by absolute path, as the server records
 *   them;
 * - NFS, kernel path (`nfs: 'kernel'`, the default, as upstream's KVM agent): the export mounted
 *   at <mountRoot>/<pool uuid> (mount -t nfs), then a directory;
 * - NFS, user-space path (`nfs: 'libnfs'`): no mount; QEMU and qemu-img open nfs://server/export/
 *   file through libnfs (Debian's qemu-block-extra), and the agent's own NFSv3 client
 *   (@nimbostack/protocol/nfs-client, shared with the server's NFS image stores) checks, renames
 *   and removes files and measures the export.
 * On NFS the server records a file's name relative to the export, so every host resolves it its
 * own way. A linked clone's backing file is recorded as this host opens it (a path under the
 * mount, or an nfs:// URL): the hosts of one cluster use the same NFS path.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statfsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import type { StorageLocation } from '@nimbostack/protocol';
import { NfsError, NfsExport } from '@nimbostack/protocol/nfs-client';
import { DriverError, type PoolRecords } from '../driver.ts';
import { run } from './exec.ts';
import { IscsiLuns } from './iscsi-luns.ts';

export type NfsPath = 'kernel' | 'libnfs';

export interface PoolFiles extends PoolRecords {
  /** What qemu-img and QEMU open for a file of the pool: a local path or an nfs:// URL. */
  image(path: string): string;
  /** The blockdev `file` node of a file of the pool. */
  blockFile(path: string, readOnly: boolean): Record<string, unknown>;
  exists(path: string): Promise<boolean>;
  /** Removes a file; one already gone is fine. */
  remove(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Makes a directory of the pool (one level, e.g. snapshots); one already there is fine. */
  makeDir(name: string): Promise<void>;
  /** The path the server records for the file `name` of the pool. */
  recorded(name: string): string;
  stats(): Promise<{ capacityBytes: number; usedBytes: number }>;
}

function statsOf(dir: string) {
  const s = statfsSync(dir);
  return { capacityBytes: s.blocks * s.bsize, usedBytes: (s.blocks - s.bfree) * s.bsize };
}

/**
 * A directory on this host. `relative`: the server records names relative to it (a mounted NFS
 * export), else absolute paths (directory pools, as before NFS was reached by the agent).
 */
export class DirectoryFiles implements PoolFiles {
  constructor(
    readonly dir: string,
    private readonly relative = false,
  ) {}

  image(path: string): string {
    return isAbsolute(path) ? path : join(this.dir, path);
  }
  blockFile(path: string, readOnly: boolean) {
    return { driver: 'file', filename: this.image(path), 'read-only': readOnly };
  }
  async exists(path: string) {
    return existsSync(this.image(path));
  }
  async remove(path: string) {
    rmSync(this.image(path), { force: true });
  }
  async rename(from: string, to: string) {
    renameSync(this.image(from), this.image(to));
  }
  async makeDir(name: string) {
    mkdirSync(this.image(name), { recursive: true });
  }
  recorded(name: string): string {
    return this.relative ? name : join(this.dir, name);
  }
  async stats() {
    mkdirSync(this.dir, { recursive: true });
    return statsOf(this.dir);
  }
  async readText(name: string) {
    return readFile(this.image(name), 'utf8');
  }
  async writeText(name: string, text: string) {
    // The pool's own directory must be there (mounted): a missing one is never created, or the
    // record would land on the host's root file system and prove nothing.
    if (!existsSync(this.dir)) throw new Error(`${this.dir} is not there (pool not mounted?)`);
    const path = this.image(name);
    const tmp = `${path}.${process.pid}.tmp`;
    mkdirSync(dirname(path), { recursive: true });
    try {
      await writeFile(tmp, text);
      await rename(tmp, path);
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/** An NFS export QEMU reaches in user space (libnfs); names are relative to the export. */
export class LibnfsFiles implements PoolFiles {
  private readonly client: NfsExport;

  constructor(
    private readonly host: string,
    private readonly exportPath: string,
  ) {
    this.client = new NfsExport(host, exportPath);
  }

  private name(path: string): string {
    if (isAbsolute(path)) throw new DriverError(`${path} is not a file of NFS export ${this.exportPath}`);
    return path;
  }
  image(path: string): string {
    // An IPv6 server goes in brackets, as in any URL.
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `nfs://${host}${this.exportPath}/${this.name(path)}`;
  }
  blockFile(path: string, readOnly: boolean) {
    return {
      driver: 'nfs',
      server: { type: 'inet', host: this.host },
      path: `${this.exportPath}/${this.name(path)}`,
      'read-only': readOnly,
    };
  }
  exists(path: string) {
    return driverErrors(this.client.exists(this.name(path)));
  }
  remove(path: string) {
    return driverErrors(this.client.remove(this.name(path)));
  }
  rename(from: string, to: string) {
    return driverErrors(this.client.rename(this.name(from), this.name(to)));
  }
  async makeDir(name: string) {
    // The export itself is there.
    if (name !== '.') await driverErrors(this.client.mkdir(this.name(name)));
  }
  recorded(name: string): string {
    return name;
  }
  stats() {
    return driverErrors(this.client.stats());
  }
  async readText(name: string) {
    return (await driverErrors(this.client.readFile(this.name(name)))).toString('utf8');
  }
  writeText(name: string, text: string) {
    return driverErrors(this.client.writeFile(this.name(name), Buffer.from(text, 'utf8')));
  }
}

/** The NFS client's failures are the storage's answers (DriverError), not the agent's faults. */
async function driverErrors<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (e) {
    throw e instanceof NfsError ? new DriverError(e.message) : e;
  }
}

/** Whether `dir` is a mount point now (/proc/self/mounts, octal escapes decoded). */
function mounted(dir: string): boolean {
  const decoded = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8)));
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => decoded(line.split(' ')[1] ?? '') === dir);
}

export interface PoolAccessOptions {
  /** How this host reaches NFS pools. */
  nfs: NfsPath;
  /** Kernel path: where exports are mounted, one folder per pool uuid (upstream: /mnt). */
  mountRoot: string;
}

/** The PoolFiles of each pool this host uses; kernel NFS mounts are made on first use. */
export class PoolAccess {
  private readonly mounting = new Map<string, Promise<void>>();

  constructor(readonly options: PoolAccessOptions) {}

  async files(pool: StorageLocation): Promise<PoolFiles> {
    switch (pool.type) {
      case 'Simulator':
        throw new DriverError(`pool ${pool.uuid} is a simulator pool, not storage this host reaches`);
      case 'RBD':
        throw new DriverError(`pool ${pool.uuid} is RBD (Ceph): this agent does not open RBD pools yet`);
      case 'Iscsi':
        throw new DriverError(`pool ${pool.uuid} is managed iSCSI: it holds LUNs, not files`);
      case 'NetworkFilesystem':
        // Without a server it is a directory the host already has (an image store's mount).
        if (!pool.host) return new DirectoryFiles(pool.path);
        if (pool.port !== undefined && pool.port !== 2049)
          throw new DriverError(
            `NFS pool ${pool.uuid}: only the standard port 2049 is supported, not ${pool.port}`,
          );
        if (this.options.nfs === 'libnfs') return new LibnfsFiles(pool.host, pool.path);
        return new DirectoryFiles(await this.mount(pool.uuid, pool.host, pool.path), true);
      default:
        return new DirectoryFiles(pool.path);
    }
  }

  /**
   * What QEMU opens a VM's disk from: the pool's files, or for a managed iSCSI pool the volume's
   * LUN (iscsi-luns.ts).
   */
  async disks(pool: StorageLocation): Promise<Pick<PoolFiles, 'image' | 'blockFile' | 'exists'>> {
    return pool.type === 'Iscsi' ? new IscsiLuns(pool) : this.files(pool);
  }

  /** Mounts the export at <mountRoot>/<uuid> unless it is mounted there already. */
  private async mount(uuid: string, host: string, exportPath: string): Promise<string> {
    if (!/^[A-Za-z0-9-]+$/.test(uuid)) throw new DriverError(`invalid pool uuid ${uuid}`);
    const dir = join(this.options.mountRoot, uuid);
    if (mounted(dir)) return dir;
    let pending = this.mounting.get(dir);
    if (!pending) {
      pending = (async () => {
        mkdirSync(dir, { recursive: true });
        if (!mounted(dir)) await run('mount', ['-t', 'nfs', `${host}:${exportPath}`, dir], 60_000);
      })().finally(() => this.mounting.delete(dir));
      this.mounting.set(dir, pending);
    }
    await pending;
    return dir;
  }
}
