/** Every EC2 action served at /awsapi, one declaration each (action.ts). */
import type { Ec2Action } from './action.ts';
import { describeAvailabilityZones, describeRegions } from './regions.ts';

export const ACTIONS: Ec2Action[] = [describeRegions, describeAvailabilityZones];
