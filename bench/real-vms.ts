/**
 * The real-VM benchmark (issue 18): `deployVirtualMachine` called → the guest's DHCP lease, on
 * the KVM local zone (this machine as the host, QEMU under TCG here, the test template), beside
 * the floor of the same template booted by bare QEMU in the same run; and several VMs deployed
 * at once (each one's call → lease, and the total) beside as many bare QEMUs started at once.
 *
 * - The floor (bench/lib/vm-floor.ts): the agent's own QEMU command line for such a VM without
 *   `-S` (same machine type, CPU model, memory, disk format and devices), on a qcow2 linked clone
 *   of a qcow2 copy of the template, its NIC a tap already on a bridge in a namespace of its own
 *   where a dnsmasq with the router's DHCP settings serves it; timed from QEMU's spawn.
 * - The lease, for both: the `DHCPACK(<if>) <ip> <mac>` line dnsmasq logs (--log-dhcp) for the
 *   guest's MAC, read by this process polling the log every 5 ms (the router's dnsmasq.log in the
 *   agent's state directory; the floor's own). The guest's `NIMBO: dhcp <ip>` console line is
 *   reported beside it.
 * - Where a deploy's extra time goes: the server runs with bench/lib/vm-trace-hooks.ts, which
 *   stamps each agent command (server and agent side), QEMU's start until its monitor answers, and
 *   `cont` (the moment the guest runs); the report splits the gap with them.
 *
 * Rounds alternate which side goes first. Every QEMU, the namespace, the dnsmasq, the VMs, the
 * router and the server are removed at the end. Nothing is asserted. Needs root, QEMU, dnsmasq,
 * nftables and the test template (npm run setup:host).
 *
 *   npm run bench:vms [-- --rounds 3] [--together 3] [--together-rounds 2] [--quick]
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CloudStackClient } from '@nimbostack/client';
import { startServer, type TestServer } from '../packages/server/test/harness.ts';
import {
  killQemus,
  readyKvmTestTemplate,
  separateIds,
  TEMPLATE,
} from '../packages/server/test/kvm-advanced-zone.ts';
import { round } from './lib/measure.ts';
import {
  agentAccel,
  ConsoleDhcp,
  cpuMs,
  DhcpLog,
  epoch,
  type FloorNet,
  LogWatch,
  prepareFloor,
  startFloorNet,
  until,
} from './lib/vm-floor.ts';
import { type Boot, type Deploy, markdown, profileOf, type Round } from './lib/vm-report.ts';
import type { TraceSpan } from './lib/vm-trace-hooks.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string' },
    together: { type: 'string' },
    'together-rounds': { type: 'string' },
    quick: { type: 'boolean', default: false },
    'results-dir': { type: 'string', default: resolve(import.meta.dirname, 'results') },
  },
  strict: true,
});
const QUICK = args.quick!;
/** One-VM rounds: a floor boot and a deploy each. */
const ROUNDS = Number(args.rounds ?? (QUICK ? 1 : 3));
/** VMs deployed at once, and rounds of that (each: as many floor boots at once, and deploys). */
const TOGETHER = Number(args.together ?? 3);
const TOGETHER_ROUNDS = Number(args['together-rounds'] ?? (QUICK ? 1 : 2));
const MEMORY_MIB = 256;
const CPUS = 1;
/** A guest that has no lease by then is a failure, not a figure. */
const LEASE_TIMEOUT_MS = 180_000;
const HOST = 'local-kvm';

const started = performance.now();
const log = (s: string) =>
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
const load = () => round(loadavg()[0]!, 1);

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (the local zone is this machine as a KVM host)';
  if (!existsSync(TEMPLATE)) return `${TEMPLATE} is missing: run npm run setup:host`;
  for (const bin of ['/usr/bin/qemu-system-x86_64', '/usr/sbin/dnsmasq', '/usr/sbin/nft'])
    if (!existsSync(bin)) return `${bin} is missing: run npm run setup:host`;
  return undefined;
}

interface Cloud {
  admin: CloudStackClient;
  /** The server process, whose CPU time is read beside each boot. */
  serverPid: number;
  zoneid: string;
  templateid: string;
  serviceofferingid: string;
  agentDir: string;
  watch: LogWatch;
  /** The zone router's dnsmasq log, once the router runs. */
  router?: DhcpLog;
}

const consoleOf = (cloud: Cloud, instance: string) =>
  join(cloud.agentDir, HOST, 'vms', instance, 'console.log');
/** The VM's QEMU, as the agent recorded it. */
function qemuPid(cloud: Cloud, instance: string): number | undefined {
  const f = join(cloud.agentDir, HOST, 'vms', instance, 'vm.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')).pid as number) : undefined;
}

/**
 * Deploys one VM (the call made at `t0`, epoch ms) and, unless `lease` is false, waits for its
 * DHCPACK in the router's dnsmasq log; the VM is left for the caller to destroy.
 */
async function deploy(
  cloud: Cloud,
  name: string,
  t0: number,
  lease = true,
): Promise<Deploy & { id: string }> {
  const serverCpu0 = cpuMs(cloud.serverPid);
  const answer = await cloud.admin.request<any>('deployVirtualMachine', {
    zoneid: cloud.zoneid,
    templateid: cloud.templateid,
    serviceofferingid: cloud.serviceofferingid,
    name,
  });
  const answerAt = epoch();
  const vm = (await cloud.admin.waitForJob(answer.jobid)).jobresult?.virtualmachine as any;
  const runningAt = epoch();
  if (vm?.state !== 'Running') throw new Error(`${name} is ${vm?.state ?? 'not made'}, not Running`);
  const mac = String(vm.nic[0].macaddress).toLowerCase();
  const instance: string =
    vm.instancename ??
    (await cloud.admin.request<any>('listVirtualMachines', { id: vm.id, listall: true })).virtualmachine[0]
      .instancename;
  const timing = { answerMs: round(answerAt - t0, 1), runningMs: round(runningAt - t0, 1), t0 };
  if (!lease) return { id: vm.id, name, instance, mac, leaseMs: Number.NaN, leaseAt: Number.NaN, ...timing };
  const console = new ConsoleDhcp(cloud.watch, consoleOf(cloud, instance));
  try {
    const router = await until(() => cloud.router, 30_000, 'the zone router');
    const ack = await until(() => router.at('DHCPACK', mac), LEASE_TIMEOUT_MS, `${name}'s DHCPACK`);
    const cpu = { qemu: cpuMs(qemuPid(cloud, instance)), server: cpuMs(cloud.serverPid) };
    await until(() => console.at, 10_000, `${name}'s console line`).catch(() => undefined);
    const discover = router.at('DHCPDISCOVER', mac);
    return {
      id: vm.id,
      name,
      instance,
      mac,
      leaseMs: round(ack - t0, 1),
      discoverMs: discover === undefined ? undefined : round(discover - t0, 1),
      consoleMs: console.at === undefined ? undefined : round(console.at - t0, 1),
      qemuCpuMs: cpu.qemu,
      serverCpuMs: cpu.server !== undefined && serverCpu0 !== undefined ? cpu.server - serverCpu0 : undefined,
      ...timing,
      leaseAt: ack,
    };
  } finally {
    console.stop();
  }
}

const destroy = (cloud: Cloud, id: string) =>
  cloud.admin.call('destroyVirtualMachine', { id, expunge: true });

/** `n` deploys called at the same moment; each VM destroyed once every lease is in. */
async function ours(cloud: Cloud, n: number, tag: string): Promise<Deploy[]> {
  const t0 = epoch();
  const settled = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => deploy(cloud, `${tag}-${i}`, t0)),
  );
  const spans = (await cloud.admin.request<any>('benchTrace', { since: Math.floor(t0) })).trace
    .spans as TraceSpan[];
  const made = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  for (const d of made) await destroy(cloud, d.id);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return made.map(({ id: _id, ...d }) => ({ ...d, profile: profileOf(d, spans, n === 1) }));
}

/** `n` floor VMs started at the same moment (floor runs `run0`…), each until its DHCPACK. */
async function floor(net: FloorNet, cloud: Cloud, accel: 'kvm' | 'tcg', n: number, run0: number) {
  const vms = Array.from({ length: n }, (_, slot) =>
    prepareFloor(net, cloud.watch, { slot, run: run0 + slot, accel, memoryMiB: MEMORY_MIB, cpus: CPUS }),
  );
  try {
    const serverCpu0 = cpuMs(cloud.serverPid);
    const t0 = epoch();
    const spawned = vms.map((vm) => vm.start());
    return await Promise.all(
      vms.map(async (vm, i): Promise<Boot> => {
        const ack = await until(
          () => net.dhcp.at('DHCPACK', vm.mac),
          LEASE_TIMEOUT_MS,
          `floor ${i}'s DHCPACK`,
        );
        const cpu = { qemu: cpuMs(vm.pid()), server: cpuMs(cloud.serverPid) };
        await until(() => vm.console.at, 10_000, `floor ${i}'s console line`).catch(() => undefined);
        const discover = net.dhcp.at('DHCPDISCOVER', vm.mac);
        return {
          name: `floor-${i}`,
          mac: vm.mac,
          leaseMs: round(ack - t0, 1),
          discoverMs: discover === undefined ? undefined : round(discover - t0, 1),
          consoleMs: vm.console.at === undefined ? undefined : round(vm.console.at - t0, 1),
          spawnMs: round(spawned[i]! - t0, 1),
          qemuCpuMs: cpu.qemu,
          serverCpuMs:
            cpu.server !== undefined && serverCpu0 !== undefined ? cpu.server - serverCpu0 : undefined,
          t0,
          leaseAt: ack,
        };
      }),
    );
  } finally {
    for (const vm of vms) await vm.stop();
  }
}

async function main(): Promise<void> {
  const skip = skipReason();
  if (skip) {
    console.error(`bench:vms: ${skip}`);
    process.exit(1);
  }
  const root = mkdtempSync(join(tmpdir(), 'nimbo-bench-vms-'));
  const agentDir = join(root, 'agent');
  const watch = new LogWatch(5);
  let server: TestServer | undefined;
  let net: FloorNet | undefined;
  const loadStart = load();
  try {
    net = await startFloorNet(
      join(root, 'floor'),
      TEMPLATE,
      { slots: TOGETHER, runs: ROUNDS + TOGETHER_ROUNDS * TOGETHER },
      watch,
    );
    log(`floor namespace ${net.ns} up (bridge, ${TOGETHER} taps, dnsmasq)`);
    server = await startServer({
      env: {
        NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
        NIMBOSTACK_HYPERVISOR: 'kvm',
        NIMBOSTACK_KVM_STATE_DIR: agentDir,
        NIMBOSTACK_KVM_STORAGE_DIR: root,
        NIMBOSTACK_KVM_TEMPLATE: TEMPLATE,
      },
      nodeArgs: ['--import', join(import.meta.dirname, 'lib/vm-trace-hooks.ts')],
    });
    // Router, VM and bridge names apart from another real-host suite's on this machine.
    separateIds(server, 1000 + (process.pid % 9000) * 10);
    log('server up');
    const admin = await CloudStackClient.login(server.api, 'admin', 'password', '/', { pollInterval: 0.02 });
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const serviceofferingid = (
      await admin.request<any>('createServiceOffering', {
        name: 'bench-vms',
        displaytext: `${CPUS} vCPU, ${MEMORY_MIB} MiB`,
        cpunumber: CPUS,
        cpuspeed: 500,
        memory: MEMORY_MIB,
      })
    ).serviceoffering.id;
    const cloud: Cloud = {
      admin,
      serverPid: server.process.pid!,
      zoneid,
      templateid: await readyKvmTestTemplate(admin, zoneid),
      serviceofferingid,
      agentDir,
      watch,
    };
    const accel = agentAccel(agentDir);

    // The zone's first deploy boots its router and copies the template into the pool: reported
    // on its own line (its lease not waited for with --quick). The router's dnsmasq log is
    // followed from its first line.
    const warmT0 = epoch();
    const warmup = deploy(cloud, 'bench-vms-warmup', warmT0, !QUICK);
    const routerName = await until(
      () => {
        const dir = join(agentDir, HOST, 'routers');
        return existsSync(dir)
          ? readdirSync(dir).find((r) => existsSync(join(dir, r, 'dnsmasq.log')))
          : undefined;
      },
      120_000,
      'the zone router',
    );
    cloud.router = new DhcpLog(watch, join(agentDir, HOST, 'routers', routerName, 'dnsmasq.log'));
    const warm = await warmup;
    await destroy(cloud, warm.id);
    log(
      `the zone's first deploy (router booted, template copied): Running ${warm.runningMs} ms, lease ${QUICK ? 'not waited for' : `${warm.leaseMs} ms`}`,
    );

    const single: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const floorFirst = r % 2 === 0;
      const loadBefore = load();
      let f: Boot[] = [];
      let o: Deploy[] = [];
      for (const side of floorFirst ? ['floor', 'ours'] : ['ours', 'floor']) {
        if (side === 'floor') f = await floor(net, cloud, accel, 1, r);
        else o = await ours(cloud, 1, `bench-vm-${r}`);
      }
      single.push({ floorFirst, floor: f, ours: o, loadBefore, loadAfter: load() });
      log(
        `one VM, round ${r + 1}: deploy → lease ${o[0]!.leaseMs} ms, floor ${f[0]!.leaseMs} ms, gap ${round(o[0]!.leaseMs - f[0]!.leaseMs, 1)} ms (load ${loadBefore})`,
      );
    }
    const together: Round[] = [];
    for (let r = 0; r < TOGETHER_ROUNDS; r++) {
      const floorFirst = r % 2 === 0;
      const loadBefore = load();
      let f: Boot[] = [];
      let o: Deploy[] = [];
      for (const side of floorFirst ? ['floor', 'ours'] : ['ours', 'floor']) {
        // Floor runs after the one-VM rounds', a run per slot.
        if (side === 'floor') f = await floor(net, cloud, accel, TOGETHER, ROUNDS + r * TOGETHER);
        else o = await ours(cloud, TOGETHER, `bench-vms${r}`);
      }
      together.push({ floorFirst, floor: f, ours: o, loadBefore, loadAfter: load() });
      const total = (xs: Boot[]) => Math.max(...xs.map((x) => x.leaseMs));
      log(
        `${TOGETHER} VMs at once, round ${r + 1}: all leased ${total(o)} ms after the calls, floor ${total(f)} ms (load ${loadBefore})`,
      );
    }

    const meta = {
      quick: QUICK,
      rounds: ROUNDS,
      atOnce: TOGETHER,
      togetherRounds: TOGETHER_ROUNDS,
      accel,
      memoryMiB: MEMORY_MIB,
      cpus: CPUS,
      templateMiB: round(statSync(TEMPLATE).size / 2 ** 20, 1),
      hostCpus: cpus().length,
      loadStart,
      loadEnd: load(),
    };
    const json = { ...meta, warmup: warm, single, together };
    const md = markdown(json);
    process.stdout.write(`\n${md}`);
    mkdirSync(args['results-dir']!, { recursive: true });
    const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
    const base = join(args['results-dir']!, `${stamp}-vms${QUICK ? '-quick' : ''}`);
    writeFileSync(`${base}.json`, JSON.stringify(json, null, 2));
    writeFileSync(`${base}.md`, md);
    // A full run is the one the docs quote; kept in git as vms-latest.
    if (!QUICK) {
      writeFileSync(join(args['results-dir']!, 'vms-latest.json'), JSON.stringify(json, null, 2));
      writeFileSync(join(args['results-dir']!, 'vms-latest.md'), md);
    }
    log(`results: ${base}.md`);
  } finally {
    watch.stop();
    if (server) {
      const vms = await server.admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
      for (const v of vms.virtualmachine ?? [])
        await server.admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
      const routers = await server.admin.request<any>('listRouters', {}).catch(() => ({}));
      for (const r of routers.router ?? [])
        await server.admin.call('destroyRouter', { id: r.id }).catch(() => undefined);
      // QEMU outlives the server: whatever a failure left running goes.
      killQemus(join(agentDir, HOST));
      const hosts = await server.admin.request<any>('listHosts', {}).catch(() => ({}));
      for (const h of hosts.host ?? [])
        await server.admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
      await server.stop();
    }
    await net?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
