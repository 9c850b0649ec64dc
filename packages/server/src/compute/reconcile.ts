/**
 * What compute does when hosts report in or change: VMs powered off behind our back become
 * Stopped, and HA-enabled ones are queued for a restart (ha.vm.restart.hostup, ha/vm-ha.ts); hosts with VMs cannot be deleted; a host entering maintenance has its running VMs
 * migrated away, or the request says why not. The VMs of a host that went Down stay as they are
 * until VM HA proves the host dead (ha/monitor.ts): a Down host may still run them.
 */

import { onVmStatesReported, type VmStateReport } from '../agents/gateway.ts';
import type { App, CallContext } from '../context.ts';
import type { VmRow } from '../db/schema.ts';
import { resourceInUse } from '../errors.ts';
import { HA_RESTART_HOST_UP } from '../ha/settings.ts';
import { queueRestart } from '../ha/vm-ha.ts';
import { loadCaller } from '../iam/caller.ts';
import { recordAlert } from '../infra/alerts.ts';
import { onHostDelete, onHostMaintenance } from '../infra/hosts.ts';
import { onRecovery } from '../jobs/recovery.ts';
import { transition, type VmEvent } from './vm-state.ts';
import { expungeVm, markStoppedOutOfBand, migrateVm } from './vms.ts';

/** ALERT.USERVM, as VM HA's other alerts. */
const VM_ALERT = 8;

/**
 * Hosts per reconciliation query. A ping of 25,000 hosts reports 1,000,000 VMs: in one query their
 * rows would hold the event loop for seconds (better-sqlite3 is synchronous), long enough for
 * agents to take the server for dead; in parts, with a turn of the event loop between them, pings,
 * answers and API calls go on meanwhile. It also keeps the id list within every database's limit
 * of bound parameters.
 */
const HOSTS_PER_QUERY = 500;

/**
 * A host's report is compared with the records in full at least every this many pings. A ping
 * whose powered-on VMs are those of the host's last comparison has nothing new to tell: the VMs
 * recorded Running and missing from the report were stopped then, and a VM that starts or stops on
 * the host changes the report. What only the records can change (a VM recorded Running on a host
 * that does not run it, after a failure elsewhere) waits for the next full comparison. At 25,000
 * hosts and a million VMs, comparing every ping read a million rows a minute.
 */
const FULL_COMPARISON_EVERY = 5;

/** Per server: each host's last compared report (its powered-on VMs' digest) and the pings since. */
const compared = new WeakMap<App, Map<number, { digest: string; pings: number }>>();

onVmStatesReported(async (app: App, reports) => {
  const last = compared.get(app) ?? new Map<number, { digest: string; pings: number }>();
  compared.set(app, last);
  const due: { report: VmStateReport; digest: string }[] = [];
  for (const report of reports) {
    const digest = powerOnDigest(report);
    const before = last.get(report.hostId);
    if (report.startup || before?.digest !== digest || ++before.pings >= FULL_COMPARISON_EVERY)
      due.push({ report, digest });
  }
  for (let i = 0; i < due.length; i += HOSTS_PER_QUERY) {
    if (i > 0) await new Promise((resolve) => setImmediate(resolve));
    const part = due.slice(i, i + HOSTS_PER_QUERY);
    await reconcile(
      app,
      part.map((d) => d.report),
    );
    for (const d of part) last.set(d.report.hostId, { digest: d.digest, pings: 0 });
  }
});

/**
 * The names of a report's powered-on VMs, in any order, as a count and two 32-bit sums of their
 * FNV-1a hashes: a set that changes changes it (but for a collision, which the next full
 * comparison catches), at no cost of sorting or keeping the names.
 */
function powerOnDigest(report: VmStateReport): string {
  let count = 0;
  let sum = 0;
  let xor = 0;
  for (const vm of report.vms) {
    if (vm.state !== 'PowerOn') continue;
    let h = 0x811c9dc5;
    for (let i = 0; i < vm.name.length; i++) h = Math.imul(h ^ vm.name.charCodeAt(i), 0x01000193);
    count++;
    sum = (sum + h) | 0;
    xor ^= h;
  }
  return `${count}:${sum}:${xor}`;
}

/** VMs Running on these hosts in the records that their host does not report powered on become Stopped. */
async function reconcile(app: App, reports: VmStateReport[]): Promise<void> {
  const hostIds = reports.map((r) => r.hostId);
  if (hostIds.length === 0) return;
  const db = app.store.db;
  // Only what the comparison needs: the whole rows of every running VM cost ten times more to read.
  const running = await db
    .selectFrom('vms')
    .select(['id', 'host_id', 'instance_name'])
    .where('host_id', 'in', hostIds)
    .where('state', '=', 'Running')
    .where('removed', 'is', null)
    .execute();
  if (running.length === 0) return;
  const on = new Map(
    reports.map((r) => [r.hostId, new Set(r.vms.filter((v) => v.state === 'PowerOn').map((v) => v.name))]),
  );
  const isOn = (vm: { host_id: number | null; instance_name: string }) =>
    on.get(vm.host_id!)?.has(vm.instance_name) ?? false;
  const off = running.filter((vm) => !isOn(vm)).map((vm) => vm.id);
  for (let i = 0; i < off.length; i += HOSTS_PER_QUERY) {
    const rows = await db
      .selectFrom('vms')
      .selectAll()
      .where('id', 'in', off.slice(i, i + HOSTS_PER_QUERY))
      .where('host_id', 'in', hostIds)
      .where('state', '=', 'Running')
      .where('removed', 'is', null)
      .execute();
    for (const vm of rows) if (!isOn(vm)) await stoppedOutOfBand(app, vm);
  }
}

async function stoppedOutOfBand(app: App, vm: VmRow): Promise<void> {
  try {
    await markStoppedOutOfBand({ app }, vm, 'the host reports it powered off');
  } catch (err) {
    app.log.warn({ err, vm: vm.uuid }, 'could not record a VM stopped out of band');
    return;
  }
  // Running in the record means no stop was asked for (a stop goes through Stopping): the guest
  // crashed or powered itself off. An HA VM is started again, as upstream does.
  if (vm.ha_enabled !== 1 || !app.settings.get(HA_RESTART_HOST_UP)) return;
  await queueRestart(app, vm.id, vm.host_id!);
  await recordAlert(app, {
    type: VM_ALERT,
    subject: `HA VM ${vm.name} stopped on its host without a stop request; it is started again`,
    zoneId: vm.zone_id,
    sourceKey: `ha-crashed:${vm.id}:${app.clock.now()}`,
  });
}

onHostDelete(async (ctx, host) => {
  const vm = await ctx.app.store.db
    .selectFrom('vms')
    .select('name')
    .where('host_id', '=', host.id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (vm)
    throw resourceInUse(`Host ${host.name} still has VMs (e.g. ${vm.name}); stop or migrate them first`);
});

/** Moves every running VM off a host entering maintenance, to other hosts of its cluster. */
onHostMaintenance(async (ctx: CallContext, host) => {
  const vms = await ctx.app.store.db
    .selectFrom('vms')
    .selectAll()
    .where('host_id', '=', host.id)
    .where('removed', 'is', null)
    .execute();
  for (const vm of vms) {
    if (vm.state !== 'Running')
      throw resourceInUse(`Host ${host.name} cannot enter maintenance: VM ${vm.name} is ${vm.state}`);
    try {
      await migrateVm(ctx, vm);
    } catch (e) {
      throw resourceInUse(
        `Host ${host.name} cannot enter maintenance: VM ${vm.name} could not be migrated: ${(e as Error).message}`,
      );
    }
  }
});

/** What a VM left in a transient state by a job that died becomes (see jobs/recovery.ts). */
const SETTLE: Record<string, VmEvent> = {
  Starting: 'startFailed',
  Stopping: 'stopFailed',
  Migrating: 'migrateFailed',
  Restoring: 'error',
};

onRecovery(async (app, scope) => {
  // A dead server's VMs: those its jobs held.
  const held = scope?.ids('VirtualMachine');
  if (held?.length === 0) return { settled: 0, pending: false };
  let q = app.store.db
    .selectFrom('vms')
    .selectAll()
    .where('state', 'in', [...Object.keys(SETTLE), 'Expunging'])
    .where('removed', 'is', null);
  if (held) q = q.where('uuid', 'in', held);
  const vms = await q.execute();
  let settled = 0;
  let pending = false;
  for (const vm of vms) {
    const caller = await loadCaller(app, vm.user_id);
    if (!caller) continue;
    const ctx = { app, caller };
    try {
      if (vm.state === 'Expunging') {
        // Half-expunged: finish it. Its disks are deleted through a host, which may still be
        // reconnecting after a restart; then a later try finishes it.
        await expungeVm(ctx, vm);
      } else {
        // A stop that never reached a host it had (none: it was not placed) leaves it Stopped.
        const event = vm.state === 'Stopping' && vm.host_id === null ? 'stopped' : SETTLE[vm.state];
        await app.store.db
          .transaction()
          .execute((tx) =>
            transition(
              ctx,
              tx,
              vm,
              event,
              vm.state === 'Starting' ? { host_id: null } : {},
              'the management server running its job stopped',
            ),
          );
      }
      settled++;
    } catch (err) {
      pending = true;
      app.log.warn({ err, vm: vm.uuid, state: vm.state }, 'could not settle a VM left by an interrupted job');
    }
  }
  return { settled, pending };
});
