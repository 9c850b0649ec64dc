/**
 * End to end on real containers: the real server with the LXC local zone (this machine as the LXC
 * host, its agent in the server process), through the public API.
 * The first test: deploy from the LXC test template → Running → the container got the
 * server-assigned address by DHCP from the zone's virtual router and printed its user data and
 * host name on its console → the host pings it once ICMP is allowed in its security group, not
 * once revoked → a data volume the container mounts → snapshot, change, revert of its root file
 * system (a boot counter) → stop / start → a template of it → its console in Chromium (a
 * terminal) → expunge leaves nothing (container, monitor process,
 * veth, cgroup, mount, loop device, nftables entry, volume directory).
 * The second test puts a container next to a KVM VM: a KVM agent process joins the zone as the
 * host of a second cluster, so both share the zone's guest network (one bridge, one router). The
 * VM (group target: ICMP only from group web) is pinged by container A (web) and not by container
 * C (other), and the figures compare the two: deploy → Running → DHCP lease, and memory used.
 * The third: offline migration. A second LXC agent joins the LXC cluster (same primary storage);
 * a running container is refused a live migration, and once stopped it starts on the other host
 * with its root file system as it was.
 * Needs root, LXC, QEMU, nftables, dnsmasq and both test templates: `npm run test:lxc` after
 * `npm run setup:host`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { chromium } from 'playwright-core';
import { tapPrefix } from '../../agent/src/drivers/kvm/machine.ts';
import { guestLinks } from '../../agent/test/kvm-support.ts';
import { LXC_TEMPLATE } from '../../agent/test/lxc-support.ts';
import { startAgent, type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, REPO, startServer, type TestServer } from './harness.ts';

const KVM_TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';
const HOST = 'local-lxc';
/** Where the console screenshot goes (as the UI suites keep theirs). */
const SHOTS = join(REPO, 'test-output/ui/lxc-console');
const KVM_HOST = 'lxc-e2e-kvm';
const SKIP =
  process.env.NIMBOSTACK_TEST_LXC !== '1'
    ? 'real-container suite: run it with npm run test:lxc'
    : process.getuid?.() !== 0
      ? 'needs root'
      : !existsSync(LXC_TEMPLATE) || !existsSync(KVM_TEMPLATE)
        ? `${LXC_TEMPLATE} or ${KVM_TEMPLATE} is missing: run npm run setup:host`
        : false;

let server: TestServer;
let user: CloudStackClient;
let root = '';
let linksBefore: string[] = [];
let kvmAgent: TestAgent | undefined;
/** A second LXC agent (offline migration's destination). */
let lxcAgent2: TestAgent | undefined;
const HOST2 = 'local-lxc-2';

const figure = (name: string, ms: number) =>
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);
const pings = (ip: string) =>
  spawnSync('busybox', ['ping', '-c', '1', '-W', '1', ip], { stdio: 'ignore' }).status === 0;
const esc = (s: string) => s.replace(/\./g, '\\.');
const count = (text: string, pattern: RegExp) => text.split('\n').filter((l) => pattern.test(l)).length;
const lxcPath = () => join(root, 'agent', HOST, 'lxc');
const consoleOf = (instance: string, kvm = false) =>
  kvm
    ? join(root, 'kvm', KVM_HOST, 'vms', instance, 'console.log')
    : join(root, 'agent', HOST, 'vms', instance, 'console.log');
const readConsole = (instance: string, kvm = false) => {
  const path = consoleOf(instance, kvm);
  return existsSync(path) ? readFileSync(path).toString('utf8').replace(/\r/g, '') : '';
};
/** Runs a command in a running container; its output, or undefined when it failed. */
const inContainer = (instance: string, command: string) => {
  const r = spawnSync('lxc-attach', ['-n', instance, '-P', lxcPath(), '--', 'sh', '-c', command], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  return r.status === 0 ? r.stdout : undefined;
};
/** What a running container's cgroup is charged for memory, in bytes (lxc-info, raw figures). */
const containerMemory = (instance: string) =>
  Number(
    /Memory use:\s+(\d+)/.exec(
      execFileSync('lxc-info', ['-n', instance, '-P', lxcPath(), '-S', '-H'], { encoding: 'utf8' }),
    )?.[1] ?? Number.NaN,
  );

async function consoleLine(instance: string, pattern: RegExp, kvm = false, timeoutMs = 60_000) {
  let text = '';
  return waitUntil(
    async () => {
      text = readConsole(instance, kvm);
      return text.split('\n').find((l) => pattern.test(l));
    },
    timeoutMs,
    `console line ${pattern} of ${instance}`,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}\n${text.slice(-2000)}`);
  });
}

before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'nimbo-lxc-e2e-'));
  linksBefore = guestLinks();
  server = await startServer({
    env: {
      NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
      NIMBOSTACK_HYPERVISOR: 'lxc',
      NIMBOSTACK_KVM_STATE_DIR: join(root, 'agent'),
      NIMBOSTACK_KVM_STORAGE_DIR: root,
      NIMBOSTACK_LXC_TEMPLATE: LXC_TEMPLATE,
    },
  });
  ({ client: user } = await createAccountAndLogin(server, { name: 'lxce2e' }));
});

after(async () => {
  if (SKIP || !server) return;
  const vms = await server.admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
  for (const v of vms.virtualmachine ?? [])
    await server.admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
  await kvmAgent?.kill();
  await lxcAgent2?.kill();
  const hosts = await server.admin.request<any>('listHosts', {}).catch(() => ({}));
  for (const h of hosts.host ?? [])
    await server.admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
  const routers = await server.admin.request<any>('listRouters', {}).catch(() => ({}));
  for (const r of routers.router ?? [])
    await server.admin.call('destroyRouter', { id: r.id }).catch(() => undefined);
  await server.stop();
  // Containers a failed test left behind (their monitors outlive the server).
  for (const path of [lxcPath(), join(root, 'agent2', HOST2, 'lxc')])
    if (existsSync(path))
      for (const name of readdirSync(path))
        spawnSync('lxc-stop', ['-k', '-n', name, '-P', path], { stdio: 'ignore' });
  for (const link of guestLinks().filter((l) => !linksBefore.includes(l)))
    spawnSync('ip', ['link', 'del', link], { stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
});

async function tinyOffering(): Promise<string> {
  const found = (await server.admin.request<any>('listServiceOfferings', { name: 'lxc-e2e-tiny' }))
    .serviceoffering?.[0]?.id;
  if (found) return found;
  return (
    await server.admin.request<any>('createServiceOffering', {
      name: 'lxc-e2e-tiny',
      displaytext: 'lxc e2e tiny',
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
    })
  ).serviceoffering.id;
}

/** Starts a Stopped VM (the template step leaves the first container stopped). */
async function startAgainIfStopped(id: string): Promise<void> {
  const vm = (await server.admin.request<any>('listVirtualMachines', { id, listall: true }))
    .virtualmachine[0];
  if (vm.state === 'Stopped') await user.call('startVirtualMachine', { id });
}

const instanceOf = async (id: string) =>
  (await server.admin.request<any>('listVirtualMachines', { id, listall: true })).virtualmachine[0]
    .instancename as string;

describe('a real container through the public API', { skip: SKIP }, () => {
  test('deploy → DHCP, user data, host name → ICMP allowed/denied → data volume → snapshot/revert → stop/start → expunge leaves nothing', async () => {
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const host = (await admin.request<any>('listHosts', { zoneid })).host[0];
    assert.equal(host.name, HOST);
    assert.equal(host.hypervisor, 'LXC');
    assert.equal(host.state, 'Up');
    assert.deepEqual(
      (await user.request<any>('listHypervisors', { zoneid })).hypervisor.map((h: any) => h.name),
      ['LXC'],
    );
    const templateid = await waitUntil(
      async () =>
        (
          await user.request<any>('listTemplates', {
            templatefilter: 'featured',
            zoneid,
            name: 'Nimbostack test template (LXC)',
          })
        ).template?.find((t: any) => t.isready && t.format === 'TAR' && t.hypervisor === 'LXC')?.id,
      60_000,
      'the LXC test template to be ready',
    );
    const marker = `lxc-e2e-${process.pid}`;
    // The container counts its boots in a file of its root file system, so a revert is visible.
    const script = [
      '#!/bin/sh',
      `echo "user data says ${marker}"`,
      'N=$(cat /nimbo-counter 2>/dev/null || echo 0)',
      'echo "NIMBO: counter was $N"',
      'echo $((N + 1)) > /nimbo-counter; sync',
      '',
    ].join('\n');

    const t0 = Date.now();
    const vm = (
      await user.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: await tinyOffering(),
        name: 'lxc-a',
        userdata: Buffer.from(script).toString('base64'),
      })
    ).virtualmachine;
    figure('container: deploy call → Running', Date.now() - t0);
    assert.equal(vm.state, 'Running');
    assert.equal(vm.hypervisor, 'LXC');
    const ip = vm.nic[0].ipaddress;
    const instance = await instanceOf(vm.id);
    await consoleLine(instance, new RegExp(`NIMBO: dhcp ${esc(ip)}$`));
    figure('container: deploy call → DHCP lease', Date.now() - t0);
    await consoleLine(instance, /NIMBO: hostname lxc-a$/);
    await consoleLine(instance, new RegExp(`user data says ${marker}`));
    await consoleLine(instance, /NIMBO: counter was 0$/);
    await consoleLine(instance, /NIMBO: ready hostname=lxc-a/);
    const limit = execFileSync(
      'lxc-cgroup',
      [
        '-n',
        instance,
        '-P',
        lxcPath(),
        existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes') ? 'memory.limit_in_bytes' : 'memory.max',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(Number(limit), 256 * 1024 ** 2, 'the offering’s memory is the cgroup limit');

    // The default group admits nothing in; ICMP once allowed, not once revoked.
    assert.equal(pings(ip), false, 'ICMP is not allowed yet');
    const dflt = (await user.request<any>('listSecurityGroups', { securitygroupname: 'default' }))
      .securitygroup[0];
    const icmp = (
      await user.call<any>('authorizeSecurityGroupIngress', {
        securitygroupid: dflt.id,
        protocol: 'icmp',
        icmptype: -1,
        icmpcode: -1,
        cidrlist: '0.0.0.0/0',
      })
    ).securitygroup.ingressrule[0];
    await waitUntil(async () => pings(ip), 10_000, 'the container to answer ping');
    await user.call('revokeSecurityGroupIngress', { id: icmp.ruleid });
    await waitUntil(async () => !pings(ip), 10_000, 'ping to be refused again');

    // A data volume: an ext4 image the container sees as /dev/vdb and mounts.
    const diskofferingid = (await user.request<any>('listDiskOfferings', {})).diskoffering.find(
      (d: any) => d.disksize > 0,
    ).id;
    const data = (await user.call<any>('createVolume', { name: 'lxc-data', zoneid, diskofferingid })).volume;
    let t = Date.now();
    await user.call('attachVolume', { id: data.id, virtualmachineid: vm.id });
    figure('container: attachVolume', Date.now() - t);
    assert.equal(
      inContainer(
        instance,
        'mkdir -p /mnt && mount /dev/vdb /mnt && echo kept > /mnt/f && cat /mnt/f && umount /mnt',
      ),
      'kept\n',
      'the container mounts its data volume',
    );
    await user.call('detachVolume', { id: data.id });
    assert.equal(inContainer(instance, 'test -e /dev/vdb'), undefined, 'no /dev/vdb after the detach');
    await user.request('deleteVolume', { id: data.id });

    // Snapshot (counter 1), boot again (counter 2), revert → counter 1 again.
    const rootVolume = (await user.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
      .volume[0];
    t = Date.now();
    const snap = (await user.call<any>('createSnapshot', { volumeid: rootVolume.id })).snapshot;
    figure('container: createSnapshot (ROOT, running)', Date.now() - t);
    assert.equal(snap.state, 'BackedUp');
    t = Date.now();
    assert.equal((await user.call<any>('stopVirtualMachine', { id: vm.id })).virtualmachine.state, 'Stopped');
    figure('container: stopVirtualMachine (clean)', Date.now() - t);
    t = Date.now();
    assert.equal(
      (await user.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Running',
    );
    figure('container: startVirtualMachine → Running', Date.now() - t);
    await consoleLine(instance, new RegExp(`NIMBO: dhcp ${esc(ip)}$`));
    figure('container: startVirtualMachine → DHCP lease again', Date.now() - t);
    await consoleLine(instance, /NIMBO: counter was 1$/);
    await user.call('stopVirtualMachine', { id: vm.id });
    t = Date.now();
    await user.call('revertSnapshot', { id: snap.id });
    figure('container: revertSnapshot', Date.now() - t);
    await user.call('startVirtualMachine', { id: vm.id });
    const line = await consoleLine(instance, /NIMBO: counter was \d+$/);
    assert.match(line ?? '', /counter was 1$/, 'the root file system is back to the snapshot');
    await user.call('deleteSnapshot', { id: snap.id });

    // A template from the stopped container (its root file system as a TAR), and a container from it.
    await consoleLine(instance, /NIMBO: ready hostname=lxc-a/);
    await user.call('stopVirtualMachine', { id: vm.id });
    const osType = (await user.request<any>('listOsTypes', { description: 'Other Linux (64-bit)' })).ostype[0]
      .id;
    t = Date.now();
    const made = (
      await user.call<any>('createTemplate', {
        name: 'lxc-a-image',
        ostypeid: osType,
        volumeid: rootVolume.id,
      })
    ).template;
    figure('container: createTemplate from its stopped ROOT volume', Date.now() - t);
    assert.deepEqual([made.format, made.hypervisor, made.isready], ['TAR', 'LXC', true]);
    const copy = (
      await user.call<any>('deployVirtualMachine', {
        zoneid,
        templateid: made.id,
        serviceofferingid: await tinyOffering(),
        name: 'lxc-copy',
        userdata: Buffer.from(script).toString('base64'),
      })
    ).virtualmachine;
    // The image carries lxc-a's counter (2 after the revert's boot).
    await consoleLine(await instanceOf(copy.id), /NIMBO: counter was 2$/);
    await admin.call('destroyVirtualMachine', { id: copy.id, expunge: true });
    await user.call('deleteTemplate', { id: made.id });

    // The console in Chromium: the terminal page createConsoleEndpoint links to (no login, its
    // one-time token), on the container's tty1: a login prompt that takes keys.
    await startAgainIfStopped(vm.id);
    const endpoint = (await user.request<any>('createConsoleEndpoint', { virtualmachineid: vm.id }))
      .consoleendpoint;
    assert.match(endpoint.url, /[?&]terminal=1/);
    // Debian's Chromium, as the UI suites run it (packages/ui/e2e/browser.ts, which is DOM-typed).
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
      await page.goto(endpoint.url);
      const screen = () =>
        page.evaluate<string>(
          // Evaluated in the page (a string: this file is not typed for the DOM).
          "document.querySelector('[data-testid=console-screen] .xterm-rows')?.textContent ?? ''",
        );
      await waitUntil(async () => /login:/.test(await screen()), 20_000, 'the login prompt in the terminal');
      assert.equal(await page.getByTestId('console-status').textContent(), 'connected');
      await page.locator('[data-testid=console-screen] .xterm').click();
      await page.keyboard.type('root\n');
      await waitUntil(async () => /Password:/.test(await screen()), 10_000, 'the password prompt');
      mkdirSync(SHOTS, { recursive: true });
      await page.screenshot({ path: join(SHOTS, 'terminal.png') });
    } finally {
      await browser.close();
    }

    const mac = vm.nic[0].macaddress.toLowerCase();
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });

    // Nothing of the container is left on the host.
    assert.deepEqual(readdirSync(lxcPath()), [], 'no container config');
    assert.notEqual(spawnSync('pgrep', ['-f', `lxc monitor.* ${instance}$`]).status, 0, 'no monitor');
    const prefix = tapPrefix(HOST, instance);
    assert.ok(!execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).includes(prefix), 'no veth');
    const ruleset = execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).toLowerCase();
    assert.ok(!ruleset.includes(prefix) && !ruleset.includes(mac), 'no nftables entry');
    const cgroups = execFileSync('find', ['/sys/fs/cgroup', '-maxdepth', '3', '-name', `*${instance}*`], {
      encoding: 'utf8',
    });
    assert.equal(cgroups.trim(), '', 'no cgroup');
    assert.ok(!readFileSync('/proc/mounts', 'utf8').includes(root), 'no mount');
    assert.ok(!execFileSync('losetup', ['-a'], { encoding: 'utf8' }).includes(root), 'no loop device');
    const files = readdirSync(join(root, 'primary'), { recursive: true }).map(String);
    for (const id of [rootVolume.id, data.id])
      assert.ok(!files.some((f) => f.includes(id)), `no file of ${id}: ${files.join(' ')}`);
  });
});

describe('containers next to a KVM VM on one network', { skip: SKIP }, () => {
  test('a KVM host joins the zone; container A (web) reaches the VM, container C (other) does not; figures side by side', async () => {
    const admin = server.admin;
    const local = (await admin.request<any>('listHosts', { name: HOST })).host[0];
    const { zoneid, podid } = local;
    // A second cluster, of KVM, with its own primary storage, and a KVM agent as its host.
    const cluster = (
      await admin.request<any>('addCluster', {
        zoneid,
        podid,
        clustername: 'lxc-e2e-kvm',
        hypervisor: 'KVM',
        clustertype: 'CloudManaged',
      })
    ).cluster[0];
    mkdirSync(join(root, 'primary-kvm'));
    await admin.request('createStoragePool', {
      zoneid,
      podid,
      clusterid: cluster.id,
      name: 'lxc-e2e-kvm-primary',
      url: join(root, 'primary-kvm'),
      scope: 'cluster',
    });
    kvmAgent = startAgent(server.agentUrl, {
      token: 'lxc-e2e-kvm-agent',
      name: KVM_HOST,
      // The LXC host's default address too: both agents share the network's bridge and VXLAN link.
      args: ['--hypervisor', 'kvm', '--state-dir', join(root, 'kvm')],
    });
    await kvmAgent.waitForLog('waiting to be added', 60_000);
    await admin.request('addHost', {
      zoneid,
      podid,
      clusterid: cluster.id,
      url: `agent://${KVM_HOST}`,
      username: 'root',
      password: 'lxc-e2e-kvm-agent',
      hypervisor: 'KVM',
    });
    const osType = (await admin.request<any>('listOsTypes', { description: 'Other Linux (64-bit)' }))
      .ostype[0].id;
    const kvmTemplate = (
      await admin.request<any>('registerTemplate', {
        name: 'lxc-e2e-kvm-template',
        displaytext: 'the KVM test template',
        format: 'QCOW2',
        hypervisor: 'KVM',
        ostypeid: osType,
        zoneid,
        url: `file://${KVM_TEMPLATE}`,
        ispublic: true,
        passwordenabled: true,
      })
    ).template[0].id;
    const lxcTemplate = (
      await user.request<any>('listTemplates', {
        templatefilter: 'featured',
        zoneid,
        name: 'Nimbostack test template (LXC)',
      })
    ).template[0].id;
    await waitUntil(
      async () =>
        (await admin.request<any>('listTemplates', { templatefilter: 'all', id: kvmTemplate, zoneid }))
          .template?.[0]?.isready,
      120_000,
      'the KVM template to be ready',
    );
    const serviceofferingid = await tinyOffering();
    const group = async (name: string) =>
      (await user.request<any>('createSecurityGroup', { name })).securitygroup.id as string;
    const [target, web, other] = [await group('target'), await group('web'), await group('other')];
    await user.call('authorizeSecurityGroupIngress', {
      securitygroupid: target,
      protocol: 'icmp',
      icmptype: -1,
      icmpcode: -1,
      'usersecuritygrouplist[0].account': 'lxce2e',
      'usersecuritygrouplist[0].group': 'web',
    });
    const deploy = async (name: string, templateid: string, groupId: string, script = '') => {
      const t0 = Date.now();
      const vm = (
        await user.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid,
          name,
          securitygroupids: groupId,
          ...(script ? { userdata: Buffer.from(`#!/bin/sh\n${script}`).toString('base64') } : {}),
        })
      ).virtualmachine;
      return { vm, t0, running: Date.now() - t0, instance: await instanceOf(vm.id), ip: vm.nic[0].ipaddress };
    };

    // The VM first: it boots while the containers are deployed.
    const k = await deploy('kvm-k', kvmTemplate, target);
    assert.equal(k.vm.hypervisor, 'KVM');
    // Users do not see host names.
    assert.equal(
      (await admin.request<any>('listVirtualMachines', { id: k.vm.id, listall: true })).virtualmachine[0]
        .hostname,
      KVM_HOST,
    );
    const pinger = [
      `( while true; do if ping -c 1 -W 1 ${k.ip} >/dev/null 2>&1; then echo "NIMBO: ping-k ok";`,
      'else echo "NIMBO: ping-k fail"; fi; sleep 1; done ) &',
      '',
    ].join(' ');
    const a = await deploy('lxc-web', lxcTemplate, web, pinger);
    const c = await deploy('lxc-other', lxcTemplate, other, pinger);
    assert.equal(a.vm.hypervisor, 'LXC');
    await consoleLine(a.instance, new RegExp(`NIMBO: dhcp ${esc(a.ip)}$`));
    const aLease = Date.now() - a.t0;
    await consoleLine(k.instance, new RegExp(`NIMBO: dhcp ${esc(k.ip)}$`), true, 240_000);
    const kLease = Date.now() - k.t0;
    figure('KVM VM: deploy call → Running', k.running);
    figure('KVM VM: deploy call → DHCP lease', kLease);
    figure('container (same run): deploy call → Running', a.running);
    figure('container (same run): deploy call → DHCP lease', aLease);
    const routers = (await admin.request<any>('listRouters', {})).router;
    assert.equal(routers.length, 1, 'one router serves both hypervisors');

    // Security groups between a container and a VM: A's pings are answered, C's are not.
    await consoleLine(a.instance, /NIMBO: ping-k ok$/, false, 240_000);
    await waitUntil(
      async () => count(readConsole(c.instance), /NIMBO: ping-k fail$/) >= 5,
      60_000,
      'C to have tried the VM five times',
    );
    assert.equal(
      count(readConsole(c.instance), /NIMBO: ping-k ok$/),
      0,
      'C (group other) never reaches the VM',
    );

    // Memory at the same offering (256 MiB): what the container's cgroup is charged against QEMU's RSS.
    const qemuPid = JSON.parse(
      readFileSync(join(root, 'kvm', KVM_HOST, 'vms', k.instance, 'vm.json'), 'utf8'),
    ).pid as number;
    const rss =
      Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${qemuPid}/status`, 'utf8'))?.[1]) * 1024;
    const charged = containerMemory(a.instance);
    assert.ok(charged > 0 && charged < 256 * 1024 ** 2, `container charge ${charged}`);
    // Both are limited to 256 MiB, so by allocation a host holds as many of one as of the other;
    // by use, a container holds only what its processes touch.
    process.stdout.write(
      `# figure memory in use at a 256 MiB offering: container ${(charged / 1024 ** 2).toFixed(1)} MiB (its cgroup's charge), KVM VM ${(rss / 1024 ** 2).toFixed(1)} MiB (QEMU's RSS), ${Math.round(rss / charged)}x less\n`,
    );

    for (const g of [k, a, c]) await admin.call('destroyVirtualMachine', { id: g.vm.id, expunge: true });
    assert.deepEqual(readdirSync(lxcPath()), [], 'no container left');
    const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
    for (const g of [a, c])
      assert.ok(!links.includes(tapPrefix(HOST, g.instance)), `no veth of ${g.instance}`);
    assert.ok(!links.includes(tapPrefix(KVM_HOST, k.instance)), 'no tap of the VM');
  });
});

describe('offline migration between two LXC hosts', { skip: SKIP }, () => {
  test('a running container is not moved live; stopped, it starts on the other host with its root file system', async () => {
    const admin = server.admin;
    const local = (await admin.request<any>('listHosts', { name: HOST })).host[0];
    lxcAgent2 = startAgent(server.agentUrl, {
      token: 'lxc-e2e-second-agent',
      name: HOST2,
      // The first host's default address too: both share the network's bridge and VXLAN link.
      args: ['--hypervisor', 'lxc', '--state-dir', join(root, 'agent2')],
    });
    await lxcAgent2.waitForLog('waiting to be added', 60_000);
    const host2 = (
      await admin.request<any>('addHost', {
        zoneid: local.zoneid,
        podid: local.podid,
        clusterid: local.clusterid,
        url: `agent://${HOST2}`,
        username: 'root',
        password: 'lxc-e2e-second-agent',
        hypervisor: 'LXC',
      })
    ).host[0];
    const templateid = (
      await user.request<any>('listTemplates', {
        templatefilter: 'featured',
        zoneid: local.zoneid,
        name: 'Nimbostack test template (LXC)',
      })
    ).template[0].id;
    const script = [
      '#!/bin/sh',
      'N=$(cat /nimbo-counter 2>/dev/null || echo 0)',
      'echo "NIMBO: counter was $N"',
      'echo $((N + 1)) > /nimbo-counter; sync',
      '',
    ].join('\n');
    const vm = (
      await user.call<any>('deployVirtualMachine', {
        zoneid: local.zoneid,
        templateid,
        serviceofferingid: await tinyOffering(),
        name: 'lxc-mover',
        userdata: Buffer.from(script).toString('base64'),
      })
    ).virtualmachine;
    const instance = await instanceOf(vm.id);
    const where = async () =>
      (await admin.request<any>('listVirtualMachines', { id: vm.id, listall: true })).virtualmachine[0]
        .hostid;
    const from = await where();
    const to = from === host2.id ? local.id : host2.id;
    const dirOf = (hostId: string) =>
      hostId === host2.id ? join(root, 'agent2', HOST2) : join(root, 'agent', HOST);
    const consoleAt = (hostId: string) => join(dirOf(hostId), 'vms', instance, 'console.log');
    const lineAt = (hostId: string, pattern: RegExp) =>
      waitUntil(
        async () =>
          existsSync(consoleAt(hostId)) &&
          readFileSync(consoleAt(hostId), 'utf8')
            .replace(/\r/g, '')
            .split('\n')
            .find((l) => pattern.test(l)),
        30_000,
        `${pattern} on ${hostId}`,
      ).catch((e) => {
        const text = existsSync(consoleAt(hostId))
          ? readFileSync(consoleAt(hostId), 'utf8')
          : '(no console log)';
        throw new Error(
          `${(e as Error).message} (${hostId === host2.id ? HOST2 : HOST}):\n${text.slice(-1500)}`,
        );
      });
    await lineAt(from, /NIMBO: counter was 0$/);
    await assert.rejects(
      admin.call('migrateVirtualMachine', { virtualmachineid: vm.id, hostid: to }),
      (e: any) => /not migrated live/.test(e.message),
    );
    assert.equal(await where(), from, 'the refused migration left it where it was');

    const t = Date.now();
    await user.call('stopVirtualMachine', { id: vm.id });
    await admin.call('startVirtualMachine', { id: vm.id, hostid: to });
    figure('container: offline migration (stop, start on the other host) → Running', Date.now() - t);
    assert.equal(await where(), to);
    await lineAt(to, new RegExp(`NIMBO: dhcp ${esc(vm.nic[0].ipaddress)}$`));
    await lineAt(to, /NIMBO: counter was 1$/);
    assert.equal(readdirSync(join(dirOf(from), 'lxc')).length, 0, 'nothing left of it on the first host');

    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    for (const h of [HOST, HOST2])
      assert.ok(
        !execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).includes(tapPrefix(h, instance)),
        `no veth of ${instance} on ${h}`,
      );
    assert.deepEqual(readdirSync(join(dirOf(to), 'lxc')), [], 'no container left on the second host');
  });
});
