/**
 * The networks benchmark's Advanced zone, built through the API (bench/networks.ts): a VXLAN
 * physical network with Guest, Public and Management traffic, a public range, one pod, clusters of
 * simulator hosts (their rows written as addHost writes them, then adopted from the agent process,
 * as bench/lib/cloud.ts does), storage, the accounts, and isolated networks made the way a user
 * makes them: createNetwork, a VM deployed into it (which implements it: VNI, source-NAT address,
 * router), associateIpAddress, port forwarding, firewall, egress and load-balancer rules.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CloudStackClient } from '@nimbostack/client';
import type { Store } from '../../packages/server/src/db/connection.ts';
import type { TestServer } from '../../packages/server/test/harness.ts';
import { hostRows } from './cloud.ts';

export const PASSWORD = 'bench-password';
/** The zone's guest CIDR: every isolated network gets it (they are isolated, so they may overlap). */
export const GUEST_CIDR = '10.1.0.0/20';
export const VNI_RANGE: [number, number] = [5000, 8999];

export interface ZoneShape {
  networks: number;
  accounts: number;
  hosts: number;
  clusters: number;
  /** Public addresses in the range (one /20 at most here). */
  publicIps: number;
}

export interface Zone {
  zoneUuid: string;
  zoneId: number;
  podId: number;
  templateUuid: string;
  offeringUuid: string;
  isolatedOfferingUuid: string;
  publicRangeId: number;
  /** Accounts in creation order: name, uuid, id, domain id, user uuid. */
  accounts: { name: string; uuid: string; id: number; domainId: number; userUuid: string }[];
}

/** The public range: 198.18.0.0/20 (benchmarking addresses, RFC 2544), from .0.10 on. */
export function publicRange(count: number) {
  const start = (198 << 24) + (18 << 16) + 10;
  const ip = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  return {
    gateway: '198.18.0.1',
    netmask: '255.255.240.0',
    startip: ip(start),
    endip: ip(start + count - 1),
  };
}

export async function keyClient(server: TestServer, userUuid: string, pollInterval = 0.01) {
  const keys = await server.admin.request<{ userkeys: { apikey: string; secretkey: string } }>(
    'registerUserKeys',
    { id: userUuid },
  );
  return new CloudStackClient({
    url: server.api,
    apiKey: keys.userkeys.apikey,
    secretKey: keys.userkeys.secretkey,
    pollInterval,
  });
}

export async function buildZone(
  server: TestServer,
  store: Store,
  shape: ZoneShape,
  log: (s: string) => void,
): Promise<Zone> {
  const admin = server.admin;
  const db = store.db;
  const zone = (
    await admin.request<any>('createZone', {
      name: 'bench-advanced',
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      guestcidraddress: GUEST_CIDR,
    })
  ).zone;
  const physical = (
    await admin.call<any>('createPhysicalNetwork', {
      zoneid: zone.id,
      name: 'bench-physical',
      isolationmethods: 'VXLAN',
      vlan: `${VNI_RANGE[0]}-${VNI_RANGE[1]}`,
    })
  ).physicalnetwork;
  for (const traffictype of ['Guest', 'Public', 'Management'])
    await admin.call('addTrafficType', {
      physicalnetworkid: physical.id,
      traffictype,
      ...(traffictype === 'Public' ? { kvmnetworklabel: 'nimbopub0' } : {}),
    });
  await admin.call('updatePhysicalNetwork', { id: physical.id, state: 'Enabled' });
  await admin.request('createVlanIpRange', {
    zoneid: zone.id,
    forvirtualnetwork: true,
    ...publicRange(shape.publicIps),
  });
  const pod = (
    await admin.request<any>('createPod', {
      zoneid: zone.id,
      name: 'bench-pod',
      gateway: '192.168.0.1',
      netmask: '255.255.0.0',
      startip: '192.168.0.10',
      endip: '192.168.255.250',
    })
  ).pod;
  const clusterUuids: string[] = [];
  for (let c = 0; c < shape.clusters; c++) {
    const r = await admin.request<any>('addCluster', {
      zoneid: zone.id,
      podid: pod.id,
      clustername: `bench-cluster-${c + 1}`,
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
    });
    clusterUuids.push((r.cluster?.[0] ?? r.cluster).id);
  }
  const primary = join(server.dataDir, 'primary');
  const secondary = join(server.dataDir, 'secondary');
  mkdirSync(primary, { recursive: true });
  mkdirSync(secondary, { recursive: true });
  await admin.request('createStoragePool', {
    zoneid: zone.id,
    name: 'bench-primary',
    url: primary,
    scope: 'zone',
    hypervisor: 'Simulator',
    capacitybytes: 1024 ** 5,
  });
  await admin.request('addImageStore', {
    zoneid: zone.id,
    name: 'bench-secondary',
    provider: 'NFS',
    url: secondary,
  });
  await admin.request('updateZone', { id: zone.id, allocationstate: 'Enabled' });

  // Hosts as addHost writes them for an agent's startup; the agent process then brings them Up.
  const zoneRow = await db
    .selectFrom('zones')
    .select('id')
    .where('uuid', '=', zone.id)
    .executeTakeFirstOrThrow();
  const podRow = await db
    .selectFrom('pods')
    .select('id')
    .where('uuid', '=', pod.id)
    .executeTakeFirstOrThrow();
  const clusters = await db
    .selectFrom('clusters')
    .select(['id', 'pod_id'])
    .where('uuid', 'in', clusterUuids)
    .orderBy('id')
    .execute();
  const rows = hostRows(
    1,
    shape.hosts,
    (n) => {
      const c = clusters[(n - 1) % clusters.length]!;
      return { zoneId: zoneRow.id, podId: c.pod_id, clusterId: c.id };
    },
    Date.now(),
  );
  await db.transaction().execute(async (tx) => {
    const per = Math.floor(30_000 / Object.keys(rows[0]!).length);
    for (let i = 0; i < rows.length; i += per)
      await tx
        .insertInto('hosts')
        .values(rows.slice(i, i + per) as never)
        .execute();
  });

  // Accounts through the API: each one is a user that owns networks and signs its own requests.
  const domain = (await admin.request<any>('createDomain', { name: 'bench-networks' })).domain;
  const accounts: Zone['accounts'] = [];
  for (let i = 0; i < shape.accounts; i++) {
    const name = i === 0 ? 'bench-big' : `net-acct-${i}`;
    const a = (
      await admin.request<any>('createAccount', {
        username: name,
        password: PASSWORD,
        email: `${name}@example.com`,
        firstname: name,
        lastname: 'Bench',
        accounttype: 0,
        domainid: domain.id,
      })
    ).account;
    const row = await db
      .selectFrom('accounts')
      .select(['id', 'domain_id'])
      .where('uuid', '=', a.id)
      .executeTakeFirstOrThrow();
    accounts.push({ name, uuid: a.id, id: row.id, domainId: row.domain_id, userUuid: a.user[0].id });
  }
  // Upstream's defaults allow 20 public addresses and 20 networks per account, 40 and 40 per
  // domain: the domain of the tenants has no limit, and the large account holds more (as an
  // operator raises them for such a tenant).
  for (const resourcetype of [0, 1, 2, 6, 8, 9, 10]) {
    await admin.request('updateResourceLimit', { domainid: domain.id, resourcetype, max: -1 });
    await admin.request('updateResourceLimit', {
      account: accounts[0]!.name,
      domainid: domain.id,
      resourcetype,
      max: -1,
    });
  }
  log(
    `API: zone, physical network (VXLAN ${VNI_RANGE.join('-')}), ${shape.publicIps} public addresses, ${clusters.length} clusters, ${shape.accounts} accounts`,
  );

  const templateUuid = await waitFor(async () => {
    const t = await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid: zone.id });
    return (t.template ?? []).find((x: any) => x.isready)?.id as string | undefined;
  }, 60_000);
  const offeringUuid = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
    .serviceoffering[0].id as string;
  const isolatedOfferingUuid = (
    await admin.request<any>('listNetworkOfferings', {
      name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    })
  ).networkoffering[0].id as string;
  const range = await db
    .selectFrom('vlan_ip_ranges')
    .select('id')
    .where('zone_id', '=', zoneRow.id)
    .where('for_virtual_network', '=', 1)
    .executeTakeFirstOrThrow();
  return {
    zoneUuid: zone.id,
    zoneId: zoneRow.id,
    podId: podRow.id,
    templateUuid,
    offeringUuid,
    isolatedOfferingUuid,
    publicRangeId: range.id,
    accounts,
  };
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() - t0 > timeoutMs) throw new Error('timed out waiting for a ready template');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** What one isolated network holds once built through the API. */
export interface ApiNetwork {
  uuid: string;
  vmUuids: string[];
  sourceNatIp: string;
  extraIp: string;
  /** Rule uuids by kind. */
  rules: { portForwarding: string[]; firewall: string[]; egress: string[]; loadBalancer: string[] };
}

export interface NetworkPlan {
  name: string;
  vms: number;
  /** Port forwarding rules (each opens its ports in the firewall: two rules each). */
  portForwards: number;
  firewall: number;
  egress: number;
  loadBalancer: boolean;
}

/**
 * One isolated network as its owner makes it: createNetwork, deployVirtualMachine (the first
 * start implements the network), associateIpAddress, then the rules, each job waited for.
 */
export async function apiNetwork(
  client: CloudStackClient,
  zone: Zone,
  plan: NetworkPlan,
): Promise<ApiNetwork> {
  const net = (
    await client.request<any>('createNetwork', {
      name: plan.name,
      displaytext: plan.name,
      zoneid: zone.zoneUuid,
      networkofferingid: zone.isolatedOfferingUuid,
    })
  ).network;
  const vmUuids: string[] = [];
  for (let v = 0; v < plan.vms; v++) {
    const vm = await client.call<any>('deployVirtualMachine', {
      zoneid: zone.zoneUuid,
      serviceofferingid: zone.offeringUuid,
      templateid: zone.templateUuid,
      networkids: net.id,
      name: `${plan.name}-vm${v + 1}`,
    });
    vmUuids.push(vm.virtualmachine.id);
  }
  const ips = (await client.request<any>('listPublicIpAddresses', { associatednetworkid: net.id }))
    .publicipaddress as any[];
  const sourceNat = ips.find((ip) => ip.issourcenat);
  const extra = (await client.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
  const rules: ApiNetwork['rules'] = { portForwarding: [], firewall: [], egress: [], loadBalancer: [] };
  for (let r = 0; r < plan.portForwards; r++) {
    const pf = await client.call<any>('createPortForwardingRule', {
      ipaddressid: extra.id,
      protocol: r % 5 === 4 ? 'udp' : 'tcp',
      publicport: 10_000 + r,
      privateport: 20_000 + r,
      virtualmachineid: vmUuids[r % vmUuids.length],
      cidrlist: r % 3 === 0 ? '0.0.0.0/0' : `192.0.2.${r % 250}/32`,
    });
    rules.portForwarding.push(pf.portforwardingrule.id);
  }
  for (let r = 0; r < plan.firewall; r++) {
    const fw = await client.call<any>('createFirewallRule', {
      ipaddressid: sourceNat.id,
      protocol: r % 4 === 3 ? 'icmp' : 'tcp',
      ...(r % 4 === 3 ? { icmptype: -1, icmpcode: -1 } : { startport: 30_000 + r, endport: 30_000 + r }),
      cidrlist: `198.51.100.${r % 250}/32`,
    });
    rules.firewall.push(fw.firewallrule.id);
  }
  for (let r = 0; r < plan.egress; r++) {
    const eg = await client.call<any>('createEgressFirewallRule', {
      networkid: net.id,
      protocol: 'tcp',
      startport: 443 + r,
      endport: 443 + r,
      destcidrlist: '0.0.0.0/0',
    });
    rules.egress.push(eg.firewallrule.id);
  }
  if (plan.loadBalancer) {
    const lb = await client.call<any>('createLoadBalancerRule', {
      name: `${plan.name}-lb`,
      publicipid: extra.id,
      algorithm: 'roundrobin',
      publicport: 80,
      privateport: 8080,
    });
    const id = lb.loadbalancer.id;
    await client.call('assignToLoadBalancerRule', { id, virtualmachineids: vmUuids.join(',') });
    rules.loadBalancer.push(id);
  }
  return { uuid: net.id, vmUuids, sourceNatIp: sourceNat.ipaddress, extraIp: extra.ipaddress, rules };
}
