/**
 * Volumes and snapshots: CloudStack's data volumes (createVolume, listVolumes, attachVolume,
 * detachVolume, deleteVolume) and volume snapshots (createSnapshot, listSnapshots,
 * deleteSnapshot). A volume's VolumeType is its disk offering's name; a Size without a type
 * takes the first customized disk offering. Root disks are volumes too, attached to their
 * instance, as EBS root volumes are.
 */
import { ApiError, ErrorCode } from '../errors.ts';
import { defineAction, type Ec2Context, e } from './action.ts';
import { type CsParams, listAll, listedById, listPage, runCommand, runToCompletion } from './cloudstack.ts';
import { Ec2Error, invalidValue, missingParameter } from './errors.ts';
import {
  applyFilters,
  exactValue,
  exactValues,
  type FilterTable,
  matcher,
  paginate,
  tagParams,
} from './filters.ts';
import { notFound, toEc2Id, toUuid } from './ids.ts';
import { isoTime, tagSet, tagsOf, tagsParam } from './present.ts';
import { listZones } from './regions.ts';
import { itemSet } from './xml.ts';

const GiB = 1024 ** 3;

interface Volume {
  id: string;
  type: string;
  state: string;
  size: number;
  zonename?: string;
  account?: string;
  virtualmachineid?: string;
  deviceid?: number;
  attached?: string;
  diskofferingname?: string;
  created?: string;
  snapshotid?: string;
  tags?: { key: string; value: string }[];
}

interface Snapshot {
  id: string;
  name: string;
  account?: string;
  volumeid?: string;
  state: string;
  virtualsize: number;
  created?: string;
  tags?: { key: string; value: string }[];
}

export interface DiskOffering {
  id: string;
  name: string;
  iscustomized?: boolean;
  disksize?: number;
}

/**
 * The disk offering of a VolumeType (its name), or the first customized one without a type; a
 * fixed-size offering must be the size asked for.
 */
export async function diskOfferingFor(
  ctx: Ec2Context,
  volumeType: string | undefined,
  size: number | undefined,
): Promise<DiskOffering> {
  const offerings = await listAll<DiskOffering>(ctx, 'listDiskOfferings', 'diskoffering');
  const offering = volumeType
    ? offerings.find((o) => o.name === volumeType)
    : offerings.find((o) => o.iscustomized);
  if (!offering)
    throw invalidValue('VolumeType', volumeType ?? '', 'No such disk offering (or no customized one).');
  if (!offering.iscustomized && size !== undefined && size !== offering.disksize)
    throw invalidValue('Size', String(size), `The ${offering.name} offering is ${offering.disksize} GiB.`);
  return offering;
}

/** EC2's volume status for a CloudStack volume. */
function volumeStatus(v: Volume): string {
  if (v.state === 'Ready' || v.state === 'Allocated') return v.virtualmachineid ? 'in-use' : 'available';
  if (/^(Creating|Allocating|Uploaded|Copying|Migrating|Resizing|Snapshotting)$/.test(v.state))
    return 'creating';
  if (/^(Destroy|Expunging|Expunged)$/.test(v.state)) return 'deleting';
  return 'error';
}

const snapshotStatus = (s: Snapshot) =>
  s.state === 'BackedUp' ? 'completed' : s.state === 'Error' ? 'error' : 'pending';

/** /dev/vdb, /dev/sdb, /dev/xvdb → device 1 (the root disk is 0). */
function deviceId(device: string): number {
  const m = device.match(/^\/dev\/(?:x?vd|sd)([b-z])$/);
  if (!m) throw invalidValue('Device', device, 'Give /dev/vdb … /dev/vdz (or the sd/xvd names).');
  return m[1].charCodeAt(0) - 'a'.charCodeAt(0);
}

const deviceName = (id: number | undefined) => `/dev/vd${String.fromCharCode(97 + (id ?? 0))}`;

function presentVolume(v: Volume): Record<string, unknown> {
  return {
    volumeId: toEc2Id('volume', v.id),
    size: Math.ceil(v.size / GiB),
    snapshotId: v.snapshotid ? toEc2Id('snapshot', v.snapshotid) : '',
    availabilityZone: v.zonename,
    status: volumeStatus(v),
    createTime: isoTime(v.created),
    attachmentSet: itemSet(
      v.virtualmachineid
        ? [
            {
              volumeId: toEc2Id('volume', v.id),
              instanceId: toEc2Id('instance', v.virtualmachineid),
              device: deviceName(v.deviceid),
              status: 'attached',
              attachTime: isoTime(v.attached),
              deleteOnTermination: v.type === 'ROOT',
            },
          ]
        : [],
    ),
    volumeType: v.diskofferingname ?? 'root',
    encrypted: false,
    multiAttachEnabled: false,
    tagSet: tagSet(tagsOf(v)),
  };
}

export async function volumeNamed(ctx: Ec2Context, id: string): Promise<Volume> {
  const uuid = toUuid('volume', id);
  const v = await listedById<Volume>(ctx, 'listVolumes', 'volume', uuid);
  if (!v) throw notFound('volume', id);
  return v;
}

export async function snapshotNamed(ctx: Ec2Context, id: string): Promise<Snapshot> {
  const uuid = toUuid('snapshot', id);
  const s = await listedById<Snapshot>(ctx, 'listSnapshots', 'snapshot', uuid);
  if (!s) throw notFound('snapshot', id);
  return s;
}

export const createVolume = defineAction({
  name: 'CreateVolume',
  description:
    'Creates a data volume (createVolume) of a size, or from a snapshot, in a zone; VolumeType names the disk offering.',
  params: {
    AvailabilityZone: e.string({ required: true, description: 'The zone of the volume.' }),
    Size: e.int({
      min: 1,
      max: 16384,
      description: 'Size in GiB; with a fixed-size VolumeType it must be that size.',
    }),
    SnapshotId: e.string({ description: 'A snapshot (snap-…) to make the volume from.' }),
    VolumeType: e.string({
      description: 'A disk offering name; the first customized offering when omitted.',
    }),
    TagSpecification: e.tagSpecifications({ description: 'Tags for the volume (ResourceType volume).' }),
  },
  async handler(ctx, params) {
    const zone = (await listZones(ctx)).find((z) => z.zoneName === params.AvailabilityZone);
    if (!zone)
      throw new Ec2Error('InvalidZone.NotFound', `The zone '${params.AvailabilityZone}' does not exist.`);
    for (const spec of params.TagSpecification ?? [])
      if (spec.resourceType !== 'volume')
        throw invalidValue(
          'TagSpecification.ResourceType',
          spec.resourceType,
          'Only volume tags can be given.',
        );
    const snapshot = params.SnapshotId ? await snapshotNamed(ctx, params.SnapshotId) : undefined;
    if (!snapshot && params.Size === undefined) throw missingParameter('Size');
    const offering =
      params.VolumeType !== undefined || !snapshot
        ? await diskOfferingFor(ctx, params.VolumeType, params.Size)
        : undefined;
    // createVolume records the volume at once (its id comes back with the job's).
    const { id } = (await runCommand(ctx, 'createVolume', {
      zoneid: zone.zoneId,
      diskofferingid: offering?.id,
      size: offering?.iscustomized ? params.Size : undefined,
      snapshotid: snapshot?.id,
    })) as { id: string };
    const tags = (params.TagSpecification ?? []).flatMap((s) => s.tags);
    if (tags.length)
      await runToCompletion(ctx, 'createTags', {
        resourcetype: 'Volume',
        resourceids: id,
        tags: tagsParam(tags),
      });
    return presentVolume(await volumeNamed(ctx, toEc2Id('volume', id)));
  },
});

const VOLUME_FILTERS: FilterTable<Volume> = {
  'volume-id': (v) => [toEc2Id('volume', v.id)],
  status: (v) => [volumeStatus(v)],
  size: (v) => [String(Math.ceil(v.size / GiB))],
  'availability-zone': (v) => [v.zonename],
  'volume-type': (v) => [v.diskofferingname],
  'attachment.instance-id': (v) => [v.virtualmachineid ? toEc2Id('instance', v.virtualmachineid) : undefined],
  'attachment.device': (v) => [v.virtualmachineid ? deviceName(v.deviceid) : undefined],
  'create-time': (v) => [isoTime(v.created)],
};

export const describeVolumes = defineAction({
  name: 'DescribeVolumes',
  description: "Lists the caller's volumes (listVolumes), root disks included, with their attachments.",
  params: {
    VolumeId: e.list({ description: 'Volumes to list (vol-…); an unknown one is InvalidVolume.NotFound.' }),
    Filter: e.filters({
      description:
        'Filters: volume-id, status, size, availability-zone, volume-type, attachment.instance-id, attachment.device, create-time, tag:Key, tag-key, tag-value.',
    }),
    MaxResults: e.int({
      min: 5,
      description: 'At most this many volumes in one answer (at least 5; more than 500 gives 500, as EC2).',
    }),
    NextToken: e.string({ description: 'Where the previous answer stopped.' }),
  },
  async handler(ctx, params) {
    const matches = matcher(params.Filter, VOLUME_FILTERS, tagsOf);
    if (params.VolumeId) {
      const named = await Promise.all(params.VolumeId.map((id) => volumeNamed(ctx, id)));
      return { volumeSet: itemSet(named.filter(matches).map(presentVolume)) };
    }
    // The filters listVolumes applies itself narrow what is read; a page at a time of its pages.
    const f = params.Filter;
    const instance = exactValue(f, 'attachment.instance-id');
    const zone = exactValue(f, 'availability-zone');
    const cs: CsParams = { tags: tagParams(f) };
    if (instance !== undefined) {
      if (!/^i-[0-9a-f]{32}$/.test(instance)) return { volumeSet: '' };
      cs.virtualmachineid = toUuid('instance', instance);
    }
    if (zone !== undefined) {
      const found = (await listZones(ctx)).find((z) => z.zoneName === zone);
      if (!found) return { volumeSet: '' };
      cs.zoneid = found.zoneId;
    }
    const { page, nextToken } =
      params.MaxResults === undefined && params.NextToken === undefined
        ? {
            page: (await listAll<Volume>(ctx, 'listVolumes', 'volume', cs)).filter(matches),
            nextToken: undefined,
          }
        : await listPage<Volume>(
            ctx,
            { name: 'listVolumes', objectName: 'volume', table: 'volumes' },
            cs,
            matches,
            Math.min(params.MaxResults ?? 500, 500),
            params.NextToken,
          );
    return { volumeSet: itemSet(page.map(presentVolume)), nextToken };
  },
});

export const attachVolume = defineAction({
  name: 'AttachVolume',
  description:
    'Attaches a data volume to an instance (attachVolume); the answer says attaching while the job runs.',
  params: {
    VolumeId: e.string({ required: true, description: 'The volume (vol-…).' }),
    InstanceId: e.string({ required: true, description: 'The instance (i-…).' }),
    Device: e.string({
      required: true,
      description: 'The device: /dev/vdb … /dev/vdz (sdX and xvdX name the same slots).',
    }),
  },
  async handler(ctx, params) {
    const volume = await volumeNamed(ctx, params.VolumeId!);
    const uuid = toUuid('instance', params.InstanceId!);
    const vms = await listAll<{ id: string }>(ctx, 'listVirtualMachines', 'virtualmachine');
    if (!vms.some((vm) => vm.id === uuid)) throw notFound('instance', params.InstanceId!);
    if (volume.virtualmachineid)
      throw new Ec2Error('VolumeInUse', `${params.VolumeId} is already attached to an instance`);
    const device = deviceId(params.Device!);
    await runCommand(ctx, 'attachVolume', { id: volume.id, virtualmachineid: uuid, deviceid: device });
    return {
      volumeId: params.VolumeId,
      instanceId: params.InstanceId,
      device: deviceName(device),
      status: 'attaching',
      attachTime: new Date(ctx.app.clock.now()).toISOString(),
    };
  },
});

export const detachVolume = defineAction({
  name: 'DetachVolume',
  description: 'Detaches a data volume from its instance (detachVolume).',
  params: {
    VolumeId: e.string({ required: true, description: 'The volume (vol-…).' }),
    InstanceId: e.string({ description: 'If given, the instance it must be attached to.' }),
    Device: e.string({ description: 'Accepted for compatibility; the volume says where it is attached.' }),
    Force: e.boolean({ description: 'Accepted for compatibility; detaching is always the same.' }),
  },
  async handler(ctx, params) {
    const volume = await volumeNamed(ctx, params.VolumeId!);
    if (!volume.virtualmachineid)
      throw new Ec2Error('IncorrectState', `Volume ${params.VolumeId} is not attached.`);
    const instanceId = toEc2Id('instance', volume.virtualmachineid);
    if (params.InstanceId !== undefined && params.InstanceId !== instanceId)
      throw new Ec2Error(
        'IncorrectState',
        `Volume ${params.VolumeId} is not attached to ${params.InstanceId}.`,
      );
    await runCommand(ctx, 'detachVolume', { id: volume.id });
    return {
      volumeId: params.VolumeId,
      instanceId,
      device: deviceName(volume.deviceid),
      status: 'detaching',
      attachTime: isoTime(volume.attached),
    };
  },
});

export const deleteVolume = defineAction({
  name: 'DeleteVolume',
  description: 'Deletes a detached data volume (deleteVolume).',
  params: { VolumeId: e.string({ required: true, description: 'The volume (vol-…).' }) },
  async handler(ctx, params) {
    const volume = await volumeNamed(ctx, params.VolumeId!);
    if (volume.virtualmachineid)
      throw new Ec2Error('VolumeInUse', `Volume ${params.VolumeId} is attached to an instance.`);
    await runToCompletion(ctx, 'deleteVolume', { id: volume.id });
    return { return: true };
  },
});

function presentSnapshot(s: Snapshot): Record<string, unknown> {
  return {
    snapshotId: toEc2Id('snapshot', s.id),
    volumeId: s.volumeid ? toEc2Id('volume', s.volumeid) : undefined,
    status: snapshotStatus(s),
    startTime: isoTime(s.created),
    progress: snapshotStatus(s) === 'completed' ? '100%' : '0%',
    ownerId: s.account,
    volumeSize: Math.ceil(s.virtualsize / GiB),
    description: s.name,
    encrypted: false,
    tagSet: tagSet(tagsOf(s)),
  };
}

export const createSnapshot = defineAction({
  name: 'CreateSnapshot',
  description: 'Takes a snapshot of a volume (createSnapshot); it is pending until the job has backed it up.',
  params: {
    VolumeId: e.string({ required: true, description: 'The volume (vol-…).' }),
    Description: e.string({ description: "The snapshot's name in CloudStack (its description in EC2)." }),
    TagSpecification: e.tagSpecifications({ description: 'Tags for the snapshot (ResourceType snapshot).' }),
  },
  async handler(ctx, params) {
    for (const spec of params.TagSpecification ?? [])
      if (spec.resourceType !== 'snapshot')
        throw invalidValue(
          'TagSpecification.ResourceType',
          spec.resourceType,
          'Only snapshot tags can be given.',
        );
    const volume = await volumeNamed(ctx, params.VolumeId!);
    const { id } = (await runCommand(ctx, 'createSnapshot', {
      volumeid: volume.id,
      name: params.Description,
    })) as {
      id: string;
    };
    const tags = (params.TagSpecification ?? []).flatMap((s) => s.tags);
    if (tags.length)
      await runToCompletion(ctx, 'createTags', {
        resourcetype: 'Snapshot',
        resourceids: id,
        tags: tagsParam(tags),
      });
    return presentSnapshot(await snapshotNamed(ctx, toEc2Id('snapshot', id)));
  },
});

const SNAPSHOT_FILTERS: FilterTable<Snapshot> = {
  'snapshot-id': (s) => [toEc2Id('snapshot', s.id)],
  'volume-id': (s) => [s.volumeid ? toEc2Id('volume', s.volumeid) : undefined],
  status: (s) => [snapshotStatus(s)],
  description: (s) => [s.name],
  'owner-id': (s) => [s.account],
  'start-time': (s) => [isoTime(s.created)],
};

export const describeSnapshots = defineAction({
  name: 'DescribeSnapshots',
  description: "Lists the caller's volume snapshots (listSnapshots).",
  params: {
    SnapshotId: e.list({
      description: 'Snapshots to list (snap-…); an unknown one is InvalidSnapshot.NotFound.',
    }),
    Owner: e.list({ description: "Owners: self (the caller's account) or account names." }),
    Filter: e.filters({
      description:
        'Filters: snapshot-id, volume-id, status, description, owner-id, start-time, tag:Key, tag-key, tag-value.',
    }),
    MaxResults: e.int({ min: 5, max: 1000, description: 'At most this many snapshots in one answer.' }),
    NextToken: e.string({ description: 'Where the previous answer stopped.' }),
  },
  async handler(ctx, params) {
    // listSnapshots answers newest first: it narrows by the filters it applies itself
    // (snapshot-id, volume-id, tag:Key), the page is cut here.
    const f = params.Filter;
    const volume = exactValue(f, 'volume-id');
    const ids = exactValues(f, 'snapshot-id')?.filter((id) => /^snap-[0-9a-f]{32}$/.test(id));
    let snaps: Snapshot[];
    if (params.SnapshotId) snaps = await Promise.all(params.SnapshotId.map((id) => snapshotNamed(ctx, id)));
    else if (ids?.length === 0 || (volume !== undefined && !/^vol-[0-9a-f]{32}$/.test(volume))) snaps = [];
    else {
      const cs: CsParams = {
        tags: tagParams(f),
        volumeid: volume !== undefined ? toUuid('volume', volume) : undefined,
        ids: ids?.map((id) => toUuid('snapshot', id)).join(','),
      };
      snaps = await listAll<Snapshot>(ctx, 'listSnapshots', 'snapshot', cs).catch(async (err) => {
        // A snapshot-id value that names nothing: listSnapshots refuses it; filtered here instead.
        if (!(cs.ids && err instanceof ApiError && err.errorcode === ErrorCode.PARAM_ERROR)) throw err;
        return listAll<Snapshot>(ctx, 'listSnapshots', 'snapshot', { ...cs, ids: undefined });
      });
    }
    if (params.Owner) {
      const owners = params.Owner.map((o) => (o === 'self' ? ctx.caller.account.name : o));
      snaps = snaps.filter((s) => s.account !== undefined && owners.includes(s.account));
    }
    const filtered = applyFilters(snaps, params.Filter, SNAPSHOT_FILTERS, tagsOf);
    const { page, nextToken } = paginate(
      filtered,
      (s) => `${isoTime(s.created) ?? ''}/${s.id}`,
      params.MaxResults,
      params.NextToken,
    );
    return { snapshotSet: itemSet(page.map(presentSnapshot)), nextToken };
  },
});

export const deleteSnapshot = defineAction({
  name: 'DeleteSnapshot',
  description: 'Deletes a snapshot (deleteSnapshot) and answers when it is gone.',
  params: { SnapshotId: e.string({ required: true, description: 'The snapshot (snap-…).' }) },
  async handler(ctx, params) {
    const snap = await snapshotNamed(ctx, params.SnapshotId!);
    await runToCompletion(ctx, 'deleteSnapshot', { id: snap.id });
    return { return: true };
  },
});

export const volumeActions = [
  createVolume,
  describeVolumes,
  attachVolume,
  detachVolume,
  deleteVolume,
  createSnapshot,
  describeSnapshots,
  deleteSnapshot,
];
