/**
 * Shared by the KVM test suites: the test template (built once by scripts/build-test-template.sh,
 * then reused), reading the guest's serial console, and whether QEMU is installed at all.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { type WebSocket, WebSocketServer } from 'ws';

export const REPO = resolve(import.meta.dirname, '../../..');
export const QEMU = '/usr/bin/qemu-system-x86_64';
export const HAVE_QEMU = existsSync(QEMU);
/**
 * Real VMs take minutes under TCG, so they run in their own suite (`npm run test:kvm`, which sets
 * NIMBOSTACK_TEST_KVM=1 and so fails loudly if QEMU is missing), not in `npm test`.
 */
export const SKIP_KVM =
  process.env.NIMBOSTACK_TEST_KVM === '1'
    ? false
    : HAVE_QEMU
      ? 'real-VM suite: run it with npm run test:kvm'
      : `${QEMU} is absent: install it with npm run setup:host, then run npm run test:kvm`;

export const TEMPLATE = process.env.NIMBOSTACK_TEST_TEMPLATE ?? '/var/lib/nimbostack/test-template.qcow2';

/** Builds the template unless a build of the same script and kernel exists; returns its path. */
export function ensureTemplate(): { path: string; buildMs: number } {
  const t0 = Date.now();
  execFileSync(join(REPO, 'scripts/build-test-template.sh'), [TEMPLATE], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { path: TEMPLATE, buildMs: Date.now() - t0 };
}

export function logSize(path: string): number {
  return existsSync(path) ? readFileSync(path).length : 0;
}

/** Waits until the guest printed a line matching `pattern` at or after byte `from` of its console log. */
export async function waitForConsole(
  path: string,
  pattern: RegExp,
  timeoutMs = 120_000,
  from = 0,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(path)
      ? readFileSync(path).subarray(from).toString('utf8').replace(/\r/g, '')
      : '';
    const line = text.split('\n').find((l) => pattern.test(l));
    if (line) return line;
    if (Date.now() > deadline)
      throw new Error(
        `no console line matching ${pattern} within ${timeoutMs} ms; console:\n${text.slice(-2000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Figures printed by the suites, collected for docs/kvm.md. */
/**
 * The host's guest-network links (the server names bridges nsbr<id> and VXLAN links vx<vni>). A
 * test server's network ids start at 1 like every other's, so a suite deletes the ones it created,
 * or the next suite's router and bridge would collide with them.
 */
export const guestLinks = (): string[] =>
  execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => /^(nsbr|vx)/.test(n));

export function figure(name: string, ms: number): void {
  process.stdout.write(`# figure ${name}: ${(ms / 1000).toFixed(2)} s\n`);
}

/** A stand-in management server: records frames, sends commands to the socket a host started on. */
export class StandInServer {
  wss!: WebSocketServer;
  frames: any[] = [];
  private readonly hostSockets = new Map<string, WebSocket>();
  private waiters: { match: (m: any) => boolean; resolve: (m: any) => void }[] = [];
  private n = 0;

  async listen(): Promise<number> {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => this.wss.once('listening', r));
    this.wss.on('connection', (ws) => {
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.type === 'startup') this.hostSockets.set(m.host, ws);
        this.frames.push(m);
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(m)) return true;
          w.resolve(m);
          return false;
        });
      });
    });
    return (this.wss.address() as AddressInfo).port;
  }

  next(match: (m: any) => boolean, timeoutMs = 10_000): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching frame in time')), timeoutMs);
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** The next ping that reports `host`, as its list of VM states. */
  async nextPing(host: string, timeoutMs = 10_000): Promise<{ name: string; state: string }[]> {
    const ping = await this.next(
      (m) => m.type === 'ping' && m.hosts.some((h: any) => h.host === host),
      timeoutMs,
    );
    return ping.hosts.find((h: any) => h.host === host).vms;
  }

  async command(host: string, kind: string, payload: object, timeoutMs = 10_000): Promise<any> {
    const id = `c${++this.n}`;
    const answer = this.next((m) => m.type === 'answer' && m.id === id, timeoutMs + 1000);
    this.hostSockets.get(host)!.send(JSON.stringify({ type: 'command', id, host, kind, payload, timeoutMs }));
    const a = await answer;
    if (!a.ok) throw new Error(`${kind} on ${host} failed: ${a.error.code} ${a.error.message}`);
    return a.result;
  }

  async close(): Promise<void> {
    for (const s of this.wss.clients) s.terminate();
    await new Promise((r) => this.wss.close(r));
  }
}
