import { randomUUID } from 'node:crypto';
import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * The data-centre inventory (zones, pods, clusters, physical networks, primary and secondary
 * storage), compute and disk offerings, guest OS types and alerts. Rows that other records may
 * still name (offerings used by VMs, pools holding volumes) are soft-deleted through `removed`,
 * as CloudStack does, so history keeps resolving.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;

  await entityTable(m, 'zones')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('description', 'varchar(1024)')
    .addColumn('network_type', 'varchar(32)', (c) => c.notNull())
    .addColumn('allocation_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('dns1', 'varchar(64)', (c) => c.notNull())
    .addColumn('dns2', 'varchar(64)')
    .addColumn('internal_dns1', 'varchar(64)', (c) => c.notNull())
    .addColumn('internal_dns2', 'varchar(64)')
    .addColumn('ip6_dns1', 'varchar(64)')
    .addColumn('ip6_dns2', 'varchar(64)')
    .addColumn('guest_cidr', 'varchar(64)')
    .addColumn('network_domain', 'varchar(255)')
    .addColumn('domain_id', 'integer', (c) => c.references('domains.id'))
    .addColumn('security_groups_enabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('local_storage_enabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_edge', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('dhcp_provider', 'varchar(64)', (c) => c.notNull())
    .addColumn('zone_token', 'varchar(64)', (c) => c.notNull())
    .addColumn('sort_key', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('zones_name').on('zones').columns(['name', 'removed']).execute();

  await entityTable(m, 'pods')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull().references('zones.id'))
    .addColumn('gateway', 'varchar(64)', (c) => c.notNull())
    .addColumn('netmask', 'varchar(64)', (c) => c.notNull())
    .addColumn('start_ip', 'varchar(64)')
    .addColumn('end_ip', 'varchar(64)')
    .addColumn('allocation_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('pods_zone').on('pods').columns(['zone_id', 'removed']).execute();

  await entityTable(m, 'clusters')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull().references('zones.id'))
    .addColumn('pod_id', 'integer', (c) => c.notNull().references('pods.id'))
    .addColumn('hypervisor', 'varchar(32)', (c) => c.notNull())
    .addColumn('cluster_type', 'varchar(32)', (c) => c.notNull())
    .addColumn('allocation_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('managed_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('arch', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('clusters_pod').on('clusters').columns(['pod_id', 'removed']).execute();
  await db.schema.createIndex('clusters_zone').on('clusters').columns(['zone_id', 'removed']).execute();

  await entityTable(m, 'physical_networks')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull().references('zones.id'))
    .addColumn('domain_id', 'integer', (c) => c.references('domains.id'))
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('isolation_methods', 'varchar(255)', (c) => c.notNull())
    .addColumn('vlan', 'varchar(1024)')
    .addColumn('network_speed', 'varchar(32)')
    .addColumn('broadcast_domain_range', 'varchar(32)', (c) => c.notNull())
    .addColumn('tags', 'varchar(1024)')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema
    .createIndex('physical_networks_zone')
    .on('physical_networks')
    .columns(['zone_id', 'removed'])
    .execute();

  await entityTable(m, 'physical_network_traffic_types')
    .addColumn('physical_network_id', 'integer', (c) => c.notNull().references('physical_networks.id'))
    .addColumn('traffic_type', 'varchar(32)', (c) => c.notNull())
    .addColumn('kvm_label', 'varchar(255)')
    .addColumn('xen_label', 'varchar(255)')
    .addColumn('vmware_label', 'varchar(255)')
    .addColumn('hyperv_label', 'varchar(255)')
    .addColumn('ovm3_label', 'varchar(255)')
    .addColumn('vlan', 'varchar(255)')
    .addColumn('isolation_method', 'varchar(32)')
    .addUniqueConstraint('traffic_types_unique', ['physical_network_id', 'traffic_type'])
    .execute();

  await entityTable(m, 'storage_pools')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.notNull().references('zones.id'))
    .addColumn('pod_id', 'integer', (c) => c.references('pods.id'))
    .addColumn('cluster_id', 'integer', (c) => c.references('clusters.id'))
    .addColumn('scope', 'varchar(16)', (c) => c.notNull())
    .addColumn('pool_type', 'varchar(32)', (c) => c.notNull())
    .addColumn('path', 'varchar(1024)', (c) => c.notNull())
    .addColumn('host_address', 'varchar(255)', (c) => c.notNull())
    .addColumn('port', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('url', 'varchar(2048)', (c) => c.notNull())
    .addColumn('hypervisor', 'varchar(32)')
    .addColumn('provider', 'varchar(64)', (c) => c.notNull())
    .addColumn('capacity_bytes', 'bigint', (c) => c.notNull())
    .addColumn('used_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('allocated_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('capacity_iops', 'bigint')
    .addColumn('managed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    /** Comma-separated storage tags, matched against offering tags. */
    .addColumn('tags', 'varchar(1024)')
    .addColumn('is_tag_a_rule', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema
    .createIndex('storage_pools_zone')
    .on('storage_pools')
    .columns(['zone_id', 'removed'])
    .execute();
  await db.schema
    .createIndex('storage_pools_cluster')
    .on('storage_pools')
    .columns(['cluster_id', 'removed'])
    .execute();

  await entityTable(m, 'image_stores')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('zone_id', 'integer', (c) => c.references('zones.id'))
    .addColumn('provider', 'varchar(64)', (c) => c.notNull())
    .addColumn('protocol', 'varchar(32)', (c) => c.notNull())
    .addColumn('url', 'varchar(2048)', (c) => c.notNull())
    .addColumn('path', 'varchar(1024)', (c) => c.notNull())
    .addColumn('host_address', 'varchar(255)')
    .addColumn('scope', 'varchar(16)', (c) => c.notNull())
    .addColumn('readonly', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('capacity_bytes', 'bigint')
    .addColumn('used_bytes', 'bigint')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema
    .createIndex('image_stores_zone')
    .on('image_stores')
    .columns(['zone_id', 'removed'])
    .execute();

  await entityTable(m, 'disk_offerings')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_text', 'varchar(4096)', (c) => c.notNull())
    .addColumn('disk_size_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('customized', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('customized_iops', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('min_iops', 'bigint')
    .addColumn('max_iops', 'bigint')
    .addColumn('storage_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('provisioning_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('tags', 'varchar(1024)')
    .addColumn('cache_mode', 'varchar(32)')
    .addColumn('bytes_read_rate', 'bigint')
    .addColumn('bytes_write_rate', 'bigint')
    .addColumn('iops_read_rate', 'bigint')
    .addColumn('iops_write_rate', 'bigint')
    .addColumn('hypervisor_snapshot_reserve', 'integer')
    .addColumn('encrypt', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('disk_size_strictness', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('display_offering', 'integer', (c) => c.notNull().defaultTo(1))
    /** Service offerings carry a hidden disk offering for the root disk, as upstream since 4.17. */
    .addColumn('compute_only', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('sort_key', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();

  await entityTable(m, 'service_offerings')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_text', 'varchar(4096)', (c) => c.notNull())
    .addColumn('cpu_number', 'integer')
    .addColumn('cpu_speed', 'integer')
    .addColumn('memory_mb', 'integer')
    .addColumn('min_cpu_number', 'integer')
    .addColumn('max_cpu_number', 'integer')
    .addColumn('min_memory_mb', 'integer')
    .addColumn('max_memory_mb', 'integer')
    .addColumn('offer_ha', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('limit_cpu_use', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_volatile', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('dynamic_scaling_enabled', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('host_tags', 'varchar(1024)')
    .addColumn('network_rate', 'integer')
    .addColumn('deployment_planner', 'varchar(255)')
    .addColumn('disk_offering_id', 'integer', (c) => c.notNull().references('disk_offerings.id'))
    .addColumn('disk_offering_strictness', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('root_disk_size_bytes', 'bigint')
    .addColumn('is_system', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('system_vm_type', 'varchar(64)')
    .addColumn('default_use', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('sort_key', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();

  /** Offerings limited to some domains or zones; an offering with no rows here is public everywhere. */
  await keyedTable(m, 'offering_scopes')
    .addColumn('offering_type', 'varchar(16)', (c) => c.notNull())
    .addColumn('offering_id', 'integer', (c) => c.notNull())
    .addColumn('scope', 'varchar(16)', (c) => c.notNull())
    .addColumn('scope_id', 'integer', (c) => c.notNull())
    .addUniqueConstraint('offering_scopes_unique', ['offering_type', 'offering_id', 'scope', 'scope_id'])
    .execute();

  await entityTable(m, 'os_categories')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('is_featured', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('sort_key', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();

  await entityTable(m, 'os_types')
    .addColumn('category_id', 'integer', (c) => c.notNull().references('os_categories.id'))
    .addColumn('description', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_name', 'varchar(255)', (c) => c.notNull())
    .addColumn('bits', 'integer', (c) => c.notNull())
    .addColumn('is_user_defined', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('for_display', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('os_types_category').on('os_types').column('category_id').execute();

  await entityTable(m, 'alerts')
    .addColumn('type', 'integer', (c) => c.notNull())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('subject', 'varchar(1024)', (c) => c.notNull())
    .addColumn('zone_id', 'integer')
    .addColumn('pod_id', 'integer')
    .addColumn('cluster_id', 'integer')
    /** What raised it ("capacity:1:cluster:7"), so a condition that persists is reported once. */
    .addColumn('source_key', 'varchar(255)')
    .addColumn('sent_count', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('last_sent', 'bigint', (c) => c.notNull())
    .addColumn('resolved', 'bigint')
    .addColumn('archived', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('alerts_created').on('alerts').columns(['archived', 'created']).execute();
  await db.schema.createIndex('alerts_source').on('alerts').columns(['source_key', 'resolved']).execute();

  const now = Date.now();
  const categoryIds = new Map<string, number>();
  for (const [i, name] of OS_CATEGORIES.entries()) {
    await db
      .insertInto('os_categories')
      .values({ uuid: seedUuid('0c', i + 1), name, sort_key: i + 1, created: now })
      .execute();
    const row = await db
      .selectFrom('os_categories')
      .select('id')
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    categoryIds.set(name, Number(row.id));
  }
  for (const [i, [category, description, bits]] of OS_TYPES.entries()) {
    await db
      .insertInto('os_types')
      .values({
        uuid: seedUuid('05', i + 1),
        category_id: categoryIds.get(category),
        description,
        display_name: description,
        bits,
        created: now,
      })
      .execute();
  }

  // CloudStack's out-of-the-box offerings, so a fresh cloud can deploy without set-up.
  for (const [i, [name, displayText, gb, customized]] of DEFAULT_DISK_OFFERINGS.entries()) {
    await db
      .insertInto('disk_offerings')
      .values({
        uuid: randomUUID(),
        name,
        display_text: displayText,
        disk_size_bytes: gb * 1024 ** 3,
        customized: customized ? 1 : 0,
        storage_type: 'shared',
        provisioning_type: 'thin',
        state: 'Active',
        sort_key: i,
        created: now,
      })
      .execute();
  }
  for (const [i, [name, cpus, mhz, mb]] of DEFAULT_SERVICE_OFFERINGS.entries()) {
    const diskUuid = randomUUID();
    await db
      .insertInto('disk_offerings')
      .values({
        uuid: diskUuid,
        name,
        display_text: name,
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
        name,
        display_text: name,
        cpu_number: cpus,
        cpu_speed: mhz,
        memory_mb: mb,
        disk_offering_id: Number(disk.id),
        state: 'Active',
        sort_key: i,
        created: now,
      })
      .execute();
  }
}

/**
 * Fixed ids for seeded OS rows, so that a template exported from one installation names the same
 * OS type on another (CloudStack's seeded guest_os rows are equally stable).
 */
function seedUuid(prefix: string, n: number): string {
  return `${prefix}000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

const DEFAULT_DISK_OFFERINGS: [string, string, number, boolean][] = [
  ['Small', 'Small Disk, 5 GB', 5, false],
  ['Medium', 'Medium Disk, 20 GB', 20, false],
  ['Large', 'Large Disk, 100 GB', 100, false],
  ['Custom', 'Custom Disk', 0, true],
];

const DEFAULT_SERVICE_OFFERINGS: [string, number, number, number][] = [
  ['Small Instance', 1, 500, 512],
  ['Medium Instance', 1, 1000, 1024],
];

/** Upstream's guest OS categories, in their order. */
const OS_CATEGORIES = [
  'CentOS',
  'Debian',
  'Oracle',
  'RedHat',
  'SUSE',
  'Windows',
  'Other',
  'Novel',
  'Unix',
  'Ubuntu',
  'None',
  'Rocky Linux',
  'AlmaLinux',
  'FreeBSD',
];

/** [category, description as upstream's guest_os table spells it, bits]. */
const OS_TYPES: [string, string, number][] = [
  ['CentOS', 'CentOS 7', 64],
  ['CentOS', 'CentOS Stream 8', 64],
  ['CentOS', 'CentOS Stream 9', 64],
  ['Debian', 'Debian GNU/Linux 10 (64-bit)', 64],
  ['Debian', 'Debian GNU/Linux 11 (64-bit)', 64],
  ['Debian', 'Debian GNU/Linux 12 (64-bit)', 64],
  ['Debian', 'Debian GNU/Linux 12 (32-bit)', 32],
  ['Oracle', 'Oracle Linux 8', 64],
  ['Oracle', 'Oracle Linux 9', 64],
  ['RedHat', 'Red Hat Enterprise Linux 7', 64],
  ['RedHat', 'Red Hat Enterprise Linux 8', 64],
  ['RedHat', 'Red Hat Enterprise Linux 9', 64],
  ['RedHat', 'Fedora Linux (64 bit)', 64],
  ['SUSE', 'SUSE Linux Enterprise Server 12 SP5 (64-bit)', 64],
  ['SUSE', 'SUSE Linux Enterprise Server 15 (64-bit)', 64],
  ['SUSE', 'openSUSE Leap 15 (64-bit)', 64],
  ['Windows', 'Windows 10 (64-bit)', 64],
  ['Windows', 'Windows 11 (64-bit)', 64],
  ['Windows', 'Windows Server 2016 (64-bit)', 64],
  ['Windows', 'Windows Server 2019 (64-bit)', 64],
  ['Windows', 'Windows Server 2022 (64-bit)', 64],
  ['Windows', 'Windows Server 2025 (64-bit)', 64],
  ['Other', 'Other Linux (64-bit)', 64],
  ['Other', 'Other Linux (32-bit)', 32],
  ['Other', 'Other (64-bit)', 64],
  ['Other', 'Other (32-bit)', 32],
  ['Other', 'Other PV (64-bit)', 64],
  ['Other', 'Other PV Virtio-SCSI (64-bit)', 64],
  ['Novel', 'Novell Netware 6.x', 32],
  ['Unix', 'Sun Solaris 11 (64-bit)', 64],
  ['Ubuntu', 'Ubuntu 18.04 LTS', 64],
  ['Ubuntu', 'Ubuntu 20.04 LTS', 64],
  ['Ubuntu', 'Ubuntu 22.04 LTS', 64],
  ['Ubuntu', 'Ubuntu 24.04 LTS', 64],
  ['Rocky Linux', 'Rocky Linux 8', 64],
  ['Rocky Linux', 'Rocky Linux 9', 64],
  ['AlmaLinux', 'AlmaLinux 8', 64],
  ['AlmaLinux', 'AlmaLinux 9', 64],
  ['FreeBSD', 'FreeBSD 13 (64-bit)', 64],
  ['FreeBSD', 'FreeBSD 14 (64-bit)', 64],
];
