/**
 * Image files on secondary storage: where a store's files live on this management server, the
 * checksum forms CloudStack accepts, what the bytes of each format must look like, and the empty
 * QCOW2 image that stands in for the simulator's built-in template.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import type { ImageStoreRow } from '../db/schema.ts';
import { invalidParameter } from '../errors.ts';
import { isUserSpaceNfs } from './nfs-stores.ts';

export const TEMPLATE_FORMATS = ['QCOW2', 'RAW', 'VHD', 'VHDX', 'OVA', 'TAR'] as const;

/** The disk formats each hypervisor can boot; the simulator takes any. */
export const HYPERVISOR_FORMATS: Record<string, readonly string[]> = {
  KVM: ['QCOW2', 'RAW'],
  // A container's root file system as a tarball (gzip-compressed or not), as upstream's LXC templates.
  LXC: ['TAR'],
  Simulator: TEMPLATE_FORMATS,
  XenServer: ['VHD'],
  VMware: ['OVA'],
  Hyperv: ['VHD', 'VHDX'],
  Ovm3: ['RAW'],
  BareMetal: TEMPLATE_FORMATS,
};

export const FILE_EXTENSIONS: Record<string, string> = {
  QCOW2: 'qcow2',
  RAW: 'raw',
  VHD: 'vhd',
  VHDX: 'vhdx',
  OVA: 'ova',
  TAR: 'tar',
  ISO: 'iso',
};

export interface Checksum {
  /** Node's digest name. */
  algorithm: 'md5' | 'sha1' | 'sha256' | 'sha384' | 'sha512';
  /** Lower-case hex. */
  hex: string;
  /** As CloudStack writes it: {SHA-256}hex. */
  label: string;
}

const DIGESTS: Record<string, { algorithm: Checksum['algorithm']; hexLength: number; label: string }> = {
  MD5: { algorithm: 'md5', hexLength: 32, label: 'MD5' },
  'SHA-1': { algorithm: 'sha1', hexLength: 40, label: 'SHA-1' },
  'SHA-256': { algorithm: 'sha256', hexLength: 64, label: 'SHA-256' },
  'SHA-384': { algorithm: 'sha384', hexLength: 96, label: 'SHA-384' },
  'SHA-512': { algorithm: 'sha512', hexLength: 128, label: 'SHA-512' },
};

/** Parses {ALGORITHM}hex or a bare MD5 (CloudStack's DigestHelper forms); 431 otherwise. */
export function parseChecksum(text: string): Checksum {
  const v = text.trim();
  const m = /^\{([A-Za-z0-9-]+)\}([0-9a-fA-F]+)$/.exec(v);
  const [name, hex] = m ? [m[1].toUpperCase(), m[2]] : ['MD5', v];
  const digest = DIGESTS[name === 'SHA256' ? 'SHA-256' : name === 'SHA1' ? 'SHA-1' : name];
  if (!digest)
    throw invalidParameter(
      `Invalid checksum ${text}: use {SHA-256}<hex>, {SHA-512}<hex>, {SHA-1}<hex>, {MD5}<hex> or a bare MD5`,
    );
  if (hex.length !== digest.hexLength || !/^[0-9a-fA-F]+$/.test(hex))
    throw invalidParameter(
      `Invalid checksum ${text}: a ${digest.label} checksum is ${digest.hexLength} hexadecimal digits`,
    );
  return {
    algorithm: digest.algorithm,
    hex: hex.toLowerCase(),
    label: `{${digest.label}}${hex.toLowerCase()}`,
  };
}

export function checksumHash(c: Checksum | undefined): Hash | undefined {
  return c ? createHash(c.algorithm) : undefined;
}

/** Why an image store cannot be used from this management server. */
export class StoreUnavailableError extends Error {}

/**
 * The directory holding an image store's files on this server: the path itself for a local
 * store, the staging directory for a store the server reaches for the agents (an object store,
 * an NFS export in user space: storage/remote-stores.ts), the mount point of the export for an
 * NFS store reached through the kernel (which must already be mounted).
 */
export async function storeRoot(store: ImageStoreRow): Promise<string> {
  if (store.protocol !== 'nfs' || isUserSpaceNfs(store)) return store.path;
  const source = `${store.host_address}:${store.path}`;
  let mounts = '';
  try {
    mounts = await readFile('/proc/mounts', 'utf8');
  } catch {
    // Not Linux: no mount table to consult, so the export counts as not mounted.
  }
  for (const line of mounts.split('\n')) {
    const [device, mountPoint] = line.split(' ');
    if (device && device.replace(/\/+$/, '') === source.replace(/\/+$/, '')) {
      return mountPoint.replace(/\\040/g, ' ');
    }
  }
  throw new StoreUnavailableError(
    `Image store ${store.name} (${store.url}) is not mounted on this management server: mount ${source} first`,
  );
}

export interface ImageSizes {
  /** What a disk made from the image needs (QCOW2 and VHD record it; otherwise the file size). */
  virtual: number;
  physical: number;
}

async function readAt(file: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Checks that a downloaded file is an image of the declared format and reads its virtual size.
 * Throws an Error whose message says what is wrong (shown as the download's status).
 */
export async function inspectImage(file: string, format: string): Promise<ImageSizes> {
  const physical = (await stat(file)).size;
  const wrong = (what: string) => new Error(`The downloaded file is not a ${format} image (${what})`);
  switch (format) {
    case 'QCOW2': {
      const head = await readAt(file, 0, 32);
      if (head.length < 32 || head.readUInt32BE(0) !== 0x514649fb) throw wrong('no QCOW2 header');
      return { virtual: Number(head.readBigUInt64BE(24)), physical };
    }
    case 'VHD': {
      if (physical < 512) throw wrong('too small');
      const footer = await readAt(file, physical - 512, 512);
      if (footer.subarray(0, 8).toString('latin1') !== 'conectix') throw wrong('no VHD footer');
      return { virtual: Number(footer.readBigUInt64BE(48)), physical };
    }
    case 'VHDX': {
      if ((await readAt(file, 0, 8)).toString('latin1') !== 'vhdxfile') throw wrong('no VHDX signature');
      return { virtual: physical, physical };
    }
    case 'OVA': {
      if ((await readAt(file, 257, 5)).toString('latin1') !== 'ustar') throw wrong('not a tar archive');
      return { virtual: physical, physical };
    }
    case 'TAR': {
      const head = await readAt(file, 0, 262);
      const gzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
      if (!gzip && head.subarray(257, 262).toString('latin1') !== 'ustar')
        throw wrong('neither a tar archive nor gzip-compressed');
      return { virtual: physical, physical };
    }
    case 'ISO': {
      if ((await readAt(file, 0x8001, 5)).toString('latin1') !== 'CD001')
        throw new Error('The downloaded file is not an ISO 9660 image (no CD001 volume descriptor)');
      return { virtual: physical, physical };
    }
    default:
      return { virtual: physical, physical };
  }
}

const CLUSTER = 65536;

/**
 * A valid, empty QCOW2 (version 2) image of the given virtual size: header, one refcount table,
 * one refcount block and the L1 table, one 64 KiB cluster each, as qemu-img would lay them out.
 */
export function emptyQcow2(virtualSize: number): Buffer {
  const l2Coverage = CLUSTER * (CLUSTER / 8);
  const l1Entries = Math.ceil(virtualSize / l2Coverage);
  const image = Buffer.alloc(4 * CLUSTER);
  image.writeUInt32BE(0x514649fb, 0);
  image.writeUInt32BE(2, 4);
  image.writeUInt32BE(16, 20);
  image.writeBigUInt64BE(BigInt(virtualSize), 24);
  image.writeUInt32BE(l1Entries, 36);
  image.writeBigUInt64BE(BigInt(3 * CLUSTER), 40);
  image.writeBigUInt64BE(BigInt(CLUSTER), 48);
  image.writeUInt32BE(1, 56);
  image.writeBigUInt64BE(BigInt(2 * CLUSTER), CLUSTER);
  for (let cluster = 0; cluster < 4; cluster++) image.writeUInt16BE(1, 2 * CLUSTER + cluster * 2);
  return image;
}

/** Secondary storage is counted in whole GiB per stored copy, as the limits are set in GiB. */
export function storageGiB(bytes: number | null | undefined): number {
  return bytes ? Math.ceil(bytes / 1024 ** 3) : 0;
}

/** Images the server makes itself (built-in templates), by the URL their template records. */
export const BUILTIN_IMAGES: Record<string, () => Buffer> = {
  'builtin://simulator/centos55-x86_64.qcow2': () => emptyQcow2(2 * 1024 ** 3),
};
