/**
 * The chaos suite's processes: the real management server (`main.ts`, as `npm start` runs it) and a
 * simulator agent in a process of its own, so that the hosts and their VMs outlive the server
 * being killed, as real hypervisor hosts do.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const REPO = join(import.meta.dirname, '../../../..');
const SERVER_MAIN = join(REPO, 'packages/server/src/main.ts');
const AGENT_MAIN = join(REPO, 'packages/agent/src/main.ts');

/** Every child still running, so that a run that gives up (its time limit) leaves none behind. */
const live = new Set<ChildProcess>();

export function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
}

function track(c: ChildProcess): ChildProcess {
  live.add(c);
  c.once('exit', () => live.delete(c));
  return c;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ServerSettings {
  dataDir: string;
  databaseUrl: string;
  port: number;
  agentPort: number;
  /** NIMBOSTACK_SERVER_NAME: servers sharing a database need names of their own (default chaos-ms). */
  name?: string;
  /** More environment for this server (the HA suite's shared key file, heartbeat settings). */
  env?: Record<string, string>;
}

/** One run of the management server process; `logFile` keeps what it printed. */
export class ServerProcess {
  readonly child: ChildProcess;
  private readonly log: WriteStream;
  private exited: Promise<number | null>;
  /** Resolves when the server logged that it listens; rejects if it exits first. */
  readonly started: Promise<void>;
  /** Whether it logged that it applied migrations (a fresh database). */
  upgraded = false;

  constructor(settings: ServerSettings, logFile: string) {
    this.log = createWriteStream(logFile);
    this.child = track(
      spawn(process.execPath, ['--import', 'tsx', SERVER_MAIN], {
        cwd: REPO,
        env: {
          ...process.env,
          NIMBOSTACK_PORT: String(settings.port),
          NIMBOSTACK_AGENT_PORT: String(settings.agentPort),
          NIMBOSTACK_HOST: '127.0.0.1',
          NIMBOSTACK_DATA: settings.dataDir,
          DATABASE_URL: settings.databaseUrl,
          NIMBOSTACK_LOG_LEVEL: 'info',
          NIMBOSTACK_SEED_LOCAL_ZONE: 'false',
          NIMBOSTACK_SERVER_NAME: settings.name ?? 'chaos-ms',
          ...settings.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    this.exited = new Promise((r) => this.child.once('exit', (code) => r(code)));
    this.child.stderr?.pipe(this.log, { end: false });
    const lines = createInterface({ input: this.child.stdout! });
    this.started = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`server did not start in 90 s (see ${logFile})`)),
        90_000,
      );
      lines.on('line', (line) => {
        this.log.write(`${line}\n`);
        if (line.includes('"database schema upgraded"')) this.upgraded = true;
        if (line.includes('"management server started"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`server exited with ${code} before it started (see ${logFile})`));
      });
    });
    // A kill before the start is expected; nobody else waits on this promise then.
    this.started.catch(() => undefined);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** kill -9: no shutdown handler runs, nothing is flushed or marked down. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    this.log.end();
  }

  /** A graceful stop (SIGTERM): running jobs finish, the server marks itself down. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const code = await this.exited;
    this.log.end();
    return code;
  }
}

/** A simulator agent presenting `hosts` hosts named `<name>-1`…; it reconnects on its own. */
export function startAgent(opts: {
  agentPort: number;
  token: string;
  name: string;
  hosts: number;
  latencyMs: number;
  logFile: string;
}): { stop(): Promise<void> } {
  const child = track(
    spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        AGENT_MAIN,
        '--server',
        `ws://127.0.0.1:${opts.agentPort}`,
        '--token',
        opts.token,
        '--name',
        opts.name,
        '--hosts',
        String(opts.hosts),
        '--latency',
        String(opts.latencyMs),
        // The server comes back within seconds of each kill; a short backoff reconnects promptly.
        '--max-backoff',
        '500',
      ],
      { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  const log = createWriteStream(opts.logFile);
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
