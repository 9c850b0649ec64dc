/** Guest OS types and categories (seeded by migration 0002), which templates and ISOs name. */
import { formatDate } from '../clock.ts';
import type { App, CallContext } from '../context.ts';
import { insertId } from '../db/connection.ts';
import type { OsTypeRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { likeOp } from './common.ts';

export const listOsTypes = defineCommand({
  name: 'listOsTypes',
  description:
    'Lists the guest operating system types templates and VMs can name, with their category; keyword matches their description.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the OS type with this ID.' }),
    oscategoryid: p.uuid({ description: 'Only OS types of this category.' }),
    description: p.string({
      description: "Only the OS type with exactly this description, e.g. 'Ubuntu 22.04 LTS'.",
    }),
    fordisplay: p.boolean({
      description: 'Only OS types shown (true) or hidden (false) in selection lists.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('os_types as t').innerJoin('os_categories as c', 'c.id', 't.category_id');
    if (params.id) q = q.where('t.uuid', '=', params.id);
    if (params.oscategoryid) {
      const category = await app.store.db
        .selectFrom('os_categories')
        .select('id')
        .where('uuid', '=', params.oscategoryid)
        .executeTakeFirst();
      if (!category) throw invalidParameter(`Unable to find OS category by id ${params.oscategoryid}`);
      q = q.where('t.category_id', '=', category.id);
    }
    if (params.description) q = q.where('t.description', '=', params.description);
    if (params.fordisplay !== undefined) q = q.where('t.for_display', '=', params.fordisplay ? 1 : 0);
    if (params.keyword)
      q = q.where(likeEscaped('t.description', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(
      q
        .select([
          't.uuid',
          't.description',
          't.display_name',
          't.is_user_defined',
          't.for_display',
          'c.uuid as category_uuid',
          'c.name as category_name',
        ])
        .orderBy('t.id'),
      pageOf(app, params),
    ).execute();
    return listResult(
      rows.map((t) => ({
        id: t.uuid,
        name: t.display_name,
        description: t.description,
        oscategoryid: t.category_uuid,
        oscategoryname: t.category_name,
        isuserdefined: t.is_user_defined === 1,
        fordisplay: t.for_display === 1,
      })),
      Number(count),
    );
  },
});

export const listOsCategories = defineCommand({
  name: 'listOsCategories',
  description:
    'Lists the categories guest OS types are grouped in (e.g. Ubuntu, Windows), in display order; keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the category with this ID.' }),
    name: p.string({ description: 'Only the category with exactly this name.' }),
    isfeatured: p.boolean({ description: 'Only featured (true) or only other (false) categories.' }),
    showicon: p.boolean({
      description: 'Accepted for compatibility; Nimbostack has no resource icons and ignores it.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('os_categories');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.isfeatured !== undefined) q = q.where('is_featured', '=', params.isfeatured ? 1 : 0);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    const { count } = await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
    const rows = await paginate(q.selectAll().orderBy('sort_key'), pageOf(app, params)).execute();
    return listResult(
      rows.map((c) => ({
        id: c.uuid,
        name: c.name,
        isfeatured: c.is_featured === 1,
        created: formatDate(c.created),
      })),
      Number(count),
    );
  },
});

/** Checks that can refuse removing an OS type (templates or VMs that name it). */
type OsTypeUsageCheck = (app: App, osType: OsTypeRow) => Promise<string | undefined>;
const usageChecks: OsTypeUsageCheck[] = [];

export function onGuestOsRemove(check: OsTypeUsageCheck): void {
  usageChecks.push(check);
}

async function findOsType(ctx: CallContext, uuid: string): Promise<OsTypeRow> {
  const row = await ctx.app.store.db
    .selectFrom('os_types')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find guest OS by id ${uuid}`);
  return row;
}

async function findCategory(
  ctx: CallContext,
  uuid: string,
): Promise<{ id: number; uuid: string; name: string }> {
  const row = await ctx.app.store.db
    .selectFrom('os_categories')
    .select(['id', 'uuid', 'name'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find OS category by id ${uuid}`);
  return row;
}

async function presentOsType(ctx: CallContext, uuid: string): Promise<object> {
  const t = await findOsType(ctx, uuid);
  const c = await ctx.app.store.db
    .selectFrom('os_categories')
    .select(['uuid', 'name'])
    .where('id', '=', t.category_id)
    .executeTakeFirstOrThrow();
  return {
    id: t.uuid,
    name: t.display_name,
    description: t.description,
    oscategoryid: c.uuid,
    oscategoryname: c.name,
    isuserdefined: t.is_user_defined === 1,
    fordisplay: t.for_display === 1,
  };
}

async function checkDescriptionFree(ctx: CallContext, description: string, except?: number): Promise<void> {
  let q = ctx.app.store.db.selectFrom('os_types').select('id').where('description', '=', description);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst()) throw invalidParameter(`A guest OS named ${description} already exists`);
}

export const addGuestOs = defineCommand({
  name: 'addGuestOs',
  description:
    "Adds an operator-defined guest OS type to a category, for templates to name; '32-bit' in its name marks it 32-bit, otherwise it is 64-bit. Asynchronous.",
  params: {
    oscategoryid: p.uuid({ required: true, description: 'Category of the new OS type.' }),
    osdisplayname: p.string({
      required: true,
      description: 'Description of the OS type, unique among OS types; must not be blank.',
    }),
    name: p.string({ description: 'Short display name; defaults to osdisplayname.' }),
    fordisplay: p.boolean({ description: 'Whether it appears in selection lists. Defaults to true.' }),
  },
  event: { type: 'GUEST.OS.ADD', description: (params) => `adding guest OS ${params.osdisplayname}` },
  async create(ctx, params) {
    const { app } = ctx;
    const category = await findCategory(ctx, params.oscategoryid);
    const description = params.osdisplayname.trim();
    if (description === '') throw invalidParameter('osdisplayname must not be empty');
    await checkDescriptionFree(ctx, description);
    const uuid = app.ids.uuid();
    await insertId(app.store, app.store.db, 'os_types', {
      uuid,
      category_id: category.id,
      description,
      display_name: params.name?.trim() || description,
      bits: /32-bit/.test(description) ? 32 : 64,
      is_user_defined: 1,
      for_display: params.fordisplay === false ? 0 : 1,
      created: app.clock.now(),
    });
    return { type: 'GuestOs', id: uuid };
  },
  handler: (ctx, _params, created) => presentOsType(ctx, created?.id as string),
});

/** Only operator-defined OS types change: the seeded ones are the shared vocabulary of templates. */
async function userDefined(ctx: CallContext, uuid: string): Promise<OsTypeRow> {
  const t = await findOsType(ctx, uuid);
  if (t.is_user_defined !== 1)
    throw invalidParameter(`Guest OS ${t.description} is system-defined and cannot be changed`);
  return t;
}

export const updateGuestOs = defineCommand({
  name: 'updateGuestOs',
  description:
    "Changes an operator-defined guest OS type's description, category or visibility; the seeded OS types cannot be changed. Asynchronous.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the operator-defined OS type.' }),
    osdisplayname: p.string({
      description:
        'New description, unique among OS types. The name given at addGuestOs stays; a name that defaulted to the description follows it.',
    }),
    oscategoryid: p.uuid({ description: 'New category.' }),
    fordisplay: p.boolean({ description: 'Whether it appears in selection lists.' }),
  },
  event: { type: 'GUEST.OS.UPDATE', description: (params) => `updating guest OS ${params.id}` },
  async target(ctx, params) {
    await userDefined(ctx, params.id);
    if (params.oscategoryid) await findCategory(ctx, params.oscategoryid);
    return { type: 'GuestOs', id: params.id };
  },
  async handler(ctx, params) {
    const t = await userDefined(ctx, params.id);
    const changes: Partial<OsTypeRow> = {};
    if (params.osdisplayname !== undefined) {
      const description = params.osdisplayname.trim();
      if (description === '') throw invalidParameter('osdisplayname must not be empty');
      await checkDescriptionFree(ctx, description, t.id);
      changes.description = description;
      // As upstream, osdisplayname is not the name: keep a name given at addGuestOs.
      if (t.display_name === t.description) changes.display_name = description;
    }
    if (params.oscategoryid) changes.category_id = (await findCategory(ctx, params.oscategoryid)).id;
    if (params.fordisplay !== undefined) changes.for_display = params.fordisplay ? 1 : 0;
    if (Object.keys(changes).length > 0)
      await ctx.app.store.db.updateTable('os_types').set(changes).where('id', '=', t.id).execute();
    return presentOsType(ctx, t.uuid);
  },
});

export const removeGuestOs = defineCommand({
  name: 'removeGuestOs',
  description:
    'Removes an operator-defined guest OS type that no template or VM uses; the seeded OS types cannot be removed. Asynchronous.',
  params: { id: p.uuid({ required: true, description: 'ID of the operator-defined OS type.' }) },
  event: { type: 'GUEST.OS.REMOVE', description: (params) => `removing guest OS ${params.id}` },
  async target(ctx, params) {
    await userDefined(ctx, params.id);
    return { type: 'GuestOs', id: params.id };
  },
  async handler(ctx, params) {
    const t = await userDefined(ctx, params.id);
    for (const check of usageChecks) {
      const reason = await check(ctx.app, t);
      if (reason) throw resourceInUse(`Cannot remove guest OS ${t.description}: ${reason}`);
    }
    await ctx.app.store.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('os_types').where('id', '=', t.id).execute();
      await logEvent(ctx, tx, {
        type: 'GUEST.OS.REMOVE',
        description: `removed guest OS ${t.description}`,
        resourceType: 'GuestOs',
        resourceId: t.uuid,
      });
    });
    return success();
  },
});

export const osTypeCommands = [listOsTypes, listOsCategories, addGuestOs, updateGuestOs, removeGuestOs];
