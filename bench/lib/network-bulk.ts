/**
 * The networks benchmark's bulk path: isolated networks copied, row for row, from a network the
 * API built (bench/lib/network-zone.ts's apiNetwork), so every column is what the API writes today
 * without this file naming them. A copy gets new ids and uuids, its own owner, VNI, public
 * addresses, guest addresses, MACs, names, hosts and timestamps; every integer reference is mapped
 * to the copy's rows and every text column has the sample's identifiers (uuids, addresses, MACs,
 * names, instance names, the account name, `vxlan://<vni>`) replaced by the copy's, so event
 * descriptions read as the API would have written them.
 *
 * Copied: the network and its guest IP range, the VMs with their ROOT volumes, the NICs (the
 * router's too) and guest address allocations, the router, the two public addresses (Free rows of
 * the zone's range taken as acquirePublicIp takes them), the rules (port forwarding with the
 * firewall rules they open, firewall, egress, load balancers) with their members, and the events.
 * Then the owners' resource counts, the hosts' allocated CPU and memory and the pool's allocated
 * bytes are brought up to date, as the API's reservations would have left them.
 * Not copied: the async-job rows of those calls (job history, not state).
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Store } from '../../packages/server/src/db/connection.ts';
import type { Database } from '../../packages/server/src/db/schema.ts';

type Row = Record<string, any>;

/** The rows of one network built through the API. */
export interface Sample {
  network: Row;
  ranges: Row[];
  vms: Row[];
  volumes: Row[];
  nics: Row[];
  allocations: Row[];
  router: Row;
  ips: Row[];
  rules: Row[];
  members: Row[];
  events: Row[];
  account: { id: number; name: string; userId: number };
}

export async function readSample(store: Store, networkUuid: string): Promise<Sample> {
  const db = store.db;
  const network = await db
    .selectFrom('networks')
    .selectAll()
    .where('uuid', '=', networkUuid)
    .executeTakeFirstOrThrow();
  const nics = await db
    .selectFrom('nics')
    .selectAll()
    .where('network_id', '=', network.id)
    .orderBy('id')
    .execute();
  const vmIds = nics.filter((n) => n.router_id === null).map((n) => n.vm_id);
  const vms = await db.selectFrom('vms').selectAll().where('id', 'in', vmIds).orderBy('id').execute();
  const volumes = await db
    .selectFrom('volumes')
    .selectAll()
    .where('vm_id', 'in', vmIds)
    .orderBy('id')
    .execute();
  const router = await db
    .selectFrom('routers')
    .selectAll()
    .where('network_id', '=', network.id)
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  const ips = await db
    .selectFrom('public_ips')
    .selectAll()
    .where('network_id', '=', network.id)
    .orderBy('id')
    .execute();
  const rules = await db
    .selectFrom('ip_rules')
    .selectAll()
    .where('network_id', '=', network.id)
    .orderBy('id')
    .execute();
  const members = rules.length
    ? await db
        .selectFrom('lb_members')
        .selectAll()
        .where(
          'rule_id',
          'in',
          rules.map((r) => r.id),
        )
        .execute()
    : [];
  const uuids = [
    network.uuid,
    router.uuid,
    ...vms.map((v) => v.uuid),
    ...ips.map((i) => i.uuid),
    ...rules.map((r) => r.uuid),
  ];
  const events = await db
    .selectFrom('events')
    .selectAll()
    .where('resource_id', 'in', uuids)
    .orderBy('id')
    .execute();
  const account = await db
    .selectFrom('accounts')
    .select(['id', 'name'])
    .where('id', '=', network.account_id!)
    .executeTakeFirstOrThrow();
  const user = await db
    .selectFrom('users')
    .select('id')
    .where('account_id', '=', account.id)
    .orderBy('id')
    .executeTakeFirstOrThrow();
  return {
    network,
    ranges: await db.selectFrom('vlan_ip_ranges').selectAll().where('network_id', '=', network.id).execute(),
    vms,
    volumes,
    nics,
    allocations: await db
      .selectFrom('guest_ip_allocations')
      .selectAll()
      .where('network_id', '=', network.id)
      .execute(),
    router,
    ips,
    rules,
    members,
    events,
    account: { id: account.id, name: account.name, userId: user.id },
  };
}

export interface CopyTarget {
  sample: Sample;
  name: string;
  account: { id: number; name: string; domainId: number; userId: number };
}

/** What a copy is, for the benchmark's own use (rules on it, its router). */
export interface Copy {
  networkUuid: string;
  networkId: number;
  accountId: number;
  vmUuids: string[];
  ipUuids: string[];
  routerName: string;
}

/** What the agent process must hold before the rows appear (see network-agent.ts). */
export interface AgentLoad {
  vms: Record<string, [string, string, number, number, number][]>;
  /** Router copies: the sample router's name on its host, the copy's name and text replacements. */
  routers: Record<string, RouterCopy[]>;
}

export interface RouterCopy {
  /** The sample router's name: the agent copies its spec. */
  like: string;
  name: string;
  vni: number;
  bridge: string;
  replace: [string, string][];
}

const ipText = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const ipNum = (s: string) => s.split('.').reduce((a, b) => a * 256 + Number(b), 0);
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function macMaker(prefix: string, used: Set<string>) {
  return () => {
    for (;;) {
      const b = Array.from({ length: 4 }, () =>
        Math.floor(Math.random() * 256)
          .toString(16)
          .padStart(2, '0'),
      );
      const mac = `${prefix}:${b.join(':')}`;
      if (!used.has(mac)) {
        used.add(mac);
        return mac;
      }
    }
  };
}

/** Replaces whole identifiers (not parts of longer ones) in every string of a row. */
export function replacer(pairs: [string, string][]) {
  const map = new Map(pairs);
  const re = new RegExp(
    `(?<![\\w.-])(${[...map.keys()]
      .sort((a, b) => b.length - a.length)
      .map(escapeRe)
      .join('|')})(?![\\w]|\\.\\d)`,
    'g',
  );
  return (row: Row): Row => {
    const out: Row = {};
    for (const [k, v] of Object.entries(row))
      out[k] = typeof v === 'string' ? v.replace(re, (m) => map.get(m) ?? m) : v;
    return out;
  };
}

async function maxId(store: Store, table: string): Promise<number> {
  const r = await sql<{ m: number | null }>`select max(id) as m from ${sql.table(table)}`.execute(store.db);
  return Number(r.rows[0]?.m ?? 0);
}

const VALUES_PER_STATEMENT = 30_000;
async function insertRows(tx: Store['db'], table: keyof Database & string, rows: Row[]): Promise<void> {
  if (rows.length === 0) return;
  const per = Math.max(1, Math.floor(VALUES_PER_STATEMENT / Object.keys(rows[0]!).length));
  for (let i = 0; i < rows.length; i += per)
    await tx
      .insertInto(table)
      .values(rows.slice(i, i + per) as never)
      .execute();
}

/**
 * Writes the copies. `push` gets what the agent must run (the VMs and routers, by host) and
 * resolves once the agent holds them; the rows are committed after that, in one transaction.
 */
export async function copyNetworks(
  store: Store,
  targets: CopyTarget[],
  opts: {
    zoneId: number;
    publicRangeId: number;
    vniRange: [number, number];
    hosts: { id: number; name: string; pod_id: number; cluster_id: number }[];
    push: (load: AgentLoad) => Promise<void>;
  },
): Promise<Copy[]> {
  const db = store.db;
  const ids: Record<string, number> = {};
  for (const t of [
    'networks',
    'vlan_ip_ranges',
    'vms',
    'volumes',
    'nics',
    'guest_ip_allocations',
    'routers',
    'ip_rules',
    'events',
  ])
    ids[t] = await maxId(store, t);
  const next = (t: string) => ++ids[t]!;
  const startIds = { ...ids };
  const usedVni = new Set(
    (await db.selectFrom('networks').select('vni').where('vni', 'is not', null).execute()).map((r) => r.vni),
  );
  let vniCursor = opts.vniRange[0];
  const takeVni = () => {
    while (usedVni.has(vniCursor)) vniCursor++;
    if (vniCursor > opts.vniRange[1]) throw new Error('the physical network has no VNI left');
    usedVni.add(vniCursor);
    return vniCursor;
  };
  // Free addresses of the range, taken at random as acquirePublicIp does.
  const free = await db
    .selectFrom('public_ips')
    .select(['id', 'uuid', 'ip4'])
    .where('range_id', '=', opts.publicRangeId)
    .where('state', '=', 'Free')
    .execute();
  for (let i = free.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [free[i], free[j]] = [free[j]!, free[i]!];
  }
  const macs = new Set((await db.selectFrom('nics').select('mac').execute()).map((r) => r.mac.toLowerCase()));
  const guestMac = macMaker('02:00', macs);
  const publicMac = macMaker('06:00', macs);

  const out: Record<string, Row[]> = {};
  const add = (table: string, row: Row) => {
    const list = out[table] ?? [];
    list.push(row);
    out[table] = list;
  };
  const ipUpdates: { id: number; set: Row }[] = [];
  const load: AgentLoad = { vms: {}, routers: {} };
  const copies: Copy[] = [];
  const now = Date.now();
  let hostTurn = 0;

  for (const [k, t] of targets.entries()) {
    const s = t.sample;
    const shift = now - s.network.created + k * 7;
    const time = (v: unknown) => (typeof v === 'number' && v > 1e12 ? v + shift : v);
    const vni = takeVni();
    const pairs: [string, string][] = [];
    const map = {
      vms: new Map<number, number>(),
      nics: new Map<number, number>(),
      rules: new Map<number, number>(),
      ips: new Map<number, number>(),
      ranges: new Map<number, number>(),
      events: new Map<number, number>(),
    };
    const networkId = next('networks');
    const networkUuid = randomUUID();
    pairs.push([s.network.uuid, networkUuid], [s.network.name, t.name], [s.account.name, t.account.name]);
    if (s.network.broadcast_uri) pairs.push([s.network.broadcast_uri, `vxlan://${vni}`]);
    // Hosts: the VMs go round the hosts; the router boots with the first VM, on its host.
    const vmHosts = s.vms.map(() => opts.hosts[hostTurn++ % opts.hosts.length]!);
    const routerHost = vmHosts[0]!;
    const vmCopies = s.vms.map((v, i) => {
      const id = next('vms');
      map.vms.set(v.id, id);
      const uuid = randomUUID();
      const name = v.name.replace(s.network.name, t.name);
      const instance = `i-${t.account.id}-${id}-VM`;
      pairs.push(
        [v.uuid, uuid],
        [v.name, name],
        [v.instance_name, instance],
        [`(for VM ${v.id})`, `(for VM ${id})`],
      );
      if (v.display_name !== v.name)
        pairs.push([v.display_name, v.display_name.replace(s.network.name, t.name)]);
      const host = vmHosts[i]!;
      return { v, id, uuid, instance, host };
    });
    // Guest addresses: the VMs' at random in the network's CIDR, the router keeps the gateway.
    const range = s.ranges[0]!;
    const taken = new Set(s.allocations.filter((a) => a.vm_id === 0).map((a) => a.ip_num as number));
    const guestIp = new Map<number, string>();
    for (const a of s.allocations) {
      if (a.vm_id === 0) continue;
      let n: number;
      do n = range.start_num + 1 + Math.floor(Math.random() * (range.end_num - range.start_num));
      while (taken.has(n));
      taken.add(n);
      guestIp.set(a.nic_id, ipText(n));
      pairs.push([a.ip4, ipText(n)]);
    }
    const routerId = next('routers');
    const routerName = `r-${routerId}-VM`;
    const routerUuid = randomUUID();
    pairs.push([s.router.uuid, routerUuid], [s.router.name, routerName]);
    const newPublicMac = s.router.public_mac ? publicMac() : null;
    if (s.router.public_mac) pairs.push([s.router.public_mac, newPublicMac!]);
    const nicMac = new Map<number, string>();
    for (const n of s.nics) {
      const mac = guestMac();
      nicMac.set(n.id, mac);
      pairs.push([n.mac, mac], [n.uuid, randomUUID()]);
      map.nics.set(n.id, next('nics'));
    }
    const ipCopies = s.ips.map((ip) => {
      const f = free.pop();
      if (!f) throw new Error('the public range has no free address left');
      map.ips.set(ip.id, f.id);
      pairs.push([ip.uuid, f.uuid], [ip.ip4, f.ip4]);
      return { ip, f };
    });
    for (const r of s.rules) {
      map.rules.set(r.id, next('ip_rules'));
      pairs.push([r.uuid, randomUUID()]);
    }
    for (const r of s.ranges) {
      map.ranges.set(r.id, next('vlan_ip_ranges'));
      pairs.push([r.uuid, randomUUID()]);
    }
    for (const v of s.volumes) pairs.push([v.uuid, randomUUID()]);
    for (const e of s.events) {
      map.events.set(e.id, next('events'));
      pairs.push([e.uuid, randomUUID()]);
    }
    const swap = replacer(pairs);
    const account = (id: number | null) => (id === s.account.id ? t.account.id : id);
    const domain = (id: number | null) => (id === s.network.domain_id ? t.account.domainId : id);
    const user = (id: number | null) => (id === s.account.userId ? t.account.userId : id);
    const timed = (row: Row) => {
      for (const c of ['created', 'updated', 'allocated', 'attached']) if (c in row) row[c] = time(row[c]);
      return row;
    };

    add(
      'networks',
      timed({
        ...swap(s.network),
        id: networkId,
        account_id: t.account.id,
        domain_id: t.account.domainId,
        vni,
      }),
    );
    for (const r of s.ranges)
      add('vlan_ip_ranges', timed({ ...swap(r), id: map.ranges.get(r.id), network_id: networkId }));
    for (const c of vmCopies) {
      add(
        'vms',
        timed({
          ...swap(c.v),
          id: c.id,
          uuid: c.uuid,
          instance_name: c.instance,
          account_id: t.account.id,
          domain_id: t.account.domainId,
          user_id: user(c.v.user_id),
          host_id: c.host.id,
          last_host_id: c.host.id,
          pod_id: c.host.pod_id,
          cluster_id: c.host.cluster_id,
        }),
      );
      const list = load.vms[c.host.name] ?? [];
      list.push([c.instance, c.uuid, c.v.cpu_number, c.v.cpu_speed, c.v.memory_mb * 1024 ** 2]);
      load.vms[c.host.name] = list;
    }
    for (const v of s.volumes) {
      const id = next('volumes');
      const vmId = map.vms.get(v.vm_id)!;
      add(
        'volumes',
        timed({
          ...swap(v),
          id,
          vm_id: vmId,
          name: v.name.replace(String(v.vm_id), String(vmId)),
          account_id: t.account.id,
          domain_id: t.account.domainId,
        }),
      );
    }
    for (const n of s.nics)
      add(
        'nics',
        timed({
          ...swap(n),
          id: map.nics.get(n.id),
          vm_id: n.router_id !== null ? n.vm_id : map.vms.get(n.vm_id),
          network_id: networkId,
          mac: nicMac.get(n.id),
          ip4: n.router_id !== null ? n.ip4 : guestIp.get(n.id),
          router_id: n.router_id !== null ? routerId : null,
        }),
      );
    for (const a of s.allocations) {
      const ip4 = a.vm_id === 0 ? a.ip4 : guestIp.get(a.nic_id)!;
      add(
        'guest_ip_allocations',
        timed({
          ...swap(a),
          id: next('guest_ip_allocations'),
          network_id: networkId,
          range_id: map.ranges.get(a.range_id) ?? a.range_id,
          ip4,
          ip_num: ipNum(ip4),
          vm_id: a.vm_id === 0 ? 0 : map.vms.get(a.vm_id),
          nic_id: map.nics.get(a.nic_id),
          account_id: account(a.account_id),
        }),
      );
    }
    add(
      'routers',
      timed({
        ...swap(s.router),
        id: routerId,
        name: routerName,
        network_id: networkId,
        live_network_id: s.router.live_network_id === null ? null : networkId,
        host_id: routerHost.id,
        last_host_id: routerHost.id,
        pod_id: routerHost.pod_id,
        nic_id: map.nics.get(s.router.nic_id),
        guest_mac: nicMac.get(s.router.nic_id),
        public_mac: newPublicMac,
      }),
    );
    const routers = load.routers[routerHost.name] ?? [];
    routers.push({
      like: s.router.name,
      name: routerName,
      vni,
      bridge: `nsbr${networkId.toString(36)}`,
      replace: pairs,
    });
    load.routers[routerHost.name] = routers;
    for (const { ip, f } of ipCopies)
      ipUpdates.push({
        id: f.id,
        set: {
          state: ip.state,
          account_id: t.account.id,
          domain_id: t.account.domainId,
          network_id: networkId,
          source_nat: ip.source_nat,
          static_nat_vm_id: ip.static_nat_vm_id === null ? null : map.vms.get(ip.static_nat_vm_id),
          static_nat_vm_ip: ip.static_nat_vm_ip === null ? null : swap({ ip: ip.static_nat_vm_ip }).ip,
          for_display: ip.for_display,
          allocated: time(ip.allocated),
        },
      });
    for (const r of s.rules)
      add(
        'ip_rules',
        timed({
          ...swap(r),
          id: map.rules.get(r.id),
          ip_id: r.ip_id === null ? null : map.ips.get(r.ip_id),
          network_id: networkId,
          account_id: t.account.id,
          domain_id: t.account.domainId,
          related_id: r.related_id === null ? null : map.rules.get(r.related_id),
          vm_id: r.vm_id === null ? null : map.vms.get(r.vm_id),
        }),
      );
    for (const m of s.members)
      add(
        'lb_members',
        timed({ ...swap(m), rule_id: map.rules.get(m.rule_id), vm_id: map.vms.get(m.vm_id) }),
      );
    for (const e of s.events)
      add(
        'events',
        timed({
          ...swap(e),
          id: map.events.get(e.id),
          user_id: user(e.user_id),
          account_id: account(e.account_id),
          domain_id: domain(e.domain_id),
          start_id: e.start_id === null ? null : (map.events.get(e.start_id) ?? e.start_id),
        }),
      );
    copies.push({
      networkUuid,
      networkId,
      accountId: t.account.id,
      vmUuids: vmCopies.map((c) => c.uuid),
      ipUuids: ipCopies.map((c) => c.f.uuid),
      routerName,
    });
  }

  // The hosts run the VMs and routers before their rows exist.
  await opts.push(load);
  await db.transaction().execute(async (tx) => {
    // Nothing else may have taken these ids meanwhile (the server only writes what the API asks).
    for (const [t, id] of Object.entries(startIds)) {
      const r = await sql<{ m: number | null }>`select max(id) as m from ${sql.table(t)}`.execute(tx);
      if (Number(r.rows[0]?.m ?? 0) !== id) throw new Error(`${t} grew while the copies were prepared`);
    }
    for (const table of [
      'networks',
      'vlan_ip_ranges',
      'vms',
      'volumes',
      'routers',
      'nics',
      'guest_ip_allocations',
      'ip_rules',
      'lb_members',
      'events',
    ])
      await insertRows(tx as never, table as never, out[table] ?? []);
    for (const u of ipUpdates)
      await tx
        .updateTable('public_ips')
        .set(u.set)
        .where('id', '=', u.id)
        .where('state', '=', 'Free')
        .execute();
  });
  if (store.dialect === 'postgres')
    for (const t of Object.keys(startIds))
      await sql`select setval(pg_get_serial_sequence(${t}, 'id'), (select max(id) from ${sql.table(t)}))`.execute(
        db,
      );
  return copies;
}

/**
 * The owners' resource counts after the copies (networks, public addresses, VMs, volumes, CPU,
 * memory, primary storage), for every account and every domain above it: each count is what the
 * rows now hold, as the API's increments would have made it.
 */
export async function addCopiedCounts(
  store: Store,
  copies: { accountId: number; sample: Sample }[],
  domainChain: (accountId: number) => Promise<number[]>,
): Promise<void> {
  const GiB = 1024 ** 3;
  const perAccount = new Map<number, number[]>();
  for (const { accountId, sample } of copies) {
    const c = perAccount.get(accountId) ?? [0, 0, 0, 0, 0, 0, 0];
    c[0]! += sample.vms.length; // instance
    c[1]! += sample.ips.length; // public_ip
    c[2]! += sample.volumes.length; // volume
    c[3]! += 1; // network
    c[4]! += sample.vms.reduce((s, v) => s + v.cpu_number, 0); // cpu
    c[5]! += sample.vms.reduce((s, v) => s + v.memory_mb, 0); // memory
    c[6]! += sample.volumes.reduce((s, v) => s + v.size_bytes / GiB, 0); // primary_storage
    perAccount.set(accountId, c);
  }
  const types = [0, 1, 2, 6, 8, 9, 10];
  const totals = new Map<string, number>();
  for (const [accountId, counts] of perAccount) {
    const owners: [string, number][] = [
      ['account', accountId],
      ...(await domainChain(accountId)).map((d) => ['domain', d] as [string, number]),
    ];
    for (const [type, id] of owners)
      counts.forEach((n, i) => {
        const key = `${type}:${id}:${types[i]}`;
        totals.set(key, (totals.get(key) ?? 0) + n);
      });
  }
  await store.db.transaction().execute(async (tx) => {
    for (const [key, n] of totals) {
      const [ownerType, ownerId, type] = key.split(':');
      const r = await tx
        .updateTable('resource_counts')
        .set((eb) => ({ count: eb('count', '+', n) }))
        .where('owner_type', '=', ownerType as 'account' | 'domain')
        .where('owner_id', '=', Number(ownerId))
        .where('resource_type', '=', Number(type))
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 0)
        await tx
          .insertInto('resource_counts')
          .values({
            owner_type: ownerType as 'account' | 'domain',
            owner_id: Number(ownerId),
            resource_type: Number(type),
            count: n,
          })
          .execute();
    }
  });
}

/** The hosts' allocated CPU and memory and the pools' allocated bytes, from the rows. */
export async function settleCapacity(store: Store, zoneId: number): Promise<void> {
  const db = store.db;
  await db
    .updateTable('hosts')
    .set({
      cpu_allocated_mhz: sql`(select coalesce(sum(cpu_number * cpu_speed), 0) from vms where vms.host_id = hosts.id and vms.removed is null)`,
      memory_allocated_bytes: sql`(select coalesce(sum(memory_mb), 0) * 1048576 from vms where vms.host_id = hosts.id and vms.removed is null)`,
    })
    .where('zone_id', '=', zoneId)
    .execute();
  await db
    .updateTable('storage_pools')
    .set({
      allocated_bytes: sql`(select coalesce(sum(size_bytes), 0) from volumes where volumes.pool_id = storage_pools.id and volumes.removed is null)`,
    })
    .where('zone_id', '=', zoneId)
    .execute();
}
