/**
 * Looking snapshots up, shared by snapshot commands and by volumes (a volume made from a snapshot)
 * without volumes importing the snapshot commands, which import volumes.
 */

import type { StorageLocation } from '@nimbostack/protocol';
import type { App, CallContext } from '../context.ts';
import type { ImageStoreRow, SnapshotRow } from '../db/schema.ts';
import { findOwned } from '../iam/owned.ts';
import { storeRoot } from './images.ts';
import { isRemoteStore, stageFile } from './remote-stores.ts';

export async function findSnapshot(ctx: CallContext, uuid: string): Promise<SnapshotRow> {
  return findOwned(ctx, 'snapshots', uuid, { noun: 'snapshot' });
}

/** A file's key on a remote store (remote-stores.ts): its path under the store's staging directory. */
export function stagedKey(store: ImageStoreRow, path: string): string | undefined {
  const root = `${store.path.replace(/\/+$/, '')}/`;
  return path.startsWith(root) ? path.slice(root.length) : undefined;
}

/** The remote store a snapshot's backup is kept on, with its key, or undefined for any other place. */
export async function snapshotOnRemoteStore(
  app: App,
  snap: Pick<SnapshotRow, 'image_store_id' | 'path'>,
): Promise<{ store: ImageStoreRow; key: string } | undefined> {
  if (snap.image_store_id === null || !snap.path) return undefined;
  const store = await app.store.db
    .selectFrom('image_stores')
    .selectAll()
    .where('id', '=', snap.image_store_id)
    .executeTakeFirst();
  if (!store || !isRemoteStore(store)) return undefined;
  const key = stagedKey(store, snap.path);
  return key ? { store, key } : undefined;
}

/**
 * Brings a snapshot backup kept on a remote store into its staging directory, where the agents
 * read it (restores, reverts, templates made from it); nothing to do for other stores.
 */
export async function stageSnapshot(
  app: App,
  snap: Pick<SnapshotRow, 'image_store_id' | 'path'>,
): Promise<void> {
  const on = await snapshotOnRemoteStore(app, snap);
  if (on) await stageFile(app, on.store, on.key);
}

/** An image store as an agent reaches it (the same root the server sees, as for templates). */
export async function storeLocation(store: ImageStoreRow): Promise<StorageLocation> {
  return {
    uuid: store.uuid,
    type: store.protocol === 'nfs' ? 'NetworkFilesystem' : 'Filesystem',
    path: await storeRoot(store),
  };
}
