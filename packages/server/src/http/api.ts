/**
 * The CloudStack API endpoint: /client/api (and /client/api/), GET or POST form.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { App, Caller } from '../context.ts';
import { ApiError, CsErrorCode, ErrorCode, toApiError, unauthorized, unsupported } from '../errors.ts';
import { loadCaller, mayCall } from '../iam/caller.ts';
import { login, loginResponse, logout } from '../iam/sessions.ts';
import { systemOwner } from '../network/common.ts';
import { ENFORCE_POST, EXPOSE_VERSION_XML } from '../settings/core-settings.ts';
import {
  type Authenticated,
  authenticateByKey,
  authenticateBySession,
  hasKeyCredentials,
  READ_ONLY,
  SESSION_COOKIE,
  SESSION_KEY_COOKIE,
} from './auth.ts';
import { dispatch, missingParameter } from './dispatch.ts';
import { type ApiRequest, parseApiRequest, requestedFormat, stringParam } from './request.ts';
import { type CacheTicket, ResponseCache } from './response-cache.ts';
import { CONTENT_TYPE, errorBody, type ResponseFormat, render } from './serialize.ts';
import { Throttle } from './throttle.ts';

interface Outcome {
  status: number;
  responseName: string;
  body: object;
  authenticated: boolean;
  /** The answer already rendered, kept from an earlier identical call (response-cache.ts). */
  rendered?: Buffer;
  /** To be given the rendered answer, for later identical calls. */
  ticket?: CacheTicket;
}

/** Told of every API call answered: the command (a declared one, login, logout or "unknown"), status, seconds. */
export type ApiObserver = (command: string, status: number, seconds: number) => void;

export function registerApiRoutes(fastify: FastifyInstance, app: App, observe?: ApiObserver): void {
  const throttle = new Throttle(app);
  const cache = new ResponseCache(app);

  const handle = async (req: FastifyRequest, reply: FastifyReply) => {
    const started = performance.now();
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
    const body = typeof req.body === 'string' ? req.body : undefined;
    let format: ResponseFormat = 'xml';
    let outcome: Outcome;
    // Only names of real commands become metric labels: any other text a client sends is "unknown".
    let command = 'unknown';
    try {
      const api = parseApiRequest(query, body);
      format = stringParam(api, 'response')?.toLowerCase() === 'json' ? 'json' : 'xml';
      const name = stringParam(api, 'command');
      if (name === 'login' || name === 'logout') command = name;
      else if (name) command = app.registry.get(name)?.name ?? 'unknown';
      outcome = await handleApiCall(app, throttle, cache, req, reply, api, format);
    } catch (e) {
      // Malformed map keys are the only failure before the command is known.
      format = requestedFormat(query, body);
      const err = toApiError(e);
      outcome = {
        status: err.errorcode,
        responseName: 'errorresponse',
        body: errorBody(err),
        authenticated: false,
      };
    }
    const withVersion = outcome.authenticated && app.settings.get(EXPOSE_VERSION_XML);
    reply.code(outcome.status).header('content-type', CONTENT_TYPE[format]);
    if (outcome.status !== 200) {
      const text = (outcome.body as { errortext?: string }).errortext ?? '';
      reply.header('x-description', encodeURIComponent(text).slice(0, 500));
    }
    let text: string | undefined;
    try {
      if (!outcome.rendered) text = render(format, outcome.responseName, outcome.body, withVersion);
    } finally {
      // Always settled: other calls may be waiting for this answer.
      outcome.ticket?.fill(outcome.status === 200 ? text : undefined);
    }
    const sent = reply.send(outcome.rendered ?? text);
    observe?.(command, outcome.status, (performance.now() - started) / 1000);
    return sent;
  };

  for (const url of ['/client/api', '/client/api/']) {
    fastify.get(url, handle);
    fastify.post(url, handle);
  }
}

async function handleApiCall(
  app: App,
  throttle: Throttle,
  cache: ResponseCache,
  req: FastifyRequest,
  reply: FastifyReply,
  api: ApiRequest,
  format: ResponseFormat,
): Promise<Outcome> {
  const commandName = stringParam(api, 'command');
  const command = commandName ? app.registry.get(commandName) : undefined;
  let responseName = command?.catalog.responseName ?? 'errorresponse';
  let auth: Authenticated | undefined;
  let ticket: CacheTicket | undefined;
  try {
    if (commandName === 'login') return await handleLogin(app, req, reply, api);
    if (commandName === 'logout') return await handleLogout(app, req, reply, api);

    const now = app.clock.now();
    if (hasKeyCredentials(api)) {
      // Upstream answers 401, not 432, to a signed call of an unknown command.
      if (!command)
        throw unauthorized(
          `The given command ${commandName ?? ''} does not exist or it is not available for the user`,
        );
      auth = await authenticateByKey(app, api, now, app.settings.get(ENFORCE_POST));
    } else {
      auth = await authenticateBySession(
        app,
        api,
        req.cookies,
        command?.name ?? commandName ?? '',
        req.headers['sec-fetch-site'] === 'cross-site',
      ).catch(async (e) => {
        if (!command?.anonymous) throw e;
        return { caller: await anonymousCaller(app), via: 'anonymous' as const };
      });
    }
    if (!command || !(await mayCall(app, auth.caller, command))) {
      responseName = 'errorresponse';
      throw unsupported(
        `The given command ${commandName ?? ''} either does not exist, is not available for user ${auth.caller.user.username}, or not available from ip address '${req.ip}'.`,
      );
    }
    if (app.settings.get(ENFORCE_POST)) {
      if (req.method !== 'POST' && !READ_ONLY.test(command.name)) {
        throw new ApiError(
          ErrorCode.BAD_REQUEST,
          CsErrorCode.SERVER_API,
          'Please use HTTP POST to make this API call',
        );
      }
    }
    // Calls without credentials are not charged to the account they run as.
    if (auth.via !== 'anonymous') await throttle.check(auth.caller.account.id, now);
    const origin = `${req.protocol}://${req.host}`;
    const authenticated = auth.via !== 'anonymous';
    // Looked up only now: the caller is authenticated, allowed the command and counted.
    const kept = authenticated
      ? await cache.lookup({
          command: command.name,
          caller: auth.caller,
          params: api.params,
          format,
          withVersion: app.settings.get(EXPOSE_VERSION_XML),
          origin,
        })
      : undefined;
    if (kept && 'body' in kept)
      return { status: 200, responseName, body: {}, authenticated, rendered: kept.body };
    ticket = kept?.ticket;
    const body = await dispatch(
      { app, caller: auth.caller, origin, session: auth.session, anonymous: auth.via === 'anonymous' },
      command,
      api.params,
    );
    return { status: 200, responseName, body, authenticated, ticket };
  } catch (e) {
    // The answer being computed for others failed: they compute their own.
    ticket?.fill(undefined);
    const err = toApiError(e);
    if (!(e instanceof ApiError))
      req.log.error({ err: e, command: commandName }, 'command failed unexpectedly');
    if (err.errorcode === ErrorCode.UNSUPPORTED_ACTION) responseName = 'errorresponse';
    return {
      status: err.errorcode,
      responseName,
      body: errorBody(err),
      authenticated: auth !== undefined && auth.via !== 'anonymous',
    };
  }
}

async function handleLogin(
  app: App,
  req: FastifyRequest,
  reply: FastifyReply,
  api: ApiRequest,
): Promise<Outcome> {
  const responseName = 'loginresponse';
  if (req.method !== 'POST') {
    const err = new ApiError(
      ErrorCode.METHOD_NOT_ALLOWED,
      CsErrorCode.SERVER_API,
      'Please use HTTP POST to log in',
    );
    return { status: err.errorcode, responseName, body: errorBody(err), authenticated: false };
  }
  try {
    const username = stringParam(api, 'username');
    const password = stringParam(api, 'password');
    if (!username) throw missingParameter('login', 'username');
    if (!password) throw missingParameter('login', 'password');
    const session = await login(app, {
      username,
      password,
      domain: stringParam(api, 'domain'),
      domainId: stringParam(api, 'domainid'),
      previousSessionId: req.cookies[SESSION_COOKIE],
    });
    // Secure whenever the browser reached us over HTTPS (directly or through a trusted proxy).
    // SameSite=Strict: no cross-site request carries the session, so a link or form on another
    // site cannot make a signed-in browser call the API; the UI's own calls are same-site.
    const cookie = {
      path: '/client',
      httpOnly: true,
      sameSite: 'strict' as const,
      secure: req.protocol === 'https',
    };
    reply.setCookie(SESSION_COOKIE, session.sessionId, cookie);
    reply.setCookie(SESSION_KEY_COOKIE, session.sessionKey, cookie);
    return { status: 200, responseName, body: loginResponse(app, session), authenticated: true };
  } catch (e) {
    const err = toApiError(e);
    if (!(e instanceof ApiError)) req.log.error({ err: e }, 'login failed unexpectedly');
    return { status: err.errorcode, responseName, body: errorBody(err), authenticated: false };
  }
}

async function handleLogout(
  app: App,
  req: FastifyRequest,
  reply: FastifyReply,
  api: ApiRequest,
): Promise<Outcome> {
  const responseName = 'logoutresponse';
  for (const name of Object.keys(req.cookies))
    reply.clearCookie(name, { path: '/client', secure: req.protocol === 'https', sameSite: 'strict' });
  // As upstream: success with or without a session (the UI logs out after its session expired).
  const auth = await authenticateBySession(app, api, req.cookies, 'logout').catch(() => undefined);
  if (auth?.session) await logout(app, auth.session);
  return { status: 200, responseName, body: { description: 'success' }, authenticated: false };
}

/** Who an anonymous command runs as without credentials: the first root administrator. */
async function anonymousCaller(app: App): Promise<Caller> {
  const owner = await systemOwner(app);
  const caller = await loadCaller(app, owner.userId);
  if (!caller) throw unauthorized('unable to verify user credentials');
  return caller;
}
