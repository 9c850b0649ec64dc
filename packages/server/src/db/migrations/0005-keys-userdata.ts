import { entityTable, type MigrationContext } from './helpers.ts';

/** SSH key pairs and registered user data, owned by accounts. */
export async function up(m: MigrationContext): Promise<void> {
  await entityTable(m, 'ssh_keypairs')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(64)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('ssh_keypairs_account_name', ['account_id', 'name'])
    .execute();
  await entityTable(m, 'user_data')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('user_data', 'text', (c) => c.notNull())
    .addColumn('params', 'varchar(1024)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('user_data_account_name', ['account_id', 'name'])
    .execute();
}
