/**
 * The list*Metrics commands of upstream's metrics plugin: each is its plain list (same parameters,
 * same access rules, same objects) with the figures the UI's metrics views show added to every
 * object — capacity, allocation and measured use as upstream formats them ("2.40 Ghz", "1.50 GB",
 * "12.50%"), and whether the notification and disable thresholds are exceeded. Per-host figures
 * come from host-figures.ts, the exporter's source; measured use from the agents' statistics.
 */

import { listVirtualMachines } from '../compute/vm-commands.ts';
import type { App, CallContext } from '../context.ts';
import {
  CPU_THRESHOLD,
  MEMORY_THRESHOLD,
  STORAGE_ALLOCATED_THRESHOLD,
  STORAGE_USED_THRESHOLD,
} from '../infra/capacity.ts';
import { listClusters } from '../infra/clusters.ts';
import { listHosts } from '../infra/hosts.ts';
import { listStoragePools } from '../infra/storage-pools.ts';
import { listZones } from '../infra/zones.ts';
import { type Command, defineCommand, type ListResult } from '../registry/command.ts';
import type { ParamSpec } from '../registry/params.ts';
import { defineSetting, type SettingDef } from '../settings/settings.ts';
import { listVolumes } from '../storage/volumes.ts';
import { type HostFigure, hostFigures } from './host-figures.ts';
import { HOST_STATS_INTERVAL, statsOf } from './host-stats.ts';

function disableThreshold(name: string, scope: 'cluster' | 'zone', description: string) {
  return defineSetting({
    name,
    category: 'Alert',
    type: 'Float',
    defaultValue: 0.85,
    min: 0,
    max: 1,
    scopes: [scope],
    description,
  });
}

export const CPU_DISABLE_THRESHOLD = disableThreshold(
  'cluster.cpu.allocated.capacity.disablethreshold',
  'cluster',
  'Fraction of a cluster’s CPU above which the metrics views flag it as past its disable threshold.',
);
export const MEMORY_DISABLE_THRESHOLD = disableThreshold(
  'cluster.memory.allocated.capacity.disablethreshold',
  'cluster',
  'Fraction of a cluster’s memory above which the metrics views flag it as past its disable threshold.',
);
export const STORAGE_USED_DISABLE_THRESHOLD = disableThreshold(
  'pool.storage.capacity.disablethreshold',
  'zone',
  'Fraction of a primary pool used above which the metrics views flag it as past its disable threshold.',
);
export const STORAGE_ALLOCATED_DISABLE_THRESHOLD = disableThreshold(
  'pool.storage.allocated.capacity.disablethreshold',
  'zone',
  'Fraction of a primary pool allocated above which the metrics views flag it as past its disable threshold.',
);

const GIB = 1024 * 1024 * 1024;
const fixed = (v: number, digits = 2) => v.toFixed(digits);
const ghz = (mhz: number) => `${fixed(mhz / 1000)} Ghz`;
const gb = (bytes: number) => `${fixed(bytes / GIB)} GB`;
const pct = (v: number) => `${fixed(v)}%`;
/** Upstream's DecimalFormat("#.##") + "%" for a measured CPU utilisation. */
const usedPct = (v: number) => `${Number(v.toFixed(2))}%`;

type Item = Record<string, unknown>;

/** A metrics command: the plain command's parameters and objects, each object given `extra`. */
function metricsOf<S extends Record<string, ParamSpec>>(
  base: Command<S>,
  name: string,
  description: string,
  extra: (ctx: CallContext, items: Item[]) => Promise<void>,
) {
  return defineCommand({
    name,
    description,
    params: base.params,
    async handler(ctx, params) {
      const result = (await base.handler(ctx, params)) as ListResult;
      await extra(ctx, result.items as Item[]);
      return result;
    },
  });
}

async function idsByUuid(
  app: App,
  table: 'hosts' | 'vms' | 'zones' | 'clusters',
  items: Item[],
): Promise<Map<string, number>> {
  const uuids = items.map((i) => String(i.id));
  if (uuids.length === 0) return new Map();
  const rows = await app.store.db
    .selectFrom(table)
    .select(['id', 'uuid'])
    .where('uuid', 'in', uuids)
    .execute();
  return new Map(rows.map((r) => [r.uuid, r.id]));
}

/** Fields every host, cluster and zone metrics object shares, from a set of hosts' figures. */
function summary(app: App, hosts: HostFigure[], clusterId: number | null) {
  const at = <T>(def: SettingDef<T>) =>
    clusterId === null ? app.settings.get(def) : app.settings.at(def, 'cluster', clusterId);
  const cpuTotal = hosts.reduce((a, h) => a + h.cpuMhz * h.cpuFactor, 0);
  const cpuAllocated = hosts.reduce((a, h) => a + h.cpuAllocatedMhz, 0);
  const memTotal = hosts.reduce((a, h) => a + h.memoryBytes * h.memFactor, 0);
  const memAllocated = hosts.reduce((a, h) => a + h.memoryAllocatedBytes, 0);
  const measured = hosts.filter((h) => h.stats);
  const cpuUsedSum = measured.reduce((a, h) => a + h.stats!.cpuUtilization, 0);
  const memUsed = measured.reduce((a, h) => a + h.stats!.memoryUsedBytes, 0);
  const out: Item = { cputotal: ghz(cpuTotal), memorytotal: gb(memTotal) };
  if (cpuTotal > 0) {
    out.cpuallocated = pct((cpuAllocated * 100) / cpuTotal);
    out.cpuallocatedthreshold = cpuAllocated / cpuTotal > at(CPU_THRESHOLD);
    out.cpuallocateddisablethreshold = cpuAllocated / cpuTotal > at(CPU_DISABLE_THRESHOLD);
  }
  if (memTotal > 0) {
    out.memoryallocated = pct((memAllocated * 100) / memTotal);
    out.memoryallocatedthreshold = memAllocated / memTotal > at(MEMORY_THRESHOLD);
    out.memoryallocateddisablethreshold = memAllocated / memTotal > at(MEMORY_DISABLE_THRESHOLD);
  }
  if (measured.length > 0) {
    const avgCpu = cpuUsedSum / measured.length;
    const maxCpu = Math.max(...measured.map((h) => h.stats!.cpuUtilization));
    out.cpuused = pct(avgCpu);
    out.cpumaxdeviation = pct(avgCpu > 0 ? (maxCpu - avgCpu) / avgCpu : 0);
    out.cputhreshold = avgCpu / 100 > at(CPU_THRESHOLD);
    out.cpudisablethreshold = avgCpu / 100 > at(CPU_DISABLE_THRESHOLD);
    const measuredMem = measured.reduce((a, h) => a + h.memoryBytes * h.memFactor, 0);
    if (measuredMem > 0) {
      const avgMem = memUsed / measured.length;
      const maxMem = Math.max(...measured.map((h) => h.stats!.memoryUsedBytes));
      out.memoryused = pct((memUsed * 100) / measuredMem);
      out.memorymaxdeviation = pct(avgMem > 0 ? ((maxMem - avgMem) * 100) / avgMem : 0);
      out.memorythreshold = memUsed / measuredMem > at(MEMORY_THRESHOLD);
      out.memorydisablethreshold = memUsed / measuredMem > at(MEMORY_DISABLE_THRESHOLD);
    }
  }
  return out;
}

export const listHostsMetrics = metricsOf(
  listHosts,
  'listHostsMetrics',
  'Lists hosts as listHosts does, each with its CPU and memory in GHz/GB (total, allocated, measured in use), its instances, network traffic and threshold flags.',
  async (ctx, items) => {
    const ids = await idsByUuid(ctx.app, 'hosts', items);
    const figures = new Map((await hostFigures(ctx.app, [...ids.values()])).map((h) => [h.id, h]));
    const intervalSecs = ctx.app.settings.get(HOST_STATS_INTERVAL) / 1000;
    for (const item of items) {
      const h = figures.get(ids.get(String(item.id)) ?? -1);
      if (!h) continue;
      const s = summary(ctx.app, [h], h.clusterId);
      Object.assign(item, {
        powerstate: 'Disabled',
        instances: `${h.vmsRunning} / ${h.vmsTotal}`,
        cputotalghz: ghz(h.cpuMhz * h.cpuFactor),
        cpuallocatedghz: ghz(h.cpuAllocatedMhz),
        memorytotalgb: gb(h.memoryBytes * h.memFactor),
        memoryallocatedgb: gb(h.memoryAllocatedBytes),
        cpuallocatedthreshold: s.cpuallocatedthreshold,
        cpuallocateddisablethreshold: s.cpuallocateddisablethreshold,
        memoryallocatedthreshold: s.memoryallocatedthreshold,
        memoryallocateddisablethreshold: s.memoryallocateddisablethreshold,
      });
      if (h.stats) {
        const netRead = Math.round(h.stats.networkReadKbs * intervalSecs);
        const netWrite = Math.round(h.stats.networkWriteKbs * intervalSecs);
        Object.assign(item, {
          cpuused: usedPct(h.stats.cpuUtilization),
          cpuusedghz: ghz((h.stats.cpuUtilization * h.cpuMhz) / 100),
          memoryused: h.stats.memoryUsedBytes,
          memoryusedgb: gb(h.stats.memoryUsedBytes),
          networkkbsread: netRead,
          networkkbswrite: netWrite,
          networkread: `${fixed(netRead / (1024 * 1024))} GB`,
          networkwrite: `${fixed(netWrite / (1024 * 1024))} GB`,
          cputhreshold: s.cputhreshold,
          cpudisablethreshold: s.cpudisablethreshold,
          memorythreshold: s.memorythreshold,
          memorydisablethreshold: s.memorydisablethreshold,
        });
      }
    }
  },
);

export const listClustersMetrics = metricsOf(
  listClusters,
  'listClustersMetrics',
  'Lists clusters as listClusters does, each with its hosts up, CPU and memory totals, allocation and measured use across its hosts, and threshold flags.',
  async (ctx, items) => {
    const ids = await idsByUuid(ctx.app, 'clusters', items);
    const hosts = await hostsWhere(ctx.app, 'cluster_id', [...ids.values()]);
    for (const item of items) {
      const id = ids.get(String(item.id));
      if (id === undefined) continue;
      const mine = hosts.filter((h) => h.clusterId === id);
      Object.assign(item, {
        state: item.allocationstate,
        hosts: `${mine.filter((h) => h.state === 'Up').length} / ${mine.length}`,
        ...summary(ctx.app, mine, id),
      });
    }
  },
);

export const listZonesMetrics = metricsOf(
  listZones,
  'listZonesMetrics',
  'Lists zones as listZones does, each with its enabled clusters, CPU and memory totals, allocation and measured use across its hosts, and threshold flags.',
  async (ctx, items) => {
    const ids = await idsByUuid(ctx.app, 'zones', items);
    const zoneIds = [...ids.values()];
    const [hosts, clusters] = await Promise.all([
      hostsWhere(ctx.app, 'zone_id', zoneIds),
      zoneIds.length
        ? ctx.app.store.db
            .selectFrom('clusters')
            .select(['zone_id', 'allocation_state'])
            .where('zone_id', 'in', zoneIds)
            .where('removed', 'is', null)
            .execute()
        : [],
    ]);
    for (const item of items) {
      const id = ids.get(String(item.id));
      if (id === undefined) continue;
      const mine = clusters.filter((c) => c.zone_id === id);
      Object.assign(item, {
        state: item.allocationstate,
        clusters: `${mine.filter((c) => c.allocation_state === 'Enabled').length} / ${mine.length}`,
        ...summary(
          ctx.app,
          hosts.filter((h) => h.zoneId === id),
          null,
        ),
      });
    }
  },
);

async function hostsWhere(app: App, column: 'cluster_id' | 'zone_id', ids: number[]): Promise<HostFigure[]> {
  if (ids.length === 0) return [];
  const rows = await app.store.db
    .selectFrom('hosts')
    .select('id')
    .where(column, 'in', ids)
    .where('removed', 'is', null)
    .execute();
  return hostFigures(
    app,
    rows.map((r) => r.id),
  );
}

export const listStoragePoolsMetrics = metricsOf(
  listStoragePools,
  'listStoragePoolsMetrics',
  'Lists primary storage pools as listStoragePools does, each with its size, use and allocation in GB and threshold flags.',
  async (ctx, items) => {
    const zones = await idsByUuid(
      ctx.app,
      'zones',
      items.map((i) => ({ id: i.zoneid })),
    );
    for (const item of items) {
      const total = Number(item.disksizetotal ?? 0);
      const used = Number(item.disksizeused ?? 0);
      const allocated = Number(item.disksizeallocated ?? 0);
      const factor = String(item.overprovisionfactor ?? '1.0');
      const zoneId = zones.get(String(item.zoneid));
      const disable = <T>(def: SettingDef<T>) =>
        zoneId === undefined ? ctx.app.settings.get(def) : ctx.app.settings.at(def, 'zone', zoneId);
      const capacity = total * Number(factor);
      Object.assign(item, {
        disksizeusedgb: gb(used),
        disksizetotalgb: `${gb(total)} (x${factor})`,
        disksizeallocatedgb: gb(allocated),
        disksizeunallocatedgb: gb(capacity - allocated),
        storageusagethreshold: used > capacity * ctx.app.settings.get(STORAGE_USED_THRESHOLD),
        storageusagedisablethreshold: used > capacity * Number(disable(STORAGE_USED_DISABLE_THRESHOLD)),
        storageallocatedthreshold: allocated > capacity * ctx.app.settings.get(STORAGE_ALLOCATED_THRESHOLD),
        storageallocateddisablethreshold:
          allocated > capacity * Number(disable(STORAGE_ALLOCATED_DISABLE_THRESHOLD)),
      });
    }
  },
);

export const listVolumesMetrics = metricsOf(
  listVolumes,
  'listVolumesMetrics',
  'Lists volumes as listVolumes does, each with its size in GB.',
  async (_ctx, items) => {
    for (const item of items) if (item.size !== undefined) item.sizegb = gb(Number(item.size));
  },
);

export const listVirtualMachinesMetrics = metricsOf(
  listVirtualMachines,
  'listVirtualMachinesMetrics',
  'Lists instances as listVirtualMachines does, each with its CPU in GHz and memory in GiB and, while it runs, the CPU, network and disk use its host measured.',
  async (ctx, items) => {
    const ids = await idsByUuid(ctx.app, 'vms', items);
    const stats = statsOf(ctx.app);
    for (const item of items) {
      const cpus = Number(item.cpunumber ?? 0);
      const speed = Number(item.cpuspeed ?? 0);
      item.cputotal = `${fixed((cpus * speed) / 1000, 1)} Ghz`;
      item.memorytotal = `${fixed(Number(item.memory ?? 0) / 1024)} GiB`;
      const s = stats.vm(ids.get(String(item.id)) ?? -1);
      if (!s) continue;
      const diskReadKb = Math.round(s.diskReadBytes / 1024);
      const diskWriteKb = Math.round(s.diskWriteBytes / 1024);
      Object.assign(item, {
        cpuused: usedPct(s.cpuUtilization),
        memorykbs: Math.round(s.memoryBytes / 1024),
        networkkbsread: s.networkReadKb,
        networkkbswrite: s.networkWriteKb,
        diskkbsread: diskReadKb,
        diskkbswrite: diskWriteKb,
        networkread: `${fixed(s.networkReadKb / 1024)} MiB`,
        networkwrite: `${fixed(s.networkWriteKb / 1024)} MiB`,
        diskread: `${fixed(diskReadKb / 1024)} MiB`,
        diskwrite: `${fixed(diskWriteKb / 1024)} MiB`,
      });
    }
  },
);

export const metricsCommands = [
  listVirtualMachinesMetrics,
  listHostsMetrics,
  listClustersMetrics,
  listZonesMetrics,
  listStoragePoolsMetrics,
  listVolumesMetrics,
];
