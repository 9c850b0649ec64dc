/**
 * VM high availability: how a host whose agent is gone is investigated, and when it is declared
 * dead. The rule is upstream's: nothing of a host is restarted elsewhere until the host is proven
 * dead or fenced, so no disk is ever run by two hypervisor processes at once.
 *
 * - Every host connected here writes a heartbeat to each shared primary storage pool of its
 *   cluster or zone (setHeartbeat; agent/src/heartbeat.ts); one that can no longer write it stops
 *   its own VMs after ha.heartbeat.timeout minus two intervals (self-fencing).
 * - When a host leaves Up (its agent disconnected or stopped pinging), the server holding it asks
 *   the other Up hosts of its cluster (checkHost): how old the host's heartbeat is on each pool,
 *   whether they reach its address, whether a running QEMU still holds its VMs' disks. Again every
 *   investigate.retry.interval until the host is back or decided.
 * - A fresh heartbeat, or a disk still held: the host lives (Degraded); nothing is touched.
 * - Heartbeat stopped on every pool for ha.heartbeat.timeout, and no neighbour reaches the host
 *   or sees its VMs: the host is Fenced, declared Down, and its VMs handled (vm-ha.ts).
 * - Heartbeat stopped but a neighbour still reaches the host: if its agent answers again, its VMs
 *   are stopped through it and it is Fenced; otherwise it stays Degraded for the operator.
 * - No neighbour answered, no shared pool, or no heartbeat ever written: Ineligible; nothing is
 *   touched, an alert says why.
 *
 * Where it runs with several servers. Heartbeat settings, investigations and restarts run on every
 * server, each for its own share: a server tells its own agents what to heartbeat; it investigates
 * the hosts it holds (hosts.ms_id: every host has one holder, a dead server's hosts are taken
 * over), because the host's state changes and its agent's return happen there and a reachable
 * host's VMs are stopped through that agent connection; and it runs up to ha.workers restarts it
 * claimed (compare-and-set on ha_work), so restarts spread over the servers as upstream's HA
 * workers do. Only the cluster-wide sweep, freeing the restarts a dead server had claimed, runs
 * on one server, under the scheduled-work lease `ha-claims` (jobs/scheduled.ts).
 */
import type { CommandResult, StorageLocation } from '@nimbostack/protocol';
import { onHostStatusChange } from '../agents/gateway.ts';
import type { App } from '../context.ts';
import type { HostRow } from '../db/schema.ts';
import { recordAlert } from '../infra/alerts.ts';
import { startScheduled } from '../jobs/scheduled.ts';
import { poolLocation, poolServesHost } from '../storage/volume-ops.ts';
import { type HaState, hostHaRows, updateHostHa } from './host-ha-records.ts';
import { HA_HEARTBEAT_INTERVAL, HA_HEARTBEAT_TIMEOUT, HA_INVESTIGATE_RETRY } from './settings.ts';
import { fenceHost, releaseDeadServersHaWork, runHaWork } from './vm-ha.ts';

/** ALERT.COMPUTE.HOST, as the gateway's host alerts. */
const HOST_ALERT = 7;
/** VM states a host's record still places on it. */
const ON_HOST = ['Running', 'Starting', 'Stopping', 'Migrating'];
const CHECK_TIMEOUT_MS = 20_000;
const TICK_MS = 1000;
const HEARTBEAT_CONFIG_EVERY_MS = 5000;
/** How often the lease holder frees the restarts of dead servers. */
const CLAIMS_SWEEP_MS = 5000;
/**
 * Investigations one server runs at once. Each reads the host's VMs and their disks and waits up
 * to CHECK_TIMEOUT_MS for its neighbours: thousands at once (a whole zone's hosts silent) would
 * hold every database connection and leave none for the API; the others wait for a free place.
 */
const INVESTIGATIONS_AT_ONCE = 4;

interface PerServer {
  /** Next investigation time per host. */
  due: Map<number, number>;
  busy: Set<number>;
  /** What each connected host was last told to heartbeat, against which connection. */
  told: Map<number, { conn: object; key: string }>;
  /** The settings and shared pools the told keys were made from; a change looks at every host again. */
  basis: string;
  lastConfig: number;
}
const state = new WeakMap<App, PerServer>();
const of = (app: App): PerServer => {
  let s = state.get(app);
  if (!s) {
    s = { due: new Map(), busy: new Set(), told: new Map(), basis: '', lastConfig: 0 };
    state.set(app, s);
  }
  return s;
};

// A host leaving Up is investigated at once; one coming back is Available again.
onHostStatusChange(async (app, hostIds, status) => {
  const s = of(app);
  if (status === 'Up') {
    for (const id of hostIds) s.due.delete(id);
    for (let i = 0; i < hostIds.length; i += 250)
      await app.store.db
        .updateTable('alerts')
        .set({ resolved: app.clock.now() })
        .where(
          'source_key',
          'in',
          hostIds.slice(i, i + 250).flatMap((id) => [`ha-fenced:${id}`, `ha-unfenced:${id}`]),
        )
        .where('resolved', 'is', null)
        .execute();
    const rows = await hostHaRows(app, hostIds);
    for (const row of rows.values()) {
      if (row.enabled !== 1 || row.state === 'Available') continue;
      const host = await app.store.db
        .selectFrom('hosts')
        .select(['id', 'uuid', 'name'])
        .where('id', '=', row.host_id)
        .executeTakeFirst();
      if (host) await updateHostHa(app, host, { state: 'Available', detail: null });
    }
    return;
  }
  if (status === 'Disconnected' || status === 'Alert' || status === 'Down')
    for (const id of hostIds) if (!s.due.has(id)) s.due.set(id, 0);
});

/**
 * Shared (not host-local) primary storage pools, Up, of the zones given. Managed pools hold only
 * their volumes' LUNs, no file a heartbeat could be written to: they are left out.
 */
async function sharedPoolRows(app: App, zoneIds?: number[]) {
  if (zoneIds?.length === 0) return [];
  let q = app.store.db.selectFrom('storage_pools').selectAll();
  if (zoneIds) q = q.where('zone_id', 'in', zoneIds);
  return q
    .where('removed', 'is', null)
    .where('state', '=', 'Up')
    .where('scope', 'in', ['CLUSTER', 'ZONE'])
    .where('provider', '!=', 'LinuxTgt')
    .orderBy('id')
    .execute();
}

/** The pools of `rows` a host uses (its cluster's and its zone's), as agents name them. */
function poolsOf(
  rows: Awaited<ReturnType<typeof sharedPoolRows>>,
  host: Pick<HostRow, 'id' | 'zone_id' | 'cluster_id' | 'hypervisor'>,
): StorageLocation[] {
  return rows
    .filter((p) => poolServesHost(p, host))
    .map((p) => poolLocation(p))
    .filter((p) => p.type !== 'Simulator');
}

/** The shared pools one host reaches, where its heartbeat is. */
async function sharedPools(
  app: App,
  host: Pick<HostRow, 'id' | 'zone_id' | 'cluster_id' | 'hypervisor'>,
): Promise<StorageLocation[]> {
  return poolsOf(await sharedPoolRows(app, [host.zone_id]), host);
}

/**
 * Tells each host connected here (again after a reconnect, or when its pools change) what to
 * heartbeat. Every few seconds: only the hosts not yet told on their current connection are read,
 * unless the settings or the shared pools changed, when every host is looked at again (and told
 * only if its own pools changed).
 */
async function configureHeartbeats(app: App): Promise<void> {
  const s = of(app);
  const connected = app.agents.connectedHosts();
  const connectedSet = new Set(connected);
  for (const id of [...s.told.keys()]) if (!connectedSet.has(id)) s.told.delete(id);
  if (connected.length === 0) return;
  const intervalMs = app.settings.get(HA_HEARTBEAT_INTERVAL) * 1000;
  // A host that lost its storage stops its own VMs well before its neighbours take it for dead.
  const fenceAfterMs = Math.max(intervalMs, app.settings.get(HA_HEARTBEAT_TIMEOUT) * 1000 - 2 * intervalMs);
  // Every zone's shared pools, read once: they make the basis and each host's own pools.
  const pools = await sharedPoolRows(app);
  const basis = `${intervalMs}|${fenceAfterMs}|${JSON.stringify(
    pools.map((p) => [p.id, p.zone_id, p.cluster_id, p.scope, p.hypervisor, p.host_id, poolLocation(p)]),
  )}`;
  const everyHost = basis !== s.basis;
  s.basis = basis;
  const ids = everyHost
    ? connected
    : connected.filter((id) => s.told.get(id)?.conn !== app.agents.connectionOf(id));
  for (let i = 0; i < ids.length; i += 500) {
    const hosts = await app.store.db
      .selectFrom('hosts')
      .select(['id', 'uuid', 'zone_id', 'cluster_id', 'hypervisor'])
      .where('id', 'in', ids.slice(i, i + 500))
      .where('removed', 'is', null)
      .execute();
    for (const h of hosts) {
      const conn = app.agents.connectionOf(h.id);
      if (!conn) continue;
      const mine = poolsOf(pools, h);
      const key = `${intervalMs}|${fenceAfterMs}|${mine.map((p) => `${p.uuid}:${p.path}`).join(',')}`;
      const told = s.told.get(h.id);
      if (told?.conn === conn && told.key === key) continue;
      s.told.set(h.id, { conn, key });
      app.agents
        .call(h.id, 'setHeartbeat', { hostId: h.uuid, intervalMs, fenceAfterMs, pools: mine })
        .catch((err) => {
          s.told.delete(h.id);
          app.log.warn({ host: h.uuid, err: (err as Error).message }, 'could not set the host heartbeat');
        });
    }
  }
}

/** What the host's neighbours said, reduced to a decision. */
export interface Verdict {
  state: HaState;
  detail: string;
}

type Answer = CommandResult<'checkHost'>;

export function decide(
  answers: Answer[],
  pools: StorageLocation[],
  timeoutMs: number,
): Verdict & { reachable: boolean } {
  const reachable = answers.some((a) => a.reachable === true);
  if (answers.length === 0)
    return { state: 'Ineligible', detail: 'no other Up host of its cluster answered', reachable };
  if (pools.length === 0)
    return {
      state: 'Ineligible',
      detail: 'it has no shared primary storage to hold a heartbeat',
      reachable,
    };
  const ages = answers.flatMap((a) => a.heartbeats.map((h) => h.ageMs)).filter((x) => x !== null);
  const held = answers.flatMap((a) => a.disksInUse ?? []);
  if (held.length > 0)
    return { state: 'Degraded', detail: `a running VM still holds its disk ${held[0]}`, reachable };
  if (ages.length === 0)
    return {
      state: 'Ineligible',
      detail: 'its neighbours find no heartbeat of it on shared storage',
      reachable,
    };
  const youngest = Math.min(...ages);
  if (youngest < timeoutMs)
    return {
      state: 'Degraded',
      detail: `its heartbeat on shared storage is ${Math.round(youngest / 1000)} s old: the host lives`,
      reachable,
    };
  return {
    state: 'Fenced',
    detail: `its heartbeat stopped ${Math.round(youngest / 1000)} s ago on every shared pool${reachable ? '' : ' and no neighbour reaches it'}`,
    reachable,
  };
}

/** Investigates one host that is not Up; fences it when the neighbours prove it dead. */
export async function investigate(app: App, hostId: number): Promise<Verdict | undefined> {
  const db = app.store.db;
  const host = await db
    .selectFrom('hosts')
    .selectAll()
    .where('id', '=', hostId)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!host || host.state === 'Up' || host.state === 'Connecting') return undefined;
  const ha = (await hostHaRows(app, [host.id])).get(host.id);
  if (ha && ha.enabled !== 1) return undefined;
  const vms = await db
    .selectFrom('vms')
    .select(['id', 'instance_name'])
    .where('host_id', '=', host.id)
    .where('state', 'in', ON_HOST)
    .where('removed', 'is', null)
    .execute();
  // Nothing runs there: no decision to make (it is looked at again if VMs are placed on it).
  if (vms.length === 0) {
    if (!ha || ha.state === 'Available') await updateHostHa(app, host, { state: 'Suspect' });
    return undefined;
  }
  // Checking marks the first look; later rounds keep what the last one found until it changes.
  if (!ha || ha.state === 'Available' || ha.state === 'Suspect')
    await updateHostHa(app, host, { state: 'Checking' });
  const pools = await sharedPools(app, host);
  const disks = vms.length
    ? await db
        .selectFrom('volumes')
        .innerJoin('vms', 'vms.id', 'volumes.vm_id')
        .select(['vms.instance_name as vm', 'volumes.path'])
        .where(
          'volumes.vm_id',
          'in',
          vms.map((v) => v.id),
        )
        .where('volumes.path', 'is not', null)
        .where('volumes.removed', 'is', null)
        .execute()
    : [];
  const neighbours = await db
    .selectFrom('hosts')
    .select('id')
    .where('cluster_id', '=', host.cluster_id ?? -1)
    .where('id', '!=', host.id)
    .where('state', '=', 'Up')
    .where('removed', 'is', null)
    .execute();
  const settled = await Promise.allSettled(
    neighbours.map((n) =>
      app.agents.call(
        n.id,
        'checkHost',
        {
          hostId: host.uuid,
          address: host.private_ip ?? undefined,
          pools,
          disks: disks.map((d) => ({ vm: d.vm, path: d.path! })),
        },
        CHECK_TIMEOUT_MS,
      ),
    ),
  );
  const answers = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const verdict = decide(answers, pools, app.settings.get(HA_HEARTBEAT_TIMEOUT) * 1000);
  // Reachable but silent on storage: fenced only if its VMs can be stopped through its agent.
  if (verdict.state === 'Fenced' && verdict.reachable) {
    const stopped = await stopThroughAgent(app, host.id, vms);
    if (!stopped) {
      verdict.state = 'Degraded';
      verdict.detail += ', but a neighbour still reaches it and its agent cannot stop its VMs';
    } else verdict.detail += '; its VMs were stopped through its agent';
  }
  app.log.info({ host: host.name, state: verdict.state, detail: verdict.detail }, 'host HA investigation');
  await updateHostHa(app, host, { state: verdict.state, detail: verdict.detail });
  if (verdict.state === 'Fenced') {
    await recordAlert(app, {
      type: HOST_ALERT,
      subject: `Host ${host.name} is fenced: ${verdict.detail}; its HA VMs restart on other hosts`,
      zoneId: host.zone_id,
      podId: host.pod_id ?? undefined,
      clusterId: host.cluster_id ?? undefined,
      sourceKey: `ha-fenced:${host.id}`,
    });
    await fenceHost(app, host);
  } else if (verdict.state === 'Ineligible' || verdict.state === 'Degraded') {
    await recordAlert(app, {
      type: HOST_ALERT,
      subject: `Host ${host.name} is not reachable but cannot be fenced: ${verdict.detail}; its VMs are left alone`,
      zoneId: host.zone_id,
      podId: host.pod_id ?? undefined,
      clusterId: host.cluster_id ?? undefined,
      sourceKey: `ha-unfenced:${host.id}`,
    });
  }
  return verdict;
}

async function stopThroughAgent(
  app: App,
  hostId: number,
  vms: { instance_name: string }[],
): Promise<boolean> {
  if (!app.agents.isConnected(hostId)) return false;
  try {
    for (const vm of vms) await app.agents.call(hostId, 'stopVm', { name: vm.instance_name, force: true });
    return true;
  } catch (err) {
    app.log.warn({ hostId, err: (err as Error).message }, 'could not stop the VMs of an unhealthy host');
    return false;
  }
}

/**
 * Hosts held here that are not Up and still have VMs placed on them: the ones to investigate
 * (also those a previous run of this server, or a dead peer, left behind).
 */
async function hostsAtStake(app: App): Promise<number[]> {
  const rows = await app.store.db
    .selectFrom('hosts')
    .select('hosts.id')
    .where('hosts.state', 'in', ['Disconnected', 'Alert', 'Down'])
    .where('hosts.ms_id', '=', app.server.id)
    .where('hosts.removed', 'is', null)
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('vms')
          .select('vms.id')
          .whereRef('vms.host_id', '=', 'hosts.id')
          .where('vms.state', 'in', ON_HOST)
          .where('vms.removed', 'is', null),
      ),
    )
    .execute();
  return rows.map((r) => r.id);
}

async function tick(app: App): Promise<void> {
  const s = of(app);
  const now = Date.now();
  if (now - s.lastConfig >= HEARTBEAT_CONFIG_EVERY_MS) {
    s.lastConfig = now;
    await configureHeartbeats(app);
    for (const id of await hostsAtStake(app)) if (!s.due.has(id)) s.due.set(id, now);
  }
  const retry = app.settings.get(HA_INVESTIGATE_RETRY) * 1000;
  for (const [id, at] of s.due) {
    if (s.busy.size >= INVESTIGATIONS_AT_ONCE) break;
    if (at > now || s.busy.has(id)) continue;
    s.busy.add(id);
    investigate(app, id)
      .then((v) => {
        // Decided, or nothing left to decide: forget the host until it leaves Up again.
        if (!v || v.state === 'Fenced') s.due.delete(id);
        else s.due.set(id, Date.now() + retry);
      })
      .catch((err) => {
        app.log.error({ err, hostId: id }, 'host HA investigation failed');
        s.due.set(id, Date.now() + retry);
      })
      .finally(() => s.busy.delete(id));
  }
  await runHaWork(app);
}

/** Starts the HA monitor of this server; returns its stop function. */
export function startHaMonitor(app: App): () => void {
  const stopSweep = startScheduled(app, {
    name: 'ha-claims',
    everyMs: () => CLAIMS_SWEEP_MS,
    run: () => releaseDeadServersHaWork(app),
  });
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    tick(app)
      .catch((err) => app.log.error({ err }, 'HA monitor failed'))
      .finally(() => {
        running = false;
      });
  }, TICK_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    stopSweep();
  };
}
