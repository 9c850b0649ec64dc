/**
 * Messages on the agent WebSocket, one JSON object per text frame. One connection may carry many
 * hosts (a simulator presents thousands over one socket), so every host-level message names its
 * host; `ping` batches a connection's hosts, the agent sending 500 of them to a frame (more in
 * several frames: each one is handled on its own).
 */
import { z } from 'zod';
import { COMMANDS, type CommandKind, isCommandKind, type ParsedPayload, VmPowerReport } from './commands.ts';

/**
 * Bumped on incompatible changes; the server refuses agents speaking another version.
 * 2: a router's guest interfaces are `RouterSpec.guests` (several for a VPC), which agents of
 * version 1 cannot read (agents of version 2 still read the one-network form).
 * 3: a VPC router's `RouterSpec.vpc` (network ACLs, private gateways, static routes): an agent of
 * version 2 would drop it unread and leave the tiers unfiltered.
 * 4: `setHeartbeat` and `checkHost` (VM high availability): a version 3 agent writes no storage
 * heartbeat, so its hosts could never be proven dead.
 * 5: `routerDigest` (a router's entries compared on reconnect and after a big router's boot): a
 * version 4 agent cannot answer it, so a router it runs would never be checked.
 */
export const PROTOCOL_VERSION = 5;

/** Largest frame either side accepts (a ping for 5,000 hosts with VMs fits well within it). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

const hostName = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'host names are letters, digits, dots, dashes and underscores');
const commandId = z.string().min(1).max(64);

export const HypervisorType = z.enum(['Simulator', 'KVM', 'LXC']);
export type HypervisorType = z.infer<typeof HypervisorType>;

/** Agent → server: a host comes online (first time or after any reconnect). */
export const StartupMessage = z.object({
  type: z.literal('startup'),
  protocolVersion: z.number().int(),
  host: hostName,
  /** The secret the host was started with; the admin gives the same one to addHost as password. */
  token: z.string().min(8).max(512),
  hypervisor: HypervisorType,
  hypervisorVersion: z.string().max(64),
  agentVersion: z.string().max(64),
  cpuSockets: z.number().int().positive(),
  cpuCores: z.number().int().positive(),
  cpuMhz: z.number().int().positive(),
  memoryBytes: z.number().int().nonnegative(),
  localStorageBytes: z.number().int().nonnegative(),
  privateIp: z.string().max(64),
  /** Facts about the host beyond the fixed fields, e.g. KVM's { accel: 'tcg' | 'kvm' }. */
  details: z.record(z.string().max(64), z.string().max(1024)).optional(),
  vms: z.array(VmPowerReport).max(100_000),
});
export type StartupMessage = z.infer<typeof StartupMessage>;

/** Agent → server: liveness and VM power states for every ready host on the connection. */
export const PingMessage = z.object({
  type: z.literal('ping'),
  hosts: z.array(z.object({ host: hostName, vms: z.array(VmPowerReport).max(100_000) })).max(100_000),
});
export type PingMessage = z.infer<typeof PingMessage>;

export const ErrorCodeSchema = z.enum([
  'malformed',
  'unsupported',
  'version',
  'unauthorized',
  'unknownHost',
  'failed',
  'timeout',
]);
export type ProtocolErrorCode = z.infer<typeof ErrorCodeSchema>;

const AnswerError = z.object({ code: ErrorCodeSchema, message: z.string().max(4096) });

/** Agent → server: the outcome of one command. */
export const AnswerMessage = z.discriminatedUnion('ok', [
  z.object({
    type: z.literal('answer'),
    id: commandId,
    host: hostName,
    ok: z.literal(true),
    result: z.unknown(),
  }),
  z.object({
    type: z.literal('answer'),
    id: commandId,
    host: hostName,
    ok: z.literal(false),
    error: AnswerError,
  }),
]);
export type AnswerMessage = z.infer<typeof AnswerMessage>;

/** Server → agent: tells the agent a host's startup waits for an admin to addHost it. */
export const PendingMessage = z.object({ type: z.literal('pending'), host: hostName, message: z.string() });
export type PendingMessage = z.infer<typeof PendingMessage>;

/** Either side: a frame that could not be accepted, or a host-level refusal. */
export const ErrorMessage = z.object({
  type: z.literal('error'),
  code: ErrorCodeSchema,
  message: z.string().max(4096),
  id: commandId.optional(),
  host: hostName.optional(),
});
export type ErrorMessage = z.infer<typeof ErrorMessage>;

const CommandEnvelope = z.object({
  type: z.literal('command'),
  id: commandId,
  host: hostName,
  kind: z.string().min(1).max(64),
  payload: z.unknown(),
  timeoutMs: z.number().int().positive(),
});

/** Server → agent: run one command for one host and answer within timeoutMs. */
export type CommandMessage<K extends CommandKind = CommandKind> = {
  [P in K]: {
    type: 'command';
    id: string;
    host: string;
    kind: P;
    payload: ParsedPayload<P>;
    timeoutMs: number;
  };
}[K];

export type AgentMessage = StartupMessage | PingMessage | AnswerMessage | ErrorMessage;
export type ServerMessage = CommandMessage | PendingMessage | ErrorMessage;
export type Message = AgentMessage | ServerMessage;

const SCHEMAS = {
  startup: StartupMessage,
  ping: PingMessage,
  answer: AnswerMessage,
  pending: PendingMessage,
  error: ErrorMessage,
} as const;

export type ParseResult = { ok: true; message: Message } | { ok: false; error: ErrorMessage };

function describe(issues: z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(message)'}: ${i.message}`)
    .join('; ');
}

function fail(
  code: ProtocolErrorCode,
  message: string,
  ref: { id?: unknown; host?: unknown } = {},
): ParseResult {
  const error: ErrorMessage = { type: 'error', code, message };
  if (typeof ref.id === 'string' && commandId.safeParse(ref.id).success) error.id = ref.id;
  if (typeof ref.host === 'string' && hostName.safeParse(ref.host).success) error.host = ref.host;
  return { ok: false, error };
}

/**
 * Validates one frame. Never throws: anything unacceptable becomes an error message the receiver
 * can send back, carrying the command id and host when the frame had them so the sender can
 * match it to what it sent.
 */
export function parseMessage(frame: string | Buffer | ArrayBuffer | Buffer[]): ParseResult {
  let text: string;
  if (typeof frame === 'string') text = frame;
  else if (Array.isArray(frame)) text = Buffer.concat(frame).toString('utf8');
  else text = Buffer.from(frame as ArrayBuffer).toString('utf8');
  if (text.length > MAX_FRAME_BYTES) return fail('malformed', 'frame too large');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return fail('malformed', 'frame is not JSON');
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    return fail('malformed', 'a message is a JSON object');
  const obj = data as Record<string, unknown>;
  if (obj.type === 'command') return parseCommand(obj);
  const schema = typeof obj.type === 'string' ? SCHEMAS[obj.type as keyof typeof SCHEMAS] : undefined;
  if (!schema || !Object.hasOwn(SCHEMAS, obj.type as string))
    return fail('unsupported', `unknown message type ${JSON.stringify(obj.type ?? null).slice(0, 64)}`, obj);
  const r = schema.safeParse(obj);
  if (!r.success) return fail('malformed', `invalid ${obj.type} message: ${describe(r.error.issues)}`, obj);
  return { ok: true, message: r.data as Message };
}

function parseCommand(obj: Record<string, unknown>): ParseResult {
  const envelope = CommandEnvelope.safeParse(obj);
  if (!envelope.success)
    return fail('malformed', `invalid command message: ${describe(envelope.error.issues)}`, obj);
  const { kind } = envelope.data;
  if (!isCommandKind(kind)) return fail('unsupported', `unknown command kind ${kind}`, obj);
  const payload = COMMANDS[kind].payload.safeParse(envelope.data.payload ?? {});
  if (!payload.success)
    return fail('malformed', `invalid ${kind} payload: ${describe(payload.error.issues)}`, obj);
  return { ok: true, message: { ...envelope.data, kind, payload: payload.data } as CommandMessage };
}

/** Validates a command's answer result against its kind. */
export function parseResult<K extends CommandKind>(
  kind: K,
  result: unknown,
): { ok: true; result: z.output<(typeof COMMANDS)[K]['result']> } | { ok: false; message: string } {
  const r = COMMANDS[kind].result.safeParse(result ?? {});
  if (!r.success) return { ok: false, message: `invalid ${kind} result: ${describe(r.error.issues)}` };
  return { ok: true, result: r.data as z.output<(typeof COMMANDS)[K]['result']> };
}

/** Checks a payload before sending, so a server bug fails at the caller rather than on the agent. */
export function validatePayload<K extends CommandKind>(kind: K, payload: unknown): ParsedPayload<K> {
  return COMMANDS[kind].payload.parse(payload ?? {}) as ParsedPayload<K>;
}

export function encode(message: Message): string {
  return JSON.stringify(message);
}
