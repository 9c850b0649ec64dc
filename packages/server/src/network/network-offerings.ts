/**
 * Network offerings: the upstream defaults seeded by the migrations (0008, 0018), and the
 * offerings operators create, change and delete. An offering is a list of services, each with its
 * provider, stored as "Service:Provider" pairs in network_offerings.services (see
 * network-offering-rules.ts for what may be combined). System offerings (System-Public-Network)
 * back the zones' system networks and are never listed, as upstream.
 */
import { formatDate } from '../clock.ts';
import type { CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { NetworkOfferingRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, likeEscaped } from '../iam/access.ts';
import { findZone, likeOp, normalizeTags } from '../infra/common.ts';
import { inZone, presentScopes, resolveScopes, visibleTo, writeScopes } from '../offerings/scope.ts';
import { findServiceOffering } from '../offerings/service-offerings.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { findNetwork } from './common.ts';
import {
  hasServices,
  presentServices,
  resolveOfferingServices,
  supportedServices,
} from './network-offering-rules.ts';

export { hasServices, presentServices, servicesOf } from './network-offering-rules.ts';

/** The offering upstream gives a Basic zone's guest network. */
export const BASIC_ZONE_OFFERING = 'DefaultSharedNetworkOfferingWithSGService';
/** The system offering of the zones' Public networks, which public IP ranges belong to. */
export const PUBLIC_NETWORK_OFFERING = 'System-Public-Network';

const GUEST_TYPES = ['Isolated', 'Shared', 'L2'] as const;
const STATES = ['Enabled', 'Disabled'] as const;
const AVAILABILITIES = ['Required', 'Optional'] as const;

function pick<T extends string>(values: readonly T[], value: string, what: string): T {
  const found = values.find((v) => v.toLowerCase() === value.trim().toLowerCase());
  if (!found) throw invalidParameter(`Invalid ${what} ${value}; use one of ${values.join(', ')}`);
  return found;
}

export function presentNetworkOffering(
  o: NetworkOfferingRow,
  scope: { domainid?: string; domain?: string; zoneid?: string; zone?: string } = {},
  serviceOfferingUuid?: string,
): object {
  return {
    id: o.uuid,
    name: o.name,
    displaytext: o.display_text,
    traffictype: o.traffic_type,
    isdefault: o.is_default === 1,
    specifyvlan: o.specify_vlan === 1,
    conservemode: o.conserve_mode === 1,
    specifyipranges: o.specify_ip_ranges === 1,
    availability: o.availability,
    // No rate is enforced on guest traffic: an offering without one is unlimited (-1, as upstream).
    networkrate: o.network_rate ?? -1,
    state: o.state,
    guestiptype: o.guest_ip_type,
    serviceofferingid: serviceOfferingUuid,
    service: presentServices(o),
    forvpc: o.for_vpc === 1,
    fornsx: false,
    fortungsten: false,
    ispersistent: o.is_persistent === 1,
    egressdefaultpolicy: o.egress_default_policy === 1,
    maxconnections: o.max_connections ?? undefined,
    tags: o.tags ?? undefined,
    supportsstrechedl2subnet: false,
    supportspublicaccess: false,
    supportsinternallb: o.services.includes('Lb:InternalLbVm'),
    internetprotocol: 'IPv4',
    created: formatDate(o.created),
    hasannotations: false,
    details: {},
    ...scope,
  };
}

async function presentOfferings(ctx: CallContext, rows: NetworkOfferingRow[]): Promise<object[]> {
  if (rows.length === 0) return [];
  const scopes = await presentScopes(
    ctx,
    'network',
    rows.map((r) => r.id),
  );
  const soIds = [...new Set(rows.map((r) => r.service_offering_id).filter((x): x is number => x !== null))];
  const [serviceOfferings, router] = await Promise.all([
    soIds.length
      ? ctx.app.store.db
          .selectFrom('service_offerings')
          .select(['id', 'uuid'])
          .where('id', 'in', soIds)
          .execute()
      : [],
    // As upstream, an offering without its own names the routers' default system offering.
    ctx.app.store.db
      .selectFrom('service_offerings')
      .select('uuid')
      .where('system_vm_type', '=', 'domainrouter')
      .where('default_use', '=', 1)
      .where('removed', 'is', null)
      .executeTakeFirst(),
  ]);
  const soUuid = new Map(serviceOfferings.map((s) => [s.id, s.uuid]));
  return rows.map((o) =>
    presentNetworkOffering(
      o,
      scopes.get(o.id),
      (o.service_offering_id === null ? undefined : soUuid.get(o.service_offering_id)) ?? router?.uuid,
    ),
  );
}

export async function findNetworkOffering(
  ctx: Pick<CallContext, 'app'>,
  uuid: string,
): Promise<NetworkOfferingRow> {
  const row = await ctx.app.store.db
    .selectFrom('network_offerings')
    .selectAll()
    .where('uuid', '=', uuid)
    .where('removed', 'is', null)
    .where('system_only', '=', 0)
    .executeTakeFirst();
  if (!row) throw invalidParameter(`Unable to find network offering by id ${uuid}`);
  return row;
}

async function presentOne(ctx: CallContext, id: number): Promise<object> {
  const row = await ctx.app.store.db
    .selectFrom('network_offerings')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return (await presentOfferings(ctx, [row]))[0];
}

/** Upstream lets one offering only be Required: the one a zone's first isolated network gets. */
async function checkRequired(tx: Tx, guestType: string, services: string, except?: number): Promise<void> {
  if (guestType !== 'Isolated' || !services.split(',').some((s) => s.startsWith('SourceNat:')))
    throw invalidParameter(
      'Availability can be Required only for network offerings of type Isolated with the SourceNat service',
    );
  let q = tx
    .selectFrom('network_offerings')
    .select('uuid')
    .where('availability', '=', 'Required')
    .where('removed', 'is', null)
    .where('system_only', '=', 0);
  if (except !== undefined) q = q.where('id', '!=', except);
  const other = await q.executeTakeFirst();
  if (other)
    throw invalidParameter(`System already has network offering id=${other.uuid} with availability Required`);
}

async function checkNameFree(tx: Tx, name: string, except?: number): Promise<void> {
  // The name is unique over every offering row, deleted ones included (they stay for history).
  let q = tx.selectFrom('network_offerings').select('id').where('name', '=', name);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst())
    throw invalidParameter(`A network offering with name ${name} already exists`);
}

export const createNetworkOffering = defineCommand({
  name: 'createNetworkOffering',
  description:
    'Creates a Guest network offering: the guest type and the services (with providers) its networks get. It starts Disabled unless enable=true.',
  params: {
    name: p.string({
      required: true,
      description: "Unique name of the offering (deleted offerings' names stay taken); must not be blank.",
    }),
    displaytext: p.string({ description: 'Free-text description; defaults to the name.' }),
    traffictype: p.string({ required: true, description: 'Traffic type; only Guest is accepted.' }),
    guestiptype: p.string({
      required: true,
      description: 'Guest type of the networks made from it: Isolated, Shared or L2 (L2 has no services).',
    }),
    supportedservices: p.list({
      description:
        'Comma-separated services, e.g. Dhcp,Dns,SourceNat,Firewall,Lb,PortForwarding,StaticNat,UserData; SecurityGroup for Shared only, public-address services for Isolated only.',
    }),
    serviceproviderlist: p.map({
      description:
        'Provider per service (serviceproviderlist[0].service, .provider), e.g. VirtualRouter; each service must be in supportedservices. Defaults to VirtualRouter.',
    }),
    servicecapabilitylist: p.map({
      description:
        "Capabilities per service (.service, .capabilitytype, .capabilityvalue); only the values Nimbostack's providers actually have are accepted.",
    }),
    serviceofferingid: p.uuid({
      description: "Service offering of the networks' routers; defaults to the default router offering.",
    }),
    egressdefaultpolicy: p.boolean({
      description:
        'True (default) lets guest traffic out unless an egress rule denies it; false blocks it unless an egress rule allows it.',
    }),
    conservemode: p.boolean({
      description: 'Recorded and shown (default true); Nimbostack does not act on it.',
    }),
    specifyvlan: p.boolean({
      description: 'Recorded and shown (default false); Nimbostack does not act on it.',
    }),
    specifyipranges: p.boolean({
      description:
        'Whether networks are created with their own address ranges; defaults to true for Shared, false otherwise.',
    }),
    availability: p.string({
      description:
        'Optional (default) or Required; only one Isolated offering with SourceNat can be Required.',
    }),
    tags: p.string({ description: 'Comma-separated tags, recorded and shown with the offering.' }),
    forvpc: p.boolean({
      description:
        'Offering for VPC tiers (Isolated only). VPCs are not implemented yet, so such an offering has no use.',
    }),
    ispersistent: p.boolean({
      description: 'Recorded and shown; refused for Shared. Nimbostack does not act on it.',
    }),
    networkrate: p.integer({
      description: 'Data rate in Mbit/s recorded with the offering (-1 for unlimited); not enforced.',
    }),
    maxconnections: p.integer({
      min: 0,
      description: 'Maximum concurrent load balancer connections, recorded with the offering; not enforced.',
    }),
    keepaliveenabled: p.boolean({ description: 'Recorded with the offering (default false); not enforced.' }),
    zoneid: p.list({
      description: 'Comma-separated IDs of the zones the offering is available in; omitted, all zones.',
    }),
    domainid: p.list({
      description: 'Comma-separated IDs of the domains the offering is available to; omitted, every domain.',
    }),
    enable: p.boolean({ description: 'Create the offering Enabled at once instead of Disabled.' }),
    internetprotocol: p.string({
      description: 'Only IPv4 (the default) is supported; other values are refused.',
    }),
    fornsx: p.boolean({ description: 'NSX is not supported: true is refused.' }),
    fortungsten: p.boolean({ description: 'Tungsten is not supported: true is refused.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Network offering name must not be empty');
    if (params.traffictype.trim().toLowerCase() !== 'guest')
      throw invalidParameter('Only traffic type Guest is supported in the current release');
    const guestType = pick(GUEST_TYPES, params.guestiptype, 'guest IP type');
    if (params.fornsx || params.fortungsten)
      throw invalidParameter(
        'There is no NSX or Tungsten provider here: fornsx and fortungsten are not supported',
      );
    if (params.internetprotocol && params.internetprotocol.toLowerCase() !== 'ipv4')
      throw invalidParameter('Only IPv4 networks are supported: internetprotocol must be IPv4');
    const forVpc = params.forvpc ?? false;
    if (forVpc && guestType !== 'Isolated')
      throw invalidParameter('A VPC network offering must be of guest IP type Isolated');
    if (params.ispersistent && guestType === 'Shared')
      throw invalidParameter('A persistent network offering must be of guest IP type Isolated or L2');
    const services = resolveOfferingServices({
      guestType,
      forVpc,
      supportedServices: params.supportedservices ?? [],
      serviceProviders: params.serviceproviderlist ?? [],
      capabilities: params.servicecapabilitylist ?? [],
    });
    const availability = params.availability
      ? pick(AVAILABILITIES, params.availability, 'availability')
      : 'Optional';
    const serviceOffering = params.serviceofferingid
      ? await findServiceOffering(ctx, params.serviceofferingid)
      : undefined;
    if (params.networkrate !== undefined && params.networkrate < -1)
      throw invalidParameter(`Invalid networkrate ${params.networkrate}`);
    const scopes = await resolveScopes(ctx, params.domainid, params.zoneid);
    const uuid = app.ids.uuid();
    const id = await app.store.db.transaction().execute(async (tx) => {
      await checkNameFree(tx, name);
      if (availability === 'Required') await checkRequired(tx, guestType, services);
      const id = await insertId(app.store, tx, 'network_offerings', {
        uuid,
        name,
        display_text: params.displaytext?.trim() || name,
        guest_ip_type: guestType,
        traffic_type: 'Guest',
        services,
        specify_vlan: params.specifyvlan ? 1 : 0,
        // Shared networks are made with their address ranges, so upstream defaults this to true there.
        specify_ip_ranges: (params.specifyipranges ?? guestType === 'Shared') ? 1 : 0,
        is_default: 0,
        availability,
        // Upstream creates offerings Disabled unless asked to enable them at once.
        state: params.enable ? 'Enabled' : 'Disabled',
        conserve_mode: (params.conservemode ?? true) ? 1 : 0,
        // Upstream's default for new offerings: egress allowed.
        egress_default_policy: (params.egressdefaultpolicy ?? true) ? 1 : 0,
        for_vpc: forVpc ? 1 : 0,
        is_persistent: params.ispersistent ? 1 : 0,
        keep_alive_enabled: params.keepaliveenabled ? 1 : 0,
        tags: normalizeTags(params.tags),
        network_rate: params.networkrate ?? null,
        service_offering_id: serviceOffering?.id ?? null,
        max_connections: params.maxconnections ?? null,
        created: app.clock.now(),
      });
      await writeScopes(tx, 'network', id, scopes);
      await logEvent(ctx, tx, {
        type: 'NETWORK.OFFERING.CREATE',
        description: `creating network offering ${name}`,
        resourceType: 'NetworkOffering',
        resourceId: uuid,
      });
      return id;
    });
    return presentOne(ctx, id);
  },
});

export const updateNetworkOffering = defineCommand({
  name: 'updateNetworkOffering',
  description:
    "Changes a network offering's name, text, state, availability, order, tags, or the zones and domains it is offered in. Its services cannot change.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the offering to update.' }),
    name: p.string({ description: 'New unique name; must not be blank.' }),
    displaytext: p.string({ description: 'New display text; blank resets it to the name.' }),
    state: p.string({ description: 'Enabled (users can create networks from it) or Disabled.' }),
    availability: p.string({
      description: 'Optional or Required; only one Isolated offering with SourceNat can be Required.',
    }),
    sortkey: p.integer({ description: 'Position in listNetworkOfferings: lower comes first.' }),
    tags: p.string({ description: 'New comma-separated tags.' }),
    maxconnections: p.integer({
      min: 0,
      description: 'New recorded maximum of load balancer connections; not enforced.',
    }),
    keepaliveenabled: p.boolean({ description: 'New recorded keep-alive flag; not enforced.' }),
    domainid: p.string({
      description: "Comma-separated domain IDs the offering is limited to, or 'public' for every domain.",
    }),
    zoneid: p.string({
      description: "Comma-separated zone IDs the offering is limited to, or 'all' for every zone.",
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findNetworkOffering(ctx, params.id);
    const changes: Partial<NetworkOfferingRow> = {};
    if (params.name !== undefined) {
      const name = params.name.trim();
      if (name === '') throw invalidParameter('Network offering name must not be empty');
      changes.name = name;
    }
    if (params.displaytext !== undefined) changes.display_text = params.displaytext.trim() || offering.name;
    if (params.state !== undefined) changes.state = pick(STATES, params.state, 'state');
    if (params.availability !== undefined)
      changes.availability = pick(AVAILABILITIES, params.availability, 'availability');
    if (params.sortkey !== undefined) changes.sort_key = params.sortkey;
    if (params.tags !== undefined) changes.tags = normalizeTags(params.tags);
    if (params.maxconnections !== undefined) changes.max_connections = params.maxconnections;
    if (params.keepaliveenabled !== undefined) changes.keep_alive_enabled = params.keepaliveenabled ? 1 : 0;
    const scopes = await resolveScopes(ctx, params.domainid, params.zoneid);
    await app.store.db.transaction().execute(async (tx) => {
      if (changes.name !== undefined) await checkNameFree(tx, changes.name, offering.id);
      if (changes.availability === 'Required' && offering.availability !== 'Required')
        await checkRequired(tx, offering.guest_ip_type, offering.services, offering.id);
      if (Object.keys(changes).length > 0)
        await tx.updateTable('network_offerings').set(changes).where('id', '=', offering.id).execute();
      await writeScopes(tx, 'network', offering.id, scopes);
      await logEvent(ctx, tx, {
        type: 'NETWORK.OFFERING.EDIT',
        description: `updating network offering ${offering.name}`,
        resourceType: 'NetworkOffering',
        resourceId: offering.uuid,
      });
    });
    return presentOne(ctx, offering.id);
  },
});

export const deleteNetworkOffering = defineCommand({
  name: 'deleteNetworkOffering',
  description: 'Deletes a network offering that no network uses; the default offerings cannot be deleted.',
  params: { id: p.uuid({ required: true, description: 'ID of the offering to delete.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const offering = await findNetworkOffering(ctx, params.id);
    if (offering.is_default === 1)
      throw invalidParameter(`Default network offering ${offering.name} can't be removed`);
    await app.store.db.transaction().execute(async (tx) => {
      const live = await tx
        .selectFrom('networks')
        .select('name')
        .where('network_offering_id', '=', offering.id)
        .where('removed', 'is', null)
        .executeTakeFirst();
      if (live)
        throw resourceInUse(
          `Can't delete network offering ${offering.name}: network ${live.name} is using it`,
        );
      // Deleted offerings stay as rows (removed set) so deleted networks still name theirs.
      await tx
        .updateTable('network_offerings')
        .set({ removed: app.clock.now(), state: 'Disabled' })
        .where('id', '=', offering.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'NETWORK.OFFERING.DELETE',
        description: `deleting network offering ${offering.name}`,
        resourceType: 'NetworkOffering',
        resourceId: offering.uuid,
      });
    });
    return success();
  },
});

export const listNetworkOfferings = defineCommand({
  name: 'listNetworkOfferings',
  description:
    'Lists guest network offerings; non-administrators see only Enabled ones offered to their domain. Keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the offering with this ID.' }),
    name: p.string({ description: 'Only the offering with exactly this name.' }),
    displaytext: p.string({ description: 'Only offerings with exactly this display text.' }),
    traffictype: p.string({ description: 'Only offerings of this traffic type (all are Guest).' }),
    guestiptype: p.string({ description: 'Only offerings of this guest type: Isolated, Shared or L2.' }),
    isdefault: p.boolean({ description: 'Only the default offerings (true) or only the others (false).' }),
    specifyvlan: p.boolean({ description: 'Only offerings with (true) or without (false) specifyvlan.' }),
    specifyipranges: p.boolean({
      description: 'Only offerings whose networks do (true) or do not (false) come with their own ranges.',
    }),
    availability: p.string({ description: 'Only offerings with this availability: Optional or Required.' }),
    state: p.string({ description: 'Only offerings in this state: Enabled or Disabled.' }),
    zoneid: p.uuid({ description: 'Only offerings available in this zone.' }),
    networkid: p.uuid({
      description: 'Only offerings the given network could use: those of its guest type.',
    }),
    supportedservices: p.list({
      description: 'Comma-separated services: only offerings providing all of them.',
    }),
    sourcenatsupported: p.boolean({ description: 'True: only offerings with the SourceNat service.' }),
    forvpc: p.boolean({ description: 'Only offerings for VPC tiers (true) or not (false).' }),
    domainid: p.uuid({ description: 'Only offerings explicitly limited to this domain.' }),
    tags: p.string({ description: 'Only offerings with exactly these tags.' }),
    istagged: p.boolean({ description: 'Only offerings with (true) or without (false) tags.' }),
    routingmode: p.string({
      description: 'Any value gives an empty list: no offering has a routing mode in Nimbostack.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    let q = app.store.db
      .selectFrom('network_offerings')
      .where('removed', 'is', null)
      .where('system_only', '=', 0);
    if (params.zoneid)
      q = inZone(q, 'network', 'network_offerings.id', (await findZone(ctx, params.zoneid)).id);
    if (params.networkid) {
      // The offerings a network could be switched to: those of its guest type.
      const network = await findNetwork(ctx, params.networkid);
      const current = await app.store.db
        .selectFrom('network_offerings')
        .select(['guest_ip_type', 'for_vpc'])
        .where('id', '=', network.network_offering_id)
        .executeTakeFirstOrThrow();
      q = q.where('guest_ip_type', '=', current.guest_ip_type).where('for_vpc', '=', current.for_vpc);
    }
    if (params.domainid) {
      const scoped = await resolveScopes(ctx, params.domainid, undefined);
      q = q.where((eb) =>
        eb(
          'id',
          'in',
          eb
            .selectFrom('offering_scopes')
            .select('offering_id')
            .where('offering_type', '=', 'network')
            .where('scope', '=', 'domain')
            .where('scope_id', 'in', scoped.domainIds ?? []),
        ),
      );
    }
    // Tenants see what they may use: enabled offerings public or scoped to their domains.
    if (ctx.caller.roleKind !== 'admin')
      q = (await visibleTo(ctx, q, 'network', 'network_offerings.id')).where('state', '=', 'Enabled');
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.displaytext) q = q.where('display_text', '=', params.displaytext);
    if (params.traffictype)
      q = q.where(likeEscaped('traffic_type', escapeLike(params.traffictype), likeOp(ctx)));
    if (params.guestiptype)
      q = q.where(likeEscaped('guest_ip_type', escapeLike(params.guestiptype), likeOp(ctx)));
    if (params.isdefault !== undefined) q = q.where('is_default', '=', params.isdefault ? 1 : 0);
    if (params.specifyvlan !== undefined) q = q.where('specify_vlan', '=', params.specifyvlan ? 1 : 0);
    if (params.specifyipranges !== undefined)
      q = q.where('specify_ip_ranges', '=', params.specifyipranges ? 1 : 0);
    if (params.availability)
      q = q.where(likeEscaped('availability', escapeLike(params.availability), likeOp(ctx)));
    if (params.state) q = q.where(likeEscaped('state', escapeLike(params.state), likeOp(ctx)));
    if (params.forvpc !== undefined) q = q.where('for_vpc', '=', params.forvpc ? 1 : 0);
    if (params.tags) q = q.where('tags', '=', normalizeTags(params.tags));
    if (params.istagged !== undefined) q = q.where('tags', params.istagged ? 'is not' : 'is', null);
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    // Only NSX and routed (BGP) offerings have a routing mode, and there are none here.
    if (params.routingmode) return listResult([], 0);
    const wanted = [...(params.supportedservices ?? []), ...(params.sourcenatsupported ? ['SourceNat'] : [])];
    // Services are a short string per offering, and offerings are few: filtered after the query.
    const rows = (await q.selectAll().orderBy('sort_key').orderBy('id').execute()).filter((o) =>
      hasServices(o, wanted),
    );
    const page = pageOf(app, params);
    const slice = page.limit === undefined ? rows : rows.slice(page.offset, page.offset + page.limit);
    return listResult(await presentOfferings(ctx, slice), rows.length);
  },
});

/** What createNetworkOffering may combine: each service, its providers here, its capabilities. */
export const listSupportedNetworkServices = defineCommand({
  name: 'listSupportedNetworkServices',
  description:
    'Lists the network services Nimbostack can offer, with their providers and the fixed capabilities they have; keyword matches service names.',
  params: {
    ...listParams,
    service: p.string({ description: 'Only this service (e.g. Lb); an unknown name is refused.' }),
    provider: p.string({
      description: 'Only services this provider offers (e.g. VirtualRouter), showing only that provider.',
    }),
  },
  async handler(ctx, params) {
    const same = (a: string, b: string) => a.toLowerCase() === b.trim().toLowerCase();
    const all = supportedServices();
    if (params.service && !all.some((s) => same(s.name, params.service as string)))
      throw invalidParameter(`Invalid Network Service=${params.service}`);
    const rows = all
      .filter((s) => !params.service || same(s.name, params.service))
      .filter((s) => !params.provider || s.providers.some((p) => same(p, params.provider as string)))
      .filter((s) => !params.keyword || s.name.toLowerCase().includes(params.keyword.toLowerCase()));
    const page = pageOf(ctx.app, params);
    const slice = page.limit === undefined ? rows : rows.slice(page.offset, page.offset + page.limit);
    return listResult(
      slice.map((s) => ({
        name: s.name,
        provider: s.providers
          .filter((p) => !params.provider || same(p, params.provider))
          .map((name) => ({ name })),
        capability: s.capabilities.map(([name, value]) => ({
          name,
          value,
          canchooseservicecapability: false,
        })),
      })),
      rows.length,
    );
  },
});

export const networkOfferingCommands = [
  listSupportedNetworkServices,
  listNetworkOfferings,
  createNetworkOffering,
  updateNetworkOffering,
  deleteNetworkOffering,
];
