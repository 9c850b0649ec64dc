/**
 * What the browser suites share: Debian's Chromium, screenshots, and the few Ant Design
 * interactions (selects, pop-confirms, action notifications) written once so that they wait for
 * the UI to be ready instead of racing its animations.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { REPO } from '../../server/test/harness.ts';

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
    // launch() gives Chromium a fresh temporary profile (--user-data-dir) of its own.
  });
}

/** An empty test-output/ui/<name> directory and a function that saves screenshots into it. */
export function screenshots(name: string): { dir: string; shot(p: Page, file: string): Promise<void> } {
  const dir = join(REPO, 'test-output/ui', name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    async shot(p, file) {
      await settle(p);
      await p.screenshot({ path: join(dir, `${file}.png`), fullPage: false });
    },
  };
}

/**
 * Waits until no finite CSS animation or transition runs. A modal that is still zooming in moves
 * focus into itself when it lands, which closes a select dropdown opened during the animation;
 * a popover that is still appearing moves under the pointer.
 */
export async function settle(p: Page): Promise<void> {
  await p.waitForFunction(
    () =>
      document
        .getAnimations()
        .every(
          (a) => a.playState !== 'running' || a.effect?.getTiming().iterations === Number.POSITIVE_INFINITY,
        ),
    undefined,
    { timeout: 10_000 },
  );
}

/**
 * Picks an option of an Ant Design select found by its label within `root` (a page or a dialog).
 * The dropdown is opened again if something (a re-render, a focus move) closed it first.
 */
export async function choose(
  root: Page | Locator,
  label: string,
  option: string | RegExp,
  exact = true,
): Promise<void> {
  const p = 'page' in root ? root.page() : root;
  // The combobox itself: a table column may carry the same label.
  const select = root.getByLabel(label, { exact }).and(root.getByRole('combobox'));
  const item = p
    .locator('.ant-select-dropdown:not(.ant-select-dropdown-hidden) .ant-select-item-option')
    .filter({ hasText: option })
    .first();
  for (let attempt = 1; ; attempt++) {
    await settle(p);
    await select.click();
    try {
      await item.click({ timeout: 5_000 });
      return;
    } catch (e) {
      if (attempt === 3) throw e;
      await p.keyboard.press('Escape');
    }
  }
}

/** Answers "Yes" in the pop-confirm that a destructive row action opened. */
export async function confirmPop(p: Page): Promise<void> {
  await settle(p);
  await p
    .locator('.ant-popover:not(.ant-popover-hidden) .ant-popconfirm-buttons')
    .getByRole('button', { name: 'Yes' })
    .click();
}

/**
 * Waits for the notification of an action, fails with the API's errortext if it failed, and
 * closes it so that the next action's notification is the one found. When none comes, the
 * failure says which jobs the server ran meanwhile (`jobs` lists them).
 */
export async function outcome(p: Page, label: string, jobs?: () => Promise<unknown>): Promise<void> {
  const note = p.locator('.ant-notification-notice').filter({ hasText: label }).first();
  try {
    await note.waitFor({ timeout: 30_000 });
  } catch (e) {
    const seen = await p
      .locator('.ant-notification-notice')
      .allInnerTexts()
      .catch(() => []);
    const ran = jobs ? await jobs().catch((err) => String(err)) : undefined;
    throw new Error(
      `no notification "${label}" within 30 s; shown: ${JSON.stringify(seen)}; jobs: ${JSON.stringify(ran)}`,
      { cause: e },
    );
  }
  const text = await note.innerText();
  assert.doesNotMatch(text, /failed/, text);
  await note
    .locator('.ant-notification-notice-close')
    .click({ timeout: 2_000 })
    .catch(() => {});
}
