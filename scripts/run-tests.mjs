#!/usr/bin/env node
// Runs the test suite with Node's test runner (TypeScript through tsx).
//   node scripts/run-tests.mjs            every *.test.ts on SQLite
//   node scripts/run-tests.mjs --db       the *.multidb.test.ts files on PostgreSQL and MariaDB, one
//                                         run per database at the same time (NIMBOSTACK_TEST_DBS
//                                         picks the databases), each line prefixed with its database
//   node scripts/run-tests.mjs FILE...    just those files
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const dbMode = args.includes('--db');
const explicit = args.filter((a) => !a.startsWith('--'));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

let files = explicit.length ? explicit : walk('packages', []).sort();
if (dbMode) files = files.filter((f) => f.endsWith('.multidb.test.ts'));

const dbs = (process.env.NIMBOSTACK_TEST_DBS ?? 'postgres,mysql').split(',').map((s) => s.trim());

// The real-VM and real-container suites share this machine's bridges, namespaces and router names
// (every suite's server calls its first router r-1-VM): one file at a time, whatever the cores.
// The storage suites run real VMs too (and rpcbind's socket is the machine's). The other files
// each start their own server on its own database and port: at least two at a time (Node's default
// is one fewer than the cores, a single file on a two-core machine, which left a core idle). The
// database suite runs once per database, the runs side by side, each with its share of one fewer
// than the cores (two files at a time in all on two cores): every case makes its own randomly
// named database and takes free ports, so the runs do not meet. It lasts as long as MariaDB's run.
const concurrency =
  process.env.NIMBOSTACK_TEST_KVM === '1' ||
  process.env.NIMBOSTACK_TEST_LXC === '1' ||
  process.env.NIMBOSTACK_TEST_STORAGE === '1'
    ? 1
    : dbMode
      ? Math.ceil((availableParallelism() - 1) / dbs.length) || 1
      : Math.max(2, availableParallelism() - 1);
const testArgs = [
  '--import',
  'tsx',
  '--test',
  `--test-concurrency=${concurrency}`,
  '--test-reporter=spec',
  ...files,
];

if (!dbMode) {
  const r = spawnSync(process.execPath, testArgs, { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const width = Math.max(...dbs.map((db) => db.length));
const children = [];
const runs = dbs.map(
  (db) =>
    new Promise((done) => {
      const started = Date.now();
      const child = spawn(process.execPath, testArgs, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          NIMBOSTACK_TEST_DBS: db,
          // The reporter writes to a pipe here; keep its colours when a person is watching.
          ...(process.stdout.isTTY && !process.env.NO_COLOR ? { FORCE_COLOR: '1' } : {}),
        },
      });
      children.push(child);
      const prefix = `[${db.padEnd(width)}] `;
      for (const stream of [child.stdout, child.stderr])
        createInterface({ input: stream }).on('line', (line) => process.stdout.write(prefix + line + '\n'));
      child.on('close', (code, signal) => {
        const seconds = Math.round((Date.now() - started) / 1000);
        const outcome = code === 0 ? 'passed' : `failed (${signal ?? `exit ${code}`})`;
        done({ ok: code === 0, text: `${db}: ${outcome} in ${seconds} s` });
      });
    }),
);
for (const signal of ['SIGINT', 'SIGTERM'])
  process.on(signal, () => {
    for (const child of children) child.kill(signal);
  });
const results = await Promise.all(runs);
for (const r of results) console.log(`# database suite on ${r.text}`);
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
