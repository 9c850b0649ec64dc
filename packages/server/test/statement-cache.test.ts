/** The SQLite connection's prepared-statement cache (db/connection.ts) must not change results. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sql } from 'kysely';
import { openStore } from '../src/db/connection.ts';

const dir = mkdtempSync(join(tmpdir(), 'nimbo-stmt-'));
const store = openStore(`sqlite:${join(dir, 'cache.db')}`);
const db = store.db as any;
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a cached statement sees new rows, new parameters and a changed schema', async () => {
  await sql`create table t (id integer primary key, v text)`.execute(db);
  await db.insertInto('t').values({ id: 1, v: 'a' }).execute();
  const read = (id: number) => db.selectFrom('t').selectAll().where('id', '>=', id).orderBy('id').execute();
  assert.deepEqual(await read(1), [{ id: 1, v: 'a' }]);
  await db.insertInto('t').values({ id: 2, v: 'b' }).execute();
  assert.deepEqual(await read(1), [
    { id: 1, v: 'a' },
    { id: 2, v: 'b' },
  ]);
  assert.deepEqual(await read(2), [{ id: 2, v: 'b' }]);
  await sql`alter table t add column w integer default 7`.execute(db);
  assert.deepEqual(await read(2), [{ id: 2, v: 'b', w: 7 }]);
});

test('a query streamed and left half-way does not block its next run', async () => {
  // (A streaming query holds the only SQLite connection, so nothing else runs meanwhile.)
  const query = () => db.selectFrom('t').select('id').orderBy('id');
  for await (const row of query().stream()) {
    assert.equal(row.id, 1);
    break;
  }
  assert.deepEqual(
    (await query().execute()).map((r: { id: number }) => r.id),
    [1, 2],
  );
  const streamed: number[] = [];
  for await (const row of query().stream()) streamed.push(row.id);
  assert.deepEqual(streamed, [1, 2]);
});

test('a failed statement leaves the cached one usable', async () => {
  await assert.rejects(db.insertInto('t').values({ id: 1, v: 'dup' }).execute());
  await db.insertInto('t').values({ id: 3, v: 'c' }).execute();
  assert.equal((await db.selectFrom('t').select('id').execute()).length, 3);
});
