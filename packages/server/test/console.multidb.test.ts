/**
 * Console tokens with two management servers on one database (PostgreSQL and MariaDB with
 * `npm run test:db`; SQLite serves one server): a token issued by one server is redeemed, once, by
 * whichever server the browser reaches, which relays the session to the server holding the VM's
 * host agent when that is another one (console/proxy.ts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { waitUntil } from './agents.ts';
import { startServer, type TestServer, testDatabases } from './harness.ts';

/** Opens the console socket and answers its first bytes, or how it was closed. */
function probe(base: string, token: string): Promise<{ banner?: string; code?: number; reason?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(
      `${base.replace('http', 'ws')}/client/websockify?token=${encodeURIComponent(token)}`,
    );
    ws.once('message', (d: Buffer) => {
      resolve({ banner: d.toString('latin1') });
      ws.close();
    });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.on('error', () => undefined);
  });
}

for (const db of testDatabases().filter((d) => d !== 'sqlite')) {
  describe(`console tokens across two management servers on ${db}`, () => {
    let a: TestServer;
    let b: TestServer;
    let vmId: string;

    before(async () => {
      a = await startServer({
        db,
        env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true', NIMBOSTACK_SERVER_NAME: 'ms-a' },
      });
      // The second server is given the cloud's key, as an operator copies it (docs/security.md).
      b = await startServer({
        databaseUrl: a.databaseUrl,
        env: { NIMBOSTACK_SERVER_NAME: 'ms-b', NIMBOSTACK_SECRET_KEY_FILE: join(a.dataDir, 'server.key') },
      });
      const zoneid = (await a.admin.request<any>('listZones', {})).zone[0].id;
      const templateid = await waitUntil(
        async () =>
          (
            await a.admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })
          ).template?.find((x: any) => x.isready)?.id,
        20_000,
        'the built-in template',
      );
      const serviceofferingid = (await a.admin.request<any>('listServiceOfferings', {})).serviceoffering[0]
        .id;
      vmId = (await a.admin.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid }))
        .virtualmachine.id;
    });
    after(async () => {
      await b?.stop();
      await a?.stop();
    });

    test('a token from server A is redeemed by server B, once; B relays to A, where the agent is', async () => {
      const e = (await a.admin.request<any>('createConsoleEndpoint', { virtualmachineid: vmId }))
        .consoleendpoint;
      const onB = await probe(b.url, e.websocket.token);
      assert.equal(onB.banner, 'RFB 003.008\n');
      const again = await probe(a.url, e.websocket.token);
      assert.equal(again.code, 4001);
      assert.match(again.reason!, /already used/);
    });

    test('a token from server B opens the console on server A, where the agent is', async () => {
      const e = (await b.admin.request<any>('createConsoleEndpoint', { virtualmachineid: vmId }))
        .consoleendpoint;
      assert.equal(
        String(e.websocket.port),
        new URL(b.url).port,
        'the endpoint names the server that was asked',
      );
      const onA = await probe(a.url, e.websocket.token);
      assert.equal(onA.banner, 'RFB 003.008\n');
    });
  });
}
