/**
 * Upstream's commands dedicated to object-store secondary storage: addImageStoreS3 and addSwift
 * (region-wide stores: they serve every zone), and updateCloudToUseObjectStore, which makes an
 * object store where new templates, ISOs and snapshots go and turns the NFS and local stores
 * read-only (they keep serving what they hold; migrateSecondaryStorageData moves it); listSwifts,
 * the Swift stores (upstream's listS3s is gone from its API: listImageStores provider=S3 lists them).
 */
import { invalidParameter } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { likeOp } from './common.ts';
import { migrateSecondaryStorageData } from './image-store-migration.ts';
import { insertObjectStore, presentImageStores } from './image-stores.ts';
import { parseObjectStore, s3Settings, swiftSettings } from './object-store-settings.ts';

export const addImageStoreS3 = defineCommand({
  name: 'addImageStoreS3',
  description:
    'Adds an S3 bucket as secondary storage for every zone (made when it does not exist); templates, ISOs and snapshot backups go there, extract links are signed by it.',
  params: {
    accesskey: p.string({ required: true, description: 'Access key of the S3 account.' }),
    secretkey: p.string({ required: true, description: 'Secret key of the S3 account; stored encrypted.' }),
    bucket: p.string({
      required: true,
      description: 'Bucket to keep the files in; made if it does not exist.',
    }),
    endpoint: p.string({
      required: true,
      description: 'The S3 server: host[:port] (http or https by usehttps) or a full http(s) URL.',
    }),
    usehttps: p.boolean({ description: 'Reach a host[:port] endpoint over https (default http).' }),
    connectiontimeout: p.integer({ description: 'Accepted and ignored: the client keeps its own timeouts.' }),
    connectionttl: p.integer({ description: 'Accepted and ignored.' }),
    maxerrorretry: p.integer({ description: 'Accepted and ignored: failed requests are tried three times.' }),
    sockettimeout: p.integer({ description: 'Accepted and ignored.' }),
    usetcpkeepalive: p.boolean({ description: 'Accepted and ignored.' }),
    s3signer: p.string({
      description: 'Accepted and ignored: requests are signed with Signature Version 4.',
    }),
  },
  async handler(ctx, params) {
    const row = await insertObjectStore(ctx, () => s3Settings(params), { zoneId: null });
    return (await presentImageStores(ctx, [row]))[0];
  },
});

export const addSwift = defineCommand({
  name: 'addSwift',
  description:
    "Adds an OpenStack Swift account as secondary storage for every zone, in a container of its own, reached through Swift's S3 layer (s3api) with the tempauth account, user and key.",
  params: {
    url: p.string({
      required: true,
      description: 'The Swift v1.0 auth URL, http(s)://proxy[:port]/auth/v1.0.',
    }),
    account: p.string({ description: 'The Swift account (tempauth); required.' }),
    username: p.string({ description: 'The user within the account; required.' }),
    key: p.string({ description: "The user's key; required, stored encrypted." }),
  },
  async handler(ctx, params) {
    const row = await insertObjectStore(ctx, (uuid) => swiftSettings(params, `nimbostack-${uuid}`), {
      zoneId: null,
    });
    return (await presentImageStores(ctx, [row]))[0];
  },
});

export const updateCloudToUseObjectStore = defineCommand({
  name: 'updateCloudToUseObjectStore',
  description:
    'Moves the cloud to an object store: adds the S3 or Swift store for every zone and makes every NFS and local image store read-only, so new templates, ISOs and snapshots go to the object store while the old stores keep serving what they hold.',
  params: {
    name: p.string({ description: 'Name of the new store, unique; defaults to its URL.' }),
    provider: p.string({ required: true, description: 'S3 or Swift.' }),
    url: p.string({
      length: 2048,
      description: 'Swift: the v1.0 auth URL. S3: the endpoint, unless details give it.',
    }),
    details: p.map({
      description:
        'As addImageStore takes them: S3 accesskey, secretkey, bucket, endpoint, usehttps, region; Swift account, username, key, container.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const provider = (['S3', 'Swift'] as const).find(
      (v) => v.toLowerCase() === params.provider.trim().toLowerCase(),
    );
    if (!provider)
      throw invalidParameter(`Unsupported object store provider ${params.provider}; use S3 or Swift`);
    const row = await insertObjectStore(
      ctx,
      (uuid) => parseObjectStore(provider, params.url, params.details, `nimbostack-${uuid}`),
      { name: params.name, zoneId: null },
    );
    await app.store.db
      .updateTable('image_stores')
      .set({ readonly: 1 })
      .where('removed', 'is', null)
      .where('provider', '=', 'NFS')
      .execute();
    return (await presentImageStores(ctx, [row]))[0];
  },
});

// Upstream's id here is the store's internal number, which no response shows: not taken.
export const listSwifts = defineCommand({
  name: 'listSwifts',
  description:
    'Lists the Swift image stores (of every zone, and region-wide ones), as listImageStores shows them; keyword matches names.',
  params: { ...listParams },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db
      .selectFrom('image_stores')
      .where('removed', 'is', null)
      .where('provider', '=', 'Swift');
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('id'), pageOf(app, params)).execute();
    return listResult(await presentImageStores(ctx, rows), Number(count));
  },
});

export const objectImageStoreCommands = [
  addImageStoreS3,
  addSwift,
  listSwifts,
  updateCloudToUseObjectStore,
  migrateSecondaryStorageData,
];
