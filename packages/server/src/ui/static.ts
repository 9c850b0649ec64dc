/**
 * Serves the web UI (packages/ui, built by Vite into packages/ui/dist) at /client, next to the
 * API at /client/api. Client-side routes (/client/instances/…) get index.html so that a reload or
 * a bookmarked URL opens the right screen; the API routes are more specific and win.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

export const UI_DIST = resolve(import.meta.dirname, '../../../ui/dist');

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Nimbostack</title></head>
<body><h1>Nimbostack</h1><p>The web UI has not been built. Run <code>npm run build:ui</code> (or
<code>npm start</code>, which builds it when missing) and reload. The API is at <code>/client/api</code>.</p></body></html>`;

export async function registerUi(fastify: FastifyInstance, dist = UI_DIST): Promise<void> {
  const built = existsSync(join(dist, 'index.html'));
  fastify.get('/', (_req, reply) => reply.redirect('/client/'));
  fastify.get('/client', (_req, reply) => reply.redirect('/client/'));
  if (!built) {
    fastify.get('/client/*', (_req, reply) => reply.type('text/html; charset=utf-8').send(NOT_BUILT));
    return;
  }
  // Vite names assets by content hash, so they can be cached for good; index.html must not be.
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
        path.includes(`${join('dist', 'assets')}`) ? 'public, max-age=31536000, immutable' : 'no-cache',
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
