/** tailOf: the end of a VM's console log file, as getConsoleOutput reads it on KVM and LXC hosts. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { tailOf } from '../src/drivers/console-log.ts';

const dir = mkdtempSync(join(tmpdir(), 'console-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the last maxBytes of the file, all of a shorter one, nothing for a missing one', () => {
  const file = join(dir, 'console.log');
  const text = Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i}\n`).join(''));
  writeFileSync(file, text);
  assert.deepEqual(tailOf(file, 100), text.subarray(text.length - 100));
  assert.deepEqual(tailOf(file, 1 << 20), text);
  assert.equal(tailOf(join(dir, 'never-ran.log'), 100).length, 0);
  assert.throws(() => tailOf(dir, 100), /EISDIR/, 'other errors are not hidden');
});
