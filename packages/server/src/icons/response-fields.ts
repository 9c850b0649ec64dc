/** Response fields of resource icons, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

export const iconResponseFields: ResponseFields = {
  resourceicon: {
    resourcetype: 'Type of the resource the icon belongs to, e.g. UserVm or Zone.',
    resourceid: 'UUID of the resource the icon belongs to.',
    base64image: 'The icon image, base64-encoded as it was uploaded.',
  },
};
