/** Compute: VMs, their volumes' lifecycle on hosts, instance groups, and what happens when hosts change. */

import { onAccountDelete, onAccountDisable } from '../iam/accounts.ts';
import { registerTemplateInUseCheck } from '../storage/templates.ts';
import { migrateVirtualMachineWithVolume, migrateVolume } from '../storage/volume-migrate.ts';
import { volumeTransferCommands } from '../storage/volume-transfer.ts';
import { volumeCommands } from '../storage/volumes.ts';
import { affinityGroupCommands } from './affinity-groups.ts';
import { dedicationCommands } from './dedication.ts';
import { listDetailOptions } from './detail-options.ts';
import { instanceGroupCommands } from './instance-groups.ts';
import { findHostsForMigration } from './migration-hosts.ts';
import { nicCommands } from './nic-commands.ts';
import './reconcile.ts';
import '../storage/local-pools.ts';
import { restoreVirtualMachine } from './restore.ts';
import { sshKeyPairCommands } from './ssh-keypairs.ts';
import { userDataCommands } from './user-data.ts';
import { vmCommands } from './vm-commands.ts';
import { expungeVm, stopVm } from './vms.ts';

/** A deleted account's VMs go first: they hold volumes, NICs and security group memberships. */
onAccountDelete(async (ctx, account) => {
  const vms = await ctx.app.store.db
    .selectFrom('vms')
    .selectAll()
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .execute();
  for (const vm of vms) await expungeVm(ctx, vm);
}, 0);

/**
 * A disabled account's running VMs are stopped, as upstream's doDisableAccount does; one that fails
 * to stop is logged and left running (upstream marks the account for cleanup), the others still stop.
 */
onAccountDisable(async (ctx, account) => {
  const vms = await ctx.app.store.db
    .selectFrom('vms')
    .selectAll()
    .where('account_id', '=', account.id)
    .where('removed', 'is', null)
    .where('state', '=', 'Running')
    .execute();
  for (const vm of vms) {
    try {
      await stopVm(ctx, vm);
    } catch (err) {
      ctx.app.log.warn({ err, vm: vm.uuid }, 'could not stop a VM of a disabled account');
    }
  }
});

registerTemplateInUseCheck(async (ctx, template, zoneId) => {
  let q = ctx.app.store.db
    .selectFrom('vms')
    .select('name')
    .where((eb) => eb.or([eb('template_id', '=', template.id), eb('iso_id', '=', template.id)]))
    .where('removed', 'is', null);
  if (zoneId !== undefined) q = q.where('zone_id', '=', zoneId);
  const vm = await q.executeTakeFirst();
  return vm ? `it is used by VM ${vm.name}` : undefined;
});

export const computeCommands = [
  ...vmCommands,
  findHostsForMigration,
  listDetailOptions,
  ...nicCommands,
  ...instanceGroupCommands,
  ...volumeCommands,
  ...volumeTransferCommands,
  ...sshKeyPairCommands,
  ...userDataCommands,
  ...affinityGroupCommands,
  ...dedicationCommands,
  restoreVirtualMachine,
  migrateVolume,
  migrateVirtualMachineWithVolume,
];
