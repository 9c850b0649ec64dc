/**
 * Issue 4's third-party clients, for real: Debian's python3-cs, python3-libcloud and ansible
 * (ngine_io.cloudstack) run the VM lifecycle against the real server and its simulator host.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateRsaKeyPair } from '../src/compute/ssh-keypairs.ts';
import { waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
let server: TestServer;
let zone: any;
let template: any;

/** A fresh user account with API keys, so each client starts from an empty account. */
async function userKeys(name: string): Promise<{ key: string; secret: string }> {
  const { client, userId } = await createAccountAndLogin(server, { name });
  const keys = (await client.request<any>('registerUserKeys', { id: userId })).userkeys;
  return { key: keys.apikey, secret: keys.secretkey };
}

function python(script: string, ...args: string[]) {
  return JSON.parse(
    execFileSync(PYTHON, [join(import.meta.dirname, 'clients', script), ...args], {
      encoding: 'utf8',
      timeout: 180_000,
    }),
  );
}

before(async () => {
  server = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  // Clients expunge what they destroy; CloudStack lets users do that only when this is on.
  await server.admin.request('updateConfiguration', { name: 'allow.user.expunge.recover.vm', value: 'true' });
  zone = (await server.admin.request<any>('listZones', {})).zone[0];
  template = await waitUntil(
    async () => {
      const t = await server.admin.request<any>('listTemplates', {
        templatefilter: 'featured',
        zoneid: zone.id,
      });
      return t.template?.find((x: any) => x.isready);
    },
    20_000,
    'the built-in template',
  );
});
after(() => server.stop());

test('the cs library deploys, stops, starts, attaches a volume and expunges', async () => {
  const k = await userKeys('csuser');
  const out = python('cs_compute.py', server.api, k.key, k.secret);
  assert.deepEqual(out.deployed, { name: 'cs-vm', displayname: 'cs vm', state: 'Running', keypair: null });
  assert.ok(out.nic_ip);
  assert.deepEqual(out.listed, ['cs-vm']);
  assert.equal(out.stopped, 'Stopped');
  assert.equal(out.started, 'Running');
  assert.equal(out.attached, true);
  assert.equal(out.detached, true);
  assert.equal(out.deleted_volume, true);
  assert.equal(out.start_gone, 431);
});

test('libcloud', async () => {
  const k = await userKeys('lcuser');
  const out = python('libcloud_compute.py', server.api, k.key, k.secret);
  assert.equal(out.size_ram, 512);
  assert.equal(out.image, template.name);
  assert.match(out.key_fingerprint, /^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
  assert.equal(out.created_state, 'stopped');
  assert.equal(out.nodes.length, 1);
  assert.equal(out.nodes[0][0], 'lc-node');
  assert.equal(out.nodes[0][1], 'running');
  assert.equal(out.rebooted, true);
  assert.equal(out.volume_attached, true);
  assert.equal(out.volume_detached, true);
  assert.equal(out.volume_destroyed, true);
  assert.equal(out.destroyed, true);
  assert.equal(out.left, 0);
  assert.deepEqual(out.keys_left, []);
});

test('an Ansible playbook converges, and a second run changes nothing', async () => {
  const k = await userKeys('ansible');
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-ansible-'));
  writeFileSync(
    join(dir, 'inventory'),
    'localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n',
  );
  const vars = JSON.stringify({
    zone: zone.name,
    template: template.name,
    public_key: generateRsaKeyPair().publicKey,
    security_groups: zone.securitygroupsenabled ? 'true' : 'false',
  });
  const run = () =>
    execFileSync(
      'ansible-playbook',
      ['-i', join(dir, 'inventory'), join(import.meta.dirname, 'clients', 'playbook.yml'), '-e', vars],
      {
        encoding: 'utf8',
        timeout: 300_000,
        env: {
          ...process.env,
          CLOUDSTACK_ENDPOINT: server.api,
          CLOUDSTACK_KEY: k.key,
          CLOUDSTACK_SECRET: k.secret,
          ANSIBLE_HOST_KEY_CHECKING: 'False',
          ANSIBLE_NOCOLOR: '1',
          ANSIBLE_LOCALHOST_WARNING: 'False',
        },
      },
    );
  const first = run();
  assert.match(first, /changed=[1-9]/);
  const second = run();
  assert.match(second, /changed=0 .*failed=0/, second);
});
