/**
 * One declaration per EC2 action, in the spirit of defineCommand: its name, what it does, its
 * parameters (wire name, kind, description) and its handler. EC2 actions are not CloudStack
 * commands: they are not in the catalog nor in listApis; `ec2/actions.ts` lists them.
 *
 * EC2's Query protocol flattens structures into dotted names: lists are `Name.1`, `Name.2` …,
 * filters `Filter.N.Name` / `Filter.N.Value.M`, tags `Tag.N.Key` / `Tag.N.Value`. The kinds
 * below read those forms; parameters are case-sensitive as in EC2.
 */
import type { App, CallContext, Caller } from '../context.ts';
import { invalidValue, missingParameter } from './errors.ts';

/** What a handler gets: the CloudStack call context of the caller, and the request's facts. */
export interface Ec2Context {
  app: App;
  caller: Caller;
  /** The context CloudStack commands run in for this caller. */
  cs: CallContext;
  region: string;
  requestId: string;
  /**
   * DryRun=true: the action runs its checks and lookups, and stops at the first CloudStack
   * command that would change something (cloudstack.ts), answering DryRunOperation when the
   * caller's role allows that command and UnauthorizedOperation when not.
   */
  dryRun: boolean;
}

export type Filters = Map<string, string[]>;
export interface Tag {
  key: string;
  value: string | undefined;
}
export interface TagSpecification {
  resourceType: string;
  tags: Tag[];
}

interface ParamKind<T> {
  kind: string;
  description: string;
  required?: boolean;
  read(raw: Map<string, string>, name: string): T | undefined;
}

type Spec = { description: string; required?: boolean };

/** Keys `prefix.N…` grouped by N, in N's order. */
function indexed(raw: Map<string, string>, prefix: string): [number, Map<string, string>][] {
  const groups = new Map<number, Map<string, string>>();
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}\\.(\\d+)(?:\\.(.+))?$`);
  for (const [k, v] of raw) {
    const m = k.match(re);
    if (!m) continue;
    const n = Number(m[1]);
    if (!groups.has(n)) groups.set(n, new Map());
    groups.get(n)!.set(m[2] ?? '', v);
  }
  return [...groups.entries()].sort(([a], [b]) => a - b);
}

function readTags(raw: Map<string, string>, prefix: string): Tag[] {
  return indexed(raw, prefix).map(([n, fields]) => {
    const key = fields.get('Key');
    if (key === undefined) throw missingParameter(`${prefix}.${n}.Key`);
    return { key, value: fields.get('Value') };
  });
}

/** One IpPermissions entry of Authorize/RevokeSecurityGroup*. */
export interface IpPermission {
  ipProtocol: string;
  fromPort?: number;
  toPort?: number;
  cidrs: string[];
  /** Peer groups: by id (sg-…), or by name in an account (UserId; the caller's when absent). */
  groups: { groupId?: string; groupName?: string; userId?: string }[];
}

/** An integer field of a structured parameter (ports, sizes). */
function port(fields: Map<string, string>, name: string, where: string): number | undefined {
  const v = fields.get(name);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw invalidValue(`${where}.${name}`, v, 'It must be an integer.');
  return Number(v);
}

/** One BlockDeviceMapping entry of RunInstances. */
export interface BlockDevice {
  deviceName: string;
  volumeSize?: number;
  volumeType?: string;
}

export const e = {
  string: (spec: Spec): ParamKind<string> => ({
    kind: 'String',
    ...spec,
    read: (raw, name) => raw.get(name),
  }),
  int: (spec: Spec & { min?: number; max?: number }): ParamKind<number> => ({
    kind: 'Integer',
    ...spec,
    read(raw, name) {
      const v = raw.get(name);
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n))
        throw invalidValue(name, v, 'It must be an integer.');
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
        throw invalidValue(name, v, `It must be between ${spec.min ?? '-'} and ${spec.max ?? '-'}.`);
      return n;
    },
  }),
  boolean: (spec: Spec): ParamKind<boolean> => ({
    kind: 'Boolean',
    ...spec,
    read(raw, name) {
      const v = raw.get(name);
      if (v === undefined) return undefined;
      if (!/^(true|false)$/i.test(v)) throw invalidValue(name, v, 'It must be true or false.');
      return v.toLowerCase() === 'true';
    },
  }),
  /** `Name.1`, `Name.2` …: a list of strings. */
  list: (spec: Spec): ParamKind<string[]> => ({
    kind: 'List of String',
    ...spec,
    read(raw, name) {
      const items = indexed(raw, name)
        .map(([, f]) => f.get(''))
        .filter((v): v is string => v !== undefined);
      return items.length ? items : undefined;
    },
  }),
  /** `Filter.N.Name` with `Filter.N.Value.M`: filter name → accepted values. */
  filters: (spec: Spec): ParamKind<Filters> => ({
    kind: 'List of Filter',
    ...spec,
    read(raw, name) {
      const out: Filters = new Map();
      for (const [n, fields] of indexed(raw, name)) {
        const filterName = fields.get('Name');
        if (filterName === undefined) throw missingParameter(`${name}.${n}.Name`);
        const values = [...fields.entries()]
          .filter(([k]) => /^Value\.\d+$/.test(k))
          .sort(([a], [b]) => Number(a.slice(6)) - Number(b.slice(6)))
          .map(([, v]) => v);
        out.set(filterName, [...(out.get(filterName) ?? []), ...values]);
      }
      return out.size ? out : undefined;
    },
  }),
  /** `Tag.N.Key` / `Tag.N.Value`. */
  tags: (spec: Spec): ParamKind<Tag[]> => ({
    kind: 'List of Tag',
    ...spec,
    read(raw, name) {
      const tags = readTags(raw, name);
      return tags.length ? tags : undefined;
    },
  }),
  /** `TagSpecification.N.ResourceType` with `TagSpecification.N.Tag.M.Key/Value`. */
  tagSpecifications: (spec: Spec): ParamKind<TagSpecification[]> => ({
    kind: 'List of TagSpecification',
    ...spec,
    read(raw, name) {
      const specs = indexed(raw, name).map(([n, fields]) => {
        const resourceType = fields.get('ResourceType');
        if (resourceType === undefined) throw missingParameter(`${name}.${n}.ResourceType`);
        return { resourceType, tags: readTags(fields, 'Tag') };
      });
      return specs.length ? specs : undefined;
    },
  }),
  /** `BlockDeviceMapping.N.DeviceName` with `.Ebs.VolumeSize` and `.Ebs.VolumeType`. */
  blockDeviceMappings: (spec: Spec): ParamKind<BlockDevice[]> => ({
    kind: 'List of BlockDeviceMapping',
    ...spec,
    read(raw, name) {
      const devices = indexed(raw, name).map(([n, fields]) => {
        const where = `${name}.${n}`;
        const deviceName = fields.get('DeviceName');
        if (deviceName === undefined) throw missingParameter(`${where}.DeviceName`);
        return {
          deviceName,
          volumeSize: port(fields, 'Ebs.VolumeSize', where),
          volumeType: fields.get('Ebs.VolumeType'),
        };
      });
      return devices.length ? devices : undefined;
    },
  }),
  /**
   * `IpPermissions.N.IpProtocol`, `.FromPort`, `.ToPort`, `.IpRanges.M.CidrIp`,
   * `.Groups.M.GroupId` / `.GroupName` / `.UserId`.
   */
  ipPermissions: (spec: Spec): ParamKind<IpPermission[]> => ({
    kind: 'List of IpPermission',
    ...spec,
    read(raw, name) {
      const perms = indexed(raw, name).map(([n, fields]) => {
        const where = `${name}.${n}`;
        const ipProtocol = fields.get('IpProtocol');
        if (ipProtocol === undefined) throw missingParameter(`${where}.IpProtocol`);
        return {
          ipProtocol,
          fromPort: port(fields, 'FromPort', where),
          toPort: port(fields, 'ToPort', where),
          cidrs: indexed(fields, 'IpRanges')
            .map(([, f]) => f.get('CidrIp'))
            .filter((c): c is string => c !== undefined),
          groups: indexed(fields, 'Groups').map(([, f]) => ({
            groupId: f.get('GroupId'),
            groupName: f.get('GroupName'),
            userId: f.get('UserId'),
          })),
        };
      });
      return perms.length ? perms : undefined;
    },
  }),
};

type ParamsOf<P extends Record<string, ParamKind<unknown>>> = {
  [K in keyof P]: P[K] extends ParamKind<infer T> ? T | undefined : never;
};

export interface Ec2Action<
  P extends Record<string, ParamKind<unknown>> = Record<string, ParamKind<unknown>>,
> {
  name: string;
  description: string;
  params: P;
  /** The response's content, below `<{name}Response>` and its requestId. */
  handler(ctx: Ec2Context, params: ParamsOf<P>): Promise<Record<string, unknown>>;
}

export function defineAction<P extends Record<string, ParamKind<unknown>>>(action: Ec2Action<P>): Ec2Action {
  return action as unknown as Ec2Action;
}

/** Reads the declared parameters (others are ignored, as EC2 ignores unknown ones); required ones must be there. */
export function readParams(action: Ec2Action, raw: Map<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, kind] of Object.entries(action.params)) {
    const value = kind.read(raw, name);
    if (value === undefined && kind.required) throw missingParameter(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}
