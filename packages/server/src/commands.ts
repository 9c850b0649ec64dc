/** Every API command this server implements, from each capability folder. */

import { agentResponseFields } from './agents/response-fields.ts';
import { simulatorCommands } from './agents/simulator.ts';
import { computeCommands } from './compute/index.ts';
import { computeResponseFields } from './compute/response-fields.ts';
import { consoleCommands } from './console/commands.ts';
import { consoleResponseFields } from './console/response-fields.ts';
import { discoveryCommands } from './discovery/discovery.ts';
import { discoveryResponseFields } from './discovery/response-fields.ts';
import { eventCommands } from './events/commands.ts';
import { eventResponseFields } from './events/response-fields.ts';
import { guiThemeCommands } from './gui-themes/commands.ts';
import { guiThemeResponseFields } from './gui-themes/response-fields.ts';
import { haCommands } from './ha/commands.ts';
import { haResponseFields } from './ha/response-fields.ts';
import { accountCommands } from './iam/accounts.ts';
import { domainCommands } from './iam/domains.ts';
import { limitCommands } from './iam/limits.ts';
import { iamResponseFields } from './iam/response-fields.ts';
import { roleCommands } from './iam/roles.ts';
import { signInOptionCommands } from './iam/sign-in-options.ts';
import { twoFactorCommands } from './iam/two-factor.ts';
import { userCommands } from './iam/users.ts';
import { iconCommands } from './icons/icons.ts';
import { iconResponseFields } from './icons/response-fields.ts';
import { hostCommands } from './infra/hosts.ts';
import { infraCommands } from './infra/index.ts';
import { networkServiceProviderCommands } from './infra/network-service-providers.ts';
import { infraResponseFields } from './infra/response-fields.ts';
import { listSystemVms } from './infra/system-vms.ts';
import { jobCommands } from './jobs/commands.ts';
import { jobResponseFields } from './jobs/response-fields.ts';
import { ldapCommands } from './ldap/index.ts';
import { ldapResponseFields } from './ldap/response-fields.ts';
import { metricsCommands } from './metrics/list-metrics.ts';
import { metricsResponseFields } from './metrics/response-fields.ts';
import { networkCommands } from './network/index.ts';
import { lbMemberCommands } from './network/lb-members.ts';
import { lbPolicyCommands } from './network/lb-policies.ts';
import { loadBalancerRuleCommands } from './network/load-balancers.ts';
import { networkResponseFields } from './network/response-fields.ts';
import { vpnCommands, vpnResponseFields } from './network/vpn/index.ts';
import { offeringCommands } from './offerings/index.ts';
import { offeringResponseFields } from './offerings/response-fields.ts';
import { projectCommands } from './projects/index.ts';
import { projectResponseFields } from './projects/response-fields.ts';
import type { Command } from './registry/command.ts';
import type { ResponseFields } from './registry/response-fields.ts';
import { settingCommands } from './settings/commands.ts';
import { settingResponseFields } from './settings/response-fields.ts';
import { browserUploadCommands } from './storage/browser-upload.ts';
import { cloudianIsEnabled } from './storage/cloudian.ts';
import { isoCommands } from './storage/isos.ts';
import { storageResponseFields } from './storage/response-fields.ts';
import { allSnapshotCommands } from './storage/snapshot-commands.ts';
import { templateCommands } from './storage/template-commands.ts';
import { tagCommands } from './tags/commands.ts';
import { tagResponseFields } from './tags/response-fields.ts';
import { usageResponseFields } from './usage/response-fields.ts';
import { usageCommands } from './usage/usage.ts';
import { webhookCommands } from './webhooks/commands.ts';
import { webhookResponseFields } from './webhooks/response-fields.ts';

export const allCommands = [
  ...discoveryCommands,
  ...domainCommands,
  ...accountCommands,
  ...userCommands,
  ...twoFactorCommands,
  ...ldapCommands,
  ...roleCommands,
  ...limitCommands,
  ...jobCommands,
  ...eventCommands,
  ...settingCommands,
  ...tagCommands,
  ...infraCommands,
  ...networkServiceProviderCommands,
  ...offeringCommands,
  ...hostCommands,
  ...haCommands,
  ...simulatorCommands,
  ...templateCommands,
  ...isoCommands,
  ...networkCommands,
  ...loadBalancerRuleCommands,
  ...lbMemberCommands,
  ...lbPolicyCommands,
  ...vpnCommands,
  ...computeCommands,
  ...consoleCommands,
  ...usageCommands,
  ...allSnapshotCommands,
  ...webhookCommands,
  ...guiThemeCommands,
  ...projectCommands,
  ...metricsCommands,
  ...signInOptionCommands,
  listSystemVms,
  cloudianIsEnabled,
  ...iconCommands,
  ...browserUploadCommands,
] as Command[];

/** The response-field descriptions of every capability folder (see registry/response-fields.ts). */
export const allResponseFields: ResponseFields[] = [
  computeResponseFields,
  networkResponseFields,
  vpnResponseFields,
  iamResponseFields,
  ldapResponseFields,
  infraResponseFields,
  haResponseFields,
  offeringResponseFields,
  storageResponseFields,
  discoveryResponseFields,
  jobResponseFields,
  eventResponseFields,
  settingResponseFields,
  tagResponseFields,
  agentResponseFields,
  consoleResponseFields,
  usageResponseFields,
  webhookResponseFields,
  guiThemeResponseFields,
  projectResponseFields,
  metricsResponseFields,
  iconResponseFields,
];
