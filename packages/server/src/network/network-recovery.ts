/**
 * Networking objects a dead job left half-way (see jobs/recovery.ts), settled in this order:
 *
 * Routers left Starting or Stopping are Stopped, as a failed boot leaves them; the next VM start
 * or restartNetwork boots them again with everything the records say.
 *
 * Rules: created rules are committed as Add, then
 * the router is told, then they are Active; removed ones are marked Revoke, the router told, then
 * deleted. A kill between the steps leaves Add or Revoke rules with no job. They are finished
 * forward, not undone: the router gets the network's whole rule set again (Add rules in it, Revoke
 * rules left out), then Add rules become Active and Revoke rules go, as the job would have done.
 * A router that cannot be reached yet (its host reconnecting after the restart) keeps them for a
 * later try; one that is not running gets everything when it boots, as for any change.
 */
import type { App } from '../context.ts';
import { inTransaction } from '../db/connection.ts';
import { systemVmMoved } from '../events/state-events.ts';
import { onRecovery, type RecoveryScope } from '../jobs/recovery.ts';
import { deleteRules, releasePublicIp } from './public-ips.ts';
import { applyNetworkRules, routerEvent } from './routers.ts';

/**
 * The networks a dead server held: by its router steps (`network:<id>`, `network:vpc-<id>` for a
 * VPC's tiers) and by its jobs on networks, routers, rules and addresses. Undefined: all.
 */
async function networksOf(app: App, scope?: RecoveryScope): Promise<number[] | undefined> {
  if (!scope) return undefined;
  const db = app.store.db;
  const keys = scope.ids('network');
  const ids = keys.filter((k) => /^\d+$/.test(k)).map(Number);
  const vpcs = keys.filter((k) => k.startsWith('vpc-')).map((k) => Number(k.slice(4)));
  const none = [''];
  const rows = await db
    .selectFrom('networks')
    .select('id')
    .where((eb) =>
      eb.or([
        eb('uuid', 'in', [...scope.ids('Network'), ...none]),
        eb('vpc_id', 'in', [...vpcs, -1]),
        eb(
          'id',
          'in',
          db
            .selectFrom('routers')
            .select('network_id')
            .where('uuid', 'in', [...scope.ids('DomainRouter'), ...none]),
        ),
        eb(
          'id',
          'in',
          db
            .selectFrom('public_ips')
            .select('network_id')
            .where('uuid', 'in', [...scope.ids('IpAddress'), ...none])
            .where('network_id', 'is not', null)
            .$narrowType<{ network_id: number }>(),
        ),
        eb(
          'id',
          'in',
          db
            .selectFrom('ip_rules')
            .select('network_id')
            .where('uuid', 'in', [...scope.ids('FirewallRule'), ...scope.ids('PortForwardingRule'), ...none]),
        ),
      ]),
    )
    .execute();
  return [...new Set([...ids, ...rows.map((r) => r.id)])];
}

onRecovery(async (app: App, scope) => {
  const networks = await networksOf(app, scope);
  if (networks?.length === 0) return { settled: 0, pending: false };
  let q = app.store.db
    .selectFrom('routers')
    .selectAll()
    .where('state', 'in', ['Starting', 'Stopping'])
    .where('removed', 'is', null);
  if (networks)
    q = q.where((eb) =>
      eb.or([
        eb('network_id', 'in', networks),
        eb(
          'vpc_id',
          'in',
          eb
            .selectFrom('networks')
            .select('vpc_id')
            .where('id', 'in', networks)
            .where('vpc_id', 'is not', null)
            .$narrowType<{ vpc_id: number }>(),
        ),
      ]),
    );
  const routers = await q.execute();
  for (const r of routers) {
    await app.store.db.transaction().execute(async (tx) => {
      const moved = await tx
        .updateTable('routers')
        .set({ state: 'Stopped', host_id: null, updated: app.clock.now() })
        .where('id', '=', r.id)
        .where('state', '=', r.state)
        .executeTakeFirst();
      if (Number(moved.numUpdatedRows) > 0) await systemVmMoved({ app }, tx, r, 'Stopped');
    });
    await routerEvent(
      app,
      r,
      'ROUTER.STOP',
      `router ${r.name} Stopped: the management server running its ${r.state === 'Starting' ? 'start' : 'stop'} stopped`,
      'WARN',
    );
  }
  return { settled: routers.length, pending: false };
});

onRecovery(async (app: App, scope) => {
  const networks = await networksOf(app, scope);
  if (networks?.length === 0) return { settled: 0, pending: false };
  let q = app.store.db
    .selectFrom('ip_rules')
    .select(['id', 'network_id', 'purpose', 'state'])
    .where('state', 'in', ['Add', 'Revoke']);
  if (networks) q = q.where('network_id', 'in', networks);
  const rules = await q.execute();
  // A load balancer without members stays Add: that is its settled state.
  const members = new Set(
    (
      await app.store.db
        .selectFrom('lb_members')
        .select('rule_id')
        .where(
          'rule_id',
          'in',
          rules
            .filter((r) => r.purpose === 'LoadBalancing')
            .map((r) => r.id)
            .concat(-1),
        )
        .execute()
    ).map((m) => m.rule_id),
  );
  const left = rules.filter(
    (r) => r.state === 'Revoke' || r.purpose !== 'LoadBalancing' || members.has(r.id),
  );
  let settled = 0;
  let pending = false;
  for (const networkId of new Set(left.map((r) => r.network_id))) {
    const mine = left.filter((r) => r.network_id === networkId);
    try {
      await applyNetworkRules(app, networkId);
    } catch (err) {
      pending = true;
      app.log.warn(
        { err: (err as Error).message, networkId },
        'rules left by an interrupted job not applied yet',
      );
      continue;
    }
    await inTransaction(app.store, async (tx) => {
      const add = mine.filter((r) => r.state === 'Add').map((r) => r.id);
      if (add.length > 0)
        await tx
          .updateTable('ip_rules')
          .set({ state: 'Active' })
          .where('id', 'in', add)
          .where('state', '=', 'Add')
          .execute();
      await deleteRules(
        tx,
        mine.filter((r) => r.state === 'Revoke').map((r) => r.id),
      );
    });
    settled += mine.length;
  }
  return { settled, pending };
});

/**
 * Addresses left Releasing: the router is told to drop them (Releasing ones are left out of what
 * it gets), then they are Free with their rules gone, as disassociateIpAddress would have done.
 */
onRecovery(async (app: App, scope) => {
  const held = scope?.ids('IpAddress');
  if (held?.length === 0) return { settled: 0, pending: false };
  let q = app.store.db.selectFrom('public_ips').selectAll().where('state', '=', 'Releasing');
  if (held) q = q.where('uuid', 'in', held);
  const ips = await q.execute();
  let settled = 0;
  let pending = false;
  for (const ip of ips) {
    try {
      if (ip.network_id !== null) await applyNetworkRules(app, ip.network_id);
      await inTransaction(app.store, (tx) => releasePublicIp(app, tx, ip));
      settled++;
    } catch (err) {
      pending = true;
      app.log.warn({ err: (err as Error).message, ip: ip.ip4 }, 'address left Releasing not released yet');
    }
  }
  return { settled, pending };
});
