/**
 * `GET /client/console?cmd=access&vm=<uuid>`: the console URL CloudStack's older UI opened in a
 * new window. With the browser's login session (the JSESSIONID cookie plus the sessionkey cookie
 * or parameter) it issues a one-time token and redirects to the UI's console page for the VM; the
 * other servlet commands (thumbnails, ajax viewers) belong to upstream's Java console proxy.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { findVm } from '../compute/vms.ts';
import type { App } from '../context.ts';
import { toApiError } from '../errors.ts';
import { authenticateBySession } from '../http/auth.ts';
import { parseApiRequest, stringParam } from '../http/request.ts';
import { createEndpoint } from './endpoint.ts';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(reply: FastifyReply, status: number, message: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Console</title></head><body><h1>Console</h1><p>${escapeHtml(message)}</p></body></html>`,
    );
}

export function registerLegacyConsole(fastify: FastifyInstance, app: App): void {
  fastify.get('/client/console', async (req, reply) => {
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?') + 1) : '';
    try {
      const api = parseApiRequest(query, undefined);
      const cmd = stringParam(api, 'cmd');
      const vmId = stringParam(api, 'vm');
      if (cmd !== 'access')
        return page(reply, 400, `Unsupported console command ${cmd ?? '(none)'}; use cmd=access&vm=<VM id>`);
      if (!vmId) return page(reply, 400, 'Missing the vm parameter (the VM id)');
      const auth = await authenticateBySession(app, api, req.cookies);
      const ctx = { app, caller: auth.caller, origin: `${req.protocol}://${req.host}` };
      const vm = await findVm(ctx, vmId);
      const endpoint = await createEndpoint(ctx, vm);
      if (!endpoint.success) return page(reply, 409, endpoint.details ?? 'The console is not available');
      return reply.header('cache-control', 'no-store').redirect(endpoint.url!, 302);
    } catch (e) {
      const err = toApiError(e);
      if (err.errorcode === 401)
        return page(reply, 401, 'Your session has ended; log in again and reopen the console.');
      return page(reply, err.errorcode, `${err.message} (${err.errorcode})`);
    }
  });
}
