/**
 * The built UI under the server's Content-Security-Policy, in Debian's Chromium: logging in, the
 * main screens and the noVNC console work, and the browser reports no CSP violation (a blocked
 * script, style, image, font or WebSocket would be one). Also: the session cookies are
 * SameSite=Strict and the login still works when the first page load comes from another site.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { waitUntil } from '../../server/test/agents.ts';
import { startServer, type TestServer } from '../../server/test/harness.ts';
import { launchChromium } from './browser.ts';

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
      name: 'csp-e2e',
    })
  ).virtualmachine.id;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A browser context that records every CSP violation and every console error its pages report. */
async function watchedContext(): Promise<{ context: BrowserContext; violations: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const violations: string[] = [];
  await context.exposeFunction('__cspViolation', (v: string) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      (window as unknown as { __cspViolation(v: string): void }).__cspViolation(
        `${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} in ${e.sourceFile}:${e.lineNumber}`,
      ),
    );
  });
  context.on('page', (p) => watchConsole(p, violations));
  return { context, violations };
}

function watchConsole(p: Page, violations: string[]): void {
  p.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) violations.push(m.text());
  });
}

async function login(page: Page): Promise<void> {
  await page.goto(`${server.url}/client/`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('whoami').waitFor();
}

test('the UI and its noVNC console run under the CSP without a single violation', async () => {
  const { context, violations } = await watchedContext();
  const page = await context.newPage();
  watchConsole(page, violations);
  const first = await page.goto(`${server.url}/client/`);
  assert.match(first?.headers()['content-security-policy'] ?? '', /frame-ancestors 'none'/);
  await login(page);
  for (const path of ['instances', `instances/${vmId}`, 'templates', 'events']) {
    await page.goto(`${server.url}/client/${path}`);
    await page.getByTestId('whoami').waitFor();
    await page.waitForLoadState('networkidle');
  }
  const cookies = await context.cookies();
  for (const name of ['JSESSIONID', 'sessionkey']) {
    const c = cookies.find((x) => x.name === name);
    assert.equal(c?.sameSite, 'Strict', name);
    assert.equal(c?.httpOnly, true, name);
  }

  // The console: noVNC's module, its canvas, its cursor and its same-origin WebSocket.
  await page.goto(`${server.url}/client/instances/${vmId}`);
  const button = page.getByRole('button', { name: 'Console of csp-e2e' });
  await button.waitFor();
  const popupOpened = context.waitForEvent('page');
  await button.click();
  const popup = await popupOpened;
  await popup.waitForFunction(
    () => document.querySelector('[data-testid=console-status]')?.textContent === 'connected',
    undefined,
    { timeout: 30_000 },
  );
  await popup.waitForTimeout(500);
  assert.deepEqual(violations, []);
  await context.close();
});

test('a signed-in browser arriving from another site by a link gets a working UI', async () => {
  const { context, violations } = await watchedContext();
  const page = await context.newPage();
  await login(page);
  // A page of another origin links to the UI: with SameSite=Strict the navigation itself carries
  // no cookie, but the UI's own API calls after loading are same-site and do.
  await page.goto(`data:text/html,<a id=go href="${server.url}/client/instances">open</a>`);
  await page.click('#go');
  await page.getByTestId('whoami').waitFor();
  await page.getByText('csp-e2e').first().waitFor();
  assert.deepEqual(violations, []);
  await context.close();
});
