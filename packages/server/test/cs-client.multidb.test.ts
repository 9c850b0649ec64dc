/**
 * Issue 2's "done means": Debian's python3-cs (the `cs` library) drives the real server process,
 * GET and POST, JSON and XML, with admin keys from the documented `npm run keys` command — on
 * SQLite by default and on PostgreSQL and MariaDB with `npm run test:db`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO, startServer, type TestServer, testDatabases } from './harness.ts';

const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';

for (const db of testDatabases()) {
  describe(`the cs client on ${db}`, () => {
    let server: TestServer;
    let key: string;
    let secret: string;

    before(async () => {
      server = await startServer({ db });
      const printed = execFileSync(
        process.execPath,
        ['--import', 'tsx', 'packages/server/src/admin-cli.ts', 'keys', 'admin'],
        {
          cwd: REPO,
          env: { ...process.env, NIMBOSTACK_DATA: server.dataDir, DATABASE_URL: server.databaseUrl },
          encoding: 'utf8',
        },
      );
      key = printed.match(/^apikey=(.+)$/m)![1];
      secret = printed.match(/^secretkey=(.+)$/m)![1];
    });
    after(() => server.stop());

    test('listVirtualMachines pages run on this database (count, then ids, then rows)', async () => {
      // The page query differs by dialect (IN subquery; a derived table on MySQL/MariaDB).
      const root = (await server.admin.request<any>('listDomains', { name: 'ROOT' })).domain[0].id;
      for (const params of [
        { listall: true, page: 2, pagesize: 5 },
        { listall: true, page: 1, pagesize: 500, details: 'min' },
        { domainid: root, isrecursive: true, page: 1, pagesize: 10 },
        { listall: true, pagesize: -1 },
      ])
        assert.deepEqual(await server.admin.request('listVirtualMachines', params), {});
    });

    for (const method of ['get', 'post']) {
      test(`identity, settings, tags, events and discovery over ${method.toUpperCase()}`, () => {
        const out = JSON.parse(
          execFileSync(
            PYTHON,
            [join(import.meta.dirname, 'clients/cs_foundation.py'), server.api, key, secret, method],
            {
              encoding: 'utf8',
            },
          ),
        );
        assert.equal(out.domains.domain[0].name, 'ROOT');
        assert.equal(out.account.name, `alice-${method}`);
        assert.equal(out.account.user[0].username, `alice-${method}`);
        assert.equal(out.user.account, `alice-${method}`);
        assert.ok(out.keys.apikey && out.keys.secretkey);
        assert.ok(out.accounts.some((a: { name: string }) => a.name === `alice-${method}`));
        assert.equal(out.configurations.configuration[0].value, '500');
        assert.equal(out.updated.value, '900');
        assert.deepEqual(out.tagged, { success: true });
        assert.ok(
          out.tags.tag.some((t: { key: string; value: string }) => t.key === 'env' && t.value === 'dev test'),
        );
        assert.ok(out.events.count >= 1);
        for (const name of [
          'listDomains',
          'createAccount',
          'createUser',
          'registerUserKeys',
          'listConfigurations',
          'createTags',
          'listEvents',
        ]) {
          assert.ok(out.apis.includes(name), name);
        }
        assert.match(
          out.xml,
          /^<\?xml .*<listdomainsresponse cloud-stack-version="[\d.]+"><count>\d+<\/count>/,
        );
        assert.deepEqual(
          out.bob_accounts.account.map((a: { name: string }) => a.name),
          [`alice-${method}`],
        );
        assert.equal(out.bad_signature.status, 401);
        assert.equal(out.missing.status, 431);
        assert.match(out.missing.error.errortext, /missing parameter/);
      });
    }

    test('the password with symbols logs in', async () => {
      const res = await fetch(server.api, {
        method: 'POST',
        body: new URLSearchParams({
          command: 'login',
          username: 'alice-get',
          password: "pw with spaces & symbols ~*!'()",
          domain: '/cs-get',
          response: 'json',
        }),
      });
      assert.equal(res.status, 200);
    });
  });
}
