/**
 * Projects as the API shows them (with the project account's limits and counts) and listProjects:
 * the projects an account is a member of, or, for admins with listall/domainid/id, all they reach.
 */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { applyScope, checkDomainAccess, escapeLike, likeEscaped, type OwnerScope } from '../iam/access.ts';
import { resolveAccount } from '../iam/accounts.ts';
import { limitsOf, ResourceKind } from '../iam/limits.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import { PROJECT_ROLE } from './access.ts';
import type { ProjectRow } from './tables.ts';

/** Upstream's figures on a project: the prefix of <prefix>limit/total/available per resource type. */
const FIGURES: [string, number][] = [
  ['vm', ResourceKind.Instance],
  ['ip', ResourceKind.PublicIp],
  ['volume', ResourceKind.Volume],
  ['snapshot', ResourceKind.Snapshot],
  ['template', ResourceKind.Template],
  ['network', ResourceKind.Network],
  ['vpc', ResourceKind.Vpc],
  ['cpu', ResourceKind.Cpu],
  ['memory', ResourceKind.Memory],
  ['primarystorage', ResourceKind.PrimaryStorage],
  ['secondarystorage', ResourceKind.SecondaryStorage],
];

/** Projects as the API shows them: owners, state, the project account's limits and counts, tags. */
export async function presentProjects(ctx: CallContext, rows: ProjectRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = rows.map((r) => r.id);
  const [domains, accounts, owners, vms, tags] = await Promise.all([
    db
      .selectFrom('domains')
      .selectAll()
      .where(
        'id',
        'in',
        rows.map((r) => r.domain_id),
      )
      .execute(),
    db
      .selectFrom('accounts')
      .selectAll()
      .where(
        'id',
        'in',
        rows.map((r) => r.project_account_id),
      )
      .execute(),
    db
      .selectFrom('project_members')
      .innerJoin('accounts', 'accounts.id', 'project_members.account_id')
      .leftJoin('users', 'users.id', 'project_members.user_id')
      .select([
        'project_members.project_id',
        'accounts.name as account',
        'accounts.uuid as accountid',
        'users.username as user',
        'users.uuid as userid',
      ])
      .where('project_members.project_id', 'in', ids)
      .where('project_members.role', '=', PROJECT_ROLE.Admin)
      .orderBy('project_members.id')
      .execute(),
    db
      .selectFrom('vms')
      .select(['account_id', 'state'])
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where(
        'account_id',
        'in',
        rows.map((r) => r.project_account_id),
      )
      .where('removed', 'is', null)
      .groupBy(['account_id', 'state'])
      .execute(),
    tagsOf(ctx, 'Project', ids),
  ]);
  const domainById = new Map(domains.map((d) => [d.id, d]));
  const accountById = new Map(accounts.map((a) => [a.id, a]));
  const figures = await limitsOf(ctx, accounts);
  return rows.map((r) => {
    const domain = domainById.get(r.domain_id)!;
    const account = accountById.get(r.project_account_id);
    const out: Record<string, unknown> = {
      id: r.uuid,
      name: r.name,
      displaytext: r.display_text,
      domainid: domain.uuid,
      domain: domain.name,
      owner: owners
        .filter((o) => o.project_id === r.id)
        .map((o) => ({
          account: o.account,
          accountid: o.accountid,
          ...(o.user ? { user: o.user, userid: o.userid } : {}),
        })),
      projectaccountname: account?.name,
      state: r.state,
      created: formatDate(r.created),
      tags: tags.get(r.id) ?? [],
    };
    const count = (state: string) =>
      Number(vms.find((v) => v.account_id === r.project_account_id && v.state === state)?.n ?? 0);
    out.vmrunning = count('Running');
    out.vmstopped = count('Stopped');
    for (const [prefix, kind] of FIGURES) {
      const f = figures.get(r.project_account_id)?.find((x) => x.type.id === kind);
      if (!f) continue;
      // Upstream writes limits and what is left as strings, "Unlimited" for -1.
      out[`${prefix}limit`] = f.max < 0 ? 'Unlimited' : String(f.max);
      out[`${prefix}total`] = f.count;
      out[`${prefix}available`] = f.max < 0 ? 'Unlimited' : String(Math.max(0, f.max - f.count));
    }
    return out;
  });
}

export async function presentProject(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('projects')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentProjects(ctx, [row]))[0]!;
}

/**
 * Which projects a listProjects caller sees (upstream's listProjects): the projects an account is a
 * member of (the caller's own, or the account named), or, for admins with listall, domainid or id,
 * every project of the domain scope.
 */
async function projectListScope(
  ctx: CallContext,
  params: { account?: string; domainid?: string; listall?: boolean; isrecursive?: boolean; id?: string },
): Promise<{ members?: { accountId: number; userId?: number }; scope?: OwnerScope }> {
  const { caller } = ctx;
  if (params.account !== undefined) {
    const { account } = await resolveAccount(ctx, params);
    return { members: { accountId: account.id } };
  }
  if (caller.roleKind === 'user')
    return { members: { accountId: caller.account.id, userId: caller.user.id } };
  if (params.domainid !== undefined) {
    const domain = await ctx.app.store.db
      .selectFrom('domains')
      .selectAll()
      .where('uuid', '=', params.domainid)
      .executeTakeFirst();
    if (!domain) throw invalidParameter(`Unable to find domain by id ${params.domainid}`);
    checkDomainAccess(caller, domain);
    return {
      scope: params.isrecursive
        ? { kind: 'subtree', path: domain.path }
        : { kind: 'domain', domainId: domain.id },
    };
  }
  if (params.listall || params.id)
    return {
      scope: caller.roleKind === 'admin' ? { kind: 'all' } : { kind: 'subtree', path: caller.domain.path },
    };
  return { members: { accountId: caller.account.id, userId: caller.user.id } };
}

export const listProjects = defineCommand({
  name: 'listProjects',
  description:
    "Lists projects: those the caller (or the account named) is a member of, or, for admins with listall or domainid, every project they administer; each with its owners, state, and the project account's limits and counts.",
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only this project.' }),
    name: p.string({ description: 'Only projects with exactly this name.' }),
    displaytext: p.string({ description: 'Only projects with exactly this display text.' }),
    state: p.string({ description: 'Only projects in this state: Active, Suspended or Disabled.' }),
    account: p.string({
      description: "Only projects this account is a member of (with domainid, or in the caller's domain).",
    }),
    domainid: p.uuid({ description: 'Only projects of this domain (isrecursive adds its subdomains).' }),
    isrecursive: p.boolean({ description: 'With domainid or listall: include projects of subdomains.' }),
    listall: p.boolean({
      description: 'For admins: every project they may see, not only those they are a member of.',
    }),
    username: p.string({
      description: "Only projects this user (by login name, in the caller's domain) is a member of.",
    }),
    tags: p.map({
      description: 'Only projects carrying every one of these tags (tags[0].key, tags[0].value).',
    }),
    details: p.list({ description: 'Accepted for compatibility; every project is shown in full.' }),
    showicon: p.boolean({
      description: 'When true, each project that has an icon (uploadResourceIcon) carries it as icon.',
    }),
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const { members, scope } = await projectListScope(ctx, params);
    let q = db.selectFrom('projects').where('projects.removed', 'is', null);
    if (scope)
      q = applyScope(q, scope, { account: 'projects.project_account_id', domain: 'projects.domain_id' });
    if (members)
      q = q.where('projects.id', 'in', (eb) => {
        let m = eb
          .selectFrom('project_members')
          .select('project_members.project_id')
          .where('project_members.account_id', '=', members.accountId);
        if (members.userId !== undefined)
          m = m.where((w) =>
            w.or([
              w('project_members.user_id', 'is', null),
              w('project_members.user_id', '=', members.userId!),
            ]),
          );
        return m;
      });
    if (params.id) q = q.where('projects.uuid', '=', params.id);
    if (params.name) q = q.where('projects.name', '=', params.name);
    if (params.displaytext) q = q.where('projects.display_text', '=', params.displaytext);
    if (params.state) q = q.where('projects.state', '=', params.state);
    if (params.keyword) {
      const pattern = `%${escapeLike(params.keyword)}%`;
      const op = likeOp(ctx);
      q = q.where((eb) =>
        eb.or([likeEscaped('projects.name', pattern, op), likeEscaped('projects.display_text', pattern, op)]),
      );
    }
    if (params.username) {
      const user = await db
        .selectFrom('users')
        .innerJoin('accounts', 'accounts.id', 'users.account_id')
        .select(['users.id', 'users.account_id'])
        .where('users.username', '=', params.username)
        .where('accounts.domain_id', '=', ctx.caller.domain.id)
        .executeTakeFirst();
      q = q.where('projects.id', 'in', (eb) =>
        eb
          .selectFrom('project_members')
          .select('project_id')
          .where('account_id', '=', user?.account_id ?? -1)
          .where((w) => w.or([w('user_id', 'is', null), w('user_id', '=', user?.id ?? -1)])),
      );
    }
    q = withTags(q, 'Project', 'projects.id', params.tags);
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q.selectAll('projects').orderBy('projects.id'),
      pageOf(ctx.app, params),
    ).execute();
    return listResult(await presentProjects(ctx, rows), Number(count));
  },
});

registerTaggable('Project', async (ctx, uuid) => {
  const project = await ctx.app.store.db
    .selectFrom('projects')
    .select(['id', 'project_account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return project && { id: project.id, accountId: project.project_account_id, domainId: project.domain_id };
});
