/**
 * Kept listVirtualMachines answers (http/response-cache.ts) never hide a write: after a change made
 * through the API, through another management server on the same database, or straight in the
 * database by a tool, the next identical list shows it, in JSON and in XML; callers never see each
 * other's kept answers; a changed setting is applied to the next list. Runs on the databases of
 * NIMBOSTACK_TEST_DBS (default SQLite; PostgreSQL adds a second server; MySQL/MariaDB keep nothing,
 * so there the test checks the same behaviour without the cache).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { seededLocalZone } from './agents.ts';
import {
  createAccountAndLogin,
  type DbKind,
  sqlOn,
  startServer,
  type TestServer,
  testDatabases,
} from './harness.ts';

/** An UPDATE run beside the servers, on its own connection, as an operator's tool would. */
async function writeAside(db: DbKind, url: string, query: string, params: unknown[]): Promise<void> {
  if (db !== 'sqlite') {
    await sqlOn(db, url, query, params);
    return;
  }
  const file = new SQLite(url.replace(/^(sqlite|file):(\/\/)?/, ''));
  try {
    file.pragma('busy_timeout = 5000');
    file.prepare(query).run(...params);
  } finally {
    file.close();
  }
}

for (const db of testDatabases()) {
  describe(`kept lists show every write (${db})`, () => {
    let first: TestServer;
    let second: TestServer | undefined;
    before(async () => {
      first = await startServer({ db, env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
      // SQLite serves one management server; the others share the database between two.
      if (db !== 'sqlite')
        second = await startServer({
          databaseUrl: first.databaseUrl,
          env: {
            NIMBOSTACK_SERVER_NAME: 'b',
            NIMBOSTACK_SECRET_KEY: readFileSync(join(first.dataDir, 'server.key'), 'utf8'),
          },
        });
    });
    after(async () => {
      await second?.stop();
      await first.stop();
    });

    test('API writes, other servers, tools, XML, callers and settings', async () => {
      const { zoneid, templateid, small } = await seededLocalZone(first.admin);
      const alice = await createAccountAndLogin(first, { name: 'cache-alice' });
      const bob = await createAccountAndLogin(first, { name: 'cache-bob' });
      const vm = (
        await alice.client.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid: small,
          name: 'kept-1',
          displayname: 'one',
        })
      ).virtualmachine;
      const list = async (client = alice.client, params: Record<string, string> = {}) =>
        (await client.request<any>('listVirtualMachines', { page: 1, pagesize: 500, ...params }))
          .virtualmachine ?? [];
      const names = async (client = alice.client) => (await list(client)).map((v: any) => v.displayname);

      // The same call twice (the second may be the kept answer) gives the same answer.
      assert.deepEqual(await list(), await list());
      assert.deepEqual(await names(), ['one']);

      // A write through the API, then the same list.
      await alice.client.request('updateVirtualMachine', { id: vm.id, displayname: 'two' });
      assert.deepEqual(await names(), ['two']);

      // A write through the other server (PostgreSQL), then the list on this one and back.
      if (second) {
        const bobOnSecond = await createAccountAndLogin(second, { name: 'cache-alice-2' });
        assert.deepEqual(await names(bobOnSecond.client), []);
        await second.admin.request('updateVirtualMachine', { id: vm.id, displayname: 'three' });
        assert.deepEqual(await names(), ['three']);
        await first.admin.request('updateVirtualMachine', { id: vm.id, displayname: 'four' });
        assert.deepEqual(
          (await list(second.admin, { listall: 'true', id: vm.id })).map((v: any) => v.displayname),
          ['four'],
        );
        await list(second.admin, { listall: 'true', id: vm.id });
        await second.admin.request('updateVirtualMachine', { id: vm.id, displayname: 'five' });
        assert.deepEqual(
          (await list(first.admin, { listall: 'true', id: vm.id })).map((v: any) => v.displayname),
          ['five'],
        );
      }

      // A write straight in the database, on a connection of its own.
      await names();
      await writeAside(db, first.databaseUrl, 'update vms set display_name = ? where uuid = ?', [
        'aside',
        vm.id,
      ]);
      assert.deepEqual(await names(), ['aside']);

      // XML: the same behaviour, its own kept answer.
      const session = alice.client.sessionCredentials!;
      const xml = async () => {
        const r = await fetch(
          `${first.api}?command=listVirtualMachines&page=1&pagesize=500&sessionkey=${encodeURIComponent(session.sessionKey)}`,
          { headers: { cookie: session.cookie } },
        );
        return r.text();
      };
      const before = await xml();
      assert.match(before, /<displayname>aside<\/displayname>/);
      assert.equal(await xml(), before);
      await alice.client.request('updateVirtualMachine', { id: vm.id, displayname: 'xml' });
      assert.match(await xml(), /<displayname>xml<\/displayname>/);

      // Callers do not share answers: bob sees none of alice's VMs, with the same parameters.
      assert.deepEqual(await names(bob.client), []);
      assert.deepEqual(await names(), ['xml']);

      // A setting read by the list: users see their Destroyed VMs only where it allows.
      await alice.client.call('destroyVirtualMachine', { id: vm.id });
      assert.deepEqual(await names(), []);
      await first.admin.request('updateConfiguration', {
        name: 'allow.user.view.destroyed.vm',
        value: 'true',
      });
      assert.deepEqual(await names(), ['xml']);
      await first.admin.request('updateConfiguration', {
        name: 'allow.user.view.destroyed.vm',
        value: 'false',
      });
      assert.deepEqual(await names(), []);
    });
  });
}
