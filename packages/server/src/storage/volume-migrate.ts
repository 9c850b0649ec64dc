/**
 * migrateVolume: moves a volume to another primary storage pool of its zone, whatever the two
 * pools' types (docs/storage.md, "Moving volumes between pools"). Room on the destination is
 * reserved first (a conditional UPDATE, as the planner does). Offline (a detached disk, or a
 * Stopped VM's): a host that reaches both pools copies the volume and checks the copy against it
 * (copyVolume). Live (livemigrate=true, a Running VM's disk): the VM's host mirrors the disk into
 * the new pool while the guest runs and switches the guest to it (moveVolumeLive). Only then does
 * one transaction point the volume at its new copy and give the source pool its allocation back,
 * and the old copy is deleted (on a managed pool, its LUN removed by the provider); a failure
 * leaves the volume where it was. A managed (iSCSI) destination's provider makes the volume's LUN
 * before the host copies or mirrors into it, and removes it again when the move fails.
 * migrateVirtualMachineWithVolume (admin) moves a Running VM to another host or its disks to other
 * pools live, or a Stopped VM's volumes to other pools.
 */
import { sql } from 'kysely';
import { releasePool } from '../compute/planner.ts';
import { presentVms } from '../compute/vm-presenter.ts';
import { findVm, migrateVm, reloadVm } from '../compute/vms.ts';
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { StoragePoolRow, VmRow, VolumeRow } from '../db/schema.ts';
import { insufficientCapacity, invalidParameter, resourceUnavailable, toApiError } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { STORAGE_OVERPROVISIONING } from '../infra/capacity.ts';
import { findHost } from '../infra/hosts.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { localPoolOfVm } from './local-pools.ts';
import { discardManagedVolume, prepareManagedVolume } from './managed/managed-pools.ts';
import { deleteOnPool, poolLocation, poolOf, vmDisk } from './volume-ops.ts';
import { findVolume, poolNeeds, presentVolume, volumeJobTarget } from './volumes.ts';

/** The cluster a pool is confined to, or undefined for a zone-wide pool. */
const clusterOf = (pool: StoragePoolRow) =>
  pool.scope !== 'ZONE' && pool.cluster_id !== null ? pool.cluster_id : undefined;

/** Everything that can be wrong with the request, found before anything changes (431). */
async function planMigration(ctx: CallContext, volume: VolumeRow, storageUuid: string, live: boolean) {
  const db = ctx.app.store.db;
  const target = await db
    .selectFrom('storage_pools')
    .selectAll()
    .where('uuid', '=', storageUuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!target) throw invalidParameter(`Unable to find storage pool by id ${storageUuid}`);
  const source = await poolOf(ctx, volume);
  if (!source || !volume.path)
    throw invalidParameter(
      `Volume ${volume.name} is not on primary storage yet (it is ${volume.state}); it is created where its VM starts`,
    );
  if (source.id === target.id)
    throw invalidParameter(`Volume ${volume.name} is already on storage pool ${target.name}`);
  if (target.zone_id !== volume.zone_id)
    throw invalidParameter(`Storage pool ${target.name} is not in the zone of volume ${volume.name}`);
  if (target.state !== 'Up') throw invalidParameter(`Storage pool ${target.name} is ${target.state}, not Up`);
  if (volume.state !== 'Ready') throw invalidParameter(`Volume ${volume.name} is ${volume.state}, not Ready`);
  // Upstream's rule: the destination carries every storage tag of the volume's disk offering.
  const targetTags = (target.tags ?? '').split(',').map((t) => t.trim());
  const missing = (await poolNeeds(ctx, volume)).tags.filter((t) => !targetTags.includes(t));
  if (missing.length)
    throw invalidParameter(
      `Storage pool ${target.name} does not have the storage tags of the disk offering of volume ${volume.name} (${missing.join(',')})`,
    );
  // A snapshot being taken reads the volume where it is now.
  const taking = await db
    .selectFrom('snapshots')
    .select('name')
    .where('volume_id', '=', volume.id)
    .where('state', 'in', ['Allocated', 'Creating'])
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (taking)
    throw invalidParameter(
      `Volume ${volume.name} is being snapshotted (${taking.name}): move it once the snapshot is done`,
    );
  let cluster = clusterOf(target);
  const sourceCluster = clusterOf(source);
  if (cluster !== undefined && sourceCluster !== undefined && cluster !== sourceCluster)
    throw invalidParameter(`No host reaches both storage pool ${source.name} and ${target.name}`);
  cluster ??= sourceCluster;
  // A host-local pool is reached by its own host only.
  const hostOf = (pool: StoragePoolRow) => (pool.scope === 'HOST' ? (pool.host_id ?? undefined) : undefined);
  const host = hostOf(target) ?? hostOf(source);
  if (hostOf(target) !== undefined && hostOf(source) !== undefined && hostOf(target) !== hostOf(source))
    throw invalidParameter(
      `No host reaches both storage pool ${source.name} and ${target.name}: both are local to different hosts`,
    );
  if (volume.vm_id !== null) {
    const vm = await db
      .selectFrom('vms')
      .selectAll()
      .where('id', '=', volume.vm_id)
      .executeTakeFirstOrThrow();
    if (vm.state === 'Running' && !live)
      throw invalidParameter(
        `VM ${vm.name} is Running: stop it, or move its volume ${volume.name} live (livemigrate=true)`,
      );
    if (vm.state !== 'Stopped' && vm.state !== 'Running')
      throw invalidParameter(
        `VM ${vm.name} must be Stopped or Running to move its volume ${volume.name} (it is ${vm.state})`,
      );
    // A VM snapshot's disk states live on the volumes' pools, which the move would leave behind.
    const vmSnapshot = await db
      .selectFrom('vm_snapshots')
      .select('name')
      .where('vm_id', '=', vm.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (vmSnapshot)
      throw invalidParameter(
        `Unable to move a disk of VM ${vm.name}: delete its VM snapshots (${vmSnapshot.name}) first`,
      );
    if (vm.state === 'Running') {
      // Live: the VM's own host copies, so it must reach the destination.
      const vmHost = await db
        .selectFrom('hosts')
        .select(['id', 'name', 'cluster_id'])
        .where('id', '=', vm.host_id ?? -1)
        .executeTakeFirst();
      if (!vmHost) throw invalidParameter(`VM ${vm.name} is Running on no known host`);
      if (hostOf(target) !== undefined && hostOf(target) !== vmHost.id)
        throw invalidParameter(
          `Storage pool ${target.name} is local to another host than ${vmHost.name}, where VM ${vm.name} runs`,
        );
      if (clusterOf(target) !== undefined && clusterOf(target) !== vmHost.cluster_id)
        throw invalidParameter(
          `Storage pool ${target.name} is not reachable from host ${vmHost.name}, where VM ${vm.name} runs (another cluster)`,
        );
      return { source, target, cluster, host, live: { vm, hostId: vmHost.id } };
    }
    // The VM's other disks must stay reachable from the hosts that could run it.
    const others = await db
      .selectFrom('volumes')
      .innerJoin('storage_pools', 'storage_pools.id', 'volumes.pool_id')
      .select([
        'storage_pools.name',
        'storage_pools.scope',
        'storage_pools.cluster_id',
        'storage_pools.host_id',
      ])
      .where('volumes.vm_id', '=', vm.id)
      .where('volumes.id', '!=', volume.id)
      .where('volumes.removed', 'is', null)
      .execute();
    const targetCluster = clusterOf(target);
    for (const o of others) {
      if (o.scope === 'HOST' && hostOf(target) !== undefined && o.host_id !== hostOf(target))
        throw invalidParameter(
          `Storage pool ${target.name} is local to another host than pool ${o.name}, which holds another disk of VM ${vm.name}`,
        );
      if (targetCluster !== undefined && o.scope !== 'ZONE' && o.cluster_id !== targetCluster)
        throw invalidParameter(
          `Storage pool ${target.name} is in another cluster than pool ${o.name}, which holds another disk of VM ${vm.name}`,
        );
    }
  }
  return { source, target, cluster, host, live: undefined };
}

/** An Up, connected host of the zone (in `cluster` when one pool is cluster-scoped). */
async function hostReaching(
  ctx: CallContext,
  zoneId: number,
  cluster: number | undefined,
  host?: number,
): Promise<number> {
  let q = ctx.app.store.db
    .selectFrom('hosts')
    .select('id')
    .where('zone_id', '=', zoneId)
    .where('state', '=', 'Up')
    .where('type', '=', 'Routing')
    .where('removed', 'is', null);
  if (cluster !== undefined) q = q.where('cluster_id', '=', cluster);
  if (host !== undefined) q = q.where('id', '=', host);
  const connected = ctx.app.agents.connectedHosts((await q.limit(50).execute()).map((h) => h.id));
  if (connected.length === 0) throw resourceUnavailable('No host that reaches both storage pools is Up');
  return connected[0];
}

/** Reserves the volume's size on the destination, or refuses with 533 when it has no room. */
async function reserveOn(ctx: CallContext, target: StoragePoolRow, size: number): Promise<void> {
  const factor = ctx.app.settings.at(STORAGE_OVERPROVISIONING, 'storagepool', target.id);
  const reserved = await ctx.app.store.db
    .updateTable('storage_pools')
    .set((eb) => ({ allocated_bytes: eb('allocated_bytes', '+', size) }))
    .where('id', '=', target.id)
    .where('state', '=', 'Up')
    .where(sql<boolean>`allocated_bytes + ${size} <= capacity_bytes * ${factor}`)
    .executeTakeFirst();
  if (Number(reserved.numUpdatedRows) !== 1)
    throw insufficientCapacity(
      `Insufficient primary storage: pool ${target.name} does not have ${Math.ceil(size / 2 ** 30)} GiB free to allocate`,
    );
}

/**
 * Points the volume at its copy on the destination and gives the source pool its allocation
 * back, in one transaction; `check` runs in it first (a VM started meanwhile refuses the move).
 */
async function recordMove(
  ctx: CallContext,
  volume: VolumeRow,
  move: { source: StoragePoolRow; target: StoragePoolRow; path: string; sizeBytes: number; how: string },
  check?: (tx: Tx) => Promise<void>,
): Promise<void> {
  await ctx.app.store.db.transaction().execute(async (tx) => {
    if (check) await check(tx);
    const moved = await tx
      .updateTable('volumes')
      .set({ pool_id: move.target.id, path: move.path, physical_size_bytes: move.sizeBytes })
      .where('id', '=', volume.id)
      .where('pool_id', '=', move.source.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (Number(moved.numUpdatedRows) !== 1)
      throw invalidParameter(`Volume ${volume.name} changed while it was being moved; try again`);
    await releasePool(tx, move.source.id, Number(volume.size_bytes));
    await logEvent(ctx, tx, {
      type: 'VOLUME.MIGRATE',
      description: `moved volume ${volume.name} ${move.how} from storage pool ${move.source.name} to ${move.target.name}`,
      resourceType: 'Volume',
      resourceId: volume.uuid,
    });
  });
}

/** Deletes the volume's old copy; the move is done, so a failure only leaves space used. */
async function dropOldCopy(ctx: CallContext, volume: VolumeRow): Promise<void> {
  try {
    await deleteOnPool(ctx, volume);
  } catch (e) {
    ctx.app.log.warn(
      { volume: volume.uuid, err: toApiError(e).message },
      'could not delete the source copy of a moved volume',
    );
  }
}

export async function migrateVolumeTo(
  ctx: CallContext,
  volume: VolumeRow,
  storageUuid: string,
  live = false,
): Promise<void> {
  const { app } = ctx;
  const plan = await planMigration(ctx, volume, storageUuid, live);
  const { source, target } = plan;
  const size = Number(volume.size_bytes);
  if (plan.live) {
    const { vm, hostId } = plan.live;
    await reserveOn(ctx, target, size);
    try {
      // A managed destination's provider makes the LUN the host mirrors into (as for a new volume).
      await prepareManagedVolume(ctx, target, volume, size);
      // The guest keeps running on its disk until the host has mirrored it and switched.
      const moved = await app.agents.call(hostId, 'moveVolumeLive', {
        vm: vm.instance_name,
        disk: vmDisk(volume, source),
        pool: poolLocation(target),
      });
      await recordMove(ctx, volume, { source, target, ...moved, how: 'live' });
    } catch (e) {
      await releasePool(app.store.db, target.id, size);
      await discardManagedVolume(ctx, target, volume.uuid);
      throw e;
    }
    await dropOldCopy(ctx, volume);
    return;
  }
  const hostId = await hostReaching(ctx, volume.zone_id, plan.cluster, plan.host);
  await reserveOn(ctx, target, size);
  let copied: { path: string; sizeBytes: number } | undefined;
  try {
    await prepareManagedVolume(ctx, target, volume, size);
    const copy = await app.agents.call(hostId, 'copyVolume', {
      volumeUuid: volume.uuid,
      source: { path: volume.path!, pool: poolLocation(source) },
      pool: poolLocation(target),
    });
    copied = copy;
    await recordMove(ctx, volume, { source, target, ...copy, how: 'offline' }, async (tx) => {
      // A VM started during the copy runs on the old copy: then the move does not happen.
      if (volume.vm_id === null) return;
      const vm = await tx
        .selectFrom('vms')
        .select(['name', 'state'])
        .where('id', '=', volume.vm_id)
        .executeTakeFirst();
      if (vm && vm.state !== 'Stopped')
        throw invalidParameter(`VM ${vm.name} was started while its volume ${volume.name} was being moved`);
    });
  } catch (e) {
    await releasePool(app.store.db, target.id, size);
    if (copied) {
      // The move did not happen: the copy goes; if even that fails, it is only space on the pool.
      const path = copied.path;
      await app.agents
        .call(hostId, 'deleteVolume', { path, pool: poolLocation(target) })
        .catch((err) =>
          app.log.warn(
            { volume: volume.uuid, err: toApiError(err).message },
            'could not delete an unused copy',
          ),
        );
    }
    // A managed destination's LUN goes too (the host above only checked nothing uses it).
    await discardManagedVolume(ctx, target, volume.uuid);
    throw e;
  }
  await dropOldCopy(ctx, volume);
}

export const migrateVolume = defineCommand({
  name: 'migrateVolume',
  description:
    "Moves a Ready volume to another Up primary storage pool of its zone, of any type: copied, checked, then the old copy removed. A Running VM's disk moves live with livemigrate=true. Asynchronous; the VM must have no VM snapshots.",
  params: {
    volumeid: p.uuid({ required: true, description: 'UUID of the Ready volume to move.' }),
    storageid: p.uuid({
      required: true,
      description: 'UUID of the destination pool; a host must reach both pools.',
    }),
    livemigrate: p.boolean({
      description:
        "Whether a Running VM's disk may move with the VM running (copied while the guest writes, then switched over); without it such a disk is refused.",
    }),
  },
  event: {
    type: 'VOLUME.MIGRATE',
    description: (params) => `migrating volume ${params.volumeid} to storage pool ${params.storageid}`,
  },
  async target(ctx, params) {
    const volume = await findVolume(ctx, params.volumeid);
    await planMigration(ctx, volume, params.storageid, params.livemigrate ?? false);
    return volumeJobTarget(ctx, volume);
  },
  async handler(ctx, params) {
    const volume = await findVolume(ctx, params.volumeid);
    await migrateVolumeTo(ctx, volume, params.storageid, params.livemigrate ?? false);
    return presentVolume(ctx, volume.id);
  },
});

/** The volume moves of migrateto[i].volume/pool, checked against the VM (431 before anything moves). */
async function planVmMoves(
  ctx: CallContext,
  vm: VmRow,
  params: { hostid?: string; migrateto?: Record<string, string>[] },
): Promise<{ volume: VolumeRow; pool: string }[]> {
  const moves: { volume: VolumeRow; pool: string }[] = [];
  for (const m of params.migrateto ?? []) {
    if (!m.volume || !m.pool) throw invalidParameter('Each migrateto entry needs a volume and a pool');
    const volume = await findVolume(ctx, m.volume);
    if (volume.vm_id !== vm.id)
      throw invalidParameter(`Volume ${volume.name} is not a disk of VM ${vm.name}`);
    if (volume.pool_id !== null && (await poolOf(ctx, volume))?.uuid === m.pool) continue;
    moves.push({ volume, pool: m.pool });
  }
  if (vm.state === 'Running') {
    if (moves.length) {
      if (params.hostid)
        throw invalidParameter(
          `Moving running VM ${vm.name} to another host and its disks to other pools at once is not supported: do one, then the other`,
        );
      // Its disks move live, on the host it runs on.
      for (const m of moves) await planMigration(ctx, m.volume, m.pool, true);
      return moves;
    }
    const local = await localPoolOfVm(ctx.app, vm.id);
    if (local)
      throw invalidParameter(
        `VM ${vm.name} has disks on host-local storage (${local.name}); they cannot move while it runs: stop it and move its volumes with migrateto`,
      );
    return moves;
  }
  if (vm.state !== 'Stopped')
    throw invalidParameter(`VM ${vm.name} must be Running or Stopped to be migrated (it is ${vm.state})`);
  if (params.hostid)
    throw invalidParameter(`VM ${vm.name} is Stopped: only its volumes can move (give migrateto)`);
  if (moves.length === 0)
    throw invalidParameter(`Nothing to migrate: give migrateto for Stopped VM ${vm.name}`);
  for (const m of moves) await planMigration(ctx, m.volume, m.pool, false);
  return moves;
}

export const migrateVirtualMachineWithVolume = defineCommand({
  name: 'migrateVirtualMachineWithVolume',
  description:
    'For a Running VM, live-migrates it to another host (its disks stay), or with migrateto moves its disks to other pools live on its host; for a Stopped VM, moves the volumes listed in migrateto to other pools. Asynchronous.',
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the Running or Stopped VM.' }),
    hostid: p.uuid({
      description:
        'Running VM only: UUID of the destination host; the planner picks one in the cluster when omitted.',
    }),
    migrateto: p.map({
      description:
        'Which volume goes to which pool, as migrateto[0].volume=<uuid>&migrateto[0].pool=<uuid>; for a Running VM not together with hostid.',
    }),
    autoselect: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: { type: 'VM.MIGRATE', description: (params) => `migrating VM ${params.virtualmachineid}` },
  async target(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    await planVmMoves(ctx, vm, params);
    return { type: 'VirtualMachine', id: vm.uuid };
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    const moves = await planVmMoves(ctx, vm, params);
    if (vm.state === 'Running' && moves.length) {
      for (const m of moves) await migrateVolumeTo(ctx, m.volume, m.pool, true);
      return (await presentVms(ctx, [await reloadVm(ctx, vm.id)]))[0];
    }
    if (vm.state === 'Running') {
      const host = params.hostid ? await findHost(ctx, params.hostid) : undefined;
      return (await presentVms(ctx, [await migrateVm(ctx, vm, host?.id)]))[0];
    }
    for (const m of moves) await migrateVolumeTo(ctx, m.volume, m.pool);
    return (await presentVms(ctx, [await reloadVm(ctx, vm.id)]))[0];
  },
});
