import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/** Affinity groups with their VM memberships, and the usage records generated from events. */
export async function up(m: MigrationContext): Promise<void> {
  await entityTable(m, 'affinity_groups')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('description', 'varchar(4096)')
    .addColumn('type', 'varchar(64)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('affinity_groups_account_name', ['account_id', 'name'])
    .execute();
  await m.db.schema
    .createTable('affinity_group_vm_map')
    .addColumn('group_id', 'integer', (c) => c.notNull())
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('affinity_group_vm_map_pk', ['group_id', 'vm_id'])
    .execute();
  await m.db.schema
    .createIndex('affinity_group_vm_map_vm')
    .on('affinity_group_vm_map')
    .column('vm_id')
    .execute();
  // Resources are named by uuid (and name) as they were when the record was made: usage outlives them.
  await keyedTable(m, 'usage_records')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('zone_id', 'integer')
    .addColumn('usage_type', 'integer', (c) => c.notNull())
    .addColumn('usage_id', 'varchar(40)', (c) => c.notNull())
    .addColumn('vm_uuid', 'varchar(40)')
    .addColumn('name', 'varchar(255)')
    .addColumn('offering_uuid', 'varchar(40)')
    .addColumn('template_uuid', 'varchar(40)')
    .addColumn('size_bytes', 'bigint')
    .addColumn('virtual_size_bytes', 'bigint')
    .addColumn('type', 'varchar(64)')
    .addColumn('cpu_number', 'integer')
    .addColumn('cpu_speed', 'integer')
    .addColumn('memory_mb', 'integer')
    .addColumn('description', 'varchar(2048)', (c) => c.notNull())
    .addColumn('raw_usage', 'double precision', (c) => c.notNull())
    .addColumn('start_date', 'bigint', (c) => c.notNull())
    .addColumn('end_date', 'bigint', (c) => c.notNull())
    .execute();
  await m.db.schema
    .createIndex('usage_records_period')
    .on('usage_records')
    .columns(['start_date', 'end_date'])
    .execute();
}
