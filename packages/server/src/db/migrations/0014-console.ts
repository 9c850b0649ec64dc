import { keyedTable, type MigrationContext } from './helpers.ts';

/**
 * One-time console access tokens (createConsoleEndpoint). Only the SHA-256 of a token is kept, so
 * the table leaks no usable credential; any management server sharing the database can redeem a
 * token, and `used` is set by a single conditional UPDATE so that it is redeemed at most once.
 */
export async function up(m: MigrationContext): Promise<void> {
  await keyedTable(m, 'console_tokens')
    .addColumn('token_hash', 'varchar(64)', (c) => c.notNull().unique())
    /** SHA-256 of the caller's extra security token (createConsoleEndpoint `token`), when given. */
    .addColumn('extra_hash', 'varchar(64)')
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('expires', 'bigint', (c) => c.notNull())
    .addColumn('used', 'bigint')
    .execute();
  await m.db.schema.createIndex('console_tokens_expires').on('console_tokens').column('expires').execute();
}
