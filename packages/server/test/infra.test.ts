/** Describing a data centre through the API: zones, pods, clusters, physical networks, storage. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type CloudStackClient, CloudStackError } from '@nimbostack/client';
import { createAccountAndLogin, REPO, startServer, type TestServer } from './harness.ts';

let server: TestServer;
let admin: CloudStackClient;
let user: CloudStackClient;
let poolDir: string;

async function fails(p: Promise<unknown>, code: number, text?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof CloudStackError, String(e));
    assert.equal(e.errorcode, code, e.message);
    if (text) assert.match(e.message, text);
    return true;
  });
}

const zoneParams = {
  name: 'zone-a',
  networktype: 'Advanced',
  dns1: '8.8.8.8',
  internaldns1: '10.0.0.2',
  guestcidraddress: '10.1.0.0/16',
};

const catalog = new Map<string, any>(
  JSON.parse(readFileSync(join(REPO, 'packages/server/src/registry/catalog.json'), 'utf8')).map((c: any) => [
    c.name,
    c,
  ]),
);
/**
 * upstream's listTrafficTypes declares the provider response class but answers with traffic type
 * objects, which is what we serve.
 */
const UNCHECKED = new Set(['listTrafficTypes']);

/** Fails when a response object has a field the CloudStack catalog doesn't list for the command. */
function checkFields(command: string, body: any): void {
  const c = catalog.get(command);
  if (!c || UNCHECKED.has(command) || !c.responseObjectName) return;
  const allowed = new Set(c.response.map((f: any) => f.name));
  const inner = body?.[c.responseObjectName];
  for (const item of Array.isArray(inner) ? inner : inner ? [inner] : [])
    for (const key of Object.keys(item))
      assert.ok(allowed.has(key), `${command}: field ${key} is not in the catalog`);
}

/** The admin client, with every answer checked against the catalog's response fields. */
function fieldChecked(client: CloudStackClient): CloudStackClient {
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop !== 'request' && prop !== 'call') return Reflect.get(target, prop, receiver);
      return async (command: string, params?: any) => {
        const body = await (target as any)[prop](command, params);
        checkFields(command, body);
        return body;
      };
    },
  });
}

before(async () => {
  server = await startServer();
  admin = fieldChecked(server.admin);
  ({ client: user } = await createAccountAndLogin(server, { name: 'infra-user' }));
  poolDir = mkdtempSync(join(tmpdir(), 'nimbo-pool-'));
});
after(async () => {
  await server.stop();
  rmSync(poolDir, { recursive: true, force: true });
});

describe('zones', () => {
  let zoneId: string;

  test('createZone returns the zone with upstream fields; new zones start Disabled', async () => {
    const r = await admin.request<{ zone: any }>('createZone', zoneParams);
    zoneId = r.zone.id;
    assert.match(zoneId, /^[0-9a-f-]{36}$/);
    assert.equal(r.zone.name, 'zone-a');
    assert.equal(r.zone.networktype, 'Advanced');
    assert.equal(r.zone.allocationstate, 'Disabled');
    assert.equal(r.zone.dns1, '8.8.8.8');
    assert.equal(r.zone.internaldns1, '10.0.0.2');
    assert.equal(r.zone.guestcidraddress, '10.1.0.0/16');
    assert.equal(r.zone.securitygroupsenabled, false);
    assert.equal(r.zone.localstorageenabled, false);
    assert.match(r.zone.zonetoken, /\S+/);
  });

  test('a Basic zone always has security groups', async () => {
    const r = await admin.request<{ zone: any }>('createZone', {
      ...zoneParams,
      name: 'zone-basic',
      networktype: 'Basic',
      guestcidraddress: undefined,
    });
    assert.equal(r.zone.securitygroupsenabled, true);
    assert.equal(r.zone.guestcidraddress, undefined);
    await admin.request('deleteZone', { id: r.zone.id });
  });

  test('bad input is refused with 431 and creates nothing', async () => {
    await fails(admin.request('createZone', { ...zoneParams, name: 'x', networktype: 'Fancy' }), 431);
    await fails(admin.request('createZone', { ...zoneParams, name: 'x', dns1: 'not-an-ip' }), 431);
    await fails(
      admin.request('createZone', { ...zoneParams, name: 'x', guestcidraddress: '10.1.0.0/99' }),
      431,
    );
    await fails(admin.request('createZone', zoneParams), 431, /already exists/);
    const list = await admin.request<{ count: number; zone: any[] }>('listZones', {});
    assert.deepEqual(
      list.zone.map((z) => z.name),
      ['zone-a'],
    );
  });

  test('users see only enabled zones; updateZone enables', async () => {
    assert.deepEqual(await user.request('listZones', {}), {});
    const r = await admin.request<{ zone: any }>('updateZone', {
      id: zoneId,
      allocationstate: 'Enabled',
      dns2: '1.1.1.1',
    });
    assert.equal(r.zone.allocationstate, 'Enabled');
    assert.equal(r.zone.dns2, '1.1.1.1');
    const seen = await user.request<{ count: number; zone: any[] }>('listZones', {});
    assert.equal(seen.count, 1);
    assert.equal(seen.zone[0].id, zoneId);
  });

  test('updateZone: dhcpprovider is VirtualRouter only; ispublic=false is ignored', async () => {
    for (const dhcpprovider of ['ExternalDhcpServer', 'dnsmasq', ''])
      await fails(admin.request('updateZone', { id: zoneId, dhcpprovider }), 431);
    const r = await admin.request<{ zone: any }>('updateZone', { id: zoneId, dhcpprovider: 'virtualrouter' });
    assert.equal(r.zone.dhcpprovider, 'VirtualRouter');
    const same = await admin.request<{ zone: any }>('updateZone', { id: zoneId, ispublic: false });
    assert.equal(same.zone.domainid, undefined, 'a public zone stays public');
  });

  test('unknown zone id is a 431', async () => {
    await fails(admin.request('updateZone', { id: '00000000-0000-4000-8000-000000000000', name: 'y' }), 431);
    await fails(admin.request('deleteZone', { id: '00000000-0000-4000-8000-000000000000' }), 431);
    await fails(
      admin.request('createPod', {
        zoneid: '00000000-0000-4000-8000-000000000000',
        name: 'p',
        gateway: '10.0.0.1',
        netmask: '255.255.255.0',
      }),
      431,
    );
  });

  test('zones can carry resource tags', async () => {
    await admin.call('createTags', {
      resourcetype: 'Zone',
      resourceids: zoneId,
      tags: [{ key: 'dc', value: 'par1' }],
    });
    const r = await admin.request<{ zone: any[] }>('listZones', { tags: [{ key: 'dc', value: 'par1' }] });
    assert.equal(r.zone[0].id, zoneId);
    assert.deepEqual(
      r.zone[0].tags.map((t: any) => [t.key, t.value]),
      [['dc', 'par1']],
    );
  });
});

describe('pods, clusters and the order of deletion', () => {
  let zoneId: string;
  let podId: string;
  let clusterId: string;

  before(async () => {
    zoneId = (await admin.request<{ zone: any[] }>('listZones', { name: 'zone-a' })).zone[0].id;
  });

  test('createPod validates addresses and the range', async () => {
    const r = await admin.request<{ pod: any }>('createPod', {
      zoneid: zoneId,
      name: 'pod-1',
      gateway: '192.168.10.1',
      netmask: '255.255.255.0',
      startip: '192.168.10.10',
      endip: '192.168.10.100',
    });
    podId = r.pod.id;
    assert.equal(r.pod.zoneid, zoneId);
    assert.equal(r.pod.zonename, 'zone-a');
    assert.deepEqual(r.pod.startip, ['192.168.10.10']);
    assert.deepEqual(r.pod.endip, ['192.168.10.100']);
    assert.equal(r.pod.allocationstate, 'Enabled');
    const base = { zoneid: zoneId, name: 'pod-2', gateway: '192.168.10.1', netmask: '255.255.255.0' };
    await fails(
      admin.request('createPod', { ...base, startip: '192.168.11.10', endip: '192.168.11.20' }),
      431,
      /subnet/,
    );
    await fails(
      admin.request('createPod', { ...base, startip: '192.168.10.50', endip: '192.168.10.150' }),
      431,
      /overlaps/,
    );
    await fails(
      admin.request('createPod', { ...base, startip: '192.168.10.0', endip: '192.168.10.5' }),
      431,
      /gateway/,
    );
    await fails(
      admin.request('createPod', { ...base, netmask: '255.0.255.0', startip: '192.168.10.150' }),
      431,
    );
    await fails(
      admin.request('createPod', { ...base, startip: '192.168.10.300', endip: '192.168.10.5' }),
      431,
    );
    await fails(
      admin.request('createPod', { ...base, name: 'pod-1', startip: '192.168.10.150' }),
      431,
      /already exists/,
    );
    const pods = await admin.request<{ count: number }>('listPods', { zoneid: zoneId });
    assert.equal(pods.count, 1);
  });

  test('without an end IP the range runs to the end of the subnet', async () => {
    const r = await admin.request<{ pod: any }>('createPod', {
      zoneid: zoneId,
      name: 'pod-2',
      gateway: '192.168.10.1',
      netmask: '255.255.255.0',
      startip: '192.168.10.200',
    });
    assert.deepEqual(r.pod.endip, ['192.168.10.254']);
    const u = await admin.request<{ pod: any }>('updatePod', {
      id: r.pod.id,
      name: 'pod-2b',
      allocationstate: 'Disabled',
    });
    assert.equal(u.pod.name, 'pod-2b');
    assert.equal(u.pod.allocationstate, 'Disabled');
    await fails(admin.request('updatePod', { id: r.pod.id, startip: '192.168.10.90' }), 431, /overlaps/);
    await admin.request('deletePod', { id: r.pod.id });
  });

  test('addCluster takes KVM, LXC or Simulator clusters', async () => {
    const base = { zoneid: zoneId, podid: podId, clustertype: 'CloudManaged' };
    const r = await admin.request<{ count: number; cluster: any[] }>('addCluster', {
      ...base,
      clustername: 'cl-1',
      hypervisor: 'KVM',
    });
    assert.equal(r.count, 1);
    const c = r.cluster[0];
    clusterId = c.id;
    assert.equal(c.hypervisortype, 'KVM');
    assert.equal(c.clustertype, 'CloudManaged');
    assert.equal(c.allocationstate, 'Enabled');
    assert.equal(c.managedstate, 'Managed');
    assert.equal(c.podname, 'pod-1');
    assert.equal(c.cpuovercommitratio, '1.0');
    await fails(admin.request('addCluster', { ...base, clustername: 'x', hypervisor: 'VMware' }), 431);
    const lxc = await admin.request<{ cluster: any[] }>('addCluster', {
      ...base,
      clustername: 'cl-lxc',
      hypervisor: 'lxc',
    });
    assert.equal(lxc.cluster[0].hypervisortype, 'LXC');
    await admin.request('deleteCluster', { id: lxc.cluster[0].id });
    await fails(
      admin.request('addCluster', {
        ...base,
        clustername: 'x',
        hypervisor: 'KVM',
        clustertype: 'ExternalManaged',
      }),
      431,
    );
    await fails(
      admin.request('addCluster', { ...base, clustername: 'cl-1', hypervisor: 'KVM' }),
      431,
      /already exists/,
    );
    assert.equal((await admin.request<{ count: number }>('listClusters', {})).count, 1);
  });

  test('updateCluster changes allocation and managed state', async () => {
    const r = await admin.request<{ cluster: any }>('updateCluster', {
      id: clusterId,
      allocationstate: 'Disabled',
      managedstate: 'Unmanaged',
    });
    assert.equal(r.cluster.allocationstate, 'Disabled');
    assert.equal(r.cluster.managedstate, 'Unmanaged');
    await fails(admin.request('updateCluster', { id: clusterId, allocationstate: 'Sideways' }), 431);
    await admin.request('updateCluster', {
      id: clusterId,
      allocationstate: 'Enabled',
      managedstate: 'Managed',
    });
  });

  test('cluster-scoped settings show in the cluster', async () => {
    await admin.request('updateConfiguration', {
      name: 'cpu.overprovisioning.factor',
      value: '2',
      clusterid: clusterId,
    });
    const r = await admin.request<{ cluster: any[] }>('listClusters', { id: clusterId });
    assert.equal(r.cluster[0].cpuovercommitratio, '2.0');
    const conf = await admin.request<{ configuration: any[] }>('listConfigurations', {
      clusterid: clusterId,
      name: 'cpu.overprovisioning.factor',
    });
    assert.equal(conf.configuration[0].value, '2');
    assert.equal(conf.configuration[0].scope, 'cluster');
  });

  test('listHypervisors answers every role, from the clusters', async () => {
    const r = await user.request<{ hypervisor: any[] }>('listHypervisors', {});
    assert.deepEqual(
      r.hypervisor.map((h) => h.name),
      ['KVM'],
    );
  });

  test('primary storage: local path with capacity from the filesystem, NFS with a given size', async () => {
    const local = await admin.request<{ storagepool: any }>('createStoragePool', {
      zoneid: zoneId,
      podid: podId,
      clusterid: clusterId,
      name: 'local-1',
      url: `file://${poolDir}`,
      tags: 'ssd, fast',
    });
    assert.equal(local.storagepool.type, 'Filesystem');
    assert.equal(local.storagepool.scope, 'CLUSTER');
    assert.equal(local.storagepool.state, 'Up');
    assert.equal(local.storagepool.path, poolDir);
    assert.equal(local.storagepool.tags, 'ssd,fast');
    assert.ok(local.storagepool.disksizetotal > 0);
    const nfs = await admin.request<{ storagepool: any }>('createStoragePool', {
      zoneid: zoneId,
      scope: 'zone',
      hypervisor: 'KVM',
      name: 'nfs-1',
      url: 'nfs://10.0.0.5/export/primary',
      capacitybytes: 1099511627776,
    });
    assert.equal(nfs.storagepool.type, 'NetworkFilesystem');
    assert.equal(nfs.storagepool.ipaddress, '10.0.0.5');
    assert.equal(nfs.storagepool.path, '/export/primary');
    assert.equal(nfs.storagepool.scope, 'ZONE');
    assert.equal(nfs.storagepool.disksizetotal, 1099511627776);
    assert.equal(nfs.storagepool.disksizeallocated, 0);
    assert.equal(nfs.storagepool.overprovisionfactor, '2.0');
    const base = { zoneid: zoneId, podid: podId, clusterid: clusterId, name: 'bad' };
    await fails(admin.request('createStoragePool', { ...base, url: 'nfs://h/p', capacitybytes: -5 }), 431);
    await fails(admin.request('createStoragePool', { ...base, url: 'iscsi://h/iqn/1' }), 431, /Unsupported/);
    await fails(admin.request('createStoragePool', { ...base, url: 'nfs://h/bad%zzpath' }), 431, /escaped/);
    await fails(admin.request('createStoragePool', { ...base, url: 'nfs://h/' }), 431, /no path/);
    await fails(
      admin.request('createStoragePool', { ...base, url: 'nfs://10.0.0.5/export/primary', scope: 'zone' }),
      431,
    );
    await fails(
      admin.request('createStoragePool', { ...base, name: 'nfs-1', url: 'nfs://h/other' }),
      431,
      /already exists/,
    );
    assert.equal((await admin.request<{ count: number }>('listStoragePools', {})).count, 2);
  });

  test('updateStoragePool, and maintenance as async jobs', async () => {
    const pool = (await admin.request<{ storagepool: any[] }>('listStoragePools', { name: 'nfs-1' }))
      .storagepool[0];
    const u = await admin.request<{ storagepool: any }>('updateStoragePool', {
      id: pool.id,
      tags: 'gold',
      capacitybytes: 2199023255552,
      enabled: false,
    });
    assert.equal(u.storagepool.tags, 'gold');
    assert.equal(u.storagepool.disksizetotal, 2199023255552);
    assert.equal(u.storagepool.state, 'Disabled');
    await admin.request('updateStoragePool', { id: pool.id, enabled: true });
    const m = await admin.call<{ storagepool: any }>('enableStorageMaintenance', { id: pool.id });
    assert.equal(m.storagepool.state, 'Maintenance');
    await fails(admin.request('enableStorageMaintenance', { id: pool.id }), 431);
    await fails(admin.request('updateStoragePool', { id: pool.id, enabled: true }), 431);
    const c = await admin.call<{ storagepool: any }>('cancelStorageMaintenance', { id: pool.id });
    assert.equal(c.storagepool.state, 'Up');
    await admin.request('updateConfiguration', {
      name: 'storage.overprovisioning.factor',
      value: '3',
      storageid: pool.id,
    });
    const again = await admin.request<{ storagepool: any[] }>('listStoragePools', { id: pool.id });
    assert.equal(again.storagepool[0].overprovisionfactor, '3.0');
  });

  test('secondary storage', async () => {
    const r = await admin.request<{ imagestore: any }>('addImageStore', {
      provider: 'NFS',
      url: 'nfs://10.0.0.6/export/secondary',
      zoneid: zoneId,
    });
    assert.equal(r.imagestore.name, 'nfs://10.0.0.6/export/secondary');
    assert.equal(r.imagestore.protocol, 'nfs');
    assert.equal(r.imagestore.providername, 'NFS');
    assert.equal(r.imagestore.scope, 'ZONE');
    assert.equal(r.imagestore.zonename, 'zone-a');
    await fails(admin.request('addImageStore', { provider: 'S3', url: 'nfs://x/y', zoneid: zoneId }), 431);
    await fails(
      admin.request('addImageStore', {
        provider: 'NFS',
        url: 'nfs://10.0.0.6/export/secondary',
        zoneid: zoneId,
      }),
      431,
    );
    const local = await admin.request<{ imagestore: any }>('addImageStore', {
      name: 'local-secondary',
      provider: 'NFS',
      url: poolDir,
      zoneid: zoneId,
    });
    assert.equal(local.imagestore.protocol, 'file');
    assert.ok(local.imagestore.disksizetotal > 0);
    assert.equal((await admin.request<{ count: number }>('listImageStores', { zoneid: zoneId })).count, 2);
    const ro = await admin.request<{ imagestore: any }>('updateImageStore', {
      id: local.imagestore.id,
      readonly: true,
    });
    assert.equal(ro.imagestore.readonly, true);
    assert.equal((await admin.request<{ count: number }>('listImageStores', { readonly: true })).count, 1);
  });

  test('physical networks and traffic types', async () => {
    const net = await admin.call<{ physicalnetwork: any }>('createPhysicalNetwork', {
      zoneid: zoneId,
      name: 'phys-1',
      isolationmethods: 'VLAN',
      vlan: '100-199',
    });
    assert.equal(net.physicalnetwork.name, 'phys-1');
    assert.equal(net.physicalnetwork.state, 'Disabled');
    assert.equal(net.physicalnetwork.vlan, '100-199');
    assert.equal(net.physicalnetwork.broadcastdomainrange, 'ZONE');
    const id = net.physicalnetwork.id;
    for (const traffictype of ['Management', 'Guest', 'Public']) {
      const t = await admin.call<{ traffictype: any }>('addTrafficType', {
        physicalnetworkid: id,
        traffictype,
        kvmnetworklabel: 'cloudbr0',
      });
      assert.equal(t.traffictype.traffictype, traffictype);
      assert.equal(t.traffictype.kvmnetworklabel, 'cloudbr0');
    }
    await fails(admin.request('addTrafficType', { physicalnetworkid: id, traffictype: 'Management' }), 431);
    await fails(
      admin.request('addTrafficType', { physicalnetworkid: id, traffictype: 'Carrier-pigeon' }),
      431,
    );
    await fails(
      admin.request('createPhysicalNetwork', { zoneid: zoneId, name: 'x', vlan: '5000-6000' }),
      431,
    );
    const types = await admin.request<{ count: number; traffictype: any[] }>('listTrafficTypes', {
      physicalnetworkid: id,
    });
    assert.equal(types.count, 3);
    const enabled = await admin.call<{ physicalnetwork: any }>('updatePhysicalNetwork', {
      id,
      state: 'Enabled',
    });
    assert.equal(enabled.physicalnetwork.state, 'Enabled');
    await admin.call('deleteTrafficType', { id: types.traffictype[2].id });
    assert.equal(
      (await admin.request<{ count: number }>('listTrafficTypes', { physicalnetworkid: id })).count,
      2,
    );
  });

  test('deletion is refused while something is inside, and changes nothing', async () => {
    await fails(admin.request('deleteZone', { id: zoneId }), 536, /pods/);
    await fails(admin.request('deletePod', { id: podId }), 536, /clusters/);
    await fails(admin.request('deleteCluster', { id: clusterId }), 536, /primary storage/);
    assert.equal((await admin.request<{ count: number }>('listZones', { id: zoneId })).count, 1);
    assert.equal((await admin.request<{ count: number }>('listPods', { id: podId })).count, 1);
    assert.equal((await admin.request<{ count: number }>('listClusters', { id: clusterId })).count, 1);
  });

  test('taking the zone apart in order', async () => {
    for (const pool of (await admin.request<{ storagepool: any[] }>('listStoragePools', {})).storagepool)
      await admin.request('deleteStoragePool', { id: pool.id });
    await admin.request('deleteCluster', { id: clusterId });
    await admin.request('deletePod', { id: podId });
    await fails(admin.request('deleteZone', { id: zoneId }), 536, /image stores/);
    for (const store of (await admin.request<{ imagestore: any[] }>('listImageStores', {})).imagestore)
      await admin.request('deleteImageStore', { id: store.id });
    await fails(admin.request('deleteZone', { id: zoneId }), 536, /physical networks/);
    for (const net of (await admin.request<{ physicalnetwork: any[] }>('listPhysicalNetworks', {}))
      .physicalnetwork)
      await admin.call('deletePhysicalNetwork', { id: net.id });
    await admin.request('deleteZone', { id: zoneId });
    assert.deepEqual(await admin.request('listZones', {}), {});
    const r = await user.request<{ hypervisor: any[] }>('listHypervisors', {});
    assert.deepEqual(
      r.hypervisor.map((h) => h.name),
      ['KVM', 'LXC', 'Simulator'],
    );
  });
});

describe('guest OS types', () => {
  test('listOsTypes and listOsCategories are seeded and user-callable', async () => {
    const cats = await user.request<{ count: number; oscategory: any[] }>('listOsCategories', {});
    const names = cats.oscategory.map((c) => c.name);
    for (const n of [
      'CentOS',
      'Debian',
      'Ubuntu',
      'Windows',
      'Other',
      'RedHat',
      'SUSE',
      'Oracle',
      'Unix',
      'Novel',
    ])
      assert.ok(names.includes(n), n);
    const debian = cats.oscategory.find((c) => c.name === 'Debian');
    const types = await user.request<{ count: number; ostype: any[] }>('listOsTypes', {
      oscategoryid: debian.id,
    });
    assert.ok(types.ostype.some((t) => t.description === 'Debian GNU/Linux 12 (64-bit)'));
    assert.ok(types.ostype.every((t) => t.oscategoryid === debian.id && t.oscategoryname === 'Debian'));
    const all = await user.request<{ count: number }>('listOsTypes', {});
    assert.ok(all.count >= 30);
    const win = await user.request<{ ostype: any[] }>('listOsTypes', { keyword: 'Server 2022' });
    assert.equal(win.ostype[0].description, 'Windows Server 2022 (64-bit)');
  });

  test('operators add, change and remove their own OS types; the seeded ones stay', async () => {
    const other = (await admin.request<{ oscategory: any[] }>('listOsCategories', { name: 'Other' }))
      .oscategory[0];
    const added = await admin.call<{ ostype: any }>('addGuestOs', {
      oscategoryid: other.id,
      osdisplayname: 'Plan 9 (64-bit)',
    });
    assert.equal(added.ostype.description, 'Plan 9 (64-bit)');
    assert.equal(added.ostype.isuserdefined, true);
    assert.equal(added.ostype.oscategoryname, 'Other');
    await fails(
      admin.request('addGuestOs', { oscategoryid: other.id, osdisplayname: 'Plan 9 (64-bit)' }),
      431,
    );
    const updated = await admin.call<{ ostype: any }>('updateGuestOs', {
      id: added.ostype.id,
      osdisplayname: 'Plan 9 4th edition (64-bit)',
    });
    assert.equal(updated.ostype.description, 'Plan 9 4th edition (64-bit)');
    const debian = (
      await admin.request<{ ostype: any[] }>('listOsTypes', { description: 'Debian GNU/Linux 12 (64-bit)' })
    ).ostype[0];
    await fails(
      admin.request('updateGuestOs', { id: debian.id, osdisplayname: 'Debian' }),
      431,
      /system-defined/,
    );
    await fails(admin.request('removeGuestOs', { id: debian.id }), 431);
    await admin.call('removeGuestOs', { id: added.ostype.id });
    // Removed outright, so the uuid names nothing now: 431, as any unknown uuid.
    await fails(admin.request('listOsTypes', { id: added.ostype.id }), 431);
  });

  test('updateGuestOs changes the description and keeps the name given at addGuestOs', async () => {
    const other = (await admin.request<{ oscategory: any[] }>('listOsCategories', { name: 'Other' }))
      .oscategory[0];
    const named = (
      await admin.call<{ ostype: any }>('addGuestOs', {
        oscategoryid: other.id,
        osdisplayname: 'Inferno (64-bit)',
        name: 'inferno',
      })
    ).ostype;
    const unnamed = (
      await admin.call<{ ostype: any }>('addGuestOs', {
        oscategoryid: other.id,
        osdisplayname: 'Oberon (64-bit)',
      })
    ).ostype;
    const a = await admin.call<{ ostype: any }>('updateGuestOs', {
      id: named.id,
      osdisplayname: 'Inferno 4 (64-bit)',
    });
    assert.deepEqual([a.ostype.name, a.ostype.description], ['inferno', 'Inferno 4 (64-bit)']);
    const b = await admin.call<{ ostype: any }>('updateGuestOs', {
      id: unnamed.id,
      osdisplayname: 'Oberon 2 (64-bit)',
    });
    assert.deepEqual([b.ostype.name, b.ostype.description], ['Oberon 2 (64-bit)', 'Oberon 2 (64-bit)']);
    for (const t of [named, unnamed]) await admin.call('removeGuestOs', { id: t.id });
  });
});
