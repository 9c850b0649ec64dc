/**
 * A guest network on one host: a Linux bridge (the gateway address on it when the host routes for
 * the network) and, for a network spanning hosts, a VXLAN link enslaved to it. The VXLAN link
 * floods broadcast and unknown unicast to every peer host (head-end replication: one all-zero FDB
 * entry per peer) and learns where remote MACs live from what it receives, so known unicast goes
 * to the one host that has the MAC. Every step checks what exists first: setup repeats safely and
 * brings the peers up to date.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GuestNetwork } from '@nimbostack/protocol';
import { DriverError } from '../drivers/driver.ts';
import { run } from '../drivers/kvm/exec.ts';
import { prefixOf, vxlanName } from './names.ts';

export const VXLAN_PORT = 4789;
const ZERO_MAC = '00:00:00:00:00:00';

const linkExists = (name: string) => existsSync(`/sys/class/net/${name}`);
const isBridge = (name: string) => existsSync(`/sys/class/net/${name}/bridge`);

/** The interfaces plugged into a bridge. */
export function bridgePorts(bridge: string): string[] {
  const dir = `/sys/class/net/${bridge}/brif`;
  return existsSync(dir) ? readdirSync(dir) : [];
}

/**
 * Security groups filter with conntrack in the inet family, which sees bridged IPv4 only through
 * br_netfilter: bridge-nf-call-iptables must be 1 (the kernel default, set here deliberately so a
 * host tuned otherwise does not silently bypass the rules). This kernel has no conntrack in the
 * bridge family itself (CONFIG_NF_CONNTRACK_BRIDGE), so there is no other way to let answers in.
 */
export function ensureBridgeNetfilter(): void {
  const knob = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  if (!existsSync(knob))
    throw new DriverError(
      'br_netfilter is not available on this host (no /proc/sys/net/bridge): load the br_netfilter module',
    );
  if (readFileSync(knob, 'utf8').trim() !== '1') writeFileSync(knob, '1');
}

/**
 * Sets the bridge up. `marks` is a folder of this agent's own: a file per bridge on which it put
 * the gateway address, so that it only ever removes an address it added (another agent on the
 * same machine, as in tests, or an operator may have put one there).
 */
export async function setupBridge(network: GuestNetwork, localAddress: string, marks: string): Promise<void> {
  const { bridge } = network;
  if (linkExists(bridge) && !isBridge(bridge))
    throw new DriverError(`${bridge} exists on this host and is not a bridge`);
  ensureBridgeNetfilter();
  if (!linkExists(bridge)) {
    // forward_delay 0: a port (a VM's tap) forwards at once, so a guest's first DHCP request is not lost.
    await run('ip', ['link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']).catch(
      (err) => {
        if (!isBridge(bridge)) throw err; // Lost a race with a concurrent setup: fine.
      },
    );
  }
  const address = `${network.gateway}/${prefixOf(network.cidr)}`;
  const present = await bridgeAddresses(bridge);
  const mark = join(marks, bridge);
  if (network.gatewayOnHost) {
    if (!present.includes(address)) await run('ip', ['addr', 'replace', address, 'dev', bridge]);
    // This host routes for the network now: the address is ours to take away when that ends.
    mkdirSync(marks, { recursive: true });
    writeFileSync(mark, `${address}\n`);
  } else if (existsSync(mark)) {
    // The router left this host: the gateway we put here goes, so only its new host answers for it.
    if (present.includes(address)) await run('ip', ['addr', 'del', address, 'dev', bridge]);
    rmSync(mark, { force: true });
  }
  if (network.vni !== undefined) await setupVxlan(network, localAddress);
  await run('ip', ['link', 'set', bridge, 'up']);
}

async function bridgeAddresses(bridge: string): Promise<string[]> {
  const out = JSON.parse(await run('ip', ['-j', 'addr', 'show', 'dev', bridge])) as {
    addr_info?: { family: string; local: string; prefixlen: number }[];
  }[];
  return (out[0]?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
}

async function setupVxlan(network: GuestNetwork, localAddress: string): Promise<void> {
  const vx = vxlanName(network.vni!);
  if (linkExists(vx)) {
    const [info] = JSON.parse(await run('ip', ['-j', '-d', 'link', 'show', 'dev', vx])) as {
      linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number } };
    }[];
    const d = info?.linkinfo?.info_data;
    // A link left by another configuration (other local address after a re-addressing) is rebuilt.
    if (
      info?.linkinfo?.info_kind !== 'vxlan' ||
      d?.id !== network.vni ||
      d?.local !== localAddress ||
      d?.port !== VXLAN_PORT
    )
      await run('ip', ['link', 'del', vx]);
  }
  if (!linkExists(vx))
    await run('ip', [
      ...['link', 'add', vx, 'type', 'vxlan', 'id', String(network.vni), 'dstport', String(VXLAN_PORT)],
      ...['local', localAddress],
    ]);
  await run('ip', ['link', 'set', vx, 'master', network.bridge]);
  await run('ip', ['link', 'set', vx, 'up']);
  const wanted = new Set(network.peers.filter((p) => p !== localAddress));
  const entries = JSON.parse(await run('bridge', ['-j', 'fdb', 'show', 'dev', vx])) as {
    mac: string;
    dst?: string;
  }[];
  const current = new Set(entries.filter((e) => e.mac === ZERO_MAC && e.dst).map((e) => e.dst!));
  for (const peer of wanted)
    if (!current.has(peer)) await run('bridge', ['fdb', 'append', ZERO_MAC, 'dev', vx, 'dst', peer]);
  for (const peer of current)
    if (!wanted.has(peer)) await run('bridge', ['fdb', 'del', ZERO_MAC, 'dev', vx, 'dst', peer]);
}

/** Removes the bridge and its VXLAN link; refused while anything else is plugged into it. */
export async function teardownBridge(network: GuestNetwork, marks: string): Promise<void> {
  const { bridge } = network;
  const vx = network.vni !== undefined ? vxlanName(network.vni) : undefined;
  if (linkExists(bridge) && isBridge(bridge)) {
    const others = bridgePorts(bridge).filter((p) => p !== vx);
    if (others.length) {
      const vms = others.filter((p) => p.startsWith('vn'));
      const routers = others.filter((p) => p.startsWith('vr'));
      const what = [
        vms.length ? `VM NICs (${vms.join(', ')})` : '',
        routers.length ? `a router (${routers.join(', ')}; stop it first)` : '',
        others.length > vms.length + routers.length ? `other interfaces (${others.join(', ')})` : '',
      ].filter(Boolean);
      throw new DriverError(`bridge ${bridge} of network ${network.uuid} still has ${what.join(' and ')}`);
    }
  }
  // Another agent on the same machine (the tests run two) may remove the shared links between the
  // check and the delete: a link that is gone afterwards is torn down, as the command promises.
  const del = (link: string) =>
    run('ip', ['link', 'del', link]).catch((err) => {
      if (linkExists(link)) throw err;
    });
  if (vx && linkExists(vx)) await del(vx);
  if (linkExists(bridge) && isBridge(bridge)) await del(bridge);
  rmSync(join(marks, bridge), { force: true });
}
