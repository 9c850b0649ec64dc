/**
 * Webhooks (webhooks/): a local HTTP receiver gets each event its webhooks' scopes cover, signed
 * with the webhook's secret (X-CS-Signature, Base64 HMAC-SHA256 of the body); a failing receiver
 * gets retries that the delivery history shows; executeWebhookDelivery sends again; a user's
 * webhook sees only its account's events.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A receiver: /ok answers 200, /fail answers 500 until told otherwise. */
class Receiver {
  got: Received[] = [];
  failing = true;
  hung = false;
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      this.got.push({
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      // The first request to /hang gets no answer at all (a receiver stuck mid-request).
      if (req.url === '/hang' && !this.hung) {
        this.hung = true;
        return;
      }
      if (req.url?.startsWith('/fail') && this.failing) res.writeHead(500).end('receiver is down');
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('thanks');
    });
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
  at(path: string): Received[] {
    return this.got.filter((g) => g.path === path);
  }
  async waitFor(pred: (g: Received) => boolean, timeoutMs = 15_000): Promise<Received> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const g = this.got.find(pred);
      if (g) return g;
      if (Date.now() > end) throw new Error('delivery did not arrive in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

const hmac = (body: string, key: string) => createHmac('sha256', key).update(body, 'utf8').digest('base64');

describe('webhooks', () => {
  let server: TestServer;
  const receiver = new Receiver();
  let alice: CloudStackClient;
  let bob: CloudStackClient;
  let aliceAccountId: string;
  let aliceHook: any;

  before(async () => {
    await receiver.start();
    server = await startServer();
    // The receiver is on loopback, which users' webhooks may only reach through the allow-list
    // (webhook-target.test.ts tests the refusals).
    await server.admin.request('updateConfiguration', {
      name: 'webhook.delivery.allowed.private.networks',
      value: '127.0.0.1/32',
    });
    const a = await createAccountAndLogin(server, { name: 'alice' });
    alice = a.client;
    aliceAccountId = String(a.account.id);
    bob = (await createAccountAndLogin(server, { name: 'bob' })).client;
  });
  after(async () => {
    await server?.stop();
    await receiver.stop();
  });

  test('a user registers a Local webhook; Domain and Global scopes are refused to users', async () => {
    aliceHook = (
      await alice.request<any>('createWebhook', {
        name: 'alice-hook',
        payloadurl: `${receiver.url}/alice`,
        secretkey: 's3cret',
      })
    ).webhook;
    assert.equal(aliceHook.scope, 'Local');
    assert.equal(aliceHook.state, 'Enabled');
    assert.equal(aliceHook.account, 'alice');
    assert.equal(aliceHook.sslverification, false);
    for (const scope of ['Domain', 'Global'])
      await assert.rejects(
        alice.request('createWebhook', { name: 'x', payloadurl: `${receiver.url}/x`, scope }),
        (e: any) => e.errorcode === 431 && /Scope .* can not be specified/.test(e.errortext),
      );
    await assert.rejects(
      alice.request('createWebhook', { name: 'dup', payloadurl: `${receiver.url}/alice` }),
      (e: any) => e.errorcode === 431 && /already in use/.test(e.errortext),
    );
    await assert.rejects(
      alice.request('createWebhook', { name: 's', payloadurl: `${receiver.url}/s`, sslverification: true }),
      (e: any) => e.errorcode === 431,
    );
    // Bob sees neither the webhook nor can he touch it.
    assert.equal((await bob.request<any>('listWebhooks', {})).webhook, undefined);
    await assert.rejects(bob.request('deleteWebhook', { id: aliceHook.id }), (e: any) => e.errorcode === 531);
  });

  test("the user's events arrive signed; other accounts' events do not", async () => {
    await bob.request('createSSHKeyPair', { name: 'bob-key' });
    await server.admin.request('createDomain', { name: 'not-for-alice' });
    await alice.request('createSSHKeyPair', { name: 'alice-key' });
    const g = await receiver.waitFor((x) => x.path === '/alice' && x.body.includes('alice-key'));
    assert.equal(g.headers['x-cs-signature'], hmac(g.body, 's3cret'), 'HMAC over the exact body');
    assert.equal(g.headers['x-cs-event'], JSON.parse(g.body).event);
    assert.match(String(g.headers['user-agent']), new RegExp(`^CS-Hookshot/${aliceAccountId}$`));
    assert.match(String(g.headers['content-type']), /^application\/json/);
    const body = JSON.parse(g.body);
    assert.equal(body.account, aliceAccountId);
    assert.equal(body.status, 'Completed');
    const ev = (await alice.request<any>('listEvents', {})).event.find((e: any) =>
      e.description.includes('alice-key'),
    );
    assert.equal(g.headers['x-cs-event-id'], ev.id);
    // Give other deliveries time to (wrongly) arrive, then check nothing of bob's or the admin's came.
    await new Promise((r) => setTimeout(r, 1000));
    for (const x of receiver.at('/alice')) {
      assert.equal(JSON.parse(x.body).account, aliceAccountId);
      assert.ok(!x.body.includes('bob-key') && !x.body.includes('not-for-alice'));
    }
    const history = (await alice.request<any>('listWebhookDeliveries', { webhookid: aliceHook.id }))
      .webhookdelivery;
    assert.ok(history.length >= 1);
    assert.equal(history[0].success, true);
    assert.equal(history[0].response, 'thanks');
    assert.equal(history[0].webhookname, 'alice-hook');
    assert.ok(history[0].headers.includes('X-CS-Signature: '));
    // Bob's view of deliveries does not include Alice's.
    assert.equal((await bob.request<any>('listWebhookDeliveries', {})).webhookdelivery, undefined);
  });

  test('a failing receiver gets retries, the history shows them, and executeWebhookDelivery sends again', async () => {
    const admin = server.admin;
    const hook = (
      await admin.request<any>('createWebhook', {
        name: 'global',
        payloadurl: `${receiver.url}/fail`,
        scope: 'Global',
      })
    ).webhook;
    assert.equal(hook.scope, 'Global');
    // The Global webhook receives another account's event (bob's).
    await bob.request('createSSHKeyPair', { name: 'bob-key-2' });
    const deadline = Date.now() + 20_000;
    let tries: any[] = [];
    while (Date.now() < deadline) {
      tries = (
        (await admin.request<any>('listWebhookDeliveries', { webhookid: hook.id })).webhookdelivery ?? []
      ).filter((d: any) => d.payload.includes('bob-key-2'));
      if (tries.length >= 3) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(tries.length, 3, 'webhook.delivery.tries (3) tries');
    for (const t of tries) {
      assert.equal(t.success, false);
      assert.match(t.response, /HTTP 500/);
    }
    // Back-off: the tries are spread out, not back to back.
    const starts = tries.map((t: any) => Date.parse(t.startdate)).sort();
    assert.ok(starts[2] - starts[0] >= 1000, `tries spread over ${starts[2] - starts[0]} ms`);
    assert.equal(receiver.at('/fail').filter((g) => g.body.includes('bob-key-2')).length, 3);

    receiver.failing = false;
    const again = (await admin.request<any>('executeWebhookDelivery', { id: tries[0].id })).webhookdelivery;
    assert.equal(again.success, true);
    assert.equal(again.payload, tries[0].payload);
    assert.equal(again.eventid, tries[0].eventid);
    const history = (await admin.request<any>('listWebhookDeliveries', { webhookid: hook.id }))
      .webhookdelivery;
    assert.equal(history[0].id, again.id, 'the re-send is in the history, newest first');

    const testDelivery = (await admin.request<any>('executeWebhookDelivery', { webhookid: hook.id }))
      .webhookdelivery;
    assert.equal(testDelivery.eventtype, 'TEST.WEBHOOK');
    assert.equal(testDelivery.success, true);
    const last = receiver.got[receiver.got.length - 1];
    assert.deepEqual(JSON.parse(last.body), { CloudStack: 'works!' });

    // deleteWebhookDelivery empties the webhook's history.
    await admin.request('deleteWebhookDelivery', { webhookid: hook.id });
    assert.equal(
      (await admin.request<any>('listWebhookDeliveries', { webhookid: hook.id })).webhookdelivery,
      undefined,
    );
    await admin.request('deleteWebhook', { id: hook.id });
  });

  test('updateWebhook disables and changes the secret; deleteWebhook stops deliveries', async () => {
    await alice.request('updateWebhook', { id: aliceHook.id, state: 'Disabled' });
    const before = receiver.at('/alice').length;
    await alice.request('createSSHKeyPair', { name: 'alice-key-off' });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(receiver.at('/alice').length, before, 'a disabled webhook gets nothing');
    await alice.request('updateWebhook', { id: aliceHook.id, state: 'Enabled', secretkey: 'other' });
    const listed = (await alice.request<any>('listWebhooks', { id: aliceHook.id })).webhook[0];
    assert.equal(listed.secretkey, 'other');
    await alice.request('createSSHKeyPair', { name: 'alice-key-on' });
    const g = await receiver.waitFor((x) => x.path === '/alice' && x.body.includes('alice-key-on'));
    assert.equal(g.headers['x-cs-signature'], hmac(g.body, 'other'));
    await alice.request('deleteWebhook', { id: aliceHook.id });
    assert.equal((await alice.request<any>('listWebhooks', {})).webhook, undefined);
  });

  test("a domain admin's Domain webhook gets its subtree's events and no others'", async () => {
    const admin = server.admin;
    const d = (await admin.request<any>('createDomain', { name: 'wd' })).domain;
    const sub = (await admin.request<any>('createDomain', { name: 'wdsub', parentdomainid: d.id })).domain;
    const da = (
      await createAccountAndLogin(server, {
        name: 'wdadmin',
        accounttype: 2,
        domainid: d.id,
        domainPath: '/wd',
      })
    ).client;
    const carol = (
      await createAccountAndLogin(server, { name: 'carol', domainid: sub.id, domainPath: '/wd/wdsub' })
    ).client;
    await assert.rejects(
      da.request('createWebhook', { name: 'g', payloadurl: `${receiver.url}/g`, scope: 'Global' }),
      (e: any) => e.errorcode === 431,
    );
    const hook = (
      await da.request<any>('createWebhook', {
        name: 'dom',
        payloadurl: `${receiver.url}/dom`,
        scope: 'Domain',
      })
    ).webhook;
    assert.equal(hook.scope, 'Domain');
    assert.equal(hook.domainid, d.id);
    await bob.request('createSSHKeyPair', { name: 'bob-outside' });
    await carol.request('createSSHKeyPair', { name: 'carol-inside' });
    await receiver.waitFor((x) => x.path === '/dom' && x.body.includes('carol-inside'));
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(
      !receiver.at('/dom').some((x) => x.body.includes('bob-outside')),
      "bob's event is outside the domain",
    );
    // Carol (a user below) does not see the domain admin's webhook or its deliveries.
    assert.equal((await carol.request<any>('listWebhooks', {})).webhook, undefined);
    assert.equal((await carol.request<any>('listWebhookDeliveries', {})).webhookdelivery, undefined);
    await da.request('deleteWebhook', { id: hook.id });
  });

  test('a stop does not wait for a stuck receiver, and the event is delivered after the restart', async () => {
    const hook = (
      await alice.request<any>('createWebhook', { name: 'hang', payloadurl: `${receiver.url}/hang` })
    ).webhook;
    await alice.request('createSSHKeyPair', { name: 'alice-key-hang' });
    const first = await receiver.waitFor((x) => x.path === '/hang' && x.body.includes('alice-key-hang'));
    const t = Date.now();
    await server.stop({ keepData: true });
    const stopMs = Date.now() - t;
    assert.ok(stopMs < 8000, `stopped in ${stopMs} ms, not after the 10 s delivery timeout`);
    server = await startServer({ dataDir: server.dataDir, databaseUrl: server.databaseUrl });
    const again = await receiver.waitFor(
      (x) => x.path === '/hang' && x.body.includes('alice-key-hang') && x !== first,
      20_000,
    );
    assert.equal(
      again.headers['x-cs-event-id'],
      first.headers['x-cs-event-id'],
      'the same event, sent again',
    );
    const client = await CloudStackClient.login(server.api, 'alice', 'secret-pw');
    const deadline = Date.now() + 10_000;
    let ok = false;
    while (!ok && Date.now() < deadline) {
      const h =
        (await client.request<any>('listWebhookDeliveries', { webhookid: hook.id })).webhookdelivery ?? [];
      ok = h.some((d: any) => d.success && d.payload.includes('alice-key-hang'));
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ok, 'the delivery after the restart succeeded and is in the history');
    console.log(`server stopped in ${stopMs} ms with a delivery in flight`);
  });
});
