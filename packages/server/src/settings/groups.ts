/**
 * Settings grouped as upstream groups them for its Global Settings page: groups (Access, Compute,
 * Storage …) of subgroups (Account, Virtual Machine, Images …), each with upstream's name,
 * precedence and the keywords its setting names are matched with. A setting belongs to the first
 * subgroup whose name equals a word of its own name, else to the first whose keyword does, else to
 * Miscellaneous / Others — upstream's rule, so that both servers file a setting the same way.
 */
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';

interface Subgroup {
  name: string;
  precedence: number;
  keywords: string[];
}

interface Group {
  name: string;
  description: string;
  precedence: number;
  subgroups: Subgroup[];
}

const sub = (name: string, precedence: number, keywords = ''): Subgroup => ({
  name,
  precedence,
  keywords: keywords ? keywords.split(',') : [],
});

export const SETTING_GROUPS: Group[] = [
  {
    name: 'Access',
    description: 'Who may sign in and what accounts, domains and projects may do.',
    precedence: 1,
    subgroups: [
      sub('Account', 1),
      sub('Domain', 2),
      sub('Project', 3),
      sub('LDAP', 4),
      sub('SAML', 5, 'saml2'),
    ],
  },
  {
    name: 'Compute',
    description: 'Instances: sizes, placement, SSH keys, affinity and high availability.',
    precedence: 2,
    subgroups: [
      sub('Virtual Machine', 1, 'vm,instance,cpu,ssh,affinity'),
      sub('Kubernetes', 2, 'kubernetes'),
      sub('High Availability', 3, 'ha'),
    ],
  },
  {
    name: 'Storage',
    description: 'Templates, ISOs, volumes and snapshots.',
    precedence: 3,
    subgroups: [
      sub('Images', 1, 'template,iso'),
      sub('Volume', 2, 'disk,diskoffering'),
      sub('Snapshot', 3),
      sub('VM Snapshot', 4, 'vmsnapshot'),
    ],
  },
  {
    name: 'Network',
    description: 'Guest networks, addresses, DHCP, VPCs and load balancing.',
    precedence: 4,
    subgroups: [
      sub('Network', 1, 'firewall,vlan,dns,globodns,ipaddress,cidr'),
      sub('DHCP', 2, 'externaldhcp'),
      sub('VPC', 3),
      sub('LoadBalancer', 4, 'lb,gslb'),
    ],
  },
  {
    name: 'Hypervisor',
    description: 'Hosts and what each hypervisor does.',
    precedence: 5,
    subgroups: [
      sub('Hypervisor', 1, 'host'),
      sub('KVM', 2, 'libvirt'),
      sub('VMware', 3, 'vcenter'),
      sub('XenServer', 4, 'xen,xapi,XCP'),
      sub('OVM', 5, 'ovm3'),
      sub('Baremetal', 6),
    ],
  },
  {
    name: 'Management Server',
    description: 'The API, alerts, events, security, limits, jobs and host agents.',
    precedence: 6,
    subgroups: [
      sub('API', 1),
      sub('Alerts', 2, 'alert'),
      sub('Events', 3, 'event'),
      sub('Security', 4, 'secure,password,authenticators'),
      sub('Limits', 6, 'capacity,delay,interval,workers'),
      sub('Jobs', 7, 'job'),
      sub('Agent', 8),
    ],
  },
  {
    name: 'System VMs',
    description: 'Virtual routers and the system VMs upstream runs (Nimbostack runs none).',
    precedence: 7,
    subgroups: [
      sub('ConsoleProxyVM', 1, 'cpvm,consoleproxy,novnc'),
      sub('SecStorageVM', 2, 'ssvm,secondary'),
      sub('VirtualRouter', 3, 'vr,router,vrouter'),
      sub('Diagnostics', 4),
    ],
  },
  {
    name: 'Infrastructure',
    description: 'Primary and secondary storage.',
    precedence: 8,
    subgroups: [
      sub('Primary Storage', 1, 'storage,pool,primary'),
      sub('Secondary Storage', 2, 'image,secstorage'),
    ],
  },
  {
    name: 'Usage Server',
    description: 'Usage records.',
    precedence: 9,
    subgroups: [sub('Usage', 1)],
  },
  {
    name: 'Miscellaneous',
    description: 'Everything else.',
    precedence: 999,
    subgroups: [
      sub('Backup & Recovery', 1, 'backup,recovery,veeam'),
      sub('Certificate Authority', 2, 'CA'),
      sub('Quota', 3),
      sub('Cloudian', 4),
      sub('Others', 999),
    ],
  },
];

const ALL = SETTING_GROUPS.flatMap((g) => g.subgroups.map((s) => ({ group: g.name, subgroup: s })));
const filed = new Map<string, { group: string; subgroup: string }>();

/** The group and subgroup of a setting, by upstream's rule (see the top of this file). */
export function groupOf(settingName: string): { group: string; subgroup: string } {
  const known = filed.get(settingName);
  if (known) return known;
  const words = settingName.toLowerCase().split('.');
  const match =
    ALL.find((e) => words.includes(e.subgroup.name.toLowerCase())) ??
    ALL.find((e) => e.subgroup.keywords.some((k) => words.includes(k.toLowerCase())));
  const out = match
    ? { group: match.group, subgroup: match.subgroup.name }
    : { group: 'Miscellaneous', subgroup: 'Others' };
  filed.set(settingName, out);
  return out;
}

export const listConfigurationGroups = defineCommand({
  name: 'listConfigurationGroups',
  description:
    'Lists the groups and subgroups settings are filed under (as upstream files them), for settings pages organised by topic.',
  params: {
    ...listParams,
    group: p.string({ description: 'Only the group with this name (case-insensitive).' }),
  },
  async handler(ctx, params) {
    let groups = [...SETTING_GROUPS].sort((a, b) => a.precedence - b.precedence);
    if (params.group) groups = groups.filter((g) => g.name.toLowerCase() === params.group!.toLowerCase());
    if (params.keyword) {
      const k = params.keyword.toLowerCase();
      groups = groups.filter((g) => g.name.toLowerCase().includes(k));
    }
    const page = pageOf(ctx.app, params);
    const slice = groups.slice(page.offset, page.limit === undefined ? undefined : page.offset + page.limit);
    return listResult(
      slice.map((g) => ({
        name: g.name,
        description: g.description,
        precedence: g.precedence,
        subgroup: [...g.subgroups]
          .sort((a, b) => a.precedence - b.precedence)
          .map((s) => ({ name: s.name, precedence: s.precedence })),
      })),
      groups.length,
    );
  },
});
