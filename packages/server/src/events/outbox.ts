/**
 * The event outbox (migration 0022): rows written by recordEvent in the event's transaction (and
 * by recordStateChange in the state change's, migration 0031) and worked off by the consumers
 * (events/bus.ts for RabbitMQ, webhooks/dispatch.ts for webhooks).
 *
 * Claiming is a conditional UPDATE that writes a lease token only on rows whose lease is free or
 * expired, then reads back the rows holding that token: when several management servers share the
 * database, two that pick the same candidates cannot both win a row (the second UPDATE re-checks
 * the lease after the first commits), and a server that dies mid-work leaves rows that another
 * takes over when the lease runs out. Delivery is therefore at least once, never zero times.
 */
import { randomUUID } from 'node:crypto';
import type { ExpressionBuilder } from 'kysely';
import type { App } from '../context.ts';
import type { Database, EventRow, StateEventRow } from '../db/schema.ts';

export type OutboxTarget = 'bus' | 'webhook' | 'state';

export interface Claimed {
  token: string;
  /** The claimed outbox rows, oldest first, with their event (missing if it was deleted). */
  rows: { id: number; attempts: number; event: EventRow | undefined }[];
}

export interface ClaimedState {
  token: string;
  /** The claimed 'state' rows, oldest first, with their message (missing if it was deleted). */
  rows: { id: number; attempts: number; message: StateEventRow | undefined }[];
}

/** Claims up to `limit` due rows of one target for `leaseMs`; undefined when none is due. */
async function claimRows(
  app: App,
  target: OutboxTarget,
  limit: number,
  leaseMs: number,
): Promise<{ token: string; rows: { id: number; event_id: number; attempts: number }[] } | undefined> {
  const db = app.store.db;
  const now = Date.now();
  const free = (eb: ExpressionBuilder<Database, 'event_outbox'>) =>
    eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]);
  const candidates = await db
    .selectFrom('event_outbox')
    .select('id')
    .where('target', '=', target)
    .where('next_attempt', '<=', now)
    .where(free)
    .orderBy('id')
    .limit(limit)
    .execute();
  if (candidates.length === 0) return undefined;
  const token = `${app.server.id}:${randomUUID()}`;
  await db
    .updateTable('event_outbox')
    .set({ lease_token: token, lease_server: app.server.id, lease_until: now + leaseMs })
    .where(
      'id',
      'in',
      candidates.map((c) => c.id),
    )
    .where(free)
    .execute();
  const rows = await db
    .selectFrom('event_outbox')
    .select(['id', 'event_id', 'attempts'])
    .where('lease_token', '=', token)
    .orderBy('id')
    .execute();
  return rows.length === 0 ? undefined : { token, rows };
}

/** Claims due rows of an event target ('bus' or 'webhook') with their events. */
export async function claimOutbox(
  app: App,
  target: 'bus' | 'webhook',
  limit: number,
  leaseMs: number,
): Promise<Claimed | undefined> {
  const claim = await claimRows(app, target, limit, leaseMs);
  if (!claim) return undefined;
  const events = await app.store.db
    .selectFrom('events')
    .selectAll()
    .where(
      'id',
      'in',
      claim.rows.map((r) => r.event_id),
    )
    .execute();
  const byId = new Map(events.map((e) => [e.id, e]));
  return {
    token: claim.token,
    rows: claim.rows.map((r) => ({ id: r.id, attempts: r.attempts, event: byId.get(r.event_id) })),
  };
}

/** Claims due resource state-change messages (target 'state'). */
export async function claimStateOutbox(
  app: App,
  limit: number,
  leaseMs: number,
): Promise<ClaimedState | undefined> {
  const claim = await claimRows(app, 'state', limit, leaseMs);
  if (!claim) return undefined;
  const messages = await app.store.db
    .selectFrom('state_events')
    .selectAll()
    .where(
      'id',
      'in',
      claim.rows.map((r) => r.event_id),
    )
    .execute();
  const byId = new Map(messages.map((m) => [m.id, m]));
  return {
    token: claim.token,
    rows: claim.rows.map((r) => ({ id: r.id, attempts: r.attempts, message: byId.get(r.event_id) })),
  };
}

/** Removes published state messages with their outbox rows (only while this claim holds them). */
export async function completeStateOutbox(
  app: App,
  token: string,
  rows: { id: number; message: StateEventRow | undefined }[],
): Promise<void> {
  if (rows.length === 0) return;
  await app.store.db.transaction().execute(async (tx) => {
    const held = await tx
      .selectFrom('event_outbox')
      .select('event_id')
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .where('lease_token', '=', token)
      .execute();
    if (held.length === 0) return;
    await tx
      .deleteFrom('event_outbox')
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .where('lease_token', '=', token)
      .execute();
    await tx
      .deleteFrom('state_events')
      .where(
        'id',
        'in',
        held.map((h) => h.event_id),
      )
      .execute();
  });
}

/** Removes rows that were handed on (only while this claim still holds them). */
export async function completeOutbox(app: App, token: string, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await app.store.db
    .deleteFrom('event_outbox')
    .where('id', 'in', ids)
    .where('lease_token', '=', token)
    .execute();
}

/** Back-off after failed attempts: 1 s, 2 s, 4 s … capped at 60 s. */
export function backoffMs(attempts: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, attempts - 1));
}

/** Releases rows that could not be handed on, to be tried again after a back-off. */
export async function failOutbox(
  app: App,
  token: string,
  rows: { id: number; attempts: number }[],
  error: string,
  delayMs?: number,
): Promise<void> {
  for (const r of rows) {
    const attempts = r.attempts + 1;
    await app.store.db
      .updateTable('event_outbox')
      .set({
        attempts,
        next_attempt: Date.now() + (delayMs ?? backoffMs(attempts)),
        lease_token: null,
        lease_server: null,
        lease_until: null,
        last_error: error.slice(0, 500),
      })
      .where('id', '=', r.id)
      .where('lease_token', '=', token)
      .execute();
  }
}

/** Rows still waiting for a target (for tests, docs and the operator). */
export async function pendingOutbox(app: App, target: OutboxTarget): Promise<number> {
  const r = await app.store.db
    .selectFrom('event_outbox')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('target', '=', target)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/**
 * Frees the leases of this server (at a clean stop) and of servers marked Down (at start: a server
 * killed mid-work left rows claimed; they are taken over now rather than when the lease runs out).
 */
export async function releaseLeases(app: App, which: 'mine' | 'down'): Promise<number> {
  const db = app.store.db;
  const r = await db
    .updateTable('event_outbox')
    .set({ lease_token: null, lease_server: null, lease_until: null })
    .where((eb) =>
      which === 'mine'
        ? eb('lease_server', '=', app.server.id)
        : eb(
            'lease_server',
            'in',
            eb.selectFrom('management_servers').select('id').where('state', '=', 'Down'),
          ),
    )
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}
