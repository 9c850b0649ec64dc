/** Pieces of EC2 answers and requests shared by the resource families: tags and times. */
import type { Tag } from './action.ts';
import { itemSet } from './xml.ts';

/** A CloudStack `tags` array as EC2 tags. */
export function tagsOf(obj: { tags?: { key: string; value: string }[] }): Tag[] {
  return (obj.tags ?? []).map((t) => ({ key: t.key, value: t.value }));
}

export function tagSet(tags: Tag[]): object | string {
  return itemSet(tags.map((t) => ({ key: t.key, value: t.value ?? '' })));
}

/** CloudStack's `2026-12-06T07:45:08+0000` as EC2's ISO 8601 `2026-12-06T07:45:08.000Z`. */
export function isoTime(csDate: string | undefined): string | undefined {
  if (!csDate) return undefined;
  const at = Date.parse(csDate.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isNaN(at) ? undefined : new Date(at).toISOString();
}

/** The CloudStack tags map of EC2 tags: tags[0].key=…, tags[0].value=… */
export function tagsParam(tags: Tag[]): Record<string, Record<string, string>> {
  return Object.fromEntries(tags.map((t, i) => [String(i), { key: t.key, value: t.value ?? '' }]));
}
