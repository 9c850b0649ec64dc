import { keyedTable, type MigrationContext } from './helpers.ts';

/**
 * Primary storage operations (issue 24):
 * - `storage_pool_work`: the VMs a pool's maintenance stopped, so that cancelling it starts them
 *   again (upstream's storage_pool_work): one row per pool and VM.
 * - `storage_pool_hosts`: whether each host reached each pool at its last check (upstream's
 *   storage_pool_host_ref, with the failure kept): the planner leaves a pool out for the cluster
 *   of a host that does not reach it.
 * - `storage_pools.capacity_given`: 1 when the operator gave the pool's size (capacitybytes); the
 *   hosts' measurements then refresh only what is used, not the size.
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema
    .alterTable('storage_pools')
    .addColumn('capacity_given', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await keyedTable(m, 'storage_pool_work')
    .addColumn('pool_id', 'integer', (c) => c.notNull())
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addColumn('stopped', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('started', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('ms_id', 'integer')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('storage_pool_work_pool_vm', ['pool_id', 'vm_id'])
    .execute();
  await keyedTable(m, 'storage_pool_hosts')
    .addColumn('pool_id', 'integer', (c) => c.notNull())
    .addColumn('host_id', 'integer', (c) => c.notNull())
    .addColumn('reachable', 'integer', (c) => c.notNull())
    .addColumn('error', 'varchar(1024)')
    .addColumn('checked', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('storage_pool_hosts_pool_host', ['pool_id', 'host_id'])
    .execute();
  await m.db.schema
    .createIndex('storage_pool_hosts_host')
    .on('storage_pool_hosts')
    .column('host_id')
    .execute();
}
