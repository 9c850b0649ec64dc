import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * Templates and ISOs (one table, told apart by is_iso), their copies on image stores with the
 * download state of each, who they are shared with, and the expiring links extract hands out.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'templates')
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('display_text', 'varchar(4096)', (c) => c.notNull())
    .addColumn('is_iso', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('format', 'varchar(16)', (c) => c.notNull())
    .addColumn('type', 'varchar(16)', (c) => c.notNull())
    .addColumn('bootable', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('os_type_id', 'integer', (c) => c.notNull())
    .addColumn('hypervisor', 'varchar(32)')
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('is_public', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_featured', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('is_extractable', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('password_enabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('sshkey_enabled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('dynamically_scalable', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('requires_hvm', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('cross_zones', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('bits', 'integer', (c) => c.notNull().defaultTo(64))
    .addColumn('url', 'varchar(2048)', (c) => c.notNull())
    .addColumn('checksum', 'varchar(255)')
    .addColumn('template_tag', 'varchar(255)')
    .addColumn('details', 'text')
    .addColumn('state', 'varchar(32)', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('removed', 'bigint')
    .execute();
  await db.schema.createIndex('templates_account').on('templates').columns(['account_id', 'id']).execute();
  await db.schema
    .createIndex('templates_public')
    .on('templates')
    .columns(['is_public', 'is_featured', 'id'])
    .execute();
  await db.schema.createIndex('templates_name').on('templates').columns(['name', 'removed']).execute();

  await keyedTable(m, 'template_store_refs')
    .addColumn('template_id', 'integer', (c) => c.notNull().references('templates.id'))
    .addColumn('image_store_id', 'integer', (c) => c.notNull().references('image_stores.id'))
    .addColumn('zone_id', 'integer', (c) => c.notNull())
    .addColumn('download_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('download_pct', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('status', 'varchar(1024)', (c) => c.notNull())
    .addColumn('install_path', 'varchar(1024)')
    .addColumn('size_bytes', 'bigint')
    .addColumn('physical_size_bytes', 'bigint')
    .addColumn('error', 'varchar(1024)')
    .addColumn('ms_id', 'integer')
    .addColumn('destroyed', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('updated', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('template_store_refs_pair', ['template_id', 'image_store_id'])
    .execute();
  await db.schema
    .createIndex('template_store_refs_zone')
    .on('template_store_refs')
    .columns(['zone_id', 'template_id'])
    .execute();
  await db.schema
    .createIndex('template_store_refs_state')
    .on('template_store_refs')
    .columns(['download_state', 'ms_id'])
    .execute();

  await keyedTable(m, 'template_permissions')
    .addColumn('template_id', 'integer', (c) => c.notNull().references('templates.id'))
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addUniqueConstraint('template_permissions_pair', ['template_id', 'account_id'])
    .execute();
  await db.schema
    .createIndex('template_permissions_account')
    .on('template_permissions')
    .column('account_id')
    .execute();

  await keyedTable(m, 'template_extracts')
    .addColumn('token', 'varchar(64)', (c) => c.notNull().unique())
    .addColumn('template_id', 'integer', (c) => c.notNull())
    .addColumn('store_ref_id', 'integer', (c) => c.notNull())
    .addColumn('account_id', 'integer', (c) => c.notNull())
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('expires', 'bigint', (c) => c.notNull())
    .execute();
}
