/**
 * Host-local primary storage. In a zone with `localstorageenabled`, every host that comes Up has
 * its own pool of scope HOST (as upstream creates one per host), sized by the local storage its
 * agent reports and kept at that size when the agent reports a new one. Only the planner places
 * disks there, and only disks whose offering says `storagetype=local`.
 */
import { onHostStatusChange } from '../agents/gateway.ts';
import type { App } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { resourceInUse } from '../errors.ts';
import { onHostDelete, onHostRemoval } from '../infra/hosts.ts';
import { onZoneLocalStorageEnabled } from '../infra/zones.ts';

/** Where the agent keeps a host's local volumes (beside its default state directory). */
export function localPoolPath(hostName: string): string {
  return `/var/lib/nimbostack/agent/${hostName}/local`;
}

/** A pool of scope HOST that holds one of the VM's disks (its name and host), if any does. */
export function localPoolOfVm(app: App, vmId: number) {
  return app.store.db
    .selectFrom('volumes')
    .innerJoin('storage_pools', 'storage_pools.id', 'volumes.pool_id')
    .select(['storage_pools.name', 'storage_pools.host_id'])
    .where('volumes.vm_id', '=', vmId)
    .where('volumes.removed', 'is', null)
    .where('storage_pools.scope', '=', 'HOST')
    .executeTakeFirst();
}

export async function ensureLocalPools(app: App, hostIds: number[]): Promise<void> {
  if (hostIds.length === 0) return;
  const db = app.store.db;
  const hosts = await db
    .selectFrom('hosts')
    .innerJoin('zones', 'zones.id', 'hosts.zone_id')
    .selectAll('hosts')
    .where('hosts.id', 'in', hostIds)
    .where('hosts.type', '=', 'Routing')
    .where('hosts.removed', 'is', null)
    .where('zones.local_storage_enabled', '=', 1)
    .execute();
  for (const host of hosts) {
    await db.transaction().execute(async (tx) => {
      const pool = await tx
        .selectFrom('storage_pools')
        .select(['id', 'capacity_bytes'])
        .where('host_id', '=', host.id)
        .where('scope', '=', 'HOST')
        .where('removed', 'is', null)
        .executeTakeFirst();
      const capacity = Number(host.local_storage_bytes);
      if (pool) {
        if (Number(pool.capacity_bytes) !== capacity)
          await tx
            .updateTable('storage_pools')
            .set({ capacity_bytes: capacity })
            .where('id', '=', pool.id)
            .execute();
        return;
      }
      const path = localPoolPath(host.name);
      await insertId(app.store, tx, 'storage_pools', {
        uuid: app.ids.uuid(),
        name: `${host.name} Local Storage`,
        zone_id: host.zone_id,
        pod_id: host.pod_id,
        cluster_id: host.cluster_id,
        host_id: host.id,
        scope: 'HOST',
        pool_type: 'Filesystem',
        path,
        host_address: host.private_ip ?? host.name,
        port: 0,
        url: `file://${path}`,
        hypervisor: host.hypervisor,
        provider: 'DefaultPrimary',
        capacity_bytes: capacity,
        used_bytes: 0,
        allocated_bytes: 0,
        capacity_iops: null,
        managed: 0,
        state: 'Up',
        tags: null,
        is_tag_a_rule: 0,
        created: app.clock.now(),
      });
    });
  }
}

onHostStatusChange(async (app, hostIds, status) => {
  if (status === 'Up') await ensureLocalPools(app, hostIds);
});

onZoneLocalStorageEnabled(async (app, zone) => {
  const up = await app.store.db
    .selectFrom('hosts')
    .select('id')
    .where('zone_id', '=', zone.id)
    .where('state', '=', 'Up')
    .where('removed', 'is', null)
    .execute();
  await ensureLocalPools(
    app,
    up.map((h) => h.id),
  );
});

/**
 * A host's local pool goes with the host. While it holds volumes (a stopped VM's disks, data
 * disks) the deletion is refused with their names: upstream's default would destroy those VMs'
 * disks with the host, which we do not do silently.
 */
onHostDelete(async (ctx, host) => {
  const volumes = await ctx.app.store.db
    .selectFrom('volumes')
    .innerJoin('storage_pools', 'storage_pools.id', 'volumes.pool_id')
    .select('volumes.name')
    .where('storage_pools.host_id', '=', host.id)
    .where('storage_pools.scope', '=', 'HOST')
    .where('volumes.removed', 'is', null)
    .orderBy('volumes.id')
    .limit(6)
    .execute();
  if (volumes.length)
    throw resourceInUse(
      `Host ${host.name} cannot be deleted: its local storage still holds volumes (${volumes
        .slice(0, 5)
        .map((v) => v.name)
        .join(', ')}${volumes.length > 5 ? ', ...' : ''}); delete them or move them to other storage first`,
    );
});

onHostRemoval(async (ctx, host) => {
  await ctx.app.store.db
    .updateTable('storage_pools')
    .set({ removed: ctx.app.clock.now() })
    .where('host_id', '=', host.id)
    .where('scope', '=', 'HOST')
    .where('removed', 'is', null)
    .execute();
});
