/**
 * agents/pool-keys.ts: an RBD pool's cephx key joins a command's payload only as it leaves for the
 * agent. Checked with stand-ins for the one query it makes and for the unsealing (the end-to-end
 * path, with the real sealed key and a real agent, is storage-rbd.test.ts): locations anywhere in
 * the payload get their key, the caller's object is never changed, and payloads without a
 * keyless RBD pool pass untouched.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { needsPoolKeys, withGivenKey, withPoolKeys } from '../src/agents/pool-keys.ts';
import type { App } from '../src/context.ts';

const KEY = 'AQDYchVrhvbWDxAAYxJZQG1ejMmdaFG5XIoEDA==';

/** A reversible stand-in for the server's sealing. */
const seal = (s: string) => `sealed:${Buffer.from(s).toString('hex')}`;
const unseal = (s: string) => Buffer.from(s.slice('sealed:'.length), 'hex').toString();

function fakeApp(rows: { uuid: string; auth_secret: string | null }[], queries: string[][]): App {
  const db = {
    selectFrom: () => ({
      select: () => ({
        where: (_c: string, _op: string, uuids: string[]) => ({
          execute: async () => {
            queries.push(uuids);
            return rows.filter((r) => uuids.includes(r.uuid));
          },
        }),
      }),
    }),
  };
  return { store: { db }, secrets: { decrypt: unseal } } as unknown as App;
}

const rbd = (uuid: string) => ({ uuid, type: 'RBD' as const, path: 'vms', host: '10.0.0.6', user: 'nimbo' });

test('keys are added wherever an RBD pool is named, in a copy', async () => {
  const queries: string[][] = [];
  const app = fakeApp(
    [
      { uuid: 'p1', auth_secret: seal(KEY) },
      { uuid: 'p2', auth_secret: seal('other') },
    ],
    queries,
  );
  const payload = {
    spec: { name: 'i-2-3-VM', disks: [{ deviceId: 0, path: 'v1', pool: rbd('p1') }] },
    source: { path: 'v2', pool: rbd('p2') },
    pool: { uuid: 'd1', type: 'Filesystem', path: '/var/lib/vms' },
    templates: Array.from({ length: 1000 }, () => randomBytes(8).toString('hex')),
  };
  const before = JSON.stringify(payload);
  assert.equal(needsPoolKeys(payload), true);
  const sent = await withPoolKeys(app, payload);
  assert.equal((sent.spec.disks[0].pool as { secret?: string }).secret, KEY);
  assert.equal((sent.source.pool as { secret?: string }).secret, 'other');
  assert.equal((sent.pool as { secret?: string }).secret, undefined, 'a directory pool gets nothing');
  assert.deepEqual(sent.templates, payload.templates);
  assert.equal(JSON.stringify(payload), before, "the caller's payload is unchanged");
  assert.deepEqual(queries, [['p1', 'p2']], 'one query for all the pools');
  assert.equal(needsPoolKeys(sent), false);
});

test('payloads without a keyless RBD pool pass as they are, with no query', async () => {
  const queries: string[][] = [];
  const app = fakeApp([], queries);
  for (const payload of [
    { name: 'x' },
    { pool: { uuid: 'n1', type: 'NetworkFilesystem', path: '/export', host: '10.0.0.5' } },
    // An RBD pool without a cephx user uses the host's own Ceph configuration.
    { pool: { uuid: 'r1', type: 'RBD', path: 'vms', host: '10.0.0.6' } },
    { pool: { ...rbd('r2'), secret: 'given' } },
  ]) {
    assert.equal(needsPoolKeys(payload), false);
    assert.equal(await withPoolKeys(app, payload), payload);
  }
  assert.deepEqual(queries, []);
});

test('a pool with no stored key is sent as it is', async () => {
  const app = fakeApp([{ uuid: 'p1', auth_secret: null }], []);
  const payload = { pool: rbd('p1') };
  assert.equal(await withPoolKeys(app, payload), payload);
});

test('createStoragePool measures a pool not stored yet with the key its URL gave', () => {
  const location = rbd('new');
  assert.equal(withGivenKey(location, undefined), location);
  assert.deepEqual(withGivenKey(location, KEY), { ...location, secret: KEY });
  assert.equal((location as { secret?: string }).secret, undefined);
});
