/** The EC2 API's table (migration 0030), kept beside the capability; db/schema.ts lists it. */
import type { Generated, Selectable } from 'kysely';

/**
 * A VM launched by RunInstances: the reservation (one RunInstances call) it belongs to and the
 * call's ClientToken, so a retried call with the same token answers the same reservation.
 * VMs made otherwise have no row: each is its own reservation (ids.ts).
 */
export interface Ec2LaunchTable {
  id: Generated<number>;
  vm_uuid: string;
  /** The reservation's EC2 id, r-… */
  reservation: string;
  account_id: number;
  client_token: string | null;
  created: number;
}

export type Ec2LaunchRow = Selectable<Ec2LaunchTable>;
