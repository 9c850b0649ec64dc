/**
 * Login sessions. A session is a database row so that any management server behind a balancer
 * can serve the next call. The client holds the JSESSIONID cookie and presents the session key as
 * the `sessionkey` parameter and/or the HttpOnly `sessionkey` cookie.
 */
import type { App, Caller } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
import { logEvent, recordEvent } from '../events/events.ts';
import { recordAlert } from '../infra/alerts.ts';
import { authenticateWithDirectory, directoryDecides } from '../ldap/sign-in.ts';
import { SESSION_TIMEOUT } from '../settings/core-settings.ts';
import { forgetCachedIdentity, isActive, loadCaller } from './caller.ts';
import { constantTimeEquals, randomToken, verifyPassword } from './secrets.ts';
import {
  ENABLE_USER_2FA,
  INCORRECT_LOGIN_ATTEMPTS,
  MANDATE_USER_2FA,
  USER_2FA_ISSUER,
} from './sign-in-settings.ts';

export interface LoginInput {
  username: string;
  password: string;
  domain?: string;
  domainId?: string;
  /**
   * The JSESSIONID the browser already held, if any: login ends that session and always issues a
   * new id, so an id planted in the browser before login (session fixation) never becomes valid.
   */
  previousSessionId?: string;
}

export interface Session {
  sessionId: string;
  sessionKey: string;
  caller: Caller;
  /** False while the user still owes a two-factor code: only the 2FA commands may be called. */
  verified2fa: boolean;
}

/** Alert type ALERT.MANAGEMENT: upstream has none for users, and this one reaches operators. */
const LOCKOUT_ALERT_TYPE = 14;
export const lockoutAlertKey = (userUuid: string) => `login-lockout:${userUuid}`;

const loginFailed = () =>
  new ApiError(
    ErrorCode.ACCOUNT_ERROR,
    CsErrorCode.AUTHENTICATION,
    'Failed to authenticate user, check if username/password are correct',
  );

/** "/", "/sub", "ROOT/sub/" ... → our stored path form "/" or "/sub/". */
export function normaliseDomainPath(input: string): string {
  const parts = input.split('/').filter((s) => s !== '');
  if (parts[0] === 'ROOT') parts.shift();
  return parts.length === 0 ? '/' : `/${parts.join('/')}/`;
}

/**
 * Failed logins answer no sooner than this after they began. The paths differ in work (an unknown
 * user skips the attempt count's writes, an unknown domain even the hash), and the difference in
 * answer time would tell a guesser which user names exist; upstream pads its failures likewise.
 */
const FAILED_LOGIN_FLOOR_MS = 300;

async function failAfterFloor(started: number): Promise<never> {
  const wait = started + FAILED_LOGIN_FLOOR_MS - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  throw loginFailed();
}

export async function login(app: App, input: LoginInput): Promise<Session> {
  const started = performance.now();
  const db = app.store.db;
  let domainQuery = db.selectFrom('domains').selectAll();
  if (input.domainId) {
    domainQuery = domainQuery.where('uuid', '=', input.domainId.toLowerCase());
  } else {
    domainQuery = domainQuery.where('path', '=', normaliseDomainPath(input.domain ?? '/'));
  }
  // Any login attempt ends the session the browser held, as upstream invalidates it first.
  if (input.previousSessionId)
    await db.deleteFrom('sessions').where('session_id', '=', input.previousSessionId).execute();
  const domain = await domainQuery.executeTakeFirst();
  if (!domain) return failAfterFloor(started);
  const findUser = (by: { id: number } | { username: string }) => {
    const q = db
      .selectFrom('users')
      .innerJoin('accounts', 'accounts.id', 'users.account_id')
      .select(['users.id', 'users.password', 'users.login_attempts', 'users.source', 'users.account_id'])
      .where('accounts.domain_id', '=', domain.id);
    return (
      'id' in by ? q.where('users.id', '=', by.id) : q.where('users.username', '=', by.username)
    ).executeTakeFirst();
  };
  let user = await findUser({ username: input.username });
  let ok: boolean;
  if (await directoryDecides(app, domain.id, user)) {
    // LDAP users bind as themselves; an unknown name in a linked domain may be created (ldap/sign-in.ts).
    const answer = await authenticateWithDirectory(app, domain, input.username, input.password, user);
    ok = answer.ok;
    if (!user && answer.userId !== undefined) user = await findUser({ id: answer.userId });
  } else {
    // Hash even for unknown users so that timing does not reveal which usernames exist.
    ok = await verifyPassword(
      input.password,
      user?.password ??
        'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
    );
  }
  if (!user) return failAfterFloor(started);
  if (!ok) {
    await countFailedLogin(app, user.id);
    return failAfterFloor(started);
  }
  // Fresh rows, not the cached caller: a user disabled a moment ago on another server is refused.
  forgetCachedIdentity();
  const caller = await loadCaller(app, user.id);
  if (!caller || !isActive(caller)) {
    throw new ApiError(
      ErrorCode.ACCOUNT_ERROR,
      CsErrorCode.AUTHENTICATION,
      'User is disabled or locked, or its account or domain is not active',
    );
  }
  const now = app.clock.now();
  const needs2fa = twoFactorRequired(app, caller);
  const session: Session = {
    sessionId: randomToken(24),
    sessionKey: randomToken(20),
    caller,
    verified2fa: !needs2fa,
  };
  await db.transaction().execute(async (tx) => {
    if (user.login_attempts > 0)
      await tx.updateTable('users').set({ login_attempts: 0 }).where('id', '=', user.id).execute();
    // A 2FA setup never confirmed with a code is dropped, as upstream does: the user starts over
    // rather than being held to a secret they may never have stored.
    if (caller.user.key_for_2fa && caller.user.user_2fa_verified === 0)
      await tx
        .updateTable('users')
        .set({ user_2fa_enabled: 0, user_2fa_provider: null, key_for_2fa: null, last_2fa_step: null })
        .where('id', '=', user.id)
        .execute();
    await tx
      .insertInto('sessions')
      .values({
        session_id: session.sessionId,
        session_key: session.sessionKey,
        user_id: user.id,
        created: now,
        last_access: now,
        verified_2fa: session.verified2fa ? 1 : 0,
      })
      .execute();
    await logEvent({ app, caller }, tx, {
      type: 'USER.LOGIN',
      description: `user has logged in from the API`,
      resourceType: 'User',
      resourceId: caller.user.uuid,
    });
  });
  // The rows just changed (attempts reset, an unconfirmed 2FA setup dropped): answer from them.
  forgetCachedIdentity();
  session.caller = (await loadCaller(app, user.id)) ?? caller;
  return session;
}

/** Whether this user must pass two-factor authentication: set up by them, or mandated for their domain. */
export function twoFactorRequired(app: App, caller: Caller): boolean {
  const { user, domain } = caller;
  if (user.user_2fa_enabled !== 1) return twoFactorMandated(app, domain.id);
  // Set up and confirmed: the code is owed wherever the settings stand now.
  if (user.key_for_2fa) return user.user_2fa_verified === 1 || twoFactorMandated(app, domain.id);
  // Switched on by an administrator (updateUser mandate2fa) but not set up: owed only while the
  // domain lets the user set it up, or the session could never get past the 2FA commands.
  return (
    app.settings.at(ENABLE_USER_2FA, 'domain', domain.id) ||
    app.settings.at(MANDATE_USER_2FA, 'domain', domain.id)
  );
}

export function twoFactorMandated(app: Pick<App, 'settings'>, domainId: number): boolean {
  return (
    app.settings.at(ENABLE_USER_2FA, 'domain', domainId) &&
    app.settings.at(MANDATE_USER_2FA, 'domain', domainId)
  );
}

/**
 * Counts a failed login (a wrong password, or a wrong two-factor code at sign-in). Once a user
 * reaches incorrect.login.attempts.allowed consecutive failures they are disabled, their sessions
 * end, and an event and an alert say so. Root admin accounts are exempt, as upstream's "internal"
 * accounts are, so that guessing cannot lock the operator out; 0 turns the lockout off. Users
 * already disabled or locked are not counted.
 */
export async function countFailedLogin(app: App, userId: number): Promise<void> {
  const allowed = app.settings.get(INCORRECT_LOGIN_ATTEMPTS);
  if (allowed <= 0) return;
  const db = app.store.db;
  const disabled = await db.transaction().execute(async (tx) => {
    const row = await tx
      .selectFrom('users')
      .innerJoin('accounts', 'accounts.id', 'users.account_id')
      .select([
        'users.uuid',
        'users.username',
        'users.state',
        'users.account_id',
        'accounts.domain_id',
        'accounts.type',
      ])
      .where('users.id', '=', userId)
      .executeTakeFirst();
    if (row?.state !== 'enabled' || row.type === 1) return undefined;
    // One UPDATE that increments, so that parallel guesses cannot lose a count.
    await tx
      .updateTable('users')
      .set((eb) => ({ login_attempts: eb('login_attempts', '+', 1) }))
      .where('id', '=', userId)
      .execute();
    const { login_attempts } = await tx
      .selectFrom('users')
      .select('login_attempts')
      .where('id', '=', userId)
      .executeTakeFirstOrThrow();
    if (login_attempts < allowed) return undefined;
    await tx.updateTable('users').set({ state: 'disabled' }).where('id', '=', userId).execute();
    await tx.deleteFrom('sessions').where('user_id', '=', userId).execute();
    await recordEvent(
      { app },
      tx,
      { userId, accountId: row.account_id, domainId: row.domain_id },
      {
        type: 'USER.DISABLE',
        level: 'WARN',
        description: `user ${row.username} disabled after ${login_attempts} consecutive failed logins`,
        resourceType: 'User',
        resourceId: row.uuid,
      },
    );
    return row;
  });
  if (!disabled) return;
  forgetCachedIdentity();
  await recordAlert(app, {
    type: LOCKOUT_ALERT_TYPE,
    subject: `User ${disabled.username} (${disabled.uuid}) was disabled after ${allowed} consecutive failed logins`,
    sourceKey: lockoutAlertKey(disabled.uuid),
  });
}

/** The session behind a JSESSIONID whose key matches, or undefined if it is unknown or expired. */
export async function resumeSession(
  app: App,
  sessionId: string,
  sessionKey: string,
): Promise<Session | undefined> {
  const row = await app.store.db
    .selectFrom('sessions')
    .selectAll()
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
  if (!row) return undefined;
  const now = app.clock.now();
  const timeoutMs = app.settings.get(SESSION_TIMEOUT) * 1000;
  if (!constantTimeEquals(row.session_key, sessionKey) || now - row.last_access > timeoutMs) {
    await app.store.db.deleteFrom('sessions').where('id', '=', row.id).execute();
    return undefined;
  }
  const caller = await loadCaller(app, row.user_id);
  if (!caller || !isActive(caller)) return undefined;
  // Touch at most every few seconds: a busy UI should not turn every read into a write.
  if (now - row.last_access > 5000) {
    await app.store.db.updateTable('sessions').set({ last_access: now }).where('id', '=', row.id).execute();
  }
  return { sessionId, sessionKey, caller, verified2fa: row.verified_2fa === 1 };
}

export async function endSession(app: App, sessionId: string): Promise<void> {
  await app.store.db.deleteFrom('sessions').where('session_id', '=', sessionId).execute();
}

/** Ends every session of a user (their password changed, or they were disabled or deleted). */
export async function endUserSessions(tx: Tx, userId: number): Promise<void> {
  await tx.deleteFrom('sessions').where('user_id', '=', userId).execute();
}

export async function logout(app: App, session: Session): Promise<void> {
  await app.store.db.transaction().execute(async (tx) => {
    await tx.deleteFrom('sessions').where('session_id', '=', session.sessionId).execute();
    await logEvent({ app, caller: session.caller }, tx, {
      type: 'USER.LOGOUT',
      description: 'user has logged out',
      resourceType: 'User',
      resourceId: session.caller.user.uuid,
    });
  });
}

export function loginResponse(app: App, s: Session): Record<string, unknown> {
  const { user, account, domain } = s.caller;
  return {
    username: user.username,
    userid: user.uuid,
    domainid: domain.uuid,
    timeout: app.settings.get(SESSION_TIMEOUT),
    account: account.name,
    firstname: user.firstname,
    lastname: user.lastname,
    type: String(account.type),
    timezone: user.timezone ?? undefined,
    timezoneoffset: user.timezone ? undefined : '0.0',
    registered: 'false',
    sessionkey: s.sessionKey,
    // As upstream: "enabled" when this login owes a code; "verified" when it owes none (yet).
    is2faenabled: String(!s.verified2fa),
    is2faverified: String(s.verified2fa),
    providerfor2fa: user.user_2fa_provider ?? undefined,
    issuerfor2fa: app.settings.at(USER_2FA_ISSUER, 'domain', domain.id),
    ...(s.caller.roleKind === 'admin' ? { managementserverid: app.server.uuid } : {}),
  };
}
