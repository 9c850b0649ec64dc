/** The LDAP capability's tables (migration 0024), kept beside it; db/schema.ts lists them. */
import type { Generated, Selectable } from 'kysely';

/** A directory server sign-in and the LDAP commands use (addLdapConfiguration). */
export interface LdapConfigurationTable {
  id: Generated<number>;
  uuid: string;
  hostname: string;
  port: number;
  /** The domain the server serves; null for the global configuration. */
  domain_id: number | null;
  created: number;
}

/** A domain or an account linked to an LDAP group or OU (linkDomainToLdap, linkAccountToLdap). */
export interface LdapLinkTable {
  id: Generated<number>;
  domain_id: number;
  /** 'GROUP' or 'OU'. */
  type: string;
  /** The group's or OU's distinguished name. */
  name: string;
  /** Type of the accounts made for members signing in: 0 user, 2 domain admin. */
  account_type: number;
  role_id: number | null;
  /** The linked account; null when the whole domain is linked (an account per member). */
  account_id: number | null;
  created: number;
}

export type LdapConfigurationRow = Selectable<LdapConfigurationTable>;
export type LdapLinkRow = Selectable<LdapLinkTable>;
