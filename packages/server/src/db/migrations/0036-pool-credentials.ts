import type { MigrationContext } from './helpers.ts';

/**
 * Primary storage pools that need credentials (issue 24, RBD): `auth_user` is the cephx user of
 * an rbd:// pool, `auth_secret` its key sealed with the server key (key rotation lists it).
 * Upstream keeps both in plain text in storage_pool.user_info; the key is a secret here.
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema.alterTable('storage_pools').addColumn('auth_user', 'varchar(255)').execute();
  await m.db.schema.alterTable('storage_pools').addColumn('auth_secret', 'varchar(1024)').execute();
}
