/**
 * Volumes in and out of secondary storage. uploadVolume records a DATADISK that the management
 * server downloads into an image store of its zone with the template download machinery
 * (fetchImage: size limit, checksum, format check, progress): UploadOp → Uploaded, or UploadError
 * with the reason in `status`. The store is chosen as for templates (object stores first); on a
 * remote store (S3, Swift, NFS in user space: storage/remote-stores.ts) the file is fetched and
 * checked in the staging directory, then copied to the store and the staged file removed. An
 * Uploaded volume stays on secondary storage until it is first attached to a running VM or its VM
 * starts; then it is staged back if need be, a host copies it onto primary storage (the agent's
 * createVolume fromSnapshot), its file on the store goes and it is Ready. extractVolume links to
 * a volume's file as extractTemplate does (an object store signs the link, other stores are served
 * by the management server): an Uploaded volume's own file, or a copy a host makes of a Ready
 * volume onto secondary storage.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDate } from '../clock.ts';
import { deadServerIds } from '../cluster/heartbeat.ts';
import type { App, CallContext } from '../context.ts';
import type { ImageStoreRow, VolumeRow } from '../db/schema.ts';
import { internalError, invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent, recordEvent } from '../events/events.ts';
import { ResourceKind, registerResourceCounter, reserve } from '../iam/limits.ts';
import { findZone } from '../infra/common.ts';
import { ownerFor } from '../projects/access.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { fetchImage, openUrl, SHUTDOWN, type Source } from './downloads.ts';
import {
  FILE_EXTENSIONS,
  HYPERVISOR_FORMATS,
  parseChecksum,
  storageGiB,
  storeRoot,
  TEMPLATE_FORMATS,
} from './images.ts';
import { isObjectStore, signedUrl } from './object-stores.ts';
import {
  deleteStoreFiles,
  isRemoteStore,
  localFile,
  publishStaged,
  putFile,
  storeReason,
} from './remote-stores.ts';
import { storeLocation } from './snapshot-records.ts';
import { EXTRACT_URL_EXPIRATION, extractBaseUrl, zoneStores } from './templates.ts';
import { hostForPool, poolLocation, poolOf } from './volume-ops.ts';
import { findVolume, GiB, insertVolume, presentVolume } from './volumes.ts';

export const VolumeState = {
  UploadOp: 'UploadOp',
  Uploaded: 'Uploaded',
  UploadError: 'UploadError',
  // A volume a browser uploads (getUploadParamsForVolume, storage/browser-upload.ts): waiting for
  // the post, then receiving it; the takeover of URL uploads leaves these alone.
  NotUploaded: 'NotUploaded',
  UploadInProgress: 'UploadInProgress',
} as const;

const TAKEOVER_INTERVAL_MS = 30_000;
const uploads = new Map<number, AbortController>();

/** The hypervisors of a zone's clusters (an uploaded disk must suit one of them). */
async function zoneHypervisors(app: App, zoneId: number): Promise<string[]> {
  const rows = await app.store.db
    .selectFrom('clusters')
    .select('hypervisor')
    .distinct()
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .execute();
  return rows.map((r) => r.hypervisor);
}

async function storeOf(app: App, id: number): Promise<ImageStoreRow | undefined> {
  return app.store.db
    .selectFrom('image_stores')
    .selectAll()
    .where('id', '=', id)
    .where('removed', 'is', null)
    .executeTakeFirst();
}

type Upload = Pick<VolumeRow, 'name' | 'image_store_id' | 'store_path'>;

/**
 * Where an upload's file is: its store, its key there, and the file on this server (the store's
 * own directory, or a remote store's staging directory, which is where it is fetched and checked).
 */
async function uploadPlace(app: App, v: Upload) {
  if (v.image_store_id === null || !v.store_path) return undefined;
  const store = await storeOf(app, v.image_store_id);
  return store ? { store, key: v.store_path, file: join(await storeRoot(store), v.store_path) } : undefined;
}

/**
 * The uploaded file of a volume as a file on this server, for a host to copy onto primary storage:
 * a remote store's object is staged first. Undefined when its store is gone.
 */
export async function stageUpload(app: App, v: Upload): Promise<string | undefined> {
  const place = await uploadPlace(app, v);
  if (!place) return undefined;
  try {
    return await localFile(app, place.store, place.key);
  } catch (e) {
    throw internalError(
      `Could not read the uploaded file of volume ${v.name} from image store ${place.store.name}: ${storeReason(e)}`,
    );
  }
}

/** Removes an upload's file from its store (and any staged copy); a missing one is fine. */
export async function dropUpload(app: App, v: Upload): Promise<void> {
  const place = await uploadPlace(app, v);
  if (!place) return;
  try {
    await deleteStoreFiles(app, place.store, [place.key]);
  } catch (e) {
    throw internalError(
      `Could not remove the uploaded file of volume ${v.name} from image store ${place.store.name}: ${storeReason(e)}`,
    );
  }
}

export const uploadVolume = defineCommand({
  name: 'uploadVolume',
  description:
    "Registers a data disk to be fetched from an http(s) URL onto the zone's secondary storage. Asynchronous; answers at once, the volume's status shows the download's progress.",
  params: {
    name: p.string({ required: true, description: 'Name of the new volume (not empty).' }),
    zoneid: p.uuid({ required: true, description: 'UUID of the zone whose image store receives the file.' }),
    format: p.string({
      required: true,
      description:
        "Disk format: QCOW2, RAW, VHD, VHDX, OVA or TAR, and one the zone's hypervisors can use (KVM: QCOW2 or RAW; LXC: TAR).",
    }),
    url: p.string({ required: true, description: 'http:// or https:// URL of the disk file to download.' }),
    checksum: p.string({
      description:
        'Expected checksum, checked after download: {SHA-256}<hex>, {SHA-512}<hex>, {SHA-1}<hex>, {MD5}<hex> or a bare MD5.',
    }),
    diskofferingid: p.uuid({ description: 'UUID of a customized (any-size) disk offering for the volume.' }),
    imagestoreuuid: p.string({
      description: "UUID of the zone's image store to use; defaults to the zone's roomiest one.",
    }),
    account: p.string({
      description:
        "Name of the account that will own the volume (admins and domain admins); defaults to the caller's.",
    }),
    domainid: p.uuid({
      description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
    }),
    projectid: p.uuid({
      description: 'Project to own the volume (you must be a member, it must be Active); not with account.',
    }),
  },
  event: { type: 'VOLUME.UPLOAD', description: (params) => `uploading volume ${params.name}` },
  async create(ctx, params) {
    const url = params.url.trim();
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalidParameter(`Invalid URL ${params.url}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw invalidParameter(
        `Unsupported URL ${params.url}: a volume is uploaded from an http:// or https:// URL`,
      );
    return { type: 'Volume', id: await recordUpload(ctx, params, url) };
  },
  async handler(ctx, _params, created) {
    const volume = await findVolume(ctx, created!.id);
    // The job answers at once, as upstream: the volume shows the upload's progress in `status`.
    startUpload(ctx.app, volume.id);
    return presentVolume(ctx, volume.id);
  },
});

/** What uploadVolume and getUploadParamsForVolume take about the volume to make. */
export interface UploadParams {
  name: string;
  zoneid: string;
  format: string;
  checksum?: string;
  diskofferingid?: string;
  imagestoreuuid?: string;
  account?: string;
  domainid?: string;
  projectid?: string;
}

/**
 * Checks and records a DATADISK to be filled on the zone's image store: from `url` (UploadOp, this
 * server fetches it), or without one from a browser's post (NotUploaded). Answers its uuid.
 */
export async function recordUpload(ctx: CallContext, params: UploadParams, url?: string): Promise<string> {
  {
    const { app } = ctx;
    const name = params.name.trim();
    if (name === '') throw invalidParameter('The volume name must not be empty');
    const zone = await findZone(ctx, params.zoneid);
    const format = TEMPLATE_FORMATS.find((f) => f === params.format.trim().toUpperCase());
    if (!format)
      throw invalidParameter(`Invalid format ${params.format}: use one of ${TEMPLATE_FORMATS.join(', ')}`);
    const hypervisors = await zoneHypervisors(app, zone.id);
    if (hypervisors.length && !hypervisors.some((h) => HYPERVISOR_FORMATS[h]?.includes(format)))
      throw invalidParameter(
        `Zone ${zone.name} runs ${hypervisors.join(', ')}, which cannot use ${format} disks`,
      );
    const checksum = params.checksum?.trim() ? parseChecksum(params.checksum).label : null;
    let offering: { id: number; provisioning_type: string } | undefined;
    if (params.diskofferingid) {
      const o = await app.store.db
        .selectFrom('disk_offerings')
        .selectAll()
        .where('uuid', '=', params.diskofferingid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!o || o.compute_only) throw invalidParameter('Please specify a valid disk offering.');
      if (!o.customized) throw invalidParameter('Please specify a custom sized disk offering.');
      if (o.storage_type === 'local' && !zone.local_storage_enabled)
        throw invalidParameter(
          `Zone is not configured to use local storage but volume's disk offering ${o.name} uses it`,
        );
      offering = o;
    }
    const owner = await ownerFor(ctx, params);
    // The same choice as for templates (docs/storage.md, Which store receives ...).
    const stores = await zoneStores(app.store.db, zone.id);
    const store = params.imagestoreuuid ? stores.find((s) => s.uuid === params.imagestoreuuid) : stores[0];
    if (!store)
      throw invalidParameter(
        params.imagestoreuuid
          ? `Unable to find a writable image store ${params.imagestoreuuid} in zone ${zone.name}`
          : `Zone ${zone.name} has no secondary storage (image store) to upload the volume to`,
      );
    const uuid = await app.store.db.transaction().execute(async (tx) => {
      // Its size (and so its primary storage count) is known once the file is in.
      const id = await insertVolume(ctx, tx, {
        name,
        account: owner.account,
        zoneId: zone.id,
        type: 'DATADISK',
        sizeBytes: 0,
        diskOfferingId: offering?.id ?? null,
        provisioningType: offering?.provisioning_type,
      });
      const row = await tx
        .selectFrom('volumes')
        .select('uuid')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      await tx
        .updateTable('volumes')
        .set({
          state: url ? VolumeState.UploadOp : VolumeState.NotUploaded,
          format,
          image_store_id: store.id,
          store_path: `volumes/${owner.account.id}/${row.uuid}.${FILE_EXTENSIONS[format]}`,
          upload_url: url ?? null,
          upload_checksum: checksum,
          upload_status: url ? 'Upload requested' : 'Waiting for the upload',
          upload_ms_id: app.server.id,
        })
        .where('id', '=', id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VOLUME.UPLOAD',
        description: `uploading volume ${name} ${url ? `from ${url}` : 'from a browser'}`,
        resourceType: 'Volume',
        resourceId: row.uuid,
      });
      return row.uuid;
    });
    return uuid;
  }
}

/**
 * Fills a NotUploaded volume from a browser's post (`source`): UploadInProgress while it arrives,
 * then Uploaded, or UploadError with the reason. `waiting` false: no such volume waits for one.
 */
export async function receiveUpload(
  app: App,
  volumeUuid: string,
  source: Source,
): Promise<{ waiting: false } | { waiting: true; error?: string }> {
  // Taken by one post only: the state changes under the condition that it is still NotUploaded.
  const taken = await app.store.db
    .updateTable('volumes')
    .set({ state: VolumeState.UploadInProgress, upload_status: '0% Uploaded', upload_ms_id: app.server.id })
    .where('uuid', '=', volumeUuid)
    .where('state', '=', VolumeState.NotUploaded)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (Number(taken.numUpdatedRows) !== 1) return { waiting: false };
  const v = await app.store.db
    .selectFrom('volumes')
    .select('id')
    .where('uuid', '=', volumeUuid)
    .executeTakeFirstOrThrow();
  const controller = new AbortController();
  uploads.set(v.id, controller);
  try {
    return { waiting: true, error: await runUpload(app, v.id, controller.signal, source) };
  } finally {
    uploads.delete(v.id);
  }
}

function startUpload(app: App, volumeId: number): void {
  if (uploads.has(volumeId)) return;
  const controller = new AbortController();
  uploads.set(volumeId, controller);
  runUpload(app, volumeId, controller.signal)
    .catch((err) => app.log.error({ err, volumeId }, 'volume upload failed unexpectedly'))
    .finally(() => uploads.delete(volumeId));
}

/** Stops a running upload of a volume being deleted. */
export function abortUpload(volumeId: number): void {
  uploads.get(volumeId)?.abort(new Error('deleted'));
}

/** Events of an upload belong to the volume's account (recorded under its first user). */
async function ownerOf(tx: Pick<App['store'], 'db'>['db'], v: VolumeRow) {
  const user = await tx
    .selectFrom('users')
    .select('id')
    .where('account_id', '=', v.account_id)
    .orderBy('id')
    .executeTakeFirst();
  return { userId: user?.id ?? 0, accountId: v.account_id, domainId: v.domain_id };
}

/**
 * Fills an upload's file from its URL (UploadOp) or from a browser's post (`browser`, the volume
 * UploadInProgress), and records the outcome; answers the reason of a failure.
 */
async function runUpload(
  app: App,
  volumeId: number,
  signal: AbortSignal,
  browser?: Source,
): Promise<string | undefined> {
  const db = app.store.db;
  const active = browser ? VolumeState.UploadInProgress : VolumeState.UploadOp;
  const v = await db.selectFrom('volumes').selectAll().where('id', '=', volumeId).executeTakeFirst();
  if (!v || v.removed !== null || v.state !== active || !(browser || v.upload_url)) return;
  const place = await uploadPlace(app, v);
  const fail = async (reason: string) => {
    const text = reason.slice(0, 1000);
    await db.transaction().execute(async (tx) => {
      const r = await tx
        .updateTable('volumes')
        .set({ state: VolumeState.UploadError, upload_status: text })
        .where('id', '=', v.id)
        .where('state', '=', active)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 1)
        await recordEvent({ app }, tx, await ownerOf(tx, v), {
          type: 'VOLUME.UPLOAD',
          level: 'ERROR',
          description: `upload of volume ${v.name} failed: ${text}`,
          resourceType: 'Volume',
          resourceId: v.uuid,
        });
    });
    app.log.warn({ volume: v.uuid, reason: text }, 'volume upload failed');
    return text;
  };
  if (!place) return fail('The image store of the upload is gone');
  const { store, key, file: dest } = place;
  const onRemoteStore = isRemoteStore(store);
  await db
    .updateTable('volumes')
    .set({ upload_status: '0% Uploaded', upload_ms_id: app.server.id })
    .where('id', '=', v.id)
    .execute();
  let sizes: { virtual: number; physical: number };
  try {
    sizes = await fetchImage(app, {
      dest,
      format: v.format ?? 'QCOW2',
      checksum: v.upload_checksum,
      open: async (watched) => browser ?? openUrl(v.upload_url!, watched),
      signal,
      progress: async (bytes, length) => {
        const status = length
          ? `${Math.min(99, Math.floor((bytes * 100) / length))}% Uploaded`
          : `${(bytes / 1024 ** 2).toFixed(1)} MB Uploaded`;
        await db
          .updateTable('volumes')
          .set({ upload_status: status })
          .where('id', '=', v.id)
          .where('state', '=', active)
          .execute();
      },
    });
    // Checked in the staging directory, a remote store's file is copied there (stored size, on
    // NFS also SHA-256, compared) and lives there only.
    if (onRemoteStore) {
      await db
        .updateTable('volumes')
        .set({ upload_status: 'Copying to the image store' })
        .where('id', '=', v.id)
        .where('state', '=', active)
        .execute();
      try {
        await putFile(app, store, key, dest);
      } catch (e) {
        throw new Error(`Unable to upload to image store ${store.name}: ${storeReason(e)}`);
      } finally {
        await rm(dest, { force: true });
      }
    }
  } catch (e) {
    if (signal.aborted) return 'The upload was stopped'; // deleted, or this server stops (another takes a URL upload over)
    return fail(e instanceof Error ? e.message : String(e));
  }
  const discard = () => deleteStoreFiles(app, store, [key]);
  try {
    const kept = await db.transaction().execute(async (tx) => {
      const current = await tx.selectFrom('volumes').selectAll().where('id', '=', v.id).executeTakeFirst();
      if (!current || current.removed !== null || current.state !== active) return false;
      const account = await tx
        .selectFrom('accounts')
        .selectAll()
        .where('id', '=', v.account_id)
        .executeTakeFirst();
      if (account) {
        await reserve({ app }, tx, account, ResourceKind.SecondaryStorage, storageGiB(sizes.physical));
        await reserve({ app }, tx, account, ResourceKind.PrimaryStorage, Math.ceil(sizes.virtual / GiB));
      }
      await tx
        .updateTable('volumes')
        .set({
          state: VolumeState.Uploaded,
          size_bytes: sizes.virtual,
          physical_size_bytes: sizes.physical,
          upload_status: 'Upload Complete',
        })
        .where('id', '=', v.id)
        .execute();
      await recordEvent({ app }, tx, await ownerOf(tx, v), {
        type: 'VOLUME.UPLOAD',
        description: `volume ${v.name} is uploaded (${sizes.virtual} bytes)`,
        resourceType: 'Volume',
        resourceId: v.uuid,
      });
      return true;
    });
    if (!kept) {
      await discard();
      return 'The volume was deleted during the upload';
    }
  } catch (e) {
    // Over the owner's secondary or primary storage limit: the file goes, the reason stays.
    await discard();
    return fail(e instanceof Error ? e.message : String(e));
  }
}

/** Restarts uploads left in progress by management servers that stopped. */
export async function takeOverUploads(app: App): Promise<number> {
  const db = app.store.db;
  const dead = (await deadServerIds(app).where('id', '!=', app.server.id).execute()).map((d) => d.id);
  if (dead.length === 0) return 0;
  const orphans = await db
    .selectFrom('volumes')
    .select(['id', 'upload_ms_id'])
    .where('state', '=', VolumeState.UploadOp)
    .where('removed', 'is', null)
    .where('upload_ms_id', 'in', dead)
    .execute();
  let claimed = 0;
  for (const o of orphans) {
    const r = await db
      .updateTable('volumes')
      .set({ upload_ms_id: app.server.id })
      .where('id', '=', o.id)
      .where('upload_ms_id', '=', o.upload_ms_id)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 1) {
      claimed++;
      startUpload(app, o.id);
    }
  }
  return claimed;
}

/** Takes uploads over now and periodically; returns the function that stops (and aborts) them. */
export function startUploadSupervisor(app: App): () => void {
  const run = () =>
    takeOverUploads(app)
      .then((n) => n > 0 && app.log.info({ resumed: n }, 'resumed volume uploads left by stopped servers'))
      .catch((err) => app.log.error({ err }, 'volume upload takeover failed'));
  void run();
  const timer = setInterval(run, TAKEOVER_INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    for (const c of uploads.values()) c.abort(SHUTDOWN);
  };
}

/** Deletes the files of expired volume extract links (copies made for them). */
async function dropExpiredExtracts(app: App): Promise<void> {
  const db = app.store.db;
  const expired = await db
    .selectFrom('volume_extracts')
    .selectAll()
    .where('expires', '<', app.clock.now())
    .execute();
  for (const e of expired) {
    const shared = await db
      .selectFrom('volumes')
      .select('id')
      .where('id', '=', e.volume_id)
      .where('store_path', '=', e.install_path)
      .executeTakeFirst();
    // An Uploaded volume's own file is its data, not an extract copy.
    if (!shared) {
      const store = await storeOf(app, e.image_store_id);
      if (store) await deleteStoreFiles(app, store, [e.install_path]);
    }
    await db.deleteFrom('volume_extracts').where('id', '=', e.id).execute();
  }
}

export const extractVolume = defineCommand({
  name: 'extractVolume',
  description:
    "Creates a temporary download link for a volume's disk, copying it to secondary storage first. Asynchronous; the link expires after extract.url.expiration.interval.",
  params: {
    id: p.uuid({
      required: true,
      description: 'UUID of the volume; it must be detached or its VM Stopped, and Ready or Uploaded.',
    }),
    zoneid: p.uuid({ required: true, description: "UUID of the volume's zone." }),
    mode: p.string({
      required: true,
      description: 'Only HTTP_DOWNLOAD is supported (FTP_UPLOAD is refused).',
    }),
    url: p.string({
      description:
        'Accepted for compatibility; Nimbostack ignores it (it serves the file, it does not push it).',
    }),
  },
  event: { type: 'VOLUME.EXTRACT', description: (params) => `extracting volume ${params.id}` },
  async target(ctx, params) {
    await checkExtract(ctx, params);
    return { type: 'Volume', id: params.id };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const { volume, zone } = await checkExtract(ctx, params);
    await dropExpiredExtracts(app).catch((err) => app.log.warn({ err }, 'could not drop expired extracts'));
    let store: ImageStoreRow | undefined;
    let installPath: string;
    let signed: string | undefined;
    if (volume.state === VolumeState.Uploaded && volume.image_store_id !== null && volume.store_path) {
      store = await storeOf(app, volume.image_store_id);
      if (!store)
        throw invalidParameter(
          `The uploaded file of volume ${volume.name} is no longer on secondary storage`,
        );
      installPath = volume.store_path;
    } else {
      // A host that reaches the volume's pool copies it, flat, onto the zone's first image store
      // (a remote store's staging directory, from which it is copied to the store, as an upload).
      const pool = (await poolOf(ctx, volume))!;
      store = (await zoneStores(app.store.db, zone.id))[0];
      if (!store)
        throw invalidParameter(`Zone ${zone.name} has no secondary storage (image store) to extract to`);
      const secondary = await storeLocation(store);
      const hostId =
        pool.scope === 'HOST' && pool.host_id !== null ? pool.host_id : await hostForPool(ctx, pool);
      const made = await app.agents.call(hostId, 'createSnapshot', {
        snapshotUuid: `extract-${volume.uuid}-${randomBytes(4).toString('hex')}`,
        volumePath: volume.path!,
        pool: poolLocation(pool),
        secondary,
      });
      const root = `${secondary.path.replace(/\/+$/, '')}/`;
      installPath = made.path.startsWith(root) ? made.path.slice(root.length) : made.path;
      if (isRemoteStore(store)) {
        try {
          await publishStaged(app, store, installPath);
        } catch (e) {
          await rm(made.path, { force: true });
          throw internalError(
            `Could not upload volume ${volume.name} to image store ${store.name}: ${storeReason(e)}`,
          );
        }
      }
    }
    // An object store signs its own link; other stores' files are served by this server (an NFS
    // export reached in user space: staged when the link is used).
    if (isObjectStore(store)) {
      const seconds = app.settings.get(EXTRACT_URL_EXPIRATION);
      signed = await signedUrl(app, store, installPath, seconds, installPath.split('/').pop()!);
    }
    const token = randomBytes(24).toString('base64url');
    const now = app.clock.now();
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('volume_extracts')
        .values({
          token,
          volume_id: volume.id,
          image_store_id: store.id,
          install_path: installPath,
          account_id: ctx.caller.account.id,
          created: now,
          expires: now + app.settings.get(EXTRACT_URL_EXPIRATION) * 1000,
        })
        .execute();
      await logEvent(ctx, tx, {
        type: 'VOLUME.EXTRACT',
        description: `extract link created for volume ${volume.name}`,
        resourceType: 'Volume',
        resourceId: volume.uuid,
      });
    });
    const owner = await app.store.db
      .selectFrom('accounts')
      .select('uuid')
      .where('id', '=', volume.account_id)
      .executeTakeFirstOrThrow();
    const file = installPath.split('/').pop()!;
    return {
      id: volume.uuid,
      name: volume.name,
      accountid: owner.uuid,
      state: 'DOWNLOAD_URL_CREATED',
      status: 'DOWNLOAD_URL_CREATED',
      uploadpercentage: 100,
      zoneid: zone.uuid,
      zonename: zone.name,
      extractMode: 'HTTP_DOWNLOAD',
      url: signed ?? `${extractBaseUrl(app)}/client/extract/${token}/${file}`,
      created: formatDate(now),
    };
  },
});

/** Everything extractVolume refuses, before anything is copied. */
async function checkExtract(ctx: CallContext, params: { id: string; zoneid: string; mode: string }) {
  const mode = params.mode.trim().toUpperCase();
  if (mode === 'FTP_UPLOAD')
    throw invalidParameter(
      'Extract mode FTP_UPLOAD is not supported: use HTTP_DOWNLOAD and fetch the returned url',
    );
  if (mode !== 'HTTP_DOWNLOAD') throw invalidParameter('Please specify a valid extract Mode ');
  const volume = await findVolume(ctx, params.id);
  const zone = await findZone(ctx, params.zoneid);
  if (volume.zone_id !== zone.id) throw invalidParameter(`Volume ${volume.name} is not in zone ${zone.name}`);
  if (volume.vm_id !== null) {
    const vm = await ctx.app.store.db
      .selectFrom('vms')
      .select('state')
      .where('id', '=', volume.vm_id)
      .executeTakeFirstOrThrow();
    if (vm.state !== 'Stopped')
      throw permissionDenied(
        'Invalid state of the volume with specified ID. It should be either detached or the VM should be in stopped state.',
      );
  }
  // A ROOT disk carries its template: only extractable, non-system templates may leave (root admins excepted).
  if (volume.type === 'ROOT' && volume.template_id !== null && ctx.caller.roleKind !== 'admin') {
    const t = await ctx.app.store.db
      .selectFrom('templates')
      .select(['is_extractable', 'type'])
      .where('id', '=', volume.template_id)
      .executeTakeFirst();
    if (t && (!t.is_extractable || t.type === 'SYSTEM' || t.type === 'BUILTIN'))
      throw permissionDenied('The volume with specified volumeId is not allowed to be extracted');
  }
  const ready =
    volume.state === VolumeState.Uploaded ||
    (volume.state === 'Ready' && volume.path && volume.pool_id !== null);
  if (!ready)
    throw invalidParameter(
      `Volume ${volume.name} is ${volume.state}: only a Ready volume (with a disk on primary storage) or an Uploaded one can be extracted`,
    );
  return { volume, zone };
}

/** The file an extract link serves, or undefined for an unknown or expired token. */
export async function volumeExtractFile(app: App, token: string, file: string): Promise<string | undefined> {
  const db = app.store.db;
  const link = await db
    .selectFrom('volume_extracts')
    .selectAll()
    .where('token', '=', token)
    .where('expires', '>', app.clock.now())
    .executeTakeFirst();
  if (!link || link.install_path.split('/').pop() !== file) return undefined;
  const store = await storeOf(app, link.image_store_id);
  return store && localFile(app, store, link.install_path);
}

// Uploaded volumes hold secondary storage until they are copied to a pool.
registerResourceCounter(ResourceKind.SecondaryStorage, async (tx, accountId) => {
  const rows = await tx
    .selectFrom('volumes')
    .select('physical_size_bytes')
    .where('account_id', '=', accountId)
    .where('state', '=', VolumeState.Uploaded)
    .where('removed', 'is', null)
    .execute();
  return rows.reduce((sum, r) => sum + storageGiB(r.physical_size_bytes), 0);
});

export const volumeTransferCommands = [uploadVolume, extractVolume];
