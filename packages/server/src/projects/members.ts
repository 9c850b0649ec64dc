/**
 * Project membership: accounts and (4.15+) single users of an account join a project as Admin or
 * Regular, optionally with a project role. With `project.invite.required` they are invited instead
 * and join when they accept (updateProjectInvitation); an invitation left pending longer than
 * `project.invite.timeout` expires. Invitations by e-mail need a mail server, which Nimbostack
 * does not have: they are refused.
 */
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { AccountRow, UserRow } from '../db/schema.ts';
import { invalidParameter, unsupported } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { checkOwnerAccess, escapeLike, likeEscaped } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { ResourceKind, reserve } from '../iam/limits.ts';
import { listOwned } from '../iam/owned.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, type JobTarget, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import {
  checkProjectAccess,
  checkProjectModify,
  findProject,
  PROJECT_ROLE,
  PROJECT_STATE,
} from './access.ts';
import { memberRole } from './projects.ts';
import { PROJECT_INVITE_REQUIRED, PROJECT_INVITE_TIMEOUT } from './settings.ts';
import type { ProjectInvitationRow, ProjectRow } from './tables.ts';

const INVITATION = {
  Pending: 'Pending',
  Completed: 'Completed',
  Declined: 'Declined',
  Expired: 'Expired',
} as const;

const projectTarget = async (ctx: CallContext, params: { projectid: string }): Promise<JobTarget> => ({
  type: 'Project',
  id: (await findProject(ctx, params.projectid)).uuid,
});

/** An enabled account of the project's domain by name. */
async function accountInProjectDomain(
  ctx: CallContext,
  project: ProjectRow,
  name: string,
): Promise<AccountRow> {
  const account = await ctx.app.store.db
    .selectFrom('accounts')
    .selectAll()
    .where('name', '=', name)
    .where('domain_id', '=', project.domain_id)
    .where('state', '=', 'enabled')
    .where('type', '!=', 5)
    .executeTakeFirst();
  if (!account)
    throw invalidParameter(`Unable to find account name=${name} in domain of project ${project.name}`);
  return account;
}

/** A project role given by uuid, which must be one of this project's. */
async function projectRoleOf(
  ctx: CallContext,
  project: ProjectRow,
  uuid: string | undefined,
): Promise<number | null> {
  if (uuid === undefined) return null;
  const role = await ctx.app.store.db
    .selectFrom('project_roles')
    .select(['id', 'project_id'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!role || role.project_id !== project.id)
    throw invalidParameter('Invalid project role ID for the given project');
  return role.id;
}

/** Adds a member, counting one more administered project (type 5) for an Admin's account. */
async function addMember(
  ctx: CallContext,
  tx: Tx,
  project: ProjectRow,
  member: { account: AccountRow; userId: number | null; role: string; projectRoleId: number | null },
): Promise<void> {
  if (member.role === PROJECT_ROLE.Admin) await reserve(ctx, tx, member.account, ResourceKind.Project, 1);
  await tx
    .insertInto('project_members')
    .values({
      project_id: project.id,
      account_id: member.account.id,
      user_id: member.userId,
      role: member.role,
      project_role_id: member.projectRoleId,
      created: ctx.app.clock.now(),
    })
    .execute();
}

/** Invites an account or one of its users; 431 while an earlier invitation is still pending. */
async function invite(
  ctx: CallContext,
  tx: Tx,
  project: ProjectRow,
  member: { account: AccountRow; userId: number | null; role: string; projectRoleId: number | null },
): Promise<void> {
  const pending = await tx
    .selectFrom('project_invitations')
    .selectAll()
    .where('project_id', '=', project.id)
    .where('account_id', '=', member.account.id)
    .where((eb) => (member.userId === null ? eb('user_id', 'is', null) : eb('user_id', '=', member.userId)))
    .where('state', '=', INVITATION.Pending)
    .executeTakeFirst();
  if (pending && !expired(ctx, pending))
    throw invalidParameter(
      `There is already a pending invitation for account ${member.account.name} to the project ${project.name}`,
    );
  if (pending)
    await tx
      .updateTable('project_invitations')
      .set({ state: INVITATION.Expired })
      .where('id', '=', pending.id)
      .execute();
  await tx
    .insertInto('project_invitations')
    .values({
      uuid: ctx.app.ids.uuid(),
      project_id: project.id,
      domain_id: project.domain_id,
      account_id: member.account.id,
      user_id: member.userId,
      email: null,
      token: null,
      role: member.role,
      project_role_id: member.projectRoleId,
      state: INVITATION.Pending,
      created: ctx.app.clock.now(),
    })
    .execute();
}

function expired(ctx: CallContext, inv: ProjectInvitationRow): boolean {
  return ctx.app.clock.now() - inv.created > ctx.app.settings.get(PROJECT_INVITE_TIMEOUT) * 1000;
}

/** The checks addAccountToProject and addUserToProject share (upstream's order). */
async function activeProject(ctx: CallContext, projectid: string, what: string): Promise<ProjectRow> {
  const project = await findProject(ctx, projectid);
  if (project.state !== PROJECT_STATE.Active)
    throw invalidParameter(
      `Can't add ${what} to the specified project id in state=${project.state} as it's no longer active`,
    );
  return project;
}

const memberParams = {
  projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
  email: p.string({
    description: 'Invite by e-mail instead: refused, as Nimbostack has no mail server to send the token.',
  }),
  projectroleid: p.uuid({
    description: "One of the project's roles, restricting what a Regular member may call.",
  }),
  roletype: p.string({ description: "'Admin' or 'Regular' (default): Admins manage the project." }),
};

export const addAccountToProject = defineCommand({
  name: 'addAccountToProject',
  description:
    'Adds an account of the project’s domain to a project (or, with project.invite.required, invites it); all its users can then use the project’s resources. Asynchronous.',
  params: {
    ...memberParams,
    account: p.string({ description: "Name of the account to add, in the project's domain." }),
  },
  event: {
    type: 'PROJECT.ACCOUNT.ADD',
    description: (params) => `adding account ${params.account} to project`,
  },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await activeProject(ctx, params.projectid, 'account');
    if (params.email !== undefined)
      throw unsupported('Project invitations by e-mail are not supported: no mail server');
    if (params.account === undefined)
      throw invalidParameter('Account information is required for assigning account to the project');
    const account = await accountInProjectDomain(ctx, project, params.account);
    await checkProjectModify(ctx, project);
    const db = ctx.app.store.db;
    const existing = await db
      .selectFrom('project_members')
      .select('id')
      .where('project_id', '=', project.id)
      .where('account_id', '=', account.id)
      .where('user_id', 'is', null)
      .executeTakeFirst();
    if (existing) return success();
    const member = {
      account,
      userId: null,
      role: params.roletype === undefined ? PROJECT_ROLE.Regular : memberRole(params.roletype),
      projectRoleId: await projectRoleOf(ctx, project, params.projectroleid),
    };
    const inviting = ctx.app.settings.get(PROJECT_INVITE_REQUIRED);
    await db.transaction().execute(async (tx) => {
      if (inviting) await invite(ctx, tx, project, member);
      else await addMember(ctx, tx, project, member);
      await logEvent(ctx, tx, {
        type: 'PROJECT.ACCOUNT.ADD',
        description: `${inviting ? 'invited' : 'added'} account ${account.name} to project ${project.name}`,
        resourceType: 'Project',
        resourceId: project.uuid,
      });
    });
    return success();
  },
});

export const addUserToProject = defineCommand({
  name: 'addUserToProject',
  description:
    "Adds one user (of an account of the project's domain) to a project, or invites them with project.invite.required; only that user, not the rest of the account, gets access. Asynchronous.",
  params: {
    ...memberParams,
    username: p.string({ required: true, description: "Login name of the user, in the project's domain." }),
  },
  event: { type: 'PROJECT.USER.ADD', description: (params) => `adding user ${params.username} to project` },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await activeProject(ctx, params.projectid, 'user');
    if (params.email !== undefined)
      throw unsupported('Project invitations by e-mail are not supported: no mail server');
    const db = ctx.app.store.db;
    const found = await db
      .selectFrom('users')
      .innerJoin('accounts', 'accounts.id', 'users.account_id')
      .selectAll('users')
      .where('users.username', '=', params.username)
      .where('accounts.domain_id', '=', project.domain_id)
      .executeTakeFirst();
    if (!found) throw invalidParameter('Invalid user ID provided');
    await checkProjectModify(ctx, project);
    const account = await db
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', found.account_id)
      .executeTakeFirstOrThrow();
    const members = await db
      .selectFrom('project_members')
      .selectAll()
      .where('project_id', '=', project.id)
      .where('account_id', '=', account.id)
      .execute();
    if (members.some((m) => m.user_id === null))
      throw invalidParameter(`User belongs to account ${account.name} which is already part of the project`);
    if (members.some((m) => m.user_id === found.id)) return success();
    const member = {
      account,
      userId: found.id,
      role: params.roletype === undefined ? PROJECT_ROLE.Regular : memberRole(params.roletype),
      projectRoleId: await projectRoleOf(ctx, project, params.projectroleid),
    };
    const inviting = ctx.app.settings.get(PROJECT_INVITE_REQUIRED);
    await db.transaction().execute(async (tx) => {
      if (inviting) await invite(ctx, tx, project, member);
      else await addMember(ctx, tx, project, member);
      await logEvent(ctx, tx, {
        type: 'PROJECT.USER.ADD',
        description: `${inviting ? 'invited' : 'added'} user ${found.username} to project ${project.name}`,
        resourceType: 'Project',
        resourceId: project.uuid,
      });
    });
    return success();
  },
});

/** Removes members (one account's or one user's row) and their invitations; the last Admin stays. */
async function removeMember(
  ctx: CallContext,
  project: ProjectRow,
  member: { id: number; account_id: number; user_id: number | null; role: string },
  refusal: string,
  event: { type: string; description: string },
): Promise<void> {
  await ctx.app.store.db.transaction().execute(async (tx) => {
    if (member.role === PROJECT_ROLE.Admin) {
      const admins = await tx
        .selectFrom('project_members')
        .select('id')
        .where('project_id', '=', project.id)
        .where('role', '=', PROJECT_ROLE.Admin)
        .execute();
      if (admins.length === 1) throw invalidParameter(refusal);
      const account = await tx
        .selectFrom('accounts')
        .selectAll()
        .where('id', '=', member.account_id)
        .executeTakeFirstOrThrow();
      await reserve(ctx, tx, account, ResourceKind.Project, -1);
    }
    await tx.deleteFrom('project_members').where('id', '=', member.id).execute();
    await tx
      .deleteFrom('project_invitations')
      .where('project_id', '=', project.id)
      .where('account_id', '=', member.account_id)
      .where((eb) =>
        member.user_id === null ? eb('user_id', 'is', null) : eb('user_id', '=', member.user_id),
      )
      .execute();
    await logEvent(ctx, tx, { ...event, resourceType: 'Project', resourceId: project.uuid });
  });
}

export const deleteAccountFromProject = defineCommand({
  name: 'deleteAccountFromProject',
  description:
    "Removes an account from a project; its users lose access to the project's resources. The project's only Admin cannot be removed. Asynchronous.",
  params: {
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    account: p.string({
      required: true,
      description: "Name of the member account, in the project's domain.",
    }),
  },
  event: {
    type: 'PROJECT.ACCOUNT.REMOVE',
    description: (params) => `removing account ${params.account} from project`,
  },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await findProject(ctx, params.projectid);
    const account = await accountInProjectDomain(ctx, project, params.account);
    await checkProjectModify(ctx, project);
    const member = await ctx.app.store.db
      .selectFrom('project_members')
      .selectAll()
      .where('project_id', '=', project.id)
      .where('account_id', '=', account.id)
      .where('user_id', 'is', null)
      .executeTakeFirst();
    if (!member)
      throw invalidParameter(`Account ${account.name} is not assigned to the project with specified id`);
    await removeMember(
      ctx,
      project,
      member,
      `Unable to delete account ${account.name} from the project with specified id as the account is the owner of the project`,
      {
        type: 'PROJECT.ACCOUNT.REMOVE',
        description: `removed account ${account.name} from project ${project.name}`,
      },
    );
    return success();
  },
});

export const deleteUserFromProject = defineCommand({
  name: 'deleteUserFromProject',
  description:
    "Removes a user member from a project (and any invitation of theirs); the project's only Admin cannot be removed. Asynchronous.",
  params: {
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    userid: p.uuid({ required: true, description: 'UUID of the member user.' }),
  },
  event: {
    type: 'PROJECT.USER.REMOVE',
    description: (params) => `removing user ${params.userid} from project`,
  },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await findProject(ctx, params.projectid);
    const db = ctx.app.store.db;
    const user = await db
      .selectFrom('users')
      .selectAll()
      .where('uuid', '=', params.userid)
      .executeTakeFirst();
    if (!user) throw invalidParameter('Invalid userId provided');
    await checkProjectModify(ctx, project);
    const member = await db
      .selectFrom('project_members')
      .selectAll()
      .where('project_id', '=', project.id)
      .where('user_id', '=', user.id)
      .executeTakeFirst();
    if (!member) {
      await db
        .deleteFrom('project_invitations')
        .where('project_id', '=', project.id)
        .where('user_id', '=', user.id)
        .execute();
      throw invalidParameter(`User ${user.username} is not assigned to the project with specified id`);
    }
    await removeMember(
      ctx,
      project,
      member,
      `Unable to delete user ${user.username} from the project with specified id as the user is the owner of the project`,
      {
        type: 'PROJECT.USER.REMOVE',
        description: `removed user ${user.username} from project ${project.name}`,
      },
    );
    return success();
  },
});

export const listProjectAccounts = defineCommand({
  name: 'listProjectAccounts',
  description:
    "Lists a project's members (accounts, and single users of an account) with their role and project role; its members and the admins of its domain may list them.",
  params: {
    ...listParams,
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    account: p.string({ description: 'Only this member account (by name).' }),
    role: p.string({ description: "Only members with this role: 'Admin' or 'Regular'." }),
    userid: p.uuid({ description: 'Only the membership of this user.' }),
    projectroleid: p.uuid({ description: 'Only members holding this project role.' }),
  },
  async handler(ctx, params) {
    const project = await findProject(ctx, params.projectid);
    await checkProjectAccess(ctx, project);
    const db = ctx.app.store.db;
    let q = db
      .selectFrom('project_members')
      .innerJoin('accounts', 'accounts.id', 'project_members.account_id')
      .innerJoin('domains', 'domains.id', 'accounts.domain_id')
      .leftJoin('users', 'users.id', 'project_members.user_id')
      .leftJoin('project_roles', 'project_roles.id', 'project_members.project_role_id')
      .where('project_members.project_id', '=', project.id);
    if (params.account) q = q.where('accounts.name', '=', params.account);
    if (params.role) q = q.where('project_members.role', '=', memberRole(params.role));
    if (params.userid) q = q.where('users.uuid', '=', params.userid);
    if (params.projectroleid) q = q.where('project_roles.uuid', '=', params.projectroleid);
    if (params.keyword)
      q = q.where(likeEscaped('accounts.name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q
        .select([
          'accounts.uuid as accountid',
          'accounts.name as account',
          'accounts.type as accounttype',
          'domains.uuid as domainid',
          'domains.name as domain',
          'domains.path as domainpath',
          'users.uuid as userid',
          'users.username as username',
          'project_members.role as role',
          'project_roles.uuid as projectroleid',
        ])
        .orderBy('project_members.id'),
      pageOf(ctx.app, params),
    ).execute();
    return listResult(
      rows.map((r) => ({
        projectid: project.uuid,
        project: project.name,
        accountid: r.accountid,
        account: r.account,
        accounttype: r.accounttype,
        domainid: r.domainid,
        domain: r.domain,
        domainpath: displayPath(r.domainpath),
        userid: r.userid ?? undefined,
        username: r.username ?? undefined,
        role: r.role,
        projectroleid: r.projectroleid ?? undefined,
      })),
      Number(count),
    );
  },
});

export const listProjectInvitations = defineCommand({
  name: 'listProjectInvitations',
  description:
    'Lists project invitations: those to the caller (or to their account), or, for admins with listall or domainid, those of the accounts they administer.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only this invitation.' }),
    projectid: p.uuid({ description: 'Only invitations to this project.' }),
    state: p.string({
      description: 'Only invitations in this state: Pending, Completed, Declined or Expired.',
    }),
    activeonly: p.boolean({ description: 'true: only invitations still pending and not expired.' }),
    account: p.string({
      description: "Only invitations to this account (with domainid, or in the caller's domain).",
    }),
    domainid: p.uuid({ description: 'Only invitations to accounts of this domain.' }),
    isrecursive: p.boolean({ description: 'With domainid or listall: include subdomains.' }),
    listall: p.boolean({ description: 'For admins: invitations of every account they administer.' }),
    userid: p.uuid({ description: 'Only invitations to this user.' }),
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db
      .selectFrom('project_invitations')
      .innerJoin('projects', 'projects.id', 'project_invitations.project_id')
      .where('projects.removed', 'is', null);
    if (params.id) q = q.where('project_invitations.uuid', '=', params.id);
    if (params.state) q = q.where('project_invitations.state', '=', params.state);
    if (params.activeonly)
      q = q
        .where('project_invitations.state', '=', INVITATION.Pending)
        .where(
          'project_invitations.created',
          '>=',
          ctx.app.clock.now() - ctx.app.settings.get(PROJECT_INVITE_TIMEOUT) * 1000,
        );
    if (params.userid)
      q = q.where('project_invitations.user_id', 'in', (eb) =>
        eb.selectFrom('users').select('id').where('uuid', '=', params.userid!),
      );
    const project = params.projectid ? await findProject(ctx, params.projectid) : undefined;
    if (project) q = q.where('project_invitations.project_id', '=', project.id);
    // projectid filters here; it is no ownership scope (upstream's forProjectInvitation).
    const { projectid: _filter, ...scope } = params;
    return listOwned(ctx, scope, q, {
      owner: { account: 'project_invitations.account_id', domain: 'project_invitations.domain_id' },
      rows: (s, page) =>
        paginate(
          s
            .selectAll('project_invitations')
            .select(['projects.uuid as projectuuid', 'projects.name as projectname']),
          page,
        )
          .orderBy('project_invitations.id')
          .execute(),
      present: (rows) => presentInvitations(ctx, rows),
    });
  },
});

async function presentInvitations(
  ctx: CallContext,
  rows: (ProjectInvitationRow & { projectuuid: string; projectname: string })[],
): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const accountIds = rows.map((r) => r.account_id ?? -1);
  const [accounts, domains, users] = await Promise.all([
    db.selectFrom('accounts').select(['id', 'name']).where('id', 'in', accountIds).execute(),
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
      .selectFrom('users')
      .select(['id', 'uuid'])
      .where(
        'id',
        'in',
        rows.map((r) => r.user_id ?? -1),
      )
      .execute(),
  ]);
  return rows.map((r) => {
    const domain = domains.find((d) => d.id === r.domain_id);
    return {
      id: r.uuid,
      projectid: r.projectuuid,
      project: r.projectname,
      account: accounts.find((a) => a.id === r.account_id)?.name,
      userid: users.find((u) => u.id === r.user_id)?.uuid,
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain && displayPath(domain.path),
      email: r.email ?? undefined,
      state: r.state === INVITATION.Pending && expired(ctx, r) ? INVITATION.Expired : r.state,
    };
  });
}

export const updateProjectInvitation = defineCommand({
  name: 'updateProjectInvitation',
  description:
    'Accepts (the default) or declines a pending invitation to a project, for the caller, an account they administer, or a user; accepting makes the invitee a member with the invited role. Asynchronous.',
  params: {
    projectid: p.uuid({ required: true, description: 'UUID of the project the invitation is to.' }),
    accept: p.boolean({ description: 'true (default) to join the project, false to decline.' }),
    account: p.string({
      description: "The invited account (in the project's domain), when not the caller's.",
    }),
    userid: p.uuid({ description: 'The invited user, when not the caller.' }),
    token: p.string({
      description: 'Token of an invitation by e-mail (none are made here, so none matches).',
    }),
  },
  event: {
    type: 'PROJECT.INVITATION.UPDATE',
    description: (params) => `updating invitation to project ${params.projectid}`,
  },
  target: projectTarget,
  async handler(ctx, params) {
    const project = await findProject(ctx, params.projectid);
    const db = ctx.app.store.db;
    let q = db
      .selectFrom('project_invitations')
      .selectAll()
      .where('project_id', '=', project.id)
      .where('state', '=', INVITATION.Pending);
    if (params.token !== undefined) q = q.where('token', '=', params.token);
    else if (params.account !== undefined) {
      const account = await accountInProjectDomain(ctx, project, params.account);
      const domain = await db
        .selectFrom('domains')
        .selectAll()
        .where('id', '=', account.domain_id)
        .executeTakeFirstOrThrow();
      checkOwnerAccess(ctx.caller, { accountId: account.id, domain });
      q = q.where('account_id', '=', account.id).where('user_id', 'is', null);
    } else if (params.userid !== undefined) {
      const user = await db
        .selectFrom('users')
        .selectAll()
        .where('uuid', '=', params.userid)
        .executeTakeFirst();
      if (!user)
        throw invalidParameter(
          'Invalid user ID provided. Please provide a valid user ID or account name whose invitation is to be updated',
        );
      await checkUserAccess(ctx, user);
      q = q.where('user_id', '=', user.id);
    } else {
      q = q
        .where('account_id', '=', ctx.caller.account.id)
        .where((eb) => eb.or([eb('user_id', 'is', null), eb('user_id', '=', ctx.caller.user.id)]));
    }
    const inv = await q.orderBy('id', 'desc').executeTakeFirst();
    if (!inv)
      throw invalidParameter(
        `Unable to find invitation for account name=${params.account ?? ctx.caller.account.name} to the project=${project.name}`,
      );
    const accept = params.accept !== false;
    if (accept && expired(ctx, inv)) {
      await db
        .updateTable('project_invitations')
        .set({ state: INVITATION.Expired })
        .where('id', '=', inv.id)
        .execute();
      throw invalidParameter(
        `Invitation is expired for account ${params.account ?? ctx.caller.account.name} to the project ${project.name}`,
      );
    }
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('project_invitations')
        .set({ state: accept ? INVITATION.Completed : INVITATION.Declined })
        .where('id', '=', inv.id)
        .execute();
      if (accept && inv.account_id !== null) {
        const joined = await tx
          .selectFrom('project_members')
          .select('id')
          .where('project_id', '=', project.id)
          .where('account_id', '=', inv.account_id)
          .where((eb) => (inv.user_id === null ? eb('user_id', 'is', null) : eb('user_id', '=', inv.user_id)))
          .executeTakeFirst();
        const account = await tx
          .selectFrom('accounts')
          .selectAll()
          .where('id', '=', inv.account_id)
          .executeTakeFirstOrThrow();
        if (!joined)
          await addMember(ctx, tx, project, {
            account,
            userId: inv.user_id,
            role: inv.role,
            projectRoleId: inv.project_role_id,
          });
      }
      await logEvent(ctx, tx, {
        type: 'PROJECT.INVITATION.UPDATE',
        description: `${accept ? 'accepted' : 'declined'} the invitation to project ${project.name}`,
        resourceType: 'Project',
        resourceId: project.uuid,
      });
    });
    return success();
  },
});

/** The caller may answer for a user: themselves, or an account they administer. */
async function checkUserAccess(ctx: CallContext, user: UserRow): Promise<void> {
  if (user.id === ctx.caller.user.id) return;
  const account = await ctx.app.store.db
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', user.account_id)
    .executeTakeFirstOrThrow();
  const domain = await ctx.app.store.db
    .selectFrom('domains')
    .selectAll()
    .where('id', '=', account.domain_id)
    .executeTakeFirstOrThrow();
  checkOwnerAccess(ctx.caller, { accountId: account.id, domain });
}

export const deleteProjectInvitation = defineCommand({
  name: 'deleteProjectInvitation',
  description:
    "Withdraws an invitation to a project; only the project's Admins and the admins of its domain may. Asynchronous.",
  params: { id: p.uuid({ required: true, description: 'UUID of the invitation.' }) },
  event: {
    type: 'PROJECT.INVITATION.REMOVE',
    description: (params) => `removing project invitation ${params.id}`,
  },
  async target(ctx, params) {
    const inv = await ctx.app.store.db
      .selectFrom('project_invitations')
      .innerJoin('projects', 'projects.id', 'project_invitations.project_id')
      .select('projects.uuid')
      .where('project_invitations.uuid', '=', params.id)
      .executeTakeFirst();
    if (!inv) throw invalidParameter(`Unable to find project invitation by id ${params.id}`);
    return { type: 'Project', id: inv.uuid };
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const inv = await db
      .selectFrom('project_invitations')
      .selectAll()
      .where('uuid', '=', params.id)
      .executeTakeFirst();
    if (!inv) throw invalidParameter(`Unable to find project invitation by id ${params.id}`);
    const project = await db
      .selectFrom('projects')
      .selectAll()
      .where('id', '=', inv.project_id)
      .executeTakeFirstOrThrow();
    await checkProjectModify(ctx, project);
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('project_invitations').where('id', '=', inv.id).execute();
      await logEvent(ctx, tx, {
        type: 'PROJECT.INVITATION.REMOVE',
        description: `removed an invitation to project ${project.name}`,
        resourceType: 'Project',
        resourceId: project.uuid,
      });
    });
    return success();
  },
});

export const memberCommands = [
  addAccountToProject,
  addUserToProject,
  deleteAccountFromProject,
  deleteUserFromProject,
  listProjectAccounts,
  listProjectInvitations,
  updateProjectInvitation,
  deleteProjectInvitation,
];
