/** Registered user data: named, base64 cloud-init payloads that deploys can refer to by id. */

import type { CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import { internalError, invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { displayPath } from '../iam/domains.ts';
import { findOwned, listOwned } from '../iam/owned.ts';
import { ownerFor, projectOwner } from '../projects/access.ts';
import { defineCommand, success } from '../registry/command.ts';
import { paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { defineSetting } from '../settings/settings.ts';

export const USERDATA_MAX_LENGTH = defineSetting({
  name: 'vm.userdata.max.length',
  category: 'Advanced',
  type: 'Integer',
  defaultValue: 32768,
  min: 1,
  max: 1048576,
  description: 'Largest user data, in bytes after base64 decoding, that a VM may be given.',
});

/** Checks that user data is base64 within the size limit; returns it normalised. */
export function checkUserData(ctx: Pick<CallContext, 'app'>, userdata: string): string {
  const text = userdata.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1)
    throw invalidParameter('User data must be base64 encoded');
  const max = ctx.app.settings.get(USERDATA_MAX_LENGTH);
  if (Buffer.from(text, 'base64').length > max)
    throw invalidParameter(`User data is too long: the limit is ${max} bytes`);
  return text;
}

export const registerUserData = defineCommand({
  name: 'registerUserData',
  description:
    'Stores a named user data payload that deployVirtualMachine can use by id; the name must be new in the account.',
  params: {
    name: p.string({ required: true, description: 'Name of the user data, unique in the owning account.' }),
    userdata: p.string({
      required: true,
      length: 1048576,
      description:
        'The payload, base64 encoded; its decoded size is limited by vm.userdata.max.length (32768 bytes by default).',
    }),
    params: p.string({
      length: 1024,
      description: 'Comma-separated names of variables the payload uses; stored and shown as given.',
    }),
    account: p.string({
      description:
        "Name of the account that will own the user data (admins and domain admins); defaults to the caller's.",
    }),
    domainid: p.uuid({
      description: "UUID of the domain of the account given with account; defaults to the caller's domain.",
    }),
    projectid: p.uuid({
      description:
        'Project to own the user data (you must be a member, it must be Active); not with account.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const owner = await ownerFor(ctx, params);
    const data = checkUserData(ctx, params.userdata);
    await app.store.db.transaction().execute(async (tx) => {
      const clash = await tx
        .selectFrom('user_data')
        .select('id')
        .where('account_id', '=', owner.account.id)
        .where('name', '=', params.name)
        .executeTakeFirst();
      if (clash)
        throw invalidParameter(
          `User data with name ${params.name} already exists for account ${owner.account.name}`,
        );
      await insertId(app.store, tx, 'user_data', {
        uuid: app.ids.uuid(),
        name: params.name,
        account_id: owner.account.id,
        domain_id: owner.domain.id,
        user_data: data,
        params: params.params ?? null,
        created: app.clock.now(),
      });
      await logEvent(ctx, tx, {
        type: 'REGISTER.USER.DATA',
        description: `registered user data ${params.name}`,
      });
    });
    return success();
  },
});

export const listUserData = defineCommand({
  name: 'listUserData',
  description: 'Lists the registered user data the caller may see, including the payloads.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the user data with this UUID.' }),
    name: p.string({ description: 'Only user data with exactly this name.' }),
    account: p.string({
      description:
        "Only user data of this account (with domainid, or in the caller's domain); ignored for users.",
    }),
    domainid: p.uuid({
      description: 'Only user data in this domain (and below with isrecursive); ignored for users.',
    }),
    isrecursive: p.boolean({ description: 'With domainid, also include user data of subdomains.' }),
    listall: p.boolean({
      description: 'For admins and domain admins: include user data of every account they may see.',
    }),
    projectid: p.projectScope({
      description:
        "Only this project's user data (you must be a member or administer it); -1: those of every project you may see.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db
      .selectFrom('user_data')
      .innerJoin('accounts', 'accounts.id', 'user_data.account_id')
      .innerJoin('domains', 'domains.id', 'user_data.domain_id');
    if (params.id) q = q.where('user_data.uuid', '=', params.id);
    if (params.name) q = q.where('user_data.name', '=', params.name);
    if (params.keyword)
      q = q.where(
        likeEscaped(
          'user_data.name',
          `%${escapeLike(params.keyword)}%`,
          app.store.dialect === 'postgres' ? 'ilike' : 'like',
        ),
      );
    return listOwned(ctx, params, q, {
      owner: { account: 'user_data.account_id', domain: 'user_data.domain_id' },
      rows: (scoped, page) =>
        paginate(
          scoped
            .select([
              'user_data.uuid',
              'user_data.name',
              'user_data.user_data',
              'user_data.params',
              'accounts.uuid as account_uuid',
              'accounts.name as account_name',
              'domains.uuid as domain_uuid',
              'domains.name as domain_name',
              'domains.path as domain_path',
            ])
            .orderBy('user_data.id'),
          page,
        ).execute(),
      present: async (rows) =>
        rows.map((r) => ({
          id: r.uuid,
          name: r.name,
          userdata: r.user_data,
          params: r.params ?? undefined,
          accountid: r.account_uuid,
          account: r.account_name,
          domainid: r.domain_uuid,
          domain: r.domain_name,
          domainpath: displayPath(r.domain_path),
        })),
    });
  },
});

export const deleteUserData = defineCommand({
  name: 'deleteUserData',
  description:
    'Deletes a registered user data by id; refused while VMs deployed with it exist (until they are expunged).',
  params: {
    id: p.uuid({ required: true, description: 'UUID of the user data to delete.' }),
    account: p.string({
      description: 'Accepted for compatibility; Nimbostack ignores it (the id is enough).',
    }),
    domainid: p.uuid({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
    projectid: p.uuid({
      description:
        "The project the user data belongs to: you must be its member, and it must be the project's.",
    }),
  },
  async handler(ctx, params) {
    const db = ctx.app.store.db;
    // Naming a project is naming its account as the owner (upstream's finalizeOwner).
    const project = await projectOwner(ctx, { projectid: params.projectid }, 'find');
    const row = await findOwned(ctx, 'user_data', params.id, {
      noun: 'user data',
      live: (r) => !project || r.account_id === project.id,
    });
    // As upstream: refused (530) while a VM not yet expunged was deployed with it.
    const used = await db
      .selectFrom('vms')
      .select('id')
      .where('user_data_id', '=', row.id)
      .where('removed', 'is', null)
      .executeTakeFirst();
    if (used)
      throw internalError(`Userdata ${row.name} cannot be removed as it is being used by some instances`);
    await db.deleteFrom('user_data').where('id', '=', row.id).execute();
    return success();
  },
});

export const userDataCommands = [registerUserData, listUserData, deleteUserData];
