import { entityTable, keyedTable, type MigrationContext } from './helpers.ts';

/**
 * LDAP sign-in (docs/ldap.md):
 * - `ldap_configurations`: the directory servers (host and port), global (no domain) or for one
 *   domain, as upstream's addLdapConfiguration records them.
 * - `ldap_links`: upstream's trust map. A domain linked to an LDAP group or OU (`account_id` null)
 *   gets an account of its own, named after the user, for each member who first signs in; an
 *   account linked to a group or OU (`account_id` set) gets those members as its users. One link
 *   per account in a domain, and one per group or OU name in a domain.
 */
export async function up(m: MigrationContext): Promise<void> {
  const { db } = m;
  await entityTable(m, 'ldap_configurations')
    .addColumn('hostname', 'varchar(255)', (c) => c.notNull())
    .addColumn('port', 'integer', (c) => c.notNull())
    .addColumn('domain_id', 'integer')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('ldap_configurations_domain')
    .on('ldap_configurations')
    .column('domain_id')
    .execute();
  await keyedTable(m, 'ldap_links')
    .addColumn('domain_id', 'integer', (c) => c.notNull())
    .addColumn('type', 'varchar(8)', (c) => c.notNull())
    .addColumn('name', 'varchar(1024)', (c) => c.notNull())
    .addColumn('account_type', 'integer', (c) => c.notNull())
    .addColumn('role_id', 'integer')
    .addColumn('account_id', 'integer')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('ldap_links_domain').on('ldap_links').column('domain_id').execute();
}
