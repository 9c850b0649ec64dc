/** Response fields of resource tags, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

export const tagResponseFields: ResponseFields = {
  tag: {
    key: 'Key of the tag.',
    value: 'Value of the tag.',
    resourcetype: 'Kind of tagged object, e.g. UserVm, Volume, Template, Network.',
    resourceid: 'UUID of the tagged object.',
    customer: 'Free customer name stored with the tag; left out when none.',
    account: 'Name of the account that owns the tag (the owner of the tagged object).',
    domainid: 'UUID of the domain of the tag’s owner.',
    domain: 'Name of the domain of the tag’s owner.',
  },
};
