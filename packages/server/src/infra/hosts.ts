/**
 * Hypervisor hosts: addHost adopts a host its agent already presented, listHosts, updateHost,
 * deleteHost, reconnectHost, maintenance mode and host tags. Capabilities that place work on
 * hosts (compute) veto deletion and empty a host for maintenance through the hooks below.
 *
 * The addHost flow: start an agent with a token (`--token SECRET --name kvm1`); it connects and
 * waits. addHost(url=agent://kvm1, password=SECRET, zone, pod, cluster, hypervisor) checks the
 * token, records the host with the hardware the agent reported and tells the agent it is ready.
 * From then on the agent reconnects by itself with the same token after any restart.
 */
import { timingSafeEqual } from 'node:crypto';
import { HypervisorType, type StartupMessage } from '@nimbostack/protocol';
import { hashToken, onHostStatusChange } from '../agents/gateway.ts';
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { ClusterRow, HostRow, PodRow, ZoneRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, internalError, invalidParameter } from '../errors.ts';
import { hostHaRows, presentHostHa } from '../ha/host-ha-records.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { recordAlert } from './alerts.ts';
import { findCluster, findPod, findZone, likeOp, namesOf } from './common.ts';

/** Vetoes the deletion of a host by throwing (compute: the host still runs VMs). Changes nothing. */
export type HostDeleteCheck = (ctx: CallContext, host: HostRow, forced: boolean) => Promise<void>;
const deleteChecks: HostDeleteCheck[] = [];
export function onHostDelete(check: HostDeleteCheck): void {
  deleteChecks.push(check);
}

/**
 * What goes with a host once every check has let its deletion through, before its row is marked
 * removed (its routers and bridges, its local pools).
 */
export type HostRemovalStep = (ctx: CallContext, host: HostRow) => Promise<void>;
const removalSteps: HostRemovalStep[] = [];
export function onHostRemoval(step: HostRemovalStep): void {
  removalSteps.push(step);
}

/**
 * Empties a host entering maintenance (compute migrates or stops its VMs), or refuses by throwing
 * an ApiError whose text says why; the host then stays as it was.
 */
export type HostMaintenanceHandler = (ctx: CallContext, host: HostRow) => Promise<void>;
const maintenanceHandlers: HostMaintenanceHandler[] = [];
export function onHostMaintenance(handler: HostMaintenanceHandler): void {
  maintenanceHandlers.push(handler);
}

const MAINTENANCE_STATES = [
  'PrepareForMaintenance',
  'Maintenance',
  'ErrorInPrepareForMaintenance',
  'ErrorInMaintenance',
];

export function hypervisorType(value: string): HypervisorType {
  const found = HypervisorType.options.find((h) => h.toLowerCase() === value.trim().toLowerCase());
  if (!found)
    throw invalidParameter(`Invalid hypervisor type ${value}; use ${HypervisorType.options.join(' or ')}`);
  return found;
}

function percent(part: number, whole: number): string {
  if (!whole) return '0%';
  return `${Math.round((part / whole) * 10000) / 100}%`;
}

export async function findHost(ctx: CallContext, uuid: string, tx: Tx = ctx.app.store.db): Promise<HostRow> {
  const host = await tx
    .selectFrom('hosts')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!host) throw invalidParameter(`Unable to find host by id ${uuid}`);
  return host;
}

export async function presentHosts(ctx: CallContext, rows: HostRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = rows.map((r) => r.id);
  const msIds = [...new Set(rows.map((r) => r.ms_id).filter((x): x is number => x !== null))];
  const [zones, pods, clusters, tags, servers, arches] = await Promise.all([
    namesOf(
      ctx,
      'zones',
      rows.map((r) => r.zone_id),
    ),
    namesOf(
      ctx,
      'pods',
      rows.map((r) => r.pod_id),
    ),
    namesOf(
      ctx,
      'clusters',
      rows.map((r) => r.cluster_id),
    ),
    db.selectFrom('host_tags').selectAll().where('host_id', 'in', ids).orderBy('id').execute(),
    msIds.length
      ? db.selectFrom('management_servers').select(['id', 'uuid', 'name']).where('id', 'in', msIds).execute()
      : [],
    db
      .selectFrom('clusters')
      .select(['id', 'arch'])
      .where('id', 'in', [...new Set(rows.map((r) => r.cluster_id ?? 0))])
      .execute(),
  ]);
  const serverById = new Map(servers.map((s) => [s.id, s]));
  const archById = new Map(arches.map((c) => [c.id, c.arch]));
  const haByHost = await hostHaRows(ctx.app, ids);
  const tagsByHost = new Map<number, { tag: string; implicit: boolean }[]>();
  for (const t of tags) {
    const list = tagsByHost.get(t.host_id) ?? [];
    list.push({ tag: t.tag, implicit: t.is_implicit === 1 });
    tagsByHost.set(t.host_id, list);
  }
  return rows.map((h) => {
    const cores = h.cpu_cores ?? 0;
    const speed = h.cpu_speed_mhz ?? 0;
    const cpuTotal = cores * speed;
    const cpuAllocated = Number(h.cpu_allocated_mhz);
    const memory = Number(h.memory_bytes ?? 0);
    const memoryAllocated = Number(h.memory_allocated_bytes);
    const hostTags = tagsByHost.get(h.id) ?? [];
    const explicit = hostTags.filter((t) => !t.implicit).map((t) => t.tag);
    const implicit = hostTags.filter((t) => t.implicit).map((t) => t.tag);
    const zone = zones.get(h.zone_id);
    const pod = h.pod_id === null ? undefined : pods.get(h.pod_id);
    const cluster = h.cluster_id === null ? undefined : clusters.get(h.cluster_id);
    const ms = h.ms_id === null ? undefined : serverById.get(h.ms_id);
    return {
      id: h.uuid,
      name: h.name,
      state: h.state,
      disconnected: formatDate(h.disconnected),
      type: h.type,
      ipaddress: h.private_ip ?? undefined,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      podid: pod?.uuid,
      podname: pod?.name,
      version: h.agent_version ?? undefined,
      hypervisor: h.hypervisor ?? undefined,
      hypervisorversion: h.hypervisor_version ?? undefined,
      arch: h.cluster_id === null ? undefined : archById.get(h.cluster_id),
      cpusockets: h.cpu_sockets ?? undefined,
      cpunumber: h.cpu_cores ?? undefined,
      cpuspeed: h.cpu_speed_mhz ?? undefined,
      cpuallocated: percent(cpuAllocated, cpuTotal),
      cpuallocatedvalue: cpuAllocated,
      cpuallocatedpercentage: percent(cpuAllocated, cpuTotal),
      cpuallocatedwithoverprovisioning: percent(cpuAllocated, cpuTotal),
      cpuwithoverprovisioning: String(cpuTotal),
      memorytotal: memory,
      memorywithoverprovisioning: String(memory),
      memoryallocated: memoryAllocated,
      memoryallocatedbytes: memoryAllocated,
      memoryallocatedpercentage: percent(memoryAllocated, memory),
      disksizetotal: Number(h.local_storage_bytes),
      capabilities: 'hvm',
      // The agents' pings are kept in memory and written now and then (agents/gateway.ts).
      lastpinged: formatDate(ctx.app.agents.lastPingOf(h.id) ?? h.last_pinged),
      managementserverid: ms?.uuid,
      managementservername: ms?.name,
      clusterid: cluster?.uuid,
      clustername: cluster?.name,
      clustertype: cluster ? 'CloudManaged' : undefined,
      islocalstorageactive: false,
      created: formatDate(h.created),
      removed: formatDate(h.removed),
      resourcestate: h.resource_state,
      hosttags: hostTags.length ? hostTags.map((t) => t.tag).join(',') : undefined,
      explicithosttags: explicit.length ? explicit.join(',') : undefined,
      implicithosttags: implicit.length ? implicit.join(',') : undefined,
      istagarule: false,
      hahost: false,
      hostha: presentHostHa(h, haByHost.get(h.id)),
      // Out-of-band management is not offered; clients (the UI) expect the object.
      outofbandmanagement: { enabled: false, powerstate: 'Disabled' },
      annotation: h.annotation ?? undefined,
    };
  });
}

async function presentOne(ctx: CallContext, hostId: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('hosts')
    .selectAll()
    .where('id', '=', hostId)
    .executeTakeFirstOrThrow();
  return (await presentHosts(ctx, [row]))[0];
}

async function replaceTags(tx: Tx, hostId: number, tags: string[]): Promise<void> {
  await tx.deleteFrom('host_tags').where('host_id', '=', hostId).where('is_implicit', '=', 0).execute();
  const unique = [...new Set(tags.map((t) => t.trim()).filter((t) => t !== ''))];
  if (unique.length > 0)
    await tx
      .insertInto('host_tags')
      .values(unique.map((tag) => ({ host_id: hostId, tag, is_implicit: 0 as const })))
      .execute();
}

/** The agent name addHost's url designates: agent://NAME, or the host part of any URL (http://kvm1). */
function agentNameOf(url: string): string {
  let host = '';
  try {
    host = new URL(url.includes('://') ? url : `agent://${url}`).hostname;
  } catch {
    host = '';
  }
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(host))
    throw invalidParameter(
      `Invalid url ${url}: use agent://<host name> (the name the agent was started with)`,
    );
  return host.toLowerCase();
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(hashToken(a), 'hex');
  const y = Buffer.from(hashToken(b), 'hex');
  return timingSafeEqual(x, y);
}

async function resolveCluster(
  ctx: CallContext,
  pod: PodRow,
  params: { clusterid?: string; clustername?: string },
): Promise<ClusterRow> {
  if (params.clusterid) {
    const cluster = await findCluster(ctx, params.clusterid);
    if (cluster.pod_id !== pod.id)
      throw invalidParameter(`Cluster ${cluster.name} is not in pod ${pod.name}`);
    return cluster;
  }
  if (params.clustername) {
    const cluster = await ctx.app.store.db
      .selectFrom('clusters')
      .selectAll()
      .where('pod_id', '=', pod.id)
      .where('name', '=', params.clustername)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (!cluster) throw invalidParameter(`Unable to find cluster ${params.clustername} in pod ${pod.name}`);
    return cluster;
  }
  throw invalidParameter('Either clusterid or clustername must be specified for the host');
}

export interface NewHost {
  zone: ZoneRow;
  pod: PodRow;
  cluster: ClusterRow;
  url: string;
  startup: StartupMessage;
  tags: string[];
  resourceState: 'Enabled' | 'Disabled';
  details?: Record<string, string>;
}

/** Records a host an agent presented, in the caller's transaction. Returns its id and uuid. */
export async function insertHost(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  h: NewHost,
): Promise<{ id: number; uuid: string }> {
  const { app } = ctx;
  const uuid = app.ids.uuid();
  const s = h.startup;
  const id = await insertId(app.store, tx, 'hosts', {
    uuid,
    name: s.host.toLowerCase(),
    zone_id: h.zone.id,
    pod_id: h.pod.id,
    cluster_id: h.cluster.id,
    type: 'Routing',
    hypervisor: s.hypervisor,
    hypervisor_version: s.hypervisorVersion,
    state: 'Connecting',
    resource_state: h.resourceState,
    cpu_sockets: s.cpuSockets,
    cpu_cores: s.cpuCores,
    cpu_speed_mhz: s.cpuMhz,
    memory_bytes: s.memoryBytes,
    cpu_allocated_mhz: 0,
    memory_allocated_bytes: 0,
    local_storage_bytes: s.localStorageBytes,
    private_ip: s.privateIp,
    agent_version: s.agentVersion,
    url: h.url,
    token_hash: hashToken(s.token),
    details: h.details && Object.keys(h.details).length ? JSON.stringify(h.details) : null,
    annotation: null,
    ms_id: app.server.id,
    last_pinged: null,
    disconnected: null,
    created: app.clock.now(),
    removed: null,
  });
  await replaceTags(tx, id, h.tags);
  return { id, uuid };
}

export const addHost = defineCommand({
  name: 'addHost',
  description:
    "Adopts a hypervisor host whose Nimbostack agent is already running and presenting itself: the password must be the agent's token. Answers a list of one host.",
  params: {
    zoneid: p.uuid({ required: true, description: "Zone of the host; must be the pod's zone." }),
    podid: p.uuid({ required: true, description: 'Pod of the host.' }),
    clusterid: p.uuid({
      description:
        'Cluster the host joins; must be in the pod and of its hypervisor. Give it or clustername.',
    }),
    clustername: p.string({ description: 'Name of the cluster in the pod, instead of clusterid.' }),
    url: p.string({
      required: true,
      length: 2048,
      description:
        "agent://<name>, the name the agent was started with; it becomes the host's name and must be unused.",
    }),
    username: p.string({
      description: 'Accepted for compatibility; Nimbostack ignores it (agents authenticate by token).',
    }),
    password: p.string({ description: 'The token the agent was started with; required.' }),
    hosttags: p.list({
      description:
        'Comma-separated host tags; service offerings with a host tag place VMs only on hosts carrying it.',
    }),
    hypervisor: p.string({
      required: true,
      description:
        'Hypervisor the agent runs, e.g. KVM, LXC or Simulator; must match the agent and the cluster.',
    }),
    allocationstate: p.string({
      description: 'Enabled (default) or Disabled; a Disabled host gets no new VMs.',
    }),
    externaldetails: p.map({
      description: 'Free key/value details stored with the host (externaldetails[0].key=value).',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.zoneid);
    const pod = await findPod(ctx, params.podid);
    if (pod.zone_id !== zone.id) throw invalidParameter(`Pod ${pod.name} is not in zone ${zone.name}`);
    const cluster = await resolveCluster(ctx, pod, params);
    const hypervisor = hypervisorType(params.hypervisor);
    if (cluster.hypervisor !== hypervisor)
      throw invalidParameter(
        `Cannot add host with hypervisor type ${hypervisor} to cluster ${cluster.name} of hypervisor type ${cluster.hypervisor}`,
      );
    let resourceState: 'Enabled' | 'Disabled' = 'Enabled';
    if (params.allocationstate !== undefined) {
      const v = params.allocationstate.trim().toLowerCase();
      if (v === 'disabled' || v === 'disable') resourceState = 'Disabled';
      else if (v !== 'enabled' && v !== 'enable')
        throw invalidParameter(`Invalid allocationstate ${params.allocationstate}; use Enabled or Disabled`);
    }
    const name = agentNameOf(params.url);
    const existing = await app.store.db
      .selectFrom('hosts')
      .select('uuid')
      .where('name', '=', name)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (existing) throw invalidParameter(`A host named ${name} already exists (id ${existing.uuid})`);
    const startup = app.agents.pendingHost(name);
    if (!startup)
      throw internalError(
        `Unable to add the host: no agent is presenting host ${name}; start one with --name ${name} and a token, then pass that token as password`,
      );
    if (!params.password)
      throw invalidParameter('Unable to add the host: password (the agent token) is required');
    if (!sameSecret(params.password, startup.token))
      throw invalidParameter(
        `Unable to add the host: the password does not match the token of agent ${name}`,
      );
    if (startup.hypervisor !== hypervisor)
      throw invalidParameter(`Host ${name} runs ${startup.hypervisor}, not ${hypervisor}`);
    const details: Record<string, string> = {};
    for (const entry of params.externaldetails ?? []) Object.assign(details, entry);
    const host = await app.store.db.transaction().execute((tx) =>
      insertHost(ctx, tx, {
        zone,
        pod,
        cluster,
        url: params.url,
        startup,
        tags: params.hosttags ?? [],
        resourceState,
        details,
      }),
    );
    if (!(await app.agents.adopt({ ...host, name }, startup))) {
      await app.store.db.transaction().execute(async (tx) => {
        await tx.deleteFrom('host_tags').where('host_id', '=', host.id).execute();
        await tx.deleteFrom('hosts').where('id', '=', host.id).execute();
      });
      throw internalError(`Unable to add the host: agent ${name} went away before acknowledging it`);
    }
    return listResult([await presentOne(ctx, host.id)], 1);
  },
});

export const listHosts = defineCommand({
  name: 'listHosts',
  description:
    'Lists hypervisor hosts with their state, resources and agent connection; keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the host with this ID.' }),
    name: p.string({ description: 'Only hosts whose name contains this text (case-insensitive).' }),
    zoneid: p.uuid({ description: 'Only hosts of this zone.' }),
    podid: p.uuid({ description: 'Only hosts of this pod.' }),
    clusterid: p.uuid({ description: 'Only hosts of this cluster.' }),
    state: p.string({
      description:
        'Only hosts in this connection state, e.g. Up, Down, Disconnected, Alert (case-insensitive).',
    }),
    resourcestate: p.string({
      description: 'Only hosts in this resource state, e.g. Enabled, Disabled, Maintenance (exact).',
    }),
    hypervisor: p.string({ description: 'Only hosts of this hypervisor, e.g. KVM.' }),
    type: p.string({
      description: 'Only Routing (hypervisor) hosts exist in Nimbostack; another type gives an empty list.',
    }),
    managementserverid: p.uuid({
      description: 'Only hosts whose agent is connected to this management server.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const idOf = async (table: 'zones' | 'pods' | 'clusters' | 'management_servers', uuid: string) =>
      (await db.selectFrom(table).select('id').where('uuid', '=', uuid).executeTakeFirst())?.id ?? -1;
    let q = db.selectFrom('hosts').where('removed', 'is', null);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name)
      q = q.where(likeEscaped('name', `%${escapeLike(params.name.toLowerCase())}%`, likeOp(ctx)));
    if (params.keyword)
      q = q.where(likeEscaped('name', `%${escapeLike(params.keyword.toLowerCase())}%`, likeOp(ctx)));
    if (params.zoneid) q = q.where('zone_id', '=', await idOf('zones', params.zoneid));
    if (params.podid) q = q.where('pod_id', '=', await idOf('pods', params.podid));
    if (params.clusterid) q = q.where('cluster_id', '=', await idOf('clusters', params.clusterid));
    if (params.managementserverid)
      q = q.where('ms_id', '=', await idOf('management_servers', params.managementserverid));
    if (params.state) q = q.where('state', '=', capitalised(params.state));
    if (params.resourcestate) q = q.where('resource_state', '=', params.resourcestate);
    if (params.hypervisor) q = q.where('hypervisor', '=', hypervisorType(params.hypervisor));
    if (params.type && params.type.toLowerCase() !== 'routing') return listResult([], 0);
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentHosts(ctx, rows), Number(count));
  },
});

function capitalised(state: string): string {
  const s = state.trim();
  return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
}

export const updateHost = defineCommand({
  name: 'updateHost',
  description: 'Enables or disables a host for new VMs, replaces its host tags or sets its annotation.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the host to update.' }),
    hosttags: p.list({ description: "Comma-separated tags replacing the host's tags; empty removes them." }),
    allocationstate: p.string({
      description:
        'Enable or Disable (Enabled/Disabled also accepted); refused while the host is in maintenance.',
    }),
    annotation: p.string({
      length: 1024,
      description: 'Free-text note on the host, up to 1024 characters; empty clears it.',
    }),
  },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.id);
    let resourceState: string | undefined;
    if (params.allocationstate !== undefined) {
      const v = params.allocationstate.trim().toLowerCase();
      if (v === 'enable' || v === 'enabled') resourceState = 'Enabled';
      else if (v === 'disable' || v === 'disabled') resourceState = 'Disabled';
      else throw invalidParameter(`Invalid allocationstate ${params.allocationstate}; use Enable or Disable`);
      if (MAINTENANCE_STATES.includes(host.resource_state))
        throw invalidParameter(
          `Host ${host.name} is in ${host.resource_state}; cancel maintenance before enabling or disabling it`,
        );
    }
    await ctx.app.store.db.transaction().execute(async (tx) => {
      if (resourceState || params.annotation !== undefined)
        await tx
          .updateTable('hosts')
          .set({
            ...(resourceState ? { resource_state: resourceState } : {}),
            ...(params.annotation !== undefined ? { annotation: params.annotation || null } : {}),
          })
          .where('id', '=', host.id)
          .execute();
      if (params.hosttags !== undefined) await replaceTags(tx, host.id, params.hosttags);
    });
    return presentOne(ctx, host.id);
  },
});

export const deleteHost = defineCommand({
  name: 'deleteHost',
  description:
    'Removes a host; it must be in maintenance or not Up (unless forced), and have no VMs and no local volumes left. Its agent is forgotten.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the host to delete.' }),
    forced: p.boolean({
      description:
        'Delete even though the host is Up and not in maintenance; VMs or local volumes on it still refuse the deletion.',
    }),
    forcedestroylocalstorage: p.boolean({
      description:
        "Ignored. Upstream destroys the VMs whose disks are on the host's local storage; Nimbostack never does that on a host deletion: a host whose local storage holds volumes is refused.",
    }),
  },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.id);
    const forced = params.forced ?? false;
    if (!forced && host.resource_state !== 'Maintenance' && host.state === 'Up')
      throw internalError(
        `Host ${host.uuid} cannot be deleted as it is not in maintenance mode. Either put the host into maintenance or perform a forced deletion.`,
      );
    for (const check of deleteChecks) await check(ctx, host, forced);
    for (const step of removalSteps) await step(ctx, host);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('host_tags').where('host_id', '=', host.id).execute();
      await tx
        .updateTable('hosts')
        .set({ removed: ctx.app.clock.now(), state: 'Removed' })
        .where('id', '=', host.id)
        .execute();
    });
    ctx.app.agents.forget(host.id);
    return success();
  },
});

const hostTarget = (_ctx: CallContext, params: { id: string }) => ({ type: 'Host', id: params.id });

export const reconnectHost = defineCommand({
  name: 'reconnectHost',
  description:
    "Drops and re-establishes the connection with a host's agent, which then reports its state again. Asynchronous.",
  params: { id: p.uuid({ required: true, description: 'ID of the host.' }) },
  target: hostTarget,
  event: { type: 'HOST.RECONNECT', description: (params) => `reconnecting host ${params.id}` },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.id);
    await ctx.app.agents.reconnect(host.id);
    return presentOne(ctx, host.id);
  },
});

/** The job runner records the MAINT.* events (Scheduled, Started, Completed) around these changes. */
async function setResourceState(ctx: CallContext, host: HostRow, state: string): Promise<void> {
  await ctx.app.store.db
    .updateTable('hosts')
    .set({ resource_state: state })
    .where('id', '=', host.id)
    .execute();
}

export const prepareHostForMaintenance = defineCommand({
  name: 'prepareHostForMaintenance',
  description:
    'Puts a host in maintenance: its running VMs are migrated to other hosts of the cluster (or the request is refused) and it gets no new VMs. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the host.' }) },
  target: hostTarget,
  event: { type: 'MAINT.PREPARE', description: (params) => `preparing host ${params.id} for maintenance` },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.id);
    if (host.resource_state === 'Maintenance' || host.resource_state === 'PrepareForMaintenance')
      throw invalidParameter(`Host ${host.name} is already in ${host.resource_state}`);
    const previous = host.resource_state;
    await setResourceState(ctx, host, 'PrepareForMaintenance');
    try {
      for (const handler of maintenanceHandlers)
        await handler(ctx, { ...host, resource_state: 'PrepareForMaintenance' });
    } catch (e) {
      await setResourceState(ctx, host, previous);
      if (e instanceof ApiError) throw e;
      throw new ApiError(
        ErrorCode.INTERNAL_ERROR,
        CsErrorCode.CLOUD_RUNTIME,
        `Failed to prepare host ${host.name} for maintenance: ${(e as Error).message}`,
      );
    }
    await setResourceState(ctx, host, 'Maintenance');
    return presentOne(ctx, host.id);
  },
});

export const cancelHostMaintenance = defineCommand({
  name: 'cancelHostMaintenance',
  description:
    'Takes a host out of maintenance (or a failed attempt at it) and makes it Enabled for new VMs again. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the host.' }) },
  target: hostTarget,
  event: { type: 'MAINT.CANCEL', description: (params) => `cancelling maintenance of host ${params.id}` },
  async handler(ctx, params) {
    const host = await findHost(ctx, params.id);
    if (!MAINTENANCE_STATES.includes(host.resource_state))
      throw invalidParameter(`Host ${host.name} is not in maintenance (it is ${host.resource_state})`);
    await setResourceState(ctx, host, 'Enabled');
    return presentOne(ctx, host.id);
  },
});

export const listHostTags = defineCommand({
  name: 'listHostTags',
  description: 'Lists the tags of all hosts, one entry per host and tag; keyword matches tag text.',
  params: { ...listParams },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let q = db
      .selectFrom('host_tags')
      .innerJoin('hosts', 'hosts.id', 'host_tags.host_id')
      .where('hosts.removed', 'is', null);
    if (params.keyword)
      q = q.where(likeEscaped('host_tags.tag', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q
        .select(['host_tags.id', 'host_tags.tag', 'host_tags.is_implicit', 'hosts.uuid as host_uuid'])
        .orderBy('host_tags.id'),
      pageOf(ctx.app, params),
    ).execute();
    return listResult(
      rows.map((r) => ({
        id: String(r.id),
        name: r.tag,
        hostid: r.host_uuid,
        isimplicit: r.is_implicit === 1,
      })),
      Number(count),
    );
  },
});

/** Upstream's ALERT.COMPUTE.HOST: one alert per outage, raised at Alert, resolved when the host is Up. */
const HOST_ALERT = 7;
const alertKey = (hostId: number) => `host:${hostId}`;

onHostStatusChange(async (app, hostIds, status) => {
  const db = app.store.db;
  if (status === 'Up') {
    for (let i = 0; i < hostIds.length; i += 500)
      await db
        .updateTable('alerts')
        .set({ resolved: app.clock.now() })
        .where('source_key', 'in', hostIds.slice(i, i + 500).map(alertKey))
        .where('resolved', 'is', null)
        .execute();
    return;
  }
  if (status !== 'Alert' && status !== 'Down') return;
  const hosts = await db
    .selectFrom('hosts')
    .select(['id', 'name', 'private_ip', 'zone_id', 'pod_id', 'cluster_id'])
    .where('id', 'in', hostIds)
    .execute();
  for (const h of hosts)
    await recordAlert(app, {
      type: HOST_ALERT,
      subject: `Host ${h.name} (${h.private_ip ?? 'no address'}) is ${status}: its agent stopped pinging`,
      zoneId: h.zone_id,
      podId: h.pod_id ?? undefined,
      clusterId: h.cluster_id ?? undefined,
      sourceKey: alertKey(h.id),
    });
});

export const hostCommands = [
  addHost,
  listHosts,
  updateHost,
  deleteHost,
  reconnectHost,
  prepareHostForMaintenance,
  cancelHostMaintenance,
  listHostTags,
];
