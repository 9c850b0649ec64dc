/**
 * Usage records against the real server: VM running and allocated hours from the state machine's
 * events, volume hours, idempotent regeneration, filters, and bad input.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { seededLocalZone } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let zoneid: string;
let templateid: string;
let small: string;
let customDisk: string;
const is = (code: number) => (e: any) => e.errorcode === code;
const today = () => new Date().toISOString().slice(0, 10);

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  ({ zoneid, templateid, small, customDisk } = await seededLocalZone(server.admin));
});
after(() => server.stop());

test('usage types are upstream’s', async () => {
  const r = await server.admin.request<any>('listUsageTypes', {});
  const byId = new Map(r.usagetype.map((t: any) => [t.id, t]));
  assert.deepEqual(byId.get(1), { id: 1, name: 'RUNNING_VM', description: 'Running Vm Usage' });
  assert.equal((byId.get(6) as any).name, 'VOLUME');
  assert.equal((byId.get(9) as any).name, 'SNAPSHOT');
});

test('running and allocated VM hours and volume hours, regenerated idempotently', async () => {
  const { client, account } = await createAccountAndLogin(server, { name: 'metered' });
  const vm = (
    await client.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: small,
      name: 'meter-1',
    })
  ).virtualmachine;
  const disk = (
    await client.call<any>('createVolume', { zoneid, diskofferingid: customDisk, size: 2, name: 'meterdisk' })
  ).volume;
  const snapshot = (
    await client.call<any>('createSnapshot', {
      volumeid: (await rootOf(client, vm.id)).id,
      name: 'metersnap',
    })
  ).snapshot;
  await new Promise((r) => setTimeout(r, 1500));
  await client.call('stopVirtualMachine', { id: vm.id });
  await new Promise((r) => setTimeout(r, 500));

  const period = { startdate: today(), enddate: today() };
  assert.equal((await server.admin.request<any>('generateUsageRecords', period)).success, true);
  const mine = { ...period, accountid: account.id as string };
  const records = (await server.admin.request<any>('listUsageRecords', mine)).usagerecord;
  const running = records.filter((r: any) => r.usagetype === 1);
  const allocated = records.filter((r: any) => r.usagetype === 2);
  const volumes = records.filter((r: any) => r.usagetype === 6);
  assert.equal(running.length, 1);
  assert.equal(allocated.length, 1);
  assert.equal(running[0].usageid, vm.id);
  assert.equal(running[0].virtualmachineid, vm.id);
  assert.equal(running[0].offeringid, small);
  assert.equal(running[0].templateid, templateid);
  assert.equal(running[0].name, 'meter-1');
  assert.equal(running[0].account, 'metered');
  assert.equal(running[0].zoneid, zoneid);
  assert.equal(running[0].cpunumber, 1);
  assert.equal(running[0].memory, 512);
  assert.match(
    running[0].description,
    /^Running VM usage for meter-1 \(i-\d+-\d+-VM\) \(.+\) using service offering Small Instance/,
  );
  assert.match(running[0].usage, / Hrs$/);
  const runHours = running[0].rawusage;
  assert.ok(runHours > 1 / 3600 && runHours < 0.1, `ran ${runHours} h`);
  assert.ok(allocated[0].rawusage > runHours, 'allocated outlasts running');
  assert.equal(running[0].startdate, `${today()}T00:00:00+0000`);
  assert.equal(running[0].enddate, `${today()}T23:59:59+0000`);
  assert.deepEqual(
    volumes.map((v: any) => v.usageid).sort(),
    [disk.id, (await rootOf(client, vm.id)).id].sort(),
  );
  const snaps = records.filter((r: any) => r.usagetype === 9);
  assert.deepEqual(
    snaps.map((r: any) => r.usageid),
    [snapshot.id],
  );
  assert.match(snaps[0].description, /^Snapshot usage for metersnap /);
  const data = volumes.find((v: any) => v.usageid === disk.id);
  assert.equal(data.size, 2 * 2 ** 30);
  assert.match(data.description, /^Volume usage for meterdisk .* and size 2\.00 GB$/);

  // Regenerating the period replaces, never duplicates; stopped VMs gain no running hours.
  await server.admin.request('generateUsageRecords', period);
  const again = (await server.admin.request<any>('listUsageRecords', mine)).usagerecord;
  assert.equal(again.length, records.length);
  assert.equal(again.find((r: any) => r.usagetype === 1).rawusage, runHours);

  const onlyRunning = await server.admin.request<any>('listUsageRecords', { ...mine, type: 1 });
  assert.equal(onlyRunning.count, 1);
  const byUsageId = await server.admin.request<any>('listUsageRecords', {
    ...mine,
    type: 6,
    usageid: disk.id,
  });
  assert.equal(byUsageId.count, 1);
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  assert.deepEqual(
    await server.admin.request('listUsageRecords', {
      startdate: yesterday,
      enddate: yesterday,
      accountid: account.id as string,
    }),
    {},
  );
});

test("a _ in a domain name does not list a sibling domain's usage (a_b vs axb)", async () => {
  const ab = (await server.admin.request<any>('createDomain', { name: 'a_b' })).domain;
  const axb = (await server.admin.request<any>('createDomain', { name: 'axb' })).domain;
  const { client } = await createAccountAndLogin(server, {
    name: 'usedaxb',
    domainid: axb.id,
    domainPath: '/axb',
  });
  await client.call('createVolume', { zoneid, diskofferingid: customDisk, size: 1, name: 'axbdisk' });
  const period = { startdate: today(), enddate: today() };
  await server.admin.request('generateUsageRecords', period);
  const theirs = await server.admin.request<any>('listUsageRecords', {
    ...period,
    domainid: axb.id,
    isrecursive: true,
  });
  assert.ok(theirs.count > 0);
  assert.deepEqual(
    await server.admin.request('listUsageRecords', { ...period, domainid: ab.id, isrecursive: true }),
    {},
  );
});

test('bad input is refused and users may not read usage', async () => {
  const { client } = await createAccountAndLogin(server, { name: 'nosy' });
  await assert.rejects(server.admin.request('listUsageRecords', { enddate: today() }), is(431));
  await assert.rejects(server.admin.request('generateUsageRecords', { startdate: today() }), is(431));
  await assert.rejects(
    server.admin.request('generateUsageRecords', { startdate: today(), enddate: '2000-01-01' }),
    is(431),
  );
  await assert.rejects(
    server.admin.request('listUsageRecords', { startdate: today(), enddate: today(), type: 999 }),
    is(431),
  );
  await assert.rejects(
    server.admin.request('listUsageRecords', { startdate: today(), enddate: today(), usageid: 'x' }),
    is(431),
  );
  await assert.rejects(client.request('listUsageRecords', { startdate: today(), enddate: today() }), is(432));
  await assert.rejects(
    client.request('generateUsageRecords', { startdate: today(), enddate: today() }),
    is(432),
  );
});

async function rootOf(client: any, vmId: string) {
  return (await client.request('listVolumes', { virtualmachineid: vmId, type: 'ROOT' })).volume[0];
}
