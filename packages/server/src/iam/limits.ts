/**
 * Resource limits per account and domain (CloudStack's resource types 0-11), and the counts they
 * are checked against. Capabilities reserve what they create inside their own transaction with
 * `reserve`, so a request over a limit fails with 535 and leaves nothing behind, and concurrent
 * requests cannot both squeeze under a limit (the check is one conditional UPDATE per owner).
 */
import { type ExpressionBuilder, sql } from 'kysely';
import type { CallContext } from '../context.ts';
import type { Tx } from '../db/connection.ts';
import type { AccountRow, Database, DomainRow } from '../db/schema.ts';
import { invalidParameter, limitExceeded, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { checkProjectAccess, findProject, projectAccountOf } from '../projects/access.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { defineSetting, type SettingDef } from '../settings/settings.ts';
import { applyScope, checkDomainAccess, findDomainByUuid, listScope, pathPrefix } from './access.ts';
import { resolveAccount } from './accounts.ts';
import { displayPath } from './domains.ts';
import { ACCOUNT_TYPE } from './seed.ts';

export interface ResourceType {
  id: number;
  name: string;
  accountDefault: SettingDef<number>;
  domainDefault: SettingDef<number>;
  /** max.project.*: the default of a project's account (none for the number of projects). */
  projectDefault?: SettingDef<number>;
}

function resourceType(
  id: number,
  name: string,
  key: string,
  account: number,
  domain: number,
  unit = '',
): ResourceType {
  const describe = (owner: string) =>
    `Default maximum ${name.replace('_', ' ')}${unit} of a${owner === 'account' ? 'n' : ''} ${owner} (-1: unlimited).`;
  return {
    id,
    name,
    accountDefault: defineSetting({
      name: `max.account.${key}`,
      category: 'Account Defaults',
      type: 'Long',
      defaultValue: account,
      min: -1,
      scopes: ['account'],
      description: describe('account'),
    }),
    domainDefault: defineSetting({
      name: `max.domain.${key}`,
      category: 'Domain Defaults',
      type: 'Long',
      defaultValue: domain,
      min: -1,
      scopes: ['domain'],
      description: describe('domain'),
    }),
    // Upstream's project defaults equal the account ones; a project owns no projects.
    projectDefault:
      id === 5
        ? undefined
        : defineSetting({
            name: `max.project.${key}`,
            category: 'Project Defaults',
            type: 'Long',
            defaultValue: account,
            min: -1,
            description: describe('project'),
          }),
  };
}

export const RESOURCE_TYPES: ResourceType[] = [
  resourceType(0, 'user_vm', 'user.vms', 20, 40),
  resourceType(1, 'public_ip', 'public.ips', 20, 40),
  resourceType(2, 'volume', 'volumes', 20, 40),
  resourceType(3, 'snapshot', 'snapshots', 20, 40),
  resourceType(4, 'template', 'templates', 20, 40),
  resourceType(5, 'project', 'projects', 10, 50),
  resourceType(6, 'network', 'networks', 20, 40),
  resourceType(7, 'vpc', 'vpcs', 20, 40),
  resourceType(8, 'cpu', 'cpus', 40, 80, ' (cores)'),
  resourceType(9, 'memory', 'memory', 40960, 81920, ' (MiB)'),
  resourceType(10, 'primary_storage', 'primary.storage', 200, 400, ' (GiB)'),
  resourceType(11, 'secondary_storage', 'secondary.storage', 400, 800, ' (GiB)'),
];

export const ResourceKind = {
  Instance: 0,
  PublicIp: 1,
  Volume: 2,
  Snapshot: 3,
  Template: 4,
  Project: 5,
  Network: 6,
  Vpc: 7,
  Cpu: 8,
  Memory: 9,
  PrimaryStorage: 10,
  SecondaryStorage: 11,
} as const;

function typeById(id: number): ResourceType {
  const t = RESOURCE_TYPES.find((r) => r.id === id);
  if (!t) throw invalidParameter(`Invalid resource type ${id}: use 0-11`);
  return t;
}

type Owner = { type: 'account'; row: AccountRow } | { type: 'domain'; row: DomainRow };

/** The limit in force for an owner: an explicit one, else the default; admins and ROOT are unlimited. */
async function effectiveMax(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  owner: Owner,
  type: ResourceType,
): Promise<number> {
  const explicit = await tx
    .selectFrom('resource_limits')
    .select('max')
    .where('owner_type', '=', owner.type)
    .where('owner_id', '=', owner.row.id)
    .where('resource_type', '=', type.id)
    .executeTakeFirst();
  if (explicit) return Number(explicit.max);
  return defaultMax(ctx, owner, type);
}

/** An account's limit without an explicit one: admins unlimited, projects max.project.*. */
function accountDefaultMax(ctx: Pick<CallContext, 'app'>, account: AccountRow, type: ResourceType): number {
  const { settings } = ctx.app;
  if (account.type === ACCOUNT_TYPE.Admin) return -1;
  if (account.type === ACCOUNT_TYPE.Project)
    return type.projectDefault ? settings.get(type.projectDefault) : -1;
  return settings.at(type.accountDefault, 'account', account.id);
}

async function countOf(
  tx: Tx,
  ownerType: 'account' | 'domain',
  ownerId: number,
  type: number,
): Promise<number> {
  const row = await tx
    .selectFrom('resource_counts')
    .select('count')
    .where('owner_type', '=', ownerType)
    .where('owner_id', '=', ownerId)
    .where('resource_type', '=', type)
    .executeTakeFirst();
  return Number(row?.count ?? 0);
}

async function ensureCountRow(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  ownerType: 'account' | 'domain',
  ownerId: number,
  type: number,
): Promise<void> {
  const values = { owner_type: ownerType, owner_id: ownerId, resource_type: type, count: 0 };
  if (ctx.app.store.dialect === 'mysql')
    await tx.insertInto('resource_counts').ignore().values(values).execute();
  else
    await tx
      .insertInto('resource_counts')
      .values(values)
      .onConflict((oc) => oc.doNothing())
      .execute();
}

/**
 * Upstream's texts (ResourceLimitManagerImpl.checkAccountResourceLimit / checkDomainResourceLimit),
 * with two differences: no "tag = 'null'" (we have no tagged limits) and domain UUIDs instead of
 * internal ids. Reservations are taken in the same transaction here, so the reservation is 0.
 */
function limitText(
  type: ResourceType,
  owner: Owner,
  accountDomain: DomainRow,
  max: number,
  current: number,
  amount: number,
): string {
  const unit = type.name.endsWith('_storage') ? ' GiB' : '';
  const [limit, now, asked] = [max, current, amount].map((n) => `${n}${unit}`);
  if (owner.type === 'account')
    return `Maximum amount of resources of Type = '${type.name}' for Account Name = ${owner.row.name} in Domain Id = ${accountDomain.uuid} is exceeded: Account Resource Limit = ${limit}, Current Account Resource Amount = ${now}, Current Account Resource Reservation = 0${unit}, Requested Resource Amount = ${asked}.`;
  return `Maximum domain resource limits of Type '${type.name}' for Domain Id = ${owner.row.uuid} is exceeded: Domain Resource Limit = ${limit}, Current Domain Resource Amount = ${now}, Current Resource Reservation = 0${unit}, Requested Resource Amount = ${asked}.`;
}

/**
 * Adds `amount` of a resource to the account and every domain above it, inside the caller's
 * transaction; throws 535 (ResourceAllocationException, and so rolls the transaction back) if any
 * limit would be exceeded. A negative amount releases.
 */
export async function reserve(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  account: AccountRow,
  kind: number,
  amount: number,
): Promise<void> {
  if (amount === 0) return;
  await (await Reservation.plan(ctx, tx, account, [[kind, amount]])).apply();
}

/**
 * Several resources reserved at once: `reserve` for each, in their order, in fewer statements (one
 * UPDATE per owner for all of them).
 */
export async function reserveAll(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  account: AccountRow,
  amounts: [kind: number, amount: number][],
): Promise<void> {
  await (await Reservation.plan(ctx, tx, account, amounts)).apply();
}

/**
 * A reservation checked now and taken later in the same transaction (`apply`, best just before it
 * commits). Taking it locks the owners' count rows until the commit, and every deploy of the cloud
 * updates the ROOT domain's rows: taken first, they were held across the whole deploy transaction
 * (VM, disks, NICs, events), which serialised concurrent deploys on PostgreSQL. The check reads
 * the counts without locking, so a request over a limit still fails with the limit's error before
 * anything else is tried; `apply` checks again, atomically, as `reserve` does.
 */
export async function checkReservation(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  account: AccountRow,
  amounts: [kind: number, amount: number][],
): Promise<Reservation> {
  const plan = await Reservation.plan(ctx, tx, account, amounts);
  await plan.check();
  return plan;
}

class Reservation {
  private constructor(
    private readonly ctx: Pick<CallContext, 'app'>,
    private readonly tx: Tx,
    private readonly domain: DomainRow,
    private readonly owners: Owner[],
    /** In the caller's order, zero amounts left out (a type may come more than once). */
    private readonly entries: [ResourceType, number][],
    /** The same summed per type, in order of first appearance (what is applied). */
    private readonly amounts: [ResourceType, number][],
    /** owner key → resource type → the limit in force (-1: none); only for amounts > 0. */
    private readonly limits: Map<string, Map<number, number>>,
  ) {}

  static async plan(
    ctx: Pick<CallContext, 'app'>,
    tx: Tx,
    account: AccountRow,
    amounts: [kind: number, amount: number][],
  ): Promise<Reservation> {
    const live = amounts
      .filter(([, amount]) => amount !== 0)
      .map(([k, a]) => [typeById(k), a] as [ResourceType, number]);
    for (const [, a] of live)
      if (!Number.isSafeInteger(a)) throw new Error(`resource amount ${a} is not an integer`);
    if (live.length === 0) return new Reservation(ctx, tx, {} as DomainRow, [], [], [], new Map());
    const chain = await domainChain(tx, account.domain_id);
    const owners: Owner[] = [
      { type: 'account', row: account },
      ...chain.map((row) => ({ type: 'domain' as const, row })),
    ];
    const limits = new Map<string, Map<number, number>>();
    const limited = live.filter(([, a]) => a > 0).map(([t]) => t);
    if (limited.length > 0) {
      const explicit = await tx
        .selectFrom('resource_limits')
        .select(['owner_type', 'owner_id', 'resource_type', 'max'])
        .where(ownedBy(owners))
        .where(
          'resource_type',
          'in',
          limited.map((t) => t.id),
        )
        .execute();
      const found = new Map(
        explicit.map((r) => [`${r.owner_type}:${r.owner_id}:${r.resource_type}`, Number(r.max)]),
      );
      for (const owner of owners) {
        const byType = new Map<number, number>();
        for (const t of limited)
          byType.set(t.id, found.get(`${ownerKey(owner)}:${t.id}`) ?? defaultMax(ctx, owner, t));
        limits.set(ownerKey(owner), byType);
      }
    }
    const summed = new Map<ResourceType, number>();
    for (const [t, a] of live) summed.set(t, (summed.get(t) ?? 0) + a);
    const merged = [...summed].filter(([, a]) => a !== 0);
    return new Reservation(ctx, tx, chain[0]!, owners, live, merged, limits);
  }

  private max(owner: Owner, type: ResourceType, amount: number): number {
    return amount > 0 ? (this.limits.get(ownerKey(owner))?.get(type.id) ?? -1) : -1;
  }

  /**
   * Throws the limit's error if the counts as they stand leave no room (no lock taken): the first
   * entry over a limit, with the counts as `reserve` for each entry in turn would have seen them.
   */
  async check(): Promise<void> {
    if (this.entries.length === 0) return;
    const counts = await this.counts();
    for (const [type, amount] of this.entries)
      for (const owner of this.owners) {
        const key = `${ownerKey(owner)}:${type.id}`;
        const max = this.max(owner, type, amount);
        const current = counts.get(key) ?? 0;
        if (max >= 0 && current + amount > max)
          throw limitExceeded(limitText(type, owner, this.domain, max, current, amount));
        counts.set(key, current + amount);
      }
  }

  /** Adds the amounts to every owner's counts, each UPDATE conditional on the owner's limits. */
  async apply(): Promise<void> {
    for (const owner of this.owners) {
      let pending = this.amounts;
      for (let attempt = 0; pending.length > 0; attempt++) {
        const updated = await this.update(owner, pending);
        if (updated === pending.length) break;
        // Fewer rows than resources: a count row not made yet, or a limit reached. Rows that did
        // not exist were certainly not updated: make them and update just those.
        const existing = await this.counts(
          [owner],
          pending.map(([t]) => t.id),
        );
        const missing = pending.filter(([t]) => !existing.has(`${ownerKey(owner)}:${t.id}`));
        if (attempt > 0 || updated < pending.length - missing.length) await this.exceeded(owner, pending);
        for (const [t] of missing) await ensureCountRow(this.ctx, this.tx, owner.type, owner.row.id, t.id);
        pending = missing;
      }
    }
  }

  private async update(owner: Owner, amounts: [ResourceType, number][]): Promise<number> {
    // Literals, not parameters: PostgreSQL cannot type a parameter inside CASE (the amounts are
    // checked integers and the type ids come from RESOURCE_TYPES).
    const byType = (value: (type: ResourceType, amount: number) => number) =>
      amounts.length === 1
        ? sql.lit(value(amounts[0]![0], amounts[0]![1]))
        : sql`case resource_type ${sql.join(
            amounts.map(([t, a]) => sql`when ${sql.lit(t.id)} then ${sql.lit(value(t, a))}`),
            sql` `,
          )} end`;
    const capped = amounts.filter(([t, a]) => this.max(owner, t, a) >= 0);
    let q = this.tx
      .updateTable('resource_counts')
      .set({ count: sql`count + ${byType((_, a) => a)}` })
      .where('owner_type', '=', owner.type)
      .where('owner_id', '=', owner.row.id)
      .where(
        'resource_type',
        'in',
        amounts.map(([t]) => t.id),
      );
    if (capped.length === amounts.length)
      q = q.where(sql<boolean>`count + ${byType((_, a) => a)} <= ${byType((t, a) => this.max(owner, t, a))}`);
    else if (capped.length > 0) {
      const cappedIds = new Set(capped.map(([t]) => t.id));
      q = q.where((eb) =>
        eb.or([
          eb(
            'resource_type',
            'not in',
            capped.map(([t]) => t.id),
          ),
          sql<boolean>`count + ${byType((_, a) => a)} <= ${byType((t, a) => (cappedIds.has(t.id) ? this.max(owner, t, a) : 0))}`,
        ]),
      );
    }
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows);
  }

  /** A limit left no room for one of `amounts` of `owner`: the first in order is reported. */
  private async exceeded(owner: Owner, amounts: [ResourceType, number][]): Promise<never> {
    const counts = await this.counts(
      [owner],
      amounts.map(([t]) => t.id),
    );
    for (const [type, amount] of amounts) {
      const max = this.max(owner, type, amount);
      const current = counts.get(`${ownerKey(owner)}:${type.id}`) ?? 0;
      if (max >= 0 && current + amount > max)
        throw limitExceeded(limitText(type, owner, this.domain, max, current, amount));
    }
    // Only a concurrent change can get here (the rows changed between the UPDATE and the read).
    const [type, amount] = amounts[0]!;
    const max = this.max(owner, type, amount);
    const current = counts.get(`${ownerKey(owner)}:${type.id}`) ?? 0;
    throw limitExceeded(limitText(type, owner, this.domain, max, current, amount));
  }

  /** The count rows of `owners` (all by default) for the types, keyed owner:type; makes none. */
  private async counts(owners = this.owners, typeIds = [...new Set(this.entries.map(([t]) => t.id))]) {
    const rows = await this.tx
      .selectFrom('resource_counts')
      .select(['owner_type', 'owner_id', 'resource_type', 'count'])
      .where(ownedBy(owners))
      .where('resource_type', 'in', typeIds)
      .execute();
    return new Map(rows.map((r) => [`${r.owner_type}:${r.owner_id}:${r.resource_type}`, Number(r.count)]));
  }
}

function ownerKey(owner: Owner): string {
  return `${owner.type}:${owner.row.id}`;
}

/** `owner_type`/`owner_id` of any of the owners (an account and domains). */
function ownedBy(owners: Owner[]) {
  return (eb: ExpressionBuilder<Database, 'resource_counts' | 'resource_limits'>) =>
    eb.or(
      owners.map((o) =>
        eb.and([
          eb('owner_type' as 'resource_counts.owner_type', '=', o.type),
          eb('owner_id' as 'resource_counts.owner_id', '=', o.row.id),
        ]),
      ),
    );
}

/** The limit of an owner without an explicit one: admins and ROOT unlimited, else the settings. */
function defaultMax(ctx: Pick<CallContext, 'app'>, owner: Owner, type: ResourceType): number {
  if (owner.type === 'account') return accountDefaultMax(ctx, owner.row, type);
  if (owner.row.parent_id === null) return -1;
  return ctx.app.settings.at(type.domainDefault, 'domain', owner.row.id);
}

/** A domain and every domain above it, nearest first, in one query. */
async function domainChain(tx: Tx, domainId: number): Promise<DomainRow[]> {
  const { rows } = await sql<DomainRow>`with recursive chain (id, parent_id) as (
      select id, parent_id from domains where id = ${domainId}
      union all
      select d.id, d.parent_id from domains d inner join chain c on d.id = c.parent_id
    ) select * from domains where id in (select id from chain)`.execute(tx);
  const byId = new Map(rows.map((d) => [d.id, d]));
  const out: DomainRow[] = [];
  for (let d = byId.get(domainId); d; d = d.parent_id === null ? undefined : byId.get(d.parent_id))
    out.push(d);
  if (out.length === 0) throw new Error(`domain ${domainId} not found`);
  return out;
}

/** Counts what an account really owns of one resource type; registered by the owning capability. */
type Counter = (tx: Tx, accountId: number) => Promise<number>;
const counters = new Map<number, Counter[]>();

/** Several capabilities may count one kind (templates and snapshots both use secondary storage): they add up. */
export function registerResourceCounter(kind: number, counter: Counter): void {
  counters.set(kind, [...(counters.get(kind) ?? []), counter]);
}

async function counted(list: Counter[], tx: Tx, accountId: number): Promise<number> {
  let total = 0;
  for (const c of list) total += await c(tx, accountId);
  return total;
}

function presentLimit(owner: Owner, type: ResourceType, max: number, domain: DomainRow): object {
  return {
    ...(owner.type === 'account' ? { account: owner.row.name } : {}),
    domainid: domain.uuid,
    domain: domain.name,
    domainpath: displayPath(domain.path),
    resourcetype: String(type.id),
    resourcetypename: type.name,
    max,
  };
}

export interface AccountFigure {
  type: ResourceType;
  max: number;
  count: number;
}

/** Each resource type's limit in force and count for many accounts (projects' figures), in two queries. */
export async function limitsOf(
  ctx: Pick<CallContext, 'app'>,
  accounts: AccountRow[],
): Promise<Map<number, AccountFigure[]>> {
  const out = new Map<number, AccountFigure[]>();
  if (accounts.length === 0) return out;
  const db = ctx.app.store.db;
  const ids = accounts.map((a) => a.id);
  const [limits, counts] = await Promise.all([
    db
      .selectFrom('resource_limits')
      .select(['owner_id', 'resource_type', 'max'])
      .where('owner_type', '=', 'account')
      .where('owner_id', 'in', ids)
      .execute(),
    db
      .selectFrom('resource_counts')
      .select(['owner_id', 'resource_type', 'count'])
      .where('owner_type', '=', 'account')
      .where('owner_id', 'in', ids)
      .execute(),
  ]);
  const key = (owner: number, type: number) => `${owner}:${type}`;
  const maxes = new Map(limits.map((l) => [key(l.owner_id, l.resource_type), Number(l.max)]));
  const totals = new Map(counts.map((c) => [key(c.owner_id, c.resource_type), Number(c.count)]));
  for (const a of accounts)
    out.set(
      a.id,
      RESOURCE_TYPES.map((type) => ({
        type,
        max: maxes.get(key(a.id, type.id)) ?? accountDefaultMax(ctx, a, type),
        count: totals.get(key(a.id, type.id)) ?? 0,
      })),
    );
  return out;
}

async function ownerFrom(
  ctx: CallContext,
  params: { account?: string; domainid?: string; projectid?: string },
  forUpdate = false,
): Promise<{ owner: Owner; domain: DomainRow }> {
  if (params.projectid) {
    // A project's limits are its account's: members may read them, admins of its domain change them.
    const project = await findProject(ctx, params.projectid);
    const domain = await ctx.app.store.db
      .selectFrom('domains')
      .selectAll()
      .where('id', '=', project.domain_id)
      .executeTakeFirstOrThrow();
    if (forUpdate && ctx.caller.roleKind === 'user')
      throw permissionDenied(
        `Account ${ctx.caller.account.name} may not change the limits of project ${project.name}`,
      );
    if (forUpdate) checkDomainAccess(ctx.caller, domain);
    else await checkProjectAccess(ctx, project);
    return { owner: { type: 'account', row: await projectAccountOf(ctx.app.store.db, project) }, domain };
  }
  if (params.account) {
    const { account, domain } = await resolveAccount(ctx, params);
    return { owner: { type: 'account', row: account }, domain };
  }
  if (params.domainid) {
    const domain = await findDomainByUuid(ctx, params.domainid);
    checkDomainAccess(ctx.caller, domain);
    return { owner: { type: 'domain', row: domain }, domain };
  }
  return { owner: { type: 'account', row: ctx.caller.account }, domain: ctx.caller.domain };
}

export const updateResourceLimit = defineCommand({
  name: 'updateResourceLimit',
  description:
    'Sets how much of one resource type an account or a domain may use; -1 (or no max) means unlimited. Only root admins may change the limits of their own account or domain.',
  params: {
    resourcetype: p.integer({
      required: true,
      description:
        'Resource type number: 0 VMs, 1 public IPs, 2 volumes, 3 snapshots, 4 templates, 5 projects, 6 networks, 7 VPCs, 8 CPU cores, 9 memory (MiB), 10 primary storage (GiB), 11 secondary storage (GiB).',
    }),
    max: p.long({ min: -1, description: 'The new limit, -1 for unlimited; defaults to -1.' }),
    account: p.string({
      description: 'Name of the account to limit (with domainid); without it the domain itself is limited.',
    }),
    domainid: p.uuid({ description: "UUID of the domain to limit, or of the account's domain." }),
    projectid: p.uuid({
      description:
        "Limit this project's account (its members' resources in the project) instead; not with account or domainid.",
    }),
    tag: p.string({
      description: 'Accepted for compatibility; Nimbostack has no tagged limits and ignores it.',
    }),
  },
  async handler(ctx, params) {
    const type = typeById(params.resourcetype);
    if (!params.account && !params.domainid && !params.projectid)
      throw invalidParameter('Either account with domainid, or domainid, must be given');
    const { owner, domain } = await ownerFrom(ctx, params, true);
    // A domain admin may not raise the limits of their own domain or account.
    if (
      ctx.caller.roleKind !== 'admin' &&
      owner.row.id === (owner.type === 'account' ? ctx.caller.account.id : ctx.caller.domain.id)
    ) {
      throw invalidParameter('You cannot change the limits of your own account or domain');
    }
    const max = params.max ?? -1;
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx
        .deleteFrom('resource_limits')
        .where('owner_type', '=', owner.type)
        .where('owner_id', '=', owner.row.id)
        .where('resource_type', '=', type.id)
        .execute();
      await tx
        .insertInto('resource_limits')
        .values({ owner_type: owner.type, owner_id: owner.row.id, resource_type: type.id, max })
        .execute();
      await logEvent(ctx, tx, {
        type: 'RESOURCE.LIMIT.UPDATE',
        description: `set ${type.name} limit of ${owner.type} ${owner.row.name} to ${max}`,
      });
    });
    return presentLimit(owner, type, max, domain);
  },
});

export const listResourceLimits = defineCommand({
  name: 'listResourceLimits',
  description:
    'Shows the limits in force per resource type for accounts the caller may see, or for a domain; explicit values or the defaults.',
  params: {
    ...listParams,
    id: p.long({ description: 'Resource type number to show (same as resourcetype).' }),
    resourcetype: p.integer({
      description: 'Only this resource type, 0 to 11 (0 VMs ... 11 secondary storage).',
    }),
    resourcetypename: p.string({
      description: 'Only this resource type by name, such as user_vm, cpu, memory or primary_storage.',
    }),
    account: p.string({
      description:
        "Only limits of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: "Without account: the limits of this domain itself; with account, that account's domain.",
    }),
    isrecursive: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: the limits of every account they may see.',
    }),
    projectid: p.projectScope({
      description:
        "The limits of this project's account (its uuid), or of every project you may see with -1.",
    }),
    tag: p.string({
      description: 'Accepted for compatibility; Nimbostack has no tagged limits and ignores it.',
    }),
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    let types = RESOURCE_TYPES;
    const wanted = params.resourcetype ?? params.id;
    if (wanted !== undefined) types = [typeById(wanted)];
    if (params.resourcetypename) types = types.filter((t) => t.name === params.resourcetypename);
    const owners: { owner: Owner; domain: DomainRow }[] = [];
    if (params.domainid && !params.account && !params.projectid && ctx.caller.roleKind !== 'user') {
      const { owner, domain } = await ownerFrom(ctx, params);
      owners.push({ owner, domain });
    } else {
      const scope = await listScope(ctx, {
        account: params.account,
        domainid: params.domainid,
        isrecursive: params.isrecursive,
        listall: params.listall,
        projectid: params.projectid,
      });
      // An account is its own owner; its items (one per resource type) are paged below, not its rows.
      const accounts = await applyScope(db.selectFrom('accounts').selectAll('accounts'), scope, {
        account: 'accounts.id',
        domain: 'accounts.domain_id',
      })
        .orderBy('accounts.id')
        .execute();
      const domains = accounts.length
        ? await db
            .selectFrom('domains')
            .selectAll()
            .where(
              'id',
              'in',
              accounts.map((a) => a.domain_id),
            )
            .execute()
        : [];
      const byId = new Map(domains.map((d) => [d.id, d]));
      for (const a of accounts)
        owners.push({ owner: { type: 'account', row: a }, domain: byId.get(a.domain_id)! });
    }
    const items: object[] = [];
    for (const { owner, domain } of owners) {
      for (const t of types)
        items.push(presentLimit(owner, t, await effectiveMax(ctx, db, owner, t), domain));
    }
    const page = pageOf(ctx.app, params);
    return listResult(
      items.slice(page.offset, page.limit === undefined ? undefined : page.offset + page.limit),
      items.length,
    );
  },
});

export const updateResourceCount = defineCommand({
  name: 'updateResourceCount',
  description:
    'Recounts what an account, or every account of a domain subtree, actually uses and stores the corrected counts.',
  params: {
    domainid: p.uuid({
      required: true,
      description: "UUID of the domain to recount, or of the account's domain.",
    }),
    account: p.string({ description: 'Name of a single account to recount.' }),
    resourcetype: p.integer({
      description: 'Only recount this resource type (0-11); all types when omitted.',
    }),
    projectid: p.uuid({
      description: "Recount this project's account instead of an account of the domain.",
    }),
    tag: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const types = params.resourcetype === undefined ? RESOURCE_TYPES : [typeById(params.resourcetype)];
    const { owner, domain } = await ownerFrom(ctx, params);
    const db = ctx.app.store.db;
    const accounts =
      owner.type === 'account'
        ? [owner.row]
        : await db
            .selectFrom('accounts')
            .innerJoin('domains', 'domains.id', 'accounts.domain_id')
            .selectAll('accounts')
            .where(pathPrefix('domains.path', owner.row.path))
            .execute();
    const items: object[] = [];
    await db.transaction().execute(async (tx) => {
      for (const t of types) {
        const counter = counters.get(t.id);
        let total = 0;
        for (const a of accounts) {
          const n = counter ? await counted(counter, tx, a.id) : await countOf(tx, 'account', a.id, t.id);
          total += n;
          await ensureCountRow(ctx, tx, 'account', a.id, t.id);
          await tx
            .updateTable('resource_counts')
            .set({ count: n })
            .where('owner_type', '=', 'account')
            .where('owner_id', '=', a.id)
            .where('resource_type', '=', t.id)
            .execute();
        }
        if (owner.type === 'domain') {
          await ensureCountRow(ctx, tx, 'domain', owner.row.id, t.id);
          await tx
            .updateTable('resource_counts')
            .set({ count: total })
            .where('owner_type', '=', 'domain')
            .where('owner_id', '=', owner.row.id)
            .where('resource_type', '=', t.id)
            .execute();
        }
        items.push({
          ...(owner.type === 'account' ? { account: owner.row.name } : {}),
          domainid: domain.uuid,
          domain: domain.name,
          domainpath: displayPath(domain.path),
          resourcetype: String(t.id),
          resourcetypename: t.name,
          resourcecount: total,
        });
      }
    });
    return listResult(items, items.length);
  },
});

export const limitCommands = [updateResourceLimit, listResourceLimits, updateResourceCount];
