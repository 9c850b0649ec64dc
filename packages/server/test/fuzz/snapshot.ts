/**
 * What "the server's answers are unchanged" means for the fuzzer: a fixed set of lists, read as the
 * root admin (everything), before and after. Every item there before must be there after with the
 * same stable fields (id, name, state, value…); items the fuzzing legitimately created are allowed
 * and counted. Fields that move on their own (heartbeats, usage, job markers) are not compared.
 */
import type { CloudStackClient } from '@nimbostack/client';

type Snap = Map<string, Map<string, string>>;

const LISTS: [command: string, objectName: string, params?: Record<string, unknown>][] = [
  ['listVirtualMachines', 'virtualmachine'],
  ['listVolumes', 'volume'],
  ['listNetworks', 'network'],
  ['listPublicIpAddresses', 'publicipaddress'],
  ['listFirewallRules', 'firewallrule'],
  ['listPortForwardingRules', 'portforwardingrule'],
  ['listSnapshots', 'snapshot'],
  ['listSSHKeyPairs', 'sshkeypair'],
  ['listAffinityGroups', 'affinitygroup'],
  ['listInstanceGroups', 'instancegroup'],
  ['listUserData', 'userdata'],
  ['listAccounts', 'account'],
  ['listUsers', 'user'],
  ['listDomains', 'domain'],
  ['listZones', 'zone'],
  ['listPods', 'pod'],
  ['listClusters', 'cluster'],
  ['listHosts', 'host'],
  ['listStoragePools', 'storagepool'],
  ['listImageStores', 'imagestore'],
  ['listServiceOfferings', 'serviceoffering'],
  ['listDiskOfferings', 'diskoffering'],
  ['listNetworkOfferings', 'networkoffering'],
  ['listTemplates', 'template', { templatefilter: 'all' }],
  ['listRouters', 'router'],
  ['listVlanIpRanges', 'vlaniprange'],
  ['listRoles', 'role'],
  ['listEvents', 'event'],
  ['listConfigurations', 'configuration'],
];

const STABLE = ['id', 'name', 'state', 'displaytext', 'value', 'account', 'domainid', 'ipaddress', 'size'];

export async function snapshot(admin: CloudStackClient): Promise<Snap> {
  const out: Snap = new Map();
  for (const [command, objectName, params] of LISTS) {
    const r = await admin.request<Record<string, Record<string, unknown>[]>>(command, {
      listall: true,
      pagesize: -1,
      ...params,
    } as never);
    const items = new Map<string, string>();
    for (const item of r[objectName] ?? []) {
      const key = String(item.id ?? item.name);
      items.set(key, JSON.stringify(STABLE.map((f) => item[f] ?? '')));
    }
    out.set(command, items);
  }
  return out;
}

/**
 * What changed between two snapshots: lost or altered items (violations) and new ones (counted).
 * `scratch` names an account whose items may change (the deep cases' tenant), and their ids.
 */
export function compare(
  before: Snap,
  after: Snap,
  scratch?: { account: string; ids: Set<string> },
): { changed: string[]; added: number } {
  const changed: string[] = [];
  let added = 0;
  const isScratch = (id: string, fields: string) =>
    scratch !== undefined &&
    (scratch.ids.has(id) || JSON.parse(fields)[STABLE.indexOf('account')] === scratch.account);
  for (const [command, items] of before) {
    const now = after.get(command) ?? new Map<string, string>();
    for (const [id, fields] of items) {
      if (isScratch(id, fields)) continue;
      const later = now.get(id);
      if (later === undefined) changed.push(`${command}: ${id} is gone (${fields})`);
      else if (later !== fields) changed.push(`${command}: ${id} was ${fields}, is ${later}`);
    }
    for (const id of now.keys()) if (!items.has(id)) added++;
  }
  return { changed, added };
}
