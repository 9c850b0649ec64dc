/**
 * The VM console in Debian's Chromium against the real server and its local (simulator) zone:
 * the Console button of a running instance (list row and detail page) opens a new tab whose noVNC
 * client connects through the server's proxy and the agent's tunnel to the simulator's RFB
 * server, draws its framebuffer and sends keys to it. Also: the URL createConsoleEndpoint answers
 * opens the console in a browser with no login. Screenshots go to test-output/ui/console/.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { waitUntil } from '../../server/test/agents.ts';
import { startServer, type TestServer } from '../../server/test/harness.ts';
import { launchChromium, screenshots } from './browser.ts';

const SHOTS = screenshots('console').dir;

let server: TestServer;
let browser: Browser;
let vmId: string;

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  const zoneid = (await server.admin.request<{ zone: { id: string }[] }>('listZones', {})).zone[0].id;
  const templateid = await waitUntil(
    async () =>
      (
        await server.admin.request<{ template?: { id: string; isready: boolean }[] }>('listTemplates', {
          templatefilter: 'featured',
          zoneid,
        })
      ).template?.find((x) => x.isready)?.id,
    20_000,
    'the built-in template',
  );
  const serviceofferingid = (
    await server.admin.request<{ serviceoffering: { id: string }[] }>('listServiceOfferings', {})
  ).serviceoffering[0].id;
  vmId = (
    await server.admin.call<{ virtualmachine: { id: string } }>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid,
      name: 'console-e2e',
    })
  ).virtualmachine.id;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Whether noVNC's canvas shows the simulator's text (bright pixels on its dark blue). */
async function framebufferDrawn(p: Page): Promise<boolean> {
  return p.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>('[data-testid=console-screen] canvas');
    if (!canvas || canvas.width < 100) return false;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < data.length; i += 4) if (data[i] > 200 && data[i + 1] > 200) return true;
    return false;
  });
}

async function canvasBytes(p: Page): Promise<string> {
  return p.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>('[data-testid=console-screen] canvas')!;
    return canvas.toDataURL();
  });
}

test('Console opens noVNC in a new tab, connected to the simulator VM, and keys reach it', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(`${server.url}/client/`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('whoami').waitFor();

  // The instance list offers it on the running VM's row.
  await page.goto(`${server.url}/client/instances`);
  await page.getByRole('button', { name: 'Console of console-e2e' }).waitFor();

  await page.goto(`${server.url}/client/instances/${vmId}`);
  const button = page.getByRole('button', { name: 'Console of console-e2e' });
  await button.waitFor();
  const popupOpened = context.waitForEvent('page');
  const clicked = performance.now();
  await button.click();
  const popup = await popupOpened;
  await popup.waitForFunction(
    () => document.querySelector('[data-testid=console-status]')?.textContent === 'connected',
    undefined,
    { timeout: 30_000 },
  );
  const connectedMs = performance.now() - clicked;
  await waitUntil(async () => (await framebufferDrawn(popup)) || undefined, 30_000, 'the first framebuffer');
  const firstFrameMs = performance.now() - clicked;
  assert.match(popup.url(), new RegExp(`/client/console/${vmId}$`));
  assert.match(await popup.title(), /^i-\d+-\d+-VM – console$/);
  console.log(
    `# console: click → noVNC connected ${connectedMs.toFixed(0)} ms, → first framebuffer drawn ${firstFrameMs.toFixed(0)} ms`,
  );

  // Keys typed in the browser reach the simulated VM, which echoes them on its screen.
  const before = await canvasBytes(popup);
  await popup.getByTestId('console-screen').click();
  await popup.keyboard.type('hello');
  await waitUntil(async () => (await canvasBytes(popup)) !== before || undefined, 10_000, 'the echo');
  await popup.waitForTimeout(300);
  await popup.screenshot({ path: join(SHOTS, 'console.png') });

  // Disconnecting shows it; Reconnect asks for a new endpoint with the session.
  await popup.getByRole('button', { name: 'Disconnect' }).click();
  await popup.waitForFunction(
    () => document.querySelector('[data-testid=console-status]')?.textContent === 'disconnected',
  );
  await popup.getByRole('button', { name: 'Reconnect' }).click();
  await popup.waitForFunction(
    () => document.querySelector('[data-testid=console-status]')?.textContent === 'connected',
    undefined,
    { timeout: 30_000 },
  );
  await context.close();
});

test("createConsoleEndpoint's url opens the console without a login, once", async () => {
  const e = (
    await server.admin.request<{ consoleendpoint: { url: string } }>('createConsoleEndpoint', {
      virtualmachineid: vmId,
    })
  ).consoleendpoint;
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(e.url);
  await page.waitForFunction(
    () => document.querySelector('[data-testid=console-status]')?.textContent === 'connected',
    undefined,
    { timeout: 30_000 },
  );
  await waitUntil(async () => (await framebufferDrawn(page)) || undefined, 30_000, 'the framebuffer');
  // The token is spent: the same URL in another tab fails with the server's reason.
  const again = await context.newPage();
  await again.goto(e.url);
  await again.waitForFunction(
    () => document.querySelector('[data-testid=console-status]')?.textContent === 'failed',
    undefined,
    { timeout: 30_000 },
  );
  await again.getByText(/already used/).waitFor();
  await again.screenshot({ path: join(SHOTS, 'console-token-used.png') });
  await context.close();
});
