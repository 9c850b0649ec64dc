/**
 * Each host's HA record (host_ha, migration 0035): whether Nimbostack may fence it by itself, the
 * host-HA provider named for it, and the state its investigations reached, with upstream's state
 * names. A host without a row has HA enabled with its hypervisor's provider: VM HA needs no setup.
 */
import type { App } from '../context.ts';
import type { HostHaTable, HostRow } from '../db/schema.ts';
import { recordEvent } from '../events/events.ts';
import { systemOwner } from '../network/common.ts';

/** Upstream's HAConfig.HAState names that Nimbostack uses. */
export type HaState =
  | 'Disabled'
  | 'Available'
  | 'Suspect'
  | 'Checking'
  | 'Degraded'
  | 'Fenced'
  | 'Ineligible';

/** Host-HA providers by hypervisor (upstream's provider names; LXC has none upstream). */
export const HA_PROVIDERS: Record<string, string> = {
  KVM: 'kvmhaprovider',
  Simulator: 'simulatorhaprovider',
};

type HostHaRow = Omit<HostHaTable, 'id'> & { id: number };

export async function hostHaRows(
  app: Pick<App, 'store'>,
  hostIds: number[],
): Promise<Map<number, HostHaRow>> {
  const out = new Map<number, HostHaRow>();
  for (let i = 0; i < hostIds.length; i += 500) {
    const rows = await app.store.db
      .selectFrom('host_ha')
      .selectAll()
      .where('host_id', 'in', hostIds.slice(i, i + 500))
      .execute();
    for (const r of rows) out.set(r.host_id, r);
  }
  return out;
}

/** The state a host without a row (or an enabled one never investigated) shows. */
function defaultState(host: Pick<HostRow, 'state'>): HaState {
  return host.state === 'Up' ? 'Available' : 'Suspect';
}

/** The `hostha` object of listHosts and of the host-HA commands. */
export function presentHostHa(host: Pick<HostRow, 'uuid' | 'state' | 'hypervisor'>, row?: HostHaRow) {
  const enabled = row ? row.enabled === 1 : true;
  return {
    hostid: host.uuid,
    haenable: enabled,
    haprovider: row?.provider ?? HA_PROVIDERS[host.hypervisor ?? ''],
    hastate: !enabled ? 'Disabled' : ((row?.state as HaState | undefined) ?? defaultState(host)),
  };
}

/** Whether Nimbostack may fence the host by itself (no disableHAForHost). */
export async function haEnabled(app: Pick<App, 'store'>, hostId: number): Promise<boolean> {
  const row = (await hostHaRows(app, [hostId])).get(hostId);
  return row ? row.enabled === 1 : true;
}

/** Changes a host's HA row (made on first use); a new state is recorded as HA.STATE.TRANSITION. */
export async function updateHostHa(
  app: App,
  host: Pick<HostRow, 'id' | 'uuid' | 'name'>,
  changes: { state?: HaState; detail?: string | null; provider?: string | null; enabled?: 0 | 1 },
): Promise<void> {
  const now = app.clock.now();
  await app.store.db.transaction().execute(async (tx) => {
    const row = await tx.selectFrom('host_ha').selectAll().where('host_id', '=', host.id).executeTakeFirst();
    if (!row)
      await tx
        .insertInto('host_ha')
        .values({
          host_id: host.id,
          provider: changes.provider ?? null,
          enabled: changes.enabled ?? 1,
          state: changes.state ?? 'Available',
          detail: changes.detail ?? null,
          updated: now,
        })
        .execute();
    else
      await tx
        .updateTable('host_ha')
        .set({ ...changes, updated: now })
        .where('id', '=', row.id)
        .execute();
    const before = row?.state;
    if (changes.state && changes.state !== before)
      await recordEvent({ app }, tx, await systemOwner(app, tx), {
        type: 'HA.STATE.TRANSITION',
        level: changes.state === 'Fenced' || changes.state === 'Degraded' ? 'WARN' : 'INFO',
        description: `host ${host.name}: HA state ${before ?? 'Available'} -> ${changes.state}${changes.detail ? ` (${changes.detail})` : ''}`,
        resourceType: 'Host',
        resourceId: host.uuid,
      });
  });
}
