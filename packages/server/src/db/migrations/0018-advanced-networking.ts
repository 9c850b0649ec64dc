import { entityTable, type MigrationContext } from './helpers.ts';

/**
 * Advanced zones: isolated networks, public IP addresses and the rules routers enforce on them.
 *
 * - `networks.vni`: the VXLAN id an isolated network holds while it is implemented, taken from
 *   its physical network's range. Unique, so no two live networks ever share one; set back to
 *   null when the network is shut down.
 * - `public_ips` (upstream's user_ip_address): one row per address of every public range, made
 *   with the range. Acquiring an address is a conditional update of a Free row, so two accounts
 *   can never get the same one.
 * - `ip_rules` (upstream's firewall_rules with its port-forwarding and load-balancing parts):
 *   firewall (ingress on a public address), egress, port forwarding and load-balancing rules.
 * - `routers.public_mac`: the MAC of an isolated network's router on the public bridge.
 * - `lb_members` and `lb_policies`: a load balancer's VMs, stickiness and health checks.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await db.schema.alterTable('networks').addColumn('vni', 'integer').execute();
  await db.schema.createIndex('networks_vni').on('networks').column('vni').unique().execute();
  await db.schema.alterTable('networks').addColumn('network_domain', 'varchar(255)').execute();
  await db.schema.alterTable('networks').addColumn('implemented', 'bigint').execute();
  await db.schema.alterTable('routers').addColumn('public_mac', 'varchar(17)').execute();
  await db.schema.alterTable('vlan_ip_ranges').addColumn('account_id', 'integer').execute();
  await db.schema.alterTable('vlan_ip_ranges').addColumn('domain_id', 'integer').execute();

  await entityTable(m, 'public_ips')
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('range_id', 'integer', (c) => c.notNull().references('vlan_ip_ranges.id'))
    .addColumn('ip4', 'varchar(64)', (c) => c.notNull())
    .addColumn('ip_num', 'bigint', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('account_id', 'integer')
    .addColumn('domain_id', 'integer')
    .addColumn('network_id', 'integer')
    .addColumn('source_nat', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('static_nat_vm_id', 'integer')
    .addColumn('static_nat_vm_ip', 'varchar(64)')
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('allocated', 'bigint')
    .addUniqueConstraint('public_ips_address', ['zone_id', 'ip4'])
    .execute();
  await db.schema.createIndex('public_ips_range').on('public_ips').columns(['range_id', 'state']).execute();
  await db.schema.createIndex('public_ips_network').on('public_ips').column('network_id').execute();
  await db.schema.createIndex('public_ips_account').on('public_ips').column('account_id').execute();

  await entityTable(m, 'ip_rules')
    .addColumn('purpose', 'varchar(16)', (c) => c.notNull())
    .addColumn('traffic_type', 'varchar(8)', (c) => c.notNull())
    .addColumn('ip_id', 'integer')
    .addColumn('network_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('protocol', 'varchar(16)', (c) => c.notNull())
    .addColumn('start_port', 'integer')
    .addColumn('end_port', 'integer')
    .addColumn('icmp_type', 'integer')
    .addColumn('icmp_code', 'integer')
    .addColumn('source_cidrs', 'varchar(4096)')
    .addColumn('dest_cidrs', 'varchar(4096)')
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('related_id', 'integer')
    .addColumn('vm_id', 'integer')
    .addColumn('vm_ip', 'varchar(64)')
    .addColumn('private_start_port', 'integer')
    .addColumn('private_end_port', 'integer')
    .addColumn('name', 'varchar(255)')
    .addColumn('description', 'varchar(4096)')
    .addColumn('algorithm', 'varchar(32)')
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ip_rules_network').on('ip_rules').columns(['network_id', 'purpose']).execute();
  await db.schema.createIndex('ip_rules_ip').on('ip_rules').columns(['ip_id', 'purpose']).execute();
  await db.schema.createIndex('ip_rules_account').on('ip_rules').column('account_id').execute();

  await db.schema
    .createTable('lb_members')
    .addColumn('rule_id', 'integer', (c) => c.notNull().references('ip_rules.id'))
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addColumn('vm_ip', 'varchar(64)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('lb_members_pk', ['rule_id', 'vm_id', 'vm_ip'])
    .execute();
  await db.schema.createIndex('lb_members_vm').on('lb_members').column('vm_id').execute();

  await entityTable(m, 'lb_policies')
    .addColumn('rule_id', 'integer', (c) => c.notNull().references('ip_rules.id'))
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('name', 'varchar(255)')
    .addColumn('description', 'varchar(4096)')
    .addColumn('method', 'varchar(32)')
    .addColumn('params', 'varchar(4096)', (c) => c.notNull())
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('lb_policies_rule').on('lb_policies').column('rule_id').execute();
}
