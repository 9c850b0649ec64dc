/**
 * Password checks by the directory, for the one sign-in path (iam/sessions.ts): lockout, 2FA and
 * sessions stay there. Who is checked here, as upstream's LDAP authenticator decides:
 * - a user whose source is `ldap`: found in the directory by name (with the bind principal), then
 *   the password is checked by binding as that entry's DN;
 * - an unknown name in a domain linked to LDAP: the same, and on success the user is created —
 *   with an account of its own of the link's type (linkDomainToLdap), or in the account whose
 *   linked group the entry is a member of (linkAccountToLdap; a member of several such groups, or
 *   of none, is refused). A user whose linked group changed is moved to the new group's account.
 * Native users keep their local password even in a linked domain.
 *
 * Unlike upstream, a successful directory bind does not re-enable a user Nimbostack disabled:
 * that would undo the failed-login lockout (incorrect.login.attempts.allowed).
 */
import type { App, CallContext } from '../context.ts';
import type { DomainRow } from '../db/schema.ts';
import { findRole, insertAccount } from '../iam/accounts.ts';
import { forgetCachedIdentity, loadCaller } from '../iam/caller.ts';
import { createUserRow } from '../iam/users.ts';
import {
  canBind,
  DirectoryError,
  type DirectoryUser,
  type LdapSettings,
  ldapSettings,
  type ServerAddress,
  searchUsers,
  serversFor,
  userSearchFilter,
  withServiceBind,
} from './directory.ts';
import { linksOf } from './links.ts';
import type { LdapLinkRow } from './tables.ts';

/** The local user a login named, as sessions.ts read it. */
export interface KnownUser {
  id: number;
  source: string;
  account_id: number;
}

export interface LdapAnswer {
  /** The password was accepted by the directory. */
  ok: boolean;
  /** The local user signing in (created just now when the domain is linked); unset if none. */
  userId?: number;
}

/** Whether the directory decides this login: an LDAP user, or an unknown name in a linked domain. */
export async function directoryDecides(app: App, domainId: number, user?: KnownUser): Promise<boolean> {
  if (user) return user.source === 'ldap';
  return (await linksOf({ app }, domainId)).length > 0;
}

const sameDn = (a: string, b: string) =>
  a.replace(/\s*,\s*/g, ',').toLowerCase() === b.replace(/\s*,\s*/g, ',').toLowerCase();
const underDn = (dn: string, base: string) =>
  dn
    .replace(/\s*,\s*/g, ',')
    .toLowerCase()
    .endsWith(`,${base.replace(/\s*,\s*/g, ',').toLowerCase()}`);

/** Whether a directory entry belongs to a linked group (memberOf) or lies under a linked OU. */
function inLink(user: DirectoryUser, link: LdapLinkRow): boolean {
  return link.type === 'OU'
    ? underDn(user.principal, link.name)
    : user.memberships.some((g) => sameDn(g, link.name));
}

/** The one entry named `username` that the search finds, or undefined (none, several, or an error). */
async function findOne(
  s: LdapSettings,
  servers: ServerAddress[],
  username: string,
  links: LdapLinkRow[],
  app: App,
): Promise<DirectoryUser | undefined> {
  const domainLink = links.length === 1 && links[0].account_id === null ? links[0] : undefined;
  try {
    const found = await withServiceBind(s, servers, (client) => {
      if (domainLink)
        return searchUsers(
          client,
          s,
          userSearchFilter(s, { username, group: domainLink.type === 'GROUP' ? domainLink.name : undefined }),
          domainLink.type === 'OU' ? domainLink.name : s.baseDn,
        );
      const groups = links.filter((l) => l.type === 'GROUP').map((l) => l.name);
      // OU links cannot be a filter term: members are matched by DN after the search.
      const anyOfGroups = links.some((l) => l.type === 'OU') ? undefined : groups;
      return searchUsers(client, s, userSearchFilter(s, { username, anyOfGroups }));
    });
    return found.length === 1 ? found[0] : undefined;
  } catch (e) {
    if (!(e instanceof DirectoryError)) throw e;
    app.log.warn({ err: e.message, username }, 'LDAP sign-in: directory search failed');
    return undefined;
  }
}

/**
 * The context records made at sign-in are attributed to: the first root administrator, standing
 * in for upstream's system account (the new user does not exist yet when its account is made).
 */
async function systemContext(app: App): Promise<CallContext> {
  const admin = await app.store.db
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select('users.id')
    .where('accounts.type', '=', 1)
    .orderBy('users.id')
    .executeTakeFirstOrThrow();
  const caller = await loadCaller(app, admin.id);
  if (!caller) throw new Error('no root administrator to attribute LDAP sign-in records to');
  return { app, caller };
}

/** Creates the signing-in directory user: in the linked account, or with an account of its own. */
async function createSignedInUser(
  app: App,
  domain: DomainRow,
  entry: DirectoryUser,
  link: LdapLinkRow,
): Promise<number | undefined> {
  const username = entry.username;
  const ctx = await systemContext(app);
  const newUser = {
    username,
    password: '',
    email: entry.email,
    firstname: entry.firstname,
    lastname: entry.lastname,
    source: 'ldap' as const,
  };
  // Read before the transaction: on SQLite a read outside it would wait for it to end.
  const role = link.account_id === null ? await findRole(ctx, undefined, link.account_type) : undefined;
  try {
    return await app.store.db.transaction().execute(async (tx) => {
      if (link.account_id !== null) {
        const account = await tx
          .selectFrom('accounts')
          .selectAll()
          .where('id', '=', link.account_id)
          .executeTakeFirst();
        if (!account) return undefined;
        return (await createUserRow(ctx, tx, account, domain, newUser)).id;
      }
      const account = await insertAccount(ctx, tx, { name: username, domain, role: role! }, newUser);
      const user = await tx
        .selectFrom('users')
        .select('id')
        .where('account_id', '=', account.id)
        .executeTakeFirstOrThrow();
      return user.id;
    });
  } catch (e) {
    // An account or user of that name that is not this directory user (a native one) blocks it.
    app.log.warn({ err: (e as Error).message, username }, 'LDAP sign-in: could not create the user');
    return undefined;
  }
}

/** Checks a password with the directory; creates or moves the user where the domain is linked. */
export async function authenticateWithDirectory(
  app: App,
  domain: DomainRow,
  username: string,
  password: string,
  known?: KnownUser,
): Promise<LdapAnswer> {
  let user = known;
  const servers = await serversFor(app, domain.id);
  if (servers.length === 0 || username === '' || password === '') return { ok: false, userId: user?.id };
  const s = ldapSettings(app, domain.id);
  const links = await linksOf({ app }, domain.id);
  const entry = await findOne(s, servers, username, links, app);
  if (!entry) return { ok: false, userId: user?.id };
  if (!user && entry.username !== username) {
    // Directory names match without regard to case ("ALICE" finds uid=alice): the user may exist
    // under the directory's spelling, which is the one users are created with. Found before the
    // bind, so that wrong passwords under any spelling count towards that user's lockout.
    const same = await app.store.db
      .selectFrom('users')
      .innerJoin('accounts', 'accounts.id', 'users.account_id')
      .select(['users.id', 'users.source', 'users.account_id'])
      .where('accounts.domain_id', '=', domain.id)
      .where('users.username', '=', entry.username)
      .executeTakeFirst();
    if (same && same.source !== 'ldap') return { ok: false };
    user = same;
  }
  let link: LdapLinkRow | undefined;
  if (links.length > 0) {
    const matching =
      links.length === 1 && links[0].account_id === null ? links : links.filter((l) => inLink(entry, l));
    // A member of several linked groups (or none) has no one account to sign in to.
    if (matching.length !== 1) return { ok: false, userId: user?.id };
    link = matching[0];
  }
  if (entry.disabled || !(await canBind(s, servers, entry.principal, password)))
    return { ok: false, userId: user?.id };
  if (!user) {
    if (!link || entry.username === '') return { ok: false };
    const userId = await createSignedInUser(app, domain, entry, link);
    return { ok: userId !== undefined, userId };
  }
  // The user's group now links to another account: move them there, as upstream does.
  if (link?.account_id != null && link.account_id !== user.account_id) {
    await app.store.db
      .updateTable('users')
      .set({ account_id: link.account_id })
      .where('id', '=', user.id)
      .execute();
    forgetCachedIdentity();
  }
  return { ok: true, userId: user.id };
}
