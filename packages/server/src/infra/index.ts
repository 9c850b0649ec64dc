/** The infrastructure capability: its commands, and what it registers with settings and tags. */

import type { CallContext } from '../context.ts';
import { registerSettingScope } from '../settings/commands.ts';
import { registerTaggable } from '../tags/tags.ts';
import { alertCommands } from './alerts.ts';
import { capacityCommands } from './capacity.ts';
import { clusterCommands } from './clusters.ts';
import { listDbMetrics } from './db-metrics.ts';
import { imageStoreCommands } from './image-stores.ts';
import { managementServerCommands } from './management-servers.ts';
import { objectImageStoreCommands } from './object-image-stores.ts';
import { osTypeCommands } from './os-types.ts';
import { physicalNetworkCommands } from './physical-networks.ts';
import { podCommands } from './pods.ts';
import { storagePoolMaintenanceCommands } from './storage-pool-maintenance.ts';
import { storagePoolCommands } from './storage-pools.ts';
import { listInfrastructure } from './summary.ts';
import { rootDomainId, zoneCommands } from './zones.ts';

export const infraCommands = [
  ...zoneCommands,
  ...managementServerCommands,
  listDbMetrics,
  ...podCommands,
  ...clusterCommands,
  ...physicalNetworkCommands,
  ...storagePoolCommands,
  ...storagePoolMaintenanceCommands,
  ...imageStoreCommands,
  ...objectImageStoreCommands,
  ...capacityCommands,
  ...alertCommands,
  ...osTypeCommands,
  listInfrastructure,
];

function liveId(table: 'zones' | 'clusters' | 'storage_pools' | 'image_stores') {
  return async (ctx: CallContext, uuid: string) =>
    (
      await ctx.app.store.db
        .selectFrom(table)
        .select('id')
        .where('uuid', '=', uuid)
        .where('removed', 'is', null)
        .executeTakeFirst()
    )?.id;
}

registerSettingScope('zone', liveId('zones'));
registerSettingScope('cluster', liveId('clusters'));
registerSettingScope('storagepool', liveId('storage_pools'));
registerSettingScope('imagestore', liveId('image_stores'));

// Infrastructure belongs to the cloud, not to an account: only administrators of ROOT may tag it.
registerTaggable('Zone', async (ctx, uuid) => {
  const id = await liveId('zones')(ctx, uuid);
  return id === undefined ? undefined : { id, accountId: -1, domainId: await rootDomainId(ctx) };
});
