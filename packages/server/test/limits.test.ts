/** Resource limits: defaults, explicit limits, and atomic reservation under concurrency. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { ResourceKind, reserve } from '../src/iam/limits.ts';

let server: Server;
let admin: CloudStackClient;
let dataDir: string;
const is = (code: number) => (e: any) => e.errorcode === code;

before(async () => {
  // In-process, so the test can call the reservation service directly next to the API.
  dataDir = mkdtempSync(join(tmpdir(), 'nimbo-limits-'));
  server = await startServer(
    loadConfig(
      {},
      { port: 0, agentPort: 0, host: '127.0.0.1', dataDir, logLevel: 'silent', seedLocalZone: false },
    ),
  );
  admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
});
after(async () => {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function newAccount(name: string, domainid?: string) {
  return (
    await admin.request<any>('createAccount', {
      username: name,
      password: 'pw',
      email: `${name}@x.y`,
      firstname: 'a',
      lastname: 'b',
      accounttype: 0,
      domainid,
    })
  ).account;
}

async function accountRow(uuid: string) {
  return server.app.store.db
    .selectFrom('accounts')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
}

describe('resource limits', () => {
  test('defaults are listed for every resource type; admins are unlimited', async () => {
    const a = await newAccount('lim1');
    const limits = await admin.request<any>('listResourceLimits', { account: 'lim1', domainid: a.domainid });
    assert.equal(limits.count, 12);
    const vm = limits.resourcelimit.find((l: any) => l.resourcetype === '0');
    assert.equal(vm.resourcetypename, 'user_vm');
    assert.equal(vm.max, 20);
    const mine = await admin.request<any>('listResourceLimits', {});
    assert.ok(mine.resourcelimit.every((l: any) => l.max === -1));
  });

  test('updateResourceLimit validates and sets; a reservation over it is 535 and changes nothing', async () => {
    const a = await newAccount('lim2');
    await assert.rejects(
      admin.request('updateResourceLimit', {
        resourcetype: 42,
        max: 1,
        account: 'lim2',
        domainid: a.domainid,
      }),
      is(431),
    );
    await assert.rejects(
      admin.request('updateResourceLimit', {
        resourcetype: 0,
        max: -5,
        account: 'lim2',
        domainid: a.domainid,
      }),
      is(431),
    );
    const set = await admin.request<any>('updateResourceLimit', {
      resourcetype: 0,
      max: 2,
      account: 'lim2',
      domainid: a.domainid,
    });
    assert.equal(set.resourcelimit.max, 2);
    const row = await accountRow(a.id);
    const db = server.app.store.db;
    await db.transaction().execute((tx) => reserve({ app: server.app }, tx, row, ResourceKind.Instance, 2));
    await assert.rejects(
      db.transaction().execute((tx) => reserve({ app: server.app }, tx, row, ResourceKind.Instance, 1)),
      (e: any) =>
        e.errorcode === 535 &&
        e.cserrorcode === 4370 &&
        /^Maximum amount of resources of Type = 'user_vm' for Account Name = lim2 in Domain Id = [0-9a-f-]{36} is exceeded: Account Resource Limit = 2, Current Account Resource Amount = 2, Current Account Resource Reservation = 0, Requested Resource Amount = 1\.$/.test(
          e.message,
        ),
    );
    const counts = await admin.request<any>('updateResourceCount', {
      account: 'lim2',
      domainid: a.domainid,
      resourcetype: 0,
    });
    // The reservation above had no VM behind it: a recount from the VMs that exist corrects it.
    assert.equal(counts.resourcecount[0].resourcecount, 0);
  });

  test('concurrent reservations never exceed a limit', async () => {
    const a = await newAccount('lim3');
    await admin.request('updateResourceLimit', {
      resourcetype: 8,
      max: 5,
      account: 'lim3',
      domainid: a.domainid,
    });
    const row = await accountRow(a.id);
    const db = server.app.store.db;
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () =>
        db.transaction().execute((tx) => reserve({ app: server.app }, tx, row, ResourceKind.Cpu, 1)),
      ),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 5);
  });

  test('domain limits bind every account below them', async () => {
    const d = (await admin.request<any>('createDomain', { name: 'limited' })).domain;
    await admin.request('updateResourceLimit', { resourcetype: 2, max: 3, domainid: d.id });
    const x = await accountRow((await newAccount('limx', d.id)).id);
    const y = await accountRow((await newAccount('limy', d.id)).id);
    const db = server.app.store.db;
    await db.transaction().execute((tx) => reserve({ app: server.app }, tx, x, ResourceKind.Volume, 2));
    await assert.rejects(
      db.transaction().execute((tx) => reserve({ app: server.app }, tx, y, ResourceKind.Volume, 2)),
      (e: any) =>
        e.errorcode === 535 &&
        e.message ===
          `Maximum domain resource limits of Type 'volume' for Domain Id = ${d.id} is exceeded: Domain Resource Limit = 3, Current Domain Resource Amount = 2, Current Resource Reservation = 0, Requested Resource Amount = 2.`,
    );
    const dl = await admin.request<any>('listResourceLimits', { domainid: d.id, resourcetype: 2 });
    assert.equal(dl.resourcelimit[0].max, 3);
  });

  test("a _ in a domain name does not reach a sibling's accounts (a_b vs axb)", async () => {
    const ab = (await admin.request<any>('createDomain', { name: 'a_b' })).domain;
    const axb = (await admin.request<any>('createDomain', { name: 'axb' })).domain;
    await newAccount('limab', ab.id);
    const other = await accountRow((await newAccount('limaxb', axb.id)).id);
    const db = server.app.store.db;
    // Networks have no recount from records: the stored count is what updateResourceCount sums.
    await db.transaction().execute((tx) => reserve({ app: server.app }, tx, other, ResourceKind.Network, 3));
    await admin.request('createAccount', {
      username: 'limabadmin',
      password: 'pw',
      email: 'limabadmin@x.y',
      firstname: 'a',
      lastname: 'b',
      accounttype: 2,
      domainid: ab.id,
    });
    const dadmin = await CloudStackClient.login(`${server.url}/client/api`, 'limabadmin', 'pw', '/a_b');
    const listed = await dadmin.request<any>('listResourceLimits', { listall: true, resourcetype: 6 });
    assert.deepEqual(listed.resourcelimit.map((l: any) => l.account).sort(), ['limab', 'limabadmin']);
    const counted = await admin.request<any>('updateResourceCount', { domainid: ab.id, resourcetype: 6 });
    assert.equal(counted.resourcecount[0].resourcecount, 0);
    const theirs = await admin.request<any>('updateResourceCount', { domainid: axb.id, resourcetype: 6 });
    assert.equal(theirs.resourcecount[0].resourcecount, 3);
  });

  test('users see their own limits and cannot change them', async () => {
    await newAccount('limu');
    const u = await CloudStackClient.login(`${server.url}/client/api`, 'limu', 'pw');
    const mine = await u.request<any>('listResourceLimits', { listall: true });
    assert.ok(mine.resourcelimit.every((l: any) => l.account === 'limu'));
    await assert.rejects(
      u.request('updateResourceLimit', { resourcetype: 0, max: 100, account: 'limu' }),
      is(432),
    );
  });
});
