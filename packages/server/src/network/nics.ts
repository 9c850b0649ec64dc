/**
 * Guest NICs and the IP address manager. Every address in use is a row of guest_ip_allocations
 * with a unique (network, ip) key; allocation picks a free address at a random point of a range
 * (as upstream does, which also spreads concurrent deployments apart) and simply moves on when a
 * concurrent transaction took it first. MACs are 02:00:xx:xx:xx:xx, unique by a key as well.
 */

import type { Insertable } from 'kysely';
import type { App, CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { NetworkRow, NicRow, NicTable, VlanIpRangeRow } from '../db/schema.ts';
import { insufficientCapacity, invalidParameter } from '../errors.ts';
import { findOwned, OWNED_VM } from '../iam/owned.ts';
import { intToIpv4, ipv4ToInt, isIpv4 } from '../infra/common.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { findNetwork, insertUnlessTaken, randomBits } from './common.ts';
import { basicNetworkForDeploy } from './networks.ts';

/** The VM a NIC is being allocated for: what IPAM needs to know of it. */
export interface NicVm {
  id: number;
  uuid: string;
  accountId: number;
  zoneId: number;
  /** The pod the VM will run in; null lets IPAM pick one with free addresses (see AllocatedNic.podId). */
  podId: number | null;
}

export interface AllocatedNic {
  id: number;
  uuid: string;
  networkId: number;
  networkUuid: string;
  /** The pod whose guest range the address came from: the VM must run in this pod. */
  podId: number | null;
  mac: string;
  ip4: string;
  gateway: string;
  netmask: string;
  isDefault: boolean;
  deviceId: number;
  broadcastUri: string | null;
  isolationUri: string | null;
}

const MAC_ATTEMPTS = 16;

function macFrom(bits: number): string {
  const hex = bits.toString(16).padStart(8, '0');
  return `02:00:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}:${hex.slice(6, 8)}`;
}

/**
 * The network's ranges a VM in `podId` may take an address from: its pod's (Basic zones), or the
 * zone-wide ones Advanced networks have (pod_id null), which serve every pod.
 */
async function rangesFor(tx: Tx, network: NetworkRow, podId: number | null): Promise<VlanIpRangeRow[]> {
  let q = tx
    .selectFrom('vlan_ip_ranges')
    .leftJoin('pods', 'pods.id', 'vlan_ip_ranges.pod_id')
    .selectAll('vlan_ip_ranges')
    .where('vlan_ip_ranges.network_id', '=', network.id);
  if (podId !== null)
    q = q.where((eb) =>
      eb.or([eb('vlan_ip_ranges.pod_id', '=', podId), eb('vlan_ip_ranges.pod_id', 'is', null)]),
    );
  else
    q = q.where((eb) =>
      eb.or([
        eb('vlan_ip_ranges.pod_id', 'is', null),
        eb.and([eb('pods.allocation_state', '=', 'Enabled'), eb('pods.removed', 'is', null)]),
      ]),
    );
  return q.orderBy('vlan_ip_ranges.id').execute();
}

async function claim(
  app: Pick<App, 'store' | 'clock'>,
  tx: Tx,
  range: VlanIpRangeRow,
  ipNum: number,
  vm: NicVm,
): Promise<boolean> {
  return insertUnlessTaken(app, tx, 'guest_ip_allocations', {
    network_id: range.network_id,
    range_id: range.id,
    ip4: intToIpv4(ipNum),
    ip_num: ipNum,
    vm_id: vm.id,
    nic_id: null,
    account_id: vm.accountId,
    allocated: app.clock.now(),
  });
}

/** Claims one address of the network (the requested one, or any free one) in the VM's pod. */
async function allocateAddress(
  app: App,
  tx: Tx,
  network: NetworkRow,
  vm: NicVm,
  podId: number | null,
  requested: string | undefined,
): Promise<{ range: VlanIpRangeRow; ipNum: number }> {
  const ranges = await rangesFor(tx, network, podId);
  const where = podId === null ? `network ${network.name}` : `network ${network.name} for the VM's pod`;
  if (ranges.length === 0)
    throw insufficientCapacity(`Insufficient address capacity: ${where} has no guest IP range`);
  // An isolated network's range is its whole subnet: the gateway in it is the router's alone.
  const reserved =
    network.guest_type === 'Isolated' && vm.id !== 0 && network.gateway ? ipv4ToInt(network.gateway) : -1;
  if (requested !== undefined) {
    if (!isIpv4(requested)) throw invalidParameter(`Invalid IP address ${requested}`);
    const ipNum = ipv4ToInt(requested);
    if (ipNum === reserved)
      throw invalidParameter(`The IP address ${requested} is the gateway of network ${network.name}`);
    const range = ranges.find((r) => r.start_num <= ipNum && ipNum <= r.end_num);
    if (!range) throw invalidParameter(`The IP address ${requested} is not in a guest IP range of ${where}`);
    if (!(await claim(app, tx, range, ipNum, vm)))
      throw invalidParameter(`The IP address ${requested} is already in use in network ${network.name}`);
    return { range, ipNum };
  }
  for (const range of ranges) {
    const size = range.end_num - range.start_num + 1;
    const offset = randomBits(app) % size;
    // The random first candidate is claimed before anything is read: in a range with room it is
    // usually free, and reading every allocation of the range first cost a deploy 100,000 rows in
    // a network of 100,000 VMs. Taken, the search goes on from it as before.
    const first = range.start_num + offset;
    if (first !== reserved && (await claim(app, tx, range, first, vm))) return { range, ipNum: first };
    const used = new Set(
      (
        await tx
          .selectFrom('guest_ip_allocations')
          .select('ip_num')
          .where('range_id', '=', range.id)
          .execute()
      ).map((r) => Number(r.ip_num)),
    );
    used.add(first);
    if (range.start_num <= reserved && reserved <= range.end_num) used.add(reserved);
    if (used.size >= size) continue;
    for (let i = 0; i < size; i++) {
      const ipNum = range.start_num + ((offset + i) % size);
      if (used.has(ipNum)) continue;
      if (await claim(app, tx, range, ipNum, vm)) return { range, ipNum };
      used.add(ipNum);
    }
  }
  throw insufficientCapacity(`Insufficient address capacity: no free guest IP address left in ${where}`);
}

async function networksFor(
  app: App,
  tx: Tx,
  vm: NicVm,
  networkIds: number[] | undefined,
): Promise<NetworkRow[]> {
  if (networkIds === undefined || networkIds.length === 0) {
    const basic = await basicNetworkForDeploy(app, tx, vm.zoneId);
    if (!basic) {
      const zone = await tx
        .selectFrom('zones')
        .select(['name', 'network_type'])
        .where('id', '=', vm.zoneId)
        .executeTakeFirst();
      if (zone?.network_type === 'Advanced')
        throw invalidParameter(`Zone ${zone.name} is an Advanced zone: networkids must be given`);
      throw insufficientCapacity(
        `Insufficient address capacity: zone ${zone?.name ?? vm.zoneId} has no guest network yet (add a guest IP range with createVlanIpRange)`,
      );
    }
    return [basic];
  }
  if (new Set(networkIds).size !== networkIds.length)
    throw invalidParameter('A network may be given only once in networkids');
  const rows = await tx
    .selectFrom('networks')
    .selectAll()
    .where('id', 'in', networkIds)
    .where('removed', 'is', null)
    .execute();
  const byId = new Map(rows.map((n) => [n.id, n]));
  return networkIds.map((id) => {
    const n = byId.get(id);
    if (!n) throw invalidParameter(`Unable to find network ${id}`);
    if (n.zone_id !== vm.zoneId) throw invalidParameter(`Network ${n.name} is not in the VM's zone`);
    return n;
  });
}

/**
 * Gives a VM one NIC per network (the zone's Basic guest network when none are given), each with
 * a unique MAC and an address from its pod's guest ranges; the first NIC is the default one and
 * gets `ipAddress` when given, and a network of `ipByNetwork` gets its address. `firstDeviceId`
 * adds NICs to a VM that has some (addNicToVirtualMachine): device ids from it, none default.
 * Runs in the caller's transaction, so a failure later in the deployment returns the addresses
 * too. Fails with 533 when a network has no free address and 431 for a requested address that is
 * outside the ranges or taken.
 */
export async function allocateNics(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  req: {
    vm: NicVm;
    networkIds?: number[];
    ipAddress?: string;
    ipByNetwork?: Map<number, string>;
    firstDeviceId?: number;
  },
): Promise<AllocatedNic[]> {
  const { app } = ctx;
  const networks = await networksFor(app, tx, req.vm, req.networkIds);
  let podId = req.vm.podId;
  const out: AllocatedNic[] = [];
  for (const [index, network] of networks.entries()) {
    const deviceId = (req.firstDeviceId ?? 0) + index;
    const isDefault = req.firstDeviceId === undefined && index === 0;
    const { range, ipNum } = await allocateAddress(
      app,
      tx,
      network,
      req.vm,
      podId,
      (isDefault ? req.ipAddress : undefined)?.trim() ?? req.ipByNetwork?.get(network.id)?.trim(),
    );
    // Later NICs must land in the pod the first one chose: a VM lives in exactly one pod.
    podId = range.pod_id;
    const securityGroups = await tx
      .selectFrom('network_offerings')
      .select('services')
      .where('id', '=', network.network_offering_id)
      .executeTakeFirstOrThrow();
    const values = {
      vm_id: req.vm.id,
      network_id: network.id,
      ip4: intToIpv4(ipNum),
      gateway: range.gateway,
      netmask: range.netmask,
      broadcast_uri: `vlan://${range.vlan}`,
      isolation_uri: securityGroups.services.includes('SecurityGroup:')
        ? `ec2://${range.vlan}`
        : `vlan://${range.vlan}`,
      is_default: isDefault ? 1 : 0,
      device_id: deviceId,
      state: 'Reserved',
      created: app.clock.now(),
      removed: null,
    } as const;
    let nic: Pick<NicRow, 'id' | 'uuid' | 'mac'> | undefined;
    for (let attempt = 0; attempt < MAC_ATTEMPTS && !nic; attempt++) {
      const uuid = app.ids.uuid();
      const mac = macFrom(randomBits(app));
      const id = await insertNic(app, tx, { ...values, uuid, mac });
      if (id !== undefined) nic = { id, uuid, mac };
    }
    if (!nic) throw insufficientCapacity('Insufficient address capacity: unable to find a free MAC address');
    await tx
      .updateTable('guest_ip_allocations')
      .set({ nic_id: nic.id })
      .where('network_id', '=', network.id)
      .where('ip4', '=', values.ip4)
      .execute();
    out.push({
      id: nic.id,
      uuid: nic.uuid,
      networkId: network.id,
      networkUuid: network.uuid,
      podId: range.pod_id,
      mac: nic.mac,
      ip4: values.ip4,
      gateway: range.gateway,
      netmask: range.netmask,
      isDefault,
      deviceId,
      broadcastUri: values.broadcast_uri,
      isolationUri: values.isolation_uri,
    });
  }
  return out;
}

/**
 * Inserts a NIC unless its MAC is taken: its id, or undefined. The id comes back from the INSERT
 * where the database has RETURNING (not MySQL).
 */
async function insertNic(
  app: Pick<App, 'store'>,
  tx: Tx,
  values: Insertable<NicTable>,
): Promise<number | undefined> {
  if (app.store.dialect !== 'mysql') {
    const row = await tx
      .insertInto('nics')
      .values(values)
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    return row?.id;
  }
  if (!(await insertUnlessTaken(app, tx, 'nics', values))) return undefined;
  const row = await tx
    .selectFrom('nics')
    .select('id')
    .where('uuid', '=', values.uuid)
    .executeTakeFirstOrThrow();
  return row.id;
}

/** Returns a VM's addresses to their ranges and retires its NICs (on expunge). */
export async function releaseNics(ctx: Pick<CallContext, 'app'>, tx: Tx, vmId: number): Promise<void> {
  await tx.deleteFrom('guest_ip_allocations').where('vm_id', '=', vmId).execute();
  await tx
    .updateTable('nics')
    .set({ state: 'Deallocated', removed: ctx.app.clock.now() })
    .where('vm_id', '=', vmId)
    .where('removed', 'is', null)
    .execute();
}

/** The NIC columns presentNic reads: a VM list selects only these for its 500 VMs' NICs. */
const PRESENTED_NIC_COLUMNS = [
  'id',
  'uuid',
  'vm_id',
  'network_id',
  'netmask',
  'gateway',
  'ip4',
  'isolation_uri',
  'broadcast_uri',
  'is_default',
  'mac',
  'device_id',
] as const satisfies readonly (keyof NicRow)[];

type PresentedNic = Pick<NicRow, (typeof PRESENTED_NIC_COLUMNS)[number]>;

function presentNic(n: PresentedNic, network: NetworkRow | undefined): Record<string, unknown> {
  return {
    id: n.uuid,
    networkid: network?.uuid,
    networkname: network?.name,
    netmask: n.netmask ?? undefined,
    gateway: n.gateway ?? undefined,
    ipaddress: n.ip4 ?? undefined,
    isolationuri: n.isolation_uri ?? undefined,
    broadcasturi: n.broadcast_uri ?? undefined,
    traffictype: network?.traffic_type ?? 'Guest',
    type: network?.guest_type ?? 'Shared',
    isdefault: n.is_default === 1,
    macaddress: n.mac,
    deviceid: String(n.device_id),
    secondaryip: [],
    extradhcpoption: [],
  };
}

async function networksById(
  ctx: Pick<CallContext, 'app'>,
  nics: Pick<NicRow, 'network_id'>[],
): Promise<Map<number, NetworkRow>> {
  const ids = [...new Set(nics.map((n) => n.network_id))];
  if (ids.length === 0) return new Map();
  const rows = await ctx.app.store.db.selectFrom('networks').selectAll().where('id', 'in', ids).execute();
  return new Map(rows.map((n) => [n.id, n]));
}

/** The live NICs of many VMs as CloudStack's nic[] objects, in device order, keyed by VM id. */
export async function presentNics(
  ctx: Pick<CallContext, 'app'>,
  vmIds: number[],
): Promise<Map<number, object[]>> {
  const out = new Map<number, object[]>();
  if (vmIds.length === 0) return out;
  const nics = await ctx.app.store.db
    .selectFrom('nics')
    .select(PRESENTED_NIC_COLUMNS)
    .where('vm_id', 'in', vmIds)
    .where('removed', 'is', null)
    .orderBy('vm_id')
    .orderBy('device_id')
    .execute();
  const networks = await networksById(ctx, nics);
  for (const n of nics) {
    const list = out.get(n.vm_id) ?? [];
    list.push(presentNic(n, networks.get(n.network_id)));
    out.set(n.vm_id, list);
  }
  return out;
}

export const listNics = defineCommand({
  name: 'listNics',
  description: 'Lists the network interfaces of a virtual machine, in device order.',
  params: {
    ...listParams,
    virtualmachineid: p.uuid({
      required: true,
      description: 'VM whose NICs are listed; it must be visible to the caller.',
    }),
    nicid: p.uuid({ description: 'Only the NIC with this ID.' }),
    networkid: p.uuid({ description: "Only the VM's NICs on this network." }),
    fordisplay: p.boolean({ description: 'False gives an empty list: NICs are never hidden.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const vm = await findOwned(ctx, 'vms', params.virtualmachineid, OWNED_VM);
    let q = app.store.db.selectFrom('nics').where('vm_id', '=', vm.id).where('removed', 'is', null);
    if (params.nicid) q = q.where('uuid', '=', params.nicid);
    if (params.networkid) q = q.where('network_id', '=', (await findNetwork(ctx, params.networkid)).id);
    if (params.keyword) q = q.where('ip4', '=', params.keyword);
    if (params.fordisplay === false) return listResult([], 0);
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const nics = await paginate(q.selectAll().orderBy('device_id'), pageOf(app, params)).execute();
    const networks = await networksById(ctx, nics);
    return listResult(
      nics.map((n) => ({ ...presentNic(n, networks.get(n.network_id)), virtualmachineid: vm.uuid })),
      Number(count),
    );
  },
});

export const nicCommands = [listNics];
