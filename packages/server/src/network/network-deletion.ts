/**
 * deleteNetwork: a network goes with its routers and with its bridges, VXLAN links and router
 * namespaces on the hosts, so nothing of it outlives its row. A Basic network's guest ranges stay
 * with the zone (see deleteNetworkOf); an Advanced network's addresses, ranges and VNI go back.
 */

import { type CallContext, isRootAdmin } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { AccountRow, NetworkRow } from '../db/schema.ts';
import { internalError, invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { recordStateChange } from '../events/state-events.ts';
import { ResourceKind, reserve } from '../iam/limits.ts';
import { findOwned } from '../iam/owned.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { findNetwork } from './common.ts';
import { OWNED_NETWORK } from './guest-networks.ts';
import { tearDownNetwork } from './host-network.ts';
import { deleteRulesOfIp, releasePublicIp } from './public-ips.ts';
import { stopNetworkRouters, withNetworkLock } from './routers.ts';
import { unplugTier } from './vpc-routers.ts';

/** VMs not expunged (any state but Expunging) with a NIC in the network: they keep it from going. */
function vmsInNetwork(db: Tx, networkId: number): Promise<{ name: string; state: string }[]> {
  return db
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .select(['vms.name', 'vms.state'])
    .where('nics.network_id', '=', networkId)
    .where('nics.removed', 'is', null)
    .where('nics.router_id', 'is', null)
    .where('vms.removed', 'is', null)
    .where('vms.state', '!=', 'Expunging')
    .orderBy('vms.id')
    .execute();
}

/** Upstream's destroyNetwork gives up (530) while user VMs are not expunged; we say which. */
function stillInUse(network: NetworkRow, vms: { name: string; state: string }[]) {
  const named = vms
    .slice(0, 5)
    .map((v) => `${v.name} (${v.state})`)
    .join(', ');
  const more = vms.length > 5 ? ` and ${vms.length - 5} more` : '';
  return internalError(
    `Failed to delete network ${network.name}: not all user VMs are expunged; ${named}${more} still ${vms.length === 1 ? 'has a NIC' : 'have NICs'} in it. Expunge them first (forced=true does not override this)`,
  );
}

/**
 * Deletes a network, under its routers' lock so no VM start brings a router back meanwhile:
 * refused while VMs are on it; its routers are stopped, every connected host of the zone tears
 * its bridge and VXLAN link down, then one transaction destroys the routers' records (returning
 * their addresses and MACs) and removes the network. `forced`: a host that fails to tear down is
 * logged and the deletion goes on. Hosts not connected, and those failures, are recorded
 * (network_teardowns): each tears the network down when it next comes Up, or is removed.
 * A Basic network's guest ranges are not deleted (upstream's deleteVlansInNetwork would): they are
 * the pods' address plans, which an operator resetting the network expects to keep. They stay on
 * the removed row, used by no live network, until the zone's next network takes them over.
 */
export async function deleteNetworkOf(ctx: CallContext, uuid: string, forced: boolean): Promise<void> {
  const { app } = ctx;
  const network = await findNetwork(ctx, uuid);
  await withNetworkLock(app, network.id, async () => {
    const vms = await vmsInNetwork(app.store.db, network.id);
    if (vms.length) throw stillInUse(network, vms);
    // A VPC tier: its VPC's router lets go of it (so its bridge can go) and keeps the VPC's
    // addresses, which leave the tier with their rules.
    if (network.vpc_id !== null) await unplugTier(app, network, forced);
    const routers = await stopNetworkRouters(app, network.id, forced);
    const behind = await tearDownNetwork(app, network, forced);
    await app.store.db.transaction().execute(async (tx) => {
      // A VM deployed meanwhile keeps the network; its start sets the bridge up again.
      const late = await vmsInNetwork(tx, network.id);
      if (late.length) throw stillInUse(network, late);
      await routers.destroy(tx);
      // Hosts that were away (or failed under forced) tear it down when they next come Up.
      if (behind.length)
        await tx
          .insertInto('network_teardowns')
          .values(behind.map((host_id) => ({ network_id: network.id, host_id, created: app.clock.now() })))
          .execute();
      await releaseNetworkResources(ctx, tx, network);
      await tx
        .updateTable('networks')
        // Freeing zone_default_for lets the zone have a new Basic network, and vni its VXLAN id.
        .set({ state: 'Destroy', removed: app.clock.now(), zone_default_for: null, vni: null })
        .where('id', '=', network.id)
        .execute();
      await recordStateChange({ app }, tx, {
        resource: 'Network',
        uuid: network.uuid,
        event: 'DestroyNetwork',
        oldState: network.state,
        newState: 'Destroy',
      });
      await logEvent(ctx, tx, {
        type: 'NETWORK.DELETE',
        description: `deleted network ${network.name}`,
        resourceType: 'Network',
        resourceId: network.uuid,
      });
    });
    await routers.destroyed();
  });
}

/**
 * What an Advanced zone's network holds goes with it, in the deletion's transaction: its public
 * addresses (with their rules) are Free again, its egress rules are deleted, its own address
 * ranges too (a Basic network's are the pods' plans and stay), and its owner's network count
 * goes down.
 */
async function releaseNetworkResources(ctx: CallContext, tx: Tx, network: NetworkRow): Promise<void> {
  if (network.zone_default_for !== null) return;
  const ips = await tx.selectFrom('public_ips').selectAll().where('network_id', '=', network.id).execute();
  for (const ip of ips)
    if (ip.vpc_id !== null) {
      // A VPC's address outlives its tier: its rules go, it stays the VPC's.
      await deleteRulesOfIp(tx, ip.id);
      await tx
        .updateTable('public_ips')
        .set({ network_id: null, static_nat_vm_id: null, static_nat_vm_ip: null })
        .where('id', '=', ip.id)
        .execute();
    } else await releasePublicIp(ctx.app, tx, ip);
  await tx.deleteFrom('ip_rules').where('network_id', '=', network.id).execute();
  await tx.deleteFrom('vlan_ip_ranges').where('network_id', '=', network.id).execute();
  if (network.account_id === null) return;
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', network.account_id)
    .executeTakeFirst();
  if (account) await reserve(ctx, tx, account, ResourceKind.Network, -1);
}

/**
 * A deleted account's networks go with it (its VMs were expunged first), forced so a host that is
 * away does not keep them; then the public addresses it held outside any network.
 */
export async function deleteAccountNetworks(ctx: CallContext, account: AccountRow): Promise<void> {
  const { app } = ctx;
  const networks = await app.store.db
    .selectFrom('networks')
    .select('uuid')
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .execute();
  for (const n of networks) await deleteNetworkOf(ctx, n.uuid, true);
  const ips = await app.store.db
    .selectFrom('public_ips')
    .selectAll()
    .where('account_id', '=', account.id)
    .execute();
  if (ips.length)
    await app.store.db.transaction().execute(async (tx) => {
      for (const ip of ips) await releasePublicIp(app, tx, ip);
    });
}

/** The network to delete, if the caller may: its owner, or an administrator above it. */
async function networkTarget(ctx: CallContext, params: { id: string; forced?: boolean }): Promise<JobTarget> {
  const network = await findOwned(ctx, 'networks', params.id, OWNED_NETWORK);
  if (params.forced && !isRootAdmin(ctx.caller))
    throw invalidParameter("Delete network with 'forced' option can only be called by root admins");
  return { type: 'Network', id: network.uuid };
}

export const deleteNetwork = defineCommand({
  name: 'deleteNetwork',
  description:
    'Deletes a guest network once no VM uses it: stops and destroys its routers, tears its bridges down on the hosts and frees its public addresses and rules. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the network to delete.' }),
    forced: p.boolean({
      description:
        'Root administrators only: carry on when a router cannot be stopped cleanly or a host is away (that host tears the network down when it is back). Defaults to false.',
    }),
  },
  event: { type: 'NETWORK.DELETE', description: (params) => `deleting network ${params.id}` },
  target: networkTarget,
  async handler(ctx, params) {
    await deleteNetworkOf(ctx, params.id, params.forced ?? false);
    return success();
  },
});
