/**
 * Hands committed events to the webhooks that want them, from the outbox rows recordEvent writes
 * (target 'webhook'). Which webhooks want an event is as upstream's WebhookDaoImpl decides: enabled
 * ones that are Global, Local to the event's account, or Domain-scoped to the event's domain or one
 * of its ancestors. Each matching webhook gets up to webhook.delivery.tries tries with growing
 * pauses; every try is in its history. The outbox row goes once every webhook has been tried, so a
 * server that stops mid-way leaves the event to be dispatched again (at least once).
 */
import type { App } from '../context.ts';
import type { EventRow, WebhookRow } from '../db/schema.ts';
import { buildMessages } from '../events/message.ts';
import { claimOutbox, completeOutbox } from '../events/outbox.ts';
import {
  type DeliveryEvent,
  post,
  recordAttempt,
  retryPauseMs,
  trimHistory,
  WEBHOOK_DELIVERY_TIMEOUT,
  WEBHOOK_DELIVERY_TRIES,
} from './delivery.ts';
import { targetGuard } from './target.ts';

const POLL_MS = 200;
const BATCH = 20;
/** Long enough for a batch whose webhooks all time out on every try. */
const LEASE_MS = 15 * 60_000;

/** "/a/b/" → ["/", "/a/", "/a/b/"]: the domain and its ancestors by path. */
export function pathAndAncestors(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  const out = ['/'];
  for (let i = 1; i <= parts.length; i++) out.push(`/${parts.slice(0, i).join('/')}/`);
  return out;
}

/** The enabled webhooks an event goes to. */
export async function webhooksFor(
  app: App,
  e: Pick<EventRow, 'account_id' | 'domain_id' | 'created'>,
): Promise<WebhookRow[]> {
  const db = app.store.db;
  const domain = await db
    .selectFrom('domains')
    .select('path')
    .where('id', '=', e.domain_id)
    .executeTakeFirst();
  const paths = domain ? pathAndAncestors(domain.path) : ['/'];
  return (
    db
      .selectFrom('webhooks')
      .selectAll()
      .where('removed', 'is', null)
      .where('state', '=', 'Enabled')
      // A webhook gets the events from its creation on, not a backlog recorded before it existed.
      .where('created', '<=', e.created)
      .where((eb) =>
        eb.or([
          eb('scope', '=', 'Global'),
          eb.and([eb('scope', '=', 'Local'), eb('account_id', '=', e.account_id)]),
          eb.and([
            eb('scope', '=', 'Domain'),
            eb('domain_id', 'in', eb.selectFrom('domains').select('id').where('path', 'in', paths)),
          ]),
        ]),
      )
      .orderBy('id')
      .execute()
  );
}

/** Sends one event to one webhook, trying again after pauses; true when a try succeeded. */
export async function deliverWithRetries(
  app: App,
  webhook: WebhookRow,
  e: DeliveryEvent,
  signal?: AbortSignal,
): Promise<boolean> {
  const tries = app.settings.at(WEBHOOK_DELIVERY_TRIES, 'domain', webhook.domain_id);
  const timeout = app.settings.at(WEBHOOK_DELIVERY_TIMEOUT, 'domain', webhook.domain_id);
  const owner = await app.store.db
    .selectFrom('accounts')
    .select('type')
    .where('id', '=', webhook.account_id)
    .executeTakeFirst();
  // The target rule is the owner's now (an account could have been made root admin or not since).
  const guard = targetGuard(app, owner?.type ?? 0);
  for (let n = 1; n <= tries; n++) {
    const attempt = await post(webhook, e, timeout, { signal, guard });
    await recordAttempt(app, webhook.id, e, attempt);
    if (attempt.success) return true;
    if (signal?.aborted) break;
    if (n < tries) await pause(retryPauseMs(n), signal);
    if (signal?.aborted) break;
  }
  return false;
}

/** Waits, or less when the signal fires. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export class WebhookDispatcher {
  private stopped = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  private readonly abort = new AbortController();

  constructor(private readonly app: App) {}

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let more = false;
      try {
        more = await this.dispatchOnce();
      } catch (err) {
        this.app.log.warn({ err }, 'webhooks: dispatch failed; will retry');
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

  private async dispatchOnce(): Promise<boolean> {
    const claim = await claimOutbox(this.app, 'webhook', BATCH, LEASE_MS);
    if (!claim) return false;
    // The common case, no webhook at all: the batch is done in one statement.
    const anyHook = await this.app.store.db
      .selectFrom('webhooks')
      .select('id')
      .where('removed', 'is', null)
      .where('state', '=', 'Enabled')
      .limit(1)
      .executeTakeFirst();
    if (!anyHook) {
      await completeOutbox(
        this.app,
        claim.token,
        claim.rows.map((r) => r.id),
      );
      return claim.rows.length === BATCH;
    }
    for (const row of claim.rows) {
      // A stopping server leaves the rest of its claim (released at stop) to the next start or
      // another server.
      if (row.event) {
        const hooks = await webhooksFor(this.app, row.event);
        if (hooks.length > 0) {
          const [m] = await buildMessages(this.app, [row.event]);
          const e: DeliveryEvent = {
            eventId: row.event.id,
            eventUuid: row.event.uuid,
            eventType: row.event.type,
            accountUuid: m.accountUuid,
            payload: m.body,
          };
          await Promise.all(
            hooks.map(async (h) => {
              await deliverWithRetries(this.app, h, e, this.abort.signal);
              await trimHistory(this.app, h.id);
            }),
          );
        }
      }
      // Cut short by a stop: the event is dispatched again later (at least once, never lost).
      if (this.stopped) break;
      await completeOutbox(this.app, claim.token, [row.id]);
    }
    return claim.rows.length === BATCH;
  }
}
