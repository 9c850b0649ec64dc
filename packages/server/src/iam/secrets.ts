/**
 * Password hashing and encryption of secrets at rest (API secret keys, VM passwords, 2FA secrets:
 * the columns listed in key-rotation.ts). The encryption key lives outside the database (a key
 * file, or NIMBOSTACK_SECRET_KEY), so a database dump alone reveals no secret. It is the cloud's
 * key, the same on every server sharing the database (cloud-key.ts makes and checks it);
 * `npm run keys -- rotate` replaces it.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  hkdfSync,
  randomBytes,
  type ScryptOptions,
  scrypt as scryptCb,
  timingSafeEqual,
} from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

const scrypt = (password: string, salt: Buffer, len: number, opts: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCb(password, salt, len, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );

// scrypt at N=2^15 costs ~100 ms and 32 MiB per hash: slow for guessing, fine for logins.
const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scrypt(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = await scrypt(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: SCRYPT.maxmem,
  });
  return timingSafeEqual(actual, expected);
}

export function constantTimeEquals(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Random URL-safe token of `bytes` random bytes (API keys, secret keys, session keys). */
export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

export class Secrets {
  private constructor(private readonly key: Buffer) {}

  /** Reads an existing key file (never creates one). */
  static read(file: string): Secrets {
    return Secrets.fromHex(readFileSync(file, 'utf8'), file);
  }

  /** A key written as 64 hex digits (a key file's content, NIMBOSTACK_SECRET_KEY); `origin` names it in errors. */
  static fromHex(hex: string, origin: string): Secrets {
    const text = hex.trim();
    const key = Buffer.from(text, 'hex');
    if (key.length !== 32 || text.length !== 64) throw new Error(`${origin} does not hold a 256-bit hex key`);
    return new Secrets(key);
  }

  /** A fresh random key, not yet written anywhere (key rotation). */
  static generate(): Secrets {
    return new Secrets(randomBytes(32));
  }

  /** Writes the key to `file` (mode 0600) and flushes it to disk before returning. */
  writeTo(file: string): void {
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(file, 'w', 0o600);
    try {
      writeSync(fd, this.key.toString('hex'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(file, 0o600);
  }

  /**
   * A key of its own for one purpose (HKDF-SHA256 over the cloud's key, `purpose` as info): the
   * same on every server holding the cloud's key, and telling nothing of it or of other purposes'.
   */
  deriveKey(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), purpose, 32));
  }

  /** A short public name for the key (not the key): the first 8 hex digits of its SHA-256. */
  get fingerprint(): string {
    return createHash('sha256').update(this.key).digest('hex').slice(0, 8);
  }

  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `v1:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  decrypt(sealed: string): string {
    const raw = Buffer.from(sealed.slice(3), 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }
}
