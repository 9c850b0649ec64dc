/**
 * Operator commands that work on the database directly, for the first steps before any API key
 * exists. `npm run keys -- [username] [--domain /path] [--new]` prints a user's API key and secret
 * key (issuing them if the user has none), e.g. for the `cs` client or CloudMonkey.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import type { App } from './context.ts';
import { openStore } from './db/connection.ts';
import { migrate } from './db/migrate.ts';
import { Secrets } from './iam/secrets.ts';
import { normaliseDomainPath } from './iam/sessions.ts';
import { registerKeys } from './iam/users.ts';

async function keys(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { domain: { type: 'string', default: '/' }, new: { type: 'boolean', default: false } },
  });
  const username = positionals[0] ?? 'admin';
  const config = loadConfig();
  const store = openStore(config.databaseUrl);
  try {
    await migrate(store);
    const secrets = Secrets.load(config.secretKeyFile);
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

const [command, ...rest] = process.argv.slice(2);
const commands: Record<string, (args: string[]) => Promise<number>> = { keys };
const run = command ? commands[command] : undefined;
if (!run) {
  console.error('usage: admin-cli.ts keys [username] [--domain /path] [--new]');
  process.exit(2);
}
run(rest).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`nimbostack: ${e instanceof ConfigError ? e.message : (e as Error).message}`);
    process.exit(1);
  },
);
