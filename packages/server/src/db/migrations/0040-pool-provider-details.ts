import type { MigrationContext } from './helpers.ts';

/**
 * Managed primary storage (issue 24, managed iSCSI): a pool whose provider makes and removes each
 * volume on the storage server keeps the provider's settings and its credential:
 * - `details`: the non-secret settings as JSON (for LinuxTgt: the SSH address, port and user, the
 *   pinned SSH host key, the initiator addresses allowed to log in);
 * - `provider_secret`: the credential the provider signs in with (LinuxTgt: the SSH private key),
 *   sealed with the server key (key rotation lists it). Text, as a private key outgrows
 *   auth_secret's 1024 characters.
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema.alterTable('storage_pools').addColumn('details', 'text').execute();
  await m.db.schema.alterTable('storage_pools').addColumn('provider_secret', 'text').execute();
}
