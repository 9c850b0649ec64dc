/** Remote-access and site-to-site VPNs (issue 16): their commands, in one list for the registry. */
import { connectionCommands } from './connections.ts';
import { customerGatewayCommands } from './customer-gateways.ts';
import { vpnGatewayCommands } from './gateways.ts';
import { remoteAccessVpnCommands } from './remote-access.ts';
import { vpnUserCommands } from './vpn-users.ts';

export const vpnCommands = [
  ...remoteAccessVpnCommands,
  ...vpnUserCommands,
  ...vpnGatewayCommands,
  ...customerGatewayCommands,
  ...connectionCommands,
];
export { vpnResponseFields } from './response-fields.ts';
