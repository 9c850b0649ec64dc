import { randomUUID } from 'node:crypto';
import { entityTable, type MigrationContext } from './helpers.ts';

/**
 * VPCs: a private address space of an account with several guest networks (tiers) behind one
 * virtual router, which is the VPC's gateway to the public network.
 *
 * - `vpc_offerings`: what a VPC is made from (its services, each with its provider, as network
 *   offerings store them: "Service:Provider" pairs); upstream's `Default VPC offering` is seeded.
 * - `vpcs`: the VPC (its CIDR, network domain, offering, owner, state Enabled/Inactive).
 * - `networks.vpc_id`: the VPC a tier belongs to. `public_ips.vpc_id`: the VPC an address is
 *   associated with (its `network_id` is the tier its rules point into, null until one does; the
 *   VPC's source-NAT address has none).
 * - `routers.vpc_id` / `live_vpc_id`: a VPC's router; like `live_network_id`, the unique key keeps
 *   two concurrent starts from making two routers for one VPC. A VPC router's `network_id` is the
 *   zone's Public network (its public side), since it has no single guest network.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'vpc_offerings')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_text', 'varchar(4096)', (c) => c.notNull())
    .addColumn('services', 'varchar(4096)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('is_default', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('sort_key', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await entityTable(m, 'vpcs')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_text', 'varchar(4096)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull().references('zones.id'))
    .addColumn('vpc_offering_id', 'integer', (c) => c.notNull().references('vpc_offerings.id'))
    .addColumn('cidr', 'varchar(64)', (c) => c.notNull())
    .addColumn('network_domain', 'varchar(255)')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('vpcs_account').on('vpcs').columns(['account_id', 'removed']).execute();
  await db.schema.createIndex('vpcs_domain').on('vpcs').columns(['domain_id', 'removed']).execute();
  await db.schema.alterTable('networks').addColumn('vpc_id', 'integer').execute();
  await db.schema.createIndex('networks_vpc').on('networks').column('vpc_id').execute();
  await db.schema.alterTable('public_ips').addColumn('vpc_id', 'integer').execute();
  await db.schema.createIndex('public_ips_vpc').on('public_ips').column('vpc_id').execute();
  await db.schema.alterTable('routers').addColumn('vpc_id', 'integer').execute();
  // SQLite cannot add a UNIQUE column: the key is a unique index instead.
  await db.schema.alterTable('routers').addColumn('live_vpc_id', 'integer').execute();
  await db.schema.createIndex('routers_live_vpc').unique().on('routers').column('live_vpc_id').execute();

  // Upstream's default VPC offering: every VPC service from the VPC router. Its Netscaler, NSX and
  // redundant-router variants are not seeded: none of those exist here.
  const services = 'Dhcp,Dns,UserData,NetworkACL,Gateway,Lb,SourceNat,StaticNat,PortForwarding,Vpn'
    .split(',')
    .map((s) => `${s}:VpcVirtualRouter`)
    .join(',');
  await db
    .insertInto('vpc_offerings')
    .values({
      uuid: randomUUID(),
      name: 'Default VPC offering',
      display_text: 'Default VPC offering',
      services,
      state: 'Enabled',
      is_default: 1,
      sort_key: 0,
      created: Date.now(),
    })
    .execute();
}
