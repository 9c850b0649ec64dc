/**
 * The event log (listEvents). Every state-changing service call records an event in the same
 * transaction as the change; async commands add Scheduled, Started and Completed entries.
 */

import { readFileSync } from 'node:fs';
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
  const id = await insertId(app.store, tx, 'events', {
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
    created: app.clock.now(),
    archived: 0,
  });
  // The outbox rows commit (or roll back) with the event: an event is handed to the message bus
  // and to webhooks exactly when it exists, and waits in the database while they are unreachable.
  const next = app.clock.now();
  const outbox = [{ event_id: id, target: 'webhook', next_attempt: next }];
  if (app.config.eventBusUrl) outbox.push({ event_id: id, target: 'bus', next_attempt: next });
  await tx.insertInto('event_outbox').values(outbox).execute();
  return id;
}

/** Records an event for the caller. */
export function logEvent(ctx: CallContext, tx: Tx, e: EventInput): Promise<number> {
  return recordEvent(ctx, tx, ownerOf(ctx), e);
}
