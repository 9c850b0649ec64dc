/** Guest OS types and categories (seeded by migration 0002), which templates and ISOs name. */
import { formatDate } from '../clock.ts';
import { invalidParameter } from '../errors.ts';
import { escapeLike } from '../iam/access.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { likeOp } from './common.ts';

export const listOsTypes = defineCommand({
  name: 'listOsTypes',
  params: {
    ...listParams,
    id: p.uuid(),
    oscategoryid: p.uuid(),
    description: p.string(),
    fordisplay: p.boolean(),
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
    if (params.keyword) q = q.where('t.description', likeOp(ctx), `%${escapeLike(params.keyword)}%`);
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
  params: {
    ...listParams,
    id: p.uuid(),
    name: p.string(),
    isfeatured: p.boolean(),
    showicon: p.boolean(),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db.selectFrom('os_categories');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.isfeatured !== undefined) q = q.where('is_featured', '=', params.isfeatured ? 1 : 0);
    if (params.keyword) q = q.where('name', likeOp(ctx), `%${escapeLike(params.keyword)}%`);
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

export const osTypeCommands = [listOsTypes, listOsCategories];
