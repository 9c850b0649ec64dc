/**
 * One declaration per API command. From it come parameter validation, authorization, the
 * envelope (via the upstream catalog), listApis, the docs and the CLI's completion.
 */
import type { CallContext } from '../context.ts';
import { type CatalogCommand, catalogCommand, type RoleKind } from './catalog.ts';
import type { ParamSpec, ParamsOf } from './params.ts';

/**
 * The rows the entity check (http/entity-refs.ts) read whole for a command's handedToCommand
 * parameters, by parameter name; removed rows included, as the check counts them.
 */
export type Entities = Readonly<Record<string, Readonly<Record<string, unknown>> | undefined>>;

/** What a list command's handler returns: one page of items and the total count. */
export interface ListResult {
  count: number;
  items: object[];
}

export type CommandResult = ListResult | object;

/** The entity an async job acts on: jobs on the same entity run one at a time. */
export interface JobTarget {
  type: string;
  id: string;
  /**
   * Other objects the job changes through this one (the VM a volume is attached to or detached
   * from, the volume of a snapshot): the job also waits for, and holds, each of them, so that a
   * VM's migration and an attach to that VM never overlap (jobs/runner.ts).
   */
  with?: JobTarget[];
}

export interface CommandSpec<S extends Record<string, ParamSpec>> {
  name: string;
  /** What the command does in Nimbostack, in our words (one or two sentences). */
  description: string;
  params: S;
  /** Overrides the catalog's default roles (rarely needed). */
  roles?: RoleKind[];
  /**
   * Also answered without a session or signature, as upstream answers its API authenticators
   * (listOauthProvider, forgotPassword) and listGuiThemes before login. Without credentials the
   * handler runs as the first root administrator (upstream's system account), so it must answer
   * only what anyone may know.
   */
  anonymous?: boolean;
  /**
   * The object name the result is wrapped in, where upstream's response differs from its own
   * annotation (authorizeSecurityGroupIngress is declared as `ingressrule` but answers `securitygroup`).
   */
  objectName?: string;
  /**
   * 'inline' where upstream answers a SuccessResponse although its annotation names an object
   * class (removeGuiTheme): the answer is `{"success": true}` directly under the response name.
   * 'object' where the catalog says SuccessResponse but upstream answers an object
   * (updateNetworkACLList answers the list, as upstream's own response examples show).
   */
  responseShape?: 'inline' | 'object';
  /** Async commands: the entity the job works on, resolved before the job is queued. */
  target?: (
    ctx: CallContext,
    params: ParamsOf<NoInfer<S>>,
  ) => Promise<JobTarget | undefined> | JobTarget | undefined;
  /**
   * Async create commands: creates the entity synchronously (so its id is returned with the jobid),
   * then the job runs the handler with what this returned. `entities`: the rows of its
   * handedToCommand parameters, as the entity check read them.
   */
  create?: (ctx: CallContext, params: ParamsOf<NoInfer<S>>, entities: Entities) => Promise<JobTarget>;
  /** Async commands: the event type and text logged as Scheduled, Started and Completed. */
  event?: { type: string; description: (params: ParamsOf<NoInfer<S>>) => string };
  handler: (ctx: CallContext, params: ParamsOf<NoInfer<S>>, created?: JobTarget) => Promise<CommandResult>;
}

export interface Command<S extends Record<string, ParamSpec> = Record<string, ParamSpec>>
  extends CommandSpec<S> {
  catalog: CatalogCommand;
  isAsync: boolean;
  allowedRoles: RoleKind[];
}

/**
 * Declares a command. Its catalog entry is resolved (and its parameters checked against it) when
 * first needed — the registry does so for every command at start — so `npm run catalog` can read
 * the declared names before the catalog holds them.
 */
export function defineCommand<S extends Record<string, ParamSpec>>(spec: CommandSpec<S>): Command<S> {
  let resolved: Pick<Command<S>, 'catalog' | 'isAsync' | 'allowedRoles'> | undefined;
  const resolve = () => {
    if (resolved) return resolved;
    const catalog = catalogCommand(spec.name);
    if (!catalog) throw new Error(`${spec.name} is not in the catalog: run \`npm run catalog\``);
    const declared = new Set(catalog.params.map((p) => p.name.toLowerCase()));
    for (const name of Object.keys(spec.params)) {
      if (!declared.has(name))
        throw new Error(`${spec.name}: parameter ${name} is not in the CloudStack API`);
    }
    resolved = {
      catalog: {
        ...catalog,
        ...(spec.objectName ? { responseObjectName: spec.objectName } : {}),
        ...(spec.responseShape ? { responseShape: spec.responseShape } : {}),
      },
      isAsync: catalog.isasync,
      allowedRoles: spec.roles ?? catalog.roles,
    };
    return resolved;
  };
  return {
    ...spec,
    get catalog() {
      return resolve().catalog;
    },
    get isAsync() {
      return resolve().isAsync;
    },
    get allowedRoles() {
      return resolve().allowedRoles;
    },
  };
}

export function listResult(items: object[], count: number): ListResult {
  return { count, items };
}

export const success = (displaytext?: string) => ({ success: true, ...(displaytext ? { displaytext } : {}) });

export function isListResult(r: CommandResult): r is ListResult {
  return typeof (r as ListResult).count === 'number' && Array.isArray((r as ListResult).items);
}
