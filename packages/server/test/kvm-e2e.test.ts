/**
 * End to end on a real VM: the real server with the KVM local zone (this machine as the KVM host,
 * its agent in the server process), through the public API only: deploy from the test template →
 * Running → the guest got the server-assigned address by DHCP from the zone's virtual router and
 * printed its user data and host name on its serial console → the host pings it once ICMP is
 * allowed in its security group, and cannot once the rule is revoked → stop / start → destroy with
 * expunge → nothing of it is left (QEMU, tap, nftables rules, lease, disk file).
 * The second test, with three 256 MiB VMs at most: security groups between VMs (the guests'
 * user data scripts ping a third VM and print the result on their consoles), a data volume
 * hot-plugged into a running guest, snapshot / change / revert of a root disk (a boot counter on
 * it), live migration to a second KVM agent process added as a host of the same cluster (the
 * guest keeps running, its rules move, the router stays), nothing left after all of it, and
 * nothing of the network left once deleteNetwork removed it (bridge, VXLAN link, router namespace
 * and processes, nftables tables).
 * Needs root, QEMU, nftables, dnsmasq, busybox and the test template: `npm run test:kvm` after
 * `npm run setup:host`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { tapPrefix } from '../../agent/src/drivers/kvm/machine.ts';
import { routerNetns } from '../../agent/src/network/names.ts';
import { guestLinks } from '../../agent/test/kvm-support.ts';
import { startAgent, type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';
import { readyKvmTestTemplate } from './kvm-advanced-zone.ts';

const TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';
const HOST = 'local-kvm';
const SKIP =
  process.env.NIMBOSTACK_TEST_KVM !== '1'
    ? 'real-VM suite: run it with npm run test:kvm'
    : process.getuid?.() !== 0
      ? 'needs root'
      : !existsSync(TEMPLATE)
        ? `${TEMPLATE} is missing: run npm run setup:host`
        : false;

let server: TestServer;
let user: CloudStackClient;
let root = '';
/** Our links: bridges and VXLAN links that appeared during the test. */
const ourLinks = guestLinks;
let linksBefore: string[] = [];
/** Router namespaces present before the suite (another run's), which are not ours to judge. */
let netnsBefore: string[] = [];
/** The second KVM agent (live migration's destination), started by the second test. */
let agent2: TestAgent | undefined;
const HOST2 = 'local-kvm-2';

const figure = (name: string, ms: number) =>
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);
// busybox's ping: setup:host installs busybox, not iputils.
const pings = (ip: string) =>
  spawnSync('busybox', ['ping', '-c', '1', '-W', '1', ip], { stdio: 'ignore' }).status === 0;
const consoleOf = (instance: string, host = HOST) =>
  join(root, host === HOST ? 'agent' : 'agent2', host, 'vms', instance, 'console.log');
const readConsole = (instance: string, host = HOST) => {
  const path = consoleOf(instance, host);
  return existsSync(path) ? readFileSync(path).toString('utf8').replace(/\r/g, '') : '';
};
/** The pids of the QEMU processes an agent's state directory records. */
function qemuPidsOf(hostDir: string): number[] {
  const vms = join(hostDir, 'vms');
  if (!existsSync(vms)) return [];
  return readdirSync(vms)
    .map((n) => join(vms, n, 'vm.json'))
    .filter((f) => existsSync(f))
    .map((f) => JSON.parse(readFileSync(f, 'utf8')).pid as number)
    .filter((pid) => typeof pid === 'number');
}

/** Waits for a console line matching `pattern`. */
async function consoleLine(
  instance: string,
  pattern: RegExp,
  timeoutMs = 240_000,
  host = HOST,
): Promise<string> {
  let text = '';
  const line = await waitUntil(
    async () => {
      text = readConsole(instance, host);
      return text.split('\n').find((l) => pattern.test(l));
    },
    timeoutMs,
    `console line ${pattern} of ${instance}`,
  ).catch((e) => {
    // Without the guests' uptime ticks, which would fill the tail.
    const shown = text
      .split('\n')
      .filter((l) => !l.includes('NIMBO: tick'))
      .join('\n');
    throw new Error(`${(e as Error).message}\n${shown.slice(-2000)}`);
  });
  return line!;
}

before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-e2e-'));
  linksBefore = ourLinks();
  netnsBefore = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith('nimbo-r-'));
  server = await startServer({
    env: {
      NIMBOSTACK_SEED_LOCAL_ZONE: 'true',
      NIMBOSTACK_HYPERVISOR: 'kvm',
      NIMBOSTACK_KVM_STATE_DIR: join(root, 'agent'),
      NIMBOSTACK_KVM_STORAGE_DIR: root,
      NIMBOSTACK_KVM_TEMPLATE: TEMPLATE,
    },
  });
  ({ client: user } = await createAccountAndLogin(server, { name: 'e2e' }));
});

after(async () => {
  if (SKIP || !server) return;
  // VMs (even after a failure) and the router (namespace, dnsmasq, services) go through the API.
  const vms = await server.admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
  for (const v of vms.virtualmachine ?? [])
    await server.admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
  await agent2?.kill();
  // QEMU outlives its agent: kill any left under the second agent's state directory.
  for (const pid of qemuPidsOf(join(root, 'agent2', HOST2))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  // Removing the hosts stops the router and tears the network down there (bridge, VXLAN link and,
  // with no filtered NIC left, our nftables tables), if a failed test left the network in place.
  const hosts = await server.admin.request<any>('listHosts', {}).catch(() => ({}));
  for (const h of hosts.host ?? [])
    await server.admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
  const routers = await server.admin.request<any>('listRouters', {}).catch(() => ({}));
  for (const r of routers.router ?? [])
    await server.admin.call('destroyRouter', { id: r.id }).catch(() => undefined);
  await server.stop();
  for (const link of ourLinks().filter((l) => !linksBefore.includes(l)))
    spawnSync('ip', ['link', 'del', link], { stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
});

describe('a real VM through the public API', { skip: SKIP }, () => {
  test('deploy → DHCP, user data, host name → security groups on ICMP → stop/start → expunge leaves nothing', async () => {
    const zoneid = (await server.admin.request<any>('listZones', {})).zone[0].id;
    const host = (await server.admin.request<any>('listHosts', { zoneid })).host[0];
    assert.equal(host.name, HOST);
    assert.equal(host.hypervisor, 'KVM');
    assert.equal(host.state, 'Up');
    const templateid = await readyKvmTestTemplate(user, zoneid);
    const offering = (await user.request<any>('listServiceOfferings', { name: 'Small Instance' }))
      .serviceoffering[0].id;
    const marker = `e2e-${process.pid}`;
    const userdata = Buffer.from(`#!/bin/sh\necho "user data says ${marker}"\n`).toString('base64');

    const t0 = Date.now();
    const vm = (
      await user.call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        name: 'e2e-vm',
        userdata,
      })
    ).virtualmachine;
    figure('deploy call → Running', Date.now() - t0);
    assert.equal(vm.state, 'Running');
    const ip = vm.nic[0].ipaddress;
    // Users do not see instance names; the host's state directory is named by it.
    const instance = (await server.admin.request<any>('listVirtualMachines', { id: vm.id, listall: true }))
      .virtualmachine[0].instancename;
    await consoleLine(instance, new RegExp(`NIMBO: dhcp ${ip.replace(/\./g, '\\.')}$`));
    figure('deploy call → DHCP lease in the guest', Date.now() - t0);
    await consoleLine(instance, /NIMBO: hostname e2e-vm$/);
    await consoleLine(instance, new RegExp(`user data says ${marker}`));
    await consoleLine(instance, /NIMBO: ready hostname=e2e-vm/);

    const router = (await server.admin.request<any>('listRouters', {})).router[0];
    assert.equal(router.state, 'Running');
    assert.equal(router.hostname, HOST);
    const network = (await server.admin.request<any>('listNetworks', { zoneid })).network[0];
    const bridges = ourLinks().filter((l) => l.startsWith('nsbr') && !linksBefore.includes(l));
    assert.equal(bridges.length, 1, `the network ${network.id} has a bridge on this host`);

    // The default group admits nothing in: the host cannot ping the guest.
    assert.equal(spawnSync('busybox', ['ping', '-c', '1', '-W', '1', '10.1.1.1']).status, 0, 'ping works');
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
    await waitUntil(async () => pings(ip), 10_000, 'the guest to answer ping').catch((e) => {
      // What the host was told and holds, to tell a server bug from an agent one.
      const sh = (c: string, a: string[]) => spawnSync(c, a, { encoding: 'utf8' }).stdout;
      throw new Error(
        `${(e as Error).message}\n${sh('ip', ['-br', 'addr'])}\n${sh('nft', ['list', 'ruleset'])}\n${server.logs
          .filter((l) => /applySecurityRules|setupNetwork|warn|error/i.test(l))
          .slice(-20)
          .join('\n')}`,
      );
    });
    await user.call('revokeSecurityGroupIngress', { id: icmp.ruleid });
    await waitUntil(async () => !pings(ip), 10_000, 'ping to be refused again');

    let t = Date.now();
    assert.equal((await user.call<any>('stopVirtualMachine', { id: vm.id })).virtualmachine.state, 'Stopped');
    figure('stopVirtualMachine', Date.now() - t);
    // QEMU truncates the console log when the VM starts again: the old one goes, so only this boot is read.
    rmSync(consoleOf(instance), { force: true });
    t = Date.now();
    assert.equal(
      (await user.call<any>('startVirtualMachine', { id: vm.id })).virtualmachine.state,
      'Running',
    );
    figure('startVirtualMachine → Running', Date.now() - t);
    await consoleLine(instance, new RegExp(`NIMBO: dhcp ${ip.replace(/\./g, '\\.')}$`));
    figure('startVirtualMachine → DHCP lease again', Date.now() - t);

    const rootVolume = (
      await server.admin.request<any>('listVolumes', { virtualmachineid: vm.id, listall: true })
    ).volume[0];
    const mac = vm.nic[0].macaddress.toLowerCase();
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });

    // Nothing of the VM is left on the host.
    const prefix = tapPrefix(HOST, instance);
    assert.notEqual(spawnSync('pgrep', ['-f', `qemu-system.*${instance}`]).status, 0, 'no QEMU');
    const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
    assert.ok(!links.includes(prefix), 'no tap');
    const ruleset = execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).toLowerCase();
    assert.ok(!ruleset.includes(prefix) && !ruleset.includes(mac), 'no nftables rule of the VM');
    const routerDir = join(root, 'agent', HOST, 'routers', router.name);
    for (const f of ['leases', 'dhcp-hosts'])
      if (existsSync(join(routerDir, f)))
        assert.ok(!readFileSync(join(routerDir, f), 'utf8').toLowerCase().includes(mac), `no ${f} entry`);
    const primary = join(root, 'primary');
    const files = existsSync(primary) ? readdirSync(primary, { recursive: true }).map(String) : [];
    assert.ok(!files.some((f) => f.includes(rootVolume.id)), `no disk file of ${rootVolume.id}`);
    assert.deepEqual(await server.admin.request('listVirtualMachines', { id: vm.id, listall: true }), {});
  });
});

/** The bridge of the zone's guest network holds the gateway address, the host's way to its guests. */
const GATEWAY = '10.1.1.1';
const esc = (s: string) => s.replace(/\./g, '\\.');
const count = (text: string, pattern: RegExp) => text.split('\n').filter((l) => pattern.test(l)).length;

describe('security groups between VMs, volumes, snapshots and live migration through the public API', {
  skip: SKIP,
}, () => {
  test('A (web) reaches B, C (other) does not → data disk hot-plug → snapshot, change, revert → live migration to a second agent → nothing left', async () => {
    const admin = server.admin;
    const zoneid = (await admin.request<any>('listZones', {})).zone[0].id;
    const templateid = (
      await user.request<any>('listTemplates', {
        templatefilter: 'featured',
        zoneid,
        name: 'Nimbostack test template (KVM)',
      })
    ).template.find((t: any) => t.isready).id;
    // 256 MiB guests: three run at once on a shared 2-core machine.
    const serviceofferingid = (
      await admin.request<any>('createServiceOffering', {
        name: 'e2e-tiny',
        displaytext: 'e2e tiny',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
      })
    ).serviceoffering.id;
    const group = async (name: string) =>
      (await user.request<any>('createSecurityGroup', { name })).securitygroup.id as string;
    const [target, web, other] = [await group('target'), await group('web'), await group('other')];
    // B admits ICMP only from members of web.
    await user.call('authorizeSecurityGroupIngress', {
      securitygroupid: target,
      protocol: 'icmp',
      icmptype: -1,
      icmpcode: -1,
      'usersecuritygrouplist[0].account': 'e2e',
      'usersecuritygrouplist[0].group': 'web',
    });
    const deploy = async (name: string, groupId: string, script: string) =>
      (
        await user.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid,
          name,
          securitygroupids: groupId,
          userdata: Buffer.from(`#!/bin/sh\n${script}`).toString('base64'),
        })
      ).virtualmachine;
    const instanceOf = async (id: string) =>
      (await admin.request<any>('listVirtualMachines', { id, listall: true })).virtualmachine[0].instancename;

    // B counts its boots in a file on its root disk (read, then incremented and synced, at every
    // boot) and prints its uptime every 2 s, so a reboot and a revert are both visible.
    const t0 = Date.now();
    const b = await deploy(
      'vm-b',
      target,
      [
        'N=$(cat /nimbo-counter 2>/dev/null || echo 0)',
        'echo "NIMBO: counter was $N"',
        'echo $((N + 1)) > /nimbo-counter; sync',
        '( while true; do echo "NIMBO: tick $(cut -d" " -f1 /proc/uptime)"; sleep 2; done ) &',
        '',
      ].join('\n'),
    );
    const bIp = b.nic[0].ipaddress;
    const bInstance = await instanceOf(b.id);
    const pinger = [
      `( while true; do if ping -c 1 -W 1 ${bIp} >/dev/null 2>&1; then echo "NIMBO: ping-b ok";`,
      'else echo "NIMBO: ping-b fail"; fi; sleep 1; done ) &',
      '',
    ].join(' ');
    const a = await deploy('vm-a', web, pinger);
    const c = await deploy('vm-c', other, pinger);
    const [aInstance, cInstance] = [await instanceOf(a.id), await instanceOf(c.id)];
    await consoleLine(bInstance, new RegExp(`NIMBO: dhcp ${esc(bIp)}$`));
    figure('deploy call → DHCP lease in the guest (3 VMs booting)', Date.now() - t0);
    await consoleLine(bInstance, /NIMBO: counter was 0$/);

    // 1. Security groups between VMs: A's pings are answered, C's are not.
    await consoleLine(aInstance, /NIMBO: ping-b ok$/);
    await waitUntil(
      async () => count(readConsole(cInstance), /NIMBO: ping-b fail$/) >= 5,
      240_000,
      'C to have tried B five times',
    );
    assert.equal(count(readConsole(cInstance), /NIMBO: ping-b ok$/), 0, 'C (group other) never reaches B');
    const leftovers = [
      { instance: aInstance, mac: a.nic[0].macaddress.toLowerCase(), ip: a.nic[0].ipaddress },
      { instance: cInstance, mac: c.nic[0].macaddress.toLowerCase(), ip: c.nic[0].ipaddress },
    ];
    const rootVolumes: string[] = [];
    for (const v of [a, c]) {
      rootVolumes.push(
        (await admin.request<any>('listVolumes', { virtualmachineid: v.id, listall: true })).volume[0].id,
      );
      await admin.call('destroyVirtualMachine', { id: v.id, expunge: true });
    }

    // 2. A data volume the guest sees.
    const diskofferingid = (await user.request<any>('listDiskOfferings', {})).diskoffering.find(
      (d: any) => d.disksize > 0,
    ).id;
    const data = (await user.call<any>('createVolume', { name: 'e2e-data', zoneid, diskofferingid })).volume;
    let t = Date.now();
    await user.call('attachVolume', { id: data.id, virtualmachineid: b.id });
    await consoleLine(bInstance, /NIMBO: disk add \S*vdb$/);
    figure('attachVolume → the guest sees /dev/vdb', Date.now() - t);
    assert.equal((await user.call<any>('detachVolume', { id: data.id })).volume.virtualmachineid, undefined);
    await user.request('deleteVolume', { id: data.id });
    rootVolumes.push(data.id);

    // 3. Snapshot the ROOT volume (counter 1), boot again (counter 2), revert → counter 1 again.
    const bRoot = (await user.request<any>('listVolumes', { virtualmachineid: b.id, type: 'ROOT' }))
      .volume[0];
    rootVolumes.push(bRoot.id);
    t = Date.now();
    const snap = (await user.call<any>('createSnapshot', { volumeid: bRoot.id })).snapshot;
    figure('createSnapshot (ROOT, VM running)', Date.now() - t);
    assert.equal(snap.state, 'BackedUp');
    const restart = async (what: string) => {
      let t1 = Date.now();
      await user.call('stopVirtualMachine', { id: b.id });
      figure(`stopVirtualMachine (${what})`, Date.now() - t1);
      rmSync(consoleOf(bInstance), { force: true });
      t1 = Date.now();
      await user.call('startVirtualMachine', { id: b.id });
      figure(`startVirtualMachine (${what})`, Date.now() - t1);
    };
    await restart('after the snapshot');
    await consoleLine(bInstance, /NIMBO: counter was 1$/);
    await consoleLine(bInstance, /NIMBO: tick /);
    t = Date.now();
    await user.call('stopVirtualMachine', { id: b.id });
    figure('stopVirtualMachine', Date.now() - t);
    t = Date.now();
    await user.call('revertSnapshot', { id: snap.id });
    figure('revertSnapshot', Date.now() - t);
    rmSync(consoleOf(bInstance), { force: true });
    await user.call('startVirtualMachine', { id: b.id });
    // Without the revert the boot would read 2.
    await consoleLine(bInstance, /NIMBO: counter was \d+$/).then((l) =>
      assert.match(l, /counter was 1$/, 'the root disk is back to the snapshot'),
    );

    // 4. Live migration to a second KVM agent on this machine, same cluster, same primary storage.
    const local = (await admin.request<any>('listHosts', { zoneid, name: HOST })).host[0];
    agent2 = startAgent(server.agentUrl, {
      token: 'e2e-second-kvm-agent',
      name: HOST2,
      args: ['--hypervisor', 'kvm', '--state-dir', join(root, 'agent2'), '--address', '127.0.0.1'],
    });
    await agent2.waitForLog('waiting to be added', 60_000);
    const host2 = (
      await admin.request<any>('addHost', {
        zoneid,
        podid: local.podid,
        clusterid: local.clusterid,
        url: `agent://${HOST2}`,
        username: 'root',
        password: 'e2e-second-kvm-agent',
        hypervisor: 'KVM',
      })
    ).host[0];
    await waitUntil(
      async () => (await admin.request<any>('listHosts', { id: host2.id })).host[0].state === 'Up',
      60_000,
      `${HOST2} to be Up`,
    );
    const icmp = (
      await user.call<any>('authorizeSecurityGroupIngress', {
        securitygroupid: target,
        protocol: 'icmp',
        icmptype: -1,
        icmpcode: -1,
        cidrlist: '0.0.0.0/0',
      })
    ).securitygroup.ingressrule.find((r: any) => r.cidr === '0.0.0.0/0');
    await consoleLine(bInstance, new RegExp(`NIMBO: dhcp ${esc(bIp)}$`));
    await waitUntil(async () => pings(bIp), 30_000, 'the host to ping B');
    const routerBefore = (await admin.request<any>('listRouters', {})).router;
    const routerDir = join(root, 'agent', HOST, 'routers', routerBefore[0].name);
    const hostsBefore = readFileSync(join(routerDir, 'dhcp-hosts'), 'utf8');
    await consoleLine(bInstance, /NIMBO: tick /);
    const ticks = (text: string) =>
      text
        .split('\n')
        .map((l) => /NIMBO: tick ([\d.]+)$/.exec(l)?.[1])
        .filter((x): x is string => x !== undefined)
        .map(Number);
    const lastTick = Math.max(...ticks(readConsole(bInstance)));

    t = Date.now();
    const moved = (
      await admin.call<any>('migrateVirtualMachine', { virtualmachineid: b.id, hostid: host2.id })
    ).virtualmachine;
    figure('migrateVirtualMachine (256 MiB guest)', Date.now() - t);
    assert.equal(moved.state, 'Running');
    assert.equal(moved.hostname, HOST2);
    // The guest kept running: its uptime goes on from where it was, and it did not boot again.
    await waitUntil(
      async () => ticks(readConsole(bInstance, HOST2)).some((u) => u > lastTick),
      60_000,
      'B to keep ticking on the second host',
    );
    const after2 = readConsole(bInstance, HOST2);
    assert.ok(!/NIMBO: (initramfs|init) uptime/.test(after2), `no new boot on ${HOST2}:\n${after2}`);
    assert.ok(Math.min(...ticks(after2)) >= lastTick, 'uptime not reset');
    assert.equal(
      execFileSync('pgrep', ['-fc', `qemu-system.*${bInstance}`], { encoding: 'utf8' }).trim(),
      '1',
      'one QEMU left: the source quit',
    );
    // Its rules moved with it: the chains are the new host's taps', the source's are gone, and the
    // host still pings it under the allowing rule.
    const ruleset = () => execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' });
    assert.ok(ruleset().includes(`${tapPrefix(HOST2, bInstance)}`), 'chains of the new host');
    assert.ok(!ruleset().includes(`${tapPrefix(HOST, bInstance)}`), 'no chain left on the source');
    // Two agents on one machine share the network's bridge: the second, not the router's host, is
    // told to keep no gateway address there, and leaves alone the one the first agent put there.
    assert.ok(
      execFileSync('ip', ['-br', 'addr'], { encoding: 'utf8' }).includes(`${GATEWAY}/`),
      'the gateway address stays on the bridge',
    );
    await waitUntil(async () => pings(bIp), 20_000, 'the host to ping B on its new host');
    await user.call('revokeSecurityGroupIngress', { id: icmp.ruleid });
    await waitUntil(async () => !pings(bIp), 10_000, 'ping refused on the new host after revoke');
    // The router entry is unchanged: same router, same host, same DHCP entry.
    const routerAfter = (await admin.request<any>('listRouters', {})).router;
    assert.deepEqual(
      routerAfter.map((r: any) => [r.id, r.state, r.hostid]),
      routerBefore.map((r: any) => [r.id, r.state, r.hostid]),
    );
    assert.equal(readFileSync(join(routerDir, 'dhcp-hosts'), 'utf8'), hostsBefore);

    // 6. Nothing left: expunge B and the snapshot, stop the second agent, remove its state.
    leftovers.push({ instance: bInstance, mac: b.nic[0].macaddress.toLowerCase(), ip: bIp });
    await admin.call('destroyVirtualMachine', { id: b.id, expunge: true });
    await user.call('deleteSnapshot', { id: snap.id });
    for (const { instance, mac, ip } of leftovers) {
      assert.notEqual(
        spawnSync('pgrep', ['-f', `qemu-system.*${instance}`]).status,
        0,
        `no QEMU of ${instance}`,
      );
      const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
      const nft = ruleset().toLowerCase();
      for (const h of [HOST, HOST2]) {
        assert.ok(!links.includes(tapPrefix(h, instance)), `no tap of ${instance} on ${h}`);
        assert.ok(!nft.includes(tapPrefix(h, instance)), `no nftables chain of ${instance} on ${h}`);
      }
      assert.ok(!nft.includes(mac), `no nftables rule naming ${mac}`);
      for (const f of ['leases', 'dhcp-hosts'])
        if (existsSync(join(routerDir, f)))
          assert.ok(
            !readFileSync(join(routerDir, f), 'utf8').toLowerCase().includes(mac),
            `no ${f} entry of ${mac}`,
          );
      const names = join(routerDir, 'hosts');
      if (existsSync(names))
        assert.doesNotMatch(
          readFileSync(names, 'utf8'),
          new RegExp(`^${esc(ip)}\\s`, 'm'),
          `no DNS entry of ${ip}`,
        );
    }
    const files = [join(root, 'primary'), join(root, 'secondary')].flatMap((d) =>
      existsSync(d) ? readdirSync(d, { recursive: true }).map(String) : [],
    );
    for (const id of [...rootVolumes, snap.id])
      assert.ok(!files.some((f) => f.includes(id)), `no file of ${id}: ${files.join(' ')}`);
    await agent2.kill('SIGTERM');
    assert.deepEqual(
      qemuPidsOf(join(root, 'agent2', HOST2)).filter((pid) => existsSync(`/proc/${pid}`)),
      [],
      'no QEMU under the second agent',
    );
    rmSync(join(root, 'agent2'), { recursive: true, force: true });
    assert.equal(existsSync(join(root, 'agent2')), false);

    // 7. Deleting the network leaves nothing of it on the host: no bridge or VXLAN link, no router
    // namespace, no dnsmasq or router service, no nftables entry. The second agent is gone, so its
    // host is skipped; both agents shared this machine's bridge, which the first one removes.
    const network = (await admin.request<any>('listNetworks', {})).network[0];
    const bridge = ourLinks().find((l) => l.startsWith('nsbr') && !linksBefore.includes(l));
    assert.ok(bridge, 'the network has its bridge before the deletion');
    const routerName = routerBefore[0].name;
    assert.deepEqual(await admin.call('deleteNetwork', { id: network.id }), { success: true });
    assert.deepEqual(await admin.request('listNetworks', { id: network.id }), {});
    assert.deepEqual(await admin.request('listRouters', {}), {});
    assert.deepEqual(
      ourLinks().filter((l) => !linksBefore.includes(l)),
      [],
      'no nsbr bridge or vx link of ours',
    );
    const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    assert.ok(!namespaces.includes(routerNetns(routerName)), `no namespace of ${routerName}`);
    assert.deepEqual(
      namespaces
        .split('\n')
        .map((l) => l.split(' ')[0]!)
        .filter((n) => n.startsWith('nimbo-r-') && !netnsBefore.includes(n)),
      [],
      'no nimbo-r-* namespace of ours',
    );
    assert.notEqual(spawnSync('pgrep', ['-f', routerDir]).status, 0, 'no dnsmasq or router service');
    assert.equal(existsSync(routerDir), false, 'no router state directory');
    const nft = ruleset();
    assert.ok(!nft.includes(bridge), `no nftables entry naming ${bridge}`);
    // No filtered NIC is left on the host, so our tables went with the last bridge.
    assert.doesNotMatch(nft, /table (bridge|inet) nimbostack/, 'no nimbostack table');
  });
});
