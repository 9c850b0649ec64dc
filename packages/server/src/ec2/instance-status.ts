/**
 * Instance status and attributes: DescribeInstanceStatus (the state of each instance, and the
 * checks EC2 reports, derived from it: a running VM passes, others are not applicable) and
 * ModifyInstanceAttribute for the instance type (changeServiceForVirtualMachine: stopped
 * instances only, as in EC2); GetPasswordData (getVMPassword: the password encrypted with the RSA
 * key of the instance's key pair, PKCS#1 v1.5, which is EC2's scheme, so `aws ec2
 * get-password-data --priv-launch-key` decrypts it); GetConsoleOutput (the serial console log the
 * VM's host keeps, through the agent's getConsoleOutput).
 */
import { ApiError, ErrorCode } from '../errors.ts';
import { defineAction, e } from './action.ts';
import { runCommand } from './cloudstack.ts';
import { Ec2Error, invalidValue, missingParameter } from './errors.ts';
import { type FilterTable, matcher } from './filters.ts';
import { toEc2Id } from './ids.ts';
import { offeringNamed } from './instance-types.ts';
import { describedVms, instanceState, instancesNamed, type Vm } from './instances.ts';
import { itemSet } from './xml.ts';

/** EC2's status checks as far as the VM's state says them: no guest probing is done. */
function checks(vm: Vm) {
  const running = instanceState(vm).name === 'running';
  const summary = running ? 'ok' : 'not-applicable';
  const detail = { item: { name: 'reachability', status: running ? 'passed' : 'not-applicable' } };
  return { status: summary, details: running ? detail : '' };
}

const FILTERS: FilterTable<Vm> = {
  'availability-zone': (vm) => [vm.zonename],
  'instance-state-name': (vm) => [instanceState(vm).name],
  'instance-state-code': (vm) => [String(instanceState(vm).code)],
  'instance-status.status': (vm) => [checks(vm).status],
  'system-status.status': (vm) => [checks(vm).status],
};

export const describeInstanceStatus = defineAction({
  name: 'DescribeInstanceStatus',
  description:
    "Lists instances' states and status checks; without IncludeAllInstances only running instances, as in EC2. The checks follow the VM's state.",
  params: {
    InstanceId: e.list({ description: 'Instances to list; an unknown one is InvalidInstanceID.NotFound.' }),
    IncludeAllInstances: e.boolean({ description: 'Also instances that are not running.' }),
    Filter: e.filters({
      description:
        'Filters: availability-zone, instance-state-name, instance-state-code, instance-status.status, system-status.status.',
    }),
    MaxResults: e.int({
      min: 5,
      max: 1000,
      description: 'At most this many instances in one answer; not with InstanceId.',
    }),
    NextToken: e.string({ description: 'Where the previous answer stopped.' }),
  },
  async handler(ctx, params) {
    if (params.InstanceId && params.MaxResults !== undefined)
      throw new Ec2Error(
        'InvalidParameterCombination',
        'The parameter instancesSet cannot be used with the parameter maxResults',
      );
    const filtered = matcher(params.Filter, FILTERS);
    const matches = (vm: Vm) =>
      (params.IncludeAllInstances || instanceState(vm).name === 'running') && filtered(vm);
    const { page, nextToken } = params.InstanceId
      ? { page: (await instancesNamed(ctx, params.InstanceId)).filter(matches), nextToken: undefined }
      : await describedVms(ctx, params, matches);
    return {
      instanceStatusSet: itemSet(
        page.map((vm) => ({
          instanceId: toEc2Id('instance', vm.id),
          availabilityZone: vm.zonename,
          instanceState: instanceState(vm),
          systemStatus: checks(vm),
          instanceStatus: checks(vm),
        })),
      ),
      nextToken,
    };
  },
});

export const modifyInstanceAttribute = defineAction({
  name: 'ModifyInstanceAttribute',
  description:
    "Changes a stopped instance's type (changeServiceForVirtualMachine): InstanceType.Value, or Attribute=instanceType with Value. Other attributes are not supported yet.",
  params: {
    InstanceId: e.string({ required: true, description: 'The instance (i-…).' }),
    'InstanceType.Value': e.string({ description: 'The new instance type (a compute offering name).' }),
    Attribute: e.string({ description: 'The attribute Value sets: instanceType.' }),
    Value: e.string({ description: 'The new value of Attribute.' }),
  },
  async handler(ctx, params) {
    let type = params['InstanceType.Value'];
    if (params.Attribute !== undefined) {
      if (params.Attribute !== 'instanceType')
        throw new Ec2Error('UnsupportedOperation', `Changing ${params.Attribute} is not supported.`);
      if (params.Value === undefined) throw missingParameter('Value');
      type = params.Value;
    }
    if (type === undefined) throw missingParameter('InstanceType.Value');
    const [vm] = await instancesNamed(ctx, [params.InstanceId!]);
    if (instanceState(vm).name !== 'stopped')
      throw new Ec2Error(
        'IncorrectInstanceState',
        `The instance '${params.InstanceId}' is not in the 'stopped' state.`,
      );
    const offering = await offeringNamed(ctx, type);
    if (offering.name === vm.serviceofferingname)
      throw invalidValue('InstanceType', type, 'The instance already has this type.');
    await runCommand(ctx, 'changeServiceForVirtualMachine', { id: vm.id, serviceofferingid: offering.id });
    return { return: true };
  },
});

/** EC2 gives the last 64 KiB of the console. */
const CONSOLE_BYTES = 64 * 1024;

export const getConsoleOutput = defineAction({
  name: 'GetConsoleOutput',
  description:
    "Returns the last 64 KiB of an instance's serial console, base64-encoded, from the host it runs on or last ran on (KVM: what the guest printed on ttyS0; LXC: the container's console; simulator: its power events). Empty when no host has run it.",
  params: {
    InstanceId: e.string({ required: true, description: 'The instance (i-…).' }),
    Latest: e.boolean({ description: 'Accepted for compatibility: the output is always the latest.' }),
  },
  async handler(ctx, params) {
    // Visibility first: another account's instance is NotFound, as everywhere.
    const [vm] = await instancesNamed(ctx, [params.InstanceId!]);
    const row = await ctx.app.store.db
      .selectFrom('vms')
      .select(['host_id', 'last_host_id', 'instance_name'])
      .where('uuid', '=', vm.id)
      .executeTakeFirstOrThrow();
    const hostId = row.host_id ?? row.last_host_id;
    const output = hostId
      ? (
          await ctx.app.agents.call(hostId, 'getConsoleOutput', {
            name: row.instance_name,
            maxBytes: CONSOLE_BYTES,
          })
        ).output
      : '';
    return {
      instanceId: params.InstanceId,
      timestamp: new Date(ctx.app.clock.now()).toISOString(),
      output,
    };
  },
});

export const getPasswordData = defineAction({
  name: 'GetPasswordData',
  description:
    "Returns an instance's password encrypted with its key pair's RSA key (getVMPassword); empty when it has none (no password-enabled image, or no RSA key pair), as EC2 answers before a password exists.",
  params: { InstanceId: e.string({ required: true, description: 'The instance (i-…).' }) },
  async handler(ctx, params) {
    const [vm] = await instancesNamed(ctx, [params.InstanceId!]);
    let passwordData = '';
    try {
      const body = (await runCommand(ctx, 'getVMPassword', { id: vm.id })) as {
        password?: { encryptedpassword?: string };
        encryptedpassword?: string;
      };
      passwordData = body.password?.encryptedpassword ?? body.encryptedpassword ?? '';
    } catch (err) {
      // getVMPassword's 431s say there is no password to give: EC2's empty answer.
      if (!(err instanceof ApiError && err.errorcode === ErrorCode.PARAM_ERROR)) throw err;
    }
    return {
      instanceId: params.InstanceId,
      timestamp: new Date(ctx.app.clock.now()).toISOString(),
      passwordData,
    };
  },
});
