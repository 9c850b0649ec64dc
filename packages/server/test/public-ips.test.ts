/**
 * Public IP addresses of an Advanced zone through the API, with a simulator agent in this process:
 * associateIpAddress under concurrency (each free address goes to exactly one request), the
 * public_ip limit, specific addresses, every refusal leaving nothing behind, listPublicIpAddresses
 * (fields, filters, scoping, paging, Free addresses for admins), the router carrying what is
 * associated, the source-NAT address that cannot be released, the give-back when the router
 * refuses, and two accounts that never see or touch each other's addresses.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

let z: AdvancedZone;
let carol: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;

const allocatedCount = async () =>
  (await z.admin.request<any>('listPublicIpAddresses', { listall: true, zoneid: z.zoneid })).count ?? 0;
const freeCount = async () =>
  (
    await z.admin.request<any>('listPublicIpAddresses', {
      allocatedonly: false,
      state: 'Free',
      zoneid: z.zoneid,
    })
  ).count ?? 0;
/** The account's public_ip count as the limits see it (resource type 1). */
const ipTotal = async (name: string) => {
  const db = z.server.app.store.db;
  const row = await db
    .selectFrom('resource_counts')
    .innerJoin('accounts', 'accounts.id', 'resource_counts.owner_id')
    .select('resource_counts.count')
    .where('resource_counts.owner_type', '=', 'account')
    .where('accounts.name', '=', name)
    .where('resource_counts.resource_type', '=', 1)
    .executeTakeFirst();
  return Number(row?.count ?? 0);
};

before(async () => {
  z = await startAdvancedZone({ publicIps: 10 });
  carol = await z.createUser('carol');
  alice = await z.createUser('alice');
  bob = await z.createUser('bob');
});

after(async () => {
  await z?.stop();
});

describe('acquiring addresses', () => {
  let net: any;

  before(async () => {
    net = (
      await carol.request<any>('createNetwork', {
        name: 'c-net',
        zoneid: z.zoneid,
        networkofferingid: z.isolatedOffering,
      })
    ).network;
  });

  test('20 parallel associateIpAddress for 10 free addresses: exactly 10 succeed, all distinct', async () => {
    assert.equal(await freeCount(), 10);
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, () => carol.request<any>('associateIpAddress', { networkid: net.id })),
    );
    const ok = settled
      .filter((s) => s.status === 'fulfilled')
      .map((s) => (s as PromiseFulfilledResult<any>).value);
    const refused = settled
      .filter((s) => s.status === 'rejected')
      .map((s) => (s as PromiseRejectedResult).reason);
    assert.equal(ok.length, 10);
    assert.equal(refused.length, 10);
    for (const e of refused) assert.ok(is(533, /Insufficient address capacity/)(e), String(e.message));
    const results = await Promise.all(ok.map((r) => carol.waitForJob(r.jobid)));
    const ips = results.map((j: any) => j.jobresult.ipaddress);
    assert.equal(new Set(ips.map((i: any) => i.ipaddress)).size, 10);
    assert.deepEqual(
      new Set(ips.map((i: any) => i.id)),
      new Set(ok.map((r) => r.id)),
      'the id answered with the job is the address',
    );
    // The first address of a network without a source-NAT address becomes it, as upstream.
    assert.equal(ips.filter((i: any) => i.issourcenat).length, 1);
    assert.equal(await freeCount(), 0);
    assert.equal(await ipTotal('carol'), 10);
    for (const ip of ips) assert.equal(ip.associatednetworkid, net.id);
    // The network is not implemented yet, so even its source-NAT address can be released.
    await Promise.all(ips.map((ip: any) => carol.call('disassociateIpAddress', { id: ip.id })));
    assert.equal(await freeCount(), 10);
    assert.equal(await ipTotal('carol'), 0);
  });

  test('the public_ip limit: 535 over it, and nothing is taken', async () => {
    await z.admin.request('updateResourceLimit', {
      resourcetype: 1,
      max: 2,
      account: 'carol',
      domainid: net.domainid,
    });
    const a = (await carol.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
    const b = (await carol.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
    const before = await allocatedCount();
    await assert.rejects(
      carol.request('associateIpAddress', { networkid: net.id }),
      is(535, /public_ip.*Resource Limit = 2/),
    );
    assert.equal(await allocatedCount(), before);
    assert.equal(await ipTotal('carol'), 2);
    await carol.call('disassociateIpAddress', { id: a.id });
    const c = (await carol.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
    assert.notEqual(c.id, undefined, 'a released address makes room again');
    for (const ip of [b, c]) await carol.call('disassociateIpAddress', { id: ip.id });
    await z.admin.request('updateResourceLimit', {
      resourcetype: 1,
      max: -1,
      account: 'carol',
      domainid: net.domainid,
    });
  });

  test('a specific address: taken when free, 431 when taken or outside the zone ranges', async () => {
    const ip = (await carol.call<any>('associateIpAddress', { networkid: net.id, ipaddress: '203.0.113.15' }))
      .ipaddress;
    assert.equal(ip.ipaddress, '203.0.113.15');
    const before = await allocatedCount();
    await assert.rejects(
      alice.request('associateIpAddress', { zoneid: z.zoneid, ipaddress: '203.0.113.15' }),
      (e: any) => e.errorcode === 431,
    );
    const aliceNet = (
      await alice.request<any>('createNetwork', {
        name: 'a-tmp',
        zoneid: z.zoneid,
        networkofferingid: z.isolatedOffering,
      })
    ).network;
    await assert.rejects(
      alice.request('associateIpAddress', { networkid: aliceNet.id, ipaddress: '203.0.113.15' }),
      is(431, /not free/),
    );
    await assert.rejects(
      alice.request('associateIpAddress', { networkid: aliceNet.id, ipaddress: '198.51.100.7' }),
      is(431, /Unable to find a public IP range/),
    );
    assert.equal(await allocatedCount(), before);
    await carol.call('disassociateIpAddress', { ipaddress: '203.0.113.15' });
    await alice.call('deleteNetwork', { id: aliceNet.id });
  });

  test('bad requests are refused before a job is queued and take nothing', async () => {
    const before = await allocatedCount();
    const cases: [CloudStackClient, Record<string, string | boolean>, (e: any) => boolean][] = [
      [carol, { networkid: net.id, isportable: true }, is(431, /Portable/)],
      [carol, { networkid: net.id, projectid: net.id }, is(431, /Invalid parameter projectid/)],
      [carol, {}, is(431, /networkid or zoneid/)],
      [
        carol,
        { networkid: '00000000-0000-4000-8000-000000000000' },
        is(431, /Invalid parameter networkid value=.* entity does not exist/),
      ],
      [bob, { networkid: net.id }, is(531)],
      [bob, { zoneid: z.zoneid }, is(431, /doesn't have isolated networks/)],
      [carol, { networkid: net.id, account: 'bob', domainid: net.domainid }, is(531)],
      // A network's id is no VPC's: refused as an unknown entity before anything else.
      [
        carol,
        { networkid: net.id, vpcid: net.id },
        is(431, /Invalid parameter vpcid value=.* entity does not exist/),
      ],
    ];
    for (const [client, params, check] of cases)
      await assert.rejects(client.request('associateIpAddress', params), check, JSON.stringify(params));
    assert.equal(await allocatedCount(), before);
  });
});

describe('listing', () => {
  let net: any;
  let ips: any[];

  before(async () => {
    net = (
      await alice.request<any>('createNetwork', {
        name: 'a-net',
        zoneid: z.zoneid,
        networkofferingid: z.isolatedOffering,
      })
    ).network;
    ips = [];
    for (let i = 0; i < 3; i++)
      ips.push((await alice.call<any>('associateIpAddress', { networkid: net.id })).ipaddress);
  });

  test('fields as upstream, and filters', async () => {
    const list = await alice.request<any>('listPublicIpAddresses', { associatednetworkid: net.id });
    assert.equal(list.count, 3);
    const first = list.publicipaddress.find((i: any) => i.issourcenat);
    for (const key of [
      'id',
      'ipaddress',
      'allocated',
      'zoneid',
      'zonename',
      'issourcenat',
      'account',
      'domainid',
      'domain',
      'forvirtualnetwork',
      'vlanid',
      'vlanname',
      'isstaticnat',
      'issystem',
      'associatednetworkid',
      'associatednetworkname',
      'networkid',
      'state',
      'physicalnetworkid',
      'tags',
      'isportable',
      'fordisplay',
    ])
      assert.ok(key in first, `field ${key}`);
    assert.equal(first.account, 'alice');
    assert.equal(first.state, 'Allocated');
    assert.equal(first.associatednetworkname, 'a-net');
    assert.equal(first.forvirtualnetwork, true);
    assert.equal(first.vlanname, 'vlan://untagged');
    assert.match(first.allocated, /^\d{4}-\d\d-\d\dT/);
    assert.equal((await alice.request<any>('listPublicIpAddresses', { issourcenat: true })).count, 1);
    assert.equal((await alice.request<any>('listPublicIpAddresses', { issourcenat: false })).count, 2);
    assert.equal((await alice.request<any>('listPublicIpAddresses', { isstaticnat: true })).count ?? 0, 0);
    const one = await alice.request<any>('listPublicIpAddresses', { ipaddress: ips[1].ipaddress });
    assert.deepEqual(
      one.publicipaddress.map((i: any) => i.id),
      [ips[1].id],
    );
    const byId = await alice.request<any>('listPublicIpAddresses', { id: ips[2].id });
    assert.equal(byId.publicipaddress[0].ipaddress, ips[2].ipaddress);
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { forvirtualnetwork: false })).count ?? 0,
      0,
    );
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { vlanid: first.vlanid, zoneid: z.zoneid })).count,
      3,
    );
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { physicalnetworkid: first.physicalnetworkid }))
        .count,
      3,
    );
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { networkid: first.networkid })).count,
      3,
    );
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { keyword: ips[0].ipaddress.split('.')[3] }))
        .count >= 1,
      true,
    );
    const page = await alice.request<any>('listPublicIpAddresses', { page: 2, pagesize: 2 });
    assert.equal(page.count, 3);
    assert.equal(page.publicipaddress.length, 1);
    await assert.rejects(
      alice.request('listPublicIpAddresses', { id: '00000000-0000-4000-8000-000000000000' }),
      is(431),
    );
    await assert.rejects(
      alice.request('listPublicIpAddresses', { associatednetworkid: '00000000-0000-4000-8000-000000000000' }),
      is(431),
    );
    await alice.call('createTags', {
      resourcetype: 'PublicIpAddress',
      resourceids: ips[0].id,
      'tags[0].key': 'role',
      'tags[0].value': 'web',
    });
    const tagged = await alice.request<any>('listPublicIpAddresses', {
      'tags[0].key': 'role',
      'tags[0].value': 'web',
    });
    assert.deepEqual(
      tagged.publicipaddress.map((i: any) => i.id),
      [ips[0].id],
    );
    assert.equal(tagged.publicipaddress[0].tags[0].value, 'web');
  });

  test("Free addresses: admins see them with allocatedonly=false, users only usable ones, never others' allocations", async () => {
    const free = await z.admin.request<any>('listPublicIpAddresses', { allocatedonly: false, state: 'Free' });
    assert.ok(free.count > 0);
    for (const ip of free.publicipaddress) {
      assert.equal(ip.state, 'Free');
      assert.equal(ip.account, undefined);
    }
    const all = await z.admin.request<any>('listPublicIpAddresses', { allocatedonly: false, listall: true });
    assert.equal(all.count, 10);
    const bobs = await bob.request<any>('listPublicIpAddresses', { allocatedonly: false });
    assert.equal(bobs.count, free.count, "bob sees the free addresses he could take, not alice's");
    assert.ok(bobs.publicipaddress.every((i: any) => i.state === 'Free'));
    assert.deepEqual(await bob.request('listPublicIpAddresses', {}), {});
    assert.equal(
      (
        await z.admin.request<any>('listPublicIpAddresses', {
          listall: true,
          account: 'alice',
          domainid: net.domainid,
        })
      ).count,
      3,
    );
  });

  test('another account can neither see, update nor release the addresses (531)', async () => {
    await assert.rejects(bob.request('disassociateIpAddress', { id: ips[1].id }), is(531));
    await assert.rejects(bob.request('updateIpAddress', { id: ips[1].id }), is(531));
    await assert.rejects(bob.request('disassociateIpAddress', { ipaddress: ips[1].ipaddress }), is(531));
    assert.equal((await alice.request<any>('listPublicIpAddresses', { id: ips[1].id })).count, 1);
  });

  test('updateIpAddress: fordisplay and customid for root admins; ignored for others', async () => {
    const same = (await alice.call<any>('updateIpAddress', { id: ips[1].id, fordisplay: false })).ipaddress;
    assert.equal(same.fordisplay, true, 'a user cannot hide an address (admin-only parameter)');
    const hidden = (await z.admin.call<any>('updateIpAddress', { id: ips[1].id, fordisplay: false }))
      .ipaddress;
    assert.equal(hidden.fordisplay, false);
    assert.equal((await alice.request<any>('listPublicIpAddresses', { fordisplay: false })).count, 1);
    const custom = '11111111-2222-4333-8444-555555555555';
    const renamed = (await z.admin.call<any>('updateIpAddress', { id: ips[1].id, customid: custom }))
      .ipaddress;
    assert.equal(renamed.id, custom);
    ips[1] = renamed;
    await assert.rejects(
      z.admin.call('updateIpAddress', { id: ips[2].id, customid: custom }),
      is(431, /in use/),
    );
  });

  test('events: NET.IPASSIGN and NET.IPRELEASE for the owner', async () => {
    const extra = (await alice.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
    await alice.call('disassociateIpAddress', { id: extra.id });
    const events = (await alice.request<any>('listEvents', { page: 1, pagesize: 200 })).event;
    assert.ok(events.some((e: any) => e.type === 'NET.IPASSIGN' && e.description.includes(extra.ipaddress)));
    assert.ok(events.some((e: any) => e.type === 'NET.IPRELEASE' && e.description.includes(extra.ipaddress)));
    // Usage type 3 (IP address) from these events: the released address was held a moment.
    const today = new Date().toISOString().slice(0, 10);
    await z.admin.request('generateUsageRecords', { startdate: today, enddate: today });
    const usage = await z.admin.request<any>('listUsageRecords', {
      startdate: today,
      enddate: today,
      type: 3,
      account: 'alice',
      domainid: net.domainid,
    });
    const mine = usage.usagerecord.filter((u: any) => u.usageid === extra.id);
    assert.equal(mine.length, 1);
    assert.equal(mine[0].description, `IPAddress: ${extra.ipaddress}`);
    assert.equal(mine[0].issourcenat, false);
    assert.ok(mine[0].rawusage < 0.1, String(mine[0].rawusage));
    const held = usage.usagerecord.filter((u: any) => ips.some((i) => i.ipaddress === u.name));
    assert.equal(held.length, 3, 'the addresses still held have a record each');
    assert.equal(held.filter((u: any) => u.issourcenat).length, 1);
  });

  test('the router carries associated addresses; the live source-NAT address cannot be released', async () => {
    const vm = (
      await alice.call<any>('deployVirtualMachine', {
        zoneid: z.zoneid,
        templateid: z.templateid,
        serviceofferingid: z.offering,
        networkids: net.id,
      })
    ).virtualmachine;
    assert.equal(vm.state, 'Running');
    const router = await z.routerOf(net.id);
    const sourceNat = ips.find((i) => i.issourcenat);
    assert.equal(
      router.spec.public.sourceNat,
      sourceNat.ipaddress,
      'the address associated first is the source NAT',
    );
    assert.deepEqual(
      router.spec.public.addresses.map((a: any) => a.ip).sort(),
      ips.map((i) => i.ipaddress).sort(),
    );
    const added = (await alice.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
    assert.equal(added.issourcenat, false);
    assert.ok(z.routerOn(router.name)!.spec.public.addresses.some((a: any) => a.ip === added.ipaddress));
    await alice.call('disassociateIpAddress', { id: added.id });
    assert.ok(!z.routerOn(router.name)!.spec.public.addresses.some((a: any) => a.ip === added.ipaddress));
    await assert.rejects(
      alice.request('disassociateIpAddress', { id: sourceNat.id }),
      is(431, /Can't release source nat IP address/),
    );
    assert.equal(
      (await alice.request<any>('listPublicIpAddresses', { id: sourceNat.id })).publicipaddress[0].state,
      'Allocated',
    );
    await z.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });

  test('when the router refuses an address, it is given back and the job fails with the reason', async () => {
    const router = await z.routerOf(net.id);
    const before = {
      free: await freeCount(),
      total: await ipTotal('alice'),
      addresses: router.spec.public.addresses,
    };
    await z.admin.request('configureSimulator', {
      name: 'applyRouterRules',
      value: 'result:fail;message:nft said no',
      count: 1,
      hostid: router.hostid,
    });
    await assert.rejects(
      alice.call('associateIpAddress', { networkid: net.id }),
      is(530, /associate IP address .*nft said no/),
    );
    assert.equal(await freeCount(), before.free);
    assert.equal(await ipTotal('alice'), before.total);
    assert.deepEqual(z.routerOn(router.name)!.spec.public.addresses, before.addresses);
    // A release the router refuses leaves the address Allocated: the router still holds it.
    const held = ips.find((i) => !i.issourcenat);
    await z.admin.request('configureSimulator', {
      name: 'applyRouterRules',
      value: 'result:fail;message:host busy',
      count: 1,
      hostid: router.hostid,
    });
    await assert.rejects(alice.call('disassociateIpAddress', { id: held.id }), is(530, /host busy/));
    const still = (await alice.request<any>('listPublicIpAddresses', { id: held.id })).publicipaddress[0];
    assert.equal(still.state, 'Allocated');
    assert.ok(z.routerOn(router.name)!.spec.public.addresses.some((a: any) => a.ip === held.ipaddress));
  });
});
