/**
 * Rotating the server key (`npm run keys -- rotate`): every value the database holds encrypted
 * with the key file is re-encrypted with a new key in one transaction, then the new key replaces
 * the file and the old one is kept next to it as <file>.old (backups taken before the rotation
 * still need it). docs/security.md, "Secrets at rest", is the operator's account of this.
 *
 * Management servers read the key once at start, so the rotation is offline: it refuses while
 * another management server heart-beats on the database (that server would go on writing values
 * under the old key), unless forced.
 */
import { existsSync, renameSync, rmSync } from 'node:fs';
import { sql } from 'kysely';
import type { Store } from '../db/connection.ts';
// The LDAP settings module declares secret settings; loaded here so the rotation knows them.
import '../ldap/settings.ts';
import { settingDefinitions } from '../settings/settings.ts';
import { Secrets } from './secrets.ts';

/** A column that holds values sealed with the server key (Secrets.encrypt), keyed by `id`. */
export interface EncryptedColumn {
  table: string;
  column: string;
  /**
   * Set for a column that a migration not yet applied everywhere adds; the rotation skips it only
   * while the column does not exist. Every other listed column must exist.
   */
  addedLater?: boolean;
  /** The column naming a row, when it is not `id` (settings are keyed by name). */
  key?: string;
  /** Only the rows whose `name` is one of these (the secret settings among all settings). */
  names?: () => string[];
}

/** Secret settings (SettingDef.secret: LDAP bind credentials...), sealed where they are stored. */
const secretSettingNames = () =>
  settingDefinitions()
    .filter((d) => d.secret)
    .map((d) => d.name);

/** Every column sealed with the server key. A new encrypted column must be added here. */
export const ENCRYPTED_COLUMNS: EncryptedColumn[] = [
  // The cloud's key check (iam/cloud-key.ts): first, so that it decides whether a key opens the
  // database; re-sealed with the rest, so servers given the new key start and others refuse.
  { table: 'cloud_key', column: 'check_value' },
  { table: 'users', column: 'secret_key' },
  { table: 'vms', column: 'password' },
  // The TOTP secret or static PIN of two-factor authentication (migration 0019).
  { table: 'users', column: 'key_for_2fa', addedLater: true },
  // Secret settings, global and per scope (the ldap.* credentials of migration 0024 onwards).
  { table: 'configuration', column: 'value', key: 'name', names: secretSettingNames },
  { table: 'scoped_configuration', column: 'value', names: secretSettingNames },
  // VPN pre-shared keys and VPN users' passwords (migration 0027).
  { table: 'remote_access_vpns', column: 'psk', addedLater: true },
  { table: 'vpn_users', column: 'password', addedLater: true },
  { table: 'vpn_customer_gateways', column: 'ipsec_psk', addedLater: true },
  // The cephx keys of RBD primary storage pools (migration 0036).
  { table: 'storage_pools', column: 'auth_secret', addedLater: true },
  // The SSH keys of managed iSCSI pools' providers (migration 0040).
  { table: 'storage_pools', column: 'provider_secret', addedLater: true },
  // The secret keys of S3 and Swift image stores (migration 0038).
  { table: 'image_stores', column: 'secret', addedLater: true },
];

/** A server that heart-beat this recently is taken to be running. */
const RUNNING_WITHIN_MS = 60_000;

export class RotationError extends Error {}

export interface RotationResult {
  oldFingerprint: string;
  newFingerprint: string;
  /** Values re-encrypted per table.column. */
  counts: Record<string, number>;
  /** Where the previous key was kept. */
  oldKeyFile: string;
  /** True when an interrupted rotation was found and completed instead of starting a new one. */
  resumed: boolean;
}

export async function existingColumns(store: Store): Promise<EncryptedColumn[]> {
  const tables = await store.db.introspection.getTables();
  const has = (t: string, c: string) =>
    tables.some((x) => x.name === t && x.columns.some((y) => y.name === c));
  const out: EncryptedColumn[] = [];
  for (const col of ENCRYPTED_COLUMNS) {
    if (has(col.table, col.column)) out.push(col);
    else if (!col.addedLater) throw new RotationError(`column ${col.table}.${col.column} does not exist`);
  }
  return out;
}

type Row = { id: number | string; value: string };

async function sealedValues(db: Store['db'], col: EncryptedColumn): Promise<Row[]> {
  const names = col.names?.();
  if (names?.length === 0) return [];
  const only = names ? sql` and name in (${sql.join(names)})` : sql``;
  const result =
    await sql<Row>`select ${sql.ref(col.key ?? 'id')} as id, ${sql.ref(col.column)} as value from ${sql.table(col.table)} where ${sql.ref(col.column)} is not null${only}`.execute(
      db,
    );
  return result.rows;
}

/** Whether `secrets` opens the first sealed value found (undefined: the database holds none). */
export async function opensDatabase(
  store: Store,
  secrets: Secrets,
  cols: EncryptedColumn[],
): Promise<boolean | undefined> {
  for (const col of cols) {
    const [row] = await sealedValues(store.db, col);
    if (!row) continue;
    try {
      secrets.decrypt(row.value);
      return true;
    } catch {
      return false;
    }
  }
  return undefined;
}

/**
 * Re-encrypts every sealed value under a new key and installs it in `keyFile`. Steps, so that a
 * crash at any point leaves a state the next run completes:
 * 1. the new key is written (fsync'd) to <file>.next;
 * 2. one transaction decrypts each value with the current key and stores it sealed with the new
 *    one; any value that does not decrypt aborts it, leaving everything as it was;
 * 3. the current key is copied to <file>.old and <file>.next is renamed over <file> (atomic).
 * Finding <file>.next at start means step 3 did not happen: if the database opens with it, the
 * transaction had committed and the run only finishes step 3; otherwise the stale file is dropped.
 */
export async function rotateServerKey(
  store: Store,
  keyFile: string,
  opts: { force?: boolean; now?: number } = {},
): Promise<RotationResult> {
  if (!existsSync(keyFile)) throw new RotationError(`no server key at ${keyFile} (start the server once)`);
  const now = opts.now ?? Date.now();
  const running = await store.db
    .selectFrom('management_servers')
    .select(['name'])
    .where('state', '=', 'Up')
    .where('last_heartbeat', '>', now - RUNNING_WITHIN_MS)
    .execute();
  if (running.length > 0 && !opts.force) {
    throw new RotationError(
      `management server(s) ${running.map((r) => r.name).join(', ')} are running on this database; stop them all first (or pass --force if they are gone)`,
    );
  }
  const cols = await existingColumns(store);
  const current = Secrets.read(keyFile);
  const nextFile = `${keyFile}.next`;
  const oldFile = `${keyFile}.old`;

  if (existsSync(nextFile)) {
    const pending = Secrets.read(nextFile);
    if ((await opensDatabase(store, pending, cols)) === true) {
      install(current, keyFile, nextFile, oldFile);
      return {
        oldFingerprint: current.fingerprint,
        newFingerprint: pending.fingerprint,
        counts: {},
        oldKeyFile: oldFile,
        resumed: true,
      };
    }
    rmSync(nextFile);
  }

  const next = Secrets.generate();
  next.writeTo(nextFile);
  const counts: Record<string, number> = {};
  try {
    await store.db.transaction().execute(async (tx) => {
      for (const col of cols) {
        const name = `${col.table}.${col.column}`;
        counts[name] = 0;
        for (const row of await sealedValues(tx, col)) {
          let plain: string;
          try {
            plain = current.decrypt(row.value);
          } catch {
            throw new RotationError(
              `${name} of id ${row.id} does not decrypt with the current key (${current.fingerprint}); nothing was changed`,
            );
          }
          await sql`update ${sql.table(col.table)} set ${sql.ref(col.column)} = ${next.encrypt(plain)} where ${sql.ref(col.key ?? 'id')} = ${row.id}`.execute(
            tx,
          );
          counts[name]++;
        }
      }
      await tx.updateTable('cloud_key').set({ fingerprint: next.fingerprint }).execute();
    });
  } catch (e) {
    rmSync(nextFile, { force: true });
    throw e;
  }
  install(current, keyFile, nextFile, oldFile);
  return {
    oldFingerprint: current.fingerprint,
    newFingerprint: next.fingerprint,
    counts,
    oldKeyFile: oldFile,
    resumed: false,
  };
}

/** Step 3: keep the current key as <file>.old, then move the new one into place. */
function install(current: Secrets, keyFile: string, nextFile: string, oldFile: string): void {
  current.writeTo(oldFile);
  renameSync(nextFile, keyFile);
}
