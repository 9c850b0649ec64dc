/**
 * HMAC-SHA1 request signatures. Clients build the signed string in slightly different ways
 * (CloudStack's Java URLEncoder, Python's quote in `cs` and libcloud, RFC 3986 in csclient, Go in
 * CloudMonkey), so we accept any of the known canonicalisations of the same parameters.
 */
import { createHmac, type KeyObject, timingSafeEqual } from 'node:crypto';

type Encoder = (s: string) => string;

/** Java's URLEncoder: unreserved are A-Z a-z 0-9 . - * _ ; space becomes + (then %20). */
const javaEncode: Encoder = (s) =>
  encodeURIComponent(s).replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
/** Python's quote(safe="*"): leaves ~ alone (cs, Ansible, CloudMonkey's Go escaping). */
const pythonEncode: Encoder = (s) =>
  encodeURIComponent(s).replace(/[!'()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
/** libcloud: quote(safe="[]*"). */
const libcloudEncode: Encoder = (s) => pythonEncode(s).replace(/%5B/gi, '[').replace(/%5D/gi, ']');
/** RFC 3986 (qs.stringify in csclient): * is escaped too. */
const rfc3986Encode: Encoder = (s) => pythonEncode(s).replace(/\*/g, '%2A');

function sign(key: KeyObject, text: string): Buffer {
  return createHmac('sha1', key).update(text.toLowerCase()).digest();
}

const byName = (a: [string, string], b: [string, string]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
const byLowerName = (a: [string, string], b: [string, string]) =>
  byName([a[0].toLowerCase(), ''], [b[0].toLowerCase(), '']);

/** The candidate strings-to-sign, most common first. */
function* canonicalForms(params: [string, string][]): Generator<string> {
  const produced = new Set<string>();
  const forms: [(a: [string, string], b: [string, string]) => number, Encoder, Encoder][] = [
    [byName, (k) => k, javaEncode],
    [byName, (k) => k, pythonEncode],
    [byLowerName, libcloudEncode, libcloudEncode],
  ];
  for (const [order, encodeKey, encodeValue] of forms) {
    const text = [...params]
      .sort(order)
      .map(([k, v]) => `${encodeKey(k)}=${encodeValue(v)}`)
      .join('&')
      .replace(/\+/g, '%20');
    if (!produced.has(text)) {
      produced.add(text);
      yield text;
    }
  }
  // csclient sorts the encoded "k=v" pair strings themselves.
  const pairs = params.map(([k, v]) => `${rfc3986Encode(k)}=${rfc3986Encode(v)}`).sort();
  const text = pairs.join('&');
  if (!produced.has(text)) yield text;
}

/** True when `signature` (base64) signs `params` (all request parameters but `signature`) with the secret `key`. */
export function verifySignature(params: [string, string][], signature: string, key: KeyObject): boolean {
  const given = Buffer.from(signature.replace(/ /g, '+'), 'base64');
  if (given.length !== 20) return false;
  for (const text of canonicalForms(params)) {
    if (timingSafeEqual(sign(key, text), given)) return true;
  }
  return false;
}
