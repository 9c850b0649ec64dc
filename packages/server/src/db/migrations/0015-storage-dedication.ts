import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * Host-local primary storage (a pool tied to one host), volumes uploaded to secondary storage
 * (uploadVolume) and their extract links (extractVolume), and explicitly dedicated zones, pods,
 * clusters and hosts.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await db.schema.alterTable('storage_pools').addColumn('host_id', 'integer').execute();
  // A volume that lives on secondary storage (uploaded, not yet copied to a pool), and the state of
  // its upload: the file's store and path, the source, progress and the reason of a failure.
  await db.schema.alterTable('volumes').addColumn('image_store_id', 'integer').execute();
  await db.schema.alterTable('volumes').addColumn('store_path', 'varchar(1024)').execute();
  await db.schema.alterTable('volumes').addColumn('upload_url', 'varchar(2048)').execute();
  await db.schema.alterTable('volumes').addColumn('upload_checksum', 'varchar(255)').execute();
  await db.schema.alterTable('volumes').addColumn('upload_status', 'varchar(1024)').execute();
  await db.schema.alterTable('volumes').addColumn('upload_ms_id', 'integer').execute();

  await keyedTable(m, 'volume_extracts')
    .addColumn('token', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('volume_id', 'integer', (c) => c.notNull())
    .addColumn('image_store_id', 'integer', (c) => c.notNull())
    .addColumn('install_path', 'varchar(1024)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('expires', 'bigint', (c) => c.notNull())
    .execute();

  // One row per dedicated resource: exactly one of zone, pod, cluster, host is set.
  await entityTable(m, 'dedicated_resources')
    .addColumn('zone_id', 'integer')
    .addColumn('pod_id', 'integer')
    .addColumn('cluster_id', 'integer')
    .addColumn('host_id', 'integer')
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer')
    .addColumn('affinity_group_id', 'integer')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  // A resource is dedicated once: two concurrent dedications cannot both be recorded.
  for (const column of ['zone_id', 'pod_id', 'cluster_id', 'host_id'])
    await db.schema
      .createIndex(`dedicated_resources_${column}`)
      .on('dedicated_resources')
      .column(column)
      .unique()
      .execute();
  await db.schema
    .createIndex('dedicated_resources_group')
    .on('dedicated_resources')
    .column('affinity_group_id')
    .execute();
}
