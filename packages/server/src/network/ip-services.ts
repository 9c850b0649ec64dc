/**
 * Public IP addresses and the rules that hang off them (port forwarding, static NAT, firewall,
 * egress firewall). A Basic zone has none of these: guests sit directly on the pod's subnet and
 * security groups do the filtering. The lists still answer, with their scoping and references
 * checked, because clients call them (libcloud's list_nodes needs the first three).
 */
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { listScope } from '../iam/access.ts';
import { findZone } from '../infra/common.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { listParams, p, scopeParams } from '../registry/params.ts';
import { findNetwork } from './common.ts';
import { findVisibleVm } from './nics.ts';

interface References {
  id?: string;
  ipaddressid?: string;
  networkid?: string;
  associatednetworkid?: string;
  zoneid?: string;
  vlanid?: string;
  vpcid?: string;
  physicalnetworkid?: string;
  virtualmachineid?: string;
}

/** Checks what a list names exists (431 otherwise), as upstream's id translation does. */
async function checkReferences(ctx: CallContext, r: References, kind: string): Promise<void> {
  if (r.id) throw invalidParameter(`Unable to find ${kind} by id ${r.id}`);
  if (r.ipaddressid) throw invalidParameter(`Unable to find IP address by id ${r.ipaddressid}`);
  if (r.vpcid) throw invalidParameter(`Unable to find VPC by id ${r.vpcid}`);
  if (r.networkid) await findNetwork(ctx, r.networkid);
  if (r.associatednetworkid) await findNetwork(ctx, r.associatednetworkid);
  if (r.zoneid) await findZone(ctx, r.zoneid);
  if (r.virtualmachineid) await findVisibleVm(ctx, r.virtualmachineid);
  if (r.vlanid) {
    const range = await ctx.app.store.db
      .selectFrom('vlan_ip_ranges')
      .select('id')
      .where('uuid', '=', r.vlanid)
      .executeTakeFirst();
    if (!range) throw invalidParameter(`Unable to find IP range by id ${r.vlanid}`);
  }
  if (r.physicalnetworkid) {
    const physical = await ctx.app.store.db
      .selectFrom('physical_networks')
      .select('id')
      .where('uuid', '=', r.physicalnetworkid)
      .executeTakeFirst();
    if (!physical) throw invalidParameter(`Unable to find physical network by id ${r.physicalnetworkid}`);
  }
}

const ruleListParams = {
  ...listParams,
  ...scopeParams,
  projectid: p.uuid(),
  id: p.uuid(),
  ipaddressid: p.uuid(),
  networkid: p.uuid(),
  fordisplay: p.boolean(),
  tags: p.map(),
};

function emptyRuleList(
  name: 'listPortForwardingRules' | 'listFirewallRules' | 'listEgressFirewallRules',
  kind: string,
) {
  return defineCommand({
    name,
    params: ruleListParams,
    async handler(ctx, params) {
      await listScope(ctx, params);
      await checkReferences(ctx, params, kind);
      return listResult([], 0);
    },
  });
}

export const listPortForwardingRules = emptyRuleList('listPortForwardingRules', 'port forwarding rule');
export const listFirewallRules = emptyRuleList('listFirewallRules', 'firewall rule');
export const listEgressFirewallRules = emptyRuleList('listEgressFirewallRules', 'egress firewall rule');

export const listIpForwardingRules = defineCommand({
  name: 'listIpForwardingRules',
  params: {
    ...listParams,
    ...scopeParams,
    projectid: p.uuid(),
    id: p.uuid(),
    ipaddressid: p.uuid(),
    virtualmachineid: p.uuid(),
  },
  async handler(ctx, params) {
    await listScope(ctx, params);
    await checkReferences(ctx, params, 'IP forwarding rule');
    return listResult([], 0);
  },
});

export const listPublicIpAddresses = defineCommand({
  name: 'listPublicIpAddresses',
  params: {
    ...listParams,
    ...scopeParams,
    projectid: p.uuid(),
    id: p.uuid(),
    ipaddress: p.string(),
    zoneid: p.uuid(),
    vlanid: p.uuid(),
    networkid: p.uuid(),
    associatednetworkid: p.uuid(),
    physicalnetworkid: p.uuid(),
    vpcid: p.uuid(),
    allocatedonly: p.boolean(),
    forvirtualnetwork: p.boolean(),
    forloadbalancing: p.boolean(),
    forprovider: p.boolean(),
    forsystemvms: p.boolean(),
    issourcenat: p.boolean(),
    isstaticnat: p.boolean(),
    fordisplay: p.boolean(),
    state: p.string(),
    retrieveonlyresourcecount: p.boolean(),
    tags: p.map(),
  },
  async handler(ctx, params) {
    await listScope(ctx, params);
    await checkReferences(ctx, params, 'public IP address');
    return listResult([], 0);
  },
});

export const ipServiceCommands = [
  listPublicIpAddresses,
  listPortForwardingRules,
  listIpForwardingRules,
  listFirewallRules,
  listEgressFirewallRules,
];
