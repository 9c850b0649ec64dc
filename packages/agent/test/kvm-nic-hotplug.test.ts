/**
 * NIC hot-plug on the KVM driver with a real guest (the test template under TCG): plugNic gives
 * the running VM a virtio NIC whose tap sits in its bridge and is filtered, the guest's kernel
 * announces it (the template logs "NIMBO: net add <if> <mac>"), vm.json keeps it for a restarted
 * agent, which re-adopts the VM with it; unplugNic, through the restarted driver, has the guest
 * release it ("NIMBO: net remove"), and the tap and its firewall chains go. Both commands are
 * idempotent.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { imageInfo } from '../src/drivers/kvm/exec.ts';
import { KvmHost } from '../src/drivers/kvm/kvm-host.ts';
import { tapName } from '../src/drivers/kvm/machine.ts';
import { installed } from '../src/network/security.ts';
import { ensureTemplate, figure, logSize, SKIP_KVM, waitForConsole } from './kvm-support.ts';

const ID = process.pid % 100000;
const HOST = `nichp-${ID}`;
const VM = 'i-5-9-VM';
const NET_A = `10.252.${process.pid % 250}`;
const NET_B = `10.253.${process.pid % 250}`;
const network = (bridge: string, net: string) => ({
  uuid: `net-${bridge}`,
  bridge,
  cidr: `${net}.0/24`,
  gateway: `${net}.1`,
  gatewayOnHost: true,
  peers: [],
  domain: 'cloud.internal',
});
const A = network(`nha${ID}`, NET_A);
const B = network(`nhb${ID}`, NET_B);
const HOT = {
  mac: '02:00:4e:00:01:09',
  ip: `${NET_B}.9`,
  deviceId: 1,
  bridge: B.bridge,
  security: { ingress: [{ protocol: 'icmp' as const, cidrs: ['0.0.0.0/0'] }] },
};

let root = '';
let host: KvmHost;
const tap = tapName(HOST, VM, HOT);
const masterOf = (dev: string) => {
  const link = `/sys/class/net/${dev}/master`;
  return existsSync(link) ? realpathSync(link).split('/').pop() : undefined;
};
const record = () => JSON.parse(readFileSync(join(root, 'state', HOST, 'vms', VM, 'vm.json'), 'utf8'));
const chains = async () => (await installed()).chains.map((c) => c.name).filter((n) => n.startsWith(tap));

describe('NIC hot-plug on KVM', { skip: SKIP_KVM }, () => {
  before(async () => {
    const { path } = ensureTemplate();
    root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-nics-'));
    mkdirSync(join(root, 'pool'));
    host = await KvmHost.create({ name: HOST, stateDir: join(root, 'state'), privateIp: '127.0.0.1' });
    await host.network.setupNetwork(A);
    await host.network.setupNetwork(B);
    const pool = { uuid: 'pool-nics', type: 'Filesystem' as const, path: join(root, 'pool') };
    const disk = await host.storage.createVolumeFromTemplate({
      volumeUuid: 'vol-nics-root',
      pool,
      template: { uuid: 'tpl-nics', path, sizeBytes: (await imageInfo(path)).virtualSize },
    });
    const t0 = Date.now();
    await host.startVm({
      name: VM,
      uuid: '5e0c0d1a-2222-4b2b-8c3d-000000000009',
      cpus: 1,
      cpuMhz: 1000,
      memoryBytes: 256 * 1024 ** 2,
      disks: [{ volumeUuid: 'vol-nics-root', path: disk.path, pool, deviceId: 0, type: 'ROOT' }],
      nics: [{ mac: '02:00:4e:00:00:09', ip: `${NET_A}.9`, deviceId: 0, bridge: A.bridge }],
    });
    // No router on the bridge: DHCP times out and init goes on to ready (and starts uevent).
    await waitForConsole(host.consoleLog(VM), /NIMBO: ready/, 240_000);
    figure('NIC hot-plug suite: start to ready (TCG)', Date.now() - t0);
  });

  after(async () => {
    if (host) {
      for (const r of host.reportStates()) await host.stopVm(r.name, true).catch(() => undefined);
      for (const n of [A, B]) await host.network.teardownNetwork(n).catch(() => undefined);
    }
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('plugNic: the guest sees a NIC with its MAC; its tap is in the bridge and filtered; vm.json keeps it', async () => {
    const from = logSize(host.consoleLog(VM));
    const t0 = Date.now();
    await host.plugNic(VM, HOT);
    const line = await waitForConsole(host.consoleLog(VM), /NIMBO: net add \S+/, 60_000, from);
    figure('plugNic to the guest seeing the NIC (TCG)', Date.now() - t0);
    assert.match(line, new RegExp(`NIMBO: net add eth\\d ${HOT.mac}`));
    assert.equal(masterOf(tap), B.bridge);
    assert.deepEqual((await chains()).sort(), [`${tap}_e`, `${tap}_i`, `${tap}_s`]);
    assert.deepEqual(
      record().spec.nics.map((n: any) => [n.mac, n.bridge, n.deviceId]),
      [
        ['02:00:4e:00:00:09', A.bridge, 0],
        [HOT.mac, B.bridge, 1],
      ],
    );
    // A repeat (the server retrying after a timeout) changes nothing.
    await host.plugNic(VM, HOT);
    assert.equal(record().spec.nics.length, 2);
  });

  test('plugNic of another NIC at a device id in use is refused', async () => {
    await assert.rejects(
      host.plugNic(VM, { mac: '02:00:4e:00:02:09', deviceId: 1, bridge: A.bridge }),
      /already has a NIC at device id 1/,
    );
    assert.equal(record().spec.nics.length, 2);
  });

  test('a restarted agent re-adopts the VM with its hot-plugged NIC (from vm.json)', async () => {
    // The old driver lets go of QEMU's monitor (one client at a time) and of the VM, as a killed
    // agent would (marked dead, it no longer cleans up after the QEMU it spawned).
    const old = (host as any).vms.get(VM);
    old.dead = true;
    old.qmp.close();
    host = await KvmHost.create({ name: HOST, stateDir: join(root, 'state'), privateIp: '127.0.0.1' });
    assert.deepEqual(host.reportStates(), [{ name: VM, state: 'PowerOn' }]);
    assert.deepEqual((await chains()).sort(), [`${tap}_e`, `${tap}_i`, `${tap}_s`], 'its filtering is there');
    // It knows the NIC: plugging it again is a no-op, not a second device.
    await host.plugNic(VM, HOT);
    assert.equal(record().spec.nics.length, 2);
  });

  test('unplugNic: the guest releases it, the tap and its chains go, vm.json forgets it; a repeat succeeds', async () => {
    const from = logSize(host.consoleLog(VM));
    await host.unplugNic(VM, HOT.mac);
    await waitForConsole(host.consoleLog(VM), /NIMBO: net remove \S+/, 60_000, from);
    assert.ok(!existsSync(`/sys/class/net/${tap}`), 'the tap is gone');
    assert.deepEqual(await chains(), []);
    assert.deepEqual(
      record().spec.nics.map((n: any) => n.mac),
      ['02:00:4e:00:00:09'],
    );
    await host.unplugNic(VM, HOT.mac);
    // The slot is free again: the same NIC plugs back in.
    const again = logSize(host.consoleLog(VM));
    await host.plugNic(VM, HOT);
    await waitForConsole(host.consoleLog(VM), /NIMBO: net add \S+/, 60_000, again);
    assert.equal(masterOf(tap), B.bridge);
  });
});
