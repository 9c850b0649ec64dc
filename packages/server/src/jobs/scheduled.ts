/**
 * Scheduled work that runs once in the cloud, however many management servers share the database
 * (snapshot policies, network garbage collection, capacity alerts, VPN checks, VM HA's sweep of
 * restarts a dead server had claimed, the built-in templates): each task runs on the server
 * holding its lease, a cluster_locks row named `lease:<task>` with an expiry (jobs/locks.ts).
 *
 * Every tick (5 s after start, then the task's interval, read again each time) a server renews the
 * lease if it holds it,
 * or takes it if it is free, lapsed or held by a server declared Down; only the holder runs the
 * task. While it holds the lease it renews it every third of the lease time, also during a long
 * run, so a live holder keeps it. The lease time is the heartbeat threshold: a holder that stops
 * renewing lapses when it would be declared Down anyway; one declared Down loses it at once; one
 * that stops cleanly gives it up, and the next tick of another server takes it.
 *
 * A run that outlives its holder's lease (a server frozen longer than the threshold) can overlap
 * the next holder's first run: the tasks guard their own items (a snapshot policy's next run is
 * moved by a compare-and-set before the snapshot is taken; a network is shut down under its lock).
 * Work each server does for itself (its heartbeat, its agents' pings and statistics) is not here.
 */
import { heartbeatThresholdMs } from '../cluster/heartbeat.ts';
import type { App } from '../context.ts';
import { tryLock } from './locks.ts';

export interface ScheduledTask {
  /** Unique in the cloud: the lease is `lease:<name>`. */
  name: string;
  /** Milliseconds between two runs, read again before each. */
  everyMs: () => number;
  run: () => Promise<unknown>;
}

const leaseName = (task: string) => `lease:${task}`;
const FIRST_TICK_MS = 5_000;

/** Renews this server's lease on `task`, or takes it if it is free; whether it holds it now. */
export async function holdLease(app: App, task: string): Promise<boolean> {
  const expires = app.clock.now() + heartbeatThresholdMs(app.settings);
  const renewed = await app.store.db
    .updateTable('cluster_locks')
    .set({ expires })
    .where('name', '=', leaseName(task))
    .where('ms_id', '=', app.server.id)
    .executeTakeFirst();
  if (Number(renewed.numUpdatedRows) === 1) return true;
  return (await tryLock(app, [leaseName(task)], { expires })) !== undefined;
}

/** Gives up every lease this server holds (a clean stop): the others take them at their next tick. */
export async function releaseMyLeases(app: App): Promise<void> {
  await app.store.db
    .deleteFrom('cluster_locks')
    .where('ms_id', '=', app.server.id)
    .where('expires', 'is not', null)
    .execute();
}

/** Which server holds each lease now (tests, the operator's listing). */
export async function leaseHolders(app: App): Promise<Map<string, number>> {
  const rows = await app.store.db
    .selectFrom('cluster_locks')
    .select(['name', 'ms_id'])
    .where('name', 'like', 'lease:%')
    .where('expires', '>=', app.clock.now())
    .execute();
  return new Map(rows.map((r) => [r.name.slice('lease:'.length), r.ms_id]));
}

/** Runs `task` every `everyMs` on the one server holding its lease; returns the function that stops it. */
export function startScheduled(app: App, task: ScheduledTask): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let renewer: NodeJS.Timeout | undefined;
  const keepRenewing = () => {
    if (renewer) return;
    renewer = setInterval(
      () => {
        if (stopped) return;
        holdLease(app, task.name)
          .then((held) => {
            if (!held) stopRenewing();
          })
          .catch((err) => app.log.warn({ err, task: task.name }, 'could not renew a lease'));
      },
      Math.max(100, Math.floor(heartbeatThresholdMs(app.settings) / 3)),
    );
    renewer.unref();
  };
  const stopRenewing = () => {
    clearInterval(renewer);
    renewer = undefined;
  };
  const tick = async () => {
    if (stopped) return;
    if (!(await holdLease(app, task.name))) {
      stopRenewing();
      return;
    }
    keepRenewing();
    await task.run();
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      tick()
        .catch((err) => app.log.error({ err, task: task.name }, 'scheduled task failed'))
        .finally(() => schedule(task.everyMs()));
    }, ms);
    timer.unref();
  };
  // The first tick comes soon after start, so that a task's lease has a holder within seconds
  // even when its interval is long; then every interval.
  schedule(Math.min(task.everyMs(), FIRST_TICK_MS));
  return () => {
    stopped = true;
    clearTimeout(timer);
    stopRenewing();
  };
}
