/** Users: the people (and programs) that log in or sign requests on behalf of an account. */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow, DomainRow, RoleRow, UserRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable } from '../tags/tags.ts';
import { applyScope, checkOwnerAccess, listScope } from './access.ts';
import { forgetCachedIdentity } from './caller.ts';
import { hashPassword, randomToken, verifyPassword } from './secrets.ts';

export interface NewUser {
  username: string;
  password: string;
  email: string;
  firstname: string;
  lastname: string;
  timezone?: string;
  userid?: string;
}

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
  checkUserFields(u);
  await checkUsernameFree(tx, domain.id, u.username);
  const id = await insertId(app.store, tx, 'users', {
    uuid: u.userid && /^[0-9a-f-]{36}$/i.test(u.userid) ? u.userid.toLowerCase() : app.ids.uuid(),
    username: u.username,
    password: await hashPassword(u.password),
    firstname: u.firstname,
    lastname: u.lastname,
    email: u.email,
    timezone: u.timezone ?? null,
    account_id: account.id,
    state: 'enabled',
    api_key: null,
    secret_key: null,
    is_default: 0,
    source: 'native',
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
        domain.id !== ctx.caller.domain.id && domain.path.startsWith(ctx.caller.domain.path),
      isdefault: u.is_default === 1,
      is2faenabled: false,
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
  const domain = await db
    .selectFrom('domains')
    .selectAll()
    .where('id', '=', account.domain_id)
    .executeTakeFirstOrThrow();
  if (ctx.caller.user.id !== user.id) checkOwnerAccess(ctx.caller, { accountId: account.id, domain });
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
  params: {
    account: p.string({ required: true }),
    domainid: p.uuid(),
    username: p.string({ required: true }),
    password: p.string({ required: true }),
    email: p.string({ required: true }),
    firstname: p.string({ required: true }),
    lastname: p.string({ required: true }),
    timezone: p.string(),
    userid: p.string(),
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
  params: {
    ...listParams,
    id: p.uuid(),
    username: p.string(),
    account: p.string(),
    accounttype: p.integer(),
    domainid: p.uuid(),
    isrecursive: p.boolean(),
    listall: p.boolean(),
    state: p.string(),
    usersource: p.string(),
    showicon: p.boolean(),
    apikeyaccess: p.string(),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const scope = await listScope(ctx, params);
    let q = applyScope(
      app.store.db.selectFrom('users').innerJoin('accounts', 'accounts.id', 'users.account_id'),
      scope,
      { account: 'accounts.id', domain: 'accounts.domain_id' },
    );
    if (params.id) q = q.where('users.uuid', '=', params.id);
    if (params.username) q = q.where('users.username', '=', params.username);
    if (params.accounttype !== undefined) q = q.where('accounts.type', '=', params.accounttype);
    if (params.state) q = q.where('users.state', '=', params.state.toLowerCase());
    if (params.usersource) q = q.where('users.source', '=', params.usersource);
    if (params.keyword)
      q = q.where(
        'users.username',
        app.store.dialect === 'postgres' ? 'ilike' : 'like',
        `%${params.keyword}%`,
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rowsQ = paginate(q.selectAll('users').orderBy('users.id'), pageOf(app, params));
    return listResult(await presentUsers(ctx, await rowsQ.execute()), Number(count));
  },
});

export const updateUser = defineCommand({
  name: 'updateUser',
  params: {
    id: p.uuid({ required: true }),
    username: p.string(),
    password: p.string(),
    currentpassword: p.string(),
    email: p.string(),
    firstname: p.string(),
    lastname: p.string(),
    timezone: p.string(),
    userapikey: p.string(),
    usersecretkey: p.string(),
    apikeyaccess: p.string(),
    mandate2fa: p.boolean(),
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
      changes.password = await hashPassword(params.password);
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
    await tx.updateTable('users').set({ state }).where('id', '=', user.id).execute();
    if (state !== 'enabled') await tx.deleteFrom('sessions').where('user_id', '=', user.id).execute();
    await logEvent(ctx, tx, {
      type: eventType,
      description: `${state} user ${user.username}`,
      resourceType: 'User',
      resourceId: user.uuid,
    });
  });
  forgetCachedIdentity();
  return presentOne(ctx, user.id);
}

export const disableUser = defineCommand({
  name: 'disableUser',
  params: { id: p.uuid({ required: true }) },
  event: { type: 'USER.DISABLE', description: (params) => `disabling user ${params.id}` },
  target: (_ctx, params) => ({ type: 'User', id: params.id }),
  handler: (ctx, params) => setUserState(ctx, params.id, 'disabled', 'USER.DISABLE'),
});

export const enableUser = defineCommand({
  name: 'enableUser',
  params: { id: p.uuid({ required: true }) },
  handler: (ctx, params) => setUserState(ctx, params.id, 'enabled', 'USER.ENABLE'),
});

export const lockUser = defineCommand({
  name: 'lockUser',
  params: { id: p.uuid({ required: true }) },
  handler: (ctx, params) => setUserState(ctx, params.id, 'locked', 'USER.LOCK'),
});

export const deleteUser = defineCommand({
  name: 'deleteUser',
  params: { id: p.uuid({ required: true }) },
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
    await db.transaction().execute(async (tx) => {
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
  params: { id: p.uuid({ required: true }) },
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
  params: { id: p.uuid({ required: true }) },
  async handler(ctx, params) {
    const { user } = await findUser(ctx, params.id);
    if (!user.api_key || !user.secret_key) return {};
    return { apikey: user.api_key, secretkey: ctx.app.secrets.decrypt(user.secret_key) };
  },
});

export const getUser = defineCommand({
  name: 'getUser',
  params: { userapikey: p.string({ required: true }) },
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
