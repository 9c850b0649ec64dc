/** The database layer on every dialect: migrations are versioned, atomic, and never run backwards. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openStore, type Store } from '../src/db/connection.ts';
import { MIGRATIONS, migrate, SchemaTooNewError, type Step } from '../src/db/migrate.ts';
import { createDatabase, REPO, testDatabases } from './harness.ts';

async function tableNames(store: Store): Promise<string[]> {
  return (await store.db.introspection.getTables()).map((t) => t.name);
}

async function appliedNames(store: Store): Promise<string[]> {
  const rows = await (store.db as any)
    .selectFrom('kysely_migration')
    .select('name')
    .orderBy('name')
    .execute();
  return rows.map((r: { name: string }) => r.name);
}

for (const kind of testDatabases()) {
  describe(`migrations on ${kind}`, () => {
    let dir: string;
    let db: { url: string; drop(): Promise<void> };
    let store: Store;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'nimbo-migrate-'));
      db = await createDatabase(kind, dir);
      store = openStore(db.url);
    });
    after(async () => {
      await store.close();
      await db.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a fresh database gets every migration, and a second run applies nothing', async () => {
      const first = await migrate(store);
      assert.deepEqual(
        first.applied,
        MIGRATIONS.map(([name]) => name),
      );
      assert.ok((await tableNames(store)).includes('accounts'));
      assert.deepEqual((await migrate(store)).applied, []);
    });

    test('a failing upgrade step leaves the database at the version before that step', async () => {
      const good: Step = {
        up: ({ db }) => db.schema.createTable('upgrade_probe').addColumn('x', 'integer').execute(),
      };
      // Fails after its first statement: the table it made must go with it where DDL is transactional.
      const bad: Step = {
        async up({ db }) {
          await db.schema
            .createTable('half_done')
            .addColumn('x', 'integer', (c) => c.primaryKey())
            .execute();
          await db.schema
            .alterTable('zones')
            .addColumn('half_col', 'integer', (c) => c.references('half_done.x'))
            .execute();
          await db.schema.createIndex('zones_half_col').on('zones').column('half_col').execute();
          throw new Error('simulated failure in an upgrade');
        },
      };
      await assert.rejects(
        migrate(store, [...MIGRATIONS, ['9998-probe', good], ['9999-broken', bad]]),
        /step 9999-broken failed \(1 earlier steps of this upgrade were applied.*\): simulated failure/,
      );
      // Each step is its own transaction: the step before the failing one stays applied.
      const applied = await appliedNames(store);
      assert.ok(applied.includes('9998-probe'));
      assert.ok(!applied.includes('9999-broken'));
      const tables = await tableNames(store);
      assert.ok(tables.includes('upgrade_probe'));
      // Rolled back with the step; on MySQL (DDL commits implicitly) dropped again by ddl-undo.ts.
      assert.ok(!tables.includes('half_done'));
      const zones = (await store.db.introspection.getTables()).find((t) => t.name === 'zones');
      assert.ok(zones && !zones.columns.some((c) => c.name === 'half_col'));
      await store.db.schema.dropTable('upgrade_probe').execute();
      await store.db.schema.dropTable('half_done').ifExists().execute();
      await (store.db as any).deleteFrom('kysely_migration').where('name', '=', '9998-probe').execute();
    });

    test('the server refuses a schema newer than it knows', async () => {
      await (store.db as any)
        .insertInto('kysely_migration')
        .values({ name: '9999-from-the-future', timestamp: new Date().toISOString() })
        .execute();
      await assert.rejects(migrate(store), SchemaTooNewError);
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'packages/server/src/main.ts'], {
        cwd: REPO,
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          NIMBOSTACK_DATA: dir,
          NIMBOSTACK_PORT: '0',
          NIMBOSTACK_AGENT_PORT: '0',
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(run.status, 1);
      assert.match(run.stderr, /database schema is newer than this server/);
      assert.doesNotMatch(run.stderr, /at .*\.ts:\d+/);
    });
  });
}
