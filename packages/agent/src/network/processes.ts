/**
 * The small process and file helpers the router's detached processes (dnsmasq, the router service,
 * HAProxy) share: they outlive the agent, so they are found again by pid file, and a pid is only
 * trusted while its command line still names the process's own file (pids are reused).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { DriverError } from '../drivers/driver.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True while `pid` is a live process whose command line mentions `needle` (guards pid reuse). */
export function processAlive(pid: number | undefined, needle: string): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
  } catch {
    return false;
  }
}

/** True once `pid` has exited (a zombie's files are closed; a reaped one has no /proc entry). */
export function exited(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

export const readPid = (file: string) => {
  try {
    return Number(readFileSync(file, 'utf8').trim().split(/\s+/)[0]) || undefined;
  } catch {
    return undefined;
  }
};

export function writeAtomic(file: string, content: string): void {
  writeFileSync(`${file}.tmp`, content);
  renameSync(`${file}.tmp`, file);
}

export async function waitFor(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new DriverError(`${what} did not come up within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Stops the process if it is still ours. Once identified it is waited for until it is gone, not
 * until its command line is: an exiting process loses its command line before it closes its
 * sockets, and a successor started in between would find its addresses still in use.
 */
export async function killProcess(pid: number | undefined, needle: string): Promise<void> {
  if (!processAlive(pid, needle)) return;
  try {
    process.kill(pid!, 'SIGTERM');
    await waitFor(() => exited(pid!), 3000, `process ${pid}`);
  } catch {
    if (!exited(pid!)) process.kill(pid!, 'SIGKILL');
    await waitFor(() => exited(pid!), 3000, `process ${pid}`).catch(() => undefined);
  }
}
