/**
 * Authenticates an API call by signed API key or by login session, as CloudStack does.
 */

import { parseApiDate } from '../clock.ts';
import type { App, Caller } from '../context.ts';
import { ApiError, CsErrorCode, ErrorCode, unauthorized } from '../errors.ts';
import { isActive, keyOwner, loadCaller } from '../iam/caller.ts';
import { constantTimeEquals } from '../iam/secrets.ts';
import { endSession, resumeSession, type Session } from '../iam/sessions.ts';
import { SESSION_KEY_CHECK_LOCATIONS } from '../iam/sign-in-settings.ts';
import type { ApiRequest } from './request.ts';
import { stringParam } from './request.ts';
import { verifySignature } from './signature.ts';

export interface Authenticated {
  caller: Caller;
  /** anonymous: a command answered without credentials (CommandSpec.anonymous). */
  via: 'key' | 'session' | 'anonymous';
  session?: Session;
}

export const SESSION_COOKIE = 'JSESSIONID';
export const SESSION_KEY_COOKIE = 'sessionkey';

export function hasKeyCredentials(req: ApiRequest): boolean {
  return stringParam(req, 'apikey') !== undefined && stringParam(req, 'signature') !== undefined;
}

/** How far ahead `expires` may lie when timestamps are enforced: upstream's fixed 15 minutes. */
export const MAX_EXPIRES_AHEAD_MS = 15 * 60 * 1000;

/**
 * Upstream's ApiServer.verifyRequest, in its order: the request's own expiry first (no database
 * work for a stale or replayed request), then the key, its user, and the HMAC. With
 * signatureversion=3 `expires` is required and must not have passed; with `enforceTimestamps`
 * (enforce.post.requests.and.timestamps) version 3 is required and `expires` may lie at most
 * MAX_EXPIRES_AHEAD_MS ahead, so a captured request can be replayed for 15 minutes at most.
 * Every refusal is the same 401 as upstream's; the reason goes to the log, not to the caller.
 */
export async function authenticateByKey(
  app: App,
  req: ApiRequest,
  now: number,
  enforceTimestamps = false,
): Promise<Authenticated> {
  const apiKey = stringParam(req, 'apikey')!;
  const signature = stringParam(req, 'signature')!;
  const refuse = (reason: string) => {
    app.log.debug({ reason, command: stringParam(req, 'command') }, 'signed request refused');
    return unauthorized();
  };
  if (stringParam(req, 'signatureversion') === '3') {
    const expires = stringParam(req, 'expires');
    const at = expires === undefined ? undefined : parseApiDate(expires);
    if (at === undefined) throw refuse('missing or malformed expires parameter');
    if (at < now) throw refuse('request expired');
    if (enforceTimestamps && at > now + MAX_EXPIRES_AHEAD_MS) throw refuse('expires too far ahead');
  } else if (enforceTimestamps) {
    throw refuse('signature version 3 with an expires parameter is required');
  }
  const owner = await keyOwner(app, apiKey);
  if (!owner) throw refuse('unknown API key');
  const caller = await loadCaller(app, owner.userId);
  if (!caller || !isActive(caller)) throw refuse('user, account or domain not enabled');
  const signed = req.original.filter(([name]) => name.toLowerCase() !== 'signature');
  if (!verifySignature(signed, signature, owner.hmacKey)) throw refuse('signature mismatch');
  return { caller, via: 'key' };
}

/** Commands that only read: by name, as upstream's POST enforcement decides. */
export const READ_ONLY = /^(get|list|query|find)\w+$/i;

/**
 * What a session that still owes its two-factor code may call: upstream's exceptions (without
 * listApis and listIdps: nothing but 2FA until the code is given), plus logout.
 */
export const TWO_FACTOR_COMMANDS = new Set([
  'validateUserTwoFactorAuthenticationCode',
  'setupUserTwoFactorAuthentication',
  'listUserTwoFactorAuthenticatorProviders',
  'logout',
]);

const badCredentials = () => unauthorized('unable to verify user credentials');

/**
 * Session calls present the JSESSIONID cookie plus the session key, as the `sessionkey` parameter
 * (CLI clients), the HttpOnly `sessionkey` cookie (browser UIs), or both, in which case they must
 * agree; api.sessionkey.check.locations can demand the parameter, or both, on every call.
 *
 * `command` is the API command called (undefined for the legacy console page, a same-user
 * redirect). The cookies are SameSite=Strict, so browsers do not send them with requests other
 * sites make; a browser that says so anyway (`Sec-Fetch-Site: cross-site`) gets its cookie-only
 * call refused. A cookie-only key stays valid for same-site calls: the CloudStack UI never sends
 * the parameter. A session still owing its two-factor code may call only TWO_FACTOR_COMMANDS;
 * anything else ends it with 511, as upstream does.
 */
export async function authenticateBySession(
  app: App,
  req: ApiRequest,
  cookies: Record<string, string | undefined>,
  command?: string,
  crossSite = false,
): Promise<Authenticated> {
  const sessionId = cookies[SESSION_COOKIE];
  const fromParam = stringParam(req, 'sessionkey');
  const fromCookie = cookies[SESSION_KEY_COOKIE];
  if (!sessionId || (!fromParam && !fromCookie)) throw badCredentials();
  if (fromParam && fromCookie && !constantTimeEquals(fromParam, fromCookie)) throw badCredentials();
  const locations = app.settings.get(SESSION_KEY_CHECK_LOCATIONS);
  if (locations !== 'CookieOrParameter' && !fromParam) throw badCredentials();
  if (locations === 'CookieAndParameter' && !fromCookie) throw badCredentials();
  if (!fromParam && crossSite)
    throw unauthorized('another site made this request: its session cookie is not accepted');
  const session = await resumeSession(app, sessionId, (fromParam ?? fromCookie)!);
  if (!session) throw badCredentials();
  if (!session.verified2fa && !(command !== undefined && TWO_FACTOR_COMMANDS.has(command))) {
    await endSession(app, session.sessionId);
    throw new ApiError(
      ErrorCode.UNAUTHORIZED_2FA,
      CsErrorCode.SERVER_API,
      'Two-factor authentication is required: call validateUserTwoFactorAuthenticationCode (after setupUserTwoFactorAuthentication if it is not set up) before any other command; this session has ended',
    );
  }
  return { caller: session.caller, via: 'session', session };
}
