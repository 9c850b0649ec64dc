/**
 * A throw-away one-node Ceph (Debian's pacific 16.2 packages) for the RBD primary storage tests:
 * one monitor, one manager and one memstore OSD (data in RAM) on 127.0.0.1, with cephx, following
 * /work/shared/docs/storage-feasibility.md's recipe 3, the monitor's ports chosen at start so two
 * suites can run. Everything (conf, keyrings, monitor and OSD data, pid files, admin sockets,
 * logs) lives in one temporary directory; the daemons daemonize and write their pid files there.
 * An `rbd` pool is created, and a cephx user `nimbo` limited to it (what an operator gives
 * createStoragePool). stop() kills every daemon by its pid file, waits for it and removes the
 * directory.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Ceph {
  /** The monitor's msgr v1 address, as an rbd:// URL names it. */
  monitor: string;
  port: number;
  /** The RADOS pool for RBD images. */
  pool: string;
  /** A cephx user with rwx on the pool only, and its key (base64). */
  user: string;
  key: string;
  /** The cluster's conf file (the admin keyring is beside it). */
  conf: string;
  /** `rbd` as the admin, e.g. rbd('ls', '-l', 'rbd'). */
  rbd(...args: string[]): string;
  ceph(...args: string[]): string;
  /** The image names in the pool right now (the test's "nothing left behind" check). */
  images(): string[];
  stop(): Promise<void>;
}

/** True when the Ceph daemons, the CLIs and QEMU's RBD block driver are installed. */
export function cephInstalled(): boolean {
  try {
    execFileSync(
      'sh',
      [
        '-c',
        'command -v ceph-mon && command -v ceph-mgr && command -v ceph-osd && command -v rbd && command -v rados && ls /usr/lib/x86_64-linux-gnu/qemu/block-rbd.so',
      ],
      { stdio: 'pipe' },
    );
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function cephConf(dir: string, fsid: string, v2: number, v1: number): string {
  return `[global]
fsid = ${fsid}
mon host = [v2:127.0.0.1:${v2},v1:127.0.0.1:${v1}]
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
auth allow insecure global id reclaim = false
keyring = ${dir}/keyring
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
[mon.a]
mon data = ${dir}/mon.a
[mgr.x]
mgr data = ${dir}/mgr.x
keyring = ${dir}/mgr.x/keyring
[osd.0]
osd data = ${dir}/osd.0
keyring = ${dir}/osd.0/keyring
osd objectstore = memstore
memstore device bytes = 2147483648
osd memory target = 939524096
`;
}

function pidsOf(dir: string): number[] {
  const run = join(dir, 'run');
  if (!existsSync(run)) return [];
  return readdirSync(run)
    .filter((f) => f.endsWith('.pid'))
    .map((f) => Number(readFileSync(join(run, f), 'utf8').trim()))
    .filter((p) => p > 0);
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts the cluster; resolves once the OSD is up and every placement group active+clean. */
export async function startCeph(): Promise<Ceph> {
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-ceph-'));
  for (const d of ['run', 'log', 'mon.a', 'mgr.x', 'osd.0']) mkdirSync(join(dir, d));
  const conf = join(dir, 'ceph.conf');
  const [v2, v1] = [await freePort(), await freePort()];
  const fsid = randomUUID();
  writeFileSync(conf, cephConf(dir, fsid, v2, v1));
  const x = (cmd: string, args: string[], input?: string) =>
    execFileSync(cmd, args, { stdio: 'pipe', input, encoding: 'utf8', timeout: 60_000 });
  const ceph = (...args: string[]) => x('ceph', ['-c', conf, ...args]);
  const rbd = (...args: string[]) => x('rbd', ['-c', conf, ...args]);
  const stop = async () => {
    const pids = pidsOf(dir);
    for (const p of pids) if (alive(p)) process.kill(p, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    while (pids.some(alive) && Date.now() < deadline) await sleep(200);
    for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const pool = 'rbd';
  const user = 'nimbo';
  let key: string;
  try {
    const keyring = join(dir, 'keyring');
    x('ceph-authtool', ['--create-keyring', keyring, '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
    x('ceph-authtool', [
      keyring,
      '--gen-key',
      '-n',
      'client.admin',
      ...['--cap', 'mon', 'allow *', '--cap', 'osd', 'allow *', '--cap', 'mgr', 'allow *'],
    ]);
    const monmap = join(dir, 'monmap');
    x('monmaptool', [
      '--create',
      '--fsid',
      fsid,
      '--addv',
      'a',
      `[v2:127.0.0.1:${v2},v1:127.0.0.1:${v1}]`,
      monmap,
    ]);
    x('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', monmap, '--keyring', keyring]);
    x('ceph-mon', ['-c', conf, '-i', 'a']);
    ceph(
      'auth',
      'get-or-create',
      'mgr.x',
      'mon',
      'allow profile mgr',
      'osd',
      'allow *',
      '-o',
      join(dir, 'mgr.x', 'keyring'),
    );
    x('ceph-mgr', ['-c', conf, '-i', 'x']);
    // The OSD's key is made by `osd new` first: `ceph-osd --mkkey` cannot fetch the mon config.
    const osdUuid = randomUUID();
    const osdSecret = x('ceph-authtool', ['--gen-print-key']).trim();
    const osd = x(
      'ceph',
      ['-c', conf, 'osd', 'new', osdUuid, '-i', '-'],
      JSON.stringify({ cephx_secret: osdSecret }),
    ).trim();
    x('ceph-authtool', [
      '--create-keyring',
      join(dir, 'osd.0', 'keyring'),
      '--name',
      `osd.${osd}`,
      '--add-key',
      osdSecret,
    ]);
    x('ceph-osd', ['-c', conf, '-i', osd, '--mkfs', '--osd-uuid', osdUuid]);
    x('ceph-osd', ['-c', conf, '-i', osd]);
    const deadline = Date.now() + 60_000;
    while (!/1 up/.test(ceph('osd', 'stat'))) {
      if (Date.now() > deadline) throw new Error('the Ceph OSD did not come up within 60 s');
      await sleep(300);
    }
    ceph('osd', 'pool', 'create', pool, '8', '8');
    ceph('osd', 'pool', 'application', 'enable', pool, 'rbd');
    rbd('pool', 'init', pool);
    key = ceph(
      'auth',
      'get-or-create-key',
      `client.${user}`,
      'mon',
      'profile rbd',
      'osd',
      `profile rbd pool=${pool}`,
      'mgr',
      `profile rbd pool=${pool}`,
    ).trim();
    while (!/^\d+ pgs: \d+ active\+clean;/.test(ceph('pg', 'stat'))) {
      if (Date.now() > deadline)
        throw new Error(`Ceph's placement groups are not active+clean: ${ceph('pg', 'stat')}`);
      await sleep(300);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    monitor: '127.0.0.1',
    port: v1,
    pool,
    user,
    key,
    conf,
    rbd,
    ceph,
    images: () => (JSON.parse(rbd('ls', '--format', 'json', pool)) as string[]).sort(),
    stop,
  };
}
