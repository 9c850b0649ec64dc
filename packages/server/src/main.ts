/** The management server process: `npm start`. */

import { startServer } from './app.ts';
import { ConfigError, loadConfig } from './config.ts';
import { SchemaTooNewError } from './db/migrate.ts';
import { UpgradeRefusedError } from './db/upgrade.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const server = await startServer(config);
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
    e instanceof ConfigError || e instanceof SchemaTooNewError || e instanceof UpgradeRefusedError;
  console.error(`nimbostack: ${known ? e.message : ((e as Error).stack ?? e)}`);
  process.exit(1);
});
