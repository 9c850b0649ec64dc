/**
 * Service (compute) offerings: CPU, memory and the root disk's storage qualities. As upstream since
 * 4.17, each one carries a hidden disk offering (compute_only) holding the root-disk part, unless it
 * is linked to a visible disk offering through diskofferingid.
 */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { DiskOfferingRow, ServiceOfferingRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { normalizeTags } from '../infra/common.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable } from '../tags/tags.ts';
import {
  findDiskOffering,
  GiB,
  MAX_VOLUME_SIZE,
  offeringState,
  storageColumns,
  storageFields,
  storageParams,
} from './disk-offerings.ts';
import {
  checkManage,
  defaultScopes,
  inZone,
  offeringUser,
  presentScopes,
  resolveScopes,
  visibleTo,
  writeScopes,
} from './scope.ts';

async function presentServiceOfferings(ctx: CallContext, rows: ServiceOfferingRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const disks = new Map(
    (
      await ctx.app.store.db
        .selectFrom('disk_offerings')
        .selectAll()
        .where(
          'id',
          'in',
          rows.map((r) => r.disk_offering_id),
        )
        .execute()
    ).map((d) => [d.id, d]),
  );
  const scopes = await presentScopes(
    ctx,
    'service',
    rows.map((r) => r.id),
  );
  return rows.map((s) => {
    const disk = disks.get(s.disk_offering_id) as DiskOfferingRow;
    const customized = s.cpu_number === null || s.memory_mb === null;
    const details: Record<string, string> = {};
    if (s.min_cpu_number !== null) details.mincpunumber = String(s.min_cpu_number);
    if (s.max_cpu_number !== null) details.maxcpunumber = String(s.max_cpu_number);
    if (s.min_memory_mb !== null) details.minmemory = String(s.min_memory_mb);
    if (s.max_memory_mb !== null) details.maxmemory = String(s.max_memory_mb);
    return {
      id: s.uuid,
      name: s.name,
      displaytext: s.display_text,
      cpunumber: s.cpu_number ?? undefined,
      cpuspeed: s.cpu_speed ?? undefined,
      memory: s.memory_mb ?? undefined,
      created: formatDate(s.created),
      ...storageFields(disk),
      storagetags: disk.tags ?? undefined,
      hosttags: s.host_tags ?? undefined,
      offerha: s.offer_ha === 1,
      limitcpuuse: s.limit_cpu_use === 1,
      isvolatile: s.is_volatile === 1,
      issystem: s.is_system === 1,
      systemvmtype: s.system_vm_type ?? undefined,
      defaultuse: s.default_use === 1,
      iscustomized: customized,
      rootdisksize: s.root_disk_size_bytes === null ? 0 : Math.round(Number(s.root_disk_size_bytes) / GiB),
      networkrate: s.network_rate ?? undefined,
      deploymentplanner: s.deployment_planner ?? undefined,
      dynamicscalingenabled: s.dynamic_scaling_enabled === 1,
      diskofferingstrictness: s.disk_offering_strictness === 1,
      ...(disk.compute_only === 1
        ? {}
        : {
            diskofferingid: disk.uuid,
            diskofferingname: disk.name,
            diskofferingdisplaytext: disk.display_text,
          }),
      serviceofferingdetails: Object.keys(details).length ? details : undefined,
      encryptroot: disk.encrypt === 1,
      state: s.state,
      ...scopes.get(s.id),
      hasannotations: false,
    };
  });
}

export async function findServiceOffering(ctx: CallContext, uuid: string): Promise<ServiceOfferingRow> {
  const row = await ctx.app.store.db
    .selectFrom('service_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find service offering by id ${uuid}`);
  return row;
}

async function presentOne(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('service_offerings')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentServiceOfferings(ctx, [row]))[0];
}

interface ComputeInput {
  cpunumber?: number;
  cpuspeed?: number;
  memory?: number;
  customized?: boolean;
  mincpunumber?: number;
  maxcpunumber?: number;
  minmemory?: number;
  maxmemory?: number;
}

/**
 * Upstream's rules: a fixed offering gives cpunumber, cpuspeed and memory; a customized one leaves
 * CPU count and memory to the deployer, optionally bounded by min/max.
 */
function computeColumns(params: ComputeInput) {
  const fixedGiven = params.cpunumber !== undefined || params.memory !== undefined;
  const customized = params.customized ?? !(params.cpunumber !== undefined && params.memory !== undefined);
  if (customized && fixedGiven)
    throw invalidParameter(
      'A customized offering takes cpunumber and memory at deployment; omit them or use customized=false',
    );
  if (
    !customized &&
    (params.cpunumber === undefined || params.memory === undefined || params.cpuspeed === undefined)
  )
    throw invalidParameter('A fixed offering needs cpunumber, cpuspeed and memory');
  const ranged =
    params.mincpunumber !== undefined ||
    params.maxcpunumber !== undefined ||
    params.minmemory !== undefined ||
    params.maxmemory !== undefined;
  if (ranged && !customized)
    throw invalidParameter(
      'mincpunumber, maxcpunumber, minmemory and maxmemory apply to customized offerings only',
    );
  if (
    params.mincpunumber !== undefined &&
    params.maxcpunumber !== undefined &&
    params.mincpunumber > params.maxcpunumber
  )
    throw invalidParameter('mincpunumber must not be greater than maxcpunumber');
  if (params.minmemory !== undefined && params.maxmemory !== undefined && params.minmemory > params.maxmemory)
    throw invalidParameter('minmemory must not be greater than maxmemory');
  return {
    cpu_number: customized ? null : (params.cpunumber as number),
    cpu_speed: params.cpuspeed ?? null,
    memory_mb: customized ? null : (params.memory as number),
    min_cpu_number: params.mincpunumber ?? null,
    max_cpu_number: params.maxcpunumber ?? null,
    min_memory_mb: params.minmemory ?? null,
    max_memory_mb: params.maxmemory ?? null,
  };
}

export const createServiceOffering = defineCommand({
  name: 'createServiceOffering',
  description:
    "Creates a compute offering: fixed CPU and memory, or customized (sized at deploy within optional bounds), plus its ROOT disk's storage qualities.",
  params: {
    name: p.string({ required: true, description: 'Name of the offering (not empty).' }),
    displaytext: p.string({
      length: 4096,
      description: 'Description shown for the offering; defaults to its name.',
    }),
    cpunumber: p.integer({ min: 1, description: 'Number of CPU cores of a fixed offering.' }),
    cpuspeed: p.integer({
      min: 1,
      description:
        'CPU speed in MHz per core; required for a fixed offering, optional for a customized one (deploys default to 1000).',
    }),
    memory: p.integer({ min: 32, description: 'Memory in MB of a fixed offering (at least 32).' }),
    customized: p.boolean({
      description:
        'true: CPU and memory are chosen at deploy time; defaults to true unless both cpunumber and memory are given.',
    }),
    mincpunumber: p.integer({
      min: 1,
      description: 'Customized offerings only: the fewest cores a deploy may ask for.',
    }),
    maxcpunumber: p.integer({
      min: 1,
      description: 'Customized offerings only: the most cores a deploy may ask for.',
    }),
    minmemory: p.integer({
      min: 32,
      description: 'Customized offerings only: the least memory in MB a deploy may ask for.',
    }),
    maxmemory: p.integer({
      min: 32,
      description: 'Customized offerings only: the most memory in MB a deploy may ask for.',
    }),
    offerha: p.boolean({
      description:
        'Sets the high-availability flag of VMs deployed with it; recorded, Nimbostack does not restart VMs on host failure.',
    }),
    limitcpuuse: p.boolean({ description: 'Recorded and shown; Nimbostack does not cap CPU use with it.' }),
    isvolatile: p.boolean({
      description: 'Recorded and shown; Nimbostack does not reset the ROOT disk on reboot.',
    }),
    hosttags: p.string({
      description:
        'Comma-separated host tags; VMs with this offering are placed only on hosts carrying all of them.',
    }),
    networkrate: p.integer({
      min: 0,
      description: 'Network rate in Mbit/s; recorded and shown, not enforced.',
    }),
    deploymentplanner: p.string({
      description: 'Recorded and shown; Nimbostack always uses its own planner.',
    }),
    dynamicscalingenabled: p.boolean({
      description: 'Recorded flag, default true; Nimbostack does not scale running VMs.',
    }),
    rootdisksize: p.long({
      min: 1,
      description: 'ROOT disk size in GB for VMs of this offering, up to storage.max.volume.size.',
    }),
    diskofferingid: p.uuid({
      description:
        "UUID of an existing disk offering to use for the ROOT disk, instead of one made from this offering's storage parameters.",
    }),
    diskofferingstrictness: p.boolean({
      description: 'Recorded flag: whether the ROOT disk offering may be changed later.',
    }),
    encryptroot: p.boolean({
      description: 'Recorded on the ROOT disk offering; Nimbostack does not encrypt volumes.',
    }),
    issystem: p.boolean({
      description: 'Refused when true: Nimbostack runs no system VMs, so it has no system offerings.',
    }),
    systemvmtype: p.string({
      description: 'Accepted for compatibility; Nimbostack has no system VMs and ignores it.',
    }),
    domainid: p.list({
      description:
        "Comma-separated domain UUIDs the offering is limited to, or 'public' (root admins only); domain admins default to their own domain.",
    }),
    zoneid: p.list({
      description: "Comma-separated zone UUIDs the offering is available in, or 'all' (the default).",
    }),
    ...storageParams,
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Service offering name must not be empty');
    if (params.issystem)
      throw invalidParameter('System offerings are not used: Nimbostack runs no system VMs');
    const maxGb = app.settings.get(MAX_VOLUME_SIZE);
    if (params.rootdisksize !== undefined && params.rootdisksize > maxGb)
      throw invalidParameter(`rootdisksize must be at most ${maxGb} GB`);
    const compute = computeColumns(params);
    const storage = storageColumns(params);
    const linked = params.diskofferingid ? await findDiskOffering(ctx, params.diskofferingid) : undefined;
    const scopes = defaultScopes(ctx.caller, await resolveScopes(ctx, params.domainid, params.zoneid));
    const uuid = app.ids.uuid();
    const id = await app.store.db.transaction().execute(async (tx) => {
      const diskId =
        linked?.id ??
        (await insertId(app.store, tx, 'disk_offerings', {
          uuid: app.ids.uuid(),
          name,
          display_text: params.displaytext?.trim() || name,
          disk_size_bytes: (params.rootdisksize ?? 0) * GiB,
          ...storage,
          encrypt: params.encryptroot ? 1 : 0,
          compute_only: 1,
          state: 'Active',
          created: app.clock.now(),
        }));
      const id = await insertId(app.store, tx, 'service_offerings', {
        uuid,
        name,
        display_text: params.displaytext?.trim() || name,
        ...compute,
        offer_ha: params.offerha ? 1 : 0,
        limit_cpu_use: params.limitcpuuse ? 1 : 0,
        is_volatile: params.isvolatile ? 1 : 0,
        dynamic_scaling_enabled: params.dynamicscalingenabled === false ? 0 : 1,
        host_tags: normalizeTags(params.hosttags),
        network_rate: params.networkrate ?? null,
        deployment_planner: params.deploymentplanner ?? null,
        disk_offering_id: diskId,
        disk_offering_strictness: params.diskofferingstrictness ? 1 : 0,
        root_disk_size_bytes: params.rootdisksize === undefined ? null : params.rootdisksize * GiB,
        state: 'Active',
        created: app.clock.now(),
      });
      await writeScopes(tx, 'service', id, scopes);
      await logEvent(ctx, tx, {
        type: 'SERVICE.OFFERING.CREATE',
        description: `creating service offering ${name}`,
        resourceType: 'ServiceOffering',
        resourceId: uuid,
      });
      return id;
    });
    return presentOne(ctx, id);
  },
});

export const listServiceOfferings = defineCommand({
  name: 'listServiceOfferings',
  description:
    'Lists the active compute offerings the caller may use (administrators: all they manage), optionally those that fit a requested size.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the offering with this UUID.' }),
    name: p.string({ description: 'Only offerings with exactly this name.' }),
    domainid: p.uuid({
      description:
        'Alone: only offerings limited to this domain. With account: the domain of the account the list is for.',
    }),
    account: p.string({
      description:
        'With domainid: list the offerings this account may use (as the deploy wizard asks for the owner it deploys for).',
    }),
    zoneid: p.uuid({ description: 'Only offerings available in this zone.' }),
    issystem: p.boolean({
      description: 'true lists system offerings, of which Nimbostack has none; default false.',
    }),
    systemvmtype: p.string({
      description: 'Only system offerings of this system VM type (Nimbostack has none).',
    }),
    cpunumber: p.integer({
      min: 1,
      description:
        'Only offerings that can give this many cores: fixed ones of that size and customized ones whose range allows it.',
    }),
    cpuspeed: p.integer({
      min: 1,
      description: 'Only offerings with this CPU speed in MHz, or with none set.',
    }),
    memory: p.integer({
      min: 1,
      description:
        'Only offerings that can give this much memory in MB (fixed of that size, or customized within range).',
    }),
    storagetype: p.string({
      description: 'Only offerings whose ROOT disk is on this storage type: shared or local.',
    }),
    state: p.string({ description: 'Active (the default), Inactive, or all.' }),
    isrecursive: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    listall: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db
      .selectFrom('service_offerings')
      .where('service_offerings.removed', 'is', null)
      .where('service_offerings.is_system', '=', params.issystem ? 1 : 0);
    q = await visibleTo(ctx, q, 'service', 'service_offerings.id', await offeringUser(ctx, params));
    if (params.id) q = q.where('service_offerings.uuid', '=', params.id);
    if (params.name) q = q.where('service_offerings.name', '=', params.name);
    if (params.systemvmtype) q = q.where('service_offerings.system_vm_type', '=', params.systemvmtype);
    if (params.state?.toLowerCase() !== 'all')
      q = q.where('service_offerings.state', '=', params.state ? offeringState(params.state) : 'Active');
    // A deployer asking for a size sees fixed offerings of that size and customized ones that allow it.
    for (const [param, fixed, min, max] of [
      [params.cpunumber, 'cpu_number', 'min_cpu_number', 'max_cpu_number'],
      [params.memory, 'memory_mb', 'min_memory_mb', 'max_memory_mb'],
    ] as const) {
      if (param === undefined) continue;
      q = q.where((eb) =>
        eb.or([
          eb(`service_offerings.${fixed}`, '=', param),
          eb.and([
            eb(`service_offerings.${fixed}`, 'is', null),
            eb.or([eb(`service_offerings.${min}`, 'is', null), eb(`service_offerings.${min}`, '<=', param)]),
            eb.or([eb(`service_offerings.${max}`, 'is', null), eb(`service_offerings.${max}`, '>=', param)]),
          ]),
        ]),
      );
    }
    if (params.cpuspeed !== undefined)
      q = q.where((eb) =>
        eb.or([
          eb('service_offerings.cpu_speed', 'is', null),
          eb('service_offerings.cpu_speed', '=', params.cpuspeed as number),
        ]),
      );
    if (params.storagetype)
      q = q.where(
        'service_offerings.disk_offering_id',
        'in',
        app.store.db
          .selectFrom('disk_offerings')
          .select('id')
          .where('storage_type', '=', params.storagetype.toLowerCase()),
      );
    if (params.domainid && !params.account) {
      const domain = await app.store.db
        .selectFrom('domains')
        .select('id')
        .where('uuid', '=', params.domainid)
        .executeTakeFirst();
      if (!domain) throw invalidParameter(`Unable to find domain by id ${params.domainid}`);
      q = q.where(
        'service_offerings.id',
        'in',
        app.store.db
          .selectFrom('offering_scopes')
          .select('offering_id')
          .where('offering_type', '=', 'service')
          .where('scope', '=', 'domain')
          .where('scope_id', '=', domain.id),
      );
    }
    if (params.zoneid) {
      const zone = await app.store.db
        .selectFrom('zones')
        .select('id')
        .where('uuid', '=', params.zoneid)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (!zone) throw invalidParameter(`Unable to find zone by id ${params.zoneid}`);
      q = inZone(q, 'service', 'service_offerings.id', zone.id);
    }
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'service_offerings.name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q.selectAll().orderBy('service_offerings.sort_key').orderBy('service_offerings.id'),
      pageOf(app, params),
    ).execute();
    return listResult(await presentServiceOfferings(ctx, rows), Number(count));
  },
});

export const updateServiceOffering = defineCommand({
  name: 'updateServiceOffering',
  description:
    "Changes a compute offering's name, description, order, tags, state or domain and zone limits; its size cannot change.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the offering.' }),
    name: p.string({ description: 'New name (not empty).' }),
    displaytext: p.string({ length: 4096, description: 'New description.' }),
    sortkey: p.integer({ description: 'Position in lists; lower values come first.' }),
    hosttags: p.string({
      description: 'New comma-separated host tags the placement must match; empty clears them.',
    }),
    storagetags: p.string({
      description: "New comma-separated storage tags for the ROOT disk's pool; empty clears them.",
    }),
    state: p.string({ description: 'Active, or Inactive to hide it from new deploys.' }),
    domainid: p.string({
      description:
        "Comma-separated domain UUIDs it is limited to, or 'public' (root admins only); replaces the current list.",
    }),
    zoneid: p.string({
      description: "Comma-separated zone UUIDs it is available in, or 'all'; replaces the current list.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findServiceOffering(ctx, params.id);
    await checkManage(ctx, 'service', offering.id);
    const changes: Partial<ServiceOfferingRow> = {};
    if (params.name !== undefined) {
      if (params.name.trim() === '') throw invalidParameter('Service offering name must not be empty');
      changes.name = params.name.trim();
    }
    if (params.displaytext !== undefined) changes.display_text = params.displaytext;
    if (params.sortkey !== undefined) changes.sort_key = params.sortkey;
    if (params.hosttags !== undefined) changes.host_tags = normalizeTags(params.hosttags);
    if (params.state !== undefined) changes.state = offeringState(params.state);
    const scopes = await resolveScopes(ctx, params.domainid, params.zoneid);
    if (ctx.caller.roleKind !== 'admin' && scopes.domainIds?.length === 0)
      // 431 as upstream (InvalidParameterValueException), the same as updateDiskOffering.
      throw invalidParameter('Only root administrators can make an offering public');
    await app.store.db.transaction().execute(async (tx) => {
      if (Object.keys(changes).length > 0)
        await tx.updateTable('service_offerings').set(changes).where('id', '=', offering.id).execute();
      if (params.storagetags !== undefined)
        await tx
          .updateTable('disk_offerings')
          .set({ tags: normalizeTags(params.storagetags) })
          .where('id', '=', offering.disk_offering_id)
          .where('compute_only', '=', 1)
          .execute();
      await writeScopes(tx, 'service', offering.id, scopes);
      await logEvent(ctx, tx, {
        type: 'SERVICE.OFFERING.EDIT',
        description: `updating service offering ${offering.name}`,
        resourceType: 'ServiceOffering',
        resourceId: offering.uuid,
      });
    });
    return presentOne(ctx, offering.id);
  },
});

/** Soft delete: virtual machines deployed from the offering keep naming it. */
export const deleteServiceOffering = defineCommand({
  name: 'deleteServiceOffering',
  description:
    'Removes a compute offering so it can no longer be chosen; VMs using it keep running and keep their size.',
  params: { id: p.uuid({ required: true, description: 'UUID of the offering to remove.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findServiceOffering(ctx, params.id);
    await checkManage(ctx, 'service', offering.id);
    if (offering.is_system === 1) throw invalidParameter('System offerings cannot be deleted');
    await app.store.db.transaction().execute(async (tx) => {
      const now = app.clock.now();
      await tx
        .updateTable('service_offerings')
        .set({ removed: now, state: 'Inactive' })
        .where('id', '=', offering.id)
        .execute();
      await tx
        .updateTable('disk_offerings')
        .set({ removed: now, state: 'Inactive' })
        .where('id', '=', offering.disk_offering_id)
        .where('compute_only', '=', 1)
        .execute();
      await tx
        .deleteFrom('resource_tags')
        .where('resource_type', '=', 'ServiceOffering')
        .where('resource_id', '=', offering.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'SERVICE.OFFERING.DELETE',
        description: `deleting service offering ${offering.name}`,
        resourceType: 'ServiceOffering',
        resourceId: offering.uuid,
      });
    });
    return success();
  },
});

export const serviceOfferingCommands = [
  createServiceOffering,
  listServiceOfferings,
  updateServiceOffering,
  deleteServiceOffering,
];

registerTaggable('ServiceOffering', async (ctx, uuid) => {
  const row = await ctx.app.store.db
    .selectFrom('service_offerings')
    .select('id')
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!row) return undefined;
  const root = await ctx.app.store.db
    .selectFrom('domains')
    .select('id')
    .where('parent_id', 'is', null)
    .executeTakeFirstOrThrow();
  return { id: row.id, accountId: -1, domainId: root.id };
});
