/**
 * The contract every driver passes (simulator today, KVM next): idempotent operations, power
 * states as reported, refusals as DriverError. A driver's test calls driverContract with a factory.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { VmSpec } from '@nimbostack/protocol';
import { DriverError, type HostDriver } from '../src/index.ts';

export function driverContract(name: string, makeHost: () => Promise<HostDriver>, poolPath: string): void {
  const pool = { uuid: 'pool-1', type: 'Filesystem' as const, path: poolPath };
  const vm: VmSpec = {
    name: 'i-2-77-VM',
    uuid: '6b0c2a1e-0000-4000-8000-000000000077',
    cpus: 1,
    cpuMhz: 500,
    memoryBytes: 256 * 1024 ** 2,
    disks: [],
    nics: [{ mac: '02:00:00:00:00:01', deviceId: 0 }],
  };

  describe(`${name} driver contract`, () => {
    test('reports its resources', async () => {
      const r = (await makeHost()).hypervisor.resources();
      assert.ok(r.cpuCores > 0 && r.cpuMhz > 0 && r.memoryBytes > 0 && r.cpuSockets > 0);
      assert.ok(r.privateIp.length > 0);
    });

    test('start, reboot and stop are idempotent and reflected in reported states', async () => {
      const h = await makeHost();
      assert.equal((await h.hypervisor.startVm(vm)).state, 'PowerOn');
      assert.equal((await h.hypervisor.startVm(vm)).state, 'PowerOn');
      assert.deepEqual(h.hypervisor.reportStates(), [{ name: vm.name, state: 'PowerOn' }]);
      await h.hypervisor.rebootVm(vm.name);
      await h.hypervisor.stopVm(vm.name, false);
      await h.hypervisor.stopVm(vm.name, true);
      assert.deepEqual(h.hypervisor.reportStates(), []);
      await assert.rejects(h.hypervisor.rebootVm(vm.name), DriverError);
    });

    test('a running VM has a console that speaks RFB; a stopped one has none', async () => {
      const h = await makeHost();
      await h.hypervisor.startVm(vm);
      const stream = await h.hypervisor.openConsole(vm.name);
      const banner = await new Promise<string>((resolve) =>
        stream.once('data', (d: Buffer) => resolve(d.toString('latin1'))),
      );
      assert.equal(banner, 'RFB 003.008\n');
      const closed = new Promise((resolve) => stream.once('close', resolve));
      await h.hypervisor.stopVm(vm.name, true);
      await closed; // the VM's console connections end with it
      await assert.rejects(h.hypervisor.openConsole(vm.name), DriverError);
    });

    test('console output: empty for a VM never run here, at most maxBytes, kept after the VM stops', async () => {
      const h = await makeHost();
      assert.equal((await h.hypervisor.consoleOutput('i-2-99-VM', 1024)).length, 0);
      await h.hypervisor.startVm(vm);
      await h.hypervisor.stopVm(vm.name, true);
      const out = await h.hypervisor.consoleOutput(vm.name, 16);
      assert.ok(Buffer.isBuffer(out) && out.length <= 16);
      assert.deepEqual(await h.hypervisor.consoleOutput(vm.name, 16), out, 'reading changes nothing');
    });

    test('volumes: create is idempotent, shrinking needs consent, delete twice succeeds', async () => {
      const h = await makeHost();
      const a = await h.storage.createVolume({ volumeUuid: 'vol-1', sizeBytes: 1024 ** 2, pool });
      const b = await h.storage.createVolume({ volumeUuid: 'vol-1', sizeBytes: 1024 ** 2, pool });
      assert.deepEqual(a, b);
      await assert.rejects(
        h.storage.resizeVolume({ path: a.path, pool, newSizeBytes: 1024, shrinkOk: false }),
        DriverError,
      );
      assert.equal(
        (await h.storage.resizeVolume({ path: a.path, pool, newSizeBytes: 2 * 1024 ** 2, shrinkOk: false }))
          .sizeBytes,
        2 * 1024 ** 2,
      );
      await h.storage.deleteVolume({ path: a.path, pool });
      await h.storage.deleteVolume({ path: a.path, pool });
    });

    test('snapshots: create, revert, delete', async () => {
      const h = await makeHost();
      const v = await h.storage.createVolumeFromTemplate({
        volumeUuid: 'vol-2',
        pool,
        template: { uuid: 'tpl', path: 'template/tpl', sizeBytes: 1024 ** 2 },
      });
      const s = await h.storage.createSnapshot({ snapshotUuid: 'snap-1', volumePath: v.path, pool });
      assert.equal(s.sizeBytes, v.sizeBytes);
      await h.storage.resizeVolume({ path: v.path, pool, newSizeBytes: 4 * 1024 ** 2, shrinkOk: false });
      await h.storage.revertSnapshot({ snapshotPath: s.path, volumePath: v.path, pool });
      await h.storage.deleteSnapshot({ path: s.path, pool });
      await h.storage.deleteSnapshot({ path: s.path, pool });
      await assert.rejects(
        h.storage.revertSnapshot({ snapshotPath: s.path, volumePath: v.path, pool }),
        DriverError,
      );
    });

    test('volumes attach to and detach from a running VM', async () => {
      const h = await makeHost();
      await h.hypervisor.startVm(vm);
      const v = await h.storage.createVolume({ volumeUuid: 'vol-3', sizeBytes: 1024 ** 2, pool });
      const disk = { volumeUuid: 'vol-3', path: v.path, pool, deviceId: 1, type: 'DATADISK' as const };
      await h.hypervisor.attachVolume(vm.name, disk);
      await h.hypervisor.detachVolume(vm.name, disk);
      await assert.rejects(h.hypervisor.attachVolume('no-such-vm', disk), DriverError);
    });
  });
}
