/**
 * Virtual routers on a KVM host. A router is a network namespace plugged into its network's bridge
 * by a veth pair (the host end in the bridge, the other end eth0 in the namespace, carrying the
 * router's address and MAC), running two processes detached from the agent so that they outlive
 * it: dnsmasq (DHCP with static leases only, DNS for the VMs' names) and the router service
 * (metadata and passwords, router-service.ts). Everything a router needs lives in
 * <stateDir>/<host>/routers/<name>/: spec.json (what the agent was told), vms.json (the service's
 * entries), dnsmasq.conf, dhcp-hosts, hosts, leases, pid files and logs. A restarted agent finds
 * the routers there and restarts any process that died; stopRouter leaves nothing behind.
 *
 * An isolated network's router (a spec with `public`) also has eth1 on the zone's public bridge,
 * an nftables table for NAT and filtering (router-nat.ts) and HAProxy for its load balancers
 * (router-haproxy.ts, haproxy.cfg and haproxy.pid in the same directory); its rules are stored in
 * spec.json with the rest and replaced whole by applyRouterRules.
 *
 * A router has one guest interface per network it serves (`guests`): eth0 for the first, and for
 * a VPC's further tiers one named after the tier's bridge, each a veth pair into that bridge with
 * the tier's gateway address. dnsmasq and the router service answer on every guest interface; the
 * namespace routes between them. Interfaces of networks no longer in the spec are removed.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type CommandResult,
  type ParsedPayload,
  type RouterGuest,
  RouterRules,
  RouterSpec,
  type RouterVmEntry,
  routerEntriesDigest,
  routerEntryHash,
} from '@nimbostack/protocol';
import { DriverError } from '../drivers/driver.ts';
import { missingTool, run } from '../drivers/kvm/exec.ts';
import {
  netmaskOf,
  networkAddressOf,
  prefixOf,
  routerNetns,
  routerTierVeth,
  routerTierVethPeer,
  routerVeth,
  routerVethPeer,
  safeName,
} from './names.ts';
import { killProcess, processAlive, readPid, sleep, waitFor, writeAtomic } from './processes.ts';
import { checkHaproxy, ensureHaproxy, haproxyConfig, stopHaproxy } from './router-haproxy.ts';
import {
  announce,
  applyRuleset,
  dropRuleset,
  ensurePublicSide,
  GUEST_IF,
  PUBLIC_IF,
  removePublicSide,
  routerRuleset,
  validateRules,
} from './router-nat.ts';
import type { ServiceEntry } from './router-service.ts';
import { ensureVpcRouting, gatewayLinks, validateVpcRouting } from './router-vpc.ts';
import { ensureVpn, LIBIPSEC_TUN, resetConnection, stopVpn, vpnStatus } from './router-vpn.ts';

export { processAlive };

const SERVICE = resolve(import.meta.dirname, 'router-service.ts');
/** Where `--import tsx` resolves from: the agent package (its node_modules, or the workspace's). */
const PACKAGE_DIR = resolve(import.meta.dirname, '../..');
const DNSMASQ = '/usr/sbin/dnsmasq';
/** A DNS label: DHCP option 12 and the hosts file take nothing else. */
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const DOMAIN = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?$/;

interface StoredRouter extends Omit<RouterSpec, 'vms'> {
  vms: ServiceEntry[];
}

/** A guest interface of a router as the namespace has it. */
interface GuestLink {
  guest: RouterGuest;
  /** Its name inside the namespace. */
  dev: string;
  /** The host end of its veth pair (in the network's bridge), and the peer's name before renaming. */
  host: string;
  peer: string;
}

/** The guest interfaces of a router: eth0 for the first network, the bridge's name for the others. */
export function guestLinks(router: Pick<RouterSpec, 'name' | 'guests'>): GuestLink[] {
  return router.guests.map((guest, i) =>
    i === 0
      ? { guest, dev: GUEST_IF, host: routerVeth(router.name), peer: routerVethPeer(router.name) }
      : {
          guest,
          dev: guest.network.bridge,
          host: routerTierVeth(router.name, guest.network.bridge),
          peer: routerTierVethPeer(router.name, guest.network.bridge),
        },
  );
}

/** dnsmasq's configuration for a router: static leases only, DNS for the VMs in the domain. */
export function dnsmasqConfig(router: Omit<RouterSpec, 'vms'>, dir: string): string {
  const links = guestLinks(router);
  const n = router.guests[0]!.network;
  const domains = [...new Set(router.guests.map((g) => g.network.domain))];
  // One guest network: untagged options, as every router had before VPCs. Several (VPC tiers):
  // each range sets its tag and gets its own gateway and DNS server (its tier's router address).
  // dnsmasq ranks tags set by dhcp-range below others, so a VM's `nogw` still wins.
  const tagged = links.length > 1;
  const perGuest = links.flatMap(({ guest: g }, i) => {
    const set = tagged ? `set:g${i},` : '';
    const tag = tagged ? `tag:g${i},` : '';
    return [
      // "static": only VMs with an entry get a lease; nobody else on the segment gets an address.
      `dhcp-range=${set}${networkAddressOf(g.network.cidr)},static,${netmaskOf(g.network.cidr)},infinite`,
      `dhcp-option=${tag}option:router,${g.network.gateway}`,
      ...(tagged ? [] : ['dhcp-option=tag:nogw,3']),
      `dhcp-option=${tag}option:dns-server,${g.ip}`,
      // VXLAN takes 50 bytes of each frame: guests must send less than the underlay's 1500.
      ...(g.network.vni !== undefined ? [`dhcp-option=${tag}option:mtu,1450`] : []),
    ];
  });
  return [
    `# Router ${router.name} of network ${n.uuid}, written by the nimbostack agent.`,
    ...links.map((l) => `interface=${l.dev}`),
    'except-interface=lo',
    'bind-interfaces',
    // Root inside the namespace: the files live in the agent's state directory, which other users
    // cannot read, and dnsmasq re-reads the hosts files on SIGHUP after dropping privileges.
    'user=root',
    `pid-file=${dir}/dnsmasq.pid`,
    `dhcp-leasefile=${dir}/leases`,
    `log-facility=${dir}/dnsmasq.log`,
    'log-dhcp',
    'no-hosts',
    `addn-hosts=${dir}/hosts`,
    `dhcp-hostsfile=${dir}/dhcp-hosts`,
    `domain=${n.domain}`,
    // Names in the networks' domains are answered here and never forwarded upstream.
    ...domains.map((d) => `local=/${d}/`),
    ...perGuest,
    // A VM's NICs other than its default one get no default route (upstream's router does the same).
    ...(tagged ? ['dhcp-option=tag:nogw,3'] : []),
    'dhcp-authoritative',
    '',
  ].join('\n');
}

export function dhcpHosts(vms: RouterVmEntry[]): string {
  return vms
    .map((v) =>
      [
        v.mac.toLowerCase(),
        ...(v.defaultGateway === false ? ['set:nogw'] : []),
        v.ip,
        ...(LABEL.test(v.hostname) ? [v.hostname] : []),
        'infinite',
      ].join(','),
    )
    .map((l) => `${l}\n`)
    .join('');
}

export function hostsFile(vms: RouterVmEntry[], domain: string): string {
  return vms
    .filter((v) => LABEL.test(v.hostname))
    .map((v) => `${v.ip} ${v.hostname}.${domain} ${v.hostname}\n`)
    .join('');
}

export class Routers {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  dirOf(name: string): string {
    return join(this.root, safeName('router', name));
  }

  /** The routers this host runs, as last told. */
  list(): StoredRouter[] {
    const out: StoredRouter[] = [];
    for (const name of readdirSync(this.root)) {
      const r = this.load(name);
      if (r) out.push(r);
    }
    return out;
  }

  start(spec: RouterSpec): Promise<void> {
    return this.serialized(spec.name, async () => {
      this.validate(spec);
      const previous = this.load(spec.name);
      const stored: StoredRouter = { ...spec, vms: withPasswordIds(spec.vms, previous?.vms ?? []) };
      const kept = new Set(stored.vms.map((v) => v.mac.toLowerCase()));
      const removed = (previous?.vms ?? []).filter((o) => !kept.has(o.mac.toLowerCase()));
      await this.ensure(
        stored,
        removed.map((v) => v.mac),
      );
    });
  }

  /**
   * Replaces a running router's public side and rules. `public` absent keeps the current public
   * side (only the rules change). Answers the load balancer's reload time when it had to reload.
   */
  applyRules(p: ParsedPayload<'applyRouterRules'>): Promise<{ loadBalancerMs?: number }> {
    return this.serialized(p.name, async () => {
      const current = this.load(p.name);
      if (!current || !existsSync(`/run/netns/${routerNetns(p.name)}`))
        throw new DriverError(`router ${p.name} is not running on this host`);
      const stored: StoredRouter = { ...current, public: p.public ?? current.public, rules: p.rules };
      this.validate(stored);
      const loadBalancerMs = await this.ensure(stored, []);
      return loadBalancerMs !== undefined ? { loadBalancerMs } : {};
    });
  }

  /** Replaces a running router's VPNs (router-vpn.ts); answers its connections' states. */
  applyVpn(p: ParsedPayload<'applyRouterVpn'>): Promise<CommandResult<'applyRouterVpn'>> {
    return this.serialized(p.name, async () => {
      const current = this.load(p.name);
      if (!current || !existsSync(`/run/netns/${routerNetns(p.name)}`))
        throw new DriverError(`router ${p.name} is not running on this host`);
      const dir = this.dirOf(p.name);
      await ensureVpn(routerNetns(p.name), dir, p.vpn);
      writeAtomic(join(dir, 'spec.json'), JSON.stringify({ ...current, vpn: p.vpn }, null, 2));
      for (const c of p.vpn.siteToSite) if (p.reset.includes(c.id)) await resetConnection(dir, c);
      return { connections: await vpnStatus(dir, p.vpn) };
    });
  }

  async vpnStatus(name: string): Promise<CommandResult<'routerVpnStatus'>> {
    const current = this.load(name);
    if (!current) throw new DriverError(`router ${name} is not running on this host`);
    return { connections: await vpnStatus(this.dirOf(name), current.vpn) };
  }

  update(p: ParsedPayload<'updateRouter'>): Promise<void> {
    return this.serialized(p.name, async () => {
      const current = this.load(p.name);
      if (!current) throw new DriverError(`router ${p.name} is not running on this host`);
      const gone = new Set([...p.remove, ...p.add.map((e) => e.mac)].map((m) => m.toLowerCase()));
      const kept = current.vms.filter((e) => !gone.has(e.mac.toLowerCase()));
      const stored = { ...current, vms: [...kept, ...withPasswordIds(p.add, current.vms)] };
      this.validate(stored);
      const added = new Set(p.add.map((a) => a.mac.toLowerCase()));
      await this.ensure(
        stored,
        p.remove.filter((m) => !added.has(m.toLowerCase())),
      );
    });
  }

  /** What the router holds of its VMs, condensed (routerDigest); with `entries`, each one's hash. */
  async digest(p: ParsedPayload<'routerDigest'>): Promise<CommandResult<'routerDigest'>> {
    const current = this.load(p.name);
    if (!current || !existsSync(`/run/netns/${routerNetns(p.name)}`))
      throw new DriverError(`router ${p.name} is not running on this host`);
    return routerDigestOf(current.vms, p.entries);
  }

  stop(name: string): Promise<void> {
    return this.serialized(name, async () => {
      const dir = this.dirOf(name);
      const ns = routerNetns(name);
      await stopVpn(dir);
      await stopHaproxy(dir);
      await killProcess(readPid(join(dir, 'service.pid')), dir);
      await killProcess(readPid(join(dir, 'dnsmasq.pid')), dir);
      // The veth pairs first: deleting one is synchronous, while a deleted namespace releases its
      // interfaces later, which would leave the host ends in the bridges for a moment.
      const stored = this.load(name);
      const hostEnds = new Set([
        routerVeth(name),
        ...(stored ? [...guestLinks(stored), ...gatewayLinks(name, stored.vpc)].map((l) => l.host) : []),
      ]);
      for (const end of hostEnds)
        if (existsSync(`/sys/class/net/${end}`))
          await run('ip', ['link', 'del', end]).catch((err) => {
            if (existsSync(`/sys/class/net/${end}`)) throw err;
          });
      await removePublicSide(name, ns);
      if (existsSync(`/run/netns/${ns}`)) {
        // Whatever else still runs in the namespace (a process of a crashed earlier attempt) goes too.
        const pids = (await run('ip', ['netns', 'pids', ns]).catch(() => '')).split(/\s+/).filter(Boolean);
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // Gone already.
          }
        }
        await run('ip', ['netns', 'del', ns]);
      }
      rmSync(dir, { recursive: true, force: true });
    });
  }

  /** After an agent restart: every router keeps running; a process that died is started again. */
  async adopt(): Promise<void> {
    for (const r of this.list())
      await this.serialized(r.name, () => this.ensure(r, [])).catch((err: Error) => {
        process.stderr.write(`agent: router ${r.name} could not be re-adopted: ${err.message}\n`);
      });
  }

  // ---- internals

  private serialized<T>(name: string, op: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(name) ?? Promise.resolve();
    const result = previous.then(op, op);
    const tail = result.catch(() => undefined);
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) === tail) this.queues.delete(name);
    });
    return result;
  }

  private load(name: string): StoredRouter | undefined {
    let raw: StoredRouter;
    try {
      raw = JSON.parse(readFileSync(join(this.dirOf(name), 'spec.json'), 'utf8'));
    } catch {
      return undefined;
    }
    // A spec stored before routers had several guest networks names its one network directly.
    return raw.guests ? raw : { ...(RouterSpec.parse({ ...raw, vms: [] }) as StoredRouter), vms: raw.vms };
  }

  private validate(spec: Omit<RouterSpec, 'vms'> & { vms: RouterVmEntry[] }): void {
    safeName('router', spec.name);
    const bridges = new Set<string>();
    for (const [i, { network: n, ip }] of spec.guests.entries()) {
      prefixOf(n.cidr);
      if (!DOMAIN.test(n.domain)) throw new DriverError(`invalid DNS domain ${JSON.stringify(n.domain)}`);
      if (ip === n.gateway && n.gatewayOnHost)
        throw new DriverError(
          `router ${spec.name} cannot take the gateway address ${n.gateway}: the host has it`,
        );
      if (bridges.has(n.bridge))
        throw new DriverError(`router ${spec.name} has two guest interfaces on bridge ${n.bridge}`);
      bridges.add(n.bridge);
      // A further interface is named after its bridge: never one of the router's fixed names.
      if (i > 0 && ['lo', GUEST_IF, PUBLIC_IF].includes(n.bridge))
        throw new DriverError(`bridge name ${n.bridge} cannot name a router interface`);
      if (!existsSync(`/sys/class/net/${n.bridge}/bridge`))
        throw new DriverError(`bridge ${n.bridge} does not exist on this host: setupNetwork first`);
      // The router is the guests' way out: it holds each network's gateway address, the host not.
      if (spec.public && ip !== n.gateway)
        throw new DriverError(
          `router ${spec.name} has a public side, so it must hold the gateway ${n.gateway}`,
        );
    }
    if (spec.guests.length === 0 && !spec.public)
      throw new DriverError(`router ${spec.name} has neither a guest network nor a public side`);
    const ips = new Set<string>();
    for (const v of spec.vms) {
      if (ips.has(v.ip)) throw new DriverError(`router ${spec.name}: two VM entries have address ${v.ip}`);
      ips.add(v.ip);
    }
    if (spec.public) {
      if (spec.public.sourceNat && !spec.public.addresses.some((a) => a.ip === spec.public!.sourceNat))
        throw new DriverError(
          `source NAT address ${spec.public.sourceNat} is not among the public addresses`,
        );
    }
    validateVpcRouting(spec);
    if (spec.rules) {
      validateRules(spec.public, spec.rules);
      haproxyConfig(spec.name, spec.rules.loadBalancers); // Refuses what no HAProxy could take.
    }
  }

  /** Brings the namespace, link, files and processes in line with `r`; restarts only what must. */
  private async ensure(r: StoredRouter, removedMacs: string[]): Promise<number | undefined> {
    if (!existsSync(DNSMASQ)) throw new DriverError(missingTool('dnsmasq'));
    const dir = this.dirOf(r.name);
    mkdirSync(dir, { recursive: true });
    // Checked before anything changes: a configuration HAProxy refuses leaves the router as it was.
    const haproxyText = await checkHaproxy(r.name, dir, (r.public && r.rules?.loadBalancers) || []);
    const ns = routerNetns(r.name);
    const links = guestLinks(r);
    // A VPC router's private gateways are interfaces like its tiers' (router-vpc.ts).
    const gateways = gatewayLinks(r.name, r.vpc);
    if (!existsSync(`/run/netns/${ns}`)) await run('ip', ['netns', 'add', ns]);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    // Interfaces of guest networks the router no longer serves (a VPC tier deleted) go; deleting
    // the namespace end of a veth pair deletes its host end too.
    const present = JSON.parse(await run('ip', ['-n', ns, '-j', 'link', 'show'])) as { ifname: string }[];
    // kernel-libipsec's TUN device is strongSwan's (router-vpn.ts), not a guest network's.
    for (const { ifname } of present)
      if (
        ifname !== 'lo' &&
        ifname !== PUBLIC_IF &&
        ifname !== LIBIPSEC_TUN &&
        ![...links, ...gateways].some((l) => l.dev === ifname)
      )
        await run('ip', ['-n', ns, 'link', 'del', ifname]).catch(() => undefined);
    // Guest addresses that are new on their interface: announced last (below).
    const announced: [string, string][] = [];
    for (const link of [...links, ...gateways])
      if (await ensureGuestLink(ns, link)) announced.push([link.guest.ip, link.dev]);
    const first = r.guests[0];
    // With a public side the default route goes out of eth1 (ensurePublicSide); otherwise via the
    // network's gateway when it is someone else.
    if (first && first.network.gateway !== first.ip && !r.public)
      await run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', first.network.gateway]);
    // Several guest networks (VPC tiers) are routed to each other by the namespace.
    if (r.guests.length > 1 || gateways.length)
      await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // Network ACLs and static routes before the public side opens (an ACL'd tier is never reachable
    // unfiltered through a port forward of a router starting anew).
    await ensureVpcRouting(ns, r);
    let added: string[] = [];
    if (r.public) {
      added = await ensurePublicSide(r.name, ns, r.public);
      await applyRuleset(
        ns,
        routerRuleset(
          r.guests.map((g) => g.network.cidr),
          r.public,
          r.rules ?? RouterRules.parse({}),
        ),
      );
    } else {
      await removePublicSide(r.name, ns);
      await dropRuleset(ns);
    }
    await ensureVpn(ns, dir, r.vpn);

    if (!first) {
      // No guest network yet (a VPC without tiers): nothing to serve DHCP, DNS or metadata to.
      await killProcess(readPid(join(dir, 'dnsmasq.pid')), dir);
      await killProcess(readPid(join(dir, 'service.pid')), SERVICE);
      writeAtomic(join(dir, 'spec.json'), JSON.stringify(r, null, 2));
      const loadBalancerMs = await ensureHaproxy(ns, dir, haproxyText);
      await announce(ns, added);
      return loadBalancerMs;
    }
    const n = first.network;
    writeAtomic(join(dir, 'vms.json'), JSON.stringify({ vms: r.vms }));
    const hostsFileBefore = existsSync(join(dir, 'dhcp-hosts'))
      ? readFileSync(join(dir, 'dhcp-hosts'), 'utf8')
      : '';
    writeAtomic(join(dir, 'dhcp-hosts'), dhcpHosts(r.vms));
    writeAtomic(join(dir, 'hosts'), hostsFile(r.vms, n.domain));
    const conf = dnsmasqConfig(r, dir);
    const confFile = join(dir, 'dnsmasq.conf');
    const confChanged = !existsSync(confFile) || readFileSync(confFile, 'utf8') !== conf;
    writeAtomic(confFile, conf);
    writeAtomic(join(dir, 'spec.json'), JSON.stringify(r, null, 2));

    const dnsmasqPid = readPid(join(dir, 'dnsmasq.pid'));
    const dnsmasqUp = processAlive(dnsmasqPid, confFile);
    // dnsmasq 2.90 was seen to exit on re-reading (SIGHUP) a dhcp-hostsfile whose tagged lines
    // (set:nogw, a VM's non-default NIC) changed: with tags before or after, it is restarted.
    const tagged = `${hostsFileBefore}${dhcpHosts(r.vms)}`.includes(',set:');
    if (dnsmasqUp && !confChanged && !removedMacs.length && !tagged) process.kill(dnsmasqPid!, 'SIGHUP');
    else {
      // A removed VM's lease is dropped so its address can go to another MAC at once; dnsmasq
      // keeps leases in memory, so it is restarted with the edited lease file.
      if (dnsmasqUp) await killProcess(dnsmasqPid, confFile);
      dropLeases(join(dir, 'leases'), removedMacs);
      rmSync(join(dir, 'dnsmasq.pid'), { force: true });
      // A dnsmasq that just died (killed behind our back) may still hold its sockets for a moment.
      for (let attempt = 0; ; attempt++) {
        const started = await run('ip', ['netns', 'exec', ns, DNSMASQ, `--conf-file=${confFile}`]).then(
          () => undefined,
          (err: Error) => err,
        );
        if (!started) break;
        if (attempt >= 20 || !/already in use/.test(started.message)) throw started;
        await sleep(100);
      }
      await waitFor(() => processAlive(readPid(join(dir, 'dnsmasq.pid')), confFile), 5000, 'dnsmasq');
    }

    const servicePid = readPid(join(dir, 'service.pid'));
    // The service listens on the guest addresses only (an isolated router's public addresses
    // belong to port forwards and load balancers): one started for other addresses is replaced.
    const listen = r.guests.map((g) => g.ip).join(',');
    const serviceArgs = `${SERVICE}\0${dir}\0${listen}\0`;
    if (processAlive(servicePid, serviceArgs)) process.kill(servicePid!, 'SIGHUP');
    else {
      await killProcess(servicePid, SERVICE);
      await this.spawnService(ns, dir, listen);
    }

    const loadBalancerMs = await ensureHaproxy(ns, dir, haproxyText);
    // Last: the addresses answer now, so neighbours that knew another MAC for them may switch.
    await Promise.all([announce(ns, added), ...announced.map(([ip, dev]) => announce(ns, [ip], dev))]);
    return loadBalancerMs;
  }

  private async spawnService(ns: string, dir: string, ip: string): Promise<void> {
    const ready = join(dir, 'service.ready');
    rmSync(ready, { force: true });
    const log = openSync(join(dir, 'service.log'), 'a');
    // Detached in its own session: the service outlives the agent. `ip netns exec` execs node,
    // so the pid is the service's own.
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', SERVICE, dir, ip], {
      cwd: PACKAGE_DIR,
      detached: true,
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    child.unref();
    const failed = new Promise<never>((_, reject) => {
      child.once('error', (err) =>
        reject(new DriverError(`cannot start the router service: ${err.message}`)),
      );
      child.once('exit', (code) =>
        reject(new DriverError(`the router service exited (${code}): ${tail(join(dir, 'service.log'))}`)),
      );
    });
    failed.catch(() => undefined);
    writeFileSync(join(dir, 'service.pid'), String(child.pid));
    await Promise.race([waitFor(() => readPid(ready) === child.pid, 30_000, 'the router service'), failed]);
    child.removeAllListeners('exit');
  }
}

/**
 * Brings one guest interface in line: its veth pair into the network's bridge, its MAC and exactly
 * its address. True when the address is new on it (a router rebuilt elsewhere or anew, as by
 * restartNetwork cleanup=true, has a new MAC for the same address: the guests learn it from an
 * announcement, not after their ARP entries time out).
 */
async function ensureGuestLink(
  ns: string,
  {
    guest,
    dev,
    host,
    peer,
  }: Pick<GuestLink, 'dev' | 'host' | 'peer'> & {
    guest: { network: { bridge: string; cidr: string }; ip: string; mac: string };
  },
): Promise<boolean> {
  if (!existsSync(`/sys/class/net/${host}`)) {
    // A namespace end without its host end (a start interrupted halfway) is replaced.
    await run('ip', ['-n', ns, 'link', 'del', dev]).catch(() => undefined);
    await run('ip', ['link', 'add', host, 'type', 'veth', 'peer', 'name', peer, 'netns', ns]);
    await run('ip', ['-n', ns, 'link', 'set', peer, 'name', dev]);
  }
  await run('ip', ['link', 'set', host, 'master', guest.network.bridge]);
  await run('ip', ['link', 'set', host, 'up']);
  const address = `${guest.ip}/${prefixOf(guest.network.cidr)}`;
  await run('ip', ['-n', ns, 'link', 'set', dev, 'address', guest.mac.toLowerCase()]);
  const addrs = JSON.parse(await run('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', dev])) as {
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  const inet = (addrs[0]?.addr_info ?? []).filter((a) => a.family === 'inet');
  const added = !inet.some((a) => `${a.local}/${a.prefixlen}` === address);
  for (const a of inet)
    if (`${a.local}/${a.prefixlen}` !== address)
      await run('ip', ['-n', ns, 'addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', dev]);
  await run('ip', ['-n', ns, 'addr', 'replace', address, 'dev', dev]);
  await run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  return added;
}

/** routerDigest's answer for the entries a router holds (the simulator answers the same way). */
export function routerDigestOf(vms: RouterVmEntry[], entries: boolean): CommandResult<'routerDigest'> {
  return {
    digest: routerEntriesDigest(vms),
    ...(entries
      ? { entries: vms.map((v): [string, string] => [v.mac.toLowerCase(), routerEntryHash(v)]) }
      : {}),
  };
}

/**
 * Gives each password an id; an unchanged password keeps its id (and so its saved state). The
 * previous entries are looked up by MAC through a map: a big network's router gets its entries in
 * batches of thousands while it holds a hundred thousand.
 */
function withPasswordIds(vms: RouterVmEntry[], previous: ServiceEntry[]): ServiceEntry[] {
  const withPassword = new Map<string, ServiceEntry>();
  for (const o of previous) if (o.password) withPassword.set(o.mac.toLowerCase(), o);
  return vms.map((v) => {
    const old = v.password ? withPassword.get(v.mac.toLowerCase()) : undefined;
    if (!v.password) return { ...v, password: undefined, passwordId: undefined };
    const passwordId = old?.password === v.password && old.passwordId ? old.passwordId : randomUUID();
    return { ...v, passwordId };
  });
}

function dropLeases(file: string, macs: string[]): void {
  if (!macs.length || !existsSync(file)) return;
  const gone = new Set(macs.map((m) => m.toLowerCase()));
  const lines = readFileSync(file, 'utf8').split('\n');
  writeAtomic(file, lines.filter((l) => !gone.has((l.split(' ')[1] ?? '').toLowerCase())).join('\n'));
}

function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-2).join(' ') : '';
}
