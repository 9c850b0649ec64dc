/** LDAP sign-in and the LDAP commands (docs/ldap.md). */
import { onAccountDelete } from '../iam/accounts.ts';
import { configurationCommands } from './configurations.ts';
import { legacyCommands } from './legacy.ts';
import { linkCommands } from './links.ts';
import { ldapUserCommands } from './users.ts';

// Registered here, not in links.ts: sign-in (imported by iam/sessions.ts) loads links.ts while
// iam/accounts.ts may still be loading. A deleted account's link goes with it, as upstream drops it.
onAccountDelete(async (ctx, account) => {
  await ctx.app.store.db.deleteFrom('ldap_links').where('account_id', '=', account.id).execute();
});

export const ldapCommands = [
  ...configurationCommands,
  ...linkCommands,
  ...ldapUserCommands,
  ...legacyCommands,
];
