import { entityTable, type MigrationContext } from './helpers.ts';

/**
 * Virtual routers (upstream's domain routers): one per shared guest network, serving DHCP, DNS,
 * metadata and passwords to the network's VMs. A router's guest address and MAC come from the same
 * allocators as VMs' (a NIC row with `router_id` set and `vm_id` 0), so no VM can ever get them.
 * `live_network_id` is the network while the router is not destroyed: its unique key keeps two
 * concurrent first VM starts from creating two routers for one network.
 * `vms.password_pending` marks a password (deploy of a password-enabled template, or
 * resetPasswordForVirtualMachine) the router has not been given yet.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'routers')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('network_id', 'integer', (c) => c.notNull().references('networks.id'))
    .addColumn('live_network_id', 'integer', (c) => c.unique())
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('pod_id', 'integer')
    .addColumn('host_id', 'integer')
    .addColumn('last_host_id', 'integer')
    .addColumn('nic_id', 'integer')
    .addColumn('guest_ip', 'varchar(64)', (c) => c.notNull())
    .addColumn('guest_mac', 'varchar(17)', (c) => c.notNull())
    .addColumn('hypervisor', 'varchar(32)')
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('version', 'varchar(32)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('updated', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('routers_live').on('routers').columns(['removed', 'id']).execute();
  await db.schema.createIndex('routers_host').on('routers').column('host_id').execute();
  await db.schema.alterTable('nics').addColumn('router_id', 'integer').execute();
  await db.schema
    .alterTable('vms')
    .addColumn('password_pending', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
}
