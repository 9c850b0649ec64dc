import type { MigrationContext } from './helpers.ts';

/**
 * Hosts that still hold a deleted network's bridge, VXLAN link or router namespace: they were
 * disconnected when the network was deleted (or failed to tear it down under `forced`). A row is
 * settled when the host next comes Up and tears the network down, or when the host is removed.
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema
    .createTable('network_teardowns')
    .addColumn('network_id', 'integer', (c) => c.notNull())
    .addColumn('host_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('network_teardowns_pk', ['network_id', 'host_id'])
    .execute();
}
