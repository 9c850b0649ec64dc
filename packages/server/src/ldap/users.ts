/**
 * Directory users as the admin sees them: listLdapUsers (with upstream's user filters), searchLdap,
 * importLdapUsers and ldapCreateAccount. Users made here have source `ldap`: they sign in with
 * their directory password (sign-in.ts), never a local one.
 */
import type { App, CallContext } from '../context.ts';
import type { AccountRow, DomainRow } from '../db/schema.ts';
import { invalidParameter, resourceUnavailable } from '../errors.ts';
import { checkDomainAccess, findDomainByUuid, pathPrefix } from '../iam/access.ts';
import { checkRoleGrant, findRole, insertAccount, presentAccounts } from '../iam/accounts.ts';
import { insertDomain } from '../iam/domains.ts';
import { createUserRow } from '../iam/users.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import {
  DirectoryError,
  type DirectoryUser,
  ldapSettings,
  searchUsers,
  serversFor,
  userSearchFilter,
  usersInGroup,
  withServiceBind,
} from './directory.ts';
import { linksOf } from './links.ts';

/**
 * The settings and servers that apply to a domain (undefined: the global ones). As upstream: no
 * server is a directory error (lists answer empty), a server without ldap.basedn is a 431.
 */
async function directoryFor(app: App, domain: DomainRow | undefined) {
  const domainId = domain?.id ?? null;
  const servers = await serversFor(app, domainId);
  if (servers.length === 0) throw new DirectoryError('no LDAP server is configured');
  const s = ldapSettings(app, domainId);
  if (s.baseDn === '')
    throw invalidParameter(`ldap basedn is not configured (for domain: ${domain?.uuid ?? 'null'})`);
  return { s, servers };
}

/**
 * The directory's users as upstream's getUsers lists them for a domain: users of the domain's
 * linked groups when it has account links, all users otherwise; always within
 * ldap.search.group.principle.
 */
async function directoryUsers(
  ctx: CallContext,
  domain: DomainRow | undefined,
  username?: string,
  contains = false,
) {
  const { s, servers } = await directoryFor(ctx.app, domain);
  const links = domain ? await linksOf(ctx, domain.id) : [];
  const anyOfGroups = links.filter((l) => l.account_id !== null && l.type === 'GROUP').map((l) => l.name);
  return withServiceBind(s, servers, (client) =>
    searchUsers(client, s, userSearchFilter(s, { username, contains, anyOfGroups })),
  );
}

/**
 * As upstream: a directory that cannot be reached or searched gives an empty list (its error is
 * logged), so that the UI's import dialog opens either way.
 */
async function orEmpty(ctx: CallContext, work: () => Promise<DirectoryUser[]>): Promise<DirectoryUser[]> {
  try {
    return await work();
  } catch (e) {
    if (!(e instanceof DirectoryError)) throw e;
    ctx.app.log.warn({ err: e.message }, 'LDAP: listing directory users failed');
    return [];
  }
}

function presentLdapUser(u: DirectoryUser, source?: string): object {
  return {
    username: u.username,
    firstname: u.firstname,
    lastname: u.lastname,
    email: u.email,
    principal: u.principal,
    domain: u.domain,
    ...(source === undefined ? {} : { conflictingusersource: source }),
  };
}

function pageOfUsers(ctx: CallContext, params: { page?: number; pagesize?: number }, items: object[]) {
  const page = pageOf(ctx.app, params);
  const slice = items.slice(page.offset, page.limit === undefined ? undefined : page.offset + page.limit);
  return listResult(slice, items.length);
}

type UserFilter = 'NoFilter' | 'LocalDomain' | 'AnyDomain' | 'PotentialImport';
const USER_FILTERS: UserFilter[] = ['NoFilter', 'LocalDomain', 'AnyDomain', 'PotentialImport'];

function userFilter(params: { listtype?: string; userfilter?: string }): UserFilter {
  if (params.userfilter === undefined) return (params.listtype ?? 'all') === 'all' ? 'NoFilter' : 'AnyDomain';
  const f = USER_FILTERS.find((x) => x.toLowerCase() === params.userfilter!.toLowerCase());
  if (!f) throw invalidParameter(`${params.userfilter} is not a legal 'UserFilter' value`);
  return f;
}

interface LocalUser {
  username: string;
  source: string;
  domain_id: number;
}

export const listLdapUsers = defineCommand({
  name: 'listLdapUsers',
  // Upstream names the items LdapUser on the wire, and the UI's import dialog reads that name.
  objectName: 'LdapUser',
  description:
    "Lists the directory's users (those of a domain's linked groups when domainid names a domain with account links), each marked with the source of a Nimbostack user of the same name; userfilter leaves out those already imported.",
  params: {
    ...listParams,
    domainid: p.uuid({
      description:
        "The domain whose LDAP settings and links apply, and which 'LocalDomain' compares against; the caller's by default.",
    }),
    listtype: p.string({
      description: "Older form of userfilter: 'all' (NoFilter, the default) or anything else (AnyDomain).",
    }),
    userfilter: p.string({
      description:
        'NoFilter: every user; LocalDomain: not those imported from LDAP into the domain; AnyDomain: not those imported from LDAP into the domain, compared with every user the caller can see; PotentialImport: those a sign-in would still create.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const filter = userFilter(params);
    const domain = params.domainid ? await findDomainByUuid(ctx, params.domainid) : undefined;
    if (domain) checkDomainAccess(ctx.caller, domain);
    const current = domain ?? ctx.caller.domain;
    let users = await orEmpty(ctx, () => directoryUsers(ctx, domain));
    if (params.keyword) users = users.filter((u) => u.username.includes(params.keyword!));
    // The Nimbostack users compared with: the domain's own, or with its subdomains (upstream's choice per filter).
    const recursiveFrom =
      filter === 'NoFilter' ? current : filter === 'AnyDomain' ? ctx.caller.domain : undefined;
    const names = users.map((u) => u.username);
    const local: LocalUser[] =
      names.length === 0
        ? []
        : await app.store.db
            .selectFrom('users')
            .innerJoin('accounts', 'accounts.id', 'users.account_id')
            .innerJoin('domains', 'domains.id', 'accounts.domain_id')
            .select(['users.username', 'users.source', 'accounts.domain_id'])
            .where('users.username', 'in', names)
            .where((eb) =>
              recursiveFrom
                ? pathPrefix('domains.path', recursiveFrom.path)
                : eb('domains.id', '=', current.id),
            )
            .execute();
    // Upstream picks the user of the current domain when several share the name.
    const match = (name: string) =>
      local.find((l) => l.username === name && l.domain_id === current.id) ??
      local.find((l) => l.username === name);
    const importedHere = (name: string) => {
      const l = match(name);
      return l !== undefined && l.source === 'ldap' && l.domain_id === current.id;
    };
    if (filter === 'LocalDomain' || filter === 'AnyDomain')
      users = users.filter((u) => !importedHere(u.username));
    if (filter === 'PotentialImport') users = users.filter((u) => match(u.username)?.source !== 'ldap');
    return pageOfUsers(
      ctx,
      params,
      users.map((u) => presentLdapUser(u, match(u.username)?.source ?? '')),
    );
  },
});

export const searchLdap = defineCommand({
  name: 'searchLdap',
  description: 'Lists the directory users whose login name contains the query (global LDAP settings).',
  params: {
    ...listParams,
    query: p.string({
      required: true,
      description: 'Text the login name must contain; * and ( ) are matched literally.',
    }),
  },
  async handler(ctx, params) {
    const users = await orEmpty(ctx, () => directoryUsers(ctx, undefined, params.query, true));
    return pageOfUsers(
      ctx,
      params,
      users.map((u) => presentLdapUser(u)),
    );
  },
});

/** Upstream's domain name for a group or OU: word characters only, at most 190 of them. */
export function domainNameFor(text: string): string {
  return text.replace(/\W/g, '').slice(0, 190);
}

const accountParams = {
  account: p.string({
    description:
      "Name of the account to put the users in; each user's login name when omitted (an account per user).",
  }),
  accounttype: p.integer({
    description: 'Type of new accounts: 0 user, 1 root admin, 2 domain admin; or give roleid.',
  }),
  roleid: p.uuid({ description: 'Role of new accounts, instead of accounttype.' }),
  timezone: p.string({ description: 'Time zone recorded for the new users, such as Europe/Paris.' }),
  accountdetails: p.map({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
};

/**
 * Puts a directory user into the domain: a new account (or a new user of an existing account),
 * or, for a user already there, their names and e-mail refreshed from the directory.
 */
async function importUser(
  ctx: CallContext,
  u: DirectoryUser,
  accountName: string,
  domain: DomainRow,
  role: Awaited<ReturnType<typeof findRole>>,
  timezone: string | undefined,
): Promise<void> {
  const { app } = ctx;
  const fields = {
    username: u.username,
    password: '',
    email: u.email,
    firstname: u.firstname,
    lastname: u.lastname,
    timezone,
    source: 'ldap' as const,
  };
  await app.store.db.transaction().execute(async (tx) => {
    const account = await tx
      .selectFrom('accounts')
      .selectAll()
      .where('name', '=', accountName)
      .where('domain_id', '=', domain.id)
      .executeTakeFirst();
    if (!account) {
      await insertAccount(
        ctx,
        tx,
        { name: accountName, domain, role, networkDomain: domain.network_domain ?? undefined },
        fields,
      );
      return;
    }
    const existing = await tx
      .selectFrom('users')
      .innerJoin('accounts', 'accounts.id', 'users.account_id')
      .select('users.id')
      .where('accounts.domain_id', '=', domain.id)
      .where('users.username', '=', u.username)
      .executeTakeFirst();
    if (!existing) {
      await createUserRow(ctx, tx, account, domain, fields);
      return;
    }
    await tx
      .updateTable('users')
      .set({ firstname: u.firstname, lastname: u.lastname, email: u.email })
      .where('id', '=', existing.id)
      .execute();
  });
}

/** The domain named after a group or OU, under ROOT, made when missing (as upstream's import does). */
async function domainNamed(ctx: CallContext, text: string): Promise<DomainRow | undefined> {
  const name = domainNameFor(text);
  if (name === '') return undefined;
  const db = ctx.app.store.db;
  const root = await db
    .selectFrom('domains')
    .selectAll()
    .where('parent_id', 'is', null)
    .executeTakeFirstOrThrow();
  const found = await db
    .selectFrom('domains')
    .selectAll()
    .where('parent_id', '=', root.id)
    .where('name', '=', name)
    .executeTakeFirst();
  return found ?? db.transaction().execute((tx) => insertDomain(ctx, tx, root, name));
}

export const importLdapUsers = defineCommand({
  name: 'importLdapUsers',
  description:
    'Imports directory users (all, or the members of one group) as Nimbostack users signing in with their directory password. Without domainid each goes to a domain named after the group, or after their OU, or to ROOT; users that cannot be created are left out of the answer.',
  params: {
    ...listParams,
    ...accountParams,
    domainid: p.uuid({ description: 'The domain to import into.' }),
    group: p.string({
      description: 'Common name (cn) of the group whose members are imported; all users when omitted.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    if (params.accounttype === undefined && params.roleid === undefined)
      throw invalidParameter('Both account type and role ID are not provided');
    const role = await findRole(ctx, params.roleid, params.accounttype);
    checkRoleGrant(ctx, role);
    const given = params.domainid ? await findDomainByUuid(ctx, params.domainid) : undefined;
    if (given) checkDomainAccess(ctx.caller, given);
    const group = params.group?.trim();
    const users = await orEmpty(ctx, async () => {
      if (!group) return directoryUsers(ctx, given);
      const { s, servers } = await directoryFor(app, given);
      return withServiceBind(s, servers, (client) => usersInGroup(client, s, group));
    });
    const root = await app.store.db
      .selectFrom('domains')
      .selectAll()
      .where('parent_id', 'is', null)
      .executeTakeFirstOrThrow();
    const groupDomain = !given && group ? await domainNamed(ctx, group) : undefined;
    const added: DirectoryUser[] = [];
    for (const u of users) {
      const domain = given ?? groupDomain ?? (await domainNamed(ctx, u.domain)) ?? root;
      try {
        await importUser(ctx, u, params.account?.trim() || u.username, domain, role, params.timezone);
        added.push(u);
      } catch (e) {
        // As upstream: a user that cannot be created (a clash, a bad name) is logged and skipped.
        app.log.warn({ err: (e as Error).message, username: u.username }, 'importLdapUsers: user skipped');
      }
    }
    return pageOfUsers(
      ctx,
      params,
      added.map((u) => presentLdapUser(u)),
    );
  },
});

export const ldapCreateAccount = defineCommand({
  name: 'ldapCreateAccount',
  description:
    'Creates an account (or a user in an existing account) for one directory user, who then signs in with their directory password. The user must be found in the directory with an e-mail address, first and last name.',
  params: {
    ...accountParams,
    username: p.string({ required: true, description: 'Login name of the directory user.' }),
    domainid: p.uuid({ description: 'The domain to create the account in; ROOT by default.' }),
    networkdomain: p.string({ description: "DNS domain suffix for the account's guest networks." }),
    accountid: p.string({ description: 'UUID to give the new account instead of a generated one.' }),
    userid: p.string({ description: 'UUID to give the new user instead of a generated one.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    if (params.accounttype === undefined && params.roleid === undefined)
      throw invalidParameter('Both account type and role ID are not provided');
    const role = await findRole(ctx, params.roleid, params.accounttype);
    checkRoleGrant(ctx, role);
    const domain = params.domainid
      ? await findDomainByUuid(ctx, params.domainid)
      : await app.store.db
          .selectFrom('domains')
          .selectAll()
          .where('parent_id', 'is', null)
          .executeTakeFirstOrThrow();
    checkDomainAccess(ctx.caller, domain);
    const missing = () => resourceUnavailable(`No LDAP user exists with the username of ${params.username}`);
    let found: DirectoryUser[];
    try {
      found = await directoryUsers(ctx, params.domainid ? domain : undefined, params.username);
    } catch (e) {
      if (e instanceof DirectoryError) throw missing();
      throw e;
    }
    if (found.length !== 1) throw missing();
    const u = found[0];
    for (const [field, label] of [
      ['email', 'email address'],
      ['firstname', 'firstname'],
      ['lastname', 'lastname'],
    ] as const)
      if (u[field] === '') throw resourceUnavailable(`${params.username} has no ${label} set within LDAP`);
    const accountName = params.account?.trim() || params.username;
    const fields = {
      username: params.username,
      password: '',
      email: u.email,
      firstname: u.firstname,
      lastname: u.lastname,
      timezone: params.timezone,
      userid: params.userid,
      source: 'ldap' as const,
    };
    const account: AccountRow = await app.store.db.transaction().execute(async (tx) => {
      const existing = await tx
        .selectFrom('accounts')
        .selectAll()
        .where('name', '=', accountName)
        .where('domain_id', '=', domain.id)
        .executeTakeFirst();
      if (existing) {
        await createUserRow(ctx, tx, existing, domain, fields);
        return existing;
      }
      return insertAccount(
        ctx,
        tx,
        { name: accountName, domain, role, networkDomain: params.networkdomain, uuid: params.accountid },
        fields,
      );
    });
    return (await presentAccounts(ctx, [account]))[0];
  },
});

export const ldapUserCommands = [listLdapUsers, searchLdap, importLdapUsers, ldapCreateAccount];
