/** Disk offerings: the sizes and storage qualities users choose data volumes from. Sizes are shown in GiB. */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { DiskOfferingRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { normalizeTags } from '../infra/common.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { defineSetting } from '../settings/settings.ts';
import { registerTaggable } from '../tags/tags.ts';
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

export const GiB = 1024 ** 3;
const STORAGE_TYPES = ['shared', 'local'] as const;
const PROVISIONING_TYPES = ['thin', 'sparse', 'fat'] as const;
const CACHE_MODES = ['none', 'writeback', 'writethrough', 'hypervisor_default'] as const;
const STATES = ['Active', 'Inactive'] as const;
export const MAX_VOLUME_SIZE = defineSetting({
  name: 'storage.max.volume.size',
  category: 'Storage',
  type: 'Integer',
  defaultValue: 2000,
  min: 1,
  description: 'Largest volume, in GB, that an offering may describe.',
});

export function pick<T extends string>(values: readonly T[], value: string, what: string): T {
  const found = values.find((v) => v.toLowerCase() === value.trim().toLowerCase());
  if (!found) throw invalidParameter(`Invalid ${what} ${value}; use one of ${values.join(', ')}`);
  return found;
}

export const storageType = (v: string) => pick(STORAGE_TYPES, v, 'storage type');
export const provisioningType = (v: string) => pick(PROVISIONING_TYPES, v, 'provisioning type');
export const cacheMode = (v: string) => pick(CACHE_MODES, v, 'cache mode');
export const offeringState = (v: string) => pick(STATES, v, 'state');

/** The storage qualities shared by disk offerings and the root disk of service offerings. */
export const storageParams = {
  storagetype: p.string({
    description:
      "shared (the default) or local: local disks live on the host's own storage, when the zone allows it.",
  }),
  provisioningtype: p.string({
    description: 'thin (the default), sparse or fat; recorded on the volumes made.',
  }),
  tags: p.string({
    description: 'Comma-separated storage tags; the disk goes only to pools carrying all of them.',
  }),
  miniops: p.long({
    min: 0,
    description: 'Lowest IOPS; recorded and shown, not enforced (at most maxiops).',
  }),
  maxiops: p.long({ min: 0, description: 'Highest IOPS; recorded and shown, not enforced.' }),
  customizediops: p.boolean({
    description: 'Recorded flag: whether IOPS are chosen per volume; not enforced.',
  }),
  cachemode: p.string({
    description: 'none, writeback, writethrough or hypervisor_default; recorded and shown.',
  }),
  bytesreadrate: p.long({
    min: 0,
    description: 'Read rate in bytes per second; recorded and shown, not enforced.',
  }),
  byteswriterate: p.long({
    min: 0,
    description: 'Write rate in bytes per second; recorded and shown, not enforced.',
  }),
  iopsreadrate: p.long({
    min: 0,
    description: 'Read operations per second; recorded and shown, not enforced.',
  }),
  iopswriterate: p.long({
    min: 0,
    description: 'Write operations per second; recorded and shown, not enforced.',
  }),
  hypervisorsnapshotreserve: p.integer({
    min: 0,
    description: 'Percentage to reserve for hypervisor snapshots; recorded only.',
  }),
};

type StorageInput = {
  storagetype?: string;
  provisioningtype?: string;
  tags?: string;
  miniops?: number;
  maxiops?: number;
  customizediops?: boolean;
  cachemode?: string;
  bytesreadrate?: number;
  byteswriterate?: number;
  iopsreadrate?: number;
  iopswriterate?: number;
  hypervisorsnapshotreserve?: number;
};

/** Validated column values for the storage part of an offering. */
export function storageColumns(params: StorageInput) {
  if (params.miniops !== undefined && params.maxiops !== undefined && params.miniops > params.maxiops)
    throw invalidParameter('miniops must not be greater than maxiops');
  return {
    storage_type: params.storagetype ? storageType(params.storagetype) : 'shared',
    provisioning_type: params.provisioningtype ? provisioningType(params.provisioningtype) : 'thin',
    tags: normalizeTags(params.tags),
    min_iops: params.miniops ?? null,
    max_iops: params.maxiops ?? null,
    customized_iops: params.customizediops ? 1 : 0,
    cache_mode: params.cachemode ? cacheMode(params.cachemode) : null,
    bytes_read_rate: params.bytesreadrate ?? null,
    bytes_write_rate: params.byteswriterate ?? null,
    iops_read_rate: params.iopsreadrate ?? null,
    iops_write_rate: params.iopswriterate ?? null,
    hypervisor_snapshot_reserve: params.hypervisorsnapshotreserve ?? null,
  } as const;
}

const opt = (n: number | null) => (n === null ? undefined : Number(n));

/** Fields of the storage part, as both offering responses show them. */
export function storageFields(d: DiskOfferingRow) {
  return {
    storagetype: d.storage_type,
    provisioningtype: d.provisioning_type,
    cacheMode: d.cache_mode ?? 'none',
    miniops: opt(d.min_iops),
    maxiops: opt(d.max_iops),
    iscustomizediops: d.customized_iops === 1,
    diskBytesReadRate: opt(d.bytes_read_rate),
    diskBytesWriteRate: opt(d.bytes_write_rate),
    diskIopsReadRate: opt(d.iops_read_rate),
    diskIopsWriteRate: opt(d.iops_write_rate),
    hypervisorsnapshotreserve: opt(d.hypervisor_snapshot_reserve),
  };
}

async function presentDiskOfferings(ctx: CallContext, rows: DiskOfferingRow[]): Promise<object[]> {
  const scopes = await presentScopes(
    ctx,
    'disk',
    rows.map((r) => r.id),
  );
  return rows.map((d) => ({
    id: d.uuid,
    name: d.name,
    displaytext: d.display_text,
    disksize: Math.round(Number(d.disk_size_bytes) / GiB),
    iscustomized: d.customized === 1,
    created: formatDate(d.created),
    ...storageFields(d),
    tags: d.tags ?? undefined,
    displayoffering: d.display_offering === 1,
    encrypt: d.encrypt === 1,
    disksizestrictness: d.disk_size_strictness === 1,
    state: d.state,
    ...scopes.get(d.id),
    hasannotations: false,
  }));
}

export async function findDiskOffering(ctx: CallContext, uuid: string): Promise<DiskOfferingRow> {
  const row = await ctx.app.store.db
    .selectFrom('disk_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .where('compute_only', '=', 0)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find disk offering by id ${uuid}`);
  return row;
}

async function presentOne(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('disk_offerings')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentDiskOfferings(ctx, [row]))[0];
}

export const createDiskOffering = defineCommand({
  name: 'createDiskOffering',
  description:
    'Creates a disk offering for data volumes: a fixed size, or customized (size chosen when the volume is made), plus storage qualities.',
  params: {
    name: p.string({ required: true, description: 'Name of the offering (not empty).' }),
    displaytext: p.string({
      length: 4096,
      description: 'Description shown for the offering; defaults to its name.',
    }),
    disksize: p.long({
      min: 0,
      description:
        'Size in GB of a fixed offering, 1 up to storage.max.volume.size; omit (or 0) for a customized one.',
    }),
    customized: p.boolean({
      description:
        'true: the volume size is given when the volume is created; defaults to true when disksize is missing or 0.',
    }),
    ...storageParams,
    displayoffering: p.boolean({ description: 'When false, users do not see the offering; default true.' }),
    encrypt: p.boolean({ description: 'Recorded and shown; Nimbostack does not encrypt volumes.' }),
    disksizestrictness: p.boolean({
      description: "Recorded flag: whether volumes must keep the offering's size.",
    }),
    domainid: p.list({
      description:
        "Comma-separated domain UUIDs the offering is limited to, or 'public' (root admins only); domain admins default to their own domain.",
    }),
    zoneid: p.list({
      description: "Comma-separated zone UUIDs the offering is available in, or 'all' (the default).",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Disk offering name must not be empty');
    // Without a size the user picks one when creating the volume.
    const customized = params.customized ?? (params.disksize === undefined || params.disksize === 0);
    if (customized && params.disksize)
      throw invalidParameter(
        'A customized disk offering takes its size when the volume is created; omit disksize',
      );
    const maxGb = ctx.app.settings.get(MAX_VOLUME_SIZE);
    if (!customized && (params.disksize === undefined || params.disksize < 1 || params.disksize > maxGb))
      throw invalidParameter(`Please specify a disk size of at least 1 GB and at most ${maxGb} GB`);
    const storage = storageColumns(params);
    const scopes = defaultScopes(ctx.caller, await resolveScopes(ctx, params.domainid, params.zoneid));
    const uuid = app.ids.uuid();
    const id = await app.store.db.transaction().execute(async (tx) => {
      const id = await insertId(app.store, tx, 'disk_offerings', {
        uuid,
        name,
        display_text: params.displaytext?.trim() || name,
        disk_size_bytes: customized ? 0 : (params.disksize as number) * GiB,
        customized: customized ? 1 : 0,
        ...storage,
        encrypt: params.encrypt ? 1 : 0,
        disk_size_strictness: params.disksizestrictness ? 1 : 0,
        display_offering: params.displayoffering === false ? 0 : 1,
        compute_only: 0,
        state: 'Active',
        created: app.clock.now(),
      });
      await writeScopes(tx, 'disk', id, scopes);
      await logEvent(ctx, tx, {
        type: 'DISK.OFFERING.CREATE',
        description: `creating disk offering ${name}`,
        resourceType: 'DiskOffering',
        resourceId: uuid,
      });
      return id;
    });
    return presentOne(ctx, id);
  },
});

export const listDiskOfferings = defineCommand({
  name: 'listDiskOfferings',
  description: 'Lists the active disk offerings the caller may use; users see only those marked for display.',
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
    storagetype: p.string({ description: 'Only offerings of this storage type: shared or local.' }),
    state: p.string({ description: 'Active (the default), Inactive, or all.' }),
    encrypt: p.boolean({ description: 'Only offerings whose encrypt flag has this value.' }),
    isrecursive: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    listall: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db
      .selectFrom('disk_offerings')
      .where('removed', 'is', null)
      .where('compute_only', '=', 0);
    q = await visibleTo(ctx, q, 'disk', 'disk_offerings.id', await offeringUser(ctx, params));
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.storagetype) q = q.where('storage_type', '=', storageType(params.storagetype));
    if (params.encrypt !== undefined) q = q.where('encrypt', '=', params.encrypt ? 1 : 0);
    // Users see what they can use: active offerings shown to end users.
    if (ctx.caller.roleKind === 'user') q = q.where('display_offering', '=', 1);
    if (params.state?.toLowerCase() !== 'all')
      q = q.where('state', '=', params.state ? offeringState(params.state) : 'Active');
    if (params.domainid && !params.account) {
      const domain = await app.store.db
        .selectFrom('domains')
        .select('id')
        .where('uuid', '=', params.domainid)
        .executeTakeFirst();
      if (!domain) throw invalidParameter(`Unable to find domain by id ${params.domainid}`);
      q = q.where(
        'id',
        'in',
        app.store.db
          .selectFrom('offering_scopes')
          .select('offering_id')
          .where('offering_type', '=', 'disk')
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
      q = inZone(q, 'disk', 'disk_offerings.id', zone.id);
    }
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q.selectAll().orderBy('sort_key').orderBy('id'),
      pageOf(app, params),
    ).execute();
    return listResult(await presentDiskOfferings(ctx, rows), Number(count));
  },
});

export const updateDiskOffering = defineCommand({
  name: 'updateDiskOffering',
  description:
    "Changes a disk offering's name, description, visibility, order, tags, cache mode, rates, state or domain and zone limits; its size cannot change.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the offering.' }),
    name: p.string({ description: 'New name (not empty).' }),
    displaytext: p.string({ length: 4096, description: 'New description.' }),
    displayoffering: p.boolean({ description: 'Whether users see the offering.' }),
    sortkey: p.integer({ description: 'Position in lists; lower values come first.' }),
    tags: p.string({
      description: "New comma-separated storage tags the volume's pool must carry; empty clears them.",
    }),
    cachemode: p.string({
      description: 'none, writeback, writethrough or hypervisor_default; recorded and shown.',
    }),
    state: p.string({ description: 'Active, or Inactive to hide it from new volumes.' }),
    domainid: p.string({
      description:
        "Comma-separated domain UUIDs it is limited to, or 'public' (root admins only); replaces the current list.",
    }),
    zoneid: p.string({
      description: "Comma-separated zone UUIDs it is available in, or 'all'; replaces the current list.",
    }),
    bytesreadrate: p.long({
      min: 0,
      description: 'Read rate in bytes per second; recorded and shown, not enforced.',
    }),
    byteswriterate: p.long({
      min: 0,
      description: 'Write rate in bytes per second; recorded and shown, not enforced.',
    }),
    iopsreadrate: p.long({
      min: 0,
      description: 'Read operations per second; recorded and shown, not enforced.',
    }),
    iopswriterate: p.long({
      min: 0,
      description: 'Write operations per second; recorded and shown, not enforced.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findDiskOffering(ctx, params.id);
    await checkManage(ctx, 'disk', offering.id);
    const changes: Partial<DiskOfferingRow> = {};
    if (params.name !== undefined) {
      if (params.name.trim() === '') throw invalidParameter('Disk offering name must not be empty');
      changes.name = params.name.trim();
    }
    if (params.displaytext !== undefined) changes.display_text = params.displaytext;
    if (params.displayoffering !== undefined) changes.display_offering = params.displayoffering ? 1 : 0;
    if (params.sortkey !== undefined) changes.sort_key = params.sortkey;
    if (params.tags !== undefined) changes.tags = normalizeTags(params.tags);
    if (params.cachemode !== undefined) changes.cache_mode = cacheMode(params.cachemode);
    if (params.state !== undefined) changes.state = offeringState(params.state);
    if (params.bytesreadrate !== undefined) changes.bytes_read_rate = params.bytesreadrate;
    if (params.byteswriterate !== undefined) changes.bytes_write_rate = params.byteswriterate;
    if (params.iopsreadrate !== undefined) changes.iops_read_rate = params.iopsreadrate;
    if (params.iopswriterate !== undefined) changes.iops_write_rate = params.iopswriterate;
    const scopes = await resolveScopes(ctx, params.domainid, params.zoneid);
    if (ctx.caller.roleKind !== 'admin' && scopes.domainIds?.length === 0)
      throw invalidParameter('Only root administrators can make an offering public');
    await app.store.db.transaction().execute(async (tx) => {
      if (Object.keys(changes).length > 0)
        await tx.updateTable('disk_offerings').set(changes).where('id', '=', offering.id).execute();
      await writeScopes(tx, 'disk', offering.id, scopes);
      await logEvent(ctx, tx, {
        type: 'DISK.OFFERING.EDIT',
        description: `updating disk offering ${offering.name}`,
        resourceType: 'DiskOffering',
        resourceId: offering.uuid,
      });
    });
    return presentOne(ctx, offering.id);
  },
});

/** Offerings are soft-deleted: volumes created from one keep naming it. */
export const deleteDiskOffering = defineCommand({
  name: 'deleteDiskOffering',
  description:
    'Removes a disk offering so it can no longer be chosen; existing volumes made from it are kept.',
  params: { id: p.uuid({ required: true, description: 'UUID of the offering to remove.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findDiskOffering(ctx, params.id);
    await checkManage(ctx, 'disk', offering.id);
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .updateTable('disk_offerings')
        .set({ removed: app.clock.now(), state: 'Inactive' })
        .where('id', '=', offering.id)
        .execute();
      await tx
        .deleteFrom('resource_tags')
        .where('resource_type', '=', 'DiskOffering')
        .where('resource_id', '=', offering.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'DISK.OFFERING.DELETE',
        description: `deleting disk offering ${offering.name}`,
        resourceType: 'DiskOffering',
        resourceId: offering.uuid,
      });
    });
    return success();
  },
});

export const diskOfferingCommands = [
  createDiskOffering,
  listDiskOfferings,
  updateDiskOffering,
  deleteDiskOffering,
];

registerTaggable('DiskOffering', async (ctx, uuid) => {
  const row = await ctx.app.store.db
    .selectFrom('disk_offerings')
    .select('id')
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .where('compute_only', '=', 0)
    .executeTakeFirst();
  if (!row) return undefined;
  const root = await ctx.app.store.db
    .selectFrom('domains')
    .select('id')
    .where('parent_id', 'is', null)
    .executeTakeFirstOrThrow();
  return { id: row.id, accountId: -1, domainId: root.id };
});
