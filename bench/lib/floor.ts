/**
 * The floor every figure is compared with: the raw database time of the SQL a list runs, straight
 * through the driver, and what a minimal node:http server answers per second on this machine.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import SQLite from 'better-sqlite3';
import type { CompiledQuery } from 'kysely';
import pg from 'pg';
import type { DialectName } from '../../packages/server/src/db/connection.ts';
import { medianMs } from './measure.ts';

/**
 * A minimal HTTP server in its own process, answering a small JSON body like listZones', or the
 * bytes of the file named as its argument (a recorded response).
 */
const HTTP_FLOOR_SERVER = `
const http = require('node:http');
const body = process.argv[1]
  ? require('node:fs').readFileSync(process.argv[1])
  : JSON.stringify({ listzonesresponse: { count: 1, zone: [{ id: 'x', name: 'bench' }] } });
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

export interface HttpFloor {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the floor server; with `bodyFile` it answers that file's bytes instead of a small body. */
export async function startHttpFloor(bodyFile?: string): Promise<HttpFloor> {
  const child = spawn(process.execPath, ['-e', HTTP_FLOOR_SERVER, ...(bodyFile ? [bodyFile] : [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the floor HTTP server exited with ${code}`)));
  });
  return {
    url: `http://127.0.0.1:${port.trim()}/`,
    pid: child.pid!,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs compiled queries through the bare driver: better-sqlite3 or one pg connection. */
export class DbFloor {
  private constructor(
    private readonly sqlite?: SQLite.Database,
    private readonly pgClient?: pg.Client,
  ) {}

  static async open(dialect: DialectName, url: string): Promise<DbFloor> {
    if (dialect === 'sqlite') {
      const file = url.replace(/^(sqlite|file):(\/\/)?/, '');
      return new DbFloor(new SQLite(file, { readonly: true }));
    }
    if (dialect === 'postgres') {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return new DbFloor(undefined, client);
    }
    throw new Error('the database floor is measured on SQLite and PostgreSQL');
  }

  async run(q: CompiledQuery): Promise<unknown[]> {
    if (this.sqlite) return this.sqlite.prepare(q.sql).all(...(q.parameters as unknown[]));
    return (await this.pgClient!.query(q.sql, q.parameters as unknown[])).rows;
  }

  /** Median time of running all `queries` one after another (a list's count and page), in ms. */
  async timeMs(queries: CompiledQuery[], runs: number): Promise<number> {
    for (const q of queries) await this.run(q);
    return medianMs(runs, async () => {
      for (const q of queries) await this.run(q);
    });
  }

  async close(): Promise<void> {
    this.sqlite?.close();
    await this.pgClient?.end();
  }
}
