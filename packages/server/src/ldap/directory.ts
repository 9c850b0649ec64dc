/**
 * Talking to the directory: which servers and settings apply to a domain, the search filters
 * upstream builds (OpenLDAP and Active Directory flavours), user searches and binds.
 *
 * The client is ldapts: a maintained, typed, promise-based LDAP v3 client without native parts,
 * with LDAPS/StartTLS through Node's tls, paged results (RFC 2696) and per-operation timeouts.
 * ldapjs, the other common choice, is decommissioned by its authors. ldapts 8 is the line that
 * supports Node 20 (9 needs 22).
 */
import { readFileSync } from 'node:fs';
import { Client, type Entry } from 'ldapts';
import type { App } from '../context.ts';
import {
  LDAP_BASEDN,
  LDAP_BIND_PASSWORD,
  LDAP_BIND_PRINCIPAL,
  LDAP_EMAIL_ATTRIBUTE,
  LDAP_FIRSTNAME_ATTRIBUTE,
  LDAP_GROUP_MEMBER_ATTRIBUTE,
  LDAP_GROUP_OBJECT,
  LDAP_LASTNAME_ATTRIBUTE,
  LDAP_MEMBEROF_ATTRIBUTE,
  LDAP_NESTED_GROUPS,
  LDAP_PAGE_SIZE,
  LDAP_PROVIDER,
  LDAP_READ_TIMEOUT,
  LDAP_SEARCH_GROUP_PRINCIPLE,
  LDAP_TRUSTSTORE,
  LDAP_USER_OBJECT,
  LDAP_USERNAME_ATTRIBUTE,
  ldapSetting,
} from './settings.ts';

/** The ldap.* settings as they apply to one domain (null: the global values). */
export interface LdapSettings {
  provider: 'openldap' | 'microsoftad';
  baseDn: string;
  bindPrincipal: string;
  bindPassword: string;
  usernameAttribute: string;
  emailAttribute: string;
  firstnameAttribute: string;
  lastnameAttribute: string;
  userObject: string;
  memberOfAttribute: string;
  nestedGroups: boolean;
  groupObject: string;
  groupMemberAttribute: string;
  searchGroupPrinciple: string;
  pageSize: number;
  timeoutMs: number;
  /** PEM file of trusted CAs; set means LDAPS. */
  trustStore: string;
}

export function ldapSettings(app: App, domainId: number | null): LdapSettings {
  const get = <T extends string | number | boolean>(def: Parameters<typeof ldapSetting<T>>[1]) =>
    ldapSetting(app, def, domainId);
  return {
    provider: get(LDAP_PROVIDER) === 'microsoftad' ? 'microsoftad' : 'openldap',
    baseDn: get(LDAP_BASEDN).trim(),
    bindPrincipal: get(LDAP_BIND_PRINCIPAL).trim(),
    bindPassword: get(LDAP_BIND_PASSWORD),
    usernameAttribute: get(LDAP_USERNAME_ATTRIBUTE),
    emailAttribute: get(LDAP_EMAIL_ATTRIBUTE),
    firstnameAttribute: get(LDAP_FIRSTNAME_ATTRIBUTE),
    lastnameAttribute: get(LDAP_LASTNAME_ATTRIBUTE),
    userObject: get(LDAP_USER_OBJECT),
    memberOfAttribute: get(LDAP_MEMBEROF_ATTRIBUTE),
    nestedGroups: get(LDAP_NESTED_GROUPS),
    groupObject: get(LDAP_GROUP_OBJECT),
    groupMemberAttribute: get(LDAP_GROUP_MEMBER_ATTRIBUTE),
    searchGroupPrinciple: get(LDAP_SEARCH_GROUP_PRINCIPLE).trim(),
    pageSize: get(LDAP_PAGE_SIZE),
    timeoutMs: get(LDAP_READ_TIMEOUT),
    trustStore: get(LDAP_TRUSTSTORE).trim(),
  };
}

/** A directory server could not be reached, refused the bind, or failed a search. */
export class DirectoryError extends Error {}

/** What the LDAP commands show of a directory user, and what sign-in needs of them. */
export interface DirectoryUser {
  username: string;
  email: string;
  firstname: string;
  lastname: string;
  /** The entry's distinguished name: what the user binds as. */
  principal: string;
  /** The OU path of the entry below the base DN (upstream's `domain` of an LDAP user). */
  domain: string;
  /** Active Directory's ACCOUNTDISABLE flag; always false on OpenLDAP. */
  disabled: boolean;
  /** Distinguished names of the groups the entry's memberOf attribute lists. */
  memberships: string[];
}

/** RFC 4515: the characters that must be escaped inside a filter's assertion value. */
export function escapeFilterValue(value: string): string {
  return value.replace(/[\\*()\0]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Active Directory's rule that matches membership through nested groups (LDAP_MATCHING_RULE_IN_CHAIN). */
const IN_CHAIN = '1.2.840.113556.1.4.1941';

/** The assertion that a user is a member of `groupDn`. */
export function memberOfFilter(s: LdapSettings, groupDn: string): string {
  const attr =
    s.provider === 'microsoftad' && s.nestedGroups
      ? `${s.memberOfAttribute}:${IN_CHAIN}:`
      : s.memberOfAttribute;
  return `(${attr}=${escapeFilterValue(groupDn)})`;
}

export interface UserQuery {
  /** The login name; undefined matches every user. */
  username?: string;
  /** Match names containing `username` (searchLdap) rather than equal to it. */
  contains?: boolean;
  /** Users must be a member of one of these groups (the groups a domain's accounts are linked to). */
  anyOfGroups?: string[];
  /** Users must be a member of this group (a link of type GROUP). */
  group?: string;
}

/**
 * The filter upstream's user managers build: the user object class, the name, membership of the
 * domain's linked groups, of a linked group, and of ldap.search.group.principle. Active Directory
 * leaves computer accounts out (they share the user object class).
 */
export function userSearchFilter(s: LdapSettings, q: UserQuery): string {
  const parts = [`(objectClass=${escapeFilterValue(s.userObject)})`];
  if (s.provider === 'microsoftad') parts.push('(!(objectClass=computer))');
  const name =
    q.username === undefined
      ? '*'
      : q.contains
        ? `*${escapeFilterValue(q.username)}*`
        : escapeFilterValue(q.username);
  parts.push(`(${s.usernameAttribute}=${name})`);
  if (q.anyOfGroups && q.anyOfGroups.length > 0)
    parts.push(`(|${q.anyOfGroups.map((g) => memberOfFilter(s, g)).join('')})`);
  if (q.group) parts.push(memberOfFilter(s, q.group));
  if (s.searchGroupPrinciple) parts.push(memberOfFilter(s, s.searchGroupPrinciple));
  return `(&${parts.join('')})`;
}

/** The filter for a group by its common name (importLdapUsers group=...). */
export function groupSearchFilter(s: LdapSettings, groupName: string): string {
  return `(&(objectClass=${escapeFilterValue(s.groupObject)})(cn=${escapeFilterValue(groupName)}))`;
}

/** Attribute lookup without regard to case: servers answer with the schema's spelling (givenName). */
function attrValues(entry: Entry, name: string): string[] {
  const key = Object.keys(entry).find((k) => k.toLowerCase() === name.toLowerCase());
  if (!key || key === 'dn') return [];
  const v = entry[key];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (Buffer.isBuffer(x) ? x.toString('utf8') : String(x)));
}

const first = (entry: Entry, name: string) => attrValues(entry, name)[0] ?? '';

/** The OU path of `dn` below `baseDn`: cn=Ann,ou=eng,ou=lab,dc=ex,dc=org → "eng,lab". */
export function ouPath(dn: string, baseDn: string): string {
  const rdns = dn.split(/(?<!\\),/).map((r) => r.trim());
  const base = baseDn
    .split(/(?<!\\),/)
    .map((r) => r.trim().toLowerCase())
    .filter((r) => r !== '');
  const below = rdns.slice(1, rdns.length - base.length >= 1 ? rdns.length - base.length : rdns.length);
  return below
    .filter((r) => r.toLowerCase().startsWith('ou='))
    .map((r) => r.slice(3))
    .join(',');
}

export function toDirectoryUser(s: LdapSettings, entry: Entry): DirectoryUser {
  // ADS_UF_ACCOUNTDISABLE is bit 2 of userAccountControl.
  const uac = Number(first(entry, 'userAccountControl') || '0');
  return {
    username: first(entry, s.usernameAttribute),
    email: first(entry, s.emailAttribute),
    firstname: first(entry, s.firstnameAttribute),
    lastname: first(entry, s.lastnameAttribute),
    principal: entry.dn,
    domain: ouPath(entry.dn, s.baseDn),
    disabled: s.provider === 'microsoftad' && (uac & 2) !== 0,
    memberships: attrValues(entry, s.memberOfAttribute),
  };
}

function returnAttributes(s: LdapSettings): string[] {
  return [
    s.usernameAttribute,
    s.emailAttribute,
    s.firstnameAttribute,
    s.lastnameAttribute,
    'cn',
    'userAccountControl',
    s.memberOfAttribute,
  ];
}

/** A host and port of a directory server. */
export interface ServerAddress {
  hostname: string;
  port: number;
}

/**
 * The servers a domain's sign-in and searches use: its own configurations, or the global ones when
 * it has none.
 */
export async function serversFor(app: App, domainId: number | null): Promise<ServerAddress[]> {
  const rows = (domain: number | null) => {
    let q = app.store.db.selectFrom('ldap_configurations').select(['hostname', 'port']).orderBy('id');
    q = domain === null ? q.where('domain_id', 'is', null) : q.where('domain_id', '=', domain);
    return q.execute();
  };
  const own = domainId === null ? [] : await rows(domainId);
  return own.length > 0 ? own : rows(null);
}

function clientFor(s: LdapSettings, server: ServerAddress): Client {
  const tls = s.trustStore !== '';
  const host = server.hostname.includes(':') ? `[${server.hostname}]` : server.hostname;
  return new Client({
    url: `${tls ? 'ldaps' : 'ldap'}://${host}:${server.port}`,
    timeout: s.timeoutMs,
    connectTimeout: s.timeoutMs,
    // Read at each connection: an operator replacing the CA file needs no restart.
    ...(tls ? { tlsOptions: { ca: readFileSync(s.trustStore, 'utf8'), servername: server.hostname } } : {}),
  });
}

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e));

/**
 * Binds to the first server that accepts `dn`/`password` (no name: an anonymous bind) and runs `work`
 * on the connection, closing it after. Servers are tried in turn as upstream's provider URL list
 * is; a refused bind is final, since the next server holds the same directory.
 */
export async function withBind<T>(
  s: LdapSettings,
  servers: ServerAddress[],
  dn: string,
  password: string,
  work: (client: Client) => Promise<T>,
): Promise<T> {
  if (servers.length === 0) throw new DirectoryError('no LDAP server is configured');
  let lastError: unknown;
  for (const server of servers) {
    let client: Client;
    try {
      client = clientFor(s, server);
    } catch (e) {
      throw new DirectoryError(`cannot read ldap.truststore ${s.trustStore}: ${describe(e)}`);
    }
    try {
      // An anonymous bind when no name is given: it still proves the server answers.
      await client.bind(dn, dn === '' ? '' : password);
      return await work(client);
    } catch (e) {
      lastError = e;
      if (!isConnectionFailure(e)) throw new DirectoryError(describe(e));
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }
  throw new DirectoryError(describe(lastError));
}

/** Errors of reaching a server (worth trying the next), as opposed to its answers. */
function isConnectionFailure(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|ETIMEDOUT|EAI_AGAIN)$/.test(code)
  )
    return true;
  return /timeout|timed out|connect|socket/i.test(describe(e));
}

/** Binds with ldap.bind.principal/password and runs `work`. */
export function withServiceBind<T>(
  s: LdapSettings,
  servers: ServerAddress[],
  work: (client: Client) => Promise<T>,
): Promise<T> {
  return withBind(s, servers, s.bindPrincipal, s.bindPassword, work);
}

/** Searches users under `base` (the base DN, or an OU's DN for a link of type OU). */
export async function searchUsers(
  client: Client,
  s: LdapSettings,
  filter: string,
  base = s.baseDn,
): Promise<DirectoryUser[]> {
  if (base === '') throw new DirectoryError('ldap.basedn is not configured');
  const { searchEntries } = await client.search(base, {
    scope: 'sub',
    filter,
    attributes: returnAttributes(s),
    paged: { pageSize: s.pageSize },
  });
  return searchEntries
    .map((e) => toDirectoryUser(s, e))
    .filter((u) => !u.disabled)
    .sort((a, b) => a.username.localeCompare(b.username));
}

/**
 * Active Directory's form of a group's members, as upstream searches them: users whose memberOf
 * names cn=<group>,<base DN> (through nested groups with ldap.nested.groups.enable).
 */
export function adGroupMembersFilter(s: LdapSettings, groupName: string): string {
  return `(&(objectClass=${escapeFilterValue(s.userObject)})${memberOfFilter(s, `cn=${groupName},${s.baseDn}`)})`;
}

/** The members of the group named `groupName` (by common name) that are users. */
export async function usersInGroup(
  client: Client,
  s: LdapSettings,
  groupName: string,
): Promise<DirectoryUser[]> {
  if (s.baseDn === '') throw new DirectoryError('ldap.basedn is not configured');
  if (s.provider === 'microsoftad') return searchUsers(client, s, adGroupMembersFilter(s, groupName));
  const { searchEntries } = await client.search(s.baseDn, {
    scope: 'sub',
    filter: groupSearchFilter(s, groupName),
    attributes: [s.groupMemberAttribute],
  });
  const group = searchEntries[0];
  if (!group) return [];
  const users: DirectoryUser[] = [];
  for (const dn of attrValues(group, s.groupMemberAttribute)) {
    try {
      const { searchEntries: found } = await client.search(dn, {
        scope: 'base',
        filter: `(objectClass=${escapeFilterValue(s.userObject)})`,
        attributes: returnAttributes(s),
      });
      if (found[0]) users.push(toDirectoryUser(s, found[0]));
    } catch {
      // A member DN that no longer exists (a dangling reference) is skipped, as upstream does.
    }
  }
  return users.sort((a, b) => a.username.localeCompare(b.username));
}

/**
 * Whether `password` binds as `principal` on the domain's servers. An empty password is refused
 * here: LDAP treats a bind with a name and no password as an anonymous ("unauthenticated") bind,
 * which most servers accept.
 */
export async function canBind(
  s: LdapSettings,
  servers: ServerAddress[],
  principal: string,
  password: string,
): Promise<boolean> {
  if (password === '' || principal === '') return false;
  try {
    await withBind(s, servers, principal, password, async () => undefined);
    return true;
  } catch {
    return false;
  }
}
