/**
 * Links between Nimbostack and LDAP groups or OUs (upstream's trust map):
 * - linkDomainToLdap: members of the group (or entries under the OU) who sign in to the domain get
 *   an account of their own, named after them, of the link's account type.
 * - linkAccountToLdap: members of the group who sign in become users of that account; a domain may
 *   link several accounts to several groups, and a member of none of them is refused.
 */
import type { CallContext } from '../context.ts';
import type { DomainRow } from '../db/schema.ts';
import { internalError, invalidParameter } from '../errors.ts';
import { checkDomainAccess, findDomainByUuid } from '../iam/access.ts';
import { checkRoleGrant, findRole, insertAccount } from '../iam/accounts.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import {
  DirectoryError,
  ldapSettings,
  searchUsers,
  serversFor,
  userSearchFilter,
  withServiceBind,
} from './directory.ts';
import type { LdapLinkRow } from './tables.ts';

export type LinkType = 'GROUP' | 'OU';

function linkType(value: string): LinkType {
  const t = value.trim().toUpperCase();
  if (t !== 'GROUP' && t !== 'OU') throw invalidParameter('type should be either GROUP or OU');
  return t;
}

/** The links of a domain: one domain link, or account links. */
export function linksOf(ctx: Pick<CallContext, 'app'>, domainId: number): Promise<LdapLinkRow[]> {
  return ctx.app.store.db
    .selectFrom('ldap_links')
    .selectAll()
    .where('domain_id', '=', domainId)
    .orderBy('id')
    .execute();
}

function presentLink(link: LdapLinkRow, domain: DomainRow, accountUuid?: string): object {
  return {
    domainid: domain.uuid,
    type: link.type,
    ldapdomain: link.name,
    name: link.name,
    accounttype: link.account_type,
    accountid: accountUuid,
  };
}

const adminParam = p.string({
  description:
    'Login name of an LDAP user in the group or OU who gets a domain admin account of the same name in the domain now, rather than at first sign-in.',
});

/**
 * Makes the domain admin account upstream's `admin` parameter asks for: only for a user found in
 * the linked group or OU and not disabled there, and only when no account of that name exists.
 */
async function createLinkedAdmin(
  ctx: CallContext,
  domain: DomainRow,
  link: Pick<LdapLinkRow, 'type' | 'name'>,
  admin: string,
): Promise<string | undefined> {
  const { app } = ctx;
  const s = ldapSettings(app, domain.id);
  const servers = await serversFor(app, domain.id);
  let found: Awaited<ReturnType<typeof searchUsers>> = [];
  try {
    found = await withServiceBind(s, servers, (client) =>
      searchUsers(
        client,
        s,
        userSearchFilter(s, { username: admin, group: link.type === 'GROUP' ? link.name : undefined }),
        link.type === 'OU' ? link.name : s.baseDn,
      ),
    );
  } catch (e) {
    if (!(e instanceof DirectoryError)) throw e;
  }
  const user = found.length === 1 ? found[0] : undefined;
  if (!user || user.disabled) return undefined;
  const existing = await app.store.db
    .selectFrom('accounts')
    .select('uuid')
    .where('name', '=', admin)
    .where('domain_id', '=', domain.id)
    .executeTakeFirst();
  if (existing) return undefined;
  const role = await findRole(ctx, undefined, 2);
  const account = await app.store.db.transaction().execute((tx) =>
    insertAccount(
      ctx,
      tx,
      { name: admin, domain, role },
      {
        username: admin,
        password: '',
        email: user.email,
        firstname: user.firstname,
        lastname: user.lastname,
        source: 'ldap',
      },
    ),
  );
  return account.uuid;
}

export const linkDomainToLdap = defineCommand({
  name: 'linkDomainToLdap',
  description:
    'Links a domain to an LDAP group or OU: its members who sign in to the domain with their directory password get an account of their own (named after them) of the given type on first sign-in.',
  params: {
    domainid: p.uuid({ required: true, description: 'The domain to link.' }),
    accounttype: p.integer({
      required: true,
      description: 'Type of the accounts made for members: 0 user or 2 domain admin.',
    }),
    type: p.string({ required: true, description: "What ldapdomain names: 'GROUP' or 'OU'." }),
    ldapdomain: p.string({
      length: 1024,
      description: 'Distinguished name of the group or OU, such as cn=devs,ou=groups,dc=example,dc=org.',
    }),
    name: p.string({ length: 1024, description: 'The same as ldapdomain, which takes precedence.' }),
    admin: adminParam,
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const domain = await findDomainByUuid(ctx, params.domainid);
    checkDomainAccess(ctx.caller, domain);
    const baseDn = ldapSettings(app, domain.id).baseDn;
    if (baseDn === '')
      throw invalidParameter(
        `can not link a domain (with id = ${domain.uuid}) unless a basedn (null) is configured for it.`,
      );
    const ldapDomain = (params.ldapdomain?.trim() || params.name?.trim()) ?? '';
    if (ldapDomain === '')
      throw invalidParameter('ldapDomain cannot be empty, please supply a GROUP or OU name');
    if (params.accounttype !== 0 && params.accounttype !== 2)
      throw invalidParameter('accountype should be either 0(normal user) or 2(domain admin)');
    const type = linkType(params.type);
    const link = await app.store.db.transaction().execute(async (tx) => {
      if (
        await tx.selectFrom('ldap_links').select('id').where('domain_id', '=', domain.id).executeTakeFirst()
      )
        throw invalidParameter(`Domain ${domain.name} is already linked to LDAP`);
      const row = {
        domain_id: domain.id,
        type,
        name: ldapDomain,
        account_type: params.accounttype,
        role_id: null,
        account_id: null,
        created: app.clock.now(),
      };
      await tx.insertInto('ldap_links').values(row).execute();
      return row;
    });
    const adminAccount = params.admin ? await createLinkedAdmin(ctx, domain, link, params.admin) : undefined;
    return presentLink({ ...link, id: 0 }, domain, adminAccount);
  },
});

export const linkAccountToLdap = defineCommand({
  name: 'linkAccountToLdap',
  // Upstream names the answer after the command (getActualCommandName).
  objectName: 'linkAccountToLdap',
  description:
    'Links an account (created, without users, if it does not exist) to an LDAP group or OU: members who sign in to its domain become its users. Replaces an earlier link of the same account.',
  params: {
    domainid: p.uuid({ required: true, description: 'The domain of the account.' }),
    account: p.string({
      required: true,
      description: 'Name of the account; created when there is none of that name.',
    }),
    ldapdomain: p.string({
      required: true,
      length: 1024,
      description: 'Distinguished name of the group or OU.',
    }),
    type: p.string({ description: "What ldapdomain names: 'GROUP' (the default) or 'OU'." }),
    accounttype: p.integer({
      description: 'Type of a newly made account: 0 user or 2 domain admin; or give roleid.',
    }),
    roleid: p.uuid({ description: 'Role of a newly made account, instead of accounttype.' }),
    admin: adminParam,
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const domain = await findDomainByUuid(ctx, params.domainid);
    checkDomainAccess(ctx.caller, domain);
    if (ldapSettings(app, domain.id).baseDn === '')
      throw invalidParameter('can not link an account to ldap in a domain for which no basdn is configured');
    const accountName = params.account.trim();
    if (accountName === '') throw invalidParameter('accountName cannot be empty.');
    const ldapDomain = params.ldapdomain.trim();
    if (ldapDomain === '')
      throw invalidParameter('ldapDomain cannot be empty, please supply a GROUP or OU name');
    if (params.accounttype === undefined && params.roleid === undefined)
      throw invalidParameter('Either account type or role ID must be given');
    const type = linkType(params.type ?? 'GROUP');
    const role = await findRole(ctx, params.roleid, params.accounttype);
    checkRoleGrant(ctx, role);
    const result = await app.store.db.transaction().execute(async (tx) => {
      let account = await tx
        .selectFrom('accounts')
        .selectAll()
        .where('name', '=', accountName)
        .where('domain_id', '=', domain.id)
        .executeTakeFirst();
      if (!account) account = await insertAccount(ctx, tx, { name: accountName, domain, role });
      const taken = await tx
        .selectFrom('ldap_links')
        .selectAll()
        .where('domain_id', '=', domain.id)
        .where('name', '=', ldapDomain)
        .executeTakeFirst();
      if (taken && taken.account_id !== account.id) {
        // Upstream answers these with a CloudRuntimeException (530).
        if (taken.account_id === null)
          throw internalError(
            `group ${ldapDomain} is mapped to the current domain (${domain.uuid}) for autoimport and can not be used for autosync`,
          );
        throw internalError(
          `group ${ldapDomain} is mapped to another account in the current domain (${domain.uuid}), delete the old map before mapping a new account to the same group.`,
        );
      }
      // The account's own earlier link is replaced, as upstream does.
      await tx
        .deleteFrom('ldap_links')
        .where('domain_id', '=', domain.id)
        .where('account_id', '=', account.id)
        .execute();
      const row = {
        domain_id: domain.id,
        type,
        name: ldapDomain,
        account_type: account.type,
        role_id: account.role_id,
        account_id: account.id,
        created: app.clock.now(),
      };
      await tx.insertInto('ldap_links').values(row).execute();
      return { link: { ...row, id: 0 }, accountUuid: account.uuid };
    });
    if (params.admin) await createLinkedAdmin(ctx, domain, result.link, params.admin);
    return presentLink(result.link, domain, result.accountUuid);
  },
});

export const linkCommands = [linkDomainToLdap, linkAccountToLdap];
