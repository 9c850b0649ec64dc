/**
 * How EC2 actions act: each runs the CloudStack command that does the same thing, in-process,
 * through the same path a CloudStack API call takes after authentication (the caller's role
 * rules, the declaration's parameter checks, then the handler or a queued job). So an EC2 call is
 * an ordinary CloudStack operation: the same events, jobs, limits, access checks and isolation,
 * visible in listEvents and listAsyncJobs, and allowed exactly when the user's CloudStack call
 * would be.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, CsErrorCode } from '../errors.ts';
import { dispatch } from '../http/dispatch.ts';
import { mayCall } from '../iam/caller.ts';
import type { RawValue } from '../registry/params.ts';
import type { Ec2Context } from './action.ts';
import { dryRunOperation, Ec2Error, unauthorized } from './errors.ts';

export type CsParams = Record<
  string,
  string | number | boolean | Record<string, Record<string, string>> | undefined
>;

/** CloudStack's read-only commands by name (list…, get…): what a DryRun may still run. */
const READS = /^(list|get)[A-Z]/;

/**
 * Runs a CloudStack command as the caller; returns its response body (for async ones: {id, jobid}).
 * Under DryRun a command that changes something is not run: the role check answers for it.
 */
export async function runCommand(
  ctx: Ec2Context,
  name: string,
  params: CsParams,
): Promise<Record<string, unknown>> {
  const command = ctx.app.registry.get(name);
  if (!command) throw new Error(`EC2 action needs CloudStack command ${name}`);
  if (!(await mayCall(ctx.app, ctx.caller, command))) throw unauthorized();
  if (ctx.dryRun && !READS.test(name)) throw dryRunOperation();
  const raw = new Map<string, RawValue>();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined) raw.set(k, typeof v === 'object' ? v : String(v));
  return (await dispatch(ctx.cs, command, raw)) as Record<string, unknown>;
}

/** Every object a CloudStack list command returns for the caller (all pages). */
export async function listAll<T = Record<string, unknown>>(
  ctx: Ec2Context,
  name: string,
  objectName: string,
  params: CsParams = {},
): Promise<T[]> {
  const body = await runCommand(ctx, name, { ...params, pagesize: -1 });
  return (body[objectName] as T[] | undefined) ?? [];
}

/** How long an action waits for a quick job it must finish before answering. */
const WAIT_MS = 30_000;

/**
 * Runs a CloudStack command and, when it is asynchronous, waits for its job: for actions whose
 * EC2 answer promises the change is made (tags, security group rules, addresses). Returns the
 * command's answer (a job's result); the job's failure is the action's.
 */
export async function runToCompletion(
  ctx: Ec2Context,
  name: string,
  params: CsParams,
): Promise<Record<string, unknown>> {
  const body = await runCommand(ctx, name, params);
  const jobid = body.jobid;
  if (typeof jobid !== 'string') return body;
  const deadline = Date.now() + WAIT_MS;
  for (let pause = 5; Date.now() < deadline; pause = Math.min(pause * 2, 200)) {
    const job = await ctx.app.store.db
      .selectFrom('async_jobs')
      .select(['status', 'result'])
      .where('uuid', '=', jobid)
      .executeTakeFirstOrThrow();
    if (job.status === 1) return JSON.parse(job.result ?? '{}') as Record<string, unknown>;
    if (job.status === 2) {
      const { errorcode, errortext } = JSON.parse(job.result ?? '{}') as {
        errorcode: number;
        errortext: string;
      };
      throw new ApiError(errorcode, CsErrorCode.CLOUD_RUNTIME, errortext);
    }
    await sleep(pause);
  }
  throw new Ec2Error('InternalError', `The ${name} job ${jobid} has not finished yet; it goes on.`, 500);
}
