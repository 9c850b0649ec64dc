/**
 * What the hosts see of their primary storage, as upstream's StatsCollector (pool capacity) and
 * its host-to-pool connections (storage_pool_host_ref) give it. Every `storage.stats.interval` ms
 * each management server asks each host whose agent it holds `getPoolStats` for every pool the
 * host uses (its cluster's, the zone-wide ones of its hypervisor, its own local pool):
 *
 * - the answer is the backend's own figure (statfs of a directory, FSSTAT of an NFS export, the
 *   Ceph pool's stats...), so a pool's `disksizetotal` and `disksizeused` (and listCapacity's
 *   storage figures) are measured, not computed from the volume records; a size the operator
 *   gave (capacitybytes) is kept, only what is used is refreshed;
 * - a host whose answer is a failure does not reach the pool: that is kept (storage_pool_hosts),
 *   an ALERT.STORAGE.MISC alert is raised once, the planner places no new volume on the pool for
 *   that host's cluster, and listStoragePools names the host in the pool's `details`. The next
 *   answer that works clears all of that and resolves the alert.
 *
 * Pools in maintenance are not asked about (their hosts are told to let go of them upstream).
 *
 * Who measures a pool is one rule (`isManaged`): a managed pool (each volume its own LUN, provider
 * LinuxTgt) is measured by its provider on the storage server (df of its LUN directory, over the
 * provider's SSH), since hosts see its LUNs, not the pool; every other pool by the hosts that use
 * it, as above. Provider rounds run on the one server holding the `managed-pool-usage` lease at
 * the same interval; a storage server that does not answer raises an ALERT.STORAGE.MISC alert,
 * resolved by its next answer. Both kinds of answer are written the same way (recordFigures).
 */

import type { Insertable } from 'kysely';
import type { App } from '../context.ts';
import type { StoragePoolHostTable, StoragePoolRow } from '../db/schema.ts';
import { ApiError, CsErrorCode } from '../errors.ts';
import { recordAlert, resolveAlert } from '../infra/alerts.ts';
import { startScheduled } from '../jobs/scheduled.ts';
import { defineSetting } from '../settings/settings.ts';
import { isManaged, measureManagedPool } from './managed/managed-pools.ts';
import { poolLocation, poolServesHost } from './volume-ops.ts';

/** A pool in these states is (going) out of use: no VM starts with a disk there, no host is asked about it. */
export const MAINTENANCE_STATES = ['PrepareForMaintenance', 'Maintenance', 'ErrorInMaintenance'];

export const STORAGE_STATS_INTERVAL = defineSetting({
  name: 'storage.stats.interval',
  category: 'Storage',
  type: 'Integer',
  defaultValue: 60000,
  min: 1000,
  description:
    'Milliseconds between two rounds in which each host is asked the size and use of its primary storage pools (and whether it reaches them).',
});

/** Upstream's alert type for storage problems that are not capacity (AlertType.ALERT_TYPE_STORAGE_MISC). */
export const ALERT_STORAGE_MISC = 12;
/** How long one host may take to answer for one pool. */
const ANSWER_TIMEOUT_MS = 15_000;
/** Pool questions in flight at once from one server. */
const CONCURRENCY = 16;
/** Rows per INSERT statement: five columns each stays under every database's bound on parameters. */
const INSERT_BATCH = 500;
const TICK_MS = 1_000;

const alertKey = (poolId: number, hostId: number) => `pool-unreachable:${poolId}:${hostId}`;

export interface PoolCheckRound {
  /** Host and pool pairs asked. */
  asked: number;
  /** Pairs whose answer was a failure. */
  unreachable: { poolId: number; hostId: number; error: string }[];
  /** Pools whose figures were written. */
  measured: number;
}

/** Runs `work` over `items` with at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(runners);
}

/**
 * One round over the hosts held by this server (or only `onlyHosts` of them): asks, records, and
 * raises or resolves the alerts. Exported for tests and for the round timer.
 */
export async function checkPools(app: App, onlyHosts?: number[]): Promise<PoolCheckRound> {
  const db = app.store.db;
  let held = app.agents.connectedHosts().filter((id) => app.agents.isHeld(id));
  if (onlyHosts) held = held.filter((id) => onlyHosts.includes(id));
  const round: PoolCheckRound = { asked: 0, unreachable: [], measured: 0 };
  if (held.length === 0) return round;
  const hosts = await db
    .selectFrom('hosts')
    .select(['id', 'name', 'zone_id', 'pod_id', 'cluster_id', 'hypervisor'])
    .where('id', 'in', held)
    .where('type', '=', 'Routing')
    .where('state', '=', 'Up')
    .where('removed', 'is', null)
    .execute();
  if (hosts.length === 0) return round;
  const pools = await db
    .selectFrom('storage_pools')
    .selectAll()
    .where('zone_id', 'in', [...new Set(hosts.map((h) => h.zone_id))])
    .where('removed', 'is', null)
    .where('state', 'not in', MAINTENANCE_STATES)
    .execute()
    // Managed pools are measured by their provider (measureManagedPools), not by hosts.
    .then((rows) => rows.filter((p) => !isManaged(p)));
  const pairs: { host: (typeof hosts)[number]; pool: (typeof pools)[number] }[] = [];
  for (const host of hosts)
    for (const pool of pools) if (poolServesHost(pool, host)) pairs.push({ host, pool });
  const known = new Map(
    (
      await db
        .selectFrom('storage_pool_hosts')
        .select(['id', 'pool_id', 'host_id', 'reachable'])
        .where(
          'host_id',
          'in',
          hosts.map((h) => h.id),
        )
        .execute()
    ).map((r) => [`${r.pool_id}:${r.host_id}`, r]),
  );
  const measured = new Set<number>();
  // Pairs seen for the first time are written together after the round: a large cloud's first
  // round would otherwise be one committed INSERT per host (5,000 at the bench's size).
  const fresh: Insertable<StoragePoolHostTable>[] = [];
  await eachLimited(pairs, CONCURRENCY, async ({ host, pool }) => {
    round.asked++;
    let error: string | undefined;
    let stats: { capacityBytes: number; usedBytes: number } | undefined;
    try {
      stats = await app.agents.call(host.id, 'getPoolStats', { pool: poolLocation(pool) }, ANSWER_TIMEOUT_MS);
    } catch (e) {
      // The host went away or this server is stopping (its calls fail as it shuts down): that says
      // nothing of the pool. Recorded, it kept the pool from the cluster's new volumes after a
      // restart until the next round (deploys failed with 533 meanwhile).
      if (e instanceof ApiError && e.cserrorcode === CsErrorCode.AGENT_UNAVAILABLE) return;
      error = ((e as Error).message || 'no answer').slice(0, 1000);
    }
    const now = app.clock.now();
    const before = known.get(`${pool.id}:${host.id}`);
    const reachable = error === undefined ? 1 : 0;
    // Written when it changes only: a large cloud has thousands of pairs, asked every minute.
    if (!before)
      fresh.push({ pool_id: pool.id, host_id: host.id, reachable, error: error ?? null, checked: now });
    else if (before.reachable !== reachable)
      await db
        .updateTable('storage_pool_hosts')
        .set({ reachable, error: error ?? null, checked: now })
        .where('id', '=', before.id)
        .execute();
    if (error !== undefined) {
      round.unreachable.push({ poolId: pool.id, hostId: host.id, error });
      const raised = await recordAlert(app, {
        type: ALERT_STORAGE_MISC,
        subject: `Host ${host.name} cannot reach primary storage pool ${pool.name}: ${error}`.slice(0, 990),
        zoneId: pool.zone_id,
        podId: host.pod_id ?? undefined,
        clusterId: host.cluster_id ?? undefined,
        sourceKey: alertKey(pool.id, host.id),
      });
      if (raised)
        app.log.warn({ host: host.name, pool: pool.name, err: error }, 'a host cannot reach a storage pool');
      return;
    }
    if (before && before.reachable === 0) await resolveAlert(app, alertKey(pool.id, host.id));
    if (stats && !measured.has(pool.id)) {
      measured.add(pool.id);
      await recordFigures(app, pool, stats);
    }
  });
  if (fresh.length)
    await db.transaction().execute(async (tx) => {
      for (let i = 0; i < fresh.length; i += INSERT_BATCH)
        await tx
          .insertInto('storage_pool_hosts')
          .values(fresh.slice(i, i + INSERT_BATCH))
          .execute();
    });
  round.measured = measured.size;
  return round;
}

/** Writes a pool's measured size and use, whoever measured them (a host or the pool's provider). */
async function recordFigures(
  app: Pick<App, 'store'>,
  pool: StoragePoolRow,
  stats: { capacityBytes: number; usedBytes: number },
): Promise<void> {
  // A size the operator gave is kept (a share of a larger export, say); what is used is measured.
  const capacity = pool.capacity_given ? Number(pool.capacity_bytes) : stats.capacityBytes;
  const used = pool.capacity_given ? stats.usedBytes : Math.min(stats.usedBytes, capacity);
  if (Number(pool.capacity_bytes) !== capacity || Number(pool.used_bytes) !== used)
    await app.store.db
      .updateTable('storage_pools')
      .set({ capacity_bytes: capacity, used_bytes: used })
      .where('id', '=', pool.id)
      .execute();
}

const providerAlertKey = (poolId: number) => `pool-provider-unreachable:${poolId}`;

/**
 * One round over the managed pools (not in maintenance): each one's provider measures it on its
 * storage server, and the figures are written as a host's would be. Exported for tests and for
 * the round timer.
 */
export async function measureManagedPools(
  app: App,
): Promise<{ measured: number; failed: { poolId: number; error: string }[] }> {
  const pools = (
    await app.store.db
      .selectFrom('storage_pools')
      .selectAll()
      .where('managed', '=', 1)
      .where('removed', 'is', null)
      .where('state', 'not in', MAINTENANCE_STATES)
      .execute()
  ).filter((p) => isManaged(p));
  const out = { measured: 0, failed: [] as { poolId: number; error: string }[] };
  await eachLimited(pools, CONCURRENCY, async (pool) => {
    let stats: { capacityBytes: number; usedBytes: number } | undefined;
    try {
      stats = await measureManagedPool({ app }, pool);
    } catch (e) {
      const error = ((e as Error).message || 'no answer').slice(0, 1000);
      out.failed.push({ poolId: pool.id, error });
      const raised = await recordAlert(app, {
        type: ALERT_STORAGE_MISC,
        subject: `The storage server of primary storage pool ${pool.name} was not reached: ${error}`.slice(
          0,
          990,
        ),
        zoneId: pool.zone_id,
        podId: pool.pod_id ?? undefined,
        clusterId: pool.cluster_id ?? undefined,
        sourceKey: providerAlertKey(pool.id),
      });
      if (raised) app.log.warn({ pool: pool.name, err: error }, 'a managed pool was not measured');
      return;
    }
    await resolveAlert(app, providerAlertKey(pool.id));
    if (!stats) return;
    await recordFigures(app, pool, stats);
    out.measured++;
  });
  return out;
}

/**
 * Runs the hosts' rounds on this server, and the providers' rounds on the server holding their
 * lease; returns the function that stops both.
 */
export function startPoolMonitor(app: App): () => void {
  let lastProviderRound = 0;
  const stopProviderRounds = startScheduled(app, {
    name: 'managed-pool-usage',
    // Ticks often enough to keep the lease; a round runs once per interval.
    everyMs: () => Math.min(5_000, app.settings.get(STORAGE_STATS_INTERVAL)),
    run: async () => {
      if (app.clock.now() - lastProviderRound < app.settings.get(STORAGE_STATS_INTERVAL)) return;
      lastProviderRound = app.clock.now();
      await measureManagedPools(app);
    },
  });
  let stopped = false;
  let running = false;
  let last = app.clock.now();
  const timer = setInterval(() => {
    if (stopped || running || app.clock.now() - last < app.settings.get(STORAGE_STATS_INTERVAL)) return;
    running = true;
    last = app.clock.now();
    checkPools(app)
      .catch((err) => app.log.warn({ err }, 'storage pool check failed'))
      .finally(() => {
        running = false;
      });
  }, TICK_MS);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
    stopProviderRounds();
  };
}

/** The names of the Up hosts that did not reach each pool at their last check, by pool id. */
export async function unreachableFrom(
  app: Pick<App, 'store'>,
  poolIds: number[],
): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  if (poolIds.length === 0) return out;
  const rows = await app.store.db
    .selectFrom('storage_pool_hosts')
    .innerJoin('hosts', 'hosts.id', 'storage_pool_hosts.host_id')
    .select(['storage_pool_hosts.pool_id', 'hosts.name'])
    .where('storage_pool_hosts.pool_id', 'in', poolIds)
    .where('storage_pool_hosts.reachable', '=', 0)
    .where('hosts.state', '=', 'Up')
    .where('hosts.removed', 'is', null)
    .orderBy('hosts.name')
    .execute();
  for (const r of rows) out.set(r.pool_id, [...(out.get(r.pool_id) ?? []), r.name]);
  return out;
}
