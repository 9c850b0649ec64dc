/**
 * Upgrading a database made by the first schema (fixtures/old-schema.ts) on every dialect
 * (NIMBOSTACK_TEST_DBS=sqlite,postgres,mysql): no step runs while an older server heart-beats
 * against the database; the resources survive and are served by the API,
 * and a step failing half-way is not recorded and leaves the schema as it was: rolled back where DDL
 * is transactional (SQLite, PostgreSQL), its additions dropped again on MySQL/MariaDB (ddl-undo.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { openStore } from '../src/db/connection.ts';
import { appliedMigrations, MIGRATIONS, type Step } from '../src/db/migrate.ts';
import { UpgradeRefusedError, upgradeSchema } from '../src/db/upgrade.ts';
import { buildOldCloud, checkOldCloud, FIRST_SCHEMA_STEPS } from './fixtures/old-schema.ts';
import { createDatabase, startServer, testDatabases } from './harness.ts';

for (const kind of testDatabases()) {
  describe(`upgrading the first schema on ${kind}`, () => {
    test('a failed step is not recorded; the next start upgrades; every resource is served', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'nimbo-upgrade-'));
      const db = await createDatabase(kind, dir);
      try {
        const old = await buildOldCloud(db.url);
        const next = FIRST_SCHEMA_STEPS.length;
        const [name, real] = MIGRATIONS[next];
        const failing: Step = {
          async up(m) {
            await real.up(m);
            throw new Error('simulated crash in the middle of an upgrade step');
          },
        };
        const store = openStore(db.url);
        try {
          // An older server still heart-beating against the database: no step runs under it.
          await (store.db as any)
            .insertInto('management_servers')
            .values({
              uuid: '00000000-0000-4000-8000-000000000002',
              name: 'old-ms',
              version: '0.0.9',
              started: Date.now() - 60_000,
              last_heartbeat: Date.now() - 5_000,
              state: 'Up',
            })
            .execute();
          await assert.rejects(
            upgradeSchema(store, {
              serverName: 'new-ms',
              liveWindowMs: 60_000,
              backupsKept: 3,
              now: Date.now(),
            }),
            (e: Error) =>
              e instanceof UpgradeRefusedError &&
              /management server old-ms \(version 0\.0\.9/.test(e.message),
          );
          assert.deepEqual(
            (await appliedMigrations(store)).sort(),
            FIRST_SCHEMA_STEPS.map(([n]) => n),
          );
          // It stopped cleanly: the upgrade may go ahead (here it meets the failing step below).
          await (store.db as any).updateTable('management_servers').set({ state: 'Down' }).execute();
          await assert.rejects(
            upgradeSchema(
              store,
              { serverName: 'new-ms', liveWindowMs: 60_000, backupsKept: 3, now: Date.now() },
              [...FIRST_SCHEMA_STEPS, [name, failing], ...MIGRATIONS.slice(next + 1)],
            ),
            /simulated crash/,
          );
          assert.deepEqual(
            (await appliedMigrations(store)).sort(),
            FIRST_SCHEMA_STEPS.map(([n]) => n),
          );
          // Rolled back (SQLite, PostgreSQL), or dropped again after MySQL's implicit commit.
          const tables = (await store.db.introspection.getTables()).map((t) => t.name);
          assert.ok(!tables.includes('instance_groups'));
        } finally {
          await store.close();
        }
        const server = await startServer({ dataDir: dir, databaseUrl: db.url });
        try {
          const user = await CloudStackClient.login(
            server.api,
            old.user.username,
            old.user.password,
            '/acme',
          );
          await checkOldCloud(server.admin, user, old);
        } finally {
          await server.stop({ keepData: true });
        }
      } finally {
        await db.drop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}
