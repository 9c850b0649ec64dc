/**
 * Host networking driven by the server, observed on real simulator hosts: the server runs in this
 * process and so does the agent (the same Agent and SimulatorHost the local zone uses), so the
 * test reads what each host was told — its networks, routers and VM specs — and which commands
 * it received. Covers virtual routers (creation on the first VM start, entries, stop/start/
 * reboot/destroy, permissions and bad input), bridges and VXLAN peers, and security groups
 * resolved into CIDRs on every change.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, type AgentLogger, SimulatorFleet, type SimulatorHost } from '@nimbostack/agent';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig, type ServerConfig } from '../src/config.ts';
import { waitUntil } from './agents.ts';

const TOKEN = 'router-test-token-0123456789';
const silent: AgentLogger = { info() {}, warn() {}, error() {}, debug() {} } as unknown as AgentLogger;
const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (text === undefined || text.test(e.message));

let server: Server;
let config: ServerConfig;
let admin: CloudStackClient;
let user: CloudStackClient;
let agent: Agent;
let fleet: SimulatorFleet;
let dataDir: string;
let agentUrl: string;
let zoneid: string;
let templateid: string;
let offering: string;
let networkid: string;
let accountDomain: string;
const hostIds = new Map<string, string>();
/** Commands each simulated host received, in order. */
const received = new Map<string, string[]>();

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const host = (name: string): SimulatorHost => fleet.hosts.get(name)!;
const count = (name: string, kind: string) => (received.get(name) ?? []).filter((k) => k === kind).length;
const onlyRouter = async () => {
  const r = await admin.request<any>('listRouters', {});
  assert.equal(r.count, 1);
  return r.router[0];
};

async function deploy(name: string, hostName: string, extra: Record<string, unknown> = {}) {
  return (
    await admin.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      name,
      account: 'netuser',
      domainid: accountDomain,
      hostid: hostIds.get(hostName),
      ...extra,
    })
  ).virtualmachine;
}

/** The spec of a running VM as its host holds it (after applySecurityRules, too). */
function specOf(vm: { instancename: string; hostname?: string }) {
  for (const h of fleet.hosts.values()) {
    const v = h.vms.get(vm.instancename);
    if (v) return v.spec;
  }
  throw new Error(`VM ${vm.instancename} runs nowhere`);
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'nimbo-routers-'));
  mkdirSync(join(dataDir, 'primary'));
  mkdirSync(join(dataDir, 'secondary'));
  const agentPort = await freePort();
  config = loadConfig(
    {},
    { port: 0, agentPort, host: '127.0.0.1', dataDir, logLevel: 'silent', seedLocalZone: false },
  );
  server = await startServer(config);
  admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
  const zone = (
    await admin.request<any>('createZone', {
      name: 'rz',
      networktype: 'Basic',
      securitygroupenabled: true,
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      allocationstate: 'Enabled',
    })
  ).zone;
  zoneid = zone.id;
  const pod = (
    await admin.request<any>('createPod', {
      zoneid,
      name: 'rp',
      gateway: '192.168.20.1',
      netmask: '255.255.255.0',
      startip: '192.168.20.10',
      endip: '192.168.20.50',
    })
  ).pod;
  const cluster = (
    await admin.request<any>('addCluster', {
      zoneid,
      podid: pod.id,
      clustername: 'rc',
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  await admin.request('createVlanIpRange', {
    zoneid,
    podid: pod.id,
    gateway: '10.60.0.1',
    netmask: '255.255.255.0',
    startip: '10.60.0.10',
    endip: '10.60.0.20',
    forvirtualnetwork: false,
  });
  await admin.request('createStoragePool', {
    zoneid,
    podid: pod.id,
    clusterid: cluster.id,
    name: 'rprimary',
    url: join(dataDir, 'primary'),
    scope: 'cluster',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'rsecondary',
    provider: 'NFS',
    url: join(dataDir, 'secondary'),
  });
  fleet = new SimulatorFleet();
  const hosts = fleet.addHosts('rt', 2);
  for (const h of hosts) {
    const around = h.around.bind(h);
    h.around = (kind, run) => {
      received.set(h.name, [...(received.get(h.name) ?? []), kind]);
      return around(kind, run);
    };
  }
  agentUrl = `ws://127.0.0.1:${agentPort}`;
  agent = new Agent({
    server: agentUrl,
    token: TOKEN,
    hosts,
    log: silent,
    maxBackoffMs: 300,
  });
  agent.start();
  for (const h of hosts) {
    await waitUntil(async () => server.app.agents.pendingHost(h.name), 10_000, `${h.name} to connect`);
    const added = await admin.request<any>('addHost', {
      zoneid,
      podid: pod.id,
      clusterid: cluster.id,
      url: `agent://${h.name}`,
      username: 'root',
      password: TOKEN,
      hypervisor: 'Simulator',
    });
    hostIds.set(h.name, added.host[0].id);
  }
  templateid = await waitUntil(
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
    20_000,
    'the built-in template',
  );
  offering = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' })).serviceoffering[0]
    .id;
  networkid = (await admin.request<any>('listNetworks', { zoneid })).network[0].id;
  const account = (
    await admin.request<any>('createAccount', {
      username: 'netuser',
      password: 'secret-pass',
      email: 'n@example.com',
      firstname: 'N',
      lastname: 'U',
      accounttype: 0,
    })
  ).account;
  accountDomain = account.domainid;
  user = await CloudStackClient.login(`${server.url}/client/api`, 'netuser', 'secret-pass');
});

after(async () => {
  await agent?.stop();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('virtual routers and host networking', () => {
  let vm1: any;
  let vm2: any;
  let router: any;

  test('the first VM start creates the router on its host, Running, with its entry', async () => {
    assert.deepEqual(await admin.request('listRouters', {}), {}, 'no router before any VM');
    await user.request('createSSHKeyPair', { name: 'k1' });
    vm1 = await deploy('web-1', 'rt-1', {
      userdata: Buffer.from('#cloud-config\nhello: one\n').toString('base64'),
      keypair: 'k1',
    });
    assert.equal(vm1.state, 'Running');
    router = await onlyRouter();
    assert.match(router.name, /^r-\d+-VM$/);
    assert.equal(router.role, 'VIRTUAL_ROUTER');
    assert.equal(router.state, 'Running');
    assert.equal(router.hostid, hostIds.get('rt-1'));
    assert.equal(router.hostname, 'rt-1');
    assert.equal(router.zoneid, zoneid);
    assert.ok(router.podid);
    assert.equal(router.guestnetworkid, networkid);
    assert.equal(router.gateway, '10.60.0.1');
    assert.equal(router.guestnetmask, '255.255.255.0');
    assert.equal(router.dns1, '8.8.8.8');
    assert.equal(router.hypervisor, 'Simulator');
    assert.equal(router.requiresupgrade, false);
    assert.ok(router.version);
    assert.match(router.guestipaddress, /^10\.60\.0\.(1\d|20)$/);
    assert.notEqual(router.guestipaddress, vm1.nic[0].ipaddress);
    assert.match(router.guestmacaddress, /^02:00(:[0-9a-f]{2}){4}$/);
    assert.notEqual(router.guestmacaddress, vm1.nic[0].macaddress);
    assert.equal(router.nic.length, 1);
    assert.equal(router.nic[0].ipaddress, router.guestipaddress);
    assert.equal(router.nic[0].networkid, networkid);

    const onHost = host('rt-1').routers.get(router.name)!;
    assert.ok(onHost, 'the router runs on rt-1');
    assert.equal(onHost.guests.length, 1, 'one guest interface');
    assert.equal(onHost.guests[0]!.ip, router.guestipaddress);
    assert.equal(onHost.guests[0]!.mac, router.guestmacaddress);
    assert.equal(onHost.guests[0]!.network.gateway, '10.60.0.1');
    assert.equal(onHost.guests[0]!.network.cidr, '10.60.0.0/24');
    assert.equal(onHost.vms.length, 1);
    const entry = onHost.vms[0]!;
    assert.equal(entry.mac, vm1.nic[0].macaddress);
    assert.equal(entry.ip, vm1.nic[0].ipaddress);
    assert.equal(entry.hostname, 'web-1');
    assert.equal(entry.instanceId, vm1.id);
    assert.equal(entry.vmName, vm1.instancename);
    assert.equal(Buffer.from(entry.userData!, 'base64').toString(), '#cloud-config\nhello: one\n');
    assert.equal(entry.publicKeys.length, 1);
    assert.match(entry.publicKeys[0]!, /^ssh-rsa /);
    assert.equal(entry.serviceOffering, 'Small Instance');
    assert.equal(entry.availabilityZone, 'rz');
    // The simulator's template is password-enabled: the deploy's password goes to the router.
    assert.equal(entry.password, vm1.password);
    assert.equal(count('rt-1', 'startRouter'), 1);

    const net = [...host('rt-1').networks.values()][0]!;
    assert.equal(net.uuid, networkid);
    assert.ok(net.bridge.length <= 15);
    assert.equal(net.gatewayOnHost, true, 'the router host routes for the guests');
    assert.ok(net.vni && net.vni > 0);
    assert.deepEqual(net.peers, []);

    const nic = specOf(vm1).nics[0]!;
    assert.equal(nic.bridge, net.bridge);
    assert.deepEqual(
      nic.security,
      { ingress: [], router: router.guestipaddress },
      'default group: nothing in, everything out, the router reachable',
    );
  });

  test('a VM on a second host joins over VXLAN and is added to the running router', async () => {
    const web = (await user.request<any>('createSecurityGroup', { name: 'web' })).securitygroup;
    vm2 = await deploy('web-2', 'rt-2', { securitygroupids: web.id });
    assert.equal(vm2.state, 'Running');
    assert.equal(count('rt-1', 'startRouter') + count('rt-2', 'startRouter'), 1, 'started once');
    assert.equal(count('rt-1', 'updateRouter'), 1);
    const onHost = host('rt-1').routers.get(router.name)!;
    assert.deepEqual(onHost.vms.map((e) => e.hostname).sort(), ['web-1', 'web-2']);
    const ip = (n: string) => fleet.hosts.get(n)!.resources().privateIp;
    const n1 = [...host('rt-1').networks.values()][0]!;
    assert.equal(n1.gatewayOnHost, true);
    const n2 = [...host('rt-2').networks.values()][0]!;
    assert.equal(n1.vni, n2.vni);
    assert.equal(n1.bridge, n2.bridge);
    assert.deepEqual(n2.peers, [ip('rt-1')]);
    // The first host learns its new peer alongside the start (not waited for by it).
    await waitUntil(
      async () => [...host('rt-1').networks.values()][0]!.peers.includes(ip('rt-2')),
      5000,
      'rt-1 to learn its peer',
    );
    assert.deepEqual([...host('rt-1').networks.values()][0]!.peers, [ip('rt-2')]);
    assert.equal(n2.gatewayOnHost, false);
    // Another start on a host that already carries the network sends no setupNetwork again.
    const before = count('rt-2', 'setupNetwork');
    await admin.call('stopVirtualMachine', { id: vm2.id });
    await admin.call('startVirtualMachine', { id: vm2.id, hostid: hostIds.get('rt-2') });
    assert.equal(count('rt-2', 'setupNetwork'), before);
    const again = host('rt-1').routers.get(router.name)!;
    assert.equal(again.vms.filter((e) => e.hostname === 'web-2').length, 1);
  });

  test('after a server restart, a start on a host that already carries the network tells no other host', async () => {
    await server.stop();
    server = await startServer(config);
    admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
    user = await CloudStackClient.login(`${server.url}/client/api`, 'netuser', 'secret-pass');
    const ids = await server.app.store.db
      .selectFrom('hosts')
      .select('id')
      .where('name', 'in', ['rt-1', 'rt-2'])
      .execute();
    assert.equal(ids.length, 2);
    await waitUntil(
      async () => ids.every((h) => server.app.agents.isConnected(h.id)),
      10_000,
      'the hosts to reconnect',
    );
    const told = { rt1: count('rt-1', 'setupNetwork'), rt2: count('rt-2', 'setupNetwork') };
    const vm3 = await deploy('web-3', 'rt-1');
    assert.equal(vm3.state, 'Running');
    // The starting host is told on its new connection; rt-2 already has rt-1 as a peer (kernel
    // state survives our restart), so re-sending it the whole view would only cost.
    assert.equal(count('rt-1', 'setupNetwork'), told.rt1 + 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(count('rt-2', 'setupNetwork'), told.rt2);
    await admin.call('destroyVirtualMachine', { id: vm3.id, expunge: true });
  });

  test('rules reach running VMs with peer groups resolved to their members', async () => {
    // default admits SSH from members of web; web admits ICMP from anywhere.
    const dflt = (await user.request<any>('listSecurityGroups', { securitygroupname: 'default' }))
      .securitygroup[0];
    const ssh = (
      await user.call<any>('authorizeSecurityGroupIngress', {
        securitygroupid: dflt.id,
        protocol: 'TCP',
        startport: 22,
        endport: 22,
        'usersecuritygrouplist[0].account': 'netuser',
        'usersecuritygrouplist[0].group': 'web',
      })
    ).securitygroup.ingressrule[0];
    assert.deepEqual(specOf(vm1).nics[0]!.security, {
      ingress: [{ protocol: 'tcp', startPort: 22, endPort: 22, cidrs: [`${vm2.nic[0].ipaddress}/32`] }],
      router: router.guestipaddress,
    });
    const web = (await user.request<any>('listSecurityGroups', { securitygroupname: 'web' }))
      .securitygroup[0];
    await user.call('authorizeSecurityGroupIngress', {
      securitygroupid: web.id,
      protocol: 'icmp',
      icmptype: -1,
      icmpcode: -1,
      cidrlist: '0.0.0.0/0',
    });
    assert.deepEqual(specOf(vm2).nics[0]!.security, {
      ingress: [{ protocol: 'icmp', icmpType: -1, icmpCode: -1, cidrs: ['0.0.0.0/0'] }],
      router: router.guestipaddress,
    });
    const egress = (
      await user.call<any>('authorizeSecurityGroupEgress', {
        securitygroupid: web.id,
        protocol: 'udp',
        startport: 53,
        endport: 53,
        cidrlist: '10.0.0.0/8',
      })
    ).securitygroup.egressrule[0];
    assert.deepEqual(specOf(vm2).nics[0]!.security?.egress, [
      { protocol: 'udp', startPort: 53, endPort: 53, cidrs: ['10.0.0.0/8'] },
    ]);
    await user.call('revokeSecurityGroupEgress', { id: egress.ruleid });
    assert.equal(specOf(vm2).nics[0]!.security?.egress, undefined, 'no egress rule: unrestricted');

    // A member stopping (and starting) changes what the rules that name its group admit.
    await admin.call('stopVirtualMachine', { id: vm2.id });
    assert.deepEqual(specOf(vm1).nics[0]!.security, { ingress: [], router: router.guestipaddress });
    await admin.call('startVirtualMachine', { id: vm2.id, hostid: hostIds.get('rt-2') });
    assert.deepEqual(specOf(vm1).nics[0]!.security?.ingress[0]?.cidrs, [`${vm2.nic[0].ipaddress}/32`]);
    await user.call('revokeSecurityGroupIngress', { id: ssh.ruleid });
    assert.deepEqual(specOf(vm1).nics[0]!.security, { ingress: [], router: router.guestipaddress });
  });

  test('entries survive a stop, leave on expunge; a reset password reaches the router', async () => {
    await admin.call('stopVirtualMachine', { id: vm1.id });
    const entries = () =>
      host('rt-1')
        .routers.get(router.name)!
        .vms.map((e) => e.hostname)
        .sort();
    assert.deepEqual(entries(), ['web-1', 'web-2'], 'a Stopped VM keeps its entry');
    const reset = (await user.call<any>('resetPasswordForVirtualMachine', { id: vm2.id })).virtualmachine;
    assert.equal(
      host('rt-1')
        .routers.get(router.name)!
        .vms.find((e) => e.hostname === 'web-2')?.password,
      reset.password,
    );
    await admin.call('destroyVirtualMachine', { id: vm1.id, expunge: true });
    assert.deepEqual(entries(), ['web-2']);
  });

  test('stopRouter, startRouter, rebootRouter and destroyRouter', async () => {
    const stopped = (await admin.call<any>('stopRouter', { id: router.id })).router;
    assert.equal(stopped.state, 'Stopped');
    assert.equal(stopped.hostid, undefined);
    assert.equal(host('rt-1').routers.size, 0);
    const started = (await admin.call<any>('startRouter', { id: router.id })).router;
    assert.equal(started.state, 'Running');
    assert.equal(started.hostid, hostIds.get('rt-1'), 'back on its last host');
    assert.deepEqual(
      host('rt-1')
        .routers.get(router.name)!
        .vms.map((e) => e.hostname),
      ['web-2'],
    );
    const startsBefore = count('rt-1', 'startRouter');
    const rebooted = (await admin.call<any>('rebootRouter', { id: router.id })).router;
    assert.equal(rebooted.state, 'Running');
    assert.equal(count('rt-1', 'startRouter'), startsBefore + 1);
    const events = await admin.request<any>('listEvents', { resourceid: router.id, pagesize: -1 });
    const types = new Set(events.event?.map((e: any) => e.type));
    for (const t of ['ROUTER.CREATE', 'ROUTER.START', 'ROUTER.STOP', 'ROUTER.REBOOT'])
      assert.ok(types.has(t), t);

    const destroyed = (await admin.call<any>('destroyRouter', { id: router.id })).router;
    assert.equal(destroyed.state, 'Destroyed');
    assert.deepEqual(await admin.request('listRouters', {}), {});
    assert.equal(host('rt-1').routers.size, 0);
    await assert.rejects(admin.call('startRouter', { id: router.id }), is(431));
    // The next VM start brings a new router, with the remaining VM's entry.
    const vm3 = await deploy('web-3', 'rt-2');
    const fresh = await onlyRouter();
    assert.notEqual(fresh.id, router.id);
    assert.equal(fresh.hostid, hostIds.get('rt-2'));
    assert.deepEqual(
      host('rt-2')
        .routers.get(fresh.name)!
        .vms.map((e) => e.hostname)
        .sort(),
      ['web-2', 'web-3'],
    );
    assert.equal([...host('rt-2').networks.values()][0]!.gatewayOnHost, true);
    await waitUntil(
      async () => [...host('rt-1').networks.values()][0]!.gatewayOnHost === false,
      5000,
      'the gateway to leave rt-1',
    );
    router = fresh;
    await admin.call('destroyVirtualMachine', { id: vm3.id, expunge: true });
  });

  test('a host entering maintenance hands its router to another host, as its VMs migrate', async () => {
    assert.equal(router.hostid, hostIds.get('rt-2'));
    await admin.call('prepareHostForMaintenance', { id: hostIds.get('rt-2') });
    const moved = await onlyRouter();
    assert.equal(moved.id, router.id);
    assert.equal(moved.state, 'Running');
    assert.equal(moved.hostid, hostIds.get('rt-1'));
    assert.equal(host('rt-2').routers.size, 0);
    assert.deepEqual(
      host('rt-1')
        .routers.get(moved.name)!
        .vms.map((e) => e.hostname),
      ['web-2'],
    );
    const vm = (await admin.request<any>('listVirtualMachines', { id: vm2.id })).virtualmachine[0];
    assert.equal(vm.hostid, hostIds.get('rt-1'));
    const starts = await admin.request<any>('listEvents', {
      resourceid: router.id,
      type: 'ROUTER.START',
      pagesize: -1,
    });
    assert.ok(
      starts.event.some((e: any) => /moved off host rt-2, entering maintenance/.test(e.description)),
      JSON.stringify(starts.event),
    );
    await admin.call('cancelHostMaintenance', { id: hostIds.get('rt-2') });
    router = moved;
  });

  test('a router whose host goes Down is Stopped, and the next VM start brings it up elsewhere', async () => {
    for (const [name, value] of [
      ['ping.interval', '1'],
      ['ping.timeout', '1.5'],
      ['alert.wait', '1'],
      ['host.down.wait', '1'],
    ])
      await admin.request('updateConfiguration', { name, value });
    // A third host with its own agent, so that it alone can go away.
    const lone = new SimulatorFleet().addHosts('rt-3', 1);
    const agent3 = new Agent({ server: agentUrl, token: TOKEN, hosts: lone, log: silent, maxBackoffMs: 300 });
    agent3.start();
    try {
      await waitUntil(async () => server.app.agents.pendingHost('rt-3'), 10_000, 'rt-3 to connect');
      const cluster = (await admin.request<any>('listClusters', { zoneid })).cluster[0];
      const added = await admin.request<any>('addHost', {
        zoneid,
        podid: cluster.podid,
        clusterid: cluster.id,
        url: 'agent://rt-3',
        username: 'root',
        password: TOKEN,
        hypervisor: 'Simulator',
      });
      hostIds.set('rt-3', added.host[0].id);
      await admin.call('destroyRouter', { id: router.id });
      const vm4 = await deploy('web-4', 'rt-3');
      const onRt3 = await onlyRouter();
      assert.equal(onRt3.hostname, 'rt-3');
      assert.ok(lone[0]!.routers.has(onRt3.name));
      await agent3.stop();
      await waitUntil(
        async () => (await admin.request<any>('listRouters', { id: onRt3.id })).router[0].state === 'Stopped',
        30_000,
        'the router of a Down host to be Stopped',
      );
      const stopped = (await admin.request<any>('listRouters', { id: onRt3.id })).router[0];
      assert.equal(stopped.hostid, undefined);
      // web-2 starts again on rt-2: the router comes back there, with every entry of the network.
      await admin.call('stopVirtualMachine', { id: vm2.id });
      await admin.call('startVirtualMachine', { id: vm2.id, hostid: hostIds.get('rt-2') });
      const back = await onlyRouter();
      assert.equal(back.id, onRt3.id);
      assert.equal(back.state, 'Running');
      assert.equal(back.hostname, 'rt-2');
      assert.deepEqual(
        host('rt-2')
          .routers.get(back.name)!
          .vms.map((e) => e.hostname)
          .sort(),
        ['web-2', 'web-4'],
      );
      router = back;
      await admin.call('destroyVirtualMachine', { id: vm4.id, expunge: true });
    } finally {
      await agent3.stop();
    }
  });

  test('carriers drop a host that went Down from their VXLAN peers at the next start anywhere', async () => {
    const lone = new SimulatorFleet().addHosts('rt-5', 1);
    const agent5 = new Agent({ server: agentUrl, token: TOKEN, hosts: lone, log: silent, maxBackoffMs: 300 });
    agent5.start();
    // Simulated hosts of separate fleets share addresses: the peer lists are compared by length.
    const peersOfRt1 = () => [...host('rt-1').networks.values()][0]!.peers.length;
    try {
      await waitUntil(async () => server.app.agents.pendingHost('rt-5'), 10_000, 'rt-5 to connect');
      const cluster = (await admin.request<any>('listClusters', { zoneid })).cluster[0];
      const added = await admin.request<any>('addHost', {
        zoneid,
        podid: cluster.podid,
        clusterid: cluster.id,
        url: 'agent://rt-5',
        username: 'root',
        password: TOKEN,
        hypervisor: 'Simulator',
      });
      hostIds.set('rt-5', added.host[0].id);
      const vm5 = await deploy('web-5', 'rt-5');
      await waitUntil(async () => peersOfRt1() === 2, 5000, 'rt-1 to learn rt-5');
      await admin.call('destroyVirtualMachine', { id: vm5.id, expunge: true });
      await agent5.stop();
      await waitUntil(
        async () =>
          (await admin.request<any>('listHosts', { id: added.host[0].id })).host[0].state === 'Down',
        30_000,
        'rt-5 to be Down',
      );
      // web-2 restarts on rt-2, a host that already carries the network: rt-1 is updated too.
      await admin.call('stopVirtualMachine', { id: vm2.id });
      await admin.call('startVirtualMachine', { id: vm2.id, hostid: hostIds.get('rt-2') });
      await waitUntil(async () => peersOfRt1() === 1, 5000, 'rt-1 to drop rt-5');
      assert.equal([...host('rt-2').networks.values()][0]!.peers.length, 1);
    } finally {
      await agent5.stop();
    }
  });

  test('deleteHost stops the router there and tears the host bridges down; a host with VMs is refused and keeps them', async () => {
    const lone = new SimulatorFleet().addHosts('rt-4', 1);
    const agent4 = new Agent({ server: agentUrl, token: TOKEN, hosts: lone, log: silent, maxBackoffMs: 300 });
    agent4.start();
    try {
      await waitUntil(async () => server.app.agents.pendingHost('rt-4'), 10_000, 'rt-4 to connect');
      const cluster = (await admin.request<any>('listClusters', { zoneid })).cluster[0];
      const rt4 = (
        await admin.request<any>('addHost', {
          zoneid,
          podid: cluster.podid,
          clusterid: cluster.id,
          url: 'agent://rt-4',
          username: 'root',
          password: TOKEN,
          hypervisor: 'Simulator',
        })
      ).host[0].id;
      hostIds.set('rt-4', rt4);
      await admin.call('destroyRouter', { id: router.id });
      const vm = await deploy('web-5', 'rt-4');
      const onRt4 = await onlyRouter();
      assert.equal(onRt4.hostname, 'rt-4');
      const h4 = lone[0]!;
      assert.ok(h4.routers.has(onRt4.name) && h4.networks.size === 1);
      // Refused while a VM is there: the router and the bridge stay.
      await assert.rejects(admin.request('deleteHost', { id: rt4, forced: true }), is(536, /still has VMs/));
      assert.equal((await onlyRouter()).state, 'Running');
      assert.ok(h4.routers.has(onRt4.name) && h4.networks.size === 1);
      await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
      await admin.request('deleteHost', { id: rt4, forced: true });
      const stopped = (await admin.request<any>('listRouters', { id: onRt4.id })).router[0];
      assert.equal(stopped.state, 'Stopped');
      assert.equal(stopped.hostid, undefined);
      assert.equal(h4.routers.size, 0, 'the router was stopped on the removed host');
      assert.equal(h4.networks.size, 0, 'the removed host keeps no bridge');
      // The next start puts it on a host that stays.
      router = (await admin.call<any>('startRouter', { id: onRt4.id })).router;
      assert.equal(router.state, 'Running');
      assert.notEqual(router.hostname, 'rt-4');
    } finally {
      await agent4.stop();
    }
  });

  test('users cannot see or drive routers; bad input is refused', async () => {
    await assert.rejects(user.request('listRouters', {}), is(432));
    await assert.rejects(user.request('stopRouter', { id: router.id }), is(432));
    await assert.rejects(admin.request('listRouters', { state: 'Flying' }), is(431, /Invalid state/));
    await assert.rejects(admin.request('listRouters', { zoneid: 'not-a-uuid' }), is(431));
    await assert.rejects(
      admin.request('startRouter', { id: '00000000-0000-4000-8000-000000000000' }),
      is(431, /Invalid parameter id value=.* entity does not exist/),
    );
    await assert.rejects(admin.request('stopRouter', {}), is(431));
    await assert.rejects(admin.request('rebootRouter', { id: 'x' }), is(431));
    const filtered = await admin.request<any>('listRouters', { state: 'running', networkid, zoneid });
    assert.equal(filtered.count, 1);
    assert.deepEqual(await admin.request('listRouters', { name: 'r-0-VM' }), {});
    assert.equal((await admin.request<any>('listRouters', { keyword: router.name })).count, 1);
    // % and _ in the keyword are plain characters.
    for (const keyword of ['%', '_', router.name.replace('-', '_')])
      assert.deepEqual(await admin.request('listRouters', { keyword }), {}, keyword);
  });

  test('listRouters: domain administrators see only routers of networks owned in their domains; account and domainid filter', async () => {
    const url = `${server.url}/client/api`;
    const rootDomain = (await admin.request<any>('listDomains', { level: 0 })).domain[0].id;
    const sub = (await admin.request<any>('createDomain', { name: 'rsub' })).domain.id;
    const domainAdmin = async (username: string, domainid: string, path: string) => {
      await admin.request('createAccount', {
        username,
        password: 'secret-pass',
        email: `${username}@example.com`,
        firstname: 'D',
        lastname: 'A',
        accounttype: 2,
        domainid,
      });
      return CloudStackClient.login(url, username, 'secret-pass', path);
    };
    const subAdmin = await domainAdmin('rsubadmin', sub, '/rsub');
    const rootDomainAdmin = await domainAdmin('rrootadmin', rootDomain, '/');
    // The zone's network is owned by the ROOT domain: outside rsub.
    assert.deepEqual(await subAdmin.request('listRouters', { listall: true }), {});
    assert.deepEqual(await subAdmin.request('listRouters', { id: router.id }), {});
    await assert.rejects(subAdmin.request('listRouters', { domainid: rootDomain }), is(531));
    assert.equal((await rootDomainAdmin.request<any>('listRouters', { listall: true })).count, 1);
    // Without listall a domain administrator sees its own account's routers only, as upstream.
    assert.deepEqual(await rootDomainAdmin.request('listRouters', {}), {});
    assert.deepEqual(await admin.request('listRouters', { domainid: sub, isrecursive: true }), {});
    assert.equal((await admin.request<any>('listRouters', { domainid: rootDomain })).count, 1);
    assert.deepEqual(await admin.request('listRouters', { account: 'netuser', domainid: accountDomain }), {});
    await assert.rejects(admin.request('listRouters', { account: 'nobody', domainid: sub }), is(431));
  });

  test('deleteNetwork: refused while a VM is on it; then routers, bridges and the network go, and the next deploy makes a fresh one', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    await assert.rejects(user.request('deleteNetwork', { id: networkid }), is(531));
    await assert.rejects(
      admin.request('deleteNetwork', { id: missing }),
      is(431, /Invalid parameter id value=.* entity does not exist/),
    );
    await assert.rejects(admin.request('deleteNetwork', {}), is(431));
    await assert.rejects(admin.request('deleteNetwork', { id: 'not-a-uuid' }), is(431));

    // web-2 is still there: refused, forced or not, and nothing changes.
    const carrying = () => [...fleet.hosts.values()].filter((h) => h.networks.size > 0).map((h) => h.name);
    const before = { router: await onlyRouter(), carrying: carrying() };
    assert.ok(before.carrying.length > 0);
    for (const forced of [false, true])
      await assert.rejects(
        admin.call('deleteNetwork', { id: networkid, forced }),
        is(530, /not all user VMs are expunged; web-2 \(Running\) still has a NIC/),
      );
    assert.equal((await admin.request<any>('listNetworks', { id: networkid })).count, 1);
    const router = await onlyRouter();
    assert.deepEqual(
      [router.id, router.state, router.hostid],
      [before.router.id, 'Running', before.router.hostid],
    );
    assert.ok(host(router.hostname).routers.has(router.name));
    assert.deepEqual(carrying(), before.carrying);

    await admin.call('destroyVirtualMachine', { id: vm2.id, expunge: true });
    assert.deepEqual(await admin.call('deleteNetwork', { id: networkid }), { success: true });
    assert.deepEqual(await admin.request('listNetworks', { zoneid }), {});
    assert.deepEqual(await admin.request('listNetworks', { id: networkid }), {});
    assert.deepEqual(await admin.request('listRouters', {}), {});
    for (const h of fleet.hosts.values()) {
      assert.equal(h.routers.size, 0, `no router left on ${h.name}`);
      assert.equal(h.networks.size, 0, `no bridge left on ${h.name}`);
    }
    const events = await admin.request<any>('listEvents', { type: 'NETWORK.DELETE', pagesize: -1 });
    assert.ok(
      events.event.some(
        (e: any) => e.state === 'Completed' && e.description === 'deleted network defaultGuestNetwork',
      ),
    );
    assert.ok(
      (await admin.request<any>('listEvents', { type: 'ROUTER.DESTROY', resourceid: router.id })).count >= 1,
    );
    await assert.rejects(admin.call('deleteNetwork', { id: networkid }), is(431, /Unable to find network/));
    // The zone keeps its guest range, attached to no network until the next one takes it.
    const [range] = (await admin.request<any>('listVlanIpRanges', { zoneid })).vlaniprange;
    assert.equal(range.startip, '10.60.0.10');
    assert.equal(range.networkid, undefined);

    // The next deployment makes a new network on that range, with a new router and bridge.
    const vm = await deploy('web-6', 'rt-1');
    assert.equal(vm.state, 'Running');
    const [fresh] = (await admin.request<any>('listNetworks', { zoneid })).network;
    assert.notEqual(fresh.id, networkid);
    assert.equal(fresh.gateway, '10.60.0.1');
    assert.equal(fresh.cidr, '10.60.0.0/24');
    assert.equal(vm.nic[0].networkid, fresh.id);
    assert.match(vm.nic[0].ipaddress, /^10\.60\.0\.(1\d|20)$/);
    const freshRouter = await onlyRouter();
    assert.equal(freshRouter.guestnetworkid, fresh.id);
    assert.equal(freshRouter.state, 'Running');
    const onHost = host('rt-1').routers.get(freshRouter.name)!;
    assert.deepEqual(
      onHost.vms.map((e) => e.hostname),
      ['web-6'],
    );
    assert.equal([...host('rt-1').networks.values()][0]!.uuid, fresh.id);
    assert.equal(
      (await admin.request<any>('listVlanIpRanges', { zoneid })).vlaniprange[0].networkid,
      fresh.id,
    );
    assert.equal(
      (await admin.request<any>('listEvents', { type: 'NETWORK.CREATE', resourceid: fresh.id })).count,
      1,
    );
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('a host that was away when its network was deleted tears it down when it comes back', async () => {
    // rt-3's and rt-5's agents stopped in earlier tests: the deletion skipped them and recorded it.
    const db = server.app.store.db;
    const idOf = async (name: string) =>
      (await db.selectFrom('hosts').select('id').where('name', '=', name).executeTakeFirstOrThrow()).id;
    const [rt3, rt5] = [await idOf('rt-3'), await idOf('rt-5')];
    const pendingHosts = async () =>
      (await db.selectFrom('network_teardowns').select('host_id').orderBy('host_id').execute()).map(
        (r) => r.host_id,
      );
    assert.deepEqual(await pendingHosts(), [rt3, rt5]);
    const lone = new SimulatorFleet().addHosts('rt-3', 1);
    const told: string[] = [];
    const around = lone[0]!.around.bind(lone[0]);
    lone[0]!.around = (kind, run) => {
      told.push(kind);
      return around(kind, run);
    };
    const agent3 = new Agent({ server: agentUrl, token: TOKEN, hosts: lone, log: silent, maxBackoffMs: 300 });
    agent3.start();
    try {
      await waitUntil(async () => told.includes('teardownNetwork'), 10_000, 'rt-3 to be told');
      await waitUntil(async () => (await pendingHosts()).length === 1, 5000, "rt-3's teardown to be settled");
      assert.deepEqual(await pendingHosts(), [rt5], 'rt-5 is still away');
    } finally {
      await agent3.stop();
    }
  });
});
