/**
 * Two-factor authentication as CloudStack 4.18+ has it: a user sets up a provider (TOTP, or a
 * static PIN) with setupUserTwoFactorAuthentication, which answers the secret once; the first
 * code given to validateUserTwoFactorAuthenticationCode confirms the setup. From then on (or at
 * once, when mandate.user.2fa holds for the user's domain) every login owes a code: the session
 * may call only the 2FA commands until validateUserTwoFactorAuthenticationCode accepts one
 * (http/auth.ts). Signed API-key calls are not subject to 2FA, as upstream.
 */
import { randomInt } from 'node:crypto';
import type { CallContext } from '../context.ts';
import type { UserRow } from '../db/schema.ts';
import { ApiError, CsErrorCode, ErrorCode, invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { forgetCachedIdentity } from './caller.ts';
import { constantTimeEquals } from './secrets.ts';
import { countFailedLogin, endSession } from './sessions.ts';
import { ENABLE_USER_2FA, MANDATE_USER_2FA, USER_2FA_DEFAULT_PROVIDER } from './sign-in-settings.ts';
import { matchTotp, newTotpSecret } from './totp.ts';
import { findUser } from './users.ts';

interface Provider {
  name: string;
  description: string;
  /** A new secret for a user: what the user must keep (in an app, or written down). */
  newSecret(): string;
  /** The TOTP time step the code belongs to (0 for a static PIN), or undefined if it is wrong. */
  check(secret: string, code: string, now: number): number | undefined;
}

const PROVIDERS: Provider[] = [
  {
    name: 'totp',
    description: 'Time-based one-time passwords (RFC 6238) from an authenticator app',
    newSecret: newTotpSecret,
    check: (secret, code, now) => matchTotp(secret, code.trim(), now),
  },
  {
    name: 'staticpin',
    description: 'A fixed six-digit PIN issued at setup (weaker than TOTP: it never changes)',
    newSecret: () => String(randomInt(0, 1_000_000)).padStart(6, '0'),
    check: (secret, code) => (constantTimeEquals(secret, code.trim()) ? 0 : undefined),
  },
];

function provider(name: string): Provider {
  const found = PROVIDERS.find((p) => p.name === name.toLowerCase());
  if (!found)
    throw invalidParameter(
      `Unknown two-factor authentication provider ${name}; one of ${PROVIDERS.map((p) => p.name).join(', ')}`,
    );
  return found;
}

/** The user's row as stored now (the cached caller may be up to two seconds old). */
async function freshUser(ctx: CallContext, id: number): Promise<UserRow> {
  return ctx.app.store.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

async function accountUuid(ctx: CallContext, accountId: number): Promise<string> {
  const row = await ctx.app.store.db
    .selectFrom('accounts')
    .select('uuid')
    .where('id', '=', accountId)
    .executeTakeFirstOrThrow();
  return row.uuid;
}

const CLEARED = {
  user_2fa_enabled: 0 as const,
  user_2fa_verified: 0 as const,
  user_2fa_provider: null,
  key_for_2fa: null,
  last_2fa_step: null,
};

export const listUserTwoFactorAuthenticatorProviders = defineCommand({
  name: 'listUserTwoFactorAuthenticatorProviders',
  description: 'Lists the two-factor authentication providers a user can set up.',
  params: { name: p.string({ description: 'Only the provider of this name.' }) },
  async handler(_ctx, params) {
    const list = PROVIDERS.filter((p) => !params.name || p.name === params.name.toLowerCase()).map((p) => ({
      name: p.name,
      description: p.description,
    }));
    return listResult(list, list.length);
  },
});

export const setupUserTwoFactorAuthentication = defineCommand({
  name: 'setupUserTwoFactorAuthentication',
  description:
    'Sets up two-factor authentication for the caller and answers the secret once; with enable=false, removes it from the caller or (administrators) from another user.',
  params: {
    enable: p.boolean({
      description: 'false removes two-factor authentication; true (the default) sets it up.',
    }),
    provider: p.string({ description: 'totp or staticpin; user.2fa.default.provider when omitted.' }),
    userid: p.uuid({ description: 'With enable=false: the user whose two-factor authentication to remove.' }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    const db = app.store.db;
    const owesCode = ctx.session !== undefined && !ctx.session.verified2fa;
    if (params.enable !== false) {
      if (params.userid && params.userid !== caller.user.uuid)
        throw invalidParameter('Two-factor authentication can only be set up by the user themselves');
      const user = await freshUser(ctx, caller.user.id);
      const domainId = caller.domain.id;
      if (
        !app.settings.at(ENABLE_USER_2FA, 'domain', domainId) &&
        !app.settings.at(MANDATE_USER_2FA, 'domain', domainId)
      )
        throw invalidParameter('Two-factor authentication is not enabled for this domain or at global level');
      // A secret in place is replaced only after removing it (enable=false), which a session that
      // still owes its code cannot do: a stolen password alone never resets someone's 2FA.
      if (user.key_for_2fa)
        throw invalidParameter(
          `Two-factor authentication is already set up for user ${user.username}; remove it first (enable=false)`,
        );
      const chosen = provider(
        params.provider ?? app.settings.at(USER_2FA_DEFAULT_PROVIDER, 'domain', domainId),
      );
      const secret = chosen.newSecret();
      await db.transaction().execute(async (tx) => {
        await tx
          .updateTable('users')
          .set({
            user_2fa_enabled: 1,
            user_2fa_verified: 0,
            user_2fa_provider: chosen.name,
            key_for_2fa: app.secrets.encrypt(secret),
            last_2fa_step: null,
          })
          .where('id', '=', user.id)
          .execute();
        await logEvent(ctx, tx, {
          type: 'USER.UPDATE',
          description: `setting up ${chosen.name} two-factor authentication for user ${user.username}`,
          resourceType: 'User',
          resourceId: user.uuid,
        });
      });
      forgetCachedIdentity();
      return {
        id: user.uuid,
        username: user.username,
        accountid: await accountUuid(ctx, user.account_id),
        secretcode: secret,
      };
    }
    if (owesCode)
      throw permissionDenied('Two-factor authentication cannot be removed before this session has passed it');
    const user = params.userid
      ? (await findUser(ctx, params.userid)).user
      : await freshUser(ctx, caller.user.id);
    await db.transaction().execute(async (tx) => {
      await tx.updateTable('users').set(CLEARED).where('id', '=', user.id).execute();
      await logEvent(ctx, tx, {
        type: 'USER.UPDATE',
        description: `removing two-factor authentication of user ${user.username}`,
        resourceType: 'User',
        resourceId: user.uuid,
      });
    });
    forgetCachedIdentity();
    return { id: user.uuid, username: user.username, accountid: await accountUuid(ctx, user.account_id) };
  },
});

export const validateUserTwoFactorAuthenticationCode = defineCommand({
  name: 'validateUserTwoFactorAuthenticationCode',
  description:
    'Checks a two-factor code of the caller: it completes the sign-in of a session that owes one, and confirms a new setup.',
  params: {
    codefor2fa: p.string({
      required: true,
      description: 'The code from the authenticator app, or the static PIN.',
    }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    const db = app.store.db;
    const user = await freshUser(ctx, caller.user.id);
    const owesCode = ctx.session !== undefined && !ctx.session.verified2fa;
    if (!user.user_2fa_provider || !user.key_for_2fa)
      throw invalidParameter(
        user.user_2fa_enabled === 1 || owesCode
          ? `Two-factor authentication is not set up for user ${user.username}: call setupUserTwoFactorAuthentication first`
          : `Two-factor authentication is not enabled for user ${user.username}`,
      );
    const secret = app.secrets.decrypt(user.key_for_2fa);
    const now = app.clock.now();
    const step = provider(user.user_2fa_provider).check(secret, params.codefor2fa, now);
    // A TOTP code is good once (RFC 6238 §5.2): one overheard or shoulder-surfed is already spent.
    const replayed =
      step !== undefined &&
      user.user_2fa_provider === 'totp' &&
      user.last_2fa_step !== null &&
      step <= user.last_2fa_step;
    if (step === undefined || replayed) {
      if (owesCode) {
        // At sign-in a wrong code counts as a failed login and ends the session: guessing costs a
        // password entry per try and runs into incorrect.login.attempts.allowed.
        await countFailedLogin(app, user.id);
        await endSession(app, ctx.session!.sessionId);
        throw new ApiError(
          ErrorCode.ACCOUNT_ERROR,
          CsErrorCode.AUTHENTICATION,
          'The two-factor authentication code is invalid; log in again',
        );
      }
      // A setup not yet confirmed is dropped, as upstream: the user starts it again.
      if (user.user_2fa_verified === 0)
        await db.updateTable('users').set(CLEARED).where('id', '=', user.id).execute();
      forgetCachedIdentity();
      throw invalidParameter('The two-factor authentication code is invalid');
    }
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('users')
        .set({ user_2fa_enabled: 1, user_2fa_verified: 1, last_2fa_step: step, login_attempts: 0 })
        .where('id', '=', user.id)
        .execute();
      if (ctx.session)
        await tx
          .updateTable('sessions')
          .set({ verified_2fa: 1 })
          .where('session_id', '=', ctx.session.sessionId)
          .execute();
    });
    forgetCachedIdentity();
    return success();
  },
});

export const twoFactorCommands = [
  listUserTwoFactorAuthenticatorProviders,
  setupUserTwoFactorAuthentication,
  validateUserTwoFactorAuthenticationCode,
];
