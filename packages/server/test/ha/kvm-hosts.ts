/**
 * Two real KVM hosts for the HA suite: two KVM agent processes on this machine (the helpers of
 * kvm-ha-e2e.test.ts, ../kvm-advanced-zone.ts) given the cluster's three agent addresses, in an
 * Advanced zone of their own (one cluster, one shared primary-storage directory), with one small
 * guest of the test template on each, in an isolated network of an account the suite's load does
 * not touch. What the suite reads of them comes from the machine, not from the servers: each
 * guest's QEMU process (its PID in the agent's state) and whether it answers ping from its
 * network's router namespace.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { CloudStackClient } from '@nimbostack/client';
import { routerNetns } from '../../../agent/src/network/names.ts';
import type { TestAgent } from '../agents.ts';
import { waitFor } from '../chaos/cloud.ts';
import {
  agentStateDir,
  buildAdvancedZone,
  Internet,
  killQemus,
  removeRouterLeftovers,
  startAgents,
  TEMPLATE,
  type ZoneOptions,
} from '../kvm-advanced-zone.ts';

/** Why the real-KVM part cannot run here (the gate of the kvm suites), or false. */
export function kvmMissing(): string | false {
  const missing = [
    process.getuid?.() !== 0 ? 'root' : '',
    existsSync('/usr/bin/qemu-system-x86_64') ? '' : 'QEMU',
    existsSync('/usr/sbin/nft') ? '' : 'nft',
    existsSync('/usr/bin/busybox') ? '' : 'busybox',
    existsSync(TEMPLATE) ? '' : TEMPLATE,
  ].filter(Boolean);
  return missing.length ? `needs ${missing.join(', ')}: run npm run setup:host` : false;
}

export interface KvmGuest {
  id: string;
  name: string;
  instancename: string;
  host: string;
  ip: string;
}

const tag = String(process.pid % 100000);
const run = promisify(execFile);

export class KvmHosts {
  readonly agents: TestAgent[] = [];
  readonly guests: KvmGuest[] = [];
  readonly hosts = [`hakvm${tag}-1`, `hakvm${tag}-2`];
  private readonly internet = new Internet(
    `nhapub${tag}`,
    `nimbo-hapub-${process.pid}`,
    `nha${tag}h`,
    '203.0.113.1',
  );
  private readonly routers = new Set<string>();
  private networkId = '';
  private routerName = '';
  private internetUp = false;

  constructor(
    readonly dir: string,
    readonly agentUrls: string[],
  ) {}

  private options(): ZoneOptions {
    return {
      prefix: `hakvm${tag}`,
      root: this.dir,
      hosts: this.hosts,
      publicBridge: this.internet.bridge,
      gatewayIp: this.internet.ip,
      publicIps: Array.from({ length: 4 }, (_, i) => `203.0.113.${70 + i}`),
      vniRange: [7170, 7175],
      guestCidr: '10.74.0.0/24',
      podOctet: 74,
    };
  }

  /** The agents start first: they probe QEMU while the simulated cloud is built. */
  start(): void {
    for (const d of ['primary', 'secondary']) mkdirSync(join(this.dir, d), { recursive: true });
    this.internet.start();
    this.internetUp = true;
    this.agents.push(...startAgents({ agentUrl: this.agentUrls.join(',') }, this.options()));
  }

  /** The zone, an account, its isolated network and one guest on each host, answering ping. */
  async build(admin: CloudStackClient): Promise<void> {
    const { zoneid, hostIds, templateid, serviceofferingid } = await buildAdvancedZone(
      admin,
      this.agents,
      this.options(),
    );
    const account = (
      await admin.request<any>('createAccount', {
        username: 'hakvm',
        password: 'hakvm-password',
        email: 'hakvm@example.com',
        firstname: 'Real',
        lastname: 'Guests',
        accounttype: 0,
      })
    ).account;
    const offering = (
      await admin.request<any>('listNetworkOfferings', {
        name: 'DefaultIsolatedNetworkOfferingWithSourceNatService',
      })
    ).networkoffering[0].id;
    this.networkId = (
      await admin.call<any>('createNetwork', {
        name: 'ha-kvm-net',
        displaytext: 'HA suite real guests',
        zoneid,
        networkofferingid: offering,
        account: account.name,
        domainid: account.domainid,
      })
    ).network.id;
    for (const [i, hostid] of hostIds.entries()) {
      const vm = (
        await admin.call<any>('deployVirtualMachine', {
          zoneid,
          templateid,
          serviceofferingid,
          networkids: this.networkId,
          account: account.name,
          domainid: account.domainid,
          hostid,
          name: `ha-kvm-guest-${i + 1}`,
        })
      ).virtualmachine;
      this.guests.push({
        id: vm.id,
        name: vm.name,
        instancename: vm.instancename,
        host: this.hosts[i],
        ip: vm.nic[0].ipaddress,
      });
    }
    const router = (await admin.request<any>('listRouters', { networkid: this.networkId, listall: true }))
      .router?.[0];
    if (!router) throw new Error('the real guests network has no router');
    this.routerName = router.name;
    this.routers.add(router.name);
    for (const g of this.guests)
      await waitFor(`${g.name} (${g.ip}) to answer ping`, 180_000, async () => this.answers(g));
  }

  /** The QEMU process running the guest, from its agent's state, if it is alive. */
  pid(g: KvmGuest): number | undefined {
    const f = join(agentStateDir(this.options(), g.host), g.host, 'vms', g.instancename, 'vm.json');
    const pid = existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')).pid : undefined;
    if (typeof pid !== 'number') return undefined;
    try {
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  }

  /**
   * Whether the guest answers ping from its network's router (busybox: setup:host installs it);
   * three tries, so that one echo lost on two loaded cores is not a silent guest. Asynchronous:
   * the simulated hosts' agents run in this process and must keep writing their heartbeats.
   */
  async answers(g: KvmGuest): Promise<boolean> {
    const ping = [
      'netns',
      'exec',
      routerNetns(this.routerName),
      'busybox',
      'ping',
      '-c',
      '1',
      '-W',
      '1',
      g.ip,
    ];
    for (let i = 0; i < 3; i++)
      if (
        await run('ip', ping).then(
          () => true,
          () => false,
        )
      )
        return true;
    return false;
  }

  /** Through the API while a server runs: the guests expunged, the network (bridge, router) deleted. */
  async remove(admin: CloudStackClient): Promise<void> {
    for (const g of this.guests)
      await admin.call('destroyVirtualMachine', { id: g.id, expunge: true }).catch(() => undefined);
    if (this.networkId)
      await admin.call('deleteNetwork', { id: this.networkId, forced: true }).catch(() => undefined);
  }

  /** Whatever is left on the machine: agents, QEMU processes, router namespaces, the public bridge. */
  async stop(): Promise<void> {
    for (const a of this.agents) await a.kill();
    // What the agents said, next to the servers' logs (kept when the run failed).
    for (const [i, a] of this.agents.entries())
      writeFileSync(join(this.dir, `${this.hosts[i]}.log`), `${a.logs.join('\n')}\n`);
    this.leftovers();
  }

  /** Synchronous, for a run that gives up: everything of ours on the machine goes. */
  leftovers(): void {
    for (const a of this.agents) a.process.kill('SIGKILL');
    for (const host of this.hosts) killQemus(join(agentStateDir(this.options(), host), host));
    removeRouterLeftovers(this.routers);
    if (this.internetUp) this.internet.stop();
    this.internetUp = false;
  }
}
