/**
 * A throw-away NFS server for the primary storage tests: NFS-Ganesha (user space, FSAL_VFS) and
 * rpcbind in a network namespace of their own, reached from the host over a veth pair, as
 * /work/shared/docs/storage-feasibility.md measured (this kernel has no NFS server or client, and
 * rpcbind on the host's loopback aborts). The export is a temporary directory; clients reach it
 * as nfs://<address><exportPath>/... (NFSv3 through the portmapper, as QEMU's libnfs does).
 * stop() kills both servers, deletes the namespace (and with it the veth pair) and the directory.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NfsServer {
  /** The server's address on the veth pair, as the host reaches it. */
  address: string;
  /** The exported directory: also the path NFSv3 clients mount. */
  exportPath: string;
  /** The files in the export right now (the test's "nothing left behind" check). */
  files(): string[];
  stop(): Promise<void>;
}

/** True when NFS-Ganesha, rpcbind and QEMU's NFS block driver are installed (else the suite skips). */
export function nfsGaneshaInstalled(): boolean {
  try {
    execFileSync(
      'sh',
      [
        '-c',
        'command -v ganesha.nfsd && command -v rpcbind && ls /usr/lib/x86_64-linux-gnu/qemu/block-nfs.so',
      ],
      { stdio: 'pipe' },
    );
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });

function ganeshaConf(exportPath: string): string {
  // No Bind_addr: inside a namespace getaddrinfo refuses 127.0.0.1 (see the feasibility notes).
  return `NFS_CORE_PARAM { Protocols = 3; Enable_NLM = false; Enable_RQUOTA = false; NFS_Port = 2049; MNT_Port = 20048; }
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
  Export_Id = 1; Path = ${exportPath}; Pseudo = /export;
  Access_Type = RW; Squash = No_Root_Squash; Protocols = 3; Transports = TCP; SecType = sys;
  FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
`;
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const late = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(late);
}

/** Starts rpcbind and Ganesha in namespace nfs-<pid>; resolves once mountd is registered. */
export async function startNfsGanesha(): Promise<NfsServer> {
  const tag = (process.pid % 250) + 1;
  const ns = `nfs-${process.pid}`;
  const hostSide = `vnfs${process.pid.toString(16)}`.slice(0, 15);
  const address = `198.18.${tag}.2`;
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-nfs-'));
  const exportPath = join(dir, 'export');
  mkdirSync(exportPath);
  mkdirSync(join(dir, 'run'));
  writeFileSync(join(dir, 'ganesha.conf'), ganeshaConf(exportPath));
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of [...children].reverse()) await stopChild(child);
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
    // rpcbind's socket and lock live on the shared filesystem, not in the namespace.
    for (const f of ['/run/rpcbind.sock', '/run/rpcbind.lock', '/run/rpcbind'])
      rmSync(f, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('addr', 'add', `198.18.${tag}.1/30`, 'dev', hostSide);
    ip('link', 'set', hostSide, 'up');
    ip('-n', ns, 'addr', 'add', `${address}/30`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    const inNs = (cmd: string, args: string[], log: string) => {
      const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const lines: string[] = [];
      child.stderr?.on('data', (d) => lines.push(String(d)));
      child.once('exit', () => writeFileSync(join(dir, 'run', log), lines.join('')));
      children.push(child);
      return child;
    };
    inNs('rpcbind', ['-f', '-w'], 'rpcbind.log');
    await sleep(300);
    inNs(
      'ganesha.nfsd',
      [
        '-F',
        '-f',
        join(dir, 'ganesha.conf'),
        '-L',
        join(dir, 'run', 'ganesha.log'),
        '-p',
        join(dir, 'run', 'ganesha.pid'),
        '-N',
        'NIV_EVENT',
      ],
      'ganesha.stderr',
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (children.some((c) => c.exitCode !== null))
        throw new Error('rpcbind or ganesha.nfsd exited at start');
      try {
        const out = execFileSync('ip', ['netns', 'exec', ns, 'rpcinfo', '-p', '127.0.0.1'], {
          stdio: 'pipe',
        });
        if (/mountd/.test(String(out)) && /\bnfs\b/.test(String(out))) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error('NFS-Ganesha did not register mountd within 30 s');
      await sleep(250);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    address,
    exportPath,
    files: () => {
      const out = execFileSync('find', [exportPath, '-mindepth', '1'], { stdio: 'pipe' });
      return String(out)
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.slice(exportPath.length + 1));
    },
    stop,
  };
}
