/**
 * Upgrading a database made by the first schema (fixtures/old-schema.ts) with today's server, on
 * SQLite: every resource survives and is served by the API; a copy of the database is taken first;
 * a step failing half-way leaves the database at the version before that step; the upgrade is
 * refused while another management server of the older version still heart-beats against the
 * database, and goes ahead once that heartbeat is stale. upgrade.multidb.test.ts does the survival
 * check on PostgreSQL and MariaDB.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import SQLite from 'better-sqlite3';
import { openStore } from '../src/db/connection.ts';
import { appliedMigrations, MIGRATIONS, type Step } from '../src/db/migrate.ts';
import { upgradeSchema } from '../src/db/upgrade.ts';
import { buildOldCloud, checkOldCloud, FIRST_SCHEMA, FIRST_SCHEMA_STEPS } from './fixtures/old-schema.ts';
import { REPO, startServer } from './harness.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function oldDatabaseDir(): { dir: string; file: string; url: string } {
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-upgrade-'));
  dirs.push(dir);
  const file = join(dir, 'nimbostack.db');
  return { dir, file, url: `sqlite:${file}` };
}

function migrationsIn(file: string): string[] {
  const db = new SQLite(file, { readonly: true });
  try {
    return (db.prepare('select name from kysely_migration order by name').all() as { name: string }[]).map(
      (r) => r.name,
    );
  } finally {
    db.close();
  }
}

/** Runs the server process against the data directory until it starts or exits; returns how. */
function startOnce(dir: string, env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'packages/server/src/main.ts'], {
    cwd: REPO,
    env: {
      ...process.env,
      NIMBOSTACK_DATA: dir,
      NIMBOSTACK_PORT: '0',
      NIMBOSTACK_AGENT_PORT: '0',
      NIMBOSTACK_HOST: '127.0.0.1',
      NIMBOSTACK_SEED_LOCAL_ZONE: 'false',
      NIMBOSTACK_SERVER_NAME: 'new-ms',
      ...env,
    },
    encoding: 'utf8',
    // A server that starts keeps running: the test only waits for a refusal.
    timeout: 60_000,
  });
}

describe('upgrading the first schema on SQLite', () => {
  test('every resource survives the upgrade and is served by the API; a copy is taken first', async () => {
    const { dir, file, url } = oldDatabaseDir();
    const old = await buildOldCloud(url);
    assert.equal(migrationsIn(file).at(-1), FIRST_SCHEMA);
    const server = await startServer({
      dataDir: dir,
      databaseUrl: url,
      env: { NIMBOSTACK_SERVER_NAME: 'new-ms' },
    });
    try {
      const upgraded = server.logs
        .map((l) => JSON.parse(l))
        .find((l) => l.msg === 'database schema upgraded');
      assert.deepEqual(
        upgraded?.applied,
        MIGRATIONS.slice(FIRST_SCHEMA_STEPS.length).map(([n]) => n),
      );
      const backup = `${file}.schema-${FIRST_SCHEMA}.bak`;
      assert.equal(upgraded.backup, backup);
      // The copy is the database as it was: the old schema, with the old rows.
      assert.deepEqual(
        migrationsIn(backup),
        FIRST_SCHEMA_STEPS.map(([n]) => n),
      );
      const copy = new SQLite(backup, { readonly: true });
      assert.equal(
        (copy.prepare('select name from vms where uuid = ?').get(old.vm.id) as { name: string }).name,
        'old-vm',
      );
      copy.close();
      assert.deepEqual(migrationsIn(file), MIGRATIONS.map(([n]) => n).sort());

      const user = await CloudStackClient.login(server.api, old.user.username, old.user.password, '/acme');
      await checkOldCloud(server.admin, user, old);
      // The upgraded cloud takes new work on the old resources.
      await server.admin.request('updateVirtualMachine', {
        id: old.vm.id,
        displayname: 'renamed-after-upgrade',
      });
      const vms = await user.request<{ virtualmachine: { displayname: string }[] }>('listVirtualMachines', {
        id: old.vm.id,
      });
      assert.equal(vms.virtualmachine[0].displayname, 'renamed-after-upgrade');
    } finally {
      await server.stop({ keepData: true });
    }
  });

  test('a step that fails half-way leaves the database at the version before it', async () => {
    const { file, url } = oldDatabaseDir();
    const old = await buildOldCloud(url);
    const next = FIRST_SCHEMA_STEPS.length;
    const [name, real] = MIGRATIONS[next];
    // The real next step, then a failure: everything it did must be undone with it.
    const failing: Step = {
      async up(m) {
        await real.up(m);
        await m.db.updateTable('zones').set({ name: 'half-upgraded' }).execute();
        throw new Error('simulated crash in the middle of an upgrade step');
      },
    };
    const store = openStore(url);
    try {
      await assert.rejects(
        upgradeSchema(
          store,
          { serverName: 'new-ms', liveWindowMs: 60_000, backupsKept: 3, now: Date.now() },
          [...FIRST_SCHEMA_STEPS, [name, failing], ...MIGRATIONS.slice(next + 1)],
        ),
        new RegExp(`step ${name} failed \\(0 earlier steps of this upgrade were applied\\): simulated crash`),
      );
      assert.deepEqual(
        await appliedMigrations(store).then((a) => a.sort()),
        FIRST_SCHEMA_STEPS.map(([n]) => n),
      );
      // The step's table (0009-compute-extras makes instance_groups) went with the failed step.
      const tables = (await store.db.introspection.getTables()).map((t) => t.name);
      assert.ok(!tables.includes('instance_groups'));
      const copy = openStore(`sqlite:${file}.schema-${FIRST_SCHEMA}.bak`);
      const oldTables = (await copy.db.introspection.getTables()).map((t) => t.name);
      await copy.close();
      assert.deepEqual(tables.sort(), oldTables.sort());
      const zone = await (store.db as any)
        .selectFrom('zones')
        .select('name')
        .where('uuid', '=', old.zone.id)
        .executeTakeFirst();
      assert.equal(zone.name, 'old-zone');
    } finally {
      await store.close();
    }
    // A later start upgrades it completely.
    const store2 = openStore(url);
    try {
      const r = await upgradeSchema(store2, {
        serverName: 'new-ms',
        liveWindowMs: 60_000,
        backupsKept: 3,
        now: Date.now(),
      });
      assert.equal(r.applied.length, MIGRATIONS.length - next);
    } finally {
      await store2.close();
    }
  });

  test('refused while an older management server heart-beats; a stale heartbeat does not block', async () => {
    const { dir, file, url } = oldDatabaseDir();
    await buildOldCloud(url);
    const db = new SQLite(file);
    db.prepare(
      "insert into management_servers (uuid, name, version, started, last_heartbeat, state) values (?, 'old-ms', '0.0.9', ?, ?, 'Up')",
    ).run('00000000-0000-4000-8000-000000000001', Date.now() - 3_600_000, Date.now());
    db.close();
    const refused = startOnce(dir);
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /needs \d+ schema upgrade step\(s\), but management server old-ms \(version 0\.0\.9, last heartbeat \d+ s ago\) is still running against it with the older schema/,
    );
    assert.doesNotMatch(refused.stderr, /at .*\.ts:\d+/);
    // Nothing was changed: same schema, no copy taken.
    assert.equal(migrationsIn(file).at(-1), FIRST_SCHEMA);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.includes('.schema-')),
      [],
    );

    // The old server stopped (or died) two minutes ago: its heartbeat is older than the window.
    const stale = new SQLite(file);
    stale
      .prepare("update management_servers set last_heartbeat = ? where name = 'old-ms'")
      .run(Date.now() - 120_000);
    stale.close();
    const server = await startServer({
      dataDir: dir,
      databaseUrl: url,
      env: { NIMBOSTACK_SERVER_NAME: 'new-ms' },
    });
    await server.stop({ keepData: true });
    assert.deepEqual(migrationsIn(file), MIGRATIONS.map(([n]) => n).sort());
  });

  test('only the newest pre-upgrade copies are kept', async () => {
    const { dir, file, url } = oldDatabaseDir();
    await buildOldCloud(url);
    // Copies left by earlier upgrades, oldest first.
    const earlier = ['0005-keys-userdata', '0006-compute', '0007-templates'].map((v, i) => {
      const f = `${file}.schema-${v}.bak`;
      writeFileSync(f, 'an earlier copy');
      const t = new Date(Date.now() - (10 - i) * 60_000);
      utimesSync(f, t, t);
      return f;
    });
    const store = openStore(url);
    try {
      const r = await upgradeSchema(store, {
        serverName: 'x',
        liveWindowMs: 60_000,
        backupsKept: 2,
        now: Date.now(),
      });
      assert.equal(r.backup, `${file}.schema-${FIRST_SCHEMA}.bak`);
    } finally {
      await store.close();
    }
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => n.endsWith('.bak'))
        .sort(),
      ['nimbostack.db.schema-0007-templates.bak', `nimbostack.db.schema-${FIRST_SCHEMA}.bak`],
    );
    assert.ok(!existsSync(earlier[0]) && !existsSync(earlier[1]));
  });
});
