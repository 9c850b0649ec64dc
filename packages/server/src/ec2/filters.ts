/**
 * EC2 filters and pagination over the objects a Describe action found. Filters: an object matches
 * when, for every filter name, one of its values matches one of the filter's values (`*` and `?`
 * are wildcards, as in EC2); `tag:Key` matches a tag's value by key, `tag-key` and `tag-value`
 * any tag's key or value. An unknown filter name is an error, as in EC2.
 * Pages: MaxResults objects at most, in a stable order; NextToken carries the last one's key.
 */

import type { Filters, Tag } from './action.ts';
import { Ec2Error } from './errors.ts';

/** Filter name → the object's values for it. */
export type FilterTable<T> = Record<string, (item: T) => (string | undefined)[]>;

function glob(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 's');
}

export function applyFilters<T>(
  items: T[],
  filters: Filters | undefined,
  table: FilterTable<T>,
  tagsOf?: (item: T) => Tag[],
): T[] {
  return filters ? items.filter(matcher(filters, table, tagsOf)) : items;
}

/** Whether an object passes the filters; an unknown filter name is refused here, at once. */
export function matcher<T>(
  filters: Filters | undefined,
  table: FilterTable<T>,
  tagsOf?: (item: T) => Tag[],
): (item: T) => boolean {
  if (!filters) return () => true;
  const checks: ((item: T) => boolean)[] = [];
  for (const [name, values] of filters) {
    const patterns = values.map(glob);
    const any = (candidates: (string | undefined)[]) =>
      candidates.some((c) => c !== undefined && patterns.some((p) => p.test(c)));
    if (tagsOf && name.startsWith('tag:')) {
      const key = name.slice(4);
      checks.push((item) =>
        any(
          tagsOf(item)
            .filter((t) => t.key === key)
            .map((t) => t.value ?? ''),
        ),
      );
    } else if (tagsOf && name === 'tag-key') {
      checks.push((item) => any(tagsOf(item).map((t) => t.key)));
    } else if (tagsOf && name === 'tag-value') {
      checks.push((item) => any(tagsOf(item).map((t) => t.value ?? '')));
    } else if (table[name]) {
      const field = table[name];
      checks.push((item) => any(field(item)));
    } else {
      throw new Ec2Error('InvalidParameterValue', `The filter '${name}' is invalid`);
    }
  }
  return (item) => checks.every((check) => check(item));
}

/**
 * A filter's values when CloudStack can match them as they are (no wildcard), for the list
 * commands' own parameters; undefined when the filter is absent or has a wildcard. What is sent
 * to CloudStack only narrows what is read: applyFilters still decides, so results stay exact.
 */
export function exactValues(filters: Filters | undefined, name: string): string[] | undefined {
  const values = filters?.get(name);
  if (!values?.length || values.some((v) => /[*?]/.test(v))) return undefined;
  return values;
}

/** The filter's value when it has exactly one, without wildcards. */
export function exactValue(filters: Filters | undefined, name: string): string | undefined {
  const values = exactValues(filters, name);
  return values?.length === 1 ? values[0] : undefined;
}

/** CloudStack's `tags` parameter for the tag:Key filters with one exact value (all must match, as in EC2). */
export function tagParams(filters: Filters | undefined): Record<string, Record<string, string>> | undefined {
  const tags: Record<string, Record<string, string>> = {};
  for (const [name] of filters ?? []) {
    const value = name.startsWith('tag:') ? exactValue(filters, name) : undefined;
    if (value !== undefined) tags[String(Object.keys(tags).length)] = { key: name.slice(4), value };
  }
  return Object.keys(tags).length ? tags : undefined;
}

/**
 * One page of `items`, ordered by `keyOf` (a key that sorts in creation order and is unique),
 * after the key NextToken carries (base64url). Keys, not offsets: a page stays right when objects
 * before it were deleted meanwhile.
 */
export function paginate<T>(
  items: T[],
  keyOf: (item: T) => string,
  maxResults: number | undefined,
  nextToken: string | undefined,
): { page: T[]; nextToken?: string } {
  const sorted = [...items].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
  let start = 0;
  if (nextToken !== undefined) {
    const after = Buffer.from(nextToken, 'base64url').toString('utf8');
    if (!after || Buffer.from(after).toString('base64url') !== nextToken)
      throw new Ec2Error('InvalidParameterValue', `The NextToken '${nextToken}' is invalid.`);
    start = sorted.findIndex((item) => keyOf(item) > after);
    if (start < 0) start = sorted.length;
  }
  if (maxResults === undefined) return { page: sorted.slice(start) };
  const page = sorted.slice(start, start + maxResults);
  const more = start + maxResults < sorted.length;
  return {
    page,
    nextToken: more ? Buffer.from(keyOf(page[page.length - 1])).toString('base64url') : undefined,
  };
}
