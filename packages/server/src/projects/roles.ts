/**
 * Project roles (4.15+): roles defined inside one project, given to members with projectroleid.
 * Their ordered allow/deny rules hold a Regular member's calls made in the project (with its
 * projectid): the first matching rule decides, none matching denies (access.ts checkProjectRole).
 * Members may list them; the project's Admins and the admins of its domain change them.
 */
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { checkPermission, checkRule } from '../iam/roles.ts';
import { likeOp } from '../infra/common.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { checkProjectAccess, checkProjectModify, findProject } from './access.ts';
import type { ProjectRoleRow, ProjectRow } from './tables.ts';

async function findProjectRole(ctx: CallContext, project: ProjectRow, uuid: string): Promise<ProjectRoleRow> {
  const role = await ctx.app.store.db
    .selectFrom('project_roles')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('project_id', '=', project.id)
    .executeTakeFirst();
  if (!role) throw invalidParameter(`Unable to find project role by id ${uuid} in project ${project.name}`);
  return role;
}

function presentRole(project: ProjectRow, r: ProjectRoleRow): object {
  return {
    id: r.uuid,
    name: r.name,
    description: r.description ?? undefined,
    projectid: project.uuid,
    ispublic: true,
  };
}

/** The project a role command works in, once the caller may change its roles. */
async function managedProject(ctx: CallContext, uuid: string): Promise<ProjectRow> {
  const project = await findProject(ctx, uuid);
  await checkProjectModify(ctx, project);
  return project;
}

async function checkNameFree(
  ctx: CallContext,
  project: ProjectRow,
  name: string,
  except?: number,
): Promise<void> {
  let q = ctx.app.store.db
    .selectFrom('project_roles')
    .select('id')
    .where('project_id', '=', project.id)
    .where('name', '=', name);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst())
    throw invalidParameter(`Project role with name ${name} already exists in project ${project.name}`);
}

export const createProjectRole = defineCommand({
  name: 'createProjectRole',
  description:
    'Creates a role inside a project, empty until rules are added; names are unique within the project.',
  params: {
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    name: p.string({ required: true, description: 'Name of the role, unique within the project.' }),
    description: p.string({ description: 'Free text kept with the role.' }),
  },
  async handler(ctx, params) {
    const project = await managedProject(ctx, params.projectid);
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Project role name must not be empty');
    await checkNameFree(ctx, project, name);
    const { app } = ctx;
    const id = await app.store.db.transaction().execute(async (tx) => {
      const uuid = app.ids.uuid();
      const rowId = await insertId(app.store, tx, 'project_roles', {
        uuid,
        project_id: project.id,
        name,
        description: params.description ?? null,
        created: app.clock.now(),
      });
      await logEvent(ctx, tx, {
        type: 'ROLE.CREATE',
        description: `created role ${name} in project ${project.name}`,
        resourceType: 'ProjectRole',
        resourceId: uuid,
      });
      return rowId;
    });
    const row = await app.store.db
      .selectFrom('project_roles')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    return presentRole(project, row);
  },
});

export const listProjectRoles = defineCommand({
  name: 'listProjectRoles',
  description: "Lists a project's roles; its members and the admins of its domain may list them.",
  params: {
    ...listParams,
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    projectroleid: p.uuid({ description: 'Only this role.' }),
    name: p.string({ description: 'Only the role with exactly this name.' }),
  },
  async handler(ctx, params) {
    const project = await findProject(ctx, params.projectid);
    await checkProjectAccess(ctx, project);
    let q = ctx.app.store.db.selectFrom('project_roles').where('project_id', '=', project.id);
    if (params.projectroleid) q = q.where('uuid', '=', params.projectroleid);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(ctx.app, params)).execute();
    return listResult(
      rows.map((r) => presentRole(project, r)),
      Number(count),
    );
  },
});

export const updateProjectRole = defineCommand({
  name: 'updateProjectRole',
  description: 'Renames a project role or changes its description.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the project role.' }),
    projectid: p.uuid({ required: true, description: 'UUID of its project.' }),
    name: p.string({ description: 'New name, unique within the project.' }),
    description: p.string({ description: 'New description.' }),
  },
  async handler(ctx, params) {
    const project = await managedProject(ctx, params.projectid);
    const role = await findProjectRole(ctx, project, params.id);
    const name = params.name?.trim();
    if (name === '') throw invalidParameter('Project role name must not be empty');
    if (name !== undefined) await checkNameFree(ctx, project, name, role.id);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('project_roles')
        .set({ name: name ?? role.name, description: params.description ?? role.description })
        .where('id', '=', role.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'ROLE.UPDATE',
        description: `updated role ${role.name} of project ${project.name}`,
        resourceType: 'ProjectRole',
        resourceId: role.uuid,
      });
    });
    const row = await ctx.app.store.db
      .selectFrom('project_roles')
      .selectAll()
      .where('id', '=', role.id)
      .executeTakeFirstOrThrow();
    return presentRole(project, row);
  },
});

export const deleteProjectRole = defineCommand({
  name: 'deleteProjectRole',
  description:
    'Deletes a project role and its rules; refused while a member or a pending invitation holds it.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the project role.' }),
    projectid: p.uuid({ required: true, description: 'UUID of its project.' }),
  },
  async handler(ctx, params) {
    const project = await managedProject(ctx, params.projectid);
    const role = await findProjectRole(ctx, project, params.id);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      const held =
        (await tx
          .selectFrom('project_members')
          .select('id')
          .where('project_role_id', '=', role.id)
          .executeTakeFirst()) ??
        (await tx
          .selectFrom('project_invitations')
          .select('id')
          .where('project_role_id', '=', role.id)
          .where('state', '=', 'Pending')
          .executeTakeFirst());
      if (held)
        throw invalidParameter(
          `Project role ${role.name} cannot be deleted: it is assigned to project members`,
        );
      await tx.deleteFrom('project_role_permissions').where('project_role_id', '=', role.id).execute();
      await tx.deleteFrom('project_roles').where('id', '=', role.id).execute();
      await logEvent(ctx, tx, {
        type: 'ROLE.DELETE',
        description: `deleted role ${role.name} of project ${project.name}`,
        resourceType: 'ProjectRole',
        resourceId: role.uuid,
      });
    });
    return success();
  },
});

async function presentPermissions(
  ctx: CallContext,
  project: ProjectRow,
  roleIds: number[],
): Promise<object[]> {
  if (roleIds.length === 0) return [];
  const rows = await ctx.app.store.db
    .selectFrom('project_role_permissions')
    .innerJoin('project_roles', 'project_roles.id', 'project_role_permissions.project_role_id')
    .selectAll('project_role_permissions')
    .select(['project_roles.uuid as roleuuid', 'project_roles.name as rolename'])
    .where('project_role_permissions.project_role_id', 'in', roleIds)
    .orderBy('project_role_permissions.project_role_id')
    .orderBy('project_role_permissions.sort_order')
    .execute();
  return rows.map((r) => ({
    id: r.uuid,
    projectid: project.uuid,
    projectroleid: r.roleuuid,
    projectrolename: r.rolename,
    rule: r.rule,
    permission: r.permission,
    description: r.description ?? '',
  }));
}

export const createProjectRolePermission = defineCommand({
  name: 'createProjectRolePermission',
  description:
    'Appends an allow or deny rule for an API name (or * pattern) to a project role; rules are tried in order on its holders’ calls in the project.',
  params: {
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    projectroleid: p.uuid({ required: true, description: 'UUID of the project role.' }),
    rule: p.string({
      required: true,
      description: 'API command name, or a pattern with * wildcards (list*).',
    }),
    permission: p.string({ required: true, description: "'allow' or 'deny'." }),
    description: p.string({ description: 'Free text kept with the rule.' }),
  },
  async handler(ctx, params) {
    const project = await managedProject(ctx, params.projectid);
    const role = await findProjectRole(ctx, project, params.projectroleid);
    const rule = checkRule(params.rule);
    const permission = checkPermission(params.permission);
    const { app } = ctx;
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      const last = await tx
        .selectFrom('project_role_permissions')
        .select((eb) => eb.fn.max('sort_order').as('n'))
        .where('project_role_id', '=', role.id)
        .executeTakeFirst();
      await tx
        .insertInto('project_role_permissions')
        .values({
          uuid,
          project_id: project.id,
          project_role_id: role.id,
          rule,
          permission,
          description: params.description ?? null,
          sort_order: last?.n === null || last?.n === undefined ? 0 : Number(last.n) + 1,
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'PROJECT.ROLE.PERMISSION.CREATE',
        description: `added ${permission} ${rule} to role ${role.name} of project ${project.name}`,
        resourceType: 'ProjectRole',
        resourceId: role.uuid,
      });
    });
    const all = await presentPermissions(ctx, project, [role.id]);
    return all.find((x) => (x as { id: string }).id === uuid)!;
  },
});

export const listProjectRolePermissions = defineCommand({
  name: 'listProjectRolePermissions',
  description: "Lists the rules of a project's roles (or of one role) in the order they are tried.",
  params: {
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    projectroleid: p.uuid({ description: 'Only the rules of this project role.' }),
  },
  async handler(ctx, params) {
    const project = await findProject(ctx, params.projectid);
    await checkProjectAccess(ctx, project);
    const roleIds = params.projectroleid
      ? [(await findProjectRole(ctx, project, params.projectroleid)).id]
      : (
          await ctx.app.store.db
            .selectFrom('project_roles')
            .select('id')
            .where('project_id', '=', project.id)
            .execute()
        ).map((r) => r.id);
    const items = await presentPermissions(ctx, project, roleIds);
    return listResult(items, items.length);
  },
});

export const updateProjectRolePermission = defineCommand({
  name: 'updateProjectRolePermission',
  description:
    "Reorders a project role's rules (ruleorder: every rule once) or changes one rule's permission (projectrolepermissionid with permission).",
  params: {
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
    projectroleid: p.uuid({ required: true, description: 'UUID of the project role.' }),
    ruleorder: p.list({
      of: 'uuid',
      description: 'UUIDs of every rule of the role, in the new order; wins over the others.',
    }),
    projectrolepermissionid: p.uuid({ description: 'UUID of the rule whose permission changes.' }),
    permission: p.string({ description: "New permission of that rule: 'allow' or 'deny'." }),
  },
  async handler(ctx, params) {
    const project = await managedProject(ctx, params.projectid);
    const role = await findProjectRole(ctx, project, params.projectroleid);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      if (params.ruleorder) {
        const rules = await tx
          .selectFrom('project_role_permissions')
          .select(['id', 'uuid'])
          .where('project_role_id', '=', role.id)
          .execute();
        const byUuid = new Map(rules.map((r) => [r.uuid, r.id]));
        if (params.ruleorder.length !== rules.length || params.ruleorder.some((u) => !byUuid.has(u)))
          throw invalidParameter('ruleorder must list every rule of the project role exactly once');
        for (const [i, uuid] of params.ruleorder.entries())
          await tx
            .updateTable('project_role_permissions')
            .set({ sort_order: i })
            .where('id', '=', byUuid.get(uuid)!)
            .execute();
      } else if (params.projectrolepermissionid && params.permission) {
        const r = await tx
          .updateTable('project_role_permissions')
          .set({ permission: checkPermission(params.permission) })
          .where('uuid', '=', params.projectrolepermissionid)
          .where('project_role_id', '=', role.id)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0)
          throw invalidParameter(
            `Rule ${params.projectrolepermissionid} does not belong to project role ${role.name}`,
          );
      } else {
        throw invalidParameter('Either ruleorder, or projectrolepermissionid with permission, must be given');
      }
      await logEvent(ctx, tx, {
        type: 'PROJECT.ROLE.PERMISSION.UPDATE',
        description: `updated the rules of role ${role.name} of project ${project.name}`,
        resourceType: 'ProjectRole',
        resourceId: role.uuid,
      });
    });
    return success();
  },
});

export const deleteProjectRolePermission = defineCommand({
  name: 'deleteProjectRolePermission',
  description: 'Removes one rule from a project role.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the rule.' }),
    projectid: p.uuid({ required: true, description: 'UUID of the project.' }),
  },
  async handler(ctx, params) {
    const project = await managedProject(ctx, params.projectid);
    const db = ctx.app.store.db;
    const rule = await db
      .selectFrom('project_role_permissions')
      .selectAll()
      .where('uuid', '=', params.id)
      .where('project_id', '=', project.id)
      .executeTakeFirst();
    if (!rule) throw invalidParameter(`Unable to find project role permission by id ${params.id}`);
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('project_role_permissions').where('id', '=', rule.id).execute();
      await logEvent(ctx, tx, {
        type: 'PROJECT.ROLE.PERMISSION.DELETE',
        description: `removed ${rule.permission} ${rule.rule} from a role of project ${project.name}`,
        resourceType: 'ProjectRole',
        resourceId: params.id,
      });
    });
    return success();
  },
});

export const projectRoleCommands = [
  createProjectRole,
  listProjectRoles,
  updateProjectRole,
  deleteProjectRole,
  createProjectRolePermission,
  listProjectRolePermissions,
  updateProjectRolePermission,
  deleteProjectRolePermission,
];
