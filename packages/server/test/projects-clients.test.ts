/**
 * Projects (issue 17) through third-party clients, for real: Debian's python3-cs and Ansible's
 * ngine_io.cloudstack cs_project module (with a key pair made in the project by cs_sshkeypair).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateRsaKeyPair } from '../src/compute/ssh-keypairs.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
let server: TestServer;

/** A fresh user account with API keys. */
async function userKeys(name: string) {
  const { client, userId } = await createAccountAndLogin(server, { name });
  const keys = (await client.request<any>('registerUserKeys', { id: userId })).userkeys;
  return { key: keys.apikey as string, secret: keys.secretkey as string, client };
}

before(async () => {
  server = await startServer();
});
after(() => server.stop());

test('python3-cs: a lead creates a project, a teammate joins and sees its key pair, suspend, activate, delete', async () => {
  const lead = await userKeys('cslead');
  const mate = await userKeys('csmate');
  const out = JSON.parse(
    execFileSync(
      PYTHON,
      [
        join(import.meta.dirname, 'clients', 'cs_projects.py'),
        server.api,
        lead.key,
        lead.secret,
        mate.key,
        mate.secret,
        'csmate',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    ),
  );
  assert.deepEqual(out.created, { name: 'cs-team', displaytext: 'cs team', state: 'Active', vmlimit: '20' });
  assert.deepEqual(out.owner, ['cslead']);
  assert.equal(out.key_project, true);
  assert.equal(out.mate_before, 531);
  assert.deepEqual(out.members, ['cslead', 'csmate']);
  assert.deepEqual(out.mate_keys, ['team-key']);
  assert.deepEqual(out.mate_all_projects, ['team-key']);
  assert.equal(out.mate_own, 0);
  assert.deepEqual(out.mate_projects, ['cs-team']);
  assert.equal(out.suspended, 'Suspended');
  assert.equal(out.add_suspended, 531);
  assert.equal(out.activated, 'Active');
  assert.equal(out.mate_delete, 531);
  assert.equal(out.deleted, true);
  assert.equal(out.left, 0);
});

test('Ansible cs_project: converges, changes nothing the second time, suspends, activates and deletes', async () => {
  const lead = await userKeys('ansiblelead');
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-ansible-projects-'));
  writeFileSync(
    join(dir, 'inventory'),
    'localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n',
  );
  const publicKey = generateRsaKeyPair().publicKey;
  const run = (state: string) =>
    execFileSync(
      'ansible-playbook',
      [
        '-i',
        join(dir, 'inventory'),
        join(import.meta.dirname, 'clients', 'ansible_projects.yml'),
        '-e',
        JSON.stringify({ project_state: state, public_key: publicKey }),
      ],
      {
        encoding: 'utf8',
        timeout: 300_000,
        env: {
          ...process.env,
          CLOUDSTACK_ENDPOINT: server.api,
          CLOUDSTACK_KEY: lead.key,
          CLOUDSTACK_SECRET: lead.secret,
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_LOCALHOST_WARNING: 'False',
        },
      },
    );
  const project = async () =>
    (await lead.client.request<any>('listProjects', { name: 'ansible-team' })).project?.[0];
  assert.match(run('present'), /changed=2 .*failed=0/);
  const made = await project();
  assert.equal(made.displaytext, 'Ansible team');
  const keys = await lead.client.request<any>('listSSHKeyPairs', { projectid: made.id });
  assert.deepEqual(
    keys.sshkeypair.map((k: any) => [k.name, k.project]),
    [['team-key', 'ansible-team']],
  );
  const again = run('present');
  assert.match(again, /changed=0 .*failed=0/, again);
  assert.match(run('suspended'), /changed=1 .*failed=0/);
  assert.equal((await project()).state, 'Suspended');
  assert.match(run('active'), /changed=1 .*failed=0/);
  assert.equal((await project()).state, 'Active');
  assert.match(run('absent'), /changed=1 .*failed=0/);
  assert.equal(await project(), undefined);
});
