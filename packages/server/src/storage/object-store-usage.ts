/**
 * How much of a remote image store (storage/remote-stores.ts) is used, as the store itself says
 * it, refreshed every `storage.stats.interval` by the server holding the `image-store-usage` lease:
 *
 * - Swift: the container's X-Container-Bytes-Used, read with Swift's own API (a v1.0 auth request
 *   with the account, user and key, then HEAD on the container), plus that of `<container>+segments`
 *   where s3api keeps multipart uploads' parts (so manifests count too). A size exists only when the
 *   operator set a quota (X-Container-Meta-Quota-Bytes, else the account's
 *   X-Account-Meta-Quota-Bytes); without one the store has no total (`disksizetotal` absent).
 * - S3: the protocol has no "bytes used" call and no size: the used figure is the sum of the
 *   bucket's object sizes from a listing (ListObjectsV2, 1,000 keys a request), and there is no
 *   total. A bucket of millions of objects makes that listing long: it runs at most once a round.
 * - NFS exports reached in user space: the export's size and use (FSSTAT), as for NFS pools.
 *
 * listImageStores and listSwifts show the figures (`disksizeused`, `disksizetotal`); listCapacity's
 * secondary storage counts only stores with a total, as an unbounded store has no percentage.
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { App } from '../context.ts';
import type { ImageStoreRow } from '../db/schema.ts';
import { startScheduled } from '../jobs/scheduled.ts';
import { isUserSpaceNfs, measureNfsStore } from './nfs-stores.ts';
import { detailsOf, s3Client } from './object-stores.ts';
import { STORAGE_STATS_INTERVAL } from './pool-monitor.ts';
import { isRemoteStore } from './remote-stores.ts';

const TIMEOUT_MS = 15_000;

export interface StoreUsage {
  usedBytes: number;
  /** Only when the store has a size (a Swift quota). */
  totalBytes?: number;
}

const header = (r: Response, name: string): number | undefined => {
  const v = r.headers.get(name);
  return v !== null && /^\d+$/.test(v) ? Number(v) : undefined;
};

async function swiftUsage(app: App, store: ImageStoreRow): Promise<StoreUsage> {
  const d = detailsOf(store);
  if (!store.secret || !d.account || !d.username)
    throw new Error(`Swift store ${store.name} lacks its credentials`);
  const auth = await fetch(store.url, {
    headers: { 'X-Auth-User': `${d.account}:${d.username}`, 'X-Auth-Key': app.secrets.decrypt(store.secret) },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const storage = auth.headers.get('x-storage-url');
  const token = auth.headers.get('x-auth-token');
  if (!auth.ok || !storage || !token) throw new Error(`Swift authentication answered HTTP ${auth.status}`);
  const head = (url: string) =>
    fetch(url, {
      method: 'HEAD',
      headers: { 'X-Auth-Token': token },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  const base = storage.replace(/\/+$/, '');
  const container = await head(`${base}/${encodeURIComponent(d.bucket)}`);
  if (!container.ok) throw new Error(`HEAD of container ${d.bucket} answered HTTP ${container.status}`);
  let used = header(container, 'x-container-bytes-used');
  if (used === undefined) throw new Error(`container ${d.bucket} did not say how much it holds`);
  // s3api keeps the parts of multipart uploads in "<bucket>+segments" (the container itself holds
  // only their small manifests): that is the store's too.
  const segments = await head(`${base}/${encodeURIComponent(`${d.bucket}+segments`)}`);
  if (segments.ok) used += header(segments, 'x-container-bytes-used') ?? 0;
  else if (segments.status !== 404)
    throw new Error(`HEAD of container ${d.bucket}+segments answered HTTP ${segments.status}`);
  let total = header(container, 'x-container-meta-quota-bytes');
  if (total === undefined) {
    const account = await head(storage);
    if (account.ok) total = header(account, 'x-account-meta-quota-bytes');
  }
  return { usedBytes: used, ...(total !== undefined ? { totalBytes: total } : {}) };
}

async function s3Usage(app: App, store: ImageStoreRow): Promise<StoreUsage> {
  const d = detailsOf(store);
  if (!store.secret) throw new Error(`S3 store ${store.name} has no secret key`);
  const s3 = s3Client(d, app.secrets.decrypt(store.secret));
  try {
    let used = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: d.bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) used += Number(o.Size ?? 0);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { usedBytes: used };
  } finally {
    s3.destroy();
  }
}

/** What the object store says it holds (and its size, when it has one). */
export function measureObjectStore(app: App, store: ImageStoreRow): Promise<StoreUsage> {
  return store.provider === 'Swift' ? swiftUsage(app, store) : s3Usage(app, store);
}

/** Measures every remote store and records the figures; a store that does not answer keeps its last ones. */
export async function refreshObjectStoreUsage(app: App): Promise<number> {
  const stores = (
    await app.store.db.selectFrom('image_stores').selectAll().where('removed', 'is', null).execute()
  ).filter(isRemoteStore);
  let measured = 0;
  for (const store of stores) {
    try {
      const u = isUserSpaceNfs(store) ? await measureNfsStore(store) : await measureObjectStore(app, store);
      await app.store.db
        .updateTable('image_stores')
        .set({ used_bytes: u.usedBytes, capacity_bytes: u.totalBytes ?? null })
        .where('id', '=', store.id)
        .execute();
      measured++;
    } catch (err) {
      app.log.warn({ store: store.name, err: (err as Error).message }, 'could not measure an image store');
    }
  }
  return measured;
}

/**
 * Runs on the server holding the `image-store-usage` lease. The lease ticks at least every 5 s so
 * that a shorter interval set meanwhile applies soon; the stores are measured once it has passed.
 */
export function startObjectStoreUsage(app: App): () => void {
  let last = 0;
  return startScheduled(app, {
    name: 'image-store-usage',
    everyMs: () => Math.min(5_000, app.settings.get(STORAGE_STATS_INTERVAL)),
    run: async () => {
      if (app.clock.now() - last < app.settings.get(STORAGE_STATS_INTERVAL)) return;
      last = app.clock.now();
      await refreshObjectStoreUsage(app);
    },
  });
}
