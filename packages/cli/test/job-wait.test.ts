/**
 * Waiting for a long job, in a real terminal (tmux): the progress line with the elapsed time, and
 * Ctrl-C that leaves the job running and prints its id, both from the command line and in the
 * shell. The real server runs the deploys; its local zone's simulator host is told to take a
 * minute over each start, so the jobs are still running when Ctrl-C comes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { keyClient, REPO, startServer, type TestServer } from '../../server/test/harness.ts';

const BIN = join(REPO, 'packages/cli/bin/nimbo.js');
const run = promisify(execFile);
const socket = `nimbo-job-test-${process.pid}`;

let server: TestServer;
let home: string;
let deployArgs: string;

const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]);
const screen = async () => (await tmux('capture-pane', '-p', '-J')).stdout;
async function waitForScreen(pattern: RegExp): Promise<string> {
  let text = '';
  for (let i = 0; i < 150; i++) {
    text = await screen();
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`screen never matched ${pattern}:\n${text}`);
}

/** The job id the screen names after an interrupt, checked against the server: still running. */
async function assertStillRunning(text: string): Promise<void> {
  const jobid = /job ([0-9a-f-]{36}) is still running/.exec(text)?.[1];
  assert.ok(jobid, `no job id on screen:\n${text}`);
  const job = await server.admin.request<any>('queryAsyncJobResult', { jobid });
  assert.equal(job.jobstatus, 0, 'the interrupted job goes on on the server');
}

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  const zone = (await server.admin.request<any>('listZones', {})).zone[0];
  const template = (await server.admin.request<any>('listTemplates', { templatefilter: 'featured' }))
    .template[0];
  const offering = (await server.admin.request<any>('listServiceOfferings', {})).serviceoffering[0];
  deployArgs = `zoneid=${zone.id} templateid=${template.id} serviceofferingid=${offering.id}`;
  await server.admin.request('configureSimulator', { name: 'startVm', value: 'wait:60000', zoneid: zone.id });
  const users = await server.admin.request<any>('listUsers', { username: 'admin' });
  const keys = await keyClient(server, users.user[0].id);
  home = mkdtempSync(join(tmpdir(), 'nimbo-job-test-'));
  mkdirSync(join(home, '.nimbo'));
  writeFileSync(
    join(home, '.nimbo', 'config'),
    `[default]\nurl = ${server.api}\napikey = ${keys.options.apiKey}\nsecretkey = ${keys.options.secretKey}\n`,
  );
});

after(async () => {
  await tmux('kill-server').catch(() => undefined);
  await server?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

function newSession(command: string) {
  return tmux(
    'new-session',
    '-d',
    '-x',
    '160',
    '-y',
    '30',
    '-e',
    `NIMBO_CONFIG=${join(home, '.nimbo', 'config')}`,
    '-e',
    `HOME=${home}`,
    command,
  );
}

test('an async command shows its progress; Ctrl-C leaves the job running and prints its id', async () => {
  // bash goes on after a child that handled Ctrl-C itself, so the exit status can be shown.
  await newSession(`bash -c '${BIN} deploy virtualmachine ${deployArgs}; echo "exit=$?"; sleep 60'`);
  await waitForScreen(/deployVirtualMachine: waiting for job [0-9a-f-]{36} [1-9]\.\ds/);
  await tmux('send-keys', 'C-c');
  const text = await waitForScreen(/exit=130/);
  assert.match(
    text,
    /interrupted; job ([0-9a-f-]{36}) is still running\. Follow it with: nimbo query asyncjobresult jobid=\1/,
  );
  assert.doesNotMatch(text, /waiting for job/);
  await assertStillRunning(text);
  await tmux('kill-server');
});

test('in the shell, Ctrl-C stops waiting and the shell goes on', async () => {
  await newSession(BIN);
  await waitForScreen(/\(default\) nimbo> $/m);
  await tmux('send-keys', `deploy virtualmachine ${deployArgs}`, 'Enter');
  await waitForScreen(/waiting for job [0-9a-f-]{36} [1-9]\.\ds/);
  await tmux('send-keys', 'C-c');
  const text = await waitForScreen(/interrupted; job \S+ is still running[^\n]*\n\(default\) nimbo> $/m);
  await assertStillRunning(text);
  await tmux('send-keys', 'exit', 'Enter');
});
