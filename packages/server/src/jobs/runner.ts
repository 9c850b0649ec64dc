/**
 * Async jobs. A job is a row in async_jobs before it runs; queryAsyncJobResult reads that row.
 * Jobs on the same entity (a VM, a volume...) run one after another, as CloudStack serialises
 * them; jobs on different entities run concurrently. A job whose management server stopped is
 * failed cleanly by the next server that starts or notices it.
 */
import { deadServerIds } from '../cluster/heartbeat.ts';
import type { App, CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { ApiError, toApiError } from '../errors.ts';
import { ownerOf, recordEvent } from '../events/events.ts';
import { withProjectOwners } from '../projects/owners.ts';
import type { Command, CommandResult, JobTarget } from '../registry/command.ts';

export const JOB_INTERRUPTED =
  'Job failed because the management server running it stopped before it finished';

export class JobRunner {
  private readonly chains = new Map<string, Promise<void>>();
  private readonly running = new Set<Promise<void>>();
  /** Jobs whose handler runs now (the others of `running` wait behind a job on the same object). */
  executing = 0;
  /** Told how long each job ran and whether it succeeded (the metrics exporter's job histogram). */
  onFinished?: (command: string, succeeded: boolean, seconds: number) => void;

  constructor(private readonly app: () => App) {}

  /** Records the job and starts it (after earlier jobs on the same entity). Returns the job uuid. */
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
    const key = instance ? `${instance.type}:${instance.id}` : `job:${uuid}`;
    const previous = this.chains.get(key) ?? Promise.resolve();
    // A failure outside the handler (recording the Started event, writing the result) must not
    // escape: it was an unhandled rejection that stopped the server, and the rejected chain kept
    // every later job on the same object from running. The job fails instead.
    const next = previous
      .then(() => this.execute(ctx, command, params, jobId, created, instance, scheduledId))
      .catch((e) => this.failUnexpectedly(command, jobId, e));
    this.chains.set(key, next);
    this.running.add(next);
    next.finally(() => {
      this.running.delete(next);
      if (this.chains.get(key) === next) this.chains.delete(key);
    });
    return uuid;
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
