/**
 * The project switcher in Debian's Chromium against the real management server: a user's own
 * affinity group in the default view, a project's group once the project is chosen in the header,
 * a group made in the project view belonging to the project, the choice surviving a reload, and
 * the default view again. Screenshots go to test-output/ui/projects/.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { createAccountAndLogin, startServer, type TestServer } from '../../server/test/harness.ts';
import { choose, launchChromium, outcome, screenshots, settle } from './browser.ts';

let server: TestServer;
let browser: Browser;
let page: Page;
let projectId = '';
const { shot } = screenshots('projects');

before(async () => {
  server = await startServer();
  const { client } = await createAccountAndLogin(server, { name: 'teamlead' });
  projectId = (await client.call<{ project: { id: string } }>('createProject', { name: 'web-team' })).project
    .id;
  await client.call('createAffinityGroup', { name: 'my-own', type: 'host anti-affinity' });
  await client.call('createAffinityGroup', {
    name: 'team-spread',
    type: 'host anti-affinity',
    projectid: projectId,
  });

  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`${server.url}/client/`);
  await page.getByLabel('Username').fill('teamlead');
  await page.getByLabel('Password').fill('secret-pw');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const groupRow = (name: string) => page.getByRole('row').filter({ hasText: name });

test("the header's project switcher shows the project's resources and creates in the project", async () => {
  await page.getByRole('menuitem', { name: 'Affinity groups' }).click();
  await groupRow('my-own').waitFor();
  assert.equal(await groupRow('team-spread').count(), 0, 'the default view shows no project resource');

  await choose(page, 'Project', 'web-team');
  await groupRow('team-spread').waitFor();
  assert.equal(await groupRow('my-own').count(), 0, "the project view shows only the project's");
  await shot(page, 'project-view');

  await page.getByRole('button', { name: 'Add affinity group' }).click();
  await settle(page);
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name', { exact: true }).fill('made-in-ui');
  await dialog.getByRole('button', { name: 'OK' }).click();
  await outcome(page, 'Create affinity group made-in-ui');
  await groupRow('made-in-ui').waitFor();
  const inProject = await server.admin.request<{ affinitygroup?: { name: string; projectid?: string }[] }>(
    'listAffinityGroups',
    { projectid: projectId },
  );
  assert.deepEqual((inProject.affinitygroup ?? []).map((g) => [g.name, g.projectid]).sort(), [
    ['made-in-ui', projectId],
    ['team-spread', projectId],
  ]);

  // The choice is the tab's: a reload keeps it.
  await page.reload();
  await groupRow('team-spread').waitFor();
  assert.equal(await groupRow('my-own').count(), 0);

  await choose(page, 'Project', 'Default view');
  await groupRow('my-own').waitFor();
  assert.equal(await groupRow('made-in-ui').count(), 0);
  await shot(page, 'default-view');
});
