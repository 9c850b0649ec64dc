/** Zones: one data centre each, the top of the inventory (createZone, listZones, updateZone, deleteZone). */
import type { App, CallContext } from '../context.ts';
import { insertId, type Tx } from '../db/connection.ts';
import type { ZoneRow } from '../db/schema.ts';
import { invalidParameter, resourceInUse } from '../errors.ts';
import { logEvent } from '../events/events.ts';
import { escapeLike, findDomainByUuid, likeEscaped } from '../iam/access.ts';
import { defineCommand, listResult, success } from '../registry/command.ts';
import { countedPage, pageOf, paginate } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { tagsColumn, tagsFromColumn, tagsOf, withTags } from '../tags/tags.ts';
import { zoneCapacities } from './capacity.ts';
import { allocationState, findZone, isIpv4, likeOp } from './common.ts';
import { countHosts } from './host-inventory.ts';

const NETWORK_TYPES = ['Basic', 'Advanced'] as const;
/** Upstream's guest.network.cidr default for Advanced zones. */
const DEFAULT_GUEST_CIDR = '10.1.1.0/24';

function networkType(value: string): string {
  const found = NETWORK_TYPES.find((t) => t.toLowerCase() === value.trim().toLowerCase());
  if (!found) throw invalidParameter(`Invalid network type ${value}; use Basic or Advanced`);
  return found;
}

function dns(value: string | undefined, name: string): string | undefined {
  if (value === undefined || value === '') return value;
  const v = value.trim();
  // CloudStack stores what the operator gives; a resolver must at least be an address.
  if (!isIpv4(v) && !/^[0-9a-f:]+$/i.test(v))
    throw invalidParameter(`Invalid IP address for ${name}: ${value}`);
  return v;
}

function guestCidr(value: string): string {
  const [ip, bits, extra] = value.trim().split('/');
  if (extra !== undefined || !isIpv4(ip ?? '') || !/^\d+$/.test(bits ?? '') || Number(bits) > 32)
    throw invalidParameter(`Please enter a valid guest cidr: ${value}`);
  return `${ip}/${Number(bits)}`;
}

/** Who owns infrastructure for tagging: the ROOT domain, so only administrators there may tag it. */
export async function rootDomainId(ctx: CallContext): Promise<number> {
  const root = await ctx.app.store.db
    .selectFrom('domains')
    .select('id')
    .where('parent_id', 'is', null)
    .executeTakeFirstOrThrow();
  return root.id;
}

export async function presentZones(
  ctx: CallContext,
  rows: (ZoneRow & { tags_json?: unknown })[],
  opts: { capacities?: boolean } = {},
): Promise<object[]> {
  if (rows.length === 0) return [];
  const db = ctx.app.store.db;
  const domainIds = [...new Set(rows.map((z) => z.domain_id).filter((x): x is number => x !== null))];
  const domains = domainIds.length
    ? await db.selectFrom('domains').select(['id', 'uuid', 'name']).where('id', 'in', domainIds).execute()
    : [];
  const domainById = new Map(domains.map((d) => [d.id, d]));
  // listZones reads the tags with the page (tagsColumn); other callers look them up here.
  const tags = rows.every((z) => 'tags_json' in z)
    ? new Map(rows.map((z) => [z.id, tagsFromColumn(z.tags_json)]))
    : await tagsOf(
        ctx,
        'Zone',
        rows.map((z) => z.id),
      );
  const capacities = opts.capacities ? await zoneCapacities(ctx, rows) : undefined;
  return rows.map((z) => {
    const domain = z.domain_id === null ? undefined : domainById.get(z.domain_id);
    return {
      id: z.uuid,
      name: z.name,
      description: z.description ?? undefined,
      dns1: z.dns1,
      dns2: z.dns2 ?? undefined,
      ip6dns1: z.ip6_dns1 ?? undefined,
      ip6dns2: z.ip6_dns2 ?? undefined,
      internaldns1: z.internal_dns1,
      internaldns2: z.internal_dns2 ?? undefined,
      guestcidraddress: z.guest_cidr ?? undefined,
      networktype: z.network_type,
      securitygroupsenabled: z.security_groups_enabled === 1,
      allocationstate: z.allocation_state,
      zonetoken: z.zone_token,
      dhcpprovider: z.dhcp_provider,
      localstorageenabled: z.local_storage_enabled === 1,
      domain: z.network_domain ?? undefined,
      domainid: domain?.uuid,
      domainname: domain?.name,
      type: z.is_edge === 1 ? 'Edge' : 'Core',
      tags: tags.get(z.id) ?? [],
      capacity: capacities?.get(z.id),
      resourcedetails: {},
      hasannotations: false,
      ismultiarch: false,
      allowuserspecifyvrmtu: false,
      routedmodeenabled: false,
      isnsxenabled: false,
    };
  });
}

export const createZone = defineCommand({
  name: 'createZone',
  description:
    'Creates a zone, Disabled by default: Basic (one shared guest network, security groups) or Advanced (isolated and shared networks behind virtual routers).',
  params: {
    name: p.string({ required: true, description: 'Name of the zone, unique; must not be blank.' }),
    networktype: p.string({ required: true, description: 'Basic or Advanced.' }),
    dns1: p.string({
      required: true,
      description: "First DNS server the zone's routers forward guest queries to; an IP address.",
    }),
    dns2: p.string({ description: 'Second DNS server for guests; an IP address.' }),
    internaldns1: p.string({
      required: true,
      description: "First DNS server for the zone's own infrastructure; an IP address.",
    }),
    internaldns2: p.string({
      description: "Second DNS server for the zone's infrastructure; an IP address.",
    }),
    ip6dns1: p.string({
      description: 'IPv6 DNS server, recorded and shown only: Nimbostack has no IPv6 guest networking.',
    }),
    ip6dns2: p.string({ description: 'Second IPv6 DNS server, recorded and shown only.' }),
    guestcidraddress: p.string({
      description:
        'Default subnet of isolated networks, e.g. 10.1.1.0/24 (the default in Advanced zones); not used in Basic zones.',
    }),
    domain: p.string({
      description: "DNS domain guest VMs' names are served in unless a network sets its own.",
    }),
    domainid: p.uuid({
      description: 'Dedicates the zone to this domain: only it and its subdomains see and use it.',
    }),
    allocationstate: p.string({
      description: 'Enabled or Disabled (default); only administrators see and use a Disabled zone.',
    }),
    securitygroupenabled: p.boolean({
      description:
        'Whether guests are isolated by security groups; always true for a Basic zone, false by default for Advanced.',
    }),
    localstorageenabled: p.boolean({
      description:
        "Whether hosts' local disks may hold volumes (each host gets a local pool). Defaults to false.",
    }),
    isedge: p.boolean({
      description: 'Recorded and shown; Nimbostack has no special handling of edge zones.',
    }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const name = params.name.trim();
    if (name === '') throw invalidParameter('Zone name must not be empty');
    const type = networkType(params.networktype);
    const cidr =
      params.guestcidraddress !== undefined && params.guestcidraddress !== ''
        ? guestCidr(params.guestcidraddress)
        : type === 'Advanced'
          ? DEFAULT_GUEST_CIDR
          : null;
    const dedicated = params.domainid ? await findDomainByUuid(ctx, params.domainid) : undefined;
    // Basic zones isolate guests with security groups only, so upstream always turns them on there.
    const securityGroups = type === 'Basic' ? true : (params.securitygroupenabled ?? false);
    const values = {
      name,
      network_type: type,
      allocation_state: allocationState(params.allocationstate) ?? 'Disabled',
      dns1: dns(params.dns1, 'dns1') as string,
      dns2: dns(params.dns2, 'dns2') || null,
      internal_dns1: dns(params.internaldns1, 'internaldns1') as string,
      internal_dns2: dns(params.internaldns2, 'internaldns2') || null,
      ip6_dns1: dns(params.ip6dns1, 'ip6dns1') || null,
      ip6_dns2: dns(params.ip6dns2, 'ip6dns2') || null,
      guest_cidr: cidr,
      network_domain: params.domain || null,
      domain_id: dedicated?.id ?? null,
      security_groups_enabled: securityGroups ? 1 : 0,
      local_storage_enabled: params.localstorageenabled ? 1 : 0,
      is_edge: params.isedge ? 1 : 0,
      dhcp_provider: 'VirtualRouter',
    } as const;
    const row = await app.store.db.transaction().execute(async (tx) => {
      await checkNameFree(tx, name);
      const id = await insertId(app.store, tx, 'zones', {
        ...values,
        uuid: app.ids.uuid(),
        zone_token: app.ids.uuid(),
        created: app.clock.now(),
      });
      const created = await tx.selectFrom('zones').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      await logEvent(ctx, tx, {
        type: 'ZONE.CREATE',
        description: `creating zone ${name}`,
        resourceType: 'Zone',
        resourceId: created.uuid,
      });
      return created;
    });
    return (await presentZones(ctx, [row]))[0];
  },
});

async function checkNameFree(tx: Tx, name: string, except?: number): Promise<void> {
  let q = tx.selectFrom('zones').select('id').where('name', '=', name).where('removed', 'is', null);
  if (except !== undefined) q = q.where('id', '!=', except);
  if (await q.executeTakeFirst()) throw invalidParameter(`A zone with name ${name} already exists`);
}

export const listZones = defineCommand({
  name: 'listZones',
  description:
    'Lists zones; non-administrators see only Enabled zones that are public or dedicated to their domain or one above it. Keyword matches names.',
  params: {
    ...listParams,
    id: p.uuid({ description: 'Only the zone with this ID.' }),
    ids: p.list({ of: 'uuid', description: 'Only the zones with these comma-separated IDs.' }),
    name: p.string({ description: 'Only the zone with exactly this name.' }),
    networktype: p.string({ description: 'Only Basic or only Advanced zones.' }),
    available: p.boolean({ description: 'True: only Enabled zones.' }),
    domainid: p.uuid({ description: 'Only zones dedicated to this domain.' }),
    showcapacities: p.boolean({
      description: "Also answer each zone's capacities; for administrators only (ignored for others).",
    }),
    showicon: p.boolean({
      description: 'When true, each object that has an icon (uploadResourceIcon) carries it as icon.',
    }),
    tags: p.map({
      description: 'Only zones carrying all these resource tags (tags[0].key, tags[0].value, ...).',
    }),
  },
  async handler(ctx, params) {
    const { app, caller } = ctx;
    let q = app.store.db.selectFrom('zones').where('removed', 'is', null);
    if (caller.roleKind !== 'admin') {
      // Others see enabled zones that are public or dedicated to their domain or one above it.
      const parts = caller.domain.path.split('/').filter(Boolean);
      const ancestorPaths = ['/', ...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}/`)];
      const ancestors = await app.store.db
        .selectFrom('domains')
        .select('id')
        .where('path', 'in', ancestorPaths)
        .execute();
      q = q.where('allocation_state', '=', 'Enabled').where((eb) =>
        eb.or([
          eb('domain_id', 'is', null),
          eb(
            'domain_id',
            'in',
            ancestors.map((d) => d.id),
          ),
        ]),
      );
    }
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.ids?.length) q = q.where('uuid', 'in', params.ids);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.networktype) q = q.where('network_type', '=', networkType(params.networktype));
    if (params.available) q = q.where('allocation_state', '=', 'Enabled');
    if (params.domainid) {
      const domain = await findDomainByUuid(ctx, params.domainid);
      q = q.where('domain_id', '=', domain.id);
    }
    if (params.keyword) q = q.where(likeEscaped('name', `%${escapeLike(params.keyword)}%`, likeOp(ctx)));
    q = withTags(q, 'Zone', 'zones.id', params.tags);
    const page = pageOf(app, params);
    const { rows, count } = await countedPage(
      page,
      () =>
        paginate(
          q
            .selectAll()
            .select(tagsColumn(app.store.dialect, 'Zone', 'zones.id').as('tags_json'))
            .orderBy('sort_key')
            .orderBy('id'),
          page,
        ).execute(),
      async () =>
        Number(
          (await q.select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow()).count,
        ),
    );
    // Capacity describes the provider's hardware: administrators see it, tenants don't.
    const capacities =
      params.showcapacities === true && (caller.roleKind === 'admin' || caller.roleKind === 'resourceadmin');
    return listResult(await presentZones(ctx, rows, { capacities }), Number(count));
  },
});

export const updateZone = defineCommand({
  name: 'updateZone',
  description:
    "Changes a zone's name, DNS servers, guest CIDR, DNS domain, allocation state, local storage, dedication or sort order; enabling local storage creates the hosts' local pools.",
  params: {
    id: p.uuid({ required: true, description: 'ID of the zone to update.' }),
    name: p.string({ description: 'New unique name; must not be blank.' }),
    dns1: p.string({ description: 'New first guest DNS server (an IP address).' }),
    dns2: p.string({ description: 'New second guest DNS server; empty clears it.' }),
    internaldns1: p.string({ description: 'New first infrastructure DNS server.' }),
    internaldns2: p.string({ description: 'New second infrastructure DNS server; empty clears it.' }),
    ip6dns1: p.string({ description: 'New recorded IPv6 DNS server; empty clears it.' }),
    ip6dns2: p.string({ description: 'New recorded second IPv6 DNS server; empty clears it.' }),
    guestcidraddress: p.string({
      description: 'New default subnet for isolated networks created from now on; refused for Basic zones.',
    }),
    domain: p.string({ description: "New DNS domain for guest VMs' names; empty clears it." }),
    allocationstate: p.string({ description: 'Enabled (users can deploy) or Disabled.' }),
    localstorageenabled: p.boolean({
      description: "Whether hosts' local disks may hold volumes; turning it on creates their local pools.",
    }),
    dhcpprovider: p.string({
      description:
        "Who serves the guests' DHCP: only VirtualRouter (the zone's virtual routers do), any other value is refused.",
    }),
    ispublic: p.boolean({
      description:
        'True makes a zone created for a domain (createZone domainid) public again. False is ignored, as upstream: a zone is not made private this way. dedicateZone dedications end with releaseDedicatedZone.',
    }),
    sortkey: p.integer({ description: 'Position in listZones: lower comes first.' }),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.id);
    const changes: Partial<ZoneRow> = {};
    if (params.name !== undefined) {
      const name = params.name.trim();
      if (name === '') throw invalidParameter('Zone name must not be empty');
      changes.name = name;
    }
    if (params.dns1) changes.dns1 = dns(params.dns1, 'dns1');
    if (params.dns2 !== undefined) changes.dns2 = dns(params.dns2, 'dns2') || null;
    if (params.internaldns1) changes.internal_dns1 = dns(params.internaldns1, 'internaldns1');
    if (params.internaldns2 !== undefined)
      changes.internal_dns2 = dns(params.internaldns2, 'internaldns2') || null;
    if (params.ip6dns1 !== undefined) changes.ip6_dns1 = dns(params.ip6dns1, 'ip6dns1') || null;
    if (params.ip6dns2 !== undefined) changes.ip6_dns2 = dns(params.ip6dns2, 'ip6dns2') || null;
    if (params.guestcidraddress) {
      if (zone.network_type === 'Basic') throw invalidParameter('A Basic zone has no guest CIDR');
      changes.guest_cidr = guestCidr(params.guestcidraddress);
    }
    if (params.domain !== undefined) changes.network_domain = params.domain || null;
    if (params.allocationstate !== undefined)
      changes.allocation_state = allocationState(params.allocationstate);
    if (params.localstorageenabled !== undefined)
      changes.local_storage_enabled = params.localstorageenabled ? 1 : 0;
    if (params.dhcpprovider !== undefined) {
      // The only DHCP server of a zone here is its virtual routers' dnsmasq.
      if (params.dhcpprovider.trim().toLowerCase() !== 'virtualrouter')
        throw invalidParameter(
          `Invalid dhcpprovider ${params.dhcpprovider}: only VirtualRouter serves DHCP in Nimbostack zones`,
        );
      changes.dhcp_provider = 'VirtualRouter';
    }
    if (params.ispublic) changes.domain_id = null;
    if (params.sortkey !== undefined) changes.sort_key = params.sortkey;
    const row = await app.store.db.transaction().execute(async (tx) => {
      if (changes.name) await checkNameFree(tx, changes.name, zone.id);
      if (Object.keys(changes).length > 0)
        await tx.updateTable('zones').set(changes).where('id', '=', zone.id).execute();
      await logEvent(ctx, tx, {
        type: 'ZONE.EDIT',
        description: `updating zone ${zone.name}`,
        resourceType: 'Zone',
        resourceId: zone.uuid,
      });
      return tx.selectFrom('zones').selectAll().where('id', '=', zone.id).executeTakeFirstOrThrow();
    });
    if (row.local_storage_enabled && !zone.local_storage_enabled)
      for (const listener of localStorageListeners) await listener(app, row);
    return (await presentZones(ctx, [row]))[0];
  },
});

/** Reacts to a zone switched to local storage (its hosts get their local pools). */
type LocalStorageListener = (app: App, zone: ZoneRow) => Promise<void>;
const localStorageListeners: LocalStorageListener[] = [];

export function onZoneLocalStorageEnabled(listener: LocalStorageListener): void {
  localStorageListeners.push(listener);
}

/**
 * Checks that can refuse a zone's removal (networks, IP ranges, templates... owned by other
 * capabilities); each says what is still there.
 */
type ZoneUsageCheck = (app: App, zone: ZoneRow) => Promise<string | undefined>;
const usageChecks: ZoneUsageCheck[] = [];

export function onZoneDelete(check: ZoneUsageCheck): void {
  usageChecks.push(check);
}

/** What still lives in a zone, in the order an operator has to remove it. */
async function zoneContents(ctx: CallContext, zone: ZoneRow): Promise<string | undefined> {
  const db = ctx.app.store.db;
  if ((await countHosts(ctx.app, { zoneId: zone.id })) > 0) return 'hosts';
  const live = async (table: 'pods' | 'storage_pools' | 'image_stores' | 'physical_networks') =>
    (await db
      .selectFrom(table)
      .select('id')
      .where('zone_id', '=', zone.id)
      .where('removed', 'is', null)
      .executeTakeFirst()) !== undefined;
  if (await live('pods')) return 'pods';
  if (await live('storage_pools')) return 'primary storage pools';
  if (await live('image_stores')) return 'secondary storage (image stores)';
  if (await live('physical_networks')) return 'physical networks';
  for (const check of usageChecks) {
    const reason = await check(ctx.app, zone);
    if (reason) return reason;
  }
  return undefined;
}

export const deleteZone = defineCommand({
  name: 'deleteZone',
  description:
    'Deletes an empty zone (no hosts, pods, storage, physical networks, networks or ranges left) with its tags and zone-level settings.',
  params: { id: p.uuid({ required: true, description: 'ID of the zone to delete.' }) },
  async handler(ctx, params) {
    const { app } = ctx;
    const zone = await findZone(ctx, params.id);
    const inUse = await zoneContents(ctx, zone);
    if (inUse) throw resourceInUse(`The zone ${zone.name} is not deletable because it still has ${inUse}`);
    await app.store.db.transaction().execute(async (tx) => {
      await tx.updateTable('zones').set({ removed: app.clock.now() }).where('id', '=', zone.id).execute();
      await tx
        .deleteFrom('resource_tags')
        .where('resource_type', '=', 'Zone')
        .where('resource_id', '=', zone.id)
        .execute();
      await tx
        .deleteFrom('scoped_configuration')
        .where('scope', '=', 'zone')
        .where('scope_id', '=', zone.id)
        .execute();
      await logEvent(ctx, tx, {
        type: 'ZONE.DELETE',
        description: `deleting zone ${zone.name}`,
        resourceType: 'Zone',
        resourceId: zone.uuid,
      });
    });
    await app.settings.load();
    return success();
  },
});

export const zoneCommands = [createZone, listZones, updateZone, deleteZone];
