/** The simulator driver: the driver contract, plus migration within a fleet and injected faults. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GuestNetwork, RouterPublic, RouterRules, RouterSpec } from '@nimbostack/protocol';
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

  test('console output: a line per power event, following the VM when it migrates; the tail only', async () => {
    const [a, b] = new SimulatorFleet().addHosts('c', 2);
    await a.startVm({ ...spec, cpus: 2, memoryBytes: 512 * 1024 ** 2 });
    await a.rebootVm('v1');
    await b.prepareMigration(spec);
    await a.migrateVm('v1', { host: 'c-2' });
    await b.stopVm('v1');
    const onA = (await a.consoleOutput('v1', 65536)).toString();
    assert.match(
      onA,
      /c-1: simulated VM v1 powered on \(2 vCPU, 512 MiB, 0 disk\(s\), 0 NIC\(s\)\)\n.*c-1: simulated VM v1 rebooted\n$/s,
    );
    const onB = (await b.consoleOutput('v1', 65536)).toString();
    assert.match(onB, /c-2: simulated VM v1 migrated in from c-1\n.*c-2: simulated VM v1 powered off\n$/s);
    assert.equal((await b.consoleOutput('v1', 10)).toString(), 'owered off\n'.slice(-10));
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

  test('routers: applyRouterRules records the public side and rules, updateRouter keeps them, an unknown router is refused', async () => {
    const [h] = new SimulatorFleet().addHosts('r', 1);
    const network = GuestNetwork.parse({
      uuid: 'n1',
      bridge: 'br1',
      cidr: '10.1.1.0/24',
      gateway: '10.1.1.1',
    });
    const pub = RouterPublic.parse({
      bridge: 'cloudbr0',
      mac: '02:00:00:00:00:02',
      gateway: '203.0.113.1',
      addresses: [{ ip: '203.0.113.10', prefix: 24 }],
      sourceNat: '203.0.113.10',
    });
    await h.startRouter(
      RouterSpec.parse({ name: 'r-1-VM', network, ip: '10.1.1.1', mac: '02:00:00:00:00:01' }),
    );
    const rules = RouterRules.parse({
      egressDefaultAllow: false,
      firewall: [{ publicIp: '203.0.113.10', protocol: 'tcp', startPort: 22, endPort: 22 }],
    });
    assert.deepEqual(await h.applyRouterRules({ name: 'r-1-VM', public: pub, rules }), {});
    await h.updateRouter({ name: 'r-1-VM', add: [], remove: [] });
    assert.deepEqual(h.routers.get('r-1-VM')?.public, pub);
    assert.deepEqual(h.routers.get('r-1-VM')?.rules, rules);
    // Without `public` the public side stays; the rules are replaced whole.
    await h.applyRouterRules({ name: 'r-1-VM', rules: RouterRules.parse({}) });
    assert.deepEqual(h.routers.get('r-1-VM')?.public, pub);
    assert.deepEqual(h.routers.get('r-1-VM')?.rules?.firewall, []);
    await assert.rejects(h.applyRouterRules({ name: 'r-2-VM', rules }), DriverError);
  });

  test('names and addresses of a large fleet are distinct', () => {
    const hosts = new SimulatorFleet().addHosts('big', 5000);
    assert.equal(new Set(hosts.map((h) => h.name)).size, 5000);
    assert.equal(new Set(hosts.map((h) => h.resources().privateIp)).size, 5000);
  });
});
