/** Roles and their permission rules (CloudStack's dynamic roles). */
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { RoleRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { escapeLike, likeEscaped } from './access.ts';
import { forgetCachedIdentity } from './caller.ts';

const ROLE_TYPES = ['Admin', 'ResourceAdmin', 'DomainAdmin', 'User'];

function presentRole(r: RoleRow): object {
  return {
    id: r.uuid,
    name: r.name,
    type: r.type,
    description: r.description ?? undefined,
    isdefault: r.is_default === 1,
    ispublic: r.is_public === 1,
    state: 'ENABLED',
  };
}

async function findRole(ctx: CallContext, uuid: string): Promise<RoleRow> {
  const role = await ctx.app.store.db
    .selectFrom('roles')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!role) throw invalidParameter(`Invalid role id provided: ${uuid}`);
  return role;
}

function checkRoleType(type: string): string {
  const match = ROLE_TYPES.find((t) => t.toLowerCase() === type.toLowerCase());
  if (!match) throw invalidParameter(`Invalid role type ${type}: use one of ${ROLE_TYPES.join(', ')}`);
  return match;
}

export const createRole = defineCommand({
  name: 'createRole',
  description:
    "Creates a role of a given type, empty or as a copy of another role's rules; names are unique.",
  params: {
    name: p.string({ required: true, description: 'Name of the new role, unique across all roles.' }),
    type: p.string({
      description:
        'Role type: Admin, ResourceAdmin, DomainAdmin or User (case-insensitive); give this or roleid.',
    }),
    roleid: p.uuid({ description: 'UUID of a role whose type and rules are copied; give this or type.' }),
    description: p.string({ description: 'Free text kept with the role.' }),
    ispublic: p.boolean({ description: 'When false, only root admins see the role; default true.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    if ((params.type === undefined) === (params.roleid === undefined))
      throw invalidParameter('Exactly one of type or roleid (a role to copy) must be given');
    const source = params.roleid ? await findRole(ctx, params.roleid) : undefined;
    const type = source ? source.type : checkRoleType(params.type!);
    const row = await app.store.db.transaction().execute(async (tx) => {
      const clash = await tx
        .selectFrom('roles')
        .select('id')
        .where('name', '=', params.name)
        .executeTakeFirst();
      if (clash) throw invalidParameter(`Role with name ${params.name} already exists`);
      const id = await insertId(app.store, tx, 'roles', {
        uuid: app.ids.uuid(),
        name: params.name,
        type,
        description: params.description ?? null,
        is_default: 0,
        is_public: params.ispublic === false ? 0 : 1,
        created: app.clock.now(),
      });
      if (source) {
        const rules = await tx
          .selectFrom('role_permissions')
          .selectAll()
          .where('role_id', '=', source.id)
          .orderBy('sort_order')
          .execute();
        for (const r of rules) {
          await insertId(app.store, tx, 'role_permissions', {
            uuid: app.ids.uuid(),
            role_id: id,
            rule: r.rule,
            permission: r.permission,
            description: r.description,
            sort_order: r.sort_order,
          });
        }
      }
      const role = await tx.selectFrom('roles').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      await logEvent(ctx, tx, {
        type: 'ROLE.CREATE',
        description: `creating role ${params.name}`,
        resourceType: 'Role',
        resourceId: role.uuid,
      });
      return role;
    });
    return presentRole(row);
  },
});

export const listRoles = defineCommand({
  name: 'listRoles',
  description: 'Lists roles; callers other than root admins see only public, non-Admin roles.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the role with this UUID.' }),
    name: p.string({ description: 'Only roles with exactly this name.' }),
    type: p.string({ description: 'Only roles of this type: Admin, ResourceAdmin, DomainAdmin or User.' }),
    state: p.string({
      description: 'Accepted for compatibility; Nimbostack roles are always enabled, so it is ignored.',
    }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    let q = app.store.db.selectFrom('roles');
    if (caller.roleKind !== 'admin') q = q.where('is_public', '=', 1).where('type', '!=', 'Admin');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.type) q = q.where('type', '=', checkRoleType(params.type));
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rowsQ = paginate(q.selectAll().orderBy('id'), pageOf(app, params));
    return listResult((await rowsQ.execute()).map(presentRole), Number(count));
  },
});

export const updateRole = defineCommand({
  name: 'updateRole',
  description:
    "Changes a role's name, type, description or visibility; default roles keep their name and type, and a role in use keeps its type.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the role to change.' }),
    name: p.string({ description: 'New name, unique across all roles.' }),
    type: p.string({
      description:
        'New type (Admin, ResourceAdmin, DomainAdmin or User); refused while accounts use the role.',
    }),
    description: p.string({ description: 'New description.' }),
    ispublic: p.boolean({ description: 'Whether callers other than root admins see the role.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const role = await findRole(ctx, params.id);
    if (role.is_default && (params.name !== undefined || params.type !== undefined)) {
      throw invalidParameter('The name and type of a default role cannot be changed');
    }
    const row = await app.store.db.transaction().execute(async (tx) => {
      const changes: Partial<RoleRow> = {};
      if (params.name !== undefined) {
        const clash = await tx
          .selectFrom('roles')
          .select('id')
          .where('name', '=', params.name)
          .where('id', '!=', role.id)
          .executeTakeFirst();
        if (clash) throw invalidParameter(`Role with name ${params.name} already exists`);
        changes.name = params.name;
      }
      if (params.type !== undefined) {
        const used = await tx
          .selectFrom('accounts')
          .select('id')
          .where('role_id', '=', role.id)
          .executeTakeFirst();
        if (used) throw resourceInUse('The type of a role in use by accounts cannot be changed');
        changes.type = checkRoleType(params.type);
      }
      if (params.description !== undefined) changes.description = params.description;
      if (params.ispublic !== undefined) changes.is_public = params.ispublic ? 1 : 0;
      if (Object.keys(changes).length > 0)
        await tx.updateTable('roles').set(changes).where('id', '=', role.id).execute();
      await logEvent(ctx, tx, {
        type: 'ROLE.UPDATE',
        description: `updating role ${role.name}`,
        resourceType: 'Role',
        resourceId: role.uuid,
      });
      return tx.selectFrom('roles').selectAll().where('id', '=', role.id).executeTakeFirstOrThrow();
    });
    forgetCachedIdentity();
    return presentRole(row);
  },
});

export const deleteRole = defineCommand({
  name: 'deleteRole',
  description: 'Deletes a role with its rules; refused for default roles and for roles accounts still use.',
  params: { id: p.uuid({ required: true, description: 'UUID of the role to delete.' }) },
  async handler(ctx, params) {
    const role = await findRole(ctx, params.id);
    if (role.is_default) throw invalidParameter('Default roles cannot be deleted');
    await ctx.app.store.db.transaction().execute(async (tx) => {
      const used = await tx
        .selectFrom('accounts')
        .select('id')
        .where('role_id', '=', role.id)
        .executeTakeFirst();
      if (used) throw resourceInUse(`Role ${role.name} is in use by accounts and cannot be deleted`);
      await tx.deleteFrom('role_permissions').where('role_id', '=', role.id).execute();
      await tx.deleteFrom('roles').where('id', '=', role.id).execute();
      await logEvent(ctx, tx, {
        type: 'ROLE.DELETE',
        description: `deleted role ${role.name}`,
        resourceType: 'Role',
        resourceId: role.uuid,
      });
    });
    return success();
  },
});

export function checkPermission(permission: string): string {
  const v = permission.toLowerCase();
  if (v !== 'allow' && v !== 'deny') throw invalidParameter('permission must be allow or deny');
  return v;
}

export function checkRule(rule: string): string {
  if (!/^[A-Za-z0-9*]+$/.test(rule))
    throw invalidParameter(`Invalid rule ${rule}: use an API name, optionally with * wildcards`);
  return rule;
}

export const createRolePermission = defineCommand({
  name: 'createRolePermission',
  description:
    'Appends an allow or deny rule for an API name pattern to a role; rules are checked in order, first match wins.',
  params: {
    roleid: p.uuid({
      required: true,
      description: 'UUID of the role; the default root admin role takes no rules.',
    }),
    rule: p.string({
      required: true,
      description:
        'An API command name, optionally with * wildcards (letters, digits and *), such as list* ; unique per role.',
    }),
    permission: p.string({ required: true, description: 'allow or deny (case-insensitive).' }),
    description: p.string({ description: 'Free text kept with the rule.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const role = await findRole(ctx, params.roleid);
    if (role.type === 'Admin' && role.is_default)
      throw invalidParameter('The root admin role may call every API; it takes no rules');
    const rule = checkRule(params.rule);
    const permission = checkPermission(params.permission);
    const row = await app.store.db.transaction().execute(async (tx) => {
      const clash = await tx
        .selectFrom('role_permissions')
        .select('id')
        .where('role_id', '=', role.id)
        .where('rule', '=', rule)
        .executeTakeFirst();
      if (clash) throw invalidParameter(`Rule ${rule} already exists for role ${role.name}`);
      const last = await tx
        .selectFrom('role_permissions')
        .select((eb) => eb.fn.max('sort_order').as('max'))
        .where('role_id', '=', role.id)
        .executeTakeFirst();
      const id = await insertId(app.store, tx, 'role_permissions', {
        uuid: app.ids.uuid(),
        role_id: role.id,
        rule,
        permission,
        description: params.description ?? null,
        sort_order: Number(last?.max ?? -1) + 1,
      });
      await logEvent(ctx, tx, {
        type: 'ROLE.PERMISSION.CREATE',
        description: `creating rule ${rule} for role ${role.name}`,
        resourceType: 'Role',
        resourceId: role.uuid,
      });
      return tx.selectFrom('role_permissions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    });
    forgetCachedIdentity();
    return {
      id: row.uuid,
      roleid: role.uuid,
      rolename: role.name,
      rule: row.rule,
      permission: row.permission,
      description: row.description ?? undefined,
    };
  },
});

export const listRolePermissions = defineCommand({
  name: 'listRolePermissions',
  description: 'Lists the rules of a role, or of every role, in the order they are evaluated.',
  params: { roleid: p.uuid({ description: 'Only the rules of this role.' }) },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db.selectFrom('role_permissions').innerJoin('roles', 'roles.id', 'role_permissions.role_id');
    if (params.roleid) q = q.where('roles.uuid', '=', (await findRole(ctx, params.roleid)).uuid);
    const rows = await q
      .select([
        'role_permissions.uuid as id',
        'roles.uuid as roleid',
        'roles.name as rolename',
        'rule',
        'permission',
        'role_permissions.description',
      ])
      .orderBy('roles.id')
      .orderBy('sort_order')
      .execute();
    return listResult(
      rows.map((r) => ({ ...r, description: r.description ?? undefined })),
      rows.length,
    );
  },
});

export const updateRolePermission = defineCommand({
  name: 'updateRolePermission',
  description: 'Reorders all the rules of a role, or switches one rule between allow and deny.',
  params: {
    roleid: p.uuid({ required: true, description: 'UUID of the role.' }),
    ruleid: p.uuid({ description: 'UUID of the rule to change, together with permission.' }),
    permission: p.string({ description: 'New permission for ruleid: allow or deny.' }),
    ruleorder: p.list({
      of: 'uuid',
      description:
        'UUIDs of every rule of the role, in the new evaluation order; takes precedence over ruleid.',
    }),
  },
  async handler(ctx, params) {
    const role = await findRole(ctx, params.roleid);
    const db = ctx.app.store.db;
    await db.transaction().execute(async (tx) => {
      if (params.ruleorder) {
        const rules = await tx
          .selectFrom('role_permissions')
          .select(['id', 'uuid'])
          .where('role_id', '=', role.id)
          .execute();
        const byUuid = new Map(rules.map((r) => [r.uuid, r.id]));
        if (params.ruleorder.length !== rules.length || params.ruleorder.some((u) => !byUuid.has(u))) {
          throw invalidParameter('ruleorder must list every rule of the role exactly once');
        }
        for (const [i, uuid] of params.ruleorder.entries()) {
          await tx
            .updateTable('role_permissions')
            .set({ sort_order: i })
            .where('id', '=', byUuid.get(uuid)!)
            .execute();
        }
      } else if (params.ruleid && params.permission) {
        const r = await tx
          .updateTable('role_permissions')
          .set({ permission: checkPermission(params.permission) })
          .where('uuid', '=', params.ruleid)
          .where('role_id', '=', role.id)
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0)
          throw invalidParameter(`Rule ${params.ruleid} does not belong to role ${role.name}`);
      } else {
        throw invalidParameter('Either ruleorder, or ruleid with permission, must be given');
      }
      await logEvent(ctx, tx, {
        type: 'ROLE.PERMISSION.UPDATE',
        description: `updating rules of role ${role.name}`,
        resourceType: 'Role',
        resourceId: role.uuid,
      });
    });
    forgetCachedIdentity();
    return success();
  },
});

export const deleteRolePermission = defineCommand({
  name: 'deleteRolePermission',
  description: 'Removes one rule from its role; the change applies to calls at once.',
  params: { id: p.uuid({ required: true, description: 'UUID of the rule to remove.' }) },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const rule = await db
      .selectFrom('role_permissions')
      .selectAll()
      .where('uuid', '=', params.id)
      .executeTakeFirst();
    if (!rule) throw invalidParameter(`Invalid role permission id provided: ${params.id}`);
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('role_permissions').where('id', '=', rule.id).execute();
      await logEvent(ctx, tx, {
        type: 'ROLE.PERMISSION.DELETE',
        description: `deleted rule ${rule.rule}`,
        resourceType: 'Role',
        resourceId: params.id,
      });
    });
    forgetCachedIdentity();
    return success();
  },
});

export const roleCommands = [
  createRole,
  listRoles,
  updateRole,
  deleteRole,
  createRolePermission,
  listRolePermissions,
  updateRolePermission,
  deleteRolePermission,
];
