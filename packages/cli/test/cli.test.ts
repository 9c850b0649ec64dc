/**
 * The real `nimbo` binary (bin/nimbo.js, run as a child process) against the real management
 * server: sync, output formats, async jobs, errors, profiles and environment overrides, login,
 * the bash completion script, and the interactive shell in a real terminal (tmux).
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { keyClient, REPO, startServer, type TestServer } from '../../server/test/harness.ts';

const BIN = join(REPO, 'packages/cli/bin/nimbo.js');
const run = promisify(execFile);

let server: TestServer;
let home: string;
let adminKeys: { apikey: string; secretkey: string };
let root: { id: string; name: string };

/** The environment of a user with their own HOME and no NIMBO_* settings of the developer's. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NIMBO_')) env[k] = v;
  return { ...env, HOME: home, NIMBO_CONFIG: join(home, '.nimbo', 'config'), ...extra };
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function nimbo(args: string[], env: Record<string, string> = {}, input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, {
      env: cleanEnv(env),
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) child.stdin?.end(input);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function ok(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await nimbo(args, env);
  assert.equal(r.code, 0, `nimbo ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function json(args: string[], env: Record<string, string> = {}): Promise<any> {
  return JSON.parse(await ok(args, env));
}

before(async () => {
  // The local zone gives the deploy test a simulator host and the built-in template.
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  home = mkdtempSync(join(tmpdir(), 'nimbo-cli-test-'));
  const users = await server.admin.request<{ user: { id: string }[] }>('listUsers', { username: 'admin' });
  const keys = await keyClient(server, users.user[0].id);
  adminKeys = { apikey: keys.options.apiKey!, secretkey: keys.options.secretKey! };
  root = (await server.admin.request<{ domain: (typeof root)[] }>('listDomains', { name: 'ROOT' })).domain[0];
  mkdirSync(join(home, '.nimbo'));
  writeFileSync(
    join(home, '.nimbo', 'config'),
    `profile = local\n\n[local]\nurl = ${server.api}\napikey = ${adminKeys.apikey}\nsecretkey = ${adminKeys.secretkey}\n`,
  );
});

after(async () => {
  await server?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('nimbo', () => {
  test('sync caches the API list of the profile', async () => {
    const out = await ok(['sync']);
    assert.match(out, /^Discovered \d+ APIs\n$/);
    const cache = JSON.parse(readFileSync(join(home, '.nimbo', 'cache', 'local.json'), 'utf8'));
    assert.equal(cache.url, server.api);
    const deleteAccount = cache.api.find((a: any) => a.name === 'deleteAccount');
    assert.equal(deleteAccount.isasync, true);
    assert.deepEqual(
      deleteAccount.params.map((p: any) => p.name),
      ['id'],
    );
  });

  test('help shows the server descriptions of the command and its parameters', async () => {
    const { listZones } = await import('../../server/src/infra/zones.ts');
    const out = await ok(['help', 'list', 'zones']);
    assert.ok(listZones.description, 'listZones is described');
    assert.ok(out.includes(`listZones (sync): ${listZones.description}`), out);
    assert.ok(out.includes(listZones.params.id.description!), out);
  });

  test('list in every output format, with filter=', async () => {
    const [filtered, table, column, csv, text] = await Promise.all(
      ['json', 'table', 'column', 'csv', 'text'].map((format) =>
        ok(['list', 'domains', 'filter=name,id', '-o', format]),
      ),
    );
    assert.deepEqual(JSON.parse(filtered), { count: 1, domain: [{ name: 'ROOT', id: root.id }] });
    assert.match(table, /┌─+┬─+┐/);
    assert.match(table, /│ name │ id +│/);
    assert.match(table, new RegExp(`│ ROOT │ ${root.id} │`));
    assert.equal(column, `NAME   ID\nROOT   ${root.id}\n`);
    assert.equal(csv, `name,id\nROOT,${root.id}\n`);
    assert.equal(text, `name = ROOT\nid = ${root.id}\n`);
  });

  test('the singular noun and the API name reach the same command', async () => {
    const outputs = await Promise.all([
      ok(['list', 'domain', 'filter=name', '-o', 'csv']),
      ok(['api', 'listDomains', 'filter=name', '-o', 'csv']),
      ok(['listDomains', 'filter=name', '-o', 'csv']),
    ]);
    assert.deepEqual(outputs, ['name\nROOT\n', 'name\nROOT\n', 'name\nROOT\n']);
  });

  test('a CSV field with a comma is quoted; exclude= drops fields', async () => {
    await server.admin.request('createDomain', { name: 'a,b' });
    const [csv, excluded] = await Promise.all([
      ok(['list', 'domains', 'name=a,b', 'filter=name,path', '-o', 'csv']),
      json(['list', 'domains', 'name=a,b', 'exclude=id,created']),
    ]);
    assert.equal(csv, 'name,path\n"a,b","ROOT/a,b"\n');
    const rows = excluded.domain;
    assert.equal(rows[0].name, 'a,b');
    assert.equal('id' in rows[0] || 'created' in rows[0], false);
  });

  // Each case runs an async command and checks what it printed after the job ended. Commands that
  // the server gains later (deployVirtualMachine, ...) are added here as further cases.
  const asyncCases: {
    title: string;
    args: (accountId: string) => string[];
    check: (output: any, accountId: string) => Promise<void>;
  }[] = [
    {
      title: 'create tags',
      args: (id) => [
        'create',
        'tags',
        `resourceids=${id}`,
        'resourcetype=Account',
        'tags[0].key=env',
        'tags[0].value=prod',
      ],
      check: async (output, id) => {
        assert.deepEqual(output, { success: true });
        const tags = await server.admin.request<any>('listTags', { resourceid: id, listall: true });
        assert.deepEqual(
          tags.tag.map((t: any) => [t.key, t.value]),
          [['env', 'prod']],
        );
      },
    },
    {
      title: 'delete account',
      args: (id) => ['delete', 'account', `id=${id}`],
      check: async (output, id) => {
        assert.deepEqual(output, { success: true });
        // The account's row is gone, so its uuid names nothing: 431, as upstream for an unknown id.
        await assert.rejects(server.admin.request('listAccounts', { id, listall: true }), { errorcode: 431 });
      },
    },
  ];

  test('async commands block until their job ends, with no progress line when stderr is not a terminal', async () => {
    const created = await server.admin.request<any>('createAccount', {
      username: 'carol',
      password: 'carol-pw',
      email: 'carol@example.com',
      firstname: 'Carol',
      lastname: 'Test',
      accounttype: 0,
    });
    const accountId = created.account.id;
    for (const c of asyncCases) {
      const r = await nimbo(c.args(accountId));
      assert.equal(r.code, 0, `${c.title}: ${r.stderr}`);
      assert.equal(r.stderr, '', c.title);
      await c.check(JSON.parse(r.stdout), accountId);
    }
  });

  test('deploy virtualmachine blocks until the VM is Running', async () => {
    const zone = (await server.admin.request<any>('listZones', {})).zone[0];
    const template = (
      await server.admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid: zone.id })
    ).template[0];
    const offering = (await server.admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
      .serviceoffering[0];
    const out = await json([
      'deploy',
      'virtualmachine',
      `zoneid=${zone.id}`,
      `templateid=${template.id}`,
      `serviceofferingid=${offering.id}`,
      'name=cli-vm',
    ]);
    assert.equal(out.virtualmachine.name, 'cli-vm');
    assert.equal(out.virtualmachine.state, 'Running');
    const table = await ok(['list', 'virtualmachines', 'filter=name,state', '-o', 'table']);
    assert.match(table, /│ cli-vm │ Running │/);
  });

  test('--async returns the job id at once; the job can be followed with query asyncjobresult', async () => {
    const admin = (await server.admin.request<any>('listAccounts', { name: 'admin' })).account[0];
    const queued = await json([
      '--async',
      'create',
      'tags',
      `resourceids=${admin.id}`,
      'resourcetype=Account',
      'tags[0].key=k',
      'tags[0].value=v',
    ]);
    assert.deepEqual(Object.keys(queued), ['jobid']);
    await server.admin.waitForJob(queued.jobid);
    const job = await json(['query', 'asyncjobresult', `jobid=${queued.jobid}`]);
    assert.equal(job.jobstatus, 1);
  });

  test('API errors exit non-zero with errorcode and errortext on stderr', async () => {
    const missing = randomUUID();
    const sync = await nimbo(['list', 'accounts', 'id=not-a-uuid']);
    assert.equal(sync.code, 1);
    assert.equal(sync.stdout, '');
    assert.match(sync.stderr, /^Error: \(errorcode 431, cserrorcode 4350\) Invalid parameter id/);
    // An async command whose job fails.
    const job = await nimbo(['delete', 'tags', `resourceids=${missing}`, 'resourcetype=Account']);
    assert.equal(job.code, 1);
    assert.match(job.stderr, /errorcode 431/);
    // Caught before sending: required parameters and unknown commands are usage errors (2).
    const usage = await nimbo(['delete', 'account']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /missing required parameters for deleteAccount: id/);
    const noNoun = await nimbo(['list']);
    assert.equal(noNoun.code, 2);
    assert.match(noNoun.stderr, /list what\? one of: .*domains/);
  });

  test('profiles: set, switch, --profile, NIMBO_PROFILE and environment overrides', async () => {
    await ok(['set', 'profile', 'elsewhere']);
    // port 9 is refused by fetch at once, so this profile cannot reach any server.
    await ok(['set', 'url', 'http://127.0.0.1:9/client/api']);
    await ok(['set', 'output', 'csv']);
    const config = readFileSync(join(home, '.nimbo', 'config'), 'utf8');
    assert.match(config, /^profile=elsewhere$/m);
    assert.match(config, /\[elsewhere\]\nurl=http:\/\/127\.0\.0\.1:9\/client\/api\n/);
    const env = {
      NIMBO_URL: server.api,
      NIMBO_APIKEY: adminKeys.apikey,
      NIMBO_SECRETKEY: adminKeys.secretkey,
    };
    const [unreachable, byFlag, byEnv, overridden, asText, noSuch] = await Promise.all([
      nimbo(['list', 'domains']),
      // --profile and NIMBO_PROFILE pick another profile for one command.
      json(['-p', 'local', 'list', 'domains', 'name=ROOT']),
      json(['list', 'domains', 'name=ROOT'], { NIMBO_PROFILE: 'local' }),
      // NIMBO_URL, NIMBO_APIKEY, NIMBO_SECRETKEY and NIMBO_OUTPUT override the profile's values.
      ok(['list', 'domains', 'name=ROOT', 'filter=name'], env),
      ok(['list', 'domains', 'name=ROOT', 'filter=name'], { ...env, NIMBO_OUTPUT: 'text' }),
      nimbo(['-p', 'nosuch', 'list', 'domains']),
    ]);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach http:\/\/127\.0\.0\.1:9\/client\/api/);
    assert.equal(byFlag.count, 1);
    assert.equal(byEnv.count, 1);
    assert.equal(overridden, 'name\nROOT\n');
    assert.equal(asText, 'name = ROOT\n');
    assert.equal(noSuch.code, 2);
    assert.match(noSuch.stderr, /no profile named nosuch/);
    await ok(['set', 'profile', 'local']);
    assert.match(readFileSync(join(home, '.nimbo', 'config'), 'utf8'), /^profile=local$/m);
  });

  test('login with username and password keeps a session; --save-keys stores API keys', async () => {
    const cfg = join(home, 'login-config');
    const env = { NIMBO_CONFIG: cfg };
    writeFileSync(cfg, `[default]\nurl=${server.api}\nusername=admin\n`);
    const bad = await nimbo(['login', '--username', 'admin', '--password', 'wrong'], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /errorcode 531/);
    const login = await ok(['login', '--username', 'admin', '--password', 'password', '--domain', '/'], env);
    assert.match(login, /Logged in to .* as admin \(account admin\)/);
    assert.ok(existsSync(join(home, 'sessions', 'default.json')));
    assert.equal((await json(['list', 'domains', 'name=ROOT'], env)).count, 1);
    await ok(['logout'], env);
    const loggedOut = await nimbo(['list', 'domains'], env);
    assert.equal(loggedOut.code, 2);
    assert.match(loggedOut.stderr, /has no credentials/);
    await ok(['login', '-u', 'admin', '--password', 'password', '--save-keys'], env);
    assert.match(readFileSync(cfg, 'utf8'), /^apikey=\S+\nsecretkey=\S+$/m);
    await ok(['logout'], env);
    assert.equal((await json(['list', 'domains', 'name=ROOT'], env)).count, 1);
  });

  test('the bash completion script completes nouns, parameters and ids', async () => {
    const binDir = join(home, 'bin');
    mkdirSync(binDir, { recursive: true });
    symlinkSync(BIN, join(binDir, 'nimbo'));
    const [script, zsh] = await Promise.all([ok(['completion', 'bash']), ok(['completion', 'zsh'])]);
    assert.match(zsh, /^#compdef nimbo/);
    const completeLine = async (line: string) => {
      // bash's own words break at '=' too (COMP_WORDBREAKS), which the script must cope with.
      const words = line.split(' ').flatMap((w) => (w === '' ? [w] : w.split(/(=)/).filter(Boolean)));
      const program = `${script}
COMP_LINE=${JSON.stringify(line)}; COMP_POINT=\${#COMP_LINE}
COMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(' ')}); COMP_CWORD=${words.length - 1}
_nimbo; printf '%s\\n' "\${COMPREPLY[@]}"`;
      const { stdout } = await run('bash', ['-c', program], {
        env: cleanEnv({ PATH: `${binDir}:${process.env.PATH}` }),
      });
      return stdout.split('\n').filter(Boolean);
    };
    const [nouns, params, ids] = await Promise.all([
      completeLine('nimbo list domai'),
      completeLine('nimbo delete account i'),
      completeLine('nimbo list accounts domainid='),
    ]);
    assert.deepEqual(nouns, ['domainchildren', 'domains']);
    assert.deepEqual(params, ['id=']);
    // bash splits at '=', so the reply replaces the '=' word with '=' and the id.
    assert.ok(ids.includes(`=${root.id}`), ids.join(' '));
  });
});

describe('nimbo shell from a pipe', () => {
  test('runs each line without prompts and exits with the status of a failed line', async () => {
    const r = await nimbo([], {}, 'list domains name=ROOT filter=name -o csv\nlist accounts id=not-a-uuid\n');
    assert.equal(r.stdout, 'name\nROOT\n');
    assert.match(r.stderr, /^Error: \(errorcode 431/);
    assert.equal(r.code, 1);
  });
});

describe('nimbo shell in a terminal', () => {
  const socket = `nimbo-test-${process.pid}`;
  const tmux = (...args: string[]) => run('tmux', ['-L', socket, ...args], { env: cleanEnv() });
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

  after(async () => {
    await tmux('kill-server').catch(() => undefined);
  });

  test('tab completes a verb, a noun, a parameter and an id; history is saved', async () => {
    // A second domain, so that completing domainid= has a choice to show.
    await server.admin.request('createDomain', { name: 'shell-test' });
    const env = cleanEnv();
    await tmux(
      'new-session',
      '-d',
      '-x',
      '200',
      '-y',
      '50',
      '-e',
      `NIMBO_CONFIG=${env.NIMBO_CONFIG}`,
      '-e',
      `HOME=${home}`,
      BIN,
    );
    await waitForScreen(/\(local\) nimbo> $/m);
    await tmux('send-keys', 'lis', 'Tab');
    await waitForScreen(/nimbo> list $/m);
    await tmux('send-keys', 'acc', 'Tab');
    await waitForScreen(/nimbo> list accounts $/m);
    await tmux('send-keys', 'domai', 'Tab');
    await waitForScreen(/nimbo> list accounts domainid=$/m);
    // Two tabs list the domains' ids with their names; a unique prefix then completes the id.
    // The first tab's completion asks the server, and readline must see its answer before the second.
    await tmux('send-keys', 'Tab');
    await new Promise((r) => setTimeout(r, 1000));
    await tmux('send-keys', 'Tab');
    await waitForScreen(new RegExp(`${root.id} \\(ROOT\\)`));
    await tmux('send-keys', root.id.slice(0, 8), 'Tab');
    await waitForScreen(new RegExp(`nimbo> list accounts domainid=${root.id} $`, 'm'));
    await tmux('send-keys', 'filter=name', 'Enter');
    await waitForScreen(/"name": "admin"[\s\S]*\(local\) nimbo> $/m);
    await tmux('send-keys', 'C-d');
    const history = join(home, '.nimbo', 'history');
    for (let i = 0; i < 50 && !existsSync(history); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(readFileSync(history, 'utf8'), `list accounts domainid=${root.id} filter=name\n`);
  });
});
