/** Accounts: the owners of resources, each in a domain with a role and one or more users. */

import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow, DomainRow, RoleRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable } from '../tags/tags.ts';
import { checkDomainAccess, checkOwnerAccess, escapeLike, findDomainByUuid, likeEscaped } from './access.ts';
import { forgetCachedIdentity } from './caller.ts';
import { displayPath } from './domains.ts';
import { listOwned } from './owned.ts';
import { ACCOUNT_TYPE } from './seed.ts';
import { createUserRow, type NewUser, presentUsers } from './users.ts';

const ROLE_TYPE_FOR_ACCOUNT_TYPE: Record<number, string> = {
  0: 'User',
  1: 'Admin',
  2: 'DomainAdmin',
  3: 'ResourceAdmin',
};
const ACCOUNT_TYPE_FOR_ROLE_TYPE: Record<string, number> = {
  User: ACCOUNT_TYPE.User,
  Admin: ACCOUNT_TYPE.Admin,
  DomainAdmin: ACCOUNT_TYPE.DomainAdmin,
  ResourceAdmin: ACCOUNT_TYPE.ResourceAdmin,
};

export async function presentAccounts(ctx: CallContext, rows: AccountRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const [domains, roles, users] = await Promise.all([
    db
      .selectFrom('domains')
      .selectAll()
      .where('id', 'in', [...new Set(rows.map((r) => r.domain_id))])
      .execute(),
    db
      .selectFrom('roles')
      .selectAll()
      .where('id', 'in', [...new Set(rows.map((r) => r.role_id))])
      .execute(),
    db
      .selectFrom('users')
      .selectAll()
      .where(
        'account_id',
        'in',
        rows.map((r) => r.id),
      )
      .orderBy('id')
      .execute(),
  ]);
  const domainById = new Map(domains.map((d) => [d.id, d]));
  const roleById = new Map(roles.map((r) => [r.id, r]));
  const presentedUsers = await presentUsers(ctx, users, { accounts: rows, domains, roles });
  return rows.map((a) => {
    const domain = domainById.get(a.domain_id)!;
    const role = roleById.get(a.role_id)!;
    return {
      id: a.uuid,
      name: a.name,
      accounttype: a.type,
      roleid: role.uuid,
      rolename: role.name,
      roletype: role.type,
      domainid: domain.uuid,
      domain: domain.name,
      domainpath: displayPath(domain.path),
      state: a.state,
      networkdomain: a.network_domain ?? undefined,
      isdefault: a.name === 'admin' && domain.parent_id === null,
      iscleanuprequired: false,
      created: formatDate(a.created),
      groups: [],
      user: presentedUsers.filter((u) => (u as { accountid: string }).accountid === a.uuid),
    };
  });
}

export async function findAccountByUuid(ctx: CallContext, uuid: string): Promise<AccountRow> {
  const row = await ctx.app.store.db
    .selectFrom('accounts')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find account by id ${uuid}`);
  return row;
}

/** Finds an account by id, or by name within a domain (the account+domainid pair many commands take). */
export async function resolveAccount(
  ctx: CallContext,
  params: { id?: string; account?: string; domainid?: string },
): Promise<{ account: AccountRow; domain: DomainRow }> {
  const db = ctx.app.store.db;
  let account: AccountRow | undefined;
  if (params.id) {
    account = await findAccountByUuid(ctx, params.id);
  } else if (params.account) {
    const domain = params.domainid ? await findDomainByUuid(ctx, params.domainid) : ctx.caller.domain;
    account = await db
      .selectFrom('accounts')
      .selectAll()
      .where('name', '=', params.account)
      .where('domain_id', '=', domain.id)
      .executeTakeFirst();
    if (!account) throw invalidParameter(`Unable to find account ${params.account} in domain ${domain.name}`);
  } else {
    throw invalidParameter('Either id or account and domainid must be specified');
  }
  const domain = await db
    .selectFrom('domains')
    .selectAll()
    .where('id', '=', account.domain_id)
    .executeTakeFirstOrThrow();
  checkOwnerAccess(ctx.caller, { accountId: account.id, domain });
  return { account, domain };
}

/** The role a new account gets: `roleUuid`, or the default role of `accountType` (0 when neither). */
export async function findRole(
  ctx: CallContext,
  roleUuid: string | undefined,
  accountType: number | undefined,
): Promise<RoleRow> {
  const db = ctx.app.store.db;
  let role: RoleRow | undefined;
  if (roleUuid) {
    role = await db.selectFrom('roles').selectAll().where('uuid', '=', roleUuid).executeTakeFirst();
    if (!role) throw invalidParameter(`Unable to find role by id ${roleUuid}`);
    if (accountType !== undefined && ROLE_TYPE_FOR_ACCOUNT_TYPE[accountType] !== role.type) {
      throw invalidParameter(
        `Role ${role.name} of type ${role.type} does not match account type ${accountType}`,
      );
    }
  } else {
    const type = ROLE_TYPE_FOR_ACCOUNT_TYPE[accountType ?? 0];
    if (!type)
      throw invalidParameter(
        `Invalid account type ${accountType}: use 0 (user), 1 (admin), 2 (domain admin) or 3 (resource admin)`,
      );
    role = await db
      .selectFrom('roles')
      .selectAll()
      .where('type', '=', type)
      .where('is_default', '=', 1)
      .executeTakeFirstOrThrow();
  }
  return role;
}

/** A caller may only hand out roles no more powerful than their own. */
export function checkRoleGrant(ctx: CallContext, role: RoleRow): void {
  const rank: Record<string, number> = { User: 0, DomainAdmin: 1, ResourceAdmin: 2, Admin: 3 };
  if (rank[role.type] > rank[ctx.caller.role.type]) {
    throw permissionDenied(
      `Account ${ctx.caller.account.name} cannot create an account with role ${role.name}`,
    );
  }
}

export const createAccount = defineCommand({
  name: 'createAccount',
  description:
    'Creates an account in a domain together with its first user; the role (or account type) sets what its users may do.',
  params: {
    username: p.string({
      required: true,
      description: "Login name of the account's first user, unique within the domain.",
    }),
    password: p.string({
      required: true,
      description: "Clear-text password of the first user; checked against the domain's password policy.",
    }),
    email: p.string({ required: true, description: 'Email address of the first user.' }),
    firstname: p.string({ required: true, description: 'First name of the first user.' }),
    lastname: p.string({ required: true, description: 'Last name of the first user.' }),
    account: p.string({
      description: 'Name of the new account, unique in its domain; defaults to username.',
    }),
    accounttype: p.integer({
      description:
        '0 user, 1 root admin, 2 domain admin or 3 resource admin; picks the default role of that type unless roleid is given.',
    }),
    roleid: p.uuid({
      description:
        'UUID of the role for the account; must match accounttype if both are given, and be one the caller may grant.',
    }),
    domainid: p.uuid({
      description: "UUID of the domain to create the account in; defaults to the caller's domain.",
    }),
    networkdomain: p.string({ description: "DNS domain suffix for the account's guest networks." }),
    timezone: p.string({ description: 'Time zone recorded for the first user, such as Europe/Paris.' }),
    accountid: p.string({ description: 'UUID to give the new account instead of a generated one.' }),
    userid: p.string({ description: 'UUID to give the first user instead of a generated one.' }),
    accountdetails: p.map({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const domain = params.domainid ? await findDomainByUuid(ctx, params.domainid) : ctx.caller.domain;
    checkDomainAccess(ctx.caller, domain);
    if (params.accounttype === undefined && !params.roleid)
      throw invalidParameter('Either accounttype or roleid must be specified');
    const role = await findRole(ctx, params.roleid, params.accounttype);
    checkRoleGrant(ctx, role);
    const name = (params.account ?? params.username).trim();
    if (name === '') throw invalidParameter('Account name must not be empty');
    const row = await app.store.db.transaction().execute((tx) =>
      insertAccount(
        ctx,
        tx,
        { name, domain, role, networkDomain: params.networkdomain, uuid: params.accountid },
        {
          username: params.username,
          password: params.password,
          email: params.email,
          firstname: params.firstname,
          lastname: params.lastname,
          timezone: params.timezone,
          userid: params.userid,
        },
      ),
    );
    return (await presentAccounts(ctx, [row]))[0];
  },
});

export interface NewAccount {
  name: string;
  domain: DomainRow;
  role: RoleRow;
  networkDomain?: string;
  /** A UUID to give the account instead of a generated one (ignored unless it is one). */
  uuid?: string;
}

/**
 * Inserts an account with its first user, in the caller's transaction (createAccount, and the LDAP
 * commands and sign-in that make accounts for directory users). linkAccountToLdap makes an account
 * without users: the members of its LDAP group become its users as they sign in.
 */
export async function insertAccount(
  ctx: CallContext,
  tx: Tx,
  a: NewAccount,
  firstUser?: NewUser,
): Promise<AccountRow> {
  const { app } = ctx;
  const clash = await tx
    .selectFrom('accounts')
    .select('id')
    .where('name', '=', a.name)
    .where('domain_id', '=', a.domain.id)
    .executeTakeFirst();
  if (clash)
    throw invalidParameter(`The specified account: ${a.name} already exists in domain ${a.domain.name}`);
  const id = await insertId(app.store, tx, 'accounts', {
    uuid: a.uuid && /^[0-9a-f-]{36}$/i.test(a.uuid) ? a.uuid.toLowerCase() : app.ids.uuid(),
    name: a.name,
    type: ACCOUNT_TYPE_FOR_ROLE_TYPE[a.role.type],
    role_id: a.role.id,
    domain_id: a.domain.id,
    state: 'enabled',
    network_domain: a.networkDomain ?? null,
    created: app.clock.now(),
  });
  const account = await tx.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  if (firstUser) await createUserRow(ctx, tx, account, a.domain, firstUser);
  await logEvent(ctx, tx, {
    type: 'ACCOUNT.CREATE',
    description: `creating account ${a.name}`,
    resourceType: 'Account',
    resourceId: account.uuid,
  });
  return account;
}

export const listAccounts = defineCommand({
  name: 'listAccounts',
  description: 'Lists the accounts the caller may see, with their resource counts and limits.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the account with this UUID.' }),
    name: p.string({ description: 'Only accounts with exactly this name.' }),
    accounttype: p.integer({
      description: 'Only accounts of this type: 0 user, 1 root admin, 2 domain admin, 3 resource admin.',
    }),
    state: p.string({
      description: 'Only accounts in this state: enabled, disabled or locked (case-insensitive).',
    }),
    domainid: p.uuid({ description: 'Only accounts in this domain (and below with isrecursive).' }),
    isrecursive: p.boolean({ description: 'With domainid, also include accounts of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: every account they may see, not only their own.',
    }),
    iscleanuprequired: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    details: p.list({
      description: 'Accepted for compatibility; Nimbostack always returns the full entries.',
    }),
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    apikeyaccess: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    tag: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('accounts');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.accounttype !== undefined) q = q.where('type', '=', params.accounttype);
    if (params.state) q = q.where('state', '=', params.state.toLowerCase());
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    // An account row is its own owner: its id is the owning account.
    return listOwned(ctx, params, q, {
      owner: { account: 'accounts.id', domain: 'accounts.domain_id' },
      rows: (scoped, page) => paginate(scoped.selectAll().orderBy('id'), page).execute(),
      present: (rows) => presentAccounts(ctx, rows),
    });
  },
});

export const updateAccount = defineCommand({
  name: 'updateAccount',
  description:
    'Renames an account or changes its network domain or role; the default admin account cannot be renamed.',
  params: {
    id: p.uuid({ description: 'UUID of the account; or give account and domainid.' }),
    account: p.string({ description: 'Name of the account, when id is not given.' }),
    domainid: p.uuid({
      description: "UUID of the domain of the account named by account; defaults to the caller's domain.",
    }),
    newname: p.string({ description: 'New name, unique in the domain.' }),
    networkdomain: p.string({
      description: 'New DNS domain suffix for its guest networks; empty clears it.',
    }),
    roleid: p.uuid({ description: 'UUID of a new role of the same type, one the caller may grant.' }),
    accountdetails: p.map({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    apikeyaccess: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const { account, domain } = await resolveAccount(ctx, params);
    const row = await app.store.db.transaction().execute(async (tx) => {
      if (params.newname !== undefined && params.newname !== account.name) {
        const name = params.newname.trim();
        if (name === '') throw invalidParameter('Account name must not be empty');
        if (account.type === ACCOUNT_TYPE.Admin && domain.parent_id === null && account.name === 'admin') {
          throw invalidParameter('The default admin account cannot be renamed');
        }
        const clash = await tx
          .selectFrom('accounts')
          .select('id')
          .where('name', '=', name)
          .where('domain_id', '=', domain.id)
          .executeTakeFirst();
        if (clash)
          throw invalidParameter(`The specified account: ${name} already exists in domain ${domain.name}`);
        await tx.updateTable('accounts').set({ name }).where('id', '=', account.id).execute();
      }
      if (params.networkdomain !== undefined) {
        await tx
          .updateTable('accounts')
          .set({ network_domain: params.networkdomain || null })
          .where('id', '=', account.id)
          .execute();
      }
      if (params.roleid) {
        const role = await findRole(ctx, params.roleid, account.type);
        checkRoleGrant(ctx, role);
        await tx.updateTable('accounts').set({ role_id: role.id }).where('id', '=', account.id).execute();
      }
      await logEvent(ctx, tx, {
        type: 'ACCOUNT.UPDATE',
        description: `updating account ${account.name}`,
        resourceType: 'Account',
        resourceId: account.uuid,
      });
      return tx.selectFrom('accounts').selectAll().where('id', '=', account.id).executeTakeFirstOrThrow();
    });
    forgetCachedIdentity();
    return (await presentAccounts(ctx, [row]))[0];
  },
});

async function setAccountState(
  ctx: CallContext,
  account: AccountRow,
  state: string,
  eventType: string,
): Promise<object> {
  if (account.id === ctx.caller.account.id && state !== 'enabled')
    throw permissionDenied('An account cannot disable or lock itself');
  const row = await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx.updateTable('accounts').set({ state }).where('id', '=', account.id).execute();
    await logEvent(ctx, tx, {
      type: eventType,
      description: `${state} account ${account.name}`,
      resourceType: 'Account',
      resourceId: account.uuid,
    });
    return tx.selectFrom('accounts').selectAll().where('id', '=', account.id).executeTakeFirstOrThrow();
  });
  forgetCachedIdentity();
  if (state !== 'enabled') {
    await ctx.app.store.db
      .deleteFrom('sessions')
      .where(
        'user_id',
        'in',
        ctx.app.store.db.selectFrom('users').select('id').where('account_id', '=', account.id),
      )
      .execute();
  }
  return (await presentAccounts(ctx, [row]))[0];
}

export const disableAccount = defineCommand({
  name: 'disableAccount',
  description:
    'Disables or locks an account so none of its users can sign in or call the API; their sessions end. Disabling (lock=false) also stops its running VMs; locking leaves them running. Asynchronous.',
  params: {
    id: p.uuid({ description: 'UUID of the account; or give account and domainid.' }),
    account: p.string({ description: 'Name of the account, when id is not given.' }),
    domainid: p.uuid({ description: 'UUID of the domain of the account named by account.' }),
    lock: p.boolean({
      required: true,
      description:
        'true to lock the account (its VMs keep running), false to disable it and stop its running VMs; either way its users are shut out.',
    }),
  },
  event: {
    type: 'ACCOUNT.DISABLE',
    description: (params) => `disabling account ${params.id ?? params.account}`,
  },
  async target(ctx, params) {
    const { account } = await resolveAccount(ctx, params);
    return { type: 'Account', id: account.uuid };
  },
  async handler(ctx, params) {
    const { account } = await resolveAccount(ctx, params);
    const presented = await setAccountState(
      ctx,
      account,
      params.lock ? 'locked' : 'disabled',
      'ACCOUNT.DISABLE',
    );
    if (params.lock) return presented;
    // As upstream's doDisableAccount: once disabled, the account's VMs are stopped.
    await runDisableHooks(ctx, account);
    const row = await ctx.app.store.db
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', account.id)
      .executeTakeFirstOrThrow();
    return (await presentAccounts(ctx, [row]))[0];
  },
});

export const enableAccount = defineCommand({
  name: 'enableAccount',
  description: "Lets a disabled or locked account's users sign in and use the API again.",
  params: {
    id: p.uuid({ description: 'UUID of the account; or give account and domainid.' }),
    account: p.string({ description: 'Name of the account, when id is not given.' }),
    domainid: p.uuid({ description: 'UUID of the domain of the account named by account.' }),
  },
  async handler(ctx, params) {
    const { account } = await resolveAccount(ctx, params);
    return setAccountState(ctx, account, 'enabled', 'ACCOUNT.ENABLE');
  },
});

export const lockAccount = defineCommand({
  name: 'lockAccount',
  description:
    'Locks an account so none of its users can sign in or call the API, and ends their sessions; an account cannot lock itself.',
  params: {
    account: p.string({ required: true, description: 'Name of the account to lock.' }),
    domainid: p.uuid({ required: true, description: "UUID of that account's domain." }),
  },
  async handler(ctx, params) {
    const { account } = await resolveAccount(ctx, params);
    return setAccountState(ctx, account, 'locked', 'ACCOUNT.DISABLE');
  },
});

/**
 * Hooks that release what an account owns before it is deleted. Capabilities that own resources
 * (VMs, volumes, networks...) register one; each may fail the deletion. Owners of other resources
 * go first: `stage` 0 (VMs, which hold volumes, NICs and group memberships) runs before 1 (default).
 */
export type AccountCleanup = (ctx: CallContext, account: AccountRow) => Promise<void>;
const cleanups: { stage: number; cleanup: AccountCleanup }[] = [];

/** Hooks run when an account is disabled (not locked); compute registers one that stops its VMs. */
const disableHooks: AccountCleanup[] = [];

export function onAccountDisable(hook: AccountCleanup): void {
  disableHooks.push(hook);
}

/** What disabling an account does to what it owns (its VMs stop); suspendProject does it too. */
export async function runDisableHooks(ctx: CallContext, account: AccountRow): Promise<void> {
  for (const hook of disableHooks) await hook(ctx, account);
}

export function onAccountDelete(cleanup: AccountCleanup, stage = 1): void {
  cleanups.push({ stage, cleanup });
  cleanups.sort((a, b) => a.stage - b.stage);
}

export async function deleteAccountCascade(ctx: CallContext, account: AccountRow): Promise<void> {
  for (const { cleanup } of cleanups) await cleanup(ctx, account);
  await ctx.app.store.db.transaction().execute(async (tx: Tx) => {
    await tx.deleteFrom('resource_tags').where('account_id', '=', account.id).execute();
    await tx
      .deleteFrom('sessions')
      .where('user_id', 'in', tx.selectFrom('users').select('id').where('account_id', '=', account.id))
      .execute();
    await tx.deleteFrom('users').where('account_id', '=', account.id).execute();
    await tx.deleteFrom('accounts').where('id', '=', account.id).execute();
    await logEvent(ctx, tx, {
      type: 'ACCOUNT.DELETE',
      description: `deleted account ${account.name}`,
      resourceType: 'Account',
      resourceId: account.uuid,
    });
  });
  forgetCachedIdentity();
}

export const deleteAccount = defineCommand({
  name: 'deleteAccount',
  description:
    "Deletes an account with its users and everything it owns (VMs, volumes, networks, groups...). Asynchronous; not the caller's own nor the default admin account.",
  params: { id: p.uuid({ required: true, description: 'UUID of the account to delete.' }) },
  event: { type: 'ACCOUNT.DELETE', description: (params) => `deleting account ${params.id}` },
  async target(ctx, params) {
    const { account } = await resolveAccount(ctx, { id: params.id });
    return { type: 'Account', id: account.uuid };
  },
  async handler(ctx, params) {
    const { account, domain } = await resolveAccount(ctx, { id: params.id });
    if (account.id === ctx.caller.account.id) throw permissionDenied('An account cannot delete itself');
    if (account.name === 'admin' && domain.parent_id === null)
      throw permissionDenied('The default admin account cannot be deleted');
    await deleteAccountCascade(ctx, account);
    return success();
  },
});

export const accountCommands = [
  createAccount,
  listAccounts,
  updateAccount,
  disableAccount,
  enableAccount,
  lockAccount,
  deleteAccount,
];

registerTaggable('Account', async (ctx, uuid) => {
  const a = await ctx.app.store.db
    .selectFrom('accounts')
    .select(['id', 'domain_id'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  return a && { id: a.id, accountId: a.id, domainId: a.domain_id };
});
