/** Runs host tools (qemu-img, ip) and turns their failures into driver errors with their stderr. */
import { execFile } from 'node:child_process';
import { DriverError } from '../driver.ts';

export async function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new DriverError(missingTool(cmd)));
      const why = (stderr || err.message).trim().split('\n').slice(-3).join(' ');
      reject(new DriverError(`${cmd} ${args[0] ?? ''} failed: ${why}`));
    });
  });
}

/** Debian packages that provide the host tools the driver runs. */
const PACKAGES: Record<string, string> = {
  ip: 'iproute2',
  bridge: 'iproute2',
  nft: 'nftables',
  dnsmasq: 'dnsmasq-base',
  'qemu-img': 'qemu-utils',
  'lxc-start': 'lxc',
  'mkfs.ext4': 'e2fsprogs',
  resize2fs: 'e2fsprogs',
  losetup: 'mount',
  rbd: 'ceph-common',
  ceph: 'ceph-common',
  rados: 'ceph-common',
};

/** One line saying which tool is missing and how to install it (never a stack trace). */
export function missingTool(cmd: string): string {
  const pkg = PACKAGES[cmd];
  return `${cmd} is not installed on this host${pkg ? ` (Debian package ${pkg})` : ''}: run npm run setup:host`;
}

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize: number;
  backingFile?: string;
}

export async function imageInfo(path: string): Promise<ImageInfo> {
  // -U: the image may be open in a running VM, which holds QEMU's write lock.
  const info = JSON.parse(await run('qemu-img', ['info', '-U', '--output=json', path]));
  return {
    format: info.format,
    virtualSize: info['virtual-size'],
    actualSize: info['actual-size'] ?? 0,
    backingFile: info['full-backing-filename'] ?? info['backing-filename'],
  };
}

/** Runs `cmd` with `input` on its standard input (nft -f -: one atomic transaction). */
export async function runWithInput(
  cmd: string,
  args: string[],
  input: string,
  timeoutMs = 30_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          return reject(new DriverError(missingTool(cmd)));
        const why = (stderr || err.message).trim().split('\n').slice(0, 4).join(' ');
        reject(new DriverError(`${cmd} ${args.join(' ')} failed: ${why}`));
      },
    );
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}
