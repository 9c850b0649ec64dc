/**
 * Resource state-change events (events/state-events.ts) on the real RabbitMQ at 127.0.0.1:5672:
 * deploying, stopping, starting and destroying a VM in the simulator zone publishes upstream's
 * ResourceStateEvent messages, a pre- and a post-transition message per move, in the order of the
 * moves, with upstream's routing keys and bodies. Skipped without a broker, except in CI.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import Database from 'better-sqlite3';
import { startServer, type TestServer } from './harness.ts';
import { type AdvancedZone, startAdvancedZone } from './public-ip-zone.ts';

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

const reachable = await new Promise<boolean>((resolve) => {
  const s = net.connect({ host: '127.0.0.1', port: 5672 }, () => {
    s.destroy();
    resolve(true);
  });
  s.on('error', () => resolve(false));
  s.setTimeout(2000, () => {
    s.destroy();
    resolve(false);
  });
});
if (!reachable && process.env.CI === 'true')
  throw new Error('RabbitMQ is not reachable on 127.0.0.1:5672 in CI');
const skip = reachable
  ? false
  : 'RabbitMQ is not running on 127.0.0.1:5672 (start it: rabbitmq-server -detached)';

type Body = Record<string, string>;

/** A queue bound to a run's exchange, collecting everything published there. */
class Collector {
  conn!: ChannelModel;
  ch!: Channel;
  messages: ConsumeMessage[] = [];
  async open(exchange: string): Promise<void> {
    this.conn = await amqp.connect(AMQP_URL);
    this.ch = await this.conn.createChannel();
    await this.ch.assertExchange(exchange, 'topic', { durable: true });
    const q = await this.ch.assertQueue('', { exclusive: true, autoDelete: true });
    // Everything, so the test also sees that state events and action events stay apart.
    await this.ch.bindQueue(q.queue, exchange, '#');
    await this.ch.consume(q.queue, (m) => m && this.messages.push(m), { noAck: true });
  }
  async close(exchange: string): Promise<void> {
    await this.ch?.deleteExchange(exchange).catch(() => undefined);
    await this.conn?.close().catch(() => undefined);
  }
  /** The ResourceStateEvent messages of one resource, in arrival order. */
  stateOf(id: string): ConsumeMessage[] {
    return this.messages.filter(
      (m) =>
        m.fields.routingKey.startsWith('management-server.ResourceStateEvent.') &&
        m.fields.routingKey.endsWith(`.${id}`),
    );
  }
  async waitForStates(id: string, n: number): Promise<ConsumeMessage[]> {
    const end = Date.now() + 20_000;
    while (this.stateOf(id).length < n) {
      if (Date.now() > end) throw new Error(`expected ${n} state messages, got ${this.stateOf(id).length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.stateOf(id);
  }
}

/** [event, old, new] of each move, from the post-transition messages. */
const moves = (ms: ConsumeMessage[]) =>
  ms
    .map((m) => ({ key: m.fields.routingKey, body: JSON.parse(m.content.toString('utf8')) as Body }))
    .filter((m) => m.body.status === 'postStateTransitionEvent')
    .map((m) => [m.key.split('.')[2], m.body['old-state'], m.body['new-state']]);

describe('resource state-change events (RabbitMQ)', { skip }, () => {
  const exchange = `nimbo-state-${randomBytes(4).toString('hex')}`;
  const bus = new Collector();
  const messages = bus.messages;
  const stateOf = (id: string) => bus.stateOf(id);
  const waitForStates = (id: string, n: number) => bus.waitForStates(id, n);
  let server: TestServer;

  before(async () => {
    await bus.open(exchange);
    server = await startServer({
      env: {
        NIMBOSTACK_EVENT_BUS_URL: AMQP_URL,
        NIMBOSTACK_EVENT_BUS_EXCHANGE: exchange,
        NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
      },
    });
  });
  after(async () => {
    await server?.stop();
    await bus.close(exchange);
  });

  test('deploy, stop, start and destroy publish the VM state machine moves in order', async () => {
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const templateid = (await admin.request<any>('listTemplates', { templatefilter: 'executable' }))
      .template[0].id;
    const serviceofferingid = (await admin.request<any>('listServiceOfferings', {})).serviceoffering[0].id;
    const t0 = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        name: 'state-vm',
      })
    ).virtualmachine;
    const id: string = vm.id;
    assert.equal(vm.state, 'Running');
    let got = await waitForStates(id, 4);
    console.log(`deploy: state messages arrived ${Date.now() - t0} ms after the call began`);
    assert.deepEqual(moves(got), [
      ['StartRequested', 'Stopped', 'Starting'],
      ['OperationSucceeded', 'Starting', 'Running'],
    ]);

    // Each message: upstream's routing key and body, pre before post with the same move.
    const first = got[0];
    assert.equal(
      first.fields.routingKey,
      `management-server.ResourceStateEvent.StartRequested.VirtualMachine.${id}`,
    );
    assert.equal(first.properties.deliveryMode, 2, 'persistent');
    const pre = JSON.parse(first.content.toString('utf8')) as Body;
    assert.deepEqual(Object.keys(pre).sort(), [
      'eventDateTime',
      'id',
      'new-state',
      'old-state',
      'resource',
      'status',
    ]);
    assert.equal(pre.resource, 'VirtualMachine');
    assert.equal(pre.id, id);
    assert.equal(pre.status, 'preStateTransitionEvent');
    assert.equal(pre['old-state'], 'Stopped');
    assert.equal(pre['new-state'], 'Starting');
    assert.match(pre.eventDateTime, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$/);
    const post = JSON.parse(got[1].content.toString('utf8')) as Body;
    assert.equal(got[1].fields.routingKey, first.fields.routingKey);
    assert.equal(post.status, 'postStateTransitionEvent');
    assert.equal(post['old-state'], 'Stopped');

    await admin.call('stopVirtualMachine', { id });
    got = await waitForStates(id, 8);
    await admin.call('startVirtualMachine', { id });
    got = await waitForStates(id, 12);
    await admin.call('destroyVirtualMachine', { id });
    const destroyed = (await admin.request<any>('listVirtualMachines', { id, listall: true }))
      .virtualmachine?.[0];
    got = await waitForStates(id, 18);
    await new Promise((r) => setTimeout(r, 300)); // nothing more should follow
    got = stateOf(id);
    assert.deepEqual(moves(got), [
      ['StartRequested', 'Stopped', 'Starting'],
      ['OperationSucceeded', 'Starting', 'Running'],
      ['StopRequested', 'Running', 'Stopping'],
      ['OperationSucceeded', 'Stopping', 'Stopped'],
      ['StartRequested', 'Stopped', 'Starting'],
      ['OperationSucceeded', 'Starting', 'Running'],
      ['StopRequested', 'Running', 'Stopping'],
      ['OperationSucceeded', 'Stopping', 'Stopped'],
      ['DestroyRequested', 'Stopped', 'Destroyed'],
    ]);
    assert.equal(destroyed?.state, 'Destroyed');
    // Every move is a pre/post pair with the same routing key.
    for (let i = 0; i < got.length; i += 2) {
      assert.equal(got[i].fields.routingKey, got[i + 1].fields.routingKey);
      assert.equal(JSON.parse(got[i].content.toString()).status, 'preStateTransitionEvent');
    }
    // The network's virtual router, started for the first VM, is a VM on the bus as upstream's.
    const router = (await admin.request<any>('listRouters', { listall: true })).router[0];
    const routerMoves = await waitForStates(router.id, 4);
    assert.equal(
      routerMoves[0].fields.routingKey,
      `management-server.ResourceStateEvent.StartRequested.VirtualMachine.${router.id}`,
    );
    assert.deepEqual(moves(routerMoves), [
      ['StartRequested', 'Stopped', 'Starting'],
      ['OperationSucceeded', 'Starting', 'Running'],
    ]);
    // The action events are still published, apart from the state events.
    assert.ok(
      messages.some(
        (m) => m.fields.routingKey === `management-server.ActionEvent.VM-STOP.VirtualMachine.${id}`,
      ),
    );
  });

  test('publish.resource.state.events=false stops them; action events go on', async () => {
    await server.admin.request('updateConfiguration', {
      name: 'publish.resource.state.events',
      value: 'false',
    });
    const admin = server.admin;
    const vm = (await admin.request<any>('listVirtualMachines', { name: 'state-vm', listall: true }))
      .virtualmachine[0];
    await admin.call('recoverVirtualMachine', { id: vm.id });
    const before = stateOf(vm.id).length;
    const key = `management-server.ActionEvent.VM-START.VirtualMachine.${vm.id}`;
    const starts = () => messages.filter((m) => m.fields.routingKey === key).length;
    const startsBefore = starts();
    await admin.call('startVirtualMachine', { id: vm.id });
    const end = Date.now() + 20_000;
    // The start's own VM.START events (its two moves) have arrived: the bus is not just idle.
    while (starts() < startsBefore + 2) {
      if (Date.now() > end) throw new Error('VM.START action events did not arrive');
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(stateOf(vm.id).length, before, 'no state messages while the setting is off');
    await server.admin.request('updateConfiguration', {
      name: 'publish.resource.state.events',
      value: 'true',
    });
  });

  test('volumes publish their moves as Volume', async () => {
    const admin = server.admin;
    const vm = (await admin.request<any>('listVirtualMachines', { name: 'state-vm', listall: true }))
      .virtualmachine[0];
    const root = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    assert.deepEqual(moves(await waitForStates(root.id, 2)), [['OperationSucceeded', 'Allocated', 'Ready']]);
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const diskofferingid = (await admin.request<any>('listDiskOfferings', {})).diskoffering.find(
      (d: any) => !d.iscustomized,
    ).id;
    const data = (await admin.call<any>('createVolume', { name: 'state-data', zoneid, diskofferingid }))
      .volume;
    await admin.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
    await admin.call('detachVolume', { id: data.id });
    await admin.request('deleteVolume', { id: data.id });
    const got = await waitForStates(data.id, 4);
    assert.equal(
      got[0].fields.routingKey,
      `management-server.ResourceStateEvent.OperationSucceeded.Volume.${data.id}`,
    );
    assert.deepEqual(moves(got), [
      ['OperationSucceeded', 'Allocated', 'Ready'],
      ['ExpungingRequested', 'Ready', 'Expunged'],
    ]);
  });

  test('a snapshot publishes its moves as Snapshot', async () => {
    const admin = server.admin;
    const vm = (await admin.request<any>('listVirtualMachines', { name: 'state-vm', listall: true }))
      .virtualmachine[0];
    const volume = (await admin.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    const snap = (await admin.call<any>('createSnapshot', { volumeid: volume.id })).snapshot;
    assert.equal(snap.state, 'BackedUp');
    await admin.call('deleteSnapshot', { id: snap.id });
    const got = await waitForStates(snap.id, 6);
    assert.equal(
      got[0].fields.routingKey,
      `management-server.ResourceStateEvent.CreateRequested.Snapshot.${snap.id}`,
    );
    assert.equal(JSON.parse(got[0].content.toString()).resource, 'Snapshot');
    assert.deepEqual(moves(got), [
      ['CreateRequested', 'Allocated', 'Creating'],
      ['OperationSucceeded', 'Creating', 'BackedUp'],
      ['DestroyRequested', 'BackedUp', 'Destroyed'],
    ]);
  });
});

describe('network state-change events (RabbitMQ, Advanced zone)', { skip }, () => {
  const exchange = `nimbo-state-${randomBytes(4).toString('hex')}`;
  const bus = new Collector();
  let zone: AdvancedZone;
  const waitForStates = (id: string, n: number) => bus.waitForStates(id, n);

  before(async () => {
    await bus.open(exchange);
    zone = await startAdvancedZone({
      publicIps: 2,
      hosts: 1,
      config: { eventBusUrl: AMQP_URL, eventBusExchange: exchange },
    });
  });
  after(async () => {
    await zone?.stop();
    await bus.close(exchange);
  });

  test('an isolated network publishes ImplementNetwork for its first VM and DestroyNetwork when deleted', async () => {
    const { admin, zoneid, templateid, offering: serviceofferingid, isolatedOffering } = zone;
    const net = (
      await admin.request<any>('createNetwork', {
        zoneid,
        networkofferingid: isolatedOffering,
        name: 'state-net',
      })
    ).network;
    assert.equal(net.state, 'Allocated');
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        networkids: net.id,
        name: 'state-net-vm',
      })
    ).virtualmachine;
    let got = await waitForStates(net.id, 2);
    assert.equal(
      got[0].fields.routingKey,
      `management-server.ResourceStateEvent.ImplementNetwork.Network.${net.id}`,
    );
    assert.equal(JSON.parse(got[0].content.toString()).resource, 'Network');
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await admin.call('deleteNetwork', { id: net.id });
    got = await waitForStates(net.id, 4);
    assert.deepEqual(moves(got), [
      ['ImplementNetwork', 'Allocated', 'Implemented'],
      ['DestroyNetwork', 'Implemented', 'Destroy'],
    ]);
  });
});

describe('state-change events wait out a broker outage and a restart', { skip }, () => {
  const exchange = `nimbo-state-${randomBytes(4).toString('hex')}`;
  const bus = new Collector();
  let server: TestServer;

  before(() => bus.open(exchange));
  after(async () => {
    await server?.stop();
    await bus.close(exchange);
  });

  test('moves made while the broker is unreachable are published after the server restarts', async () => {
    // A port nothing listens on: the broker is "down" for this server.
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const env = { NIMBOSTACK_EVENT_BUS_EXCHANGE: exchange, NIMBOSTACK_SEED_LOCAL_ZONE: 'true' };
    server = await startServer({
      env: { ...env, NIMBOSTACK_EVENT_BUS_URL: `amqp://guest:guest@127.0.0.1:${closed}` },
    });
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const templateid = (await admin.request<any>('listTemplates', { templatefilter: 'executable' }))
      .template[0].id;
    const serviceofferingid = (await admin.request<any>('listServiceOfferings', {})).serviceoffering[0].id;
    const t = Date.now();
    const vm = (
      await admin.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid,
        name: 'outage-vm',
      })
    ).virtualmachine;
    assert.ok(Date.now() - t < 10_000, 'the deploy did not wait for the broker');
    assert.equal(vm.state, 'Running');
    await server.stop({ keepData: true });
    const db = new Database(join(server.dataDir, 'nimbostack.db'), { readonly: true, fileMustExist: true });
    const pending = (
      db.prepare("SELECT count(*) AS n FROM event_outbox WHERE target = 'state'").get() as { n: number }
    ).n;
    db.close();
    assert.ok(pending >= 4, `state messages waiting across the stop: ${pending}`);
    assert.equal(bus.stateOf(vm.id).length, 0, 'nothing got through');
    server = await startServer({
      dataDir: server.dataDir,
      databaseUrl: server.databaseUrl,
      env: { ...env, NIMBOSTACK_EVENT_BUS_URL: AMQP_URL },
    });
    const got = await bus.waitForStates(vm.id, 4);
    // (The restarted local host no longer runs the VM and reports it off: a move of its own after these.)
    assert.deepEqual(moves(got).slice(0, 2), [
      ['StartRequested', 'Stopped', 'Starting'],
      ['OperationSucceeded', 'Starting', 'Running'],
    ]);
  });
});
