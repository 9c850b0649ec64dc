/**
 * The LXC driver on real containers, beyond the shared contract: cgroup limits from the offering,
 * re-adoption by a restarted agent (a running container is taken over, one that stopped while the
 * agent was away is reported off), NIC hot-plug and unplug on a bridge, a root volume moved to
 * another pool, the terminal console, and refusals (ISOs, live migration). Run by `npm run test:lxc`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { VmSpec } from '@nimbostack/protocol';
import { DriverError } from '../src/drivers/driver.ts';
import { tapName } from '../src/drivers/kvm/machine.ts';
import { LxcHost } from '../src/drivers/lxc/lxc-host.ts';
import { waitForConsole } from './kvm-support.ts';
import { ensureLxcTemplate, guestRuns, SKIP_LXC } from './lxc-support.ts';

const BRIDGE = 'nimbolxct0';
let root = '';
let template = { uuid: 'tpl-lxc', path: '', sizeBytes: 0 };
const pool = () => ({ uuid: 'pool-lxc', type: 'Filesystem' as const, path: join(root, 'pool') });
const open = (dir = 'state') =>
  LxcHost.create({ name: 'lxc-agent', stateDir: join(root, dir), privateIp: '127.0.0.1' });
const cgroup = (h: LxcHost, vm: string, key: string) =>
  execFileSync('lxc-cgroup', ['-n', vm, '-P', h.lxcPath, key], { encoding: 'utf8' }).trim();
const V1 = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');

async function spec(h: LxcHost, name: string, nics: VmSpec['nics'] = []): Promise<VmSpec> {
  const v = await h.storage.createVolumeFromTemplate({ volumeUuid: `root-${name}`, pool: pool(), template });
  return {
    name,
    uuid: `uuid-${name}`,
    cpus: 2,
    cpuMhz: 750,
    memoryBytes: 128 * 1024 ** 2,
    disks: [{ volumeUuid: `root-${name}`, path: v.path, pool: pool(), deviceId: 0, type: 'ROOT' }],
    nics,
  };
}

describe('the LXC driver on real containers', { skip: SKIP_LXC }, () => {
  before(() => {
    template = { ...template, path: ensureLxcTemplate().path };
    template.sizeBytes = statSync(template.path).size;
    root = mkdtempSync(join(tmpdir(), 'nimbo-lxc-agent-'));
    mkdirSync(join(root, 'pool'));
    spawnSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
    execFileSync('ip', ['link', 'add', BRIDGE, 'type', 'bridge']);
    execFileSync('ip', ['link', 'set', BRIDGE, 'up']);
  });
  after(async () => {
    if (root && existsSync(join(root, 'state', 'lxc-agent', 'lxc')))
      for (const name of readdirSync(join(root, 'state', 'lxc-agent', 'lxc')))
        spawnSync('lxc-stop', ['-k', '-n', name, '-P', join(root, 'state', 'lxc-agent', 'lxc')], {
          stdio: 'ignore',
        });
    spawnSync('ip', ['link', 'del', BRIDGE], { stdio: 'ignore' });
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('the offering becomes cgroup limits: memory, CPU weight and a quota of its CPUs', async () => {
    const h = await open();
    const s = await spec(h, 'i-2-1-VM');
    await h.startVm(s);
    if (V1) {
      assert.equal(cgroup(h, s.name, 'memory.limit_in_bytes'), String(128 * 1024 ** 2));
      assert.equal(cgroup(h, s.name, 'cpu.shares'), String(2 * 750));
      assert.equal(cgroup(h, s.name, 'cpu.cfs_quota_us'), '200000');
    } else {
      assert.equal(cgroup(h, s.name, 'memory.max'), String(128 * 1024 ** 2));
      assert.equal(cgroup(h, s.name, 'cpu.max'), '200000 100000');
    }
    const used = h.memoryUsage(s.name);
    assert.ok(used !== undefined && used > 0 && used < 128 * 1024 ** 2, `charged ${used}`);
    await h.stopVm(s.name, true);
  });

  test('a restarted agent re-adopts a running container, and reports off one that stopped meanwhile', async () => {
    const first = await open();
    const [a, b] = [await spec(first, 'i-2-2-VM'), await spec(first, 'i-2-3-VM')];
    await first.startVm(a);
    await first.startVm(b);
    const pid = first.initPid(a.name);
    // The agent is gone; b is stopped behind its back.
    execFileSync('lxc-stop', ['-k', '-n', b.name, '-P', first.lxcPath]);
    const second = await open();
    const states = Object.fromEntries(second.reportStates().map((r) => [r.name, r.state]));
    assert.deepEqual(states, { 'i-2-2-VM': 'PowerOn', 'i-2-3-VM': 'PowerOff' });
    assert.equal(second.initPid(a.name), pid, 'the same container, not a new one');
    assert.equal((await second.startVm(a)).state, 'PowerOn', 'starting it again is a no-op');
    assert.equal(second.initPid(a.name), pid);
    await second.rebootVm(a.name);
    await second.stopVm(a.name, false);
    await second.stopVm(b.name, false);
    assert.deepEqual(second.reportStates(), []);
    assert.deepEqual(readdirSync(second.lxcPath), [], 'no container config left');
  });

  test('a NIC is hot-plugged on a bridge with its MAC, and unplugged', async () => {
    const h = await open();
    const s = await spec(h, 'i-2-4-VM', [{ mac: '02:00:4e:00:04:00', deviceId: 0, bridge: BRIDGE }]);
    await h.startVm(s);
    await waitForConsole(h.consoleLog(s.name), /NIMBO: ready/, 30_000);
    const nic = { mac: '02:00:4e:00:04:01', deviceId: 1, bridge: BRIDGE };
    await h.plugNic(s.name, nic);
    await h.plugNic(s.name, nic);
    assert.ok(guestRuns(h, s.name, ['sh', '-c', 'grep -qi 02:00:4e:00:04:01 /sys/class/net/eth1/address']));
    const port = tapName('lxc-agent', s.name, nic);
    assert.match(
      execFileSync('ip', ['-o', 'link', 'show', port], { encoding: 'utf8' }),
      new RegExp(`master ${BRIDGE}`),
    );
    await assert.rejects(
      h.plugNic(s.name, { ...nic, mac: '02:00:4e:00:04:02' }),
      /already has a NIC at device id 1/,
    );
    await h.unplugNic(s.name, nic.mac);
    await h.unplugNic(s.name, nic.mac);
    assert.ok(!guestRuns(h, s.name, ['test', '-e', '/sys/class/net/eth1']), 'eth1 is gone');
    assert.ok(!existsSync(`/sys/class/net/${port}`), 'its host end is gone');
    await h.stopVm(s.name, true);
    assert.ok(!existsSync(`/sys/class/net/${tapName('lxc-agent', s.name, s.nics[0])}`), 'no veth after stop');
  });

  test('a stopped container moves to another pool (its template along) and starts from there', async () => {
    const h = await open();
    const s = await spec(h, 'i-2-6-VM');
    await h.startVm(s);
    assert.ok(guestRuns(h, s.name, ['sh', '-c', 'echo moved > /marker']));
    await h.stopVm(s.name, false);
    const other = { uuid: 'pool-2', type: 'Filesystem' as const, path: join(root, 'pool2') };
    mkdirSync(other.path, { recursive: true });
    await assert.rejects(
      (async () => {
        await h.startVm(s);
        try {
          await h.storage.copyVolume({
            volumeUuid: 'moved',
            source: { path: s.disks[0].path, pool: pool() },
            pool: other,
          });
        } finally {
          await h.stopVm(s.name, true);
        }
      })(),
      /in use by running container/,
    );
    const moved = await h.storage.copyVolume({
      volumeUuid: 'moved',
      source: { path: s.disks[0].path, pool: pool() },
      pool: other,
    });
    await h.storage.deleteVolume({ path: s.disks[0].path, pool: pool() });
    const there = { ...s, disks: [{ ...s.disks[0], volumeUuid: 'moved', path: moved.path, pool: other }] };
    await h.startVm(there);
    assert.ok(guestRuns(h, s.name, ['grep', '-q', 'moved', '/marker']), 'its file system came along');
    await h.stopVm(s.name, true);
  });

  test("the console is the container's tty1: a login prompt that answers keys, closed when the container stops", async () => {
    const h = await open();
    const s = await spec(h, 'i-2-7-VM');
    await h.startVm(s);
    await waitForConsole(h.consoleLog(s.name), /NIMBO: ready/, 30_000);
    const stream = await h.openConsole(s.name);
    let seen = '';
    stream.on('data', (d: Buffer) => {
      seen += d.toString('latin1');
    });
    const until = async (pattern: RegExp) => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(seen)) {
        if (Date.now() > deadline) throw new Error(`no ${pattern} on the console: ${JSON.stringify(seen)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    stream.write('\r');
    await until(/login: /);
    stream.write('root\r');
    await until(/Password: /);
    const closed = new Promise((r) => stream.once('close', r));
    await h.stopVm(s.name, true);
    await closed;
    await assert.rejects(h.openConsole(s.name), /not running/);
  });

  test('refusals: ISOs and live migration are not for containers', async () => {
    const h = await open();
    const s = await spec(h, 'i-2-5-VM');
    const iso = { ...s.disks[0], volumeUuid: 'iso', deviceId: 3, type: 'ISO' as const };
    await assert.rejects(h.startVm({ ...s, disks: [...s.disks, iso] }), /containers cannot use ISOs/);
    assert.deepEqual(h.reportStates(), []);
    await h.startVm(s);
    await assert.rejects(h.prepareMigration(), DriverError);
    await assert.rejects(h.migrateVm(s.name), /stop it first/);
    await h.stopVm(s.name, true);
    await assert.rejects(h.rebootVm(s.name), /not running/);
    await assert.rejects(h.stopVm('../../escape', true), /invalid VM name/);
  });
});
