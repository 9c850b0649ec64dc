/**
 * findHostsForMigration: the hosts of a Running instance's zone with, for each, whether it could
 * live-migrate there now — the same rules migrateVirtualMachine applies (its cluster, capacity
 * with over-provisioning, host tags, dedication, affinity groups, no local disks), checked without
 * reserving anything. The UI's "Migrate instance" wizard lists these and offers the suitable ones.
 */
import { invalidParameter } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { presentHosts } from '../infra/hosts.ts';
import { statsOf } from '../metrics/host-stats.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { localPoolOfVm } from '../storage/local-pools.ts';
import { affinityRules } from './affinity.ts';
import { mayPlace } from './planner.ts';
import { findVm, migrationRequest } from './vms.ts';

export const findHostsForMigration = defineCommand({
  name: 'findHostsForMigration',
  description:
    'Lists the other hosts of a Running instance’s zone, each marked with whether the instance could live-migrate there now (its cluster, room, tags, dedication and affinity groups).',
  params: {
    ...listParams,
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the Running instance to migrate.' }),
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    if (vm.state !== 'Running' || vm.host_id === null)
      throw invalidParameter(`VM ${vm.name} must be Running to be migrated live (it is ${vm.state})`);
    let q = ctx.app.store.db
      .selectFrom('hosts')
      .where('zone_id', '=', vm.zone_id)
      .where('removed', 'is', null)
      .where('type', '=', 'Routing')
      .where('id', '!=', vm.host_id);
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'name',
          `%${escapeLike(params.keyword)}%`,
          ctx.app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(ctx.app, params)).execute();
    const [rules, local, hosts] = await Promise.all([
      affinityRules(ctx, vm),
      localPoolOfVm(ctx.app, vm.id),
      presentHosts(ctx, rows),
    ]);
    const stats = statsOf(ctx.app);
    const out: object[] = [];
    for (const [i, row] of rows.entries()) {
      const allowed =
        !local &&
        !rules.avoid.has(row.id) &&
        (rules.hostId === undefined || rules.hostId === row.id) &&
        (await mayPlace(ctx, await migrationRequest(ctx, vm, row.id)));
      const measured = stats.host(row.id);
      out.push({
        ...hosts[i],
        suitableformigration: allowed,
        hasenoughcapacity: allowed,
        // Guests' disks are on storage every host of the cluster shares: nothing moves with them.
        requiresStorageMotion: false,
        ...(measured
          ? {
              cpuused: `${Number(measured.cpuUtilization.toFixed(2))}%`,
              memoryused: measured.memoryUsedBytes,
            }
          : {}),
      });
    }
    return listResult(out, Number(count));
  },
});
