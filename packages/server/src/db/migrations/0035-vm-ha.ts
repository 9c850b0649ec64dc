import { keyedTable, type MigrationContext } from './helpers.ts';

/**
 * VM high availability (ha/): `host_ha` holds each host's HA configuration and state (the host-HA
 * commands and what investigations concluded), one row per host once it has any; `ha_work` the
 * VMs of a fenced host waiting to be restarted elsewhere, claimed by one server at a time.
 */
export async function up(m: MigrationContext): Promise<void> {
  await keyedTable(m, 'host_ha')
    .addColumn('host_id', 'integer', (c) => c.notNull().unique())
    .addColumn('provider', 'varchar(64)')
    .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('detail', 'varchar(1024)')
    .addColumn('updated', 'bigint', (c) => c.notNull())
    .execute();
  await keyedTable(m, 'ha_work')
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addColumn('host_id', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt', 'bigint', (c) => c.notNull())
    .addColumn('ms_id', 'integer')
    .addColumn('last_error', 'varchar(1024)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('updated', 'bigint', (c) => c.notNull())
    .execute();
  await m.db.schema.createIndex('ha_work_due').on('ha_work').columns(['state', 'next_attempt']).execute();
  await m.db.schema.createIndex('ha_work_vm').on('ha_work').column('vm_id').execute();
}
