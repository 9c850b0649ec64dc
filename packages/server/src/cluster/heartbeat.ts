/**
 * Management servers sharing a database (upstream's mshost): each has a row in
 * management_servers and heart-beats it every cluster.heartbeat.interval ms. A server silent for
 * cluster.heartbeat.threshold ms is declared Down by the first peer that notices (state Down, its
 * last heartbeat kept as its stop time): its unfinished jobs fail and its hosts are taken over.
 * A server that finds itself declared Down stops (upstream's self-fence): its jobs and hosts are
 * already someone else's. Whoever needs "is that server alive" asks isServerAlive().
 *
 * Both settings may change while the servers run, and each server reads a change up to
 * SETTINGS_REFRESH_MS after another made it; so a change takes effect gently: a shorter threshold
 * waits until every server beats at the pace that goes with it, a longer interval until every
 * peer judges by the threshold that goes with it. No server is declared Down by a settings change.
 */
import type { App } from '../context.ts';
import { defineSetting, SETTINGS_REFRESH_MS, type Settings } from '../settings/settings.ts';

export const CLUSTER_HEARTBEAT_INTERVAL = defineSetting({
  name: 'cluster.heartbeat.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 10_000,
  min: 500,
  max: 600_000,
  description:
    'Milliseconds between two heartbeats of each management server; each server reads it again after every beat.',
});

export const CLUSTER_HEARTBEAT_THRESHOLD = defineSetting({
  name: 'cluster.heartbeat.threshold',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 60_000,
  min: 1_000,
  description:
    'Milliseconds without a heartbeat after which the other management servers declare a server Down, fail its unfinished jobs and take over its hosts; never less than three heartbeat intervals.',
});

type ClusterApp = Pick<App, 'store' | 'clock' | 'settings' | 'server'>;

/** The beat loop looks this often whether a beat is due (so a shorter interval applies at once). */
const TICK_MS = 1000;

/** A duration that changes gently: for `graceMs` after a change, the safer of the old and the new. */
export class Eased {
  private applied?: number;
  private previous = 0;
  private since = 0;

  constructor(private readonly safer: (a: number, b: number) => number) {}

  value(wanted: number, graceMs: number, now: number): number {
    if (this.applied === undefined) {
      this.applied = wanted;
      this.since = Number.NEGATIVE_INFINITY;
    }
    if (wanted !== this.applied) {
      this.previous = this.value(this.applied, graceMs, now);
      this.applied = wanted;
      this.since = now;
    }
    return now - this.since < graceMs ? this.safer(this.previous, this.applied) : this.applied;
  }
}

const easings = new WeakMap<Settings, { threshold: Eased; interval: Eased }>();

function easing(settings: Settings) {
  let e = easings.get(settings);
  if (!e) {
    e = { threshold: new Eased(Math.max), interval: new Eased(Math.min) };
    easings.set(settings, e);
  }
  return e;
}

/** How long a server may be silent before it is Down: the setting, but at least three beats. */
export function heartbeatThresholdMs(settings: Settings): number {
  const wanted = Math.max(
    settings.get(CLUSTER_HEARTBEAT_THRESHOLD),
    3 * settings.get(CLUSTER_HEARTBEAT_INTERVAL),
  );
  // Shortened: peers read a shorter interval within the refresh and beat within a tick.
  return easing(settings).threshold.value(wanted, SETTINGS_REFRESH_MS + 2 * TICK_MS, Date.now());
}

/** How often this server beats: the setting, lengthened only once its peers judge by it. */
function beatIntervalMs(settings: Settings): number {
  return easing(settings).interval.value(
    settings.get(CLUSTER_HEARTBEAT_INTERVAL),
    SETTINGS_REFRESH_MS + TICK_MS,
    Date.now(),
  );
}

/** Ids of the servers that are alive: Up, with a heartbeat within the threshold (a subquery). */
export function liveServerIds(app: Omit<ClusterApp, 'server'>) {
  return app.store.db
    .selectFrom('management_servers')
    .select('id')
    .where('state', '=', 'Up')
    .where('last_heartbeat', '>', app.clock.now() - heartbeatThresholdMs(app.settings));
}

/** Ids of the servers that are gone: Down, or silent past the threshold (a subquery). */
export function deadServerIds(app: Omit<ClusterApp, 'server'>) {
  const cutoff = app.clock.now() - heartbeatThresholdMs(app.settings);
  return app.store.db
    .selectFrom('management_servers')
    .select('id')
    .where((eb) => eb.or([eb('state', '=', 'Down'), eb('last_heartbeat', '<=', cutoff)]));
}

/** Whether management server `msId` (management_servers.id) is alive: Up and heart-beating. */
export async function isServerAlive(app: Omit<ClusterApp, 'server'>, msId: number): Promise<boolean> {
  const row = await liveServerIds(app).where('id', '=', msId).executeTakeFirst();
  return row !== undefined;
}

/** Declares Down the other servers silent past the threshold; returns their names. */
export async function markSilentServersDown(app: ClusterApp): Promise<string[]> {
  const cutoff = app.clock.now() - heartbeatThresholdMs(app.settings);
  const silent = await app.store.db
    .selectFrom('management_servers')
    .select(['id', 'name'])
    .where('state', '=', 'Up')
    .where('last_heartbeat', '<=', cutoff)
    .where('id', '!=', app.server.id)
    .execute();
  if (silent.length === 0) return [];
  // The heartbeat is checked again in the update: a server that beat in between stays Up.
  await app.store.db
    .updateTable('management_servers')
    .set({ state: 'Down' })
    .where(
      'id',
      'in',
      silent.map((s) => s.id),
    )
    .where('state', '=', 'Up')
    .where('last_heartbeat', '<=', cutoff)
    .execute();
  return silent.map((s) => s.name);
}

/**
 * Beats every cluster.heartbeat.interval ms (looked up at every tick), then runs `afterBeat` (peer
 * checks, orphaned work) unless the previous one is still running: slow work after a beat (a
 * takeover, a recovery) never delays the next beat, or peers would take a busy server for a dead
 * one. Calls `onFenced` once if a beat finds this server declared Down. Returns a function that
 * stops the beats.
 */
export function startHeartbeat(
  app: ClusterApp & Pick<App, 'log'>,
  afterBeat: () => Promise<void>,
  onFenced: (why: string) => void,
): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let working = false;
  let last = Date.now();
  const beat = async () => {
    last = Date.now();
    const r = await app.store.db
      .updateTable('management_servers')
      .set({ last_heartbeat: app.clock.now() })
      .where('id', '=', app.server.id)
      .where('state', '=', 'Up')
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) {
      const newer = await app.store.db
        .selectFrom('management_servers')
        .select('id')
        .where('name', '=', app.server.name)
        .where('id', '>', app.server.id)
        .executeTakeFirst();
      stopped = true;
      onFenced(
        newer
          ? `another management server started under this server's name ${app.server.name} and took its place (NIMBOSTACK_SERVER_NAME must differ between servers)`
          : `the other management servers declared this one Down after ${heartbeatThresholdMs(app.settings)} ms without a heartbeat (cluster.heartbeat.threshold) and took over its jobs and hosts`,
      );
      return;
    }
    if (working) return;
    working = true;
    afterBeat()
      .catch((err) => app.log.error({ err }, 'work after the heartbeat failed'))
      .finally(() => {
        working = false;
      });
  };
  const schedule = () => {
    if (stopped) return;
    const interval = beatIntervalMs(app.settings);
    const wait = Math.max(0, Math.min(TICK_MS, last + interval - Date.now()));
    timer = setTimeout(() => {
      if (Date.now() - last < beatIntervalMs(app.settings)) return schedule();
      beat()
        .catch((err) => app.log.error({ err }, 'heartbeat failed'))
        .finally(schedule);
    }, wait);
    timer.unref();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
