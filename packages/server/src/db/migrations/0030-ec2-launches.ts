import { keyedTable, type MigrationContext } from './helpers.ts';

/**
 * The EC2 API's launches (RunInstances): which reservation each VM it made belongs to, and the
 * call's ClientToken (looked up per account for idempotent retries).
 */
export async function up(m: MigrationContext): Promise<void> {
  await keyedTable(m, 'ec2_launches')
    .addColumn('vm_uuid', 'varchar(40)', (c) => c.notNull().unique())
    .addColumn('reservation', 'varchar(40)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('client_token', 'varchar(64)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await m.db.schema
    .createIndex('ec2_launches_token')
    .on('ec2_launches')
    .columns(['account_id', 'client_token'])
    .execute();
}
