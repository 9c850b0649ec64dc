/** The management server process: `npm start`. */

import { startServer } from './app.ts';
import { SingleServerError } from './cluster/sqlite-guard.ts';
import { ConfigError, loadConfig } from './config.ts';
import { SchemaTooNewError } from './db/migrate.ts';
import { UpgradeRefusedError } from './db/upgrade.ts';
import { CloudKeyError } from './iam/cloud-key.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  // Declared Down by its peers (it was silent too long), the server has stopped itself: the exit
  // code tells a supervisor to start it again, as a new run.
  const server = await startServer(config, { onFenced: () => process.exit(1) });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'shutting down');
    server.stop().then(
      () => process.exit(0),
      (err) => {
        server.app.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((e) => {
  const known =
    e instanceof ConfigError ||
    e instanceof SchemaTooNewError ||
    e instanceof UpgradeRefusedError ||
    e instanceof CloudKeyError ||
    e instanceof SingleServerError;
  console.error(`nimbostack: ${known ? e.message : ((e as Error).stack ?? e)}`);
  process.exit(1);
});
