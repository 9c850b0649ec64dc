/**
 * Looking snapshots up, shared by snapshot commands and by volumes (a volume made from a snapshot)
 * without volumes importing the snapshot commands, which import volumes.
 */

import type { StorageLocation } from '@nimbostack/protocol';
import type { CallContext } from '../context.ts';
import type { ImageStoreRow, SnapshotRow } from '../db/schema.ts';
import { findOwned } from '../iam/owned.ts';
import { storeRoot } from './images.ts';

export async function findSnapshot(ctx: CallContext, uuid: string): Promise<SnapshotRow> {
  return findOwned(ctx, 'snapshots', uuid, { noun: 'snapshot' });
}

/** An image store as an agent reaches it (the same root the server sees, as for templates). */
export async function storeLocation(store: ImageStoreRow): Promise<StorageLocation> {
  return {
    uuid: store.uuid,
    type: store.protocol === 'nfs' ? 'NetworkFilesystem' : 'Filesystem',
    path: await storeRoot(store),
  };
}
