/**
 * Ansible's cs_securitygroup and cs_securitygroup_rule (ngine_io.cloudstack) manage a tenant's
 * security groups against the real server process: they find their rules again by lowercase
 * protocol, ports, ICMP type/code, CIDR or peer group, so a second run changes nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CLIENTS = join(import.meta.dirname, 'clients');

let server: TestServer;
let key: string;
let secret: string;

before(async () => {
  server = await startServer();
  const { userId } = await createAccountAndLogin(server, { name: 'tenant' });
  const keys = await server.admin.request<{ userkeys: { apikey: string; secretkey: string } }>(
    'registerUserKeys',
    { id: userId },
  );
  key = keys.userkeys.apikey;
  secret = keys.userkeys.secretkey;
});
after(() => server.stop());

async function playbook(state: 'present' | 'absent') {
  const { stdout } = await run(
    'ansible-playbook',
    ['-i', 'localhost,', '-e', `sg_state=${state}`, join(CLIENTS, 'ansible_security_groups.yml')],
    {
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
    },
  ).catch((e) => {
    throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
  });
  const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
  assert.ok(recap, stdout);
  return { changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
}

describe('Ansible security group modules', { skip: !existsSync(PYTHON) }, () => {
  test('a playbook creates groups and rules, a second run changes nothing, absent revokes and deletes', async () => {
    const first = await playbook('present');
    assert.equal(first.failed, 0, first.out);
    assert.equal(first.changed, 5, first.out);

    const tenant = (
      await server.admin.request<any>('listSecurityGroups', {
        account: 'tenant',
        domainid: undefined,
        listall: true,
      })
    ).securitygroup;
    const web = tenant.find((g: any) => g.name === 'ans-web');
    const db = tenant.find((g: any) => g.name === 'ans-db');
    assert.deepEqual(
      web.ingressrule.map((r: any) => [r.protocol, r.startport, r.endport, r.icmptype, r.icmpcode, r.cidr]),
      [
        ['tcp', 80, 80, undefined, undefined, '0.0.0.0/0'],
        ['icmp', undefined, undefined, -1, -1, '192.0.2.0/24'],
      ],
    );
    assert.deepEqual(
      web.egressrule.map((r: any) => [r.protocol, r.startport, r.endport, r.cidr]),
      [['tcp', 443, 443, '0.0.0.0/0']],
    );
    assert.deepEqual(
      db.ingressrule.map((r: any) => [r.protocol, r.startport, r.account, r.securitygroupname]),
      [['tcp', 5432, 'tenant', 'ans-web']],
    );

    const second = await playbook('present');
    assert.equal(second.failed, 0, second.out);
    assert.equal(second.changed, 0, second.out);

    const third = await playbook('absent');
    assert.equal(third.failed, 0, third.out);
    assert.equal(third.changed, 2, third.out);
    const left = (await server.admin.request<any>('listSecurityGroups', { account: 'tenant', listall: true }))
      .securitygroup;
    assert.deepEqual(
      left.map((g: any) => g.name),
      ['default'],
    );
  });
});
