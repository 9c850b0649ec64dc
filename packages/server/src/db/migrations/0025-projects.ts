import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * Projects (issue 17): a project owns its resources through its own account of type 5
 * (`PrjAcct-<name>-<domain id>`, in the project's domain), so every ownership, limit and usage
 * path that works for accounts works for projects unchanged.
 *
 * - `projects`: the project (name unique per domain among live projects, state Active, Suspended
 *   or Disabled while it is being deleted) and its account.
 * - `project_members`: who belongs to it: a whole account (`user_id` null) or, as 4.15+, one user
 *   of an account; each with the role Admin or Regular and optionally a project role.
 * - `project_invitations`: invitations when `project.invite.required` is true, to an account, a
 *   user, or an e-mail address with a token; Pending, then Completed, Declined or Expired.
 * - `project_roles` / `project_role_permissions`: a project's own roles, rules tried in order on
 *   the API calls its Regular members make in the project.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'projects')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_text', 'varchar(4096)', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull().references('domains.id'))
    // No foreign key: deleting a project deletes its account (deleteAccountCascade) before the project row.
    .addColumn('project_account_id', 'integer', (c) => c.notNull().unique())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('projects_domain').on('projects').columns(['domain_id', 'name']).execute();
  await entityTable(m, 'project_roles')
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('description', 'varchar(4096)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('project_roles_project').on('project_roles').column('project_id').execute();
  await entityTable(m, 'project_role_permissions')
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
    .addColumn('project_role_id', 'integer', (c) => c.notNull().references('project_roles.id'))
    .addColumn('rule', 'varchar(255)', (c) => c.notNull())
    .addColumn('permission', 'varchar(8)', (c) => c.notNull())
    .addColumn('description', 'varchar(4096)')
    .addColumn('sort_order', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('project_role_permissions_role')
    .on('project_role_permissions')
    .columns(['project_role_id', 'sort_order'])
    .execute();
  await keyedTable(m, 'project_members')
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
    .addColumn('account_id', 'integer', (c) => c.notNull().references('accounts.id'))
    .addColumn('user_id', 'integer')
    .addColumn('role', 'varchar(16)', (c) => c.notNull())
    .addColumn('project_role_id', 'integer')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('project_members_project')
    .on('project_members')
    .columns(['project_id', 'account_id'])
    .execute();
  await db.schema
    .createIndex('project_members_account')
    .on('project_members')
    .columns(['account_id', 'project_id'])
    .execute();
  await entityTable(m, 'project_invitations')
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id'))
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer')
    .addColumn('user_id', 'integer')
    .addColumn('email', 'varchar(255)')
    .addColumn('token', 'varchar(64)')
    .addColumn('role', 'varchar(16)', (c) => c.notNull())
    .addColumn('project_role_id', 'integer')
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('project_invitations_project')
    .on('project_invitations')
    .columns(['project_id', 'state'])
    .execute();
}
