/**
 * Shared by the KVM test suites: the test template (built once by scripts/build-test-template.sh,
 * then reused), reading the guest's serial console, and whether QEMU is installed at all.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
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

/**
 * What a CloudStack virtual router offers a guest, stood in for on a bridge of this machine:
 * DHCP (dnsmasq), metadata and user data over HTTP on port 80, the password service on 8080.
 */
export class StandInRouter {
  readonly bridge = `nbt${process.pid % 100000}`;
  readonly net = `10.251.${process.pid % 250}`;
  readonly gateway = `${this.net}.1`;
  passwordAcknowledged = false;
  private dnsmasqPid = 0;
  private readonly servers: Server[] = [];

  constructor(
    private readonly dir: string,
    private readonly guest: {
      mac: string;
      ip: string;
      uuid: string;
      hostname: string;
      userData: string;
      sshKey: string;
      password: string;
    },
  ) {}

  async start(): Promise<void> {
    const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
    ip('link', 'add', this.bridge, 'type', 'bridge');
    ip('addr', 'add', `${this.gateway}/24`, 'dev', this.bridge);
    ip('link', 'set', this.bridge, 'up');
    const pidFile = join(this.dir, 'dnsmasq.pid');
    execFileSync('dnsmasq', [
      '--strict-order',
      '--bind-interfaces',
      `--interface=${this.bridge}`,
      '--except-interface=lo',
      `--listen-address=${this.gateway}`,
      '--port=0',
      `--dhcp-range=${this.net}.100,${this.net}.150,255.255.255.0,1h`,
      `--dhcp-host=${this.guest.mac},${this.guest.ip}`,
      `--dhcp-leasefile=${join(this.dir, 'dnsmasq.leases')}`,
      `--pid-file=${pidFile}`,
    ]);
    this.dnsmasqPid = Number(readFileSync(pidFile, 'utf8').trim());
    const g = this.guest;
    const metadata: Record<string, string> = {
      '/latest/meta-data/instance-id': g.uuid,
      '/latest/meta-data/local-hostname': g.hostname,
      '/latest/meta-data/local-ipv4': g.ip,
      '/latest/meta-data/public-keys': g.sshKey,
      '/latest/user-data': g.userData,
    };
    let passwordServed = false;
    const handlers: [number, RequestListener][] = [
      [
        80,
        (req, res) => {
          const body = metadata[req.url ?? ''];
          res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain' }).end(body ?? '');
        },
      ],
      [
        8080,
        (req, res) => {
          const ask = req.headers.domu_request;
          if (ask === 'saved_password') this.passwordAcknowledged = true;
          const reply =
            ask === 'send_my_password' ? (passwordServed ? 'saved_password' : g.password) : 'saved_password';
          if (ask === 'send_my_password') passwordServed = true;
          res.writeHead(200, { 'content-type': 'text/plain' }).end(reply);
        },
      ],
    ];
    for (const [port, handler] of handlers) {
      const server = createServer(handler);
      await new Promise<void>((r) => server.listen(port, this.gateway, r));
      this.servers.push(server);
    }
  }

  async stop(): Promise<void> {
    for (const s of this.servers) await new Promise((r) => s.close(r));
    if (this.dnsmasqPid) {
      try {
        process.kill(this.dnsmasqPid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    try {
      execFileSync('ip', ['link', 'del', this.bridge], { stdio: 'pipe' });
    } catch {
      // Never created.
    }
  }
}
