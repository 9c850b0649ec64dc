/**
 * CloudStack request signing: sort the parameters by name, encode values as Java's URLEncoder
 * does (space as %20, * kept, ~ ! ' ( ) escaped), lower-case the whole string, HMAC-SHA1 it with
 * the secret key and Base64 the digest.
 */
import { createHmac } from 'node:crypto';

export function javaUrlEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()~]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export function signParams(params: Record<string, string>, secretKey: string): string {
  const text = Object.keys(params)
    .sort()
    .map((k) => `${k}=${javaUrlEncode(params[k])}`)
    .join('&')
    .toLowerCase();
  return createHmac('sha1', secretKey).update(text).digest('base64');
}

/** CloudStack's date format for `expires`: yyyy-MM-ddTHH:mm:ss+0000. */
export function apiDate(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}+0000`;
}
