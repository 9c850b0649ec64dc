/**
 * A VM's NICs on the host side: its taps joined to their bridges (at start and when a NIC is
 * hot-plugged), and NIC hot-plug and unplug over QMP. A start and a hot-plug give a NIC the same
 * device, slot, tap and filtering (machine.ts names them all from the device id), so a migration
 * destination started from the spec has the hot-plugged NICs exactly where the source had them.
 */
import { existsSync } from 'node:fs';
import type { NicFilter, SecurityFilter } from '../../network/security.ts';
import { DriverError } from '../driver.ts';
import { run } from './exec.ts';
import { nicArgs, nicDevice, type VmNic } from './machine.ts';
import type { Qmp } from './qmp.ts';

export const bridgeExists = (bridge: string) => existsSync(`/sys/class/net/${bridge}/bridge`);

/** Puts a tap QEMU created into its bridge and brings it up: only then does it forward. */
export async function joinBridge(tap: string, bridge: string): Promise<void> {
  await run('ip', ['link', 'set', tap, 'master', bridge]);
  await run('ip', ['link', 'set', tap, 'up']);
}

/** A tap QEMU did not take along (it normally goes with its netdev). */
async function removeTap(tap: string): Promise<void> {
  if (existsSync(`/sys/class/net/${tap}`)) await run('ip', ['link', 'del', tap]).catch(() => undefined);
}

/** QEMU already has what was asked for: a retried command after a crash between two steps. */
const duplicate = (err: unknown) => /duplicate|already/i.test((err as Error).message);
const notFound = (err: unknown) => /not found/i.test((err as Error).message);

export interface NicPlugTarget {
  qmp: Qmp;
  /** The host and VM names the tap name is derived from. */
  host: string;
  vm: string;
  security: SecurityFilter;
}

/**
 * Hot-plugs `nic`: QEMU creates its tap (netdev_add), the tap joins the bridge, the NIC's
 * filtering is installed, and only then does the guest see the device (device_add), so it never
 * has a moment on the network unfiltered. A failure undoes the steps before it.
 */
export async function hotplugNic(t: NicPlugTarget, nic: VmNic, filters: NicFilter[]): Promise<void> {
  const { device, netdev } = nicArgs(t.host, t.vm, nic);
  if (nic.bridge && !bridgeExists(nic.bridge))
    throw new DriverError(`bridge ${nic.bridge} for ${t.vm} does not exist on ${t.host}`);
  if (netdev)
    await t.qmp
      .execute('netdev_add', {
        type: 'tap',
        id: netdev.id,
        ifname: netdev.tap,
        script: 'no',
        downscript: 'no',
      })
      .catch((err) => {
        if (!duplicate(err))
          throw new DriverError(`creating the tap of NIC ${nic.mac} failed: ${err.message}`);
      });
  try {
    if (netdev) await joinBridge(netdev.tap, nic.bridge!);
    await t.security.apply(filters);
    await t.qmp.execute('device_add', device).catch((err) => {
      if (!duplicate(err)) throw err;
    });
  } catch (err) {
    if (netdev) {
      await t.qmp.execute('netdev_del', { id: netdev.id }).catch(() => undefined);
      await removeTap(netdev.tap);
      await t.security.remove(`${netdev.tap}_`).catch(() => undefined);
    }
    throw new DriverError(`plugging NIC ${nic.mac} into ${t.vm} failed: ${(err as Error).message}`);
  }
}

/**
 * Hot-unplugs `nic`: the guest must release the device (ACPI PCI hot-plug) before QEMU deletes it;
 * then its netdev (which takes the tap along), any tap left, and its filtering go.
 */
export async function hotunplugNic(t: NicPlugTarget, nic: VmNic): Promise<void> {
  const { netdev } = nicArgs(t.host, t.vm, nic);
  const id = nicDevice(nic);
  const deleted = t.qmp.waitForEvent('DEVICE_DELETED', 30_000, (e) => e.data?.device === id);
  try {
    await t.qmp.execute('device_del', { id });
    await deleted;
  } catch (err) {
    deleted.catch(() => undefined);
    if (!notFound(err))
      throw new DriverError(`the guest in ${t.vm} did not release NIC ${nic.mac}: ${(err as Error).message}`);
  }
  if (!netdev) return;
  await t.qmp.execute('netdev_del', { id: netdev.id }).catch((err) => {
    if (!notFound(err)) throw new DriverError(`removing the tap of NIC ${nic.mac} failed: ${err.message}`);
  });
  await removeTap(netdev.tap);
  await t.security.remove(`${netdev.tap}_`);
}
