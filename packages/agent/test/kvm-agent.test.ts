/**
 * Two KVM agent processes with distinct host names on this machine, against a stand-in
 * management server: host facts at startup, the guest network and the product's virtual router
 * (setupNetwork, startRouter) serving the test template's init (DHCP, metadata, user data, SSH key,
 * password), security groups enforced on the VM's tap (host ping allowed, then revoked by
 * applySecurityRules), a VM that survives its agent being killed and is re-adopted, live migration
 * from one agent to the other (its rules follow it), and a QEMU killed behind the agent's back.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tapName } from '../src/drivers/kvm/machine.ts';
import { routerNetns } from '../src/network/names.ts';
import { installed } from '../src/network/security.ts';
import {
  ensureTemplate,
  figure,
  logSize,
  REPO,
  SKIP_KVM,
  StandInServer,
  waitForConsole,
} from './kvm-support.ts';

const MAIN = join(REPO, 'packages/agent/src/main.ts');
const server = new StandInServer();
const agents = new Map<string, ChildProcess>();
let root = '';
let port = 0;
let template = '';
const MAC = '02:00:4e:00:00:07';
const NET = `10.251.${process.pid % 250}`;
const BRIDGE = `nbt${process.pid % 100000}`;
const VM_IP = `${NET}.7`;
const ROUTER_IP = `${NET}.2`;
const ROUTER = `r-${process.pid % 100000}-VM`;
const network = () => ({
  uuid: 'net-kvm-agent',
  bridge: BRIDGE,
  cidr: `${NET}.0/24`,
  gateway: `${NET}.1`,
  gatewayOnHost: true,
  domain: 'cloud.internal',
});
const ICMP = { protocol: 'icmp', cidrs: ['0.0.0.0/0'] };
const SSH_ONLY = { protocol: 'tcp', startPort: 22, endPort: 22, cidrs: ['0.0.0.0/0'] };
let ingress: object[] = [ICMP];
const routerSpec = () => ({
  name: ROUTER,
  network: network(),
  ip: ROUTER_IP,
  mac: '02:00:4e:00:00:02',
  vms: [
    {
      mac: MAC,
      ip: VM_IP,
      hostname: 'web-1',
      instanceId: '9d4c6e2a-1111-4a2b-8c3d-000000000007',
      vmName: 'i-3-7-VM',
      userData: Buffer.from('#!/bin/sh\necho "NIMBO: hello from user data"\n').toString('base64'),
      publicKeys: [
        'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnimbostacktestkeyonlyforthetemplate0000 test@nimbo',
      ],
      password: 'Tr0ub4dor-x',
    },
  ],
});
/** The host pings the guest from the bridge's gateway address. */
const hostPings = () =>
  spawnSync('busybox', ['ping', '-c', '1', '-W', '1', VM_IP], { stdio: 'ignore' }).status === 0;
/** Names of the firewall chains a host has for the VM's tap. */
const chainsOf = async (host: string) => {
  const tap = tapName(host, 'i-3-7-VM', { deviceId: 0 });
  return (await installed()).chains.map((c) => c.name).filter((n) => n.startsWith(tap));
};

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
  nics: [{ mac: MAC, ip: VM_IP, deviceId: 0, bridge: BRIDGE, security: { ingress, router: ROUTER_IP } }],
});
const tapMaster = (host: string) => {
  const link = `/sys/class/net/${tapName(host, 'i-3-7-VM', { deviceId: 0 })}/master`;
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
    // The router outlives its agent: stop it through a fresh agent if one is gone.
    if (agents.has('kvm-a')) {
      await server.command('kvm-a', 'stopRouter', { name: ROUTER }).catch(() => undefined);
      await server.command('kvm-a', 'teardownNetwork', { network: network() }).catch(() => undefined);
    }
    for (const host of [...agents.keys()]) await killAgent(host);
    await server.close();
    spawnSync('ip', ['netns', 'del', routerNetns(ROUTER)]);
    spawnSync('ip', ['link', 'del', BRIDGE]);
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

  test('an uploaded RAW or QCOW2 image on secondary storage becomes a volume (createVolume fromSnapshot)', async () => {
    // What uploadVolume leaves on an image store: the management server's download of the URL.
    const uploads = join(root, 'secondary', 'volumes');
    mkdirSync(uploads, { recursive: true });
    const rawFile = join(uploads, 'up.raw');
    writeFileSync(rawFile, Buffer.alloc(4 * 1024 ** 2, 0x5a));
    const qcowFile = join(uploads, 'up.qcow2');
    execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', rawFile, qcowFile]);
    for (const [uuid, file] of [
      ['vol-up-raw', rawFile],
      ['vol-up-qcow2', qcowFile],
    ]) {
      const made = await server.command('kvm-a', 'createVolume', {
        volumeUuid: uuid,
        sizeBytes: 8 * 1024 ** 2,
        pool: pool(),
        fromSnapshot: file,
      });
      assert.equal(made.sizeBytes, 8 * 1024 ** 2, 'grown to the requested size');
      // Same content (the grown tail reads as zeros): qemu-img compare exits 0 only then.
      execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', rawFile, made.path]);
      await server.command('kvm-a', 'deleteVolume', { path: made.path, pool: pool() });
    }
  });

  test('the guest network and its router on kvm-a: setupNetwork on both hosts, startRouter', async () => {
    for (const host of ['kvm-a', 'kvm-b']) await server.command(host, 'setupNetwork', { network: network() });
    const t0 = Date.now();
    await server.command('kvm-a', 'startRouter', { router: routerSpec() }, 30_000);
    figure('startRouter (namespace, dnsmasq, router service)', Date.now() - t0);
    assert.ok(existsSync(`/run/netns/${routerNetns(ROUTER)}`));
  });

  test('a VM started through the agent is reported PowerOn; its guest configures itself from the router', async () => {
    await server.command('kvm-a', 'createVolumeFromTemplate', {
      volumeUuid: 'vol-agent-root',
      pool: pool(),
      template: { uuid: 'tpl-agent', path: template, sizeBytes: 0 },
    });
    const t0 = Date.now();
    const r = await server.command('kvm-a', 'startVm', { vm: vm() }, 60_000);
    assert.equal(r.state, 'PowerOn');
    assert.ok(r.vncPort >= 5900);
    assert.deepEqual(await server.nextPing('kvm-a'), [{ name: 'i-3-7-VM', state: 'PowerOn' }]);
    assert.equal(await vncBanner(r.vncPort), 'RFB 003.008');
    assert.equal(tapMaster('kvm-a'), BRIDGE, 'the NIC is a tap on the given bridge');
    assert.equal((await chainsOf('kvm-a')).length, 3, 'its tap has anti-spoofing, ingress and egress chains');
    const log = consoleOf('kvm-a');
    await waitForConsole(log, new RegExp(`NIMBO: dhcp ${VM_IP.replace(/\./g, '\\.')}$`));
    figure('startVm -> DHCP lease from the product router', Date.now() - t0);
    await waitForConsole(log, /NIMBO: instance-id 9d4c6e2a-1111-4a2b-8c3d-000000000007/);
    await waitForConsole(log, /NIMBO: hostname web-1/);
    await waitForConsole(log, /NIMBO: sshkey 1 key\(s\) installed/);
    await waitForConsole(log, /NIMBO: userdata #!\/bin\/sh/);
    await waitForConsole(log, /NIMBO: hello from user data/);
    await waitForConsole(log, /NIMBO: password set/);
    await waitForConsole(log, /NIMBO: ready hostname=web-1/);
    const saved = join(root, 'state', 'kvm-a', 'routers', ROUTER, 'passwords-saved.json');
    assert.equal(
      JSON.parse(readFileSync(saved, 'utf8')).length,
      1,
      'the guest told the password server it saved the password',
    );
  });

  test('security groups: the host pings the guest while ICMP is allowed, not once applySecurityRules revokes it', async () => {
    let ok = false;
    for (let i = 0; i < 10 && !ok; i++) ok = hostPings();
    assert.ok(ok, 'ICMP from anywhere is allowed in');
    ingress = [SSH_ONLY];
    const t0 = Date.now();
    await server.command('kvm-a', 'applySecurityRules', {
      vm: 'i-3-7-VM',
      nics: [{ mac: MAC, ip: VM_IP, security: { ingress, router: ROUTER_IP } }],
    });
    const answered = Date.now() - t0;
    assert.equal(hostPings(), false, 'ICMP revoked');
    figure('applySecurityRules -> enforced (command answered, next ping dropped)', answered);
    assert.ok(answered < 1000);
    const r = await server.command('kvm-a', 'applySecurityRules', { vm: 'no-such-vm', nics: [] });
    assert.deepEqual(r, {}, 'a VM not on the host is ignored');
  });

  test('an agent killed and restarted re-adopts the running VM, which it still controls', async () => {
    const routerDir = join(root, 'state', 'kvm-a', 'routers', ROUTER);
    const servicePid = readFileSync(join(routerDir, 'service.pid'), 'utf8');
    const dnsmasqPid = readFileSync(join(routerDir, 'dnsmasq.pid'), 'utf8');
    await killAgent('kvm-a');
    const startup = await startAgent('kvm-a');
    assert.deepEqual(startup.vms, [{ name: 'i-3-7-VM', state: 'PowerOn' }]);
    assert.equal(readFileSync(join(routerDir, 'service.pid'), 'utf8'), servicePid, 'the router kept running');
    assert.equal(readFileSync(join(routerDir, 'dnsmasq.pid'), 'utf8'), dnsmasqPid);
    assert.equal((await chainsOf('kvm-a')).length, 3, 'the rules are still there');
    assert.equal(hostPings(), false, 'and still deny ICMP');
    const from = logSize(consoleOf('kvm-a'));
    await server.command('kvm-a', 'rebootVm', { name: 'i-3-7-VM' });
    // The rebooted guest gets its lease again through its filtering, from the router the new agent adopted.
    await waitForConsole(
      consoleOf('kvm-a'),
      new RegExp(`NIMBO: dhcp ${VM_IP.replace(/\./g, '\\.')}$`),
      180_000,
      from,
    );
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
    assert.equal(tapMaster('kvm-b'), BRIDGE);
    assert.equal(tapMaster('kvm-a'), undefined, "the source's tap went with its QEMU");
    assert.equal((await chainsOf('kvm-b')).length, 3, 'the rules followed the VM to kvm-b');
    assert.deepEqual(await chainsOf('kvm-a'), [], 'and left kvm-a');
    assert.equal(hostPings(), false, 'ICMP is still revoked on kvm-b');
    ingress = [ICMP];
    await server.command('kvm-b', 'applySecurityRules', {
      vm: 'i-3-7-VM',
      nics: [{ mac: MAC, ip: VM_IP, security: { ingress, router: ROUTER_IP } }],
    });
    assert.ok(hostPings(), 'allowed again on kvm-b');
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
    assert.deepEqual(await chainsOf('kvm-b'), [], 'no rule of the VM remains');
  });

  test('stopRouter and teardownNetwork leave nothing behind', async () => {
    await assert.rejects(
      server.command('kvm-a', 'teardownNetwork', { network: network() }),
      /still has router/,
    );
    await server.command('kvm-a', 'stopRouter', { name: ROUTER });
    await server.command('kvm-a', 'stopRouter', { name: ROUTER });
    assert.equal(existsSync(`/run/netns/${routerNetns(ROUTER)}`), false);
    assert.equal(existsSync(join(root, 'state', 'kvm-a', 'routers', ROUTER)), false);
    await server.command('kvm-a', 'teardownNetwork', { network: network() });
    await server.command('kvm-b', 'teardownNetwork', { network: network() });
    assert.equal(existsSync(`/sys/class/net/${BRIDGE}`), false);
  });
});
