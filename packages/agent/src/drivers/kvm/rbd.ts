/**
 * How a KVM host reaches one Ceph RBD pool: the pool's monitor, its RADOS pool (the location's
 * `path`) and the cephx user and key the server sends with it. Nothing of the cluster is set up
 * on the host beforehand:
 * - the `rbd`, `ceph` and `rados` CLIs and qemu-img get a ceph.conf and keyring written for the
 *   session only (a private temporary directory, files 0600, removed when it ends), so the key
 *   is never on a command line;
 * - a VM's QEMU opens an image with its rbd block driver (librbd, Debian's qemu-block-extra), the
 *   key passed as a QEMU secret object (rbdSecret), never on the command line in clear.
 * Without a key in the location the host's own /etc/ceph configuration is used (an operator's
 * keyring for the user). Volumes are raw RBD images named by volume uuid.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StorageLocation } from '@nimbostack/protocol';
import { DriverError, type PoolRecords } from '../driver.ts';
import { run, runWithInput } from './exec.ts';
import type { VolumeStore } from './volume-store.ts';

/** The port Ceph monitors listen on (msgr v1) when the pool's URL names none. */
export const CEPH_MON_PORT = 6789;
/** Image, snapshot and pool names the agent accepts (no ':' '@' '/' that rbd: specs parse). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkName(name: string, what = 'RBD image'): string {
  if (!NAME.test(name)) throw new DriverError(`invalid ${what} name ${JSON.stringify(name)}`);
  return name;
}

/** The monitor as ceph.conf's mon_host names it (an IPv6 address in brackets). */
function monHost(pool: StorageLocation): string {
  if (!pool.host) throw new DriverError(`RBD pool ${pool.uuid} names no Ceph monitor`);
  const host = pool.host.includes(':') ? `[${pool.host}]` : pool.host;
  return `${host}:${pool.port ?? CEPH_MON_PORT}`;
}

/** The QEMU secret object id of a disk's cephx key. */
export const rbdSecretId = (node: string) => `sec-${node}`;

/**
 * The blockdev protocol node of an image (QEMU's rbd driver). The key comes from the secret
 * object `key.secretId` names (created by the caller before the node: a VM's disks), or from a
 * session's conf and keyring files (`key.conf`: read when the node is opened, inside the session).
 */
export function rbdBlockFile(
  pool: StorageLocation,
  image: string,
  readOnly: boolean,
  key: { secretId?: string; conf?: string } = {},
): Record<string, unknown> {
  if (!pool.host) throw new DriverError(`RBD pool ${pool.uuid} names no Ceph monitor`);
  return {
    driver: 'rbd',
    pool: checkName(pool.path, 'Ceph pool'),
    image: checkName(image),
    ...(key.conf && !key.secretId ? { conf: key.conf } : {}),
    server: [{ host: pool.host, port: String(pool.port ?? CEPH_MON_PORT) }],
    ...(pool.user ? { user: pool.user } : {}),
    ...(pool.secret && key.secretId ? { 'key-secret': key.secretId, 'auth-client-required': ['cephx'] } : {}),
    'read-only': readOnly,
  };
}

/**
 * One session with a pool: its conf and keyring files exist from open() to close(). Every rbd:
 * spec it gives (image()) is valid only meanwhile. It is the pool's VolumeStore (volume-store.ts:
 * a source or target of copies and live moves between pool types).
 */
export class RbdSession implements PoolRecords, VolumeStore {
  readonly volumeFormat = 'raw' as const;
  private readonly dir?: string;
  private readonly conf?: string;
  readonly poolName: string;

  private constructor(readonly pool: StorageLocation) {
    this.poolName = checkName(pool.path, 'Ceph pool');
    if (pool.secret) {
      const user = pool.user ?? 'admin';
      if (/[\s[\]]/.test(user) || /[\s[\]]/.test(pool.secret))
        throw new DriverError(`RBD pool ${pool.uuid}: invalid cephx user or key`);
      this.dir = mkdtempSync(join(tmpdir(), 'nimbo-rbd-'));
      this.conf = join(this.dir, 'ceph.conf');
      const keyring = join(this.dir, 'keyring');
      writeFileSync(keyring, `[client.${user}]\n\tkey = ${pool.secret}\n`, { mode: 0o600 });
      writeFileSync(this.conf, `[global]\n\tmon_host = ${monHost(pool)}\n\tkeyring = ${keyring}\n`, {
        mode: 0o600,
      });
    }
  }

  static open(pool: StorageLocation): RbdSession {
    if (pool.type !== 'RBD') throw new DriverError(`pool ${pool.uuid} is not an RBD pool`);
    return new RbdSession(pool);
  }

  close(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Options every CLI call gets: this session's conf (or the host's with the monitor) and user. */
  private cli(): string[] {
    const user = this.pool.user ? ['--id', this.pool.user] : [];
    return this.conf ? ['-c', this.conf, ...user] : ['-m', monHost(this.pool), ...user];
  }

  /** Runs a CLI; a failure names the subcommand (not the conf options before it). */
  private async tool(cmd: string, args: string[], timeoutMs: number): Promise<string> {
    try {
      return await run(cmd, [...this.cli(), ...args], timeoutMs);
    } catch (err) {
      const why = (err as Error).message.replace(/^\S+ \S+ failed: /, '');
      throw new DriverError(`${cmd} ${args.slice(0, 2).join(' ')} failed: ${why}`);
    }
  }

  rbd(args: string[], timeoutMs = 120_000): Promise<string> {
    return this.tool('rbd', args, timeoutMs);
  }

  ceph(args: string[], timeoutMs = 60_000): Promise<string> {
    return this.tool('ceph', args, timeoutMs);
  }

  rados(args: string[], timeoutMs = 60_000): Promise<string> {
    return this.tool('rados', ['-p', this.poolName, ...args], timeoutMs);
  }

  /** `pool/image[@snap]` as the rbd CLI names it. */
  spec(image: string, snap?: string): string {
    return `${this.poolName}/${checkName(image)}${snap ? `@${checkName(snap, 'RBD snapshot')}` : ''}`;
  }

  /** What qemu-img opens: rbd:pool/image[@snap] with this session's conf (valid until close()). */
  image(image: string, snap?: string): string {
    const opts = this.conf ? `:conf=${this.conf}` : `:mon_host=${monHost(this.pool).replace(/:/g, '\\:')}`;
    return `rbd:${this.spec(image, snap)}${opts}${this.pool.user ? `:id=${this.pool.user}` : ''}`;
  }

  /**
   * The image's blockdev protocol node. Without `secretId` it reads this session's conf and
   * keyring: QEMU must open it (blockdev-add) before the session closes (a live move's target);
   * librados keeps the key in memory after that.
   */
  blockFile(image: string, readOnly: boolean, secretId?: string): Record<string, unknown> {
    return rbdBlockFile(this.pool, image, readOnly, { secretId, conf: this.conf });
  }

  /** The path the server records for a volume: its image name. */
  recorded(name: string): string {
    return name;
  }

  /** The images of the pool. */
  async list(): Promise<string[]> {
    return JSON.parse(await this.rbd(['ls', '--format', 'json', this.poolName])) as string[];
  }

  /** An image's size and parent (a clone's template snapshot), or undefined when it is not there. */
  async info(image: string): Promise<{ size: number; parent?: string } | undefined> {
    try {
      const i = JSON.parse(await this.rbd(['info', '--format', 'json', this.spec(image)]));
      return {
        size: Number(i.size),
        parent: i.parent ? `${i.parent.pool}/${i.parent.image}@${i.parent.snapshot}` : undefined,
      };
    } catch (err) {
      if (/No such file|\(2\)|does not exist/.test((err as Error).message)) return undefined;
      throw err;
    }
  }

  async exists(image: string): Promise<boolean> {
    return (await this.info(image)) !== undefined;
  }

  async snapshots(image: string): Promise<{ name: string; protected: boolean; size: number }[]> {
    const list = JSON.parse(await this.rbd(['snap', 'ls', '--format', 'json', this.spec(image)])) as {
      name: string;
      protected: string;
      size: number;
    }[];
    return list.map((s) => ({ name: s.name, protected: s.protected === 'true', size: Number(s.size) }));
  }

  /** An empty image of `sizeBytes` (raw), replacing a leftover of an earlier try. */
  async createEmpty(name: string, sizeBytes: number): Promise<void> {
    await this.remove(name);
    await this.rbd(['create', '--size', `${sizeBytes}B`, this.spec(name)]);
  }

  /** Removes an image and its (unprotected) snapshots; one already gone is fine. */
  async remove(name: string): Promise<void> {
    if (!(await this.exists(name))) return;
    if ((await this.snapshots(name)).length > 0) await this.rbd(['snap', 'purge', this.spec(name)]);
    await this.rbd(['rm', '--no-progress', this.spec(name)]);
  }

  async resize(name: string, sizeBytes: number, shrink = false): Promise<void> {
    await this.rbd([
      'resize',
      '--no-progress',
      '--size',
      `${sizeBytes}B`,
      ...(shrink ? ['--allow-shrink'] : []),
      this.spec(name),
    ]);
  }

  /** Size and use of the RADOS pool as Ceph reports them (`ceph df`): used plus what is still free. */
  async stats(): Promise<{ capacityBytes: number; usedBytes: number }> {
    const df = JSON.parse(await this.ceph(['df', '--format', 'json'])) as {
      pools: { name: string; stats: { bytes_used: number; stored?: number; max_avail: number } }[];
    };
    const p = df.pools.find((x) => x.name === this.poolName);
    if (!p) throw new DriverError(`Ceph has no pool ${this.poolName}`);
    const used = Number(p.stats.bytes_used);
    return { capacityBytes: used + Number(p.stats.max_avail), usedBytes: used };
  }

  // ---- PoolRecords: the HA heartbeat's records are RADOS objects of the pool

  async readText(name: string): Promise<string> {
    return this.rados(['get', name, '-']);
  }

  async writeText(name: string, text: string): Promise<void> {
    // `put` from standard input replaces the object whole (write_full).
    await runWithInput('rados', [...this.cli(), '-p', this.poolName, 'put', name, '-'], text);
  }
}

/** Runs `fn` with a session on the pool, closed (its key files removed) whatever happens. */
export async function withRbd<T>(pool: StorageLocation, fn: (s: RbdSession) => Promise<T>): Promise<T> {
  const session = RbdSession.open(pool);
  try {
    return await fn(session);
  } finally {
    session.close();
  }
}
