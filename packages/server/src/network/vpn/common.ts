/** What the VPN commands share: owner fields of their responses and the limits upstream applies. */
import type { App } from '../../context.ts';
import { displayPath } from '../../iam/domains.ts';
import type { OwnedLookup } from '../../iam/owned.ts';

export const OWNED_REMOTE_ACCESS_VPN: OwnedLookup<'remote_access_vpns'> = { noun: 'remote access VPN' };
export const OWNED_VPN_GATEWAY: OwnedLookup<'vpn_gateways'> = { noun: 'VPN gateway' };
export const OWNED_CUSTOMER_GATEWAY: OwnedLookup<'vpn_customer_gateways'> = { noun: 'VPN customer gateway' };
export const OWNED_VPN_CONNECTION: OwnedLookup<'vpn_connections'> = { noun: 'VPN connection' };

export interface OwnerFields {
  account?: string;
  domainid?: string;
  domain?: string;
  domainpath?: string;
}

/** account, domainid, domain and domainpath of each row's owner, read once for all the rows. */
export async function ownerFieldsOf(
  app: App,
  rows: { account_id: number; domain_id: number }[],
): Promise<(row: { account_id: number; domain_id: number }) => OwnerFields> {
  const db = app.store.db;
  const accountIds = [...new Set(rows.map((r) => r.account_id))];
  const domainIds = [...new Set(rows.map((r) => r.domain_id))];
  const [accounts, domains] = await Promise.all([
    accountIds.length
      ? db.selectFrom('accounts').select(['id', 'name']).where('id', 'in', accountIds).execute()
      : [],
    domainIds.length
      ? db.selectFrom('domains').select(['id', 'uuid', 'name', 'path']).where('id', 'in', domainIds).execute()
      : [],
  ]);
  return (row) => {
    const domain = domains.find((d) => d.id === row.domain_id);
    return {
      account: accounts.find((a) => a.id === row.account_id)?.name,
      domainid: domain?.uuid,
      domain: domain?.name,
      domainpath: domain ? displayPath(domain.path) : undefined,
    };
  };
}

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
