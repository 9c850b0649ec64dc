/**
 * GUI themes as CloudStack 4.19+ has them (upstream's GuiThemeServiceImpl): a provider brands the
 * portal — title, logos, colours, style sheet — for everyone, for the host names it is reached by
 * (common names, `*` as wildcard), for domains (optionally with their subdomains) or for accounts.
 *
 * Which theme a browser shows is the UI's choice, as upstream's: the account's, else the domain's,
 * else the common name's, else the default theme (the one theme with no common name, domain or
 * account). listGuiThemes answers those questions one at a time, newest theme first; before sign-in
 * (no credentials at all) it answers only by common name, with public themes, or the default.
 */
import type { Kysely } from 'kysely';
import { formatDate } from '../clock.ts';
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { Database } from '../db/schema.ts';
import { internalError, invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { type ListResult, listResult } from '../registry/command.ts';
import { type Page, paginate } from '../registry/paging.ts';
import { checkJsonConfiguration } from './json-config.ts';
import type { GuiThemeRow, GuiThemeScopeTable } from './tables.ts';

type ScopeType = GuiThemeScopeTable['type'];

/** A host name, or one with `*` standing for any run of characters (upstream: *acme.com). */
const COMMON_NAME = /^[a-zA-Z0-9*][a-zA-Z0-9.*-]{0,253}$/;

export interface ThemeInput {
  name?: string;
  description?: string;
  css?: string;
  jsonconfiguration?: string;
  commonnames?: string;
  domainids?: string;
  accountids?: string;
  ispublic?: boolean;
  recursivedomains?: boolean;
}

/** A comma-separated parameter as a list: spaces dropped, as upstream's deleteWhitespace. */
function items(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  return raw
    .replace(/\s+/g, '')
    .split(',')
    .filter((v) => v !== '');
}

interface Scopes {
  commonName: string[];
  domain: string[];
  account: string[];
}

async function checkScopes(ctx: CallContext, s: Scopes, self?: number): Promise<void> {
  const db = ctx.app.store.db;
  for (const cn of s.commonName)
    if (!COMMON_NAME.test(cn))
      throw invalidParameter(
        `Invalid common name ${cn}: use a host name, with * as a wildcard (*.example.com)`,
      );
  if (s.commonName.length + s.domain.length + s.account.length === 0) {
    // Upstream allows one default theme: the one with no common name, domain or account.
    let q = defaultThemes(db);
    if (self !== undefined) q = q.where('gui_themes.id', '!=', self);
    const other = await q.select(['gui_themes.uuid', 'gui_themes.name']).executeTakeFirst();
    if (other)
      throw internalError(
        `Only one default GUI theme is allowed. Remove the current default theme ${other.name} (${other.uuid}) and try again.`,
      );
  }
  for (const [table, noun, ids] of [
    ['accounts', 'Account', s.account],
    ['domains', 'Domain', s.domain],
  ] as const) {
    for (const id of ids) {
      const found = await db.selectFrom(table).select('id').where('uuid', '=', id).executeTakeFirst();
      if (!found)
        throw internalError(`The ${noun} ID ${id} does not exist. Verify the informed IDs and try again.`);
    }
  }
}

function defaultThemes(db: Kysely<Database> | Tx) {
  return db
    .selectFrom('gui_themes')
    .where('gui_themes.removed', 'is', null)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('gui_theme_scopes')
            .select('gui_theme_scopes.id')
            .whereRef('gui_theme_scopes.theme_id', '=', 'gui_themes.id'),
        ),
      ),
    );
}

async function writeScopes(tx: Tx, themeId: number, s: Scopes): Promise<void> {
  await tx.deleteFrom('gui_theme_scopes').where('theme_id', '=', themeId).execute();
  const rows = (Object.entries(s) as [ScopeType, string[]][]).flatMap(([type, values]) =>
    [...new Set(values)].map((value) => ({ theme_id: themeId, type, value })),
  );
  if (rows.length) await tx.insertInto('gui_theme_scopes').values(rows).execute();
}

const BOTH_BLANK = 'Either the `css` or `jsonConfiguration` parameter must be informed.';

export async function createTheme(ctx: CallContext, input: ThemeInput & { name: string }): Promise<string> {
  const { app } = ctx;
  if (!input.css?.trim() && !input.jsonconfiguration?.trim()) throw internalError(BOTH_BLANK);
  const scopes: Scopes = {
    commonName: items(input.commonnames) ?? [],
    domain: items(input.domainids) ?? [],
    account: items(input.accountids) ?? [],
  };
  await checkScopes(ctx, scopes);
  const json = checkJsonConfiguration(input.jsonconfiguration);
  // A theme for domains or accounts is never public (upstream: shouldSetGuiThemeToPrivate).
  const isPublic = scopes.domain.length || scopes.account.length ? false : (input.ispublic ?? true);
  const uuid = app.ids.uuid();
  await app.store.db.transaction().execute(async (tx) => {
    const id = await insertId(app.store, tx, 'gui_themes', {
      uuid,
      name: input.name,
      description: input.description?.trim() ? input.description : null,
      css: input.css?.trim() ? input.css : null,
      json_configuration: json,
      is_public: isPublic ? 1 : 0,
      recursive_domains: input.recursivedomains ? 1 : 0,
      created: app.clock.now(),
      removed: null,
    });
    await writeScopes(tx, id, scopes);
    await logEvent(ctx, tx, { type: 'GUI.THEME.CREATE', description: `created GUI theme ${input.name}` });
  });
  return uuid;
}

async function liveTheme(app: App, uuid: string): Promise<GuiThemeRow> {
  const theme = await app.store.db
    .selectFrom('gui_themes')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .executeTakeFirst();
  if (!theme) throw invalidParameter('Unable to find a GUI theme with the specified ID.');
  return theme;
}

async function scopesOf(app: App, themeIds: number[]): Promise<Map<number, Scopes>> {
  const out = new Map<number, Scopes>(
    themeIds.map((id) => [id, { commonName: [], domain: [], account: [] }]),
  );
  if (themeIds.length === 0) return out;
  const rows = await app.store.db
    .selectFrom('gui_theme_scopes')
    .select(['theme_id', 'type', 'value'])
    .where('theme_id', 'in', themeIds)
    .orderBy('id')
    .execute();
  for (const r of rows) out.get(r.theme_id)?.[r.type].push(r.value);
  return out;
}

/** Applies the given fields; a scope list given (even empty) replaces the stored one. */
export async function updateTheme(ctx: CallContext, uuid: string, input: ThemeInput): Promise<void> {
  const { app } = ctx;
  const theme = await liveTheme(app, uuid);
  const old = (await scopesOf(app, [theme.id])).get(theme.id)!;
  const scopes: Scopes = {
    commonName: items(input.commonnames) ?? old.commonName,
    domain: items(input.domainids) ?? old.domain,
    account: items(input.accountids) ?? old.account,
  };
  if (input.name !== undefined && input.name.trim() === '')
    throw invalidParameter('A GUI theme needs a name: name cannot be blank');
  await checkScopes(ctx, scopes, theme.id);
  const json =
    input.jsonconfiguration === undefined
      ? theme.json_configuration
      : checkJsonConfiguration(input.jsonconfiguration);
  const css = input.css === undefined ? theme.css : input.css.trim() ? input.css : null;
  if (!css && !json) throw internalError(BOTH_BLANK);
  const isPublic =
    scopes.domain.length || scopes.account.length
      ? 0
      : input.ispublic === undefined
        ? theme.is_public
        : Number(input.ispublic);
  await app.store.db.transaction().execute(async (tx) => {
    await tx
      .updateTable('gui_themes')
      .set({
        name: input.name ?? theme.name,
        description: input.description === undefined ? theme.description : input.description.trim() || null,
        css,
        json_configuration: json,
        is_public: isPublic,
        recursive_domains:
          input.recursivedomains === undefined ? theme.recursive_domains : Number(input.recursivedomains),
      })
      .where('id', '=', theme.id)
      .execute();
    await writeScopes(tx, theme.id, scopes);
    await logEvent(ctx, tx, {
      type: 'GUI.THEME.UPDATE',
      description: `updated GUI theme ${input.name ?? theme.name}`,
    });
  });
}

export async function removeTheme(ctx: CallContext, uuid: string): Promise<void> {
  const theme = await liveTheme(ctx.app, uuid);
  await ctx.app.store.db.transaction().execute(async (tx) => {
    await tx
      .updateTable('gui_themes')
      .set({ removed: ctx.app.clock.now() })
      .where('id', '=', theme.id)
      .execute();
    await logEvent(ctx, tx, { type: 'GUI.THEME.REMOVE', description: `removed GUI theme ${theme.name}` });
  });
}

export interface ThemeFilter {
  id?: string;
  name?: string;
  keyword?: string;
  commonname?: string;
  domainid?: string;
  accountid?: string;
  listall?: boolean;
  showremoved?: boolean;
  showpublic?: boolean;
  listonlydefaulttheme?: boolean;
}

/** The UUIDs of a domain and of its ancestors, from its path (/a/b/ has /, /a/ and /a/b/). */
async function domainAndAncestors(app: App, uuid: string): Promise<{ self: string; ancestors: string[] }> {
  const db = app.store.db;
  const d = await db
    .selectFrom('domains')
    .select(['uuid', 'path'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  if (!d) return { self: uuid, ancestors: [] };
  const parts = d.path.split('/').filter(Boolean);
  const paths = parts.map((_, i) => `/${parts.slice(0, i).join('/')}${i ? '/' : ''}`);
  const rows = paths.length
    ? await db.selectFrom('domains').select('uuid').where('path', 'in', paths).execute()
    : [];
  return { self: d.uuid, ancestors: rows.map((r) => r.uuid) };
}

type ThemeQuery = ReturnType<typeof baseQuery>;

function baseQuery(app: App) {
  return app.store.db.selectFrom('gui_themes');
}

function hasScope(q: ThemeQuery, type: ScopeType, values: string[]): ThemeQuery {
  return q.where((eb) =>
    eb.exists(
      eb
        .selectFrom('gui_theme_scopes')
        .select('gui_theme_scopes.id')
        .whereRef('gui_theme_scopes.theme_id', '=', 'gui_themes.id')
        .where('gui_theme_scopes.type', '=', type)
        .where('gui_theme_scopes.value', 'in', values.length ? values : ['']),
    ),
  );
}

/** Themes for a domain: named for it, or for an ancestor with recursivedomains. */
async function forDomain(app: App, q: ThemeQuery, domainUuid: string): Promise<ThemeQuery> {
  const { self, ancestors } = await domainAndAncestors(app, domainUuid);
  return q.where((eb) =>
    eb.or([
      eb.exists(
        eb
          .selectFrom('gui_theme_scopes')
          .select('gui_theme_scopes.id')
          .whereRef('gui_theme_scopes.theme_id', '=', 'gui_themes.id')
          .where('gui_theme_scopes.type', '=', 'domain')
          .where('gui_theme_scopes.value', '=', self),
      ),
      eb.and([
        eb('gui_themes.recursive_domains', '=', 1),
        eb.exists(
          eb
            .selectFrom('gui_theme_scopes')
            .select('gui_theme_scopes.id')
            .whereRef('gui_theme_scopes.theme_id', '=', 'gui_themes.id')
            .where('gui_theme_scopes.type', '=', 'domain')
            .where('gui_theme_scopes.value', 'in', ancestors.length ? ancestors : ['']),
        ),
      ]),
    ]),
  );
}

/** Themes whose common names match the host name; `*` in a stored name matches anything. */
function forCommonName(q: ThemeQuery, host: string): ThemeQuery {
  return q.where((eb) =>
    eb.exists(
      eb
        .selectFrom('gui_theme_scopes')
        .select('gui_theme_scopes.id')
        .whereRef('gui_theme_scopes.theme_id', '=', 'gui_themes.id')
        .where('gui_theme_scopes.type', '=', 'commonName')
        // Stored names hold only letters, digits, dots, dashes and *, so only * is a pattern.
        .where((sb) =>
          sb(
            sb.val(host.toLowerCase()),
            'like',
            sb.fn<string>('replace', [sb.fn('lower', ['gui_theme_scopes.value']), sb.val('*'), sb.val('%')]),
          ),
        ),
    ),
  );
}

/**
 * What a signed-in user other than the root admin may see: themes for everyone (default, common
 * names), and those for their own account and domain (or an ancestor, with recursivedomains). Other
 * accounts' and domains' themes name those accounts and domains, which are not theirs to list.
 */
async function visibleTo(ctx: CallContext, q: ThemeQuery): Promise<ThemeQuery> {
  const { ancestors } = await domainAndAncestors(ctx.app, ctx.caller.domain.uuid);
  const { account, domain } = ctx.caller;
  return q.where((eb) => {
    const scoped = (type: ScopeType, values: string[]) =>
      eb.exists(
        eb
          .selectFrom('gui_theme_scopes')
          .select('gui_theme_scopes.id')
          .whereRef('gui_theme_scopes.theme_id', '=', 'gui_themes.id')
          .where('gui_theme_scopes.type', '=', type)
          .where('gui_theme_scopes.value', 'in', values),
      );
    return eb.or([
      eb.not(
        eb.exists(
          eb
            .selectFrom('gui_theme_scopes')
            .select('gui_theme_scopes.id')
            .whereRef('gui_theme_scopes.theme_id', '=', 'gui_themes.id')
            .where('gui_theme_scopes.type', 'in', ['domain', 'account']),
        ),
      ),
      scoped('account', [account.uuid]),
      scoped('domain', [domain.uuid]),
      eb.and([
        eb('gui_themes.recursive_domains', '=', 1),
        scoped('domain', ancestors.length ? ancestors : ['']),
      ]),
    ]);
  });
}

/**
 * The themes a list call asks for, newest first. Without credentials (ctx.anonymous) only the
 * common name and the default-theme question count; signed in, root admins see every theme and
 * others what visibleTo allows.
 */
export async function listThemes(ctx: CallContext, f: ThemeFilter, page: Page): Promise<ListResult> {
  const { app } = ctx;
  let q = baseQuery(app);
  if (f.listonlydefaulttheme) {
    q = defaultThemes(app.store.db);
  } else if (ctx.anonymous) {
    // Before sign-in only the common name counts (upstream ignores every other parameter), and
    // only public themes answer: a private one is for signed-in users of that host name.
    q = q.where('gui_themes.removed', 'is', null).where('gui_themes.is_public', '=', 1);
    if (f.commonname) q = forCommonName(q, f.commonname);
  } else {
    if (!(f.showremoved && !f.listall)) q = q.where('gui_themes.removed', 'is', null);
    if (f.id) q = q.where('gui_themes.uuid', '=', f.id);
    if (f.name) q = q.where('gui_themes.name', '=', f.name);
    if (f.keyword) q = q.where(likeEscaped('gui_themes.name', `%${escapeLike(f.keyword)}%`));
    if (f.showpublic !== undefined && !f.listall)
      q = q.where('gui_themes.is_public', '=', f.showpublic ? 1 : 0);
    if (f.commonname) q = forCommonName(q, f.commonname);
    if (f.accountid) q = hasScope(q, 'account', [f.accountid]);
    if (f.domainid) q = await forDomain(app, q, f.domainid);
    if (ctx.caller.roleKind !== 'admin') q = await visibleTo(ctx, q);
  }
  const { n } = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  const rows = await paginate(
    q.selectAll('gui_themes').orderBy('gui_themes.created', 'desc').orderBy('gui_themes.id', 'desc'),
    page,
  ).execute();
  const scopes = await scopesOf(
    app,
    rows.map((r) => r.id),
  );
  return listResult(
    rows.map((r) => present(r, scopes.get(r.id)!)),
    Number(n),
  );
}

export async function presentTheme(app: App, uuid: string): Promise<object> {
  const row = await app.store.db
    .selectFrom('gui_themes')
    .selectAll()
    .where('uuid', '=', uuid)
    .executeTakeFirstOrThrow();
  return present(row, (await scopesOf(app, [row.id])).get(row.id)!);
}

function present(t: GuiThemeRow, s: Scopes): object {
  const joined = (v: string[]) => (v.length ? v.join(',') : undefined);
  return {
    id: t.uuid,
    name: t.name,
    description: t.description ?? undefined,
    css: t.css ?? undefined,
    jsonconfiguration: t.json_configuration ?? undefined,
    commonnames: joined(s.commonName),
    domainids: joined(s.domain),
    accountids: joined(s.account),
    ispublic: t.is_public === 1,
    recursivedomains: t.recursive_domains === 1,
    created: formatDate(t.created),
    removed: formatDate(t.removed),
  };
}
