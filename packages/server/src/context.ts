/**
 * The services every command handler can reach, and who is calling. Handlers stay thin: they
 * translate parameters and call capability services with this context.
 */
import type { Logger } from 'pino';
import type { AgentGateway } from './agents/gateway.ts';
import type { Clock, IdSource } from './clock.ts';
import type { ServerConfig } from './config.ts';
import type { Store } from './db/connection.ts';
import type { AccountRow, DomainRow, RoleRow, UserRow } from './db/schema.ts';
import type { Secrets } from './iam/secrets.ts';
import type { JobRunner } from './jobs/runner.ts';
import type { RoleKind } from './registry/catalog.ts';
import type { Registry } from './registry/registry.ts';
import type { Settings } from './settings/settings.ts';

export interface ManagementServerIdentity {
  id: number;
  uuid: string;
  name: string;
}

export interface App {
  config: ServerConfig;
  store: Store;
  log: Logger;
  clock: Clock;
  ids: IdSource;
  settings: Settings;
  secrets: Secrets;
  jobs: JobRunner;
  registry: Registry;
  server: ManagementServerIdentity;
  /** Connections to host agents: commands, answers, host liveness. */
  agents: AgentGateway;
}

export interface Caller {
  user: UserRow;
  account: AccountRow;
  domain: DomainRow;
  role: RoleRow;
  roleKind: RoleKind;
}

export interface CallContext {
  app: App;
  caller: Caller;
  /** scheme://host[:port] the API call came in on, for answers that hold URLs back to this server. */
  origin?: string;
  /** The login session the call came with (none for signed calls and jobs): the 2FA commands mark it. */
  session?: { sessionId: string; verified2fa: boolean };
  /**
   * The call carried no credentials (a CommandSpec.anonymous command before sign-in): `caller` is
   * the stand-in root administrator, so a handler whose answer depends on who asks checks this.
   */
  anonymous?: boolean;
  /**
   * The project the call is made in (its projectid names one the caller may use): its account owns
   * the call's events, as upstream records them for the owner of what the command acts on.
   */
  project?: { accountId: number; domainId: number };
}

export function isRootAdmin(caller: Caller): boolean {
  return caller.roleKind === 'admin';
}

/** Root admins, domain admins and resource admins manage other accounts; users only their own. */
export function isDomainAdminOrAbove(caller: Caller): boolean {
  return caller.roleKind !== 'user';
}
