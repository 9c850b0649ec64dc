/**
 * EC2 elastic addresses in an Advanced zone (simulator hosts, in-process server): boto3 allocates
 * addresses for the account's isolated network, launches an instance into it by SubnetId,
 * associates an address by static NAT (with its events in CloudStack),
 * and disassociates and releases it; EC2's codes for misuse; a Basic-style account without an
 * isolated network is UnsupportedOperation.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { type AdvancedZone, startAdvancedZone } from './public-ip-zone.ts';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const skip = !existsSync(PYTHON);
let z: AdvancedZone;

before(async () => {
  if (!skip) z = await startAdvancedZone({ publicIps: 5 });
});
after(() => z?.stop());

async function keysOf(name: string): Promise<{ apikey: string; secretkey: string }> {
  const user = (await z.admin.request<any>('listUsers', { username: name, listall: true })).user[0];
  return (await z.admin.request<any>('registerUserKeys', { id: user.id })).userkeys;
}

test('allocate, launch into a subnet, associate by static NAT, disassociate, release', { skip }, async () => {
  const alice = await z.createUser('alice');
  const net = (
    await alice.request<any>('createNetwork', {
      name: 'a-net',
      zoneid: z.zoneid,
      networkofferingid: z.isolatedOffering,
    })
  ).network;
  await z.createUser('nonet');
  const script = `
import json, sys, boto3
from botocore.exceptions import ClientError
endpoint, key, secret, ami, subnet, okey, osecret = sys.argv[1:8]
def client(k, s):
    return boto3.session.Session(aws_access_key_id=k, aws_secret_access_key=s, region_name='nimbostack').client('ec2', endpoint_url=endpoint)
ec2 = client(key, secret)
out, errors = {}, {}
def code(name, f):
    try:
        f()
        errors[name] = None
    except ClientError as e:
        errors[name] = [e.response['Error']['Code'], e.response['ResponseMetadata']['HTTPStatusCode']]
a = ec2.allocate_address(Domain='vpc')
out['allocated'] = a
inst = ec2.run_instances(ImageId=ami, InstanceType='Small Instance', MinCount=1, MaxCount=1, SubnetId=subnet)['Instances'][0]['InstanceId']
ec2.get_waiter('instance_running').wait(InstanceIds=[inst], WaiterConfig={'Delay': 1, 'MaxAttempts': 60})
assoc = ec2.associate_address(AllocationId=a['AllocationId'], InstanceId=inst)
out['instance'] = inst
out['association'] = assoc['AssociationId']
out['described'] = ec2.describe_addresses(AllocationIds=[a['AllocationId']])['Addresses']
code('inuse', lambda: ec2.release_address(AllocationId=a['AllocationId']))
ec2.disassociate_address(AssociationId=assoc['AssociationId'])
out['after'] = ec2.describe_addresses(PublicIps=[a['PublicIp']])['Addresses']
ec2.release_address(AllocationId=a['AllocationId'])
code('released', lambda: ec2.describe_addresses(AllocationIds=[a['AllocationId']]))
code('nonet', lambda: client(okey, osecret).allocate_address(Domain='vpc'))
out['errors'] = errors
print(json.dumps(out))
`;
  const keys = await keysOf('alice');
  const other = await keysOf('nonet');
  const ami = `ami-${z.templateid.replace(/-/g, '')}`;
  const subnet = `subnet-${net.id.replace(/-/g, '')}`;
  const { stdout } = await run(
    PYTHON,
    [
      '-c',
      script,
      `${z.server.url}/awsapi`,
      keys.apikey,
      keys.secretkey,
      ami,
      subnet,
      other.apikey,
      other.secretkey,
    ],
    { timeout: 120_000, env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } },
  );
  const out = JSON.parse(stdout);
  assert.match(out.allocated.PublicIp, /^203\.0\.113\.\d+$/);
  assert.match(out.allocated.AllocationId, /^eipalloc-[0-9a-f]{32}$/);
  assert.equal(out.described.length, 1);
  assert.equal(out.described[0].InstanceId, out.instance);
  assert.equal(out.described[0].AssociationId, out.association);
  assert.match(out.described[0].PrivateIpAddress, /^\d+\.\d+\.\d+\.\d+$/);
  assert.deepEqual(out.after, [
    { PublicIp: out.allocated.PublicIp, AllocationId: out.allocated.AllocationId, Domain: 'vpc' },
  ]);
  assert.deepEqual(out.errors, {
    inuse: ['InvalidIPAddress.InUse', 400],
    released: ['InvalidAllocationID.NotFound', 400],
    nonet: ['UnsupportedOperation', 400],
  });
  // CloudStack's view: the instance is in the network, the address is gone again.
  const [vm] = (await alice.request<any>('listVirtualMachines', {})).virtualmachine;
  assert.equal(`i-${vm.id.replace(/-/g, '')}`, out.instance);
  assert.equal(vm.nic[0].networkid, net.id);
  const left = (await alice.request<any>('listPublicIpAddresses', {})).publicipaddress ?? [];
  assert.ok(!left.some((a: any) => a.ipaddress === out.allocated.PublicIp));
  const events = ((await alice.request<any>('listEvents', {})).event ?? []).map((e: any) => e.type);
  for (const type of ['NET.IPASSIGN', 'STATICNAT.ENABLE', 'STATICNAT.DISABLE', 'NET.IPRELEASE'])
    assert.ok(events.includes(type), `${type} among the account's events`);
});
