/** VM rows → CloudStack `virtualmachine` objects, batching every look-up for a whole page. */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import type { VmRow } from '../db/schema.ts';
import { displayPath } from '../iam/domains.ts';
import { presentNics } from '../network/nics.ts';
import { presentVmSecurityGroups } from '../network/security-groups.ts';
import { templateInfo } from '../storage/templates.ts';
import { tagsOf } from '../tags/tags.ts';
import { presentVmAffinityGroups } from './affinity.ts';

/** The parts of a VM `details=` can ask for; `min` keeps only the essentials. */
export type VmDetail =
  | 'all'
  | 'group'
  | 'nics'
  | 'stats'
  | 'secgrp'
  | 'tmpl'
  | 'servoff'
  | 'diskoff'
  | 'backoff'
  | 'iso'
  | 'volume'
  | 'min'
  | 'affgrp';

export interface PresentOptions {
  details?: string[];
  /** A password to show once (deploy or reset with a password-enabled template). */
  password?: string;
}

/** The VM columns the presenter reads: lists select only these (not user data or passwords). */
export const PRESENTED_VM_COLUMNS = [
  'id',
  'uuid',
  'name',
  'display_name',
  'instance_name',
  'account_id',
  'domain_id',
  'user_id',
  'zone_id',
  'host_id',
  'template_id',
  'iso_id',
  'service_offering_id',
  'group_id',
  'guest_os_id',
  'cpu_number',
  'cpu_speed',
  'memory_mb',
  'hypervisor',
  'state',
  'ha_enabled',
  'display_vm',
  'keypairs',
  'details',
  'created',
  'updated',
] as const satisfies readonly (keyof VmRow)[];

export type PresentedVm = Pick<VmRow, (typeof PRESENTED_VM_COLUMNS)[number]>;

export async function presentVms(
  ctx: CallContext,
  rows: PresentedVm[],
  opts: PresentOptions = {},
): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const wanted = new Set((opts.details ?? ['all']).map((d) => d.toLowerCase()));
  const all = wanted.has('all');
  const want = (d: VmDetail) => all || wanted.has(d);
  const min = wanted.has('min') && !all;
  const ids = (key: keyof PresentedVm) => [
    ...new Set(rows.map((r) => r[key]).filter((x): x is number => typeof x === 'number')),
  ];
  const none = Promise.resolve([] as never[]);
  const [
    accounts,
    users,
    domains,
    zones,
    hosts,
    offerings,
    templates,
    groups,
    osTypes,
    nics,
    groupsOf,
    tags,
  ] = await Promise.all([
    db.selectFrom('accounts').select(['id', 'uuid', 'name']).where('id', 'in', ids('account_id')).execute(),
    !min
      ? db.selectFrom('users').select(['id', 'uuid', 'username']).where('id', 'in', ids('user_id')).execute()
      : none,
    db
      .selectFrom('domains')
      .select(['id', 'uuid', 'name', 'path'])
      .where('id', 'in', ids('domain_id'))
      .execute(),
    db.selectFrom('zones').select(['id', 'uuid', 'name']).where('id', 'in', ids('zone_id')).execute(),
    ids('host_id').length
      ? db.selectFrom('hosts').select(['id', 'uuid', 'name']).where('id', 'in', ids('host_id')).execute()
      : none,
    !min && want('servoff')
      ? db
          .selectFrom('service_offerings')
          .select(['id', 'uuid', 'name'])
          .where('id', 'in', ids('service_offering_id'))
          .execute()
      : none,
    !min && (want('tmpl') || want('iso'))
      ? templateInfo(ctx, [...ids('template_id'), ...ids('iso_id')])
      : Promise.resolve(new Map()),
    !min && want('group') && ids('group_id').length
      ? db
          .selectFrom('instance_groups')
          .select(['id', 'uuid', 'name'])
          .where('id', 'in', ids('group_id'))
          .execute()
      : none,
    !min && ids('guest_os_id').length
      ? db
          .selectFrom('os_types')
          .select(['id', 'uuid', 'display_name'])
          .where('id', 'in', ids('guest_os_id'))
          .execute()
      : none,
    !min && want('nics')
      ? presentNics(
          ctx,
          rows.map((r) => r.id),
        )
      : Promise.resolve(new Map<number, object[]>()),
    !min && want('secgrp')
      ? presentVmSecurityGroups(
          ctx,
          rows.map((r) => r.id),
        )
      : Promise.resolve(new Map<number, object[]>()),
    min
      ? Promise.resolve(new Map<number, object[]>())
      : tagsOf(
          ctx,
          'UserVm',
          rows.map((r) => r.id),
        ),
  ]);
  const affinity =
    !min && want('affgrp')
      ? await presentVmAffinityGroups(
          ctx,
          rows.map((r) => r.id),
        )
      : new Map<number, object[]>();
  const by = <T extends { id: number }>(list: T[]) => new Map(list.map((x) => [x.id, x]));
  const account = by(accounts);
  const user = by(users as { id: number; uuid: string; username: string }[]);
  const domain = by(domains);
  const zone = by(zones);
  const host = by(hosts as { id: number; uuid: string; name: string }[]);
  const offering = by(offerings as { id: number; uuid: string; name: string }[]);
  const template = templates;
  const group = by(groups as { id: number; uuid: string; name: string }[]);
  const os = by(osTypes as { id: number; uuid: string; display_name: string }[]);
  const isAdmin = ctx.caller.roleKind === 'admin';
  return rows.map((vm) => {
    const d = domain.get(vm.domain_id);
    const z = zone.get(vm.zone_id);
    const h = vm.host_id === null ? undefined : host.get(vm.host_id);
    if (min) {
      return {
        id: vm.uuid,
        name: vm.name,
        displayname: vm.display_name,
        account: account.get(vm.account_id)?.name,
        domainid: d?.uuid,
        domain: d?.name,
        domainpath: d ? displayPath(d.path) : undefined,
        state: vm.state,
        zoneid: z?.uuid,
        zonename: z?.name,
        created: formatDate(vm.created),
        // Undefined fields are left out of the response: callers other than admins see no host.
        hostid: isAdmin ? h?.uuid : undefined,
        hostname: isAdmin ? h?.name : undefined,
        instancename: isAdmin ? vm.instance_name : undefined,
      };
    }
    const t = vm.template_id === null ? undefined : template.get(vm.template_id);
    const iso = vm.iso_id === null ? undefined : template.get(vm.iso_id);
    const o = offering.get(vm.service_offering_id);
    const g = vm.group_id === null ? undefined : group.get(vm.group_id);
    const u = user.get(vm.user_id);
    const guestOs = vm.guest_os_id === null ? undefined : os.get(vm.guest_os_id);
    const vmNics = (nics.get(vm.id) ?? []) as { ipaddress?: string; isdefault?: boolean }[];
    const keypairs = vm.keypairs ?? undefined;
    // One object literal with every key in response order: V8 builds it with a fixed shape, where
    // spreading a base object (or Object.assign onto it) took a slow path that was the largest
    // cost of a page of 500 VMs. Keys whose value is undefined are left out of the JSON.
    return {
      id: vm.uuid,
      name: vm.name,
      displayname: vm.display_name,
      account: account.get(vm.account_id)?.name,
      domainid: d?.uuid,
      domain: d?.name,
      domainpath: d ? displayPath(d.path) : undefined,
      state: vm.state,
      zoneid: z?.uuid,
      zonename: z?.name,
      created: formatDate(vm.created),
      hostid: isAdmin ? h?.uuid : undefined,
      hostname: isAdmin ? h?.name : undefined,
      instancename: isAdmin ? vm.instance_name : undefined,
      userid: u?.uuid,
      username: u?.username,
      lastupdated: formatDate(vm.updated),
      haenable: vm.ha_enabled === 1,
      groupid: g?.uuid,
      group: g?.name,
      templateid: t?.uuid,
      templatename: t?.name,
      templatedisplaytext: t?.displayText,
      templatetype: t?.type,
      templateformat: t?.format,
      passwordenabled: t?.passwordEnabled ?? false,
      isoid: iso?.uuid,
      isoname: iso?.name,
      isodisplaytext: iso?.displayText,
      serviceofferingid: o?.uuid,
      serviceofferingname: o?.name,
      cpunumber: vm.cpu_number,
      cpuspeed: vm.cpu_speed,
      memory: vm.memory_mb,
      guestosid: guestOs?.uuid,
      ostypeid: guestOs?.uuid,
      osdisplayname: guestOs?.display_name,
      rootdeviceid: 0,
      rootdevicetype: 'ROOT',
      hypervisor: vm.hypervisor,
      nic: vmNics,
      ipaddress: vmNics.find((n) => n.isdefault)?.ipaddress,
      securitygroup: groupsOf.get(vm.id) ?? [],
      affinitygroup: affinity.get(vm.id) ?? [],
      // CloudStack 4.17+ says `keypairs`; older clients (Ansible's cs_instance) read `keypair`.
      keypairs,
      keypair: keypairs,
      details: vm.details ? JSON.parse(vm.details) : undefined,
      isdynamicallyscalable: false,
      displayvm: vm.display_vm === 1,
      vmtype: 'User',
      tags: tags.get(vm.id) ?? [],
      password: opts.password || undefined,
    };
  });
}
