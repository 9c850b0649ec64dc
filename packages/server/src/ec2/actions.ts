/** Every EC2 action served at /awsapi, one declaration each (action.ts). */
import type { Ec2Action } from './action.ts';
import { addressActions } from './addresses.ts';
import { createImage, deregisterImage, describeImages, registerImage } from './images.ts';
import {
  describeInstanceStatus,
  getConsoleOutput,
  getPasswordData,
  modifyInstanceAttribute,
} from './instance-status.ts';
import { describeInstanceTypes } from './instance-types.ts';
import { instanceActions } from './instances.ts';
import { keyPairActions } from './key-pairs.ts';
import { describeAvailabilityZones, describeRegions } from './regions.ts';
import { securityGroupActions } from './security-groups.ts';
import { tagActions } from './tags.ts';
import { volumeActions } from './volumes.ts';
import { vpcActions } from './vpcs.ts';

export const ACTIONS: Ec2Action[] = [
  describeRegions,
  describeAvailabilityZones,
  describeImages,
  createImage,
  registerImage,
  deregisterImage,
  describeInstanceTypes,
  ...instanceActions,
  describeInstanceStatus,
  modifyInstanceAttribute,
  getPasswordData,
  getConsoleOutput,
  ...keyPairActions,
  ...tagActions,
  ...securityGroupActions,
  ...volumeActions,
  ...addressActions,
  ...vpcActions,
];
