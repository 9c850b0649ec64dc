/**
 * Images are templates: DescribeImages lists the templates the caller may deploy
 * (listTemplates templatefilter=executable, or =self for Owner self), one image per template
 * whatever the number of zones holding a copy.
 */
import { defineAction, e } from './action.ts';
import { listAll } from './cloudstack.ts';
import { applyFilters, type FilterTable } from './filters.ts';
import { notFound, toEc2Id, toUuid } from './ids.ts';
import { isoTime, tagSet, tagsOf } from './present.ts';
import { itemSet } from './xml.ts';

interface Template {
  id: string;
  name: string;
  displaytext?: string;
  account?: string;
  isready?: boolean;
  ispublic?: boolean;
  created?: string;
  hypervisor?: string;
  status?: string;
  ostypename?: string;
  tags?: { key: string; value: string }[];
}

const state = (t: Template) =>
  t.isready ? 'available' : /error|fail/i.test(t.status ?? '') ? 'failed' : 'pending';

const FILTERS: FilterTable<Template> = {
  'image-id': (t) => [toEc2Id('image', t.id)],
  name: (t) => [t.name],
  description: (t) => [t.displaytext],
  state: (t) => [state(t)],
  'owner-id': (t) => [t.account],
  'is-public': (t) => [String(t.ispublic ?? false)],
  architecture: () => ['x86_64'],
  'image-type': () => ['machine'],
  hypervisor: (t) => [t.hypervisor?.toLowerCase()],
};

export const describeImages = defineAction({
  name: 'DescribeImages',
  description:
    "Lists the templates the caller may deploy as images (ami-…). Owner self lists only the caller's own templates; another owner value is matched against the owning account's name.",
  params: {
    ImageId: e.list({
      description: 'Images to list; an unknown or invisible one is an InvalidAMIID.NotFound error.',
    }),
    Owner: e.list({ description: "Owners: self (the caller's account) or an account name." }),
    ExecutableBy: e.list({
      description: 'Accepted for compatibility: every image listed is one the caller may deploy.',
    }),
    Filter: e.filters({
      description:
        'Filters: image-id, name, description, state, owner-id, is-public, architecture, image-type, hypervisor, tag:Key, tag-key, tag-value.',
    }),
    IncludeDeprecated: e.boolean({
      description: 'Accepted for compatibility; templates are never deprecated.',
    }),
  },
  async handler(ctx, params) {
    const self = params.Owner?.includes('self') ?? false;
    const listed = await listAll<Template>(ctx, 'listTemplates', 'template', {
      templatefilter: self && params.Owner!.length === 1 ? 'self' : 'executable',
    });
    const byId = new Map<string, Template>();
    for (const t of listed) if (!byId.has(t.id)) byId.set(t.id, t);
    let images = [...byId.values()];
    if (params.ImageId) {
      const wanted = params.ImageId.map((id) => ({ id, uuid: toUuid('image', id) }));
      for (const w of wanted) if (!byId.has(w.uuid)) throw notFound('image', w.id);
      images = wanted.map((w) => byId.get(w.uuid)!);
    }
    if (params.Owner) {
      const owners = params.Owner.map((o) => (o === 'self' ? ctx.caller.account.name : o));
      images = images.filter((t) => t.account !== undefined && owners.includes(t.account));
    }
    images = applyFilters(images, params.Filter, FILTERS, tagsOf);
    return {
      imagesSet: itemSet(
        images.map((t) => ({
          imageId: toEc2Id('image', t.id),
          imageLocation: `${t.account ?? ''}/${t.name}`,
          imageState: state(t),
          imageOwnerId: t.account,
          creationDate: isoTime(t.created),
          isPublic: t.ispublic ?? false,
          architecture: 'x86_64',
          imageType: 'machine',
          platformDetails: t.ostypename,
          name: t.name,
          description: t.displaytext,
          rootDeviceType: 'ebs',
          rootDeviceName: '/dev/vda',
          blockDeviceMapping: '',
          virtualizationType: 'hvm',
          hypervisor: t.hypervisor?.toLowerCase(),
          tagSet: tagSet(tagsOf(t)),
        })),
      ),
    };
  },
});
