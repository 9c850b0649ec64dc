import { randomUUID } from 'node:crypto';
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
 * - `network_offerings` gains what createNetworkOffering sets (VPC, persistence, tags, rate,
 *   sort key, system-only); the VPC defaults and the System-Public-Network offering are seeded,
 *   and DefaultIsolatedNetworkOffering gets upstream's specifyvlan=true.
 * - `network_service_providers` (upstream's physical_network_service_providers) and
 *   `virtual_router_elements` (virtual_router_providers; internal LB elements too): the providers
 *   of every physical network, made with it; existing physical networks get theirs here.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await db.schema.alterTable('networks').addColumn('vni', 'integer').execute();
  await db.schema.createIndex('networks_vni').on('networks').column('vni').unique().execute();
  await db.schema.alterTable('networks').addColumn('network_domain', 'varchar(255)').execute();
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
  // The firewall rule a port forward or load balancer opened, looked up at every change of it.
  await db.schema.createIndex('ip_rules_related').on('ip_rules').column('related_id').execute();

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

  await advancedOfferings(m);
  await routerServiceOffering(m);
  await serviceProviders(m);
}

/** Upstream's VPC default offerings: every service by the VPC router (ConfigurationServerImpl). */
const VPC_SERVICES = 'Dhcp,Dns,UserData,NetworkACL,Gateway,Lb,SourceNat,StaticNat,PortForwarding,Vpn';
const VPC_OFFERINGS = [
  {
    name: 'DefaultIsolatedNetworkOfferingForVpcNetworks',
    display_text: 'Offering for Isolated Vpc networks with Source Nat service enabled',
    services: VPC_SERVICES,
  },
  {
    name: 'DefaultIsolatedNetworkOfferingForVpcNetworksNoLB',
    display_text:
      'Offering for Isolated Vpc networks with Source Nat service enabled and LB service Disabled',
    services: VPC_SERVICES.replace(',Lb,', ','),
  },
];

async function advancedOfferings(m: MigrationContext): Promise<void> {
  const { db } = m;
  const flag = (name: string) =>
    db.schema
      .alterTable('network_offerings')
      .addColumn(name, 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
  await flag('for_vpc');
  await flag('is_persistent');
  // System offerings (System-Public-Network) back the zone's system networks; never listed.
  await flag('system_only');
  await flag('keep_alive_enabled');
  await flag('sort_key');
  await db.schema.alterTable('network_offerings').addColumn('tags', 'varchar(4096)').execute();
  await db.schema.alterTable('network_offerings').addColumn('network_rate', 'integer').execute();
  await db.schema.alterTable('network_offerings').addColumn('service_offering_id', 'integer').execute();
  await db.schema.alterTable('network_offerings').addColumn('max_connections', 'integer').execute();
  await db
    .updateTable('network_offerings')
    .set({ specify_vlan: 1 })
    .where('name', '=', 'DefaultIsolatedNetworkOffering')
    .execute();
  const now = Date.now();
  const existing = new Set(
    (await db.selectFrom('network_offerings').select('name').execute()).map((r: { name: string }) => r.name),
  );
  const base = {
    traffic_type: 'Guest',
    guest_ip_type: 'Isolated',
    specify_vlan: 0,
    specify_ip_ranges: 0,
    is_default: 1,
    availability: 'Optional',
    state: 'Enabled',
    conserve_mode: 0,
    egress_default_policy: 0,
  };
  for (const o of VPC_OFFERINGS) {
    if (existing.has(o.name)) continue;
    const services = o.services
      .split(',')
      .map((s) => `${s}:VpcVirtualRouter`)
      .join(',');
    await db
      .insertInto('network_offerings')
      .values({ ...base, ...o, services, for_vpc: 1, uuid: randomUUID(), created: now })
      .execute();
  }
  if (!existing.has('System-Public-Network'))
    await db
      .insertInto('network_offerings')
      .values({
        ...base,
        name: 'System-Public-Network',
        display_text: 'System Offering for System-Public-Network',
        traffic_type: 'Public',
        guest_ip_type: '',
        services: '',
        specify_ip_ranges: 1,
        availability: 'Required',
        conserve_mode: 1,
        system_only: 1,
        uuid: randomUUID(),
        created: now,
      })
      .execute();
}

/**
 * Upstream's system offering of virtual routers. Our routers are namespaces, not VMs, but clients
 * read it: every network offering names it as its serviceofferingid (libcloud fails without one).
 */
const ROUTER_SERVICE_OFFERING = 'System Offering For Software Router';

async function routerServiceOffering(m: MigrationContext): Promise<void> {
  const { db } = m;
  const now = Date.now();
  const diskUuid = randomUUID();
  await db
    .insertInto('disk_offerings')
    .values({
      uuid: diskUuid,
      name: ROUTER_SERVICE_OFFERING,
      display_text: ROUTER_SERVICE_OFFERING,
      storage_type: 'shared',
      provisioning_type: 'thin',
      compute_only: 1,
      state: 'Active',
      created: now,
    })
    .execute();
  const disk = await db
    .selectFrom('disk_offerings')
    .select('id')
    .where('uuid', '=', diskUuid)
    .executeTakeFirstOrThrow();
  await db
    .insertInto('service_offerings')
    .values({
      uuid: randomUUID(),
      name: ROUTER_SERVICE_OFFERING,
      display_text: ROUTER_SERVICE_OFFERING,
      cpu_number: 1,
      cpu_speed: 500,
      memory_mb: 256,
      disk_offering_id: Number(disk.id),
      is_system: 1,
      system_vm_type: 'domainrouter',
      default_use: 1,
      state: 'Active',
      sort_key: 0,
      created: now,
    })
    .execute();
}

async function serviceProviders(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'network_service_providers')
    .addColumn('physical_network_id', 'integer', (c) => c.notNull().references('physical_networks.id'))
    .addColumn('name', 'varchar(64)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('destination_physical_network_id', 'integer')
    .addColumn('services', 'varchar(1024)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('network_service_providers_name', ['physical_network_id', 'name'])
    .execute();
  await entityTable(m, 'virtual_router_elements')
    .addColumn('nsp_id', 'integer', (c) => c.notNull().unique().references('network_service_providers.id'))
    .addColumn('type', 'varchar(32)', (c) => c.notNull())
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .execute();
  // Physical networks made before this release get the providers a new one gets (the list is
  // that of infra/network-service-providers.ts at the time of this migration).
  const providers: [string, string, boolean][] = [
    ['VirtualRouter', 'Dhcp,Dns,UserData,Gateway,Firewall,Lb,SourceNat,StaticNat,PortForwarding,Vpn', true],
    ['SecurityGroupProvider', 'SecurityGroup', false],
    [
      'VpcVirtualRouter',
      'Dhcp,Dns,UserData,Gateway,NetworkACL,Lb,SourceNat,StaticNat,PortForwarding,Vpn',
      true,
    ],
    ['InternalLbVm', 'Lb', true],
  ];
  const networks = await db
    .selectFrom('physical_networks')
    .select('id')
    .where('removed', 'is', null)
    .execute();
  const now = Date.now();
  for (const net of networks as { id: number }[]) {
    for (const [name, services, element] of providers) {
      const uuid = randomUUID();
      await db
        .insertInto('network_service_providers')
        .values({ uuid, physical_network_id: net.id, name, state: 'Disabled', services, created: now })
        .execute();
      if (!element) continue;
      const nsp = await db
        .selectFrom('network_service_providers')
        .select('id')
        .where('uuid', '=', uuid)
        .executeTakeFirstOrThrow();
      await db
        .insertInto('virtual_router_elements')
        .values({ uuid: randomUUID(), nsp_id: nsp.id, type: name, enabled: 0 })
        .execute();
    }
  }
}
