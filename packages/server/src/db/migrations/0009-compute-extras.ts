import { entityTable, type MigrationContext } from './helpers.ts';

/** Instance groups (a VM's `group`). */
export async function up(m: MigrationContext): Promise<void> {
  await entityTable(m, 'instance_groups')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('instance_groups_account_name', ['account_id', 'name'])
    .execute();
}
