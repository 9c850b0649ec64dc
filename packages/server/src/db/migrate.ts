/**
 * Versioned schema migrations, applied with Kysely's Migrator, one step at a time. On SQLite and
 * PostgreSQL each step runs in a transaction of its own together with the row that records it in
 * `kysely_migration` (the schema version table): a step that fails leaves the database at the
 * version before that step, with every earlier step of the same upgrade kept. MySQL/MariaDB
 * commit each DDL statement implicitly; there a step is recorded only once it has completed, and
 * what a failed step had added is dropped again (ddl-undo.ts), so that the next attempt runs it
 * from its start (docs/operations.md, upgrades).
 * Checks made before an upgrade starts (backup, other servers still running) are in upgrade.ts.
 */
import { type Migration, type MigrationProvider, Migrator } from 'kysely';
import type { Store } from './connection.ts';
import { snapshotSchema, undoAdditions } from './ddl-undo.ts';
import * as m0001 from './migrations/0001-foundation.ts';
import * as m0002 from './migrations/0002-infrastructure.ts';
import * as m0003 from './migrations/0003-hosts.ts';
import * as m0004 from './migrations/0004-limits.ts';
import * as m0005 from './migrations/0005-keys-userdata.ts';
import * as m0006 from './migrations/0006-compute.ts';
import * as m0007 from './migrations/0007-templates.ts';
import * as m0008 from './migrations/0008-network.ts';
import * as m0009 from './migrations/0009-compute-extras.ts';
import * as m0010 from './migrations/0010-snapshots.ts';
import * as m0011 from './migrations/0011-affinity-usage.ts';
import * as m0012 from './migrations/0012-list-indexes.ts';
import * as m0013 from './migrations/0013-routers.ts';
import * as m0014 from './migrations/0014-console.ts';
import * as m0015 from './migrations/0015-storage-dedication.ts';
import * as m0016 from './migrations/0016-list-covering-indexes.ts';
import * as m0017 from './migrations/0017-network-teardowns.ts';
import * as m0018 from './migrations/0018-advanced-networking.ts';
import * as m0019 from './migrations/0019-sign-in-security.ts';
import * as m0021 from './migrations/0021-network-display.ts';
import * as m0022 from './migrations/0022-event-outbox-webhooks.ts';
import * as m0023 from './migrations/0023-vpcs.ts';
import * as m0024 from './migrations/0024-ldap.ts';
import * as m0025 from './migrations/0025-projects.ts';
import * as m0026 from './migrations/0026-network-acls.ts';
import * as m0027 from './migrations/0027-vpn.ts';
import * as m0028 from './migrations/0028-gui-themes.ts';
import * as m0029 from './migrations/0029-resource-icons.ts';
import * as m0030 from './migrations/0030-ec2-launches.ts';
import * as m0031 from './migrations/0031-state-events.ts';
import * as m0032 from './migrations/0032-cloud-key.ts';
import * as m0033 from './migrations/0033-peer-addresses.ts';
import * as m0034 from './migrations/0034-cluster-locks.ts';
import * as m0035 from './migrations/0035-vm-ha.ts';
import * as m0036 from './migrations/0036-pool-credentials.ts';
import * as m0038 from './migrations/0038-object-image-stores.ts';
import * as m0039 from './migrations/0039-pool-operations.ts';
import * as m0040 from './migrations/0040-pool-provider-details.ts';
import * as m0041 from './migrations/0041-vms-state-host.ts';
import * as m0042 from './migrations/0042-vms-live-account.ts';
import type { MigrationContext } from './migrations/helpers.ts';

export type Step = { up(m: MigrationContext): Promise<void> };

/** Every migration the code knows, in order. Append; never edit a released one. */
export const MIGRATIONS: [string, Step][] = [
  ['0001-foundation', m0001],
  ['0002-infrastructure', m0002],
  ['0003-hosts', m0003],
  ['0004-limits', m0004],
  ['0005-keys-userdata', m0005],
  ['0006-compute', m0006],
  ['0007-templates', m0007],
  ['0008-network', m0008],
  ['0009-compute-extras', m0009],
  ['0010-snapshots', m0010],
  ['0011-affinity-usage', m0011],
  ['0012-list-indexes', m0012],
  ['0013-routers', m0013],
  ['0014-console', m0014],
  ['0015-storage-dedication', m0015],
  ['0016-list-covering-indexes', m0016],
  ['0017-network-teardowns', m0017],
  ['0018-advanced-networking', m0018],
  ['0019-sign-in-security', m0019],
  ['0021-network-display', m0021],
  ['0022-event-outbox-webhooks', m0022],
  ['0023-vpcs', m0023],
  ['0024-ldap', m0024],
  ['0025-projects', m0025],
  ['0026-network-acls', m0026],
  ['0027-vpn', m0027],
  ['0028-gui-themes', m0028],
  ['0029-resource-icons', m0029],
  ['0030-ec2-launches', m0030],
  ['0031-state-events', m0031],
  ['0032-cloud-key', m0032],
  ['0033-peer-addresses', m0033],
  ['0034-cluster-locks', m0034],
  ['0035-vm-ha', m0035],
  ['0036-pool-credentials', m0036],
  ['0038-object-image-stores', m0038],
  ['0039-pool-operations', m0039],
  ['0040-pool-provider-details', m0040],
  ['0041-vms-state-host', m0041],
  ['0042-vms-live-account', m0042],
];

export class SchemaTooNewError extends Error {}

export async function migrate(
  store: Store,
  migrations: [string, Step][] = MIGRATIONS,
): Promise<{ applied: string[] }> {
  const known = new Set(migrations.map(([name]) => name));
  const applied = await appliedMigrations(store);
  const unknown = applied.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new SchemaTooNewError(
      `the database schema is newer than this server (it has migration ${unknown.join(', ')}, which this version does not know): a newer Nimbostack upgraded it. Run that version or a newer one; going back to this version means restoring the backup taken before that upgrade (docs/operations.md)`,
    );
  }
  const provider: MigrationProvider = {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const [name, step] of migrations) {
        out[name] = { up: (db) => step.up({ db, dialect: store.dialect }) };
      }
      return out;
    },
  };
  const migrator = new Migrator({ db: store.db, provider });
  const done: string[] = [];
  // migrateUp applies the next pending step in its own transaction (when the dialect has
  // transactional DDL); migrateToLatest would put every pending step into one.
  for (;;) {
    const before = store.dialect === 'mysql' ? await snapshotSchema(store) : undefined;
    const { error, results } = await migrator.migrateUp();
    if (error) {
      const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'the next step';
      const why = error instanceof Error ? error.message : String(error);
      const undone = before ? await undoAdditions(store, before) : [];
      throw new Error(
        `schema upgrade step ${failed} failed (${done.length} earlier steps of this upgrade were applied${undone.length ? `; dropped again what it had added: ${undone.join(', ')}` : ''}): ${why}`,
        { cause: error },
      );
    }
    const step = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
    if (step.length === 0) return { applied: done };
    done.push(...step);
  }
}

export async function appliedMigrations(store: Store): Promise<string[]> {
  const tables = await store.db.introspection.getTables({ withInternalKyselyTables: true });
  if (!tables.some((t) => t.name === 'kysely_migration')) return [];
  // biome-ignore lint/suspicious/noExplicitAny: Kysely's own bookkeeping table is not in our schema
  const rows = await (store.db as any).selectFrom('kysely_migration').select('name').execute();
  return rows.map((r: { name: string }) => r.name);
}
