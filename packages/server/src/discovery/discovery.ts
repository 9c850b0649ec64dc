/** listApis and listCapabilities: what this server offers the caller. */
import type { App, CallContext } from '../context.ts';
import { invalidParameter } from '../errors.ts';
import { API_VERSION } from '../http/serialize.ts';
import { mayCall } from '../iam/caller.ts';
import { ALLOW_USER_CREATE_PROJECTS, PROJECT_INVITE_REQUIRED } from '../projects/settings.ts';
import { type Command, defineCommand, listResult } from '../registry/command.ts';
import { p } from '../registry/params.ts';
import {
  ALLOW_USER_EXPUNGE_RECOVER_VM,
  ALLOW_USER_VIEW_DESTROYED_VM,
  API_THROTTLING_INTERVAL,
  API_THROTTLING_MAX,
  EXPOSE_VERSION_CAPABILITIES,
} from '../settings/core-settings.ts';

/** Parameters every async command accepts but upstream's listApis does not show. */
const HIDDEN_PARAMS = new Set(['customjobid', 'starteventid', 'response']);

export function describeApi(app: App, command: Command, isAdmin: boolean): object {
  const catalogParams = new Map(command.catalog.params.map((cp) => [cp.name.toLowerCase(), cp]));
  const params = Object.entries(command.params)
    .filter(([name, spec]) => !HIDDEN_PARAMS.has(name) && (isAdmin || !spec.adminOnly))
    .map(([name, spec]) => {
      const cp = catalogParams.get(name);
      return {
        name: cp?.name ?? name,
        description: spec.description ?? '',
        type: spec.type,
        length: cp?.length ?? spec.length ?? 255,
        required: spec.required,
        ...(cp?.since ? { since: cp.since } : {}),
      };
    });
  return {
    name: command.name,
    description: command.description ?? '',
    isasync: command.isAsync,
    ...(command.catalog.since ? { since: command.catalog.since } : {}),
    params,
    response: command.catalog.response
      .filter((f) => f.name !== 'jobid' && f.name !== 'jobstatus')
      .map((f) => ({
        name: f.name,
        description:
          app.registry.responseFields.describe(command.catalog.responseObjectName ?? command.name, f.name) ??
          '',
        type: f.type,
      })),
  };
}

export const listApis = defineCommand({
  name: 'listApis',
  description:
    "Lists the API commands the caller's role may call, with their parameters and response fields, as served from Nimbostack's own declarations.",
  params: {
    name: p.string({
      description: 'Only this command; an error if it does not exist or the caller may not call it.',
    }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    const candidates = params.name
      ? [app.registry.get(params.name)].filter((c): c is Command => c !== undefined)
      : app.registry.all();
    const allowed: Command[] = [];
    for (const c of candidates) if (await mayCall(app, caller, c)) allowed.push(c);
    if (params.name && allowed.length === 0)
      throw invalidParameter(`The API ${params.name} does not exist or is not available for this account`);
    const isAdmin = caller.roleKind === 'admin';
    return listResult(
      allowed.map((c) => describeApi(app, c, isAdmin)),
      allowed.length,
    );
  },
});

/** Capabilities that other capability folders report (e.g. whether any zone has security groups). */
type CapabilityProvider = (ctx: CallContext) => Promise<Record<string, unknown>>;
const providers: CapabilityProvider[] = [];

export function provideCapabilities(provider: CapabilityProvider): void {
  providers.push(provider);
}

export const listCapabilities = defineCommand({
  name: 'listCapabilities',
  description:
    'Reports what this Nimbostack installation offers and allows, such as the API rate limits and whether users may view or expunge destroyed VMs.',
  params: {},
  async handler(ctx) {
    const { settings } = ctx.app;
    const capability: Record<string, unknown> = {
      securitygroupsenabled: false,
      dynamicrolesenabled: true,
      cloudstackversion: settings.get(EXPOSE_VERSION_CAPABILITIES) ? API_VERSION : undefined,
      userpublictemplateenabled: true,
      supportELB: 'false',
      projectinviterequired: settings.get(PROJECT_INVITE_REQUIRED),
      allowusercreateprojects: settings.get(ALLOW_USER_CREATE_PROJECTS),
      customdiskofferingminsize: 1,
      customdiskofferingmaxsize: 1024,
      regionsecondaryenabled: false,
      kvmsnapshotenabled: true,
      allowuserviewdestroyedvm: settings.get(ALLOW_USER_VIEW_DESTROYED_VM),
      allowuserexpungerecovervm: settings.get(ALLOW_USER_EXPUNGE_RECOVER_VM),
      allowuserexpungerecovervolume: true,
      allowuserviewalldomainaccounts: false,
      allowuserforcestopvm: true,
      kubernetesserviceenabled: false,
      kubernetesclusterexperimentalfeaturesenabled: false,
      dynamicscalingenabled: true,
      defaultuipagesize: 20,
      apilimitinterval: settings.get(API_THROTTLING_INTERVAL),
      apilimitmax: settings.get(API_THROTTLING_MAX),
      instancesstatsretentiontime: 0,
      instancesstatsuseronly: false,
    };
    for (const provider of providers) Object.assign(capability, await provider(ctx));
    return capability;
  },
});

export const discoveryCommands = [listApis, listCapabilities];
