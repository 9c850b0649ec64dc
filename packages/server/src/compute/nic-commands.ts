/**
 * A deployed VM's NICs: addNicToVirtualMachine, removeNicFromVirtualMachine and
 * updateDefaultNicForVirtualMachine, thin declarations over network/vm-nics.ts. Each is a job on
 * the VM (so it never races the VM's start or stop) and answers the VM with its NICs.
 */
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { addNicToVm, removeNicFromVm, setDefaultNic } from '../network/vm-nics.ts';
import { defineCommand, type JobTarget } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { presentVms } from './vm-presenter.ts';
import { findVm, reloadVm } from './vms.ts';

async function vmTarget(ctx: CallContext, id: string): Promise<JobTarget> {
  await findVm(ctx, id);
  return { type: 'VirtualMachine', id };
}

async function presentVm(ctx: CallContext, id: number) {
  return (await presentVms(ctx, [await reloadVm(ctx, id)]))[0];
}

export const addNicToVirtualMachine = defineCommand({
  name: 'addNicToVirtualMachine',
  description:
    "Plugs a new NIC on a guest network of the VM's zone into a Running or Stopped VM. Asynchronous; refused in Basic zones and while the VM has VM snapshots.",
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the VM that gets the NIC.' }),
    networkid: p.uuid({
      required: true,
      description: 'UUID of the guest network to connect; the VM must not have a NIC on it yet.',
    }),
    ipaddress: p.string({
      description: "IPv4 address to take from the network's range; a free one is picked when omitted.",
    }),
    macaddress: p.string({ description: 'Refused: Nimbostack always generates the MAC address.' }),
    dhcpoptions: p.map({ description: 'Refused: extra DHCP options are not supported.' }),
  },
  event: {
    type: 'NIC.CREATE',
    description: (params) => `adding a NIC on network ${params.networkid} to VM ${params.virtualmachineid}`,
  },
  target(ctx, params) {
    // Refused before a job is queued: nothing of these would be honoured.
    if (params.macaddress !== undefined)
      throw invalidParameter('Choosing the MAC address of a NIC is not supported');
    if (params.dhcpoptions?.length) throw invalidParameter('Extra DHCP options are not supported');
    return vmTarget(ctx, params.virtualmachineid);
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    await addNicToVm(ctx, vm, params.networkid, params.ipaddress);
    return presentVm(ctx, vm.id);
  },
});

export const removeNicFromVirtualMachine = defineCommand({
  name: 'removeNicFromVirtualMachine',
  description:
    'Unplugs a non-default NIC from a Running or Stopped VM and releases its address. Asynchronous; refused in Basic zones and while the VM has VM snapshots.',
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the VM.' }),
    nicid: p.uuid({
      required: true,
      description: "UUID of the VM's NIC to remove; it must not be the default one.",
    }),
  },
  event: {
    type: 'NIC.DELETE',
    description: (params) => `removing NIC ${params.nicid} from VM ${params.virtualmachineid}`,
  },
  target: (ctx, params) => vmTarget(ctx, params.virtualmachineid),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    await removeNicFromVm(ctx, vm, params.nicid);
    return presentVm(ctx, vm.id);
  },
});

export const updateDefaultNicForVirtualMachine = defineCommand({
  name: 'updateDefaultNicForVirtualMachine',
  description:
    "Makes another of the VM's NICs its default one (the gateway and DNS the guest uses). Asynchronous; refused in Basic zones and while the VM has VM snapshots.",
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the VM.' }),
    nicid: p.uuid({
      required: true,
      description: "UUID of the VM's NIC that becomes the default; it must not be the default already.",
    }),
  },
  event: {
    type: 'NIC.UPDATE',
    description: (params) => `making NIC ${params.nicid} the default of VM ${params.virtualmachineid}`,
  },
  target: (ctx, params) => vmTarget(ctx, params.virtualmachineid),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    await setDefaultNic(ctx, vm, params.nicid);
    return presentVm(ctx, vm.id);
  },
});

export const nicCommands = [
  addNicToVirtualMachine,
  removeNicFromVirtualMachine,
  updateDefaultNicForVirtualMachine,
];
