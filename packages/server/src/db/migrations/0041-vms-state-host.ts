import type { MigrationContext } from './helpers.ts';

/**
 * The VMs a set of hosts runs, as every ping compares them with what the hosts report
 * (compute/reconcile.ts): `state = 'Running' AND host_id IN (…) AND removed IS NULL`, answered from
 * the index alone (`id` and `instance_name` are all the comparison reads). Without it SQLite,
 * which keeps no statistics, walked vms_state, every Running VM of the cloud, for each batch of
 * 500 hosts: reading the VMs of 25,000 hosts (1,000,000 VMs) took 41 s instead of 1.5 s (machine
 * load average 10), and the server stopped answering its agents while adopting them.
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema
    .createIndex('vms_state_host')
    .on('vms')
    .columns(['state', 'host_id', 'removed', 'instance_name'])
    .execute();
}
