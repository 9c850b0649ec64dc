import { entityTable, type MigrationContext } from './helpers.ts';

/** Virtual machines and volumes. */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'vms')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('instance_name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_name', 'varchar(255)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('pod_id', 'integer')
    .addColumn('cluster_id', 'integer')
    .addColumn('host_id', 'integer')
    .addColumn('last_host_id', 'integer')
    .addColumn('template_id', 'integer')
    .addColumn('iso_id', 'integer')
    .addColumn('service_offering_id', 'integer', (c) => c.notNull())
    .addColumn('disk_offering_id', 'integer')
    .addColumn('cpu_number', 'integer', (c) => c.notNull())
    .addColumn('cpu_speed', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'integer', (c) => c.notNull())
    .addColumn('hypervisor', 'varchar(32)', (c) => c.notNull())
    .addColumn('guest_os_id', 'integer')
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('ha_enabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('display_vm', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('group_id', 'integer')
    .addColumn('keypairs', 'varchar(1024)')
    .addColumn('user_data', 'text')
    .addColumn('user_data_id', 'integer')
    .addColumn('password', 'varchar(512)')
    .addColumn('details', 'text')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('updated', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('vms_account').on('vms').columns(['account_id', 'id']).execute();
  await db.schema.createIndex('vms_domain').on('vms').columns(['domain_id', 'id']).execute();
  await db.schema.createIndex('vms_state').on('vms').columns(['state', 'id']).execute();
  await db.schema.createIndex('vms_host').on('vms').column('host_id').execute();
  await db.schema.createIndex('vms_zone').on('vms').columns(['zone_id', 'id']).execute();
  await db.schema.createIndex('vms_instance_name').on('vms').column('instance_name').execute();

  await entityTable(m, 'volumes')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('pool_id', 'integer')
    .addColumn('vm_id', 'integer')
    .addColumn('device_id', 'integer')
    .addColumn('type', 'varchar(16)', (c) => c.notNull())
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('size_bytes', 'bigint', (c) => c.notNull())
    .addColumn('physical_size_bytes', 'bigint')
    .addColumn('path', 'varchar(1024)')
    .addColumn('format', 'varchar(16)')
    .addColumn('disk_offering_id', 'integer')
    .addColumn('template_id', 'integer')
    .addColumn('snapshot_id', 'integer')
    .addColumn('provisioning_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('min_iops', 'bigint')
    .addColumn('max_iops', 'bigint')
    .addColumn('display_volume', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('attached', 'bigint')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('volumes_account').on('volumes').columns(['account_id', 'id']).execute();
  await db.schema.createIndex('volumes_vm').on('volumes').column('vm_id').execute();
  await db.schema.createIndex('volumes_pool').on('volumes').column('pool_id').execute();
}
