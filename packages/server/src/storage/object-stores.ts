/**
 * Object-store image stores (S3 and Swift): how the management server reaches a store's bucket,
 * puts files into it, gets them back and signs time-limited download links.
 *
 * One client for both providers: the AWS SDK v3 (`@aws-sdk/client-s3`, `lib-storage` for
 * multipart uploads, `s3-request-presigner` for links). A Swift store is reached through Swift's
 * own S3 layer (the s3api middleware, part of Swift since 2.18): its account:user and key are
 * the S3 access and secret keys under tempauth, and no maintained Node Swift client exists.
 * A Swift cluster without s3api (or with Keystone, which needs EC2 credentials) cannot be used.
 *
 * Agents never talk to object stores: the server stages files for them (storage/remote-stores.ts,
 * which calls these functions for S3 and Swift stores).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { App } from '../context.ts';
import type { ImageStoreRow } from '../db/schema.ts';

export const OBJECT_PROVIDERS = ['S3', 'Swift'] as const;

/** What an object store's `details` column holds (never the secret). */
export interface ObjectStoreDetails {
  /** http(s)://host[:port] of the S3 API (for Swift: the proxy, where s3api answers). */
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  /** True when Nimbostack created the bucket: deleteImageStore then removes it once empty. */
  createdBucket: boolean;
  /** Swift stores: the account and user the access key is made of. */
  account?: string;
  username?: string;
}

/** Parts of 16 MiB (S3 allows 10,000 parts: 156 GiB, above max.template.iso.size's default). */
const PART_SIZE = 16 * 1024 * 1024;

export function isObjectStore(store: Pick<ImageStoreRow, 'provider'>): boolean {
  return (OBJECT_PROVIDERS as readonly string[]).includes(store.provider);
}

export function detailsOf(store: Pick<ImageStoreRow, 'details' | 'name'>): ObjectStoreDetails {
  if (!store.details) throw new Error(`Image store ${store.name} has no object store settings`);
  return JSON.parse(store.details) as ObjectStoreDetails;
}

/** An S3 client for the given settings; the caller destroys it. */
export function s3Client(details: ObjectStoreDetails, secretKey: string): S3Client {
  // The SDK warns on stderr, at the first client, that its releases after January 2027 need Node
  // 22. The release we run is pinned by package-lock.json; docs/storage.md carries the notice.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    endpoint: details.endpoint,
    region: details.region,
    // Path-style addressing: other S3 servers (Swift, Ceph) have no bucket DNS names.
    forcePathStyle: true,
    credentials: { accessKeyId: details.accessKey, secretAccessKey: secretKey },
    // Only what every S3 server understands: the newer flexible checksums are not universal.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  });
}

function clientFor(app: App, store: ImageStoreRow): { s3: S3Client; bucket: string } {
  const details = detailsOf(store);
  if (!store.secret) throw new Error(`Image store ${store.name} has no secret key`);
  return { s3: s3Client(details, app.secrets.decrypt(store.secret)), bucket: details.bucket };
}

/** An S3 error in words (the SDK's own messages are often empty for non-AWS servers). */
export function s3Reason(e: unknown): string {
  if (e instanceof S3ServiceException) {
    const status = e.$metadata.httpStatusCode;
    return `${e.name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== 'UnknownError' ? `: ${e.message}` : ''}`;
  }
  const cause = (e as { cause?: { code?: string } }).cause;
  return cause?.code ?? (e instanceof Error ? e.message : String(e));
}

/**
 * Checks that the credentials reach the bucket, creating it when it does not exist. Returns
 * whether it was created. Throws with the reason otherwise.
 */
export async function openBucket(details: ObjectStoreDetails, secretKey: string): Promise<boolean> {
  const s3 = s3Client(details, secretKey);
  try {
    try {
      await s3.send(new HeadBucketCommand({ Bucket: details.bucket }));
      return false;
    } catch (e) {
      if (!(e instanceof S3ServiceException) || e.$metadata.httpStatusCode !== 404) throw e;
    }
    await s3.send(new CreateBucketCommand({ Bucket: details.bucket }));
    return true;
  } finally {
    s3.destroy();
  }
}

/** Removes an empty bucket (one made for a store that could not be recorded). */
export async function dropBucket(details: ObjectStoreDetails, secretKey: string): Promise<void> {
  const s3 = s3Client(details, secretKey);
  try {
    await s3.send(new DeleteBucketCommand({ Bucket: details.bucket }));
  } finally {
    s3.destroy();
  }
}

/** Uploads a local file as `key` (multipart above one part), then checks the stored size. */
export async function putObject(app: App, store: ImageStoreRow, key: string, file: string): Promise<number> {
  const { s3, bucket } = clientFor(app, store);
  try {
    const size = (await stat(file)).size;
    const upload = new Upload({
      client: s3,
      params: { Bucket: bucket, Key: key, Body: createReadStream(file), ContentLength: size },
      partSize: PART_SIZE,
      queueSize: 2,
      leavePartsOnError: false,
    });
    await upload.done();
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    if (Number(head.ContentLength) !== size)
      throw new Error(`The object store kept ${head.ContentLength} of ${size} bytes of ${key}`);
    return size;
  } finally {
    s3.destroy();
  }
}

/** A stream of an object's bytes and its length. */
export async function getObject(
  app: App,
  store: ImageStoreRow,
  key: string,
): Promise<{ stream: Readable; length: number }> {
  const { s3, bucket } = clientFor(app, store);
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const stream = res.Body as Readable;
  stream.once('close', () => s3.destroy());
  return { stream, length: Number(res.ContentLength) };
}

/** The size of an object, or undefined when it does not exist. */
export async function objectSize(app: App, store: ImageStoreRow, key: string): Promise<number | undefined> {
  const { s3, bucket } = clientFor(app, store);
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return Number(head.ContentLength);
  } catch (e) {
    if (e instanceof S3ServiceException && e.$metadata.httpStatusCode === 404) return undefined;
    throw e;
  } finally {
    s3.destroy();
  }
}

/** Removes objects (missing ones are fine). */
export async function deleteObjects(app: App, store: ImageStoreRow, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  const { s3, bucket } = clientFor(app, store);
  try {
    // One request per object: multi-object delete needs Content-MD5, which not every server gets.
    for (const key of keys) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  } finally {
    s3.destroy();
  }
}

/** Every key in the store's bucket (for removing a bucket Nimbostack made). */
async function listKeys(s3: S3Client, bucket: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/**
 * When a store is deleted (nothing of ours is recorded on it any more): removes the bucket if
 * Nimbostack created it and it is empty. A bucket that still holds objects someone else put there
 * stays.
 */
export async function closeBucket(app: App, store: ImageStoreRow): Promise<void> {
  const details = detailsOf(store);
  if (details.createdBucket) {
    const { s3, bucket } = clientFor(app, store);
    try {
      if ((await listKeys(s3, bucket)).length === 0)
        await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    } finally {
      s3.destroy();
    }
  }
}

/** A link that downloads `key` straight from the object store until it expires. */
export async function signedUrl(
  app: App,
  store: ImageStoreRow,
  key: string,
  seconds: number,
  fileName: string,
): Promise<string> {
  const { s3, bucket } = clientFor(app, store);
  try {
    return await getSignedUrl(
      s3,
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        ResponseContentDisposition: `attachment; filename="${fileName}"`,
      }),
      { expiresIn: seconds },
    );
  } finally {
    s3.destroy();
  }
}
