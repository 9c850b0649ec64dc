/**
 * createTemplate: a template made from a backed-up snapshot or from a stopped VM's ROOT volume.
 * The template is recorded with one copy on the zone's roomiest image store, which a host fills by
 * backing the source up there (createSnapshot with the store as secondary); the copy is then
 * Downloaded, so VMs deploy from it like from any registered template.
 */
import type { App, CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { AccountRow, ImageStoreRow, StoragePoolRow, TemplateRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { ResourceKind, reserve } from '../iam/limits.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { DownloadState } from './downloads.ts';
import { storageGiB } from './images.ts';
import { isRemoteStore, publishStaged } from './remote-stores.ts';
import { findSnapshot, stageSnapshot, storeLocation } from './snapshot-records.ts';
import {
  addCopy,
  checkPublicFlags,
  detailsOf,
  findOsType,
  presentTemplates,
  resolveOwner,
  zoneStores,
} from './templates.ts';
import { hostForPool, poolLocation } from './volume-ops.ts';
import { findVolume, volumeJobTarget } from './volumes.ts';

/** What the template is made of: an image path a host reaching `pool` can read. */
interface Source {
  path: string;
  pool: StoragePoolRow;
  zoneId: number;
  sizeBytes: number;
  hypervisor: string;
  label: string;
}

async function hypervisorOf(app: App, volume: { template_id: number | null; vm_id: number | null }) {
  const db = app.store.db;
  if (volume.template_id !== null) {
    const t = await db
      .selectFrom('templates')
      .select('hypervisor')
      .where('id', '=', volume.template_id)
      .executeTakeFirst();
    if (t?.hypervisor) return t.hypervisor;
  }
  if (volume.vm_id !== null) {
    const vm = await db
      .selectFrom('vms')
      .select('hypervisor')
      .where('id', '=', volume.vm_id)
      .executeTakeFirst();
    if (vm) return vm.hypervisor;
  }
  return undefined;
}

async function sourceOf(
  ctx: CallContext,
  params: { snapshotid?: string; volumeid?: string },
): Promise<Source> {
  const db = ctx.app.store.db;
  if (!params.snapshotid === !params.volumeid)
    throw invalidParameter('Either snapshotid or volumeid (not both) is needed to create a template');
  const poolById = async (id: number | null) =>
    id === null
      ? undefined
      : db.selectFrom('storage_pools').selectAll().where('id', '=', id).executeTakeFirst();
  if (params.snapshotid) {
    const snap = await findSnapshot(ctx, params.snapshotid);
    if (snap.state !== 'BackedUp' || !snap.path)
      throw invalidParameter(
        `Snapshot ${snap.name} is ${snap.state}: only a backed-up snapshot makes a template`,
      );
    const volume = await db
      .selectFrom('volumes')
      .select(['template_id', 'vm_id'])
      .where('id', '=', snap.volume_id)
      .executeTakeFirstOrThrow();
    const pool = await poolById(snap.pool_id);
    const hypervisor = await hypervisorOf(ctx.app, volume);
    if (!pool || !hypervisor)
      throw invalidParameter(`The volume of snapshot ${snap.name} is gone: its hypervisor is unknown`);
    await stageSnapshot(ctx.app, snap);
    return {
      path: snap.path,
      pool,
      zoneId: snap.zone_id,
      sizeBytes: Number(snap.size_bytes),
      hypervisor,
      label: `snapshot ${snap.name}`,
    };
  }
  const volume = await findVolume(ctx, params.volumeid!);
  if (volume.type !== 'ROOT') throw invalidParameter(`Volume ${volume.name} is not a ROOT volume`);
  if (volume.vm_id !== null) {
    const vm = await db
      .selectFrom('vms')
      .select(['name', 'state'])
      .where('id', '=', volume.vm_id)
      .executeTakeFirstOrThrow();
    if (vm.state !== 'Stopped')
      throw invalidParameter(`VM ${vm.name} is ${vm.state}: stop it before making a template of its volume`);
  }
  const pool = await poolById(volume.pool_id);
  const hypervisor = await hypervisorOf(ctx.app, volume);
  if (!volume.path || !pool || !hypervisor) throw invalidParameter(`Volume ${volume.name} has no disk yet`);
  return {
    path: volume.path,
    pool,
    zoneId: volume.zone_id,
    sizeBytes: Number(volume.size_bytes),
    hypervisor,
    label: `volume ${volume.name}`,
  };
}

/** Marks the copy Downloaded and counts it, or records why it could not be made. */
async function fillCopy(
  app: App,
  template: TemplateRow,
  account: AccountRow,
  refId: number,
  store: ImageStoreRow,
  source: Source,
): Promise<void> {
  const db = app.store.db;
  const failed = (e: unknown) =>
    db
      .updateTable('template_store_refs')
      .set({
        download_state: DownloadState.Error,
        status: `Failed to create the template: ${e instanceof Error ? e.message : String(e)}`.slice(0, 1000),
        updated: app.clock.now(),
      })
      .where('id', '=', refId)
      .execute();
  try {
    const secondary = await storeLocation(store);
    const made = await app.agents.call(await hostForPool({ app }, source.pool), 'createSnapshot', {
      snapshotUuid: `template-${template.uuid}`,
      volumePath: source.path,
      pool: poolLocation(source.pool),
      secondary,
    });
    // Store copies are recorded relative to the store's root, as downloads record them.
    const root = `${secondary.path.replace(/\/+$/, '')}/`;
    const installPath = made.path.startsWith(root) ? made.path.slice(root.length) : made.path;
    // On a remote store the copy was written to the staging directory: it goes out from there.
    if (isRemoteStore(store)) await publishStaged(app, store, installPath);
    await db.transaction().execute(async (tx) => {
      await reserve({ app }, tx, account, ResourceKind.SecondaryStorage, storageGiB(made.sizeBytes));
      await tx
        .updateTable('template_store_refs')
        .set({
          download_state: DownloadState.Downloaded,
          download_pct: 100,
          status: 'Download Complete',
          install_path: installPath,
          size_bytes: Math.max(made.sizeBytes, source.sizeBytes),
          physical_size_bytes: made.sizeBytes,
          updated: app.clock.now(),
        })
        .where('id', '=', refId)
        .execute();
    });
  } catch (e) {
    // The copy shows why it failed (a secondary storage limit, the agent); deleting the template cleans up.
    await failed(e);
    throw e;
  }
}

export const createTemplate = defineCommand({
  name: 'createTemplate',
  description:
    "Makes a private template from a backed-up volume snapshot or from the ROOT disk of a Stopped VM, stored on the zone's secondary storage: QCOW2 for KVM, a TAR root file system for LXC. Asynchronous.",
  params: {
    name: p.string({ required: true, description: 'Name of the new template.' }),
    displaytext: p.string({ description: 'Description shown for the template; defaults to its name.' }),
    ostypeid: p.uuid({ required: true, description: 'UUID of the guest OS type of the new template.' }),
    snapshotid: p.uuid({
      description: 'UUID of a backed-up volume snapshot to build from; give this or volumeid.',
    }),
    volumeid: p.uuid({ description: 'UUID of a ROOT volume whose VM is Stopped; give this or snapshotid.' }),
    ispublic: p.boolean({
      description:
        'When true, every account may use it; users need allow.public.user.templates. Default false.',
    }),
    isfeatured: p.boolean({
      description: 'When true, it is listed as featured; root admins only. Default false.',
    }),
    passwordenabled: p.boolean({
      description: 'When true, VMs from it get a generated password; default false.',
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
    bits: p.integer({ description: "32 or 64; defaults to the OS type's." }),
    details: p.map({ description: 'Template details as details[0].<name>=<value>, stored with it.' }),
    templatetag: p.string({ description: 'Free tag stored with the template.' }),
    account: p.string({
      description:
        "Name of the account that will own the template (admins and domain admins); defaults to the caller's.",
    }),
    domainid: p.uuid({
      description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
    }),

    projectid: p.uuid({
      description: 'Project to own the template (you must be a member, it must be Active); not with account.',
    }),
  },
  event: { type: 'TEMPLATE.CREATE', description: (params) => `creating template ${params.name}` },
  async create(ctx, params) {
    const { app } = ctx;
    const source = await sourceOf(ctx, params);
    const os = await findOsType(ctx, params.ostypeid);
    checkPublicFlags(ctx, params.ispublic, params.isfeatured);
    if (params.bits !== undefined && params.bits !== 32 && params.bits !== 64)
      throw invalidParameter(`Invalid bits ${params.bits}: use 32 or 64`);
    const owner = await resolveOwner(ctx, params);
    const uuid = await app.store.db.transaction().execute(async (tx) => {
      const store = (await zoneStores(tx, source.zoneId))[0];
      if (!store)
        throw invalidParameter('The zone has no secondary storage (image store) to hold the template');
      const details = detailsOf(params.details);
      const id = await insertId(app.store, tx, 'templates', {
        uuid: app.ids.uuid(),
        name: params.name,
        display_text: params.displaytext ?? params.name,
        is_iso: 0,
        // A host backs the source up as a flat image: a qcow2 file, or for a container the root file system as a tarball.
        format: source.hypervisor === 'LXC' ? 'TAR' : 'QCOW2',
        type: 'USER',
        bootable: 1,
        os_type_id: os.id,
        hypervisor: source.hypervisor,
        account_id: owner.account.id,
        domain_id: owner.account.domain_id,
        user_id: owner.userId,
        is_public: params.ispublic ? 1 : 0,
        is_featured: params.isfeatured ? 1 : 0,
        is_extractable: 1,
        password_enabled: params.passwordenabled ? 1 : 0,
        sshkey_enabled: params.sshkeyenabled ? 1 : 0,
        dynamically_scalable: params.isdynamicallyscalable ? 1 : 0,
        requires_hvm: params.requireshvm === false ? 0 : 1,
        cross_zones: 0,
        bits: params.bits ?? os.bits,
        url: '',
        checksum: null,
        template_tag: params.templatetag ?? null,
        details: details && Object.keys(details).length ? JSON.stringify(details) : null,
        state: 'Active',
        created: app.clock.now(),
      });
      await reserve(ctx, tx, owner.account, ResourceKind.Template, 1);
      await addCopy(app, tx, id, store, false, source.zoneId);
      const row = await tx
        .selectFrom('templates')
        .select('uuid')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      await logEvent(ctx, tx, {
        type: 'TEMPLATE.CREATE',
        description: `created template ${params.name} from ${source.label}`,
        resourceType: 'Template',
        resourceId: row.uuid,
      });
      return row.uuid;
    });
    // Copied from a ROOT volume: its VM is not started (nor the volume migrated) meanwhile.
    const volume = params.volumeid ? await findVolume(ctx, params.volumeid) : undefined;
    return { type: 'Template', id: uuid, with: volume ? [await volumeJobTarget(ctx, volume)] : [] };
  },
  async handler(ctx, params, created) {
    const { app } = ctx;
    const db = app.store.db;
    const template = await db
      .selectFrom('templates')
      .selectAll()
      .where('uuid', '=', created!.id)
      .executeTakeFirstOrThrow();
    const ref = await db
      .selectFrom('template_store_refs')
      .selectAll()
      .where('template_id', '=', template.id)
      .executeTakeFirstOrThrow();
    const store = await db
      .selectFrom('image_stores')
      .selectAll()
      .where('id', '=', ref.image_store_id)
      .executeTakeFirstOrThrow();
    const account = await db
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', template.account_id)
      .executeTakeFirstOrThrow();
    await fillCopy(app, template, account, ref.id, store, await sourceOf(ctx, params));
    return (await presentTemplates(ctx, [template], ref.zone_id))[0];
  },
});
