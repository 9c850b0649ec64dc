/**
 * The full fuzz sweep (`npm run test:fuzz`): every declared command, every parameter, every case of
 * cases.ts, as the root admin, as the tenant alice (unknown uuids, and bob's uuids for the foreign
 * cases) and as the tenant carol (the deep cases, on her own entities), against an Advanced simulator zone with both tenants' resources. Prints the figures and exits
 * non-zero on any violation: an HTTP status that is no CloudStack error code, an unexpected
 * exception (the generic 530), a dropped connection, an answer that is no error envelope, a bad
 * error text (stack trace, SQL, file path, "undefined"/"null"/"NaN"/"[object Object]"), a wrong
 * code or text where the case knows the answer, a foreign entity accepted or shown, a job that
 * fails the same ways, a list that changed, or a heap that kept growing.
 *   FUZZ_CONCURRENCY=4   requests in flight (default 4)
 *   FUZZ_LIMIT=N         only the first N cases (quick local runs)
 *   FUZZ_CALLERS=admin,alice,carol   whose cases to send (default all three)
 *   FUZZ_COMMANDS=a,b    only these commands (replaying what a sweep found)
 *   PUBLIC_IP_TEST_DB=postgres|mysql the database (default SQLite), as public-ip-zone.ts
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  type Caller,
  describe,
  type FuzzCase,
  runCase,
  sessionOf,
  sweepCases,
  type Violation,
} from './cases.ts';
import { compare, snapshot } from './snapshot.ts';
import { startFuzzWorld } from './world.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapMb = () => {
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

const started = Date.now();
const world = await startFuzzWorld();
let failed = false;
try {
  const app = world.zone.server.app;
  const only = process.env.FUZZ_COMMANDS?.split(',');
  const commands = app.registry.all().filter((c) => !only || only.includes(c.name));
  // Alice and carol are users: they get the commands the User role may call.
  const userApis = await world.alice.request<{ api?: { name: string }[] }>('listApis', {});
  const userMay = new Set((userApis.api ?? []).map((a) => a.name));
  const userCommands = commands.filter((c) => userMay.has(c.name));
  const callers = (process.env.FUZZ_CALLERS ?? 'admin,alice,carol').split(',');
  const cases: FuzzCase[] = [
    ...(callers.includes('admin') ? sweepCases(world, commands, 'admin') : []),
    ...(callers.includes('alice') ? sweepCases(world, userCommands, 'alice') : []),
    ...(callers.includes('carol') ? sweepCases(world, userCommands, 'carol') : []),
  ];
  const limit = Number(process.env.FUZZ_LIMIT ?? cases.length);
  const todo = cases.slice(0, limit);
  const sessions: Record<Caller, ReturnType<typeof sessionOf>> = {
    admin: sessionOf(world.admin),
    alice: sessionOf(world.alice),
    carol: sessionOf(world.carol),
  };
  const before = await snapshot(world.admin);
  const setupSeconds = (Date.now() - started) / 1000;

  const violations: Violation[] = [];
  // One line per command, parameter and problem as they come: the sweep repeats a bug once per
  // bad value.
  const shown = new Set<string>();
  const report = (v: Violation) => {
    const key = `${v.what} ${v.case.caller} ${v.case.command} ${v.case.kind} ${v.case.param}`;
    if (shown.has(key)) return;
    shown.add(key);
    console.log(describe(v));
  };
  const perKind = new Map<string, number>();
  const codes = new Map<number, number>();
  let next = 0;
  let done = 0;
  let heapAtQuarter = 0;
  const sweepStart = Date.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= todo.length) return;
      const c = todo[i];
      const { answer, violations: found } = await runCase(sessions, c);
      violations.push(...found);
      for (const v of found) report(v);
      perKind.set(c.kind, (perKind.get(c.kind) ?? 0) + 1);
      codes.set(answer.status, (codes.get(answer.status) ?? 0) + 1);
      done++;
      if (done === Math.floor(todo.length / 4)) heapAtQuarter = heapMb();
      if (done % 2000 === 0) console.log(`  ${done}/${todo.length} cases, ${violations.length} violations`);
    }
  };
  await Promise.all(Array.from({ length: Number(process.env.FUZZ_CONCURRENCY ?? 4) }, worker));
  const sweepSeconds = (Date.now() - sweepStart) / 1000;
  const heapAtEnd = heapMb();

  const after = await snapshot(world.admin);
  const diff = compare(before, after, {
    account: 'carol',
    ids: new Set([...world.own.carol.values()].flat()),
  });
  for (const change of diff.changed)
    violations.push({
      case: { kind: 'bad', caller: 'admin', command: '(lists)', raw: [] },
      what: 'changed',
      detail: change,
    });
  // Growth past what caches may hold (statements, callers, sessions) means something keeps
  // every request: the heap after the sweep may not exceed its quarter mark by more than 64 MB.
  const growth = heapAtEnd - heapAtQuarter;
  if (limit === cases.length && growth > 64)
    violations.push({
      case: { kind: 'bad', caller: 'admin', command: '(process)', raw: [] },
      what: 'memory',
      detail: `heap grew ${growth.toFixed(0)} MB from a quarter of the sweep to its end`,
    });

  const count = (what: string) => violations.filter((v) => v.what === what).length;
  const byWhat = new Map<string, number>();
  for (const v of violations) byWhat.set(v.what, (byWhat.get(v.what) ?? 0) + 1);
  for (const change of diff.changed) console.log(`[changed] ${change}`);
  const pairs = new Set(todo.map((c) => `${c.caller} ${c.command}`));
  console.log(
    [
      '',
      `fuzz sweep: ${commands.length} commands (${pairs.size} command×caller pairs) × ${todo.length} cases sent`,
      `  by kind: ${[...perKind].map(([k, n]) => `${k} ${n}`).join(', ')}`,
      `  answers: ${[...codes]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
      `  5xx seen: ${count('5xx')}, dropped: ${count('dropped')}, bad texts: ${count('bad text')}, other violations: ${violations.length - count('5xx') - count('dropped') - count('bad text')} (${[...byWhat].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'})`,
      `  lists: ${diff.changed.length} items changed, ${diff.added} created by the fuzzing`,
      `  heap: ${heapAtQuarter.toFixed(0)} MB at a quarter, ${heapAtEnd.toFixed(0)} MB at the end`,
      `  time: setup ${setupSeconds.toFixed(0)} s, sweep ${sweepSeconds.toFixed(0)} s`,
    ].join('\n'),
  );
  // The plain closing line CI runners read: requests without a violation, and those with one
  // (each changed list item and a heap that grew count as one more failure).
  const sent = new Set<FuzzCase>(todo);
  const badRequests = new Set(violations.map((v) => v.case).filter((c) => sent.has(c))).size;
  const otherFailures = violations.filter((v) => !sent.has(v.case)).length;
  console.log(`fuzz: ${todo.length - badRequests} passed, ${badRequests + otherFailures} failed`);
  failed = violations.length > 0;
} finally {
  await world.stop();
}
process.exit(failed ? 1 : 0);
