import { entityTable, type MigrationContext } from './helpers.ts';

/**
 * Resource state-change events (upstream's ResourceStateEvent category) waiting for the message
 * bus. They are not listEvents entries, so they get their own table; the message is rendered when
 * the state changes (routing key and JSON body), written in the transaction of the change, and
 * referenced by an event_outbox row of target 'state' (its event_id is this table's id). The row
 * is deleted once the broker has confirmed the message.
 */
export async function up(m: MigrationContext): Promise<void> {
  await entityTable(m, 'state_events')
    .addColumn('routing_key', 'varchar(512)', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
}
