/**
 * Signed requests as upstream's ApiServer.verifyRequest checks them: signatureversion=3 needs an
 * `expires` that has not passed; with enforce.post.requests.and.timestamps, version 3 is required
 * and `expires` may lie at most 15 minutes ahead. Every refusal is a 401 with upstream's text.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { apiDate, CloudStackClient, signParams } from '@nimbostack/client';
import { keyClient, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let keys: CloudStackClient;

before(async () => {
  server = await startServer();
  const users = await server.admin.request<{ user: { id: string }[] }>('listUsers', { username: 'admin' });
  keys = await keyClient(server, users.user[0].id);
});
after(() => server.stop());

/** Sends a GET signed with the admin's keys; `tamper` may change the query after signing. */
async function call(params: Record<string, string>, tamper?: (q: URLSearchParams) => void) {
  const all = { response: 'json', ...params, apiKey: keys.options.apiKey! };
  const query = new URLSearchParams({ ...all, signature: signParams(all, keys.options.secretKey!) });
  tamper?.(query);
  const res = await fetch(`${server.api}?${query}`);
  return { status: res.status, json: (await res.json()) as any };
}

const MINUTE = 60_000;
const v3 = (expiresIn: number) => ({ signatureVersion: '3', expires: apiDate(Date.now() + expiresIn) });

function assertRefused(r: { status: number; json: any }) {
  assert.equal(r.status, 401);
  const body = r.json.listdomainsresponse ?? r.json.errorresponse;
  assert.equal(body.errorcode, 401);
  assert.equal(body.errortext, 'unable to verify user credentials and/or request signature');
}

describe('signature version 3', () => {
  test('needs expires: missing or malformed is 401', async () => {
    assertRefused(await call({ command: 'listDomains', signatureVersion: '3' }));
    assertRefused(await call({ command: 'listDomains', signatureVersion: '3', expires: 'tomorrow' }));
  });

  test('an expires in the past is 401, one in the future works', async () => {
    assertRefused(await call({ command: 'listDomains', ...v3(-MINUTE) }));
    assert.equal((await call({ command: 'listDomains', ...v3(MINUTE) })).status, 200);
  });

  test('expires is signed: moving it after signing breaks the signature', async () => {
    const r = await call({ command: 'listDomains', ...v3(MINUTE) }, (q) =>
      q.set('expires', apiDate(Date.now() + 5 * MINUTE)),
    );
    assertRefused(r);
  });

  test('without enforcement, a far expires is accepted, as upstream', async () => {
    assert.equal((await call({ command: 'listDomains', ...v3(24 * 60 * MINUTE) })).status, 200);
  });

  test('unsigned version-3 style parameters without a key still need a session', async () => {
    const res = await fetch(
      `${server.api}?command=listDomains&response=json&${new URLSearchParams(v3(MINUTE))}`,
    );
    assert.equal(res.status, 401);
  });
});

describe('enforce.post.requests.and.timestamps', () => {
  before(() =>
    server.admin.request('updateConfiguration', {
      name: 'enforce.post.requests.and.timestamps',
      value: 'true',
    }),
  );
  // With enforcement on, changes must be POSTed.
  after(() =>
    new CloudStackClient({ ...keys.options, post: true }).request('updateConfiguration', {
      name: 'enforce.post.requests.and.timestamps',
      value: 'false',
    }),
  );

  test('a signed call without version 3 is 401', async () => {
    assertRefused(await call({ command: 'listDomains' }));
  });

  test('expires more than 15 minutes ahead is 401; within 15 minutes works', async () => {
    assertRefused(await call({ command: 'listDomains', ...v3(16 * MINUTE) }));
    assertRefused(await call({ command: 'listDomains', ...v3(24 * 60 * MINUTE) }));
    assert.equal((await call({ command: 'listDomains', ...v3(14 * MINUTE) })).status, 200);
    // Our own client signs with version 3 and 10 minutes, so it keeps working.
    assert.equal(((await keys.request<any>('listDomains', {})) as any).count, 1);
  });

  test('an expired version-3 request is still 401', async () => {
    assertRefused(await call({ command: 'listDomains', ...v3(-1000) }));
  });
});
