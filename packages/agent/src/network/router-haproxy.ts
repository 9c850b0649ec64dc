/**
 * Load balancers on an isolated network's router: one HAProxy per router, run in the router's
 * namespace and detached from the agent (it outlives it, like dnsmasq), listening on the public
 * addresses (eth1) and connecting to the members from the router's guest address. Its files live
 * in the router's directory: haproxy.cfg (written only after `haproxy -c` accepted it, so a bad
 * configuration never replaces a good one) and haproxy.pid. A changed configuration is applied by
 * a graceful reload (`-sf <old pid>`: the old process finishes its connections while the new one
 * takes new ones); no load balancer left means no HAProxy.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { RouterLoadBalancer } from '@nimbostack/protocol';
import { DriverError } from '../drivers/driver.ts';
import { run } from '../drivers/kvm/exec.ts';
import { killProcess, processAlive, readPid, waitFor, writeAtomic } from './processes.ts';

export const HAPROXY = '/usr/sbin/haproxy';
const TOKEN = /^[A-Za-z0-9_.-]{1,64}$/;
const SIZE = /^\d{1,9}[kmg]?$/;
const DURATION = /^\d{1,9}(us|ms|s|m|h|d)?$/;
const PATH = /^\/[\x21-\x7e]{0,1023}$/;

/** HAProxy names allow letters, digits, '-', '_', '.' and ':'; rule ids are uuids in practice. */
const safeId = (id: string) => id.replace(/[^A-Za-z0-9_.:-]/g, '_');

function param(params: Record<string, string>, names: string[], fallback: string, valid: RegExp): string {
  for (const n of names) {
    const v = params[n];
    if (v !== undefined && v !== '') {
      if (!valid.test(v))
        throw new DriverError(`stickiness parameter ${n}=${JSON.stringify(v)} is not valid`);
      return v;
    }
  }
  return fallback;
}

/** Cookie stickiness needs HAProxy to read HTTP: such a load balancer runs in http mode. */
const modeOf = (lb: RouterLoadBalancer) =>
  lb.protocol === 'http' || (lb.stickiness && lb.stickiness.method !== 'SourceBased') ? 'http' : 'tcp';

function backend(lb: RouterLoadBalancer): string[] {
  const mode = modeOf(lb);
  const out = [`backend b-${safeId(lb.id)}`, `  mode ${mode}`, `  balance ${lb.algorithm}`];
  if (mode === 'http') out.push('  option forwardfor');
  let cookies = false;
  const s = lb.stickiness;
  if (s?.method === 'SourceBased') {
    const size = param(s.params, ['tablesize', 'table-size'], '200k', SIZE);
    const expire = param(s.params, ['expire'], '30m', DURATION);
    out.push(`  stick-table type ip size ${size} expire ${expire}`, '  stick on src');
  } else if (s?.method === 'LbCookie') {
    const name = param(s.params, ['cookie-name', 'cookiename', 'name'], 'SRVID', TOKEN);
    out.push(`  cookie ${name} insert indirect nocache`);
    cookies = true;
  } else if (s?.method === 'AppCookie') {
    // Upstream's appsession is gone from HAProxy (1.6+): prefixing the application's own cookie
    // with the server's name keeps a session on its server the same way.
    const name = param(s.params, ['cookie-name', 'cookiename', 'name'], 'JSESSIONID', TOKEN);
    out.push(`  cookie ${name} prefix nocache`);
    cookies = true;
  }
  const hc = lb.healthCheck;
  if (hc) {
    if (hc.pingPath !== undefined) {
      if (!PATH.test(hc.pingPath))
        throw new DriverError(`health check path ${JSON.stringify(hc.pingPath)} is not valid`);
      out.push(`  option httpchk GET ${hc.pingPath}`);
    }
    out.push(
      `  timeout check ${hc.timeoutSec}s`,
      `  default-server inter ${hc.intervalSec}s fall ${hc.unhealthyThreshold} rise ${hc.healthyThreshold}`,
    );
  }
  lb.members.forEach((m, i) => {
    out.push(
      `  server m${i} ${m.ip}:${lb.privatePort}${hc ? ' check' : ''}${cookies ? ` cookie m${i}` : ''}`,
    );
  });
  return out;
}

/** The HAProxy configuration of a router's load balancers (pure: text out of the rules). */
export function haproxyConfig(router: string, lbs: RouterLoadBalancer[]): string {
  const seen = new Set<string>();
  for (const lb of lbs) {
    const key = `${lb.publicIp}:${lb.publicPort}`;
    if (seen.has(key)) throw new DriverError(`two load balancers listen on ${key}`);
    seen.add(key);
  }
  return [
    `# Load balancers of router ${router}, written by the nimbostack agent.`,
    'global',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 50s',
    '  timeout server 50s',
    ...lbs.flatMap((lb) => [
      `frontend f-${safeId(lb.id)}`,
      `  mode ${modeOf(lb)}`,
      `  bind ${lb.publicIp}:${lb.publicPort}`,
      `  default_backend b-${safeId(lb.id)}`,
      ...backend(lb),
    ]),
    '',
  ].join('\n');
}

/**
 * Checks the configuration of `lbs` with `haproxy -c` before anything of the router changes, so a
 * configuration HAProxy refuses is refused whole and the running one stays. Returns the checked
 * text for ensureHaproxy (undefined: no load balancer, so no HAProxy).
 */
export async function checkHaproxy(
  router: string,
  dir: string,
  lbs: RouterLoadBalancer[],
): Promise<string | undefined> {
  if (!lbs.length) return undefined;
  if (!existsSync(HAPROXY))
    throw new DriverError(`${HAPROXY} is not installed on this host (Debian package haproxy)`);
  const text = haproxyConfig(router, lbs);
  const cfg = join(dir, 'haproxy.cfg');
  if (existsSync(cfg) && readFileSync(cfg, 'utf8') === text) return text;
  const candidate = `${cfg}.new`;
  writeAtomic(candidate, text);
  try {
    await run(HAPROXY, ['-c', '-q', '-f', candidate]);
  } catch (err) {
    throw new DriverError(`the load balancer configuration was refused: ${(err as Error).message}`);
  } finally {
    rmSync(candidate, { force: true });
  }
  return text;
}

/**
 * Brings the router's HAProxy in line with the checked configuration: started, reloaded
 * gracefully when it changed, restarted when it died, stopped when there is nothing to balance.
 * Returns how long the start or reload took, until the new process listens; undefined when
 * nothing had to run.
 */
export async function ensureHaproxy(
  ns: string,
  dir: string,
  text: string | undefined,
): Promise<number | undefined> {
  const cfg = join(dir, 'haproxy.cfg');
  const pidFile = join(dir, 'haproxy.pid');
  if (text === undefined) {
    await stopHaproxy(dir);
    return undefined;
  }
  const oldPid = readPid(pidFile);
  const running = processAlive(oldPid, cfg);
  const current = existsSync(cfg) ? readFileSync(cfg, 'utf8') : undefined;
  if (running && current === text) return undefined;
  writeAtomic(cfg, text);

  const t0 = performance.now();
  // -D: the command returns once HAProxy is bound and detached; -sf lets the old one finish.
  await run('ip', [
    ...['netns', 'exec', ns, HAPROXY, '-f', cfg, '-p', pidFile, '-D'],
    ...(running ? ['-sf', String(oldPid)] : []),
  ]);
  await waitFor(
    () => {
      const pid = readPid(pidFile);
      return pid !== oldPid && processAlive(pid, cfg);
    },
    10_000,
    'HAProxy',
  );
  return Math.round((performance.now() - t0) * 10) / 10;
}

export async function stopHaproxy(dir: string): Promise<void> {
  const cfg = join(dir, 'haproxy.cfg');
  const pidFile = join(dir, 'haproxy.pid');
  await killProcess(readPid(pidFile), cfg);
  rmSync(pidFile, { force: true });
  rmSync(cfg, { force: true });
}
