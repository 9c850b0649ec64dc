/** Reading a VM's console log file, for getConsoleOutput (KVM and LXC keep one per VM). */
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** The last `maxBytes` of the file; empty when it does not exist (the VM never ran here). */
export function tailOf(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
    throw err;
  }
  try {
    const size = statSync(path).size;
    const length = Math.min(size, maxBytes);
    const buf = Buffer.alloc(length);
    const read = readSync(fd, buf, 0, length, size - length);
    return buf.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}
