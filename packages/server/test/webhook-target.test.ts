/**
 * Webhook targets (webhooks/target.ts): users' webhooks may not reach loopback, link-local,
 * unspecified or the management server's own addresses — refused with 431 when the URL is set,
 * including names that resolve there (localhost), and refused again at delivery on the address the
 * name resolves to then. Root admins' webhooks, and the networks in
 * webhook.delivery.allowed.private.networks, may reach them.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const SETTING = 'webhook.delivery.allowed.private.networks';

describe('webhook targets', () => {
  let server: TestServer;
  let carol: CloudStackClient;
  const got: string[] = [];
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      got.push(req.url ?? '');
      res.writeHead(200).end('ok');
    });
  });
  let port = 0;

  before(async () => {
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    port = (receiver.address() as AddressInfo).port;
    server = await startServer();
    carol = (await createAccountAndLogin(server, { name: 'carol' })).client;
  });
  after(async () => {
    await server?.stop();
    await new Promise((r) => receiver.close(r));
  });

  const refused = (re: RegExp) => (e: any) => {
    assert.equal(e.errorcode, 431);
    assert.match(e.errortext, re);
    return true;
  };

  test('a user cannot register loopback, link-local, unspecified or server addresses', async () => {
    const cases: [string, RegExp][] = [
      [`http://127.0.0.1:${port}/a`, /127\.0\.0\.1 is a loopback address/],
      [`http://localhost:${port}/a`, /localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/],
      ['http://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a link-local address/],
      [`http://0.0.0.0:${port}/a`, /is an unspecified address/],
      [`http://[::1]:${port}/a`, /::1 is a loopback address/],
      [`http://[::ffff:127.0.0.1]:${port}/a`, /loopback address/],
      [`127.0.0.2:${port}/no-scheme`, /127\.0\.0\.2 is a loopback address/],
    ];
    const own = Object.values(networkInterfaces())
      .flat()
      .find((n) => n && !n.internal && n.family === 'IPv4');
    if (own) cases.push([`http://${own.address}:${port}/a`, /an address of the management server/]);
    for (const [payloadurl, re] of cases)
      await assert.rejects(
        carol.request('createWebhook', { name: 'x', payloadurl }),
        refused(re),
        payloadurl,
      );
    assert.equal((await carol.request<any>('listWebhooks', {})).webhook, undefined, 'nothing was created');
  });

  test('a public address is accepted; changing it to loopback is refused', async () => {
    const hook = (
      await carol.request<any>('createWebhook', { name: 'pub', payloadurl: 'http://203.0.113.7/h' })
    ).webhook;
    await assert.rejects(
      carol.request('updateWebhook', { id: hook.id, payloadurl: `http://localhost:${port}/b` }),
      refused(/loopback/),
    );
    const after = (await carol.request<any>('listWebhooks', { id: hook.id })).webhook[0];
    assert.equal(after.payloadurl, 'http://203.0.113.7/h', 'unchanged');
    await carol.request('deleteWebhook', { id: hook.id });
  });

  test("a user's test delivery to loopback fails with the reason and sends nothing", async () => {
    const r = (
      await carol.request<any>('executeWebhookDelivery', { payloadurl: `http://localhost:${port}/test` })
    ).webhookdelivery;
    assert.equal(r.success, false);
    assert.match(r.response, /localhost resolves to .* loopback address/);
    assert.ok(!got.includes('/test'));
  });

  test("root admins' webhooks reach loopback", async () => {
    const hook = (
      await server.admin.request<any>('createWebhook', {
        name: 'root',
        payloadurl: `http://localhost:${port}/root`,
      })
    ).webhook;
    await server.admin.request('createDomain', { name: 'for-root-hook' });
    const end = Date.now() + 15_000;
    while (!got.includes('/root')) {
      if (Date.now() > end) throw new Error('the root admin webhook got nothing');
      await new Promise((r) => setTimeout(r, 50));
    }
    await server.admin.request('deleteWebhook', { id: hook.id });
  });

  test('the allow-list admits loopback; once it is removed deliveries are refused after DNS resolution', async () => {
    await server.admin.request('updateConfiguration', { name: SETTING, value: '127.0.0.1/32, ::1/128' });
    const hook = (
      await carol.request<any>('createWebhook', { name: 'lo', payloadurl: `http://localhost:${port}/lo` })
    ).webhook;
    await carol.request('createSSHKeyPair', { name: 'k1' });
    let end = Date.now() + 15_000;
    while (!got.includes('/lo')) {
      if (Date.now() > end) throw new Error('the allowed delivery did not arrive');
      await new Promise((r) => setTimeout(r, 50));
    }
    const before = got.length;
    // Loopback leaves the allow-list; the webhook stays registered and its target is checked
    // again at each delivery.
    await server.admin.request('updateConfiguration', { name: SETTING, value: '192.0.2.0/24' });
    await carol.request('createSSHKeyPair', { name: 'k2' });
    let failed: any;
    end = Date.now() + 20_000;
    while (!failed) {
      if (Date.now() > end) throw new Error('no failed delivery recorded');
      const list =
        (await carol.request<any>('listWebhookDeliveries', { webhookid: hook.id })).webhookdelivery ?? [];
      failed = list.find((d: any) => !d.success && d.payload.includes('k2'));
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(failed.response, /localhost resolves to (127\.0\.0\.1|::1), which is a loopback address/);
    assert.equal(got.length, before, 'the receiver got nothing');
  });
});
