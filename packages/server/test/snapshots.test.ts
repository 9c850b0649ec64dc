/**
 * Snapshots through the real server on simulator hosts: volume snapshots (take, list, revert,
 * volumes and templates made from them), recurring policies and their scheduler with rotation,
 * VM snapshots, limits, and bad input that changes nothing.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { openStore, type Store } from '../src/db/connection.ts';
import { nextRun } from '../src/storage/snapshot-policies.ts';
import { seededLocalZone, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let store: Store;
const is = (code: number) => (e: any) => e.errorcode === code;
let zoneid: string;
let templateid: string;
let small: string;
let customDisk: string;
let osType: string;

before(async () => {
  server = await startServer({
    env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' },
    nodeArgs: ['--import', join(import.meta.dirname, 'fixtures/snapshot-hooks.ts')],
  });
  store = openStore(server.databaseUrl);
  ({ zoneid, templateid, small, customDisk } = await seededLocalZone(server.admin));
  osType = (await server.admin.request<any>('listOsTypes', {})).ostype[0].id;
});
after(async () => {
  await store.db.destroy();
  await server.stop();
});

async function runningVm(client: CloudStackClient, name: string) {
  const vm = (
    await client.call<any>('deployVirtualMachine', { zoneid, templateid, serviceofferingid: small, name })
  ).virtualmachine;
  const root = (await client.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
    .volume[0];
  return { vm, root };
}

async function attachedDisk(client: CloudStackClient, vmId: string, name: string) {
  const disk = (await client.call<any>('createVolume', { zoneid, diskofferingid: customDisk, size: 1, name }))
    .volume;
  return (await client.call<any>('attachVolume', { id: disk.id, virtualmachineid: vmId })).volume;
}

const snapshotCount = async (client: CloudStackClient, params: Record<string, string> = {}) =>
  (await client.request<any>('listSnapshots', params)).count ?? 0;

describe('volume snapshots', () => {
  test('take, list, revert, and make volumes and templates from them', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'snapper' });
    const { vm, root } = await runningVm(client, 'snap-vm');
    const data = await attachedDisk(client, vm.id, 'snap-data');
    assert.equal(data.state, 'Ready');

    const rootSnap = (await client.call<any>('createSnapshot', { volumeid: root.id })).snapshot;
    assert.equal(rootSnap.state, 'BackedUp');
    assert.equal(rootSnap.volumeid, root.id);
    assert.equal(rootSnap.volumename, root.name);
    assert.equal(rootSnap.volumetype, 'ROOT');
    assert.equal(rootSnap.snapshottype, 'MANUAL');
    assert.equal(rootSnap.intervaltype, 'MANUAL');
    assert.equal(rootSnap.virtualsize, root.size);
    assert.ok(rootSnap.physicalsize > 0);
    assert.equal(rootSnap.zoneid, zoneid);
    assert.equal(rootSnap.account, 'snapper');
    assert.equal(rootSnap.revertable, true);
    assert.ok(rootSnap.created);
    const dataSnap = (await client.call<any>('createSnapshot', { volumeid: data.id, name: 'data-snap' }))
      .snapshot;
    assert.equal(dataSnap.name, 'data-snap');
    assert.equal(dataSnap.volumetype, 'DATADISK');

    assert.equal(await snapshotCount(client), 2);
    assert.equal(await snapshotCount(client, { volumeid: data.id }), 1);
    assert.equal(await snapshotCount(client, { name: 'data-snap' }), 1);
    assert.equal(await snapshotCount(client, { keyword: 'data-sn' }), 1);
    assert.equal(await snapshotCount(client, { snapshottype: 'RECURRING' }), 0);
    assert.equal(await snapshotCount(client, { zoneid }), 2);
    await client.request('createTags', {
      resourceids: dataSnap.id,
      resourcetype: 'Snapshot',
      'tags[0].key': 'tier',
      'tags[0].value': 'gold',
    });
    assert.equal(await snapshotCount(client, { 'tags[0].key': 'tier', 'tags[0].value': 'gold' }), 1);

    // Reverting needs the VM stopped.
    await assert.rejects(client.call('revertSnapshot', { id: rootSnap.id }), is(431));
    await client.call('stopVirtualMachine', { id: vm.id });
    const reverted = (await client.call<any>('revertSnapshot', { id: rootSnap.id })).snapshot;
    assert.equal(reverted.id, rootSnap.id);
    const fromVolume = (
      await client.call<any>('createTemplate', {
        name: 'from-volume',
        displaytext: 'from a stopped VM',
        ostypeid: osType,
        volumeid: root.id,
      })
    ).template;
    assert.equal(fromVolume.isready, true);
    await client.call('startVirtualMachine', { id: vm.id });

    // A data disk from the snapshot, with its size, attached to the running VM.
    const fromSnap = (await client.call<any>('createVolume', { snapshotid: dataSnap.id, name: 'restored' }))
      .volume;
    assert.equal(fromSnap.type, 'DATADISK');
    assert.equal(fromSnap.size, dataSnap.virtualsize);
    const attached = (await client.call<any>('attachVolume', { id: fromSnap.id, virtualmachineid: vm.id }))
      .volume;
    assert.equal(attached.state, 'Ready');
    assert.equal(attached.virtualmachineid, vm.id);

    // A template from the ROOT snapshot, ready in the zone, deploys a VM.
    await assert.rejects(
      client.call('createTemplate', {
        name: 'live',
        displaytext: 'live',
        ostypeid: osType,
        volumeid: root.id,
      }),
      is(431),
    );
    const template = (
      await client.call<any>('createTemplate', {
        name: 'from-snap',
        displaytext: 'from a snapshot',
        ostypeid: osType,
        snapshotid: rootSnap.id,
      })
    ).template;
    assert.equal(template.name, 'from-snap');
    assert.equal(template.isready, true);
    assert.equal(template.zoneid, zoneid);
    const child = (
      await client.call<any>('deployVirtualMachine', {
        zoneid,
        templateid: template.id,
        serviceofferingid: small,
        name: 'from-template',
      })
    ).virtualmachine;
    assert.equal(child.state, 'Running');
    assert.equal(child.templateid, template.id);

    // Deleting a snapshot; deleting its volume keeps the other snapshots.
    await client.call('deleteSnapshot', { id: rootSnap.id });
    assert.equal(await snapshotCount(client), 1);
    await client.call('detachVolume', { id: data.id });
    await client.request('deleteVolume', { id: data.id });
    const kept = (await client.request<any>('listSnapshots', { id: dataSnap.id })).snapshot[0];
    assert.equal(kept.state, 'BackedUp');
    assert.equal(kept.revertable, false);
  });

  test('bad input and limits change nothing', async () => {
    const { client, account } = await createAccountAndLogin(server, { name: 'careful' });
    const { vm, root } = await runningVm(client, 'careful-vm');
    await assert.rejects(
      client.request('createSnapshot', { volumeid: '11111111-1111-1111-1111-111111111111' }),
      is(431),
    );
    const bare = (await client.call<any>('createVolume', { zoneid, diskofferingid: customDisk, size: 1 }))
      .volume;
    await assert.rejects(client.request('createSnapshot', { volumeid: bare.id }), is(431));
    await assert.rejects(
      client.request('createVolume', { snapshotid: '11111111-1111-1111-1111-111111111111' }),
      is(431),
    );
    assert.equal(await snapshotCount(client), 0);

    await client.call('createSnapshot', { volumeid: root.id });
    await server.admin.request('updateResourceLimit', {
      resourcetype: 3,
      max: 1,
      account: 'careful',
      domainid: account.domainid as string,
    });
    await assert.rejects(client.request('createSnapshot', { volumeid: root.id }), is(535));
    await assert.rejects(
      client.request('createVMSnapshot', { virtualmachineid: vm.id, snapshotmemory: true }),
      is(431),
    );
    assert.equal(await snapshotCount(client), 1);
    const recount = async (resourcetype: number) =>
      (
        await server.admin.request<any>('updateResourceCount', {
          account: 'careful',
          domainid: account.domainid as string,
          resourcetype,
        })
      ).resourcecount[0].resourcecount;
    assert.equal(await recount(3), 1);
    assert.ok((await recount(11)) >= 1, 'the backup counts as secondary storage');

    // Snapshots go with their account.
    await server.admin.call('deleteAccount', { id: account.id as string });
    const all = (await server.admin.request<any>('listSnapshots', { listall: true })).snapshot ?? [];
    assert.deepEqual(
      all.filter((s: any) => s.account === 'careful'),
      [],
    );
  });
});

describe('snapshot policies', () => {
  test('next runs follow the schedule in its time zone', () => {
    const at = (iso: string) => Date.parse(iso);
    const next = (interval: any, schedule: string, timezone: string, now: string) =>
      new Date(nextRun({ interval, schedule, timezone }, at(now))).toISOString();
    assert.equal(next('HOURLY', '30', 'UTC', '2026-01-01T10:15:00Z'), '2026-01-01T10:30:00.000Z');
    assert.equal(next('HOURLY', '30', 'UTC', '2026-01-01T10:30:00Z'), '2026-01-01T11:30:00.000Z');
    assert.equal(next('DAILY', '00:02', 'Europe/Paris', '2026-01-01T05:00:00Z'), '2026-01-02T01:00:00.000Z');
    assert.equal(next('DAILY', '00:02', 'Europe/Paris', '2026-07-01T00:30:00Z'), '2026-07-02T00:00:00.000Z');
    // Day 2 of the week is Monday (1 is Sunday, as upstream); 2026-01-01 is a Thursday.
    assert.equal(next('WEEKLY', '0:0:2', 'UTC', '2026-01-01T12:00:00Z'), '2026-01-05T00:00:00.000Z');
    assert.equal(next('MONTHLY', '15:3:10', 'UTC', '2026-01-20T00:00:00Z'), '2026-02-10T03:15:00.000Z');
    assert.equal(next('MONTHLY', '15:3:10', 'UTC', '2026-01-05T00:00:00Z'), '2026-01-10T03:15:00.000Z');
  });

  test('create, validate, schedule and rotate', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'scheduled' });
    const { root } = await runningVm(client, 'sched-vm');
    const base = { volumeid: root.id, timezone: 'UTC', maxsnaps: 2 };
    for (const bad of [
      { intervaltype: 'YEARLY', schedule: '30' },
      { intervaltype: 'HOURLY', schedule: '61' },
      { intervaltype: 'DAILY', schedule: '30' },
      { intervaltype: 'DAILY', schedule: '30:25' },
      { intervaltype: 'WEEKLY', schedule: '30:2:8' },
      { intervaltype: 'MONTHLY', schedule: '30:2:31' },
      { intervaltype: 'HOURLY', schedule: '30', timezone: 'Mars/Olympus' },
      { intervaltype: 'HOURLY', schedule: '30', maxsnaps: 0 },
    ])
      await assert.rejects(
        client.request('createSnapshotPolicy', { ...base, ...bad }),
        is(431),
        JSON.stringify(bad),
      );
    assert.deepEqual(await client.request('listSnapshotPolicies', { volumeid: root.id }), {});

    const policy = (
      await client.request<any>('createSnapshotPolicy', { ...base, intervaltype: 'hourly', schedule: '30' })
    ).snapshotpolicy;
    assert.equal(policy.intervaltype, 0);
    assert.equal(policy.schedule, '30');
    assert.equal(policy.maxsnaps, 2);
    assert.equal(policy.volumeid, root.id);
    assert.equal(policy.fordisplay, true);
    const listed = await client.request<any>('listSnapshotPolicies', { volumeid: root.id });
    assert.equal(listed.count, 1);
    const updated = (await client.call<any>('updateSnapshotPolicy', { id: policy.id, fordisplay: false }))
      .snapshotpolicy;
    assert.equal(updated.fordisplay, false);

    const internal = (
      await store.db
        .selectFrom('snapshot_policies')
        .select('id')
        .where('uuid', '=', policy.id)
        .executeTakeFirstOrThrow()
    ).id;
    const recurring = async (): Promise<string[]> =>
      ((await client.request<any>('listSnapshots', { snapshottype: 'RECURRING' })).snapshot ?? []).map(
        (s: any) => s.id as string,
      );
    // Each time the policy is due, the scheduler takes one; beyond maxsnaps the oldest goes.
    let seen: string[] = [];
    for (let run = 1; run <= 3; run++) {
      await store.db
        .updateTable('snapshot_policies')
        .set({ next_run: 0 })
        .where('id', '=', internal)
        .execute();
      const before = seen;
      seen = await waitUntil<string[] | undefined>(
        async () => {
          const ids = await recurring();
          const fresh = ids.some((id) => !before.includes(id));
          return fresh && ids.length === Math.min(run, 2) ? ids : undefined;
        },
        40_000,
        `recurring snapshot ${run}`,
      ).then(
        (ids) => ids ?? [],
        async (e) => {
          // What the scheduler did meanwhile, and what it left: the reason is in there.
          const said = server.logs.filter((l) => /snapshot/i.test(l)).slice(-10);
          const left = await client.request<any>('listSnapshots', { snapshottype: 'RECURRING' });
          throw new Error(`${(e as Error).message}\n${JSON.stringify(left)}\n${said.join('\n')}`);
        },
      );
    }
    const snaps = (await client.request<any>('listSnapshots', { snapshottype: 'RECURRING' })).snapshot;
    assert.ok(snaps.every((s: any) => s.intervaltype === 'HOURLY' && s.state === 'BackedUp'));
    const nextRunAt = (
      await store.db
        .selectFrom('snapshot_policies')
        .select('next_run')
        .where('id', '=', internal)
        .executeTakeFirstOrThrow()
    ).next_run;
    assert.ok(Number(nextRunAt) > Date.now(), 'the policy moved on to its next slot');

    await client.request('deleteSnapshotPolicies', { id: policy.id });
    assert.deepEqual(await client.request('listSnapshotPolicies', { volumeid: root.id }), {});
  });
});

describe('VM snapshots', () => {
  test('create, list, revert, delete, and gone with the VM', async () => {
    const { client } = await createAccountAndLogin(server, { name: 'vmsnapper' });
    const { vm, root } = await runningVm(client, 'vs-vm');
    await attachedDisk(client, vm.id, 'vs-data');
    const first = (
      await client.call<any>('createVMSnapshot', {
        virtualmachineid: vm.id,
        name: 'vs1',
        description: 'first',
      })
    ).vmsnapshot;
    assert.equal(first.state, 'Ready');
    assert.equal(first.displayname, 'vs1');
    assert.equal(first.description, 'first');
    assert.equal(first.type, 'Disk');
    assert.equal(first.current, true);
    assert.equal(first.virtualmachineid, vm.id);
    const listed = await client.request<any>('listVMSnapshot', { virtualmachineid: vm.id });
    assert.equal(listed.count, 1);

    await assert.rejects(client.call('revertToVMSnapshot', { vmsnapshotid: first.id }), is(431));
    await client.call('stopVirtualMachine', { id: vm.id });
    const reverted = (await client.call<any>('revertToVMSnapshot', { vmsnapshotid: first.id }))
      .virtualmachine;
    assert.equal(reverted.id, vm.id);
    assert.equal(reverted.state, 'Stopped');

    const second = (await client.call<any>('createVMSnapshot', { virtualmachineid: vm.id, name: 'vs2' }))
      .vmsnapshot;
    assert.equal(second.parent, first.id);
    await assert.rejects(
      client.request('createVMSnapshot', { virtualmachineid: vm.id, name: 'vs2' }),
      is(431),
    );
    await client.call('deleteVMSnapshot', { vmsnapshotid: first.id });
    const left = (await client.request<any>('listVMSnapshot', { virtualmachineid: vm.id })).vmsnapshot;
    assert.deepEqual(
      left.map((s: any) => s.id),
      [second.id],
    );
    assert.equal(left[0].parent, undefined);

    await client.request('createSnapshotPolicy', {
      volumeid: root.id,
      intervaltype: 'DAILY',
      schedule: '00:03',
      timezone: 'UTC',
      maxsnaps: 1,
    });
    await server.admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
    assert.deepEqual(await client.request('listVMSnapshot', {}), {});
    // The ROOT volume went with the VM, and so did its policy.
    assert.deepEqual(await client.request('listSnapshotPolicies', {}), {});
  });
});
