import type { MigrationContext } from './helpers.ts';

/**
 * Sign-in security: the count of consecutive failed logins per user; the user's two-factor
 * provider, its secret (encrypted with the server key), whether 2FA is on and whether its setup
 * was confirmed with a first code, and the last TOTP time step accepted (a code works once);
 * and per session whether its 2FA code has been checked.
 * Sessions that exist at upgrade time predate 2FA, hence the default 1.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await db.schema
    .alterTable('users')
    .addColumn('login_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('users').addColumn('user_2fa_provider', 'varchar(32)').execute();
  await db.schema.alterTable('users').addColumn('key_for_2fa', 'varchar(512)').execute();
  await db.schema
    .alterTable('users')
    .addColumn('user_2fa_enabled', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable('users')
    .addColumn('user_2fa_verified', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('users').addColumn('last_2fa_step', 'bigint').execute();
  await db.schema
    .alterTable('sessions')
    .addColumn('verified_2fa', 'integer', (c) => c.notNull().defaultTo(1))
    .execute();
}
