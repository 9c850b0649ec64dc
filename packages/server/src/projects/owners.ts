/**
 * Resources a project owns are shown as upstream shows them: with `project` and `projectid`
 * instead of the name of the project's account. Applied once to every command's result (sync and
 * async), so no presenter needs to know about projects.
 */
import type { CallContext } from '../context.ts';
import { isListResult } from '../registry/command.ts';

/** Every project account's name starts so (PrjAcct-<name>-<domain id>): a cheap test before any query. */
const PREFIX = 'PrjAcct-';

export async function withProjectOwners(ctx: CallContext, result: unknown): Promise<void> {
  if (!result || typeof result !== 'object') return;
  const items = (isListResult(result as object) ? (result as { items: object[] }).items : [result]) as Record<
    string,
    unknown
  >[];
  const owned = items.filter((i) => typeof i.account === 'string' && i.account.startsWith(PREFIX));
  if (owned.length === 0) return;
  const projects = await ctx.app.store.db
    .selectFrom('projects')
    .innerJoin('accounts', 'accounts.id', 'projects.project_account_id')
    .innerJoin('domains', 'domains.id', 'accounts.domain_id')
    .select(['projects.uuid', 'projects.name', 'accounts.name as account', 'domains.uuid as domainid'])
    .where('accounts.name', 'in', [...new Set(owned.map((i) => i.account as string))])
    .execute();
  for (const item of owned) {
    // The account name is unique within its domain; items without domainid match by name alone.
    const project = projects.find(
      (p) => p.account === item.account && (item.domainid === undefined || p.domainid === item.domainid),
    );
    if (!project) continue;
    item.project = project.name;
    item.projectid = project.uuid;
    delete item.account;
  }
}
