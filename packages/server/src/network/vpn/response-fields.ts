/** Response fields of the VPN objects, in our words. */
import type { ResponseFields } from '../../registry/response-fields.ts';

const customerGatewayFields = {
  gateway: "The customer gateway's public address (or DNS name).",
  cidrlist: 'Comma-separated CIDRs of the networks behind the customer gateway.',
  ipsecpsk: 'The IPsec pre-shared key the two ends share.',
  ikepolicy: "IKE proposals in upstream's notation, e.g. aes128-sha1;modp1536.",
  esppolicy:
    "ESP proposals in upstream's notation, e.g. aes128-sha1 (a ;group adds perfect forward secrecy).",
  ikelifetime: 'Lifetime of the IKE security association, in seconds.',
  esplifetime: 'Lifetime of the IPsec security association, in seconds.',
  dpd: 'true when dead peer detection restarts the tunnel after the peer stops answering.',
  forceencap: 'true when ESP is always carried in UDP.',
  splitconnections: 'Kept as given: here one IPsec security association carries all the networks.',
  ikeversion: 'IKE version: ike (either), ikev1 or ikev2.',
};

export const vpnResponseFields: ResponseFields = {
  remoteaccessvpn: {
    id: 'UUID of the remote-access VPN.',
    publicipid:
      'UUID of the public address the VPN listens on (the source-NAT address of its network or VPC).',
    publicip: 'The public address clients connect to.',
    iprange: 'The addresses clients get, first-last.',
    presharedkey:
      'The pre-shared key clients authenticate the VPN with (IKEv2 PSK), along with their VPN user.',
    state: "'Running' once the router runs the VPN ('Added' while it is being applied).",
  },
  vpnuser: {
    id: 'UUID of the VPN user.',
    username: 'The name the user authenticates with.',
    state: "'Active' once every remote-access VPN of the account knows the user ('Add' while being applied).",
  },
  vpngateway: {
    id: 'UUID of the VPN gateway.',
    publicip: "The VPC's source-NAT address: the IPsec endpoint of its connections.",
    vpcid: 'UUID of the VPC the gateway belongs to.',
    vpcname: 'Name of the VPC the gateway belongs to.',
  },
  vpncustomergateway: {
    id: 'UUID of the customer gateway.',
    name: 'Name of the customer gateway, unique in its account.',
    ipaddress: "The customer gateway's address (the same as gateway).",
    ...customerGatewayFields,
  },
  vpnconnection: {
    id: 'UUID of the site-to-site connection.',
    s2svpngatewayid: "UUID of the VPC's VPN gateway.",
    s2scustomergatewayid: 'UUID of the customer gateway at the far end.',
    publicip: "The VPN gateway's public address.",
    passive: 'true when the router only answers the peer and never initiates the tunnel.',
    state:
      "The tunnel as the router reports it: 'Connected' (IPsec security association installed), 'Disconnected', 'Error' (the router cannot run it) or 'Pending' (not applied yet).",
    ...customerGatewayFields,
  },
};
