/**
 * The cloud's key at start (iam/cloud-key.ts) against a real schema on SQLite, every case a server
 * can meet: a new database (the key is made, then recorded), the cloud's key, another key, no key,
 * a database from before the check with sealed secrets (recorded if the key opens them, refused
 * otherwise), a key given as a variable; and the gentle change of the heartbeat settings
 * (cluster/heartbeat.ts Eased), which keeps a settings change from declaring a live server Down.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Eased } from '../src/cluster/heartbeat.ts';
import { openStore, type Store } from '../src/db/connection.ts';
import { upgradeSchema } from '../src/db/upgrade.ts';
import { CloudKeyError, openCloudKey } from '../src/iam/cloud-key.ts';
import { Secrets } from '../src/iam/secrets.ts';

describe('the cloud key at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-cloudkey-'));
  let store: Store;
  const keyFile = join(dir, 'first', 'server.key');
  const now = Date.now();

  before(async () => {
    store = openStore(`sqlite:${join(dir, 'db.sqlite')}`);
    await upgradeSchema(store, { serverName: 't', liveWindowMs: 60_000, backupsKept: 1, now });
  });
  after(() => store.close());

  test('a new database: the first server makes the key (mode 0600) and records its check', async () => {
    const key = await openCloudKey(store, { secretKeyFile: keyFile }, { now, create: true });
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const row = await store.db.selectFrom('cloud_key').selectAll().executeTakeFirstOrThrow();
    assert.equal(row.fingerprint, key.fingerprint);
    // Sealed secrets written now open with the key the next server reads from the same file.
    assert.equal(Secrets.read(keyFile).decrypt(key.encrypt('x')), 'x');
  });

  test('the cloud’s key opens; from the file or from the variable', async () => {
    const fromFile = await openCloudKey(store, { secretKeyFile: keyFile }, { now, create: true });
    const fromVar = await openCloudKey(
      store,
      { secretKeyFile: join(dir, 'nowhere', 'server.key'), secretKey: readFileSync(keyFile, 'utf8') },
      { now, create: true },
    );
    assert.equal(fromFile.fingerprint, fromVar.fingerprint);
    assert.equal(existsSync(join(dir, 'nowhere')), false, 'nothing is written for a key given as a variable');
  });

  test('no key, another key or a malformed one: refused, nothing written', async () => {
    const cloud = Secrets.read(keyFile).fingerprint;
    const missing = join(dir, 'second', 'server.key');
    await assert.rejects(openCloudKey(store, { secretKeyFile: missing }, { now, create: true }), (e) => {
      assert.ok(e instanceof CloudKeyError);
      assert.match(e.message, new RegExp(`sealed with key ${cloud}, and this server has no key`));
      return true;
    });
    assert.equal(existsSync(missing), false, 'no key of its own was made');
    const other = Secrets.generate();
    await assert.rejects(
      openCloudKey(
        store,
        { secretKeyFile: missing, secretKey: Buffer.alloc(32, 7).toString('hex') },
        { now, create: true },
      ),
      new RegExp(
        `NIMBOSTACK_SECRET_KEY holds key [0-9a-f]{8}, but this cloud's secrets are sealed with key ${cloud}`,
      ),
    );
    other.writeTo(missing);
    await assert.rejects(
      openCloudKey(store, { secretKeyFile: missing }, { now, create: true }),
      new RegExp(`the key file ${missing} holds key ${other.fingerprint}`),
    );
    await assert.rejects(
      openCloudKey(store, { secretKeyFile: keyFile, secretKey: 'abc' }, { now, create: true }),
      /NIMBOSTACK_SECRET_KEY does not hold a 256-bit hex key/,
    );
  });

  test('a database from before the check: the key that opens its secrets is recorded, another is refused', async () => {
    const key = Secrets.read(keyFile);
    await store.db.deleteFrom('cloud_key').execute();
    // A secret sealed by the servers of before: a secret setting (the schema alone has no users).
    await store.db
      .insertInto('configuration')
      .values({ name: 'ldap.bind.password', value: key.encrypt('bind'), updated: now })
      .execute();
    const stranger = join(dir, 'third', 'server.key');
    await assert.rejects(
      openCloudKey(store, { secretKeyFile: stranger }, { now, create: true }),
      /this database holds secrets sealed with a key this server does not have/,
    );
    Secrets.generate().writeTo(stranger);
    await assert.rejects(
      openCloudKey(store, { secretKeyFile: stranger }, { now, create: true }),
      /which does not open the secrets already stored in this database/,
    );
    assert.equal(await store.db.selectFrom('cloud_key').selectAll().executeTakeFirst(), undefined);
    const opened = await openCloudKey(store, { secretKeyFile: keyFile }, { now, create: true });
    assert.equal(opened.fingerprint, key.fingerprint);
    const row = await store.db.selectFrom('cloud_key').selectAll().executeTakeFirstOrThrow();
    assert.equal(row.fingerprint, key.fingerprint);
  });
});

describe('heartbeat settings change gently', () => {
  test('a shorter threshold waits out the grace; a longer one applies at once', () => {
    const threshold = new Eased(Math.max);
    assert.equal(threshold.value(60_000, 7000, 1000), 60_000, 'the first value applies at once');
    assert.equal(threshold.value(4000, 7000, 2000), 60_000, 'shortened: the old one during the grace');
    assert.equal(threshold.value(4000, 7000, 8999), 60_000);
    assert.equal(threshold.value(4000, 7000, 9000), 4000, 'then the new one');
    assert.equal(threshold.value(90_000, 7000, 9500), 90_000, 'lengthened: at once');
  });

  test('a longer interval waits out the grace; a shorter one applies at once; changes in a grace keep the safest', () => {
    const interval = new Eased(Math.min);
    interval.value(1000, 6000, 0);
    assert.equal(interval.value(10_000, 6000, 100), 1000, 'lengthened: the old one during the grace');
    assert.equal(interval.value(20_000, 6000, 3000), 1000, 'changed again within the grace');
    assert.equal(interval.value(20_000, 6000, 9000), 20_000);
    assert.equal(interval.value(500, 6000, 9100), 500, 'shortened: at once');
  });
});
