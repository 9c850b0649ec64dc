/**
 * One-time console access tokens. createConsoleEndpoint issues one for a VM the caller may reach;
 * the console proxy redeems it when the browser's WebSocket arrives. Only a SHA-256 of the token
 * is stored, the row is shared by every management server on the database, and redeeming is one
 * conditional UPDATE, so a token opens at most one console session, on whichever server.
 */
import { randomBytes } from 'node:crypto';
import { hashToken } from '../agents/gateway.ts';
import type { App, CallContext } from '../context.ts';
import type { ConsoleTokenRow, VmRow } from '../db/schema.ts';
import { defineSetting } from '../settings/settings.ts';

export const CONSOLE_TOKEN_VALIDITY = defineSetting({
  name: 'console.token.validity',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 60,
  min: 1,
  max: 3600,
  description:
    'Seconds a console access token (createConsoleEndpoint) stays valid; it is redeemed once, when the console connects.',
});

/** Redeemed, used and expired rows are kept this long (for support), then deleted. */
const KEEP_MS = 24 * 3600_000;

export interface IssuedToken {
  token: string;
  expires: number;
}

export async function issueConsoleToken(
  ctx: CallContext,
  vm: Pick<VmRow, 'id'>,
  extra?: string,
): Promise<IssuedToken> {
  const { app, caller } = ctx;
  const token = randomBytes(32).toString('base64url');
  const now = app.clock.now();
  const expires = now + app.settings.get(CONSOLE_TOKEN_VALIDITY) * 1000;
  await app.store.db
    .insertInto('console_tokens')
    .values({
      token_hash: hashToken(token),
      extra_hash: extra ? hashToken(extra) : null,
      vm_id: vm.id,
      user_id: caller.user.id,
      account_id: caller.account.id,
      domain_id: caller.domain.id,
      created: now,
      expires,
      used: null,
    })
    .execute();
  // Housekeeping rides on issuing: the table stays small without a timer on every server.
  await app.store.db
    .deleteFrom('console_tokens')
    .where('expires', '<', now - KEEP_MS)
    .execute();
  return { token, expires };
}

export type Redeemed = { ok: true; row: ConsoleTokenRow } | { ok: false; reason: string };

/** Burns the token; answers its row, or why it cannot open a console. */
export async function redeemConsoleToken(app: App, token: string, extra?: string): Promise<Redeemed> {
  if (!token) return { ok: false, reason: 'no console token given' };
  const hash = hashToken(token);
  const now = app.clock.now();
  const burnt = await app.store.db
    .updateTable('console_tokens')
    .set({ used: now })
    .where('token_hash', '=', hash)
    .where('used', 'is', null)
    .where('expires', '>=', now)
    .executeTakeFirst();
  const row = await app.store.db
    .selectFrom('console_tokens')
    .selectAll()
    .where('token_hash', '=', hash)
    .executeTakeFirst();
  if (!row) return { ok: false, reason: 'unknown console token' };
  if (Number(burnt.numUpdatedRows) !== 1) {
    // Another session (on this or another server) redeemed it, or it expired unused.
    return row.used !== null
      ? { ok: false, reason: 'console token already used; ask for a new console' }
      : { ok: false, reason: 'console token expired; ask for a new console' };
  }
  if (row.extra_hash && (!extra || hashToken(extra) !== row.extra_hash))
    return { ok: false, reason: 'the extra security token does not match' };
  return { ok: true, row };
}
