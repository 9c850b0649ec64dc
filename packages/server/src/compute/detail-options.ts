/**
 * listDetailOptions: for each detail key a resource type takes from a fixed set of values, those
 * values, which UIs offer in their settings editors. Upstream lists hypervisor tunables (keyboard
 * layout, NIC and disk controller models, video hardware …); Nimbostack's hosts honour none of
 * them, so instances and templates have no such key: their details are free-form name/value pairs
 * kept with the object (updateVirtualMachine, updateTemplate details).
 */
import { invalidParameter } from '../errors.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { findTaggable, taggableType } from '../tags/tags.ts';

/** The resource types upstream answers for, with the keys Nimbostack has fixed values for (none). */
const OPTIONS: Record<string, Record<string, string[]>> = { UserVm: {}, Template: {} };

export const listDetailOptions = defineCommand({
  name: 'listDetailOptions',
  description:
    'Lists, for an instance or a template, the detail keys that take one of a fixed set of values; Nimbostack has none (details are free-form), so the map is empty.',
  objectName: 'detailoptions',
  params: {
    resourcetype: p.string({ required: true, description: 'UserVm or Template.' }),
    resourceid: p.string({
      description: 'UUID of the instance or template the details are for; checked when given.',
    }),
  },
  async handler(ctx, params) {
    const type = Object.keys(OPTIONS).find((t) => t.toLowerCase() === params.resourcetype.toLowerCase());
    if (!type) throw invalidParameter(`Resource type ${params.resourcetype} is not supported`);
    if (params.resourceid) await findTaggable(ctx, taggableType(type), params.resourceid);
    return { details: OPTIONS[type] };
  },
});
