/**
 * The VM lifecycle on hosts: start (plan, create disks, boot, retry elsewhere on failure), stop,
 * reboot, destroy, recover and expunge. Each step moves the VM through the state machine and
 * keeps host and pool capacity and the owner's resource counts exact.
 */

import type { VmSpec } from '@nimbostack/protocol';
import type { CallContext } from '../context.ts';
import { inTransaction, type Tx } from '../db/connection.ts';
import type { VmRow, VolumeRow } from '../db/schema.ts';
import { ApiError, ErrorCode, invalidParameter, toApiError } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import { volumeMoved } from '../events/state-events.ts';
import { ResourceKind, reserve } from '../iam/limits.ts';
import { findOwned, OWNED_VM, OWNED_VM_OR_DESTROYED } from '../iam/owned.ts';
import { nicsForHost, refreshPeersOf } from '../network/host-network.ts';
import { removeVmRules } from '../network/ip-rules.ts';
import { removeVmFromLoadBalancers } from '../network/lb-common.ts';
import { releaseNics } from '../network/nics.ts';
import { reapplyNetworkRules, removeRouterEntries } from '../network/routers.ts';
import { removeVmFromSecurityGroups } from '../network/security-groups.ts';
import { networkReadyOnHost, networksOfVm } from '../network/vm-nics.ts';
import { DownloadState } from '../storage/downloads.ts';
import { storeRoot } from '../storage/images.ts';
import { localPoolOfVm } from '../storage/local-pools.ts';
import { discardManagedVolume, prepareManagedVolume } from '../storage/managed/managed-pools.ts';
import { refuseStartInMaintenance } from '../storage/pool-maintenance.ts';
import { isRemoteStore, stageFile } from '../storage/remote-stores.ts';
import { deleteVmSnapshotsOf } from '../storage/vm-snapshots.ts';
import { deleteOnPool, poolLocation, poolOf, vmDisk } from '../storage/volume-ops.ts';
import {
  type MaterialisedDisk,
  materialiseDataDisk,
  type PoolNeeds,
  poolNeeds,
  removeVolumeRecord,
} from '../storage/volumes.ts';
import { affinityRules, leaveAffinityGroups, placeWithAffinity, withAffinityLock } from './affinity.ts';
import { dedicationRule } from './dedication.ts';
import {
  type HostRequest,
  type Placement,
  releaseHost,
  releasePool,
  reserveHost,
  reservePool,
  START_RETRY,
} from './planner.ts';
import { dropReservation, holdReservation } from './reservations.ts';
import { transition, wrongState } from './vm-state.ts';

export const MiB = 2 ** 20;

export async function findVm(
  ctx: CallContext,
  uuid: string,
  opts: { includeDestroyed?: boolean } = {},
): Promise<VmRow> {
  return findOwned(ctx, 'vms', uuid, opts.includeDestroyed ? OWNED_VM_OR_DESTROYED : OWNED_VM);
}

export async function reloadVm(ctx: Pick<CallContext, 'app'>, id: number): Promise<VmRow> {
  return ctx.app.store.db.selectFrom('vms').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

const cpuMhzOf = (vm: VmRow) => vm.cpu_number * vm.cpu_speed;

/** The ready copy of a VM's template in its zone, as the agent needs it to create a ROOT disk. */
async function templateSource(ctx: Pick<CallContext, 'app'>, templateId: number, zoneId: number) {
  const db = ctx.app.store.db;
  const copy = await db
    .selectFrom('template_store_refs as r')
    .innerJoin('image_stores as s', 's.id', 'r.image_store_id')
    .innerJoin('templates as t', 't.id', 'r.template_id')
    .selectAll('s')
    .select(['r.install_path', 'r.size_bytes as template_size', 't.uuid as template_uuid'])
    .where('r.template_id', '=', templateId)
    // A region-wide store (S3, Swift without a zone) serves every zone.
    .where((eb) => eb.or([eb('r.zone_id', '=', zoneId), eb('s.zone_id', 'is', null)]))
    .where('r.download_state', '=', DownloadState.Downloaded)
    .where('r.destroyed', '=', 0)
    .where('s.removed', 'is', null)
    .executeTakeFirst();
  if (!copy?.install_path) throw invalidParameter("The VM's template is no longer ready in its zone");
  // Agents read templates as files: one on an object store or an NFS export this server reaches
  // in user space is staged by this server first.
  if (isRemoteStore(copy)) await stageFile(ctx.app, copy, copy.install_path);
  return {
    template: {
      uuid: copy.template_uuid,
      path: copy.install_path,
      sizeBytes: Number(copy.template_size ?? 0),
    },
    store: {
      uuid: copy.uuid,
      type: copy.protocol === 'nfs' ? ('NetworkFilesystem' as const) : ('Filesystem' as const),
      path: await storeRoot(copy),
    },
  };
}

/**
 * Gets the host ready for the VM's NICs: each network as networkReadyOnHost leaves it (bridge,
 * VXLAN link, router Running with the VM's entry, so the guest gets its address as soon as it
 * boots). Returns the NICs as the hypervisor plugs them (bridge, filtering).
 */
async function networkForStart(
  ctx: Pick<CallContext, 'app'>,
  vm: VmRow,
  place: { hostId: number; podId: number | null },
) {
  const { app } = ctx;
  for (const network of await networksOfVm(app, vm.id))
    await networkReadyOnHost(app, network, vm.id, { ...place, hypervisor: vm.hypervisor });
  // The VM counts as a live member of its groups from here on, for its own rules too.
  return nicsForHost(app, vm.id, vm.id);
}

const memoryOf = (vm: VmRow) => vm.memory_mb * MiB;

async function hostTagsOf(ctx: Pick<CallContext, 'app'>, vm: VmRow): Promise<string[]> {
  const o = await ctx.app.store.db
    .selectFrom('service_offerings')
    .select('host_tags')
    .where('id', '=', vm.service_offering_id)
    .executeTakeFirst();
  return (o?.host_tags ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
}

async function volumesOf(ctx: Pick<CallContext, 'app'>, vmId: number): Promise<VolumeRow[]> {
  return ctx.app.store.db
    .selectFrom('volumes')
    .selectAll()
    .where('vm_id', '=', vmId)
    .where('removed', 'is', null)
    .orderBy('device_id')
    .execute();
}

/** Creates the ROOT disk from its template on a pool the host reaches, if it does not exist yet. */
async function materialiseRoot(
  ctx: Pick<CallContext, 'app'>,
  vm: VmRow,
  root: VolumeRow,
  placement: Placement,
  needs: PoolNeeds | undefined,
): Promise<MaterialisedDisk> {
  if (root.path && root.pool_id !== null) return { volume: root, pool: undefined };
  if (vm.template_id === null)
    return materialiseDataDisk(ctx, root, placement.hostId, placement.clusterId, needs);
  const source = await templateSource(ctx, vm.template_id, vm.zone_id);
  const size = Math.max(Number(root.size_bytes), source.template.sizeBytes);
  const pool = await reservePool(ctx, {
    zoneId: vm.zone_id,
    clusterId: placement.clusterId,
    sizeBytes: size,
    ...(needs ?? (await poolNeeds(ctx, root))),
    hostId: placement.hostId,
  });
  try {
    // A managed pool's provider makes the LUN the host copies the template into.
    await prepareManagedVolume(ctx, pool, root, size);
    const made = await ctx.app.agents.call(placement.hostId, 'createVolumeFromTemplate', {
      volumeUuid: root.uuid,
      sizeBytes: size,
      pool: poolLocation(pool),
      template: source.template,
      templateStore: source.store,
    });
    const changes = {
      pool_id: pool.id,
      path: made.path,
      size_bytes: made.sizeBytes,
      physical_size_bytes: made.sizeBytes,
      state: 'Ready',
    };
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx.updateTable('volumes').set(changes).where('id', '=', root.id).execute();
      await volumeMoved(ctx, tx, root, 'Ready', 'OperationSucceeded');
    });
    return { volume: { ...root, ...changes }, pool };
  } catch (e) {
    await releasePool(ctx.app.store.db, pool.id, size);
    await discardManagedVolume(ctx, pool, root.uuid);
    throw e;
  }
}

/** `volumes`: the VM's disks, with the pools a start has just created their files on. */
async function vmSpec(
  ctx: Pick<CallContext, 'app'>,
  vm: VmRow,
  volumes: (VolumeRow | MaterialisedDisk)[],
  nics: VmSpec['nics'],
): Promise<VmSpec> {
  const disks = [];
  for (const d of volumes) {
    const v = 'volume' in d ? d.volume : d;
    const pool = ('volume' in d ? d.pool : undefined) ?? (await poolOf(ctx, v));
    if (pool && v.path) disks.push(vmDisk(v, pool));
  }
  return {
    name: vm.instance_name,
    uuid: vm.uuid,
    cpus: vm.cpu_number,
    cpuMhz: vm.cpu_speed,
    memoryBytes: memoryOf(vm),
    disks,
    nics,
    ...(vm.user_data ? { userData: vm.user_data } : {}),
  };
}

/**
 * Where a VM must start: the host whose local pool holds one of its disks, or the cluster of its
 * cluster-scoped disks, or anywhere.
 */
async function requiredPlace(
  ctx: Pick<CallContext, 'app'>,
  volumes: VolumeRow[],
): Promise<{ clusterId?: number; hostId?: number }> {
  const place: { clusterId?: number; hostId?: number } = {};
  for (const v of volumes) {
    const pool = await poolOf(ctx, v);
    if (pool?.scope === 'HOST' && pool.host_id !== null) place.hostId ??= pool.host_id;
    if (pool && pool.scope !== 'ZONE' && pool.cluster_id !== null) place.clusterId ??= pool.cluster_id;
  }
  return place;
}

/**
 * What the pools of a VM's disks without a file yet must offer, by volume id: read once for the
 * host's choice (local bytes) and the disks' creation on it.
 */
async function missingDiskNeeds(
  ctx: Pick<CallContext, 'app'>,
  volumes: VolumeRow[],
): Promise<Map<number, PoolNeeds>> {
  const needs = new Map<number, PoolNeeds>();
  for (const v of volumes) if (!(v.path && v.pool_id !== null)) needs.set(v.id, await poolNeeds(ctx, v));
  return needs;
}

/** Bytes of a VM's disks that want local storage and have no file yet; undefined when none does. */
function localBytesNeeded(volumes: VolumeRow[], needs: Map<number, PoolNeeds>): number | undefined {
  let total: number | undefined;
  for (const v of volumes) if (needs.get(v.id)?.local) total = (total ?? 0) + Number(v.size_bytes);
  return total;
}

/** A plain live migration cannot take local disks along (upstream's check and message). */
export async function refuseLocalStorageMigration(ctx: Pick<CallContext, 'app'>, vm: VmRow): Promise<void> {
  if (await localPoolOfVm(ctx.app, vm.id))
    throw invalidParameter('Unsupported operation, VM uses Local storage, cannot migrate');
}

export interface StartOptions {
  hostId?: number;
  podId?: number;
  clusterId?: number;
}

/**
 * Starts a Stopped VM: reserves a host, creates missing disks, boots it. A host that fails is
 * avoided and the next one tried (start.retry); if none works the VM is Stopped again and the
 * error says why.
 */
export async function startVm(ctx: CallContext, vm: VmRow, opts: StartOptions = {}): Promise<VmRow> {
  return withAffinityLock(ctx, vm, () => startVmNow(ctx, vm, opts));
}

async function startVmNow(ctx: CallContext, vm: VmRow, opts: StartOptions): Promise<VmRow> {
  const { app } = ctx;
  await refuseStartInMaintenance(ctx, vm);
  let current = await app.store.db.transaction().execute((tx) => transition(ctx, tx, vm, 'start'));
  const avoid = new Set<number>();
  const retries = app.settings.get(START_RETRY);
  let lastError: ApiError | undefined;
  try {
    for (let attempt = 0; attempt < retries; attempt++) {
      const volumes = await volumesOf(ctx, vm.id);
      const needs = await missingDiskNeeds(ctx, volumes);
      const required = await requiredPlace(ctx, volumes);
      if (opts.hostId !== undefined && required.hostId !== undefined && opts.hostId !== required.hostId)
        throw invalidParameter(
          `VM ${vm.name} has disks on another host's local storage: it can only start there`,
        );
      if (
        opts.clusterId !== undefined &&
        required.clusterId !== undefined &&
        opts.clusterId !== required.clusterId
      )
        throw invalidParameter(
          `VM ${vm.name} has disks on another cluster's storage: it can only start there`,
        );
      const placement = await placeWithAffinity(
        await affinityRules(ctx, vm),
        {
          zoneId: vm.zone_id,
          podId: opts.podId,
          clusterId: opts.clusterId ?? required.clusterId,
          hostId: opts.hostId ?? required.hostId,
          localBytes: localBytesNeeded(volumes, needs),
          dedication: await dedicationRule(ctx, vm),
          cpuMhz: cpuMhzOf(vm),
          memoryBytes: memoryOf(vm),
          hostTags: await hostTagsOf(ctx, vm),
          hypervisor: vm.hypervisor,
          accountId: vm.account_id,
          avoid,
        },
        (req) => reserveHost(ctx, req),
      );
      const reservation = await holdReservation(app, vm, placement);
      try {
        const disks = await Promise.all(
          volumes.map((v) =>
            v.type === 'ROOT'
              ? materialiseRoot(ctx, vm, v, placement, needs.get(v.id))
              : materialiseDataDisk(ctx, v, placement.hostId, placement.clusterId, needs.get(v.id)),
          ),
        );
        const nics = await networkForStart(ctx, vm, placement);
        await app.agents.call(placement.hostId, 'startVm', { vm: await vmSpec(ctx, vm, disks, nics) });
        current = await app.store.db.transaction().execute((tx) =>
          transition(ctx, tx, current, 'started', {
            host_id: placement.hostId,
            last_host_id: placement.hostId,
            pod_id: placement.podId,
            cluster_id: placement.clusterId,
          }),
        );
        await dropReservation(app, reservation);
        // Groups whose rules name this VM's groups now admit its address.
        await refreshPeersOf(app, vm.id);
        return current;
      } catch (e) {
        await releaseHost(app.store.db, placement.hostId, placement.cpuMhz, placement.memoryBytes);
        await dropReservation(app, reservation);
        lastError = toApiError(e);
        app.log.warn(
          { vm: vm.uuid, host: placement.hostName, err: lastError.message },
          'VM start failed on a host; trying another',
        );
        await recordEvent(
          ctx,
          app.store.db,
          { userId: vm.user_id, accountId: vm.account_id, domainId: vm.domain_id },
          {
            type: 'VM.START',
            level: 'WARN',
            description: `VM ${vm.name} could not start on host ${placement.hostName}: ${lastError.message}`,
            resourceType: 'VirtualMachine',
            resourceId: vm.uuid,
          },
        );
        avoid.add(placement.hostId);
        // A host picked by the caller is the only one allowed.
        if (opts.hostId !== undefined) break;
      }
    }
    throw lastError ?? invalidParameter(`Unable to start VM ${vm.name}`);
  } catch (e) {
    const err = toApiError(e);
    await app.store.db
      .transaction()
      .execute((tx) => transition(ctx, tx, current, 'startFailed', {}, err.message));
    if (!lastError || (err === lastError && err.errorcode === ErrorCode.INSUFFICIENT_CAPACITY)) throw err;
    // Out of hosts after failures: the caller needs the failure, not only that nothing was left.
    throw err.errorcode === ErrorCode.INSUFFICIENT_CAPACITY
      ? new ApiError(
          err.errorcode,
          err.cserrorcode,
          `${err.message}; the last start failed: ${lastError.message}`,
        )
      : new ApiError(err.errorcode, err.cserrorcode, `Unable to start VM ${vm.name}: ${err.message}`);
  }
}

async function hostIsUp(ctx: Pick<CallContext, 'app'>, hostId: number): Promise<boolean> {
  const host = await ctx.app.store.db
    .selectFrom('hosts')
    .select('state')
    .where('id', '=', hostId)
    .executeTakeFirst();
  return host?.state === 'Up';
}

/** Releases the host capacity a VM held and clears its placement. */
async function leaveHost(ctx: Pick<CallContext, 'app'>, vm: VmRow): Promise<void> {
  if (vm.host_id !== null) await releaseHost(ctx.app.store.db, vm.host_id, cpuMhzOf(vm), memoryOf(vm));
}

/**
 * Stops a Running VM; `forced` powers it off and marks it Stopped even if its host cannot be
 * reached — but not while the host is Up: its agent is connected to some server, so the VM may
 * well still run, and a destroy or expunge going on would delete a disk QEMU still writes (the HA
 * suite saw it when the server holding the host died while it forwarded the stop).
 */
export async function stopVm(ctx: CallContext, vm: VmRow, forced = false): Promise<VmRow> {
  const { app } = ctx;
  if (vm.state === 'Stopped') return vm;
  let current = await app.store.db.transaction().execute((tx) => transition(ctx, tx, vm, 'stop'));
  try {
    if (vm.host_id !== null)
      await app.agents.call(vm.host_id, 'stopVm', { name: vm.instance_name, force: forced });
  } catch (e) {
    if (!forced || (vm.host_id !== null && (await hostIsUp(ctx, vm.host_id)))) {
      await app.store.db
        .transaction()
        .execute((tx) => transition(ctx, tx, current, 'stopFailed', {}, toApiError(e).message));
      throw e;
    }
  }
  await leaveHost(ctx, vm);
  current = await app.store.db
    .transaction()
    .execute((tx) => transition(ctx, tx, current, 'stopped', { host_id: null }));
  await refreshPeersOf(app, vm.id);
  return current;
}

export async function rebootVm(ctx: CallContext, vm: VmRow): Promise<VmRow> {
  if (vm.state !== 'Running' || vm.host_id === null) throw wrongState(vm, 'reboot');
  await ctx.app.agents.call(vm.host_id, 'rebootVm', { name: vm.instance_name });
  return reloadVm(ctx, vm.id);
}

/**
 * Adds or removes a VM's counted resources (instances, CPUs, memory) inside `tx`. Every query
 * here must use `tx`: on SQLite the transaction holds the only connection.
 */
async function count(ctx: Pick<CallContext, 'app'>, tx: Tx, vm: VmRow, sign: 1 | -1): Promise<void> {
  const account = await tx
    .selectFrom('accounts')
    .selectAll()
    .where('id', '=', vm.account_id)
    .executeTakeFirst();
  if (!account) return;
  await reserve(ctx, tx, account, ResourceKind.Instance, sign);
  await reserve(ctx, tx, account, ResourceKind.Cpu, sign * vm.cpu_number);
  await reserve(ctx, tx, account, ResourceKind.Memory, sign * vm.memory_mb);
}

/** Destroys a VM (stopping it first); it stays listed as Destroyed until expunged or recovered. */
export async function destroyVm(ctx: CallContext, vm: VmRow, expunge: boolean): Promise<VmRow> {
  let current = vm;
  if (['Running', 'Starting', 'Stopping'].includes(current.state)) current = await stopVm(ctx, current, true);
  if (current.state !== 'Destroyed') {
    // Concurrent destroys of one account's VMs update the same count rows: on MariaDB that can
    // deadlock (the HA suite's load found it), so the transaction is run again.
    const stopped = current;
    current = await inTransaction(ctx.app.store, async (tx) => {
      const next = await transition(ctx, tx, stopped, 'destroy');
      await count(ctx, tx, stopped, -1);
      return next;
    });
  }
  if (expunge) await expungeVm(ctx, current);
  return reloadVm(ctx, vm.id);
}

export async function recoverVm(ctx: CallContext, vm: VmRow): Promise<VmRow> {
  if (vm.state !== 'Destroyed') throw wrongState(vm, 'recover');
  return ctx.app.store.db.transaction().execute(async (tx) => {
    await count(ctx, tx, vm, 1);
    return transition(ctx, tx, vm, 'recover');
  });
}

/**
 * Removes a VM for good: its ROOT disk is deleted, data disks are detached and kept, its NICs and
 * addresses are released. Works from Destroyed, Stopped or Error.
 */
export async function expungeVm(ctx: CallContext, vm: VmRow): Promise<void> {
  const { app } = ctx;
  let current = vm;
  if (current.state === 'Running') current = await stopVm(ctx, current, true);
  // An expunge started here goes back to Destroyed if its disks cannot be deleted; one left
  // half-done by a dead job (recovery) stays Expunging for the next try, when the host is back.
  const resumed = current.state === 'Expunging';
  if (!resumed) {
    const from = current;
    current = await inTransaction(app.store, async (tx) => {
      const next = await transition(ctx, tx, from, 'expunge');
      // A Stopped or Error VM is counted off as its expunge starts, so an Expunging VM never
      // counts: an expunge finished by recovery, or failed back to Destroyed, counts nothing twice.
      if (from.state !== 'Destroyed') await count(ctx, tx, from, -1);
      return next;
    });
  }
  const volumes = await volumesOf(ctx, vm.id);
  try {
    // VM snapshots live on the volumes' pools: they go before the disks do.
    await deleteVmSnapshotsOf(ctx, vm.id);
    for (const v of volumes.filter((x) => x.type === 'ROOT')) await deleteOnPool(ctx, v);
  } catch (e) {
    // The disks' host could not delete them (unreachable: its server died, say): the VM goes back
    // to Destroyed, uncounted, with its ROOT disk — a state no job has to finish, which expunging
    // again retries — rather than staying Expunging with nothing to finish it.
    if (resumed) throw e;
    const expunging = current;
    await app.store.db
      .transaction()
      .execute((tx) => transition(ctx, tx, expunging, 'expungeFailed', {}, toApiError(e).message));
    throw e;
  }
  const ruleNetworks = await inTransaction(app.store, async (tx) => {
    for (const v of volumes) {
      if (v.type === 'ROOT') await removeVolumeRecord(ctx, tx, v);
      else
        await tx
          .updateTable('volumes')
          .set({ vm_id: null, device_id: null, attached: null })
          .where('id', '=', v.id)
          .execute();
    }
    // Port forwards, static NAT and load balancer memberships pointing at the VM go before its NICs.
    const networks = [...(await removeVmFromLoadBalancers(tx, vm.id)), ...(await removeVmRules(tx, vm.id))];
    await releaseNics(ctx, tx, vm.id);
    await removeVmFromSecurityGroups(ctx, tx, vm.id);
    await leaveAffinityGroups(tx, vm.id);
    await tx
      .deleteFrom('resource_tags')
      .where('resource_type', '=', 'UserVm')
      .where('resource_id', '=', vm.id)
      .execute();
    await tx
      .updateTable('vms')
      .set({ state: 'Expunged', removed: app.clock.now(), host_id: null })
      .where('id', '=', vm.id)
      .execute();
    return networks;
  });
  // Stopped VMs keep their router entries (as upstream); expunged ones lose them.
  await removeRouterEntries(app, vm.id);
  await reapplyNetworkRules(app, ruleNetworks, `VM ${vm.name} was expunged`);
}

/** Releases a VM's placement after it was found powered off behind our back. */
export async function markStoppedOutOfBand(
  ctx: Pick<CallContext, 'app'>,
  vm: VmRow,
  why: string,
): Promise<void> {
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await transition(ctx, tx, vm, 'poweredOff', { host_id: null }, why);
  });
  await leaveHost(ctx, vm);
  await refreshPeersOf(ctx.app, vm.id);
}

/** Where a Running VM may live-migrate: its cluster, its size, tags and dedication, not its host. */
export async function migrationRequest(ctx: CallContext, vm: VmRow, hostId?: number): Promise<HostRequest> {
  return {
    zoneId: vm.zone_id,
    clusterId: vm.cluster_id ?? undefined,
    hostId,
    cpuMhz: cpuMhzOf(vm),
    memoryBytes: memoryOf(vm),
    hostTags: await hostTagsOf(ctx, vm),
    hypervisor: vm.hypervisor,
    accountId: vm.account_id,
    avoid: new Set(vm.host_id === null ? [] : [vm.host_id]),
    dedication: await dedicationRule(ctx, vm),
  };
}

/**
 * Live-migrates a Running VM to another host (the given one, or one the planner picks in the same
 * cluster): capacity is reserved on the destination first and released on the source after.
 */
export async function migrateVm(ctx: CallContext, vm: VmRow, hostId?: number): Promise<VmRow> {
  const { app } = ctx;
  if (vm.state !== 'Running' || vm.host_id === null)
    throw invalidParameter(`VM ${vm.name} must be Running to be migrated live (it is ${vm.state})`);
  const source = vm.host_id;
  if (hostId === source) throw invalidParameter(`VM ${vm.name} already runs on that host`);
  await refuseLocalStorageMigration(ctx, vm);
  // Affinity rules hold for live migration too: a group's members are not brought together (or apart).
  const placement = await placeWithAffinity(
    await affinityRules(ctx, vm),
    await migrationRequest(ctx, vm, hostId),
    (req) => reserveHost(ctx, req),
  );
  const reservation = await holdReservation(app, vm, placement);
  let current = await app.store.db.transaction().execute((tx) => transition(ctx, tx, vm, 'migrate'));
  try {
    const nics = await networkForStart(ctx, vm, placement);
    const spec = await vmSpec(ctx, vm, await volumesOf(ctx, vm.id), nics);
    const prepared = await app.agents.call(placement.hostId, 'prepareMigration', { vm: spec });
    // QEMU migrates over the hosts' management network, to the port the destination opened.
    const destination = await app.store.db
      .selectFrom('hosts')
      .select('private_ip')
      .where('id', '=', placement.hostId)
      .executeTakeFirst();
    await app.agents.call(source, 'migrateVm', {
      name: vm.instance_name,
      destination: {
        host: placement.hostName,
        address: destination?.private_ip ?? undefined,
        port: prepared.port,
      },
    });
  } catch (e) {
    await releaseHost(app.store.db, placement.hostId, placement.cpuMhz, placement.memoryBytes);
    await dropReservation(app, reservation);
    await app.store.db
      .transaction()
      .execute((tx) => transition(ctx, tx, current, 'migrateFailed', {}, toApiError(e).message));
    throw e;
  }
  await releaseHost(app.store.db, source, placement.cpuMhz, placement.memoryBytes);
  current = await app.store.db.transaction().execute((tx) =>
    transition(ctx, tx, current, 'migrated', {
      host_id: placement.hostId,
      last_host_id: placement.hostId,
      pod_id: placement.podId,
      cluster_id: placement.clusterId,
    }),
  );
  await dropReservation(app, reservation);
  return current;
}
