/**
 * Operator commands that work on the database directly, for the first steps before any API key
 * exists. `npm run keys -- [username] [--domain /path] [--new]` prints a user's API key and secret
 * key (issuing them if the user has none), e.g. for the `cs` client or CloudMonkey.
 * `npm run keys -- rotate [--force]` replaces the server key that encrypts secrets in the database
 * (iam/key-rotation.ts); `--user rotate` names a user who happens to be called "rotate".
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import type { App } from './context.ts';
import { openStore, type Store } from './db/connection.ts';
import { upgradeSchema } from './db/upgrade.ts';
import { openCloudKey } from './iam/cloud-key.ts';
import { RotationError, rotateServerKey } from './iam/key-rotation.ts';
import { normaliseDomainPath } from './iam/sessions.ts';
import { registerKeys } from './iam/users.ts';

async function keys(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      domain: { type: 'string', default: '/' },
      new: { type: 'boolean', default: false },
      user: { type: 'string' },
      force: { type: 'boolean', default: false },
    },
  });
  const rotate = positionals[0] === 'rotate' && values.user === undefined;
  const username = values.user ?? positionals[0] ?? 'admin';
  const config = loadConfig();
  const store = openStore(config.databaseUrl);
  try {
    await upgradeSchema(store, {
      serverName: config.serverName ?? hostname(),
      liveWindowMs: config.upgradeLiveWindow,
      backupsKept: config.upgradeBackupsKept,
      now: Date.now(),
    });
    if (rotate) {
      if (config.secretKey) {
        console.error(
          'nimbostack: the rotation writes a new key file; unset NIMBOSTACK_SECRET_KEY and point NIMBOSTACK_SECRET_KEY_FILE at a file holding the current key',
        );
        return 1;
      }
      return await rotateKey(store, config.secretKeyFile, values.force);
    }
    const secrets = await openCloudKey(store, config, { now: Date.now(), create: false });
    const user = await store.db
      .selectFrom('users')
      .innerJoin('accounts', 'accounts.id', 'users.account_id')
      .innerJoin('domains', 'domains.id', 'accounts.domain_id')
      .selectAll('users')
      .where('users.username', '=', username)
      .where('domains.path', '=', normaliseDomainPath(values.domain))
      .executeTakeFirst();
    if (!user) {
      console.error(
        `nimbostack: no user ${username} in domain ${values.domain} (start the server once to create admin)`,
      );
      return 1;
    }
    let apikey = user.api_key;
    let secretkey = user.secret_key ? secrets.decrypt(user.secret_key) : null;
    if (values.new || !apikey || !secretkey) {
      ({ apikey, secretkey } = await registerKeys({ app: { store, secrets } as unknown as App }, user));
    }
    console.log(`apikey=${apikey}\nsecretkey=${secretkey}`);
    return 0;
  } finally {
    await store.close();
  }
}

async function rotateKey(store: Store, keyFile: string, force: boolean): Promise<number> {
  try {
    const r = await rotateServerKey(store, keyFile, { force });
    if (r.resumed) console.log(`completed an interrupted rotation: ${keyFile} now holds the new key`);
    for (const [column, n] of Object.entries(r.counts)) console.log(`${column}: ${n} re-encrypted`);
    console.log(
      `server key ${r.oldFingerprint} -> ${r.newFingerprint} in ${keyFile}; the previous key is in ${r.oldKeyFile}\n` +
        'copy the new key file to every management server sharing this database before starting them;\n' +
        'keep the previous key as long as you keep database backups taken before this rotation',
    );
    return 0;
  } catch (e) {
    if (!(e instanceof RotationError)) throw e;
    console.error(`nimbostack: ${e.message}`);
    return 1;
  }
}

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (args: string[]) => Promise<number>> = { keys };
const run = command ? commands[command] : undefined;
if (!run) {
  console.error(
    'usage: admin-cli.ts keys [username | --user name] [--domain /path] [--new]\n       admin-cli.ts keys rotate [--force]',
  );
  process.exit(2);
}
run(rest).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`nimbostack: ${e instanceof ConfigError ? e.message : (e as Error).message}`);
    process.exit(1);
  },
);
