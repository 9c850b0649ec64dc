/**
 * Volume snapshots: taken by a host that reaches the volume's pool and backed up to the zone's
 * image store (Allocated → Creating → BackedUp, or Error), listed, reverted onto a stopped VM's
 * volume, turned into volumes (storage/volumes.ts) and templates, and deleted. Snapshots outlive
 * their volume, as upstream keeps them.
 */

import { rm } from 'node:fs/promises';
import { formatDate } from '../clock.ts';
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { AccountRow, SnapshotRow, StoragePoolRow, VolumeRow } from '../db/schema.ts';
import { internalError, invalidParameter, resourceUnavailable } from '../errors.ts';
import { type EventOwner, logEvent, recordEvent } from '../events/events.ts';
import { recordStateChange } from '../events/state-events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { ResourceKind, registerResourceCounter, reserve } from '../iam/limits.ts';
import { listOwned } from '../iam/owned.ts';
import { onImageStoreDelete } from '../infra/image-stores.ts';
import { onStoragePoolDelete } from '../infra/storage-pools.ts';
import { onRecovery } from '../jobs/recovery.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import { storageGiB } from './images.ts';
import { deleteFiles, isRemoteStore, publishStaged, storeReason } from './remote-stores.ts';
import {
  findSnapshot,
  snapshotOnRemoteStore,
  stagedKey,
  stageSnapshot,
  storeLocation,
} from './snapshot-records.ts';
import { zoneStores } from './templates.ts';
import { hostForPool, poolLocation, poolOf } from './volume-ops.ts';
import { findVolume, volumeJobTarget } from './volumes.ts';

export const INTERVALS = ['HOURLY', 'DAILY', 'WEEKLY', 'MONTHLY'] as const;
export type Interval = (typeof INTERVALS)[number];

/** Whole GiB of secondary storage a snapshot holds in its owner's count, by state. */
function heldGiB(s: Pick<SnapshotRow, 'state' | 'size_bytes' | 'physical_size_bytes'>): number {
  if (s.state === 'BackedUp') return storageGiB(s.physical_size_bytes);
  if (s.state === 'Allocated' || s.state === 'Creating') return storageGiB(s.size_bytes);
  return 0;
}

async function accountOf(tx: Tx, id: number): Promise<AccountRow | undefined> {
  return tx.selectFrom('accounts').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Events of work nobody asked for right now (the scheduler) go to the owner's first user. */
export async function ownerOfAccount(tx: Tx, account: AccountRow): Promise<EventOwner> {
  const user = await tx
    .selectFrom('users')
    .select('id')
    .where('account_id', '=', account.id)
    .orderBy('id')
    .executeTakeFirst();
  return { userId: user?.id ?? 1, accountId: account.id, domainId: account.domain_id };
}

/** Why a volume cannot be snapshotted now, or undefined. */
export async function snapshotRefusal(app: App, volume: VolumeRow): Promise<string | undefined> {
  if (!volume.path || volume.pool_id === null)
    return `Volume ${volume.name} has no disk yet (it is ${volume.state}): attach it to a running VM first`;
  if (volume.vm_id === null) return undefined;
  const vm = await app.store.db
    .selectFrom('vms')
    .select(['name', 'state'])
    .where('id', '=', volume.vm_id)
    .executeTakeFirstOrThrow();
  if (!['Running', 'Stopped'].includes(vm.state))
    return `VM ${vm.name} of volume ${volume.name} is ${vm.state}: snapshots need it Running or Stopped`;
  return undefined;
}

/**
 * Records an Allocated snapshot, counting it and the volume's size of secondary storage against
 * the owner's limits (535 over a limit) and logging SNAPSHOT.CREATE, in the caller's transaction.
 */
export async function insertSnapshot(
  app: App,
  tx: Tx,
  volume: VolumeRow,
  opts: { name?: string; policyId?: number; interval?: Interval; owner?: EventOwner; ctx?: CallContext },
): Promise<SnapshotRow> {
  const account = await accountOf(tx, volume.account_id);
  if (!account) throw invalidParameter(`The owner of volume ${volume.name} is gone`);
  await reserve({ app }, tx, account, ResourceKind.Snapshot, 1);
  await reserve({ app }, tx, account, ResourceKind.SecondaryStorage, storageGiB(volume.size_bytes));
  const vm =
    volume.vm_id === null
      ? undefined
      : await tx.selectFrom('vms').select('name').where('id', '=', volume.vm_id).executeTakeFirst();
  const stamp = new Date(app.clock.now()).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const name = opts.name ?? `${vm ? `${vm.name}_` : ''}${volume.name}_${stamp}`;
  const id = await insertId(app.store, tx, 'snapshots', {
    uuid: app.ids.uuid(),
    name,
    account_id: volume.account_id,
    domain_id: volume.domain_id,
    zone_id: volume.zone_id,
    volume_id: volume.id,
    policy_id: opts.policyId ?? null,
    snapshot_type: opts.interval ? 'RECURRING' : 'MANUAL',
    interval_type: opts.interval ?? 'MANUAL',
    state: 'Allocated',
    path: null,
    pool_id: volume.pool_id,
    image_store_id: null,
    size_bytes: Number(volume.size_bytes),
    physical_size_bytes: null,
    created: app.clock.now(),
    removed: null,
  });
  const row = await tx.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const event = {
    type: 'SNAPSHOT.CREATE',
    description: `created snapshot ${name} of volume ${volume.name}`,
    resourceType: 'Snapshot',
    resourceId: row.uuid,
  };
  if (opts.ctx) await logEvent(opts.ctx, tx, event);
  else await recordEvent({ app }, tx, opts.owner ?? (await ownerOfAccount(tx, account)), event);
  return row;
}

/** The host to run a volume's snapshot commands: its VM's while running, else any that reaches the pool. */
async function hostForVolume(app: App, volume: VolumeRow, pool: StoragePoolRow): Promise<number> {
  if (volume.vm_id !== null) {
    const vm = await app.store.db
      .selectFrom('vms')
      .select(['state', 'host_id'])
      .where('id', '=', volume.vm_id)
      .executeTakeFirst();
    if (vm?.state === 'Running' && vm.host_id !== null) return vm.host_id;
  }
  return hostForPool({ app }, pool);
}

/** Publishes a snapshot's state move on the event bus, as upstream's snapshot state listener. */
function snapshotMoved(
  app: App,
  tx: Tx,
  snap: Pick<SnapshotRow, 'uuid' | 'state'>,
  next: string,
  event: string,
) {
  return recordStateChange({ app }, tx, {
    resource: 'Snapshot',
    uuid: snap.uuid,
    event,
    oldState: snap.state,
    newState: next,
  });
}

async function failSnapshot(app: App, snap: SnapshotRow): Promise<void> {
  await app.store.db.transaction().execute(async (tx) => {
    await tx.updateTable('snapshots').set({ state: 'Error' }).where('id', '=', snap.id).execute();
    await snapshotMoved(app, tx, snap, 'Error', 'OperationFailed');
    const account = await accountOf(tx, snap.account_id);
    if (account) await reserve({ app }, tx, account, ResourceKind.SecondaryStorage, -heldGiB(snap));
  });
}

/**
 * Snapshots a dead job left Allocated or Creating fail: whatever the host made is not trusted. A
 * dead server's: those its jobs held, and those of the volumes it held (a recurring snapshot).
 */
onRecovery(async (app, scope) => {
  const snaps = scope?.ids('Snapshot') ?? [];
  const volumes = scope?.ids('Volume') ?? [];
  if (scope && snaps.length === 0 && volumes.length === 0) return { settled: 0, pending: false };
  let q = app.store.db
    .selectFrom('snapshots')
    .selectAll()
    .where('state', 'in', ['Allocated', 'Creating'])
    .where('removed', 'is', null);
  if (scope)
    q = q.where((eb) =>
      eb.or([
        eb('uuid', 'in', [...snaps, '']),
        eb(
          'volume_id',
          'in',
          eb
            .selectFrom('volumes')
            .select('id')
            .where('uuid', 'in', [...volumes, '']),
        ),
      ]),
    );
  const left = await q.execute();
  for (const snap of left) await failSnapshot(app, snap);
  return { settled: left.length, pending: false };
});

/**
 * Takes an Allocated snapshot through the agent and backs it up to the zone's roomiest image store
 * (or keeps it on the pool where the zone has none). Failures leave it in Error, uncounted.
 */
export async function takeSnapshot(app: App, snap: SnapshotRow): Promise<SnapshotRow> {
  const db = app.store.db;
  const claimed = await db.transaction().execute(async (tx) => {
    const r = await tx
      .updateTable('snapshots')
      .set({ state: 'Creating' })
      .where('id', '=', snap.id)
      .where('state', '=', 'Allocated')
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 1) await snapshotMoved(app, tx, snap, 'Creating', 'CreateRequested');
    return r;
  });
  if (Number(claimed.numUpdatedRows) !== 1) throw invalidParameter(`Snapshot ${snap.name} is not Allocated`);
  const creating = { ...snap, state: 'Creating' };
  let taken: {
    path: string;
    sizeBytes: number;
    storeId: number | null;
    pool: StoragePoolRow;
    hostId: number;
  };
  try {
    const volume = await db
      .selectFrom('volumes')
      .selectAll()
      .where('id', '=', snap.volume_id)
      .executeTakeFirstOrThrow();
    const refusal = volume.removed === null ? await snapshotRefusal(app, volume) : 'the volume was deleted';
    if (refusal) throw invalidParameter(refusal);
    const pool = (await poolOf({ app }, volume))!;
    const hostId = await hostForVolume(app, volume, pool);
    const store = (await zoneStores(db, volume.zone_id))[0];
    const vm =
      volume.vm_id === null
        ? undefined
        : await db
            .selectFrom('vms')
            .select(['instance_name', 'state'])
            .where('id', '=', volume.vm_id)
            .executeTakeFirst();
    const made = await app.agents.call(hostId, 'createSnapshot', {
      snapshotUuid: snap.uuid,
      volumePath: volume.path!,
      pool: poolLocation(pool),
      vm: vm?.state === 'Running' ? vm.instance_name : undefined,
      secondary: store ? await storeLocation(store) : undefined,
    });
    // A remote store's backup was written to its staging directory: it goes to the store, then the
    // local copy goes.
    const key = store && isRemoteStore(store) ? stagedKey(store, made.path) : undefined;
    if (store && key) {
      try {
        await publishStaged(app, store, key);
      } catch (e) {
        await rm(made.path, { force: true });
        throw internalError(
          `Could not upload snapshot ${snap.name} to image store ${store.name}: ${storeReason(e)}`,
        );
      }
    }
    taken = { path: made.path, sizeBytes: made.sizeBytes, storeId: store?.id ?? null, pool, hostId };
  } catch (e) {
    await failSnapshot(app, creating);
    throw e;
  }
  try {
    await db.transaction().execute(async (tx) => {
      const account = await accountOf(tx, snap.account_id);
      const backedUp = { state: 'BackedUp', physical_size_bytes: taken.sizeBytes };
      // The volume's size was reserved up front; the backup's real size replaces it.
      if (account)
        await reserve(
          { app },
          tx,
          account,
          ResourceKind.SecondaryStorage,
          heldGiB({ ...snap, ...backedUp }) - heldGiB(creating),
        );
      await tx
        .updateTable('snapshots')
        .set({ ...backedUp, path: taken.path, pool_id: taken.pool.id, image_store_id: taken.storeId })
        .where('id', '=', snap.id)
        .execute();
      await snapshotMoved(app, tx, creating, 'BackedUp', 'OperationSucceeded');
    });
  } catch (e) {
    // Over the secondary storage limit after all: the backup goes.
    await app.agents
      .call(taken.hostId, 'deleteSnapshot', { path: taken.path, pool: poolLocation(taken.pool) })
      .catch((err) =>
        app.log.warn({ err, snapshot: snap.uuid }, 'could not delete a refused snapshot backup'),
      );
    await failSnapshot(app, creating);
    throw e;
  }
  return db.selectFrom('snapshots').selectAll().where('id', '=', snap.id).executeTakeFirstOrThrow();
}

/** Where a snapshot's backup is reachable: its store (the path is absolute) or its pool. */
async function snapshotHost(app: App, snap: SnapshotRow): Promise<{ hostId: number; pool: StoragePoolRow }> {
  const pool = await poolOf({ app }, snap);
  if (!pool) throw resourceUnavailable(`The primary storage of snapshot ${snap.name} is gone`);
  return { hostId: await hostForPool({ app }, pool), pool };
}

/** Deletes a snapshot's backup and record, giving back the owner's counts. */
export async function destroySnapshot(
  app: App,
  snap: SnapshotRow,
  event: { ctx?: CallContext; owner?: EventOwner },
): Promise<void> {
  const onRemoteStore = await snapshotOnRemoteStore(app, snap);
  if (onRemoteStore) await deleteFiles(app, onRemoteStore.store, [onRemoteStore.key]);
  else if (snap.path) {
    const { hostId, pool } = await snapshotHost(app, snap);
    await app.agents.call(hostId, 'deleteSnapshot', { path: snap.path, pool: poolLocation(pool) });
  }
  await app.store.db.transaction().execute(async (tx) => {
    await tx
      .updateTable('snapshots')
      .set({ state: 'Destroyed', removed: app.clock.now() })
      .where('id', '=', snap.id)
      .execute();
    await snapshotMoved(app, tx, snap, 'Destroyed', 'DestroyRequested');
    await tx
      .deleteFrom('resource_tags')
      .where('resource_type', '=', 'Snapshot')
      .where('resource_id', '=', snap.id)
      .execute();
    const account = await accountOf(tx, snap.account_id);
    if (!account) return;
    await reserve({ app }, tx, account, ResourceKind.Snapshot, -1);
    await reserve({ app }, tx, account, ResourceKind.SecondaryStorage, -heldGiB(snap));
    const e = {
      type: 'SNAPSHOT.DELETE',
      description: `deleted snapshot ${snap.name}`,
      resourceType: 'Snapshot',
      resourceId: snap.uuid,
    };
    if (event.ctx) await logEvent(event.ctx, tx, e);
    else await recordEvent({ app }, tx, event.owner ?? (await ownerOfAccount(tx, account)), e);
  });
}

export async function presentSnapshots(ctx: CallContext, rows: SnapshotRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = (key: keyof SnapshotRow) => [
    ...new Set(rows.map((r) => r[key]).filter((x): x is number => typeof x === 'number')),
  ];
  const storeIds = ids('image_store_id');
  const [accounts, domains, zones, volumes, stores, tags] = await Promise.all([
    db.selectFrom('accounts').select(['id', 'name']).where('id', 'in', ids('account_id')).execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', ids('domain_id'))
      .execute(),
    db.selectFrom('zones').select(['id', 'uuid', 'name']).where('id', 'in', ids('zone_id')).execute(),
    db
      .selectFrom('volumes')
      .select(['id', 'uuid', 'name', 'type', 'state', 'removed'])
      .where('id', 'in', ids('volume_id'))
      .execute(),
    storeIds.length
      ? db.selectFrom('image_stores').select(['id', 'uuid', 'name']).where('id', 'in', storeIds).execute()
      : Promise.resolve([]),
    tagsOf(
      ctx,
      'Snapshot',
      rows.map((r) => r.id),
    ),
  ]);
  const by = <T extends { id: number }>(list: T[]) => new Map(list.map((x) => [x.id, x]));
  const [account, domain, zone, volume, store] = [
    by(accounts),
    by(domains),
    by(zones),
    by(volumes),
    by(stores),
  ];
  const isAdmin = ctx.caller.roleKind === 'admin';
  return rows.map((s) => {
    const d = domain.get(s.domain_id)!;
    const v = volume.get(s.volume_id);
    const z = zone.get(s.zone_id);
    const st = s.image_store_id === null ? undefined : store.get(s.image_store_id);
    return {
      id: s.uuid,
      name: s.name,
      account: account.get(s.account_id)?.name,
      domainid: d.uuid,
      domain: d.name,
      domainpath: displayPath(d.path),
      volumeid: v?.uuid,
      volumename: v?.name,
      volumetype: v?.type,
      volumestate: v ? (v.removed === null ? v.state : 'Expunged') : undefined,
      snapshottype: s.snapshot_type,
      intervaltype: s.interval_type,
      state: s.state,
      physicalsize: s.physical_size_bytes === null ? 0 : Number(s.physical_size_bytes),
      virtualsize: Number(s.size_bytes),
      zoneid: z?.uuid,
      zonename: z?.name,
      locationtype: st ? 'SECONDARY' : 'PRIMARY',
      ...(isAdmin && st
        ? { datastoreid: st.uuid, datastorename: st.name, datastoretype: 'Image', datastorestate: 'Ready' }
        : {}),
      created: formatDate(s.created),
      // A snapshot can be reverted onto the volume it was taken of while that volume exists.
      revertable: s.state === 'BackedUp' && v !== undefined && v.removed === null,
      tags: tags.get(s.id) ?? [],
    };
  });
}

async function presentSnapshot(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('snapshots')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentSnapshots(ctx, [row]))[0];
}

export const createSnapshot = defineCommand({
  name: 'createSnapshot',
  description:
    "Copies a volume's current disk to secondary storage as a snapshot, counted against the owner's snapshot and secondary storage limits. Asynchronous; the volume's VM must be Running or Stopped.",
  params: {
    volumeid: p.uuid({
      required: true,
      description: 'UUID of the volume to snapshot; it must already have a disk on primary storage.',
    }),
    name: p.string({ description: 'Name of the snapshot; defaults to <vm>_<volume>_<timestamp>.' }),
  },
  event: {
    type: 'SNAPSHOT.CREATE',
    description: (params) => `taking a snapshot of volume ${params.volumeid}`,
  },
  async create(ctx, params) {
    const volume = await findVolume(ctx, params.volumeid);
    const refusal = await snapshotRefusal(ctx.app, volume);
    if (refusal) throw invalidParameter(refusal);
    const snap = await ctx.app.store.db
      .transaction()
      .execute((tx) => insertSnapshot(ctx.app, tx, volume, { name: params.name, ctx }));
    // The job also holds the volume and its VM: no detach, resize or migration meanwhile.
    return { type: 'Snapshot', id: snap.uuid, with: [await volumeJobTarget(ctx, volume)] };
  },
  async handler(ctx, _params, created) {
    const snap = await findSnapshot(ctx, created!.id);
    return presentSnapshot(ctx, (await takeSnapshot(ctx.app, snap)).id);
  },
});

export const listSnapshots = defineCommand({
  name: 'listSnapshots',
  description: 'Lists the volume snapshots the caller may see, newest first.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the snapshot with this UUID.' }),
    ids: p.list({ of: 'uuid', description: 'Only snapshots with these UUIDs (comma-separated).' }),
    name: p.string({ description: 'Only snapshots with exactly this name.' }),
    volumeid: p.uuid({ description: 'Only snapshots of this volume.' }),
    snapshottype: p.string({
      description: 'Only snapshots of this kind: MANUAL or RECURRING (taken by a policy); case-insensitive.',
    }),
    intervaltype: p.string({
      description:
        'Only snapshots taken on this schedule: MANUAL, HOURLY, DAILY, WEEKLY or MONTHLY; case-insensitive.',
    }),
    zoneid: p.uuid({ description: 'Only snapshots in this zone.' }),
    tags: p.map({
      description: 'Only snapshots carrying all these tags (tags[0].key=..., tags[0].value=...).',
    }),
    account: p.string({
      description:
        "Only snapshots of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only snapshots in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include snapshots of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include snapshots of every account they may see.',
    }),
    projectid: p.projectScope({
      description:
        "Only this project's snapshots (you must be a member or administer it); -1: those of every project you may see.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('snapshots').where('snapshots.removed', 'is', null);
    if (params.id) q = q.where('snapshots.uuid', '=', params.id);
    if (params.ids) q = q.where('snapshots.uuid', 'in', params.ids);
    if (params.name) q = q.where('snapshots.name', '=', params.name);
    if (params.snapshottype) q = q.where('snapshots.snapshot_type', '=', params.snapshottype.toUpperCase());
    if (params.intervaltype) q = q.where('snapshots.interval_type', '=', params.intervaltype.toUpperCase());
    if (params.volumeid)
      q = q.where(
        'snapshots.volume_id',
        'in',
        db.selectFrom('volumes').select('id').where('uuid', '=', params.volumeid),
      );
    if (params.zoneid)
      q = q.where(
        'snapshots.zone_id',
        'in',
        db.selectFrom('zones').select('id').where('uuid', '=', params.zoneid),
      );
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'snapshots.name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    q = withTags(q, 'Snapshot', 'snapshots.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'snapshots.account_id', domain: 'snapshots.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped.selectAll('snapshots').orderBy('snapshots.created', 'desc').orderBy('snapshots.id', 'desc'),
          page,
        ).execute(),
      present: (rows) => presentSnapshots(ctx, rows),
    });
  },
});

export const deleteSnapshot = defineCommand({
  name: 'deleteSnapshot',
  description:
    "Deletes a volume snapshot and its file on secondary storage, giving its size back to the owner's limits. Asynchronous.",
  params: { id: p.uuid({ required: true, description: 'UUID of the snapshot to delete.' }) },
  event: { type: 'SNAPSHOT.DELETE', description: (params) => `deleting snapshot ${params.id}` },
  async target(ctx, params) {
    await findSnapshot(ctx, params.id);
    return { type: 'Snapshot', id: params.id };
  },
  async handler(ctx, params) {
    await destroySnapshot(ctx.app, await findSnapshot(ctx, params.id), { ctx });
    return success();
  },
});

export const revertSnapshot = defineCommand({
  name: 'revertSnapshot',
  description:
    "Rolls a volume's disk back to a backed-up snapshot of it. Asynchronous; the VM must be Stopped and the volume not resized since the snapshot.",
  params: { id: p.uuid({ required: true, description: 'UUID of the backed-up snapshot to roll back to.' }) },
  event: { type: 'SNAPSHOT.REVERT', description: (params) => `reverting to snapshot ${params.id}` },
  async target(ctx, params) {
    const snap = await findSnapshot(ctx, params.id);
    const volume = await ctx.app.store.db
      .selectFrom('volumes')
      .select(['uuid', 'vm_id'])
      .where('id', '=', snap.volume_id)
      .executeTakeFirstOrThrow();
    // Jobs on the volume (attach, resize, other reverts) and on its VM run one after another.
    return volumeJobTarget(ctx, volume);
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const snap = await findSnapshot(ctx, params.id);
    if (snap.state !== 'BackedUp' || !snap.path)
      throw invalidParameter(
        `Snapshot ${snap.name} is ${snap.state}: only a backed-up snapshot can be reverted to`,
      );
    const volume = await app.store.db
      .selectFrom('volumes')
      .selectAll()
      .where('id', '=', snap.volume_id)
      .executeTakeFirstOrThrow();
    if (volume.removed !== null || !volume.path)
      throw invalidParameter(`The volume of snapshot ${snap.name} no longer exists`);
    if (Number(volume.size_bytes) !== Number(snap.size_bytes))
      throw invalidParameter(
        `Volume ${volume.name} was resized after snapshot ${snap.name}; it cannot be reverted`,
      );
    if (volume.vm_id !== null) {
      const vm = await app.store.db
        .selectFrom('vms')
        .select(['name', 'state'])
        .where('id', '=', volume.vm_id)
        .executeTakeFirstOrThrow();
      if (vm.state !== 'Stopped')
        throw invalidParameter(
          `VM ${vm.name} is ${vm.state}: stop it before reverting volume ${volume.name}`,
        );
    }
    const pool = await poolOf(ctx, volume);
    if (!pool) throw invalidParameter(`Volume ${volume.name} has no disk`);
    await stageSnapshot(app, snap);
    await app.agents.call(await hostForPool(ctx, pool), 'revertSnapshot', {
      snapshotPath: snap.path,
      volumePath: volume.path,
      pool: poolLocation(pool),
    });
    await app.store.db.transaction().execute((tx) =>
      logEvent(ctx, tx, {
        type: 'SNAPSHOT.REVERT',
        description: `reverted volume ${volume.name} to snapshot ${snap.name}`,
        resourceType: 'Snapshot',
        resourceId: snap.uuid,
      }),
    );
    return presentSnapshot(ctx, snap.id);
  },
});

registerTaggable('Snapshot', async (ctx, uuid) => {
  const s = await ctx.app.store.db
    .selectFrom('snapshots')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return s && { id: s.id, accountId: s.account_id, domainId: s.domain_id };
});

registerResourceCounter(ResourceKind.Snapshot, async (tx, accountId) => {
  const r = await tx
    .selectFrom('snapshots')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('account_id', '=', accountId)
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
});

registerResourceCounter(ResourceKind.SecondaryStorage, async (tx, accountId) => {
  const rows = await tx
    .selectFrom('snapshots')
    .select(['state', 'size_bytes', 'physical_size_bytes'])
    .where('account_id', '=', accountId)
    .where('removed', 'is', null)
    .execute();
  return rows.reduce((sum, s) => sum + heldGiB(s), 0);
});

// Snapshots need the pool they were taken on (its hosts reach the backup) and the store holding it.
onStoragePoolDelete(async (app, pool) => {
  const held = await app.store.db
    .selectFrom('snapshots')
    .select('name')
    .where('pool_id', '=', pool.id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return held
    ? `Snapshot ${held.name} was taken on primary storage ${pool.name}; delete it first`
    : undefined;
});

onImageStoreDelete(async (app, store) => {
  const held = await app.store.db
    .selectFrom('snapshots')
    .select('name')
    .where('image_store_id', '=', store.id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return held ? `it holds the backup of snapshot ${held.name}; delete it first` : undefined;
});

/** A deleted account's snapshots go with it: upstream keeps them past their volume, not past their owner. */
onAccountDelete(async (ctx, account) => {
  const owned = await ctx.app.store.db
    .selectFrom('snapshots')
    .selectAll()
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .execute();
  for (const s of owned) await destroySnapshot(ctx.app, s, { ctx });
});

export const snapshotCommands = [createSnapshot, listSnapshots, deleteSnapshot, revertSnapshot];
