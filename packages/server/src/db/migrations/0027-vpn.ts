import { entityTable, type MigrationContext } from './helpers.ts';

/**
 * Remote-access and site-to-site VPNs (issue 16).
 *
 * - `remote_access_vpns`: one per public address (unique), on an isolated network's or a VPC's
 *   address; its client range, sealed pre-shared key and state (Added while being applied, Running).
 * - `vpn_users`: an account's VPN users (unique username per account), sealed passwords.
 * - `vpn_gateways`: a VPC's site-to-site gateway on its source-NAT address (one per VPC: unique).
 * - `vpn_customer_gateways`: the far ends (unique name per account), with their key and policies.
 * - `vpn_connections`: a gateway joined to a customer gateway (unique pair), with the tunnel's state.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'remote_access_vpns')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('network_id', 'integer')
    .addColumn('vpc_id', 'integer')
    .addColumn('public_ip_id', 'integer', (c) => c.notNull().unique())
    .addColumn('local_ip', 'varchar(64)', (c) => c.notNull())
    .addColumn('ip_range', 'varchar(128)', (c) => c.notNull())
    .addColumn('psk', 'varchar(1024)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('open_firewall', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('remote_access_vpns_account')
    .on('remote_access_vpns')
    .columns(['account_id', 'domain_id'])
    .execute();
  await entityTable(m, 'vpn_users')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('username', 'varchar(255)', (c) => c.notNull())
    .addColumn('password', 'varchar(1024)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('vpn_users_account_username')
    .unique()
    .on('vpn_users')
    .columns(['account_id', 'username'])
    .execute();
  await entityTable(m, 'vpn_gateways')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('vpc_id', 'integer', (c) => c.notNull().unique())
    .addColumn('public_ip_id', 'integer', (c) => c.notNull())
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await entityTable(m, 'vpn_customer_gateways')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('gateway', 'varchar(255)', (c) => c.notNull())
    .addColumn('cidr_list', 'varchar(4096)', (c) => c.notNull())
    .addColumn('ipsec_psk', 'varchar(1024)', (c) => c.notNull())
    .addColumn('ike_policy', 'varchar(1024)', (c) => c.notNull())
    .addColumn('esp_policy', 'varchar(1024)', (c) => c.notNull())
    .addColumn('ike_lifetime', 'integer', (c) => c.notNull())
    .addColumn('esp_lifetime', 'integer', (c) => c.notNull())
    .addColumn('dpd', 'integer', (c) => c.notNull())
    .addColumn('force_encap', 'integer', (c) => c.notNull())
    .addColumn('split_connections', 'integer', (c) => c.notNull())
    .addColumn('ike_version', 'varchar(8)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('vpn_customer_gateways_account_name')
    .unique()
    .on('vpn_customer_gateways')
    .columns(['account_id', 'name'])
    .execute();
  await entityTable(m, 'vpn_connections')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('vpn_gateway_id', 'integer', (c) => c.notNull().references('vpn_gateways.id'))
    .addColumn('customer_gateway_id', 'integer', (c) => c.notNull().references('vpn_customer_gateways.id'))
    .addColumn('passive', 'integer', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('vpn_connections_pair')
    .unique()
    .on('vpn_connections')
    .columns(['vpn_gateway_id', 'customer_gateway_id'])
    .execute();
}
