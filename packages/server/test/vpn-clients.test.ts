/**
 * Site-to-site VPN driven by the Ansible modules CloudStack users run (ngine_io.cloudstack's
 * cs_vpc, cs_vpn_gateway, cs_vpn_customer_gateway, cs_vpn_connection), against the real server
 * with an Advanced zone on simulator hosts: made, unchanged on a second run, a customer gateway
 * updated in place, all removed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CloudStackClient } from '@nimbostack/client';
import { type AdvancedZone, startAdvancedZone } from './public-ip-zone.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CLIENTS = join(import.meta.dirname, 'clients');

let zone: AdvancedZone;
let dora: CloudStackClient;
let env: NodeJS.ProcessEnv;
let zoneName: string;

before(async () => {
  zone = await startAdvancedZone({ publicIps: 6 });
  dora = await zone.createUser('dora');
  const user = (await zone.admin.request<any>('listUsers', { username: 'dora', listall: true })).user[0];
  const keys = (await zone.admin.request<any>('registerUserKeys', { id: user.id })).userkeys;
  zoneName = (await zone.admin.request<any>('listZones', { id: zone.zoneid })).zone[0].name;
  // The branch office does not exist: the connection is answered at once, Disconnected.
  await zone.admin.request('updateConfiguration', { name: 'site2site.vpn.connect.wait', value: '0' });
  env = {
    ...process.env,
    CLOUDSTACK_ENDPOINT: `${zone.server.url}/client/api`,
    CLOUDSTACK_KEY: keys.apikey,
    CLOUDSTACK_SECRET: keys.secretkey,
    ANSIBLE_PYTHON_INTERPRETER: PYTHON,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_LOCALHOST_WARNING: 'false',
    ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false',
  };
});
after(() => zone?.stop());

async function playbook(vars: Record<string, string>) {
  const extra = Object.entries({ zone: zoneName, ...vars }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  const { stdout } = await run(
    'ansible-playbook',
    ['-i', 'localhost,', ...extra, join(CLIENTS, 'ansible_vpn.yml')],
    {
      env,
      timeout: 180_000,
    },
  ).catch((e) => {
    throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
  });
  const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
  assert.ok(recap, stdout);
  return { changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
}

describe('Ansible cs_vpn_gateway, cs_vpn_customer_gateway and cs_vpn_connection', {
  skip: !existsSync(PYTHON) && 'needs Debian python3 with ansible',
}, () => {
  test('a VPC with a VPN connection: made, unchanged on a second run, updated, removed', async () => {
    const first = await playbook({});
    assert.equal(first.failed, 0, first.out);
    assert.equal(first.changed, 4, first.out);
    assert.match(first.out, /CONNECTION Disconnected 198\.51\.100\.20 False/);
    const conns = (await dora.request<any>('listVpnConnections', {})).vpnconnection;
    assert.equal(conns.length, 1);
    assert.equal(conns[0].cidrlist, '192.168.70.0/24,192.168.71.0/24');
    assert.equal(conns[0].ikepolicy, 'aes256-sha256;modp2048');

    const second = await playbook({});
    assert.equal(second.failed, 0, second.out);
    assert.equal(second.changed, 0, second.out);

    const third = await playbook({ dpd: 'true' });
    assert.equal(third.failed, 0, third.out);
    assert.equal(third.changed, 1, third.out);
    assert.equal((await dora.request<any>('listVpnCustomerGateways', {})).vpncustomergateway[0].dpd, true);

    const gone = await playbook({ vpn_state: 'absent' });
    assert.equal(gone.failed, 0, gone.out);
    assert.equal(gone.changed, 4, gone.out);
    for (const list of ['listVpnConnections', 'listVpnCustomerGateways', 'listVpnGateways', 'listVPCs'])
      assert.equal((await dora.request<any>(list, {})).count ?? 0, 0, list);
  });
});
