/**
 * The event log (listEvents). Every state-changing service call records an event in the same
 * transaction as the change; async commands add Scheduled, Started and Completed entries.
 */

import { readFileSync } from 'node:fs';
import { sql } from 'kysely';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';

/** CloudStack's event type names (EventTypes.java); we record no others. */
const EVENT_TYPES = new Set<string>(
  Object.values(
    (
      JSON.parse(readFileSync(new URL('./event-types.json', import.meta.url), 'utf8')) as {
        eventTypes: Record<string, string>;
      }
    ).eventTypes,
  ),
);

export type EventLevel = 'INFO' | 'WARN' | 'ERROR';
export type EventState = 'Created' | 'Scheduled' | 'Started' | 'Completed';

export interface EventInput {
  type: string;
  description: string;
  state?: EventState;
  level?: EventLevel;
  resourceType?: string;
  resourceId?: string;
  startId?: number;
}

/** Who an event is recorded for: the caller by default, or the owner of the resource. */
export interface EventOwner {
  userId: number;
  accountId: number;
  domainId: number;
}

export function ownerOf(ctx: CallContext): EventOwner {
  if (ctx.project) return { userId: ctx.caller.user.id, ...ctx.project };
  return { userId: ctx.caller.user.id, accountId: ctx.caller.account.id, domainId: ctx.caller.domain.id };
}

export async function recordEvent(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  owner: EventOwner,
  e: EventInput,
): Promise<number> {
  const { app } = ctx;
  if (!EVENT_TYPES.has(e.type)) throw new Error(`unknown event type ${e.type}`);
  const now = app.clock.now();
  const row = {
    uuid: app.ids.uuid(),
    type: e.type,
    level: e.level ?? 'INFO',
    state: e.state ?? 'Completed',
    description: e.description,
    user_id: owner.userId,
    account_id: owner.accountId,
    domain_id: owner.domainId,
    resource_type: e.resourceType ?? null,
    resource_id: e.resourceId ?? null,
    start_id: e.startId ?? null,
    created: now,
    archived: 0 as const,
  };
  // The outbox rows commit (or roll back) with the event: an event is handed to the message bus
  // and to webhooks exactly when it exists, and waits in the database while they are unreachable.
  const targets = app.config.eventBusUrl ? ['webhook', 'bus'] : ['webhook'];
  if (app.store.dialect === 'postgres') {
    // One round trip: the outbox rows are inserted from the event's RETURNING (an event is written
    // several times per async job, often outside a transaction, where each statement commits).
    const insert = tx.insertInto('events').values(row).returning('id');
    const out = await sql<{ event_id: number }>`with e as (${insert})
      insert into event_outbox (event_id, target, next_attempt)
      select e.id, t.target, ${now}::bigint from e cross join unnest(${targets}::text[]) as t(target)
      returning event_id`.execute(tx);
    return Number(out.rows[0].event_id);
  }
  const id = await insertId(app.store, tx, 'events', row);
  await tx
    .insertInto('event_outbox')
    .values(targets.map((target) => ({ event_id: id, target, next_attempt: now })))
    .execute();
  return id;
}

/** Records an event for the caller. */
export function logEvent(ctx: CallContext, tx: Tx, e: EventInput): Promise<number> {
  return recordEvent(ctx, tx, ownerOf(ctx), e);
}
