/**
 * Load balancing rules of isolated networks through the API, observed on a simulator host running
 * in this process (the shared Advanced test zone, public-ip-zone.ts): what the network's router was told (its load balancers with their members,
 * stickiness and health checks, and the firewall rule openfirewall makes), every refusal with its
 * code and nothing changed, a router that refuses (configureSimulator) undoing the change, and two
 * accounts that cannot see or touch each other's rules.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { CloudStackClient } from '@nimbostack/client';
import type { Server } from '../src/app.ts';
import { removeVmFromLoadBalancers } from '../src/network/lb-common.ts';
import { reapplyNetworkRules } from '../src/network/routers.ts';
import { type AdvancedZone, is, startAdvancedZone } from './public-ip-zone.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
/** Responses seen by the tests, checked against upstream's catalog at the end. */
const seen: [string, any][] = [];
const CATALOG = join(import.meta.dirname, '../../../../shared/cloudstack-api/apis.json');
const PLAYBOOK = join(import.meta.dirname, 'clients', 'ansible_load_balancers.yml');

let zone: AdvancedZone;
let server: Server;
let admin: CloudStackClient;
let alice: CloudStackClient;
let bob: CloudStackClient;
let zoneid: string;
let zoneName: string;
let templateid: string;
let offering: string;
let isolatedOffering: string;

/** What the network's router was last told (its rules as the simulator host holds them). */
async function routerRules(networkid: string): Promise<any> {
  const r = (await admin.request<any>('listRouters', { networkid, listall: true })).router[0];
  const on = zone.routerOn(r.name);
  if (!on) throw new Error(`router ${r.name} runs nowhere`);
  return on.spec.rules ?? { loadBalancers: [], firewall: [] };
}

before(async () => {
  // One host: the failures injected with configureSimulator all hit the routers' host.
  zone = await startAdvancedZone({ publicIps: 21, hosts: 1 });
  ({ server, admin, zoneid, templateid, offering, isolatedOffering } = zone);
  zoneName = (await admin.request<any>('listZones', { id: zoneid })).zone[0].name;
  alice = await zone.createUser('lbalice');
  bob = await zone.createUser('lbbob');
});

after(() => zone?.stop());

describe('load balancing rules', () => {
  let net: any;
  let bobNet: any;
  let web1: any;
  let web2: any;
  let bobVm: any;
  let ip: any;
  let sourceNat: any;
  let bobIp: any;
  let rule: any;

  const deploy = (client: CloudStackClient, networkid: string, name: string) =>
    client
      .call<any>('deployVirtualMachine', {
        zoneid,
        templateid,
        serviceofferingid: offering,
        networkids: networkid,
        name,
      })
      .then((r) => r.virtualmachine);
  const rules = async (client = alice) =>
    (await client.request<any>('listLoadBalancerRules', {})).loadbalancerrule ?? [];
  const members = async (id = rule.id) =>
    (await alice.request<any>('listLoadBalancerRuleInstances', { id })).loadbalancerruleinstance ?? [];
  const lbOnRouter = async (id = rule.id) =>
    (await routerRules(net.id)).loadBalancers.find((l: any) => l.id === id);

  test('setup: two accounts, each with an isolated network, VMs and a public address', async () => {
    net = (
      await alice.request<any>('createNetwork', {
        name: 'lbnet',
        zoneid,
        networkofferingid: isolatedOffering,
      })
    ).network;
    bobNet = (
      await bob.request<any>('createNetwork', { name: 'bobnet', zoneid, networkofferingid: isolatedOffering })
    ).network;
    web1 = await deploy(alice, net.id, 'web-1');
    web2 = await deploy(alice, net.id, 'web-2');
    bobVm = await deploy(bob, bobNet.id, 'bob-1');
    ip = (await alice.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
    bobIp = (await bob.call<any>('associateIpAddress', { networkid: bobNet.id })).ipaddress;
    sourceNat = (await alice.request<any>('listPublicIpAddresses', { issourcenat: true })).publicipaddress[0];
    assert.ok(ip.id && bobIp.id && sourceNat.id);
  });

  test('createLoadBalancerRule: the rule, its opened firewall port, and the router knows both', async () => {
    const created = await alice.call<any>('createLoadBalancerRule', {
      name: 'web',
      publicipid: ip.id,
      publicport: 80,
      privateport: 8080,
      algorithm: 'roundrobin',
      description: 'the web tier',
    });
    rule = created.loadbalancer;
    assert.equal(rule.name, 'web');
    assert.equal(rule.publicip, ip.ipaddress);
    assert.equal(rule.publicipid, ip.id);
    assert.equal(rule.publicport, '80');
    assert.equal(rule.privateport, '8080');
    assert.equal(rule.algorithm, 'roundrobin');
    assert.equal(rule.networkid, net.id);
    assert.equal(rule.account, 'lbalice');
    assert.equal(rule.zoneid, zoneid);
    assert.equal(rule.zonename, zoneName);
    assert.equal(rule.protocol, 'tcp');
    assert.equal(rule.cidrlist, '');
    assert.equal(rule.fordisplay, true);
    assert.deepEqual(rule.tags, []);
    // As upstream: a rule that balances to no VM yet stays Add.
    assert.equal(rule.state, 'Add');
    const lb = await lbOnRouter();
    assert.deepEqual(
      { ip: lb.publicIp, pub: lb.publicPort, priv: lb.privatePort, algo: lb.algorithm, members: lb.members },
      { ip: ip.ipaddress, pub: 80, priv: 8080, algo: 'roundrobin', members: [] },
    );
    const fw = (await routerRules(net.id)).firewall.filter((f: any) => f.publicIp === ip.ipaddress);
    assert.deepEqual(
      fw.map((f: any) => [f.protocol, f.startPort, f.endPort, f.sourceCidrs]),
      [['tcp', 80, 80, []]],
      'openfirewall (default true) opened port 80 to everyone',
    );
    const listed = await rules();
    seen.push(['createLoadBalancerRule', rule], ['listLoadBalancerRules', listed[0]]);
    assert.equal(listed.length, 1);
    assert.equal(listed[0].id, rule.id);
    // listPublicIpAddresses forloadbalancing: the addresses that carry load balancer rules.
    const addresses = async (extra: Record<string, boolean>) =>
      ((await alice.request<any>('listPublicIpAddresses', extra)).publicipaddress ?? [])
        .map((a: any) => a.id)
        .sort();
    assert.deepEqual(await addresses({ forloadbalancing: true }), [ip.id]);
    assert.deepEqual(await addresses({ forloadbalancing: false }), [ip.id, sourceNat.id].sort());
    assert.deepEqual(await addresses({ forprovider: true }), [], 'no range is for an external provider');
  });

  test('bad createLoadBalancerRule input is refused and changes nothing', async () => {
    const base = { name: 'x', publicipid: ip.id, publicport: 81, privateport: 81, algorithm: 'roundrobin' };
    const before = JSON.stringify(await routerRules(net.id));
    const cases: [Record<string, unknown>, (e: any) => boolean][] = [
      [{ algorithm: 'random' }, is(431, /Invalid algorithm/)],
      [{ protocol: 'udp' }, is(431, /balances tcp only/)],
      [{ protocol: 'tcp-proxy' }, is(431, /balances tcp only/)],
      [{ protocol: 'sctp' }, is(431, /not in valid protocols/)],
      [{ publicport: 0 }, is(431, /publicPort is an invalid value/)],
      [{ privateport: 70000 }, is(431, /privatePort is an invalid value/)],
      [{ publicport: 80 }, is(537, /conflicts with rule/)],
      [{ cidrlist: '10.0.0.0/8', openfirewall: false }, is(431, /openfirewall/)],
      [{ cidrlist: '10.0.0.0/33' }, is(431, /cidr/i)],
      [{ publicipid: bobIp.id }, is(531)],
      [{ publicipid: zoneid }, is(431, /Invalid parameter publicipid value=.* entity does not exist/)],
      [{ publicipid: undefined }, is(431, /source IP/)],
      [{ networkid: bobNet.id }, is(431, /associated with network/)],
      [{ publicipid: sourceNat.id, publicport: 53 }, is(431, /port 53/)],
    ];
    for (const [change, check] of cases) {
      const params: Record<string, any> = { ...base, ...change };
      for (const k of Object.keys(params)) if (params[k] === undefined) delete params[k];
      await assert.rejects(alice.call('createLoadBalancerRule', params), check, JSON.stringify(change));
    }
    assert.equal((await rules()).length, 1);
    assert.equal(JSON.stringify(await routerRules(net.id)), before, 'the router was told nothing new');
  });

  test('a port forward on the same public port conflicts both ways (537)', async (t) => {
    if (!(await admin.request<any>('listApis', { name: 'createPortForwardingRule' }).catch(() => undefined)))
      return t.skip('createPortForwardingRule is not available');
    await assert.rejects(
      alice.call('createPortForwardingRule', {
        ipaddressid: ip.id,
        protocol: 'tcp',
        publicport: 80,
        privateport: 80,
        virtualmachineid: web1.id,
      }),
      is(537),
    );
    await alice.call('createPortForwardingRule', {
      ipaddressid: ip.id,
      protocol: 'tcp',
      publicport: 2222,
      privateport: 22,
      virtualmachineid: web1.id,
    });
    await assert.rejects(
      alice.call('createLoadBalancerRule', {
        name: 'ssh',
        publicipid: ip.id,
        publicport: 2222,
        privateport: 22,
        algorithm: 'source',
      }),
      is(537, /conflicts with rule/),
    );
    assert.equal((await rules()).length, 1);
  });

  test('assignToLoadBalancerRule: members reach the router and the rule is Active', async () => {
    await alice.call('assignToLoadBalancerRule', { id: rule.id, virtualmachineids: `${web1.id},${web2.id}` });
    const lb = await lbOnRouter();
    assert.deepEqual(
      lb.members.map((m: any) => m.ip).sort(),
      [web1.nic[0].ipaddress, web2.nic[0].ipaddress].sort(),
    );
    assert.equal((await rules())[0].state, 'Active');
    const vms = await members();
    assert.deepEqual(vms.map((v: any) => v.id).sort(), [web1.id, web2.id].sort());
    assert.equal(vms[0].zoneid, zoneid, 'members are full VM responses');
    const withIps = await alice.request<any>('listLoadBalancerRuleInstances', { id: rule.id, lbvmips: true });
    assert.equal(withIps.count, 2);
    seen.push(['listLoadBalancerRuleInstances', withIps.lbrulevmidip[0]]);
    const one = withIps.lbrulevmidip.find((x: any) => x.loadbalancerruleinstance.id === web1.id);
    assert.deepEqual(one.lbvmipaddresses, [web1.nic[0].ipaddress]);
    const byVm = await alice.request<any>('listLoadBalancerRules', { virtualmachineid: web1.id });
    assert.equal(byVm.count, 1);
  });

  test('bad assignments are refused and change nothing', async () => {
    const before = JSON.stringify(await lbOnRouter());
    await assert.rejects(
      alice.call('assignToLoadBalancerRule', { id: rule.id, virtualmachineids: web1.id }),
      is(431, /already mapped to load balancer/),
    );
    await assert.rejects(alice.call('assignToLoadBalancerRule', { id: rule.id }), is(431, /can't be null/));
    await assert.rejects(
      alice.call('assignToLoadBalancerRule', { id: rule.id, virtualmachineids: bobVm.id }),
      is(531),
      "a user cannot assign another account's VM",
    );
    await assert.rejects(
      admin.call('assignToLoadBalancerRule', { id: rule.id, virtualmachineids: bobVm.id }),
      is(431, /belong to different accounts/),
    );
    await assert.rejects(
      alice.call('assignToLoadBalancerRule', {
        id: rule.id,
        'vmidipmap[0].vmid': web1.id,
        // The gateway: never a VM's address (a random address could be web1's own).
        'vmidipmap[0].vmip': '10.1.1.1',
      }),
      is(431, /does not belong to nic/),
    );
    await assert.rejects(
      alice.call('assignToLoadBalancerRule', { id: rule.id, virtualmachineids: zoneid }),
      is(431, /Invalid parameter virtualmachineids value=.* entity does not exist/),
    );
    await assert.rejects(
      bob.call('assignToLoadBalancerRule', { id: rule.id, virtualmachineids: bobVm.id }),
      is(531),
      "bob cannot touch alice's rule",
    );
    assert.equal(JSON.stringify(await lbOnRouter()), before);
    assert.equal((await members()).length, 2);
  });

  test('removeFromLoadBalancerRule takes a VM out; one not assigned is refused', async () => {
    await alice.call('removeFromLoadBalancerRule', { id: rule.id, virtualmachineids: web2.id });
    assert.deepEqual(
      (await lbOnRouter()).members.map((m: any) => m.ip),
      [web1.nic[0].ipaddress],
    );
    assert.deepEqual(
      (await members()).map((v: any) => v.id),
      [web1.id],
    );
    await assert.rejects(
      alice.call('removeFromLoadBalancerRule', { id: rule.id, virtualmachineids: web2.id }),
      is(431, /is not configured for LB rule/),
    );
    const candidates = await alice.request<any>('listLoadBalancerRuleInstances', {
      id: rule.id,
      applied: false,
    });
    assert.deepEqual(
      candidates.loadbalancerruleinstance.map((v: any) => v.id),
      [web2.id],
      'applied=false lists the VMs that could still be assigned',
    );
  });

  test('a router that refuses undoes the change and fails the job with its reason', async () => {
    const fail = () =>
      admin.request('configureSimulator', {
        zoneid,
        name: 'applyRouterRules',
        value: 'result:fail;message:haproxy said no',
        count: 1,
      });
    const before = JSON.stringify(await lbOnRouter());
    await fail();
    await assert.rejects(
      alice.call('assignToLoadBalancerRule', { id: rule.id, virtualmachineids: web2.id }),
      is(530, /haproxy said no/),
    );
    assert.deepEqual(
      (await members()).map((v: any) => v.id),
      [web1.id],
      'web-2 is not recorded as a member',
    );
    assert.equal(JSON.stringify(await lbOnRouter()), before, 'the router has the old set again');
    await fail();
    await assert.rejects(
      alice.call('createLoadBalancerRule', {
        name: 'doomed',
        publicipid: ip.id,
        publicport: 8443,
        privateport: 443,
        algorithm: 'roundrobin',
      }),
      is(530, /haproxy said no/),
    );
    assert.deepEqual(
      (await rules()).map((r: any) => r.name),
      ['web'],
      'the refused rule was deleted',
    );
    const fw = await alice.request<any>('listFirewallRules', { ipaddressid: ip.id }).catch(() => undefined);
    if (fw)
      assert.ok(!(fw.firewallrule ?? []).some((f: any) => f.startport === 8443 || f.startport === '8443'));
    await fail();
    await assert.rejects(alice.call('deleteLoadBalancerRule', { id: rule.id }), is(530, /haproxy said no/));
    const still = (await rules())[0];
    assert.equal(still.state, 'Active', 'the rule the router still balances is back to Active');
    assert.equal(JSON.stringify(await lbOnRouter()), before);
    await fail();
    await assert.rejects(
      alice.call('updateLoadBalancerRule', { id: rule.id, algorithm: 'leastconn' }),
      is(530, /haproxy said no/),
    );
    assert.equal((await rules())[0].algorithm, 'roundrobin');
  });

  test('updateLoadBalancerRule: the algorithm reaches the router, names are records', async () => {
    const updated = (
      await alice.call<any>('updateLoadBalancerRule', { id: rule.id, algorithm: 'leastconn', name: 'web2' })
    ).loadbalancer;
    assert.equal(updated.algorithm, 'leastconn');
    assert.equal(updated.name, 'web2');
    assert.equal((await lbOnRouter()).algorithm, 'leastconn');
    await assert.rejects(alice.call('updateLoadBalancerRule', { id: rule.id, algorithm: 'x' }), is(431));
    await assert.rejects(alice.call('updateLoadBalancerRule', { id: rule.id, protocol: 'udp' }), is(431));
    await assert.rejects(bob.call('updateLoadBalancerRule', { id: rule.id, name: 'mine' }), is(531));
    assert.equal((await rules())[0].name, 'web2');
    for (const bad of ['web-frontend', ' '])
      await assert.rejects(
        admin.call('updateLoadBalancerRule', { id: rule.id, customid: bad }),
        is(431, /must be a UUID/),
      );
    assert.equal((await rules())[0].id, rule.id);
    const customid = '11111111-2222-3333-4444-555555555555';
    const renamed = (await admin.call<any>('updateLoadBalancerRule', { id: rule.id, customid })).loadbalancer;
    assert.equal(renamed.id, customid);
    assert.ok(await lbOnRouter(customid), 'the router knows it by its new id');
    assert.equal(await lbOnRouter(rule.id), undefined);
    rule = (await admin.call<any>('updateLoadBalancerRule', { id: customid, customid: rule.id }))
      .loadbalancer;
    assert.equal((await rules())[0].id, rule.id);
  });

  test('stickiness: validated as upstream, one per rule, on the router', async () => {
    const create = (methodname: string, params: Record<string, string>) => {
      const extra: Record<string, string> = {};
      Object.entries(params).forEach(([name, value], i) => {
        extra[`param[${i}].name`] = name;
        extra[`param[${i}].value`] = value;
      });
      return alice.call<any>('createLBStickinessPolicy', {
        lbruleid: rule.id,
        name: 'sticky',
        methodname,
        ...extra,
      });
    };
    await assert.rejects(create('Magic', {}), is(431, /Stickiness method/));
    await assert.rejects(create('SourceBased', { colour: 'red' }), is(431, /does not support param/));
    await assert.rejects(create('SourceBased', { expire: '30' }), is(431, /expire is not in timeformat/));
    await assert.rejects(
      create('SourceBased', { tablesize: 'big' }),
      is(431, /tablesize is not in size format/),
    );
    await assert.rejects(create('AppCookie', { length: 'long' }), is(431, /length is not a number/));
    await assert.rejects(create('LbCookie', { 'cookie-name': 'a b' }), is(431, /cookie-name/));
    await assert.rejects(create('LbCookie', { 'cookie-name': '' }), is(431, /Value expected/));
    await assert.rejects(
      create('LbCookie', { mode: 'rewrite' }),
      is(431, /not supported by the virtual router/),
    );
    await assert.rejects(
      create('AppCookie', { holdtime: '3h' }),
      is(431, /not supported by the virtual router/),
    );
    assert.equal((await lbOnRouter()).stickiness, undefined);
    const sb = (await create('SourceBased', { tablesize: '100k', expire: '10m' })).stickinesspolicies;
    seen.push(['createLBStickinessPolicy', sb]);
    assert.equal(sb.lbruleid, rule.id);
    assert.equal(sb.stickinesspolicy[0].methodname, 'SourceBased');
    assert.deepEqual(sb.stickinesspolicy[0].params, { tablesize: '100k', expire: '10m' });
    assert.deepEqual((await lbOnRouter()).stickiness, {
      method: 'SourceBased',
      params: { tablesize: '100k', expire: '10m' },
    });
    const cookie = (await create('LbCookie', { 'cookie-name': 'SRV', nocache: '' })).stickinesspolicies;
    const listed = (await alice.request<any>('listLBStickinessPolicies', { lbruleid: rule.id }))
      .stickinesspolicies;
    seen.push(['listLBStickinessPolicies', listed[0]]);
    assert.equal(listed.length, 1);
    assert.deepEqual(
      listed[0].stickinesspolicy.map((x: any) => x.id),
      [cookie.stickinesspolicy[0].id],
      'the new policy replaced the old one',
    );
    assert.equal((await lbOnRouter()).stickiness.method, 'LbCookie');
    const byId = await alice.request<any>('listLBStickinessPolicies', { id: cookie.stickinesspolicy[0].id });
    assert.equal(byId.stickinesspolicies[0].lbruleid, rule.id);
    await assert.rejects(
      bob.request('listLBStickinessPolicies', { lbruleid: rule.id }),
      is(531),
      "bob cannot read alice's policies",
    );
    const ignored = await alice.call<any>('updateLBStickinessPolicy', {
      id: cookie.stickinesspolicy[0].id,
      fordisplay: false,
    });
    assert.equal(
      ignored.stickinesspolicies.stickinesspolicy[0].fordisplay,
      true,
      'fordisplay is for root admins',
    );
    const hidden = await admin.call<any>('updateLBStickinessPolicy', {
      id: cookie.stickinesspolicy[0].id,
      fordisplay: false,
    });
    assert.equal(hidden.stickinesspolicies.stickinesspolicy[0].fordisplay, false);
    const shown = await alice.request<any>('listLBStickinessPolicies', { lbruleid: rule.id });
    assert.deepEqual(
      shown.stickinesspolicies[0].stickinesspolicy,
      [],
      'hidden policies are not listed by default',
    );
    await alice.call('deleteLBStickinessPolicy', { id: cookie.stickinesspolicy[0].id });
    assert.equal((await lbOnRouter()).stickiness, undefined);
  });

  test('health checks: validated, one per rule, on the router', async () => {
    await assert.rejects(
      alice.call('createLBHealthCheckPolicy', { lbruleid: rule.id, intervaltime: 2, responsetimeout: 5 }),
      is(431, /Monitor interval must be greater than response timeout/),
    );
    await assert.rejects(
      alice.call('createLBHealthCheckPolicy', { lbruleid: rule.id, pingpath: 'no slash' }),
      is(431, /pingpath/),
    );
    await assert.rejects(
      alice.call('createLBHealthCheckPolicy', { lbruleid: rule.id, responsetimeout: 61 }),
      is(431, /responsetimeout/),
    );
    // Defaults count: a timeout above the default interval (5 s), or an interval below the default timeout (2 s).
    for (const only of [{ responsetimeout: 10 }, { intervaltime: 1 }])
      await assert.rejects(
        alice.call('createLBHealthCheckPolicy', { lbruleid: rule.id, ...only }),
        is(431, /Monitor interval must be greater than response timeout/),
      );
    assert.equal((await lbOnRouter()).healthCheck, undefined);
    const hc = (
      await alice.call<any>('createLBHealthCheckPolicy', {
        lbruleid: rule.id,
        pingpath: '/health',
        intervaltime: 10,
        responsetimeout: 3,
        healthythreshold: 4,
      })
    ).healthcheckpolicy;
    seen.push(['createLBHealthCheckPolicy', hc]);
    assert.equal(hc.lbruleid, rule.id);
    const policy = hc.healthcheckpolicy[0];
    assert.deepEqual(
      [
        policy.pingpath,
        policy.healthcheckinterval,
        policy.responsetime,
        policy.healthcheckthresshold,
        policy.unhealthcheckthresshold,
      ],
      ['/health', 10, 3, 4, 1],
    );
    assert.deepEqual((await lbOnRouter()).healthCheck, {
      pingPath: '/health',
      intervalSec: 10,
      timeoutSec: 3,
      healthyThreshold: 4,
      unhealthyThreshold: 1,
    });
    await assert.rejects(
      alice.call('createLBHealthCheckPolicy', { lbruleid: rule.id }),
      is(431, /Already policy attached/),
    );
    // customid: a UUID that no other policy has.
    const sticky = (
      await alice.call<any>('createLBStickinessPolicy', {
        lbruleid: rule.id,
        name: 's',
        methodname: 'SourceBased',
      })
    ).stickinesspolicies.stickinesspolicy[0];
    for (const customid of ['not-a-uuid', '', sticky.id])
      await assert.rejects(
        admin.call('updateLBHealthCheckPolicy', { id: policy.id, customid }),
        is(431, /UUID/),
        `customid ${customid}`,
      );
    const custom = '22222222-3333-4444-5555-666666666666';
    const renamed = await admin.call<any>('updateLBHealthCheckPolicy', {
      id: policy.id,
      customid: custom.toUpperCase(),
    });
    assert.equal(renamed.healthcheckpolicy.healthcheckpolicy[0].id, custom);
    await admin.call('updateLBHealthCheckPolicy', { id: custom, customid: policy.id });
    await alice.call('deleteLBStickinessPolicy', { id: sticky.id });
    const listed = await alice.request<any>('listLBHealthCheckPolicies', { lbruleid: rule.id });
    seen.push(['listLBHealthCheckPolicies', listed.healthcheckpolicies[0]]);
    assert.equal(listed.healthcheckpolicies[0].healthcheckpolicy[0].id, policy.id);
    await alice.call('deleteLBHealthCheckPolicy', { id: policy.id });
    assert.equal((await lbOnRouter()).healthCheck, undefined);
    assert.deepEqual(
      (await alice.request<any>('listLBHealthCheckPolicies', { lbruleid: rule.id })).healthcheckpolicies[0]
        .healthcheckpolicy,
      [],
    );
  });

  test('a refused router leaves policies and members as they were', async () => {
    const fail = () =>
      admin.request('configureSimulator', {
        zoneid,
        name: 'applyRouterRules',
        value: 'result:fail;message:router down',
        count: 1,
      });
    const before = JSON.stringify(await lbOnRouter());
    await fail();
    await assert.rejects(
      alice.call('createLBStickinessPolicy', { lbruleid: rule.id, name: 's', methodname: 'SourceBased' }),
      is(530, /router down/),
    );
    assert.deepEqual(
      (await alice.request<any>('listLBStickinessPolicies', { lbruleid: rule.id })).stickinesspolicies[0]
        .stickinesspolicy,
      [],
    );
    await fail();
    await assert.rejects(
      alice.call('createLBHealthCheckPolicy', { lbruleid: rule.id, pingpath: '/up' }),
      is(530, /router down/),
    );
    assert.deepEqual(
      (await alice.request<any>('listLBHealthCheckPolicies', { lbruleid: rule.id })).healthcheckpolicies[0]
        .healthcheckpolicy,
      [],
    );
    await fail();
    await assert.rejects(
      alice.call('removeFromLoadBalancerRule', { id: rule.id, virtualmachineids: web1.id }),
      is(530, /router down/),
    );
    assert.deepEqual(
      (await members()).map((v: any) => v.id),
      [web1.id],
    );
    assert.equal(JSON.stringify(await lbOnRouter()), before);
  });

  test("two accounts: neither sees nor changes the other one's rules", async () => {
    const bobRule = (
      await bob.call<any>('createLoadBalancerRule', {
        name: 'bobweb',
        publicipid: bobIp.id,
        publicport: 80,
        privateport: 80,
        algorithm: 'source',
      })
    ).loadbalancer;
    assert.deepEqual(
      (await rules(bob)).map((r: any) => r.id),
      [bobRule.id],
    );
    assert.deepEqual(
      (await rules(alice)).map((r: any) => r.id),
      [rule.id],
    );
    assert.deepEqual(await bob.request('listLoadBalancerRules', { id: rule.id }), {});
    await assert.rejects(bob.call('deleteLoadBalancerRule', { id: rule.id }), is(531));
    await assert.rejects(bob.request('listLoadBalancerRuleInstances', { id: rule.id }), is(531));
    const all = await admin.request<any>('listLoadBalancerRules', { listall: true });
    assert.ok([rule.id, bobRule.id].every((id) => all.loadbalancerrule.some((r: any) => r.id === id)));
    assert.equal(
      (await admin.request<any>('listLoadBalancerRules', { listall: true, networkid: bobNet.id })).count,
      1,
    );
    assert.equal((await admin.request<any>('listLoadBalancerRules', { listall: true, zoneid })).count, 2);
    assert.equal(
      (await admin.request<any>('listLoadBalancerRules', { listall: true, keyword: 'tier' })).count,
      1,
    );
    await bob.call('deleteLoadBalancerRule', { id: bobRule.id });
    assert.deepEqual(await bob.request('listLoadBalancerRules', {}), {});
  });

  test('tags filter the list', async () => {
    await alice.call('createTags', {
      resourcetype: 'LoadBalancer',
      resourceids: rule.id,
      'tags[0].key': 'tier',
      'tags[0].value': 'front',
    });
    const tagged = await alice.request<any>('listLoadBalancerRules', {
      'tags[0].key': 'tier',
      'tags[0].value': 'front',
    });
    assert.equal(tagged.count, 1);
    assert.deepEqual(
      tagged.loadbalancerrule[0].tags.map((t: any) => [t.key, t.value]),
      [['tier', 'front']],
    );
    assert.deepEqual(
      await alice.request('listLoadBalancerRules', { 'tags[0].key': 'tier', 'tags[0].value': 'back' }),
      {},
    );
  });

  test('responses carry only the fields of the upstream catalog, nested ones too', {
    skip: !existsSync(CATALOG),
  }, () => {
    const catalog = new Map<string, any>(
      JSON.parse(readFileSync(CATALOG, 'utf8')).map((c: any) => [c.name, c]),
    );
    const check = (where: string, object: any, fields: any[]) => {
      const allowed = new Map(fields.map((f: any) => [f.name, f]));
      for (const [key, value] of Object.entries(object)) {
        assert.ok(allowed.has(key), `${where}: field ${key} is not in the catalog`);
        const nested = allowed.get(key).response;
        if (nested && Array.isArray(value)) for (const item of value) check(`${where}.${key}`, item, nested);
      }
    };
    assert.equal(seen.length, 7);
    for (const [command, object] of seen) check(command, object, catalog.get(command).response);
  });

  test('deleteLoadBalancerRule: the router lets go of the rule and its firewall port', async () => {
    await alice.call('deleteLoadBalancerRule', { id: rule.id });
    const after = await routerRules(net.id);
    assert.equal(after.loadBalancers.length, 0);
    assert.ok(!after.firewall.some((f: any) => f.publicIp === ip.ipaddress && f.startPort === 80));
    assert.deepEqual(await rules(), []);
    await assert.rejects(alice.call('deleteLoadBalancerRule', { id: rule.id }), is(431));
  });

  test('cidrlist is enforced through the opened firewall rule', async () => {
    const limited = (
      await alice.call<any>('createLoadBalancerRule', {
        name: 'intranet',
        publicipid: ip.id,
        publicport: 8080,
        privateport: 8080,
        algorithm: 'roundrobin',
        cidrlist: '192.0.2.0/24,203.0.113.0/24',
      })
    ).loadbalancer;
    assert.equal(limited.cidrlist, '192.0.2.0/24,203.0.113.0/24');
    const fw = (await routerRules(net.id)).firewall.find(
      (f: any) => f.publicIp === ip.ipaddress && f.startPort === 8080,
    );
    assert.deepEqual(fw.sourceCidrs, ['192.0.2.0/24', '203.0.113.0/24']);
    await alice.call('updateLoadBalancerRule', { id: limited.id, cidrlist: '192.0.2.0/24' });
    const fw2 = (await routerRules(net.id)).firewall.find(
      (f: any) => f.publicIp === ip.ipaddress && f.startPort === 8080,
    );
    assert.deepEqual(fw2.sourceCidrs, ['192.0.2.0/24']);
    await alice.call('deleteLoadBalancerRule', { id: limited.id });
  });
  test('an address with static NAT takes no load balancer (537)', async () => {
    const natIp = (await alice.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
    await alice.request('enableStaticNat', { ipaddressid: natIp.id, virtualmachineid: web2.id });
    await assert.rejects(
      alice.call('createLoadBalancerRule', {
        name: 'nat',
        publicipid: natIp.id,
        publicport: 80,
        privateport: 80,
        algorithm: 'roundrobin',
      }),
      is(537, /Can't do load balance on ip address/),
    );
    assert.deepEqual(await alice.request('listLoadBalancerRules', { publicipid: natIp.id }), {});
    await alice.call('disableStaticNat', { ipaddressid: natIp.id });
    await alice.call('disassociateIpAddress', { id: natIp.id });
  });

  test('expunging a member takes it off the router', async () => {
    const lb = (
      await alice.call<any>('createLoadBalancerRule', {
        name: 'app',
        publicipid: ip.id,
        publicport: 9090,
        privateport: 9090,
        algorithm: 'roundrobin',
      })
    ).loadbalancer;
    await alice.call('assignToLoadBalancerRule', { id: lb.id, virtualmachineids: `${web1.id},${web2.id}` });
    assert.equal((await lbOnRouter(lb.id)).members.length, 2);
    await admin.call('destroyVirtualMachine', { id: web2.id, expunge: true });
    assert.deepEqual(
      (await lbOnRouter(lb.id)).members.map((m: any) => m.ip),
      [web1.nic[0].ipaddress],
    );
    assert.deepEqual(
      (await members(lb.id)).map((v: any) => v.id),
      [web1.id],
    );
    rule = lb;
  });

  test('removeVmFromLoadBalancers (for a NIC going away) takes the VM out of that network only', async () => {
    const db = server.app.store.db;
    const idOf = async (table: 'vms' | 'networks', uuid: string) =>
      (await db.selectFrom(table).select('id').where('uuid', '=', uuid).executeTakeFirstOrThrow()).id;
    const vmId = await idOf('vms', web1.id);
    const other = await db.transaction().execute((tx) => removeVmFromLoadBalancers(tx, vmId, -1));
    assert.deepEqual(other, []);
    assert.equal((await members(rule.id)).length, 1, 'another network: nothing changed');
    const netId = await idOf('networks', net.id);
    const touched = await db.transaction().execute((tx) => removeVmFromLoadBalancers(tx, vmId, netId));
    assert.deepEqual(touched, [netId]);
    assert.deepEqual(await alice.request('listLoadBalancerRuleInstances', { id: rule.id }), {});
    assert.equal((await rules())[0].state, 'Add', 'a rule without VMs is Add again');
    await reapplyNetworkRules(server.app, touched, 'the test took the VM out');
    assert.deepEqual((await lbOnRouter(rule.id)).members, []);
  });

  test('disassociating the address deletes its load balancers', async () => {
    await alice.call('disassociateIpAddress', { id: ip.id });
    assert.deepEqual(await rules(), []);
    assert.deepEqual((await routerRules(net.id)).loadBalancers, []);
    await assert.rejects(alice.request('listLoadBalancerRuleInstances', { id: rule.id }), is(431));
  });
});

describe('Ansible cs_loadbalancer_rule and cs_loadbalancer_rule_member', {
  skip: !existsSync(PYTHON) || !existsSync('/usr/bin/ansible-playbook'),
}, () => {
  let env: Record<string, string>;
  let ip: any;
  let net: any;

  async function playbook(vars: Record<string, string>) {
    const extra = Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    const { stdout } = await run('/usr/bin/ansible-playbook', ['-i', 'localhost,', ...extra, PLAYBOOK], {
      env: { ...process.env, ...env },
      timeout: 120_000,
    }).catch((e) => {
      throw new Error(`ansible-playbook failed:\n${e.stdout}\n${e.stderr}`);
    });
    const recap = /localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(stdout);
    assert.ok(recap, stdout);
    return { changed: Number(recap[2]), failed: Number(recap[3]), out: stdout };
  }

  before(async () => {
    const user = (await admin.request<any>('listUsers', { username: 'lbalice', listall: true })).user[0];
    const keys = (await admin.request<any>('registerUserKeys', { id: user.id })).userkeys;
    env = {
      CLOUDSTACK_ENDPOINT: `${server.url}/client/api`,
      CLOUDSTACK_KEY: keys.apikey,
      CLOUDSTACK_SECRET: keys.secretkey,
      ANSIBLE_PYTHON_INTERPRETER: PYTHON,
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_LOCALHOST_WARNING: 'false',
      ANSIBLE_INVENTORY_UNPARSED_WARNING: 'false',
    };
    net = (await alice.request<any>('listNetworks', { name: 'lbnet' })).network[0];
    await alice.call('deployVirtualMachine', {
      zoneid,
      templateid,
      serviceofferingid: offering,
      networkids: net.id,
      name: 'web-3',
    });
    ip = (await alice.call<any>('associateIpAddress', { networkid: net.id })).ipaddress;
  });

  test('a playbook makes the rule and its members, a second run changes nothing, absent undoes it', async () => {
    const first = await playbook({ lb_ip: ip.ipaddress });
    assert.equal(first.failed, 0, first.out);
    assert.equal(first.changed, 2, first.out);
    const rule = (await alice.request<any>('listLoadBalancerRules', { publicipid: ip.id }))
      .loadbalancerrule[0];
    assert.equal(rule.name, 'ans-http');
    assert.equal(rule.algorithm, 'leastconn');
    const vms = (await alice.request<any>('listVirtualMachines', {})).virtualmachine;
    const addr = (name: string) => vms.find((v: any) => v.name === name).nic[0].ipaddress;
    const lb = () => routerRules(net.id).then((r) => r.loadBalancers.find((l: any) => l.id === rule.id));
    assert.deepEqual(
      (await lb()).members.map((m: any) => m.ip).sort(),
      [addr('web-1'), addr('web-3')].sort(),
    );
    const again = await playbook({ lb_ip: ip.ipaddress });
    assert.equal(again.failed, 0, again.out);
    assert.equal(again.changed, 0, `a second run changes nothing:\n${again.out}`);
    const algo = await playbook({ lb_ip: ip.ipaddress, lb_algorithm: 'roundrobin' });
    assert.equal(algo.changed, 1, algo.out);
    assert.equal((await lb()).algorithm, 'roundrobin');
    const gone = await playbook({ lb_ip: ip.ipaddress, lb_state: 'absent' });
    assert.equal(gone.failed, 0, gone.out);
    assert.equal(gone.changed, 2, gone.out);
    assert.deepEqual(await alice.request('listLoadBalancerRules', { publicipid: ip.id }), {});
    assert.equal(await lb(), undefined);
  });
});

describe('libcloud CloudStack load-balancer driver', { skip: !existsSync(PYTHON) }, () => {
  test('create_balancer, list, members, detach and destroy_balancer', async () => {
    const user = (await admin.request<any>('listUsers', { username: 'lbalice', listall: true })).user[0];
    const keys = (await admin.request<any>('registerUserKeys', { id: user.id })).userkeys;
    const net = (await alice.request<any>('listNetworks', { name: 'lbnet' })).network[0];
    const vms = (await alice.request<any>('listVirtualMachines', {})).virtualmachine;
    const [a, b] = ['web-1', 'web-3'].map((n) => vms.find((v: any) => v.name === n));
    const { stdout } = await run(
      PYTHON,
      [
        join(import.meta.dirname, 'clients', 'libcloud_lb.py'),
        `${server.url}/client/api`,
        keys.apikey,
        keys.secretkey,
        net.id,
        a.id,
        b.id,
      ],
      { timeout: 120_000 },
    ).catch((e) => {
      throw new Error(`libcloud failed:\n${e.stdout}\n${e.stderr}`);
    });
    const out = JSON.parse(stdout);
    assert.equal(out.created.port, '80');
    assert.equal(out.created.private, '8080');
    assert.ok(out.listed.includes(out.created.id));
    assert.equal(out.got, 'lc-web');
    assert.deepEqual(out.members, [a.id, b.id].sort());
    assert.equal(out.state, 0, 'libcloud reads Active as RUNNING (0)');
    assert.deepEqual(out.after_detach, [a.id]);
    assert.ok(!out.after_destroy.includes(out.created.id));
    const ips = await alice.request<any>('listPublicIpAddresses', { ipaddress: out.created.ip });
    assert.deepEqual(ips, {}, 'destroy_balancer gave the address back');
    assert.equal(
      (await routerRules(net.id)).loadBalancers.find((l: any) => l.id === out.created.id),
      undefined,
    );
  });
});
