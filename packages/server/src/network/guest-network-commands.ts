/**
 * createNetwork, updateNetwork and restartNetwork. The service logic is in guest-networks.ts
 * (records, address plan, implementing) and routers.ts (what runs on hosts).
 */

import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { findOwned } from '../iam/owned.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { findNetwork } from './common.ts';
import {
  checkNetworkDomain,
  createIsolatedNetwork,
  createNetworkInputs,
  createSharedNetwork,
  OWNED_NETWORK,
} from './guest-networks.ts';
import { presentNetworks } from './networks.ts';
import { restartNetworkRouter } from './routers.ts';
import { createVpcTier } from './vpcs.ts';

export const createNetwork = defineCommand({
  name: 'createNetwork',
  description:
    'Creates an Isolated or Shared guest network in an Advanced zone; its router is started when its first VM is.',
  params: {
    name: p.string({ required: true, description: 'Name of the network; must not be blank.' }),
    displaytext: p.string({ description: 'Free-text description of the network; defaults to its name.' }),
    networkofferingid: p.uuid({
      required: true,
      description:
        'Offering the network is built from; it must be Enabled and of guest type Isolated or Shared.',
    }),
    zoneid: p.uuid({ required: true, description: 'Advanced zone the network belongs to.' }),
    physicalnetworkid: p.uuid({
      description:
        "Physical network the network's segment comes from: one of the zone's, carrying Guest traffic. Defaults to the zone's first physical network carrying Guest traffic.",
    }),
    gateway: p.string({
      description:
        "Gateway of the network's subnet, a host address in it; given with netmask. Isolated networks default to the zone's guest CIDR.",
    }),
    netmask: p.string({ description: 'Netmask of the subnet, /16 to /29; given with gateway.' }),
    startip: p.string({
      description:
        'First address VMs may get (Shared networks, where it is required); the range must lie in the subnet and exclude the gateway.',
    }),
    endip: p.string({ description: 'Last address VMs may get (Shared networks); defaults to startip.' }),
    vlan: p.string({
      adminOnly: true,
      description:
        'VXLAN VNI of a Shared network, 1-16777214, bare or as vlan://N or vxlan://N; required there, and unique. Nimbostack has no VLANs.',
    }),
    acltype: p.string({
      description:
        'Who may use a Shared network: Domain or Account; defaults to Account when account is given, otherwise Domain.',
    }),
    subdomainaccess: p.boolean({
      description:
        "Domain-wide Shared networks: whether accounts of the domain's subdomains may use it too. Defaults to true; refused with acltype Account.",
    }),
    networkdomain: p.string({
      description: "DNS domain the router serves the VMs' names in; defaults to the zone's network domain.",
    }),
    displaynetwork: p.boolean({
      adminOnly: true,
      description:
        'Whether end users are shown the network in lists (root administrators only). Defaults to true.',
    }),
    account: p.string({
      description: 'Account that owns the network (with domainid); defaults to the caller.',
    }),
    domainid: p.uuid({
      description:
        'Domain of account; for a Domain-wide Shared network, the domain it serves (default: the root domain).',
    }),
    projectid: p.uuid({
      description: 'Project to own the network (you must be a member, it must be Active); not with account.',
    }),
    vpcid: p.uuid({
      description:
        "VPC the network is a tier of: its offering must be a VPC network offering, gateway and netmask are required and its subnet must lie inside the VPC's CIDR without overlapping another tier.",
    }),
    aclid: p.uuid({
      description:
        "A VPC tier's network ACL list (its VPC's own, a global or a built-in one); without it the tier has none: nothing may come in, everything may go out.",
    }),
  },
  async handler(ctx, params) {
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Network name must not be empty');
    const { zone, offering } = await createNetworkInputs(ctx, params);
    const request = { ...params, name, zone, offering };
    if (params.vpcid) {
      const tier = await createVpcTier(ctx, { ...request, vpcid: params.vpcid, aclid: params.aclid });
      return (await presentNetworks(ctx, [tier]))[0] as object;
    }
    if (params.aclid) throw invalidParameter('aclid can be given for VPC tiers (with vpcid) only');
    if (offering.for_vpc === 1)
      throw invalidParameter(`Network offering ${offering.name} can be used for VPC networks only`);
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
  return { type: 'Network', id: (await findOwned(ctx, 'networks', params.id, OWNED_NETWORK)).uuid };
}

export const updateNetwork = defineCommand({
  name: 'updateNetwork',
  description:
    'Renames a guest network or changes its display text, DNS domain or (root administrators) its ID. Changing its guest CIDR or offering is refused. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the network to update.' }),
    name: p.string({ description: 'New name; must not be blank.' }),
    displaytext: p.string({ description: 'New display text.' }),
    networkdomain: p.string({ description: "New DNS domain for the VMs' names; a valid DNS name." }),
    displaynetwork: p.boolean({
      adminOnly: true,
      description: 'Whether end users are shown the network in lists (root administrators only).',
    }),
    guestvmcidr: p.string({
      description: 'Not supported: any value is refused (create a new network instead).',
    }),
    networkofferingid: p.uuid({
      description:
        "Only the network's current offering is accepted; changing the offering is not supported yet.",
    }),
    customid: p.string({
      adminOnly: true,
      description: 'New ID for the network: a UUID no other network has (root administrators only).',
    }),
    forced: p.boolean({
      description:
        'Ignored: upstream uses it to change the offering even when the network cannot be restarted, and offering changes are refused here.',
    }),
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
    const custom = await customNetworkId(ctx, network.id, params.customid);
    const changes = {
      ...(params.name !== undefined ? { name: params.name.trim() } : {}),
      ...(params.displaytext !== undefined ? { display_text: params.displaytext } : {}),
      ...(params.networkdomain !== undefined ? { network_domain: params.networkdomain } : {}),
      ...(custom !== undefined ? { uuid: custom } : {}),
      ...(params.displaynetwork !== undefined
        ? { display_network: (params.displaynetwork ? 1 : 0) as 0 | 1 }
        : {}),
    };
    await app.store.db.transaction().execute(async (tx) => {
      // An update that changes nothing (e.g. only ignored parameters) still records its event.
      if (Object.keys(changes).length > 0)
        await tx.updateTable('networks').set(changes).where('id', '=', network.id).execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.UPDATE',
        description: `updated network ${network.name}`,
        resourceType: 'Network',
        resourceId: network.uuid,
      });
    });
    return (await presentNetworks(ctx, [await findNetwork(ctx, custom ?? params.id)]))[0] as object;
  },
});

/** A customid for a network: a UUID (lower-cased) no other network has, as upstream checks it. */
async function customNetworkId(ctx: CallContext, networkId: number, customid: string | undefined) {
  if (customid === undefined) return undefined;
  const id = customid.trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id))
    throw invalidParameter(`UUID: ${customid} doesn't follow the UUID format`);
  const taken = await ctx.app.store.db
    .selectFrom('networks')
    .select('id')
    .where('uuid', '=', id)
    .executeTakeFirst();
  if (taken && taken.id !== networkId)
    throw invalidParameter(`UUID: ${customid} already exists so can't create/update with custom id`);
  return id;
}

export const restartNetwork = defineCommand({
  name: 'restartNetwork',
  description:
    "Re-applies a network's configuration on its router, rebooting the router if it is not running; with cleanup, replaces the router by a fresh one. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the network to restart.' }),
    cleanup: p.boolean({
      description:
        'Destroy the router and create a new one instead of re-applying the configuration to the existing one. Defaults to false.',
    }),
    makeredundant: p.boolean({ description: 'Redundant routers are not supported: true is refused.' }),
    livepatch: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
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
