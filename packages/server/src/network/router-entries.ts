/**
 * What a router knows of its network's VMs (a DHCP lease, a DNS name and metadata each), and how
 * a big network's router gets it without stalling the VM start that booted it.
 *
 * A router of a network with more than `ROUTER_BATCHES.boot` VMs boots with the VMs that must be
 * served now (the one starting) and the network's first ones, so the start that needed it waits
 * for a small spec only; the rest follows in the background in batches of `ROUTER_BATCHES.fill`
 * (updateRouter, which adds or replaces by MAC), then the router's digest is compared with the
 * records (`syncEntries`), which repairs anything a VM change did between reading a batch and
 * sending it.
 * A router already running on a host that reconnects is not sent everything again either: its
 * digest (count and order-free sums of per-entry hashes, router-digest.ts in the protocol) is
 * compared with the records', and only when they differ does the server ask for each entry's hash
 * and send what differs (and remove what is no longer there).
 */
import { RouterDigest, type RouterVmEntry, routerEntryHash } from '@nimbostack/protocol';
import type { App } from '../context.ts';
import type { RouterRow } from '../db/schema.ts';

/** Batch sizes (tests lower them to exercise a fill with a few VMs). */
export const ROUTER_BATCHES = {
  /** A network with at most this many VM entries gets them all in its router's start. */
  boot: 500,
  /** Entries per updateRouter while a booted router is filled (about 1.5 MB of JSON each). */
  fill: 5000,
};

export interface EntryPage {
  entries: RouterVmEntry[];
  /** VMs whose pending password is in `entries` (handed over once the router has them). */
  withPassword: number[];
  /** The NIC id to continue after, when the page was full (there may be more). */
  more?: number;
}

/**
 * The router entries of VMs on a network (or on several: a VPC router's tiers), built with a fixed
 * number of queries for any number of VMs; `vmIds` limits them to those VMs, `page` to the
 * `limit` entries after NIC id `after` (NIC id order).
 */
export async function vmEntries(
  app: App,
  networkIds: number | number[],
  vmIds?: number[],
  page?: { after: number; limit: number },
): Promise<EntryPage> {
  const db = app.store.db;
  const networks = typeof networkIds === 'number' ? [networkIds] : networkIds;
  if (networks.length === 0) return { entries: [], withPassword: [] };
  let q = db
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .innerJoin('zones', 'zones.id', 'vms.zone_id')
    .leftJoin('service_offerings', 'service_offerings.id', 'vms.service_offering_id')
    .select([
      'nics.id as nic_id',
      'vms.id',
      'vms.uuid',
      'vms.name',
      'vms.instance_name',
      'vms.account_id',
      'vms.user_data',
      'vms.keypairs',
      'vms.password',
      'vms.password_pending',
      'nics.mac',
      'nics.ip4',
      'nics.is_default',
      'zones.name as zone',
      'service_offerings.name as offering',
    ])
    .where('nics.network_id', 'in', networks)
    .where('nics.removed', 'is', null)
    .where('nics.router_id', 'is', null)
    .where('vms.removed', 'is', null)
    .where('vms.state', '!=', 'Expunging');
  if (vmIds) {
    if (vmIds.length === 0) return { entries: [], withPassword: [] };
    q = q.where('vms.id', 'in', vmIds);
  }
  if (page) q = q.where('nics.id', '>', page.after).limit(page.limit);
  const rows = await q.orderBy('nics.id').execute();
  const wanted = rows.filter((r) => r.keypairs).map((r) => r.account_id);
  const keys = wanted.length
    ? await db
        .selectFrom('ssh_keypairs')
        .select(['account_id', 'name', 'public_key'])
        .where('account_id', 'in', [...new Set(wanted)])
        .execute()
    : [];
  const keyOf = new Map(keys.map((k) => [`${k.account_id}/${k.name}`, k.public_key]));
  const entries: RouterVmEntry[] = [];
  const withPassword: number[] = [];
  for (const r of rows) {
    if (!r.ip4) continue;
    const names = r.keypairs?.split(',') ?? [];
    const publicKeys = names
      .map((n) => keyOf.get(`${r.account_id}/${n}`))
      .filter((k): k is string => k !== undefined);
    const password = r.password_pending && r.password ? app.secrets.decrypt(r.password) : undefined;
    if (password) withPassword.push(r.id);
    entries.push({
      mac: r.mac,
      ip: r.ip4,
      hostname: r.name,
      instanceId: r.uuid,
      vmName: r.instance_name,
      ...(r.user_data ? { userData: r.user_data } : {}),
      publicKeys,
      ...(r.offering ? { serviceOffering: r.offering } : {}),
      availabilityZone: r.zone,
      ...(password ? { password } : {}),
      ...(r.is_default ? {} : { defaultGateway: false }),
    });
  }
  const more = page && rows.length === page.limit ? rows[rows.length - 1]!.nic_id : undefined;
  return { entries, withPassword, ...(more !== undefined ? { more } : {}) };
}

/** The router got these VMs' passwords: the guests fetch them from it from now on. */
export async function passwordsHandedOver(app: App, vmIds: number[]): Promise<void> {
  if (vmIds.length)
    await app.store.db.updateTable('vms').set({ password_pending: 0 }).where('id', 'in', vmIds).execute();
}

/**
 * The entries a router boots with: all of them for a network of at most `ROUTER_BATCHES.boot` VMs;
 * else the first ones and those of `first` (the VMs starting now), with `more` saying where
 * `fillRouter` is to continue.
 */
export async function bootEntries(app: App, networkIds: number[], first: number[] = []): Promise<EntryPage> {
  const page = await vmEntries(app, networkIds, undefined, { after: 0, limit: ROUTER_BATCHES.boot });
  if (page.more === undefined || first.length === 0) return page;
  const now = await vmEntries(app, networkIds, first);
  const have = new Set(page.entries.map((e) => e.mac));
  return {
    entries: [...page.entries, ...now.entries.filter((e) => !have.has(e.mac))],
    withPassword: [...new Set([...page.withPassword, ...now.withPassword])],
    more: page.more,
  };
}

/** The networks whose VMs a router serves: those it has a guest NIC in (a VPC router, one per tier). */
async function servedNetworks(app: App, routerId: number): Promise<number[]> {
  const rows = await app.store.db
    .selectFrom('nics')
    .select('network_id')
    .where('router_id', '=', routerId)
    .where('removed', 'is', null)
    .execute();
  return [...new Set(rows.map((r) => r.network_id))];
}

/** Whether the router still runs on `hostId` (a fill or check of a router stopped or moved ends). */
async function stillOn(app: App, routerId: number, hostId: number): Promise<boolean> {
  const r = await app.store.db
    .selectFrom('routers')
    .select(['state', 'host_id'])
    .where('id', '=', routerId)
    .executeTakeFirst();
  return r?.state === 'Running' && r.host_id === hostId;
}

interface FillState {
  /** Fills and checks under way, by router id (tests and the benchmark wait for them). */
  running: Map<number, Promise<void>>;
}
const states = new WeakMap<App, FillState>();
function stateOf(app: App): FillState {
  let s = states.get(app);
  if (!s) {
    s = { running: new Map() };
    states.set(app, s);
  }
  return s;
}

/** Runs `work` for the router after whatever fill or check of it is under way, in the background. */
function queue(app: App, routerId: number, work: () => Promise<void>): Promise<void> {
  const { running } = stateOf(app);
  const done = (running.get(routerId) ?? Promise.resolve())
    .then(work)
    .catch((err) =>
      app.log.warn({ routerId, err: (err as Error).message }, 'router entries not brought up to date'),
    );
  running.set(routerId, done);
  void done.then(() => {
    if (running.get(routerId) === done) running.delete(routerId);
  });
  return done;
}

/** Resolves once no fill or check of the router is under way (tests, the benchmark's report). */
export async function routerSettled(app: App, routerId: number): Promise<void> {
  for (let p = stateOf(app).running.get(routerId); p; p = stateOf(app).running.get(routerId)) await p;
}

/**
 * After a router booted with `bootEntries`: the rest of its networks' entries in batches, then a
 * digest check (syncRouter). Runs in the background; a router stopped or moved meanwhile ends it.
 */
export function fillRouter(
  app: App,
  router: Pick<RouterRow, 'id' | 'name'>,
  hostId: number,
  after: number,
): void {
  void queue(app, router.id, async () => {
    const t0 = performance.now();
    const networks = await servedNetworks(app, router.id);
    let cursor: number | undefined = after;
    let sent = 0;
    while (cursor !== undefined) {
      if (!(await stillOn(app, router.id, hostId))) return;
      const page = await vmEntries(app, networks, undefined, { after: cursor, limit: ROUTER_BATCHES.fill });
      if (page.entries.length) {
        await app.agents.call(hostId, 'updateRouter', { name: router.name, add: page.entries, remove: [] });
        await passwordsHandedOver(app, page.withPassword);
      }
      sent += page.entries.length;
      cursor = page.more;
    }
    const repaired = await syncEntries(app, router, hostId, networks);
    app.log.info(
      { router: router.name, sent, repaired, ms: Math.round(performance.now() - t0) },
      'router filled with its VM entries',
    );
  });
}

/** Every entry of the networks, a page of `ROUTER_BATCHES.fill` at a time. */
async function eachPage(
  app: App,
  networks: number[],
  visit: (page: EntryPage) => Promise<void>,
): Promise<void> {
  let cursor: number | undefined = 0;
  while (cursor !== undefined) {
    const page = await vmEntries(app, networks, undefined, { after: cursor, limit: ROUTER_BATCHES.fill });
    await visit(page);
    cursor = page.more;
  }
}

/**
 * Compares what the router on `hostId` holds with the records and sends only the difference:
 * entries missing or different are added (replaced by MAC), entries of VMs no longer there are
 * removed. The records are read a page at a time, so a network of a million VMs is never held
 * whole. Answers how many entries it sent or removed.
 */
async function syncEntries(
  app: App,
  router: Pick<RouterRow, 'id' | 'name'>,
  hostId: number,
  networks: number[],
): Promise<number> {
  if (!(await stillOn(app, router.id, hostId))) return 0;
  const digest = new RouterDigest();
  await eachPage(app, networks, async (page) => {
    for (const e of page.entries) digest.add(e);
  });
  const quick = await app.agents.call(hostId, 'routerDigest', { name: router.name, entries: false });
  if (quick.digest === digest.toString()) return 0;
  const detail = await app.agents.call(hostId, 'routerDigest', { name: router.name, entries: true });
  const held = new Map(detail.entries ?? []);
  const add: RouterVmEntry[] = [];
  await eachPage(app, networks, async (page) => {
    for (const e of page.entries) {
      const mac = e.mac.toLowerCase();
      if (held.get(mac) !== routerEntryHash(e)) add.push(e);
      held.delete(mac);
    }
  });
  // What is left is held by the router but no longer in the records.
  const remove = [...held.keys()];
  if (add.length === 0 && remove.length === 0) return 0;
  // Removals first, in the first message: a stale entry may hold an address an added one takes.
  for (let i = 0; i === 0 || i < add.length; i += ROUTER_BATCHES.fill) {
    const batch = add.slice(i, i + ROUTER_BATCHES.fill);
    await app.agents.call(hostId, 'updateRouter', {
      name: router.name,
      add: batch,
      remove: i === 0 ? remove : [],
    });
  }
  // A pending password re-sent here is the router's now.
  const handed = add.filter((e) => e.password).map((e) => e.instanceId);
  if (handed.length)
    await app.store.db.updateTable('vms').set({ password_pending: 0 }).where('uuid', 'in', handed).execute();
  return add.length + remove.length;
}

/**
 * A host came back (its agent reconnected, to this server after a restart or from another):
 * each router running there is checked against the records by digest and brought up to date
 * with the difference, in the background. What it missed while no server could tell it (a VM
 * expunged, a password reset) is put right without sending every entry again.
 */
export async function checkRoutersOn(app: App, hostIds: number[]): Promise<void> {
  if (hostIds.length === 0) return;
  const routers = await app.store.db
    .selectFrom('routers')
    .select(['id', 'name', 'host_id'])
    .where('host_id', 'in', hostIds)
    .where('state', '=', 'Running')
    .where('removed', 'is', null)
    .execute();
  for (const r of routers)
    void queue(app, r.id, async () => {
      const t0 = performance.now();
      const repaired = await syncEntries(app, r, r.host_id!, await servedNetworks(app, r.id));
      app.log.info(
        { router: r.name, repaired, ms: Math.round(performance.now() - t0) },
        'router entries checked after its host reconnected',
      );
    });
}
