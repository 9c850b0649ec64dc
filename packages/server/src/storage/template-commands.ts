/** The template commands; the work is in templates.ts, shared with the ISO commands. */

import type { CallContext } from '../context.ts';
import { defineCommand, type JobTarget, listResult } from '../registry/command.ts';
import { listParams, p } from '../registry/params.ts';
import {
  checkImageOwner,
  copyImage,
  deleteImage,
  extractImage,
  findAdministeredImage,
  findImage,
  listImages,
  listPermissions,
  registerTemplate as register,
  TEMPLATE,
  updateImage,
  updatePermissions,
  zoneOrAll,
} from './templates.ts';

/** Checks the caller may manage the template before a job is queued for it. */
async function ownedTarget(ctx: CallContext, id: string): Promise<JobTarget> {
  const t = await findImage(ctx, TEMPLATE, id);
  await checkImageOwner(ctx, t);
  return { type: 'Template', id: t.uuid };
}

export const registerTemplate = defineCommand({
  name: 'registerTemplate',
  description:
    "Registers a disk image by URL as a template in one zone or all, and starts downloading it to each zone's secondary storage; the entries show download progress.",
  params: {
    name: p.string({ required: true, description: 'Name of the template (not empty).' }),
    displaytext: p.string({
      length: 4096,
      description: 'Description shown for the template; defaults to its name.',
    }),
    url: p.string({
      required: true,
      length: 2048,
      description:
        'Where to fetch the image: http:// or https://; root admins may also give file:///path on the management server.',
    }),
    format: p.string({
      required: true,
      description:
        'Image format: QCOW2, RAW, VHD, VHDX, OVA or TAR, bootable by the hypervisor given (KVM: QCOW2 or RAW; LXC: TAR, a root file system tarball).',
    }),
    hypervisor: p.string({
      required: true,
      description: 'Hypervisor the template is for, such as KVM, LXC or Simulator (case-insensitive).',
    }),
    ostypeid: p.uuid({ description: 'UUID of the guest OS type (required by Nimbostack; see listOsTypes).' }),
    zoneid: zoneOrAll({
      description: 'UUID of the zone to register in, or -1 for every zone with secondary storage.',
    }),
    zoneids: p.list({
      of: 'uuid',
      description: 'UUIDs of several zones to register in; may be combined with zoneid.',
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
      description: 'When true, its owner may download it with extractTemplate; default false.',
    }),
    passwordenabled: p.boolean({
      description:
        'When true, the image runs the password script, so VMs get a generated password; default false.',
    }),
    sshkeyenabled: p.boolean({
      description: 'When true, the image accepts SSH keys handed to VMs; default false.',
    }),
    isdynamicallyscalable: p.boolean({
      description: 'Recorded on the template; Nimbostack does not scale running VMs. Default false.',
    }),
    requireshvm: p.boolean({
      description: 'Whether VMs from it need hardware virtualisation; recorded, default true.',
    }),
    bits: p.integer({ min: 32, max: 64, description: "32 or 64; defaults to the OS type's." }),
    details: p.map({ description: 'Template details as details[0].<name>=<value>, stored with it.' }),
    templatetag: p.string({
      description: 'Free tag stored with the template (root admins may change it later).',
    }),
    templatetype: p.string({ description: 'USER (default), or for root admins BUILTIN, SYSTEM or ROUTING.' }),
    directdownload: p.boolean({
      description: 'Refused when true: Nimbostack always keeps templates on secondary storage.',
    }),
    account: p.string({
      description:
        "Name of the account to register for (admins and domain admins); defaults to the caller's.",
    }),
    domainid: p.uuid({
      description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
    }),

    projectid: p.uuid({
      description: 'Project to own the template (you must be a member, it must be Active); not with account.',
    }),
  },
  async handler(ctx, params) {
    const items = await register(ctx, params);
    return listResult(items, items.length);
  },
});

export const listTemplates = defineCommand({
  name: 'listTemplates',
  description:
    'Lists templates by availability filter, one entry per template and zone; ready-only for the executable, featured and community filters.',
  params: {
    ...listParams,
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    account: p.string({
      description:
        "Only templates of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description:
        'Only templates of accounts in this domain (and below with isrecursive); ignored for users.',
    }),
    listall: p.boolean({
      description: 'For admins and domain admins: consider the templates of every account they may see.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include subdomains.' }),
    projectid: p.projectScope({
      description:
        "Only this project's templates (you must be a member or administer it); -1: those of every project you may see.",
    }),
    templatefilter: p.string({
      required: true,
      description:
        'Which templates: featured, community, self, selfexecutable, sharedexecutable, executable (own, public and shared), or all (admins).',
    }),
    id: p.uuid({ description: 'Only the template with this UUID.' }),
    ids: p.list({ of: 'uuid', description: 'Only templates with these UUIDs (comma-separated).' }),
    name: p.string({ description: 'Only templates with exactly this name.' }),
    zoneid: p.uuid({ description: 'Only copies of templates in this zone.' }),
    hypervisor: p.string({
      description: 'Only templates for this hypervisor, such as KVM, LXC or Simulator.',
    }),
    tags: p.map({
      description: 'Only templates carrying all these tags (tags[0].key=..., tags[0].value=...).',
    }),
    showremoved: p.boolean({ description: 'For admins: also show deleted templates.' }),
    isready: p.boolean({
      description: 'true: only copies fully downloaded; false: only copies not ready yet.',
    }),
    templatetype: p.string({ description: 'Only templates of this type: USER, BUILTIN, SYSTEM or ROUTING.' }),
  },
  handler: (ctx, params) => listImages(ctx, TEMPLATE, { ...params, filter: params.templatefilter }),
});

export const updateTemplate = defineCommand({
  name: 'updateTemplate',
  description:
    "Changes a template's name, description, OS type, flags or details; its owner or an administrator over it may do so.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the template.' }),
    name: p.string({ description: 'New name (not empty).' }),
    displaytext: p.string({ length: 4096, description: 'New description.' }),
    ostypeid: p.uuid({ description: 'UUID of the new guest OS type.' }),
    bootable: p.boolean({ description: 'Whether VMs can boot from it.' }),
    passwordenabled: p.boolean({ description: 'Whether VMs from it get a generated password.' }),
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
    templatetag: p.string({ description: 'Root admins only: new tag; empty clears it.' }),
    templatetype: p.string({ description: 'Root admins only: USER, BUILTIN, SYSTEM or ROUTING.' }),
  },
  handler: (ctx, params) => updateImage(ctx, TEMPLATE, params),
});

export const updateTemplatePermissions = defineCommand({
  name: 'updateTemplatePermissions',
  description:
    'Shares a template with named accounts of its domain, or changes its public, featured or extractable flags.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the template.' }),
    accounts: p.list({
      description: "Comma-separated names of accounts in the template's domain, for op add or remove.",
    }),
    projectids: p.list({
      of: 'uuid',
      description:
        "Projects of the template's domain to share it with (or stop sharing), for op add or remove.",
    }),
    op: p.string({
      description: 'add or remove (with accounts), or reset to unshare it from every account.',
    }),
    ispublic: p.boolean({
      description: 'Make it usable by all accounts, or not; users need allow.public.user.templates.',
    }),
    isfeatured: p.boolean({ description: 'Root admins only: list it as featured, or not.' }),
    isextractable: p.boolean({ description: 'Root admins only: whether its owner may download it.' }),
  },
  handler: (ctx, params) => updatePermissions(ctx, TEMPLATE, params),
});

export const listTemplatePermissions = defineCommand({
  name: 'listTemplatePermissions',
  description: 'Shows whether a template is public and which accounts it is shared with.',
  params: { id: p.uuid({ required: true, description: 'UUID of the template.' }) },
  handler: (ctx, params) => listPermissions(ctx, TEMPLATE, params.id),
});

export const copyTemplate = defineCommand({
  name: 'copyTemplate',
  description:
    "Copies a ready template from one zone's secondary storage to other zones. Asynchronous; the job ends when every copy is done.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the template to copy.' }),
    sourcezoneid: p.uuid({
      description: 'Zone to copy from; defaults to any zone where the template is ready.',
    }),
    destzoneid: p.uuid({ description: 'UUID of a zone to copy to.' }),
    destzoneids: p.list({
      of: 'uuid',
      description: 'UUIDs of several zones to copy to; may be combined with destzoneid.',
    }),
  },
  event: { type: 'TEMPLATE.COPY', description: (params) => `copying template ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => copyImage(ctx, TEMPLATE, params),
});

export const deleteTemplate = defineCommand({
  name: 'deleteTemplate',
  description:
    "Deletes a template's copies in one zone or everywhere; once none is left the template is removed. Asynchronous; refused while in use unless forced.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the template.' }),
    zoneid: p.uuid({ description: 'Only delete the copy in this zone; all zones when omitted.' }),
    forced: p.boolean({ description: 'When true, skip the in-use checks (VMs still using the template).' }),
  },
  event: { type: 'TEMPLATE.DELETE', description: (params) => `deleting template ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => deleteImage(ctx, TEMPLATE, params),
});

export const extractTemplate = defineCommand({
  name: 'extractTemplate',
  description:
    'Creates a temporary download link for a ready user template. Asynchronous; users may do it only for extractable templates; the link expires after extract.url.expiration.interval.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the template.' }),
    mode: p.string({ required: true, description: 'Only HTTP_DOWNLOAD is supported.' }),
    zoneid: p.uuid({ description: 'Zone whose copy is served; any ready copy when omitted.' }),
  },
  event: { type: 'TEMPLATE.EXTRACT', description: (params) => `extracting template ${params.id}` },
  target: async (ctx, params) => ({
    type: 'Template',
    id: (await findAdministeredImage(ctx, TEMPLATE, params.id)).uuid,
  }),
  handler: (ctx, params) => extractImage(ctx, TEMPLATE, params),
});

export const templateCommands = [
  registerTemplate,
  listTemplates,
  updateTemplate,
  updateTemplatePermissions,
  listTemplatePermissions,
  copyTemplate,
  deleteTemplate,
  extractTemplate,
];
