/**
 * The deployment planner: picks a host (and pod and cluster) with room for a VM, then a primary
 * storage pool for its disks, honouring states, tags and overprovisioning factors. Capacity is
 * reserved with conditional UPDATEs, so concurrent deploys can never overcommit a host or pool:
 * if another deploy took the room first, the update matches no row and the next candidate is tried.
 */
import { type SelectQueryBuilder, sql } from 'kysely';
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database, StoragePoolRow } from '../db/schema.ts';
import { insufficientCapacity } from '../errors.ts';
import { CPU_OVERPROVISIONING, MEM_OVERPROVISIONING, STORAGE_OVERPROVISIONING } from '../infra/capacity.ts';
import { defineSetting } from '../settings/settings.ts';

export const ALLOCATION_ALGORITHM = defineSetting({
  name: 'vm.allocation.algorithm',
  category: 'Advanced',
  type: 'String',
  defaultValue: 'random',
  options: ['random', 'firstfit', 'userdispersing', 'userconcentratedpodfirst', 'firstfitleastconsumed'],
  description: 'How the planner orders the hosts that have room for a VM.',
});

export const START_RETRY = defineSetting({
  name: 'start.retry',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 10,
  min: 1,
  description: 'Hosts tried, one after another, before a VM start fails.',
});

/** Candidates fetched per planning round: enough to survive races, few enough to stay fast. */
const CANDIDATES = 64;

export interface HostRequest {
  zoneId: number;
  podId?: number;
  clusterId?: number;
  hostId?: number;
  cpuMhz: number;
  memoryBytes: number;
  /** Every tag must be on the host. */
  hostTags: string[];
  hypervisor?: string;
  accountId: number;
  /** Hosts that already failed this start, or that affinity rules exclude. */
  avoid: Set<number>;
  /**
   * Bytes the VM's local-storage disks still need: set when its offerings want local storage, so
   * only hosts whose own (scope HOST) pool has that much room qualify.
   */
  localBytes?: number;
  /** Which dedicated hosts the VM may (or must) use; see compute/dedication.ts. */
  dedication?: DedicationRule;
}

/**
 * Explicit dedication at placement time. `only`: the VM is in an ExplicitDedication affinity group
 * and may run only on what those groups' dedications cover. Otherwise hosts covered by any
 * dedication are excluded, except those dedicated to `accountId` (or to a domain in `domainIds`),
 * which the owner's VMs use first (`prefer`).
 */
export interface DedicationRule {
  only?: number[];
  accountId: number;
  domainIds: number[];
}

export interface Placement {
  hostId: number;
  hostName: string;
  podId: number | null;
  clusterId: number | null;
  cpuMhz: number;
  memoryBytes: number;
}

interface Candidate {
  id: number;
  name: string;
  pod_id: number | null;
  cluster_id: number | null;
  cpu_total: number;
  memory_total: number;
  cpu_allocated_mhz: number;
  memory_allocated_bytes: number;
}

function eligibleHosts(
  ctx: Pick<CallContext, 'app'>,
  req: HostRequest,
  onlyOwn = false,
): SelectQueryBuilder<Database, 'hosts' | 'clusters' | 'pods', Candidate> {
  let q = ctx.app.store.db
    .selectFrom('hosts')
    .innerJoin('clusters', 'clusters.id', 'hosts.cluster_id')
    .innerJoin('pods', 'pods.id', 'hosts.pod_id')
    .select([
      'hosts.id',
      'hosts.name',
      'hosts.pod_id',
      'hosts.cluster_id',
      sql<number>`hosts.cpu_cores * hosts.cpu_speed_mhz`.as('cpu_total'),
      sql<number>`hosts.memory_bytes`.as('memory_total'),
      'hosts.cpu_allocated_mhz',
      'hosts.memory_allocated_bytes',
    ])
    .where('hosts.zone_id', '=', req.zoneId)
    .where('hosts.removed', 'is', null)
    .where('hosts.type', '=', 'Routing')
    .where('hosts.state', '=', 'Up')
    .where('hosts.resource_state', '=', 'Enabled')
    .where('clusters.allocation_state', '=', 'Enabled')
    .where('pods.allocation_state', '=', 'Enabled') as unknown as SelectQueryBuilder<
    Database,
    'hosts' | 'clusters' | 'pods',
    Candidate
  >;
  if (req.podId !== undefined) q = q.where('hosts.pod_id', '=', req.podId);
  if (req.clusterId !== undefined) q = q.where('hosts.cluster_id', '=', req.clusterId);
  if (req.hostId !== undefined) q = q.where('hosts.id', '=', req.hostId);
  if (req.hypervisor) q = q.where('hosts.hypervisor', '=', req.hypervisor);
  for (const tag of req.hostTags) {
    q = q.where('hosts.id', 'in', (eb) =>
      eb.selectFrom('host_tags').select('host_id').where('tag', '=', tag),
    );
  }
  if (req.avoid.size > 0) q = q.where('hosts.id', 'not in', [...req.avoid]);
  if (req.localBytes !== undefined) {
    // The exact per-pool check (overprovisioning, races) is reservePool's; a host whose pool
    // turns out full fails that start and the next host is tried.
    // Local disks are not overprovisioned (as upstream: the factor is for shared pools).
    q = q.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('storage_pools as lp')
          .select('lp.id')
          .whereRef('lp.host_id', '=', 'hosts.id')
          .where('lp.scope', '=', 'HOST')
          .where('lp.state', '=', 'Up')
          .where('lp.removed', 'is', null)
          .where(sql<boolean>`lp.allocated_bytes + ${req.localBytes} <= lp.capacity_bytes`),
      ),
    );
  }
  if (req.dedication) q = withDedication(q, req.dedication, onlyOwn);
  return q;
}

/** Dedications covering a host: of the host itself, or of its cluster, pod or zone. */
const coveringHost = sql<boolean>`(d.host_id = hosts.id or d.cluster_id = hosts.cluster_id or d.pod_id = hosts.pod_id or d.zone_id = hosts.zone_id)`;

function withDedication<Q extends SelectQueryBuilder<Database, 'hosts' | 'clusters' | 'pods', Candidate>>(
  q: Q,
  rule: DedicationRule,
  onlyOwn: boolean,
): Q {
  if (rule.only) {
    const groups = rule.only.length ? rule.only : [0];
    return q.where(
      sql<boolean>`exists (select 1 from dedicated_resources d where ${coveringHost} and d.affinity_group_id in (${sql.join(groups)}))`,
    ) as Q;
  }
  const domains = rule.domainIds.length ? rule.domainIds : [0];
  // coalesce: a domain dedication's NULL account must not make `not own` unknown (and so true).
  const own = sql<boolean>`(coalesce(d.account_id, 0) = ${rule.accountId} or (d.account_id is null and d.domain_id in (${sql.join(domains)})))`;
  if (onlyOwn)
    return q.where(
      sql<boolean>`exists (select 1 from dedicated_resources d where ${coveringHost} and ${own})`,
    ) as Q;
  return q.where(
    sql<boolean>`not exists (select 1 from dedicated_resources d where ${coveringHost} and not ${own})`,
  ) as Q;
}

/** Orders candidates as the configured algorithm wants; the SQL does the cheap part. */
function ordered(
  ctx: Pick<CallContext, 'app'>,
  q: SelectQueryBuilder<Database, 'hosts' | 'clusters' | 'pods', Candidate>,
  req: HostRequest,
) {
  const algorithm: string = ctx.app.settings.get(ALLOCATION_ALGORITHM);
  // Pre-filter on raw capacity (factor 1 would be too strict where clusters overprovision,
  // so use the largest factor in force; the exact per-cluster check follows in code).
  const maxCpuFactor = Math.max(
    ctx.app.settings.get(CPU_OVERPROVISIONING),
    ...clusterFactors(ctx, CPU_OVERPROVISIONING),
  );
  const maxMemFactor = Math.max(
    ctx.app.settings.get(MEM_OVERPROVISIONING),
    ...clusterFactors(ctx, MEM_OVERPROVISIONING),
  );
  let f = q
    .where(
      sql<boolean>`hosts.cpu_allocated_mhz + ${req.cpuMhz} <= hosts.cpu_cores * hosts.cpu_speed_mhz * ${maxCpuFactor}`,
    )
    .where(
      sql<boolean>`hosts.memory_allocated_bytes + ${req.memoryBytes} <= hosts.memory_bytes * ${maxMemFactor}`,
    );
  const vmsOfAccountOn = (column: 'host_id' | 'pod_id') =>
    sql<number>`(select count(*) from vms where vms.${sql.ref(column)} = hosts.${sql.ref(column)} and vms.account_id = ${req.accountId} and vms.removed is null)`;
  switch (algorithm) {
    case 'firstfit':
      f = f.orderBy('hosts.id');
      break;
    case 'firstfitleastconsumed':
      f = f
        .orderBy(sql`(hosts.cpu_allocated_mhz * 1.0) / (hosts.cpu_cores * hosts.cpu_speed_mhz)`)
        .orderBy('hosts.id');
      break;
    case 'userdispersing':
      f = f.orderBy(vmsOfAccountOn('host_id')).orderBy('hosts.id');
      break;
    case 'userconcentratedpodfirst':
      f = f.orderBy(vmsOfAccountOn('pod_id'), 'desc').orderBy('hosts.id');
      break;
    default:
      // `random`: candidates are taken in id order from a random starting host (see candidates()),
      // which spreads VMs like ORDER BY random() without sorting the whole zone per decision.
      f = f.orderBy('hosts.id');
  }
  return f.limit(CANDIDATES);
}

/** The hosts to try, in the order the allocation algorithm wants. */
async function candidates(
  ctx: Pick<CallContext, 'app'>,
  req: HostRequest,
  onlyOwn = false,
): Promise<Candidate[]> {
  if (ctx.app.settings.get(ALLOCATION_ALGORITHM) !== 'random')
    return ordered(ctx, eligibleHosts(ctx, req, onlyOwn), req).execute();
  const top = await ctx.app.store.db
    .selectFrom('hosts')
    .select((eb) => eb.fn.max('id').as('id'))
    .where('zone_id', '=', req.zoneId)
    .where('removed', 'is', null)
    .executeTakeFirst();
  const start = Math.floor(Math.random() * (Number(top?.id ?? 0) + 1));
  const after = await ordered(
    ctx,
    eligibleHosts(ctx, req, onlyOwn).where('hosts.id', '>=', start),
    req,
  ).execute();
  if (after.length >= CANDIDATES) return after;
  // Wrap around, so a random start never hides the hosts below it.
  const before = await ordered(ctx, eligibleHosts(ctx, req, onlyOwn).where('hosts.id', '<', start), req)
    .limit(CANDIDATES - after.length)
    .execute();
  return [...after, ...before];
}

const factorCache = new WeakMap<object, { at: number; cpu: number[]; mem: number[] }>();

/** Factors set on clusters (few; read from the settings cache, not the database). */
function clusterFactors(ctx: Pick<CallContext, 'app'>, def: typeof CPU_OVERPROVISIONING): number[] {
  const hit = factorCache.get(ctx.app.settings);
  const now = Date.now();
  if (!hit || now - hit.at > 1000) {
    factorCache.set(ctx.app.settings, {
      at: now,
      cpu: ctx.app.settings.scopedValues(CPU_OVERPROVISIONING.name).map(Number),
      mem: ctx.app.settings.scopedValues(MEM_OVERPROVISIONING.name).map(Number),
    });
  }
  const entry = factorCache.get(ctx.app.settings)!;
  return def === CPU_OVERPROVISIONING ? entry.cpu : entry.mem;
}

/** The over-provisioning factors of a candidate's cluster (the global ones without a cluster). */
function factorsOf(ctx: Pick<CallContext, 'app'>, c: Candidate): { cpuFactor: number; memFactor: number } {
  const { settings } = ctx.app;
  return c.cluster_id === null
    ? { cpuFactor: settings.get(CPU_OVERPROVISIONING), memFactor: settings.get(MEM_OVERPROVISIONING) }
    : {
        cpuFactor: settings.at(CPU_OVERPROVISIONING, 'cluster', c.cluster_id),
        memFactor: settings.at(MEM_OVERPROVISIONING, 'cluster', c.cluster_id),
      };
}

/** Adds a VM's CPU and memory to a host if it still fits; false when another deploy got there first. */
async function reserveOnHost(
  ctx: Pick<CallContext, 'app'>,
  c: Candidate,
  req: HostRequest,
): Promise<boolean> {
  const { store } = ctx.app;
  const { cpuFactor, memFactor } = factorsOf(ctx, c);
  const r = await store.db
    .updateTable('hosts')
    .set((eb) => ({
      cpu_allocated_mhz: eb('cpu_allocated_mhz', '+', req.cpuMhz),
      memory_allocated_bytes: eb('memory_allocated_bytes', '+', req.memoryBytes),
    }))
    .where('id', '=', c.id)
    .where('state', '=', 'Up')
    .where('resource_state', '=', 'Enabled')
    .where(sql<boolean>`cpu_allocated_mhz + ${req.cpuMhz} <= cpu_cores * cpu_speed_mhz * ${cpuFactor}`)
    .where(sql<boolean>`memory_allocated_bytes + ${req.memoryBytes} <= memory_bytes * ${memFactor}`)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

function placementOf(c: Candidate, req: HostRequest): Placement {
  return {
    hostId: c.id,
    hostName: c.name,
    podId: c.pod_id,
    clusterId: c.cluster_id,
    cpuMhz: req.cpuMhz,
    memoryBytes: req.memoryBytes,
  };
}

/**
 * Whether the request could be placed now on the one host it names (`req.hostId`), by the same
 * rules and capacity check as reserveHost, without reserving anything (findHostsForMigration).
 */
export async function mayPlace(ctx: Pick<CallContext, 'app'>, req: HostRequest): Promise<boolean> {
  return (await candidates(ctx, req)).some((c) => {
    const { cpuFactor, memFactor } = factorsOf(ctx, c);
    return (
      Number(c.cpu_allocated_mhz) + req.cpuMhz <= Number(c.cpu_total) * cpuFactor &&
      Number(c.memory_allocated_bytes) + req.memoryBytes <= Number(c.memory_total) * memFactor
    );
  });
}

/**
 * Chooses a host with room and reserves the VM's CPU and memory on it. Throws 533 saying what was
 * short when no host fits.
 */
export async function reserveHost(ctx: Pick<CallContext, 'app'>, req: HostRequest): Promise<Placement> {
  // The owner's VMs fill the hosts dedicated to them before shared ones.
  if (req.dedication && !req.dedication.only) {
    for (const c of await candidates(ctx, req, true)) {
      if (await reserveOnHost(ctx, c, req)) return placementOf(c, req);
    }
  }
  for (let round = 0; round < 3; round++) {
    const found = await candidates(ctx, req);
    for (const c of found) {
      if (await reserveOnHost(ctx, c, req)) return placementOf(c, req);
    }
    if (found.length < CANDIDATES) break;
  }
  throw insufficientCapacity(await shortage(ctx, req));
}

/** Explains a failed plan: no usable host at all, or which resource ran out. */
async function shortage(ctx: Pick<CallContext, 'app'>, req: HostRequest): Promise<string> {
  const hosts = await eligibleHosts(ctx, req).execute();
  if (hosts.length === 0) {
    const scope =
      req.hostId !== undefined
        ? 'the requested host'
        : req.clusterId !== undefined
          ? 'the cluster'
          : req.podId !== undefined
            ? 'the pod'
            : 'the zone';
    return `Unable to create a deployment for the VM: no host in ${scope} is Up, Enabled${req.hostTags.length ? `, tagged ${req.hostTags.join(',')}` : ''}${req.hypervisor ? ` and of hypervisor ${req.hypervisor}` : ''}${req.localBytes !== undefined ? `, with ${Math.ceil(req.localBytes / 2 ** 30)} GiB free on its local storage` : ''}${req.dedication?.only ? ", dedicated to the VM's ExplicitDedication affinity group" : req.dedication ? ' and not dedicated to another account or domain' : ''}${req.avoid.size ? ` (${req.avoid.size} host(s) already failed this start)` : ''}`;
  }
  const cpuFree = Math.max(
    ...hosts.map((h) => h.cpu_total * ctx.app.settings.get(CPU_OVERPROVISIONING) - h.cpu_allocated_mhz),
  );
  const memFree = Math.max(
    ...hosts.map(
      (h) => h.memory_total * ctx.app.settings.get(MEM_OVERPROVISIONING) - h.memory_allocated_bytes,
    ),
  );
  const short: string[] = [];
  if (cpuFree < req.cpuMhz)
    short.push(
      `CPU (needs ${req.cpuMhz} MHz, the most free on a host is ${Math.max(0, Math.floor(cpuFree))} MHz)`,
    );
  if (memFree < req.memoryBytes) {
    short.push(
      `memory (needs ${req.memoryBytes / 2 ** 20} MiB, the most free on a host is ${Math.max(0, Math.floor(memFree / 2 ** 20))} MiB)`,
    );
  }
  return `Unable to create a deployment for the VM: insufficient ${short.length ? short.join(' and ') : 'CPU and memory on any single host'} among ${hosts.length} host(s)`;
}

export async function releaseHost(
  tx: Tx,
  hostId: number,
  cpuMhz: number,
  memoryBytes: number,
): Promise<void> {
  await tx
    .updateTable('hosts')
    .set((eb) => ({
      cpu_allocated_mhz: sql`case when ${eb.ref('cpu_allocated_mhz')} > ${cpuMhz} then ${eb.ref('cpu_allocated_mhz')} - ${cpuMhz} else 0 end`,
      memory_allocated_bytes: sql`case when ${eb.ref('memory_allocated_bytes')} > ${memoryBytes} then ${eb.ref('memory_allocated_bytes')} - ${memoryBytes} else 0 end`,
    }))
    .where('id', '=', hostId)
    .execute();
}

export interface PoolRequest {
  zoneId: number;
  clusterId: number | null;
  sizeBytes: number;
  /** Every tag must be on the pool. */
  tags: string[];
  /** The disk's offering wants local storage: only the pool of `hostId` (scope HOST) will do. */
  local?: boolean;
  hostId?: number;
}

function tagsOf(pool: Pick<StoragePoolRow, 'tags'>): string[] {
  return (pool.tags ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
}

/**
 * Chooses a primary storage pool reachable from the cluster (cluster-scoped there, or zone-wide)
 * and reserves `sizeBytes` of it. Throws 533 when none has room.
 */
export async function reservePool(ctx: Pick<CallContext, 'app'>, req: PoolRequest): Promise<StoragePoolRow> {
  const { store, settings } = ctx.app;
  let q = store.db
    .selectFrom('storage_pools')
    .selectAll()
    .where('zone_id', '=', req.zoneId)
    .where('removed', 'is', null)
    .where('state', '=', 'Up');
  if (req.local) {
    if (req.hostId === undefined) throw insufficientCapacity('A volume on local storage needs a host');
    q = q.where('scope', '=', 'HOST').where('host_id', '=', req.hostId);
  } else {
    // Shared offerings never land on a host's local pool.
    q = q.where('scope', '!=', 'HOST');
    q =
      req.clusterId === null
        ? q.where('scope', '=', 'ZONE')
        : q.where((eb) => eb.or([eb('scope', '=', 'ZONE'), eb('cluster_id', '=', req.clusterId)]));
    // Not a pool that an Up host of the cluster found unreachable at its last check (storage/pool-monitor.ts).
    if (req.clusterId !== null) {
      const clusterId = req.clusterId;
      q = q.where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('storage_pool_hosts as r')
              .innerJoin('hosts as h', 'h.id', 'r.host_id')
              .select('r.id')
              .whereRef('r.pool_id', '=', 'storage_pools.id')
              .where('r.reachable', '=', 0)
              .where('h.cluster_id', '=', clusterId)
              .where('h.state', '=', 'Up')
              .where('h.removed', 'is', null),
          ),
        ),
      );
    }
  }
  const pools = (await q.orderBy('id').execute()).filter((p) => req.tags.every((t) => tagsOf(p).includes(t)));
  for (const pool of pools.sort(
    (a, b) =>
      Number(a.allocated_bytes) / Number(a.capacity_bytes || 1) -
      Number(b.allocated_bytes) / Number(b.capacity_bytes || 1),
  )) {
    const factor = pool.scope === 'HOST' ? 1 : settings.at(STORAGE_OVERPROVISIONING, 'storagepool', pool.id);
    const r = await store.db
      .updateTable('storage_pools')
      .set((eb) => ({ allocated_bytes: eb('allocated_bytes', '+', req.sizeBytes) }))
      .where('id', '=', pool.id)
      .where('state', '=', 'Up')
      .where(sql<boolean>`allocated_bytes + ${req.sizeBytes} <= capacity_bytes * ${factor}`)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 1) return pool;
  }
  throw insufficientCapacity(
    pools.length === 0
      ? `Unable to find a ${req.local ? 'local ' : ''}primary storage pool that is Up${req.tags.length ? ` and tagged ${req.tags.join(',')}` : ''}${req.local ? '' : ' and reached by the hosts of the cluster'} for the volume${req.local ? ' on the host' : ''}`
      : `Insufficient primary storage: no pool has ${Math.ceil(req.sizeBytes / 2 ** 30)} GiB free to allocate`,
  );
}

export async function releasePool(tx: Tx, poolId: number, sizeBytes: number): Promise<void> {
  await tx
    .updateTable('storage_pools')
    .set((eb) => ({
      allocated_bytes: sql`case when ${eb.ref('allocated_bytes')} > ${sizeBytes} then ${eb.ref('allocated_bytes')} - ${sizeBytes} else 0 end`,
    }))
    .where('id', '=', poolId)
    .execute();
}
