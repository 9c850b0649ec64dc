/** Users: the people (and programs) that log in or sign requests on behalf of an account. */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow, DomainRow, RoleRow, UserRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { resolveAlert } from '../infra/alerts.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable } from '../tags/tags.ts';
import { escapeLike, inSubtree, likeEscaped } from './access.ts';
import { forgetCachedIdentity } from './caller.ts';
import { checkRowAccess, listOwned } from './owned.ts';
import { checkPasswordPolicy } from './password-policy.ts';
import { hashPassword, randomToken, verifyPassword } from './secrets.ts';
import { endUserSessions, lockoutAlertKey, twoFactorMandated } from './sessions.ts';
import { ENABLE_USER_2FA } from './sign-in-settings.ts';

export interface NewUser {
  username: string;
  password: string;
  email: string;
  firstname: string;
  lastname: string;
  timezone?: string;
  userid?: string;
  /**
   * Where the password is checked: 'native' (here; the default) or 'ldap' (by binding to the
   * directory as the user: `password` is then ignored and no usable hash is stored).
   */
  source?: 'native' | 'ldap';
}

/** The stored "hash" of a user whose password the directory checks: no password matches it. */
const NO_LOCAL_PASSWORD = '!ldap';

async function checkUsernameFree(
  tx: Tx,
  domainId: number,
  username: string,
  exceptUserId?: number,
): Promise<void> {
  let q = tx
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select('users.id')
    .where('accounts.domain_id', '=', domainId)
    .where('users.username', '=', username);
  if (exceptUserId !== undefined) q = q.where('users.id', '!=', exceptUserId);
  if (await q.executeTakeFirst())
    throw invalidParameter(`The user ${username} already exists in this domain`);
}

function checkUserFields(u: Partial<NewUser>): void {
  if (u.username !== undefined && !/^[^\s/]{1,255}$/.test(u.username))
    throw invalidParameter('Username must be 1-255 characters without spaces or "/"');
  if (u.password !== undefined && u.password.length === 0)
    throw invalidParameter('Password must not be empty');
  if (u.email !== undefined && u.email !== '' && !/^[^\s@]+@[^\s@]+$/.test(u.email))
    throw invalidParameter(`Invalid email address ${u.email}`);
}

export async function createUserRow(
  ctx: CallContext,
  tx: Tx,
  account: AccountRow,
  domain: DomainRow,
  u: NewUser,
): Promise<UserRow> {
  const { app } = ctx;
  const ldap = u.source === 'ldap';
  checkUserFields(ldap ? { ...u, password: undefined } : u);
  if (!ldap) checkPasswordPolicy(app, u.password, u.username, domain.id);
  await checkUsernameFree(tx, domain.id, u.username);
  const id = await insertId(app.store, tx, 'users', {
    uuid: u.userid && /^[0-9a-f-]{36}$/i.test(u.userid) ? u.userid.toLowerCase() : app.ids.uuid(),
    username: u.username,
    password: ldap ? NO_LOCAL_PASSWORD : await hashPassword(u.password),
    firstname: u.firstname,
    lastname: u.lastname,
    email: u.email,
    timezone: u.timezone ?? null,
    account_id: account.id,
    state: 'enabled',
    api_key: null,
    secret_key: null,
    is_default: 0,
    source: u.source ?? 'native',
    created: app.clock.now(),
  });
  const row = await tx.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  await logEvent(ctx, tx, {
    type: 'USER.CREATE',
    description: `creating user ${u.username}`,
    resourceType: 'User',
    resourceId: row.uuid,
  });
  return row;
}

interface Known {
  accounts?: AccountRow[];
  domains?: DomainRow[];
  roles?: RoleRow[];
}

export async function presentUsers(ctx: CallContext, rows: UserRow[], known: Known = {}): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const accounts =
    known.accounts ??
    (await db
      .selectFrom('accounts')
      .selectAll()
      .where('id', 'in', [...new Set(rows.map((r) => r.account_id))])
      .execute());
  const domains =
    known.domains ??
    (await db
      .selectFrom('domains')
      .selectAll()
      .where('id', 'in', [...new Set(accounts.map((a) => a.domain_id))])
      .execute());
  const roles =
    known.roles ??
    (await db
      .selectFrom('roles')
      .selectAll()
      .where('id', 'in', [...new Set(accounts.map((a) => a.role_id))])
      .execute());
  const accountById = new Map(accounts.map((a) => [a.id, a]));
  const domainById = new Map(domains.map((d) => [d.id, d]));
  const roleById = new Map(roles.map((r) => [r.id, r]));
  return rows.map((u) => {
    const account = accountById.get(u.account_id)!;
    const domain = domainById.get(account.domain_id)!;
    const role = roleById.get(account.role_id)!;
    return {
      id: u.uuid,
      username: u.username,
      firstname: u.firstname,
      lastname: u.lastname,
      email: u.email ?? undefined,
      created: formatDate(u.created),
      state: u.state,
      account: account.name,
      accounttype: account.type,
      accountid: account.uuid,
      usersource: u.source,
      roleid: role.uuid,
      roletype: role.type,
      rolename: role.name,
      domainid: domain.uuid,
      domain: domain.name,
      timezone: u.timezone ?? undefined,
      apikey: u.api_key ?? undefined,
      iscallerchilddomain:
        domain.id !== ctx.caller.domain.id && inSubtree(domain.path, ctx.caller.domain.path),
      isdefault: u.is_default === 1,
      is2faenabled: u.user_2fa_enabled === 1,
      is2famandated: twoFactorMandated(ctx.app, domain.id),
    };
  });
}

/** The user with this id, after checking the caller may manage it. */
export async function findUser(
  ctx: CallContext,
  uuid: string,
): Promise<{ user: UserRow; account: AccountRow }> {
  const db = ctx.app.store.db;
  const user = await db.selectFrom('users').selectAll().where('uuid', '=', uuid).executeTakeFirst();
  if (!user) throw invalidParameter(`Unable to find user by id ${uuid}`);
  const account = await db
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', user.account_id)
    .executeTakeFirstOrThrow();
  // A user's own account is always theirs: checkRowAccess lets the caller act on themselves.
  await checkRowAccess(ctx, { account_id: account.id, domain_id: account.domain_id });
  // Within an account, only admins manage other users.
  if (ctx.caller.user.id !== user.id && ctx.caller.roleKind === 'user') {
    throw permissionDenied(`User ${ctx.caller.user.username} cannot manage other users`);
  }
  return { user, account };
}

async function presentOne(ctx: CallContext, userId: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('users')
    .selectAll()
    .where('id', '=', userId)
    .executeTakeFirstOrThrow();
  return (await presentUsers(ctx, [row]))[0];
}

export const createUser = defineCommand({
  name: 'createUser',
  description:
    "Adds a user to an existing account; the password must meet the domain's password policy and the username be free in the domain.",
  params: {
    account: p.string({ required: true, description: 'Name of the account the user joins.' }),
    domainid: p.uuid({ description: "UUID of that account's domain; defaults to the caller's domain." }),
    username: p.string({
      required: true,
      description: "Login name: 1-255 characters without spaces or '/', unique within the domain.",
    }),
    password: p.string({
      required: true,
      description: 'Initial password in clear text; checked against the password policy and stored hashed.',
    }),
    email: p.string({ required: true, description: "The user's email address." }),
    firstname: p.string({ required: true, description: "The user's first name." }),
    lastname: p.string({ required: true, description: "The user's last name." }),
    timezone: p.string({ description: 'Time zone to record for the user, such as Europe/Paris.' }),
    userid: p.string({ description: 'UUID to give the new user instead of a generated one.' }),
  },
  async handler(ctx, params) {
    const { resolveAccount } = await import('./accounts.ts');
    const { account, domain } = await resolveAccount(ctx, {
      account: params.account,
      domainid: params.domainid,
    });
    const row = await ctx.app.store.db
      .transaction()
      .execute((tx) => createUserRow(ctx, tx, account, domain, params));
    return presentOne(ctx, row.id);
  },
});

export const listUsers = defineCommand({
  name: 'listUsers',
  description: 'Lists the users the caller may see; plain users see the users of their own account.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the user with this UUID.' }),
    username: p.string({ description: 'Only users with exactly this login name.' }),
    account: p.string({
      description:
        "Only users of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    accounttype: p.integer({
      description:
        'Only users of accounts of this type: 0 user, 1 root admin, 2 domain admin, 3 resource admin.',
    }),
    domainid: p.uuid({
      description: 'Only users in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include users of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include users of every account they may see.',
    }),
    state: p.string({
      description: 'Only users in this state: enabled, disabled or locked (case-insensitive).',
    }),
    usersource: p.string({ description: 'Only users from this source: native or ldap.' }),
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    apikeyaccess: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('users').innerJoin('accounts', 'accounts.id', 'users.account_id');
    if (params.id) q = q.where('users.uuid', '=', params.id);
    if (params.username) q = q.where('users.username', '=', params.username);
    if (params.accounttype !== undefined) q = q.where('accounts.type', '=', params.accounttype);
    if (params.state) q = q.where('users.state', '=', params.state.toLowerCase());
    if (params.usersource) q = q.where('users.source', '=', params.usersource);
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'users.username',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    return listOwned(ctx, params, q, {
      owner: { account: 'accounts.id', domain: 'accounts.domain_id' },
      rows: (scoped, page) => paginate(scoped.selectAll('users').orderBy('users.id'), page).execute(),
      present: (rows) => presentUsers(ctx, rows),
    });
  },
});

export const updateUser = defineCommand({
  name: 'updateUser',
  description:
    "Changes a user's login name, password, contact details or API keys; a new password ends all the user's sessions.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the user to change.' }),
    username: p.string({ description: 'New login name, free within the domain.' }),
    password: p.string({ description: 'New password in clear text; checked against the password policy.' }),
    currentpassword: p.string({
      description: 'The present password; required when a user changes their own password.',
    }),
    email: p.string({ description: 'New email address.' }),
    firstname: p.string({ description: 'New first name.' }),
    lastname: p.string({ description: 'New last name.' }),
    timezone: p.string({ description: 'New time zone, such as Europe/Paris.' }),
    userapikey: p.string({
      description: 'API key to set; must be given with usersecretkey and not be used by another user.',
    }),
    usersecretkey: p.string({ description: 'Secret key to set together with userapikey; stored encrypted.' }),
    apikeyaccess: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    mandate2fa: p.boolean({
      description:
        'Administrators only: true makes two-factor authentication mandatory for the user; false changes nothing.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const { user, account } = await findUser(ctx, params.id);
    checkUserFields(params);
    const changes: Partial<UserRow> = {};
    if (params.password !== undefined) {
      // Users changing their own password prove they know the current one, as upstream.
      if (ctx.caller.user.id === user.id && ctx.caller.roleKind === 'user') {
        if (!params.currentpassword || !(await verifyPassword(params.currentpassword, user.password))) {
          throw invalidParameter('Current password is incorrect');
        }
      }
      checkPasswordPolicy(app, params.password, params.username ?? user.username, account.domain_id);
      changes.password = await hashPassword(params.password);
    }
    if (params.mandate2fa) {
      // Mandating only switches 2FA on (the user sets it up at their next login); it never turns it off.
      if (ctx.caller.roleKind === 'user')
        throw permissionDenied('Only administrators can mandate two-factor authentication');
      if (!app.settings.at(ENABLE_USER_2FA, 'domain', account.domain_id))
        throw invalidParameter(
          "Two-factor authentication can be mandated only where enable.user.2fa is true for the user's domain",
        );
      changes.user_2fa_enabled = 1;
    }
    if (params.email !== undefined) changes.email = params.email;
    if (params.firstname !== undefined) changes.firstname = params.firstname;
    if (params.lastname !== undefined) changes.lastname = params.lastname;
    if (params.timezone !== undefined) changes.timezone = params.timezone;
    if ((params.userapikey === undefined) !== (params.usersecretkey === undefined)) {
      throw invalidParameter('userapikey and usersecretkey must be given together');
    }
    if (params.userapikey && params.usersecretkey) {
      changes.api_key = params.userapikey;
      changes.secret_key = app.secrets.encrypt(params.usersecretkey);
    }
    await app.store.db.transaction().execute(async (tx) => {
      if (params.username !== undefined && params.username !== user.username) {
        await checkUsernameFree(tx, account.domain_id, params.username, user.id);
        changes.username = params.username;
      }
      if (changes.api_key) {
        const taken = await tx
          .selectFrom('users')
          .select('id')
          .where('api_key', '=', changes.api_key)
          .where('id', '!=', user.id)
          .executeTakeFirst();
        if (taken) throw invalidParameter('The api key is already in use by another user');
      }
      if (Object.keys(changes).length > 0)
        await tx.updateTable('users').set(changes).where('id', '=', user.id).execute();
      // A new password ends every session of the user, the caller's own included: whoever held one
      // (perhaps the reason for the change) must now sign in with the new password.
      if (changes.password) await endUserSessions(tx, user.id);
      await logEvent(ctx, tx, {
        type: 'USER.UPDATE',
        description: `updating user ${user.username}`,
        resourceType: 'User',
        resourceId: user.uuid,
      });
    });
    forgetCachedIdentity();
    return presentOne(ctx, user.id);
  },
});

async function setUserState(ctx: CallContext, id: string, state: string, eventType: string): Promise<object> {
  const { user } = await findUser(ctx, id);
  if (user.id === ctx.caller.user.id && state !== 'enabled')
    throw permissionDenied('A user cannot disable or lock themselves');
  await ctx.app.store.db.transaction().execute(async (tx) => {
    // Enabling also clears the failed-login count (as upstream), or the next typo would disable again.
    const set = state === 'enabled' ? { state, login_attempts: 0 } : { state };
    await tx.updateTable('users').set(set).where('id', '=', user.id).execute();
    if (state !== 'enabled') await endUserSessions(tx, user.id);
    await logEvent(ctx, tx, {
      type: eventType,
      description: `${state} user ${user.username}`,
      resourceType: 'User',
      resourceId: user.uuid,
    });
  });
  forgetCachedIdentity();
  if (state === 'enabled') await resolveAlert(ctx.app, lockoutAlertKey(user.uuid));
  return presentOne(ctx, user.id);
}

export const disableUser = defineCommand({
  name: 'disableUser',
  description:
    'Disables a user so they can no longer sign in or call the API, and ends their sessions. Asynchronous; users cannot disable themselves.',
  params: { id: p.uuid({ required: true, description: 'UUID of the user to disable.' }) },
  event: { type: 'USER.DISABLE', description: (params) => `disabling user ${params.id}` },
  target: (_ctx, params) => ({ type: 'User', id: params.id }),
  handler: (ctx, params) => setUserState(ctx, params.id, 'disabled', 'USER.DISABLE'),
});

export const enableUser = defineCommand({
  name: 'enableUser',
  description: 'Lets a disabled or locked user sign in again and resets their failed login count.',
  params: { id: p.uuid({ required: true, description: 'UUID of the user to enable.' }) },
  handler: (ctx, params) => setUserState(ctx, params.id, 'enabled', 'USER.ENABLE'),
});

export const lockUser = defineCommand({
  name: 'lockUser',
  description:
    'Locks a user out (as too many failed logins do) and ends their sessions; enableUser unlocks them.',
  params: { id: p.uuid({ required: true, description: 'UUID of the user to lock.' }) },
  handler: (ctx, params) => setUserState(ctx, params.id, 'locked', 'USER.LOCK'),
});

export const deleteUser = defineCommand({
  name: 'deleteUser',
  description:
    "Deletes a user and their sessions; refused for the caller themselves and for an account's last user.",
  params: { id: p.uuid({ required: true, description: 'UUID of the user to delete.' }) },
  async handler(ctx, params) {
    const { user } = await findUser(ctx, params.id);
    if (user.id === ctx.caller.user.id) throw permissionDenied('A user cannot delete themselves');
    const db = ctx.app.store.db;
    const others = await db
      .selectFrom('users')
      .select('id')
      .where('account_id', '=', user.account_id)
      .where('id', '!=', user.id)
      .executeTakeFirst();
    if (!others)
      throw invalidParameter('The last user of an account cannot be deleted; delete the account instead');
    // A user who is a project's Admin on their own (addUserToProject) is refused, as an account
    // administering one is; their other memberships and invitations go with them.
    const administered = await db
      .selectFrom('project_members')
      .innerJoin('projects', 'projects.id', 'project_members.project_id')
      .select('projects.uuid')
      .where('project_members.user_id', '=', user.id)
      .where('project_members.role', '=', 'Admin')
      .where('projects.removed', 'is', null)
      .execute();
    if (administered.length)
      throw invalidParameter(
        `The user ${user.username} manages project(s) with ids ${administered.map((r) => r.uuid).join(', ')} and can't be removed`,
      );
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('project_members').where('user_id', '=', user.id).execute();
      await tx.deleteFrom('project_invitations').where('user_id', '=', user.id).execute();
      await tx.deleteFrom('sessions').where('user_id', '=', user.id).execute();
      await tx.deleteFrom('users').where('id', '=', user.id).execute();
      await logEvent(ctx, tx, {
        type: 'USER.DELETE',
        description: `deleted user ${user.username}`,
        resourceType: 'User',
        resourceId: user.uuid,
      });
    });
    forgetCachedIdentity();
    return success();
  },
});

/** Issues a new API key and secret key for a user; the secret is stored encrypted. */
export async function registerKeys(
  ctx: Pick<CallContext, 'app'>,
  user: UserRow,
): Promise<{ apikey: string; secretkey: string }> {
  const apikey = randomToken(64);
  const secretkey = randomToken(64);
  await ctx.app.store.db
    .updateTable('users')
    .set({ api_key: apikey, secret_key: ctx.app.secrets.encrypt(secretkey) })
    .where('id', '=', user.id)
    .execute();
  forgetCachedIdentity();
  return { apikey, secretkey };
}

export const registerUserKeys = defineCommand({
  name: 'registerUserKeys',
  description:
    'Generates a new API key and secret key for a user, replacing any previous pair, and returns both.',
  params: { id: p.uuid({ required: true, description: 'UUID of the user who gets the keys.' }) },
  async handler(ctx, params) {
    const { user } = await findUser(ctx, params.id);
    const keys = await registerKeys(ctx, user);
    await ctx.app.store.db.transaction().execute((tx) =>
      logEvent(ctx, tx, {
        type: 'REGISTER.USER.KEY',
        description: `registered keys for user ${user.username}`,
        resourceType: 'User',
        resourceId: user.uuid,
      }),
    );
    return keys;
  },
});

export const getUserKeys = defineCommand({
  name: 'getUserKeys',
  description: "Returns a user's API key and secret key, or nothing if none were generated.",
  params: { id: p.uuid({ required: true, description: 'UUID of the user.' }) },
  async handler(ctx, params) {
    const { user } = await findUser(ctx, params.id);
    if (!user.api_key || !user.secret_key) return {};
    return { apikey: user.api_key, secretkey: ctx.app.secrets.decrypt(user.secret_key) };
  },
});

export const getUser = defineCommand({
  name: 'getUser',
  description: 'Finds the user that owns an API key. Root admins only.',
  params: { userapikey: p.string({ required: true, description: 'The API key to look up.' }) },
  async handler(ctx, params) {
    const row = await ctx.app.store.db
      .selectFrom('users')
      .selectAll()
      .where('api_key', '=', params.userapikey)
      .executeTakeFirst();
    if (!row) throw invalidParameter('Unable to find a user with that api key');
    return (await presentUsers(ctx, [row]))[0];
  },
});

export const userCommands = [
  createUser,
  listUsers,
  updateUser,
  disableUser,
  enableUser,
  lockUser,
  deleteUser,
  registerUserKeys,
  getUserKeys,
  getUser,
];

registerTaggable('User', async (ctx, uuid) => {
  const u = await ctx.app.store.db
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select(['users.id', 'users.account_id', 'accounts.domain_id'])
    .where('users.uuid', '=', uuid)
    .executeTakeFirst();
  return u && { id: u.id, accountId: u.account_id, domainId: u.domain_id };
});
