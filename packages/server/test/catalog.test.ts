/**
 * Every declared command, parameter and response field matches the CloudStack API catalog
 * (../shared/cloudstack-api/apis.json), and the slim copy the server ships is up to date.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { allCommands } from '../src/commands.ts';
import { REPO, startServer, type TestServer } from './harness.ts';

const UPSTREAM = join(REPO, '../shared/cloudstack-api/apis.json');
const shipped: any[] = JSON.parse(
  readFileSync(join(REPO, 'packages/server/src/registry/catalog.json'), 'utf8'),
);
const upstream: any[] = existsSync(UPSTREAM) ? JSON.parse(readFileSync(UPSTREAM, 'utf8')) : shipped;
const byName = new Map(upstream.map((c) => [c.name, c]));

/** Our parameter types and the catalog's: integer-like types are one family. */
const sameType = (ours: string, theirs: string) =>
  ours === theirs ||
  (['integer', 'long', 'short'].includes(ours) && ['integer', 'long', 'short'].includes(theirs));

describe('declarations', () => {
  test('the shipped catalog holds the registered commands, without prose', () => {
    assert.deepEqual(
      shipped.map((c) => c.name).sort(),
      allCommands.map((c) => c.name).sort(),
      'run `npm run catalog`',
    );
    const text = JSON.stringify(shipped);
    assert.ok(!text.includes('"description":'), 'the catalog carries no descriptions');
  });

  test('the shipped catalog matches the upstream catalog', { skip: !existsSync(UPSTREAM) }, () => {
    for (const c of shipped) {
      const u = byName.get(c.name);
      assert.ok(u, c.name);
      assert.equal(c.isasync, u.isasync, c.name);
      assert.deepEqual(c.roles, u.roles, c.name);
      assert.equal(c.responseObjectName, u.responseObjectName, c.name);
    }
  });

  test('every command, parameter and type exists upstream', () => {
    for (const command of allCommands) {
      const u = byName.get(command.name);
      assert.ok(u, `${command.name} is not a CloudStack command`);
      const params = new Map<string, any>(u.params.map((p: any) => [p.name.toLowerCase(), p]));
      for (const [name, spec] of Object.entries(command.params)) {
        const up = params.get(name);
        assert.ok(up, `${command.name}: no parameter ${name} upstream`);
        assert.ok(
          sameType(spec.type, up.type),
          `${command.name}.${name}: ${spec.type} vs upstream ${up.type}`,
        );
      }
      // Every parameter upstream requires is required here too.
      for (const up of u.params) {
        if (up.required) {
          const ours = command.params[up.name.toLowerCase()];
          assert.ok(ours?.required, `${command.name}: upstream requires ${up.name}`);
        }
      }
    }
  });
});

describe('responses', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer();
    // Something in every list: a domain, an account, a tag, a job, events.
    const d = (await server.admin.request<any>('createDomain', { name: 'fields' })).domain;
    const a = (
      await server.admin.request<any>('createAccount', {
        username: 'fields',
        password: 'pw',
        email: 'f@example.com',
        firstname: 'f',
        lastname: 'g',
        accounttype: 0,
        domainid: d.id,
      })
    ).account;
    await server.admin.call('createTags', {
      resourcetype: 'Account',
      resourceids: a.id,
      tags: [{ key: 'k', value: 'v' }],
    });
  });
  after(() => server.stop());

  function checkFields(command: string, object: Record<string, unknown>) {
    const allowed = new Set<string>(byName.get(command).response.map((f: any) => f.name));
    for (const key of Object.keys(object))
      assert.ok(allowed.has(key), `${command}: field ${key} is not in the catalog`);
  }

  test('list commands return only catalog fields', async () => {
    const lists = allCommands.filter(
      (c) =>
        c.catalog.responseShape === 'list' && !Object.values(c.params).some((p) => p.required) && !c.isAsync,
    );
    assert.ok(lists.length > 5);
    // Lists that need one of two optional parameters (upstream refuses them with neither).
    const needs: Record<string, object> = { importLdapUsers: { accounttype: 0 } };
    for (const c of lists) {
      const r = await server.admin.request<any>(c.name, {
        ...('listall' in c.params ? { listall: true } : {}),
        ...needs[c.name],
      });
      const items = r[c.catalog.responseObjectName!] ?? [];
      for (const item of items) checkFields(c.name, item);
    }
  });

  test('listApis serves our descriptions of the command, its parameters and its response fields', async () => {
    const { listZones } = await import('../src/infra/zones.ts');
    const api = (await server.admin.request<any>('listApis', { name: 'listZones' })).api[0];
    assert.equal(api.description, listZones.description);
    for (const p of api.params)
      assert.equal(p.description, (listZones.params as any)[p.name].description, p.name);
    assert.ok(api.response.length > 10);
    for (const f of api.response) assert.ok(f.description, `listZones field ${f.name} has a description`);
  });

  test('object and inline responses return only catalog fields', async () => {
    const capability = await server.admin.request<any>('listCapabilities');
    checkFields('listCapabilities', capability.capability);
    const d = await server.admin.request<any>('createDomain', { name: 'fields2' });
    checkFields('createDomain', d.domain);
    const user = (await server.admin.request<any>('listUsers', { username: 'admin' })).user[0];
    const keys = await server.admin.request<any>('registerUserKeys', { id: user.id });
    checkFields('registerUserKeys', keys.userkeys);
    const conf = await server.admin.request<any>('updateConfiguration', {
      name: 'session.timeout',
      value: '1000',
    });
    checkFields('updateConfiguration', conf.configuration);
    const queued = await server.admin.request<any>('deleteDomain', { id: d.domain.id });
    const job = await server.admin.waitForJob(queued.jobid);
    checkFields('queryAsyncJobResult', job);
  });
});

describe('docs', () => {
  test('docs/commands.md is generated from the current registry (npm run docs)', async () => {
    const { renderCommandDocs } = await import('../../../scripts/gen-api-docs.ts');
    assert.equal(
      readFileSync(join(REPO, 'docs/commands.md'), 'utf8'),
      renderCommandDocs(),
      'run `npm run docs`',
    );
  });
});
