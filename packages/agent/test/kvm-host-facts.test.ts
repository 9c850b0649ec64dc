/**
 * The KVM host's facts and its acceleration decision: facts read from /proc, and the probe boot
 * that alone may enable KVM (exercised here under TCG with the test template's kernel).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { chooseAccel, machineFacts, probeBoot } from '../src/drivers/kvm/host-facts.ts';
import { ensureTemplate, figure, REPO, SKIP_KVM } from './kvm-support.ts';

/** The kernel the template build extracted from linux-image-cloud-amd64. */
function cachedKernel(): string {
  const cache = join(process.env.NIMBOSTACK_CACHE_DIR ?? '/var/cache/nimbostack', 'test-template');
  for (const pkg of readdirSync(cache)) {
    const boot = join(cache, pkg, 'boot');
    const image = existsSync(boot) ? readdirSync(boot).find((f) => f.startsWith('vmlinuz-')) : undefined;
    if (image) return join(boot, image);
  }
  throw new Error(`no extracted kernel under ${cache}`);
}

describe('KVM host facts', { skip: SKIP_KVM }, () => {
  test('cores, MHz and memory come from the machine', () => {
    const f = machineFacts();
    assert.equal(f.cpuCores, cpus().length);
    assert.ok(f.cpuMhz > 100);
    assert.ok(Math.abs(f.memoryBytes - totalmem()) < totalmem() * 0.01);
  });

  test('a probe boot recognises a kernel that boots, and one that cannot', async () => {
    ensureTemplate();
    const t0 = Date.now();
    assert.equal(await probeBoot(cachedKernel(), 'tcg', 90_000), true);
    figure('accelerator probe boot (run under TCG here)', Date.now() - t0);
    assert.equal(await probeBoot('/nonexistent/vmlinuz', 'tcg', 5000), false);
  });

  test('without VMX/SVM (kvm_pvm here) the host runs TCG whatever /dev/kvm says', async (t) => {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    if (/\b(vmx|svm)\b/.test(cpuinfo)) return t.skip('this CPU has hardware virtualisation');
    const dir = mkdtempSync(join(tmpdir(), 'nimbo-accel-'));
    try {
      assert.equal(await chooseAccel(dir, 'test'), 'tcg');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('the agent refuses --hypervisor kvm with one clear line when QEMU is missing', () => {
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      join(REPO, 'packages/agent/src/main.ts'),
      '--server',
      'ws://127.0.0.1:9',
      '--token',
      'missing-qemu',
    ],
    {
      cwd: REPO,
      encoding: 'utf8',
      env: {
        ...process.env,
        NIMBOSTACK_AGENT_HYPERVISOR: 'kvm',
        NIMBOSTACK_QEMU_BINARY: '/nonexistent/qemu-system-x86_64',
        NIMBOSTACK_AGENT_STATE_DIR: join(tmpdir(), 'nimbo-no-qemu'),
      },
    },
  );
  assert.equal(r.status, 1);
  assert.equal(
    r.stderr.trim(),
    'nimbostack-agent: cannot drive KVM: /nonexistent/qemu-system-x86_64 is missing: install qemu-system-x86 and qemu-utils (npm run setup:host)',
  );
});
