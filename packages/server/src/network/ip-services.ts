/**
 * Public IP addresses and the rules that hang off them: public-ip-commands.ts (associate,
 * disassociate, update, list), firewall-rules.ts (ingress and egress), port-forwarding.ts and
 * static-nat.ts (static NAT and IP forwarding rules). A Basic zone has none of these — guests sit
 * on the pod's subnet and security groups filter — so there the lists answer empty, with their
 * scoping and references checked, because clients call them (libcloud's list_nodes needs three).
 */
import { firewallCommands } from './firewall-rules.ts';
import { portForwardingCommands } from './port-forwarding.ts';
import { publicIpCommands } from './public-ip-commands.ts';
import { staticNatCommands } from './static-nat.ts';

export const ipServiceCommands = [
  ...publicIpCommands,
  ...portForwardingCommands,
  ...staticNatCommands,
  ...firewallCommands,
];
