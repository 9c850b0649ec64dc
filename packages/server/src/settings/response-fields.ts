/** Response fields of configuration settings, in our words. */
import type { ResponseFields } from '../registry/response-fields.ts';

export const settingResponseFields: ResponseFields = {
  configuration: {
    name: 'Name of the setting, e.g. vm.userdata.max.length.',
    value: 'Value in force at the scope asked about: the scope’s own, else the global one, else the default.',
    defaultvalue: 'Value used when nobody has set one.',
    description: 'What the setting controls, in Nimbostack’s words.',
    category: 'Group the setting is filed under, e.g. Advanced, Storage, Network.',
    scope:
      "Level the value was read at: 'global', or 'zone', 'cluster', 'storagepool', 'imagestore', 'account' or 'domain' when one was named.",
    id: 'UUID of the zone, cluster, storage pool, image store, account or domain the value is for; left out for the global value.',
    isdynamic: 'true when a change takes effect at once; false when a restart is needed.',
    type: "Kind of value: e.g. 'String', 'Integer', 'Long', 'Float', 'Boolean'.",
    component: "Part of the system the setting belongs to: always 'ManagementServer'.",
    displaytext: 'Label for the setting: its name.',
    options: 'Comma-separated values the setting accepts; left out when any value of its type is.',
    group: 'Group the setting is filed under on settings pages (listConfigurationGroups), e.g. Compute.',
    subgroup: 'Subgroup of that group, e.g. Virtual Machine; Others when no topic fits.',
    parent: 'Not returned by Nimbostack: settings do not depend on one another.',
  },
  configurationgroup: {
    name: 'Name of the group, e.g. Access or Compute.',
    description: 'What the group’s settings are about.',
    precedence: 'Order of the group on a settings page: lower first.',
    subgroup: 'Subgroups of the group, each with its name and precedence, lowest precedence first.',
  },
  subgroup: {
    name: 'Name of the subgroup, e.g. Virtual Machine.',
    precedence: 'Order of the subgroup within its group: lower first.',
  },
};
