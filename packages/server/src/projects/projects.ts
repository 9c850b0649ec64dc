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
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow } from '../db/schema.ts';
import { internalError, invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { deleteAccountCascade, onAccountDelete, resolveAccount, runDisableHooks } from '../iam/accounts.ts';
import { forgetCachedIdentity } from '../iam/caller.ts';
import { ResourceKind, reserve } from '../iam/limits.ts';
import { ACCOUNT_TYPE } from '../iam/seed.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { checkProjectModify, findProject, PROJECT_ROLE, PROJECT_STATE, projectAccountOf } from './access.ts';
import { presentProject } from './list.ts';
import { ALLOW_USER_CREATE_PROJECTS } from './settings.ts';
import type { ProjectRow } from './tables.ts';

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
        const member = await namedMember(tx, project, params);
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
async function namedMember(tx: Tx, project: ProjectRow, params: { account?: string; userid?: string }) {
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

/**
 * What a project still holds that deleteProject without cleanup refuses to drop, in upstream's
 * order and named as upstream names them; volumes count only when detached (a VM's go with it).
 */
const LEFTOVERS: {
  kind: string;
  table: 'templates' | 'vm_snapshots' | 'vms' | 'volumes' | 'networks' | 'vpcs';
  detachedOnly?: boolean;
}[] = [
  { kind: 'VMTemplateVO', table: 'templates' },
  { kind: 'VMSnapshotVO', table: 'vm_snapshots' },
  { kind: 'UserVmVO', table: 'vms' },
  { kind: 'VolumeVO', table: 'volumes', detachedOnly: true },
  { kind: 'NetworkVO', table: 'networks' },
  { kind: 'VpcVO', table: 'vpcs' },
];

async function leftovers(ctx: CallContext, accountId: number): Promise<string | undefined> {
  const counts = LEFTOVERS.map(({ kind, table, detachedOnly }) => {
    let q = ctx.app.store.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('account_id', '=', accountId)
      .where('removed', 'is', null);
    if (detachedOnly) q = q.where('vm_id', 'is', null);
    return [kind, q.executeTakeFirst()] as const;
  });
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

/** suspendProject's and activateProject's states, for the project and its account, and their events. */
const MOVES = {
  suspend: {
    state: PROJECT_STATE.Suspended,
    account: 'disabled',
    event: 'PROJECT.SUSPEND',
    doing: 'suspending',
    done: 'suspended',
  },
  activate: {
    state: PROJECT_STATE.Active,
    account: 'enabled',
    event: 'PROJECT.ACTIVATE',
    doing: 'activating',
    done: 'activated',
  },
} as const;
type Move = keyof typeof MOVES;

/** Moves a project between Active and Suspended; its account is enabled or disabled with it. */
async function setProjectState(ctx: CallContext, project: ProjectRow, move: Move): Promise<void> {
  const m = MOVES[move];
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx.updateTable('projects').set({ state: m.state }).where('id', '=', project.id).execute();
    await tx
      .updateTable('accounts')
      .set({ state: m.account })
      .where('id', '=', project.project_account_id)
      .execute();
    await logEvent(ctx, tx, {
      type: m.event,
      description: `${m.done} project ${project.name}`,
      resourceType: 'Project',
      resourceId: project.uuid,
    });
  });
  forgetCachedIdentity();
}

/** suspendProject and activateProject: the caller's project found, moved by `move`, and presented. */
function projectStateCommand(
  verb: Move,
  spec: {
    name: string;
    description: string;
    move: (ctx: CallContext, project: ProjectRow) => Promise<void>;
  },
) {
  return defineCommand({
    name: spec.name,
    description: spec.description,
    params: { id: p.uuid({ required: true, description: `UUID of the project to ${verb}.` }) },
    event: { type: MOVES[verb].event, description: (params) => `${MOVES[verb].doing} project ${params.id}` },
    target: projectTarget,
    async handler(ctx, params) {
      const project = await manageableProject(ctx, params.id);
      await spec.move(ctx, project);
      return presentProject(ctx, project.id);
    },
  });
}

export const suspendProject = projectStateCommand('suspend', {
  name: 'suspendProject',
  description:
    "Suspends a project: no resources can be added to it and its running VMs are stopped, as upstream's disabling of the project account does. Asynchronous.",
  async move(ctx, project) {
    await setProjectState(ctx, project, 'suspend');
    await runDisableHooks(ctx, await projectAccountOf(ctx.app.store.db, project));
  },
});

export const activateProject = projectStateCommand('activate', {
  name: 'activateProject',
  description:
    'Makes a suspended project Active again so resources can be added to it; its stopped VMs stay stopped. Asynchronous.',
  async move(ctx, project) {
    if (project.state === PROJECT_STATE.Active) return;
    if (project.state !== PROJECT_STATE.Suspended)
      throw invalidParameter(`Can't activate the project in ${project.state} state`);
    await setProjectState(ctx, project, 'activate');
  },
});

/**
 * An account that administers a project cannot be deleted (upstream's refusal; make another
 * member Admin first); otherwise its memberships and invitations go with it. Runs before any
 * other cleanup, so a refused deletion has destroyed nothing.
 */
onAccountDelete(async (ctx, account) => {
  const db = ctx.app.store.db;
  const administered = await db
    .selectFrom('project_members')
    .innerJoin('projects', 'projects.id', 'project_members.project_id')
    .select('projects.uuid')
    .distinct()
    .where('project_members.account_id', '=', account.id)
    .where('project_members.role', '=', PROJECT_ROLE.Admin)
    .where('projects.removed', 'is', null)
    .execute();
  if (administered.length)
    throw invalidParameter(
      `The account ${account.name} manages project(s) with ids ${administered.map((p) => p.uuid).join(', ')} and can't be removed`,
    );
  await db.transaction().execute(async (tx) => {
    await tx.deleteFrom('project_members').where('account_id', '=', account.id).execute();
    await tx.deleteFrom('project_invitations').where('account_id', '=', account.id).execute();
  });
}, -1);
