#!/usr/bin/env node
// Builds the UI when packages/ui/dist is missing or older than its sources, so that a fresh
// clone shows the UI after `npm ci && npm start` while later starts stay fast (a stat walk).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const ui = resolve(import.meta.dirname, '..');
const built = join(ui, 'dist', 'index.html');

function newest(path) {
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

const sources = ['src', 'index.html', 'vite.config.ts', 'package.json'].map((p) => join(ui, p));
if (existsSync(built) && statSync(built).mtimeMs >= Math.max(...sources.map(newest))) process.exit(0);
// npm hoists vite to the workspace root; look upwards as Node's resolution does.
let vite = '';
for (let dir = ui; !vite; dir = dirname(dir)) {
  const candidate = join(dir, 'node_modules', 'vite', 'bin', 'vite.js');
  if (existsSync(candidate)) vite = candidate;
  else if (dirname(dir) === dir) {
    console.error('vite is not installed: run npm ci first');
    process.exit(1);
  }
}
console.log('building the web UI (packages/ui) ...');
const r = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], { cwd: ui, stdio: 'inherit' });
process.exit(r.status ?? 1);
