/**
 * VPCs end to end on real VMs (QEMU/TCG), through the public API only: an Advanced zone with two
 * KVM agent processes on this machine as its hosts (kvm-advanced-zone.ts), "the internet" a
 * namespace on the zone's test public bridge (203.0.113.0/24, documentation range: nothing leaves
 * the machine) with a TCP server on :9000 answering each connection with the peer's address.
 *
 * VPC A has two tiers: tier 1 under `default_allow`, tier 2 under a list of its own that admits
 * TCP 8080 only; VPC B has one tier. Three 256 MiB guests at most: vm2 in tier 2 on one host, vm1
 * in tier 1 on the other, vm3 in VPC B. Every guest answers TCP 8080 and 8081 with its host name,
 * and its user data probes its targets once a second from inside the guest, printing each result
 * on its console (`NIMBO: probe <ip>:<port|ping> <n> ok <answer>|ok|blocked`): vm1 probes vm2's
 * 8080 and 8081 and the internet, vm2 the internet, vm3 vm1 (ping) and the internet.
 *
 * Proven, with `# figure` timings: createVPC → router Running; vm1 reaches vm2's 8080 and not its
 * 8081 as tier 2's list says, and replaceNetworkACLList flips it (ACL change → enforced); every
 * tier reaches the internet from its VPC's source-NAT address; static NAT and port forwarding
 * from the internet into tier VMs (port forwards into tier 2 obey its list); site to site between
 * the VPCs (each the other's customer gateway) → Connected, and vm3 pings vm1 through the tunnel;
 * a remote-access VPN user connecting from a namespace on the internet side (strongSwan IKEv2,
 * the VPN's key, EAP as the user) reaches vm1; restartVPC cleanup=true keeps one flow of each
 * kind working; deleteVPC after the VMs' expunge leaves no router namespace, veth, tier bridge,
 * VXLAN link, strongSwan, router directory or host nftables entry of ours.
 *
 * Needs root, QEMU, nftables, dnsmasq, haproxy, strongSwan and the test template:
 * `npm run test:kvm` after `npm run setup:host`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { routerNetns, routerPublicVeth, routerVeth } from '../../agent/src/network/names.ts';
import { CHARON, LIBIPSEC_TUN, SWANCTL } from '../../agent/src/network/router-vpn.ts';
import { type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';
import {
  buildAdvancedZone,
  consoleLine,
  figure,
  fromNamespace,
  Internet,
  killQemus,
  linkExists,
  netnsList,
  quiet,
  readConsole,
  removeRouterLeftovers,
  separateIds,
  sh,
  startAgents,
  TEMPLATE,
  type ZoneOptions,
} from './kvm-advanced-zone.ts';
import { VpnClient } from './vpn-client.ts';

const missing = [
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/bin/qemu-system-x86_64') ? '' : 'QEMU',
  existsSync('/usr/sbin/nft') ? '' : 'nft',
  existsSync('/usr/sbin/haproxy') ? '' : 'haproxy',
  existsSync(CHARON) && existsSync(SWANCTL) ? '' : 'strongSwan (strongswan-charon, strongswan-swanctl)',
  existsSync('/usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so') ? '' : 'libcharon-extra-plugins',
  existsSync('/usr/lib/ipsec/plugins/libstrongswan-eap-mschapv2.so') ? '' : 'libcharon-extauth-plugins',
  existsSync(TEMPLATE) ? '' : TEMPLATE,
].filter(Boolean);
const SKIP =
  process.env.NIMBOSTACK_TEST_KVM !== '1'
    ? 'real-VM suite: run it with npm run test:kvm'
    : missing.length
      ? `needs ${missing.join(', ')}: run npm run setup:host`
      : false;

const tag = String(process.pid % 100000);
const PUBLIC_BRIDGE = `nvcpub${tag}`;
const INET_IP = '203.0.113.1';
const PUBLIC_IPS = Array.from({ length: 10 }, (_, i) => `203.0.113.${40 + i}`);
const HOSTS = ['vpc-kvm-1', 'vpc-kvm-2'];
const CLIENT_NS = `nvpc-client-${tag}`;
const CLIENT_VETH = `nwc${tag}c`;
const CLIENT_IP = '203.0.113.95';
const VPN_USER = { username: 'roamer', password: 'Roam-pw1' };

/** The guests' addresses are chosen at deployment, so each one's probes can name the others. */
const A = {
  cidr: '10.210.0.0/16',
  tier1: '10.210.1.1',
  tier2: '10.210.2.1',
  vm1: '10.210.1.11',
  vm2: '10.210.2.12',
};
const B = { cidr: '10.211.0.0/16', tier: '10.211.1.1', vm3: '10.211.1.13' };

/**
 * A guest's user data: TCP 8080 and 8081 answered with the host name (busybox nc serves one
 * connection per `-l`), and a loop per target printing every result on the console. `ping:IP`
 * pings; `PORT:IP` connects (`-w` bounds the connect, `timeout` the whole try). Everything runs
 * in the background: the template runs user data synchronously during boot.
 */
const userdata = (targets: string[]) => `#!/bin/sh
for p in 8080 8081; do ( while true; do hostname | nc -l -p $p; done ) </dev/null >/dev/null 2>&1 & done
probe() {
  n=0
  while true; do
    if [ "$1" = ping ]; then
      if ping -c 1 -W 1 "$2" >/dev/null 2>&1; then r=ok; else r=blocked; fi
    else
      a=$(echo hi | timeout 4 nc -w 2 "$2" "$1" 2>/dev/null | tr -d '\\r\\n')
      if [ -n "$a" ]; then r="ok $a"; else r=blocked; fi
    fi
    n=$((n+1))
    echo "NIMBO: probe $2:$1 $n $r" > /dev/console
    sleep 1
  done
}
${targets.map((t) => `( probe ${t.split(':')[0]} ${t.split(':')[1]} ) </dev/null >/dev/null 2>&1 &`).join('\n')}
echo "NIMBO: probes started"
`;

let server: TestServer;
let user: CloudStackClient;
let root = '';
const internet = new Internet(PUBLIC_BRIDGE, `nimbo-vinet-${process.pid}`, `nvi${tag}h`, INET_IP);
const agents: TestAgent[] = [];
let netnsBefore: string[] = [];
let zoneid = '';
let templateid = '';
let serviceofferingid = '';
let hostIds: string[] = [];
/** Every VPC router seen (names), the tiers' bridges and VNIs, the charons seen in router namespaces. */
const routerNames = new Set<string>();
const tierLinks = new Set<string>();
const charonPids = new Set<string>();
let vpnClient: VpnClient | undefined;

const zoneOptions = (): ZoneOptions => ({
  prefix: 'vpc',
  root,
  hosts: HOSTS,
  publicBridge: PUBLIC_BRIDGE,
  gatewayIp: INET_IP,
  publicIps: PUBLIC_IPS,
  vniRange: [7200, 7215],
  guestCidr: '10.72.0.0/24',
  podOctet: 72,
});

interface Vm {
  id: string;
  name: string;
  ip: string;
  instance: string;
  host: string;
}
const vms: Record<'vm1' | 'vm2' | 'vm3', Vm | undefined> = { vm1: undefined, vm2: undefined, vm3: undefined };
const vm = (k: keyof typeof vms) => {
  assert.ok(vms[k], `${k} of the first test`);
  return vms[k];
};
/** VPCs, tiers, lists and addresses the tests make. */
const made: {
  vpcA?: any;
  vpcB?: any;
  tier1?: any;
  tier2?: any;
  tierB?: any;
  aclX?: string;
  aclY?: string;
  snatA?: any;
  snatB?: any;
  staticNat?: any;
  pf?: any;
  /** The port of vm2 tier 2's list admits now, and the one it does not. */
  open: number;
  closed: number;
  connections: string[];
  ra?: any;
} = { open: 8080, closed: 8081, connections: [] };

const agentDir = (host: string) => join(root, `agent${HOSTS.indexOf(host) + 1}`, host);
const consoleOf = (v: Vm) => join(agentDir(v.host), 'vms', v.instance, 'console.log');
const consoleSize = (v: Vm) => readConsole(consoleOf(v)).length;

/** The probe results of `v` for `target` (`ip:port|ping`) printed after console offset `since`. */
function probes(v: Vm, target: string, since = 0): string[] {
  const re = new RegExp(`^NIMBO: probe ${target.replace(/\./g, '\\.')} \\d+ (ok \\S+|ok|blocked)$`);
  return readConsole(consoleOf(v))
    .slice(since)
    .split('\n')
    .map((l) => re.exec(l)?.[1])
    .filter((r): r is string => r !== undefined);
}

/**
 * Waits until the last `runs` results of each of `v`'s targets printed after `since` are what
 * `expected` says; returns the milliseconds since `t0`.
 */
async function probesBecome(
  v: Vm,
  expected: Record<string, string>,
  t0: number,
  since = 0,
  runs = 2,
  timeoutMs = 60_000,
): Promise<number> {
  const ok = () =>
    Object.entries(expected).every(([target, want]) => {
      const got = probes(v, target, since).slice(-runs);
      return got.length === runs && got.every((r) => r === want);
    });
  await waitUntil(async () => ok(), timeoutMs, `${v.name}'s probes ${JSON.stringify(expected)}`).catch(
    async (e) => {
      const seen = Object.keys(expected).map((t) => `${t}: ${probes(v, t, since).slice(-3).join(', ')}`);
      throw new Error(`${(e as Error).message}; seen ${seen.join('; ')}\n${await routerState()}`);
    },
  );
  return Date.now() - t0;
}

const isCharon = (pid: string) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(CHARON);
  } catch {
    return false; // gone meanwhile
  }
};

/** The running router of a VPC, as admin sees it. */
async function vpcRouter(vpcid: string): Promise<any> {
  const r = (await server.admin.request<any>('listRouters', { vpcid, listall: true })).router?.[0];
  if (r) {
    routerNames.add(r.name);
    const ns = routerNetns(r.name);
    if (existsSync(`/run/netns/${ns}`))
      for (const pid of (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(
        /\s+/,
      ))
        if (pid && isCharon(pid)) charonPids.add(pid);
  }
  return r;
}
const routerDir = (r: any) => join(agentDir(r.hostname), 'routers', r.name);

/** VPC A's router for failure messages: addresses, ruleset, strongSwan's log tail. */
async function routerState(): Promise<string> {
  if (!made.vpcA) return '';
  const r = await vpcRouter(made.vpcA.id).catch(() => undefined);
  if (!r) return '(no router)';
  const run = (args: string[]) =>
    spawnSync('ip', ['netns', 'exec', routerNetns(r.name), ...args], { encoding: 'utf8' }).stdout;
  const log = join(routerDir(r), 'vpn', 'charon.log');
  return [
    `router ${r.name} (${r.state}) on ${r.hostname}, namespace ${routerNetns(r.name)}${
      existsSync(`/run/netns/${routerNetns(r.name)}`) ? '' : ' MISSING'
    }`,
    run(['ip', '-br', 'addr']),
    run(['nft', 'list', 'ruleset']),
    existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-20).join('\n') : '(no charon.log)',
  ].join('\n');
}

/** Waits until the internet gets `expected` from host:port; returns the milliseconds since `t0`. */
async function reachable(host: string, port: number, expected: string, t0: number, timeoutMs = 30_000) {
  let last: string[] = [];
  await waitUntil(
    async () => {
      last = internet.connect(host, port);
      return last[0] === expected;
    },
    timeoutMs,
    `${host}:${port} to answer ${expected}`,
  ).catch(async (e) => {
    throw new Error(`${(e as Error).message}; got ${last.join(' ')}\n${await routerState()}`);
  });
  return Date.now() - t0;
}

/** The tier's bridge and VXLAN link on the hosts, remembered for the final check and clean-up. */
async function rememberTierLinks(tierId: string): Promise<void> {
  const vni = (await server.admin.request<any>('listNetworks', { id: tierId, listall: true })).network[0]
    .vlan;
  assert.ok(linkExists(`vx${vni}`), `the tier's VXLAN link vx${vni}`);
  tierLinks.add(`vx${vni}`);
  const bridge = sh('ip', ['-o', 'link', 'show', `vx${vni}`]).match(/ master (\S+)/)?.[1];
  assert.ok(bridge, `vx${vni} is in a bridge`);
  tierLinks.add(bridge);
}

before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-vpc-'));
  for (const d of ['primary', 'secondary']) mkdirSync(join(root, d));
  netnsBefore = netnsList();
  internet.start();
  server = await startServer();
  separateIds(server, 1000 + (process.pid % 9000) * 10);
  agents.push(...startAgents(server, zoneOptions()));
  ({ zoneid, hostIds, templateid, serviceofferingid } = await buildAdvancedZone(
    server.admin,
    agents,
    zoneOptions(),
  ));
  ({ client: user } = await createAccountAndLogin(server, { name: 'vpc' }));
});

after(async () => {
  if (SKIP) return;
  vpnClient?.stop();
  if (server) {
    const admin = server.admin;
    // Through the API first: VMs, the VPCs (routers, tiers, addresses), then the hosts.
    const list = await admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
    for (const v of list.virtualmachine ?? [])
      await admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
    const routers = await admin.request<any>('listRouters', { listall: true }).catch(() => ({}));
    for (const r of routers.router ?? []) routerNames.add(r.name);
    for (const v of [made.vpcA, made.vpcB])
      if (v) await admin.call('deleteVPC', { id: v.id }).catch(() => undefined);
    const hosts = await admin.request<any>('listHosts', {}).catch(() => ({}));
    for (const h of hosts.host ?? [])
      await admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
  }
  for (const a of agents) await a.kill();
  for (const host of HOSTS) killQemus(agentDir(host));
  removeRouterLeftovers(routerNames);
  for (const pid of charonPids) quiet('kill', ['-9', pid]);
  internet.stop();
  for (const link of tierLinks) quiet('ip', ['link', 'del', link]);
  await server?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('VPCs on real VMs through the public API', { skip: SKIP }, () => {
  test('createVPC → router Running; two tiers on two hosts, a second VPC; three guests boot in them', async () => {
    const admin = server.admin;
    const vpcofferingid = (await user.request<any>('listVPCOfferings', { name: 'Default VPC offering' }))
      .vpcoffering[0].id;
    const tierOffering = (
      await user.request<any>('listNetworkOfferings', {
        name: 'DefaultIsolatedNetworkOfferingForVpcNetworks',
      })
    ).networkoffering[0].id;
    const allow = (await user.request<any>('listNetworkACLLists', { name: 'default_allow' }))
      .networkacllist[0];
    let t0 = Date.now();
    made.vpcA = (
      await user.call<any>('createVPC', {
        name: 'vpc-a',
        zoneid,
        vpcofferingid,
        cidr: A.cidr,
        networkdomain: 'a.test',
      })
    ).vpc;
    figure('createVPC call', Date.now() - t0);
    await waitUntil(
      async () => (await vpcRouter(made.vpcA.id))?.state === 'Running',
      60_000,
      'router Running',
    );
    figure('createVPC → router Running', Date.now() - t0);
    assert.ok(netnsList().includes(routerNetns((await vpcRouter(made.vpcA.id)).name)), 'its namespace');

    // Tier 2's own lists: X admits TCP 8080, Y admits TCP 8081 (anything else in is denied).
    const list = async (name: string, port: number) => {
      const id = (
        await user.call<any>('createNetworkACLList', { name, description: name, vpcid: made.vpcA.id })
      ).networkacllist.id;
      await user.call('createNetworkACL', {
        aclid: id,
        number: 10,
        action: 'Allow',
        traffictype: 'Ingress',
        protocol: 'tcp',
        startport: port,
        endport: port,
        cidrlist: '0.0.0.0/0',
      });
      return id;
    };
    made.aclX = await list('tier2-x', 8080);
    made.aclY = await list('tier2-y', 8081);
    const tier = async (vpc: any, name: string, gateway: string, aclid: string) => {
      const t = Date.now();
      const n = (
        await user.request<any>('createNetwork', {
          name,
          displaytext: name,
          zoneid,
          vpcid: vpc.id,
          networkofferingid: tierOffering,
          gateway,
          netmask: '255.255.255.0',
          aclid,
        })
      ).network;
      figure(`createNetwork (tier ${name})`, Date.now() - t);
      return n;
    };
    made.tier1 = await tier(made.vpcA, 'tier1', A.tier1, allow.id);
    made.tier2 = await tier(made.vpcA, 'tier2', A.tier2, made.aclX!);
    t0 = Date.now();
    made.vpcB = (
      await user.call<any>('createVPC', {
        name: 'vpc-b',
        zoneid,
        vpcofferingid,
        cidr: B.cidr,
        networkdomain: 'b.test',
      })
    ).vpc;
    await waitUntil(
      async () => (await vpcRouter(made.vpcB.id))?.state === 'Running',
      60_000,
      'router B Running',
    );
    figure('createVPC (B) → router Running', Date.now() - t0);
    made.tierB = await tier(made.vpcB, 'tierb', B.tier, allow.id);
    for (const t of [made.tier1, made.tier2, made.tierB]) await rememberTierLinks(t.id);
    made.snatA = (
      await user.request<any>('listPublicIpAddresses', { vpcid: made.vpcA.id, issourcenat: true })
    ).publicipaddress[0];
    made.snatB = (
      await user.request<any>('listPublicIpAddresses', { vpcid: made.vpcB.id, issourcenat: true })
    ).publicipaddress[0];
    assert.ok(PUBLIC_IPS.includes(made.snatA.ipaddress) && PUBLIC_IPS.includes(made.snatB.ipaddress));
    const routerA = await vpcRouter(made.vpcA.id);
    assert.deepEqual(
      (routerA.nic ?? [])
        .filter((n: any) => n.traffictype === 'Guest')
        .map((n: any) => n.ipaddress)
        .sort(),
      [A.tier1, A.tier2],
      "VPC A's router holds both tiers' gateways",
    );

    // vm2 (tier 2) on the first host, vm1 (tier 1) on the other, vm3 in VPC B: booted together.
    const deploy = async (
      k: keyof typeof vms,
      network: any,
      ip: string,
      targets: string[],
      hostid?: string,
    ) => {
      const v = (
        await admin.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid,
          networkids: network.id,
          ipaddress: ip,
          name: `vpc-${k}`,
          account: 'vpc',
          domainid: network.domainid,
          userdata: Buffer.from(userdata(targets)).toString('base64'),
          ...(hostid ? { hostid } : {}),
        })
      ).virtualmachine;
      const full = (await admin.request<any>('listVirtualMachines', { id: v.id, listall: true }))
        .virtualmachine[0];
      assert.equal(full.state, 'Running');
      assert.equal(full.nic[0].ipaddress, ip);
      vms[k] = { id: v.id, name: full.name, ip, instance: full.instancename, host: full.hostname };
    };
    t0 = Date.now();
    await Promise.all([
      deploy('vm2', made.tier2, A.vm2, [`9000:${INET_IP}`], hostIds[0]),
      deploy('vm1', made.tier1, A.vm1, [`8080:${A.vm2}`, `8081:${A.vm2}`, `9000:${INET_IP}`], hostIds[1]),
      deploy('vm3', made.tierB, B.vm3, [`ping:${A.vm1}`, `9000:${INET_IP}`]),
    ]);
    figure('three deployVirtualMachine calls (together) → Running', Date.now() - t0);
    assert.notEqual(vm('vm1').host, vm('vm2').host, 'the two tiers’ guests on two hosts');
    for (const v of [vm('vm1'), vm('vm2'), vm('vm3')]) {
      await consoleLine(consoleOf(v), new RegExp(`NIMBO: dhcp ${v.ip.replace(/\./g, '\\.')}$`), v.name);
      await consoleLine(consoleOf(v), /NIMBO: probes started$/, v.name);
    }
    figure(
      'deploy → the three guests run their probes (DHCP, metadata, user data from the VPC routers)',
      Date.now() - t0,
    );
  });

  test("tier 2's list: the tier-1 guest reaches the tier-2 guest's 8080 and not its 8081", async () => {
    const [vm1, vm2] = [vm('vm1'), vm('vm2')];
    await probesBecome(
      vm1,
      { [`${vm2.ip}:8080`]: `ok ${vm2.name}`, [`${vm2.ip}:8081`]: 'blocked' },
      Date.now(),
      0,
      3,
    );
  });

  test("every tier reaches the internet from its VPC's source-NAT address; static NAT and port forwards from the internet", async () => {
    const [vm1, vm2, vm3] = [vm('vm1'), vm('vm2'), vm('vm3')];
    const inet = `${INET_IP}:9000`;
    await probesBecome(vm1, { [inet]: `ok ${made.snatA.ipaddress}` }, Date.now());
    await probesBecome(vm2, { [inet]: `ok ${made.snatA.ipaddress}` }, Date.now());
    await probesBecome(vm3, { [inet]: `ok ${made.snatB.ipaddress}` }, Date.now());
    assert.deepEqual(
      [...new Set(internet.seen.map((s) => s.peer))].sort(),
      [made.snatA.ipaddress, made.snatB.ipaddress].sort(),
      'the internet sees only the source-NAT addresses',
    );
    // Nothing is open on the source-NAT address.
    assert.deepEqual(internet.connect(made.snatA.ipaddress, 8080), ['TIMEOUT']);

    // Static NAT of a VPC address to vm1 (tier 1, default_allow): in on any port, out from it.
    made.staticNat = (await user.call<any>('associateIpAddress', { vpcid: made.vpcA.id })).ipaddress;
    let t = Date.now();
    await user.call('enableStaticNat', {
      ipaddressid: made.staticNat.id,
      virtualmachineid: vm1.id,
      networkid: made.tier1.id,
    });
    figure('enableStaticNat call', Date.now() - t);
    assert.deepEqual(internet.connect(made.staticNat.ipaddress, 8080), [vm1.name], `${await routerState()}`);
    assert.deepEqual(internet.connect(made.staticNat.ipaddress, 8081), [vm1.name]);
    figure('enableStaticNat → answered from the internet', Date.now() - t);
    await probesBecome(vm1, { [inet]: `ok ${made.staticNat.ipaddress}` }, Date.now());

    // Port forwards into tier 2: they pass its list like any traffic into the tier.
    made.pf = (await user.call<any>('associateIpAddress', { vpcid: made.vpcA.id })).ipaddress;
    t = Date.now();
    for (const [publicport, privateport] of [
      [2222, 8080],
      [2223, 8081],
    ])
      await user.call('createPortForwardingRule', {
        ipaddressid: made.pf.id,
        protocol: 'tcp',
        publicport,
        privateport,
        virtualmachineid: vm2.id,
        networkid: made.tier2.id,
      });
    figure('two createPortForwardingRule calls', Date.now() - t);
    assert.deepEqual(internet.connect(made.pf.ipaddress, 2222), [vm2.name], `${await routerState()}`);
    figure('createPortForwardingRule → answered from the internet', Date.now() - t);
    assert.deepEqual(
      internet.connect(made.pf.ipaddress, 2223, 2),
      ['TIMEOUT', 'TIMEOUT'],
      "8081 is not in tier 2's list",
    );
  });

  test('replaceNetworkACLList flips it: 8081 admitted, 8080 not (from tier 1 and through the port forwards)', async () => {
    const [vm1, vm2] = [vm('vm1'), vm('vm2')];
    const since = consoleSize(vm1);
    const t0 = Date.now();
    await user.call('replaceNetworkACLList', { aclid: made.aclY, networkid: made.tier2.id });
    figure('replaceNetworkACLList call', Date.now() - t0);
    [made.open, made.closed] = [8081, 8080];
    // The job ends once the router enforces the list: the very next connections see it.
    assert.deepEqual(internet.connect(made.pf.ipaddress, 2223), [vm2.name], `${await routerState()}`);
    figure('ACL change → enforced (the next connection through a port forward answered)', Date.now() - t0);
    assert.deepEqual(internet.connect(made.pf.ipaddress, 2222), ['TIMEOUT'], 'and 8080 is closed');
    const ms = await probesBecome(
      vm1,
      { [`${vm2.ip}:8081`]: `ok ${vm2.name}`, [`${vm2.ip}:8080`]: 'blocked' },
      t0,
      since,
      1,
      30_000,
    );
    figure("ACL change → the tier-1 guest's probes flipped (probes every 1–3 s)", ms);
    await probesBecome(
      vm1,
      { [`${vm2.ip}:8081`]: `ok ${vm2.name}`, [`${vm2.ip}:8080`]: 'blocked' },
      t0,
      since,
      2,
    );
  });

  test('site to site: each VPC the other’s customer gateway → Connected; the VPC B guest pings the tier-1 guest through it', async () => {
    const [vm1, vm3] = [vm('vm1'), vm('vm3')];
    // No path between the VPCs before.
    assert.ok(
      probes(vm3, `${vm1.ip}:ping`)
        .slice(-3)
        .every((r) => r === 'blocked'),
      'vm3 cannot ping vm1 yet',
    );
    const sides = [
      { vpc: made.vpcA, peer: made.snatB.ipaddress, peerCidr: B.cidr },
      { vpc: made.vpcB, peer: made.snatA.ipaddress, peerCidr: A.cidr },
    ];
    const pairs = [];
    for (const s of sides) {
      const gw = (await user.call<any>('createVpnGateway', { vpcid: s.vpc.id })).vpngateway;
      const cg = (
        await user.call<any>('createVpnCustomerGateway', {
          name: `to-${s.peer}`,
          gateway: s.peer,
          cidrlist: s.peerCidr,
          ipsecpsk: 'vpc-e2e-shared-key',
          ikepolicy: 'aes256-sha256;modp2048',
          esppolicy: 'aes256-sha256',
          dpd: true,
          ikeversion: 'ikev2',
        })
      ).vpncustomergateway;
      pairs.push({ gw, cg });
    }
    const since = consoleSize(vm3);
    const first = (
      await user.call<any>('createVpnConnection', {
        s2svpngatewayid: pairs[0]!.gw.id,
        s2scustomergatewayid: pairs[0]!.cg.id,
      })
    ).vpnconnection;
    made.connections.push(first.id);
    assert.equal(first.state, 'Disconnected', 'the far end has no connection yet');
    const t0 = Date.now();
    const second = (
      await user.call<any>('createVpnConnection', {
        s2svpngatewayid: pairs[1]!.gw.id,
        s2scustomergatewayid: pairs[1]!.cg.id,
      })
    ).vpnconnection;
    made.connections.push(second.id);
    assert.equal(second.state, 'Connected', `strongSwan reports the tunnel up\n${await routerState()}`);
    figure('createVpnConnection (peer configured) → Connected', Date.now() - t0);
    figure(
      'createVpnConnection → the VPC B guest pings the tier-1 guest through the tunnel (probes every 1–2 s)',
      await probesBecome(vm3, { [`${vm1.ip}:ping`]: 'ok' }, t0, since, 1),
    );
    // The first connection answered Disconnected (its peer had none yet); the routers' states are
    // read again every router.check.interval (30 s).
    for (const id of made.connections)
      await waitUntil(
        async () =>
          (await user.request<any>('listVpnConnections', { id })).vpnconnection?.[0]?.state === 'Connected',
        45_000,
        `listVpnConnections ${id} Connected`,
      );
    figure('createVpnConnection → both listed Connected', Date.now() - t0);
    await probesBecome(vm3, { [`${vm1.ip}:ping`]: 'ok' }, t0, since, 3);
    for (const r of [await vpcRouter(made.vpcA.id), await vpcRouter(made.vpcB.id)])
      assert.ok(existsSync(join(routerDir(r), 'vpn')), `strongSwan runs for ${r.name}`);
    assert.ok(charonPids.size >= 2, 'a charon in each router namespace');
  });

  test('remote access: a VPN user connects from a namespace on the internet side and reaches the tier-1 guest', async () => {
    const vm1 = vm('vm1');
    made.ra = (await user.call<any>('createRemoteAccessVpn', { publicipid: made.snatA.id })).remoteaccessvpn;
    await user.call('addVpnUser', VPN_USER);
    vpnClient = new VpnClient(join(root, 'client'), CLIENT_NS, CLIENT_VETH);
    await vpnClient.start(PUBLIC_BRIDGE, `${CLIENT_IP}/24`, made.ra, VPN_USER, A.cidr);
    assert.ok(!vpnClient!.ping(vm1.ip), 'no path before');
    figure('remote-access client → connected', vpnClient.connect());
    const vip = /inet (\S+)\/32/.exec(
      sh('ip', ['-n', CLIENT_NS, '-o', '-4', 'addr', 'show', 'dev', LIBIPSEC_TUN]),
    )?.[1];
    assert.ok(vip, 'the client has a virtual address from the VPN');
    const [lo, hi] = made.ra.iprange.split('-') as [string, string];
    const n = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    assert.ok(n(vip) >= n(lo) && n(vip) <= n(hi), `${vip} is in ${made.ra.iprange}`);
    await waitUntil(async () => vpnClient!.ping(vm1.ip), 15_000, 'the client to ping vm1');
    assert.deepEqual(fromNamespace(CLIENT_NS, vm1.ip, 8080), [vm1.name], 'and connect to it');
  });

  test('restartVPC cleanup=true: a fresh router, and one flow of each kind still works', async () => {
    const [vm1, vm2, vm3] = [vm('vm1'), vm('vm2'), vm('vm3')];
    const old = await vpcRouter(made.vpcA.id);
    const since = { vm1: consoleSize(vm1), vm2: consoleSize(vm2), vm3: consoleSize(vm3) };
    const t0 = Date.now();
    await user.call('restartVPC', { id: made.vpcA.id, cleanup: true });
    const done = Date.now();
    figure('restartVPC cleanup=true call', done - t0);
    const fresh = await vpcRouter(made.vpcA.id);
    assert.notEqual(fresh.name, old.name, 'a new router');
    assert.equal(fresh.state, 'Running');
    assert.ok(!netnsList().includes(routerNetns(old.name)), 'the old router is gone from its host');
    // Each check is timed from the restart call: neighbours must learn the new router's MACs.
    figure(
      'restartVPC → static NAT answers again',
      await reachable(made.staticNat.ipaddress, 8080, vm1.name, t0, 60_000),
    );
    figure('restartVPC → port forward answers again', await reachable(made.pf.ipaddress, 2223, vm2.name, t0));
    assert.deepEqual(internet.connect(made.pf.ipaddress, 2222), ['TIMEOUT'], 'the list still closes 8080');
    figure(
      'restartVPC → the ACL holds (tier 1 → tier 2: 8081 ok, 8080 blocked)',
      await probesBecome(
        vm1,
        { [`${vm2.ip}:8081`]: `ok ${vm2.name}`, [`${vm2.ip}:8080`]: 'blocked' },
        t0,
        since.vm1,
      ),
    );
    figure(
      'restartVPC → tier 2 reaches the internet from the source-NAT address',
      await probesBecome(vm2, { [`${INET_IP}:9000`]: `ok ${made.snatA.ipaddress}` }, t0, since.vm2),
    );
    figure(
      'restartVPC → the VPC B guest pings the tier-1 guest through the tunnel again',
      await probesBecome(vm3, { [`${vm1.ip}:ping`]: 'ok' }, t0, since.vm3, 2, 90_000),
    );
    for (const id of made.connections)
      await waitUntil(
        async () =>
          (await user.request<any>('listVpnConnections', { id })).vpnconnection?.[0]?.state === 'Connected',
        45_000,
        `listVpnConnections ${id} Connected after the restart`,
      );
    figure('restartVPC → both connections listed Connected', Date.now() - t0);
    // The client's old tunnel ended with the old router: it connects again, as the same user.
    assert.ok(vpnClient, 'the client of the remote-access test');
    vpnClient.terminate();
    vpnClient.connect();
    await waitUntil(
      async () => vpnClient!.ping(vm1.ip),
      15_000,
      'the VPN client to ping vm1 after the restart',
    );
    figure('restartVPC → remote-access client reaches vm1 again', Date.now() - t0);
  });

  test('deleteVPC after the VMs are expunged leaves nothing on the hosts', async () => {
    const admin = server.admin;
    for (const v of [made.vpcA, made.vpcB]) assert.ok(v, 'the VPCs of the first test');
    vpnClient?.stop();
    const dirs = [];
    for (const v of [made.vpcA, made.vpcB]) dirs.push(routerDir(await vpcRouter(v.id)));
    const listed = (await admin.request<any>('listVirtualMachines', { listall: true })).virtualmachine ?? [];
    for (const v of listed) await admin.call('destroyVirtualMachine', { id: v.id, expunge: true });
    for (const v of [made.vpcA, made.vpcB]) {
      const t = Date.now();
      assert.deepEqual(await user.call('deleteVPC', { id: v.id }), { success: true });
      figure('deleteVPC call', Date.now() - t);
    }
    made.vpcA = made.vpcB = undefined;
    assert.equal((await user.request<any>('listVPCs', {})).count ?? 0, 0, 'no VPC');
    assert.equal((await admin.request<any>('listRouters', { listall: true })).count ?? 0, 0, 'no router');
    assert.equal((await user.request<any>('listPublicIpAddresses', {})).count ?? 0, 0, 'addresses returned');
    assert.equal((await user.request<any>('listVpnConnections', {})).count ?? 0, 0, 'no VPN connection');
    // The hosts: no namespace, veth, tier bridge, VXLAN link, charon, directory or nftables entry.
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
    for (const link of tierLinks) assert.ok(!linkExists(link), `no ${link}`);
    assert.ok(charonPids.size >= 2);
    await waitUntil(
      async () => [...charonPids].every((pid) => !existsSync(`/proc/${pid}`)),
      10_000,
      'every router charon to exit',
    );
    for (const d of dirs) assert.equal(existsSync(d), false, `no ${d}`);
    const ours = sh('ps', ['-eo', 'stat=,args='])
      .split('\n')
      .filter(
        (l) =>
          l.includes(root) && /dnsmasq|router-service|haproxy|charon/.test(l) && !l.trim().startsWith('Z'),
      );
    assert.deepEqual(ours, [], 'no dnsmasq, router service, HAProxy or strongSwan of ours');
    const ruleset = sh('nft', ['list', 'ruleset']);
    assert.doesNotMatch(ruleset, /table ip nimbo(_vpc)?\b/, 'the routers’ tables never land on the host');
    for (const needle of [...tierLinks, ...PUBLIC_IPS])
      assert.doesNotMatch(
        ruleset,
        new RegExp(`\\b${needle.replace(/\./g, '\\.')}\\b`),
        `no host entry naming ${needle}`,
      );
    assert.deepEqual(
      readdirSync(`/sys/class/net/${PUBLIC_BRIDGE}/brif`),
      [internet.veth],
      'only the internet is on the public bridge',
    );
  });
});
