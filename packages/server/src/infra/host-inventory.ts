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

export interface CapacityHost {
  zone_id: number;
  pod_id: number | null;
  cluster_id: number | null;
  resource_state: string;
  cpu_cores: number;
  cpu_speed_mhz: number;
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
): Promise<{ zone_id: number; cluster_id: number | null; hypervisor: string | null } | undefined> {
  return liveHosts(app, {})
    .select(['zone_id', 'cluster_id', 'hypervisor'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
}

/** Live hosts in clusters, with their CPU and memory as numbers on every dialect. */
export async function capacityHosts(app: StoreOf, scope: HostScope): Promise<CapacityHost[]> {
  const rows = await liveHosts(app, scope)
    .where('cluster_id', 'is not', null)
    .select([
      'zone_id',
      'pod_id',
      'cluster_id',
      'resource_state',
      'cpu_cores',
      'cpu_speed_mhz',
      'memory_bytes',
      'cpu_allocated_mhz',
      'memory_allocated_bytes',
    ])
    .execute();
  return rows.map((h) => ({
    zone_id: h.zone_id,
    pod_id: h.pod_id,
    cluster_id: h.cluster_id,
    resource_state: h.resource_state,
    cpu_cores: Number(h.cpu_cores ?? 0),
    cpu_speed_mhz: Number(h.cpu_speed_mhz ?? 0),
    memory_bytes: Number(h.memory_bytes ?? 0),
    cpu_allocated_mhz: Number(h.cpu_allocated_mhz ?? 0),
    memory_allocated_bytes: Number(h.memory_allocated_bytes ?? 0),
  }));
}
