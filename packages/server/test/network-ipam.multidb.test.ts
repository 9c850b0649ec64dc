/**
 * The IP address manager under real concurrency on every database: PostgreSQL and MySQL run the
 * deployments' transactions in parallel on pooled connections, where only the unique
 * (network, ip) key stands between two VMs and one address.
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
import { allocateNics, releaseNics, resolveSecurityGroups } from '../src/network/index.ts';
import { createDatabase, testDatabases } from './harness.ts';

for (const kind of testDatabases()) {
  describe(`IP address manager on ${kind}`, () => {
    let dir: string;
    let database: { url: string; drop(): Promise<void> };
    let server: Server;
    let admin: CloudStackClient;
    let zoneId: number;
    let podId: number;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'nimbo-ipam-'));
      database = await createDatabase(kind, dir);
      server = await startServer(
        loadConfig(
          {},
          {
            port: 0,
            agentPort: 0,
            host: '127.0.0.1',
            dataDir: dir,
            databaseUrl: database.url,
            logLevel: 'silent',
            seedLocalZone: false,
          },
        ),
      );
      admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
      const zone = (
        await admin.request<any>('createZone', {
          name: 'ipam',
          networktype: 'Basic',
          dns1: '8.8.8.8',
          internaldns1: '10.0.0.2',
        })
      ).zone;
      const pod = (
        await admin.request<any>('createPod', {
          zoneid: zone.id,
          name: 'ipam-pod',
          gateway: '192.168.30.1',
          netmask: '255.255.255.0',
          startip: '192.168.30.10',
          endip: '192.168.30.20',
        })
      ).pod;
      await admin.request('createVlanIpRange', {
        podid: pod.id,
        gateway: '10.80.0.1',
        netmask: '255.255.255.192',
        startip: '10.80.0.2',
        endip: '10.80.0.41',
      });
      const db = server.app.store.db;
      zoneId = (
        await db.selectFrom('zones').select('id').where('uuid', '=', zone.id).executeTakeFirstOrThrow()
      ).id;
      podId = (await db.selectFrom('pods').select('id').where('uuid', '=', pod.id).executeTakeFirstOrThrow())
        .id;
    });
    after(async () => {
      await server.stop();
      await database.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    test('parallel deployments get distinct addresses until the range is exhausted (533)', async () => {
      const db = server.app.store.db;
      const ctx = { app: server.app };
      // 50 deployments race for 40 addresses.
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          // As deployVirtualMachine does: MariaDB may abort one of the racing transactions.
          inTransaction(server.app.store, (tx) =>
            allocateNics(ctx, tx, { vm: { id: 1 + i, uuid: `v${i}`, accountId: 1, zoneId, podId } }),
          ),
        ),
      );
      const won = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value[0]!] : []));
      const lost = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
      assert.equal(won.length, 40);
      assert.equal(new Set(won.map((n) => n.ip4)).size, 40);
      assert.equal(new Set(won.map((n) => n.mac)).size, 40);
      assert.equal(lost.length, 10);
      assert.ok(
        lost.every((e) => e.errorcode === 533 && /Insufficient address capacity/.test(e.message)),
        lost.map((e) => `${e.errorcode ?? e.code}: ${e.message}`).join('\n'),
      );
      const rows = await db.selectFrom('guest_ip_allocations').select('ip4').execute();
      assert.equal(rows.length, 40);

      await db.transaction().execute(async (tx) => {
        for (let i = 0; i < 50; i++) await releaseNics(ctx, tx, 1 + i);
      });
      assert.equal((await db.selectFrom('guest_ip_allocations').select('ip4').execute()).length, 0);
    });

    test('concurrent first uses create one default security group', async () => {
      const account = await server.app.store.db
        .selectFrom('accounts')
        .selectAll()
        .where('name', '=', 'admin')
        .executeTakeFirstOrThrow();
      const zone = await server.app.store.db
        .selectFrom('zones')
        .selectAll()
        .where('id', '=', zoneId)
        .executeTakeFirstOrThrow();
      const ids = await Promise.all(
        Array.from({ length: 8 }, () => resolveSecurityGroups({ app: server.app }, account, { zone })),
      );
      assert.equal(new Set(ids.flat()).size, 1);
    });
  });
}
