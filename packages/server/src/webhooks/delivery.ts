/**
 * Webhook deliveries as CloudStack 4.20 makes them (WebhookDeliveryThread): an HTTP POST of the
 * event's JSON with the headers X-CS-Event-ID (event UUID), X-CS-Event (event type), User-Agent
 * CS-Hookshot/<account UUID> and, when the webhook has a secret, X-CS-Signature: the Base64
 * HMAC-SHA256 of the exact body bytes keyed with the secret. Each try is kept in the delivery
 * history (webhook_deliveries) with the response code and an excerpt of the answer.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { App } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { WebhookDeliveryRow, WebhookRow } from '../db/schema.ts';
import { defineSetting } from '../settings/settings.ts';
import { guardedLookup, refuseLiteral, type TargetGuard } from './target.ts';

export const WEBHOOK_DELIVERY_TRIES = defineSetting({
  name: 'webhook.delivery.tries',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 3,
  min: 1,
  max: 10,
  scopes: ['domain'],
  description:
    "How many times an event is sent to a webhook before it is given up, with a growing pause between tries; each try appears in the webhook's delivery history.",
});

export const WEBHOOK_DELIVERY_TIMEOUT = defineSetting({
  name: 'webhook.delivery.timeout',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 10,
  min: 1,
  max: 120,
  scopes: ['domain'],
  description:
    'Seconds one webhook try may take (connecting, sending and reading the answer) before it counts as failed.',
});

export const WEBHOOK_DELIVERIES_LIMIT = defineSetting({
  name: 'webhook.deliveries.limit',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 10,
  min: 1,
  description:
    'How many of the latest deliveries of each webhook are kept in its history; older ones are deleted.',
});

/** Pause before try n+1 (ms): 0.5 s, 1 s, 2 s … */
export function retryPauseMs(tryNumber: number): number {
  return Math.min(30_000, 500 * 2 ** (tryNumber - 1));
}

/** The answer text kept in the history is cut to this many characters. */
const RESPONSE_EXCERPT = 2000;
export const TEST_EVENT_TYPE = 'TEST.WEBHOOK';

export function sign(payload: string, secret: string): string {
  return createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(Buffer.from(payload, 'utf8'))
    .digest('base64');
}

export interface DeliveryEvent {
  /** The event's row id, or null for a test payload. */
  eventId: number | null;
  eventUuid: string;
  eventType: string;
  accountUuid: string | undefined;
  payload: string;
}

export interface Attempt {
  headers: string;
  payload: string;
  success: boolean;
  response: string;
  start: number;
  end: number;
}

function isJson(text: string): boolean {
  try {
    const v = JSON.parse(text);
    return typeof v === 'object' && v !== null;
  } catch {
    return false;
  }
}

/** One HTTP POST; never throws (a failure is an unsuccessful attempt with the reason). */
export async function post(
  target: Pick<WebhookRow, 'payload_url' | 'secret_key' | 'ssl_verification'>,
  e: DeliveryEvent,
  timeoutSec: number,
  opts: {
    signal?: AbortSignal;
    /** Refuses internal addresses (webhooks/target.ts); undefined for root admins' webhooks. */
    guard?: TargetGuard;
  } = {},
): Promise<Attempt> {
  const { signal, guard } = opts;
  const start = Date.now();
  const body = Buffer.from(e.payload, 'utf8');
  const headers: Record<string, string> = {
    'X-CS-Event-ID': e.eventUuid,
    'X-CS-Event': e.eventType,
    'User-Agent': `CS-Hookshot/${e.accountUuid ?? ''}`,
    'Content-Type': isJson(e.payload) ? 'application/json; charset=UTF-8' : 'text/plain; charset=UTF-8',
    'Content-Length': String(body.length),
  };
  if (target.secret_key?.trim()) headers['X-CS-Signature'] = sign(e.payload, target.secret_key);
  const headerText = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\n');
  const done = (success: boolean, response: string): Attempt => ({
    headers: headerText,
    payload: e.payload,
    success,
    response: response.slice(0, RESPONSE_EXCERPT),
    start,
    end: Date.now(),
  });
  let url: URL;
  try {
    url = new URL(target.payload_url);
  } catch {
    return done(false, `Failed due to : invalid URL ${target.payload_url}`);
  }
  const refused = guard && refuseLiteral(guard, url);
  if (refused) return done(false, `Failed due to : ${refused}`);
  const lib = url.protocol === 'https:' ? https : http;
  return new Promise<Attempt>((resolve) => {
    const req = lib.request(
      url,
      {
        method: 'POST',
        headers,
        timeout: timeoutSec * 1000,
        // sslverification=false: upstream trusts any certificate and host name; so do we.
        ...(url.protocol === 'https:' ? { rejectUnauthorized: target.ssl_verification === 1 } : {}),
        // A stopping server does not wait out a slow receiver: the try fails and is recorded.
        ...(signal ? { signal } : {}),
        // Names are checked on the addresses this connection resolves them to: a new connection
        // each time, as a kept-alive one would skip the look-up and its check.
        ...(guard ? { lookup: guardedLookup(guard), agent: false } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          // Keep only what the excerpt needs; the rest is read and dropped.
          if (size < RESPONSE_EXCERPT * 4) chunks.push(c);
          size += c.length;
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const code = res.statusCode ?? 0;
          resolve(
            done(code >= 200 && code < 300, code >= 200 && code < 300 ? text : `HTTP ${code}: ${text}`),
          );
        });
        res.on('error', (err) => resolve(done(false, `Failed due to : ${err.message}`)));
      },
    );
    const deadline = setTimeout(
      () => req.destroy(new Error(`no answer within ${timeoutSec} s`)),
      timeoutSec * 1000,
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutSec} s`)));
    req.on('error', (err) => resolve(done(false, `Failed due to : ${err.message}`)));
    req.on('close', () => clearTimeout(deadline));
    req.end(body);
  });
}

/** Records one attempt in the history and returns its row id. */
export async function recordAttempt(
  app: App,
  webhookId: number,
  e: DeliveryEvent,
  a: Attempt,
): Promise<number> {
  return insertId(app.store, app.store.db, 'webhook_deliveries', {
    uuid: app.ids.uuid(),
    webhook_id: webhookId,
    event_id: e.eventId,
    event_type: e.eventType,
    management_server_id: app.server.id,
    headers: a.headers,
    payload: a.payload,
    success: a.success ? 1 : 0,
    response: a.response,
    start_time: a.start,
    end_time: a.end,
  });
}

/** Keeps the newest webhook.deliveries.limit deliveries of a webhook. */
export async function trimHistory(app: App, webhookId: number): Promise<void> {
  const keep = app.settings.get(WEBHOOK_DELIVERIES_LIMIT);
  const db = app.store.db;
  const edge = await db
    .selectFrom('webhook_deliveries')
    .select('id')
    .where('webhook_id', '=', webhookId)
    .orderBy('id', 'desc')
    .offset(keep)
    .limit(1)
    .executeTakeFirst();
  if (edge)
    await db
      .deleteFrom('webhook_deliveries')
      .where('webhook_id', '=', webhookId)
      .where('id', '<=', edge.id)
      .execute();
}

export type { WebhookDeliveryRow };
