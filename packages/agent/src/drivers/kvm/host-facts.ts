/**
 * What the KVM host reports at startup, read from the machine itself, and the choice between
 * hardware acceleration and TCG.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { cpus, networkInterfaces, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DriverError } from '../driver.ts';
import { run } from './exec.ts';

/** Where QEMU is; other distributions put it elsewhere (e.g. /usr/libexec/qemu-kvm). */
export const QEMU_BINARY = process.env.NIMBOSTACK_QEMU_BINARY || '/usr/bin/qemu-system-x86_64';

export type Accel = 'kvm' | 'tcg';

export interface MachineFacts {
  cpuSockets: number;
  cpuCores: number;
  cpuMhz: number;
  memoryBytes: number;
}

export function machineFacts(): MachineFacts {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo);
  const sockets = new Set([...cpuinfo.matchAll(/^physical id\s*:\s*(\d+)/gm)].map((m) => m[1]));
  const mem = /^MemTotal:\s*(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
  return {
    cpuSockets: Math.max(1, sockets.size),
    cpuCores: cpus().length,
    cpuMhz: Math.max(1, Math.round(mhz ? Number(mhz[1]) : (cpus()[0]?.speed ?? 1000))),
    memoryBytes: mem ? Number(mem[1]) * 1024 : 0,
  };
}

/** Total bytes of the file system holding `path` (where local primary storage and VM state live). */
export function diskBytes(path: string): number {
  const s = statfsSync(path);
  return s.blocks * s.bsize;
}

/** The first non-loopback IPv4 address: the management address when none is configured. */
export function defaultAddress(): string {
  for (const list of Object.values(networkInterfaces()))
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  return '127.0.0.1';
}

export async function qemuVersion(): Promise<string> {
  if (!existsSync(QEMU_BINARY))
    throw new DriverError(
      `${QEMU_BINARY} is missing: install qemu-system-x86 and qemu-utils (npm run setup:host)`,
    );
  const out = await run(QEMU_BINARY, ['--version']);
  return /version (\d+\.\d+\.\d+)/.exec(out)?.[1] ?? 'unknown';
}

/**
 * Decides the accelerator. /dev/kvm alone proves nothing (a PVM host offers one that cannot run an
 * unmodified guest kernel), so KVM is used only when the CPU has VMX/SVM and a probe boot of a real
 * kernel under -enable-kvm reaches the point where it looks for its root file system. The verdict
 * is cached per host kernel and QEMU version, since a probe costs up to 20 seconds.
 */
export async function chooseAccel(stateDir: string, version: string): Promise<Accel> {
  if (!existsSync('/dev/kvm')) return 'tcg';
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const hardware =
    /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo) ||
    existsSync('/sys/module/kvm_intel') ||
    existsSync('/sys/module/kvm_amd');
  if (!hardware) return 'tcg';
  const cacheFile = join(stateDir, 'accel-probe.json');
  const key = `${release()} qemu ${version}`;
  try {
    const cached = JSON.parse(readFileSync(cacheFile, 'utf8'));
    if (cached.key === key && (cached.accel === 'kvm' || cached.accel === 'tcg')) return cached.accel;
  } catch {
    // No verdict yet for this kernel and QEMU.
  }
  const kernel = probeKernel();
  const accel: Accel = kernel && (await probeBoot(kernel, 'kvm', 20_000)) ? 'kvm' : 'tcg';
  writeFileSync(cacheFile, JSON.stringify({ key, accel, kernel, at: new Date().toISOString() }));
  return accel;
}

/** A bootable kernel on the host for the probe: the running kernel's image, or any in /boot. */
function probeKernel(): string | undefined {
  const own = `/boot/vmlinuz-${release()}`;
  if (existsSync(own)) return own;
  const any = existsSync('/boot') ? readdirSync('/boot').find((f) => f.startsWith('vmlinuz-')) : undefined;
  return any ? join('/boot', any) : undefined;
}

/**
 * Boots `kernel` without a root file system: reaching "VFS: Unable to mount root" (or the panic
 * after it) means the accelerator ran a 64-bit kernel through its whole early boot.
 */
export async function probeBoot(kernel: string, accel: Accel, timeoutMs: number): Promise<boolean> {
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-accel-'));
  const log = join(dir, 'serial.log');
  const args = [
    ...(accel === 'kvm' ? ['-enable-kvm', '-cpu', 'host'] : ['-accel', 'tcg']),
    ...['-m', '256', '-nodefaults', '-display', 'none', '-no-reboot', '-serial', `file:${log}`],
    ...['-kernel', kernel, '-append', 'console=ttyS0 panic=-1 root=/dev/nonexistent'],
  ];
  const child = spawn(QEMU_BINARY, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + timeoutMs;
  let ok = false;
  while (Date.now() < deadline && child.exitCode === null) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    if (/VFS: Unable to mount root|Kernel panic/.test(text)) {
      ok = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!ok && existsSync(log)) ok = /VFS: Unable to mount root|Kernel panic/.test(readFileSync(log, 'utf8'));
  child.kill('SIGKILL');
  await exited;
  rmSync(dir, { recursive: true, force: true });
  return ok;
}
