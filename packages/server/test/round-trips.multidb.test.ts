/**
 * The statements that replaced several round trips each (issue 18), on every database: a resource
 * reservation of several types at once (one UPDATE per owner, checked first and taken later), a
 * list page that carries its tags and, when it is not full, gives the count without a statement of
 * its own (listZones), and queryAsyncJobResult reading the job without the entity check before it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { inTransaction } from '../src/db/connection.ts';
import { checkReservation, ResourceKind, reserveAll } from '../src/iam/limits.ts';
import { createDatabase, testDatabases } from './harness.ts';

const { Volume, PrimaryStorage, Cpu } = ResourceKind;

for (const kind of testDatabases()) {
  describe(`fewer round trips on ${kind}`, () => {
    let server: Server;
    let admin: CloudStackClient;
    let dataDir: string;
    let drop: () => Promise<void>;

    before(async () => {
      // In-process: the reservation service is called directly next to the API.
      dataDir = mkdtempSync(join(tmpdir(), 'nimbo-rt-'));
      const database = await createDatabase(kind, dataDir);
      drop = database.drop;
      server = await startServer(
        loadConfig(
          {},
          {
            port: 0,
            agentPort: 0,
            host: '127.0.0.1',
            dataDir,
            databaseUrl: database.url,
            logLevel: 'silent',
            seedLocalZone: false,
          },
        ),
      );
      admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
    });
    after(async () => {
      await server.stop();
      await drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    const db = () => server.app.store.db;
    const ctx = () => ({ app: server.app });
    const account = (name: string) =>
      db().selectFrom('accounts').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
    async function counts(ownerType: string, ownerId: number): Promise<Record<number, number>> {
      const rows = await db()
        .selectFrom('resource_counts')
        .select(['resource_type', 'count'])
        .where('owner_type', '=', ownerType as 'account')
        .where('owner_id', '=', ownerId)
        .execute();
      return Object.fromEntries(rows.map((r) => [r.resource_type, Number(r.count)]));
    }
    const is535 = (text: RegExp) => (e: any) => e.errorcode === 535 && text.test(e.message);

    test('several types reserved at once: limits of the account and its domains, all or nothing', async () => {
      const domain = (await admin.request<any>('createDomain', { name: 'rt' })).domain;
      await admin.request('createAccount', {
        username: 'rtuser',
        password: 'pw',
        email: 'rt@x.y',
        firstname: 'a',
        lastname: 'b',
        accounttype: 0,
        domainid: domain.id,
      });
      const a = await account('rtuser');
      await admin.request('updateResourceLimit', {
        resourcetype: 2,
        max: 2,
        account: 'rtuser',
        domainid: domain.id,
      });
      await admin.request('updateResourceLimit', { resourcetype: 10, max: 10, domainid: domain.id });

      // No count rows yet for CPU: they are made on the way.
      await inTransaction(server.app.store, (tx) =>
        reserveAll(ctx(), tx, a, [
          [Volume, 1],
          [PrimaryStorage, 4],
          [Cpu, 2],
        ]),
      );
      assert.deepEqual(await counts('account', a.id), { 2: 1, 8: 2, 10: 4 });
      assert.deepEqual(await counts('domain', a.domain_id), { 2: 1, 8: 2, 10: 4 });

      // The domain's primary storage limit (4 + 7 > 10) refuses the whole set; nothing changes.
      await assert.rejects(
        inTransaction(server.app.store, (tx) =>
          reserveAll(ctx(), tx, a, [
            [Volume, 1],
            [PrimaryStorage, 7],
          ]),
        ),
        is535(
          /Domain Resource Limit = 10 GiB, Current Domain Resource Amount = 4 GiB.*Requested Resource Amount = 7 GiB/,
        ),
      );
      assert.deepEqual(await counts('account', a.id), { 2: 1, 8: 2, 10: 4 });

      // Checked entry by entry as reserve one after the other would: the second volume is over.
      await assert.rejects(
        inTransaction(server.app.store, (tx) =>
          checkReservation(ctx(), tx, a, [
            [Volume, 1],
            [Volume, 1],
          ]),
        ),
        is535(
          /Account Resource Limit = 2, Current Account Resource Amount = 2,.*Requested Resource Amount = 1\./,
        ),
      );

      // Concurrent reservations cannot both take the last volume.
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, () =>
          inTransaction(server.app.store, async (tx) => {
            const r = await checkReservation(ctx(), tx, a, [
              [Volume, 1],
              [PrimaryStorage, 1],
            ]);
            await r.apply();
          }),
        ),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results)
        if (r.status === 'rejected') assert.ok(is535(/volume/)(r.reason), String(r.reason));
      assert.deepEqual(await counts('account', a.id), { 2: 2, 8: 2, 10: 5 });
      assert.deepEqual(await counts('domain', a.domain_id), { 2: 2, 8: 2, 10: 5 });

      // Releases are never refused.
      await inTransaction(server.app.store, (tx) =>
        reserveAll(ctx(), tx, a, [
          [Volume, -2],
          [PrimaryStorage, -5],
          [Cpu, -2],
        ]),
      );
      assert.deepEqual(await counts('account', a.id), { 2: 0, 8: 0, 10: 0 });
      const root = await db()
        .selectFrom('domains')
        .select('id')
        .where('parent_id', 'is', null)
        .executeTakeFirstOrThrow();
      assert.deepEqual(await counts('domain', root.id), { 2: 0, 8: 0, 10: 0 });
    });

    test('listZones: the page carries its tags; the count is asked only for a full page or one past the end', async () => {
      const zone = async (name: string) =>
        (
          await admin.request<any>('createZone', {
            name,
            networktype: 'Advanced',
            dns1: '8.8.8.8',
            internaldns1: '10.0.0.2',
          })
        ).zone;
      const z1 = await zone('rt-zone-1');
      const z2 = await zone('rt-zone-2');
      await admin.call('createTags', {
        resourcetype: 'Zone',
        resourceids: z2.id,
        tags: [
          { key: 'dc', value: 'par1' },
          { key: 'tier', value: 'gold' },
        ],
      });
      const all = await admin.request<any>('listZones', {});
      assert.equal(all.count, 2);
      assert.deepEqual(
        all.zone.map((z: any) => [z.id, z.tags]),
        [
          [z1.id, []],
          [
            z2.id,
            [
              { key: 'dc', value: 'par1', resourcetype: 'Zone', resourceid: z2.id },
              { key: 'tier', value: 'gold', resourcetype: 'Zone', resourceid: z2.id },
            ],
          ],
        ],
      );
      const second = await admin.request<any>('listZones', { page: 2, pagesize: 1 });
      assert.equal(second.count, 2);
      assert.deepEqual(
        second.zone.map((z: any) => z.id),
        [z2.id],
      );
      // Past the end: no row tells the count, which is still answered.
      assert.deepEqual(await admin.request<any>('listZones', { page: 3, pagesize: 1 }), { count: 2 });
      const tagged = await admin.request<any>('listZones', { tags: [{ key: 'tier', value: 'gold' }] });
      assert.deepEqual(
        tagged.zone.map((z: any) => z.id),
        [z2.id],
      );
      assert.equal(tagged.count, 1);
    });

    test('queryAsyncJobResult: an unknown job is the entity check’s 431', async () => {
      const missing = '00000000-0000-4000-8000-000000000000';
      await assert.rejects(
        admin.request('queryAsyncJobResult', { jobid: missing }),
        (e: any) =>
          e.errorcode === 431 &&
          e.message.includes(`Invalid parameter jobid value=${missing} due to incorrect`),
      );
    });
  });
}
