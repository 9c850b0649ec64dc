#!/usr/bin/env node
// Runs the test suite with Node's test runner (TypeScript through tsx).
//   node scripts/run-tests.mjs            every *.test.ts on SQLite
//   node scripts/run-tests.mjs --db       the *.multidb.test.ts files on PostgreSQL and MariaDB
//   node scripts/run-tests.mjs FILE...    just those files
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

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
const env = { ...process.env };
if (dbMode) env.NIMBOSTACK_TEST_DBS = env.NIMBOSTACK_TEST_DBS ?? 'postgres,mysql';

// The real-VM and real-container suites share this machine's bridges, namespaces and router names
// (every suite's server calls its first router r-1-VM): one file at a time, whatever the cores.
// The storage suites run real VMs too (and rpcbind's socket is the machine's). The other files
// each start their own server on its own database and port: at least two at a time (Node's default
// is one fewer than the cores, a single file on a two-core machine, which left a core idle). The
// database suite keeps that default: its files share one PostgreSQL and one MariaDB server.
const concurrency =
  env.NIMBOSTACK_TEST_KVM === '1' || env.NIMBOSTACK_TEST_LXC === '1' || env.NIMBOSTACK_TEST_STORAGE === '1'
    ? 1
    : dbMode
      ? undefined
      : Math.max(2, availableParallelism() - 1);
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    ...(concurrency ? [`--test-concurrency=${concurrency}`] : []),
    '--test-reporter=spec',
    ...files,
  ],
  {
    stdio: 'inherit',
    env,
  },
);
process.exit(r.status ?? 1);
