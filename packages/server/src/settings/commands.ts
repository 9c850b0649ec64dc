/** listConfigurations and updateConfiguration, with values at global or a narrower scope. */
import type { CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { forgetCachedIdentity } from '../iam/caller.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { groupOf, listConfigurationGroups } from './groups.ts';
import {
  parseSettingValue,
  type SettingDef,
  type SettingScope,
  settingDefinition,
  settingDefinitions,
} from './settings.ts';

/** Finds the integer key of a scope object (zone, cluster...) from its uuid; capabilities register these. */
type ScopeResolver = (ctx: CallContext, uuid: string) => Promise<number | undefined>;
const resolvers = new Map<SettingScope, ScopeResolver>();

export function registerSettingScope(scope: SettingScope, resolver: ScopeResolver): void {
  resolvers.set(scope, resolver);
}

registerSettingScope(
  'domain',
  async (ctx, uuid) =>
    (await ctx.app.store.db.selectFrom('domains').select('id').where('uuid', '=', uuid).executeTakeFirst())
      ?.id,
);
registerSettingScope(
  'account',
  async (ctx, uuid) =>
    (await ctx.app.store.db.selectFrom('accounts').select('id').where('uuid', '=', uuid).executeTakeFirst())
      ?.id,
);

const SCOPE_PARAMS: [string, SettingScope][] = [
  ['zoneid', 'zone'],
  ['clusterid', 'cluster'],
  ['storageid', 'storagepool'],
  ['imagestoreuuid', 'imagestore'],
  ['domainid', 'domain'],
  ['accountid', 'account'],
];

const scopeParams = {
  zoneid: p.uuid({
    description: 'Work on the value for this zone; at most one scope parameter may be given.',
  }),
  clusterid: p.uuid({
    description: 'Work on the value for this cluster; at most one scope parameter may be given.',
  }),
  storageid: p.uuid({
    description: 'Work on the value for this primary storage pool; at most one scope parameter may be given.',
  }),
  imagestoreuuid: p.uuid({
    description: 'Work on the value for this image store; at most one scope parameter may be given.',
  }),
  domainid: p.uuid({
    description: 'Work on the value for this domain; at most one scope parameter may be given.',
  }),
  accountid: p.uuid({
    description: 'Work on the value for this account; at most one scope parameter may be given.',
  }),
};

async function requestedScope(
  ctx: CallContext,
  params: Record<string, unknown>,
): Promise<{ scope: SettingScope; id: number; uuid: string } | undefined> {
  const given = SCOPE_PARAMS.filter(([param]) => params[param] !== undefined);
  if (given.length > 1)
    throw invalidParameter(
      'Only one scope (zoneid, clusterid, storageid, imagestoreuuid, domainid or accountid) may be given',
    );
  if (given.length === 0) return undefined;
  const [param, scope] = given[0];
  const uuid = params[param] as string;
  const resolver = resolvers.get(scope);
  const id = resolver ? await resolver(ctx, uuid) : undefined;
  if (id === undefined) throw invalidParameter(`Unable to find ${scope} by id ${uuid}`);
  return { scope, id, uuid };
}

const SECRET_MASK = '********';

function present(
  ctx: CallContext,
  def: SettingDef,
  scope?: { scope: SettingScope; id: number; uuid: string },
): object {
  const { settings } = ctx.app;
  const raw = scope
    ? (settings.rawAt(def.name, scope.scope, scope.id) ?? settings.rawGlobal(def.name))
    : settings.rawGlobal(def.name);
  return {
    category: def.category,
    name: def.name,
    // A secret is never shown, not even sealed: only whether one is set.
    value: def.secret ? (raw ? SECRET_MASK : '') : (raw ?? String(def.defaultValue)),
    defaultvalue: String(def.defaultValue),
    description: def.description,
    scope: scope?.scope ?? 'global',
    ...(scope ? { id: scope.uuid } : {}),
    isdynamic: def.isDynamic ?? true,
    type: def.type,
    component: 'ManagementServer',
    displaytext: def.name,
    ...groupOf(def.name),
    ...(def.options ? { options: def.options.join(',') } : {}),
  };
}

export const listConfigurations = defineCommand({
  name: 'listConfigurations',
  description:
    "Lists Nimbostack's settings with their current values, globally or as they apply to one zone, cluster, pool, image store, domain or account.",
  params: {
    ...listParams,
    ...scopeParams,
    name: p.string({ description: 'Only settings whose name contains this text.' }),
    category: p.string({
      description: 'Only settings of this category, such as Advanced or Storage (case-insensitive).',
    }),
    group: p.string({
      description: 'Only settings of this group (listConfigurationGroups), case-insensitive.',
    }),
    subgroup: p.string({ description: 'Only settings of this subgroup of the group, case-insensitive.' }),
    parent: p.string({ description: 'Accepted for compatibility; Nimbostack ignores it.' }),
  },
  async handler(ctx, params) {
    const scope = await requestedScope(ctx, params);
    let defs = settingDefinitions();
    if (scope) defs = defs.filter((d) => d.scopes?.includes(scope.scope));
    if (params.name) defs = defs.filter((d) => d.name.includes(params.name!));
    if (params.category)
      defs = defs.filter((d) => d.category.toLowerCase() === params.category!.toLowerCase());
    for (const key of ['group', 'subgroup'] as const) {
      const wanted = params[key]?.toLowerCase();
      if (wanted) defs = defs.filter((d) => groupOf(d.name)[key].toLowerCase() === wanted);
    }
    if (params.keyword) {
      const k = params.keyword.toLowerCase();
      defs = defs.filter((d) => d.name.includes(k) || d.description.toLowerCase().includes(k));
    }
    const page = pageOf(ctx.app, params);
    const slice = defs.slice(page.offset, page.limit === undefined ? undefined : page.offset + page.limit);
    return listResult(
      slice.map((d) => present(ctx, d, scope)),
      defs.length,
    );
  },
});

export const updateConfiguration = defineCommand({
  name: 'updateConfiguration',
  description:
    'Sets a setting globally or for one scope; an empty value resets a global setting to its default or removes a scoped override. Takes effect at once.',
  params: {
    ...scopeParams,
    name: p.string({
      required: true,
      description: 'Exact name of the setting, such as vm.userdata.max.length.',
    }),
    value: p.string({
      length: 4096,
      description: "New value, checked against the setting's type and bounds; empty or omitted resets it.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const def = settingDefinition(params.name);
    if (!def) throw invalidParameter(`Configuration ${params.name} does not exist`);
    const scope = await requestedScope(ctx, params);
    if (scope && !def.scopes?.includes(scope.scope)) {
      throw invalidParameter(`Configuration ${def.name} cannot be set at ${scope.scope} scope`);
    }
    // An empty value resets a global setting to its default, or removes a scoped override.
    const value =
      params.value === undefined || params.value === '' ? null : String(parseSettingValue(def, params.value));
    const stored = value !== null && def.secret ? app.secrets.encrypt(value) : value;
    await app.settings.set(def.name, stored, app.clock.now(), scope);
    const shown = value === null ? 'its default' : def.secret ? 'a new secret value' : value;
    await app.store.db.transaction().execute((tx) =>
      logEvent(ctx, tx, {
        type: 'CONFIGURATION.VALUE.EDIT',
        description: `Set ${def.name} to ${shown}${scope ? ` for ${scope.scope} ${scope.uuid}` : ''}`,
      }),
    );
    forgetCachedIdentity();
    return present(ctx, def, scope);
  },
});

export const settingCommands = [listConfigurations, updateConfiguration, listConfigurationGroups];
