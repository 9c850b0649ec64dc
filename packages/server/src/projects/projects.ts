/**
 * Projects: a team's shared set of resources. Each project owns its resources through its own
 * account of type 5 (`PrjAcct-<name>-<domain id>`, in the project's domain, with no users), so
 * VMs, volumes, networks… made with `projectid` are ordinary account-owned rows: limits (max.project.*),
 * usage, events and deletion work as for accounts. Membership (members.ts) decides who may use
 * them; project roles (roles.ts) narrow what Regular members may call.
 *
 * States: Active → Suspended (suspendProject: the project account is disabled and its running VMs
 * stop) → Active (activateProject); Disabled while deleteProject removes it.
 */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow } from '../db/schema.ts';
import { internalError, invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { applyScope, checkDomainAccess, escapeLike, likeEscaped, type OwnerScope } from '../iam/access.ts';
import { deleteAccountCascade, resolveAccount, runDisableHooks } from '../iam/accounts.ts';
import { forgetCachedIdentity } from '../iam/caller.ts';
import { displayPath } from '../iam/domains.ts';
import { limitsOf, ResourceKind, reserve } from '../iam/limits.ts';
import { ACCOUNT_TYPE } from '../iam/seed.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, type JobTarget, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import { checkProjectModify, findProject, PROJECT_ROLE, PROJECT_STATE, projectAccountOf } from './access.ts';
import { ALLOW_USER_CREATE_PROJECTS } from './settings.ts';
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

async function nameTaken(tx: Tx, name: string, domainId: number, except?: number): Promise<boolean> {
  let q = tx
    .selectFrom('projects')
    .select('id')
    .where('name', '=', name)
    .where('domain_id', '=', domainId)
    .where('removed', 'is', null);
  if (except !== undefined) q = q.where('id', '!=', except);
  return (await q.executeTakeFirst()) !== undefined;
}

/** The project account's name, as upstream builds it: PrjAcct-<project name>-<domain id>. */
const projectAccountName = (name: string, domainId: number) => `PrjAcct-${name}-${domainId}`;

/** Who a new project is for: the caller, an account (account+domainid or accountid), or one of its users. */
async function creator(
  ctx: CallContext,
  params: { account?: string; domainid?: string; accountid?: string; userid?: string },
): Promise<{ account: AccountRow; userId: number | null }> {
  if ((params.account === undefined) !== (params.domainid === undefined) && params.accountid === undefined)
    throw invalidParameter('Account name and domain id must be specified together');
  if (params.userid !== undefined && params.accountid === undefined && params.domainid === undefined)
    throw invalidParameter('Domain ID and account ID must be provided with User ID');
  let account = ctx.caller.account;
  if (params.accountid !== undefined) account = (await resolveAccount(ctx, { id: params.accountid })).account;
  else if (params.account !== undefined) account = (await resolveAccount(ctx, params)).account;
  if (params.userid === undefined) return { account, userId: null };
  const user = await ctx.app.store.db
    .selectFrom('users')
    .select(['id', 'account_id'])
    .where('uuid', '=', params.userid)
    .executeTakeFirst();
  if (!user) throw invalidParameter('Invalid user ID provided');
  if (user.account_id !== account.id) {
    const userAccount = await ctx.app.store.db
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', user.account_id)
      .executeTakeFirstOrThrow();
    if (params.accountid !== undefined || userAccount.domain_id !== account.domain_id)
      throw invalidParameter("User doesn't belong to the specified account or domain");
    account = (await resolveAccount(ctx, { id: userAccount.uuid })).account;
  }
  return { account, userId: user.id };
}

export const createProject = defineCommand({
  name: 'createProject',
  description:
    "Creates a project in the owner's domain, with its own account that will own the project's resources; the owner (the caller, or the account or user named) becomes its Admin. Asynchronous.",
  params: {
    name: p.string({
      required: true,
      description: 'Name of the project, unique among the projects of its domain.',
    }),
    displaytext: p.string({ description: 'Free-text description; defaults to the name.' }),
    account: p.string({ description: 'Account to own the project (with domainid); defaults to the caller.' }),
    domainid: p.uuid({ description: 'Domain of account; the project is created in it.' }),
    accountid: p.uuid({
      description: 'UUID of the account to own the project, instead of account and domainid.',
    }),
    userid: p.uuid({
      description:
        'A user of that account to be the Admin member (a user membership) instead of the whole account.',
    }),
  },
  event: { type: 'PROJECT.CREATE', description: (params) => `creating project ${params.name}` },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    if (ctx.caller.roleKind === 'user' && !app.settings.get(ALLOW_USER_CREATE_PROJECTS))
      throw permissionDenied('Regular user is not permitted to create a project');
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Project name must not be empty');
    const { account: owner, userId } = await creator(ctx, params);
    const domain = await app.store.db
      .selectFrom('domains')
      .selectAll()
      .where('id', '=', owner.domain_id)
      .executeTakeFirstOrThrow();
    const role = await app.store.db
      .selectFrom('roles')
      .select('id')
      .where('type', '=', 'User')
      .orderBy('is_default', 'desc')
      .orderBy('id')
      .executeTakeFirstOrThrow();
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      if (await nameTaken(tx, name, domain.id))
        throw invalidParameter(`Project with name ${name} already exists in domain id=${domain.uuid}`);
      await reserve(ctx, tx, owner, ResourceKind.Project, 1);
      const now = app.clock.now();
      const accountId = await insertId(app.store, tx, 'accounts', {
        uuid: app.ids.uuid(),
        name: projectAccountName(name, domain.id),
        type: ACCOUNT_TYPE.Project,
        role_id: role.id,
        domain_id: domain.id,
        state: 'enabled',
        network_domain: null,
        created: now,
      });
      const projectId = await insertId(app.store, tx, 'projects', {
        uuid,
        name,
        display_text: params.displaytext ?? name,
        domain_id: domain.id,
        project_account_id: accountId,
        state: PROJECT_STATE.Active,
        created: now,
        removed: null,
      });
      await tx
        .insertInto('project_members')
        .values({
          project_id: projectId,
          account_id: owner.id,
          user_id: userId,
          role: PROJECT_ROLE.Admin,
          project_role_id: null,
          created: now,
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'PROJECT.CREATE',
        description: `created project ${name} for account ${owner.name}`,
        resourceType: 'Project',
        resourceId: uuid,
      });
    });
    return { type: 'Project', id: uuid };
  },
  async handler(ctx, _params, created) {
    return presentProject(ctx, (await findProject(ctx, created!.id)).id);
  },
});

/** The project a job works on, once the caller may manage it. */
export async function manageableProject(ctx: CallContext, uuid: string): Promise<ProjectRow> {
  const project = await findProject(ctx, uuid);
  await checkProjectModify(ctx, project);
  return project;
}

const projectTarget = async (ctx: CallContext, params: { id: string }): Promise<JobTarget> => ({
  type: 'Project',
  id: (await manageableProject(ctx, params.id)).uuid,
});

/** Changes one member's role, keeping the owner account's count of administered projects (type 5) right. */
async function setMemberRole(
  ctx: CallContext,
  tx: Tx,
  member: { id: number; account_id: number; role: string },
  role: string,
): Promise<void> {
  if (member.role === role) return;
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', member.account_id)
    .executeTakeFirstOrThrow();
  await reserve(ctx, tx, account, ResourceKind.Project, role === PROJECT_ROLE.Admin ? 1 : -1);
  await tx.updateTable('project_members').set({ role }).where('id', '=', member.id).execute();
}

export const updateProject = defineCommand({
  name: 'updateProject',
  description:
    "Renames a project, changes its display text, or changes a member's role: with account (or userid) that member becomes Admin and, with swapowner (the default), the previous Admins become Regular. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the project.' }),
    name: p.string({ description: 'New name, unique among the projects of its domain.' }),
    displaytext: p.string({ description: 'New display text.' }),
    account: p.string({
      description: 'A member account (of the project domain) to make Admin, or to give roletype.',
    }),
    userid: p.uuid({ description: 'A member user to give roletype (or Admin), instead of account.' }),
    roletype: p.string({
      description: "With swapowner=false: the role to give that member, 'Admin' or 'Regular'.",
    }),
    swapowner: p.boolean({
      description:
        'true (default): the member named becomes the only Admin, the others become Regular; false: only that member gets roletype.',
    }),
  },
  event: { type: 'PROJECT.UPDATE', description: (params) => `updating project ${params.id}` },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await manageableProject(ctx, params.id);
    const name = params.name?.trim();
    if (name === '') throw invalidParameter('Project name must not be empty');
    const role = params.roletype === undefined ? PROJECT_ROLE.Admin : memberRole(params.roletype);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      if (name !== undefined && name !== project.name) {
        if (await nameTaken(tx, name, project.domain_id, project.id))
          throw invalidParameter(`Project with name ${name} already exists in this domain`);
        await tx.updateTable('projects').set({ name }).where('id', '=', project.id).execute();
        await tx
          .updateTable('accounts')
          .set({ name: projectAccountName(name, project.domain_id) })
          .where('id', '=', project.project_account_id)
          .execute();
      }
      if (params.displaytext !== undefined)
        await tx
          .updateTable('projects')
          .set({ display_text: params.displaytext })
          .where('id', '=', project.id)
          .execute();
      if (params.account !== undefined || params.userid !== undefined) {
        const member = await namedMember(ctx, tx, project, params);
        const admins = await tx
          .selectFrom('project_members')
          .selectAll()
          .where('project_id', '=', project.id)
          .where('role', '=', PROJECT_ROLE.Admin)
          .execute();
        if (params.swapowner === false) {
          if (role !== PROJECT_ROLE.Admin && admins.length === 1 && admins[0]!.id === member.id)
            throw invalidParameter('Cannot demote the only admin of the project');
          await setMemberRole(ctx, tx, member, role);
        } else {
          for (const a of admins)
            if (a.id !== member.id) await setMemberRole(ctx, tx, a, PROJECT_ROLE.Regular);
          await setMemberRole(ctx, tx, member, PROJECT_ROLE.Admin);
        }
      }
      await logEvent(ctx, tx, {
        type: 'PROJECT.UPDATE',
        description: `updated project ${project.name}`,
        resourceType: 'Project',
        resourceId: project.uuid,
      });
    });
    return presentProject(ctx, project.id);
  },
});

/** 'Admin' or 'Regular', case-insensitively (upstream's ProjectAccount.Role). */
export function memberRole(text: string): string {
  const role = Object.values(PROJECT_ROLE).find((r) => r.toLowerCase() === text.toLowerCase());
  if (!role) throw invalidParameter(`Invalid role type ${text}: use Admin or Regular`);
  return role;
}

/** The membership updateProject names by account name or user id. */
async function namedMember(
  ctx: CallContext,
  tx: Tx,
  project: ProjectRow,
  params: { account?: string; userid?: string },
) {
  if (params.account !== undefined) {
    const account = await tx
      .selectFrom('accounts')
      .select('id')
      .where('name', '=', params.account)
      .where('domain_id', '=', project.domain_id)
      .where('state', '=', 'enabled')
      .executeTakeFirst();
    if (!account)
      throw invalidParameter(
        `Unable to find account name=${params.account} in domain of project ${project.name}`,
      );
    const member = await tx
      .selectFrom('project_members')
      .selectAll()
      .where('project_id', '=', project.id)
      .where('account_id', '=', account.id)
      .where('user_id', 'is', null)
      .executeTakeFirst();
    if (!member)
      throw invalidParameter(
        `Account ${params.account} doesn't belong to the project. Add it to the project first and then change the project's ownership`,
      );
    return member;
  }
  const user = await tx
    .selectFrom('users')
    .select(['id', 'username'])
    .where('uuid', '=', params.userid!)
    .executeTakeFirst();
  if (!user) throw invalidParameter('Invalid user ID provided');
  const member = await tx
    .selectFrom('project_members')
    .selectAll()
    .where('project_id', '=', project.id)
    .where('user_id', '=', user.id)
    .executeTakeFirst();
  if (!member)
    throw invalidParameter(
      `User ${user.username} doesn't belong to the project. Add it to the project first and then change the project's ownership`,
    );
  return member;
}

/** What a project still holds that deleteProject without cleanup refuses to drop (upstream's order). */
async function leftovers(ctx: CallContext, accountId: number): Promise<string | undefined> {
  const db = ctx.app.store.db;
  const counts: [string, Promise<{ n: number | string } | undefined>][] = [
    [
      'VMTemplateVO',
      db
        .selectFrom('templates')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', accountId)
        .where('removed', 'is', null)
        .executeTakeFirst(),
    ],
    [
      'VMSnapshotVO',
      db
        .selectFrom('vm_snapshots')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', accountId)
        .where('removed', 'is', null)
        .executeTakeFirst(),
    ],
    [
      'UserVmVO',
      db
        .selectFrom('vms')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', accountId)
        .where('removed', 'is', null)
        .executeTakeFirst(),
    ],
    [
      'VolumeVO',
      db
        .selectFrom('volumes')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', accountId)
        .where('vm_id', 'is', null)
        .where('removed', 'is', null)
        .executeTakeFirst(),
    ],
    [
      'NetworkVO',
      db
        .selectFrom('networks')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', accountId)
        .where('removed', 'is', null)
        .executeTakeFirst(),
    ],
    [
      'VpcVO',
      db
        .selectFrom('vpcs')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', accountId)
        .where('removed', 'is', null)
        .executeTakeFirst(),
    ],
  ];
  for (const [kind, q] of counts) {
    const n = Number((await q)?.n ?? 0);
    if (n > 0) return `${n} ${kind} to clean up`;
  }
  return undefined;
}

export const deleteProject = defineCommand({
  name: 'deleteProject',
  description:
    'Deletes a project and its account. Without cleanup it is refused while the project still has templates, VM snapshots, VMs, detached volumes, networks or VPCs; with cleanup=true they are deleted with it. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the project to delete.' }),
    cleanup: p.boolean({
      description: "true: delete the project's resources too; false (default): refuse while it has any.",
    }),
  },
  event: { type: 'PROJECT.DELETE', description: (params) => `deleting project ${params.id}` },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await manageableProject(ctx, params.id);
    const db = ctx.app.store.db;
    if (!params.cleanup) {
      const left = await leftovers(ctx, project.project_account_id);
      if (left) throw internalError(`Can't delete the project yet because it has ${left}`);
    }
    // Disabled first, so nothing new is added to it while its resources go.
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('projects')
        .set({ state: PROJECT_STATE.Disabled })
        .where('id', '=', project.id)
        .execute();
      const admins = await tx
        .selectFrom('project_members')
        .selectAll()
        .where('project_id', '=', project.id)
        .where('role', '=', PROJECT_ROLE.Admin)
        .execute();
      for (const a of admins) await setMemberRole(ctx, tx, a, PROJECT_ROLE.Regular);
    });
    await deleteAccountCascade(ctx, await projectAccountOf(db, project));
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('project_members').where('project_id', '=', project.id).execute();
      await tx.deleteFrom('project_invitations').where('project_id', '=', project.id).execute();
      await tx.deleteFrom('project_role_permissions').where('project_id', '=', project.id).execute();
      await tx.deleteFrom('project_roles').where('project_id', '=', project.id).execute();
      await tx
        .deleteFrom('resource_tags')
        .where('resource_type', '=', 'Project')
        .where('resource_id', '=', project.id)
        .execute();
      await tx
        .updateTable('projects')
        .set({ removed: ctx.app.clock.now() })
        .where('id', '=', project.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'PROJECT.DELETE',
        description: `deleted project ${project.name}`,
        resourceType: 'Project',
        resourceId: project.uuid,
      });
    });
    return success();
  },
});

/** Moves a project between Active and Suspended; its account is enabled or disabled with it. */
async function setProjectState(
  ctx: CallContext,
  project: ProjectRow,
  state: string,
  event: string,
): Promise<void> {
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx.updateTable('projects').set({ state }).where('id', '=', project.id).execute();
    await tx
      .updateTable('accounts')
      .set({ state: state === PROJECT_STATE.Active ? 'enabled' : 'disabled' })
      .where('id', '=', project.project_account_id)
      .execute();
    await logEvent(ctx, tx, {
      type: event,
      description: `${state === PROJECT_STATE.Active ? 'activated' : 'suspended'} project ${project.name}`,
      resourceType: 'Project',
      resourceId: project.uuid,
    });
  });
  forgetCachedIdentity();
}

export const suspendProject = defineCommand({
  name: 'suspendProject',
  description:
    "Suspends a project: no resources can be added to it and its running VMs are stopped, as upstream's disabling of the project account does. Asynchronous.",
  params: { id: p.uuid({ required: true, description: 'UUID of the project to suspend.' }) },
  event: { type: 'PROJECT.SUSPEND', description: (params) => `suspending project ${params.id}` },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await manageableProject(ctx, params.id);
    await setProjectState(ctx, project, PROJECT_STATE.Suspended, 'PROJECT.SUSPEND');
    await runDisableHooks(ctx, await projectAccountOf(ctx.app.store.db, project));
    return presentProject(ctx, project.id);
  },
});

export const activateProject = defineCommand({
  name: 'activateProject',
  description:
    'Makes a suspended project Active again so resources can be added to it; its stopped VMs stay stopped. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'UUID of the project to activate.' }) },
  event: { type: 'PROJECT.ACTIVATE', description: (params) => `activating project ${params.id}` },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await manageableProject(ctx, params.id);
    if (project.state !== PROJECT_STATE.Active) {
      if (project.state !== PROJECT_STATE.Suspended)
        throw invalidParameter(`Can't activate the project in ${project.state} state`);
      await setProjectState(ctx, project, PROJECT_STATE.Active, 'PROJECT.ACTIVATE');
    }
    return presentProject(ctx, project.id);
  },
});

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
