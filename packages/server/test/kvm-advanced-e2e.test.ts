/**
 * Advanced-zone networking end to end on real VMs, through the public API only: an Advanced zone
 * (VXLAN physical network, public range 203.0.113.20-30 on a test public bridge) with two KVM
 * agent processes on this machine as its hosts; an isolated network of a user account with one
 * 256 MiB VM on each host. "The internet" is a network namespace on the public bridge holding the
 * public gateway 203.0.113.1 (documentation range: nothing leaves the machine), with a TCP server
 * on :9000 answering each connection with the peer's address and recording it.
 *
 * Each guest's user data answers TCP 8080 with its host name and, every 2 s, tries the internet's
 * :9000, printing `NIMBO: egress ok <address the internet saw>` / `NIMBO: egress blocked` on its
 * console when the result changes. The internet namespace connects to the public addresses.
 *
 * Proven, with `# figure` timings: createNetwork → first VM Running → network Implemented (VNI
 * from the range); egress per the offering's default policy and flipped by an egress rule, the
 * internet seeing only the source-NAT address; a port forward closed until a firewall rule opens
 * it and closed again when it goes; static NAT (inbound on the admitted port, outbound from the
 * VM's own public address); a round-robin load balancer spreading connections over both VMs;
 * restartNetwork cleanup=true keeping every rule; expunge + deleteNetwork leaving nothing (router
 * namespaces, veths, bridge, VXLAN link, dnsmasq/router service/HAProxy, nftables).
 *
 * Needs root, QEMU, nftables, dnsmasq, haproxy, busybox and the test template: `npm run test:kvm`
 * after `npm run setup:host`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { routerNetns, routerPublicVeth, routerVeth } from '../../agent/src/network/names.ts';
import { guestLinks } from '../../agent/test/kvm-support.ts';
import { type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';
import {
  buildAdvancedZone,
  consoleLine as consoleLineOf,
  figure,
  Internet,
  killQemus,
  linkExists,
  netnsList,
  quiet,
  readConsole as readLog,
  removeRouterLeftovers,
  separateIds,
  sh,
  sleep,
  startAgents,
  TEMPLATE,
  type ZoneOptions,
} from './kvm-advanced-zone.ts';

const missing = [
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/bin/qemu-system-x86_64') ? '' : 'QEMU',
  existsSync('/usr/sbin/nft') ? '' : 'nft',
  existsSync('/usr/sbin/haproxy') ? '' : 'haproxy',
  existsSync(TEMPLATE) ? '' : TEMPLATE,
].filter(Boolean);
const SKIP =
  process.env.NIMBOSTACK_TEST_KVM !== '1'
    ? 'real-VM suite: run it with npm run test:kvm'
    : missing.length
      ? `needs ${missing.join(', ')}: run npm run setup:host`
      : false;

const tag = String(process.pid % 100000);
/** The zone's public bridge (its Public traffic type's KVM label): ours alone, ≤ 15 characters. */
const PUBLIC_BRIDGE = `ntpub${tag}`;
const INTERNET = `nimbo-inet-${process.pid}`;
const INTERNET_VETH = `nti${tag}h`;
const INET_IP = '203.0.113.1';
const PUBLIC_IPS = Array.from({ length: 11 }, (_, i) => `203.0.113.${20 + i}`);
const VNI_RANGE: [number, number] = [7100, 7110];
const HOSTS = ['adv-kvm-1', 'adv-kvm-2'];
const GUEST_PORT = 8080;

/**
 * The guest's user data. busybox nc: `-l -p PORT` serves one connection (stdin to the peer, then
 * a half-close), `-w` bounds the connect; `timeout` bounds the whole try. Both loops run in the
 * background: the template runs user data synchronously during boot.
 */
const USERDATA = `#!/bin/sh
( while true; do hostname | nc -l -p ${GUEST_PORT}; done ) </dev/null >/dev/null 2>&1 &
( last=
  while true; do
    a=$(echo hi | timeout 5 nc -w 2 ${INET_IP} 9000 2>/dev/null | tr -d '\\r\\n')
    if [ -n "$a" ]; then s="egress ok $a"; else s="egress blocked"; fi
    if [ "$s" != "$last" ]; then echo "NIMBO: $s" > /dev/console; last=$s; fi
    sleep 2
  done ) </dev/null >/dev/null 2>&1 &
echo "NIMBO: probes started"
`;

/** What the internet gets from host:port, `count` connections. */
const fromInternet = (host: string, port: number, count = 1, ms = 1500, pause = 0) =>
  internet.connect(host, port, count, ms, pause);

let server: TestServer;
let user: CloudStackClient;
let root = '';
const internet = new Internet(PUBLIC_BRIDGE, INTERNET, INTERNET_VETH, INET_IP);
/** "<ms> <peer>" of every connection the internet's server accepted. */
const seen = internet.seen;
const agents: TestAgent[] = [];
let linksBefore: string[] = [];
let netnsBefore: string[] = [];
/** Every router of our network seen during the test (names), and the network's bridge and VNI. */
const routerNames = new Set<string>();
let networkBridge = '';
let networkVni = '';

let zoneid = '';
let templateid = '';
let serviceofferingid = '';
let offering: any;
let hostIds: string[] = [];
let network: any;
interface Vm {
  id: string;
  name: string;
  ip: string;
  instance: string;
  host: string;
}
const vms: Vm[] = [];
/** Public addresses: source NAT, port forward, static NAT, load balancer. */
const pub: { snat?: any; pf?: any; sn?: any; lb?: any } = {};
/** What the test made work, for the restart to check again. */
const made: { pf?: string; fw?: string; staticNat?: boolean; lb?: string; egressRule?: string } = {};

const zoneOptions = (): ZoneOptions => ({
  prefix: 'adv',
  root,
  hosts: HOSTS,
  publicBridge: PUBLIC_BRIDGE,
  gatewayIp: INET_IP,
  publicIps: PUBLIC_IPS,
  vniRange: VNI_RANGE,
  guestCidr: '10.71.0.0/24',
  podOctet: 71,
});
const agentDir = (host: string) => join(root, `agent${HOSTS.indexOf(host) + 1}`, host);
const consoleOf = (vm: Vm) => join(agentDir(vm.host), 'vms', vm.instance, 'console.log');
const readConsole = (vm: Vm) => readLog(consoleOf(vm));
const consoleLine = (vm: Vm, pattern: RegExp, timeoutMs = 180_000) =>
  consoleLineOf(consoleOf(vm), pattern, vm.name, timeoutMs);

/** The last egress result the guest printed: "ok <address>" or "blocked". */
const egressOf = (vm: Vm) =>
  readConsole(vm)
    .split('\n')
    .map((l) => /NIMBO: egress (ok \S+|blocked)$/.exec(l)?.[1])
    .filter((s): s is string => s !== undefined)
    .at(-1);

/** Waits until every guest's last egress result is what `expected` says for it. */
async function egressBecomes(expected: (vm: Vm) => string, timeoutMs = 40_000): Promise<void> {
  await waitUntil(
    async () => vms.every((vm) => egressOf(vm) === expected(vm)),
    timeoutMs,
    `egress ${vms.map((vm) => `${vm.name}: ${expected(vm)}`).join(', ')}`,
  ).catch(async (e) => {
    throw new Error(
      `${(e as Error).message}; seen ${vms.map((vm) => `${vm.name}: ${egressOf(vm)}`).join(', ')}\n${await routerState()}`,
    );
  });
}

/** The running router of our network, as admin sees it. */
async function router(): Promise<any> {
  const r = (await server.admin.request<any>('listRouters', { networkid: network.id, listall: true }))
    .router?.[0];
  if (r) routerNames.add(r.name);
  return r;
}

/** The router's state for failure messages: its table, addresses and what the agent was told. */
async function routerState(): Promise<string> {
  const r = await router().catch(() => undefined);
  if (!r) return '(no router)';
  const ns = routerNetns(r.name);
  const run = (args: string[]) => spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8' });
  const dir = join(agentDir(r.hostname), 'routers', r.name);
  const spec = existsSync(join(dir, 'spec.json')) ? readFileSync(join(dir, 'spec.json'), 'utf8') : '';
  return [
    `router ${r.name} (${r.state}) on ${r.hostname}, namespace ${ns}`,
    run(['ip', '-br', 'addr']).stdout,
    run(['nft', 'list', 'ruleset']).stdout,
    run(['ss', '-ltnp']).stdout,
    existsSync(join(dir, 'haproxy.cfg'))
      ? readFileSync(join(dir, 'haproxy.cfg'), 'utf8')
      : '(no haproxy.cfg)',
    `spec.json public/rules: ${JSON.stringify(
      spec ? (({ public: p, rules }) => ({ public: p, rules }))(JSON.parse(spec)) : {},
    )}`,
    `internet saw: ${seen
      .slice(-5)
      .map((s) => s.peer)
      .join(' ')}`,
  ].join('\n');
}

/** Waits until the internet gets `expected` from host:port; returns how long it took. */
async function reachable(host: string, port: number, expected: string, t0: number, timeoutMs = 20_000) {
  let last: string[] = [];
  await waitUntil(
    async () => {
      last = fromInternet(host, port);
      return last[0] === expected;
    },
    timeoutMs,
    `${host}:${port} to answer ${expected}`,
  ).catch(async (e) => {
    throw new Error(`${(e as Error).message}; got ${last.join(' ')}\n${await routerState()}`);
  });
  return Date.now() - t0;
}

/** Waits until connections to host:port are dropped, then checks that two more are too. */
async function blocked(host: string, port: number, timeoutMs = 15_000): Promise<void> {
  let last: string[] = [];
  await waitUntil(
    async () => {
      last = fromInternet(host, port);
      return last[0] === 'TIMEOUT';
    },
    timeoutMs,
    `${host}:${port} to be dropped`,
  ).catch(async (e) => {
    throw new Error(`${(e as Error).message}; got ${last.join(' ')}\n${await routerState()}`);
  });
  assert.deepEqual(fromInternet(host, port, 2, 1000), ['TIMEOUT', 'TIMEOUT'], `${host}:${port} stays closed`);
}

/** Connections to the load balancer until both VMs answered (at most `max`); returns the answers. */
function spread(host: string, port: number, max = 10): string[] {
  const answers: string[] = [];
  for (let i = 0; i < max && !vms.every((vm) => answers.includes(vm.name)); i += 5)
    answers.push(...fromInternet(host, port, 5, 2000, 100));
  return answers;
}

before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-adv-'));
  for (const d of ['primary', 'secondary']) mkdirSync(join(root, d));
  linksBefore = guestLinks();
  netnsBefore = netnsList();
  internet.start();
  server = await startServer();
  separateIds(server, 1000 + (process.pid % 9000) * 10);
  // Both agents start (and probe QEMU) while the zone is built.
  agents.push(...startAgents(server, zoneOptions()));
  ({ zoneid, hostIds, templateid, serviceofferingid } = await buildAdvancedZone(
    server.admin,
    agents,
    zoneOptions(),
  ));
  ({ client: user } = await createAccountAndLogin(server, { name: 'adv' }));
  offering = (
    await user.request<any>('listNetworkOfferings', {
      name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    })
  ).networkoffering[0];
});

after(async () => {
  if (SKIP) return;
  if (server) {
    const admin = server.admin;
    // Through the API first: VMs, the network (its router, addresses), then the hosts (which stop
    // any router still on them and tear the network's bridge down).
    const list = await admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
    for (const v of list.virtualmachine ?? [])
      await admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
    const routers = await admin.request<any>('listRouters', { listall: true }).catch(() => ({}));
    for (const r of routers.router ?? []) routerNames.add(r.name);
    if (network) await admin.call('deleteNetwork', { id: network.id, forced: true }).catch(() => undefined);
    const hosts = await admin.request<any>('listHosts', {}).catch(() => ({}));
    for (const h of hosts.host ?? [])
      await admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
  }
  for (const a of agents) await a.kill();
  // QEMU outlives its agent; whatever of our routers is still there (a failure in the middle).
  for (const host of HOSTS) killQemus(agentDir(host));
  removeRouterLeftovers(routerNames);
  internet.stop();
  // Our network's bridge and VXLAN link, if the teardown did not happen.
  for (const link of guestLinks().filter((l) => !linksBefore.includes(l)))
    if (link === networkBridge || link === `vx${networkVni}`) quiet('ip', ['link', 'del', link]);
  await server?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('Advanced zone networking on real VMs through the public API', { skip: SKIP }, () => {
  test('createNetwork → first VM Running → Implemented; egress per the offering; the internet sees the source-NAT address', async () => {
    const admin = server.admin;
    const t0 = Date.now();
    network = (
      await user.request<any>('createNetwork', {
        name: 'adv-net',
        displaytext: 'adv e2e',
        zoneid,
        networkofferingid: offering.id,
      })
    ).network;
    assert.equal(network.state, 'Allocated');
    const deploy = async (client: CloudStackClient, name: string, extra: object) =>
      (
        await client.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid,
          networkids: network.id,
          name,
          userdata: Buffer.from(USERDATA).toString('base64'),
          ...extra,
        })
      ).virtualmachine;
    const v1 = await deploy(user, 'adv-vm-1', {});
    figure('createNetwork → first VM Running', Date.now() - t0);
    assert.equal(v1.state, 'Running');
    // The VNI (vlan) is shown to root admins only, as upstream.
    const implemented = (await admin.request<any>('listNetworks', { id: network.id, listall: true }))
      .network[0];
    figure('createNetwork → network Implemented', Date.now() - t0);
    assert.equal(implemented.state, 'Implemented');
    assert.ok(
      Number(implemented.vlan) >= VNI_RANGE[0]! && Number(implemented.vlan) <= VNI_RANGE[1]!,
      `VNI ${implemented.vlan} from the physical network's range`,
    );
    networkVni = implemented.vlan;
    const r = await router();
    assert.equal(r.state, 'Running');
    assert.equal(r.guestipaddress, network.gateway, 'the router holds the gateway');
    networkBridge = sh('ip', ['-o', 'link', 'show', routerVeth(r.name)]).match(/ master (\S+)/)?.[1] ?? '';
    assert.match(networkBridge, /^nsbr/, "the router's veth is in the network's bridge");
    assert.ok(linkExists(`vx${networkVni}`), `the VXLAN link vx${networkVni}`);
    assert.ok(
      sh('ip', ['-o', 'link', 'show', routerPublicVeth(r.name)]).includes(`master ${PUBLIC_BRIDGE}`),
      "the router's public veth is in the zone's public bridge",
    );

    // The second VM on the other host (admin places it for the account).
    const v1Host = (await admin.request<any>('listVirtualMachines', { id: v1.id, listall: true }))
      .virtualmachine[0];
    const other = hostIds.find((h) => h !== v1Host.hostid)!;
    const v2 = await deploy(admin, 'adv-vm-2', {
      account: 'adv',
      domainid: network.domainid,
      hostid: other,
    });
    for (const v of [v1, v2]) {
      const full = (await admin.request<any>('listVirtualMachines', { id: v.id, listall: true }))
        .virtualmachine[0];
      vms.push({
        id: v.id,
        name: full.name,
        ip: full.nic[0].ipaddress,
        instance: full.instancename,
        host: full.hostname,
      });
    }
    assert.notEqual(vms[0]!.host, vms[1]!.host, 'one VM on each host');
    for (const vm of vms) await consoleLine(vm, new RegExp(`NIMBO: dhcp ${vm.ip.replace(/\./g, '\\.')}$`));
    figure('createNetwork → both guests have their DHCP lease (2 VMs booting)', Date.now() - t0);
    for (const vm of vms) {
      await consoleLine(vm, new RegExp(`NIMBO: hostname ${vm.name}$`));
      await consoleLine(vm, /NIMBO: probes started$/);
    }

    pub.snat = (
      await user.request<any>('listPublicIpAddresses', { associatednetworkid: network.id, issourcenat: true })
    ).publicipaddress[0];
    assert.ok(PUBLIC_IPS.includes(pub.snat.ipaddress), 'the source-NAT address is from the public range');
    assert.equal(pub.snat.issourcenat, true);

    // The offering's default egress policy decides the first result; an egress rule flips it.
    const allowByDefault = offering.egressdefaultpolicy === true;
    const open = () => `ok ${pub.snat.ipaddress}`;
    await egressBecomes(allowByDefault ? open : () => 'blocked', 60_000);
    if (!allowByDefault) {
      const before = seen.length;
      await sleep(4000);
      assert.deepEqual(seen.slice(before), [], 'nothing reaches the internet while egress is denied');
      // An ALLOW rule is the exception to the deny default: the guests reach the internet.
      const t = Date.now();
      made.egressRule = (
        await user.call<any>('createEgressFirewallRule', {
          networkid: network.id,
          protocol: 'all',
          destcidrlist: '203.0.113.0/24',
        })
      ).firewallrule.id;
      figure('createEgressFirewallRule (allow) call', Date.now() - t);
      await waitUntil(async () => seen.length > before, 15_000, 'a guest to reach the internet');
      figure('egress allow rule → first connection at the internet', Date.now() - t);
      await egressBecomes(open);
      figure('egress allow rule → both guests report egress ok', Date.now() - t);
    }
    // Only the source-NAT address ever reaches the internet: never a guest address.
    assert.ok(seen.length > 0);
    assert.deepEqual([...new Set(seen.map((s) => s.peer))], [pub.snat.ipaddress]);
    // Source NAT lets answers back in, nothing else: the guests' listener is not reachable on it.
    assert.deepEqual(fromInternet(pub.snat.ipaddress, GUEST_PORT), ['TIMEOUT'], 'nothing open on source NAT');
  });

  test('port forward 2222 → VM 1:8080 is closed until a firewall rule opens it, and closed again without it', async () => {
    assert.equal(vms.length, 2, 'the VMs of the first test');
    pub.pf = (await user.call<any>('associateIpAddress', { networkid: network.id })).ipaddress;
    assert.ok(PUBLIC_IPS.includes(pub.pf.ipaddress));
    assert.notEqual(pub.pf.ipaddress, pub.snat.ipaddress);
    made.pf = (
      await user.call<any>('createPortForwardingRule', {
        ipaddressid: pub.pf.id,
        protocol: 'tcp',
        publicport: 2222,
        privateport: GUEST_PORT,
        virtualmachineid: vms[0]!.id,
        openfirewall: false,
      })
    ).portforwardingrule.id;
    // No firewall rule: the router drops the connection.
    await blocked(pub.pf.ipaddress, 2222);
    let t = Date.now();
    made.fw = (
      await user.call<any>('createFirewallRule', {
        ipaddressid: pub.pf.id,
        protocol: 'tcp',
        startport: 2222,
        endport: 2222,
        cidrlist: '203.0.113.0/24',
      })
    ).firewallrule.id;
    figure('createFirewallRule call', Date.now() - t);
    // The job ends once the router enforces the rule: the very next connection gets through.
    assert.deepEqual(
      fromInternet(pub.pf.ipaddress, 2222),
      [vms[0]!.name],
      `the next connection reaches ${vms[0]!.name}\n${await routerState()}`,
    );
    figure('createFirewallRule call → port forward answered', Date.now() - t);
    t = Date.now();
    await user.call('deleteFirewallRule', { id: made.fw });
    made.fw = undefined;
    figure('deleteFirewallRule call', Date.now() - t);
    assert.deepEqual(fromInternet(pub.pf.ipaddress, 2222), ['TIMEOUT'], 'the next connection is dropped');
    await blocked(pub.pf.ipaddress, 2222);
    // Open again, for the restart to check.
    made.fw = (
      await user.call<any>('createFirewallRule', {
        ipaddressid: pub.pf.id,
        protocol: 'tcp',
        startport: 2222,
        cidrlist: '203.0.113.0/24',
      })
    ).firewallrule.id;
    await reachable(pub.pf.ipaddress, 2222, vms[0]!.name, Date.now());
  });

  test('static NAT of a second address to VM 2: in on the admitted port, out from its own address', async () => {
    assert.equal(vms.length, 2, 'the VMs of the first test');
    pub.sn = (await user.call<any>('associateIpAddress', { networkid: network.id })).ipaddress;
    const ip = pub.sn.ipaddress;
    const t0 = Date.now();
    await user.call('enableStaticNat', { ipaddressid: pub.sn.id, virtualmachineid: vms[1]!.id });
    figure('enableStaticNat call', Date.now() - t0);
    made.staticNat = true;
    const listed = (await user.request<any>('listPublicIpAddresses', { id: pub.sn.id })).publicipaddress[0];
    assert.equal(listed.isstaticnat, true);
    assert.equal(listed.virtualmachineid, vms[1]!.id);
    // Nothing is admitted yet.
    await blocked(ip, GUEST_PORT);
    const t1 = Date.now();
    await user.call('createFirewallRule', {
      ipaddressid: pub.sn.id,
      protocol: 'tcp',
      startport: GUEST_PORT,
      endport: GUEST_PORT,
      cidrlist: '203.0.113.0/24',
    });
    assert.deepEqual(
      fromInternet(ip, GUEST_PORT),
      [vms[1]!.name],
      `the next connection reaches ${vms[1]!.name}\n${await routerState()}`,
    );
    figure('createFirewallRule call → static NAT answered', Date.now() - t1);
    // Every port maps to the VM, but only the admitted one is open.
    assert.deepEqual(fromInternet(ip, 22), ['TIMEOUT'], 'a port without a firewall rule stays closed');
    // VM 2's own traffic now leaves from its static NAT address; VM 1's still from source NAT.
    if (made.egressRule !== undefined || offering.egressdefaultpolicy === true)
      await egressBecomes((vm) => (vm === vms[1] ? `ok ${ip}` : `ok ${pub.snat.ipaddress}`));
  });

  test('a round-robin load balancer on a third address spreads connections over both VMs', async () => {
    assert.equal(vms.length, 2, 'the VMs of the first test');
    pub.lb = (await user.call<any>('associateIpAddress', { networkid: network.id })).ipaddress;
    const ip = pub.lb.ipaddress;
    made.lb = (
      await user.call<any>('createLoadBalancerRule', {
        publicipid: pub.lb.id,
        name: 'adv-lb',
        algorithm: 'roundrobin',
        publicport: 80,
        privateport: GUEST_PORT,
        protocol: 'tcp',
        openfirewall: false,
      })
    ).loadbalancer.id;
    let t = Date.now();
    await user.call('assignToLoadBalancerRule', {
      id: made.lb,
      virtualmachineids: vms.map((vm) => vm.id).join(','),
    });
    // The members' change is what starts (or reloads) HAProxy on the router.
    figure('assignToLoadBalancerRule call (HAProxy start)', Date.now() - t);
    const r = await router();
    const haproxyPid = join(agentDir(r.hostname), 'routers', r.name, 'haproxy.pid');
    assert.ok(existsSync(haproxyPid), 'HAProxy runs on the router');
    await blocked(ip, 80);
    t = Date.now();
    await user.call('createFirewallRule', {
      ipaddressid: pub.lb.id,
      protocol: 'tcp',
      startport: 80,
      endport: 80,
      cidrlist: '203.0.113.0/24',
    });
    const first = fromInternet(ip, 80)[0]!;
    assert.ok(
      vms.some((vm) => vm.name === first),
      `the next connection is answered by a member, got ${first}\n${await routerState()}`,
    );
    figure('createFirewallRule call → load balancer answered', Date.now() - t);
    const answers = spread(ip, 80);
    for (const vm of vms)
      assert.ok(answers.includes(vm.name), `${vm.name} answered through the balancer: ${answers.join(' ')}`);

    // One member out and back in: each change is a graceful HAProxy reload.
    const pidBefore = readFileSync(haproxyPid, 'utf8').trim();
    t = Date.now();
    await user.call('removeFromLoadBalancerRule', { id: made.lb, virtualmachineids: vms[1]!.id });
    figure('removeFromLoadBalancerRule call (HAProxy reload)', Date.now() - t);
    assert.notEqual(readFileSync(haproxyPid, 'utf8').trim(), pidBefore, 'a new HAProxy process');
    const one = fromInternet(ip, 80, 4, 2000, 100);
    assert.ok(
      one.every((a) => a === vms[0]!.name || a.startsWith('ERROR')) && one.includes(vms[0]!.name),
      `only ${vms[0]!.name} answers: ${one.join(' ')}`,
    );
    t = Date.now();
    await user.call('assignToLoadBalancerRule', { id: made.lb, virtualmachineids: vms[1]!.id });
    figure('assignToLoadBalancerRule call (HAProxy reload)', Date.now() - t);
    const both = spread(ip, 80);
    for (const vm of vms) assert.ok(both.includes(vm.name), `${vm.name} is back: ${both.join(' ')}`);
  });

  test('an egress rule change flips what the guests reach, both ways', async () => {
    assert.equal(vms.length, 2, 'the VMs of the first test');
    const allowByDefault = offering.egressdefaultpolicy === true;
    const openState = (vm: Vm) =>
      `ok ${made.staticNat && vm === vms[1] ? pub.sn.ipaddress : pub.snat.ipaddress}`;
    // Close: without the allow rule (deny default), or with a deny-everything rule (allow default).
    let t = Date.now();
    if (allowByDefault)
      made.egressRule = (
        await user.call<any>('createEgressFirewallRule', {
          networkid: network.id,
          protocol: 'all',
          destcidrlist: '203.0.113.0/24',
        })
      ).firewallrule.id;
    else {
      await user.call('deleteEgressFirewallRule', { id: made.egressRule });
      made.egressRule = undefined;
    }
    await egressBecomes(() => 'blocked');
    figure('egress rule change → enforced (closed; guests probe every 2 s)', Date.now() - t);
    const before = seen.length;
    await sleep(4000);
    assert.deepEqual(seen.slice(before), [], 'nothing reaches the internet while closed');
    // Open again: the state the restart must keep holds an egress rule either way.
    t = Date.now();
    if (allowByDefault) {
      await user.call('deleteEgressFirewallRule', { id: made.egressRule });
      made.egressRule = undefined;
    } else
      made.egressRule = (
        await user.call<any>('createEgressFirewallRule', {
          networkid: network.id,
          protocol: 'all',
          destcidrlist: '203.0.113.0/24',
        })
      ).firewallrule.id;
    await egressBecomes(openState);
    figure('egress rule change → enforced (open; guests probe every 2 s)', Date.now() - t);
    const listed = (await user.request<any>('listEgressFirewallRules', { networkid: network.id }))
      .firewallrule;
    assert.equal(listed?.length ?? 0, made.egressRule ? 1 : 0);
  });

  test('restartNetwork cleanup=true: a fresh router, and every rule still works', async () => {
    assert.equal(vms.length, 2, 'the VMs of the first test');
    const old = await router();
    const t = Date.now();
    await user.call('restartNetwork', { id: network.id, cleanup: true });
    const done = Date.now();
    figure('restartNetwork cleanup=true call', done - t);
    const fresh = await router();
    assert.notEqual(fresh.id, old.id, 'a new router');
    assert.equal(fresh.state, 'Running');
    assert.ok(!netnsList().includes(routerNetns(old.name)), 'the old router is gone from its host');
    // Each check is timed from the restart call: neighbours (the internet, the guests) must learn
    // the new router's MACs before anything passes again.
    if (made.pf && made.fw)
      figure(
        'restartNetwork → port forward answers again',
        await reachable(pub.pf.ipaddress, 2222, vms[0]!.name, t, 60_000),
      );
    if (made.staticNat)
      figure(
        'restartNetwork → static NAT answers again',
        await reachable(pub.sn.ipaddress, GUEST_PORT, vms[1]!.name, t, 60_000),
      );
    if (made.lb) {
      const answers = spread(pub.lb.ipaddress, 80);
      for (const vm of vms)
        assert.ok(answers.includes(vm.name), `${vm.name} answers through the balancer: ${answers.join(' ')}`);
      figure('restartNetwork → load balancer spreads again', Date.now() - t);
    }
    // Egress as before the restart: open (an allow rule, or no deny rule), each VM from its address.
    const expected = (vm: Vm) => (made.staticNat && vm === vms[1] ? pub.sn.ipaddress : pub.snat.ipaddress);
    const firstAfter = (vm: Vm) => seen.find((s) => s.at > done && s.peer === expected(vm));
    await waitUntil(
      async () => vms.every((vm) => firstAfter(vm)),
      60_000,
      'both guests to reach the internet from their addresses after the restart',
    ).catch(async (e) => {
      throw new Error(`${(e as Error).message}\n${await routerState()}`);
    });
    for (const vm of vms)
      figure(`restartNetwork → ${vm.name} reaches the internet again`, firstAfter(vm)!.at - t);
    figure('restartNetwork → every rule verified', Date.now() - t);
    assert.ok(
      seen.every((s) => [pub.snat.ipaddress, pub.sn?.ipaddress].includes(s.peer)),
      'only our public addresses ever reached the internet',
    );
  });

  test('expunging the VMs and deleting the network leaves nothing on the hosts', async () => {
    const admin = server.admin;
    assert.ok(network, 'the network of the first test');
    const r = await router();
    const routerDir = join(agentDir(r.hostname), 'routers', r.name);
    const ours = () =>
      sh('ps', ['-eo', 'stat=,args='])
        .split('\n')
        .filter(
          (l) => l.includes(root) && /dnsmasq|router-service|haproxy/.test(l) && !l.trim().startsWith('Z'),
        );
    // What must go is there before the deletion.
    assert.ok(netnsList().includes(routerNetns(r.name)), 'the router namespace');
    if (made.lb)
      assert.ok(
        ours().some((l) => l.includes('haproxy')),
        'HAProxy runs',
      );
    assert.ok(
      ours().some((l) => l.includes('dnsmasq')),
      'dnsmasq runs',
    );
    // Every VM of the network, whatever the earlier tests managed to record.
    const inNetwork = (
      await admin.request<any>('listVirtualMachines', { networkid: network.id, listall: true })
    ).virtualmachine;
    for (const vm of inNetwork ?? []) await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    const t = Date.now();
    assert.deepEqual(await user.call('deleteNetwork', { id: network.id }), { success: true });
    figure('deleteNetwork call', Date.now() - t);
    assert.deepEqual(await user.request('listNetworks', { id: network.id }), {});
    assert.equal((await admin.request<any>('listRouters', { listall: true })).count ?? 0, 0, 'no router');
    const held = await user.request<any>('listPublicIpAddresses', {});
    assert.equal(held.count ?? 0, 0, 'the addresses went back to the zone');
    // The host: no namespace, veth, bridge or VXLAN link, process or nftables table of ours.
    const namespaces = netnsList();
    for (const name of routerNames) {
      assert.ok(!namespaces.includes(routerNetns(name)), `no namespace of ${name}`);
      assert.ok(!linkExists(routerVeth(name)), `no guest veth of ${name}`);
      assert.ok(!linkExists(routerPublicVeth(name)), `no public veth of ${name}`);
    }
    assert.deepEqual(
      namespaces.filter((n) => n.startsWith('nimbo-r-') && !netnsBefore.includes(n)),
      [],
      'no nimbo-r-* namespace appeared',
    );
    assert.ok(!linkExists(networkBridge), `no bridge ${networkBridge}`);
    assert.ok(!linkExists(`vx${networkVni}`), `no VXLAN link vx${networkVni}`);
    assert.deepEqual(ours(), [], 'no dnsmasq, router service or HAProxy of ours');
    assert.equal(existsSync(routerDir), false, 'no router state directory');
    const ruleset = sh('nft', ['list', 'ruleset']);
    assert.doesNotMatch(ruleset, /table ip nimbo\b/, 'the routers’ table never lands on the host');
    for (const needle of [networkBridge, ...PUBLIC_IPS])
      assert.doesNotMatch(
        ruleset,
        new RegExp(`\\b${needle.replace(/\./g, '\\.')}\\b`),
        `no host nftables entry naming ${needle}`,
      );
    // Only the internet's veth is left on the public bridge.
    const ports = readdirSync(`/sys/class/net/${PUBLIC_BRIDGE}/brif`);
    assert.deepEqual(ports, [INTERNET_VETH], 'only the internet is on the public bridge');
  });
});
