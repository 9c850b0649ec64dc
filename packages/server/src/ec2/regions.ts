/** Regions and availability zones: the cloud is one region (ec2.region); its zones are EC2's zones. */
import { defineAction, type Ec2Context, e } from './action.ts';
import { listAll } from './cloudstack.ts';
import { applyFilters, type FilterTable } from './filters.ts';
import { itemSet } from './xml.ts';

/** The endpoint clients use for the region: the one they reached us at. */
function endpointOf(ctx: Ec2Context): string {
  return ctx.cs.origin ? `${ctx.cs.origin}/awsapi` : '/awsapi';
}

export const describeRegions = defineAction({
  name: 'DescribeRegions',
  description: 'Lists the region this cloud is: one, named by the ec2.region setting.',
  params: {
    RegionName: e.list({
      description: "Region names to list; a name other than this cloud's region lists nothing.",
    }),
    Filter: e.filters({ description: 'Filters: endpoint, region-name.' }),
    AllRegions: e.boolean({ description: 'Accepted for compatibility; there is only one region.' }),
  },
  async handler(ctx, params) {
    const region = {
      regionName: ctx.region,
      regionEndpoint: endpointOf(ctx),
      optInStatus: 'opt-in-not-required',
    };
    const table: FilterTable<typeof region> = {
      endpoint: (r) => [r.regionEndpoint],
      'region-name': (r) => [r.regionName],
    };
    let regions = [region];
    if (params.RegionName) regions = regions.filter((r) => params.RegionName!.includes(r.regionName));
    return { regionInfo: itemSet(applyFilters(regions, params.Filter, table)) };
  },
});

interface Zone {
  zoneName: string;
  zoneId: string;
  zoneState: string;
  regionName: string;
  zoneType: string;
  optInStatus: string;
}

export const describeAvailabilityZones = defineAction({
  name: 'DescribeAvailabilityZones',
  description:
    "Lists the cloud's zones the caller may use (listZones) as availability zones: the zone's name is its EC2 name.",
  params: {
    ZoneName: e.list({ description: 'Zone names to list.' }),
    ZoneId: e.list({ description: 'Zone ids (CloudStack zone UUIDs) to list.' }),
    Filter: e.filters({
      description: 'Filters: zone-name, zone-id, state (available or unavailable), region-name.',
    }),
    AllAvailabilityZones: e.boolean({
      description: 'Accepted for compatibility; every zone the caller may use is listed.',
    }),
  },
  async handler(ctx, params) {
    const zones = (await listZones(ctx)).filter(
      (z) =>
        (!params.ZoneName || params.ZoneName.includes(z.zoneName)) &&
        (!params.ZoneId || params.ZoneId.includes(z.zoneId)),
    );
    const table: FilterTable<Zone> = {
      'zone-name': (z) => [z.zoneName],
      'zone-id': (z) => [z.zoneId],
      state: (z) => [z.zoneState],
      'region-name': (z) => [z.regionName],
    };
    return { availabilityZoneInfo: itemSet(applyFilters(zones, params.Filter, table)) };
  },
});

export async function listZones(ctx: Ec2Context): Promise<Zone[]> {
  const zones = await listAll<{ id: string; name: string; allocationstate: string }>(
    ctx,
    'listZones',
    'zone',
    {
      available: true,
    },
  );
  return zones.map((z) => ({
    zoneName: z.name,
    zoneId: z.id,
    zoneState: z.allocationstate === 'Disabled' ? 'unavailable' : 'available',
    regionName: ctx.region,
    zoneType: 'availability-zone',
    optInStatus: 'opt-in-not-required',
  }));
}
