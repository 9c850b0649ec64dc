/**
 * Resource icons: a small picture an owner attaches to an instance, template, ISO, network, VPC,
 * project, account, user, zone or domain (upstream's types with icon support), which UIs show
 * beside its name. Anyone who may act on the resource may set or remove its icon, as upstream
 * checks; the image must be base64 of a PNG, JPEG, GIF, WebP or SVG file of at most MAX_ICON_BYTES.
 */
import { randomUUID } from 'node:crypto';
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { checkDomainAccess, findDomainByUuid } from '../iam/access.ts';
import { defineCommand, isListResult, type ListResult, listResult, success } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { findTaggable, taggableType } from '../tags/tags.ts';

/** Upstream's resource types that take icons (ResourceObjectType with icon support). */
const ICON_TYPES = [
  'UserVm',
  'Template',
  'ISO',
  'Network',
  'Vpc',
  'Project',
  'Account',
  'User',
  'Zone',
  'Domain',
];

/** Largest icon accepted, decoded; an icon is a thumbnail, and each list of icons carries them all. */
export const MAX_ICON_BYTES = 1024 * 1024;

/** The canonical spelling of an icon-bearing type, or a 431. */
function iconType(name: string): string {
  const type = ICON_TYPES.find((t) => t.toLowerCase() === name.toLowerCase());
  if (!type) throw invalidParameter(`The resource type ${name} doesn't support resource icons`);
  return type === 'Domain' ? type : taggableType(type);
}

/** Checks the caller may change the resource's icon: 431 unknown resource, 531 not theirs. */
async function checkResource(ctx: CallContext, type: string, uuid: string): Promise<void> {
  if (type === 'Domain') checkDomainAccess(ctx.caller, await findDomainByUuid(ctx, uuid));
  else await findTaggable(ctx, type, uuid);
}

/** Whether the bytes start as one of the image formats an icon may be. */
function isImage(b: Buffer): boolean {
  const starts = (...sig: number[]) => sig.every((v, i) => b[i] === v);
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return true; // PNG
  if (starts(0xff, 0xd8, 0xff)) return true; // JPEG
  if (b.subarray(0, 6).toString('latin1') === 'GIF87a' || b.subarray(0, 6).toString('latin1') === 'GIF89a')
    return true;
  if (b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP')
    return true;
  const head = b.subarray(0, 512).toString('utf8').trimStart().toLowerCase();
  return head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'));
}

/**
 * Decodes and checks an uploaded icon. The UI sends a data URL's payload; a full
 * `data:image/…;base64,` URL is accepted too and stored as its payload.
 */
export function checkIcon(base64image: string): string {
  const payload = base64image.replace(/^data:image\/[a-z0-9.+-]+;base64,/i, '').replace(/\s+/g, '');
  if (payload === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(payload) || payload.length % 4 === 1)
    throw invalidParameter('The icon is not base64-encoded');
  const bytes = Buffer.from(payload, 'base64');
  if (bytes.length > MAX_ICON_BYTES)
    throw invalidParameter(`The icon is ${bytes.length} bytes; at most ${MAX_ICON_BYTES} are accepted`);
  if (!isImage(bytes)) throw invalidParameter('The icon is not a PNG, JPEG, GIF, WebP or SVG image');
  return payload;
}

const resourceParams = {
  resourcetype: p.string({
    required: true,
    description:
      'Type of the resources: UserVm, Template, ISO, Network, Vpc, Project, Account, User, Zone or Domain.',
  }),
  resourceids: p.list({ required: true, description: 'Comma-separated UUIDs of the resources.' }),
};

export const uploadResourceIcon = defineCommand({
  name: 'uploadResourceIcon',
  description:
    'Sets the icon of resources the caller may act on, replacing any they had; the image is base64 of a PNG, JPEG, GIF, WebP or SVG file of at most 1 MiB.',
  params: {
    ...resourceParams,
    base64image: p.string({
      required: true,
      length: 2 * MAX_ICON_BYTES,
      description: 'The image, base64-encoded (a data: URL is accepted too).',
    }),
  },
  async handler(ctx, params) {
    const type = iconType(params.resourcetype);
    const icon = checkIcon(params.base64image);
    const uuids = [...new Set(params.resourceids.map((u) => u.toLowerCase()))];
    for (const uuid of uuids) await checkResource(ctx, type, uuid);
    const now = ctx.app.clock.now();
    await ctx.app.store.db.transaction().execute(async (tx) => {
      for (const uuid of uuids) {
        const updated = await tx
          .updateTable('resource_icons')
          .set({ icon, updated: now })
          .where('resource_type', '=', type)
          .where('resource_uuid', '=', uuid)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) === 0)
          await tx
            .insertInto('resource_icons')
            .values({
              uuid: randomUUID(),
              resource_type: type,
              resource_uuid: uuid,
              icon,
              created: now,
              updated: now,
            })
            .execute();
      }
      await logEvent(ctx, tx, {
        type: 'UPLOAD.RESOURCE.ICON',
        description: `uploaded the icon of ${type} ${uuids.join(', ')}`,
      });
    });
    return success();
  },
});

export const deleteResourceIcon = defineCommand({
  name: 'deleteResourceIcon',
  description:
    'Removes the icons of resources the caller may act on; resources without one are left as they are.',
  params: resourceParams,
  async handler(ctx, params) {
    const type = iconType(params.resourcetype);
    const uuids = [...new Set(params.resourceids.map((u) => u.toLowerCase()))];
    for (const uuid of uuids) await checkResource(ctx, type, uuid);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      const r = await tx
        .deleteFrom('resource_icons')
        .where('resource_type', '=', type)
        .where('resource_uuid', 'in', uuids)
        .executeTakeFirst();
      if (Number(r.numDeletedRows) > 0)
        await logEvent(ctx, tx, {
          type: 'DELETE.RESOURCE.ICON',
          description: `deleted the icon of ${type} ${uuids.join(', ')}`,
        });
    });
    return success();
  },
});

export const listResourceIcon = defineCommand({
  name: 'listResourceIcon',
  description: 'Lists the icons of resources the caller may see, one per resource that has one.',
  params: {
    resourcetype: resourceParams.resourcetype,
    resourceids: p.list({ required: true, description: 'Comma-separated UUIDs of the resources.' }),
  },
  async handler(ctx, params) {
    const type = iconType(params.resourcetype);
    const uuids = [...new Set(params.resourceids.map((u) => u.toLowerCase()))];
    for (const uuid of uuids) await checkResource(ctx, type, uuid);
    const rows = await ctx.app.store.db
      .selectFrom('resource_icons')
      .select(['resource_type', 'resource_uuid', 'icon'])
      .where('resource_type', '=', type)
      .where('resource_uuid', 'in', uuids)
      .orderBy('id')
      .execute();
    return listResult(
      rows.map((r) => ({ resourcetype: r.resource_type, resourceid: r.resource_uuid, base64image: r.icon })),
      rows.length,
    );
  },
});

/** The lists whose objects carry their icon when asked with showicon=true, and the objects' type. */
const ICON_LISTS: Record<string, string> = {
  listVirtualMachines: 'UserVm',
  listVirtualMachinesMetrics: 'UserVm',
  listTemplates: 'Template',
  listIsos: 'ISO',
  listNetworks: 'Network',
  listVPCs: 'Vpc',
  listProjects: 'Project',
  listAccounts: 'Account',
  listUsers: 'User',
  listZones: 'Zone',
  listZonesMetrics: 'Zone',
  listDomains: 'Domain',
  listDomainChildren: 'Domain',
};

/**
 * Adds `icon` (base64image, resourcetype, resourceid) to the objects of a list asked with
 * showicon=true that have one, with one query for the page (http/dispatch.ts calls it).
 */
export async function withIcons(
  ctx: CallContext,
  command: string,
  params: Record<string, unknown>,
  result: unknown,
): Promise<void> {
  const type = ICON_LISTS[command];
  if (!type || params.showicon !== true || !result || !isListResult(result as object)) return;
  const items = (result as ListResult).items as { id?: unknown; icon?: unknown }[];
  const ids = items.map((i) => i.id).filter((id): id is string => typeof id === 'string');
  if (ids.length === 0) return;
  const rows = await ctx.app.store.db
    .selectFrom('resource_icons')
    .select(['resource_uuid', 'icon'])
    .where('resource_type', '=', type)
    .where('resource_uuid', 'in', ids)
    .execute();
  const byId = new Map(rows.map((r) => [r.resource_uuid, r.icon]));
  for (const item of items) {
    const icon = typeof item.id === 'string' ? byId.get(item.id) : undefined;
    if (icon !== undefined) item.icon = { base64image: icon, resourcetype: type, resourceid: item.id };
  }
}

export const iconCommands = [uploadResourceIcon, deleteResourceIcon, listResourceIcon];
