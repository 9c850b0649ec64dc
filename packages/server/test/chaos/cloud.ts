/**
 * The cloud the chaos and HA suites drive: an Advanced zone with one cluster of simulated hosts
 * (added once their agents connected), primary and secondary storage, and a user account; both
 * suites talk to it through signed clients.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CloudStackClient } from '@nimbostack/client';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(
  what: string,
  ms: number,
  fn: () => Promise<T | undefined | false>,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(200);
  }
}

/** The cloud the workload runs in: an Advanced zone, two simulated hosts, a user account. */
export interface Cloud {
  admin: CloudStackClient;
  user: CloudStackClient;
  zoneid: string;
  templateid: string;
  offering: string;
  diskOffering: string;
  isolatedOffering: string;
}

export async function buildCloud(
  api: string,
  dataDir: string,
  agentHosts: string[],
  token: string,
): Promise<Cloud> {
  const session = await CloudStackClient.login(api, 'admin', 'password');
  const adminId = (await session.request<any>('listUsers', { username: 'admin' })).user[0].id;
  const adminKeys = (await session.request<any>('registerUserKeys', { id: adminId })).userkeys;
  const admin = new CloudStackClient({ url: api, apiKey: adminKeys.apikey, secretKey: adminKeys.secretkey });
  const zoneid = (
    await admin.request<any>('createZone', {
      name: 'chaoszone',
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      guestcidraddress: '10.1.1.0/24',
    })
  ).zone.id;
  const physicalid = (
    await admin.call<any>('createPhysicalNetwork', {
      zoneid,
      name: 'phys',
      isolationmethods: 'VXLAN',
      vlan: '7000-7099',
    })
  ).physicalnetwork.id;
  for (const traffictype of ['Guest', 'Public', 'Management'])
    await admin.call('addTrafficType', {
      physicalnetworkid: physicalid,
      traffictype,
      ...(traffictype === 'Public' ? { kvmnetworklabel: 'nimbopub0' } : {}),
    });
  await admin.call('updatePhysicalNetwork', { id: physicalid, state: 'Enabled' });
  await admin.request('createVlanIpRange', {
    zoneid,
    forvirtualnetwork: true,
    gateway: '203.0.113.1',
    netmask: '255.255.255.0',
    startip: '203.0.113.10',
    endip: '203.0.113.60',
  });
  const pod = (
    await admin.request<any>('createPod', {
      zoneid,
      name: 'cp',
      gateway: '192.168.30.1',
      netmask: '255.255.255.0',
      startip: '192.168.30.10',
      endip: '192.168.30.50',
    })
  ).pod;
  const cluster = (
    await admin.request<any>('addCluster', {
      zoneid,
      podid: pod.id,
      clustername: 'cc',
      hypervisor: 'Simulator',
      clustertype: 'CloudManaged',
    })
  ).cluster[0];
  mkdirSync(join(dataDir, 'primary'), { recursive: true });
  mkdirSync(join(dataDir, 'secondary'), { recursive: true });
  await admin.request('createStoragePool', {
    zoneid,
    podid: pod.id,
    clusterid: cluster.id,
    name: 'cprimary',
    url: join(dataDir, 'primary'),
    scope: 'cluster',
  });
  await admin.request('addImageStore', {
    zoneid,
    name: 'csecondary',
    provider: 'NFS',
    url: join(dataDir, 'secondary'),
  });
  await admin.request('updateZone', { id: zoneid, allocationstate: 'Enabled' });
  for (const name of agentHosts) {
    // The agent's hosts wait to be added once it has connected; until then addHost is refused.
    await waitFor(`host ${name} to be added`, 30_000, async () =>
      admin.request('addHost', {
        zoneid,
        podid: pod.id,
        clusterid: cluster.id,
        url: `agent://${name}`,
        username: 'root',
        password: token,
        hypervisor: 'Simulator',
      }),
    );
  }
  const templateid = await waitFor(
    'the built-in template',
    30_000,
    async () =>
      (await admin.request<any>('listTemplates', { templatefilter: 'featured', zoneid })).template?.find(
        (t: any) => t.isready,
      )?.id,
  );
  const offering = (await admin.request<any>('listServiceOfferings', { name: 'Small Instance' }))
    .serviceoffering[0].id;
  const diskOffering = (await admin.request<any>('listDiskOfferings', {})).diskoffering.find(
    (d: any) => !d.iscustomized && d.disksize > 0,
  ).id;
  const isolatedOffering = (
    await admin.request<any>('listNetworkOfferings', {
      name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
    })
  ).networkoffering[0].id;
  const account = (
    await admin.request<any>('createAccount', {
      username: 'chaos',
      password: 'chaos-password',
      email: 'chaos@example.com',
      firstname: 'Chaos',
      lastname: 'Monkey',
      accounttype: 0,
    })
  ).account;
  const userKeys = (await admin.request<any>('registerUserKeys', { id: account.user[0].id })).userkeys;
  const user = new CloudStackClient({ url: api, apiKey: userKeys.apikey, secretKey: userKeys.secretkey });
  return { admin, user, zoneid, templateid, offering, diskOffering, isolatedOffering };
}
