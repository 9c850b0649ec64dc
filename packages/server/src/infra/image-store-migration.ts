/**
 * migrateSecondaryStorageData: moves what one image store holds (ready template and ISO copies,
 * snapshot backups) to other stores of any provider. Each file is read from the source (a file on
 * a local or mounted NFS store, or from a remote store: an object on S3 or Swift, a file on an NFS
 * export reached in user space), written to the destination the same way a new one would be (a
 * remote store's copy goes through its staging directory and out), its record
 * moved, then the source copy deleted; one file at a time, so a failure leaves every record on
 * a store that holds its file. Template copies that are still downloading are not moved.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { App, CallContext } from '../context.ts';
import type { ImageStoreRow } from '../db/schema.ts';
import { internalError, invalidParameter } from '../errors.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { DownloadState } from '../storage/downloads.ts';
import { storeRoot } from '../storage/images.ts';
import { deleteStoreFiles, getFile, isRemoteStore, putFile, storeReason } from '../storage/remote-stores.ts';
import { stagedKey } from '../storage/snapshot-records.ts';
import { findImageStore } from './common.ts';

async function readFrom(app: App, store: ImageStoreRow, key: string): Promise<Readable> {
  if (isRemoteStore(store)) return (await getFile(app, store, key)).stream;
  return createReadStream(join(await storeRoot(store), key));
}

/** Writes `key` on the store; returns the absolute path records keep (the staging path for remote stores). */
async function writeTo(app: App, store: ImageStoreRow, key: string, input: Readable): Promise<string> {
  const file = join(await storeRoot(store), key);
  await mkdir(dirname(file), { recursive: true });
  const part = `${file}.migrating`;
  try {
    await pipeline(input, createWriteStream(part));
    if (isRemoteStore(store)) {
      await putFile(app, store, key, part);
      await rm(part, { force: true });
    } else await rename(part, file);
  } catch (e) {
    await rm(part, { force: true });
    throw e;
  }
  return file;
}

async function migrate(
  ctx: CallContext,
  src: ImageStoreRow,
  dests: ImageStoreRow[],
): Promise<{ templates: number; snapshots: number }> {
  const { app } = ctx;
  const db = app.store.db;
  let turn = 0;
  const next = () => dests[turn++ % dests.length];
  const refs = await db
    .selectFrom('template_store_refs')
    .selectAll()
    .where('image_store_id', '=', src.id)
    .where('destroyed', '=', 0)
    .where('download_state', '=', DownloadState.Downloaded)
    .execute();
  let templates = 0;
  for (const ref of refs) {
    if (!ref.install_path) continue;
    // A store that already holds a copy of the template is skipped: copies are one per store.
    const held = await db
      .selectFrom('template_store_refs')
      .select('image_store_id')
      .where('template_id', '=', ref.template_id)
      .where('destroyed', '=', 0)
      .execute();
    const dest = dests.find((d) => !held.some((h) => h.image_store_id === d.id)) ?? next();
    if (held.some((h) => h.image_store_id === dest.id)) {
      // The destination already has it: the source copy just goes.
      await db.updateTable('template_store_refs').set({ destroyed: 1 }).where('id', '=', ref.id).execute();
      await deleteStoreFiles(app, src, [ref.install_path]);
      templates++;
      continue;
    }
    await writeTo(app, dest, ref.install_path, await readFrom(app, src, ref.install_path));
    await db
      .updateTable('template_store_refs')
      .set({ image_store_id: dest.id, zone_id: dest.zone_id ?? ref.zone_id, updated: app.clock.now() })
      .where('id', '=', ref.id)
      .execute();
    await deleteStoreFiles(app, src, [ref.install_path]);
    templates++;
  }
  const snaps = await db
    .selectFrom('snapshots')
    .selectAll()
    .where('image_store_id', '=', src.id)
    .where('removed', 'is', null)
    .where('state', '=', 'BackedUp')
    .execute();
  let snapshots = 0;
  for (const snap of snaps) {
    const key = snap.path ? stagedKey(src, snap.path) : undefined;
    if (!key) continue;
    const dest = next();
    const path = await writeTo(app, dest, key, await readFrom(app, src, key));
    await db
      .updateTable('snapshots')
      .set({ image_store_id: dest.id, path })
      .where('id', '=', snap.id)
      .execute();
    await deleteStoreFiles(app, src, [key]);
    snapshots++;
  }
  return { templates, snapshots };
}

export const migrateSecondaryStorageData = defineCommand({
  name: 'migrateSecondaryStorageData',
  description:
    'Moves the ready template and ISO copies and the snapshot backups of one image store to other image stores (any provider mix), one file at a time, deleting each source copy once its record has moved. Asynchronous.',
  params: {
    srcpool: p.uuid({ required: true, description: 'The image store to empty.' }),
    destpools: p.list({
      of: 'uuid',
      required: true,
      description: 'Image stores to move to, taken in turn; read-only ones are refused.',
    }),
    migrationtype: p.string({
      description:
        'Complete (default) moves everything; Balance is accepted and does the same, as store use is not measured.',
    }),
  },
  target: (_ctx, params) => ({ type: 'ImageStore', id: params.srcpool }),
  event: {
    type: 'IMAGE.STORE.MIGRATE.DATA',
    description: (params) => `moving the data of image store ${params.srcpool}`,
  },
  async handler(ctx, params) {
    const type = (params.migrationtype ?? 'Complete').trim();
    if (!['complete', 'balance'].includes(type.toLowerCase()))
      throw invalidParameter(`Unsupported migrationtype ${params.migrationtype}: use Complete or Balance`);
    const src = await findImageStore(ctx, params.srcpool);
    const dests: ImageStoreRow[] = [];
    for (const id of params.destpools) {
      const d = await findImageStore(ctx, id);
      if (d.id === src.id) throw invalidParameter(`Image store ${d.name} is the source`);
      if (d.readonly) throw invalidParameter(`Image store ${d.name} is read-only`);
      // Zonal stores must serve the source's zone; a region-wide store serves them all.
      if (d.zone_id !== null && src.zone_id !== null && d.zone_id !== src.zone_id)
        throw invalidParameter(`Image store ${d.name} is in another zone than ${src.name}`);
      dests.push(d);
    }
    if (dests.length === 0) throw invalidParameter('destpools names no image store');
    let moved: { templates: number; snapshots: number };
    try {
      moved = await migrate(ctx, src, dests);
    } catch (e) {
      // What was moved before the failure stays moved; the rest is still on the source.
      throw internalError(`Moving the data of image store ${src.name} stopped: ${storeReason(e)}`);
    }
    return {
      success: true,
      migrationtype: type.toLowerCase() === 'balance' ? 'Balance' : 'Complete',
      message: `Moved ${moved.templates} template or ISO copies and ${moved.snapshots} snapshot backups from ${src.name}`,
    };
  },
});
