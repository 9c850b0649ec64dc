/**
 * VMs with several NICs: a network made ready on a VM's host (the one step a VM start and a NIC
 * hot-plug share), deployVirtualMachine's iptonetworklist, and adding, removing and choosing the
 * default NIC of a deployed VM (addNicToVirtualMachine, removeNicFromVirtualMachine,
 * updateDefaultNicForVirtualMachine). Records change in one transaction each; a Running VM's host
 * is told (plugNic/unplugNic) so the guest sees the change at once, a Stopped VM gets it on start.
 */
import type { VmSpec } from '@nimbostack/protocol';
import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { AccountRow, NetworkRow, NicRow, VmRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { findNetwork } from './common.ts';
import { checkNetworkUse, networksForDeploy } from './guest-networks.ts';
import { carryNetwork, nicsForHost } from './host-network.ts';
import { allocateNics } from './nics.ts';
import { networkReadyFor, refreshRouterEntries, removeRouterEntries, routerReadyFor } from './routers.ts';

type NetworkWithServices = NetworkRow & { services: string };

/** Where a VM runs (or is about to), as a network needs it to serve the VM there. */
export interface VmPlace {
  hostId: number;
  podId: number | null;
  hypervisor: string | null;
}

/**
 * Gets one of a VM's networks ready for it on its host: an isolated network implemented (VNI,
 * source NAT), its bridge and VXLAN link on the host, and its router Running with the VM's entry,
 * so the guest is answered as soon as its NIC appears. For a start and for a NIC hot-plug alike.
 */
export async function networkReadyOnHost(
  app: App,
  { services, ...allocated }: NetworkWithServices,
  vmId: number,
  place: VmPlace,
): Promise<NetworkRow> {
  const network = await networkReadyFor(app, allocated);
  await carryNetwork(app, network, place.hostId);
  // A VPC tier's DHCP comes from its VPC's router (VpcVirtualRouter), routerReadyFor's VPC half.
  if (services.includes('Dhcp:VirtualRouter') || services.includes('Dhcp:VpcVirtualRouter'))
    await routerReadyFor(app, network, vmId, place);
  return network;
}

/** The networks of a VM's live NICs (or only `networkId`), with their offering's services. */
export function networksOfVm(app: App, vmId: number, networkId?: number): Promise<NetworkWithServices[]> {
  const db = app.store.db;
  let nics = db
    .selectFrom('nics')
    .select('network_id')
    .where('vm_id', '=', vmId)
    .where('removed', 'is', null);
  if (networkId !== undefined) nics = nics.where('network_id', '=', networkId);
  return db
    .selectFrom('networks')
    .innerJoin('network_offerings', 'network_offerings.id', 'networks.network_offering_id')
    .selectAll('networks')
    .select('network_offerings.services')
    .where('networks.id', 'in', nics)
    .execute();
}

/**
 * deployVirtualMachine's networks from `iptonetworklist[n].networkid/ip`: in the list's order (the
 * first is the default), each with its requested address. As upstream, it cannot be combined
 * with networkids or ipaddress. IPv6 addresses and chosen MACs are not supported here (431).
 */
export async function networksOfIpList(
  ctx: CallContext,
  owner: Pick<AccountRow, 'id' | 'name' | 'domain_id'>,
  list: Record<string, string>[],
  others: { networkids?: string[]; ipaddress?: string },
): Promise<{ networkIds: number[]; ipByNetwork: Map<number, string> }> {
  if (others.networkids?.length || others.ipaddress !== undefined)
    throw invalidParameter("ipToNetworkMap can't be specified along with networkIds or ipAddress");
  const uuids: string[] = [];
  for (const entry of list) {
    const keys = Object.keys(entry).map((k) => k.toLowerCase());
    if (keys.includes('ipv6'))
      throw invalidParameter('IPv6 addresses are not supported: guest networks are IPv4 only');
    if (keys.includes('mac')) throw invalidParameter('Choosing the MAC address of a NIC is not supported');
    const uuid = entry.networkid ?? entry.networkId;
    if (!uuid) throw invalidParameter('Each iptonetworklist entry needs a networkid');
    if (uuids.includes(uuid)) throw invalidParameter(`Network ${uuid} is given twice in iptonetworklist`);
    uuids.push(uuid);
  }
  const networkIds = await networksForDeploy(ctx, owner, uuids);
  const ipByNetwork = new Map<number, string>();
  list.forEach((entry, i) => {
    if (entry.ip) ipByNetwork.set(networkIds[i]!, entry.ip);
  });
  return { networkIds, ipByNetwork };
}

/** What every NIC operation refuses first: Basic zones and VMs with VM snapshots (as upstream). */
async function checkNicChange(
  app: App,
  vm: VmRow,
  what: string,
  snapshots: 'added to' | 'removed from' | 'updated for',
): Promise<void> {
  const db = app.store.db;
  const zone = await db
    .selectFrom('zones')
    .select(['name', 'network_type'])
    .where('id', '=', vm.zone_id)
    .executeTakeFirstOrThrow();
  if (zone.network_type === 'Basic')
    throw invalidParameter(`Zone ${zone.name} has a NetworkType of Basic. Can't ${what} on a Basic Network`);
  const snapshot = await db
    .selectFrom('vm_snapshots')
    .select('id')
    .where('vm_id', '=', vm.id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (snapshot) throw invalidParameter(`NIC cannot be ${snapshots} VM with VM Snapshots`);
  if (vm.state !== 'Running' && vm.state !== 'Stopped')
    throw invalidParameter(`Unable to ${what}: VM ${vm.name} is ${vm.state}, not Running or Stopped`);
}

/** The lowest device id none of the VM's live NICs has (a removed NIC's id is reused). */
async function freeDeviceId(tx: Tx, vmId: number): Promise<number> {
  const rows = await tx
    .selectFrom('nics')
    .select('device_id')
    .where('vm_id', '=', vmId)
    .where('removed', 'is', null)
    .execute();
  const used = new Set(rows.map((r) => r.device_id));
  let id = 0;
  while (used.has(id)) id++;
  return id;
}

/** Returns one NIC's address to its range and retires the NIC. */
async function releaseNic(app: App, tx: Tx, nicId: number): Promise<void> {
  await tx.deleteFrom('guest_ip_allocations').where('nic_id', '=', nicId).execute();
  await tx
    .updateTable('nics')
    .set({ state: 'Deallocated', removed: app.clock.now() })
    .where('id', '=', nicId)
    .execute();
}

/** The NIC as the VM's host plugs it (bridge, filtering), sent to a Running VM's host. */
async function plugOnHost(app: App, vm: VmRow, nic: Pick<NicRow, 'mac'>): Promise<void> {
  const spec = (await nicsForHost(app, vm.id)).find((n) => n.mac === nic.mac) as VmSpec['nics'][number];
  await app.agents.call(vm.host_id!, 'plugNic', { vm: vm.instance_name, nic: spec });
}

/**
 * addNicToVirtualMachine: a NIC on `networkUuid` at the VM's lowest free device id, with
 * `ipAddress` or a free address. For a Running VM the network is made ready on its host and the
 * NIC hot-plugged; if that fails, the NIC and its address are given back and the job fails.
 */
export async function addNicToVm(
  ctx: CallContext,
  vm: VmRow,
  networkUuid: string,
  ipAddress: string | undefined,
): Promise<void> {
  const { app } = ctx;
  await checkNicChange(app, vm, 'add a new NIC to a VM', 'added to');
  const network = await findNetwork(ctx, networkUuid);
  const owner = await app.store.db
    .selectFrom('accounts')
    .select(['id', 'name', 'domain_id'])
    .where('id', '=', vm.account_id)
    .executeTakeFirstOrThrow();
  await checkNetworkUse(ctx, network, owner);
  if (network.traffic_type !== 'Guest')
    throw invalidParameter(`Network ${network.name} is not a guest network`);
  if (network.zone_id !== vm.zone_id)
    throw invalidParameter(`VM ${vm.name} is in another zone than network ${network.name}`);
  const nic = await app.store.db.transaction().execute(async (tx) => {
    const onNetwork = await tx
      .selectFrom('nics')
      .select('id')
      .where('vm_id', '=', vm.id)
      .where('network_id', '=', network.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (onNetwork)
      throw invalidParameter(`A NIC already exists for VM:${vm.instance_name} in network: ${network.uuid}`);
    // The router's DNS answers VM names: two VMs of one name in a network would shadow each other.
    const namesake = await tx
      .selectFrom('nics')
      .innerJoin('vms', 'vms.id', 'nics.vm_id')
      .select('vms.id')
      .where('nics.network_id', '=', network.id)
      .where('nics.removed', 'is', null)
      .where('vms.name', '=', vm.name)
      .where('vms.removed', 'is', null)
      .executeTakeFirst();
    if (namesake)
      throw invalidParameter(`Network ${network.name} already has a vm with host name: ${vm.name}`);
    const [made] = await allocateNics(ctx, tx, {
      vm: { id: vm.id, uuid: vm.uuid, accountId: vm.account_id, zoneId: vm.zone_id, podId: vm.pod_id },
      networkIds: [network.id],
      ipByNetwork: ipAddress === undefined ? undefined : new Map([[network.id, ipAddress]]),
      firstDeviceId: await freeDeviceId(tx, vm.id),
    });
    return made!;
  });
  if (vm.state !== 'Running' || vm.host_id === null) return;
  try {
    const [withServices] = await networksOfVm(app, vm.id, network.id);
    await networkReadyOnHost(app, withServices!, vm.id, {
      hostId: vm.host_id,
      podId: vm.pod_id,
      hypervisor: vm.hypervisor,
    });
    await plugOnHost(app, vm, nic);
  } catch (e) {
    // Nothing claims what the host does not have: the router entry and the records go again. A
    // plug that timed out may still have happened: unplugging is idempotent, so it is undone too.
    const hostId = vm.host_id;
    await app.agents
      .call(hostId, 'unplugNic', { vm: vm.instance_name, mac: nic.mac })
      .catch((err) =>
        app.log.warn({ vm: vm.uuid, err: (err as Error).message }, 'NIC not unplugged after a failed add'),
      );
    await removeRouterEntries(app, vm.id, nic.id);
    await app.store.db.transaction().execute((tx) => releaseNic(app, tx, nic.id));
    throw e;
  }
}

/** A live NIC of the VM by uuid (431 unknown, or another VM's, with upstream's texts). */
async function nicOfVm(app: App, vm: VmRow, nicUuid: string): Promise<NicRow> {
  const nic = await app.store.db
    .selectFrom('nics')
    .selectAll()
    .where('uuid', '=', nicUuid)
    .where('removed', 'is', null)
    .where('router_id', 'is', null)
    .executeTakeFirst();
  if (!nic) throw invalidParameter(`Unable to find a nic with id ${nicUuid}`);
  if (nic.vm_id !== vm.id) throw invalidParameter(`NIC ${nicUuid} is not a nic on VM ${vm.name}`);
  return nic;
}

/**
 * What points at the NIC's address: port forwards, static NAT and load balancer memberships.
 * Removing the NIC would leave them sending traffic to an address nobody has (or the next VM's).
 */
async function rulesOnNic(app: App, nic: NicRow): Promise<string[]> {
  if (!nic.ip4) return [];
  const db = app.store.db;
  const [forwards, nats, members] = await Promise.all([
    db
      .selectFrom('ip_rules')
      .leftJoin('public_ips', 'public_ips.id', 'ip_rules.ip_id')
      .select(['public_ips.ip4', 'ip_rules.start_port', 'ip_rules.protocol'])
      .where('ip_rules.purpose', '=', 'PortForwarding')
      .where('ip_rules.vm_id', '=', nic.vm_id)
      .where('ip_rules.vm_ip', '=', nic.ip4)
      .where('ip_rules.network_id', '=', nic.network_id)
      .execute(),
    db
      .selectFrom('public_ips')
      .select('ip4')
      .where('static_nat_vm_id', '=', nic.vm_id)
      .where('static_nat_vm_ip', '=', nic.ip4)
      .execute(),
    db
      .selectFrom('lb_members')
      .innerJoin('ip_rules', 'ip_rules.id', 'lb_members.rule_id')
      .select('ip_rules.name')
      .where('lb_members.vm_id', '=', nic.vm_id)
      .where('lb_members.vm_ip', '=', nic.ip4)
      .where('ip_rules.network_id', '=', nic.network_id)
      .execute(),
  ]);
  return [
    ...forwards.map((r) => `port forwarding ${r.protocol} ${r.ip4 ?? '?'}:${r.start_port ?? ''}`),
    ...nats.map((r) => `static NAT from ${r.ip4}`),
    ...members.map((r) => `load balancer ${r.name ?? ''}`.trim()),
  ];
}

/**
 * removeNicFromVirtualMachine: never the default NIC, nor one rules point at (as upstream). A
 * Running VM's host unplugs it first; then its address goes back to the range, the NIC is retired
 * and its entry leaves the network's router.
 */
export async function removeNicFromVm(ctx: CallContext, vm: VmRow, nicUuid: string): Promise<void> {
  const { app } = ctx;
  await checkNicChange(app, vm, 'remove a NIC from a VM', 'removed from');
  const nic = await nicOfVm(app, vm, nicUuid);
  const network = await app.store.db
    .selectFrom('networks')
    .select('name')
    .where('id', '=', nic.network_id)
    .executeTakeFirstOrThrow();
  const where = `Unable to remove nic from VM ${vm.name} in network ${network.name}`;
  if (nic.is_default) throw invalidParameter(`${where}, nic is default.`);
  const rules = await rulesOnNic(app, nic);
  if (rules.length)
    throw invalidParameter(
      `${where}, nic has associated Port forwarding or Load balancer or Static NAT rules: ${rules.join(', ')}`,
    );
  if (vm.state === 'Running' && vm.host_id !== null)
    await app.agents.call(vm.host_id, 'unplugNic', { vm: vm.instance_name, mac: nic.mac });
  await removeRouterEntries(app, vm.id, nic.id);
  await app.store.db.transaction().execute((tx) => releaseNic(app, tx, nic.id));
}

/**
 * updateDefaultNicForVirtualMachine: the NIC becomes the VM's default one and the previous default
 * an ordinary NIC. The routers of both networks get the VM's entries again, so DHCP gives the
 * default route on the new default NIC only; the guest takes it at its next DHCP request.
 */
export async function setDefaultNic(ctx: CallContext, vm: VmRow, nicUuid: string): Promise<void> {
  const { app } = ctx;
  await checkNicChange(app, vm, 'change default NIC', 'updated for');
  const nic = await nicOfVm(app, vm, nicUuid);
  if (nic.is_default)
    throw invalidParameter('refusing to set default nic because chosen nic is already the default');
  await app.store.db.transaction().execute(async (tx) => {
    await tx
      .updateTable('nics')
      .set({ is_default: 0 })
      .where('vm_id', '=', vm.id)
      .where('removed', 'is', null)
      .execute();
    await tx.updateTable('nics').set({ is_default: 1 }).where('id', '=', nic.id).execute();
  });
  // The change stands: a router that cannot be told now gets the entries when it next boots.
  await refreshRouterEntries(app, vm.id).catch((err) =>
    app.log.warn({ vm: vm.uuid, err: (err as Error).message }, 'routers not told of the new default NIC'),
  );
}
