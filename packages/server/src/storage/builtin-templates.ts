/**
 * Templates the cloud provides itself: the simulator's built-in template, so a fresh zone can
 * deploy at once, and any system template another capability defines (the KVM test image). They
 * are registered for every zone and copied into each image store as stores appear.
 */
import type { App } from '../context.ts';
import type { AccountRow } from '../db/schema.ts';
import { ApiError } from '../errors.ts';
import { onImageStoreAdd } from '../infra/image-stores.ts';
import { startTransfer } from './downloads.ts';
import { addCopy, createImage, TEMPLATE, zoneStores } from './templates.ts';

export interface SystemTemplate {
  name: string;
  displayText?: string;
  /** http(s), file:// or one of the images the server makes (BUILTIN_IMAGES). */
  url: string;
  format: 'QCOW2' | 'RAW' | 'VHD' | 'VHDX' | 'OVA' | 'TAR';
  hypervisor: string;
  /** Guest OS description, as listOsTypes spells it. */
  osType: string;
  checksum?: string;
  /** BUILTIN templates go to every image store; SYSTEM ones to one store per zone. */
  type: 'BUILTIN' | 'SYSTEM';
  passwordEnabled?: boolean;
  sshKeyEnabled?: boolean;
}

/** CloudStack seeds the same for its simulator; here it is a real, empty 2 GiB QCOW2 image. */
export const SIMULATOR_TEMPLATE: SystemTemplate = {
  name: 'CentOS 5.5(64-bit) no GUI (Simulator)',
  url: 'builtin://simulator/centos55-x86_64.qcow2',
  format: 'QCOW2',
  hypervisor: 'Simulator',
  osType: 'Other Linux (64-bit)',
  type: 'BUILTIN',
  passwordEnabled: true,
};

const definitions: SystemTemplate[] = [SIMULATOR_TEMPLATE];

/**
 * Declares a template the cloud provides (for example the KVM test image). It is registered for
 * every zone with secondary storage at the next start, image store addition or periodic check.
 */
export function defineSystemTemplate(def: SystemTemplate): void {
  if (!definitions.some((d) => d.name === def.name)) definitions.push(def);
}

async function rootAdmin(app: App): Promise<{ account: AccountRow; userId: number }> {
  const db = app.store.db;
  const account = await db
    .selectFrom('accounts as a')
    .innerJoin('domains as d', 'd.id', 'a.domain_id')
    .selectAll('a')
    .where('d.parent_id', 'is', null)
    .where('a.type', '=', 1)
    .orderBy('a.id')
    .executeTakeFirstOrThrow();
  const user = await db
    .selectFrom('users')
    .select('id')
    .where('account_id', '=', account.id)
    .orderBy('id')
    .executeTakeFirstOrThrow();
  return { account, userId: user.id };
}

/** Registers a definition once: one an administrator deleted stays deleted. */
async function registerDefinition(app: App, def: SystemTemplate): Promise<void> {
  const existing = await app.store.db
    .selectFrom('templates')
    .select('id')
    .where('name', '=', def.name)
    .where('url', '=', def.url)
    .executeTakeFirst();
  if (existing) return;
  const os = await app.store.db
    .selectFrom('os_types')
    .select(['id', 'bits'])
    .where('description', '=', def.osType)
    .executeTakeFirstOrThrow();
  try {
    await createImage(app, {
      kind: TEMPLATE,
      name: def.name,
      displayText: def.displayText ?? def.name,
      url: def.url,
      format: def.format,
      hypervisor: def.hypervisor,
      osTypeId: os.id,
      bits: os.bits,
      zones: 'all',
      checksum: def.checksum ?? null,
      isPublic: true,
      isFeatured: true,
      isExtractable: false,
      passwordEnabled: def.passwordEnabled ?? false,
      sshKeyEnabled: def.sshKeyEnabled ?? false,
      dynamicallyScalable: false,
      requiresHvm: true,
      bootable: true,
      details: null,
      templateTag: null,
      type: def.type,
      owner: await rootAdmin(app),
      everyStore: def.type === 'BUILTIN',
    });
  } catch (e) {
    // No zone has secondary storage yet: the template is registered when the first store appears.
    if (!(e instanceof ApiError)) throw e;
  }
}

/**
 * Gives every zone (every store, for built-ins) a copy of each template registered for all
 * zones, so zones and stores added later catch up. Copies deleted on purpose (destroyed rows)
 * count as present, so a template removed from one zone stays removed there.
 */
async function addMissingCopies(app: App): Promise<void> {
  const db = app.store.db;
  const crossZone = await db
    .selectFrom('templates')
    .select(['id', 'type'])
    .where('cross_zones', '=', 1)
    .where('removed', 'is', null)
    .execute();
  if (crossZone.length === 0) return;
  const stores = await db
    .selectFrom('image_stores as s')
    .innerJoin('zones as z', 'z.id', 's.zone_id')
    .select(['s.id', 's.zone_id'])
    .where('s.removed', 'is', null)
    .where('z.removed', 'is', null)
    .where('s.readonly', '=', 0)
    .execute();
  const refs = await db
    .selectFrom('template_store_refs')
    .select(['template_id', 'image_store_id', 'zone_id'])
    .where(
      'template_id',
      'in',
      crossZone.map((t) => t.id),
    )
    .execute();
  const started: number[] = [];
  await db.transaction().execute(async (tx) => {
    for (const t of crossZone) {
      const mine = refs.filter((r) => r.template_id === t.id);
      if (t.type === 'BUILTIN') {
        for (const s of stores) {
          if (mine.some((r) => r.image_store_id === s.id)) continue;
          const store = await tx
            .selectFrom('image_stores')
            .selectAll()
            .where('id', '=', s.id)
            .executeTakeFirstOrThrow();
          started.push(await addCopy(app, tx, t.id, store));
        }
      } else {
        for (const zoneId of new Set(stores.map((s) => s.zone_id))) {
          if (zoneId === null || mine.some((r) => r.zone_id === zoneId)) continue;
          const [store] = await zoneStores(tx, zoneId);
          if (store) started.push(await addCopy(app, tx, t.id, store, false, zoneId));
        }
      }
    }
  });
  for (const refId of started) startTransfer(app, refId);
}

/** Registers the defined system templates and fills zones and stores that lack them. */
export async function ensureSystemTemplates(app: App): Promise<void> {
  for (const def of definitions) await registerDefinition(app, def);
  await addMissingCopies(app);
}

onImageStoreAdd(async (app) => {
  await ensureSystemTemplates(app).catch((err) =>
    app.log.error({ err }, 'could not give the new image store its built-in templates'),
  );
});
