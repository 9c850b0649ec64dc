/**
 * Basic-zone networking against the real server (in-process, so the test can also drive the IP
 * address manager the way deployVirtualMachine does): guest ranges and the zone's guest network,
 * concurrent allocation, exhaustion and release, NICs, security groups with the shapes Ansible and
 * libcloud read, the list commands libcloud's list_nodes needs, and Apache libcloud itself.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CloudStackClient } from '@nimbostack/client';
import { type Server, startServer } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import {
  allocateNics,
  assignSecurityGroups,
  presentNics,
  presentVmSecurityGroups,
  releaseNics,
  resolveSecurityGroups,
} from '../src/network/index.ts';

const run = promisify(execFile);
const CATALOG: { name: string; response: { name: string }[] }[] = JSON.parse(
  readFileSync(join(import.meta.dirname, '../src/registry/catalog.json'), 'utf8'),
);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CLIENTS = join(import.meta.dirname, 'clients');

let server: Server;
let admin: CloudStackClient;
let dataDir: string;
let zone: any;
let pod: any;
let range: any;
const is = (code: number, text?: RegExp) => (e: any) =>
  e.errorcode === code && (text === undefined || text.test(e.message));

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'nimbo-network-'));
  server = await startServer(
    loadConfig(
      {},
      { port: 0, agentPort: 0, host: '127.0.0.1', dataDir, logLevel: 'silent', seedLocalZone: false },
    ),
  );
  admin = await CloudStackClient.login(`${server.url}/client/api`, 'admin', 'password');
  zone = (
    await admin.request<any>('createZone', {
      name: 'basic-1',
      networktype: 'Basic',
      securitygroupenabled: true,
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      allocationstate: 'Enabled',
    })
  ).zone;
  pod = (
    await admin.request<any>('createPod', {
      zoneid: zone.id,
      name: 'pod-1',
      gateway: '192.168.10.1',
      netmask: '255.255.255.0',
      startip: '192.168.10.10',
      endip: '192.168.10.50',
    })
  ).pod;
  range = (
    await admin.request<any>('createVlanIpRange', {
      zoneid: zone.id,
      podid: pod.id,
      gateway: '10.50.0.1',
      netmask: '255.255.255.0',
      startip: '10.50.0.10',
      endip: '10.50.0.250',
      forvirtualnetwork: false,
    })
  ).vlan;
});
after(async () => {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const db = () => server.app.store.db;
const ctx = () => ({ app: server.app });

async function idOf(table: 'zones' | 'pods' | 'networks' | 'accounts', uuid: string): Promise<number> {
  return (await db().selectFrom(table).select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow()).id;
}

async function newUser(name: string) {
  const account = (
    await admin.request<any>('createAccount', {
      username: name,
      password: 'pw',
      email: `${name}@x.y`,
      firstname: 'a',
      lastname: 'b',
      accounttype: 0,
    })
  ).account;
  const client = await CloudStackClient.login(`${server.url}/client/api`, name, 'pw');
  return { account, client, id: await idOf('accounts', account.id) };
}

/** A VM row as compute would insert it, so NICs and groups have something to belong to. */
async function insertVm(
  accountId: number,
  zoneId: number,
  podId: number | null,
): Promise<{ id: number; uuid: string }> {
  const account = await db()
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', accountId)
    .executeTakeFirstOrThrow();
  const user = await db()
    .selectFrom('users')
    .select('id')
    .where('account_id', '=', accountId)
    .executeTakeFirstOrThrow();
  const offering = await db().selectFrom('service_offerings').select('id').executeTakeFirstOrThrow();
  const uuid = server.app.ids.uuid();
  await db()
    .insertInto('vms')
    .values({
      uuid,
      name: `vm-${uuid.slice(0, 8)}`,
      instance_name: `i-${accountId}-VM`,
      display_name: 'vm',
      account_id: accountId,
      domain_id: account.domain_id,
      user_id: user.id,
      zone_id: zoneId,
      pod_id: podId,
      service_offering_id: offering.id,
      cpu_number: 1,
      cpu_speed: 500,
      memory_mb: 512,
      hypervisor: 'Simulator',
      state: 'Stopped',
      ha_enabled: 0,
      display_vm: 1,
      created: Date.now(),
      updated: Date.now(),
    })
    .execute();
  const row = await db()
    .selectFrom('vms')
    .select(['id', 'uuid'])
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
  return row;
}

describe('guest IP ranges and the Basic zone network', () => {
  test('the first range creates the zone guest network, which every account sees', async () => {
    assert.equal(range.startip, '10.50.0.10');
    assert.equal(range.endip, '10.50.0.250');
    assert.equal(range.cidr, '10.50.0.0/24');
    assert.equal(range.vlan, 'vlan://untagged');
    assert.equal(range.forvirtualnetwork, false);
    assert.equal(range.podid, pod.id);
    assert.equal(range.podname, 'pod-1');
    const ranges = await admin.request<any>('listVlanIpRanges', { zoneid: zone.id });
    assert.equal(ranges.count, 1);
    assert.equal(ranges.vlaniprange[0].networkid, range.networkid);

    const { client } = await newUser('netviewer');
    for (const who of [admin, client]) {
      const list = await who.request<any>('listNetworks', { zoneid: zone.id });
      assert.equal(list.count, 1);
      const n = list.network[0];
      assert.equal(n.id, range.networkid);
      assert.equal(n.type, 'Shared');
      assert.equal(n.traffictype, 'Guest');
      assert.equal(n.networkofferingname, 'DefaultSharedNetworkOfferingWithSGService');
      assert.equal(n.cidr, '10.50.0.0/24');
      assert.equal(n.gateway, '10.50.0.1');
      assert.equal(n.canusefordeploy, true);
      assert.equal(n.isdefault, true);
      assert.equal(n.aclid, undefined);
      assert.deepEqual(n.service.map((s: any) => s.name).sort(), [
        'Dhcp',
        'Dns',
        'SecurityGroup',
        'UserData',
      ]);
    }
    assert.deepEqual(await client.request('listNetworks', { zoneid: zone.id, issystem: true }), {});
    const offerings = await client.request<any>('listNetworkOfferings', { zoneid: zone.id });
    const sg = offerings.networkoffering.find(
      (o: any) => o.name === 'DefaultSharedNetworkOfferingWithSGService',
    );
    assert.equal(sg.guestiptype, 'Shared');
    assert.ok(sg.service.some((s: any) => s.name === 'SecurityGroup'));
    const withSg = await client.request<any>('listNetworkOfferings', { supportedservices: 'SecurityGroup' });
    assert.equal(withSg.count, 1);
    const caps = await client.request<any>('listCapabilities');
    assert.equal(caps.capability.securitygroupsenabled, true);
  });

  test('a pod or zone with guest ranges cannot be deleted', async () => {
    await assert.rejects(admin.request('deletePod', { id: pod.id }), is(536, /guest IP ranges/));
    await assert.rejects(admin.request('deleteZone', { id: zone.id }), is(536));
    assert.equal((await admin.request<any>('listPods', { id: pod.id })).count, 1);
  });

  test('bad ranges are refused with 431 and change nothing', async () => {
    const base = { zoneid: zone.id, podid: pod.id, gateway: '10.50.0.1', netmask: '255.255.255.0' };
    const events = async () =>
      Number(
        (
          await db()
            .selectFrom('events')
            .select((eb) => eb.fn.countAll().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = await events();
    const bad: [any, RegExp][] = [
      [{ ...base, startip: '10.50.0.300', endip: '10.50.0.301' }, /valid IPv4/],
      [{ ...base, netmask: '255.0.255.0', startip: '10.50.1.2', endip: '10.50.1.3' }, /netmask/],
      [{ ...base, startip: '10.50.0.9', endip: '10.50.0.5' }, /after the end/],
      [{ ...base, startip: '10.60.0.2', endip: '10.60.0.9' }, /not inside the subnet/],
      [{ ...base, startip: '10.50.0.251', endip: '10.50.0.255' }, /not inside the subnet/],
      [{ ...base, startip: '10.50.0.100', endip: '10.50.0.120' }, /overlaps the existing range/],
      [
        { ...base, gateway: '192.168.10.1', startip: '192.168.10.40', endip: '192.168.10.60' },
        /management range/,
      ],
      [{ ...base, gateway: '10.70.0.5', startip: '10.70.0.2', endip: '10.70.0.9' }, /gateway/],
      [
        { ...base, startip: '10.50.0.2', endip: '10.50.0.5', forvirtualnetwork: true },
        /public IP range is zone-wide/,
      ],
      [
        { ...base, podid: undefined, startip: '10.50.0.2', endip: '10.50.0.5', forvirtualnetwork: true },
        /Basic zone: it has no public IP ranges/,
      ],
      [{ ...base, podid: undefined, startip: '10.50.0.2', endip: '10.50.0.5' }, /podid/],
      [{ ...base, startip: '10.50.0.2', endip: '10.50.0.5', vlan: '100' }, /untagged/],
    ];
    for (const [params, text] of bad)
      await assert.rejects(admin.request('createVlanIpRange', params), is(431, text), JSON.stringify(params));
    assert.equal((await admin.request<any>('listVlanIpRanges', {})).count, 1);
    assert.equal(await events(), before);
  });
});

describe('IP address manager', () => {
  test('concurrent allocations never hand out an address or MAC twice', async () => {
    const zoneId = await idOf('zones', zone.id);
    const podId = await idOf('pods', pod.id);
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        db()
          .transaction()
          .execute((tx) =>
            allocateNics(ctx(), tx, { vm: { id: 10_000 + i, uuid: `vm-${i}`, accountId: 1, zoneId, podId } }),
          ),
      ),
    );
    const nics = results.map((r) => r[0]!);
    assert.equal(new Set(nics.map((n) => n.ip4)).size, 120);
    assert.equal(new Set(nics.map((n) => n.mac)).size, 120);
    for (const n of nics) {
      const last = Number(n.ip4.split('.')[3]);
      assert.ok(n.ip4.startsWith('10.50.0.') && last >= 10 && last <= 250, n.ip4);
      assert.match(n.mac, /^02:00(:[0-9a-f]{2}){4}$/);
      assert.equal(n.isDefault, true);
      assert.equal(n.deviceId, 0);
      assert.equal(n.gateway, '10.50.0.1');
      assert.equal(n.podId, podId);
    }
    const presented = await presentNics(ctx(), [10_000]);
    const nic = presented.get(10_000)![0] as any;
    assert.equal(nic.ipaddress, nics[0]!.ip4);
    assert.equal(nic.networkid, range.networkid);
    assert.equal(nic.type, 'Shared');
    assert.equal(nic.traffictype, 'Guest');
    assert.equal(nic.broadcasturi, 'vlan://untagged');
    assert.equal(nic.deviceid, '0');
    await db()
      .transaction()
      .execute(async (tx) => {
        for (let i = 0; i < 120; i++) await releaseNics(ctx(), tx, 10_000 + i);
      });
    assert.equal((await presentNics(ctx(), [10_000])).size, 0);
  });

  test('a small range runs out with 533, requested addresses are checked, and release returns them', async () => {
    const small = (
      await admin.request<any>('createZone', {
        name: 'basic-small',
        networktype: 'Basic',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
      })
    ).zone;
    const smallPod = (
      await admin.request<any>('createPod', {
        zoneid: small.id,
        name: 'pod-s',
        gateway: '192.168.20.1',
        netmask: '255.255.255.0',
        startip: '192.168.20.10',
        endip: '192.168.20.20',
      })
    ).pod;
    const zoneId = await idOf('zones', small.id);
    const podId = await idOf('pods', smallPod.id);
    const vm = (id: number) => ({ id, uuid: `s-${id}`, accountId: 1, zoneId, podId });
    const allocate = (id: number, ipAddress?: string) =>
      db()
        .transaction()
        .execute((tx) => allocateNics(ctx(), tx, { vm: vm(id), ipAddress }));
    await assert.rejects(allocate(1), is(533, /no guest network/));
    const r = (
      await admin.request<any>('createVlanIpRange', {
        podid: smallPod.id,
        gateway: '10.60.0.1',
        netmask: '255.255.255.0',
        startip: '10.60.0.2',
        endip: '10.60.0.5',
      })
    ).vlan;
    assert.equal(r.zoneid, small.id);
    // The zone is still Disabled: only administrators see its network.
    const { client } = await newUser('early');
    assert.deepEqual(await client.request('listNetworks', { zoneid: small.id }), {});
    assert.equal((await admin.request<any>('listNetworks', { zoneid: small.id })).count, 1);
    await assert.rejects(allocate(1, '10.60.0.9'), is(431, /not in a guest IP range/));
    const chosen = await allocate(1, '10.60.0.4');
    assert.equal(chosen[0]!.ip4, '10.60.0.4');
    await assert.rejects(allocate(2, '10.60.0.4'), is(431, /already in use/));
    const rest = await Promise.all([2, 3, 4].map((id) => allocate(id)));
    assert.deepEqual(rest.map((n) => n[0]!.ip4).sort(), ['10.60.0.2', '10.60.0.3', '10.60.0.5']);
    await assert.rejects(allocate(5), is(533, /Insufficient address capacity/));
    // The failed allocation left nothing behind.
    const count = async () =>
      (
        await db()
          .selectFrom('guest_ip_allocations')
          .select('ip4')
          .where(
            'range_id',
            '=',
            (
              await db()
                .selectFrom('vlan_ip_ranges')
                .select('id')
                .where('uuid', '=', r.id)
                .executeTakeFirstOrThrow()
            ).id,
          )
          .execute()
      ).length;
    assert.equal(await count(), 4);
    await assert.rejects(admin.request('deleteVlanIpRange', { id: r.id }), is(536, /allocated/));
    await db()
      .transaction()
      .execute((tx) => releaseNics(ctx(), tx, 3));
    const again = await allocate(5);
    assert.equal(again[0]!.ip4, rest[1]![0]!.ip4);
    await db()
      .transaction()
      .execute(async (tx) => {
        for (const id of [1, 2, 4, 5]) await releaseNics(ctx(), tx, id);
      });
    assert.equal(await count(), 0);
    assert.deepEqual(await admin.request('deleteVlanIpRange', { id: r.id }), { success: true });
    assert.deepEqual(await admin.request('listVlanIpRanges', { zoneid: small.id }), {});
  });
});

describe('security groups', () => {
  let alice: Awaited<ReturnType<typeof newUser>>;
  let bob: Awaited<ReturnType<typeof newUser>>;

  before(async () => {
    alice = await newUser('alice');
    bob = await newUser('bob');
  });

  test('every account has a default group, always with both rule arrays', async () => {
    const list = await alice.client.request<any>('listSecurityGroups', {});
    assert.equal(list.count, 1);
    const g = list.securitygroup[0];
    assert.equal(g.name, 'default');
    assert.equal(g.account, 'alice');
    assert.deepEqual(g.ingressrule, []);
    assert.deepEqual(g.egressrule, []);
    assert.equal(g.virtualmachinecount, 0);
    const byName = await alice.client.request<any>('listSecurityGroups', { securitygroupname: 'default' });
    assert.equal(byName.securitygroup[0].id, g.id);
    await assert.rejects(
      alice.client.request('deleteSecurityGroup', { name: 'default' }),
      is(431, /reserved/),
    );
    await assert.rejects(
      alice.client.request('createSecurityGroup', { name: 'Default' }),
      is(431, /reserved/),
    );
  });

  test('create, authorize and revoke rules with the shapes Ansible and libcloud read', async () => {
    const c = alice.client;
    const web = (await c.request<any>('createSecurityGroup', { name: 'web', description: 'Web servers' }))
      .securitygroup;
    assert.equal(web.name, 'web');
    assert.equal(web.description, 'Web servers');
    assert.deepEqual([web.ingressrule, web.egressrule], [[], []]);
    await assert.rejects(c.request('createSecurityGroup', { name: 'WEB' }), is(431, /already exists/));

    const ssh = await c.call<any>('authorizeSecurityGroupIngress', {
      securitygroupid: web.id,
      protocol: 'TCP',
      startport: 22,
      endport: 22,
      cidrlist: '0.0.0.0/0',
    });
    assert.equal(ssh.securitygroup.id, web.id);
    assert.equal(ssh.securitygroup.ingressrule.length, 1);
    const rule = ssh.securitygroup.ingressrule[0];
    assert.deepEqual([rule.protocol, rule.startport, rule.endport, rule.cidr], ['tcp', 22, 22, '0.0.0.0/0']);
    assert.ok(rule.ruleid);
    assert.deepEqual(ssh.securitygroup.egressrule, []);

    const two = await c.call<any>('authorizeSecurityGroupIngress', {
      securitygroupname: 'web',
      protocol: 'tcp',
      startport: 80,
      endport: 443,
      cidrlist: '10.0.0.0/8,192.168.0.0/16,0.0.0.0/0',
    });
    assert.deepEqual(
      two.securitygroup.ingressrule.map((r: any) => r.cidr),
      ['10.0.0.0/8', '192.168.0.0/16', '0.0.0.0/0'],
    );
    // The same rule again adds nothing: the job fails and the group keeps its rules.
    await assert.rejects(
      c.call('authorizeSecurityGroupIngress', {
        securitygroupid: web.id,
        protocol: 'tcp',
        startport: 22,
        endport: 22,
        cidrlist: '0.0.0.0/0',
      }),
      is(431, /already has/),
    );
    const icmp = await c.call<any>('authorizeSecurityGroupIngress', {
      securitygroupid: web.id,
      protocol: 'icmp',
      icmptype: -1,
      icmpcode: -1,
      cidrlist: '0.0.0.0/0',
    });
    const icmpRule = icmp.securitygroup.ingressrule[0];
    assert.deepEqual([icmpRule.protocol, icmpRule.icmptype, icmpRule.icmpcode], ['icmp', -1, -1]);
    assert.equal(icmpRule.startport, undefined);
    const fromDefault = await c.call<any>('authorizeSecurityGroupIngress', {
      securitygroupid: web.id,
      protocol: 'udp',
      startport: 53,
      endport: 53,
      'usersecuritygrouplist[0].account': 'alice',
      'usersecuritygrouplist[0].group': 'default',
    });
    const peerRule = fromDefault.securitygroup.ingressrule[0];
    assert.deepEqual(
      [peerRule.account, peerRule.securitygroupname, peerRule.cidr],
      ['alice', 'default', undefined],
    );
    const egress = await c.call<any>('authorizeSecurityGroupEgress', {
      securitygroupid: web.id,
      protocol: 'all',
      cidrlist: '10.0.0.0/8',
    });
    assert.equal(egress.securitygroup.egressrule.length, 1);
    assert.deepEqual(egress.securitygroup.ingressrule, []);

    const listed = (await c.request<any>('listSecurityGroups', { securitygroupname: 'web' }))
      .securitygroup[0];
    assert.equal(listed.ingressrule.length, 6);
    assert.equal(listed.egressrule.length, 1);
    assert.ok(listed.ingressrule.every((r: any) => r.protocol === r.protocol.toLowerCase()));

    const egressId = listed.egressrule[0].ruleid;
    await assert.rejects(c.call('revokeSecurityGroupIngress', { id: egressId }), is(431));
    assert.deepEqual(await c.call('revokeSecurityGroupEgress', { id: egressId }), { success: true });
    assert.deepEqual(await c.call('revokeSecurityGroupIngress', { id: rule.ruleid }), { success: true });
    const after = (await c.request<any>('listSecurityGroups', { id: web.id })).securitygroup[0];
    assert.equal(after.ingressrule.length, 5);
    assert.deepEqual(after.egressrule, []);
  });

  test('bad rules are refused with 431 before a job is queued, and change nothing', async () => {
    const c = alice.client;
    const g = (await c.request<any>('createSecurityGroup', { name: 'strict' })).securitygroup;
    const base = { securitygroupid: g.id, cidrlist: '0.0.0.0/0' };
    const bad: [any, RegExp][] = [
      [{ ...base, protocol: 'foo', startport: 1, endport: 2 }, /Invalid protocol/],
      [{ ...base, protocol: 'tcp', startport: 90, endport: 80 }, /port range/],
      [{ ...base, protocol: 'tcp', startport: 1, endport: 70000 }, /port numbers/],
      [{ ...base, protocol: 'tcp', startport: 22 }, /port range/],
      [{ ...base, protocol: 'icmp', icmptype: 8 }, /ICMP/],
      [{ ...base, protocol: 'tcp', startport: 22, endport: 22, cidrlist: '10.0.0.0/33' }, /Invalid cidr/],
      [{ ...base, protocol: 'tcp', startport: 22, endport: 22, cidrlist: '10.0.0.300/8' }, /Invalid cidr/],
      [{ securitygroupid: g.id, protocol: 'tcp', startport: 22, endport: 22 }, /At least one cidr/],
      [
        {
          securitygroupid: g.id,
          protocol: 'tcp',
          startport: 22,
          endport: 22,
          'usersecuritygrouplist[0].account': 'nobody',
          'usersecuritygrouplist[0].group': 'default',
        },
        /Nonexistent account/,
      ],
      [{ ...base, securitygroupname: 'nope', securitygroupid: undefined, protocol: 'all' }, /Unable to find/],
    ];
    for (const [params, text] of bad)
      await assert.rejects(
        c.request('authorizeSecurityGroupIngress', params),
        is(431, text),
        JSON.stringify(params),
      );
    const after = (await c.request<any>('listSecurityGroups', { id: g.id })).securitygroup[0];
    assert.deepEqual([after.ingressrule, after.egressrule], [[], []]);
  });

  test("other accounts' groups are out of reach (531)", async () => {
    const web = (await alice.client.request<any>('listSecurityGroups', { securitygroupname: 'web' }))
      .securitygroup[0];
    await assert.rejects(
      bob.client.request('authorizeSecurityGroupIngress', {
        securitygroupid: web.id,
        protocol: 'tcp',
        startport: 1,
        endport: 1,
        cidrlist: '0.0.0.0/0',
      }),
      is(531),
    );
    await assert.rejects(bob.client.request('deleteSecurityGroup', { id: web.id }), is(531));
    await assert.rejects(
      bob.client.request('revokeSecurityGroupIngress', { id: web.ingressrule[0].ruleid }),
      is(531),
    );
    await assert.rejects(
      bob.client.request('createSecurityGroup', {
        name: 'x',
        account: 'alice',
        domainid: alice.account.domainid,
      }),
      is(531),
    );
    const mine = await bob.client.request<any>('listSecurityGroups', { listall: true });
    assert.deepEqual(
      mine.securitygroup.map((g: any) => g.account),
      ['bob'],
    );
    // An admin sees both, and can act for alice.
    const all = await admin.request<any>('listSecurityGroups', { listall: true });
    assert.ok(all.securitygroup.some((g: any) => g.account === 'alice' && g.name === 'web'));
    const forAlice = await admin.request<any>('createSecurityGroup', {
      name: 'by-admin',
      account: 'alice',
      domainid: alice.account.domainid,
    });
    assert.equal(forAlice.securitygroup.account, 'alice');
  });

  test('VMs join groups; groups in use or referenced cannot be deleted; tags filter', async () => {
    const c = alice.client;
    const zoneId = await idOf('zones', zone.id);
    const podId = await idOf('pods', pod.id);
    const account = await db()
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', alice.id)
      .executeTakeFirstOrThrow();
    const zoneRow = await db()
      .selectFrom('zones')
      .selectAll()
      .where('id', '=', zoneId)
      .executeTakeFirstOrThrow();
    const callCtx = ctx();
    const groups = await resolveSecurityGroups(callCtx, account, {
      zone: zoneRow,
      names: ['web', 'default'],
    });
    assert.equal(groups.length, 2);
    await assert.rejects(
      resolveSecurityGroups(callCtx, account, { zone: zoneRow, names: ['missing'] }),
      is(431),
    );
    const defaults = await resolveSecurityGroups(callCtx, account, { zone: zoneRow });
    assert.equal(defaults.length, 1);
    const vm = await insertVm(alice.id, zoneId, podId);
    await db()
      .transaction()
      .execute(async (tx) => {
        await allocateNics(ctx(), tx, { vm: { ...vm, accountId: alice.id, zoneId, podId } });
        await assignSecurityGroups(ctx(), tx, vm.id, groups);
      });
    const vmGroups = (await presentVmSecurityGroups(ctx(), [vm.id])).get(vm.id) as any[];
    assert.deepEqual(vmGroups.map((g) => g.name).sort(), ['default', 'web']);
    assert.ok(vmGroups.every((g) => Array.isArray(g.ingressrule) && Array.isArray(g.egressrule)));

    const nics = await c.request<any>('listNics', { virtualmachineid: vm.uuid });
    assert.equal(nics.count, 1);
    assert.equal(nics.nic[0].virtualmachineid, vm.uuid);
    assert.equal(nics.nic[0].isdefault, true);
    assert.match(nics.nic[0].ipaddress, /^10\.50\.0\./);
    await assert.rejects(bob.client.request('listNics', { virtualmachineid: vm.uuid }), is(531));

    const ofVm = await c.request<any>('listSecurityGroups', { virtualmachineid: vm.uuid });
    assert.equal(ofVm.count, 2);
    const web = ofVm.securitygroup.find((g: any) => g.name === 'web');
    assert.equal(web.virtualmachinecount, 1);
    assert.deepEqual(web.virtualmachineids, [vm.uuid]);
    await assert.rejects(c.request('deleteSecurityGroup', { name: 'web' }), is(536, /in use/));

    const db1 = (await c.request<any>('createSecurityGroup', { name: 'db' })).securitygroup;
    await c.call('authorizeSecurityGroupIngress', {
      securitygroupid: db1.id,
      protocol: 'tcp',
      startport: 5432,
      endport: 5432,
      'usersecuritygrouplist[0].account': 'alice',
      'usersecuritygrouplist[0].group': 'strict',
    });
    await assert.rejects(c.request('deleteSecurityGroup', { name: 'strict' }), is(536, /allow traffic/));

    await c.call('createTags', {
      resourcetype: 'SecurityGroup',
      resourceids: db1.id,
      'tags[0].key': 'tier',
      'tags[0].value': 'data',
    });
    const tagged = await c.request<any>('listSecurityGroups', {
      'tags[0].key': 'tier',
      'tags[0].value': 'data',
    });
    assert.deepEqual(
      tagged.securitygroup.map((g: any) => g.name),
      ['db'],
    );
    assert.equal(tagged.securitygroup[0].tags[0].value, 'data');
    assert.deepEqual(await c.request('deleteSecurityGroup', { id: db1.id }), { success: true });
    assert.deepEqual(await c.request('deleteSecurityGroup', { name: 'strict' }), { success: true });
  });

  test("deleting an account removes its groups and other groups' rules that admit them", async () => {
    const carol = await newUser('carol');
    const g = (await carol.client.request<any>('createSecurityGroup', { name: 'carols' })).securitygroup;
    const bobs = (await bob.client.request<any>('createSecurityGroup', { name: 'bobs' })).securitygroup;
    await admin.call('authorizeSecurityGroupIngress', {
      securitygroupid: bobs.id,
      protocol: 'tcp',
      startport: 1,
      endport: 2,
      'usersecuritygrouplist[0].account': 'carol',
      'usersecuritygrouplist[0].group': 'carols',
    });
    await admin.call('deleteAccount', { id: carol.account.id });
    const left = await db()
      .selectFrom('security_groups')
      .select('uuid')
      .where('account_id', '=', carol.id)
      .execute();
    assert.deepEqual(left, []);
    assert.equal(g.account, 'carol');
    const bobsNow = (await bob.client.request<any>('listSecurityGroups', { id: bobs.id })).securitygroup[0];
    assert.deepEqual(bobsNow.ingressrule, []);
  });
});

describe('what libcloud list_nodes needs', () => {
  test('public IPs, port forwarding and IP forwarding answer {} in a Basic zone', async () => {
    const { client } = await newUser('lister');
    for (const command of [
      'listPublicIpAddresses',
      'listPortForwardingRules',
      'listIpForwardingRules',
      'listFirewallRules',
      'listEgressFirewallRules',
    ]) {
      const res = await fetch(
        `${server.url}/client/api?${new URLSearchParams({ command, response: 'json', listall: 'true', sessionkey: (client as any).session.sessionKey })}`,
        { headers: { cookie: (client as any).session.cookie } },
      );
      assert.equal(res.status, 200, command);
      assert.deepEqual(await res.json(), { [`${command.toLowerCase()}response`]: {} });
    }
    await assert.rejects(
      client.request('listPublicIpAddresses', { id: '00000000-0000-4000-8000-000000000000' }),
      is(431),
    );
    assert.deepEqual(await client.request('listPublicIpAddresses', { zoneid: zone.id }), {});
    assert.deepEqual(await client.request('listPortForwardingRules', { networkid: range.networkid }), {});
  });

  test('Apache libcloud manages security groups through its CloudStack driver', {
    skip: !existsSync(PYTHON),
  }, async () => {
    const { account } = await newUser('libcloud');
    const userId = account.user[0].id;
    const keys = await admin.request<any>('registerUserKeys', { id: userId });
    const { stdout } = await run(
      PYTHON,
      [
        join(CLIENTS, 'libcloud_network.py'),
        `${server.url}/client/api`,
        keys.userkeys.apikey,
        keys.userkeys.secretkey,
      ],
      { timeout: 60_000 },
    );
    const out = JSON.parse(stdout);
    assert.equal(out.created.name, 'lc-web');
    assert.equal(out.authorized.ingressrule.length, 1);
    assert.equal(out.authorized.ingressrule[0].protocol, 'tcp');
    const listed = out.groups.find((g: any) => g.name === 'lc-web');
    assert.equal(listed.ingressrule[0].startport, 22);
    assert.ok(out.groups.some((g: any) => g.name === 'default'));
    assert.deepEqual(out.public_ips, []);
    assert.deepEqual(out.port_forwarding, []);
    assert.deepEqual(out.ip_forwarding, {});
    assert.equal(out.deleted, true);
  });
});

describe('response fields', () => {
  test('every field the network commands answer is one upstream declares', async () => {
    const fieldsOf = (command: string) =>
      new Set(CATALOG.find((c) => c.name === command)!.response.map((f) => f.name));
    const check = (command: string, items: object[], fields = fieldsOf(command)) => {
      assert.ok(items.length > 0, command);
      for (const item of items)
        for (const key of Object.keys(item)) assert.ok(fields.has(key), `${command} answers ${key}`);
    };
    const lists: [string, string, Record<string, string>][] = [
      ['listNetworks', 'network', { zoneid: zone.id }],
      ['listNetworkOfferings', 'networkoffering', {}],
      ['listVlanIpRanges', 'vlaniprange', {}],
      ['listSecurityGroups', 'securitygroup', { listall: 'true' }],
    ];
    for (const [command, key, params] of lists)
      check(command, (await admin.request<any>(command, params))[key]);
    const groups = (await admin.request<any>('listSecurityGroups', { listall: 'true' })).securitygroup;
    const rules = groups.flatMap((g: any) => [...g.ingressrule, ...g.egressrule]);
    check('authorizeSecurityGroupIngress', rules);
    const vm = await db()
      .selectFrom('nics')
      .select('vm_id')
      .where('removed', 'is', null)
      .executeTakeFirstOrThrow();
    const vmUuid = (
      await db().selectFrom('vms').select('uuid').where('id', '=', vm.vm_id).executeTakeFirstOrThrow()
    ).uuid;
    check('listNics', (await admin.request<any>('listNics', { virtualmachineid: vmUuid })).nic);
  });
});
