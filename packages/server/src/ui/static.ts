/**
 * Serves the web UI (packages/ui, built by Vite into packages/ui/dist) at /client, next to the
 * API at /client/api. Client-side routes (/client/instances/…) get index.html so that a reload or
 * a bookmarked URL opens the right screen; the API routes are more specific and win.
 *
 * NIMBOSTACK_UI_DIR names another UI build to serve there instead, such as the Apache CloudStack
 * UI's release build: same origin as the API, so the session cookies login sets (path /client,
 * HttpOnly) reach the API with its calls as they do on an upstream server (docs/ui.md).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export const UI_DIST = resolve(import.meta.dirname, '../../../ui/dist');

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Nimbostack</title></head>
<body><h1>Nimbostack</h1><p>The web UI has not been built. Run <code>npm run build:ui</code> (or
<code>npm start</code>, which builds it when missing) and reload. The API is at <code>/client/api</code>.</p></body></html>`;

/** `uiDir`: another UI build (NIMBOSTACK_UI_DIR) to serve instead of ours. */
export async function registerUi(fastify: FastifyInstance, uiDir?: string): Promise<void> {
  const dist = uiDir ?? UI_DIST;
  const built = existsSync(join(dist, 'index.html'));
  // An operator who names a folder wants that UI: a wrong folder stops the start with a clear reason.
  if (uiDir && !built)
    throw new Error(`NIMBOSTACK_UI_DIR ${uiDir} holds no index.html: it is not a UI build`);
  fastify.get('/', (_req, reply) => reply.redirect('/client/'));
  fastify.get('/client', (_req, reply) => reply.redirect('/client/'));
  if (!built) {
    fastify.get('/client/*', (_req, reply) => reply.type('text/html; charset=utf-8').send(NOT_BUILT));
    return;
  }
  // Vite names our assets by content hash, so they can be cached for good; index.html must not
  // be. Another build's names are not known to be hashed (its config.json and translations are
  // not): every file of it is revalidated (ETag, Last-Modified) instead.
  const immutable = uiDir ? undefined : join('dist', 'assets');
  await fastify.register(fastifyStatic, {
    root: dist,
    prefix: '/client/',
    wildcard: false,
    index: false,
    decorateReply: true,
    // Our own cache headers (below) instead of send's max-age=0 for everything.
    cacheControl: false,
    setHeaders: (res, path) => {
      res.setHeader(
        'cache-control',
        immutable && path.includes(immutable) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    },
  });
  fastify.get('/client/*', (req, reply) => {
    const last = req.url.split('?')[0].split('/').pop() ?? '';
    // A missing file (a stale asset name) is a 404, not the app shell.
    if (last.includes('.')) return reply.code(404).type('text/plain').send('Not found');
    return reply.header('cache-control', 'no-cache').sendFile('index.html');
  });
}
