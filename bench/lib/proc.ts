/** CPU time and memory of another process, read from /proc (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * User plus system CPU seconds the process has used so far; with `children`, also that of its
 * children that have ended (once the process has waited for them).
 */
export function cpuSeconds(pid: number, children = false): number {
  // The command name may contain spaces, so fields are counted after its closing parenthesis.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const own = fields[11] + fields[12];
  return (children ? own + fields[13] + fields[14] : own) / CLOCK_TICKS_PER_SECOND;
}

function statusKiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}:`));
  return line ? Number(line.split(/\s+/)[1]) : Number.NaN;
}

/** Resident memory now, in MiB. */
export function rssMiB(pid: number): number {
  return Math.round(statusKiB(pid, 'VmRSS') / 1024);
}

/** The highest resident memory the process has reached, in MiB. */
export function peakRssMiB(pid: number): number {
  return Math.round(statusKiB(pid, 'VmHWM') / 1024);
}

/** Share of one core the process used over the next `seconds`, in percent. */
export async function cpuPercentOver(pid: number, seconds: number): Promise<number> {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const used = cpuSeconds(pid) - c0;
  return Math.round((used / ((performance.now() - t0) / 1000)) * 1000) / 10;
}

/**
 * CPU seconds used so far by every process whose command name is in `names` (a database server and
 * its backends). A backend that ends takes its time out of the sum, and PostgreSQL's postmaster,
 * which waits for it, adds it to its children's time: counted with it, the sum only grows.
 */
export function cpuSecondsOfCommands(names: readonly string[]): number {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (names.includes(readFileSync(`/proc/${entry}/comm`, 'utf8').trim()))
        total += cpuSeconds(Number(entry), true);
    } catch {
      // The process ended between the listing and the read.
    }
  }
  return total;
}

/** CPU seconds of the whole machine so far, all cores: busy and in total (/proc/stat's first line). */
export function machineCpuSeconds(): { busy: number; total: number } {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/);
  const ticks = fields.map(Number);
  const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0); // user … steal; guest time is already in user
  const idle = ticks[3] + ticks[4]; // idle, iowait
  return { busy: (total - idle) / CLOCK_TICKS_PER_SECOND, total: total / CLOCK_TICKS_PER_SECOND };
}
