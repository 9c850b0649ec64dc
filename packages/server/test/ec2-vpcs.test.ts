/**
 * The EC2 API's second part in an Advanced zone (simulator hosts, in-process server), through the
 * EC2 endpoint's own port (config ec2Port): DescribeVpcs/DescribeSubnets over VPCs, their tiers
 * and an isolated network, with filters and pages; presigned Version 4 URLs and their expiry;
 * DryRun answering DryRunOperation or UnauthorizedOperation and changing nothing;
 * GetConsoleOutput of a simulated instance, running and stopped; RegisterImage from a URL served
 * by a local HTTP server, fetched by the download machinery, then launched. boto3 and the AWS CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { type AdvancedZone, startAdvancedZone } from './public-ip-zone.ts';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const skip = !existsSync('/usr/bin/aws') || !existsSync(PYTHON);
let z: AdvancedZone;
let files: Server;
let imageUrl = '';
let fetched = 0;

/** A QCOW2 header claiming 1 GiB, padded to 256 KiB: what the download check accepts as QCOW2. */
function qcow2(): Buffer {
  const b = randomBytes(256 * 1024);
  b.fill(0, 0, 72);
  b.writeUInt32BE(0x514649fb, 0);
  b.writeUInt32BE(3, 4);
  b.writeUInt32BE(16, 20);
  b.writeBigUInt64BE(BigInt(1024 ** 3), 24);
  return b;
}

before(async () => {
  if (skip) return;
  z = await startAdvancedZone({ publicIps: 5, config: { ec2Port: 0 } });
  const image = qcow2();
  files = createServer((req, res) => {
    if (req.url !== '/images/uploaded.qcow2') return void res.writeHead(404).end();
    fetched++;
    res.writeHead(200, { 'content-length': image.length }).end(image);
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  imageUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}/images/uploaded.qcow2`;
});
after(async () => {
  files?.close();
  await z?.stop();
});

async function keysOf(name: string): Promise<{ apikey: string; secretkey: string }> {
  const user = (await z.admin.request<any>('listUsers', { username: name, listall: true })).user[0];
  return (await z.admin.request<any>('registerUserKeys', { id: user.id })).userkeys;
}

const hex = (uuid: string) => uuid.replace(/-/g, '');

test('VPCs and subnets, presigned URLs, DryRun, console output, RegisterImage', { skip }, async () => {
  const ec2Url = z.server.ec2Url!;
  assert.match(ec2Url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  assert.notEqual(new URL(ec2Url).port, new URL(z.server.url).port, 'a port of its own');

  const alice = await z.createUser('alice');
  const bob = await z.createUser('bob');
  const vpcOffering = (await alice.request<any>('listVPCOfferings', { name: 'Default VPC offering' }))
    .vpcoffering[0].id;
  const tierOffering = (
    await z.admin.request<any>('listNetworkOfferings', {
      name: 'DefaultIsolatedNetworkOfferingForVpcNetworks',
    })
  ).networkoffering[0].id;
  const vpc = (
    await alice.call<any>('createVPC', {
      name: 'shop',
      zoneid: z.zoneid,
      vpcofferingid: vpcOffering,
      cidr: '10.20.0.0/16',
    })
  ).vpc;
  const tiers: any[] = [];
  for (let i = 1; i <= 5; i++)
    tiers.push(
      (
        await alice.request<any>('createNetwork', {
          name: `tier${i}`,
          zoneid: z.zoneid,
          networkofferingid: tierOffering,
          vpcid: vpc.id,
          gateway: `10.20.${i}.1`,
          netmask: '255.255.255.0',
        })
      ).network,
    );
  const isolated = (
    await alice.request<any>('createNetwork', {
      name: 'plain',
      zoneid: z.zoneid,
      networkofferingid: z.isolatedOffering,
    })
  ).network;
  const bobVpc = (
    await bob.call<any>('createVPC', {
      name: 'lab',
      zoneid: z.zoneid,
      vpcofferingid: vpcOffering,
      cidr: '10.30.0.0/16',
    })
  ).vpc;

  // carol's role denies deployVirtualMachine: her DryRun of RunInstances is UnauthorizedOperation.
  const userRole = (await z.admin.request<any>('listRoles', { type: 'User' })).role[0];
  const role = (
    await z.admin.request<any>('createRole', { name: 'No deploys', roleid: userRole.id, description: 'x' })
  ).role;
  await z.admin.request('createRolePermission', {
    roleid: role.id,
    rule: 'deployVirtualMachine',
    permission: 'deny',
  });
  await z.admin.request('createAccount', {
    username: 'carol',
    password: 'secret-pass',
    email: 'carol@example.com',
    firstname: 'c',
    lastname: 'c',
    roleid: role.id,
  });

  const keys = await keysOf('alice');
  const carol = await keysOf('carol');
  const ami = `ami-${hex(z.templateid)}`;
  const script = `
import json, sys, time, urllib.request, urllib.error, boto3
from botocore.exceptions import ClientError
endpoint, key, secret, ami, subnet, vpc, bobvpc, ckey, csecret, image_url = sys.argv[1:11]
def client(k, s):
    return boto3.session.Session(aws_access_key_id=k, aws_secret_access_key=s, region_name='nimbostack').client('ec2', endpoint_url=endpoint)
ec2 = client(key, secret)
fast = {'Delay': 1, 'MaxAttempts': 60}
out, errors = {}, {}
def code(name, f):
    try:
        f()
        errors[name] = None
    except ClientError as e:
        errors[name] = [e.response['Error']['Code'], e.response['ResponseMetadata']['HTTPStatusCode']]
def fetch(url, data=None):
    try:
        with urllib.request.urlopen(url, data=data) as r:
            return [r.status, r.read().decode()]
    except urllib.error.HTTPError as e:
        return [e.code, e.read().decode()]

# VPCs and subnets.
out['vpcs'] = [(v['VpcId'], v['CidrBlock'], v['State'], v.get('Tags', [])) for v in ec2.describe_vpcs()['Vpcs']]
out['vpcbycidr'] = [v['VpcId'] for v in ec2.describe_vpcs(Filters=[{'Name': 'cidr-block', 'Values': ['10.20.*']}])['Vpcs']]
out['vpcbytag'] = [v['VpcId'] for v in ec2.describe_vpcs(Filters=[{'Name': 'tag:env', 'Values': ['dev']}])['Vpcs']]
code('bobvpc', lambda: ec2.describe_vpcs(VpcIds=[bobvpc]))
code('badvpc', lambda: ec2.describe_vpcs(VpcIds=['vpc-12']))
out['subnets'] = sorted((s['SubnetId'], s['CidrBlock'], s.get('VpcId'), s['AvailabilityZone']) for s in ec2.describe_subnets()['Subnets'])
out['invpc'] = len(ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [vpc]}])['Subnets'])
out['bycidr'] = [s['CidrBlock'] for s in ec2.describe_subnets(Filters=[{'Name': 'cidr-block', 'Values': ['10.20.3.0/24']}])['Subnets']]
out['subnetpages'] = [len(p['Subnets']) for p in ec2.get_paginator('describe_subnets').paginate(PaginationConfig={'PageSize': 5})]
code('nosubnet', lambda: ec2.describe_subnets(SubnetIds=['subnet-' + '0' * 32]))

# DryRun: the answer says whether it would succeed; nothing is made.
code('dryrun', lambda: ec2.run_instances(ImageId=ami, InstanceType='Small Instance', MinCount=1, MaxCount=1, SubnetId=subnet, DryRun=True))
out['afterdry'] = sum(len(r['Instances']) for r in ec2.describe_instances()['Reservations'])
code('drydenied', lambda: client(ckey, csecret).run_instances(ImageId=ami, InstanceType='Small Instance', MinCount=1, MaxCount=1, DryRun=True))
code('drydescribe', lambda: ec2.describe_vpcs(DryRun=True))
code('drybadimage', lambda: ec2.run_instances(ImageId='ami-' + '0' * 32, InstanceType='Small Instance', MinCount=1, MaxCount=1, DryRun=True))

# Console output of a running, then a stopped instance.
inst = ec2.run_instances(ImageId=ami, InstanceType='Small Instance', MinCount=1, MaxCount=1, SubnetId=subnet)['Instances'][0]['InstanceId']
ec2.get_waiter('instance_running').wait(InstanceIds=[inst], WaiterConfig=fast)
out['instance'] = inst
out['console'] = ec2.get_console_output(InstanceId=inst)['Output']
code('dryterminate', lambda: ec2.terminate_instances(InstanceIds=[inst], DryRun=True))
out['stillrunning'] = ec2.describe_instances(InstanceIds=[inst])['Reservations'][0]['Instances'][0]['State']['Name']
ec2.stop_instances(InstanceIds=[inst])
ec2.get_waiter('instance_stopped').wait(InstanceIds=[inst], WaiterConfig=fast)
out['consolestopped'] = ec2.get_console_output(InstanceId=inst)['Output']

# Presigned Version 4 URLs: good, tampered with, expired.
url = ec2.generate_presigned_url('describe_vpcs', Params={'VpcIds': [vpc]}, ExpiresIn=300, HttpMethod='GET')
out['presigned'] = fetch(url)
out['tampered'] = fetch(url.replace(vpc, bobvpc))
# Signed for the model's method (POST) by default: posted with an empty body.
out['presignedpost'] = fetch(ec2.generate_presigned_url('describe_vpcs', ExpiresIn=300), data=b'')
out['postasget'] = fetch(ec2.generate_presigned_url('describe_vpcs', ExpiresIn=300))
short = ec2.generate_presigned_url('describe_vpcs', Params={}, ExpiresIn=1, HttpMethod='GET')
time.sleep(2.2)
out['expired'] = fetch(short)

# RegisterImage from a URL: pending, then available once downloaded; instances launch from it.
img = ec2.register_image(Name='uploaded', Description='from a URL', ImageLocation=image_url)['ImageId']
out['registered'] = img
ec2.get_waiter('image_available').wait(ImageIds=[img], WaiterConfig=fast)
out['image'] = [(i['ImageId'], i['State'], i['Name'], i['Description']) for i in ec2.describe_images(Owners=['self'])['Images']]
launched = ec2.run_instances(ImageId=img, InstanceType='Small Instance', MinCount=1, MaxCount=1, SubnetId=subnet)['Instances'][0]
out['fromimage'] = launched['ImageId']
# Pages stay exact when instances of an earlier page go away, the token's own one included.
batch = [i['InstanceId'] for i in ec2.run_instances(ImageId=ami, InstanceType='Small Instance', MinCount=7, MaxCount=7, SubnetId=subnet,
    TagSpecifications=[{'ResourceType': 'instance', 'Tags': [{'Key': 'batch', 'Value': 'b1'}]}])['Instances']]
ec2.get_waiter('instance_running').wait(InstanceIds=batch, WaiterConfig=fast)
flt = [{'Name': 'tag:batch', 'Values': ['b1']}, {'Name': 'instance-state-name', 'Values': ['running']}]
p1 = ec2.describe_instances(Filters=flt, MaxResults=5)
first = [i['InstanceId'] for r in p1['Reservations'] for i in r['Instances']]
gone = [first[0], first[4]]
ec2.terminate_instances(InstanceIds=gone)
for _ in range(100):
    left = [i['InstanceId'] for r in ec2.describe_instances(Filters=[{'Name': 'instance-id', 'Values': gone}])['Reservations'] for i in r['Instances']]
    if not left: break
    time.sleep(0.1)
p2 = ec2.describe_instances(Filters=flt, MaxResults=5, NextToken=p1['NextToken'])
out['paging'] = {'batch': batch, 'first': first, 'second': [i['InstanceId'] for r in p2['Reservations'] for i in r['Instances']], 'more': p2.get('NextToken')}
out['byids'] = [i['InstanceId'] for r in ec2.describe_instances(Filters=[{'Name': 'instance-id', 'Values': [batch[1], 'i-' + '0' * 32]}])['Reservations'] for i in r['Instances']]
code('badtoken', lambda: ec2.describe_instances(MaxResults=5, NextToken='eyJvIjoxfQ'))
code('noimageurl', lambda: ec2.register_image(Name='nothing'))
code('badarch', lambda: ec2.register_image(Name='arm', ImageLocation=image_url, Architecture='arm64'))
out['errors'] = errors
print(json.dumps(out))
`;
  const subnet = `subnet-${hex(tiers[0].id)}`;
  const { stdout } = await run(
    PYTHON,
    [
      '-c',
      script,
      ec2Url,
      keys.apikey,
      keys.secretkey,
      ami,
      subnet,
      `vpc-${hex(vpc.id)}`,
      `vpc-${hex(bobVpc.id)}`,
      carol.apikey,
      carol.secretkey,
      imageUrl,
    ],
    { timeout: 180_000, env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } },
  );
  const out = JSON.parse(stdout);
  const vpcId = `vpc-${hex(vpc.id)}`;
  assert.deepEqual(out.vpcs, [[vpcId, '10.20.0.0/16', 'available', []]]);
  assert.deepEqual(out.vpcbycidr, [vpcId]);
  assert.deepEqual(out.vpcbytag, []);
  assert.deepEqual(
    out.subnets,
    [
      ...tiers.map((t, i) => [`subnet-${hex(t.id)}`, `10.20.${i + 1}.0/24`, vpcId, 'advzone']),
      [`subnet-${hex(isolated.id)}`, isolated.cidr, null, 'advzone'],
    ].sort(),
  );
  assert.equal(out.invpc, 5);
  assert.deepEqual(out.bycidr, ['10.20.3.0/24']);
  assert.deepEqual(out.subnetpages, [5, 1]);

  assert.equal(out.afterdry, 0, 'a dry run launches nothing');
  assert.equal(out.stillrunning, 'running', 'a dry-run terminate leaves the instance');
  assert.match(out.console, /simulated VM i-\d+-\d+-VM powered on \(1 vCPU, \d+ MiB/);
  assert.match(out.consolestopped, /powered on[\s\S]*powered off/, 'the log outlives the stop');

  assert.equal(out.presigned[0], 200);
  assert.match(out.presigned[1], new RegExp(`<vpcId>${vpcId}</vpcId>`));
  assert.equal(out.presignedpost[0], 200);
  assert.match(out.presignedpost[1], new RegExp(`<vpcId>${vpcId}</vpcId>`));
  assert.equal(out.postasget[0], 403, 'the method is signed');
  assert.equal(out.tampered[0], 403);
  assert.match(out.tampered[1], /<Code>SignatureDoesNotMatch<\/Code>/);
  assert.equal(out.expired[0], 400);
  assert.match(out.expired[1], /<Code>RequestExpired<\/Code>/);

  assert.match(out.registered, /^ami-[0-9a-f]{32}$/);
  assert.deepEqual(out.image, [[out.registered, 'available', 'uploaded', 'from a URL']]);
  assert.equal(out.fromimage, out.registered);
  assert.ok(fetched >= 1, 'the download machinery fetched the image from its URL');
  assert.deepEqual(out.errors, {
    bobvpc: ['InvalidVpcID.NotFound', 400],
    badvpc: ['InvalidVpcID.Malformed', 400],
    nosubnet: ['InvalidSubnetID.NotFound', 400],
    dryrun: ['DryRunOperation', 412],
    drydenied: ['UnauthorizedOperation', 403],
    drydescribe: ['DryRunOperation', 412],
    drybadimage: ['InvalidAMIID.NotFound', 400],
    dryterminate: ['DryRunOperation', 412],
    noimageurl: ['MissingParameter', 400],
    badarch: ['InvalidParameterValue', 400],
    badtoken: ['InvalidParameterValue', 400],
  });
  // Creation order: the first page is the batch's first five; the second the two after them,
  // although the first page's first and last instances were terminated in between.
  const { batch, first, second, more } = out.paging;
  assert.deepEqual(first, batch.slice(0, 5));
  assert.deepEqual(second, batch.slice(5));
  assert.equal(more, null, 'no token after the last page');
  assert.deepEqual(out.byids, [batch[1]], 'an unknown id among instance-id values matches nothing');

  // The same endpoint through the AWS CLI: subnets by filter, console output decoded.
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: keys.apikey,
    AWS_SECRET_ACCESS_KEY: keys.secretkey,
    AWS_DEFAULT_REGION: 'nimbostack',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  const aws = async (...args: string[]) =>
    JSON.parse(
      (await run('aws', ['--endpoint-url', ec2Url, '--output', 'json', 'ec2', ...args], { env })).stdout,
    );
  const cli = await aws(
    'describe-subnets',
    '--filters',
    `Name=vpc-id,Values=${vpcId}`,
    'Name=cidr,Values=10.20.5.*',
  );
  assert.deepEqual(
    cli.Subnets.map((s: any) => s.SubnetId),
    [`subnet-${hex(tiers[4].id)}`],
  );
  const consoleOut = await aws('get-console-output', '--instance-id', out.instance);
  assert.equal(consoleOut.InstanceId, out.instance);
  assert.match(consoleOut.Output, /powered off/);

  // CloudStack's view: one VM from the template (none from the dry runs), the registered template.
  const vms = (await alice.request<any>('listVirtualMachines', {})).virtualmachine;
  assert.equal(vms.length, 7, 'the instance from the template, the one from the image, five of the batch');
  const template = (
    await alice.request<any>('listTemplates', {
      templatefilter: 'self',
      id: out.registered.slice(4).replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-'),
    })
  ).template[0];
  assert.equal(template.name, 'uploaded');
  assert.equal(template.format, 'QCOW2');
  assert.equal(template.hypervisor, 'Simulator');
  assert.equal(template.ostypename, 'Other Linux (64-bit)');
});
