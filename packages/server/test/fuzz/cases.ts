/**
 * Fuzz cases generated from the command declarations (the registry every request is dispatched
 * through), how they are sent, and how each answer is judged. Shared by the seeded sample in
 * `npm test` (fuzz.test.ts) and the full sweep (`npm run test:fuzz`, fuzz-sweep.ts).
 *
 * A case is one request: a command, who sends it, and its raw parameters. Kinds:
 * - missing:  one required parameter left out (the others filled) → 431 naming it;
 * - bad:      one parameter given a value of the wrong kind (text for numbers, huge and negative
 *             numbers, 10 kB strings, unicode, NUL bytes, quotes and SQL, ../ paths, maps as
 *             strings, empty list items…) → an error envelope with a sensible code, or a success
 *             where the value is in fact valid;
 * - unknown:  a uuid parameter naming no entity → 431 with upstream's text;
 * - foreign:  alice naming one of bob's entities → refused, or (lists) nothing of bob's shown;
 * - mapkey:   a malformed `name[i].field` key → 430;
 * - deep:     carol's bad values with every other required parameter naming her real entities, so
 *             that handlers of commands that change things see them too (carol's entities are the
 *             scratch of the sweep: they may change, and are left out of the before/after lists).
 * Fillers for the other required parameters are valid in form; uuids are real ones the caller may
 * name for read-only commands, and unknown ones for commands that change things, so that fuzzing
 * never changes the entities the world was built with.
 */
import { randomUUID } from 'node:crypto';
import { entityParams } from '../../src/http/entity-refs.ts';
import { catalogCommand } from '../../src/registry/catalog.ts';
import type { Command } from '../../src/registry/command.ts';
import type { ParamSpec } from '../../src/registry/params.ts';
import type { FuzzWorld, Pools } from './world.ts';

export type Caller = 'admin' | 'alice' | 'carol';
export type Kind = 'missing' | 'bad' | 'unknown' | 'foreign' | 'mapkey' | 'deep';

export interface FuzzCase {
  kind: Kind;
  caller: Caller;
  command: string;
  /** The parameter the case is about. */
  param?: string;
  /** Raw request parameters (name, value), sent as a form body. */
  raw: [string, string][];
  /** For `unknown`: the exact text the answer must have; for `foreign`: bob's uuid. */
  expect?: { code?: number; text?: string; hidden?: string; textIncludes?: string };
}

const READ_ONLY = /^(list|get|query|find)/;
export const isReadOnly = (name: string) => READ_ONLY.test(name);

/** A uuid that names nothing (v4, random per run but fixed per process). */
export const UNKNOWN_UUID = randomUUID();

const TEN_KB = 'x'.repeat(10 * 1024);
const NUL = 'a\u0000b';
// One value per kind of trouble (the sweep sends each to every parameter, as three callers).
const STRINGS = [
  TEN_KB,
  '   ',
  NUL,
  "' OR '1'='1",
  "'; DROP TABLE vms; --",
  '%_\\',
  '../../../../etc/passwd',
  'ünïcödé ☃ 𝄞 \u202e\u0301 \uFFFF',
  '\uD800',
  '<script>alert(1)</script>',
  // A log-injection probe, literally (not a template).
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the text itself is the probe
  '${jndi:ldap://127.0.0.1/x}',
  '{"a":[1,2]}',
  'null',
  '[object Object]',
];
const NUMBERS = [
  'abc',
  '1.5',
  '1e309',
  '99999999999999999999999999',
  '-99999999999999999999999999',
  '9007199254740993',
  '2147483648',
  '-1',
  '0',
  '0x1f',
  'NaN',
  '١٢',
  NUL,
];

/** Bad values per declared type (strings are valid for string params unless over-long or odd). */
export function badValues(spec: ParamSpec): string[] {
  switch (spec.type) {
    case 'uuid':
      return [
        'abc',
        '-1',
        '1',
        `${UNKNOWN_UUID}x`,
        `${UNKNOWN_UUID},${UNKNOWN_UUID}`,
        TEN_KB,
        NUL,
        "'; DROP TABLE vms; --",
        '../../../../etc/passwd',
        'ünïcödé',
        'null',
      ];
    case 'integer':
    case 'long':
    case 'double':
      return NUMBERS;
    case 'boolean':
      return ['yes', 'TRUE', '1', TEN_KB, NUL];
    case 'date':
      return [
        'yesterday',
        '2024-13-45',
        '2024-02-30T25:61:61+0000',
        '99999-01-01 00:00:00',
        '0000-00-00 00:00:00',
        '2024-01-01T00:00:00+99999',
        NUL,
        TEN_KB,
      ];
    case 'list':
      return [
        ',',
        ',,,',
        'a,,b',
        ` , ${UNKNOWN_UUID} ,`,
        `${UNKNOWN_UUID},abc`,
        // 1,200 distinct uuids: more than one query's worth of bound parameters.
        Array.from({ length: 1200 }, () => randomUUID()).join(','),
        TEN_KB,
        NUL,
        "'; DROP TABLE vms; --",
      ];
    case 'map':
      // A map given as a plain string; malformed keys are the `mapkey` cases.
      return ['str', '', TEN_KB, '{"key":"value"}'];
    default:
      return STRINGS;
  }
}

/**
 * Words an error text may not hold ("null", "[object Object]") are sent only to read-only
 * commands: a command that changes things may store them (a network named "null") and a later
 * text would rightly name it.
 */
export function storable(command: Command, values: string[]): string[] {
  if (isReadOnly(command.name)) return values;
  return values.filter((v) => v !== 'null' && v !== '[object Object]');
}

/** Malformed and odd map keys for a map parameter `name` (sent as raw keys). */
export function mapKeyCases(name: string): { raw: [string, string][]; malformed: boolean }[] {
  return [
    { raw: [[`${name}[abc].key`, 'v']], malformed: true },
    { raw: [[`${name}[0]`, 'v']], malformed: true },
    { raw: [[`${name}[0].key[1]`, 'v']], malformed: true },
    { raw: [[`${name}[-1].key`, 'v']], malformed: true },
    { raw: [[`${name}[0].`, 'v']], malformed: true },
    { raw: [[`${name}[`, 'v']], malformed: true },
    { raw: [[`${name}[0].key`, '']], malformed: false },
    { raw: [[`${name}[99999999999999999999999].key`, 'v']], malformed: false },
    {
      raw: [
        [`${name}[0].key`, NUL],
        [`${name}[0].value`, TEN_KB],
      ],
      malformed: false,
    },
    {
      raw: [
        [`${name}[1].key`, 'a'],
        [`${name}[01].value`, 'b'],
        [`${name}[5].zzz`, "'; DROP TABLE vms; --"],
      ],
      malformed: false,
    },
  ];
}

/** The pools a caller may name: admins everything, a tenant the infrastructure and their own. */
export function poolsOf(world: FuzzWorld, caller: Caller): Pools {
  const out: Pools = new Map(world.shared);
  const owners = caller === 'admin' ? [world.own.alice, world.own.bob] : [world.own[caller]];
  for (const pools of owners) for (const [k, v] of pools) out.set(k, [...(out.get(k) ?? []), ...v]);
  return out;
}

function entityTypeOf(command: Command, name: string): string | undefined {
  const p = command.catalog.params.find((x) => x.name.toLowerCase() === name) as
    | { entityType?: string }
    | undefined;
  return p?.entityType;
}

function isUuidParam(spec: ParamSpec): boolean {
  return spec.type === 'uuid' || (spec.type === 'list' && spec.collectionType === 'uuid');
}

/** A value valid in form for a parameter; uuids real (from `pools`) when `real`, else unknown. */
function filler(command: Command, name: string, spec: ParamSpec, pools: Pools, real: boolean): string {
  if (isUuidParam(spec)) {
    const entity = entityTypeOf(command, name);
    const known = entity ? pools.get(entity) : undefined;
    return real && known?.length ? known[0] : UNKNOWN_UUID;
  }
  switch (spec.type) {
    case 'integer':
    case 'long':
    case 'double':
      return '1';
    case 'boolean':
      return 'false';
    case 'date':
      return '2020-01-01';
    case 'list':
      return spec.collectionType === 'integer' ? '1' : 'fuzz';
    default:
      return 'fuzz';
  }
}

function fillers(command: Command, pools: Pools, real: boolean, except: string): [string, string][] {
  const raw: [string, string][] = [];
  for (const [name, spec] of Object.entries(command.params) as [string, ParamSpec][]) {
    if (!spec.required || name === except) continue;
    if (spec.type === 'map') raw.push([`${name}[0].key`, 'fuzz'], [`${name}[0].value`, 'fuzz']);
    else raw.push([name, filler(command, name, spec, pools, real)]);
  }
  return raw;
}

/** One `bad` (carol: `deep`) case: parameter `name` of `command` given `value`, the other required ones filled. */
export function valueCase(
  world: FuzzWorld,
  command: Command,
  caller: Caller,
  name: string,
  value: string,
): FuzzCase {
  // Carol's entities are the scratch: her cases name them even for commands that change things.
  const deep = caller === 'carol';
  const base = fillers(command, poolsOf(world, caller), deep || isReadOnly(command.name), name);
  return {
    kind: deep ? 'deep' : 'bad',
    caller,
    command: command.name,
    param: name,
    raw: [...base, [name, value]],
  };
}

/**
 * Every case of the full sweep for the commands a caller may call. Admin gets missing, bad,
 * unknown and mapkey cases for every command; alice bad cases for hers plus the foreign cases.
 */
export function sweepCases(
  world: FuzzWorld,
  commands: Command[],
  caller: Caller,
  opts: { kinds?: Kind[] } = {},
): FuzzCase[] {
  const kinds = new Set<Kind>(
    opts.kinds ??
      (caller === 'admin'
        ? ['missing', 'bad', 'unknown', 'mapkey']
        : caller === 'alice'
          ? ['unknown', 'foreign']
          : ['deep']),
  );
  const pools = poolsOf(world, caller);
  const out: FuzzCase[] = [];
  for (const command of commands) {
    const real = isReadOnly(command.name);
    const params = Object.entries(command.params) as [string, ParamSpec][];
    for (const [name, spec] of params) {
      const base = fillers(command, pools, real, name);
      if (kinds.has('missing') && spec.required)
        out.push({
          kind: 'missing',
          caller,
          command: command.name,
          param: name,
          raw: base,
          expect: { code: 431, textIncludes: `due to missing parameter ${name}` },
        });
      if (kinds.has('bad'))
        for (const v of storable(command, badValues(spec)))
          out.push({ kind: 'bad', caller, command: command.name, param: name, raw: [...base, [name, v]] });
      if (kinds.has('deep')) {
        const real = fillers(command, pools, true, name);
        for (const v of storable(command, badValues(spec)))
          out.push({ kind: 'deep', caller, command: command.name, param: name, raw: [...real, [name, v]] });
      }
      if (kinds.has('mapkey') && spec.type === 'map')
        for (const m of mapKeyCases(name))
          out.push({
            kind: 'mapkey',
            caller,
            command: command.name,
            param: name,
            raw: [...base, ...m.raw],
            expect: m.malformed ? { code: 430 } : undefined,
          });
      // Admin-only parameters are dropped for other callers: nothing to resolve or refuse there.
      const dropped = spec.adminOnly === true && caller !== 'admin';
      if (kinds.has('unknown') && isUuidParam(spec) && !dropped) {
        // A resolved parameter fails in the dispatcher before any handler runs, so the others may
        // be real (this one is then the only unknown: upstream's text for it). Otherwise the
        // handler would run, so nothing real is named for a command that changes things.
        const resolved = entityParams(command).some((e) => e.name === name);
        const others = fillers(command, pools, resolved || isReadOnly(command.name), name);
        const allReal = others.every(([, v]) => v !== UNKNOWN_UUID);
        const entity = entityTypeOf(command, name);
        const value =
          spec.type === 'list'
            ? `${(pools.get(entity ?? '') ?? [])[0] ?? UNKNOWN_UUID},${UNKNOWN_UUID}`
            : UNKNOWN_UUID;
        out.push({
          kind: 'unknown',
          caller,
          command: command.name,
          param: name,
          raw: [...others, [name, value]],
          expect:
            resolved && allReal
              ? {
                  code: 431,
                  text: `Invalid parameter ${name} value=${UNKNOWN_UUID} due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class.`,
                }
              : undefined,
        });
      }
      if (kinds.has('foreign') && isUuidParam(spec) && !dropped) {
        const entity = entityTypeOf(command, name);
        const theirs = entity ? world.own.bob.get(entity) : undefined;
        if (!theirs?.length) continue;
        // The other parameters name alice's own entities (or shared ones), so only bob's uuid is
        // out of place. A command that changes things may ignore an optional parameter and act on
        // what the others name (destroyVirtualMachine ignores volumeids): such cases are left out
        // where the others name something of alice's, so the fuzzing never changes her entities.
        const others = fillers(command, pools, true, name);
        const hers = new Set([...world.own.alice.values()].flat());
        if (!isReadOnly(command.name) && !spec.required && others.some(([, v]) => hers.has(v))) continue;
        for (const id of theirs.slice(0, 2))
          out.push({
            kind: 'foreign',
            caller,
            command: command.name,
            param: name,
            raw: [...others, [name, id]],
            expect: { hidden: id },
          });
      }
    }
  }
  // Commands that remove things go last, so that the others still find carol's entities.
  if (kinds.has('deep'))
    out.sort((a, b) => Number(REMOVES.test(a.command)) - Number(REMOVES.test(b.command)));
  return out;
}

const REMOVES =
  /^(delete|destroy|expunge|release|disassociate|remove|revoke|detach|archive|disable|lock|stop|cancel)/;

export interface Answer {
  status: number;
  /** The parsed body, or undefined when it was not JSON. */
  body?: Record<string, Record<string, unknown>>;
  text: string;
  /** Set when the connection failed (dropped, reset, timed out). */
  failure?: string;
}

export interface Session {
  url: string;
  cookie: string;
  sessionKey: string;
}

export function sessionOf(client: {
  options: { url: string };
  sessionCredentials?: { cookie: string; sessionKey: string };
}): Session {
  const s = client.sessionCredentials;
  if (!s) throw new Error('the fuzzer needs session clients');
  return { url: client.options.url, cookie: s.cookie, sessionKey: s.sessionKey };
}

/** Sends raw parameters as a form POST (so any key and any byte goes through as given). */
export async function send(session: Session, command: string, raw: [string, string][]): Promise<Answer> {
  const body = new URLSearchParams([
    ['command', command],
    ['response', 'json'],
    ['sessionkey', session.sessionKey],
    ...raw,
  ]);
  try {
    const res = await fetch(session.url, {
      method: 'POST',
      body,
      headers: { cookie: session.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    let parsed: Answer['body'];
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text };
  } catch (e) {
    return { status: 0, text: '', failure: (e as Error).message };
  }
}

/** HTTP statuses a CloudStack error may have (ApiErrorCode), besides 200. */
const CS_STATUSES = new Set([401, 405, 429, 430, 431, 432, 530, 531, 532, 533, 534, 535, 536, 537]);
const GENERIC_530 = 'Internal error executing command, please contact your system administrator';

/** What must never appear in an error text (after removing what the request itself sent). */
const BAD_TEXT: [string, RegExp][] = [
  ['undefined', /\bundefined\b/],
  ['null', /\bnull\b/],
  ['NaN', /\bNaN\b/],
  ['[object Object]', /\[object Object\]/],
  ['stack trace', /\n\s+at |\bat [\w.<>]+ \(|Error: .*\n/],
  ['file path', /(?:\/(?:work|home|root|tmp|usr|var|opt|srv)\/)|node_modules|\.(?:ts|js|mjs|cjs):\d+/],
  [
    'SQL',
    /\b(?:select .* from|insert into|delete from|update \w+ set|SQLITE_\w+|syntax error at|ER_[A-Z_]+|relation "|violates .* constraint|UNIQUE constraint|FOREIGN KEY constraint|invalid byte sequence|invalid input syntax)\b/i,
  ],
];

export interface Violation {
  case: FuzzCase;
  what: string;
  detail: string;
}

function scrub(text: string, sent: [string, string][]): string {
  let out = text;
  const values = sent
    .flatMap(([k, v]) => [k, v, v.toLowerCase(), v.trim(), v.trim().toLowerCase()])
    .filter((v) => v.length > 0)
    .sort((a, b) => b.length - a.length);
  for (const v of values) out = out.split(v).join(' ');
  return out;
}

/** Judges an error body (`errorcode`, `errortext`…) against the rules; returns what is wrong. */
export function judgeError(
  c: FuzzCase,
  err: Record<string, unknown>,
  status: number | undefined,
): Violation[] {
  const out: Violation[] = [];
  const v = (what: string, detail: string) => out.push({ case: c, what, detail });
  const code = Number(err.errorcode);
  const text = err.errortext;
  if (status !== undefined && code !== status) v('envelope', `errorcode ${err.errorcode} but HTTP ${status}`);
  if (!CS_STATUSES.has(code)) v('5xx', `errorcode ${err.errorcode}`);
  if (typeof text !== 'string' || text.trim() === '') {
    v('bad text', `errortext ${JSON.stringify(text)}`);
    return out;
  }
  if (code === 530 && text === GENERIC_530) v('5xx', 'an unexpected exception (generic 530)');
  const own = scrub(text, c.raw);
  for (const [what, re] of BAD_TEXT) if (re.test(own)) v('bad text', `${what}: ${text.slice(0, 300)}`);
  return out;
}

/** Judges one answer (not the job behind it): envelope, status, texts and the case's expectation. */
export function judge(c: FuzzCase, a: Answer): Violation[] {
  const v = (what: string, detail: string): Violation[] => [{ case: c, what, detail }];
  if (a.failure) return v('dropped', a.failure);
  if (a.status >= 500 && !CS_STATUSES.has(a.status))
    return v('5xx', `HTTP ${a.status}: ${a.text.slice(0, 200)}`);
  if (!a.body) return v('envelope', `not JSON (HTTP ${a.status}): ${a.text.slice(0, 200)}`);
  const keys = Object.keys(a.body);
  // A few legacy commands answer under upstream's hard-coded name (createLBStickinessPolicy).
  const legacy = catalogCommand(c.command)?.responseName;
  if (keys.length !== 1 || !(keys[0].endsWith('response') || keys[0] === legacy))
    return v('envelope', `top-level keys ${keys.join(',')}`);
  const inner = a.body[keys[0]];
  if (a.status !== 200) {
    const out = judgeError(c, inner, a.status);
    const e = c.expect;
    if (e?.code !== undefined && inner.errorcode !== e.code)
      out.push({
        case: c,
        what: 'wrong code',
        detail: `${inner.errorcode} (${inner.errortext}), expected ${e.code}`,
      });
    if (e?.text !== undefined && inner.errortext !== e.text)
      out.push({ case: c, what: 'wrong text', detail: `${inner.errortext}, expected ${e.text}` });
    if (e?.textIncludes !== undefined && !String(inner.errortext).includes(e.textIncludes))
      out.push({ case: c, what: 'wrong text', detail: `${inner.errortext}, expected …${e.textIncludes}…` });
    return out;
  }
  if (c.expect?.code !== undefined || c.expect?.text !== undefined)
    return v('accepted', `expected ${c.expect.code ?? 'an error'}, got success: ${a.text.slice(0, 200)}`);
  if (c.kind === 'foreign') {
    if (!isReadOnly(c.command) && typeof inner.jobid !== 'string')
      return v('foreign accepted', a.text.slice(0, 200));
    if (c.expect?.hidden && a.text.includes(c.expect.hidden)) return v('foreign shown', a.text.slice(0, 200));
  }
  return [];
}

/** Polls a job to its end; answers its result (success or the failure's error body). */
export async function jobOutcome(
  session: Session,
  jobid: string,
  timeoutMs = 30_000,
): Promise<{ status: number; result: Record<string, unknown> } | { failure: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const a = await send(session, 'queryAsyncJobResult', [['jobid', jobid]]);
    if (a.failure || !a.body) return { failure: a.failure ?? `not JSON: ${a.text.slice(0, 200)}` };
    const job = a.body.queryasyncjobresultresponse as {
      jobstatus?: number;
      jobresult?: Record<string, unknown>;
    };
    if (job?.jobstatus === 1 || job?.jobstatus === 2)
      return { status: job.jobstatus, result: job.jobresult ?? {} };
    if (Date.now() > deadline) return { failure: `job ${jobid} still running after ${timeoutMs} ms` };
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs one case: sends it, judges the answer, and follows a queued job to its end. */
export async function runCase(
  sessions: Record<Caller, Session>,
  c: FuzzCase,
): Promise<{ answer: Answer; violations: Violation[] }> {
  const session = sessions[c.caller];
  const answer = await send(session, c.command, c.raw);
  const violations = judge(c, answer);
  const inner = answer.body ? Object.values(answer.body)[0] : undefined;
  if (answer.status === 200 && typeof inner?.jobid === 'string') {
    const out = await jobOutcome(session, inner.jobid);
    if ('failure' in out) violations.push({ case: c, what: 'job', detail: out.failure });
    else if (out.status === 2) {
      violations.push(...judgeError(c, out.result, undefined));
      if (c.expect?.code !== undefined && out.result.errorcode !== c.expect.code)
        violations.push({ case: c, what: 'wrong code', detail: `job failed with ${out.result.errorcode}` });
    } else if (c.kind === 'foreign' && !isReadOnly(c.command)) {
      violations.push({
        case: c,
        what: 'foreign accepted',
        detail: JSON.stringify(out.result).slice(0, 200),
      });
    }
  }
  return { answer, violations };
}

/** One line per violation, enough to replay it. */
export function describe(v: Violation): string {
  const shown = v.case.raw.map(
    ([k, val]) => `${k}=${JSON.stringify(val.length > 40 ? `${val.slice(0, 40)}…(${val.length})` : val)}`,
  );
  return `[${v.what}] ${v.case.caller} ${v.case.command} (${v.case.kind} ${v.case.param ?? ''}) ${shown.join(' ')} → ${v.detail}`;
}
