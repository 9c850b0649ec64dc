/**
 * Image stores that agents do not reach themselves ("remote" stores): object stores (S3, Swift;
 * storage/object-stores.ts) and NFS exports the management server reaches in user space
 * (storage/nfs-stores.ts). Every flow that puts a file on a store or reads one back asks
 * isRemoteStore once and then uses these functions, whatever the store's kind.
 *
 * Every image store has a directory on the management server (`path`): an NFS store reached
 * through a kernel mount, or a local store, holds its files there; for a remote store it is a
 * staging area where the server puts what an agent must read (a template before a deploy, a
 * snapshot before a restore) and where agents write what goes out (snapshot backups, templates
 * made from volumes), which the server then copies to the store and removes.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NfsError } from '@nimbostack/protocol/nfs-client';
import type { App } from '../context.ts';
import type { ImageStoreRow } from '../db/schema.ts';
import { storeRoot } from './images.ts';
import { deleteNfsFiles, getNfsFile, isUserSpaceNfs, nfsFileSize, putNfsFile } from './nfs-stores.ts';
import {
  closeBucket,
  deleteObjects,
  getObject,
  isObjectStore,
  objectSize,
  putObject,
  s3Reason,
} from './object-stores.ts';

export function isRemoteStore(store: Pick<ImageStoreRow, 'provider' | 'protocol' | 'details'>): boolean {
  return isObjectStore(store) || isUserSpaceNfs(store);
}

/** Why a remote store refused: the client's own words. */
export function storeReason(e: unknown): string {
  return e instanceof NfsError ? e.message : s3Reason(e);
}

/** Copies a local file to the store as `key`, checked there (stored size; on NFS also SHA-256). */
export function putFile(app: App, store: ImageStoreRow, key: string, file: string): Promise<number> {
  return isObjectStore(store) ? putObject(app, store, key, file) : putNfsFile(store, key, file);
}

/** A stream of a file's bytes and its length. */
export function getFile(
  app: App,
  store: ImageStoreRow,
  key: string,
): Promise<{ stream: Readable; length: number }> {
  return isObjectStore(store) ? getObject(app, store, key) : getNfsFile(store, key);
}

/**
 * Where this server reads file `key` of a store: under a path store's root, or, for a remote store,
 * its copy staged here (fetched first when missing).
 */
export async function localFile(app: App, store: ImageStoreRow, key: string): Promise<string> {
  return isRemoteStore(store) ? stageFile(app, store, key) : join(await storeRoot(store), key);
}

/** The size of a file on the store, or undefined when it is not there. */
export function fileSize(app: App, store: ImageStoreRow, key: string): Promise<number | undefined> {
  return isObjectStore(store) ? objectSize(app, store, key) : nfsFileSize(store, key);
}

const stagedFile = (store: ImageStoreRow, key: string) => `${store.path.replace(/\/+$/, '')}/${key}`;

const staging = new Map<string, Promise<string>>();

/**
 * Makes sure the staging directory holds file `key` of the store (same size), copying it once
 * even when several deploys ask at the same time. Returns the local file.
 */
export async function stageFile(app: App, store: ImageStoreRow, key: string): Promise<string> {
  const file = stagedFile(store, key);
  const running = staging.get(file);
  if (running) return running;
  const job = (async () => {
    const have = await stat(file).then(
      (s) => s.size,
      () => undefined,
    );
    if (have !== undefined && have === (await fileSize(app, store, key))) return file;
    const { stream, length } = await getFile(app, store, key);
    await mkdir(dirname(file), { recursive: true });
    const part = `${file}.staging`;
    try {
      await pipeline(stream, createWriteStream(part));
      const got = (await stat(part)).size;
      if (got !== length)
        throw new Error(`Staging ${key} from image store ${store.name} got ${got} of ${length} bytes`);
      await rename(part, file);
    } catch (e) {
      await rm(part, { force: true });
      throw e;
    }
    return file;
  })();
  staging.set(file, job);
  try {
    return await job;
  } finally {
    staging.delete(file);
  }
}

/** Copies a file an agent wrote into the staging directory to the store, then removes the local copy. */
export async function publishStaged(app: App, store: ImageStoreRow, key: string): Promise<number> {
  const file = stagedFile(store, key);
  const size = await putFile(app, store, key, file);
  await rm(file, { force: true });
  return size;
}

/** Removes files from the store (missing ones are fine) and their staged copies. */
export async function deleteFiles(app: App, store: ImageStoreRow, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  if (isObjectStore(store)) await deleteObjects(app, store, keys);
  else await deleteNfsFiles(store, keys);
  for (const key of keys) await rm(stagedFile(store, key), { force: true });
}

/**
 * Removes files from an image store of any kind, each with its own directory once that is empty
 * (as on an NFS export): a remote store's through deleteFiles, a path store's under its root.
 */
export async function deleteStoreFiles(app: App, store: ImageStoreRow, keys: string[]): Promise<void> {
  if (isRemoteStore(store)) return deleteFiles(app, store, keys);
  const root = await storeRoot(store);
  for (const key of keys) {
    const file = join(root, key);
    await rm(file, { force: true });
    // Never the store's root itself, even when it is empty.
    if (dirname(key) !== '.') await rmdir(dirname(file)).catch(() => undefined);
  }
}

/**
 * When a store is deleted (nothing of ours is recorded on it any more): its bucket goes if
 * Nimbostack made it and it is empty, and the staging directory goes. An export stays as it is.
 */
export async function closeStore(app: App, store: ImageStoreRow): Promise<void> {
  if (isObjectStore(store)) await closeBucket(app, store);
  await rm(store.path, { recursive: true, force: true });
}
