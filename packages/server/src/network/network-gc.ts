/**
 * The network garbage collector, as upstream's: an implemented isolated network on which no VM
 * runs is shut down once it has stayed idle for network.gc.wait seconds (checked every
 * network.gc.interval seconds, on one management server). Shutting down destroys its router,
 * tears its bridges and VXLAN links down on the hosts and gives its VNI back; the network is
 * Allocated again and keeps its public addresses and rules, which the next VM start's implement
 * puts on a fresh router.
 */
import type { App } from '../context.ts';
import type { NetworkRow } from '../db/schema.ts';
import { recordStateChange } from '../events/state-events.ts';
import { startScheduled } from '../jobs/scheduled.ts';
import { defineSetting } from '../settings/settings.ts';
import { tearDownNetwork } from './host-network.ts';
import { stopNetworkRouters, withNetworkLock } from './routers.ts';

export const NETWORK_GC_WAIT = defineSetting({
  name: 'network.gc.wait',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 600,
  min: 1,
  description: 'Seconds an implemented isolated network stays without running VMs before it is shut down.',
});

export const NETWORK_GC_INTERVAL = defineSetting({
  name: 'network.gc.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 600,
  min: 1,
  description: 'Seconds between two runs of the network garbage collector.',
});

/** VM states in which a VM holds its network: it runs, or is on its way in or out. */
const BUSY_STATES = ['Starting', 'Running', 'Stopping', 'Migrating'];

/** When each idle network was first seen idle by this server (memory: a new leader starts over). */
const idleSince = new WeakMap<App, Map<number, number>>();

function busy(app: App, networkId: number) {
  return app.store.db
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .select('vms.id')
    .where('nics.network_id', '=', networkId)
    .where('nics.removed', 'is', null)
    .where('vms.state', 'in', BUSY_STATES)
    .executeTakeFirst();
}

/**
 * Shuts an idle network down, under its router lock so that no VM start implements it meanwhile
 * (a VM that started while the lock was awaited keeps it up). Hosts that cannot be reached keep
 * what they have until the network is deleted.
 */
async function shutDown(app: App, network: NetworkRow): Promise<boolean> {
  return withNetworkLock(app, network.id, async () => {
    const current = await app.store.db
      .selectFrom('networks')
      .selectAll()
      .where('id', '=', network.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (current?.state !== 'Implemented' || (await busy(app, network.id))) return false;
    const routers = await stopNetworkRouters(app, network.id, true);
    await tearDownNetwork(app, current, true);
    await app.store.db.transaction().execute(async (tx) => {
      await routers.destroy(tx);
      await tx
        .updateTable('networks')
        .set({ state: 'Allocated', vni: null, broadcast_uri: null })
        .where('id', '=', network.id)
        .execute();
      await recordStateChange({ app }, tx, {
        resource: 'Network',
        uuid: current.uuid,
        event: 'DestroyNetwork',
        oldState: current.state,
        newState: 'Allocated',
      });
    });
    await routers.destroyed();
    app.log.info({ network: network.uuid }, 'network shut down by the garbage collector');
    return true;
  });
}

/** One collector pass at `now`: returns the networks it shut down. */
export async function collectNetworks(app: App, now: number): Promise<string[]> {
  let seen = idleSince.get(app);
  if (!seen) {
    seen = new Map();
    idleSince.set(app, seen);
  }
  const implemented = await app.store.db
    .selectFrom('networks')
    .selectAll()
    .where('state', '=', 'Implemented')
    .where('guest_type', '=', 'Isolated')
    // VPC tiers stay plugged into their VPC's router (and keep their VNI) while they exist.
    .where('vpc_id', 'is', null)
    .where('removed', 'is', null)
    .execute();
  const wait = app.settings.get(NETWORK_GC_WAIT) * 1000;
  const live = new Set<number>();
  const done: string[] = [];
  for (const network of implemented) {
    live.add(network.id);
    if (await busy(app, network.id)) {
      seen.delete(network.id);
      continue;
    }
    const since = seen.get(network.id) ?? now;
    seen.set(network.id, since);
    if (now - since < wait) continue;
    seen.delete(network.id);
    if (
      await shutDown(app, network).catch((err) =>
        app.log.warn({ err, network: network.uuid }, 'network GC failed'),
      )
    )
      done.push(network.uuid);
  }
  for (const id of seen.keys()) if (!live.has(id)) seen.delete(id);
  return done;
}

/** Runs the collector every network.gc.interval seconds on the server holding its lease. */
export function startNetworkGc(app: App): () => void {
  return startScheduled(app, {
    name: 'network-gc',
    everyMs: () => app.settings.get(NETWORK_GC_INTERVAL) * 1000,
    run: () => collectNetworks(app, app.clock.now()),
  });
}
