import type { MigrationContext } from './helpers.ts';

/**
 * Indexes that let VM and volume lists count and page without reading whole rows: every list
 * filters on `removed IS NULL` and orders by id, usually within one account or domain.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await db.schema.createIndex('vms_live').on('vms').columns(['removed', 'id']).execute();
  await db.schema
    .createIndex('vms_account_live')
    .on('vms')
    .columns(['account_id', 'removed', 'id'])
    .execute();
  await db.schema.createIndex('vms_domain_live').on('vms').columns(['domain_id', 'removed', 'id']).execute();
  await db.schema.createIndex('volumes_live').on('volumes').columns(['removed', 'id']).execute();
  await db.schema
    .createIndex('volumes_account_live')
    .on('volumes')
    .columns(['account_id', 'removed', 'id'])
    .execute();
  await db.schema.createIndex('nics_vm_live').on('nics').columns(['vm_id', 'removed']).execute();
}
