/**
 * What must hold in the database after the management server was killed and restarted, read
 * straight from the tables (and the capacity figures also through the API, as operators see them).
 * Each check counts once per object it looks at; a violation names the object and what is wrong.
 */
import type { CloudStackClient } from '@nimbostack/client';
import type { Store } from '../../src/db/connection.ts';

const MiB = 2 ** 20;
/** VM states that hold CPU and memory on a host (as the planner and capacity code count them). */
const ON_HOST = ['Starting', 'Running', 'Stopping', 'Migrating'];
/** VM states only a running job may leave a VM in. */
const VM_TRANSIENT = ['Starting', 'Stopping', 'Migrating', 'Expunging', 'Restoring'];
const ROUTER_TRANSIENT = ['Starting', 'Stopping'];
const VOLUME_TRANSIENT = [
  'Creating',
  'Copying',
  'Attaching',
  'Migrating',
  'Resizing',
  'Snapshotting',
  'UploadOp',
];
const SNAPSHOT_TRANSIENT = ['Allocated', 'Creating', 'BackingUp'];
const VM_SNAPSHOT_TRANSIENT = ['Allocated', 'Creating', 'Reverting', 'Expunging'];
const PUBLIC_IP_TRANSIENT = ['Allocating', 'Releasing'];
const RULE_TRANSIENT = ['Add', 'Revoke'];

export interface CheckResult {
  checks: number;
  violations: string[];
}

/** Unfinished jobs (status 0). */
export async function pendingJobs(store: Store): Promise<{ id: number; command: string }[]> {
  return store.db.selectFrom('async_jobs').select(['id', 'command']).where('status', '=', 0).execute();
}

/** Template copies still downloading (the restarted server takes over or fails them). */
export async function downloadsInProgress(store: Store): Promise<number> {
  const r = await store.db
    .selectFrom('template_store_refs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('download_state', '=', 'DOWNLOAD_IN_PROGRESS')
    .where('destroyed', '=', 0)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function checkInvariants(store: Store, admin: CloudStackClient): Promise<CheckResult> {
  const db = store.db;
  let checks = 0;
  const violations: string[] = [];
  const check = (ok: boolean, what: () => string) => {
    checks++;
    if (!ok) violations.push(what());
  };

  const running = await pendingJobs(store);
  const busy = new Set(
    (
      await db
        .selectFrom('async_jobs')
        .select('instance_id')
        .where('status', '=', 0)
        .where('instance_id', 'is not', null)
        .execute()
    ).map((j) => j.instance_id),
  );
  check(
    running.length === 0,
    () => `unfinished jobs: ${running.map((j) => `${j.id} ${j.command}`).join(', ')}`,
  );

  const hosts = await db.selectFrom('hosts').selectAll().where('removed', 'is', null).execute();
  const vms = await db.selectFrom('vms').selectAll().where('removed', 'is', null).execute();
  const hostIds = new Set(hosts.map((h) => h.id));
  const vmIds = new Set(vms.map((v) => v.id));

  // Capacity: what each host has allocated is the sum of the VMs placed on it, in the table and in
  // what listHosts reports.
  const listed = new Map(
    ((await admin.request<any>('listHosts', { type: 'Routing' })).host ?? []).map((h: any) => [h.id, h]),
  );
  for (const h of hosts) {
    const on = vms.filter((v) => v.host_id === h.id && ON_HOST.includes(v.state));
    const cpu = on.reduce((s, v) => s + v.cpu_number * v.cpu_speed, 0);
    const mem = on.reduce((s, v) => s + v.memory_mb * MiB, 0);
    check(
      Number(h.cpu_allocated_mhz) === cpu,
      () => `host ${h.name}: ${h.cpu_allocated_mhz} MHz allocated, its ${on.length} VMs hold ${cpu}`,
    );
    check(
      Number(h.memory_allocated_bytes) === mem,
      () => `host ${h.name}: ${h.memory_allocated_bytes} bytes allocated, its ${on.length} VMs hold ${mem}`,
    );
    const api = listed.get(h.uuid) as any;
    check(
      api !== undefined && Number(api.memoryallocated) === mem && Number(api.cpuallocatedvalue) === cpu,
      () =>
        `listHosts ${h.name}: cpuallocatedvalue ${api?.cpuallocatedvalue}, memoryallocated ${api?.memoryallocated}; its VMs hold ${cpu} MHz, ${mem} bytes`,
    );
  }
  for (const v of vms) {
    check(
      !ON_HOST.includes(v.state) || v.state === 'Starting' || (v.host_id !== null && hostIds.has(v.host_id)),
      () => `VM ${v.name} is ${v.state} on host ${v.host_id}, which does not exist`,
    );
    check(
      !(v.state === 'Stopped' && v.host_id !== null),
      () => `VM ${v.name} is Stopped but still placed on host ${v.host_id}`,
    );
    check(
      !VM_TRANSIENT.includes(v.state) || busy.has(v.uuid),
      () => `VM ${v.name} is ${v.state} and no job works on it`,
    );
  }

  // Routers: not left half-started or half-stopped, placed on a host that exists.
  const routers = await db.selectFrom('routers').selectAll().where('removed', 'is', null).execute();
  const networks = await db.selectFrom('networks').selectAll().where('removed', 'is', null).execute();
  const networkIds = new Set(networks.map((n) => n.id));
  for (const r of routers) {
    check(!ROUTER_TRANSIENT.includes(r.state), () => `router ${r.name} is ${r.state} and no job works on it`);
    check(
      networkIds.has(r.network_id),
      () => `router ${r.name} serves network ${r.network_id}, which is gone`,
    );
    check(
      r.host_id === null || hostIds.has(r.host_id),
      () => `router ${r.name} is on host ${r.host_id}, which is gone`,
    );
  }
  const routerIds = new Set(routers.map((r) => r.id));

  // NICs: one owner each, MACs unique everywhere, addresses unique within their network.
  const nics = await db.selectFrom('nics').selectAll().where('removed', 'is', null).execute();
  const macs = new Map<string, string>();
  const addresses = new Map<string, string>();
  for (const n of nics) {
    const owner = n.router_id !== null ? `router ${n.router_id}` : `VM ${n.vm_id}`;
    check(
      n.router_id !== null ? routerIds.has(n.router_id) : vmIds.has(n.vm_id),
      () => `NIC ${n.uuid} (${n.ip4}) belongs to ${owner}, which is gone`,
    );
    check(networkIds.has(n.network_id), () => `NIC ${n.uuid} is on network ${n.network_id}, which is gone`);
    const mac = n.mac.toLowerCase();
    check(!macs.has(mac), () => `MAC ${mac} is on NIC ${n.uuid} and on ${macs.get(mac)}`);
    macs.set(mac, `NIC ${n.uuid}`);
    if (n.ip4) {
      const key = `${n.network_id}/${n.ip4}`;
      check(
        !addresses.has(key),
        () => `address ${n.ip4} of network ${n.network_id} is on NIC ${n.uuid} and ${addresses.get(key)}`,
      );
      addresses.set(key, `NIC ${n.uuid}`);
    }
  }
  for (const r of routers) {
    if (!r.public_mac) continue;
    const mac = r.public_mac.toLowerCase();
    check(!macs.has(mac), () => `MAC ${mac} is router ${r.name}'s public MAC and on ${macs.get(mac)}`);
    macs.set(mac, `router ${r.name}`);
  }
  const nicIds = new Set(nics.map((n) => n.id));
  const allocations = await db.selectFrom('guest_ip_allocations').selectAll().execute();
  const allocated = new Set<string>();
  for (const a of allocations) {
    const key = `${a.network_id}/${a.ip4}`;
    check(!allocated.has(key), () => `guest address ${a.ip4} of network ${a.network_id} is allocated twice`);
    allocated.add(key);
    check(
      vmIds.has(a.vm_id) || routers.some((r) => r.guest_ip === a.ip4 && r.network_id === a.network_id),
      () => `guest address ${a.ip4} of network ${a.network_id} is held for VM ${a.vm_id}, which is gone`,
    );
    check(
      a.nic_id === null || nicIds.has(a.nic_id),
      () => `guest address ${a.ip4} points at NIC ${a.nic_id}, which is gone`,
    );
  }

  // Public addresses: held ones are owned, free ones carry nothing, none is half-allocated.
  const ips = await db.selectFrom('public_ips').selectAll().execute();
  const seenIps = new Set<string>();
  for (const ip of ips) {
    const key = `${ip.zone_id}/${ip.ip4}`;
    check(!seenIps.has(key), () => `public address ${ip.ip4} is recorded twice in zone ${ip.zone_id}`);
    seenIps.add(key);
    check(
      !PUBLIC_IP_TRANSIENT.includes(ip.state),
      () => `public address ${ip.ip4} is ${ip.state} and no job works on it`,
    );
    if (ip.state === 'Allocated') {
      check(ip.account_id !== null, () => `public address ${ip.ip4} is Allocated to no account`);
      check(
        ip.network_id === null || networkIds.has(ip.network_id),
        () => `public address ${ip.ip4} is on network ${ip.network_id}, which is gone`,
      );
      check(
        ip.static_nat_vm_id === null || vmIds.has(ip.static_nat_vm_id),
        () => `public address ${ip.ip4} NATs to VM ${ip.static_nat_vm_id}, which is gone`,
      );
    } else if (ip.state === 'Free') {
      check(
        ip.account_id === null &&
          ip.network_id === null &&
          ip.static_nat_vm_id === null &&
          ip.source_nat === 0,
        () =>
          `public address ${ip.ip4} is Free but still names account ${ip.account_id}, network ${ip.network_id}, VM ${ip.static_nat_vm_id}`,
      );
    }
  }
  const heldIps = new Set(ips.filter((i) => i.state === 'Allocated').map((i) => i.id));

  // Rules: applied or removed, never left half-way; what they point at exists.
  const rules = await db.selectFrom('ip_rules').selectAll().execute();
  const lbMembers = await db.selectFrom('lb_members').selectAll().execute();
  for (const r of rules) {
    // A load balancer without members stays Add: that is its settled state.
    const settledAdd =
      r.purpose === 'LoadBalancing' && r.state === 'Add' && !lbMembers.some((m) => m.rule_id === r.id);
    check(
      settledAdd || !RULE_TRANSIENT.includes(r.state),
      () => `${r.purpose} rule ${r.uuid} is ${r.state} and no job works on it`,
    );
    check(
      r.ip_id === null || heldIps.has(r.ip_id),
      () => `${r.purpose} rule ${r.uuid} is on address ${r.ip_id}, which is not held`,
    );
    check(
      r.vm_id === null || vmIds.has(r.vm_id),
      () => `${r.purpose} rule ${r.uuid} forwards to VM ${r.vm_id}, which is gone`,
    );
    check(
      networkIds.has(r.network_id),
      () => `${r.purpose} rule ${r.uuid} is on network ${r.network_id}, which is gone`,
    );
  }

  // Volumes, snapshots, template copies: settled, and their parents exist.
  const volumes = await db.selectFrom('volumes').selectAll().where('removed', 'is', null).execute();
  const pools = new Set(
    (await db.selectFrom('storage_pools').select('id').where('removed', 'is', null).execute()).map(
      (p) => p.id,
    ),
  );
  for (const v of volumes) {
    check(
      !VOLUME_TRANSIENT.includes(v.state) || busy.has(v.uuid),
      () => `volume ${v.name} is ${v.state} and no job works on it`,
    );
    check(
      v.vm_id === null || vmIds.has(v.vm_id),
      () => `volume ${v.name} is attached to VM ${v.vm_id}, which is gone`,
    );
    check(
      v.pool_id === null || pools.has(v.pool_id),
      () => `volume ${v.name} is on pool ${v.pool_id}, which is gone`,
    );
    check(v.type !== 'ROOT' || v.vm_id !== null, () => `ROOT volume ${v.name} belongs to no VM`);
  }
  for (const vm of vms) {
    if (['Destroyed', 'Error', 'Expunging'].includes(vm.state)) continue;
    const roots = volumes.filter((v) => v.vm_id === vm.id && v.type === 'ROOT').length;
    check(roots === 1, () => `VM ${vm.name} (${vm.state}) has ${roots} ROOT volumes`);
  }
  const allVolumeIds = new Set((await db.selectFrom('volumes').select('id').execute()).map((v) => v.id));
  const snapshots = await db.selectFrom('snapshots').selectAll().where('removed', 'is', null).execute();
  for (const s of snapshots) {
    check(
      !SNAPSHOT_TRANSIENT.includes(s.state) || busy.has(s.uuid),
      () => `snapshot ${s.name} is ${s.state} and no job works on it`,
    );
    check(
      allVolumeIds.has(s.volume_id),
      () => `snapshot ${s.name} is of volume ${s.volume_id}, which never existed`,
    );
  }
  const vmSnapshots = await db.selectFrom('vm_snapshots').selectAll().where('removed', 'is', null).execute();
  for (const s of vmSnapshots) {
    check(
      !VM_SNAPSHOT_TRANSIENT.includes(s.state) || busy.has(s.uuid),
      () => `VM snapshot ${s.name} is ${s.state} and no job works on it`,
    );
    check(vmIds.has(s.vm_id), () => `VM snapshot ${s.name} is of VM ${s.vm_id}, which is gone`);
  }
  const refs = await db.selectFrom('template_store_refs').selectAll().where('destroyed', '=', 0).execute();
  for (const r of refs)
    check(
      r.download_state !== 'DOWNLOAD_IN_PROGRESS',
      () => `template copy ${r.id} (template ${r.template_id}) is still downloading`,
    );

  // Memberships and jobs point at things that exist.
  for (const m of lbMembers)
    check(
      vmIds.has(m.vm_id) && rules.some((r) => r.id === m.rule_id),
      () => `load balancer member VM ${m.vm_id} of rule ${m.rule_id}: one of them is gone`,
    );
  for (const m of await db.selectFrom('security_group_vm_map').selectAll().execute())
    check(vmIds.has(m.vm_id), () => `security group ${m.group_id} lists VM ${m.vm_id}, which is gone`);
  for (const m of await db.selectFrom('affinity_group_vm_map').selectAll().execute())
    check(vmIds.has(m.vm_id), () => `affinity group ${m.group_id} lists VM ${m.vm_id}, which is gone`);
  const accounts = new Set((await db.selectFrom('accounts').select('id').execute()).map((a) => a.id));
  for (const v of vms)
    check(
      accounts.has(v.account_id),
      () => `VM ${v.name} belongs to account ${v.account_id}, which never existed`,
    );
  for (const n of networks)
    check(
      n.account_id === null || accounts.has(n.account_id),
      () => `network ${n.name} belongs to account ${n.account_id}, which never existed`,
    );
  const servers = new Set(
    (await db.selectFrom('management_servers').select('id').execute()).map((m) => m.id),
  );
  const orphanJobs = await db.selectFrom('async_jobs').select(['id', 'ms_id']).execute();
  for (const j of orphanJobs)
    check(
      servers.has(j.ms_id),
      () => `job ${j.id} names management server ${j.ms_id}, which is not recorded`,
    );

  return { checks, violations };
}
