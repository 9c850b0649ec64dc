import type { MigrationContext } from './helpers.ts';

/**
 * Server-to-server forwarding (issue 15): each management server records where its peers reach
 * it: `peer_url`, the http(s) URL of its agent port as seen from the other servers (the address
 * from NIMBOSTACK_INTERNAL_ADDRESS). Commands for a host whose agent is held by another server, and
 * console sessions to its VMs, go there (agents/peers.ts).
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema.alterTable('management_servers').addColumn('peer_url', 'varchar(255)').execute();
}
