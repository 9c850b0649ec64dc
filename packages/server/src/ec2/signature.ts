/**
 * AWS request signatures as EC2 checks them: Signature Version 4 (the Authorization header that
 * the AWS CLI and the SDKs send) and Version 2 (`SignatureMethod=HmacSHA256` or `HmacSHA1` with
 * `Signature` among the parameters, still sent by older tools). Pure functions of the request and
 * the secret, so signing vectors test them directly (test/ec2-signature.test.ts).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface SignedRequest {
  method: string;
  /** The request path as sent, without the query string. */
  path: string;
  /** The raw query string (without `?`). */
  query: string;
  /** Header names in lower case (Node's form). */
  headers: Record<string, string | string[] | undefined>;
  /** The raw body ('' when none). */
  body: string;
}

/** RFC 3986 percent-encoding: everything but A-Z a-z 0-9 - _ . ~ */
export function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const sha256Hex = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const hmac = (key: string | Buffer, s: string) => createHmac('sha256', key).update(s).digest();

/** Query pairs as sent (URLSearchParams decodes `+` and %XX as form encoding does). */
export function queryPairs(query: string): [string, string][] {
  return [...new URLSearchParams(query)];
}

function canonicalQuery(pairs: [string, string][]): string {
  return pairs
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function headerValue(req: SignedRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** The parts of a Version 4 Authorization header. */
export interface V4Authorization {
  accessKey: string;
  /** The credential scope: date (YYYYMMDD), region, service, terminator. */
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

const V4_HEADER =
  /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$/;

/** The Version 4 Authorization header's parts; undefined when it is not one or is malformed. */
export function parseV4Authorization(header: string): V4Authorization | undefined {
  const m = header.match(V4_HEADER);
  if (!m) return undefined;
  const scope = m[1].split('/');
  if (scope.length !== 5) return undefined;
  const [accessKey, date, region, service, terminator] = scope;
  return {
    accessKey,
    date,
    region,
    service,
    terminator,
    signedHeaders: m[2].toLowerCase().split(';'),
    signature: m[3].toLowerCase(),
  };
}

/** The Version 4 parts a presigned request carries in its query string (X-Amz-*). */
export interface V4Query extends V4Authorization {
  amzDate: string;
  /** Seconds the signature stays valid after amzDate. */
  expires: string;
}

/**
 * The X-Amz-* parameters of a presigned (query-string) Version 4 request, or what is wrong with
 * them; undefined when the query string is not a presigned request at all.
 */
export function parseV4Query(pairs: [string, string][]): V4Query | { problem: string } | undefined {
  const q = new Map(pairs);
  if (!q.has('X-Amz-Algorithm') && !q.has('X-Amz-Signature')) return undefined;
  for (const name of [
    'X-Amz-Algorithm',
    'X-Amz-Credential',
    'X-Amz-Date',
    'X-Amz-Expires',
    'X-Amz-SignedHeaders',
    'X-Amz-Signature',
  ])
    if (!q.get(name)) return { problem: `The presigned request lacks ${name}.` };
  if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256')
    return { problem: 'X-Amz-Algorithm must be AWS4-HMAC-SHA256.' };
  const parsed = parseV4Authorization(
    `${q.get('X-Amz-Algorithm')} Credential=${q.get('X-Amz-Credential')}, SignedHeaders=${q.get('X-Amz-SignedHeaders')}, Signature=${q.get('X-Amz-Signature')}`,
  );
  if (!parsed) return { problem: 'X-Amz-Credential, X-Amz-SignedHeaders or X-Amz-Signature is malformed.' };
  return { ...parsed, amzDate: q.get('X-Amz-Date')!, expires: q.get('X-Amz-Expires')! };
}

/** Each path segment decoded then encoded again, as non-S3 services canonicalise the URI. */
function canonicalPath(path: string): string {
  if (path === '') return '/';
  return path
    .split('/')
    .map((seg) => rfc3986(decodeURIComponent(seg)))
    .join('/');
}

/** The Version 4 signature (hex) of a request for the given Authorization header and secret. */
export function v4Signature(
  req: SignedRequest,
  auth: V4Authorization,
  amzDate: string,
  secret: string,
): string {
  const headers = auth.signedHeaders
    .map((name) => `${name}:${(headerValue(req, name) ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  // Always the hash of the body received: a client's x-amz-content-sha256 header is signed like
  // any other, but trusting it would let a captured request be replayed with another body.
  const payloadHash = sha256Hex(req.body);
  const canonicalRequest = [
    req.method.toUpperCase(),
    canonicalPath(req.path),
    canonicalQuery(queryPairs(req.query)),
    headers,
    auth.signedHeaders.join(';'),
    payloadHash,
  ].join('\n');
  const scope = `${auth.date}/${auth.region}/${auth.service}/${auth.terminator}`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = [auth.date, auth.region, auth.service, auth.terminator].reduce<Buffer>(
    (k, part) => hmac(k, part),
    Buffer.from(`AWS4${secret}`),
  );
  return hmac(key, toSign).toString('hex');
}

/**
 * The Version 2 signature (base64) over all parameters but `Signature`: method, host as sent
 * (with its port), path, and the parameters sorted by name and RFC 3986-encoded.
 */
export function v2Signature(
  req: SignedRequest,
  params: [string, string][],
  secret: string,
  method: 'HmacSHA256' | 'HmacSHA1',
): string {
  const signed = params.filter(([k]) => k !== 'Signature');
  const text = [
    req.method.toUpperCase(),
    headerValue(req, 'host') ?? '',
    req.path === '' ? '/' : req.path,
    canonicalQuery(signed),
  ].join('\n');
  return createHmac(method === 'HmacSHA1' ? 'sha1' : 'sha256', secret)
    .update(text)
    .digest('base64');
}

/** Compares two signatures without leaking where they differ. */
export function sameSignature(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
