/**
 * A QMP (QEMU Machine Protocol) client over a UNIX socket: one JSON object per line, replies
 * matched to requests by id, asynchronous events delivered to listeners.
 */
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    message: string,
  ) {
    super(`${command}: ${message}`);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class Qmp extends EventEmitter<{ event: [QmpEvent]; close: []; greeting: [] }> {
  private buffer = '';
  private nextId = 0;
  private readonly pending = new Map<string, Pending>();
  private closedFlag = false;

  private constructor(private readonly socket: Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closedFlag = true;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new QmpError(p.command, 'Disconnected', 'QEMU closed the monitor connection'));
      }
      this.pending.clear();
      this.emit('close');
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Connects, reads the greeting and leaves capabilities negotiation mode. */
  static async connect(path: string, timeoutMs = 5000): Promise<Qmp> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`QMP connect to ${path} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    const qmp = new Qmp(socket);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no QMP greeting on ${path}`));
      }, timeoutMs);
      qmp.once('greeting', () => {
        clearTimeout(timer);
        resolve();
      });
      qmp.once('close', () => {
        clearTimeout(timer);
        reject(new Error(`QMP socket ${path} closed before the greeting`));
      });
    });
    await qmp.execute('qmp_capabilities', undefined, timeoutMs);
    return qmp;
  }

  /** Connects as soon as QEMU has created its socket, giving up when `alive` says QEMU exited. */
  static async waitAndConnect(path: string, alive: () => boolean, timeoutMs: number): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      if (!alive()) throw new Error('QEMU exited before its monitor was ready');
      try {
        return await Qmp.connect(path, Math.max(1000, deadline - Date.now()));
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`QMP socket ${path} not ready after ${timeoutMs} ms: ${(last as Error)?.message}`);
  }

  execute<T = unknown>(command: string, args?: object, timeoutMs = 10_000): Promise<T> {
    if (this.closedFlag)
      return Promise.reject(new QmpError(command, 'Disconnected', 'the monitor connection is closed'));
    const id = `n${++this.nextId}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(command, 'Timeout', `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify({ execute: command, arguments: args, id })}\n`);
    });
  }

  /** Resolves with the first event named `name` that satisfies `match`, or rejects after the timeout. */
  waitForEvent(name: string, timeoutMs: number, match: (e: QmpEvent) => boolean = () => true) {
    return new Promise<QmpEvent>((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event !== name || !match(e)) return;
        done();
        resolve(e);
      };
      const onClose = () => {
        done();
        reject(new QmpError(name, 'Disconnected', 'the monitor closed while waiting for the event'));
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpError(name, 'Timeout', `event ${name} did not arrive within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.off('event', onEvent);
        this.off('close', onClose);
      };
      this.on('event', onEvent);
      this.once('close', onClose);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (let i = this.buffer.indexOf('\n'); i >= 0; i = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, i).trim();
      this.buffer = this.buffer.slice(i + 1);
      if (line) this.onMessage(JSON.parse(line));
    }
  }

  private onMessage(m: Record<string, unknown>): void {
    if (m.QMP) {
      this.emit('greeting');
      return;
    }
    if (typeof m.event === 'string') {
      this.emit('event', { event: m.event, data: m.data as Record<string, unknown> | undefined });
      return;
    }
    const p = typeof m.id === 'string' ? this.pending.get(m.id) : undefined;
    if (!p) return;
    this.pending.delete(m.id as string);
    clearTimeout(p.timer);
    if (m.error) {
      const e = m.error as { class: string; desc: string };
      p.reject(new QmpError(p.command, e.class, e.desc));
    } else p.resolve(m.return);
  }
}
