/**
 * Physical networks and the traffic they carry (Guest, Management, Public, Storage): the zone
 * wiring that hosts map to bridges through their network labels.
 */
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { PhysicalNetworkRow, TrafficTypeRow } from '../db/schema.ts';
import { internalError, invalidParameter, resourceInUse } from '../errors.ts';
import { escapeLike, findDomainByUuid, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { findZone, likeOp, namesOf, normalizeTags } from './common.ts';
import { createDefaultProviders, deleteProviders } from './network-service-providers.ts';

/**
 * Guest networks are VXLAN segments (VNIs from the vlan range) whatever the method: VXLAN says so,
 * VLAN (upstream's default, what its zone wizard and Ansible send) only narrows the ids to 1-4094.
 * GRE, L3 and the others would need tunnels or routing this cloud does not build: refused.
 */
const ISOLATION_METHODS = ['VLAN', 'VXLAN'] as const;
const UNSUPPORTED_ISOLATION = [
  'GRE',
  'L3',
  'STT',
  'BCF_SEGMENT',
  'SSP',
  'ODL',
  'L3VPN',
  'VSP',
  'VCS',
  'TF',
  'NSX',
  'NETRIS',
];
const TRAFFIC_TYPES = ['Guest', 'Management', 'Public', 'Storage'] as const;
const STATES = ['Enabled', 'Disabled'] as const;

function pick<T extends string>(values: readonly T[], value: string, what: string): T {
  const found = values.find((v) => v.toLowerCase() === value.trim().toLowerCase());
  if (!found) throw invalidParameter(`Invalid ${what} ${value}; use one of ${values.join(', ')}`);
  return found;
}

/**
 * "100-199,300-310" or single ids, each within the 802.1Q (or VXLAN) id space. With VXLAN these
 * are the VNIs isolated networks take (networks.vni) when they are implemented.
 */
function vlanRanges(text: string, isolation: string): string {
  const max = isolation === 'VXLAN' ? 16777214 : 4094;
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const ranges = parts.map((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw invalidParameter(`Invalid vlan range ${part}: use start-end`);
    const start = Number(m[1]);
    const end = Number(m[2] ?? m[1]);
    if (start < 1 || end > max || start > end)
      throw invalidParameter(`Invalid vlan range ${part}: ids run from 1 to ${max}`);
    return [start, end] as const;
  });
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < sorted.length; i++)
    if (sorted[i][0] <= sorted[i - 1][1]) throw invalidParameter(`The vlan ranges in ${text} overlap`);
  return ranges.map(([s, e]) => `${s}-${e}`).join(',');
}

function parsedRanges(text: string | null): [number, number][] {
  return (text ?? '')
    .split(',')
    .filter(Boolean)
    .map((r) => r.split('-').map(Number) as [number, number]);
}

/** Two physical networks of a zone never share a guest id: a network's VNI names one segment. */
async function checkZoneOverlap(tx: Tx, zoneId: number, vlan: string, except?: number): Promise<void> {
  let q = tx
    .selectFrom('physical_networks')
    .select(['name', 'vlan'])
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .where('vlan', 'is not', null);
  if (except !== undefined) q = q.where('id', '!=', except);
  const mine = parsedRanges(vlan);
  for (const other of await q.execute())
    for (const [s, e] of parsedRanges(other.vlan))
      for (const [ms, me] of mine)
        if (ms <= e && s <= me)
          throw invalidParameter(
            `The vlan range ${ms}-${me} overlaps the range ${s}-${e} of physical network ${other.name} in the same zone`,
          );
}

/** A new range must still hold every id a live network of this physical network uses. */
async function checkHeldVnis(tx: Tx, physicalNetworkId: number, vlan: string | null): Promise<void> {
  const ranges = parsedRanges(vlan);
  const held = await tx
    .selectFrom('networks')
    .select(['name', 'vni'])
    .where('physical_network_id', '=', physicalNetworkId)
    .where('removed', 'is', null)
    .where('vni', 'is not', null)
    .execute();
  for (const n of held) {
    const vni = Number(n.vni);
    if (!ranges.some(([s, e]) => vni >= s && vni <= e))
      throw resourceInUse(`The vlan range can't shrink: VNI ${vni} is in use by network ${n.name}`);
  }
}

async function presentPhysicalNetworks(ctx: CallContext, rows: PhysicalNetworkRow[]): Promise<object[]> {
  const zones = await namesOf(
    ctx,
    'zones',
    rows.map((r) => r.zone_id),
  );
  const domainIds = [...new Set(rows.map((r) => r.domain_id).filter((x): x is number => x !== null))];
  const domains = domainIds.length
    ? await ctx.app.store.db
        .selectFrom('domains')
        .select(['id', 'uuid'])
        .where('id', 'in', domainIds)
        .execute()
    : [];
  const domainById = new Map(domains.map((d) => [d.id, d.uuid]));
  return rows.map((n) => ({
    id: n.uuid,
    name: n.name,
    zoneid: zones.get(n.zone_id)?.uuid,
    zonename: zones.get(n.zone_id)?.name,
    domainid: n.domain_id === null ? undefined : domainById.get(n.domain_id),
    state: n.state,
    isolationmethods: n.isolation_methods,
    vlan: n.vlan ?? undefined,
    networkspeed: n.network_speed ?? undefined,
    broadcastdomainrange: n.broadcast_domain_range,
    tags: n.tags ?? undefined,
  }));
}

async function findPhysicalNetwork(ctx: CallContext, uuid: string): Promise<PhysicalNetworkRow> {
  const row = await ctx.app.store.db
    .selectFrom('physical_networks')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find physical network by id ${uuid}`);
  return row;
}

async function presentOne(ctx: CallContext, uuid: string): Promise<object> {
  return (await presentPhysicalNetworks(ctx, [await findPhysicalNetwork(ctx, uuid)]))[0];
}

export const createPhysicalNetwork = defineCommand({
  name: 'createPhysicalNetwork',
  description:
    'Creates a physical network in a zone, Disabled, with its default service providers; a Basic zone has only one. Guest networks take their VXLAN VNIs from its vlan range. Asynchronous.',
  params: {
    zoneid: p.uuid({ required: true, description: 'Zone of the physical network.' }),
    name: p.string({ required: true, description: 'Name of the physical network; must not be blank.' }),
    isolationmethods: p.list({
      description:
        'VXLAN or VLAN (default): guest networks are VXLAN segments either way; the method only sets the id space of vlan (up to 16777214 with VXLAN, 4094 with VLAN). GRE, L3 and other methods are refused.',
    }),
    vlan: p.string({
      description:
        "Guest id ranges, e.g. '5000-5999,7000': the VNIs guest networks take. Must not overlap another physical network of the zone.",
    }),
    networkspeed: p.string({ description: 'Speed of the network, recorded and shown only (e.g. 10G).' }),
    broadcastdomainrange: p.string({
      description: 'ZONE or POD; defaults to POD in a Basic zone and ZONE otherwise.',
    }),
    tags: p.list({ description: 'Comma-separated tags, recorded and shown with the physical network.' }),
    domainid: p.uuid({ description: 'Domain the physical network is recorded as dedicated to.' }),
  },
  event: {
    type: 'PHYSICAL.NETWORK.CREATE',
    description: (params) => `creating physical network ${params.name}`,
  },
  async create(ctx, params) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.zoneid);
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Physical network name must not be empty');
    const methods = (params.isolationmethods ?? []).map((m) => {
      if (UNSUPPORTED_ISOLATION.includes(m.trim().toUpperCase()))
        throw invalidParameter(
          `Isolation method ${m.trim()} is not supported: guest networks here are VXLAN segments; use VXLAN (or VLAN for ids up to 4094)`,
        );
      return pick(ISOLATION_METHODS, m, 'isolation method');
    });
    if (methods.length > 1)
      throw invalidParameter('Only one isolation method can be given for a physical network');
    const isolation = methods[0] ?? 'VLAN';
    const range = params.broadcastdomainrange
      ? pick(['ZONE', 'POD'] as const, params.broadcastdomainrange, 'broadcast domain range')
      : zone.network_type === 'Basic'
        ? 'POD'
        : 'ZONE';
    const vlan = params.vlan ? vlanRanges(params.vlan, isolation) : null;
    const domain = params.domainid ? await findDomainByUuid(ctx, params.domainid) : undefined;
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      const existing = await tx
        .selectFrom('physical_networks')
        .select(['name'])
        .where('zone_id', '=', zone.id)
        .where('removed', 'is', null)
        .execute();
      if (zone.network_type === 'Basic' && existing.length > 0)
        throw invalidParameter(
          `A Basic zone has one physical network, and ${zone.name} has ${existing[0].name}`,
        );
      if (vlan) await checkZoneOverlap(tx, zone.id, vlan);
      const id = await insertId(app.store, tx, 'physical_networks', {
        uuid,
        name,
        zone_id: zone.id,
        domain_id: domain?.id ?? null,
        state: 'Disabled',
        isolation_methods: isolation,
        vlan,
        network_speed: params.networkspeed ?? null,
        broadcast_domain_range: range,
        tags: normalizeTags(params.tags),
        created: app.clock.now(),
      });
      await createDefaultProviders(ctx, tx, id);
    });
    return { type: 'PhysicalNetwork', id: uuid };
  },
  async handler(ctx, _params, created) {
    return presentOne(ctx, created?.id as string);
  },
});

export const listPhysicalNetworks = defineCommand({
  name: 'listPhysicalNetworks',
  description:
    'Lists physical networks with their zone, state, isolation method and guest id ranges; keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the physical network with this ID.' }),
    name: p.string({ description: 'Only physical networks with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only physical networks of this zone.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('physical_networks').where('removed', 'is', null);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentPhysicalNetworks(ctx, rows), Number(count));
  },
});

export const updatePhysicalNetwork = defineCommand({
  name: 'updatePhysicalNetwork',
  description:
    'Enables or disables a physical network, or changes its guest id ranges, speed or tags; ranges cannot drop a VNI a network uses. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the physical network.' }),
    state: p.string({ description: 'Enabled or Disabled.' }),
    vlan: p.string({
      description:
        "New guest id ranges, e.g. '5000-5999'; must keep every VNI in use and not overlap other physical networks of the zone. Empty removes them.",
    }),
    networkspeed: p.string({ description: 'New recorded speed; empty clears it.' }),
    tags: p.list({ description: 'New comma-separated tags.' }),
  },
  event: {
    type: 'PHYSICAL.NETWORK.UPDATE',
    description: (params) => `updating physical network ${params.id}`,
  },
  async target(ctx, params) {
    const net = await findPhysicalNetwork(ctx, params.id);
    if (params.state) pick(STATES, params.state, 'state');
    // Refused before a job is queued; the job checks again in its transaction.
    if (params.vlan !== undefined) {
      const vlan = params.vlan ? vlanRanges(params.vlan, net.isolation_methods) : null;
      if (vlan) await checkZoneOverlap(ctx.app.store.db, net.zone_id, vlan, net.id);
      await checkHeldVnis(ctx.app.store.db, net.id, vlan);
    }
    return { type: 'PhysicalNetwork', id: net.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const net = await findPhysicalNetwork(ctx, params.id);
    const changes: Partial<PhysicalNetworkRow> = {};
    if (params.state) changes.state = pick(STATES, params.state, 'state');
    if (params.vlan !== undefined)
      changes.vlan = params.vlan ? vlanRanges(params.vlan, net.isolation_methods) : null;
    if (params.networkspeed !== undefined) changes.network_speed = params.networkspeed || null;
    if (params.tags !== undefined) changes.tags = normalizeTags(params.tags);
    await app.store.db.transaction().execute(async (tx) => {
      if (changes.vlan !== undefined) {
        if (changes.vlan) await checkZoneOverlap(tx, net.zone_id, changes.vlan, net.id);
        await checkHeldVnis(tx, net.id, changes.vlan);
      }
      if (Object.keys(changes).length > 0)
        await tx.updateTable('physical_networks').set(changes).where('id', '=', net.id).execute();
    });
    return presentOne(ctx, net.uuid);
  },
});

/** Checks that can refuse removing a physical network (guest networks or IP ranges on it). */
type NetworkUsageCheck = (app: App, network: PhysicalNetworkRow) => Promise<string | undefined>;
const usageChecks: NetworkUsageCheck[] = [];

export function onPhysicalNetworkDelete(check: NetworkUsageCheck): void {
  usageChecks.push(check);
}

async function checkUnused(ctx: CallContext, net: PhysicalNetworkRow): Promise<void> {
  for (const check of usageChecks) {
    const reason = await check(ctx.app, net);
    if (reason) throw resourceInUse(`Cannot delete physical network ${net.name}: it still carries ${reason}`);
  }
}

export const deletePhysicalNetwork = defineCommand({
  name: 'deletePhysicalNetwork',
  description:
    'Deletes a physical network with its traffic types and service providers; refused while guest networks or IP ranges are on it. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the physical network.' }) },
  event: {
    type: 'PHYSICAL.NETWORK.DELETE',
    description: (params) => `deleting physical network ${params.id}`,
  },
  async target(ctx, params) {
    const net = await findPhysicalNetwork(ctx, params.id);
    await checkUnused(ctx, net);
    return { type: 'PhysicalNetwork', id: net.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const net = await findPhysicalNetwork(ctx, params.id);
    await checkUnused(ctx, net);
    await app.store.db.transaction().execute(async (tx) => {
      // Its traffic types describe only this network's wiring, so they go with it.
      await tx
        .deleteFrom('physical_network_traffic_types')
        .where('physical_network_id', '=', net.id)
        .execute();
      await deleteProviders(tx, net.id);
      await tx
        .updateTable('physical_networks')
        .set({ removed: app.clock.now() })
        .where('id', '=', net.id)
        .execute();
    });
    return success();
  },
});

function presentTrafficType(t: TrafficTypeRow, networkUuid: string): object {
  return {
    id: t.uuid,
    traffictype: t.traffic_type,
    physicalnetworkid: networkUuid,
    kvmnetworklabel: t.kvm_label ?? undefined,
    xennetworklabel: t.xen_label ?? undefined,
    vmwarenetworklabel: t.vmware_label ?? undefined,
    hypervnetworklabel: t.hyperv_label ?? undefined,
    ovm3networklabel: t.ovm3_label ?? undefined,
  };
}

async function findTrafficType(
  ctx: CallContext,
  uuid: string,
): Promise<{ row: TrafficTypeRow; network: string }> {
  const row = await ctx.app.store.db
    .selectFrom('physical_network_traffic_types as t')
    .innerJoin('physical_networks as n', 'n.id', 't.physical_network_id')
    .selectAll('t')
    .select('n.uuid as network_uuid')
    .where('t.uuid', '=', uuid)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find traffic type by id ${uuid}`);
  const { network_uuid, ...t } = row;
  return { row: t, network: network_uuid };
}

/**
 * A KVM label names a Linux bridge on every host (the Public one is where routers' public sides
 * plug in), so it must be a valid interface name: hosts would otherwise fail at the first router.
 */
function kvmLabel(value: string | undefined): string | null | undefined {
  if (value === undefined || value === '') return value === '' ? null : undefined;
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(value))
    throw invalidParameter(
      `Invalid kvmnetworklabel ${value}: a host bridge name of 1 to 15 letters, digits, '.', '-' or '_'`,
    );
  return value;
}

const labelParams = {
  kvmnetworklabel: p.string({
    description:
      "Name of the Linux bridge on each KVM host that carries this traffic (1-15 letters, digits, '.', '-', '_'); empty clears it.",
  }),
  xennetworklabel: p.string({
    description: 'Recorded for compatibility; Nimbostack has no XenServer hosts and does not use it.',
  }),
  vmwarenetworklabel: p.string({
    description: 'Recorded for compatibility; Nimbostack has no VMware hosts and does not use it.',
  }),
  hypervnetworklabel: p.string({
    description: 'Recorded for compatibility; Nimbostack has no Hyper-V hosts and does not use it.',
  }),
  ovm3networklabel: p.string({
    description: 'Recorded for compatibility; Nimbostack has no OVM3 hosts and does not use it.',
  }),
};

export const addTrafficType = defineCommand({
  name: 'addTrafficType',
  description:
    'Says that a physical network carries a kind of traffic (Guest, Management, Public or Storage) and which host bridge carries it. Only Guest may be on several physical networks of a zone. Asynchronous.',
  params: {
    physicalnetworkid: p.uuid({ required: true, description: 'Physical network that carries the traffic.' }),
    traffictype: p.string({ required: true, description: 'Guest, Management, Public or Storage.' }),
    ...labelParams,
    vlan: p.string({ description: 'Recorded with the traffic type and shown; not used otherwise.' }),
    isolationmethod: p.string({
      description: 'Recorded with the traffic type and shown; not used otherwise.',
    }),
  },
  event: { type: 'TRAFFIC.TYPE.CREATE', description: (params) => `adding ${params.traffictype} traffic` },
  async create(ctx, params) {
    const { app } = ctx;
    const net = await findPhysicalNetwork(ctx, params.physicalnetworkid);
    const type = pick(TRAFFIC_TYPES, params.traffictype, 'traffic type');
    const label = kvmLabel(params.kvmnetworklabel);
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      const onNetwork = await tx
        .selectFrom('physical_network_traffic_types')
        .select('id')
        .where('physical_network_id', '=', net.id)
        .where('traffic_type', '=', type)
        .executeTakeFirst();
      if (onNetwork) throw invalidParameter(`${type} traffic is already on physical network ${net.name}`);
      // Guest traffic may spread over several physical networks (told apart by tags); the others
      // have exactly one home in a zone.
      if (type !== 'Guest') {
        const elsewhere = await tx
          .selectFrom('physical_network_traffic_types as t')
          .innerJoin('physical_networks as n', 'n.id', 't.physical_network_id')
          .select('n.name')
          .where('n.zone_id', '=', net.zone_id)
          .where('n.removed', 'is', null)
          .where('t.traffic_type', '=', type)
          .executeTakeFirst();
        if (elsewhere)
          throw invalidParameter(`${type} traffic is already carried by physical network ${elsewhere.name}`);
      }
      await insertId(app.store, tx, 'physical_network_traffic_types', {
        uuid,
        physical_network_id: net.id,
        traffic_type: type,
        kvm_label: label ?? null,
        xen_label: params.xennetworklabel ?? null,
        vmware_label: params.vmwarenetworklabel ?? null,
        hyperv_label: params.hypervnetworklabel ?? null,
        ovm3_label: params.ovm3networklabel ?? null,
        vlan: params.vlan ?? null,
        isolation_method: params.isolationmethod ?? null,
      });
    });
    return { type: 'TrafficType', id: uuid };
  },
  async handler(ctx, _params, created) {
    const { row, network } = await findTrafficType(ctx, created?.id as string);
    return presentTrafficType(row, network);
  },
});

export const listTrafficTypes = defineCommand({
  name: 'listTrafficTypes',
  description:
    'Lists the traffic types a physical network carries, with their host bridge labels; keyword matches the type.',
  params: {
    ...listParams,
    physicalnetworkid: p.uuid({
      required: true,
      description: 'Physical network whose traffic types are listed.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const net = await findPhysicalNetwork(ctx, params.physicalnetworkid);
    let q = app.store.db
      .selectFrom('physical_network_traffic_types')
      .where('physical_network_id', '=', net.id);
    if (params.keyword)
      q = q.where(likeEscaped('traffic_type', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(
      rows.map((t) => presentTrafficType(t, net.uuid)),
      Number(count),
    );
  },
});

export const updateTrafficType = defineCommand({
  name: 'updateTrafficType',
  description: 'Changes the host bridge labels of a traffic type on a physical network. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the traffic type.' }), ...labelParams },
  event: { type: 'TRAFFIC.TYPE.UPDATE', description: (params) => `updating traffic type ${params.id}` },
  async target(ctx, params) {
    await findTrafficType(ctx, params.id);
    kvmLabel(params.kvmnetworklabel);
    return { type: 'TrafficType', id: params.id };
  },
  async handler(ctx, params) {
    const { row } = await findTrafficType(ctx, params.id);
    const changes: Partial<TrafficTypeRow> = {};
    if (params.kvmnetworklabel !== undefined) changes.kvm_label = kvmLabel(params.kvmnetworklabel) ?? null;
    if (params.xennetworklabel !== undefined) changes.xen_label = params.xennetworklabel || null;
    if (params.vmwarenetworklabel !== undefined) changes.vmware_label = params.vmwarenetworklabel || null;
    if (params.hypervnetworklabel !== undefined) changes.hyperv_label = params.hypervnetworklabel || null;
    if (params.ovm3networklabel !== undefined) changes.ovm3_label = params.ovm3networklabel || null;
    if (Object.keys(changes).length > 0)
      await ctx.app.store.db
        .updateTable('physical_network_traffic_types')
        .set(changes)
        .where('id', '=', row.id)
        .execute();
    const updated = await findTrafficType(ctx, params.id);
    return presentTrafficType(updated.row, updated.network);
  },
});

export const deleteTrafficType = defineCommand({
  name: 'deleteTrafficType',
  description:
    'Removes a traffic type from its physical network; Guest traffic is refused while guest networks of the physical network exist. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the traffic type.' }) },
  event: { type: 'TRAFFIC.TYPE.DELETE', description: (params) => `deleting traffic type ${params.id}` },
  async target(ctx, params) {
    await findTrafficType(ctx, params.id);
    return { type: 'TrafficType', id: params.id };
  },
  async handler(ctx, params) {
    const { row } = await findTrafficType(ctx, params.id);
    // As upstream: Guest traffic stays while networks of the physical network carry it (no storage
    // network exists here, upstream's other check).
    if (row.traffic_type === 'Guest') {
      const used = await ctx.app.store.db
        .selectFrom('networks')
        .select('id')
        .where('physical_network_id', '=', row.physical_network_id)
        .where('traffic_type', '=', 'Guest')
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (used)
        throw internalError(
          `The Traffic Type is not deletable because there are existing networks with this traffic type:${row.traffic_type}`,
        );
    }
    await ctx.app.store.db.deleteFrom('physical_network_traffic_types').where('id', '=', row.id).execute();
    return success();
  },
});

export const physicalNetworkCommands = [
  createPhysicalNetwork,
  listPhysicalNetworks,
  updatePhysicalNetwork,
  deletePhysicalNetwork,
  addTrafficType,
  listTrafficTypes,
  updateTrafficType,
  deleteTrafficType,
];
