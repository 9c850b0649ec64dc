/**
 * Snapshots and affinity groups in Debian's Chromium against the real management server with its
 * local zone (simulator host): a volume snapshot taken from the volumes list, listed, reverted and
 * turned into a volume; a weekly snapshot policy; a VM snapshot taken and reverted to from the
 * instance page; an anti-affinity group deployed into from the wizard and joined by a stopped VM;
 * everything deleted again from the UI; and a user's menu following listApis. Steps whose API the
 * server does not offer are skipped with the reason. Screenshots go to
 * test-output/ui/snapshots-affinity/.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, afterEach, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { createAccountAndLogin, startServer, type TestServer } from '../../server/test/harness.ts';
import { choose, confirmPop, launchChromium, outcome, screenshots, settle } from './browser.ts';

const DESKTOP = { width: 1280, height: 800 };
const BUILTIN_TEMPLATE = 'CentOS 5.5(64-bit) no GUI (Simulator)';
const VM = 'snap-vm';

let server: TestServer;
let browser: Browser;
let page: Page;
let apis: Set<string>;
let vmId = '';
let rootVolume = '';
type Listing = Record<string, Record<string, string>[] | undefined>;
const { shot } = screenshots('snapshots-affinity');
/** What the server ran lately, for a failure that waited for an action in vain. */
const recentJobs = async () =>
  ((await server.admin.request<Listing>('listAsyncJobs', { listall: true })).asyncjobs ?? []).map(
    (j) => `${j.cmd} ${j.jobstatus} ${j.created}`,
  );

const skip = (t: { skip(msg: string): void }, ...commands: string[]) => {
  const missing = commands.filter((c) => !apis.has(c));
  if (missing.length) t.skip(`the server does not offer ${missing.join(', ')} yet`);
  return missing.length > 0;
};

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  const listed = await server.admin.request<{ api: { name: string }[] }>('listApis');
  apis = new Set(listed.api.map((a) => a.name));
  // The instance whose disks are snapshotted; deployed through the API (the wizard has its own test).
  const zone = (await server.admin.request<Listing>('listZones', { name: 'local' })).zone![0];
  const tpl = (
    await server.admin.request<Listing>('listTemplates', {
      templatefilter: 'executable',
      name: BUILTIN_TEMPLATE,
    })
  ).template![0];
  const small = (await server.admin.request<Listing>('listServiceOfferings', { name: 'Small Instance' }))
    .serviceoffering![0];
  const r = await server.admin.call<{ virtualmachine: { id: string } }>('deployVirtualMachine', {
    zoneid: zone.id,
    templateid: tpl.id,
    serviceofferingid: small.id,
    name: VM,
  });
  vmId = r.virtualmachine.id;
  const vols = await server.admin.request<Listing>('listVolumes', { virtualmachineid: vmId, type: 'ROOT' });
  rootVolume = vols.volume![0].name;

  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: DESKTOP })).newPage();
  await page.goto(`${server.url}/client/`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

afterEach(async () => {
  await page?.keyboard.press('Escape');
});

test('a snapshot of a volume is taken from the volumes list and listed on the Snapshots page', async (t) => {
  if (skip(t, 'createSnapshot', 'listSnapshots')) return;
  await page.getByRole('menuitem', { name: 'Storage & images' }).click();
  await page.getByRole('tab', { name: 'Volumes' }).click();
  const row = page.getByRole('row').filter({ hasText: rootVolume });
  await row.getByRole('button', { name: 'Take snapshot' }).click();
  await settle(page);
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Snapshot name').fill('ui-snap-1');
  await dialog.getByRole('button', { name: 'OK' }).click();
  await outcome(page, `Snapshot ${rootVolume}`, recentJobs);

  await page.getByRole('menuitem', { name: 'Snapshots' }).click();
  await page.getByRole('heading', { name: 'Snapshots' }).waitFor();
  const snap = page.getByRole('row').filter({ hasText: 'ui-snap-1' });
  await snap.getByText('BackedUp').waitFor({ timeout: 30_000 });
  await snap.getByRole('cell', { name: rootVolume }).waitFor();
  const listed = (await server.admin.request<Listing>('listSnapshots', { name: 'ui-snap-1' })).snapshot![0];
  assert.equal(listed.volumename, rootVolume);
  assert.equal(listed.snapshottype, 'MANUAL');
  // The filters go to the server: a RECURRING filter hides the manual snapshot.
  await choose(page, 'Type', 'RECURRING');
  await snap.waitFor({ state: 'detached' });
  await choose(page, 'Type', 'MANUAL');
  await snap.waitFor();
  await choose(page, 'Volume', rootVolume);
  await snap.waitFor();
  await shot(page, 'snapshots');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export CSV' }).click(),
  ]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv, /^\uFEFFName,State,Volume,Type,Physical size,Account,Created\r\n/);
  assert.match(csv, new RegExp(`ui-snap-1,BackedUp,${rootVolume},MANUAL,`));
});

test('a weekly snapshot policy is created for the volume, listed and deleted', async (t) => {
  if (skip(t, 'createSnapshotPolicy', 'listSnapshotPolicies', 'deleteSnapshotPolicies')) return;
  await page.getByRole('menuitem', { name: 'Storage & images' }).click();
  await page.getByRole('tab', { name: 'Volumes' }).click();
  await page
    .getByRole('row')
    .filter({ hasText: rootVolume })
    .getByRole('button', { name: 'Snapshot policies' })
    .click();
  await settle(page);
  const policies = page.getByRole('dialog', { name: `Snapshot policies of ${rootVolume}` });
  await policies.getByRole('button', { name: 'Add policy' }).click();
  await settle(page);
  const form = page.getByRole('dialog', { name: `Add a snapshot policy to ${rootVolume}` });
  await choose(form, 'Interval', 'weekly');
  await form.getByLabel('Minute').fill('30');
  await form.getByLabel('Hour').fill('2');
  await choose(form, 'Day of the week', 'Monday');
  await form.getByLabel('Time zone').fill('Europe/Par');
  await page
    .locator('.ant-select-dropdown:not(.ant-select-dropdown-hidden) .ant-select-item-option')
    .filter({ hasText: 'Europe/Paris' })
    .click();
  await form.getByLabel('Snapshots to keep').fill('4');
  await shot(page, 'snapshot-policy-form');
  await form.getByRole('button', { name: 'OK' }).click();
  await outcome(page, `WEEKLY snapshot policy for ${rootVolume}`, recentJobs);
  await policies.getByRole('cell', { name: 'Mondays at 02:30' }).waitFor();
  const [policy] = (await server.admin.request<Listing>('listSnapshotPolicies', { listall: true }))
    .snapshotpolicy!;
  // As upstream, the interval is answered as its ordinal: 2 is weekly.
  assert.equal(Number(policy.intervaltype), 2);
  assert.equal(policy.schedule, '30:02:02');
  assert.equal(policy.timezone, 'Europe/Paris');
  assert.equal(Number(policy.maxsnaps), 4);
  await shot(page, 'snapshot-policies-of-volume');
  await policies.getByRole('button', { name: 'Close' }).click();

  await page.getByRole('menuitem', { name: 'Snapshots' }).click();
  await page.getByRole('tab', { name: 'Snapshot policies' }).click();
  const row = page.getByRole('row').filter({ hasText: 'Mondays at 02:30' });
  await row.getByRole('cell', { name: rootVolume }).waitFor();
  await shot(page, 'snapshot-policies');
  await row.getByRole('button', { name: 'Delete' }).click();
  await confirmPop(page);
  await outcome(page, 'Delete WEEKLY snapshot policy', recentJobs);
  await row.waitFor({ state: 'detached' });
  const left = await server.admin.request<Listing>('listSnapshotPolicies', { listall: true });
  assert.equal((left.snapshotpolicy ?? []).length, 0);
});

test('a VM snapshot is taken on the instance page and the stopped instance reverted to it', async (t) => {
  if (skip(t, 'createVMSnapshot', 'listVMSnapshot', 'revertToVMSnapshot', 'stopVirtualMachine')) return;
  await page.goto(`${server.url}/client/instances/${vmId}`);
  await page.getByRole('heading', { name: VM }).waitFor();
  await page.getByRole('tab', { name: 'Snapshots' }).click();
  await page.getByRole('button', { name: 'Take VM snapshot' }).click();
  await settle(page);
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('ui-vmsnap');
  await dialog.getByLabel('Description').fill('before the upgrade');
  await dialog.getByRole('button', { name: 'OK' }).click();
  await outcome(page, `VM snapshot of ${VM}`, recentJobs);
  const row = page.getByRole('row').filter({ hasText: 'ui-vmsnap' });
  await row.getByText('Ready').waitFor({ timeout: 30_000 });

  // A disk-only VM snapshot is reverted to while the instance is stopped.
  await page.getByRole('button', { name: 'Stop', exact: true }).click();
  await settle(page);
  await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click();
  await outcome(page, `Stop ${VM}`, recentJobs);
  await page
    .locator('.ant-tag')
    .filter({ hasText: /^Stopped$/ })
    .waitFor({ timeout: 30_000 });
  await row.getByRole('button', { name: 'Revert' }).click();
  await confirmPop(page);
  await outcome(page, `Revert ${VM} to ui-vmsnap`, recentJobs);
  const events = await server.admin.request<Listing>('listEvents', {
    type: 'VMSNAPSHOT.REVERTTO',
    listall: true,
  });
  assert.ok(
    (events.event ?? []).some((e) => /ui-vmsnap/.test(e.description)),
    JSON.stringify(events),
  );
  await row.getByText('current').waitFor();
  await shot(page, 'instance-vm-snapshots');

  await page.getByRole('menuitem', { name: 'Snapshots' }).click();
  await page.getByRole('tab', { name: 'VM snapshots' }).click();
  await page.getByRole('row').filter({ hasText: 'ui-vmsnap' }).getByRole('link', { name: VM }).waitFor();
  await shot(page, 'vm-snapshots');
});

test('a volume snapshot is reverted to and turned into a volume and a template', async (t) => {
  if (skip(t, 'revertSnapshot', 'createVolume')) return;
  // The instance was stopped by the previous test: a volume is reverted only while its VM is stopped.
  await page.getByRole('menuitem', { name: 'Snapshots' }).click();
  await page.getByRole('tab', { name: 'Volume snapshots' }).click();
  const row = page.getByRole('row').filter({ hasText: 'ui-snap-1' });
  await row.getByRole('button', { name: 'Revert' }).click();
  await confirmPop(page);
  await outcome(page, `Revert ${rootVolume} to ui-snap-1`, recentJobs);
  await row.getByRole('button', { name: 'Create from ui-snap-1' }).click();
  await page.getByRole('menuitem', { name: 'Volume…' }).click();
  await settle(page);
  await page.getByRole('dialog').getByLabel('Volume name').fill('ui-from-snap');
  await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click();
  await outcome(page, 'Create volume ui-from-snap', recentJobs);
  const vols = await server.admin.request<Listing>('listVolumes', { name: 'ui-from-snap', listall: true });
  assert.equal(vols.volume?.length, 1);
  if (apis.has('createTemplate')) {
    await row.getByRole('button', { name: 'Create from ui-snap-1' }).click();
    await page.getByRole('menuitem', { name: 'Template…' }).click();
    await settle(page);
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Template name').fill('ui-tpl-from-snap');
    await choose(dialog, 'OS type', /CentOS/, false);
    await dialog.getByRole('button', { name: 'OK' }).click();
    await outcome(page, 'Create template ui-tpl-from-snap', recentJobs);
    const tpls = await server.admin.request<Listing>('listTemplates', {
      templatefilter: 'self',
      name: 'ui-tpl-from-snap',
    });
    assert.equal(tpls.template?.length, 1);
  }
});

test('an anti-affinity group is created and an instance deployed into it from the wizard', async (t) => {
  if (skip(t, 'createAffinityGroup', 'listAffinityGroups', 'listAffinityGroupTypes', 'deployVirtualMachine'))
    return;
  await page.getByRole('menuitem', { name: 'Affinity groups' }).click();
  await page.getByRole('button', { name: 'Add affinity group' }).click();
  await settle(page);
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('ui-spread');
  await dialog.getByLabel('Description').fill('web servers on separate hosts');
  // Host anti-affinity is preselected when the server offers it.
  await dialog.getByText('Host anti-affinity (spread over hosts)').waitFor();
  await dialog.getByRole('button', { name: 'OK' }).click();
  await outcome(page, 'Create affinity group ui-spread', recentJobs);
  await page.getByRole('row').filter({ hasText: 'ui-spread' }).waitFor();

  await page.getByRole('menuitem', { name: 'Instances' }).click();
  await page.getByRole('button', { name: 'Add instance' }).click();
  await choose(page, 'Zone', /^local$/);
  await page.getByRole('button', { name: 'Next' }).click();
  await choose(page, 'Image', BUILTIN_TEMPLATE);
  await page.getByRole('button', { name: 'Next' }).click();
  await choose(page, 'Service offering', 'Small Instance');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: 'Next' }).click();
  await choose(page, 'Affinity groups', /ui-spread/);
  await page.keyboard.press('Escape');
  await shot(page, 'deploy-affinity');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Name', { exact: true }).fill('aff-vm-1');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('row', { name: /Affinity groups\s*ui-spread/ }).waitFor();
  await page.getByRole('button', { name: 'Deploy' }).click();
  await page.getByRole('heading', { name: 'aff-vm-1' }).waitFor({ timeout: 30_000 });
  await page.getByRole('tab', { name: 'Affinity' }).click();
  await page.getByRole('cell', { name: 'ui-spread' }).waitFor();
  await shot(page, 'instance-affinity');
  const [group] = (await server.admin.request<Listing>('listAffinityGroups', { name: 'ui-spread' }))
    .affinitygroup!;
  assert.equal(group.type, 'host anti-affinity');
  const deployed = (await server.admin.request<Listing>('listVirtualMachines', { name: 'aff-vm-1' }))
    .virtualmachine!;
  assert.deepEqual(group.virtualmachineIds, [deployed[0].id]);

  await page.getByRole('menuitem', { name: 'Affinity groups' }).click();
  await page
    .getByRole('row')
    .filter({ hasText: 'ui-spread' })
    .getByRole('button', { name: 'Instances (1)' })
    .click();
  await settle(page);
  await page.getByRole('dialog').getByRole('link', { name: 'aff-vm-1' }).waitFor();
  await shot(page, 'affinity-group-instances');
  await page.getByRole('dialog').getByRole('button', { name: 'Close' }).click();
  await shot(page, 'affinity-groups');
});

test('a stopped instance joins the group from its page; a running one cannot', async (t) => {
  if (skip(t, 'updateVMAffinityGroup')) return;
  await page.goto(`${server.url}/client/instances/${vmId}`);
  await page.getByRole('heading', { name: VM }).waitFor();
  await page.getByRole('tab', { name: 'Affinity' }).click();
  await page.getByText('In no affinity group').waitFor();
  await page.getByRole('button', { name: 'Change affinity groups' }).click();
  await settle(page);
  const dialog = page.getByRole('dialog');
  await choose(dialog, 'Affinity groups', /ui-spread/, false);
  await page.keyboard.press('Escape');
  await dialog.getByRole('button', { name: 'OK' }).click();
  await outcome(page, `Change affinity groups of ${VM}`, recentJobs);
  await page.getByRole('cell', { name: 'ui-spread' }).waitFor();
  const groups = await server.admin.request<Listing>('listAffinityGroups', { virtualmachineid: vmId });
  assert.deepEqual(
    (groups.affinitygroup ?? []).map((g) => g.name),
    ['ui-spread'],
  );
  const running = (await server.admin.request<Listing>('listVirtualMachines', { name: 'aff-vm-1' }))
    .virtualmachine![0];
  await page.goto(`${server.url}/client/instances/${running.id}`);
  await page.getByRole('tab', { name: 'Affinity' }).click();
  assert.equal(await page.getByRole('button', { name: 'Change affinity groups' }).isDisabled(), true);
});

test('VM snapshots, volume snapshots, the instance and the affinity group are deleted from the UI', async (t) => {
  if (skip(t, 'deleteVMSnapshot', 'deleteSnapshot', 'deleteAffinityGroup', 'destroyVirtualMachine')) return;
  await page.getByRole('menuitem', { name: 'Snapshots' }).click();
  await page.getByRole('tab', { name: 'VM snapshots' }).click();
  const vmSnap = page.getByRole('row').filter({ hasText: 'ui-vmsnap' });
  await vmSnap.getByRole('button', { name: 'Delete' }).click();
  await confirmPop(page);
  await outcome(page, 'Delete VM snapshot ui-vmsnap', recentJobs);
  await vmSnap.waitFor({ state: 'detached' });

  await page.getByRole('tab', { name: 'Volume snapshots' }).click();
  const snap = page.getByRole('row').filter({ hasText: 'ui-snap-1' });
  await snap.getByRole('button', { name: 'Delete' }).click();
  await confirmPop(page);
  await outcome(page, 'Delete snapshot ui-snap-1', recentJobs);
  await snap.waitFor({ state: 'detached' });
  assert.equal(
    ((await server.admin.request<Listing>('listSnapshots', { listall: true })).snapshot ?? []).length,
    0,
  );
  assert.equal(
    ((await server.admin.request<Listing>('listVMSnapshot', { listall: true })).vmsnapshot ?? []).length,
    0,
  );

  const running = (await server.admin.request<Listing>('listVirtualMachines', { name: 'aff-vm-1' }))
    .virtualmachine![0];
  await page.goto(`${server.url}/client/instances/${running.id}`);
  await page.getByRole('button', { name: 'Destroy', exact: true }).click();
  await settle(page);
  await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click();
  await outcome(page, 'Destroy aff-vm-1', recentJobs);

  await page.getByRole('menuitem', { name: 'Affinity groups' }).click();
  const group = page.getByRole('row').filter({ hasText: 'ui-spread' });
  await group.getByRole('button', { name: 'Delete' }).click();
  await confirmPop(page);
  await outcome(page, 'Delete affinity group ui-spread', recentJobs);
  await group.waitFor({ state: 'detached' });
  const left = await server.admin.request<Listing>('listAffinityGroups', { listall: true });
  assert.equal((left.affinitygroup ?? []).length, 0);
});

test('a user sees the snapshot and affinity screens that listApis allows, by keyboard', async () => {
  const bob = await createAccountAndLogin(server, { name: 'bob' });
  const userApis = new Set(
    (await bob.client.request<{ api: { name: string }[] }>('listApis')).api.map((a) => a.name),
  );
  const context = await browser.newContext({ viewport: DESKTOP });
  const p = await context.newPage();
  await p.goto(`${server.url}/client/`);
  await p.getByLabel('Username').waitFor();
  await p.keyboard.type('bob');
  await p.keyboard.press('Tab');
  await p.keyboard.type('secret-pw');
  await p.keyboard.press('Enter');
  await p.getByRole('heading', { name: 'Dashboard' }).waitFor();
  const menu = p.getByRole('navigation', { name: 'Main' });
  assert.equal(
    await menu.getByRole('menuitem', { name: 'Snapshots' }).count(),
    userApis.has('listSnapshots') ? 1 : 0,
  );
  assert.equal(
    await menu.getByRole('menuitem', { name: 'Affinity groups' }).count(),
    userApis.has('listAffinityGroups') ? 1 : 0,
  );
  if (userApis.has('listAffinityGroups')) {
    // The menu is usable from the keyboard: focus the entry and press Enter.
    await menu.getByRole('menuitem', { name: 'Affinity groups' }).focus();
    await p.keyboard.press('Enter');
    await p.getByRole('heading', { name: 'Affinity groups' }).waitFor();
    // A user sees no other account's groups and no account column.
    assert.equal(await p.getByRole('columnheader', { name: 'Account' }).count(), 0);
    await shot(p, 'user-affinity-groups');
  }
  await context.close();
});
