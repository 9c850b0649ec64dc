/**
 * Sign-in security against the real server: failed-login lockout, session renewal, expiry and
 * the session-key (CSRF) rule, logout on password change, password policies and two-factor
 * authentication (TOTP and static PIN). The TOTP and policy logic also have unit tests here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient as Client, type CloudStackClient } from '@nimbostack/client';
import { openStore, type Store } from '../src/db/connection.ts';
import { checkPasswordPolicy } from '../src/iam/password-policy.ts';
import { base32Decode, base32Encode, hotp, matchTotp, newTotpSecret, totp } from '../src/iam/totp.ts';
import type { SettingDef } from '../src/settings/settings.ts';
import { createAccountAndLogin, keyClient, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let admin: CloudStackClient;
let store: Store;

const is = (code: number, text?: RegExp) => (e: any) => {
  assert.equal(e.errorcode, code, e.message);
  if (text) assert.match(e.errortext, text);
  return true;
};

async function setting(name: string, value: string, scope: Record<string, string> = {}): Promise<void> {
  await admin.request('updateConfiguration', { name, value, ...scope });
}

interface RawSession {
  status: number;
  login: any;
  jsession: string;
  keyCookie: string;
}

/** A login by hand, to see cookies and to send requests with exactly the credentials a test wants. */
async function rawLogin(username: string, password: string, cookie?: string): Promise<RawSession> {
  const res = await fetch(server.api, {
    method: 'POST',
    headers: cookie ? { cookie } : {},
    body: new URLSearchParams({ command: 'login', username, password, response: 'json' }),
  });
  const login = ((await res.json()) as any).loginresponse;
  const cookies = res.headers.getSetCookie().map((c) => c.split(';')[0]);
  return {
    status: res.status,
    login,
    jsession: cookies.find((c) => c.startsWith('JSESSIONID=')) ?? '',
    keyCookie: cookies.find((c) => c.startsWith('sessionkey=')) ?? '',
  };
}

async function call(
  params: Record<string, string>,
  cookie: string,
  method: 'GET' | 'POST' = 'POST',
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const form = new URLSearchParams({ response: 'json', ...params });
  const headers = { cookie, ...extraHeaders };
  const res =
    method === 'POST'
      ? await fetch(server.api, { method, headers, body: form })
      : await fetch(`${server.api}?${form}`, { headers });
  const json = (await res.json()) as Record<string, any>;
  return { status: res.status, body: Object.values(json)[0] };
}

async function userRow(username: string) {
  return store.db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirstOrThrow();
}

before(async () => {
  server = await startServer();
  admin = server.admin;
  store = openStore(server.databaseUrl);
});
after(async () => {
  await store.close();
  await server.stop();
});

describe('failed-login lockout', () => {
  test('N consecutive failures disable the user, with an event and an alert; a success resets the count', async () => {
    await setting('incorrect.login.attempts.allowed', '3');
    const { userId, client: earlier } = await createAccountAndLogin(server, { name: 'lockme' });
    for (let i = 0; i < 2; i++) await assert.rejects(Client.login(server.api, 'lockme', 'wrong'), is(531));
    assert.equal((await userRow('lockme')).login_attempts, 2);
    // A success before the limit resets the count: two more failures do not disable.
    await Client.login(server.api, 'lockme', 'secret-pw');
    assert.equal((await userRow('lockme')).login_attempts, 0);
    for (let i = 0; i < 2; i++) await assert.rejects(Client.login(server.api, 'lockme', 'wrong'), is(531));
    await Client.login(server.api, 'lockme', 'secret-pw');

    for (let i = 0; i < 3; i++) await assert.rejects(Client.login(server.api, 'lockme', 'wrong'), is(531));
    const listed = await admin.request<any>('listUsers', { id: userId });
    assert.equal(listed.user[0].state, 'disabled');
    // Now even the right password is refused, and the session opened before is over.
    await assert.rejects(Client.login(server.api, 'lockme', 'secret-pw'), is(531));
    await assert.rejects(earlier.request('listZones'), is(401));
    const events = await admin.request<any>('listEvents', { type: 'USER.DISABLE', listall: true });
    assert.ok(
      events.event.some(
        (e: any) => e.resourceid === userId && /3 consecutive failed logins/.test(e.description),
      ),
    );
    const alerts = await admin.request<any>('listAlerts', { keyword: 'lockme' });
    assert.equal(alerts.count, 1);
    assert.equal(alerts.alert[0].name, 'ALERT.MANAGEMENT');

    // An admin re-enables the user: the count starts again from zero.
    await admin.request('enableUser', { id: userId });
    await assert.rejects(Client.login(server.api, 'lockme', 'wrong'), is(531));
    await Client.login(server.api, 'lockme', 'secret-pw');
  });

  test('a failed login takes at least 300 ms, whether or not the user or domain exists', async () => {
    for (const [user, domain] of [
      ['lockme', '/'],
      ['no-such-user', '/'],
      ['admin', '/no/such/domain'],
    ]) {
      const t0 = performance.now();
      await assert.rejects(Client.login(server.api, user, 'wrong', domain), is(531));
      assert.ok(performance.now() - t0 >= 300, `${user} in ${domain}`);
    }
  });

  test('root admins are never locked out, and 0 turns the lockout off', async () => {
    for (let i = 0; i < 4; i++) await assert.rejects(Client.login(server.api, 'admin', 'wrong'), is(531));
    await Client.login(server.api, 'admin', 'password');
    await setting('incorrect.login.attempts.allowed', '0');
    await createAccountAndLogin(server, { name: 'nolock' });
    for (let i = 0; i < 6; i++) await assert.rejects(Client.login(server.api, 'nolock', 'wrong'), is(531));
    await Client.login(server.api, 'nolock', 'secret-pw');
    await setting('incorrect.login.attempts.allowed', '');
  });
});

describe('sessions', () => {
  test('login issues a new session id and ends the one the browser already held', async () => {
    const first = await rawLogin('admin', 'password');
    const second = await rawLogin('admin', 'password', `${first.jsession}; ${first.keyCookie}`);
    assert.notEqual(first.jsession, second.jsession);
    const old = await call(
      { command: 'listZones', sessionkey: first.login.sessionkey },
      `${first.jsession}; ${first.keyCookie}`,
    );
    assert.equal(old.status, 401);
    const fresh = await call(
      { command: 'listZones', sessionkey: second.login.sessionkey },
      `${second.jsession}; ${second.keyCookie}`,
    );
    assert.equal(fresh.status, 200);
  });

  test('a session idle for longer than session.timeout has ended', async () => {
    const s = await rawLogin('admin', 'password');
    const cookie = `${s.jsession}; ${s.keyCookie}`;
    assert.equal((await call({ command: 'listZones', sessionkey: s.login.sessionkey }, cookie)).status, 200);
    const id = s.jsession.slice('JSESSIONID='.length);
    // 1801 s idle with the default session.timeout of 1800 s.
    await store.db
      .updateTable('sessions')
      .set({ last_access: Date.now() - 1801 * 1000 })
      .where('session_id', '=', id)
      .execute();
    assert.equal((await call({ command: 'listZones', sessionkey: s.login.sessionkey }, cookie)).status, 401);
    assert.equal(
      await store.db.selectFrom('sessions').select('id').where('session_id', '=', id).executeTakeFirst(),
      undefined,
    );
  });

  test('a browser-marked cross-site call cannot use the session cookie; same-site cookie calls work', async () => {
    const s = await rawLogin('admin', 'password');
    const cookie = `${s.jsession}; ${s.keyCookie}`;
    // What a forged cross-site request carries, in a browser that did send the cookies: no
    // parameter, and Sec-Fetch-Site saying another site made it.
    const crossSite = { 'sec-fetch-site': 'cross-site' };
    const forged = await call({ command: 'createDomain', name: 'csrf-made' }, cookie, 'GET', crossSite);
    assert.equal(forged.status, 401);
    assert.match(forged.body.errortext, /another site/);
    const domains = await admin.request<any>('listDomains', { name: 'csrf-made' });
    assert.equal(domains.count, undefined);
    // The CloudStack UI's own calls: the cookie alone, from our origin (it never sends the parameter).
    const sameOrigin = await call({ command: 'createDomain', name: 'csrf-made' }, cookie, 'POST', {
      'sec-fetch-site': 'same-origin',
    });
    assert.equal(sameOrigin.status, 200);
    // A parameter that disagrees with the cookie is refused.
    const mixed = await call({ command: 'listDomains', sessionkey: 'x'.repeat(27) }, cookie);
    assert.equal(mixed.status, 401);
  });

  test('api.sessionkey.check.locations: ParameterOnly and CookieAndParameter', async () => {
    const s = await rawLogin('admin', 'password');
    const both = `${s.jsession}; ${s.keyCookie}`;
    await setting('api.sessionkey.check.locations', 'ParameterOnly');
    try {
      assert.equal((await call({ command: 'listDomains' }, both)).status, 401);
      const s2 = await rawLogin('admin', 'password');
      assert.equal(
        (await call({ command: 'listDomains', sessionkey: s2.login.sessionkey }, s2.jsession)).status,
        200,
      );
      await setting('api.sessionkey.check.locations', 'CookieAndParameter');
      const s3 = await rawLogin('admin', 'password');
      assert.equal(
        (await call({ command: 'listDomains', sessionkey: s3.login.sessionkey }, s3.jsession)).status,
        401,
      );
      const s4 = await rawLogin('admin', 'password');
      assert.equal(
        (
          await call(
            { command: 'listDomains', sessionkey: s4.login.sessionkey },
            `${s4.jsession}; ${s4.keyCookie}`,
          )
        ).status,
        200,
      );
    } finally {
      await setting('api.sessionkey.check.locations', '');
    }
    await assert.rejects(setting('api.sessionkey.check.locations', 'Anywhere'), is(431));
  });

  test("a new password ends all of the user's sessions", async () => {
    const { userId } = await createAccountAndLogin(server, { name: 'pwchange' });
    const a = await Client.login(server.api, 'pwchange', 'secret-pw');
    const b = await Client.login(server.api, 'pwchange', 'secret-pw');
    await admin.request('updateUser', { id: userId, password: 'reset-by-admin' });
    await assert.rejects(a.request('listZones'), is(401));
    await assert.rejects(b.request('listZones'), is(401));
    // The user's own change ends the session they made it from, too.
    const c = await Client.login(server.api, 'pwchange', 'reset-by-admin');
    const d = await Client.login(server.api, 'pwchange', 'reset-by-admin');
    await c.request('updateUser', { id: userId, password: 'mine-now', currentpassword: 'reset-by-admin' });
    await assert.rejects(c.request('listZones'), is(401));
    await assert.rejects(d.request('listZones'), is(401));
    await Client.login(server.api, 'pwchange', 'mine-now');
    // Other changes leave sessions alone.
    const e = await Client.login(server.api, 'pwchange', 'mine-now');
    await admin.request('updateUser', { id: userId, firstname: 'Renamed' });
    await e.request('listZones');
  });
});

describe('password policy', () => {
  test('defaults accept any non-empty password', async () => {
    await createAccountAndLogin(server, { name: 'anypw' });
    const u = await admin.request<any>('createUser', {
      account: 'anypw',
      username: 'anypw2',
      password: 'a',
      email: 'a@example.com',
      firstname: 'a',
      lastname: 'b',
    });
    assert.ok(u.user.id);
  });

  test('each rule refuses with 431 naming it, and nothing is created or changed', async () => {
    const newUser = (username: string, password: string) =>
      admin.request('createUser', {
        account: 'admin',
        username,
        password,
        email: `${username}@example.com`,
        firstname: 'p',
        lastname: 'p',
      });
    const cases: [string, string, string, RegExp][] = [
      ['password.policy.minimum.length', '10', 'Short1!', /at least \[10\] characters/],
      ['password.policy.minimum.digits', '2', 'Nodigits-here1', /at least \[2\] digits/],
      [
        'password.policy.minimum.uppercase.letters',
        '1',
        'lowercase-only1',
        /at least \[1\] upper case letters/,
      ],
      [
        'password.policy.minimum.lowercase.letters',
        '1',
        'UPPERCASE-ONLY1',
        /at least \[1\] lower case letters/,
      ],
      ['password.policy.minimum.special.characters', '2', 'Onlyone-1', /at least \[2\] special characters/],
      [
        'password.policy.allowPasswordToContainUsername',
        'false',
        'my-POLICYUSER-pw',
        /contain their username/,
      ],
      ['password.policy.regex', '[a-z]+\\d', 'abc1x', /policy regex/],
    ];
    for (const [name, value, bad, text] of cases) {
      await setting(name, value);
      try {
        await assert.rejects(newUser('policyuser', bad), is(431, text), name);
        const none = await admin.request<any>('listUsers', { username: 'policyuser', listall: true });
        assert.equal(none.count, undefined, name);
      } finally {
        await setting(name, '');
      }
    }
    await setting('password.policy.regex', '[a-z]+\\d');
    await newUser('policyuser', 'abc1');
    await setting('password.policy.regex', '');
    await assert.rejects(
      setting('password.policy.regex', '(unclosed'),
      is(431, /not a valid regular expression/),
    );
  });

  test('updateUser and createAccount are checked too, per domain', async () => {
    const d = (await admin.request<any>('createDomain', { name: 'strict' })).domain.id;
    await setting('password.policy.minimum.length', '12', { domainid: d });
    const account = (opts: { password: string; domainid?: string; username: string }) =>
      admin.request<any>('createAccount', {
        ...opts,
        email: 'x@example.com',
        firstname: 'x',
        lastname: 'y',
        accounttype: 0,
      });
    await assert.rejects(account({ username: 'strict1', password: 'short', domainid: d }), is(431));
    const accounts = await admin.request<any>('listAccounts', { name: 'strict1', listall: true });
    assert.equal(accounts.count, undefined);
    // Other domains keep the global default.
    await account({ username: 'lenient1', password: 'short' });
    const created = await account({ username: 'strict1', password: 'long-enough-pw', domainid: d });
    const userId = created.account.user[0].id;
    await assert.rejects(admin.request('updateUser', { id: userId, password: 'short' }), is(431));
    await Client.login(server.api, 'strict1', 'long-enough-pw', '/strict');
    await admin.request('updateUser', { id: userId, password: 'another-long-pw' });
    await Client.login(server.api, 'strict1', 'another-long-pw', '/strict');
  });

  test('the checks themselves (unit)', () => {
    const values: Record<string, unknown> = {};
    const settings = {
      at: (def: SettingDef) => (def.name in values ? values[def.name] : def.defaultValue),
    } as any;
    const check = (pw: string, user = 'bob') => checkPasswordPolicy({ settings }, pw, user, 1);
    check('x');
    values['password.policy.minimum.uppercase.letters'] = 2;
    assert.throws(() => check('Éx'), /upper case/);
    check('ÉÀx'); // Unicode capitals count, as upstream's Character.isUpperCase
    values['password.policy.minimum.special.characters'] = 1;
    assert.throws(() => check('ÉÀx1'), /special/);
    check('ÉÀ x'); // a space is a special character
    values['password.policy.allowPasswordToContainUsername'] = false;
    assert.throws(() => check('ÉÀ xBoB'), /username/);
    values['password.policy.regex'] = 'a|b';
    assert.throws(() => check('ÉÀ ab'), /regex/, 'the regex must match the whole password');
  });
});

describe('TOTP (unit)', () => {
  test('RFC 4226 HOTP and RFC 6238 TOTP test vectors', () => {
    const key = Buffer.from('12345678901234567890');
    const hotps = [
      '755224',
      '287082',
      '359152',
      '969429',
      '338314',
      '254676',
      '287922',
      '162583',
      '399871',
      '520489',
    ];
    for (const [counter, code] of hotps.entries()) assert.equal(hotp(key, counter), code);
    // RFC 6238 appendix B, SHA-1, 8 digits.
    const vectors: [number, string][] = [
      [59, '94287082'],
      [1111111109, '07081804'],
      [1111111111, '14050471'],
      [1234567890, '89005924'],
      [2000000000, '69279037'],
      [20000000000, '65353130'],
    ];
    for (const [t, code] of vectors) assert.equal(hotp(key, Math.floor(t / 30), 8), code);
    assert.equal(totp(base32Encode(key), 59_000), '287082');
  });

  test('base32 round trip, and a window of one step either side', () => {
    const secret = newTotpSecret();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.equal(base32Encode(base32Decode(secret.toLowerCase())), secret);
    const now = 1_700_000_000_000;
    const step = Math.floor(now / 30_000);
    assert.equal(matchTotp(secret, totp(secret, now), now), step);
    assert.equal(matchTotp(secret, totp(secret, now - 30_000), now), step - 1);
    assert.equal(matchTotp(secret, totp(secret, now + 30_000), now), step + 1);
    assert.equal(matchTotp(secret, totp(secret, now - 60_000), now), undefined);
    assert.equal(matchTotp(secret, 'abcdef', now), undefined);
  });
});

describe('two-factor authentication', () => {
  let userId: string;
  let secret: string;

  test('setup needs enable.user.2fa; the providers are listed', async () => {
    const { client, userId: id } = await createAccountAndLogin(server, { name: 'tfa' });
    userId = id;
    await assert.rejects(client.request('setupUserTwoFactorAuthentication', {}), is(431, /not enabled/));
    const providers = await client.request<any>('listUserTwoFactorAuthenticatorProviders');
    assert.deepEqual(
      providers.providers.map((p: any) => p.name),
      ['totp', 'staticpin'],
    );
    const one = await client.request<any>('listUserTwoFactorAuthenticatorProviders', { name: 'staticpin' });
    assert.equal(one.count, 1);
    const apis = await admin.request<any>('listApis', { name: 'setupUserTwoFactorAuthentication' });
    assert.equal(apis.api[0].name, 'setupUserTwoFactorAuthentication');
  });

  test('a wrong first code drops the setup; a right one confirms it; a code works once', async () => {
    await setting('enable.user.2fa', 'true');
    const client = await Client.login(server.api, 'tfa', 'secret-pw');
    const setup = await client.request<any>('setupUserTwoFactorAuthentication', { provider: 'totp' });
    assert.equal(setup.setup2fa.id, userId);
    assert.match(setup.setup2fa.secretcode, /^[A-Z2-7]{32}$/);
    // The secret is stored encrypted, not as given.
    assert.doesNotMatch((await userRow('tfa')).key_for_2fa!, new RegExp(setup.setup2fa.secretcode));
    await assert.rejects(client.request('setupUserTwoFactorAuthentication', {}), is(431, /already set up/));
    await assert.rejects(
      client.request('validateUserTwoFactorAuthenticationCode', { codefor2fa: '000000' }),
      is(431, /invalid/),
    );
    assert.equal((await admin.request<any>('listUsers', { id: userId })).user[0].is2faenabled, false);

    secret = (await client.request<any>('setupUserTwoFactorAuthentication', {})).setup2fa.secretcode;
    // The previous step's code: later sign-ins below use the current and the next step's codes.
    const code = totp(secret, Date.now() - 30_000);
    assert.deepEqual(await client.request('validateUserTwoFactorAuthenticationCode', { codefor2fa: code }), {
      success: true,
    });
    await assert.rejects(
      client.request('validateUserTwoFactorAuthenticationCode', { codefor2fa: code }),
      is(431, /invalid/),
    );
    assert.equal((await admin.request<any>('listUsers', { id: userId })).user[0].is2faenabled, true);
  });

  test('a login owes the code: only the 2FA commands answer until it is given', async () => {
    const s = await rawLogin('tfa', 'secret-pw');
    assert.equal(s.login.is2faenabled, 'true');
    assert.equal(s.login.is2faverified, 'false');
    assert.equal(s.login.providerfor2fa, 'totp');
    assert.equal(s.login.issuerfor2fa, 'Nimbostack');
    const cookie = `${s.jsession}; ${s.keyCookie}`;
    const key = s.login.sessionkey;
    const providers = await call(
      { command: 'listUserTwoFactorAuthenticatorProviders', sessionkey: key },
      cookie,
    );
    assert.equal(providers.status, 200);
    const blocked = await call({ command: 'listZones', sessionkey: key }, cookie);
    assert.equal(blocked.status, 511);
    // ...and that ended the session, as upstream does.
    assert.equal(
      (await call({ command: 'listUserTwoFactorAuthenticatorProviders', sessionkey: key }, cookie)).status,
      401,
    );

    // A password-only session cannot remove or replace the 2FA.
    const t = await rawLogin('tfa', 'secret-pw');
    const tc = `${t.jsession}; ${t.keyCookie}`;
    const remove = await call(
      { command: 'setupUserTwoFactorAuthentication', enable: 'false', sessionkey: t.login.sessionkey },
      tc,
    );
    assert.equal(remove.status, 531);
    const replace = await call(
      { command: 'setupUserTwoFactorAuthentication', sessionkey: t.login.sessionkey },
      tc,
    );
    assert.equal(replace.status, 431);
    // A wrong code counts as a failed login and ends the session.
    const wrong = await call(
      {
        command: 'validateUserTwoFactorAuthenticationCode',
        codefor2fa: '123456',
        sessionkey: t.login.sessionkey,
      },
      tc,
    );
    assert.equal(wrong.status, 531);
    assert.equal((await userRow('tfa')).login_attempts, 1);
    assert.equal((await call({ command: 'listZones', sessionkey: t.login.sessionkey }, tc)).status, 401);

    const client = await Client.login(server.api, 'tfa', 'secret-pw');
    await client.request('validateUserTwoFactorAuthenticationCode', { codefor2fa: totp(secret, Date.now()) });
    await client.request('listZones');
    assert.equal((await userRow('tfa')).login_attempts, 0);
  });

  test('signed API calls are not subject to 2FA; an admin can remove a user’s 2FA', async () => {
    const keys = await keyClient(server, userId);
    await keys.request('listZones');
    const removed = await admin.request<any>('setupUserTwoFactorAuthentication', {
      enable: false,
      userid: userId,
    });
    assert.equal(removed.setup2fa.username, 'tfa');
    const s = await rawLogin('tfa', 'secret-pw');
    assert.equal(s.login.is2faenabled, 'false');
    assert.equal(s.login.is2faverified, 'true');
    // Another user cannot remove someone else's 2FA.
    const { client: other } = await createAccountAndLogin(server, { name: 'tfa-other' });
    await assert.rejects(
      other.request('setupUserTwoFactorAuthentication', { enable: false, userid: userId }),
      (e: any) => e.errorcode === 531 || e.errorcode === 431,
    );
  });

  test('mandate.user.2fa per domain: the user must set up 2FA (here a static PIN) before anything else', async () => {
    const d = (await admin.request<any>('createDomain', { name: 'mandated' })).domain.id;
    await setting('mandate.user.2fa', 'true', { domainid: d });
    await admin.request('createAccount', {
      username: 'forced',
      password: 'secret-pw',
      email: 'forced@example.com',
      firstname: 'f',
      lastname: 'f',
      accounttype: 0,
      domainid: d,
    });
    const form = new URLSearchParams({
      command: 'login',
      username: 'forced',
      password: 'secret-pw',
      domain: '/mandated',
      response: 'json',
    });
    const res = await fetch(server.api, { method: 'POST', body: form });
    const login = ((await res.json()) as any).loginresponse;
    assert.equal(login.is2faenabled, 'true');
    assert.equal(login.providerfor2fa, undefined);
    const cookie = res.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const key = login.sessionkey;
    const setup = await call(
      { command: 'setupUserTwoFactorAuthentication', provider: 'staticpin', sessionkey: key },
      cookie,
    );
    assert.equal(setup.status, 200);
    const pin = setup.body.setup2fa.secretcode;
    assert.match(pin, /^\d{6}$/);
    assert.equal(
      (
        await call(
          { command: 'validateUserTwoFactorAuthenticationCode', codefor2fa: pin, sessionkey: key },
          cookie,
        )
      ).status,
      200,
    );
    assert.equal((await call({ command: 'listZones', sessionkey: key }, cookie)).status, 200);
    // Users of other domains are not affected.
    const free = await rawLogin('tfa-other', 'secret-pw');
    assert.equal(free.login.is2faenabled, 'false');
    await setting('mandate.user.2fa', '', { domainid: d });
    await setting('enable.user.2fa', '');
  });

  test('updateUser mandate2fa: administrators only, where 2FA is enabled; the user sets it up at login', async () => {
    const { userId, client } = await createAccountAndLogin(server, { name: 'mandated-one' });
    await assert.rejects(
      admin.request('updateUser', { id: userId, mandate2fa: true }),
      is(431, /enable\.user\.2fa/),
    );
    await setting('enable.user.2fa', 'true');
    try {
      await assert.rejects(client.request('updateUser', { id: userId, mandate2fa: true }), is(531));
      const u = await admin.request<any>('updateUser', { id: userId, mandate2fa: true });
      assert.equal(u.user.is2faenabled, true);
      const s = await rawLogin('mandated-one', 'secret-pw');
      assert.equal(s.login.is2faenabled, 'true');
      assert.equal(s.login.providerfor2fa, undefined);
      const blocked = await call(
        { command: 'listZones', sessionkey: s.login.sessionkey },
        `${s.jsession}; ${s.keyCookie}`,
      );
      assert.equal(blocked.status, 511);
    } finally {
      await setting('enable.user.2fa', '');
    }
    // Once the domain no longer offers 2FA, a user switched on but never set up is not trapped.
    const again = await rawLogin('mandated-one', 'secret-pw');
    assert.equal(again.login.is2faenabled, 'false');
  });
});
