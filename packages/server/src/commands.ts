/** Every API command this server implements, from each capability folder. */
import { discoveryCommands } from './discovery/discovery.ts';
import { eventCommands } from './events/commands.ts';
import { accountCommands } from './iam/accounts.ts';
import { domainCommands } from './iam/domains.ts';
import { roleCommands } from './iam/roles.ts';
import { userCommands } from './iam/users.ts';
import { jobCommands } from './jobs/commands.ts';
import type { Command } from './registry/command.ts';
import { settingCommands } from './settings/commands.ts';
import { tagCommands } from './tags/commands.ts';

export const allCommands = [
  ...discoveryCommands,
  ...domainCommands,
  ...accountCommands,
  ...userCommands,
  ...roleCommands,
  ...jobCommands,
  ...eventCommands,
  ...settingCommands,
  ...tagCommands,
] as Command[];
