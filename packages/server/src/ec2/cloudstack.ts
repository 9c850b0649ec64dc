/**
 * How EC2 actions act: each runs the CloudStack command that does the same thing, in-process,
 * through the same path a CloudStack API call takes after authentication (the caller's role
 * rules, the declaration's parameter checks, then the handler or a queued job). So an EC2 call is
 * an ordinary CloudStack operation: the same events, jobs, limits, access checks and isolation,
 * visible in listEvents and listAsyncJobs, and allowed exactly when the user's CloudStack call
 * would be.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
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

/**
 * The object of a CloudStack list command with this UUID, if the caller sees it. The list
 * commands refuse an unknown UUID (431) or another account's (531), where EC2 says ….NotFound.
 */
export async function listedById<T>(
  ctx: Ec2Context,
  name: string,
  objectName: string,
  uuid: string,
): Promise<T | undefined> {
  try {
    const [found] = await listAll<T>(ctx, name, objectName, { id: uuid });
    return found;
  } catch (err) {
    if (
      err instanceof ApiError &&
      (err.errorcode === ErrorCode.PARAM_ERROR || err.errorcode === ErrorCode.ACCOUNT_ERROR)
    )
      return undefined;
    throw err;
  }
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

/** Tables whose internal id orders a CloudStack list command's answer (its pages follow it). */
export type OrderTable = 'vms' | 'volumes' | 'snapshots';

interface PageToken {
  /** How many of the command's objects (unfiltered) came before the next page. */
  o: number;
  /** The UUID of the last object answered. */
  u: string;
}

function readToken(token: string): PageToken {
  const bad = () => new Ec2Error('InvalidParameterValue', `The NextToken '${token}' is invalid.`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  const t = parsed as Partial<PageToken>;
  if (
    !Number.isSafeInteger(t?.o) ||
    (t.o as number) < 0 ||
    typeof t.u !== 'string' ||
    !/^[0-9a-f-]{36}$/.test(t.u)
  )
    throw bad();
  return t as PageToken;
}

/**
 * One EC2 page of a CloudStack list command's objects, read a chunk at a time from the command's
 * own pages (its filters narrow what is read; `keep` applies the rest), so a page costs a few
 * chunks, not the caller's whole list. The command's order is creation order (the internal id of
 * `table`); NextToken carries the position after the page and its last object's UUID. When
 * objects before that position went away (or came back) meanwhile, the position is found again
 * from the last object's internal id, which stays in the table even for deleted objects: no
 * object is skipped or repeated.
 */
export async function listPage<T extends { id: string }>(
  ctx: Ec2Context,
  list: { name: string; objectName: string; table: OrderTable },
  params: CsParams,
  keep: (item: T) => boolean,
  maxResults: number,
  nextToken: string | undefined,
): Promise<{ page: T[]; nextToken?: string }> {
  const chunk = Math.min(500, Math.max(100, maxResults));
  let total = 0;
  /** The command's objects at positions [start, start + n). */
  const at = async (start: number, n: number): Promise<T[]> => {
    const out: T[] = [];
    for (let page = Math.floor(start / chunk); page * chunk < start + n; page++) {
      const body = await runCommand(ctx, list.name, { ...params, page: page + 1, pagesize: chunk });
      total = Number(body.count ?? 0);
      const items = (body[list.objectName] as T[] | undefined) ?? [];
      out.push(...items.slice(Math.max(0, start - page * chunk), start + n - page * chunk));
      if (items.length < chunk) break;
    }
    return out;
  };
  let pos = 0;
  if (nextToken !== undefined) {
    const token = readToken(nextToken);
    pos = await resumeAt(ctx, list.table, token, chunk, at);
  }
  const page: T[] = [];
  for (;;) {
    const items = await at(pos, chunk);
    for (const item of items) {
      pos++;
      if (keep(item)) page.push(item);
      if (page.length === maxResults) break;
    }
    if (page.length === maxResults || items.length < chunk) break;
  }
  const more = page.length === maxResults && pos < total;
  return {
    page,
    nextToken: more
      ? Buffer.from(JSON.stringify({ o: pos, u: page[page.length - 1].id })).toString('base64url')
      : undefined,
  };
}

/** Where the page after the token's object starts now: after every object made no later than it. */
async function resumeAt<T extends { id: string }>(
  ctx: Ec2Context,
  table: OrderTable,
  token: PageToken,
  chunk: number,
  at: (start: number, n: number) => Promise<T[]>,
): Promise<number> {
  const db = ctx.app.store.db;
  const last = await db.selectFrom(table).select('id').where('uuid', '=', token.u).executeTakeFirst();
  if (!last) throw new Ec2Error('InvalidParameterValue', 'The NextToken is invalid.');
  const internalIds = async (items: T[]) =>
    new Map(
      (
        await db
          .selectFrom(table)
          .select(['uuid', 'id'])
          .where(
            'uuid',
            'in',
            items.map((i) => i.id),
          )
          .execute()
      ).map((r) => [r.uuid, r.id]),
    );
  // The objects up to the token's one are a prefix of the order; look for its end around `o`.
  // Objects that went away move it back; objects that came back (a recovered VM) forward.
  let start = Math.max(0, token.o - chunk);
  let back = false;
  for (;;) {
    const items = await at(start, chunk);
    if (items.length === 0) return start;
    const ids = await internalIds(items);
    const before = items.filter((i) => (ids.get(i.id) ?? 0) <= last.id).length;
    if (before === 0 && start > 0) {
      start = Math.max(0, start - chunk);
      back = true;
    } else if (before === items.length && items.length === chunk && !back) start += chunk;
    else return start + before;
  }
}
