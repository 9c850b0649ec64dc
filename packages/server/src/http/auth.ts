/**
 * Authenticates an API call by signed API key or by login session, as CloudStack does.
 */

import { parseApiDate } from '../clock.ts';
import type { App, Caller } from '../context.ts';
import { unauthorized } from '../errors.ts';
import { isActive, keyOwner, loadCaller } from '../iam/caller.ts';
import { resumeSession, type Session } from '../iam/sessions.ts';
import type { ApiRequest } from './request.ts';
import { stringParam } from './request.ts';
import { verifySignature } from './signature.ts';

export interface Authenticated {
  caller: Caller;
  via: 'key' | 'session';
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
  if (!verifySignature(signed, signature, owner.secret)) throw refuse('signature mismatch');
  return { caller, via: 'key' };
}

/**
 * Session calls present the JSESSIONID cookie plus the session key, as the `sessionkey` parameter
 * (CLI clients), the HttpOnly `sessionkey` cookie (browser UIs), or both, in which case they must agree.
 */
export async function authenticateBySession(
  app: App,
  req: ApiRequest,
  cookies: Record<string, string | undefined>,
): Promise<Authenticated> {
  const sessionId = cookies[SESSION_COOKIE];
  const fromParam = stringParam(req, 'sessionkey');
  const fromCookie = cookies[SESSION_KEY_COOKIE];
  if (!sessionId || (!fromParam && !fromCookie)) throw unauthorized('unable to verify user credentials');
  if (fromParam && fromCookie && fromParam !== fromCookie)
    throw unauthorized('unable to verify user credentials');
  const session = await resumeSession(app, sessionId, (fromParam ?? fromCookie)!);
  if (!session) throw unauthorized('unable to verify user credentials');
  return { caller: session.caller, via: 'session', session };
}
