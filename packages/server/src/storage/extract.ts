/**
 * Serving extract links and running the template service inside a management server: the
 * /client/extract/<token>/<file> route, the /client/upload/<id> route browsers post uploads to,
 * built-in templates, and the supervisor that resumes downloads left by stopped servers.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { App } from '../context.ts';
import { startScheduled } from '../jobs/scheduled.ts';
import { registerUploadRoutes } from './browser-upload.ts';
import { ensureSystemTemplates } from './builtin-templates.ts';
import { DownloadState, startTransferSupervisor } from './downloads.ts';
import { localFile } from './remote-stores.ts';
import { setListeningUrl } from './templates.ts';
import { startUploadSupervisor, volumeExtractFile } from './volume-transfer.ts';

const SYSTEM_TEMPLATE_CHECK_MS = 30_000;

async function extractFile(app: App, token: string, file: string): Promise<string | undefined> {
  const db = app.store.db;
  const link = await db
    .selectFrom('template_extracts')
    .selectAll()
    .where('token', '=', token)
    .where('expires', '>', app.clock.now())
    .executeTakeFirst();
  if (!link) return undefined;
  const ref = await db
    .selectFrom('template_store_refs')
    .selectAll()
    .where('id', '=', link.store_ref_id)
    .where('destroyed', '=', 0)
    .where('download_state', '=', DownloadState.Downloaded)
    .executeTakeFirst();
  if (!ref?.install_path || basename(ref.install_path) !== file) return undefined;
  const store = await db
    .selectFrom('image_stores')
    .selectAll()
    .where('id', '=', ref.image_store_id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!store) return undefined;
  // An object store signs its own links; an NFS export reached in user space is served staged.
  return localFile(app, store, ref.install_path);
}

export function registerExtractRoutes(fastify: FastifyInstance, app: App): void {
  fastify.addHook('onListen', async () => {
    const address = fastify.server.address();
    if (address && typeof address === 'object') {
      const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
      setListeningUrl(app, `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`);
    }
  });
  fastify.get<{ Params: { token: string; file: string } }>(
    '/client/extract/:token/:file',
    async (req, reply) => {
      let path: string | undefined;
      try {
        path =
          (await extractFile(app, req.params.token, req.params.file)) ??
          (await volumeExtractFile(app, req.params.token, req.params.file));
      } catch (err) {
        req.log.warn({ err }, 'extract link could not be served');
      }
      const size = path
        ? await stat(path).then(
            (s) => s.size,
            () => undefined,
          )
        : undefined;
      if (!path || size === undefined)
        return reply.code(404).type('text/plain').send('This extract link is unknown or has expired\n');
      return reply
        .type('application/octet-stream')
        .header('content-length', size)
        .header('content-disposition', `attachment; filename="${req.params.file}"`)
        .send(createReadStream(path));
    },
  );
}

/**
 * Starts the template service of a management server (before it listens): the extract route,
 * the built-in templates, and resuming orphaned downloads. Returns the function that stops it.
 */
export async function startTemplates(app: App, fastify: FastifyInstance): Promise<() => void> {
  registerExtractRoutes(fastify, app);
  await registerUploadRoutes(fastify, app);
  const ensure = () =>
    ensureSystemTemplates(app).catch((err) =>
      app.log.error({ err }, 'could not register the built-in templates'),
    );
  await ensure();
  const stopTransfers = startTransferSupervisor(app);
  const stopUploads = startUploadSupervisor(app);
  // Again periodically (new image stores get their copies) on the server holding the lease.
  const stopChecks = startScheduled(app, {
    name: 'system-templates',
    everyMs: () => SYSTEM_TEMPLATE_CHECK_MS,
    run: ensure,
  });
  return () => {
    stopChecks();
    stopTransfers();
    stopUploads();
  };
}
