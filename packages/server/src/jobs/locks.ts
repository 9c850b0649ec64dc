/**
 * Objects held by one management server at a time, for the whole cloud (migration 0034's
 * `cluster_locks`). A lock is a row whose primary key is the object's name: taking it is an
 * INSERT that does nothing when the row exists, so two servers (or two jobs of one server) cannot
 * both hold it, whatever the database's isolation level; releasing it is a DELETE.
 *
 * Three kinds of holders use the one table:
 * - a job holds every object it works on from its start to its end (runner.ts);
 * - withClusterLock holds a name for one step (a network's router, an affinity group's placement);
 * - a scheduled task holds a lease (`expires` set) that its holder renews (scheduled.ts).
 *
 * A server that dies holds its rows until it is declared Down (or, for leases, until they expire):
 * its leases are free at once, its other rows are deleted by the takeover after its jobs have been
 * failed and what they held settled (takeover.ts), so nothing starts on an object a dead job left
 * half-done before it is settled.
 */
import { randomUUID } from 'node:crypto';
import type { ExpressionBuilder } from 'kysely';
import type { App } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database } from '../db/schema.ts';

/** How often a waiting holder looks again when the holder is on another server. */
const POLL_MS = 200;

export interface LockOptions {
  /** The job holding the names (released with it, and by the sweep if its release was lost). */
  jobId?: number;
  /** A lease: the time (epoch ms) the row stops counting if not renewed. */
  expires?: number;
}

/**
 * Leases that no longer hold anything: run out, or of a server declared Down. (A dead server's job
 * and step locks are not stale: they go only once what they held is settled, takeover.ts.)
 */
export function staleLeases(app: App) {
  const now = app.clock.now();
  return (eb: ExpressionBuilder<Database, 'cluster_locks'>) =>
    eb.and([
      eb('expires', 'is not', null),
      eb.or([
        eb('expires', '<', now),
        eb('ms_id', 'in', eb.selectFrom('management_servers').select('id').where('state', '=', 'Down')),
      ]),
    ]);
}

/**
 * Takes every name at once, or none: the names are inserted in sorted order by one statement (so
 * two takers of overlapping sets never wait for each other in a cycle), and a name already held
 * rolls the whole set back. Returns the token the names are held under, or undefined.
 */
export async function tryLock(
  app: App,
  names: string[],
  opts: LockOptions = {},
): Promise<string | undefined> {
  const sorted = [...new Set(names)].sort();
  if (sorted.length === 0) return randomUUID();
  const token = randomUUID();
  if (await insertLocks(app, sorted, token, opts)) return token;
  // Lapsed leases are not in the way: only a refused set pays for looking for them.
  const r = await app.store.db
    .deleteFrom('cluster_locks')
    .where('name', 'in', sorted)
    .where(staleLeases(app))
    .executeTakeFirst();
  if (Number(r.numDeletedRows) === 0) return undefined;
  return (await insertLocks(app, sorted, token, opts)) ? token : undefined;
}

/** Inserts the rows of `sorted` under `token`: all of them, or (false) none. */
async function insertLocks(app: App, sorted: string[], token: string, opts: LockOptions): Promise<boolean> {
  const { db, dialect } = app.store;
  const now = app.clock.now();
  const NOT_ALL = Symbol('not all');
  // One statement is atomic on its own: a single name needs no transaction around it.
  const insert = async (tx: Tx) => {
    const q = tx.insertInto('cluster_locks').values(
      sorted.map((name) => ({
        name,
        ms_id: app.server.id,
        job_id: opts.jobId ?? null,
        token,
        acquired: now,
        expires: opts.expires ?? null,
      })),
    );
    const r = await (dialect === 'mysql'
      ? q.ignore()
      : q.onConflict((oc) => oc.column('name').doNothing())
    ).executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0) !== sorted.length) throw NOT_ALL;
  };
  try {
    if (sorted.length === 1) await insert(db);
    else await db.transaction().execute(insert);
    return true;
  } catch (e) {
    if (e === NOT_ALL) return false;
    throw e;
  }
}

/** Releases what `token` holds and wakes this server's waiters. */
export async function unlock(app: App, token: string): Promise<void> {
  try {
    await app.store.db.deleteFrom('cluster_locks').where('token', '=', token).execute();
  } finally {
    wake(app);
  }
}

/** Per server: waiters to wake when one of its holders lets go (other servers' are polled). */
const waiters = new WeakMap<App, Set<() => void>>();

export function wake(app: App): void {
  const set = waiters.get(app);
  if (!set) return;
  waiters.delete(app);
  for (const w of set) w();
}

/** Waits until this server releases something, or POLL_MS (with jitter) for other servers'. */
export function waitForRelease(app: App): Promise<void> {
  return new Promise((resolve) => {
    let set = waiters.get(app);
    if (!set) {
      set = new Set();
      waiters.set(app, set);
    }
    const done = () => {
      clearTimeout(timer);
      set.delete(done);
      resolve();
    };
    const timer = setTimeout(done, POLL_MS + Math.random() * POLL_MS);
    set.add(done);
  });
}

/** Takes the names, waiting as long as another holder has one of them. */
export async function lock(app: App, names: string[], opts: LockOptions = {}): Promise<string> {
  for (;;) {
    const token = await tryLock(app, names, opts);
    if (token) return token;
    await waitForRelease(app);
  }
}

/**
 * Runs `run` holding `names` across the cloud: steps that must not overlap on one object whichever
 * server runs them (a network's router changes, placements in one affinity group). Not reentrant:
 * a holder that asks again for a name it holds waits forever.
 */
export async function withClusterLock<T>(app: App, names: string[], run: () => Promise<T>): Promise<T> {
  const token = await lock(app, names);
  try {
    return await run();
  } finally {
    await unlock(app, token).catch((err) =>
      app.log.error({ err, names }, 'could not release a lock (the job sweep or a takeover frees it)'),
    );
  }
}

/**
 * Deletes this server's rows of jobs that have ended (a release lost to a database error) and
 * stale leases. Run at every heartbeat, after dead servers have been taken over. (A dead server's
 * ended jobs are not swept: their rows go once what they held is settled.)
 */
export async function sweepLocks(app: App): Promise<number> {
  const r = await app.store.db
    .deleteFrom('cluster_locks')
    .where((eb) =>
      eb.or([
        staleLeases(app)(eb),
        eb.and([
          eb('ms_id', '=', app.server.id),
          eb('job_id', 'in', eb.selectFrom('async_jobs').select('id').where('status', '!=', 0)),
        ]),
      ]),
    )
    .executeTakeFirst();
  const n = Number(r.numDeletedRows);
  if (n > 0) wake(app);
  return n;
}
