/**
 * createNetwork, updateNetwork and restartNetwork. The service logic is in guest-networks.ts
 * (records, address plan, implementing) and routers.ts (what runs on hosts).
 */
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { findNetwork } from './common.ts';
import {
  checkNetworkDomain,
  createIsolatedNetwork,
  createNetworkInputs,
  createSharedNetwork,
  findOwnedNetwork,
} from './guest-networks.ts';
import { presentNetworks } from './networks.ts';
import { restartNetworkRouter } from './routers.ts';

export const createNetwork = defineCommand({
  name: 'createNetwork',
  params: {
    name: p.string({ required: true }),
    displaytext: p.string(),
    networkofferingid: p.uuid({ required: true }),
    zoneid: p.uuid({ required: true }),
    physicalnetworkid: p.uuid(),
    gateway: p.string(),
    netmask: p.string(),
    startip: p.string(),
    endip: p.string(),
    vlan: p.string({ adminOnly: true }),
    acltype: p.string(),
    subdomainaccess: p.boolean(),
    networkdomain: p.string(),
    displaynetwork: p.boolean(),
    account: p.string(),
    domainid: p.uuid(),
    projectid: p.uuid(),
  },
  async handler(ctx, params) {
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Network name must not be empty');
    const { zone, offering } = await createNetworkInputs(ctx, params);
    const request = { ...params, name, zone, offering };
    const create =
      offering.guest_ip_type === 'Isolated'
        ? createIsolatedNetwork
        : offering.guest_ip_type === 'Shared'
          ? createSharedNetwork
          : undefined;
    if (!create)
      throw invalidParameter(
        `Network offering ${offering.name} is of type ${offering.guest_ip_type}: only Isolated and Shared networks can be created`,
      );
    const network = await create(ctx, request);
    return (await presentNetworks(ctx, [network]))[0] as object;
  },
});

async function ownedNetworkTarget(ctx: CallContext, params: { id: string }): Promise<JobTarget> {
  return { type: 'Network', id: (await findOwnedNetwork(ctx, params.id)).uuid };
}

export const updateNetwork = defineCommand({
  name: 'updateNetwork',
  params: {
    id: p.uuid({ required: true }),
    name: p.string(),
    displaytext: p.string(),
    networkdomain: p.string(),
    displaynetwork: p.boolean({ adminOnly: true }),
    guestvmcidr: p.string(),
    networkofferingid: p.uuid(),
    customid: p.string(),
    forced: p.boolean(),
  },
  event: { type: 'NETWORK.UPDATE', description: (params) => `updating network ${params.id}` },
  target: ownedNetworkTarget,
  async handler(ctx, params) {
    const { app } = ctx;
    const network = await findNetwork(ctx, params.id);
    if (params.guestvmcidr !== undefined)
      throw invalidParameter(
        'Changing the guest VM CIDR of a network is not supported: create a new network',
      );
    if (params.networkofferingid !== undefined) {
      const offering = await app.store.db
        .selectFrom('network_offerings')
        .selectAll()
        .where('uuid', '=', params.networkofferingid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!offering)
        throw invalidParameter(`Unable to find network offering by id ${params.networkofferingid}`);
      if (offering.id !== network.network_offering_id)
        throw invalidParameter(
          'Changing the network offering of a network is not supported yet: create a network with the new offering',
        );
    }
    if (params.name !== undefined && params.name.trim() === '')
      throw invalidParameter('Network name must not be empty');
    checkNetworkDomain(params.networkdomain);
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('networks')
        .set({
          ...(params.name !== undefined ? { name: params.name.trim() } : {}),
          ...(params.displaytext !== undefined ? { display_text: params.displaytext } : {}),
          ...(params.networkdomain !== undefined ? { network_domain: params.networkdomain } : {}),
        })
        .where('id', '=', network.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.UPDATE',
        description: `updated network ${network.name}`,
        resourceType: 'Network',
        resourceId: network.uuid,
      });
    });
    return (await presentNetworks(ctx, [await findNetwork(ctx, params.id)]))[0] as object;
  },
});

export const restartNetwork = defineCommand({
  name: 'restartNetwork',
  params: {
    id: p.uuid({ required: true }),
    cleanup: p.boolean(),
    makeredundant: p.boolean(),
    livepatch: p.boolean(),
  },
  event: { type: 'NETWORK.RESTART', description: (params) => `restarting network ${params.id}` },
  target: ownedNetworkTarget,
  async handler(ctx, params) {
    if (params.makeredundant) throw invalidParameter('Redundant routers are not supported');
    const network = await findNetwork(ctx, params.id);
    await restartNetworkRouter(ctx.app, network, params.cleanup ?? false);
    return success();
  },
});

export const guestNetworkCommands = [createNetwork, updateNetwork, restartNetwork];
