/**
 * Host capacity a VM start or migration has reserved but not yet turned into a placement (the VM
 * row names the host only once the host runs it). While the job talks to the host, the
 * reservation is recorded as a cluster_locks row of this server,
 * `reservation:<host id>:<cpu MHz>:<memory bytes>:<VM uuid>`, deleted when the VM is placed or the
 * reservation given back. A server killed in between leaves the row: the takeover of that server
 * (jobs/takeover.ts) gives the capacity back unless the VM ended up placed on that host, so a
 * reservation never outlives its owner, even while other servers keep the cloud busy.
 */
import type { App } from '../context.ts';
import type { VmRow } from '../db/schema.ts';
import { tryLock, unlock } from '../jobs/locks.ts';
import { onRecovery } from '../jobs/recovery.ts';
import type { Placement } from './planner.ts';
import { releaseHost } from './planner.ts';

const PREFIX = 'reservation';
/** VM states in which a VM's row accounts for the capacity of its host. */
const ON_HOST = ['Starting', 'Running', 'Stopping', 'Migrating'];

/** Records a reservation just made for `vm`; returns what `dropReservation` takes. */
export async function holdReservation(
  app: App,
  vm: Pick<VmRow, 'uuid'>,
  placement: Pick<Placement, 'hostId' | 'cpuMhz' | 'memoryBytes'>,
): Promise<string | undefined> {
  const name = `${PREFIX}:${placement.hostId}:${placement.cpuMhz}:${placement.memoryBytes}:${vm.uuid}`;
  // A VM has one start or migration at a time (its job holds it): the name is free.
  return tryLock(app, [name]).catch((err) => {
    app.log.warn({ err, vm: vm.uuid }, 'could not record a host reservation');
    return undefined;
  });
}

/** The reservation is now the VM's placement, or was given back. */
export async function dropReservation(app: App, token: string | undefined): Promise<void> {
  if (token)
    await unlock(app, token).catch((err) => app.log.warn({ err }, 'could not drop a host reservation'));
}

// A dead server's reservations (only within a takeover's scope: the whole-cloud pass recounts).
onRecovery(async (app, scope) => {
  if (!scope) return { settled: 0, pending: false };
  let settled = 0;
  for (const id of scope.ids(PREFIX)) {
    const [host, cpu, mem, uuid] = id.split(':');
    const placed = await app.store.db
      .selectFrom('vms')
      .select('id')
      .where('uuid', '=', uuid)
      .where('host_id', '=', Number(host))
      .where('state', 'in', ON_HOST)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (placed) continue;
    await releaseHost(app.store.db, Number(host), Number(cpu), Number(mem));
    settled++;
  }
  return { settled, pending: false };
});
