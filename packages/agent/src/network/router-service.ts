/**
 * The router service: one node process per virtual router, started by the agent inside the
 * router's network namespace and detached from it, so it outlives agent restarts. It serves, keyed
 * by the client's source address (anti-spoofing on the host guarantees it is the VM's):
 *
 * - CloudStack's metadata on port 80: /latest/user-data (decoded), /latest/meta-data/ (listing)
 *   and /latest/meta-data/<key>; upstream's router also answers /latest/<key>, which old guest
 *   scripts (cloud-set-guest-sshkey: /latest/public-keys) use.
 * - CloudStack's password service on port 8080: `DomU_Request: send_my_password` answers the
 *   pending password (until the guest confirms it) or `saved_password`; `DomU_Request:
 *   saved_password` forgets it and answers `saved_password`; anything else `bad_request`.
 *
 *   node --import tsx router-service.ts <router dir>
 *
 * The VM entries come from <dir>/vms.json, which the agent replaces atomically; the service
 * reloads it when it changes and on SIGHUP. Passwords the guests confirmed are remembered in
 * <dir>/passwords-saved.json by the id the agent gave each password, so a reload does not hand a
 * saved password out again, and a new password (a new id) is served again.
 */
import { existsSync, readFileSync, renameSync, watch, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';

export interface ServiceEntry {
  mac: string;
  ip: string;
  hostname: string;
  instanceId: string;
  vmName: string;
  userData?: string;
  publicKeys: string[];
  serviceOffering?: string;
  availabilityZone?: string;
  password?: string;
  /** Identifies one password handed to the router (a new one on every change). */
  passwordId?: string;
}

/** The meta-data keys and their values for one VM, in upstream's order. */
export function metadataOf(e: ServiceEntry): [string, string][] {
  const keys: [string, string | undefined][] = [
    ['availability-zone', e.availabilityZone],
    ['instance-id', e.instanceId],
    ['local-hostname', e.hostname],
    ['local-ipv4', e.ip],
    // Guest networks here have no public address of their own: upstream answers the guest's.
    ['public-hostname', e.hostname],
    ['public-ipv4', e.ip],
    ['public-keys', e.publicKeys.length ? e.publicKeys.join('\n') : undefined],
    ['service-offering', e.serviceOffering],
    ['vm-id', e.vmName],
  ];
  return keys.filter((k): k is [string, string] => k[1] !== undefined);
}

export class RouterService {
  private byIp = new Map<string, ServiceEntry>();
  private saved = new Set<string>();
  private readonly servers: Server[] = [];

  constructor(private readonly dir: string) {
    this.reload();
    try {
      this.saved = new Set(JSON.parse(readFileSync(this.savedFile, 'utf8')) as string[]);
    } catch {
      // No password confirmed yet.
    }
  }

  private get savedFile() {
    return join(this.dir, 'passwords-saved.json');
  }

  reload(): void {
    try {
      const { vms } = JSON.parse(readFileSync(join(this.dir, 'vms.json'), 'utf8')) as { vms: ServiceEntry[] };
      this.byIp = new Map(vms.map((e) => [e.ip, e]));
    } catch (err) {
      // Keep serving the last good entries; the agent rewrites the file atomically.
      process.stderr.write(`router-service: cannot read vms.json: ${(err as Error).message}\n`);
    }
  }

  async listen(host = '0.0.0.0', ports = { metadata: 80, password: 8080 }): Promise<void> {
    for (const [port, handler] of [
      [ports.metadata, this.metadata],
      [ports.password, this.password],
    ] as const) {
      const server = createServer((req, res) => {
        try {
          handler.call(this, req, res);
        } catch (err) {
          res.writeHead(500).end(`${(err as Error).message}\n`);
        }
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      this.servers.push(server);
    }
  }

  close(): Promise<void> {
    return Promise.all(this.servers.map((s) => new Promise((r) => s.close(r)))).then(() => undefined);
  }

  private client(req: IncomingMessage): ServiceEntry | undefined {
    const ip = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    return this.byIp.get(ip);
  }

  private metadata(req: IncomingMessage, res: ServerResponse): unknown {
    const text = (status: number, body: string) =>
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'method not allowed\n');
    const path = (req.url ?? '/').split('?')[0].replace(/\/+/g, '/');
    const vm = this.client(req);
    if (!vm) return text(404, 'no metadata for this address\n');
    const meta = metadataOf(vm);
    if (path === '/latest' || path === '/latest/') return text(200, 'meta-data\nuser-data\n');
    if (path === '/latest/user-data' || path === '/latest/user-data/') {
      if (!vm.userData) return text(404, 'no user data\n');
      return res
        .writeHead(200, { 'content-type': 'application/octet-stream' })
        .end(Buffer.from(vm.userData, 'base64'));
    }
    if (path === '/latest/meta-data' || path === '/latest/meta-data/')
      return text(200, `${meta.map(([k]) => k).join('\n')}\n`);
    const key = /^\/latest\/(?:meta-data\/)?([a-z0-9-]+)\/?$/.exec(path)?.[1];
    const value = meta.find(([k]) => k === key)?.[1];
    if (value === undefined) return text(404, 'not found\n');
    return text(200, value);
  }

  private password(req: IncomingMessage, res: ServerResponse): unknown {
    const reply = (body: string) => res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    const ask = req.headers.domu_request;
    const vm = this.client(req);
    const pending = vm?.password && vm.passwordId && !this.saved.has(vm.passwordId) ? vm : undefined;
    if (ask === 'send_my_password') return reply(pending ? pending.password! : 'saved_password');
    if (ask === 'saved_password') {
      if (pending) {
        this.saved.add(pending.passwordId!);
        // Only ids of passwords the router still holds are kept, so the file stays small.
        const live = new Set([...this.byIp.values()].map((e) => e.passwordId).filter(Boolean));
        this.saved = new Set([...this.saved].filter((id) => live.has(id)));
        writeFileSync(`${this.savedFile}.tmp`, JSON.stringify([...this.saved]));
        renameSync(`${this.savedFile}.tmp`, this.savedFile);
      }
      return reply('saved_password');
    }
    return reply('bad_request');
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir || !existsSync(join(dir, 'vms.json'))) {
    process.stderr.write(
      'usage: router-service.ts <router dir holding vms.json> [listen addresses, comma-separated]\n',
    );
    process.exit(2);
  }
  const service = new RouterService(dir);
  try {
    // The router's guest addresses when given (one per guest network: a VPC router serves each
    // tier on its gateway): its public addresses are not the service's.
    for (const address of (process.argv[3] ?? '0.0.0.0').split(',')) await service.listen(address);
  } catch (err) {
    process.stderr.write(`router-service: ${(err as Error).message}\n`);
    process.exit(1);
  }
  process.on('SIGHUP', () => service.reload());
  process.on('SIGTERM', () => void service.close().then(() => process.exit(0)));
  // The agent renames a new vms.json into place: watching the directory sees the rename.
  watch(dir, (_event, file) => {
    if (file === 'vms.json') service.reload();
  });
  process.stderr.write(`router-service: serving ${dir} (pid ${process.pid})\n`);
  // Tells the agent the ports are bound (it waits for this file to name this process).
  writeFileSync(join(dir, 'service.ready'), String(process.pid));
}

if (process.argv[1]?.endsWith('router-service.ts')) void main();
