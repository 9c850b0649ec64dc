/**
 * The QEMU command line and device naming of one VM. Device ids, block node names and PCI slots
 * derive from the CloudStack device ids alone, so a migration destination started from the same
 * spec has exactly the device layout of the source, hot-plugged disks included.
 */
import { createHash } from 'node:crypto';
import type { VmSpec } from '@nimbostack/protocol';
import { DriverError } from '../driver.ts';
import type { Accel } from './host-facts.ts';

export type VmDisk = VmSpec['disks'][number];
export type VmNic = VmSpec['nics'][number];

const NIC_SLOT_BASE = 0x03;
const MAX_NICS = 8;
const DISK_SLOT_BASE = NIC_SLOT_BASE + MAX_NICS;
const MAX_DISK_ID = 0x1f - DISK_SLOT_BASE;

export const diskNode = (disk: { deviceId: number }) => `d${disk.deviceId}`;
export const diskDevice = (disk: { deviceId: number }) => `disk${disk.deviceId}`;

const hex = (n: number) => `0x${n.toString(16)}`;

/**
 * The blockdev-add argument of a disk: its format node over a file node (a local file unless the
 * pool gives another, e.g. QEMU's nfs driver).
 */
export function blockdev(
  disk: VmDisk,
  format: string,
  file?: Record<string, unknown>,
): Record<string, unknown> {
  const readOnly = disk.type === 'ISO';
  return {
    driver: format,
    'node-name': diskNode(disk),
    'read-only': readOnly,
    file: file ?? { driver: 'file', filename: disk.path, 'read-only': readOnly },
  };
}

/** The device_add argument of a disk (virtio-blk in a fixed PCI slot; ISOs as IDE CD-ROM). */
export function diskDeviceArgs(disk: VmDisk): Record<string, unknown> {
  if (disk.type === 'ISO')
    return {
      driver: 'ide-cd',
      drive: diskNode(disk),
      id: diskDevice(disk),
      bus: 'ide.1',
      unit: 0,
      bootindex: 2,
    };
  if (disk.deviceId > MAX_DISK_ID)
    throw new DriverError(`disk device id ${disk.deviceId} is beyond the ${MAX_DISK_ID} this driver places`);
  return {
    driver: 'virtio-blk-pci',
    drive: diskNode(disk),
    id: diskDevice(disk),
    bus: 'pci.0',
    addr: hex(DISK_SLOT_BASE + disk.deviceId),
    serial: disk.volumeUuid.replace(/-/g, '').slice(0, 20),
    ...(disk.type === 'ROOT' ? { bootindex: 1 } : {}),
  };
}

/** Tap names are per host and VM, so source and destination of a migration on one machine differ. */
export function tapName(host: string, vm: string, nic: { deviceId: number }): string {
  return `${tapPrefix(host, vm)}${nic.deviceId.toString(16)}`;
}

/** What every tap (and so every firewall chain) of one VM on one host starts with. */
export function tapPrefix(host: string, vm: string): string {
  return `vn${createHash('sha1').update(`${host}/${vm}`).digest('hex').slice(0, 10)}`;
}

export const nicDevice = (nic: { deviceId: number }) => `nic${nic.deviceId}`;
export const nicNetdev = (nic: { deviceId: number }) => `net${nic.deviceId}`;

/**
 * A NIC as QEMU gets it, at start (-netdev/-device) and when hot-plugged (netdev_add/device_add):
 * virtio-net-pci in a fixed slot, and for a NIC on a bridge a tap QEMU creates under `tap`.
 */
export function nicArgs(
  host: string,
  vm: string,
  nic: VmNic,
): { device: Record<string, unknown>; netdev?: { id: string; tap: string } } {
  if (nic.deviceId >= MAX_NICS)
    throw new DriverError(`NIC device id ${nic.deviceId} is beyond ${MAX_NICS - 1}`);
  const device: Record<string, unknown> = {
    driver: 'virtio-net-pci',
    id: nicDevice(nic),
    mac: nic.mac.toLowerCase(),
    bus: 'pci.0',
    addr: hex(NIC_SLOT_BASE + nic.deviceId),
    // No iPXE option ROM: VMs boot from their disks, and the ROM costs a second under TCG.
    romfile: '',
  };
  if (!nic.bridge) return { device };
  device.netdev = nicNetdev(nic);
  return { device, netdev: { id: nicNetdev(nic), tap: tapName(host, vm, nic) } };
}

function commaSafe(value: string): string {
  // QEMU's option syntax escapes a comma by doubling it.
  return value.replace(/,/g, ',,');
}

function keyValues(o: Record<string, unknown>): string {
  return Object.entries(o)
    .map(([k, v]) => (k === 'driver' ? commaSafe(String(v)) : `${k}=${commaSafe(String(v))}`))
    .join(',');
}

export interface LaunchPlan {
  host: string;
  spec: VmSpec;
  dir: string;
  accel: Accel;
  /** Image format of each disk, by device id. */
  formats: Map<number, string>;
  /** The file node of each disk, by device id, when not a local file at its path. */
  files?: Map<number, Record<string, unknown>>;
  /** -object arguments the disks need first (the secret objects of RBD disks' cephx keys). */
  objects?: string[];
  incoming: boolean;
}

export const paths = (dir: string) => ({
  qmp: `${dir}/qmp.sock`,
  console: `${dir}/console.log`,
  pid: `${dir}/qemu.pid`,
  log: `${dir}/qemu.log`,
  record: `${dir}/vm.json`,
});

export function qemuArgs(p: LaunchPlan): string[] {
  const { spec } = p;
  const f = paths(p.dir);
  const memMiB = Math.max(16, Math.ceil(spec.memoryBytes / 1024 ** 2));
  const args = [
    ...['-name', `guest=${commaSafe(spec.name)},debug-threads=on`],
    ...['-uuid', spec.uuid],
    ...['-machine', `pc,accel=${p.accel}`],
    ...['-cpu', p.accel === 'kvm' ? 'host' : 'max'],
    ...['-smp', String(spec.cpus), '-m', String(memMiB)],
    ...['-nodefaults', '-no-user-config', '-vga', 'std', '-display', 'none'],
    // Loopback only: the console proxy reaches it from the host; "to" picks the first free display.
    ...['-vnc', '127.0.0.1:0,to=99'],
    ...['-chardev', `socket,id=monitor,path=${commaSafe(f.qmp)},server=on,wait=off`],
    ...['-mon', 'chardev=monitor,mode=control'],
    ...['-chardev', `file,id=serial0,path=${commaSafe(f.console)}`, '-serial', 'chardev:serial0'],
    ...['-pidfile', f.pid, '-rtc', 'base=utc', '-boot', 'strict=on', '-msg', 'timestamp=on'],
  ];
  const nics = [...spec.nics].sort((a, b) => a.deviceId - b.deviceId);
  for (const nic of nics) {
    const { device, netdev } = nicArgs(p.host, spec.name, nic);
    if (netdev) args.push('-netdev', `tap,id=${netdev.id},ifname=${netdev.tap},script=no,downscript=no`);
    args.push('-device', keyValues(device));
  }
  args.push(...(p.objects ?? []));
  for (const disk of [...spec.disks].sort((a, b) => a.deviceId - b.deviceId)) {
    const format = p.formats.get(disk.deviceId) ?? 'qcow2';
    args.push('-blockdev', JSON.stringify(blockdev(disk, format, p.files?.get(disk.deviceId))));
    args.push('-device', keyValues(diskDeviceArgs(disk)));
  }
  // A migration target starts running by itself once the memory has arrived; a fresh start waits
  // (-S) until the agent has plugged its taps into their bridges.
  args.push(...(p.incoming ? ['-incoming', 'defer'] : ['-S']));
  return args;
}
