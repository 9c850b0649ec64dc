/**
 * Loaded into bench:vms's server process (node --import, as network-hooks.ts is for
 * bench:networks): it stamps each step of a deploy with the wall clock, so the benchmark can say
 * where the time between the API call and the guest's DHCP lease goes. The server logs no such
 * steps, and timing them from outside would only see the API's answers.
 *
 * - `server`: every command the server sends a host agent (AgentGateway.send), from the call to
 *   the agent's answer: the round trip as the deploy's job waits for it;
 * - `agent`: the same commands as the in-process KVM agent runs them (KvmHost's `around`, which
 *   the agent calls around each command's handler);
 * - `qemu`: inside startVm, QEMU spawned → its monitor answering (Qmp.waitAndConnect, called
 *   right after the spawn), and each monitor command (`cont` is the moment the guest runs);
 * - `process`: every host tool the server process runs (the agent's `ip`, `nft`, `qemu-img`…),
 *   from its spawn to its exit (child_process's execFile and spawn, wrapped and pushed to the
 *   modules that imported them with syncBuiltinESMExports).
 *
 * Times are epoch milliseconds (performance.timeOrigin + performance.now()), the clock the
 * benchmark's own process stamps its events with. One admin command reads them:
 *   benchTrace [since=<epoch ms>] → { spans: [{ where, what, detail?, start, end, ok }] }
 */
import childProcess, { type ChildProcess } from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import { basename } from 'node:path';
import { KvmHost } from '../../packages/agent/src/drivers/kvm/kvm-host.ts';
import { Qmp } from '../../packages/agent/src/drivers/kvm/qmp.ts';
import { AgentGateway } from '../../packages/server/src/agents/gateway.ts';
import { allCommands } from '../../packages/server/src/commands.ts';
import type { Command } from '../../packages/server/src/registry/command.ts';
import { p } from '../../packages/server/src/registry/params.ts';

export interface TraceSpan {
  where: 'server' | 'agent' | 'qemu' | 'process';
  what: string;
  /** The VM or router a span acts on, when the command names one. */
  detail?: string;
  start: number;
  end: number;
  ok: boolean;
}

const now = () => performance.timeOrigin + performance.now();
const spans: TraceSpan[] = [];
/** Enough for a run's deploys; the oldest go first. */
const MAX_SPANS = 20_000;
const record = (s: TraceSpan) => {
  spans.push(s);
  if (spans.length > MAX_SPANS) spans.splice(0, spans.length - MAX_SPANS);
};

/** What a command's payload names: the VM (startVm's spec, or a name) or the router. */
function subject(payload: unknown): string | undefined {
  const p = payload as Record<string, any> | undefined;
  return p?.vm?.name ?? (typeof p?.vm === 'string' ? p.vm : undefined) ?? p?.name ?? p?.router?.name;
}

// Host tools: each process from its spawn to its exit. QEMU is detached and outlives a deploy, so
// its span (spawn to exit) is recorded only when it ends.
for (const fn of ['execFile', 'spawn'] as const) {
  const original = childProcess[fn] as (...a: unknown[]) => ChildProcess;
  (childProcess as unknown as Record<string, unknown>)[fn] = function (this: unknown, ...a: unknown[]) {
    const start = now();
    const child = original.apply(this, a);
    const [cmd, args] = a as [string, unknown];
    const what = [basename(cmd), ...(Array.isArray(args) ? args.slice(0, 3).map(String) : [])].join(' ');
    child.once('exit', (code) => record({ where: 'process', what, start, end: now(), ok: code === 0 }));
    return child;
  };
}
syncBuiltinESMExports();

// The server's side: each agent command from send to answer.
{
  const send = AgentGateway.prototype.send;
  AgentGateway.prototype.send = function (this: AgentGateway, hostId, kind, payload, timeoutMs) {
    const start = now();
    const answer = send.call(this, hostId, kind, payload, timeoutMs);
    const detail = subject(payload);
    answer.then(
      (a) => record({ where: 'server', what: kind, detail, start, end: now(), ok: a.ok }),
      () => record({ where: 'server', what: kind, detail, start, end: now(), ok: false }),
    );
    return answer;
  } as typeof send;
}

// The agent's side: KvmHost has no `around` of its own; the agent runs every handler through it.
Object.defineProperty(KvmHost.prototype, 'around', {
  configurable: true,
  value: async function around<T>(kind: string, run: () => Promise<T>): Promise<T> {
    const start = now();
    let ok = false;
    try {
      const result = await run();
      ok = true;
      return result;
    } finally {
      record({ where: 'agent', what: kind, start, end: now(), ok });
    }
  },
});

// Inside startVm: QEMU's start until its monitor answers, then each monitor command.
{
  const socketOf = new WeakMap<Qmp, string>();
  const vmOf = (path: string) => path.split('/').at(-2);
  const waitAndConnect = Qmp.waitAndConnect;
  Qmp.waitAndConnect = async (path, alive, timeoutMs) => {
    const start = now();
    let ok = false;
    try {
      const qmp = await waitAndConnect.call(Qmp, path, alive, timeoutMs);
      socketOf.set(qmp, path);
      ok = true;
      return qmp;
    } finally {
      record({ where: 'qemu', what: 'spawned → QMP ready', detail: vmOf(path), start, end: now(), ok });
    }
  };
  const execute = Qmp.prototype.execute;
  Qmp.prototype.execute = function (this: Qmp, command: string, args?: object, timeoutMs?: number) {
    const start = now();
    const done = execute.call(this, command, args, timeoutMs);
    const path = socketOf.get(this);
    const detail = path ? vmOf(path) : undefined;
    done.then(
      () => record({ where: 'qemu', what: command, detail, start, end: now(), ok: true }),
      () => record({ where: 'qemu', what: command, detail, start, end: now(), ok: false }),
    );
    return done;
  } as typeof execute;
}

const NAME = 'benchTrace';
const command: Command = {
  name: NAME,
  description: 'Benchmark probe: the timed steps of agent commands since a moment',
  params: { since: p.long({ min: 0 }) },
  catalog: {
    name: NAME,
    isasync: false,
    since: null,
    roles: ['admin'],
    responseName: 'benchtraceresponse',
    responseShape: 'object',
    responseObjectName: 'trace',
    params: [],
    response: [],
  },
  isAsync: false,
  allowedRoles: ['admin'],
  async handler(_ctx, raw) {
    const since = (raw as { since?: number }).since ?? 0;
    return { spans: spans.filter((s) => s.end >= since) };
  },
};

allCommands.push(command);
