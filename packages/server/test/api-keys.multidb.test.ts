/**
 * API keys with two management servers on one database (PostgreSQL and MariaDB with
 * NIMBOSTACK_TEST_DBS; SQLite serves one server): each server caches a key's owner and secret for a moment
 * (iam/caller.ts); keys regenerated through one server must stop working on the other within
 * that window, and the new keys must work there.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer, testDatabases } from './harness.ts';

/** How long another server may go on accepting a replaced key: the key cache's lifetime (2 s) plus slack. */
const WINDOW_MS = 4000;

for (const db of testDatabases().filter((d) => d !== 'sqlite')) {
  describe(`revoked API keys across two management servers on ${db}`, () => {
    let a: TestServer;
    let b: TestServer;

    before(async () => {
      a = await startServer({ db, env: { NIMBOSTACK_SERVER_NAME: 'ms-a' } });
      // Servers sharing a database share the server key that encrypts the secret keys.
      b = await startServer({
        databaseUrl: a.databaseUrl,
        env: { NIMBOSTACK_SERVER_NAME: 'ms-b', NIMBOSTACK_SECRET_KEY_FILE: join(a.dataDir, 'server.key') },
      });
    });
    after(async () => {
      await b?.stop();
      await a?.stop();
    });

    test('keys regenerated on A fail on B within seconds; the new keys work on B', async () => {
      const { userId } = await createAccountAndLogin(a, { name: `rekey-${db}` });
      const old = (await a.admin.request<any>('registerUserKeys', { id: userId })).userkeys;
      const onB = new CloudStackClient({ url: b.api, apiKey: old.apikey, secretKey: old.secretkey });
      // B has now cached the key's owner and secret.
      assert.equal((await onB.request<any>('listAccounts')).account[0].name, `rekey-${db}`);

      const fresh = (await a.admin.request<any>('registerUserKeys', { id: userId })).userkeys;
      const revokedAt = Date.now();
      let refusedAfter: number | undefined;
      while (Date.now() - revokedAt < WINDOW_MS + 2000) {
        try {
          await onB.request('listAccounts');
        } catch (e) {
          assert.equal((e as { errorcode: number }).errorcode, 401);
          refusedAfter = Date.now() - revokedAt;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(refusedAfter !== undefined, 'the old key still worked on B');
      assert.ok(refusedAfter <= WINDOW_MS, `B refused the old key only after ${refusedAfter} ms`);
      // Once refused, it stays refused (no cache entry brings it back).
      for (let i = 0; i < 5; i++) await assert.rejects(onB.request('listAccounts'), { errorcode: 401 });
      const freshOnB = new CloudStackClient({ url: b.api, apiKey: fresh.apikey, secretKey: fresh.secretkey });
      assert.equal((await freshOnB.request<any>('listAccounts')).account[0].name, `rekey-${db}`);
      console.log(
        `# ${db}: server B refused the replaced key ${refusedAfter} ms after it was regenerated on A`,
      );
    });

    test('a user disabled on A is refused on B within seconds', async () => {
      const { userId } = await createAccountAndLogin(a, { name: `disable-${db}` });
      const k = (await a.admin.request<any>('registerUserKeys', { id: userId })).userkeys;
      const onB = new CloudStackClient({ url: b.api, apiKey: k.apikey, secretKey: k.secretkey });
      await onB.request('listAccounts');
      await a.admin.request('disableUser', { id: userId });
      const start = Date.now();
      let refused = false;
      while (!refused && Date.now() - start < WINDOW_MS) {
        refused = await onB.request('listAccounts').then(
          () => false,
          (e) => e.errorcode === 401,
        );
        if (!refused) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(refused, 'the disabled user could still call B');
    });
  });
}
