/**
 * Looking snapshots up, shared by snapshot commands and by volumes (a volume made from a snapshot)
 * without volumes importing the snapshot commands, which import volumes.
 */
import type { StorageLocation } from '@nimbostack/protocol';
import type { CallContext } from '../context.ts';
import type { ImageStoreRow, SnapshotRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { checkOwnerAccess } from '../iam/access.ts';
import { storeRoot } from './images.ts';

export async function findSnapshot(ctx: CallContext, uuid: string): Promise<SnapshotRow> {
  const s = await ctx.app.store.db
    .selectFrom('snapshots')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!s) throw invalidParameter(`Unable to find snapshot by id ${uuid}`);
  const domain = await ctx.app.store.db
    .selectFrom('domains')
    .select(['path', 'name'])
    .where('id', '=', s.domain_id)
    .executeTakeFirstOrThrow();
  checkOwnerAccess(ctx.caller, { accountId: s.account_id, domain });
  return s;
}

/** An image store as an agent reaches it (the same root the server sees, as for templates). */
export async function storeLocation(store: ImageStoreRow): Promise<StorageLocation> {
  return {
    uuid: store.uuid,
    type: store.protocol === 'nfs' ? 'NetworkFilesystem' : 'Filesystem',
    path: await storeRoot(store),
  };
}
