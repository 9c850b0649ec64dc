/**
 * VMs with several NICs in an Advanced zone, observed on simulator hosts running in this process
 * (as isolated-networks.test.ts): deployVirtualMachine with networkids and iptonetworklist,
 * addNicToVirtualMachine, removeNicFromVirtualMachine and updateDefaultNicForVirtualMachine on
 * Running and Stopped VMs, what the hosts (plugNic/unplugNic, recorded in the VM's spec) and the
 * networks' routers were told, and every refusal leaving everything as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SimulatorHost } from '@nimbostack/agent';
import type { CloudStackClient } from '@nimbostack/client';
import { seededLocalZone } from './agents.ts';
import { startServer, type TestServer } from './harness.ts';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

let zone: AdvancedZone;
let admin: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;
let zoneid: string;
let templateid: string;
let offering: string;
let isolatedOffering: string;
let netA: any;
let netB: any;
let shared: any;
let bobNet: any;

const isolated = async (client: CloudStackClient, name: string, gateway?: string) =>
  (
    await client.request<any>('createNetwork', {
      name,
      zoneid,
      networkofferingid: isolatedOffering,
      ...(gateway ? { gateway, netmask: '255.255.255.0' } : {}),
    })
  ).network;

const deploy = async (params: Record<string, any>, client: CloudStackClient = alice) =>
  (
    await client.call<any>('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      ...params,
    })
  ).virtualmachine;

/** The VM as its simulated host holds it (its spec's NICs), and that host. */
async function onHost(vmId: string): Promise<{ host: SimulatorHost; nics: any[] } | undefined> {
  const vm = (await admin.request<any>('listVirtualMachines', { id: vmId, listall: true })).virtualmachine[0];
  for (const host of zone.fleet.hosts.values()) {
    const sim = host.vms.get(vm.instancename);
    if (sim) return { host, nics: sim.spec.nics };
  }
  return undefined;
}

/** Users may not expunge (allow.user.expunge.recover.vm): the administrator cleans up. */
const expunge = (id: string) => admin.call('destroyVirtualMachine', { id, expunge: true });

const nicsOf = async (vmId: string) =>
  (await alice.request<any>('listNics', { virtualmachineid: vmId })).nic ?? [];

/** The MACs the network's running router has entries for. */
const routerMacs = async (networkid: string) =>
  (await zone.routerOf(networkid)).spec.vms.map((e: any) => e.mac);

const routerEntry = async (networkid: string, mac: string) =>
  (await zone.routerOf(networkid)).spec.vms.find((e: any) => e.mac === mac);

before(async () => {
  zone = await startAdvancedZone({ publicIps: 11 });
  ({ admin, zoneid, templateid, offering, isolatedOffering } = zone);
  alice = await zone.createUser('alice');
  bob = await zone.createUser('bob');
  netA = await isolated(alice, 'a');
  netB = await isolated(alice, 'b', '10.2.0.1');
  bobNet = await isolated(bob, 'bobs');
  const sharedOffering = (
    await admin.request<any>('listNetworkOfferings', { name: 'DefaultSharedNetworkOffering' })
  ).networkoffering[0].id;
  shared = (
    await admin.request<any>('createNetwork', {
      name: 'shared',
      zoneid,
      networkofferingid: sharedOffering,
      vlan: '3000',
      gateway: '10.50.0.1',
      netmask: '255.255.255.0',
      startip: '10.50.0.10',
      endip: '10.50.0.100',
    })
  ).network;
});

after(() => zone?.stop());

describe('deploying with several NICs', () => {
  test('networkids=a,b: one NIC per network in that order, the first the default, each plugged on its bridge', async () => {
    const vm = await deploy({ networkids: `${netA.id},${netB.id}`, name: 'two' });
    assert.deepEqual(
      vm.nic.map((n: any) => [n.networkid, n.deviceid, n.isdefault]),
      [
        [netA.id, '0', true],
        [netB.id, '1', false],
      ],
    );
    assert.match(vm.nic[0].ipaddress, /^10\.1\.1\./);
    assert.match(vm.nic[1].ipaddress, /^10\.2\.0\./);
    const placed = (await onHost(vm.id))!;
    assert.deepEqual(
      placed.nics.map((n) => [n.mac, n.bridge]),
      vm.nic.map((n: any) => [n.macaddress, placed.host.networks.get(n.networkid)!.bridge]),
    );
    assert.ok((await routerMacs(netA.id)).includes(vm.nic[0].macaddress));
    assert.ok((await routerMacs(netB.id)).includes(vm.nic[1].macaddress));
    // DHCP gives the default route on the default NIC only.
    assert.equal((await routerEntry(netA.id, vm.nic[0].macaddress)).defaultGateway, undefined);
    assert.equal((await routerEntry(netB.id, vm.nic[1].macaddress)).defaultGateway, false);
    await expunge(vm.id);
  });

  test('an isolated and a shared network', async () => {
    const vm = await deploy({ networkids: `${shared.id},${netA.id}` });
    assert.equal(vm.nic[0].networkid, shared.id);
    assert.equal(vm.nic[0].isdefault, true);
    assert.match(vm.nic[0].ipaddress, /^10\.50\.0\./);
    assert.equal(vm.nic[1].networkid, netA.id);
    assert.equal((await onHost(vm.id))!.nics.length, 2);
    assert.ok((await routerMacs(shared.id)).includes(vm.nic[0].macaddress));
    await expunge(vm.id);
  });

  test('iptonetworklist: the networks in its order, each NIC with its address', async () => {
    const vm = await deploy({
      iptonetworklist: [
        { networkid: netB.id, ip: '10.2.0.50' },
        { networkid: netA.id, ip: '10.1.1.60' },
        { networkid: shared.id },
      ],
    });
    assert.deepEqual(
      vm.nic.map((n: any) => [n.networkid, n.isdefault]),
      [
        [netB.id, true],
        [netA.id, false],
        [shared.id, false],
      ],
    );
    assert.equal(vm.nic[0].ipaddress, '10.2.0.50');
    assert.equal(vm.nic[1].ipaddress, '10.1.1.60');
    assert.match(vm.nic[2].ipaddress, /^10\.50\.0\./);
    await expunge(vm.id);
  });

  test('bad iptonetworklist and networkids are refused and deploy nothing', async () => {
    const count = async () => (await admin.request<any>('listVirtualMachines', { listall: true })).count ?? 0;
    const before = await count();
    const refused: [Record<string, any>, number, RegExp?][] = [
      [{ iptonetworklist: [{ networkid: netA.id }], networkids: netB.id }, 431, /can't be specified along/],
      [{ iptonetworklist: [{ networkid: netA.id }], ipaddress: '10.1.1.9' }, 431, /can't be specified along/],
      [{ iptonetworklist: [{ ip: '10.1.1.9' }] }, 431, /needs a networkid/],
      [{ iptonetworklist: [{ networkid: netA.id, ipv6: 'fc00::1' }] }, 431, /IPv6/],
      [{ iptonetworklist: [{ networkid: netA.id, mac: '02:00:00:00:00:01' }] }, 431, /MAC/],
      [{ iptonetworklist: [{ networkid: netA.id }, { networkid: netA.id }] }, 431, /twice/],
      [{ iptonetworklist: [{ networkid: netA.id, ip: '10.9.9.9' }] }, 431, /not in a guest IP range/],
      [{ iptonetworklist: [{ networkid: netA.id }, { networkid: netB.id, ip: '10.2.0.1' }] }, 431, /gateway/],
      [{ iptonetworklist: [{ networkid: netA.id }, { networkid: bobNet.id }] }, 531],
      [{ networkids: `${netA.id},${bobNet.id}` }, 531],
      [{ networkids: `${netA.id},${netA.id}` }, 431, /only once/],
    ];
    for (const [params, code, text] of refused)
      await assert.rejects(deploy(params), is(code, text), JSON.stringify(params));
    assert.equal(await count(), before);
  });
});

describe('adding, removing and choosing the default NIC', () => {
  let vm: any;
  let added: any;

  before(async () => {
    vm = await deploy({ networkids: netA.id, name: 'grow' });
  });

  test('addNicToVirtualMachine on a Running VM: the host plugs it on the network bridge, the router knows it', async () => {
    const res = await alice.call<any>('addNicToVirtualMachine', {
      virtualmachineid: vm.id,
      networkid: netB.id,
      ipaddress: '10.2.0.77',
    });
    const nics = res.virtualmachine.nic;
    assert.equal(nics.length, 2);
    added = nics.find((n: any) => n.networkid === netB.id);
    assert.equal(added.ipaddress, '10.2.0.77');
    assert.equal(added.deviceid, '1');
    assert.equal(added.isdefault, false);
    const placed = (await onHost(vm.id))!;
    const plugged = placed.nics.find((n) => n.mac === added.macaddress);
    assert.ok(plugged, 'the host got plugNic');
    assert.equal(plugged.bridge, placed.host.networks.get(netB.id)!.bridge);
    assert.equal(plugged.deviceId, 1);
    assert.ok((await routerMacs(netB.id)).includes(added.macaddress));
    const events = await alice.request<any>('listEvents', { type: 'NIC.CREATE' });
    assert.ok(events.event.some((e: any) => e.state === 'Completed'));
  });

  test('a NIC on a network no VM has started yet implements it on the VM host', async () => {
    const fresh = await isolated(alice, 'fresh', '10.3.0.1');
    const res = await alice.call<any>('addNicToVirtualMachine', {
      virtualmachineid: vm.id,
      networkid: fresh.id,
    });
    const nic = res.virtualmachine.nic.find((n: any) => n.networkid === fresh.id);
    assert.equal(nic.deviceid, '2');
    const net = (await alice.request<any>('listNetworks', { id: fresh.id })).network[0];
    assert.equal(net.state, 'Implemented');
    const placed = (await onHost(vm.id))!;
    assert.equal(
      placed.host.networks.get(fresh.id)?.vni,
      Number((await admin.request<any>('listNetworks', { id: fresh.id, listall: true })).network[0].vlan),
    );
    assert.ok((await routerMacs(fresh.id)).includes(nic.macaddress));
    await alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: nic.id });
  });

  test('refusals of addNicToVirtualMachine change nothing', async () => {
    const before = await nicsOf(vm.id);
    const tries: [CloudStackClient, Record<string, any>, number, RegExp?][] = [
      [alice, { networkid: netB.id }, 431, /A NIC already exists for VM:.* in network: /],
      [alice, { networkid: bobNet.id }, 531],
      [bob, { networkid: bobNet.id }, 531],
      // An administrator sees bob's network, but the VM's owner may not use it.
      [admin, { networkid: bobNet.id }, 531],
      [alice, { networkid: zoneid }, 431, /Invalid parameter networkid value=.* entity does not exist/],
      [alice, { networkid: shared.id, macaddress: '02:00:00:00:00:09' }, 431, /MAC/],
      [alice, { networkid: shared.id, dhcpoptions: [{ 'dhcp:114': 'x' }] }, 431, /DHCP/],
      [alice, { networkid: shared.id, ipaddress: '10.50.0.200' }, 431, /not in a guest IP range/],
      [alice, { networkid: shared.id, ipaddress: 'nonsense' }, 431, /Invalid IP/],
    ];
    for (const [client, params, code, text] of tries)
      await assert.rejects(
        client.call('addNicToVirtualMachine', { virtualmachineid: vm.id, ...params }),
        is(code, text),
        JSON.stringify(params),
      );
    // An address another VM holds.
    const other = await deploy({ networkids: shared.id });
    await assert.rejects(
      alice.call('addNicToVirtualMachine', {
        virtualmachineid: vm.id,
        networkid: shared.id,
        ipaddress: other.nic[0].ipaddress,
      }),
      is(431, /already in use/),
    );
    await expunge(other.id);
    assert.deepEqual(await nicsOf(vm.id), before);
    assert.equal((await onHost(vm.id))!.nics.length, before.length);
  });

  test('a host that refuses the hot-plug: the job fails, the NIC and its address are given back', async () => {
    const before = await nicsOf(vm.id);
    const placed = (await onHost(vm.id))!;
    const hostid = zone.hostIds.get(placed.host.name);
    await admin.request('configureSimulator', {
      name: 'PlugNicCommand',
      value: 'result:fail;message:no slot left',
      count: 1,
      hostid,
    });
    await assert.rejects(
      alice.call('addNicToVirtualMachine', {
        virtualmachineid: vm.id,
        networkid: shared.id,
        ipaddress: '10.50.0.44',
      }),
      (e: any) => /no slot left/.test(e.message),
    );
    assert.deepEqual(await nicsOf(vm.id), before);
    assert.equal((await onHost(vm.id))!.nics.length, before.length);
    // The address is free again: the next try gets it.
    const res = await alice.call<any>('addNicToVirtualMachine', {
      virtualmachineid: vm.id,
      networkid: shared.id,
      ipaddress: '10.50.0.44',
    });
    const nic = res.virtualmachine.nic.find((n: any) => n.networkid === shared.id);
    assert.equal(nic.ipaddress, '10.50.0.44');
    await alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: nic.id });
  });

  test('refusals of removeNicFromVirtualMachine: the default NIC, another VM’s NIC, someone else', async () => {
    const nics = await nicsOf(vm.id);
    const def = nics.find((n: any) => n.isdefault);
    await assert.rejects(
      alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: def.id }),
      is(431, /nic is default/),
    );
    const other = await deploy({ networkids: netA.id });
    await assert.rejects(
      alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: other.nic[0].id }),
      is(431, /is not a nic on/),
    );
    await assert.rejects(
      alice.call('updateDefaultNicForVirtualMachine', { virtualmachineid: vm.id, nicid: other.nic[0].id }),
      is(431, /is not a nic on/),
    );
    await expunge(other.id);
    await assert.rejects(
      bob.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: added.id }),
      is(531),
    );
    await assert.rejects(
      bob.call('updateDefaultNicForVirtualMachine', { virtualmachineid: vm.id, nicid: added.id }),
      is(531),
    );
    await assert.rejects(
      alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: zoneid }),
      is(431, /Invalid parameter nicid value=.* entity does not exist/),
    );
    assert.deepEqual(await nicsOf(vm.id), nics);
  });

  test('a NIC that port forwarding, static NAT or a load balancer points at is not removed; the refusal says which', async () => {
    const ip = async () => (await alice.call<any>('associateIpAddress', { networkid: netB.id })).ipaddress;
    const pfIp = await ip();
    const pf = (
      await alice.call<any>('createPortForwardingRule', {
        ipaddressid: pfIp.id,
        protocol: 'tcp',
        publicport: 2222,
        privateport: 22,
        virtualmachineid: vm.id,
      })
    ).portforwardingrule;
    assert.equal(pf.vmguestip, added.ipaddress, 'the rule goes to the NIC in the address network');
    const remove = () =>
      alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: added.id });
    await assert.rejects(
      remove(),
      is(431, new RegExp(`Port forwarding.*port forwarding tcp ${pfIp.ipaddress}:2222`)),
    );
    await alice.call('deletePortForwardingRule', { id: pf.id });
    const natIp = await ip();
    await alice.request('enableStaticNat', { ipaddressid: natIp.id, virtualmachineid: vm.id });
    await assert.rejects(remove(), is(431, new RegExp(`static NAT from ${natIp.ipaddress}`)));
    await alice.request('disableStaticNat', { ipaddressid: natIp.id });
    // A load balancer membership, as lb-members.ts records it.
    const db = zone.server.app.store.db;
    const vmRow = await db
      .selectFrom('vms')
      .select(['id', 'account_id', 'domain_id'])
      .where('uuid', '=', vm.id)
      .executeTakeFirstOrThrow();
    const network = await db
      .selectFrom('networks')
      .select('id')
      .where('uuid', '=', netB.id)
      .executeTakeFirstOrThrow();
    const lbIpId = (
      await db.selectFrom('public_ips').select('id').where('uuid', '=', natIp.id).executeTakeFirstOrThrow()
    ).id;
    await db
      .insertInto('ip_rules')
      .values({
        uuid: 'lb-test-rule',
        purpose: 'LoadBalancing',
        traffic_type: 'Ingress',
        ip_id: lbIpId,
        network_id: network.id,
        account_id: vmRow.account_id,
        domain_id: vmRow.domain_id,
        protocol: 'tcp',
        start_port: 80,
        end_port: 80,
        state: 'Add',
        name: 'web-lb',
        created: Date.now(),
      } as any)
      .execute();
    const rule = await db
      .selectFrom('ip_rules')
      .select('id')
      .where('uuid', '=', 'lb-test-rule')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('lb_members')
      .values({ rule_id: rule.id, vm_id: vmRow.id, vm_ip: added.ipaddress, created: Date.now() })
      .execute();
    await assert.rejects(remove(), is(431, /load balancer web-lb/));
    await db.deleteFrom('lb_members').where('rule_id', '=', rule.id).execute();
    await db.deleteFrom('ip_rules').where('id', '=', rule.id).execute();
    assert.ok((await nicsOf(vm.id)).some((n: any) => n.id === added.id));
    assert.ok((await onHost(vm.id))!.nics.some((n) => n.mac === added.macaddress));
  });

  test('updateDefaultNicForVirtualMachine flips the default; the chosen NIC must not be it already', async () => {
    const res = await alice.call<any>('updateDefaultNicForVirtualMachine', {
      virtualmachineid: vm.id,
      nicid: added.id,
    });
    assert.deepEqual(
      res.virtualmachine.nic.map((n: any) => [n.networkid, n.isdefault]),
      [
        [netA.id, false],
        [netB.id, true],
      ],
    );
    await assert.rejects(
      alice.call('updateDefaultNicForVirtualMachine', { virtualmachineid: vm.id, nicid: added.id }),
      is(431, /already the default/),
    );
    // Both routers were told: the default route now comes from network b's.
    const previous = res.virtualmachine.nic.find((n: any) => n.networkid === netA.id);
    assert.equal((await routerEntry(netB.id, added.macaddress)).defaultGateway, undefined);
    assert.equal((await routerEntry(netA.id, previous.macaddress)).defaultGateway, false);
    // Back, so the NIC can be removed.
    const first = res.virtualmachine.nic.find((n: any) => n.networkid === netA.id);
    await alice.call('updateDefaultNicForVirtualMachine', { virtualmachineid: vm.id, nicid: first.id });
  });

  test('removeNicFromVirtualMachine on a Running VM: unplugged, out of the router, its address free again', async () => {
    const res = await alice.call<any>('removeNicFromVirtualMachine', {
      virtualmachineid: vm.id,
      nicid: added.id,
    });
    assert.deepEqual(
      res.virtualmachine.nic.map((n: any) => n.networkid),
      [netA.id],
    );
    assert.ok(!(await onHost(vm.id))!.nics.some((n) => n.mac === added.macaddress), 'the host got unplugNic');
    assert.ok(!(await routerMacs(netB.id)).includes(added.macaddress));
    const db = zone.server.app.store.db;
    const row = await db
      .selectFrom('nics')
      .select(['state', 'removed'])
      .where('uuid', '=', added.id)
      .executeTakeFirstOrThrow();
    assert.equal(row.state, 'Deallocated');
    assert.ok(row.removed);
    const held = await db
      .selectFrom('guest_ip_allocations')
      .select('id')
      .where('ip4', '=', '10.2.0.77')
      .execute();
    assert.equal(held.length, 0);
    const events = await alice.request<any>('listEvents', { type: 'NIC.DELETE' });
    assert.ok(events.event.some((e: any) => e.state === 'Completed'));
  });

  test('on a Stopped VM: NICs are records until it starts, then the host gets them all', async () => {
    await alice.call('stopVirtualMachine', { id: vm.id });
    const res = await alice.call<any>('addNicToVirtualMachine', {
      virtualmachineid: vm.id,
      networkid: netB.id,
      ipaddress: '10.2.0.77',
    });
    const nic = res.virtualmachine.nic.find((n: any) => n.networkid === netB.id);
    assert.equal(nic.deviceid, '1', 'the removed NIC device id is reused');
    assert.equal(await onHost(vm.id), undefined);
    const def = await alice.call<any>('updateDefaultNicForVirtualMachine', {
      virtualmachineid: vm.id,
      nicid: nic.id,
    });
    assert.equal(def.virtualmachine.nic.find((n: any) => n.isdefault).id, nic.id);
    await alice.call('startVirtualMachine', { id: vm.id });
    const placed = (await onHost(vm.id))!;
    assert.deepEqual(
      placed.nics.map((n) => n.mac).sort(),
      (await nicsOf(vm.id)).map((n: any) => n.macaddress).sort(),
    );
    await alice.call('stopVirtualMachine', { id: vm.id });
    const first = (await nicsOf(vm.id)).find((n: any) => n.networkid === netA.id);
    const left = await alice.call<any>('removeNicFromVirtualMachine', {
      virtualmachineid: vm.id,
      nicid: first.id,
    });
    assert.deepEqual(
      left.virtualmachine.nic.map((n: any) => n.networkid),
      [netB.id],
    );
    await alice.call('startVirtualMachine', { id: vm.id });
    assert.deepEqual(
      (await onHost(vm.id))!.nics.map((n) => n.mac),
      [nic.macaddress],
    );
  });

  test('a VM with VM snapshots is refused for every NIC change (as upstream)', async () => {
    const vm = await deploy({ networkids: `${netA.id},${netB.id}` });
    const nics = await nicsOf(vm.id);
    const snap = (await alice.call<any>('createVMSnapshot', { virtualmachineid: vm.id })).vmsnapshot;
    await assert.rejects(
      alice.call('addNicToVirtualMachine', { virtualmachineid: vm.id, networkid: netA.id }),
      is(431, /NIC cannot be added to VM with VM Snapshots/),
    );
    await assert.rejects(
      alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: nics[0].id }),
      is(431, /NIC cannot be removed from VM with VM Snapshots/),
    );
    await assert.rejects(
      alice.call('updateDefaultNicForVirtualMachine', { virtualmachineid: vm.id, nicid: nics[0].id }),
      is(431, /NIC cannot be updated for VM with VM Snapshots/),
    );
    await alice.call('deleteVMSnapshot', { vmsnapshotid: snap.id });
    assert.deepEqual(await nicsOf(vm.id), nics);
    await alice.call('removeNicFromVirtualMachine', { virtualmachineid: vm.id, nicid: nics[1].id });
    await expunge(vm.id);
  });

  test('a VM that is neither Running nor Stopped is refused', async () => {
    await alice.call('destroyVirtualMachine', { id: vm.id });
    await assert.rejects(
      admin.call('addNicToVirtualMachine', { virtualmachineid: vm.id, networkid: netA.id }),
      is(431, /not Running or Stopped/),
    );
    await admin.call('destroyVirtualMachine', { id: vm.id, expunge: true });
  });
});

describe('Basic zones keep one NIC (as upstream)', () => {
  let basic: TestServer;

  before(async () => {
    basic = await startServer({ env: { NIMBOSTACK_SEED_LOCAL_ZONE: 'true' } });
  });
  after(() => basic?.stop());

  test('addNic, removeNic and updateDefaultNic are refused with 431 and change nothing', async () => {
    const local = await seededLocalZone(basic.admin);
    const vm = (
      await basic.admin.call<any>('deployVirtualMachine', {
        zoneid: local.zoneid,
        templateid: local.templateid,
        serviceofferingid: local.small,
      })
    ).virtualmachine;
    const network = vm.nic[0].networkid;
    await assert.rejects(
      basic.admin.call('addNicToVirtualMachine', { virtualmachineid: vm.id, networkid: network }),
      is(431, /NetworkType of Basic. Can't add a new NIC to a VM on a Basic Network/),
    );
    for (const command of ['removeNicFromVirtualMachine', 'updateDefaultNicForVirtualMachine'])
      await assert.rejects(
        basic.admin.call(command, { virtualmachineid: vm.id, nicid: vm.nic[0].id }),
        is(431, /NetworkType of Basic/),
        command,
      );
    const nics = (await basic.admin.request<any>('listNics', { virtualmachineid: vm.id })).nic;
    assert.deepEqual(
      nics.map((n: any) => [n.id, n.isdefault]),
      [[vm.nic[0].id, true]],
    );
  });
});
