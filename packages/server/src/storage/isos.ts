/** The ISO commands: the template service (templates.ts) with ISO rules. */
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { defineCommand, type JobTarget, listResult } from '../registry/command.ts';
import { listParams, p } from '../registry/params.ts';
import { parseChecksum } from './images.ts';
import {
  checkImageOwner,
  checkPublicFlags,
  checkUrl,
  copyImage,
  createImage,
  deleteImage,
  extractImage,
  findAdministeredImage,
  findImage,
  findOsType,
  ISO,
  listImages,
  listPermissions,
  presentTemplates,
  resolveOwner,
  resolveZones,
  updateImage,
  updatePermissions,
  zoneOrAll,
} from './templates.ts';

/** Non-bootable ISOs (driver discs, data) need no guest OS; they are recorded as "Other". */
const DEFAULT_ISO_OS = 'Other (64-bit)';

async function ownedTarget(ctx: CallContext, id: string): Promise<JobTarget> {
  const t = await findImage(ctx, ISO, id);
  await checkImageOwner(ctx, t);
  return { type: 'Iso', id: t.uuid };
}

export const registerIso = defineCommand({
  name: 'registerIso',
  description:
    'Registers an ISO image by URL in one zone or all and starts downloading it to secondary storage; the entries show download progress.',
  params: {
    name: p.string({ required: true, description: 'Name of the ISO (not empty).' }),
    displaytext: p.string({
      length: 4096,
      description: 'Description shown for the ISO; defaults to its name.',
    }),
    url: p.string({
      required: true,
      length: 2048,
      description:
        'Where to fetch the ISO: http:// or https://; root admins may also give file:///path on the management server.',
    }),
    zoneid: zoneOrAll({
      required: true,
      description: 'UUID of the zone to register in, or -1 for every zone with secondary storage.',
    }),
    bootable: p.boolean({
      description: 'Whether VMs can boot from it (then ostypeid is required); default true.',
    }),
    ostypeid: p.uuid({
      description: 'UUID of the guest OS type; a non-bootable ISO without one is recorded as Other (64-bit).',
    }),
    checksum: p.string({
      description:
        'Expected checksum, checked after download: {SHA-256}<hex>, {SHA-512}<hex>, {SHA-1}<hex>, {MD5}<hex> or a bare MD5.',
    }),
    ispublic: p.boolean({
      description:
        'When true, every account may use it; users need allow.public.user.templates. Default false.',
    }),
    isfeatured: p.boolean({
      description: 'When true, it is listed as featured; root admins only. Default false.',
    }),
    isextractable: p.boolean({
      description: 'When true, its owner may download it with extractIso; default false.',
    }),
    passwordenabled: p.boolean({
      description: 'When true, VMs booted from it get a generated password; default false.',
    }),
    isdynamicallyscalable: p.boolean({
      description: 'Recorded on the ISO; Nimbostack does not scale running VMs. Default false.',
    }),
    directdownload: p.boolean({
      description: 'Refused when true: Nimbostack always keeps ISOs on secondary storage.',
    }),
    account: p.string({
      description:
        "Name of the account to register for (admins and domain admins); defaults to the caller's.",
    }),
    domainid: p.uuid({
      description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
    }),

    projectid: p.uuid({
      description: 'Project to own the ISO (you must be a member, it must be Active); not with account.',
    }),
  },
  async handler(ctx, params) {
    const name = params.name.trim();
    if (name === '') throw invalidParameter('ISO name must not be empty');
    if (params.directdownload)
      throw invalidParameter('Direct download is not supported: ISOs are always kept on secondary storage');
    const bootable = params.bootable ?? true;
    if (bootable && !params.ostypeid) throw invalidParameter('Please specify ostypeid for a bootable ISO');
    let os: { id: number; bits: number };
    if (params.ostypeid) os = await findOsType(ctx, params.ostypeid);
    else
      os = await ctx.app.store.db
        .selectFrom('os_types')
        .select(['id', 'bits'])
        .where('description', '=', DEFAULT_ISO_OS)
        .executeTakeFirstOrThrow();
    const checksum = params.checksum?.trim() ? parseChecksum(params.checksum).label : null;
    const url = checkUrl(ctx, params.url);
    const zones = await resolveZones(ctx, params.zoneid, undefined);
    checkPublicFlags(ctx, params.ispublic, params.isfeatured);
    const owner = await resolveOwner(ctx, params);
    const iso = await createImage(ctx.app, {
      kind: ISO,
      name,
      displayText: params.displaytext?.trim() || name,
      url,
      format: 'ISO',
      hypervisor: null,
      osTypeId: os.id,
      bits: os.bits,
      zones,
      checksum,
      isPublic: params.ispublic ?? false,
      isFeatured: params.isfeatured ?? false,
      isExtractable: params.isextractable ?? false,
      passwordEnabled: params.passwordenabled ?? false,
      sshKeyEnabled: false,
      dynamicallyScalable: params.isdynamicallyscalable ?? false,
      requiresHvm: true,
      bootable,
      details: null,
      templateTag: null,
      type: 'USER',
      owner,
    });
    const items = await presentTemplates(ctx, [iso]);
    return listResult(items, items.length);
  },
});

export const listIsos = defineCommand({
  name: 'listIsos',
  description:
    "Lists ISOs by availability filter, one entry per ISO and zone; without isofilter, the caller's own ready ISOs.",
  params: {
    ...listParams,
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    account: p.string({
      description: "Only ISOs of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only ISOs of accounts in this domain (and below with isrecursive); ignored for users.',
    }),
    listall: p.boolean({
      description: 'For admins and domain admins: consider the ISOs of every account they may see.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include subdomains.' }),
    projectid: p.projectScope({
      description:
        "Only this project's ISOs (you must be a member or administer it); -1: those of every project you may see.",
    }),
    isofilter: p.string({
      description:
        'Which ISOs: featured, community, self, selfexecutable (default), sharedexecutable, executable, or all (admins).',
    }),
    id: p.uuid({ description: 'Only the ISO with this UUID.' }),
    name: p.string({ description: 'Only ISOs with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only copies of ISOs in this zone.' }),
    bootable: p.boolean({ description: 'Only bootable (true) or non-bootable (false) ISOs.' }),
    ispublic: p.boolean({ description: 'Only public (true) or private (false) ISOs.' }),
    isready: p.boolean({
      description: 'true: only copies fully downloaded; false: only copies not ready yet.',
    }),
    tags: p.map({ description: 'Only ISOs carrying all these tags (tags[0].key=..., tags[0].value=...).' }),
    showremoved: p.boolean({ description: 'For admins: also show deleted ISOs.' }),
  },
  // Upstream lists the caller's own ISOs when no filter is given.
  handler: (ctx, params) => listImages(ctx, ISO, { ...params, filter: params.isofilter ?? 'selfexecutable' }),
});

export const updateIso = defineCommand({
  name: 'updateIso',
  description:
    "Changes an ISO's name, description, OS type, flags or details; its owner or an administrator over it may do so.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the ISO.' }),
    name: p.string({ description: 'New name (not empty).' }),
    displaytext: p.string({ length: 4096, description: 'New description.' }),
    ostypeid: p.uuid({ description: 'UUID of the new guest OS type.' }),
    bootable: p.boolean({ description: 'Whether VMs can boot from it.' }),
    passwordenabled: p.boolean({ description: 'Whether VMs booted from it get a generated password.' }),
    sshkeyenabled: p.boolean({ description: 'Whether the image accepts SSH keys.' }),
    isdynamicallyscalable: p.boolean({
      description: 'Recorded flag; Nimbostack does not scale running VMs.',
    }),
    requireshvm: p.boolean({ description: 'Recorded flag: whether VMs need hardware virtualisation.' }),
    details: p.map({
      description: 'Details to add or overwrite, as details[0].<name>=<value>; others are kept.',
    }),
    cleanupdetails: p.boolean({
      description: 'When true, all details are removed (details is then ignored).',
    }),
  },
  handler: (ctx, params) => updateImage(ctx, ISO, params),
});

export const updateIsoPermissions = defineCommand({
  name: 'updateIsoPermissions',
  description:
    'Shares an ISO with named accounts of its domain, or changes its public, featured or extractable flags.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the ISO.' }),
    accounts: p.list({
      description: "Comma-separated names of accounts in the ISO's domain, for op add or remove.",
    }),
    projectids: p.list({
      of: 'uuid',
      description: "Projects of the ISO's domain to share it with (or stop sharing), for op add or remove.",
    }),
    op: p.string({
      description: 'add or remove (with accounts), or reset to unshare it from every account.',
    }),
    ispublic: p.boolean({
      description: 'Make it usable by all accounts, or not; users need allow.public.user.templates.',
    }),
    isfeatured: p.boolean({ description: 'Root admins only: list it as featured, or not.' }),
    isextractable: p.boolean({ description: 'Whether its owner may download it with extractIso.' }),
  },
  handler: (ctx, params) => updatePermissions(ctx, ISO, params),
});

export const listIsoPermissions = defineCommand({
  name: 'listIsoPermissions',
  description: 'Shows whether an ISO is public and which accounts it is shared with.',
  params: { id: p.uuid({ required: true, description: 'UUID of the ISO.' }) },
  handler: (ctx, params) => listPermissions(ctx, ISO, params.id),
});

export const copyIso = defineCommand({
  name: 'copyIso',
  description:
    "Copies a ready ISO from one zone's secondary storage to other zones. Asynchronous; the job ends when every copy is done.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the ISO to copy.' }),
    sourcezoneid: p.uuid({ description: 'Zone to copy from; defaults to any zone where the ISO is ready.' }),
    destzoneid: p.uuid({ description: 'UUID of a zone to copy to.' }),
    destzoneids: p.list({
      of: 'uuid',
      description: 'UUIDs of several zones to copy to; may be combined with destzoneid.',
    }),
  },
  event: { type: 'ISO.COPY', description: (params) => `copying ISO ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => copyImage(ctx, ISO, params),
});

export const deleteIso = defineCommand({
  name: 'deleteIso',
  description:
    "Deletes an ISO's copies in one zone or everywhere; once none is left the ISO is removed. Asynchronous; refused while a VM has it attached.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the ISO.' }),
    zoneid: p.uuid({ description: 'Only delete the copy in this zone; all zones when omitted.' }),
  },
  event: { type: 'ISO.DELETE', description: (params) => `deleting ISO ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => deleteImage(ctx, ISO, params),
});

export const extractIso = defineCommand({
  name: 'extractIso',
  description:
    'Creates a temporary download link for a ready ISO. Asynchronous; users may do it only for extractable ISOs; the link expires after extract.url.expiration.interval.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the ISO.' }),
    mode: p.string({ required: true, description: 'Only HTTP_DOWNLOAD is supported.' }),
    zoneid: p.uuid({ description: 'Zone whose copy is served; any ready copy when omitted.' }),
  },
  event: { type: 'ISO.EXTRACT', description: (params) => `extracting ISO ${params.id}` },
  target: async (ctx, params) => ({
    type: 'Iso',
    id: (await findAdministeredImage(ctx, ISO, params.id)).uuid,
  }),
  handler: (ctx, params) => extractImage(ctx, ISO, params),
});

export const isoCommands = [
  registerIso,
  listIsos,
  updateIso,
  updateIsoPermissions,
  listIsoPermissions,
  copyIso,
  deleteIso,
  extractIso,
];
