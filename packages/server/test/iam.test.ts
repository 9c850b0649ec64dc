/** Identity and tenancy: domains, accounts, users, roles, and who may see and touch what. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let admin: CloudStackClient;
const ids: Record<string, string> = {};
let dadmin: CloudStackClient;
let u1: CloudStackClient;
let u3: CloudStackClient;
let u3UserId: string;

const is = (code: number) => (e: any) => e.errorcode === code;

before(async () => {
  server = await startServer();
  admin = server.admin;
  ids.d1 = (await admin.request<any>('createDomain', { name: 'd1' })).domain.id;
  ids.sub = (await admin.request<any>('createDomain', { name: 'sub', parentdomainid: ids.d1 })).domain.id;
  ids.d2 = (await admin.request<any>('createDomain', { name: 'd2' })).domain.id;
  dadmin = (
    await createAccountAndLogin(server, {
      name: 'dadmin',
      accounttype: 2,
      domainid: ids.d1,
      domainPath: '/d1',
    })
  ).client;
  const a1 = await createAccountAndLogin(server, { name: 'u1', domainid: ids.d1, domainPath: '/d1' });
  u1 = a1.client;
  ids.u1 = a1.account.id as string;
  ids.u1user = a1.userId;
  const a2 = await createAccountAndLogin(server, { name: 'u2', domainid: ids.sub, domainPath: '/d1/sub' });
  ids.u2 = a2.account.id as string;
  const a3 = await createAccountAndLogin(server, { name: 'u3', domainid: ids.d2, domainPath: 'ROOT/d2' });
  u3 = a3.client;
  u3UserId = a3.userId;
  ids.u3 = a3.account.id as string;
});
after(() => server.stop());

describe('domains', () => {
  test('paths, levels and children', async () => {
    const sub = (await admin.request<any>('listDomains', { id: ids.sub })).domain[0];
    assert.equal(sub.path, 'ROOT/d1/sub');
    assert.equal(sub.level, 2);
    assert.equal(sub.parentdomainname, 'd1');
    const children = await admin.request<any>('listDomainChildren', { id: ids.d1 });
    assert.deepEqual(
      children.domain.map((d: any) => d.name),
      ['sub'],
    );
    const d1 = (await admin.request<any>('listDomains', { id: ids.d1 })).domain[0];
    assert.equal(d1.haschild, true);
  });

  test('duplicate names under one parent and names with / are refused', async () => {
    await assert.rejects(admin.request('createDomain', { name: 'd1' }), is(431));
    await assert.rejects(admin.request('createDomain', { name: 'a/b' }), is(431));
    await assert.rejects(
      admin.request('createDomain', { name: 'x', parentdomainid: '11111111-1111-1111-1111-111111111111' }),
      is(431),
    );
  });

  test('renaming a domain renames its subtree paths', async () => {
    const d = (await admin.request<any>('createDomain', { name: 'old' })).domain;
    const c = (await admin.request<any>('createDomain', { name: 'child', parentdomainid: d.id })).domain;
    await admin.request('updateDomain', { id: d.id, name: 'new' });
    const child = (await admin.request<any>('listDomains', { id: c.id })).domain[0];
    assert.equal(child.path, 'ROOT/new/child');
  });

  test('deleting a domain with accounts needs cleanup=true', async () => {
    const d = (await admin.request<any>('createDomain', { name: 'doomed' })).domain;
    await createAccountAndLogin(server, { name: 'victim', domainid: d.id, domainPath: '/doomed' });
    await assert.rejects(admin.call('deleteDomain', { id: d.id }), is(536));
    assert.equal((await admin.request<any>('listDomains', { id: d.id })).count, 1);
    assert.deepEqual(await admin.call('deleteDomain', { id: d.id, cleanup: true }), { success: true });
    // The domain's row is gone (upstream keeps it as removed), so its uuid names nothing now: 431.
    await assert.rejects(admin.request('listDomains', { id: d.id }), is(431));
    assert.deepEqual(await admin.request('listAccounts', { name: 'victim', listall: true }), {});
  });

  test('domain names with LIKE wildcards and the escape character match their own subtree', async () => {
    const odd = (await admin.request<any>('createDomain', { name: 'w_%!' })).domain;
    const kid = (await admin.request<any>('createDomain', { name: 'kid', parentdomainid: odd.id })).domain;
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
    const wadmin = (
      await createAccountAndLogin(server, {
        name: 'wadmin',
        accounttype: 2,
        domainid: odd.id,
        domainPath: '/w_%!',
      })
    ).client;
    const seen = await wadmin.request<any>('listDomains', { listall: true });
    assert.deepEqual(
      seen.domain?.map((d: any) => d.name),
      ['w_%!', 'kid'],
    );
    await admin.request('updateDomain', { id: odd.id, name: 'v_%!' });
    assert.equal((await admin.request<any>('listDomains', { id: kid.id })).domain[0].path, 'ROOT/v_%!/kid');
    assert.deepEqual(await admin.call('deleteDomain', { id: odd.id, cleanup: true }), { success: true });
    const left = (await admin.request<any>('listDomains', { listall: true })).domain.map((d: any) => d.path);
    assert.ok(!left.some((path: string) => path.startsWith('ROOT/v_%!')), left.join());
  });

  test('keyword filters take _ and % literally (accounts, users, roles)', async () => {
    await createAccountAndLogin(server, { name: 'kw_1' });
    await createAccountAndLogin(server, { name: 'kwx1' });
    const accounts = await admin.request<any>('listAccounts', { keyword: 'kw_', listall: true });
    assert.deepEqual(
      accounts.account?.map((a: any) => a.name),
      ['kw_1'],
    );
    const users = await admin.request<any>('listUsers', { keyword: 'kw_', listall: true });
    assert.deepEqual(
      users.user?.map((u: any) => u.username),
      ['kw_1'],
    );
    assert.deepEqual(await admin.request('listRoles', { keyword: '%' }), {});
  });

  test('ROOT cannot be deleted', async () => {
    const root = (await admin.request<any>('listDomains', {})).domain[0];
    await assert.rejects(
      admin.request('deleteDomain', { id: root.id }).then((r: any) => admin.waitForJob(r.jobid)),
      is(531),
    );
  });
});

describe('accounts and users', () => {
  test('an account is created with its first user and default role', async () => {
    const acc = (await admin.request<any>('listAccounts', { id: ids.u1 })).account[0];
    assert.equal(acc.accounttype, 0);
    assert.equal(acc.roletype, 'User');
    assert.equal(acc.domain, 'd1');
    assert.equal(acc.user[0].username, 'u1');
    assert.equal(acc.state, 'enabled');
  });

  test('bad input is refused and changes nothing', async () => {
    const before = (await admin.request<any>('listAccounts', { listall: true })).count;
    await assert.rejects(
      admin.request('createAccount', {
        username: 'u1',
        password: 'p',
        email: 'a@b',
        firstname: 'a',
        lastname: 'b',
        accounttype: 0,
        domainid: ids.d1,
      }),
      is(431),
    );
    await assert.rejects(
      admin.request('createAccount', {
        username: 'zz',
        password: 'p',
        email: 'a@b',
        firstname: 'a',
        lastname: 'b',
        accounttype: 7,
      }),
      is(431),
    );
    await assert.rejects(
      admin.request('createAccount', {
        username: 'zz',
        password: 'p',
        email: 'not-an-email',
        firstname: 'a',
        lastname: 'b',
        accounttype: 0,
      }),
      is(431),
    );
    assert.equal((await admin.request<any>('listAccounts', { listall: true })).count, before);
  });

  test('a second user in an account, username clash, and the last user cannot be deleted', async () => {
    const u = (
      await admin.request<any>('createUser', {
        account: 'u3',
        domainid: ids.d2,
        username: 'u3b',
        password: 'pw',
        email: 'b@example.com',
        firstname: 'B',
        lastname: 'C',
      })
    ).user;
    assert.equal(u.account, 'u3');
    await assert.rejects(
      admin.request('createUser', {
        account: 'u3',
        domainid: ids.d2,
        username: 'u3b',
        password: 'pw',
        email: 'b@example.com',
        firstname: 'B',
        lastname: 'C',
      }),
      is(431),
    );
    assert.deepEqual(await admin.request('deleteUser', { id: u.id }), { success: true });
    await assert.rejects(admin.request('deleteUser', { id: u3UserId }), is(431));
  });

  test('a user changes their own password only with the current one', async () => {
    const { client, userId } = await createAccountAndLogin(server, { name: 'pwuser' });
    await assert.rejects(
      client.request('updateUser', { id: userId, password: 'new-pw', currentpassword: 'wrong' }),
      is(431),
    );
    await client.request('updateUser', { id: userId, password: 'new-pw', currentpassword: 'secret-pw' });
    await CloudStackClient.login(server.api, 'pwuser', 'new-pw');
    await assert.rejects(CloudStackClient.login(server.api, 'pwuser', 'secret-pw'), is(531));
  });

  test('disabling an account ends its sessions and refuses logins; enabling restores them', async () => {
    const { client, account } = await createAccountAndLogin(server, { name: 'flaky' });
    await admin.call('disableAccount', { id: account.id as string, lock: false });
    await assert.rejects(client.request('listAccounts'), is(401));
    await assert.rejects(CloudStackClient.login(server.api, 'flaky', 'secret-pw'), is(531));
    const enabled = await admin.request<any>('enableAccount', { id: account.id as string });
    assert.equal(enabled.account.state, 'enabled');
    await CloudStackClient.login(server.api, 'flaky', 'secret-pw');
    const locked = await admin.request<any>('lockAccount', {
      account: 'flaky',
      domainid: account.domainid as string,
    });
    assert.equal(locked.account.state, 'locked');
    await assert.rejects(CloudStackClient.login(server.api, 'flaky', 'secret-pw'), is(531));
  });

  test('deleteAccount is async and removes the account, its users and its sessions', async () => {
    const { client, account } = await createAccountAndLogin(server, { name: 'gone' });
    const queued = await admin.request<any>('deleteAccount', { id: account.id as string });
    assert.match(queued.jobid, /^[0-9a-f-]{36}$/);
    const job = await admin.waitForJob(queued.jobid);
    assert.deepEqual(job.jobresult, { success: true });
    // The account's row is gone, so its uuid names nothing now: 431, as any unknown uuid.
    await assert.rejects(admin.request('listAccounts', { id: account.id as string }), is(431));
    await assert.rejects(client.request('listAccounts'), is(401));
  });

  test('the admin account cannot delete itself', async () => {
    const me = (await admin.request<any>('listAccounts', { name: 'admin' })).account[0];
    await assert.rejects(admin.call('deleteAccount', { id: me.id }), is(531));
  });

  test('API keys: register, read back, and use', async () => {
    const keys = (await u1.request<any>('registerUserKeys', { id: ids.u1user })).userkeys;
    const again = (await u1.request<any>('getUserKeys', { id: ids.u1user })).userkeys;
    assert.deepEqual(again, keys);
    const signed = new CloudStackClient({ url: server.api, apiKey: keys.apikey, secretKey: keys.secretkey });
    const mine = await signed.request<any>('listAccounts');
    assert.deepEqual(
      mine.account.map((a: any) => a.name),
      ['u1'],
    );
    const listed = (await admin.request<any>('listUsers', { id: ids.u1user })).user[0];
    assert.equal(listed.apikey, keys.apikey);
    assert.equal(listed.secretkey, undefined);
  });
});

describe('cached API keys', () => {
  // The server caches each key's user and decrypted secret for a moment (iam/caller.ts); every
  // change made through the API must still take effect on the very next signed call.
  const signedClient = async (name: string) => {
    const { account, userId } = await createAccountAndLogin(server, { name });
    const keys = (await admin.request<any>('registerUserKeys', { id: userId })).userkeys;
    const client = new CloudStackClient({ url: server.api, apiKey: keys.apikey, secretKey: keys.secretkey });
    await client.request('listAccounts');
    return { client, userId, accountId: account.id as string, keys };
  };

  test('regenerated or replaced keys stop working at once, the new ones work', async () => {
    const { client, userId } = await signedClient('rekeyed');
    const fresh = (await admin.request<any>('registerUserKeys', { id: userId })).userkeys;
    await assert.rejects(client.request('listAccounts'), is(401));
    const next = new CloudStackClient({ url: server.api, apiKey: fresh.apikey, secretKey: fresh.secretkey });
    assert.equal((await next.request<any>('listAccounts')).account[0].name, 'rekeyed');
    await admin.request('updateUser', {
      id: userId,
      userapikey: 'my-own-key',
      usersecretkey: 'my-own-secret',
    });
    await assert.rejects(next.request('listAccounts'), is(401));
    const own = new CloudStackClient({ url: server.api, apiKey: 'my-own-key', secretKey: 'my-own-secret' });
    assert.equal((await own.request<any>('listAccounts')).account[0].name, 'rekeyed');
    // The old secret with the current key is a bad signature, not a cached success.
    const mixed = new CloudStackClient({ url: server.api, apiKey: 'my-own-key', secretKey: fresh.secretkey });
    await assert.rejects(mixed.request('listAccounts'), is(401));
  });

  test('a disabled or deleted user, or a disabled account, is refused on the next call', async () => {
    const a = await signedClient('keydisabled');
    await admin.request('disableUser', { id: a.userId });
    await assert.rejects(a.client.request('listAccounts'), is(401));
    await admin.request('enableUser', { id: a.userId });
    await a.client.request('listAccounts');

    const b = await signedClient('keyacct');
    await admin.call('disableAccount', { id: b.accountId, lock: false });
    await assert.rejects(b.client.request('listAccounts'), is(401));

    // An account keeps at least one user: delete a second one.
    const c = await signedClient('keydeleted');
    const account = (await admin.request<any>('listAccounts', { id: c.accountId })).account[0];
    const second = (
      await admin.request<any>('createUser', {
        username: 'keydeleted-2',
        password: 'secret-pw',
        email: 'k2@example.com',
        firstname: 'k',
        lastname: '2',
        account: account.name,
        domainid: account.domainid,
      })
    ).user;
    const keys = (await admin.request<any>('registerUserKeys', { id: second.id })).userkeys;
    const doomed = new CloudStackClient({ url: server.api, apiKey: keys.apikey, secretKey: keys.secretkey });
    await doomed.request('listAccounts');
    await admin.request('deleteUser', { id: second.id });
    await assert.rejects(doomed.request('listAccounts'), is(401));
  });
});

describe('authorization across accounts', () => {
  test('a user sees only their own account, whatever they ask for', async () => {
    const plain = await u1.request<any>('listAccounts');
    const all = await u1.request<any>('listAccounts', { listall: true });
    const other = await u1.request<any>('listAccounts', { id: ids.u3 });
    assert.deepEqual(
      plain.account.map((a: any) => a.name),
      ['u1'],
    );
    assert.deepEqual(
      all.account.map((a: any) => a.name),
      ['u1'],
    );
    assert.deepEqual(other, {});
    assert.deepEqual(await u1.request('listUsers', { id: u3UserId }), {});
  });

  test("a user cannot touch another account's users or keys", async () => {
    await assert.rejects(u1.request('updateUser', { id: u3UserId, firstname: 'hacked' }), is(531));
    await assert.rejects(u1.request('registerUserKeys', { id: u3UserId }), is(531));
    await assert.rejects(u1.request('getUserKeys', { id: u3UserId }), is(531));
    await assert.rejects(
      u1.request('createTags', {
        resourcetype: 'Account',
        resourceids: ids.u3,
        tags: [{ key: 'a', value: 'b' }],
      }),
      is(531),
    );
    const u3Again = (await admin.request<any>('listUsers', { id: u3UserId })).user[0];
    assert.equal(u3Again.firstname, 'u3');
  });

  test('users cannot call admin commands (432)', async () => {
    await assert.rejects(
      u1.request('createAccount', {
        username: 'x',
        password: 'x',
        email: 'x@y',
        firstname: 'x',
        lastname: 'y',
        accounttype: 0,
      }),
      is(432),
    );
    await assert.rejects(u1.request('listDomains'), is(432));
    await assert.rejects(
      u1.request('updateConfiguration', { name: 'default.page.size', value: '5' }),
      is(432),
    );
    const apis = (await u1.request<any>('listApis')).api.map((a: any) => a.name);
    assert.ok(apis.includes('listAccounts'));
    assert.ok(!apis.includes('createAccount'));
  });

  test('a domain admin is confined to their subtree', async () => {
    const visible = (await dadmin.request<any>('listAccounts', { listall: true })).account
      .map((a: any) => a.name)
      .sort();
    assert.deepEqual(visible, ['dadmin', 'u1', 'u2']);
    const domains = (await dadmin.request<any>('listDomains', { listall: true })).domain
      .map((d: any) => d.path)
      .sort();
    assert.deepEqual(domains, ['ROOT/d1', 'ROOT/d1/sub']);
    await assert.rejects(dadmin.request('listAccounts', { domainid: ids.d2 }), is(531));
    await assert.rejects(dadmin.request('createDomain', { name: 'x', parentdomainid: ids.d2 }), is(531));
    await assert.rejects(
      dadmin.request('createAccount', {
        username: 'x',
        password: 'x',
        email: 'x@y.z',
        firstname: 'x',
        lastname: 'y',
        accounttype: 0,
        domainid: ids.d2,
      }),
      is(531),
    );
    await assert.rejects(dadmin.request('deleteAccount', { id: ids.u3 }), is(531));
    await assert.rejects(dadmin.request('updateUser', { id: u3UserId, firstname: 'x' }), is(531));
    // ...but manages what is below them.
    const made = await dadmin.request<any>('createAccount', {
      username: 'made',
      password: 'x',
      email: 'x@y.z',
      firstname: 'x',
      lastname: 'y',
      accounttype: 0,
      domainid: ids.sub,
    });
    assert.equal(made.account.domainpath, 'ROOT/d1/sub');
    const inSub = await dadmin.request<any>('listAccounts', { domainid: ids.sub });
    assert.deepEqual(inSub.account.map((a: any) => a.name).sort(), ['made', 'u2']);
    // A domain admin cannot mint a root admin.
    await assert.rejects(
      dadmin.request('createAccount', {
        username: 'root2',
        password: 'x',
        email: 'x@y.z',
        firstname: 'x',
        lastname: 'y',
        accounttype: 1,
      }),
      is(531),
    );
  });

  test('users see only their own jobs', async () => {
    const job = await u3.request<any>('createTags', {
      resourcetype: 'Account',
      resourceids: ids.u3,
      tags: [{ key: 'owner', value: 'u3' }],
    });
    await u3.waitForJob(job.jobid);
    await assert.rejects(u1.request('queryAsyncJobResult', { jobid: job.jobid }), is(431));
  });
});

describe('roles', () => {
  test('the four default roles exist', async () => {
    const roles = (await admin.request<any>('listRoles')).role.map((r: any) => `${r.name}:${r.type}`);
    assert.deepEqual(roles, [
      'Root Admin:Admin',
      'Resource Admin:ResourceAdmin',
      'Domain Admin:DomainAdmin',
      'User:User',
    ]);
  });

  test('a custom role with a deny rule takes the command away', async () => {
    const userRole = (await admin.request<any>('listRoles', { type: 'User' })).role[0];
    const role = (
      await admin.request<any>('createRole', {
        name: 'No Events',
        roleid: userRole.id,
        description: 'users without events',
      })
    ).role;
    assert.equal(role.type, 'User');
    const rule = (
      await admin.request<any>('createRolePermission', {
        roleid: role.id,
        rule: 'list*Events',
        permission: 'deny',
      })
    ).rolepermission;
    assert.equal(rule.rule, 'list*Events');
    await admin.request('createAccount', {
      username: 'noevents',
      password: 'pw',
      email: 'n@e.x',
      firstname: 'n',
      lastname: 'e',
      roleid: role.id,
    });
    const client = await CloudStackClient.login(server.api, 'noevents', 'pw');
    await assert.rejects(client.request('listEvents'), is(432));
    const apis = (await client.request<any>('listApis')).api.map((a: any) => a.name);
    assert.ok(!apis.includes('listEvents'));
    await admin.request('updateRolePermission', { roleid: role.id, ruleid: rule.id, permission: 'allow' });
    await client.request('listEvents');
    const rules = await admin.request<any>('listRolePermissions', { roleid: role.id });
    assert.equal(rules.rolepermission[0].permission, 'allow');
    await assert.rejects(admin.request('deleteRole', { id: role.id }), is(536));
  });

  test('default roles cannot be deleted or renamed; bad types are refused', async () => {
    const userRole = (await admin.request<any>('listRoles', { type: 'User' })).role[0];
    await assert.rejects(admin.request('deleteRole', { id: userRole.id }), is(431));
    await assert.rejects(admin.request('updateRole', { id: userRole.id, name: 'x' }), is(431));
    await assert.rejects(admin.request('createRole', { name: 'bad', type: 'Wizard' }), is(431));
    await assert.rejects(
      admin.request('createRolePermission', { roleid: userRole.id, rule: 'list Zones', permission: 'allow' }),
      is(431),
    );
    await assert.rejects(
      admin.request('createRolePermission', { roleid: userRole.id, rule: 'listZones', permission: 'maybe' }),
      is(431),
    );
  });
});
