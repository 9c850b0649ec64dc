/**
 * Two KVM agent processes with distinct host names on this machine, against a stand-in
 * management server: host facts at startup, a VM that survives its agent being killed and is
 * re-adopted, live migration from one agent to the other, and a QEMU killed behind the agent's back.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tapName } from '../src/drivers/kvm/machine.ts';
import {
  ensureTemplate,
  figure,
  logSize,
  REPO,
  SKIP_KVM,
  StandInRouter,
  StandInServer,
  waitForConsole,
} from './kvm-support.ts';

const MAIN = join(REPO, 'packages/agent/src/main.ts');
const server = new StandInServer();
const agents = new Map<string, ChildProcess>();
let root = '';
let port = 0;
let template = '';
let router: StandInRouter;
const MAC = '02:00:4e:00:00:07';

const pool = () => ({ uuid: 'pool-agent', type: 'Filesystem', path: join(root, 'pool') });
const consoleOf = (host: string) => join(root, 'state', host, 'vms', 'i-3-7-VM', 'console.log');
const vm = () => ({
  name: 'i-3-7-VM',
  uuid: '9d4c6e2a-1111-4a2b-8c3d-000000000007',
  cpus: 1,
  cpuMhz: 1000,
  memoryBytes: 256 * 1024 ** 2,
  disks: [
    {
      volumeUuid: 'vol-agent-root',
      path: join(root, 'pool', 'vol-agent-root'),
      pool: pool(),
      deviceId: 0,
      type: 'ROOT',
    },
  ],
  nics: [{ mac: MAC, deviceId: 0, bridge: router.bridge }],
});
const tapMaster = (host: string) => {
  const link = `/sys/class/net/${tapName(host, 'i-3-7-VM', { mac: MAC, deviceId: 0 })}/master`;
  return existsSync(link) ? realpathSync(link).split('/').pop() : undefined;
};

/** The VNC server's greeting on a port (QEMU listens on 127.0.0.1 only). */
function vncBanner(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection(port, '127.0.0.1');
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().trim());
    });
    s.once('error', reject);
  });
}

async function startAgent(host: string): Promise<any> {
  const startup = server.next((m) => m.type === 'startup' && m.host === host, 30_000);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', MAIN, '--server', `ws://127.0.0.1:${port}`, '--token', 'kvm-agent-token'],
    {
      cwd: REPO,
      env: {
        ...process.env,
        NIMBOSTACK_AGENT_HYPERVISOR: 'kvm',
        NIMBOSTACK_AGENT_NAME: host,
        NIMBOSTACK_AGENT_STATE_DIR: join(root, 'state'),
        NIMBOSTACK_AGENT_ADDRESS: '127.0.0.1',
        NIMBOSTACK_AGENT_MAX_BACKOFF_MS: '300',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  agents.set(host, child);
  const s = await startup;
  await server.command(host, 'ready', { hostId: `id-${host}`, pingIntervalMs: 300 });
  return s;
}

function killAgent(host: string): Promise<void> {
  const child = agents.get(host)!;
  agents.delete(host);
  if (child.exitCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  return exited;
}

/** Pids of every QEMU our agents' state directories name, for cleanup whatever happened. */
function qemuPids(): number[] {
  const pids: number[] = [];
  const state = join(root, 'state');
  if (!existsSync(state)) return pids;
  for (const host of readdirSync(state)) {
    const vms = join(state, host, 'vms');
    if (!existsSync(vms)) continue;
    for (const name of readdirSync(vms)) {
      const record = join(vms, name, 'vm.json');
      if (existsSync(record)) pids.push(JSON.parse(readFileSync(record, 'utf8')).pid);
    }
  }
  return pids;
}

describe('KVM agents on one machine', { skip: SKIP_KVM }, () => {
  before(async () => {
    template = ensureTemplate().path;
    root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-agent-'));
    mkdirSync(join(root, 'pool'));
    router = new StandInRouter(root, {
      mac: MAC,
      ip: `10.251.${process.pid % 250}.7`,
      uuid: '9d4c6e2a-1111-4a2b-8c3d-000000000007',
      hostname: 'web-1',
      userData: '#!/bin/sh\necho "NIMBO: hello from user data"\n',
      sshKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnimbostacktestkeyonlyforthetemplate0000 test@nimbo',
      password: 'Tr0ub4dor-x',
    });
    await router.start();
    port = await server.listen();
  });

  after(async () => {
    for (const pid of qemuPids()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    for (const host of [...agents.keys()]) await killAgent(host);
    await server.close();
    await router?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('startup reports the machine: KVM, TCG acceleration, real cores, memory and disk', async () => {
    const [a] = await Promise.all([startAgent('kvm-a'), startAgent('kvm-b')]);
    assert.equal(a.hypervisor, 'KVM');
    assert.match(a.hypervisorVersion, /^\d+\.\d+\.\d+$/);
    assert.equal(a.details.accel, 'tcg');
    assert.equal(a.cpuCores, cpus().length);
    assert.ok(a.cpuMhz > 100 && a.memoryBytes > 1024 ** 3 && a.localStorageBytes > 1024 ** 3);
    assert.equal(a.privateIp, '127.0.0.1');
    assert.deepEqual(a.vms, []);
  });

  test('a VM started through the agent is reported PowerOn; its guest configures itself from the router', async () => {
    await server.command('kvm-a', 'createVolumeFromTemplate', {
      volumeUuid: 'vol-agent-root',
      pool: pool(),
      template: { uuid: 'tpl-agent', path: template, sizeBytes: 0 },
    });
    const r = await server.command('kvm-a', 'startVm', { vm: vm() }, 60_000);
    assert.equal(r.state, 'PowerOn');
    assert.ok(r.vncPort >= 5900);
    assert.deepEqual(await server.nextPing('kvm-a'), [{ name: 'i-3-7-VM', state: 'PowerOn' }]);
    assert.equal(await vncBanner(r.vncPort), 'RFB 003.008');
    assert.equal(tapMaster('kvm-a'), router.bridge, 'the NIC is a tap on the given bridge');
    const log = consoleOf('kvm-a');
    await waitForConsole(log, new RegExp(`NIMBO: dhcp ${router.net.replace(/\./g, '\\.')}\\.7$`));
    await waitForConsole(log, /NIMBO: instance-id 9d4c6e2a-1111-4a2b-8c3d-000000000007/);
    await waitForConsole(log, /NIMBO: hostname web-1/);
    await waitForConsole(log, /NIMBO: sshkey 1 key\(s\) installed/);
    await waitForConsole(log, /NIMBO: userdata #!\/bin\/sh/);
    await waitForConsole(log, /NIMBO: hello from user data/);
    await waitForConsole(log, /NIMBO: password set/);
    await waitForConsole(log, /NIMBO: ready hostname=web-1/);
    assert.equal(
      router.passwordAcknowledged,
      true,
      'the guest told the password server it saved the password',
    );
  });

  test('an agent killed and restarted re-adopts the running VM, which it still controls', async () => {
    await killAgent('kvm-a');
    const startup = await startAgent('kvm-a');
    assert.deepEqual(startup.vms, [{ name: 'i-3-7-VM', state: 'PowerOn' }]);
    const from = logSize(consoleOf('kvm-a'));
    await server.command('kvm-a', 'rebootVm', { name: 'i-3-7-VM' });
    await waitForConsole(consoleOf('kvm-a'), /NIMBO: ready/, 180_000, from);
    assert.deepEqual(await server.nextPing('kvm-a'), [{ name: 'i-3-7-VM', state: 'PowerOn' }]);
  });

  test('live migration from kvm-a to kvm-b: the guest runs on, on kvm-b', async () => {
    const t0 = Date.now();
    const prepared = await server.command('kvm-b', 'prepareMigration', { vm: vm() }, 60_000);
    assert.ok(prepared.port > 0);
    const t1 = Date.now();
    await server.command(
      'kvm-a',
      'migrateVm',
      { name: 'i-3-7-VM', destination: { host: 'kvm-b', address: '127.0.0.1', port: prepared.port } },
      120_000,
    );
    figure('live migration (256 MiB guest, migrateVm)', Date.now() - t1);
    figure('live migration including prepareMigration', Date.now() - t0);
    assert.deepEqual(await server.nextPing('kvm-a'), []);
    const onB = await server.nextPing('kvm-b');
    assert.deepEqual(onB, [{ name: 'i-3-7-VM', state: 'PowerOn' }]);
    assert.equal(tapMaster('kvm-b'), router.bridge);
    assert.equal(tapMaster('kvm-a'), undefined, "the source's tap went with its QEMU");
    // The guest answers on kvm-b: it sees a disk hot-plugged there.
    await server.command('kvm-b', 'createVolume', {
      volumeUuid: 'vol-agent-data',
      sizeBytes: 32 * 1024 ** 2,
      pool: pool(),
    });
    const disk = {
      volumeUuid: 'vol-agent-data',
      path: join(root, 'pool', 'vol-agent-data'),
      pool: pool(),
      deviceId: 1,
      type: 'DATADISK',
    };
    await server.command('kvm-b', 'attachVolume', { vm: 'i-3-7-VM', disk }, 30_000);
    await waitForConsole(consoleOf('kvm-b'), /NIMBO: disk add \S*vdb/, 60_000);
    const again = await server.command('kvm-a', 'migrateVm', {
      name: 'i-3-7-VM',
      destination: { host: 'kvm-b', address: '127.0.0.1', port: prepared.port },
    });
    assert.deepEqual(again, {}, 'a retried migrateVm succeeds');
  });

  test('a QEMU killed behind the agent is reported PowerOff on the next ping', async () => {
    const [pid] = qemuPids();
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    let states = await server.nextPing('kvm-b');
    while (states[0]?.state !== 'PowerOff' && Date.now() < deadline) states = await server.nextPing('kvm-b');
    assert.deepEqual(states, [{ name: 'i-3-7-VM', state: 'PowerOff' }]);
    await server.command('kvm-b', 'stopVm', { name: 'i-3-7-VM' });
    assert.deepEqual(await server.nextPing('kvm-b'), []);
  });
});
