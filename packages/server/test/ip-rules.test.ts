/**
 * The rules on public addresses through the API, checked against what the network's router was
 * told (a simulator agent in this process records applyRouterRules): firewall and egress rules,
 * port forwarding with the firewall rule it opens, static NAT and IP forwarding rules; conflicts
 * and bad input refused with upstream's codes and nothing changed; a router that refuses leaves
 * no record claiming what it does not do; accounts never reach each other's rules; the rules a VM
 * is the target of go with it (removeVmRules).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CloudStackClient } from '@nimbostack/client';
import { removeVmRules } from '../src/network/ip-rules.ts';
import { applyNetworkRules } from '../src/network/routers.ts';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';

let z: AdvancedZone;
let alice: CloudStackClient;
let bob: CloudStackClient;
let net: any;
let net2: any;
let vm1: any;
let vm2: any;
let other: any;
let bobVm: any;
let sourceNat: any;
let router: { name: string; hostid: string };

const rules = () => z.routerOn(router.name)!.spec.rules;
const deploy = async (client: CloudStackClient, networkid: string, name: string) =>
  (
    await client.call<any>('deployVirtualMachine', {
      zoneid: z.zoneid,
      templateid: z.templateid,
      serviceofferingid: z.offering,
      networkids: networkid,
      name,
    })
  ).virtualmachine;
const newIp = async () => (await alice.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
const count = async (command: string, params: Record<string, string> = {}) =>
  (await alice.request<any>(command, params)).count ?? 0;
const failNextApply = (message: string) =>
  z.admin.request('configureSimulator', {
    name: 'applyRouterRules',
    value: `result:fail;message:${message}`,
    count: 1,
    hostid: router.hostid,
  });

before(async () => {
  z = await startAdvancedZone({ publicIps: 20 });
  alice = await z.createUser('alice');
  bob = await z.createUser('bob');
  const create = (client: CloudStackClient, name: string) =>
    client.request<any>('createNetwork', { name, zoneid: z.zoneid, networkofferingid: z.isolatedOffering });
  net = (await create(alice, 'front')).network;
  net2 = (await create(alice, 'back')).network;
  vm1 = await deploy(alice, net.id, 'web-1');
  vm2 = await deploy(alice, net.id, 'web-2');
  other = await deploy(alice, net2.id, 'db-1');
  bobVm = await deploy(bob, (await create(bob, 'bobs')).network.id, 'bob-1');
  sourceNat = (
    await alice.request<any>('listPublicIpAddresses', { associatednetworkid: net.id, issourcenat: true })
  ).publicipaddress[0];
  const r = await z.routerOf(net.id);
  router = { name: r.name, hostid: r.hostid };
});

after(async () => {
  await z?.stop();
});

describe('firewall rules', () => {
  let ssh: any;

  test('createFirewallRule: Active, in the shape upstream answers, and on the router', async () => {
    ssh = (
      await alice.call<any>('createFirewallRule', {
        ipaddressid: sourceNat.id,
        protocol: 'tcp',
        startport: 22,
        endport: 22,
        cidrlist: '0.0.0.0/0',
      })
    ).firewallrule;
    assert.equal(ssh.state, 'Active');
    assert.equal(ssh.protocol, 'tcp');
    assert.equal(ssh.startport, 22);
    assert.equal(ssh.endport, 22);
    assert.equal(ssh.ipaddressid, sourceNat.id);
    assert.equal(ssh.ipaddress, sourceNat.ipaddress);
    assert.equal(ssh.networkid, net.id);
    assert.equal(ssh.cidrlist, '0.0.0.0/0');
    assert.equal(ssh.fordisplay, true);
    assert.deepEqual(ssh.tags, []);
    assert.deepEqual(
      rules().firewall.find((f: any) => f.startPort === 22),
      {
        publicIp: sourceNat.ipaddress,
        protocol: 'tcp',
        startPort: 22,
        endPort: 22,
        sourceCidrs: [],
        destCidrs: [],
      },
    );
    const listed = await alice.request<any>('listFirewallRules', { ipaddressid: sourceNat.id });
    assert.deepEqual(
      listed.firewallrule.map((r: any) => r.id),
      [ssh.id],
    );
    const icmp = (
      await alice.call<any>('createFirewallRule', { ipaddressid: sourceNat.id, protocol: 'icmp' })
    ).firewallrule;
    assert.equal(icmp.icmptype, -1);
    assert.equal(icmp.icmpcode, -1);
    const office = (
      await alice.call<any>('createFirewallRule', {
        ipaddressid: sourceNat.id,
        protocol: 'tcp',
        startport: 22,
        cidrlist: '198.51.100.0/24',
      })
    ).firewallrule;
    assert.ok(
      rules().firewall.some((f: any) => f.sourceCidrs[0] === '198.51.100.0/24'),
      'other sources do not conflict',
    );
    await alice.call('deleteFirewallRule', { id: office.id });
    await alice.call('deleteFirewallRule', { id: icmp.id });
  });

  test('duplicates and bad input are refused with upstream codes and change nothing', async () => {
    const before = { listed: await count('listFirewallRules'), router: JSON.stringify(rules()) };
    const bad: [Record<string, string | number>, (e: any) => boolean][] = [
      [
        { protocol: 'tcp', startport: 22, endport: 22 },
        is(537, /The range specified, 22-22, conflicts with rule/),
      ],
      [
        { protocol: 'tcp', startport: 20, endport: 25, cidrlist: '0.0.0.0/0' },
        is(537, /conflicts with rule/),
      ],
      [{ protocol: 'all' }, is(537)],
      [{ protocol: 'gre' }, is(431, /Invalid protocol/)],
      [{ protocol: 'tcp', startport: 70000 }, is(431)],
      [{ protocol: 'tcp', startport: 30, endport: 20 }, is(431)],
      [{ protocol: 'tcp', startport: 80, icmptype: 8 }, is(431, /ICMP/i)],
      [{ protocol: 'icmp', startport: 80 }, is(431)],
      [{ protocol: 'tcp', startport: 80, cidrlist: '10.0.0.0/33' }, is(431, /cidr/i)],
      [{ protocol: 'tcp', startport: 80, type: 'system' }, is(431, /user/)],
    ];
    for (const [params, check] of bad)
      await assert.rejects(
        alice.request('createFirewallRule', { ipaddressid: sourceNat.id, ...params }),
        check,
        JSON.stringify(params),
      );
    await assert.rejects(
      alice.request('createFirewallRule', {
        ipaddressid: '00000000-0000-4000-8000-000000000000',
        protocol: 'tcp',
      }),
      is(431, /Invalid parameter ipaddressid value=.* entity does not exist/),
    );
    assert.equal(await count('listFirewallRules'), before.listed);
    assert.equal(JSON.stringify(rules()), before.router);
  });

  test('other accounts cannot see, add to or remove the rules (531)', async () => {
    await assert.rejects(
      bob.request('createFirewallRule', { ipaddressid: sourceNat.id, protocol: 'tcp', startport: 80 }),
      is(531),
    );
    await assert.rejects(bob.request('deleteFirewallRule', { id: ssh.id }), is(531));
    await assert.rejects(bob.request('updateFirewallRule', { id: ssh.id, fordisplay: false }), is(531));
    assert.deepEqual(await bob.request('listFirewallRules', {}), {});
    assert.deepEqual(await bob.request('listFirewallRules', { ipaddressid: sourceNat.id }), {});
    const all = await z.admin.request<any>('listFirewallRules', { listall: true });
    assert.ok(all.firewallrule.some((r: any) => r.id === ssh.id));
  });

  test('a delete the router refuses leaves the rule Active; then it goes', async () => {
    await failNextApply('nft busy');
    await assert.rejects(alice.call('deleteFirewallRule', { id: ssh.id }), is(530, /nft busy/));
    const still = (await alice.request<any>('listFirewallRules', { id: ssh.id })).firewallrule[0];
    assert.equal(still.state, 'Active');
    assert.ok(rules().firewall.some((f: any) => f.startPort === 22));
    await alice.call('deleteFirewallRule', { id: ssh.id });
    assert.ok(!rules().firewall.some((f: any) => f.startPort === 22));
    assert.equal(await count('listFirewallRules', { id: ssh.id }).catch(() => 'gone'), 'gone');
  });
});

describe('egress firewall rules', () => {
  test('created on the network within its guest CIDR, applied, listed and deleted', async () => {
    const rule = (
      await alice.call<any>('createEgressFirewallRule', {
        networkid: net.id,
        protocol: 'tcp',
        startport: 443,
        endport: 443,
        cidrlist: '10.1.1.0/24',
        destcidrlist: '192.0.2.0/24',
      })
    ).firewallrule;
    assert.equal(rule.state, 'Active');
    assert.equal(rule.cidrlist, '10.1.1.0/24');
    assert.equal(rule.destcidrlist, '192.0.2.0/24');
    assert.equal(rule.networkid, net.id);
    assert.equal(rule.traffictype, 'Egress');
    assert.deepEqual(rules().egress, [
      {
        protocol: 'tcp',
        startPort: 443,
        endPort: 443,
        sourceCidrs: ['10.1.1.0/24'],
        destCidrs: ['192.0.2.0/24'],
      },
    ]);
    assert.equal(await count('listEgressFirewallRules', { networkid: net.id }), 1);
    assert.equal(await count('listFirewallRules'), 0, 'egress rules are not ingress rules');
    await assert.rejects(
      alice.request('createEgressFirewallRule', {
        networkid: net.id,
        protocol: 'tcp',
        startport: 440,
        endport: 450,
        destcidrlist: '192.0.2.0/24',
      }),
      is(537, /440-450, conflicts with rule/),
    );
    await assert.rejects(
      alice.request('createEgressFirewallRule', {
        networkid: net.id,
        protocol: 'udp',
        cidrlist: '192.168.0.0/24',
      }),
      is(431, /not within/),
    );
    await assert.rejects(
      bob.request('createEgressFirewallRule', { networkid: net.id, protocol: 'udp' }),
      is(531),
    );
    assert.equal(await count('listEgressFirewallRules', { networkid: net.id }), 1);
    await alice.call('deleteEgressFirewallRule', { id: rule.id });
    assert.deepEqual(rules().egress, []);
  });
});

describe('port forwarding', () => {
  let ip: any;
  let pf: any;

  before(async () => {
    ip = await newIp();
  });

  test('createPortForwardingRule: applied with the firewall rule it opens', async () => {
    pf = (
      await alice.call<any>('createPortForwardingRule', {
        ipaddressid: ip.id,
        protocol: 'tcp',
        publicport: 8080,
        privateport: 80,
        virtualmachineid: vm1.id,
      })
    ).portforwardingrule;
    assert.equal(pf.state, 'Active');
    assert.equal(pf.publicport, '8080');
    assert.equal(pf.publicendport, '8080');
    assert.equal(pf.privateport, '80');
    assert.equal(pf.privateendport, '80');
    assert.equal(pf.virtualmachineid, vm1.id);
    assert.equal(pf.virtualmachinename, 'web-1');
    assert.equal(pf.vmguestip, vm1.nic[0].ipaddress);
    assert.equal(pf.ipaddress, ip.ipaddress);
    assert.equal(pf.networkid, net.id);
    assert.deepEqual(rules().portForwards, [
      {
        publicIp: ip.ipaddress,
        protocol: 'tcp',
        publicStart: 8080,
        publicEnd: 8080,
        privateIp: vm1.nic[0].ipaddress,
        privateStart: 80,
        privateEnd: 80,
      },
    ]);
    const opened = (await alice.request<any>('listFirewallRules', { ipaddressid: ip.id })).firewallrule;
    assert.equal(opened.length, 1);
    assert.equal(opened[0].startport, 8080);
    assert.equal(opened[0].cidrlist, '0.0.0.0/0');
    assert.deepEqual(
      (await alice.request<any>('listPortForwardingRules', { ipaddressid: ip.id })).portforwardingrule.map(
        (r: any) => r.id,
      ),
      [pf.id],
    );
    const closed = (
      await alice.call<any>('createPortForwardingRule', {
        ipaddressid: ip.id,
        protocol: 'udp',
        publicport: 8080,
        privateport: 80,
        virtualmachineid: vm2.id,
        openfirewall: false,
      })
    ).portforwardingrule;
    assert.equal(
      await count('listFirewallRules', { ipaddressid: ip.id }),
      1,
      'openfirewall=false opens nothing',
    );
    await alice.call('deletePortForwardingRule', { id: closed.id });
  });

  test('conflicts and bad input: 537, 531 and 431 as upstream, nothing changed', async () => {
    const before = {
      pf: await count('listPortForwardingRules'),
      fw: await count('listFirewallRules'),
      router: JSON.stringify(rules()),
    };
    const base = { ipaddressid: ip.id, protocol: 'tcp', virtualmachineid: vm2.id };
    const bad: [CloudStackClient, Record<string, string | number>, (e: any) => boolean][] = [
      [
        alice,
        { ...base, publicport: 8000, publicendport: 8090, privateport: 8000, privateendport: 8090 },
        is(537, /The range specified, 8000-8090, conflicts with rule .* which has 8080-8080/),
      ],
      [alice, { ...base, publicport: 9000, publicendport: 9001, privateport: 80 }, is(431, /same size/)],
      [alice, { ...base, publicport: 0, privateport: 80 }, is(431)],
      [alice, { ...base, publicport: 9000, privateport: 65536 }, is(431)],
      [alice, { ...base, protocol: 'icmp', publicport: 9000, privateport: 80 }, is(431, /tcp or udp/)],
      [
        alice,
        { ...base, publicport: 9000, privateport: 80, virtualmachineid: other.id },
        is(431, /no NIC in network/),
      ],
      [alice, { ...base, publicport: 9000, privateport: 80, vmguestip: '10.9.9.9' }, is(431, /no guest IP/)],
      [alice, { ...base, publicport: 9000, privateport: 80, virtualmachineid: bobVm.id }, is(531)],
      [bob, { ...base, publicport: 9000, privateport: 80, virtualmachineid: bobVm.id }, is(531)],
      [alice, { ...base, publicport: 9000, privateport: 80, networkid: net2.id }, is(431, /not associated/)],
    ];
    for (const [client, params, check] of bad)
      await assert.rejects(client.request('createPortForwardingRule', params), check, JSON.stringify(params));
    assert.equal(await count('listPortForwardingRules'), before.pf);
    assert.equal(await count('listFirewallRules'), before.fw);
    assert.equal(JSON.stringify(rules()), before.router);
  });

  test('updatePortForwardingRule moves the target; the router follows', async () => {
    const moved = (
      await alice.call<any>('updatePortForwardingRule', {
        id: pf.id,
        privateport: 8081,
        virtualmachineid: vm2.id,
      })
    ).portforwardingrule;
    assert.equal(moved.privateport, '8081');
    assert.equal(moved.virtualmachineid, vm2.id);
    assert.deepEqual(
      rules().portForwards.map((r: any) => [r.privateIp, r.privateStart]),
      [[vm2.nic[0].ipaddress, 8081]],
    );
    await assert.rejects(alice.request('updatePortForwardingRule', { id: pf.id, privateport: 0 }), is(431));
  });

  test('when the router refuses a new rule, it and its firewall rule are deleted and the job says why', async () => {
    const before = {
      pf: await count('listPortForwardingRules'),
      fw: await count('listFirewallRules'),
      router: JSON.stringify(rules()),
    };
    await failNextApply('table full');
    await assert.rejects(
      alice.call('createPortForwardingRule', {
        ipaddressid: ip.id,
        protocol: 'tcp',
        publicport: 2222,
        privateport: 22,
        virtualmachineid: vm1.id,
      }),
      is(530, /apply port forwarding rule .*table full/),
    );
    assert.equal(await count('listPortForwardingRules'), before.pf);
    assert.equal(await count('listFirewallRules'), before.fw);
    assert.equal(JSON.stringify(rules()), before.router);
    const failedUpdate = failNextApply('still full');
    await failedUpdate;
    await assert.rejects(
      alice.call('updatePortForwardingRule', { id: pf.id, privateport: 9090 }),
      is(530, /still full/),
    );
    assert.equal(
      (await alice.request<any>('listPortForwardingRules', { id: pf.id })).portforwardingrule[0].privateport,
      '8081',
    );
  });

  test('deletePortForwardingRule removes it and its firewall rule from records and router', async () => {
    await assert.rejects(bob.request('deletePortForwardingRule', { id: pf.id }), is(531));
    await alice.call('deletePortForwardingRule', { id: pf.id });
    assert.deepEqual(rules().portForwards, []);
    assert.equal(await count('listFirewallRules', { ipaddressid: ip.id }), 0);
    assert.equal(await count('listPortForwardingRules'), 0);
  });
});

describe('static NAT and IP forwarding rules', () => {
  let ip: any;

  before(async () => {
    ip = await newIp();
  });

  test('enableStaticNat maps the address to the VM, on the router and in the lists', async () => {
    const r = await alice.request<any>('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: vm2.id });
    assert.equal(r.success, true);
    assert.deepEqual(rules().staticNats, [{ publicIp: ip.ipaddress, privateIp: vm2.nic[0].ipaddress }]);
    const listed = (await alice.request<any>('listPublicIpAddresses', { id: ip.id })).publicipaddress[0];
    assert.equal(listed.isstaticnat, true);
    assert.equal(listed.virtualmachineid, vm2.id);
    assert.equal(listed.vmipaddress, vm2.nic[0].ipaddress);
    assert.equal((await alice.request<any>('listPublicIpAddresses', { isstaticnat: true })).count, 1);
  });

  test('refusals: source NAT, forwarding on a static-NAT address, a second address for the VM, others', async () => {
    const before = JSON.stringify(rules());
    await assert.rejects(
      alice.request('enableStaticNat', { ipaddressid: sourceNat.id, virtualmachineid: vm1.id }),
      is(431, /source NAT/),
    );
    await assert.rejects(
      alice.request('createPortForwardingRule', {
        ipaddressid: ip.id,
        protocol: 'tcp',
        publicport: 80,
        privateport: 80,
        virtualmachineid: vm2.id,
      }),
      is(537, /static NAT/),
    );
    const second = await newIp();
    await assert.rejects(
      alice.request('enableStaticNat', { ipaddressid: second.id, virtualmachineid: vm2.id }),
      is(431, /already has static NAT/),
    );
    await assert.rejects(
      alice.request('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: vm1.id }),
      is(537, /another VM/),
    );
    await assert.rejects(
      bob.request('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: bobVm.id }),
      is(531),
    );
    await alice.call('createPortForwardingRule', {
      ipaddressid: second.id,
      protocol: 'tcp',
      publicport: 80,
      privateport: 80,
      virtualmachineid: vm1.id,
    });
    await assert.rejects(
      alice.request('enableStaticNat', { ipaddressid: second.id, virtualmachineid: vm1.id }),
      is(537, /PortForwarding rules/),
    );
    await assert.rejects(
      alice.request('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: other.id }),
      (e: any) => e.errorcode === 537 || e.errorcode === 431,
    );
    await alice.call('disassociateIpAddress', { id: second.id });
    assert.deepEqual(rules().staticNats, JSON.parse(before).staticNats);
    assert.deepEqual(rules().portForwards, []);
  });

  test('IP forwarding rules list the static NAT mapping with its ports; deleting one closes its firewall', async () => {
    const rule = (
      await alice.call<any>('createIpForwardingRule', { ipaddressid: ip.id, protocol: 'tcp', startport: 22 })
    ).portforwardingrule;
    assert.equal(rule.state, 'Active');
    assert.equal(rule.virtualmachineid, vm2.id);
    assert.equal(rule.ipaddress, ip.ipaddress);
    assert.equal(rule.publicport, '22');
    const listed = await alice.request<any>('listIpForwardingRules', { virtualmachineid: vm2.id });
    assert.deepEqual(
      listed.ipforwardingrule.map((r: any) => r.id),
      [rule.id],
    );
    assert.ok(rules().firewall.some((f: any) => f.publicIp === ip.ipaddress && f.startPort === 22));
    assert.deepEqual(await bob.request('listIpForwardingRules', {}), {});
    await alice.call('deleteIpForwardingRule', { id: rule.id });
    assert.equal(await count('listIpForwardingRules'), 0);
    assert.ok(!rules().firewall.some((f: any) => f.publicIp === ip.ipaddress));
    const plain = await newIp();
    await assert.rejects(
      alice.request('createIpForwardingRule', { ipaddressid: plain.id, protocol: 'tcp', startport: 22 }),
      is(431, /static NAT is not enabled/),
    );
    await alice.call('disassociateIpAddress', { id: plain.id });
  });

  test('a refused enable leaves no mapping; disableStaticNat removes it and its IP forwarding rules', async () => {
    await alice.call('createIpForwardingRule', { ipaddressid: ip.id, protocol: 'udp', startport: 53 });
    await alice.call('disableStaticNat', { ipaddressid: ip.id });
    assert.deepEqual(rules().staticNats, []);
    assert.equal(await count('listIpForwardingRules'), 0);
    assert.equal(await count('listFirewallRules', { ipaddressid: ip.id }), 0);
    await assert.rejects(alice.request('disableStaticNat', { ipaddressid: ip.id }), is(431, /not enabled/));
    await failNextApply('router away');
    await assert.rejects(
      alice.request('enableStaticNat', { ipaddressid: ip.id, virtualmachineid: vm1.id }),
      is(530, /router away/),
    );
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { id: ip.id })).publicipaddress[0].isstaticnat,
      false,
    );
    assert.deepEqual(rules().staticNats, []);
  });
});

describe('Ansible (ngine_io.cloudstack) drives addresses and rules', { skip: !existsSync(PYTHON) }, () => {
  async function playbook(state: 'present' | 'absent', key: string, secret: string) {
    const { stdout } = await run(
      'ansible-playbook',
      [
        '-i',
        'localhost,',
        '-e',
        `rule_state=${state}`,
        join(import.meta.dirname, 'clients/ansible_public_ips.yml'),
      ],
      {
        env: {
          ...process.env,
          CLOUDSTACK_ENDPOINT: `${z.server.url}/client/api`,
          CLOUDSTACK_KEY: key,
          CLOUDSTACK_SECRET: secret,
          ANSIBLE_PYTHON_INTERPRETER: PYTHON,
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_LOCALHOST_WARNING: 'false',
          ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false',
        },
        timeout: 180_000,
      },
    ).catch((e) => {
      throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
    });
    const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
    assert.ok(recap, stdout);
    return { changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
  }

  test('cs_ip_address, cs_firewall, cs_portforward and cs_staticnat: applied, a second run changes nothing, absent undoes', async () => {
    const me = (await alice.request<any>('listAccounts', {})).account[0];
    const keys = await z.admin.request<any>('registerUserKeys', { id: me.user[0].id });
    const { apikey, secretkey } = keys.userkeys;
    const heldBefore = (await alice.request<any>('listPublicIpAddresses', {})).count;
    await z.admin.request('createVlanIpRange', {
      zoneid: z.zoneid,
      forvirtualnetwork: true,
      gateway: '203.0.113.1',
      netmask: '255.255.255.0',
      startip: '203.0.113.200',
      endip: '203.0.113.201',
    });
    const first = await playbook('present', apikey, secretkey);
    assert.equal(first.failed, 0, first.out);
    assert.ok(first.changed >= 6, first.out);
    const web = { ipaddress: '203.0.113.200' };
    const nat = { ipaddress: '203.0.113.201' };
    const held = (await alice.request<any>('listPublicIpAddresses', { zoneid: z.zoneid })).publicipaddress;
    assert.ok(
      held.some(
        (i: any) => i.ipaddress === nat.ipaddress && i.isstaticnat && i.virtualmachinename === 'web-2',
      ),
    );
    assert.ok(rules().firewall.some((f: any) => f.publicIp === web.ipaddress && f.startPort === 443));
    assert.ok(
      rules().portForwards.some(
        (p: any) => p.publicIp === web.ipaddress && p.publicStart === 8443 && p.privateStart === 443,
      ),
    );
    assert.ok(
      rules().staticNats.some(
        (n: any) => n.publicIp === nat.ipaddress && n.privateIp === vm2.nic[0].ipaddress,
      ),
    );
    assert.ok(rules().egress.some((e: any) => e.startPort === 80));
    const again = await playbook('present', apikey, secretkey);
    assert.equal(again.failed, 0, again.out);
    assert.equal(again.changed, 0, again.out);
    const gone = await playbook('absent', apikey, secretkey);
    assert.equal(gone.failed, 0, gone.out);
    assert.equal((await alice.request<any>('listPublicIpAddresses', {})).count, heldBefore);
    assert.ok(!rules().portForwards.some((p: any) => p.publicIp === web.ipaddress));
    assert.ok(!rules().staticNats.some((n: any) => n.publicIp === nat.ipaddress));
    assert.ok(!rules().egress.some((e: any) => e.startPort === 80));
  });
});

describe('a VM that goes', () => {
  test('expunging it removes its forwarding rules, their firewall rules and its static NAT', async () => {
    const ip = await newIp();
    const nat = await newIp();
    await alice.call('createPortForwardingRule', {
      ipaddressid: ip.id,
      protocol: 'tcp',
      publicport: 443,
      privateport: 443,
      virtualmachineid: vm1.id,
    });
    await alice.request('enableStaticNat', { ipaddressid: nat.id, virtualmachineid: vm1.id });
    assert.equal(rules().portForwards.length, 1);
    assert.equal(rules().staticNats.length, 1);
    await z.admin.call('destroyVirtualMachine', { id: vm1.id, expunge: true });
    assert.deepEqual(rules().portForwards, []);
    assert.deepEqual(rules().staticNats, []);
    assert.equal(await count('listPortForwardingRules'), 0);
    assert.equal(await count('listFirewallRules', { ipaddressid: ip.id }), 0);
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { id: nat.id })).publicipaddress[0].isstaticnat,
      false,
    );
  });

  test('removeVmRules names the networks to re-apply and leaves nothing pointing at the VM', async () => {
    const app = z.server.app;
    const ip = await newIp();
    await alice.call('createPortForwardingRule', {
      ipaddressid: ip.id,
      protocol: 'udp',
      publicport: 53,
      privateport: 53,
      virtualmachineid: vm2.id,
    });
    const vmId = (
      await app.store.db.selectFrom('vms').select('id').where('uuid', '=', vm2.id).executeTakeFirstOrThrow()
    ).id;
    const networks = await app.store.db.transaction().execute((tx) => removeVmRules(tx, vmId));
    const netId = (
      await app.store.db
        .selectFrom('networks')
        .select('id')
        .where('uuid', '=', net.id)
        .executeTakeFirstOrThrow()
    ).id;
    assert.deepEqual(networks, [netId]);
    for (const n of networks) await applyNetworkRules(app, n);
    assert.deepEqual(rules().portForwards, []);
    const left = await app.store.db.selectFrom('ip_rules').select('id').where('vm_id', '=', vmId).execute();
    assert.deepEqual(left, []);
  });
});
