/**
 * Runs one declared command for an authenticated caller: parameter validation against the
 * declaration, then the handler (sync) or a queued job (async), and the response body.
 */
import type { CallContext } from '../context.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter } from '../errors.ts';
import { withIcons } from '../icons/icons.ts';
import { enterProject } from '../projects/access.ts';
import { withProjectOwners } from '../projects/owners.ts';
import { type Command, isListResult } from '../registry/command.ts';
import type { ParamSpec, RawValue } from '../registry/params.ts';
import { DEFAULT_PAGE_SIZE } from '../settings/core-settings.ts';
import { resolveEntities } from './entity-refs.ts';
import { listBody } from './serialize.ts';

/** Request parameters that never go into a job row (credentials and signatures). */
const NOT_RECORDED = new Set([
  'signature',
  'apikey',
  'sessionkey',
  'password',
  'currentpassword',
  'command',
  'response',
]);

export function missingParameter(command: string, name: string): ApiError {
  return invalidParameter(
    `Unable to execute API command ${command.toLowerCase()} due to missing parameter ${name}`,
  );
}

function isBlank(raw: RawValue | undefined): boolean {
  return raw === undefined || (typeof raw === 'string' && raw.trim() === '');
}

/**
 * NUL characters are refused in every declared parameter: PostgreSQL cannot store them in text
 * (the statement failed, a 530), and no CloudStack value has one.
 */
function hasNul(raw: RawValue): boolean {
  if (typeof raw === 'string') return raw.includes('\u0000');
  return Object.values(raw).some((entry) =>
    Object.entries(entry).some(([field, v]) => field.includes('\u0000') || v.includes('\u0000')),
  );
}

/** Validates and converts the request parameters a command declares; others are ignored. */
export function parseParams(
  ctx: CallContext,
  command: Command,
  raw: Map<string, RawValue>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const isAdmin = ctx.caller.roleKind === 'admin';
  for (const [name, spec] of Object.entries(command.params) as [string, ParamSpec][]) {
    let value = raw.get(name);
    if (spec.adminOnly && !isAdmin) value = undefined;
    // Upstream ignores blank numbers, booleans, ids and dates; blank strings pass through.
    if (spec.type !== 'string' && isBlank(value)) value = undefined;
    if (value === undefined || (spec.required && isBlank(value))) {
      if (spec.required) throw missingParameter(command.name, name);
      continue;
    }
    if (hasNul(value))
      throw invalidParameter(`Invalid parameter ${name}: its value contains a NUL character`);
    const parsed = spec.parse(value, name);
    // A list of nothing but separators (",,,") is no list, as upstream's tokenizer sees it: absent,
    // or missing when required (handlers would otherwise query `in ()`).
    if (spec.type === 'list' && Array.isArray(parsed) && parsed.length === 0) {
      if (spec.required) throw missingParameter(command.name, name);
      continue;
    }
    out[name] = parsed;
  }
  if ('pagesize' in command.params) checkPaging(ctx, out);
  return out;
}

function checkPaging(ctx: CallContext, params: Record<string, unknown>): void {
  const page = params.page as number | undefined;
  const pagesize = params.pagesize as number | undefined;
  const max = ctx.app.settings.get(DEFAULT_PAGE_SIZE);
  if (pagesize !== undefined && page === undefined && pagesize !== -1) {
    throw invalidParameter('"page" parameter is required when "pagesize" is specified');
  }
  if (page !== undefined && pagesize === undefined) {
    throw invalidParameter('"pagesize" parameter is required when "page" is specified');
  }
  if (pagesize === -1 && page !== undefined) {
    throw invalidParameter("Can't specify page parameter when pagesize is -1 (Unlimited)");
  }
  if (pagesize !== undefined && pagesize !== -1 && (pagesize < 1 || pagesize > max)) {
    throw invalidParameter(`Page size can't exceed max allowed page size value: ${max}`);
  }
  if (page !== undefined && page < 1) throw invalidParameter('Page must be a positive number');
}

/** The body under the response name for a synchronous result. */
export function responseBody(command: Command, result: unknown): object {
  const { responseShape, responseObjectName } = command.catalog;
  if (responseShape === 'list' && result && isListResult(result as object)) {
    const r = result as { count: number; items: object[] };
    return listBody(r.count, responseObjectName ?? 'item', r.items);
  }
  if (responseShape === 'object' && responseObjectName) return { [responseObjectName]: result };
  return result as object;
}

export async function dispatch(
  ctx: CallContext,
  command: Command,
  raw: Map<string, RawValue>,
): Promise<object> {
  const params = parseParams(ctx, command, raw);
  const entities = await resolveEntities(ctx, command, params);
  // A call made in a project: its events are the project's, its project role applies (projects/access.ts).
  if (typeof params.projectid === 'string') await enterProject(ctx, command.name, params.projectid);
  if (!command.isAsync) {
    const result = await command.handler(ctx, params as never);
    await withProjectOwners(ctx, result);
    await withIcons(ctx, command.name, params, result);
    return responseBody(command, result);
  }

  const recorded: Record<string, unknown> = {};
  for (const [k, v] of raw) if (!NOT_RECORDED.has(k)) recorded[k] = v;
  const customJobId = raw.get('customjobid');
  if (
    customJobId !== undefined &&
    (typeof customJobId !== 'string' || !/^[0-9a-f-]{36}$/i.test(customJobId))
  ) {
    throw invalidParameter('customjobid must be a UUID');
  }
  if (typeof customJobId === 'string') {
    const taken = await ctx.app.store.db
      .selectFrom('async_jobs')
      .select('id')
      .where('uuid', '=', customJobId.toLowerCase())
      .executeTakeFirst();
    if (taken)
      throw new ApiError(
        ErrorCode.PARAM_ERROR,
        CsErrorCode.INVALID_PARAMETER,
        `A job with id ${customJobId} already exists`,
      );
  }
  const target = await command.target?.(ctx, params as never);
  const created = command.create ? await command.create(ctx, params as never, entities) : undefined;
  const jobid = await ctx.app.jobs.submit(
    ctx,
    command,
    params,
    recorded,
    target,
    created,
    typeof customJobId === 'string' ? customJobId.toLowerCase() : undefined,
  );
  return created ? { id: created.id, jobid } : { jobid };
}
