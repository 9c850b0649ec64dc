/**
 * What the commands on public addresses share: finding an address or a network the caller may
 * act on and checking the services it offers, validating ports and CIDRs, serialising rule
 * changes of one address or network, and the apply-or-undo step. The router always gets the
 * whole rule set of its network (router-rules.ts), so a change is "commit, then apply"; when the
 * router's host refuses, the change is undone and applied again, so no record ever claims what
 * the data plane does not do.
 */
import type { App, CallContext } from '../context.ts';
import { inTransaction, type Tx } from '../db/connection.ts';
import type { IpRuleRow, NetworkRow, PublicIpRow } from '../db/schema.ts';
import { ApiError, invalidParameter, permissionDenied } from '../errors.ts';
import { escapeLike, likeEscaped, type ScopeParams } from '../iam/access.ts';
import { findOwned, listOwned, OWNED_VM, type OwnedLookup } from '../iam/owned.ts';
import { findZone, ipv4ToInt, isIpv4, likeOp, netmaskBits } from '../infra/common.ts';
import type { ListResult } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { withTags } from '../tags/tags.ts';
import { findNetwork } from './common.ts';
import { servicesOf } from './network-offerings.ts';
import { deleteRules, HELD_STATES } from './public-ips.ts';
import { applyNetworkRules } from './routers.ts';

export { deleteRules, lockNetwork } from './public-ips.ts';

/** Rules being removed are no longer "there" for conflicts, lists or the router. */
export const LIVE_RULE_STATES = ['Add', 'Active'];

export interface NetworkInfo {
  network: NetworkRow;
  services: Set<string>;
  zoneType: string;
}

/**
 * A network with the services of its offering and its zone's type. Inside a transaction pass it
 * as `db`: on SQLite the store has one connection, which the open transaction holds.
 */
export async function networkInfo(
  app: App,
  network: NetworkRow,
  db: Tx = app.store.db,
): Promise<NetworkInfo> {
  const [offering, zone] = await Promise.all([
    db
      .selectFrom('network_offerings')
      .select('services')
      .where('id', '=', network.network_offering_id)
      .executeTakeFirst(),
    db.selectFrom('zones').select('network_type').where('id', '=', network.zone_id).executeTakeFirstOrThrow(),
  ]);
  const services = new Set(servicesOf({ services: offering?.services ?? '' }).map((s) => s.name));
  return { network, services, zoneType: zone.network_type };
}

/** An isolated network of an Advanced zone offering `service`; 431 naming what is missing. */
export async function requireService(app: App, network: NetworkRow, service: string): Promise<NetworkInfo> {
  const info = await networkInfo(app, network);
  if (info.zoneType !== 'Advanced' || network.guest_type !== 'Isolated')
    throw invalidParameter(
      `Network ${network.name} is not an isolated network of an Advanced zone: it has no ${service} service`,
    );
  if (!info.services.has(service))
    throw invalidParameter(`${service} service is not supported in network ${network.name}`);
  return info;
}

/** Public addresses as account-owned resources: only allocated ones exist for their commands. */
export const OWNED_IP: OwnedLookup<'public_ips'> = {
  noun: 'IP address',
  live: (ip) => ip.account_id !== null && ip.state !== 'Free',
};

/** The network an address is associated with; 431 when it is associated with none. */
export async function networkOfIp(ctx: Pick<CallContext, 'app'>, ip: PublicIpRow): Promise<NetworkRow> {
  if (ip.network_id === null)
    throw invalidParameter(`IP address ${ip.ip4} is not associated with any network`);
  return ctx.app.store.db
    .selectFrom('networks')
    .selectAll()
    .where('id', '=', ip.network_id)
    .executeTakeFirstOrThrow();
}

/**
 * The network a port forward or static NAT on `ip` goes into. An address of an isolated network:
 * that network (`networkid`, if given, must name it). A VPC's address: the tier it already serves,
 * or, while it serves none, the tier `networkid` names (required then, as upstream), which
 * `bindIpToTier` records with the rule.
 */
export async function networkForRule(
  ctx: CallContext,
  ip: PublicIpRow,
  networkUuid: string | undefined,
): Promise<NetworkRow> {
  if (ip.network_id === null && ip.vpc_id !== null) {
    if (!networkUuid)
      throw invalidParameter(
        `IP address ${ip.ip4} belongs to a VPC and serves no tier yet: give networkid, the tier of the VM`,
      );
    const tier = await findNetwork(ctx, networkUuid);
    if (tier.vpc_id !== ip.vpc_id)
      throw invalidParameter(`Network ${tier.name} is not a tier of the VPC IP address ${ip.ip4} belongs to`);
    return tier;
  }
  const network = await networkOfIp(ctx, ip);
  if (networkUuid && (await findNetwork(ctx, networkUuid)).id !== network.id)
    throw invalidParameter(`IP address ${ip.ip4} is not associated with network ${networkUuid}`);
  return network;
}

/**
 * In a rule's transaction: a VPC's address that served no tier now serves `network`. Refused when
 * another rule bound it to another tier meanwhile (an address serves one tier, as upstream).
 */
export async function bindIpToTier(tx: Tx, ip: PublicIpRow, network: NetworkRow): Promise<void> {
  if (ip.vpc_id === null) return;
  const now = await tx
    .selectFrom('public_ips')
    .select('network_id')
    .where('id', '=', ip.id)
    .executeTakeFirstOrThrow();
  if (now.network_id === network.id) return;
  if (now.network_id !== null)
    throw invalidParameter(`IP address ${ip.ip4} already serves another tier of its VPC`);
  await tx.updateTable('public_ips').set({ network_id: network.id }).where('id', '=', ip.id).execute();
}

/**
 * Takes the write lock on an address (or network) row inside a transaction, so the conflict
 * checks of two concurrent rule changes on it run one after the other: a no-op UPDATE locks the
 * row on PostgreSQL and MariaDB, and SQLite's transactions are serial anyway.
 */
export async function lockIp(tx: Tx, ipId: number): Promise<void> {
  await tx
    .updateTable('public_ips')
    .set((eb) => ({ for_display: eb.ref('for_display') }))
    .where('id', '=', ipId)
    .execute();
}

/** A port parameter: 1..65535 (431 with upstream's wording otherwise). */
export function checkPort(value: number | undefined, name: string): void {
  if (value !== undefined && (value < 1 || value > 65535))
    throw invalidParameter(`Invalid value for ${name}: ${value}, ports are 1..65535`);
}

/** A port range: both ends valid, start not after end. */
export function portRange(start: number, end: number | undefined, what: string): [number, number] {
  const last = end ?? start;
  checkPort(start, `${what} start port`);
  checkPort(last, `${what} end port`);
  if (start > last) throw invalidParameter(`Start port can't be bigger than end port: ${start} > ${last}`);
  return [start, last];
}

/** Checks an IPv4 CIDR (a.b.c.d/n) and returns it normalised to its network address. */
export function parseCidr(text: string, name = 'cidrlist'): string {
  const cidr = text.trim();
  const [ip, bits, extra] = cidr.split('/');
  if (extra !== undefined || !isIpv4(ip ?? '') || !/^\d{1,2}$/.test(bits ?? '') || Number(bits) > 32)
    throw invalidParameter(`Invalid value for ${name}: ${text} is not an IPv4 CIDR`);
  return cidr;
}

/** A CIDR list as stored: comma-separated, null when empty. */
export function cidrText(list: string[] | undefined, name = 'cidrlist'): string | null {
  const cidrs = [...new Set((list ?? []).map((c) => parseCidr(c, name)))];
  return cidrs.length ? cidrs.join(',') : null;
}

function cidrBounds(cidr: string): [number, number] {
  const [ip, bits] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(bits));
  const first = Math.floor(ipv4ToInt(ip) / size) * size;
  return [first, first + size - 1];
}

/** Whether `inner` lies within `outer` (both CIDRs). */
export function cidrWithin(inner: string, outer: string): boolean {
  const [a, b] = cidrBounds(inner);
  const [c, d] = cidrBounds(outer);
  return a >= c && b <= d;
}

/** The network's guest CIDR, from its cidr or gateway and netmask. */
export function guestCidr(network: NetworkRow): string | undefined {
  if (network.cidr) return network.cidr;
  if (!network.gateway || !network.netmask) return undefined;
  const bits = netmaskBits(network.netmask);
  if (bits === undefined) return undefined;
  const [first] = cidrBounds(`${network.gateway}/${bits}`);
  return `${[24, 16, 8, 0].map((s) => Math.floor(first / 2 ** s) % 256).join('.')}/${bits}`;
}

export const rangesOverlap = (a: [number, number], b: [number, number]) => a[0] <= b[1] && b[0] <= a[1];

/** How a rule's ports read in a conflict message. */
export function portsText(r: Pick<IpRuleRow, 'start_port' | 'end_port'>): string {
  return r.start_port === null ? 'all ports' : `${r.start_port}-${r.end_port ?? r.start_port}`;
}

/** Marks rules Active once the router has them (or will get them when it boots). */
export async function activateRules(app: App, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await app.store.db
    .updateTable('ip_rules')
    .set({ state: 'Active' })
    .where('id', 'in', ids)
    .where('state', '=', 'Add')
    .execute();
}

/**
 * Applies the network's rules after a committed change. When the router's host refuses or
 * cannot be reached, `undo` takes the change back (in its own transaction), the rules are applied
 * again so the router matches the records, and the job fails with the router's reason.
 */
export async function applyOrUndo(
  app: App,
  networkId: number,
  what: string,
  undo: () => Promise<void>,
): Promise<void> {
  try {
    await applyNetworkRules(app, networkId);
  } catch (e) {
    await undo();
    try {
      await applyNetworkRules(app, networkId);
    } catch (again) {
      app.log.warn({ err: again, networkId }, 'router rules could not be re-applied after an undo');
    }
    const reason = e instanceof Error ? e.message : String(e);
    const code = e instanceof ApiError ? e.errorcode : 530;
    const cs = e instanceof ApiError ? e.cserrorcode : 4250;
    throw new ApiError(code, cs, `Failed to ${what}: ${reason}`);
  }
}

/**
 * Removes rules through the router: they are marked Revoke (left out of what the router gets),
 * applied, then deleted. When the router refuses, they go back to the state they had and the
 * job fails with the router's reason: the router still enforces them, so the records say so.
 */
export async function revokeRules(app: App, networkId: number, rules: IpRuleRow[], what: string) {
  if (rules.length === 0) return;
  const ids = rules.map((r) => r.id);
  await app.store.db.updateTable('ip_rules').set({ state: 'Revoke' }).where('id', 'in', ids).execute();
  await applyOrUndo(app, networkId, what, async () => {
    await inTransaction(app.store, async (tx) => {
      for (const state of new Set(rules.map((r) => r.state)))
        await tx
          .updateTable('ip_rules')
          .set({ state: state === 'Revoke' ? 'Active' : state })
          .where(
            'id',
            'in',
            rules.filter((r) => r.state === state).map((r) => r.id),
          )
          .execute();
    });
  });
  await deleteRules(app.store.db, ids);
}

interface References {
  id?: string;
  ipaddressid?: string;
  networkid?: string;
  associatednetworkid?: string;
  zoneid?: string;
  vlanid?: string;
  vpcid?: string;
  physicalnetworkid?: string;
  virtualmachineid?: string;
}

/** Checks what a list names exists (431 otherwise), as upstream's id translation does. */
export async function checkReferences(ctx: CallContext, r: References): Promise<void> {
  const db = ctx.app.store.db;
  if (r.vpcid) {
    const vpc = await db.selectFrom('vpcs').select('id').where('uuid', '=', r.vpcid).executeTakeFirst();
    if (!vpc) throw invalidParameter(`Unable to find VPC by id ${r.vpcid}`);
  }
  if (r.ipaddressid) {
    const ip = await db
      .selectFrom('public_ips')
      .select('id')
      .where('uuid', '=', r.ipaddressid)
      .executeTakeFirst();
    if (!ip) throw invalidParameter(`Unable to find IP address by id ${r.ipaddressid}`);
  }
  if (r.networkid) await findNetwork(ctx, r.networkid);
  if (r.associatednetworkid) await findNetwork(ctx, r.associatednetworkid);
  if (r.zoneid) await findZone(ctx, r.zoneid);
  if (r.virtualmachineid) await findOwned(ctx, 'vms', r.virtualmachineid, OWNED_VM);
  if (r.vlanid) {
    const range = await db
      .selectFrom('vlan_ip_ranges')
      .select('id')
      .where('uuid', '=', r.vlanid)
      .executeTakeFirst();
    if (!range) throw invalidParameter(`Unable to find IP range by id ${r.vlanid}`);
  }
  if (r.physicalnetworkid) {
    const physical = await db
      .selectFrom('physical_networks')
      .select('id')
      .where('uuid', '=', r.physicalnetworkid)
      .executeTakeFirst();
    if (!physical) throw invalidParameter(`Unable to find physical network by id ${r.physicalnetworkid}`);
  }
}

export interface RuleListParams extends ScopeParams {
  projectid?: string;
  id?: string;
  ipaddressid?: string;
  networkid?: string;
  virtualmachineid?: string;
  fordisplay?: boolean;
  keyword?: string;
  tags?: Record<string, string>[];
  page?: number;
  pagesize?: number;
}

/**
 * One page of rules of a kind, scoped to what the caller may see (listOwned), with one count
 * query. Ids that name nothing are 431; `projectid` scopes it to a project's rules (or -1: all).
 */
export async function listRules(
  ctx: CallContext,
  params: RuleListParams,
  kind: { purpose: string; traffic?: string; tagType: string; noun: string },
  present: (rows: IpRuleRow[]) => Promise<object[]>,
): Promise<ListResult> {
  const db = ctx.app.store.db;
  let q = db
    .selectFrom('ip_rules')
    .where('ip_rules.purpose', '=', kind.purpose)
    .where('ip_rules.state', '!=', 'Revoke');
  if (kind.traffic) q = q.where('ip_rules.traffic_type', '=', kind.traffic);
  if (params.id) q = q.where('ip_rules.uuid', '=', params.id);
  if (params.ipaddressid)
    q = q.where(
      'ip_rules.ip_id',
      'in',
      db.selectFrom('public_ips').select('id').where('uuid', '=', params.ipaddressid),
    );
  if (params.networkid)
    q = q.where(
      'ip_rules.network_id',
      'in',
      db.selectFrom('networks').select('id').where('uuid', '=', params.networkid),
    );
  if (params.virtualmachineid)
    q = q.where(
      'ip_rules.vm_id',
      'in',
      db.selectFrom('vms').select('id').where('uuid', '=', params.virtualmachineid),
    );
  if (params.fordisplay !== undefined) q = q.where('ip_rules.for_display', '=', params.fordisplay ? 1 : 0);
  if (params.keyword) {
    const like = `%${escapeLike(params.keyword)}%`;
    q = q.where((eb) =>
      eb.or([
        likeEscaped('ip_rules.protocol', like, likeOp(ctx)),
        likeEscaped('ip_rules.name', like, likeOp(ctx)),
      ]),
    );
  }
  q = withTags(q, kind.tagType, 'ip_rules.id', params.tags);
  return listOwned(ctx, params, q, {
    owner: { account: 'ip_rules.account_id', domain: 'ip_rules.domain_id' },
    checks: async () => {
      await checkReferences(ctx, { ...params, id: undefined });
      if (params.id) {
        const exists = await db
          .selectFrom('ip_rules')
          .select('id')
          .where('uuid', '=', params.id)
          .where('purpose', '=', kind.purpose)
          .executeTakeFirst();
        if (!exists) throw invalidParameter(`Unable to find ${kind.noun} by id ${params.id}`);
      }
    },
    rows: (scoped, page) => paginate(scoped.selectAll('ip_rules').orderBy('ip_rules.id'), page).execute(),
    present,
  });
}

/** The public addresses, networks and VMs rules name, by id, for presenters (one query each). */
export async function ruleRefs(ctx: Pick<CallContext, 'app'>, rules: IpRuleRow[]) {
  const db = ctx.app.store.db;
  const ids = (xs: (number | null)[]) => [...new Set(xs.filter((x): x is number => x !== null))];
  const [ipIds, networkIds, vmIds] = [
    ids(rules.map((r) => r.ip_id)),
    ids(rules.map((r) => r.network_id)),
    ids(rules.map((r) => r.vm_id)),
  ];
  const [ips, networks, vms] = await Promise.all([
    ipIds.length
      ? db.selectFrom('public_ips').select(['id', 'uuid', 'ip4']).where('id', 'in', ipIds).execute()
      : [],
    networkIds.length
      ? db.selectFrom('networks').select(['id', 'uuid']).where('id', 'in', networkIds).execute()
      : [],
    vmIds.length
      ? db.selectFrom('vms').select(['id', 'uuid', 'name', 'display_name']).where('id', 'in', vmIds).execute()
      : [],
  ]);
  return {
    ip: new Map(ips.map((r) => [r.id, r])),
    network: new Map(networks.map((r) => [r.id, r])),
    vm: new Map(vms.map((r) => [r.id, r])),
  };
}

/** Rules of one purpose (and traffic direction) as account-owned resources; revoked ones are gone. */
export function ownedRule(purpose: string, noun: string, traffic?: string): OwnedLookup<'ip_rules'> {
  return {
    noun,
    live: (rule) =>
      rule.purpose === purpose && (!traffic || rule.traffic_type === traffic) && rule.state !== 'Revoke',
  };
}

/** A uuid for customid, unique among rules (root admins only, as upstream). */
export async function customRuleId(ctx: CallContext, ruleId: number, customid: string | undefined) {
  if (customid === undefined) return undefined;
  if (ctx.caller.roleKind !== 'admin') throw permissionDenied('Only root administrators may set a custom id');
  const id = customid.trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id))
    throw invalidParameter(`Invalid customid ${customid}: it must be a UUID`);
  const taken = await ctx.app.store.db
    .selectFrom('ip_rules')
    .select('id')
    .where('uuid', '=', id)
    .executeTakeFirst();
  if (taken && taken.id !== ruleId) throw invalidParameter(`The customid ${customid} is already in use`);
  return id;
}

/** Inserts a rule (in the caller's transaction) and returns its ids. */
export async function insertRule(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  values: Omit<IpRuleRow, 'id' | 'uuid' | 'created'>,
): Promise<{ id: number; uuid: string }> {
  if (values.ip_id !== null) {
    // The address must still be held, checked under its row lock (taken by a no-op update, as
    // lockNetwork does): a release that marked it Releasing first makes this refuse, and one that
    // comes after waits for this transaction and then deletes the rule with the address. Without
    // it, on PostgreSQL a rule committed while the address was being released stayed behind on a
    // Free address (the chaos suite's finding); SQLite serialises the two anyway.
    await tx
      .updateTable('public_ips')
      .set((eb) => ({ state: eb.ref('state') }))
      .where('id', '=', values.ip_id)
      .execute();
    const ip = await tx
      .selectFrom('public_ips')
      .select(['ip4', 'state'])
      .where('id', '=', values.ip_id)
      .executeTakeFirst();
    if (!ip || !HELD_STATES.includes(ip.state))
      throw invalidParameter(
        `Unable to add a rule to IP address ${ip?.ip4 ?? values.ip_id}: it is ${ip ? (ip.state === 'Free' ? 'released' : 'being released') : 'gone'}`,
      );
  }
  const uuid = ctx.app.ids.uuid();
  await tx
    .insertInto('ip_rules')
    .values({ ...values, uuid, created: ctx.app.clock.now() })
    .execute();
  const row = await tx.selectFrom('ip_rules').select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow();
  return { id: row.id, uuid };
}

/**
 * A job's second half for a rule made by its create step: the network's rules are applied and the
 * rule (with the firewall rule opened for it, if any) becomes Active; when the router refuses,
 * both are deleted and the job fails with the router's reason.
 */
export async function applyCreated(
  ctx: Pick<CallContext, 'app'>,
  uuid: string,
  what: string,
): Promise<IpRuleRow> {
  const { app } = ctx;
  const db = app.store.db;
  const rule = await db.selectFrom('ip_rules').selectAll().where('uuid', '=', uuid).executeTakeFirst();
  if (!rule) throw invalidParameter(`The ${what} ${uuid} was deleted before it could be applied`);
  const related = await db.selectFrom('ip_rules').select('id').where('related_id', '=', rule.id).execute();
  const ids = [rule.id, ...related.map((r) => r.id)];
  await applyOrUndo(app, rule.network_id, `apply ${what} ${uuid}`, async () => {
    await db.updateTable('ip_rules').set({ state: 'Revoke' }).where('id', 'in', ids).execute();
    await inTransaction({ db }, (tx) => deleteRules(tx, ids));
  });
  await activateRules(app, ids);
  return db.selectFrom('ip_rules').selectAll().where('id', '=', rule.id).executeTakeFirstOrThrow();
}

/** The VM's NIC in a network (431 when it has none): where its forwarded traffic goes. */
export async function vmNicIn(
  app: App,
  vm: { id: number; uuid: string },
  network: NetworkRow,
  guestIp: string | undefined,
): Promise<string> {
  const nics = await app.store.db
    .selectFrom('nics')
    .select('ip4')
    .where('vm_id', '=', vm.id)
    .where('network_id', '=', network.id)
    .where('removed', 'is', null)
    .where('router_id', 'is', null)
    .execute();
  const ips = nics.map((n) => n.ip4).filter((x): x is string => x !== null);
  if (ips.length === 0)
    throw invalidParameter(`Virtual machine ${vm.uuid} has no NIC in network ${network.name}`);
  if (guestIp === undefined) return ips[0] as string;
  if (!ips.includes(guestIp.trim()))
    throw invalidParameter(
      `Virtual machine ${vm.uuid} has no guest IP ${guestIp} in network ${network.name}`,
    );
  return guestIp.trim();
}

/**
 * Removes what a VM being expunged is the target of, in the expunge's transaction: its port
 * forwarding and IP forwarding rules (with the firewall rules opened for them) and its static NAT
 * (load balancer memberships: removeVmFromLoadBalancers). Returns the networks whose routers must
 * be told: call applyNetworkRules for each after committing.
 */
export async function removeVmRules(tx: Tx, vmId: number): Promise<number[]> {
  const rules = await tx
    .selectFrom('ip_rules')
    .select(['id', 'network_id'])
    .where('vm_id', '=', vmId)
    .execute();
  const ruleIds = rules.map((r) => r.id);
  const related = ruleIds.length
    ? await tx.selectFrom('ip_rules').select('id').where('related_id', 'in', ruleIds).execute()
    : [];
  await deleteRules(tx, [...ruleIds, ...related.map((r) => r.id)]);
  const nats = await tx
    .selectFrom('public_ips')
    .select('network_id')
    .where('static_nat_vm_id', '=', vmId)
    .execute();
  await tx
    .updateTable('public_ips')
    .set({ static_nat_vm_id: null, static_nat_vm_ip: null })
    .where('static_nat_vm_id', '=', vmId)
    .execute();
  return [...new Set([...rules, ...nats].map((r) => r.network_id).filter((x): x is number => x !== null))];
}
