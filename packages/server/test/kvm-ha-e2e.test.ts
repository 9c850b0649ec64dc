/**
 * VM HA on real KVM: two KVM agent processes on this machine are two hosts of one cluster sharing
 * one primary-storage directory (their "shared" pool, where each writes its heartbeat). Host 1
 * runs an HA VM and a plain one; its agent and its QEMU processes are killed. The HA VM must be
 * Running on host 2, from the same root disk, within two minutes with the default settings, and
 * the plain VM Stopped. Two guests at most. `npm run test:kvm` after `npm run setup:host`.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CloudStackClient } from '@nimbostack/client';
import { type TestAgent, waitUntil } from './agents.ts';
import { createAccountAndLogin, startServer, type TestServer } from './harness.ts';
import {
  agentStateDir,
  buildAdvancedZone,
  figure,
  Internet,
  killQemus,
  removeRouterLeftovers,
  separateIds,
  startAgents,
  TEMPLATE,
  type ZoneOptions,
} from './kvm-advanced-zone.ts';

const missing = [
  process.getuid?.() !== 0 ? 'root' : '',
  existsSync('/usr/bin/qemu-system-x86_64') ? '' : 'QEMU',
  existsSync('/usr/sbin/nft') ? '' : 'nft',
  existsSync(TEMPLATE) ? '' : TEMPLATE,
].filter(Boolean);
const SKIP =
  process.env.NIMBOSTACK_TEST_KVM !== '1'
    ? 'real-VM suite: run it with npm run test:kvm'
    : missing.length
      ? `needs ${missing.join(', ')}: run npm run setup:host`
      : false;

const tag = String(process.pid % 100000);
const HOSTS = ['ha-kvm-1', 'ha-kvm-2'];
const internet = new Internet(`nhpub${tag}`, `nimbo-hainet-${process.pid}`, `nhi${tag}h`, '203.0.113.1');
let root = '';
let server: TestServer;
let user: CloudStackClient;
const agents: TestAgent[] = [];
const routerNames = new Set<string>();
let zoneid = '';
let templateid = '';
let hostIds: string[] = [];

const zoneOptions = (): ZoneOptions => ({
  prefix: 'ha',
  root,
  hosts: HOSTS,
  publicBridge: internet.bridge,
  gatewayIp: internet.ip,
  publicIps: Array.from({ length: 4 }, (_, i) => `203.0.113.${60 + i}`),
  vniRange: [7150, 7155],
  guestCidr: '10.73.0.0/24',
  podOctet: 73,
});

before(async () => {
  if (SKIP) return;
  root = mkdtempSync(join(tmpdir(), 'nimbo-kvm-ha-'));
  for (const d of ['primary', 'secondary']) mkdirSync(join(root, d));
  internet.start();
  server = await startServer();
  separateIds(server, 1000 + (process.pid % 9000) * 10);
  agents.push(...startAgents(server, zoneOptions()));
  ({ zoneid, hostIds, templateid } = await buildAdvancedZone(server.admin, agents, zoneOptions()));
  ({ client: user } = await createAccountAndLogin(server, { name: 'ha' }));
});

after(async () => {
  if (SKIP) return;
  if (server) {
    const admin = server.admin;
    const list = await admin.request<any>('listVirtualMachines', { listall: true }).catch(() => ({}));
    for (const v of list.virtualmachine ?? [])
      await admin.call('destroyVirtualMachine', { id: v.id, expunge: true }).catch(() => undefined);
    const routers = await admin.request<any>('listRouters', { listall: true }).catch(() => ({}));
    for (const r of routers.router ?? []) routerNames.add(r.name);
    const nets = await admin.request<any>('listNetworks', { listall: true }).catch(() => ({}));
    for (const n of nets.network ?? [])
      await admin.call('deleteNetwork', { id: n.id, forced: true }).catch(() => undefined);
    const hosts = await admin.request<any>('listHosts', {}).catch(() => ({}));
    for (const h of hosts.host ?? [])
      await admin.request('deleteHost', { id: h.id, forced: true }).catch(() => undefined);
  }
  for (const a of agents) await a.kill();
  for (const host of HOSTS) killQemus(join(agentStateDir(zoneOptions(), host), host));
  removeRouterLeftovers(routerNames);
  internet.stop();
  await server?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('VM HA on real KVM hosts', { skip: SKIP }, () => {
  test('killing a KVM host (agent and QEMU): its HA VM runs on the other host from the same disk, its other VM is Stopped', async () => {
    const admin = server.admin;
    const offering = (
      await user.request<any>('listNetworkOfferings', {
        name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      })
    ).networkoffering[0];
    const network = (
      await user.request<any>('createNetwork', {
        name: 'ha-net',
        displaytext: 'ha e2e',
        zoneid,
        networkofferingid: offering.id,
      })
    ).network;
    const haOffering = (
      await admin.request<any>('createServiceOffering', {
        name: 'ha-tiny-ha',
        displaytext: 'ha tiny with HA',
        cpunumber: 1,
        cpuspeed: 500,
        memory: 256,
        offerha: true,
      })
    ).serviceoffering.id;
    const plainOffering = (await admin.request<any>('listServiceOfferings', { name: 'ha-tiny' }))
      .serviceoffering[0].id;
    const deploy = async (name: string, serviceofferingid: string) =>
      (
        await admin.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid,
          networkids: network.id,
          name,
          account: 'ha',
          domainid: (await user.request<any>('listAccounts', {})).account[0].domainid,
          hostid: hostIds[0],
        })
      ).virtualmachine;
    const ha = await deploy('ha-guest', haOffering);
    const plain = await deploy('plain-guest', plainOffering);
    assert.equal(ha.hostid, hostIds[0]);
    assert.equal(ha.haenable, true);
    assert.equal(plain.haenable, false);
    const rootBefore = (
      await admin.request<any>('listVolumes', { virtualmachineid: ha.id, type: 'ROOT', listall: true })
    ).volume[0];
    // Both hosts heart-beat on the shared pool before host 1 dies.
    await waitUntil(
      async () => {
        const dir = join(root, 'primary', '.nimbostack-heartbeat');
        return existsSync(dir) && readdirSync(dir).filter((f) => f.endsWith('.json')).length === 2;
      },
      30_000,
      'both heartbeats on the shared pool',
    );
    // A dead host takes its routers with it: on this shared machine their namespaces go by hand.
    const routers = ((await admin.request<any>('listRouters', { listall: true })).router ?? []).filter(
      (r: any) => r.hostid === hostIds[0],
    );
    const killed = Date.now();
    await agents[0]!.kill('SIGKILL');
    killQemus(join(agentStateDir(zoneOptions(), HOSTS[0]!), HOSTS[0]!));
    removeRouterLeftovers(routers.map((r: any) => r.name));
    const moved = await waitUntil(
      async () => {
        const v = (await admin.request<any>('listVirtualMachines', { id: ha.id, listall: true }))
          .virtualmachine[0];
        return v.state === 'Running' && v.hostid === hostIds[1] ? v : undefined;
      },
      180_000,
      'the HA VM to be Running on host 2',
    ).catch(async (e) => {
      const vm = (await admin.request<any>('listVirtualMachines', { id: ha.id, listall: true }))
        .virtualmachine[0];
      const hostha = await admin.request<any>('listHostHAResources', {});
      const said = server.logs.filter((l) => /HA|heartbeat|fenc|start failed/i.test(l)).slice(-30);
      throw new Error(
        `${(e as Error).message}: VM ${vm.state} on ${vm.hostid}; ${JSON.stringify(hostha)}\n${said.join('\n')}`,
      );
    });
    const ms = Date.now() - killed;
    figure('KVM host killed → its HA VM Running on the other host (default settings)', ms);
    assert.ok(ms < 120_000, `took ${ms} ms`);
    assert.equal(moved.hostid, hostIds[1]);
    const rootAfter = (
      await admin.request<any>('listVolumes', { virtualmachineid: ha.id, type: 'ROOT', listall: true })
    ).volume[0];
    assert.equal(rootAfter.id, rootBefore.id);
    assert.equal(rootAfter.storageid, rootBefore.storageid);
    // The QEMU running it is host 2's, with that disk.
    const host2Vms = join(agentStateDir(zoneOptions(), HOSTS[1]!), HOSTS[1]!, 'vms');
    assert.ok(readdirSync(host2Vms).includes(moved.instancename));
    const other = (await admin.request<any>('listVirtualMachines', { id: plain.id, listall: true }))
      .virtualmachine[0];
    assert.equal(other.state, 'Stopped');
    const dead = (await admin.request<any>('listHosts', { id: hostIds[0] })).host[0];
    assert.equal(dead.state, 'Down');
    assert.equal(dead.hostha.hastate, 'Fenced');
    assert.equal(dead.hostha.haprovider, 'kvmhaprovider');
  });
});
