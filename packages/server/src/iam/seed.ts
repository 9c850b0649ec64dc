/**
 * First-start identity: the ROOT domain, the four default roles, and the `admin` account and user
 * with password `password`, as a fresh CloudStack has. Runs once, in one transaction.
 */
import type { App } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { hashPassword } from './secrets.ts';

export const DEFAULT_ROLES = [
  { name: 'Root Admin', type: 'Admin', description: 'Default root admin role' },
  { name: 'Resource Admin', type: 'ResourceAdmin', description: 'Default resource admin role' },
  { name: 'Domain Admin', type: 'DomainAdmin', description: 'Default domain admin role' },
  { name: 'User', type: 'User', description: 'Default user role' },
] as const;

/** Account type numbers as CloudStack uses them. */
export const ACCOUNT_TYPE = { User: 0, Admin: 1, DomainAdmin: 2, ResourceAdmin: 3, Project: 5 } as const;

export async function seedIdentity(app: App): Promise<boolean> {
  const db = app.store.db;
  const existing = await db
    .selectFrom('domains')
    .select('id')
    .where('parent_id', 'is', null)
    .executeTakeFirst();
  if (existing) return false;
  const now = app.clock.now();
  const password = await hashPassword('password');
  await db.transaction().execute(async (tx) => {
    const rootId = await insertId(app.store, tx, 'domains', {
      uuid: app.ids.uuid(),
      name: 'ROOT',
      parent_id: null,
      path: '/',
      level: 0,
      state: 'Active',
      network_domain: null,
      created: now,
    });
    const roleIds: Record<string, number> = {};
    for (const r of DEFAULT_ROLES) {
      roleIds[r.type] = await insertId(app.store, tx, 'roles', {
        uuid: app.ids.uuid(),
        name: r.name,
        type: r.type,
        description: r.description,
        is_default: 1,
        is_public: 1,
        created: now,
      });
    }
    const accountId = await insertId(app.store, tx, 'accounts', {
      uuid: app.ids.uuid(),
      name: 'admin',
      type: ACCOUNT_TYPE.Admin,
      role_id: roleIds.Admin,
      domain_id: rootId,
      state: 'enabled',
      network_domain: null,
      created: now,
    });
    await insertId(app.store, tx, 'users', {
      uuid: app.ids.uuid(),
      username: 'admin',
      password,
      firstname: 'admin',
      lastname: 'cloud',
      email: null,
      timezone: null,
      account_id: accountId,
      state: 'enabled',
      api_key: null,
      secret_key: null,
      is_default: 1,
      source: 'native',
      created: now,
    });
  });
  return true;
}
