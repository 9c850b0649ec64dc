/**
 * VPN users (addVpnUser, removeVpnUser, listVpnUsers): an account's usernames and passwords for
 * its remote-access VPNs. A user added or removed is applied to every remote-access VPN of the
 * account at once; when a router refuses, the change is undone. An account has at most
 * remote.access.vpn.user.limit users.
 */
import type { CallContext } from '../../context.ts';
import type { AccountRow } from '../../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, internalError, invalidParameter } from '../../errors.ts';
import { logEvent } from '../../events/events.ts';
import { escapeLike, likeEscaped } from '../../iam/access.ts';
import { onAccountDelete, resolveAccount } from '../../iam/accounts.ts';
import { listOwned, ownerFieldsOf } from '../../iam/owned.ts';
import { likeOp } from '../../infra/common.ts';
import { projectOwner } from '../../projects/access.ts';
import { defineCommand, type JobTarget, success } from '../../registry/command.ts';
import { paginate } from '../../registry/paging.ts';
import { listParams, p, scopeParams } from '../../registry/params.ts';
import { defineSetting } from '../../settings/settings.ts';
import { scopeOfVpn } from './remote-access.ts';
import type { VpnUserRow } from './tables.ts';
import { applyVpn } from './vpn-apply.ts';

export const VPN_USER_LIMIT = defineSetting({
  name: 'remote.access.vpn.user.limit',
  category: 'Network',
  type: 'Integer',
  defaultValue: 8,
  min: 0,
  description: 'The most VPN users one account may have.',
});

const USERNAME = /^[a-zA-Z0-9][a-zA-Z0-9@._-]{2,63}$/;
const PASSWORD = /^[a-zA-Z0-9][a-zA-Z0-9@+=._-]{2,31}$/;

async function ownerOf(
  ctx: CallContext,
  params: { account?: string; domainid?: string; projectid?: string },
  purpose: 'create' | 'find' = 'create',
): Promise<AccountRow> {
  const project = await projectOwner(ctx, params, purpose);
  if (project) return project;
  if (params.account)
    return (await resolveAccount(ctx, { account: params.account, domainid: params.domainid })).account;
  if (params.domainid) throw invalidParameter('domainid must be given together with account');
  return ctx.caller.account;
}

/** Applies the account's users to each of its remote-access VPNs; true when it has any. */
async function applyUsers(ctx: CallContext, accountId: number): Promise<boolean> {
  const vpns = await ctx.app.store.db
    .selectFrom('remote_access_vpns')
    .selectAll()
    .where('account_id', '=', accountId)
    .execute();
  for (const vpn of vpns) await applyVpn(ctx.app, scopeOfVpn(vpn));
  return vpns.length > 0;
}

async function presentUsers(ctx: CallContext, rows: VpnUserRow[]): Promise<object[]> {
  const owner = await ownerFieldsOf(ctx.app, rows);
  return rows.map((u) => ({ id: u.uuid, username: u.username, state: u.state, ...owner(u) }));
}

export const addVpnUser = defineCommand({
  name: 'addVpnUser',
  description:
    'Adds a VPN user to an account: the username and password then authenticate on every remote-access VPN of the account. Refused when the account has none. Asynchronous.',
  params: {
    username: p.string({
      required: true,
      description: "The user's name: 3 to 64 letters, digits and '@.-_', starting with a letter or digit.",
    }),
    password: p.string({
      required: true,
      description:
        "The user's password: 3 to 32 letters, digits and '@+=.-_', starting with a letter or digit.",
    }),
    account: p.string({
      description: 'Account the user is added to (with domainid); defaults to the caller.',
    }),
    domainid: p.uuid({ description: 'Domain of account.' }),
    projectid: p.uuid({
      description: 'Project the user is added to (you must be a member); not with account.',
    }),
  },
  event: { type: 'VPN.USER.ADD', description: (params) => `adding VPN user ${params.username}` },
  async create(ctx, params): Promise<JobTarget> {
    const { app } = ctx;
    if (!USERNAME.test(params.username))
      throw invalidParameter(
        `Username [${params.username}] is invalid. Username has to begin with an alphabet have 3-64 characters including alphabets, numbers and the set '@.-_'.`,
      );
    if (!PASSWORD.test(params.password))
      throw invalidParameter(
        "Password has to be 3-32 characters including alphabets, numbers and the set '@+=.-_'",
      );
    const owner = await ownerOf(ctx, params);
    const uuid = app.ids.uuid();
    await app.store.db.transaction().execute(async (tx) => {
      // The account row's lock: two additions at once count each other.
      await tx
        .updateTable('accounts')
        .set((eb) => ({ name: eb.ref('name') }))
        .where('id', '=', owner.id)
        .execute();
      const existing = await tx
        .selectFrom('vpn_users')
        .select('id')
        .where('account_id', '=', owner.id)
        .where('username', '=', params.username)
        .executeTakeFirst();
      if (existing)
        throw invalidParameter(
          `VPN User with name ${params.username} is already added for account ${owner.name}`,
        );
      const { n } = await tx
        .selectFrom('vpn_users')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('account_id', '=', owner.id)
        .executeTakeFirstOrThrow();
      const limit = app.settings.get(VPN_USER_LIMIT);
      if (Number(n) >= limit)
        // Upstream throws AccountLimitException here (532), not the resource-limit 535.
        throw new ApiError(
          ErrorCode.ACCOUNT_RESOURCE_LIMIT,
          CsErrorCode.ACCOUNT_LIMIT,
          `Cannot add more than [${limit}] remote access VPN users to account ${owner.name}.`,
        );
      await tx
        .insertInto('vpn_users')
        .values({
          uuid,
          account_id: owner.id,
          domain_id: owner.domain_id,
          username: params.username,
          password: app.secrets.encrypt(params.password),
          state: 'Add',
          created: app.clock.now(),
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VPN.USER.ADD',
        description: `added VPN user ${params.username} to account ${owner.name}`,
        resourceType: 'VpnUser',
        resourceId: uuid,
      });
    });
    return { type: 'VpnUser', id: uuid };
  },
  async handler(ctx, _params, created) {
    const db = ctx.app.store.db;
    const user = await db
      .selectFrom('vpn_users')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    const undo = async () => {
      await db.deleteFrom('vpn_users').where('id', '=', user.id).execute();
      await applyUsers(ctx, user.account_id).catch(() => undefined);
    };
    let applied: boolean;
    try {
      applied = await applyUsers(ctx, user.account_id);
    } catch (err) {
      await undo();
      throw err;
    }
    if (!applied) {
      await undo();
      throw internalError('Failed to add vpn user: the account has no remote access VPN to apply it to');
    }
    await db.updateTable('vpn_users').set({ state: 'Active' }).where('id', '=', user.id).execute();
    return (await presentUsers(ctx, [{ ...user, state: 'Active' }]))[0]!;
  },
});

export const removeVpnUser = defineCommand({
  name: 'removeVpnUser',
  description:
    "Removes a VPN user from an account: it can no longer connect to the account's remote-access VPNs. Asynchronous.",
  params: {
    username: p.string({ required: true, description: 'Name of the VPN user to remove.' }),
    account: p.string({
      description: 'Account the user belongs to (with domainid); defaults to the caller.',
    }),
    domainid: p.uuid({ description: 'Domain of account.' }),
    projectid: p.uuid({ description: 'Project the user belongs to, instead of account.' }),
  },
  event: { type: 'VPN.USER.REMOVE', description: (params) => `removing VPN user ${params.username}` },
  async target(ctx, params) {
    const owner = await ownerOf(ctx, params, 'find');
    return { type: 'Account', id: owner.uuid };
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    const owner = await ownerOf(ctx, params, 'find');
    const user = await db
      .selectFrom('vpn_users')
      .selectAll()
      .where('account_id', '=', owner.id)
      .where('username', '=', params.username)
      .executeTakeFirst();
    if (!user)
      throw invalidParameter(`Could not find VPN user=[${params.username}]. VPN owner id=[${owner.uuid}]`);
    await db.transaction().execute(async (tx) => {
      await tx.deleteFrom('vpn_users').where('id', '=', user.id).execute();
      await logEvent(ctx, tx, {
        type: 'VPN.USER.REMOVE',
        description: `removed VPN user ${user.username} from account ${owner.name}`,
        resourceType: 'VpnUser',
        resourceId: user.uuid,
      });
    });
    try {
      await applyUsers(ctx, owner.id);
    } catch (err) {
      await db.insertInto('vpn_users').values(user).execute();
      await applyUsers(ctx, owner.id).catch(() => undefined);
      throw err;
    }
    return success();
  },
});

export const listVpnUsers = defineCommand({
  name: 'listVpnUsers',
  description: 'Lists the VPN users the caller may see (never their passwords).',
  params: {
    id: p.uuid({ description: 'Only the VPN user with this ID.' }),
    username: p.string({ description: 'Only the VPN user with exactly this name.' }),
    ...scopeParams,
    ...listParams,
  },
  async handler(ctx, params) {
    let q = ctx.app.store.db.selectFrom('vpn_users');
    if (params.id) q = q.where('vpn_users.uuid', '=', params.id);
    if (params.username) q = q.where('vpn_users.username', '=', params.username);
    if (params.keyword)
      q = q.where(likeEscaped('vpn_users.username', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    return listOwned(ctx, params, q, {
      owner: { account: 'vpn_users.account_id', domain: 'vpn_users.domain_id' },
      rows: (scoped, page) =>
        paginate(scoped.selectAll('vpn_users').orderBy('vpn_users.username'), page).execute() as Promise<
          VpnUserRow[]
        >,
      present: (rows) => presentUsers(ctx, rows),
    });
  },
});

// A deleted account's VPN users and customer gateways go with it (its VPNs went with its addresses).
onAccountDelete(async (ctx, account) => {
  await ctx.app.store.db.deleteFrom('vpn_users').where('account_id', '=', account.id).execute();
});

export const vpnUserCommands = [addVpnUser, removeVpnUser, listVpnUsers];
