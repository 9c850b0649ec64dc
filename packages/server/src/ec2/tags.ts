/**
 * Tags are CloudStack's resource tags (createTags, deleteTags, listTags). An EC2 id's prefix
 * says the resource type: i- UserVm, vol- Volume, snap- Snapshot, sg- SecurityGroup. Tags are
 * written when the answer comes (the tag jobs are waited for).
 */
import { defineAction, type Ec2Context, e, type Tag } from './action.ts';
import { type CsParams, listAll, runToCompletion } from './cloudstack.ts';
import { Ec2Error } from './errors.ts';
import { applyFilters, exactValue, type FilterTable, paginate } from './filters.ts';
import { type IdKind, kindOf, toEc2Id, toUuid } from './ids.ts';
import { instancesNamed } from './instances.ts';
import { tagsParam } from './present.ts';
import { groupNamed } from './security-groups.ts';
import { snapshotNamed, volumeNamed } from './volumes.ts';
import { itemSet } from './xml.ts';

/** EC2 resource kinds that carry tags: their CloudStack resource type and EC2 resource-type name. */
const TAGGABLE: Partial<Record<IdKind, { csType: string; ec2Type: string }>> = {
  instance: { csType: 'UserVm', ec2Type: 'instance' },
  volume: { csType: 'Volume', ec2Type: 'volume' },
  snapshot: { csType: 'Snapshot', ec2Type: 'snapshot' },
  securityGroup: { csType: 'SecurityGroup', ec2Type: 'security-group' },
};

/** Resource ids grouped by CloudStack resource type, as UUIDs. */
function byType(ids: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const id of ids) {
    const kind = kindOf(id);
    const taggable = kind && TAGGABLE[kind];
    if (!kind || !taggable) throw new Ec2Error('InvalidID', `The ID '${id}' is not valid`);
    out.set(taggable.csType, [...(out.get(taggable.csType) ?? []), toUuid(kind, id)]);
  }
  return out;
}

const resourceIds = e.list({ required: true, description: 'The resources (i-, vol-, snap-, sg- ids).' });

export const createTags = defineAction({
  name: 'CreateTags',
  description: 'Adds or overwrites tags on resources (createTags per resource type).',
  params: { ResourceId: resourceIds, Tag: e.tags({ required: true, description: 'The tags (Key, Value).' }) },
  async handler(ctx, params) {
    await changeTags(ctx, 'createTags', params.ResourceId!, params.Tag!);
    return { return: true };
  },
});

export const deleteTags = defineAction({
  name: 'DeleteTags',
  description:
    'Removes tags from resources (deleteTags): a Key alone removes that key, Key with Value only that pair, no Tag every tag.',
  params: { ResourceId: resourceIds, Tag: e.tags({ description: 'The tags to remove.' }) },
  async handler(ctx, params) {
    await changeTags(ctx, 'deleteTags', params.ResourceId!, params.Tag);
    return { return: true };
  },
});

/**
 * Fails with the resource's `….NotFound` unless the caller sees every resource named: CloudStack's
 * tag commands would say 531 for another account's resource, which tells that it exists.
 */
async function checkVisible(ctx: Ec2Context, ids: string[]): Promise<void> {
  const instances = ids.filter((id) => kindOf(id) === 'instance');
  if (instances.length) await instancesNamed(ctx, instances);
  for (const id of ids) {
    const kind = kindOf(id);
    if (kind === 'volume') await volumeNamed(ctx, id);
    else if (kind === 'snapshot') await snapshotNamed(ctx, id);
    else if (kind === 'securityGroup') await groupNamed(ctx, id, undefined);
  }
}

async function changeTags(ctx: Ec2Context, command: string, ids: string[], tags: Tag[] | undefined) {
  for (const t of tags ?? [])
    if (t.key.startsWith('aws:'))
      throw new Ec2Error(
        'InvalidParameterValue',
        "Tag keys starting with 'aws:' are reserved for internal use",
      );
  const grouped = byType(ids);
  await checkVisible(ctx, ids);
  for (const [type, uuids] of grouped) {
    // createTags sets a value; deleteTags takes a key alone (value omitted) as "any value".
    const map = tags?.length
      ? command === 'createTags'
        ? tagsParam(tags)
        : Object.fromEntries(
            tags.map((t, i): [string, Record<string, string>] => [
              String(i),
              t.value === undefined ? { key: t.key } : { key: t.key, value: t.value },
            ]),
          )
      : undefined;
    await runToCompletion(ctx, command, { resourcetype: type, resourceids: uuids.join(','), tags: map });
  }
}

interface CsTag {
  key: string;
  value: string;
  resourcetype: string;
  resourceid: string;
}

interface Ec2Tag {
  resourceId: string;
  resourceType: string;
  key: string;
  value: string;
}

const FILTERS: FilterTable<Ec2Tag> = {
  'resource-id': (t) => [t.resourceId],
  'resource-type': (t) => [t.resourceType],
  key: (t) => [t.key],
  value: (t) => [t.value],
};

export const describeTags = defineAction({
  name: 'DescribeTags',
  description: "Lists the tags on the caller's instances, volumes, snapshots and security groups (listTags).",
  params: {
    Filter: e.filters({
      description:
        'Filters: resource-id, resource-type (instance, volume, snapshot, security-group), key, value.',
    }),
    MaxResults: e.int({ min: 5, max: 1000, description: 'At most this many tags in one answer.' }),
    NextToken: e.string({ description: 'Where the previous answer stopped.' }),
  },
  async handler(ctx, params) {
    const kinds = Object.entries(TAGGABLE) as [IdKind, { csType: string; ec2Type: string }][];
    // What listTags can match itself (exact key, value, resource id and type) narrows the read.
    const f = params.Filter;
    const cs: CsParams = { key: exactValue(f, 'key'), value: exactValue(f, 'value') };
    const type = exactValue(f, 'resource-type');
    if (type !== undefined) {
      const kind = kinds.find(([, v]) => v.ec2Type === type);
      if (!kind) return { tagSet: '' };
      cs.resourcetype = kind[1].csType;
    }
    const resource = exactValue(f, 'resource-id');
    if (resource !== undefined) {
      const kind = kindOf(resource);
      const taggable = kind && TAGGABLE[kind];
      if (!kind || !taggable || !/^[a-z]+-[0-9a-f]{32}$/.test(resource)) return { tagSet: '' };
      cs.resourceid = toUuid(kind, resource);
      cs.resourcetype = taggable.csType;
    }
    const tags: Ec2Tag[] = [];
    for (const t of await listAll<CsTag>(ctx, 'listTags', 'tag', cs)) {
      const kind = kinds.find(([, v]) => v.csType.toLowerCase() === t.resourcetype.toLowerCase());
      if (kind)
        tags.push({
          resourceId: toEc2Id(kind[0], t.resourceid),
          resourceType: kind[1].ec2Type,
          key: t.key,
          value: t.value,
        });
    }
    const filtered = applyFilters(tags, params.Filter, FILTERS);
    const { page, nextToken } = paginate(
      filtered,
      (t) => `${t.resourceId}\u0000${t.key}`,
      params.MaxResults,
      params.NextToken,
    );
    return { tagSet: itemSet(page), nextToken };
  },
});

export const tagActions = [createTags, deleteTags, describeTags];
