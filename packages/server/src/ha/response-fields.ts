/** Response fields of the host-HA objects, in our words. */
import type { FieldDescriptions, ResponseFields } from '../registry/response-fields.ts';

const hostha: FieldDescriptions = {
  hostid: 'UUID of the host.',
  haenable: 'false once disableHAForHost was called: Nimbostack then never fences the host by itself.',
  haprovider: "The host's HA provider: kvmhaprovider or simulatorhaprovider; left out for LXC hosts.",
  hastate:
    'Where VM HA stands for the host: Available (Up), Suspect (agent gone), Checking, Degraded (alive on storage), Fenced (proven dead), Ineligible (cannot be proven dead) or Disabled.',
  status: 'true when the change was made.',
};

export const haResponseFields: ResponseFields = {
  hostha,
  haprovider: {
    haprovider: 'Name of a host-HA provider for the hypervisor asked about.',
    haenable: 'Not returned by listHostHAProviders: a provider is not a host (see listHostHAResources).',
    hastate: 'Not returned by listHostHAProviders: a provider is not a host (see listHostHAResources).',
  },
};
