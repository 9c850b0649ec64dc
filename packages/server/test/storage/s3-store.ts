/**
 * An S3 image store for the storage suites' zone, on the Swift all-in-one's s3api (swift.ts):
 * added through the API (addImageStore provider=S3), so that snapshot backups go to its bucket
 * (object stores come first among a zone's stores), with a listing of the bucket for checks, and
 * removed as an operator would: the built-in template every zonal store is given moved home to
 * the zone's NFS store, the store deleted, and no object or bucket left in the Swift account.
 */
import assert from 'node:assert/strict';
import { HeadBucketCommand, ListBucketsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { s3Client } from '../../src/storage/object-stores.ts';
import type { TestServer } from '../harness.ts';
import { SWIFT_ACCOUNT, SWIFT_KEY, SWIFT_USER, type Swift } from './swift.ts';

export interface ZoneS3Store {
  id: string;
  bucket: string;
  /** The keys in the bucket now. */
  objects(): Promise<string[]>;
  /** Empties and deletes the store; asserts that no object or bucket is left. */
  remove(): Promise<void>;
}

/** addImageStore's details as key/value pairs. */
const details = (d: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(d).flatMap(([k, v], i) => [
      [`details[${i}].key`, k],
      [`details[${i}].value`, v],
    ]),
  );

export async function addS3Store(
  admin: TestServer['admin'],
  sw: Swift,
  zoneid: string,
  bucket: string,
): Promise<ZoneS3Store> {
  const accessKey = `${SWIFT_ACCOUNT}:${SWIFT_USER}`;
  const s3 = s3Client(
    { endpoint: sw.endpoint, bucket: '', region: 'us-east-1', accessKey, createdBucket: false },
    SWIFT_KEY,
  );
  const objects = async () =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!);
  const store = (
    await admin.request<any>('addImageStore', {
      provider: 'S3',
      name: `s3-${bucket}`,
      zoneid,
      ...details({ accesskey: accessKey, secretkey: SWIFT_KEY, bucket, endpoint: sw.endpoint }),
    })
  ).imagestore;
  return {
    id: store.id,
    bucket,
    objects,
    async remove() {
      try {
        const home = (await admin.request<any>('listImageStores', { provider: 'NFS' })).imagestore[0];
        await admin.call('migrateSecondaryStorageData', { srcpool: store.id, destpools: home.id });
        assert.deepEqual(await objects(), [], 'no object left in the bucket');
        await admin.request('deleteImageStore', { id: store.id });
        const gone = await s3.send(new HeadBucketCommand({ Bucket: bucket })).then(
          () => false,
          (e) => e.$metadata?.httpStatusCode === 404,
        );
        assert.ok(gone, 'no bucket left (and so no object)');
        const buckets = (await s3.send(new ListBucketsCommand({}))).Buckets ?? [];
        assert.deepEqual(
          buckets.map((b) => b.Name),
          [],
          'no bucket left in the Swift account',
        );
      } finally {
        s3.destroy();
      }
    },
  };
}
