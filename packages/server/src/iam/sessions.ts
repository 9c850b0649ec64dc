/**
 * Login sessions. A session is a database row so that any management server behind a balancer
 * can serve the next call. The client holds the JSESSIONID cookie and presents the session key as
 * the `sessionkey` parameter and/or the HttpOnly `sessionkey` cookie.
 */
import type { App, Caller } from '../context.ts';
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { SESSION_TIMEOUT } from '../settings/core-settings.ts';
import { isActive, loadCaller } from './caller.ts';
import { randomToken, verifyPassword } from './secrets.ts';

export interface LoginInput {
  username: string;
  password: string;
  domain?: string;
  domainId?: string;
}

export interface Session {
  sessionId: string;
  sessionKey: string;
  caller: Caller;
}

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

export async function login(app: App, input: LoginInput): Promise<Session> {
  const db = app.store.db;
  let domainQuery = db.selectFrom('domains').select('id');
  if (input.domainId) {
    domainQuery = domainQuery.where('uuid', '=', input.domainId.toLowerCase());
  } else {
    domainQuery = domainQuery.where('path', '=', normaliseDomainPath(input.domain ?? '/'));
  }
  const domain = await domainQuery.executeTakeFirst();
  if (!domain) throw loginFailed();
  const user = await db
    .selectFrom('users')
    .innerJoin('accounts', 'accounts.id', 'users.account_id')
    .select(['users.id', 'users.password'])
    .where('accounts.domain_id', '=', domain.id)
    .where('users.username', '=', input.username)
    .executeTakeFirst();
  // Hash even for unknown users so that timing does not reveal which usernames exist.
  const ok = await verifyPassword(
    input.password,
    user?.password ??
      'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
  );
  if (!user || !ok) throw loginFailed();
  const caller = await loadCaller(app, user.id);
  if (!caller || !isActive(caller)) {
    throw new ApiError(
      ErrorCode.ACCOUNT_ERROR,
      CsErrorCode.AUTHENTICATION,
      'User is disabled or locked, or its account or domain is not active',
    );
  }
  const now = app.clock.now();
  const session: Session = { sessionId: randomToken(24), sessionKey: randomToken(20), caller };
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('sessions')
      .values({
        session_id: session.sessionId,
        session_key: session.sessionKey,
        user_id: user.id,
        created: now,
        last_access: now,
      })
      .execute();
    await logEvent({ app, caller }, tx, {
      type: 'USER.LOGIN',
      description: `user has logged in from the API`,
      resourceType: 'User',
      resourceId: caller.user.uuid,
    });
  });
  return session;
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
  if (row.session_key !== sessionKey || now - row.last_access > timeoutMs) {
    await app.store.db.deleteFrom('sessions').where('id', '=', row.id).execute();
    return undefined;
  }
  const caller = await loadCaller(app, row.user_id);
  if (!caller || !isActive(caller)) return undefined;
  // Touch at most every few seconds: a busy UI should not turn every read into a write.
  if (now - row.last_access > 5000) {
    await app.store.db.updateTable('sessions').set({ last_access: now }).where('id', '=', row.id).execute();
  }
  return { sessionId, sessionKey, caller };
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
    is2faenabled: 'false',
    is2faverified: 'false',
    ...(s.caller.roleKind === 'admin' ? { managementserverid: app.server.uuid } : {}),
  };
}
