/**
 * Images are templates: DescribeImages lists the templates the caller may deploy
 * (listTemplates templatefilter=executable, or =self for Owner self), one image per template
 * whatever the number of zones holding a copy. CreateImage makes a template of a stopped
 * instance's root disk (createTemplate); RegisterImage registers a disk image by URL
 * (registerTemplate, every zone: the download machinery fetches it); DeregisterImage deletes a
 * template (deleteTemplate).
 */
import { HYPERVISOR_FORMATS } from '../storage/images.ts';
import { defineAction, e } from './action.ts';
import { listAll, runCommand, runToCompletion } from './cloudstack.ts';
import { Ec2Error, invalidValue } from './errors.ts';
import { applyFilters, type FilterTable, tagParams } from './filters.ts';
import { notFound, toEc2Id, toUuid } from './ids.ts';
import { instanceState, instancesNamed } from './instances.ts';
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
    const onlySelf = params.Owner?.length === 1 && params.Owner[0] === 'self';
    // The caller's own images also while they download (executable lists ready ones only), so
    // that RegisterImage's image is pending, not unknown, until it is available.
    // tag:Key filters with one exact value are listTemplates' own `tags` (narrowing the read).
    const tags = tagParams(params.Filter);
    const listed = [
      ...(await listAll<Template>(ctx, 'listTemplates', 'template', { templatefilter: 'self', tags })),
      ...(onlySelf
        ? []
        : await listAll<Template>(ctx, 'listTemplates', 'template', { templatefilter: 'executable', tags })),
    ];
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

export const createImage = defineAction({
  name: 'CreateImage',
  description:
    "Makes a private image of a stopped instance's root disk (createTemplate, with the instance's OS type); pending until the job has copied it.",
  params: {
    InstanceId: e.string({ required: true, description: 'The stopped instance (i-…).' }),
    Name: e.string({ required: true, description: 'Name of the image.' }),
    Description: e.string({ description: 'Description of the image; its name when omitted.' }),
    NoReboot: e.boolean({ description: 'Accepted for compatibility: the instance must be stopped already.' }),
  },
  async handler(ctx, params) {
    const [vm] = await instancesNamed(ctx, [params.InstanceId!]);
    if (instanceState(vm).name !== 'stopped')
      throw new Ec2Error(
        'IncorrectInstanceState',
        `The instance '${params.InstanceId}' is not in the 'stopped' state: stop it before making an image.`,
      );
    const [root] = await listAll<{ id: string }>(ctx, 'listVolumes', 'volume', {
      virtualmachineid: vm.id,
      type: 'ROOT',
    });
    const { id } = (await runCommand(ctx, 'createTemplate', {
      name: params.Name,
      displaytext: params.Description ?? params.Name,
      ostypeid: vm.ostypeid,
      volumeid: root.id,
    })) as { id: string };
    return { imageId: toEc2Id('image', id) };
  },
});

/** The image format a URL's file name says (EC2 has no format parameter); QCOW2 otherwise. */
function formatOf(url: string): string {
  const path = url.replace(/[?#].*$/, '').toLowerCase();
  if (/\.(tar|tar\.gz|tgz)$/.test(path)) return 'TAR';
  if (/\.(raw|img)$/.test(path)) return 'RAW';
  if (path.endsWith('.vhdx')) return 'VHDX';
  if (path.endsWith('.vhd')) return 'VHD';
  if (path.endsWith('.ova')) return 'OVA';
  return 'QCOW2';
}

export const registerImage = defineAction({
  name: 'RegisterImage',
  description:
    "Registers the disk image at ImageLocation (an http or https URL) as a private image in every zone (registerTemplate): the format follows the file name (.qcow2, .raw/.img, .tar/.tar.gz, .vhd, .vhdx, .ova; QCOW2 otherwise), the hypervisor is the cloud's first that boots it, the OS type Other Linux (64-bit). The image is pending until the download has finished.",
  params: {
    Name: e.string({ required: true, description: 'Name of the image.' }),
    ImageLocation: e.string({
      description:
        'URL of the disk image; required (images from snapshots are not registered this way here).',
    }),
    Description: e.string({ description: 'Description of the image; its name when omitted.' }),
    Architecture: e.string({ description: 'x86_64 (the only architecture here; the default).' }),
    RootDeviceName: e.string({ description: 'Accepted for compatibility: the root disk is /dev/vda.' }),
    VirtualizationType: e.string({ description: 'hvm (the only type here; the default).' }),
  },
  async handler(ctx, params) {
    const url = params.ImageLocation;
    if (url === undefined)
      throw new Ec2Error(
        'MissingParameter',
        'The request must contain the parameter ImageLocation (images are registered from a URL here).',
      );
    if (params.Architecture !== undefined && params.Architecture !== 'x86_64')
      throw invalidValue('Architecture', params.Architecture, 'Only x86_64 is available.');
    if (params.VirtualizationType !== undefined && params.VirtualizationType !== 'hvm')
      throw invalidValue('VirtualizationType', params.VirtualizationType, 'Only hvm is available.');
    const format = formatOf(url);
    const hypervisors = await listAll<{ name: string }>(ctx, 'listHypervisors', 'hypervisor');
    const hypervisor = hypervisors.find((h) => HYPERVISOR_FORMATS[h.name]?.includes(format));
    if (!hypervisor)
      throw invalidValue('ImageLocation', url, `No hypervisor of this cloud boots ${format} images.`);
    const [os] = await listAll<{ id: string }>(ctx, 'listOsTypes', 'ostype', {
      description: 'Other Linux (64-bit)',
    });
    const body = await runCommand(ctx, 'registerTemplate', {
      name: params.Name,
      displaytext: params.Description ?? params.Name,
      url,
      format,
      hypervisor: hypervisor.name,
      ostypeid: os?.id,
      zoneid: '-1',
    });
    const [template] = body.template as { id: string }[];
    return { imageId: toEc2Id('image', template.id) };
  },
});

export const deregisterImage = defineAction({
  name: 'DeregisterImage',
  description:
    "Deletes an image the caller owns (deleteTemplate, every zone's copy); refused while instances use it, as CloudStack refuses.",
  params: { ImageId: e.string({ required: true, description: 'The image (ami-…).' }) },
  async handler(ctx, params) {
    const uuid = toUuid('image', params.ImageId!);
    const mine = await listAll<Template>(ctx, 'listTemplates', 'template', { templatefilter: 'self' });
    if (!mine.some((t) => t.id === uuid)) {
      const visible = await listAll<Template>(ctx, 'listTemplates', 'template', {
        templatefilter: 'executable',
      });
      if (!visible.some((t) => t.id === uuid)) throw notFound('image', params.ImageId!);
      throw new Ec2Error('UnauthorizedOperation', `You do not own the image '${params.ImageId}'.`, 403);
    }
    await runToCompletion(ctx, 'deleteTemplate', { id: uuid });
    return { return: true };
  },
});
