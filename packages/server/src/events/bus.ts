/**
 * Publishes events to RabbitMQ as upstream's RabbitMQ event bus does: a durable topic exchange
 * (`cloudstack-events` unless configured), routing key source.category.type.resourceType.resourceUUID,
 * persistent text/plain messages whose body is the event's JSON (events/message.ts).
 *
 * Unlike upstream, which publishes from the request thread and drops the event when the broker is
 * down, we publish from the outbox (events/outbox.ts) in the background: an API call never waits
 * for the broker, and an event stays in the database until the broker has confirmed it (publisher
 * confirms), across broker outages and server restarts. The client is amqplib: the most used AMQP
 * 0-9-1 client for Node, maintained, typed, with confirm channels; reconnecting is ours to do here
 * anyway (the outbox decides what is re-sent), so a client with its own retry queue would only hide
 * what is pending.
 */
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import type { App } from '../context.ts';
import { buildMessages } from './message.ts';
import { claimOutbox, claimStateOutbox, completeOutbox, completeStateOutbox, failOutbox } from './outbox.ts';

/** How often an idle publisher looks for new rows (the publish latency of a quiet system). */
const POLL_MS = 100;
const BATCH = 200;
const LEASE_MS = 30_000;
const CONFIRM_TIMEOUT_MS = 10_000;

export class EventBusPublisher {
  private conn?: ChannelModel;
  private channel?: ConfirmChannel;
  private stopped = false;
  private connectFailures = 0;
  private nextConnectAt = 0;
  private loop?: Promise<void>;
  private wake?: () => void;
  /** Events confirmed by the broker since start (for logs and tests). */
  published = 0;

  constructor(
    private readonly app: App,
    private readonly url: string,
    private readonly exchange: string,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.disconnect();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let more = false;
      try {
        more = await this.drainOnce();
      } catch (err) {
        this.app.log.warn({ err }, 'event bus: publishing failed; will retry');
        await this.disconnect();
      }
      if (!more && !this.stopped) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, POLL_MS);
          this.wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    }
  }

  private async connect(): Promise<ConfirmChannel | undefined> {
    if (this.channel) return this.channel;
    if (Date.now() < this.nextConnectAt) return undefined;
    try {
      const conn = await amqp.connect(this.url, { timeout: 5000 });
      // A lost connection only ends this one: what was not confirmed stays in the outbox.
      conn.on('error', (err) => this.app.log.warn({ err }, 'event bus: connection error'));
      conn.on('close', () => {
        if (this.conn === conn) {
          this.conn = undefined;
          this.channel = undefined;
        }
      });
      conn.on('blocked', (reason) => this.app.log.warn({ reason }, 'event bus: broker blocked publishing'));
      const channel = await conn.createConfirmChannel();
      channel.on('error', (err) => this.app.log.warn({ err }, 'event bus: channel error'));
      channel.on('close', () => {
        if (this.channel === channel) this.channel = undefined;
      });
      await channel.assertExchange(this.exchange, 'topic', { durable: true });
      this.conn = conn;
      this.channel = channel;
      if (this.connectFailures > 0) this.app.log.info('event bus: connected to the broker again');
      this.connectFailures = 0;
      return channel;
    } catch (err) {
      this.connectFailures++;
      // Reconnect quickly after a blip, at most every 10 s during a long outage.
      this.nextConnectAt = Date.now() + Math.min(10_000, 250 * 2 ** this.connectFailures);
      // Once per outage at warn level; the retries after it at debug.
      const level = this.connectFailures === 1 ? 'warn' : 'debug';
      this.app.log[level](
        { err: (err as Error).message, retryInMs: this.nextConnectAt - Date.now() },
        'event bus: cannot reach the broker; events wait in the outbox',
      );
      return undefined;
    }
  }

  private async disconnect(): Promise<void> {
    const conn = this.conn;
    this.conn = undefined;
    this.channel = undefined;
    await conn?.close().catch(() => undefined);
  }

  /** Publishes one batch of each kind; true when a full batch went out (there may be more). */
  private async drainOnce(): Promise<boolean> {
    const channel = await this.connect();
    if (!channel) return false;
    const events = await this.drainEvents(channel);
    const states = await this.drainStates(channel);
    return events || states;
  }

  /** Resource state-change messages (events/state-events.ts), rendered when they were written. */
  private async drainStates(channel: ConfirmChannel): Promise<boolean> {
    const claim = await claimStateOutbox(this.app, BATCH, LEASE_MS);
    if (!claim) return false;
    const live = claim.rows.filter((r) => r.message);
    try {
      for (const r of live) {
        const m = r.message!;
        channel.publish(this.exchange, m.routing_key, Buffer.from(m.body), {
          persistent: true,
          contentType: 'text/plain',
          messageId: m.uuid,
          timestamp: Math.floor(m.created / 1000),
          appId: 'nimbostack',
        });
      }
      await withTimeout(channel.waitForConfirms(), CONFIRM_TIMEOUT_MS, 'broker did not confirm in time');
    } catch (err) {
      await failOutbox(this.app, claim.token, live, (err as Error).message);
      throw err;
    }
    await completeStateOutbox(this.app, claim.token, claim.rows);
    this.published += live.length;
    return claim.rows.length === BATCH;
  }

  /** listEvents events (category ActionEvent). */
  private async drainEvents(channel: ConfirmChannel): Promise<boolean> {
    const claim = await claimOutbox(this.app, 'bus', BATCH, LEASE_MS);
    if (!claim) return false;
    const gone = claim.rows.filter((r) => !r.event).map((r) => r.id);
    const live = claim.rows.filter((r) => r.event);
    const messages = await buildMessages(
      this.app,
      live.map((r) => r.event!),
    );
    try {
      for (const m of messages) {
        channel.publish(this.exchange, m.routingKey, Buffer.from(m.body), {
          persistent: true,
          contentType: 'text/plain',
          messageId: m.event.uuid,
          timestamp: Math.floor(m.event.created / 1000),
          appId: 'nimbostack',
        });
      }
      await withTimeout(channel.waitForConfirms(), CONFIRM_TIMEOUT_MS, 'broker did not confirm in time');
    } catch (err) {
      await failOutbox(this.app, claim.token, live, (err as Error).message);
      throw err;
    }
    await completeOutbox(this.app, claim.token, [...gone, ...live.map((r) => r.id)]);
    this.published += messages.length;
    return claim.rows.length === BATCH;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, text: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(text)), ms);
    }),
  ]);
}
