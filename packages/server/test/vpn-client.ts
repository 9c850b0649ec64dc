/**
 * A remote-access VPN client for real-host suites: a namespace on the zone's public bridge running
 * its own strongSwan charon (own config, VICI socket and pid file, as the agent runs the routers'),
 * connecting with IKEv2 to a remote-access VPN: the VPN's pre-shared key, EAP-MSCHAPv2 as a VPN user.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHARON, SWANCTL, strongswanConf } from '../../agent/src/network/router-vpn.ts';
import { waitUntil } from './agents.ts';
import { quiet, removeNamespace, sh } from './kvm-advanced-zone.ts';

export class VpnClient {
  private daemon?: ChildProcess;

  /** `dir` holds its files; `start` creates the namespace `ns` and its veth `veth`. */
  constructor(
    readonly dir: string,
    readonly ns: string,
    private readonly veth: string,
  ) {}

  private get uri() {
    return `unix://${join(this.dir, 'charon.vici')}`;
  }

  /** Plugs the namespace into `bridge` and starts charon with the connection `ra` to `vpn`'s address. */
  async start(
    bridge: string,
    cidr: string,
    vpn: { publicip: string; presharedkey: string },
    user: { username: string; password: string },
    remoteCidr: string,
  ): Promise<void> {
    sh('ip', ['netns', 'add', this.ns]);
    sh('ip', ['link', 'add', this.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.ns]);
    sh('ip', ['-n', this.ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', this.ns, 'addr', 'add', cidr, 'dev', 'eth0']);
    sh('ip', ['-n', this.ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['link', 'set', this.veth, 'master', bridge]);
    sh('ip', ['link', 'set', this.veth, 'up']);
    mkdirSync(join(this.dir, 'run'), { recursive: true });
    writeFileSync(join(this.dir, 'strongswan.conf'), strongswanConf(this.dir, true));
    writeFileSync(
      join(this.dir, 'swanctl.conf'),
      `connections { ra { version = 2
  remote_addrs = ${vpn.publicip}
  vips = 0.0.0.0
  local { auth = eap-mschapv2
    eap_id = ${user.username} }
  remote { auth = psk
    id = ${vpn.publicip} }
  children { ra { remote_ts = ${remoteCidr} } } } }
secrets { ike-1 { id = ${vpn.publicip}
    secret = "${vpn.presharedkey}" }
  eap-1 { id = ${user.username}
    secret = "${user.password}" } }
`,
    );
    // charon's pid file path is compiled in: a private /run, as the agent does for routers.
    this.daemon = spawn(
      'ip',
      [
        'netns',
        'exec',
        this.ns,
        'sh',
        '-c',
        'mount --bind "$1/run" /run && STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"',
        'charon',
        this.dir,
        CHARON,
      ],
      { stdio: 'ignore' },
    );
    await waitUntil(async () => existsSync(join(this.dir, 'charon.vici')), 10_000, 'the VPN client daemon');
    sh(SWANCTL, ['--load-all', '--noprompt', '--file', join(this.dir, 'swanctl.conf'), '--uri', this.uri]);
  }

  /** Brings the tunnel up (again); returns how long it took. */
  connect(): number {
    const t0 = Date.now();
    const up = spawnSync(SWANCTL, ['--initiate', '--child', 'ra', '--timeout', '20', '--uri', this.uri], {
      encoding: 'utf8',
    });
    const log = join(this.dir, 'charon.log');
    assert.equal(
      up.status,
      0,
      `the client connects\n${up.stdout}\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : ''}`,
    );
    return Date.now() - t0;
  }

  /** Ends the tunnel (the client's side of it). */
  terminate(): void {
    quiet(SWANCTL, ['--terminate', '--ike', 'ra', '--uri', this.uri, '--timeout', '3']);
  }

  /** Whether the namespace pings `ip`. */
  ping(ip: string): boolean {
    return quiet('ip', ['netns', 'exec', this.ns, 'ping', '-c', '1', '-W', '1', ip]);
  }

  stop(): void {
    this.daemon?.kill('SIGKILL');
    removeNamespace(this.ns);
    quiet('ip', ['link', 'del', this.veth]);
  }
}
