/**
 * What the upstream UI asks on its login page, answered as upstream does with the features off:
 * OAuth sign-in (no provider is registered here, so the list is empty) and password reset by
 * e-mail (Nimbostack sends no mail: the request is acknowledged and nothing happens, which is what
 * upstream answers while user.password.reset.enabled is false, so that the answer does not tell
 * which user names exist). Both are answered with or without a session, as upstream's API
 * authenticators are.
 */
import { invalidParameter } from '../errors.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { listParams, p } from '../registry/params.ts';
import { normaliseDomainPath } from './sessions.ts';

export const listOauthProvider = defineCommand({
  name: 'listOauthProvider',
  description:
    'Lists the OAuth 2 providers users may sign in with; Nimbostack has no OAuth sign-in, so the list is always empty. Answered before login too.',
  anonymous: true,
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the provider with this UUID.' }),
    provider: p.string({ description: 'Only the provider with this name, such as google or github.' }),
  },
  async handler() {
    return listResult([], 0);
  },
});

export const forgotPassword = defineCommand({
  name: 'forgotPassword',
  description:
    'Asks for a password-reset e-mail. Nimbostack sends none (password reset by e-mail is off): it checks the domain and acknowledges the request. Answered before login too.',
  anonymous: true,
  // Upstream registers it for every role: it is asked before anyone has signed in.
  roles: ['admin', 'resourceadmin', 'domainadmin', 'user'],
  params: {
    username: p.string({
      required: true,
      description: 'User name of the account whose password was forgotten.',
    }),
    domain: p.string({ description: 'Path of the user’s domain, such as /Sales/ (ROOT when omitted).' }),
  },
  async handler(ctx, params) {
    const path = normaliseDomainPath(params.domain ?? '/');
    const domain = await ctx.app.store.db
      .selectFrom('domains')
      .select('id')
      .where('path', '=', path)
      .where('state', '=', 'Active')
      .executeTakeFirst();
    if (!domain) throw invalidParameter(`Unable to find the domain from the path ${path}`);
    return success();
  },
});

export const signInOptionCommands = [listOauthProvider, forgotPassword];
