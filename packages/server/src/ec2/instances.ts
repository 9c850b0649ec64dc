/**
 * Instances are VMs. DescribeInstances reads listVirtualMachines; RunInstances runs
 * deployVirtualMachine once per instance; Start/Stop/Reboot/TerminateInstances run
 * start/stop/reboot/destroyVirtualMachine. Each is the CloudStack command (cloudstack.ts): a job
 * with its events, so the answer gives the state at the time of the call (pending, stopping …),
 * as EC2 does, and the change follows.
 */
import { randomUUID } from 'node:crypto';
import { ApiError, ErrorCode } from '../errors.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { type BlockDevice, defineAction, type Ec2Context, e, type Filters } from './action.ts';
import { type CsParams, listAll, listPage, runCommand } from './cloudstack.ts';
import { Ec2Error, invalidValue, missingParameter } from './errors.ts';
import { exactValue, exactValues, type FilterTable, matcher, tagParams } from './filters.ts';
import { notFound, toEc2Id, toUuid } from './ids.ts';
import { instanceTypes, offeringNamed } from './instance-types.ts';
import { ensureKeyPair } from './key-pairs.ts';
import { isoTime, tagSet, tagsOf, tagsParam } from './present.ts';
import { listZones } from './regions.ts';
import { diskOfferingFor } from './volumes.ts';
import { itemSet } from './xml.ts';

export interface Vm {
  id: string;
  name: string;
  displayname?: string;
  account?: string;
  state: string;
  zonename?: string;
  created?: string;
  templateid?: string;
  serviceofferingname?: string;
  ostypeid?: string;
  keypairs?: string;
  ipaddress?: string;
  hypervisor?: string;
  nic?: { ipaddress?: string; macaddress?: string; isdefault?: boolean }[];
  securitygroup?: { id: string; name: string }[];
  tags?: { key: string; value: string }[];
}

// A deleted account's launch records go with it (after its VMs: stage 1, as the other cleanups).
onAccountDelete(async (ctx, account) => {
  await ctx.app.store.db.deleteFrom('ec2_launches').where('account_id', '=', account.id).execute();
});

/** EC2's instance states (code, name) for CloudStack's VM states. */
const STATE: Record<string, [number, string]> = {
  Creating: [0, 'pending'],
  Starting: [0, 'pending'],
  Running: [16, 'running'],
  Migrating: [16, 'running'],
  Stopping: [64, 'stopping'],
  Stopped: [80, 'stopped'],
  Shutdown: [80, 'stopped'],
  Error: [80, 'stopped'],
  Destroyed: [48, 'terminated'],
  Expunging: [32, 'shutting-down'],
};

export function instanceState(vm: Vm): { code: number; name: string } {
  const [code, name] = STATE[vm.state] ?? [0, 'pending'];
  return { code, name };
}

interface Launch {
  reservation: string;
  clientToken: string | null;
}

/** The reservation each VM belongs to: RunInstances' record, else the VM on its own. */
async function launchesOf(ctx: Ec2Context, vms: Vm[]): Promise<Map<string, Launch>> {
  const rows = vms.length
    ? await ctx.app.store.db
        .selectFrom('ec2_launches')
        .select(['vm_uuid', 'reservation', 'client_token'])
        .where(
          'vm_uuid',
          'in',
          vms.map((v) => v.id),
        )
        .execute()
    : [];
  const byVm = new Map(
    rows.map((r) => [r.vm_uuid, { reservation: r.reservation, clientToken: r.client_token }]),
  );
  for (const vm of vms)
    if (!byVm.has(vm.id)) byVm.set(vm.id, { reservation: toEc2Id('reservation', vm.id), clientToken: null });
  return byVm;
}

function presentInstance(vm: Vm, launch: Launch, index: number): object {
  const nic = vm.nic?.find((n) => n.isdefault) ?? vm.nic?.[0];
  return {
    instanceId: toEc2Id('instance', vm.id),
    imageId: vm.templateid ? toEc2Id('image', vm.templateid) : undefined,
    instanceState: instanceState(vm),
    privateDnsName: vm.name,
    dnsName: '',
    keyName: vm.keypairs?.split(',')[0] || undefined,
    amiLaunchIndex: index,
    instanceType: vm.serviceofferingname,
    launchTime: isoTime(vm.created),
    placement: { availabilityZone: vm.zonename, tenancy: 'default' },
    monitoring: { state: 'disabled' },
    privateIpAddress: vm.ipaddress ?? nic?.ipaddress,
    groupSet: itemSet(
      (vm.securitygroup ?? []).map((g) => ({ groupId: toEc2Id('securityGroup', g.id), groupName: g.name })),
    ),
    architecture: 'x86_64',
    rootDeviceType: 'ebs',
    rootDeviceName: '/dev/vda',
    virtualizationType: 'hvm',
    clientToken: launch.clientToken ?? undefined,
    tagSet: tagSet(tagsOf(vm)),
    hypervisor: vm.hypervisor?.toLowerCase(),
    networkInterfaceSet: '',
  };
}

/** Instances grouped into their reservations, in the order first seen. */
async function reservationsOf(ctx: Ec2Context, vms: Vm[]): Promise<object[]> {
  const launches = await launchesOf(ctx, vms);
  const groups = new Map<string, Vm[]>();
  for (const vm of vms) {
    const r = launches.get(vm.id)!.reservation;
    groups.set(r, [...(groups.get(r) ?? []), vm]);
  }
  return [...groups].map(([reservation, members]) => ({
    reservationId: reservation,
    ownerId: members[0].account,
    groupSet: '',
    instancesSet: itemSet(members.map((vm, i) => presentInstance(vm, launches.get(vm.id)!, i))),
  }));
}

/** The caller's visible VMs named by EC2 ids; any unknown id is InvalidInstanceID.NotFound. */
export async function instancesNamed(ctx: Ec2Context, ids: string[]): Promise<Vm[]> {
  const uuids = ids.map((id) => toUuid('instance', id));
  let found: Vm[];
  try {
    found = await listAll<Vm>(ctx, 'listVirtualMachines', 'virtualmachine', { ids: uuids.join(',') });
  } catch (err) {
    // listVirtualMachines refuses an unknown UUID (431), where EC2 names the id not found.
    if (!(err instanceof ApiError && err.errorcode === ErrorCode.PARAM_ERROR)) throw err;
    found = [];
  }
  return uuids.map((uuid, i) => {
    const vm = found.find((v) => v.id === uuid);
    if (!vm) throw notFound('instance', ids[i]);
    return vm;
  });
}

/** EC2 states that are one CloudStack state each, which listVirtualMachines can filter on. */
const ONE_STATE: Record<string, string> = {
  terminated: 'Destroyed',
  'shutting-down': 'Expunging',
  stopping: 'Stopping',
};

/**
 * listVirtualMachines parameters for the filters CloudStack can apply itself (exact values of
 * instance-id, availability-zone, instance-type, image-id, key-name, the states above, tag:Key);
 * undefined when they already say that nothing matches.
 */
export async function vmListParams(
  ctx: Ec2Context,
  filters: Filters | undefined,
): Promise<CsParams | undefined> {
  const out: CsParams = {};
  const one = (name: string) => exactValue(filters, name);
  const ids = exactValues(filters, 'instance-id')?.filter((id) => /^i-[0-9a-f]{32}$/.test(id));
  if (ids?.length === 0) return undefined;
  if (ids) out.ids = ids.map((id) => toUuid('instance', id)).join(',');
  const zone = one('availability-zone');
  if (zone !== undefined) {
    const found = (await listZones(ctx)).find((z) => z.zoneName === zone);
    if (!found) return undefined;
    out.zoneid = found.zoneId;
  }
  const type = one('instance-type');
  if (type !== undefined) {
    const found = (await instanceTypes(ctx)).find((o) => o.name === type);
    if (!found) return undefined;
    out.serviceofferingid = found.id;
  }
  const image = one('image-id');
  if (image !== undefined) {
    if (!/^ami-[0-9a-f]{32}$/.test(image)) return undefined;
    out.templateid = toUuid('image', image);
  }
  out.keypair = one('key-name');
  const state = one('instance-state-name');
  if (state !== undefined) out.state = ONE_STATE[state];
  out.tags = tagParams(filters);
  return out;
}

/**
 * The instances a Describe action shows: those listVirtualMachines gives for the filters it can
 * apply, then the rest of the filters; a page of them when MaxResults or NextToken is given.
 */
export async function describedVms(
  ctx: Ec2Context,
  params: { Filter?: Filters; MaxResults?: number; NextToken?: string },
  keep: (vm: Vm) => boolean,
): Promise<{ page: Vm[]; nextToken?: string }> {
  let pushed = await vmListParams(ctx, params.Filter);
  if (!pushed) return { page: [] };
  const read = (cs: CsParams) =>
    params.MaxResults === undefined && params.NextToken === undefined
      ? listAll<Vm>(ctx, 'listVirtualMachines', 'virtualmachine', cs).then((vms) => ({
          page: vms.filter(keep),
        }))
      : listPage<Vm>(ctx, VM_LIST, cs, keep, params.MaxResults ?? 1000, params.NextToken);
  try {
    return await read(pushed);
  } catch (err) {
    // An instance-id filter naming an instance that does not exist: listVirtualMachines refuses
    // the UUID (431); the filter is applied here instead.
    if (!(pushed.ids && err instanceof ApiError && err.errorcode === ErrorCode.PARAM_ERROR)) throw err;
    pushed = { ...pushed, ids: undefined };
    return read(pushed);
  }
}

const VM_LIST = { name: 'listVirtualMachines', objectName: 'virtualmachine', table: 'vms' } as const;

const FILTERS: FilterTable<Vm> = {
  'instance-id': (vm) => [toEc2Id('instance', vm.id)],
  'instance-state-name': (vm) => [instanceState(vm).name],
  'instance-state-code': (vm) => [String(instanceState(vm).code)],
  'instance-type': (vm) => [vm.serviceofferingname],
  'image-id': (vm) => [vm.templateid ? toEc2Id('image', vm.templateid) : undefined],
  'key-name': (vm) => vm.keypairs?.split(',') ?? [],
  'availability-zone': (vm) => [vm.zonename],
  'private-ip-address': (vm) => (vm.nic ?? []).map((n) => n.ipaddress),
  'private-dns-name': (vm) => [vm.name],
  'instance.group-id': (vm) => (vm.securitygroup ?? []).map((g) => toEc2Id('securityGroup', g.id)),
  'instance.group-name': (vm) => (vm.securitygroup ?? []).map((g) => g.name),
  'launch-time': (vm) => [isoTime(vm.created)],
};

export const describeInstances = defineAction({
  name: 'DescribeInstances',
  description:
    'Lists the VMs the caller may see (listVirtualMachines) as instances, grouped into reservations (one per RunInstances call; a VM made otherwise is a reservation of its own).',
  params: {
    InstanceId: e.list({
      description: 'Instances to list; an unknown or invisible one is an InvalidInstanceID.NotFound error.',
    }),
    Filter: e.filters({
      description:
        'Filters: instance-id, instance-state-name, instance-state-code, instance-type, image-id, key-name, availability-zone, private-ip-address, private-dns-name, instance.group-id, instance.group-name, launch-time, tag:Key, tag-key, tag-value.',
    }),
    MaxResults: e.int({
      min: 5,
      max: 1000,
      description: 'At most this many instances in one answer (5-1000); not with InstanceId.',
    }),
    NextToken: e.string({ description: 'Where the previous answer stopped.' }),
  },
  async handler(ctx, params) {
    if (params.InstanceId && params.MaxResults !== undefined)
      throw new Ec2Error(
        'InvalidParameterCombination',
        'The parameter instancesSet cannot be used with the parameter maxResults',
      );
    const matches = matcher(params.Filter, FILTERS, tagsOf);
    // In creation order (CloudStack's), a page at a time from listVirtualMachines' own pages.
    const { page, nextToken } = params.InstanceId
      ? { page: (await instancesNamed(ctx, params.InstanceId)).filter(matches), nextToken: undefined }
      : await describedVms(ctx, params, matches);
    return { reservationSet: itemSet(await reservationsOf(ctx, page)), nextToken };
  },
});

export const runInstances = defineAction({
  name: 'RunInstances',
  description:
    'Deploys MaxCount VMs (deployVirtualMachine each) from an image with a compute offering; fewer than MinCount deployed is a failure, and those deployed are destroyed again. The answer shows them pending; they run when their deploy jobs finish.',
  params: {
    ImageId: e.string({ required: true, description: 'The image (template) to deploy.' }),
    InstanceType: e.string({ required: true, description: 'The name of a fixed-size compute offering.' }),
    MinCount: e.int({ required: true, min: 1, description: 'Fewest instances to launch, or none.' }),
    MaxCount: e.int({
      required: true,
      min: 1,
      max: 100,
      description: 'Most instances to launch (at most 100).',
    }),
    KeyName: e.string({ description: "The caller's SSH key pair to give the instances." }),
    SecurityGroupId: e.list({
      description: 'Security groups (sg-…) to apply, in zones with security groups.',
    }),
    SubnetId: e.string({
      description:
        "A guest network (subnet-… of the network's UUID) for the instances; Advanced zones need one.",
    }),
    SecurityGroup: e.list({ description: 'Security groups by name, in zones with security groups.' }),
    UserData: e.string({ description: 'User data, base64-encoded (the AWS CLI encodes it).' }),
    'Placement.AvailabilityZone': e.string({
      description: 'The zone to deploy in; the first available zone when omitted.',
    }),
    ClientToken: e.string({
      description:
        "Idempotency token: a call repeating one of the account's tokens answers that call's reservation and launches nothing.",
    }),
    TagSpecification: e.tagSpecifications({
      description:
        'Tags for the instances (ResourceType instance); a Name tag also becomes the display name.',
    }),
    BlockDeviceMapping: e.blockDeviceMappings({
      description:
        'Disks: the root device (/dev/vda, /dev/sda1, /dev/xvda) with Ebs.VolumeSize sizes the root disk; one other device adds a data volume of Ebs.VolumeSize GiB and Ebs.VolumeType (a disk offering name).',
    }),
  },
  async handler(ctx, params) {
    const min = params.MinCount!;
    const max = params.MaxCount!;
    if (min > max) throw invalidValue('MinCount', String(min), 'MinCount must not exceed MaxCount.');
    const token = params.ClientToken;
    if (token !== undefined && token.length > 64)
      throw invalidValue('ClientToken', token, 'It must be at most 64 characters.');
    if (token !== undefined) {
      const earlier = await ctx.app.store.db
        .selectFrom('ec2_launches')
        .select(['vm_uuid'])
        .where('account_id', '=', ctx.caller.account.id)
        .where('client_token', '=', token)
        .execute();
      if (earlier.length)
        return reservationAnswer(
          ctx,
          earlier.map((r) => r.vm_uuid),
        );
    }
    for (const spec of params.TagSpecification ?? [])
      if (spec.resourceType !== 'instance')
        throw invalidValue(
          'TagSpecification.ResourceType',
          spec.resourceType,
          'Only instance tags can be given.',
        );
    const tags = (params.TagSpecification ?? []).flatMap((s) => s.tags);
    const templateid = toUuid('image', params.ImageId!);
    // Not `id=`: listTemplates refuses an unknown UUID (431), where EC2 names the image not found.
    const usable = await listAll<{ id: string }>(ctx, 'listTemplates', 'template', {
      templatefilter: 'executable',
    });
    if (!usable.some((t) => t.id === templateid)) throw notFound('image', params.ImageId!);
    const offering = await offeringNamed(ctx, params.InstanceType!);
    const zones = await listZones(ctx);
    const zoneName = params['Placement.AvailabilityZone'];
    const zone = zoneName
      ? zones.find((z) => z.zoneName === zoneName)
      : zones.find((z) => z.zoneState === 'available');
    if (!zone)
      throw new Ec2Error(
        'InvalidParameterValue',
        zoneName ? `Invalid availability zone: [${zoneName}]` : 'No availability zone is available.',
      );
    if (params.KeyName !== undefined) await ensureKeyPair(ctx, params.KeyName);
    const disks = await launchDisks(ctx, params.BlockDeviceMapping ?? []);
    const deploy: CsParams = {
      zoneid: zone.zoneId,
      templateid,
      serviceofferingid: offering.id,
      keypair: params.KeyName,
      userdata: params.UserData,
      securitygroupids: params.SecurityGroupId?.map((id) => toUuid('securityGroup', id)).join(','),
      securitygroupnames: params.SecurityGroup?.join(','),
      networkids: params.SubnetId !== undefined ? toUuid('subnet', params.SubnetId) : undefined,
      displayname: tags.find((t) => t.key === 'Name')?.value,
      ...disks,
    };
    const launched: string[] = [];
    try {
      for (let i = 0; i < max; i++) {
        const { id } = (await runCommand(ctx, 'deployVirtualMachine', deploy)) as { id: string };
        launched.push(id);
      }
    } catch (err) {
      if (launched.length < min) {
        for (const id of launched) await runCommand(ctx, 'destroyVirtualMachine', { id });
        throw err;
      }
    }
    const reservation = toEc2Id('reservation', randomUUID());
    const now = ctx.app.clock.now();
    await ctx.app.store.db
      .insertInto('ec2_launches')
      .values(
        launched.map((vm) => ({
          vm_uuid: vm,
          reservation,
          account_id: ctx.caller.account.id,
          client_token: token ?? null,
          created: now,
        })),
      )
      .execute();
    if (tags.length)
      await runCommand(ctx, 'createTags', {
        resourcetype: 'UserVm',
        resourceids: launched.join(','),
        tags: tagsParam(tags),
      });
    return reservationAnswer(ctx, launched);
  },
});

const ROOT_DEVICES = ['/dev/vda', '/dev/sda', '/dev/sda1', '/dev/xvda'];

/** deployVirtualMachine's disk parameters for a BlockDeviceMapping: root size, one data disk. */
async function launchDisks(ctx: Ec2Context, devices: BlockDevice[]): Promise<CsParams> {
  const root = devices.filter((d) => ROOT_DEVICES.includes(d.deviceName));
  const data = devices.filter((d) => !ROOT_DEVICES.includes(d.deviceName));
  if (root.length > 1) throw invalidValue('BlockDeviceMapping', root[1].deviceName, 'Only one root device.');
  if (data.length > 1)
    throw invalidValue(
      'BlockDeviceMapping',
      data[1].deviceName,
      'One data volume at most can be given at launch.',
    );
  const out: CsParams = { rootdisksize: root[0]?.volumeSize };
  if (data.length) {
    if (data[0].volumeSize === undefined) throw missingParameter('BlockDeviceMapping.Ebs.VolumeSize');
    const offering = await diskOfferingFor(ctx, data[0].volumeType, data[0].volumeSize);
    out.diskofferingid = offering.id;
    out.size = offering.iscustomized ? data[0].volumeSize : undefined;
  }
  return out;
}

async function reservationAnswer(ctx: Ec2Context, vmIds: string[]): Promise<Record<string, unknown>> {
  const vms = await listAll<Vm>(ctx, 'listVirtualMachines', 'virtualmachine', { ids: vmIds.join(',') });
  const [reservation] = await reservationsOf(ctx, vms);
  return (reservation ?? { reservationId: toEc2Id('reservation', vmIds[0]), instancesSet: '' }) as Record<
    string,
    unknown
  >;
}

type Change = {
  command: string;
  params?: CsParams;
  skipIn: string[];
  becomes: { code: number; name: string };
};

/** Runs one state change on each instance named; those already there are left alone. */
async function changeState(ctx: Ec2Context, ids: string[], change: Change): Promise<object[]> {
  const vms = await instancesNamed(ctx, ids);
  const out: object[] = [];
  for (const [i, vm] of vms.entries()) {
    const previous = instanceState(vm);
    let current = previous;
    if (!change.skipIn.includes(previous.name)) {
      await runCommand(ctx, change.command, { id: vm.id, ...change.params });
      current = change.becomes;
    }
    out.push({ instanceId: ids[i], currentState: current, previousState: previous });
  }
  return out;
}

const instanceIds = (what: string) =>
  e.list({
    required: true,
    description: `The instances to ${what} (i-…); any unknown one fails the whole call.`,
  });

export const startInstances = defineAction({
  name: 'StartInstances',
  description: 'Starts stopped instances (startVirtualMachine); running ones are left as they are.',
  params: { InstanceId: instanceIds('start') },
  async handler(ctx, params) {
    const changed = await changeState(ctx, params.InstanceId!, {
      command: 'startVirtualMachine',
      skipIn: ['running', 'pending'],
      becomes: { code: 0, name: 'pending' },
    });
    return { instancesSet: itemSet(changed) };
  },
});

export const stopInstances = defineAction({
  name: 'StopInstances',
  description: 'Stops running instances (stopVirtualMachine); stopped ones are left as they are.',
  params: {
    InstanceId: instanceIds('stop'),
    Force: e.boolean({ description: 'Power the VMs off without waiting for the guests to shut down.' }),
  },
  async handler(ctx, params) {
    const changed = await changeState(ctx, params.InstanceId!, {
      command: 'stopVirtualMachine',
      params: { forced: params.Force },
      skipIn: ['stopped', 'stopping'],
      becomes: { code: 64, name: 'stopping' },
    });
    return { instancesSet: itemSet(changed) };
  },
});

export const rebootInstances = defineAction({
  name: 'RebootInstances',
  description: 'Reboots running instances (rebootVirtualMachine).',
  params: { InstanceId: instanceIds('reboot') },
  async handler(ctx, params) {
    const vms = await instancesNamed(ctx, params.InstanceId!);
    for (const vm of vms) {
      if (instanceState(vm).name !== 'running')
        throw new Ec2Error('IncorrectState', `The instance '${toEc2Id('instance', vm.id)}' is not running.`);
    }
    for (const vm of vms) await runCommand(ctx, 'rebootVirtualMachine', { id: vm.id });
    return { return: true };
  },
});

export const terminateInstances = defineAction({
  name: 'TerminateInstances',
  description:
    'Destroys instances (destroyVirtualMachine): they show as terminated while CloudStack keeps destroyed VMs, and go when they are expunged.',
  params: { InstanceId: instanceIds('terminate') },
  async handler(ctx, params) {
    const changed = await changeState(ctx, params.InstanceId!, {
      command: 'destroyVirtualMachine',
      skipIn: ['terminated', 'shutting-down'],
      becomes: { code: 32, name: 'shutting-down' },
    });
    return { instancesSet: itemSet(changed) };
  },
});

export const instanceActions = [
  describeInstances,
  runInstances,
  startInstances,
  stopInstances,
  rebootInstances,
  terminateInstances,
];
