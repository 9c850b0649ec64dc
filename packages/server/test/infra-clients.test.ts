/**
 * Real clients build and read the inventory: Ansible's ngine_io.cloudstack modules create a whole
 * zone (and a second run changes nothing), Apache libcloud reads zones, sizes and disk offerings.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type TestServer } from './harness.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CLIENTS = join(import.meta.dirname, 'clients');

let server: TestServer;
let key: string;
let secret: string;

before(async () => {
  server = await startServer();
  const users = await server.admin.request<{ user: { id: string }[] }>('listUsers', { username: 'admin' });
  const keys = await server.admin.request<{ userkeys: { apikey: string; secretkey: string } }>(
    'registerUserKeys',
    { id: users.user[0].id },
  );
  key = keys.userkeys.apikey;
  secret = keys.userkeys.secretkey;
});
after(() => server.stop());

async function playbook(): Promise<{ ok: number; changed: number; failed: number; out: string }> {
  const { stdout } = await run('ansible-playbook', ['-i', 'localhost,', join(CLIENTS, 'ansible_infra.yml')], {
    env: {
      ...process.env,
      CLOUDSTACK_ENDPOINT: server.api,
      CLOUDSTACK_KEY: key,
      CLOUDSTACK_SECRET: secret,
      ANSIBLE_PYTHON_INTERPRETER: PYTHON,
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_LOCALHOST_WARNING: 'false',
      ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false',
    },
    timeout: 120_000,
  }).catch((e) => {
    throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
  });
  const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
  assert.ok(recap, stdout);
  return { ok: Number(recap[1]), changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
}

describe('Ansible (ngine_io.cloudstack)', () => {
  test('a playbook builds a zone, and running it again changes nothing', async () => {
    const first = await playbook();
    assert.equal(first.failed, 0, first.out);
    assert.equal(first.changed, 9, first.out);
    const admin = server.admin;
    const zone = (await admin.request<{ zone: any[] }>('listZones', { name: 'ansible-zone' })).zone[0];
    assert.equal(zone.allocationstate, 'Enabled');
    assert.equal(zone.guestcidraddress, '10.1.0.0/16');
    const pool = (
      await admin.request<{ storagepool: any[] }>('listStoragePools', { name: 'ansible-primary' })
    ).storagepool[0];
    assert.equal(pool.clustername, 'ansible-cluster');
    assert.equal(pool.disksizetotal, 1099511627776);
    const offering = (
      await admin.request<{ serviceoffering: any[] }>('listServiceOfferings', { name: 'ansible-medium' })
    ).serviceoffering[0];
    assert.deepEqual([offering.cpunumber, offering.cpuspeed, offering.memory], [2, 2000, 4096]);
    const second = await playbook();
    assert.equal(second.failed, 0, second.out);
    assert.equal(second.changed, 0, second.out);
  });
});

describe('Apache libcloud', () => {
  test('the CloudStack driver lists locations, sizes, disk offerings and OS types', async () => {
    const { stdout } = await run(PYTHON, [join(CLIENTS, 'libcloud_infra.py'), server.api, key, secret], {
      timeout: 60_000,
    });
    const out = JSON.parse(stdout);
    assert.ok(out.locations.some((l: any) => l.name === 'ansible-zone'));
    const small = out.sizes.find((s: any) => s.name === 'Small Instance');
    assert.deepEqual([small.ram, small.cpu], [512, 1]);
    assert.ok(out.disks.some((d: any) => d.name === 'Medium' && d.size === 20 && !d.customizable));
    assert.ok(out.disks.some((d: any) => d.name === 'Custom' && d.customizable));
    assert.ok(out.ostypes >= 30);
  });
});
