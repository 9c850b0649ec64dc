/**
 * Usage records, as CloudStack's usage server makes them: for each UTC day, how many hours each VM
 * ran (type 1) and existed (type 2), how long each volume (6), template (7), ISO (8) and
 * snapshot (9) was kept, and how long each public IP address (3) was held. VM hours come from the
 * state machine's events (each VM.* event of a transition says "VM <name> <from> -> <to>"),
 * addresses from NET.IPASSIGN/NET.IPRELEASE; volumes and images from their created and removed times.
 * generateUsageRecords replaces the records of the days it covers, so running it again for a
 * period is harmless; listUsageRecords reads them.
 */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import {
  checkDomainAccess,
  escapeLike,
  findDomainByUuid,
  likeEscaped,
  type OwnerScope,
} from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { checkRowAccess, listOwned } from '../iam/owned.ts';
import { projectScope } from '../projects/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { p } from '../registry/params.ts';

/** Upstream's UsageTypes, all listed (those this server generates are 1, 2, 3, 6, 7, 8 and 9). */
export const USAGE_TYPES: [number, string, string][] = [
  [1, 'RUNNING_VM', 'Running Vm Usage'],
  [2, 'ALLOCATED_VM', 'Allocated Vm Usage'],
  [3, 'IP_ADDRESS', 'IP Address Usage'],
  [4, 'NETWORK_BYTES_SENT', 'Network Usage (Bytes Sent)'],
  [5, 'NETWORK_BYTES_RECEIVED', 'Network Usage (Bytes Received)'],
  [6, 'VOLUME', 'Volume Usage'],
  [7, 'TEMPLATE', 'Template Usage'],
  [8, 'ISO', 'ISO Usage'],
  [9, 'SNAPSHOT', 'Snapshot Usage'],
  [10, 'SECURITY_GROUP', 'Security Group Usage'],
  [11, 'LOAD_BALANCER_POLICY', 'Load Balancer Usage'],
  [12, 'PORT_FORWARDING_RULE', 'Port Forwarding Usage'],
  [13, 'NETWORK_OFFERING', 'Network Offering Usage'],
  [14, 'VPN_USERS', 'VPN users usage'],
  [21, 'VM_DISK_IO_READ', 'VM Disk usage(I/O Read)'],
  [22, 'VM_DISK_IO_WRITE', 'VM Disk usage(I/O Write)'],
  [23, 'VM_DISK_BYTES_READ', 'VM Disk usage(Bytes Read)'],
  [24, 'VM_DISK_BYTES_WRITE', 'VM Disk usage(Bytes Write)'],
  [25, 'VM_SNAPSHOT', 'VM Snapshot storage usage'],
  [26, 'VOLUME_SECONDARY', 'Volume on secondary storage usage'],
  [27, 'VM_SNAPSHOT_ON_PRIMARY', 'VM Snapshot on primary storage usage'],
  [28, 'BACKUP', 'Backup storage usage'],
  [29, 'BUCKET', 'Bucket storage usage'],
  [30, 'NETWORK', 'Network usage'],
  [31, 'VPC', 'VPC usage'],
];

const RUNNING_VM = 1;
const ALLOCATED_VM = 2;
const IP_ADDRESS = 3;
const VOLUME = 6;
const TEMPLATE = 7;
const ISO = 8;
const SNAPSHOT = 9;

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** States in which a VM runs on a host (running hours). */
const RUNNING = new Set(['Running', 'Stopping', 'Migrating']);
/** States in which a VM no longer counts as allocated. */
const GONE = new Set(['Destroyed', 'Expunging', 'Expunged']);

/** A transition event's text, as vm-state.ts writes it. */
const TRANSITION = /^VM \S+ (\w+) -> (\w+)/;

type Interval = [number, number];

function overlapHours(intervals: Interval[], from: number, to: number): number {
  let ms = 0;
  for (const [a, b] of intervals) ms += Math.max(0, Math.min(b, to) - Math.max(a, from));
  return ms / HOUR;
}

/** Upstream's NumbersUtil.toHumanReadableSize. */
function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(2)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(2)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

/** Hours as upstream displays them (DecimalFormat "#.######"). */
const hoursText = (h: number) => `${Number(h.toFixed(6))} Hrs`;

interface NewRecord {
  account_id: number;
  domain_id: number;
  zone_id: number | null;
  usage_type: number;
  usage_id: string;
  vm_uuid: string | null;
  name: string | null;
  offering_uuid: string | null;
  template_uuid: string | null;
  size_bytes: number | null;
  virtual_size_bytes: number | null;
  type: string | null;
  cpu_number: number | null;
  cpu_speed: number | null;
  memory_mb: number | null;
  description: string;
  raw_usage: number;
  start_date: number;
  end_date: number;
}

const blank = {
  vm_uuid: null,
  name: null,
  offering_uuid: null,
  template_uuid: null,
  size_bytes: null,
  virtual_size_bytes: null,
  type: null,
  cpu_number: null,
  cpu_speed: null,
  memory_mb: null,
};

/** The records of the UTC days [firstDay, lastDay) with usage counted up to `now`. */
async function computeRecords(
  ctx: Pick<CallContext, 'app'>,
  firstDay: number,
  lastDay: number,
  now: number,
): Promise<NewRecord[]> {
  const db = ctx.app.store.db;
  const until = Math.min(lastDay, now);
  const out: NewRecord[] = [];
  const days: Interval[] = [];
  for (let d = firstDay; d < until; d += DAY) days.push([d, Math.min(d + DAY, until)]);
  // One record per day with usage; the period ends at the day's last second, as upstream's do.
  const perDay = (
    intervals: Interval[],
    make: (hours: number) => Omit<NewRecord, 'start_date' | 'end_date'>,
  ) => {
    for (const day of days) {
      const hours = overlapHours(intervals, day[0], day[1]);
      if (hours > 0) out.push({ ...make(hours), start_date: day[0], end_date: day[0] + DAY - 1000 });
    }
  };

  const [offerings, diskOfferings, templates] = await Promise.all([
    db.selectFrom('service_offerings').select(['id', 'uuid', 'name']).execute(),
    db.selectFrom('disk_offerings').select(['id', 'uuid', 'name']).execute(),
    db.selectFrom('templates').select(['id', 'uuid', 'name']).execute(),
  ]);
  const byId = <T extends { id: number }>(rows: T[]) => new Map(rows.map((r) => [r.id, r]));
  const offering = byId(offerings);
  const diskOffering = byId(diskOfferings);
  const template = byId(templates);

  // VMs: the state timeline from creation through every transition to removal.
  const vms = await db
    .selectFrom('vms')
    .selectAll()
    .where('created', '<', until)
    .where((eb) => eb.or([eb('removed', 'is', null), eb('removed', '>', firstDay)]))
    .execute();
  const events = vms.length
    ? await db
        .selectFrom('events')
        .select(['resource_id', 'description', 'created'])
        .where('resource_type', '=', 'VirtualMachine')
        .where('type', 'like', 'VM.%')
        .where('start_id', 'is', null)
        .where('state', '=', 'Completed')
        .where('created', '<', until)
        .orderBy('created')
        .orderBy('id')
        .execute()
    : [];
  const moves = new Map<string, { at: number; to: string }[]>();
  for (const e of events) {
    const m = e.resource_id ? TRANSITION.exec(e.description) : null;
    if (m) moves.set(e.resource_id!, [...(moves.get(e.resource_id!) ?? []), { at: e.created, to: m[2] }]);
  }
  for (const vm of vms) {
    const running: Interval[] = [];
    const allocated: Interval[] = [];
    let state = 'Stopped';
    let since = vm.created;
    const close = (at: number) => {
      if (RUNNING.has(state)) running.push([since, at]);
      if (!GONE.has(state)) allocated.push([since, at]);
    };
    for (const move of moves.get(vm.uuid) ?? []) {
      close(move.at);
      state = move.to;
      since = move.at;
    }
    close(vm.removed ?? Number.MAX_SAFE_INTEGER);
    const o = offering.get(vm.service_offering_id);
    const t = vm.template_id === null ? undefined : template.get(vm.template_id);
    const base = {
      ...blank,
      account_id: vm.account_id,
      domain_id: vm.domain_id,
      zone_id: vm.zone_id,
      usage_id: vm.uuid,
      vm_uuid: vm.uuid,
      name: vm.name,
      offering_uuid: o?.uuid ?? null,
      template_uuid: t?.uuid ?? null,
      type: vm.hypervisor,
      cpu_number: vm.cpu_number,
      cpu_speed: vm.cpu_speed,
      memory_mb: vm.memory_mb,
    };
    const text = (kind: string) =>
      `${kind} VM usage for ${vm.name} (${vm.instance_name}) (${vm.uuid}) ` +
      (o ? `using service offering ${o.name} (${o.uuid}) ` : '') +
      (t ? `and template ${t.name} (${t.uuid})` : '');
    perDay(running, (hours) => ({
      ...base,
      usage_type: RUNNING_VM,
      description: text('Running'),
      raw_usage: hours,
    }));
    perDay(allocated, (hours) => ({
      ...base,
      usage_type: ALLOCATED_VM,
      description: text('Allocated'),
      raw_usage: hours,
    }));
  }

  // Volumes: from creation to removal, at their current size.
  const volumes = await db
    .selectFrom('volumes')
    .leftJoin('vms', 'vms.id', 'volumes.vm_id')
    .selectAll('volumes')
    .select(['vms.uuid as vm_uuid', 'vms.name as vm_name'])
    .where('volumes.created', '<', until)
    .where((eb) => eb.or([eb('volumes.removed', 'is', null), eb('volumes.removed', '>', firstDay)]))
    .execute();
  for (const v of volumes) {
    const d = v.disk_offering_id === null ? undefined : diskOffering.get(v.disk_offering_id);
    const t = v.template_id === null ? undefined : template.get(v.template_id);
    const size = Number(v.size_bytes);
    const description =
      `Volume usage for ${v.name} (${v.uuid})` +
      (v.vm_uuid ? ` attached to VM ${v.vm_name} (${v.vm_uuid})` : '') +
      (d ? ` with disk offering ${d.name} (${d.uuid})` : '') +
      (t ? ` and template ${t.name} (${t.uuid})` : '') +
      ` and size ${humanSize(size)}`;
    perDay([[v.created, v.removed ?? Number.MAX_SAFE_INTEGER]], (hours) => ({
      ...blank,
      account_id: v.account_id,
      domain_id: v.domain_id,
      zone_id: v.zone_id,
      usage_type: VOLUME,
      usage_id: v.uuid,
      vm_uuid: v.vm_uuid,
      name: v.name,
      offering_uuid: d?.uuid ?? null,
      template_uuid: t?.uuid ?? null,
      size_bytes: size,
      description,
      raw_usage: hours,
    }));
  }

  // Templates and ISOs users registered: each zone's copy from its creation to the image's removal.
  const images = await db
    .selectFrom('template_store_refs as r')
    .innerJoin('templates as t', 't.id', 'r.template_id')
    .select([
      't.uuid',
      't.name',
      't.is_iso',
      't.account_id',
      't.domain_id',
      't.removed',
      'r.zone_id',
      'r.created',
      'r.size_bytes',
      'r.physical_size_bytes',
    ])
    .where('t.type', '=', 'USER')
    .where('r.created', '<', until)
    .where((eb) => eb.or([eb('t.removed', 'is', null), eb('t.removed', '>', firstDay)]))
    .execute();
  for (const i of images) {
    const size = Number(i.physical_size_bytes ?? i.size_bytes ?? 0);
    const virtual = Number(i.size_bytes ?? size);
    perDay([[i.created, i.removed ?? Number.MAX_SAFE_INTEGER]], (hours) => ({
      ...blank,
      account_id: i.account_id,
      domain_id: i.domain_id,
      zone_id: i.zone_id,
      usage_type: i.is_iso ? ISO : TEMPLATE,
      usage_id: i.uuid,
      name: i.name,
      template_uuid: i.uuid,
      size_bytes: size,
      virtual_size_bytes: i.is_iso ? size : virtual,
      description: `${i.is_iso ? 'ISO' : 'Template'} usage for ${i.name} (${i.uuid}) and size ${humanSize(size)}`,
      raw_usage: hours,
    }));
  }

  // Volume snapshots (a failed one holds nothing), at the size of their backup.
  const snapshots = await db
    .selectFrom('snapshots as s')
    .innerJoin('volumes as v', 'v.id', 's.volume_id')
    .select([
      's.uuid',
      's.name',
      's.account_id',
      's.domain_id',
      's.zone_id',
      's.size_bytes',
      's.physical_size_bytes',
      's.created',
      's.removed',
      'v.uuid as volume_uuid',
      'v.name as volume_name',
    ])
    .where('s.state', '!=', 'Error')
    .where('s.created', '<', until)
    .where((eb) => eb.or([eb('s.removed', 'is', null), eb('s.removed', '>', firstDay)]))
    .execute();
  for (const sn of snapshots) {
    const size = Number(sn.physical_size_bytes ?? sn.size_bytes);
    perDay([[sn.created, sn.removed ?? Number.MAX_SAFE_INTEGER]], (hours) => ({
      ...blank,
      account_id: sn.account_id,
      domain_id: sn.domain_id,
      zone_id: sn.zone_id,
      usage_type: SNAPSHOT,
      usage_id: sn.uuid,
      name: sn.name,
      size_bytes: size,
      virtual_size_bytes: Number(sn.size_bytes),
      description: `Snapshot usage for ${sn.name} (${sn.uuid}) of volume ${sn.volume_name} (${sn.volume_uuid}) and size ${humanSize(size)}`,
      raw_usage: hours,
    }));
  }

  // Public IP addresses: each holding from NET.IPASSIGN to NET.IPRELEASE (recorded by
  // network/public-ips.ts for the address's uuid and owner); a freed address may go to another
  // account later, so holdings are paired per address in time order.
  const ipEvents = await db
    .selectFrom('events')
    .select(['type', 'resource_id', 'account_id', 'domain_id', 'description', 'created'])
    .where('resource_type', '=', 'IpAddress')
    .where('type', 'in', ['NET.IPASSIGN', 'NET.IPRELEASE'])
    .where('start_id', 'is', null)
    .where('state', '=', 'Completed')
    .where('created', '<', until)
    .orderBy('created')
    .orderBy('id')
    .execute();
  const ipUuids = [...new Set(ipEvents.map((e) => e.resource_id).filter((x): x is string => x !== null))];
  const addresses = ipUuids.length
    ? byUuid(
        await db
          .selectFrom('public_ips')
          .select(['uuid', 'ip4', 'zone_id'])
          .where('uuid', 'in', ipUuids)
          .execute(),
      )
    : new Map<string, { uuid: string; ip4: string; zone_id: number }>();
  const holding = new Map<string, { at: number; account: number; domain: number; sourceNat: boolean }>();
  const held: { uuid: string; account: number; domain: number; sourceNat: boolean; span: Interval }[] = [];
  for (const e of ipEvents) {
    if (!e.resource_id) continue;
    const open = holding.get(e.resource_id);
    if (open) held.push({ uuid: e.resource_id, ...open, span: [open.at, e.created] });
    holding.delete(e.resource_id);
    if (e.type === 'NET.IPASSIGN')
      holding.set(e.resource_id, {
        at: e.created,
        account: e.account_id,
        domain: e.domain_id,
        sourceNat: /source NAT/i.test(e.description),
      });
  }
  for (const [uuid, open] of holding) held.push({ uuid, ...open, span: [open.at, Number.MAX_SAFE_INTEGER] });
  for (const h of held) {
    const ip = addresses.get(h.uuid);
    if (!ip) continue;
    perDay([h.span], (hours) => ({
      ...blank,
      account_id: h.account,
      domain_id: h.domain,
      zone_id: ip.zone_id,
      usage_type: IP_ADDRESS,
      usage_id: h.uuid,
      name: ip.ip4,
      type: h.sourceNat ? 'SourceNat' : null,
      description: `IPAddress: ${ip.ip4}${h.sourceNat ? ' (Source NAT)' : ''}`,
      raw_usage: hours,
    }));
  }
  return out;
}

const byUuid = <T extends { uuid: string }>(rows: T[]) => new Map(rows.map((r) => [r.uuid, r]));

const dayOf = (ms: number) => Math.floor(ms / DAY) * DAY;

/** The whole UTC days a [start, end] request covers; a date-only end covers its day. */
function daysOf(start: number, end: number): [number, number] {
  if (end < start) throw invalidParameter('The start date must be before the end date');
  return [dayOf(start), dayOf(end) + DAY];
}

/** Replaces the records of the days [start, end] covers by freshly computed ones, in one transaction. */
export async function generateUsage(
  ctx: Pick<CallContext, 'app'>,
  start: number,
  end: number,
): Promise<number> {
  const [firstDay, lastDay] = daysOf(start, end);
  const records = await computeRecords(ctx, firstDay, lastDay, ctx.app.clock.now());
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx
      .deleteFrom('usage_records')
      .where('start_date', '>=', firstDay)
      .where('start_date', '<', lastDay)
      .execute();
    for (let i = 0; i < records.length; i += 200)
      await tx
        .insertInto('usage_records')
        .values(records.slice(i, i + 200))
        .execute();
  });
  return records.length;
}

export const listUsageTypes = defineCommand({
  name: 'listUsageTypes',
  description: 'Lists the usage record types Nimbostack computes, with their numbers and names.',
  params: {},
  async handler() {
    return listResult(
      USAGE_TYPES.map(([id, name, description]) => ({ id, name, description })),
      USAGE_TYPES.length,
    );
  },
});

export const generateUsageRecords = defineCommand({
  name: 'generateUsageRecords',
  description:
    'Recomputes the usage records of every whole UTC day the period touches, replacing any already stored for those days; records exist only once generated.',
  params: {
    startdate: p.date({
      description: 'Start of the period (required by Nimbostack); its whole UTC day is included.',
    }),
    enddate: p.date({
      description:
        'End of the period (required by Nimbostack), not before startdate; its whole UTC day is included.',
    }),
  },
  async handler(ctx, params) {
    if (params.startdate === undefined || params.enddate === undefined)
      throw invalidParameter(
        `Unable to execute API command generateusagerecords due to missing parameter ${params.startdate === undefined ? 'startdate' : 'enddate'}`,
      );
    await generateUsage(ctx, params.startdate, params.enddate);
    return success();
  },
});

export const listUsageRecords = defineCommand({
  name: 'listUsageRecords',
  description:
    'Lists generated usage records for the UTC days of a period, for one account or the accounts of a domain the caller administers.',
  params: {
    startdate: p.date({
      required: true,
      description: 'First day of the period; records of its whole UTC day are included.',
    }),
    enddate: p.date({
      required: true,
      description: 'Last day of the period; records of its whole UTC day are included.',
    }),
    account: p.string({ description: "Only records of this account (in domainid, or the caller's domain)." }),
    accountid: p.uuid({
      description: 'Only records of the account with this UUID; takes precedence over account.',
    }),
    projectid: p.projectScope({
      description: "Only records of this project's resources; -1: those of every project you may see.",
    }),
    domainid: p.uuid({
      description:
        "Only records of this domain's accounts (and below with isrecursive); defaults to the caller's domain and everything below.",
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include accounts of subdomains.' }),
    type: p.long({ description: 'Only records of this usage type number (see listUsageTypes).' }),
    usageid: p.string({ description: 'Only records about the resource with this id; needs type.' }),
    keyword: p.string({ description: 'Only records whose description contains this text.' }),
    page: p.integer({ description: 'Page number to return, starting at 1, with pagesize.' }),
    pagesize: p.integer({ description: 'Number of records per page.' }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    const db = app.store.db;
    const [firstDay, lastDay] = daysOf(params.startdate, params.enddate);
    if (params.usageid && params.type === undefined)
      throw invalidParameter('usageid must be used together with type');
    if (params.type !== undefined && !USAGE_TYPES.some(([id]) => id === params.type))
      throw invalidParameter(`Invalid usage type ${params.type}`);
    let q = db
      .selectFrom('usage_records as u')
      .innerJoin('accounts', 'accounts.id', 'u.account_id')
      .innerJoin('domains', 'domains.id', 'u.domain_id')
      .where('u.start_date', '>=', firstDay)
      .where('u.start_date', '<', lastDay);
    // Upstream's usage scope, not a list's: an account by uuid or name, else a domain (the
    // caller's by default) and everything below it unless domainid is given without isrecursive.
    let scope: OwnerScope;
    if (params.projectid) scope = await projectScope(ctx, params.projectid);
    else if (params.accountid || params.account) {
      const domain = params.domainid ? await findDomainByUuid(ctx, params.domainid) : caller.domain;
      let aq = db.selectFrom('accounts').select(['id', 'domain_id']);
      aq = params.accountid
        ? aq.where('uuid', '=', params.accountid)
        : aq.where('name', '=', params.account!).where('domain_id', '=', domain.id);
      const account = await aq.executeTakeFirst();
      if (!account) throw invalidParameter(`Unable to find account ${params.accountid ?? params.account}`);
      await checkRowAccess(ctx, { account_id: account.id, domain_id: account.domain_id });
      scope = { kind: 'accounts', accountIds: [account.id] };
    } else {
      const domain = params.domainid ? await findDomainByUuid(ctx, params.domainid) : caller.domain;
      checkDomainAccess(caller, domain);
      scope =
        params.domainid && !params.isrecursive
          ? { kind: 'domain', domainId: domain.id }
          : { kind: 'subtree', path: domain.path };
    }
    if (params.type !== undefined) q = q.where('u.usage_type', '=', params.type);
    if (params.usageid) q = q.where('u.usage_id', '=', params.usageid);
    if (params.keyword) q = q.where(likeEscaped('u.description', `%${escapeLike(params.keyword)}%`));
    return listOwned(ctx, params, q, {
      owner: { account: 'u.account_id', domain: 'u.domain_id' },
      scope,
      rows: (scoped, page) =>
        paginate(
          scoped
            .selectAll('u')
            .select([
              'accounts.name as account',
              'accounts.uuid as accountuuid',
              'domains.uuid as domainuuid',
              'domains.name as domain',
              'domains.path as domainpath',
            ])
            .orderBy('u.start_date')
            .orderBy('u.usage_type')
            .orderBy('u.id'),
          page,
        ).execute(),
      present: async (rows) => {
        const zones = new Map(
          (await db.selectFrom('zones').select(['id', 'uuid']).execute()).map((z) => [z.id, z.uuid]),
        );
        return rows.map((r) => {
          const isVm = r.usage_type === RUNNING_VM || r.usage_type === ALLOCATED_VM;
          const isIp = r.usage_type === IP_ADDRESS;
          return {
            account: r.account,
            accountid: r.accountuuid,
            domainid: r.domainuuid,
            domain: r.domain,
            domainpath: displayPath(r.domainpath),
            zoneid: r.zone_id === null ? undefined : zones.get(r.zone_id),
            description: r.description,
            usage: hoursText(Number(r.raw_usage)),
            usagetype: r.usage_type,
            rawusage: Number(Number(r.raw_usage).toFixed(6)),
            usageid: r.usage_id,
            virtualmachineid: r.vm_uuid ?? undefined,
            name: r.name ?? undefined,
            offeringid: r.offering_uuid ?? undefined,
            templateid: r.template_uuid ?? undefined,
            // An address's record keeps whether it was a source-NAT address in `type`.
            type: isIp ? undefined : (r.type ?? undefined),
            ...(isIp ? { issourcenat: r.type === 'SourceNat', issystem: false } : {}),
            size: r.size_bytes === null ? undefined : Number(r.size_bytes),
            virtualsize: r.virtual_size_bytes === null ? undefined : Number(r.virtual_size_bytes),
            ...(isVm ? { cpunumber: r.cpu_number, cpuspeed: r.cpu_speed, memory: r.memory_mb } : {}),
            startdate: formatDate(Number(r.start_date)),
            enddate: formatDate(Number(r.end_date)),
          };
        });
      },
    });
  },
});

export const usageCommands = [listUsageTypes, generateUsageRecords, listUsageRecords];
