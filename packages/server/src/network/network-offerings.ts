/**
 * Network offerings: the upstream defaults seeded by the migrations, and the offerings operators
 * create. An offering is a list of services, each with its provider, stored as
 * "Service:Provider" pairs in network_offerings.services.
 */
import { formatDate } from '../clock.ts';
import type { NetworkOfferingRow } from '../db/schema.ts';
import { escapeLike } from '../iam/access.ts';
import { findZone, likeOp } from '../infra/common.ts';
import { defineCommand, listResult } from '../registry/command.ts';
import { pageOf } from '../registry/paging.ts';
import { listParams, p } from '../registry/params.ts';
import { findNetwork } from './common.ts';

/** The offering upstream gives a Basic zone's guest network. */
export const BASIC_ZONE_OFFERING = 'DefaultSharedNetworkOfferingWithSGService';
interface Service {
  name: string;
  provider: string;
}

export function servicesOf(offering: Pick<NetworkOfferingRow, 'services'>): Service[] {
  return offering.services
    .split(',')
    .filter((s) => s !== '')
    .map((s) => {
      const [name, provider] = s.split(':');
      return { name: name as string, provider: provider as string };
    });
}

export function presentServices(offering: NetworkOfferingRow): object[] {
  return servicesOf(offering).map((s) => ({ name: s.name, provider: [{ name: s.provider }] }));
}

export function hasServices(offering: NetworkOfferingRow, wanted: string[] | undefined): boolean {
  if (!wanted?.length) return true;
  const names = new Set(servicesOf(offering).map((s) => s.name.toLowerCase()));
  return wanted.every((w) => names.has(w.toLowerCase()));
}

export function presentNetworkOffering(o: NetworkOfferingRow): object {
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
    networkrate: -1,
    state: o.state,
    guestiptype: o.guest_ip_type,
    service: presentServices(o),
    forvpc: false,
    fornsx: false,
    fortungsten: false,
    ispersistent: false,
    egressdefaultpolicy: o.egress_default_policy === 1,
    supportsstrechedl2subnet: false,
    supportspublicaccess: false,
    supportsinternallb: false,
    internetprotocol: 'IPv4',
    created: formatDate(o.created),
    hasannotations: false,
    details: {},
  };
}

export const listNetworkOfferings = defineCommand({
  name: 'listNetworkOfferings',
  params: {
    ...listParams,
    id: p.uuid(),
    name: p.string(),
    displaytext: p.string(),
    traffictype: p.string(),
    guestiptype: p.string(),
    isdefault: p.boolean(),
    specifyvlan: p.boolean(),
    specifyipranges: p.boolean(),
    availability: p.string(),
    state: p.string(),
    zoneid: p.uuid(),
    networkid: p.uuid(),
    supportedservices: p.list(),
    sourcenatsupported: p.boolean(),
    forvpc: p.boolean(),
    domainid: p.uuid(),
    tags: p.string(),
    istagged: p.boolean(),
    routingmode: p.string(),
  },
  async handler(ctx, params) {
    const { app } = ctx;
    // Offerings are public and zone-independent; a zone or network given must still exist.
    if (params.zoneid) await findZone(ctx, params.zoneid);
    let q = app.store.db.selectFrom('network_offerings').where('removed', 'is', null);
    if (params.networkid) {
      const network = await findNetwork(ctx, params.networkid);
      const current = await app.store.db
        .selectFrom('network_offerings')
        .select('guest_ip_type')
        .where('id', '=', network.network_offering_id)
        .executeTakeFirstOrThrow();
      q = q.where('guest_ip_type', '=', current.guest_ip_type);
    }
    if (params.id) q = q.where('uuid', '=', params.id);
    if (params.name) q = q.where('name', '=', params.name);
    if (params.displaytext) q = q.where('display_text', '=', params.displaytext);
    if (params.traffictype) q = q.where('traffic_type', likeOp(ctx), escapeLike(params.traffictype));
    if (params.guestiptype) q = q.where('guest_ip_type', likeOp(ctx), escapeLike(params.guestiptype));
    if (params.isdefault !== undefined) q = q.where('is_default', '=', params.isdefault ? 1 : 0);
    if (params.specifyvlan !== undefined) q = q.where('specify_vlan', '=', params.specifyvlan ? 1 : 0);
    if (params.specifyipranges !== undefined)
      q = q.where('specify_ip_ranges', '=', params.specifyipranges ? 1 : 0);
    if (params.availability) q = q.where('availability', likeOp(ctx), escapeLike(params.availability));
    if (params.state) q = q.where('state', likeOp(ctx), escapeLike(params.state));
    if (params.keyword) q = q.where('name', likeOp(ctx), `%${escapeLike(params.keyword)}%`);
    // No VPC offerings and no tagged offerings exist here.
    if (params.forvpc || params.istagged || params.tags) return listResult([], 0);
    const wanted = [...(params.supportedservices ?? []), ...(params.sourcenatsupported ? ['SourceNat'] : [])];
    const rows = (await q.selectAll().orderBy('id').execute()).filter((o) => hasServices(o, wanted));
    const page = pageOf(app, params);
    const slice = page.limit === undefined ? rows : rows.slice(page.offset, page.offset + page.limit);
    return listResult(slice.map(presentNetworkOffering), rows.length);
  },
});

export const networkOfferingCommands = [listNetworkOfferings];
