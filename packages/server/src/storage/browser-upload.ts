/**
 * Uploads from a browser, as upstream's UI makes them: getUploadParamsForTemplate records the
 * template (its copy on the zone's image store waiting, NOT_UPLOADED), getUploadParamsForVolume a
 * data disk (NotUploaded), and each answers where and how to post the file; the browser then POSTs it as multipart/form-data to that URL with the
 * answer's `X-signature`, `X-expires` and `X-metadata` headers. Upstream posts to its secondary
 * storage VM; here the management server that answered receives the file at /client/upload/<id>
 * (same origin as the UI) and fills the copy with the download machinery (size limit, checksum,
 * format check), so an upload ends as a download does: a template DOWNLOADED and ready, or
 * UPLOAD_ERROR with the reason; a volume Uploaded (attachable), or UploadError.
 *
 * The metadata is sealed with the server key (AES-GCM, iam/secrets.ts): it names the template and
 * the expiry, and cannot be forged or altered; the signature binds the URL, metadata and expiry
 * headers together. A copy is filled once: a second post for it is refused.
 */
import { createHash } from 'node:crypto';
import fastifyMultipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { formatDate } from '../clock.ts';
import type { App, CallContext } from '../context.ts';
import { constantTimeEquals } from '../iam/secrets.ts';
import { findZone } from '../infra/common.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { DownloadState, runTransfer } from './downloads.ts';
import { registerTemplate } from './template-commands.ts';
import { createImage, templateImage } from './templates.ts';
import { receiveUpload, recordUpload, uploadVolume } from './volume-transfer.ts';

/** How long the answer of getUploadParamsFor* may be used to post the file. */
export const UPLOAD_WINDOW_MS = 60 * 60 * 1000;

interface Sealed {
  kind: 'template' | 'volume';
  id: string;
  expires: number;
}

/** The signature of a post: binds its URL, sealed metadata and expiry header together. */
function sign(postUrl: string, metadata: string, expires: string): string {
  return createHash('sha256').update(`${postUrl}\n${metadata}\n${expires}`).digest('base64');
}

/** The path uploads are posted to; the URL given to the browser is this server's origin plus it. */
const uploadPath = (id: string) => `/client/upload/${id}`;

// The upload takes registerTemplate's parameters, except those about fetching (url, direct
// download) and zones (one zone, required), as upstream's command does.
const {
  url: _url,
  zoneid: _zoneid,
  zoneids: _zoneids,
  directdownload: _direct,
  ...templateParams
} = registerTemplate.params;

export const getUploadParamsForTemplate = defineCommand({
  name: 'getUploadParamsForTemplate',
  description:
    'Records a template to be uploaded from a browser into one zone and answers the URL, headers and expiry (one hour) of the signed POST that carries its file.',
  params: {
    ...templateParams,
    zoneid: p.uuid({
      required: true,
      description: 'UUID of the zone whose secondary storage receives the file.',
    }),
  },
  async handler(ctx, params) {
    const zone = await findZone(ctx, params.zoneid);
    const image = await templateImage(ctx, params, '', [zone.id]);
    const template = await createImage(ctx.app, { ...image, upload: true });
    return uploadParams(ctx, {
      kind: 'template',
      id: template.uuid,
      expires: ctx.app.clock.now() + UPLOAD_WINDOW_MS,
    });
  },
});

// The volume's form is uploadVolume's without the URL.
const { url: _volumeUrl, ...volumeParams } = uploadVolume.params;

export const getUploadParamsForVolume = defineCommand({
  name: 'getUploadParamsForVolume',
  description:
    'Records a data disk to be uploaded from a browser onto the zone’s secondary storage (NotUploaded) and answers the URL, headers and expiry (one hour) of the signed POST that carries its file.',
  params: volumeParams,
  async handler(ctx, params) {
    const id = await recordUpload(ctx, params);
    return uploadParams(ctx, { kind: 'volume', id, expires: ctx.app.clock.now() + UPLOAD_WINDOW_MS });
  },
});

function uploadParams(ctx: CallContext, sealed: Sealed) {
  const postURL = `${ctx.origin ?? ''}${uploadPath(sealed.id)}`;
  const metadata = ctx.app.secrets.encrypt(JSON.stringify(sealed));
  const expires = formatDate(sealed.expires)!;
  return { id: sealed.id, postURL, metadata, expires, signature: sign(postURL, metadata, expires) };
}

/** Why a post is refused: the HTTP status and a line of text. */
class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Checks a post's headers against its URL; answers the sealed metadata. */
function checkPost(app: App, id: string, origin: string, headers: Record<string, unknown>): Sealed {
  const header = (name: string) =>
    typeof headers[name] === 'string' ? (headers[name] as string) : undefined;
  const [signature, metadata, expires] = [header('x-signature'), header('x-metadata'), header('x-expires')];
  if (!signature || !metadata || !expires)
    throw new Refused(400, 'The upload needs the X-signature, X-metadata and X-expires headers');
  let sealed: Sealed;
  try {
    sealed = JSON.parse(app.secrets.decrypt(metadata)) as Sealed;
  } catch {
    throw new Refused(403, 'The upload metadata is not valid');
  }
  if (
    sealed.id !== id ||
    expires !== formatDate(sealed.expires) ||
    !constantTimeEquals(signature, sign(`${origin}${uploadPath(id)}`, metadata, expires))
  )
    throw new Refused(403, 'The upload signature does not match');
  if (app.clock.now() > sealed.expires) throw new Refused(403, 'The upload URL has expired');
  return sealed;
}

/** The template copy the post fills: one waiting for its upload. */
async function waitingCopy(app: App, templateUuid: string): Promise<number> {
  const ref = await app.store.db
    .selectFrom('template_store_refs as r')
    .innerJoin('templates as t', 't.id', 'r.template_id')
    .select(['r.id', 'r.download_state'])
    .where('t.uuid', '=', templateUuid)
    .where('t.removed', 'is', null)
    .where('r.destroyed', '=', 0)
    .executeTakeFirst();
  if (!ref) throw new Refused(404, 'The template to upload is unknown or was deleted');
  if (ref.download_state !== DownloadState.NotUploaded)
    throw new Refused(409, 'This template was already uploaded, or an upload of it is under way');
  return ref.id;
}

/** Registers the route browsers post their files to (with its own multipart parser). */
export async function registerUploadRoutes(fastify: FastifyInstance, app: App): Promise<void> {
  await fastify.register(async (scope) => {
    // One file per post, streamed to the image store; its size is bounded by max.template.iso.size.
    await scope.register(fastifyMultipart, { limits: { files: 1, fields: 10, fieldSize: 4096 } });
    scope.post<{ Params: { id: string } }>('/client/upload/:id', async (req, reply) => {
      try {
        const sealed = checkPost(app, req.params.id, `${req.protocol}://${req.host}`, req.headers);
        const refId = sealed.kind === 'template' ? await waitingCopy(app, req.params.id) : undefined;
        if (!req.isMultipart()) throw new Refused(400, 'The upload must be multipart/form-data');
        const file = await req.file();
        if (!file) throw new Refused(400, 'The upload carries no file');
        const source = { stream: file.file };
        if (refId !== undefined) {
          const result = await runTransfer(app, refId, { kind: 'upload', source });
          if (!result.ok) throw new Refused(400, result.reason);
        } else {
          const result = await receiveUpload(app, req.params.id, source);
          if (!result.waiting)
            throw new Refused(
              409,
              'This volume is unknown, was already uploaded, or an upload of it is under way',
            );
          if (result.error) throw new Refused(400, result.error);
        }
        return answer(reply, 200, 'The file was uploaded');
      } catch (e) {
        if (e instanceof Refused) return answer(reply, e.status, e.message);
        req.log.error({ err: e }, 'upload failed unexpectedly');
        return answer(reply, 500, 'The upload failed');
      }
    });
  });
}

function answer(reply: FastifyReply, status: number, text: string) {
  return reply.code(status).type('text/plain; charset=utf-8').send(`${text}\n`);
}

export const browserUploadCommands = [getUploadParamsForTemplate, getUploadParamsForVolume];
