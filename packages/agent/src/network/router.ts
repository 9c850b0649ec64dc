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
import { type ParsedPayload, RouterRules, type RouterSpec, type RouterVmEntry } from '@nimbostack/protocol';
import { DriverError } from '../drivers/driver.ts';
import { missingTool, run } from '../drivers/kvm/exec.ts';
import {
  netmaskOf,
  networkAddressOf,
  prefixOf,
  routerNetns,
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
  removePublicSide,
  routerRuleset,
  validateRules,
} from './router-nat.ts';
import type { ServiceEntry } from './router-service.ts';

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

/** dnsmasq's configuration for a router: static leases only, DNS for the VMs in the domain. */
export function dnsmasqConfig(router: Omit<RouterSpec, 'vms'>, dir: string): string {
  const n = router.network;
  return [
    `# Router ${router.name} of network ${n.uuid}, written by the nimbostack agent.`,
    'interface=eth0',
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
    // Names in the network's domain are answered here and never forwarded upstream.
    `local=/${n.domain}/`,
    // "static": only VMs with an entry get a lease; nobody else on the segment gets an address.
    `dhcp-range=${networkAddressOf(n.cidr)},static,${netmaskOf(n.cidr)},infinite`,
    `dhcp-option=option:router,${n.gateway}`,
    // A VM's NICs other than its default one get no default route (upstream's router does the same).
    'dhcp-option=tag:nogw,3',
    `dhcp-option=option:dns-server,${router.ip}`,
    // VXLAN takes 50 bytes of each frame: guests must send less than the underlay's 1500.
    ...(n.vni !== undefined ? ['dhcp-option=option:mtu,1450'] : []),
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
      const removed = (previous?.vms ?? []).filter((o) => !stored.vms.some((v) => sameMac(v, o)));
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

  update(p: ParsedPayload<'updateRouter'>): Promise<void> {
    return this.serialized(p.name, async () => {
      const current = this.load(p.name);
      if (!current) throw new DriverError(`router ${p.name} is not running on this host`);
      const gone = new Set([...p.remove, ...p.add.map((e) => e.mac)].map((m) => m.toLowerCase()));
      const kept = current.vms.filter((e) => !gone.has(e.mac.toLowerCase()));
      const stored = { ...current, vms: [...kept, ...withPasswordIds(p.add, current.vms)] };
      this.validate(stored);
      await this.ensure(
        stored,
        p.remove.filter((m) => !p.add.some((a) => sameMac(a, { mac: m }))),
      );
    });
  }

  stop(name: string): Promise<void> {
    return this.serialized(name, async () => {
      const dir = this.dirOf(name);
      const ns = routerNetns(name);
      await stopHaproxy(dir);
      await killProcess(readPid(join(dir, 'service.pid')), dir);
      await killProcess(readPid(join(dir, 'dnsmasq.pid')), dir);
      // The veth pair first: deleting it is synchronous, while a deleted namespace releases its
      // interfaces later, which would leave the host end in the bridge for a moment.
      if (existsSync(`/sys/class/net/${routerVeth(name)}`))
        await run('ip', ['link', 'del', routerVeth(name)]).catch((err) => {
          if (existsSync(`/sys/class/net/${routerVeth(name)}`)) throw err;
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
    try {
      return JSON.parse(readFileSync(join(this.dirOf(name), 'spec.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  private validate(spec: Omit<RouterSpec, 'vms'> & { vms: RouterVmEntry[] }): void {
    safeName('router', spec.name);
    const n = spec.network;
    prefixOf(n.cidr);
    if (!DOMAIN.test(n.domain)) throw new DriverError(`invalid DNS domain ${JSON.stringify(n.domain)}`);
    if (spec.ip === n.gateway && n.gatewayOnHost)
      throw new DriverError(
        `router ${spec.name} cannot take the gateway address ${n.gateway}: the host has it`,
      );
    const ips = new Set<string>();
    for (const v of spec.vms) {
      if (ips.has(v.ip)) throw new DriverError(`router ${spec.name}: two VM entries have address ${v.ip}`);
      ips.add(v.ip);
    }
    if (!existsSync(`/sys/class/net/${n.bridge}/bridge`))
      throw new DriverError(`bridge ${n.bridge} does not exist on this host: setupNetwork first`);
    if (spec.public) {
      // The router is the guests' way out: it holds the gateway address, the host does not.
      if (spec.ip !== n.gateway)
        throw new DriverError(
          `router ${spec.name} has a public side, so it must hold the gateway ${n.gateway}`,
        );
      if (spec.public.sourceNat && !spec.public.addresses.some((a) => a.ip === spec.public!.sourceNat))
        throw new DriverError(
          `source NAT address ${spec.public.sourceNat} is not among the public addresses`,
        );
    }
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
    const host = routerVeth(r.name);
    const n = r.network;
    if (!existsSync(`/run/netns/${ns}`)) await run('ip', ['netns', 'add', ns]);
    if (!existsSync(`/sys/class/net/${host}`)) {
      // A namespace end without its host end (a start interrupted halfway) is replaced.
      await run('ip', ['-n', ns, 'link', 'del', 'eth0']).catch(() => undefined);
      await run('ip', [
        'link',
        'add',
        host,
        'type',
        'veth',
        'peer',
        'name',
        routerVethPeer(r.name),
        'netns',
        ns,
      ]);
      await run('ip', ['-n', ns, 'link', 'set', routerVethPeer(r.name), 'name', 'eth0']);
    }
    await run('ip', ['link', 'set', host, 'master', n.bridge]);
    await run('ip', ['link', 'set', host, 'up']);
    const address = `${r.ip}/${prefixOf(n.cidr)}`;
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'address', r.mac.toLowerCase()]);
    const addrs = JSON.parse(await run('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', 'eth0'])) as {
      addr_info?: { family: string; local: string; prefixlen: number }[];
    }[];
    // A router rebuilt elsewhere or anew (restartNetwork cleanup=true) has a new MAC for the same
    // address: the guests learn it from an announcement, not after their ARP entries time out.
    const guestAdded = !(addrs[0]?.addr_info ?? []).some(
      (a) => a.family === 'inet' && `${a.local}/${a.prefixlen}` === address,
    );
    for (const a of addrs[0]?.addr_info ?? [])
      if (a.family === 'inet' && `${a.local}/${a.prefixlen}` !== address)
        await run('ip', ['-n', ns, 'addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', 'eth0']);
    await run('ip', ['-n', ns, 'addr', 'replace', address, 'dev', 'eth0']);
    await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    // With a public side the default route goes out of eth1 (ensurePublicSide); otherwise via the
    // network's gateway when it is someone else.
    if (n.gateway !== r.ip && !r.public)
      await run('ip', ['-n', ns, 'route', 'replace', 'default', 'via', n.gateway]);
    let added: string[] = [];
    if (r.public) {
      added = await ensurePublicSide(r.name, ns, r.public);
      await applyRuleset(ns, routerRuleset(n.cidr, r.public, r.rules ?? RouterRules.parse({})));
    } else {
      await removePublicSide(r.name, ns);
      await dropRuleset(ns);
    }

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
    // The service listens on the guest address only (an isolated router's public addresses belong
    // to port forwards and load balancers): one started for another address is replaced.
    const serviceArgs = `${SERVICE}\0${dir}\0${r.ip}\0`;
    if (processAlive(servicePid, serviceArgs)) process.kill(servicePid!, 'SIGHUP');
    else {
      await killProcess(servicePid, SERVICE);
      await this.spawnService(ns, dir, r.ip);
    }

    const loadBalancerMs = await ensureHaproxy(ns, dir, haproxyText);
    // Last: the addresses answer now, so neighbours that knew another MAC for them may switch.
    await Promise.all([announce(ns, added), guestAdded ? announce(ns, [r.ip], 'eth0') : undefined]);
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

const sameMac = (a: { mac: string }, b: { mac: string }) => a.mac.toLowerCase() === b.mac.toLowerCase();

/** Gives each password an id; an unchanged password keeps its id (and so its saved state). */
function withPasswordIds(vms: RouterVmEntry[], previous: ServiceEntry[]): ServiceEntry[] {
  return vms.map((v) => {
    const old = previous.find((o) => sameMac(o, v));
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
