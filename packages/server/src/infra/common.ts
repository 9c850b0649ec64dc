/**
 * Lookups and checks shared by the inventory commands: finding live zones, pods, clusters and
 * pools by uuid (431 when absent, as upstream), allocation states, and IPv4 arithmetic.
 */
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { ClusterRow, ImageStoreRow, PodRow, StoragePoolRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';

export const ALLOCATION_STATES = ['Enabled', 'Disabled'] as const;

/** CloudStack matches allocation states case-insensitively and answers in its own spelling. */
export function allocationState(value: string | undefined, name = 'allocationstate'): string | undefined {
  if (value === undefined) return undefined;
  const found = ALLOCATION_STATES.find((s) => s.toLowerCase() === value.trim().toLowerCase());
  if (!found) throw invalidParameter(`Invalid value for ${name}: ${value}; use Enabled or Disabled`);
  return found;
}

/** `checked`: the row the entity check read for this uuid (removed or not), instead of reading it again. */
export async function findZone(
  ctx: CallContext,
  uuid: string,
  tx: Tx = ctx.app.store.db,
  checked?: ZoneRow,
): Promise<ZoneRow> {
  const zone = checked
    ? checked.removed === null
      ? checked
      : undefined
    : await tx
        .selectFrom('zones')
        .selectAll()
        .where('uuid', '=', uuid)
        .where('removed', 'is', null)
        .executeTakeFirst();
  if (!zone) throw invalidParameter(`Unable to find zone by id ${uuid}`);
  return zone;
}

export async function findPod(ctx: CallContext, uuid: string, tx: Tx = ctx.app.store.db): Promise<PodRow> {
  const pod = await tx
    .selectFrom('pods')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!pod) throw invalidParameter(`Unable to find pod by id ${uuid}`);
  return pod;
}

export async function findCluster(
  ctx: CallContext,
  uuid: string,
  tx: Tx = ctx.app.store.db,
): Promise<ClusterRow> {
  const cluster = await tx
    .selectFrom('clusters')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!cluster) throw invalidParameter(`Unable to find cluster by id ${uuid}`);
  return cluster;
}

export async function findStoragePool(
  ctx: CallContext,
  uuid: string,
  tx: Tx = ctx.app.store.db,
): Promise<StoragePoolRow> {
  const pool = await tx
    .selectFrom('storage_pools')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!pool) throw invalidParameter(`Unable to find storage pool by id ${uuid}`);
  return pool;
}

export async function findImageStore(
  ctx: CallContext,
  uuid: string,
  tx: Tx = ctx.app.store.db,
): Promise<ImageStoreRow> {
  const store = await tx
    .selectFrom('image_stores')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!store) throw invalidParameter(`Unable to find image store by id ${uuid}`);
  return store;
}

/** Names by integer id, for presenters that show zonename/podname/clustername, vpcname, aclname… */
export async function namesOf(
  ctx: CallContext,
  table: 'zones' | 'pods' | 'clusters' | 'physical_networks' | 'vpcs' | 'network_acl_lists',
  ids: (number | null)[],
): Promise<Map<number, { uuid: string; name: string }>> {
  const wanted = [...new Set(ids.filter((x): x is number => x !== null))];
  if (wanted.length === 0) return new Map();
  const rows = await ctx.app.store.db
    .selectFrom(table)
    .select(['id', 'uuid', 'name'])
    .where('id', 'in', wanted)
    .execute();
  return new Map(rows.map((r) => [r.id, { uuid: r.uuid, name: r.name }]));
}

export function likeOp(ctx: CallContext): 'like' | 'ilike' {
  return ctx.app.store.dialect === 'postgres' ? 'ilike' : 'like';
}

/** Comma-separated tags as stored: trimmed, de-duplicated, empty when none. */
export function normalizeTags(text: string | string[] | undefined | null): string | null {
  if (text === undefined || text === null) return null;
  const items = (Array.isArray(text) ? text : text.split(',')).map((t) => t.trim()).filter((t) => t !== '');
  return items.length ? [...new Set(items)].join(',') : null;
}

// IPv4 helpers: pods hold one management subnet, so ranges are compared as 32-bit integers.

const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIpv4(text: string): boolean {
  return IPV4_RE.test(text);
}

export function ipv4ToInt(text: string): number {
  return text.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** The prefix length of a dotted netmask, or undefined when the bits are not contiguous. */
export function netmaskBits(netmask: string): number | undefined {
  if (!isIpv4(netmask)) return undefined;
  const n = ipv4ToInt(netmask);
  for (let bits = 0; bits <= 32; bits++) {
    const mask = bits === 0 ? 0 : (2 ** 32 - 2 ** (32 - bits)) >>> 0;
    if (mask === n) return bits;
  }
  return undefined;
}

/** The first and last address of the subnet of `ip` under `netmask`. */
export function subnetBounds(ip: string, netmask: string): { first: number; last: number } {
  const bits = netmaskBits(netmask) ?? 32;
  const size = 2 ** (32 - bits);
  const first = Math.floor(ipv4ToInt(ip) / size) * size;
  return { first, last: first + size - 1 };
}

export function requireIpv4(value: string, name: string): string {
  const v = value.trim();
  if (!isIpv4(v)) throw invalidParameter(`Please specify a valid IPv4 address for ${name}: ${value}`);
  return v;
}

export function requireNetmask(value: string): string {
  const v = value.trim();
  if (netmaskBits(v) === undefined) throw invalidParameter(`Please specify a valid netmask: ${value}`);
  return v;
}
