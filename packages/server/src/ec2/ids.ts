/**
 * EC2-shaped ids for CloudStack objects. The rule: the EC2 prefix of the resource family, a dash,
 * then the object's CloudStack UUID as 32 lower-case hex digits without its dashes
 * (`i-0f1e…` for VM 0f1e….-…). The mapping needs no table, is the same on every management server
 * and is reversible: toUuid puts the dashes back. AWS's own ids are shorter (8 or 17 hex digits);
 * clients treat ids as opaque strings, so the longer form is accepted everywhere we tried.
 */
import { Ec2Error } from './errors.ts';

export const ID_PREFIX = {
  instance: 'i',
  image: 'ami',
  volume: 'vol',
  snapshot: 'snap',
  securityGroup: 'sg',
  keyPair: 'key',
  reservation: 'r',
  address: 'eipalloc',
  association: 'eipassoc',
  subnet: 'subnet',
  vpc: 'vpc',
} as const;

export type IdKind = keyof typeof ID_PREFIX;

/** The EC2 error code family of each kind, for `….Malformed` and `….NotFound`. */
const ERROR_NAME: Record<IdKind, string> = {
  instance: 'InvalidInstanceID',
  image: 'InvalidAMIID',
  volume: 'InvalidVolume',
  snapshot: 'InvalidSnapshot',
  securityGroup: 'InvalidGroup',
  keyPair: 'InvalidKeyPair',
  reservation: 'InvalidReservationID',
  address: 'InvalidAllocationID',
  association: 'InvalidAssociationID',
  subnet: 'InvalidSubnetID',
  vpc: 'InvalidVpcID',
};

export function toEc2Id(kind: IdKind, uuid: string): string {
  return `${ID_PREFIX[kind]}-${uuid.replace(/-/g, '').toLowerCase()}`;
}

/** The UUID behind an EC2 id of the given kind; `….Malformed` when it is not one. */
export function toUuid(kind: IdKind, id: string): string {
  const m = id.match(new RegExp(`^${ID_PREFIX[kind]}-([0-9a-f]{32})$`, 'i'));
  if (!m) throw new Ec2Error(`${ERROR_NAME[kind]}.Malformed`, `Invalid id: "${id}"`);
  const h = m[1].toLowerCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function notFound(kind: IdKind, id: string): Ec2Error {
  const what = kind === 'instance' ? 'instance ID' : `${kind} ID`;
  return new Ec2Error(`${ERROR_NAME[kind]}.NotFound`, `The ${what} '${id}' does not exist`);
}

/** The kind of an EC2 id, by its prefix (for tags, which name resources of any kind). */
export function kindOf(id: string): IdKind | undefined {
  const prefix = id.slice(0, id.indexOf('-'));
  return (Object.keys(ID_PREFIX) as IdKind[]).find((k) => ID_PREFIX[k] === prefix);
}
