/**
 * Moving a running VM's disk to another pool with QEMU's block jobs (migrateVolume
 * livemigrate=true): the new, empty volume is opened as a block node beside the disk
 * (blockdev-add), blockdev-mirror copies the disk into it (sync=full: the whole chain, a linked
 * clone's template included, so the new volume stands alone) while the guest keeps writing, and
 * once the job is READY (both sides equal, every new write going to both) job-complete makes the
 * guest's device use the new node. Nothing restarts. On any failure the job is cancelled, the new
 * node closed and the guest stays on its disk. Copy mode write-blocking: once READY a guest write
 * completes only when it is on both sides, so the job converges however hard the guest writes.
 */
import { DriverError } from '../driver.ts';
import type { Qmp, QmpEvent } from './qmp.ts';
import { createEmpty, formatOf, type VolumeStore } from './volume-store.ts';

export interface MirrorPlan {
  /** The node the guest's device uses now (its format node). */
  source: string;
  /** The node name the new volume gets; it replaces `source` under the device. */
  targetNode: string;
  /** The new volume's format node argument for blockdev-add (its `file` from the target store). */
  target: Record<string, unknown>;
  job: string;
  /** How long the copy may take before it is given up. */
  timeoutMs: number;
}

/** Waits for the job to reach `event` (READY or COMPLETED), failing as soon as it ends otherwise. */
function jobEvent(
  qmp: Qmp,
  job: string,
  event: 'BLOCK_JOB_READY' | 'BLOCK_JOB_COMPLETED',
  timeoutMs: number,
) {
  return new Promise<QmpEvent>((resolve, reject) => {
    const onEvent = (e: QmpEvent) => {
      if (e.data?.device !== job) return;
      if (e.event === event && !e.data?.error) return done(() => resolve(e));
      if (e.event === 'BLOCK_JOB_COMPLETED' || e.event === 'BLOCK_JOB_CANCELLED')
        done(() =>
          reject(new DriverError(`block job ${job} ended: ${String(e.data?.error ?? 'cancelled')}`)),
        );
    };
    const onClose = () =>
      done(() => reject(new DriverError(`QEMU's monitor closed during block job ${job}`)));
    const timer = setTimeout(
      () =>
        done(() => reject(new DriverError(`block job ${job} did not reach ${event} within ${timeoutMs} ms`))),
      timeoutMs,
    );
    const done = (settle: () => void) => {
      clearTimeout(timer);
      qmp.off('event', onEvent);
      qmp.off('close', onClose);
      settle();
    };
    qmp.on('event', onEvent);
    qmp.once('close', onClose);
  });
}

/**
 * Mirrors `source` into the new node and switches the guest to it. On success the old node is
 * closed (its volume is free to delete); on failure the new node is, and the guest keeps `source`.
 * Once the guest has switched, nothing fails the move any more.
 */
export async function mirrorAndSwitch(qmp: Qmp, p: MirrorPlan): Promise<void> {
  await qmp.execute('blockdev-add', { ...p.target, 'node-name': p.targetNode });
  const ready = jobEvent(qmp, p.job, 'BLOCK_JOB_READY', p.timeoutMs);
  let started = false;
  try {
    await qmp.execute('blockdev-mirror', {
      'job-id': p.job,
      device: p.source,
      target: p.targetNode,
      sync: 'full',
      'copy-mode': 'write-blocking',
    });
    started = true;
    await ready;
    const completed = jobEvent(qmp, p.job, 'BLOCK_JOB_COMPLETED', 120_000);
    await qmp.execute('job-complete', { id: p.job });
    await completed;
  } catch (err) {
    ready.catch(() => undefined);
    if (started) await cancel(qmp, p.job);
    await qmp.execute('blockdev-del', { 'node-name': p.targetNode }).catch(() => undefined);
    throw err instanceof DriverError
      ? err
      : new DriverError(`mirroring ${p.source}: ${(err as Error).message}`);
  }
  // The device now reads and writes the new node: the move is done, whatever follows. Closing the
  // old node frees its file; if QEMU refuses, the node stays open until the VM stops, and the move
  // must not be undone (the caller would remove the volume the guest now uses).
  await qmp.execute('blockdev-del', { 'node-name': p.source }).catch((err: Error) => {
    process.stderr.write(`agent: block node ${p.source} stays open after the move: ${err.message}\n`);
  });
}

/** Cancels the job and waits until it is gone, so its target node can be closed. */
async function cancel(qmp: Qmp, job: string): Promise<void> {
  const gone = new Promise<void>((resolve) => {
    const onEvent = (e: QmpEvent) => {
      if (e.data?.device !== job) return;
      if (e.event === 'BLOCK_JOB_CANCELLED' || e.event === 'BLOCK_JOB_COMPLETED') finish();
    };
    const timer = setTimeout(() => finish(), 30_000);
    const finish = () => {
      clearTimeout(timer);
      qmp.off('event', onEvent);
      resolve();
    };
    qmp.on('event', onEvent);
  });
  try {
    await qmp.execute('block-job-cancel', { device: job, force: true });
  } catch {
    // Already ended (it failed by itself): nothing to wait for.
    return;
  }
  await gone;
}

/** The virtual size QEMU sees for a block node (the size the new volume must have). */
export async function nodeSize(qmp: Qmp, node: string): Promise<number> {
  const nodes = await qmp.execute<{ 'node-name': string; image: { 'virtual-size': number } }[]>(
    'query-named-block-nodes',
    { flat: true },
  );
  const found = nodes.find((n) => n['node-name'] === node);
  if (!found) throw new DriverError(`block node ${node} is not open in QEMU`);
  return found.image['virtual-size'];
}

/**
 * Moves the disk whose device uses node `source` into a new volume `name` of `target` (made
 * empty here, removed again on failure). Answers what the server records and the node the
 * device uses from now on.
 */
export async function moveDiskLive(
  qmp: Qmp,
  p: {
    source: string;
    /** The path the server records for the disk now, on its old pool. */
    sourcePath: string;
    deviceId: number;
    name: string;
    target: VolumeStore;
    timeoutMs: number;
    /**
     * QEMU objects only the source node uses (its RBD secret: rbd-disks.ts, staleRbdSecrets),
     * deleted once the node is closed.
     */
    sourceObjects?: string[];
  },
): Promise<{ path: string; sizeBytes: number; node: string }> {
  const sizeBytes = await nodeSize(qmp, p.source);
  // Pools that record names relative to themselves (NFS, RBD) would give the new volume the old
  // one's path: the host would then take the old copy, which the server deletes next, for the disk
  // the VM uses. The new one gets another name then.
  const name = p.target.recorded(p.name) === p.sourcePath ? `${p.name}-b` : p.name;
  await createEmpty(p.target, name, sizeBytes);
  // QEMU cannot rename a node: the new one takes the other of two names per device.
  const node = p.source === `m${p.deviceId}` ? `d${p.deviceId}` : `m${p.deviceId}`;
  const objects = p.target.qemuObjects?.(node) ?? [];
  try {
    for (const o of objects) {
      await qmp.execute('object-del', { id: o.id }).catch(() => undefined);
      await qmp.execute('object-add', o);
    }
    await mirrorAndSwitch(qmp, {
      source: p.source,
      targetNode: node,
      target: {
        driver: formatOf(p.target),
        'read-only': false,
        file: p.target.blockFile(name, false, node),
      },
      job: `move-${p.deviceId}`,
      timeoutMs: p.timeoutMs,
    });
  } catch (err) {
    for (const o of objects) await qmp.execute('object-del', { id: o.id }).catch(() => undefined);
    await p.target.remove(name).catch(() => undefined);
    throw err;
  }
  // The old node is closed: nothing reads its objects any more, and an RBD secret would keep the
  // old pool's key in QEMU until the VM stops. The move itself is done, so a failure here only
  // leaves the object (said on the agent's log), it does not fail the move.
  for (const id of p.sourceObjects ?? [])
    await qmp.execute('object-del', { id }).catch((err: Error) => {
      process.stderr.write(`agent: QEMU object ${id} of the moved disk not deleted: ${err.message}\n`);
    });
  return { path: p.target.recorded(name), sizeBytes, node };
}
