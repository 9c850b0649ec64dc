/**
 * A VM's disks on Ceph RBD pools, as its QEMU opens them: a raw format node over QEMU's rbd
 * driver (librbd), the cephx key a QEMU secret object the node names (`key-secret`). At start the
 * secret is read from a file in the VM's state directory (0600; removed once QEMU has started);
 * hot-plugged, it is given over QMP (object-add), so the key is never on a command line.
 */
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageLocation, VmSpec } from '@nimbostack/protocol';
import { DriverError, type PoolRecords } from '../driver.ts';
import { blockdev, diskNode, type VmDisk } from './machine.ts';
import type { Qmp } from './qmp.ts';
import { rbdSecretId, withRbd } from './rbd.ts';

export interface RbdDisk {
  file: Record<string, unknown>;
  /** The QEMU secret object the node needs: its id and the key. */
  secret?: { id: string; key: string };
}

/** The blockdev file node of an RBD disk (checked to exist) and the secret it names. */
export async function openRbdDisk(disk: VmDisk): Promise<RbdDisk> {
  return withRbd(disk.pool, async (s) => {
    if (!(await s.exists(disk.path))) throw new DriverError(`volume ${disk.path} does not exist`);
    const id = disk.pool.secret ? rbdSecretId(diskNode(disk)) : undefined;
    return {
      file: s.blockFile(disk.path, disk.type === 'ISO', id),
      secret: id && disk.pool.secret ? { id, key: disk.pool.secret } : undefined,
    };
  });
}

const KEY_FILE = /^sec-.*\.key$/;

/** Writes each secret to a 0600 file of the VM's directory; the -object arguments that read them. */
export function secretObjectArgs(dir: string, secrets: { id: string; key: string }[]): string[] {
  const args: string[] = [];
  for (const s of secrets) {
    const file = join(dir, `${s.id}.key`);
    writeFileSync(file, s.key, { mode: 0o600 });
    args.push('-object', `secret,id=${s.id},file=${file},format=base64`);
  }
  return args;
}

/** Removes the key files once QEMU has read them (it keeps the secrets in memory). */
export function removeSecretFiles(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (KEY_FILE.test(n)) rmSync(join(dir, n), { force: true });
}

/** Hot-plug: the secret over QMP, then the disk's blockdev node (the device is the caller's). */
export async function addRbdBlockdev(qmp: Qmp, disk: VmDisk): Promise<void> {
  const opened = await openRbdDisk(disk);
  if (opened.secret) {
    await qmp.execute('object-del', { id: opened.secret.id }).catch(() => undefined);
    await qmp.execute('object-add', {
      'qom-type': 'secret',
      id: opened.secret.id,
      data: opened.secret.key,
      format: 'base64',
    });
  }
  try {
    await qmp.execute('blockdev-add', blockdev(disk, 'raw', opened.file));
  } catch (err) {
    if (opened.secret) await qmp.execute('object-del', { id: opened.secret.id }).catch(() => undefined);
    throw err;
  }
}

/**
 * After a detach: the disk's secret object goes with its node (none there is fine). `node` is the
 * one its device used: after a live move it is not diskNode's.
 */
export async function dropRbdSecret(qmp: Qmp, disk: VmDisk, node = diskNode(disk)): Promise<void> {
  if (disk.pool.type === 'RBD')
    await qmp.execute('object-del', { id: rbdSecretId(node) }).catch(() => undefined);
}

/**
 * The secret object of an RBD disk's node that a live move closes, unless one of the VM's other
 * disks still names it (`others`: those disks with the nodes their devices use). Secrets are
 * named after nodes, so this is the case only if two disks were ever given one node name.
 */
export function staleRbdSecrets(
  disk: VmDisk,
  node: string,
  others: { disk: VmDisk; node: string }[],
): string[] {
  if (disk.pool.type !== 'RBD') return [];
  const id = rbdSecretId(node);
  const used = others.some((o) => o.disk.pool.type === 'RBD' && rbdSecretId(o.node) === id);
  return used ? [] : [id];
}

/** The HA heartbeat's records on an RBD pool: RADOS objects, each access its own session. */
export function rbdRecords(pool: StorageLocation): PoolRecords {
  return {
    readText: (name) => withRbd(pool, (s) => s.readText(name)),
    writeText: (name, text) => withRbd(pool, (s) => s.writeText(name, text)),
  };
}

/** A VM spec without its disks' pool keys (for the VM's record on disk). */
export function withoutKeys(spec: VmSpec): VmSpec {
  if (!spec.disks.some((d) => d.pool.secret)) return spec;
  return {
    ...spec,
    disks: spec.disks.map((d) => {
      if (!d.pool.secret) return d;
      const { secret: _, ...pool } = d.pool;
      return { ...d, pool };
    }),
  };
}
