/** Volumes: ROOT disks of VMs and data disks users create, attach, resize and delete. */

import { formatDate } from '../clock.ts';
import { releasePool, reservePool } from '../compute/planner.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow, StoragePoolRow, VmRow, VolumeRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { volumeMoved } from '../events/state-events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { ResourceKind, registerResourceCounter, reserve, reserveAll } from '../iam/limits.ts';
import { findOwned, listOwned, OWNED_VM_OR_DESTROYED } from '../iam/owned.ts';
import { findZone } from '../infra/common.ts';
import { onStoragePoolDelete } from '../infra/storage-pools.ts';
import { ownerFor } from '../projects/access.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import { storageGiB } from './images.ts';
import { localPoolOfVm } from './local-pools.ts';
import {
  discardManagedVolume,
  isManaged,
  prepareManagedVolume,
  resizeManagedVolume,
} from './managed/managed-pools.ts';
import { findSnapshot, stageSnapshot } from './snapshot-records.ts';
import { deleteOnPool, hostForPool, poolLocation, poolOf, vmDisk } from './volume-ops.ts';
import { abortUpload, dropUpload, stageUpload } from './volume-transfer.ts';

export const GiB = 2 ** 30;

/** Device 3 is where CloudStack puts the CD-ROM, so data disks skip it. */
const CDROM_DEVICE = 3;

export async function findVolume(ctx: CallContext, uuid: string): Promise<VolumeRow> {
  return findOwned(ctx, 'volumes', uuid, { noun: 'volume' });
}

export async function presentVolumes(ctx: CallContext, rows: VolumeRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = (key: keyof VolumeRow) => [
    ...new Set(rows.map((r) => r[key]).filter((x): x is number => typeof x === 'number')),
  ];
  const none = Promise.resolve([]);
  const [accounts, domains, zones, vms, offerings, pools, tags] = await Promise.all([
    db.selectFrom('accounts').select(['id', 'name']).where('id', 'in', ids('account_id')).execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', ids('domain_id'))
      .execute(),
    db.selectFrom('zones').select(['id', 'uuid', 'name']).where('id', 'in', ids('zone_id')).execute(),
    ids('vm_id').length
      ? db
          .selectFrom('vms')
          .select(['id', 'uuid', 'name', 'display_name', 'state', 'hypervisor'])
          .where('id', 'in', ids('vm_id'))
          .execute()
      : none,
    ids('disk_offering_id').length
      ? db
          .selectFrom('disk_offerings')
          .select(['id', 'uuid', 'name', 'display_text', 'storage_type'])
          .where('id', 'in', ids('disk_offering_id'))
          .execute()
      : none,
    ids('pool_id').length
      ? db
          .selectFrom('storage_pools')
          .select(['id', 'uuid', 'name', 'pool_type', 'scope'])
          .where('id', 'in', ids('pool_id'))
          .execute()
      : none,
    tagsOf(
      ctx,
      'Volume',
      rows.map((r) => r.id),
    ),
  ]);
  const by = <T extends { id: number }>(list: T[]) => new Map(list.map((x) => [x.id, x]));
  const [account, domain, zone, vm, offering, pool] = [
    by(accounts),
    by(domains),
    by(zones),
    by(vms),
    by(offerings),
    by(pools),
  ];
  const isAdmin = ctx.caller.roleKind === 'admin';
  return rows.map((v) => {
    const d = domain.get(v.domain_id)!;
    const z = zone.get(v.zone_id);
    const m = v.vm_id === null ? undefined : vm.get(v.vm_id);
    const o = v.disk_offering_id === null ? undefined : offering.get(v.disk_offering_id);
    const s = v.pool_id === null ? undefined : pool.get(v.pool_id);
    return {
      id: v.uuid,
      name: v.name,
      zoneid: z?.uuid,
      zonename: z?.name,
      type: v.type,
      state: v.state,
      size: Number(v.size_bytes),
      virtualsize: Number(v.size_bytes),
      physicalsize: v.physical_size_bytes === null ? undefined : Number(v.physical_size_bytes),
      account: account.get(v.account_id)?.name,
      domainid: d.uuid,
      domain: d.name,
      domainpath: displayPath(d.path),
      // Clients decide "attached" by the presence of these fields: absent when detached.
      ...(m
        ? {
            virtualmachineid: m.uuid,
            vmname: m.name,
            vmdisplayname: m.display_name,
            vmstate: m.state,
            vmtype: 'User',
            deviceid: v.device_id ?? 0,
            attached: formatDate(v.attached ?? v.created),
          }
        : {}),
      hypervisor: m?.hypervisor,
      diskofferingid: o?.uuid,
      diskofferingname: o?.name,
      diskofferingdisplaytext: o?.display_text,
      storagetype: o?.storage_type ?? 'shared',
      provisioningtype: v.provisioning_type,
      miniops: v.min_iops ?? undefined,
      maxiops: v.max_iops ?? undefined,
      ...(isAdmin && s
        ? { storageid: s.uuid, storage: s.name, pooltype: s.pool_type, path: v.path ?? undefined }
        : {}),
      // Uploads show their progress, or why they failed, as upstream's `status`.
      ...(v.upload_status !== null ? { status: v.upload_status } : {}),
      created: formatDate(v.created),
      destroyed: false,
      isextractable: true,
      displayvolume: v.display_volume === 1,
      tags: tags.get(v.id) ?? [],
    };
  });
}

export async function presentVolume(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('volumes')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentVolumes(ctx, [row]))[0];
}

/** A size in GB a volume may have (its bytes must stay a safe integer for the agents). */
function checkSizeGb(sizeGb: number): void {
  if (sizeGb <= 0 || sizeGb > 1024 * 64)
    throw invalidParameter(`Invalid volume size ${sizeGb} GB: must be between 1 and 65536`);
}

/** Size of a new data disk from its offering, or the requested size for a custom offering. */
export async function dataDiskSize(ctx: CallContext, offeringUuid: string, sizeGb: number | undefined) {
  const offering = await ctx.app.store.db
    .selectFrom('disk_offerings')
    .selectAll()
    .where('uuid', '=', offeringUuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!offering || offering.compute_only)
    throw invalidParameter(`Unable to find disk offering by id ${offeringUuid}`);
  if (offering.customized) {
    if (sizeGb === undefined)
      throw invalidParameter(`Disk offering ${offering.name} is custom sized: give the size in GB`);
    checkSizeGb(sizeGb);
    return { offering, sizeBytes: sizeGb * GiB };
  }
  if (sizeGb !== undefined && sizeGb * GiB !== Number(offering.disk_size_bytes)) {
    throw invalidParameter(
      `Disk offering ${offering.name} has a fixed size of ${Number(offering.disk_size_bytes) / GiB} GB; use a custom offering to choose the size`,
    );
  }
  return { offering, sizeBytes: Number(offering.disk_size_bytes) };
}

/** What a new volume counts against its owner's limits: one volume and its size in GiB. */
export function volumeReservation(sizeBytes: number): [kind: number, amount: number][] {
  return [
    [ResourceKind.Volume, 1],
    [ResourceKind.PrimaryStorage, Math.ceil(sizeBytes / GiB)],
  ];
}

/** Inserts a volume row (Allocated: its file is created when it is first needed on a host). */
export async function insertVolume(
  ctx: Pick<CallContext, 'app'>,
  tx: Tx,
  v: {
    name: string;
    account: AccountRow;
    zoneId: number;
    type: 'ROOT' | 'DATADISK';
    sizeBytes: number;
    diskOfferingId: number | null;
    templateId?: number | null;
    vmId?: number | null;
    deviceId?: number | null;
    provisioningType?: string;
    /** A data disk made from a snapshot: its file starts as a copy of the snapshot's backup. */
    snapshotId?: number | null;
    /** The caller reserves the volume and its GiB for the owner itself (volumeReservation). */
    reserved?: boolean;
  },
): Promise<number> {
  const { app } = ctx;
  if (!v.reserved) await reserveAll(ctx, tx, v.account, volumeReservation(v.sizeBytes));
  return insertId(app.store, tx, 'volumes', {
    uuid: app.ids.uuid(),
    name: v.name,
    account_id: v.account.id,
    domain_id: v.account.domain_id,
    zone_id: v.zoneId,
    pool_id: null,
    vm_id: v.vmId ?? null,
    device_id: v.deviceId ?? null,
    type: v.type,
    state: 'Allocated',
    size_bytes: v.sizeBytes,
    physical_size_bytes: null,
    path: null,
    format: 'QCOW2',
    disk_offering_id: v.diskOfferingId,
    template_id: v.templateId ?? null,
    snapshot_id: v.snapshotId ?? null,
    provisioning_type: v.provisioningType ?? 'thin',
    min_iops: null,
    max_iops: null,
    display_volume: 1,
    attached: v.vmId ? app.clock.now() : null,
    created: app.clock.now(),
    removed: null,
  });
}

/** Marks a volume gone and gives back its pool allocation and the owner's counts. */
export async function removeVolumeRecord(ctx: Pick<CallContext, 'app'>, tx: Tx, v: VolumeRow): Promise<void> {
  await tx
    .updateTable('volumes')
    .set({ state: 'Expunged', removed: ctx.app.clock.now(), vm_id: null })
    .where('id', '=', v.id)
    .execute();
  await volumeMoved(ctx, tx, v, 'Expunged', 'ExpungingRequested');
  // Its snapshots stay (as upstream); the policies that would take more go.
  await tx.deleteFrom('snapshot_policies').where('volume_id', '=', v.id).execute();
  if (v.pool_id !== null) await releasePool(tx, v.pool_id, Number(v.size_bytes));
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', v.account_id)
    .executeTakeFirst();
  if (account) {
    await reserve(ctx, tx, account, ResourceKind.Volume, -1);
    await reserve(ctx, tx, account, ResourceKind.PrimaryStorage, -Math.ceil(Number(v.size_bytes) / GiB));
  }
}

/** Gives back the secondary storage an Uploaded volume's file was counted for. */
async function releaseUploadCount(ctx: Pick<CallContext, 'app'>, tx: Tx, v: VolumeRow): Promise<void> {
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', v.account_id)
    .executeTakeFirst();
  if (account)
    await reserve(ctx, tx, account, ResourceKind.SecondaryStorage, -storageGiB(v.physical_size_bytes));
}

export interface PoolNeeds {
  local: boolean;
  tags: string[];
}

/**
 * What a volume's pool must offer, from its disk offering (a ROOT disk's is its compute offering's
 * disk part): the host's local storage, and every storage tag of the offering (upstream: the
 * offering's tags must all be among the pool's).
 */
export async function poolNeeds(
  ctx: Pick<CallContext, 'app'>,
  v: Pick<VolumeRow, 'disk_offering_id'>,
): Promise<PoolNeeds> {
  if (v.disk_offering_id === null) return { local: false, tags: [] };
  const o = await ctx.app.store.db
    .selectFrom('disk_offerings')
    .select(['storage_type', 'tags'])
    .where('id', '=', v.disk_offering_id)
    .executeTakeFirst();
  return {
    local: o?.storage_type === 'local',
    tags: (o?.tags ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter((t) => t !== ''),
  };
}

/** A volume with a file, and the pool its file was just created on (undefined if it had one already). */
export interface MaterialisedDisk {
  volume: VolumeRow;
  pool: StoragePoolRow | undefined;
}

/**
 * Creates a volume's file on a pool the host (or cluster) reaches, if it has none yet. Used when a
 * data disk is attached to a running VM and when a VM starts with Allocated disks (`needs`: its
 * poolNeeds, which the start has read already).
 */
export async function materialiseDataDisk(
  ctx: Pick<CallContext, 'app'>,
  v: VolumeRow,
  hostId: number,
  clusterId: number | null,
  needs?: PoolNeeds,
): Promise<MaterialisedDisk> {
  if (v.path && v.pool_id !== null) return { volume: v, pool: undefined };
  const pool = await reservePool(ctx, {
    zoneId: v.zone_id,
    clusterId,
    sizeBytes: Number(v.size_bytes),
    ...(needs ?? (await poolNeeds(ctx, v))),
    hostId,
  });
  try {
    const snapshot =
      v.snapshot_id === null
        ? undefined
        : await ctx.app.store.db
            .selectFrom('snapshots')
            .select(['path', 'image_store_id'])
            .where('id', '=', v.snapshot_id)
            .executeTakeFirst();
    if (snapshot) await stageSnapshot(ctx.app, snapshot);
    // An uploaded volume's file on secondary storage (staged first from a remote store) is copied
    // the way a snapshot backup is, Uploaded → Copying → Ready as upstream (back to Uploaded if
    // the copy fails).
    const uploaded = v.state === 'Uploaded' ? await stageUpload(ctx.app, v) : undefined;
    if (v.state === 'Uploaded') {
      if (!uploaded)
        throw invalidParameter(`The uploaded file of volume ${v.name} is no longer on secondary storage`);
      const r = await ctx.app.store.db.transaction().execute(async (tx) => {
        const claimed = await tx
          .updateTable('volumes')
          .set({ state: 'Copying' })
          .where('id', '=', v.id)
          .where('state', '=', 'Uploaded')
          .executeTakeFirst();
        if (Number(claimed.numUpdatedRows) === 1) await volumeMoved(ctx, tx, v, 'Copying', 'CopyRequested');
        return claimed;
      });
      if (Number(r.numUpdatedRows) !== 1)
        throw invalidParameter(`Volume ${v.name} is being copied to primary storage already`);
    }
    let made: { path: string; sizeBytes: number };
    try {
      // A managed pool's provider makes the volume's LUN first; the host fills or checks it.
      await prepareManagedVolume(ctx, pool, v, Number(v.size_bytes));
      made = await ctx.app.agents.call(hostId, 'createVolume', {
        volumeUuid: v.uuid,
        sizeBytes: Number(v.size_bytes),
        pool: poolLocation(pool),
        fromSnapshot: uploaded ?? snapshot?.path ?? undefined,
      });
    } catch (e) {
      if (uploaded)
        await ctx.app.store.db.transaction().execute(async (tx) => {
          await tx.updateTable('volumes').set({ state: 'Uploaded' }).where('id', '=', v.id).execute();
          await volumeMoved(ctx, tx, { uuid: v.uuid, state: 'Copying' }, 'Uploaded', 'CopyFailed');
        });
      throw e;
    }
    const changes = {
      pool_id: pool.id,
      path: made.path,
      physical_size_bytes: made.sizeBytes,
      state: 'Ready',
      ...(uploaded ? { image_store_id: null, store_path: null, upload_status: null } : {}),
    };
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx.updateTable('volumes').set(changes).where('id', '=', v.id).execute();
      await volumeMoved(
        ctx,
        tx,
        { uuid: v.uuid, state: uploaded ? 'Copying' : v.state },
        'Ready',
        uploaded ? 'CopySucceeded' : 'OperationSucceeded',
      );
      if (uploaded) await releaseUploadCount(ctx, tx, v);
    });
    // The copy on primary storage is the volume now; its upload (and a staged copy) is no longer
    // needed. The volume is Ready whatever happens here: a file left behind is only logged.
    if (uploaded)
      await dropUpload(ctx.app, v).catch((err) =>
        ctx.app.log.warn(
          { err, volume: v.uuid },
          'could not remove the upload of a volume copied to primary storage',
        ),
      );
    return { volume: { ...v, ...changes }, pool };
  } catch (e) {
    await releasePool(ctx.app.store.db, pool.id, Number(v.size_bytes));
    await discardManagedVolume(ctx, pool, v.uuid);
    throw e;
  }
}

/**
 * A volume job's objects: the volume, and the VM it is attached to, whose disks the job changes
 * too (so an attach never runs during that VM's migration, on any server).
 */
export async function volumeJobTarget(
  ctx: Pick<CallContext, 'app'>,
  volume: Pick<VolumeRow, 'uuid' | 'vm_id'>,
): Promise<JobTarget> {
  if (volume.vm_id === null) return { type: 'Volume', id: volume.uuid };
  const vm = await ctx.app.store.db
    .selectFrom('vms')
    .select('uuid')
    .where('id', '=', volume.vm_id)
    .executeTakeFirst();
  return { type: 'Volume', id: volume.uuid, with: vm ? [{ type: 'VirtualMachine', id: vm.uuid }] : [] };
}

export const createVolume = defineCommand({
  name: 'createVolume',
  description:
    'Creates a data disk from a disk offering, or from a volume snapshot, and attaches it when a VM is given. Asynchronous; the disk file is made on first use.',
  params: {
    name: p.string({
      description:
        'Name of the volume; defaults to DATA-<something unique> (DATA-<snapshot name> from a snapshot).',
    }),
    zoneid: p.uuid({
      description:
        "UUID of the zone for the volume; required unless snapshotid is given, then it must be the snapshot's zone.",
    }),
    diskofferingid: p.uuid({
      description:
        'UUID of the disk offering that sets size and storage type; required unless snapshotid is given.',
    }),
    size: p.long({
      description:
        "Size in GB for a customized disk offering (1 to 65536); from a snapshot, at least the snapshot's size.",
    }),
    snapshotid: p.uuid({
      description:
        'UUID of a volume snapshot to build the volume from; zoneid and diskofferingid become optional.',
    }),
    virtualmachineid: p.uuid({
      description:
        'UUID of a Running or Stopped VM of the same account and zone to attach the new volume to.',
    }),
    miniops: p.long({ description: 'Accepted for compatibility; Nimbostack ignores it (no IOPS limits).' }),
    maxiops: p.long({ description: 'Accepted for compatibility; Nimbostack ignores it (no IOPS limits).' }),
    displayvolume: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    account: p.string({
      description:
        "Name of the account that will own the volume (admins and domain admins); defaults to the caller's.",
    }),
    domainid: p.uuid({
      description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
    }),
    projectid: p.uuid({
      description: 'Project to own the volume (you must be a member, it must be Active); not with account.',
    }),
    customid: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: { type: 'VOLUME.CREATE', description: (params) => `creating volume ${params.name ?? ''}`.trim() },
  async create(ctx, params) {
    const { app } = ctx;
    if (params.snapshotid) return volumeFromSnapshot(ctx, { ...params, snapshotid: params.snapshotid });
    if (!params.zoneid)
      throw invalidParameter('Unable to execute API command createvolume due to missing parameter zoneid');
    if (!params.diskofferingid)
      throw invalidParameter(
        'Unable to execute API command createvolume due to missing parameter diskofferingid',
      );
    const zone = await findZone(ctx, params.zoneid);
    const owner = await ownerFor(ctx, params);
    const { offering, sizeBytes } = await dataDiskSize(ctx, params.diskofferingid, params.size);
    if (offering.storage_type === 'local' && !zone.local_storage_enabled)
      throw invalidParameter(
        `Zone is not configured to use local storage but volume's disk offering ${offering.name} uses it`,
      );
    const id = await app.store.db.transaction().execute(async (tx) => {
      const id = await insertVolume(ctx, tx, {
        name: params.name ?? `DATA-${Date.now().toString(36)}`,
        account: owner.account,
        zoneId: zone.id,
        type: 'DATADISK',
        sizeBytes,
        diskOfferingId: offering.id,
        provisioningType: offering.provisioning_type,
      });
      const uuid = (
        await tx.selectFrom('volumes').select('uuid').where('id', '=', id).executeTakeFirstOrThrow()
      ).uuid;
      await logEvent(ctx, tx, {
        type: 'VOLUME.CREATE',
        description: `created volume ${params.name ?? uuid} of ${sizeBytes / GiB} GB`,
        resourceType: 'Volume',
        resourceId: uuid,
      });
      return uuid;
    });
    // Attached by the job: it waits for the VM's other jobs too.
    const vm = params.virtualmachineid?.toLowerCase();
    return { type: 'Volume', id, with: vm ? [{ type: 'VirtualMachine', id: vm }] : [] };
  },
  async handler(ctx, params, created) {
    const volume = await findVolume(ctx, created!.id);
    if (params.virtualmachineid) return attach(ctx, volume, params.virtualmachineid, undefined);
    return presentVolume(ctx, volume.id);
  },
});

/**
 * A data disk holding a backed-up snapshot's content, of the snapshot's size, owned by the
 * snapshot's account, in its zone, with its volume's disk offering unless another is given.
 */
async function volumeFromSnapshot(
  ctx: CallContext,
  params: { snapshotid: string; name?: string; zoneid?: string; diskofferingid?: string; size?: number },
): Promise<JobTarget> {
  const snapshot = await findSnapshot(ctx, params.snapshotid);
  if (snapshot.state !== 'BackedUp')
    throw invalidParameter(
      `Snapshot ${snapshot.name} is ${snapshot.state}: only a backed-up snapshot makes a volume`,
    );
  if (params.zoneid && (await findZone(ctx, params.zoneid)).id !== snapshot.zone_id)
    throw invalidParameter(`Snapshot ${snapshot.name} is in another zone than ${params.zoneid}`);
  const sizeBytes = Number(snapshot.size_bytes);
  if (params.size !== undefined && params.size * GiB < sizeBytes)
    throw invalidParameter(`A volume from snapshot ${snapshot.name} needs at least ${sizeBytes / GiB} GB`);
  const db = ctx.app.store.db;
  const source = await db
    .selectFrom('volumes')
    .select(['disk_offering_id', 'provisioning_type'])
    .where('id', '=', snapshot.volume_id)
    .executeTakeFirstOrThrow();
  // The size is the snapshot's; another offering only changes how the disk is described.
  const offering = params.diskofferingid
    ? await db
        .selectFrom('disk_offerings')
        .selectAll()
        .where('uuid', '=', params.diskofferingid)
        .where('removed', 'is', null)
        .where('compute_only', '=', 0)
        .executeTakeFirst()
    : undefined;
  if (params.diskofferingid && !offering)
    throw invalidParameter(`Unable to find disk offering by id ${params.diskofferingid}`);
  return db.transaction().execute(async (tx) => {
    const account = await tx
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', snapshot.account_id)
      .executeTakeFirstOrThrow();
    const id = await insertVolume(ctx, tx, {
      name: params.name ?? `DATA-${snapshot.name}`,
      account,
      zoneId: snapshot.zone_id,
      type: 'DATADISK',
      sizeBytes,
      diskOfferingId: offering?.id ?? source.disk_offering_id,
      provisioningType: offering?.provisioning_type ?? source.provisioning_type,
      snapshotId: snapshot.id,
    });
    const uuid = (
      await tx.selectFrom('volumes').select('uuid').where('id', '=', id).executeTakeFirstOrThrow()
    ).uuid;
    await logEvent(ctx, tx, {
      type: 'VOLUME.CREATE',
      description: `created volume ${params.name ?? uuid} from snapshot ${snapshot.name}`,
      resourceType: 'Volume',
      resourceId: uuid,
    });
    return { type: 'Volume', id: uuid };
  });
}

async function attach(
  ctx: CallContext,
  volume: VolumeRow,
  vmUuid: string,
  deviceId: number | undefined,
): Promise<object> {
  const vm = await findOwned(ctx, 'vms', vmUuid, OWNED_VM_OR_DESTROYED);
  if (volume.type !== 'DATADISK') throw invalidParameter('Only data disks can be attached');
  if (volume.vm_id !== null) throw invalidParameter(`Volume ${volume.name} is already attached to a VM`);
  if (volume.account_id !== vm.account_id)
    throw invalidParameter('The volume and the VM belong to different accounts');
  if (volume.zone_id !== vm.zone_id) throw invalidParameter('The volume and the VM are in different zones');
  if (!['Running', 'Stopped'].includes(vm.state))
    throw invalidParameter(`Unable to attach a volume to VM ${vm.name}: it is ${vm.state}`);
  if (!['Allocated', 'Ready', 'Uploaded'].includes(volume.state))
    throw invalidParameter(
      `Volume ${volume.name} is ${volume.state}: only Allocated, Ready or Uploaded volumes can be attached${volume.upload_status && volume.state === 'UploadError' ? ` (${volume.upload_status})` : ''}`,
    );
  const db = ctx.app.store.db;
  const used = new Set(
    (
      await db
        .selectFrom('volumes')
        .select('device_id')
        .where('vm_id', '=', vm.id)
        .where('removed', 'is', null)
        .execute()
    ).map((r) => r.device_id),
  );
  if (deviceId !== undefined) {
    if (deviceId < 1 || deviceId === CDROM_DEVICE || deviceId > 15)
      throw invalidParameter(`Invalid device id ${deviceId}: use 1-15 except 3`);
    if (used.has(deviceId))
      throw invalidParameter(`Device id ${deviceId} is already in use on VM ${vm.name}`);
  }
  await checkLocalHost(ctx, volume, vm);
  let device = deviceId ?? 1;
  while (deviceId === undefined && (used.has(device) || device === CDROM_DEVICE)) device++;
  if (device > 15) throw invalidParameter(`VM ${vm.name} has no free device id for another disk`);
  let v = volume;
  if (vm.state === 'Running' && vm.host_id !== null) {
    const made = await materialiseDataDisk(ctx, volume, vm.host_id, vm.cluster_id);
    v = made.volume;
    const pool = made.pool ?? (await poolOf(ctx, v))!;
    await ctx.app.agents.call(vm.host_id, 'attachVolume', {
      vm: vm.instance_name,
      disk: { ...vmDisk(v, pool), deviceId: device },
    });
  }
  await db.transaction().execute(async (tx) => {
    await tx
      .updateTable('volumes')
      .set({ vm_id: vm.id, device_id: device, attached: ctx.app.clock.now() })
      .where('id', '=', v.id)
      .execute();
    await logEvent(ctx, tx, {
      type: 'VOLUME.ATTACH',
      description: `attached volume ${v.name} to VM ${vm.name}`,
      resourceType: 'Volume',
      resourceId: v.uuid,
    });
  });
  return presentVolume(ctx, v.id);
}

/** A disk on a host's local pool can only join a VM on that host (running there, or with its disks there). */
async function checkLocalHost(ctx: CallContext, volume: VolumeRow, vm: VmRow): Promise<void> {
  const pool = await poolOf(ctx, volume);
  if (pool?.scope !== 'HOST' || pool.host_id === null) return;
  const vmHost =
    (vm.state === 'Running' ? vm.host_id : null) ?? (await localPoolOfVm(ctx.app, vm.id))?.host_id ?? null;
  if (vmHost !== null && vmHost !== pool.host_id)
    throw invalidParameter(
      `Volume ${volume.name} is on the local storage of another host than VM ${vm.name}'s: it cannot be attached`,
    );
}

export const attachVolume = defineCommand({
  name: 'attachVolume',
  description:
    'Connects a data disk to a Running or Stopped VM of the same account and zone, hot-plugging it into a Running VM. Asynchronous.',
  params: {
    id: p.uuid({
      required: true,
      description: 'UUID of the data disk; it must be unattached and Allocated, Ready or Uploaded.',
    }),
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the VM to connect the disk to.' }),
    deviceid: p.long({
      description: 'Disk slot on the VM, 1 to 15 except 3 (the CD drive); the first free one when omitted.',
    }),
  },
  event: {
    type: 'VOLUME.ATTACH',
    description: (params) => `attaching volume ${params.id} to VM ${params.virtualmachineid}`,
  },
  async target(ctx, params) {
    const volume = await findVolume(ctx, params.id);
    const vm = await findOwned(ctx, 'vms', params.virtualmachineid, OWNED_VM_OR_DESTROYED);
    return { type: 'Volume', id: volume.uuid, with: [{ type: 'VirtualMachine', id: vm.uuid }] };
  },
  async handler(ctx, params) {
    return attach(ctx, await findVolume(ctx, params.id), params.virtualmachineid, params.deviceid);
  },
});

export const detachVolume = defineCommand({
  name: 'detachVolume',
  description:
    'Disconnects a data disk from its VM, hot-unplugging it from a Running VM; ROOT disks cannot be detached. Asynchronous.',
  params: {
    id: p.uuid({ description: 'UUID of the attached data disk (required by Nimbostack).' }),
    virtualmachineid: p.uuid({
      description:
        'Accepted for compatibility; Nimbostack ignores it and uses the VM the volume is attached to.',
    }),
    deviceid: p.long({ description: 'Accepted for compatibility; Nimbostack ignores it (give id).' }),
  },
  event: { type: 'VOLUME.DETACH', description: (params) => `detaching volume ${params.id ?? ''}` },
  async target(ctx, params) {
    if (!params.id)
      throw invalidParameter('Unable to execute API command detachvolume due to missing parameter id');
    return volumeJobTarget(ctx, await findVolume(ctx, params.id));
  },
  async handler(ctx, params) {
    const volume = await findVolume(ctx, params.id!);
    if (volume.vm_id === null) throw invalidParameter(`Volume ${volume.name} is not attached to any VM`);
    if (volume.type === 'ROOT') throw invalidParameter('The ROOT volume of a VM cannot be detached');
    const db = ctx.app.store.db;
    const vm = await db
      .selectFrom('vms')
      .selectAll()
      .where('id', '=', volume.vm_id)
      .executeTakeFirstOrThrow();
    if (!['Running', 'Stopped'].includes(vm.state))
      throw invalidParameter(`Unable to detach a volume from VM ${vm.name}: it is ${vm.state}`);
    if (vm.state === 'Running' && vm.host_id !== null && volume.path) {
      const pool = (await poolOf(ctx, volume))!;
      await ctx.app.agents.call(vm.host_id, 'detachVolume', {
        vm: vm.instance_name,
        disk: vmDisk(volume, pool),
      });
    }
    await db.transaction().execute(async (tx) => {
      await tx
        .updateTable('volumes')
        .set({ vm_id: null, device_id: null, attached: null })
        .where('id', '=', volume.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VOLUME.DETACH',
        description: `detached volume ${volume.name} from VM ${vm.name}`,
        resourceType: 'Volume',
        resourceId: volume.uuid,
      });
    });
    return presentVolume(ctx, volume.id);
  },
});

export const resizeVolume = defineCommand({
  name: 'resizeVolume',
  description:
    "Changes a volume's size, directly or through another disk offering, on its pool and against the owner's primary storage limit. Asynchronous; shrinking needs shrinkok.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the volume to resize.' }),
    size: p.long({ description: 'New size in GB; with diskofferingid only for a customized offering.' }),
    diskofferingid: p.uuid({
      description:
        "UUID of a disk offering whose size (or, if customized, size) the volume takes; it becomes the volume's offering.",
    }),
    shrinkok: p.boolean({ description: 'Must be true to make the volume smaller; default false.' }),
    miniops: p.long({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    maxiops: p.long({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    automigrate: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: { type: 'VOLUME.RESIZE', description: (params) => `resizing volume ${params.id}` },
  async target(ctx, params) {
    return volumeJobTarget(ctx, await findVolume(ctx, params.id));
  },
  async handler(ctx, params) {
    const volume = await findVolume(ctx, params.id);
    let newSize: number;
    let offeringId = volume.disk_offering_id;
    if (params.diskofferingid) {
      const { offering, sizeBytes } = await dataDiskSize(ctx, params.diskofferingid, params.size);
      newSize = sizeBytes;
      offeringId = offering.id;
    } else if (params.size !== undefined) {
      checkSizeGb(params.size);
      newSize = params.size * GiB;
    } else {
      throw invalidParameter('Either size or diskofferingid must be given');
    }
    const current = Number(volume.size_bytes);
    if (newSize < current && !params.shrinkok)
      throw invalidParameter(
        `Shrinking volume ${volume.name} from ${current / GiB} GB to ${newSize / GiB} GB needs shrinkok=true`,
      );
    if (volume.path) {
      const pool = (await poolOf(ctx, volume))!;
      const vm =
        volume.vm_id === null
          ? undefined
          : await ctx.app.store.db
              .selectFrom('vms')
              .selectAll()
              .where('id', '=', volume.vm_id)
              .executeTakeFirst();
      const running = vm?.state === 'Running' && vm.host_id !== null;
      // A LUN is cut on the storage server before QEMU learns of it: a guest write past the new
      // end meanwhile would grow the file again (docs/storage.md, managed iSCSI).
      if (running && newSize < current && isManaged(pool))
        throw invalidParameter(
          `Volume ${volume.name} is a LUN of managed storage pool ${pool.name} in use by running VM ${vm.name}: stop the VM or detach the volume to shrink it`,
        );
      // The provider sets the LUN's size first; then the host sees it (QEMU's block_resize live).
      await resizeManagedVolume(ctx, pool, { name: volume.name, path: volume.path }, newSize);
      const hostId = running ? vm.host_id! : await hostForPool(ctx, pool);
      await ctx.app.agents.call(hostId, 'resizeVolume', {
        path: volume.path,
        pool: poolLocation(pool),
        newSizeBytes: newSize,
        shrinkOk: params.shrinkok ?? false,
      });
    }
    await ctx.app.store.db.transaction().execute(async (tx) => {
      const account = await tx
        .selectFrom('accounts')
        .selectAll()
        .where('id', '=', volume.account_id)
        .executeTakeFirstOrThrow();
      await reserve(
        ctx,
        tx,
        account,
        ResourceKind.PrimaryStorage,
        Math.ceil(newSize / GiB) - Math.ceil(current / GiB),
      );
      if (volume.pool_id !== null) {
        await tx
          .updateTable('storage_pools')
          .set((eb) => ({ allocated_bytes: eb('allocated_bytes', '+', newSize - current) }))
          .where('id', '=', volume.pool_id)
          .execute();
      }
      await tx
        .updateTable('volumes')
        .set({ size_bytes: newSize, disk_offering_id: offeringId })
        .where('id', '=', volume.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VOLUME.RESIZE',
        description: `resized volume ${volume.name} to ${newSize / GiB} GB`,
        resourceType: 'Volume',
        resourceId: volume.uuid,
      });
    });
    return presentVolume(ctx, volume.id);
  },
});

export const deleteVolume = defineCommand({
  name: 'deleteVolume',
  description:
    "Deletes a detached data disk, its file on the pool and its tags, and gives its size back to the owner's limits; ROOT disks go with their VM.",
  params: { id: p.uuid({ required: true, description: 'UUID of the detached volume to delete.' }) },
  async handler(ctx, params) {
    const volume = await findVolume(ctx, params.id);
    if (volume.type === 'ROOT') throw invalidParameter('A ROOT volume is deleted with its VM');
    if (volume.vm_id !== null)
      throw resourceInUse(`Volume ${volume.name} is attached to a VM: detach it first`);
    await deleteOnPool(ctx, volume);
    abortUpload(volume.id);
    // Its file on secondary storage goes first: a store that refuses leaves the volume (530).
    await dropUpload(ctx.app, volume);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await removeVolumeRecord(ctx, tx, volume);
      if (volume.state === 'Uploaded') await releaseUploadCount(ctx, tx, volume);
      await tx
        .deleteFrom('resource_tags')
        .where('resource_type', '=', 'Volume')
        .where('resource_id', '=', volume.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VOLUME.DELETE',
        description: `deleted volume ${volume.name}`,
        resourceType: 'Volume',
        resourceId: volume.uuid,
      });
    });
    return success();
  },
});

export const listVolumes = defineCommand({
  name: 'listVolumes',
  description: 'Lists the volumes (ROOT and data disks) the caller may see, filtered by the given criteria.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the volume with this UUID.' }),
    ids: p.list({ of: 'uuid', description: 'Only volumes with these UUIDs (comma-separated).' }),
    name: p.string({ description: 'Only volumes with exactly this name.' }),
    type: p.string({ description: 'Only volumes of this type: ROOT or DATADISK (case-insensitive).' }),
    state: p.string({
      description: 'Only volumes in this state, such as Allocated, Ready or Uploaded (case-insensitive).',
    }),
    zoneid: p.uuid({ description: 'Only volumes in this zone.' }),
    podid: p.uuid({ description: 'Only volumes on primary storage pools of this pod.' }),
    clusterid: p.uuid({ description: 'Only volumes on primary storage pools of this cluster.' }),
    hostid: p.uuid({ description: 'Only volumes attached to VMs on this host.' }),
    storageid: p.string({ description: 'Only volumes on the primary storage pool with this UUID.' }),
    diskofferingid: p.uuid({ description: 'Only volumes made from this disk offering.' }),
    serviceofferingid: p.uuid({
      description:
        "Only volumes made from this service offering's disk offering (its VMs' ROOT disks); diskofferingid wins when both are given.",
    }),
    virtualmachineid: p.uuid({ description: 'Only volumes attached to this VM.' }),
    displayvolume: p.boolean({
      description: 'Only volumes shown (true) or hidden (false) from their owner.',
    }),
    account: p.string({
      description:
        "Only volumes of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only volumes in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include volumes of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include volumes of every account they may see.',
    }),
    projectid: p.projectScope({
      description:
        "Only this project's volumes (you must be a member or administer it); -1: those of every project you may see.",
    }),
    tags: p.map({
      description: 'Only volumes carrying all these tags (tags[0].key=..., tags[0].value=...).',
    }),
    listsystemvms: p.boolean({
      description: 'Accepted for compatibility; system VMs have no volumes in Nimbostack, so it is ignored.',
    }),
    isencrypted: p.boolean({
      description: 'Nimbostack has no volume encryption: true lists nothing, false lists every volume.',
    }),
    retrieveonlyresourcecount: p.boolean({
      description: 'When true, only the count is returned, with no volume entries.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('volumes').where('volumes.removed', 'is', null);
    if (params.id) q = q.where('volumes.uuid', '=', params.id);
    if (params.ids) q = q.where('volumes.uuid', 'in', params.ids);
    if (params.name) q = q.where('volumes.name', '=', params.name);
    if (params.type) q = q.where('volumes.type', '=', params.type.toUpperCase());
    const state = params.state?.toLowerCase();
    if (state) q = q.where((eb) => eb(eb.fn('lower', ['volumes.state']), '=', state));
    if (params.displayvolume !== undefined)
      q = q.where('volumes.display_volume', '=', params.displayvolume ? 1 : 0);
    // As upstream: no volume has an encryption format, so only isencrypted=true narrows (to none).
    if (params.isencrypted) q = q.where('volumes.id', 'is', null);
    if (params.podid || params.clusterid) {
      let pools = db.selectFrom('storage_pools').select('storage_pools.id');
      if (params.podid)
        pools = pools.where(
          'pod_id',
          'in',
          db.selectFrom('pods').select('id').where('uuid', '=', params.podid),
        );
      if (params.clusterid)
        pools = pools.where(
          'cluster_id',
          'in',
          db.selectFrom('clusters').select('id').where('uuid', '=', params.clusterid),
        );
      q = q.where('volumes.pool_id', 'in', pools);
    }
    if (params.serviceofferingid && !params.diskofferingid)
      q = q.where(
        'volumes.disk_offering_id',
        'in',
        db
          .selectFrom('service_offerings')
          .select('disk_offering_id')
          .where('uuid', '=', params.serviceofferingid),
      );
    if (params.zoneid)
      q = q.where(
        'volumes.zone_id',
        'in',
        db.selectFrom('zones').select('id').where('uuid', '=', params.zoneid),
      );
    if (params.virtualmachineid)
      q = q.where(
        'volumes.vm_id',
        'in',
        db.selectFrom('vms').select('id').where('uuid', '=', params.virtualmachineid),
      );
    if (params.diskofferingid)
      q = q.where(
        'volumes.disk_offering_id',
        'in',
        db.selectFrom('disk_offerings').select('id').where('uuid', '=', params.diskofferingid),
      );
    if (params.storageid)
      q = q.where(
        'volumes.pool_id',
        'in',
        db.selectFrom('storage_pools').select('id').where('uuid', '=', params.storageid),
      );
    if (params.hostid)
      q = q.where(
        'volumes.vm_id',
        'in',
        db
          .selectFrom('vms')
          .innerJoin('hosts', 'hosts.id', 'vms.host_id')
          .select('vms.id')
          .where('hosts.uuid', '=', params.hostid),
      );
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'volumes.name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    q = withTags(q, 'Volume', 'volumes.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'volumes.account_id', domain: 'volumes.domain_id' },
      rows: (scoped, page) => paginate(scoped.selectAll('volumes').orderBy('volumes.id'), page).execute(),
      present: (rows) => presentVolumes(ctx, rows),
    });
  },
});

registerTaggable('Volume', async (ctx, uuid) => {
  const v = await ctx.app.store.db
    .selectFrom('volumes')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return v && { id: v.id, accountId: v.account_id, domainId: v.domain_id };
});

registerResourceCounter(ResourceKind.Volume, async (tx, accountId) => {
  const r = await tx
    .selectFrom('volumes')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('account_id', '=', accountId)
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
});

registerResourceCounter(ResourceKind.PrimaryStorage, async (tx, accountId) => {
  const rows = await tx
    .selectFrom('volumes')
    .select('size_bytes')
    .where('account_id', '=', accountId)
    .where('removed', 'is', null)
    .execute();
  return rows.reduce((sum, r) => sum + Math.ceil(Number(r.size_bytes) / GiB), 0);
});

onStoragePoolDelete(async (app, pool) => {
  const used = await app.store.db
    .selectFrom('volumes')
    .select('id')
    .where('pool_id', '=', pool.id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return used ? `Primary storage ${pool.name} still holds volumes` : undefined;
});

/** Data disks of a deleted account (its VMs and their ROOT disks are removed by compute first). */
onAccountDelete(async (ctx, account) => {
  const left = await ctx.app.store.db
    .selectFrom('volumes')
    .selectAll()
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .execute();
  for (const v of left) {
    await deleteOnPool(ctx, v);
    abortUpload(v.id);
    await dropUpload(ctx.app, v);
    await ctx.app.store.db.transaction().execute((tx) => removeVolumeRecord(ctx, tx, v));
  }
});

export const volumeCommands = [
  createVolume,
  attachVolume,
  detachVolume,
  resizeVolume,
  deleteVolume,
  listVolumes,
];
