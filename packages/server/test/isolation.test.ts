/**
 * The tenant-isolation matrix, generated from the command registry.
 *
 * Five principals — the root admin, a domain admin of D, a user of D, a user of the sibling domain
 * S and a user of the subdomain D/sub — each own one resource of every kind the simulator zone
 * makes. Then:
 *
 * - every registered list command is called by every principal with no scope, with listall, with
 *   each principal's account+domainid, with each domain (recursive or not), with a keyword and with
 *   the id of each resource it lists; every uuid of a tracked resource (and every account/domain
 *   pair of a principal) in an answer must be one the caller may see;
 * - every other command with a parameter naming an account-owned resource (the catalog's
 *   entityType) is called by principals outside the owner's reach with that parameter set to the
 *   victim's resource (the other parameters: the caller's own resources and plausible values): it
 *   must be refused, and the victim read back as root must be unchanged.
 *
 * Who may see what: root everything; the domain admin of D what accounts of D and D/sub own; users
 * only their own account's.
 *
 * Projects: a sixth owner, the project projD of domain D (userD its Admin, the only member), owns
 * one resource of every kind too, made by userD with projectid. The lists are also called with
 * projectid (projD's, and -1); commands naming a project (projectid) or its resources are refused to
 * the users of S and D/sub, who are not members, and change nothing.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { CloudStackClient, CloudStackError } from '@nimbostack/client';
import { allCommands } from '../src/commands.ts';
import type { Command } from '../src/registry/command.ts';
import { type AdvancedZone, startAdvancedZone } from './public-ip-zone.ts';

/** The five callers, and projD: the project whose resources are a sixth owner (never a caller). */
type Principal = 'root' | 'dadmin' | 'userD' | 'userS' | 'userSub' | 'projD';
const PRINCIPALS: Principal[] = ['root', 'dadmin', 'userD', 'userS', 'userSub'];

/** Whether `caller` may see what `owner` owns (upstream's rules for these five). */
function reaches(caller: Principal, owner: Principal): boolean {
  if (caller === 'root' || caller === owner) return true;
  // The project's member (userD) and the admin of its domain.
  if (owner === 'projD') return caller === 'userD' || caller === 'dadmin';
  if (caller === 'dadmin') return owner === 'userD' || owner === 'userSub';
  return false;
}

/** Attacker → victim pairs for the mutation matrix: across domains, upwards, and a parent's user. */
const ATTACKS: [Principal, Principal][] = [
  ['userD', 'userS'],
  ['userSub', 'userD'],
  ['userS', 'userSub'],
  ['dadmin', 'userS'],
  ['dadmin', 'root'],
  ['userS', 'projD'],
  ['userSub', 'projD'],
];

interface Tracked {
  owner: Principal;
  kind: string;
}

let z: AdvancedZone;
let files: Server;
let filesUrl = '';
const clients = new Map<Principal, CloudStackClient>();
const accounts = new Map<Principal, { id: string; name: string; domainid: string; userid: string }>();
const domains: Record<'D' | 'S' | 'sub', string> = { D: '', S: '', sub: '' };
let rootDomain = '';
/** uuid → its owner and kind, for every resource the fixture made. */
const tracked = new Map<string, Tracked>();
/** kind → owner → uuid. */
const byKind = new Map<string, Map<Principal, string>>();
let osTypeId = '';
/** The project whose resources are projD's. */
let projectD = '';
let customDisk = '';

function track(owner: Principal, kind: string, uuid: string | undefined) {
  if (!uuid) throw new Error(`${owner}: no ${kind} was made`);
  tracked.set(uuid, { owner, kind });
  if (!byKind.has(kind)) byKind.set(kind, new Map());
  byKind.get(kind)?.set(owner, uuid);
}

function own(kind: string, owner: Principal): string | undefined {
  return byKind.get(kind)?.get(owner);
}

/** Makes one resource of every kind as `who` (its own account), or in projD as its member userD. */
async function makeResources(who: Principal) {
  const c = clients.get(who === 'projD' ? 'userD' : who) as CloudStackClient;
  const x = who === 'projD' ? { projectid: projectD } : {};
  const n = (s: string) => `iso-${s}-${who}`;
  const net = (
    await c.request<any>('createNetwork', {
      name: n('net'),
      ...x,
      zoneid: z.zoneid,
      networkofferingid: z.isolatedOffering,
    })
  ).network;
  track(who, 'network', net.id);
  const deploy = await c.request<any>('deployVirtualMachine', {
    name: n('vm'),
    ...x,
    zoneid: z.zoneid,
    templateid: z.templateid,
    serviceofferingid: z.offering,
    networkids: net.id,
  });
  const vm = ((await c.waitForJob(deploy.jobid)).jobresult as any).virtualmachine;
  track(who, 'vm', vm.id);
  track(who, 'job', deploy.jobid);
  track(who, 'nic', vm.nic[0].id);
  track(
    who,
    'volume',
    (
      await c.call<any>('createVolume', {
        name: n('vol'),
        ...x,
        zoneid: z.zoneid,
        diskofferingid: customDisk,
        size: 1,
      })
    ).volume.id,
  );
  const rootVol = (await c.request<any>('listVolumes', { virtualmachineid: vm.id, type: 'ROOT', ...x }))
    .volume[0].id;
  track(who, 'rootvolume', rootVol);
  const snap = (await c.call<any>('createSnapshot', { volumeid: rootVol })).snapshot;
  track(who, 'snapshot', snap.id);
  track(
    who,
    'vmsnapshot',
    (await c.call<any>('createVMSnapshot', { virtualmachineid: vm.id })).vmsnapshot.id,
  );
  track(
    who,
    'template',
    (
      await c.request<any>('registerTemplate', {
        name: n('tpl'),
        ...x,
        displaytext: 'iso',
        format: 'QCOW2',
        hypervisor: 'Simulator',
        ostypeid: osTypeId,
        zoneid: z.zoneid,
        url: `${filesUrl}/tiny.qcow2`,
      })
    ).template[0].id,
  );
  track(
    who,
    'iso',
    (
      await c.request<any>('registerIso', {
        name: n('iso'),
        ...x,
        displaytext: 'iso',
        ostypeid: osTypeId,
        url: `${filesUrl}/tiny.iso`,
        zoneid: z.zoneid,
      })
    ).iso[0].id,
  );
  track(who, 'sshkeypair', (await c.request<any>('createSSHKeyPair', { name: n('key'), ...x })).keypair.id);
  // registerUserData answers {success: true}, as upstream: the id comes from the list.
  await c.request('registerUserData', {
    name: n('ud'),
    ...x,
    userdata: Buffer.from('#!/bin/sh\n').toString('base64'),
  });
  track(who, 'userdata', (await c.request<any>('listUserData', { name: n('ud'), ...x })).userdata[0].id);
  track(
    who,
    'affinitygroup',
    (await c.call<any>('createAffinityGroup', { name: n('ag'), type: 'host anti-affinity', ...x }))
      .affinitygroup.id,
  );
  track(
    who,
    'instancegroup',
    (await c.request<any>('createInstanceGroup', { name: n('ig'), ...x })).instancegroup.id,
  );
  const sg = (await c.request<any>('createSecurityGroup', { name: n('sg'), ...x })).securitygroup;
  track(who, 'securitygroup', sg.id);
  const sgr = await c.call<any>('authorizeSecurityGroupIngress', {
    securitygroupid: sg.id,
    protocol: 'tcp',
    startport: 22,
    endport: 22,
    cidrlist: '0.0.0.0/0',
  });
  track(who, 'sgrule', sgr.securitygroup.ingressrule[0].ruleid);
  const ip = (await c.call<any>('associateIpAddress', { networkid: net.id, ...x })).ipaddress;
  track(who, 'ip', ip.id);
  track(
    who,
    'firewall',
    (
      await c.call<any>('createFirewallRule', {
        ipaddressid: ip.id,
        protocol: 'tcp',
        startport: 22,
        endport: 22,
      })
    ).firewallrule.id,
  );
  track(
    who,
    'portforward',
    (
      await c.call<any>('createPortForwardingRule', {
        ipaddressid: ip.id,
        privateport: 22,
        publicport: 2022,
        protocol: 'tcp',
        virtualmachineid: vm.id,
      })
    ).portforwardingrule.id,
  );
  const lb = (
    await c.call<any>('createLoadBalancerRule', {
      publicipid: ip.id,
      name: n('lb'),
      algorithm: 'roundrobin',
      privateport: 80,
      publicport: 80,
    })
  ).loadbalancer;
  track(who, 'lb', lb.id);
  await c.call('assignToLoadBalancerRule', { id: lb.id, virtualmachineids: vm.id });
  track(
    who,
    'stickiness',
    (
      await c.call<any>('createLBStickinessPolicy', {
        lbruleid: lb.id,
        name: n('st'),
        methodname: 'LbCookie',
      })
    ).stickinesspolicies.stickinesspolicy[0].id,
  );
  track(
    who,
    'egress',
    (
      await c.call<any>('createEgressFirewallRule', {
        networkid: net.id,
        protocol: 'tcp',
        startport: 443,
        endport: 443,
      })
    ).firewallrule.id,
  );
  const ip2 = (await c.call<any>('associateIpAddress', { networkid: net.id, ...x })).ipaddress;
  track(who, 'ip2', ip2.id);
  await c.request('enableStaticNat', { ipaddressid: ip2.id, virtualmachineid: vm.id });
  track(
    who,
    'ipforward',
    (await c.call<any>('createIpForwardingRule', { ipaddressid: ip2.id, protocol: 'tcp', startport: 80 }))
      .portforwardingrule.id,
  );
  await c.call('createTags', {
    resourceids: vm.id,
    resourcetype: 'UserVm',
    'tags[0].key': 'tenant',
    'tags[0].value': who,
  });
  track(
    who,
    'snapshotpolicy',
    (
      await c.request<any>('createSnapshotPolicy', {
        volumeid: rootVol,
        intervaltype: 'daily',
        schedule: '01:01',
        maxsnaps: 1,
        timezone: 'UTC',
      })
    ).snapshotpolicy.id,
  );
}

/** Every tracked uuid in an answer, with where it was found (a public object's owner is no secret). */
function* uuidsIn(value: unknown, path: string): Generator<[string, string]> {
  if (typeof value === 'string') {
    if (tracked.has(value)) yield [value, path];
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* uuidsIn(value[i], `${path}[${i}]`);
  } else if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    const shared = o.ispublic === true || o.isfeatured === true;
    for (const [k, v] of Object.entries(o))
      if (!(shared && (k === 'accountid' || k === 'account'))) yield* uuidsIn(v, `${path}.${k}`);
  }
}

/** What in an answer `caller` must not see: tracked uuids, or objects naming an account it does not reach. */
function leaksIn(caller: Principal, answer: unknown): string[] {
  const out: string[] = [];
  for (const [uuid, path] of uuidsIn(answer, '')) {
    const t = tracked.get(uuid) as Tracked;
    if (!reaches(caller, t.owner)) out.push(`${path} = ${uuid} (${t.kind} of ${t.owner})`);
  }
  const walk = (v: unknown, path: string) => {
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) walk(v[i], `${path}[${i}]`);
    } else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      // Public templates and ISOs are everyone's to see, whoever owns them.
      const shared = o.ispublic === true || o.isfeatured === true;
      for (const [p, a] of accounts) {
        const named =
          !shared &&
          (o.accountid === a.id || (o.account === a.name && o.domainid === a.domainid)) &&
          !reaches(caller, p);
        if (named) out.push(`${path} belongs to account ${a.name} (${p})`);
      }
      for (const [k, x] of Object.entries(o)) walk(x, `${path}.${k}`);
    }
  };
  walk(answer, '');
  return [...new Set(out)];
}

async function attempt(c: CloudStackClient, command: string, params: Record<string, unknown>) {
  try {
    return { ok: true as const, answer: await c.call<any>(command, params as never) };
  } catch (e) {
    if (e instanceof CloudStackError) return { ok: false as const, code: e.errorcode, text: e.errortext };
    throw e;
  }
}

/** Runs `fn` over `items`, `width` at a time. */
async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** The kind a uuid parameter names, from the catalog's entityType (and the command, where shared). */
function kindOf(cmd: Command, param: string): string | undefined {
  const entity = cmd.catalog.params.find((p) => p.name === param) as { entityType?: string } | undefined;
  const name = cmd.name;
  switch (entity?.entityType) {
    case 'UserVmResponse':
      return 'vm';
    case 'VolumeResponse':
      return 'volume';
    case 'SnapshotResponse':
      return 'snapshot';
    case 'VMSnapshotResponse':
      return 'vmsnapshot';
    case 'TemplateResponse':
      return /Iso/.test(name) ? 'iso' : 'template';
    case 'NetworkResponse':
      return 'network';
    case 'IPAddressResponse':
      return 'ip';
    case 'FirewallRuleResponse':
      if (/PortForwarding/.test(name)) return 'portforward';
      if (/IpForwarding/.test(name)) return 'ipforward';
      if (/Egress/.test(name)) return 'egress';
      if (/Firewall/.test(name)) return 'firewall';
      return 'lb';
    case 'SecurityGroupResponse':
      return 'securitygroup';
    case 'SecurityGroupRuleResponse':
      return 'sgrule';
    case 'AffinityGroupResponse':
      return param.endsWith('names') ? undefined : 'affinitygroup';
    case 'UserDataResponse':
      return 'userdata';
    case 'InstanceGroupResponse':
      return 'instancegroup';
    case 'SnapshotPolicyResponse':
      return 'snapshotpolicy';
    case 'LBStickinessResponse':
      return 'stickiness';
    case 'NicResponse':
      return 'nic';
    case 'AsyncJobResponse':
      return 'job';
    case 'AccountResponse':
      return 'account';
    case 'UserResponse':
      return 'user';
    case 'ProjectResponse':
      return 'project';
    default:
      return undefined;
  }
}

/** How root reads a resource back to see it did not change. */
const READERS: Record<string, [string, Record<string, unknown>]> = {
  vm: ['listVirtualMachines', {}],
  volume: ['listVolumes', {}],
  rootvolume: ['listVolumes', {}],
  snapshot: ['listSnapshots', {}],
  vmsnapshot: ['listVMSnapshot', {}],
  template: ['listTemplates', { templatefilter: 'all' }],
  iso: ['listIsos', { isofilter: 'all' }],
  network: ['listNetworks', {}],
  ip: ['listPublicIpAddresses', {}],
  ip2: ['listPublicIpAddresses', {}],
  firewall: ['listFirewallRules', {}],
  egress: ['listEgressFirewallRules', {}],
  portforward: ['listPortForwardingRules', {}],
  ipforward: ['listIpForwardingRules', {}],
  lb: ['listLoadBalancerRules', {}],
  securitygroup: ['listSecurityGroups', {}],
  sgrule: ['listSecurityGroups', {}],
  affinitygroup: ['listAffinityGroups', {}],
  instancegroup: ['listInstanceGroups', {}],
  userdata: ['listUserData', {}],
  sshkeypair: ['listSSHKeyPairs', {}],
  snapshotpolicy: ['listSnapshotPolicies', {}],
  account: ['listAccounts', {}],
  user: ['listUsers', {}],
  project: ['listProjects', {}],
};

/** Root's view of a victim: the kind's list filtered to it (the owner's whole list for rules and nics). */
async function readBack(kind: string, uuid: string, owner: Principal): Promise<string> {
  const reader = READERS[kind];
  if (!reader) return '';
  const a = accounts.get(owner) as { name: string; domainid: string };
  const byId = !['sgrule'].includes(kind);
  const r = await attempt(z.admin, reader[0], {
    ...reader[1],
    listall: true,
    ...(byId ? { id: uuid } : { account: a.name, domainid: a.domainid }),
  });
  // A victim that vanished reads as the error, so the comparison reports it.
  return r.ok ? JSON.stringify(r.answer) : `${r.code} ${r.text}`;
}

/** Plausible values for the parameters a command needs besides the one under test. */
function filler(caller: Principal, cmd: Command, skip: string): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  const values: Record<string, unknown> = {
    name: 'iso-probe',
    displaytext: 'iso-probe',
    displayname: 'iso-probe',
    protocol: 'tcp',
    startport: 4444,
    endport: 4444,
    privateport: 4444,
    publicport: 4444,
    algorithm: 'roundrobin',
    methodname: 'LbCookie',
    cidrlist: '0.0.0.0/0',
    intervaltype: 'daily',
    schedule: '02:02',
    maxsnaps: 1,
    timezone: 'UTC',
    size: 1,
    url: `${filesUrl}/tiny.iso`,
    zoneid: z.zoneid,
    serviceofferingid: z.offering,
    diskofferingid: customDisk,
    networkofferingid: z.isolatedOffering,
    ostypeid: osTypeId,
    type: 'host anti-affinity',
    resourcetype: 'UserVm',
    'tags[0].key': 'probe',
    mode: 'HTTP_DOWNLOAD',
    userdata: Buffer.from('x').toString('base64'),
    keypair: `iso-key-${caller}`,
    publickey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl probe',
  };
  for (const p of cmd.catalog.params) {
    if (p.name === skip || !(p.name in cmd.params)) continue;
    const kind = kindOf(cmd, p.name);
    if (kind && p.required) {
      const mine = own(kind, caller);
      if (!mine) return undefined;
      out[p.name] = mine;
    } else if (p.required && p.name === 'tags') out['tags[0].key'] = 'probe';
    else if (p.required && p.name in values) out[p.name] = values[p.name];
  }
  return out;
}

before(async () => {
  z = await startAdvancedZone({ publicIps: 24, vniRange: '7100-7129' });
  files = createServer((req, res) => {
    const b = Buffer.alloc(96 * 1024);
    if (req.url === '/tiny.iso') b.write('\x01CD001', 0x8000, 'latin1');
    else if (req.url === '/tiny.qcow2') {
      // A QCOW2 header (magic, version 3, 16-byte cluster bits field, 1 GiB virtual size).
      b.writeUInt32BE(0x514649fb, 0);
      b.writeUInt32BE(3, 4);
      b.writeUInt32BE(16, 20);
      b.writeBigUInt64BE(BigInt(1024 ** 3), 24);
    } else return void res.writeHead(404).end();
    res.writeHead(200, { 'content-length': b.length }).end(b);
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  filesUrl = `http://127.0.0.1:${(files.address() as { port: number }).port}`;
  const admin = z.admin;
  rootDomain = (await admin.request<any>('listDomains', { name: 'ROOT' })).domain[0].id;
  domains.D = (await admin.request<any>('createDomain', { name: 'isoD' })).domain.id;
  domains.S = (await admin.request<any>('createDomain', { name: 'isoS' })).domain.id;
  domains.sub = (
    await admin.request<any>('createDomain', { name: 'sub', parentdomainid: domains.D })
  ).domain.id;
  osTypeId = (await admin.request<any>('listOsTypes', {})).ostype[0].id;
  customDisk = (await admin.request<any>('listDiskOfferings', {})).diskoffering.find(
    (d: any) => d.iscustomized,
  ).id;
  const self = (await admin.request<any>('listAccounts', { name: 'admin' })).account[0];
  accounts.set('root', { id: self.id, name: 'admin', domainid: rootDomain, userid: self.user[0].id });
  clients.set('root', admin);
  const people: [Principal, string, number, string, string][] = [
    ['dadmin', 'iso-dadmin', 2, domains.D, '/isoD'],
    ['userD', 'iso-userd', 0, domains.D, '/isoD'],
    ['userS', 'iso-users', 0, domains.S, '/isoS'],
    ['userSub', 'iso-usersub', 0, domains.sub, '/isoD/sub'],
  ];
  for (const [p, name, accounttype, domainid, path] of people) {
    const a = (
      await admin.request<any>('createAccount', {
        username: name,
        password: 'secret-pass',
        email: `${name}@example.com`,
        firstname: name,
        lastname: 'I',
        accounttype,
        domainid,
      })
    ).account;
    accounts.set(p, { id: a.id, name, domainid, userid: a.user[0].id });
    clients.set(
      p,
      await CloudStackClient.login(`${z.server.url}/client/api`, name, 'secret-pass', path, {
        pollInterval: 0.05,
      }),
    );
  }
  for (const [p, a] of accounts) {
    track(p, 'account', a.id);
    track(p, 'user', a.userid);
  }
  const project = (
    await (clients.get('userD') as CloudStackClient).call<any>('createProject', { name: 'isoproj' })
  ).project;
  projectD = project.id;
  track('projD', 'project', project.id);
  // Its account's name (the resources show the project instead); it has no uuid the API shows.
  accounts.set('projD', { id: '', name: project.projectaccountname, domainid: domains.D, userid: '' });
  await Promise.all([...PRINCIPALS, 'projD' as const].map((p) => makeResources(p)));
});

after(async () => {
  await z?.stop();
  files?.close();
});

describe('tenant isolation matrix', () => {
  test('every list command shows each principal only what it may see', async () => {
    const lists = allCommands.filter((c) => c.name.startsWith('list'));
    const cases: { cmd: Command; who: Principal; params: Record<string, unknown> }[] = [];
    for (const cmd of lists) {
      const has = (p: string) => p in cmd.params;
      const variants: Record<string, unknown>[] = [{}];
      if (has('listall')) variants.push({ listall: true });
      if (has('keyword'))
        variants.push({ keyword: 'iso' }, ...(has('listall') ? [{ keyword: 'iso', listall: true }] : []));
      if (has('projectid'))
        variants.push(
          { projectid: projectD },
          { projectid: '-1' },
          ...(has('listall') ? [{ projectid: '-1', listall: true }] : []),
        );
      if (has('account') && has('domainid'))
        for (const a of accounts.values()) variants.push({ account: a.name, domainid: a.domainid });
      if (has('domainid'))
        for (const d of [rootDomain, domains.D, domains.S, domains.sub]) {
          variants.push({ domainid: d });
          if (has('isrecursive')) variants.push({ domainid: d, isrecursive: true });
        }
      // Required uuids (listNics virtualmachineid, listTemplatePermissions id...) and ids: every owner's.
      const uuidParams = cmd.catalog.params.filter((p) => p.name in cmd.params && kindOf(cmd, p.name));
      const required = cmd.catalog.params.filter((p) => p.required && p.name in cmd.params);
      const withIds: Record<string, unknown>[] = [];
      for (const p of uuidParams)
        if (p.required || p.name === 'id' || p.name.endsWith('id'))
          for (const uuid of byKind.get(kindOf(cmd, p.name) as string)?.values() ?? [])
            withIds.push(
              { [p.name]: uuid },
              ...(has('listall') && p.name === 'id' ? [{ [p.name]: uuid, listall: true }] : []),
            );
      const all = required.some((p) => kindOf(cmd, p.name)) ? withIds : [...variants, ...withIds];
      const filters = ['self', 'selfexecutable', 'all', 'community'];
      for (const who of PRINCIPALS) {
        if (!cmd.allowedRoles.includes(who === 'root' ? 'admin' : who === 'dadmin' ? 'domainadmin' : 'user'))
          continue;
        for (const v of all) {
          if (cmd.name === 'listTemplates')
            for (const f of filters) cases.push({ cmd, who, params: { ...v, templatefilter: f } });
          else if (cmd.name === 'listIsos')
            for (const f of filters) cases.push({ cmd, who, params: { ...v, isofilter: f } });
          else cases.push({ cmd, who, params: v });
        }
      }
    }
    const leaks: string[] = [];
    await pool(cases, 8, async ({ cmd, who, params }) => {
      const r = await attempt(clients.get(who) as CloudStackClient, cmd.name, params);
      if (!r.ok) {
        if (r.code === 530) leaks.push(`${cmd.name} by ${who} ${JSON.stringify(params)}: 530 ${r.text}`);
        return;
      }
      for (const leak of leaksIn(who, r.answer))
        leaks.push(`${cmd.name} by ${who} ${JSON.stringify(params)}: ${leak}`);
    });
    console.log(
      `isolation: ${lists.length} list commands, ${PRINCIPALS.length} principals, ${cases.length} calls; ${leaks.length} leaks`,
    );
    for (const l of leaks) console.log(`isolation: leak: ${l}`);
    assert.deepEqual(leaks, []);
  });

  test("a project's resources: listed to its member and its domain's admin with projectid (and -1), not without it; refused to others", async () => {
    const lists: [string, string, Record<string, unknown>][] = [
      ['listVirtualMachines', 'vm', {}],
      ['listVolumes', 'volume', {}],
      ['listSnapshots', 'snapshot', {}],
      ['listVMSnapshot', 'vmsnapshot', {}],
      ['listNetworks', 'network', {}],
      ['listPublicIpAddresses', 'ip', {}],
      ['listFirewallRules', 'firewall', {}],
      ['listPortForwardingRules', 'portforward', {}],
      ['listLoadBalancerRules', 'lb', {}],
      ['listSecurityGroups', 'securitygroup', {}],
      ['listAffinityGroups', 'affinitygroup', {}],
      ['listInstanceGroups', 'instancegroup', {}],
      ['listUserData', 'userdata', {}],
      ['listSSHKeyPairs', 'sshkeypair', {}],
      ['listTemplates', 'template', { templatefilter: 'self' }],
      ['listIsos', 'iso', { isofilter: 'self' }],
    ];
    const problems: string[] = [];
    const ids = (answer: unknown) => JSON.stringify(answer);
    for (const [command, kind, extra] of lists) {
      const uuid = own(kind, 'projD') as string;
      for (const who of ['userD', 'dadmin', 'root'] as Principal[]) {
        const c = clients.get(who) as CloudStackClient;
        for (const projectid of [projectD, '-1']) {
          const r = await attempt(c, command, { ...extra, projectid });
          if (!r.ok || !ids(r.answer).includes(uuid))
            problems.push(`${command} by ${who} projectid=${projectid}: missing`);
        }
        const plain = await attempt(c, command, { ...extra, listall: true });
        if (plain.ok && ids(plain.answer).includes(uuid))
          problems.push(`${command} by ${who} without projectid: listed`);
      }
      for (const who of ['userS', 'userSub'] as Principal[]) {
        const r = await attempt(clients.get(who) as CloudStackClient, command, {
          ...extra,
          projectid: projectD,
        });
        if (r.ok || r.code !== 531) problems.push(`${command} by ${who}: ${r.ok ? 'answered' : r.code}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test('a command naming another tenant’s resource is refused and changes nothing', async () => {
    const cases: {
      cmd: Command;
      who: Principal;
      victim: Principal;
      param: string;
      kind: string;
      uuid: string;
    }[] = [];
    for (const cmd of allCommands) {
      if (cmd.name.startsWith('list')) continue;
      for (const p of cmd.catalog.params) {
        if (!(p.name in cmd.params)) continue;
        const kind = kindOf(cmd, p.name);
        // accountid on rule and address commands is a hint the owner of the named row overrides;
        // setting it alone would act on the caller's own row (filled in below).
        if (!kind || (kind === 'account' && p.name !== 'id')) continue;
        for (const [who, victim] of ATTACKS) {
          const uuid = own(kind, victim);
          if (uuid) cases.push({ cmd, who, victim, param: p.name, kind, uuid });
        }
      }
    }
    const failures: string[] = [];
    /** Refused for a missing parameter the filler could not supply: the access check was not reached. */
    const inconclusive: string[] = [];
    const codes = new Map<number, number>();
    await pool(cases, 6, async ({ cmd, who, victim, param, kind, uuid }) => {
      const fill = filler(who, cmd, param);
      if (!fill) return;
      const params = { ...fill, [param]: uuid };
      const before = await readBack(kind, uuid, victim);
      const r = await attempt(clients.get(who) as CloudStackClient, cmd.name, params);
      const after = await readBack(kind, uuid, victim);
      const label = `${cmd.name} by ${who} on ${victim}'s ${kind} ${JSON.stringify(params)}`;
      if (r.ok) failures.push(`${label}: succeeded`);
      else {
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
        if (![531, 431, 432].includes(r.code)) failures.push(`${label}: ${r.code} ${r.text}`);
        if (/missing parameter/.test(r.text)) inconclusive.push(label);
      }
      if (before !== after) failures.push(`${label}: the ${kind} changed`);
    });
    console.log(
      `isolation: ${cases.length} refused-command cases (${[...codes].map(([c, n]) => `${c}×${n}`).join(', ')}; ${inconclusive.length} for a missing parameter); ${failures.length} failures`,
    );
    for (const f of failures) console.log(`isolation: ${f}`);
    assert.deepEqual(failures, []);
  });
});
