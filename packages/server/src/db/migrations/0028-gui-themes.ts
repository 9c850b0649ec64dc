import { sql } from 'kysely';
import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * GUI themes (CloudStack 4.19+, docs/ui.md):
 * - `gui_themes`: a theme's name, CSS and JSON configuration (title, logos, colours...), whether
 *   anyone may fetch it by common name before signing in, and whether its domains include their
 *   subdomains. Removing a theme sets `removed` (listGuiThemes showremoved still shows it).
 * - `gui_theme_scopes`: whom a theme is for, one row per value as upstream's gui_themes_details:
 *   `commonName` (a host name the portal is reached by, `*` as wildcard), `domain` or `account`
 *   (UUIDs). A theme with none is the default theme; there is at most one.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  // Up to 65535 characters (upstream's limit); MySQL's text holds 65535 bytes, too few in utf8mb4.
  const long = m.dialect === 'mysql' ? sql`mediumtext` : sql`text`;
  await entityTable(m, 'gui_themes')
    .addColumn('name', 'varchar(2048)', (c) => c.notNull())
    .addColumn('description', 'varchar(4096)')
    .addColumn('css', long)
    .addColumn('json_configuration', long)
    .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('recursive_domains', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await keyedTable(m, 'gui_theme_scopes')
    .addColumn('theme_id', 'integer', (c) => c.notNull().references('gui_themes.id'))
    .addColumn('type', 'varchar(16)', (c) => c.notNull())
    .addColumn('value', 'varchar(255)', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('gui_theme_scopes_theme').on('gui_theme_scopes').column('theme_id').execute();
  await db.schema
    .createIndex('gui_theme_scopes_value')
    .on('gui_theme_scopes')
    .columns(['type', 'value'])
    .execute();
}
