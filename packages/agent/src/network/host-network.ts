/**
 * Guest networking of a KVM host (the NetworkDriver): bridges and VXLAN links (bridge.ts),
 * virtual routers in network namespaces (router.ts, router-service.ts) and security groups in
 * nftables (security.ts). The VMs' own filtering is driven by the hypervisor driver, which knows
 * their taps: it applies it when a VM starts or arrives and removes it when the VM goes.
 */
import { join } from 'node:path';
import type { CommandResult, GuestNetwork, ParsedPayload, RouterSpec } from '@nimbostack/protocol';
import { DriverError, type NetworkDriver } from '../drivers/driver.ts';
import { setupBridge, teardownBridge } from './bridge.ts';
import { routerVeth } from './names.ts';
import { Routers } from './router.ts';
import { SecurityFilter } from './security.ts';

export interface HostNetworkOptions {
  /** This host's state directory; routers live in its routers/ folder. */
  hostDir: string;
  /** The management address: the local end of VXLAN tunnels. */
  localAddress: string;
  /** Replaces the filtering of a running VM's NICs (the hypervisor driver knows the taps). */
  applySecurityRules(p: ParsedPayload<'applySecurityRules'>): Promise<void>;
}

export class HostNetwork implements NetworkDriver {
  readonly routers: Routers;
  readonly security = new SecurityFilter();

  /** Which bridges this agent put the gateway address on (see setupBridge). */
  private readonly gatewayMarks: string;

  constructor(private readonly options: HostNetworkOptions) {
    this.routers = new Routers(join(options.hostDir, 'routers'));
    this.gatewayMarks = join(options.hostDir, 'gateways');
  }

  /** After an agent restart: routers keep running and are taken over (dead processes restarted). */
  adopt(): Promise<void> {
    return this.routers.adopt();
  }

  async setupNetwork(network: GuestNetwork): Promise<void> {
    await setupBridge(network, this.options.localAddress, this.gatewayMarks);
  }

  async teardownNetwork(network: GuestNetwork): Promise<void> {
    const router = this.routers.list().find((r) => r.guests.some((g) => g.network.bridge === network.bridge));
    if (router)
      throw new DriverError(
        `bridge ${network.bridge} of network ${network.uuid} still has router ${router.name} (${routerVeth(router.name)}): stop it first`,
      );
    await teardownBridge(network, this.gatewayMarks);
    // Without any filtered NIC left our (empty) tables go too: a host without guests keeps nothing.
    await this.security.dropIfUnused();
  }

  startRouter(router: RouterSpec): Promise<void> {
    return this.routers.start(router);
  }

  stopRouter(name: string): Promise<void> {
    return this.routers.stop(name);
  }

  updateRouter(p: ParsedPayload<'updateRouter'>): Promise<void> {
    return this.routers.update(p);
  }

  routerDigest(p: ParsedPayload<'routerDigest'>): Promise<CommandResult<'routerDigest'>> {
    return this.routers.digest(p);
  }

  applyRouterRules(p: ParsedPayload<'applyRouterRules'>): Promise<CommandResult<'applyRouterRules'>> {
    return this.routers.applyRules(p);
  }

  applyRouterVpn(p: ParsedPayload<'applyRouterVpn'>): Promise<CommandResult<'applyRouterVpn'>> {
    return this.routers.applyVpn(p);
  }

  routerVpnStatus(name: string): Promise<CommandResult<'routerVpnStatus'>> {
    return this.routers.vpnStatus(name);
  }

  applySecurityRules(p: ParsedPayload<'applySecurityRules'>): Promise<void> {
    return this.options.applySecurityRules(p);
  }
}
