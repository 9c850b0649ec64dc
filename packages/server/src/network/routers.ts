/**
 * Virtual routers (CloudStack's domain routers) of shared guest networks. A router is a network
 * namespace on one host of the network, serving DHCP, DNS, metadata (user data, SSH keys) and
 * passwords to the network's VMs. It is created when the first VM of the network starts, on that
 * VM's host, and holds an entry for every VM of the network that is not expunged (Stopped VMs
 * keep theirs, as upstream). A router whose host is lost is Stopped and restarted on the host of
 * the next VM that starts. Its guest address and MAC come from the network's IP address manager
 * and the MAC allocator, like a VM's NIC, so no VM ever gets them.
 */
import type { Insertable, JoinBuilder } from 'kysely';
import type { App } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { Database, NetworkRow, RouterRow, RouterTable } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, resourceInUse, resourceUnavailable } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import { systemVmMoved } from '../events/state-events.ts';
import { API_VERSION } from '../http/serialize.ts';
import { withClusterLock } from '../jobs/locks.ts';
import { randomBits, systemOwner } from './common.ts';
import { implementNetwork } from './guest-networks.ts';
import { carryNetwork, guestNetwork } from './host-network.ts';
import { allocateNics } from './nics.ts';
import { bootEntries, fillRouter, passwordsHandedOver, vmEntries } from './router-entries.ts';
import { routerPublicSide, routerRulesFor } from './router-rules.ts';
import {
  applyVpcRouter,
  bootVpcRouter,
  restartVpcRouter,
  vpcLockKey,
  vpcOf,
  vpcRouterReadyFor,
} from './vpc-routers.ts';
import { vpnField } from './vpn/vpn-spec.ts';

/** The version routers report (upstream: the system VM template's); ours are built from the server. */
export const ROUTER_VERSION = API_VERSION.split('.').slice(0, 3).join('.');

export const ROUTER_STATES = ['Starting', 'Running', 'Stopping', 'Stopped', 'Destroyed'];

/** The lock of the router's operations: its network's, or its VPC's. */
export const routerLockKey = (router: Pick<RouterRow, 'network_id' | 'vpc_id'>): number | string =>
  router.vpc_id !== null ? vpcLockKey(router.vpc_id) : router.network_id;

/** The cluster lock name of a network key (what the takeover of a dead server settles by). */
export const networkLockName = (key: number | string): string => `network:${key}`;

/**
 * Router operations on one network run one at a time in the whole cloud (VM starts on two servers
 * race to create it): a network's key is its id; a VPC's router is keyed by its VPC
 * (`vpcLockKey`), whichever tier asks. Held in cluster_locks (jobs/locks.ts).
 */
export function withNetworkLock<T>(app: App, networkId: number | string, run: () => Promise<T>): Promise<T> {
  return withClusterLock(app, [networkLockName(networkId)], run);
}

export async function routerEvent(
  app: App,
  router: Pick<RouterRow, 'uuid' | 'name'>,
  type: string,
  description: string,
  level: 'INFO' | 'WARN' | 'ERROR' = 'INFO',
): Promise<void> {
  await recordEvent({ app }, app.store.db, await systemOwner(app), {
    type,
    level,
    description,
    resourceType: 'DomainRouter',
    resourceId: router.uuid,
  });
}

export async function setRouter(app: App, id: number, changes: Partial<RouterRow>): Promise<RouterRow> {
  return app.store.db.transaction().execute(async (tx) => {
    const before = await tx.selectFrom('routers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    await tx
      .updateTable('routers')
      .set({ ...changes, updated: app.clock.now() })
      .where('id', '=', id)
      .execute();
    if (changes.state) await systemVmMoved({ app }, tx, before, changes.state);
    return tx.selectFrom('routers').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  });
}

export function liveRouter(app: App, networkId: number): Promise<RouterRow | undefined> {
  return app.store.db
    .selectFrom('routers')
    .selectAll()
    .where('live_network_id', '=', networkId)
    .executeTakeFirst();
}

/**
 * A MAC for a router's public interface: locally administered like guests' (02:00:…), but with a
 * prefix of its own (06:00:…), so it can never equal a guest NIC's.
 */
export function publicMac(app: App): string {
  const hex = randomBits(app).toString(16).padStart(8, '0');
  return `06:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}:${hex.slice(6, 8)}`;
}

/** Creates the network's router record with its guest address and MAC (state Stopped). */
async function createRouter(
  app: App,
  network: NetworkRow,
  place: { podId: number | null; hypervisor: string | null },
  /** A router that replaces another keeps its public MAC, so neighbours' ARP entries stay right. */
  keepPublicMac?: string | null,
): Promise<RouterRow> {
  const owner = await systemOwner(app);
  try {
    const id = await app.store.db.transaction().execute(async (tx) => {
      const isolated = network.guest_type === 'Isolated';
      const [nic] = await allocateNics({ app }, tx, {
        // Router NICs have no VM: vm_id 0 never names one (ids start at 1).
        vm: { id: 0, uuid: '', accountId: owner.accountId, zoneId: network.zone_id, podId: place.podId },
        networkIds: [network.id],
        // An isolated network's router is its gateway.
        ...(isolated && network.gateway ? { ipAddress: network.gateway } : {}),
      });
      const routerId = await insertRouter(app, tx, {
        network_id: network.id,
        live_network_id: network.id,
        zone_id: network.zone_id,
        pod_id: nic!.podId,
        nic_id: nic!.id,
        guest_ip: nic!.ip4,
        guest_mac: nic!.mac,
        public_mac: isolated ? (keepPublicMac ?? publicMac(app)) : null,
        hypervisor: place.hypervisor,
      });
      await tx.updateTable('nics').set({ router_id: routerId }).where('id', '=', nic!.id).execute();
      return routerId;
    });
    const router = await app.store.db
      .selectFrom('routers')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    await routerEvent(
      app,
      router,
      'ROUTER.CREATE',
      `created router ${router.name} for network ${network.name}`,
    );
    return router;
  } catch (e) {
    // Another server created it first (the live_network_id key).
    const existing = await liveRouter(app, network.id);
    if (existing) return existing;
    throw e;
  }
}

async function networkOf(app: App, id: number): Promise<NetworkRow> {
  return app.store.db.selectFrom('networks').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/**
 * Tells `hostId` everything the router is to be: its network's VM entries and, for an isolated
 * network, its public side and rules. The agent makes a running router match it. With `boot`, a
 * big network's router gets the entries of the VMs in `boot.first` and the first few hundred
 * (router-entries.ts), and the rest in the background once it runs: answers where that fill
 * continues. Without it, every entry.
 */
async function sendRouterSpec(
  app: App,
  router: RouterRow,
  network: NetworkRow,
  hostId: number,
  boot?: { first: number[] },
): Promise<number | undefined> {
  const { entries, withPassword, more } = boot
    ? await bootEntries(app, [network.id], boot.first)
    : await vmEntries(app, network.id);
  const pub = router.public_mac ? await routerPublicSide(app, network, router.public_mac) : undefined;
  await app.agents.call(hostId, 'startRouter', {
    router: {
      name: router.name,
      guests: [
        {
          network: guestNetwork(network, { gatewayOnHost: true, peers: [] }),
          ip: router.guest_ip,
          mac: router.guest_mac,
        },
      ],
      vms: entries,
      ...(pub ? { public: pub } : {}),
      ...(network.guest_type === 'Isolated' ? { rules: await routerRulesFor(app, network) } : {}),
      ...(network.guest_type === 'Isolated' ? await vpnField(app, { networkId: network.id }) : {}),
    },
  });
  await passwordsHandedOver(app, withPassword);
  return more;
}

/**
 * Boots a Stopped router on `hostId` with its network's VM entries: those of `first` (the VMs
 * starting now) at once and, on a big network, the rest in the background once it runs. On the
 * host it last ran on, which may still hold every entry, it gets them all in its start instead.
 */
export async function bootRouter(
  app: App,
  router: RouterRow,
  hostId: number,
  why: string,
  first: number[] = [],
): Promise<RouterRow> {
  if (router.vpc_id !== null) return bootVpcRouter(app, router, hostId, why);
  const network = await networkOf(app, router.network_id);
  let more: number | undefined;
  const booted = await startRouterOn(app, router, hostId, why, async () => {
    await carryNetwork(app, network, hostId, { routerHost: hostId });
    const partial = router.last_host_id !== hostId ? { first } : undefined;
    more = await sendRouterSpec(app, router, network, hostId, partial);
  });
  if (more !== undefined) fillRouter(app, booted, hostId, more);
  return booted;
}

/**
 * The one start sequence of every router: Starting on `hostId`, `send` gives the agent the whole
 * configuration, then Running with a ROUTER.START event; on failure Stopped with an ERROR event.
 */
export async function startRouterOn(
  app: App,
  router: RouterRow,
  hostId: number,
  why: string,
  send: (starting: RouterRow) => Promise<void>,
): Promise<RouterRow> {
  const host = await app.store.db
    .selectFrom('hosts')
    .select(['pod_id', 'hypervisor'])
    .where('id', '=', hostId)
    .executeTakeFirst();
  let current = await setRouter(app, router.id, {
    state: 'Starting',
    host_id: hostId,
    pod_id: host?.pod_id ?? router.pod_id,
    hypervisor: host?.hypervisor ?? router.hypervisor,
  });
  try {
    await send(current);
    current = await setRouter(app, router.id, { state: 'Running', last_host_id: hostId });
    await routerEvent(app, current, 'ROUTER.START', `started router ${router.name} (${why})`);
    return current;
  } catch (e) {
    await setRouter(app, router.id, { state: 'Stopped', host_id: null });
    await routerEvent(
      app,
      current,
      'ROUTER.START',
      `router ${router.name} failed to start: ${(e as Error).message}`,
      'ERROR',
    );
    throw e;
  }
}

/**
 * Gets a network ready to carry a VM start: an isolated network is implemented first (its VXLAN
 * id and source-NAT address), under the network's lock so concurrent first starts do it once.
 */
export function networkReadyFor(app: App, network: NetworkRow): Promise<NetworkRow> {
  if (network.guest_type !== 'Isolated' || network.state === 'Implemented') return Promise.resolve(network);
  return withNetworkLock(app, network.id, async () =>
    implementNetwork(app, await networkOf(app, network.id)),
  );
}

/**
 * restartNetwork: every rule re-applied on the running router or, with `cleanup`, the router
 * destroyed and a fresh one booted (on the same host when it is connected) with everything the
 * records say. A network no VM has started yet has nothing to restart.
 */
export async function restartNetworkRouter(app: App, network: NetworkRow, cleanup: boolean): Promise<void> {
  // A tier's router is its VPC's: restarting the tier restarts it with every tier.
  if (network.vpc_id !== null) {
    await restartVpcRouter(app, await vpcOf(app, network.vpc_id), cleanup);
    return;
  }
  await withNetworkLock(app, network.id, async () => {
    const router = await liveRouter(app, network.id);
    if (!router) return;
    if (
      !cleanup &&
      router.state === 'Running' &&
      router.host_id !== null &&
      app.agents.isConnected(router.host_id)
    ) {
      await sendRouterSpec(app, router, await networkOf(app, network.id), router.host_id);
      return;
    }
    const host =
      router.host_id !== null && app.agents.isConnected(router.host_id) ? router.host_id : undefined;
    const stopped = await haltRouter(app, router, true);
    if (cleanup) {
      await app.store.db.transaction().execute((tx) => removeRouterRecords(app, tx, [stopped]));
      await routersDestroyed(app, [stopped]);
      const fresh = await createRouter(
        app,
        await networkOf(app, network.id),
        { podId: stopped.pod_id, hypervisor: stopped.hypervisor },
        stopped.public_mac,
      );
      await bootRouter(app, fresh, host ?? (await hostForRouter(app, fresh)), 'restartNetwork cleanup');
    } else await bootRouter(app, stopped, host ?? (await hostForRouter(app, stopped)), 'restartNetwork');
  });
}

/**
 * Before a VM of `network` starts on `hostId`: the network's router exists and is Running (created
 * or restarted on this host if need be) and knows the VM. When this returns the VM may boot and
 * ask for its address.
 */
export async function routerReadyFor(
  app: App,
  network: NetworkRow,
  vmId: number,
  place: { hostId: number; podId: number | null; hypervisor: string | null },
): Promise<RouterRow> {
  if (network.vpc_id !== null) return vpcRouterReadyFor(app, network, place);
  // The common case, a running router: just add the VM's entry, without waiting on other starts.
  const running = await liveRouter(app, network.id);
  if (running && (await addEntry(app, running, vmId))) return running;
  return withNetworkLock(app, network.id, async () => {
    const router = (await liveRouter(app, network.id)) ?? (await createRouter(app, network, place));
    if (await addEntry(app, router, vmId)) return router;
    if (router.state === 'Running')
      app.log.warn({ router: router.name }, 'router host not connected; restarting the router');
    // Booting puts this VM's entry on the router at once, and every other entry of the network.
    return bootRouter(app, router, place.hostId, `for VM ${vmId}`, [vmId]);
  });
}

/**
 * Adds a VM's entry to a running, reachable router; false when the router is not there to take it
 * (and is then booted on the VM's host). Reachability is read from the database, not the gateway's
 * few-seconds-old hint of peers' hosts: a router just started on a host another server holds would
 * otherwise look lost and be started a second time.
 */
async function addEntry(app: App, router: RouterRow, vmId: number): Promise<boolean> {
  if (router.state !== 'Running' || router.host_id === null || !(await app.agents.reachable(router.host_id)))
    return false;
  const { entries, withPassword } = await vmEntries(app, router.network_id, [vmId]);
  if (entries.length) {
    await app.agents.call(router.host_id, 'updateRouter', { name: router.name, add: entries, remove: [] });
    await passwordsHandedOver(app, withPassword);
  }
  return true;
}

/** Joins a NIC's network to the router serving it: the network's own, or its VPC's. */
const servingRouter = (join: JoinBuilder<Database, 'nics' | 'networks' | 'routers'>) =>
  join.on((eb) =>
    eb.or([
      eb('routers.live_network_id', '=', eb.ref('nics.network_id')),
      eb('routers.live_vpc_id', '=', eb.ref('networks.vpc_id')),
    ]),
  );

/** A VM's new password, or changed metadata, for its running routers (resetPassword on a Running VM). */
export async function refreshRouterEntries(app: App, vmId: number): Promise<void> {
  const nets = await app.store.db
    .selectFrom('nics')
    .innerJoin('networks', 'networks.id', 'nics.network_id')
    .innerJoin('routers', servingRouter)
    .select(['routers.name', 'routers.host_id', 'routers.state', 'nics.network_id'])
    .where('nics.vm_id', '=', vmId)
    .where('nics.removed', 'is', null)
    .execute();
  for (const n of nets) {
    if (n.state !== 'Running' || n.host_id === null || !app.agents.isConnected(n.host_id)) continue;
    const { entries, withPassword } = await vmEntries(app, n.network_id, [vmId]);
    await app.agents.call(n.host_id, 'updateRouter', { name: n.name, add: entries, remove: [] });
    await passwordsHandedOver(app, withPassword);
  }
}

/**
 * On expunge: the VM's entries leave its networks' running routers; with `nicId` (a NIC removed
 * from the VM) only that NIC's entry leaves its network's router. Failures are logged.
 */
export async function removeRouterEntries(app: App, vmId: number, nicId?: number): Promise<void> {
  let q = app.store.db
    .selectFrom('nics')
    .innerJoin('networks', 'networks.id', 'nics.network_id')
    .innerJoin('routers', servingRouter)
    .select(['routers.name', 'routers.host_id', 'routers.state', 'nics.mac'])
    .where('nics.vm_id', '=', vmId);
  if (nicId !== undefined) q = q.where('nics.id', '=', nicId);
  const nics = await q.execute();
  for (const n of nics) {
    if (n.state !== 'Running' || n.host_id === null) continue;
    await app.agents
      .call(n.host_id, 'updateRouter', { name: n.name, add: [], remove: [n.mac] })
      .catch((err) =>
        app.log.warn(
          { router: n.name, err: (err as Error).message },
          'could not remove a VM from its router',
        ),
      );
  }
}

/**
 * Brings the network's running router in line with the records: its public addresses and every
 * rule on them (router-rules.ts builds the whole set). Call it after the change is committed; it
 * throws when the router's host refuses or cannot be reached, so the caller can undo the change
 * and fail its job. A router that is not running gets everything when it next boots.
 */
export async function applyNetworkRules(
  app: App,
  networkId: number,
): Promise<{ applied: boolean; loadBalancerMs?: number }> {
  const tier = await app.store.db
    .selectFrom('networks')
    .select('vpc_id')
    .where('id', '=', networkId)
    .executeTakeFirst();
  // A tier's rules are enforced by its VPC's router, which gets the whole VPC's set.
  if (tier?.vpc_id != null) return applyVpcRouter(app, tier.vpc_id);
  return withNetworkLock(app, networkId, async () => {
    const router = await liveRouter(app, networkId);
    if (router?.state !== 'Running' || router.host_id === null) return { applied: false };
    if (!app.agents.isConnected(router.host_id))
      throw resourceUnavailable(
        `The network's router ${router.name} cannot be reached: its host is not connected`,
      );
    const network = await networkOf(app, networkId);
    const pub = router.public_mac ? await routerPublicSide(app, network, router.public_mac) : undefined;
    const rules = await routerRulesFor(app, network);
    const answer = await app.agents.call(router.host_id, 'applyRouterRules', {
      name: router.name,
      ...(pub ? { public: pub } : {}),
      rules,
    });
    return {
      applied: true,
      ...(answer.loadBalancerMs !== undefined ? { loadBalancerMs: answer.loadBalancerMs } : {}),
    };
  });
}

/**
 * After a change the caller cannot undo (a VM expunged, an account deleted): each network's
 * router gets its whole rule set again. A router that cannot be told is logged; it gets the whole
 * set with the next change or when it boots.
 */
export async function reapplyNetworkRules(app: App, networkIds: number[], why: string): Promise<void> {
  await Promise.all(
    [...new Set(networkIds)].map((id) =>
      applyNetworkRules(app, id).catch((err) =>
        app.log.warn(
          { err: (err as Error).message, networkId: id },
          `router rules not re-applied after ${why}`,
        ),
      ),
    ),
  );
}

/** Routers on hosts that went Down are Stopped; the next VM start brings them up elsewhere. */
export async function routersOfDownHosts(app: App, hostIds: number[]): Promise<void> {
  if (hostIds.length === 0) return;
  const routers = await app.store.db
    .selectFrom('routers')
    .selectAll()
    .where('host_id', 'in', hostIds)
    .where('removed', 'is', null)
    .execute();
  for (const r of routers) {
    await setRouter(app, r.id, { state: 'Stopped', host_id: null });
    await routerEvent(app, r, 'ROUTER.STOP', `router ${r.name} Stopped: its host is Down`, 'WARN');
  }
}

/** Runs `step` on each router still on `hostId` once its network's lock is held, as it is then. */
async function eachRouterOn(
  app: App,
  hostId: number,
  step: (router: RouterRow) => Promise<void>,
): Promise<void> {
  const routers = await app.store.db
    .selectFrom('routers')
    .select(['id', 'network_id', 'vpc_id'])
    .where('host_id', '=', hostId)
    .where('removed', 'is', null)
    .execute();
  for (const r of routers)
    await withNetworkLock(app, routerLockKey(r), async () => {
      const current = await app.store.db
        .selectFrom('routers')
        .selectAll()
        .where('id', '=', r.id)
        .executeTakeFirstOrThrow();
      if (current.host_id === hostId) await step(current);
    });
}

/**
 * A host being removed runs no router any more: each router there is stopped on it (forced, so a
 * host that does not answer still lets go of it) and marked Stopped, so the next VM start brings
 * it up on a host that stays. Without this its namespace and processes would outlive the host row.
 */
export function routersOfRemovedHost(app: App, hostId: number): Promise<void> {
  return eachRouterOn(app, hostId, async (router) => {
    await haltRouter(app, router, true);
  });
}

/**
 * A host entering maintenance hands its routers over: each one is stopped there and booted on
 * another connected host of its zone (preferably one running VMs of its network), so the network
 * keeps DHCP, DNS and metadata while the host is serviced. With no other host it stays Stopped and
 * the next VM start brings it up. A router that cannot be stopped, or fails to start elsewhere,
 * refuses the maintenance with the reason (the router is then Stopped: startRouter brings it back).
 */
export function routersOfHostInMaintenance(app: App, host: { id: number; name: string }): Promise<void> {
  return eachRouterOn(app, host.id, async (router) => {
    const refuse = (why: string) =>
      resourceInUse(`Host ${host.name} cannot enter maintenance: router ${router.name} ${why}`);
    const halted = await haltRouter(app, router, false).catch((e) => {
      throw refuse(`could not be stopped: ${(e as Error).message}`);
    });
    const target = await hostForRouter(app, halted, host.id).catch(() => undefined);
    if (target === undefined) return;
    await bootRouter(app, halted, target, `moved off host ${host.name}, entering maintenance`).catch((e) => {
      throw refuse(`could not be started on another host: ${(e as Error).message}`);
    });
  });
}

/** What says which networks a new router serves and where it runs; the rest is a new router's. */
type NewRouter = Pick<
  Insertable<RouterTable>,
  | 'network_id'
  | 'live_network_id'
  | 'vpc_id'
  | 'live_vpc_id'
  | 'zone_id'
  | 'pod_id'
  | 'nic_id'
  | 'guest_ip'
  | 'guest_mac'
  | 'public_mac'
  | 'hypervisor'
>;

/**
 * Inserts a Stopped router and names it r-<id>-VM, a name that needs the row's id. The unique
 * live_network_id / live_vpc_id make a second router for the same network or VPC fail here.
 */
export async function insertRouter(app: App, tx: Tx, router: NewRouter): Promise<number> {
  const now = app.clock.now();
  const uuid = app.ids.uuid();
  await tx
    .insertInto('routers')
    .values({
      ...router,
      uuid,
      name: `pending-${uuid}`,
      host_id: null,
      last_host_id: null,
      state: 'Stopped',
      version: ROUTER_VERSION,
      created: now,
      updated: now,
      removed: null,
    })
    .execute();
  const { id } = await tx
    .selectFrom('routers')
    .select('id')
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
  await tx
    .updateTable('routers')
    .set({ name: `r-${id}-VM` })
    .where('id', '=', id)
    .execute();
  return id;
}

/**
 * Where a Stopped router goes: its last host if connected, else a connected host carrying its
 * network (for a VPC router, any of its tiers), else any connected host of the zone; never
 * `avoid` (a host entering maintenance).
 */
export async function hostForRouter(app: App, router: RouterRow, avoid?: number): Promise<number> {
  const usable = (h: number) => h !== avoid && app.agents.isConnected(h);
  if (router.last_host_id !== null && usable(router.last_host_id)) return router.last_host_id;
  const db = app.store.db;
  // The networks the router serves: its network, or every tier of its VPC.
  const candidates = await db
    .selectFrom('vms')
    .innerJoin('nics', 'nics.vm_id', 'vms.id')
    .innerJoin('networks', 'networks.id', 'nics.network_id')
    .select('vms.host_id')
    .distinct()
    .where((eb) =>
      router.vpc_id !== null
        ? eb('networks.vpc_id', '=', router.vpc_id)
        : eb('nics.network_id', '=', router.network_id),
    )
    .where('nics.removed', 'is', null)
    .where('vms.state', '=', 'Running')
    .where('vms.host_id', 'is not', null)
    .execute();
  const zoneHosts = await db
    .selectFrom('hosts')
    .select('id')
    .where('zone_id', '=', router.zone_id)
    .where('state', '=', 'Up')
    .where('resource_state', '=', 'Enabled')
    .where('removed', 'is', null)
    .orderBy('id')
    .execute();
  const pick = [...candidates.map((c) => c.host_id!), ...zoneHosts.map((h) => h.id)].find(usable);
  if (pick === undefined)
    throw new ApiError(
      ErrorCode.INSUFFICIENT_CAPACITY,
      CsErrorCode.INSUFFICIENT_CAPACITY,
      `No connected host in the zone can run router ${router.name}`,
    );
  return pick;
}

/** Stops a router on its host; `forced` marks it Stopped even when the host cannot be reached. */
export async function haltRouter(app: App, router: RouterRow, forced: boolean): Promise<RouterRow> {
  if (router.state === 'Stopped') return router;
  await setRouter(app, router.id, { state: 'Stopping' });
  try {
    if (router.host_id !== null) await app.agents.call(router.host_id, 'stopRouter', { name: router.name });
  } catch (e) {
    if (!forced) {
      await setRouter(app, router.id, { state: router.state });
      throw e;
    }
  }
  const stopped = await setRouter(app, router.id, { state: 'Stopped', host_id: null });
  await routerEvent(app, stopped, 'ROUTER.STOP', `stopped router ${router.name}`);
  return stopped;
}

/**
 * The records side of destroying stopped routers: their guest address and MAC go back to the
 * allocators and they are marked Destroyed (which frees the network's live router slot).
 */
export async function removeRouterRecords(app: App, tx: Tx, routers: RouterRow[]): Promise<void> {
  if (routers.length === 0) return;
  const now = app.clock.now();
  // Its guest NICs: the one it was made with, and a VPC router's one per tier.
  const tierNics = await tx
    .selectFrom('nics')
    .select('id')
    .where(
      'router_id',
      'in',
      routers.map((r) => r.id),
    )
    .where('removed', 'is', null)
    .execute();
  const nicIds = [
    ...new Set([
      ...routers.map((r) => r.nic_id).filter((id): id is number => id !== null),
      ...tierNics.map((n) => n.id),
    ]),
  ];
  if (nicIds.length) {
    await tx.deleteFrom('guest_ip_allocations').where('nic_id', 'in', nicIds).execute();
    await tx
      .updateTable('nics')
      .set({ state: 'Deallocated', removed: now })
      .where('id', 'in', nicIds)
      .execute();
  }
  for (const r of routers) await systemVmMoved({ app }, tx, r, 'Destroyed');
  await tx
    .updateTable('routers')
    .set({ state: 'Destroyed', live_network_id: null, live_vpc_id: null, removed: now, updated: now })
    .where(
      'id',
      'in',
      routers.map((r) => r.id),
    )
    .execute();
}

export async function routersDestroyed(app: App, routers: RouterRow[]): Promise<void> {
  for (const r of routers) await routerEvent(app, r, 'ROUTER.DESTROY', `destroyed router ${r.name}`);
}

/**
 * For deleteNetwork, under the network's lock: stops every router of the network on its host.
 * `forced`: a host that cannot be reached does not keep the router from being marked Stopped.
 * Returns what `destroy` (run in the deletion's transaction) and `destroyed` (after it committed)
 * then finish, so the routers' records go with the network's or not at all.
 */
export async function stopNetworkRouters(
  app: App,
  networkId: number,
  forced: boolean,
): Promise<{ destroy: (tx: Tx) => Promise<void>; destroyed: () => Promise<void> }> {
  const routers = await app.store.db
    .selectFrom('routers')
    .selectAll()
    .where('network_id', '=', networkId)
    .where('removed', 'is', null)
    .execute();
  const stopped: RouterRow[] = [];
  for (const r of routers) stopped.push(await haltRouter(app, r, forced));
  return {
    destroy: (tx) => removeRouterRecords(app, tx, stopped),
    destroyed: () => routersDestroyed(app, stopped),
  };
}
