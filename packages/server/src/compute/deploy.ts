/**
 * deployVirtualMachine. Everything that can be wrong with a request is found before anything is
 * written; then the VM, its disks, NICs and security groups are recorded in one transaction
 * (with the owner's resource counts), and the job starts it. A start that fails everywhere
 * expunges the new VM, so a failed deploy leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import type { CallContext } from '../context.ts';
import { insertId, inTransaction } from '../db/connection.ts';
import type { AccountRow, DomainRow, ServiceOfferingRow, TemplateRow, ZoneRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { checkReservation, ResourceKind } from '../iam/limits.ts';
import { findCluster, findPod, findZone } from '../infra/common.ts';
import { findHost } from '../infra/hosts.ts';
import { networksForDeploy } from '../network/guest-networks.ts';
import { allocateNics } from '../network/nics.ts';
import { assignSecurityGroups, resolveSecurityGroups } from '../network/security-groups.ts';
import { networksOfIpList } from '../network/vm-nics.ts';
import { ownerFor } from '../projects/access.ts';
import { defineCommand } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import { findDeployableTemplate } from '../storage/templates.ts';
import { dataDiskSize, GiB, insertVolume, volumeReservation } from '../storage/volumes.ts';
import { joinAffinityGroups } from './affinity.ts';
import { resolveAffinityGroups } from './affinity-groups.ts';
import { groupNamed } from './instance-groups.ts';
import { keyPairsNamed } from './ssh-keypairs.ts';
import { checkUserData } from './user-data.ts';
import { presentVms } from './vm-presenter.ts';
import { expungeVm, findVm, startVm } from './vms.ts';

/** The hypervisor of a zone's clusters, for ISOs (which run on any). */
async function zoneHypervisor(ctx: CallContext, zoneId: number): Promise<string> {
  const cluster = await ctx.app.store.db
    .selectFrom('clusters')
    .select('hypervisor')
    .where('zone_id', '=', zoneId)
    .where('removed', 'is', null)
    .executeTakeFirst();
  return cluster?.hypervisor ?? 'Simulator';
}

/** A host name as CloudStack accepts it: letters, digits and hyphens, starting with a letter. */
const HOSTNAME = /^[a-zA-Z][a-zA-Z0-9-]{0,62}$/;

function mergedDetails(details: Record<string, string>[] | undefined): Record<string, string> {
  return Object.assign({}, ...(details ?? []));
}

function numberDetail(details: Record<string, string>, key: string): number | undefined {
  const entry = Object.entries(details).find(([k]) => k.toLowerCase() === key.toLowerCase());
  if (!entry) return undefined;
  const n = Number(entry[1]);
  if (!Number.isInteger(n) || n <= 0) throw invalidParameter(`Invalid value ${entry[1]} for details ${key}`);
  return n;
}

/** CPU and memory of a VM: the offering's, or for a customized offering the caller's within its range. */
export function computeSize(offering: ServiceOfferingRow, details: Record<string, string>) {
  const cpuNumber = offering.cpu_number ?? numberDetail(details, 'cpuNumber');
  const cpuSpeed = offering.cpu_speed ?? numberDetail(details, 'cpuSpeed') ?? 1000;
  const memoryMb = offering.memory_mb ?? numberDetail(details, 'memory');
  if (cpuNumber === undefined || memoryMb === undefined) {
    throw invalidParameter(
      `Service offering ${offering.name} is customized: give details[0].cpuNumber and details[0].memory`,
    );
  }
  const within = (v: number, min: number | null, max: number | null, what: string) => {
    if ((min !== null && v < min) || (max !== null && v > max))
      throw invalidParameter(
        `${what} ${v} is outside the offering's range ${min ?? 1}-${max ?? 'unlimited'}`,
      );
  };
  within(cpuNumber, offering.min_cpu_number, offering.max_cpu_number, 'CPU number');
  within(memoryMb, offering.min_memory_mb, offering.max_memory_mb, 'Memory');
  return { cpuNumber, cpuSpeed, memoryMb };
}

async function keypairsOf(ctx: CallContext, account: AccountRow, names: string[]): Promise<string[]> {
  const { missing } = await keyPairsNamed(ctx, account.id, names);
  if (missing.length)
    throw invalidParameter(`Unable to find SSH key pair ${missing.join(', ')} for account ${account.name}`);
  return names;
}

export const deployVirtualMachine = defineCommand({
  name: 'deployVirtualMachine',
  description:
    'Creates a VM from a template or ISO with its ROOT disk (and optional data disk), NICs and groups, then boots it unless startvm=false. Asynchronous; a failed start removes the VM.',
  params: {
    // The entity check's rows are the ones create uses (handedToCommand): each is read once.
    zoneid: p.uuid({
      required: true,
      handedToCommand: true,
      description: 'UUID of the zone to create the VM in; users cannot deploy into a disabled zone.',
    }),
    serviceofferingid: p.uuid({
      required: true,
      handedToCommand: true,
      description: "UUID of the compute offering that sets CPU, memory and the ROOT disk's storage.",
    }),
    templateid: p.uuid({
      handedToCommand: true,
      description:
        'UUID of the template or ISO to boot from (required by Nimbostack); it must be ready in the zone.',
    }),
    diskofferingid: p.uuid({
      description:
        'UUID of a disk offering: for a template, adds a data disk; for an ISO, sizes the empty ROOT disk (then required).',
    }),
    size: p.long({
      description:
        'Size in GB of the disk made from a customized disk offering (1 to 65536); must match a fixed-size offering if given.',
    }),
    rootdisksize: p.long({
      description: 'ROOT disk size in GB for a template deploy; must not be smaller than the template.',
    }),
    name: p.string({
      description:
        'Host name of the VM: 1-63 letters, digits and hyphens starting with a letter, unique in the account; defaults to VM-<uuid>.',
    }),
    displayname: p.string({ description: 'Name shown for the VM; defaults to its name.' }),
    group: p.string({
      description:
        "Instance group name to put the VM in; created in the owner's account if it does not exist.",
    }),
    account: p.string({
      description:
        "Name of the account to deploy for (admins and domain admins); with domainid, or in the caller's domain.",
    }),
    domainid: p.uuid({ description: 'UUID of the domain of the owning account given with account.' }),
    projectid: p.uuid({
      description:
        'Project to deploy the VM in: the project owns it and its limits apply (you must be a member, it must be Active).',
    }),
    keypair: p.string({
      description: "Name of the owner's SSH key pair to give the VM (when keypairs is not used).",
    }),
    keypairs: p.list({
      description:
        "Comma-separated names of the owner's SSH key pairs to give the VM; takes precedence over keypair.",
    }),
    userdata: p.string({
      length: 1048576,
      description:
        'User data for the guest, base64 encoded, served by the metadata service; size is limited by settings.',
    }),
    userdataid: p.uuid({
      description: 'UUID of a registered user data of the owner, used instead of userdata.',
    }),
    securitygroupids: p.list({
      of: 'uuid',
      description: "UUIDs of the owner's security groups to apply; only in zones with security groups.",
    }),
    securitygroupnames: p.list({
      description: "Names of the owner's security groups to apply; only in zones with security groups.",
    }),
    networkids: p.list({
      of: 'uuid',
      description:
        "UUIDs of guest networks for the VM's NICs, in order (the first is the default); needed in Advanced zones.",
    }),
    iptonetworklist: p.map({
      description:
        'Networks with chosen IPv4 addresses: iptonetworklist[0].networkid and .ip; not with networkids or ipaddress; IPv6 and mac are refused.',
    }),
    ipaddress: p.string({
      description: "IPv4 address to give the VM's default NIC, from that network's range.",
    }),
    startvm: p.boolean({ description: 'When false, the VM is only created and left Stopped; default true.' }),
    details: p.map({
      description:
        'Extra details; for a customized offering cpuNumber, cpuSpeed (MHz) and memory (MB), as details[0].cpuNumber=2.',
    }),
    hostid: p.uuid({ adminOnly: true, description: 'Admins only: boot the VM on this host of the zone.' }),
    clusterid: p.uuid({
      adminOnly: true,
      description: 'Admins only: place the VM in this cluster of the zone.',
    }),
    podid: p.uuid({ adminOnly: true, description: 'Admins only: place the VM in this pod of the zone.' }),
    hypervisor: p.string({
      description:
        'Expected hypervisor; refused if the template is for another one. Usually KVM, LXC or Simulator.',
    }),
    displayvm: p.boolean({
      description: "When false, the VM is hidden from its owner's normal views; default true.",
    }),
    customid: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    affinitygroupids: p.list({
      of: 'uuid',
      description: "UUIDs of the owner's affinity groups the VM joins; placement follows their rules.",
    }),
    affinitygroupnames: p.list({ description: "Names of the owner's affinity groups the VM joins." }),
  },
  event: { type: 'VM.CREATE', description: (params) => `deploying VM ${params.name ?? ''}`.trim() },
  async create(ctx, params, entities) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.zoneid, undefined, entities.zoneid as ZoneRow | undefined);
    if (zone.allocation_state !== 'Enabled' && ctx.caller.roleKind !== 'admin')
      throw permissionDenied(`Zone ${zone.name} is disabled`);
    const owner: { account: AccountRow; domain: DomainRow } = await ownerFor(ctx, params);
    if (owner.account.state !== 'enabled')
      throw permissionDenied(`Account ${owner.account.name} is ${owner.account.state}`);
    const checked = entities.serviceofferingid as ServiceOfferingRow | undefined;
    const offering = checked?.removed === null && checked.is_system === 0 ? checked : undefined;
    if (!offering)
      throw invalidParameter(`Unable to find service offering by id ${params.serviceofferingid}`);
    const details = mergedDetails(params.details);
    const size = computeSize(offering, details);

    if (!params.templateid)
      throw invalidParameter(
        'Unable to execute API command deployvirtualmachine due to missing parameter templateid',
      );
    const image = await findDeployableTemplate(
      ctx,
      params.templateid,
      zone.id,
      entities.templateid as TemplateRow | undefined,
    );
    const isIso = image.template.is_iso === 1;
    const templateSize = Number(image.ref.size_bytes ?? 0);
    const hypervisor = image.template.hypervisor ?? (await zoneHypervisor(ctx, zone.id));
    let rootSize: number;
    let dataDisk: Awaited<ReturnType<typeof dataDiskSize>> | undefined;
    if (isIso) {
      // An ISO boots into an empty ROOT disk whose size comes from the disk offering.
      if (!params.diskofferingid)
        throw invalidParameter('A VM deployed from an ISO needs diskofferingid for its ROOT disk');
      rootSize = (await dataDiskSize(ctx, params.diskofferingid, params.size)).sizeBytes;
    } else {
      rootSize = Math.max(templateSize, (params.rootdisksize ?? 0) * GiB);
      if (params.rootdisksize !== undefined && params.rootdisksize * GiB < templateSize) {
        throw invalidParameter(
          `rootdisksize ${params.rootdisksize} GB is smaller than the template (${Math.ceil(templateSize / GiB)} GB)`,
        );
      }
      if (params.diskofferingid) dataDisk = await dataDiskSize(ctx, params.diskofferingid, params.size);
    }
    if (!zone.local_storage_enabled) {
      const rootOffering = await app.store.db
        .selectFrom('disk_offerings')
        .select('storage_type')
        .where('id', '=', offering.disk_offering_id)
        .executeTakeFirst();
      if (rootOffering?.storage_type === 'local')
        throw invalidParameter(
          `Zone is not configured to use local storage but service offering ${offering.name} uses it`,
        );
      if (dataDisk?.offering.storage_type === 'local')
        throw invalidParameter(
          `Zone is not configured to use local storage but volume's disk offering ${dataDisk.offering.name} uses it`,
        );
    }
    if (params.hypervisor && params.hypervisor.toLowerCase() !== hypervisor.toLowerCase()) {
      throw invalidParameter(
        `Template ${image.template.name} is for ${hypervisor}, not ${params.hypervisor}`,
      );
    }

    const name = params.name?.trim();
    if (name !== undefined && !HOSTNAME.test(name)) {
      throw invalidParameter(
        `Invalid name ${name}: a VM name is a host name: 1-63 letters, digits and hyphens, starting with a letter`,
      );
    }
    const keypairNames = params.keypairs ?? (params.keypair ? [params.keypair] : []);
    const keypairs = keypairNames.length ? await keypairsOf(ctx, owner.account, keypairNames) : [];
    let userData = params.userdata ? checkUserData(ctx, params.userdata) : undefined;
    let userDataId: number | null = null;
    if (params.userdataid) {
      const ud = await app.store.db
        .selectFrom('user_data')
        .select(['id', 'user_data', 'account_id'])
        .where('uuid', '=', params.userdataid)
        .executeTakeFirst();
      if (!ud || ud.account_id !== owner.account.id)
        throw invalidParameter(`Unable to find user data by id ${params.userdataid}`);
      userData = ud.user_data;
      userDataId = ud.id;
    }
    if (!zone.security_groups_enabled && (params.securitygroupids || params.securitygroupnames)) {
      throw invalidParameter(`Zone ${zone.name} has no security groups`);
    }
    const securityGroups = zone.security_groups_enabled
      ? await resolveSecurityGroups(ctx, owner.account, {
          zone,
          ids: params.securitygroupids,
          names: params.securitygroupnames,
        })
      : [];
    const host = params.hostid ? await findHost(ctx, params.hostid) : undefined;
    const cluster = params.clusterid ? await findCluster(ctx, params.clusterid) : undefined;
    const pod = params.podid ? await findPod(ctx, params.podid) : undefined;
    for (const placed of [host, cluster, pod]) {
      if (placed && placed.zone_id !== zone.id)
        throw invalidParameter('The requested host, cluster or pod is not in the zone');
    }
    // In the order given: the first network is the VM's default one.
    const { networkIds, ipByNetwork } = params.iptonetworklist?.length
      ? await networksOfIpList(ctx, owner.account, params.iptonetworklist, params)
      : {
          networkIds: params.networkids?.length
            ? await networksForDeploy(ctx, owner.account, params.networkids)
            : undefined,
          ipByNetwork: undefined,
        };
    const affinityGroups = await resolveAffinityGroups(ctx, owner.account, {
      ids: params.affinitygroupids,
      names: params.affinitygroupnames,
    });
    const password = image.template.password_enabled ? randomBytes(9).toString('base64url') : undefined;

    // Concurrent deploys compete for addresses and counts: on MySQL that can deadlock, so retry.
    const uuid = await inTransaction(app.store, async (tx) => {
      if (name) {
        const clash = await tx
          .selectFrom('vms')
          .select('id')
          .where('account_id', '=', owner.account.id)
          .where('name', '=', name)
          .where('removed', 'is', null)
          .executeTakeFirst();
        if (clash)
          throw invalidParameter(`A VM named ${name} already exists in account ${owner.account.name}`);
      }
      // Checked here, taken at the end (checkReservation says why).
      const reservation = await checkReservation(ctx, tx, owner.account, [
        [ResourceKind.Instance, 1],
        [ResourceKind.Cpu, size.cpuNumber],
        [ResourceKind.Memory, size.memoryMb],
        ...volumeReservation(rootSize),
        ...(dataDisk ? volumeReservation(dataDisk.sizeBytes) : []),
      ]);
      const vmUuid = app.ids.uuid();
      const now = app.clock.now();
      const vmId = await insertId(app.store, tx, 'vms', {
        uuid: vmUuid,
        name: name ?? `VM-${vmUuid}`,
        instance_name: `pending-${vmUuid}`,
        display_name: params.displayname ?? name ?? `VM-${vmUuid}`,
        account_id: owner.account.id,
        domain_id: owner.account.domain_id,
        user_id: ctx.caller.user.id,
        zone_id: zone.id,
        pod_id: pod?.id ?? null,
        cluster_id: cluster?.id ?? null,
        host_id: null,
        last_host_id: null,
        template_id: isIso ? null : image.template.id,
        iso_id: isIso ? image.template.id : null,
        service_offering_id: offering.id,
        disk_offering_id: dataDisk?.offering.id ?? null,
        cpu_number: size.cpuNumber,
        cpu_speed: size.cpuSpeed,
        memory_mb: size.memoryMb,
        hypervisor,
        guest_os_id: image.template.os_type_id,
        state: 'Stopped',
        ha_enabled: offering.offer_ha,
        display_vm: params.displayvm === false ? 0 : 1,
        group_id: params.group ? await groupNamed(ctx, tx, owner.account, params.group) : null,
        keypairs: keypairs.length ? keypairs.join(',') : null,
        user_data: userData ?? null,
        user_data_id: userDataId,
        password: password ? app.secrets.encrypt(password) : null,
        // The router hands the password to the guest once (password-enabled templates).
        password_pending: password ? 1 : 0,
        details: Object.keys(details).length ? JSON.stringify(details) : null,
        created: now,
        updated: now,
        removed: null,
      });
      await tx
        .updateTable('vms')
        .set({ instance_name: `i-${owner.account.id}-${vmId}-VM` })
        .where('id', '=', vmId)
        .execute();
      await insertVolume(ctx, tx, {
        name: `ROOT-${vmId}`,
        account: owner.account,
        zoneId: zone.id,
        type: 'ROOT',
        sizeBytes: rootSize,
        diskOfferingId: offering.disk_offering_id,
        templateId: isIso ? null : image.template.id,
        vmId,
        deviceId: 0,
        reserved: true,
      });
      if (dataDisk) {
        await insertVolume(ctx, tx, {
          name: `DATA-${vmId}`,
          account: owner.account,
          zoneId: zone.id,
          type: 'DATADISK',
          sizeBytes: dataDisk.sizeBytes,
          diskOfferingId: dataDisk.offering.id,
          vmId,
          deviceId: 1,
          provisioningType: dataDisk.offering.provisioning_type,
          reserved: true,
        });
      }
      await allocateNics(ctx, tx, {
        vm: { id: vmId, uuid: vmUuid, accountId: owner.account.id, zoneId: zone.id, podId: pod?.id ?? null },
        networkIds,
        ipAddress: params.ipaddress,
        ipByNetwork,
      });
      if (securityGroups.length) await assignSecurityGroups(ctx, tx, vmId, securityGroups);
      await joinAffinityGroups(
        tx,
        vmId,
        affinityGroups.map((g) => g.id),
      );
      await logEvent(ctx, tx, {
        type: 'VM.CREATE',
        description: `created VM ${name ?? vmUuid}`,
        resourceType: 'VirtualMachine',
        resourceId: vmUuid,
      });
      await reservation.apply();
      return vmUuid;
    });
    return { type: 'VirtualMachine', id: uuid };
  },
  async handler(ctx, params, created) {
    let vm = await findVm(ctx, created!.id);
    // The generated password is shown once, in the deploy's job result.
    const password = vm.password ? ctx.app.secrets.decrypt(vm.password) : undefined;
    if (params.startvm !== false) {
      const host = params.hostid ? await findHost(ctx, params.hostid) : undefined;
      try {
        vm = await startVm(ctx, vm, {
          hostId: host?.id,
          clusterId: vm.cluster_id ?? undefined,
          podId: vm.pod_id ?? undefined,
        });
      } catch (e) {
        // A deploy that cannot start leaves nothing behind.
        await expungeVm(ctx, await findVm(ctx, vm.uuid, { includeDestroyed: true }));
        throw e;
      }
    }
    return (await presentVms(ctx, [vm], { password }))[0];
  },
});
