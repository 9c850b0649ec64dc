import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * Hypervisor hosts and their tags. A host's name is its identity towards its agent; removed hosts
 * keep their row (removed set) so history resolves, and the name may be reused by a new host.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'hosts')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull().references('zones.id'))
    .addColumn('pod_id', 'integer', (c) => c.references('pods.id'))
    .addColumn('cluster_id', 'integer', (c) => c.references('clusters.id'))
    .addColumn('type', 'varchar(32)', (c) => c.notNull())
    .addColumn('hypervisor', 'varchar(32)')
    .addColumn('hypervisor_version', 'varchar(64)')
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('resource_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('cpu_sockets', 'integer')
    .addColumn('cpu_cores', 'integer')
    .addColumn('cpu_speed_mhz', 'integer')
    .addColumn('memory_bytes', 'bigint')
    .addColumn('cpu_allocated_mhz', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('memory_allocated_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('local_storage_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('private_ip', 'varchar(64)')
    .addColumn('agent_version', 'varchar(64)')
    .addColumn('url', 'varchar(2048)', (c) => c.notNull())
    .addColumn('token_hash', 'varchar(128)', (c) => c.notNull())
    .addColumn('details', 'text')
    .addColumn('annotation', 'varchar(1024)')
    .addColumn('ms_id', 'integer')
    .addColumn('last_pinged', 'bigint')
    .addColumn('disconnected', 'bigint')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('hosts_name').on('hosts').columns(['name', 'removed']).execute();
  await db.schema.createIndex('hosts_zone').on('hosts').columns(['zone_id', 'removed']).execute();
  await db.schema.createIndex('hosts_pod').on('hosts').columns(['pod_id', 'removed']).execute();
  await db.schema.createIndex('hosts_cluster').on('hosts').columns(['cluster_id', 'removed']).execute();
  await db.schema.createIndex('hosts_state').on('hosts').columns(['state', 'removed']).execute();
  await db.schema.createIndex('hosts_ms').on('hosts').column('ms_id').execute();

  await keyedTable(m, 'host_tags')
    .addColumn('host_id', 'integer', (c) => c.notNull().references('hosts.id').onDelete('cascade'))
    .addColumn('tag', 'varchar(255)', (c) => c.notNull())
    .addColumn('is_implicit', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('host_tags_host').on('host_tags').column('host_id').execute();
  await db.schema.createIndex('host_tags_tag').on('host_tags').column('tag').execute();
}
