import type { MigrationContext } from './helpers.ts';

/**
 * Several management servers on one database (issue 15):
 * - `cloud_key` holds one row (id 1) that says which key the cloud's secrets are sealed with: a
 *   known text sealed with it and the key's fingerprint, never the key. A server whose key does not
 *   open it refuses to start (iam/cloud-key.ts) instead of failing every call that needs a secret.
 * - `api_call_counts` counts API calls per account and throttling window for the whole cloud
 *   (http/throttle.ts), so api.throttling.max holds whichever server the balancer picks.
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema
    .createTable('cloud_key')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('fingerprint', 'varchar(16)', (c) => c.notNull())
    .addColumn('check_value', 'varchar(255)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await m.db.schema
    .createTable('api_call_counts')
    .addColumn('scope', 'varchar(8)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('window_start', 'bigint', (c) => c.notNull())
    .addColumn('calls', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('api_call_counts_pk', ['scope', 'account_id', 'window_start'])
    .execute();
}
