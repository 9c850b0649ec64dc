/**
 * System VMs: upstream runs a console proxy and a secondary storage VM per zone; Nimbostack runs
 * none (its console proxy is part of the management server, image stores are served by it and the
 * agents, and virtual routers are listed by listRouters). The list is therefore always empty, with
 * upstream's envelope, so that its System VMs page shows an empty table.
 */
import { defineCommand, listResult } from '../registry/command.ts';
import { listParams, p } from '../registry/params.ts';

export const listSystemVms = defineCommand({
  name: 'listSystemVms',
  description:
    'Lists system VMs (console proxies, secondary storage VMs); Nimbostack runs none, so the list is empty.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the system VM with this UUID.' }),
    name: p.string({ description: 'Only system VMs with this name.' }),
    zoneid: p.uuid({ description: 'Only system VMs of this zone.' }),
    podid: p.uuid({ description: 'Only system VMs of this pod.' }),
    hostid: p.uuid({ description: 'Only system VMs on this host.' }),
    storageid: p.uuid({ description: 'Only system VMs with a volume on this primary storage pool.' }),
    state: p.string({ description: 'Only system VMs in this state, such as Running.' }),
    systemvmtype: p.string({
      description: 'Only system VMs of this type: consoleproxy or secondarystoragevm.',
    }),
    arch: p.string({ description: 'Only system VMs of this CPU architecture.' }),
  },
  async handler() {
    return listResult([], 0);
  },
});
