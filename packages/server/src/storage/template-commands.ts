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
  params: {
    name: p.string({ required: true }),
    displaytext: p.string({ length: 4096 }),
    url: p.string({ required: true, length: 2048 }),
    format: p.string({ required: true }),
    hypervisor: p.string({ required: true }),
    ostypeid: p.uuid(),
    zoneid: zoneOrAll(),
    zoneids: p.list({ of: 'uuid' }),
    checksum: p.string(),
    ispublic: p.boolean(),
    isfeatured: p.boolean(),
    isextractable: p.boolean(),
    passwordenabled: p.boolean(),
    sshkeyenabled: p.boolean(),
    isdynamicallyscalable: p.boolean(),
    requireshvm: p.boolean(),
    bits: p.integer({ min: 32, max: 64 }),
    details: p.map(),
    templatetag: p.string(),
    templatetype: p.string(),
    directdownload: p.boolean(),
    account: p.string(),
    domainid: p.uuid(),
  },
  async handler(ctx, params) {
    const items = await register(ctx, params);
    return listResult(items, items.length);
  },
});

export const listTemplates = defineCommand({
  name: 'listTemplates',
  params: {
    ...listParams,
    account: p.string(),
    domainid: p.uuid(),
    listall: p.boolean(),
    isrecursive: p.boolean(),
    templatefilter: p.string({ required: true }),
    id: p.uuid(),
    ids: p.list({ of: 'uuid' }),
    name: p.string(),
    zoneid: p.uuid(),
    hypervisor: p.string(),
    tags: p.map(),
    showremoved: p.boolean(),
    isready: p.boolean(),
    templatetype: p.string(),
  },
  handler: (ctx, params) => listImages(ctx, TEMPLATE, { ...params, filter: params.templatefilter }),
});

export const updateTemplate = defineCommand({
  name: 'updateTemplate',
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
    templatetag: p.string(),
    templatetype: p.string(),
  },
  handler: (ctx, params) => updateImage(ctx, TEMPLATE, params),
});

export const updateTemplatePermissions = defineCommand({
  name: 'updateTemplatePermissions',
  params: {
    id: p.uuid({ required: true }),
    accounts: p.list(),
    op: p.string(),
    ispublic: p.boolean(),
    isfeatured: p.boolean(),
    isextractable: p.boolean(),
  },
  handler: (ctx, params) => updatePermissions(ctx, TEMPLATE, params),
});

export const listTemplatePermissions = defineCommand({
  name: 'listTemplatePermissions',
  params: { id: p.uuid({ required: true }) },
  handler: (ctx, params) => listPermissions(ctx, TEMPLATE, params.id),
});

export const copyTemplate = defineCommand({
  name: 'copyTemplate',
  params: {
    id: p.uuid({ required: true }),
    sourcezoneid: p.uuid(),
    destzoneid: p.uuid(),
    destzoneids: p.list({ of: 'uuid' }),
  },
  event: { type: 'TEMPLATE.COPY', description: (params) => `copying template ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => copyImage(ctx, TEMPLATE, params),
});

export const deleteTemplate = defineCommand({
  name: 'deleteTemplate',
  params: { id: p.uuid({ required: true }), zoneid: p.uuid(), forced: p.boolean() },
  event: { type: 'TEMPLATE.DELETE', description: (params) => `deleting template ${params.id}` },
  target: (ctx, params) => ownedTarget(ctx, params.id),
  handler: (ctx, params) => deleteImage(ctx, TEMPLATE, params),
});

export const extractTemplate = defineCommand({
  name: 'extractTemplate',
  params: { id: p.uuid({ required: true }), mode: p.string({ required: true }), zoneid: p.uuid() },
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
