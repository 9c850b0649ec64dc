/**
 * The storage benchmark (issue 24): what a deploy and a snapshot backup cost on real storage, each
 * next to its floor measured in the same run.
 *
 * - Deploy to Running of a real QEMU VM (the KVM local zone: this machine as the host, its real
 *   KVM agent in the server process, the test template built by setup:host) on each pool type:
 *   a pool's first deploy (the template copied into the pool, then a linked clone) and later
 *   deploys (a linked clone), against the floor of qemu-img doing the same copy and clone on the
 *   same pool (bench/lib/storage-pools.ts): directory, NFS, Ceph RBD (also with a larger
 *   template: a deploy there is a clone, so it should not grow) and managed iSCSI. A pool type
 *   whose servers are missing or do not start is reported as not measured, with the reason.
 * - A volume snapshot backed up to an S3 image store (OpenStack Swift's s3api on a loopback port,
 *   packages/server/test/storage/swift.ts) against its floor: qemu-img converting the same volume
 *   into the same staging directory, plus a plain multipart upload of the same bytes with the same
 *   SDK and settings the server uses (AWS SDK v3 lib-storage, 16 MiB parts, 2 at a time).
 *
 * Nothing is asserted; the run reports what it measured and why anything was not. Needs root,
 * QEMU, the test template (npm run setup:host), and for each part its servers, as test:storage
 * (nfs-ganesha, rpcbind; ceph-mon, ceph-mgr, ceph-osd, ceph-common; tgt, openssh-server;
 * qemu-block-extra; swift, memcached).
 *
 *   npm run bench:storage [-- --deploys 5] [--floor-runs 5] [--snapshots 3] [--snapshot-mib 256] [--quick]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync as writeFile } from 'node:fs';
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
import { type Swift, startSwift, swiftInstalled } from '../packages/server/test/storage/swift.ts';
import { round } from './lib/measure.ts';
import {
  type BenchPool,
  directoryPool,
  iscsiPool,
  nfsPool,
  type PoolFloor,
  poolFloor,
  qemuStartFloor,
  rbdPool,
  type Unavailable,
} from './lib/storage-pools.ts';
import { type S3Bench, s3Snapshots } from './lib/storage-s3.ts';

const { values: args } = parseArgs({
  options: {
    deploys: { type: 'string' },
    'floor-runs': { type: 'string' },
    snapshots: { type: 'string' },
    'snapshot-mib': { type: 'string' },
    'larger-template-mib': { type: 'string' },
    quick: { type: 'boolean', default: false },
    'results-dir': { type: 'string', default: resolve(import.meta.dirname, 'results') },
  },
  strict: true,
});
const QUICK = args.quick!;
/** Deploys after a pool's first one (each destroyed before the next). */
const DEPLOYS = Number(args.deploys ?? (QUICK ? 1 : 5));
const FLOOR_RUNS = Number(args['floor-runs'] ?? (QUICK ? 2 : 5));
const SNAPSHOTS = Number(args.snapshots ?? (QUICK ? 1 : 3));
const SNAPSHOT_MIB = Number(args['snapshot-mib'] ?? (QUICK ? 64 : 256));
/** What the larger template adds to the test template for RBD's second size. */
const LARGER_MIB = Number(args['larger-template-mib'] ?? (QUICK ? 64 : 512));
const started = performance.now();
const log = (s: string) =>
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);

export interface PoolRow {
  kind: string;
  label: string;
  poolId: string;
  offeringId: string;
  /** The template file's size (the test template, or the larger one on RBD). */
  templateMiB: number;
  createPoolMs: number;
  /** The pool's first deploy: template copied into the pool, linked clone, QEMU started. */
  firstDeployMs: number;
  /** Later deploys (linked clone, QEMU started), each in ms. */
  deployMs: number[];
  deployP50Ms: number;
  deployFailures: number;
  firstError?: string;
  floor: PoolFloor;
  /** QEMU started paused on a linked clone in the pool, until QMP answers (median), ms. */
  qemuStartMs: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? round(s[Math.floor((s.length - 1) / 2)]!, 1) : Number.NaN;
};

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (the local zone is this machine as a KVM host)';
  if (!existsSync(TEMPLATE)) return `${TEMPLATE} is missing: run npm run setup:host`;
  if (!existsSync('/usr/bin/qemu-system-x86_64')) return 'QEMU is missing: run npm run setup:host';
  return undefined;
}

interface Cloud {
  admin: CloudStackClient;
  zoneid: string;
  podid: string;
  clusterid: string;
  templateid: string;
}

/** Deploys a VM with `serviceofferingid` and waits for its job; the time to Running, in ms. */
async function deployMs(
  cloud: Cloud,
  serviceofferingid: string,
  name: string,
  templateid = cloud.templateid,
): Promise<{ ms: number; id: string }> {
  const t0 = performance.now();
  const vm = (
    await cloud.admin.call<any>('deployVirtualMachine', {
      zoneid: cloud.zoneid,
      templateid,
      serviceofferingid,
      name,
    })
  ).virtualmachine;
  const ms = performance.now() - t0;
  if (vm?.state !== 'Running') throw new Error(`${name} is ${vm?.state ?? 'not made'}, not Running`);
  return { ms: round(ms, 1), id: vm.id };
}

const destroy = (cloud: Cloud, id: string) =>
  cloud.admin.call('destroyVirtualMachine', { id, expunge: true });

async function offering(cloud: Cloud, tag: string): Promise<string> {
  return (
    await cloud.admin.request<any>('createServiceOffering', {
      name: `bench-${tag}`,
      displaytext: `ROOT disk on ${tag}`,
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
      tags: tag,
    })
  ).serviceoffering.id;
}

/** A template as the benchmark deploys it: its uuid, its file and its virtual size. */
interface BenchTemplate {
  id: string;
  file: string;
  /** Bytes of the file (what a pool's first deploy copies in). */
  fileBytes: number;
  virtualBytes: number;
}

/** Adds `pool` through the API (unless it is there), then deploys on it: once cold, then DEPLOYS times warm. */
async function measurePool(
  cloud: Cloud,
  pool: BenchPool,
  template: BenchTemplate,
  existing?: { poolId: string; offeringId: string },
): Promise<PoolRow> {
  let t0 = performance.now();
  const poolId =
    existing?.poolId ??
    (
      await cloud.admin.request<any>('createStoragePool', {
        zoneid: cloud.zoneid,
        podid: cloud.podid,
        clusterid: cloud.clusterid,
        name: pool.tag,
        tags: pool.tag,
        ...pool.create,
      })
    ).storagepool.id;
  const createPoolMs = existing ? Number.NaN : round(performance.now() - t0, 1);
  const so = existing?.offeringId ?? (await offering(cloud, pool.tag));
  const tag = `${pool.tag}-${template.id.slice(0, 4)}`;
  const first = await deployMs(cloud, so, `${tag}-0`, template.id);
  const root = (await cloud.admin.request<any>('listVolumes', { virtualmachineid: first.id, type: 'ROOT' }))
    .volume[0];
  if (root.storageid !== poolId) throw new Error(`the ROOT disk went to ${root.storage}, not ${pool.tag}`);
  await destroy(cloud, first.id);
  log(
    `${pool.kind}: ${existing ? `${round(template.fileBytes / 2 ** 20, 1)} MiB template` : `pool added in ${createPoolMs} ms`}, first deploy ${first.ms} ms`,
  );
  const deploys: number[] = [];
  let failures = 0;
  let firstError: string | undefined;
  for (let i = 1; i <= DEPLOYS; i++) {
    try {
      const d = await deployMs(cloud, so, `${tag}-${i}`, template.id);
      deploys.push(d.ms);
      await destroy(cloud, d.id);
    } catch (e) {
      failures++;
      firstError ??= (e as Error).message;
    }
  }
  t0 = performance.now();
  const floor = poolFloor(pool, template.file, template.id, template.virtualBytes, FLOOR_RUNS);
  const qemuStartMs = await qemuStartFloor(
    pool,
    template.file,
    template.id,
    template.virtualBytes,
    FLOOR_RUNS,
  );
  log(
    `${pool.kind}: deploy p50 ${median(deploys)} ms (${deploys.length} ok, ${failures} failed); floor copy ${floor.copyMs} ms, clone ${floor.cloneMs} ms, QEMU start ${qemuStartMs} ms`,
  );
  return {
    kind: pool.kind,
    label: pool.label,
    poolId,
    offeringId: so,
    templateMiB: round(template.fileBytes / 2 ** 20, 1),
    createPoolMs,
    firstDeployMs: first.ms,
    deployMs: deploys,
    deployP50Ms: median(deploys),
    deployFailures: failures,
    ...(firstError ? { firstError } : {}),
    floor,
    qemuStartMs,
  };
}

function markdown(
  rows: PoolRow[],
  missing: Unavailable[],
  warmupMs: number,
  s3: S3Bench | { reason: string },
  leftovers: string[],
): string {
  const x = (a: number, b: number) => (b > 0 ? `${round(a / b, 1)}×` : '');
  const lines = [
    `# Storage benchmark ${new Date().toISOString()}${QUICK ? ' (--quick)' : ''}`,
    '',
    `KVM local zone (real QEMU, TCG), the test template (${round(statSync(TEMPLATE).size / 2 ** 20, 1)} MiB file); ${DEPLOYS} deploys per pool after its first, floors the median of ${FLOOR_RUNS} runs; ${cpus().length} CPU cores, load average ${loadavg()[0]!.toFixed(1)} at the end.`,
    `The zone's first deploy (its router started too, not measured below): ${warmupMs} ms.`,
    '',
    '## Deploy to Running, per pool type',
    '',
    '| pool type | template | createStoragePool | first deploy (template copied in) | floor: qemu-img convert + linked clone | deploy → Running p50 (ok/failed) | floor: qemu-img linked clone | floor: QEMU started on it (QMP answers) | deploy − both floors |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.templateMiB} MiB | ${Number.isNaN(r.createPoolMs) ? '(as above)' : `${r.createPoolMs} ms`} | ${r.firstDeployMs} ms | ${round(r.floor.copyMs + r.floor.cloneMs, 1)} ms | ${r.deployP50Ms} ms (${r.deployMs.length}/${r.deployFailures}) | ${r.floor.cloneMs} ms | ${r.qemuStartMs} ms | ${round(r.deployP50Ms - r.floor.cloneMs - r.qemuStartMs, 1)} ms |`,
    ),
    ...missing.map((m) => `| ${m.label} | not measured: ${m.reason.split('\n')[0]} | | | | | | | |`),
    '',
    "A deploy is the API call to its job reporting Running (polled every 20 ms): the planner, the volume records, the agent creating the disk (the same qemu-img commands as the floor, plus its checks and a rename), the router told the VM's DHCP entry, its tap, bridge and firewall, and QEMU started and resumed. The QEMU floor is QEMU alone started paused on a clone in the pool, no NIC.",
    '',
    '## Snapshot backup to S3 (Swift s3api)',
    '',
  ];
  if ('reason' in s3) lines.push(`Not measured: ${s3.reason}.`);
  else
    lines.push(
      `A ${s3.volumeGiB} GiB data volume with ${s3.writtenMiB} MiB written (qemu-io on the host, the VM stopped); its backup is a ${round(s3.objectBytes / 2 ** 20, 1)} MiB object.`,
      '',
      '| createSnapshot → BackedUp p50 (n) | floor: qemu-img convert to staging | floor: multipart upload, same bytes, same SDK | floor total | snapshot ÷ floor | upload rate (floor) |',
      '|---|---|---|---|---|---|',
      `| ${s3.snapshotP50Ms} ms (${s3.snapshotMs.length}) | ${s3.floorConvertMs} ms | ${s3.floorUploadMs} ms | ${round(s3.floorConvertMs + s3.floorUploadMs, 1)} ms | ${x(s3.snapshotP50Ms, s3.floorConvertMs + s3.floorUploadMs)} | ${round(s3.objectBytes / 2 ** 20 / (s3.floorUploadMs / 1000), 1)} MiB/s |`,
    );
  lines.push(
    '',
    leftovers.length
      ? `Left behind: ${leftovers.join(', ')}`
      : 'Nothing left behind in the pools or the bucket.',
    '',
  );
  return lines.join('\n');
}

const virtualSize = (file: string) =>
  JSON.parse(execFileSync('qemu-img', ['info', '--output=json', file], { encoding: 'utf8' }))[
    'virtual-size'
  ] as number;

/**
 * The test template with LARGER_MIB more written after its own 128 MiB (its boot disk untouched),
 * flattened into one qcow2 file and registered through the API as a second template.
 */
async function largerTemplate(cloud: Cloud, root: string): Promise<BenchTemplate> {
  const overlay = join(root, 'larger-overlay.qcow2');
  const file = join(root, 'larger-template.qcow2');
  const base = virtualSize(TEMPLATE);
  execFileSync('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-F',
    'qcow2',
    '-b',
    TEMPLATE,
    overlay,
    String(base + LARGER_MIB * 2 ** 20),
  ]);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x6b ${base} ${LARGER_MIB}M`, overlay], {
    stdio: 'pipe',
  });
  execFileSync('qemu-img', ['convert', '-O', 'qcow2', overlay, file]);
  rmSync(overlay);
  const ostypeid = (await cloud.admin.request<any>('listOsTypes', {})).ostype[0].id;
  const id = (
    await cloud.admin.request<any>('registerTemplate', {
      name: 'bench-larger',
      displaytext: `the test template with ${LARGER_MIB} MiB more`,
      url: file,
      format: 'QCOW2',
      hypervisor: 'KVM',
      ostypeid,
      zoneid: cloud.zoneid,
      ispublic: 'true',
    })
  ).template[0].id as string;
  const deadline = Date.now() + 300_000;
  while (
    !(await cloud.admin.request<any>('listTemplates', { id, templatefilter: 'all' })).template?.[0]?.isready
  ) {
    if (Date.now() > deadline) throw new Error('the larger template was not ready within 300 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`larger template registered: ${round(statSync(file).size / 2 ** 20, 1)} MiB`);
  return { id, file, fileBytes: statSync(file).size, virtualBytes: virtualSize(file) };
}

async function main(): Promise<void> {
  const skip = skipReason();
  if (skip) {
    console.error(`bench:storage: ${skip}`);
    process.exit(1);
  }
  const root = mkdtempSync(join(tmpdir(), 'nimbo-bench-storage-'));
  const agentDir = join(root, 'agent');
  let server: TestServer | undefined;
  let swift: Swift | undefined;
  const pools: BenchPool[] = [];
  const missing: Unavailable[] = [];
  // Started after the server (on two busy cores a parallel start made it miss the harness's
  // 60 s), beside each other; stopped in the end whatever happens in between.
  let nfs: Promise<BenchPool | Unavailable> | undefined;
  let rbd: Promise<BenchPool | Unavailable> | undefined;
  let iscsi: Promise<BenchPool | Unavailable> | undefined;
  let swiftUp: Promise<Swift | undefined> | undefined;
  try {
    server = await startServer({
      env: {
        NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
        NIMBOSTACK_HYPERVISOR: 'kvm',
        NIMBOSTACK_KVM_STATE_DIR: agentDir,
        NIMBOSTACK_KVM_STORAGE_DIR: root,
        NIMBOSTACK_KVM_TEMPLATE: TEMPLATE,
        NIMBOSTACK_KVM_NFS: 'libnfs',
      },
    });
    // Router, VM and bridge names apart from another real-host suite's on this machine.
    separateIds(server, 1000 + (process.pid % 9000) * 10);
    log('server up');
    nfs = nfsPool().catch(
      (e): Unavailable => ({
        kind: 'nfs',
        label: 'NFS (NFS-Ganesha)',
        reason: `NFS-Ganesha did not start: ${(e as Error).message}`,
      }),
    );
    swiftUp = swiftInstalled()
      ? startSwift().catch((e) => {
          log(`Swift did not start: ${(e as Error).message}`);
          return undefined;
        })
      : Promise.resolve(undefined);
    rbd = rbdPool().catch(
      (e): Unavailable => ({
        kind: 'rbd',
        label: 'Ceph RBD',
        reason: `Ceph did not start: ${(e as Error).message}`,
      }),
    );
    pools.push(directoryPool(root));
    await Promise.all([nfs, rbd]);
    // tgtd and sshd must both answer within the helper's 20 s: started once the others are up,
    // and once more if a busy machine made them late.
    iscsi = iscsiPool()
      .catch(() => iscsiPool())
      .catch(
        (e): Unavailable => ({
          kind: 'iscsi',
          label: 'managed iSCSI',
          reason: `tgtd or sshd did not start: ${(e as Error).message.split('\n')[0]}`,
        }),
      );
    for (const started of [await nfs, await rbd, await iscsi]) {
      if ('reason' in started) {
        missing.push(started);
        log(`${started.kind}: not measured: ${started.reason}`);
      } else pools.push(started);
    }
    swift = await swiftUp;
    log(`up: ${pools.map((p) => p.kind).join(', ')}${swift ? ', Swift' : ''}`);

    const admin = await CloudStackClient.login(server.api, 'admin', 'password', '/', { pollInterval: 0.02 });
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const host = (await admin.request<any>('listHosts', { zoneid, type: 'Routing' })).host[0];
    const cloud: Cloud = {
      admin,
      zoneid,
      podid: host.podid,
      clusterid: host.clusterid,
      templateid: await readyKvmTestTemplate(admin, zoneid),
    };
    const small: BenchTemplate = {
      id: cloud.templateid,
      file: TEMPLATE,
      fileBytes: statSync(TEMPLATE).size,
      virtualBytes: virtualSize(TEMPLATE),
    };

    // The zone's first deploy starts its router: on the seeded pool, tagged apart, not measured.
    const local = (await admin.request<any>('listStoragePools', { zoneid })).storagepool[0];
    await admin.request('updateStoragePool', { id: local.id, tags: 'bench-warmup' });
    const warm = await deployMs(cloud, await offering(cloud, 'bench-warmup'), 'bench-warmup');
    await destroy(cloud, warm.id);
    log(`the zone's first deploy (router included): ${warm.ms} ms`);

    const rows: PoolRow[] = [];
    for (const pool of pools) rows.push(await measurePool(cloud, pool, small));
    // RBD's promise: a deploy costs the same whatever the template's size (a clone, not a copy).
    const rbdPoolRow = rows.find((r) => r.kind === 'rbd');
    let big: BenchTemplate | undefined;
    if (rbdPoolRow) {
      big = await largerTemplate(cloud, root);
      const pool = pools.find((p) => p.kind === 'rbd')!;
      rows.push(await measurePool(cloud, pool, big, rbdPoolRow));
    }

    const directory = pools.find((p) => p.kind === 'directory')!;
    const s3: S3Bench | { reason: string } = swift
      ? await s3Snapshots({
          admin,
          zoneid,
          templateid: cloud.templateid,
          swift,
          pool: directory,
          dataDir: server.dataDir,
          work: root,
          snapshots: SNAPSHOTS,
          writtenMiB: SNAPSHOT_MIB,
          floorRuns: FLOOR_RUNS,
          log,
        })
      : { reason: 'needs swift-proxy-server and memcached (Swift did not start)' };

    // Every pool is removed through the API once its volumes are gone: nothing may be left in it.
    const leftovers: string[] = [];
    if (big) await admin.call('deleteTemplate', { id: big.id, zoneid });
    const listed = (await admin.request<any>('listStoragePools', { zoneid })).storagepool;
    for (const pool of pools) {
      const rec = listed.find((p: any) => p.name === pool.tag);
      if (rec)
        await admin
          .request('deleteStoragePool', { id: rec.id })
          .catch((e) => leftovers.push(`${pool.kind}: pool not deleted (${(e as Error).message})`));
      leftovers.push(...pool.files().map((f) => `${pool.kind}:${f}`));
    }
    if (!('reason' in s3)) leftovers.push(...s3.leftovers);

    const md = markdown(rows, missing, warm.ms, s3, leftovers);
    process.stdout.write(`\n${md}`);
    mkdirSync(args['results-dir']!, { recursive: true });
    const stamp = new Date().toISOString().slice(0, 19).replace(/:/g, '-');
    const base = join(args['results-dir']!, `${stamp}-storage${QUICK ? '-quick' : ''}`);
    const json = {
      quick: QUICK,
      deploys: DEPLOYS,
      floorRuns: FLOOR_RUNS,
      cpus: cpus().length,
      loadavg: loadavg(),
      zoneFirstDeployMs: warm.ms,
      pools: rows,
      notMeasured: missing,
      s3Snapshot: s3,
      leftovers,
    };
    writeFile(`${base}.json`, JSON.stringify(json, null, 2));
    writeFile(`${base}.md`, md);
    // A full run is the one the docs quote; kept in git as storage-latest.
    if (!QUICK) {
      writeFile(join(args['results-dir']!, 'storage-latest.json'), JSON.stringify(json, null, 2));
      writeFile(join(args['results-dir']!, 'storage-latest.md'), md);
    }
    log(`results: ${base}.md`);
  } finally {
    if (server) {
      const vms = await server.admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
      for (const v of vms.virtualmachine ?? [])
        await server.admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
      const routers = await server.admin.request<any>('listRouters', {}).catch(() => ({}));
      for (const r of routers.router ?? [])
        await server.admin.call('destroyRouter', { id: r.id }).catch(() => undefined);
      // QEMU outlives the server: whatever a failure left running goes (the host's VMs are
      // under <state dir>/<host name>/vms).
      killQemus(join(agentDir, 'local-kvm'));
      const hosts = await server.admin.request<any>('listHosts', {}).catch(() => ({}));
      for (const h of hosts.host ?? [])
        await server.admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
      await server.stop();
    }
    for (const started of [await nfs, await rbd, await iscsi])
      if (started && !('reason' in started) && !pools.includes(started)) pools.push(started);
    for (const pool of pools) await pool.stop();
    await (await swiftUp)?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
