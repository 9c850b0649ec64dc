/** CloudStack's date form, yyyy-MM-ddTHH:mm:ss+0000, as formatDate builds it from UTC fields. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDate } from '../src/clock.ts';

const reference = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}+0000`;

test('formatDate writes the same text as the ISO form cut to seconds, across years and edges', () => {
  assert.equal(formatDate(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), '2026-01-02T03:04:05+0000');
  assert.equal(formatDate(null), undefined);
  assert.equal(formatDate(undefined), undefined);
  for (const ms of [0, -1, 1, 999, 253402300799999, -30610224000000, -30610224000001, 253402300800000]) {
    assert.equal(formatDate(ms), reference(ms), String(ms));
  }
  for (let ms = -2e12, step = 7_777_777_777; ms < 4e12; ms += step)
    assert.equal(formatDate(ms), reference(ms));
  assert.throws(() => formatDate(Number.NaN), RangeError);
});
