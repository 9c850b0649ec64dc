/**
 * Where a webhook may send (server-side request forgery): without this any user could make the
 * management server POST to its own loopback services, to the link-local metadata range
 * (169.254.0.0/16) or to the server's own addresses. Webhooks of accounts other than root admins
 * may not target loopback, link-local or unspecified addresses, nor any address of this management
 * server, unless the address is in webhook.delivery.allowed.private.networks.
 *
 * The rule is checked twice: when the URL is set (createWebhook, updateWebhook: a clear 431), and
 * at every delivery on the addresses the name resolves to then, inside the connection's own DNS
 * look-up, so the address checked is the address connected to (a name may resolve elsewhere later).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { App } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { defineSetting } from '../settings/settings.ts';

export const WEBHOOK_ALLOWED_NETWORKS = defineSetting({
  name: 'webhook.delivery.allowed.private.networks',
  category: 'Advanced',
  type: 'String',
  defaultValue: '',
  description:
    'Comma-separated CIDRs (e.g. 127.0.0.1/32,fd00::/8) that webhooks of any account may target although they are loopback, link-local, unspecified or this management server’s own addresses. Root admins’ webhooks may target them anyway.',
});

/** Loopback, link-local and unspecified ranges, IPv4 and IPv6. */
const INTERNAL = new BlockList();
INTERNAL.addSubnet('127.0.0.0', 8, 'ipv4');
INTERNAL.addSubnet('169.254.0.0', 16, 'ipv4');
INTERNAL.addSubnet('0.0.0.0', 8, 'ipv4');
INTERNAL.addAddress('::1', 'ipv6');
INTERNAL.addAddress('::', 'ipv6');
INTERNAL.addSubnet('fe80::', 10, 'ipv6');

/** An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is judged as the IPv4 address it carries. */
function plain(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1], family: 'ipv4' };
  // The same written in hex, as URL parsing normalises it: ::ffff:7f00:1.
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (hex) {
    const [hi, lo] = [Number.parseInt(hex[1], 16), Number.parseInt(hex[2], 16)];
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 'ipv4' };
  }
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

function allowList(app: App): BlockList {
  const list = new BlockList();
  for (const part of app.settings.get(WEBHOOK_ALLOWED_NETWORKS).split(',')) {
    const [net, bits] = part.trim().split('/');
    const family = isIP(net);
    if (!family) continue;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(net, type);
    else list.addSubnet(net, Number(bits), type);
  }
  return list;
}

/** Why `address` is not a permitted target, or undefined when it is. */
export type TargetGuard = (address: string) => string | undefined;

/** The guard for a webhook owned by (or a test delivery made by) an account of `accountType`. */
export function targetGuard(app: App, accountType: number): TargetGuard | undefined {
  // Account type 1: the root admin, who runs the cloud and may watch it from inside.
  if (accountType === 1) return undefined;
  const allowed = allowList(app);
  return (raw) => {
    const { address, family } = plain(raw);
    if (allowed.check(address, family)) return undefined;
    if (INTERNAL.check(address, family)) {
      if (address === '::' || address.startsWith('0.')) return 'an unspecified address';
      if (family === 'ipv4' ? address.startsWith('127.') : address === '::1') return 'a loopback address';
      return 'a link-local address';
    }
    for (const nics of Object.values(networkInterfaces()))
      for (const nic of nics ?? [])
        if (plain(nic.address).address === address) return 'an address of the management server';
    return undefined;
  };
}

function refusal(host: string, address: string, reason: string): string {
  const via = host === address ? '' : ` resolves to ${address}, which`;
  return `Webhook payload URL host ${host}${via} is ${reason}; webhooks may not target loopback, link-local, unspecified or management server addresses (allowed for root admins and for the networks in webhook.delivery.allowed.private.networks)`;
}

/** The URL's host without IPv6 brackets. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/**
 * At create/update: 431 when the URL's host is, or now resolves to, a refused address. A name that
 * does not resolve yet is accepted; every delivery checks again.
 */
export async function checkTarget(app: App, accountType: number, payloadUrl: string): Promise<void> {
  const guard = targetGuard(app, accountType);
  if (!guard) return;
  const host = hostOf(new URL(payloadUrl));
  const addresses = isIP(host)
    ? [host]
    : await new Promise<string[]>((resolve) =>
        dnsLookup(host, { all: true }, (err, found) => resolve(err ? [] : found.map((a) => a.address))),
      );
  for (const a of addresses) {
    const reason = guard(a);
    if (reason) throw invalidParameter(refusal(host, a, reason));
  }
}

/** Why a delivery to `url` must not connect, for hosts given as addresses (no DNS look-up then). */
export function refuseLiteral(guard: TargetGuard, url: URL): string | undefined {
  const host = hostOf(url);
  if (!isIP(host)) return undefined;
  const reason = guard(host);
  return reason ? refusal(host, host, reason) : undefined;
}

/** A DNS look-up for http.request that fails the connection when any address is refused. */
export function guardedLookup(guard: TargetGuard): LookupFunction {
  return (host, options, callback) => {
    dnsLookup(host, { ...options, all: true }, (err, found: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      for (const a of found) {
        const reason = guard(a.address);
        if (reason) return callback(new Error(refusal(host, a.address, reason)), '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, found);
      callback(null, found[0].address, found[0].family);
    });
  };
}
