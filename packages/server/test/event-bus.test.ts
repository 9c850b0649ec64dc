/**
 * Events to RabbitMQ (events/bus.ts) against the real broker on 127.0.0.1:5672: the routing key
 * and body are upstream's; while the broker is unreachable API calls still succeed and events wait
 * in the outbox; they arrive once it is back, and after a server restart too.
 *
 * The broker is reached through a TCP relay in this process, so the test can cut the server off
 * from the broker (and restore it) without touching the machine's RabbitMQ. Each run uses its own
 * exchange, so parallel runs do not see each other's events. Without a broker the suite is skipped
 * with a message, except in CI (CI=true), where .ci/run starts one and its absence is a failure.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import Database from 'better-sqlite3';
import { startServer, type TestServer } from './harness.ts';

const BROKER = { host: '127.0.0.1', port: 5672 };
const AMQP_URL = `amqp://guest:guest@${BROKER.host}:${BROKER.port}`;

async function brokerReachable(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(BROKER, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.setTimeout(2000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

const reachable = await brokerReachable();
if (!reachable && process.env.CI === 'true')
  throw new Error('RabbitMQ is not reachable on 127.0.0.1:5672 in CI');
const skip = reachable
  ? false
  : 'RabbitMQ is not running on 127.0.0.1:5672 (start it: rabbitmq-server -detached)';

/** A TCP relay to the broker that can be cut (connections dropped, port closed) and restored. */
class Relay {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();
  port = 0;
  async up(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(BROKER);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', r));
    this.port = (this.server!.address() as net.AddressInfo).port;
  }
  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
  }
}

/** A queue bound to the run's exchange, collecting what arrives. */
class Consumer {
  conn!: ChannelModel;
  ch!: Channel;
  messages: ConsumeMessage[] = [];
  /** When each message arrived (ms), parallel to messages. */
  arrivals: number[] = [];
  async open(exchange: string): Promise<void> {
    this.conn = await amqp.connect(AMQP_URL);
    this.ch = await this.conn.createChannel();
    // Declared as the server declares it (durable topic), so either may come first.
    await this.ch.assertExchange(exchange, 'topic', { durable: true });
    const q = await this.ch.assertQueue('', { exclusive: true, autoDelete: true });
    await this.ch.bindQueue(q.queue, exchange, 'management-server.ActionEvent.#');
    await this.ch.consume(
      q.queue,
      (m) => {
        if (!m) return;
        this.messages.push(m);
        this.arrivals.push(Date.now());
      },
      { noAck: true },
    );
  }
  bodies(): Record<string, string>[] {
    return this.messages.map((m) => JSON.parse(m.content.toString('utf8')));
  }
  async waitFor(pred: (m: ConsumeMessage) => boolean, timeoutMs = 20_000): Promise<ConsumeMessage> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.messages.find(pred);
      if (m) return m;
      if (Date.now() > end) throw new Error('message did not arrive in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  async close(exchange: string): Promise<void> {
    await this.ch.deleteExchange(exchange).catch(() => undefined);
    await this.conn.close().catch(() => undefined);
  }
}

function pendingBus(server: TestServer): number {
  const db = new Database(join(server.dataDir, 'nimbostack.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM event_outbox WHERE target = 'bus'").get() as { n: number })
      .n;
  } finally {
    db.close();
  }
}

const keyOf = (m: ConsumeMessage) => m.fields.routingKey;

describe('event bus (RabbitMQ)', { skip }, () => {
  const exchange = `nimbo-test-${randomBytes(4).toString('hex')}`;
  const consumer = new Consumer();
  const relay = new Relay();
  let server: TestServer;

  before(async () => {
    await consumer.open(exchange);
    await relay.up();
    server = await startServer({
      env: {
        NIMBOSTACK_EVENT_BUS_URL: `amqp://guest:guest@127.0.0.1:${relay.port}`,
        NIMBOSTACK_EVENT_BUS_EXCHANGE: exchange,
        // A ready zone with a simulated host, for deployVirtualMachine.
        NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
      },
    });
  });
  after(async () => {
    await server?.stop();
    await relay.down();
    await consumer.close(exchange);
  });

  test('createDomain is published with upstream routing key and body', async () => {
    const t0 = Date.now();
    const d = (await server.admin.request<any>('createDomain', { name: 'bus-a' })).domain;
    const answered = Date.now();
    const m = await consumer.waitFor((x) => keyOf(x).endsWith(`.${d.id}`));
    const latency = Date.now() - answered;
    assert.equal(keyOf(m), `management-server.ActionEvent.DOMAIN-CREATE.Domain.${d.id}`);
    assert.equal(m.properties.deliveryMode, 2, 'persistent');
    assert.equal(m.properties.contentType, 'text/plain');
    const body = JSON.parse(m.content.toString('utf8'));
    const admin = (await server.admin.request<any>('listUsers', { username: 'admin' })).user[0];
    assert.equal(body.event, 'DOMAIN.CREATE');
    assert.equal(body.status, 'Completed');
    assert.equal(body.entity, 'Domain');
    assert.equal(body.entityuuid, d.id);
    assert.equal(body.user, admin.id);
    assert.equal(body.account, admin.accountid);
    assert.match(body.description, /bus-a/);
    assert.match(body.eventDateTime, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$/);
    // The same event is what listEvents shows.
    const ev = (await server.admin.request<any>('listEvents', { type: 'DOMAIN.CREATE', resourceid: d.id }))
      .event;
    assert.equal(ev.length, 1);
    assert.equal(m.properties.messageId, ev[0].id);
    console.log(`publish latency after the API answer: ${latency} ms (call took ${answered - t0} ms)`);
  });

  test('deployVirtualMachine publishes VM.CREATE keyed by the VM', async () => {
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const templateid = (await admin.request<any>('listTemplates', { templatefilter: 'executable' }))
      .template[0].id;
    const serviceofferingid = (await admin.request<any>('listServiceOfferings', {})).serviceoffering[0].id;
    const vm = await admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid,
      name: 'bus-vm',
    });
    const id = vm.virtualmachine.id;
    const m = await consumer.waitFor(
      (x) =>
        keyOf(x) === `management-server.ActionEvent.VM-CREATE.VirtualMachine.${id}` &&
        JSON.parse(x.content.toString()).status === 'Completed',
    );
    const body = JSON.parse(m.content.toString('utf8'));
    assert.equal(body.event, 'VM.CREATE');
    assert.equal(body.entity, 'VirtualMachine');
    assert.equal(body.entityuuid, id);
  });

  test('async commands publish Scheduled, Started and Completed', async () => {
    const d = (await server.admin.request<any>('createDomain', { name: 'bus-gone' })).domain;
    const job = await server.admin.request<any>('deleteDomain', { id: d.id });
    await server.admin.waitForJob(job.jobid);
    for (const state of ['Scheduled', 'Started', 'Completed'])
      await consumer.waitFor(
        (x) =>
          keyOf(x).startsWith('management-server.ActionEvent.DOMAIN-DELETE.') &&
          JSON.parse(x.content.toString()).status === state,
      );
  });

  test('while the broker is unreachable calls succeed and events wait; they arrive once it is back', async () => {
    await relay.down();
    const names = ['bus-down-1', 'bus-down-2', 'bus-down-3', 'bus-down-4', 'bus-down-5'];
    const ids: string[] = [];
    for (const name of names) {
      const t = Date.now();
      ids.push((await server.admin.request<any>('createDomain', { name })).domain.id);
      assert.ok(Date.now() - t < 2000, 'the API call does not wait for the broker');
    }
    await new Promise((r) => setTimeout(r, 1500));
    for (const id of ids)
      assert.ok(!consumer.messages.some((m) => keyOf(m).endsWith(id)), 'nothing got through');
    assert.ok(pendingBus(server) >= ids.length, 'the events wait in the outbox');
    const back = Date.now();
    await relay.up();
    for (const id of ids) await consumer.waitFor((m) => keyOf(m).endsWith(id), 30_000);
    console.log(`drained ${ids.length} events ${Date.now() - back} ms after the broker came back`);
    // Published once each, in order.
    const seen = consumer.messages
      .filter((m) => ids.some((id) => keyOf(m).endsWith(id)))
      .map((m) => keyOf(m).split('.')[4]);
    assert.deepEqual(seen, ids);
    for (let i = 0; i < 50 && pendingBus(server) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(pendingBus(server), 0);
  });

  test('events pending when the server stops are published after it starts again', async () => {
    await relay.down();
    const ids: string[] = [];
    for (const name of ['bus-restart-1', 'bus-restart-2'])
      ids.push((await server.admin.request<any>('createDomain', { name })).domain.id);
    await server.stop({ keepData: true });
    await relay.up();
    const pending = pendingBus(server);
    assert.ok(pending >= 2, `pending across the stop: ${pending}`);
    const started = Date.now();
    server = await startServer({
      dataDir: server.dataDir,
      databaseUrl: server.databaseUrl,
      env: {
        NIMBOSTACK_EVENT_BUS_URL: `amqp://guest:guest@127.0.0.1:${relay.port}`,
        NIMBOSTACK_EVENT_BUS_EXCHANGE: exchange,
      },
    });
    for (const id of ids) await consumer.waitFor((m) => keyOf(m).endsWith(id), 30_000);
    console.log(`after the restart, pending events arrived within ${Date.now() - started} ms of the start`);
    const once = consumer.messages.filter((m) => keyOf(m).endsWith(ids[0]));
    assert.equal(once.length, 1, 'published once');
  });

  test('a burst of events is published in order (throughput)', async () => {
    const before = consumer.messages.length;
    const n = 200;
    const t = Date.now();
    const created: string[] = [];
    for (let i = 0; i < n; i++)
      created.push((await server.admin.request<any>('createDomain', { name: `burst-${i}` })).domain.id);
    const apiDone = Date.now();
    await consumer.waitFor((m) => keyOf(m).endsWith(created[n - 1]), 30_000);
    const last = Date.now();
    const got = consumer.messages
      .slice(before)
      .filter((m) => keyOf(m).includes('DOMAIN-CREATE'))
      .map((m) => keyOf(m).split('.')[4]);
    assert.deepEqual(got, created);
    console.log(
      `${n} createDomain calls in ${apiDone - t} ms (${Math.round((n * 1000) / (apiDone - t))}/s); last event arrived ${last - apiDone} ms after the last call`,
    );
  });

  test('a backlog drains in batches once the broker is back (publisher throughput)', async () => {
    await relay.down();
    const n = 1000;
    const created: string[] = [];
    for (let i = 0; i < n; i++)
      created.push((await server.admin.request<any>('createDomain', { name: `backlog-${i}` })).domain.id);
    const mark = consumer.messages.length;
    await relay.up();
    await consumer.waitFor((m) => keyOf(m).endsWith(created[n - 1]), 60_000);
    const arrived = consumer.messages.slice(mark).filter((m) => created.includes(keyOf(m).split('.')[4]));
    assert.equal(arrived.length, n);
    // The broker's timestamps are seconds; time the drain by arrival in this process instead.
    const first = consumer.arrivals[mark];
    const last = consumer.arrivals[consumer.arrivals.length - 1];
    console.log(
      `backlog of ${n} events drained in ${last - first} ms (${Math.round((n * 1000) / Math.max(1, last - first))}/s)`,
    );
  });
});
