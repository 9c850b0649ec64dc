/**
 * VM snapshots: a disk snapshot of every volume of a VM, taken through the agent and kept on the
 * volumes' pools (they are not backed up to secondary storage, as upstream's KVM disk-only VM
 * snapshots). Reverting needs the VM Stopped; expunging a VM deletes its VM snapshots first.
 * This module does not import compute/vms.ts, which calls `deleteVmSnapshotsOf` while expunging.
 */

import { formatDate } from '../clock.ts';
import { presentVms } from '../compute/vm-presenter.ts';
import type { App, CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { VmSnapshotRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { findOwned, listOwned, OWNED_VM } from '../iam/owned.ts';
import { onStoragePoolDelete } from '../infra/storage-pools.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { defineSetting } from '../settings/settings.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import { hostForPool, poolLocation } from './volume-ops.ts';

export const VM_SNAPSHOT_MAX = defineSetting<number>({
  name: 'vmsnapshot.max',
  category: 'Snapshots',
  type: 'Integer',
  defaultValue: 10,
  min: 1,
  description: 'Maximum number of VM snapshots a VM may have.',
});

async function findVmSnapshot(ctx: CallContext, uuid: string): Promise<VmSnapshotRow> {
  return findOwned(ctx, 'vm_snapshots', uuid, { noun: 'VM snapshot' });
}

/** A VM snapshot's disk snapshots, each with the pool it lives on. */
async function disksOf(app: App, vmSnapshotId: number) {
  const db = app.store.db;
  const disks = await db
    .selectFrom('vm_snapshot_disks')
    .selectAll()
    .where('vm_snapshot_id', '=', vmSnapshotId)
    .orderBy('id')
    .execute();
  const out = [];
  for (const d of disks) {
    const pool = await db
      .selectFrom('storage_pools')
      .selectAll()
      .where('id', '=', d.pool_id)
      .executeTakeFirstOrThrow();
    out.push({ ...d, pool });
  }
  return out;
}

/** Deletes the disk snapshots on their pools, then the record. */
async function destroyVmSnapshot(app: App, snap: VmSnapshotRow, ctx?: CallContext): Promise<void> {
  for (const d of await disksOf(app, snap.id))
    await app.agents.call(await hostForPool({ app }, d.pool), 'deleteSnapshot', {
      path: d.path,
      pool: poolLocation(d.pool),
    });
  await app.store.db.transaction().execute(async (tx) => {
    await tx.deleteFrom('vm_snapshot_disks').where('vm_snapshot_id', '=', snap.id).execute();
    await tx
      .updateTable('vm_snapshots')
      .set({ state: 'Expunging', removed: app.clock.now(), current: 0 })
      .where('id', '=', snap.id)
      .execute();
    // Children hang from the deleted snapshot's parent, as upstream re-links the tree.
    await tx
      .updateTable('vm_snapshots')
      .set({ parent_id: snap.parent_id })
      .where('parent_id', '=', snap.id)
      .execute();
    await tx
      .deleteFrom('resource_tags')
      .where('resource_type', '=', 'VMSnapshot')
      .where('resource_id', '=', snap.id)
      .execute();
    if (ctx)
      await logEvent(ctx, tx, {
        type: 'VMSNAPSHOT.DELETE',
        description: `deleted VM snapshot ${snap.display_name}`,
        resourceType: 'VMSnapshot',
        resourceId: snap.uuid,
      });
  });
}

/** Removes every VM snapshot of a VM; expunging the VM calls this before its disks go. */
export async function deleteVmSnapshotsOf(ctx: CallContext, vmId: number): Promise<void> {
  const snaps = await ctx.app.store.db
    .selectFrom('vm_snapshots')
    .selectAll()
    .where('vm_id', '=', vmId)
    .where('removed', 'is', null)
    .orderBy('id', 'desc')
    .execute();
  for (const s of snaps) await destroyVmSnapshot(ctx.app, s, ctx);
}

async function presentVmSnapshots(ctx: CallContext, rows: VmSnapshotRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const ids = (key: keyof VmSnapshotRow) => [
    ...new Set(rows.map((r) => r[key]).filter((x): x is number => typeof x === 'number')),
  ];
  const [accounts, domains, zones, vms, parents, tags] = await Promise.all([
    db.selectFrom('accounts').select(['id', 'name']).where('id', 'in', ids('account_id')).execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', ids('domain_id'))
      .execute(),
    db.selectFrom('zones').select(['id', 'uuid', 'name']).where('id', 'in', ids('zone_id')).execute(),
    db
      .selectFrom('vms')
      .select(['id', 'uuid', 'name', 'hypervisor'])
      .where('id', 'in', ids('vm_id'))
      .execute(),
    ids('parent_id').length
      ? db
          .selectFrom('vm_snapshots')
          .select(['id', 'uuid', 'display_name'])
          .where('id', 'in', ids('parent_id'))
          .execute()
      : Promise.resolve([]),
    tagsOf(
      ctx,
      'VMSnapshot',
      rows.map((r) => r.id),
    ),
  ]);
  const by = <T extends { id: number }>(list: T[]) => new Map(list.map((x) => [x.id, x]));
  const [account, domain, zone, vm, parent] = [by(accounts), by(domains), by(zones), by(vms), by(parents)];
  return rows.map((s) => {
    const d = domain.get(s.domain_id)!;
    const m = vm.get(s.vm_id);
    const z = zone.get(s.zone_id);
    const up = s.parent_id === null ? undefined : parent.get(s.parent_id);
    return {
      id: s.uuid,
      name: s.name,
      displayname: s.display_name,
      description: s.description ?? undefined,
      state: s.state,
      type: s.type,
      current: s.current === 1,
      parent: up?.uuid,
      parentName: up?.display_name,
      virtualmachineid: m?.uuid,
      virtualmachinename: m?.name,
      hypervisor: m?.hypervisor,
      zoneid: z?.uuid,
      zonename: z?.name,
      account: account.get(s.account_id)?.name,
      domainid: d.uuid,
      domain: d.name,
      domainpath: displayPath(d.path),
      created: formatDate(s.created),
      tags: tags.get(s.id) ?? [],
    };
  });
}

async function presentVmSnapshot(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('vm_snapshots')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentVmSnapshots(ctx, [row]))[0];
}

async function volumesWithDisks(app: App, vmId: number) {
  return app.store.db
    .selectFrom('volumes')
    .selectAll()
    .where('vm_id', '=', vmId)
    .where('removed', 'is', null)
    .orderBy('device_id')
    .execute();
}

export const createVMSnapshot = defineCommand({
  name: 'createVMSnapshot',
  description:
    "Takes a disk-only snapshot of all of a VM's volumes at once, kept on their primary storage pools. Asynchronous; the count per VM is capped by vmsnapshot.max.",
  params: {
    virtualmachineid: p.uuid({
      required: true,
      description: 'UUID of the Running or Stopped VM; all its volumes must already have disks.',
    }),
    name: p.string({
      description:
        "Display name, unique among the VM's snapshots; defaults to <instance name>_VS_<timestamp>.",
    }),
    description: p.string({ description: 'Free text kept with the VM snapshot.' }),
    snapshotmemory: p.boolean({
      description:
        'Must be false or omitted: Nimbostack takes disk-only VM snapshots and refuses memory snapshots.',
    }),
  },
  event: {
    type: 'VMSNAPSHOT.CREATE',
    description: (params) => `taking a snapshot of VM ${params.virtualmachineid}`,
  },
  async create(ctx, params) {
    const { app } = ctx;
    const vm = await findOwned(ctx, 'vms', params.virtualmachineid, OWNED_VM);
    if (params.snapshotmemory)
      throw invalidParameter(
        'Memory snapshots are not offered: take a disk-only VM snapshot (snapshotmemory=false)',
      );
    if (!['Running', 'Stopped'].includes(vm.state))
      throw invalidParameter(`VM ${vm.name} is ${vm.state}: VM snapshots need it Running or Stopped`);
    const volumes = await volumesWithDisks(app, vm.id);
    const bare = volumes.find((v) => !v.path || v.pool_id === null);
    if (bare)
      throw invalidParameter(`Volume ${bare.name} of VM ${vm.name} has no disk yet: start the VM first`);
    const existing = await app.store.db
      .selectFrom('vm_snapshots')
      .select(['id', 'display_name', 'current'])
      .where('vm_id', '=', vm.id)
      .where('removed', 'is', null)
      .execute();
    const max = app.settings.get(VM_SNAPSHOT_MAX);
    if (existing.length >= max)
      throw invalidParameter(
        `VM ${vm.name} already has ${existing.length} VM snapshots, the most vmsnapshot.max allows`,
      );
    const stamp = new Date(app.clock.now()).toISOString().replace(/[-:T]/g, '').slice(0, 14);
    const name = `${vm.instance_name}_VS_${stamp}`;
    const displayName = params.name ?? name;
    if (existing.some((s) => s.display_name === displayName))
      throw invalidParameter(`VM ${vm.name} already has a VM snapshot named ${displayName}`);
    const uuid = await app.store.db.transaction().execute(async (tx) => {
      const id = await insertId(app.store, tx, 'vm_snapshots', {
        uuid: app.ids.uuid(),
        name,
        display_name: displayName,
        description: params.description ?? null,
        vm_id: vm.id,
        account_id: vm.account_id,
        domain_id: vm.domain_id,
        zone_id: vm.zone_id,
        type: 'Disk',
        state: 'Allocated',
        parent_id: existing.find((s) => s.current === 1)?.id ?? null,
        current: 0,
        created: app.clock.now(),
        removed: null,
      });
      const row = await tx
        .selectFrom('vm_snapshots')
        .select('uuid')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      await logEvent(ctx, tx, {
        type: 'VMSNAPSHOT.CREATE',
        description: `created VM snapshot ${displayName} of VM ${vm.name}`,
        resourceType: 'VMSnapshot',
        resourceId: row.uuid,
      });
      return row.uuid;
    });
    // Taken with the VM's other jobs (a migration, an attach) kept out.
    return { type: 'VMSnapshot', id: uuid, with: [{ type: 'VirtualMachine', id: vm.uuid }] };
  },
  async handler(ctx, _params, created) {
    const { app } = ctx;
    const db = app.store.db;
    const snap = await findVmSnapshot(ctx, created!.id);
    await db.updateTable('vm_snapshots').set({ state: 'Creating' }).where('id', '=', snap.id).execute();
    const vm = await db.selectFrom('vms').selectAll().where('id', '=', snap.vm_id).executeTakeFirstOrThrow();
    const made: { volume_id: number; pool_id: number; path: string; size_bytes: number }[] = [];
    try {
      for (const v of await volumesWithDisks(app, vm.id)) {
        const pool = await db
          .selectFrom('storage_pools')
          .selectAll()
          .where('id', '=', v.pool_id!)
          .executeTakeFirstOrThrow();
        const running = vm.state === 'Running' && vm.host_id !== null;
        const hostId = running ? vm.host_id! : await hostForPool(ctx, pool);
        const r = await app.agents.call(hostId, 'createSnapshot', {
          // One file per VM snapshot and device, within the agent's 64-character limit.
          snapshotUuid: `${snap.uuid}-${v.device_id ?? 0}`,
          volumePath: v.path!,
          pool: poolLocation(pool),
          vm: running ? vm.instance_name : undefined,
        });
        made.push({ volume_id: v.id, pool_id: pool.id, path: r.path, size_bytes: r.sizeBytes });
        await db
          .insertInto('vm_snapshot_disks')
          .values({ vm_snapshot_id: snap.id, ...made.at(-1)! })
          .execute();
      }
    } catch (e) {
      // Disk snapshots already taken are dropped, so an Error VM snapshot holds nothing on the pools.
      for (const d of made) {
        const pool = await db
          .selectFrom('storage_pools')
          .selectAll()
          .where('id', '=', d.pool_id)
          .executeTakeFirstOrThrow();
        await app.agents
          .call(await hostForPool(ctx, pool), 'deleteSnapshot', { path: d.path, pool: poolLocation(pool) })
          .catch((err) => app.log.warn({ err }, 'could not delete a disk snapshot of a failed VM snapshot'));
      }
      await db.transaction().execute(async (tx) => {
        await tx.deleteFrom('vm_snapshot_disks').where('vm_snapshot_id', '=', snap.id).execute();
        await tx.updateTable('vm_snapshots').set({ state: 'Error' }).where('id', '=', snap.id).execute();
      });
      throw e;
    }
    await db.transaction().execute(async (tx) => {
      await tx.updateTable('vm_snapshots').set({ current: 0 }).where('vm_id', '=', vm.id).execute();
      await tx
        .updateTable('vm_snapshots')
        .set({ state: 'Ready', current: 1 })
        .where('id', '=', snap.id)
        .execute();
    });
    return presentVmSnapshot(ctx, snap.id);
  },
});

export const listVMSnapshot = defineCommand({
  name: 'listVMSnapshot',
  description: 'Lists the VM snapshots the caller may see, newest first.',
  params: {
    ...listParams,
    vmsnapshotid: p.uuid({ description: 'Only the VM snapshot with this UUID.' }),
    vmsnapshotids: p.list({
      of: 'uuid',
      description: 'Only VM snapshots with these UUIDs (comma-separated).',
    }),
    virtualmachineid: p.uuid({ description: 'Only snapshots of this VM.' }),
    name: p.string({ description: 'Only VM snapshots with exactly this display name.' }),
    state: p.string({
      description: 'Only VM snapshots in this state: Allocated, Creating, Ready or Error (exact case).',
    }),
    tags: p.map({
      description: 'Only VM snapshots carrying all these tags (tags[0].key=..., tags[0].value=...).',
    }),
    account: p.string({
      description:
        "Only VM snapshots of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only VM snapshots in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include VM snapshots of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include VM snapshots of every account they may see.',
    }),
    projectid: p.projectScope({
      description:
        "Only this project's VM snapshots (you must be a member or administer it); -1: those of every project you may see.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('vm_snapshots').where('vm_snapshots.removed', 'is', null);
    if (params.vmsnapshotid) q = q.where('vm_snapshots.uuid', '=', params.vmsnapshotid);
    if (params.vmsnapshotids) q = q.where('vm_snapshots.uuid', 'in', params.vmsnapshotids);
    if (params.name) q = q.where('vm_snapshots.display_name', '=', params.name);
    if (params.state) q = q.where('vm_snapshots.state', '=', params.state);
    if (params.virtualmachineid)
      q = q.where(
        'vm_snapshots.vm_id',
        'in',
        db.selectFrom('vms').select('id').where('uuid', '=', params.virtualmachineid),
      );
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'vm_snapshots.display_name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    q = withTags(q, 'VMSnapshot', 'vm_snapshots.id', params.tags);
    return listOwned(ctx, params, q, {
      owner: { account: 'vm_snapshots.account_id', domain: 'vm_snapshots.domain_id' },
      rows: (scoped, page) =>
        paginate(scoped.selectAll('vm_snapshots').orderBy('vm_snapshots.id', 'desc'), page).execute(),
      present: (rows) => presentVmSnapshots(ctx, rows),
    });
  },
});

export const revertToVMSnapshot = defineCommand({
  name: 'revertToVMSnapshot',
  description:
    'Rolls every disk of a Stopped VM back to a Ready VM snapshot, which becomes its current one. Asynchronous; refused if a volume was detached or resized since.',
  params: {
    vmsnapshotid: p.uuid({ required: true, description: 'UUID of the Ready VM snapshot to roll back to.' }),
  },
  event: {
    type: 'VMSNAPSHOT.REVERTTO',
    description: (params) => `reverting to VM snapshot ${params.vmsnapshotid}`,
  },
  async target(ctx, params) {
    const snap = await findVmSnapshot(ctx, params.vmsnapshotid);
    const vm = await ctx.app.store.db
      .selectFrom('vms')
      .select('uuid')
      .where('id', '=', snap.vm_id)
      .executeTakeFirstOrThrow();
    // The VM's own jobs (start, stop) run one after another with the revert.
    return { type: 'VirtualMachine', id: vm.uuid };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    const snap = await findVmSnapshot(ctx, params.vmsnapshotid);
    if (snap.state !== 'Ready')
      throw invalidParameter(
        `VM snapshot ${snap.display_name} is ${snap.state}: only a Ready one can be reverted to`,
      );
    const vm = await db.selectFrom('vms').selectAll().where('id', '=', snap.vm_id).executeTakeFirstOrThrow();
    if (vm.state !== 'Stopped')
      throw invalidParameter(
        `VM ${vm.name} is ${vm.state}: stop it before reverting to a disk-only VM snapshot`,
      );
    const disks = await disksOf(app, snap.id);
    const volumes = await db
      .selectFrom('volumes')
      .selectAll()
      .where(
        'id',
        'in',
        disks.map((d) => d.volume_id),
      )
      .execute();
    const byId = new Map(volumes.map((v) => [v.id, v]));
    for (const d of disks) {
      const v = byId.get(d.volume_id);
      if (!v || v.removed !== null || v.vm_id !== vm.id || !v.path)
        throw invalidParameter(
          `A volume of VM snapshot ${snap.display_name} is no longer attached to VM ${vm.name}`,
        );
      if (Number(v.size_bytes) !== Number(d.size_bytes))
        throw invalidParameter(`Volume ${v.name} was resized after VM snapshot ${snap.display_name}`);
    }
    for (const d of disks)
      await app.agents.call(await hostForPool(ctx, d.pool), 'revertSnapshot', {
        snapshotPath: d.path,
        volumePath: byId.get(d.volume_id)!.path!,
        pool: poolLocation(d.pool),
      });
    await db.transaction().execute(async (tx) => {
      await tx.updateTable('vm_snapshots').set({ current: 0 }).where('vm_id', '=', vm.id).execute();
      await tx.updateTable('vm_snapshots').set({ current: 1 }).where('id', '=', snap.id).execute();
      await logEvent(ctx, tx, {
        type: 'VMSNAPSHOT.REVERTTO',
        description: `reverted VM ${vm.name} to VM snapshot ${snap.display_name}`,
        resourceType: 'VMSnapshot',
        resourceId: snap.uuid,
      });
    });
    return (await presentVms(ctx, [vm]))[0];
  },
});

export const deleteVMSnapshot = defineCommand({
  name: 'deleteVMSnapshot',
  description:
    "Deletes a VM snapshot and its disk snapshots on the pools; the VM's disks are not changed. Asynchronous; refused while it is still being taken.",
  params: { vmsnapshotid: p.uuid({ required: true, description: 'UUID of the VM snapshot to delete.' }) },
  event: {
    type: 'VMSNAPSHOT.DELETE',
    description: (params) => `deleting VM snapshot ${params.vmsnapshotid}`,
  },
  async target(ctx, params) {
    const snap = await findVmSnapshot(ctx, params.vmsnapshotid);
    const vm = await ctx.app.store.db
      .selectFrom('vms')
      .select('uuid')
      .where('id', '=', snap.vm_id)
      .executeTakeFirst();
    return {
      type: 'VMSnapshot',
      id: snap.uuid,
      with: vm ? [{ type: 'VirtualMachine', id: vm.uuid }] : [],
    };
  },
  async handler(ctx, params) {
    const snap = await findVmSnapshot(ctx, params.vmsnapshotid);
    if (snap.state === 'Creating' || snap.state === 'Allocated')
      throw invalidParameter(`VM snapshot ${snap.display_name} is still being taken`);
    await destroyVmSnapshot(ctx.app, snap, ctx);
    return success();
  },
});

registerTaggable('VMSnapshot', async (ctx, uuid) => {
  const s = await ctx.app.store.db
    .selectFrom('vm_snapshots')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return s && { id: s.id, accountId: s.account_id, domainId: s.domain_id };
});

onStoragePoolDelete(async (app, pool) => {
  const held = await app.store.db
    .selectFrom('vm_snapshot_disks')
    .select('id')
    .where('pool_id', '=', pool.id)
    .executeTakeFirst();
  return held ? `Primary storage ${pool.name} still holds VM snapshots` : undefined;
});

/** VM snapshots of VMs the account's cleanup could not expunge (their VM is gone) go too. */
onAccountDelete(async (ctx, account) => {
  const left = await ctx.app.store.db
    .selectFrom('vm_snapshots')
    .selectAll()
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .execute();
  for (const s of left) await destroyVmSnapshot(ctx.app, s, ctx);
});

export const vmSnapshotCommands = [createVMSnapshot, listVMSnapshot, revertToVMSnapshot, deleteVMSnapshot];
