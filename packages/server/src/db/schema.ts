/**
 * Row types of every table, as Kysely sees them. Public ids are the `uuid` columns; the integer
 * `id` keys stay inside the server. Times are epoch milliseconds; flags are 0/1 integers so that
 * SQLite, PostgreSQL and MySQL return the same values.
 */
import type { Generated, Insertable, Selectable } from 'kysely';

export type Flag = 0 | 1;

export interface ManagementServerTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  version: string;
  started: number;
  last_heartbeat: number;
  state: string;
}

export interface DomainTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  parent_id: number | null;
  /** "/" for ROOT, "/a/b/" below it: a prefix match finds a whole subtree. */
  path: string;
  level: number;
  state: string;
  network_domain: string | null;
  created: number;
}

export interface RoleTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  type: string;
  description: string | null;
  is_default: Flag;
  is_public: Flag;
  created: number;
}

export interface RolePermissionTable {
  id: Generated<number>;
  uuid: string;
  role_id: number;
  rule: string;
  permission: string;
  description: string | null;
  sort_order: number;
}

export interface AccountTable {
  id: Generated<number>;
  uuid: string;
  name: string;
  /** 0 user, 1 root admin, 2 domain admin, 3 resource admin, 5 project. */
  type: number;
  role_id: number;
  domain_id: number;
  state: string;
  network_domain: string | null;
  created: number;
}

export interface UserTable {
  id: Generated<number>;
  uuid: string;
  username: string;
  password: string;
  firstname: string;
  lastname: string;
  email: string | null;
  timezone: string | null;
  account_id: number;
  state: string;
  api_key: string | null;
  /** Encrypted with the server key (see iam/secrets.ts), never stored in clear. */
  secret_key: string | null;
  is_default: Flag;
  source: string;
  created: number;
}

export interface SessionTable {
  id: Generated<number>;
  session_id: string;
  session_key: string;
  user_id: number;
  created: number;
  last_access: number;
}

export interface AsyncJobTable {
  id: Generated<number>;
  uuid: string;
  user_id: number;
  account_id: number;
  domain_id: number;
  command: string;
  cmd: string;
  params: string;
  instance_type: string | null;
  instance_id: string | null;
  /** 0 in progress, 1 succeeded, 2 failed. */
  status: number;
  process_status: number;
  result_code: number;
  result_type: string | null;
  result: string | null;
  ms_id: number;
  created: number;
  completed: number | null;
}

export interface EventTable {
  id: Generated<number>;
  uuid: string;
  type: string;
  level: string;
  state: string;
  description: string;
  user_id: number;
  account_id: number;
  domain_id: number;
  resource_type: string | null;
  resource_id: string | null;
  start_id: number | null;
  created: number;
  archived: Flag;
}

export interface ConfigurationTable {
  name: string;
  value: string | null;
  updated: number;
}

export interface ScopedConfigurationTable {
  id: Generated<number>;
  name: string;
  scope: string;
  scope_id: number;
  value: string;
}

export interface ResourceTagTable {
  id: Generated<number>;
  uuid: string;
  key: string;
  value: string;
  resource_type: string;
  resource_id: number;
  resource_uuid: string;
  account_id: number;
  domain_id: number;
  customer: string | null;
  created: number;
}

export interface Database {
  management_servers: ManagementServerTable;
  domains: DomainTable;
  roles: RoleTable;
  role_permissions: RolePermissionTable;
  accounts: AccountTable;
  users: UserTable;
  sessions: SessionTable;
  async_jobs: AsyncJobTable;
  events: EventTable;
  configuration: ConfigurationTable;
  scoped_configuration: ScopedConfigurationTable;
  resource_tags: ResourceTagTable;
}

export type DomainRow = Selectable<DomainTable>;
export type RoleRow = Selectable<RoleTable>;
export type AccountRow = Selectable<AccountTable>;
export type UserRow = Selectable<UserTable>;
export type AsyncJobRow = Selectable<AsyncJobTable>;
export type EventRow = Selectable<EventTable>;
export type NewEvent = Insertable<EventTable>;
export type ResourceTagRow = Selectable<ResourceTagTable>;
