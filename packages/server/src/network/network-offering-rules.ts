/**
 * What a network offering may contain: the services upstream knows, the providers this cloud has
 * (those every physical network lists in listNetworkServiceProviders) and which services each
 * provides, and upstream's rules on combining them with a guest type. createNetworkOffering turns
 * its parameters into the "Service:Provider" list stored on the offering.
 */
import type { NetworkOfferingRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';

/** Upstream's Network.Service names. */
export const SERVICES = [
  'Vpn',
  'Dhcp',
  'Dns',
  'Gateway',
  'Firewall',
  'SourceNat',
  'Lb',
  'StaticNat',
  'PortForwarding',
  'UserData',
  'SecurityGroup',
  'NetworkACL',
  'Connectivity',
] as const;

/** Services the virtual router (namespace router on a KVM host) provides for an isolated network. */
const ROUTER_SERVICES = [
  'Dhcp',
  'Dns',
  'UserData',
  'Gateway',
  'Firewall',
  'Lb',
  'SourceNat',
  'StaticNat',
  'PortForwarding',
  'Vpn',
];

/** Each provider and the services it offers, as upstream's elements declare them. */
export const PROVIDERS: Record<string, string[]> = {
  VirtualRouter: ROUTER_SERVICES,
  VpcVirtualRouter: [...ROUTER_SERVICES.filter((s) => s !== 'Firewall'), 'NetworkACL'],
  InternalLbVm: ['Lb'],
  SecurityGroupProvider: ['SecurityGroup'],
};

/** Services that need a public address, hence an isolated (or VPC) network behind a router. */
const PUBLIC_SERVICES = new Set(['SourceNat', 'StaticNat', 'PortForwarding', 'Firewall', 'Lb', 'Vpn']);

export interface Service {
  name: string;
  provider: string;
}

export function servicesOf(offering: Pick<NetworkOfferingRow, 'services'>): Service[] {
  return offering.services
    .split(',')
    .filter((s) => s !== '')
    .map((s) => {
      const [name, provider] = s.split(':');
      return { name: name as string, provider: provider as string };
    });
}

/** The capabilities upstream shows per service; only these values exist here (no redundancy, no elastic IP). */
const CAPABILITIES: Record<string, [string, string][]> = {
  SourceNat: [
    ['SupportedSourceNatTypes', 'peraccount'],
    ['RedundantRouter', 'false'],
  ],
  Lb: [
    ['SupportedLBIsolation', 'dedicated'],
    ['ElasticLb', 'false'],
    ['InlineMode', 'false'],
  ],
  StaticNat: [
    ['ElasticIp', 'false'],
    ['AssociatePublicIP', 'false'],
  ],
};

/** Every service with the providers offering it and its capabilities (listSupportedNetworkServices). */
export function supportedServices(): {
  name: string;
  providers: string[];
  capabilities: [string, string][];
}[] {
  return SERVICES.map((name) => ({
    name,
    providers: Object.keys(PROVIDERS).filter((p) => PROVIDERS[p]?.includes(name)),
    capabilities: CAPABILITIES[name] ?? [],
  })).filter((s) => s.providers.length > 0);
}

export function presentServices(offering: Pick<NetworkOfferingRow, 'services'>): object[] {
  return servicesOf(offering).map((s) => ({
    name: s.name,
    provider: [{ name: s.provider }],
    capability: CAPABILITIES[s.name]?.map(([name, value]) => ({
      name,
      value,
      canchooseservicecapability: false,
    })),
  }));
}

export function hasServices(
  offering: Pick<NetworkOfferingRow, 'services'>,
  wanted: string[] | undefined,
): boolean {
  if (!wanted?.length) return true;
  const names = new Set(servicesOf(offering).map((s) => s.name.toLowerCase()));
  return wanted.every((w) => names.has(w.toLowerCase()));
}

function canonical<T extends string>(values: readonly T[], value: string): T | undefined {
  return values.find((v) => v.toLowerCase() === value.trim().toLowerCase());
}

export interface OfferingServicesInput {
  guestType: 'Isolated' | 'Shared' | 'L2';
  forVpc: boolean;
  supportedServices: string[];
  /** serviceproviderlist[n].service / .provider */
  serviceProviders: Record<string, string>[];
  /** servicecapabilitylist[n].service / .capabilitytype / .capabilityvalue */
  capabilities: Record<string, string>[];
}

/**
 * Checks the services and providers of a new offering and returns them as "Service:Provider"
 * pairs. Unknown services or providers, a provider that does not offer the service, services a
 * guest type cannot have, and capabilities other than the ones this cloud has are refused (431).
 */
export function resolveOfferingServices(input: OfferingServicesInput): string {
  const services = new Map<string, string | undefined>();
  for (const raw of input.supportedServices) {
    const name = canonical(SERVICES, raw);
    if (!name) throw invalidParameter(`Invalid service ${raw}`);
    services.set(name, undefined);
  }
  for (const entry of input.serviceProviders) {
    const rawService = entry.service ?? '';
    const rawProvider = entry.provider ?? '';
    const name = canonical(SERVICES, rawService);
    if (!name) throw invalidParameter(`Invalid service ${rawService}`);
    if (!services.has(name))
      throw invalidParameter(
        `Cannot add a provider to service ${name}: it is not among the offering's supportedservices`,
      );
    const provider = canonical(Object.keys(PROVIDERS), rawProvider);
    if (!provider) throw invalidParameter(`Invalid service provider: ${rawProvider}`);
    services.set(name, provider);
  }
  // Upstream gives a source-NAT offering the Gateway service of its source NAT provider.
  if (services.has('SourceNat') && !services.has('Gateway'))
    services.set('Gateway', services.get('SourceNat'));
  const pairs: string[] = [];
  for (const [name, given] of services) {
    const provider = given ?? defaultProvider(name, input.forVpc);
    checkServiceFits(name, provider, input);
    if (!PROVIDERS[provider]?.includes(name))
      throw invalidParameter(`Provider ${provider} doesn't support service ${name}`);
    pairs.push(`${name}:${provider}`);
  }
  checkCapabilities(input.capabilities, services);
  return pairs.join(',');
}

function defaultProvider(service: string, forVpc: boolean): string {
  if (service === 'SecurityGroup') return 'SecurityGroupProvider';
  return forVpc ? 'VpcVirtualRouter' : 'VirtualRouter';
}

function checkServiceFits(service: string, provider: string, input: OfferingServicesInput): void {
  if (input.guestType === 'L2')
    throw invalidParameter(`An L2 network offering has no services; ${service} cannot be added`);
  if (PUBLIC_SERVICES.has(service) && input.guestType !== 'Isolated')
    throw invalidParameter(
      `Service ${service} is supported only for network offerings of guest type Isolated`,
    );
  if (service === 'SecurityGroup' && input.guestType !== 'Shared')
    throw invalidParameter(
      'Service SecurityGroup is supported only for network offerings of guest type Shared',
    );
  if (service === 'NetworkACL' && !input.forVpc)
    throw invalidParameter('Service NetworkACL is supported only for VPC network offerings (forvpc=true)');
  if (service === 'Connectivity')
    throw invalidParameter('Service Connectivity needs an SDN provider, and there is none here');
  if (input.forVpc && provider === 'VirtualRouter')
    throw invalidParameter(
      `Provider VirtualRouter cannot serve a VPC network offering; use VpcVirtualRouter`,
    );
  if (!input.forVpc && (provider === 'VpcVirtualRouter' || provider === 'InternalLbVm'))
    throw invalidParameter(`Provider ${provider} serves only VPC network offerings (forvpc=true)`);
}

function checkCapabilities(
  entries: Record<string, string>[],
  services: Map<string, string | undefined>,
): void {
  for (const entry of entries) {
    const service = canonical(SERVICES, entry.service ?? '');
    if (!service || !services.has(service))
      throw invalidParameter(
        `Cannot set a capability of service ${entry.service}: it is not supported by the offering`,
      );
    const known = CAPABILITIES[service]?.find(
      ([n]) => n.toLowerCase() === (entry.capabilitytype ?? '').toLowerCase(),
    );
    if (!known)
      throw invalidParameter(`Capability ${entry.capabilitytype} is not supported for service ${service}`);
    if ((entry.capabilityvalue ?? '').toLowerCase() !== known[1])
      throw invalidParameter(
        `Capability ${known[0]}=${entry.capabilityvalue} of service ${service} is not supported here (only ${known[1]})`,
      );
  }
}
