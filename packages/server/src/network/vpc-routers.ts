/**
 * A VPC's virtual router: the same router as an isolated network's (a namespace on one host), with
 * one guest interface per tier holding the tier's gateway, and one public side holding every
 * public address of the VPC, the VPC's source-NAT address first. It is created and booted with the
 * VPC (createVPC start=true), gets a tier's interface when the tier is created, and is always sent
 * its whole configuration (`startRouter`: tiers, VM entries, public side, rules), so a router that
 * missed a change is right after the next one.
 *
 * Records: a `routers` row with `vpc_id` and the unique `live_vpc_id` (one live router per VPC);
 * its `network_id` is the zone's Public network (its public side), and its guest NICs are `nics`
 * rows with `router_id` set, one per tier, holding the tier's gateway address and a MAC from the
 * allocator. Operations on one VPC's router run one at a time (`vpcLockKey`), as a network's do.
 */
import type { RouterFirewallRule, RouterGuest, RouterRules, RouterSpec } from '@nimbostack/protocol';
import type { App } from '../context.ts';
import type { NetworkRow, RouterRow, VpcRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
import { systemOwner } from './common.ts';
import { carryNetwork, guestNetwork } from './host-network.ts';
import { allocateNics } from './nics.ts';
import { acquirePublicIp, HELD_STATES } from './public-ips.ts';
import { passwordsHandedOver, vmEntries } from './router-entries.ts';
import { publicSideOf, rulesOf } from './router-rules.ts';
import {
  haltRouter,
  hostForRouter,
  insertRouter,
  publicMac,
  removeRouterRecords,
  routerEvent,
  routersDestroyed,
  startRouterOn,
  withNetworkLock,
} from './routers.ts';
import { livePrivateGateways, privateNetwork, vpcRoutingOf } from './vpc-routing.ts';
import { vpnField } from './vpn/vpn-spec.ts';

/** The lock key of a VPC's router operations (networks lock on their numeric id). */
export const vpcLockKey = (vpcId: number) => `vpc-${vpcId}`;

export function vpcOf(app: App, vpcId: number): Promise<VpcRow> {
  return app.store.db.selectFrom('vpcs').selectAll().where('id', '=', vpcId).executeTakeFirstOrThrow();
}

/** The VPC's router while it is not destroyed. */
export function liveVpcRouter(app: App, vpcId: number): Promise<RouterRow | undefined> {
  return app.store.db.selectFrom('routers').selectAll().where('live_vpc_id', '=', vpcId).executeTakeFirst();
}

/** The VPC's tiers that are not deleted, oldest first (the first one is the router's eth0). */
export function vpcTiers(app: App, vpcId: number): Promise<NetworkRow[]> {
  return app.store.db
    .selectFrom('networks')
    .selectAll()
    .where('vpc_id', '=', vpcId)
    .where('removed', 'is', null)
    .orderBy('id')
    .execute();
}

/** The zone's Public network, which a VPC router's row names as its network (its public side). */
async function publicNetworkOf(app: App, zoneId: number): Promise<number> {
  const row = await app.store.db
    .selectFrom('networks')
    .select('id')
    .where('zone_id', '=', zoneId)
    .where('traffic_type', '=', 'Public')
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!row)
    throw new ApiError(
      ErrorCode.INSUFFICIENT_CAPACITY,
      CsErrorCode.INSUFFICIENT_CAPACITY,
      'The zone has no public IP range: a VPC router needs a public address',
    );
  return row.id;
}

/** Creates the VPC's router record (state Stopped); a concurrent creation's router is returned. */
export async function createVpcRouter(
  app: App,
  vpc: VpcRow,
  place: { podId: number | null; hypervisor: string | null },
  /** A router that replaces another keeps its public MAC, so neighbours' ARP entries stay right. */
  keepPublicMac?: string | null,
): Promise<RouterRow> {
  const networkId = await publicNetworkOf(app, vpc.zone_id);
  try {
    const id = await app.store.db.transaction().execute((tx) =>
      insertRouter(app, tx, {
        network_id: networkId,
        live_network_id: null,
        vpc_id: vpc.id,
        live_vpc_id: vpc.id,
        zone_id: vpc.zone_id,
        pod_id: place.podId,
        nic_id: null,
        // Its guest addresses are the tiers' gateways, on its NICs (one per tier).
        guest_ip: '',
        guest_mac: '',
        public_mac: keepPublicMac ?? publicMac(app),
        hypervisor: place.hypervisor,
      }),
    );
    const router = await app.store.db
      .selectFrom('routers')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    await routerEvent(app, router, 'ROUTER.CREATE', `created router ${router.name} for VPC ${vpc.name}`);
    return router;
  } catch (e) {
    // Another server created it first (the live_vpc_id key).
    const existing = await liveVpcRouter(app, vpc.id);
    if (existing) return existing;
    throw e;
  }
}

/**
 * The router's guest NIC in each implemented tier (the tier's gateway address), made for tiers
 * that have none yet. Tiers without a VNI (not implemented) are not plugged.
 */
async function tierNics(
  app: App,
  router: RouterRow,
  tiers: NetworkRow[],
): Promise<Map<number, { ip: string; mac: string }>> {
  const db = app.store.db;
  const plugged = tiers.filter((t) => t.vni !== null);
  const out = new Map<number, { ip: string; mac: string }>();
  if (plugged.length === 0) return out;
  const existing = await db
    .selectFrom('nics')
    .select(['network_id', 'ip4', 'mac'])
    .where('router_id', '=', router.id)
    .where('removed', 'is', null)
    .execute();
  for (const n of existing) if (n.ip4) out.set(n.network_id, { ip: n.ip4, mac: n.mac });
  const owner = await systemOwner(app);
  for (const tier of plugged) {
    if (out.has(tier.id)) continue;
    const nic = await db.transaction().execute(async (tx) => {
      const [made] = await allocateNics({ app }, tx, {
        // Router NICs have no VM: vm_id 0 never names one (ids start at 1).
        vm: { id: 0, uuid: '', accountId: owner.accountId, zoneId: tier.zone_id, podId: router.pod_id },
        networkIds: [tier.id],
        ipAddress: tier.gateway ?? undefined,
      });
      await tx.updateTable('nics').set({ router_id: router.id }).where('id', '=', made!.id).execute();
      return made!;
    });
    out.set(tier.id, { ip: nic.ip4, mac: nic.mac });
  }
  return out;
}

/** Gives back the router's NIC (gateway address and MAC) in a tier it no longer serves. */
async function releaseTierNic(app: App, router: RouterRow, tierId: number): Promise<void> {
  await app.store.db.transaction().execute(async (tx) => {
    const nics = await tx
      .selectFrom('nics')
      .select('id')
      .where('router_id', '=', router.id)
      .where('network_id', '=', tierId)
      .where('removed', 'is', null)
      .execute();
    if (nics.length === 0) return;
    const ids = nics.map((n) => n.id);
    await tx.deleteFrom('guest_ip_allocations').where('nic_id', 'in', ids).execute();
    await tx
      .updateTable('nics')
      .set({ state: 'Deallocated', removed: app.clock.now() })
      .where('id', 'in', ids)
      .execute();
  });
}

/** Everything the VPC's router is to be; `without` leaves a tier out (it is being deleted). */
async function vpcRouterSpec(
  app: App,
  router: RouterRow,
  vpc: VpcRow,
  without?: number,
): Promise<{ spec: RouterSpec; withPassword: number[]; tiers: NetworkRow[] }> {
  const tiers = (await vpcTiers(app, vpc.id)).filter((t) => t.id !== without);
  const nics = await tierNics(app, router, tiers);
  const served = tiers.filter((t) => nics.has(t.id));
  const guests: RouterGuest[] = served.map((t) => ({
    network: guestNetwork(t, { gatewayOnHost: false, peers: [] }),
    ...nics.get(t.id)!,
  }));
  const { entries, withPassword } = await vmEntries(
    app,
    served.map((t) => t.id),
  );
  const pub = await publicSideOf(app, vpc.zone_id, { vpcId: vpc.id }, router.public_mac ?? '');
  const rules = await rulesOf(app, {
    networkIds: served.map((t) => t.id),
    ips: { vpcId: vpc.id },
    // What leaves a tier is decided by its network ACL (`vpc` below), not by an egress policy.
    egressDefaultAllow: true,
  });
  rules.firewall.push(...natOpenings(rules));
  const routing = await vpcRoutingOf(app, vpc, served);
  return {
    spec: {
      name: router.name,
      guests,
      vms: entries,
      ...(pub ? { public: pub } : {}),
      rules,
      vpc: routing,
      ...(await vpnField(app, { vpcId: vpc.id })),
    },
    withPassword,
    tiers: served,
  };
}

/**
 * A VPC has no Firewall service: whatever its static NAT and port forwards map into a tier is let
 * in on the public side, and the tier's network ACL (its Ingress chain) decides, as upstream's VPC
 * router does. Without these openings the public side's default deny would drop static NAT.
 */
function natOpenings(rules: RouterRules): RouterFirewallRule[] {
  return [
    ...rules.staticNats.map((s) => ({
      publicIp: s.publicIp,
      protocol: 'all' as const,
      sourceCidrs: [],
      destCidrs: [],
    })),
    ...rules.portForwards.map((f) => ({
      publicIp: f.publicIp,
      protocol: f.protocol,
      startPort: f.publicStart,
      endPort: f.publicEnd,
      sourceCidrs: [],
      destCidrs: [],
    })),
  ];
}

/** Sends the router its whole configuration on `hostId` (its tiers carried there first). */
async function sendVpcRouter(app: App, router: RouterRow, hostId: number, without?: number): Promise<void> {
  const vpc = await vpcOf(app, router.vpc_id!);
  const { spec, withPassword, tiers } = await vpcRouterSpec(app, router, vpc, without);
  for (const tier of tiers) await carryNetwork(app, tier, hostId, { routerHost: hostId });
  // Private gateways' networks: a bridge on the router's host (vpc-routing.ts, privateNetwork).
  for (const g of await livePrivateGateways(app, vpc.id))
    await app.agents.call(hostId, 'setupNetwork', { network: privateNetwork(g) });
  await app.agents.call(hostId, 'startRouter', { router: spec });
  await passwordsHandedOver(app, withPassword);
}

/** Boots a Stopped VPC router on `hostId` with every tier, entry, address and rule (bootRouter's VPC half). */
export function bootVpcRouter(app: App, router: RouterRow, hostId: number, why: string): Promise<RouterRow> {
  return startRouterOn(app, router, hostId, why, (starting) => sendVpcRouter(app, starting, hostId));
}

/**
 * The VPC's source-NAT public address (acquired once, with the VPC's router) and state Enabled.
 * Called under the VPC's router lock.
 */
export async function implementVpc(app: App, vpc: VpcRow): Promise<void> {
  await app.store.db.transaction().execute(async (tx) => {
    const has = await tx
      .selectFrom('public_ips')
      .select('id')
      .where('vpc_id', '=', vpc.id)
      .where('source_nat', '=', 1)
      .where('state', 'in', HELD_STATES)
      .executeTakeFirst();
    if (!has)
      await acquirePublicIp(app, tx, {
        zoneId: vpc.zone_id,
        accountId: vpc.account_id,
        domainId: vpc.domain_id,
        networkId: null,
        vpcId: vpc.id,
        sourceNat: true,
      });
    await tx.updateTable('vpcs').set({ state: 'Enabled' }).where('id', '=', vpc.id).execute();
  });
}

/** The VPC's router exists and runs (createVPC start=true, restartVPC, a tier's first VM start). */
export function startVpcRouter(
  app: App,
  vpc: VpcRow,
  place?: { hostId: number; podId: number | null; hypervisor: string | null },
): Promise<RouterRow> {
  return withNetworkLock(app, vpcLockKey(vpc.id), async () => {
    await implementVpc(app, vpc);
    const router =
      (await liveVpcRouter(app, vpc.id)) ??
      (await createVpcRouter(app, vpc, {
        podId: place?.podId ?? null,
        hypervisor: place?.hypervisor ?? null,
      }));
    // Read from the database (see addEntry in routers.ts): a router just started on a peer's host
    // is not lost.
    if (router.state === 'Running' && router.host_id !== null && (await app.agents.reachable(router.host_id)))
      return router;
    const host = place?.hostId ?? (await hostForRouter(app, router));
    const stopped = router.state === 'Stopped' ? router : await haltRouter(app, router, true);
    return bootVpcRouter(app, stopped, host, `for VPC ${vpc.name}`);
  });
}

/**
 * Before a VM of a tier starts on `place.hostId`: the VPC's router runs, has the tier's interface
 * and knows the VM. The whole configuration is sent (one round trip), so a tier the router missed
 * is plugged here too.
 */
export async function vpcRouterReadyFor(
  app: App,
  tier: NetworkRow,
  place: { hostId: number; podId: number | null; hypervisor: string | null },
): Promise<RouterRow> {
  const vpc = await vpcOf(app, tier.vpc_id!);
  const router = await startVpcRouter(app, vpc, place);
  return withNetworkLock(app, vpcLockKey(vpc.id), async () => {
    const current = (await liveVpcRouter(app, vpc.id)) ?? router;
    if (current.host_id !== null) await sendVpcRouter(app, current, current.host_id);
    return current;
  });
}

/**
 * Brings the running VPC router in line with the records (a tier created, addresses or rules
 * changed). Throws when its host refuses or cannot be reached, so callers can undo and fail; a
 * router that is not running gets everything when it boots.
 */
export function applyVpcRouter(app: App, vpcId: number): Promise<{ applied: boolean }> {
  return withNetworkLock(app, vpcLockKey(vpcId), async () => {
    const router = await liveVpcRouter(app, vpcId);
    if (router?.state !== 'Running' || router.host_id === null) return { applied: false };
    if (!app.agents.isConnected(router.host_id))
      throw new ApiError(
        ErrorCode.RESOURCE_UNAVAILABLE,
        CsErrorCode.RESOURCE_UNAVAILABLE,
        `The VPC's router ${router.name} cannot be reached: its host is not connected`,
      );
    await sendVpcRouter(app, router, router.host_id);
    return { applied: true };
  });
}

/**
 * Before a tier is deleted: the running router drops the tier's interface (so the hosts can tear
 * its bridge down) and its NIC goes back to the tier's allocator. A router that is not running
 * just loses the NIC; it boots without the tier.
 */
export function unplugTier(app: App, tier: NetworkRow, forced: boolean): Promise<void> {
  return withNetworkLock(app, vpcLockKey(tier.vpc_id!), async () => {
    const router = await liveVpcRouter(app, tier.vpc_id!);
    if (!router) return;
    if (router.state === 'Running' && router.host_id !== null)
      await sendVpcRouter(app, router, router.host_id, tier.id).catch((err: Error) => {
        if (!forced) throw err;
        app.log.warn({ router: router.name, err: err.message }, 'VPC router could not drop a tier');
      });
    await releaseTierNic(app, router, tier.id);
  });
}

/** restartVPC: the whole configuration re-sent or, with `cleanup`, a fresh router with all of it. */
export function restartVpcRouter(app: App, vpc: VpcRow, cleanup: boolean): Promise<RouterRow> {
  return withNetworkLock(app, vpcLockKey(vpc.id), async () => {
    const router = await liveVpcRouter(app, vpc.id);
    const running =
      router?.state === 'Running' && router.host_id !== null && app.agents.isConnected(router.host_id);
    if (router && running && !cleanup) {
      await sendVpcRouter(app, router, router.host_id!);
      return router;
    }
    const host = router && running ? router.host_id! : undefined;
    let fresh: RouterRow;
    if (router && cleanup) {
      const stopped = await haltRouter(app, router, true);
      await app.store.db.transaction().execute((tx) => removeRouterRecords(app, tx, [stopped]));
      await routersDestroyed(app, [stopped]);
      fresh = await createVpcRouter(
        app,
        vpc,
        { podId: stopped.pod_id, hypervisor: stopped.hypervisor },
        stopped.public_mac,
      );
    } else if (router) fresh = await haltRouter(app, router, true);
    else fresh = await createVpcRouter(app, vpc, { podId: null, hypervisor: null });
    const target = host ?? (await hostForRouter(app, fresh));
    return bootVpcRouter(app, fresh, target, cleanup ? 'restartVPC cleanup' : 'restartVPC');
  });
}

/** deleteVPC: the router is stopped on its host and destroyed (its NICs and MAC go back). */
export function destroyVpcRouter(app: App, vpcId: number, forced: boolean): Promise<void> {
  return withNetworkLock(app, vpcLockKey(vpcId), async () => {
    const router = await liveVpcRouter(app, vpcId);
    if (!router) return;
    const stopped = await haltRouter(app, router, forced);
    await app.store.db.transaction().execute((tx) => removeRouterRecords(app, tx, [stopped]));
    await routersDestroyed(app, [stopped]);
  });
}
