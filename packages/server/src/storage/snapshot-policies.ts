/**
 * Recurring snapshot policies (one per volume and interval, as upstream) and the scheduler that
 * takes their RECURRING snapshots when due and deletes the oldest beyond `maxsnaps`. Time comes
 * from app.clock, so tests drive `runSnapshotPolicies` with a chosen "now".
 */

import type { App, CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { SnapshotPolicyRow, VolumeRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { findOwned, listOwned } from '../iam/owned.ts';
import { withClusterLock } from '../jobs/locks.ts';
import { jobObjects } from '../jobs/runner.ts';
import { startScheduled } from '../jobs/scheduled.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { defineSetting } from '../settings/settings.ts';
import { registerTaggable, tagsOf } from '../tags/tags.ts';
import {
  destroySnapshot,
  INTERVALS,
  type Interval,
  insertSnapshot,
  snapshotRefusal,
  takeSnapshot,
} from './snapshots.ts';
import { findVolume, volumeJobTarget } from './volumes.ts';

export const SNAPSHOT_POLL_INTERVAL = defineSetting<number>({
  name: 'snapshot.poll.interval',
  category: 'Snapshots',
  type: 'Integer',
  defaultValue: 300,
  min: 1,
  isDynamic: false,
  description: 'Seconds between checks for recurring snapshots that are due.',
});

const MAX_SNAPS = 1024;

/** The schedule's parts: minute, and hour, and day of week (1-7, Sunday first) or of month (1-28). */
export function parseSchedule(interval: Interval, schedule: string): { mm: number; hh: number; dd: number } {
  const fields = { HOURLY: 1, DAILY: 2, WEEKLY: 3, MONTHLY: 3 }[interval];
  const parts = schedule.split(':');
  const bad = () =>
    invalidParameter(
      `Invalid schedule ${schedule} for a ${interval} policy: use ${['MM', 'MM:HH', 'MM:HH:DD'][fields - 1]}`,
    );
  if (parts.length !== fields || !parts.every((x) => /^\d{1,2}$/.test(x))) throw bad();
  const [mm, hh = 0, dd = 1] = parts.map(Number);
  const maxDay = interval === 'WEEKLY' ? 7 : 28;
  if (mm > 59 || hh > 23 || dd < 1 || dd > maxDay) throw bad();
  return { mm, hh, dd };
}

export function checkTimezone(tz: string): string {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return tz;
  } catch {
    throw invalidParameter(`Invalid timezone ${tz}: use a zone name such as UTC or Europe/Paris`);
  }
}

/** The wall-clock fields of an instant in a time zone. */
function wallClock(t: number, tz: string) {
  const f = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
    weekday: 'short',
  });
  const parts = Object.fromEntries(f.formatToParts(t).map((x) => [x.type, x.value]));
  return {
    y: Number(parts.year),
    mo: Number(parts.month) - 1,
    d: Number(parts.day),
    h: Number(parts.hour),
    mi: Number(parts.minute),
    s: Number(parts.second),
    weekday: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'].indexOf(parts.weekday),
  };
}

/** The instant a wall-clock time (fields may overflow, as Date.UTC allows) has in a time zone. */
function zonedInstant(tz: string, y: number, mo: number, d: number, h: number, mi: number): number {
  const asUtc = Date.UTC(y, mo, d, h, mi);
  const offsetAt = (t: number) => {
    const w = wallClock(t, tz);
    return Date.UTC(w.y, w.mo, w.d, w.h, w.mi, w.s) - Math.floor(t / 1000) * 1000;
  };
  const first = asUtc - offsetAt(asUtc);
  return asUtc - offsetAt(first);
}

/** The first time strictly after `now` a policy's schedule falls on. */
export function nextRun(
  policy: { interval: Interval; schedule: string; timezone: string },
  now: number,
): number {
  const { mm, hh, dd } = parseSchedule(policy.interval, policy.schedule);
  const w = wallClock(now, policy.timezone);
  const at = (dayShift: number, monthShift = 0, hour = hh, day = w.d) =>
    zonedInstant(policy.timezone, w.y, w.mo + monthShift, day + dayShift, hour, mm);
  let t: number;
  switch (policy.interval) {
    case 'HOURLY':
      t = at(0, 0, w.h);
      while (t <= now) t += 3_600_000;
      return t;
    case 'DAILY':
      t = at(0);
      return t > now ? t : at(1);
    case 'WEEKLY': {
      const ahead = (dd - 1 - w.weekday + 7) % 7;
      t = at(ahead);
      return t > now ? t : at(ahead + 7);
    }
    case 'MONTHLY':
      t = at(0, 0, hh, dd);
      return t > now ? t : at(0, 1, hh, dd);
  }
}

function intervalOf(value: string): Interval {
  const v = value.trim().toUpperCase();
  if ((INTERVALS as readonly string[]).includes(v)) return v as Interval;
  throw invalidParameter(`Invalid interval type ${value}: use HOURLY, DAILY, WEEKLY or MONTHLY`);
}

async function findPolicy(ctx: CallContext, uuid: string): Promise<SnapshotPolicyRow> {
  return findOwned(ctx, 'snapshot_policies', uuid, { noun: 'snapshot policy' });
}

async function presentPolicies(ctx: CallContext, rows: SnapshotPolicyRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const volumes = await db
    .selectFrom('volumes')
    .innerJoin('zones', 'zones.id', 'volumes.zone_id')
    .select(['volumes.id', 'volumes.uuid', 'volumes.name', 'zones.uuid as zoneid', 'zones.name as zonename'])
    .where(
      'volumes.id',
      'in',
      rows.map((r) => r.volume_id),
    )
    .execute();
  const tags = await tagsOf(
    ctx,
    'SnapshotPolicy',
    rows.map((r) => r.id),
  );
  const volume = new Map(volumes.map((v) => [v.id, v]));
  return rows.map((r) => {
    const v = volume.get(r.volume_id);
    return {
      id: r.uuid,
      volumeid: v?.uuid,
      volumename: v?.name,
      // Upstream answers the interval as its ordinal: 0 hourly, 1 daily, 2 weekly, 3 monthly.
      intervaltype: INTERVALS.indexOf(r.interval_type as Interval),
      schedule: r.schedule,
      timezone: r.timezone,
      maxsnaps: r.max_snaps,
      fordisplay: r.for_display === 1,
      zone: v ? [{ id: v.zoneid, name: v.zonename }] : [],
      storage: [],
      tags: tags.get(r.id) ?? [],
    };
  });
}

async function presentPolicy(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('snapshot_policies')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentPolicies(ctx, [row]))[0];
}

export const createSnapshotPolicy = defineCommand({
  name: 'createSnapshotPolicy',
  description:
    'Schedules recurring snapshots of a volume, keeping the newest maxsnaps; a volume has at most one policy per interval, and a new one replaces the old.',
  params: {
    volumeid: p.uuid({ required: true, description: 'UUID of the volume to snapshot on schedule.' }),
    intervaltype: p.string({
      required: true,
      description: 'How often: HOURLY, DAILY, WEEKLY or MONTHLY (case-insensitive).',
    }),
    schedule: p.string({
      required: true,
      description:
        'When, by interval: MM (hourly), MM:HH (daily), MM:HH:DD with DD 1-7 from Sunday (weekly) or 1-28 (monthly).',
    }),
    timezone: p.string({
      required: true,
      description: 'IANA time zone the schedule is read in, such as UTC or Europe/Paris.',
    }),
    maxsnaps: p.integer({
      required: true,
      description:
        "How many of this policy's snapshots to keep (1 to 1024); the oldest is deleted beyond that.",
    }),
    fordisplay: p.boolean({
      description: 'When false, the policy is flagged as hidden from the end user; default true.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const volume = await findVolume(ctx, params.volumeid);
    const interval = intervalOf(params.intervaltype);
    parseSchedule(interval, params.schedule);
    const timezone = checkTimezone(params.timezone);
    if (params.maxsnaps < 1 || params.maxsnaps > MAX_SNAPS)
      throw invalidParameter(`Invalid maxsnaps ${params.maxsnaps}: use 1-${MAX_SNAPS}`);
    const next = nextRun({ interval, schedule: params.schedule, timezone }, app.clock.now());
    const fields = {
      schedule: params.schedule,
      timezone,
      max_snaps: params.maxsnaps,
      for_display: params.fordisplay === false ? (0 as const) : (1 as const),
      next_run: next,
    };
    const id = await app.store.db.transaction().execute(async (tx) => {
      // As upstream, a second policy of the same interval on a volume replaces the first.
      const existing = await tx
        .selectFrom('snapshot_policies')
        .select(['id', 'uuid'])
        .where('volume_id', '=', volume.id)
        .where('interval_type', '=', interval)
        .executeTakeFirst();
      if (existing)
        await tx.updateTable('snapshot_policies').set(fields).where('id', '=', existing.id).execute();
      const id =
        existing?.id ??
        (await insertId(app.store, tx, 'snapshot_policies', {
          uuid: app.ids.uuid(),
          volume_id: volume.id,
          account_id: volume.account_id,
          domain_id: volume.domain_id,
          interval_type: interval,
          created: app.clock.now(),
          ...fields,
        }));
      const uuid = (
        await tx.selectFrom('snapshot_policies').select('uuid').where('id', '=', id).executeTakeFirstOrThrow()
      ).uuid;
      await logEvent(ctx, tx, {
        type: existing ? 'SNAPSHOTPOLICY.UPDATE' : 'SNAPSHOTPOLICY.CREATE',
        description: `${interval} snapshot policy for volume ${volume.name}: ${params.schedule} ${timezone}, keeping ${params.maxsnaps}`,
        resourceType: 'SnapshotPolicy',
        resourceId: uuid,
      });
      return id;
    });
    return presentPolicy(ctx, id);
  },
});

export const listSnapshotPolicies = defineCommand({
  name: 'listSnapshotPolicies',
  description: 'Lists the recurring snapshot policies the caller may see.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the policy with this UUID.' }),
    volumeid: p.uuid({ description: 'Only the policies of this volume.' }),
    fordisplay: p.boolean({ description: 'Only policies whose display flag has this value.' }),
    account: p.string({
      description:
        "Only policies of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only policies in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include policies of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include policies of every account they may see.',
    }),
    projectid: p.projectScope({
      description:
        "Only this project's snapshot policies (you must be a member or administer it); -1: those of every project you may see.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    let q = db.selectFrom('snapshot_policies');
    if (params.id) q = q.where('snapshot_policies.uuid', '=', params.id);
    if (params.volumeid)
      q = q.where('snapshot_policies.volume_id', '=', (await findVolume(ctx, params.volumeid)).id);
    if (params.fordisplay !== undefined)
      q = q.where('snapshot_policies.for_display', '=', params.fordisplay ? 1 : 0);
    return listOwned(ctx, params, q, {
      owner: { account: 'snapshot_policies.account_id', domain: 'snapshot_policies.domain_id' },
      rows: (scoped, page) =>
        paginate(scoped.selectAll('snapshot_policies').orderBy('snapshot_policies.id'), page).execute(),
      present: (rows) => presentPolicies(ctx, rows),
    });
  },
});

export const updateSnapshotPolicy = defineCommand({
  name: 'updateSnapshotPolicy',
  description:
    'Changes the display flag of a snapshot policy (to change its schedule, create a policy of the same interval). Asynchronous.',
  params: {
    id: p.uuid({ description: 'UUID of the policy (required by Nimbostack).' }),
    fordisplay: p.boolean({ description: 'Whether the policy is shown to the end user.' }),
  },
  event: {
    type: 'SNAPSHOTPOLICY.UPDATE',
    description: (params) => `updating snapshot policy ${params.id ?? ''}`,
  },
  async target(ctx, params) {
    if (!params.id)
      throw invalidParameter(
        'Unable to execute API command updatesnapshotpolicy due to missing parameter id',
      );
    await findPolicy(ctx, params.id);
    return { type: 'SnapshotPolicy', id: params.id };
  },
  async handler(ctx, params) {
    const policy = await findPolicy(ctx, params.id!);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      if (params.fordisplay !== undefined)
        await tx
          .updateTable('snapshot_policies')
          .set({ for_display: params.fordisplay ? 1 : 0 })
          .where('id', '=', policy.id)
          .execute();
      await logEvent(ctx, tx, {
        type: 'SNAPSHOTPOLICY.UPDATE',
        description: `updated snapshot policy ${policy.uuid}`,
        resourceType: 'SnapshotPolicy',
        resourceId: policy.uuid,
      });
    });
    return presentPolicy(ctx, policy.id);
  },
});

export const deleteSnapshotPolicies = defineCommand({
  name: 'deleteSnapshotPolicies',
  description: 'Deletes one or more snapshot policies and their tags; snapshots they already took are kept.',
  params: {
    id: p.uuid({ description: 'UUID of one policy to delete.' }),
    ids: p.list({
      of: 'uuid',
      description: 'UUIDs of policies to delete (comma-separated); may be combined with id.',
    }),
  },
  async handler(ctx, params) {
    const uuids = [...(params.id ? [params.id] : []), ...(params.ids ?? [])];
    if (uuids.length === 0) throw invalidParameter('Either id or ids is needed to delete snapshot policies');
    const policies: SnapshotPolicyRow[] = [];
    for (const uuid of uuids) policies.push(await findPolicy(ctx, uuid));
    await ctx.app.store.db.transaction().execute(async (tx) => {
      for (const policy of policies) {
        await tx.deleteFrom('snapshot_policies').where('id', '=', policy.id).execute();
        await tx
          .deleteFrom('resource_tags')
          .where('resource_type', '=', 'SnapshotPolicy')
          .where('resource_id', '=', policy.id)
          .execute();
        await logEvent(ctx, tx, {
          type: 'SNAPSHOTPOLICY.DELETE',
          description: `deleted ${policy.interval_type} snapshot policy ${policy.uuid}`,
          resourceType: 'SnapshotPolicy',
          resourceId: policy.uuid,
        });
      }
    });
    return success();
  },
});

/** Takes one policy's snapshot, then deletes its oldest RECURRING snapshots beyond maxsnaps. */
async function runPolicy(app: App, policy: SnapshotPolicyRow, volume: VolumeRow): Promise<void> {
  const refusal = await snapshotRefusal(app, volume);
  if (refusal) {
    app.log.info({ policy: policy.uuid }, `recurring snapshot skipped: ${refusal}`);
    return;
  }
  const snap = await app.store.db.transaction().execute((tx) =>
    insertSnapshot(app, tx, volume, {
      policyId: policy.id,
      interval: policy.interval_type as Interval,
    }),
  );
  await takeSnapshot(app, snap);
  const kept = await app.store.db
    .selectFrom('snapshots')
    .selectAll()
    .where('policy_id', '=', policy.id)
    .where('removed', 'is', null)
    .where('state', '=', 'BackedUp')
    .orderBy('created', 'desc')
    .orderBy('id', 'desc')
    .execute();
  for (const old of kept.slice(policy.max_snaps)) await destroySnapshot(app, old, {});
}

/**
 * One scheduler pass at `now`: every policy due is moved to its next run first (a compare-and-set,
 * so a policy is never taken twice for one slot), then its snapshot is taken. Policies of deleted
 * volumes go. Returns how many snapshots were taken.
 */
export async function runSnapshotPolicies(app: App, now: number): Promise<number> {
  const db = app.store.db;
  const due = await db.selectFrom('snapshot_policies').selectAll().where('next_run', '<=', now).execute();
  let taken = 0;
  for (const policy of due) {
    const volume = await db
      .selectFrom('volumes')
      .selectAll()
      .where('id', '=', policy.volume_id)
      .executeTakeFirst();
    if (!volume || volume.removed !== null) {
      await db.deleteFrom('snapshot_policies').where('id', '=', policy.id).execute();
      continue;
    }
    const next = nextRun(
      { interval: policy.interval_type as Interval, schedule: policy.schedule, timezone: policy.timezone },
      now,
    );
    const claimed = await db
      .updateTable('snapshot_policies')
      .set({ next_run: next })
      .where('id', '=', policy.id)
      .where('next_run', '=', policy.next_run)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) continue;
    try {
      // Held as a job holds them, so that no job on the volume or its VM (a detach, a
      // migration) runs meanwhile, on any server; a dead holder's snapshot is settled by name.
      await withClusterLock(app, jobObjects(await volumeJobTarget({ app }, volume)), () =>
        runPolicy(app, policy, volume),
      );
      taken++;
    } catch (err) {
      app.log.warn({ err, policy: policy.uuid }, 'recurring snapshot failed');
    }
  }
  return taken;
}

/** Runs the scheduler every snapshot.poll.interval seconds on the server holding its lease. */
export function startSnapshotScheduler(app: App): () => void {
  return startScheduled(app, {
    name: 'snapshot-policies',
    everyMs: () => app.settings.get(SNAPSHOT_POLL_INTERVAL) * 1000,
    run: () => runSnapshotPolicies(app, app.clock.now()),
  });
}

registerTaggable('SnapshotPolicy', async (ctx, uuid) => {
  const s = await ctx.app.store.db
    .selectFrom('snapshot_policies')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  return s && { id: s.id, accountId: s.account_id, domainId: s.domain_id };
});

onAccountDelete(async (ctx, account) => {
  await ctx.app.store.db.deleteFrom('snapshot_policies').where('account_id', '=', account.id).execute();
});

export const snapshotPolicyCommands = [
  createSnapshotPolicy,
  listSnapshotPolicies,
  updateSnapshotPolicy,
  deleteSnapshotPolicies,
];
