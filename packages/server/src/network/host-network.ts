/**
 * Guest networking on hosts, driven from the server: a network's bridge and VXLAN link on every
 * host that carries it (setupNetwork), the NICs' bridge and security group filtering in the VM
 * spec, and the filtering of running VMs brought up to date when rules or group members change
 * (applySecurityRules). Routers (DHCP, DNS, metadata, passwords) are in routers.ts.
 *
 * Cost per VM start is kept low: which hosts carry a network is remembered in memory (loaded
 * from the database once per network), and a host is sent setupNetwork only when its view of the
 * network (peers, gateway) changed or its agent connection is new.
 */
import type { NicSecurity, SecurityRule, VmSpec } from '@nimbostack/protocol';

type VmNic = VmSpec['nics'][number];

import type { App } from '../context.ts';
import type { NetworkRow } from '../db/schema.ts';
import { internalError } from '../errors.ts';
import { ipv4ToInt, netmaskBits } from '../infra/common.ts';

export const VNI_BASE = 5000;

/**
 * A guest network's VXLAN id: the one an Advanced zone's network holds (networks.vni, taken from
 * its physical network's range), else the Basic network's deterministic one, so every host and
 * server agrees without storing it. An isolated network that is not implemented has none.
 */
export function vniOf(network: Pick<NetworkRow, 'id' | 'vni' | 'guest_type'>): number | undefined {
  if (network.vni !== null) return network.vni;
  return network.guest_type === 'Isolated' ? undefined : VNI_BASE + network.id;
}

/** The network's bridge on every host: deterministic and at most 15 characters (IFNAMSIZ). */
export function bridgeOf(network: Pick<NetworkRow, 'id'>): string {
  return `nsbr${network.id.toString(36)}`;
}

/** The network's CIDR in the a.b.c.d/n form agents take. */
function cidrOf(network: Pick<NetworkRow, 'cidr' | 'gateway' | 'netmask'>): string {
  if (network.cidr && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(network.cidr)) return network.cidr;
  const bits = netmaskBits(network.netmask ?? '255.255.255.0') ?? 24;
  const base = (ipv4ToInt(network.gateway ?? '0.0.0.0') & (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0)) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (base >>> s) & 255).join('.')}/${bits}`;
}

/** Whether a network offering's services include security groups. */
export function hasSecurityGroups(services: string): boolean {
  return services.split(',').some((s) => s.startsWith('SecurityGroup:'));
}

/**
 * The network as a host carries it. An isolated network's router holds the gateway address
 * itself, so no host ever gets it on its bridge.
 */
export function guestNetwork(
  network: Pick<
    NetworkRow,
    'id' | 'uuid' | 'cidr' | 'gateway' | 'netmask' | 'vni' | 'guest_type' | 'network_domain'
  >,
  opts: { gatewayOnHost: boolean; peers: string[] },
) {
  const vni = vniOf(network);
  return {
    uuid: network.uuid,
    bridge: bridgeOf(network),
    cidr: cidrOf(network),
    gateway: network.gateway ?? '0.0.0.0',
    gatewayOnHost: opts.gatewayOnHost && network.guest_type !== 'Isolated',
    ...(vni !== undefined ? { vni } : {}),
    peers: opts.peers,
    domain: network.network_domain ?? 'cloud.internal',
  };
}

interface NetworkHosts {
  /** Hosts carrying the network: running VMs or the router on it. */
  hosts: Set<number>;
  /** The router's host, which gets the gateway address on its bridge. */
  routerHost: number | null;
  /** Bumped whenever hosts or routerHost change: every host's view is then out of date. */
  generation: number;
  /**
   * Carriers known to lack the current view (their last update failed, or a carrier went Down
   * since): the next start anywhere in the network updates them.
   */
  behind: Set<number>;
}

interface State {
  networks: Map<number, NetworkHosts>;
  loading: Map<number, Promise<NetworkHosts>>;
  /**
   * Per agent connection (one may carry many hosts), keyed by host/network: the generation last
   * sent to that host, and the send
   * (concurrent VM starts wait for one send instead of repeating it).
   */
  setUp: WeakMap<object, Map<string, { generation: number; done: Promise<void> }>>;
  addresses: Map<number, string>;
}

const states = new WeakMap<App, State>();

function stateOf(app: App): State {
  let s = states.get(app);
  if (!s) {
    s = { networks: new Map(), loading: new Map(), setUp: new WeakMap(), addresses: new Map() };
    states.set(app, s);
  }
  return s;
}

/** Which hosts carry a network, loaded from the database the first time (e.g. after a restart). */
async function networkHosts(app: App, networkId: number): Promise<NetworkHosts> {
  const s = stateOf(app);
  const known = s.networks.get(networkId);
  if (known) return known;
  let loading = s.loading.get(networkId);
  if (!loading) {
    loading = (async () => {
      const db = app.store.db;
      const vmHosts = await db
        .selectFrom('nics')
        .innerJoin('vms', 'vms.id', 'nics.vm_id')
        .select('vms.host_id')
        .distinct()
        .where('nics.network_id', '=', networkId)
        .where('nics.removed', 'is', null)
        .where('vms.host_id', 'is not', null)
        .where('vms.removed', 'is', null)
        .execute();
      const router = await db
        .selectFrom('routers')
        .select('host_id')
        // The network's own router, or (a VPC tier) the router holding a NIC in it.
        .where((eb) =>
          eb.or([
            eb('live_network_id', '=', networkId),
            eb(
              'id',
              'in',
              eb
                .selectFrom('nics')
                .select('nics.router_id')
                .where('nics.network_id', '=', networkId)
                .where('nics.removed', 'is', null),
            ),
          ]),
        )
        .where('state', 'in', ['Running', 'Starting'])
        .executeTakeFirst();
      const entry: NetworkHosts = {
        hosts: new Set(vmHosts.map((h) => h.host_id!).filter((h) => h !== null)),
        routerHost: router?.host_id ?? null,
        generation: 1,
        behind: new Set(),
      };
      if (entry.routerHost !== null) entry.hosts.add(entry.routerHost);
      s.networks.set(networkId, entry);
      s.loading.delete(networkId);
      return entry;
    })();
    s.loading.set(networkId, loading);
  }
  return loading;
}

async function addressesOf(app: App, hostIds: number[]): Promise<Map<number, string>> {
  const s = stateOf(app);
  const missing = hostIds.filter((id) => !s.addresses.has(id));
  if (missing.length) {
    const rows = await app.store.db
      .selectFrom('hosts')
      .select(['id', 'private_ip'])
      .where('id', 'in', missing)
      .execute();
    for (const r of rows) if (r.private_ip) s.addresses.set(r.id, r.private_ip);
  }
  return s.addresses;
}

/**
 * Makes `hostId` carry the network (and, when `routerHost` is given, moves the gateway there),
 * then brings every carrying host's view up to date. The host asked for must succeed (the VM or
 * router about to start there needs the bridge); other hosts are updated alongside without being
 * waited for, and a failure there is logged: their VMs keep working, only the new host's traffic
 * to them waits for the next update.
 */
export async function carryNetwork(
  app: App,
  network: NetworkRow,
  hostId: number,
  opts: { routerHost?: number | null } = {},
): Promise<void> {
  const s = stateOf(app);
  const entry = await networkHosts(app, network.id);
  // What this call changes: the carriers (every carrier's peers change) or only where the
  // gateway is (the old and the new router host see their bridge change, nobody else).
  let peersChanged = false;
  const gatewayMoved = new Set<number>();
  if (!entry.hosts.has(hostId)) {
    entry.hosts.add(hostId);
    entry.generation++;
    peersChanged = true;
  }
  if (opts.routerHost !== undefined && opts.routerHost !== entry.routerHost) {
    if (entry.routerHost !== null) gatewayMoved.add(entry.routerHost);
    entry.routerHost = opts.routerHost;
    if (opts.routerHost !== null) {
      gatewayMoved.add(opts.routerHost);
      if (!entry.hosts.has(opts.routerHost)) peersChanged = true;
      entry.hosts.add(opts.routerHost);
    }
    entry.generation++;
  }
  const generation = entry.generation;
  const connected = [...entry.hosts].filter((h) => app.agents.isConnected(h));
  // Every carrying host's address, sorted once per call: each host's peers are all but its own.
  let carriers: Promise<{ host: number; address: string }[]> | undefined;
  const peersOf = async (h: number): Promise<string[]> => {
    carriers ??= addressesOf(app, connected).then((known) =>
      connected
        .flatMap((host) => {
          const address = known.get(host);
          return address === undefined ? [] : [{ host, address }];
        })
        .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)),
    );
    return (await carriers).filter((c) => c.host !== h).map((c) => c.address);
  };
  /** Brings host h to this generation: the send already under way for it, or a new one after it. */
  const bring = (h: number): Promise<void> => {
    const conn = app.agents.connectionOf(h);
    const seen = conn && (s.setUp.get(conn) ?? new Map());
    if (conn && seen) s.setUp.set(conn, seen);
    const key = `${h}/${network.id}`;
    const last = seen?.get(key);
    if (last && last.generation >= generation) return last.done;
    const done = (async () => {
      // Sends to one host go in order, so an older peer list never lands after a newer one.
      await last?.done.catch(() => undefined);
      const peers = await peersOf(h);
      await app.agents.call(h, 'setupNetwork', {
        network: guestNetwork(network, { gatewayOnHost: entry.routerHost === h, peers }),
      });
    })();
    if (seen) {
      const record = { generation, done };
      seen.set(key, record);
      // A failed send is forgotten, so the next start tries again.
      done.catch(() => {
        if (seen.get(key) === record) seen.delete(key);
      });
    }
    return done;
  };
  // When this call changed the view, the other carrying hosts learn it alongside; the start waits
  // only for its own host, which must have the bridge before the VM (or router) plugs into it.
  // An unchanged view is already theirs, also after a restart of this server (bridges and VXLAN
  // forwarding entries are kernel state on the hosts): re-sending it would cost every carrier the
  // whole peer list, O(hosts²) for the first start after a restart. A router starting on a host
  // that already carries the network changes only the gateway's place: the new network's first
  // router on a 2,000-host network sent 2,000 peer lists of 2,000 addresses before.
  const others = connected.filter(
    (h) => h !== hostId && (peersChanged || gatewayMoved.has(h) || entry.behind.has(h)),
  );
  for (const h of others)
    bring(h).then(
      () => entry.behind.delete(h),
      (err) => {
        entry.behind.add(h);
        app.log.warn({ host: h, network: network.uuid, err: (err as Error).message }, 'setupNetwork failed');
      },
    );
  await bring(hostId);
}

/** Forgets hosts that went Down: they carry nothing until a VM or router starts there again. */
export function hostsDown(app: App, hostIds: number[]): void {
  const down = new Set(hostIds);
  for (const entry of stateOf(app).networks.values()) {
    let changed = false;
    for (const h of hostIds) if (entry.hosts.delete(h)) changed = true;
    if (entry.routerHost !== null && down.has(entry.routerHost)) {
      entry.routerHost = null;
      changed = true;
    }
    if (changed) {
      entry.generation++;
      // The carriers left still list the lost host as a peer: the next start updates them.
      for (const h of entry.hosts) entry.behind.add(h);
    }
  }
}

/**
 * Tells a host to tear a network down; a failure is logged and answered `false`. A deleted
 * network's routers are stopped there first: one that a forced deletion could not stop may still
 * hold the bridge.
 */
async function teardownOn(app: App, hostId: number, network: NetworkRow, why: string): Promise<boolean> {
  if (network.removed !== null) {
    const routers = await app.store.db
      .selectFrom('routers')
      .select('name')
      .where('network_id', '=', network.id)
      .execute();
    for (const r of routers)
      await app.agents.call(hostId, 'stopRouter', { name: r.name }).catch(() => undefined);
  }
  return app.agents
    .call(hostId, 'teardownNetwork', { network: guestNetwork(network, { gatewayOnHost: false, peers: [] }) })
    .then(
      () => true,
      (err) => {
        app.log.warn({ host: hostId, network: network.uuid, err: (err as Error).message }, why);
        return false;
      },
    );
}

/**
 * A host being removed (no VM and no router left on it): it is told to tear down every guest
 * network of its zone and every deleted one it still held, so no bridge or VXLAN link of ours
 * stays behind (a network it never carried is already torn down there), and no network counts it
 * as a carrier any more. A host that does not answer keeps what it has; the removal goes on, as
 * it does for a Down host.
 */
export async function hostRemoved(app: App, host: { id: number; zone_id: number }): Promise<void> {
  hostsDown(app, [host.id]);
  const db = app.store.db;
  const networks = app.agents.isConnected(host.id)
    ? await db
        .selectFrom('networks')
        .selectAll()
        .where('zone_id', '=', host.zone_id)
        .where('gateway', 'is not', null)
        .where((eb) =>
          eb.or([
            eb('removed', 'is', null),
            eb(
              'id',
              'in',
              eb.selectFrom('network_teardowns').select('network_id').where('host_id', '=', host.id),
            ),
          ]),
        )
        .execute()
    : [];
  for (const network of networks)
    await teardownOn(app, host.id, network, 'teardownNetwork on a removed host failed');
  await db.deleteFrom('network_teardowns').where('host_id', '=', host.id).execute();
}

/**
 * Hosts that came Up tear down the deleted networks they missed (they were not connected when the
 * network was deleted); each one done is settled. In the background: a status change does not
 * wait for agents.
 */
export function settleTeardowns(app: App, hostIds: number[]): void {
  const run = async () => {
    const db = app.store.db;
    // Few rows at any time: read them all rather than bind thousands of host ids.
    const up = new Set(hostIds);
    const pending = (await db.selectFrom('network_teardowns').selectAll().execute()).filter((r) =>
      up.has(r.host_id),
    );
    for (const row of pending) {
      const network = await db
        .selectFrom('networks')
        .selectAll()
        .where('id', '=', row.network_id)
        .executeTakeFirst();
      if (
        network &&
        !(await teardownOn(app, row.host_id, network, 'teardownNetwork of a deleted network failed'))
      )
        continue;
      await db
        .deleteFrom('network_teardowns')
        .where('network_id', '=', row.network_id)
        .where('host_id', '=', row.host_id)
        .execute();
    }
  };
  run().catch((err) => app.log.error({ err }, 'settling network teardowns failed'));
}

/**
 * A network being deleted (its routers already stopped): every connected host of its zone is told
 * to tear it down — bridge, VXLAN link and, with no filtered NIC left, our nftables tables. Every
 * host and not only the carriers this server remembers, because that memory starts empty after a
 * restart while the bridges stay; a host that never carried the network has nothing to remove.
 * Hosts that are not connected are skipped. A host that fails fails the deletion unless `forced`,
 * which only logs it. Either way this server forgets the network's hosts, so a start on it after
 * a failed deletion sends setupNetwork afresh. Answers the hosts left holding the network (skipped
 * or failed), which the deletion records so that they tear it down when they come Up.
 */
export async function tearDownNetwork(app: App, network: NetworkRow, forced: boolean): Promise<number[]> {
  const s = stateOf(app);
  const hosts = await app.store.db
    .selectFrom('hosts')
    .select(['id', 'name'])
    .where('zone_id', '=', network.zone_id)
    .where('removed', 'is', null)
    .execute();
  const spec = guestNetwork(network, { gatewayOnHost: false, peers: [] });
  const failures: string[] = [];
  const behind = hosts.filter((h) => !app.agents.isConnected(h.id)).map((h) => h.id);
  await Promise.all(
    hosts
      .filter((h) => app.agents.isConnected(h.id))
      .map(async (h) => {
        const conn = app.agents.connectionOf(h.id);
        const seen = conn && s.setUp.get(conn);
        const key = `${h.id}/${network.id}`;
        // A setupNetwork still under way must not land after the teardown and rebuild the bridge.
        await seen?.get(key)?.done.catch(() => undefined);
        seen?.delete(key);
        try {
          await app.agents.call(h.id, 'teardownNetwork', { network: spec });
        } catch (err) {
          app.log.warn(
            { host: h.id, network: network.uuid, err: (err as Error).message, forced },
            'teardownNetwork failed',
          );
          failures.push(`host ${h.name}: ${(err as Error).message}`);
          behind.push(h.id);
        }
      }),
  );
  s.networks.delete(network.id);
  if (failures.length && !forced)
    throw internalError(
      `Failed to delete network ${network.name}: unable to tear it down on ${failures.join('; ')} (retry, or delete with forced=true to leave it there)`,
    );
  return behind;
}

// ---------------------------------------------------------------------------------------------
// Security groups

const PROTOCOL_NUMBERS: Record<string, SecurityRule['protocol']> = {
  '1': 'icmp',
  '6': 'tcp',
  '17': 'udp',
};

interface RuleRow {
  group_id: number;
  type: string;
  protocol: string;
  start_port: number | null;
  end_port: number | null;
  icmp_type: number | null;
  icmp_code: number | null;
  cidr: string | null;
  allowed_group_id: number | null;
}

/**
 * A stored rule as hosts enforce it, with a peer group resolved to its members' addresses.
 * Protocols hosts do not filter by (ah, esp, gre, other numbers) and IPv6 CIDRs are left out: the
 * guest network is IPv4 only. A rule that admits no address at all is dropped.
 */
function hostRule(r: RuleRow, members: Map<number, string[]>): SecurityRule | undefined {
  const protocol =
    r.protocol === 'tcp' || r.protocol === 'udp' || r.protocol === 'icmp' || r.protocol === 'all'
      ? r.protocol
      : PROTOCOL_NUMBERS[r.protocol];
  if (!protocol) return undefined;
  const cidrs =
    r.allowed_group_id !== null
      ? (members.get(r.allowed_group_id) ?? []).map((ip) => `${ip}/32`)
      : r.cidr && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(r.cidr)
        ? [r.cidr]
        : [];
  if (cidrs.length === 0) return undefined;
  const rule: SecurityRule = { protocol, cidrs };
  if (protocol === 'tcp' || protocol === 'udp') {
    // 0-0 is upstream's "every port".
    if (!(r.start_port === 0 && r.end_port === 0) && r.start_port !== null) {
      rule.startPort = r.start_port;
      rule.endPort = r.end_port ?? r.start_port;
    }
  } else if (protocol === 'icmp') {
    rule.icmpType = r.icmp_type ?? -1;
    rule.icmpCode = r.icmp_code ?? -1;
  }
  return rule;
}

/** States in which a VM's NICs pass traffic, so its address counts as a group member's. */
const LIVE_STATES = ['Running', 'Migrating', 'Stopping'];

/**
 * The filtering of each given VM: the union of its groups' rules, with peer groups resolved to
 * their live members' addresses (`alsoLive`: a VM being started, which counts as live). Three
 * queries for any number of VMs. A VM in no group gets nothing in and everything out.
 */
export async function securityOf(
  app: App,
  vmIds: number[],
  alsoLive?: number,
): Promise<Map<number, NicSecurity>> {
  const out = new Map<number, NicSecurity>();
  if (vmIds.length === 0) return out;
  const db = app.store.db;
  const links = await db
    .selectFrom('security_group_vm_map')
    .select(['vm_id', 'group_id'])
    .where('vm_id', 'in', vmIds)
    .execute();
  const groupIds = [...new Set(links.map((l) => l.group_id))];
  const rules: RuleRow[] = groupIds.length
    ? await db
        .selectFrom('security_group_rules')
        .select([
          'group_id',
          'type',
          'protocol',
          'start_port',
          'end_port',
          'icmp_type',
          'icmp_code',
          'cidr',
          'allowed_group_id',
        ])
        .where('group_id', 'in', groupIds)
        .orderBy('id')
        .execute()
    : [];
  const peers = [...new Set(rules.map((r) => r.allowed_group_id).filter((g): g is number => g !== null))];
  const members = new Map<number, string[]>();
  if (peers.length) {
    const rows = await db
      .selectFrom('security_group_vm_map as m')
      .innerJoin('vms', 'vms.id', 'm.vm_id')
      .innerJoin('nics', 'nics.vm_id', 'vms.id')
      .select(['m.group_id', 'nics.ip4'])
      .where('m.group_id', 'in', peers)
      .where('vms.removed', 'is', null)
      .where('nics.removed', 'is', null)
      .where((eb) =>
        alsoLive === undefined
          ? eb('vms.state', 'in', LIVE_STATES)
          : eb.or([eb('vms.state', 'in', LIVE_STATES), eb('vms.id', '=', alsoLive)]),
      )
      .orderBy('nics.id')
      .execute();
    for (const r of rows) {
      if (!r.ip4) continue;
      const list = members.get(r.group_id) ?? [];
      if (!list.includes(r.ip4)) list.push(r.ip4);
      members.set(r.group_id, list);
    }
  }
  const byGroup = new Map<number, RuleRow[]>();
  for (const r of rules) byGroup.set(r.group_id, [...(byGroup.get(r.group_id) ?? []), r]);
  const groupsOf = new Map<number, number[]>();
  for (const l of links) groupsOf.set(l.vm_id, [...(groupsOf.get(l.vm_id) ?? []), l.group_id]);
  for (const vmId of vmIds) {
    const ingress: SecurityRule[] = [];
    const egress: SecurityRule[] = [];
    let anyEgress = false;
    for (const g of groupsOf.get(vmId) ?? []) {
      for (const r of byGroup.get(g) ?? []) {
        if (r.type === 'egress') anyEgress = true;
        const rule = hostRule(r, members);
        if (rule) (r.type === 'egress' ? egress : ingress).push(rule);
      }
    }
    // Egress is open until a group has an egress rule; then only what the rules admit leaves.
    out.set(vmId, anyEgress ? { ingress, egress } : { ingress });
  }
  return out;
}

/** The filtering of a NIC with its network's router kept reachable (DHCP, DNS, metadata, passwords). */
function withRouter(security: NicSecurity, router: string | null): NicSecurity {
  return router ? { ...security, router } : security;
}

/** A VM's NICs as its host plugs them: the network's bridge, and filtering on SG networks. */
export async function nicsForHost(app: App, vmId: number, alsoLive?: number): Promise<VmNic[]> {
  const nics = await app.store.db
    .selectFrom('nics')
    .innerJoin('networks', 'networks.id', 'nics.network_id')
    .innerJoin('network_offerings', 'network_offerings.id', 'networks.network_offering_id')
    .leftJoin('routers', 'routers.live_network_id', 'networks.id')
    .select([
      'nics.mac',
      'nics.ip4',
      'nics.device_id',
      'networks.id as network_id',
      'networks.uuid as network',
      'network_offerings.services',
      'routers.guest_ip as router',
    ])
    .where('nics.vm_id', '=', vmId)
    .where('nics.removed', 'is', null)
    .orderBy('nics.device_id')
    .execute();
  const secured = nics.some((n) => hasSecurityGroups(n.services));
  const security = secured ? (await securityOf(app, [vmId], alsoLive)).get(vmId) : undefined;
  return nics.map((n) => ({
    mac: n.mac,
    ip: n.ip4 ?? undefined,
    network: n.network,
    bridge: bridgeOf({ id: n.network_id }),
    deviceId: n.device_id,
    ...(security && hasSecurityGroups(n.services) ? { security: withRouter(security, n.router) } : {}),
  }));
}

/**
 * Sends each given VM that is running its current filtering (applySecurityRules), all at once.
 * Called after the change is committed; failures are logged, not thrown: the rule change itself
 * succeeded, and the VM's next start applies the filtering again.
 */
export async function refreshSecurity(app: App, vmIds: number[]): Promise<void> {
  if (vmIds.length === 0) return;
  const db = app.store.db;
  const nics = await db
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .innerJoin('networks', 'networks.id', 'nics.network_id')
    .innerJoin('network_offerings', 'network_offerings.id', 'networks.network_offering_id')
    .leftJoin('routers', 'routers.live_network_id', 'networks.id')
    .select([
      'routers.guest_ip as router',
      'vms.id as vm_id',
      'vms.host_id',
      'vms.instance_name',
      'nics.mac',
      'nics.ip4',
      'network_offerings.services',
    ])
    .where('nics.vm_id', 'in', vmIds)
    .where('nics.removed', 'is', null)
    .where('vms.state', '=', 'Running')
    .where('vms.host_id', 'is not', null)
    .execute();
  const secured = nics.filter((n) => hasSecurityGroups(n.services) && n.ip4);
  if (secured.length === 0) return;
  const security = await securityOf(app, [...new Set(secured.map((n) => n.vm_id))]);
  const byVm = new Map<number, typeof secured>();
  for (const n of secured) byVm.set(n.vm_id, [...(byVm.get(n.vm_id) ?? []), n]);
  await Promise.all(
    [...byVm].map(async ([vmId, list]) => {
      const first = list[0]!;
      try {
        await app.agents.call(first.host_id!, 'applySecurityRules', {
          vm: first.instance_name,
          nics: list.map((n) => ({
            mac: n.mac,
            ip: n.ip4!,
            security: withRouter(security.get(vmId)!, n.router),
          })),
        });
      } catch (err) {
        app.log.warn({ vm: first.instance_name, err: (err as Error).message }, 'applySecurityRules failed');
      }
    }),
  );
}

/** Running VMs whose filtering names a group `vmId` is a member of (so depends on its address). */
export async function vmsReferencing(app: App, vmId: number): Promise<number[]> {
  const rows = await app.store.db
    .selectFrom('security_group_vm_map as mine')
    .innerJoin('security_group_rules as r', 'r.allowed_group_id', 'mine.group_id')
    .innerJoin('security_group_vm_map as theirs', 'theirs.group_id', 'r.group_id')
    .innerJoin('vms', 'vms.id', 'theirs.vm_id')
    .select('vms.id')
    .distinct()
    .where('mine.vm_id', '=', vmId)
    .where('vms.id', '!=', vmId)
    .where('vms.state', '=', 'Running')
    .execute();
  return rows.map((r) => r.id);
}

/** Running members of the given groups (a group's rules changed). */
export async function runningMembers(app: App, groupIds: number[]): Promise<number[]> {
  if (groupIds.length === 0) return [];
  const rows = await app.store.db
    .selectFrom('security_group_vm_map as m')
    .innerJoin('vms', 'vms.id', 'm.vm_id')
    .select('vms.id')
    .distinct()
    .where('m.group_id', 'in', groupIds)
    .where('vms.state', '=', 'Running')
    .execute();
  return rows.map((r) => r.id);
}

/** After a VM started, stopped or moved: its peers' filtering that names its groups changes. */
export async function refreshPeersOf(app: App, vmId: number): Promise<void> {
  try {
    await refreshSecurity(app, await vmsReferencing(app, vmId));
  } catch (err) {
    app.log.warn({ vm: vmId, err: (err as Error).message }, 'could not update the security rules of peers');
  }
}
