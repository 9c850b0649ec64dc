/**
 * Events as upstream's event bus carries them (ActionEventUtils.publishOnEventBus and
 * RabbitMQEventBus): source `management-server`, category `ActionEvent`, and a JSON body of
 * string fields. The same body is the payload of webhook deliveries.
 */
import type { App } from '../context.ts';
import type { EventRow } from '../db/schema.ts';

export const EVENT_SOURCE = 'management-server';
export const EVENT_CATEGORY = 'ActionEvent';

export interface BusMessage {
  event: EventRow;
  routingKey: string;
  body: string;
  accountUuid: string | undefined;
}

/** One routing-key part as upstream writes it: empty is the wildcard `*`, dots become dashes. */
function keyPart(s: string | null | undefined): string {
  return s ? s.replaceAll('.', '-') : '*';
}

/** source.category.type.resourceType.resourceUUID, e.g. management-server.ActionEvent.VM-CREATE.VirtualMachine.<uuid> */
export function busRoutingKey(
  category: string,
  type: string,
  resourceType: string | null | undefined,
  resourceUuid: string | null | undefined,
): string {
  return [EVENT_SOURCE, category, type, resourceType, resourceUuid].map(keyPart).join('.');
}

/** The routing key of a listEvents event (category ActionEvent). */
export function routingKey(e: Pick<EventRow, 'type' | 'resource_type' | 'resource_id'>): string {
  return busRoutingKey(EVENT_CATEGORY, e.type, e.resource_type, e.resource_id);
}

/** Upstream's eventDateTime format, yyyy-MM-dd HH:mm:ss Z; we write UTC. */
export function eventDateTime(ms: number): string {
  const d = new Date(ms).toISOString(); // 2026-03-01T12:00:00.000Z
  return `${d.slice(0, 10)} ${d.slice(11, 19)} +0000`;
}

/** Builds the messages of a batch of events, with one look-up of their users and accounts. */
export async function buildMessages(app: App, events: EventRow[]): Promise<BusMessage[]> {
  if (events.length === 0) return [];
  const db = app.store.db;
  const [users, accounts] = await Promise.all([
    db
      .selectFrom('users')
      .select(['id', 'uuid'])
      .where('id', 'in', [...new Set(events.map((e) => e.user_id))])
      .execute(),
    db
      .selectFrom('accounts')
      .select(['id', 'uuid'])
      .where('id', 'in', [...new Set(events.map((e) => e.account_id))])
      .execute(),
  ]);
  const user = new Map(users.map((u) => [u.id, u.uuid]));
  const account = new Map(accounts.map((a) => [a.id, a.uuid]));
  return events.map((e) => {
    // Upstream's map skips null values when it serialises (Gson), so absent fields are left out.
    const body: Record<string, string> = {};
    const put = (k: string, v: string | null | undefined) => {
      if (v !== null && v !== undefined) body[k] = v;
    };
    put('user', user.get(e.user_id));
    put('account', account.get(e.account_id));
    put('event', e.type);
    put('status', e.state);
    put('entity', e.resource_type);
    put('entityuuid', e.resource_id);
    put('description', e.description);
    put('eventDateTime', eventDateTime(e.created));
    return {
      event: e,
      routingKey: routingKey(e),
      body: JSON.stringify(body),
      accountUuid: account.get(e.account_id),
    };
  });
}
