/**
 * Filling image stores: the management server downloads a template's URL (or copies another
 * store's copy) into one image store, streaming into a temporary file beside the final one,
 * checking size, checksum and format, then renaming it into place. Progress and failures are
 * written to the store copy's row, so listTemplates shows them; a copy left in progress by a
 * server that stopped is taken over by a live one, so nothing stays "in progress" forever.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { deadServerIds } from '../cluster/heartbeat.ts';
import type { App } from '../context.ts';
import type { ImageStoreRow, TemplateRow, TemplateStoreRefRow } from '../db/schema.ts';
import { recordEvent } from '../events/events.ts';
import { ResourceKind, reserve } from '../iam/limits.ts';
import { defineSetting } from '../settings/settings.ts';
import {
  BUILTIN_IMAGES,
  checksumHash,
  FILE_EXTENSIONS,
  type ImageSizes,
  inspectImage,
  parseChecksum,
  storageGiB,
  storeRoot,
} from './images.ts';
import { isObjectStore } from './object-stores.ts';
import { deleteStoreFiles, getFile, isRemoteStore, putFile, storeReason } from './remote-stores.ts';

export const DownloadState = {
  NotDownloaded: 'NOT_DOWNLOADED',
  InProgress: 'DOWNLOAD_IN_PROGRESS',
  Downloaded: 'DOWNLOADED',
  Error: 'DOWNLOAD_ERROR',
  // A copy filled by a browser upload (storage/browser-upload.ts), upstream's upload states: the
  // takeover of downloads leaves them alone, as there is nothing to fetch again.
  NotUploaded: 'NOT_UPLOADED',
  UploadInProgress: 'UPLOAD_IN_PROGRESS',
  UploadError: 'UPLOAD_ERROR',
} as const;

export const MAX_TEMPLATE_SIZE = defineSetting({
  name: 'max.template.iso.size',
  category: 'Storage',
  type: 'Long',
  defaultValue: 50,
  min: 1,
  description: 'Largest template or ISO (GiB) the management server will download.',
});

const PROGRESS_INTERVAL_MS = 250;
/** A source that sends nothing for this long fails the download instead of leaving it in progress. */
const STALL_MS = 60_000;
const TAKEOVER_INTERVAL_MS = 30_000;

/** Aborts a transfer because this server is stopping: the copy stays in progress for takeover. */
export const SHUTDOWN = new Error('management server stopping');

const transfers = new Map<number, AbortController>();

export type TransferSource =
  | { kind: 'url' }
  | { kind: 'copy'; fromRefId: number }
  | { kind: 'upload'; source: Source };

export type TransferResult = { ok: true } | { ok: false; reason: string };

export function completeStatus(template: Pick<TemplateRow, 'is_iso'>): string {
  return template.is_iso ? 'Successfully Installed' : 'Download Complete';
}

/** Where a template's file lives inside an image store, as CloudStack lays stores out. */
export function installPathOf(template: TemplateRow): string {
  const ext = FILE_EXTENSIONS[template.format] ?? 'img';
  return `template/tmpl/${template.account_id}/${template.id}/${template.uuid}.${ext}`;
}

interface Loaded {
  ref: TemplateStoreRefRow;
  template: TemplateRow;
  store: ImageStoreRow;
}

async function load(app: App, refId: number): Promise<Loaded | undefined> {
  const db = app.store.db;
  const ref = await db
    .selectFrom('template_store_refs')
    .selectAll()
    .where('id', '=', refId)
    .executeTakeFirst();
  if (!ref) return undefined;
  const [template, store] = await Promise.all([
    db.selectFrom('templates').selectAll().where('id', '=', ref.template_id).executeTakeFirstOrThrow(),
    db.selectFrom('image_stores').selectAll().where('id', '=', ref.image_store_id).executeTakeFirstOrThrow(),
  ]);
  return { ref, template, store };
}

function ownerOfTemplate(template: TemplateRow) {
  return { userId: template.user_id, accountId: template.account_id, domainId: template.domain_id };
}

export interface Source {
  stream: Readable;
  length?: number;
}

async function openSource(
  app: App,
  loaded: Loaded,
  source: TransferSource,
  signal: AbortSignal,
): Promise<Source> {
  const { template } = loaded;
  if (source.kind === 'upload') return source.source;
  if (source.kind === 'copy') {
    const from = await load(app, source.fromRefId);
    if (!from?.ref.install_path || from.ref.download_state !== DownloadState.Downloaded)
      throw new Error('The source copy is no longer available');
    if (isRemoteStore(from.store)) return getFile(app, from.store, from.ref.install_path);
    const file = join(await storeRoot(from.store), from.ref.install_path);
    return { stream: createReadStream(file), length: (await stat(file)).size };
  }
  const url = template.url;
  const generated = BUILTIN_IMAGES[url];
  if (generated) {
    const bytes = generated();
    return { stream: Readable.from([bytes]), length: bytes.length };
  }
  if (/^https?:\/\//i.test(url)) return openUrl(url, signal);
  const file = url.startsWith('file:') ? fileURLToPath(url) : url;
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new Error(`Unable to read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return { stream: createReadStream(file), length: size };
}

function progressStatus(bytes: number, length: number | undefined): { pct: number; status: string } {
  if (!length) return { pct: 0, status: `${(bytes / 1024 ** 2).toFixed(1)} MB Downloaded` };
  const pct = Math.min(99, Math.floor((bytes * 100) / length));
  return { pct, status: `${pct}% Downloaded` };
}

/**
 * Fills one store copy from its source and records the outcome on its row. Resolves with the
 * outcome; never rejects for download problems (those become the copy's status).
 */
export async function runTransfer(
  app: App,
  refId: number,
  source: TransferSource = { kind: 'url' },
): Promise<TransferResult> {
  if (transfers.has(refId)) return { ok: false, reason: 'A transfer of this copy is already running' };
  const controller = new AbortController();
  transfers.set(refId, controller);
  try {
    return await transfer(app, refId, source, controller.signal);
  } finally {
    transfers.delete(refId);
  }
}

/** Starts filling a store copy in the background. */
export function startTransfer(app: App, refId: number, source: TransferSource = { kind: 'url' }): void {
  runTransfer(app, refId, source).catch((err) =>
    app.log.error({ err, refId }, 'template transfer failed unexpectedly'),
  );
}

/** Stops a running transfer of a copy being deleted. */
export function abortTransfer(refId: number): void {
  transfers.get(refId)?.abort(new Error('deleted'));
}

/** Where a fetch stands, for the status line of the row being filled. */
export type ProgressReport = (bytes: number, length: number | undefined) => Promise<void>;

/**
 * The download machinery shared by template copies and uploaded volumes: streams `open()` into a
 * temporary file beside `dest`, enforcing max.template.iso.size, hashing for `checksum`, failing a
 * source that stalls, checking the length and that the file looks like `format`, then renames it
 * into place. Throws with the reason on any failure, leaving no file behind.
 */
export async function fetchImage(
  app: App,
  opts: {
    dest: string;
    format: string;
    checksum?: string | null;
    open: (signal: AbortSignal) => Promise<Source>;
    signal: AbortSignal;
    progress: ProgressReport;
  },
): Promise<ImageSizes> {
  const stall = new AbortController();
  const stalled = () =>
    stall.abort(new Error(`The download stalled: no data for ${STALL_MS / 1000} seconds`));
  const stallTimer = setTimeout(stalled, STALL_MS);
  const watched = AbortSignal.any([opts.signal, stall.signal]);
  const { dest } = opts;
  try {
    await mkdir(dirname(dest), { recursive: true });
    await removeLeftovers(dest);
    const part = `${dest}.${randomBytes(4).toString('hex')}.part`;
    try {
      const input = await opts.open(watched);
      const max = app.settings.get(MAX_TEMPLATE_SIZE) * 1024 ** 3;
      if (input.length !== undefined && input.length > max)
        throw new Error(
          `The image is ${input.length} bytes, more than max.template.iso.size (${max / 1024 ** 3} GiB)`,
        );
      const checksum = opts.checksum ? parseChecksum(opts.checksum) : undefined;
      const hash = checksumHash(checksum);
      let bytes = 0;
      let lastReport = Date.now();
      let reports = Promise.resolve();
      const meter = new Transform({
        transform(chunk: Buffer, _enc, done) {
          bytes += chunk.length;
          stallTimer.refresh();
          if (bytes > max) {
            done(new Error(`The image is larger than max.template.iso.size (${max / 1024 ** 3} GiB)`));
            return;
          }
          hash?.update(chunk);
          if (Date.now() - lastReport >= PROGRESS_INTERVAL_MS) {
            lastReport = Date.now();
            const at = bytes;
            reports = reports.then(() => opts.progress(at, input.length));
          }
          done(null, chunk);
        },
      });
      try {
        await pipeline(input.stream, meter, createWriteStream(part), { signal: watched });
      } finally {
        await reports.catch(() => undefined);
      }
      if (input.length !== undefined && bytes !== input.length)
        throw new Error(`The download ended after ${bytes} of ${input.length} bytes`);
      if (checksum && hash) {
        const actual = hash.digest('hex');
        if (actual !== checksum.hex)
          throw new Error(
            `Checksum mismatch: expected ${checksum.label}, the downloaded file has ${checksum.label.replace(/\}.*/, '}')}${actual}`,
          );
      }
      const sizes = await inspectImage(part, opts.format);
      await rename(part, dest);
      return sizes;
    } catch (e) {
      await rm(part, { force: true });
      throw e;
    }
  } catch (e) {
    // A stalled source aborts the pipeline; the stall is the reason worth reporting.
    if (stall.signal.aborted && !opts.signal.aborted) throw stall.signal.reason;
    throw e;
  } finally {
    clearTimeout(stallTimer);
  }
}

/** Opens an http(s) URL for fetchImage, with the reason of a failure in words. */
export async function openUrl(url: string, signal: AbortSignal): Promise<Source> {
  let res: Response;
  try {
    // Images are sent as they are: a compressed transfer would make Content-Length meaningless.
    res = await fetch(url, { signal, redirect: 'follow', headers: { 'accept-encoding': 'identity' } });
  } catch (e) {
    if (signal.aborted) throw e;
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`Unable to download ${url}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`Unable to download ${url}: HTTP ${res.status} ${res.statusText}`.trim());
  }
  const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
  const declared = Number(res.headers.get('content-length'));
  return {
    stream: Readable.fromWeb(res.body as WebReadableStream),
    length: !encoded && Number.isFinite(declared) && declared > 0 ? declared : undefined,
  };
}

async function transfer(
  app: App,
  refId: number,
  source: TransferSource,
  signal: AbortSignal,
): Promise<TransferResult> {
  const db = app.store.db;
  const loaded = await load(app, refId);
  if (!loaded || loaded.ref.destroyed) return { ok: false, reason: 'The copy was deleted' };
  if (loaded.ref.download_state === DownloadState.Downloaded) return { ok: true };
  const { template, store } = loaded;
  const inProgress = source.kind === 'upload' ? DownloadState.UploadInProgress : DownloadState.InProgress;
  await db
    .updateTable('template_store_refs')
    .set({
      download_state: inProgress,
      download_pct: 0,
      status: '0% Downloaded',
      error: null,
      ms_id: app.server.id,
      updated: app.clock.now(),
    })
    .where('id', '=', refId)
    .execute();
  const relative = installPathOf(template);
  let placed: string | undefined;
  try {
    const dest = join(await storeRoot(store), relative);
    const sizes = await fetchImage(app, {
      dest,
      format: template.format,
      // A copy was checked when its source was filled.
      checksum: source.kind === 'copy' ? null : template.checksum,
      open: (watched) => openSource(app, loaded, source, watched),
      signal,
      progress: async (bytes, length) => {
        const { pct, status } = progressStatus(bytes, length);
        await db
          .updateTable('template_store_refs')
          .set({ download_pct: pct, status, updated: app.clock.now() })
          .where('id', '=', refId)
          .where('download_state', '=', inProgress)
          .execute();
      },
    });
    placed = dest;
    // A remote store's copy is checked in the staging directory, then copied to the store (an
    // object store: in parts when large; an NFS export: read back and compared) and the staged
    // file removed: the store is where it lives.
    const onRemoteStore = isRemoteStore(store);
    if (onRemoteStore) {
      await progressNote(
        app,
        refId,
        inProgress,
        isObjectStore(store) ? 'Uploading to the object store' : 'Copying to the NFS export',
      );
      try {
        await putFile(app, store, relative, dest);
      } catch (e) {
        throw new Error(`Unable to upload to image store ${store.name}: ${storeReason(e)}`);
      }
      await removeFile(dest);
      placed = undefined;
    }
    const kept = await finish(app, refId, relative, sizes);
    if (!kept) await deleteStoreFiles(app, store, [relative]);
    return kept ? { ok: true } : { ok: false, reason: 'The copy was deleted' };
  } catch (e) {
    if (placed) await removeFile(placed);
    if (signal.aborted && signal.reason === SHUTDOWN)
      return { ok: false, reason: 'The management server stopped; another one resumes the download' };
    if (signal.aborted) return { ok: false, reason: 'The copy was deleted' };
    const reason = e instanceof Error ? e.message : String(e);
    await fail(
      app,
      refId,
      reason,
      source.kind === 'upload' ? DownloadState.UploadError : DownloadState.Error,
    );
    return { ok: false, reason };
  }
}

async function progressNote(app: App, refId: number, state: string, status: string): Promise<void> {
  await app.store.db
    .updateTable('template_store_refs')
    .set({ download_pct: 99, status, updated: app.clock.now() })
    .where('id', '=', refId)
    .where('download_state', '=', state)
    .execute();
}

/** Marks a copy downloaded and counts its secondary storage; false if it was deleted meanwhile. */
async function finish(
  app: App,
  refId: number,
  installPath: string,
  sizes: { virtual: number; physical: number },
): Promise<boolean> {
  return app.store.db.transaction().execute(async (tx) => {
    const ref = await tx
      .selectFrom('template_store_refs')
      .selectAll()
      .where('id', '=', refId)
      .executeTakeFirst();
    if (!ref || ref.destroyed) return false;
    const template = await tx
      .selectFrom('templates')
      .selectAll()
      .where('id', '=', ref.template_id)
      .executeTakeFirstOrThrow();
    const account = await tx
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', template.account_id)
      .executeTakeFirst();
    if (account)
      await reserve({ app }, tx, account, ResourceKind.SecondaryStorage, storageGiB(sizes.physical));
    await tx
      .updateTable('template_store_refs')
      .set({
        download_state: DownloadState.Downloaded,
        download_pct: 100,
        status: completeStatus(template),
        error: null,
        install_path: installPath,
        size_bytes: sizes.virtual,
        physical_size_bytes: sizes.physical,
        updated: app.clock.now(),
      })
      .where('id', '=', refId)
      .execute();
    await recordEvent({ app }, tx, ownerOfTemplate(template), {
      type: 'TEMPLATE.DOWNLOAD.SUCCESS',
      description: `${template.is_iso ? 'ISO' : 'template'} ${template.name} is ready on image store ${ref.image_store_id}`,
      resourceType: template.is_iso ? 'Iso' : 'Template',
      resourceId: template.uuid,
    });
    return true;
  });
}

async function fail(
  app: App,
  refId: number,
  reason: string,
  state: string = DownloadState.Error,
): Promise<void> {
  const text = reason.slice(0, 1000);
  await app.store.db.transaction().execute(async (tx) => {
    const ref = await tx
      .selectFrom('template_store_refs')
      .selectAll()
      .where('id', '=', refId)
      .executeTakeFirst();
    if (!ref || ref.destroyed) return;
    await tx
      .updateTable('template_store_refs')
      .set({ download_state: state, status: text, error: text, updated: app.clock.now() })
      .where('id', '=', refId)
      .execute();
    const template = await tx
      .selectFrom('templates')
      .selectAll()
      .where('id', '=', ref.template_id)
      .executeTakeFirstOrThrow();
    await recordEvent({ app }, tx, ownerOfTemplate(template), {
      type: 'TEMPLATE.DOWNLOAD.FAILED',
      level: 'ERROR',
      description: `${template.is_iso ? 'ISO' : 'template'} ${template.name}: ${text}`,
      resourceType: template.is_iso ? 'Iso' : 'Template',
      resourceId: template.uuid,
    });
  });
  app.log.warn({ refId, reason: text }, 'template download failed');
}

/** Partial files of an earlier attempt whose server stopped or crashed before cleaning up. */
async function removeLeftovers(dest: string): Promise<void> {
  const prefix = `${basename(dest)}.`;
  for (const name of await readdir(dirname(dest))) {
    if (name.startsWith(prefix) && name.endsWith('.part'))
      await rm(join(dirname(dest), name), { force: true });
  }
}

async function removeFile(file: string): Promise<void> {
  await rm(file, { force: true });
  // The template's own directory goes once it is empty; shared parents stay.
  await rmdir(dirname(file)).catch(() => undefined);
}

/** Deletes the files of store copies that were just marked destroyed. */
export async function removeCopies(app: App, refs: TemplateStoreRefRow[]): Promise<void> {
  for (const ref of refs) {
    abortTransfer(ref.id);
    if (!ref.install_path) continue;
    const store = await app.store.db
      .selectFrom('image_stores')
      .selectAll()
      .where('id', '=', ref.image_store_id)
      .executeTakeFirst();
    if (!store) continue;
    try {
      await deleteStoreFiles(app, store, [ref.install_path]);
    } catch (err) {
      app.log.warn({ err, refId: ref.id }, 'could not remove a template file');
    }
  }
}

/**
 * Restarts copies that were waiting or in progress on servers that are gone (or on none), after
 * claiming each one so that two live servers never fill the same copy.
 */
export async function takeOverTransfers(app: App): Promise<number> {
  const db = app.store.db;
  const now = app.clock.now();
  const dead = await deadServerIds(app).where('id', '!=', app.server.id).execute();
  const deadIds = dead.map((d) => d.id);
  const orphans = await db
    .selectFrom('template_store_refs')
    .select(['id', 'ms_id'])
    .where('destroyed', '=', 0)
    .where('download_state', 'in', [DownloadState.NotDownloaded, DownloadState.InProgress])
    .where((eb) =>
      deadIds.length ? eb.or([eb('ms_id', 'is', null), eb('ms_id', 'in', deadIds)]) : eb('ms_id', 'is', null),
    )
    .execute();
  let claimed = 0;
  for (const o of orphans) {
    const r = await db
      .updateTable('template_store_refs')
      .set({ ms_id: app.server.id, updated: now })
      .where('id', '=', o.id)
      .where((eb) => (o.ms_id === null ? eb('ms_id', 'is', null) : eb('ms_id', '=', o.ms_id)))
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 1) {
      claimed++;
      startTransfer(app, o.id);
    }
  }
  return claimed;
}

/** Takes over orphaned copies now and periodically; returns a function that stops and aborts. */
export function startTransferSupervisor(app: App): () => void {
  const run = () =>
    takeOverTransfers(app)
      .then((n) => {
        if (n > 0)
          app.log.info({ resumed: n }, 'resumed template downloads left by stopped management servers');
      })
      .catch((err) => app.log.error({ err }, 'template download takeover failed'));
  void run();
  const timer = setInterval(run, TAKEOVER_INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    for (const c of transfers.values()) c.abort(SHUTDOWN);
  };
}
