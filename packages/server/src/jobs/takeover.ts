/**
 * What a management server declared Down left behind, taken over by a live one (run at start-up
 * and after every heartbeat, once silent peers have been declared Down):
 *
 * 1. its unfinished jobs fail (JobRunner.failOrphans; a job is never taken over half-way: its
 *    handler's progress lives in the dead process, so the caller is told it failed);
 * 2. the objects it held in cluster_locks (its jobs' objects, its network and affinity steps) are
 *    settled by the recovery settlers (its step locks released first: the settlers take them), limited to those objects (recovery.ts): a VM left Starting
 *    becomes Stopped, a router left Starting is Stopped, rules left Add/Revoke are applied, an
 *    address left Releasing is released, a snapshot left Creating fails;
 * 3. its rows are deleted, so the jobs waiting for those objects start, now on settled objects.
 *
 * Step 2 runs while other servers go on with their own jobs: only the dead server's objects are
 * touched. What is not under a lock (host capacity a dead start had reserved) is counted again
 * by the whole-cloud recovery the first time no job runs anywhere (recovery.ts).
 * One live server takes a dead one over at a time (the `takeover:<id>` lock).
 */
import type { App } from '../context.ts';
import { tryLock, unlock, wake } from './locks.ts';
import { markCrashed, settleScope } from './recovery.ts';

export interface TakeoverResult {
  /** Jobs failed because their server is gone. */
  failed: number;
  /** Servers whose objects were settled and released. */
  servers: string[];
  /** Objects moved out of a transient state. */
  settled: number;
}

export async function takeOverDeadServers(app: App): Promise<TakeoverResult> {
  const db = app.store.db;
  const failed = await app.jobs.failOrphans();
  const dead = await db
    .selectFrom('management_servers')
    .select(['id', 'name'])
    .where('state', '=', 'Down')
    .where('id', '!=', app.server.id)
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('cluster_locks')
          .select('name')
          .whereRef('cluster_locks.ms_id', '=', 'management_servers.id')
          .where('expires', 'is', null),
      ),
    )
    .execute();
  const servers: string[] = [];
  let settled = 0;
  for (const server of dead) {
    const token = await tryLock(app, [`takeover:${server.id}`]);
    if (!token) continue;
    try {
      const held = await db
        .selectFrom('cluster_locks')
        .select('name')
        .where('ms_id', '=', server.id)
        .where('expires', 'is', null)
        .execute();
      // Its step locks (a network's, an affinity group's) go before settling: the settlers take
      // those same locks to put the objects right (a rule left Add is applied under its network's
      // lock) and would wait for ever on the dead holder. Its jobs' objects stay held until settled.
      await db
        .deleteFrom('cluster_locks')
        .where('ms_id', '=', server.id)
        .where('expires', 'is', null)
        .where('job_id', 'is', null)
        .execute();
      const r = await settleScope(app, new Set(held.map((h) => h.name)));
      settled += r.settled;
      // Released even when something could not be settled yet (a host still reconnecting): the
      // whole-cloud recovery tries again, and the jobs waiting for these objects must not wait
      // forever for a server that will not come back.
      await db.deleteFrom('cluster_locks').where('ms_id', '=', server.id).execute();
      wake(app);
      servers.push(server.name);
      app.log.warn(
        { server: server.name, objects: held.length, settled: r.settled, pending: r.pending },
        'took over the objects of a management server declared Down',
      );
    } finally {
      await unlock(app, token);
    }
  }
  // A dead start may have reserved host capacity no row shows: counted again when the cloud is idle.
  if (failed > 0 || servers.length > 0) markCrashed(app);
  return { failed, servers, settled };
}
