/**
 * Isolated networks driven by the third-party clients CloudStack users run, against the real
 * server with an Advanced zone on simulator hosts: Ansible's cs_network (created, unchanged on a
 * second run, updated, restarted with clean up, deleted) and libcloud's CloudStack compute driver
 * (network, node, address, port forward, firewall and egress rules, all listed back and undone);
 * a VPC with a network ACL'd tier through cs_vpc, cs_network_acl, cs_network_acl_rule and
 * cs_network (idempotent), a tier VM's port forward and static NAT through cs_ip_address,
 * cs_portforward and cs_staticnat, and libcloud's VPC and ACL calls.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CloudStackClient } from '@nimbostack/client';
import { type AdvancedZone, startAdvancedZone } from './public-ip-zone.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CLIENTS = join(import.meta.dirname, 'clients');

let zone: AdvancedZone;
let carol: CloudStackClient;
let key: string;
let secret: string;
let zoneName: string;

before(async () => {
  zone = await startAdvancedZone({ publicIps: 8 });
  carol = await zone.createUser('carol');
  const user = (await zone.admin.request<any>('listUsers', { username: 'carol', listall: true })).user[0];
  const keys = await zone.admin.request<any>('registerUserKeys', { id: user.id });
  key = keys.userkeys.apikey;
  secret = keys.userkeys.secretkey;
  zoneName = (await zone.admin.request<any>('listZones', { id: zone.zoneid })).zone[0].name;
  // libcloud's destroy_node(ex_expunge=True) is how its users clear a network for deletion.
  await zone.admin.request('updateConfiguration', { name: 'allow.user.expunge.recover.vm', value: 'true' });
});
after(() => zone?.stop());

const clientEnv = () => ({
  ...process.env,
  CLOUDSTACK_ENDPOINT: `${zone.server.url}/client/api`,
  CLOUDSTACK_KEY: key,
  CLOUDSTACK_SECRET: secret,
  ANSIBLE_PYTHON_INTERPRETER: PYTHON,
  ANSIBLE_NOCOLOR: '1',
  ANSIBLE_LOCALHOST_WARNING: 'false',
  ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false',
});

async function playbook(vars: Record<string, string>) {
  const extra = Object.entries({ zone: zoneName, ...vars }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  const { stdout } = await run(
    'ansible-playbook',
    ['-i', 'localhost,', ...extra, join(CLIENTS, 'ansible_isolated_network.yml')],
    { env: clientEnv(), timeout: 120_000 },
  ).catch((e) => {
    throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
  });
  const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
  assert.ok(recap, stdout);
  return { changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
}

const mine = async () => (await carol.request<any>('listNetworks', {})).network ?? [];

describe('Ansible cs_network', { skip: !existsSync(PYTHON) }, () => {
  test('creates an isolated network, changes nothing on a second run, updates it and deletes it', async () => {
    const first = await playbook({});
    assert.equal(first.failed, 0, first.out);
    assert.equal(first.changed, 1, first.out);
    const [net] = await mine();
    assert.equal(net.name, 'ans-tier');
    assert.equal(net.cidr, '10.20.30.0/24');
    assert.equal(net.type, 'Isolated');
    assert.equal(net.state, 'Allocated');

    const second = await playbook({});
    assert.equal(second.failed, 0, second.out);
    assert.equal(second.changed, 0, second.out);

    const third = await playbook({ net_text: 'Ansible_front' });
    assert.equal(third.failed, 0, third.out);
    assert.equal(third.changed, 1, third.out);
    assert.equal((await mine())[0].displaytext, 'Ansible_front');

    const gone = await playbook({ net_state: 'absent' });
    assert.equal(gone.failed, 0, gone.out);
    assert.equal(gone.changed, 1, gone.out);
    assert.deepEqual(await mine(), []);
  });
});

describe('libcloud CloudStack compute driver', { skip: !existsSync(PYTHON) }, () => {
  test('a network, a node in it, an address with a port forward, firewall and egress rules, and back', async () => {
    const { stdout } = await run(
      PYTHON,
      [join(CLIENTS, 'libcloud_isolated.py'), `${zone.server.url}/client/api`, key, secret, zoneName],
      { timeout: 120_000 },
    ).catch((e) => {
      throw new Error(`libcloud failed:\n${e.stdout}\n${e.stderr}`);
    });
    const out = JSON.parse(stdout);
    assert.equal(out.network.name, 'lc-tier');
    assert.deepEqual(out.networks, ['lc-tier']);
    assert.equal(out.node.state, 'running');
    assert.match(out.node.private_ips[0], /^10\.1\.1\.\d+$/);
    assert.match(out.address.ip, /^203\.0\.113\.\d+$/);
    assert.ok(out.public_ips.includes(out.address.ip));
    assert.equal(out.public_ips.length, 2, 'the source-NAT address and the acquired one');
    assert.deepEqual([out.forward.public, out.forward.private], [2222, 22]);
    assert.deepEqual(out.forwards, [out.forward.id]);
    assert.deepEqual(out.firewall, [out.firewall_created]);
    assert.deepEqual(out.egress, [out.egress_created]);
    for (const done of [
      'deleted_egress',
      'deleted_firewall',
      'deleted_forward',
      'released',
      'destroyed',
      'deleted_network',
    ])
      assert.equal(out[done], true, done);
    assert.deepEqual(out.networks_after, []);
  });
});

describe('Ansible cs_vpc, cs_network_acl, cs_network_acl_rule and cs_network (VPC tier)', {
  skip: !existsSync(PYTHON),
}, () => {
  const vpcPlaybook = async (vars: Record<string, string>) => {
    const extra = Object.entries({ zone: zoneName, ...vars }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const { stdout } = await run(
      'ansible-playbook',
      ['-i', 'localhost,', ...extra, join(CLIENTS, 'ansible_vpc_acl.yml')],
      { env: clientEnv(), timeout: 180_000 },
    ).catch((e) => {
      throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
    });
    const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
    assert.ok(recap, stdout);
    return { changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
  };

  test('a VPC with a listed tier: made, unchanged on a second run, a rule updated, all removed', async () => {
    const first = await vpcPlaybook({});
    assert.equal(first.failed, 0, first.out);
    assert.equal(first.changed, 5, first.out);
    const [vpc] = (await carol.request<any>('listVPCs', {})).vpc;
    const [tier] = (await carol.request<any>('listNetworks', { vpcid: vpc.id })).network;
    assert.equal(tier.aclname, 'ans-db-acl');
    const items = (await carol.request<any>('listNetworkACLs', { aclid: tier.aclid })).networkacl;
    assert.deepEqual(
      items.map((i: any) => [i.number, i.action, i.protocol, i.startport ?? null, i.cidrlist]),
      [
        [10, 'Allow', 'tcp', '5432', '10.50.1.0/24'],
        [20, 'Deny', 'all', null, '10.50.1.0/24'],
      ],
    );

    const second = await vpcPlaybook({});
    assert.equal(second.failed, 0, second.out);
    assert.equal(second.changed, 0, second.out);

    const third = await vpcPlaybook({ db_port: '5433' });
    assert.equal(third.failed, 0, third.out);
    assert.equal(third.changed, 1, third.out);
    const moved = (await carol.request<any>('listNetworkACLs', { aclid: tier.aclid, traffictype: 'Ingress' }))
      .networkacl;
    assert.equal(moved[0].startport, '5433');

    const gone = await vpcPlaybook({ vpc_state: 'absent' });
    assert.equal(gone.failed, 0, gone.out);
    assert.equal(gone.changed, 5, gone.out);
    assert.equal((await carol.request<any>('listVPCs', {})).count ?? 0, 0);
  });
});

describe('Ansible cs_ip_address, cs_portforward and cs_staticnat in a VPC', {
  skip: !existsSync(PYTHON),
}, () => {
  test("a tier VM's port forward and static NAT: made, unchanged on a second run, taken back", async () => {
    const vpcOffering = (await carol.request<any>('listVPCOfferings', { name: 'Default VPC offering' }))
      .vpcoffering[0].id;
    const vpc = (
      await carol.call<any>('createVPC', {
        name: 'nat-vpc',
        displaytext: 'nat-vpc',
        cidr: '10.60.0.0/16',
        zoneid: zone.zoneid,
        vpcofferingid: vpcOffering,
      })
    ).vpc;
    const tierOffering = (
      await carol.request<any>('listNetworkOfferings', {
        name: 'DefaultIsolatedNetworkOfferingForVpcNetworks',
      })
    ).networkoffering[0].id;
    const tier = (
      await carol.request<any>('createNetwork', {
        name: 'nat-tier',
        displaytext: 'nat-tier',
        zoneid: zone.zoneid,
        vpcid: vpc.id,
        networkofferingid: tierOffering,
        gateway: '10.60.1.1',
        netmask: '255.255.255.0',
        aclid: (
          await carol.request<any>('listNetworkACLLists', { name: 'default_allow' })
        ).networkacllist[0].id,
      })
    ).network;
    const vm = (
      await carol.call<any>('deployVirtualMachine', {
        name: 'nat-vm',
        zoneid: zone.zoneid,
        templateid: zone.templateid,
        serviceofferingid: zone.offering,
        networkids: tier.id,
      })
    ).virtualmachine;
    const nat = async (vars: Record<string, string>) => {
      const extra = Object.entries({ zone: zoneName, ...vars }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
      const { stdout } = await run(
        'ansible-playbook',
        ['-i', 'localhost,', ...extra, join(CLIENTS, 'ansible_vpc_nat.yml')],
        { env: clientEnv(), timeout: 180_000 },
      ).catch((e) => {
        throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
      });
      const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
      assert.ok(recap, stdout);
      return { changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
    };
    const vpcIps = async () =>
      ((await carol.request<any>('listPublicIpAddresses', { vpcid: vpc.id })).publicipaddress ?? []).filter(
        (ip: any) => !ip.issourcenat,
      );
    // The range's last two addresses: free, as every other test releases what it takes.
    const [range] = (await zone.admin.request<any>('listVlanIpRanges', { zoneid: zone.zoneid })).vlaniprange;
    const last = range.endip.split('.').map(Number);
    const addresses = {
      forward_address: [...last.slice(0, 3), last[3] - 1].join('.'),
      nat_address: range.endip,
    };

    const first = await nat(addresses);
    assert.equal(first.failed, 0, first.out);
    assert.equal(first.changed, 4, first.out);
    const ips = await vpcIps();
    assert.equal(ips.length, 2);
    const natIp = ips.find((ip: any) => ip.isstaticnat);
    assert.equal(natIp?.ipaddress, addresses.nat_address);
    assert.equal(natIp?.virtualmachineid, vm.id);
    const forwards = (await carol.request<any>('listPortForwardingRules', { networkid: tier.id }))
      .portforwardingrule;
    assert.deepEqual(
      forwards.map((r: any) => [r.ipaddress, r.publicport, r.privateport, r.virtualmachineid]),
      [[addresses.forward_address, '2222', '22', vm.id]],
    );
    // The VPC router holds the static NAT into the tier.
    const [router] = (await zone.admin.request<any>('listRouters', { vpcid: vpc.id, listall: true })).router;
    assert.ok(JSON.stringify(zone.routerOn(router.name)?.spec).includes(addresses.nat_address));

    const second = await nat(addresses);
    assert.equal(second.failed, 0, second.out);
    assert.equal(second.changed, 0, second.out);

    const gone = await nat({ ...addresses, nat_state: 'absent' });
    assert.equal(gone.failed, 0, gone.out);
    // The rules and one looped release task.
    assert.equal(gone.changed, 3, gone.out);
    assert.deepEqual(await vpcIps(), []);
    assert.equal((await carol.request<any>('listPortForwardingRules', { networkid: tier.id })).count ?? 0, 0);
    await carol.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    await carol.call('deleteNetwork', { id: tier.id });
    await carol.call('deleteVPC', { id: vpc.id });
  });
});

describe("libcloud's VPC and network ACL calls", { skip: !existsSync(PYTHON) }, () => {
  test('a VPC, an ACL list with items, a tier switched to it, listed back, then removed', async () => {
    const { stdout } = await run(
      PYTHON,
      [join(CLIENTS, 'libcloud_vpc_acl.py'), `${zone.server.url}/client/api`, key, secret, zoneName],
      { timeout: 120_000 },
    ).catch((e) => {
      throw new Error(`libcloud failed:\n${e.stdout}\n${e.stderr}`);
    });
    const out = JSON.parse(stdout);
    assert.deepEqual(out.vpc, { name: 'lc-vpc', cidr: '10.60.0.0/16' });
    assert.equal(out.acl_list.name, 'lc-db-acl');
    assert.ok(out.lists.includes('lc-db-acl') && out.lists.includes('default_allow'));
    assert.deepEqual(out.items.map((i: any[]) => i.slice(1).join(' ')).sort(), [
      'tcp Allow 10.60.1.0/24 5432 Ingress',
      'udp Deny 10.60.1.0/24 53 Ingress',
    ]);
    assert.deepEqual(out.items.map((i: any[]) => i[0]).sort(), [...out.items_created].sort());
    for (const done of ['replaced', 'tier_deleted', 'vpc_deleted']) assert.equal(out[done], true, done);
    assert.equal((await carol.request<any>('listVPCs', {})).count ?? 0, 0);
  });
});
