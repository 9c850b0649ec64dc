/**
 * The settings of an S3 or Swift image store, as addImageStore (details map), addImageStoreS3,
 * addSwift and updateCloudToUseObjectStore give them: checked (431 for what is missing or
 * malformed), then the bucket is reached with them, and made when it does not exist yet (530 with
 * the store's answer when that fails), so that no store is recorded that cannot be used.
 */
import { internalError, invalidParameter } from '../errors.ts';
import { type ObjectStoreDetails, openBucket, s3Reason } from '../storage/object-stores.ts';

export interface ObjectStoreSettings {
  provider: 'S3' | 'Swift';
  /** What listImageStores shows as url: the endpoint and bucket, or the Swift auth URL. */
  url: string;
  protocol: 'http' | 'https';
  details: ObjectStoreDetails;
  secretKey: string;
}

export interface S3Fields {
  accesskey?: string;
  secretkey?: string;
  bucket?: string;
  endpoint?: string;
  usehttps?: boolean | string;
  region?: string;
}

export interface SwiftFields {
  url?: string;
  account?: string;
  username?: string;
  key?: string;
  container?: string;
}

/** A details map (details[0].key=k&details[0].value=v, or details[0].k=v) as one object. */
export function flattenDetails(details: Record<string, string>[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of details ?? []) {
    if (typeof d.key === 'string' && typeof d.value === 'string') out[d.key.toLowerCase()] = d.value;
    else for (const [k, v] of Object.entries(d)) out[k.toLowerCase()] = v;
  }
  return out;
}

function required(value: string | undefined, name: string, provider: string): string {
  const v = value?.trim();
  if (!v) throw invalidParameter(`An ${provider} image store needs ${name}`);
  return v;
}

/** Bucket names as S3 allows them (3-63 lower-case letters, digits, dots and hyphens). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

function endpointUrl(endpoint: string, useHttps: boolean): URL {
  const text = /^[a-z]+:\/\//i.test(endpoint) ? endpoint : `${useHttps ? 'https' : 'http'}://${endpoint}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidParameter(`Invalid object store endpoint ${endpoint}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw invalidParameter(`Invalid object store endpoint ${endpoint}: use http or https`);
  return url;
}

function truthy(v: boolean | string | undefined): boolean {
  return v === true || (typeof v === 'string' && v.trim().toLowerCase() === 'true');
}

export function s3Settings(f: S3Fields): UncheckedSettings {
  const accessKey = required(f.accesskey, 'accesskey', 'S3');
  const secretKey = required(f.secretkey, 'secretkey', 'S3');
  const bucket = required(f.bucket, 'bucket', 'S3');
  if (!BUCKET.test(bucket))
    throw invalidParameter(
      `Invalid bucket name ${bucket}: 3 to 63 lower-case letters, digits, dots or hyphens`,
    );
  const url = endpointUrl(required(f.endpoint, 'endpoint', 'S3'), truthy(f.usehttps));
  const endpoint = url.origin;
  return {
    provider: 'S3',
    url: `${endpoint}/${bucket}`,
    protocol: url.protocol === 'https:' ? 'https' : 'http',
    details: { endpoint, bucket, region: f.region?.trim() || 'us-east-1', accessKey },
    secretKey,
  };
}

export function swiftSettings(f: SwiftFields, defaultContainer: string): UncheckedSettings {
  const auth = endpointUrl(required(f.url, 'url (its auth URL)', 'Swift'), false);
  const account = required(f.account, 'account', 'Swift');
  const username = required(f.username, 'username', 'Swift');
  const key = required(f.key, 'key', 'Swift');
  const container = f.container?.trim() || defaultContainer;
  if (!BUCKET.test(container))
    throw invalidParameter(
      `Invalid container name ${container}: 3 to 63 lower-case letters, digits, dots or hyphens`,
    );
  return {
    provider: 'Swift',
    url: auth.href,
    protocol: auth.protocol === 'https:' ? 'https' : 'http',
    // tempauth's S3 credentials are account:user and the user's key.
    details: {
      endpoint: auth.origin,
      bucket: container,
      region: 'us-east-1',
      accessKey: `${account}:${username}`,
      account,
      username,
    },
    secretKey: key,
  };
}

export type UncheckedSettings = Omit<ObjectStoreSettings, 'details'> & {
  details: Omit<ObjectStoreDetails, 'createdBucket'>;
};

/** Checks addImageStore's url and details for an S3 or Swift store (431 for what is wrong). */
export function parseObjectStore(
  provider: 'S3' | 'Swift',
  url: string | undefined,
  details: Record<string, string>[] | undefined,
  defaultContainer: string,
): UncheckedSettings {
  const d = flattenDetails(details);
  return provider === 'S3'
    ? s3Settings({ ...d, endpoint: d.endpoint ?? url })
    : swiftSettings({ ...d, url: url ?? d.url }, defaultContainer);
}

/** Reaches the bucket with the settings, making it when absent; 530 with the store's answer. */
export async function reach(base: UncheckedSettings): Promise<ObjectStoreSettings> {
  let createdBucket: boolean;
  try {
    createdBucket = await openBucket({ ...base.details, createdBucket: false }, base.secretKey);
  } catch (e) {
    throw internalError(
      `Unable to reach bucket ${base.details.bucket} at ${base.details.endpoint}: ${s3Reason(e)}`,
    );
  }
  return { ...base, details: { ...base.details, createdBucket } };
}
