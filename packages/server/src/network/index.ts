/**
 * The networking capability: its commands, and what it registers with discovery, tags and
 * account deletion. Compute uses the NIC and security group functions re-exported here.
 */
import { onHostStatusChange } from '../agents/gateway.ts';
import { provideCapabilities } from '../discovery/discovery.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { onHostMaintenance, onHostRemoval } from '../infra/hosts.ts';
import { onPodDelete } from '../infra/pods.ts';
import { onZoneDelete } from '../infra/zones.ts';
import { registerTaggable } from '../tags/tags.ts';
import { guestNetworkCommands } from './guest-network-commands.ts';
import { hostRemoved, hostsDown, settleTeardowns } from './host-network.ts';
import { ipRangeCommands } from './ip-ranges.ts';
import { ipServiceCommands } from './ip-services.ts';
import { deleteAccountNetworks, deleteNetwork } from './network-deletion.ts';
import { networkOfferingCommands } from './network-offerings.ts';
import { networkReadCommands } from './networks.ts';
import { nicCommands } from './nics.ts';
import { routerCommands } from './router-commands.ts';
import { checkRoutersOn } from './router-entries.ts';
import { vpcAclItemCommands } from './vpc-acl-items.ts';
import { vpcAclListCommands } from './vpc-acls.ts';
import { vpcGatewayCommands } from './vpc-gateways.ts';
import { vpcCommands } from './vpcs.ts';
import './network-recovery.ts';
import { routersOfDownHosts, routersOfHostInMaintenance, routersOfRemovedHost } from './routers.ts';
import { deleteAccountSecurityGroups, securityGroupCommands } from './security-groups.ts';

export {
  carryNetwork,
  hostsDown,
  nicsForHost,
  refreshPeersOf,
  refreshSecurity,
} from './host-network.ts';
export { createGuestIpRange, type GuestIpRangeInput } from './ip-ranges.ts';
export { type AllocatedNic, allocateNics, type NicVm, presentNics, releaseNics } from './nics.ts';
export {
  refreshRouterEntries,
  removeRouterEntries,
  routerReadyFor,
  routersOfDownHosts,
} from './routers.ts';
export {
  assignSecurityGroups,
  presentVmSecurityGroups,
  removeVmFromSecurityGroups,
  resolveSecurityGroups,
} from './security-groups.ts';

export const networkCommands = [
  ...networkOfferingCommands,
  ...networkReadCommands,
  ...guestNetworkCommands,
  deleteNetwork,
  ...ipRangeCommands,
  ...nicCommands,
  ...ipServiceCommands,
  ...securityGroupCommands,
  ...routerCommands,
  ...vpcCommands,
  ...vpcAclListCommands,
  ...vpcAclItemCommands,
  ...vpcGatewayCommands,
];

provideCapabilities(async (ctx) => {
  const zone = await ctx.app.store.db
    .selectFrom('zones')
    .select('id')
    .where('security_groups_enabled', '=', 1)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return zone ? { securitygroupsenabled: true } : {};
});

// Guest ranges hold the addresses of VMs: they are deleted (deleteVlanIpRange) before their pod or zone.
onPodDelete(async (app, pod) => {
  const range = await app.store.db
    .selectFrom('vlan_ip_ranges')
    .select('id')
    .where('pod_id', '=', pod.id)
    .executeTakeFirst();
  return range ? 'guest IP ranges (delete them with deleteVlanIpRange first)' : undefined;
});
onZoneDelete(async (app, zone) => {
  const range = await app.store.db
    .selectFrom('vlan_ip_ranges')
    .select('id')
    .where('zone_id', '=', zone.id)
    .executeTakeFirst();
  return range ? 'guest IP ranges (delete them with deleteVlanIpRange first)' : undefined;
});

// Membership rows go with the groups, so this holds whether or not compute's hook ran first.
onAccountDelete(deleteAccountSecurityGroups);
// After compute's stage 0 has expunged the account's VMs, its networks and addresses go.
onAccountDelete(deleteAccountNetworks);

registerTaggable('SecurityGroup', async (ctx, uuid) => {
  const g = await ctx.app.store.db
    .selectFrom('security_groups')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  return g && { id: g.id, accountId: g.account_id, domainId: g.domain_id };
});

// A removed host runs no router and carries no bridge: both go before the host row does (once
// every check, such as compute's for VMs still there, has let the deletion through).
onHostRemoval(async (ctx, host) => {
  await routersOfRemovedHost(ctx.app, host.id);
  await hostRemoved(ctx.app, host);
});

// A host entering maintenance runs no router: its routers move to another host of the zone.
onHostMaintenance((ctx, host) => routersOfHostInMaintenance(ctx.app, host));

// A host that went Down carries no bridge and runs no router any more (as far as we know); one
// that came Up tears down the deleted networks it missed.
onHostStatusChange(async (app, hostIds, status) => {
  if (status === 'Up') {
    settleTeardowns(app, hostIds);
    // Routers still running there keep their entries: only what they missed is sent (by digest).
    void checkRoutersOn(app, hostIds).catch((err) =>
      app.log.warn({ err: (err as Error).message }, 'routers of reconnected hosts not checked'),
    );
  }
  if (status !== 'Down') return;
  hostsDown(app, hostIds);
  await routersOfDownHosts(app, hostIds);
});
