/**
 * cluster_locks on SQLite, without a server (jobs/locks.ts): a set of names is taken whole or not
 * at all; a lease lapses or goes with its Down server while job locks of a Down server stay for
 * the takeover, which settles a dead server's objects under the step locks it held; the objects a
 * job holds include those reached through its target.
 * (Two servers on PostgreSQL and MariaDB: cluster-jobs.multidb.test.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { App } from '../src/context.ts';
import { insertId, openStore, type Store } from '../src/db/connection.ts';
import { migrate } from '../src/db/migrate.ts';
import { lock, sweepLocks, tryLock, unlock } from '../src/jobs/locks.ts';
import { onRecovery } from '../src/jobs/recovery.ts';
import { jobObjects } from '../src/jobs/runner.ts';
import { takeOverDeadServers } from '../src/jobs/takeover.ts';

describe('cluster locks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-locks-'));
  let store: Store;
  let now = 1_000_000;
  let one: App;
  let two: App;

  const names = async () =>
    (await store.db.selectFrom('cluster_locks').select('name').orderBy('name').execute()).map((r) => r.name);
  const serverApp = async (name: string) => {
    const id = await insertId(store, store.db, 'management_servers', {
      uuid: name,
      name,
      version: 'test',
      started: now,
      last_heartbeat: now,
      state: 'Up',
    });
    return { store, clock: { now: () => now }, server: { id, uuid: name, name } } as unknown as App;
  };

  before(async () => {
    store = openStore(`sqlite:${join(dir, 'db.sqlite')}`);
    await migrate(store);
    one = await serverApp('ms-1');
    two = await serverApp('ms-2');
  });

  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a set of names is taken whole or not at all, and released by its token', async () => {
    const held = await tryLock(one, ['VirtualMachine:b', 'Volume:a']);
    assert.ok(held);
    // One name of the set is held: nothing of it is taken.
    assert.equal(await tryLock(two, ['Volume:c', 'VirtualMachine:b']), undefined);
    assert.deepEqual(await names(), ['VirtualMachine:b', 'Volume:a']);
    await unlock(one, held);
    const now2 = await tryLock(two, ['Volume:c', 'VirtualMachine:b']);
    assert.ok(now2);
    assert.deepEqual(await names(), ['VirtualMachine:b', 'Volume:c']);
    await unlock(two, now2);
    assert.deepEqual(await names(), []);
  });

  test('a lease is free once it lapses or its server is Down; a Down server keeps its job locks', async () => {
    assert.ok(await tryLock(one, ['lease:gc'], { expires: now + 10_000 }));
    assert.equal(await tryLock(two, ['lease:gc'], { expires: now + 10_000 }), undefined);
    now += 10_001;
    assert.ok(await tryLock(two, ['lease:gc'], { expires: now + 10_000 }), 'taken once lapsed');

    assert.ok(await tryLock(two, ['VirtualMachine:x'], { jobId: 42 }));
    await store.db
      .updateTable('management_servers')
      .set({ state: 'Down' })
      .where('id', '=', two.server.id)
      .execute();
    assert.ok(await tryLock(one, ['lease:gc'], { expires: now + 10_000 }), 'taken from a Down server');
    assert.equal(
      await tryLock(one, ['VirtualMachine:x']),
      undefined,
      "a dead job's object waits for its takeover",
    );
    // The sweep leaves a dead server's job locks (its takeover settles what they name first).
    await sweepLocks(one);
    assert.deepEqual(await names(), ['VirtualMachine:x', 'lease:gc']);
  });

  test("a takeover settles under the dead server's step locks, its jobs' objects held until settled", async () => {
    const live = await serverApp('ms-3');
    const dead = await serverApp('ms-4');
    Object.assign(live, { jobs: { failOrphans: async () => 0 }, log: { warn() {}, error() {} } });
    assert.ok(await tryLock(dead, ['network:7']), 'a step of the dead server (a rule change)');
    assert.ok(await tryLock(dead, ['VirtualMachine:y'], { jobId: 43 }));
    await store.db
      .updateTable('management_servers')
      .set({ state: 'Down' })
      .where('id', '=', dead.server.id)
      .execute();
    // As the rule settler does: it applies the network's rules under the network's lock.
    let seen: string[] = [];
    onRecovery(async (app, scope) => {
      if (app !== live || !scope?.names.has('network:7')) return { settled: 0, pending: false };
      seen = await names();
      await unlock(app, await lock(app, ['network:7']));
      return { settled: 1, pending: false };
    });
    const result = await Promise.race([
      takeOverDeadServers(live),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('the takeover waited on its own dead lock')), 5000),
      ),
    ]);
    // ms-2 of the test above is Down too, holding a job's object: taken over as well.
    assert.deepEqual(result.servers.sort(), ['ms-2', 'ms-4']);
    assert.equal(result.settled, 1);
    assert.ok(seen.includes('VirtualMachine:y') && !seen.includes('network:7'), seen.join(', '));
    assert.ok(!(await names()).some((n) => n === 'VirtualMachine:y' || n.startsWith('takeover:')));
  });

  test('a job holds its target, what it creates and what they are reached through', () => {
    const volume = { type: 'Volume', id: 'v', with: [{ type: 'VirtualMachine', id: 'm' }] };
    assert.deepEqual(jobObjects({ type: 'Snapshot', id: 's', with: [volume] }, undefined), [
      'Snapshot:s',
      'Volume:v',
      'VirtualMachine:m',
    ]);
    assert.deepEqual(jobObjects({ type: 'VirtualMachine', id: 'm' }, volume), [
      'VirtualMachine:m',
      'Volume:v',
    ]);
  });
});
