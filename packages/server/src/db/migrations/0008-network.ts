import { randomUUID } from 'node:crypto';
import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/** Upstream's default network offerings, as seeded by a fresh CloudStack install. */
const DEFAULT_OFFERINGS = [
  {
    name: 'DefaultSharedNetworkOfferingWithSGService',
    display_text: 'Offering for Shared Security group enabled networks',
    guest_ip_type: 'Shared',
    services:
      'Dhcp:VirtualRouter,Dns:VirtualRouter,UserData:VirtualRouter,SecurityGroup:SecurityGroupProvider',
    specify_vlan: 1,
    specify_ip_ranges: 1,
  },
  {
    name: 'DefaultSharedNetworkOffering',
    display_text: 'Offering for Shared networks',
    guest_ip_type: 'Shared',
    services: 'Dhcp:VirtualRouter,Dns:VirtualRouter,UserData:VirtualRouter',
    specify_vlan: 1,
    specify_ip_ranges: 1,
  },
  {
    name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    display_text: 'Offering for Isolated networks with Source Nat service enabled',
    guest_ip_type: 'Isolated',
    services:
      'Dhcp:VirtualRouter,Dns:VirtualRouter,UserData:VirtualRouter,Firewall:VirtualRouter,Gateway:VirtualRouter,SourceNat:VirtualRouter,StaticNat:VirtualRouter,PortForwarding:VirtualRouter,Lb:VirtualRouter,Vpn:VirtualRouter',
    specify_vlan: 0,
    specify_ip_ranges: 0,
  },
  {
    name: 'DefaultIsolatedNetworkOffering',
    display_text: 'Offering for Isolated networks with no Source Nat service',
    guest_ip_type: 'Isolated',
    services: 'Dhcp:VirtualRouter,Dns:VirtualRouter,UserData:VirtualRouter',
    specify_vlan: 0,
    specify_ip_ranges: 1,
  },
  {
    name: 'DefaultL2NetworkOffering',
    display_text: 'Offering for L2 networks',
    guest_ip_type: 'L2',
    services: '',
    specify_vlan: 0,
    specify_ip_ranges: 0,
  },
];

/**
 * Guest networking: network offerings (seeded with upstream's defaults), networks, guest IP ranges
 * (upstream's `vlan` table), allocated guest addresses, NICs, and security groups with their rules
 * and VM membership. One allocation row per address with a unique (network, ip) key is what keeps
 * two concurrent deployments from getting the same address on every database; ranges are deleted
 * outright, so the allocations' foreign key stops a range from going while an address is handed out.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;

  await entityTable(m, 'network_offerings')
    .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
    .addColumn('display_text', 'varchar(1024)', (c) => c.notNull())
    .addColumn('guest_ip_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('traffic_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('services', 'varchar(1024)', (c) => c.notNull())
    .addColumn('specify_vlan', 'integer', (c) => c.notNull())
    .addColumn('specify_ip_ranges', 'integer', (c) => c.notNull())
    .addColumn('is_default', 'integer', (c) => c.notNull())
    .addColumn('availability', 'varchar(16)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('conserve_mode', 'integer', (c) => c.notNull())
    .addColumn('egress_default_policy', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  const now = Date.now();
  for (const o of DEFAULT_OFFERINGS) {
    await db
      .insertInto('network_offerings')
      .values({
        ...o,
        uuid: randomUUID(),
        traffic_type: 'Guest',
        is_default: 1,
        availability:
          o.name === 'DefaultIsolatedNetworkOfferingWithSourceNatService' ? 'Required' : 'Optional',
        state: 'Enabled',
        conserve_mode: 1,
        egress_default_policy: 0,
        created: now,
      })
      .execute();
  }

  await entityTable(m, 'networks')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_text', 'varchar(1024)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('network_offering_id', 'integer', (c) => c.notNull().references('network_offerings.id'))
    .addColumn('physical_network_id', 'integer')
    .addColumn('traffic_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('guest_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('broadcast_domain_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('broadcast_uri', 'varchar(255)')
    .addColumn('gateway', 'varchar(64)')
    .addColumn('netmask', 'varchar(64)')
    .addColumn('cidr', 'varchar(64)')
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('acl_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('domain_id', 'integer')
    .addColumn('account_id', 'integer')
    // The zone whose one shared guest network this is (Basic zones); unique so that two
    // concurrent first ranges cannot create two.
    .addColumn('zone_default_for', 'integer', (c) => c.unique())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('networks_zone').on('networks').columns(['zone_id', 'id']).execute();

  await entityTable(m, 'vlan_ip_ranges')
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('pod_id', 'integer')
    .addColumn('network_id', 'integer', (c) => c.notNull().references('networks.id'))
    .addColumn('physical_network_id', 'integer')
    .addColumn('vlan', 'varchar(255)', (c) => c.notNull())
    .addColumn('gateway', 'varchar(64)', (c) => c.notNull())
    .addColumn('netmask', 'varchar(64)', (c) => c.notNull())
    .addColumn('start_ip', 'varchar(64)', (c) => c.notNull())
    .addColumn('end_ip', 'varchar(64)', (c) => c.notNull())
    .addColumn('start_num', 'bigint', (c) => c.notNull())
    .addColumn('end_num', 'bigint', (c) => c.notNull())
    .addColumn('for_virtual_network', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('vlan_ip_ranges_network').on('vlan_ip_ranges').column('network_id').execute();
  await db.schema.createIndex('vlan_ip_ranges_zone').on('vlan_ip_ranges').column('zone_id').execute();

  await entityTable(m, 'nics')
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addColumn('network_id', 'integer', (c) => c.notNull().references('networks.id'))
    .addColumn('mac', 'varchar(17)', (c) => c.notNull().unique())
    .addColumn('ip4', 'varchar(64)')
    .addColumn('gateway', 'varchar(64)')
    .addColumn('netmask', 'varchar(64)')
    .addColumn('broadcast_uri', 'varchar(255)')
    .addColumn('isolation_uri', 'varchar(255)')
    .addColumn('is_default', 'integer', (c) => c.notNull())
    .addColumn('device_id', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('nics_vm').on('nics').columns(['vm_id', 'device_id']).execute();
  await db.schema.createIndex('nics_network').on('nics').column('network_id').execute();

  await keyedTable(m, 'guest_ip_allocations')
    .addColumn('network_id', 'integer', (c) => c.notNull().references('networks.id'))
    .addColumn('range_id', 'integer', (c) => c.notNull().references('vlan_ip_ranges.id'))
    .addColumn('ip4', 'varchar(64)', (c) => c.notNull())
    .addColumn('ip_num', 'bigint', (c) => c.notNull())
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addColumn('nic_id', 'integer')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('allocated', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('guest_ip_allocations_address', ['network_id', 'ip4'])
    .execute();
  await db.schema
    .createIndex('guest_ip_allocations_range')
    .on('guest_ip_allocations')
    .columns(['range_id', 'ip_num'])
    .execute();
  await db.schema
    .createIndex('guest_ip_allocations_nic')
    .on('guest_ip_allocations')
    .column('nic_id')
    .execute();

  await entityTable(m, 'security_groups')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('description', 'varchar(4096)')
    .addColumn('account_id', 'integer', (c) => c.notNull().references('accounts.id').onDelete('cascade'))
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('security_groups_account_name', ['account_id', 'name'])
    .execute();

  await entityTable(m, 'security_group_rules')
    .addColumn('group_id', 'integer', (c) => c.notNull().references('security_groups.id').onDelete('cascade'))
    .addColumn('type', 'varchar(8)', (c) => c.notNull())
    .addColumn('protocol', 'varchar(16)', (c) => c.notNull())
    .addColumn('start_port', 'integer')
    .addColumn('end_port', 'integer')
    .addColumn('icmp_type', 'integer')
    .addColumn('icmp_code', 'integer')
    .addColumn('cidr', 'varchar(64)')
    .addColumn('allowed_group_id', 'integer', (c) => c.references('security_groups.id').onDelete('cascade'))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('security_group_rules_group')
    .on('security_group_rules')
    .columns(['group_id', 'id'])
    .execute();
  await db.schema
    .createIndex('security_group_rules_allowed')
    .on('security_group_rules')
    .column('allowed_group_id')
    .execute();

  await db.schema
    .createTable('security_group_vm_map')
    .addColumn('vm_id', 'integer', (c) => c.notNull())
    .addColumn('group_id', 'integer', (c) => c.notNull().references('security_groups.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('security_group_vm_map_pk', ['vm_id', 'group_id'])
    .execute();
  await db.schema
    .createIndex('security_group_vm_map_group')
    .on('security_group_vm_map')
    .column('group_id')
    .execute();
}
