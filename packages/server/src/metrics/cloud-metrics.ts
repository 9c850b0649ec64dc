/**
 * The cloud's figures for Prometheus, under the names and labels of upstream's exporter
 * (PrometheusExporterImpl) so that dashboards and alerts written for CloudStack work unchanged.
 *
 * Everything is read with aggregate queries (GROUP BY in the database), never one query per host
 * or VM: a scrape of a cloud with 100,000 VMs reads one row per zone × state, per host, per pool.
 * The result is kept for CACHE_MS, and concurrent scrapes share one computation, so several
 * Prometheus servers scraping every few seconds cost one computation per interval.
 */
import { Gauge, Registry } from 'prom-client';
import type { App } from '../context.ts';
import { RESOURCE_TYPES, ResourceKind } from '../iam/limits.ts';
import { CapacityType, computeCapacities, STORAGE_OVERPROVISIONING } from '../infra/capacity.ts';
import { ipv4ToInt } from '../infra/common.ts';
import { parseVniRanges } from '../network/guest-networks.ts';
import { hostFigures } from './host-figures.ts';
import { PROMETHEUS_OFFERING_LIMIT } from './settings.ts';

/** How long a computed set of cloud figures is served before it is computed again. */
export const CACHE_MS = 5_000;

type Labels = Record<string, string>;
interface Sample {
  labels: Labels;
  value: number;
}

interface Family {
  name: string;
  help: string;
  labelNames: string[];
}

/** Every family this module reports; upstream's names and label names, one help text of ours each. */
export const CLOUD_FAMILIES: Family[] = [
  {
    name: 'cloudstack_hosts_total',
    help: 'Hypervisor hosts per zone: online (Up, not in maintenance), offline (Disconnected, Down or in maintenance) and total.',
    labelNames: ['zone', 'filter'],
  },
  {
    name: 'cloudstack_hosts_total_by_tag',
    help: 'As cloudstack_hosts_total, for the hosts carrying each host tag.',
    labelNames: ['zone', 'filter', 'tags'],
  },
  {
    name: 'cloudstack_host_is_dedicated',
    help: '1 when the host is dedicated to a domain or account, else 0.',
    labelNames: ['zone', 'hostname', 'ip'],
  },
  {
    name: 'cloudstack_host_dedicated_to_account',
    help: 'Dedicated hosts, with the account (empty for a domain dedication) and the domain path they belong to.',
    labelNames: ['zone', 'hostname', 'account', 'domain'],
  },
  {
    name: 'cloudstack_host_cpu_usage_mhz_total',
    help: 'CPU in MHz: per host used (allocated to its instances) and total (cores × speed); per zone allocated.',
    labelNames: ['zone', 'hostname', 'ip', 'overprovisioningfactor', 'filter', 'tags'],
  },
  {
    name: 'cloudstack_host_cpu_usage_mhz_total_by_tag',
    help: 'CPU in MHz allocated on the hosts carrying each host tag.',
    labelNames: ['zone', 'filter', 'tags'],
  },
  {
    name: 'cloudstack_host_memory_usage_mibs_total',
    help: 'Memory in MiB: per host used (allocated to its instances) and total; per zone allocated.',
    labelNames: ['zone', 'hostname', 'ip', 'overprovisioningfactor', 'filter', 'dedicated', 'tags'],
  },
  {
    name: 'cloudstack_host_memory_usage_mibs_total_by_tag',
    help: 'Memory in MiB allocated on the hosts carrying each host tag.',
    labelNames: ['zone', 'filter', 'tags'],
  },
  {
    name: 'cloudstack_host_vms_cores_total',
    help: 'CPU cores: per host used by running instances and total; per zone allocated.',
    labelNames: ['zone', 'hostname', 'ip', 'filter', 'dedicated', 'tags'],
  },
  {
    name: 'cloudstack_host_vms_cores_total_by_tag',
    help: 'CPU cores used by running instances on the hosts carrying each host tag.',
    labelNames: ['zone', 'filter', 'tags'],
  },
  {
    name: 'cloudstack_host_vms_total',
    help: 'Instances placed on each host, whatever their state.',
    labelNames: ['zone', 'hostname', 'address'],
  },
  {
    name: 'cloudstack_vms_total',
    help: 'User instances per zone and state (filter is the state in lower case).',
    labelNames: ['zone', 'filter'],
  },
  {
    name: 'cloudstack_vms_total_by_tag',
    help: 'User instances per zone and state on the hosts carrying each host tag.',
    labelNames: ['zone', 'filter', 'tags'],
  },
  {
    name: 'cloudstack_vms_total_by_size',
    help: 'Live user instances per zone by CPU count and memory (MiB), the commonest sizes first.',
    labelNames: ['zone', 'cpu', 'memory'],
  },
  {
    name: 'cloudstack_volumes_total',
    help: 'Volumes per zone: ready, destroy (destroyed, not yet expunged) and total.',
    labelNames: ['zone', 'filter'],
  },
  {
    name: 'cloudstack_storage_pool_gibs_total',
    help: 'Storage in GiB per primary pool (used, allocated, unallocated after over-provisioning, total) and per image store (used, total).',
    labelNames: ['zone', 'name', 'address', 'type', 'overprovisioningfactor', 'filter'],
  },
  {
    name: 'cloudstack_private_ips_total',
    help: 'Management addresses of the pods of a zone: allocated and total.',
    labelNames: ['zone', 'filter'],
  },
  {
    name: 'cloudstack_public_ips_total',
    help: 'Public addresses (ranges for source NAT, static NAT, load balancing): allocated and total.',
    labelNames: ['zone', 'filter'],
  },
  {
    name: 'cloudstack_shared_network_ips_total',
    help: 'Addresses of shared-network ranges: allocated to instances and total.',
    labelNames: ['zone', 'filter'],
  },
  {
    name: 'cloudstack_vlans_total',
    help: 'Guest VNIs (VLAN/VXLAN ids) of the zone’s physical networks: allocated to networks and total.',
    labelNames: ['zone', 'filter'],
  },
  {
    name: 'cloudstack_active_domains_total',
    help: 'Domains with at least one enabled account.',
    labelNames: ['zone'],
  },
  {
    name: 'cloudstack_active_accounts_total',
    help: 'Accounts with at least one running instance in the zone.',
    labelNames: ['zone'],
  },
  {
    name: 'cloudstack_domain_limit_cpu_cores_total',
    help: 'Sum of the CPU core limits of the first-level domains (unlimited ones count 0).',
    labelNames: [],
  },
  {
    name: 'cloudstack_domain_limit_memory_mibs_total',
    help: 'Sum of the memory limits in MiB of the first-level domains (unlimited ones count 0).',
    labelNames: [],
  },
  {
    name: 'cloudstack_domain_resource_limit',
    help: 'Limit in force for each first-level domain and resource (cpu cores, memory MiB, storage GiB); -1 is unlimited.',
    labelNames: ['domain', 'type'],
  },
  {
    name: 'cloudstack_domain_resource_count',
    help: 'What each domain (its subtree) uses of cpu cores, memory MiB and storage GiB.',
    labelNames: ['domain', 'type'],
  },
  {
    name: 'nimbostack_host_cpu_utilization_percent',
    help: 'CPU utilisation of each host as its agent last measured it (host.stats.interval), 0–100.',
    labelNames: ['zone', 'hostname', 'ip'],
  },
  {
    name: 'nimbostack_host_memory_used_bytes',
    help: 'Memory in use on each host (its whole system) as its agent last measured it.',
    labelNames: ['zone', 'hostname', 'ip'],
  },
  {
    name: 'nimbostack_host_network_kbps',
    help: 'Network traffic of each host in KiB/s (filter read or write) as its agent last measured it.',
    labelNames: ['zone', 'hostname', 'ip', 'filter'],
  },
  {
    name: 'nimbostack_zone_capacity',
    help: 'Capacity per zone and type as listCapacity reports it (filter used or total; CPU in MHz, memory and storage in bytes).',
    labelNames: ['zone', 'type', 'filter'],
  },
  {
    name: 'nimbostack_cloud_metrics_compute_seconds',
    help: 'How long the last computation of the cloud figures took.',
    labelNames: [],
  },
];

/** Upstream's VirtualMachine.State values: each is reported per zone, 0 when no instance has it. */
const VM_STATES = [
  'Starting',
  'Running',
  'Stopping',
  'Stopped',
  'Destroyed',
  'Expunging',
  'Migrating',
  'Error',
  'Unknown',
  'Shutdown',
  'Restoring',
  'BackingUp',
];
const MAINTENANCE = new Set([
  'Maintenance',
  'ErrorInMaintenance',
  'PrepareForMaintenance',
  'ErrorInPrepareForMaintenance',
]);
const CAPACITY_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(CapacityType).map(([k, v]) => [v, k]),
);
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

const n = (v: unknown): number => Number(v ?? 0);
/** Upstream prints factors with Java's Double.toString: 1 is "1.0". */
const factorText = (f: number): string => (Number.isInteger(f) ? f.toFixed(1) : String(f));

/** Computes every sample of CLOUD_FAMILIES, by family name. */
export async function computeCloudFigures(app: App): Promise<Map<string, Sample[]>> {
  const started = performance.now();
  const db = app.store.db;
  const out = new Map<string, Sample[]>(CLOUD_FAMILIES.map((f) => [f.name, []]));
  const add = (name: string, labels: Labels, value: number) => out.get(name)!.push({ labels, value });

  const [zones, hosts, vmGroups] = await Promise.all([
    db.selectFrom('zones').select(['id', 'name']).where('removed', 'is', null).orderBy('id').execute(),
    hostFigures(app),
    db
      .selectFrom('vms')
      .select(['zone_id', 'state', (eb) => eb.fn.countAll().as('n')])
      .where('removed', 'is', null)
      .groupBy(['zone_id', 'state'])
      .execute(),
  ]);
  const zoneName = new Map(zones.map((z) => [z.id, z.name]));
  const vmCount = new Map<string, number>();
  for (const r of vmGroups) {
    const key = `${r.zone_id}\u0000${r.state}`;
    vmCount.set(key, (vmCount.get(key) ?? 0) + n(r.n));
  }

  // Hosts: per host figures, per zone counts and allocations, and the same per host tag.
  interface Tally {
    total: number;
    online: number;
    offline: number;
    cpu: number;
    mem: number;
    cores: number;
  }
  const tally = () => ({ total: 0, online: 0, offline: 0, cpu: 0, mem: 0, cores: 0 });
  const byZone = new Map<number, Tally>(zones.map((z) => [z.id, tally()]));
  const byZoneTag = new Map<string, Tally & { zone: number; tag: string }>();
  const byTagState = new Map<string, number>();
  for (const h of hosts) {
    const zone = zoneName.get(h.zoneId);
    if (zone === undefined) continue;
    const ip = h.ip;
    const tags = h.tags;
    const tagText = tags.join(',');
    const d = h.dedicatedTo;
    const isDedicated = d ? 1 : 0;
    add('cloudstack_host_is_dedicated', { zone, hostname: h.name, ip }, isDedicated);
    if (d)
      add(
        'cloudstack_host_dedicated_to_account',
        { zone, hostname: h.name, account: d.account ?? '', domain: d.domain },
        1,
      );
    const cpuFactor = h.cpuFactor;
    const memFactor = h.memFactor;
    const cpuUsed = h.cpuAllocatedMhz;
    const memUsed = h.memoryAllocatedBytes;
    const coresUsed = h.coresUsed;
    const base = { zone, hostname: h.name, ip };
    add(
      'cloudstack_host_cpu_usage_mhz_total',
      { ...base, overprovisioningfactor: factorText(cpuFactor), filter: 'used', tags: tagText },
      cpuUsed,
    );
    add(
      'cloudstack_host_cpu_usage_mhz_total',
      { ...base, overprovisioningfactor: factorText(cpuFactor), filter: 'total', tags: tagText },
      h.cpuMhz,
    );
    add(
      'cloudstack_host_memory_usage_mibs_total',
      {
        ...base,
        overprovisioningfactor: factorText(memFactor),
        filter: 'used',
        dedicated: String(isDedicated),
        tags: tagText,
      },
      memUsed / MIB,
    );
    add(
      'cloudstack_host_memory_usage_mibs_total',
      {
        ...base,
        overprovisioningfactor: factorText(memFactor),
        filter: 'total',
        dedicated: String(isDedicated),
        tags: tagText,
      },
      h.memoryBytes / MIB,
    );
    add('cloudstack_host_vms_total', { zone, hostname: h.name, address: ip }, h.vmsTotal);
    add(
      'cloudstack_host_vms_cores_total',
      { ...base, filter: 'used', dedicated: String(isDedicated), tags: tagText },
      coresUsed,
    );
    add(
      'cloudstack_host_vms_cores_total',
      { ...base, filter: 'total', dedicated: String(isDedicated), tags: tagText },
      h.cores,
    );
    if (h.stats) {
      add('nimbostack_host_cpu_utilization_percent', base, h.stats.cpuUtilization);
      add('nimbostack_host_memory_used_bytes', base, h.stats.memoryUsedBytes);
      add('nimbostack_host_network_kbps', { ...base, filter: 'read' }, h.stats.networkReadKbs);
      add('nimbostack_host_network_kbps', { ...base, filter: 'write' }, h.stats.networkWriteKbs);
    }
    for (const tag of tags)
      for (const [state, count] of h.vmsByState) {
        const key = `${h.zoneId}\u0000${tag}\u0000${state}`;
        byTagState.set(key, (byTagState.get(key) ?? 0) + count);
      }

    const maintenance = MAINTENANCE.has(h.resourceState);
    const online = h.state === 'Up' && !maintenance;
    const offline = !online && (h.state === 'Disconnected' || h.state === 'Down' || maintenance);
    const tallies: Tally[] = [byZone.get(h.zoneId)!];
    for (const tag of tags) {
      const key = `${h.zoneId}\u0000${tag}`;
      const known = byZoneTag.get(key);
      const v = known ?? { ...tally(), zone: h.zoneId, tag };
      if (!known) byZoneTag.set(key, v);
      tallies.push(v);
    }
    for (const t of tallies) {
      t.total++;
      if (online) t.online++;
      if (offline) t.offline++;
      t.cpu += cpuUsed;
      t.mem += memUsed;
      t.cores += coresUsed;
    }
  }
  for (const [zoneId, t] of byZone) {
    const zone = zoneName.get(zoneId)!;
    add('cloudstack_host_cpu_usage_mhz_total', { zone, filter: 'allocated' }, t.cpu);
    add('cloudstack_host_memory_usage_mibs_total', { zone, filter: 'allocated' }, t.mem / MIB);
    add('cloudstack_host_vms_cores_total', { zone, filter: 'allocated' }, t.cores);
    for (const filter of ['online', 'offline', 'total'] as const)
      add('cloudstack_hosts_total', { zone, filter }, t[filter]);
  }
  for (const t of byZoneTag.values()) {
    const zone = zoneName.get(t.zone)!;
    for (const filter of ['total', 'online', 'offline'] as const)
      add('cloudstack_hosts_total_by_tag', { zone, filter, tags: t.tag }, t[filter]);
    add('cloudstack_host_vms_cores_total_by_tag', { zone, filter: 'allocated', tags: t.tag }, t.cores);
    add('cloudstack_host_cpu_usage_mhz_total_by_tag', { zone, filter: 'allocated', tags: t.tag }, t.cpu);
    add(
      'cloudstack_host_memory_usage_mibs_total_by_tag',
      { zone, filter: 'allocated', tags: t.tag },
      t.mem / MIB,
    );
  }

  // Instances per zone and state; per host tag from the per-host counts (no join per tag).
  for (const z of zones)
    for (const state of VM_STATES)
      add(
        'cloudstack_vms_total',
        { zone: z.name, filter: state.toLowerCase() },
        vmCount.get(`${z.id}\u0000${state}`) ?? 0,
      );
  for (const t of byZoneTag.values())
    for (const state of VM_STATES)
      add(
        'cloudstack_vms_total_by_tag',
        { zone: zoneName.get(t.zone)!, filter: state.toLowerCase(), tags: t.tag },
        byTagState.get(`${t.zone}\u0000${t.tag}\u0000${state}`) ?? 0,
      );

  const offeringLimit = app.settings.get(PROMETHEUS_OFFERING_LIMIT);
  const [
    sizes,
    volumes,
    pools,
    stores,
    pods,
    publicIps,
    sharedRanges,
    sharedAllocated,
    physical,
    vnis,
    activeAccounts,
    activeDomains,
    domains,
    limits,
    counts,
  ] = await Promise.all([
    db
      .selectFrom('vms')
      .select(['zone_id', 'cpu_number', 'memory_mb', (eb) => eb.fn.countAll().as('n')])
      .where('removed', 'is', null)
      .where('state', 'not in', ['Destroyed', 'Expunging', 'Error'])
      .groupBy(['zone_id', 'cpu_number', 'memory_mb'])
      .execute(),
    db
      .selectFrom('volumes')
      .select(['zone_id', 'state', (eb) => eb.fn.countAll().as('n')])
      .where('removed', 'is', null)
      .groupBy(['zone_id', 'state'])
      .execute(),
    db
      .selectFrom('storage_pools')
      .select([
        'id',
        'zone_id',
        'name',
        'host_address',
        'path',
        'pool_type',
        'capacity_bytes',
        'used_bytes',
        'allocated_bytes',
      ])
      .where('removed', 'is', null)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('image_stores')
      .select(['zone_id', 'name', 'url', 'capacity_bytes', 'used_bytes'])
      .where('removed', 'is', null)
      .where('zone_id', 'is not', null)
      .orderBy('id')
      .execute(),
    db
      .selectFrom('pods')
      .select(['zone_id', 'start_ip', 'end_ip'])
      .where('removed', 'is', null)
      .where('start_ip', 'is not', null)
      .execute(),
    db
      .selectFrom('public_ips')
      .innerJoin('vlan_ip_ranges', 'vlan_ip_ranges.id', 'public_ips.range_id')
      .select(['public_ips.zone_id', 'public_ips.state', (eb) => eb.fn.countAll().as('n')])
      .where('vlan_ip_ranges.for_virtual_network', '=', 1)
      .groupBy(['public_ips.zone_id', 'public_ips.state'])
      .execute(),
    db
      .selectFrom('vlan_ip_ranges')
      .select([
        'zone_id',
        (eb) => eb.fn.sum(eb(eb(eb.ref('end_num'), '-', eb.ref('start_num')), '+', eb.lit(1))).as('n'),
      ])
      .where('for_virtual_network', '=', 0)
      .groupBy('zone_id')
      .execute(),
    db
      .selectFrom('guest_ip_allocations')
      .innerJoin('vlan_ip_ranges', 'vlan_ip_ranges.id', 'guest_ip_allocations.range_id')
      .select(['vlan_ip_ranges.zone_id', (eb) => eb.fn.countAll().as('n')])
      .where('vlan_ip_ranges.for_virtual_network', '=', 0)
      .groupBy('vlan_ip_ranges.zone_id')
      .execute(),
    db.selectFrom('physical_networks').select(['zone_id', 'vlan']).where('removed', 'is', null).execute(),
    db
      .selectFrom('networks')
      .select(['zone_id', (eb) => eb.fn.countAll().as('n')])
      .where('removed', 'is', null)
      .where('vni', 'is not', null)
      .groupBy('zone_id')
      .execute(),
    db
      .selectFrom('vms')
      .select(['zone_id', (eb) => eb.fn.count('account_id').distinct().as('n')])
      .where('removed', 'is', null)
      .where('state', '=', 'Running')
      .groupBy('zone_id')
      .execute(),
    db
      .selectFrom('accounts')
      .select((eb) => eb.fn.count('domain_id').distinct().as('n'))
      .where('state', '=', 'enabled')
      .executeTakeFirst(),
    db
      .selectFrom('domains')
      .select(['id', 'path', 'level', 'parent_id'])
      .where('state', '=', 'Active')
      .orderBy('path')
      .execute(),
    db
      .selectFrom('resource_limits')
      .select(['owner_id', 'resource_type', 'max'])
      .where('owner_type', '=', 'domain')
      .where('resource_type', 'in', [
        ResourceKind.Cpu,
        ResourceKind.Memory,
        ResourceKind.PrimaryStorage,
        ResourceKind.SecondaryStorage,
      ])
      .execute(),
    db
      .selectFrom('resource_counts')
      .select(['owner_id', 'resource_type', 'count'])
      .where('owner_type', '=', 'domain')
      .where('resource_type', 'in', [
        ResourceKind.Cpu,
        ResourceKind.Memory,
        ResourceKind.PrimaryStorage,
        ResourceKind.SecondaryStorage,
      ])
      .execute(),
  ]);

  // Sizes: the commonest first, at most offeringLimit per zone.
  const sizesByZone = new Map<number, typeof sizes>();
  for (const s of sizes) sizesByZone.set(s.zone_id, [...(sizesByZone.get(s.zone_id) ?? []), s]);
  for (const [zoneId, list] of sizesByZone) {
    const zone = zoneName.get(zoneId);
    if (zone === undefined) continue;
    list.sort((a, b) => n(b.n) - n(a.n) || a.cpu_number - b.cpu_number || a.memory_mb - b.memory_mb);
    const kept = offeringLimit >= 0 ? list.slice(0, offeringLimit) : list;
    for (const s of kept)
      add(
        'cloudstack_vms_total_by_size',
        { zone, cpu: String(s.cpu_number), memory: String(s.memory_mb) },
        n(s.n),
      );
  }

  const volumeTally = new Map<number, { ready: number; destroy: number; total: number }>(
    zones.map((z) => [z.id, { ready: 0, destroy: 0, total: 0 }]),
  );
  for (const v of volumes) {
    const t = volumeTally.get(v.zone_id);
    if (!t) continue;
    t.total += n(v.n);
    if (v.state === 'Ready') t.ready += n(v.n);
    if (v.state === 'Destroy') t.destroy += n(v.n);
  }
  for (const [zoneId, t] of volumeTally)
    for (const filter of ['ready', 'destroy', 'total'] as const)
      add('cloudstack_volumes_total', { zone: zoneName.get(zoneId)!, filter }, t[filter]);

  for (const p of pools) {
    const zone = zoneName.get(p.zone_id);
    if (zone === undefined) continue;
    const thin = ['NetworkFilesystem', 'Filesystem', 'SharedMountPoint'].includes(p.pool_type);
    const factor = thin ? app.settings.at(STORAGE_OVERPROVISIONING, 'storagepool', p.id) : 1;
    const labels = {
      zone,
      name: p.name,
      address: `${p.host_address}:${p.path}`,
      type: 'primary',
      overprovisioningfactor: factorText(factor),
    };
    const total = n(p.capacity_bytes);
    const allocated = n(p.allocated_bytes);
    add('cloudstack_storage_pool_gibs_total', { ...labels, filter: 'used' }, n(p.used_bytes) / GIB);
    add('cloudstack_storage_pool_gibs_total', { ...labels, filter: 'allocated' }, allocated / GIB);
    add(
      'cloudstack_storage_pool_gibs_total',
      { ...labels, filter: 'unallocated' },
      (total * factor - allocated) / GIB,
    );
    add('cloudstack_storage_pool_gibs_total', { ...labels, filter: 'total' }, total / GIB);
  }
  for (const s of stores) {
    const zone = zoneName.get(s.zone_id as number);
    if (zone === undefined) continue;
    const labels = { zone, name: s.name, address: s.url, type: 'secondary' };
    add('cloudstack_storage_pool_gibs_total', { ...labels, filter: 'used' }, n(s.used_bytes) / GIB);
    add('cloudstack_storage_pool_gibs_total', { ...labels, filter: 'total' }, n(s.capacity_bytes) / GIB);
  }

  const perZone = () =>
    new Map<number, { allocated: number; total: number }>(
      zones.map((z) => [z.id, { allocated: 0, total: 0 }]),
    );
  const privateIps = perZone();
  // Nothing takes addresses from pod ranges (there are no system VMs), so none is allocated.
  for (const p of pods) {
    const t = privateIps.get(p.zone_id);
    if (t) t.total += ipv4ToInt(p.end_ip as string) - ipv4ToInt(p.start_ip as string) + 1;
  }
  const publicTally = perZone();
  for (const r of publicIps) {
    const t = publicTally.get(r.zone_id);
    if (!t) continue;
    t.total += n(r.n);
    if (r.state !== 'Free') t.allocated += n(r.n);
  }
  const sharedTally = perZone();
  for (const r of sharedRanges) {
    const t = sharedTally.get(r.zone_id);
    if (t) t.total += n(r.n);
  }
  for (const r of sharedAllocated) {
    const t = sharedTally.get(r.zone_id);
    if (t) t.allocated += n(r.n);
  }
  const vlanTally = perZone();
  for (const p of physical) {
    const t = vlanTally.get(p.zone_id);
    if (t) for (const [a, b] of parseVniRanges(p.vlan)) t.total += b - a + 1;
  }
  for (const r of vnis) {
    const t = vlanTally.get(r.zone_id);
    if (t) t.allocated += n(r.n);
  }
  for (const [name, tallyOf] of [
    ['cloudstack_private_ips_total', privateIps],
    ['cloudstack_public_ips_total', publicTally],
    ['cloudstack_shared_network_ips_total', sharedTally],
    ['cloudstack_vlans_total', vlanTally],
  ] as const)
    for (const [zoneId, t] of tallyOf) {
      const zone = zoneName.get(zoneId)!;
      add(name, { zone, filter: 'allocated' }, t.allocated);
      add(name, { zone, filter: 'total' }, t.total);
    }

  const accountsIn = new Map(activeAccounts.map((r) => [r.zone_id, n(r.n)]));
  for (const z of zones) {
    add('cloudstack_active_domains_total', { zone: z.name }, n(activeDomains?.n));
    add('cloudstack_active_accounts_total', { zone: z.name }, accountsIn.get(z.id) ?? 0);
  }

  // Domain limits and counts of cpu, memory and storage; storage is kept in bytes, shown in GiB.
  const kinds = [
    { id: ResourceKind.Cpu, scale: 1 },
    { id: ResourceKind.Memory, scale: 1 },
    { id: ResourceKind.PrimaryStorage, scale: GIB },
    { id: ResourceKind.SecondaryStorage, scale: GIB },
  ];
  const typeName = (id: number) => RESOURCE_TYPES.find((t) => t.id === id)!.name;
  const explicit = new Map(limits.map((l) => [`${l.owner_id}\u0000${l.resource_type}`, n(l.max)]));
  const counted = new Map(counts.map((c) => [`${c.owner_id}\u0000${c.resource_type}`, n(c.count)]));
  let cpuLimits = 0;
  let memoryLimits = 0;
  for (const d of domains) {
    for (const k of kinds) {
      const used = counted.get(`${d.id}\u0000${k.id}`) ?? 0;
      add(
        'cloudstack_domain_resource_count',
        { domain: d.path, type: typeName(k.id) },
        k.scale === 1 ? used : Math.round(used / k.scale),
      );
    }
    if (d.level !== 1) continue;
    for (const k of kinds) {
      const type = RESOURCE_TYPES.find((t) => t.id === k.id)!;
      const limit =
        explicit.get(`${d.id}\u0000${k.id}`) ?? app.settings.at(type.domainDefault, 'domain', d.id);
      add('cloudstack_domain_resource_limit', { domain: d.path, type: type.name }, limit);
      if (limit > 0 && k.id === ResourceKind.Cpu) cpuLimits += limit;
      if (limit > 0 && k.id === ResourceKind.Memory) memoryLimits += limit;
    }
  }
  add('cloudstack_domain_limit_cpu_cores_total', {}, cpuLimits);
  add('cloudstack_domain_limit_memory_mibs_total', {}, memoryLimits);

  for (const c of await computeCapacities({ app }, 'zone')) {
    const zone = zoneName.get(c.zoneId);
    if (zone === undefined) continue;
    const type = CAPACITY_NAMES[c.type] ?? String(c.type);
    add('nimbostack_zone_capacity', { zone, type, filter: 'used' }, c.used);
    add('nimbostack_zone_capacity', { zone, type, filter: 'total' }, c.total);
  }

  add('nimbostack_cloud_metrics_compute_seconds', {}, (performance.now() - started) / 1000);
  return out;
}

/**
 * The cloud's figures in the text format, computed and rendered at most once per CACHE_MS:
 * scrapes in between (from any number of Prometheus servers) get the same text. Rendering 2,000
 * hosts' series costs about as much as computing them, so the text is what is kept.
 */
export function cloudExposition(app: App): () => Promise<string> {
  const registry = new Registry();
  let figures: Promise<Map<string, Sample[]>> = Promise.resolve(new Map());
  let cached: { at: number; text: Promise<string> } | undefined;
  for (const family of CLOUD_FAMILIES) {
    new Gauge({
      name: family.name,
      help: family.help,
      labelNames: family.labelNames,
      registers: [registry],
      async collect() {
        const samples = (await figures).get(family.name) ?? [];
        this.reset();
        for (const s of samples) this.set(s.labels, s.value);
      },
    });
  }
  return () => {
    const now = Date.now();
    if (!cached || now - cached.at > CACHE_MS) {
      figures = computeCloudFigures(app);
      const text = registry.metrics();
      cached = { at: now, text };
      // A failed computation is not kept: the next scrape tries again.
      text.catch(() => {
        if (cached?.text === text) cached = undefined;
      });
    }
    return cached.text;
  };
}
