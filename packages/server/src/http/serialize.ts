/**
 * CloudStack response envelopes in JSON and XML: lists with a total count (and `{}` when empty),
 * single objects under their object name, inline objects, and error bodies.
 */
import { XMLBuilder } from 'fast-xml-parser';
import type { ApiError } from '../errors.ts';

export type ResponseFormat = 'json' | 'xml';

export const API_VERSION = '4.22.0.0';

export const CONTENT_TYPE: Record<ResponseFormat, string> = {
  json: 'application/json; charset=UTF-8',
  xml: 'text/xml; charset=UTF-8',
};

const xml = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', suppressEmptyNode: false });

/** Drops undefined and null fields, as Gson does upstream (the XML path; JSON uses `dropNulls`). */
function prune(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(prune);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v !== undefined && v !== null) out[k] = prune(v);
    }
    return out;
  }
  return value;
}

function dropNulls(_key: string, value: unknown): unknown {
  return value === null ? undefined : value;
}

export function listBody(count: number, objectName: string, items: object[]): Record<string, unknown> {
  if (count === 0) return {};
  if (items.length === 0) return { count };
  return { count, [objectName]: items };
}

export function render(
  format: ResponseFormat,
  responseName: string,
  body: object,
  withVersion: boolean,
): string {
  // JSON: one pass. JSON.stringify already omits undefined fields; the replacer drops null ones,
  // which is what prune() did by copying the whole tree first (a page of 500 VMs is ~30,000
  // values, so the copy cost more than the stringify). Inside arrays both ways write `null`.
  if (format === 'json') return JSON.stringify({ [responseName]: body }, dropNulls);
  const clean = prune(body) as Record<string, unknown>;
  const root: Record<string, unknown> = { ...clean };
  if (withVersion) root['@_cloud-stack-version'] = API_VERSION;
  return `<?xml version="1.0" encoding="UTF-8"?>${xml.build({ [responseName]: root })}`;
}

export function errorBody(err: ApiError): Record<string, unknown> {
  return {
    uuidList: err.uuidList,
    errorcode: err.errorcode,
    cserrorcode: err.cserrorcode,
    errortext: err.message,
  };
}
