/**
 * The EC2-compatible endpoint: /awsapi on the management server's port, as CloudStack served it.
 * EC2's Query protocol: `Action`, `Version` and the action's parameters, form-encoded in a POST
 * body or in the query string; a signed request (auth.ts); an XML answer in EC2's namespace, or
 * EC2's error document with EC2's HTTP status. Each answer carries a fresh request id.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerConfig } from '../config.ts';
import type { App } from '../context.ts';
import { Throttle } from '../http/throttle.ts';
import { apiListener } from '../http/transport.ts';
import type { Ec2Action, Ec2Context } from './action.ts';
import { readParams } from './action.ts';
import { ACTIONS } from './actions.ts';
import { authenticate } from './auth.ts';
import { dryRunOperation, Ec2Error, ec2Error, invalidValue, missingParameter } from './errors.ts';
import { EC2_REGION } from './settings.ts';
import { renderError, renderResponse } from './xml.ts';

const XML = 'text/xml;charset=UTF-8';

const throttles = new WeakMap<App, Throttle>();

/** Serves the endpoint at `paths` of `fastify`: /awsapi on the API's port, also / on its own port. */
export function registerEc2Routes(
  fastify: FastifyInstance,
  app: App,
  paths: string[] = ['/awsapi', '/awsapi/'],
): void {
  const actions = new Map<string, Ec2Action>(ACTIONS.map((a) => [a.name, a]));
  // The same per-account limit as the CloudStack API (api.throttling.*), counted on its own, one
  // count for both ports (a client gains nothing by using the two).
  let throttle = throttles.get(app);
  if (!throttle) {
    throttle = new Throttle(app, 'ec2');
    throttles.set(app, throttle);
  }

  const handle = async (req: FastifyRequest, reply: FastifyReply) => {
    const requestId = randomUUID();
    const q = req.url.indexOf('?');
    const query = q < 0 ? '' : req.url.slice(q + 1);
    const body = typeof req.body === 'string' ? req.body : '';
    const pairs = [...new URLSearchParams(query), ...new URLSearchParams(body)];
    // EC2 names each parameter once; the first of a repeated name counts.
    const raw = new Map<string, string>();
    for (const [k, v] of pairs) if (!raw.has(k)) raw.set(k, v);
    const actionName = raw.get('Action');
    // Only a declared action's name goes to the log, not whatever text a client sent.
    let action: Ec2Action | undefined;
    try {
      const now = app.clock.now();
      const caller = await authenticate(
        app,
        {
          method: req.method,
          path: q < 0 ? req.url : req.url.slice(0, q),
          query,
          headers: req.headers,
          body,
        },
        pairs,
        now,
      );
      if (!actionName) throw missingParameter('Action');
      action = actions.get(actionName);
      if (!action)
        throw new Ec2Error('InvalidAction', `The action ${actionName} is not valid for this web service.`);
      if (!raw.has('Version')) throw missingParameter('Version');
      const dryRun = raw.get('DryRun');
      if (dryRun !== undefined && !/^(true|false)$/i.test(dryRun))
        throw invalidValue('DryRun', dryRun, 'It must be true or false.');
      await throttle.check(caller.account.id, now);
      const ctx: Ec2Context = {
        app,
        caller,
        cs: { app, caller, origin: `${req.protocol}://${req.host}` },
        region: app.settings.get(EC2_REGION),
        requestId,
        dryRun: dryRun?.toLowerCase() === 'true',
      };
      const result = await action.handler(ctx, readParams(action, raw) as never);
      // A dry run that changed nothing on its way (a Describe, or nothing left to do) would succeed.
      if (ctx.dryRun) throw dryRunOperation();
      return reply
        .code(200)
        .header('content-type', XML)
        .send(renderResponse(action.name, requestId, result));
    } catch (e) {
      const err = ec2Error(e);
      if (err.status >= 500 && !(e instanceof Ec2Error))
        req.log.error({ err: e, action: action?.name }, 'EC2 action failed unexpectedly');
      return reply.code(err.status).header('content-type', XML).send(renderError(err, requestId));
    }
  };

  for (const url of paths) {
    fastify.get(url, handle);
    fastify.post(url, handle);
  }
}

/**
 * The EC2 endpoint on a port of its own (config `ec2Port`), for clients that expect an EC2
 * endpoint at `/` or a firewall that opens it apart from the CloudStack API. The same handler,
 * limits and TLS as the API's port; it answers nothing else.
 */
export async function startEc2Listener(
  app: App,
  config: ServerConfig,
): Promise<{ url: string; close(): Promise<void> }> {
  const fastify = apiListener(config, app.log.child({ component: 'ec2' }));
  registerEc2Routes(fastify, app, ['/', '/awsapi', '/awsapi/']);
  await fastify.listen({ port: config.ec2Port, host: config.host });
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : config.ec2Port;
  const scheme = config.tlsCert && config.tlsKey ? 'https' : 'http';
  const url = `${scheme}://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}/`;
  return { url, close: () => fastify.close() };
}
