/**
 * Primary storage maintenance, as upstream's StoragePoolAutomation does it:
 *
 * enable: a pool that is Up (or ErrorInMaintenance, to try again) goes PrepareForMaintenance, the
 * VMs with a disk on it that run are stopped (each remembered in storage_pool_work), then it is in
 * Maintenance. With no Up host in its scope there is nothing to stop: Maintenance at once. A
 * failure leaves it ErrorInMaintenance (530). Only one pool of a cluster (or of a zone's zone-wide
 * pools) prepares at a time. Stopped VMs are not moved to another pool: upstream stops them too,
 * and a disk copy of every VM of a pool is the operator's choice (migrateVolume), not a side
 * effect of maintenance.
 *
 * cancel: a pool in Maintenance or ErrorInMaintenance is Up again and the VMs its maintenance
 * stopped start again (user VMs only when they still have a ROOT disk, as upstream).
 *
 * While a pool is not Up, nothing new is placed on it (the planner takes only Up pools) and a VM
 * with a disk on a pool in maintenance does not start (refuseStartInMaintenance).
 */
import { reloadVm, startVm, stopVm } from '../compute/vms.ts';
import type { CallContext } from '../context.ts';
import type { StoragePoolRow } from '../db/schema.ts';
import { internalError, invalidParameter, toApiError } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { MAINTENANCE_STATES } from './pool-monitor.ts';
import { upHostsUsing } from './volume-ops.ts';

/** A VM that is starting or stopping is left this long to settle before maintenance gives up. */
const SETTLE_MS = 60_000;

async function loadPool(ctx: Pick<CallContext, 'app'>, id: number): Promise<StoragePoolRow> {
  return ctx.app.store.db
    .selectFrom('storage_pools')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

/** Upstream's check before the job is queued (431): only an Up or ErrorInMaintenance pool. */
export function checkCanEnterMaintenance(pool: StoragePoolRow): void {
  if (pool.state !== 'Up' && pool.state !== 'ErrorInMaintenance')
    throw invalidParameter(
      `Primary storage ${pool.name} is not ready for maintenance, as its state is ${pool.state}`,
    );
}

/** Upstream refuses (530) cancelling maintenance of a pool that is Up or still preparing. */
export function checkCanCancelMaintenance(pool: StoragePoolRow): void {
  if (pool.state === 'Up' || pool.state === 'PrepareForMaintenance' || pool.state === 'Disabled')
    throw internalError(
      `Primary storage ${pool.name} is not ready to leave maintenance, as its state is ${pool.state}`,
    );
}

/** How many Up hosts use the pool. */
async function upHostsOf(ctx: Pick<CallContext, 'app'>, pool: StoragePoolRow): Promise<number> {
  const q = upHostsUsing(ctx.app.store.db, pool).select((eb) => eb.fn.countAll<number>().as('n'));
  return Number((await q.executeTakeFirstOrThrow()).n);
}

/** Moves the pool from one of `from` to `to`; false when another call changed it first. */
async function moveTo(ctx: CallContext, pool: StoragePoolRow, from: string[], to: string): Promise<boolean> {
  const r = await ctx.app.store.db
    .updateTable('storage_pools')
    .set({ state: to })
    .where('id', '=', pool.id)
    .where('state', 'in', from)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** The VMs (not expunged) with a disk on the pool, with their state. */
async function vmsOnPool(ctx: Pick<CallContext, 'app'>, poolId: number) {
  return ctx.app.store.db
    .selectFrom('volumes')
    .innerJoin('vms', 'vms.id', 'volumes.vm_id')
    .select(['vms.id', 'vms.state'])
    .distinct()
    .where('volumes.pool_id', '=', poolId)
    .where('volumes.removed', 'is', null)
    .where('vms.removed', 'is', null)
    .orderBy('vms.id')
    .execute();
}

/** Waits for a VM that is starting or stopping to be Running or Stopped (or anything else stable). */
async function settled(ctx: CallContext, vmId: number) {
  const until = Date.now() + SETTLE_MS;
  for (;;) {
    const vm = await reloadVm(ctx, vmId);
    if (!['Starting', 'Stopping', 'Migrating'].includes(vm.state) || Date.now() > until) return vm;
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function enterMaintenance(ctx: CallContext, poolId: number): Promise<StoragePoolRow> {
  const { app } = ctx;
  const pool = await loadPool(ctx, poolId);
  checkCanEnterMaintenance(pool);
  // Upstream: one pool of a scope prepares at a time (its VMs' stops would compete for the others).
  let peers = app.store.db
    .selectFrom('storage_pools')
    .select('name')
    .where('zone_id', '=', pool.zone_id)
    .where('id', '!=', pool.id)
    .where('removed', 'is', null)
    .where('state', '=', 'PrepareForMaintenance');
  peers =
    pool.scope === 'ZONE'
      ? peers.where('scope', '=', 'ZONE')
      : peers.where('cluster_id', pool.cluster_id === null ? 'is' : '=', pool.cluster_id);
  const busy = await peers.executeTakeFirst();
  if (busy)
    throw internalError(
      `Only one storage pool of a cluster can prepare for maintenance at a time: ${busy.name} already is`,
    );
  const from = ['Up', 'ErrorInMaintenance'];
  if ((await upHostsOf(ctx, pool)) === 0) {
    if (!(await moveTo(ctx, pool, from, 'Maintenance')))
      throw invalidParameter(`Storage pool ${pool.name} changed state meanwhile`);
    return loadPool(ctx, pool.id);
  }
  if (!(await moveTo(ctx, pool, from, 'PrepareForMaintenance')))
    throw invalidParameter(`Storage pool ${pool.name} changed state meanwhile`);
  try {
    for (const { id } of await vmsOnPool(ctx, pool.id)) {
      const vm = await settled(ctx, id);
      if (vm.state === 'Stopped' || vm.state === 'Destroyed' || vm.state === 'Error') continue;
      if (vm.state !== 'Running')
        throw internalError(`VM ${vm.name} on the pool is ${vm.state} and could not be stopped`);
      await recordWork(ctx, pool.id, vm.id);
      await stopVm(ctx, vm);
      await app.store.db
        .updateTable('storage_pool_work')
        .set({ stopped: 1 })
        .where('pool_id', '=', pool.id)
        .where('vm_id', '=', vm.id)
        .execute();
      await logEvent(ctx, app.store.db, {
        type: 'VM.STOP',
        description: `stopped VM ${vm.name} for the maintenance of storage pool ${pool.name}`,
        resourceType: 'VirtualMachine',
        resourceId: vm.uuid,
      });
    }
  } catch (e) {
    await moveTo(ctx, pool, ['PrepareForMaintenance'], 'ErrorInMaintenance');
    const err = toApiError(e);
    throw internalError(`Storage pool ${pool.name} could not enter maintenance: ${err.message}`);
  }
  if (!(await moveTo(ctx, pool, ['PrepareForMaintenance'], 'Maintenance')))
    throw internalError(`Storage pool ${pool.name} left PrepareForMaintenance while its VMs were stopped`);
  return loadPool(ctx, pool.id);
}

/** One work row per pool and VM: a second maintenance of the pool starts it afresh. */
async function recordWork(ctx: CallContext, poolId: number, vmId: number): Promise<void> {
  const { app } = ctx;
  await app.store.db.transaction().execute(async (tx) => {
    await tx
      .deleteFrom('storage_pool_work')
      .where('pool_id', '=', poolId)
      .where('vm_id', '=', vmId)
      .execute();
    await tx
      .insertInto('storage_pool_work')
      .values({
        pool_id: poolId,
        vm_id: vmId,
        stopped: 0,
        started: 0,
        ms_id: app.server.id,
        created: app.clock.now(),
      })
      .execute();
  });
}

export async function cancelMaintenance(ctx: CallContext, poolId: number): Promise<StoragePoolRow> {
  const { app } = ctx;
  const pool = await loadPool(ctx, poolId);
  checkCanCancelMaintenance(pool);
  if (!(await moveTo(ctx, pool, ['Maintenance', 'ErrorInMaintenance'], 'Up')))
    throw internalError(`Storage pool ${pool.name} changed state meanwhile`);
  const work = await app.store.db
    .selectFrom('storage_pool_work')
    .select(['id', 'vm_id'])
    .where('pool_id', '=', pool.id)
    .where('stopped', '=', 1)
    .where('started', '=', 0)
    .orderBy('id')
    .execute();
  const failures: string[] = [];
  for (const w of work) {
    const vm = await app.store.db
      .selectFrom('vms')
      .selectAll()
      .where('id', '=', w.vm_id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    const root = vm
      ? await app.store.db
          .selectFrom('volumes')
          .select('id')
          .where('vm_id', '=', vm.id)
          .where('type', '=', 'ROOT')
          .where('removed', 'is', null)
          .executeTakeFirst()
      : undefined;
    // Gone, started by someone meanwhile, or without a ROOT disk: nothing to start (upstream drops it).
    if (!vm || !root || vm.state !== 'Stopped') {
      await app.store.db.deleteFrom('storage_pool_work').where('id', '=', w.id).execute();
      continue;
    }
    try {
      await startVm(ctx, vm);
      await app.store.db
        .updateTable('storage_pool_work')
        .set({ started: 1 })
        .where('id', '=', w.id)
        .execute();
    } catch (e) {
      failures.push(`${vm.name}: ${toApiError(e).message}`);
    }
  }
  // Upstream fails the cancel when a VM does not start again; the pool stays Up all the same.
  if (failures.length > 0)
    throw internalError(
      `Storage pool ${pool.name} is Up, but VMs its maintenance stopped did not start: ${failures.join('; ')}`,
    );
  await app.store.db.deleteFrom('storage_pool_work').where('pool_id', '=', pool.id).execute();
  return loadPool(ctx, pool.id);
}

/**
 * A VM with a disk on a pool that is (preparing for) maintenance does not start: its disk may be
 * going away (upstream refuses too). 431, nothing changed.
 */
export async function refuseStartInMaintenance(
  ctx: Pick<CallContext, 'app'>,
  vm: { id: number; name: string },
) {
  const pool = await ctx.app.store.db
    .selectFrom('volumes')
    .innerJoin('storage_pools', 'storage_pools.id', 'volumes.pool_id')
    .select(['storage_pools.name', 'storage_pools.state'])
    .where('volumes.vm_id', '=', vm.id)
    .where('volumes.removed', 'is', null)
    .where('storage_pools.state', 'in', MAINTENANCE_STATES)
    .executeTakeFirst();
  if (pool)
    throw invalidParameter(
      `VM ${vm.name} has a disk on storage pool ${pool.name}, which is in ${pool.state}: it cannot start until the maintenance is cancelled`,
    );
}
