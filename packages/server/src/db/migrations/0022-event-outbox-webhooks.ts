import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * Events leave the server through an outbox: recordEvent writes one row per consumer ('bus' for
 * the RabbitMQ publisher, 'webhook' for webhook dispatch) in the transaction that writes the event,
 * so an event is handed on exactly when it is committed, and survives a restart until it is.
 * A consumer claims rows by writing its lease token and lease end (a conditional UPDATE), so with
 * several management servers on one database each row is worked on by one at a time.
 *
 * Webhooks (CloudStack 4.20) and their delivery history.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await keyedTable(m, 'event_outbox')
    .addColumn('event_id', 'integer', (c) => c.notNull())
    .addColumn('target', 'varchar(16)', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt', 'bigint', (c) => c.notNull())
    .addColumn('lease_token', 'varchar(64)')
    .addColumn('lease_server', 'integer')
    .addColumn('lease_until', 'bigint')
    .addColumn('last_error', 'varchar(512)')
    .execute();
  await db.schema
    .createIndex('event_outbox_target_next')
    .on('event_outbox')
    .columns(['target', 'next_attempt', 'id'])
    .execute();
  await db.schema.createIndex('event_outbox_lease').on('event_outbox').column('lease_token').execute();

  await entityTable(m, 'webhooks')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('description', 'varchar(4096)')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('payload_url', 'varchar(2048)', (c) => c.notNull())
    .addColumn('secret_key', 'varchar(512)')
    .addColumn('ssl_verification', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('scope', 'varchar(16)', (c) => c.notNull())
    .addColumn('state', 'varchar(16)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('webhooks_account').on('webhooks').column('account_id').execute();
  await db.schema.createIndex('webhooks_domain').on('webhooks').column('domain_id').execute();

  await entityTable(m, 'webhook_deliveries')
    .addColumn('webhook_id', 'integer', (c) => c.notNull())
    .addColumn('event_id', 'integer')
    .addColumn('event_type', 'varchar(64)', (c) => c.notNull())
    .addColumn('management_server_id', 'integer', (c) => c.notNull())
    .addColumn('headers', 'text')
    .addColumn('payload', 'text')
    .addColumn('success', 'integer', (c) => c.notNull())
    .addColumn('response', 'text')
    .addColumn('start_time', 'bigint', (c) => c.notNull())
    .addColumn('end_time', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('webhook_deliveries_webhook')
    .on('webhook_deliveries')
    .columns(['webhook_id', 'id'])
    .execute();
}
