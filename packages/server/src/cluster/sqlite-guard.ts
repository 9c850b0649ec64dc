/**
 * SQLite serves one management server: a second process on the same file would run the same
 * scheduled work, take over the first one's hosts and fail its jobs. The server holding the file
 * writes its process id, host and run next to it (<file>.server); a server that starts while that
 * process lives and its run heart-beats refuses with a message. A file left by a killed server
 * (its process gone) is taken over, so a restart after a crash is not held up.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Store } from '../db/connection.ts';

export class SingleServerError extends Error {}

interface Holder {
  pid: number;
  host: string;
  uuid: string;
  name: string;
}

function readHolder(file: string): Holder | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Claims the SQLite database at `dbFile` for this server's run (`uuid`, `name`) or throws a
 * SingleServerError naming the server that holds it. Returns a function that gives it up.
 */
export async function claimSqliteDatabase(
  store: Store,
  dbFile: string,
  run: { uuid: string; name: string; now: number; thresholdMs: number },
): Promise<() => void> {
  const lockFile = `${dbFile}.server`;
  const holder = readHolder(lockFile);
  if (holder) {
    const beating = await store.db
      .selectFrom('management_servers')
      .select(['name', 'last_heartbeat'])
      .where('uuid', '=', holder.uuid)
      .where('state', '=', 'Up')
      .where('last_heartbeat', '>', run.now - run.thresholdMs)
      .executeTakeFirst();
    // Another machine's process ids mean nothing here: its heartbeat alone decides.
    const alive = holder.host === hostname() ? holder.pid !== process.pid && processAlive(holder.pid) : true;
    if (beating && alive) throw refusal(dbFile, holder);
    rmSync(lockFile, { force: true });
  }
  let fd: number;
  try {
    // Exclusive create: of two servers starting at once, one gets the file and the other refuses.
    fd = openSync(lockFile, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    throw refusal(dbFile, readHolder(lockFile));
  }
  const mine: Holder = { pid: process.pid, host: hostname(), uuid: run.uuid, name: run.name };
  try {
    writeSync(fd, JSON.stringify(mine));
  } finally {
    closeSync(fd);
  }
  return () => {
    if (readHolder(lockFile)?.uuid === run.uuid) rmSync(lockFile, { force: true });
  };
}

function refusal(dbFile: string, holder: Holder | undefined): SingleServerError {
  const who = holder ? `${holder.name} (process ${holder.pid} on ${holder.host})` : 'another server';
  return new SingleServerError(
    `management server ${who} is running on the SQLite database ${dbFile}, and SQLite serves one management server. ` +
      'Stop it first, or give this server a data directory of its own; several servers sharing one cloud need PostgreSQL or MariaDB (DATABASE_URL, docs/operations.md)',
  );
}
