/** Clusters: hosts of one hypervisor in a pod, sharing primary storage; and listHypervisors. */
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { ClusterRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import {
  CPU_OVERPROVISIONING,
  capacitiesFor,
  clusterThresholdDetails,
  MEM_OVERPROVISIONING,
} from './capacity.ts';
import { allocationState, findCluster, findPod, findZone, likeOp, namesOf } from './common.ts';
import { countHosts, hostHypervisors } from './host-inventory.ts';

/** The hypervisors our agents drive. */
export const HYPERVISORS = ['KVM', 'LXC', 'Simulator'] as const;
const CLUSTER_TYPES = ['CloudManaged'] as const;
const MANAGED_STATES = ['Managed', 'Unmanaged'] as const;
const ARCHS = ['x86_64', 'aarch64'] as const;

function oneOf<T extends string>(values: readonly T[], value: string, what: string): T {
  const found = values.find((v) => v.toLowerCase() === value.trim().toLowerCase());
  if (!found) throw invalidParameter(`Invalid ${what} ${value}; use ${values.join(' or ')}`);
  return found;
}

export function hypervisorName(value: string): string {
  return oneOf(HYPERVISORS, value, 'hypervisor type');
}

function ratio(n: number): string {
  return Number.isInteger(n) ? n.toFixed(1) : String(n);
}

export async function presentClusters(
  ctx: CallContext,
  rows: ClusterRow[],
  opts: { capacities?: boolean } = {},
): Promise<object[]> {
  const zones = await namesOf(
    ctx,
    'zones',
    rows.map((r) => r.zone_id),
  );
  const pods = await namesOf(
    ctx,
    'pods',
    rows.map((r) => r.pod_id),
  );
  const capacities = opts.capacities ? await capacitiesFor(ctx, 'cluster', rows) : undefined;
  const { settings } = ctx.app;
  return rows.map((c) => {
    const cpu = ratio(settings.at(CPU_OVERPROVISIONING, 'cluster', c.id));
    const mem = ratio(settings.at(MEM_OVERPROVISIONING, 'cluster', c.id));
    return {
      id: c.uuid,
      name: c.name,
      zoneid: zones.get(c.zone_id)?.uuid,
      zonename: zones.get(c.zone_id)?.name,
      podid: pods.get(c.pod_id)?.uuid,
      podname: pods.get(c.pod_id)?.name,
      hypervisortype: c.hypervisor,
      clustertype: c.cluster_type,
      allocationstate: c.allocation_state,
      managedstate: c.managed_state,
      arch: c.arch,
      cpuovercommitratio: cpu,
      memoryovercommitratio: mem,
      resourcedetails: {
        cpuOvercommitRatio: cpu,
        memoryOvercommitRatio: mem,
        ...clusterThresholdDetails(ctx, c.id),
      },
      capacity: capacities?.get(c.id),
      hasannotations: false,
    };
  });
}

async function checkClusterNameFree(tx: Tx, podId: number, name: string, except?: number): Promise<void> {
  let q = tx
    .selectFrom('clusters')
    .select('id')
    .where('pod_id', '=', podId)
    .where('name', '=', name)
    .where('removed', 'is', null);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst())
    throw invalidParameter(`A cluster with name ${name} already exists in the pod`);
}

export const addCluster = defineCommand({
  name: 'addCluster',
  description:
    'Adds a cluster, a group of hosts of one hypervisor in a pod; hosts and cluster-wide primary storage are then added to it.',
  params: {
    zoneid: p.uuid({ required: true, description: "Zone of the cluster; must be the pod's zone." }),
    podid: p.uuid({ required: true, description: 'Pod the cluster belongs to.' }),
    clustername: p.string({
      required: true,
      description: 'Name of the cluster, unique in its pod; must not be blank.',
    }),
    hypervisor: p.string({ required: true, description: 'Hypervisor of its hosts: KVM, LXC or Simulator.' }),
    clustertype: p.string({ required: true, description: 'Only CloudManaged is accepted.' }),
    allocationstate: p.string({
      description: 'Enabled (default) or Disabled; new VMs are placed only in Enabled clusters.',
    }),
    arch: p.string({ description: 'CPU architecture of its hosts: x86_64 (default) or aarch64.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.zoneid);
    const pod = await findPod(ctx, params.podid);
    if (pod.zone_id !== zone.id)
      throw invalidParameter(`Pod ${pod.name} does not belong to zone ${zone.name}`);
    const name = params.clustername.trim();
    if (name === '') throw invalidParameter('Cluster name must not be empty');
    const values = {
      name,
      zone_id: zone.id,
      pod_id: pod.id,
      hypervisor: hypervisorName(params.hypervisor),
      cluster_type: oneOf(CLUSTER_TYPES, params.clustertype, 'cluster type'),
      allocation_state: allocationState(params.allocationstate) ?? 'Enabled',
      managed_state: 'Managed',
      arch: params.arch ? oneOf(ARCHS, params.arch, 'architecture') : 'x86_64',
    };
    // Upstream answers addCluster with a list of one cluster (it may discover several).
    const row = await app.store.db.transaction().execute(async (tx) => {
      await checkClusterNameFree(tx, pod.id, name);
      const id = await insertId(app.store, tx, 'clusters', {
        ...values,
        uuid: app.ids.uuid(),
        created: app.clock.now(),
      });
      return tx.selectFrom('clusters').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    });
    return listResult(await presentClusters(ctx, [row]), 1);
  },
});

export const listClusters = defineCommand({
  name: 'listClusters',
  description:
    'Lists clusters with their pod, zone, hypervisor and overcommit ratios; keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the cluster with this ID.' }),
    name: p.string({ description: 'Only the cluster with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only clusters of this zone.' }),
    podid: p.uuid({ description: 'Only clusters of this pod.' }),
    hypervisor: p.string({ description: 'Only clusters of this hypervisor: KVM, LXC or Simulator.' }),
    clustertype: p.string({ description: 'Only clusters of this type (all are CloudManaged).' }),
    allocationstate: p.string({ description: 'Only Enabled or only Disabled clusters.' }),
    managedstate: p.string({ description: 'Only clusters in this managed state: Managed or Unmanaged.' }),
    arch: p.string({ description: 'Only clusters of this architecture: x86_64 or aarch64.' }),
    showcapacities: p.boolean({
      description: "Also answer each cluster's capacities (as listCapacity computes them).",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('clusters').where('removed', 'is', null);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.podid) q = q.where('pod_id', '=', (await findPod(ctx, params.podid)).id);
    if (params.hypervisor) q = q.where('hypervisor', '=', hypervisorName(params.hypervisor));
    if (params.clustertype) q = q.where('cluster_type', '=', params.clustertype);
    if (params.allocationstate)
      q = q.where('allocation_state', '=', allocationState(params.allocationstate) as string);
    if (params.managedstate)
      q = q.where('managed_state', '=', oneOf(MANAGED_STATES, params.managedstate, 'managed state'));
    if (params.arch) q = q.where('arch', '=', params.arch);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentClusters(ctx, rows, { capacities: params.showcapacities }), Number(count));
  },
});

export const updateCluster = defineCommand({
  name: 'updateCluster',
  description:
    'Renames a cluster or changes its allocation state, managed state, type, architecture or hypervisor (the latter only if its hosts match).',
  params: {
    id: p.uuid({ required: true, description: 'ID of the cluster to update.' }),
    clustername: p.string({ description: 'New name, unique in the pod; must not be blank.' }),
    allocationstate: p.string({ description: 'Enabled or Disabled; a Disabled cluster gets no new VMs.' }),
    managedstate: p.string({ description: 'Managed or Unmanaged; recorded and shown only.' }),
    hypervisor: p.string({
      description:
        'New hypervisor, KVM, LXC or Simulator; refused while the cluster has hosts of another one.',
    }),
    clustertype: p.string({ description: 'Only CloudManaged is accepted.' }),
    arch: p.string({ description: 'New architecture: x86_64 or aarch64.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const cluster = await findCluster(ctx, params.id);
    const changes: Partial<ClusterRow> = {};
    if (params.clustername !== undefined) {
      const name = params.clustername.trim();
      if (name === '') throw invalidParameter('Cluster name must not be empty');
      changes.name = name;
    }
    if (params.allocationstate !== undefined)
      changes.allocation_state = allocationState(params.allocationstate);
    if (params.managedstate !== undefined)
      changes.managed_state = oneOf(MANAGED_STATES, params.managedstate, 'managed state');
    if (params.clustertype !== undefined)
      changes.cluster_type = oneOf(CLUSTER_TYPES, params.clustertype, 'cluster type');
    if (params.arch !== undefined) changes.arch = oneOf(ARCHS, params.arch, 'architecture');
    if (params.hypervisor !== undefined) {
      const hypervisor = hypervisorName(params.hypervisor);
      const running = await hostHypervisors(app, cluster.id);
      if (running.some((h) => h !== hypervisor))
        throw invalidParameter(
          `Cluster ${cluster.name} has ${running.join(', ')} hosts; its hypervisor cannot become ${hypervisor}`,
        );
      changes.hypervisor = hypervisor;
    }
    const row = await app.store.db.transaction().execute(async (tx) => {
      if (changes.name) await checkClusterNameFree(tx, cluster.pod_id, changes.name, cluster.id);
      if (Object.keys(changes).length > 0)
        await tx.updateTable('clusters').set(changes).where('id', '=', cluster.id).execute();
      return tx.selectFrom('clusters').selectAll().where('id', '=', cluster.id).executeTakeFirstOrThrow();
    });
    return (await presentClusters(ctx, [row]))[0];
  },
});

export const deleteCluster = defineCommand({
  name: 'deleteCluster',
  description:
    'Deletes a cluster that has no hosts and no primary storage left, with its cluster-level settings.',
  params: { id: p.uuid({ required: true, description: 'ID of the cluster to delete.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const cluster = await findCluster(ctx, params.id);
    if ((await countHosts(app, { clusterId: cluster.id })) > 0)
      throw resourceInUse(`The cluster ${cluster.name} is not deletable because it still has hosts`);
    const pool = await app.store.db
      .selectFrom('storage_pools')
      .select('id')
      .where('cluster_id', '=', cluster.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (pool)
      throw resourceInUse(
        `The cluster ${cluster.name} is not deletable because it still has primary storage`,
      );
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('clusters')
        .set({ removed: app.clock.now() })
        .where('id', '=', cluster.id)
        .execute();
      await tx
        .deleteFrom('scoped_configuration')
        .where('scope', '=', 'cluster')
        .where('scope_id', '=', cluster.id)
        .execute();
    });
    await app.settings.load();
    return success();
  },
});

export const listHypervisors = defineCommand({
  name: 'listHypervisors',
  description:
    "Lists the hypervisors in use by clusters (of a zone, if given); before any cluster exists, the ones Nimbostack's agents can run.",
  params: { zoneid: p.uuid({ description: "Only hypervisors of this zone's clusters." }) },
  async handler(ctx, params) {
    let q = ctx.app.store.db
      .selectFrom('clusters')
      .select('hypervisor')
      .distinct()
      .where('removed', 'is', null);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    const used = (await q.execute()).map((r) => r.hypervisor);
    // Before any cluster exists, offer what the agents can run so that wizards have a choice.
    const names = used.length > 0 ? used.sort() : [...HYPERVISORS];
    return listResult(
      names.map((name) => ({ name })),
      names.length,
    );
  },
});

export const clusterCommands = [addCluster, listClusters, updateCluster, deleteCluster, listHypervisors];
