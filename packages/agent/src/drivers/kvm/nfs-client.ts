/**
 * The few NFSv3 file operations QEMU and qemu-img cannot do for a pool reached in user space:
 * whether a file exists, remove, rename, mkdir, the export's size (FSSTAT), and whole small files
 * written and read (the HA heartbeat record). QEMU's libnfs creates, reads and writes the images; libnfs-utils has no rm, mv or df, and there is no NFS
 * client library for Node, so this speaks the protocol itself: ONC RPC over TCP (RFC 5531, record
 * marking), AUTH_SYS as root, the portmapper (RFC 1833) to find the MOUNT and NFS ports, MOUNT v3
 * for the export's root handle and NFSv3 procedures (RFC 1813). One connection per operation:
 * these are rare (a volume's creation or deletion, a heartbeat every few seconds), not on any
 * I/O path.
 */
import { randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { DriverError } from '../driver.ts';

const PORTMAP = { prog: 100000, vers: 2, port: 111 };
const MOUNT = { prog: 100005, vers: 3 };
const NFS = { prog: 100003, vers: 3 };
const IPPROTO_TCP = 6;

/** NFSv3 status codes the callers tell apart (RFC 1813 nfsstat3). */
export const NFS3ERR_NOENT = 2;
const NFS3ERR_EXIST = 17;
const NFS3_STATUS: Record<number, string> = {
  1: 'not owner',
  2: 'no such file or directory',
  5: 'I/O error',
  13: 'permission denied',
  17: 'file exists',
  20: 'not a directory',
  21: 'is a directory',
  28: 'no space left on the export',
  30: 'read-only export',
  63: 'name too long',
  66: 'directory not empty',
  70: 'stale file handle',
};

class XdrWriter {
  private readonly parts: Buffer[] = [];
  u32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    this.parts.push(b);
    return this;
  }
  opaque(data: Buffer): this {
    this.u32(data.length);
    this.parts.push(data);
    const pad = (4 - (data.length % 4)) % 4;
    if (pad) this.parts.push(Buffer.alloc(pad));
    return this;
  }
  u64(n: number): this {
    return this.u32(Math.floor(n / 2 ** 32)).u32(n % 2 ** 32);
  }
  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class XdrReader {
  private at = 0;
  constructor(private readonly b: Buffer) {}
  u32(): number {
    if (this.at + 4 > this.b.length) throw new DriverError('NFS: truncated reply');
    const n = this.b.readUInt32BE(this.at);
    this.at += 4;
    return n;
  }
  u64(): number {
    const hi = this.u32();
    return hi * 2 ** 32 + this.u32();
  }
  opaque(): Buffer {
    const len = this.u32();
    const data = this.b.subarray(this.at, this.at + len);
    this.at += len + ((4 - (len % 4)) % 4);
    return data;
  }
  skip(bytes: number): void {
    this.at += bytes;
  }
}

/** fattr3 is 84 bytes: skipped wherever a post_op_attr carries one. */
function skipPostOpAttr(r: XdrReader): void {
  if (r.u32()) r.skip(84);
}

/** wcc_data: a pre_op_attr (24 bytes when present) then a post_op_attr. */
function skipWccData(r: XdrReader): void {
  if (r.u32()) r.skip(24);
  skipPostOpAttr(r);
}

/** sattr3 setting only the mode; `truncate` also sets the size to 0. */
function modeOnly(w: XdrWriter, mode: number, truncate = false): XdrWriter {
  w.u32(1).u32(mode).u32(0).u32(0);
  if (truncate) w.u32(1).u64(0);
  else w.u32(0);
  return w.u32(0).u32(0); // atime, mtime: DONT_CHANGE
}

/** Largest READ or WRITE this client sends in one call (any server takes 32 KiB). */
const CHUNK = 32 * 1024;

/** AUTH_SYS as root: the pool's files belong to the hypervisor's user, as QEMU writes them. */
function authSys(): Buffer {
  return new XdrWriter().u32(0).string(hostname().slice(0, 255)).u32(0).u32(0).u32(0).done();
}

/** One RPC connection; calls are sequential, one reply per call. */
class RpcConnection {
  private buffered = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private waiting?: { resolve: (b: Buffer) => void; reject: (e: Error) => void };
  private failure?: Error;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  static open(host: string, port: number, timeoutMs: number): Promise<RpcConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer from ${host}:${port}`)));
      socket.once('connect', () => resolve(new RpcConnection(socket)));
      socket.once('error', (e) => reject(new DriverError(`NFS: cannot reach ${host}:${port}: ${e.message}`)));
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.waiting?.reject(new DriverError(`NFS: ${e.message}`));
    this.waiting = undefined;
  }

  private onData(d: Buffer): void {
    this.buffered = Buffer.concat([this.buffered, d]);
    while (this.buffered.length >= 4) {
      const mark = this.buffered.readUInt32BE(0);
      const len = mark & 0x7fffffff;
      if (this.buffered.length < 4 + len) return;
      this.fragments.push(this.buffered.subarray(4, 4 + len));
      this.buffered = this.buffered.subarray(4 + len);
      if (mark & 0x80000000) {
        const record = Buffer.concat(this.fragments);
        this.fragments = [];
        this.waiting?.resolve(record);
        this.waiting = undefined;
      }
    }
  }

  /** Calls `proc` of `prog`/`vers` with XDR `args`; answers the procedure's XDR results. */
  async call(program: { prog: number; vers: number }, proc: number, args: Buffer): Promise<XdrReader> {
    if (this.failure) throw new DriverError(`NFS: ${this.failure.message}`);
    const xid = randomInt(0, 2 ** 31);
    const body = new XdrWriter()
      .u32(xid)
      .u32(0) // CALL
      .u32(2) // RPC version
      .u32(program.prog)
      .u32(program.vers)
      .u32(proc)
      .u32(1) // AUTH_SYS
      .opaque(authSys())
      .u32(0) // verifier: AUTH_NONE
      .u32(0)
      .done();
    const message = Buffer.concat([body, args]);
    const mark = Buffer.alloc(4);
    mark.writeUInt32BE((0x80000000 | message.length) >>> 0);
    const reply = new Promise<Buffer>((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
    this.socket.write(Buffer.concat([mark, message]));
    const r = new XdrReader(await reply);
    if (r.u32() !== xid) throw new DriverError('NFS: reply to another call');
    if (r.u32() !== 1) throw new DriverError('NFS: not a reply');
    if (r.u32() !== 0)
      throw new DriverError(`NFS: program ${program.prog} refused the call (auth or RPC version)`);
    r.u32(); // verifier flavour
    r.opaque();
    const accept = r.u32();
    if (accept !== 0)
      throw new DriverError(`NFS: program ${program.prog} v${program.vers} answered ${accept} (not served?)`);
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** An NFSv3 export, named as in nfs://host/export. */
export class NfsExport {
  constructor(
    readonly host: string,
    readonly exportPath: string,
    private readonly timeoutMs = 15_000,
  ) {}

  private async port(program: { prog: number; vers: number }): Promise<number> {
    const pm = await RpcConnection.open(this.host, PORTMAP.port, this.timeoutMs);
    try {
      const args = new XdrWriter().u32(program.prog).u32(program.vers).u32(IPPROTO_TCP).u32(0).done();
      const port = (await pm.call(PORTMAP, 3, args)).u32();
      if (port === 0)
        throw new DriverError(
          `NFS: ${this.host} does not serve program ${program.prog} v${program.vers} over TCP`,
        );
      return port;
    } finally {
      pm.close();
    }
  }

  /** Runs `work` with an NFS connection and the export's root file handle. */
  private async session<T>(work: (nfs: RpcConnection, root: Buffer) => Promise<T>): Promise<T> {
    const mountd = await RpcConnection.open(this.host, await this.port(MOUNT), this.timeoutMs);
    let root: Buffer;
    try {
      const r = await mountd.call(MOUNT, 1, new XdrWriter().string(this.exportPath).done());
      const status = r.u32();
      if (status !== 0)
        throw new DriverError(`NFS: ${this.host} refused to mount ${this.exportPath} (MNT3 error ${status})`);
      root = Buffer.from(r.opaque());
    } finally {
      mountd.close();
    }
    const nfs = await RpcConnection.open(this.host, await this.port(NFS), this.timeoutMs);
    try {
      return await work(nfs, root);
    } finally {
      nfs.close();
    }
  }

  private static check(status: number, what: string): void {
    if (status !== 0) throw new DriverError(`NFS: ${what}: ${NFS3_STATUS[status] ?? `error ${status}`}`);
  }

  /** LOOKUP of one name in a directory: its handle, or undefined when there is no such entry. */
  private static async lookup(nfs: RpcConnection, dir: Buffer, name: string): Promise<Buffer | undefined> {
    const r = await nfs.call(NFS, 3, new XdrWriter().opaque(dir).string(name).done());
    const status = r.u32();
    if (status === NFS3ERR_NOENT) return undefined;
    NfsExport.check(status, `lookup of ${name}`);
    return Buffer.from(r.opaque());
  }

  /** The handle of the directory holding `path` (relative to the export) and the file's name. */
  private static async parent(
    nfs: RpcConnection,
    root: Buffer,
    path: string,
  ): Promise<[Buffer | undefined, string]> {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0 || parts.includes('..')) throw new DriverError(`NFS: invalid path ${path}`);
    let dir: Buffer | undefined = root;
    for (const part of parts.slice(0, -1)) {
      dir = await NfsExport.lookup(nfs, dir, part);
      if (!dir) return [undefined, parts[parts.length - 1]];
    }
    return [dir, parts[parts.length - 1]];
  }

  /** The handle of the directory holding `path`, making missing directories (mode 0755) on the way. */
  private static async parentMade(nfs: RpcConnection, root: Buffer, path: string): Promise<[Buffer, string]> {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0 || parts.includes('..')) throw new DriverError(`NFS: invalid path ${path}`);
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      const found = await NfsExport.lookup(nfs, dir, part);
      if (found) {
        dir = found;
        continue;
      }
      const r = await nfs.call(NFS, 9, modeOnly(new XdrWriter().opaque(dir).string(part), 0o755).done());
      const status = r.u32();
      // Another host may make it at the same moment: then it is looked up.
      if (status !== NFS3ERR_EXIST) NfsExport.check(status, `making directory ${part}`);
      const made = status === 0 && r.u32() ? Buffer.from(r.opaque()) : await NfsExport.lookup(nfs, dir, part);
      if (!made) throw new DriverError(`NFS: directory ${part} vanished as it was made`);
      dir = made;
    }
    return [dir, parts[parts.length - 1]];
  }

  /**
   * Writes a whole file: created aside under a name of its own, written with FILE_SYNC (on the
   * server's disk when the call returns), then renamed over `path`, so a reader never sees half
   * of it. Missing directories on the way are made.
   */
  async writeFile(path: string, data: Buffer): Promise<void> {
    await this.session(async (nfs, root) => {
      const [dir, name] = await NfsExport.parentMade(nfs, root, path);
      const tmp = `${name}.${hostname().replace(/[^A-Za-z0-9-]/g, '')}-${process.pid}.tmp`;
      // CREATE, UNCHECKED: a temporary file left by a failed write is truncated and reused.
      const created = await nfs.call(
        NFS,
        8,
        modeOnly(new XdrWriter().opaque(dir).string(tmp).u32(0), 0o644, true).done(),
      );
      NfsExport.check(created.u32(), `creating ${tmp}`);
      const handle =
        (created.u32() ? Buffer.from(created.opaque()) : undefined) ??
        (await NfsExport.lookup(nfs, dir, tmp));
      if (!handle) throw new DriverError(`NFS: ${tmp} vanished as it was created`);
      try {
        for (let at = 0; at < data.length; at += CHUNK) {
          const part = data.subarray(at, at + CHUNK);
          const args = new XdrWriter().opaque(handle).u64(at).u32(part.length).u32(2).opaque(part).done();
          const r = await nfs.call(NFS, 7, args); // WRITE, stable FILE_SYNC
          NfsExport.check(r.u32(), `writing ${tmp}`);
          skipWccData(r);
          if (r.u32() !== part.length) throw new DriverError(`NFS: short write to ${tmp}`);
        }
        const args = new XdrWriter().opaque(dir).string(tmp).opaque(dir).string(name).done();
        NfsExport.check((await nfs.call(NFS, 14, args)).u32(), `renaming ${tmp} to ${name}`);
      } catch (err) {
        await nfs.call(NFS, 12, new XdrWriter().opaque(dir).string(tmp).done()).catch(() => undefined);
        throw err;
      }
    });
  }

  /** Reads a whole file; one that is not there is a DriverError naming the path. */
  async readFile(path: string): Promise<Buffer> {
    return this.session(async (nfs, root) => {
      const [dir, name] = await NfsExport.parent(nfs, root, path);
      const handle = dir && (await NfsExport.lookup(nfs, dir, name));
      if (!handle) throw new DriverError(`NFS: ${path}: ${NFS3_STATUS[NFS3ERR_NOENT]}`);
      const parts: Buffer[] = [];
      for (let at = 0; ; ) {
        const r = await nfs.call(NFS, 6, new XdrWriter().opaque(handle).u64(at).u32(CHUNK).done());
        NfsExport.check(r.u32(), `reading ${path}`);
        skipPostOpAttr(r);
        r.u32(); // count, repeated in the data's length
        const eof = r.u32() !== 0;
        const data = Buffer.from(r.opaque());
        parts.push(data);
        at += data.length;
        if (eof || data.length === 0) return Buffer.concat(parts);
      }
    });
  }

  async exists(path: string): Promise<boolean> {
    return this.session(async (nfs, root) => {
      const [dir, name] = await NfsExport.parent(nfs, root, path);
      return dir !== undefined && (await NfsExport.lookup(nfs, dir, name)) !== undefined;
    });
  }

  /** Removes a file; a file already gone is fine (agent commands are idempotent). */
  async remove(path: string): Promise<void> {
    await this.session(async (nfs, root) => {
      const [dir, name] = await NfsExport.parent(nfs, root, path);
      if (!dir) return;
      const status = (await nfs.call(NFS, 12, new XdrWriter().opaque(dir).string(name).done())).u32();
      if (status !== NFS3ERR_NOENT) NfsExport.check(status, `removing ${path}`);
    });
  }

  /** Renames within one directory of the export, replacing the target (as rename(2)). */
  async rename(from: string, to: string): Promise<void> {
    await this.session(async (nfs, root) => {
      const [dir, fromName] = await NfsExport.parent(nfs, root, from);
      const [toDir, toName] = await NfsExport.parent(nfs, root, to);
      if (!dir || !toDir) throw new DriverError(`NFS: renaming ${from}: no such directory`);
      const args = new XdrWriter().opaque(dir).string(fromName).opaque(toDir).string(toName).done();
      NfsExport.check((await nfs.call(NFS, 14, args)).u32(), `renaming ${from} to ${to}`);
    });
  }

  /** Makes a directory right under the export root (mode 0755); one already there is fine. */
  async mkdir(name: string): Promise<void> {
    await this.session(async (nfs, root) => {
      const args = modeOnly(new XdrWriter().opaque(root).string(name), 0o755).done();
      const status = (await nfs.call(NFS, 9, args)).u32();
      if (status !== NFS3ERR_EXIST) NfsExport.check(status, `making directory ${name}`);
    });
  }

  /** The export's filesystem size and use in bytes (FSSTAT: total, and free to root). */
  async stats(): Promise<{ capacityBytes: number; usedBytes: number }> {
    return this.session(async (nfs, root) => {
      const r = await nfs.call(NFS, 18, new XdrWriter().opaque(root).done());
      NfsExport.check(r.u32(), `FSSTAT of ${this.exportPath}`);
      skipPostOpAttr(r);
      const total = r.u64();
      const free = r.u64();
      return { capacityBytes: total, usedBytes: Math.max(0, total - free) };
    });
  }
}
