/**
 * Security groups are CloudStack's security groups (Basic zones and Advanced zones with security
 * groups): create/list/deleteSecurityGroup, and authorize/revokeSecurityGroupIngress/Egress for
 * rules. An EC2 permission (protocol, ports, several CIDRs and groups) is one CloudStack rule per
 * CIDR or group; answers put rules with the same protocol and ports back into one permission.
 * Rule changes wait for their jobs, so a Describe right after sees them.
 */
import { defineAction, type Ec2Context, e, type IpPermission } from './action.ts';
import { type CsParams, listAll, runCommand, runToCompletion } from './cloudstack.ts';
import { Ec2Error, invalidValue, missingParameter } from './errors.ts';
import { applyFilters, type FilterTable } from './filters.ts';
import { notFound, toEc2Id, toUuid } from './ids.ts';
import { tagSet, tagsOf } from './present.ts';
import { itemSet } from './xml.ts';

interface Rule {
  ruleid: string;
  protocol: string;
  startport?: number;
  endport?: number;
  icmptype?: number;
  icmpcode?: number;
  cidr?: string;
  account?: string;
  securitygroupname?: string;
}

interface Group {
  id: string;
  name: string;
  description?: string;
  account?: string;
  ingressrule?: Rule[];
  egressrule?: Rule[];
  tags?: { key: string; value: string }[];
}

async function groups(ctx: Ec2Context): Promise<Group[]> {
  return listAll<Group>(ctx, 'listSecurityGroups', 'securitygroup');
}

/** The group an action names by GroupId (sg-…) or GroupName. */
export async function groupNamed(
  ctx: Ec2Context,
  groupId: string | undefined,
  groupName: string | undefined,
): Promise<Group> {
  if (groupId === undefined && groupName === undefined) throw missingParameter('GroupId');
  const all = await groups(ctx);
  if (groupId !== undefined) {
    const uuid = toUuid('securityGroup', groupId);
    const group = all.find((g) => g.id === uuid);
    if (!group) throw notFound('securityGroup', groupId);
    return group;
  }
  const group = all.find((g) => g.name === groupName);
  if (!group) throw new Ec2Error('InvalidGroup.NotFound', `The security group '${groupName}' does not exist`);
  return group;
}

/** EC2 protocol → CloudStack's: names, -1 for all, numbers of the named ones. */
function csProtocol(p: string): string {
  const lower = p.toLowerCase();
  if (lower === '-1' || lower === 'all') return 'all';
  return { '6': 'tcp', '17': 'udp', '1': 'icmp' }[lower] ?? lower;
}

const ec2Protocol = (p: string) => (p === 'all' ? '-1' : p);

/** The CloudStack rules (parameters of authorize…) one EC2 permission stands for. */
async function ruleParams(ctx: Ec2Context, group: Group, perm: IpPermission): Promise<CsParams> {
  const protocol = csProtocol(perm.ipProtocol);
  const ports: CsParams =
    protocol === 'icmp'
      ? { icmptype: perm.fromPort ?? -1, icmpcode: perm.toPort ?? -1 }
      : protocol === 'tcp' || protocol === 'udp'
        ? { startport: perm.fromPort, endport: perm.toPort }
        : {};
  const peers: Record<string, Record<string, string>> = {};
  for (const [i, g] of perm.groups.entries()) {
    const peer = g.groupId !== undefined ? await groupNamed(ctx, g.groupId, undefined) : undefined;
    const name = peer?.name ?? g.groupName;
    if (name === undefined) throw missingParameter('IpPermissions.Groups.GroupId');
    peers[String(i)] = { account: peer?.account ?? g.userId ?? ctx.caller.account.name, group: name };
  }
  if (!perm.cidrs.length && !perm.groups.length)
    throw invalidValue('IpPermissions', perm.ipProtocol, 'Give IpRanges or Groups.');
  return {
    securitygroupid: group.id,
    protocol,
    ...ports,
    cidrlist: perm.cidrs.length ? perm.cidrs.join(',') : undefined,
    usersecuritygrouplist: perm.groups.length ? peers : undefined,
  };
}

/** CloudStack rules grouped into EC2 permissions by protocol and ports. */
function permissions(rules: Rule[], groupIds: Map<string, string>): object[] {
  const byKey = new Map<string, { head: Rule; cidrs: string[]; peers: Rule[] }>();
  for (const r of rules) {
    const key = [r.protocol, r.startport, r.endport, r.icmptype, r.icmpcode].join('/');
    const entry = byKey.get(key) ?? { head: r, cidrs: [], peers: [] };
    if (r.cidr) entry.cidrs.push(r.cidr);
    else if (r.securitygroupname) entry.peers.push(r);
    byKey.set(key, entry);
  }
  return [...byKey.values()].map(({ head, cidrs, peers }) => ({
    ipProtocol: ec2Protocol(head.protocol),
    fromPort: head.protocol === 'icmp' ? head.icmptype : head.startport,
    toPort: head.protocol === 'icmp' ? head.icmpcode : head.endport,
    groups: itemSet(
      peers.map((p) => ({
        userId: p.account,
        groupName: p.securitygroupname,
        groupId: groupIds.get(`${p.account}/${p.securitygroupname}`),
      })),
    ),
    ipRanges: itemSet(cidrs.map((cidrIp) => ({ cidrIp }))),
    ipv6Ranges: '',
    prefixListIds: '',
  }));
}

export const createSecurityGroup = defineAction({
  name: 'CreateSecurityGroup',
  description: 'Creates a security group (createSecurityGroup) with no rules.',
  params: {
    GroupName: e.string({ required: true, description: 'Name of the group, unique in the account.' }),
    GroupDescription: e.string({ required: true, description: 'What the group is for.' }),
    VpcId: e.string({ description: 'Not supported: security groups here belong to accounts, not VPCs.' }),
  },
  async handler(ctx, params) {
    if (params.VpcId !== undefined)
      throw new Ec2Error('UnsupportedOperation', 'Security groups belong to accounts here, not to VPCs.');
    if ((await groups(ctx)).some((g) => g.name === params.GroupName))
      throw new Ec2Error('InvalidGroup.Duplicate', `The security group '${params.GroupName}' already exists`);
    const { securitygroup } = (await runCommand(ctx, 'createSecurityGroup', {
      name: params.GroupName,
      description: params.GroupDescription,
    })) as { securitygroup: Group };
    return { return: true, groupId: toEc2Id('securityGroup', securitygroup.id) };
  },
});

const FILTERS: FilterTable<Group> = {
  'group-id': (g) => [toEc2Id('securityGroup', g.id)],
  'group-name': (g) => [g.name],
  description: (g) => [g.description],
  'owner-id': (g) => [g.account],
  'ip-permission.cidr': (g) => (g.ingressrule ?? []).map((r) => r.cidr),
  'ip-permission.protocol': (g) => (g.ingressrule ?? []).map((r) => ec2Protocol(r.protocol)),
  'egress.ip-permission.cidr': (g) => (g.egressrule ?? []).map((r) => r.cidr),
};

export const describeSecurityGroups = defineAction({
  name: 'DescribeSecurityGroups',
  description:
    "Lists the caller's security groups with their ingress and egress permissions (listSecurityGroups).",
  params: {
    GroupId: e.list({ description: 'Groups to list by id (sg-…); an unknown one is InvalidGroup.NotFound.' }),
    GroupName: e.list({ description: 'Groups to list by name.' }),
    Filter: e.filters({
      description:
        'Filters: group-id, group-name, description, owner-id, ip-permission.cidr, ip-permission.protocol, egress.ip-permission.cidr, tag:Key, tag-key, tag-value.',
    }),
  },
  async handler(ctx, params) {
    const all = await groups(ctx);
    let shown = all;
    if (params.GroupId) shown = await Promise.all(params.GroupId.map((id) => groupNamed(ctx, id, undefined)));
    if (params.GroupName)
      shown = await Promise.all(params.GroupName.map((name) => groupNamed(ctx, undefined, name)));
    shown = applyFilters(shown, params.Filter, FILTERS, tagsOf);
    const ids = new Map(all.map((g) => [`${g.account}/${g.name}`, toEc2Id('securityGroup', g.id)]));
    return {
      securityGroupInfo: itemSet(
        shown.map((g) => ({
          ownerId: g.account,
          groupId: toEc2Id('securityGroup', g.id),
          groupName: g.name,
          groupDescription: g.description ?? '',
          ipPermissions: itemSet(permissions(g.ingressrule ?? [], ids)),
          ipPermissionsEgress: itemSet(permissions(g.egressrule ?? [], ids)),
          tagSet: tagSet(tagsOf(g)),
        })),
      ),
    };
  },
});

export const deleteSecurityGroup = defineAction({
  name: 'DeleteSecurityGroup',
  description: 'Deletes a security group (deleteSecurityGroup); one still used by VMs is refused.',
  params: {
    GroupId: e.string({ description: 'The group (sg-…); give it or GroupName.' }),
    GroupName: e.string({ description: 'The group by name.' }),
  },
  async handler(ctx, params) {
    const group = await groupNamed(ctx, params.GroupId, params.GroupName);
    await runCommand(ctx, 'deleteSecurityGroup', { id: group.id });
    return { return: true };
  },
});

const ruleActionParams = {
  GroupId: e.string({ description: 'The group (sg-…); give it or GroupName.' }),
  GroupName: e.string({ description: 'The group by name.' }),
  IpPermissions: e.ipPermissions({
    required: true,
    description:
      'Permissions: IpProtocol (tcp, udp, icmp, -1 or a number), FromPort/ToPort (ICMP: type/code), IpRanges.N.CidrIp, Groups.N.GroupId or GroupName (with UserId: the account).',
  }),
};

function authorize(name: string, command: string, direction: string) {
  return defineAction({
    name,
    description: `Adds ${direction} permissions to a security group (${command}; one rule per CIDR or group).`,
    params: ruleActionParams,
    async handler(ctx, params) {
      const group = await groupNamed(ctx, params.GroupId, params.GroupName);
      for (const perm of params.IpPermissions!)
        await runToCompletion(ctx, command, await ruleParams(ctx, group, perm));
      return { return: true };
    },
  });
}

function revoke(name: string, command: string, direction: 'ingressrule' | 'egressrule') {
  return defineAction({
    name,
    description: `Removes ${direction === 'ingressrule' ? 'ingress' : 'egress'} permissions from a security group (${command} for each matching rule); a permission matching no rule is InvalidPermission.NotFound.`,
    params: ruleActionParams,
    async handler(ctx, params) {
      const group = await groupNamed(ctx, params.GroupId, params.GroupName);
      const rules = group[direction] ?? [];
      const doomed: string[] = [];
      for (const perm of params.IpPermissions!) {
        const want = await ruleParams(ctx, group, perm);
        const peers = Object.values(
          (want.usersecuritygrouplist ?? {}) as Record<string, Record<string, string>>,
        );
        const cidrs = typeof want.cidrlist === 'string' ? want.cidrlist.split(',') : [];
        const same = (r: Rule) =>
          r.protocol === want.protocol &&
          (r.protocol === 'icmp'
            ? r.icmptype === want.icmptype && r.icmpcode === want.icmpcode
            : r.startport === want.startport && r.endport === want.endport);
        for (const cidr of cidrs) {
          const rule = rules.find((r) => same(r) && r.cidr === cidr);
          if (!rule)
            throw new Ec2Error(
              'InvalidPermission.NotFound',
              `The specified rule does not exist in this security group (${cidr}).`,
            );
          doomed.push(rule.ruleid);
        }
        for (const peer of peers) {
          const rule = rules.find(
            (r) => same(r) && r.account === peer.account && r.securitygroupname === peer.group,
          );
          if (!rule)
            throw new Ec2Error(
              'InvalidPermission.NotFound',
              `The specified rule does not exist in this security group (${peer.group}).`,
            );
          doomed.push(rule.ruleid);
        }
      }
      for (const id of doomed) await runToCompletion(ctx, command, { id });
      return { return: true };
    },
  });
}

export const securityGroupActions = [
  createSecurityGroup,
  describeSecurityGroups,
  deleteSecurityGroup,
  authorize('AuthorizeSecurityGroupIngress', 'authorizeSecurityGroupIngress', 'ingress'),
  authorize('AuthorizeSecurityGroupEgress', 'authorizeSecurityGroupEgress', 'egress'),
  revoke('RevokeSecurityGroupIngress', 'revokeSecurityGroupIngress', 'ingressrule'),
  revoke('RevokeSecurityGroupEgress', 'revokeSecurityGroupEgress', 'egressrule'),
];
