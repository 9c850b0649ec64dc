/** VPN records that go with the public address they live on. */
import type { Tx } from '../../db/connection.ts';

/**
 * An address given back (its network or VPC deleted, or it released) takes its remote-access VPN
 * and its VPN gateway with that gateway's connections along; the router is told by whoever
 * applies the network's or VPC's configuration next, or is destroyed with it.
 */
export async function dropVpnsOfIp(tx: Tx, ipId: number): Promise<void> {
  await tx.deleteFrom('remote_access_vpns').where('public_ip_id', '=', ipId).execute();
  const gateways = await tx
    .selectFrom('vpn_gateways')
    .select('id')
    .where('public_ip_id', '=', ipId)
    .execute();
  if (!gateways.length) return;
  const ids = gateways.map((g) => g.id);
  await tx.deleteFrom('vpn_connections').where('vpn_gateway_id', 'in', ids).execute();
  await tx.deleteFrom('vpn_gateways').where('id', 'in', ids).execute();
}
