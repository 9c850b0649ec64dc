/** The simulator driver: the driver contract, plus migration within a fleet and injected faults. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DriverError, SIMULATOR_DEFAULTS, SimulatorFleet } from '../src/index.ts';
import { driverContract } from './driver-contract.ts';

driverContract('simulator', async () => new SimulatorFleet().addHosts('h', 1)[0], '/sim/pool');

describe('simulator', () => {
  const spec = { name: 'v1', uuid: 'u1', cpus: 1, cpuMhz: 100, memoryBytes: 1, disks: [], nics: [] };

  test('migrates a VM between hosts of one fleet; repeating the migration succeeds', async () => {
    const [a, b] = new SimulatorFleet().addHosts('m', 2);
    await a.startVm(spec);
    await b.prepareMigration(spec);
    await a.migrateVm('v1', { host: 'm-2' });
    await a.migrateVm('v1', { host: 'm-2' });
    assert.deepEqual(a.reportStates(), []);
    assert.deepEqual(b.reportStates(), [{ name: 'v1', state: 'PowerOn' }]);
  });

  test('faults count down per host and latency applies to every command', async () => {
    const fleet = new SimulatorFleet({ ...SIMULATOR_DEFAULTS, latencyMs: 20 });
    const [h] = fleet.addHosts('f', 1);
    h.configure({ kind: 'startVm', count: 1, fail: true, message: 'boom' });
    const t0 = Date.now();
    await assert.rejects(
      h.around('startVm', () => h.startVm(spec)),
      (e: Error) => e instanceof DriverError && e.message === 'boom',
    );
    assert.ok(Date.now() - t0 >= 15);
    assert.equal((await h.around('startVm', () => h.startVm(spec))).state, 'PowerOn');
  });

  test('names and addresses of a large fleet are distinct', () => {
    const hosts = new SimulatorFleet().addHosts('big', 5000);
    assert.equal(new Set(hosts.map((h) => h.name)).size, 5000);
    assert.equal(new Set(hosts.map((h) => h.resources().privateIp)).size, 5000);
  });
});
