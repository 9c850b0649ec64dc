/**
 * The world the fuzzer runs against: an Advanced simulator zone (public-ip-zone.ts, server and
 * agent in this process) with tenants alice and bob (and carol, the deep cases' scratch), each owning a network, a VM (its root
 * volume and NIC), a data volume, a snapshot, a public address with a firewall and a port
 * forwarding rule, an SSH key pair, an affinity group, an instance group and user data. The
 * pools name, per upstream entity type (the `entityType` of uuid parameters), the uuids that
 * exist: shared infrastructure, and each tenant's own.
 */
import type { CloudStackClient } from '@nimbostack/client';
import type { ServerConfig } from '../../src/config.ts';
import { type AdvancedZone, startAdvancedZone } from '../public-ip-zone.ts';

export type Pools = Map<string, string[]>;

export interface FuzzWorld {
  zone: AdvancedZone;
  admin: CloudStackClient;
  alice: CloudStackClient;
  bob: CloudStackClient;
  /** A third tenant whose entities the deep cases may change (so they are not compared). */
  carol: CloudStackClient;
  /** Entity type → uuids every admin may name (infrastructure, offerings, the built-in template…). */
  shared: Pools;
  /** Entity type → uuids owned by alice (resp. bob, carol). */
  own: { alice: Pools; bob: Pools; carol: Pools };
  stop(): Promise<void>;
}

type Lister = [entityType: string, command: string, objectName: string, params?: Record<string, unknown>];

/** Where the uuids of each entity type are listed (as the caller whose pool is filled). */
const SHARED: Lister[] = [
  ['ZoneResponse', 'listZones', 'zone'],
  ['PodResponse', 'listPods', 'pod'],
  ['ClusterResponse', 'listClusters', 'cluster'],
  ['HostResponse', 'listHosts', 'host'],
  ['StoragePoolResponse', 'listStoragePools', 'storagepool'],
  ['ImageStoreResponse', 'listImageStores', 'imagestore'],
  ['PhysicalNetworkResponse', 'listPhysicalNetworks', 'physicalnetwork'],
  ['ServiceOfferingResponse', 'listServiceOfferings', 'serviceoffering'],
  ['DiskOfferingResponse', 'listDiskOfferings', 'diskoffering'],
  ['NetworkOfferingResponse', 'listNetworkOfferings', 'networkoffering'],
  ['TemplateResponse', 'listTemplates', 'template', { templatefilter: 'featured' }],
  ['DomainResponse', 'listDomains', 'domain'],
  ['RoleResponse', 'listRoles', 'role'],
  ['GuestOSResponse', 'listOsTypes', 'ostype'],
  ['GuestOSCategoryResponse', 'listOsCategories', 'oscategory'],
  ['VlanIpRangeResponse', 'listVlanIpRanges', 'vlaniprange'],
  ['DomainRouterResponse', 'listRouters', 'router', { listall: true }],
  ['EventResponse', 'listEvents', 'event', { pagesize: 3, page: 1 }],
];

const OWNED: Lister[] = [
  ['UserVmResponse', 'listVirtualMachines', 'virtualmachine'],
  ['VolumeResponse', 'listVolumes', 'volume'],
  ['NetworkResponse', 'listNetworks', 'network'],
  ['IPAddressResponse', 'listPublicIpAddresses', 'publicipaddress'],
  ['FirewallRuleResponse', 'listFirewallRules', 'firewallrule'],
  ['SnapshotResponse', 'listSnapshots', 'snapshot'],
  ['AffinityGroupResponse', 'listAffinityGroups', 'affinitygroup'],
  ['InstanceGroupResponse', 'listInstanceGroups', 'instancegroup'],
  ['UserDataResponse', 'listUserData', 'userdata'],
  ['AccountResponse', 'listAccounts', 'account'],
  ['UserResponse', 'listUsers', 'user'],
  ['AsyncJobResponse', 'listAsyncJobs', 'asyncjobs', { pagesize: 3, page: 1 }],
  ['SSHKeyPairResponse', 'listSSHKeyPairs', 'sshkeypair'],
];

async function fill(client: CloudStackClient, listers: Lister[], into: Pools): Promise<void> {
  for (const [entity, command, objectName, params] of listers) {
    const r = await client.request<Record<string, { id?: string; jobid?: string }[]>>(
      command,
      params as never,
    );
    const ids = (r[objectName] ?? []).map((o) => o.id ?? o.jobid).filter((x): x is string => !!x);
    if (ids.length) into.set(entity, [...(into.get(entity) ?? []), ...ids]);
  }
}

async function populate(z: AdvancedZone, client: CloudStackClient, name: string): Promise<void> {
  const network = (
    await client.request<any>('createNetwork', {
      name: `${name}-net`,
      zoneid: z.zoneid,
      networkofferingid: z.isolatedOffering,
    })
  ).network;
  await client.call('createAffinityGroup', { name: `${name}-spread`, type: 'host anti-affinity' });
  const vm = (
    await client.call<any>('deployVirtualMachine', {
      zoneid: z.zoneid,
      templateid: z.templateid,
      serviceofferingid: z.offering,
      networkids: network.id,
      name: `${name}-vm`,
      group: `${name}-group`,
    })
  ).virtualmachine;
  const disk = (await client.request<any>('listDiskOfferings', {})).diskoffering.find(
    (d: any) => d.iscustomized,
  );
  await client.call('createVolume', {
    zoneid: z.zoneid,
    diskofferingid: disk.id,
    size: 1,
    name: `${name}-data`,
  });
  const root = (await client.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT' }))
    .volume[0];
  await client.call('createSnapshot', { volumeid: root.id, name: `${name}-snap` });
  const ip = (await client.call<any>('associateIpAddress', { networkid: network.id })).ipaddress;
  await client.call('createFirewallRule', {
    ipaddressid: ip.id,
    protocol: 'tcp',
    startport: 22,
    endport: 22,
  });
  await client.call('createPortForwardingRule', {
    ipaddressid: ip.id,
    privateport: 22,
    publicport: 2222,
    protocol: 'tcp',
    virtualmachineid: vm.id,
    openfirewall: false,
  });
  await client.request('createSSHKeyPair', { name: `${name}-key` });
  await client.request('registerUserData', { name: `${name}-ud`, userdata: 'IyFjbG91ZC1jb25maWc=' });
}

export async function startFuzzWorld(): Promise<FuzzWorld> {
  const zone = await startAdvancedZone({
    publicIps: 20,
    logLevel: process.env.FUZZ_LOG as ServerConfig['logLevel'] | undefined,
  });
  try {
    const alice = await zone.createUser('alice');
    const bob = await zone.createUser('bob');
    const carol = await zone.createUser('carol');
    await populate(zone, alice, 'alice');
    await populate(zone, bob, 'bob');
    await populate(zone, carol, 'carol');
    const shared: Pools = new Map();
    await fill(zone.admin, SHARED, shared);
    const own = { alice: new Map() as Pools, bob: new Map() as Pools, carol: new Map() as Pools };
    await fill(alice, OWNED, own.alice);
    await fill(bob, OWNED, own.bob);
    await fill(carol, OWNED, own.carol);
    // Carol's network's router is hers to break too (the deep cases restart and delete networks).
    for (const networkid of own.carol.get('NetworkResponse') ?? []) {
      const routers = await zone.admin.request<{ router?: { id: string }[] }>('listRouters', { networkid });
      for (const r of routers.router ?? [])
        own.carol.set('DomainRouterResponse', [...(own.carol.get('DomainRouterResponse') ?? []), r.id]);
    }
    return { zone, admin: zone.admin, alice, bob, carol, shared, own, stop: () => zone.stop() };
  } catch (e) {
    await zone.stop();
    throw e;
  }
}
