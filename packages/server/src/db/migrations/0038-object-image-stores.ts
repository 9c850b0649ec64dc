import type { MigrationContext } from './helpers.ts';

/**
 * Object-store image stores (issue 24, S3 and Swift secondary storage):
 * - `details`: the store's non-secret settings as JSON (endpoint, bucket, region, access key or
 *   Swift account and user, whether Nimbostack created the bucket);
 * - `secret`: the S3 secret key or Swift key, sealed with the server key (key rotation lists it).
 */
export async function up(m: MigrationContext): Promise<void> {
  await m.db.schema.alterTable('image_stores').addColumn('details', 'text').execute();
  await m.db.schema.alterTable('image_stores').addColumn('secret', 'varchar(1024)').execute();
}
