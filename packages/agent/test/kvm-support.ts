/**
 * Shared by the KVM test suites: the test template (built once by scripts/build-test-template.sh,
 * then reused), reading the guest's serial console, and whether QEMU is installed at all.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../../..');
export const QEMU = '/usr/bin/qemu-system-x86_64';
export const HAVE_QEMU = existsSync(QEMU);
export const SKIP_KVM = HAVE_QEMU
  ? false
  : `${QEMU} is absent: install it with npm run setup:host to run the KVM driver tests`;

export const TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';

/** Builds the template unless a build of the same script and kernel exists; returns its path. */
export function ensureTemplate(): { path: string; buildMs: number } {
  const t0 = Date.now();
  execFileSync(join(REPO, 'scripts/build-test-template.sh'), [TEMPLATE], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { path: TEMPLATE, buildMs: Date.now() - t0 };
}

export function logSize(path: string): number {
  return existsSync(path) ? readFileSync(path).length : 0;
}

/** Waits until the guest printed a line matching `pattern` at or after byte `from` of its console log. */
export async function waitForConsole(
  path: string,
  pattern: RegExp,
  timeoutMs = 120_000,
  from = 0,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(path)
      ? readFileSync(path).subarray(from).toString('utf8').replace(/\r/g, '')
      : '';
    const line = text.split('\n').find((l) => pattern.test(l));
    if (line) return line;
    if (Date.now() > deadline)
      throw new Error(
        `no console line matching ${pattern} within ${timeoutMs} ms; console:\n${text.slice(-2000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Figures printed by the suites, collected for docs/kvm.md. */
export function figure(name: string, ms: number): void {
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);
}
