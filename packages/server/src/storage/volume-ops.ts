/**
 * Volume operations on hosts, shared by volumes and VMs: where a pool is reachable from, how the
 * agent names it, and creating, attaching and deleting volumes through agents.
 */
import { iscsiTargetPrefix, type StorageLocation } from '@nimbostack/protocol';
import type { CallContext } from '../context.ts';
import type { Store } from '../db/connection.ts';
import type { HostRow, StoragePoolRow, VolumeRow } from '../db/schema.ts';
import { resourceUnavailable } from '../errors.ts';
import { removeManagedVolume } from './managed/managed-pools.ts';

/**
 * A pool as agents reach it. An NFS pool names its server, so each host reaches the export its
 * own way (a kernel mount, or QEMU's user-space NFS client); an RBD pool its monitor and cephx
 * user. The RBD key is left out: the agent gateway adds it to the message as it leaves for the
 * host (agents/pool-keys.ts), so no object built here carries it.
 */
export function poolLocation(
  pool: Pick<StoragePoolRow, 'uuid' | 'pool_type' | 'path' | 'host_address' | 'port' | 'auth_user'>,
): StorageLocation {
  const known = ['Filesystem', 'NetworkFilesystem', 'SharedMountPoint', 'RBD', 'Iscsi', 'Simulator'] as const;
  const type = (known as readonly string[]).includes(pool.pool_type)
    ? (pool.pool_type as StorageLocation['type'])
    : 'Filesystem';
  // A managed iSCSI pool: hosts get its portal and the prefix of its volumes' target names.
  if (type === 'Iscsi')
    return {
      uuid: pool.uuid,
      type,
      path: iscsiTargetPrefix(pool.uuid),
      host: pool.host_address,
      ...(pool.port ? { port: Number(pool.port) } : {}),
    };
  if (type === 'NetworkFilesystem' || type === 'RBD')
    return {
      uuid: pool.uuid,
      type,
      path: pool.path,
      host: pool.host_address,
      ...(pool.port ? { port: Number(pool.port) } : {}),
      ...(pool.auth_user ? { user: pool.auth_user } : {}),
    };
  return { uuid: pool.uuid, type, path: pool.path };
}

/** What says which hosts use a pool. */
type PoolReach = Pick<StoragePoolRow, 'zone_id' | 'scope' | 'host_id' | 'cluster_id' | 'hypervisor'>;

/**
 * Whether a host uses a pool (upstream's rule): a local pool its own host, a cluster's pool the
 * cluster's hosts, a zone-wide pool the zone's hosts of its hypervisor (all of them without one).
 */
export function poolServesHost(
  pool: PoolReach,
  host: Pick<HostRow, 'id' | 'zone_id' | 'cluster_id' | 'hypervisor'>,
): boolean {
  if (pool.zone_id !== host.zone_id) return false;
  if (pool.scope === 'HOST') return pool.host_id === host.id;
  if (pool.scope === 'ZONE') return pool.hypervisor === null || pool.hypervisor === host.hypervisor;
  return pool.cluster_id !== null && pool.cluster_id === host.cluster_id;
}

/** The Up hypervisor hosts that use a pool (poolServesHost's rule), as a query to select from. */
export function upHostsUsing(db: Store['db'], pool: PoolReach) {
  const q = db
    .selectFrom('hosts')
    .where('zone_id', '=', pool.zone_id)
    .where('type', '=', 'Routing')
    .where('state', '=', 'Up')
    .where('removed', 'is', null);
  if (pool.scope === 'HOST') return q.where('id', '=', pool.host_id ?? -1);
  if (pool.scope === 'ZONE') return pool.hypervisor ? q.where('hypervisor', '=', pool.hypervisor) : q;
  return q.where('cluster_id', '=', pool.cluster_id ?? -1);
}

/** An Up host connected to this server (or a peer) that uses the pool. */
export async function hostForPool(ctx: Pick<CallContext, 'app'>, pool: StoragePoolRow): Promise<number> {
  const ids = (await upHostsUsing(ctx.app.store.db, pool).select('id').limit(50).execute()).map((h) => h.id);
  const connected = ctx.app.agents.connectedHosts(ids);
  if (connected.length === 0)
    throw resourceUnavailable(`No host that can reach primary storage ${pool.name} is Up`);
  return connected[0];
}

export async function poolOf(
  ctx: Pick<CallContext, 'app'>,
  volume: Pick<VolumeRow, 'pool_id'>,
): Promise<StoragePoolRow | undefined> {
  if (volume.pool_id === null) return undefined;
  return ctx.app.store.db
    .selectFrom('storage_pools')
    .selectAll()
    .where('id', '=', volume.pool_id)
    .executeTakeFirst();
}

/** The disk as a VM definition names it. */
export function vmDisk(volume: VolumeRow, pool: StoragePoolRow) {
  return {
    volumeUuid: volume.uuid,
    path: volume.path!,
    pool: poolLocation(pool),
    deviceId: volume.device_id ?? 0,
    type: volume.type as 'ROOT' | 'DATADISK',
  };
}

/**
 * Removes a volume's file through a host that reaches its pool; a missing file is fine. On a
 * managed pool the host only checks no VM of its uses the volume; the provider removes its LUN.
 */
export async function deleteOnPool(ctx: Pick<CallContext, 'app'>, volume: VolumeRow): Promise<void> {
  const pool = await poolOf(ctx, volume);
  if (!pool || !volume.path) return;
  const hostId = await hostForPool(ctx, pool);
  await ctx.app.agents.call(hostId, 'deleteVolume', { path: volume.path, pool: poolLocation(pool) });
  await removeManagedVolume(ctx, pool, volume.path);
}
