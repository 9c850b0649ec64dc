/**
 * Secondary storage (image stores): where templates, ISOs and snapshot backups are kept. An NFS
 * export or, for a single-machine cloud, a local directory serves one zone; agents read and write
 * a local directory or a kernel-mounted export directly, while an export the server reaches in
 * user space (kvmNfs libnfs: storage/nfs-stores.ts) goes through the server's staging directory,
 * as an S3 bucket or a Swift container (storage/object-stores.ts) does, which serves one zone or,
 * added without a zone, every zone.
 */

import { join } from 'node:path';
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { ImageStoreRow } from '../db/schema.ts';
import { internalError, invalidParameter, resourceInUse } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { type NfsStoreDetails, probeNfsExport } from '../storage/nfs-stores.ts';
import { dropBucket } from '../storage/object-stores.ts';
import { closeStore, deleteFiles, isRemoteStore, storeReason } from '../storage/remote-stores.ts';
import { findImageStore, findZone, likeOp, namesOf } from './common.ts';
import { parseObjectStore, reach, type UncheckedSettings } from './object-store-settings.ts';
import { filesystemUsage, parseStorageUrl } from './storage-pools.ts';

const PROVIDERS = ['NFS', 'S3', 'Swift'] as const;

/** Checks that can refuse a store's removal (templates or snapshots still on it). */
type StoreUsageCheck = (app: App, store: ImageStoreRow) => Promise<string | undefined>;
const usageChecks: StoreUsageCheck[] = [];

export function onImageStoreDelete(check: StoreUsageCheck): void {
  usageChecks.push(check);
}

/** Work to do once a store is added (templates give it what every zone should hold). */
type StoreAddedHook = (app: App, store: ImageStoreRow) => Promise<void>;
const addedHooks: StoreAddedHook[] = [];

export function onImageStoreAdd(hook: StoreAddedHook): void {
  addedHooks.push(hook);
}

export async function presentImageStores(ctx: CallContext, rows: ImageStoreRow[]): Promise<object[]> {
  const zones = await namesOf(
    ctx,
    'zones',
    rows.map((r) => r.zone_id),
  );
  return rows.map((s) => ({
    id: s.uuid,
    name: s.name,
    zoneid: s.zone_id === null ? undefined : zones.get(s.zone_id)?.uuid,
    zonename: s.zone_id === null ? undefined : zones.get(s.zone_id)?.name,
    url: s.url,
    protocol: s.protocol,
    providername: s.provider,
    scope: s.scope,
    readonly: s.readonly === 1,
    disksizetotal: s.capacity_bytes === null ? undefined : Number(s.capacity_bytes),
    disksizeused: s.used_bytes === null ? undefined : Number(s.used_bytes),
    hasannotations: false,
  }));
}

/**
 * Records an object store (S3 or Swift) once its bucket is reached (and made when absent), then
 * runs the add hooks. `settings` gets the new store's uuid (Swift's default container is named
 * after it). A bucket made here goes again when the record cannot be written.
 */
export async function insertObjectStore(
  ctx: CallContext,
  settings: (uuid: string) => UncheckedSettings,
  opts: { name?: string; zoneId: number | null },
): Promise<ImageStoreRow> {
  const { app } = ctx;
  const uuid = app.ids.uuid();
  const base = settings(uuid);
  const name = opts.name?.trim() || base.url;
  const clashing = (tx: Tx) =>
    tx
      .selectFrom('image_stores')
      .select('name')
      .where('removed', 'is', null)
      .where((eb) => eb.or([eb('url', '=', base.url), eb('name', '=', name)]))
      .executeTakeFirst()
      .then((clash) => {
        if (clash) throw invalidParameter(`Image store ${clash.name} already has that name or url`);
      });
  await clashing(app.store.db);
  const reached = await reach(base);
  let row: ImageStoreRow;
  try {
    row = await app.store.db.transaction().execute(async (tx) => {
      await clashing(tx);
      const id = await insertId(app.store, tx, 'image_stores', {
        uuid,
        name,
        zone_id: opts.zoneId,
        provider: reached.provider,
        protocol: reached.protocol,
        url: reached.url,
        // The staging directory on the management server (storage/remote-stores.ts).
        path: join(app.config.dataDir, 'image-stores', uuid),
        host_address: null,
        scope: opts.zoneId === null ? 'REGION' : 'ZONE',
        readonly: 0,
        capacity_bytes: null,
        used_bytes: null,
        details: JSON.stringify(reached.details),
        secret: app.secrets.encrypt(reached.secretKey),
        created: app.clock.now(),
      });
      return tx.selectFrom('image_stores').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    });
  } catch (e) {
    if (reached.details.createdBucket)
      await dropBucket(reached.details, reached.secretKey).catch(() => undefined);
    throw e;
  }
  for (const hook of addedHooks) await hook(app, row);
  return row;
}

export const addImageStore = defineCommand({
  name: 'addImageStore',
  description:
    'Adds secondary storage where templates, ISOs and snapshots are kept: an NFS export or local directory for one zone, or an S3 bucket or Swift container for one zone or (without zoneid) every zone; templates every zone should hold are then placed on it.',
  params: {
    name: p.string({ description: 'Name of the store, unique; defaults to its URL.' }),
    provider: p.string({
      required: true,
      description: 'NFS (also a local path), S3 or Swift.',
    }),
    url: p.string({
      length: 2048,
      description:
        'NFS: nfs://server[:port]/path or a local absolute path (file://), not used by another store. Swift: the v1.0 auth URL (http(s)://proxy/auth/v1.0). S3: unused (the endpoint is a detail).',
    }),
    zoneid: p.uuid({
      description:
        'Zone the store serves; required for NFS, optional for S3 and Swift (every zone without it).',
    }),
    details: p.map({
      description:
        'S3: accesskey, secretkey, bucket, endpoint (host[:port] or a URL), usehttps, region; Swift: account, username, key (and container, default one per store). As details[0].key=<name>&details[0].value=<value>.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const provider = PROVIDERS.find((v) => v.toLowerCase() === params.provider.trim().toLowerCase());
    if (!provider)
      throw invalidParameter(`Unsupported image store provider ${params.provider}; use NFS, S3 or Swift`);
    if (provider !== 'NFS') {
      const zone = params.zoneid ? await findZone(ctx, params.zoneid) : undefined;
      const row = await insertObjectStore(
        ctx,
        (uuid) => parseObjectStore(provider, params.url, params.details, `nimbostack-${uuid}`),
        { name: params.name, zoneId: zone?.id ?? null },
      );
      return (await presentImageStores(ctx, [row]))[0];
    }
    if (!params.url) throw invalidParameter('An NFS image store needs a url');
    // NFS stores serve one zone; only object stores (S3, Swift) can be region-wide.
    if (!params.zoneid) throw invalidParameter('An NFS image store needs a zoneid');
    const zone = await findZone(ctx, params.zoneid);
    const url = parseStorageUrl(params.url);
    if (url.poolType === 'SharedMountPoint')
      throw invalidParameter('Secondary storage is an NFS export or a local path, not a shared mount point');
    const protocol = url.poolType === 'NetworkFilesystem' ? 'nfs' : 'file';
    const name = params.name?.trim() || url.url;
    const clashing = (tx: Tx) =>
      tx
        .selectFrom('image_stores')
        .select('name')
        .where('removed', 'is', null)
        .where((eb) => eb.or([eb('url', '=', url.url), eb('name', '=', name)]))
        .executeTakeFirst()
        .then((clash) => {
          if (clash) throw invalidParameter(`Image store ${clash.name} already has that name or url`);
        });
    // This server reaches an export the way its kvmNfs setting says, recorded on the store
    // (storage/nfs-stores.ts). In user space it is reached now, before anything is recorded.
    const userSpace = protocol === 'nfs' && app.config.kvmNfs === 'libnfs';
    let seen: { total: number; used: number } | undefined;
    if (protocol === 'file') seen = await filesystemUsage(url.path);
    else if (userSpace) {
      await clashing(app.store.db);
      try {
        const s = await probeNfsExport(url.hostAddress, url.path);
        seen = { total: s.capacityBytes, used: s.usedBytes };
      } catch (e) {
        throw internalError(`Cannot use NFS export ${url.url} as an image store: ${storeReason(e)}`);
      }
    }
    const uuid = app.ids.uuid();
    const details: NfsStoreDetails | undefined = userSpace
      ? { access: 'libnfs', export: url.path }
      : undefined;
    const row = await app.store.db.transaction().execute(async (tx) => {
      await clashing(tx);
      const id = await insertId(app.store, tx, 'image_stores', {
        uuid,
        name,
        zone_id: zone.id,
        provider,
        protocol,
        url: url.url,
        // In user space: the staging directory on this server (storage/remote-stores.ts).
        path: details ? join(app.config.dataDir, 'image-stores', uuid) : url.path,
        host_address: url.hostAddress,
        scope: 'ZONE',
        readonly: 0,
        capacity_bytes: seen?.total ?? null,
        used_bytes: seen?.used ?? null,
        ...(details ? { details: JSON.stringify(details) } : {}),
        created: app.clock.now(),
      });
      return tx.selectFrom('image_stores').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    });
    for (const hook of addedHooks) await hook(app, row);
    return (await presentImageStores(ctx, [row]))[0];
  },
});

export const listImageStores = defineCommand({
  name: 'listImageStores',
  description:
    'Lists secondary storage stores with their zone, URL and, where known, size and use; keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the store with this ID.' }),
    name: p.string({ description: 'Only the store with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only stores of this zone.' }),
    provider: p.string({ description: 'Only stores of this provider: NFS, S3 or Swift.' }),
    protocol: p.string({ description: 'Only stores reached by this protocol: nfs, file, http or https.' }),
    readonly: p.boolean({ description: 'Only read-only stores (true) or writable ones (false).' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('image_stores').where('removed', 'is', null);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.zoneid) q = q.where('zone_id', '=', (await findZone(ctx, params.zoneid)).id);
    if (params.provider) {
      const provider = PROVIDERS.find((v) => v.toLowerCase() === params.provider?.trim().toLowerCase());
      q = q.where('provider', '=', provider ?? params.provider);
    }
    if (params.protocol) q = q.where('protocol', '=', params.protocol.toLowerCase());
    if (params.readonly !== undefined) q = q.where('readonly', '=', params.readonly ? 1 : 0);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentImageStores(ctx, rows), Number(count));
  },
});

export const updateImageStore = defineCommand({
  name: 'updateImageStore',
  description:
    'Renames a secondary storage store, makes it read-only (it keeps serving what it holds, nothing new is written) or sets its capacity.',
  params: {
    id: p.uuid({ required: true, description: 'ID of the store to update.' }),
    name: p.string({ description: 'New unique name; must not be blank.' }),
    readonly: p.boolean({ description: 'True stops new templates, ISOs and snapshots being written to it.' }),
    capacitybytes: p.long({ min: 0, description: 'Total size of the store in bytes, as shown in listings.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const store = await findImageStore(ctx, params.id);
    const changes: Partial<ImageStoreRow> = {};
    if (params.name !== undefined) {
      const name = params.name.trim();
      if (name === '') throw invalidParameter('Image store name must not be empty');
      changes.name = name;
    }
    // A read-only store keeps serving what it holds; nothing new is written to it.
    if (params.readonly !== undefined) changes.readonly = params.readonly ? 1 : 0;
    if (params.capacitybytes !== undefined) changes.capacity_bytes = params.capacitybytes;
    await app.store.db.transaction().execute(async (tx) => {
      if (changes.name) {
        const clash = await tx
          .selectFrom('image_stores')
          .select('id')
          .where('removed', 'is', null)
          .where('name', '=', changes.name)
          .where('id', '!=', store.id)
          .executeTakeFirst();
        if (clash) throw invalidParameter(`An image store named ${changes.name} already exists`);
      }
      if (Object.keys(changes).length > 0)
        await tx.updateTable('image_stores').set(changes).where('id', '=', store.id).execute();
    });
    return (await presentImageStores(ctx, [await findImageStore(ctx, store.uuid)]))[0];
  },
});

export const deleteImageStore = defineCommand({
  name: 'deleteImageStore',
  description:
    'Removes a secondary storage store and its store-level settings; refused while templates or snapshots are still on it.',
  params: { id: p.uuid({ required: true, description: 'ID of the store to delete.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const store = await findImageStore(ctx, params.id);
    for (const check of usageChecks) {
      const reason = await check(app, store);
      if (reason) throw resourceInUse(`Cannot delete image store ${store.name}: ${reason}`);
    }
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('image_stores')
        .set({ removed: app.clock.now() })
        .where('id', '=', store.id)
        .execute();
      await tx
        .deleteFrom('scoped_configuration')
        .where('scope', '=', 'imagestore')
        .where('scope_id', '=', store.id)
        .execute();
    });
    await app.settings.load();
    // What was ours on a remote store goes with it: its staging directory, and an object store's
    // bucket when Nimbostack created it and nothing else is in it.
    if (isRemoteStore(store)) {
      // Volume extract copies are not kept records: they go now rather than when their links expire.
      const extracts = await app.store.db
        .selectFrom('volume_extracts')
        .select('install_path')
        .where('image_store_id', '=', store.id)
        .execute();
      await deleteFiles(
        app,
        store,
        extracts.map((e) => e.install_path),
      )
        .then(() => closeStore(app, store))
        .catch((err) =>
          app.log.warn(
            { err, store: store.uuid },
            'could not clear the remote side of a deleted image store',
          ),
        );
      await app.store.db.deleteFrom('volume_extracts').where('image_store_id', '=', store.id).execute();
    }
    return success();
  },
});

export const imageStoreCommands = [addImageStore, listImageStores, updateImageStore, deleteImageStore];
