/**
 * A container as LXC gets it: the config file written for every start (root file system, NICs,
 * cgroup limits, console log), the host-side names derived from CloudStack names, and the
 * container's cgroup files (limits and statistics), cgroup v1 or v2 whichever the host mounts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VmSpec } from '@nimbostack/protocol';
import { tapName } from '../kvm/machine.ts';
import { rootfsOf } from './storage.ts';

export type VmDisk = VmSpec['disks'][number];

/** The guest's device node of a data volume: the same name a KVM guest sees (vdb for device id 1). */
export const diskNodeName = (disk: { deviceId: number }) => `vd${String.fromCharCode(97 + disk.deviceId)}`;

/**
 * cgroup v1 when the host mounts the v1 memory controller (LXC then puts the limits there),
 * otherwise the unified v2 hierarchy. Debian 12 boots v2 only; hybrid hosts such as this test
 * machine still have v1 controllers.
 */
export const CGROUP_V1 = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');

/** The cgroup period CPU quotas are expressed in (the kernel's default). */
const CPU_PERIOD_US = 100_000;

/**
 * CPU and memory limits as LXC config lines. Like upstream's LXC resource, the CPU weight is the
 * offering's speed times its CPUs (shares on v1; v2's weight is 1-10000, so scaled down by 10),
 * and the container may use at most its number of CPUs (a quota of cpus × period).
 */
export function limitLines(spec: Pick<VmSpec, 'cpus' | 'cpuMhz' | 'memoryBytes'>): string[] {
  const shares = Math.max(2, spec.cpus * spec.cpuMhz);
  const quota = spec.cpus * CPU_PERIOD_US;
  if (CGROUP_V1)
    return [
      `lxc.cgroup.cpu.shares = ${shares}`,
      `lxc.cgroup.cpu.cfs_period_us = ${CPU_PERIOD_US}`,
      `lxc.cgroup.cpu.cfs_quota_us = ${quota}`,
      ...(spec.memoryBytes > 0 ? [`lxc.cgroup.memory.limit_in_bytes = ${spec.memoryBytes}`] : []),
    ];
  return [
    `lxc.cgroup2.cpu.weight = ${Math.min(10_000, Math.max(1, Math.round(shares / 10)))}`,
    `lxc.cgroup2.cpu.max = ${quota} ${CPU_PERIOD_US}`,
    ...(spec.memoryBytes > 0 ? [`lxc.cgroup2.memory.max = ${spec.memoryBytes}`] : []),
  ];
}

export interface ConfigInput {
  host: string;
  spec: VmSpec;
  /** Where the console log goes (the state directory keeps it after the container is gone). */
  consoleLog: string;
  /** The root volume's directory (see storage.ts). */
  rootVolume: string;
}

/**
 * The container's LXC config. Debian's common.conf gives the usual device allow-list, capability
 * drops and seccomp profile; the test template's busybox init halts on SIGUSR1 and powers off
 * cleanly from it, and reboots on SIGTERM. A NIC without a bridge is a veth left unplugged, as a
 * KVM NIC without a bridge has no link.
 */
export function configText(input: ConfigInput): string {
  const { spec } = input;
  const lines = [
    'lxc.include = /usr/share/lxc/config/common.conf',
    `lxc.uts.name = ${spec.name}`,
    `lxc.rootfs.path = ${rootfsOf(input.rootVolume)}`,
    'lxc.autodev = 1',
    'lxc.tty.max = 1',
    `lxc.console.logfile = ${input.consoleLog}`,
    'lxc.signal.halt = SIGUSR1',
    'lxc.signal.reboot = SIGTERM',
    ...limitLines(spec),
  ];
  const nics = [...spec.nics].sort((a, b) => a.deviceId - b.deviceId);
  nics.forEach((nic, i) => {
    const k = `lxc.net.${i}`;
    lines.push(
      `${k}.type = veth`,
      `${k}.veth.pair = ${tapName(input.host, spec.name, nic)}`,
      `${k}.hwaddr = ${nic.mac.toLowerCase()}`,
      `${k}.name = eth${nic.deviceId}`,
    );
    if (nic.bridge) lines.push(`${k}.link = ${nic.bridge}`, `${k}.flags = up`);
  });
  return `${lines.join('\n')}\n`;
}

/** The container's cgroup directory for one controller, from its init's /proc/<pid>/cgroup. */
export function cgroupDir(
  pid: number,
  controller: 'memory' | 'cpuacct' | 'blkio' | 'cpu',
): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [, controllers, path] = line.split(':');
    if (controllers === undefined || path === undefined) continue;
    if (CGROUP_V1 && controllers.split(',').includes(controller))
      return join('/sys/fs/cgroup', controller, path);
    if (!CGROUP_V1 && controllers === '') return join('/sys/fs/cgroup', path);
  }
  return undefined;
}

const readNumber = (file: string): number => {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
};

function keyed(file: string): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined) out.set(k, Number(v));
    }
  } catch {
    // The container stopped meanwhile: no figures.
  }
  return out;
}

export interface CgroupCounters {
  /** CPU time used since the container started, in nanoseconds. */
  cpuNs: number;
  memoryBytes: number;
  diskReadBytes: number;
  diskWriteBytes: number;
}

/** The container's counters from its cgroups; the path is found from its init's pid. */
export function cgroupCounters(pid: number): CgroupCounters | undefined {
  if (CGROUP_V1) {
    const cpu = cgroupDir(pid, 'cpuacct');
    const mem = cgroupDir(pid, 'memory');
    if (!cpu || !mem) return undefined;
    let read = 0;
    let write = 0;
    const blkio = cgroupDir(pid, 'blkio');
    try {
      if (blkio)
        for (const line of readFileSync(join(blkio, 'blkio.throttle.io_service_bytes'), 'utf8').split('\n')) {
          const [, op, v] = line.trim().split(/\s+/);
          if (op === 'Read') read += Number(v);
          if (op === 'Write') write += Number(v);
        }
    } catch {
      // No blkio accounting here: disk figures stay 0.
    }
    return {
      cpuNs: readNumber(join(cpu, 'cpuacct.usage')),
      memoryBytes: readNumber(join(mem, 'memory.usage_in_bytes')),
      diskReadBytes: read,
      diskWriteBytes: write,
    };
  }
  const dir = cgroupDir(pid, 'memory');
  if (!dir) return undefined;
  let read = 0;
  let write = 0;
  try {
    for (const line of readFileSync(join(dir, 'io.stat'), 'utf8').split('\n'))
      for (const field of line.split(/\s+/).slice(1)) {
        const [k, v] = field.split('=');
        if (k === 'rbytes') read += Number(v);
        if (k === 'wbytes') write += Number(v);
      }
  } catch {
    // No io controller delegated: disk figures stay 0.
  }
  return {
    cpuNs: (keyed(join(dir, 'cpu.stat')).get('usage_usec') ?? 0) * 1000,
    memoryBytes: readNumber(join(dir, 'memory.current')),
    diskReadBytes: read,
    diskWriteBytes: write,
  };
}
