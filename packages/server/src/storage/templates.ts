/**
 * Templates and ISOs: registration (downloaded by the management server into each zone's image
 * store), the CloudStack template filters and sharing rules, updates, permissions, copies between
 * zones, deletion and extract links; plus what compute needs to deploy from a template or attach
 * an ISO. Templates and ISOs share one table and one service; each command names its kind.
 */

import { randomBytes } from 'node:crypto';
import { type RawBuilder, type SqlBool, sql, type Updateable } from 'kysely';
import { formatDate } from '../clock.ts';
import { type App, type CallContext, isRootAdmin } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type {
  AccountRow,
  DomainRow,
  ImageStoreRow,
  TemplateRow,
  TemplateStoreRefRow,
  TemplateTable,
} from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { type EventOwner, recordEvent } from '../events/events.ts';
import { escapeLike, likeEscaped, listScope, type OwnerScope, pathPrefix } from '../iam/access.ts';
import { onAccountDelete } from '../iam/accounts.ts';
import { displayPath } from '../iam/domains.ts';
import { ResourceKind, registerResourceCounter, reserve } from '../iam/limits.ts';
import { checkRowAccess } from '../iam/owned.ts';
import { findZone, namesOf } from '../infra/common.ts';
import { onImageStoreDelete } from '../infra/image-stores.ts';
import { findProject, isProjectAccount, ownerFor, projectAccountOf } from '../projects/access.ts';
import { listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { type ParamSpec, parseUuid, type RawValue } from '../registry/params.ts';
import { defineSetting } from '../settings/settings.ts';
import { registerTaggable, tagsOf, withTags } from '../tags/tags.ts';
import { DownloadState, removeCopies, runTransfer, startTransfer } from './downloads.ts';
import { HYPERVISOR_FORMATS, parseChecksum, storageGiB, TEMPLATE_FORMATS } from './images.ts';
import { isObjectStore, signedUrl } from './object-stores.ts';

/** What differs between templates and ISOs. */
export interface ImageKind {
  isIso: 0 | 1;
  /** In messages. */
  label: 'template' | 'ISO';
  /** Resource type for tags, events and jobs. */
  resourceType: 'Template' | 'ISO';
  eventPrefix: 'TEMPLATE' | 'ISO';
}

export const TEMPLATE: ImageKind = {
  isIso: 0,
  label: 'template',
  resourceType: 'Template',
  eventPrefix: 'TEMPLATE',
};
export const ISO: ImageKind = { isIso: 1, label: 'ISO', resourceType: 'ISO', eventPrefix: 'ISO' };

export const ALLOW_PUBLIC_USER_TEMPLATES = defineSetting({
  name: 'allow.public.user.templates',
  category: 'Advanced',
  type: 'Boolean',
  defaultValue: true,
  scopes: ['account'],
  description: 'Whether users (not only administrators) may make their templates and ISOs public.',
});

const HYPERVISORS = Object.keys(HYPERVISOR_FORMATS);
const TEMPLATE_TYPES = ['USER', 'BUILTIN', 'SYSTEM', 'ROUTING'];
export const FILTERS = [
  'featured',
  'self',
  'selfexecutable',
  'sharedexecutable',
  'executable',
  'community',
  'all',
] as const;
export type TemplateFilter = (typeof FILTERS)[number];

/** A zone parameter that also takes -1, CloudStack's "every zone". */
export function zoneOrAll<Req extends boolean = false>(opts?: {
  required?: Req;
  description?: string;
}): ParamSpec<string, Req> {
  return {
    type: 'uuid',
    required: (opts?.required ?? false) as Req,
    description: opts?.description,
    parse(raw: RawValue, name: string) {
      const v = typeof raw === 'string' ? raw.trim() : '';
      return v === '-1' ? '-1' : parseUuid(v, name);
    },
  };
}

// ---- lookups and access -------------------------------------------------------------------

export async function findImage(
  ctx: Pick<CallContext, 'app'>,
  kind: ImageKind,
  uuid: string,
  tx: Tx = ctx.app.store.db,
): Promise<TemplateRow> {
  const row = await tx
    .selectFrom('templates')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('is_iso', '=', kind.isIso)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find ${kind.label} with id ${uuid}`);
  return row;
}

async function domainOf(ctx: Pick<CallContext, 'app'>, id: number): Promise<DomainRow> {
  return ctx.app.store.db.selectFrom('domains').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** Only the owner and administrators above it may change or delete a template. */
export async function checkImageOwner(ctx: CallContext, t: TemplateRow): Promise<void> {
  await checkRowAccess(ctx, t);
  if (t.type !== 'USER' && !isRootAdmin(ctx.caller))
    throw invalidParameter(`Only root administrators may change the ${t.type.toLowerCase()} ${t.name}`);
}

/** A template the caller owns or administers (for extracting and listing its permissions). */
export async function findAdministeredImage(
  ctx: CallContext,
  kind: ImageKind,
  uuid: string,
): Promise<TemplateRow> {
  const t = await findImage(ctx, kind, uuid);
  await checkRowAccess(ctx, t);
  return t;
}

/**
 * Who may use (deploy from, attach) a template besides its owner and the administrators above it,
 * CloudStack's rules: anyone when it is public, the accounts it is shared with.
 */
async function usableBeyondOwner(ctx: CallContext, t: TemplateRow): Promise<boolean> {
  if (t.is_public) return true;
  const shared = await ctx.app.store.db
    .selectFrom('template_permissions')
    .select('id')
    .where('template_id', '=', t.id)
    .where('account_id', '=', ctx.caller.account.id)
    .executeTakeFirst();
  return shared !== undefined;
}

// ---- hooks for compute --------------------------------------------------------------------

/** Says why a template or ISO cannot be deleted (VMs use it), or undefined when it can. */
export type TemplateInUseCheck = (
  ctx: CallContext,
  template: TemplateRow,
  zoneId: number | undefined,
) => Promise<string | undefined>;
const inUseChecks: TemplateInUseCheck[] = [];

export function registerTemplateInUseCheck(check: TemplateInUseCheck): void {
  inUseChecks.push(check);
}

export interface ReadyImage {
  template: TemplateRow;
  /** The ready copy in the zone: install_path (relative to the store), size_bytes, physical_size_bytes. */
  ref: TemplateStoreRefRow;
}

async function findReadyImage(ctx: CallContext, template: TemplateRow, zoneId: number): Promise<ReadyImage> {
  const kind = template.is_iso ? ISO : TEMPLATE;
  // Someone else's private image is refused as upstream's UseEntry check does: 531.
  await checkRowAccess(ctx, template, usableBeyondOwner);
  const db = ctx.app.store.db;
  const refs = await db
    .selectFrom('template_store_refs as r')
    .innerJoin('image_stores as s', 's.id', 'r.image_store_id')
    .selectAll('r')
    .where('r.template_id', '=', template.id)
    .where((eb) => eb.or([eb('r.zone_id', '=', zoneId), eb('s.zone_id', 'is', null)]))
    .where('r.destroyed', '=', 0)
    .where('s.removed', 'is', null)
    .orderBy('r.id')
    .execute();
  const ready = refs.find((r) => r.download_state === DownloadState.Downloaded);
  if (!ready) {
    const zone = await db.selectFrom('zones').select('name').where('id', '=', zoneId).executeTakeFirst();
    const why = refs.length ? `: ${refs[0].status}` : '';
    throw invalidParameter(
      `${kind.label === 'ISO' ? 'ISO' : 'Template'} ${template.name} is not ready in zone ${zone?.name ?? zoneId}${why}`,
    );
  }
  return { template, ref: ready };
}

/**
 * The template (or bootable ISO, which CloudStack also deploys from) a VM can be deployed from in
 * a zone, with its ready copy; 431 with the reason when it does not exist, is not bootable, is not
 * the caller's to use, or is not ready in that zone.
 */
export async function findDeployableTemplate(
  ctx: CallContext,
  uuid: string,
  zoneId: number,
  checked?: TemplateRow,
): Promise<ReadyImage> {
  const template = checked
    ? checked.removed === null
      ? checked
      : undefined
    : await ctx.app.store.db
        .selectFrom('templates')
        .selectAll()
        .where('uuid', '=', uuid)
        .where('removed', 'is', null)
        .executeTakeFirst();
  if (!template) throw invalidParameter(`Unable to find template with id ${uuid}`);
  if (template.is_iso && !template.bootable) throw invalidParameter(`ISO ${template.name} is not bootable`);
  return findReadyImage(ctx, template, zoneId);
}

/** The same for an ISO to attach (or boot from) in a zone. */
export async function findAttachableIso(ctx: CallContext, uuid: string, zoneId: number): Promise<ReadyImage> {
  return findReadyImage(ctx, await findImage(ctx, ISO, uuid), zoneId);
}

export interface TemplateInfo {
  uuid: string;
  name: string;
  displayText: string;
  isIso: boolean;
  format: string;
  type: string;
  hypervisor: string | null;
  passwordEnabled: boolean;
  sshKeyEnabled: boolean;
  osTypeUuid: string | undefined;
  osTypeName: string | undefined;
}

/** Names and flags of templates by integer id, for VM responses (templatename, isoname...). */
export async function templateInfo(
  ctx: Pick<CallContext, 'app'>,
  ids: (number | null)[],
): Promise<Map<number, TemplateInfo>> {
  const wanted = [...new Set(ids.filter((i): i is number => i !== null))];
  if (wanted.length === 0) return new Map();
  const rows = await ctx.app.store.db
    .selectFrom('templates as t')
    .leftJoin('os_types as o', 'o.id', 't.os_type_id')
    .select([
      't.id',
      't.uuid',
      't.name',
      't.display_text',
      't.is_iso',
      't.format',
      't.type',
      't.hypervisor',
      't.password_enabled',
      't.sshkey_enabled',
      'o.uuid as os_uuid',
      'o.display_name as os_name',
    ])
    .where('t.id', 'in', wanted)
    .execute();
  return new Map(
    rows.map((r) => [
      r.id,
      {
        uuid: r.uuid,
        name: r.name,
        displayText: r.display_text,
        isIso: r.is_iso === 1,
        format: r.format,
        type: r.type,
        hypervisor: r.hypervisor,
        passwordEnabled: r.password_enabled === 1,
        sshKeyEnabled: r.sshkey_enabled === 1,
        osTypeUuid: r.os_uuid ?? undefined,
        osTypeName: r.os_name ?? undefined,
      },
    ]),
  );
}

// ---- presenting ---------------------------------------------------------------------------

/** One listed item: a template as it is in one zone. */
interface ZoneItem {
  template: TemplateRow;
  zoneId: number | null;
}

const STATE_RANK: Record<string, number> = {
  [DownloadState.Downloaded]: 0,
  [DownloadState.InProgress]: 1,
  [DownloadState.UploadInProgress]: 1,
  [DownloadState.NotDownloaded]: 2,
  [DownloadState.NotUploaded]: 2,
  [DownloadState.Error]: 3,
  [DownloadState.UploadError]: 3,
};

async function presentItems(ctx: CallContext, items: ZoneItem[]): Promise<object[]> {
  if (items.length === 0) return [];
  const db = ctx.app.store.db;
  const templateIds = [...new Set(items.map((i) => i.template.id))];
  const [refs, osTypes, accounts, domains, zones, isoTags, templateTags] = await Promise.all([
    db
      .selectFrom('template_store_refs as r')
      .innerJoin('image_stores as s', 's.id', 'r.image_store_id')
      .selectAll('r')
      .select('s.name as store_name')
      .where('r.template_id', 'in', templateIds)
      .orderBy('r.id')
      .execute(),
    db
      .selectFrom('os_types')
      .select(['id', 'uuid', 'display_name'])
      .where('id', 'in', [...new Set(items.map((i) => i.template.os_type_id))])
      .execute(),
    db
      .selectFrom('accounts')
      .select(['id', 'uuid', 'name'])
      .where('id', 'in', [...new Set(items.map((i) => i.template.account_id))])
      .execute(),
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', [...new Set(items.map((i) => i.template.domain_id))])
      .execute(),
    namesOf(
      ctx,
      'zones',
      items.map((i) => i.zoneId),
    ),
    tagsOf(ctx, ISO.resourceType, templateIds),
    tagsOf(ctx, TEMPLATE.resourceType, templateIds),
  ]);
  const osById = new Map(osTypes.map((o) => [o.id, o]));
  const accountById = new Map(accounts.map((a) => [a.id, a]));
  const domainById = new Map(domains.map((d) => [d.id, d]));
  return items.map(({ template: t, zoneId }) => {
    const inZone = refs
      .filter(
        (r) => r.template_id === t.id && r.zone_id === zoneId && (t.removed !== null || r.destroyed === 0),
      )
      .sort((a, b) => (STATE_RANK[a.download_state] ?? 9) - (STATE_RANK[b.download_state] ?? 9));
    const best = inZone[0];
    const ready = best?.download_state === DownloadState.Downloaded;
    const os = osById.get(t.os_type_id);
    const account = accountById.get(t.account_id);
    const domain = domainById.get(t.domain_id);
    const zone = zoneId === null ? undefined : zones.get(zoneId);
    const details = t.details ? (JSON.parse(t.details) as Record<string, string>) : {};
    const common = {
      id: t.uuid,
      name: t.name,
      displaytext: t.display_text,
      ispublic: t.is_public === 1,
      created: formatDate(t.created),
      removed: formatDate(t.removed),
      isready: ready,
      passwordenabled: t.password_enabled === 1,
      bootable: t.bootable === 1,
      isfeatured: t.is_featured === 1,
      crossZones: t.cross_zones === 1,
      ostypeid: os?.uuid,
      ostypename: os?.display_name,
      account: account?.name,
      accountid: account?.uuid,
      domain: domain?.name,
      domainid: domain?.uuid,
      domainpath: domain ? displayPath(domain.path) : undefined,
      zoneid: zone?.uuid,
      zonename: zone?.name,
      status: best?.status,
      size: ready && best.size_bytes !== null ? Number(best.size_bytes) : undefined,
      physicalsize: ready && best.physical_size_bytes !== null ? Number(best.physical_size_bytes) : undefined,
      isextractable: t.is_extractable === 1,
      downloaddetails: inZone.map((r) => ({
        downloadState: r.download_state,
        datastore: r.store_name,
        downloadPercent: String(r.download_pct),
      })),
      bits: t.bits,
      isdynamicallyscalable: t.dynamically_scalable === 1,
      directdownload: false,
      // An uploaded image has no URL.
      url: t.url || undefined,
      checksum: t.checksum ?? undefined,
    };
    if (t.is_iso) return { ...common, tags: isoTags.get(t.id) ?? [] };
    return {
      ...common,
      format: t.format,
      templatetype: t.type,
      hypervisor: t.hypervisor ?? undefined,
      sshkeyenabled: t.sshkey_enabled === 1,
      requireshvm: t.requires_hvm === 1,
      deployasis: false,
      templatetag: t.template_tag ?? undefined,
      details,
      tags: templateTags.get(t.id) ?? [],
    };
  });
}

/**
 * Templates as CloudStack shows them, one object per zone holding a copy (or one per template
 * in `zoneId` when given).
 */
export async function presentTemplates(
  ctx: CallContext,
  rows: TemplateRow[],
  zoneId?: number,
): Promise<object[]> {
  if (rows.length === 0) return [];
  const pairs = await ctx.app.store.db
    .selectFrom('template_store_refs')
    .select(['template_id', 'zone_id'])
    .distinct()
    .where(
      'template_id',
      'in',
      rows.map((r) => r.id),
    )
    .execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const items: ZoneItem[] = [];
  for (const r of rows) {
    const zones = pairs
      .filter((p) => p.template_id === r.id && (zoneId === undefined || p.zone_id === zoneId))
      .map((p) => p.zone_id)
      .sort((a, b) => a - b);
    if (zones.length === 0) items.push({ template: byId.get(r.id)!, zoneId: zoneId ?? null });
    for (const z of zones) items.push({ template: r, zoneId: z });
  }
  return presentItems(ctx, items);
}

// ---- registering --------------------------------------------------------------------------

export interface NewImage {
  kind: ImageKind;
  name: string;
  displayText: string;
  url: string;
  format: string;
  hypervisor: string | null;
  osTypeId: number;
  bits: number;
  /** Integer zone ids, or every zone with secondary storage. */
  zones: number[] | 'all';
  checksum: string | null;
  isPublic: boolean;
  isFeatured: boolean;
  isExtractable: boolean;
  passwordEnabled: boolean;
  sshKeyEnabled: boolean;
  dynamicallyScalable: boolean;
  requiresHvm: boolean;
  bootable: boolean;
  details: Record<string, string> | null;
  templateTag: string | null;
  type: string;
  owner: { account: AccountRow; userId: number };
  /** Put a copy on every image store of each zone rather than on the roomiest one. */
  everyStore?: boolean;
  /** Filled by a browser upload (getUploadParamsForTemplate) instead of a download of `url`. */
  upload?: boolean;
}

/**
 * The writable image stores serving a zone, in the order new templates, ISOs and snapshot backups
 * go to them: object stores (S3, Swift) before NFS and local ones, the zone's own before
 * region-wide ones, then the roomiest first (unknown room last), then the oldest. Read-only
 * stores never receive anything.
 */
export async function zoneStores(tx: Tx, zoneId: number): Promise<ImageStoreRow[]> {
  const stores = await tx
    .selectFrom('image_stores')
    .selectAll()
    .where((eb) => eb.or([eb('zone_id', '=', zoneId), eb('zone_id', 'is', null)]))
    .where('removed', 'is', null)
    .where('readonly', '=', 0)
    .orderBy('id')
    .execute();
  const free = (s: ImageStoreRow) =>
    s.capacity_bytes === null ? -1 : Number(s.capacity_bytes) - Number(s.used_bytes ?? 0);
  const rank = (s: ImageStoreRow) => (isObjectStore(s) ? 0 : 2) + (s.zone_id === null ? 1 : 0);
  return stores.sort((a, b) => rank(a) - rank(b) || free(b) - free(a));
}

async function zonesWithStores(tx: Tx): Promise<number[]> {
  const rows = await tx
    .selectFrom('image_stores as s')
    .innerJoin('zones as z', 'z.id', 's.zone_id')
    .select('z.id')
    .distinct()
    .where('s.removed', 'is', null)
    .where('z.removed', 'is', null)
    .where('s.readonly', '=', 0)
    .orderBy('z.id')
    .execute();
  return rows.map((r) => r.id);
}

/** Adds a store copy waiting to be filled by this server (downloaded, or uploaded by a browser). */
export async function addCopy(
  app: App,
  tx: Tx,
  templateId: number,
  store: ImageStoreRow,
  upload = false,
  zoneId: number = store.zone_id ?? 0,
): Promise<number> {
  const now = app.clock.now();
  return insertId(app.store, tx, 'template_store_refs', {
    template_id: templateId,
    image_store_id: store.id,
    // A region-wide store's copy is listed in the zone it was made for.
    zone_id: store.zone_id ?? zoneId,
    download_state: upload ? DownloadState.NotUploaded : DownloadState.NotDownloaded,
    download_pct: 0,
    status: upload ? 'Waiting for the upload' : 'Waiting to download',
    ms_id: app.server.id,
    destroyed: 0,
    created: now,
    updated: now,
  });
}

function eventOwner(image: NewImage): EventOwner {
  return {
    userId: image.owner.userId,
    accountId: image.owner.account.id,
    domainId: image.owner.account.domain_id,
  };
}

/**
 * Records a template (counting it against the owner's limit), creates its store copies and starts
 * filling them. Nothing is written if a zone has no secondary storage or a limit is reached.
 */
export async function createImage(app: App, image: NewImage): Promise<TemplateRow> {
  const refIds: number[] = [];
  const template = await app.store.db.transaction().execute(async (tx) => {
    const zoneIds = image.zones === 'all' ? await zonesWithStores(tx) : image.zones;
    if (zoneIds.length === 0) throw invalidParameter('No zone has secondary storage (an image store) yet');
    const storesByZone = new Map<number, ImageStoreRow[]>();
    for (const zoneId of zoneIds) {
      const stores = await zoneStores(tx, zoneId);
      if (stores.length === 0) {
        const zone = await tx
          .selectFrom('zones')
          .select('name')
          .where('id', '=', zoneId)
          .executeTakeFirstOrThrow();
        throw invalidParameter(
          `Zone ${zone.name} has no secondary storage (image store) to hold the ${image.kind.label}`,
        );
      }
      storesByZone.set(zoneId, image.everyStore ? stores : stores.slice(0, 1));
    }
    const id = await insertId(app.store, tx, 'templates', {
      uuid: app.ids.uuid(),
      name: image.name,
      display_text: image.displayText,
      is_iso: image.kind.isIso,
      format: image.format,
      type: image.type,
      bootable: image.bootable ? 1 : 0,
      os_type_id: image.osTypeId,
      hypervisor: image.hypervisor,
      account_id: image.owner.account.id,
      domain_id: image.owner.account.domain_id,
      user_id: image.owner.userId,
      is_public: image.isPublic ? 1 : 0,
      is_featured: image.isFeatured ? 1 : 0,
      is_extractable: image.isExtractable ? 1 : 0,
      password_enabled: image.passwordEnabled ? 1 : 0,
      sshkey_enabled: image.sshKeyEnabled ? 1 : 0,
      dynamically_scalable: image.dynamicallyScalable ? 1 : 0,
      requires_hvm: image.requiresHvm ? 1 : 0,
      cross_zones: image.zones === 'all' ? 1 : 0,
      bits: image.bits,
      url: image.url,
      checksum: image.checksum,
      template_tag: image.templateTag,
      details: image.details && Object.keys(image.details).length ? JSON.stringify(image.details) : null,
      state: 'Active',
      created: app.clock.now(),
    });
    if (image.type === 'USER') await reserve({ app }, tx, image.owner.account, ResourceKind.Template, 1);
    // A region-wide store serves every zone from one copy, made for the first zone that picks it.
    const placed = new Set<number>();
    for (const [zoneId, stores] of storesByZone)
      for (const s of stores) {
        if (placed.has(s.id)) continue;
        placed.add(s.id);
        refIds.push(await addCopy(app, tx, id, s, image.upload, zoneId));
      }
    const row = await tx.selectFrom('templates').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    await recordEvent({ app }, tx, eventOwner(image), {
      type: `${image.kind.eventPrefix}.CREATE`,
      description: `registered ${image.kind.label} ${image.name}`,
      resourceType: image.kind.resourceType,
      resourceId: row.uuid,
    });
    return row;
  });
  if (!image.upload) for (const refId of refIds) startTransfer(app, refId);
  return template;
}

export async function findOsType(
  ctx: Pick<CallContext, 'app'>,
  uuid: string,
): Promise<{ id: number; bits: number }> {
  const os = await ctx.app.store.db
    .selectFrom('os_types')
    .select(['id', 'bits'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!os) throw invalidParameter(`Unable to find OS type by id ${uuid}`);
  return os;
}

/** Where the bytes come from: http(s) for everyone; a file of the management server for root admins. */
export function checkUrl(ctx: CallContext, raw: string): string {
  const url = raw.trim();
  if (/^https?:\/\//i.test(url)) {
    try {
      new URL(url);
    } catch {
      throw invalidParameter(`Invalid URL ${raw}`);
    }
    return url;
  }
  if (url.startsWith('file:///') || url.startsWith('/')) {
    if (!isRootAdmin(ctx.caller))
      throw invalidParameter(
        'Only root administrators may register a file of the management server; use an http(s) URL',
      );
    return url;
  }
  throw invalidParameter(`Unsupported URL ${raw}: use http://, https:// or (administrators) file:///path`);
}

export async function resolveZones(
  ctx: CallContext,
  zoneid: string | undefined,
  zoneids: string[] | undefined,
): Promise<number[] | 'all'> {
  const given = [...(zoneid ? [zoneid] : []), ...(zoneids ?? [])];
  if (given.length === 0) throw invalidParameter('Please specify zoneid (or zoneids); -1 means every zone');
  if (given.includes('-1')) return 'all';
  const ids: number[] = [];
  for (const uuid of given) ids.push((await findZone(ctx, uuid)).id);
  return [...new Set(ids)];
}

/** The account a template is registered for: the caller's, a project's, or one an administrator names. */
export async function resolveOwner(
  ctx: CallContext,
  params: { account?: string; domainid?: string; projectid?: string },
): Promise<{ account: AccountRow; userId: number }> {
  if (!params.account && !params.projectid)
    return { account: ctx.caller.account, userId: ctx.caller.user.id };
  const { account } = await ownerFor(ctx, params);
  // A project's account has no users: what it registers is the registering member's doing.
  if (params.projectid) return { account, userId: ctx.caller.user.id };
  if (account.id === ctx.caller.account.id) return { account, userId: ctx.caller.user.id };
  const user = await ctx.app.store.db
    .selectFrom('users')
    .select('id')
    .where('account_id', '=', account.id)
    .orderBy('id')
    .executeTakeFirst();
  return { account, userId: user?.id ?? ctx.caller.user.id };
}

/** Merges details[0].k=v&details[1].k2=v2 into one object. */
export function detailsOf(map: Record<string, string>[] | undefined): Record<string, string> | null {
  if (!map) return null;
  return Object.assign({}, ...map);
}

export function checkPublicFlags(
  ctx: CallContext,
  isPublic: boolean | undefined,
  isFeatured: boolean | undefined,
): void {
  if (isFeatured && !isRootAdmin(ctx.caller))
    throw invalidParameter('Only root administrators may make templates and ISOs featured');
  if (
    isPublic &&
    ctx.caller.roleKind === 'user' &&
    !ctx.app.settings.at(ALLOW_PUBLIC_USER_TEMPLATES, 'account', ctx.caller.account.id)
  )
    throw invalidParameter(
      'Only private templates and ISOs may be created (allow.public.user.templates is false)',
    );
}

export interface TemplateParams {
  name: string;
  displaytext?: string;
  url: string;
  format: string;
  hypervisor: string;
  ostypeid?: string;
  zoneid?: string;
  zoneids?: string[];
  checksum?: string;
  ispublic?: boolean;
  isfeatured?: boolean;
  isextractable?: boolean;
  passwordenabled?: boolean;
  sshkeyenabled?: boolean;
  isdynamicallyscalable?: boolean;
  requireshvm?: boolean;
  bits?: number;
  details?: Record<string, string>[];
  templatetag?: string;
  templatetype?: string;
  directdownload?: boolean;
  account?: string;
  domainid?: string;
}

export function canonical(value: string, allowed: readonly string[], what: string): string {
  const found = allowed.find((a) => a.toLowerCase() === value.trim().toLowerCase());
  if (!found) throw invalidParameter(`Invalid ${what} ${value}: use one of ${allowed.join(', ')}`);
  return found;
}

export async function registerTemplate(ctx: CallContext, params: TemplateParams): Promise<object[]> {
  const image = await templateImage(
    ctx,
    params,
    checkUrl(ctx, params.url),
    await resolveZones(ctx, params.zoneid, params.zoneids),
  );
  return presentTemplates(ctx, [await createImage(ctx.app, image)]);
}

/** A template to create from registerTemplate's (or getUploadParamsForTemplate's) parameters, checked. */
export async function templateImage(
  ctx: CallContext,
  params: Omit<TemplateParams, 'url'>,
  url: string,
  zones: number[] | 'all',
): Promise<NewImage> {
  const name = params.name.trim();
  if (name === '') throw invalidParameter('Template name must not be empty');
  if (params.directdownload)
    throw invalidParameter(
      'Direct download is not supported: templates are always kept on secondary storage',
    );
  if (params.format.trim().toUpperCase() === 'ISO')
    throw invalidParameter('Register ISO images with registerIso');
  const format = canonical(params.format, TEMPLATE_FORMATS, 'format');
  const hypervisor = canonical(params.hypervisor, HYPERVISORS, 'hypervisor');
  if (!HYPERVISOR_FORMATS[hypervisor].includes(format))
    throw invalidParameter(
      `${hypervisor} cannot boot ${format} images; use ${HYPERVISOR_FORMATS[hypervisor].join(' or ')}`,
    );
  if (!params.ostypeid) throw invalidParameter('Please specify ostypeid, the guest OS of the template');
  const os = await findOsType(ctx, params.ostypeid);
  const checksum = params.checksum?.trim() ? parseChecksum(params.checksum).label : null;
  checkPublicFlags(ctx, params.ispublic, params.isfeatured);
  const type = params.templatetype ? canonical(params.templatetype, TEMPLATE_TYPES, 'templatetype') : 'USER';
  if (type !== 'USER' && !isRootAdmin(ctx.caller))
    throw invalidParameter('Only root administrators may register system or built-in templates');
  const owner = await resolveOwner(ctx, params);
  return {
    kind: TEMPLATE,
    name,
    displayText: params.displaytext?.trim() || name,
    url,
    format,
    hypervisor,
    osTypeId: os.id,
    bits: params.bits ?? os.bits,
    zones,
    checksum,
    isPublic: params.ispublic ?? false,
    isFeatured: params.isfeatured ?? false,
    isExtractable: params.isextractable ?? false,
    passwordEnabled: params.passwordenabled ?? false,
    sshKeyEnabled: params.sshkeyenabled ?? false,
    dynamicallyScalable: params.isdynamicallyscalable ?? false,
    requiresHvm: params.requireshvm ?? true,
    bootable: true,
    details: detailsOf(params.details),
    templateTag: params.templatetag ?? null,
    type,
    owner,
  };
}

// ---- listing ------------------------------------------------------------------------------

const TRUE = sql<SqlBool>`1 = 1`;

function inIds(column: string, ids: number[]): RawBuilder<SqlBool> {
  if (ids.length === 0) return sql<SqlBool>`1 = 0`;
  return sql<SqlBool>`${sql.ref(column)} in (${sql.join(ids)})`;
}

function subtreeDomains(path: string): RawBuilder<unknown> {
  return sql`(select id from domains where ${pathPrefix('path', path)})`;
}

function ownedBy(scope: OwnerScope): RawBuilder<SqlBool> {
  const owned = ownedIn(scope);
  // Lists without projectid leave projects' templates out; projectid=-1 keeps only theirs.
  if (!scope.projects) return owned;
  const project = isProjectAccount('t.account_id');
  return sql<SqlBool>`(${owned} and ${scope.projects === 'only' ? project : sql`not ${project}`})`;
}

function ownedIn(scope: OwnerScope): RawBuilder<SqlBool> {
  switch (scope.kind) {
    case 'all':
      return TRUE;
    case 'accounts':
      return inIds('t.account_id', scope.accountIds);
    case 'domain':
      return sql<SqlBool>`t.domain_id = ${scope.domainId}`;
    case 'subtree':
      return sql<SqlBool>`t.domain_id in ${subtreeDomains(scope.path)}`;
  }
}

function sharedWith(scope: OwnerScope): RawBuilder<SqlBool> {
  const perms = (where: RawBuilder<unknown>) =>
    sql<SqlBool>`t.id in (select template_id from template_permissions where ${where})`;
  switch (scope.kind) {
    case 'all':
      return perms(TRUE);
    case 'accounts':
      return perms(inIds('account_id', scope.accountIds));
    case 'domain':
      return perms(sql`account_id in (select id from accounts where domain_id = ${scope.domainId})`);
    case 'subtree':
      return perms(
        sql`account_id in (select id from accounts where domain_id in ${subtreeDomains(scope.path)})`,
      );
  }
}

const or = (...parts: RawBuilder<SqlBool>[]) => sql<SqlBool>`(${sql.join(parts, sql` or `)})`;
const and = (...parts: RawBuilder<SqlBool>[]) => sql<SqlBool>`(${sql.join(parts, sql` and `)})`;
const not = (part: RawBuilder<SqlBool>) => sql<SqlBool>`not ${part}`;

/**
 * Which templates a filter shows, as upstream: featured and community are public ones; self the
 * caller's own; sharedexecutable those shared with the caller; executable everything the caller
 * may deploy; all (administrators) everything in their reach. All but self and all list ready
 * copies only.
 */
function filterCondition(
  ctx: CallContext,
  filter: TemplateFilter,
  scope: OwnerScope,
): { where: RawBuilder<SqlBool>; onlyReady: boolean } {
  const pub = sql<SqlBool>`t.is_public = 1`;
  const featured = sql<SqlBool>`t.is_featured = 1`;
  switch (filter) {
    case 'featured':
      return { where: and(pub, featured), onlyReady: true };
    case 'community':
      return { where: and(pub, not(featured)), onlyReady: true };
    case 'self':
      return { where: ownedBy(scope), onlyReady: false };
    case 'selfexecutable':
      return { where: ownedBy(scope), onlyReady: true };
    case 'sharedexecutable':
      return { where: and(sharedWith(scope), not(ownedBy(scope))), onlyReady: true };
    case 'executable':
      return { where: or(ownedBy(scope), pub, sharedWith(scope)), onlyReady: true };
    case 'all':
      if (ctx.caller.roleKind === 'user') throw invalidParameter('Filter all can be specified by admin only');
      return { where: or(ownedBy(scope), pub), onlyReady: false };
  }
}

export interface ListImagesParams {
  filter: string;
  id?: string;
  ids?: string[];
  name?: string;
  keyword?: string;
  zoneid?: string;
  hypervisor?: string;
  tags?: Record<string, string>[];
  showremoved?: boolean;
  isready?: boolean;
  templatetype?: string;
  bootable?: boolean;
  ispublic?: boolean;
  account?: string;
  domainid?: string;
  listall?: boolean;
  isrecursive?: boolean;
  projectid?: string;
  page?: number;
  pagesize?: number;
}

export async function listImages(ctx: CallContext, kind: ImageKind, params: ListImagesParams) {
  const { app } = ctx;
  const filter = canonical(
    params.filter,
    FILTERS,
    `${kind === ISO ? 'isofilter' : 'templatefilter'}`,
  ) as TemplateFilter;
  let scope = await listScope(ctx, {
    account: params.account,
    domainid: params.domainid,
    listall: params.listall,
    isrecursive: params.isrecursive,
    projectid: params.projectid,
  });
  // "all" reaches every template an administrator could manage, without listall.
  if (filter === 'all' && !params.account && !params.domainid && ctx.caller.roleKind !== 'user')
    scope = isRootAdmin(ctx.caller) ? { kind: 'all' } : { kind: 'subtree', path: ctx.caller.domain.path };
  const { where, onlyReady } = filterCondition(ctx, filter, scope);
  let q = app.store.db
    .selectFrom('template_store_refs as r')
    .innerJoin('templates as t', 't.id', 'r.template_id')
    .innerJoin('image_stores as s', 's.id', 'r.image_store_id')
    .where('t.is_iso', '=', kind.isIso)
    .where(where);
  if (params.showremoved && ctx.caller.roleKind !== 'user') {
    q = q.where((eb) =>
      eb.or([
        eb('t.removed', 'is not', null),
        eb.and([eb('r.destroyed', '=', 0), eb('s.removed', 'is', null)]),
      ]),
    );
  } else {
    q = q.where('t.removed', 'is', null).where('r.destroyed', '=', 0).where('s.removed', 'is', null);
  }
  if (onlyReady || params.isready) q = q.where('r.download_state', '=', DownloadState.Downloaded);
  if (params.isready === false) q = q.where('r.download_state', '!=', DownloadState.Downloaded);
  if (params.id) q = q.where('t.uuid', '=', params.id);
  if (params.ids?.length) q = q.where('t.uuid', 'in', params.ids);
  if (params.name) q = q.where('t.name', '=', params.name);
  if (params.keyword) {
    // lower() on both sides: MySQL databases with a binary collation compare case-sensitively.
    const pattern = `%${escapeLike(params.keyword.toLowerCase())}%`;
    q = q.where(
      sql<SqlBool>`(${likeEscaped(sql`lower(t.name)`, pattern)} or ${likeEscaped(sql`lower(t.display_text)`, pattern)})`,
    );
  }
  if (params.zoneid) q = q.where('r.zone_id', '=', (await findZone(ctx, params.zoneid)).id);
  if (params.hypervisor)
    q = q.where('t.hypervisor', '=', canonical(params.hypervisor, HYPERVISORS, 'hypervisor'));
  if (params.templatetype)
    q = q.where('t.type', '=', canonical(params.templatetype, TEMPLATE_TYPES, 'templatetype'));
  if (params.bootable !== undefined) q = q.where('t.bootable', '=', params.bootable ? 1 : 0);
  if (params.ispublic !== undefined) q = q.where('t.is_public', '=', params.ispublic ? 1 : 0);
  q = withTags(q, kind.resourceType, 't.id', params.tags);
  const pairs = q.select(['t.id as template_id', 'r.zone_id as zone_id']).distinct();
  const { count } = await app.store.db
    .selectFrom(pairs.as('p'))
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .executeTakeFirstOrThrow();
  const page = await paginate(pairs.orderBy('template_id').orderBy('zone_id'), pageOf(app, params)).execute();
  const rows = page.length
    ? await app.store.db
        .selectFrom('templates')
        .selectAll()
        .where(
          'id',
          'in',
          page.map((p) => p.template_id),
        )
        .execute()
    : [];
  const byId = new Map(rows.map((r) => [r.id, r]));
  const items = await presentItems(
    ctx,
    page.map((p) => ({ template: byId.get(p.template_id)!, zoneId: p.zone_id })),
  );
  return listResult(items, Number(count));
}

// ---- updating -----------------------------------------------------------------------------

export interface UpdateImageParams {
  id: string;
  name?: string;
  displaytext?: string;
  ostypeid?: string;
  bootable?: boolean;
  passwordenabled?: boolean;
  sshkeyenabled?: boolean;
  isdynamicallyscalable?: boolean;
  requireshvm?: boolean;
  details?: Record<string, string>[];
  cleanupdetails?: boolean;
  templatetag?: string;
  templatetype?: string;
}

export async function updateImage(
  ctx: CallContext,
  kind: ImageKind,
  params: UpdateImageParams,
): Promise<object> {
  const { app } = ctx;
  const t = await findImage(ctx, kind, params.id);
  await checkImageOwner(ctx, t);
  const changes: Updateable<TemplateTable> = {};
  if (params.name !== undefined) {
    if (params.name.trim() === '') throw invalidParameter(`${kind.label} name must not be empty`);
    changes.name = params.name.trim();
  }
  if (params.displaytext !== undefined) changes.display_text = params.displaytext;
  if (params.ostypeid) changes.os_type_id = (await findOsType(ctx, params.ostypeid)).id;
  const flags = {
    bootable: params.bootable,
    password_enabled: params.passwordenabled,
    sshkey_enabled: params.sshkeyenabled,
    dynamically_scalable: params.isdynamicallyscalable,
    requires_hvm: params.requireshvm,
  } as const;
  for (const [column, value] of Object.entries(flags))
    if (value !== undefined) changes[column as keyof typeof flags] = value ? 1 : 0;
  if (params.cleanupdetails) changes.details = null;
  else if (params.details)
    changes.details = JSON.stringify({
      ...(t.details ? JSON.parse(t.details) : {}),
      ...detailsOf(params.details),
    });
  if (params.templatetag !== undefined || params.templatetype !== undefined) {
    if (!isRootAdmin(ctx.caller))
      throw invalidParameter('Only root administrators may change templatetag and templatetype');
    if (params.templatetag !== undefined) changes.template_tag = params.templatetag || null;
    if (params.templatetype) changes.type = canonical(params.templatetype, TEMPLATE_TYPES, 'templatetype');
  }
  const row = await app.store.db.transaction().execute(async (tx) => {
    if (Object.keys(changes).length)
      await tx.updateTable('templates').set(changes).where('id', '=', t.id).execute();
    await recordEvent(
      ctx,
      tx,
      { userId: ctx.caller.user.id, accountId: ctx.caller.account.id, domainId: ctx.caller.domain.id },
      {
        type: `${kind.eventPrefix}.UPDATE`,
        description: `updated ${kind.label} ${t.name}`,
        resourceType: kind.resourceType,
        resourceId: t.uuid,
      },
    );
    return tx.selectFrom('templates').selectAll().where('id', '=', t.id).executeTakeFirstOrThrow();
  });
  return (await presentTemplates(ctx, [row]))[0];
}

// ---- permissions --------------------------------------------------------------------------

export interface PermissionParams {
  id: string;
  accounts?: string[];
  projectids?: string[];
  op?: string;
  ispublic?: boolean;
  isfeatured?: boolean;
  isextractable?: boolean;
}

export async function updatePermissions(
  ctx: CallContext,
  kind: ImageKind,
  params: PermissionParams,
): Promise<object> {
  const { app } = ctx;
  const t = await findImage(ctx, kind, params.id);
  await checkImageOwner(ctx, t);
  checkPublicFlags(ctx, params.ispublic, params.isfeatured);
  if (params.isfeatured !== undefined && !isRootAdmin(ctx.caller))
    throw invalidParameter('Only root administrators may change isfeatured');
  if (params.isextractable !== undefined && kind === TEMPLATE && !isRootAdmin(ctx.caller))
    throw invalidParameter('Only root administrators may change isextractable of a template');
  const op = params.op ? canonical(params.op, ['add', 'remove', 'reset'], 'op') : undefined;
  const named = (params.accounts?.length ?? 0) + (params.projectids?.length ?? 0);
  if (named && !op) throw invalidParameter('Please specify op (add, remove or reset) with accounts');
  if (op === 'reset' && named) throw invalidParameter('op=reset takes no accounts');
  if ((op === 'add' || op === 'remove') && !named) throw invalidParameter(`op=${op} needs accounts`);
  const domain = await domainOf(ctx, t.domain_id);
  const accounts: AccountRow[] = [];
  for (const name of params.accounts ?? []) {
    const a = await app.store.db
      .selectFrom('accounts')
      .selectAll()
      .where('name', '=', name)
      .where('domain_id', '=', t.domain_id)
      .executeTakeFirst();
    if (!a) throw invalidParameter(`Unable to find account ${name} in domain ${domain.name}`);
    if (a.id === t.account_id) throw invalidParameter(`Account ${name} owns the ${kind.label} already`);
    accounts.push(a);
  }
  // Shared with a project: with its account, so its members see it as shared with them.
  for (const uuid of params.projectids ?? []) {
    const project = await findProject(ctx, uuid);
    if (project.domain_id !== t.domain_id)
      throw invalidParameter(`Project ${project.name} is not in domain ${domain.name}`);
    if (project.project_account_id === t.account_id)
      throw invalidParameter(`Project ${project.name} owns the ${kind.label} already`);
    accounts.push(await projectAccountOf(app.store.db, project));
  }
  await app.store.db.transaction().execute(async (tx) => {
    const flags: Updateable<TemplateTable> = {};
    if (params.ispublic !== undefined) flags.is_public = params.ispublic ? 1 : 0;
    if (params.isfeatured !== undefined) flags.is_featured = params.isfeatured ? 1 : 0;
    if (params.isextractable !== undefined) flags.is_extractable = params.isextractable ? 1 : 0;
    if (Object.keys(flags).length)
      await tx.updateTable('templates').set(flags).where('id', '=', t.id).execute();
    if (op === 'reset') await tx.deleteFrom('template_permissions').where('template_id', '=', t.id).execute();
    for (const a of accounts) {
      await tx
        .deleteFrom('template_permissions')
        .where('template_id', '=', t.id)
        .where('account_id', '=', a.id)
        .execute();
      if (op === 'add')
        await tx.insertInto('template_permissions').values({ template_id: t.id, account_id: a.id }).execute();
    }
    await recordEvent(
      ctx,
      tx,
      { userId: ctx.caller.user.id, accountId: ctx.caller.account.id, domainId: ctx.caller.domain.id },
      {
        type: `${kind.eventPrefix}.UPDATE`,
        description: `updated permissions of ${kind.label} ${t.name}`,
        resourceType: kind.resourceType,
        resourceId: t.uuid,
      },
    );
  });
  return success();
}

export async function listPermissions(ctx: CallContext, kind: ImageKind, uuid: string): Promise<object> {
  const t = await findAdministeredImage(ctx, kind, uuid);
  const domain = await domainOf(ctx, t.domain_id);
  const names = await ctx.app.store.db
    .selectFrom('template_permissions as p')
    .innerJoin('accounts as a', 'a.id', 'p.account_id')
    .leftJoin('projects as j', 'j.project_account_id', 'a.id')
    .select(['a.name', 'j.uuid as project'])
    .where('p.template_id', '=', t.id)
    .orderBy('a.name')
    .execute();
  return {
    id: t.uuid,
    ispublic: t.is_public === 1,
    domainid: domain.uuid,
    account: names.filter((n) => !n.project).map((n) => n.name),
    projectids: names.flatMap((n) => (n.project ? [n.project] : [])),
  };
}

// ---- copying ------------------------------------------------------------------------------

export async function copyImage(
  ctx: CallContext,
  kind: ImageKind,
  params: { id: string; sourcezoneid?: string; destzoneid?: string; destzoneids?: string[] },
): Promise<object> {
  const { app } = ctx;
  const t = await findImage(ctx, kind, params.id);
  await checkImageOwner(ctx, t);
  const destUuids = [...(params.destzoneid ? [params.destzoneid] : []), ...(params.destzoneids ?? [])];
  if (destUuids.length === 0) throw invalidParameter('Please specify destzoneid or destzoneids');
  const ready = await app.store.db
    .selectFrom('template_store_refs as r')
    .innerJoin('image_stores as s', 's.id', 'r.image_store_id')
    .selectAll('r')
    .where('r.template_id', '=', t.id)
    .where('r.destroyed', '=', 0)
    .where('s.removed', 'is', null)
    .where('r.download_state', '=', DownloadState.Downloaded)
    .orderBy('r.id')
    .execute();
  const sourceZone = params.sourcezoneid ? await findZone(ctx, params.sourcezoneid) : undefined;
  const source = ready.find((r) => sourceZone === undefined || r.zone_id === sourceZone.id);
  if (!source)
    throw invalidParameter(
      `${kind.label} ${t.name} is not ready${sourceZone ? ` in zone ${sourceZone.name}` : ' in any zone'}, so it cannot be copied`,
    );
  const targets: { zoneId: number; refId: number }[] = [];
  await app.store.db.transaction().execute(async (tx) => {
    for (const uuid of [...new Set(destUuids)]) {
      const zone = await findZone(ctx, uuid, tx);
      if (zone.id === source.zone_id) throw invalidParameter(`Zone ${zone.name} is the source zone`);
      const existing = await tx
        .selectFrom('template_store_refs')
        .selectAll()
        .where('template_id', '=', t.id)
        .where('zone_id', '=', zone.id)
        .where('destroyed', '=', 0)
        .where('download_state', '!=', DownloadState.Error)
        .executeTakeFirst();
      if (existing) throw invalidParameter(`${kind.label} ${t.name} is already in zone ${zone.name}`);
      const [store] = await zoneStores(tx, zone.id);
      if (!store) throw invalidParameter(`Zone ${zone.name} has no secondary storage (image store)`);
      const failed = await tx
        .selectFrom('template_store_refs')
        .select('id')
        .where('template_id', '=', t.id)
        .where('image_store_id', '=', store.id)
        .executeTakeFirst();
      // A copy that failed (or was deleted) on this store before is reused rather than duplicated.
      if (failed) {
        await tx
          .updateTable('template_store_refs')
          .set({
            destroyed: 0,
            download_state: DownloadState.NotDownloaded,
            status: 'Waiting to copy',
            error: null,
            install_path: null,
            ms_id: app.server.id,
            updated: app.clock.now(),
          })
          .where('id', '=', failed.id)
          .execute();
        targets.push({ zoneId: zone.id, refId: failed.id });
      } else targets.push({ zoneId: zone.id, refId: await addCopy(app, tx, t.id, store, false, zone.id) });
    }
  });
  for (const target of targets) {
    const result = await runTransfer(app, target.refId, { kind: 'copy', fromRefId: source.id });
    if (!result.ok) throw invalidParameter(`Copying ${kind.label} ${t.name} failed: ${result.reason}`);
  }
  return (await presentTemplates(ctx, [t], targets[0].zoneId))[0];
}

// ---- deleting -----------------------------------------------------------------------------

/**
 * Deletes the copies of a template in one zone or everywhere, after the in-use checks (skipped
 * when forced). Once no copy is left the template itself is removed and stops counting.
 */
export async function deleteImage(
  ctx: CallContext,
  kind: ImageKind,
  params: { id: string; zoneid?: string; forced?: boolean },
): Promise<object> {
  const t = await findImage(ctx, kind, params.id);
  await checkImageOwner(ctx, t);
  const zone = params.zoneid ? await findZone(ctx, params.zoneid) : undefined;
  if (!params.forced) {
    for (const check of inUseChecks) {
      const reason = await check(ctx, t, zone?.id);
      if (reason)
        throw invalidParameter(
          `Unable to delete ${kind.label} ${t.name}: ${reason}${kind === TEMPLATE ? '; use forced=true to delete it anyway' : ''}`,
        );
    }
  }
  const destroyed = await destroyImage(ctx.app, ctx.caller.user.id, t, zone?.id);
  await removeCopies(ctx.app, destroyed);
  return success();
}

async function destroyImage(
  app: App,
  userId: number,
  t: TemplateRow,
  zoneId: number | undefined,
): Promise<TemplateStoreRefRow[]> {
  const kind = t.is_iso ? ISO : TEMPLATE;
  return app.store.db.transaction().execute(async (tx) => {
    let q = tx
      .selectFrom('template_store_refs')
      .selectAll()
      .where('template_id', '=', t.id)
      .where('destroyed', '=', 0);
    if (zoneId !== undefined) q = q.where('zone_id', '=', zoneId);
    const refs = await q.execute();
    if (zoneId !== undefined && refs.length === 0)
      throw invalidParameter(`${kind.label} ${t.name} has no copy in that zone`);
    const account = await tx
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', t.account_id)
      .executeTakeFirst();
    const now = app.clock.now();
    if (refs.length)
      await tx
        .updateTable('template_store_refs')
        .set({ destroyed: 1, updated: now })
        .where(
          'id',
          'in',
          refs.map((r) => r.id),
        )
        .execute();
    const stored = refs
      .filter((r) => r.download_state === DownloadState.Downloaded)
      .reduce((sum, r) => sum + storageGiB(r.physical_size_bytes), 0);
    if (account) await reserve({ app }, tx, account, ResourceKind.SecondaryStorage, -stored);
    const left = await tx
      .selectFrom('template_store_refs')
      .select('id')
      .where('template_id', '=', t.id)
      .where('destroyed', '=', 0)
      .executeTakeFirst();
    if (!left) {
      await tx
        .updateTable('templates')
        .set({ removed: now, state: 'Inactive' })
        .where('id', '=', t.id)
        .execute();
      await tx.deleteFrom('template_permissions').where('template_id', '=', t.id).execute();
      await tx.deleteFrom('template_extracts').where('template_id', '=', t.id).execute();
      if (account && t.type === 'USER') await reserve({ app }, tx, account, ResourceKind.Template, -1);
    }
    await recordEvent(
      { app },
      tx,
      { userId, accountId: t.account_id, domainId: t.domain_id },
      {
        type: `${kind.eventPrefix}.DELETE`,
        description: `deleted ${kind.label} ${t.name}${left ? ' from one zone' : ''}`,
        resourceType: kind.resourceType,
        resourceId: t.uuid,
      },
    );
    return refs;
  });
}

// ---- extracting ---------------------------------------------------------------------------

export const EXTRACT_URL_EXPIRATION = defineSetting({
  name: 'extract.url.expiration.interval',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 14400,
  min: 60,
  description: 'Seconds an extract link (extractTemplate, extractIso, extractVolume) stays valid.',
});

export const EXTRACT_URL_BASE = defineSetting({
  name: 'extract.url.base',
  category: 'Advanced',
  type: 'String',
  defaultValue: '',
  description:
    'Public base URL of the management server for extract links (e.g. https://cloud.example.com); empty means the address it listens on.',
});

/** The address this server listens on, learnt when it starts listening. */
const listeningUrls = new WeakMap<App, string>();

export function setListeningUrl(app: App, url: string): void {
  listeningUrls.set(app, url);
}

/** Where extract links point: extract.url.base, or the address this server listens on. */
export function extractBaseUrl(app: App): string {
  return (app.settings.get(EXTRACT_URL_BASE) || listeningUrls.get(app) || '').replace(/\/+$/, '');
}

export async function extractImage(
  ctx: CallContext,
  kind: ImageKind,
  params: { id: string; mode: string; zoneid?: string },
): Promise<object> {
  const { app } = ctx;
  if (params.mode.trim().toUpperCase() !== 'HTTP_DOWNLOAD')
    throw invalidParameter(`Unsupported extract mode ${params.mode}: only HTTP_DOWNLOAD is supported`);
  const t = await findAdministeredImage(ctx, kind, params.id);
  if (t.type !== 'USER')
    throw invalidParameter(`The ${t.type.toLowerCase()} ${kind.label} ${t.name} cannot be extracted`);
  if (!t.is_extractable && ctx.caller.roleKind === 'user')
    throw invalidParameter(`${kind.label} ${t.name} is not extractable`);
  const zone = params.zoneid ? await findZone(ctx, params.zoneid) : undefined;
  let q = app.store.db
    .selectFrom('template_store_refs as r')
    .innerJoin('image_stores as s', 's.id', 'r.image_store_id')
    .selectAll('r')
    .where('r.template_id', '=', t.id)
    .where('r.destroyed', '=', 0)
    .where('s.removed', 'is', null)
    .where('r.download_state', '=', DownloadState.Downloaded);
  if (zone) q = q.where((eb) => eb.or([eb('r.zone_id', '=', zone.id), eb('s.zone_id', 'is', null)]));
  const ref = await q.orderBy('r.id').executeTakeFirst();
  if (!ref)
    throw invalidParameter(`${kind.label} ${t.name} is not ready${zone ? ` in zone ${zone.name}` : ''}`);
  const token = randomBytes(24).toString('base64url');
  const now = app.clock.now();
  const file = ref.install_path?.split('/').pop() ?? `${t.uuid}`;
  const store = await app.store.db
    .selectFrom('image_stores')
    .selectAll()
    .where('id', '=', ref.image_store_id)
    .executeTakeFirstOrThrow();
  // An object store signs the link itself: the download goes straight to it, not through us.
  const signed =
    isObjectStore(store) && ref.install_path
      ? await signedUrl(app, store, ref.install_path, app.settings.get(EXTRACT_URL_EXPIRATION), file)
      : undefined;
  if (!signed)
    await app.store.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('template_extracts')
        .values({
          token,
          template_id: t.id,
          store_ref_id: ref.id,
          account_id: ctx.caller.account.id,
          created: now,
          expires: now + app.settings.get(EXTRACT_URL_EXPIRATION) * 1000,
        })
        .execute();
      await tx.deleteFrom('template_extracts').where('expires', '<', now).execute();
    });
  const base = extractBaseUrl(app);
  const zoneRow = await app.store.db
    .selectFrom('zones')
    .select(['uuid', 'name'])
    .where('id', '=', ref.zone_id)
    .executeTakeFirst();
  return {
    id: t.uuid,
    name: t.name,
    accountid: ctx.caller.account.uuid,
    state: 'DOWNLOAD_URL_CREATED',
    zoneid: zoneRow?.uuid,
    zonename: zoneRow?.name,
    extractMode: 'HTTP_DOWNLOAD',
    url: signed ?? `${base}/client/extract/${token}/${file}`,
    created: formatDate(now),
  };
}

// ---- registrations ------------------------------------------------------------------------

for (const kind of [TEMPLATE, ISO]) {
  registerTaggable(kind.resourceType, async (ctx, uuid) => {
    const t = await ctx.app.store.db
      .selectFrom('templates')
      .select(['id', 'account_id', 'domain_id'])
      .where('uuid', '=', uuid)
      .where('is_iso', '=', kind.isIso)
      .where('removed', 'is', null)
      .executeTakeFirst();
    return t && { id: t.id, accountId: t.account_id, domainId: t.domain_id };
  });
}

registerResourceCounter(ResourceKind.Template, async (tx, accountId) => {
  const r = await tx
    .selectFrom('templates')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('account_id', '=', accountId)
    .where('type', '=', 'USER')
    .where('removed', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(r.n);
});

registerResourceCounter(ResourceKind.SecondaryStorage, async (tx, accountId) => {
  const refs = await tx
    .selectFrom('template_store_refs as r')
    .innerJoin('templates as t', 't.id', 'r.template_id')
    .select('r.physical_size_bytes')
    .where('t.account_id', '=', accountId)
    .where('r.destroyed', '=', 0)
    .where('r.download_state', '=', DownloadState.Downloaded)
    .execute();
  return refs.reduce((sum, r) => sum + storageGiB(r.physical_size_bytes), 0);
});

onImageStoreDelete(async (app, store) => {
  const r = await app.store.db
    .selectFrom('template_store_refs as r')
    .innerJoin('templates as t', 't.id', 'r.template_id')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('r.image_store_id', '=', store.id)
    .where('r.destroyed', '=', 0)
    .where('t.type', '!=', 'BUILTIN')
    .executeTakeFirstOrThrow();
  const n = Number(r.n);
  return n > 0 ? `it holds ${n} template or ISO cop${n === 1 ? 'y' : 'ies'}; delete them first` : undefined;
});

// An account's templates go with it; copies in use by its VMs were released by compute's cleanup.
onAccountDelete(async (ctx, account) => {
  const owned = await ctx.app.store.db
    .selectFrom('templates')
    .selectAll()
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .execute();
  for (const t of owned)
    await removeCopies(ctx.app, await destroyImage(ctx.app, ctx.caller.user.id, t, undefined));
  await ctx.app.store.db.deleteFrom('template_permissions').where('account_id', '=', account.id).execute();
});
