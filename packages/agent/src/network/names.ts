/**
 * Names and address arithmetic of host networking. Interface names are at most 15 characters,
 * so names derived from long CloudStack names are hashed; state directories use the names as
 * given, which must therefore be safe as file names.
 */
import { createHash } from 'node:crypto';
import { DriverError } from '../drivers/driver.ts';

const SAFE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;

export function safeName(kind: string, name: string): string {
  if (!SAFE.test(name)) throw new DriverError(`invalid ${kind} name ${JSON.stringify(name)}`);
  return name;
}

const hash = (s: string, n: number) => createHash('sha1').update(s).digest('hex').slice(0, n);

/** The router's network namespace (namespace names are not limited to 15 characters). */
export const routerNetns = (router: string) => `nimbo-r-${hash(router, 12)}`;
/** The host end of the router's veth pair, plugged into the network's bridge. */
export const routerVeth = (router: string) => `vr${hash(router, 10)}h`;
/** Its peer, created under this name and renamed eth0 inside the namespace. */
export const routerVethPeer = (router: string) => `vr${hash(router, 10)}n`;
/** The host end of the router's public veth pair (isolated networks), in the public bridge. */
export const routerPublicVeth = (router: string) => `vr${hash(router, 10)}p`;
/** Its peer, created under this name and renamed eth1 inside the namespace. */
export const routerPublicVethPeer = (router: string) => `vr${hash(router, 10)}q`;
/**
 * A router's further guest interfaces (VPC tiers after the first): the host end of the veth pair
 * in the tier's bridge, and its peer, renamed inside the namespace after the bridge.
 */
export const routerTierVeth = (router: string, bridge: string) => `vt${hash(`${router}/${bridge}`, 11)}h`;
export const routerTierVethPeer = (router: string, bridge: string) => `vt${hash(`${router}/${bridge}`, 11)}n`;
export const vxlanName = (vni: number) => `vx${vni}`;

export function prefixOf(cidr: string): number {
  const prefix = Number(cidr.split('/')[1]);
  if (!Number.isInteger(prefix) || prefix < 1 || prefix > 32) throw new DriverError(`invalid CIDR ${cidr}`);
  return prefix;
}

const toInt = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const toIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

export function netmaskOf(cidr: string): string {
  const prefix = prefixOf(cidr);
  return toIp(2 ** 32 - 2 ** (32 - prefix));
}

export function networkAddressOf(cidr: string): string {
  const prefix = prefixOf(cidr);
  const size = 2 ** (32 - prefix);
  return toIp(Math.floor(toInt(cidr.split('/')[0]) / size) * size);
}

export function validIpv4(ip: string): boolean {
  const parts = ip.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}
