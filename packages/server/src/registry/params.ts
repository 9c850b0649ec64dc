/**
 * Parameter specifications for command declarations. Each spec knows its CloudStack type (for
 * listApis), whether it is required, and how to turn the raw request value into a typed value,
 * failing with the upstream 431 messages.
 */
import { parseApiDate } from '../clock.ts';
import { invalidParameter } from '../errors.ts';

/** A raw request value: a string, or for map parameters {index: {field: value}}. */
export type RawValue = string | Record<string, Record<string, string>>;

export interface ParamSpec<T = unknown, Req extends boolean = boolean> {
  type: 'string' | 'uuid' | 'boolean' | 'integer' | 'long' | 'double' | 'date' | 'list' | 'map';
  required: Req;
  length?: number;
  collectionType?: string;
  /** Admin-only parameters are hidden from others in listApis and rejected for them. */
  adminOnly?: boolean;
  /** What the parameter does in Nimbostack, in our words: listApis, docs and the CLI's help serve it. */
  description?: string;
  /**
   * The handler reads the entity this uuid names anyway and answers an unknown one with the entity
   * check's own 431 (invalidUuidText), so the check's query is skipped (http/entity-refs.ts): one
   * round trip less on the hottest calls.
   */
  checkedByHandler?: boolean;
  /**
   * The entity check reads this uuid's whole row, not just its uuid, and hands it to the command's
   * `create` (its `entities`), which would read the same row again: one round trip less.
   */
  handedToCommand?: boolean;
  parse(raw: RawValue, name: string): T;
}

export type ParamsOf<S extends Record<string, ParamSpec>> = {
  [K in keyof S]: S[K] extends ParamSpec<infer T, infer R> ? ([R] extends [true] ? T : T | undefined) : never;
};

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function scalar(raw: RawValue, name: string): string {
  if (typeof raw !== 'string')
    throw invalidParameter(`Unable to execute API command due to invalid value for parameter ${name}`);
  return raw;
}

interface Options<Req extends boolean> {
  required?: Req;
  adminOnly?: boolean;
  description?: string;
  checkedByHandler?: boolean;
  handedToCommand?: boolean;
}

function spec<T, Req extends boolean>(
  type: ParamSpec['type'],
  opts: Options<Req> | undefined,
  parse: (raw: RawValue, name: string) => T,
  extra: Pick<ParamSpec, 'length' | 'collectionType'> = {},
): ParamSpec<T, NoInfer<Req>> {
  return {
    type,
    required: (opts?.required ?? false) as Req,
    adminOnly: opts?.adminOnly,
    description: opts?.description,
    ...(opts?.checkedByHandler ? { checkedByHandler: true } : {}),
    ...(opts?.handedToCommand ? { handedToCommand: true } : {}),
    parse,
    ...extra,
  };
}

/** Upstream's text for a uuid that is malformed or names no entity (ParamProcessWorker). */
export function invalidUuidText(name: string, value: string): string {
  return `Invalid parameter ${name} value=${value} due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.`;
}

export function parseUuid(value: string, name: string): string {
  if (!UUID_RE.test(value)) throw invalidParameter(invalidUuidText(name, value));
  return value.toLowerCase();
}

export function parseBoolean(value: string): boolean {
  // As upstream's Boolean.valueOf: only a case-insensitive "true" is true.
  return value.trim().toLowerCase() === 'true';
}

export function parseInteger(value: string, name: string, min = -(2 ** 31), max = 2 ** 31 - 1): number {
  const v = value.trim();
  if (!/^-?\d+$/.test(v))
    throw invalidParameter(
      `Unable to execute API command due to invalid value. Invalid parameter ${name} value=${value} due to incorrect long value format`,
    );
  const n = Number(v);
  if (n < min || n > max)
    throw invalidParameter(`Invalid value for parameter ${name}: ${value} is out of range`);
  return n;
}

export const p = {
  string<Req extends boolean = false>(opts?: Options<Req> & { length?: number }) {
    const length = opts?.length ?? 255;
    return spec<string, Req>(
      'string',
      opts,
      (raw, name) => {
        const v = scalar(raw, name);
        if (v.length > length)
          throw invalidParameter(`Value greater than max allowed length ${length} for param: ${name}`);
        return v;
      },
      { length },
    );
  },
  uuid<Req extends boolean = false>(opts?: Options<Req>) {
    return spec<string, Req>('uuid', opts, (raw, name) => parseUuid(scalar(raw, name).trim(), name));
  },
  /**
   * A list's projectid: a project's UUID, or -1 for every project the caller may see (upstream reads
   * -1 in any UUID parameter as the id -1; lists take it as "all projects").
   */
  projectScope<Req extends boolean = false>(opts?: Options<Req>) {
    return spec<string, Req>('uuid', opts, (raw, name) => {
      const v = scalar(raw, name).trim();
      return v === '-1' ? v : parseUuid(v, name);
    });
  },
  boolean<Req extends boolean = false>(opts?: Options<Req>) {
    return spec<boolean, Req>('boolean', opts, (raw, name) => parseBoolean(scalar(raw, name)));
  },
  integer<Req extends boolean = false>(opts?: Options<Req> & { min?: number; max?: number }) {
    return spec<number, Req>('integer', opts, (raw, name) =>
      parseInteger(scalar(raw, name), name, opts?.min, opts?.max),
    );
  },
  long<Req extends boolean = false>(opts?: Options<Req> & { min?: number }) {
    return spec<number, Req>('long', opts, (raw, name) =>
      parseInteger(scalar(raw, name), name, opts?.min ?? Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    );
  },
  double<Req extends boolean = false>(opts?: Options<Req>) {
    return spec<number, Req>('double', opts, (raw, name) => {
      const v = scalar(raw, name).trim();
      const n = Number(v);
      if (v === '' || !Number.isFinite(n))
        throw invalidParameter(`Invalid parameter ${name} value=${v}: not a number`);
      return n;
    });
  },
  date<Req extends boolean = false>(opts?: Options<Req>) {
    return spec<number, Req>('date', opts, (raw, name) => {
      const v = scalar(raw, name);
      const t = parseApiDate(v);
      if (t === undefined)
        throw invalidParameter(
          `Unable to parse date ${v} for parameter ${name}, format yyyy-MM-dd'T'HH:mm:ssZ or yyyy-MM-dd HH:mm:ss`,
        );
      return t;
    });
  },
  /** A comma-separated list; items are checked as UUIDs when `of` is 'uuid'. */
  list<Req extends boolean = false>(opts?: Options<Req> & { of?: 'string' | 'uuid' | 'integer' }) {
    const of = opts?.of ?? 'string';
    return spec<string[], Req>(
      'list',
      opts,
      (raw, name) => {
        const items = scalar(raw, name)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '');
        if (of === 'uuid') return items.map((s) => parseUuid(s, name));
        if (of === 'integer') return items.map((s) => String(parseInteger(s, name)));
        return items;
      },
      { collectionType: of },
    );
  },
  /** An indexed map: name[0].key=...&name[0].value=... arrives as [{key, value}, ...] in index order. */
  map<Req extends boolean = false>(opts?: Options<Req>) {
    return spec<Record<string, string>[], Req>('map', opts, (raw, name) => {
      if (typeof raw === 'string')
        throw invalidParameter(
          `Unable to execute API command due to invalid value for map parameter ${name}: use ${name}[0].key=value`,
        );
      return Object.keys(raw)
        .sort((a, b) => Number(a) - Number(b))
        .map((k) => raw[k]);
    });
  },
};

/** The paging and keyword parameters every list command takes. */
export const listParams = {
  keyword: p.string({
    description: 'Keeps only items whose name (or, for some lists, display text) contains this text.',
  }),
  page: p.integer({ description: 'Which page of results to return, counting from 1; used with pagesize.' }),
  pagesize: p.integer({
    description: 'Items per page; -1 returns every item. Defaults to the default.page.size setting.',
  }),
};

/** Ownership scoping parameters of list commands over account-owned resources. */
export const scopeParams = {
  account: p.string({
    description:
      "Only this account's items (by account name); give domainid too unless it is your own domain.",
  }),
  domainid: p.uuid({
    description:
      "Only items owned in this domain (you must be able to administer it); isrecursive adds its subdomains'.",
  }),
  listall: p.boolean({
    description:
      'true: everything you may see (for admins, all accounts in their domains) rather than just your own items.',
  }),
  isrecursive: p.boolean({
    description: 'With domainid or listall: include the items of subdomains too.',
  }),
  projectid: p.projectScope({
    description:
      "Only this project's items (its UUID; you must be a member or administer its domain), or -1 for the items of every project you may see. Without it, project items are left out unless id names one.",
  }),
};
