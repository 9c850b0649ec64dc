/** Settings of the EC2-compatible endpoint. */
import { invalidParameter } from '../errors.ts';
import { defineSetting } from '../settings/settings.ts';

export const EC2_REGION = defineSetting({
  name: 'ec2.region',
  category: 'Advanced',
  type: 'String',
  defaultValue: 'nimbostack',
  description:
    'Region name of the EC2-compatible API (/awsapi): the one region DescribeRegions lists and the region Signature Version 4 requests must be scoped to.',
  validate(value) {
    if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(value))
      throw invalidParameter('ec2.region must be lower-case letters, digits and hyphens');
  },
});
