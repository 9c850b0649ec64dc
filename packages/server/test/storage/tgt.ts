/**
 * A throw-away iSCSI storage server for the managed iSCSI tests: the Linux SCSI target daemon
 * (tgtd, user space) and an OpenSSH server, both in a network namespace of their own reached
 * over a veth pair, and in a mount namespace of their own whose /var/run/tgtd is private, so
 * tgtadm run through SSH (as the LinuxTgt provider does) manages this tgtd and no other one on
 * the machine. The SSH server lets in only a throw-away key; the LUN files live in a temporary
 * directory. stop() stops both daemons (tgtd drops its targets), deletes the namespace (and with
 * it the veth pair) and the directory.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TgtServer {
  /** The storage server's address: iSCSI portal and SSH server. */
  address: string;
  /** The host's address on the veth pair: where initiators log in from. */
  initiator: string;
  /** The directory for LUN files on the storage server. */
  lunDir: string;
  /** The private key the SSH server lets in (OpenSSH format), and the SSH host key's fingerprint. */
  privateKey: string;
  hostKey: string;
  /** tgtadm on this server (its private control socket). */
  tgtadm(...args: string[]): string;
  /** The names of the targets tgtd has now. */
  targets(): string[];
  /** The files in the LUN directory (lock file aside). */
  files(): string[];
  stop(): Promise<void>;
}

/** True when tgt, the OpenSSH server and QEMU's iSCSI block driver are installed (else the suite skips). */
export function tgtInstalled(): boolean {
  try {
    execFileSync(
      'sh',
      [
        '-c',
        'command -v tgtd && command -v tgtadm && test -x /usr/sbin/sshd && command -v ssh-keygen && command -v nsenter && ls /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so',
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

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const late = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(late);
}

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host, port, timeout: 1000 });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Starts tgtd and sshd in namespace tgt-<pid>; resolves once both answer. */
export async function startTgt(): Promise<TgtServer> {
  const tag = (process.pid % 250) + 1;
  const ns = `tgt-${process.pid}`;
  const hostSide = `vtgt${process.pid.toString(16)}`.slice(0, 15);
  const address = `198.19.${tag}.2`;
  const initiator = `198.19.${tag}.1`;
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-tgt-'));
  const lunDir = join(dir, 'luns');
  const run = join(dir, 'tgtd-run');
  mkdirSync(run);
  mkdirSync('/var/run/tgtd', { recursive: true });
  mkdirSync('/run/sshd', { recursive: true });
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'nimbo-test',
    '-f',
    join(dir, 'client'),
  ]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  const hostKey = String(
    execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'host.pub')]),
  ).split(' ')[1];
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      'Port 22',
      `ListenAddress ${address}`,
      `HostKey ${join(dir, 'host')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      '',
    ].join('\n'),
  );
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of [...children].reverse()) await stopChild(child);
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true });
  };
  let tgtdPid = 0;
  const tgtadm = (...args: string[]) =>
    String(
      execFileSync('nsenter', ['-t', String(tgtdPid), '-m', '-n', 'tgtadm', '--lld', 'iscsi', ...args], {
        stdio: 'pipe',
      }),
    );
  const logs: string[] = [];
  const start = (args: string[]) => {
    const child = spawn(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (d) => logs.push(String(d)));
    children.push(child);
    return child;
  };
  try {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('link', 'add', hostSide, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip('addr', 'add', `${initiator}/30`, 'dev', hostSide);
    ip('link', 'set', hostSide, 'up');
    ip('-n', ns, 'addr', 'add', `${address}/30`, 'dev', 'eth0');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    // unshare execs sh, which execs tgtd: the child's pid is tgtd's, in both namespaces.
    const tgtd = start([
      'ip',
      'netns',
      'exec',
      ns,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount --bind ${run} /var/run/tgtd && exec tgtd -f`,
    ]);
    tgtdPid = tgtd.pid!;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (tgtd.exitCode !== null) throw new Error(`tgtd exited at start: ${logs.join('')}`);
      try {
        tgtadm('--mode', 'target', '--op', 'show');
        break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`tgtd did not answer within 20 s: ${logs.join('')}`);
      await sleep(200);
    }
    // sshd in tgtd's namespaces, so its sessions' tgtadm reaches this tgtd.
    const sshd = start([
      'nsenter',
      '-t',
      String(tgtdPid),
      '-m',
      '-n',
      '/usr/sbin/sshd',
      '-D',
      '-e',
      '-f',
      join(dir, 'sshd_config'),
    ]);
    for (;;) {
      if (sshd.exitCode !== null) throw new Error(`sshd exited at start: ${logs.join('')}`);
      if (await portOpen(address, 22)) break;
      if (Date.now() > deadline) throw new Error(`sshd did not answer within 20 s: ${logs.join('')}`);
      await sleep(200);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    address,
    initiator,
    lunDir,
    privateKey: readFileSync(join(dir, 'client'), 'utf8'),
    hostKey,
    tgtadm,
    targets: () =>
      tgtadm('--mode', 'target', '--op', 'show')
        .split('\n')
        .map((l) => /^Target \d+: (\S+)$/.exec(l)?.[1])
        .filter((t): t is string => t !== undefined),
    files: () => {
      try {
        return readdirSync(lunDir).filter((f) => f !== '.nimbostack-tgt.lock');
      } catch {
        return [];
      }
    },
    stop,
  };
}
