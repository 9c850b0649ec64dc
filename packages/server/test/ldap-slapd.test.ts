/**
 * LDAP against a real OpenLDAP slapd (test/slapd.ts) that this suite starts on loopback ports and
 * stops at the end: the LDAP commands, sign-in of LDAP users (right and wrong passwords, the
 * lockout), users created on first sign-in in domains linked to a group, an OU, or accounts
 * linked to groups, imports, and LDAPS with the CA checked. `npm run test:ldap`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { canBind, type LdapSettings } from '../src/ldap/directory.ts';
import { startServer, type TestServer } from './harness.ts';
import { BASE_DN, SERVICE_DN, SERVICE_PASSWORD, type Slapd, startSlapd } from './slapd.ts';

/** Runs under `npm run test:ldap` (NIMBOSTACK_TEST_LDAP=1, failing loudly without slapd), not in `npm test`. */
const SKIP =
  process.env.NIMBOSTACK_TEST_LDAP === '1' ? false : 'real slapd suite: run it with npm run test:ldap';

let slapd: Slapd;
let server: TestServer;
let admin: CloudStackClient;

const is = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.errortext, text);
  return true;
};

const setting = (name: string, value: string, scope: Record<string, string> = {}) =>
  admin.request('updateConfiguration', { name, value, ...scope });

const login = (username: string, password: string, domain = '/') =>
  CloudStackClient.login(server.api, username, password, domain);

async function createDomain(name: string): Promise<{ id: string; path: string }> {
  const r = await admin.request<any>('createDomain', { name });
  return { id: r.domain.id, path: `/${name}` };
}

async function usersNamed(username: string, domainid?: string): Promise<any[]> {
  const r = await admin.request<any>('listUsers', {
    username,
    listall: true,
    ...(domainid ? { domainid } : {}),
  });
  return r.user ?? [];
}

before(async () => {
  if (SKIP) return;
  slapd = await startSlapd();
  server = await startServer();
  admin = server.admin;
  await setting('ldap.basedn', BASE_DN);
  await setting('ldap.bind.principal', SERVICE_DN);
  await setting('ldap.bind.password', SERVICE_PASSWORD);
});

after(async () => {
  await server?.stop();
  await slapd?.stop();
});

describe('directory servers', { skip: SKIP }, () => {
  test('a server that refuses the service bind is not added', async () => {
    await setting('ldap.bind.password', 'wrong');
    try {
      await assert.rejects(
        admin.request('addLdapConfiguration', { hostname: '127.0.0.1', port: slapd.port }),
        is(431, /^Unable to bind to the given LDAP server$/),
      );
    } finally {
      await setting('ldap.bind.password', SERVICE_PASSWORD);
    }
  });

  test('addLdapConfiguration, duplicates refused, listed for admins with host and port only', async () => {
    const added = await admin.request<any>('addLdapConfiguration', {
      hostname: '127.0.0.1',
      port: slapd.port,
    });
    const cfg = added.LdapAddConfiguration;
    assert.equal(cfg.hostname, '127.0.0.1');
    assert.equal(cfg.port, slapd.port);
    assert.match(cfg.id, /^[0-9a-f-]{36}$/);
    await assert.rejects(
      admin.request('addLdapConfiguration', { hostname: '127.0.0.1', port: slapd.port }),
      is(431, /^Duplicate configuration$/),
    );
    const listed = await admin.request<any>('listLdapConfigurations', {});
    assert.equal(listed.count, 1);
    assert.deepEqual(listed.LdapConfiguration[0], { id: cfg.id, hostname: '127.0.0.1', port: slapd.port });
    await admin.request('createAccount', {
      username: 'viewer',
      password: 'viewer-pw',
      email: 'v@example.org',
      firstname: 'V',
      lastname: 'W',
      accounttype: 0,
    });
    const user = await login('viewer', 'viewer-pw');
    const seen = await user.request<any>('listLdapConfigurations', {});
    assert.equal(seen.count, 1);
    assert.deepEqual(seen.LdapConfiguration[0], { id: cfg.id });
  });

  test('deleteLdapConfiguration by host and port, then added again', async () => {
    const removed = await admin.request<any>('deleteLdapConfiguration', {
      hostname: '127.0.0.1',
      port: slapd.port,
    });
    assert.equal(removed.LdapDeleteConfiguration.port, slapd.port);
    assert.equal((await admin.request<any>('listLdapConfigurations', {})).count ?? 0, 0);
    await admin.request('addLdapConfiguration', { hostname: '127.0.0.1', port: slapd.port });
  });
});

describe('listing and searching', { skip: SKIP }, () => {
  test('listLdapUsers: every user, with name, e-mail, DN and OU', async () => {
    const r = await admin.request<any>('listLdapUsers', {});
    assert.deepEqual(
      r.LdapUser.map((u: any) => u.username),
      ['alice', 'bob', 'carol', 'erin'],
    );
    const alice = r.LdapUser[0];
    assert.equal(alice.firstname, 'Alice');
    assert.equal(alice.lastname, 'Liddell');
    assert.equal(alice.email, 'alice@example.org');
    assert.equal(alice.principal, `uid=alice,ou=people,${BASE_DN}`);
    assert.equal(alice.domain, 'people');
    assert.equal(alice.conflictingusersource, '');
    assert.equal(r.LdapUser[3].domain, 'contractors');
  });

  test('listLdapUsers: an unknown user filter is refused as upstream refuses it', async () => {
    await assert.rejects(
      admin.request('listLdapUsers', { userfilter: 'Everything' }),
      is(431, /Everything is not a legal 'UserFilter' value/),
    );
  });

  test('searchLdap: names containing the query; filter characters match literally', async () => {
    // searchLdap and importLdapUsers name their objects LdapUser, as upstream does.
    const r = await admin.request<any>('searchLdap', { query: 'aro' });
    assert.deepEqual(
      r.LdapUser.map((u: any) => u.username),
      ['carol'],
    );
    const star = await admin.request<any>('searchLdap', { query: '*' });
    assert.equal(star.count ?? 0, 0);
  });

  test('ldap.search.group.principle keeps out users outside that group', async () => {
    await setting('ldap.search.group.principle', `cn=ops,ou=groups,${BASE_DN}`);
    try {
      const r = await admin.request<any>('listLdapUsers', {});
      assert.deepEqual(
        r.LdapUser.map((u: any) => u.username),
        ['bob', 'carol'],
      );
    } finally {
      await setting('ldap.search.group.principle', '');
    }
  });
});

describe('sign-in of LDAP users', { skip: SKIP }, () => {
  test('ldapCreateAccount makes an LDAP user who signs in with the directory password only', async () => {
    const r = await admin.request<any>('ldapCreateAccount', { username: 'alice', accounttype: 0 });
    assert.equal(r.account.name, 'alice');
    assert.equal(r.account.user[0].usersource, 'ldap');
    assert.equal(r.account.user[0].email, 'alice@example.org');
    const alice = await login('alice', 'alice-pw');
    const me = await alice.request<any>('listUsers', {});
    assert.equal(me.user[0].username, 'alice');
    await assert.rejects(login('alice', 'wrong'), is(531, /Failed to authenticate user/));
    await assert.rejects(login('alice', ''), is(431, /missing parameter password/));
  });

  test('sign-in time: an LDAP user (search and bind) against a local user (scrypt)', async (t) => {
    const median = async (username: string, password: string) => {
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const t0 = performance.now();
        await login(username, password);
        times.push(performance.now() - t0);
      }
      return times.sort((a, b) => a - b)[7];
    };
    const ldap = await median('alice', 'alice-pw');
    const local = await median('viewer', 'viewer-pw');
    t.diagnostic(`median login: LDAP ${ldap.toFixed(1)} ms, local ${local.toFixed(1)} ms`);
    assert.ok(ldap < 1000, `LDAP sign-in took ${ldap} ms`);
  });

  test('ldapCreateAccount: a name the directory does not have is answered 534', async () => {
    await assert.rejects(
      admin.request('ldapCreateAccount', { username: 'mallory', accounttype: 0 }),
      is(534, /^No LDAP user exists with the username of mallory$/),
    );
    await assert.rejects(
      admin.request('ldapCreateAccount', { username: 'alice' }),
      is(431, /^Both account type and role ID are not provided$/),
    );
  });

  test('an empty password never binds (LDAP would take it as an anonymous bind)', async () => {
    const s = { ...ldapTestSettings(), trustStore: '' };
    const servers = [{ hostname: '127.0.0.1', port: slapd.port }];
    assert.equal(await canBind(s, servers, `uid=alice,ou=people,${BASE_DN}`, ''), false);
    assert.equal(await canBind(s, servers, `uid=alice,ou=people,${BASE_DN}`, 'alice-pw'), true);
  });

  test('wrong directory passwords count towards the lockout', async () => {
    await admin.request('ldapCreateAccount', { username: 'bob', accounttype: 0 });
    await setting('incorrect.login.attempts.allowed', '2');
    try {
      await assert.rejects(login('bob', 'nope'), is(531));
      await assert.rejects(login('bob', 'nope'), is(531));
      const [bob] = await usersNamed('bob');
      assert.equal(bob.state, 'disabled');
      await assert.rejects(login('bob', 'bob-pw'), is(531));
    } finally {
      await setting('incorrect.login.attempts.allowed', '5');
    }
  });

  test('local users keep signing in with their own password', async () => {
    const again = await login('admin', 'password');
    assert.ok(again.loginResponse);
  });

  test('listLdapUsers listtype=new leaves out the users already imported here', async () => {
    const all = await admin.request<any>('listLdapUsers', { listtype: 'all' });
    const alice = all.LdapUser.find((u: any) => u.username === 'alice');
    assert.equal(alice.conflictingusersource, 'ldap');
    const fresh = await admin.request<any>('listLdapUsers', { listtype: 'new' });
    assert.deepEqual(
      fresh.LdapUser.map((u: any) => u.username),
      ['carol', 'erin'],
    );
  });
});

function ldapTestSettings(): LdapSettings {
  return {
    provider: 'openldap',
    baseDn: BASE_DN,
    bindPrincipal: SERVICE_DN,
    bindPassword: SERVICE_PASSWORD,
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
    pageSize: 2,
    timeoutMs: 2000,
    trustStore: '',
  };
}

describe('domains linked to LDAP', { skip: SKIP }, () => {
  test('a domain linked to a group: members get an account on first sign-in, others are refused', async () => {
    const d = await createDomain('devs');
    const linked = await admin.request<any>('linkDomainToLdap', {
      domainid: d.id,
      type: 'GROUP',
      ldapdomain: `cn=devs,ou=groups,${BASE_DN}`,
      accounttype: 2,
    });
    assert.deepEqual(linked.LinkDomainToLdap, {
      domainid: d.id,
      type: 'GROUP',
      ldapdomain: `cn=devs,ou=groups,${BASE_DN}`,
      name: `cn=devs,ou=groups,${BASE_DN}`,
      accounttype: 2,
    });
    assert.equal((await usersNamed('alice', d.id)).length, 0);
    const alice = await login('alice', 'alice-pw', d.path);
    assert.equal(alice.loginResponse?.type, '2');
    const [created] = await usersNamed('alice', d.id);
    assert.equal(created.usersource, 'ldap');
    assert.equal(created.account, 'alice');
    assert.equal(created.firstname, 'Alice');
    // Second sign-in: the same user, no second account.
    await login('alice', 'alice-pw', d.path);
    assert.equal((await usersNamed('alice', d.id)).length, 1);
    // carol is not in devs; a wrong password makes nobody.
    await assert.rejects(login('carol', 'carol-pw', d.path), is(531));
    await assert.rejects(login('bob', 'wrong', d.path), is(531));
    assert.equal((await usersNamed('carol', d.id)).length, 0);
    assert.equal((await usersNamed('bob', d.id)).length, 0);
    // Directory names match without regard to case; users get the directory's spelling, once.
    await login('ALICE', 'alice-pw', d.path);
    await login('Bob', 'bob-pw', d.path);
    await login('bob', 'bob-pw', d.path);
    assert.equal((await usersNamed('alice', d.id)).length, 1);
    assert.deepEqual(
      (await usersNamed('bob', d.id)).map((u) => u.username),
      ['bob'],
    );
    await assert.rejects(
      admin.request('linkDomainToLdap', {
        domainid: d.id,
        type: 'GROUP',
        ldapdomain: `cn=ops,ou=groups,${BASE_DN}`,
        accounttype: 0,
      }),
      is(431),
    );
  });

  test('a domain linked to an OU: entries under it sign in', async () => {
    const d = await createDomain('contractors');
    await admin.request('linkDomainToLdap', {
      domainid: d.id,
      type: 'OU',
      name: `ou=contractors,${BASE_DN}`,
      accounttype: 0,
    });
    const erin = await login('erin', 'erin-pw', d.path);
    assert.equal(erin.loginResponse?.type, '0');
    await assert.rejects(login('carol', 'carol-pw', d.path), is(531));
    // Two-factor authentication applies to LDAP users as to any: mandated here, owed after the bind.
    await setting('enable.user.2fa', 'true', { domainid: d.id });
    await setting('mandate.user.2fa', 'true', { domainid: d.id });
    const owing = await login('erin', 'erin-pw', d.path);
    assert.equal(owing.loginResponse?.is2faenabled, 'true');
    await assert.rejects(owing.request('listUsers', {}), is(511));
    await setting('mandate.user.2fa', '', { domainid: d.id });
    await setting('enable.user.2fa', '', { domainid: d.id });
  });

  test('accounts linked to groups: members join their group’s account; a member of two is refused', async () => {
    const d = await createDomain('teams');
    const dev = await admin.request<any>('linkAccountToLdap', {
      domainid: d.id,
      account: 'devteam',
      ldapdomain: `cn=devs,ou=groups,${BASE_DN}`,
      accounttype: 0,
    });
    assert.match(dev.linkAccountToLdap.accountid, /^[0-9a-f-]{36}$/);
    await admin.request('linkAccountToLdap', {
      domainid: d.id,
      account: 'opsteam',
      ldapdomain: `cn=ops,ou=groups,${BASE_DN}`,
      type: 'GROUP',
      accounttype: 2,
    });
    await login('alice', 'alice-pw', d.path);
    await login('carol', 'carol-pw', d.path);
    assert.equal((await usersNamed('alice', d.id))[0].account, 'devteam');
    assert.equal((await usersNamed('carol', d.id))[0].account, 'opsteam');
    await assert.rejects(login('bob', 'bob-pw', d.path), is(531));
    assert.equal((await usersNamed('bob', d.id)).length, 0);
    // A group already linked to one account cannot be linked to another (upstream's 530).
    await assert.rejects(
      admin.request('linkAccountToLdap', {
        domainid: d.id,
        account: 'other',
        ldapdomain: `cn=ops,ou=groups,${BASE_DN}`,
        accounttype: 0,
      }),
      is(530, /is mapped to another account/),
    );
  });

  test('linking needs a base DN', async () => {
    const d = await createDomain('nobase');
    await setting('ldap.basedn', '', {});
    try {
      await assert.rejects(
        admin.request('linkDomainToLdap', {
          domainid: d.id,
          type: 'GROUP',
          ldapdomain: 'cn=x',
          accounttype: 0,
        }),
        is(431, /unless a basedn/),
      );
    } finally {
      await setting('ldap.basedn', BASE_DN);
    }
  });
});

describe('import', { skip: SKIP }, () => {
  test('importLdapUsers of a group into a domain', async () => {
    const d = await createDomain('imported');
    const r = await admin.request<any>('importLdapUsers', { domainid: d.id, group: 'ops', accounttype: 0 });
    assert.deepEqual(
      r.LdapUser.map((u: any) => u.username),
      ['bob', 'carol'],
    );
    const [carol] = await usersNamed('carol', d.id);
    assert.equal(carol.usersource, 'ldap');
    assert.equal(carol.account, 'carol');
    await login('carol', 'carol-pw', d.path);
  });

  test('importLdapUsers without a domain: a domain named after the group, into one account', async () => {
    const r = await admin.request<any>('importLdapUsers', {
      group: 'ops',
      account: 'ops-team',
      accounttype: 0,
    });
    assert.equal(r.count, 2);
    const domains = await admin.request<any>('listDomains', { name: 'ops', listall: true });
    const groupDomain = domains.domain.find((x: any) => x.path === 'ROOT/ops');
    assert.ok(groupDomain);
    const users = await admin.request<any>('listUsers', { domainid: groupDomain.id, account: 'ops-team' });
    assert.deepEqual(users.user.map((u: any) => u.username).sort(), ['bob', 'carol']);
    // Imported again: the same users are refreshed, not duplicated.
    await admin.request('importLdapUsers', { group: 'ops', account: 'ops-team', accounttype: 0 });
    const again = await admin.request<any>('listUsers', { domainid: groupDomain.id, account: 'ops-team' });
    assert.equal(again.count, 2);
  });
});

describe('LDAPS', { skip: SKIP }, () => {
  test('over TLS with the CA of ldap.truststore; a server the CA did not sign is refused', async () => {
    const d = await createDomain('secure');
    const scope = { domainid: d.id };
    await setting('ldap.truststore', slapd.otherCaFile, scope);
    await assert.rejects(
      admin.request('addLdapConfiguration', { hostname: '127.0.0.1', port: slapd.tlsPort, domainid: d.id }),
      is(431, /^Unable to bind to the given LDAP server$/),
    );
    await setting('ldap.truststore', slapd.caFile, scope);
    await admin.request('addLdapConfiguration', {
      hostname: '127.0.0.1',
      port: slapd.tlsPort,
      domainid: d.id,
    });
    await admin.request('linkDomainToLdap', {
      domainid: d.id,
      type: 'OU',
      ldapdomain: `ou=people,${BASE_DN}`,
      accounttype: 0,
    });
    const carol = await login('carol', 'carol-pw', d.path);
    assert.equal(carol.loginResponse?.username, 'carol');
    await assert.rejects(login('carol', 'nope', d.path), is(531));
    const listed = await admin.request<any>('listLdapConfigurations', { domainid: d.id });
    assert.equal(listed.LdapConfiguration[0].port, slapd.tlsPort);
  });
});

describe('the deprecated one-call setup', { skip: SKIP }, () => {
  test('ldapConfig sets the global settings and adds a server; listall lists; ldapRemove removes', async () => {
    const r = await admin.request<any>('ldapConfig', {
      hostname: 'localhost',
      port: slapd.port,
      binddn: SERVICE_DN,
      bindpass: SERVICE_PASSWORD,
      searchbase: BASE_DN,
    });
    assert.deepEqual(r.ldapconfig, {
      hostname: 'localhost',
      port: String(slapd.port),
      ssl: 'false',
      searchbase: BASE_DN,
      binddn: SERVICE_DN,
    });
    const listed = await admin.request<any>('ldapConfig', { listall: true });
    assert.deepEqual(
      listed.ldapconfig.map((c: any) => c.hostname),
      ['127.0.0.1', 'localhost'],
    );
    assert.equal(listed.ldapconfig[1].binddn, SERVICE_DN);
    // Users still sign in through the servers it set up.
    await login('alice', 'alice-pw');
    await assert.rejects(
      admin.request('ldapConfig', {
        hostname: 'localhost',
        port: slapd.port,
        binddn: SERVICE_DN,
        bindpass: 'bad',
      }),
      is(431),
    );
    const removed = await admin.request<any>('ldapRemove', {});
    assert.deepEqual(removed, { ldapremove: {} });
    assert.equal((await admin.request<any>('listLdapConfigurations', {})).count ?? 0, 0);
    // The domain's own LDAPS server stays.
    assert.equal((await admin.request<any>('listLdapConfigurations', { listall: true })).count, 1);
  });
});
