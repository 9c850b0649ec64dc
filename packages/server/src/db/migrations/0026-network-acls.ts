import { randomUUID } from 'node:crypto';
import { entityTable, type MigrationContext } from './helpers.ts';

/**
 * VPC network ACLs, private gateways and static routes (issue 16).
 *
 * - `network_acl_lists`: an ACL list of a VPC, or (vpc_id null) one of upstream's two built-in
 *   lists, seeded here: `default_deny` and `default_allow`, each with an Ingress and an Egress
 *   item for all traffic.
 * - `network_acl_items`: a list's rules; `number` orders them (unique per list, kept so by the
 *   commands under the list row's lock: moveNetworkAclItem renumbers several rows at once).
 * - `networks.network_acl_id`: the list a VPC tier uses; null is a tier without a list.
 * - `vpc_private_gateways`: a VPC router's interface on an admin-provided network (its VLAN id is
 *   carried as a VXLAN id, `vni`), with the list that filters it.
 * - `vpc_static_routes`: a CIDR routed by the VPC's router through a private gateway (gateway_id)
 *   or a next hop (nexthop).
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'network_acl_lists')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('description', 'varchar(4096)')
    .addColumn('vpc_id', 'integer')
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('network_acl_lists_vpc').on('network_acl_lists').column('vpc_id').execute();
  await entityTable(m, 'network_acl_items')
    .addColumn('acl_id', 'integer', (c) => c.notNull().references('network_acl_lists.id'))
    .addColumn('number', 'integer', (c) => c.notNull())
    .addColumn('action', 'varchar(8)', (c) => c.notNull())
    .addColumn('traffic_type', 'varchar(8)', (c) => c.notNull())
    .addColumn('protocol', 'varchar(8)', (c) => c.notNull())
    .addColumn('start_port', 'integer')
    .addColumn('end_port', 'integer')
    .addColumn('icmp_type', 'integer')
    .addColumn('icmp_code', 'integer')
    .addColumn('cidr_list', 'varchar(4096)', (c) => c.notNull())
    .addColumn('reason', 'varchar(2048)')
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('network_acl_items_acl')
    .on('network_acl_items')
    .columns(['acl_id', 'number'])
    .execute();
  await db.schema.alterTable('networks').addColumn('network_acl_id', 'integer').execute();
  await entityTable(m, 'vpc_private_gateways')
    .addColumn('vpc_id', 'integer', (c) => c.notNull().references('vpcs.id'))
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('physical_network_id', 'integer')
    .addColumn('ip4', 'varchar(40)', (c) => c.notNull())
    .addColumn('gateway', 'varchar(40)', (c) => c.notNull())
    .addColumn('netmask', 'varchar(40)', (c) => c.notNull())
    .addColumn('vlan', 'varchar(255)', (c) => c.notNull())
    .addColumn('vni', 'integer', (c) => c.notNull())
    .addColumn('mac', 'varchar(17)', (c) => c.notNull())
    .addColumn('network_acl_id', 'integer', (c) => c.notNull())
    .addColumn('source_nat', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema
    .createIndex('vpc_private_gateways_vpc')
    .on('vpc_private_gateways')
    .columns(['vpc_id', 'removed'])
    .execute();
  await entityTable(m, 'vpc_static_routes')
    .addColumn('vpc_id', 'integer', (c) => c.notNull().references('vpcs.id'))
    .addColumn('gateway_id', 'integer')
    .addColumn('nexthop', 'varchar(40)', (c) => c.notNull())
    .addColumn('cidr', 'varchar(64)', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema
    .createIndex('vpc_static_routes_vpc')
    .on('vpc_static_routes')
    .columns(['vpc_id', 'removed'])
    .execute();

  // Upstream's built-in lists, in upstream's order (default_deny is list 1, default_allow list 2).
  const now = Date.now();
  for (const [name, description, action] of [
    ['default_deny', 'Default Network ACL Deny All', 'Deny'],
    ['default_allow', 'Default Network ACL Allow All', 'Allow'],
  ] as const) {
    await db
      .insertInto('network_acl_lists')
      .values({ uuid: randomUUID(), name, description, vpc_id: null, for_display: 1, created: now })
      .execute();
    const list = await db
      .selectFrom('network_acl_lists')
      .select('id')
      .where('name', '=', name)
      .where('vpc_id', 'is', null)
      .executeTakeFirstOrThrow();
    for (const [number, trafficType] of [
      [1, 'Ingress'],
      [2, 'Egress'],
    ] as const)
      await db
        .insertInto('network_acl_items')
        .values({
          uuid: randomUUID(),
          acl_id: list.id,
          number,
          action,
          traffic_type: trafficType,
          protocol: 'all',
          cidr_list: '0.0.0.0/0',
          for_display: 1,
          state: 'Active',
          created: now,
        })
        .execute();
  }
}
