/** The VM lifecycle API: thin declarations over compute/vms.ts. */

import { createPublicKey, publicEncrypt, randomBytes } from 'node:crypto';
import type { CallContext } from '../context.ts';
import type { VmRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { ResourceKind, registerResourceCounter, reserve } from '../iam/limits.ts';
import { findOwned, listOwned } from '../iam/owned.ts';
import { findCluster, findPod } from '../infra/common.ts';
import { findHost } from '../infra/hosts.ts';
import { refreshRouterEntries } from '../network/routers.ts';
import { ownerFor } from '../projects/access.ts';
import { defineCommand, type JobTarget, success } from '../registry/command.ts';
import { listParams, p } from '../registry/params.ts';
import { ALLOW_USER_EXPUNGE_RECOVER_VM, ALLOW_USER_VIEW_DESTROYED_VM } from '../settings/core-settings.ts';
import { findAttachableIso } from '../storage/templates.ts';
import { registerTaggable, withTags } from '../tags/tags.ts';
import { computeSize, deployVirtualMachine } from './deploy.ts';
import { groupNamed } from './instance-groups.ts';
import { keyPairsNamed, publicKeyBlob } from './ssh-keypairs.ts';
import { checkUserData } from './user-data.ts';
import { PRESENTED_VM_COLUMNS, type PresentedVm, presentVms } from './vm-presenter.ts';
import { wrongState } from './vm-state.ts';
import {
  destroyVm,
  expungeVm,
  findVm,
  migrateVm,
  rebootVm,
  recoverVm,
  reloadVm,
  startVm,
  stopVm,
} from './vms.ts';

const present = async (ctx: CallContext, vm: VmRow, password?: string) =>
  (await presentVms(ctx, [vm], { password }))[0];

/** Async VM commands: access is checked, and jobs on one VM run in order. */
async function vmTarget(ctx: CallContext, id: string): Promise<JobTarget> {
  await findVm(ctx, id);
  return { type: 'VirtualMachine', id };
}

function mayExpungeOrRecover(ctx: CallContext): void {
  if (
    ctx.caller.roleKind === 'user' &&
    !ctx.app.settings.at(ALLOW_USER_EXPUNGE_RECOVER_VM, 'account', ctx.caller.account.id)
  ) {
    throw permissionDenied(
      'Expunging and recovering VMs is not allowed for users (allow.user.expunge.recover.vm)',
    );
  }
}

export const startVirtualMachine = defineCommand({
  name: 'startVirtualMachine',
  description:
    'Boots a Stopped VM on a host the planner picks (or the one given), creating any missing disks first. Asynchronous; a VM already Running is returned as is.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the Stopped VM to boot.' }),
    hostid: p.uuid({
      adminOnly: true,
      description: 'Admins only: boot the VM on this host instead of letting the planner choose.',
    }),
    clusterid: p.uuid({
      adminOnly: true,
      description: "Admins only: boot the VM on a host of this cluster (in the VM's zone).",
    }),
    podid: p.uuid({
      adminOnly: true,
      description: "Admins only: boot the VM on a host of this pod (in the VM's zone).",
    }),
    considerlasthost: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    deploymentplanner: p.string({
      description: 'Accepted for compatibility; Nimbostack always uses its own planner and ignores this.',
    }),
    bootintosetup: p.boolean({
      description: 'Accepted for compatibility; Nimbostack ignores it (no firmware setup boot).',
    }),
  },
  event: { type: 'VM.START', description: (params) => `starting VM ${params.id}` },
  target: (ctx, params) => vmTarget(ctx, params.id),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    if (vm.state === 'Running') return present(ctx, vm);
    if (vm.state !== 'Stopped') throw wrongState(vm, 'start');
    const host = params.hostid ? await findHost(ctx, params.hostid) : undefined;
    const pod = params.podid ? await findPod(ctx, params.podid) : undefined;
    const cluster = params.clusterid ? await findCluster(ctx, params.clusterid) : undefined;
    for (const [kind, place] of [
      ['pod', pod],
      ['cluster', cluster],
    ] as const)
      if (place && place.zone_id !== vm.zone_id)
        throw invalidParameter(`The ${kind} ${place.name} is not in the zone of VM ${vm.name}`);
    return present(ctx, await startVm(ctx, vm, { hostId: host?.id, podId: pod?.id, clusterId: cluster?.id }));
  },
});

export const stopVirtualMachine = defineCommand({
  name: 'stopVirtualMachine',
  description:
    'Shuts a Running VM down and frees its host capacity. Asynchronous; a VM already Stopped is returned unchanged.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the Running VM to shut down.' }),
    forced: p.boolean({
      description:
        'When true, the VM is marked Stopped even if its host cannot be reached or refuses; default false.',
    }),
  },
  event: { type: 'VM.STOP', description: (params) => `stopping VM ${params.id}` },
  target: (ctx, params) => vmTarget(ctx, params.id),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    if (vm.state === 'Stopped') return present(ctx, vm);
    if (vm.state !== 'Running') throw wrongState(vm, 'stop');
    return present(ctx, await stopVm(ctx, vm, params.forced ?? false));
  },
});

export const rebootVirtualMachine = defineCommand({
  name: 'rebootVirtualMachine',
  description:
    'Restarts a Running VM in place on its current host. Asynchronous; refused unless the VM is Running.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the Running VM to restart.' }),
    forced: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    bootintosetup: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: { type: 'VM.REBOOT', description: (params) => `rebooting VM ${params.id}` },
  target: (ctx, params) => vmTarget(ctx, params.id),
  async handler(ctx, params) {
    return present(ctx, await rebootVm(ctx, await findVm(ctx, params.id)));
  },
});

export const destroyVirtualMachine = defineCommand({
  name: 'destroyVirtualMachine',
  description:
    'Stops a VM if needed and marks it Destroyed, releasing its CPU, memory and instance counts; it can be recovered until expunged. Asynchronous.',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the VM to destroy.' }),
    expunge: p.boolean({
      description:
        'When true, the VM is expunged right away (ROOT disk deleted, NICs released); users need allow.user.expunge.recover.vm.',
    }),
    volumeids: p.list({
      of: 'uuid',
      description:
        'Accepted for compatibility; Nimbostack ignores it: data disks are detached and kept when the VM is expunged.',
    }),
  },
  event: { type: 'VM.DESTROY', description: (params) => `destroying VM ${params.id}` },
  async target(ctx, params) {
    if (params.expunge) mayExpungeOrRecover(ctx);
    // Ignored, but naming a volume the caller may not act on is refused, as upstream.
    for (const uuid of params.volumeids ?? []) await findOwned(ctx, 'volumes', uuid, { noun: 'volume' });
    return vmTarget(ctx, params.id);
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    if (vm.state === 'Destroyed' && !params.expunge) return present(ctx, vm);
    const done = await destroyVm(ctx, vm, params.expunge ?? false);
    return present(ctx, done);
  },
});

export const recoverVirtualMachine = defineCommand({
  name: 'recoverVirtualMachine',
  description:
    "Brings a Destroyed VM back to Stopped and counts it against its account's limits again. Users need allow.user.expunge.recover.vm.",
  params: { id: p.uuid({ required: true, description: 'UUID of the Destroyed VM to bring back.' }) },
  async handler(ctx, params) {
    mayExpungeOrRecover(ctx);
    return present(ctx, await recoverVm(ctx, await findVm(ctx, params.id)));
  },
});

export const expungeVirtualMachine = defineCommand({
  name: 'expungeVirtualMachine',
  description:
    'Removes a Destroyed, Stopped or Error VM for good: deletes its ROOT disk and VM snapshots, detaches data disks, releases NICs, rules and tags. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'UUID of the VM to remove permanently.' }) },
  event: { type: 'VM.EXPUNGE', description: (params) => `expunging VM ${params.id}` },
  async target(ctx, params) {
    mayExpungeOrRecover(ctx);
    return vmTarget(ctx, params.id);
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    if (!['Destroyed', 'Stopped', 'Error'].includes(vm.state)) throw wrongState(vm, 'expunge');
    await expungeVm(ctx, vm);
    return success();
  },
});

export const updateVirtualMachine = defineCommand({
  name: 'updateVirtualMachine',
  description:
    "Changes a VM's name, display name, group, user data, details, OS type or flags. Renaming needs the VM Stopped; other changes apply to the record at once.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the VM to change.' }),
    displayname: p.string({ description: 'New display name shown for the VM.' }),
    name: p.string({
      description:
        'New host name; the VM must be Stopped, the name must start with a letter (letters, digits, hyphens, up to 63) and be unique in the account.',
    }),
    group: p.string({
      description:
        "Instance group name to put the VM in, created in the owner's account if missing; an empty value takes it out of its group.",
    }),
    haenable: p.boolean({ description: "Turns the VM's high-availability flag on or off." }),
    displayvm: p.boolean({
      description: 'Whether the VM is shown to its owner in lists (false hides it from normal views).',
    }),
    userdata: p.string({
      length: 1048576,
      description:
        'New user data, base64 encoded; checked against the size limit and served by the metadata service.',
    }),
    details: p.map({
      description:
        "Details to add or overwrite, as details[0].<name>=<value>; the VM's other details are kept.",
    }),
    cleanupdetails: p.boolean({
      description: 'When true, every detail of the VM is removed (details is then ignored).',
    }),
    ostypeid: p.uuid({ description: 'UUID of the guest OS type to record for the VM.' }),
    isdynamicallyscalable: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    customid: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    const changes: Partial<VmRow> = {};
    if (params.displayname !== undefined) changes.display_name = params.displayname;
    if (params.name !== undefined && params.name !== vm.name) {
      if (vm.state !== 'Stopped') throw invalidParameter('A VM must be Stopped to change its name');
      if (!/^[a-zA-Z][a-zA-Z0-9-]{0,62}$/.test(params.name))
        throw invalidParameter(`Invalid name ${params.name}`);
      changes.name = params.name;
    }
    if (params.haenable !== undefined) changes.ha_enabled = params.haenable ? 1 : 0;
    if (params.displayvm !== undefined) changes.display_vm = params.displayvm ? 1 : 0;
    if (params.userdata !== undefined) changes.user_data = checkUserData(ctx, params.userdata);
    if (params.cleanupdetails) changes.details = null;
    else if (params.details)
      changes.details = JSON.stringify(
        Object.assign({}, vm.details ? JSON.parse(vm.details) : {}, ...params.details),
      );
    if (params.ostypeid) {
      const os = await ctx.app.store.db
        .selectFrom('os_types')
        .select('id')
        .where('uuid', '=', params.ostypeid)
        .executeTakeFirst();
      if (!os) throw invalidParameter(`Unable to find OS type by id ${params.ostypeid}`);
      changes.guest_os_id = os.id;
    }
    await ctx.app.store.db.transaction().execute(async (tx) => {
      if (changes.name) {
        const clash = await tx
          .selectFrom('vms')
          .select('id')
          .where('account_id', '=', vm.account_id)
          .where('name', '=', changes.name)
          .where('removed', 'is', null)
          .executeTakeFirst();
        if (clash) throw invalidParameter(`A VM named ${changes.name} already exists in the account`);
      }
      if (params.group !== undefined) {
        const account = await tx
          .selectFrom('accounts')
          .selectAll()
          .where('id', '=', vm.account_id)
          .executeTakeFirstOrThrow();
        changes.group_id = params.group === '' ? null : await groupNamed(ctx, tx, account, params.group);
      }
      if (Object.keys(changes).length)
        await tx
          .updateTable('vms')
          .set({ ...changes, updated: ctx.app.clock.now() })
          .where('id', '=', vm.id)
          .execute();
      await logEvent(ctx, tx, {
        type: 'VM.UPDATE',
        description: `updated VM ${vm.name}`,
        resourceType: 'VirtualMachine',
        resourceId: vm.uuid,
      });
    });
    return present(ctx, await reloadVm(ctx, vm.id));
  },
});

/** Changes a Stopped VM's offering (and so its CPU and memory), within the owner's limits. */
async function changeOffering(
  ctx: CallContext,
  vm: VmRow,
  offeringUuid: string,
  details: Record<string, string>[] | undefined,
): Promise<VmRow> {
  if (vm.state !== 'Stopped')
    throw invalidParameter(
      `VM ${vm.name} must be Stopped to change its service offering (it is ${vm.state})`,
    );
  const offering = await ctx.app.store.db
    .selectFrom('service_offerings')
    .selectAll()
    .where('uuid', '=', offeringUuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!offering) throw invalidParameter(`Unable to find service offering by id ${offeringUuid}`);
  const size = computeSize(offering, Object.assign({}, ...(details ?? [])));
  await ctx.app.store.db.transaction().execute(async (tx) => {
    const account = await tx
      .selectFrom('accounts')
      .selectAll()
      .where('id', '=', vm.account_id)
      .executeTakeFirstOrThrow();
    await reserve(ctx, tx, account, ResourceKind.Cpu, size.cpuNumber - vm.cpu_number);
    await reserve(ctx, tx, account, ResourceKind.Memory, size.memoryMb - vm.memory_mb);
    await tx
      .updateTable('vms')
      .set({
        service_offering_id: offering.id,
        cpu_number: size.cpuNumber,
        cpu_speed: size.cpuSpeed,
        memory_mb: size.memoryMb,
        updated: ctx.app.clock.now(),
      })
      .where('id', '=', vm.id)
      .execute();
    await logEvent(ctx, tx, {
      type: 'VM.UPGRADE',
      description: `changed VM ${vm.name} to offering ${offering.name}`,
      resourceType: 'VirtualMachine',
      resourceId: vm.uuid,
    });
  });
  return reloadVm(ctx, vm.id);
}

const scaleParams = {
  id: p.uuid({ required: true, description: 'UUID of the Stopped VM.' }),
  serviceofferingid: p.uuid({
    required: true,
    description: 'UUID of the service offering to switch the VM to.',
  }),
  details: p.map({
    description:
      'For a customized offering, the size: details[0].cpuNumber, details[0].cpuSpeed (MHz, default 1000) and details[0].memory (MB).',
  }),
  automigrate: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  shrinkok: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  miniops: p.long({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  maxiops: p.long({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
};

export const changeServiceForVirtualMachine = defineCommand({
  name: 'changeServiceForVirtualMachine',
  description:
    "Moves a Stopped VM to another service offering, which sets its CPU and memory; the difference is checked against the owner's resource limits.",
  params: scaleParams,
  async handler(ctx, params) {
    return present(
      ctx,
      await changeOffering(ctx, await findVm(ctx, params.id), params.serviceofferingid, params.details),
    );
  },
});

export const scaleVirtualMachine = defineCommand({
  name: 'scaleVirtualMachine',
  description:
    "Asynchronously changes a VM's service offering (CPU and memory). Nimbostack does not scale live: the VM must be Stopped; limits are checked first.",
  params: scaleParams,
  event: { type: 'VM.UPGRADE', description: (params) => `scaling VM ${params.id}` },
  target: (ctx, params) => vmTarget(ctx, params.id),
  async handler(ctx, params) {
    // Recorded servers answer scaleVirtualMachine's job with the VM, not a bare success.
    return present(
      ctx,
      await changeOffering(ctx, await findVm(ctx, params.id), params.serviceofferingid, params.details),
    );
  },
});

export const resetPasswordForVirtualMachine = defineCommand({
  name: 'resetPasswordForVirtualMachine',
  description:
    "Sets a new password for a VM whose template is password-enabled and returns it once; a Running VM's router serves it now, a Stopped VM's at next start. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the Running or Stopped VM.' }),
    password: p.string({
      description: 'The password to set; when omitted Nimbostack generates a random one.',
    }),
  },
  event: { type: 'VM.RESETPASSWORD', description: (params) => `resetting the password of VM ${params.id}` },
  target: (ctx, params) => vmTarget(ctx, params.id),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    const template =
      vm.template_id === null
        ? undefined
        : await ctx.app.store.db
            .selectFrom('templates')
            .select('password_enabled')
            .where('id', '=', vm.template_id)
            .executeTakeFirst();
    if (!template?.password_enabled)
      throw invalidParameter(`The template of VM ${vm.name} does not support password reset`);
    if (vm.state !== 'Stopped' && vm.state !== 'Running') throw wrongState(vm, 'reset the password of');
    const password = params.password ?? randomBytes(9).toString('base64url');
    await ctx.app.store.db
      .updateTable('vms')
      .set({ password: ctx.app.secrets.encrypt(password), password_pending: 1, updated: ctx.app.clock.now() })
      .where('id', '=', vm.id)
      .execute();
    // A Running VM's router gets the new password now; a Stopped VM's gets it when the VM starts.
    if (vm.state === 'Running') await refreshRouterEntries(ctx.app, vm.id);
    return present(ctx, await reloadVm(ctx, vm.id), password);
  },
});

/** An OpenSSH RSA public key as a key Node can encrypt with. */
function rsaKey(openssh: string) {
  const blob = publicKeyBlob(openssh);
  if (!blob) return undefined;
  const fields: Buffer[] = [];
  for (let at = 0; at < blob.length; ) {
    const len = blob.readUInt32BE(at);
    fields.push(blob.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  if (fields[0]?.toString() !== 'ssh-rsa' || fields.length < 3) return undefined;
  const strip = (b: Buffer) => (b[0] === 0 ? b.subarray(1) : b);
  return createPublicKey({
    key: { kty: 'RSA', e: strip(fields[1]).toString('base64url'), n: strip(fields[2]).toString('base64url') },
    format: 'jwk',
  });
}

export const getVMPassword = defineCommand({
  name: 'getVMPassword',
  description:
    "Returns a VM's current password encrypted with the RSA public key of its first SSH key pair, base64 encoded; refused if the VM has no password or no RSA key.",
  params: { id: p.uuid({ required: true, description: 'UUID of the VM whose password is wanted.' }) },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    if (!vm.password) throw invalidParameter(`No password for VM ${vm.name}`);
    const keyName = vm.keypairs?.split(',')[0];
    const key = keyName ? (await keyPairsNamed(ctx, vm.account_id, [keyName])).found[0] : undefined;
    const rsa = key ? rsaKey(key.public_key) : undefined;
    // As upstream: the password is only handed out encrypted with the VM's SSH key.
    if (!rsa) throw invalidParameter(`VM ${vm.name} has no RSA SSH key pair to encrypt its password with`);
    const encrypted = publicEncrypt(
      { key: rsa, padding: 1 },
      Buffer.from(ctx.app.secrets.decrypt(vm.password)),
    );
    return { encryptedpassword: encrypted.toString('base64') };
  },
});

export const resetSSHKeyForVirtualMachine = defineCommand({
  name: 'resetSSHKeyForVirtualMachine',
  description:
    "Replaces the SSH key pairs given to a Stopped VM with those named; the keys must belong to the VM's account. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the Stopped VM.' }),
    keypair: p.string({
      description: "Name of one SSH key pair of the VM's account (used when keypairs is not given).",
    }),
    keypairs: p.list({
      description:
        "Comma-separated names of SSH key pairs of the VM's account; takes precedence over keypair.",
    }),
    account: p.string({
      description:
        "Accepted for compatibility; Nimbostack ignores it and looks the keys up in the VM's own account.",
    }),
    domainid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    projectid: p.uuid({
      description:
        "Accepted for compatibility; Nimbostack looks the keys up in the VM's own account (a project's for its VMs).",
    }),
  },
  event: { type: 'VM.RESETSSHKEY', description: (params) => `resetting the SSH key of VM ${params.id}` },
  target: (ctx, params) => vmTarget(ctx, params.id),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.id);
    if (vm.state !== 'Stopped') throw invalidParameter(`VM ${vm.name} must be Stopped to reset its SSH key`);
    const names = params.keypairs ?? (params.keypair ? [params.keypair] : []);
    if (names.length === 0)
      throw invalidParameter(
        'Unable to execute API command resetsshkeyforvirtualmachine due to missing parameter keypair',
      );
    const { missing } = await keyPairsNamed(ctx, vm.account_id, names);
    if (missing.length)
      throw invalidParameter(`Unable to find SSH key pair ${missing.join(', ')} for the VM's account`);
    await ctx.app.store.db
      .updateTable('vms')
      .set({ keypairs: names.join(','), updated: ctx.app.clock.now() })
      .where('id', '=', vm.id)
      .execute();
    return present(ctx, await reloadVm(ctx, vm.id));
  },
});

export const migrateVirtualMachine = defineCommand({
  name: 'migrateVirtualMachine',
  description:
    'Live-migrates a Running VM to another host in its cluster, chosen or picked by the planner with affinity rules kept. Asynchronous; VMs on local storage are refused.',
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the Running VM to move.' }),
    hostid: p.uuid({
      description: 'UUID of the destination host; when omitted the planner picks one in the same cluster.',
    }),
    storageid: p.uuid({
      description: "Refused: moving a VM's disks between pools is done with migrateVirtualMachineWithVolume.",
    }),
    autoselect: p.boolean({
      description:
        'Accepted for compatibility; Nimbostack ignores it (without hostid a host is always picked).',
    }),
  },
  event: { type: 'VM.MIGRATE', description: (params) => `migrating VM ${params.virtualmachineid}` },
  target: (ctx, params) => vmTarget(ctx, params.virtualmachineid),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    if (params.storageid)
      throw invalidParameter(
        'Moving a VM between storage pools is done with migrateVirtualMachineWithVolume',
      );
    const target = params.hostid ? await findHost(ctx, params.hostid) : undefined;
    return present(ctx, await migrateVm(ctx, vm, target?.id));
  },
});

export const assignVirtualMachine = defineCommand({
  name: 'assignVirtualMachine',
  description:
    'Moves a Stopped VM and its volumes to another account, shifting resource counts; its instance group and SSH keys are cleared.',
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the Stopped VM to hand over.' }),
    account: p.string({ description: 'Name of the receiving account (required by Nimbostack).' }),
    domainid: p.uuid({
      description: "UUID of the receiving account's domain; defaults to the caller's domain.",
    }),
    projectid: p.uuid({
      description: 'The receiving project instead of an account (its account receives the VM).',
    }),
    networkids: p.list({
      of: 'uuid',
      description: "Accepted for compatibility; Nimbostack ignores it and keeps the VM's NICs.",
    }),
    securitygroupids: p.list({
      of: 'uuid',
      description: 'Accepted for compatibility; Nimbostack ignores it.',
    }),
  },
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    if (vm.state !== 'Stopped')
      throw invalidParameter(`VM ${vm.name} must be Stopped to move it to another account`);
    if (!params.account && !params.projectid)
      throw invalidParameter(
        'Unable to execute API command assignvirtualmachine due to missing parameter account',
      );
    const { account } = await ownerFor(ctx, params);
    if (account.id === vm.account_id)
      throw invalidParameter(`VM ${vm.name} already belongs to account ${account.name}`);
    await ctx.app.store.db.transaction().execute(async (tx) => {
      const old = await tx
        .selectFrom('accounts')
        .selectAll()
        .where('id', '=', vm.account_id)
        .executeTakeFirstOrThrow();
      const volumes = await tx
        .selectFrom('volumes')
        .selectAll()
        .where('vm_id', '=', vm.id)
        .where('removed', 'is', null)
        .execute();
      const gib = volumes.reduce((s, v) => s + Math.ceil(Number(v.size_bytes) / 2 ** 30), 0);
      for (const [who, sign] of [
        [account, 1],
        [old, -1],
      ] as const) {
        await reserve(ctx, tx, who, ResourceKind.Instance, sign);
        await reserve(ctx, tx, who, ResourceKind.Cpu, sign * vm.cpu_number);
        await reserve(ctx, tx, who, ResourceKind.Memory, sign * vm.memory_mb);
        await reserve(ctx, tx, who, ResourceKind.Volume, sign * volumes.length);
        await reserve(ctx, tx, who, ResourceKind.PrimaryStorage, sign * gib);
      }
      await tx
        .updateTable('vms')
        .set({ account_id: account.id, domain_id: account.domain_id, group_id: null, keypairs: null })
        .where('id', '=', vm.id)
        .execute();
      await tx
        .updateTable('volumes')
        .set({ account_id: account.id, domain_id: account.domain_id })
        .where('vm_id', '=', vm.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'VM.MOVE',
        description: `moved VM ${vm.name} from account ${old.name} to ${account.name}`,
        resourceType: 'VirtualMachine',
        resourceId: vm.uuid,
      });
    });
    return present(ctx, await reloadVm(ctx, vm.id));
  },
});

export const attachIso = defineCommand({
  name: 'attachIso',
  description:
    "Inserts an ISO into a Running or Stopped VM's virtual CD drive; the ISO must be usable in the VM's zone and the drive empty. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the ISO to insert.' }),
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the VM that gets the ISO.' }),
    forced: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: {
    type: 'ISO.ATTACH',
    description: (params) => `attaching ISO ${params.id} to VM ${params.virtualmachineid}`,
  },
  target: (ctx, params) => vmTarget(ctx, params.virtualmachineid),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    if (vm.iso_id !== null)
      throw invalidParameter(`VM ${vm.name} already has an ISO attached; detach it first`);
    if (!['Running', 'Stopped'].includes(vm.state)) throw wrongState(vm, 'attach an ISO to');
    const iso = await findAttachableIso(ctx, params.id, vm.zone_id);
    await ctx.app.store.db
      .updateTable('vms')
      .set({ iso_id: iso.template.id, updated: ctx.app.clock.now() })
      .where('id', '=', vm.id)
      .execute();
    return present(ctx, await reloadVm(ctx, vm.id));
  },
});

export const detachIso = defineCommand({
  name: 'detachIso',
  description: "Ejects the ISO from a VM's virtual CD drive. Asynchronous; refused if no ISO is attached.",
  params: {
    virtualmachineid: p.uuid({ required: true, description: 'UUID of the VM whose ISO is ejected.' }),
    forced: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  event: {
    type: 'ISO.DETACH',
    description: (params) => `detaching the ISO of VM ${params.virtualmachineid}`,
  },
  target: (ctx, params) => vmTarget(ctx, params.virtualmachineid),
  async handler(ctx, params) {
    const vm = await findVm(ctx, params.virtualmachineid);
    if (vm.iso_id === null) throw invalidParameter(`VM ${vm.name} has no ISO attached`);
    await ctx.app.store.db
      .updateTable('vms')
      .set({ iso_id: null, updated: ctx.app.clock.now() })
      .where('id', '=', vm.id)
      .execute();
    return present(ctx, await reloadVm(ctx, vm.id));
  },
});

/** The `state` filter: a VM state, `Present` (not destroyed) or `Expunged`. */
const STATES = [
  'Running',
  'Stopped',
  'Starting',
  'Stopping',
  'Migrating',
  'Destroyed',
  'Expunging',
  'Error',
  'Restoring',
  'Present',
  'Expunged',
];

export const listVirtualMachines = defineCommand({
  name: 'listVirtualMachines',
  description:
    'Lists the VMs the caller may see, filtered by the given criteria. Users see Destroyed VMs only where allow.user.view.destroyed.vm permits.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the VM with this UUID.' }),
    ids: p.list({ of: 'uuid', description: 'Only VMs with these UUIDs (comma-separated).' }),
    name: p.string({ description: 'Only the VM with exactly this name.' }),
    state: p.string({
      description:
        'A VM state (Running, Stopped, Destroyed...), Present for all not destroyed, or Expunged for removed VMs; case-insensitive.',
    }),
    zoneid: p.uuid({ description: 'Only VMs in this zone.' }),
    podid: p.uuid({ description: 'Only VMs placed in this pod.' }),
    clusterid: p.uuid({ description: 'Only VMs placed in this cluster.' }),
    hostid: p.uuid({ description: 'Only VMs on this host.' }),
    storageid: p.uuid({ description: 'Only VMs with a volume on this primary storage pool.' }),
    templateid: p.uuid({ description: 'Only VMs deployed from this template.' }),
    isoid: p.uuid({ description: 'Only VMs with this ISO attached.' }),
    serviceofferingid: p.uuid({ description: 'Only VMs using this service offering.' }),
    groupid: p.uuid({ description: 'Only VMs in this instance group.' }),
    keypair: p.string({ description: 'Only VMs that use the SSH key pair of exactly this name.' }),
    networkid: p.uuid({ description: 'Only VMs with a NIC in this network.' }),
    securitygroupid: p.uuid({ description: 'Only VMs that are members of this security group.' }),
    userid: p.uuid({ description: 'Only VMs created by this user.' }),
    haenable: p.boolean({ description: 'Only VMs whose high-availability flag has this value.' }),
    hypervisor: p.string({
      description: 'Only VMs of this hypervisor type (for example KVM, LXC or Simulator).',
    }),
    displayvm: p.boolean({ description: 'Only VMs whose display flag has this value.' }),
    details: p.list({
      description:
        'Which parts to include: all (default), min, group, nics, stats, secgrp, tmpl, servoff, diskoff, backoff, iso, volume, affgrp.',
    }),
    account: p.string({
      description: "Only VMs of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only VMs in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include VMs of subdomains.' }),
    listall: p.boolean({
      description:
        'For admins and domain admins: list VMs of every account they may see, not only their own.',
    }),
    projectid: p.projectScope({
      description:
        "Only this project's VMs (you must be a member or administer it); -1: those of every project you may see.",
    }),
    tags: p.map({ description: 'Only VMs carrying all these tags (tags[0].key=..., tags[0].value=...).' }),
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    userdata: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    retrieveonlyresourcecount: p.boolean({
      description: 'When true, only the count is returned, with no VM entries.',
    }),
    accumulate: p.boolean({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const db = app.store.db;
    if (params.state && !STATES.some((s) => s.toLowerCase() === params.state!.toLowerCase())) {
      throw invalidParameter(`Invalid state ${params.state}: use one of ${STATES.join(', ')}`);
    }
    let q = db.selectFrom('vms');
    const state = params.state
      ? STATES.find((s) => s.toLowerCase() === params.state!.toLowerCase())!
      : undefined;
    if (state === 'Expunged') q = q.where('vms.removed', 'is not', null);
    else q = q.where('vms.removed', 'is', null);
    if (state && state !== 'Expunged' && state !== 'Present') q = q.where('vms.state', '=', state);
    if (state === 'Present') q = q.where('vms.state', 'not in', ['Destroyed', 'Expunging']);
    // Users see their destroyed VMs only where the setting allows it.
    if (
      ctx.caller.roleKind === 'user' &&
      !app.settings.at(ALLOW_USER_VIEW_DESTROYED_VM, 'account', ctx.caller.account.id)
    ) {
      q = q.where('vms.state', 'not in', ['Destroyed', 'Expunging']);
    }
    const byUuid = (
      table: 'zones' | 'pods' | 'clusters' | 'hosts' | 'service_offerings' | 'instance_groups' | 'templates',
      uuid: string,
    ) => db.selectFrom(table).select('id').where('uuid', '=', uuid);
    if (params.id) q = q.where('vms.uuid', '=', params.id);
    if (params.ids) q = q.where('vms.uuid', 'in', params.ids);
    if (params.name) q = q.where('vms.name', '=', params.name);
    if (params.zoneid) q = q.where('vms.zone_id', 'in', byUuid('zones', params.zoneid));
    if (params.podid) q = q.where('vms.pod_id', 'in', byUuid('pods', params.podid));
    if (params.clusterid) q = q.where('vms.cluster_id', 'in', byUuid('clusters', params.clusterid));
    if (params.hostid) q = q.where('vms.host_id', 'in', byUuid('hosts', params.hostid));
    if (params.serviceofferingid)
      q = q.where('vms.service_offering_id', 'in', byUuid('service_offerings', params.serviceofferingid));
    if (params.groupid) q = q.where('vms.group_id', 'in', byUuid('instance_groups', params.groupid));
    if (params.templateid) q = q.where('vms.template_id', 'in', byUuid('templates', params.templateid));
    if (params.isoid) q = q.where('vms.iso_id', 'in', byUuid('templates', params.isoid));
    if (params.hypervisor) q = q.where('vms.hypervisor', '=', params.hypervisor);
    if (params.haenable !== undefined) q = q.where('vms.ha_enabled', '=', params.haenable ? 1 : 0);
    if (params.displayvm !== undefined) q = q.where('vms.display_vm', '=', params.displayvm ? 1 : 0);
    if (params.keypair) {
      // One of the VM's key pair names (stored comma-separated), exactly; no substring.
      const name = params.keypair;
      const k = escapeLike(name);
      q = q.where((eb) =>
        eb.or([
          eb('vms.keypairs', '=', name),
          likeEscaped('vms.keypairs', `${k},%`),
          likeEscaped('vms.keypairs', `%,${k}`),
          likeEscaped('vms.keypairs', `%,${k},%`),
        ]),
      );
    }
    if (params.userid)
      q = q.where('vms.user_id', 'in', db.selectFrom('users').select('id').where('uuid', '=', params.userid));
    if (params.storageid) {
      q = q.where(
        'vms.id',
        'in',
        db
          .selectFrom('volumes')
          .innerJoin('storage_pools', 'storage_pools.id', 'volumes.pool_id')
          .select('volumes.vm_id')
          .where('storage_pools.uuid', '=', params.storageid),
      );
    }
    if (params.networkid) {
      q = q.where(
        'vms.id',
        'in',
        db
          .selectFrom('nics')
          .innerJoin('networks', 'networks.id', 'nics.network_id')
          .select('nics.vm_id')
          .where('networks.uuid', '=', params.networkid),
      );
    }
    if (params.securitygroupid) {
      q = q.where(
        'vms.id',
        'in',
        db
          .selectFrom('security_group_vm_map')
          .innerJoin('security_groups', 'security_groups.id', 'security_group_vm_map.group_id')
          .select('security_group_vm_map.vm_id')
          .where('security_groups.uuid', '=', params.securitygroupid),
      );
    }
    if (params.keyword) {
      const like = app.store.dialect === 'postgres' ? 'ilike' : 'like';
      const k = `%${escapeLike(params.keyword)}%`;
      q = q.where((eb) =>
        eb.or([
          likeEscaped('vms.name', k, like),
          likeEscaped('vms.display_name', k, like),
          likeEscaped('vms.state', k, like),
        ]),
      );
    }
    q = withTags(q, 'UserVm', 'vms.id', params.tags);
    // The scope adds to the same query, so the count stays on migration 0016's covering indexes.
    return listOwned(ctx, params, q, {
      owner: { account: 'vms.account_id', domain: 'vms.domain_id' },
      // Two steps: the page's ids from a narrow index (migration 0016 covers every filter of the
      // usual scopes, so OFFSET skips index entries, not rows), then only those rows, and only the
      // columns the presenter shows (not user data, up to 32 KB a VM, nor password hashes).
      rows: async (scoped, page): Promise<PresentedVm[]> => {
        const columns = PRESENTED_VM_COLUMNS.map((c) => `vms.${c}` as const);
        if (page.limit === undefined) return scoped.select(columns).orderBy('vms.id').execute();
        const ids = scoped.select('vms.id').orderBy('vms.id').limit(page.limit).offset(page.offset);
        return app.store.dialect === 'mysql'
          ? // MySQL and MariaDB refuse LIMIT inside IN (subquery); a derived table is allowed.
            db
              .selectFrom(ids.as('page'))
              .innerJoin('vms', 'vms.id', 'page.id')
              .select(columns)
              .orderBy('vms.id')
              .execute()
          : db.selectFrom('vms').select(columns).where('vms.id', 'in', ids).orderBy('vms.id').execute();
      },
      present: (rows) => presentVms(ctx, rows, { details: params.details }),
    });
  },
});

registerTaggable('UserVm', async (ctx, uuid) => {
  const vm = await ctx.app.store.db
    .selectFrom('vms')
    .select(['id', 'account_id', 'domain_id'])
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return vm && { id: vm.id, accountId: vm.account_id, domainId: vm.domain_id };
});

/** Counted VMs are those not destroyed: Instance, CPU and memory counts come from them. */
function countVms(column: 'instances' | 'cpu_number' | 'memory_mb') {
  return async (tx: Parameters<Parameters<typeof registerResourceCounter>[1]>[0], accountId: number) => {
    const r = await tx
      .selectFrom('vms')
      .select((eb) => (column === 'instances' ? eb.fn.countAll<number>() : eb.fn.sum<number>(column)).as('n'))
      .where('account_id', '=', accountId)
      .where('removed', 'is', null)
      .where('state', 'not in', ['Destroyed', 'Expunging'])
      .executeTakeFirstOrThrow();
    return Number(r.n ?? 0);
  };
}

registerResourceCounter(ResourceKind.Instance, countVms('instances'));
registerResourceCounter(ResourceKind.Cpu, countVms('cpu_number'));
registerResourceCounter(ResourceKind.Memory, countVms('memory_mb'));

export const vmCommands = [
  deployVirtualMachine,
  startVirtualMachine,
  stopVirtualMachine,
  rebootVirtualMachine,
  destroyVirtualMachine,
  recoverVirtualMachine,
  expungeVirtualMachine,
  updateVirtualMachine,
  changeServiceForVirtualMachine,
  scaleVirtualMachine,
  resetPasswordForVirtualMachine,
  getVMPassword,
  resetSSHKeyForVirtualMachine,
  migrateVirtualMachine,
  assignVirtualMachine,
  attachIso,
  detachIso,
  listVirtualMachines,
];
