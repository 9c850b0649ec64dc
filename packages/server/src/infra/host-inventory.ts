/**
 * What the inventory needs to know about hosts: whether a zone, pod or cluster still has any, and
 * their CPU and memory for capacity. The hosts capability owns the `hosts` table (migration 0003);
 * this file reads only the columns agreed between the two capabilities (id, uuid, name, zone_id,
 * pod_id, cluster_id, hypervisor, state, resource_state, cpu_cores, cpu_speed_mhz, memory_bytes,
 * cpu_allocated_mhz, memory_allocated_bytes, removed; and cpu_sockets for the summary), so they
 * meet at one place.
 */
import type { App } from '../context.ts';

type StoreOf = Pick<App, 'store'>;

export interface HostScope {
  zoneId?: number;
  podId?: number;
  clusterId?: number;
}

/** The CPU and memory of a cluster's hosts in service, summed. */
export interface ClusterHostTotals {
  zone_id: number;
  pod_id: number | null;
  cluster_id: number;
  cores: number;
  /** Σ cores × MHz. */
  cpu_mhz: number;
  memory_bytes: number;
  cpu_allocated_mhz: number;
  memory_allocated_bytes: number;
}

function liveHosts(app: StoreOf, scope: HostScope) {
  let q = app.store.db.selectFrom('hosts').where('removed', 'is', null);
  if (scope.zoneId !== undefined) q = q.where('zone_id', '=', scope.zoneId);
  if (scope.podId !== undefined) q = q.where('pod_id', '=', scope.podId);
  if (scope.clusterId !== undefined) q = q.where('cluster_id', '=', scope.clusterId);
  return q;
}

/** Number of live hosts in a zone, pod or cluster. */
export async function countHosts(app: StoreOf, scope: HostScope): Promise<number> {
  const r = await liveHosts(app, scope)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** The hypervisors of live hosts in a cluster (to refuse changing a cluster under them). */
export async function hostHypervisors(app: StoreOf, clusterId: number): Promise<string[]> {
  const rows = await liveHosts(app, { clusterId }).select('hypervisor').distinct().execute();
  return rows.map((r) => r.hypervisor).filter((h): h is string => h !== null);
}

/** Number of live hosts and their CPU sockets, for the infrastructure summary. */
export async function hostTotals(app: StoreOf): Promise<{ hosts: number; sockets: number }> {
  const r = await liveHosts(app, {})
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('cpu_sockets').as('sockets')])
    .executeTakeFirstOrThrow();
  return { hosts: Number(r.n), sockets: Number(r.sockets ?? 0) };
}

/** Where a live host sits, by its uuid (for filters such as listStoragePools hostid). */
export async function hostPlacement(
  app: StoreOf,
  uuid: string,
): Promise<
  { id: number; zone_id: number; cluster_id: number | null; hypervisor: string | null } | undefined
> {
  return liveHosts(app, {})
    .select(['id', 'zone_id', 'cluster_id', 'hypervisor'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
}

/** Hosts in these resource states give no capacity (upstream marks their capacity disabled). */
const OUT_OF_SERVICE = [
  'Maintenance',
  'PrepareForMaintenance',
  'ErrorInMaintenance',
  'ErrorInPrepareForMaintenance',
  'Disabled',
];

/**
 * Per-cluster sums of the hosts in service, computed by the database: a dashboard over ten
 * thousand hosts reads one row per cluster rather than one per host.
 */
export async function clusterHostTotals(app: StoreOf, scope: HostScope): Promise<ClusterHostTotals[]> {
  const rows = await liveHosts(app, scope)
    .where('cluster_id', 'is not', null)
    .where('resource_state', 'not in', OUT_OF_SERVICE)
    .select((eb) => [
      'zone_id',
      'pod_id',
      'cluster_id',
      eb.fn.sum<number>('cpu_cores').as('cores'),
      eb.fn.sum<number>(eb('cpu_cores', '*', eb.ref('cpu_speed_mhz'))).as('cpu_mhz'),
      eb.fn.sum<number>('memory_bytes').as('memory_bytes'),
      eb.fn.sum<number>('cpu_allocated_mhz').as('cpu_allocated_mhz'),
      eb.fn.sum<number>('memory_allocated_bytes').as('memory_allocated_bytes'),
    ])
    .groupBy(['zone_id', 'pod_id', 'cluster_id'])
    .execute();
  // PostgreSQL and MySQL return sums of big integers as numeric strings.
  return rows.map((r) => ({
    zone_id: r.zone_id,
    pod_id: r.pod_id,
    cluster_id: r.cluster_id as number,
    cores: Number(r.cores ?? 0),
    cpu_mhz: Number(r.cpu_mhz ?? 0),
    memory_bytes: Number(r.memory_bytes ?? 0),
    cpu_allocated_mhz: Number(r.cpu_allocated_mhz ?? 0),
    memory_allocated_bytes: Number(r.memory_allocated_bytes ?? 0),
  }));
}
