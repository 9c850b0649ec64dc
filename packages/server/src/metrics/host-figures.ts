/**
 * Per-host figures, the one source of both the Prometheus exporter (cloud-metrics.ts) and the
 * list*Metrics commands (list-metrics.ts): capacity (cores × speed, memory, each with its
 * cluster's over-provisioning factor), what is allocated to instances, the instances placed on the
 * host by state, its tags and dedication, and the latest statistics its agent measured
 * (host-stats.ts). Read with one query per table for any number of hosts, never one per host.
 */
import type { App } from '../context.ts';
import { CPU_OVERPROVISIONING, MEM_OVERPROVISIONING } from '../infra/capacity.ts';
import { type HostStats, statsOf } from './host-stats.ts';

/** States in which an instance holds cores on its host (as computeCapacities counts them). */
const HOLDS_CORES = new Set(['Starting', 'Running', 'Stopping', 'Migrating']);

export interface HostFigure {
  id: number;
  uuid: string;
  name: string;
  zoneId: number;
  podId: number | null;
  clusterId: number | null;
  state: string;
  resourceState: string;
  ip: string;
  cores: number;
  speedMhz: number;
  /** cores × speed, before over-provisioning. */
  cpuMhz: number;
  cpuAllocatedMhz: number;
  memoryBytes: number;
  memoryAllocatedBytes: number;
  cpuFactor: number;
  memFactor: number;
  tags: string[];
  dedicatedTo?: { account: string | null; domain: string };
  /** Instances placed on the host, by state. */
  vmsByState: Map<string, number>;
  vmsTotal: number;
  vmsRunning: number;
  /** Cores of the instances starting, running, stopping or migrating on it. */
  coresUsed: number;
  /** The agent's latest measurements; absent until the first collection answers. */
  stats?: HostStats;
}

/** The live hypervisor hosts (all, or those with the given ids), ordered by id. */
export async function hostFigures(app: App, hostIds?: number[]): Promise<HostFigure[]> {
  if (hostIds && hostIds.length === 0) return [];
  const db = app.store.db;
  let hostQuery = db
    .selectFrom('hosts')
    .select([
      'id',
      'uuid',
      'name',
      'zone_id',
      'pod_id',
      'cluster_id',
      'state',
      'resource_state',
      'private_ip',
      'cpu_cores',
      'cpu_speed_mhz',
      'memory_bytes',
      'cpu_allocated_mhz',
      'memory_allocated_bytes',
    ])
    .where('removed', 'is', null)
    .where('type', '=', 'Routing');
  if (hostIds) hostQuery = hostQuery.where('id', 'in', hostIds);
  let tagQuery = db.selectFrom('host_tags').select(['host_id', 'tag']);
  if (hostIds) tagQuery = tagQuery.where('host_id', 'in', hostIds);
  let dedicatedQuery = db
    .selectFrom('dedicated_resources')
    .innerJoin('domains', 'domains.id', 'dedicated_resources.domain_id')
    .leftJoin('accounts', 'accounts.id', 'dedicated_resources.account_id')
    .select(['dedicated_resources.host_id', 'accounts.name as account', 'domains.path as domain'])
    .where('dedicated_resources.host_id', 'is not', null);
  if (hostIds) dedicatedQuery = dedicatedQuery.where('dedicated_resources.host_id', 'in', hostIds);
  let vmQuery = db
    .selectFrom('vms')
    .select([
      'host_id',
      'state',
      (eb) => eb.fn.countAll().as('n'),
      (eb) => eb.fn.sum('cpu_number').as('cores'),
    ])
    .where('removed', 'is', null)
    .where('host_id', 'is not', null)
    .groupBy(['host_id', 'state']);
  if (hostIds) vmQuery = vmQuery.where('host_id', 'in', hostIds);
  const [hosts, tags, dedicated, vmGroups] = await Promise.all([
    hostQuery.orderBy('id').execute(),
    tagQuery.orderBy('id').execute(),
    dedicatedQuery.execute(),
    vmQuery.execute(),
  ]);
  const tagsOf = new Map<number, string[]>();
  for (const t of tags) tagsOf.set(t.host_id, [...(tagsOf.get(t.host_id) ?? []), t.tag]);
  const dedicatedTo = new Map(dedicated.map((d) => [Number(d.host_id), d]));
  const vmsOn = new Map<number, { byState: Map<string, number>; cores: number }>();
  for (const g of vmGroups) {
    const id = Number(g.host_id);
    const v = vmsOn.get(id) ?? { byState: new Map<string, number>(), cores: 0 };
    v.byState.set(g.state, Number(g.n ?? 0));
    if (HOLDS_CORES.has(g.state)) v.cores += Number(g.cores ?? 0);
    vmsOn.set(id, v);
  }
  const stats = statsOf(app);
  return hosts.map((h) => {
    const vms = vmsOn.get(h.id);
    const byState = vms?.byState ?? new Map<string, number>();
    const d = dedicatedTo.get(h.id);
    const cores = Number(h.cpu_cores ?? 0);
    const speedMhz = Number(h.cpu_speed_mhz ?? 0);
    return {
      id: h.id,
      uuid: h.uuid,
      name: h.name,
      zoneId: h.zone_id,
      podId: h.pod_id,
      clusterId: h.cluster_id,
      state: h.state,
      resourceState: h.resource_state,
      ip: h.private_ip ?? '',
      cores,
      speedMhz,
      cpuMhz: cores * speedMhz,
      cpuAllocatedMhz: Number(h.cpu_allocated_mhz ?? 0),
      memoryBytes: Number(h.memory_bytes ?? 0),
      memoryAllocatedBytes: Number(h.memory_allocated_bytes ?? 0),
      cpuFactor: h.cluster_id === null ? 1 : app.settings.at(CPU_OVERPROVISIONING, 'cluster', h.cluster_id),
      memFactor: h.cluster_id === null ? 1 : app.settings.at(MEM_OVERPROVISIONING, 'cluster', h.cluster_id),
      tags: tagsOf.get(h.id) ?? [],
      dedicatedTo: d ? { account: d.account, domain: d.domain } : undefined,
      vmsByState: byState,
      vmsTotal: [...byState.values()].reduce((a, b) => a + b, 0),
      vmsRunning: byState.get('Running') ?? 0,
      coresUsed: vms?.cores ?? 0,
      stats: stats.host(h.id),
    };
  });
}
