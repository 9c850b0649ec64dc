/** listInfrastructure: the counts on the administrator's dashboard. */
import { defineCommand } from '../registry/command.ts';
import { hostTotals } from './host-inventory.ts';

export const listInfrastructure = defineCommand({
  name: 'listInfrastructure',
  description:
    "Counts the cloud's infrastructure: zones, pods, clusters, hosts and CPU sockets, storage pools, image stores, management servers Up and open alerts.",
  params: {},
  async handler(ctx) {
    const { app } = ctx;
    const db = app.store.db;
    const live = async (table: 'zones' | 'pods' | 'clusters' | 'storage_pools' | 'image_stores') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('removed', 'is', null)
            .executeTakeFirstOrThrow()
        ).n,
      );
    const count = async (q: { executeTakeFirstOrThrow(): Promise<{ n: number | string | bigint }> }) =>
      Number((await q.executeTakeFirstOrThrow()).n);
    const [zones, pods, clusters, storagepools, imagestores] = await Promise.all([
      live('zones'),
      live('pods'),
      live('clusters'),
      live('storage_pools'),
      live('image_stores'),
    ]);
    const { hosts, sockets } = await hostTotals(app);
    const alerts = await count(
      db
        .selectFrom('alerts')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('archived', '=', 0),
    );
    const managementservers = await count(
      db
        .selectFrom('management_servers')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('state', '=', 'Up'),
    );
    return {
      zones,
      pods,
      clusters,
      hosts,
      cpusockets: sockets,
      storagepools,
      imagestores,
      alerts,
      managementservers,
      // By design there are none: routers are host namespaces, storage work is done by agents.
      systemvms: 0,
    };
  },
});
