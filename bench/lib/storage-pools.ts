/**
 * The primary storage pool types the storage benchmark deploys on, each with the floor it is
 * compared with: qemu-img (or the backend's own tool) doing the same copy and clone the KVM agent
 * does for a deploy (packages/agent/src/drivers/kvm/storage.ts), on the same pool, in the same run.
 *
 * - directory: a fresh directory on this host (file:// pool), files by absolute path;
 * - NFS: NFS-Ganesha in a network namespace (packages/server/test/storage/nfs-ganesha.ts), reached
 *   in user space as the suite reaches it (the agent's libnfs path: QEMU's and qemu-img's nfs://
 *   driver), the floor through the same nfs:// URLs.
 * A type whose server or driver is not in this tree yet is listed with the reason it is not
 * measured, so the report says so instead of leaving it out.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Ceph, cephInstalled, startCeph } from '../../packages/server/test/storage/ceph.ts';
import {
  type NfsServer,
  nfsGaneshaInstalled,
  startNfsGanesha,
} from '../../packages/server/test/storage/nfs-ganesha.ts';
import { startTgt, type TgtServer, tgtInstalled } from '../../packages/server/test/storage/tgt.ts';
import { round } from './measure.ts';

export type PoolKind = 'directory' | 'nfs' | 'rbd' | 'iscsi';

export interface BenchPool {
  kind: PoolKind;
  /** Shown in the report. */
  label: string;
  /** The storage tag the pool and its offerings carry, so deploys land on it and nowhere else. */
  tag: string;
  /** createStoragePool parameters besides zone, pod, cluster, name and tags. */
  create: Record<string, string>;
  /** What qemu-img opens for a file of the pool (a path or an nfs:// URL). */
  image(name: string): string;
  /** Whether ROOT disks are clones of a base the pool's first deploy makes (iSCSI: full copies). */
  cloned: boolean;
  /** The pool's own copy of a template, as the agent names it. */
  baseOf(templateUuid: string): string;
  /** The floor of a pool's first deploy: the template made into the pool's base, as the agent does. */
  importTemplate(template: string, name: string): void;
  /** The floor of every deploy: a ROOT disk cloned from the base (iSCSI: copied from `template`). */
  clone(base: string, name: string, sizeBytes: number, template: string): void;
  /** QEMU's -drive options for an image of the pool. */
  drive(name: string): string;
  /** The files in the pool now (names), for the leftovers check. */
  files(): string[];
  /** Removes what the floor made (not timed); a base after its clones. */
  remove(name: string): void;
  stop(): Promise<void>;
}

export interface Unavailable {
  kind: PoolKind;
  label: string;
  reason: string;
}

const qemuImg = (args: string[]) => execFileSync('qemu-img', args, { stdio: 'pipe' });

/** What file pools (directory, NFS) do: qcow2 copy of the template, qcow2 linked clones of it. */
function qcow2Files(image: (name: string) => string) {
  return {
    image,
    cloned: true,
    baseOf: (uuid: string) => `template-${uuid}.qcow2`,
    importTemplate: (template: string, name: string) =>
      qemuImg(['convert', '-f', 'qcow2', '-O', 'qcow2', template, image(name)]),
    clone: (base: string, name: string, sizeBytes: number) =>
      qemuImg([
        'create',
        '-q',
        '-f',
        'qcow2',
        '-F',
        'qcow2',
        '-b',
        image(base),
        image(name),
        String(sizeBytes),
      ]),
    drive: (name: string) => `file=${image(name)},format=qcow2`,
  };
}

/** A directory pool under `root` (a new directory: its first deploy copies the template in). */
export function directoryPool(root: string): BenchPool {
  const dir = join(root, 'bench-directory');
  mkdirSync(dir, { recursive: true });
  return {
    kind: 'directory',
    label: 'directory (file://, local disk)',
    tag: 'bench-directory',
    create: { url: `file://${dir}` },
    ...qcow2Files((name) => join(dir, name)),
    // High availability's heartbeat records are the host's, not a volume's.
    files: () =>
      existsSync(dir) ? readdirSync(dir).filter((f) => !f.startsWith('.nimbostack-heartbeat')) : [],
    remove: (name) => rmSync(join(dir, name), { force: true }),
    stop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** NFS-Ganesha started for the run; the pool is its export, reached through libnfs. */
export async function nfsPool(): Promise<BenchPool | Unavailable> {
  const label = 'NFS (NFS-Ganesha in a namespace, QEMU libnfs)';
  if (!nfsGaneshaInstalled())
    return { kind: 'nfs', label, reason: 'needs nfs-ganesha, nfs-ganesha-vfs, rpcbind and qemu-block-extra' };
  const nfs: NfsServer = await startNfsGanesha();
  return {
    kind: 'nfs',
    label,
    tag: 'bench-nfs',
    create: { url: `nfs://${nfs.address}${nfs.exportPath}` },
    ...qcow2Files((name) => `nfs://${nfs.address}${nfs.exportPath}/${name}`),
    // High availability's heartbeat records are the host's, not a volume's.
    files: () => nfs.files().filter((f) => !f.startsWith('.nimbostack-heartbeat')),
    remove: (name) => rmSync(join(nfs.exportPath, name), { force: true }),
    stop: () => nfs.stop(),
  };
}

/**
 * A one-node Ceph on memstore (packages/server/test/storage/ceph.ts), the pool reached through
 * librbd with the pool-limited cephx user. The agent imports a template once as raw image
 * template-<uuid> with a protected snapshot `base`, and every ROOT disk is an `rbd clone` of it
 * (packages/agent/src/drivers/kvm/storage-rbd.ts); the floor does the same as the cluster's admin.
 */
export async function rbdPool(): Promise<BenchPool | Unavailable> {
  const label = 'Ceph RBD (one-node memstore, librbd)';
  if (!cephInstalled())
    return {
      kind: 'rbd',
      label,
      reason: 'needs ceph-mon, ceph-mgr, ceph-osd, ceph-common and qemu-block-extra',
    };
  const c: Ceph = await startCeph();
  const image = (name: string) => `rbd:${c.pool}/${name}:conf=${c.conf}`;
  const spec = (name: string, snap?: string) => `${c.pool}/${name}${snap ? `@${snap}` : ''}`;
  return {
    kind: 'rbd',
    label,
    tag: 'bench-rbd',
    create: { url: `rbd://${c.user}:${encodeURIComponent(c.key)}@${c.monitor}:${c.port}/${c.pool}` },
    image,
    cloned: true,
    baseOf: (uuid) => `template-${uuid}`,
    importTemplate: (template, name) => {
      qemuImg(['convert', '-f', 'qcow2', '-O', 'raw', template, image(name)]);
      c.rbd('snap', 'create', spec(name, 'base'));
      c.rbd('snap', 'protect', spec(name, 'base'));
    },
    clone: (base, name) => {
      c.rbd('clone', spec(base, 'base'), spec(name));
    },
    drive: (name) => `file=${image(name)},format=raw`,
    files: () => c.images().filter((f) => !f.startsWith('.nimbostack-heartbeat')),
    remove: (name) => {
      if (!c.images().includes(name)) return;
      const snaps = JSON.parse(c.rbd('snap', 'ls', '--format', 'json', spec(name))) as { name: string }[];
      for (const snap of snaps) {
        c.rbd('snap', 'unprotect', spec(name, snap.name));
        c.rbd('snap', 'rm', spec(name, snap.name));
      }
      c.rbd('rm', '--no-progress', spec(name));
    },
    stop: () => c.stop(),
  };
}

/**
 * Managed iSCSI: tgtd and sshd in a namespace (packages/server/test/storage/tgt.ts), the pool
 * created with provider LinuxTgt, which makes each volume its own target with one LUN (a sparse
 * file) over SSH; the host reaches LUNs with QEMU's libiscsi and a ROOT disk is the template
 * copied whole into its LUN (packages/agent/src/drivers/kvm/iscsi-luns.ts). There is no base
 * image: every deploy copies. The floor makes the LUN with tgtadm on the storage server directly
 * (no SSH) and runs the same qemu-img convert -n into it.
 */
export async function iscsiPool(): Promise<BenchPool | Unavailable> {
  const label = 'managed iSCSI (LinuxTgt: tgtd over SSH, QEMU libiscsi)';
  if (!tgtInstalled())
    return { kind: 'iscsi', label, reason: 'needs tgt, openssh-server and qemu-block-extra' };
  const t: TgtServer = await startTgt();
  const iqn = (name: string) => `iqn.2026-12.org.nimbostack:bench.${name.toLowerCase()}`;
  const image = (name: string) => `iscsi://${t.address}/${iqn(name)}/1`;
  const tids = new Map<string, number>();
  let nextTid = 900;
  const tgtadm = (...a: string[]) => t.tgtadm('--lld', 'iscsi', ...a);
  const makeLun = (name: string, sizeBytes: number) => {
    const tid = String(nextTid++);
    tids.set(name, Number(tid));
    execFileSync('truncate', [
      '-s',
      String(Math.ceil(sizeBytes / 512) * 512),
      join(t.lunDir, `bench-${name}`),
    ]);
    tgtadm('--mode', 'target', '--op', 'new', '--tid', tid, '--targetname', iqn(name));
    tgtadm(
      '--mode',
      'logicalunit',
      '--op',
      'new',
      '--tid',
      tid,
      '--lun',
      '1',
      '--backing-store',
      join(t.lunDir, `bench-${name}`),
    );
    tgtadm(
      '--mode',
      'logicalunit',
      '--op',
      'update',
      '--tid',
      tid,
      '--lun',
      '1',
      '--params',
      'thin_provisioning=1',
    );
    tgtadm('--mode', 'target', '--op', 'bind', '--tid', tid, '--initiator-address', 'ALL');
  };
  const copyInto = (template: string, name: string) => {
    const info = JSON.parse(
      execFileSync('qemu-img', ['info', '--output=json', template], { encoding: 'utf8' }),
    );
    makeLun(name, info['virtual-size']);
    qemuImg(['convert', '-n', '-f', 'qcow2', '-O', 'raw', template, image(name)]);
  };
  return {
    kind: 'iscsi',
    label,
    tag: 'bench-iscsi',
    create: {
      url: `iscsi://${t.address}/${t.lunDir.replace(/^\//, '')}`,
      provider: 'LinuxTgt',
      managed: 'true',
      'details[0].sshkey': t.privateKey,
      'details[0].initiators': t.initiator,
    },
    image,
    // No base image: each ROOT disk is a copy of the template file itself.
    cloned: false,
    baseOf: () => '',
    importTemplate: copyInto,
    clone: (_base, name, _size, template) => copyInto(template, name),
    drive: (name) => `file=${image(name)},format=raw`,
    files: () => [...t.files(), ...t.targets().map((x) => `target ${x}`)],
    remove: (name) => {
      const tid = tids.get(name);
      if (tid !== undefined) tgtadm('--mode', 'target', '--op', 'delete', '--force', '--tid', String(tid));
      tids.delete(name);
      rmSync(join(t.lunDir, `bench-${name}`), { force: true });
    },
    stop: () => t.stop(),
  };
}

export interface PoolFloor {
  /** The template made into the pool's base (what a pool's first deploy adds; 0 without one), ms. */
  copyMs: number;
  /** qemu-img create of a linked clone of the pool's template copy (every deploy), ms. */
  cloneMs: number;
}

/**
 * The floor of a deploy's storage work on `pool`, `runs` times each (median): the same qemu-img
 * commands the agent runs, on the same pool, from the same template file.
 */
export function poolFloor(
  pool: BenchPool,
  template: string,
  templateUuid: string,
  sizeBytes: number,
  runs: number,
): PoolFloor {
  /** Median of `runs` timings of `make(name)`; what it made is removed after each, untimed. */
  const median = (prefix: string, make: (name: string) => void) => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const name =
        pool.kind === 'rbd' ? `${prefix}-${process.pid}-${i}` : `${prefix}-${process.pid}-${i}.qcow2`;
      const t0 = performance.now();
      make(name);
      times.push(performance.now() - t0);
      pool.remove(name);
    }
    times.sort((a, b) => a - b);
    return round(times[Math.floor((times.length - 1) / 2)]!, 1);
  };
  // Without a base (iSCSI) a pool's first deploy does what every deploy does: no copy beside it.
  const copyMs = pool.cloned ? median('floor-copy', (name) => pool.importTemplate(template, name)) : 0;
  const cloneMs = median('floor-clone', (name) =>
    pool.clone(pool.baseOf(templateUuid), name, sizeBytes, template),
  );
  return { copyMs, cloneMs };
}

/**
 * A second floor for the rest of a deploy: QEMU started paused on a linked clone of the pool's
 * template (TCG, as the agent's start: -S, a QMP socket), timed until its monitor answers
 * qmp_capabilities. No NICs, bridges or firewall: those are the agent's own work beyond it.
 */
export async function qemuStartFloor(
  pool: BenchPool,
  template: string,
  templateUuid: string,
  sizeBytes: number,
  runs: number,
): Promise<number> {
  const clone =
    pool.kind === 'directory' || pool.kind === 'nfs'
      ? `floor-qemu-${process.pid}.qcow2`
      : `floor-qemu-${process.pid}`;
  pool.clone(pool.baseOf(templateUuid), clone, sizeBytes, template);
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-bench-qemu-'));
  const times: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const sock = join(dir, `qmp-${i}.sock`);
      const t0 = performance.now();
      const qemu = spawn(
        'qemu-system-x86_64',
        [
          ...['-machine', 'pc,accel=tcg', '-cpu', 'max', '-m', '256', '-nodefaults', '-no-user-config'],
          ...['-display', 'none', '-S', '-chardev', `socket,id=mon,path=${sock},server=on,wait=off`],
          ...['-mon', 'chardev=mon,mode=control'],
          ...['-drive', `${pool.drive(clone)},if=none,id=d0`],
          ...['-device', 'virtio-blk-pci,drive=d0'],
        ],
        { stdio: 'ignore' },
      );
      try {
        const monitor = await qmpReady(sock, qemu);
        times.push(performance.now() - t0);
        // Quit through the monitor: librbd then closes its image (a killed client keeps a watch
        // on it for 30 s, and the image cannot be removed meanwhile).
        monitor.write('{"execute":"quit"}\n');
        await exited(qemu, 15_000);
        monitor.destroy();
      } finally {
        if (qemu.exitCode === null && qemu.signalCode === null) {
          qemu.kill('SIGKILL');
          await exited(qemu, 15_000);
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    pool.remove(clone);
  }
  times.sort((a, b) => a - b);
  return round(times[Math.floor((times.length - 1) / 2)]!, 1);
}

function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Connects to QEMU's QMP socket (retrying until it exists), negotiates capabilities; the socket. */
async function qmpReady(sock: string, qemu: ChildProcess): Promise<Socket> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (qemu.exitCode !== null) throw new Error(`QEMU exited with ${qemu.exitCode}`);
    const ready = await new Promise<Socket | undefined>((resolve) => {
      const s = connect(sock);
      let buf = '';
      s.on('error', () => resolve(undefined));
      s.on('data', (d) => {
        buf += d;
        if (buf.includes('"QMP"') && !buf.includes('"return"')) s.write('{"execute":"qmp_capabilities"}\n');
        if (buf.includes('"return"')) resolve(s);
      });
    });
    if (ready) return ready;
    if (Date.now() > deadline) throw new Error('QEMU did not answer on QMP within 30 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}
