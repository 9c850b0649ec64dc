/** queryAsyncJobResult and listAsyncJobs. */

import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import type { AsyncJobRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { listOwned } from '../iam/owned.ts';
import { defineCommand } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { invalidUuidText, listParams, p } from '../registry/params.ts';

/** The names a job's response carries besides its own row. */
interface JobNames {
  account_uuid: string | null;
  account_name: string | null;
  user_uuid: string | null;
  domain_uuid: string | null;
  domain_path: string | null;
  ms_uuid: string | null;
  ms_name: string | null;
}

function jobResponse(j: AsyncJobRow, n: JobNames): object {
  return {
    jobid: j.uuid,
    accountid: n.account_uuid ?? undefined,
    account: n.account_name ?? undefined,
    userid: n.user_uuid ?? undefined,
    domainid: n.domain_uuid ?? undefined,
    domainpath: n.domain_path === null ? undefined : displayPath(n.domain_path),
    cmd: j.cmd,
    jobstatus: j.status,
    jobprocstatus: j.process_status,
    jobresultcode: j.result_code,
    jobresulttype: j.result_type ?? undefined,
    jobresult: j.result ? JSON.parse(j.result) : undefined,
    jobinstancetype: j.instance_type ?? undefined,
    jobinstanceid: j.instance_id ?? undefined,
    managementserverid: n.ms_uuid ?? undefined,
    managementservername: n.ms_name ?? undefined,
    created: formatDate(j.created),
    completed: formatDate(j.completed),
  };
}

/** A page of jobs: their owners' and servers' names in one look-up per table. */
async function presentJobs(ctx: CallContext, rows: AsyncJobRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const [accounts, users, domains, servers] = await Promise.all([
    db
      .selectFrom('accounts')
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.account_id))])
      .execute(),
    db
      .selectFrom('users')
      .select(['id', 'uuid'])
      .where('id', 'in', [...new Set(rows.map((r) => r.user_id))])
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'path'])
      .where('id', 'in', [...new Set(rows.map((r) => r.domain_id))])
      .execute(),
    db
      .selectFrom('management_servers')
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', [...new Set(rows.map((r) => r.ms_id))])
      .execute(),
  ]);
  const account = new Map(accounts.map((a) => [a.id, a]));
  const user = new Map(users.map((u) => [u.id, u]));
  const domain = new Map(domains.map((d) => [d.id, d]));
  const server = new Map(servers.map((s) => [s.id, s]));
  return rows.map((j) =>
    jobResponse(j, {
      account_uuid: account.get(j.account_id)?.uuid ?? null,
      account_name: account.get(j.account_id)?.name ?? null,
      user_uuid: user.get(j.user_id)?.uuid ?? null,
      domain_uuid: domain.get(j.domain_id)?.uuid ?? null,
      domain_path: domain.get(j.domain_id)?.path ?? null,
      ms_uuid: server.get(j.ms_id)?.uuid ?? null,
      ms_name: server.get(j.ms_id)?.name ?? null,
    }),
  );
}

export const queryAsyncJobResult = defineCommand({
  name: 'queryAsyncJobResult',
  description:
    "Returns the status of an asynchronous job and, once finished, its result or error; other accounts' jobs look like missing ones.",
  params: {
    jobid: p.uuid({
      required: true,
      description: 'UUID of the job, as returned by the asynchronous command.',
      checkedByHandler: true,
    }),
  },
  async handler(ctx, params) {
    // The most polled call of all: the job and its names in one query (one round trip).
    const job = await ctx.app.store.db
      .selectFrom('async_jobs')
      .leftJoin('accounts', 'accounts.id', 'async_jobs.account_id')
      .leftJoin('users', 'users.id', 'async_jobs.user_id')
      .leftJoin('domains', 'domains.id', 'async_jobs.domain_id')
      .leftJoin('management_servers', 'management_servers.id', 'async_jobs.ms_id')
      .selectAll('async_jobs')
      .select([
        'accounts.uuid as account_uuid',
        'accounts.name as account_name',
        'users.uuid as user_uuid',
        'domains.uuid as domain_uuid',
        'domains.path as domain_path',
        'management_servers.uuid as ms_uuid',
        'management_servers.name as ms_name',
      ])
      .where('async_jobs.uuid', '=', params.jobid)
      .executeTakeFirst();
    // Another account's job is reported exactly like a missing one.
    const visible =
      job &&
      (ctx.caller.roleKind === 'admin' ||
        job.account_id === ctx.caller.account.id ||
        (await canSeeAccount(ctx, job.account_id)));
    // No such job: the entity check's answer, which this read stands in for (checkedByHandler).
    if (!job) throw invalidParameter(invalidUuidText('jobid', params.jobid));
    if (!visible) throw invalidParameter(`Unable to find a job by id ${params.jobid}`);
    return jobResponse(job, job);
  },
});

async function canSeeAccount(ctx: CallContext, accountId: number): Promise<boolean> {
  if (ctx.caller.roleKind === 'user') return false;
  const row = await ctx.app.store.db
    .selectFrom('accounts')
    .innerJoin('domains', 'domains.id', 'accounts.domain_id')
    .select('domains.path')
    .where('accounts.id', '=', accountId)
    .executeTakeFirst();
  return row?.path.startsWith(ctx.caller.domain.path) ?? false;
}

export const listAsyncJobs = defineCommand({
  name: 'listAsyncJobs',
  description:
    'Lists the asynchronous jobs of the accounts the caller may see, newest first, with their status.',
  params: {
    ...listParams,
    account: p.string({
      description: "Only jobs of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only jobs in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include jobs of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include jobs of every account they may see.',
    }),
    startdate: p.date({ description: 'Only jobs created at or after this time.' }),
    managementserverid: p.uuid({ description: 'Only jobs run by the management server with this UUID.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('async_jobs');
    if (params.startdate !== undefined) q = q.where('created', '>=', params.startdate);
    if (params.managementserverid) {
      q = q.where(
        'ms_id',
        'in',
        app.store.db
          .selectFrom('management_servers')
          .select('id')
          .where('uuid', '=', params.managementserverid),
      );
    }
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'command',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    return listOwned(ctx, params, q, {
      owner: { account: 'account_id', domain: 'domain_id' },
      rows: (scoped, page) => paginate(scoped.selectAll().orderBy('id', 'desc'), page).execute(),
      present: (rows) => presentJobs(ctx, rows),
    });
  },
});

export const jobCommands = [queryAsyncJobResult, listAsyncJobs];
