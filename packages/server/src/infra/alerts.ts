/**
 * Alerts: conditions an operator should act on (listAlerts, archiveAlerts, deleteAlerts,
 * listAlertTypes), and the capacity checker that raises them when a threshold is crossed. A
 * condition that persists is reported once; when it clears, its alert is marked resolved so that
 * crossing the threshold again raises a new one.
 */
import { formatDate } from '../clock.ts';
import type { App } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { invalidParameter } from '../errors.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { startScheduled } from '../jobs/scheduled.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import type { SettingDef } from '../settings/settings.ts';
import {
  CAPACITY_CHECK_PERIOD,
  type Capacity,
  CapacityType,
  CPU_THRESHOLD,
  computeCapacities,
  LOCAL_STORAGE_THRESHOLD,
  MEMORY_THRESHOLD,
  PRIVATE_IP_THRESHOLD,
  percentUsed,
  SECONDARY_STORAGE_THRESHOLD,
  STORAGE_ALLOCATED_THRESHOLD,
  STORAGE_USED_THRESHOLD,
} from './capacity.ts';
import { likeOp } from './common.ts';

/** Upstream's alert types (AlertManager.AlertType): number and name. */
export const ALERT_TYPES: [number, string][] = [
  [0, 'ALERT.MEMORY'],
  [1, 'ALERT.CPU'],
  [2, 'ALERT.STORAGE'],
  [3, 'ALERT.STORAGE.ALLOCATED'],
  [4, 'ALERT.NETWORK.PUBLICIP'],
  [5, 'ALERT.NETWORK.PRIVATEIP'],
  [6, 'ALERT.STORAGE.SECONDARY'],
  [7, 'ALERT.COMPUTE.HOST'],
  [8, 'ALERT.USERVM'],
  [9, 'ALERT.SERVICE.DOMAINROUTER'],
  [10, 'ALERT.SERVICE.CONSOLEPROXY'],
  [11, 'ALERT.NETWORK.ROUTING'],
  [12, 'ALERT.STORAGE.MISC'],
  [13, 'ALERT.USAGE'],
  [14, 'ALERT.MANAGEMENT'],
  [15, 'ALERT.NETWORK.DOMAINROUTERMIGRATE'],
  [16, 'ALERT.SERVICE.CONSOLEPROXYMIGRATE'],
  [17, 'ALERT.USERVM.MIGRATE'],
  [18, 'ALERT.NETWORK.VLAN'],
  [19, 'ALERT.SERVICE.SSVM'],
  [20, 'ALERT.USAGE.RESULT'],
  [21, 'ALERT.STORAGE.DELETE'],
  [22, 'ALERT.RESOURCE.COUNT'],
  [23, 'ALERT.USAGE.SANITY'],
  [24, 'ALERT.NETWORK.DIRECTPUBLICIP'],
  [25, 'ALERT.STORAGE.LOCAL'],
  [26, 'ALERT.RESOURCE.EXCEED'],
  [27, 'ALERT.TYPE.SYNC'],
  [28, 'ALERT.UPLOAD.FAILED'],
  [29, 'ALERT.OOBM.AUTHERROR'],
  [30, 'ALERT.HA.ACTION'],
  [31, 'ALERT.CA.CERT'],
];
const ALERT_NAMES = new Map(ALERT_TYPES);

/** Alert type, threshold and wording per capacity type. */
const CHECKS: Record<number, { alert: number; threshold: SettingDef<number>; what: string }> = {
  [CapacityType.MEMORY]: { alert: 0, threshold: MEMORY_THRESHOLD, what: 'Low Available Memory' },
  [CapacityType.CPU]: { alert: 1, threshold: CPU_THRESHOLD, what: 'Low Available CPU' },
  [CapacityType.STORAGE]: { alert: 2, threshold: STORAGE_USED_THRESHOLD, what: 'Low Available Storage' },
  [CapacityType.STORAGE_ALLOCATED]: {
    alert: 3,
    threshold: STORAGE_ALLOCATED_THRESHOLD,
    what: 'Remaining unallocated Storage is low',
  },
  [CapacityType.PRIVATE_IP]: {
    alert: 5,
    threshold: PRIVATE_IP_THRESHOLD,
    what: 'Number of unallocated private IPs is low',
  },
  [CapacityType.SECONDARY_STORAGE]: {
    alert: 6,
    threshold: SECONDARY_STORAGE_THRESHOLD,
    what: 'Low Available Secondary Storage',
  },
  [CapacityType.LOCAL_STORAGE]: {
    alert: 25,
    threshold: LOCAL_STORAGE_THRESHOLD,
    what: 'Low Available Local Storage',
  },
};

type CheckerApp = Pick<App, 'store' | 'settings' | 'clock' | 'ids'>;

export interface AlertInput {
  /** An upstream alert type number (ALERT_TYPES). */
  type: number;
  subject: string;
  zoneId?: number;
  podId?: number;
  clusterId?: number;
  /**
   * What raised it; while an unresolved alert with the same key exists no new one is recorded, so
   * a condition that persists (a host that stays down) is reported once.
   */
  sourceKey?: string;
}

/** Records an alert for operators (listAlerts); returns false when an open one with the key exists. */
export async function recordAlert(
  app: Pick<App, 'store' | 'clock' | 'ids'>,
  alert: AlertInput,
): Promise<boolean> {
  const db = app.store.db;
  if (alert.sourceKey) {
    const open = await db
      .selectFrom('alerts')
      .select('id')
      .where('source_key', '=', alert.sourceKey)
      .where('resolved', 'is', null)
      .executeTakeFirst();
    if (open) return false;
  }
  const now = app.clock.now();
  await insertId(app.store, db, 'alerts', {
    uuid: app.ids.uuid(),
    type: alert.type,
    name: ALERT_NAMES.get(alert.type) ?? `ALERT.${alert.type}`,
    subject: alert.subject,
    zone_id: alert.zoneId ?? null,
    pod_id: alert.podId ?? null,
    cluster_id: alert.clusterId ?? null,
    source_key: alert.sourceKey ?? null,
    sent_count: 1,
    created: now,
    last_sent: now,
    resolved: null,
    archived: 0,
  });
  return true;
}

/** Marks the open alert with this key resolved, once its condition has cleared. */
export async function resolveAlert(app: Pick<App, 'store' | 'clock'>, sourceKey: string): Promise<void> {
  await app.store.db
    .updateTable('alerts')
    .set({ resolved: app.clock.now() })
    .where('source_key', '=', sourceKey)
    .where('resolved', 'is', null)
    .execute();
}

function thresholdFor(app: CheckerApp, def: SettingDef<number>, c: Capacity): number {
  if (c.clusterId !== undefined && def.scopes?.includes('cluster'))
    return app.settings.at(def, 'cluster', c.clusterId);
  if (def.scopes?.includes('zone')) return app.settings.at(def, 'zone', c.zoneId);
  return app.settings.get(def);
}

/**
 * Compares every capacity figure with its notification threshold and records alerts. Returns the
 * alerts raised by this run (their subjects), for logs and tests.
 */
export async function checkCapacity(app: CheckerApp): Promise<string[]> {
  const db = app.store.db;
  const figures = await computeCapacities({ app }, 'cluster');
  const names = async (table: 'zones' | 'pods' | 'clusters') =>
    new Map((await db.selectFrom(table).select(['id', 'name']).execute()).map((r) => [r.id, r.name]));
  const [zones, pods, clusters] = await Promise.all([names('zones'), names('pods'), names('clusters')]);
  // One query for every open capacity alert, rather than one per figure: a large cloud has thousands.
  const openKeys = new Set(
    (
      await db
        .selectFrom('alerts')
        .select('source_key')
        .where('source_key', 'like', 'capacity:%')
        .where('resolved', 'is', null)
        .execute()
    ).map((a) => a.source_key),
  );
  const raised: string[] = [];
  for (const c of figures) {
    const check = CHECKS[c.type];
    if (!check || c.total <= 0) continue;
    const key = `capacity:${c.type}:${c.zoneId}:${c.podId ?? ''}:${c.clusterId ?? ''}`;
    const over = c.used / c.total > thresholdFor(app, check.threshold, c);
    const open = openKeys.has(key);
    if (over && !open) {
      const where =
        c.clusterId !== undefined
          ? `in cluster ${clusters.get(c.clusterId)} pod ${pods.get(c.podId ?? -1)} of availability zone ${zones.get(c.zoneId)}`
          : c.podId !== undefined
            ? `in pod ${pods.get(c.podId)} of availability zone ${zones.get(c.zoneId)}`
            : `in availability zone ${zones.get(c.zoneId)}`;
      const subject = `System Alert: ${check.what} ${where} (${percentUsed(c)}% used)`;
      await recordAlert(app, {
        type: check.alert,
        subject,
        zoneId: c.zoneId,
        podId: c.podId,
        clusterId: c.clusterId,
        sourceKey: key,
      });
      raised.push(subject);
    } else if (!over && open) {
      await resolveAlert(app, key);
    }
  }
  return raised;
}

/** Runs the capacity checker every capacity.check.period on the server holding its lease. */
export function startCapacityChecks(app: App): () => void {
  return startScheduled(app, {
    name: 'capacity-checks',
    everyMs: () => app.settings.get(CAPACITY_CHECK_PERIOD),
    run: async () => {
      const raised = await checkCapacity(app);
      if (raised.length > 0) app.log.warn({ alerts: raised }, 'capacity alerts raised');
    },
  });
}

function alertTypeNumber(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  const byName = ALERT_TYPES.find(([, name]) => name.toLowerCase() === v.toLowerCase());
  if (byName) return byName[0];
  if (!/^\d+$/.test(v)) throw invalidParameter(`Invalid alert type ${value}`);
  return Number(v);
}

export const listAlerts = defineCommand({
  name: 'listAlerts',
  description:
    'Lists the alerts not archived, newest first: capacity thresholds crossed, hosts down and similar events for operators. Keyword matches the alert text, ignoring case.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the alert with this ID.' }),
    type: p.string({ description: 'Only alerts of this type, by number or name (e.g. 0 or ALERT.MEMORY).' }),
    name: p.string({ description: 'Only alerts with exactly this name.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('alerts').where('archived', '=', 0);
    if (params.id) q = q.where('uuid', '=', params.id);
    const type = alertTypeNumber(params.type);
    if (type !== undefined) q = q.where('type', '=', type);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.keyword) q = q.where(likeEscaped('subject', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q.selectAll().orderBy('created', 'desc').orderBy('id', 'desc'),
      pageOf(app, params),
    ).execute();
    return listResult(
      rows.map((a) => ({
        id: a.uuid,
        type: a.type,
        name: a.name,
        description: a.subject,
        sent: formatDate(a.last_sent),
      })),
      Number(count),
    );
  },
});

const selectionParams = {
  ids: p.list({ of: 'uuid', description: 'Comma-separated IDs of the alerts to select.' }),
  type: p.string({
    description: 'Only alerts of this type, by number or name (e.g. 1 or ALERT.CPU; see listAlertTypes).',
  }),
  startdate: p.date({
    description: "Only alerts raised at or after this time (yyyy-MM-dd or yyyy-MM-dd'T'HH:mm:ssZ).",
  }),
  enddate: p.date({ description: 'Only alerts raised at or before this time; not before startdate.' }),
};

/** The alerts named by ids / type / date range (at least one must be given, as upstream). */
async function selectedAlertIds(
  app: App,
  params: { ids?: string[]; type?: string; startdate?: number; enddate?: number },
): Promise<number[]> {
  if (
    !params.ids?.length &&
    params.type === undefined &&
    params.startdate === undefined &&
    params.enddate === undefined
  )
    throw invalidParameter('Either ids, type, startdate or enddate must be specified');
  if (params.startdate !== undefined && params.enddate !== undefined && params.startdate > params.enddate)
    throw invalidParameter('startdate must be before enddate');
  let q = app.store.db.selectFrom('alerts').select('id');
  if (params.ids?.length) q = q.where('uuid', 'in', params.ids);
  const type = alertTypeNumber(params.type);
  if (type !== undefined) q = q.where('type', '=', type);
  if (params.startdate !== undefined) q = q.where('created', '>=', params.startdate);
  if (params.enddate !== undefined) q = q.where('created', '<=', params.enddate);
  return (await q.execute()).map((r) => r.id);
}

export const archiveAlerts = defineCommand({
  name: 'archiveAlerts',
  description:
    'Archives the selected alerts so listAlerts no longer shows them; at least one of ids, type, startdate or enddate must be given, and they combine.',
  params: selectionParams,
  async handler(ctx, params) {
    const ids = await selectedAlertIds(ctx.app, params);
    if (ids.length > 0)
      await ctx.app.store.db.updateTable('alerts').set({ archived: 1 }).where('id', 'in', ids).execute();
    return success();
  },
});

export const deleteAlerts = defineCommand({
  name: 'deleteAlerts',
  description:
    'Deletes the selected alerts for good; at least one of ids, type, startdate or enddate must be given, and they combine.',
  params: selectionParams,
  async handler(ctx, params) {
    const ids = await selectedAlertIds(ctx.app, params);
    if (ids.length > 0) await ctx.app.store.db.deleteFrom('alerts').where('id', 'in', ids).execute();
    return success();
  },
});

export const listAlertTypes = defineCommand({
  name: 'listAlertTypes',
  description:
    'Lists the alert types with their numbers and names, as used by the type filters of the alert commands.',
  params: {},
  async handler() {
    return listResult(
      ALERT_TYPES.map(([type, name]) => ({ type, name })),
      ALERT_TYPES.length,
    );
  },
});

export const alertCommands = [listAlerts, archiveAlerts, deleteAlerts, listAlertTypes];
