/**
 * A throw-away OpenStack Swift "all in one" (Debian's swift 2.30 packages) for the image store
 * tests: object, container and account servers with one-replica rings, a proxy with tempauth
 * (account "test", user "tester", key "testing") and the s3api layer, and a memcached, every one
 * on a free loopback port, with rings and devices under a temporary directory. The recipe is
 * /work/shared/docs/storage-feasibility.md's, with ports chosen at start so two suites can run.
 * stop() kills every process it started and removes the directory.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SWIFT_ACCOUNT = 'test';
export const SWIFT_USER = 'tester';
export const SWIFT_KEY = 'testing';

export interface Swift {
  /** http://127.0.0.1:<port>: the proxy, serving both the Swift API and S3 (s3api). */
  endpoint: string;
  /** The Swift v1.0 auth URL (upstream's addSwift url). */
  authUrl: string;
  dir: string;
  stop(): Promise<void>;
}

/** True when Debian's Swift servers are installed (the suite skips without them). */
export function swiftInstalled(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v swift-proxy-server && command -v memcached'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function serverConf(dir: string, name: string, port: number): string {
  return `[DEFAULT]
swift_dir = ${dir}/etc
devices = ${dir}/srv
mount_check = false
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
log_name = ${name}
[pipeline:main]
pipeline = ${name}-server
[app:${name}-server]
use = egg:swift#${name}
[${name}-replicator]
[${name}-auditor]
[${name}-updater]
`;
}

function proxyConf(dir: string, port: number, memcachePort: number): string {
  return `[DEFAULT]
swift_dir = ${dir}/etc
bind_ip = 127.0.0.1
bind_port = ${port}
workers = 0
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${memcachePort}
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_${SWIFT_ACCOUNT}_${SWIFT_USER} = ${SWIFT_KEY} .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
`;
}

async function healthy(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

export async function startSwift(): Promise<Swift> {
  const dir = mkdtempSync(join(tmpdir(), 'nimbo-swift-'));
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const force = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(force);
              resolve();
            });
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    mkdirSync(join(dir, 'etc'));
    mkdirSync(join(dir, 'srv/d1'), { recursive: true });
    mkdirSync(join(dir, 'log'));
    writeFileSync(
      join(dir, 'etc/swift.conf'),
      '[swift-hash]\nswift_hash_path_suffix = nimbo-test\nswift_hash_path_prefix = nimbo-test\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n',
    );
    const ports = {
      object: await freePort(),
      container: await freePort(),
      account: await freePort(),
      proxy: await freePort(),
      memcached: await freePort(),
    };
    for (const name of ['object', 'container', 'account'] as const) {
      writeFileSync(join(dir, `etc/${name}-server.conf`), serverConf(dir, name, ports[name]));
      const builder = `${name}.builder`;
      const cwd = join(dir, 'etc');
      execFileSync('swift-ring-builder', [builder, 'create', '8', '1', '1'], { cwd, stdio: 'pipe' });
      execFileSync('swift-ring-builder', [builder, 'add', `r1z1-127.0.0.1:${ports[name]}/d1`, '100'], {
        cwd,
        stdio: 'pipe',
      });
      execFileSync('swift-ring-builder', [builder, 'rebalance'], { cwd, stdio: 'pipe' });
    }
    writeFileSync(join(dir, 'etc/proxy-server.conf'), proxyConf(dir, ports.proxy, ports.memcached));
    const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    children.push(
      spawn('memcached', ['-l', '127.0.0.1', '-p', String(ports.memcached), '-U', '0', '-m', '64', ...user], {
        stdio: 'ignore',
      }),
    );
    for (const name of ['object', 'container', 'account', 'proxy'] as const)
      children.push(
        spawn(`swift-${name}-server`, [join(dir, `etc/${name}-server.conf`)], {
          stdio: ['ignore', 'ignore', 'ignore'],
        }),
      );
    const endpoint = `http://127.0.0.1:${ports.proxy}`;
    const deadline = Date.now() + 60_000;
    while (!(await healthy(`${endpoint}/healthcheck`))) {
      const dead = children.find((c) => c.exitCode !== null);
      if (dead) throw new Error(`a Swift process exited with ${dead.exitCode} (${dead.spawnargs.join(' ')})`);
      if (Date.now() > deadline) throw new Error('Swift did not answer its health check within 60 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    return { endpoint, authUrl: `${endpoint}/auth/v1.0`, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
