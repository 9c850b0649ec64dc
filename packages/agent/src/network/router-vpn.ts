/**
 * A router's VPNs: one strongSwan IKE daemon (charon) in the router's namespace, configured and
 * driven over its own VICI socket with swanctl. Everything lives in <router dir>/vpn/: the
 * daemon's strongswan.conf (STRONGSWAN_CONF), swanctl.conf, the VICI socket, its log, and run/
 * which is bind-mounted over /run in the daemon's private mount namespace, because charon's pid
 * file path is compiled in (/var/run/charon.pid) and several routers share a host.
 *
 * ESP: where the kernel has it (esp4 built in or loadable) the kernel does the encryption through
 * XFRM (kernel-netlink); otherwise charon's kernel-libipsec plugin does it in user space over a
 * TUN device (ipsec0) in the namespace, with routes to the remote networks in table 220. The
 * choice is made once per agent process from what the running kernel offers.
 *
 * Remote access is IKEv2: the router proves itself with the network's pre-shared key and each
 * user with EAP-MSCHAPv2 (username and password), who gets an address from the pool and reaches
 * the local networks. Site-to-site connections use the customer gateway's pre-shared key and
 * policies, IKEv1 or IKEv2 as it says; a connection is Connected while its IPsec SA is installed.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import type { RouterSiteToSite, RouterVpn, VpnConnectionState } from '@nimbostack/protocol';
import { DriverError } from '../drivers/driver.ts';
import { missingTool, run } from '../drivers/kvm/exec.ts';
import { exited, processAlive, readPid, waitFor, writeAtomic } from './processes.ts';

export const CHARON = '/usr/lib/ipsec/charon';
export const SWANCTL = '/usr/sbin/swanctl';
/** The TUN device kernel-libipsec creates in the namespace. */
export const LIBIPSEC_TUN = 'ipsec0';
const RA_CONN = 'remote-access';
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const s2sName = (id: string) => `s2s-${id}`;

/** Nothing to run: no remote-access VPN and no site-to-site connection. */
export const vpnEmpty = (vpn: RouterVpn | undefined): boolean =>
  !vpn || (!vpn.remoteAccess && vpn.siteToSite.length === 0);

let kernelEspCache: boolean | undefined;
/** Whether this kernel does ESP itself (esp4 built in or loadable as a module). */
export async function kernelEsp(): Promise<boolean> {
  if (kernelEspCache === undefined) {
    const builtin = `/lib/modules/${release()}/modules.builtin`;
    kernelEspCache =
      (existsSync(builtin) && /\/esp4\.ko$/m.test(readFileSync(builtin, 'utf8'))) ||
      (await run('modprobe', ['-q', 'esp4']).then(
        () => true,
        () => false,
      ));
  }
  return kernelEspCache;
}

/** charon's own configuration: only the plugins it needs, its socket and log in `dir`. */
export function strongswanConf(dir: string, userSpaceEsp: boolean): string {
  const plugins = [
    'random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 md5 hmac gmp kdf',
    userSpaceEsp ? 'kernel-libipsec kernel-netlink' : 'kernel-netlink',
    'socket-default vici updown eap-identity eap-mschapv2 attr',
  ].join(' ');
  return [
    '# Written by the nimbostack agent: one charon per router namespace.',
    'charon {',
    '  load_modular = no',
    `  load = ${plugins}`,
    // Routes to the remote networks (table 220) are what sends guest traffic into the tunnel.
    '  install_routes = yes',
    '  filelog {',
    '    log {',
    `      path = ${dir}/charon.log`,
    '      time_format = %F %T',
    '      default = 1',
    '    }',
    '  }',
    '  plugins {',
    '    vici {',
    `      socket = unix://${dir}/charon.vici`,
    '    }',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Secrets are written as hex so that no character of theirs can break the file's syntax. */
const hex = (s: string) => `0x${Buffer.from(s, 'utf8').toString('hex')}`;

/** Upstream's `aes128-sha1;modp1536,aes256-sha256` as strongSwan proposals. */
export function proposals(policy: string): string {
  return policy
    .split(',')
    .map((p) => p.replace(';', '-'))
    .join(',');
}

function siteToSite(c: RouterSiteToSite, encap: boolean): string[] {
  const version = c.ikeVersion === 'ikev1' ? 1 : c.ikeVersion === 'ikev2' ? 2 : 0;
  return [
    `  ${s2sName(c.id)} {`,
    `    version = ${version}`,
    `    local_addrs = ${c.localIp}`,
    `    remote_addrs = ${c.peerIp}`,
    `    proposals = ${proposals(c.ikePolicy)}`,
    ...(c.ikeLifetimeSec ? [`    rekey_time = ${c.ikeLifetimeSec}s`] : []),
    ...(c.dpd ? ['    dpd_delay = 30s'] : []),
    // An active side keeps trying until the peer answers (a peer configured minutes later still
    // gets the tunnel); strongSwan's default gives up after five retransmissions.
    ...(c.passive ? [] : ['    keyingtries = 0']),
    ...(c.forceEncap || encap ? ['    encap = yes'] : []),
    `    local { auth = psk
      id = ${c.localIp} }`,
    // A peer named by DNS presents whatever identity it has (usually its address): any is taken.
    `    remote { auth = psk
      id = ${IPV4.test(c.peerIp) ? c.peerIp : '%any'} }`,
    '    children {',
    `      ${s2sName(c.id)} {`,
    `        local_ts = ${c.localCidrs.join(',')}`,
    `        remote_ts = ${c.peerCidrs.join(',')}`,
    `        esp_proposals = ${proposals(c.espPolicy)}`,
    ...(c.espLifetimeSec ? [`        rekey_time = ${c.espLifetimeSec}s`] : []),
    // An active side brings the tunnel up at once and again after the peer was lost; a passive
    // one only answers.
    `        start_action = ${c.passive ? 'none' : 'start'}`,
    ...(c.dpd ? [`        dpd_action = ${c.passive ? 'clear' : 'restart'}`] : []),
    `        close_action = ${c.passive ? 'none' : 'start'}`,
    '      }',
    '    }',
    '  }',
  ];
}

/**
 * swanctl.conf for everything the router's VPNs are. With kernel ESP every connection is forced
 * into UDP (encap): the router's firewall opens UDP 500 and 4500 on a VPN address, not ESP itself.
 * kernel-libipsec always encapsulates.
 */
export function swanctlConf(vpn: RouterVpn, userSpaceEsp: boolean): string {
  const encap = !userSpaceEsp;
  const ra = vpn.remoteAccess;
  const connections = [
    ...(ra
      ? [
          `  ${RA_CONN} {`,
          '    version = 2',
          `    local_addrs = ${ra.publicIp}`,
          '    pools = clients',
          ...(encap ? ['    encap = yes'] : []),
          // What common IKEv2 clients (strongSwan, Windows, macOS/iOS) propose, then strongSwan's defaults.
          '    proposals = aes256-sha256-modp2048,aes128-sha1-modp1536,aes256-sha1-modp1024,default',
          `    local { auth = psk
      id = ${ra.publicIp} }`,
          `    remote { auth = eap-mschapv2
      eap_id = %any }`,
          '    children {',
          `      ${RA_CONN} {`,
          `        local_ts = ${ra.localCidrs.join(',')}`,
          '        esp_proposals = aes256-sha256,aes128-sha1,default',
          '      }',
          '    }',
          '  }',
        ]
      : []),
    ...vpn.siteToSite.flatMap((c) => siteToSite(c, encap)),
  ];
  const secrets = [
    ...(ra
      ? [
          // No id: the remote-access key answers every client, whatever identity it claims.
          `  ike-${RA_CONN} { secret = ${hex(ra.psk)} }`,
          ...ra.users.map(
            (u, i) => `  eap-${i} {
    id = ${u.username}
    secret = ${hex(u.password)}
  }`,
          ),
        ]
      : []),
    ...vpn.siteToSite.map(
      (c) => `  ike-${s2sName(c.id)} {
    id-local = ${c.localIp}
    id-peer = ${IPV4.test(c.peerIp) ? c.peerIp : '%any'}
    secret = ${hex(c.psk)}
  }`,
    ),
  ];
  return [
    '# Written by the nimbostack agent.',
    'connections {',
    ...connections,
    '}',
    ...(ra ? ['pools {', `  clients { addrs = ${ra.rangeStart}-${ra.rangeEnd} }`, '}'] : []),
    'secrets {',
    ...secrets,
    '}',
    '',
  ].join('\n');
}

export const vpnDir = (routerDir: string) => join(routerDir, 'vpn');
const uri = (dir: string) => `unix://${join(dir, 'charon.vici')}`;
const pidFile = (dir: string) => join(dir, 'run', 'charon.pid');

/** charon's pid when it is this router's daemon (its STRONGSWAN_CONF names our file). */
function charonPid(dir: string): number | undefined {
  const pid = readPid(pidFile(dir));
  if (!processAlive(pid, CHARON)) return undefined;
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').includes(`STRONGSWAN_CONF=${dir}/strongswan.conf`)
      ? pid
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Brings the router's VPNs in line with `vpn`: starts charon when it is needed and not running,
 * (re)loads the whole configuration, which drops connections, users and keys no longer in it, and
 * stops everything when nothing is left.
 */
export async function ensureVpn(ns: string, routerDir: string, vpn: RouterVpn | undefined): Promise<void> {
  const dir = vpnDir(routerDir);
  if (vpnEmpty(vpn)) return stopVpn(routerDir);
  for (const tool of [CHARON, SWANCTL])
    if (!existsSync(tool))
      throw new DriverError(missingTool(tool === CHARON ? 'strongswan-charon' : 'swanctl'));
  mkdirSync(join(dir, 'run'), { recursive: true });
  const userSpaceEsp = !(await kernelEsp());
  const conf = strongswanConf(dir, userSpaceEsp);
  const confFile = join(dir, 'strongswan.conf');
  const confChanged = !existsSync(confFile) || readFileSync(confFile, 'utf8') !== conf;
  writeAtomic(confFile, conf);
  writeAtomic(join(dir, 'swanctl.conf'), swanctlConf(vpn!, userSpaceEsp));
  let pid = charonPid(dir);
  if (pid && confChanged) {
    await stopCharon(dir, pid);
    pid = undefined;
  }
  if (!pid) await startCharon(ns, dir);
  // Several routers' forwarding: guests reach the tunnels and the clients through the namespace.
  await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await run(SWANCTL, [
    '--load-all',
    '--noprompt',
    '--file',
    join(dir, 'swanctl.conf'),
    '--uri',
    uri(dir),
  ]).catch((err: Error) => {
    throw new DriverError(`strongSwan refused the VPN configuration: ${err.message}`);
  });
}

async function startCharon(ns: string, dir: string): Promise<void> {
  rmSync(join(dir, 'charon.vici'), { force: true });
  const log = openSync(join(dir, 'charon.out'), 'a');
  // Detached in its own session so that it outlives the agent; the bind mount happens in the
  // private mount namespace `ip netns exec` gives it, never on the host.
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      'sh',
      '-c',
      'mount --bind "$1/run" /run && STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"',
      'charon',
      dir,
      CHARON,
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  child.unref();
  let exitCode: number | null | undefined;
  child.once('exit', (code) => {
    exitCode = code;
  });
  await waitFor(
    () => exitCode !== undefined || (existsSync(join(dir, 'charon.vici')) && !!charonPid(dir)),
    15_000,
    'strongSwan (charon)',
  );
  if (exitCode !== undefined)
    throw new DriverError(`strongSwan (charon) exited (${exitCode}): ${tail(join(dir, 'charon.out'))}`);
  child.removeAllListeners('exit');
}

async function stopCharon(dir: string, pid: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  await waitFor(() => exited(pid), 5000, `charon ${pid} to stop`).catch(() => {
    if (!exited(pid)) process.kill(pid, 'SIGKILL');
  });
  await waitFor(() => exited(pid), 3000, `charon ${pid} to stop`).catch(() => undefined);
  // Its TUN device goes with it; a daemon killed hard may leave the pid file.
  rmSync(pidFile(dir), { force: true });
}

/** Stops charon (its tunnels, TUN device and routes go with it) and removes its files. */
export async function stopVpn(routerDir: string): Promise<void> {
  const dir = vpnDir(routerDir);
  const pid = charonPid(dir);
  if (pid) await stopCharon(dir, pid);
  rmSync(dir, { recursive: true, force: true });
}

/** Each site-to-site connection's state as the daemon has it now. */
export async function vpnStatus(
  routerDir: string,
  vpn: RouterVpn | undefined,
): Promise<VpnConnectionState[]> {
  const connections = vpn?.siteToSite ?? [];
  if (!connections.length) return [];
  const dir = vpnDir(routerDir);
  if (!charonPid(dir))
    return connections.map((c) => ({ id: c.id, state: 'Error', detail: 'strongSwan is not running' }));
  const out: VpnConnectionState[] = [];
  for (const c of connections) {
    const sas = await run(SWANCTL, [
      '--list-sas',
      '--noblock',
      '--ike',
      s2sName(c.id),
      '--uri',
      uri(dir),
    ]).catch((err: Error) => err);
    if (sas instanceof Error) out.push({ id: c.id, state: 'Error', detail: sas.message.slice(0, 1024) });
    else
      out.push({
        id: c.id,
        state: /\bESTABLISHED\b/.test(sas) && /\bINSTALLED\b/.test(sas) ? 'Connected' : 'Disconnected',
      });
  }
  return out;
}

/** Drops a site-to-site connection's SAs and starts it again (resetVpnConnection). */
export async function resetConnection(routerDir: string, c: RouterSiteToSite): Promise<void> {
  const dir = vpnDir(routerDir);
  await run(SWANCTL, [
    '--terminate',
    '--ike',
    s2sName(c.id),
    '--force',
    '--timeout',
    '5',
    '--uri',
    uri(dir),
  ]).catch(
    () => undefined, // Nothing to terminate: the tunnel was down already.
  );
  if (!c.passive)
    await run(SWANCTL, ['--initiate', '--child', s2sName(c.id), '--timeout', '1', '--uri', uri(dir)]).catch(
      () => undefined, // Not up within a second: the daemon keeps trying; the state says how it went.
    );
}

function tail(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-2).join(' ') : '';
}
