/**
 * Turns a request's query string and form body into API parameters, the way CloudStack does:
 * names are case-insensitive (lower-cased), `+` is a space, the first of repeated names wins,
 * and `name[i].field=value` keys are grouped into maps.
 */
import { ApiError, CsErrorCode, ErrorCode } from '../errors.ts';
import type { RawValue } from '../registry/params.ts';

export interface ApiRequest {
  /** Parameters as sent (original name case), for signature checks. */
  original: [string, string][];
  /** Lower-cased name → value; map parameters as {index: {field: value}}. */
  params: Map<string, RawValue>;
}

const MAP_KEY = /^([^[\]]+)\[(\d+)\]\.([^[\]]+)$/;

export function parseApiRequest(query: string, body: string | undefined): ApiRequest {
  const original: [string, string][] = [];
  const seen = new Set<string>();
  for (const source of [query, body ?? '']) {
    for (const [name, value] of new URLSearchParams(source)) {
      if (seen.has(name)) continue; // as upstream: one value per parameter
      seen.add(name);
      original.push([name, value]);
    }
  }
  const params = new Map<string, RawValue>();
  for (const [name, value] of original) {
    if (!name.includes('[')) {
      const key = name.toLowerCase();
      if (!params.has(key)) params.set(key, value);
      continue;
    }
    const m = name.match(MAP_KEY);
    if (!m) {
      throw new ApiError(
        ErrorCode.MALFORMED_PARAMETER,
        CsErrorCode.SERVER_API,
        `Unable to decode parameter ${name}; if specifying an object array, please use parameter[index].field=XXX, e.g. userGroupList[0].group=httpGroup`,
      );
    }
    const base = m[1].toLowerCase();
    let map = params.get(base);
    if (typeof map !== 'object') {
      map = {};
      params.set(base, map);
    }
    map[m[2]] ??= {};
    map[m[2]][m[3]] = value;
  }
  return { original, params };
}

/**
 * The response format a request asks for, read without parsing it whole: a request whose
 * parameters cannot be parsed (a malformed `name[i].field` key) still gets its error in JSON when
 * it said `response=json`.
 */
export function requestedFormat(query: string, body: string | undefined): 'json' | 'xml' {
  for (const source of [query, body ?? ''])
    for (const [name, value] of new URLSearchParams(source))
      if (name.toLowerCase() === 'response') return value.toLowerCase() === 'json' ? 'json' : 'xml';
  return 'xml';
}

export function stringParam(req: ApiRequest, name: string): string | undefined {
  const v = req.params.get(name);
  return typeof v === 'string' ? v : undefined;
}
