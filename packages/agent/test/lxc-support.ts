/**
 * Shared by the LXC suites: whether they run (`npm run test:lxc` sets NIMBOSTACK_TEST_LXC=1 and so
 * fails loudly when LXC or root is missing), the LXC test template (built once by
 * scripts/build-lxc-template.sh, then reused) and running a command in a container.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LxcHost } from '../src/drivers/lxc/lxc-host.ts';
import { REPO } from './kvm-support.ts';

export const HAVE_LXC = existsSync('/usr/bin/lxc-start');

export const SKIP_LXC =
  process.env.NIMBOSTACK_TEST_LXC === '1'
    ? false
    : HAVE_LXC
      ? 'real-container suite: run it with npm run test:lxc'
      : 'LXC is absent: install it with npm run setup:host, then run npm run test:lxc';

export const LXC_TEMPLATE =
  process.env.NIMBOSTACK_TEST_LXC_TEMPLATE ?? '/var/lib/nimbostack/lxc-template.tar.gz';

/** Builds the template unless a build of the same script and busybox exists; returns its path. */
export function ensureLxcTemplate(): { path: string; buildMs: number } {
  const t0 = Date.now();
  execFileSync(join(REPO, 'scripts/build-lxc-template.sh'), [LXC_TEMPLATE], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { path: LXC_TEMPLATE, buildMs: Date.now() - t0 };
}

/** Whether `command` succeeds inside the running container `vm` (lxc-attach). */
export function guestRuns(host: LxcHost, vm: string, command: string[]): boolean {
  return (
    spawnSync('lxc-attach', ['-n', vm, '-P', host.lxcPath, '--', ...command], {
      stdio: 'ignore',
      timeout: 10_000,
    }).status === 0
  );
}
