import type { MigrationContext } from './helpers.ts';

/**
 * Indexes that answer a VM list's count and its page of ids without reading table rows (the page's
 * full rows are then fetched by id, 500 at most). A user's list also hides destroyed VMs, so the
 * account index carries `state`; a domain admin's list filters a subtree of domains while walking
 * ids in order, so the live index carries `domain_id`. Each replaces the narrower index of 0012 it
 * starts with.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  const drop = (name: string) =>
    m.dialect === 'mysql'
      ? db.schema.dropIndex(name).on('vms').execute()
      : db.schema.dropIndex(name).execute();
  await drop('vms_account_live');
  await drop('vms_live');
  await db.schema
    .createIndex('vms_account_live_state')
    .on('vms')
    .columns(['account_id', 'removed', 'id', 'state'])
    .execute();
  await db.schema.createIndex('vms_live_domain').on('vms').columns(['removed', 'id', 'domain_id']).execute();
}
