/**
 * Whether disk images are open in a running QEMU, from any host that sees the files: QEMU holds
 * a write lock on each image it runs (file locking is on by default), and `qemu-img info`
 * without --force-share fails on a locked image. This is how a neighbour tells that a host whose
 * agent is gone still runs its VMs (on NFS the lock goes through the NFS server's lock manager).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

function locked(path: string): Promise<boolean | null> {
  return new Promise((resolve) => {
    execFile('qemu-img', ['info', '--output=json', path], { timeout: 15_000 }, (err, _out, stderr) => {
      if (!err) return resolve(false);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return resolve(null);
      resolve(/lock/i.test(stderr) ? true : null);
    });
  });
}

/** The paths among `paths` that a running QEMU holds; null when qemu-img could not tell for one. */
export async function disksInUse(paths: string[]): Promise<string[] | null> {
  const out: string[] = [];
  for (const path of paths) {
    if (!existsSync(path)) continue;
    const held = await locked(path);
    if (held === null) return null;
    if (held) out.push(path);
  }
  return out;
}
