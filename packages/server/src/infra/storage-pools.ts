/**
 * Primary storage pools: where VM disks live, attached to a cluster (or a whole zone). Pools are
 * described by URL: nfs://host/path (an NFS export the hosts reach themselves), rbd://[user:key@]
 * monitor[:port]/pool (a Ceph pool), SharedMountPoint://host/path (a path every host has mounted),
 * or a local filesystem path (file:///path or /path). docs/storage.md.
 */
import { statfs } from 'node:fs/promises';
import type { StorageLocation } from '@nimbostack/protocol';
import { withGivenKey } from '../agents/pool-keys.ts';
import { formatDate } from '../clock.ts';
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { StoragePoolRow } from '../db/schema.ts';
import { internalError, invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import {
  detailsOf,
  LINUX_TGT,
  type ManagedPoolInput,
  parseManagedPool,
  probeManagedPool,
} from '../storage/managed/managed-pools.ts';
import { unreachableFrom } from '../storage/pool-monitor.ts';
import { hostForPool, poolLocation } from '../storage/volume-ops.ts';
import { STORAGE_OVERPROVISIONING } from './capacity.ts';
import { hypervisorName } from './clusters.ts';
import { findCluster, findPod, findStoragePool, findZone, likeOp, namesOf, normalizeTags } from './common.ts';
import { hostPlacement } from './host-inventory.ts';

export interface ParsedStorageUrl {
  poolType: 'NetworkFilesystem' | 'SharedMountPoint' | 'Filesystem' | 'RBD' | 'Iscsi';
  hostAddress: string;
  path: string;
  port: number;
  /** The URL as stored and shown (an RBD key never in it). */
  url: string;
  /** RBD: the cephx user and key given in the URL. */
  user?: string;
  secret?: string;
}

/** The Ceph monitor's default port (upstream's too). */
const CEPH_MONITOR_PORT = 6789;

/**
 * rbd://[user:key@]monitor[:port]/pool, upstream's RBD form. A cephx key is base64 and may hold
 * '/': everything up to the last '@' is the credentials; %-escapes are decoded in both parts.
 */
function parseRbdUrl(raw: string, text: string): ParsedStorageUrl {
  const m = /^rbd:\/\/(?:([^:@/]+):(.+)@)?([^@/:]+)(?::(\d{1,5}))?\/([^/]+)\/?$/i.exec(text);
  if (!m) throw invalidParameter(`Invalid RBD URL ${raw}: use rbd://[user:key@]monitor[:port]/pool`);
  let user: string | undefined;
  let secret: string | undefined;
  let pool = '';
  try {
    user = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
    secret = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    pool = decodeURIComponent(m[5]);
  } catch {
    throw invalidParameter(`Storage URL ${raw} is not correctly escaped`);
  }
  if (!/^[A-Za-z0-9._-]+$/.test(pool))
    throw invalidParameter(`Invalid Ceph pool name ${pool} in the RBD URL`);
  const port = m[4] ? Number(m[4]) : CEPH_MONITOR_PORT;
  if (port < 1 || port > 65535) throw invalidParameter(`Invalid port in ${raw}`);
  return {
    poolType: 'RBD',
    hostAddress: m[3],
    path: pool,
    port,
    url: `rbd://${user ? `${encodeURIComponent(user)}@` : ''}${m[3]}:${port}/${pool}`,
    user,
    secret,
  };
}

/**
 * Parses a primary or secondary storage URL; unsupported schemes get a 431. RBD is primary
 * storage only.
 */
export function parseStorageUrl(raw: string, kind: 'primary' | 'image' = 'image'): ParsedStorageUrl {
  const text = raw.trim();
  if (kind === 'primary' && /^rbd:/i.test(text)) return parseRbdUrl(raw, text);
  if (text.startsWith('/'))
    return {
      poolType: 'Filesystem',
      hostAddress: 'localhost',
      path: cleanPath(text),
      port: 0,
      url: `file://${cleanPath(text)}`,
    };
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/]*)(\/.*)?$/.exec(text);
  if (!m)
    throw invalidParameter(
      `Invalid storage URL ${raw}: use nfs://host/path,${kind === 'primary' ? ' rbd://monitor/pool,' : ''} SharedMountPoint://host/path or a local path`,
    );
  const scheme = m[1].toLowerCase();
  const authority = m[2];
  let path = '';
  try {
    path = m[3] ? cleanPath(decodeURIComponent(m[3])) : '';
  } catch {
    throw invalidParameter(`Storage URL ${raw} is not correctly escaped`);
  }
  if (path === '' || (scheme === 'nfs' && path === '/'))
    throw invalidParameter(`Storage URL ${raw} has no path`);
  switch (scheme) {
    case 'nfs': {
      const [host, port] = authority.split(':');
      if (!host) throw invalidParameter(`Storage URL ${raw} names no NFS server`);
      if (port !== undefined && !/^\d{1,5}$/.test(port)) throw invalidParameter(`Invalid port in ${raw}`);
      return {
        poolType: 'NetworkFilesystem',
        hostAddress: host,
        path,
        port: port ? Number(port) : 2049,
        url: `nfs://${authority}${path}`,
      };
    }
    case 'sharedmountpoint':
      return {
        poolType: 'SharedMountPoint',
        hostAddress: authority || 'localhost',
        path,
        port: 0,
        url: `SharedMountPoint://${authority || 'localhost'}${path}`,
      };
    case 'file':
      if (authority !== '' && authority !== 'localhost')
        throw invalidParameter(`A file URL names a local path: ${raw}`);
      return { poolType: 'Filesystem', hostAddress: 'localhost', path, port: 0, url: `file://${path}` };
    default:
      throw invalidParameter(
        `Unsupported storage protocol ${m[1]}: use nfs,${kind === 'primary' ? ' rbd,' : ''} SharedMountPoint or a local path`,
      );
  }
}

function cleanPath(path: string): string {
  const p = path.replace(/\/{2,}/g, '/');
  return p.length > 1 ? p.replace(/\/$/, '') : p;
}

/** Size and use of a directory the management server can see, when it can see it. */
export async function filesystemUsage(path: string): Promise<{ total: number; used: number } | undefined> {
  try {
    const s = await statfs(path);
    return { total: s.blocks * s.bsize, used: (s.blocks - s.bfree) * s.bsize };
  } catch {
    return undefined;
  }
}

/**
 * Size and use of an NFS or RBD pool as a host of its scope measures it on the backend (the
 * management server does not reach it): the first connected host that can answers. Undefined
 * when no such host is connected; refused when none of them reaches the pool (upstream fails the
 * pool's creation when no host can connect to it).
 */
async function measureOnHost(
  ctx: CallContext,
  pool: StorageLocation,
  scope: { zoneId: number; clusterId: number | null; hypervisor: string | null },
): Promise<{ total: number; used: number } | undefined> {
  let q = ctx.app.store.db
    .selectFrom('hosts')
    .select(['id', 'name'])
    .where('zone_id', '=', scope.zoneId)
    .where('type', '=', 'Routing')
    .where('state', '=', 'Up')
    .where('removed', 'is', null);
  q =
    scope.clusterId !== null
      ? q.where('cluster_id', '=', scope.clusterId)
      : q.where('hypervisor', '=', scope.hypervisor ?? '');
  const hosts = await q.orderBy('id').limit(50).execute();
  const failures: string[] = [];
  for (const hostId of ctx.app.agents.connectedHosts(hosts.map((h) => h.id)).slice(0, 5)) {
    try {
      const stats = await ctx.app.agents.call(hostId, 'getPoolStats', { pool });
      return { total: stats.capacityBytes, used: stats.usedBytes };
    } catch (e) {
      failures.push(`${hosts.find((h) => h.id === hostId)?.name}: ${(e as Error).message}`);
    }
  }
  if (failures.length === 0) return undefined;
  throw internalError(`No host reaches the storage pool (${failures.join('; ')})`);
}

/**
 * A shared pool keeps a copy of each template its VMs were cloned from (the agent makes it on
 * first use); once no volume is left, a host that reaches the pool removes them. Best effort: a
 * pool no connected host reaches is deleted all the same, its copies left (and logged).
 */
async function deleteTemplateCopies(ctx: CallContext, pool: StoragePoolRow): Promise<void> {
  if (pool.scope === 'HOST') return;
  const templates = await ctx.app.store.db
    .selectFrom('templates')
    .select('uuid')
    .where('hypervisor', '=', 'KVM')
    .execute();
  if (templates.length === 0) return;
  try {
    await ctx.app.agents.call(await hostForPool(ctx, pool), 'deleteTemplateCopies', {
      pool: poolLocation(pool),
      templates: templates.map((t) => t.uuid),
    });
  } catch (err) {
    ctx.app.log.warn(
      { err, pool: pool.uuid },
      'the template copies of a deleted storage pool were left on it',
    );
  }
}

/**
 * Checks that can refuse a pool's removal (volumes on it, templates cached on it...). The
 * capabilities owning those records register here and say why the pool is still in use.
 */
type PoolUsageCheck = (app: App, pool: StoragePoolRow) => Promise<string | undefined>;
const usageChecks: PoolUsageCheck[] = [];

export function onStoragePoolDelete(check: PoolUsageCheck): void {
  usageChecks.push(check);
}

export async function presentStoragePools(ctx: CallContext, rows: StoragePoolRow[]): Promise<object[]> {
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
  const clusters = await namesOf(
    ctx,
    'clusters',
    rows.map((r) => r.cluster_id),
  );
  const hostIds = [...new Set(rows.map((r) => r.host_id).filter((x): x is number => x !== null))];
  const hosts = new Map(
    (hostIds.length
      ? await ctx.app.store.db
          .selectFrom('hosts')
          .select(['id', 'uuid', 'name'])
          .where('id', 'in', hostIds)
          .execute()
      : []
    ).map((h) => [h.id, h]),
  );
  const unreachable = await unreachableFrom(
    ctx.app,
    rows.map((r) => r.id),
  );
  return rows.map((s) => {
    const factor = ctx.app.settings.at(STORAGE_OVERPROVISIONING, 'storagepool', s.id);
    return {
      id: s.uuid,
      name: s.name,
      zoneid: zones.get(s.zone_id)?.uuid,
      zonename: zones.get(s.zone_id)?.name,
      podid: s.pod_id === null ? undefined : pods.get(s.pod_id)?.uuid,
      podname: s.pod_id === null ? undefined : pods.get(s.pod_id)?.name,
      clusterid: s.cluster_id === null ? undefined : clusters.get(s.cluster_id)?.uuid,
      clustername: s.cluster_id === null ? undefined : clusters.get(s.cluster_id)?.name,
      // A host-local pool names its host (upstream shows only its address).
      ...(s.host_id !== null && hosts.get(s.host_id)
        ? { hostid: hosts.get(s.host_id)!.uuid, hostname: hosts.get(s.host_id)!.name }
        : {}),
      ipaddress: s.host_address,
      path: s.path,
      created: formatDate(s.created),
      type: s.pool_type,
      scope: s.scope,
      hypervisor: s.hypervisor ?? undefined,
      state: s.state,
      disksizetotal: Number(s.capacity_bytes),
      disksizeallocated: Number(s.allocated_bytes),
      disksizeused: Number(s.used_bytes),
      capacitybytes: Number(s.capacity_bytes),
      capacityiops: s.capacity_iops === null ? undefined : Number(s.capacity_iops),
      overprovisionfactor: Number.isInteger(factor) ? factor.toFixed(1) : String(factor),
      provider: s.provider,
      tags: s.tags ?? undefined,
      istagarule: s.is_tag_a_rule === 1,
      managed: s.managed === 1,
      storagecapabilities: { VOLUME_SNAPSHOT_QUIESCEVM: 'false' },
      // Up hosts that could not reach the pool at their last check (storage/pool-monitor.ts).
      ...(unreachable.has(s.id) ? { details: { unreachablefrom: unreachable.get(s.id)!.join(',') } } : {}),
      hasannotations: false,
    };
  });
}

async function presentOne(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('storage_pools')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentStoragePools(ctx, [row]))[0];
}

async function checkPoolNameFree(tx: Tx, zoneId: number, name: string, except?: number): Promise<void> {
  let q = tx
    .selectFrom('storage_pools')
    .select('id')
    .where('zone_id', '=', zoneId)
    .where('name', '=', name)
    .where('removed', 'is', null);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst())
    throw invalidParameter(`A storage pool with name ${name} already exists in the zone`);
}

export const createStoragePool = defineCommand({
  name: 'createStoragePool',
  description:
    "Adds primary storage where VM volumes live: an NFS export, a Ceph RBD pool, a shared mount point or a local path, for one cluster or for a whole zone's hosts of one hypervisor.",
  params: {
    zoneid: p.uuid({ required: true, description: 'Zone of the pool.' }),
    podid: p.uuid({ description: 'Pod of the cluster; required for a cluster-wide pool.' }),
    clusterid: p.uuid({
      description:
        'Cluster whose hosts use the pool; required for a cluster-wide pool, and the default scope when given.',
    }),
    name: p.string({
      required: true,
      description: 'Name of the pool, unique in the zone; must not be blank.',
    }),
    url: p.string({
      required: true,
      length: 2048,
      description:
        'nfs://server[:port]/path, rbd://[user:key@]monitor[:port]/pool (the key is kept encrypted and never shown), SharedMountPoint://host/path or a local absolute path; not already used by a pool of the same scope.',
    }),
    scope: p.string({
      description: 'cluster or zone; defaults to cluster when clusterid is given, zone otherwise.',
    }),
    tags: p.string({
      description:
        'Comma-separated storage tags; offerings with a storage tag put volumes only on pools carrying it.',
    }),
    istagarule: p.boolean({ description: 'Recorded and shown; Nimbostack does not evaluate tags as rules.' }),
    capacitybytes: p.long({
      min: 0,
      description:
        'Size of the pool in bytes; by default measured: a local or mounted path by the management server, an NFS or RBD pool by a host that reaches it (0 when no host is connected yet).',
    }),
    capacityiops: p.long({ min: 0, description: 'IOPS the pool can deliver, recorded and shown only.' }),
    hypervisor: p.string({
      description:
        "Hypervisor of the hosts using a zone-wide pool, KVM, LXC or Simulator; required for zone scope (a cluster pool takes its cluster's).",
    }),
    provider: p.string({
      description:
        'DefaultPrimary (the default), or LinuxTgt for managed iSCSI: every volume its own target and LUN, made and removed on a Linux tgt storage server over SSH.',
    }),
    managed: p.boolean({
      description:
        'True for a pool whose provider makes each volume on the storage server (LinuxTgt); the default for LinuxTgt, refused for DefaultPrimary.',
    }),
    details: p.map({
      description:
        'Provider settings. LinuxTgt: sshkey (the private key, required, stored encrypted), sshuser (root), sshhost (the portal), sshport (22), sshhostkey (SHA256:… fingerprint; else the first one seen is pinned), initiators (addresses or CIDRs allowed to log in; default the hosts of the pool).',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.zoneid);
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Storage pool name must not be empty');
    const scope = (params.scope ?? (params.clusterid ? 'cluster' : 'zone')).toUpperCase();
    if (scope !== 'CLUSTER' && scope !== 'ZONE')
      throw invalidParameter(`Invalid scope ${params.scope}; use cluster or zone`);
    const provider = params.provider ?? 'DefaultPrimary';
    if (provider !== 'DefaultPrimary' && provider !== LINUX_TGT)
      throw invalidParameter(
        `Unsupported storage provider ${params.provider}; use DefaultPrimary or ${LINUX_TGT}`,
      );
    if (provider === 'DefaultPrimary' && params.managed)
      throw invalidParameter(
        `DefaultPrimary pools are not managed; a managed pool needs provider=${LINUX_TGT}`,
      );
    if (provider === LINUX_TGT && params.managed === false)
      throw invalidParameter(`${LINUX_TGT} pools are managed: every volume is a LUN it makes`);
    let podId: number | null = null;
    let clusterId: number | null = null;
    let hypervisor: string | null = null;
    if (scope === 'CLUSTER') {
      if (!params.podid || !params.clusterid)
        throw invalidParameter('A cluster-wide storage pool needs podid and clusterid');
      const pod = await findPod(ctx, params.podid);
      const cluster = await findCluster(ctx, params.clusterid);
      if (pod.zone_id !== zone.id)
        throw invalidParameter(`Pod ${pod.name} does not belong to zone ${zone.name}`);
      if (cluster.pod_id !== pod.id)
        throw invalidParameter(`Cluster ${cluster.name} does not belong to pod ${pod.name}`);
      podId = pod.id;
      clusterId = cluster.id;
      hypervisor = cluster.hypervisor;
    } else {
      if (!params.hypervisor)
        throw invalidParameter('A zone-wide storage pool needs the hypervisor of the hosts that use it');
      hypervisor = hypervisorName(params.hypervisor);
    }
    const managed: ManagedPoolInput | undefined =
      provider === LINUX_TGT ? parseManagedPool(provider, params.url, detailsOf(params.details)) : undefined;
    const url: ParsedStorageUrl = managed ?? parseStorageUrl(params.url, 'primary');
    if (managed && hypervisor !== 'KVM' && hypervisor !== 'Simulator')
      throw invalidParameter(`Managed iSCSI storage serves KVM hosts, not ${hypervisor}`);
    if (url.poolType === 'RBD' && hypervisor !== 'KVM' && hypervisor !== 'Simulator')
      throw invalidParameter(`RBD primary storage serves KVM hosts, not ${hypervisor}`);
    if (url.poolType === 'RBD' && (url.user === undefined) !== (url.secret === undefined))
      throw invalidParameter('An RBD URL names both the cephx user and its key, or neither');
    const uuid = app.ids.uuid();
    const remote = url.poolType === 'NetworkFilesystem' || url.poolType === 'RBD';
    // A managed pool's storage server is reached now (sign-in, tgtd, the LUN directory), so a
    // pool it cannot use is refused with nothing recorded; simulated hosts have no server.
    const probed = managed && hypervisor !== 'Simulator' ? await probeManagedPool(uuid, managed) : undefined;
    const seen = managed
      ? probed
      : params.capacitybytes !== undefined
        ? undefined
        : remote
          ? await measureOnHost(
              ctx,
              // Not stored yet: the key the URL gave goes along (the gateway finds stored ones).
              withGivenKey(
                poolLocation({
                  uuid,
                  pool_type: url.poolType,
                  path: url.path,
                  host_address: url.hostAddress,
                  port: url.port,
                  auth_user: url.user ?? null,
                }),
                url.secret,
              ),
              { zoneId: zone.id, clusterId, hypervisor },
            )
          : await filesystemUsage(url.path);
    const capacity = params.capacitybytes ?? seen?.total ?? 0;
    const row = await app.store.db.transaction().execute(async (tx) => {
      await checkPoolNameFree(tx, zone.id, name);
      const same = await tx
        .selectFrom('storage_pools')
        .select('name')
        .where('zone_id', '=', zone.id)
        .where('removed', 'is', null)
        .where('url', '=', url.url)
        .where((eb) => (clusterId === null ? eb('cluster_id', 'is', null) : eb('cluster_id', '=', clusterId)))
        .executeTakeFirst();
      if (same) throw invalidParameter(`Storage pool ${same.name} already uses ${url.url} in this scope`);
      const id = await insertId(app.store, tx, 'storage_pools', {
        uuid,
        name,
        zone_id: zone.id,
        pod_id: podId,
        cluster_id: clusterId,
        scope,
        pool_type: url.poolType,
        path: url.path,
        host_address: url.hostAddress,
        port: url.port,
        url: url.url,
        hypervisor,
        provider,
        capacity_bytes: capacity,
        // A size the operator gave stays; a measured one is measured again (storage/pool-monitor.ts).
        capacity_given: params.capacitybytes !== undefined ? 1 : 0,
        used_bytes: Math.min(seen?.used ?? 0, capacity),
        allocated_bytes: 0,
        capacity_iops: params.capacityiops ?? null,
        managed: managed ? 1 : 0,
        state: 'Up',
        tags: normalizeTags(params.tags),
        is_tag_a_rule: params.istagarule ? 1 : 0,
        auth_user: url.user ?? null,
        auth_secret: url.secret === undefined ? null : app.secrets.encrypt(url.secret),
        ...(managed
          ? {
              auth_user: managed.details.sshUser,
              details: JSON.stringify(probed?.details ?? managed.details),
              provider_secret: app.secrets.encrypt(managed.privateKey),
            }
          : {}),
        created: app.clock.now(),
      });
      return tx.selectFrom('storage_pools').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    });
    return (await presentStoragePools(ctx, [row]))[0];
  },
});

export const listStoragePools = defineCommand({
  name: 'listStoragePools',
  description: 'Lists primary storage pools with their scope, state and capacity; keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the pool with this ID.' }),
    name: p.string({ description: 'Only the pool with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only pools of this zone.' }),
    podid: p.uuid({ description: 'Only pools of this pod.' }),
    clusterid: p.uuid({ description: 'Only pools of this cluster.' }),
    ipaddress: p.string({
      description: 'Only pools served by this host address (NFS server, or localhost).',
    }),
    path: p.string({ description: 'Only pools with exactly this path.' }),
    scope: p.string({ description: 'Only pools of this scope: CLUSTER, ZONE or HOST (case-insensitive).' }),
    status: p.string({ description: 'Only pools in this state, e.g. Up, Disabled, Maintenance (exact).' }),
    hostid: p.uuid({
      description:
        "Only the pools this host can use: its cluster's, its own local ones and the zone-wide ones of its hypervisor.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('storage_pools').where('removed', 'is', null);
    if (params.hostid) {
      // A host reaches its cluster's pools and the zone-wide pools of its hypervisor.
      const host = await hostPlacement(app, params.hostid);
      if (!host) throw invalidParameter(`Unable to find host by id ${params.hostid}`);
      q = q.where('zone_id', '=', host.zone_id).where((eb) =>
        eb.or([
          host.cluster_id === null
            ? eb.val(false)
            : eb.and([
                eb('cluster_id', '=', host.cluster_id),
                // Of the cluster's host-local pools, only the host's own.
                eb.or([eb('scope', '!=', 'HOST'), eb('host_id', '=', host.id)]),
              ]),
          eb.and([
            eb('scope', '=', 'ZONE'),
            eb.or([eb('hypervisor', 'is', null), eb('hypervisor', '=', host.hypervisor ?? '')]),
          ]),
        ]),
      );
    }
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.podid) q = q.where('pod_id', '=', (await findPod(ctx, params.podid)).id);
    if (params.clusterid) q = q.where('cluster_id', '=', (await findCluster(ctx, params.clusterid)).id);
    if (params.ipaddress) q = q.where('host_address', '=', params.ipaddress);
    if (params.path) q = q.where('path', '=', params.path);
    if (params.scope) q = q.where('scope', '=', params.scope.toUpperCase());
    if (params.status) q = q.where('state', '=', params.status);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentStoragePools(ctx, rows), Number(count));
  },
});

export const updateStoragePool = defineCommand({
  name: 'updateStoragePool',
  description:
    'Renames a primary storage pool, changes its tags or capacity, enables or disables it for new volumes, or (in maintenance) changes its URL.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the pool to update.' }),
    name: p.string({ description: 'New name, unique in the zone; must not be blank.' }),
    tags: p.list({ description: 'Comma-separated storage tags replacing the current ones.' }),
    istagarule: p.boolean({ description: 'Recorded and shown; Nimbostack does not evaluate tags as rules.' }),
    capacitybytes: p.long({ min: 0, description: 'New size in bytes; not less than what is used.' }),
    capacityiops: p.long({ min: 0, description: 'New recorded IOPS figure.' }),
    enabled: p.boolean({
      description: 'True makes the pool Up, false Disabled (no new volumes); refused in maintenance.',
    }),
    url: p.string({
      length: 2048,
      description: 'New location, as for createStoragePool; only while the pool is in maintenance.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const pool = await findStoragePool(ctx, params.id);
    const changes: Partial<StoragePoolRow> = {};
    if (params.name !== undefined) {
      const name = params.name.trim();
      if (name === '') throw invalidParameter('Storage pool name must not be empty');
      changes.name = name;
    }
    if (params.tags !== undefined) changes.tags = normalizeTags(params.tags);
    if (params.istagarule !== undefined) changes.is_tag_a_rule = params.istagarule ? 1 : 0;
    if (params.capacitybytes !== undefined) {
      if (params.capacitybytes < Number(pool.used_bytes))
        throw invalidParameter(`The capacity cannot be smaller than what is used (${pool.used_bytes} bytes)`);
      changes.capacity_bytes = params.capacitybytes;
      changes.capacity_given = 1;
    }
    if (params.capacityiops !== undefined) changes.capacity_iops = params.capacityiops;
    if (params.url !== undefined) {
      if (pool.state !== 'Maintenance')
        throw invalidParameter('The URL of a storage pool can only change in maintenance');
      if (pool.provider === LINUX_TGT)
        throw invalidParameter(
          `The URL of managed storage pool ${pool.name} cannot change: its volumes are LUNs there`,
        );
      const url = parseStorageUrl(params.url, 'primary');
      Object.assign(changes, {
        url: url.url,
        path: url.path,
        host_address: url.hostAddress,
        port: url.port,
        pool_type: url.poolType,
        auth_user: url.user ?? null,
        auth_secret: url.secret === undefined ? null : app.secrets.encrypt(url.secret),
      });
    }
    let event: string | undefined;
    if (params.enabled !== undefined) {
      if (pool.state !== 'Up' && pool.state !== 'Disabled')
        throw invalidParameter(`Storage pool ${pool.name} is in ${pool.state}; cancel maintenance first`);
      changes.state = params.enabled ? 'Up' : 'Disabled';
      event = params.enabled ? 'ENABLE.PS' : 'DISABLE.PS';
    }
    await app.store.db.transaction().execute(async (tx) => {
      if (changes.name) await checkPoolNameFree(tx, pool.zone_id, changes.name, pool.id);
      if (Object.keys(changes).length > 0)
        await tx.updateTable('storage_pools').set(changes).where('id', '=', pool.id).execute();
      if (event)
        await logEvent(ctx, tx, {
          type: event,
          description: `${params.enabled ? 'enabling' : 'disabling'} storage pool ${pool.name}`,
          resourceType: 'StoragePool',
          resourceId: pool.uuid,
        });
    });
    return presentOne(ctx, pool.id);
  },
});

export const deleteStoragePool = defineCommand({
  name: 'deleteStoragePool',
  description:
    'Removes a primary storage pool and its pool-level settings; refused while volumes or snapshots are on it.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the pool to delete.' }),
    forced: p.boolean({
      description:
        "Ignored. Upstream's forced deletion expunges volumes already destroyed; here a volume is kept until its VM is expunged or it is deleted, so a pool still holding any is never deleted.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const pool = await findStoragePool(ctx, params.id);
    for (const check of usageChecks) {
      const reason = await check(app, pool);
      if (reason) throw resourceInUse(`Cannot delete storage pool ${pool.name}: ${reason}`);
    }
    await deleteTemplateCopies(ctx, pool);
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('storage_pools')
        .set({ removed: app.clock.now() })
        .where('id', '=', pool.id)
        .execute();
      await tx
        .deleteFrom('scoped_configuration')
        .where('scope', '=', 'storagepool')
        .where('scope_id', '=', pool.id)
        .execute();
    });
    await app.settings.load();
    return success();
  },
});

/**
 * The storage drivers there are: DefaultPrimary and LinuxTgt (managed iSCSI) for primary storage;
 * NFS, S3 and Swift for image stores.
 */
export const listStorageProviders = defineCommand({
  name: 'listStorageProviders',
  description:
    'Lists the storage drivers of a kind: DefaultPrimary and LinuxTgt (managed iSCSI) for primary storage; NFS, S3 and Swift for image stores.',
  params: { ...listParams, type: p.string({ required: true, description: 'primary or image.' }) },
  async handler(_ctx, params) {
    const type = params.type.trim().toLowerCase();
    if (type !== 'primary' && type !== 'image')
      throw invalidParameter(`Invalid storage provider type ${params.type}; use primary or image`);
    const names = type === 'primary' ? ['DefaultPrimary', LINUX_TGT] : ['NFS', 'S3', 'Swift'];
    const providers = names.map((name) => ({ name, type }));
    // Upstream names these objects dataStoreProvider on the wire, not after the response class;
    // clients (Ansible's cs_storage_pool) read that key.
    return { count: providers.length, dataStoreProvider: providers };
  },
});

export const storagePoolCommands = [
  createStoragePool,
  listStoragePools,
  updateStoragePool,
  deleteStoragePool,
  listStorageProviders,
];
