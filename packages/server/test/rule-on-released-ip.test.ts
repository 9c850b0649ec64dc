/**
 * A rule is only added to an address that is still held (ip-rules.ts insertRule). The chaos
 * suite found, on PostgreSQL, a port-forwarding rule committed while disassociateIpAddress was
 * releasing its address: the rule stayed behind on a Free address. Here the address is caught in
 * its Releasing state (as a release in progress leaves it) and the rule must be refused, then
 * accepted once the address is held again; a released address refuses too.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

let z: AdvancedZone;
let user: CloudStackClient;

before(async () => {
  z = await startAdvancedZone({ publicIps: 4, hosts: 1 });
  user = await z.createUser('dora');
});

after(async () => {
  await z?.stop();
});

test('no rule lands on an address being released or released', async () => {
  const net = (
    await user.request<any>('createNetwork', {
      name: 'd-net',
      zoneid: z.zoneid,
      networkofferingid: z.isolatedOffering,
    })
  ).network;
  const vm = (
    await user.call<any>('deployVirtualMachine', {
      zoneid: z.zoneid,
      templateid: z.templateid,
      serviceofferingid: z.offering,
      networkids: net.id,
    })
  ).virtualmachine;
  const ip = (await user.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
  const db = z.server.app.store.db;
  const rule = (port: number) =>
    user.call<any>('createPortForwardingRule', {
      ipaddressid: ip.id,
      virtualmachineid: vm.id,
      protocol: 'tcp',
      publicport: port,
      privateport: 22,
      openfirewall: false,
    });

  await db.updateTable('public_ips').set({ state: 'Releasing' }).where('uuid', '=', ip.id).execute();
  await assert.rejects(rule(2201), is(431, /Unable to add a rule to IP address .*: it is being released/));
  assert.equal(
    await db.selectFrom('ip_rules').select('id').where('purpose', '=', 'PortForwarding').executeTakeFirst(),
    undefined,
  );

  await db.updateTable('public_ips').set({ state: 'Allocated' }).where('uuid', '=', ip.id).execute();
  const made = (await rule(2202)).portforwardingrule;
  assert.equal(made.state, 'Active');

  await user.call('disassociateIpAddress', { id: ip.id });
  assert.equal(
    (await db.selectFrom('ip_rules').select('id').where('purpose', '=', 'PortForwarding').execute()).length,
    0,
    'the release took the rule with it',
  );
  await assert.rejects(rule(2203), is(431));
});
