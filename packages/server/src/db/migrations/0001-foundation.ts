import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/** Identity, sessions, jobs, events, settings and tags. */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'management_servers')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('version', 'varchar(64)', (c) => c.notNull())
    .addColumn('started', 'bigint', (c) => c.notNull())
    .addColumn('last_heartbeat', 'bigint', (c) => c.notNull())
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .execute();

  await entityTable(m, 'domains')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('parent_id', 'integer', (c) => c.references('domains.id'))
    .addColumn('path', 'varchar(700)', (c) => c.notNull())
    .addColumn('level', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('network_domain', 'varchar(255)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('domains_parent').on('domains').column('parent_id').execute();
  await db.schema.createIndex('domains_path').on('domains').column('path').execute();

  await entityTable(m, 'roles')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('type', 'varchar(32)', (c) => c.notNull())
    .addColumn('description', 'varchar(1024)')
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();

  await entityTable(m, 'role_permissions')
    .addColumn('role_id', 'integer', (c) => c.notNull().references('roles.id').onDelete('cascade'))
    .addColumn('rule', 'varchar(255)', (c) => c.notNull())
    .addColumn('permission', 'varchar(16)', (c) => c.notNull())
    .addColumn('description', 'varchar(1024)')
    .addColumn('sort_order', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('role_permissions_role')
    .on('role_permissions')
    .columns(['role_id', 'sort_order'])
    .execute();

  await entityTable(m, 'accounts')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('type', 'integer', (c) => c.notNull())
    .addColumn('role_id', 'integer', (c) => c.notNull().references('roles.id'))
    .addColumn('domain_id', 'integer', (c) => c.notNull().references('domains.id'))
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('network_domain', 'varchar(255)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('accounts_domain_name').on('accounts').columns(['domain_id', 'name']).execute();

  await entityTable(m, 'users')
    .addColumn('username', 'varchar(255)', (c) => c.notNull())
    .addColumn('password', 'varchar(255)', (c) => c.notNull())
    .addColumn('firstname', 'varchar(255)', (c) => c.notNull())
    .addColumn('lastname', 'varchar(255)', (c) => c.notNull())
    .addColumn('email', 'varchar(255)')
    .addColumn('timezone', 'varchar(64)')
    .addColumn('account_id', 'integer', (c) => c.notNull().references('accounts.id'))
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('api_key', 'varchar(255)', (c) => c.unique())
    .addColumn('secret_key', 'varchar(512)')
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('source', 'varchar(32)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('users_account').on('users').column('account_id').execute();
  await db.schema.createIndex('users_username').on('users').column('username').execute();

  await keyedTable(m, 'sessions')
    .addColumn('session_id', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('session_key', 'varchar(64)', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('last_access', 'bigint', (c) => c.notNull())
    .execute();

  await entityTable(m, 'async_jobs')
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('command', 'varchar(255)', (c) => c.notNull())
    .addColumn('cmd', 'varchar(255)', (c) => c.notNull())
    .addColumn('params', 'text', (c) => c.notNull())
    .addColumn('instance_type', 'varchar(64)')
    .addColumn('instance_id', 'varchar(40)')
    .addColumn('status', 'integer', (c) => c.notNull())
    .addColumn('process_status', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('result_code', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('result_type', 'varchar(16)')
    .addColumn('result', 'text')
    .addColumn('ms_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('completed', 'bigint')
    .execute();
  await db.schema
    .createIndex('async_jobs_account')
    .on('async_jobs')
    .columns(['account_id', 'created'])
    .execute();
  await db.schema.createIndex('async_jobs_status').on('async_jobs').columns(['status', 'ms_id']).execute();
  await db.schema
    .createIndex('async_jobs_instance')
    .on('async_jobs')
    .columns(['instance_id', 'status'])
    .execute();

  await entityTable(m, 'events')
    .addColumn('type', 'varchar(64)', (c) => c.notNull())
    .addColumn('level', 'varchar(16)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('resource_type', 'varchar(64)')
    .addColumn('resource_id', 'varchar(40)')
    .addColumn('start_id', 'integer')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('archived', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createIndex('events_account_created')
    .on('events')
    .columns(['account_id', 'created'])
    .execute();
  await db.schema.createIndex('events_created').on('events').column('created').execute();

  await db.schema
    .createTable('configuration')
    .addColumn('name', 'varchar(255)', (c) => c.primaryKey())
    .addColumn('value', 'text')
    .addColumn('updated', 'bigint', (c) => c.notNull())
    .execute();
  await keyedTable(m, 'scoped_configuration')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('scope', 'varchar(32)', (c) => c.notNull())
    .addColumn('scope_id', 'integer', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addUniqueConstraint('scoped_configuration_unique', ['name', 'scope', 'scope_id'])
    .execute();

  await entityTable(m, 'resource_tags')
    .addColumn('key', 'varchar(255)', (c) => c.notNull())
    .addColumn('value', 'varchar(255)', (c) => c.notNull())
    .addColumn('resource_type', 'varchar(64)', (c) => c.notNull())
    .addColumn('resource_id', 'integer', (c) => c.notNull())
    .addColumn('resource_uuid', 'varchar(40)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('customer', 'varchar(255)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('resource_tags_unique', ['resource_type', 'resource_id', 'key'])
    .execute();
  await db.schema.createIndex('resource_tags_kv').on('resource_tags').columns(['key', 'value']).execute();
}
