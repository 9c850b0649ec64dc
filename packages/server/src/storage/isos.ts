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
  params: {
    name: p.string({ required: true }),
    displaytext: p.string({ length: 4096 }),
    url: p.string({ required: true, length: 2048 }),
    zoneid: zoneOrAll({ required: true }),
    bootable: p.boolean(),
    ostypeid: p.uuid(),
    checksum: p.string(),
    ispublic: p.boolean(),
    isfeatured: p.boolean(),
    isextractable: p.boolean(),
    passwordenabled: p.boolean(),
    isdynamicallyscalable: p.boolean(),
    directdownload: p.boolean(),
    account: p.string(),
    domainid: p.uuid(),
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
  params: {
    ...listParams,
    account: p.string(),
    domainid: p.uuid(),
    listall: p.boolean(),
    isrecursive: p.boolean(),
    isofilter: p.string(),
    id: p.uuid(),
    name: p.string(),
    zoneid: p.uuid(),
    bootable: p.boolean(),
    ispublic: p.boolean(),
    isready: p.boolean(),
    tags: p.map(),
    showremoved: p.boolean(),
  },
  // Upstream lists the caller's own ISOs when no filter is given.
  handler: (ctx, params) => listImages(ctx, ISO, { ...params, filter: params.isofilter ?? 'selfexecutable' }),
});

export const updateIso = defineCommand({
  name: 'updateIso',
  params: {
    id: p.uuid({ required: true }),
    name: p.string(),
    displaytext: p.string({ length: 4096 }),
    ostypeid: p.uuid(),
    bootable: p.boolean(),
    passwordenabled: p.boolean(),
    sshkeyenabled: p.boolean(),
    isdynamicallyscalable: p.boolean(),
    requireshvm: p.boolean(),
    details: p.map(),
    cleanupdetails: p.boolean(),
  },
  handler: (ctx, params) => updateImage(ctx, ISO, params),
});

export const updateIsoPermissions = defineCommand({
  name: 'updateIsoPermissions',
  params: {
    id: p.uuid({ required: true }),
    accounts: p.list(),
    op: p.string(),
    ispublic: p.boolean(),
    isfeatured: p.boolean(),
    isextractable: p.boolean(),
  },
  handler: (ctx, params) => updatePermissions(ctx, ISO, params),
});

export const listIsoPermissions = defineCommand({
  name: 'listIsoPermissions',
  params: { id: p.uuid({ required: true }) },
  handler: (ctx, params) => listPermissions(ctx, ISO, params.id),
});

export const copyIso = defineCommand({
  name: 'copyIso',
  params: {
    id: p.uuid({ required: true }),
    sourcezoneid: p.uuid(),
    destzoneid: p.uuid(),
    destzoneids: p.list({ of: 'uuid' }),
  },
  event: { type: 'ISO.COPY', description: (params) => `copying ISO ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => copyImage(ctx, ISO, params),
});

export const deleteIso = defineCommand({
  name: 'deleteIso',
  params: { id: p.uuid({ required: true }), zoneid: p.uuid() },
  event: { type: 'ISO.DELETE', description: (params) => `deleting ISO ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => deleteImage(ctx, ISO, params),
});

export const extractIso = defineCommand({
  name: 'extractIso',
  params: { id: p.uuid({ required: true }), mode: p.string({ required: true }), zoneid: p.uuid() },
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
