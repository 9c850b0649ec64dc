/**
 * Async jobs. A job is a row in async_jobs before it runs; queryAsyncJobResult reads that row.
 * Jobs on the same object (a VM, a volume...) run one after another, as CloudStack serialises
 * them, whichever management server runs them; jobs on different objects run concurrently. A job
 * names its objects in async_job_objects when it is submitted and starts once no older unfinished
 * job shares one of them (submission order) and it holds all of them in cluster_locks (mutual
 * exclusion: two servers that both see no older job cannot both run). A job whose management
 * server stopped is failed cleanly, and its objects released, by the next server that starts or
 * notices it (takeover.ts).
 */
import { deadServerIds } from '../cluster/heartbeat.ts';
import type { App, CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { ApiError, toApiError } from '../errors.ts';
import { ownerOf, recordEvent } from '../events/events.ts';
import { withProjectOwners } from '../projects/owners.ts';
import type { Command, CommandResult, JobTarget } from '../registry/command.ts';
import { tryLock, unlock, waitForRelease } from './locks.ts';

export const JOB_INTERRUPTED =
  'Job failed because the management server running it stopped before it finished';

/** The names a job holds: its created object, its target, and the objects they are reached through. */
export function jobObjects(...targets: (JobTarget | undefined)[]): string[] {
  const names = new Set<string>();
  const add = (t: JobTarget) => {
    names.add(`${t.type}:${t.id}`);
    for (const w of t.with ?? []) add(w);
  };
  for (const t of targets) if (t) add(t);
  return [...names];
}

export class JobRunner {
  private readonly running = new Set<Promise<void>>();
  /** Jobs whose handler runs now (the others of `running` wait behind a job on the same object). */
  executing = 0;
  /** Told how long each job ran and whether it succeeded (the metrics exporter's job histogram). */
  onFinished?: (command: string, succeeded: boolean, seconds: number) => void;

  constructor(private readonly app: () => App) {}

  /** Records the job and starts it (after earlier jobs on the same objects). Returns the job uuid. */
  async submit(
    ctx: CallContext,
    command: Command,
    params: Record<string, unknown>,
    rawParams: Record<string, unknown>,
    target: JobTarget | undefined,
    created: JobTarget | undefined,
    customJobId?: string,
  ): Promise<string> {
    const app = this.app();
    const uuid = customJobId ?? app.ids.uuid();
    const now = app.clock.now();
    const owner = ownerOf(ctx);
    const instance = created ?? target;
    let jobId = 0;
    let scheduledId: number | undefined;
    await app.store.db.transaction().execute(async (tx) => {
      jobId = await insertId(app.store, tx, 'async_jobs', {
        uuid,
        // The job is the caller's (their queryAsyncJobResult), even when its events are a project's.
        user_id: ctx.caller.user.id,
        account_id: ctx.caller.account.id,
        domain_id: ctx.caller.domain.id,
        command: command.name,
        cmd: command.catalog.javaClass ?? command.name,
        params: JSON.stringify(rawParams),
        instance_type: instance?.type ?? null,
        instance_id: instance?.id ?? null,
        status: 0,
        process_status: 0,
        result_code: 0,
        result_type: null,
        result: null,
        ms_id: app.server.id,
        created: now,
        completed: null,
      });
      const objects = jobObjects(created, target);
      if (objects.length > 0)
        await tx
          .insertInto('async_job_objects')
          .values(objects.map((object_key) => ({ object_key, job_id: jobId })))
          .execute();
      if (command.event) {
        scheduledId = await recordEvent(ctx, tx, owner, {
          type: command.event.type,
          state: 'Scheduled',
          description: command.event.description(params as never),
          resourceType: instance?.type,
          resourceId: instance?.id,
        });
      }
    });
    const objects = jobObjects(created, target);
    // A failure outside the handler (waiting for the objects, recording the Started event, writing
    // the result) must not escape: it was an unhandled rejection that stopped the server. The job
    // fails instead.
    const next = this.whenFree(jobId, objects, () =>
      this.execute(ctx, command, params, jobId, created, instance, scheduledId),
    ).catch((e) => this.failUnexpectedly(command, jobId, e));
    this.running.add(next);
    next.finally(() => this.running.delete(next));
    return uuid;
  }

  /**
   * Runs `run` once the job may: no older unfinished job names one of its objects, and it holds
   * them all. Waits for this server's releases, and polls for other servers'.
   */
  private async whenFree(jobId: number, objects: string[], run: () => Promise<void>): Promise<void> {
    const app = this.app();
    if (objects.length === 0) return run();
    let token: string | undefined;
    for (;;) {
      const older = await app.store.db
        .selectFrom('async_job_objects')
        .innerJoin('async_jobs', 'async_jobs.id', 'async_job_objects.job_id')
        .select('async_job_objects.job_id')
        .where('async_job_objects.object_key', 'in', objects)
        .where('async_job_objects.job_id', '<', jobId)
        .where('async_jobs.status', '=', 0)
        .limit(1)
        .executeTakeFirst();
      if (!older) {
        token = await tryLock(app, objects, { jobId });
        if (token) break;
      }
      await waitForRelease(app);
    }
    try {
      await run();
    } finally {
      // The job's row says it ended before its objects are released, so the next job never
      // counts it as older and unfinished. A lost release is swept at the next heartbeat.
      await unlock(app, token).catch((err) => app.log.error({ err, jobId }, 'could not release a job'));
      await app.store.db
        .deleteFrom('async_job_objects')
        .where('job_id', '=', jobId)
        .execute()
        .catch((err) => app.log.warn({ err, jobId }, 'could not forget the objects of an ended job'));
    }
  }

  private async execute(
    ctx: CallContext,
    command: Command,
    params: Record<string, unknown>,
    jobId: number,
    created: JobTarget | undefined,
    instance: JobTarget | undefined,
    scheduledId: number | undefined,
  ): Promise<void> {
    const app = this.app();
    const owner = ownerOf(ctx);
    const description = command.event?.description(params as never);
    let startId = scheduledId;
    if (command.event && description) {
      startId = await recordEvent(ctx, app.store.db, owner, {
        type: command.event.type,
        state: 'Started',
        description,
        resourceType: instance?.type,
        resourceId: instance?.id,
        startId: scheduledId,
      });
    }
    let status = 1;
    let resultCode = 0;
    let result: unknown;
    const started = performance.now();
    this.executing++;
    try {
      const out = await command.handler(ctx, params as never, created);
      await withProjectOwners(ctx, out);
      result = jobResult(command, out);
    } catch (e) {
      const err = toApiError(e);
      if (!(e instanceof ApiError))
        app.log.error({ err: e, command: command.name }, 'async job failed unexpectedly');
      status = 2;
      resultCode = err.errorcode;
      result = { errorcode: err.errorcode, errortext: err.message };
    } finally {
      this.executing--;
    }
    this.onFinished?.(command.name, status === 1, (performance.now() - started) / 1000);
    await app.store.db
      .updateTable('async_jobs')
      .set({
        status,
        result_code: resultCode,
        result_type: 'object',
        result: JSON.stringify(result),
        completed: app.clock.now(),
      })
      .where('id', '=', jobId)
      // A job its peers already failed (this server was declared Down while it ran) stays failed:
      // its objects went to the jobs after it, and pollers were told.
      .where('status', '=', 0)
      .execute();
    if (command.event && description) {
      await recordEvent(ctx, app.store.db, owner, {
        type: command.event.type,
        state: 'Completed',
        level: status === 1 ? 'INFO' : 'ERROR',
        description:
          status === 1
            ? `Successfully completed ${description}`
            : `Error while ${description}: ${(result as { errortext: string }).errortext}`,
        resourceType: instance?.type,
        resourceId: instance?.id,
        startId,
      });
    }
  }

  private async failUnexpectedly(command: Command, jobId: number, e: unknown): Promise<void> {
    const app = this.app();
    app.log.error({ err: e, command: command.name }, 'async job failed unexpectedly');
    const err = toApiError(e);
    try {
      await app.store.db
        .updateTable('async_jobs')
        .set({
          status: 2,
          result_code: err.errorcode,
          result_type: 'object',
          result: JSON.stringify({ errorcode: err.errorcode, errortext: err.message }),
          completed: app.clock.now(),
        })
        .where('id', '=', jobId)
        .where('status', '=', 0)
        .execute();
    } catch (again) {
      // The database itself is failing: the job stays running until failOrphans ends it.
      app.log.error({ err: again, command: command.name }, 'could not record a failed job');
    }
  }

  /** Waits until every job started so far has finished (graceful shutdown, tests). */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Fails the unfinished jobs of servers that stopped, or fell silent past cluster.heartbeat.threshold. */
  async failOrphans(): Promise<number> {
    const app = this.app();
    const now = app.clock.now();
    const dead = deadServerIds(app);
    const r = await app.store.db
      .updateTable('async_jobs')
      .set({
        status: 2,
        result_code: 530,
        result_type: 'object',
        result: JSON.stringify({ errorcode: 530, errortext: JOB_INTERRUPTED }),
        completed: now,
      })
      .where('status', '=', 0)
      .where('ms_id', 'in', dead)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  }
}

/** The jobresult of a successful job: the object under its object name, or an inline response as is. */
export function jobResult(command: Command, out: CommandResult): unknown {
  const { responseShape, responseObjectName } = command.catalog;
  if (responseShape === 'inline' || !responseObjectName) return out;
  return { [responseObjectName]: out };
}
