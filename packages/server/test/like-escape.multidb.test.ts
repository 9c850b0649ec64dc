/**
 * LIKE on escaped text (iam/access.ts likeEscaped, pathPrefix) declares its escape character, so
 * domain names with _, % or ! match their own subtree and nothing else, on every database.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer, testDatabases } from './harness.ts';

for (const db of testDatabases()) {
  describe(`LIKE escaping on ${db}`, () => {
    let server: TestServer;
    before(async () => {
      server = await startServer({ db });
    });
    after(() => server.stop());

    test('a domain named w_%! lists its own subtree; a_b does not reach axb', async () => {
      const admin: CloudStackClient = server.admin;
      const odd = (await admin.request<any>('createDomain', { name: 'w_%!' })).domain;
      await admin.request('createDomain', { name: 'kid', parentdomainid: odd.id });
      const kids = await admin.request<any>('listDomainChildren', { id: odd.id, isrecursive: true });
      assert.deepEqual(
        kids.domain?.map((d: any) => d.name),
        ['kid'],
      );
      const kw = await admin.request<any>('listDomains', { keyword: '_%!', listall: true });
      assert.deepEqual(
        kw.domain?.map((d: any) => d.name),
        ['w_%!'],
      );
      const ab = (await admin.request<any>('createDomain', { name: 'a_b' })).domain;
      const axb = (await admin.request<any>('createDomain', { name: 'axb' })).domain;
      await createAccountAndLogin(server, { name: 'inab', domainid: ab.id, domainPath: '/a_b' });
      await createAccountAndLogin(server, { name: 'inaxb', domainid: axb.id, domainPath: '/axb' });
      const dadmin = (
        await createAccountAndLogin(server, {
          name: 'abadmin',
          accounttype: 2,
          domainid: ab.id,
          domainPath: '/a_b',
        })
      ).client;
      const limits = await dadmin.request<any>('listResourceLimits', { listall: true, resourcetype: 0 });
      assert.deepEqual(limits.resourcelimit.map((l: any) => l.account).sort(), ['abadmin', 'inab']);
      const accounts = await dadmin.request<any>('listAccounts', { listall: true });
      assert.deepEqual(accounts.account.map((a: any) => a.name).sort(), ['abadmin', 'inab']);
    });
  });
}
