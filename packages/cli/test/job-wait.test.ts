/**
 * Waiting for a long job, in a real terminal (tmux): the progress line with the elapsed time, and
 * Ctrl-C that leaves the job running and prints its id, both from the command line and in the
 * shell. No command of the real server runs long enough to interrupt yet, so a stub server plays
 * one whose deployVirtualMachine job never ends.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { REPO } from '../../server/test/harness.ts';

const BIN = join(REPO, 'packages/cli/bin/nimbo.js');
const run = promisify(execFile);
const socket = `nimbo-job-test-${process.pid}`;

let stub: Server;
let home: string;
let polls = 0;

const LIST_APIS = {
  listapisresponse: {
    count: 2,
    api: [
      {
        name: 'deployVirtualMachine',
        description: 'Creates and automatically starts a virtual machine',
        isasync: true,
        params: [{ name: 'zoneid', type: 'uuid', required: true, description: 'zone' }],
        response: [{ name: 'id', type: 'string', description: 'the ID' }],
      },
      {
        name: 'queryAsyncJobResult',
        description: 'Retrieves the current status of asynchronous job.',
        isasync: false,
        params: [{ name: 'jobid', type: 'uuid', required: true, description: 'job' }],
        response: [],
      },
    ],
  },
};

function reply(command: string): object {
  if (command === 'listApis') return LIST_APIS;
  if (command === 'deployVirtualMachine')
    return { deployvirtualmachineresponse: { id: 'vm-1', jobid: 'job-1' } };
  polls++;
  return {
    queryasyncjobresultresponse: { jobid: 'job-1', jobstatus: 0, jobprocstatus: 0, jobresultcode: 0 },
  };
}

const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args]);
const screen = async () => (await tmux('capture-pane', '-p', '-J')).stdout;
async function waitForScreen(pattern: RegExp): Promise<string> {
  let text = '';
  for (let i = 0; i < 100; i++) {
    text = await screen();
    if (pattern.test(text)) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`screen never matched ${pattern}:\n${text}`);
}

before(async () => {
  stub = createServer((req, res) => {
    const command = new URL(req.url ?? '/', 'http://x').searchParams.get('command') ?? '';
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(reply(command)));
  });
  await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
  const { port } = stub.address() as AddressInfo;
  home = mkdtempSync(join(tmpdir(), 'nimbo-job-test-'));
  mkdirSync(join(home, '.nimbo'));
  writeFileSync(
    join(home, '.nimbo', 'config'),
    `[default]\nurl = http://127.0.0.1:${port}/client/api\napikey = key\nsecretkey = secret\n`,
  );
});

after(async () => {
  await tmux('kill-server').catch(() => undefined);
  await new Promise((r) => stub.close(r));
  rmSync(home, { recursive: true, force: true });
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
  await newSession(`bash -c '${BIN} deploy virtualmachine zoneid=z; echo "exit=$?"; sleep 60'`);
  await waitForScreen(/deployVirtualMachine: waiting for job job-1 [1-9]\.\ds/);
  assert.ok(polls > 0);
  await tmux('send-keys', 'C-c');
  const text = await waitForScreen(/exit=130/);
  assert.match(
    text,
    /interrupted; job job-1 is still running\. Follow it with: nimbo query asyncjobresult jobid=job-1/,
  );
  assert.doesNotMatch(text, /waiting for job/);
  await tmux('kill-server');
});

test('in the shell, Ctrl-C stops waiting and the shell goes on', async () => {
  await newSession(BIN);
  await waitForScreen(/\(default\) nimbo> $/m);
  await tmux('send-keys', 'deploy virtualmachine zoneid=z', 'Enter');
  await waitForScreen(/waiting for job job-1 [1-9]\.\ds/);
  await tmux('send-keys', 'C-c');
  await waitForScreen(/interrupted; job job-1 is still running[^\n]*\n\(default\) nimbo> $/m);
  await tmux('send-keys', 'exit', 'Enter');
});
