/**
 * VPCs and subnets. An EC2 VPC is a CloudStack VPC (listVPCs): vpc-… of its UUID, its CIDR, state
 * available once Enabled. An EC2 subnet is a guest network the caller may deploy into that has an
 * IPv4 CIDR (listNetworks): a VPC's tiers carry their VPC's id; isolated and shared networks
 * outside VPCs are subnets too, without a VpcId, since RunInstances' SubnetId already names any
 * guest network. L2 networks (no CIDR) are not subnets.
 */
import { defineAction, type Ec2Context, e } from './action.ts';
import { listAll } from './cloudstack.ts';
import { Ec2Error } from './errors.ts';
import { applyFilters, type FilterTable, paginate } from './filters.ts';
import { type IdKind, notFound, toEc2Id, toUuid } from './ids.ts';
import { isoTime, tagSet, tagsOf } from './present.ts';
import { itemSet } from './xml.ts';

interface CsVpc {
  id: string;
  name: string;
  cidr: string;
  state: string;
  account?: string;
  created?: string;
  tags?: { key: string; value: string }[];
}

interface CsNetwork {
  id: string;
  name: string;
  cidr?: string;
  type: string;
  state: string;
  vpcid?: string;
  zonename?: string;
  zoneid?: string;
  account?: string;
  created?: string;
  tags?: { key: string; value: string }[];
}

const vpcState = (v: CsVpc) => (v.state === 'Enabled' ? 'available' : 'pending');

/** Subnets: the caller's guest networks with an IPv4 CIDR. */
async function subnets(ctx: Ec2Context): Promise<CsNetwork[]> {
  return (await listAll<CsNetwork>(ctx, 'listNetworks', 'network')).filter((n) => n.cidr);
}

/** The objects named by EC2 ids, in the order named; one the caller does not see is ….NotFound. */
function named<T extends { id: string }>(kind: IdKind, all: T[], ids: string[]): T[] {
  return ids.map((id) => {
    const uuid = toUuid(kind, id);
    const found = all.find((o) => o.id === uuid);
    if (!found) throw notFound(kind, id);
    return found;
  });
}

/** One page in creation order; `MaxResults` with explicit ids is refused, as EC2 does. */
function page<T extends { id: string; created?: string }>(
  items: T[],
  params: { ids?: string[]; MaxResults?: number; NextToken?: string },
  idsName: string,
) {
  if (params.ids && params.MaxResults !== undefined)
    throw new Ec2Error(
      'InvalidParameterCombination',
      `The parameter ${idsName} cannot be used with the parameter MaxResults`,
    );
  return paginate(items, (o) => `${isoTime(o.created) ?? ''}/${o.id}`, params.MaxResults, params.NextToken);
}

const VPC_FILTERS: FilterTable<CsVpc> = {
  'vpc-id': (v) => [toEc2Id('vpc', v.id)],
  'cidr-block': (v) => [v.cidr],
  cidr: (v) => [v.cidr],
  'cidr-block-association.cidr-block': (v) => [v.cidr],
  state: (v) => [vpcState(v)],
  'owner-id': (v) => [v.account],
  'is-default': () => ['false'],
  'dhcp-options-id': () => ['default'],
};

const maxResults = e.int({ min: 5, max: 1000, description: 'At most this many in one answer (5-1000).' });
const nextToken = e.string({ description: 'Where the previous answer stopped.' });

export const describeVpcs = defineAction({
  name: 'DescribeVpcs',
  description: 'Lists the VPCs the caller may see (listVPCs) as EC2 VPCs.',
  params: {
    VpcId: e.list({ description: 'VPCs to list (vpc-…); an unknown one is InvalidVpcID.NotFound.' }),
    Filter: e.filters({
      description:
        'Filters: vpc-id, cidr-block (or cidr, cidr-block-association.cidr-block), state, owner-id, is-default, dhcp-options-id, tag:Key, tag-key, tag-value.',
    }),
    MaxResults: maxResults,
    NextToken: nextToken,
  },
  async handler(ctx, params) {
    const all = await listAll<CsVpc>(ctx, 'listVPCs', 'vpc');
    const chosen = params.VpcId ? named('vpc', all, params.VpcId) : all;
    const { page: shown, nextToken } = page(
      applyFilters(chosen, params.Filter, VPC_FILTERS, tagsOf),
      { ...params, ids: params.VpcId },
      'VpcIds',
    );
    return {
      vpcSet: itemSet(
        shown.map((v) => ({
          vpcId: toEc2Id('vpc', v.id),
          ownerId: v.account,
          state: vpcState(v),
          cidrBlock: v.cidr,
          cidrBlockAssociationSet: itemSet([
            {
              cidrBlock: v.cidr,
              associationId: `vpc-cidr-assoc-${v.id.replace(/-/g, '')}`,
              cidrBlockState: { state: 'associated' },
            },
          ]),
          dhcpOptionsId: 'default',
          instanceTenancy: 'default',
          isDefault: false,
          tagSet: tagSet(tagsOf(v)),
        })),
      ),
      nextToken,
    };
  },
});

const SUBNET_FILTERS: FilterTable<CsNetwork> = {
  'subnet-id': (n) => [toEc2Id('subnet', n.id)],
  'vpc-id': (n) => [n.vpcid ? toEc2Id('vpc', n.vpcid) : undefined],
  'cidr-block': (n) => [n.cidr],
  cidr: (n) => [n.cidr],
  cidrBlock: (n) => [n.cidr],
  'availability-zone': (n) => [n.zonename],
  'availability-zone-id': (n) => [n.zoneid],
  state: () => ['available'],
  'owner-id': (n) => [n.account],
  'default-for-az': () => ['false'],
  defaultForAz: () => ['false'],
};

export const describeSubnets = defineAction({
  name: 'DescribeSubnets',
  description:
    'Lists the guest networks the caller may use that have an IPv4 CIDR (listNetworks) as subnets: VPC tiers with their VpcId, isolated and shared networks without one.',
  params: {
    SubnetId: e.list({
      description: 'Subnets to list (subnet-…); an unknown one is InvalidSubnetID.NotFound.',
    }),
    Filter: e.filters({
      description:
        'Filters: subnet-id, vpc-id, cidr-block (or cidr, cidrBlock), availability-zone, availability-zone-id, state, owner-id, default-for-az, tag:Key, tag-key, tag-value.',
    }),
    MaxResults: maxResults,
    NextToken: nextToken,
  },
  async handler(ctx, params) {
    const all = await subnets(ctx);
    const chosen = params.SubnetId ? named('subnet', all, params.SubnetId) : all;
    const { page: shown, nextToken } = page(
      applyFilters(chosen, params.Filter, SUBNET_FILTERS, tagsOf),
      { ...params, ids: params.SubnetId },
      'SubnetIds',
    );
    return {
      subnetSet: itemSet(
        shown.map((n) => ({
          subnetId: toEc2Id('subnet', n.id),
          state: 'available',
          vpcId: n.vpcid ? toEc2Id('vpc', n.vpcid) : undefined,
          ownerId: n.account,
          cidrBlock: n.cidr,
          availabilityZone: n.zonename,
          availabilityZoneId: n.zoneid,
          defaultForAz: false,
          mapPublicIpOnLaunch: false,
          assignIpv6AddressOnCreation: false,
          ipv6CidrBlockAssociationSet: '',
          tagSet: tagSet(tagsOf(n)),
        })),
      ),
      nextToken,
    };
  },
});

export const vpcActions = [describeVpcs, describeSubnets];
