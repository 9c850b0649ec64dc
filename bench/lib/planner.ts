/**
 * The planner's own time per decision: reserveHost called in this process against a database that
 * holds only a zone of `hosts` Up simulator hosts, so nothing but the planner's queries is timed.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { CallContext } from '../../packages/server/src/context.ts';
import { openStore } from '../../packages/server/src/db/connection.ts';
import { migrate } from '../../packages/server/src/db/migrate.ts';
import { Settings } from '../../packages/server/src/settings/settings.ts';
import { hostRows } from './cloud.ts';
import type { BenchDatabase } from './database.ts';
import { type LatencyStats, measure, medianMs } from './measure.ts';

const CLUSTER_SIZE = 100;

export interface PlannerResult extends LatencyStats {
  /** The floor of a decision: one single-row UPDATE committed on its own, as the reservation is. */
  floor_write_ms: number;
}

export async function measurePlanner(
  database: BenchDatabase,
  hosts: number,
  decisions: number,
): Promise<PlannerResult> {
  const store = openStore(database.url);
  try {
    await migrate(store);
    const db = store.db;
    const now = Date.now();
    await db
      .insertInto('zones')
      .values({
        uuid: randomUUID(),
        name: 'planner',
        description: null,
        network_type: 'Advanced',
        allocation_state: 'Enabled',
        dns1: '8.8.8.8',
        internal_dns1: '10.0.0.2',
        dhcp_provider: 'VirtualRouter',
        zone_token: randomUUID(),
        created: now,
      } as never)
      .execute();
    const zone = await db
      .selectFrom('zones')
      .select('id')
      .where('name', '=', 'planner')
      .executeTakeFirstOrThrow();
    const pods = Math.min(10, hosts);
    const clusters: { id: number; pod_id: number }[] = [];
    for (let p = 0; p < pods; p++) {
      await db
        .insertInto('pods')
        .values({
          uuid: randomUUID(),
          name: `pod-${p}`,
          zone_id: zone.id,
          gateway: `10.${p}.0.1`,
          netmask: '255.255.0.0',
          start_ip: null,
          end_ip: null,
          allocation_state: 'Enabled',
          created: now,
        } as never)
        .execute();
      const pod = await db
        .selectFrom('pods')
        .select('id')
        .where('name', '=', `pod-${p}`)
        .executeTakeFirstOrThrow();
      const perPod = Math.max(1, Math.ceil(hosts / pods / CLUSTER_SIZE));
      for (let c = 0; c < perPod; c++) {
        await db
          .insertInto('clusters')
          .values({
            uuid: randomUUID(),
            name: `cluster-${p}-${c}`,
            zone_id: zone.id,
            pod_id: pod.id,
            hypervisor: 'Simulator',
            cluster_type: 'CloudManaged',
            allocation_state: 'Enabled',
            managed_state: 'Managed',
            arch: 'x86_64',
            created: now,
          } as never)
          .execute();
      }
    }
    clusters.push(...(await db.selectFrom('clusters').select(['id', 'pod_id']).orderBy('id').execute()));
    const rows = hostRows(
      1,
      hosts,
      (n) => {
        const c = clusters[(n - 1) % clusters.length];
        return { zoneId: zone.id, podId: c.pod_id, clusterId: c.id };
      },
      now,
    ).map((r) => ({ ...r, state: 'Up', last_pinged: now }));
    const per = Math.floor(30_000 / Object.keys(rows[0]).length);
    await db.transaction().execute(async (tx) => {
      for (let i = 0; i < rows.length; i += per)
        await tx
          .insertInto('hosts')
          .values(rows.slice(i, i + per) as never)
          .execute();
    });
    // PostgreSQL's autovacuum would have analysed a table this size within a minute; without
    // statistics its planner joins hosts to clusters by nested loops and the figure means nothing.
    if (store.dialect === 'postgres') await sql`analyze`.execute(db);
    const settings = new Settings(store);
    await settings.load();
    // The planner needs only the store and the settings of an app.
    const ctx = { app: { store, settings } } as unknown as Pick<CallContext, 'app'>;
    const { reserveHost } = await import('../../packages/server/src/compute/planner.ts');
    const stats = await measure(
      () =>
        reserveHost(ctx, {
          zoneId: zone.id,
          cpuMhz: 1000,
          memoryBytes: 512 * 1024 ** 2,
          hostTags: [],
          accountId: 1,
          avoid: new Set(),
        }),
      { clients: 1, total: decisions, maxSeconds: 30 },
    );
    const floorWrite = await medianMs(Math.min(decisions, 50), () =>
      db
        .updateTable('hosts')
        .set((eb) => ({ cpu_allocated_mhz: eb('cpu_allocated_mhz', '+', 0) }))
        .where('id', '=', 1)
        .execute(),
    );
    return { ...stats, floor_write_ms: floorWrite };
  } finally {
    await store.close();
    await database.drop();
  }
}
