/**
 * Where a V8 CPU profile spent its time: the functions with the most self time, and the source
 * files with the most total self time. For `npm run bench -- --cpu-profile DIR`.
 *   npx tsx bench/profile-summary.ts DIR/CPU.*.cpuprofile [top=30] [last=S] [skip=T]
 * With `last=S` only the profile's last S seconds count: a targeted run (`--only cheap`) ends with
 * the case it measures, after minutes of building the cloud. With `skip=T` too, the window ends T
 * seconds before the profile does (a case followed by another, e.g. the agent case by the planner).
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

const [file, topArg, lastArg, skipArg] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: tsx bench/profile-summary.ts FILE.cpuprofile [top]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
};
const top = Number(topArg ?? 30);
const elapsedUs = profile.timeDeltas.reduce((a, b) => a + b, 0);
const toUs = elapsedUs - Number(skipArg ?? 0) * 1e6;
const fromUs = lastArg ? toUs - Number(lastArg) * 1e6 : 0;
const selfUs = new Map<number, number>();
let atUs = 0;
for (const [i, id] of profile.samples.entries()) {
  atUs += profile.timeDeltas[i] ?? 0;
  if (atUs >= fromUs && atUs <= toUs) selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const node of profile.nodes) {
  const us = selfUs.get(node.id) ?? 0;
  const { functionName, url, lineNumber } = node.callFrame;
  const where = url.replace(/^file:\/\//, '').replace(/.*\/node_modules\//, '~/');
  const fn = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`;
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  byFile.set(where || '(native)', (byFile.get(where || '(native)') ?? 0) + us);
}
const print = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(
      `${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`,
    );
};
process.stdout.write(`${(total / 1e6).toFixed(1)} s sampled\n`);
print('self time by function', byFunction);
print('self time by file', byFile);
