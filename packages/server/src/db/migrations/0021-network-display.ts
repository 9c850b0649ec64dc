import type { MigrationContext } from './helpers.ts';

/**
 * Two flags of guest networks that createNetwork and updateNetwork set: whether end users are
 * shown the network (displaynetwork), and whether accounts of subdomains may use a domain-wide
 * network (subdomainaccess). Existing networks are shown, and their subdomains keep their access.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await db.schema
    .alterTable('networks')
    .addColumn('display_network', 'integer', (c) => c.notNull().defaultTo(1))
    .execute();
  await db.schema
    .alterTable('networks')
    .addColumn('subdomain_access', 'integer', (c) => c.notNull().defaultTo(1))
    .execute();
}
