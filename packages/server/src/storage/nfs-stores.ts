/**
 * NFS image stores reached in user space: the management server copies files to and from the
 * export with the NFSv3 client it shares with the KVM agent (@nimbostack/protocol/nfs-client),
 * nothing is mounted. Agents read and write such a store through the server's staging directory,
 * as for an object store (storage/remote-stores.ts).
 *
 * Which way an NFS store is reached is the management server's `kvmNfs` setting
 * (NIMBOSTACK_KVM_NFS: the way this machine reaches NFS, for the local zone's host too) when the
 * store is added, recorded in the store's `details` as {"access":"libnfs","export":...}: the
 * paths recorded for its snapshot backups are under the staging directory, so a store keeps the
 * way it was added with. A store without that detail is reached through a kernel mount
 * (storage/images.ts storeRoot).
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { NfsExport } from '@nimbostack/protocol/nfs-client';
import type { ImageStoreRow } from '../db/schema.ts';

/** What a user-space NFS store's `details` column holds. */
export interface NfsStoreDetails {
  access: 'libnfs';
  /** The exported path, as in nfs://server/export (the store's `path` is its staging directory). */
  export: string;
}

type StoreFields = Pick<ImageStoreRow, 'protocol' | 'details' | 'host_address' | 'name'>;

/** Whether the server reaches this NFS store in user space (not through a kernel mount). */
export function isUserSpaceNfs(store: Pick<ImageStoreRow, 'protocol' | 'details'>): boolean {
  if (store.protocol !== 'nfs' || !store.details) return false;
  return (JSON.parse(store.details) as Partial<NfsStoreDetails>).access === 'libnfs';
}

function exportOf(store: StoreFields): NfsExport {
  const details = store.details ? (JSON.parse(store.details) as Partial<NfsStoreDetails>) : {};
  if (!store.host_address || !details.export)
    throw new Error(`Image store ${store.name} has no NFS server or export recorded`);
  return new NfsExport(store.host_address, details.export);
}

/**
 * Checks that the export can be used before a store is recorded: a small file written (FILE_SYNC),
 * read back and removed, then its size (FSSTAT). Throws the client's reason otherwise.
 */
export async function probeNfsExport(
  host: string,
  exportPath: string,
): Promise<{ capacityBytes: number; usedBytes: number }> {
  const nfs = new NfsExport(host, exportPath);
  const probe = `.nimbostack-probe-${process.pid}-${Date.now()}`;
  const text = Buffer.from(`image store probe ${new Date().toISOString()}\n`);
  await nfs.writeFile(probe, text);
  try {
    if (!(await nfs.readFile(probe)).equals(text)) throw new Error(`NFS: ${probe} read back differs`);
  } finally {
    await nfs.remove(probe);
  }
  return nfs.stats();
}

/** Copies a local file onto the export as `key`, read back and compared (size and SHA-256). */
export async function putNfsFile(store: StoreFields, key: string, file: string): Promise<number> {
  return (await exportOf(store).copyIn(key, createReadStream(file))).size;
}

export function getNfsFile(store: StoreFields, key: string): Promise<{ stream: Readable; length: number }> {
  return exportOf(store).readStream(key);
}

export function nfsFileSize(store: StoreFields, key: string): Promise<number | undefined> {
  return exportOf(store).size(key);
}

/** Removes files (missing ones are fine) and each one's own directory once it is empty. */
export async function deleteNfsFiles(store: StoreFields, keys: string[]): Promise<void> {
  const nfs = exportOf(store);
  for (const key of keys) await nfs.remove(key, { dirIfEmpty: true });
}

/** The export's size and use (FSSTAT), as listImageStores shows them. */
export async function measureNfsStore(
  store: StoreFields,
): Promise<{ usedBytes: number; totalBytes: number }> {
  const s = await exportOf(store).stats();
  return { usedBytes: s.usedBytes, totalBytes: s.capacityBytes };
}
