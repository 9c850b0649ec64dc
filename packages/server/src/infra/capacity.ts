/**
 * Capacity: what the inventory can hold and how much of it is taken, computed live from hosts,
 * primary storage pools, image stores and pod address ranges (CloudStack keeps a table refreshed
 * by a collector; reading the sources directly keeps the numbers current without one). Totals of
 * CPU and memory are multiplied by the cluster's over-provisioning factors, allocated primary
 * storage by the pool's.
 */
import type { App, CallContext } from '../context.ts';
import type { ClusterRow, PodRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { defineSetting } from '../settings/settings.ts';
import { findCluster, findPod, findZone, ipv4ToInt } from './common.ts';
import { clusterHostTotals } from './host-inventory.ts';

export const CPU_OVERPROVISIONING = defineSetting({
  name: 'cpu.overprovisioning.factor',
  category: 'Advanced',
  type: 'Float',
  defaultValue: 1.0,
  min: 1,
  scopes: ['cluster'],
  description: 'Multiplier of a cluster’s physical CPU (cores × MHz) when allocating virtual machines.',
});

export const MEM_OVERPROVISIONING = defineSetting({
  name: 'mem.overprovisioning.factor',
  category: 'Advanced',
  type: 'Float',
  defaultValue: 1.0,
  min: 1,
  scopes: ['cluster'],
  description: 'Multiplier of a cluster’s physical memory when allocating virtual machines.',
});

export const STORAGE_OVERPROVISIONING = defineSetting({
  name: 'storage.overprovisioning.factor',
  category: 'Storage',
  type: 'Float',
  defaultValue: 2.0,
  min: 1,
  scopes: ['storagepool'],
  description: 'Multiplier of a thin-provisioned primary storage pool’s size when allocating volumes.',
});

export const CAPACITY_CHECK_PERIOD = defineSetting({
  name: 'capacity.check.period',
  category: 'Alert',
  type: 'Integer',
  defaultValue: 300000,
  min: 1000,
  isDynamic: false,
  description: 'Milliseconds between capacity checks that raise threshold alerts.',
});

function threshold(name: string, description: string, scopes: ('cluster' | 'zone')[] = ['cluster']) {
  return defineSetting({
    name,
    category: 'Alert',
    type: 'Float',
    defaultValue: 0.75,
    min: 0,
    max: 1,
    scopes,
    description,
  });
}

export const CPU_THRESHOLD = threshold(
  'cluster.cpu.allocated.capacity.notificationthreshold',
  'Fraction of a cluster’s CPU allocated above which an alert is raised.',
);
export const MEMORY_THRESHOLD = threshold(
  'cluster.memory.allocated.capacity.notificationthreshold',
  'Fraction of a cluster’s memory allocated above which an alert is raised.',
);
export const STORAGE_USED_THRESHOLD = threshold(
  'cluster.storage.capacity.notificationthreshold',
  'Fraction of primary storage used above which an alert is raised.',
);
export const STORAGE_ALLOCATED_THRESHOLD = threshold(
  'cluster.storage.allocated.capacity.notificationthreshold',
  'Fraction of primary storage allocated (after over-provisioning) above which an alert is raised.',
);
export const LOCAL_STORAGE_THRESHOLD = threshold(
  'cluster.localStorage.capacity.notificationthreshold',
  'Fraction of host-local primary storage used above which an alert is raised.',
);
export const PRIVATE_IP_THRESHOLD = threshold(
  'pod.privateip.capacity.notificationthreshold',
  'Fraction of a pod’s management address range in use above which an alert is raised.',
  [],
);
export const SECONDARY_STORAGE_THRESHOLD = threshold(
  'zone.secstorage.capacity.notificationthreshold',
  'Fraction of a zone’s secondary storage used above which an alert is raised.',
  ['zone'],
);

/** Upstream's capacity type numbers and names (Capacity.CAPACITY_TYPE_*). */
export const CapacityType = {
  MEMORY: 0,
  CPU: 1,
  STORAGE: 2,
  STORAGE_ALLOCATED: 3,
  PRIVATE_IP: 5,
  SECONDARY_STORAGE: 6,
  LOCAL_STORAGE: 9,
  CPU_CORE: 19,
} as const;

const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(CapacityType).map(([name, n]) => [n, name]),
);

export type Level = 'zone' | 'pod' | 'cluster';

export interface CapacityFilter {
  zoneId?: number;
  podId?: number;
  clusterId?: number;
  tag?: string;
}

/** One aggregated figure; pod and cluster are set when the level (and the source) has them. */
export interface Capacity {
  type: number;
  zoneId: number;
  podId?: number;
  clusterId?: number;
  total: number;
  used: number;
}

/** Pool types where allocation may exceed size (thin provisioning). */
const THIN_POOL_TYPES = new Set(['NetworkFilesystem', 'Filesystem', 'SharedMountPoint']);

/**
 * Computes capacity figures at a level. Sources that sit above the level (a zone-wide pool when
 * grouping by cluster) are reported at the level they have, so nothing is silently dropped;
 * filtering by pod or cluster leaves out what is not in them.
 */
export async function computeCapacities(
  ctx: { app: Pick<App, 'store' | 'settings'> },
  level: Level,
  filter: CapacityFilter = {},
): Promise<Capacity[]> {
  const { app } = ctx;
  const db = app.store.db;
  const out = new Map<string, Capacity>();
  const add = (
    type: number,
    at: { zoneId: number; podId?: number | null; clusterId?: number | null },
    total: number,
    used: number,
  ) => {
    const podId = level === 'zone' ? undefined : (at.podId ?? undefined);
    const clusterId = level === 'cluster' ? (at.clusterId ?? undefined) : undefined;
    const key = `${type}:${at.zoneId}:${podId ?? ''}:${clusterId ?? ''}`;
    const c = out.get(key) ?? { type, zoneId: at.zoneId, podId, clusterId, total: 0, used: 0 };
    c.total += total;
    c.used += used;
    out.set(key, c);
  };
  const liveZones = new Set(
    (await db.selectFrom('zones').select('id').where('removed', 'is', null).execute()).map((z) => z.id),
  );

  if (!filter.tag) {
    for (const h of await clusterHostTotals(app, filter)) {
      const at = { zoneId: h.zone_id, podId: h.pod_id, clusterId: h.cluster_id };
      const cpuFactor = app.settings.at(CPU_OVERPROVISIONING, 'cluster', h.cluster_id);
      const memFactor = app.settings.at(MEM_OVERPROVISIONING, 'cluster', h.cluster_id);
      add(CapacityType.CPU, at, Math.round(h.cpu_mhz * cpuFactor), h.cpu_allocated_mhz);
      add(CapacityType.MEMORY, at, Math.round(h.memory_bytes * memFactor), h.memory_allocated_bytes);
      add(CapacityType.CPU_CORE, at, h.cores, 0);
    }
    // Cores in use are those of the virtual machines placed on hosts, as upstream counts them.
    let vms = db
      .selectFrom('vms')
      .select(['zone_id', 'pod_id', 'cluster_id'])
      .select((eb) => eb.fn.sum<number>('cpu_number').as('cores'))
      .where('removed', 'is', null)
      .where('host_id', 'is not', null)
      .where('cluster_id', 'is not', null)
      .where('state', 'in', ['Starting', 'Running', 'Stopping', 'Migrating']);
    if (filter.zoneId !== undefined) vms = vms.where('zone_id', '=', filter.zoneId);
    if (filter.podId !== undefined) vms = vms.where('pod_id', '=', filter.podId);
    if (filter.clusterId !== undefined) vms = vms.where('cluster_id', '=', filter.clusterId);
    for (const v of await vms.groupBy(['zone_id', 'pod_id', 'cluster_id']).execute())
      add(
        CapacityType.CPU_CORE,
        { zoneId: v.zone_id, podId: v.pod_id, clusterId: v.cluster_id },
        0,
        Number(v.cores),
      );
  }

  let pools = db
    .selectFrom('storage_pools')
    .selectAll()
    .where('removed', 'is', null)
    .where('state', '=', 'Up');
  if (filter.zoneId !== undefined) pools = pools.where('zone_id', '=', filter.zoneId);
  if (filter.podId !== undefined) pools = pools.where('pod_id', '=', filter.podId);
  if (filter.clusterId !== undefined) pools = pools.where('cluster_id', '=', filter.clusterId);
  for (const pool of await pools.execute()) {
    if (filter.tag && !(pool.tags ?? '').split(',').includes(filter.tag)) continue;
    const at = { zoneId: pool.zone_id, podId: pool.pod_id, clusterId: pool.cluster_id };
    const capacity = Number(pool.capacity_bytes);
    if (pool.scope === 'HOST') {
      add(CapacityType.LOCAL_STORAGE, at, capacity, Number(pool.used_bytes));
      continue;
    }
    const factor = THIN_POOL_TYPES.has(pool.pool_type)
      ? app.settings.at(STORAGE_OVERPROVISIONING, 'storagepool', pool.id)
      : 1;
    add(CapacityType.STORAGE, at, capacity, Number(pool.used_bytes));
    add(CapacityType.STORAGE_ALLOCATED, at, Math.round(capacity * factor), Number(pool.allocated_bytes));
  }

  if (filter.tag) return [...out.values()].filter((c) => liveZones.has(c.zoneId));

  if (filter.clusterId === undefined) {
    let pods = db
      .selectFrom('pods')
      .selectAll()
      .where('removed', 'is', null)
      .where('start_ip', 'is not', null);
    if (filter.zoneId !== undefined) pods = pods.where('zone_id', '=', filter.zoneId);
    if (filter.podId !== undefined) pods = pods.where('id', '=', filter.podId);
    for (const pod of await pods.execute()) {
      const size = ipv4ToInt(pod.end_ip as string) - ipv4ToInt(pod.start_ip as string) + 1;
      // Nothing takes addresses from pod ranges yet: there are no system VMs to give them to.
      add(CapacityType.PRIVATE_IP, { zoneId: pod.zone_id, podId: pod.id }, size, 0);
    }
  }

  if (filter.podId === undefined && filter.clusterId === undefined) {
    let stores = db
      .selectFrom('image_stores')
      .selectAll()
      .where('removed', 'is', null)
      .where('zone_id', 'is not', null);
    if (filter.zoneId !== undefined) stores = stores.where('zone_id', '=', filter.zoneId);
    for (const s of await stores.execute()) {
      if (s.capacity_bytes === null) continue;
      add(
        CapacityType.SECONDARY_STORAGE,
        { zoneId: s.zone_id as number },
        Number(s.capacity_bytes),
        Number(s.used_bytes ?? 0),
      );
    }
  }
  return [...out.values()].filter((c) => liveZones.has(c.zoneId));
}

/** As upstream: used / total as a percentage with two decimals. */
export function percentUsed(c: { total: number; used: number }): string {
  return c.total > 0 ? ((c.used / c.total) * 100).toFixed(2) : '0';
}

async function presentCapacities(ctx: Pick<CallContext, 'app'>, list: Capacity[]): Promise<object[]> {
  const db = ctx.app.store.db;
  const names = async (table: 'zones' | 'pods' | 'clusters', ids: (number | undefined)[]) => {
    const wanted = [...new Set(ids.filter((x): x is number => x !== undefined))];
    if (wanted.length === 0) return new Map<number, { uuid: string; name: string }>();
    const rows = await db
      .selectFrom(table)
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', wanted)
      .execute();
    return new Map(rows.map((r) => [r.id, r]));
  };
  const zones = await names(
    'zones',
    list.map((c) => c.zoneId),
  );
  const pods = await names(
    'pods',
    list.map((c) => c.podId),
  );
  const clusters = await names(
    'clusters',
    list.map((c) => c.clusterId),
  );
  return list.map((c) => ({
    type: c.type,
    name: TYPE_NAMES[c.type],
    zoneid: zones.get(c.zoneId)?.uuid,
    zonename: zones.get(c.zoneId)?.name,
    podid: c.podId === undefined ? undefined : pods.get(c.podId)?.uuid,
    podname: c.podId === undefined ? undefined : pods.get(c.podId)?.name,
    clusterid: c.clusterId === undefined ? undefined : clusters.get(c.clusterId)?.uuid,
    clustername: c.clusterId === undefined ? undefined : clusters.get(c.clusterId)?.name,
    capacitytotal: c.total,
    capacityused: c.used,
    capacityallocated: c.used,
    percentused: percentUsed(c),
  }));
}

function byType(a: Capacity, b: Capacity): number {
  return (
    a.zoneId - b.zoneId ||
    (a.podId ?? 0) - (b.podId ?? 0) ||
    (a.clusterId ?? 0) - (b.clusterId ?? 0) ||
    a.type - b.type
  );
}

/** The capacity[] of listZones/listPods/listClusters with showcapacities=true, by row id. */
export async function capacitiesFor(
  ctx: CallContext,
  level: Level,
  rows: (ZoneRow | PodRow | ClusterRow)[],
): Promise<Map<number, object[]>> {
  const out = new Map<number, object[]>();
  if (rows.length === 0) return out;
  const filter: CapacityFilter = rows.length === 1 ? { [`${level}Id`]: rows[0].id } : {};
  const all = (await computeCapacities(ctx, level, filter)).sort(byType);
  const presented = await presentCapacities(ctx, all);
  all.forEach((c, i) => {
    const id = level === 'zone' ? c.zoneId : level === 'pod' ? c.podId : c.clusterId;
    if (id === undefined) return;
    const list = out.get(id) ?? [];
    list.push(presented[i]);
    out.set(id, list);
  });
  return out;
}

export function zoneCapacities(ctx: CallContext, zones: ZoneRow[]): Promise<Map<number, object[]>> {
  return capacitiesFor(ctx, 'zone', zones);
}

/** The thresholds upstream shows in a cluster's resourcedetails. */
export function clusterThresholdDetails(ctx: CallContext, clusterId: number): Record<string, string> {
  const { settings } = ctx.app;
  const out: Record<string, string> = {};
  for (const def of [CPU_THRESHOLD, MEMORY_THRESHOLD, STORAGE_USED_THRESHOLD, STORAGE_ALLOCATED_THRESHOLD]) {
    if (settings.rawAt(def.name, 'cluster', clusterId) !== undefined)
      out[def.name] = String(settings.at(def, 'cluster', clusterId));
  }
  return out;
}

export const listCapacity = defineCommand({
  name: 'listCapacity',
  description:
    'Reports used and total capacity (memory, CPU, storage, addresses...) per zone, or per pod/cluster when one is given; computed live on each call.',
  params: {
    ...listParams,
    zoneid: p.uuid({ description: "Only this zone's capacity." }),
    podid: p.uuid({ description: "Report per pod: only this pod's capacity." }),
    clusterid: p.uuid({ description: "Report per cluster: only this cluster's capacity." }),
    type: p.integer({
      description:
        'Only one kind: 0 memory, 1 CPU, 2 storage used, 3 storage allocated, 5 private IPs, 6 secondary storage, 9 local storage, 19 CPU cores.',
    }),
    sortby: p.string({
      description: "Only 'usage' is accepted: highest percentage used first. By default ordered by type.",
    }),
    fetchlatest: p.boolean({
      description: 'Accepted for compatibility; capacity is always computed live, so it changes nothing.',
    }),
    tag: p.string({ description: 'Only primary storage capacity of pools carrying this storage tag.' }),
  },
  async handler(ctx, params) {
    const filter: CapacityFilter = {};
    if (params.zoneid) filter.zoneId = (await findZone(ctx, params.zoneid)).id;
    if (params.podid) filter.podId = (await findPod(ctx, params.podid)).id;
    if (params.clusterid) filter.clusterId = (await findCluster(ctx, params.clusterid)).id;
    if (params.tag) filter.tag = params.tag;
    if (params.sortby !== undefined && params.sortby !== 'usage')
      throw invalidParameter(`Invalid value for sortby: ${params.sortby}; only "usage" is supported`);
    const level: Level =
      filter.clusterId !== undefined ? 'cluster' : filter.podId !== undefined ? 'pod' : 'zone';
    let list = await computeCapacities(ctx, level, filter);
    if (params.type !== undefined) list = list.filter((c) => c.type === params.type);
    list.sort(
      params.sortby === 'usage'
        ? (a, b) => Number(percentUsed(b)) - Number(percentUsed(a)) || byType(a, b)
        : byType,
    );
    const page = pageOf(ctx.app, params);
    const slice = list.slice(page.offset, page.limit === undefined ? undefined : page.offset + page.limit);
    return listResult(await presentCapacities(ctx, slice), list.length);
  },
});

export const capacityCommands = [listCapacity];
