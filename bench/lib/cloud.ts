/**
 * Builds the simulator cloud the benchmark measures. What is cheap to do through the API is done
 * through it (zone, pods, clusters, storage, domains, the accounts the benchmark logs in as); the
 * bulk of the rows (accounts, hosts, VMs, volumes, NICs, events, resource counts) is written by the
 * documented bulk path below, row for row what the API would have written (see bench/README.md).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_VERSION, SIMULATOR_DEFAULTS, SIMULATOR_VERSION } from '@nimbostack/agent';
import { CloudStackClient } from '@nimbostack/client';
import { sql } from 'kysely';
import { hashToken } from '../../packages/server/src/agents/gateway.ts';
import type { Store } from '../../packages/server/src/db/connection.ts';
import type { Database } from '../../packages/server/src/db/schema.ts';
import { hashPassword } from '../../packages/server/src/iam/secrets.ts';
import type { TestServer } from '../../packages/server/test/harness.ts';

export const AGENT_TOKEN = 'bench-agent-token';
export const HOST_BASE_NAME = 'sim';
const GiB = 1024 ** 3;
const ROOT_DISK_BYTES = 8 * GiB;
const DATA_DISK_BYTES = 20 * GiB;
const PASSWORD = 'bench-password';
/** SQLite allows 32,766 bound values per statement; PostgreSQL 65,535. */
const VALUES_PER_STATEMENT = 30_000;

/** The shape of a cloud of `hosts` hosts and `vms` VMs; the defaults of issue 7 at 5,000/100,000. */
export interface Shape {
  hosts: number;
  vms: number;
  volumes: number;
  accounts: number;
  domains: number;
  /** VMs of the one large account listed with listall (10,000 at the default size). */
  bigAccountVms: number;
  pods: number;
  clustersPerPod: number;
}

export function shapeFor(hosts: number, vms: number): Shape {
  const accounts = Math.min(2000, Math.max(10, Math.round(vms / 50)));
  const pods = Math.min(10, hosts);
  return {
    hosts,
    vms,
    volumes: Math.floor(vms * 1.5),
    accounts,
    domains: Math.min(200, Math.max(10, Math.round(accounts / 10))),
    bigAccountVms: Math.min(10_000, Math.floor(vms / 10)),
    pods,
    clustersPerPod: Math.max(1, Math.ceil(hosts / pods / 100)),
  };
}

export interface Caller {
  client: CloudStackClient;
  accountId: number;
  domainId: number;
  domainPath: string;
}

export interface Cloud {
  shape: Shape;
  zoneUuid: string;
  zoneId: number;
  root: Caller;
  domainAdmin: Caller;
  /** The user of the large account. */
  user: Caller;
  serviceOfferingUuid?: string;
  templateUuid?: string;
  /** The shared guest network of the bulk path's NICs, for deploys (Advanced zones need one). */
  networkUuid?: string;
  /** A finished job, for queryAsyncJobResult. */
  jobId: string;
  rows: Record<string, number>;
  notes: string[];
  apiSetupSeconds: number;
  bulkSeconds: number;
}

type Row = Record<string, unknown>;

async function insertRows(store: Store, table: keyof Database & string, rows: Row[]): Promise<void> {
  if (rows.length === 0) return;
  const per = Math.max(1, Math.floor(VALUES_PER_STATEMENT / Object.keys(rows[0]).length));
  await store.db.transaction().execute(async (tx) => {
    for (let i = 0; i < rows.length; i += per) {
      await tx
        .insertInto(table)
        .values(rows.slice(i, i + per) as any)
        .execute();
    }
  });
}

async function keyClient(server: TestServer, userUuid: string): Promise<CloudStackClient> {
  const keys = await server.admin.request<{ userkeys: { apikey: string; secretkey: string } }>(
    'registerUserKeys',
    { id: userUuid },
  );
  return new CloudStackClient({
    url: server.api,
    apiKey: keys.userkeys.apikey,
    secretKey: keys.userkeys.secretkey,
    pollInterval: 0.05,
  });
}

/** The simulator's address for its n-th host, as packages/agent computes it. */
function simulatorIp(n: number): string {
  return `172.${16 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** Host rows exactly as addHost's insertHost writes them for an agent's startup. */
export function hostRows(
  from: number,
  to: number,
  placement: (n: number) => { zoneId: number; podId: number; clusterId: number },
  now: number,
): Row[] {
  const tokenHash = hashToken(AGENT_TOKEN);
  const s = SIMULATOR_DEFAULTS;
  const rows: Row[] = [];
  for (let n = from; n <= to; n++) {
    const at = placement(n);
    rows.push({
      uuid: randomUUID(),
      name: `${HOST_BASE_NAME}-${n}`,
      zone_id: at.zoneId,
      pod_id: at.podId,
      cluster_id: at.clusterId,
      type: 'Routing',
      hypervisor: 'Simulator',
      hypervisor_version: SIMULATOR_VERSION,
      state: 'Connecting',
      resource_state: 'Enabled',
      cpu_sockets: s.cpuSockets,
      cpu_cores: s.cpuCores,
      cpu_speed_mhz: s.cpuMhz,
      memory_bytes: s.memoryBytes,
      cpu_allocated_mhz: 0,
      memory_allocated_bytes: 0,
      local_storage_bytes: s.localStorageBytes,
      private_ip: simulatorIp(n),
      agent_version: AGENT_VERSION,
      url: `agent://${HOST_BASE_NAME}-${n}`,
      token_hash: tokenHash,
      details: null,
      annotation: null,
      ms_id: null,
      last_pinged: null,
      disconnected: null,
      created: now,
      removed: null,
    });
  }
  return rows;
}

async function tableExists(store: Store, name: string): Promise<boolean> {
  const tables = await store.db.introspection.getTables();
  return tables.some((t) => t.name === name);
}

/** Builds the cloud on a running server; `store` is a second connection to its database. */
export async function buildCloud(
  server: TestServer,
  store: Store,
  shape: Shape,
  log: (s: string) => void,
): Promise<Cloud> {
  const admin = server.admin;
  const db = store.db;
  const notes: string[] = [];
  const t0 = performance.now();

  const zone = (
    await admin.request<any>('createZone', {
      name: 'bench',
      networktype: 'Advanced',
      dns1: '8.8.8.8',
      internaldns1: '10.0.0.2',
      allocationstate: 'Enabled',
    })
  ).zone;
  const clusterUuids: string[] = [];
  for (let p = 0; p < shape.pods; p++) {
    const pod = (
      await admin.request<any>('createPod', {
        zoneid: zone.id,
        name: `pod-${p + 1}`,
        gateway: `10.${100 + p}.0.1`,
        netmask: '255.255.0.0',
        startip: `10.${100 + p}.0.10`,
        endip: `10.${100 + p}.0.250`,
        allocationstate: 'Enabled',
      })
    ).pod;
    for (let c = 0; c < shape.clustersPerPod; c++) {
      const r = await admin.request<any>('addCluster', {
        zoneid: zone.id,
        podid: pod.id,
        clustername: `cluster-${p + 1}-${c + 1}`,
        hypervisor: 'Simulator',
        clustertype: 'CloudManaged',
        allocationstate: 'Enabled',
      });
      clusterUuids.push((r.cluster?.[0] ?? r.cluster).id);
    }
  }
  // Deploys need primary and secondary storage; the lists do not, so a refusal is only noted.
  for (const [command, params] of [
    [
      'createStoragePool',
      {
        zoneid: zone.id,
        name: 'bench-primary',
        url: join(server.dataDir, 'primary'),
        scope: 'zone',
        hypervisor: 'Simulator',
        capacitybytes: 1024 ** 5,
      },
    ],
    [
      'addImageStore',
      { zoneid: zone.id, name: 'bench-secondary', provider: 'NFS', url: join(server.dataDir, 'secondary') },
    ],
  ] as const) {
    mkdirSync(params.url, { recursive: true });
    await admin
      .request(command, params)
      .catch((e) => notes.push(`${command} failed: ${(e as Error).message}`));
  }
  const job = await admin.request<{ jobid: string }>('createPhysicalNetwork', {
    zoneid: zone.id,
    name: 'bench-physical',
  });
  await admin.waitForJob(job.jobid);

  // Domains: `tops` top-level domains under ROOT, each with the same number of children.
  const tops = Math.max(1, Math.round(shape.domains / 20));
  const childrenPerTop = Math.max(0, Math.floor(shape.domains / tops) - 1);
  const domainUuids: string[] = [];
  const firstChildOfTop0: string[] = [];
  for (let t = 0; t < tops; t++) {
    const top = (await admin.request<any>('createDomain', { name: `org-${t}` })).domain.id;
    domainUuids.push(top);
    for (let c = 0; c < childrenPerTop; c++) {
      const child = (
        await admin.request<any>('createDomain', { name: `team-${t}-${c}`, parentdomainid: top })
      ).domain.id;
      domainUuids.push(child);
      if (t === 0 && c === 0) firstChildOfTop0.push(child);
    }
  }
  const apiAccount = async (name: string, accounttype: number, domainid: string) =>
    (
      await admin.request<any>('createAccount', {
        username: name,
        password: PASSWORD,
        email: `${name}@example.com`,
        firstname: name,
        lastname: 'Bench',
        accounttype,
        domainid,
      })
    ).account;
  const domAdminAccount = await apiAccount('bench-domainadmin', 2, domainUuids[0]);
  const bigAccount = await apiAccount('bench-big', 0, firstChildOfTop0[0] ?? domainUuids[0]);
  const adminUser = await db
    .selectFrom('users')
    .select(['id', 'uuid', 'account_id'])
    .where('username', '=', 'admin')
    .executeTakeFirstOrThrow();
  const rootClient = await keyClient(server, adminUser.uuid);
  const domainAdminClient = await keyClient(server, domAdminAccount.user[0].id);
  const userClient = await keyClient(server, bigAccount.user[0].id);
  const offerings = await admin.request<any>('listServiceOfferings', {});
  const offeringUuid = (offerings.serviceoffering ?? []).find(
    (o: any) => o.cpunumber && o.memory && !o.iscustomized,
  )?.id as string | undefined;
  const templates = await admin.request<any>('listTemplates', {
    templatefilter: 'featured',
    zoneid: zone.id,
  });
  const templateUuid = (templates.template ?? [])[0]?.id as string | undefined;
  const apiSetupSeconds = (performance.now() - t0) / 1000;
  log(
    `API setup: zone, ${shape.pods} pods, ${clusterUuids.length} clusters, ${domainUuids.length} domains, 2 accounts in ${apiSetupSeconds.toFixed(1)} s`,
  );

  // ---- the bulk path ----
  const b0 = performance.now();
  const now = Date.now();
  const zoneRow = await db
    .selectFrom('zones')
    .select(['id'])
    .where('uuid', '=', zone.id)
    .executeTakeFirstOrThrow();
  const clusters = await db
    .selectFrom('clusters')
    .select(['id', 'pod_id'])
    .where('uuid', 'in', clusterUuids)
    .orderBy('id')
    .execute();
  const domains = await db.selectFrom('domains').select(['id', 'uuid', 'path', 'parent_id']).execute();
  const domainById = new Map(domains.map((d) => [d.id, d]));
  const benchDomains = domains.filter((d) => domainUuids.includes(d.uuid)).sort((a, b) => a.id - b.id);
  const userRole = await db
    .selectFrom('roles')
    .select('id')
    .where('type', '=', 'User')
    .where('is_default', '=', 1)
    .executeTakeFirstOrThrow();
  const rootDomainId = domains.find((d) => d.parent_id === null)!.id;

  const placeHost = (n: number) => {
    const c = clusters[(n - 1) % clusters.length];
    return { zoneId: zoneRow.id, podId: c.pod_id, clusterId: c.id };
  };
  await insertRows(store, 'hosts', hostRows(1, shape.hosts, placeHost, now));
  const hosts = await db
    .selectFrom('hosts')
    .select(['id', 'pod_id', 'cluster_id'])
    .where('zone_id', '=', zoneRow.id)
    .orderBy('id')
    .execute();

  // Accounts made in bulk share one password hash (each createAccount would salt its own).
  const passwordHash = await hashPassword(PASSWORD);
  const bulkAccounts: Row[] = [];
  for (let i = 0; i < shape.accounts - 2; i++) {
    const domain = benchDomains[i % benchDomains.length];
    bulkAccounts.push({
      uuid: randomUUID(),
      name: `acct-${i}`,
      type: 0,
      role_id: userRole.id,
      domain_id: domain.id,
      state: 'enabled',
      network_domain: null,
      created: now,
    });
  }
  await insertRows(store, 'accounts', bulkAccounts);
  const accountRows = await db
    .selectFrom('accounts')
    .select(['id', 'uuid', 'name', 'domain_id'])
    .where('name', 'like', 'acct-%')
    .orderBy('id')
    .execute();
  await insertRows(
    store,
    'users',
    accountRows.map((a) => ({
      uuid: randomUUID(),
      username: a.name,
      password: passwordHash,
      firstname: a.name,
      lastname: 'Bench',
      email: `${a.name}@example.com`,
      timezone: null,
      account_id: a.id,
      state: 'enabled',
      api_key: null,
      secret_key: null,
      is_default: 0,
      source: 'native',
      created: now,
    })),
  );
  const users = await db.selectFrom('users').select(['id', 'uuid', 'account_id', 'username']).execute();
  const userOf = new Map(users.map((u) => [u.account_id, u]));
  const accountEvent = (
    type: string,
    description: string,
    resourceType: string,
    resourceId: string,
  ): Row => ({
    uuid: randomUUID(),
    type,
    level: 'INFO',
    state: 'Completed',
    description,
    user_id: adminUser.id,
    account_id: adminUser.account_id,
    domain_id: rootDomainId,
    resource_type: resourceType,
    resource_id: resourceId,
    start_id: null,
    created: now,
    archived: 0,
  });
  await insertRows(store, 'events', [
    ...accountRows.map((a) =>
      accountEvent('ACCOUNT.CREATE', `creating account ${a.name}`, 'Account', a.uuid),
    ),
    ...accountRows.map((a) =>
      accountEvent('USER.CREATE', `creating user ${a.name}`, 'User', userOf.get(a.id)!.uuid),
    ),
  ]);

  const bigId = (
    await db.selectFrom('accounts').select('id').where('uuid', '=', bigAccount.id).executeTakeFirstOrThrow()
  ).id;
  const domAdminId = await db
    .selectFrom('accounts')
    .select(['id', 'domain_id'])
    .where('uuid', '=', domAdminAccount.id)
    .executeTakeFirstOrThrow();
  const owners = [
    ...accountRows.map((a) => ({ id: a.id, domainId: a.domain_id })),
    { id: domAdminId.id, domainId: domAdminId.domain_id },
  ];
  const bigDomainId = (
    await db.selectFrom('accounts').select('domain_id').where('id', '=', bigId).executeTakeFirstOrThrow()
  ).domain_id;

  const offering = offeringUuid
    ? await db
        .selectFrom('service_offerings')
        .selectAll()
        .where('uuid', '=', offeringUuid)
        .executeTakeFirstOrThrow()
    : undefined;
  if (!offering) throw new Error('no fixed-size service offering to give the VMs');
  const template = templateUuid
    ? await db
        .selectFrom('templates')
        .select(['id', 'os_type_id'])
        .where('uuid', '=', templateUuid)
        .executeTakeFirst()
    : undefined;
  const dataOffering = await db
    .selectFrom('disk_offerings')
    .select(['id', 'provisioning_type'])
    .where('removed', 'is', null)
    .where('customized', '=', 0)
    .where('compute_only', '=', 0)
    .orderBy('id')
    .executeTakeFirst();
  const pool = await db
    .selectFrom('storage_pools')
    .select('id')
    .where('zone_id', '=', zoneRow.id)
    .executeTakeFirst();

  // VMs: the large account owns every (vms / bigAccountVms)-th VM; the others take turns, so
  // each account's VMs are spread over the id range as deploys over time would leave them.
  const bigEvery = shape.bigAccountVms > 0 ? Math.floor(shape.vms / shape.bigAccountVms) : 0;
  const vmOwner: { accountId: number; domainId: number }[] = [];
  let turn = 0;
  let big = 0;
  for (let i = 0; i < shape.vms; i++) {
    if (bigEvery > 0 && i % bigEvery === 0 && big < shape.bigAccountVms) {
      vmOwner.push({ accountId: bigId, domainId: bigDomainId });
      big++;
    } else {
      const o = owners[turn++ % owners.length];
      vmOwner.push({ accountId: o.id, domainId: o.domainId });
    }
  }
  // Ids are given here rather than taken from the sequence so that the final instance names go
  // in with the rows: naming them in an UPDATE afterwards took about 4 minutes on PostgreSQL at
  // a million VMs (every index on vms gained an entry for each row).
  const firstVmId =
    Number(
      (
        await db
          .selectFrom('vms')
          .select((eb) => eb.fn.max('id').as('m'))
          .executeTakeFirst()
      )?.m ?? 0,
    ) + 1;
  const vmIds = vmOwner.map((_, i) => firstVmId + i);
  const vmUuids: string[] = [];
  const vmRows: Row[] = vmOwner.map((o, i) => {
    const uuid = randomUUID();
    vmUuids.push(uuid);
    const host = hosts[i % hosts.length];
    const created = now - (shape.vms - i) * 1000;
    return {
      id: vmIds[i],
      uuid,
      name: `vm-${i}`,
      instance_name: `i-${o.accountId}-${vmIds[i]}-VM`,
      display_name: `vm-${i}`,
      account_id: o.accountId,
      domain_id: o.domainId,
      user_id: userOf.get(o.accountId)!.id,
      zone_id: zoneRow.id,
      pod_id: host.pod_id,
      cluster_id: host.cluster_id,
      host_id: host.id,
      last_host_id: host.id,
      template_id: template?.id ?? null,
      iso_id: null,
      service_offering_id: offering.id,
      disk_offering_id: i % 2 === 0 && dataOffering ? dataOffering.id : null,
      cpu_number: offering.cpu_number,
      cpu_speed: offering.cpu_speed,
      memory_mb: offering.memory_mb,
      hypervisor: 'Simulator',
      guest_os_id: template?.os_type_id ?? null,
      state: 'Running',
      ha_enabled: offering.offer_ha,
      display_vm: 1,
      group_id: null,
      keypairs: null,
      user_data: null,
      user_data_id: null,
      password: null,
      details: null,
      created,
      updated: created,
      removed: null,
    };
  });
  await insertRows(store, 'vms', vmRows);
  vmRows.length = 0;
  if (store.dialect === 'postgres')
    await sql`select setval(pg_get_serial_sequence('vms', 'id'), (select max(id) from vms))`.execute(db);
  log(
    `bulk: ${shape.hosts} hosts, ${accountRows.length} accounts, ${vmIds.length} VMs (${((performance.now() - b0) / 1000).toFixed(1)} s)`,
  );

  // Volumes: a ROOT disk per VM and a data disk on every other VM (1.5 per VM).
  const volumes: Row[] = [];
  const volume = (i: number, type: 'ROOT' | 'DATADISK'): Row => {
    const created = now - (shape.vms - i) * 1000;
    return {
      uuid: randomUUID(),
      name: `${type === 'ROOT' ? 'ROOT' : 'DATA'}-${vmIds[i]}`,
      account_id: vmOwner[i].accountId,
      domain_id: vmOwner[i].domainId,
      zone_id: zoneRow.id,
      pool_id: pool?.id ?? null,
      vm_id: vmIds[i],
      device_id: type === 'ROOT' ? 0 : 1,
      type,
      state: 'Ready',
      size_bytes: type === 'ROOT' ? ROOT_DISK_BYTES : DATA_DISK_BYTES,
      physical_size_bytes: null,
      path: randomUUID(),
      format: 'QCOW2',
      disk_offering_id: type === 'ROOT' ? offering.disk_offering_id : dataOffering!.id,
      template_id: type === 'ROOT' ? (template?.id ?? null) : null,
      snapshot_id: null,
      provisioning_type: type === 'ROOT' ? 'thin' : dataOffering!.provisioning_type,
      min_iops: null,
      max_iops: null,
      display_volume: 1,
      attached: created,
      created,
      removed: null,
    };
  };
  for (let i = 0; i < vmIds.length; i++) {
    volumes.push(volume(i, 'ROOT'));
    if (i % 2 === 0 && dataOffering) volumes.push(volume(i, 'DATADISK'));
  }
  await insertRows(store, 'volumes', volumes);
  const volumeCount = volumes.length;
  volumes.length = 0;

  let nicCount = 0;
  if ((await tableExists(store, 'nics')) && (await tableExists(store, 'networks')))
    nicCount = await insertNics(
      store,
      zoneRow.id,
      rootDomainId,
      vmIds,
      vmOwner,
      vmIds.map((_, i) => hosts[i % hosts.length].pod_id!),
      now,
    );
  else notes.push('no nics table yet: VMs have no NIC rows');

  await insertRows(
    store,
    'events',
    vmUuids.map((uuid, i) => ({
      uuid: randomUUID(),
      type: 'VM.CREATE',
      level: 'INFO',
      state: 'Completed',
      description: `created VM vm-${i}`,
      user_id: userOf.get(vmOwner[i].accountId)!.id,
      account_id: vmOwner[i].accountId,
      domain_id: vmOwner[i].domainId,
      resource_type: 'VirtualMachine',
      resource_id: uuid,
      start_id: null,
      created: now - (shape.vms - i) * 1000,
      archived: 0,
    })),
  );

  // What the planner's reservations and the owners' counts would be after these deploys. On
  // PostgreSQL the sums per host and pool need the new rows' statistics first: without them the
  // hosts' UPDATE was still running after almost 5 minutes (25,000 hosts, 100,000 VMs); with
  // them the whole bulk load took 104 s.
  if (store.dialect === 'postgres') await sql`analyze vms, volumes`.execute(db);
  await db
    .updateTable('hosts')
    .set({
      cpu_allocated_mhz: sql`(select coalesce(sum(cpu_number * cpu_speed), 0) from vms where vms.host_id = hosts.id and vms.removed is null)`,
      memory_allocated_bytes: sql`(select coalesce(sum(memory_mb), 0) * 1048576 from vms where vms.host_id = hosts.id and vms.removed is null)`,
    })
    .where('zone_id', '=', zoneRow.id)
    .execute();
  if (pool)
    await db
      .updateTable('storage_pools')
      .set({
        allocated_bytes: sql`(select coalesce(sum(size_bytes), 0) from volumes where volumes.pool_id = storage_pools.id and volumes.removed is null)`,
      })
      .where('id', '=', pool.id)
      .execute();
  await writeResourceCounts(store, vmOwner, offering, dataOffering !== undefined, domainById);

  // As autovacuum would soon after such a load (PostgreSQL 13+ vacuums after inserts too): the
  // statistics for the planner, and the visibility map without which a count cannot be answered
  // from an index alone. SQLite keeps no statistics unless asked, and the server never asks.
  if (store.dialect === 'postgres') await sql`vacuum analyze`.execute(db);
  const bulkSeconds = (performance.now() - b0) / 1000;
  const caller = (client: CloudStackClient, accountId: number, domainId: number): Caller => ({
    client,
    accountId,
    domainId,
    domainPath: domainById.get(domainId)!.path,
  });
  return {
    shape,
    zoneUuid: zone.id,
    zoneId: zoneRow.id,
    root: caller(rootClient, adminUser.account_id, rootDomainId),
    domainAdmin: caller(domainAdminClient, domAdminId.id, domAdminId.domain_id),
    user: caller(userClient, bigId, bigDomainId),
    serviceOfferingUuid: offeringUuid,
    templateUuid,
    networkUuid: (
      await db.selectFrom('networks').select('uuid').where('name', '=', 'bench-shared').executeTakeFirst()
    )?.uuid,
    jobId: job.jobid,
    rows: {
      hosts: hosts.length,
      accounts: shape.accounts,
      domains: benchDomains.length,
      vms: vmIds.length,
      volumes: volumeCount,
      nics: nicCount,
    },
    notes,
    apiSetupSeconds,
    bulkSeconds,
  };
}

/** One shared guest network over 10.0.0.0/8 and a default NIC with its address per VM. */
async function insertNics(
  store: Store,
  zoneId: number,
  rootDomainId: number,
  vmIds: number[],
  owners: { accountId: number }[],
  vmPods: number[],
  now: number,
): Promise<number> {
  const db = store.db;
  const offering = await db
    .selectFrom('network_offerings')
    .select('id')
    .where('guest_ip_type', '=', 'Shared')
    .orderBy('id')
    .executeTakeFirst();
  if (!offering) return 0;
  await insertRows(store, 'networks', [
    {
      uuid: randomUUID(),
      name: 'bench-shared',
      display_text: 'bench-shared',
      zone_id: zoneId,
      network_offering_id: offering.id,
      physical_network_id: null,
      traffic_type: 'Guest',
      guest_type: 'Shared',
      broadcast_domain_type: 'Vlan',
      broadcast_uri: 'vlan://100',
      gateway: '10.0.0.1',
      netmask: '255.0.0.0',
      cidr: '10.0.0.0/8',
      state: 'Setup',
      acl_type: 'Domain',
      domain_id: rootDomainId,
      account_id: null,
      zone_default_for: null,
      created: now,
      removed: null,
    },
  ]);
  const network = await db
    .selectFrom('networks')
    .select('id')
    .where('name', '=', 'bench-shared')
    .executeTakeFirstOrThrow();
  // Guest ranges are per pod (the VM's pod decides its range): a /12 of 10.0.0.0/8 each (10.0/12,
  // 10.16/12, …), about a million addresses, so 10 pods hold a million VMs however they are spread.
  const pods = [...new Set(vmPods)].sort((a, b) => a - b);
  if (pods.length > 16) throw new Error('more than 16 pods: the bulk path gives each pod a /12 of 10/8');
  const PER_POD = 1 << 20;
  const podBase = (podId: number) => (10 << 24) + pods.indexOf(podId) * PER_POD;
  const ip = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
  await insertRows(
    store,
    'vlan_ip_ranges',
    pods.map((podId) => ({
      uuid: randomUUID(),
      zone_id: zoneId,
      pod_id: podId,
      network_id: network.id,
      physical_network_id: null,
      vlan: '100',
      gateway: '10.0.0.1',
      netmask: '255.0.0.0',
      start_ip: ip(podBase(podId) + 256),
      end_ip: ip(podBase(podId) + PER_POD - 2),
      start_num: podBase(podId) + 256,
      end_num: podBase(podId) + PER_POD - 2,
      for_virtual_network: 0,
      created: now,
    })),
  );
  const rangeOfPod = new Map(
    (
      await db
        .selectFrom('vlan_ip_ranges')
        .select(['id', 'pod_id'])
        .where('network_id', '=', network.id)
        .execute()
    ).map((r) => [r.pod_id, r.id]),
  );
  const used = new Map<number, number>();
  const addresses = vmPods.map((podId) => {
    const n = used.get(podId) ?? 0;
    if (n >= PER_POD - 2 - 256)
      throw new Error('more than 1,048,000 VMs in one pod: the bulk path gives each pod a /12');
    used.set(podId, n + 1);
    return podBase(podId) + 256 + n;
  });
  const mac = (n: number) =>
    `02:00:${[(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;
  await insertRows(
    store,
    'nics',
    vmIds.map((vmId, i) => ({
      uuid: randomUUID(),
      vm_id: vmId,
      network_id: network.id,
      mac: mac(i + 1),
      ip4: ip(addresses[i]),
      gateway: '10.0.0.1',
      netmask: '255.0.0.0',
      broadcast_uri: 'vlan://100',
      isolation_uri: 'vlan://100',
      is_default: 1,
      device_id: 0,
      state: 'Reserved',
      created: now,
      removed: null,
    })),
  );
  const nics = await db
    .selectFrom('nics')
    .select(['id', 'vm_id'])
    .where('network_id', '=', network.id)
    .execute();
  const nicOf = new Map(nics.map((n) => [n.vm_id, n.id]));
  if (await tableExists(store, 'guest_ip_allocations'))
    await insertRows(
      store,
      'guest_ip_allocations',
      vmIds.map((vmId, i) => ({
        network_id: network.id,
        range_id: rangeOfPod.get(vmPods[i])!,
        ip4: ip(addresses[i]),
        ip_num: addresses[i],
        vm_id: vmId,
        nic_id: nicOf.get(vmId) ?? null,
        account_id: owners[i].accountId,
        allocated: now,
      })),
    );
  return nics.length;
}

/** Instance, CPU, memory, volume and primary storage counts of every account and domain above it. */
async function writeResourceCounts(
  store: Store,
  owners: { accountId: number; domainId: number }[],
  offering: { cpu_number: number | null; memory_mb: number | null },
  withDataDisks: boolean,
  domains: Map<number, { id: number; parent_id: number | null }>,
): Promise<void> {
  const kinds = { instance: 0, volume: 2, cpu: 8, memory: 9, primary: 10 };
  const accounts = new Map<number, { domainId: number; counts: number[] }>();
  owners.forEach((o, i) => {
    const entry = accounts.get(o.accountId) ?? { domainId: o.domainId, counts: [0, 0, 0, 0, 0] };
    const data = withDataDisks && i % 2 === 0;
    entry.counts[0] += 1;
    entry.counts[1] += data ? 2 : 1;
    entry.counts[2] += offering.cpu_number ?? 0;
    entry.counts[3] += offering.memory_mb ?? 0;
    entry.counts[4] += ROOT_DISK_BYTES / GiB + (data ? DATA_DISK_BYTES / GiB : 0);
    accounts.set(o.accountId, entry);
  });
  const domainTotals = new Map<number, number[]>();
  for (const { domainId, counts } of accounts.values()) {
    for (let d = domains.get(domainId); d; d = d.parent_id === null ? undefined : domains.get(d.parent_id)) {
      const t = domainTotals.get(d.id) ?? [0, 0, 0, 0, 0];
      counts.forEach((c, k) => {
        t[k] += c;
      });
      domainTotals.set(d.id, t);
    }
  }
  const types = Object.values(kinds);
  const rows: Row[] = [];
  const add = (ownerType: 'account' | 'domain', id: number, counts: number[]) => {
    for (const [k, type] of types.entries())
      rows.push({ owner_type: ownerType, owner_id: id, resource_type: type, count: counts[k] });
  };
  for (const [id, { counts }] of accounts) add('account', id, counts);
  for (const [id, counts] of domainTotals) add('domain', id, counts);
  await store.db.deleteFrom('resource_counts').where('resource_type', 'in', types).execute();
  await insertRows(store, 'resource_counts', rows);
}
