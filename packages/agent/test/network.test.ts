/**
 * The KVM host's guest networking, for real, without VMs: bridges and VXLAN links, a router in a
 * network namespace (dnsmasq, metadata and password services) serving "VMs" that are network
 * namespaces plugged into the bridge by veth pairs, and security groups in nftables between them.
 * The filtering works on the bridge port, which is the same for a VM's tap and for a veth.
 * Needs root, nft and dnsmasq; skipped with the reason otherwise.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GuestNetwork, RouterSpec, routerEntryHash, type SecurityRule } from '@nimbostack/protocol';
import { HostNetwork } from '../src/network/host-network.ts';
import { routerNetns, routerVeth } from '../src/network/names.ts';
import { processAlive } from '../src/network/router.ts';
import { installed, type NicFilter } from '../src/network/security.ts';

const missing = [
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/sbin/nft') ? '' : 'nft (nftables)',
  existsSync('/usr/sbin/dnsmasq') ? '' : 'dnsmasq (dnsmasq-base)',
  existsSync('/usr/bin/curl') ? '' : 'curl',
  spawnSync('busybox', ['true']).status === 0 ? '' : 'busybox',
].filter(Boolean);
const SKIP = missing.length
  ? `host networking tests need ${missing.join(', ')}: run as root after npm run setup:host`
  : false;

const tag = String(process.pid % 10000);
const net = `10.252.${process.pid % 250}`;
const BRIDGE = `nbn${tag}`;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: 'pipe' });
const quiet = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

const network = (over: Partial<GuestNetwork> = {}) =>
  GuestNetwork.parse({
    uuid: `net-${tag}`,
    bridge: BRIDGE,
    cidr: `${net}.0/24`,
    gateway: `${net}.1`,
    gatewayOnHost: true,
    domain: 'nimbo.test',
    ...over,
  });

/** A stand-in VM: a namespace with eth0 (given MAC and address) plugged into the bridge by a veth. */
interface FakeVm {
  ns: string;
  port: string;
  mac: string;
  ip: string;
}
const fakeVms: FakeVm[] = [];
function plugFakeVm(n: number, ip: string): FakeVm {
  const vm = {
    ns: `nbv${tag}-${n}`,
    port: `vnt${tag}x${n}`,
    mac: `02:00:5e:00:${tag.padStart(4, '0').slice(0, 2)}:${10 + n}`,
    ip,
  };
  fakeVms.push(vm);
  sh('ip', ['netns', 'add', vm.ns]);
  sh('ip', ['link', 'add', vm.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', vm.ns]);
  sh('ip', ['-n', vm.ns, 'link', 'set', 'eth0', 'address', vm.mac]);
  sh('ip', ['-n', vm.ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', vm.ns, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['link', 'set', vm.port, 'master', BRIDGE]);
  sh('ip', ['link', 'set', vm.port, 'up']);
  return vm;
}
const inVm = (vm: FakeVm, cmd: string, args: string[]) => sh('ip', ['netns', 'exec', vm.ns, cmd, ...args]);
const pings = (ns: string | undefined, to: string, from?: string) =>
  quiet(ns ? 'ip' : 'busybox', [
    ...(ns ? ['netns', 'exec', ns, 'busybox'] : []),
    ...['ping', '-c', '1', '-W', '1', ...(from ? ['-I', from] : []), to],
  ]);
const curl = (vm: FakeVm, url: string, header?: string) =>
  inVm(vm, 'curl', ['-s', '-m', '3', ...(header ? ['-H', header] : []), url]);

let root = '';
let hostNet: HostNetwork;
const routerIp = `${net}.2`;
const ROUTER = `r-${tag}-VM`;
const entry = (n: number, over: object = {}) => ({
  mac: `02:00:5e:00:${tag.padStart(4, '0').slice(0, 2)}:${10 + n}`,
  ip: `${net}.${10 + n}`,
  hostname: `web-${n}`,
  instanceId: `uuid-${n}`,
  vmName: `i-2-${n}-VM`,
  userData: Buffer.from(`#!/bin/sh\necho user data ${n}\n`).toString('base64'),
  publicKeys: [`ssh-ed25519 AAAAkey${n} test@nimbo`],
  serviceOffering: 'Small Instance',
  availabilityZone: 'zone-1',
  ...over,
});
const routerSpec = (vms: object[]) =>
  RouterSpec.parse({ name: ROUTER, network: network(), ip: routerIp, mac: '02:00:5e:ff:00:02', vms });

function cleanup(): void {
  for (const vm of fakeVms) {
    quiet('ip', ['netns', 'del', vm.ns]);
    quiet('ip', ['link', 'del', vm.port]);
  }
  quiet('ip', ['netns', 'del', routerNetns(ROUTER)]);
  quiet('ip', ['link', 'del', `vx${90000 + Number(tag)}`]);
  quiet('ip', ['link', 'del', BRIDGE]);
}

describe('host networking', { skip: SKIP }, () => {
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'nimbo-net-'));
    hostNet = new HostNetwork({
      hostDir: root,
      localAddress: '127.0.0.1',
      applySecurityRules: async () => {},
    });
  });

  after(async () => {
    await hostNet?.stopRouter(ROUTER).catch(() => undefined);
    await hostNet?.security.remove('vnt').catch(() => undefined);
    cleanup();
    await hostNet?.security.dropIfUnused();
    rmSync(root, { recursive: true, force: true });
  });

  test('setupNetwork: a bridge with the gateway and a VXLAN link flooding to each peer; repeats update the peers; teardown removes both', async () => {
    const vni = 90000 + Number(tag);
    const vx = `vx${vni}`;
    const n = network({ vni, peers: ['192.0.2.10', '192.0.2.11'] });
    await hostNet.setupNetwork(n);
    await hostNet.setupNetwork(n);
    assert.ok(existsSync(`/sys/class/net/${BRIDGE}/bridge`));
    assert.match(sh('ip', ['-br', 'addr', 'show', 'dev', BRIDGE]), new RegExp(`UP.*${net}\\.1/24`));
    const [link] = JSON.parse(sh('ip', ['-j', '-d', 'link', 'show', 'dev', vx]));
    assert.equal(link.master, BRIDGE);
    assert.deepEqual(
      [link.linkinfo.info_data.id, link.linkinfo.info_data.port, link.linkinfo.info_data.local],
      [vni, 4789, '127.0.0.1'],
    );
    const peers = () =>
      JSON.parse(sh('bridge', ['-j', 'fdb', 'show', 'dev', vx]))
        .filter((e: any) => e.mac === '00:00:00:00:00:00')
        .map((e: any) => e.dst)
        .sort();
    assert.deepEqual(peers(), ['192.0.2.10', '192.0.2.11']);
    await hostNet.setupNetwork({ ...n, peers: ['192.0.2.11', '192.0.2.12'] });
    assert.deepEqual(peers(), ['192.0.2.11', '192.0.2.12']);
    assert.equal(readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim(), '1');

    const vm = plugFakeVm(9, `${net}.99`);
    await assert.rejects(hostNet.teardownNetwork(n), /still has VM NICs \(vnt/);
    sh('ip', ['link', 'del', vm.port]);
    sh('ip', ['netns', 'del', vm.ns]);
    await hostNet.teardownNetwork(n);
    await hostNet.teardownNetwork(n);
    assert.equal(existsSync(`/sys/class/net/${BRIDGE}`), false);
    assert.equal(existsSync(`/sys/class/net/${vx}`), false);
  });

  test('the gateway address leaves the bridge when the router leaves the host, only if this agent put it there', async () => {
    const has = () => sh('ip', ['-br', 'addr', 'show', 'dev', BRIDGE]).includes(`${net}.1/24`);
    await hostNet.setupNetwork(network());
    assert.ok(has());
    await hostNet.setupNetwork(network({ gatewayOnHost: false }));
    assert.ok(!has(), 'the router moved away: our gateway address goes');
    // Put there by someone else (another agent sharing the machine, an operator): left alone.
    sh('ip', ['addr', 'add', `${net}.1/24`, 'dev', BRIDGE]);
    await hostNet.setupNetwork(network({ gatewayOnHost: false }));
    assert.ok(has(), 'an address this agent did not add stays');
    await hostNet.teardownNetwork(network());
  });

  test('VXLAN carries a network between two hosts (namespaces here): guests on each reach each other', async () => {
    // Two "hosts" are namespaces joined by an underlay veth; each runs the module in its own
    // namespace (ip netns exec), with a stand-in VM namespace plugged into its bridge.
    const hosts = [`nbh${tag}a`, `nbh${tag}b`];
    const underlay = [`10.253.${process.pid % 250}.1`, `10.253.${process.pid % 250}.2`];
    const guests = [`nbg${tag}a`, `nbg${tag}b`];
    const vni = 91000 + Number(tag);
    const netOf = (i: number) =>
      network({ bridge: `nbx${tag}`, gatewayOnHost: false, vni, peers: [underlay[1 - i]] });
    const inHost = (i: number, fn: 'setupBridge' | 'teardownBridge') =>
      sh('ip', [
        ...['netns', 'exec', hosts[i], process.execPath, '--import', 'tsx', '--input-type=module', '-e'],
        `import { ${fn} } from ${JSON.stringify(join(import.meta.dirname, '../src/network/bridge.ts'))}; const [net, local, marks] = process.argv.slice(1); await (${fn === 'setupBridge' ? 'setupBridge(JSON.parse(net), local, marks)' : 'teardownBridge(JSON.parse(net), marks)'});`,
        JSON.stringify(netOf(i)),
        underlay[i],
        join(root, `gateways-${i}`),
      ]);
    try {
      for (const ns of [...hosts, ...guests]) sh('ip', ['netns', 'add', ns]);
      sh('ip', [
        'link',
        'add',
        'u0',
        'netns',
        hosts[0],
        'type',
        'veth',
        'peer',
        'name',
        'u1',
        'netns',
        hosts[1],
      ]);
      for (const i of [0, 1]) {
        sh('ip', ['-n', hosts[i], 'addr', 'add', `${underlay[i]}/24`, 'dev', `u${i}`]);
        sh('ip', ['-n', hosts[i], 'link', 'set', `u${i}`, 'up']);
        inHost(i, 'setupBridge');
        sh('ip', [
          '-n',
          hosts[i],
          'link',
          'add',
          'g',
          'type',
          'veth',
          'peer',
          'name',
          'eth0',
          'netns',
          guests[i],
        ]);
        sh('ip', ['-n', hosts[i], 'link', 'set', 'g', 'master', `nbx${tag}`]);
        sh('ip', ['-n', hosts[i], 'link', 'set', 'g', 'up']);
        sh('ip', ['-n', guests[i], 'addr', 'add', `${net}.${50 + i}/24`, 'dev', 'eth0']);
        sh('ip', ['-n', guests[i], 'link', 'set', 'eth0', 'up']);
      }
      assert.ok(pings(guests[0], `${net}.51`), 'a guest on host a reaches one on host b over VXLAN');
      assert.ok(pings(guests[1], `${net}.50`));
      const fdb = sh('ip', ['netns', 'exec', hosts[0], 'bridge', 'fdb', 'show', 'dev', `vx${vni}`]);
      assert.match(fdb, new RegExp(`00:00:00:00:00:00 dst ${underlay[1]}`));
      for (const i of [0, 1]) {
        sh('ip', ['-n', hosts[i], 'link', 'del', 'g']);
        inHost(i, 'teardownBridge');
        assert.doesNotMatch(sh('ip', ['-n', hosts[i], '-br', 'link']), /nbx|vx/);
      }
    } finally {
      for (const ns of [...guests, ...hosts]) quiet('ip', ['netns', 'del', ns]);
    }
  });

  test('a router in a namespace: DHCP static leases, DNS, metadata per source address, passwords once', async () => {
    await hostNet.setupNetwork(network());
    const a = plugFakeVm(1, `${net}.11`);
    const b = plugFakeVm(2, `${net}.12`);
    const t0 = Date.now();
    await hostNet.startRouter(routerSpec([entry(1, { password: 'Secret-1' }), entry(2)]));
    process.stdout.write(`# figure startRouter: ${Date.now() - t0} ms\n`);
    await hostNet.startRouter(routerSpec([entry(1, { password: 'Secret-1' }), entry(2)]));
    const ns = routerNetns(ROUTER);
    assert.ok(existsSync(`/run/netns/${ns}`));
    assert.equal(
      sh('ip', ['-o', 'link', 'show', 'dev', routerVeth(ROUTER)]).includes(`master ${BRIDGE}`),
      true,
    );
    // DHCP from the stand-in VM's namespace, with busybox udhcpc as the template's init uses it.
    const script = join(root, 'udhcpc.sh');
    writeFileSync(
      script,
      `#!/bin/sh\n[ "$1" = bound ] && echo "ip=$ip router=$router dns=$dns serverid=$serverid hostname=$hostname domain=$domain" > ${root}/lease-$interface-$$\nexit 0\n`,
      { mode: 0o755 },
    );
    inVm(a, 'busybox', [
      'udhcpc',
      '-i',
      'eth0',
      '-n',
      '-q',
      '-t',
      '5',
      '-T',
      '1',
      '-s',
      script,
      '-O',
      'hostname',
      '-O',
      'domain',
    ]);
    const got = sh('sh', ['-c', `cat ${root}/lease-eth0-*`]);
    assert.match(
      got,
      new RegExp(
        `ip=${net}\\.11 router=${net}\\.1 dns=${net}\\.2 serverid=${net}\\.2 hostname=web-1 domain=nimbo.test`,
      ),
    );
    // A VM's NIC that is not its default one gets its address but no default route.
    await hostNet.updateRouter({ name: ROUTER, add: [{ ...entry(2), defaultGateway: false }], remove: [] });
    inVm(b, 'busybox', ['udhcpc', '-i', 'eth0', '-n', '-q', '-t', '5', '-T', '1', '-s', script]);
    assert.match(sh('sh', ['-c', `cat ${root}/lease-eth0-*`]), new RegExp(`ip=${net}\\.12 router= dns=`));
    await hostNet.updateRouter({ name: ROUTER, add: [entry(2)], remove: [] });
    sh('ip', ['-n', a.ns, 'addr', 'add', `${a.ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', b.ns, 'addr', 'add', `${b.ip}/24`, 'dev', 'eth0']);
    // DNS for the VMs' names in the network's domain.
    assert.match(inVm(a, 'busybox', ['nslookup', 'web-2.nimbo.test', routerIp]), new RegExp(`${net}\\.12`));

    const md = `http://${routerIp}/latest`;
    assert.equal(curl(a, `${md}/meta-data/instance-id`), 'uuid-1');
    assert.equal(curl(b, `${md}/meta-data/instance-id`), 'uuid-2');
    assert.equal(curl(a, `${md}/meta-data/local-hostname`), 'web-1');
    assert.equal(curl(b, `${md}/meta-data/local-ipv4`), `${net}.12`);
    assert.equal(curl(a, `${md}/meta-data/public-keys`), 'ssh-ed25519 AAAAkey1 test@nimbo');
    assert.equal(curl(a, `${md}/public-keys`), 'ssh-ed25519 AAAAkey1 test@nimbo', 'the legacy path');
    assert.equal(curl(a, `${md}/meta-data/vm-id`), 'i-2-1-VM');
    assert.equal(curl(a, `${md}/meta-data/service-offering`), 'Small Instance');
    assert.equal(curl(a, `${md}/meta-data/availability-zone`), 'zone-1');
    assert.equal(
      curl(a, `${md}/meta-data/`),
      'availability-zone\ninstance-id\nlocal-hostname\nlocal-ipv4\npublic-hostname\npublic-ipv4\npublic-keys\nservice-offering\nvm-id\n',
    );
    assert.equal(curl(b, `${md}/user-data`), '#!/bin/sh\necho user data 2\n');

    const pw = `http://${routerIp}:8080/`;
    assert.equal(curl(a, pw, 'DomU_Request: send_my_password'), 'Secret-1');
    assert.equal(
      curl(a, pw, 'DomU_Request: send_my_password'),
      'Secret-1',
      'pending until the guest saved it',
    );
    assert.equal(curl(b, pw, 'DomU_Request: send_my_password'), 'saved_password', 'b has no password');
    assert.equal(curl(a, pw, 'DomU_Request: saved_password'), 'saved_password');
    assert.equal(curl(a, pw, 'DomU_Request: send_my_password'), 'saved_password');
    assert.equal(curl(a, pw, 'DomU_Request: something_else'), 'bad_request');
    assert.equal(curl(a, pw), 'bad_request');

    // updateRouter: a new password, b's entry removed, a third entry; effective without a restart.
    const servicePid = Number(readFileSync(join(root, 'routers', ROUTER, 'service.pid'), 'utf8'));
    const t1 = Date.now();
    await hostNet.updateRouter({
      name: ROUTER,
      add: [entry(1, { password: 'Secret-2', hostname: 'web-1b' })],
      remove: [],
    });
    process.stdout.write(`# figure updateRouter: ${Date.now() - t1} ms\n`);
    assert.equal(curl(a, pw, 'DomU_Request: send_my_password'), 'Secret-2');
    assert.equal(curl(a, `${md}/meta-data/local-hostname`), 'web-1b');
    assert.match(inVm(a, 'busybox', ['nslookup', 'web-1b.nimbo.test', routerIp]), new RegExp(`${net}\\.11`));
    await hostNet.updateRouter({ name: ROUTER, add: [entry(3)], remove: [entry(2).mac] });
    assert.match(
      inVm(b, 'curl', ['-s', '-m', '3', '-w', ' %{http_code}', `${md}/meta-data/instance-id`]),
      / 404$/,
    );
    assert.equal(Number(readFileSync(join(root, 'routers', ROUTER, 'service.pid'), 'utf8')), servicePid);
    const dhcpHosts = readFileSync(join(root, 'routers', ROUTER, 'dhcp-hosts'), 'utf8');
    assert.doesNotMatch(dhcpHosts, new RegExp(entry(2).mac));
    assert.match(dhcpHosts, new RegExp(`${entry(3).mac},${net}\\.13,web-3,infinite`));
    // What the router holds, condensed (routerDigest): the server compares it instead of resending.
    const held = await hostNet.routerDigest({ name: ROUTER, entries: true });
    assert.match(held.digest, /^2:/);
    assert.deepEqual(held.entries?.map(([m]) => m).sort(), [entry(1).mac, entry(3).mac].sort());
    assert.equal(new Map(held.entries).get(entry(3).mac), routerEntryHash(entry(3)));
    await assert.rejects(hostNet.routerDigest({ name: 'no-such-router', entries: false }), /is not running/);
    await assert.rejects(
      hostNet.updateRouter({ name: 'no-such-router', add: [], remove: [] }),
      /router no-such-router is not running/,
    );

    // A new agent process takes the router over: the same processes keep serving; a dead one is restarted.
    const dnsmasqPid = Number(readFileSync(join(root, 'routers', ROUTER, 'dnsmasq.pid'), 'utf8'));
    process.kill(dnsmasqPid, 'SIGKILL');
    const restarted = new HostNetwork({
      hostDir: root,
      localAddress: '127.0.0.1',
      applySecurityRules: async () => {},
    });
    await restarted.adopt();
    assert.equal(Number(readFileSync(join(root, 'routers', ROUTER, 'service.pid'), 'utf8')), servicePid);
    const newDnsmasq = Number(readFileSync(join(root, 'routers', ROUTER, 'dnsmasq.pid'), 'utf8'));
    assert.notEqual(newDnsmasq, dnsmasqPid);
    assert.match(inVm(a, 'busybox', ['nslookup', 'web-3.nimbo.test', routerIp]), new RegExp(`${net}\\.13`));

    await assert.rejects(hostNet.teardownNetwork(network()), /still has router/);
    await hostNet.stopRouter(ROUTER);
    await hostNet.stopRouter(ROUTER);
    assert.equal(existsSync(`/run/netns/${ns}`), false);
    assert.equal(existsSync(`/sys/class/net/${routerVeth(ROUTER)}`), false);
    assert.equal(existsSync(join(root, 'routers', ROUTER)), false);
    assert.equal(processAlive(servicePid, 'router-service'), false);
    assert.equal(processAlive(newDnsmasq, 'dnsmasq'), false);
  });

  test('security groups between two stand-in VMs: ingress rules, answers, egress, anti-spoofing, host traffic', async () => {
    await hostNet.setupNetwork(network());
    await hostNet.startRouter(routerSpec([entry(1), entry(2)]));
    const [a, b] = fakeVms.filter((v) => existsSync(`/run/netns/${v.ns}`));
    assert.ok(a && b);
    const icmp: SecurityRule = { protocol: 'icmp', cidrs: ['0.0.0.0/0'] };
    const filter = (vm: FakeVm, ingress: SecurityRule[], egress?: SecurityRule[]): NicFilter => ({
      port: vm.port,
      bridge: BRIDGE,
      mac: vm.mac,
      ip: vm.ip,
      security: { ingress, egress, router: routerIp },
    });
    assert.ok(pings(a.ns, b.ip), 'unfiltered, a reaches b');
    await hostNet.security.apply([filter(a, []), filter(b, [icmp])]);
    assert.ok(pings(a.ns, b.ip), 'b lets ICMP in');
    assert.ok(pings(undefined, b.ip), 'the host reaches b through the same ingress rules');
    assert.equal(pings(b.ns, a.ip), false, 'a lets nothing in');
    assert.equal(pings(undefined, a.ip), false, 'not even the host');
    assert.ok(pings(a.ns, `${net}.1`), 'a reaches the host (egress unrestricted), and the answer comes back');

    // Revoking ICMP on b: enforced at once (measured: apply to first refused ping).
    const t0 = Date.now();
    await hostNet.security.apply([
      filter(b, [{ protocol: 'tcp', startPort: 22, endPort: 22, cidrs: ['0.0.0.0/0'] }]),
    ]);
    const applied = Date.now() - t0;
    assert.equal(pings(a.ns, b.ip), false);
    assert.equal(pings(undefined, b.ip), false);
    process.stdout.write(`# figure rule change -> enforced: ${applied} ms\n`);
    assert.ok(applied < 1000);

    // A rule for one source only.
    await hostNet.security.apply([
      filter(b, [{ protocol: 'icmp', icmpType: 8, icmpCode: 0, cidrs: [`${a.ip}/32`] }]),
    ]);
    assert.ok(pings(a.ns, b.ip));
    assert.equal(pings(undefined, b.ip), false, 'the host address is not in the rule');

    // Anti-spoofing: a forged source address or MAC from a never leaves its port.
    sh('ip', ['-n', a.ns, 'addr', 'add', `${net}.77/24`, 'dev', 'eth0']);
    await hostNet.security.apply([filter(b, [icmp])]);
    assert.ok(pings(a.ns, b.ip, a.ip));
    assert.equal(pings(a.ns, b.ip, `${net}.77`), false, 'forged source address dropped');
    sh('ip', ['-n', a.ns, 'addr', 'del', `${net}.77/24`, 'dev', 'eth0']);
    sh('ip', ['-n', a.ns, 'link', 'set', 'eth0', 'address', '02:00:5e:99:99:99']);
    assert.equal(pings(a.ns, b.ip), false, 'forged MAC dropped');
    sh('ip', ['-n', a.ns, 'link', 'set', 'eth0', 'address', a.mac]);
    sh('ip', ['-n', a.ns, 'neigh', 'flush', 'all']);
    assert.ok(pings(a.ns, b.ip));

    // Egress rules: a may only speak UDP 53; the router's DHCP, DNS and metadata stay reachable.
    await hostNet.security.apply([
      filter(a, [], [{ protocol: 'udp', startPort: 53, endPort: 53, cidrs: ['0.0.0.0/0'] }]),
    ]);
    assert.equal(pings(a.ns, b.ip), false, 'egress denies ICMP');
    assert.equal(curl(a, `http://${routerIp}/latest/meta-data/instance-id`), 'uuid-1');
    assert.match(inVm(a, 'busybox', ['nslookup', 'web-2.nimbo.test', routerIp]), new RegExp(`${net}\\.12`));
    await hostNet.security.apply([filter(a, [], [icmp])]);
    assert.ok(pings(a.ns, b.ip), 'egress allows ICMP again');

    // Removal leaves nothing of those ports in our tables.
    await hostNet.security.remove('vnt');
    const left = await installed();
    assert.deepEqual(
      [...left.chains.map((c) => c.name), ...left.elements.map((e) => e.target)].filter((n) =>
        n.startsWith('vnt'),
      ),
      [],
    );
    assert.ok(pings(b.ns, a.ip), 'unfiltered again');
    await hostNet.stopRouter(ROUTER);
  });
});
