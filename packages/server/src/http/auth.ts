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

export async function authenticateByKey(app: App, req: ApiRequest, now: number): Promise<Authenticated> {
  const apiKey = stringParam(req, 'apikey')!;
  const signature = stringParam(req, 'signature')!;
  const owner = await keyOwner(app, apiKey);
  if (!owner) throw unauthorized();
  const caller = await loadCaller(app, owner.userId);
  if (!caller || !isActive(caller)) throw unauthorized();
  const signed = req.original.filter(([name]) => name.toLowerCase() !== 'signature');
  if (!verifySignature(signed, signature, owner.secret)) throw unauthorized();
  if (stringParam(req, 'signatureversion') === '3') {
    const expires = stringParam(req, 'expires');
    const at = expires === undefined ? undefined : parseApiDate(expires);
    if (at === undefined)
      throw unauthorized('missing or malformed expires parameter for signature version 3');
    if (at < now) throw unauthorized('request expired');
  }
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
