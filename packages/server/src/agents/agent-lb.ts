/**
 * The list of management servers handed to agents in `ready` (upstream's indirect agent load
 * balancing): the `host` setting's addresses, ordered for each host by indirect.agent.lb.algorithm.
 * An agent connects to the first of its list that answers and moves down the list when its server
 * goes away; with static every agent prefers the first server, with roundrobin the hosts of a zone
 * are spread over the servers by their place (ordered by id, as upstream), with shuffle each host
 * gets a random order. Empty `host`: nothing is handed, agents keep their command-line list.
 */
import type { App } from '../context.ts';
import { AGENT_LB_ALGORITHM, MANAGEMENT_SERVER_ADDRESSES } from './settings.ts';

/** The setting's addresses as agent URLs: a bare host gets this server's scheme and agent port. */
export function agentUrls(setting: string, port: number, tls: boolean): string[] {
  return setting
    .split(',')
    .map((e) => e.trim().replace(/\/$/, ''))
    .filter((e) => e !== '')
    .map((e) => {
      if (/^wss?:\/\//.test(e)) return e;
      const hasPort = /:\d+$/.test(e) && (!e.includes(']') || e.lastIndexOf(':') > e.indexOf(']'));
      return `${tls ? 'wss' : 'ws'}://${e}${hasPort ? '' : `:${port}`}`;
    });
}

function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Each host's ordered list (an empty map when the `host` setting is empty). */
export async function serverListsFor(
  app: App,
  hostIds: number[],
  port: number,
  tls: boolean,
): Promise<Map<number, string[]>> {
  const lists = new Map<number, string[]>();
  const urls = agentUrls(app.settings.get(MANAGEMENT_SERVER_ADDRESSES), port, tls);
  if (urls.length === 0 || hostIds.length === 0) return lists;
  const algorithm: string = app.settings.get(AGENT_LB_ALGORITHM);
  if (algorithm === 'shuffle') {
    for (const id of hostIds) lists.set(id, shuffled(urls));
    return lists;
  }
  if (algorithm !== 'roundrobin' || urls.length === 1) {
    for (const id of hostIds) lists.set(id, urls);
    return lists;
  }
  // A host's place among the hosts of its zone, ordered by id, rotates the list.
  const db = app.store.db;
  const zones = db.selectFrom('hosts').select('zone_id').where('id', 'in', hostIds);
  const all = await db
    .selectFrom('hosts')
    .select(['id', 'zone_id'])
    .where('zone_id', 'in', zones)
    .where('removed', 'is', null)
    .orderBy('id')
    .execute();
  const placeInZone = new Map<number, number>();
  const seen = new Map<number, number>();
  for (const h of all) {
    const place = seen.get(h.zone_id) ?? 0;
    seen.set(h.zone_id, place + 1);
    placeInZone.set(h.id, place);
  }
  for (const id of hostIds) {
    const k = (placeInZone.get(id) ?? 0) % urls.length;
    lists.set(id, [...urls.slice(k), ...urls.slice(0, k)]);
  }
  return lists;
}
