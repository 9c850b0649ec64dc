/**
 * An NFSv3 client for what QEMU and qemu-img cannot do on an export reached in user space, shared
 * by the KVM agent (NFS pools: whether a file exists, remove, rename, mkdir, the export's size,
 * the HA heartbeat record) and the management server (NFS image stores: templates, ISOs and
 * snapshot backups streamed to and from the export). libnfs-utils has no rm, mv or df, and there
 * is no NFS client library for Node, so this speaks the protocol itself: ONC RPC over TCP
 * (RFC 5531, record marking), AUTH_SYS as root, the portmapper (RFC 1833) to find the MOUNT and
 * NFS ports, MOUNT v3 for the export's root handle and NFSv3 procedures (RFC 1813). One
 * connection per operation: a file of gigabytes is one operation, streamed in chunks of the
 * server's preferred transfer size, never held whole in memory.
 */
import { createHash, randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { Readable } from 'node:stream';

/** Every failure of this client: the message says what failed and why. */
export class NfsError extends Error {}

const PORTMAP = { prog: 100000, vers: 2, port: 111 };
const MOUNT = { prog: 100005, vers: 3 };
const NFS = { prog: 100003, vers: 3 };
const IPPROTO_TCP = 6;

/** NFSv3 procedures (RFC 1813 section 3.3). */
const PROC = {
  GETATTR: 1,
  LOOKUP: 3,
  READ: 6,
  WRITE: 7,
  CREATE: 8,
  MKDIR: 9,
  REMOVE: 12,
  RMDIR: 13,
  RENAME: 14,
  FSSTAT: 18,
  FSINFO: 19,
  COMMIT: 21,
} as const;

/** stable_how of WRITE. */
const UNSTABLE = 0;
const FILE_SYNC = 2;

/** NFSv3 status codes the callers tell apart (RFC 1813 nfsstat3). */
export const NFS3ERR_NOENT = 2;
const NFS3ERR_EXIST = 17;
const NFS3ERR_NOTEMPTY = 66;
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
    if (this.at + 4 > this.b.length) throw new NfsError('NFS: truncated reply');
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
    return this.fixed(len + ((4 - (len % 4)) % 4)).subarray(0, len);
  }
  /** Fixed-length opaque data (a write verifier): `bytes` bytes, a multiple of 4. */
  fixed(bytes: number): Buffer {
    if (this.at + bytes > this.b.length) throw new NfsError('NFS: truncated reply');
    const data = this.b.subarray(this.at, this.at + bytes);
    this.at += bytes;
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

/** Transfer size when the server states none (any server takes 32 KiB). */
const CHUNK = 32 * 1024;
/** Largest READ or WRITE sent, whatever the server allows: bounds the memory one transfer holds. */
const MAX_CHUNK = 1024 * 1024;

/** AUTH_SYS as root: the files belong to the hypervisor's user, as QEMU writes them. */
function authSys(): Buffer {
  return new XdrWriter().u32(0).string(hostname().slice(0, 255)).u32(0).u32(0).u32(0).done();
}

/** One RPC connection; calls are sequential, one reply per call. */
class RpcConnection {
  // Bytes received and not parsed yet, concatenated only when a whole fragment is there (a
  // 1 MiB READ reply arrives in dozens of segments).
  private pending: Buffer[] = [];
  private pendingLength = 0;
  private fragment?: { length: number; last: boolean };
  private fragments: Buffer[] = [];
  private waiting?: { resolve: (b: Buffer) => void; reject: (e: Error) => void };
  private failure?: Error;

  private constructor(
    private readonly socket: Socket,
    timeoutMs: number,
    peer: string,
  ) {
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('connection closed')));
    // Silence counts only while a reply is awaited: a reader may pause a stream for longer.
    socket.on('timeout', () => {
      if (this.waiting) socket.destroy(new Error(`no answer from ${peer} in ${timeoutMs / 1000} s`));
    });
  }

  static open(host: string, port: number, timeoutMs: number): Promise<RpcConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const peer = `${host}:${port}`;
      const late = setTimeout(() => socket.destroy(new Error('no answer')), timeoutMs);
      socket.once('connect', () => {
        clearTimeout(late);
        socket.setTimeout(timeoutMs);
        resolve(new RpcConnection(socket, timeoutMs, peer));
      });
      socket.once('error', (e) => {
        clearTimeout(late);
        reject(new NfsError(`NFS: cannot reach ${peer}: ${e.message}`));
      });
    });
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.waiting?.reject(new NfsError(`NFS: ${e.message}`));
    this.waiting = undefined;
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingLength);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingLength = rest.length;
    return all.subarray(0, n);
  }

  private onData(d: Buffer): void {
    this.pending.push(d);
    this.pendingLength += d.length;
    for (;;) {
      if (!this.fragment) {
        if (this.pendingLength < 4) return;
        const mark = this.take(4).readUInt32BE(0);
        this.fragment = { length: mark & 0x7fffffff, last: (mark & 0x80000000) !== 0 };
      }
      if (this.pendingLength < this.fragment.length) return;
      this.fragments.push(this.take(this.fragment.length));
      const last = this.fragment.last;
      this.fragment = undefined;
      if (last) {
        const record = this.fragments.length === 1 ? this.fragments[0] : Buffer.concat(this.fragments);
        this.fragments = [];
        this.waiting?.resolve(record);
        this.waiting = undefined;
      }
    }
  }

  /** Calls `proc` of `prog`/`vers` with XDR `args`; answers the procedure's XDR results. */
  async call(program: { prog: number; vers: number }, proc: number, args: Buffer): Promise<XdrReader> {
    if (this.failure) throw new NfsError(`NFS: ${this.failure.message}`);
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
    const mark = Buffer.alloc(4);
    mark.writeUInt32BE((0x80000000 | (body.length + args.length)) >>> 0);
    const reply = new Promise<Buffer>((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
    this.socket.write(Buffer.concat([mark, body, args]));
    const r = new XdrReader(await reply);
    if (r.u32() !== xid) throw new NfsError('NFS: reply to another call');
    if (r.u32() !== 1) throw new NfsError('NFS: not a reply');
    if (r.u32() !== 0)
      throw new NfsError(`NFS: program ${program.prog} refused the call (auth or RPC version)`);
    r.u32(); // verifier flavour
    r.opaque();
    const accept = r.u32();
    if (accept !== 0)
      throw new NfsError(`NFS: program ${program.prog} v${program.vers} answered ${accept} (not served?)`);
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** What a file copied onto the export holds, as read back from the server. */
export interface NfsCopy {
  size: number;
  /** SHA-256 of the bytes, lower-case hex. */
  sha256: string;
}

interface Session {
  nfs: RpcConnection;
  root: Buffer;
  close(): void;
}

let tmpCounter = 0;

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
        throw new NfsError(
          `NFS: ${this.host} does not serve program ${program.prog} v${program.vers} over TCP`,
        );
      return port;
    } finally {
      pm.close();
    }
  }

  /** An NFS connection and the export's root file handle; the caller closes it. */
  private async open(): Promise<Session> {
    const mountd = await RpcConnection.open(this.host, await this.port(MOUNT), this.timeoutMs);
    let root: Buffer;
    try {
      const r = await mountd.call(MOUNT, 1, new XdrWriter().string(this.exportPath).done());
      const status = r.u32();
      if (status !== 0)
        throw new NfsError(`NFS: ${this.host} refused to mount ${this.exportPath} (MNT3 error ${status})`);
      root = Buffer.from(r.opaque());
    } finally {
      mountd.close();
    }
    const nfs = await RpcConnection.open(this.host, await this.port(NFS), this.timeoutMs);
    return { nfs, root, close: () => nfs.close() };
  }

  /** Runs `work` with an NFS connection and the export's root file handle. */
  private async session<T>(work: (nfs: RpcConnection, root: Buffer) => Promise<T>): Promise<T> {
    const s = await this.open();
    try {
      return await work(s.nfs, s.root);
    } finally {
      s.close();
    }
  }

  private static check(status: number, what: string): void {
    if (status !== 0) throw new NfsError(`NFS: ${what}: ${NFS3_STATUS[status] ?? `error ${status}`}`);
  }

  /** LOOKUP of one name in a directory: its handle, or undefined when there is no such entry. */
  private static async lookup(nfs: RpcConnection, dir: Buffer, name: string): Promise<Buffer | undefined> {
    const r = await nfs.call(NFS, PROC.LOOKUP, new XdrWriter().opaque(dir).string(name).done());
    const status = r.u32();
    if (status === NFS3ERR_NOENT) return undefined;
    NfsExport.check(status, `lookup of ${name}`);
    return Buffer.from(r.opaque());
  }

  private static parts(path: string): string[] {
    const parts = path.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.length === 0 || parts.includes('..')) throw new NfsError(`NFS: invalid path ${path}`);
    return parts;
  }

  /** The handle of the directory holding `path` (relative to the export) and the file's name. */
  private static async parent(
    nfs: RpcConnection,
    root: Buffer,
    path: string,
  ): Promise<[Buffer | undefined, string]> {
    const parts = NfsExport.parts(path);
    let dir: Buffer | undefined = root;
    for (const part of parts.slice(0, -1)) {
      dir = await NfsExport.lookup(nfs, dir, part);
      if (!dir) return [undefined, parts[parts.length - 1]];
    }
    return [dir, parts[parts.length - 1]];
  }

  /** The handle of the directory holding `path`, making missing directories (mode 0755) on the way. */
  private static async parentMade(nfs: RpcConnection, root: Buffer, path: string): Promise<[Buffer, string]> {
    const parts = NfsExport.parts(path);
    let dir = root;
    for (const part of parts.slice(0, -1)) {
      const found = await NfsExport.lookup(nfs, dir, part);
      if (found) {
        dir = found;
        continue;
      }
      const r = await nfs.call(
        NFS,
        PROC.MKDIR,
        modeOnly(new XdrWriter().opaque(dir).string(part), 0o755).done(),
      );
      const status = r.u32();
      // Another host may make it at the same moment: then it is looked up.
      if (status !== NFS3ERR_EXIST) NfsExport.check(status, `making directory ${part}`);
      const made = status === 0 && r.u32() ? Buffer.from(r.opaque()) : await NfsExport.lookup(nfs, dir, part);
      if (!made) throw new NfsError(`NFS: directory ${part} vanished as it was made`);
      dir = made;
    }
    return [dir, parts[parts.length - 1]];
  }

  /** The handle of an existing file; a missing one is an NfsError naming the path. */
  private static async handle(nfs: RpcConnection, root: Buffer, path: string): Promise<Buffer> {
    const [dir, name] = await NfsExport.parent(nfs, root, path);
    const handle = dir && (await NfsExport.lookup(nfs, dir, name));
    if (!handle) throw new NfsError(`NFS: ${path}: ${NFS3_STATUS[NFS3ERR_NOENT]}`);
    return handle;
  }

  /** The server's preferred READ and WRITE sizes (FSINFO), capped at MAX_CHUNK. */
  private static async transferSizes(
    nfs: RpcConnection,
    root: Buffer,
  ): Promise<{ read: number; write: number }> {
    const r = await nfs.call(NFS, PROC.FSINFO, new XdrWriter().opaque(root).done());
    NfsExport.check(r.u32(), 'FSINFO');
    skipPostOpAttr(r);
    r.u32(); // rtmax
    const rtpref = r.u32();
    r.u32(); // rtmult
    r.u32(); // wtmax
    const wtpref = r.u32();
    const size = (n: number) => Math.min(MAX_CHUNK, n > 0 ? n : CHUNK);
    return { read: size(rtpref), write: size(wtpref) };
  }

  /** The size of a file, from GETATTR. */
  private static async sizeOf(nfs: RpcConnection, handle: Buffer, path: string): Promise<number> {
    const r = await nfs.call(NFS, PROC.GETATTR, new XdrWriter().opaque(handle).done());
    NfsExport.check(r.u32(), `attributes of ${path}`);
    r.skip(20); // type, mode, nlink, uid, gid
    return r.u64();
  }

  /** READs a file from its start in chunks of `chunk` bytes until the server says end of file. */
  private static async *chunks(
    nfs: RpcConnection,
    handle: Buffer,
    path: string,
    chunk: number,
  ): AsyncGenerator<Buffer> {
    for (let at = 0; ; ) {
      const r = await nfs.call(NFS, PROC.READ, new XdrWriter().opaque(handle).u64(at).u32(chunk).done());
      NfsExport.check(r.u32(), `reading ${path}`);
      skipPostOpAttr(r);
      r.u32(); // count, repeated in the data's length
      const eof = r.u32() !== 0;
      const data = r.opaque();
      if (data.length > 0) yield data;
      at += data.length;
      if (eof || data.length === 0) return;
    }
  }

  /**
   * Writes a file from `source`: created aside under a name of its own, written in chunks, made
   * durable, then renamed over `path`, so a reader never sees half of it. Missing directories on
   * the way are made. Small records (`stable`) are written FILE_SYNC, each WRITE on the server's
   * disk when it returns; large files UNSTABLE then one COMMIT, with the server's write verifier
   * compared across all of them (a server that restarted meanwhile may have lost unstable data:
   * the copy fails rather than keep it). With `verify` the file is read back before the rename and
   * its size and SHA-256 compared with what was sent. Answers the size and SHA-256 written.
   */
  private async write(
    path: string,
    source: Iterable<Buffer | Uint8Array> | AsyncIterable<Buffer | Uint8Array>,
    opts: { stable: boolean; verify: boolean },
  ): Promise<NfsCopy> {
    return this.session(async (nfs, root) => {
      const [dir, name] = await NfsExport.parentMade(nfs, root, path);
      const sizes = await NfsExport.transferSizes(nfs, root);
      const tmp = `${name}.${hostname().replace(/[^A-Za-z0-9-]/g, '')}-${process.pid}-${++tmpCounter}.tmp`;
      // CREATE, UNCHECKED: a temporary file left by a failed write is truncated and reused.
      const created = await nfs.call(
        NFS,
        PROC.CREATE,
        modeOnly(new XdrWriter().opaque(dir).string(tmp).u32(0), 0o644, true).done(),
      );
      NfsExport.check(created.u32(), `creating ${tmp}`);
      const handle =
        (created.u32() ? Buffer.from(created.opaque()) : undefined) ??
        (await NfsExport.lookup(nfs, dir, tmp));
      if (!handle) throw new NfsError(`NFS: ${tmp} vanished as it was created`);
      try {
        const hash = createHash('sha256');
        let at = 0;
        let verifier: Buffer | undefined;
        const sameServer = (v: Buffer) => {
          if (verifier && !verifier.equals(v))
            throw new NfsError(`NFS: the server restarted while ${path} was written; nothing was kept`);
          verifier = Buffer.from(v);
        };
        const send = async (part: Buffer) => {
          for (let done = 0; done < part.length; ) {
            const piece = part.subarray(done);
            const args = new XdrWriter()
              .opaque(handle)
              .u64(at)
              .u32(piece.length)
              .u32(opts.stable ? FILE_SYNC : UNSTABLE)
              .opaque(piece)
              .done();
            const r = await nfs.call(NFS, PROC.WRITE, args);
            NfsExport.check(r.u32(), `writing ${tmp}`);
            skipWccData(r);
            const count = r.u32();
            r.u32(); // committed
            sameServer(r.fixed(8));
            if (count === 0) throw new NfsError(`NFS: the server wrote nothing of ${tmp}`);
            // A server may write less than asked (RFC 1813 WRITE): the rest goes again.
            done += count;
            at += count;
          }
        };
        let held: Buffer[] = [];
        let heldLength = 0;
        for await (const data of source) {
          const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
          hash.update(bytes);
          held.push(bytes);
          heldLength += bytes.length;
          while (heldLength >= sizes.write) {
            const all = held.length === 1 ? held[0] : Buffer.concat(held, heldLength);
            await send(all.subarray(0, sizes.write));
            const rest = all.subarray(sizes.write);
            held = rest.length > 0 ? [rest] : [];
            heldLength = rest.length;
          }
        }
        if (heldLength > 0) await send(Buffer.concat(held, heldLength));
        if (!opts.stable) {
          const r = await nfs.call(NFS, PROC.COMMIT, new XdrWriter().opaque(handle).u64(0).u32(0).done());
          NfsExport.check(r.u32(), `committing ${tmp}`);
          skipWccData(r);
          sameServer(r.fixed(8));
        }
        const sent = { size: at, sha256: hash.digest('hex') };
        if (opts.verify) {
          const kept = await NfsExport.sizeOf(nfs, handle, tmp);
          if (kept !== sent.size)
            throw new NfsError(`NFS: the export kept ${kept} of the ${sent.size} bytes written to ${path}`);
          const back = createHash('sha256');
          for await (const data of NfsExport.chunks(nfs, handle, tmp, sizes.read)) back.update(data);
          const read = back.digest('hex');
          if (read !== sent.sha256)
            throw new NfsError(`NFS: ${path} read back with SHA-256 ${read}, not the ${sent.sha256} written`);
        }
        const args = new XdrWriter().opaque(dir).string(tmp).opaque(dir).string(name).done();
        NfsExport.check((await nfs.call(NFS, PROC.RENAME, args)).u32(), `renaming ${tmp} to ${name}`);
        return sent;
      } catch (err) {
        await nfs
          .call(NFS, PROC.REMOVE, new XdrWriter().opaque(dir).string(tmp).done())
          .catch(() => undefined);
        throw err;
      }
    });
  }

  /** Writes a small whole file (FILE_SYNC; see write). */
  async writeFile(path: string, data: Buffer): Promise<void> {
    await this.write(path, [data], { stable: true, verify: false });
  }

  /**
   * Copies a stream of any size onto the export as `path` (UNSTABLE writes and one COMMIT), reads
   * it back to compare size and SHA-256, then publishes it by rename; answers what was written.
   */
  async copyIn(
    path: string,
    source: Iterable<Buffer | Uint8Array> | AsyncIterable<Buffer | Uint8Array>,
  ): Promise<NfsCopy> {
    return this.write(path, source, { stable: false, verify: true });
  }

  /** Reads a whole (small) file; one that is not there is an NfsError naming the path. */
  async readFile(path: string): Promise<Buffer> {
    return this.session(async (nfs, root) => {
      const handle = await NfsExport.handle(nfs, root, path);
      const parts: Buffer[] = [];
      for await (const data of NfsExport.chunks(nfs, handle, path, CHUNK)) parts.push(data);
      return Buffer.concat(parts);
    });
  }

  /**
   * A stream of a file's bytes (READs of the server's preferred size, one at a time as the
   * reader takes them) and its length. A missing file is an NfsError here, before any stream.
   */
  async readStream(path: string): Promise<{ stream: Readable; length: number }> {
    const s = await this.open();
    try {
      const handle = await NfsExport.handle(s.nfs, s.root, path);
      const length = await NfsExport.sizeOf(s.nfs, handle, path);
      const { read } = await NfsExport.transferSizes(s.nfs, s.root);
      async function* bytes() {
        try {
          yield* NfsExport.chunks(s.nfs, handle, path, read);
        } finally {
          s.close();
        }
      }
      const stream = Readable.from(bytes(), { objectMode: false });
      // A stream destroyed before it was read never runs the generator: its connection goes too.
      stream.once('close', () => s.close());
      return { stream, length };
    } catch (e) {
      s.close();
      throw e;
    }
  }

  /** A file's size, or undefined when it does not exist. */
  async size(path: string): Promise<number | undefined> {
    return this.session(async (nfs, root) => {
      const [dir, name] = await NfsExport.parent(nfs, root, path);
      const handle = dir && (await NfsExport.lookup(nfs, dir, name));
      return handle ? NfsExport.sizeOf(nfs, handle, path) : undefined;
    });
  }

  async exists(path: string): Promise<boolean> {
    return this.session(async (nfs, root) => {
      const [dir, name] = await NfsExport.parent(nfs, root, path);
      return dir !== undefined && (await NfsExport.lookup(nfs, dir, name)) !== undefined;
    });
  }

  /**
   * Removes a file; a file already gone is fine (agent commands are idempotent). With
   * `dirIfEmpty` its directory goes too when nothing else is left in it (a template's own folder).
   */
  async remove(path: string, opts: { dirIfEmpty?: boolean } = {}): Promise<void> {
    await this.session(async (nfs, root) => {
      const parts = NfsExport.parts(path);
      const [dir, name] = await NfsExport.parent(nfs, root, path);
      if (!dir) return;
      const status = (
        await nfs.call(NFS, PROC.REMOVE, new XdrWriter().opaque(dir).string(name).done())
      ).u32();
      if (status !== NFS3ERR_NOENT) NfsExport.check(status, `removing ${path}`);
      if (!opts.dirIfEmpty || parts.length < 2) return;
      const [above] = await NfsExport.parent(nfs, root, parts.slice(0, -1).join('/'));
      if (!above) return;
      const args = new XdrWriter()
        .opaque(above)
        .string(parts[parts.length - 2])
        .done();
      const gone = (await nfs.call(NFS, PROC.RMDIR, args)).u32();
      if (gone !== NFS3ERR_NOTEMPTY && gone !== NFS3ERR_NOENT && gone !== NFS3ERR_EXIST)
        NfsExport.check(gone, `removing the directory of ${path}`);
    });
  }

  /** Renames within one directory of the export, replacing the target (as rename(2)). */
  async rename(from: string, to: string): Promise<void> {
    await this.session(async (nfs, root) => {
      const [dir, fromName] = await NfsExport.parent(nfs, root, from);
      const [toDir, toName] = await NfsExport.parent(nfs, root, to);
      if (!dir || !toDir) throw new NfsError(`NFS: renaming ${from}: no such directory`);
      const args = new XdrWriter().opaque(dir).string(fromName).opaque(toDir).string(toName).done();
      NfsExport.check((await nfs.call(NFS, PROC.RENAME, args)).u32(), `renaming ${from} to ${to}`);
    });
  }

  /** Makes a directory right under the export root (mode 0755); one already there is fine. */
  async mkdir(name: string): Promise<void> {
    await this.session(async (nfs, root) => {
      const args = modeOnly(new XdrWriter().opaque(root).string(name), 0o755).done();
      const status = (await nfs.call(NFS, PROC.MKDIR, args)).u32();
      if (status !== NFS3ERR_EXIST) NfsExport.check(status, `making directory ${name}`);
    });
  }

  /** The export's filesystem size and use in bytes (FSSTAT: total, and free to root). */
  async stats(): Promise<{ capacityBytes: number; usedBytes: number }> {
    return this.session(async (nfs, root) => {
      const r = await nfs.call(NFS, PROC.FSSTAT, new XdrWriter().opaque(root).done());
      NfsExport.check(r.u32(), `FSSTAT of ${this.exportPath}`);
      skipPostOpAttr(r);
      const total = r.u64();
      const free = r.u64();
      return { capacityBytes: total, usedBytes: Math.max(0, total - free) };
    });
  }
}
