/** Pods: a rack in a zone, with one management subnet and an address range inside it. */
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { PodRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { capacitiesFor } from './capacity.ts';
import {
  allocationState,
  findPod,
  findZone,
  intToIpv4,
  ipv4ToInt,
  likeOp,
  namesOf,
  requireIpv4,
  requireNetmask,
  subnetBounds,
} from './common.ts';
import { countHosts } from './host-inventory.ts';

export async function presentPods(
  ctx: CallContext,
  rows: PodRow[],
  opts: { capacities?: boolean } = {},
): Promise<object[]> {
  const zones = await namesOf(
    ctx,
    'zones',
    rows.map((r) => r.zone_id),
  );
  const capacities = opts.capacities ? await capacitiesFor(ctx, 'pod', rows) : undefined;
  return rows.map((pod) => {
    const zone = zones.get(pod.zone_id);
    const ranged = pod.start_ip !== null && pod.end_ip !== null;
    return {
      id: pod.uuid,
      name: pod.name,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      gateway: pod.gateway,
      netmask: pod.netmask,
      startip: ranged ? [pod.start_ip] : [],
      endip: ranged ? [pod.end_ip] : [],
      forsystemvms: ranged ? ['0'] : [],
      ipranges: ranged
        ? [{ startip: pod.start_ip, endip: pod.end_ip, forsystemvms: '0', gateway: pod.gateway }]
        : [],
      allocationstate: pod.allocation_state,
      capacity: capacities?.get(pod.id),
      hasannotations: false,
    };
  });
}

interface PodNetwork {
  gateway: string;
  netmask: string;
  start_ip: string | null;
  end_ip: string | null;
}

/**
 * Checks a pod's subnet and range as upstream does: the range lies inside the gateway's subnet,
 * excludes the gateway, and overlaps no other pod's range in the zone.
 */
async function checkPodNetwork(tx: Tx, zoneId: number, net: PodNetwork, except?: number): Promise<void> {
  const gateway = requireIpv4(net.gateway, 'gateway');
  const netmask = requireNetmask(net.netmask);
  const subnet = subnetBounds(gateway, netmask);
  if (net.start_ip === null) {
    if (net.end_ip !== null) throw invalidParameter('An end IP needs a start IP');
    return;
  }
  const start = ipv4ToInt(requireIpv4(net.start_ip, 'startip'));
  const end = ipv4ToInt(requireIpv4(net.end_ip ?? '', 'endip'));
  if (start > end) throw invalidParameter('The start IP must not be greater than the end IP');
  if (start < subnet.first || end > subnet.last)
    throw invalidParameter(
      `The IP range ${net.start_ip}-${net.end_ip} is not in the subnet of gateway ${gateway} and netmask ${netmask}`,
    );
  const gw = ipv4ToInt(gateway);
  if (gw >= start && gw <= end)
    throw invalidParameter("The gateway IP can't be part of the start-end IP range");
  let q = tx
    .selectFrom('pods')
    .select(['name', 'start_ip', 'end_ip'])
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .where('start_ip', 'is not', null);
  if (except !== undefined) q = q.where('id', '!=', except);
  for (const other of await q.execute()) {
    const oStart = ipv4ToInt(other.start_ip as string);
    const oEnd = ipv4ToInt(other.end_ip as string);
    if (start <= oEnd && oStart <= end)
      throw invalidParameter(
        `The IP range ${net.start_ip}-${net.end_ip} overlaps the range ${other.start_ip}-${other.end_ip} of pod ${other.name}`,
      );
  }
}

/** Without an end IP the range runs to the last host address of the subnet, as upstream. */
function defaultEnd(gateway: string, netmask: string, start: string | undefined, end: string | undefined) {
  if (!start || end) return end || null;
  const { last } = subnetBounds(requireIpv4(gateway, 'gateway'), requireNetmask(netmask));
  return intToIpv4(last - 1);
}

async function checkPodNameFree(tx: Tx, zoneId: number, name: string, except?: number): Promise<void> {
  let q = tx
    .selectFrom('pods')
    .select('id')
    .where('zone_id', '=', zoneId)
    .where('name', '=', name)
    .where('removed', 'is', null);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst())
    throw invalidParameter(`A pod with name ${name} already exists in the zone`);
}

export const createPod = defineCommand({
  name: 'createPod',
  description:
    'Creates a pod in a zone: a rack-level group of clusters sharing a management subnet, with an optional management address range.',
  params: {
    zoneid: p.uuid({ required: true, description: 'Zone of the pod.' }),
    name: p.string({
      required: true,
      description: 'Name of the pod, unique in the zone; must not be blank.',
    }),
    gateway: p.string({ description: "Gateway of the pod's management subnet; required." }),
    netmask: p.string({ description: "Netmask of the pod's management subnet; required." }),
    startip: p.string({
      description:
        "First address of the pod's management range; it must be in the subnet, exclude the gateway and not overlap another pod's range.",
    }),
    endip: p.string({
      description:
        "Last address of the management range; defaults to the subnet's last host address. Needs startip.",
    }),
    allocationstate: p.string({
      description: 'Enabled (default) or Disabled; new VMs are placed only in Enabled pods.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.zoneid);
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Pod name must not be empty');
    if (!params.gateway || !params.netmask) throw invalidParameter('A pod needs a gateway and a netmask');
    const net: PodNetwork = {
      gateway: params.gateway.trim(),
      netmask: params.netmask.trim(),
      start_ip: params.startip?.trim() || null,
      end_ip: defaultEnd(params.gateway, params.netmask, params.startip?.trim(), params.endip?.trim()),
    };
    const state = allocationState(params.allocationstate) ?? 'Enabled';
    const row = await app.store.db.transaction().execute(async (tx) => {
      await checkPodNameFree(tx, zone.id, name);
      await checkPodNetwork(tx, zone.id, net);
      const id = await insertId(app.store, tx, 'pods', {
        uuid: app.ids.uuid(),
        name,
        zone_id: zone.id,
        ...net,
        allocation_state: state,
        created: app.clock.now(),
      });
      const created = await tx.selectFrom('pods').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      await logEvent(ctx, tx, {
        type: 'POD.CREATE',
        description: `creating pod ${name} in zone ${zone.name}`,
        resourceType: 'Pod',
        resourceId: created.uuid,
      });
      return created;
    });
    return (await presentPods(ctx, [row]))[0];
  },
});

export const listPods = defineCommand({
  name: 'listPods',
  description: 'Lists pods with their zone, management subnet and range; keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the pod with this ID.' }),
    name: p.string({ description: 'Only the pod with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only pods of this zone.' }),
    allocationstate: p.string({ description: 'Only Enabled or only Disabled pods.' }),
    showcapacities: p.boolean({
      description: "Also answer each pod's capacities (as listCapacity computes them).",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('pods').where('removed', 'is', null);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.allocationstate)
      q = q.where('allocation_state', '=', allocationState(params.allocationstate) as string);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentPods(ctx, rows, { capacities: params.showcapacities }), Number(count));
  },
});

export const updatePod = defineCommand({
  name: 'updatePod',
  description:
    'Renames a pod, changes its management subnet or range, or enables or disables it; values not given are kept.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the pod to update.' }),
    name: p.string({ description: 'New name, unique in the zone; must not be blank.' }),
    gateway: p.string({ description: 'New gateway of the management subnet.' }),
    netmask: p.string({ description: 'New netmask of the management subnet.' }),
    startip: p.string({
      description:
        "New first address of the management range; without endip the range then runs to the subnet's last host address.",
    }),
    endip: p.string({ description: 'New last address of the management range.' }),
    allocationstate: p.string({ description: 'Enabled or Disabled; a Disabled pod gets no new VMs.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const pod = await findPod(ctx, params.id);
    const name = params.name?.trim();
    if (name === '') throw invalidParameter('Pod name must not be empty');
    const gateway = params.gateway?.trim() || pod.gateway;
    const netmask = params.netmask?.trim() || pod.netmask;
    const startIp = params.startip?.trim() || pod.start_ip || undefined;
    const net: PodNetwork = {
      gateway,
      netmask,
      start_ip: startIp ?? null,
      end_ip: defaultEnd(
        gateway,
        netmask,
        startIp,
        params.endip?.trim() || (params.startip ? undefined : (pod.end_ip ?? undefined)),
      ),
    };
    const state = allocationState(params.allocationstate);
    const row = await app.store.db.transaction().execute(async (tx) => {
      if (name) await checkPodNameFree(tx, pod.zone_id, name, pod.id);
      await checkPodNetwork(tx, pod.zone_id, net, pod.id);
      await tx
        .updateTable('pods')
        .set({ ...net, ...(name ? { name } : {}), ...(state ? { allocation_state: state } : {}) })
        .where('id', '=', pod.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'POD.EDIT',
        description: `updating pod ${pod.name}`,
        resourceType: 'Pod',
        resourceId: pod.uuid,
      });
      return tx.selectFrom('pods').selectAll().where('id', '=', pod.id).executeTakeFirstOrThrow();
    });
    return (await presentPods(ctx, [row]))[0];
  },
});

/** Checks that can refuse a pod's removal (address ranges or VMs owned by other capabilities). */
type PodUsageCheck = (app: App, pod: PodRow) => Promise<string | undefined>;
const usageChecks: PodUsageCheck[] = [];

export function onPodDelete(check: PodUsageCheck): void {
  usageChecks.push(check);
}

export const deletePod = defineCommand({
  name: 'deletePod',
  description: 'Deletes a pod that has no hosts, clusters or remaining guest address ranges.',
  params: { id: p.uuid({ required: true, description: 'ID of the pod to delete.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const pod = await findPod(ctx, params.id);
    if ((await countHosts(app, { podId: pod.id })) > 0)
      throw resourceInUse(`The pod ${pod.name} is not deletable because it still has hosts`);
    const cluster = await app.store.db
      .selectFrom('clusters')
      .select('id')
      .where('pod_id', '=', pod.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (cluster) throw resourceInUse(`The pod ${pod.name} is not deletable because it still has clusters`);
    for (const check of usageChecks) {
      const reason = await check(app, pod);
      if (reason) throw resourceInUse(`The pod ${pod.name} is not deletable because it still has ${reason}`);
    }
    await app.store.db.transaction().execute(async (tx) => {
      await tx.updateTable('pods').set({ removed: app.clock.now() }).where('id', '=', pod.id).execute();
      await logEvent(ctx, tx, {
        type: 'POD.DELETE',
        description: `deleting pod ${pod.name}`,
        resourceType: 'Pod',
        resourceId: pod.uuid,
      });
    });
    return success();
  },
});

export const podCommands = [createPod, listPods, updatePod, deletePod];
