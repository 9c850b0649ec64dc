/**
 * Crash recovery: what a management server killed in the middle of its jobs (kill -9, an OOM kill,
 * a power cut) left half-done. Its jobs are failed by JobRunner.failOrphans; this settles the
 * objects those jobs left in states only a running job may hold, and counts host capacity again,
 * which jobs change in steps of their own (a start reserves the host before it places the VM, a
 * stop releases it before the VM is Stopped), so a kill between two steps leaves it wrong.
 *
 * Two ways to run. Limited to a scope (the names a server declared Down held in cluster_locks,
 * takeover.ts): only those objects are settled, while other servers go on with their jobs. Over
 * the whole cloud (start-up, and heartbeats while something is owed): only while no job is
 * unfinished and no step holds a lock anywhere, since an unfinished job's transient states and
 * reservations are its own; host capacity is counted again only this way. At start-up that holds
 * (the API is not listening yet and the previous run's jobs were just failed) unless other
 * servers share the database and are busy; then, and when something could not be settled yet (an
 * expunge needs its host, which reconnects a few seconds after a restart), heartbeats try again.
 *
 * What each state becomes, as upstream's management server does on start:
 * - VM Starting: Stopped (the start did not finish; the host's report corrects it if it runs);
 * - VM Stopping: Running on its host (the stop did not finish; a host that reports the VM off has
 *   it marked Stopped by the power-state reconciliation);
 * - VM Migrating: Running on the source host, where it was until the migration finished;
 * - VM Restoring: Error (the ROOT disk may be half-replaced): destroy or expunge it;
 * - VM Expunging: the expunge is finished (disks, NICs, addresses, rules go);
 * - snapshot Allocated or Creating: Error, its reserved storage given back.
 */
import { onHostStatusChange } from '../agents/gateway.ts';
import type { App } from '../context.ts';
import { inTransaction } from '../db/connection.ts';

/** VM states that hold CPU and memory on their host, as the planner counts them. */
const ON_HOST = ['Starting', 'Running', 'Stopping', 'Migrating'];
const MiB = 2 ** 20;

/**
 * The objects a dead server held (cluster_locks names: `VirtualMachine:<uuid>` for a job's
 * object, `network:<key>` for a router step...); undefined: every object of the cloud.
 */
export class RecoveryScope {
  constructor(readonly names: Set<string>) {}

  /** The ids after `<prefix>:` of the names of one kind (job target types, or `network`). */
  ids(prefix: string): string[] {
    const out: string[] = [];
    for (const n of this.names) if (n.startsWith(`${prefix}:`)) out.push(n.slice(prefix.length + 1));
    return out;
  }
}

/** Settles one kind of object (within `scope` when given); `pending` when some could not be yet. */
export type Settler = (app: App, scope?: RecoveryScope) => Promise<{ settled: number; pending: boolean }>;

const settlers: Settler[] = [];

/** Capabilities register how their objects are settled (jobs/ depends on none of them). */
export function onRecovery(settle: Settler): void {
  settlers.push(settle);
}

export interface RecoveryResult {
  /** Whether it ran (no job was unfinished). */
  ran: boolean;
  /** Objects moved out of a transient state. */
  settled: number;
  /** Hosts whose allocated CPU or memory was counted again to a different figure. */
  recounted: number;
  /** Whether something is left for a later try. */
  pending: boolean;
}

/** Per server: whether a run left something to settle, and the run in progress. */
const pendingFor = new WeakMap<App, boolean>();
const runningFor = new WeakMap<App, Promise<RecoveryResult>>();
/** Per server: a server was found killed and host capacity has not been counted again since. */
const recountOwed = new WeakSet<App>();

/** Runs recovery again when the last run left something (heartbeats, a host coming back). */
export async function recoverIfPending(app: App): Promise<void> {
  if (pendingFor.get(app) || recountOwed.has(app)) await recoverInterruptedWork(app);
}

/** A server was found killed: the next whole-cloud run counts host capacity again. */
export function markCrashed(app: App): void {
  recountOwed.add(app);
}

/** Settles the objects of `scope` only (a dead server's, takeover.ts); runs beside live jobs. */
export async function settleScope(
  app: App,
  scope: Set<string>,
): Promise<{ settled: number; pending: boolean }> {
  return runSettlers(app, new RecoveryScope(scope));
}

async function runSettlers(app: App, scope?: RecoveryScope): Promise<{ settled: number; pending: boolean }> {
  let settled = 0;
  let pending = false;
  for (const settle of settlers) {
    try {
      const r = await settle(app, scope);
      settled += r.settled;
      pending ||= r.pending;
    } catch (err) {
      pending = true;
      app.log.warn({ err }, 'could not settle work left by an interrupted job');
    }
  }
  return { settled, pending };
}

// A host that reconnects after a restart is what a pending expunge or rule change waits for.
onHostStatusChange(async (app, _hostIds, status) => {
  if (status !== 'Up' || !pendingFor.get(app)) return;
  recoverIfPending(app).catch((err) => app.log.warn({ err }, 'recovery after a host reconnected failed'));
});

/**
 * Settles what dead jobs left (see the file comment); one run at a time per server. `crashed`
 * says a server was found killed (its jobs failed, or its previous run never marked itself Down):
 * host capacity is then counted again even when no object needed settling, since a kill between
 * a reservation and the VM's placement leaves no other trace. A server stopped cleanly left the
 * counts right, and they are not touched.
 */
export function recoverInterruptedWork(app: App, crashed = false): Promise<RecoveryResult> {
  if (crashed) recountOwed.add(app);
  let run = runningFor.get(app);
  if (!run) {
    run = settleAll(app, recountOwed.has(app)).then(
      (r) => {
        pendingFor.set(app, r.pending);
        return r;
      },
      (err) => {
        pendingFor.set(app, true);
        throw err;
      },
    );
    runningFor.set(app, run);
    run.finally(() => runningFor.delete(app)).catch(() => undefined);
  }
  return run;
}

async function settleAll(app: App, crashed: boolean): Promise<RecoveryResult> {
  const busy = await app.store.db
    .selectFrom('async_jobs')
    .select('id')
    .where('status', '=', 0)
    .executeTakeFirst();
  // A step under a lock (a router start, a recurring snapshot) is work in progress too.
  const stepping = await app.store.db
    .selectFrom('cluster_locks')
    .select('name')
    .where('expires', 'is', null)
    .executeTakeFirst();
  if (busy || stepping) return { ran: false, settled: 0, recounted: 0, pending: true };
  const { settled, pending } = await runSettlers(app);
  const recounted = crashed || settled > 0 ? await recountHostCapacity(app) : 0;
  recountOwed.delete(app);
  if (settled > 0 || recounted > 0)
    app.log.warn(
      { settled, recounted, pending },
      'settled work left unfinished by a stopped management server',
    );
  return { ran: true, settled, recounted, pending };
}

/**
 * Sets each host's allocated CPU and memory to what its VMs hold. Only sound while no job runs: a
 * start in progress holds a reservation that no VM row shows yet.
 */
export async function recountHostCapacity(app: App): Promise<number> {
  return inTransaction(app.store, async (tx) => {
    const held = await tx
      .selectFrom('vms')
      .select((eb) => [
        'host_id',
        eb.fn.sum<number>(eb('cpu_number', '*', eb.ref('cpu_speed'))).as('cpu'),
        eb.fn.sum<number>('memory_mb').as('mem'),
      ])
      .where('state', 'in', ON_HOST)
      .where('removed', 'is', null)
      .where('host_id', 'is not', null)
      .groupBy('host_id')
      .execute();
    const byHost = new Map(
      held.map((h) => [h.host_id, { cpu: Number(h.cpu ?? 0), mem: Number(h.mem ?? 0) * MiB }]),
    );
    const hosts = await tx
      .selectFrom('hosts')
      .select(['id', 'cpu_allocated_mhz', 'memory_allocated_bytes'])
      .where('removed', 'is', null)
      .execute();
    let changed = 0;
    for (const h of hosts) {
      const want = byHost.get(h.id) ?? { cpu: 0, mem: 0 };
      if (Number(h.cpu_allocated_mhz) === want.cpu && Number(h.memory_allocated_bytes) === want.mem) continue;
      await tx
        .updateTable('hosts')
        .set({ cpu_allocated_mhz: want.cpu, memory_allocated_bytes: want.mem })
        .where('id', '=', h.id)
        .execute();
      changed++;
    }
    return changed;
  });
}
