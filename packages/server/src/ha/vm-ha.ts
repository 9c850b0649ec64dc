/**
 * What happens to the VMs of a fenced host (monitor.ts decided it is dead): each is recorded
 * Stopped where it was (its capacity released); those with the HA flag get an ha_work row and are
 * started again on another host of the cluster by the planner. An HA VM that its Up host reports
 * powered off without a stop request (a guest crash; compute/reconcile.ts) gets one too, as with
 * upstream's ha.vm.restart.hostup. A restart is tried up to max.retries times,
 * restart.retry.interval apart, ha.workers at a time per server. Rows are claimed with a
 * compare-and-set, so two servers never restart the same VM; a claim of a server that died is
 * released for the others by the holder of the `ha-claims` lease (monitor.ts).
 */

import { deadServerIds } from '../cluster/heartbeat.ts';
import { markStoppedOutOfBand, startVm } from '../compute/vms.ts';
import type { App } from '../context.ts';
import type { HostRow, VmRow } from '../db/schema.ts';
import { toApiError } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import { loadCaller } from '../iam/caller.ts';
import { recordAlert } from '../infra/alerts.ts';
import { withClusterLock } from '../jobs/locks.ts';
import { jobObjects } from '../jobs/runner.ts';
import { HA_MAX_RETRIES, HA_RESTART_RETRY, HA_WORKERS } from './settings.ts';

/** ALERT.USERVM: upstream raises VM HA outcomes under it. */
const VM_ALERT = 8;
const ON_HOST = ['Running', 'Starting', 'Stopping', 'Migrating'];

const running = new WeakMap<App, Set<number>>();
const runningOf = (app: App) => {
  let s = running.get(app);
  if (!s) {
    s = new Set();
    running.set(app, s);
  }
  return s;
};

/** Declares the host Down and takes its VMs off it: HA ones are queued for a restart elsewhere. */
export async function fenceHost(app: App, host: HostRow): Promise<void> {
  await app.agents.declareDown(host.id);
  const db = app.store.db;
  const vms = await db
    .selectFrom('vms')
    .selectAll()
    .where('host_id', '=', host.id)
    .where('state', 'in', ON_HOST)
    .where('removed', 'is', null)
    .execute();
  const now = app.clock.now();
  for (const vm of vms) {
    try {
      await markStoppedOutOfBand({ app }, vm, `its host ${host.name} was fenced`);
    } catch (err) {
      app.log.warn({ err, vm: vm.uuid }, 'could not record a VM of a fenced host Stopped');
      continue;
    }
    if (vm.ha_enabled !== 1) {
      await recordAlert(app, {
        type: VM_ALERT,
        subject: `VM ${vm.name} is Stopped: its host ${host.name} was fenced and the VM is not HA-enabled`,
        zoneId: vm.zone_id,
        sourceKey: `ha-stopped:${vm.id}:${now}`,
      });
      continue;
    }
    await queueRestart(app, vm.id, host.id);
  }
}

/** Queues a restart of a VM taken off host `hostId`, unless one is already queued or running. */
export async function queueRestart(app: App, vmId: number, hostId: number): Promise<void> {
  const db = app.store.db;
  const now = app.clock.now();
  const queued = await db
    .selectFrom('ha_work')
    .select('id')
    .where('vm_id', '=', vmId)
    .where('state', 'in', ['Pending', 'Running'])
    .executeTakeFirst();
  if (!queued)
    await db
      .insertInto('ha_work')
      .values({
        vm_id: vmId,
        host_id: hostId,
        state: 'Pending',
        attempts: 0,
        next_attempt: now,
        ms_id: null,
        last_error: null,
        created: now,
        updated: now,
      })
      .execute();
}

/** Claims due restarts up to ha.workers running at once on this server, and runs them. */
export async function runHaWork(app: App): Promise<void> {
  const mine = runningOf(app);
  const free = app.settings.get(HA_WORKERS) - mine.size;
  if (free <= 0) return;
  const db = app.store.db;
  const now = app.clock.now();
  const due = await db
    .selectFrom('ha_work')
    .selectAll()
    .where('state', '=', 'Pending')
    .where('next_attempt', '<=', now)
    .orderBy('id')
    .limit(free)
    .execute();
  for (const row of due) {
    const claimed = await db
      .updateTable('ha_work')
      .set({ state: 'Running', ms_id: app.server.id, updated: now })
      .where('id', '=', row.id)
      .where('state', '=', 'Pending')
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) continue;
    mine.add(row.id);
    restart(app, row.id, row.vm_id, row.host_id, row.attempts)
      .catch((err) => app.log.error({ err, work: row.id }, 'HA restart failed unexpectedly'))
      .finally(() => mine.delete(row.id));
  }
}

/**
 * Restarts a dead server had claimed are due again (the VM's state machine stops a double start).
 * Cluster-wide work: run by the holder of a lease, not by every server every second.
 */
export async function releaseDeadServersHaWork(app: App): Promise<void> {
  await app.store.db
    .updateTable('ha_work')
    .set({ state: 'Pending', ms_id: null, updated: app.clock.now() })
    .where('state', '=', 'Running')
    .where('ms_id', 'in', deadServerIds(app))
    .execute();
}

/** Rows this server had claimed before it stopped: they are due again. */
export async function releaseHaWork(app: App): Promise<void> {
  await app.store.db
    .updateTable('ha_work')
    .set({ state: 'Pending', ms_id: null, updated: app.clock.now() })
    .where('state', '=', 'Running')
    .where('ms_id', '=', app.server.id)
    .execute();
}

async function finish(app: App, id: number, state: 'Done' | 'Failed' | 'Pending', extra: object = {}) {
  await app.store.db
    .updateTable('ha_work')
    .set({ state, ms_id: null, updated: app.clock.now(), ...extra })
    .where('id', '=', id)
    .execute();
}

async function restart(app: App, id: number, vmId: number, hostId: number, attempts: number): Promise<void> {
  const found = await app.store.db.selectFrom('vms').select('uuid').where('id', '=', vmId).executeTakeFirst();
  if (!found) {
    await finish(app, id, 'Done', { last_error: 'the VM is gone' });
    return;
  }
  // Held as a job holds its VM: a job of its owner on it (a start, a destroy) runs first, on any
  // server, and the restart then sees what it left.
  await withClusterLock(app, jobObjects({ type: 'VirtualMachine', id: found.uuid }), () =>
    restartHeld(app, id, vmId, hostId, attempts),
  );
}

async function restartHeld(
  app: App,
  id: number,
  vmId: number,
  hostId: number,
  attempts: number,
): Promise<void> {
  const db = app.store.db;
  const vm = await db.selectFrom('vms').selectAll().where('id', '=', vmId).executeTakeFirst();
  const host = await db
    .selectFrom('hosts')
    .select(['name', 'state'])
    .where('id', '=', hostId)
    .executeTakeFirst();
  // Started, destroyed or switched off meanwhile by its owner: nothing left to do.
  if (!vm || vm.removed !== null || vm.state !== 'Stopped' || vm.ha_enabled !== 1) {
    await finish(app, id, 'Done', { last_error: vm ? `the VM is ${vm.state}` : 'the VM is gone' });
    return;
  }
  const caller = await loadCaller(app, vm.user_id);
  if (!caller) {
    await finish(app, id, 'Failed', { last_error: 'the VM owner is gone' });
    return;
  }
  const from = host?.name ?? String(hostId);
  // A host still Up was not fenced: the VM stopped there by itself (a guest crash).
  const cause =
    host?.state === 'Up'
      ? `it stopped on host ${from} without a stop request`
      : `its host ${from} was fenced`;
  try {
    const started: VmRow = await startVm({ app, caller }, vm);
    const to = await db
      .selectFrom('hosts')
      .select('name')
      .where('id', '=', started.host_id ?? -1)
      .executeTakeFirst();
    await finish(app, id, 'Done', { attempts: attempts + 1, last_error: null });
    await recordEvent(
      { app },
      db,
      { userId: vm.user_id, accountId: vm.account_id, domainId: vm.domain_id },
      {
        type: 'VM.START',
        description: `HA restarted VM ${vm.name} on host ${to?.name ?? '?'}: ${cause}`,
        resourceType: 'VirtualMachine',
        resourceId: vm.uuid,
      },
    );
    await recordAlert(app, {
      type: VM_ALERT,
      subject: `HA restarted VM ${vm.name} on host ${to?.name ?? '?'}: ${cause}`,
      zoneId: vm.zone_id,
    });
  } catch (e) {
    const err = toApiError(e);
    const tries = attempts + 1;
    const last = tries >= app.settings.get(HA_MAX_RETRIES);
    await finish(app, id, last ? 'Failed' : 'Pending', {
      attempts: tries,
      last_error: err.message.slice(0, 1000),
      next_attempt: app.clock.now() + app.settings.get(HA_RESTART_RETRY) * 1000,
    });
    await recordAlert(app, {
      type: VM_ALERT,
      subject: last
        ? `HA could not restart VM ${vm.name} (${cause}) after ${tries} attempts, it stays Stopped: ${err.message}`
        : `HA could not restart VM ${vm.name} (${cause}) (attempt ${tries}), trying again: ${err.message}`,
      zoneId: vm.zone_id,
    });
  }
}
