/** Service and disk offerings: seeded defaults, validation, customization, domain scoping. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type CloudStackClient, CloudStackError } from '@nimbostack/client';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let admin: CloudStackClient;
let user: CloudStackClient;

async function fails(p: Promise<unknown>, code: number, text?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CloudStackError, String(e));
    assert.equal(e.errorcode, code, e.message);
    if (text) assert.match(e.message, text);
    return true;
  });
}

before(async () => {
  server = await startServer();
  admin = server.admin;
  ({ client: user } = await createAccountAndLogin(server, { name: 'offer-user' }));
});
after(() => server.stop());

describe('seeded defaults', () => {
  test('users list the default service offerings with the fields clients read', async () => {
    const r = await user.request<{ count: number; serviceoffering: any[] }>('listServiceOfferings', {});
    assert.equal(r.count, 2);
    const [small, medium] = r.serviceoffering;
    assert.equal(small.name, 'Small Instance');
    assert.equal(small.cpunumber, 1);
    assert.equal(small.cpuspeed, 500);
    assert.equal(small.memory, 512);
    assert.equal(small.iscustomized, false);
    assert.equal(small.storagetype, 'shared');
    assert.equal(small.provisioningtype, 'thin');
    assert.match(small.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual([medium.name, medium.cpuspeed, medium.memory], ['Medium Instance', 1000, 1024]);
  });

  test('users list the default disk offerings, sizes in GB', async () => {
    const r = await user.request<{ count: number; diskoffering: any[] }>('listDiskOfferings', {});
    assert.deepEqual(
      r.diskoffering.map((d) => [d.name, d.disksize, d.iscustomized]),
      [
        ['Small', 5, false],
        ['Medium', 20, false],
        ['Large', 100, false],
        ['Custom', 0, true],
      ],
    );
  });

  test('users cannot create offerings', async () => {
    await fails(
      user.request('createServiceOffering', { name: 'x', cpunumber: 1, cpuspeed: 1, memory: 64 }),
      432,
    );
  });
});

describe('service offerings', () => {
  test('a fixed offering', async () => {
    const r = await admin.request<{ serviceoffering: any }>('createServiceOffering', {
      name: 'large',
      displaytext: 'Large VM',
      cpunumber: 4,
      cpuspeed: 2000,
      memory: 8192,
      offerha: true,
      limitcpuuse: true,
      hosttags: 'gpu',
      storagetype: 'local',
      tags: 'ssd',
      provisioningtype: 'fat',
    });
    const o = r.serviceoffering;
    assert.deepEqual(
      [o.name, o.displaytext, o.cpunumber, o.cpuspeed, o.memory, o.iscustomized],
      ['large', 'Large VM', 4, 2000, 8192, false],
    );
    assert.equal(o.offerha, true);
    assert.equal(o.limitcpuuse, true);
    assert.equal(o.hosttags, 'gpu');
    assert.equal(o.storagetype, 'local');
    assert.equal(o.storagetags, 'ssd');
    assert.equal(o.provisioningtype, 'fat');
    assert.equal(o.state, 'Active');
  });

  test('a customized offering with ranges', async () => {
    const r = await admin.request<{ serviceoffering: any }>('createServiceOffering', {
      name: 'flex',
      cpuspeed: 1000,
      mincpunumber: 1,
      maxcpunumber: 8,
      minmemory: 512,
      maxmemory: 16384,
    });
    const o = r.serviceoffering;
    assert.equal(o.iscustomized, true);
    assert.equal(o.cpunumber, undefined);
    assert.deepEqual(o.serviceofferingdetails, {
      mincpunumber: '1',
      maxcpunumber: '8',
      minmemory: '512',
      maxmemory: '16384',
    });
    const fits = await admin.request<{ serviceoffering: any[] }>('listServiceOfferings', { memory: 4096 });
    assert.deepEqual(
      fits.serviceoffering.map((s) => s.name),
      ['flex'],
    );
    const small = await admin.request<{ serviceoffering: any[] }>('listServiceOfferings', { memory: 512 });
    assert.deepEqual(small.serviceoffering.map((s) => s.name).sort(), ['Small Instance', 'flex']);
  });

  test('bad values are refused with 431 and create nothing', async () => {
    const before = (await admin.request<{ count: number }>('listServiceOfferings', {})).count;
    const base = { name: 'bad', cpuspeed: 1000 };
    await fails(admin.request('createServiceOffering', { ...base, cpunumber: -1, memory: 512 }), 431);
    await fails(admin.request('createServiceOffering', { ...base, cpunumber: 1, memory: -512 }), 431);
    await fails(admin.request('createServiceOffering', { ...base, cpunumber: 1, memory: 16 }), 431);
    await fails(
      admin.request('createServiceOffering', { ...base, mincpunumber: 4, maxcpunumber: 2 }),
      431,
      /mincpunumber/,
    );
    await fails(admin.request('createServiceOffering', { ...base, minmemory: 4096, maxmemory: 1024 }), 431);
    await fails(
      admin.request('createServiceOffering', { ...base, cpunumber: 2, memory: 512, maxcpunumber: 4 }),
      431,
    );
    await fails(
      admin.request('createServiceOffering', { ...base, cpunumber: 2, memory: 512, storagetype: 'cloud' }),
      431,
    );
    await fails(
      admin.request('createServiceOffering', { ...base, cpunumber: 2, memory: 512, provisioningtype: 'x' }),
      431,
    );
    await fails(admin.request('createServiceOffering', { ...base, cpunumber: 2 }), 431);
    await fails(
      admin.request('createServiceOffering', { ...base, cpunumber: 2, memory: 512, rootdisksize: 5000 }),
      431,
    );
    assert.equal((await admin.request<{ count: number }>('listServiceOfferings', {})).count, before);
  });

  test('update and delete', async () => {
    const id = (await admin.request<{ serviceoffering: any[] }>('listServiceOfferings', { name: 'large' }))
      .serviceoffering[0].id;
    const u = await admin.request<{ serviceoffering: any }>('updateServiceOffering', {
      id,
      name: 'large-2',
      displaytext: 'Bigger',
      storagetags: 'nvme',
      hosttags: '',
    });
    assert.equal(u.serviceoffering.name, 'large-2');
    assert.equal(u.serviceoffering.displaytext, 'Bigger');
    assert.equal(u.serviceoffering.storagetags, 'nvme');
    assert.equal(u.serviceoffering.hosttags, undefined);
    await fails(admin.request('updateServiceOffering', { id, state: 'Sleeping' }), 431);
    await admin.request('deleteServiceOffering', { id });
    assert.deepEqual(await admin.request('listServiceOfferings', { id }), {});
    await fails(admin.request('deleteServiceOffering', { id }), 431);
  });
});

describe('disk offerings', () => {
  test('fixed, customized, and IOPS', async () => {
    const fixed = await admin.request<{ diskoffering: any }>('createDiskOffering', {
      name: 'd10',
      disksize: 10,
      miniops: 100,
      maxiops: 500,
      tags: 'ssd',
    });
    assert.equal(fixed.diskoffering.disksize, 10);
    assert.equal(fixed.diskoffering.iscustomized, false);
    assert.equal(fixed.diskoffering.displaytext, 'd10');
    assert.equal(fixed.diskoffering.miniops, 100);
    assert.equal(fixed.diskoffering.maxiops, 500);
    assert.equal(fixed.diskoffering.tags, 'ssd');
    assert.equal(fixed.diskoffering.provisioningtype, 'thin');
    const custom = await admin.request<{ diskoffering: any }>('createDiskOffering', {
      name: 'dx',
      customized: true,
      provisioningtype: 'sparse',
    });
    assert.equal(custom.diskoffering.iscustomized, true);
    assert.equal(custom.diskoffering.disksize, 0);
    assert.equal(custom.diskoffering.provisioningtype, 'sparse');
  });

  test('bad values are refused with 431 and create nothing', async () => {
    const before = (await admin.request<{ count: number }>('listDiskOfferings', {})).count;
    await fails(admin.request('createDiskOffering', { name: 'bad', disksize: -5 }), 431);
    await fails(admin.request('createDiskOffering', { name: 'bad', disksize: 2001 }), 431, /at most 2000 GB/);
    await fails(
      admin.request('createDiskOffering', { name: 'bad', disksize: 5, miniops: 500, maxiops: 100 }),
      431,
    );
    await fails(admin.request('createDiskOffering', { name: 'bad', disksize: 5, miniops: -1 }), 431);
    await fails(admin.request('createDiskOffering', { name: 'bad', disksize: 5, customized: true }), 431);
    await fails(
      admin.request('createDiskOffering', { name: 'bad', disksize: 5, provisioningtype: 'thick' }),
      431,
    );
    await fails(
      admin.request('createDiskOffering', {
        name: 'bad',
        disksize: 5,
        zoneid: '00000000-0000-4000-8000-000000000000',
      }),
      431,
    );
    assert.equal((await admin.request<{ count: number }>('listDiskOfferings', {})).count, before);
  });

  test('update, hide from users, delete', async () => {
    const id = (await admin.request<{ diskoffering: any[] }>('listDiskOfferings', { name: 'd10' }))
      .diskoffering[0].id;
    const u = await admin.request<{ diskoffering: any }>('updateDiskOffering', {
      id,
      displaytext: 'Ten',
      displayoffering: false,
      tags: 'hdd',
    });
    assert.equal(u.diskoffering.displaytext, 'Ten');
    assert.equal(u.diskoffering.displayoffering, false);
    assert.equal(u.diskoffering.tags, 'hdd');
    assert.deepEqual(await user.request('listDiskOfferings', { id }), {});
    await admin.request('deleteDiskOffering', { id });
    assert.deepEqual(await admin.request('listDiskOfferings', { id }), {});
  });
});

describe('offerings limited to domains and zones', () => {
  test('a domain offering is seen by that domain only', async () => {
    const sub = await admin.request<{ domain: any }>('createDomain', { name: 'tenant' });
    const { client: tenant } = await createAccountAndLogin(server, {
      name: 'tenant-user',
      domainid: sub.domain.id,
      domainPath: '/tenant',
    });
    const o = await admin.request<{ serviceoffering: any }>('createServiceOffering', {
      name: 'tenant-only',
      cpunumber: 1,
      cpuspeed: 1000,
      memory: 1024,
      domainid: sub.domain.id,
    });
    assert.equal(o.serviceoffering.domainid, sub.domain.id);
    assert.equal(o.serviceoffering.domain, 'tenant');
    const mine = await tenant.request<{ serviceoffering: any[] }>('listServiceOfferings', {});
    assert.ok(mine.serviceoffering.some((s) => s.name === 'tenant-only'));
    const others = await user.request<{ serviceoffering: any[] }>('listServiceOfferings', {});
    assert.ok(!others.serviceoffering.some((s) => s.name === 'tenant-only'));
    await admin.request('updateServiceOffering', { id: o.serviceoffering.id, domainid: 'public' });
    const now = await user.request<{ serviceoffering: any[] }>('listServiceOfferings', {});
    assert.ok(now.serviceoffering.some((s) => s.name === 'tenant-only'));
  });

  test('domain admins make offerings for their own domain only', async () => {
    const sub = await admin.request<{ domain: any }>('createDomain', { name: 'reseller' });
    const { client: reseller } = await createAccountAndLogin(server, {
      name: 'reseller-admin',
      accounttype: 2,
      domainid: sub.domain.id,
      domainPath: '/reseller',
    });
    const o = await reseller.request<{ serviceoffering: any }>('createServiceOffering', {
      name: 'reseller-small',
      cpunumber: 1,
      cpuspeed: 500,
      memory: 256,
    });
    assert.equal(o.serviceoffering.domainid, sub.domain.id);
    await fails(
      reseller.request('createServiceOffering', {
        name: 'x',
        cpunumber: 1,
        cpuspeed: 1,
        memory: 64,
        domainid: 'public',
      }),
      531,
    );
    const publicSmall = (
      await reseller.request<{ serviceoffering: any[] }>('listServiceOfferings', { name: 'Small Instance' })
    ).serviceoffering[0];
    await fails(reseller.request('deleteServiceOffering', { id: publicSmall.id }), 531);
    await reseller.request('deleteServiceOffering', { id: o.serviceoffering.id });
  });

  test('a domain admin making its offering public is refused with 431 for service and disk offerings', async () => {
    const sub = await admin.request<{ domain: any }>('createDomain', { name: 'publisher' });
    const { client: publisher } = await createAccountAndLogin(server, {
      name: 'publisher-admin',
      accounttype: 2,
      domainid: sub.domain.id,
      domainPath: '/publisher',
    });
    const so = (
      await publisher.request<{ serviceoffering: any }>('createServiceOffering', {
        name: 'pub-small',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
      })
    ).serviceoffering;
    const disk = (
      await publisher.request<{ diskoffering: any }>('createDiskOffering', { name: 'pub-disk', disksize: 1 })
    ).diskoffering;
    const text = /Only root administrators can make an offering public/;
    await fails(publisher.request('updateServiceOffering', { id: so.id, domainid: 'public' }), 431, text);
    await fails(publisher.request('updateDiskOffering', { id: disk.id, domainid: 'public' }), 431, text);
  });

  test('a zone offering is listed for that zone only', async () => {
    const zone = (
      await admin.request<{ zone: any }>('createZone', {
        name: 'z1',
        networktype: 'Advanced',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
      })
    ).zone;
    const other = (
      await admin.request<{ zone: any }>('createZone', {
        name: 'z2',
        networktype: 'Advanced',
        dns1: '8.8.8.8',
        internaldns1: '10.0.0.2',
      })
    ).zone;
    const d = await admin.request<{ diskoffering: any }>('createDiskOffering', {
      name: 'z1-disk',
      disksize: 1,
      zoneid: zone.id,
    });
    assert.equal(d.diskoffering.zoneid, zone.id);
    assert.equal(d.diskoffering.zone, 'z1');
    const inZone = await admin.request<{ diskoffering: any[] }>('listDiskOfferings', { zoneid: zone.id });
    assert.ok(inZone.diskoffering.some((x) => x.name === 'z1-disk'));
    assert.ok(inZone.diskoffering.some((x) => x.name === 'Small'));
    const elsewhere = await admin.request<{ diskoffering: any[] }>('listDiskOfferings', { zoneid: other.id });
    assert.ok(!elsewhere.diskoffering.some((x) => x.name === 'z1-disk'));
  });
});
