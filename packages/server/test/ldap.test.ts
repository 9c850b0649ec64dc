/**
 * LDAP without a directory server: the filters sent to it, the refusals answered before or
 * instead of reaching one (as upstream answers them), and what listLdapConfigurations tells the
 * upstream UI after login. Sign-in and the commands against a real slapd: ldap-slapd.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import {
  adGroupMembersFilter,
  escapeFilterValue,
  groupSearchFilter,
  type LdapSettings,
  ouPath,
  userSearchFilter,
} from '../src/ldap/directory.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const openldap: LdapSettings = {
  provider: 'openldap',
  baseDn: 'dc=example,dc=org',
  bindPrincipal: '',
  bindPassword: '',
  usernameAttribute: 'uid',
  emailAttribute: 'mail',
  firstnameAttribute: 'givenname',
  lastnameAttribute: 'sn',
  userObject: 'inetOrgPerson',
  memberOfAttribute: 'memberof',
  nestedGroups: true,
  groupObject: 'groupOfUniqueNames',
  groupMemberAttribute: 'uniquemember',
  searchGroupPrinciple: '',
  pageSize: 1000,
  timeoutMs: 1000,
  trustStore: '',
};

const is = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.errortext, text);
  return true;
};

describe('filters', () => {
  test('values are escaped as RFC 4515 says', () => {
    assert.equal(escapeFilterValue('a*b(c)d\\e\0'), 'a\\2ab\\28c\\29d\\5ce\\00');
  });

  test('a login name cannot widen the search (no wildcard or filter injection)', () => {
    const f = userSearchFilter(openldap, { username: '*)(uid=*' });
    assert.equal(f, '(&(objectClass=inetOrgPerson)(uid=\\2a\\29\\28uid=\\2a))');
  });

  test('every user, one user, a name containing text', () => {
    assert.equal(userSearchFilter(openldap, {}), '(&(objectClass=inetOrgPerson)(uid=*))');
    assert.equal(userSearchFilter(openldap, { username: 'ann' }), '(&(objectClass=inetOrgPerson)(uid=ann))');
    assert.equal(
      userSearchFilter(openldap, { username: 'an', contains: true }),
      '(&(objectClass=inetOrgPerson)(uid=*an*))',
    );
  });

  test('linked groups, a linked group and the search group principle are all required', () => {
    const s = { ...openldap, searchGroupPrinciple: 'cn=staff,dc=example,dc=org' };
    assert.equal(
      userSearchFilter(s, {
        username: 'ann',
        anyOfGroups: ['cn=dev,dc=example,dc=org', 'cn=ops,dc=example,dc=org'],
        group: 'cn=dev,dc=example,dc=org',
      }),
      '(&(objectClass=inetOrgPerson)(uid=ann)(|(memberof=cn=dev,dc=example,dc=org)(memberof=cn=ops,dc=example,dc=org))(memberof=cn=dev,dc=example,dc=org)(memberof=cn=staff,dc=example,dc=org))',
    );
  });

  test('Active Directory: nested membership by the in-chain rule, computers left out', () => {
    const ad: LdapSettings = {
      ...openldap,
      provider: 'microsoftad',
      usernameAttribute: 'sAMAccountName',
      userObject: 'user',
    };
    assert.equal(
      userSearchFilter(ad, { username: 'ann', group: 'CN=Dev,DC=ad,DC=example' }),
      '(&(objectClass=user)(!(objectClass=computer))(sAMAccountName=ann)(memberof:1.2.840.113556.1.4.1941:=CN=Dev,DC=ad,DC=example))',
    );
    assert.match(
      userSearchFilter({ ...ad, nestedGroups: false }, { group: 'CN=Dev' }),
      /\(memberof=CN=Dev\)\)$/,
    );
  });

  test('Active Directory: a group’s members by memberOf, as upstream imports them', () => {
    const ad: LdapSettings = { ...openldap, provider: 'microsoftad', userObject: 'user', baseDn: 'DC=ad' };
    assert.equal(
      adGroupMembersFilter(ad, 'devs'),
      '(&(objectClass=user)(memberof:1.2.840.113556.1.4.1941:=cn=devs,DC=ad))',
    );
  });

  test('a group by common name', () => {
    assert.equal(
      groupSearchFilter(openldap, 'dev(s)'),
      '(&(objectClass=groupOfUniqueNames)(cn=dev\\28s\\29))',
    );
  });

  test("a user's OU path below the base DN", () => {
    assert.equal(ouPath('uid=ann,ou=eng,ou=lab,dc=example,dc=org', 'dc=example,dc=org'), 'eng,lab');
    assert.equal(ouPath('uid=bob,dc=example,dc=org', 'dc=example,dc=org'), '');
    assert.equal(ouPath('cn=A\\, B,ou=people,dc=example,dc=org', 'dc=example,dc=org'), 'people');
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('commands without a directory server', () => {
  let server: TestServer;
  let admin: CloudStackClient;
  let user: CloudStackClient;

  before(async () => {
    server = await startServer();
    admin = server.admin;
    ({ client: user } = await createAccountAndLogin(server, { name: 'plain' }));
  });
  after(async () => {
    await server?.stop();
  });

  // Upstream's serializer writes an empty list as {} (no count); the UI reads `count > 0` as "LDAP on".
  test('listLdapConfigurations answers a user right after login as upstream does: an empty list', async () => {
    const session = user.sessionCredentials!;
    const query = new URLSearchParams({
      command: 'listLdapConfigurations',
      response: 'json',
      sessionkey: session.sessionKey,
    });
    const res = await fetch(`${server.api}?${query}`, { headers: { cookie: session.cookie } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ldapconfigurationresponse: {} });
  });

  test('addLdapConfiguration: an unreachable server is refused and nothing is stored', async () => {
    const port = await closedPort();
    await assert.rejects(
      admin.request('addLdapConfiguration', { hostname: '127.0.0.1', port }),
      is(431, /^Unable to bind to the given LDAP server$/),
    );
    const list = await admin.request<any>('listLdapConfigurations', { listall: true });
    assert.equal(list.count ?? 0, 0);
  });

  test('addLdapConfiguration: a truststore that cannot be read is named as upstream names it', async () => {
    await admin.request('updateConfiguration', { name: 'ldap.truststore', value: '/nonexistent/ca.pem' });
    try {
      await assert.rejects(
        admin.request('addLdapConfiguration', { hostname: '127.0.0.1', port: await closedPort() }),
        is(431, /^Invalid truststore or truststore password$/),
      );
    } finally {
      await admin.request('updateConfiguration', { name: 'ldap.truststore', value: '' });
    }
  });

  test('addLdapConfiguration is for administrators only', async () => {
    await assert.rejects(user.request('addLdapConfiguration', { hostname: 'h', port: 389 }), is(432));
  });

  test('deleteLdapConfiguration needs an id or a host name, and names what it cannot find', async () => {
    await assert.rejects(
      admin.request('deleteLdapConfiguration', {}),
      is(431, /^Either id or hostname must be specified$/),
    );
    await assert.rejects(
      admin.request('deleteLdapConfiguration', { hostname: 'nowhere.example' }),
      is(431, /^Cannot find configuration with hostname nowhere.example$/),
    );
    await assert.rejects(
      admin.request('deleteLdapConfiguration', { id: '6d3b6ac9-2a43-4d7e-9d4c-1c1e7c0f5b11' }),
      is(431, /Invalid parameter id value=6d3b6ac9-2a43-4d7e-9d4c-1c1e7c0f5b11/),
    );
  });

  test('the bind password is stored encrypted and never shown', async () => {
    await admin.request('updateConfiguration', { name: 'ldap.bind.password', value: 'Sup3r-secret' });
    const shown = await admin.request<any>('listConfigurations', { name: 'ldap.bind.password' });
    assert.equal(shown.configuration[0].value, '********');
    assert.equal(shown.configuration[0].category, 'Secure');
    const events = await admin.request<any>('listEvents', {
      type: 'CONFIGURATION.VALUE.EDIT',
      listall: true,
    });
    assert.ok(!JSON.stringify(events).includes('Sup3r-secret'));
    const { openStore } = await import('../src/db/connection.ts');
    const store = await openStore(server.databaseUrl);
    try {
      const row = await store.db
        .selectFrom('configuration')
        .select('value')
        .where('name', '=', 'ldap.bind.password')
        .executeTakeFirstOrThrow();
      assert.match(row.value ?? '', /^v1:/);
      assert.ok(!(row.value ?? '').includes('Sup3r-secret'));
    } finally {
      await store.close();
    }
    await admin.request('updateConfiguration', { name: 'ldap.bind.password', value: '' });
  });

  test('ldapConfig (deprecated): hostname and port needed, an unreachable server changes nothing', async () => {
    await assert.rejects(
      admin.request('ldapConfig', { searchbase: 'dc=x' }),
      is(431, /^You need to provide hostname, port to configure your LDAP server$/),
    );
    await assert.rejects(
      admin.request('ldapConfig', { hostname: '127.0.0.1', port: await closedPort(), searchbase: 'dc=x' }),
      is(431, /^Unable to bind to the given LDAP server$/),
    );
    const basedn = await admin.request<any>('listConfigurations', { name: 'ldap.basedn' });
    assert.equal(basedn.configuration[0].value, '');
    const listed = await admin.request<any>('ldapConfig', { listall: true });
    assert.deepEqual(listed, {});
  });

  test('listLdapUsers and searchLdap with no directory server: empty lists, as upstream', async () => {
    assert.deepEqual(await admin.request<any>('listLdapUsers', { listtype: 'new' }), {});
    assert.deepEqual(await admin.request<any>('searchLdap', { query: 'a' }), {});
    await assert.rejects(
      admin.request('ldapCreateAccount', { username: 'ann', accounttype: 0 }),
      is(534, /^No LDAP user exists with the username of ann$/),
    );
  });

  test('links: refusals as upstream, and they go with their domain or account', async () => {
    const link = (params: Record<string, string | number>) => admin.request<any>('linkDomainToLdap', params);
    const d = (await admin.request<any>('createDomain', { name: 'linked' })).domain;
    const group = 'cn=devs,ou=groups,dc=example,dc=org';
    await assert.rejects(
      link({ domainid: d.id, type: 'GROUP', ldapdomain: group, accounttype: 0 }),
      is(431, /unless a basedn \(null\) is configured/),
    );
    await admin.request('updateConfiguration', { name: 'ldap.basedn', value: 'dc=example,dc=org' });
    try {
      await assert.rejects(
        link({ domainid: d.id, type: 'GROUP', accounttype: 0 }),
        is(431, /^ldapDomain cannot be empty, please supply a GROUP or OU name$/),
      );
      await assert.rejects(
        link({ domainid: d.id, type: 'GROUP', ldapdomain: group, accounttype: 1 }),
        is(431, /^accountype should be either 0\(normal user\) or 2\(domain admin\)$/),
      );
      await assert.rejects(
        link({ domainid: d.id, type: 'TEAM', ldapdomain: group, accounttype: 0 }),
        is(431, /GROUP or OU/),
      );
      await assert.rejects(
        admin.request('linkAccountToLdap', { domainid: d.id, account: 'a', ldapdomain: group }),
        is(431, /^Either account type or role ID must be given$/),
      );
      // A domain admin links only within their own domain.
      const other = (await admin.request<any>('createDomain', { name: 'other' })).domain;
      const { client: otherAdmin } = await createAccountAndLogin(server, {
        name: 'otheradmin',
        accounttype: 2,
        domainid: other.id,
        domainPath: '/other',
      });
      await assert.rejects(
        otherAdmin.request('linkAccountToLdap', {
          domainid: d.id,
          account: 'a',
          ldapdomain: group,
          accounttype: 0,
        }),
        is(531),
      );

      const linked = await link({ domainid: d.id, type: 'group', ldapdomain: group, accounttype: 0 });
      assert.equal(linked.LinkDomainToLdap.type, 'GROUP');
      const d2 = (await admin.request<any>('createDomain', { name: 'accounts-linked' })).domain;
      const acc = await admin.request<any>('linkAccountToLdap', {
        domainid: d2.id,
        account: 'team',
        ldapdomain: group,
        accounttype: 0,
      });
      const { openStore } = await import('../src/db/connection.ts');
      const store = await openStore(server.databaseUrl);
      const links = () => store.db.selectFrom('ldap_links').select('name').execute();
      try {
        assert.equal((await links()).length, 2);
        await admin.call('deleteAccount', { id: acc.linkAccountToLdap.accountid });
        assert.equal((await links()).length, 1);
        await admin.call('deleteDomain', { id: d.id, cleanup: true });
        assert.equal((await links()).length, 0);
      } finally {
        await store.close();
      }
    } finally {
      await admin.request('updateConfiguration', { name: 'ldap.basedn', value: '' });
    }
  });

  test('ldap settings carry upstream names and defaults', async () => {
    const all = await admin.request<any>('listConfigurations', { name: 'ldap.', pagesize: -1 });
    const byName = new Map<string, any>(all.configuration.map((c: any) => [c.name, c]));
    const expect: Record<string, string> = {
      'ldap.username.attribute': 'uid',
      'ldap.email.attribute': 'mail',
      'ldap.firstname.attribute': 'givenname',
      'ldap.lastname.attribute': 'sn',
      'ldap.user.object': 'inetOrgPerson',
      'ldap.group.object': 'groupOfUniqueNames',
      'ldap.group.user.uniquemember': 'uniquemember',
      'ldap.user.memberof.attribute': 'memberof',
      'ldap.provider': 'openldap',
      'ldap.read.timeout': '1000',
      'ldap.request.page.size': '1000',
      'ldap.nested.groups.enable': 'true',
    };
    for (const [name, value] of Object.entries(expect))
      assert.equal(byName.get(name)?.defaultvalue, value, name);
    for (const name of [
      'ldap.basedn',
      'ldap.bind.principal',
      'ldap.bind.password',
      'ldap.search.group.principle',
    ])
      assert.ok(byName.has(name), name);
    await assert.rejects(
      admin.request('updateConfiguration', { name: 'ldap.provider', value: 'novell' }),
      is(431),
    );
  });
});
