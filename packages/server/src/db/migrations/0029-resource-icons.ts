import { sql } from 'kysely';
import { entityTable, type MigrationContext } from './helpers.ts';

/**
 * Resource icons (uploadResourceIcon): `resource_icons` holds one base64 image per resource type
 * and uuid (the unique key keeps two concurrent uploads from making two icons for one resource).
 */
export async function up(m: MigrationContext): Promise<void> {
  // Up to 1 MiB decoded (about 1.4 MB of base64): more than MySQL's text holds.
  const long = m.dialect === 'mysql' ? sql`mediumtext` : sql`text`;
  await entityTable(m, 'resource_icons')
    .addColumn('resource_type', 'varchar(32)', (c) => c.notNull())
    .addColumn('resource_uuid', 'varchar(40)', (c) => c.notNull())
    .addColumn('icon', long, (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('updated', 'bigint', (c) => c.notNull())
    .execute();
  await m.db.schema
    .createIndex('resource_icons_resource')
    .unique()
    .on('resource_icons')
    .columns(['resource_type', 'resource_uuid'])
    .execute();
}
