/**
 * Two-factor authentication in Debian's Chromium against the real server: a user sets up TOTP
 * from the header's shield button (the secret and the otpauth:// URI are shown, a first code
 * confirms), logs out, logs in again and is asked for the code before the app opens; a wrong
 * code sends them back to the password. The codes are computed here from the secret the page
 * shows, as an authenticator app would. Also checks that the UI's state-changing calls carry the
 * session key (the server refuses them otherwise). Screenshots go to test-output/ui/two-factor/.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { totp } from '../../server/src/iam/totp.ts';
import { createAccountAndLogin, startServer, type TestServer } from '../../server/test/harness.ts';
import { launchChromium, screenshots, settle } from './browser.ts';

let server: TestServer;
let browser: Browser;
const { shot } = screenshots('two-factor');

async function login(p: Page, username: string, password: string): Promise<void> {
  await p.goto(`${server.url}/client/`);
  await p.getByLabel('Username').fill(username);
  await p.getByLabel('Password').fill(password);
  await p.getByRole('button', { name: 'Log in' }).click();
}

before(async () => {
  server = await startServer();
  await server.admin.request('updateConfiguration', { name: 'enable.user.2fa', value: 'true' });
  await createAccountAndLogin(server, { name: 'otpuser' });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('set up TOTP from the header, then log in with a code', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = await context.newPage();
  await login(p, 'otpuser', 'secret-pw');
  await p.getByTestId('whoami').waitFor();

  await p.getByRole('button', { name: 'Two-factor authentication' }).click();
  await p.getByRole('button', { name: 'Set up two-factor authentication' }).click();
  const secret = (await p.getByTestId('totp-secret').innerText()).trim();
  assert.match(secret, /^[A-Z2-7]{32}$/);
  const uri = await p.getByTestId('otpauth-uri').locator('a').getAttribute('href');
  assert.equal(
    uri,
    `otpauth://totp/Nimbostack%3Aotpuser?secret=${secret}&issuer=Nimbostack&algorithm=SHA1&digits=6&period=30`,
  );
  await shot(p, '01-setup-secret');
  // The previous step's code, so that the login below can use the current one (a code works once).
  await p.getByLabel('Authentication code').fill(totp(secret, Date.now() - 30_000));
  await p.getByRole('button', { name: 'Confirm' }).click();
  await p.getByTestId('twofactor-status').waitFor();
  await shot(p, '02-enabled');
  await p.keyboard.press('Escape');
  await settle(p);
  await p.getByRole('button', { name: 'Log out' }).click();

  // A wrong code ends the attempt: back to the password, with the server's reason.
  await login(p, 'otpuser', 'secret-pw');
  await p.getByLabel('Authentication code').fill('000000');
  await shot(p, '03-code-asked');
  await p.getByRole('button', { name: 'Verify' }).click();
  await p.getByRole('alert').filter({ hasText: 'code is invalid' }).waitFor();
  await p.getByLabel('Password').waitFor();

  await login(p, 'otpuser', 'secret-pw');
  await p.getByLabel('Authentication code').fill(totp(secret, Date.now()));
  await p.getByRole('button', { name: 'Verify' }).click();
  await p.getByTestId('whoami').waitFor();
  assert.match(await p.getByTestId('whoami').innerText(), /otpuser/);
  await shot(p, '04-logged-in');
  await context.close();
});
