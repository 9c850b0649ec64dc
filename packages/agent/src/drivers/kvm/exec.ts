/** Runs host tools (qemu-img, ip) and turns their failures into driver errors with their stderr. */
import { execFile } from 'node:child_process';
import { DriverError } from '../driver.ts';

export async function run(cmd: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const why = (stderr || err.message).trim().split('\n').slice(-3).join(' ');
      reject(new DriverError(`${cmd} ${args[0] ?? ''} failed: ${why}`));
    });
  });
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
