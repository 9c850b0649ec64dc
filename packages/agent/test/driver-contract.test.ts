/**
 * One scenario, run against the simulator, the KVM driver and the LXC driver: a VM's life from a
 * template (start, live disk attach and detach, live snapshot, clean stop, start, reboot, revert,
 * volume from snapshot, delete). The KVM run boots the real test template under TCG and follows
 * the guest on its serial console; the LXC run starts a container from the LXC test template and
 * follows its console log. Their guest has a NIC without a bridge, so its init must time DHCP out
 * and go on.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { HostDriver } from '../src/drivers/driver.ts';
import { imageInfo } from '../src/drivers/kvm/exec.ts';
import { KvmHost } from '../src/drivers/kvm/kvm-host.ts';
import { LxcHost } from '../src/drivers/lxc/lxc-host.ts';
import { SimulatorFleet } from '../src/drivers/simulator.ts';
import { ensureTemplate, figure, logSize, SKIP_KVM, waitForConsole } from './kvm-support.ts';
import { ensureLxcTemplate, guestRuns, SKIP_LXC } from './lxc-support.ts';

interface Harness {
  host: HostDriver;
  pool: { uuid: string; type: 'Filesystem' | 'Simulator'; path: string };
  template: { uuid: string; path: string; sizeBytes: number };
  /** Waits for a console line from the guest (the simulator has no guest: resolves at once). */
  guest(vm: string, pattern: RegExp, from?: number): Promise<void>;
  /**
   * Waits until the guest sees (or no longer sees) its disk `node` (vdb): a KVM guest prints the
   * hot-plug event on its console, a container has the device node or not.
   */
  disk(vm: string, node: string, present: boolean, from: number): Promise<void>;
  consoleOffset(vm: string): number;
  cleanup(): Promise<void>;
}

function simulatorHarness(): Harness {
  const [host] = new SimulatorFleet().addHosts('contract-sim', 1);
  return {
    host,
    pool: { uuid: 'pool-sim', type: 'Simulator', path: '/sim/pool' },
    template: { uuid: 'tpl-1', path: 'template/tpl-1.qcow2', sizeBytes: 128 * 1024 ** 2 },
    guest: async () => undefined,
    disk: async () => undefined,
    consoleOffset: () => 0,
    cleanup: async () => undefined,
  };
}

async function kvmHarness(): Promise<Harness> {
  const { path, buildMs } = ensureTemplate();
  figure('template build (cached after the first)', buildMs);
  const root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-contract-'));
  mkdirSync(join(root, 'pool'));
  const host = await KvmHost.create({
    name: 'contract-kvm',
    stateDir: join(root, 'state'),
    privateIp: '127.0.0.1',
    stopTimeoutMs: 60_000,
  });
  assert.equal(host.acceleration, 'tcg', 'this machine type has no usable KVM (kvm_pvm)');
  return {
    host,
    pool: { uuid: 'pool-kvm', type: 'Filesystem', path: join(root, 'pool') },
    template: { uuid: 'tpl-1', path, sizeBytes: (await imageInfo(path)).virtualSize },
    guest: async (vm, pattern, from = 0) => {
      await waitForConsole(host.consoleLog(vm), pattern, 180_000, from);
    },
    disk: async (vm, node, present, from) => {
      await waitForConsole(
        host.consoleLog(vm),
        new RegExp(`NIMBO: disk ${present ? 'add' : 'remove'} \\S*${node}`),
        180_000,
        from,
      );
    },
    consoleOffset: (vm) => logSize(host.consoleLog(vm)),
    cleanup: async () => {
      for (const r of host.reportStates()) await host.stopVm(r.name, true);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

async function lxcHarness(): Promise<Harness> {
  const { path, buildMs } = ensureLxcTemplate();
  figure('LXC template build (cached after the first)', buildMs);
  const root = mkdtempSync(join(tmpdir(), 'nimbo-lxc-contract-'));
  mkdirSync(join(root, 'pool'));
  const host = await LxcHost.create({
    name: 'contract-lxc',
    stateDir: join(root, 'state'),
    privateIp: '127.0.0.1',
    stopTimeoutMs: 20_000,
  });
  return {
    host,
    pool: { uuid: 'pool-lxc', type: 'Filesystem', path: join(root, 'pool') },
    template: { uuid: 'tpl-1', path, sizeBytes: statSync(path).size },
    guest: async (vm, pattern, from = 0) => {
      await waitForConsole(host.consoleLog(vm), pattern, 30_000, from).catch((err: Error) => {
        // LXC's own log says why a container did not come up.
        const log = join(root, 'state', 'contract-lxc', 'vms', vm, 'lxc.log');
        throw new Error(
          `${err.message}\nlxc.log:\n${existsSync(log) ? readFileSync(log, 'utf8') : '(none)'}\nstates: ${JSON.stringify(host.reportStates())}`,
        );
      });
    },
    disk: async (vm, node, present) => {
      const deadline = Date.now() + 10_000;
      while (guestRuns(host, vm, ['test', '-b', `/dev/${node}`]) !== present) {
        if (Date.now() > deadline) throw new Error(`/dev/${node} is ${present ? 'not ' : ''}in ${vm}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    consoleOffset: (vm) => logSize(host.consoleLog(vm)),
    cleanup: async () => {
      for (const r of host.reportStates()) await host.stopVm(r.name, true);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

const vmSpec = (disks: object[]) => ({
  name: 'i-2-42-VM',
  uuid: '6c1a2f0e-4b1d-4f7e-9a51-0000000000aa',
  cpus: 1,
  cpuMhz: 1000,
  memoryBytes: 256 * 1024 ** 2,
  disks: disks as never,
  nics: [{ mac: '02:00:4e:00:00:2a', deviceId: 0 }],
});

function contract(label: string, make: () => Promise<Harness>, skip: string | false) {
  describe(`driver contract: ${label}`, { skip }, () => {
    let h: Harness;
    let root: { volumeUuid: string; path: string; pool: Harness['pool']; deviceId: number; type: 'ROOT' };
    let data: { volumeUuid: string; path: string; pool: Harness['pool']; deviceId: number; type: 'DATADISK' };
    let snapshot: string;
    const state = (name: string) =>
      h.host.hypervisor.reportStates().find((r) => r.name === name)?.state ?? 'PowerOff';
    const spec = () => vmSpec([root]);

    before(async () => {
      h = await make();
    });
    after(async () => {
      await h?.cleanup();
    });

    test('a root volume is a clone of the template', async () => {
      const v = await h.host.storage.createVolumeFromTemplate({
        volumeUuid: 'vol-root-42',
        pool: h.pool,
        template: h.template,
        sizeBytes: 0,
      });
      assert.ok(v.sizeBytes >= h.template.sizeBytes);
      root = { volumeUuid: 'vol-root-42', path: v.path, pool: h.pool, deviceId: 0, type: 'ROOT' };
      const again = await h.host.storage.createVolumeFromTemplate({
        volumeUuid: 'vol-root-42',
        pool: h.pool,
        template: h.template,
      });
      assert.deepEqual(again, v, 'creating it again is idempotent');
    });

    test('start: PowerOn is reported and the guest runs its init', async () => {
      const t0 = Date.now();
      const r = await h.host.hypervisor.startVm(spec());
      assert.equal(r.state, 'PowerOn');
      assert.equal(state('i-2-42-VM'), 'PowerOn');
      await h.guest('i-2-42-VM', /NIMBO: init/);
      if (label !== 'simulator') figure(`start to init marker (${label})`, Date.now() - t0);
      // No bridge behind the NIC: DHCP times out and init carries on.
      await h.guest('i-2-42-VM', /NIMBO: ready/);
      if (label !== 'simulator') figure(`start to ready marker, DHCP timed out (${label})`, Date.now() - t0);
      assert.equal(
        (await h.host.hypervisor.startVm(spec())).state,
        'PowerOn',
        'starting twice is idempotent',
      );
      const { stats } = await h.host.hypervisor.vmStats(['i-2-42-VM', 'i-0-0-absent']);
      assert.deepEqual(
        stats.map((s) => [s.name, s.memoryBytes]),
        [['i-2-42-VM', 256 * 1024 ** 2]],
      );
      if (label === 'kvm') assert.ok(stats[0].diskReadBytes > 0, 'the guest read its disk');
      assert.equal((await h.host.hypervisor.checkHealth()).healthy, true);
      const host = await h.host.hypervisor.hostStats();
      assert.ok(host.cpuUtilization >= 0 && host.cpuUtilization <= 100);
    });

    test('a data disk attaches and detaches live', async () => {
      const v = await h.host.storage.createVolume({
        volumeUuid: 'vol-data-42',
        sizeBytes: 64 * 1024 ** 2,
        pool: h.pool,
      });
      assert.equal(v.sizeBytes, 64 * 1024 ** 2);
      data = { volumeUuid: 'vol-data-42', path: v.path, pool: h.pool, deviceId: 1, type: 'DATADISK' };
      const from = h.consoleOffset('i-2-42-VM');
      await h.host.hypervisor.attachVolume('i-2-42-VM', data);
      await h.disk('i-2-42-VM', 'vdb', true, from);
      await h.host.hypervisor.attachVolume('i-2-42-VM', data);
      const grown = await h.host.storage.resizeVolume({
        path: data.path,
        pool: h.pool,
        newSizeBytes: 96 * 1024 ** 2,
        shrinkOk: false,
      });
      assert.equal(grown.sizeBytes, 96 * 1024 ** 2, 'a disk in use grows live');
      if (label !== 'simulator')
        await assert.rejects(
          h.host.storage.deleteVolume({ path: root.path, pool: h.pool }),
          /in use by running (VM|container)/,
        );
      const before = h.consoleOffset('i-2-42-VM');
      await h.host.hypervisor.detachVolume('i-2-42-VM', data);
      await h.disk('i-2-42-VM', 'vdb', false, before);
      await h.host.hypervisor.detachVolume('i-2-42-VM', data);
    });

    test('a snapshot of a running VM is backed up as a flat image, and the VM runs on', async () => {
      const t0 = Date.now();
      const s = await h.host.storage.createSnapshot({
        snapshotUuid: 'snap-42',
        volumePath: root.path,
        pool: h.pool,
        vm: 'i-2-42-VM',
      });
      if (label === 'kvm') {
        figure('live snapshot + flat backup', Date.now() - t0);
        assert.ok(existsSync(s.path));
        assert.equal((await imageInfo(s.path)).backingFile, undefined, 'the backup stands alone');
        assert.equal((await imageInfo(root.path)).backingFile?.includes('template-tpl-1'), true);
        assert.ok(!existsSync(`${root.path}.overlay`), 'the overlay was committed back');
      }
      if (label === 'lxc') {
        assert.ok(s.path.endsWith('.tar.gz') && existsSync(s.path));
        // Written after the snapshot: the revert below must take it away.
        assert.ok(guestRuns(h.host as LxcHost, 'i-2-42-VM', ['sh', '-c', 'echo later > /after-snapshot']));
      }
      snapshot = s.path;
      assert.equal(state('i-2-42-VM'), 'PowerOn');
      assert.deepEqual(
        await h.host.storage.createSnapshot({ snapshotUuid: 'snap-42', volumePath: root.path, pool: h.pool }),
        s,
      );
    });

    test('stop by ACPI: the guest powers itself off and the VM is reported off', async () => {
      const t0 = Date.now();
      await h.host.hypervisor.stopVm('i-2-42-VM', false);
      if (label === 'kvm') {
        figure('ACPI stop', Date.now() - t0);
        await h.guest('i-2-42-VM', /NIMBO: acpi power-off/);
      }
      if (label === 'lxc') {
        figure('clean stop (halt signal to init)', Date.now() - t0);
        await h.guest('i-2-42-VM', /NIMBO: shutdown/);
      }
      assert.equal(state('i-2-42-VM'), 'PowerOff');
      await h.host.hypervisor.stopVm('i-2-42-VM', false);
    });

    test('start again, then reboot: the guest boots twice', async () => {
      const t0 = Date.now();
      await h.host.hypervisor.startVm(spec());
      await h.guest('i-2-42-VM', /NIMBO: ready/);
      if (label !== 'simulator') figure(`second start to ready marker (${label})`, Date.now() - t0);
      const from = h.consoleOffset('i-2-42-VM');
      await h.host.hypervisor.rebootVm('i-2-42-VM');
      await h.guest('i-2-42-VM', /NIMBO: init/, from);
      assert.equal(state('i-2-42-VM'), 'PowerOn');
    });

    if (label === 'kvm')
      test('pause and resume: a paused VM still holds its host and reports PowerOn', async () => {
        const kvm = h.host as KvmHost;
        await kvm.pauseVm('i-2-42-VM');
        assert.equal(await kvm.status('i-2-42-VM'), 'paused');
        assert.equal(state('i-2-42-VM'), 'PowerOn');
        await kvm.resumeVm('i-2-42-VM');
        assert.equal(await kvm.status('i-2-42-VM'), 'running');
      });

    test('revert to the snapshot (VM stopped), then a volume from the snapshot', async () => {
      if (label !== 'simulator')
        await assert.rejects(
          h.host.storage.revertSnapshot({ snapshotPath: snapshot, volumePath: root.path, pool: h.pool }),
          /stop (VM|container)/,
        );
      await h.host.hypervisor.stopVm('i-2-42-VM', true);
      assert.equal(state('i-2-42-VM'), 'PowerOff');
      await h.host.storage.revertSnapshot({ snapshotPath: snapshot, volumePath: root.path, pool: h.pool });
      const copy = await h.host.storage.createVolume({
        volumeUuid: 'vol-from-snap',
        sizeBytes: 64 * 1024 ** 2,
        pool: h.pool,
        fromSnapshot: snapshot,
      });
      assert.ok(copy.sizeBytes >= 64 * 1024 ** 2);
      if (label === 'kvm') {
        assert.ok((await imageInfo(root.path)).backingFile, 'the reverted volume still clones its template');
        await h.host.hypervisor.startVm(spec());
        await h.guest('i-2-42-VM', /NIMBO: init/);
        await h.host.hypervisor.stopVm('i-2-42-VM', true);
      }
      if (label === 'lxc') {
        await h.host.hypervisor.startVm(spec());
        await h.guest('i-2-42-VM', /NIMBO: ready/, h.consoleOffset('i-2-42-VM'));
        const lxc = h.host as LxcHost;
        assert.ok(guestRuns(lxc, 'i-2-42-VM', ['test', '-x', '/sbin/init']), 'the root file system is whole');
        assert.ok(
          !guestRuns(lxc, 'i-2-42-VM', ['test', '-e', '/after-snapshot']),
          'reverted to the snapshot',
        );
        await h.host.hypervisor.stopVm('i-2-42-VM', true);
      }
      await h.host.storage.deleteVolume({ path: copy.path, pool: h.pool });
    });

    test('delete: snapshot and volumes go, twice without error', async () => {
      for (let i = 0; i < 2; i++) {
        await h.host.storage.deleteSnapshot({ path: snapshot, pool: h.pool });
        await h.host.storage.deleteVolume({ path: data.path, pool: h.pool });
        await h.host.storage.deleteVolume({ path: root.path, pool: h.pool });
      }
      if (label !== 'simulator') for (const p of [snapshot, data.path, root.path]) assert.ok(!existsSync(p));
      assert.deepEqual(h.host.hypervisor.reportStates(), []);
    });
  });
}

contract('simulator', async () => simulatorHarness(), false);
contract('kvm', kvmHarness, SKIP_KVM);
contract('lxc', lxcHarness, SKIP_LXC);
