/**
 * Instance types are compute (service) offerings, named by the offering's name: the
 * `InstanceType` of RunInstances is an offering name. Customized offerings (CPU and memory chosen
 * at deployment) are not listed: EC2's RunInstances has no way to give those sizes.
 */
import { defineAction, type Ec2Context, e } from './action.ts';
import { listAll } from './cloudstack.ts';
import { Ec2Error } from './errors.ts';
import { applyFilters, type FilterTable, paginate } from './filters.ts';
import { itemSet } from './xml.ts';

export interface Offering {
  id: string;
  name: string;
  displaytext?: string;
  cpunumber?: number;
  cpuspeed?: number;
  memory?: number;
  iscustomized?: boolean;
  created?: string;
}

/** The fixed-size offerings the caller may use. */
export async function instanceTypes(ctx: Ec2Context): Promise<Offering[]> {
  const all = await listAll<Offering>(ctx, 'listServiceOfferings', 'serviceoffering');
  return all.filter((o) => !o.iscustomized && o.cpunumber !== undefined && o.memory !== undefined);
}

/** The offering an InstanceType names. */
export async function offeringNamed(ctx: Ec2Context, name: string): Promise<Offering> {
  const offering = (await instanceTypes(ctx)).find((o) => o.name === name);
  if (!offering)
    throw new Ec2Error(
      'InvalidParameterValue',
      `Invalid value '${name}' for InstanceType: no such compute offering.`,
    );
  return offering;
}

const FILTERS: FilterTable<Offering> = {
  'instance-type': (o) => [o.name],
  'vcpu-info.default-vcpus': (o) => [String(o.cpunumber)],
  'memory-info.size-in-mib': (o) => [String(o.memory)],
};

export const describeInstanceTypes = defineAction({
  name: 'DescribeInstanceTypes',
  description:
    'Lists the fixed-size compute offerings the caller may use as instance types, by offering name.',
  params: {
    InstanceType: e.list({
      description: 'Instance types (offering names) to list; an unknown one is an error.',
    }),
    Filter: e.filters({
      description: 'Filters: instance-type, vcpu-info.default-vcpus, memory-info.size-in-mib.',
    }),
    MaxResults: e.int({ min: 5, max: 100, description: 'At most this many types in one answer (5-100).' }),
    NextToken: e.string({ description: 'Where the previous answer stopped.' }),
  },
  async handler(ctx, params) {
    let types = await instanceTypes(ctx);
    if (params.InstanceType) {
      for (const name of params.InstanceType)
        if (!types.some((o) => o.name === name))
          throw new Ec2Error(
            'InvalidInstanceType',
            `The following supplied instance types do not exist: [${name}]`,
          );
      types = types.filter((o) => params.InstanceType!.includes(o.name));
    }
    types = applyFilters(types, params.Filter, FILTERS);
    const { page, nextToken } = paginate(types, (o) => o.name, params.MaxResults, params.NextToken);
    return {
      instanceTypeSet: itemSet(
        page.map((o) => ({
          instanceType: o.name,
          currentGeneration: true,
          supportedRootDeviceTypes: { item: 'ebs' },
          supportedVirtualizationTypes: { item: 'hvm' },
          processorInfo: {
            supportedArchitectures: { item: 'x86_64' },
            sustainedClockSpeedInGhz: (o.cpuspeed ?? 0) / 1000,
          },
          vCpuInfo: { defaultVCpus: o.cpunumber, defaultCores: o.cpunumber, defaultThreadsPerCore: 1 },
          memoryInfo: { sizeInMiB: o.memory },
        })),
      ),
      nextToken,
    };
  },
});
