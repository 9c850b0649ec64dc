/**
 * The database against the hosts' own account of themselves: what each simulated host runs (VMs
 * and routers, with their sizes), the volumes its storage holds and the addresses its routers hand
 * out, read from the hosts in this process, not from anything the servers recorded.
 */
import type { SimulatorHost } from '@nimbostack/agent';
import type { Store } from '../../src/db/connection.ts';
import type { CheckResult } from '../chaos/invariants.ts';

const MiB = 2 ** 20;

export async function checkHostReports(
  store: Store,
  hosts: SimulatorHost[],
): Promise<CheckResult & { known: string[] }> {
  const db = store.db;
  let checks = 0;
  const violations: string[] = [];
  const gaps: string[] = [];
  const check = (ok: boolean, what: () => string) => {
    checks++;
    if (!ok) violations.push(what());
  };
  const rows = await db
    .selectFrom('hosts')
    .select(['id', 'name', 'cpu_allocated_mhz', 'memory_allocated_bytes'])
    .where('removed', 'is', null)
    .where('type', '=', 'Routing')
    .execute();
  const byName = new Map(rows.map((r) => [r.name.toLowerCase(), r]));
  const vms = await db
    .selectFrom('vms')
    .select(['id', 'instance_name', 'host_id', 'state', 'cpu_number', 'cpu_speed', 'memory_mb'])
    .where('removed', 'is', null)
    .execute();
  const routers = await db
    .selectFrom('routers')
    .select(['name', 'host_id', 'state', 'network_id'])
    .where('removed', 'is', null)
    .execute();

  for (const h of hosts) {
    const row = byName.get(h.name.toLowerCase());
    check(row !== undefined, () => `host ${h.name} is not in the database`);
    if (!row) continue;
    // What runs there: the VMs the database has Running on the host are exactly those the host
    // runs, with the sizes the database charges the host for.
    const running = [...h.vms.values()].filter((v) => v.state === 'PowerOn');
    const onHost = new Set(running.map((v) => v.spec.name));
    const recorded = vms.filter((v) => v.host_id === row.id && v.state === 'Running');
    for (const v of recorded)
      check(
        onHost.has(v.instance_name),
        () => `VM ${v.instance_name} is Running on ${h.name} in the database, the host does not run it`,
      );
    const known = new Set(recorded.map((v) => v.instance_name));
    for (const name of onHost)
      check(known.has(name), () => {
        const v = vms.find((x) => x.instance_name === name);
        return `host ${h.name} runs ${name}, the database has it ${v ? `${v.state} on host ${v.host_id}` : 'nowhere'}`;
      });
    const cpu = running.reduce((s, v) => s + v.spec.cpus * v.spec.cpuMhz, 0);
    const mem = running.reduce((s, v) => s + v.spec.memoryBytes, 0);
    check(
      Number(row.cpu_allocated_mhz) === cpu && Number(row.memory_allocated_bytes) === mem,
      () =>
        `host ${h.name} runs ${running.length} VMs of ${cpu} MHz and ${mem / MiB} MiB; the database allocates ${row.cpu_allocated_mhz} MHz and ${Number(row.memory_allocated_bytes) / MiB} MiB`,
    );
    // Routers' placement is reported, not failed on, while a known gap stands (docs/ha.md, "What
    // the suite does not hold yet"): a host that comes back without a router it ran is not
    // reconciled for routers.
    const hostRouters = new Set(h.routers.keys());
    for (const r of routers.filter((x) => x.host_id === row.id && x.state === 'Running'))
      if (!hostRouters.has(r.name))
        gaps.push(`router ${r.name} is Running on ${h.name} in the database, the host has none`);
    for (const name of hostRouters)
      if (!routers.some((r) => r.name === name && r.host_id === row.id && r.state === 'Running'))
        gaps.push(`host ${h.name} runs router ${name}, which the database does not have Running there`);
  }

  // Addresses: each router hands out the address of every Running VM of its network and none
  // that no live NIC has (the copy on the host the database places it on; a copy elsewhere is
  // reported above). A Stopped VM whose deploy died before its entry was sent gets it at its start.
  const nics = await db
    .selectFrom('nics')
    .innerJoin('vms', 'vms.id', 'nics.vm_id')
    .select(['nics.network_id', 'nics.ip4', 'nics.mac', 'vms.state'])
    .where('nics.removed', 'is', null)
    .where('vms.removed', 'is', null)
    .where('nics.router_id', 'is', null)
    .execute();
  const entry = (n: { ip4: string | null; mac: string }) => `${n.ip4} ${n.mac.toLowerCase()}`;
  for (const h of hosts)
    for (const [name, spec] of h.routers) {
      const r = routers.find((x) => x.name === name && x.host_id === byName.get(h.name.toLowerCase())?.id);
      if (!r) continue;
      const live = nics.filter((n) => n.network_id === r.network_id && n.ip4);
      const have = new Set(spec.vms.map((e) => `${e.ip} ${e.mac.toLowerCase()}`));
      for (const n of live.filter((x) => x.state === 'Running'))
        check(have.has(entry(n)), () => `router ${name} does not hand out ${entry(n)}, a Running VM's NIC`);
      // A stale entry is reported, not failed on (docs/ha.md, "What the suite does not hold yet"):
      // an expunge whose router update went to the server just killed leaves the entry until the
      // network's next change or the router's next boot.
      const known = new Set(live.map(entry));
      for (const a of have)
        if (!known.has(a)) gaps.push(`router ${name} hands out ${a}, which no live NIC has`);
    }

  // Volumes: every volume the database has on primary storage exists there with its size, and the
  // storage holds no volume the database lost (the pools are shared: the fleet's union). Only the
  // simulated clusters' pools: a real KVM cluster's disks are on this machine, not in `hosts`.
  const stored = new Map<string, number>();
  for (const h of hosts) for (const [path, size] of h.volumes) stored.set(path, size);
  const volumes = await db
    .selectFrom('volumes')
    .leftJoin('storage_pools', 'storage_pools.id', 'volumes.pool_id')
    .leftJoin('clusters', 'clusters.id', 'storage_pools.cluster_id')
    .select(['volumes.name', 'volumes.path', 'volumes.size_bytes', 'volumes.state'])
    .where('volumes.removed', 'is', null)
    .where('volumes.path', 'is not', null)
    .where((eb) =>
      eb.or([eb('clusters.hypervisor', 'is', null), eb('clusters.hypervisor', '=', 'Simulator')]),
    )
    .execute();
  const paths = new Set<string>();
  for (const v of volumes) {
    paths.add(v.path!);
    if (v.state !== 'Ready') continue;
    check(
      stored.get(v.path!) === Number(v.size_bytes),
      () =>
        `volume ${v.name}: ${v.path} holds ${stored.get(v.path!) ?? 'nothing'}, the database says ${v.size_bytes} bytes`,
    );
  }
  for (const path of stored.keys())
    check(paths.has(path), () => `primary storage holds ${path}, which no live volume names`);
  return { checks, violations, known: gaps };
}
