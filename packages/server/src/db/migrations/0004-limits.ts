import { keyedTable, type MigrationContext } from './helpers.ts';

/** Resource limits (explicit maxima) and the running counts they are checked against. */
export async function up(m: MigrationContext): Promise<void> {
  await keyedTable(m, 'resource_limits')
    .addColumn('owner_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('owner_id', 'integer', (c) => c.notNull())
    .addColumn('resource_type', 'integer', (c) => c.notNull())
    .addColumn('max', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('resource_limits_unique', ['owner_type', 'owner_id', 'resource_type'])
    .execute();
  await keyedTable(m, 'resource_counts')
    .addColumn('owner_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('owner_id', 'integer', (c) => c.notNull())
    .addColumn('resource_type', 'integer', (c) => c.notNull())
    .addColumn('count', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('resource_counts_unique', ['owner_type', 'owner_id', 'resource_type'])
    .execute();
}
