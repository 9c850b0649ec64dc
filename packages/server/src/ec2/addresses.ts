/**
 * Elastic addresses are public IP addresses of Advanced zones: AllocateAddress acquires one for
 * the caller's isolated network (associateIpAddress), AssociateAddress points it at an instance by
 * static NAT (enableStaticNat), DisassociateAddress ends that (disableStaticNat), ReleaseAddress
 * gives it back (disassociateIpAddress). An allocation id is eipalloc-… of the address's UUID;
 * its association id is eipassoc-… of the same UUID (one association per address). Networks'
 * source-NAT addresses are not listed: they belong to the network's router. Where the caller has
 * no isolated network (a Basic zone), allocation is UnsupportedOperation, as EC2 answers for a
 * feature an account cannot use.
 */
import { defineAction, type Ec2Context, e } from './action.ts';
import { listAll, runToCompletion } from './cloudstack.ts';
import { Ec2Error, missingParameter } from './errors.ts';
import { applyFilters, type FilterTable } from './filters.ts';
import { notFound, toEc2Id, toUuid } from './ids.ts';
import { instancesNamed } from './instances.ts';
import { itemSet } from './xml.ts';

interface Address {
  id: string;
  ipaddress: string;
  issourcenat?: boolean;
  virtualmachineid?: string;
  vmipaddress?: string;
  associatednetworkid?: string;
}

async function addresses(ctx: Ec2Context): Promise<Address[]> {
  const all = await listAll<Address>(ctx, 'listPublicIpAddresses', 'publicipaddress');
  return all.filter((a) => !a.issourcenat);
}

/** The address an action names by AllocationId (or AssociationId) or PublicIp. */
async function addressNamed(
  ctx: Ec2Context,
  by: { allocationId?: string; associationId?: string; publicIp?: string },
): Promise<Address> {
  const all = await addresses(ctx);
  if (by.allocationId !== undefined || by.associationId !== undefined) {
    const kind = by.allocationId !== undefined ? 'address' : 'association';
    const id = (by.allocationId ?? by.associationId)!;
    const uuid = toUuid(kind, id);
    const found = all.find((a) => a.id === uuid);
    if (!found) throw notFound(kind, id);
    return found;
  }
  if (by.publicIp === undefined) throw missingParameter('AllocationId');
  const found = all.find((a) => a.ipaddress === by.publicIp);
  if (!found) throw new Ec2Error('InvalidAddress.NotFound', `Address '${by.publicIp}' not found.`);
  return found;
}

function present(a: Address): object {
  return {
    publicIp: a.ipaddress,
    allocationId: toEc2Id('address', a.id),
    domain: 'vpc',
    instanceId: a.virtualmachineid ? toEc2Id('instance', a.virtualmachineid) : undefined,
    associationId: a.virtualmachineid ? toEc2Id('association', a.id) : undefined,
    privateIpAddress: a.vmipaddress,
  };
}

export const allocateAddress = defineAction({
  name: 'AllocateAddress',
  description:
    "Acquires a public address for the caller's first isolated network (associateIpAddress); UnsupportedOperation when the caller has none.",
  params: { Domain: e.string({ description: 'vpc (the only kind here) or standard, taken as vpc.' }) },
  async handler(ctx) {
    const networks = await listAll<{ id: string; type: string }>(ctx, 'listNetworks', 'network');
    const network = networks.find((n) => n.type === 'Isolated');
    if (!network)
      throw new Ec2Error(
        'UnsupportedOperation',
        'Addresses need an isolated network of the account (Advanced zones); this account has none.',
      );
    const acquire = async () =>
      (
        (await runToCompletion(ctx, 'associateIpAddress', { networkid: network.id })) as {
          ipaddress: Address;
        }
      ).ipaddress;
    let ipaddress = await acquire();
    // The first address of a network without one becomes its source-NAT address (CloudStack's
    // rule), which belongs to the router: the caller's elastic address is the next one.
    if (ipaddress.issourcenat) ipaddress = await acquire();
    return { publicIp: ipaddress.ipaddress, allocationId: toEc2Id('address', ipaddress.id), domain: 'vpc' };
  },
});

const FILTERS: FilterTable<Address> = {
  'public-ip': (a) => [a.ipaddress],
  'allocation-id': (a) => [toEc2Id('address', a.id)],
  'association-id': (a) => [a.virtualmachineid ? toEc2Id('association', a.id) : undefined],
  'instance-id': (a) => [a.virtualmachineid ? toEc2Id('instance', a.virtualmachineid) : undefined],
  'private-ip-address': (a) => [a.vmipaddress],
  domain: () => ['vpc'],
};

export const describeAddresses = defineAction({
  name: 'DescribeAddresses',
  description: "Lists the caller's public addresses but networks' source-NAT ones (listPublicIpAddresses).",
  params: {
    PublicIp: e.list({ description: 'Addresses to list by address.' }),
    AllocationId: e.list({ description: 'Addresses to list by allocation id (eipalloc-…).' }),
    Filter: e.filters({
      description:
        'Filters: public-ip, allocation-id, association-id, instance-id, private-ip-address, domain.',
    }),
  },
  async handler(ctx, params) {
    let shown = await addresses(ctx);
    if (params.PublicIp)
      shown = await Promise.all(params.PublicIp.map((publicIp) => addressNamed(ctx, { publicIp })));
    if (params.AllocationId)
      shown = await Promise.all(
        params.AllocationId.map((allocationId) => addressNamed(ctx, { allocationId })),
      );
    return { addressesSet: itemSet(applyFilters(shown, params.Filter, FILTERS).map(present)) };
  },
});

export const associateAddress = defineAction({
  name: 'AssociateAddress',
  description:
    "Points an address at an instance by static NAT (enableStaticNat); the instance must be in the address's network.",
  params: {
    AllocationId: e.string({ description: 'The address (eipalloc-…); give it or PublicIp.' }),
    PublicIp: e.string({ description: 'The address itself.' }),
    InstanceId: e.string({ required: true, description: 'The instance (i-…).' }),
    AllowReassociation: e.boolean({ description: 'Move the address from the instance it points at now.' }),
  },
  async handler(ctx, params) {
    const address = await addressNamed(ctx, { allocationId: params.AllocationId, publicIp: params.PublicIp });
    const [vm] = await instancesNamed(ctx, [params.InstanceId!]);
    if (address.virtualmachineid && address.virtualmachineid !== vm.id) {
      if (!params.AllowReassociation)
        throw new Ec2Error(
          'Resource.AlreadyAssociated',
          `Address ${address.ipaddress} is already associated.`,
        );
      await runToCompletion(ctx, 'disableStaticNat', { ipaddressid: address.id });
    }
    if (address.virtualmachineid !== vm.id)
      await runToCompletion(ctx, 'enableStaticNat', { ipaddressid: address.id, virtualmachineid: vm.id });
    return { return: true, associationId: toEc2Id('association', address.id) };
  },
});

export const disassociateAddress = defineAction({
  name: 'DisassociateAddress',
  description: "Ends an address's static NAT to its instance (disableStaticNat).",
  params: {
    AssociationId: e.string({ description: 'The association (eipassoc-…); give it or PublicIp.' }),
    PublicIp: e.string({ description: 'The address itself.' }),
  },
  async handler(ctx, params) {
    const address = await addressNamed(ctx, {
      associationId: params.AssociationId,
      publicIp: params.PublicIp,
    });
    if (!address.virtualmachineid)
      throw new Ec2Error('InvalidAssociationID.NotFound', `Address ${address.ipaddress} is not associated.`);
    await runToCompletion(ctx, 'disableStaticNat', { ipaddressid: address.id });
    return { return: true };
  },
});

export const releaseAddress = defineAction({
  name: 'ReleaseAddress',
  description: 'Gives an address back (disassociateIpAddress); one still associated is refused, as in EC2.',
  params: {
    AllocationId: e.string({ description: 'The address (eipalloc-…); give it or PublicIp.' }),
    PublicIp: e.string({ description: 'The address itself.' }),
  },
  async handler(ctx, params) {
    const address = await addressNamed(ctx, { allocationId: params.AllocationId, publicIp: params.PublicIp });
    if (address.virtualmachineid)
      throw new Ec2Error(
        'InvalidIPAddress.InUse',
        `Address ${address.ipaddress} is associated with an instance.`,
      );
    await runToCompletion(ctx, 'disassociateIpAddress', { id: address.id });
    return { return: true };
  },
});

export const addressActions = [
  allocateAddress,
  describeAddresses,
  associateAddress,
  disassociateAddress,
  releaseAddress,
];
