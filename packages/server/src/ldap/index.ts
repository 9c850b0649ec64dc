/** LDAP sign-in and the LDAP commands (docs/ldap.md). */
import { configurationCommands } from './configurations.ts';

export const ldapCommands = [...configurationCommands];
