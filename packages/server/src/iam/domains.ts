/** Domains: the tree that accounts live in (ROOT at the top). */
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { DomainRow } from '../db/schema.ts';
import { invalidParameter, permissionDenied, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p, parseUuid } from '../registry/params.ts';
import { checkDomainAccess, escapeLike, findDomainByUuid, likeEscaped, pathPrefix } from './access.ts';

/** "/" → "ROOT", "/a/b/" → "ROOT/a/b", as CloudStack shows domain paths. */
export function displayPath(path: string): string {
  return path === '/' ? 'ROOT' : `ROOT${path.slice(0, -1)}`;
}

const NAME_RE = /^[^/]+$/;

async function presentDomains(ctx: CallContext, rows: DomainRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const parentIds = [...new Set(rows.map((r) => r.parent_id).filter((x): x is number => x !== null))];
  const parents = parentIds.length
    ? await db.selectFrom('domains').select(['id', 'uuid', 'name']).where('id', 'in', parentIds).execute()
    : [];
  const withChildren = await db
    .selectFrom('domains')
    .select('parent_id')
    .distinct()
    .where(
      'parent_id',
      'in',
      rows.map((r) => r.id),
    )
    .execute();
  const hasChild = new Set(withChildren.map((r) => r.parent_id));
  const byId = new Map(parents.map((r) => [r.id, r]));
  return rows.map((d) => {
    const parent = d.parent_id === null ? undefined : byId.get(d.parent_id);
    return {
      id: d.uuid,
      name: d.name,
      level: d.level,
      parentdomainid: parent?.uuid,
      parentdomainname: parent?.name,
      haschild: hasChild.has(d.id),
      path: displayPath(d.path),
      state: d.state,
      networkdomain: d.network_domain ?? undefined,
      created: new Date(d.created).toISOString().slice(0, 19) + '+0000',
    };
  });
}

async function presentDomain(ctx: CallContext, row: DomainRow): Promise<object> {
  return (await presentDomains(ctx, [row]))[0];
}

export const createDomain = defineCommand({
  name: 'createDomain',
  description:
    'Creates a subdomain under a parent domain the caller administers; names must be unique among siblings.',
  params: {
    name: p.string({
      required: true,
      description: "Name of the new domain: not empty, no '/', unique under its parent.",
    }),
    parentdomainid: p.uuid({
      description: "UUID of the parent domain; defaults to the caller's own domain.",
    }),
    networkdomain: p.string({
      description: "DNS domain suffix for guest networks of the domain's accounts.",
    }),
    domainid: p.string({ description: 'UUID to give the new domain instead of a generated one.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const customId = params.domainid === undefined ? undefined : parseUuid(params.domainid, 'domainid');
    const name = params.name.trim();
    if (!NAME_RE.test(name)) throw invalidParameter('Domain name must not be empty or contain "/"');
    const parent = params.parentdomainid
      ? await findDomainByUuid(ctx, params.parentdomainid)
      : ctx.caller.domain;
    checkDomainAccess(ctx.caller, parent);
    const row = await app.store.db
      .transaction()
      .execute((tx) =>
        insertDomain(ctx, tx, parent, name, { uuid: customId, networkDomain: params.networkdomain }),
      );
    return presentDomain(ctx, row);
  },
});

/**
 * Inserts a subdomain of `parent`, in the caller's transaction (createDomain, and importLdapUsers,
 * which makes a domain per LDAP group or OU as upstream does).
 */
export async function insertDomain(
  ctx: CallContext,
  tx: Tx,
  parent: DomainRow,
  name: string,
  opts: { uuid?: string; networkDomain?: string } = {},
): Promise<DomainRow> {
  const { app } = ctx;
  const clash = await tx
    .selectFrom('domains')
    .select('id')
    .where('parent_id', '=', parent.id)
    .where('name', '=', name)
    .executeTakeFirst();
  if (clash)
    throw invalidParameter(`Domain with name ${name} already exists for the parent id=${parent.uuid}`);
  if (opts.uuid) {
    const taken = await tx
      .selectFrom('domains')
      .select('id')
      .where('uuid', '=', opts.uuid)
      .executeTakeFirst();
    if (taken) throw invalidParameter(`Domain with uuid ${opts.uuid} already exists`);
  }
  const id = await insertId(app.store, tx, 'domains', {
    uuid: opts.uuid ?? app.ids.uuid(),
    name,
    parent_id: parent.id,
    path: `${parent.path}${name}/`,
    level: parent.level + 1,
    state: 'Active',
    network_domain: opts.networkDomain ?? null,
    created: app.clock.now(),
  });
  const created = await tx.selectFrom('domains').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  await logEvent(ctx, tx, {
    type: 'DOMAIN.CREATE',
    description: `creating domain ${name}`,
    resourceType: 'Domain',
    resourceId: created.uuid,
  });
  return created;
}

export const listDomains = defineCommand({
  name: 'listDomains',
  description:
    "Lists domains: by default only the caller's own; with listall or a filter, every domain below it (all of them for root admins).",
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the domain with this UUID.' }),
    name: p.string({ description: 'Only domains with exactly this name.' }),
    level: p.integer({ description: 'Only domains at this depth (ROOT is 0).' }),
    listall: p.boolean({
      description: 'List the whole subtree the caller administers instead of only their own domain.',
    }),
    details: p.list({
      description: 'Accepted for compatibility; Nimbostack always returns the full entries.',
    }),
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    const like = app.store.dialect === 'postgres' ? 'ilike' : 'like';
    let q = app.store.db.selectFrom('domains');
    // Without listall an admin sees their own domain only; with it, their whole subtree.
    q =
      params.listall || params.id || params.name || params.level !== undefined || params.keyword
        ? caller.roleKind === 'admin'
          ? q
          : q.where(pathPrefix('path', caller.domain.path))
        : q.where('id', '=', caller.domain.id);
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.level !== undefined) q = q.where('level', '=', params.level);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, like));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rowsQ = paginate(q.selectAll().orderBy('path'), pageOf(app, params));
    return listResult(await presentDomains(ctx, await rowsQ.execute()), Number(count));
  },
});

export const listDomainChildren = defineCommand({
  name: 'listDomainChildren',
  description: 'Lists the direct subdomains of a domain, or all domains below it with isrecursive.',
  params: {
    ...listParams,
    id: p.uuid({ description: "UUID of the parent domain; defaults to the caller's domain." }),
    isrecursive: p.boolean({
      description: 'When true, include every level below, not only direct children.',
    }),
    listall: p.boolean({
      description: 'Accepted for compatibility; Nimbostack ignores it (use isrecursive).',
    }),
    name: p.string({ description: 'Only subdomains with exactly this name.' }),
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const parent = params.id ? await findDomainByUuid(ctx, params.id) : ctx.caller.domain;
    checkDomainAccess(ctx.caller, parent);
    let q = app.store.db.selectFrom('domains');
    q = params.isrecursive
      ? q.where(pathPrefix('path', parent.path)).where('id', '!=', parent.id)
      : q.where('parent_id', '=', parent.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rowsQ = paginate(q.selectAll().orderBy('path'), pageOf(app, params));
    return listResult(await presentDomains(ctx, await rowsQ.execute()), Number(count));
  },
});

export const updateDomain = defineCommand({
  name: 'updateDomain',
  description:
    "Renames a domain (its subdomains' paths follow) or changes its network domain; the ROOT domain cannot be renamed.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the domain to change.' }),
    name: p.string({ description: "New name: not empty, no '/', unique among its siblings." }),
    networkdomain: p.string({
      description: 'New DNS domain suffix for its guest networks; empty clears it.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const domain = await findDomainByUuid(ctx, params.id);
    checkDomainAccess(ctx.caller, domain);
    const row = await app.store.db.transaction().execute(async (tx) => {
      if (params.name !== undefined && params.name !== domain.name) {
        if (domain.parent_id === null) throw invalidParameter('The ROOT domain cannot be renamed');
        const name = params.name.trim();
        if (!NAME_RE.test(name)) throw invalidParameter('Domain name must not be empty or contain "/"');
        const clash = await tx
          .selectFrom('domains')
          .select('id')
          .where('parent_id', '=', domain.parent_id)
          .where('name', '=', name)
          .executeTakeFirst();
        if (clash) throw invalidParameter(`Domain with name ${name} already exists for the same parent`);
        const oldPath = domain.path;
        const newPath = `${oldPath.slice(0, oldPath.length - domain.name.length - 1)}${name}/`;
        // Rename the whole subtree's paths in one statement.
        const subtree = await tx
          .selectFrom('domains')
          .select(['id', 'path'])
          .where(pathPrefix('path', oldPath))
          .execute();
        for (const d of subtree) {
          await tx
            .updateTable('domains')
            .set({ path: newPath + d.path.slice(oldPath.length) })
            .where('id', '=', d.id)
            .execute();
        }
        await tx.updateTable('domains').set({ name }).where('id', '=', domain.id).execute();
      }
      if (params.networkdomain !== undefined) {
        await tx
          .updateTable('domains')
          .set({ network_domain: params.networkdomain || null })
          .where('id', '=', domain.id)
          .execute();
      }
      await logEvent(ctx, tx, {
        type: 'DOMAIN.UPDATE',
        description: `updating domain ${domain.name}`,
        resourceType: 'Domain',
        resourceId: domain.uuid,
      });
      return tx.selectFrom('domains').selectAll().where('id', '=', domain.id).executeTakeFirstOrThrow();
    });
    return presentDomain(ctx, row);
  },
});

export const deleteDomain = defineCommand({
  name: 'deleteDomain',
  description:
    "Deletes a domain; with cleanup, also its subdomains and every account in them with all they own. Asynchronous; not ROOT nor the caller's own domain.",
  params: {
    id: p.uuid({ required: true, description: 'UUID of the domain to delete.' }),
    cleanup: p.boolean({
      description:
        'When true, delete subdomains and accounts too; otherwise the domain must be empty. Default false.',
    }),
  },
  event: { type: 'DOMAIN.DELETE', description: (params) => `deleting domain ${params.id}` },
  async target(ctx, params) {
    checkDomainAccess(ctx.caller, await findDomainByUuid(ctx, params.id));
    return { type: 'Domain', id: params.id };
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const domain = await findDomainByUuid(ctx, params.id);
    checkDomainAccess(ctx.caller, domain);
    if (domain.parent_id === null) throw permissionDenied('The ROOT domain cannot be deleted');
    if (domain.id === ctx.caller.domain.id)
      throw permissionDenied('A domain admin cannot delete their own domain');
    const { deleteAccountCascade } = await import('./accounts.ts');
    const subtree = await app.store.db
      .selectFrom('domains')
      .selectAll()
      .where(pathPrefix('path', domain.path))
      .orderBy('level', 'desc')
      .execute();
    const accounts = await app.store.db
      .selectFrom('accounts')
      .selectAll()
      .where(
        'domain_id',
        'in',
        subtree.map((d) => d.id),
      )
      .execute();
    if (!params.cleanup && (subtree.length > 1 || accounts.length > 0)) {
      throw resourceInUse(
        `Cannot delete domain ${domain.name}: it still has ${subtree.length > 1 ? 'sub-domains' : 'accounts'}; use cleanup=true to remove them`,
      );
    }
    for (const account of accounts) await deleteAccountCascade(ctx, account);
    await app.store.db.transaction().execute(async (tx) => {
      for (const d of subtree) {
        await tx.deleteFrom('domains').where('id', '=', d.id).execute();
      }
      // As upstream drops a removed domain's LDAP links; its directory servers go with it too.
      const removed = subtree.map((d) => d.id);
      await tx.deleteFrom('ldap_links').where('domain_id', 'in', removed).execute();
      await tx.deleteFrom('ldap_configurations').where('domain_id', 'in', removed).execute();
      await logEvent(ctx, tx, {
        type: 'DOMAIN.DELETE',
        description: `deleted domain ${domain.name}`,
        resourceType: 'Domain',
        resourceId: domain.uuid,
      });
    });
    return success();
  },
});

export const domainCommands = [createDomain, listDomains, listDomainChildren, updateDomain, deleteDomain];
