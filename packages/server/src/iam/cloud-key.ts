/**
 * The cloud's key: every management server sharing a database seals and opens secrets at rest
 * (the columns of key-rotation.ts) with one key, as upstream's servers share the key of their
 * db.properties. The first server of an empty database makes it (in its key file); the operator
 * copies that file to the others (NIMBOSTACK_SECRET_KEY_FILE) or gives it as a variable
 * (NIMBOSTACK_SECRET_KEY). The database keeps a check (table cloud_key: a known text sealed with
 * the key, and the key's fingerprint), never the key, so that a server given another key refuses
 * to start saying what to copy where, instead of answering 530 to every call that needs a secret.
 */
import { existsSync, rmSync } from 'node:fs';
import type { ServerConfig } from '../config.ts';
import type { Store } from '../db/connection.ts';
import { existingColumns, opensDatabase } from './key-rotation.ts';
import { Secrets } from './secrets.ts';

/** The text sealed as the check: opening it proves the key is the cloud's. */
const CHECK_TEXT = 'nimbostack cloud key';

export class CloudKeyError extends Error {}

type KeyConfig = Pick<ServerConfig, 'secretKey' | 'secretKeyFile'>;

/** Where this server's key comes from, as the operator set it. */
function source(config: KeyConfig): string {
  return config.secretKey ? 'NIMBOSTACK_SECRET_KEY' : `the key file ${config.secretKeyFile}`;
}

/** What the operator should do: the same words in every refusal. */
function howToFix(config: KeyConfig): string {
  return (
    `copy the key file of a management server already running this cloud (its NIMBOSTACK_SECRET_KEY_FILE, by default <data dir>/server.key) ` +
    `to ${config.secretKeyFile} on this machine (mode 0600), or point NIMBOSTACK_SECRET_KEY_FILE at it, or set NIMBOSTACK_SECRET_KEY to its content ` +
    `(docs/security.md, "The cloud's key")`
  );
}

/** The key this server was given, or undefined when it has none. */
function givenKey(config: KeyConfig): Secrets | undefined {
  try {
    if (config.secretKey) return Secrets.fromHex(config.secretKey, 'NIMBOSTACK_SECRET_KEY');
    if (existsSync(config.secretKeyFile)) return Secrets.read(config.secretKeyFile);
  } catch (e) {
    throw new CloudKeyError((e as Error).message);
  }
  return undefined;
}

function opens(key: Secrets, sealed: string): boolean {
  try {
    return key.decrypt(sealed) === CHECK_TEXT;
  } catch {
    return false;
  }
}

/** Records `key` as the cloud's; false when another server recorded one first (a race at the first start). */
async function recordCheck(store: Store, key: Secrets, now: number): Promise<boolean> {
  try {
    await store.db
      .insertInto('cloud_key')
      .values({ id: 1, fingerprint: key.fingerprint, check_value: key.encrypt(CHECK_TEXT), created: now })
      .execute();
    return true;
  } catch (e) {
    const exists = await store.db.selectFrom('cloud_key').select('id').executeTakeFirst();
    if (exists) return false;
    throw e;
  }
}

/**
 * The cloud's key for a server starting on `store` (after the schema upgrade), or a
 * CloudKeyError saying why not and what to copy where. `create` lets it make the key when the
 * database has neither a key check nor any sealed secret (the first start of a new cloud).
 */
export async function openCloudKey(
  store: Store,
  config: KeyConfig,
  opts: { now: number; create: boolean },
): Promise<Secrets> {
  const given = givenKey(config);
  const check = await store.db.selectFrom('cloud_key').selectAll().executeTakeFirst();
  if (check) {
    if (!given)
      throw new CloudKeyError(
        `this database belongs to a cloud whose secrets are sealed with key ${check.fingerprint}, and this server has no key (${config.secretKeyFile} does not exist): ${howToFix(config)}`,
      );
    if (!opens(given, check.check_value))
      throw new CloudKeyError(
        `${source(config)} holds key ${given.fingerprint}, but this cloud's secrets are sealed with key ${check.fingerprint} (after \`npm run keys -- rotate\`, the new key): ${howToFix(config)}`,
      );
    return given;
  }
  // No check yet: a new database, or one whose servers predate the check (migration 0032).
  const opened = given ? await opensDatabase(store, given, await existingColumns(store)) : undefined;
  if (given && opened === false)
    throw new CloudKeyError(
      `${source(config)} holds key ${given.fingerprint}, which does not open the secrets already stored in this database: ${howToFix(config)}`,
    );
  if (given) {
    if (await recordCheck(store, given, opts.now)) return given;
    return openCloudKey(store, config, opts);
  }
  const anySealed = await opensDatabase(store, Secrets.generate(), await existingColumns(store));
  if (anySealed !== undefined)
    throw new CloudKeyError(
      `this database holds secrets sealed with a key this server does not have (${config.secretKeyFile} does not exist): ${howToFix(config)}`,
    );
  if (!opts.create)
    throw new CloudKeyError(
      `no key for this cloud yet (${config.secretKeyFile} does not exist): start the first management server once`,
    );
  // The first server of a new cloud: the file first, then the check, so that a crash between the
  // two leaves a key file and no check (the next start records it) rather than a check no file opens.
  const key = Secrets.generate();
  key.writeTo(config.secretKeyFile);
  if (await recordCheck(store, key, opts.now)) return key;
  // Another server made the cloud's key at the same moment: this one's file is not it.
  rmSync(config.secretKeyFile, { force: true });
  return openCloudKey(store, config, opts);
}
