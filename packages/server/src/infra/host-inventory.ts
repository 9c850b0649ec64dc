/**
 * What the inventory needs to know about hosts: whether a zone, pod or cluster still has any, and
 * their CPU and memory for capacity. The hosts capability owns the `hosts` table (migration 0003);
 * this file reads only the columns of the agreed contract, so the two capabilities meet at one
 * place. A database migrated before that table exists simply has no hosts.
 */
import type { Kysely } from 'kysely';
import type { App } from '../context.ts';

type StoreOf = Pick<App, 'store'>;

/** The agreed columns of `hosts`; `removed` is null for live hosts. */
export interface HostContractTable {
  id: number;
  uuid: string;
  name: string;
  zone_id: number;
  pod_id: number | null;
  cluster_id: number | null;
  hypervisor: string | null;
  state: string;
  resource_state: string;
  cpu_cores: number | null;
  cpu_speed_mhz: number | null;
  memory_bytes: number | null;
  cpu_allocated_mhz: number | null;
  memory_allocated_bytes: number | null;
  removed: number | null;
}

export type HostContractRow = HostContractTable;

const present = new WeakSet<object>();

async function hostsDb(app: StoreOf): Promise<Kysely<{ hosts: HostContractTable }> | undefined> {
  if (!present.has(app.store)) {
    const tables = await app.store.db.introspection.getTables();
    if (!tables.some((t) => t.name === 'hosts')) return undefined;
    present.add(app.store);
  }
  return app.store.db as unknown as Kysely<{ hosts: HostContractTable }>;
}

export interface HostScope {
  zoneId?: number;
  podId?: number;
  clusterId?: number;
}

/** Number of live hosts in a zone, pod or cluster. */
export async function countHosts(app: StoreOf, scope: HostScope): Promise<number> {
  const db = await hostsDb(app);
  if (!db) return 0;
  let q = db.selectFrom('hosts').where('removed', 'is', null);
  if (scope.zoneId !== undefined) q = q.where('zone_id', '=', scope.zoneId);
  if (scope.podId !== undefined) q = q.where('pod_id', '=', scope.podId);
  if (scope.clusterId !== undefined) q = q.where('cluster_id', '=', scope.clusterId);
  const r = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(r.n);
}

/** The hypervisors of live hosts in a cluster (to refuse changing a cluster under them). */
export async function hostHypervisors(app: StoreOf, clusterId: number): Promise<string[]> {
  const db = await hostsDb(app);
  if (!db) return [];
  const rows = await db
    .selectFrom('hosts')
    .select('hypervisor')
    .distinct()
    .where('removed', 'is', null)
    .where('cluster_id', '=', clusterId)
    .execute();
  return rows.map((r) => r.hypervisor).filter((h): h is string => h !== null);
}

/** Live compute hosts that count towards capacity, optionally narrowed to a zone, pod or cluster. */
export async function capacityHosts(app: StoreOf, scope: HostScope): Promise<HostContractRow[]> {
  const db = await hostsDb(app);
  if (!db) return [];
  let q = db.selectFrom('hosts').selectAll().where('removed', 'is', null).where('cluster_id', 'is not', null);
  if (scope.zoneId !== undefined) q = q.where('zone_id', '=', scope.zoneId);
  if (scope.podId !== undefined) q = q.where('pod_id', '=', scope.podId);
  if (scope.clusterId !== undefined) q = q.where('cluster_id', '=', scope.clusterId);
  return (await q.execute()).map((h) => ({
    ...h,
    cpu_cores: h.cpu_cores === null ? null : Number(h.cpu_cores),
    cpu_speed_mhz: h.cpu_speed_mhz === null ? null : Number(h.cpu_speed_mhz),
    memory_bytes: h.memory_bytes === null ? null : Number(h.memory_bytes),
    cpu_allocated_mhz: h.cpu_allocated_mhz === null ? null : Number(h.cpu_allocated_mhz),
    memory_allocated_bytes: h.memory_allocated_bytes === null ? null : Number(h.memory_allocated_bytes),
  }));
}
