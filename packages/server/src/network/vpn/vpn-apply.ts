/**
 * Bringing a router's VPNs in line with the records, and the site-to-site tunnels' states. A
 * change is applied whole: the router's firewall (the VPN endpoints' openings) and then its VPNs
 * (applyRouterVpn), which answers every connection's state. The states are also refreshed every
 * router.check.interval seconds from the routers themselves (routerVpnStatus), as upstream's
 * router status check does, so a tunnel that drops or comes up is seen without a command.
 */
import type { VpnConnectionState } from '@nimbostack/protocol';
import type { App } from '../../context.ts';
import { resourceUnavailable } from '../../errors.ts';
import { startScheduled } from '../../jobs/scheduled.ts';
import { defineSetting } from '../../settings/settings.ts';
import type { IpScope } from '../router-rules.ts';
import { applyNetworkRules, liveRouter, withNetworkLock } from '../routers.ts';
import { applyVpcRouter, liveVpcRouter, vpcLockKey } from '../vpc-routers.ts';
import { vpnSpecOf } from './vpn-spec.ts';

export const ROUTER_CHECK_INTERVAL = defineSetting({
  name: 'router.check.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 30,
  min: 1,
  description: 'Seconds between two checks of the site-to-site VPN connections on the routers.',
});

export const VPN_CONNECT_WAIT = defineSetting({
  name: 'site2site.vpn.connect.wait',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 10,
  min: 0,
  max: 600,
  description:
    'Seconds createVpnConnection and resetVpnConnection wait for an active connection to come up before answering with its state as it is.',
});

/** The running router carrying `scope`'s addresses, or undefined. */
async function runningRouter(app: App, scope: IpScope) {
  const router =
    'vpcId' in scope ? await liveVpcRouter(app, scope.vpcId) : await liveRouter(app, scope.networkId);
  return router?.state === 'Running' && router.host_id !== null ? router : undefined;
}

const lockKey = (scope: IpScope) => ('vpcId' in scope ? vpcLockKey(scope.vpcId) : scope.networkId);

/**
 * Sends the router of `scope` its firewall and VPNs as recorded; `reset` restarts those
 * connections. Throws when the router's host refuses or cannot be reached (callers undo their
 * change); a router that is not running gets everything when it boots.
 */
export async function applyVpn(
  app: App,
  scope: IpScope,
  reset: string[] = [],
): Promise<{ applied: boolean; connections: VpnConnectionState[] }> {
  const rules =
    'vpcId' in scope ? await applyVpcRouter(app, scope.vpcId) : await applyNetworkRules(app, scope.networkId);
  if (!rules.applied) return { applied: false, connections: [] };
  return withNetworkLock(app, lockKey(scope), async () => {
    const router = await runningRouter(app, scope);
    if (!router) return { applied: false, connections: [] };
    if (!app.agents.isConnected(router.host_id!))
      throw resourceUnavailable(`The router ${router.name} cannot be reached: its host is not connected`);
    const vpn = (await vpnSpecOf(app, scope)) ?? { siteToSite: [] };
    const answer = await app.agents.call(router.host_id!, 'applyRouterVpn', {
      name: router.name,
      vpn,
      reset,
    });
    await recordStates(app, answer.connections);
    return { applied: true, connections: answer.connections };
  });
}

/** Stores the tunnels' states as the router reported them; a change is logged. */
export async function recordStates(app: App, states: VpnConnectionState[]): Promise<void> {
  for (const s of states) {
    const changed = await app.store.db
      .updateTable('vpn_connections')
      .set({ state: s.state })
      .where('uuid', '=', s.id)
      .where('state', '!=', s.state)
      .executeTakeFirst();
    if (Number(changed.numUpdatedRows) > 0)
      app.log.info(
        { connection: s.id, state: s.state, detail: s.detail },
        'site-to-site VPN connection changed state',
      );
  }
}

/** The current states of a VPC's connections, read from its router now (none when it is not running). */
export async function refreshVpcConnections(app: App, vpcId: number): Promise<VpnConnectionState[]> {
  const router = await runningRouter(app, { vpcId });
  if (!router) {
    // No router runs the VPC's tunnels: none of them is up, whatever was last seen.
    const gateway = await app.store.db
      .selectFrom('vpn_gateways')
      .select('id')
      .where('vpc_id', '=', vpcId)
      .executeTakeFirst();
    const conns = gateway
      ? await app.store.db
          .selectFrom('vpn_connections')
          .select('uuid')
          .where('vpn_gateway_id', '=', gateway.id)
          .where('state', '!=', 'Pending')
          .execute()
      : [];
    const down = conns.map((c) => ({ id: c.uuid, state: 'Disconnected' as const }));
    await recordStates(app, down);
    return down;
  }
  if (!app.agents.isConnected(router.host_id!)) return [];
  const { connections } = await app.agents.call(router.host_id!, 'routerVpnStatus', { name: router.name });
  await recordStates(app, connections);
  return connections;
}

/**
 * Waits (up to site2site.vpn.connect.wait seconds) for connection `uuid` of the VPC to be
 * Connected, polling its router; answers the last state seen.
 */
export async function waitConnected(app: App, vpcId: number, uuid: string, first?: VpnConnectionState[]) {
  const deadline = Date.now() + app.settings.get(VPN_CONNECT_WAIT) * 1000;
  let states = first ?? (await refreshVpcConnections(app, vpcId));
  for (;;) {
    const mine = states.find((s) => s.id === uuid);
    if (!mine || mine.state === 'Connected' || Date.now() >= deadline) return mine?.state;
    await new Promise((r) => setTimeout(r, 250));
    states = await refreshVpcConnections(app, vpcId);
  }
}

/** One pass: every VPC with site-to-site connections has its routers' answer recorded. */
export async function checkVpnConnections(app: App): Promise<void> {
  const vpcs = await app.store.db
    .selectFrom('vpn_connections')
    .innerJoin('vpn_gateways', 'vpn_gateways.id', 'vpn_connections.vpn_gateway_id')
    .select('vpn_gateways.vpc_id')
    .distinct()
    .execute();
  for (const { vpc_id } of vpcs)
    await refreshVpcConnections(app, vpc_id).catch((err: Error) =>
      app.log.warn({ vpc: vpc_id, err: err.message }, 'site-to-site VPN states could not be read'),
    );
}

/** Checks the connections every router.check.interval seconds on the server holding its lease. */
export function startVpnMonitor(app: App): () => void {
  return startScheduled(app, {
    name: 'vpn-monitor',
    everyMs: () => app.settings.get(ROUTER_CHECK_INTERVAL) * 1000,
    run: () => checkVpnConnections(app),
  });
}
