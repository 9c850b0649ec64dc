/**
 * Site-to-site tunnels between simulated routers: a connection is Connected when a router anywhere
 * in the fleet has its mirror image (addresses and networks crosswise, the same key, a common
 * IKE version and a common proposal, not both passive), as two real strongSwan daemons would
 * agree; otherwise it stays Disconnected, as a real tunnel to a gateway that does not answer.
 */
import type { RouterSiteToSite, RouterSpec, VpnConnectionState } from '@nimbostack/protocol';

const same = (a: string[], b: string[]) => a.length === b.length && a.every((x) => b.includes(x));
const overlap = (a: string, b: string) => a.split(',').some((p) => b.split(',').includes(p));
const versions = (v: RouterSiteToSite['ikeVersion']) => (v === 'ike' ? ['ikev1', 'ikev2'] : [v]);

function mirrors(a: RouterSiteToSite, b: RouterSiteToSite): boolean {
  return (
    a.localIp === b.peerIp &&
    a.peerIp === b.localIp &&
    same(a.localCidrs, b.peerCidrs) &&
    same(a.peerCidrs, b.localCidrs) &&
    a.psk === b.psk &&
    versions(a.ikeVersion).some((v) => versions(b.ikeVersion).includes(v)) &&
    overlap(a.ikePolicy, b.ikePolicy) &&
    overlap(a.espPolicy, b.espPolicy) &&
    !(a.passive && b.passive)
  );
}

export function simulatedVpnStatus(router: RouterSpec, all: Iterable<RouterSpec>): VpnConnectionState[] {
  const others = [...all].filter((r) => r.name !== router.name);
  return (router.vpn?.siteToSite ?? []).map((c) => ({
    id: c.id,
    state: others.some((r) => r.vpn?.siteToSite.some((o) => mirrors(c, o))) ? 'Connected' : 'Disconnected',
  }));
}
