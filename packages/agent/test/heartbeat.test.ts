/**
 * The storage heartbeat (VM HA) on the agent side: a host writes its record to each shared pool,
 * a neighbour reads its age and VMs, a stopped heartbeat ages, simulator pools are skipped, a
 * driver's own pool access is used (a KVM host's NFS mount or user-space client), and the KVM
 * disk-lock check sees an image a process holds with QEMU's lock.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { HostDriver, PoolRecords } from '../src/drivers/driver.ts';
import { disksInUse } from '../src/drivers/kvm/disk-locks.ts';
import { SimulatorFleet } from '../src/drivers/simulator.ts';
import { checkHost, HEARTBEAT_DIR, Heartbeats } from '../src/heartbeat.ts';

const dir = mkdtempSync(join(tmpdir(), 'nimbo-hb-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pool = { uuid: 'pool-1', type: 'Filesystem' as const, path: dir };

describe('storage heartbeat', () => {
  test('written to each pool, read by a neighbour with its age and VMs; a stopped one ages', async () => {
    const [a, b] = new SimulatorFleet().addHosts('hb', 2);
    await a!.startVm({ name: 'i-1', uuid: 'u1', cpus: 1, cpuMhz: 100, memoryBytes: 1, disks: [], nics: [] });
    const beats = new Heartbeats(() => undefined);
    const sim = { uuid: 'pool-sim', type: 'Simulator' as const, path: '/sim/pool' };
    const r = await beats.set(a!, { hostId: 'host-a-uuid', intervalMs: 100, pools: [pool, sim] });
    assert.deepEqual(r.written, ['pool-1'], 'simulator pools hold no files');
    assert.deepEqual(readdirSync(join(dir, HEARTBEAT_DIR)), ['host-a-uuid.json']);
    await sleep(250);
    const seen = await checkHost(b!, {
      hostId: 'host-a-uuid',
      address: '172.16.0.1',
      pools: [pool],
      disks: [],
    });
    assert.equal(seen.reachable, null, 'a simulated host cannot ping');
    assert.equal(seen.disksInUse, null);
    assert.equal(seen.heartbeats.length, 1);
    assert.ok(seen.heartbeats[0]!.ageMs! < 200, `age ${seen.heartbeats[0]!.ageMs}`);
    assert.deepEqual(seen.heartbeats[0]!.vms, ['i-1']);
    beats.stopAll();
    await sleep(400);
    const later = await checkHost(b!, { hostId: 'host-a-uuid', pools: [pool], disks: [] });
    assert.ok(later.heartbeats[0]!.ageMs! >= 300, 'no longer written');
    const none = await checkHost(b!, { hostId: 'other', pools: [pool], disks: [] });
    assert.equal(none.heartbeats[0]!.ageMs, null);
  });

  test("records go through the host's own pool access when its driver has one (NFS pools on KVM)", async () => {
    // One export as two hosts reach it: a map of its files, never the pool's path on this machine.
    const exported = new Map<string, string>();
    const reached: string[] = [];
    const nfsPool = {
      uuid: 'pool-nfs',
      type: 'NetworkFilesystem' as const,
      host: '192.0.2.10',
      path: join(dir, 'not-the-export'),
    };
    const through = (sim: HostDriver): HostDriver => ({
      name: sim.name,
      hypervisor: sim.hypervisor,
      storage: sim.storage,
      poolRecords: async (p): Promise<PoolRecords> => {
        reached.push(`${sim.name}:${p.uuid}`);
        return {
          readText: async (name) => {
            const text = exported.get(name);
            if (text === undefined) throw new Error(`${name}: no such file`);
            return text;
          },
          writeText: async (name, text) => void exported.set(name, text),
        };
      },
    });
    const [a, b] = new SimulatorFleet().addHosts('hb-nfs', 2).map(through);
    const beats = new Heartbeats(() => undefined);
    assert.deepEqual(
      (await beats.set(a!, { hostId: 'host-n', intervalMs: 1000, pools: [nfsPool] })).written,
      ['pool-nfs'],
    );
    beats.stopAll();
    assert.deepEqual([...exported.keys()], [`${HEARTBEAT_DIR}/host-n.json`]);
    assert.ok(!existsSync(nfsPool.path), "nothing is written at the export's path on this machine");
    const seen = await checkHost(b!, { hostId: 'host-n', pools: [nfsPool], disks: [] });
    assert.ok(seen.heartbeats[0]!.ageMs !== null && seen.heartbeats[0]!.ageMs < 1000);
    assert.deepEqual(reached, [`${a!.name}:pool-nfs`, `${b!.name}:pool-nfs`]);
  });

  test('an empty pool list stops the heartbeat', async () => {
    const [a] = new SimulatorFleet().addHosts('hb-stop', 1);
    const beats = new Heartbeats(() => undefined);
    await beats.set(a!, { hostId: 'host-s', intervalMs: 50, pools: [pool] });
    assert.deepEqual((await beats.set(a!, { hostId: 'host-s', intervalMs: 50, pools: [] })).written, []);
    const before = (await checkHost(a!, { hostId: 'host-s', pools: [pool], disks: [] })).heartbeats[0]!;
    await sleep(200);
    const afterwards = (await checkHost(a!, { hostId: 'host-s', pools: [pool], disks: [] })).heartbeats[0]!;
    assert.ok(afterwards.ageMs! >= before.ageMs! + 150);
  });

  test('a host that can no longer write to any pool stops its VMs itself after fenceAfterMs', async () => {
    const own = mkdtempSync(join(dir, 'fence-'));
    const [a] = new SimulatorFleet().addHosts('hb-fence', 1);
    await a!.startVm({ name: 'i-f', uuid: 'uf', cpus: 1, cpuMhz: 100, memoryBytes: 1, disks: [], nics: [] });
    const warned: string[] = [];
    const beats = new Heartbeats((_f, msg) => warned.push(msg));
    const lost = { uuid: 'pool-f', type: 'Filesystem' as const, path: own };
    await beats.set(a!, { hostId: 'host-f', intervalMs: 50, fenceAfterMs: 200, pools: [lost] });
    await sleep(300);
    assert.deepEqual(a!.reportStates(), [{ name: 'i-f', state: 'PowerOn' }], 'writing: nothing happens');
    rmSync(own, { recursive: true, force: true });
    await sleep(500);
    beats.stopAll();
    assert.deepEqual(a!.reportStates(), [], 'stopped once the heartbeat could not be written');
    assert.ok(warned.some((m) => m.includes('self-fencing')));
  });

  test('disksInUse sees an image held by a process with QEMU’s lock', {
    skip: !existsSync('/usr/bin/qemu-io'),
  }, async () => {
    const image = join(dir, 'disk.qcow2');
    await new Promise<void>((resolve, reject) =>
      spawn('qemu-img', ['create', '-f', 'qcow2', image, '16M'], { stdio: 'ignore' }).on('exit', (c) =>
        c === 0 ? resolve() : reject(new Error(`qemu-img ${c}`)),
      ),
    );
    assert.deepEqual(await disksInUse([image, join(dir, 'missing.qcow2')]), []);
    // qemu-io keeps the image open (and locked) while it waits on its standard input.
    const holder = spawn('qemu-io', ['-f', 'qcow2', image], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      let held: string[] | null = [];
      for (let i = 0; i < 50 && held?.length === 0; i++) {
        await sleep(100);
        held = await disksInUse([image]);
      }
      assert.deepEqual(held, [image]);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
