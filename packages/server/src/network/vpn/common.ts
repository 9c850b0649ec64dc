/** What the VPN commands share: their owned lookups and the limits upstream applies. */
import type { OwnedLookup } from '../../iam/owned.ts';

export const OWNED_REMOTE_ACCESS_VPN: OwnedLookup<'remote_access_vpns'> = { noun: 'remote access VPN' };
export const OWNED_VPN_GATEWAY: OwnedLookup<'vpn_gateways'> = { noun: 'VPN gateway' };
export const OWNED_CUSTOMER_GATEWAY: OwnedLookup<'vpn_customer_gateways'> = { noun: 'VPN customer gateway' };
export const OWNED_VPN_CONNECTION: OwnedLookup<'vpn_connections'> = { noun: 'VPN connection' };

/** IPv4 CIDR overlap (either contains the other's network address). */
export function cidrsOverlap(a: string, b: string): boolean {
  const parse = (c: string) => {
    const [ip, bits] = c.split('/') as [string, string];
    const n = ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
    const size = 2 ** (32 - Number(bits));
    const base = Math.floor(n / size) * size;
    return [base, base + size - 1] as const;
  };
  const [a0, a1] = parse(a);
  const [b0, b1] = parse(b);
  return a0 <= b1 && b0 <= a1;
}
