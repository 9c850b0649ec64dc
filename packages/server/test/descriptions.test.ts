/**
 * Every registered command, parameter and response field is described in our own words: the text
 * exists, and it is not upstream's sentence for the same item (../shared/cloudstack-api/apis.json,
 * compared ignoring case, spacing and punctuation; the comparison is skipped where it is absent).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { allCommands, allResponseFields } from '../src/commands.ts';
import { ResponseFieldIndex } from '../src/registry/response-fields.ts';
import { REPO } from './harness.ts';

const UPSTREAM = join(REPO, '../shared/cloudstack-api/apis.json');
const upstream = new Map<string, any>(
  existsSync(UPSTREAM) ? JSON.parse(readFileSync(UPSTREAM, 'utf8')).map((c: any) => [c.name, c]) : [],
);
const norm = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '');
const fields = new ResponseFieldIndex(allResponseFields);

/** What is wrong with one description ('' when it is fine). */
function problem(ours: string | undefined, theirs: string | undefined): string {
  if (!ours?.trim()) return 'no description';
  if (theirs && norm(ours) === norm(theirs)) return `upstream's text: "${theirs}"`;
  return '';
}

test('every command, parameter and response field has a description of our own', () => {
  const problems: string[] = [];
  const counted = { commands: 0, params: 0, fields: 0 };
  for (const command of allCommands) {
    const u = upstream.get(command.name);
    const note = (item: string, p: string) => p && problems.push(`${item}: ${p}`);
    note(command.name, problem(command.description, u?.description));
    counted.commands++;
    const upParams = new Map<string, any>((u?.params ?? []).map((p: any) => [p.name.toLowerCase(), p]));
    for (const [name, spec] of Object.entries(command.params)) {
      note(`${command.name} param ${name}`, problem(spec.description, upParams.get(name)?.description));
      counted.params++;
    }
    const object = command.catalog.responseObjectName ?? command.name;
    const upFields = new Map<string, any>((u?.response ?? []).map((f: any) => [f.name, f]));
    for (const f of command.catalog.response) {
      if (f.name === 'jobid' || f.name === 'jobstatus') continue;
      note(
        `${command.name} field ${object}.${f.name}`,
        problem(fields.describe(object, f.name), upFields.get(f.name)?.description),
      );
      counted.fields++;
    }
  }
  console.log(`described: ${JSON.stringify(counted)}; problems: ${problems.length}`);
  assert.deepEqual(problems.slice(0, 400), [], `${problems.length} problems (first 400 shown)`);
});
