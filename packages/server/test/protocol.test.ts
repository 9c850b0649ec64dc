/** The CloudStack wire protocol against the real server process: envelopes, auth, errors, paging. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apiDate, type CloudStackClient, signParams } from '@nimbostack/client';
import { keyClient, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let keys: CloudStackClient;
let adminId: string;

async function raw(
  query: string,
  init?: RequestInit,
): Promise<{ status: number; type: string; text: string; json?: any }> {
  const res = await fetch(`${server.api}?${query}`, init);
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, type: res.headers.get('content-type') ?? '', text, json };
}

/** A signed GET URL query for the admin's keys (response=json unless the params say otherwise). */
function signed(params: Record<string, string>): string {
  const all = { response: 'json', ...params, apiKey: keys.options.apiKey! };
  if (all.response === '') delete (all as Record<string, string>).response;
  const signature = signParams(all, keys.options.secretKey!);
  return new URLSearchParams({ ...all, signature }).toString();
}

before(async () => {
  server = await startServer();
  const users = await server.admin.request<{ user: { id: string }[] }>('listUsers', { username: 'admin' });
  adminId = users.user[0].id;
  keys = await keyClient(server, adminId);
});
after(() => server.stop());

describe('envelopes', () => {
  test('XML is the default response format', async () => {
    const r = await raw(signed({ command: 'listDomains', response: '' }));
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/xml/);
    assert.match(r.text, /<listdomainsresponse cloud-stack-version="[\d.]+"><count>1<\/count><domain><id>/);
  });

  test('JSON list has the total count and the items under their object name', async () => {
    const r = await raw(signed({ command: 'listDomains' }));
    assert.equal(r.status, 200);
    assert.match(r.type, /^application\/json/);
    assert.deepEqual(Object.keys(r.json), ['listdomainsresponse']);
    assert.equal(r.json.listdomainsresponse.count, 1);
    assert.equal(r.json.listdomainsresponse.domain[0].name, 'ROOT');
  });

  test('an empty list is {}', async () => {
    const r = await raw(signed({ command: 'listDomains', name: 'no-such-domain' }));
    assert.deepEqual(r.json, { listdomainsresponse: {} });
  });

  test('a page past the end keeps the count and has no items', async () => {
    const r = await raw(signed({ command: 'listDomains', page: '5', pagesize: '1' }));
    assert.deepEqual(r.json, { listdomainsresponse: { count: 1 } });
  });

  test('dates are yyyy-MM-ddTHH:mm:ss+0000', async () => {
    const r = await keys.request<{ user: { created: string }[] }>('listUsers', { id: adminId });
    assert.match(r.user[0].created, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$/);
  });
});

describe('requests', () => {
  test('parameter names are case-insensitive and + is a space', async () => {
    const params = {
      command: 'createDomain',
      NAME: 'has space',
      apiKey: keys.options.apiKey!,
      response: 'json',
    };
    const signature = signParams(params, keys.options.secretKey!);
    const q = `command=createDomain&NAME=has+space&apiKey=${encodeURIComponent(params.apiKey)}&response=json&signature=${encodeURIComponent(signature)}`;
    const r = await raw(q);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.createdomainresponse.domain.name, 'has space');
  });

  test('POST with a form body works like GET, with the command in the body', async () => {
    const all = { command: 'listDomains', apiKey: keys.options.apiKey!, response: 'json' };
    const body = new URLSearchParams({ ...all, signature: signParams(all, keys.options.secretKey!) });
    const res = await fetch(server.api, { method: 'POST', body });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as any).listdomainsresponse.count >= 1, true);
  });

  test('/client/api/ with a trailing slash is the same endpoint', async () => {
    const res = await fetch(`${server.api}/?${signed({ command: 'listDomains' })}`);
    assert.equal(res.status, 200);
  });
});

describe('authentication', () => {
  test('a bad signature is 401', async () => {
    const q = signed({ command: 'listDomains' }).replace(
      /signature=[^&]+/,
      'signature=AAAAAAAAAAAAAAAAAAAAAAAAAAA%3D',
    );
    const r = await raw(q);
    assert.equal(r.status, 401);
    assert.equal(r.json.errorresponse?.errorcode ?? r.json.listdomainsresponse?.errorcode, 401);
  });

  test('an unknown API key is 401', async () => {
    const all = { command: 'listDomains', apiKey: 'nope', response: 'json' };
    const r = await raw(new URLSearchParams({ ...all, signature: signParams(all, 'x') }).toString());
    assert.equal(r.status, 401);
  });

  test('signature version 3 with an expired `expires` is 401, a future one works', async () => {
    const expired = await raw(
      signed({ command: 'listDomains', signatureVersion: '3', expires: apiDate(Date.now() - 60_000) }),
    );
    assert.equal(expired.status, 401);
    const fine = await raw(
      signed({ command: 'listDomains', signatureVersion: '3', expires: apiDate(Date.now() + 60_000) }),
    );
    assert.equal(fine.status, 200);
  });

  test('no credentials is 401', async () => {
    const r = await raw('command=listDomains&response=json');
    assert.equal(r.status, 401);
  });

  test('login must be POST (405) and bad credentials give 531', async () => {
    const get = await raw('command=login&username=admin&password=password&response=json');
    assert.equal(get.status, 405);
    assert.equal(get.json.loginresponse.errorcode, 405);
    const bad = await fetch(server.api, {
      method: 'POST',
      body: new URLSearchParams({ command: 'login', username: 'admin', password: 'wrong', response: 'json' }),
    });
    assert.equal(bad.status, 531);
    const body = (await bad.json()) as any;
    assert.equal(body.loginresponse.errorcode, 531);
  });

  test('login sets HttpOnly cookies and returns the session key; the key must match', async () => {
    const res = await fetch(server.api, {
      method: 'POST',
      body: new URLSearchParams({
        command: 'login',
        username: 'admin',
        password: 'password',
        response: 'json',
      }),
    });
    const cookies = res.headers.getSetCookie();
    assert.ok(cookies.some((c) => c.startsWith('JSESSIONID=') && /HttpOnly/i.test(c)));
    assert.ok(cookies.some((c) => c.startsWith('sessionkey=') && /HttpOnly/i.test(c)));
    const login = ((await res.json()) as any).loginresponse;
    assert.equal(login.username, 'admin');
    assert.equal(login.type, '1');
    const jsession = cookies.find((c) => c.startsWith('JSESSIONID='))!.split(';')[0];
    const ok = await raw(`command=listDomains&response=json&sessionkey=${login.sessionkey}`, {
      headers: { cookie: jsession },
    });
    assert.equal(ok.status, 200);
    // Browser UIs present the key only as the HttpOnly cookie.
    const cookieOnly = await raw('command=listDomains&response=json', {
      headers: { cookie: cookies.map((c) => c.split(';')[0]).join('; ') },
    });
    assert.equal(cookieOnly.status, 200);
    const out = await raw(`command=logout&response=json&sessionkey=${login.sessionkey}`, {
      headers: { cookie: jsession },
    });
    assert.deepEqual(out.json, { logoutresponse: { description: 'success' } });
    const after = await raw(`command=listDomains&response=json&sessionkey=${login.sessionkey}`, {
      headers: { cookie: jsession },
    });
    assert.equal(after.status, 401);
  });

  test('a wrong session key is 401 and ends the session', async () => {
    const res = await fetch(server.api, {
      method: 'POST',
      body: new URLSearchParams({
        command: 'login',
        username: 'admin',
        password: 'password',
        response: 'json',
      }),
    });
    const login = ((await res.json()) as any).loginresponse;
    const jsession = res.headers
      .getSetCookie()
      .find((c) => c.startsWith('JSESSIONID='))!
      .split(';')[0];
    const wrong = await raw('command=listDomains&response=json&sessionkey=wrong', {
      headers: { cookie: jsession },
    });
    assert.equal(wrong.status, 401);
    const again = await raw(`command=listDomains&response=json&sessionkey=${login.sessionkey}`, {
      headers: { cookie: jsession },
    });
    assert.equal(again.status, 401);
  });
});

describe('errors', () => {
  test('unknown command: 432 for a session, 401 for a signed call', async () => {
    await assert.rejects(
      server.admin.request('noSuchCommand'),
      (e: any) => e.status === 432 && e.errorcode === 432,
    );
    const r = await raw(signed({ command: 'noSuchCommand' }));
    assert.equal(r.status, 401);
  });

  test('a missing parameter gives 431 with the upstream text', async () => {
    const r = await raw(signed({ command: 'createDomain' }));
    assert.equal(r.status, 431);
    assert.deepEqual(r.json.createdomainresponse, {
      uuidList: [],
      errorcode: 431,
      cserrorcode: 4350,
      errortext: 'Unable to execute API command createdomain due to missing parameter name',
    });
  });

  test('a malformed id gives 431 and an error body, never a stack trace', async () => {
    const r = await raw(signed({ command: 'listDomains', id: 'not-a-uuid' }));
    assert.equal(r.status, 431);
    assert.doesNotMatch(r.text, /at .*\.ts:\d+/);
  });

  test('a malformed map key gives 430', async () => {
    const r = await raw(signed({ command: 'listDomains', 'tags[x]': 'y' }));
    assert.equal(r.status, 430);
  });

  test('XML errors carry the code too', async () => {
    const r = await raw(signed({ command: 'createDomain', response: 'xml' }));
    assert.equal(r.status, 431);
    assert.match(r.text, /<errorcode>431<\/errorcode>/);
  });
});

describe('paging', () => {
  test('pagesize without page, page without pagesize, and oversize pages are 431', async () => {
    const cases: Record<string, string>[] = [
      { pagesize: '10' },
      { page: '1' },
      { page: '1', pagesize: '501' },
      { page: '1', pagesize: '-1' },
    ];
    for (const q of cases) {
      const r = await raw(signed({ command: 'listDomains', ...q }));
      assert.equal(r.status, 431, JSON.stringify(q));
    }
    const unlimited = await raw(signed({ command: 'listDomains', pagesize: '-1' }));
    assert.equal(unlimited.status, 200);
  });

  test('pages split the results and count stays the total', async () => {
    for (let i = 0; i < 5; i++) await keys.request('createDomain', { name: `page-${i}` });
    const all = await keys.request<{ count: number }>('listDomains', { listall: true });
    const p1 = await keys.request<{ count: number; domain: { id: string }[] }>('listDomains', {
      listall: true,
      page: 1,
      pagesize: 2,
    });
    const p2 = await keys.request<{ count: number; domain: { id: string }[] }>('listDomains', {
      listall: true,
      page: 2,
      pagesize: 2,
    });
    assert.equal(p1.count, all.count);
    assert.equal(p1.domain.length, 2);
    assert.notEqual(p1.domain[0].id, p2.domain[0].id);
  });
});

describe('rate limiting', () => {
  test('api.throttling.* limits calls per account with 429 when enabled', async () => {
    await keys.request('updateConfiguration', { name: 'api.throttling.max', value: '3' });
    await keys.request('updateConfiguration', { name: 'api.throttling.interval', value: '60' });
    await keys.request('updateConfiguration', { name: 'api.throttling.enabled', value: 'true' });
    let limited: any;
    for (let i = 0; i < 6 && !limited; i++) {
      const r = await raw(signed({ command: 'listDomains' }));
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, 'expected a 429');
    assert.match(limited.json.listdomainsresponse.errortext, /retry after \d+ ms/);
    // Another server's view of settings may lag; this one updates at once.
    const res = await fetch(server.api, {
      method: 'POST',
      body: new URLSearchParams({
        command: 'login',
        username: 'admin',
        password: 'password',
        response: 'json',
      }),
    });
    assert.equal(res.status, 200);
  });
});
