/**
 * Several management servers on one database (NIMBOSTACK_TEST_DBS: postgres and mysql in
 * `npm run test:db`; SQLite serves one server), all publishing to RabbitMQ: each event reaches the exchange exactly
 * once, whichever server recorded it, because servers claim outbox rows with a conditional UPDATE
 * (events/outbox.ts). Skipped with a message when no broker runs locally; CI starts one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp, { type ChannelModel, type ConsumeMessage } from 'amqplib';
import { createDatabase, startServer, type TestServer, testDatabases } from './harness.ts';

const reachable = await new Promise<boolean>((resolve) => {
  const s = net.connect({ host: '127.0.0.1', port: 5672 }, () => {
    s.destroy();
    resolve(true);
  });
  s.on('error', () => resolve(false));
});
if (!reachable && process.env.CI === 'true')
  throw new Error('RabbitMQ is not reachable on 127.0.0.1:5672 in CI');
const skip = reachable
  ? false
  : 'RabbitMQ is not running on 127.0.0.1:5672 (start it: rabbitmq-server -detached)';

for (const kind of testDatabases().filter((d) => d !== 'sqlite')) {
  describe(`event bus with two management servers on ${kind}`, { skip }, () => {
    const exchange = `nimbo-test-${randomBytes(4).toString('hex')}`;
    const got: ConsumeMessage[] = [];
    let conn: ChannelModel;
    let servers: TestServer[] = [];
    let db: { url: string; drop(): Promise<void> };

    before(async () => {
      conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672');
      const ch = await conn.createChannel();
      await ch.assertExchange(exchange, 'topic', { durable: true });
      const q = await ch.assertQueue('', { exclusive: true });
      await ch.bindQueue(q.queue, exchange, '#');
      await ch.consume(q.queue, (m) => m && got.push(m), { noAck: true });
      const dir = mkdtempSync(join(tmpdir(), 'nimbo-bus-'));
      db = await createDatabase(kind, dir);
      const env = {
        NIMBOSTACK_EVENT_BUS_URL: 'amqp://guest:guest@127.0.0.1:5672',
        NIMBOSTACK_EVENT_BUS_EXCHANGE: exchange,
      };
      // The first server creates the schema; the second joins the same database.
      const first = await startServer({
        dataDir: dir,
        databaseUrl: db.url,
        env: { ...env, NIMBOSTACK_SERVER_NAME: 'ms-a' },
      });
      const second = await startServer({
        dataDir: mkdtempSync(join(tmpdir(), 'nimbo-bus-')),
        databaseUrl: db.url,
        env: { ...env, NIMBOSTACK_SERVER_NAME: 'ms-b', NIMBOSTACK_SECRET_KEY_FILE: join(dir, 'server.key') },
      });
      servers = [first, second];
    });
    after(async () => {
      for (const s of servers) await s.stop({ keepData: true });
      await db?.drop();
      await conn?.close().catch(() => undefined);
    });

    test('each event is published once, whichever server recorded it', async () => {
      const ids: string[] = [];
      // Interleaved and concurrent: both servers' publishers see rows written by both.
      await Promise.all(
        servers.map(async (s, n) => {
          for (let i = 0; i < 30; i++)
            ids.push((await s.admin.request<any>('createDomain', { name: `ms${n}-${i}` })).domain.id);
        }),
      );
      const deadline = Date.now() + 30_000;
      const count = (id: string) => got.filter((m) => m.fields.routingKey.endsWith(`.${id}`)).length;
      while (Date.now() < deadline && ids.some((id) => count(id) === 0))
        await new Promise((r) => setTimeout(r, 100));
      // A moment more, for any duplicate still on its way.
      await new Promise((r) => setTimeout(r, 1000));
      for (const id of ids) assert.equal(count(id), 1, `event of domain ${id} published ${count(id)} times`);
    });
  });
}
