/**
 * The floor of bench:vms: the test template booted by bare QEMU to its DHCP lease, with no cloud
 * around it, and the one way both the floor and a deploy's lease are observed.
 *
 * - FloorNet: a network namespace of its own with a bridge, one persistent tap per VM slot
 *   already on the bridge, and a dnsmasq serving static leases on it with the DHCP settings a
 *   router's dnsmasq has (packages/agent/src/network/router.ts: a static range, infinite leases,
 *   a dhcp-hostsfile, router and DNS options, authoritative, --log-dhcp to a file).
 * - bootFloor: QEMU started with the agent's own command line for such a VM
 *   (drivers/kvm/machine.ts qemuArgs: same machine type, CPU model, memory, disk format and
 *   devices, the accelerator the agent chose) except `-S`, so the guest runs at once, inside
 *   the namespace (nsenter), on a qcow2 linked clone of a qcow2 copy of the template, as a
 *   directory pool holds a ROOT disk.
 * - LogWatch / DhcpLog: files followed by polling every few milliseconds, each new line stamped
 *   with the wall clock when the bench read it. A lease is the line dnsmasq logs as
 *   `DHCPACK(<if>) <ip> <mac>` for the guest's MAC: the same event, seen the same way, for the
 *   floor's dnsmasq and the zone router's.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { type Accel, QEMU_BINARY as QEMU } from '../../packages/agent/src/drivers/kvm/host-facts.ts';
import { qemuArgs, tapName } from '../../packages/agent/src/drivers/kvm/machine.ts';

/** Wall-clock milliseconds, the clock the server-side trace (vm-trace-hooks.ts) stamps with. */
export const epoch = () => performance.timeOrigin + performance.now();

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: 'pipe', encoding: 'utf8' });
const quiet = (cmd: string, args: string[]) => {
  try {
    sh(cmd, args);
  } catch {
    // Already gone.
  }
};

/** Follows files by polling; every complete new line goes to the file's listeners with when it was read. */
export class LogWatch {
  private readonly files = new Map<
    string,
    { offset: number; rest: string; listeners: Set<(line: string, at: number) => void> }
  >();
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 5) {
    this.timer = setInterval(() => this.poll(), intervalMs);
  }

  /**
   * Reads `path` from its start (a file that does not exist yet is read once it does); a second
   * listener of a file gets the lines read from then on. Returns what stops this listener.
   */
  follow(path: string, onLine: (line: string, at: number) => void): () => void {
    let f = this.files.get(path);
    if (!f) {
      f = { offset: 0, rest: '', listeners: new Set() };
      this.files.set(path, f);
    }
    f.listeners.add(onLine);
    return () => {
      f.listeners.delete(onLine);
      if (f.listeners.size === 0) this.files.delete(path);
    };
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private poll(): void {
    for (const [path, f] of this.files) {
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch {
        continue;
      }
      try {
        const size = fstatSync(fd).size;
        // QEMU truncates a console file it reopens: start again from its beginning.
        if (size < f.offset) f.offset = 0;
        if (size === f.offset) continue;
        const buf = Buffer.alloc(size - f.offset);
        const n = readSync(fd, buf, 0, buf.length, f.offset);
        f.offset += n;
        const at = epoch();
        const lines = (f.rest + buf.subarray(0, n).toString('utf8')).split('\n');
        f.rest = lines.pop() ?? '';
        for (const line of lines) for (const l of f.listeners) l(line.replace(/\r$/, ''), at);
      } finally {
        closeSync(fd);
      }
    }
  }
}

/** Sends `signal` to `child` and waits for its end; SIGKILL if it is still there after 5 s. */
async function ended(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  if (gone()) return;
  const exit = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
  if (!gone()) {
    child.kill('SIGKILL');
    await Promise.race([exit, new Promise((r) => setTimeout(r, 5000))]);
  }
}

export type DhcpStep = 'DHCPDISCOVER' | 'DHCPOFFER' | 'DHCPREQUEST' | 'DHCPACK';
const DHCP_LINE =
  /(DHCPDISCOVER|DHCPOFFER|DHCPREQUEST|DHCPACK)\([^)]*\)\s+(?:\d+\.\d+\.\d+\.\d+\s+)?([0-9a-f]{2}(?::[0-9a-f]{2}){5})/i;

/** One dnsmasq's log (--log-dhcp): when each DHCP step of each MAC was first read. */
export class DhcpLog {
  private readonly seen = new Map<string, number>();

  constructor(watch: LogWatch, path: string) {
    watch.follow(path, (line, at) => {
      const m = DHCP_LINE.exec(line);
      if (!m) return;
      const key = `${m[1]!.toUpperCase()} ${m[2]!.toLowerCase()}`;
      if (!this.seen.has(key)) this.seen.set(key, at);
    });
  }

  at(step: DhcpStep, mac: string): number | undefined {
    return this.seen.get(`${step} ${mac.toLowerCase()}`);
  }
}

/** When the guest printed `NIMBO: dhcp <ip>` on its serial console (read from QEMU's file). */
export class ConsoleDhcp {
  at?: number;
  readonly stop: () => void;

  constructor(watch: LogWatch, path: string) {
    this.stop = watch.follow(path, (line, at) => {
      if (this.at === undefined && /NIMBO: dhcp \d/.test(line)) this.at = at;
    });
  }
}

/**
 * CPU time (user + system) process `pid` has used so far, in ms; undefined once it is gone. Beside
 * a wall-clock time it tells a guest that waited for a core from one that had more to do.
 */
export function cpuMs(pid: number | undefined): number | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, fields 14 and 15 of proc(5), in clock ticks of 10 ms.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

/** Polls `value` every 5 ms until it is defined; rejects after `timeoutMs`. */
export async function until<T>(value: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = value();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const FLOOR_HOST = 'bench-floor';
const SUBNET = '10.251.0';
const macOf = (slot: number, run: number) =>
  `02:4e:42:${(run >> 8).toString(16).padStart(2, '0')}:${(run & 0xff).toString(16).padStart(2, '0')}:${slot.toString(16).padStart(2, '0')}`;

export interface FloorNet {
  ns: string;
  dir: string;
  dhcp: DhcpLog;
  /** The base image the slots' clones are made from (the template copied in as qcow2). */
  base: string;
  slots: number;
  /** Floor runs whose MACs dnsmasq knows (each boot gets a MAC of its own, as each new VM does). */
  runs: number;
  stop(): Promise<void>;
}

/**
 * The namespace, bridge, taps (one per slot) and dnsmasq of the floor. `slots`: VMs booted at
 * once at most; `runs`: how many boots a slot has (each with a MAC and address of its own).
 */
export async function startFloorNet(
  dir: string,
  template: string,
  o: { slots: number; runs: number },
  watch: LogWatch,
): Promise<FloorNet> {
  const { slots, runs } = o;
  if (slots * runs > 240) throw new Error(`the floor's /24 has addresses for 240 boots, not ${slots * runs}`);
  mkdirSync(dir, { recursive: true });
  const ns = `nimbo-bvm-${process.pid}`;
  const stopped: (() => void)[] = [];
  let dnsmasq: ChildProcess | undefined;
  const stop = async () => {
    if (dnsmasq) await ended(dnsmasq, 'SIGTERM');
    for (const undo of stopped.reverse()) undo();
  };
  try {
    sh('ip', ['netns', 'add', ns]);
    stopped.push(() => quiet('ip', ['netns', 'del', ns]));
    const ipn = (...a: string[]) => sh('ip', ['-n', ns, ...a]);
    ipn('link', 'set', 'lo', 'up');
    ipn('link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0');
    ipn('addr', 'add', `${SUBNET}.1/24`, 'dev', 'br0');
    ipn('link', 'set', 'br0', 'up');
    for (let s = 0; s < slots; s++) {
      const tap = tapName(FLOOR_HOST, `floor-${s}`, { deviceId: 0 });
      ipn('tuntap', 'add', 'dev', tap, 'mode', 'tap');
      ipn('link', 'set', tap, 'master', 'br0');
      ipn('link', 'set', tap, 'up');
    }
    const hosts: string[] = [];
    for (let run = 0; run < runs; run++)
      for (let s = 0; s < slots; s++)
        hosts.push(`${macOf(s, run)},${SUBNET}.${10 + run * slots + s},infinite`);
    writeFileSync(join(dir, 'dhcp-hosts'), `${hosts.join('\n')}\n`);
    const log = join(dir, 'dnsmasq.log');
    writeFileSync(
      join(dir, 'dnsmasq.conf'),
      [
        'interface=br0',
        'except-interface=lo',
        'bind-interfaces',
        'user=root',
        // No DNS: the lease is all the floor needs from it.
        'port=0',
        `pid-file=${dir}/dnsmasq.pid`,
        `dhcp-leasefile=${dir}/leases`,
        `log-facility=${log}`,
        'log-dhcp',
        `dhcp-hostsfile=${dir}/dhcp-hosts`,
        `dhcp-range=${SUBNET}.0,static,255.255.255.0,infinite`,
        `dhcp-option=option:router,${SUBNET}.1`,
        `dhcp-option=option:dns-server,${SUBNET}.1`,
        'dhcp-authoritative',
        '',
      ].join('\n'),
    );
    const dhcp = new DhcpLog(watch, log);
    let ready = false;
    const stopReady = watch.follow(log, (line) => {
      if (/DHCP, static leases only/.test(line)) ready = true;
    });
    dnsmasq = spawn(
      'nsenter',
      [`--net=/run/netns/${ns}`, 'dnsmasq', '--keep-in-foreground', `--conf-file=${dir}/dnsmasq.conf`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    dnsmasq.stderr!.on('data', (d) => {
      stderr += d;
    });
    await until(
      () => (ready ? true : dnsmasq!.exitCode !== null ? false : undefined),
      10_000,
      'the floor dnsmasq to start',
    ).then((ok) => {
      if (!ok) throw new Error(`the floor's dnsmasq exited: ${stderr.trim()}`);
    });
    stopReady();
    const base = join(dir, 'base.qcow2');
    sh('qemu-img', ['convert', '-f', 'qcow2', '-O', 'qcow2', template, base]);
    return { ns, dir, dhcp, base, slots, runs, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface FloorBoot {
  mac: string;
  /** QEMU's pid once started (nsenter execs it: the same process). */
  pid(): number | undefined;
  /** Spawns QEMU; returns when it did (epoch ms, just before the spawn). */
  start(): number;
  console: ConsoleDhcp;
  /** Kills QEMU and removes the clone. */
  stop(): Promise<void>;
}

/**
 * Readies one floor VM in `slot` (its own tap) for floor run `run` (its own MAC): a linked clone
 * of the base (untimed, made before any VM of a round starts) and QEMU's command line, the
 * agent's minus `-S`; `start` spawns it.
 */
export function prepareFloor(
  net: FloorNet,
  watch: LogWatch,
  o: { slot: number; run: number; accel: Accel; memoryMiB: number; cpus: number },
): FloorBoot {
  if (o.run >= net.runs || o.slot >= net.slots)
    throw new Error(
      `the floor has ${net.slots} slots of ${net.runs} runs, not slot ${o.slot} of run ${o.run}`,
    );
  const name = `floor-${o.slot}`;
  const dir = join(net.dir, `run-${o.run}-${o.slot}`);
  mkdirSync(dir, { recursive: true });
  const disk = join(dir, 'root.qcow2');
  sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', net.base, disk]);
  const mac = macOf(o.slot, o.run);
  const args = qemuArgs({
    host: FLOOR_HOST,
    spec: {
      name,
      uuid: randomUUID(),
      cpus: o.cpus,
      cpuMhz: 500,
      memoryBytes: o.memoryMiB * 2 ** 20,
      disks: [
        {
          volumeUuid: randomUUID(),
          path: disk,
          pool: { uuid: 'bench-floor', type: 'Filesystem', path: dir },
          deviceId: 0,
          type: 'ROOT',
        },
      ],
      nics: [{ mac, bridge: 'br0', deviceId: 0 }],
    },
    dir,
    accel: o.accel,
    formats: new Map([[0, 'qcow2']]),
    incoming: false,
  }).filter((a) => a !== '-S');
  const console = new ConsoleDhcp(watch, join(dir, 'console.log'));
  let qemu: ChildProcess | undefined;
  return {
    mac,
    console,
    pid: () => qemu?.pid,
    start() {
      const log = openSync(join(dir, 'qemu.log'), 'w');
      const at = epoch();
      qemu = spawn('nsenter', [`--net=/run/netns/${net.ns}`, QEMU, ...args], { stdio: ['ignore', log, log] });
      closeSync(log);
      return at;
    },
    async stop() {
      console.stop();
      if (qemu) await ended(qemu, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The accelerator the agent chose on this machine (its probe's record), as the floor must use. */
export function agentAccel(agentDir: string): Accel {
  const f = join(agentDir, 'accel-probe.json');
  if (!existsSync(f)) return 'tcg';
  return JSON.parse(readFileSync(f, 'utf8')).accel === 'kvm' ? 'kvm' : 'tcg';
}
