/**
 * A primary storage pool as a place volumes live, whatever its type, and moving a volume between
 * two of them (migrateVolume). A pool type is a source and a target for every other one as soon
 * as it implements VolumeStore: the copy goes through qemu-img (offline) or QEMU's blockdev-mirror
 * (live, block-jobs.ts), so only "where is this volume for QEMU", "make an empty one of N bytes"
 * and "remove it" differ per type. The file pools (pool-files.ts: directories, NFS mounted or in
 * user space) are VolumeStores as they are (qcow2 files, made by qemu-img create); a store whose
 * volumes are raw block images (RBD images, iSCSI LUNs) says `volumeFormat: 'raw'`, and one whose
 * volumes cannot be made by `qemu-img create` (a LUN a storage provider makes) gives createEmpty.
 */
import { execFile } from 'node:child_process';
import type { StorageLocation } from '@nimbostack/protocol';
import { DriverError } from '../driver.ts';
import { imageInfo, missingTool, run } from './exec.ts';
import { IscsiLuns } from './iscsi-luns.ts';
import type { PoolAccess } from './pool-files.ts';
import { type RbdSession, rbdSecretId, withRbd } from './rbd.ts';

export type VolumeFormat = 'qcow2' | 'raw';

export interface VolumeStore {
  /** What qemu-img opens for volume `path`: a file path, nfs://…, rbd:pool/image…, iscsi://… */
  image(path: string): string;
  /**
   * The blockdev protocol node QEMU opens volume `path` with (the format node's `file`), for the
   * format node `node` when the store names per-node objects (qemuObjects).
   */
  blockFile(path: string, readOnly: boolean, node?: string): Record<string, unknown>;
  /**
   * QEMU objects blockFile(…, node) refers to, added before it (e.g. the secret holding an RBD
   * pool's cephx key, which never goes on a command line).
   */
  qemuObjects?(node: string): Record<string, unknown>[];
  exists(path: string): Promise<boolean>;
  /** Removes a volume; one already gone is fine. */
  remove(path: string): Promise<void>;
  /** The path the server records for the volume named `name` (its uuid) in this pool. */
  recorded(name: string): string;
  /** The format of the volumes this store makes; qcow2 when not said. */
  readonly volumeFormat?: VolumeFormat;
  /**
   * Makes an empty volume `name` of `sizeBytes` for a copy to fill, replacing one already there
   * (a copy cut short). Without it: `qemu-img create -f <volumeFormat> image(name) sizeBytes`.
   */
  createEmpty?(name: string, sizeBytes: number): Promise<void>;
  /**
   * True when createEmpty may answer a volume holding old bytes (an iSCSI LUN the provider made,
   * kept across a retried move): copies then write every block instead of skipping zero areas.
   */
  readonly mayHoldData?: boolean;
}

/**
 * Runs `use` with the VolumeStore of a pool this host reaches, chosen by pool type. A store that
 * needs a session (e.g. a Ceph configuration written for the time of the call) opens and closes
 * it around `use`; a new pool type adds its case here.
 */
export async function withVolumeStore<T>(
  pools: PoolAccess,
  pool: StorageLocation,
  use: (store: VolumeStore) => Promise<T>,
): Promise<T> {
  if (pool.type === 'Filesystem' || pool.type === 'SharedMountPoint' || pool.type === 'NetworkFilesystem')
    return use(await pools.files(pool));
  if (pool.type === 'RBD') return withRbd(pool, (session) => use(rbdVolumes(session, pool)));
  // A managed pool's LUN is made by the server's provider before the host is asked to fill it.
  if (pool.type === 'Iscsi') return use(new IscsiLuns(pool));
  throw new DriverError(`moving volumes to or from ${pool.type} pools is not supported by this agent yet`);
}

/** An RBD pool's session (rbd.ts) as a VolumeStore: raw images, the key a QEMU secret object. */
function rbdVolumes(s: RbdSession, pool: StorageLocation): VolumeStore {
  return {
    volumeFormat: s.volumeFormat,
    image: (path) => s.image(path),
    blockFile: (path, readOnly, node) =>
      s.blockFile(path, readOnly, pool.secret && node ? rbdSecretId(node) : undefined),
    qemuObjects: (node) =>
      pool.secret
        ? [{ 'qom-type': 'secret', id: rbdSecretId(node), data: pool.secret, format: 'base64' }]
        : [],
    exists: (path) => s.exists(path),
    remove: (path) => s.remove(path),
    recorded: (name) => s.recorded(name),
    createEmpty: (name, sizeBytes) => s.createEmpty(name, sizeBytes),
  };
}

export const formatOf = (store: VolumeStore): VolumeFormat => store.volumeFormat ?? 'qcow2';

/** An empty volume `name` of `sizeBytes` in `store`, replacing any leftover of an earlier try. */
export async function createEmpty(store: VolumeStore, name: string, sizeBytes: number): Promise<void> {
  if (store.createEmpty) return store.createEmpty(name, sizeBytes);
  if (await store.exists(name)) await store.remove(name);
  await run('qemu-img', ['create', '-q', '-f', formatOf(store), store.image(name), String(sizeBytes)]);
}

export interface VolumeCopy {
  source: { store: VolumeStore; path: string };
  target: { store: VolumeStore; name: string };
}

/**
 * Copies a volume no VM is writing to another store as a standalone image (its backing chain,
 * e.g. a linked clone's template, folded in), then checks that the guest sees the same bytes in
 * both (qemu-img compare). A copy that fails or differs is removed and the source is untouched.
 * An earlier copy found complete (same bytes) is kept, so a retried command costs one compare.
 */
export async function copyVerified(c: VolumeCopy): Promise<{ path: string; sizeBytes: number }> {
  const { source, target } = c;
  if (!(await source.store.exists(source.path)))
    throw new DriverError(`volume ${source.path} does not exist`);
  const from = source.store.image(source.path);
  const info = await imageInfo(from);
  const to = target.store.image(target.name);
  const format = formatOf(target.store);
  const same = () => identical(from, info.format, to, format);
  if ((await target.store.exists(target.name)) && (await same()))
    return { path: target.store.recorded(target.name), sizeBytes: info.virtualSize };
  try {
    await createEmpty(target.store, target.name, info.virtualSize);
    // -n: into the volume just made (a LUN or RBD image cannot be made by convert itself);
    // --target-is-zero: it is new and reads as zeroes, so zero areas are not written (not said
    // of a LUN, which a retried move finds with the bytes of the attempt cut short).
    const zero = target.store.mayHoldData ? [] : ['--target-is-zero'];
    await run('qemu-img', ['convert', '-n', ...zero, '-f', info.format, '-O', format, from, to], 1_800_000);
    if (!(await same()))
      throw new DriverError(`the copy of volume ${source.path} differs from it (qemu-img compare)`);
  } catch (err) {
    await target.store.remove(target.name).catch(() => undefined);
    throw err;
  }
  return { path: target.store.recorded(target.name), sizeBytes: info.virtualSize };
}

/** Whether two images hold the same guest-visible bytes (a larger one's tail reading as zeroes). */
function identical(a: string, aFormat: string, b: string, bFormat: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    execFile(
      'qemu-img',
      ['compare', '-q', '-f', aFormat, '-F', bFormat, a, b],
      { timeout: 1_800_000 },
      (err, _stdout, stderr) => {
        if (!err) return resolve(true);
        // Exit status 1 is "they differ"; 2 and others are failures to read one of them.
        if (err.code === 1) return resolve(false);
        if (err.code === 'ENOENT') return reject(new DriverError(missingTool('qemu-img')));
        reject(
          new DriverError(`qemu-img compare failed: ${(stderr || err.message).trim().split('\n').pop()}`),
        );
      },
    );
  });
}
