/**
 * restoreVirtualMachine: gives a VM a fresh ROOT disk from its template (or another one). A
 * Running VM is stopped, restored and started again. The VM passes through Restoring; the new
 * ROOT disk is recorded Allocated (its file is made from the template when the VM next starts)
 * and the old one is deleted from its pool.
 */
import type { CallContext } from '../context.ts';
import type { VmRow } from '../db/schema.ts';
import { invalidParameter, toApiError } from '../errors.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { findDeployableTemplate } from '../storage/templates.ts';
import { deleteOnPool } from '../storage/volume-ops.ts';
import { GiB, insertVolume, removeVolumeRecord } from '../storage/volumes.ts';
import { presentVms } from './vm-presenter.ts';
import { transition, wrongState } from './vm-state.ts';
import { findVm, reloadVm, startVm, stopVm } from './vms.ts';

interface RestoreRequest {
  templateUuid?: string;
  rootDiskSizeGb?: number;
}

/** Checks everything a restore needs before the VM is touched; 431 otherwise. */
async function planRestore(ctx: CallContext, vm: VmRow, req: RestoreRequest) {
  if (vm.state !== 'Stopped' && vm.state !== 'Running') throw wrongState(vm, 'restore');
  const db = ctx.app.store.db;
  let templateUuid = req.templateUuid;
  if (!templateUuid) {
    if (vm.template_id === null)
      throw invalidParameter(`VM ${vm.name} was deployed from an ISO: give templateid to restore it`);
    templateUuid = (
      await db
        .selectFrom('templates')
        .select('uuid')
        .where('id', '=', vm.template_id)
        .executeTakeFirstOrThrow()
    ).uuid;
  }
  const image = await findDeployableTemplate(ctx, templateUuid, vm.zone_id);
  if (image.template.is_iso)
    throw invalidParameter('Restoring a VM from an ISO is not supported; give a template');
  if (image.template.hypervisor && image.template.hypervisor.toLowerCase() !== vm.hypervisor.toLowerCase())
    throw invalidParameter(
      `Template ${image.template.name} is for ${image.template.hypervisor}, not ${vm.hypervisor}`,
    );
  const templateSize = Number(image.ref.size_bytes ?? 0);
  if (req.rootDiskSizeGb !== undefined && req.rootDiskSizeGb * GiB < templateSize)
    throw invalidParameter(
      `rootdisksize ${req.rootDiskSizeGb} GB is smaller than the template (${Math.ceil(templateSize / GiB)} GB)`,
    );
  const root = await db
    .selectFrom('volumes')
    .selectAll()
    .where('vm_id', '=', vm.id)
    .where('type', '=', 'ROOT')
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!root) throw invalidParameter(`VM ${vm.name} has no ROOT volume to restore`);
  // VM snapshots hold disk states of the ROOT disk a restore replaces, as upstream refuses too.
  const vmSnapshot = await db
    .selectFrom('vm_snapshots')
    .select('name')
    .where('vm_id', '=', vm.id)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (vmSnapshot)
    throw invalidParameter(
      `Unable to restore VM ${vm.name}: delete its VM snapshots (${vmSnapshot.name}) first`,
    );
  return {
    template: image.template,
    root,
    sizeBytes: Math.max(templateSize, (req.rootDiskSizeGb ?? 0) * GiB),
  };
}

export async function restoreVm(ctx: CallContext, vm: VmRow, req: RestoreRequest): Promise<VmRow> {
  const { app } = ctx;
  const plan = await planRestore(ctx, vm, req);
  const wasRunning = vm.state === 'Running';
  let current = wasRunning ? await stopVm(ctx, vm) : vm;
  current = await app.store.db.transaction().execute((tx) => transition(ctx, tx, current, 'restore'));
  const restoring = current;
  try {
    current = await app.store.db.transaction().execute(async (tx) => {
      const account = await tx
        .selectFrom('accounts')
        .selectAll()
        .where('id', '=', vm.account_id)
        .executeTakeFirstOrThrow();
      // The old disk's counts are given back before the new one's are taken, so a restore never
      // trips the owner's primary storage limit by its own old disk.
      await removeVolumeRecord(ctx, tx, plan.root);
      await insertVolume(ctx, tx, {
        name: plan.root.name,
        account,
        zoneId: vm.zone_id,
        type: 'ROOT',
        sizeBytes: plan.sizeBytes,
        diskOfferingId: plan.root.disk_offering_id,
        templateId: plan.template.id,
        vmId: vm.id,
        deviceId: 0,
      });
      return transition(
        ctx,
        tx,
        restoring,
        'restored',
        { template_id: plan.template.id, guest_os_id: plan.template.os_type_id },
        `ROOT volume recreated from template ${plan.template.name}`,
      );
    });
  } catch (e) {
    await app.store.db
      .transaction()
      .execute((tx) =>
        transition(ctx, tx, restoring, 'restored', {}, `restore failed: ${toApiError(e).message}`),
      );
    throw e;
  }
  try {
    await deleteOnPool(ctx, plan.root);
  } catch (e) {
    // The restore stands; only the old file is left behind on its pool.
    app.log.warn(
      { vm: vm.uuid, volume: plan.root.uuid, err: toApiError(e).message },
      'could not delete the old ROOT disk',
    );
  }
  return wasRunning ? startVm(ctx, current) : reloadVm(ctx, vm.id);
}

export const restoreVirtualMachine = defineCommand({
  name: 'restoreVirtualMachine',
  description:
    "Replaces a VM's ROOT disk with a fresh copy of its template (or another one); a Running VM is stopped and started again. Asynchronous; refused while the VM has VM snapshots.",
  params: {
    virtualmachineid: p.uuid({
      required: true,
      description: 'UUID of the Running or Stopped VM to restore.',
    }),
    templateid: p.uuid({
      description:
        "UUID of the template to rebuild from, for the VM's hypervisor; defaults to the VM's current template (ISOs are refused).",
    }),
    rootdisksize: p.long({
      description: "Size in GB of the new ROOT disk; not below the template's size, which is the default.",
    }),
    expunge: p.boolean({
      description: 'Accepted for compatibility; Nimbostack ignores it: the old ROOT disk is always deleted.',
    }),
  },
  event: { type: 'VM.RESTORE', description: (params) => `restoring VM ${params.virtualmachineid}` },
  async target(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    if (params.rootdisksize !== undefined && params.rootdisksize <= 0)
      throw invalidParameter(`Invalid rootdisksize ${params.rootdisksize}`);
    await planRestore(ctx, vm, { templateUuid: params.templateid, rootDiskSizeGb: params.rootdisksize });
    return { type: 'VirtualMachine', id: vm.uuid };
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    const done = await restoreVm(ctx, vm, {
      templateUuid: params.templateid,
      rootDiskSizeGb: params.rootdisksize,
    });
    return (await presentVms(ctx, [done]))[0];
  },
});
