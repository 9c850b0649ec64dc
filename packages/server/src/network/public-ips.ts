/**
 * Public IP addresses of an Advanced zone: acquiring one for an account (and a network) and
 * giving it back. Every address of a public range is a `public_ips` row made with the range;
 * acquiring is a conditional UPDATE of a Free row, so two requests can never get the same
 * address, and losing a race just means trying the next one. Each acquisition counts against
 * the account's `public_ip` limit (resource type 1), reserved in the same transaction.
 */
import type { App } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { AccountRow, PublicIpRow } from '../db/schema.ts';
import { insufficientCapacity, invalidParameter } from '../errors.ts';
import { type EventOwner, recordEvent } from '../events/events.ts';
import { ResourceKind, registerResourceCounter, reserve } from '../iam/limits.ts';
import { randomBits } from './common.ts';
import { dropVpnsOfIp } from './vpn/vpn-records.ts';

/** States in which an address belongs to an account. */
export const HELD_STATES = ['Allocating', 'Allocated'];

/** How many Free candidates one attempt looks at before reading again. */
const CANDIDATES = 16;

export interface AcquireRequest {
  zoneId: number;
  accountId: number;
  domainId: number;
  /** The network the address is associated with; null for an address held by the account only. */
  networkId: number | null;
  /** The VPC the address is associated with (networkId is then null, or the tier it serves). */
  vpcId?: number | null;
  sourceNat: boolean;
  /** A specific address; it must be Free and in a public range of the zone the account may use. */
  ipAddress?: string;
  /** Whether to show the address to its owner (updateIpAddress fordisplay); default true. */
  forDisplay?: boolean;
  /** Who the NET.IPASSIGN event is recorded for; default the account's first user. */
  eventOwner?: EventOwner;
}

/** The account's first user, for events about what the server does for the account on its own. */
async function accountEventOwner(tx: Tx, account: AccountRow): Promise<EventOwner> {
  const user = await tx
    .selectFrom('users')
    .select('id')
    .where('account_id', '=', account.id)
    .orderBy('id')
    .executeTakeFirst();
  return { userId: user?.id ?? 0, accountId: account.id, domainId: account.domain_id };
}

/**
 * The public ranges of the zone the account may take addresses from, in the order upstream
 * prefers them: dedicated to the account, dedicated to its domain, then shared. A range
 * dedicated to another account or domain is never offered.
 */
async function usableRanges(tx: Tx, zoneId: number, account: AccountRow): Promise<number[][]> {
  const ranges = await tx
    .selectFrom('vlan_ip_ranges')
    .select(['id', 'account_id', 'domain_id'])
    .where('zone_id', '=', zoneId)
    .where('for_virtual_network', '=', 1)
    .orderBy('id')
    .execute();
  const own = ranges.filter((r) => r.account_id === account.id).map((r) => r.id);
  const domain = ranges
    .filter((r) => r.account_id === null && r.domain_id === account.domain_id)
    .map((r) => r.id);
  const shared = ranges.filter((r) => r.account_id === null && r.domain_id === null).map((r) => r.id);
  return [own, domain, shared].filter((group) => group.length > 0);
}

/** Claims one Free address; false when another request took it first. */
async function claim(
  app: App,
  tx: Tx,
  id: number,
  account: AccountRow,
  req: AcquireRequest,
): Promise<boolean> {
  const r = await tx
    .updateTable('public_ips')
    .set({
      state: 'Allocated',
      account_id: account.id,
      domain_id: account.domain_id,
      network_id: req.networkId,
      vpc_id: req.vpcId ?? null,
      source_nat: req.sourceNat ? 1 : 0,
      static_nat_vm_id: null,
      static_nat_vm_ip: null,
      for_display: req.forDisplay === false ? 0 : 1,
      allocated: app.clock.now(),
    })
    .where('id', '=', id)
    .where('state', '=', 'Free')
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

async function claimSpecific(
  app: App,
  tx: Tx,
  account: AccountRow,
  req: AcquireRequest & { ipAddress: string },
  groups: number[][],
): Promise<number> {
  const row = await tx
    .selectFrom('public_ips')
    .select(['id', 'range_id', 'state'])
    .where('zone_id', '=', req.zoneId)
    .where('ip4', '=', req.ipAddress)
    .executeTakeFirst();
  const usable = new Set(groups.flat());
  if (!row || !usable.has(row.range_id))
    throw invalidParameter(
      `Unable to find a public IP range of the zone that holds ${req.ipAddress} and is usable by account ${account.name}`,
    );
  if (row.state !== 'Free' || !(await claim(app, tx, row.id, account, req)))
    throw invalidParameter(`Public IP address ${req.ipAddress} is not free: it is ${row.state}`);
  return row.id;
}

/**
 * Picks a Free address from the groups of ranges, in order. Candidates start at a random offset
 * within the group's free addresses, so concurrent requests seldom race for the same row.
 */
async function claimAny(app: App, tx: Tx, account: AccountRow, req: AcquireRequest, groups: number[][]) {
  for (const rangeIds of groups) {
    for (;;) {
      const free = () =>
        tx.selectFrom('public_ips').where('range_id', 'in', rangeIds).where('state', '=', 'Free');
      const { n } = await free()
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      const total = Number(n);
      if (total === 0) break;
      const offset = total > CANDIDATES ? randomBits(app) % (total - CANDIDATES + 1) : 0;
      const candidates = await free()
        .select('id')
        .orderBy('ip_num')
        .limit(CANDIDATES)
        .offset(offset)
        .execute();
      for (const c of candidates) if (await claim(app, tx, c.id, account, req)) return c.id;
      // Every candidate was taken meanwhile: read again (the count has dropped).
    }
  }
  return undefined;
}

/**
 * Acquires a public address of the zone for an account, inside the caller's transaction: it is
 * Allocated to the account (and network) when the transaction commits. 533 when no address is
 * free, 431 when a requested address is unknown, not usable by the account or taken, 535 over the
 * account's or a domain's public_ip limit. Records NET.IPASSIGN. The caller applies the network's
 * rules after committing, so its router carries the address.
 */
export async function acquirePublicIp(app: App, tx: Tx, req: AcquireRequest): Promise<PublicIpRow> {
  if (req.sourceNat && req.networkId !== null) {
    // One source-NAT address per network, whoever asks at the same moment (a first VM start and an
    // associateIpAddress): under the network row's lock, an existing one is the answer.
    await lockNetwork(tx, req.networkId);
    const existing = await tx
      .selectFrom('public_ips')
      .selectAll()
      .where('network_id', '=', req.networkId)
      .where('source_nat', '=', 1)
      .where('state', 'in', HELD_STATES)
      .executeTakeFirst();
    if (existing) return existing;
  }
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', req.accountId)
    .executeTakeFirstOrThrow();
  const zone = await tx
    .selectFrom('zones')
    .select('name')
    .where('id', '=', req.zoneId)
    .executeTakeFirstOrThrow();
  const groups = await usableRanges(tx, req.zoneId, account);
  const id =
    req.ipAddress !== undefined
      ? await claimSpecific(app, tx, account, { ...req, ipAddress: req.ipAddress }, groups)
      : await claimAny(app, tx, account, req, groups);
  if (id === undefined)
    throw insufficientCapacity(
      `Insufficient address capacity: no free public IP address in zone ${zone.name} for account ${account.name}`,
    );
  await reserve({ app }, tx, account, ResourceKind.PublicIp, 1);
  const ip = await tx.selectFrom('public_ips').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  await recordEvent({ app }, tx, req.eventOwner ?? (await accountEventOwner(tx, account)), {
    type: 'NET.IPASSIGN',
    description: `acquired public IP address ${ip.ip4}${req.sourceNat ? ' (source NAT)' : ''} for account ${account.name}`,
    resourceType: 'IpAddress',
    resourceId: ip.uuid,
  });
  return ip;
}

/**
 * Takes the write lock on a network row inside a transaction, so decisions about the network
 * (its source-NAT address, conflicts between its rules) are taken one at a time: a no-op UPDATE
 * locks the row on PostgreSQL and MariaDB, and SQLite's transactions are serial anyway.
 */
export async function lockNetwork(tx: Tx, networkId: number): Promise<void> {
  await tx
    .updateTable('networks')
    .set((eb) => ({ name: eb.ref('name') }))
    .where('id', '=', networkId)
    .execute();
}

/** Deletes rules with their tags and, for load balancers, members and policies. */
export async function deleteRules(tx: Tx, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await tx.deleteFrom('lb_members').where('rule_id', 'in', ids).execute();
  await tx.deleteFrom('lb_policies').where('rule_id', 'in', ids).execute();
  await tx
    .deleteFrom('resource_tags')
    .where('resource_type', 'in', ['PortForwardingRule', 'FirewallRule', 'LoadBalancer'])
    .where('resource_id', 'in', ids)
    .execute();
  await tx.deleteFrom('ip_rules').where('id', 'in', ids).execute();
}

/** Deletes every rule on an address, inside the caller's transaction (it applies after committing). */
export async function deleteRulesOfIp(tx: Tx, ipId: number): Promise<void> {
  const rules = await tx.selectFrom('ip_rules').select('id').where('ip_id', '=', ipId).execute();
  await deleteRules(
    tx,
    rules.map((r) => r.id),
  );
}

/**
 * Gives an address back, inside the caller's transaction: its rules are deleted, static NAT is
 * cleared, it is Free again (no account, network or source NAT), the account's public_ip count
 * goes down and NET.IPRELEASE is recorded. The caller applies the network's rules after
 * committing, so the router lets go of the address.
 */
export async function releasePublicIp(
  app: App,
  tx: Tx,
  ip: PublicIpRow,
  eventOwner?: EventOwner,
): Promise<void> {
  await deleteRulesOfIp(tx, ip.id);
  await dropVpnsOfIp(tx, ip.id);
  await tx
    .deleteFrom('resource_tags')
    .where('resource_type', '=', 'PublicIpAddress')
    .where('resource_id', '=', ip.id)
    .execute();
  const r = await tx
    .updateTable('public_ips')
    .set({
      state: 'Free',
      account_id: null,
      domain_id: null,
      network_id: null,
      vpc_id: null,
      source_nat: 0,
      static_nat_vm_id: null,
      static_nat_vm_ip: null,
      for_display: 1,
      allocated: null,
    })
    .where('id', '=', ip.id)
    .where('state', 'in', [...HELD_STATES, 'Releasing'])
    .executeTakeFirst();
  // Released twice (two jobs raced): the first did everything, including the count.
  if (Number(r.numUpdatedRows) === 0 || ip.account_id === null) return;
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', ip.account_id)
    .executeTakeFirst();
  if (!account) return;
  await reserve({ app }, tx, account, ResourceKind.PublicIp, -1);
  await recordEvent({ app }, tx, eventOwner ?? (await accountEventOwner(tx, account)), {
    type: 'NET.IPRELEASE',
    description: `released public IP address ${ip.ip4} of account ${account.name}`,
    resourceType: 'IpAddress',
    resourceId: ip.uuid,
  });
}

// updateResourceCount recounts what accounts really hold.
registerResourceCounter(ResourceKind.PublicIp, async (tx, accountId) => {
  const row = await tx
    .selectFrom('public_ips')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('account_id', '=', accountId)
    .where('state', 'in', HELD_STATES)
    .executeTakeFirstOrThrow();
  return Number(row.n);
});
