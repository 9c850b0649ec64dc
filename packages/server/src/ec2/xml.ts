/**
 * EC2's XML: `<{Action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` with the
 * requestId first, lists as `<fooSet><item>…</item></fooSet>`, and the error document
 * `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
 * Rendered with fast-xml-parser's builder (already the CloudStack XML renderer's).
 */
import { XMLBuilder } from 'fast-xml-parser';
import type { Ec2Error } from './errors.ts';

/** The API version whose namespace responses carry (the one current AWS CLIs and SDKs send). */
export const EC2_API_VERSION = '2016-11-15';
export const EC2_NAMESPACE = `http://ec2.amazonaws.com/doc/${EC2_API_VERSION}/`;

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  suppressEmptyNode: false,
});

/** A list in EC2's form; an empty list is an empty element, as EC2 sends it. */
export function itemSet(items: object[]): object | string {
  return items.length ? { item: items } : '';
}

/** Drops undefined and null, and writes booleans as EC2 does (true/false). */
function prune(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(prune);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined && v !== null) out[k] = prune(v);
    return out;
  }
  return typeof value === 'boolean' ? String(value) : value;
}

const DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n';

export function renderResponse(action: string, requestId: string, body: Record<string, unknown>): string {
  return (
    DECLARATION +
    builder.build({
      [`${action}Response`]: { '@_xmlns': EC2_NAMESPACE, requestId, ...(prune(body) as object) },
    })
  );
}

export function renderError(err: Ec2Error, requestId: string): string {
  return (
    DECLARATION +
    builder.build({
      Response: { Errors: { Error: { Code: err.code, Message: err.message } }, RequestID: requestId },
    })
  );
}
